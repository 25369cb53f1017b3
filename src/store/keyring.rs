//! The keyring store: tokens kept in the operating system's keychain (the macOS Keychain, the
//! Windows Credential Manager, the Secret Service on Linux and the BSDs), for programs people
//! run on their own machines.
//!
//! Inside this module `keyring` names the module itself, so the crate is always spelled
//! `::keyring`.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use ::keyring::Entry;
use async_trait::async_trait;
use zeroize::Zeroizing;

use super::lock_file::{FileLock, blocking};
use super::{CacheKey, Codec, KeySalt, RenewalLock, TokenStore};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::token::Token;

/// Names this store in the error a failed blocking task becomes.
const WHAT: &str = "keychain store";

/// The prefix of the default service name; the program's name follows it.
const SERVICE_PREFIX: &str = "oauth-layer";
/// The account (user name) of the entry that holds the store's [`KeySalt`], in hex.
const SALT_ACCOUNT: &str = "cache-key-salt";
/// How long [`TokenStore::lock`] waits for another process's renewal.
const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// Tokens kept in the operating system's keychain: the macOS Keychain, the Windows Credential
/// Manager, or the Secret Service on Linux and the BSDs (GNOME Keyring, KWallet, KeePassXC), so
/// that a person's tokens are protected like their other passwords and survive restarts.
///
/// Every entry belongs to the store's [service](Self::service) (by default `oauth-layer:` and
/// the program's file name, so each program keeps its own; give several programs one
/// [`for_service`](Self::for_service) name to share tokens). Within it:
///
/// - **Names that reveal nothing** (SECURITY.md rule 34): a [`CacheKey`]'s entry is the account
///   [`KeySalt::name`] of the key: an HMAC-SHA256 of the whole key, the digests of its secrets
///   included, under the service's own random salt. The salt is itself a keychain entry
///   (account `cache-key-salt`), created by the first program that uses the service and read by
///   every other, so an entry's name (which keychain viewers show and any program of the user
///   may search for) tells keys apart but cannot be matched against a guessed issuer, client,
///   scope or secret. Deleting the salt entry orphans every token of the service.
/// - **The same bytes as the other stores**: entries are written by a [`Codec`], plain JSON by
///   default (the keychain encrypts it at rest and guards access), or sealed once more with
///   AES-256-GCM under a key of yours with [`encryption_key`](Self::encryption_key).
/// - **Rotation persisted first** (rule 21): [`save`](TokenStore::save) returns only once the
///   keychain has the entry, and the [`TokenSource`](crate::TokenSource) saves a rotated refresh
///   token before it hands out the access token that came with it. Each write replaces the
///   whole entry in one keychain call, so a reader sees the old token or the new one.
/// - **Corrupt entries are misses** (rule 37): an entry that is not one this crate wrote, was
///   sealed under another key or by a newer version of the crate is logged as a warning without
///   its contents and [`load`](TokenStore::load) returns `Ok(None)`; the next save replaces it.
/// - **No secret in sight** (rule 38): `Debug` shows the service and whether entries are sealed,
///   errors and logs name the service and what failed, never a token, the salt or an entry's
///   contents.
/// - **Off the async executor**: every keychain call (a D-Bus round trip, a Keychain or
///   Credential Manager call that may show the operating system's prompt) runs on tokio's
///   blocking threads, one at a time per store and its clones.
///
/// When no keychain can be reached (a Linux server, a container or an SSH session without a
/// D-Bus session bus or without a Secret Service, or a locked keyring that nobody can unlock
/// here), every call fails with an [`Error::Store`] that says what is missing and what to use
/// instead: [`FileStore`](super::FileStore) keeps tokens in private files. The
/// [`TokenSource`](crate::TokenSource) logs such errors and goes on from its memory; call
/// [`check`](Self::check) at start-up to choose another store before any token is needed.
///
/// **One renewal across processes** (rule 33): the keychain has no locks, so
/// [`lock`](TokenStore::lock) takes an exclusive operating-system lock on a file named like the
/// entry (`<name>.lock`, empty) in the [lock directory](Self::locks_in), by default
/// `oauth-layer/keyring-locks` in the user's cache directory, created private (`0700` on Unix).
/// Two programs that find the same token expired then renew once: the second waits, at most the
/// [lock timeout](Self::lock_timeout), and reads the first one's token from the keychain. The
/// operating system frees the lock if the process dies; where the lock cannot be taken the
/// source renews without it.
///
/// The Windows Credential Manager keeps at most 2,560 bytes an entry, which large tokens
/// (several JWTs) can exceed: such a save fails with [`Error::Store`] saying so.
///
/// Cheap to clone; clones share the salt once read.
///
/// ```no_run
/// use oauth_layer::{OAuthClient, TokenSource, flow::ClientCredentials, store::KeyringStore};
///
/// # async fn run() -> oauth_layer::Result<()> {
/// let client = OAuthClient::builder("my-client-id")
///     .secret("s3cret")
///     .token_url("https://idp.example/oauth/token")
///     .build()?;
/// let store = KeyringStore::for_service("my-app");
/// store.check().await?; // fails at once, and says why, where there is no keychain
/// let tokens = TokenSource::builder(client, ClientCredentials::new())
///     .store(store)
///     .build();
/// let token = tokens.token().await?; // read from the keychain if an earlier run left one
/// # let _ = token; Ok(()) }
/// ```
#[derive(Clone)]
#[must_use]
pub struct KeyringStore {
    service: Arc<str>,
    codec: Codec,
    clock: Arc<dyn Clock>,
    /// The salt read from (or written to) the keychain, once known; the lock also makes the
    /// store's keychain calls one at a time, as the Secret Service needs.
    salt: Arc<Mutex<Option<KeySalt>>>,
    /// Where the renewal lock files live; `None` when the user has no cache directory.
    lock_dir: Option<Arc<Path>>,
    lock_timeout: Duration,
}

impl KeyringStore {
    /// A store under the service `oauth-layer:<program>`, where `<program>` is the file name of
    /// the running executable without its extension (`oauth-layer` alone if that is unknown).
    /// Nothing is read until the store is first used.
    ///
    /// ```
    /// use oauth_layer::store::KeyringStore;
    ///
    /// let store = KeyringStore::new();
    /// assert!(store.service().starts_with("oauth-layer"));
    /// ```
    pub fn new() -> Self {
        let program = std::env::current_exe().ok().and_then(|path| {
            path.file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
                .filter(|stem| !stem.is_empty())
        });
        Self::for_service(match program {
            Some(program) => format!("{SERVICE_PREFIX}:{program}"),
            None => SERVICE_PREFIX.to_owned(),
        })
    }

    /// A store under the service `service`: what keychain viewers list the entries under, and
    /// what every program that shares these tokens must name. Nothing is read until the store
    /// is first used.
    ///
    /// ```
    /// use oauth_layer::store::KeyringStore;
    ///
    /// let store = KeyringStore::for_service("my-app");
    /// assert_eq!(store.service(), "my-app");
    /// ```
    pub fn for_service(service: impl Into<String>) -> Self {
        Self {
            service: service.into().into(),
            codec: Codec::plain(),
            clock: Arc::new(SystemClock),
            salt: Arc::default(),
            lock_dir: dirs::cache_dir()
                .map(|dir| Arc::from(dir.join("oauth-layer").join("keyring-locks"))),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
        }
    }

    /// The service every entry of this store belongs to.
    ///
    /// ```
    /// let store = oauth_layer::store::KeyringStore::for_service("my-app");
    /// assert_eq!(store.service(), "my-app");
    /// ```
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The directory of the renewal lock files, if the user has one (see
    /// [`locks_in`](Self::locks_in)).
    ///
    /// ```
    /// use oauth_layer::store::KeyringStore;
    ///
    /// let store = KeyringStore::for_service("my-app").locks_in("/tmp/my-app-locks");
    /// assert_eq!(store.lock_dir(), Some(std::path::Path::new("/tmp/my-app-locks")));
    /// ```
    pub fn lock_dir(&self) -> Option<&Path> {
        self.lock_dir.as_deref()
    }

    /// How entries are written (default [`Codec::plain`]: JSON, which the keychain encrypts at
    /// rest). Every program sharing the service must use the same codec; an entry another codec
    /// cannot read is a miss.
    ///
    /// ```
    /// use oauth_layer::store::{Codec, KeyringStore};
    ///
    /// let key = [7u8; 32]; // from a secret manager, not a constant
    /// let store = KeyringStore::for_service("my-app").codec(Codec::encrypted(key));
    /// # let _ = store;
    /// ```
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Seals entries with AES-256-GCM under `key` as well (shorthand for
    /// `.codec(Codec::encrypted(key))`): what the keychain holds then never contains the
    /// tokens, and an entry sealed under another key is a miss.
    ///
    /// ```
    /// let key = [7u8; 32]; // from a secret manager, not a constant
    /// let store = oauth_layer::store::KeyringStore::for_service("my-app").encryption_key(key);
    /// # let _ = store;
    /// ```
    pub fn encryption_key(self, key: [u8; 32]) -> Self {
        self.codec(Codec::encrypted(key))
    }

    /// The clock that places a loaded token's expiry in this process's time (default: the
    /// system clock). Give it the same clock as the [`OAuthClient`](crate::OAuthClient) when
    /// that one is not the system clock (tests with a
    /// [`ManualClock`](crate::clock::ManualClock)).
    ///
    /// ```
    /// use oauth_layer::{OAuthClient, clock::ManualClock, store::KeyringStore};
    ///
    /// let clock = ManualClock::new();
    /// let client = OAuthClient::builder("id").clock(clock.clone()).build()?;
    /// let store = KeyringStore::for_service("my-app").clock(clock);
    /// # let _ = (client, store);
    /// # Ok::<(), oauth_layer::Error>(())
    /// ```
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The directory of the renewal lock files (default: `oauth-layer/keyring-locks` in the
    /// user's cache directory, `~/.cache` on Linux). Created with mode `0700` if missing; an
    /// existing one that other users may enter is refused (the lock then fails with
    /// [`Error::Store`], and the source renews without it). Every program sharing the service
    /// must use the same directory. It holds only empty files named by keyed digests.
    ///
    /// ```
    /// let store = oauth_layer::store::KeyringStore::for_service("my-app")
    ///     .locks_in("/run/user/1000/my-app-locks");
    /// assert!(store.lock_dir().unwrap().ends_with("my-app-locks"));
    /// ```
    pub fn locks_in(mut self, dir: impl Into<PathBuf>) -> Self {
        self.lock_dir = Some(Arc::from(dir.into()));
        self
    }

    /// How long [`lock`](TokenStore::lock) waits while another process renews the same token
    /// (default 30 s). After it, the lock fails with [`Error::Store`] and the source renews
    /// without it. Interactive sign-ins hold the lock while the person signs in, so raise it if
    /// several programs may start one at the same time.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let store = oauth_layer::store::KeyringStore::for_service("my-app")
    ///     .lock_timeout(Duration::from_secs(120));
    /// # let _ = store;
    /// ```
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Reaches the keychain now, reading the service's salt (or creating it, for a new
    /// service), so that a program learns at start-up whether the keychain works here and can
    /// choose another store if not. Fails with the same [`Error::Store`] any use of the store
    /// would.
    ///
    /// ```no_run
    /// use oauth_layer::{OAuthClient, TokenSource, flow::ClientCredentials};
    /// use oauth_layer::store::{FileStore, KeyringStore};
    ///
    /// # async fn run(client: OAuthClient) -> oauth_layer::Result<()> {
    /// let builder = TokenSource::builder(client, ClientCredentials::new());
    /// let keyring = KeyringStore::for_service("my-app");
    /// let tokens = match keyring.check().await {
    ///     Ok(()) => builder.store(keyring),
    ///     Err(why) => {
    ///         eprintln!("{why}; keeping tokens in files instead");
    ///         builder.store(FileStore::new()?)
    ///     }
    /// }
    /// .build();
    /// # let _ = tokens; Ok(()) }
    /// ```
    pub async fn check(&self) -> Result<()> {
        let store = self.clone();
        blocking(WHAT, move || store.salt(&mut store.locked()).map(drop)).await
    }

    /// The account name of `key`'s entry in the keychain (under [`service`](Self::service)):
    /// a keyed digest of the key under the service's salt, 64 hex digits, for finding the entry
    /// in a keychain viewer. Reads (or creates) the salt, so it may wait for the keychain; it
    /// fails with [`Error::Store`] as any use of the store would.
    ///
    /// ```no_run
    /// use oauth_layer::{OAuthClient, TokenSource, flow::ClientCredentials, store::KeyringStore};
    ///
    /// # async fn run() -> oauth_layer::Result<()> {
    /// let store = KeyringStore::for_service("my-app");
    /// let client = OAuthClient::builder("id").token_url("https://idp.example/token").build()?;
    /// let source = TokenSource::builder(client, ClientCredentials::new()).build();
    /// println!("{} / {}", store.service(), store.entry_name(source.cache_key()).await?);
    /// # Ok(()) }
    /// ```
    pub async fn entry_name(&self, key: &CacheKey) -> Result<String> {
        let (store, key) = (self.clone(), key.clone());
        blocking(WHAT, move || {
            Ok(store.salt(&mut store.locked())?.name(&key))
        })
        .await
    }

    /// The keychain entry for `account` under the service.
    fn entry(&self, account: &str, doing: &str) -> Result<Entry> {
        Entry::new(&self.service, account).map_err(|e| self.failure(doing, e))
    }

    /// The store's lock, which every keychain call is made under (the Secret Service does not
    /// take concurrent calls from one program well), with the salt once known.
    fn locked(&self) -> MutexGuard<'_, Option<KeySalt>> {
        self.salt.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The salt: the one `held` knows, or else the keychain's (created there if needed).
    fn salt(&self, held: &mut Option<KeySalt>) -> Result<KeySalt> {
        if let Some(salt) = held {
            return Ok(salt.clone());
        }
        let salt = self.read_or_create_salt()?;
        *held = Some(salt.clone());
        Ok(salt)
    }

    fn read_or_create_salt(&self) -> Result<KeySalt> {
        const DOING: &str = "read this store's salt";
        let entry = self.entry(SALT_ACCOUNT, DOING)?;
        match entry.get_secret() {
            Ok(text) => return self.parse_salt(&Zeroizing::new(text)),
            Err(::keyring::Error::NoEntry) => {}
            Err(e) => return Err(self.failure(DOING, e)),
        }
        let salt = KeySalt::generate()?;
        entry
            .set_secret(salt.to_hex().as_bytes())
            .map_err(|e| self.failure("create this store's salt", e))?;
        // Read it back: when two programs create the salt at once, the keychain keeps the
        // later one, and both go on with it.
        match entry.get_secret() {
            Ok(text) => self.parse_salt(&Zeroizing::new(text)),
            Err(e) => Err(self.failure(DOING, e)),
        }
    }

    fn parse_salt(&self, text: &[u8]) -> Result<KeySalt> {
        KeySalt::from_hex(text).ok_or_else(|| {
            Error::Store(format!(
                "refusing the keychain entry `{SALT_ACCOUNT}` of the service `{}`: it is not a \
                 salt this crate wrote; delete it (the cached tokens are then fetched again)",
                self.service
            ))
        })
    }

    fn load_blocking(&self, key: &CacheKey) -> Result<Loaded> {
        let mut held = self.locked();
        let name = self.salt(&mut held)?.name(key);
        let bytes = match self.entry(&name, "read a token")?.get_secret() {
            Ok(bytes) => Zeroizing::new(bytes),
            Err(::keyring::Error::NoEntry) => return Ok(Loaded::Missing),
            Err(e) => return Err(self.failure("read a token", e)),
        };
        Ok(match self.codec.decode(key, &bytes, &*self.clock) {
            Ok(token) => Loaded::Token(token),
            Err(why) => Loaded::Corrupt { name, why },
        })
    }

    fn save_blocking(&self, key: &CacheKey, bytes: &[u8]) -> Result<()> {
        let mut held = self.locked();
        let name = self.salt(&mut held)?.name(key);
        self.entry(&name, "save a token")?
            .set_secret(bytes)
            .map_err(|e| self.failure("save a token", e))
    }

    fn delete_blocking(&self, key: &CacheKey) -> Result<()> {
        let mut held = self.locked();
        let name = self.salt(&mut held)?.name(key);
        match self.entry(&name, "delete a token")?.delete_credential() {
            Ok(()) | Err(::keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(self.failure("delete a token", e)),
        }
    }

    /// Takes the renewal lock file for `key`, waiting at most the lock timeout.
    fn lock_blocking(&self, key: &CacheKey) -> Result<FileLock> {
        let name = {
            let mut held = self.locked();
            self.salt(&mut held)?.name(key)
        };
        let Some(dir) = self.lock_dir.as_deref() else {
            return Err(Error::Store(
                "no directory for the keychain's renewal locks is known (no cache directory): \
                 set one with `KeyringStore::locks_in`"
                    .into(),
            ));
        };
        let path = dir.join(format!("{name}.lock"));
        // Handed over once, when locked: the loop ends there.
        let mut file = Some(open_lock_file(dir, &format!("{name}.lock"))?);
        FileLock::wait(self.lock_timeout, &path, || {
            let Some(held) = file.as_ref() else {
                return Ok(None);
            };
            match fs4::FileExt::try_lock(held) {
                Ok(()) => Ok(file.take()),
                Err(fs4::TryLockError::WouldBlock) => Ok(None),
                Err(fs4::TryLockError::Error(e)) => Err(Error::Store(format!(
                    "cannot lock the keychain renewal lock {}: {e}",
                    path.display()
                ))),
            }
        })
    }

    /// An [`Error::Store`] for a keychain call that failed while trying to do `doing`: what
    /// went wrong and what to do, never an entry's contents.
    fn failure(&self, doing: &str, e: ::keyring::Error) -> Error {
        let service = &self.service;
        match e {
            ::keyring::Error::PlatformFailure(cause) | ::keyring::Error::NoStorageAccess(cause) => {
                Error::Store(unreachable(service, doing, &chain(&*cause)))
            }
            ::keyring::Error::TooLong(what, limit) => Error::Store(format!(
                "cannot {doing} in the keychain (service `{service}`): the {what} is longer than \
                 this keychain keeps ({limit}); the Windows Credential Manager holds at most \
                 2560 bytes an entry. Keep tokens this large in a FileStore instead"
            )),
            ::keyring::Error::Ambiguous(items) => Error::Store(format!(
                "cannot {doing} in the keychain (service `{service}`): {} items match one entry; \
                 delete the duplicates (the tokens are then fetched again)",
                items.len()
            )),
            ::keyring::Error::BadEncoding(_) => Error::Store(format!(
                "cannot {doing} in the keychain (service `{service}`): the keychain returned an \
                 entry it could not decode"
            )),
            other => Error::Store(format!(
                "cannot {doing} in the keychain (service `{service}`): {other}"
            )),
        }
    }
}

impl Default for KeyringStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for KeyringStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyringStore")
            .field("service", &self.service)
            .field("codec", &self.codec)
            .field("lock_dir", &self.lock_dir)
            .field("lock_timeout", &self.lock_timeout)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl TokenStore for KeyringStore {
    async fn load(&self, key: &CacheKey) -> Result<Option<Token>> {
        let (store, owned_key) = (self.clone(), key.clone());
        match blocking(WHAT, move || store.load_blocking(&owned_key)).await? {
            Loaded::Missing => Ok(None),
            Loaded::Token(token) => Ok(Some(token)),
            Loaded::Corrupt { name, why } => {
                tracing::warn!(
                    service = %self.service,
                    entry = %name,
                    reason = %why,
                    "unreadable keychain entry; treating it as a miss (the next save replaces it)"
                );
                Ok(None)
            }
        }
    }

    async fn save(&self, key: &CacheKey, token: &Token) -> Result<()> {
        let bytes = Zeroizing::new(self.codec.encode(key, token)?);
        let (store, key) = (self.clone(), key.clone());
        blocking(WHAT, move || store.save_blocking(&key, &bytes)).await
    }

    async fn delete(&self, key: &CacheKey) -> Result<()> {
        let (store, key) = (self.clone(), key.clone());
        blocking(WHAT, move || store.delete_blocking(&key)).await
    }

    async fn lock(&self, key: &CacheKey) -> Result<Option<Box<dyn RenewalLock>>> {
        let (store, key) = (self.clone(), key.clone());
        let lock = blocking(WHAT, move || store.lock_blocking(&key)).await?;
        Ok(Some(Box::new(lock)))
    }
}

/// Opens (creating) the lock file `name` in `dir`, creating `dir` private if it is missing and
/// refusing it if others may enter it.
fn open_lock_file(dir: &Path, name: &str) -> Result<File> {
    let failed = |doing: &str, path: &Path, e: std::io::Error| {
        Error::Store(format!("cannot {doing} {}: {e}", path.display()))
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| failed("create the keychain's lock directory", dir, e))?;
    let meta = std::fs::symlink_metadata(dir)
        .map_err(|e| failed("inspect the keychain's lock directory", dir, e))?;
    if !meta.is_dir() {
        return Err(Error::Store(format!(
            "refusing the keychain's lock directory {}: it is not a directory",
            dir.display()
        )));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(Error::Store(format!(
                "refusing the keychain's lock directory {}: other users may use it (mode \
                 {mode:o}); give the store a directory of its own with `KeyringStore::locks_in`",
                dir.display()
            )));
        }
    }
    let path = dir.join(name);
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(&path)
        .map_err(|e| failed("open the keychain renewal lock", &path, e))
}

/// What reading an entry found.
enum Loaded {
    Missing,
    Token(Token),
    Corrupt { name: String, why: Error },
}

/// An error and its sources, one line.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// The message for a keychain that cannot be reached or used, with what is missing and what to
/// do about it.
fn unreachable(service: &str, doing: &str, cause: &str) -> String {
    format!(
        "cannot {doing} in the keychain (service `{service}`): {}. (The keychain said: {cause})",
        advice(cause)
    )
}

/// What is missing and what to do, on the Secret Service platforms.
#[cfg(all(
    unix,
    not(any(target_os = "macos", target_os = "ios", target_os = "android"))
))]
fn advice(cause: &str) -> String {
    const INSTEAD: &str = "To keep tokens without a keychain, use `store::FileStore` (private \
                           files, with `encryption_key` for encryption at rest) instead; to use \
                           the keychain here, run the program in a desktop session, or start a \
                           Secret Service with `dbus-run-session` and an unlocked \
                           `gnome-keyring-daemon --components=secrets`";
    let lower = cause.to_ascii_lowercase();
    let missing = if lower.contains("serviceunknown")
        || lower.contains("org.freedesktop.secrets")
        || lower.contains("interface not found")
    {
        "no Secret Service is running on the D-Bus session bus: no keyring daemon (GNOME \
         Keyring, KWallet, KeePassXC) provides `org.freedesktop.secrets` here"
            .to_owned()
    } else if lower.contains("locked") || lower.contains("prompt") || lower.contains("not returned")
    {
        "the Secret Service's keyring is locked (or has no default collection), and unlocking \
         it needs a prompt nobody can answer here: unlock the login keyring first"
            .to_owned()
    } else {
        match std::env::var("DBUS_SESSION_BUS_ADDRESS") {
            Ok(address) if !address.is_empty() => format!(
                "the D-Bus session bus at DBUS_SESSION_BUS_ADDRESS={address} cannot be reached, \
                 or no Secret Service answers on it"
            ),
            _ => "there is no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set), as on a \
                  server, in a container or over SSH, so no Secret Service (the Linux keychain) \
                  can be reached"
                .to_owned(),
        }
    };
    format!("{missing}. {INSTEAD}")
}

/// What to do, on macOS and Windows.
#[cfg(not(all(
    unix,
    not(any(target_os = "macos", target_os = "ios", target_os = "android"))
)))]
fn advice(cause: &str) -> String {
    let _ = cause;
    "the system keychain refused or could not be reached (it may be locked, or this session may \
     have no access to it). Use `store::FileStore` (private files, with `encryption_key` for \
     encryption at rest) where the keychain is not available"
        .to_owned()
}
