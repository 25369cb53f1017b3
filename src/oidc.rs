//! OpenID Connect: ID token validation against the issuer's keys (SECURITY.md rules 44 and 45,
//! feature `jwt`), and the userinfo endpoint.

#[cfg(feature = "jwt")]
mod id_token;

#[cfg(feature = "jwt")]
pub use id_token::{DEFAULT_LEEWAY, IdTokenClaims, IdTokenValidator, MAX_ID_TOKEN_LEN};

/// The placeholder that makes an issuer a per-tenant template, as Microsoft's multi-tenant
/// discovery documents publish it (see `IdTokenValidator::new`, feature `jwt`).
pub const TENANT_PLACEHOLDER: &str = "{tenantid}";

/// `8-4-4-4-12` hexadecimal digits, as tenant ids are.
#[cfg(any(feature = "jwt", feature = "auth-code"))]
pub(crate) fn is_guid(text: &str) -> bool {
    text.len() == 36
        && text.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION};
use secrecy::ExposeSecret;
use serde_json::{Map, Value};

use crate::client::OAuthClient;
use crate::error::{Error, Result};
use crate::redact::Secrets;
use crate::token::Token;

/// Calls the userinfo endpoint (OIDC Core §5.3) with `token` and returns the claims about the
/// person. `userinfo_endpoint` must be https (or http on loopback).
pub async fn userinfo(
    client: &OAuthClient,
    userinfo_endpoint: &str,
    token: &Token,
) -> Result<Map<String, Value>> {
    get_json(client, userinfo_endpoint, token).await
}

/// A GET with the bearer token, answered with a JSON object: userinfo and the provider APIs
/// that stand in for it (GitHub's `/user`).
pub(crate) async fn get_json(
    client: &OAuthClient,
    url: &str,
    token: &Token,
) -> Result<Map<String, Value>> {
    let request = http::Request::get(url)
        .header(ACCEPT, "application/json")
        .header(AUTHORIZATION, token.header_value().clone())
        .body(Bytes::new())
        .map_err(|e| Error::config(format!("cannot build the request: {e}")))?;
    let response = client
        .exchange(crate::error::Endpoint::UserInfo, request)
        .await?;
    let mut secrets = Secrets::default();
    secrets.add(token.access_token().expose_secret());
    let map = response.json_object(&secrets)?;
    if !response.status.is_success() {
        return Err(response.unexpected("the endpoint answered an error status", &secrets));
    }
    Ok(map)
}

impl OAuthClient {
    /// Calls the issuer's userinfo endpoint (from
    /// [`discovery::configure`](crate::discovery::configure)) with `token` and returns the claims
    /// about the person (OIDC Core §5.3).
    ///
    /// ```no_run
    /// # async fn run(client: oauth_layer::OAuthClient, token: oauth_layer::Token) -> oauth_layer::Result<()> {
    /// let claims = client.userinfo(&token).await?;
    /// println!("{:?}", claims.get("email"));
    /// # Ok(()) }
    /// ```
    pub async fn userinfo(&self, token: &Token) -> Result<Map<String, Value>> {
        let endpoint = self
            .metadata()
            .and_then(|m| m.userinfo_endpoint.as_ref())
            .ok_or_else(|| Error::config("no userinfo endpoint (discover the issuer first)"))?;
        get_json(self, endpoint.as_str(), token).await
    }
}
