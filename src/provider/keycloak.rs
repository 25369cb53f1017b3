//! Keycloak.

use super::spec::Oidc;
use super::{Base, Spec, base_url, preset};
use crate::client::AuthMethod;
use crate::error::Result;

const KEYCLOAK: Spec = Spec {
    name: "keycloak",
    authorize: "{realm}/protocol/openid-connect/auth",
    token: "{realm}/protocol/openid-connect/token",
    device: Some("{realm}/protocol/openid-connect/auth/device"),
    revocation: Some("{realm}/protocol/openid-connect/revoke"),
    introspection: Some("{realm}/protocol/openid-connect/token/introspect"),
    oidc: Some(Oidc {
        issuer: "{realm}",
        userinfo: "{realm}/protocol/openid-connect/userinfo",
        jwks: "{realm}/protocol/openid-connect/certs",
        validate: true,
        other_issuer: None,
    }),
    scopes: "openid profile email",
    secret_method: AuthMethod::ClientSecretBasic,
    ..Spec::OAUTH
};

/// Keycloak: one realm, given by its URL (`https://sso.example/realms/acme`, or with the
/// `/auth` prefix of Keycloak before 17: `https://sso.example/auth/realms/acme`).
///
/// The realm URL is the issuer; the endpoints are under `{realm}/protocol/openid-connect/`
/// (`auth`, `token`, `userinfo`, `certs`, `revoke`, `token/introspect`, `auth/device`).
/// Default scopes `openid profile email` (Keycloak issues refresh tokens without
/// `offline_access`, which would ask for an offline session); ID tokens validated; client
/// authentication with a secret is `client_secret_basic`.
///
/// [`id_email`](super::Preset::id_email) returns `sub` (the user id) and `email` (unless
/// `email_verified` is `false`) from the userinfo endpoint.
#[derive(Debug, Clone)]
pub struct Keycloak {
    base: Base,
}

preset!(Keycloak);

impl Keycloak {
    /// A preset for the realm at `realm_url`.
    pub fn new(realm_url: &str, client_id: impl Into<String>) -> Result<Self> {
        let realm = base_url("Keycloak realm URL", realm_url)?;
        Ok(Self {
            base: KEYCLOAK.base(client_id, &[("realm", &realm)])?,
        })
    }
}
