//! GitHub (OAuth apps and GitHub Apps acting for a person).

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::{Base, Credential, Preset, api_get, endpoints, preset_common};
use crate::client::{AuthMethod, OAuthClient};
use crate::error::Result;
use crate::flow::AuthCode;
use crate::token::Token;

const AUTHORIZE: &str = "https://github.com/login/oauth/authorize";
const TOKEN: &str = "https://github.com/login/oauth/access_token";
const DEVICE: &str = "https://github.com/login/device/code";
const API: &str = "https://api.github.com";

/// How long a GitHub token that comes without `expires_in` is taken to live: a year, because
/// OAuth app tokens do not expire but GitHub revokes those unused for a year. Until then a 401
/// (GitHub sends it without a bearer challenge) is what renews the token.
pub const GITHUB_TOKEN_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

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
/// - default scopes `read:user user:email`, which [`id_email`](Preset::id_email) needs.
///
/// [`id_email`](Preset::id_email) returns the numeric account id (stable across renames) and
/// the public email of `GET /user`; when that is `null`, the primary verified address of
/// `GET /user/emails` (needs `user:email`), or `None`.
#[derive(Debug, Clone)]
pub struct GitHub {
    base: Base,
}

preset_common!(GitHub);

impl GitHub {
    /// A preset for the OAuth or GitHub App with this client id.
    pub fn new(client_id: impl Into<String>) -> Result<Self> {
        let client = endpoints(OAuthClient::builder(client_id), AUTHORIZE, TOKEN)
            .device_authorization_url(DEVICE)
            .default_lifetime(GITHUB_TOKEN_LIFETIME)
            .build()?;
        Ok(Self {
            base: Base::new(client, "read:user user:email", AuthMethod::ClientSecretPost),
        })
    }
}

#[async_trait]
impl Preset for GitHub {
    fn name(&self) -> &'static str {
        "github"
    }

    fn client(&self) -> &OAuthClient {
        &self.base.client
    }

    fn auth_code(&self) -> AuthCode {
        self.base.flow()
    }

    async fn id_email(&self, token: &Token) -> Result<(String, Option<String>)> {
        let client = &self.base.client;
        let user = api_get(client, &format!("{API}/user"), token, Credential::Bearer).await?;
        let id = user.id(&["id"])?;
        if let Some(email) = user.text(&["email"]) {
            return Ok((id, Some(email)));
        }
        let emails = api_get_list(client, &format!("{API}/user/emails"), token).await?;
        let primary = emails.iter().find_map(|e| {
            let yes = |name: &str| e.get(name).and_then(Value::as_bool) == Some(true);
            (yes("primary") && yes("verified"))
                .then(|| e.get("email").and_then(Value::as_str))
                .flatten()
                .map(str::to_owned)
        });
        Ok((id, primary))
    }

    fn api_origins(&self) -> Vec<String> {
        vec![API.to_owned()]
    }
}

/// `GET url` answered with a JSON array (GitHub's `/user/emails`).
async fn api_get_list(client: &OAuthClient, url: &str, token: &Token) -> Result<Vec<Value>> {
    use bytes::Bytes;
    use http::header::{ACCEPT, AUTHORIZATION};
    use secrecy::ExposeSecret;

    let request = http::Request::get(url)
        .header(ACCEPT, "application/json")
        .header(AUTHORIZATION, token.header_value().clone())
        .body(Bytes::new())
        .map_err(|e| crate::error::Error::config(format!("cannot build the request: {e}")))?;
    let response = client
        .exchange(crate::error::Endpoint::ProviderApi, request)
        .await?;
    let mut secrets = crate::redact::Secrets::default();
    secrets.add(token.access_token().expose_secret());
    if !response.status.is_success() {
        return Err(response.unexpected("the API answered an error status", &secrets));
    }
    match serde_json::from_slice::<Value>(&response.body) {
        Ok(Value::Array(items)) => Ok(items),
        _ => Err(response.unexpected("not a JSON array", &secrets)),
    }
}
