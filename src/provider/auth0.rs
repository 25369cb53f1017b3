//! Auth0.

use super::spec::Oidc;
use super::{Base, Spec, base_url, preset};
use crate::error::Result;

const AUTH0: Spec = Spec {
    name: "auth0",
    authorize: "{domain}/authorize",
    token: "{domain}/oauth/token",
    device: Some("{domain}/oauth/device/code"),
    revocation: Some("{domain}/oauth/revoke"),
    oidc: Some(Oidc {
        issuer: "{domain}/",
        userinfo: "{domain}/userinfo",
        jwks: "{domain}/.well-known/jwks.json",
        validate: true,
        other_issuer: None,
    }),
    scopes: "openid profile email offline_access",
    ..Spec::OAUTH
};

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
/// [`id_email`](super::Preset::id_email) returns `sub` (`provider|id`, such as
/// `google-oauth2|1234`) and `email` (unless `email_verified` is `false`) from `/userinfo`.
#[derive(Debug, Clone)]
pub struct Auth0 {
    base: Base,
}

preset!(Auth0);

impl Auth0 {
    /// A preset for the tenant at `domain`.
    pub fn new(domain: &str, client_id: impl Into<String>) -> Result<Self> {
        let domain = base_url("Auth0 domain", domain)?;
        Ok(Self {
            base: AUTH0.base(client_id, &[("domain", &domain)])?,
        })
    }

    /// The API the access token is for (its identifier in the Auth0 dashboard).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.base = self.base.param("audience", Some(&audience.into()));
        self
    }
}
