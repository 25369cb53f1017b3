//! Any OpenID Connect provider, configured by discovery.

use super::{Base, new_client, preset};
use crate::client::OAuthClient;
use crate::error::Result;

/// Any OpenID Connect provider, configured from its discovery document
/// ([`OAuthClient::discover`]: endpoints, issuer check, client authentication from the
/// methods it lists).
///
/// Default scopes `openid profile email`; ID tokens validated against the document's
/// `jwks_uri` (when it has one). [`id_email`](super::Preset::id_email) returns `sub` and `email`
/// (unless `email_verified` is `false`) from its userinfo endpoint.
///
/// ```no_run
/// use oauth_layer::provider::{self, Preset};
///
/// # async fn run() -> oauth_layer::Result<()> {
/// let idp = provider::openid("https://idp.example", "my-client-id", "my-secret").await?;
/// let token = idp.token_source().token().await?;
/// let (sub, email) = idp.id_email(&token).await?;
/// # let _ = (sub, email); Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct OpenId {
    base: Base,
}

preset!(OpenId, discovered);

/// An [`OpenId`] preset for `issuer`, discovered with a confidential client.
pub async fn openid(
    issuer: &str,
    client_id: impl Into<String>,
    secret: impl Into<String>,
) -> Result<OpenId> {
    OpenId::discover(new_client(client_id).secret(secret), issuer).await
}

impl OpenId {
    /// Discovers `issuer` with `client`, configured first (its secret or signing key, its
    /// transport, any explicit endpoint or method, which discovery keeps).
    pub async fn discover(client: OAuthClient, issuer: &str) -> Result<Self> {
        let client = client.discover(issuer).await?;
        let has_keys = client.metadata().is_some_and(|m| m.jwks_uri.is_some());
        let method = client.effective_auth_method();
        Ok(Self {
            base: Base::new("openid", client, "openid profile email", method).validating(has_keys),
        })
    }
}
