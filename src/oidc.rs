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

/// A GET with the token, answered with a JSON object: userinfo and the provider APIs that stand
/// in for it (GitHub's `/user`). A DPoP-bound token goes with a proof, and a `401` carrying a
/// new `DPoP-Nonce` is answered once more with a proof carrying it (SECURITY.md rules 47, 48).
pub(crate) async fn get_json(
    client: &OAuthClient,
    url: &str,
    token: &Token,
) -> Result<Map<String, Value>> {
    // A certificate-bound token goes only through a client presenting its certificate.
    token.check_certificate(client.certificate_thumbprint())?;
    #[cfg_attr(not(feature = "dpop"), allow(unused_mut))]
    let mut nonce: Option<std::sync::Arc<str>> = None;
    #[cfg(feature = "dpop")]
    let nonce_key = url::Url::parse(url)
        .map(|u| {
            // Served by the authorization server, which hands out one nonce for its endpoints.
            crate::dpop::origin_key_of_url(crate::dpop::NonceRole::AuthorizationServer, &u)
        })
        .unwrap_or_default();
    #[cfg(feature = "dpop")]
    if token.dpop_binding().is_some()
        && let Some(dpop) = client.dpop()
    {
        nonce = dpop.nonce_for(&nonce_key).await;
    }
    let mut first = true;
    loop {
        #[cfg_attr(not(feature = "dpop"), allow(unused_mut))]
        let mut request = http::Request::get(url)
            .header(ACCEPT, "application/json")
            .header(AUTHORIZATION, token.header_value().clone())
            .body(Bytes::new())
            .map_err(|e| Error::config(format!("cannot build the request: {e}")))?;
        #[cfg(feature = "dpop")]
        if let Some((key, ath)) = token.dpop_binding() {
            let proof = key.proof_with_ath(
                "GET",
                url,
                crate::clock::unix_seconds(client.clock()),
                ath,
                nonce.as_deref(),
            )?;
            let value = http::HeaderValue::try_from(proof)
                .map_err(|_| Error::Internal("a DPoP proof is not a header value".into()))?;
            request
                .headers_mut()
                .insert(crate::dpop::DPOP_HEADER, value);
        }
        let response = client
            .exchange(crate::error::Endpoint::UserInfo, request)
            .await?;
        #[cfg(feature = "dpop")]
        if token.dpop_binding().is_some()
            && let (Some(dpop), Some(fresh)) = (client.dpop(), response.dpop_nonce.as_deref())
        {
            let fresh = dpop.learn(&nonce_key, fresh);
            if first
                && response.status == http::StatusCode::UNAUTHORIZED
                && Some(&fresh) != nonce.as_ref()
            {
                first = false;
                nonce = Some(fresh);
                continue;
            }
        }
        let _ = (&mut first, &nonce);
        let mut secrets = Secrets::default();
        secrets.add(token.access_token().expose_secret());
        let map = response.json_object(&secrets)?;
        if !response.status.is_success() {
            return Err(response.unexpected("the endpoint answered an error status", &secrets));
        }
        return Ok(map);
    }
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
            .and_then(|m| m.userinfo_for(self.has_client_certificate()))
            .ok_or_else(|| Error::config("no userinfo endpoint (discover the issuer first)"))?;
        get_json(self, endpoint.as_str(), token).await
    }
}
