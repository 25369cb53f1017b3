//! The shared Redis store: one token cache and one renewal lock for a fleet of processes.
//!
//! Inside this module `redis` names the module itself, so the crate is always spelled `::redis`.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, RedisError, Script};
use async_trait::async_trait;
use url::Url;
use zeroize::Zeroizing;

use super::{CacheKey, Codec, KeySalt, RenewalLock, TokenStore};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::token::Token;

/// Default key prefix.
const DEFAULT_PREFIX: &str = "oauth-layer:";
/// Default lifetime of the renewal lock.
const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(30);
/// Default time a renewal waits for another process's lock (longer than the lock's lifetime, so
/// a lock left by a dead process expires before a waiter gives up).
const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(35);
/// Default bound on every Redis call.
const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(2);
/// Default lifetime of an entry that holds a refresh token.
const DEFAULT_REFRESH_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// How long an entry outlives its access token (never less than a second in all).
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);
/// The first and the longest pause between two attempts at a lock another process holds.
const LOCK_POLL_MIN: Duration = Duration::from_millis(20);
const LOCK_POLL_MAX: Duration = Duration::from_millis(500);

/// Deletes the lock only if it still holds this holder's fencing value, so a holder whose lock
/// expired never frees the lock a later holder took.
const RELEASE_SCRIPT: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("DEL", KEYS[1])
end
return 0
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
///   [`name`](KeySalt::name) under the salt it is ([`entry_key`](Self::entry_key)). It expires a minute after the access token does; an
///   entry that holds a refresh token is kept for
///   [`refresh_token_ttl`](Self::refresh_token_ttl) (default 30 days) instead, because the
///   refresh token is what lets the next process renew without a new sign-in, and with rotating
///   refresh tokens the stored one may be the only live copy.
/// - `<prefix>lock:<name>` is the renewal lock: `SET NX PX` with a random fencing value, freed
///   only by its holder (a script compares the value before deleting it), and expiring after
///   [`lock_ttl`](Self::lock_ttl) if the holder dies.
///
/// Entries that are corrupt, written by a newer version of the crate, sealed under another key
/// or not sealed when they should be are misses, logged without their contents. When Redis
/// cannot be reached every call fails within the
/// [`operation_timeout`](Self::operation_timeout) with [`Error::Store`]; the
/// [`TokenSource`](crate::TokenSource) then logs a warning and keeps working from its memory,
/// and the store works again once Redis is back (the connection reconnects by itself).
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
/// let client = OAuthClient::new("id").secret("s").token_url("https://idp.example/token")?;
/// let tokens = TokenSource::builder(client, ClientCredentials::new()).store(store).build();
/// let token = tokens.token().await?; // one token request for the whole fleet
/// # let _ = token; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    /// The Redis client (URL and credentials), for the first connection.
    client: Client,
    /// The connection, made on first use by [`connect_lazy`](Self::connect_lazy) stores and at
    /// once by [`connect`](Self::connect); it reconnects by itself afterwards.
    connection: Arc<tokio::sync::OnceCell<ConnectionManager>>,
    /// The URL without its user information, query or fragment, for `Debug`.
    target: Arc<str>,
    /// The password from the URL, scrubbed from any error text Redis produces.
    password: Option<Arc<Zeroizing<String>>>,
    prefix: Arc<str>,
    codec: Codec,
    clock: Arc<dyn Clock>,
    lock_ttl: Duration,
    lock_wait: Duration,
    operation_timeout: Duration,
    refresh_token_ttl: Duration,
    release: Arc<Script>,
    /// The salt read from `<prefix>salt`, once read.
    salt: Arc<Mutex<Option<KeySalt>>>,
}

impl RedisStore {
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
        let password = percent_decoded(url.password());
        let client = Client::open(url).map_err(|e| {
            Error::config(format!(
                "invalid Redis URL {target}: {}",
                scrubbed(&e, password.as_ref().map(|p| p.as_str()))
            ))
        })?;
        Ok(Self {
            client,
            connection: Arc::default(),
            target,
            password: password.map(Arc::new),
            prefix: DEFAULT_PREFIX.into(),
            codec: Codec::plain(),
            clock: Arc::new(SystemClock),
            lock_ttl: DEFAULT_LOCK_TTL,
            lock_wait: DEFAULT_LOCK_WAIT,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            refresh_token_ttl: DEFAULT_REFRESH_TOKEN_TTL,
            release: Arc::new(Script::new(RELEASE_SCRIPT)),
            salt: Arc::default(),
        })
    }

    /// The connection, made now if it has not been yet. Callers that arrive while a first
    /// connection is being made wait for it, all within one operation timeout; when it fails
    /// the next call tries again.
    async fn connection(&self) -> std::result::Result<ConnectionManager, StoreFailure> {
        if let Some(connection) = self.connection.get() {
            return Ok(connection.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.operation_timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let first = self
            .connection
            .get_or_try_init(|| ConnectionManager::new_with_config(self.client.clone(), config));
        match tokio::time::timeout(self.operation_timeout, first).await {
            Ok(Ok(connection)) => Ok(connection.clone()),
            Ok(Err(e)) => Err(StoreFailure {
                wrong_type: false,
                error: Error::Store(format!(
                    "cannot connect to Redis at {}: {}",
                    self.target,
                    scrubbed(&e, self.password.as_ref().map(|p| p.as_str()))
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

    /// How long the renewal lock lives if its holder never releases it (default 30 s). Make it
    /// longer than the slowest renewal (the token request's deadline and retries): a renewal
    /// that outlives its lock may run alongside another process's.
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
        self.lock_ttl = ttl.max(Duration::from_millis(1));
        self
    }

    /// How long a renewal waits while another process holds the lock (default 35 s, a little
    /// longer than the default [`lock_ttl`](Self::lock_ttl), so a lock left by a dead process
    /// expires first). The waiter polls with a growing pause (20 ms up to 500 ms); once it has
    /// the lock the source reads the store again and usually finds the other process's token.
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
        self.lock_wait = wait;
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

    /// The Redis key that holds the token for `key`: `<prefix>token:<name>`, where the name is
    /// a keyed digest of the whole key under the store's salt (read from Redis, or created
    /// there, on first use).
    ///
    /// ```no_run
    /// use oauth_layer::{OAuthClient, TokenSource, flow::ClientCredentials, store::RedisStore};
    ///
    /// # async fn run() -> oauth_layer::Result<()> {
    /// let store = RedisStore::connect("redis://127.0.0.1").await?;
    /// let client = OAuthClient::new("id").token_url("https://idp.example/token")?;
    /// let source = TokenSource::builder(client, ClientCredentials::new()).build();
    /// println!("{}", store.entry_key(source.cache_key()).await?);
    /// # Ok(()) }
    /// ```
    pub async fn entry_key(&self, key: &CacheKey) -> Result<String> {
        self.token_key(key).await
    }

    async fn token_key(&self, key: &CacheKey) -> Result<String> {
        Ok(format!(
            "{}token:{}",
            self.prefix,
            self.salt().await?.name(key)
        ))
    }

    async fn lock_key(&self, key: &CacheKey) -> Result<String> {
        Ok(format!(
            "{}lock:{}",
            self.prefix,
            self.salt().await?.name(key)
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
            + EXPIRY_MARGIN;
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
        let mut connection = self.connection().await?;
        match tokio::time::timeout(self.operation_timeout, cmd.query_async(&mut connection)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.failure(what, &e)),
            Err(_) => Err(self.timed_out(what)),
        }
    }

    fn failure(&self, what: &str, e: &RedisError) -> StoreFailure {
        StoreFailure {
            wrong_type: e.code() == Some("WRONGTYPE"),
            error: Error::Store(format!(
                "Redis {what} at {} failed: {}",
                self.target,
                scrubbed(e, self.password.as_ref().map(|p| p.as_str()))
            )),
        }
    }

    fn timed_out(&self, what: &str) -> StoreFailure {
        StoreFailure {
            wrong_type: false,
            error: Error::Store(format!(
                "Redis {what} at {} timed out after {} ms",
                self.target,
                self.operation_timeout.as_millis()
            )),
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

/// A failed call, and whether Redis said the key holds another type (a foreign entry).
struct StoreFailure {
    wrong_type: bool,
    error: Error,
}

#[async_trait]
impl TokenStore for RedisStore {
    async fn load(&self, key: &CacheKey) -> Result<Option<Token>> {
        let name = self.token_key(key).await?;
        let mut cmd = ::redis::cmd("GET");
        cmd.arg(&name);
        let bytes: Option<Vec<u8>> = match self.run("read", &cmd).await {
            Ok(bytes) => bytes,
            Err(f) if f.wrong_type => {
                tracing::warn!(
                    key = %name,
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
                tracing::warn!(key = %name, error = %e, "ignoring a Redis token entry");
                Ok(None)
            }
        }
    }

    async fn save(&self, key: &CacheKey, token: &Token) -> Result<()> {
        let bytes = Zeroizing::new(self.codec.encode(key, token)?);
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(self.token_key(key).await?)
            .arg(&bytes[..])
            .arg("PX")
            .arg(millis(self.entry_ttl(token)));
        let _: () = self.run("write", &cmd).await.map_err(|f| f.error)?;
        Ok(())
    }

    async fn delete(&self, key: &CacheKey) -> Result<()> {
        let mut cmd = ::redis::cmd("DEL");
        cmd.arg(self.token_key(key).await?);
        let _: i64 = self.run("delete", &cmd).await.map_err(|f| f.error)?;
        Ok(())
    }

    /// Takes `<prefix>lock:<digest>`, waiting (polling every 20 ms at first, then less and less
    /// often, up to every 500 ms) while another process holds it, for at most
    /// [`lock_wait`](RedisStore::lock_wait). Fails with [`Error::Store`] when Redis cannot be
    /// reached or the wait runs out; the source then renews without the lock.
    async fn lock(&self, key: &CacheKey) -> Result<Option<Box<dyn RenewalLock>>> {
        // Read the salt again: a process that remembers a replaced one converges here.
        self.read_salt().await?;
        let lock_key = self.lock_key(key).await?;
        let fence = fencing_value()?;
        let deadline = tokio::time::Instant::now() + self.lock_wait;
        let mut pause = LOCK_POLL_MIN;
        loop {
            if self.try_lock(&lock_key, &fence).await? {
                return Ok(Some(Box::new(RedisLock {
                    store: self.clone(),
                    lock_key,
                    fence,
                })));
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(Error::Store(format!(
                    "another process held the Redis renewal lock for more than {} ms",
                    self.lock_wait.as_millis()
                )));
            }
            tokio::time::sleep(jittered(pause).min(deadline - now)).await;
            pause = (pause * 2).min(LOCK_POLL_MAX);
        }
    }
}

/// The lock taken by [`RedisStore::lock`]: freed by [`release`](RenewalLock::release) only while
/// it still holds this holder's fencing value.
struct RedisLock {
    store: RedisStore,
    lock_key: String,
    fence: String,
}

#[async_trait]
impl RenewalLock for RedisLock {
    async fn release(self: Box<Self>) {
        let mut invocation = self.store.release.key(&self.lock_key);
        invocation.arg(&self.fence);
        let error = match self.store.connection().await {
            Ok(connection) => match self.unlock(&invocation, connection).await {
                None => return,
                Some(error) => error,
            },
            Err(failure) => failure.error,
        };
        // The lock expires by itself; this only costs other processes a wait.
        tracing::warn!(error = %error, "Redis renewal lock not released");
    }
}

impl RedisLock {
    /// Runs the release script; the error to log, or `None` when it released this holder's
    /// lock.
    async fn unlock(
        &self,
        invocation: &::redis::ScriptInvocation<'_>,
        mut connection: ConnectionManager,
    ) -> Option<Error> {
        let released = tokio::time::timeout(
            self.store.operation_timeout,
            invocation.invoke_async::<i64>(&mut connection),
        )
        .await;
        match released {
            Ok(Ok(1)) => None,
            Ok(Ok(_)) => Some(Error::Store(
                "the Redis renewal lock expired before it was released; \
                 make lock_ttl longer than the slowest renewal"
                    .into(),
            )),
            Ok(Err(e)) => Some(self.store.failure("unlock", &e).error),
            Err(_) => Some(self.store.timed_out("unlock").error),
        }
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.target)
            .field("prefix", &self.prefix)
            .field("codec", &self.codec)
            .field("lock_ttl", &self.lock_ttl)
            .field("lock_wait", &self.lock_wait)
            .field("operation_timeout", &self.operation_timeout)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
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

/// The text of a Redis error with the password (if it ever appeared) cut out.
fn scrubbed(e: &RedisError, password: Option<&str>) -> String {
    let text = e.to_string();
    match password {
        Some(p) if p.len() >= 4 => text.replace(p, "[redacted]"),
        _ => text,
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

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
