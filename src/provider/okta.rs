//! Okta.

use async_trait::async_trait;

use super::{
    Base, Preset, base_url, endpoints, preset_common, static_oidc, userinfo_id_email, userinfo_url,
};
use crate::client::{AuthMethod, OAuthClient};
use crate::error::{Error, Result};
use crate::flow::AuthCode;
use crate::token::Token;

/// Okta, with a custom authorization server (the `default` one unless named) or the org
/// authorization server.
///
/// - custom server `id`: issuer `https://{domain}/oauth2/{id}`, endpoints under
///   `{issuer}/v1/` (`authorize`, `token`, `userinfo`, `keys`, `revoke`, `introspect`,
///   `device/authorize`);
/// - org server: issuer `https://{domain}`, endpoints under `https://{domain}/oauth2/v1/`.
///
/// Default scopes `openid profile email offline_access` (Okta issues refresh tokens only with
/// `offline_access`, when the app allows the refresh grant); ID tokens validated; client
/// authentication with a secret is `client_secret_basic`, Okta's default.
///
/// [`id_email`](Preset::id_email) returns `sub` and `email` from the userinfo endpoint.
#[derive(Debug, Clone)]
pub struct Okta {
    base: Base,
}

preset_common!(Okta);

impl Okta {
    /// A preset for the `default` custom authorization server of `domain`
    /// (`dev-123.okta.com`, or a URL).
    pub fn new(domain: &str, client_id: impl Into<String>) -> Result<Self> {
        Self::with_authorization_server(domain, "default", client_id)
    }

    /// A preset for the custom authorization server `server_id` of `domain`.
    pub fn with_authorization_server(
        domain: &str,
        server_id: &str,
        client_id: impl Into<String>,
    ) -> Result<Self> {
        if server_id.is_empty() || !server_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Error::config(
                "the Okta authorization server id must be alphanumeric",
            ));
        }
        let issuer = format!("{}/oauth2/{server_id}", base_url("Okta domain", domain)?);
        let api = format!("{issuer}/v1");
        Self::build(client_id, &issuer, &api)
    }

    /// A preset for the org authorization server of `domain`.
    pub fn org(domain: &str, client_id: impl Into<String>) -> Result<Self> {
        let issuer = base_url("Okta domain", domain)?;
        let api = format!("{issuer}/oauth2/v1");
        Self::build(client_id, &issuer, &api)
    }

    fn build(client_id: impl Into<String>, issuer: &str, api: &str) -> Result<Self> {
        let client = endpoints(
            OAuthClient::builder(client_id),
            &format!("{api}/authorize"),
            &format!("{api}/token"),
        )
        .revocation_url(format!("{api}/revoke"))
        .introspection_url(format!("{api}/introspect"))
        .device_authorization_url(format!("{api}/device/authorize"));
        let client = static_oidc(
            client,
            issuer,
            Some(&format!("{api}/userinfo")),
            Some(&format!("{api}/keys")),
        )?;
        Ok(Self {
            base: Base::new(
                client,
                "openid profile email offline_access",
                AuthMethod::ClientSecretBasic,
            )
            .validating(true),
        })
    }
}

#[async_trait]
impl Preset for Okta {
    fn name(&self) -> &'static str {
        "okta"
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
