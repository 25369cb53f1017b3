//! The shared Redis store: one token cache and one renewal lock for a fleet of processes.
//!
//! Inside this module `redis` names the module itself, so the crate is always spelled `::redis`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ::redis::{Client, RedisError};
use async_trait::async_trait;
use tokio::sync::OnceCell;
use url::Url;
use zeroize::Zeroizing;

use super::{CacheKey, Codec, KeySalt, RenewalLock, TokenStore};

mod connection;
mod durability;
#[cfg(feature = "dpop")]
mod nonces;
mod script;
mod sentinel;
mod target;

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::token::Token;
use connection::Connection;
pub use durability::RedisDurability;
use script::{ScriptCall, StoreScript};
pub use sentinel::RedisSentinel;
use target::{NodeAuth, Target};

/// Default key prefix.
const DEFAULT_PREFIX: &str = "oauth-layer:";
/// How much longer than the lock's lifetime a renewal waits for another process's lock by
/// default, so that a lock left by a dead process expires before a waiter gives up.
const LOCK_WAIT_MARGIN: Duration = Duration::from_secs(5);
/// The longest expiry given to Redis: configured durations are clamped to it, so that
/// `Duration::MAX` means "practically never" instead of an overflow or a `PX` that Redis
/// refuses (it takes a signed 64-bit count of milliseconds from now).
const LONGEST_EXPIRY: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);
/// The shortest pause between two extensions of a held lock.
const WATCHDOG_MIN_PERIOD: Duration = Duration::from_millis(1);
/// Default lifetime of an entry that holds a refresh token.
const DEFAULT_REFRESH_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// How long an entry outlives its access token (never less than a second in all).
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);
/// The first and the longest pause between two attempts at a lock another process holds.
const LOCK_POLL_MIN: Duration = Duration::from_millis(20);
const LOCK_POLL_MAX: Duration = Duration::from_millis(500);
/// The pause between two attempts at a durable write that replicas did not confirm.
const DURABLE_RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Deletes the lock only if it still holds this holder's fencing value, so a holder whose lock
/// expired never frees the lock a later holder took.
const RELEASE_SCRIPT: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("DEL", KEYS[1])
end
return 0
"#;

/// Gives the lock `ARGV[2]` more milliseconds if it still holds this holder's fencing value:
/// 1 when extended, 0 when the lock is gone or another holder's.
///
/// When `ARGV[3]` is `1` (with [`RedisDurability::Replicas`]) a lock that is absent is taken
/// back instead, as a durable write tried again does (see [`FENCED_SAVE_SCRIPT`]): a failover
/// slower than the lock's lifetime promotes a replica on which the lock has expired, and the
/// renewal that holds it must still be able to store its rotated refresh token. A lock another
/// holder took is still lost.
const EXTEND_SCRIPT: &str = r#"
local holder = redis.call("GET", KEYS[1])
if holder == ARGV[1] then
    return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
if not holder and ARGV[3] == "1" then
    redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
    return 1
end
return 0
"#;

/// Writes the entry `KEYS[2]` only while the lock `KEYS[1]` holds this holder's fencing value
/// (`ARGV[1]`), in one step, so that a holder whose lock expired or was taken over never
/// overwrites the newer holder's token: 1 when written, 0 when refused.
///
/// When `ARGV[4]` is `1` (a durable write tried again, see [`RedisDurability`]) a lock that is
/// absent is taken back for `ARGV[5]` milliseconds first: a failover can promote a replica that
/// never received the lock, and the holder's token must still land on the new primary. A lock
/// another holder took is still a refusal.
const FENCED_SAVE_SCRIPT: &str = r#"
local holder = redis.call("GET", KEYS[1])
if holder ~= ARGV[1] then
    if holder or ARGV[4] ~= "1" then
        return 0
    end
    redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[5])
end
redis.call("SET", KEYS[2], ARGV[2], "PX", ARGV[3])
return 1
"#;

/// Deletes the entry `KEYS[2]` only while the lock `KEYS[1]` holds this holder's fencing value:
/// 1 when done, 0 when refused.
const FENCED_DELETE_SCRIPT: &str = r#"
if redis.call("GET", KEYS[1]) ~= ARGV[1] then
    return 0
end
redis.call("DEL", KEYS[2])
return 1
"#;

/// Tokens kept in Redis, shared by every process that uses the same Redis and key prefix, with a
/// distributed renewal lock so that a fleet makes one token request per renewal, not one per
/// process (SECURITY.md rules 21, 31 and 33).
///
/// Layout, under the [`prefix`](Self::prefix) (default `oauth-layer:`):
///
/// - `<prefix>salt` holds the store's [`KeySalt`] (64 hex digits, no expiry): the first process
///   creates it (`SET NX`), every process reads it. Entries are named with it, so a Redis key
///   reveals nothing about the credentials in the cache key. Deleting it orphans every entry
///   (they expire by themselves); processes converge on a new one at their next renewal.
/// - `<prefix>token:<name>` holds the [`Codec`] bytes of the token for the [`CacheKey`] whose
///   [`name`](KeySalt::name) under the salt it is ([`entry_key`](Self::entry_key)). It expires
///   a minute after the access token does; an entry that holds a refresh token is kept for
///   [`refresh_token_ttl`](Self::refresh_token_ttl) (default 30 days) instead, because the
///   refresh token is what lets the next process renew without a new sign-in, and with rotating
///   refresh tokens the stored one may be the only live copy.
/// - `<prefix>lock:<name>` is the renewal lock: `SET NX PX` with a random fencing value, freed
///   only by its holder (a script compares the value before deleting it). While it is held, a
///   watchdog task extends it every third of [`lock_ttl`](Self::lock_ttl) (again only if it
///   still holds the holder's value), so a renewal slower than the TTL keeps it; once the
///   holder releases or drops it, or dies, it expires after `lock_ttl`.
///
/// Writes are fenced (SECURITY.md rule 54): while this store (or a clone of it) holds the lock
/// for a key, [`save`](TokenStore::save) and [`delete`](TokenStore::delete) for that key go
/// through a script that checks, in the same step, that the lock still holds this holder's
/// fencing value. A holder whose lock expired or was taken over by another process gets
/// [`Error::LockLost`] and the newer holder's entry stays. The watchdog notices a lost lock at
/// its next extension and logs it; writes refuse at once from then on. Fencing is per store
/// value: give each process its own (two sources in one process sharing one store are one
/// holder to it).
///
/// In a Redis Cluster ([`connect_cluster`](Self::connect_cluster)) the entry and the lock are
/// `<prefix>token:{<name>}` and `<prefix>lock:{<name>}`: the braces are a hash tag, so both
/// hash to one slot and the fenced write, which touches both in one script, runs on the one
/// primary that holds them. Standalone and behind Sentinels the names have no braces, as in
/// every earlier release: a fleet already sharing a Redis keeps finding its entries when it
/// upgrades.
///
/// Every key is under the prefix (the namespace), and every key but the salt has a TTL.
/// Entries carry their format version inside (the [`Codec`]'s envelope, format 1), not in
/// their name: during a rolling upgrade old and new processes share one Redis, and a version
/// in the name would split the fleet, each half blind to the refresh token the other rotated.
/// A release may add fields within format 1 (older releases ignore them) and reads every
/// earlier format, so a fleet rolls onto a new release without losing its tokens
/// (`tests/redis_entries.rs`).
///
/// Redis replicates asynchronously, so a failover can lose the last writes; with
/// [`durability`](Self::durability) a rotated refresh token is on the replicas before it is
/// used (`tests/redis_failover.rs`). Behind Redis Sentinel, connect with
/// [`connect_sentinel`](Self::connect_sentinel): after a failover the store reaches the new
/// primary, from its first call on (a call that finds the old one gone is sent again to the new
/// one), and [`RedisSentinel`] gives the servers credentials of their own. In a Redis
/// Cluster the connection follows the slot map, and `WAIT` goes to the primary owning the
/// entry's slot (`tests/redis_cluster.rs`).
///
/// Entries that are corrupt, written by a newer version of the crate, sealed under another key
/// or not sealed when they should be are misses, logged without their contents. When Redis
/// cannot be reached every call fails within the
/// [`operation_timeout`](Self::operation_timeout) with [`Error::Store`]; the
/// [`TokenSource`](crate::TokenSource) then logs a warning and keeps working from its memory,
/// and the store works again once Redis is back (the connection reconnects by itself).
///
/// With feature `dpop` it is also a [`NonceStore`](crate::dpop::NonceStore): give it to
/// [`Dpop::share_nonces`](crate::dpop::Dpop::share_nonces) and the fleet shares the servers'
/// DPoP nonces too (`<prefix>dpop-nonce:<name>`, plain, ten minutes).
///
/// Cheap to clone: clones share one connection.
///
/// ```no_run
/// use std::time::Duration;
/// use oauth_layer::{OAuthClient, TokenSource, flow::ClientCredentials, store::RedisStore};
///
/// # async fn run(key_from_secret_manager: [u8; 32]) -> oauth_layer::Result<()> {
/// let store = RedisStore::connect("redis://:password@redis.internal:6379/0")
///     .await?
///     .prefix("billing:oauth:")
///     .encryption_key(key_from_secret_manager)
///     .lock_ttl(Duration::from_secs(20));
/// let client = OAuthClient::builder("id")
///     .secret("s")
///     .token_url("https://idp.example/token")
///     .build()?;
/// let tokens = TokenSource::builder(client, ClientCredentials::new()).store(store).build();
/// let token = tokens.token().await?; // one token request for the whole fleet
/// # let _ = token; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    /// Where Redis is (URL and credentials, or Sentinels), for every new connection.
    redis: Target,
    /// The connection, made on first use by [`connect_lazy`](Self::connect_lazy) stores and at
    /// once by [`connect`](Self::connect); it reconnects by itself afterwards. Behind Sentinels
    /// a connection that fails is replaced by an empty cell, so the next call asks them for the
    /// primary again.
    connection: Arc<Mutex<Arc<OnceCell<Connection>>>>,
    /// The URL without its user information, query or fragment, for `Debug`.
    target: Arc<str>,
    /// The passwords from the URLs (and the primary's own, behind Sentinels), scrubbed from
    /// any error text Redis produces.
    passwords: Arc<[Zeroizing<String>]>,
    prefix: Arc<str>,
    codec: Codec,
    clock: Arc<dyn Clock>,
    lock_ttl: Duration,
    /// `None`: a little longer than `lock_ttl` (see [`lock_wait`](Self::lock_wait)).
    lock_wait: Option<Duration>,
    operation_timeout: Duration,
    refresh_token_ttl: Duration,
    durability: RedisDurability,
    scripts: Arc<Scripts>,
    /// The renewal locks this store and its clones hold, by lock key.
    held: Arc<Mutex<HashMap<String, Holding>>>,
    /// The salt read from `<prefix>salt`, once read.
    salt: Arc<Mutex<Option<KeySalt>>>,
}

/// The Lua scripts, cached by Redis on first use.
struct Scripts {
    release: StoreScript,
    extend: StoreScript,
    save: StoreScript,
    delete: StoreScript,
}

/// A renewal lock this store holds: the fencing value a write must still find in Redis, and
/// whether the watchdog (or a refused write) has found the lock lost.
struct Holding {
    fence: Arc<str>,
    lost: bool,
}

impl RedisStore {
    /// Default lifetime of the renewal lock: longer than the slowest renewal the crate's
    /// defaults allow, so that a holder whose watchdog cannot reach Redis still keeps the lock
    /// to the end. All of this happens under the lock:
    ///
    /// ```text
    ///   read the store (the operation timeout)                        2 s
    ///   a refresh answered `invalid_grant` at the deadline             30 s
    ///     (http::DEFAULT_TIMEOUT; an invalid_grant is never retried)
    ///   delete the dead refresh token                                  2 s
    ///   a new grant, RetryPolicy::default():
    ///     3 attempts, each at the 30 s deadline                        90 s
    ///     2 waits, each the longest Retry-After honoured (30 s;        60 s
    ///       the backoff without one, 250 ms then 500 ms, is shorter)
    ///   write the new token, release the lock                          4 s
    ///                                                                -----
    ///                                                                188 s  < 240 s
    /// ```
    ///
    /// The watchdog extends a held lock however long the renewal takes (an interactive sign-in,
    /// a slower custom retry policy); this lifetime is what a lock left by a dead process costs
    /// the others, and a lower [`lock_ttl`](Self::lock_ttl) is safe while Redis is reachable.
    pub const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(240);

    /// Default bound on every Redis call (see [`operation_timeout`](Self::operation_timeout)).
    pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(2);

    /// Connects to the Redis at `url` (`redis://[[user]:password@]host[:port][/db]`), waiting at
    /// most the default operation timeout (2 s) for the first connection. The connection is
    /// re-established by itself whenever it breaks.
    ///
    /// An invalid URL is an [`Error::Config`]; a Redis that cannot be reached or refuses the
    /// credentials is an [`Error::Store`]. Neither error shows the password.
    ///
    /// ```no_run
    /// use oauth_layer::store::RedisStore;
    ///
    /// # async fn run() -> oauth_layer::Result<()> {
    /// let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
    /// # let _ = store; Ok(()) }
    /// ```
    pub async fn connect(url: impl AsRef<str>) -> Result<Self> {
        let store = Self::connect_lazy(url)?;
        store.connection().await.map_err(|failure| failure.error)?;
        Ok(store)
    }

    /// Like [`connect`](Self::connect), but without connecting yet: the first store call
    /// connects, so a service can start while Redis is still unreachable. Until Redis answers,
    /// every call fails within the [`operation_timeout`](Self::operation_timeout) with
    /// [`Error::Store`] (the [`TokenSource`](crate::TokenSource) works from its memory
    /// meanwhile), and a later call connects. Only an invalid URL fails here, with
    /// [`Error::Config`].
    ///
    /// ```
    /// use oauth_layer::store::RedisStore;
    ///
    /// // Nothing listens there yet; that is fine until the store is used.
    /// let store = RedisStore::connect_lazy("redis://127.0.0.1:1")?;
    /// # let _ = store; Ok::<(), oauth_layer::Error>(())
    /// ```
    pub fn connect_lazy(url: impl AsRef<str>) -> Result<Self> {
        let url = Url::parse(url.as_ref())
            .map_err(|e| Error::config(format!("invalid Redis URL: {e}")))?;
        let target: Arc<str> = redacted(&url).into();
        let passwords: Vec<_> = percent_decoded(url.password()).into_iter().collect();
        let client = Client::open(url).map_err(|e| {
            Error::config(format!(
                "invalid Redis URL {target}: {}",
                scrubbed(&e, &passwords)
            ))
        })?;
        Ok(Self::on(Target::Direct(client), target, passwords))
    }

    /// Connects to the primary that the Sentinels at `sentinels` (`redis://[[user]:password@]host:port[/db]`
    /// each) name for `service`, waiting at most the default operation timeout (2 s). The
    /// primary is reached with the user name, password and database of the first URL (one
    /// password for Sentinels and servers; when the servers have their own, use
    /// [`RedisSentinel::primary_credentials`]). After a failover the next connection asks the
    /// Sentinels again and reaches the new primary (a call that finds the old primary gone is
    /// sent once more on such a connection, within the operation timeout); pair it with
    /// [`durability`](Self::durability) so that no rotated refresh token is lost in one.
    ///
    /// Errors as [`connect`](Self::connect); an empty list is an [`Error::Config`].
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use oauth_layer::store::{RedisDurability, RedisStore};
    ///
    /// # async fn run() -> oauth_layer::Result<()> {
    /// let store = RedisStore::connect_sentinel(
    ///     ["redis://sentinel-1:26379", "redis://sentinel-2:26379", "redis://sentinel-3:26379"],
    ///     "oauth",
    /// )
    /// .await?
    /// .durability(RedisDurability::replicas(1, Duration::from_secs(10)));
    /// # let _ = store; Ok(()) }
    /// ```
    pub async fn connect_sentinel(
        sentinels: impl IntoIterator<Item = impl AsRef<str>>,
        service: impl AsRef<str>,
    ) -> Result<Self> {
        let store = Self::sentinel_lazy(sentinels, service)?;
        store.connection().await.map_err(|failure| failure.error)?;
        Ok(store)
    }

    /// Like [`connect_sentinel`](Self::connect_sentinel), but without connecting yet (see
    /// [`connect_lazy`](Self::connect_lazy)).
    pub fn sentinel_lazy(
        sentinels: impl IntoIterator<Item = impl AsRef<str>>,
        service: impl AsRef<str>,
    ) -> Result<Self> {
        RedisSentinel::new(sentinels, service).lazy()
    }

    /// The store [`RedisSentinel::lazy`] makes.
    fn behind_sentinels(sentinel: RedisSentinel) -> Result<Self> {
        let urls = sentinel
            .sentinels
            .iter()
            .map(|u| Url::parse(u))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::config(format!("invalid Redis Sentinel URL: {e}")))?;
        let shown: Vec<String> = urls.iter().map(redacted).collect();
        let target: Arc<str> =
            format!("{} (Sentinels {})", sentinel.service, shown.join(", ")).into();
        let mut passwords: Vec<_> = urls
            .iter()
            .filter_map(|u| percent_decoded(u.password()))
            .collect();
        let auth = sentinel.primary.as_ref().map(|p| {
            passwords.push(p.password.clone());
            NodeAuth {
                username: p.username.as_deref(),
                password: Some(p.password.as_str()),
            }
        });
        let redis = Target::sentinel(&urls, &sentinel.service, auth).map_err(|e| {
            Error::config(format!(
                "invalid Redis Sentinel configuration {target}: {}",
                scrubbed(&e, &passwords)
            ))
        })?;
        Ok(Self::on(redis, target, passwords))
    }

    /// Connects to the Redis Cluster that the nodes at `nodes`
    /// (`redis://[[user]:password@]host:port` each; a few are enough, the rest are found from
    /// them) belong to, waiting at most the default operation timeout (2 s). Every node is
    /// reached with the user name and password of the URLs, which must all carry the same ones
    /// (or only the first). Each command goes to the primary owning its key's slot; the
    /// connection follows slot moves and failovers by itself, and
    /// [`durability`](Self::durability)'s `WAIT` goes to the primary owning the entry.
    ///
    /// In a cluster the entry and lock names carry a hash tag (`token:{<name>}`,
    /// `lock:{<name>}`), so that the fenced write touching both lands in one slot; the
    /// [`prefix`](Self::prefix) must then not contain a brace of its own that would change the
    /// tag (a complete `{tag}` in it is fine: every key then shares that slot).
    ///
    /// Errors as [`connect`](Self::connect); an empty list is an [`Error::Config`].
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use oauth_layer::store::{RedisDurability, RedisStore};
    ///
    /// # async fn run() -> oauth_layer::Result<()> {
    /// let store = RedisStore::connect_cluster([
    ///     "redis://:password@redis-1.internal:6379",
    ///     "redis://:password@redis-2.internal:6379",
    ///     "redis://:password@redis-3.internal:6379",
    /// ])
    /// .await?
    /// .durability(RedisDurability::replicas(1, Duration::from_secs(10)));
    /// # let _ = store; Ok(()) }
    /// ```
    pub async fn connect_cluster(nodes: impl IntoIterator<Item = impl AsRef<str>>) -> Result<Self> {
        let store = Self::cluster_lazy(nodes)?;
        store.connection().await.map_err(|failure| failure.error)?;
        Ok(store)
    }

    /// Like [`connect_cluster`](Self::connect_cluster), but without connecting yet (see
    /// [`connect_lazy`](Self::connect_lazy)).
    pub fn cluster_lazy(nodes: impl IntoIterator<Item = impl AsRef<str>>) -> Result<Self> {
        let urls = nodes
            .into_iter()
            .map(|u| Url::parse(u.as_ref()))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::config(format!("invalid Redis Cluster node URL: {e}")))?;
        let shown: Vec<String> = urls.iter().map(redacted).collect();
        let target: Arc<str> = format!("the cluster of {}", shown.join(", ")).into();
        let passwords: Vec<_> = urls
            .iter()
            .filter_map(|u| percent_decoded(u.password()))
            .collect();
        if urls.is_empty() {
            return Err(Error::config("no Redis Cluster node address"));
        }
        let redis = Target::cluster(&urls).map_err(|e| {
            Error::config(format!(
                "invalid Redis Cluster configuration {target}: {}",
                scrubbed(&e, &passwords)
            ))
        })?;
        Ok(Self::on(redis, target, passwords))
    }

    /// A store on `redis` with the default settings.
    fn on(redis: Target, target: Arc<str>, passwords: Vec<Zeroizing<String>>) -> Self {
        Self {
            redis,
            connection: Arc::default(),
            target,
            passwords: passwords.into(),
            prefix: DEFAULT_PREFIX.into(),
            codec: Codec::plain(),
            clock: Arc::new(SystemClock),
            lock_ttl: Self::DEFAULT_LOCK_TTL,
            lock_wait: None,
            operation_timeout: Self::DEFAULT_OPERATION_TIMEOUT,
            refresh_token_ttl: DEFAULT_REFRESH_TOKEN_TTL,
            durability: RedisDurability::Primary,
            scripts: Arc::new(Scripts {
                release: StoreScript::new(RELEASE_SCRIPT),
                extend: StoreScript::new(EXTEND_SCRIPT),
                save: StoreScript::new(FENCED_SAVE_SCRIPT),
                delete: StoreScript::new(FENCED_DELETE_SCRIPT),
            }),
            held: Arc::default(),
            salt: Arc::default(),
        }
    }

    /// The connection, made now if it has not been yet. Callers that arrive while a first
    /// connection is being made wait for it, all within one operation timeout; when it fails
    /// the next call tries again.
    async fn connection(&self) -> std::result::Result<Connection, StoreFailure> {
        let cell = self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(connection) = cell.get() {
            return Ok(connection.clone());
        }
        let first = cell.get_or_try_init(|| self.redis.connect(self.operation_timeout));
        match tokio::time::timeout(self.operation_timeout, first).await {
            Ok(Ok(connection)) => Ok(connection.clone()),
            Ok(Err(e)) => Err(StoreFailure {
                wrong_type: false,
                error: Error::Store(format!(
                    "cannot connect to Redis at {}: {}{}",
                    self.target,
                    scrubbed(&e, &self.passwords),
                    self.redis.auth_hint(&e)
                )),
            }),
            Err(_) => Err(StoreFailure {
                wrong_type: false,
                error: Error::Store(format!(
                    "cannot connect to Redis at {}: no connection after {} ms",
                    self.target,
                    self.operation_timeout.as_millis()
                )),
            }),
        }
    }

    /// The prefix of every key this store reads or writes (default `oauth-layer:`). Give each
    /// application its own when several share one Redis.
    ///
    /// ```no_run
    /// # async fn run() -> oauth_layer::Result<()> {
    /// let store = oauth_layer::store::RedisStore::connect("redis://127.0.0.1").await?.prefix("app1:");
    /// # let _ = store; Ok(()) }
    /// ```
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into().into();
        self.salt = Arc::default();
        self
    }

    /// How entries are written (default [`Codec::plain`]: JSON, protected only by Redis's own
    /// access control). Every process sharing the entries needs the same codec.
    ///
    /// ```no_run
    /// use oauth_layer::store::{Codec, RedisStore};
    ///
    /// # async fn run(key: [u8; 32]) -> oauth_layer::Result<()> {
    /// let store = RedisStore::connect("redis://127.0.0.1").await?.codec(Codec::encrypted(key));
    /// # let _ = store; Ok(()) }
    /// ```
    #[must_use]
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Seals entries with AES-256-GCM under `key` (shorthand for
    /// `.codec(Codec::encrypted(key))`): what Redis holds never contains the tokens, and an
    /// entry sealed under another key is a miss.
    ///
    /// ```no_run
    /// # async fn run(key: [u8; 32]) -> oauth_layer::Result<()> {
    /// let store = oauth_layer::store::RedisStore::connect("redis://127.0.0.1").await?.encryption_key(key);
    /// # let _ = store; Ok(()) }
    /// ```
    #[must_use]
    pub fn encryption_key(self, key: [u8; 32]) -> Self {
        self.codec(Codec::encrypted(key))
    }

    /// How long the renewal lock lives if its holder stops extending it: it died, dropped the
    /// lock, or cannot reach Redis (default [`DEFAULT_LOCK_TTL`](Self::DEFAULT_LOCK_TTL),
    /// 4 min). A live holder's lock is extended every third of this, however long its renewal
    /// takes. Shorter means others take over sooner after a crash; longer means a holder keeps
    /// its lock through a longer Redis outage. Clamped between 1 ms and 100 years.
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// # async fn run() -> oauth_layer::Result<()> {
    /// let store = oauth_layer::store::RedisStore::connect("redis://127.0.0.1")
    ///     .await?
    ///     .lock_ttl(Duration::from_secs(10));
    /// # let _ = store; Ok(()) }
    /// ```
    #[must_use]
    pub fn lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = ttl.clamp(Duration::from_millis(1), LONGEST_EXPIRY);
        self
    }

    /// How long a renewal waits while another process holds the lock (default: the
    /// [`lock_ttl`](Self::lock_ttl) plus 5 s, so a lock left by a dead process expires first;
    /// `Duration::MAX` waits for ever). The waiter polls with a growing pause (20 ms up to
    /// 500 ms); once it has the lock the source reads the store again and usually finds the
    /// other process's token.
    /// If the wait runs out, [`TokenStore::lock`] fails with [`Error::Store`] and the source
    /// renews without the lock.
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// # async fn run() -> oauth_layer::Result<()> {
    /// let store = oauth_layer::store::RedisStore::connect("redis://127.0.0.1")
    ///     .await?
    ///     .lock_wait(Duration::from_secs(15));
    /// # let _ = store; Ok(()) }
    /// ```
    #[must_use]
    pub fn lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = Some(wait);
        self
    }

    /// The longest any single Redis call may take (default 2 s); past it the call fails with
    /// [`Error::Store`]. This is what an unreachable Redis costs a renewal, per call.
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// # async fn run() -> oauth_layer::Result<()> {
    /// let store = oauth_layer::store::RedisStore::connect("redis://127.0.0.1")
    ///     .await?
    ///     .operation_timeout(Duration::from_millis(500));
    /// # let _ = store; Ok(()) }
    /// ```
    #[must_use]
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// How long an entry that holds a refresh token is kept (default 30 days, and never less
    /// than the access token's own lifetime plus a minute). Entries without a refresh token
    /// expire a minute after their access token.
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// # async fn run() -> oauth_layer::Result<()> {
    /// let store = oauth_layer::store::RedisStore::connect("redis://127.0.0.1")
    ///     .await?
    ///     .refresh_token_ttl(Duration::from_secs(7 * 24 * 3600));
    /// # let _ = store; Ok(()) }
    /// ```
    #[must_use]
    pub fn refresh_token_ttl(mut self, ttl: Duration) -> Self {
        self.refresh_token_ttl = ttl;
        self
    }

    /// How many replicas must confirm a token write before it is done (default
    /// [`RedisDurability::Primary`]: none, Redis's own default). With
    /// [`RedisDurability::replicas`] a rotated refresh token is on that many replicas before the
    /// source hands out the access token that came with it, so a failover cannot lose it; a
    /// write not confirmed in time fails with [`Error::Store`] (the source then keeps the token
    /// in memory and logs it). `WAIT` blocks the store's connection while it waits, so other
    /// calls of this process wait with it.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use oauth_layer::store::{RedisDurability, RedisStore};
    ///
    /// # async fn run() -> oauth_layer::Result<()> {
    /// let store = RedisStore::connect("redis://127.0.0.1")
    ///     .await?
    ///     .durability(RedisDurability::replicas(1, Duration::from_secs(5)));
    /// # let _ = store; Ok(()) }
    /// ```
    #[must_use]
    pub fn durability(mut self, durability: RedisDurability) -> Self {
        self.durability = durability;
        self
    }

    /// The clock that places a stored token's expiry in this process's time (default
    /// [`SystemClock`]); give it the client's clock when that is not the system's.
    ///
    /// ```no_run
    /// use oauth_layer::clock::SystemClock;
    ///
    /// # async fn run() -> oauth_layer::Result<()> {
    /// let store = oauth_layer::store::RedisStore::connect("redis://127.0.0.1").await?.clock(SystemClock);
    /// # let _ = store; Ok(()) }
    /// ```
    #[must_use]
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How long [`TokenStore::lock`] waits for another holder.
    fn waiting_time(&self) -> Duration {
        self.lock_wait
            .unwrap_or_else(|| self.lock_ttl.saturating_add(LOCK_WAIT_MARGIN))
    }

    /// The Redis key that holds the token for `key`: `<prefix>token:<name>`, where the name is
    /// a keyed digest of the whole key under the store's salt (read from Redis, or created
    /// there, on first use).
    ///
    /// ```no_run
    /// use oauth_layer::{OAuthClient, TokenSource, flow::ClientCredentials, store::RedisStore};
    ///
    /// # async fn run() -> oauth_layer::Result<()> {
    /// let store = RedisStore::connect("redis://127.0.0.1").await?;
    /// let client = OAuthClient::builder("id").token_url("https://idp.example/token").build()?;
    /// let source = TokenSource::builder(client, ClientCredentials::new()).build();
    /// println!("{}", store.entry_key(source.cache_key()).await?);
    /// # Ok(()) }
    /// ```
    pub async fn entry_key(&self, key: &CacheKey) -> Result<String> {
        Ok(self.names(key).await?.0)
    }

    /// The Redis keys of `key`'s entry and of its renewal lock.
    ///
    /// In a Redis Cluster the name is a hash tag (`token:{<name>}`), so the entry and its lock
    /// hash to one slot and a script or pipeline touching both runs on one node. Standalone and
    /// behind Sentinels the names stay as they always were (`token:<name>`): there is one
    /// keyspace, braces would only rename the keys, and a fleet rolling onto this release would
    /// split, the upgraded half blind to the entries (and the rotated refresh token) the other
    /// half keeps writing.
    async fn names(&self, key: &CacheKey) -> Result<(String, String)> {
        let name = self.salt().await?.name(key);
        if !self.redis.is_cluster() {
            return Ok((
                format!("{}token:{name}", self.prefix),
                format!("{}lock:{name}", self.prefix),
            ));
        }
        if !keeps_hash_tag(&self.prefix) {
            return Err(Error::config(format!(
                "the Redis key prefix {:?} has a brace that breaks the hash tag keeping a \
                 token entry and its lock in one Redis Cluster slot; use a prefix without \
                 braces, or with a complete {{tag}}",
                self.prefix
            )));
        }
        Ok((
            format!("{}token:{{{name}}}", self.prefix),
            format!("{}lock:{{{name}}}", self.prefix),
        ))
    }

    /// The salt, as read before, or read now.
    async fn salt(&self) -> Result<KeySalt> {
        let known = self
            .salt
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match known {
            Some(salt) => Ok(salt),
            None => self.read_salt().await,
        }
    }

    /// Reads `<prefix>salt`, creating it first if no process has (`SET NX`, so the first one
    /// wins), and remembers it.
    async fn read_salt(&self) -> Result<KeySalt> {
        let name = format!("{}salt", self.prefix);
        let mut create = ::redis::cmd("SET");
        create
            .arg(&name)
            .arg(KeySalt::generate()?.to_hex().as_str())
            .arg("NX");
        let _: Option<String> = self.run("salt write", &create).await.map_err(|f| f.error)?;
        let mut read = ::redis::cmd("GET");
        read.arg(&name);
        let stored: Option<Vec<u8>> = self.run("salt read", &read).await.map_err(|f| f.error)?;
        let stored = stored.map(Zeroizing::new);
        let salt = stored
            .as_deref()
            .and_then(|hex| KeySalt::from_hex(hex))
            .ok_or_else(|| {
                Error::Store(format!(
                    "the Redis key {name} at {} does not hold a salt this crate wrote; delete \
                     it (the cached tokens are then fetched again)",
                    self.target
                ))
            })?;
        *self.salt.lock().unwrap_or_else(PoisonError::into_inner) = Some(salt.clone());
        Ok(salt)
    }

    /// How long Redis keeps `token`'s entry.
    fn entry_ttl(&self, token: &Token) -> Duration {
        let left = token
            .expires_at()
            .saturating_duration_since(self.clock.now())
            .saturating_add(EXPIRY_MARGIN);
        if token.refresh_token().is_some() {
            left.max(self.refresh_token_ttl)
        } else {
            left
        }
    }

    /// Runs one command, bounded by the operation timeout; failures become [`Error::Store`]
    /// naming `what` and never the password.
    async fn run<T: ::redis::FromRedisValue>(
        &self,
        what: &str,
        cmd: &::redis::Cmd,
    ) -> std::result::Result<T, StoreFailure> {
        self.send(what, |mut connection| async move {
            cmd.query_async(&mut connection).await
        })
        .await
    }

    /// Sends one call through the store's connection, bounded by the operation timeout. Behind
    /// Sentinels, a call that finds the primary gone (the connection dropped, `READONLY` from a
    /// demoted one) is sent once more, within the same bound, on a new connection to the
    /// primary the Sentinels name now: otherwise the first call after every failover failed,
    /// and a renewal then ran without the fleet's lock. Every call the store makes may be sent
    /// twice: reads, `SET NX`, and writes and scripts fenced by the lock's value.
    async fn send<T, F, Fut>(&self, what: &str, call: F) -> std::result::Result<T, StoreFailure>
    where
        F: Fn(Connection) -> Fut,
        Fut: std::future::Future<Output = ::redis::RedisResult<T>>,
    {
        let now = tokio::time::Instant::now();
        // `Duration::MAX` as the bound means none (30 years stands for it, as in tokio).
        let deadline = now
            .checked_add(self.operation_timeout)
            .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30));
        let connection = self.connection().await?;
        let e = match tokio::time::timeout_at(deadline, call(connection)).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => e,
            Err(_) => return Err(self.timed_out(what)),
        };
        let failure = self.failure(what, &e);
        if !self.redis.lost_primary(&e) {
            return Err(failure);
        }
        let again = async {
            let connection = self.connection().await?;
            Ok::<_, StoreFailure>(call(connection).await)
        };
        match tokio::time::timeout_at(deadline, again).await {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(e))) => Err(self.failure(what, &e)),
            // The first failure says more than a connection that could not be made in time.
            Ok(Err(_)) | Err(_) => Err(failure),
        }
    }

    /// Drops the connection, so the next call makes a new one (behind Sentinels: to the
    /// primary they name then).
    fn forget_connection(&self) {
        *self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Arc::default();
    }

    fn failure(&self, what: &str, e: &RedisError) -> StoreFailure {
        if self.redis.lost_primary(e) {
            self.forget_connection();
        }
        StoreFailure {
            wrong_type: e.code() == Some("WRONGTYPE"),
            error: Error::Store(format!(
                "Redis {what} at {} failed: {}{}",
                self.target,
                scrubbed(e, &self.passwords),
                self.redis.auth_hint(e)
            )),
        }
    }

    fn timed_out(&self, what: &str) -> StoreFailure {
        if self.redis.reconnects_after_timeout() {
            self.forget_connection();
        }
        StoreFailure {
            wrong_type: false,
            error: Error::Store(format!(
                "Redis {what} at {} timed out after {} ms",
                self.target,
                self.operation_timeout.as_millis()
            )),
        }
    }

    /// Runs one script, bounded by the operation timeout, like [`run`](Self::run).
    async fn run_script<T: ::redis::FromRedisValue>(
        &self,
        what: &str,
        call: &ScriptCall<'_>,
    ) -> std::result::Result<T, StoreFailure> {
        self.send(what, |mut connection| async move {
            call.run(&mut connection).await
        })
        .await
    }

    fn holdings(&self) -> std::sync::MutexGuard<'_, HashMap<String, Holding>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The fencing value a write to the entry under `lock_key` must go through: `None` when
    /// this store holds no lock for it, [`Error::LockLost`] when it held one and lost it.
    fn fence_for(&self, lock_key: &str) -> Result<Option<Arc<str>>> {
        match self.holdings().get(lock_key) {
            None => Ok(None),
            Some(holding) if holding.lost => Err(lock_lost()),
            Some(holding) => Ok(Some(holding.fence.clone())),
        }
    }

    /// Records that the lock `fence` names is no longer this holder's.
    fn mark_lost(&self, lock_key: &str, fence: &str) {
        if let Some(holding) = self.holdings().get_mut(lock_key)
            && *holding.fence == *fence
        {
            holding.lost = true;
        }
    }

    /// Forgets the lock `fence` names (released or dropped); a later holder's is left alone.
    fn forget(&self, lock_key: &str, fence: &str) {
        let mut held = self.holdings();
        if held.get(lock_key).is_some_and(|h| *h.fence == *fence) {
            held.remove(lock_key);
        }
    }

    /// Extends the held lock every third of its lifetime until it is found lost; the task is
    /// aborted when the lock is released or dropped.
    async fn watch(self, lock_key: String, fence: Arc<str>) {
        let period = (self.lock_ttl / 3).max(WATCHDOG_MIN_PERIOD);
        loop {
            tokio::time::sleep(period).await;
            let mut invocation = self.scripts.extend.key(&lock_key);
            let retake = matches!(self.durability, RedisDurability::Replicas { .. });
            invocation
                .arg(&*fence)
                .arg(millis(self.lock_ttl))
                .arg(if retake { "1" } else { "0" });
            match self.run_script::<i64>("lock extension", &invocation).await {
                Ok(1) => {}
                Ok(_) => {
                    self.mark_lost(&lock_key, &fence);
                    tracing::warn!(
                        "the Redis renewal lock expired or was taken over during the renewal; \
                         this process's token will not be stored"
                    );
                    return;
                }
                // The lock may still be ours; the next tick tries again, and a write checks.
                Err(f) => tracing::warn!(error = %f.error, "Redis renewal lock not extended"),
            }
        }
    }

    /// One attempt at the lock: `true` when this call took it.
    async fn try_lock(&self, lock_key: &str, fence: &str) -> Result<bool> {
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(lock_key)
            .arg(fence)
            .arg("NX")
            .arg("PX")
            .arg(millis(self.lock_ttl));
        let taken: Option<String> = self.run("lock", &cmd).await.map_err(|f| f.error)?;
        Ok(taken.is_some())
    }
}

impl RedisStore {
    /// Writes the entry at once (Redis's default durability): fenced while this store holds
    /// the lock for it, [`Error::LockLost`] when that lock is no longer this holder's.
    async fn write(&self, token_key: &str, lock_key: &str, bytes: &[u8], ttl: u64) -> Result<()> {
        let Some(fence) = self.fence_for(lock_key)? else {
            let mut cmd = ::redis::cmd("SET");
            cmd.arg(token_key).arg(bytes).arg("PX").arg(ttl);
            let _: () = self.run("write", &cmd).await.map_err(|f| f.error)?;
            return Ok(());
        };
        let mut invocation = self.scripts.save.key(lock_key);
        invocation
            .key(token_key)
            .arg(&*fence)
            .arg(bytes)
            .arg(ttl)
            .arg("0")
            .arg(0);
        match self.run_script::<i64>("write", &invocation).await {
            Ok(1) => Ok(()),
            Ok(_) => {
                self.mark_lost(lock_key, &fence);
                Err(lock_lost())
            }
            Err(f) => Err(f.error),
        }
    }

    /// Writes the entry and `WAIT`s for `count` replicas in one pipeline, on one connection (a
    /// `WAIT` sent on a reconnected connection would confirm nothing): how many confirmed.
    /// `again` marks a retry, which takes back a lock a failover lost (see
    /// [`FENCED_SAVE_SCRIPT`]).
    #[allow(clippy::too_many_arguments)]
    async fn write_durably(
        &self,
        token_key: &str,
        lock_key: &str,
        bytes: &[u8],
        ttl: u64,
        again: bool,
        count: u32,
        left: Duration,
    ) -> Result<i64> {
        let fence = self.fence_for(lock_key)?;
        let mut pipe = ::redis::pipe();
        match &fence {
            None => {
                pipe.cmd("SET")
                    .arg(token_key)
                    .arg(bytes)
                    .arg("PX")
                    .arg(ttl)
                    .ignore();
            }
            Some(fence) => {
                pipe.cmd("EVAL")
                    .arg(FENCED_SAVE_SCRIPT)
                    .arg(2)
                    .arg(lock_key)
                    .arg(token_key)
                    .arg(&**fence)
                    .arg(bytes)
                    .arg(ttl)
                    .arg(if again { "1" } else { "0" })
                    .arg(millis(self.lock_ttl));
            }
        }
        let wait = self.wait_bound(left);
        pipe.cmd("WAIT").arg(count).arg(millis(wait));
        let mut connection = self.connection().await.map_err(|f| f.error)?;
        let bound = self.operation_timeout.saturating_add(wait);
        let replies: Vec<i64> =
            match tokio::time::timeout(bound, pipe.query_async(&mut connection)).await {
                Ok(Ok(replies)) => replies,
                Ok(Err(e)) => return Err(self.failure("durable write", &e).error),
                Err(_) => return Err(self.timed_out("durable write").error),
            };
        match (fence, replies.as_slice()) {
            (None, [confirmed]) | (Some(_), [1, confirmed]) => Ok(*confirmed),
            (Some(fence), [_, _]) => {
                self.mark_lost(lock_key, &fence);
                Err(lock_lost())
            }
            _ => Err(Error::Store(format!(
                "Redis at {} answered a durable write unexpectedly",
                self.target
            ))),
        }
    }

    /// How long one `WAIT` may block: what is left of the durable write's time, and never
    /// more than the operation timeout, so a failover is noticed and the write tried again.
    fn wait_bound(&self, left: Duration) -> Duration {
        left.min(self.operation_timeout)
            .max(Duration::from_millis(1))
    }

    /// With [`RedisDurability::Replicas`], waits for the replicas to hold a lock just taken,
    /// so a failover during the renewal keeps it. Not confirmed, the renewal goes on (logged):
    /// its token write waits for the replicas again, and takes the lock back if it was lost.
    ///
    /// `WAIT` names no key; behind the `PTTL` of the lock in one pipeline it goes to the
    /// server that took the lock (in a cluster: the primary owning its slot, not every one).
    async fn confirm_lock(&self, lock_key: &str) {
        let RedisDurability::Replicas { count, within } = self.durability else {
            return;
        };
        let wait = self.wait_bound(within);
        let mut pipe = ::redis::pipe();
        pipe.cmd("PTTL").arg(lock_key).ignore();
        pipe.cmd("WAIT").arg(count).arg(millis(wait));
        let confirmation = async {
            let mut connection = self.connection().await?;
            let bound = self.operation_timeout.saturating_add(wait);
            match tokio::time::timeout(bound, pipe.query_async::<(i64,)>(&mut connection)).await {
                Ok(Ok((confirmed,))) => Ok(confirmed),
                Ok(Err(e)) => Err(self.failure("lock confirmation", &e)),
                Err(_) => Err(self.timed_out("lock confirmation")),
            }
        };
        match confirmation.await {
            Ok(confirmed) if confirmed >= i64::from(count) => {}
            Ok(confirmed) => tracing::warn!(
                confirmed,
                count,
                "the Redis renewal lock is not on enough replicas yet; renewing anyway"
            ),
            Err(f) => tracing::warn!(error = %f.error, "the Redis renewal lock was not confirmed"),
        }
    }
}

/// A failed call, and whether Redis said the key holds another type (a foreign entry).
struct StoreFailure {
    wrong_type: bool,
    error: Error,
}

#[async_trait]
impl TokenStore for RedisStore {
    async fn load(&self, key: &CacheKey) -> Result<Option<Token>> {
        let (token_key, _) = self.names(key).await?;
        let mut cmd = ::redis::cmd("GET");
        cmd.arg(&token_key);
        let bytes: Option<Vec<u8>> = match self.run("read", &cmd).await {
            Ok(bytes) => bytes,
            Err(f) if f.wrong_type => {
                tracing::warn!(
                    key = %token_key,
                    "the Redis token entry is not a string; treating it as a miss"
                );
                return Ok(None);
            }
            Err(f) => return Err(f.error),
        };
        let Some(bytes) = bytes.map(Zeroizing::new) else {
            return Ok(None);
        };
        match self.codec.decode(key, &bytes, &*self.clock) {
            Ok(token) => Ok(Some(token)),
            Err(e) => {
                tracing::warn!(key = %token_key, error = %e, "ignoring a Redis token entry");
                Ok(None)
            }
        }
    }

    /// Writes the entry; while this store holds the renewal lock for `key`, only if Redis still
    /// holds this holder's fencing value ([`Error::LockLost`] otherwise).
    ///
    /// With [`RedisDurability::Replicas`] the write is done only once the replicas confirm it;
    /// until then it is written again (behind Sentinels, to whichever server is the primary
    /// by then), for at most the configured time.
    async fn save(&self, key: &CacheKey, token: &Token) -> Result<()> {
        let bytes = Zeroizing::new(self.codec.encode(key, token)?);
        let ttl = millis(self.entry_ttl(token));
        let (token_key, lock_key) = self.names(key).await?;
        let RedisDurability::Replicas { count, within } = self.durability else {
            return self.write(&token_key, &lock_key, &bytes, ttl).await;
        };
        let deadline = tokio::time::Instant::now() + within.min(LONGEST_EXPIRY);
        let mut again = false;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let why = match self
                .write_durably(&token_key, &lock_key, &bytes, ttl, again, count, left)
                .await
            {
                Ok(confirmed) if confirmed >= i64::from(count) => return Ok(()),
                Ok(confirmed) => format!("{confirmed} of {count} replicas confirmed it"),
                Err(refused @ Error::LockLost(_)) => return Err(refused),
                Err(e) => e.to_string(),
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Store(format!(
                    "the token written to Redis at {} was not confirmed by {count} replicas \
                     within {} ms ({why})",
                    self.target,
                    within.as_millis()
                )));
            }
            tracing::debug!(reason = %why, "Redis token write not yet confirmed; writing again");
            again = true;
            tokio::time::sleep(DURABLE_RETRY_PAUSE.min(left)).await;
        }
    }

    /// Deletes the entry; fenced like [`save`](Self::save).
    async fn delete(&self, key: &CacheKey) -> Result<()> {
        let (token_key, lock_key) = self.names(key).await?;
        let Some(fence) = self.fence_for(&lock_key)? else {
            let mut cmd = ::redis::cmd("DEL");
            cmd.arg(&token_key);
            let _: i64 = self.run("delete", &cmd).await.map_err(|f| f.error)?;
            return Ok(());
        };
        let mut invocation = self.scripts.delete.key(&lock_key);
        invocation.key(&token_key).arg(&*fence);
        match self.run_script::<i64>("delete", &invocation).await {
            Ok(1) => Ok(()),
            Ok(_) => {
                self.mark_lost(&lock_key, &fence);
                Err(lock_lost())
            }
            Err(f) => Err(f.error),
        }
    }

    /// Takes `<prefix>lock:<name>`, waiting (polling every 20 ms at first, then less and less
    /// often, up to every 500 ms) while another process holds it, for at most
    /// [`lock_wait`](RedisStore::lock_wait). Fails with [`Error::Store`] when Redis cannot be
    /// reached or the wait runs out; the source then renews without the lock. The lock taken is
    /// extended by a watchdog until it is released or dropped, and fences this store's writes
    /// for `key` meanwhile.
    async fn lock(&self, key: &CacheKey) -> Result<Option<Box<dyn RenewalLock>>> {
        // Read the salt again: a process that remembers a replaced one converges here.
        self.read_salt().await?;
        let (_, lock_key) = self.names(key).await?;
        let fence: Arc<str> = fencing_value()?.into();
        let wait = self.waiting_time();
        let deadline = tokio::time::Instant::now().checked_add(wait);
        let mut pause = LOCK_POLL_MIN;
        loop {
            if self.try_lock(&lock_key, &fence).await? {
                self.holdings().insert(
                    lock_key.clone(),
                    Holding {
                        fence: fence.clone(),
                        lost: false,
                    },
                );
                self.confirm_lock(&lock_key).await;
                let watchdog = tokio::spawn(self.clone().watch(lock_key.clone(), fence.clone()));
                return Ok(Some(Box::new(RedisLock {
                    store: self.clone(),
                    lock_key,
                    fence,
                    watchdog: watchdog.abort_handle(),
                })));
            }
            let now = tokio::time::Instant::now();
            let mut nap = jittered(pause);
            if let Some(deadline) = deadline {
                if now >= deadline {
                    return Err(Error::Store(format!(
                        "another process held the Redis renewal lock for more than {} ms",
                        wait.as_millis()
                    )));
                }
                nap = nap.min(deadline - now);
            }
            tokio::time::sleep(nap).await;
            pause = (pause * 2).min(LOCK_POLL_MAX);
        }
    }
}

/// The lock taken by [`RedisStore::lock`]: extended by its watchdog while it lives, freed by
/// [`release`](RenewalLock::release) only while it still holds this holder's fencing value.
struct RedisLock {
    store: RedisStore,
    lock_key: String,
    fence: Arc<str>,
    watchdog: tokio::task::AbortHandle,
}

#[async_trait]
impl RenewalLock for RedisLock {
    async fn release(self: Box<Self>) {
        self.disarm();
        let mut invocation = self.store.scripts.release.key(&self.lock_key);
        invocation.arg(&*self.fence);
        let error = match self.store.run_script::<i64>("unlock", &invocation).await {
            Ok(1) => return,
            Ok(_) => Error::Store(
                "the Redis renewal lock expired or was taken over before it was released".into(),
            ),
            Err(failure) => failure.error,
        };
        // The lock expires by itself; this only costs other processes a wait.
        tracing::warn!(error = %error, "Redis renewal lock not released");
    }
}

impl RedisLock {
    /// Stops the watchdog and the fencing of this store's writes.
    fn disarm(&self) {
        self.watchdog.abort();
        self.store.forget(&self.lock_key, &self.fence);
    }
}

/// A lock dropped without [`release`](RenewalLock::release) is no longer extended, and expires
/// after the lock's lifetime.
impl Drop for RedisLock {
    fn drop(&mut self) {
        self.disarm();
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.target)
            .field("prefix", &self.prefix)
            .field("codec", &self.codec)
            .field("lock_ttl", &self.lock_ttl)
            .field("lock_wait", &self.waiting_time())
            .field("operation_timeout", &self.operation_timeout)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

/// `url` without user name, password, query or fragment: `redis://[redacted]@host:port/db`.
fn redacted(url: &Url) -> String {
    let userinfo = if url.username().is_empty() && url.password().is_none() {
        ""
    } else {
        "[redacted]@"
    };
    let host = url.host_str().unwrap_or_default();
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!("{}://{userinfo}{host}{port}{}", url.scheme(), url.path())
}

/// The password as Redis receives it (percent-decoded), to scrub it from error text.
fn percent_decoded(password: Option<&str>) -> Option<Zeroizing<String>> {
    let raw = password.filter(|p| !p.is_empty())?.as_bytes();
    let mut bytes = Zeroizing::new(Vec::with_capacity(raw.len()));
    let mut i = 0;
    while i < raw.len() {
        let hex = raw
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (raw[i], hex) {
            (b'%', Some(byte)) => {
                bytes.push(byte);
                i += 3;
            }
            (byte, _) => {
                bytes.push(byte);
                i += 1;
            }
        }
    }
    Some(Zeroizing::new(String::from_utf8_lossy(&bytes).into_owned()))
}

/// The text of a Redis error with the passwords (if they ever appeared) cut out.
fn scrubbed(e: &RedisError, passwords: &[Zeroizing<String>]) -> String {
    let mut text = e.to_string();
    for p in passwords.iter().filter(|p| p.len() >= 4) {
        text = text.replace(p.as_str(), "[redacted]");
    }
    text
}

/// `true` when keys `<prefix>token:{<name>}` and `<prefix>lock:{<name>}` hash to one slot:
/// Redis hashes what lies between the first `{` and the next `}` when that is not empty, so a
/// prefix either has no `{` (the tag is ours) or a complete non-empty `{tag}` of its own.
fn keeps_hash_tag(prefix: &str) -> bool {
    match prefix.find('{') {
        None => true,
        Some(open) => prefix[open + 1..].find('}').is_some_and(|close| close > 0),
    }
}

/// A 128-bit random value naming one holder of a lock.
fn fencing_value() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Internal(format!("no system randomness: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Between half and all of `pause`, so waiting processes do not poll in step.
fn jittered(pause: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let share = match getrandom::fill(&mut byte) {
        Ok(()) => 0.5 + f64::from(byte[0]) / 510.0,
        Err(_) => 1.0,
    };
    pause.mul_f64(share)
}

/// The refusal of a write whose lock is no longer this holder's.
fn lock_lost() -> Error {
    Error::LockLost(
        "the Redis renewal lock expired or was taken over by another process; \
         that process's token is the current one"
            .into(),
    )
}

/// `d` as Redis's `PX` takes it: whole milliseconds, at least 1, at most [`LONGEST_EXPIRY`].
fn millis(d: Duration) -> u64 {
    u64::try_from(d.min(LONGEST_EXPIRY).as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}
