//! GitHub (OAuth apps and GitHub Apps acting for a person).

use std::time::Duration;

use super::profile::Profile;
use super::{Base, Spec, preset};
use crate::error::Result;

/// How long a GitHub token that comes without `expires_in` is taken to live: a year, because
/// OAuth app tokens do not expire but GitHub revokes those unused for a year. Until then a 401
/// (GitHub sends it without a bearer challenge) is what renews the token.
pub const GITHUB_TOKEN_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

const GITHUB: Spec = Spec {
    name: "github",
    authorize: "https://github.com/login/oauth/authorize",
    token: "https://github.com/login/oauth/access_token",
    device: Some("https://github.com/login/device/code"),
    scopes: "read:user user:email",
    lifetime_without_expiry: Some(GITHUB_TOKEN_LIFETIME),
    api: Some("https://api.github.com"),
    profile: Profile {
        other_emails: Some("https://api.github.com/user/emails"),
        ..Profile::api("https://api.github.com/user", &["id"], &["email"])
    },
    ..Spec::OAUTH
};

/// GitHub: `github.com/login/oauth`, the REST API at `api.github.com`.
///
/// Quirks encoded:
/// - the token endpoint answers `application/x-www-form-urlencoded` unless asked for JSON: the
///   client asks for JSON (`Accept: application/json`) and parses a form body as well;
/// - errors come back with status 200 (`error=bad_verification_code`): they are errors all the
///   same;
/// - OAuth app tokens never expire and come without `expires_in`, so they are kept for
///   [`GITHUB_TOKEN_LIFETIME`] instead of the crate's one hour; GitHub App user tokens carry
///   `expires_in` (eight hours) and a refresh token, which are used as sent;
/// - the API wants a `User-Agent`: the client's (`oauth-layer/<version>` unless changed with
///   `with_client`) is sent on every request;
/// - client authentication with a secret is `client_secret_post` (`client_id` and
///   `client_secret` in the body), as GitHub documents;
/// - default scopes `read:user user:email`, which [`id_email`](super::Preset::id_email) needs.
///
/// [`id_email`](super::Preset::id_email) returns the numeric account id (stable across renames) and
/// the public email of `GET /user`; when that is `null`, the primary verified address of
/// `GET /user/emails` (needs `user:email`), or `None`.
#[derive(Debug, Clone)]
pub struct GitHub {
    base: Base,
}

preset!(GitHub);

impl GitHub {
    /// A preset for the OAuth or GitHub App with this client id.
    pub fn new(client_id: impl Into<String>) -> Result<Self> {
        Ok(Self {
            base: GITHUB.base(client_id, &[])?,
        })
    }
}
