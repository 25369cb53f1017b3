//! Facebook Login.

use super::profile::Profile;
use super::{Base, Spec, preset};
use crate::client::{Resend, TokenRequest};
use crate::error::{Error, Result};
use crate::token::Token;

/// The Graph API version the preset uses unless told otherwise.
pub const DEFAULT_FACEBOOK_VERSION: &str = "v23.0";

const FACEBOOK: Spec = Spec {
    name: "facebook",
    authorize: "https://www.facebook.com/{version}/dialog/oauth",
    token: "https://graph.facebook.com/{version}/oauth/access_token",
    scopes: "email public_profile",
    api: Some("https://graph.facebook.com"),
    profile: Profile::api(
        "https://graph.facebook.com/{version}/me?fields=id,email",
        &["id"],
        &["email"],
    ),
    ..Spec::OAUTH
};

/// Facebook Login, on a versioned Graph API (`www.facebook.com/{version}/dialog/oauth`,
/// `graph.facebook.com/{version}/oauth/access_token`).
///
/// Quirks encoded:
/// - Facebook issues no refresh tokens. A token from the sign-in lives an hour or two; trade it
///   for a long-lived one (about 60 days) with [`long_lived`](Self::long_lived)
///   (`grant_type=fb_exchange_token`). When that one expires, the person signs in again;
/// - client authentication with a secret is `client_secret_post`;
/// - default scopes `email public_profile`.
///
/// [`id_email`](super::Preset::id_email) returns the app-scoped user id and the email (absent when
/// the person has none or declined it) of `GET /{version}/me?fields=id,email`.
#[derive(Debug, Clone)]
pub struct Facebook {
    base: Base,
}

preset!(Facebook);

impl Facebook {
    /// A preset for this app id, on [`DEFAULT_FACEBOOK_VERSION`].
    pub fn new(client_id: impl Into<String>) -> Result<Self> {
        Self::with_version(client_id, DEFAULT_FACEBOOK_VERSION)
    }

    /// A preset for this app id on Graph API `version` (`v23.0`).
    pub fn with_version(client_id: impl Into<String>, version: &str) -> Result<Self> {
        let valid = version
            .strip_prefix('v')
            .and_then(|v| v.split_once('.'))
            .is_some_and(|(major, minor)| {
                !major.is_empty()
                    && !minor.is_empty()
                    && major
                        .bytes()
                        .chain(minor.bytes())
                        .all(|b| b.is_ascii_digit())
            });
        if !valid {
            return Err(Error::config("the Graph API version must look like v23.0"));
        }
        Ok(Self {
            base: FACEBOOK.base(client_id, &[("version", version)])?,
        })
    }

    /// Trades a short-lived user token for a long-lived one (about 60 days):
    /// `grant_type=fb_exchange_token` with the token in `fb_exchange_token`, authenticated with
    /// the app secret. The long-lived token cannot be renewed without a new sign-in; keep it
    /// (a [`TokenSource`](crate::TokenSource) built with
    /// [`initial_token`](crate::TokenSourceBuilder::initial_token) serves it until it expires).
    pub async fn long_lived(&self, token: &Token) -> Result<Token> {
        let request = TokenRequest::new("fb_exchange_token")
            .secret_param("fb_exchange_token", token.access_token().clone())
            .resend(Resend::Always);
        self.base.client.request_token(request).await
    }
}
