//! Naver Login.

use async_trait::async_trait;

use super::{Base, Credential, Preset, api_get, endpoints, preset_common};
use crate::client::{AuthMethod, OAuthClient};
use crate::error::Result;
use crate::flow::AuthCode;
use crate::token::Token;

const AUTHORIZE: &str = "https://nid.naver.com/oauth2.0/authorize";
const TOKEN: &str = "https://nid.naver.com/oauth2.0/token";
const API: &str = "https://openapi.naver.com";

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
/// [`id_email`](Preset::id_email) returns `response.id` (an id for the person, per app) and
/// `response.email` of `GET /v1/nid/me`.
#[derive(Debug, Clone)]
pub struct Naver {
    base: Base,
}

preset_common!(Naver);

impl Naver {
    /// A preset for this client id.
    pub fn new(client_id: impl Into<String>) -> Result<Self> {
        let client = endpoints(OAuthClient::builder(client_id), AUTHORIZE, TOKEN).build()?;
        Ok(Self {
            base: Base::new(client, "", AuthMethod::ClientSecretPost),
        })
    }
}

#[async_trait]
impl Preset for Naver {
    fn name(&self) -> &'static str {
        "naver"
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
            &format!("{API}/v1/nid/me"),
            token,
            Credential::Bearer,
        )
        .await?;
        if me.text(&["resultcode"]).is_some_and(|c| c != "00") {
            return Err(me.missing("the profile API answered an error result code"));
        }
        Ok((me.id(&["response", "id"])?, me.text(&["response", "email"])))
    }

    fn api_origins(&self) -> Vec<String> {
        vec![API.to_owned()]
    }
}
