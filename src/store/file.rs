//! The secure file store: one file per cache key in a private directory, written atomically and
//! locked across processes, so that every program of a user shares one token per key
//! (SECURITY.md rules 33, 35, 36 and 37).

#[cfg(not(unix))]
compile_error!("the `file-store` feature needs a Unix system");

use std::fmt;
use std::fs::{File, Metadata, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use zeroize::Zeroizing;

use super::lock_file::{FileLock, blocking};
use super::salt::hex;
use super::{CacheKey, Codec, KeySalt, MAX_ENTRY, RenewalLock, TokenStore};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::token::Token;

/// Names this store in the error a failed blocking task becomes.
const WHAT: &str = "token file store";

/// The environment variable naming the cache directory, when set and not empty.
const CACHE_ENV: &str = "OAUTH_LAYER_CACHE";
/// Entries (and moved-aside corrupt files) not modified for this long are removed.
const DEFAULT_PRUNE_AFTER: Duration = Duration::from_secs(90 * 24 * 60 * 60);
/// How long [`TokenStore::lock`] waits for another process's renewal.
const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);
/// A temporary file this old was left by a writer that died before its rename.
const TEMP_MAX_AGE: Duration = Duration::from_secs(60 * 60);
/// The file that holds the directory's [`KeySalt`], in hex.
const SALT_FILE: &str = "cache-key.salt";

/// Tokens kept in files, shared by every process of the user that uses the same directory.
///
/// Each [`CacheKey`] has its own file, `<dir>/<name>.json`, holding one entry written by a
/// [`Codec`] (plain JSON by default, or sealed with AES-256-GCM under a key of yours with
/// [`encryption_key`](Self::encryption_key)). The directory is, in order of preference,
/// [`in_dir`](Self::in_dir), `$OAUTH_LAYER_CACHE`, or `oauth-layer` in the user's cache directory
/// (`~/.cache/oauth-layer` on Linux, `~/Library/Caches/oauth-layer` on macOS).
///
/// What the store guarantees:
///
/// - **Private files** (rule 35): the directory is created with mode `0700` and every file with
///   `0600`, at creation, whatever the umask. An existing directory is used only if it is
///   already private (no permission for group or others) and ours: the store never changes the
///   permissions of a directory it did not create, since it may hold files that others need.
///   So give the store a directory of its own, one that does not exist yet. A directory that
///   others may use, a directory or file that is a symbolic link, is not a directory or regular
///   file, or is owned by another user is *refused* with [`Error::Store`] naming the path, the
///   reason and what to do; a refused file or directory is left untouched. (An entry of ours
///   that someone opened up is restricted to `0600` again, with a warning.)
/// - **Names that reveal nothing** (rule 34): an entry's name is
///   [`KeySalt::name`] of its key: an HMAC-SHA256 of the whole key, the digests of its secrets
///   included, under the directory's own random salt, kept in `<dir>/cache-key.salt` (mode
///   `0600`, checked like the entries). Without the salt a file name cannot be matched against
///   a guessed password or client secret. The first process to use the directory creates the
///   salt (written whole, then linked into place, so concurrent processes agree on one); every
///   store on the directory reads it, so they all map a key to the same file. Removing the
///   salt file orphans every entry (they are pruned in time); a salt file that is not one is
///   refused.
/// - **Atomic writes** (rule 36): a token is written to a temporary file with a random name in
///   the same directory, flushed to disk, renamed over the entry, and the directory is flushed.
///   A reader sees the old token or the new one, never a mix, even if the writer is killed.
/// - **Corrupt files are misses** (rule 37): an entry that is truncated, not JSON, sealed under
///   another key, or written by a newer version of the crate is renamed to
///   `<name>.corrupt-<unix time>`, a warning without its contents is logged, and
///   [`load`](TokenStore::load) returns `Ok(None)`.
/// - **One renewal across processes** (rule 33): [`lock`](TokenStore::lock) takes an exclusive
///   operating-system lock on `<name>.lock`, waiting at most the
///   [lock timeout](Self::lock_timeout) (default 30 s; the source renews without the lock after
///   it). The operating system frees the lock if the process dies.
/// - **Pruning**: files not modified for longer than [`prune_after`](Self::prune_after) (default
///   90 days) are removed when a store is first used and after every save: entries and their
///   lock files (only when no process holds the lock), and moved-aside corrupt files. Temporary
///   files left by a writer that died are removed after an hour. The salt file is never
///   pruned, and files whose names the store did not make are never touched.
///
/// All file work runs on tokio's blocking threads. The store is cheap to clone; clones share
/// their settings as they were when cloned.
///
/// ```no_run
/// use oauth_layer::{OAuthClient, TokenSource, flow::ClientCredentials, store::FileStore};
///
/// # async fn run() -> oauth_layer::Result<()> {
/// let client = OAuthClient::builder("my-client-id")
///     .secret("s3cret")
///     .token_url("https://idp.example/oauth/token")
///     .build()?;
/// let store = FileStore::new()?; // $OAUTH_LAYER_CACHE or ~/.cache/oauth-layer
/// let tokens = TokenSource::builder(client, ClientCredentials::new())
///     .store(store)
///     .build();
/// let token = tokens.token().await?; // read from the file if another run left a fresh one
/// # let _ = token; Ok(()) }
/// ```
#[derive(Clone)]
#[must_use]
pub struct FileStore {
    dir: Arc<Path>,
    codec: Codec,
    clock: Arc<dyn Clock>,
    prune_after: Duration,
    lock_timeout: Duration,
    /// Set once the store has been used (and pruned) in this process.
    opened: Arc<AtomicBool>,
}

impl FileStore {
    /// A store in the default directory: `$OAUTH_LAYER_CACHE` if it is set and not empty, else
    /// `oauth-layer` in the user's cache directory. Nothing is created or read until the store
    /// is first used; the directory is then checked as for [`in_dir`](Self::in_dir).
    ///
    /// Fails with [`Error::Store`] when neither is known (no `$HOME`).
    ///
    /// ```no_run
    /// use oauth_layer::store::FileStore;
    ///
    /// let store = FileStore::new()?;
    /// println!("tokens live in {}", store.dir().display());
    /// # Ok::<(), oauth_layer::Error>(())
    /// ```
    pub fn new() -> Result<Self> {
        Ok(Self::in_dir(default_dir()?))
    }

    /// A store in `dir`, created with mode `0700` on first use if it does not exist. If it
    /// exists, it must be private (mode `0700`, or narrower) and ours: a directory that other
    /// users may enter is refused on first use with [`Error::Store`], never narrowed, so point
    /// the store at a directory of its own.
    ///
    /// ```no_run
    /// use oauth_layer::store::FileStore;
    ///
    /// let store = FileStore::in_dir("/run/user/1000/my-app-tokens");
    /// # let _ = store;
    /// ```
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: Arc::from(dir.into()),
            codec: Codec::plain(),
            clock: Arc::new(SystemClock),
            prune_after: DEFAULT_PRUNE_AFTER,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            opened: Arc::new(AtomicBool::new(false)),
        }
    }

    /// How entries are written (default [`Codec::plain`]: JSON protected by the file
    /// permissions). Every process sharing the directory must use the same codec; an entry
    /// another codec cannot read is a miss.
    ///
    /// ```no_run
    /// use oauth_layer::store::{Codec, FileStore};
    ///
    /// let key = [7u8; 32]; // from the system keychain or a secret manager, not a constant
    /// let store = FileStore::new()?.codec(Codec::encrypted(key));
    /// # let _ = store; Ok::<(), oauth_layer::Error>(())
    /// ```
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Seals entries with AES-256-GCM under `key` (shorthand for
    /// `.codec(Codec::encrypted(key))`): the files then never contain the tokens, which matters
    /// when the disk is backed up or shared.
    ///
    /// ```no_run
    /// use oauth_layer::store::FileStore;
    ///
    /// let key = [7u8; 32]; // from the system keychain or a secret manager, not a constant
    /// let store = FileStore::new()?.encryption_key(key);
    /// # let _ = store; Ok::<(), oauth_layer::Error>(())
    /// ```
    pub fn encryption_key(self, key: [u8; 32]) -> Self {
        self.codec(Codec::encrypted(key))
    }

    /// Removes entries not modified for longer than `age` (default 90 days), when the store is
    /// first used and after every save, so that tokens of clients no longer used do not stay
    /// on disk forever. `Duration::MAX` keeps everything.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use oauth_layer::store::FileStore;
    ///
    /// let store = FileStore::new()?.prune_after(Duration::from_secs(7 * 24 * 3600));
    /// # let _ = store; Ok::<(), oauth_layer::Error>(())
    /// ```
    pub fn prune_after(mut self, age: Duration) -> Self {
        self.prune_after = age;
        self
    }

    /// How long [`lock`](TokenStore::lock) waits while another process renews the same token
    /// (default 30 s). After it, the lock fails with [`Error::Store`] and the source renews
    /// without it. Interactive sign-ins hold the lock while the person signs in, so raise it if
    /// several programs may start one at the same time.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use oauth_layer::store::FileStore;
    ///
    /// let store = FileStore::new()?.lock_timeout(Duration::from_secs(120));
    /// # let _ = store; Ok::<(), oauth_layer::Error>(())
    /// ```
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// The clock that places a loaded token's expiry in this process's time (default: the
    /// system clock). Give it the same clock as the [`OAuthClient`](crate::OAuthClient) when
    /// that one is not the system clock (tests with a
    /// [`ManualClock`](crate::clock::ManualClock)).
    ///
    /// ```no_run
    /// use oauth_layer::{OAuthClient, clock::ManualClock, store::FileStore};
    ///
    /// let clock = ManualClock::new();
    /// let client = OAuthClient::builder("id").clock(clock.clone()).build()?;
    /// let store = FileStore::in_dir("/tmp/tokens").clock(clock);
    /// # let _ = (client, store);
    /// # Ok::<(), oauth_layer::Error>(())
    /// ```
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The directory the store keeps its files in.
    ///
    /// ```no_run
    /// use oauth_layer::store::FileStore;
    ///
    /// assert!(FileStore::in_dir("/tmp/tokens").dir().ends_with("tokens"));
    /// ```
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file that holds the token for `key` (it may not exist). Its name is a keyed digest
    /// of the key under the directory's salt, so this reads the salt, creating the directory
    /// and the salt first if they do not exist yet: that is blocking file work, and it fails
    /// with [`Error::Store`] as any use of the store would (a refused directory, for example).
    ///
    /// ```no_run
    /// use oauth_layer::{OAuthClient, TokenSource, flow::ClientCredentials, store::FileStore};
    ///
    /// let store = FileStore::in_dir("/tmp/tokens");
    /// let client = OAuthClient::builder("id").token_url("https://idp.example/token").build()?;
    /// let source = TokenSource::builder(client, ClientCredentials::new()).build();
    /// println!("{}", store.path(source.cache_key())?.display());
    /// # Ok::<(), oauth_layer::Error>(())
    /// ```
    pub fn path(&self, key: &CacheKey) -> Result<PathBuf> {
        let dir = CacheDir::open(&self.dir)?;
        Ok(dir.path(&dir.entry_name(key)))
    }

    /// The directory, checked and open, pruned on the first use in this process.
    fn open(&self) -> Result<CacheDir> {
        let dir = CacheDir::open(&self.dir)?;
        if !self.opened.swap(true, Ordering::AcqRel) {
            self.prune(&dir);
        }
        Ok(dir)
    }

    fn load_blocking(&self, key: &CacheKey) -> Result<Loaded> {
        let dir = self.open()?;
        let name = dir.entry_name(key);
        let entry = dir.path(&name);
        // A writer may replace the entry while a corrupt one is moved aside; then read again.
        for _ in 0..3 {
            let Some((mut file, meta)) = dir.open_file(&name, OFlags::RDONLY, Mode::empty())?
            else {
                return Ok(Loaded::Missing);
            };
            let mut bytes = Zeroizing::new(Vec::new());
            (&mut file)
                .take(MAX_ENTRY as u64 + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| io_error("cannot read the token cache file", &dir.path(&name), &e))?;
            let why = match self.codec.decode(key, &bytes, &*self.clock) {
                Ok(token) => return Ok(Loaded::Token(token)),
                Err(why) => why,
            };
            match dir.move_aside(&name, &meta) {
                Ok(Some(aside)) => {
                    return Ok(Loaded::Corrupt(Box::new(Unreadable {
                        file: entry,
                        why,
                        moved_to: Ok(aside),
                    })));
                }
                Ok(None) => continue,
                Err(e) => {
                    return Ok(Loaded::Corrupt(Box::new(Unreadable {
                        file: entry,
                        why,
                        moved_to: Err(e),
                    })));
                }
            }
        }
        Ok(Loaded::Missing)
    }

    fn save_blocking(&self, key: &CacheKey, bytes: &[u8]) -> Result<()> {
        let dir = CacheDir::open(&self.dir)?;
        self.opened.store(true, Ordering::Release);
        let name = dir.entry_name(key);
        dir.check_existing(&name)?;

        let mut random = [0u8; 8];
        getrandom::fill(&mut random)
            .map_err(|e| Error::Internal(format!("no system randomness: {e}")))?;
        let temp = format!(".{name}.tmp-{}", hex(&random));
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL;
        let Some((mut file, meta)) = dir.open_file(&temp, flags, Mode::RUSR | Mode::WUSR)? else {
            return Err(Error::Store(format!(
                "cannot create a temporary file in the token cache directory {}",
                dir.path.display()
            )));
        };
        let written = (|| {
            if meta.mode() & 0o777 != 0o600 {
                file.set_permissions(Permissions::from_mode(0o600))?;
            }
            file.write_all(bytes)?;
            file.sync_all()?;
            rustix::fs::renameat(&dir.fd, temp.as_str(), &dir.fd, name.as_str())?;
            io::Result::Ok(())
        })();
        if let Err(e) = written {
            let _ = rustix::fs::unlinkat(&dir.fd, temp.as_str(), AtFlags::empty());
            return Err(io_error(
                "cannot write the token cache file",
                &dir.path(&name),
                &e,
            ));
        }
        dir.sync()?;
        self.prune(&dir);
        Ok(())
    }

    fn delete_blocking(&self, key: &CacheKey) -> Result<()> {
        let dir = self.open()?;
        let name = dir.entry_name(key);
        match rustix::fs::unlinkat(&dir.fd, name.as_str(), AtFlags::empty()) {
            Ok(()) => dir.sync(),
            Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(io_error(
                "cannot delete the token cache file",
                &dir.path(&name),
                &e.into(),
            )),
        }
    }

    fn lock_blocking(&self, key: &CacheKey) -> Result<FileLock> {
        let dir = self.open()?;
        let name = dir.lock_name(key);
        FileLock::wait(self.lock_timeout, &dir.path(&name), || dir.try_lock(&name))
    }

    /// Removes stale files (see the type's docs). Best effort: a file that cannot be removed
    /// now is tried again next time.
    fn prune(&self, dir: &CacheDir) {
        let now = SystemTime::now();
        let Some(cutoff) = now.checked_sub(self.prune_after) else {
            return;
        };
        let temp_cutoff = now.checked_sub(TEMP_MAX_AGE).unwrap_or(cutoff);
        let Ok(entries) = std::fs::read_dir(&dir.path) else {
            return;
        };
        let mut removed = 0usize;
        for entry in entries.flatten() {
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let Some(kind) = Kind::of(&name) else {
                continue;
            };
            let Ok(meta) = std::fs::symlink_metadata(dir.path(&name)) else {
                continue;
            };
            if !meta.file_type().is_file() || meta.uid() != euid() {
                continue;
            }
            let Ok(modified) = meta.modified() else {
                continue;
            };
            removed += match kind {
                Kind::Temp if modified < temp_cutoff => usize::from(dir.unlink(&name)),
                Kind::Corrupt if modified < cutoff => usize::from(dir.unlink(&name)),
                Kind::Entry(digest) if modified < cutoff => dir.prune_key(digest, cutoff),
                Kind::Lock(digest)
                    if modified < cutoff && !dir.exists(&format!("{digest}.json")) =>
                {
                    dir.prune_key(digest, cutoff)
                }
                _ => 0,
            };
        }
        if removed > 0 {
            let _ = dir.sync();
            tracing::debug!(dir = %dir.path.display(), removed, "pruned stale token cache files");
        }
    }
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStore")
            .field("dir", &self.dir)
            .field("codec", &self.codec)
            .field("prune_after", &self.prune_after)
            .field("lock_timeout", &self.lock_timeout)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl TokenStore for FileStore {
    async fn load(&self, key: &CacheKey) -> Result<Option<Token>> {
        let (store, owned_key) = (self.clone(), key.clone());
        match blocking(WHAT, move || store.load_blocking(&owned_key)).await? {
            Loaded::Missing => Ok(None),
            Loaded::Token(token) => Ok(Some(token)),
            Loaded::Corrupt(unreadable) => {
                let Unreadable {
                    file,
                    why,
                    moved_to,
                } = *unreadable;
                match moved_to {
                    Ok(aside) => tracing::warn!(
                        file = %file.display(),
                        moved_to = %self.dir.join(aside).display(),
                        reason = %why,
                        "unreadable token cache file moved aside; treating it as a miss"
                    ),
                    Err(e) => tracing::warn!(
                        file = %file.display(),
                        reason = %why,
                        error = %e,
                        "unreadable token cache file could not be moved aside; treating it as a miss"
                    ),
                }
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

/// What reading an entry found.
enum Loaded {
    Missing,
    Token(Token),
    Corrupt(Box<Unreadable>),
}

/// An unreadable entry, why, and the name it was moved to (or why it could not be).
struct Unreadable {
    file: PathBuf,
    why: Error,
    moved_to: std::result::Result<String, Error>,
}

/// The files the store makes; anything else in the directory is left alone.
enum Kind<'a> {
    Entry(&'a str),
    Lock(&'a str),
    Corrupt,
    Temp,
}

impl<'a> Kind<'a> {
    fn of(name: &'a str) -> Option<Self> {
        let is_digest = |s: &str| {
            s.len() == 64
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if let Some(rest) = name.strip_prefix('.') {
            if let Some(suffix) = rest
                .strip_prefix(SALT_FILE)
                .and_then(|r| r.strip_prefix(".tmp-"))
            {
                return (!suffix.is_empty()).then_some(Kind::Temp);
            }
            let (digest, suffix) = rest.split_once(".json.tmp-")?;
            return (is_digest(digest) && !suffix.is_empty()).then_some(Kind::Temp);
        }
        if let Some(digest) = name.strip_suffix(".json") {
            return is_digest(digest).then_some(Kind::Entry(digest));
        }
        if let Some(digest) = name.strip_suffix(".lock") {
            return is_digest(digest).then_some(Kind::Lock(digest));
        }
        let (digest, time) = name.split_once(".json.corrupt-")?;
        (is_digest(digest) && !time.is_empty() && time.bytes().all(|b| b.is_ascii_digit()))
            .then_some(Kind::Corrupt)
    }
}

/// The cache directory, checked and open, so that files are opened relative to it, with the
/// salt that names its entries.
struct CacheDir {
    fd: File,
    path: PathBuf,
    salt: KeySalt,
}

impl CacheDir {
    /// Opens `path` without following a symbolic link, creating it (and missing parents) with
    /// mode `0700` if needed, then reads its salt (creating it if needed). Refuses a link, a
    /// non-directory, another user's directory, and an existing directory that other users may
    /// enter: the store never changes the permissions of a directory it did not create.
    fn open(path: &Path) -> Result<Self> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let (fd, created) = match rustix::fs::open(path, flags, Mode::empty()) {
            Ok(fd) => (fd, false),
            Err(Errno::NOENT) => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(path)
                    .map_err(|e| io_error("cannot create the token cache directory", path, &e))?;
                let fd = rustix::fs::open(path, flags, Mode::empty())
                    .map_err(|e| open_error("the token cache directory", path, e))?;
                (fd, true)
            }
            Err(e) => return Err(open_error("the token cache directory", path, e)),
        };
        let fd = File::from(fd);
        let meta = fd
            .metadata()
            .map_err(|e| io_error("cannot inspect the token cache directory", path, &e))?;
        check_owner(&meta, "the token cache directory", path)?;
        let mode = meta.mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(Error::Store(format!(
                "refusing the token cache directory {}: it already exists and other users may \
                 use it (mode {mode:o}); tokens are kept only in a private directory. Give the \
                 store a directory of its own that does not exist yet (it is created with mode \
                 0700), or, if this one holds nothing that others need, make it private with \
                 `chmod 700 {}`",
                path.display(),
                path.display()
            )));
        }
        // A directory made just now, under a umask that took the owner's own rights away.
        if created && mode != 0o700 {
            fd.set_permissions(Permissions::from_mode(0o700))
                .map_err(|e| io_error("cannot restrict the token cache directory", path, &e))?;
        }
        let salt = read_or_create_salt(&fd, path)?;
        Ok(Self {
            fd,
            path: path.to_owned(),
            salt,
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The name of `key`'s entry: a keyed digest under this directory's salt.
    fn entry_name(&self, key: &CacheKey) -> String {
        format!("{}.json", self.salt.name(key))
    }

    /// The name of `key`'s renewal lock file.
    fn lock_name(&self, key: &CacheKey) -> String {
        format!("{}.lock", self.salt.name(key))
    }

    /// Opens `name` in the directory without following a symbolic link (and without blocking on
    /// a FIFO); `None` when it does not exist. Refuses anything but a regular file of ours, and
    /// restricts ours to `0600` if it was wider.
    fn open_file(&self, name: &str, flags: OFlags, mode: Mode) -> Result<Option<(File, Metadata)>> {
        open_in(&self.fd, &self.path, name, flags, mode)
    }

    /// Refuses to replace `name` if it is a symbolic link or not a regular file of ours.
    fn check_existing(&self, name: &str) -> Result<()> {
        let path = self.path(name);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) => check_file(&meta, &path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("cannot inspect the token cache file", &path, &e)),
        }
    }

    fn exists(&self, name: &str) -> bool {
        std::fs::symlink_metadata(self.path(name)).is_ok()
    }

    /// `true` when `name` still is the file `meta` describes (not removed or replaced).
    fn still_names(&self, name: &str, meta: &Metadata) -> bool {
        std::fs::symlink_metadata(self.path(name))
            .is_ok_and(|now| (now.dev(), now.ino()) == (meta.dev(), meta.ino()))
    }

    /// Takes the lock file `name` (created `0600` if missing) if no one holds it. A lock file
    /// pruned while we waited for it is not the lock any more, so it is checked after locking.
    fn try_lock(&self, name: &str) -> Result<Option<File>> {
        let flags = OFlags::RDWR | OFlags::CREATE;
        let Some((file, meta)) = self.open_file(name, flags, Mode::RUSR | Mode::WUSR)? else {
            return Ok(None);
        };
        match fs4::FileExt::try_lock(&file) {
            Ok(()) if self.still_names(name, &meta) => Ok(Some(file)),
            Ok(()) | Err(fs4::TryLockError::WouldBlock) => Ok(None),
            Err(fs4::TryLockError::Error(e)) => Err(io_error(
                "cannot lock the token cache file",
                &self.path(name),
                &e,
            )),
        }
    }

    /// Renames the unreadable entry `name` (the file `meta` describes) to
    /// `<name>.corrupt-<unix time>`. `Ok(None)` when a writer replaced the entry meanwhile: it
    /// is put back (unless an even newer one is there) and should be read again.
    fn move_aside(&self, name: &str, meta: &Metadata) -> Result<Option<String>> {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let aside = format!("{name}.corrupt-{unix}");
        let path = self.path(name);
        rustix::fs::renameat(&self.fd, name, &self.fd, aside.as_str())
            .map_err(|e| io_error("cannot move aside the token cache file", &path, &e.into()))?;
        if !self.still_names(&aside, meta) {
            // linkat never replaces an existing file, so a newer entry wins.
            if rustix::fs::linkat(&self.fd, aside.as_str(), &self.fd, name, AtFlags::empty())
                .is_ok()
            {
                let _ = rustix::fs::unlinkat(&self.fd, aside.as_str(), AtFlags::empty());
            }
            return Ok(None);
        }
        self.sync()?;
        Ok(Some(aside))
    }

    /// Removes the stale entry `<digest>.json` and its lock file, holding the lock so that no
    /// renewal is under way; skipped when another process holds it. Returns how many files went.
    fn prune_key(&self, digest: &str, cutoff: SystemTime) -> usize {
        let (entry, lock) = (format!("{digest}.json"), format!("{digest}.lock"));
        let Ok(Some(_held)) = self.try_lock(&lock) else {
            return 0;
        };
        let mut removed = 0;
        let still_stale = std::fs::symlink_metadata(self.path(&entry))
            .ok()
            .filter(|m| m.file_type().is_file())
            .and_then(|m| m.modified().ok())
            .is_some_and(|modified| modified < cutoff);
        if still_stale && self.unlink(&entry) {
            removed += 1;
        }
        // Removed while held: a process waiting for this lock sees it is gone and makes another.
        if !self.exists(&entry) && self.unlink(&lock) {
            removed += 1;
        }
        removed
    }

    fn unlink(&self, name: &str) -> bool {
        rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()).is_ok()
    }

    /// Flushes the directory itself, so a rename or removal survives a crash.
    fn sync(&self) -> Result<()> {
        match self.fd.sync_all() {
            Ok(()) => Ok(()),
            // Some file systems cannot flush a directory; the rename is still atomic there.
            Err(e) if matches!(e.raw_os_error(), Some(code) if code == Errno::INVAL.raw_os_error()) => {
                Ok(())
            }
            Err(e) => Err(io_error(
                "cannot flush the token cache directory",
                &self.path,
                &e,
            )),
        }
    }
}

/// Opens `name` in the directory `dir` (at `dir_path`): see [`CacheDir::open_file`].
fn open_in(
    dir: &File,
    dir_path: &Path,
    name: &str,
    flags: OFlags,
    mode: Mode,
) -> Result<Option<(File, Metadata)>> {
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let path = dir_path.join(name);
    let fd = match rustix::fs::openat(dir, name, flags, mode) {
        Ok(fd) => File::from(fd),
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(open_error("the token cache file", &path, e)),
    };
    let meta = fd
        .metadata()
        .map_err(|e| io_error("cannot inspect the token cache file", &path, &e))?;
    check_file(&meta, &path)?;
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        fd.set_permissions(Permissions::from_mode(0o600))
            .map_err(|e| io_error("cannot restrict the token cache file", &path, &e))?;
        tracing::warn!(
            file = %path.display(),
            was = format_args!("{mode:o}"),
            "a token cache file was open to other users; restricted it to 0600"
        );
    }
    Ok(Some((fd, meta)))
}

/// The salt of the directory `dir` (at `dir_path`), from its salt file. The first process to
/// use the directory creates the file: written whole to a private temporary file, then linked
/// to its name, which never replaces a file another process linked first, so every process
/// reads the same salt and none ever sees half of one.
fn read_or_create_salt(dir: &File, dir_path: &Path) -> Result<KeySalt> {
    let path = dir_path.join(SALT_FILE);
    for _ in 0..3 {
        if let Some((file, _)) = open_in(dir, dir_path, SALT_FILE, OFlags::RDONLY, Mode::empty())? {
            let mut text = Zeroizing::new(Vec::new());
            file.take(128)
                .read_to_end(&mut text)
                .map_err(|e| io_error("cannot read the token cache salt", &path, &e))?;
            return KeySalt::from_hex(&text).ok_or_else(|| {
                Error::Store(format!(
                    "refusing the token cache salt {}: it is not a salt this crate wrote; remove \
                     it (the cached tokens are then fetched again)",
                    path.display()
                ))
            });
        }
        create_salt(dir, dir_path)?;
    }
    Err(Error::Store(format!(
        "the token cache salt {} keeps disappearing",
        path.display()
    )))
}

/// Creates the salt file unless another process just did.
fn create_salt(dir: &File, dir_path: &Path) -> Result<()> {
    let salt = KeySalt::generate()?;
    let mut random = [0u8; 8];
    getrandom::fill(&mut random)
        .map_err(|e| Error::Internal(format!("no system randomness: {e}")))?;
    let temp = format!(".{SALT_FILE}.tmp-{}", hex(&random));
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL;
    let Some((mut file, meta)) = open_in(dir, dir_path, &temp, flags, Mode::RUSR | Mode::WUSR)?
    else {
        return Err(Error::Store(format!(
            "cannot create a temporary file in the token cache directory {}",
            dir_path.display()
        )));
    };
    let written = (|| {
        if meta.mode() & 0o777 != 0o600 {
            file.set_permissions(Permissions::from_mode(0o600))?;
        }
        file.write_all(salt.to_hex().as_bytes())?;
        file.sync_all()?;
        match rustix::fs::linkat(dir, temp.as_str(), dir, SALT_FILE, AtFlags::empty()) {
            Ok(()) | Err(Errno::EXIST) => io::Result::Ok(()),
            Err(e) => Err(e.into()),
        }
    })();
    let _ = rustix::fs::unlinkat(dir, temp.as_str(), AtFlags::empty());
    written.map_err(|e| {
        io_error(
            "cannot create the token cache salt",
            &dir_path.join(SALT_FILE),
            &e,
        )
    })?;
    match dir.sync_all() {
        Err(e) if e.raw_os_error() != Some(Errno::INVAL.raw_os_error()) => Err(io_error(
            "cannot flush the token cache directory",
            dir_path,
            &e,
        )),
        _ => Ok(()),
    }
}

fn default_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(CACHE_ENV)
        && !dir.is_empty()
    {
        return Ok(PathBuf::from(dir));
    }
    dirs::cache_dir()
        .map(|dir| dir.join("oauth-layer"))
        .ok_or_else(|| {
            Error::Store(format!(
                "no cache directory for tokens is known: set {CACHE_ENV}"
            ))
        })
}

fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

fn check_owner(meta: &Metadata, what: &str, path: &Path) -> Result<()> {
    if meta.uid() == euid() {
        return Ok(());
    }
    Err(Error::Store(format!(
        "refusing {what} {}: it is owned by another user (uid {})",
        path.display(),
        meta.uid()
    )))
}

fn check_file(meta: &Metadata, path: &Path) -> Result<()> {
    let kind = meta.file_type();
    if kind.is_symlink() {
        return Err(refused_link("the token cache file", path));
    }
    if !kind.is_file() {
        return Err(Error::Store(format!(
            "refusing the token cache file {}: it is not a regular file",
            path.display()
        )));
    }
    check_owner(meta, "the token cache file", path)
}

fn refused_link(what: &str, path: &Path) -> Error {
    Error::Store(format!(
        "refusing {what} {}: it is a symbolic link",
        path.display()
    ))
}

/// An error from opening without following links: a link is refused, anything else reported.
fn open_error(what: &str, path: &Path, e: Errno) -> Error {
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if is_link || e == Errno::LOOP {
        return refused_link(what, path);
    }
    if e == Errno::NOTDIR {
        return Error::Store(format!(
            "refusing {what} {}: it is not a directory",
            path.display()
        ));
    }
    io_error(&format!("cannot open {what}"), path, &e.into())
}

fn io_error(doing: &str, path: &Path, e: &io::Error) -> Error {
    Error::Store(format!("{doing} {}: {e}", path.display()))
}
