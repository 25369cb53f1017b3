//! Any OpenID Connect provider, configured by discovery.

use super::{Base, new_client, preset};
use crate::client::OAuthClientBuilder;
use crate::error::Result;

/// Any OpenID Connect provider, configured from its discovery document
/// ([`discovery::configure`](crate::discovery::configure): endpoints, issuer check, client
/// authentication from the methods it lists).
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
    /// Discovers `issuer` and builds `client` from its document; set on `client` first its
    /// secret or signing key, its transport, and any explicit endpoint or method, which
    /// discovery keeps.
    pub async fn discover(client: OAuthClientBuilder, issuer: &str) -> Result<Self> {
        Ok(Self {
            base: Base::discover("openid", client, issuer, "openid profile email").await?,
        })
    }
}
