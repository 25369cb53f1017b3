//! Discord.

use async_trait::async_trait;

use super::{Base, Credential, Preset, api_get, endpoints, preset_common};
use crate::client::{AuthMethod, OAuthClient};
use crate::error::Result;
use crate::flow::AuthCode;
use crate::token::Token;

const AUTHORIZE: &str = "https://discord.com/oauth2/authorize";
const TOKEN: &str = "https://discord.com/api/oauth2/token";
const REVOKE: &str = "https://discord.com/api/oauth2/token/revoke";
const API: &str = "https://discord.com";

/// Discord: `discord.com/oauth2`, the API at `discord.com/api`.
///
/// Default scopes `identify email` ([`id_email`](Preset::id_email) needs both); access tokens
/// live a week and come with a refresh token; client authentication with a secret is
/// `client_secret_basic`, as in Discord's examples.
///
/// [`id_email`](Preset::id_email) returns the user's snowflake id and, only when Discord says
/// the address is `verified`, the email of `GET /api/users/@me`.
#[derive(Debug, Clone)]
pub struct Discord {
    base: Base,
}

preset_common!(Discord);

impl Discord {
    /// A preset for this application (client) id.
    pub fn new(client_id: impl Into<String>) -> Result<Self> {
        let client = endpoints(OAuthClient::builder(client_id), AUTHORIZE, TOKEN)
            .revocation_url(REVOKE)
            .build()?;
        Ok(Self {
            base: Base::new(client, "identify email", AuthMethod::ClientSecretBasic),
        })
    }
}

#[async_trait]
impl Preset for Discord {
    fn name(&self) -> &'static str {
        "discord"
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
            &format!("{API}/api/users/@me"),
            token,
            Credential::Bearer,
        )
        .await?;
        let id = me.id(&["id"])?;
        let email = match me.flag(&["verified"]) {
            Some(true) => me.text(&["email"]),
            _ => None,
        };
        Ok((id, email))
    }

    fn api_origins(&self) -> Vec<String> {
        vec![API.to_owned()]
    }
}
