//! Google (OpenID Connect).

use super::spec::Oidc;
use super::{Base, Spec, preset};
use crate::client::AuthMethod;
use crate::error::Result;

const GOOGLE: Spec = Spec {
    name: "google",
    authorize: "https://accounts.google.com/o/oauth2/v2/auth",
    token: "https://oauth2.googleapis.com/token",
    device: Some("https://oauth2.googleapis.com/device/code"),
    revocation: Some("https://oauth2.googleapis.com/revoke"),
    oidc: Some(Oidc {
        issuer: "https://accounts.google.com",
        userinfo: "https://openidconnect.googleapis.com/v1/userinfo",
        jwks: "https://www.googleapis.com/oauth2/v3/certs",
        validate: true,
        other_issuer: Some("accounts.google.com"),
    }),
    scopes: "openid email profile",
    secret_method: AuthMethod::ClientSecretBasic,
    auth_params: &[("access_type", "offline")],
    ..Spec::OAUTH
};

/// Google accounts, configured with the endpoints of Google's discovery document (no request
/// at start-up; [`OpenId`](super::OpenId) discovers them instead, if you prefer).
///
/// Quirks encoded:
/// - Google issues a refresh token only when the authorization request says
///   `access_type=offline`: on by default ([`offline`](Self::offline)), since the crate renews
///   tokens with it;
/// - Google sends the refresh token only on the first consent; to get a new one (you lost it),
///   [`prompt_consent`](Self::prompt_consent) adds `prompt=consent`;
/// - ID tokens are validated against Google's keys, with the issuer
///   `https://accounts.google.com` or, as Google documents it may also be spelled,
///   `accounts.google.com`;
/// - default scopes `openid email profile`; client authentication with a secret is
///   `client_secret_basic` (Google takes both basic and post). Google's "desktop app" clients
///   have a secret that is not secret: set it all the same.
///
/// [`id_email`](super::Preset::id_email) returns `sub` and `email` (unless `email_verified` is `false`)
/// from the userinfo endpoint.
#[derive(Debug, Clone)]
pub struct Google {
    base: Base,
}

preset!(Google);

impl Google {
    /// A preset for this client id.
    pub fn new(client_id: impl Into<String>) -> Result<Self> {
        Ok(Self {
            base: GOOGLE.base(client_id, &[])?,
        })
    }

    /// Ask for a refresh token with `access_type=offline` (default `true`).
    pub fn offline(mut self, offline: bool) -> Self {
        self.base = self.base.param("access_type", offline.then_some("offline"));
        self
    }

    /// Add `prompt=consent`, which makes Google show the consent screen again and issue a new
    /// refresh token (default `false`).
    pub fn prompt_consent(mut self, consent: bool) -> Self {
        self.base = self.base.param("prompt", consent.then_some("consent"));
        self
    }
}
