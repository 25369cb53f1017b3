//! The resource owner password credentials grant (RFC 6749 §4.3).
//!
//! RFC 9700 §2.4 says not to use it; it exists for the legacy and first-party systems that still
//! require it, behind its own constructor. The password is held in a `SecretString`, which is
//! zeroized when dropped, never persisted and never printed (SECURITY.md rule 43).

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use super::{Flow, Requirements, Scopes};
use crate::client::{OAuthClient, Resend, TokenRequest};
use crate::error::Result;
use crate::store::CacheKey;
use crate::token::Token;

/// The password grant: the client sends a person's username and password.
///
/// ```
/// use oauth_layer::flow::Password;
///
/// let flow = Password::new("alice", "correct horse battery staple").scope("profile");
/// assert!(!format!("{flow:?}").contains("horse"));
/// ```
#[derive(Clone)]
#[must_use]
pub struct Password {
    username: String,
    password: SecretString,
    scopes: Scopes,
    /// The claims request of an upgrade (see [`Flow::upgraded`]).
    claims_request: Option<String>,
}

impl Password {
    /// The grant for `username` with `password`.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: SecretString::from(password.into()),
            scopes: Scopes::default(),
            claims_request: None,
        }
    }

    /// Requests a scope (space-separated scopes are split).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.add(scope);
        self
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Password")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .field("scopes", &self.scopes)
            .field("claims_request", &self.claims_request)
            .finish()
    }
}

#[async_trait]
impl Flow for Password {
    /// Every profile refuses the password grant: the client sees the person's password.
    fn conforms(&self, client: &OAuthClient) -> Result<()> {
        match client.profile() {
            Some(profile) => Err(profile.violation(
                "forbids the password grant",
                "the client would see the person's password, and no second factor or consent \
                 can take part (FAPI 2.0 §5.3.2.1)",
            )),
            None => Ok(()),
        }
    }

    async fn fetch(&self, client: &OAuthClient) -> Result<Token> {
        self.conforms(client)?;
        let mut request = TokenRequest::new("password")
            .param("username", self.username.clone())
            .secret_param("password", self.password.clone())
            .scope(self.scopes.joined())
            .resend(Resend::Always);
        if let Some(claims) = &self.claims_request {
            request = request.param("claims", claims.clone());
        }
        client.request_token(request).await
    }

    fn cache_key(&self, client: &OAuthClient) -> CacheKey {
        let mut key = CacheKey::builder(client, "password")
            .part("subject", self.username.clone())
            .secret_part("password", self.password.expose_secret())
            .scopes(self.scopes.iter());
        if let Some(claims) = &self.claims_request {
            key = key.part("claims", claims.clone());
        }
        key.build()
    }

    /// Wider scopes, and `claims` as a token request parameter; `None` for `acr_values` or
    /// `max_age`, which no person signs in for here.
    fn upgraded(&self, need: &Requirements) -> Option<Arc<dyn Flow>> {
        if need.needs_sign_in() {
            return None;
        }
        let mut wider = self.clone();
        wider.scopes = need.widen(&self.scopes);
        if need.claims.is_some() {
            wider.claims_request.clone_from(&need.claims);
        }
        Some(Arc::new(wider))
    }
}
