//! Kakao Login.

use async_trait::async_trait;

use super::{Base, Credential, Preset, api_get, endpoints, preset_common};
use crate::client::{AuthMethod, OAuthClient};
use crate::error::Result;
use crate::flow::AuthCode;
use crate::token::Token;

const AUTHORIZE: &str = "https://kauth.kakao.com/oauth/authorize";
const TOKEN: &str = "https://kauth.kakao.com/oauth/token";
const API: &str = "https://kapi.kakao.com";

/// Kakao Login: `kauth.kakao.com/oauth`, the API at `kapi.kakao.com`. The client id is the
/// app's REST API key.
///
/// The consent items (such as `account_email`) are chosen in the Kakao console; `scopes` asks
/// for more. The client secret is optional (when enabled in the console it is required) and
/// is sent as `client_secret_post`. Access tokens come with a refresh token.
///
/// [`id_email`](Preset::id_email) returns the numeric user id and `kakao_account.email` of
/// `GET /v2/user/me`, the latter only when Kakao says it is valid and verified
/// (`is_email_valid`, `is_email_verified`) and the person agreed to share it.
#[derive(Debug, Clone)]
pub struct Kakao {
    base: Base,
}

preset_common!(Kakao);

impl Kakao {
    /// A preset for this REST API key.
    pub fn new(client_id: impl Into<String>) -> Result<Self> {
        let client = endpoints(OAuthClient::builder(client_id), AUTHORIZE, TOKEN).build()?;
        Ok(Self {
            base: Base::new(client, "", AuthMethod::ClientSecretPost),
        })
    }
}

#[async_trait]
impl Preset for Kakao {
    fn name(&self) -> &'static str {
        "kakao"
    }

    fn client(&self) -> &OAuthClient {
        &self.base.client
    }

    fn auth_code(&self) -> AuthCode {
        self.base.flow()
    }

    async fn id_email(&self, token: &Token) -> Result<(String, Option<String>)> {
        let me = api_get(
            &self.base.client,
            &format!("{API}/v2/user/me"),
            token,
            Credential::Bearer,
        )
        .await?;
        let id = me.id(&["id"])?;
        let trusted = me.flag(&["kakao_account", "is_email_valid"]) == Some(true)
            && me.flag(&["kakao_account", "is_email_verified"]) == Some(true);
        let email = if trusted {
            me.text(&["kakao_account", "email"])
        } else {
            None
        };
        Ok((id, email))
    }

    fn api_origins(&self) -> Vec<String> {
        vec![API.to_owned()]
    }
}
