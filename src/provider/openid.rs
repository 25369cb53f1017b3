//! Any OpenID Connect provider, configured by discovery.

use async_trait::async_trait;

use super::{Base, Preset, preset_settings, userinfo_id_email, userinfo_url};
use crate::client::{OAuthClient, OAuthClientBuilder};
use crate::discovery;
use crate::error::Result;
use crate::flow::AuthCode;
use crate::token::Token;

/// Any OpenID Connect provider, configured from its discovery document
/// ([`discovery::configure`]: endpoints, issuer check, client authentication from the
/// methods it lists).
///
/// Default scopes `openid profile email`; ID tokens validated against the document's
/// `jwks_uri` (when it has one). [`id_email`](Preset::id_email) returns `sub` and `email`
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

preset_settings!(OpenId);

/// An [`OpenId`] preset for `issuer`, discovered with a confidential client.
pub async fn openid(
    issuer: &str,
    client_id: impl Into<String>,
    secret: impl Into<String>,
) -> Result<OpenId> {
    OpenId::discover(OAuthClient::builder(client_id).secret(secret), issuer).await
}

impl OpenId {
    /// Discovers `issuer` and builds `client` from its document; set on `client` first its
    /// secret or signing key, its transport, and any explicit endpoint or method, which
    /// discovery keeps.
    pub async fn discover(client: OAuthClientBuilder, issuer: &str) -> Result<Self> {
        let client = discovery::configure(client, issuer).await?;
        let has_keys = client.metadata().is_some_and(|m| m.jwks_uri.is_some());
        let method = client.auth_method();
        Ok(Self {
            base: Base::new(client, "openid profile email", method).validating(has_keys),
        })
    }
}

#[async_trait]
impl Preset for OpenId {
    fn name(&self) -> &'static str {
        "openid"
    }

    fn client(&self) -> &OAuthClient {
        &self.base.client
    }

    fn auth_code(&self) -> AuthCode {
        self.base.flow()
    }

    async fn id_email(&self, token: &Token) -> Result<(String, Option<String>)> {
        let url = userinfo_url(&self.base.client)?;
        userinfo_id_email(&self.base.client, &url, token).await
    }
}
