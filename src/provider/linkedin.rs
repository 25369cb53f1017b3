//! LinkedIn (Sign In with LinkedIn using OpenID Connect).

use async_trait::async_trait;

use super::{Base, Preset, endpoints, preset_common, static_oidc, userinfo_id_email, userinfo_url};
use crate::client::{AuthMethod, OAuthClient};
use crate::error::Result;
use crate::flow::AuthCode;
use crate::token::Token;

const ISSUER: &str = "https://www.linkedin.com/oauth";
const AUTHORIZE: &str = "https://www.linkedin.com/oauth/v2/authorization";
const TOKEN: &str = "https://www.linkedin.com/oauth/v2/accessToken";
const USERINFO: &str = "https://api.linkedin.com/v2/userinfo";
const JWKS: &str = "https://www.linkedin.com/oauth/openid/jwks";

/// LinkedIn's "Sign In with LinkedIn using OpenID Connect".
///
/// Quirks encoded:
/// - LinkedIn's token endpoint refuses a `code_verifier` from web apps (`invalid_client`), so
///   PKCE is off;
/// - its ID tokens do not carry the `nonce` sent, so they cannot be validated as OpenID Connect
///   requires and are not: the token comes straight from LinkedIn over TLS, and
///   [`id_email`](Preset::id_email) asks LinkedIn's userinfo endpoint;
/// - no refresh tokens for most apps: access tokens live 60 days, then the person signs in
///   again;
/// - client authentication is `client_secret_post`; default scopes `openid profile email`.
///
/// [`id_email`](Preset::id_email) returns `sub` and `email` from `api.linkedin.com/v2/userinfo`.
#[derive(Debug, Clone)]
pub struct LinkedIn {
    base: Base,
}

preset_common!(LinkedIn);

impl LinkedIn {
    /// A preset for this client id.
    pub fn new(client_id: impl Into<String>) -> Result<Self> {
        let client = endpoints(OAuthClient::builder(client_id), AUTHORIZE, TOKEN);
        let client = static_oidc(client, ISSUER, Some(USERINFO), Some(JWKS))?;
        Ok(Self {
            base: Base::new(client, "openid profile email", AuthMethod::ClientSecretPost),
        })
    }
}

#[async_trait]
impl Preset for LinkedIn {
    fn name(&self) -> &'static str {
        "linkedin"
    }

    fn client(&self) -> &OAuthClient {
        &self.base.client
    }

    fn auth_code(&self) -> AuthCode {
        self.base.flow().pkce(false)
    }

    async fn id_email(&self, token: &Token) -> Result<(String, Option<String>)> {
        let url = userinfo_url(&self.base.client)?;
        userinfo_id_email(&self.base.client, &url, token).await
    }

    fn api_origins(&self) -> Vec<String> {
        vec!["https://api.linkedin.com".to_owned()]
    }
}
