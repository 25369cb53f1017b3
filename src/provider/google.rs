//! Google (OpenID Connect).

use async_trait::async_trait;

use super::{Base, Preset, endpoints, preset_common, static_oidc, userinfo_id_email, userinfo_url};
use crate::client::{AuthMethod, OAuthClient};
use crate::error::Result;
use crate::flow::AuthCode;
use crate::token::Token;

const ISSUER: &str = "https://accounts.google.com";
/// The other spelling of the issuer that Google documents for ID tokens.
#[cfg(feature = "jwt")]
const ISSUER_WITHOUT_SCHEME: &str = "accounts.google.com";
const AUTHORIZE: &str = "https://accounts.google.com/o/oauth2/v2/auth";
const TOKEN: &str = "https://oauth2.googleapis.com/token";
const DEVICE: &str = "https://oauth2.googleapis.com/device/code";
const REVOKE: &str = "https://oauth2.googleapis.com/revoke";
const USERINFO: &str = "https://openidconnect.googleapis.com/v1/userinfo";
const JWKS: &str = "https://www.googleapis.com/oauth2/v3/certs";

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
/// [`id_email`](Preset::id_email) returns `sub` and `email` (unless `email_verified` is `false`)
/// from the userinfo endpoint.
#[derive(Debug, Clone)]
pub struct Google {
    base: Base,
    offline: bool,
    consent: bool,
}

preset_common!(Google);

impl Google {
    /// A preset for this client id.
    pub fn new(client_id: impl Into<String>) -> Result<Self> {
        let client = endpoints(OAuthClient::builder(client_id), AUTHORIZE, TOKEN)
            .device_authorization_url(DEVICE)
            .revocation_url(REVOKE);
        let client = static_oidc(client, ISSUER, Some(USERINFO), Some(JWKS))?;
        Ok(Self {
            base: Base::new(
                client,
                "openid email profile",
                AuthMethod::ClientSecretBasic,
            )
            .validating(true),
            offline: true,
            consent: false,
        })
    }

    /// Ask for a refresh token with `access_type=offline` (default `true`).
    pub fn offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }

    /// Add `prompt=consent`, which makes Google show the consent screen again and issue a new
    /// refresh token (default `false`).
    pub fn prompt_consent(mut self, consent: bool) -> Self {
        self.consent = consent;
        self
    }
}

#[async_trait]
impl Preset for Google {
    fn name(&self) -> &'static str {
        "google"
    }

    fn client(&self) -> &OAuthClient {
        &self.base.client
    }

    fn auth_code(&self) -> AuthCode {
        let mut flow = self.base.flow();
        #[cfg(feature = "jwt")]
        {
            flow = flow.accept_id_token_issuer(ISSUER_WITHOUT_SCHEME);
        }
        if self.offline {
            flow = flow.auth_param("access_type", "offline");
        }
        if self.consent {
            flow = flow.auth_param("prompt", "consent");
        }
        flow
    }

    async fn id_email(&self, token: &Token) -> Result<(String, Option<String>)> {
        let url = userinfo_url(&self.base.client)?;
        userinfo_id_email(&self.base.client, &url, token).await
    }
}
