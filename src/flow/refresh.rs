//! Starting from a refresh token you already hold (httr2's `req_oauth_refresh()`).

use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use super::{Flow, Scopes};
use crate::client::{OAuthClient, Resend, TokenRequest};
use crate::error::{Error, Result};
use crate::store::CacheKey;
use crate::token::Token;

/// A flow that starts from a refresh token obtained elsewhere (a previous sign-in, a secret
/// store).
///
/// The refresh token is used once, for the first access token. From then on the
/// [`TokenSource`](crate::TokenSource) renews with the refresh token it holds, so rotation is
/// followed and the original is never sent again. If the server rejects it (`invalid_grant`), the
/// flow is spent: later calls fail with [`Error::ReauthenticationRequired`] without another
/// request.
///
/// ```
/// use oauth_layer::flow::RefreshToken;
///
/// let flow = RefreshToken::new("stored-refresh-token");
/// assert!(!format!("{flow:?}").contains("stored-refresh"));
/// ```
pub struct RefreshToken {
    key_digest_input: SecretString,
    refresh_token: Mutex<Option<SecretString>>,
    scopes: Scopes,
}

impl RefreshToken {
    /// The flow, starting from `refresh_token`.
    pub fn new(refresh_token: impl Into<String>) -> Self {
        let secret = SecretString::from(refresh_token.into());
        Self {
            key_digest_input: secret.clone(),
            refresh_token: Mutex::new(Some(secret)),
            scopes: Scopes::default(),
        }
    }

    /// Asks for a narrower scope than the original grant (RFC 6749 §6).
    #[must_use]
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.add(scope);
        self
    }

    /// The flow as it was made, with the original refresh token and the same scopes, whether or
    /// not this one was used (a layer's shorthand keeps one to rebuild its source).
    #[cfg(any(feature = "tower", feature = "reqwest"))]
    pub(crate) fn unused_copy(&self) -> Self {
        Self {
            key_digest_input: self.key_digest_input.clone(),
            refresh_token: Mutex::new(Some(self.key_digest_input.clone())),
            scopes: self.scopes.clone(),
        }
    }
}

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unused = self
            .refresh_token
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some();
        f.debug_struct("RefreshToken")
            .field("refresh_token", &"[redacted]")
            .field("unused", &unused)
            .field("scopes", &self.scopes)
            .finish()
    }
}

#[async_trait]
impl Flow for RefreshToken {
    async fn fetch(&self, client: &OAuthClient) -> Result<Token> {
        let held = self
            .refresh_token
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(refresh_token) = held else {
            return Err(Error::ReauthenticationRequired(
                "the refresh token this source started from was used up or rejected".into(),
            ));
        };
        let request = TokenRequest::new("refresh_token")
            .secret_param("refresh_token", refresh_token.clone())
            .scope(self.scopes.joined())
            .resend(Resend::IfUnprocessed);
        let result = client
            .request_token(request)
            .await
            .map(|t| t.keeping_refresh_token(&refresh_token));
        if result.is_ok() || result.as_ref().is_err_and(Error::is_invalid_grant) {
            // Either the source now holds the (possibly rotated) refresh token, or the server
            // killed this one: never send it again.
            *self
                .refresh_token
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = None;
        }
        result
    }

    fn cache_key(&self, client: &OAuthClient) -> CacheKey {
        CacheKey::builder(client, "refresh_token")
            .secret_part("refresh_token", self.key_digest_input.expose_secret())
            .scopes(self.scopes.iter())
            .build()
    }
}
