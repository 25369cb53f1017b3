//! The in-process store: tokens shared by every source in this process that has the same key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use super::{CacheKey, TokenStore};
use crate::error::Result;
use crate::token::Token;

/// Tokens kept in this process's memory, shared by every clone of the store.
///
/// Two [`TokenSource`](crate::TokenSource)s built for the same client, grant and scopes and given
/// one `MemoryStore` share their tokens: the second one starts with the first one's token instead
/// of asking the server. Sources whose credentials differ (another password, client secret or
/// refresh token) have other keys and never share. Keys stay in memory and are never named or
/// printed, so this store needs no [`KeySalt`](super::KeySalt).
///
/// ```
/// use oauth_layer::{OAuthClient, TokenSource, flow::ClientCredentials, store::MemoryStore};
///
/// let store = MemoryStore::new();
/// let client = OAuthClient::builder("id")
///     .secret("s")
///     .token_url("https://idp.example/token")
///     .build()?;
/// let a = TokenSource::builder(client.clone(), ClientCredentials::new()).store(store.clone()).build();
/// let b = TokenSource::builder(client, ClientCredentials::new()).store(store).build();
/// assert_eq!(a.cache_key(), b.cache_key());
/// # Ok::<(), oauth_layer::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    tokens: Arc<Mutex<HashMap<CacheKey, Token>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many keys hold a token.
    pub fn len(&self) -> usize {
        self.tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// `true` when no key holds a token.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl TokenStore for MemoryStore {
    async fn load(&self, key: &CacheKey) -> Result<Option<Token>> {
        let tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(tokens.get(key).cloned())
    }

    async fn save(&self, key: &CacheKey, token: &Token) -> Result<()> {
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        tokens.insert(key.clone(), token.clone());
        Ok(())
    }

    async fn delete(&self, key: &CacheKey) -> Result<()> {
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        tokens.remove(key);
        Ok(())
    }
}
