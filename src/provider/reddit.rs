//! Reddit.

use async_trait::async_trait;

use super::{Base, Credential, Preset, api_get, endpoints, preset_common};
use crate::client::{AuthMethod, OAuthClient};
use crate::error::Result;
use crate::flow::AuthCode;
use crate::token::Token;

const AUTHORIZE: &str = "https://www.reddit.com/api/v1/authorize";
const TOKEN: &str = "https://www.reddit.com/api/v1/access_token";
const REVOKE: &str = "https://www.reddit.com/api/v1/revoke_token";
const API: &str = "https://oauth.reddit.com";

/// Reddit: sign-in at `www.reddit.com/api/v1`, the API at `oauth.reddit.com`.
///
/// Quirks encoded:
/// - the token endpoint wants HTTP Basic even from installed apps, which have no secret: the
///   preset sends `client_id:` (an empty secret) until [`secret`](Self::secret) sets one (web
///   apps);
/// - Reddit throttles or refuses generic user agents: [`new`](Self::new) takes a descriptive
///   one, such as `linux:com.example.myapp:v1.2.3 (by /u/yourname)`, sent on every request;
/// - refresh tokens come only with `duration=permanent`, added by
///   [`auth_code`](Preset::auth_code) unless [`permanent`](Self::permanent) is `false`;
/// - default scope `identity`.
///
/// [`id_email`](Preset::id_email) returns the account id of `GET /api/v1/me` (base 36, without
/// the `t2_` prefix) and never an email: Reddit does not give one.
#[derive(Debug, Clone)]
pub struct Reddit {
    base: Base,
    permanent: bool,
}

preset_common!(Reddit);

impl Reddit {
    /// A preset for this client id, sending `user_agent` on every request.
    pub fn new(client_id: impl Into<String>, user_agent: &str) -> Result<Self> {
        let client = endpoints(OAuthClient::builder(client_id), AUTHORIZE, TOKEN)
            .revocation_url(REVOKE)
            .user_agent(user_agent)
            // Installed apps: Basic with an empty secret.
            .secret("")
            .auth_method(AuthMethod::ClientSecretBasic)
            .build()?;
        Ok(Self {
            base: Base::new(client, "identity", AuthMethod::ClientSecretBasic),
            permanent: true,
        })
    }

    /// Ask for a refresh token with `duration=permanent` (default `true`; `false` sends
    /// `duration=temporary`, an hour's access).
    pub fn permanent(mut self, permanent: bool) -> Self {
        self.permanent = permanent;
        self
    }
}

#[async_trait]
impl Preset for Reddit {
    fn name(&self) -> &'static str {
        "reddit"
    }

    fn client(&self) -> &OAuthClient {
        &self.base.client
    }

    fn auth_code(&self) -> AuthCode {
        let duration = if self.permanent {
            "permanent"
        } else {
            "temporary"
        };
        self.base.flow().auth_param("duration", duration)
    }

    async fn id_email(&self, token: &Token) -> Result<(String, Option<String>)> {
        let me = api_get(
            &self.base.client,
            &format!("{API}/api/v1/me"),
            token,
            Credential::Bearer,
        )
        .await?;
        Ok((me.id(&["id"])?, None))
    }

    fn api_origins(&self) -> Vec<String> {
        vec![API.to_owned()]
    }
}
