//! Reddit.

use super::profile::Profile;
use super::{Base, Spec, preset};
use crate::client::AuthMethod;
use crate::error::Result;

const REDDIT: Spec = Spec {
    name: "reddit",
    authorize: "https://www.reddit.com/api/v1/authorize",
    token: "https://www.reddit.com/api/v1/access_token",
    revocation: Some("https://www.reddit.com/api/v1/revoke_token"),
    scopes: "identity",
    secret_method: AuthMethod::ClientSecretBasic,
    basic_without_secret: true,
    auth_params: &[("duration", "permanent")],
    api: Some("https://oauth.reddit.com"),
    profile: Profile::api("https://oauth.reddit.com/api/v1/me", &["id"], &[]),
    ..Spec::OAUTH
};

/// Reddit: sign-in at `www.reddit.com/api/v1`, the API at `oauth.reddit.com`.
///
/// Quirks encoded:
/// - the token endpoint wants HTTP Basic even from installed apps, which have no secret: the
///   preset sends `client_id:` (an empty secret) until [`secret`](Self::secret) sets one (web
///   apps);
/// - Reddit throttles or refuses generic user agents: [`new`](Self::new) takes a descriptive
///   one, such as `linux:com.example.myapp:v1.2.3 (by /u/yourname)`, sent on every request;
/// - refresh tokens come only with `duration=permanent`, added by
///   [`auth_code`](super::Preset::auth_code) unless [`permanent`](Self::permanent) is `false`;
/// - default scope `identity`.
///
/// [`id_email`](super::Preset::id_email) returns the account id of `GET /api/v1/me` (base 36, without
/// the `t2_` prefix) and never an email: Reddit does not give one.
#[derive(Debug, Clone)]
pub struct Reddit {
    base: Base,
}

preset!(Reddit);

impl Reddit {
    /// A preset for this client id, sending `user_agent` on every request.
    pub fn new(client_id: impl Into<String>, user_agent: &str) -> Result<Self> {
        Ok(Self {
            base: REDDIT.base_with(client_id, &[], |c| c.user_agent(user_agent))?,
        })
    }

    /// Ask for a refresh token with `duration=permanent` (default `true`; `false` sends
    /// `duration=temporary`, an hour's access).
    pub fn permanent(mut self, permanent: bool) -> Self {
        let duration = if permanent { "permanent" } else { "temporary" };
        self.base = self.base.param("duration", Some(duration));
        self
    }
}
