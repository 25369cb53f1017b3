//! LinkedIn (Sign In with LinkedIn using OpenID Connect).

use super::spec::Oidc;
use super::{Base, Spec, preset};
use crate::error::Result;

const LINKEDIN: Spec = Spec {
    name: "linkedin",
    authorize: "https://www.linkedin.com/oauth/v2/authorization",
    token: "https://www.linkedin.com/oauth/v2/accessToken",
    oidc: Some(Oidc {
        issuer: "https://www.linkedin.com/oauth",
        userinfo: "https://api.linkedin.com/v2/userinfo",
        jwks: "https://www.linkedin.com/oauth/openid/jwks",
        validate: false,
        other_issuer: None,
    }),
    scopes: "openid profile email",
    pkce: false,
    api: Some("https://api.linkedin.com"),
    ..Spec::OAUTH
};

/// LinkedIn's "Sign In with LinkedIn using OpenID Connect".
///
/// Quirks encoded:
/// - LinkedIn's token endpoint refuses a `code_verifier` from web apps (`invalid_client`), so
///   PKCE is off;
/// - its ID tokens do not carry the `nonce` sent, so they cannot be validated as OpenID Connect
///   requires and are not: the token comes straight from LinkedIn over TLS, and
///   [`id_email`](super::Preset::id_email) asks LinkedIn's userinfo endpoint;
/// - no refresh tokens for most apps: access tokens live 60 days, then the person signs in
///   again;
/// - client authentication is `client_secret_post`; default scopes `openid profile email`.
///
/// [`id_email`](super::Preset::id_email) returns `sub` and `email` from `api.linkedin.com/v2/userinfo`.
#[derive(Debug, Clone)]
pub struct LinkedIn {
    base: Base,
}

preset!(LinkedIn);

impl LinkedIn {
    /// A preset for this client id.
    pub fn new(client_id: impl Into<String>) -> Result<Self> {
        Ok(Self {
            base: LINKEDIN.base(client_id, &[])?,
        })
    }
}
