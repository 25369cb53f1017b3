//! Keycloak.

use async_trait::async_trait;

use super::{
    Base, Preset, base_url, endpoints, preset_common, static_oidc, userinfo_id_email, userinfo_url,
};
use crate::client::{AuthMethod, OAuthClient};
use crate::error::Result;
use crate::flow::AuthCode;
use crate::token::Token;

/// Keycloak: one realm, given by its URL (`https://sso.example/realms/acme`, or with the
/// `/auth` prefix of Keycloak before 17: `https://sso.example/auth/realms/acme`).
///
/// The realm URL is the issuer; the endpoints are under `{realm}/protocol/openid-connect/`
/// (`auth`, `token`, `userinfo`, `certs`, `revoke`, `token/introspect`, `auth/device`).
/// Default scopes `openid profile email` (Keycloak issues refresh tokens without
/// `offline_access`, which would ask for an offline session); ID tokens validated; client
/// authentication with a secret is `client_secret_basic`.
///
/// [`id_email`](Preset::id_email) returns `sub` (the user id) and `email` (unless
/// `email_verified` is `false`) from the userinfo endpoint.
#[derive(Debug, Clone)]
pub struct Keycloak {
    base: Base,
}

preset_common!(Keycloak);

impl Keycloak {
    /// A preset for the realm at `realm_url`.
    pub fn new(realm_url: &str, client_id: impl Into<String>) -> Result<Self> {
        let realm = base_url("Keycloak realm URL", realm_url)?;
        let oidc = format!("{realm}/protocol/openid-connect");
        let client = endpoints(
            OAuthClient::builder(client_id),
            &format!("{oidc}/auth"),
            &format!("{oidc}/token"),
        )
        .revocation_url(format!("{oidc}/revoke"))
        .introspection_url(format!("{oidc}/token/introspect"))
        .device_authorization_url(format!("{oidc}/auth/device"));
        let client = static_oidc(
            client,
            &realm,
            Some(&format!("{oidc}/userinfo")),
            Some(&format!("{oidc}/certs")),
        )?;
        Ok(Self {
            base: Base::new(
                client,
                "openid profile email",
                AuthMethod::ClientSecretBasic,
            )
            .validating(true),
        })
    }
}

#[async_trait]
impl Preset for Keycloak {
    fn name(&self) -> &'static str {
        "keycloak"
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
