//! Naver Login.

use super::profile::Profile;
use super::{Base, Spec, preset};
use crate::error::Result;

const NAVER: Spec = Spec {
    name: "naver",
    authorize: "https://nid.naver.com/oauth2.0/authorize",
    token: "https://nid.naver.com/oauth2.0/token",
    api: Some("https://openapi.naver.com"),
    profile: Profile {
        result: Some((&["resultcode"], "00")),
        ..Profile::api(
            "https://openapi.naver.com/v1/nid/me",
            &["response", "id"],
            &["response", "email"],
        )
    },
    ..Spec::OAUTH
};

/// Naver Login: `nid.naver.com/oauth2.0`, the profile API at `openapi.naver.com`.
///
/// Quirks encoded:
/// - the token endpoint sends `expires_in` as a string (`"3600"`) and errors with status 200:
///   both handled by the client;
/// - client authentication is `client_secret_post` (`client_id` and `client_secret` in the
///   request);
/// - what is shared (email, name...) is chosen in Naver's console, not with scopes.
///
/// Naver's guide also lists `state` on the token request; the preset sends the standard
/// request (code, redirect URI, PKCE verifier), as other OAuth clients do.
///
/// [`id_email`](super::Preset::id_email) returns `response.id` (an id for the person, per app) and
/// `response.email` of `GET /v1/nid/me`.
#[derive(Debug, Clone)]
pub struct Naver {
    base: Base,
}

preset!(Naver);

impl Naver {
    /// A preset for this client id.
    pub fn new(client_id: impl Into<String>) -> Result<Self> {
        Ok(Self {
            base: NAVER.base(client_id, &[])?,
        })
    }
}
