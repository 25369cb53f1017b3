//! Where tokens live between requests and, with a persistent store, between processes.
//!
//! A [`TokenSource`](crate::TokenSource) always keeps its current token in memory for the
//! lock-free fast path. A [`TokenStore`] adds a second place, keyed by a [`CacheKey`]: the source
//! reads through it before asking the server, and writes every new token to it before handing the
//! token out (SECURITY.md rule 21), so a rotated refresh token is never lost.

mod key;
mod memory;

pub use key::{CacheKey, CacheKeyBuilder};
pub use memory::MemoryStore;

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
}
