//! Auth0.

use async_trait::async_trait;

use super::{
    Base, Preset, base_url, endpoints, preset_common, static_oidc, userinfo_id_email, userinfo_url,
};
use crate::client::{AuthMethod, OAuthClient};
use crate::error::Result;
use crate::flow::AuthCode;
use crate::token::Token;

/// Auth0: a tenant domain (`example.eu.auth0.com`) or a custom domain.
///
/// Quirks encoded:
/// - the issuer is `https://{domain}/`, **with** a trailing slash (ID tokens say so);
/// - an access token for your API (a JWT) needs the `audience` authorization parameter
///   ([`audience`](Self::audience)); without it Auth0 issues a token for its userinfo endpoint
///   only;
/// - refresh tokens come with the `offline_access` scope (in the defaults
///   `openid profile email offline_access`) when the API allows offline access;
/// - endpoints `/authorize`, `/oauth/token`, `/userinfo`, `/.well-known/jwks.json`,
///   `/oauth/revoke`, `/oauth/device/code`; ID tokens validated; client authentication with a
///   secret is `client_secret_post`, Auth0's default for new applications.
///
/// [`id_email`](Preset::id_email) returns `sub` (`provider|id`, such as
/// `google-oauth2|1234`) and `email` (unless `email_verified` is `false`) from `/userinfo`.
#[derive(Debug, Clone)]
pub struct Auth0 {
    base: Base,
    audience: Option<String>,
}

preset_common!(Auth0);

impl Auth0 {
    /// A preset for the tenant at `domain`.
    pub fn new(domain: &str, client_id: impl Into<String>) -> Result<Self> {
        let base = base_url("Auth0 domain", domain)?;
        let client = endpoints(
            OAuthClient::builder(client_id),
            &format!("{base}/authorize"),
            &format!("{base}/oauth/token"),
        )
        .revocation_url(format!("{base}/oauth/revoke"))
        .device_authorization_url(format!("{base}/oauth/device/code"));
        let client = static_oidc(
            client,
            &format!("{base}/"),
            Some(&format!("{base}/userinfo")),
            Some(&format!("{base}/.well-known/jwks.json")),
        )?;
        Ok(Self {
            base: Base::new(
                client,
                "openid profile email offline_access",
                AuthMethod::ClientSecretPost,
            )
            .validating(true),
            audience: None,
        })
    }

    /// The API the access token is for (its identifier in the Auth0 dashboard).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }
}

#[async_trait]
impl Preset for Auth0 {
    fn name(&self) -> &'static str {
        "auth0"
    }

    fn client(&self) -> &OAuthClient {
        &self.base.client
    }

    fn auth_code(&self) -> AuthCode {
        let flow = self.base.flow();
        match &self.audience {
            Some(audience) => flow.auth_param("audience", audience.clone()),
            None => flow,
        }
    }

    async fn id_email(&self, token: &Token) -> Result<(String, Option<String>)> {
        let url = userinfo_url(&self.base.client)?;
        userinfo_id_email(&self.base.client, &url, token).await
    }
}
