//! Okta.

use super::spec::Oidc;
use super::{Base, Spec, base_url, preset};
use crate::client::AuthMethod;
use crate::error::{Error, Result};

const OKTA: Spec = Spec {
    name: "okta",
    authorize: "{api}/authorize",
    token: "{api}/token",
    device: Some("{api}/device/authorize"),
    revocation: Some("{api}/revoke"),
    introspection: Some("{api}/introspect"),
    oidc: Some(Oidc {
        issuer: "{issuer}",
        userinfo: "{api}/userinfo",
        jwks: "{api}/keys",
        validate: true,
        other_issuer: None,
    }),
    scopes: "openid profile email offline_access",
    secret_method: AuthMethod::ClientSecretBasic,
    ..Spec::OAUTH
};

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
/// [`id_email`](super::Preset::id_email) returns `sub` and `email` from the userinfo endpoint.
#[derive(Debug, Clone)]
pub struct Okta {
    base: Base,
}

preset!(Okta);

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
        Ok(Self {
            base: OKTA.base(client_id, &[("issuer", issuer), ("api", api)])?,
        })
    }
}
