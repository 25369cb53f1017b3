//! Where tokens live between requests and, with a persistent store, between processes.
//!
//! A [`TokenSource`](crate::TokenSource) always keeps its current token in memory for the
//! lock-free fast path. A [`TokenStore`] adds a second place, keyed by a [`CacheKey`]: the source
//! reads through it before asking the server, and writes every new token to it before handing the
//! token out (SECURITY.md rule 21), so a rotated refresh token is never lost.
//!
//! A [`CacheKey`] binds every credential its flow uses, as digests that never print, so sources
//! that differ only in a password or a secret never share a token. A persistent store names
//! each entry with a [`KeySalt`] of its own (an HMAC key kept with the entries), so a file name,
//! a Redis key or a keychain account reveals nothing a guesser could check offline (SECURITY.md
//! rule 34).

#[cfg(any(
    feature = "file-store",
    feature = "redis-store",
    feature = "keyring-store"
))]
mod codec;
#[cfg(feature = "file-store")]
mod file;
mod key;
#[cfg(feature = "keyring-store")]
mod keyring;
#[cfg(any(feature = "file-store", feature = "keyring-store"))]
mod lock_file;
mod memory;
#[cfg(feature = "redis-store")]
mod redis;
mod salt;

#[cfg(feature = "keyring-store")]
pub use self::keyring::KeyringStore;
#[cfg(feature = "redis-store")]
pub use self::redis::{RedisDurability, RedisSentinel, RedisStore};
#[cfg(any(
    feature = "file-store",
    feature = "redis-store",
    feature = "keyring-store"
))]
pub use codec::{Codec, FORMAT_VERSION, MAX_ENTRY};
#[cfg(feature = "file-store")]
pub use file::FileStore;
pub use key::{CacheKey, CacheKeyBuilder};
pub use memory::MemoryStore;
pub use salt::KeySalt;

use async_trait::async_trait;
use std::fmt;

use crate::error::Result;
use crate::token::Token;

/// A place to keep tokens, keyed by [`CacheKey`].
#[async_trait]
pub trait TokenStore: fmt::Debug + Send + Sync + 'static {
    /// The token stored under `key`, if any. A corrupt entry is a miss, not an error.
    async fn load(&self, key: &CacheKey) -> Result<Option<Token>>;
    /// Stores `token` under `key`, replacing what was there.
    async fn save(&self, key: &CacheKey, token: &Token) -> Result<()>;
    /// Forgets `key`.
    async fn delete(&self, key: &CacheKey) -> Result<()>;

    /// Takes the store's renewal lock for `key`, so that processes sharing the store renew one
    /// at a time (SECURITY.md rule 33): the source holds it around the renewal and reads the
    /// store again once it has it. `None` (the default) means the store needs no lock because
    /// it is not shared between processes.
    ///
    /// A store whose lock can expire keeps it alive while it is held, and fences writes
    /// (rule 54): once the lock is lost, [`save`](Self::save) and [`delete`](Self::delete) for
    /// `key` fail with [`Error::LockLost`](crate::Error::LockLost) instead of overwriting the
    /// newer holder's token. The source then serves the stored token rather than its own.
    async fn lock(&self, key: &CacheKey) -> Result<Option<Box<dyn RenewalLock>>> {
        let _ = key;
        Ok(None)
    }
}

/// A held renewal lock (see [`TokenStore::lock`]). Release it when the renewal is over; a lock
/// that is never released (the process died) must expire or be freed by the operating system.
#[async_trait]
pub trait RenewalLock: Send + Sync {
    /// Gives the lock up.
    async fn release(self: Box<Self>);
}
