//! Pushed authorization requests (RFC 9126): the authorization parameters go to the server over
//! the back channel, with client authentication (and a DPoP proof when the client uses DPoP),
//! and the browser carries only `client_id` and the `request_uri` the server handed back.
//!
//! Nothing the person's browser, its extensions or its history could read or change is left in
//! the URL, and the server knows the request came from the registered client before anyone
//! signs in.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::client::{AuthMethod, OAuthClient};
use crate::error::{Endpoint, Error, Result};
use crate::redact::Secrets;
use crate::transport::RawResponse;

/// The longest `expires_in` taken from a server: a request URI is meant to live seconds or
/// minutes (RFC 9126 §2.2 suggests 5 to 600 s), so a larger value is clamped rather than trusted.
pub(crate) const MAX_REQUEST_URI_LIFETIME: Duration = Duration::from_secs(3600);

/// What the pushed authorization request endpoint handed back.
#[derive(Debug)]
pub(crate) struct Pushed {
    /// The reference the browser carries instead of the parameters (not a secret: it is bound
    /// to the client and used once).
    pub(crate) request_uri: String,
    /// When the request URI stops working, on the client's clock, measured from before the
    /// request was sent.
    pub(crate) expires_at: Instant,
    pub(crate) expires_in: Duration,
}

/// Pushes `params` (everything the authorization URL would carry) to the client's pushed
/// authorization request endpoint. A DPoP nonce challenge is answered once, with a fresh proof
/// (SECURITY.md rule 48); nothing else is retried, since the server may have stored the request.
pub(crate) async fn push(client: &OAuthClient, params: &[(String, String)]) -> Result<Pushed> {
    let url = client.par_url().ok_or_else(|| {
        Error::config(
            "pushed authorization requests need the server's pushed_authorization_request_endpoint \
             (OAuthClientBuilder::par_url, or metadata that names it)",
        )
    })?;
    let mut nonce_answered = false;
    loop {
        let (result, new_nonce) = push_once(client, url, params).await;
        match result {
            Err(_) if new_nonce && !nonce_answered => {
                nonce_answered = true;
                tracing::debug!(
                    "the pushed authorization request endpoint asked for a DPoP nonce; once more"
                );
            }
            done => return done,
        }
    }
}

/// One push. The `bool` says whether the answer was a `use_dpop_nonce` challenge with a nonce
/// other than the one sent.
async fn push_once(
    client: &OAuthClient,
    url: &url::Url,
    params: &[(String, String)],
) -> (Result<Pushed>, bool) {
    let mut secrets = Secrets::default();
    // A signed request object carries the state, nonce and PKCE challenge: never echoed back.
    for (name, value) in params {
        if name == "request" {
            secrets.add(value);
        }
    }
    let request = client
        .authenticated_form(
            url,
            |form| {
                // Client authentication names the client in the body itself, except with HTTP
                // Basic, where the header does and the body repeats it for the request's sake.
                let basic = matches!(client.auth_method(), AuthMethod::ClientSecretBasic);
                for (name, value) in params {
                    if name != "client_id" || basic {
                        form.append_pair(name, value);
                    }
                }
            },
            &mut secrets,
        )
        .await;
    #[cfg_attr(not(feature = "dpop"), allow(unused_mut))]
    let mut request = match request {
        Ok(request) => request,
        Err(e) => return (Err(e), false),
    };
    #[cfg(feature = "dpop")]
    let mut dpop_state = None;
    #[cfg(feature = "dpop")]
    if let Some(dpop) = client.dpop() {
        let key = match client.dpop_key() {
            Ok(Some(key)) => key,
            Ok(None) => return (Err(Error::Internal("no DPoP key".into())), false),
            Err(e) => return (Err(e), false),
        };
        let origin =
            crate::dpop::origin_key_of_url(crate::dpop::NonceRole::AuthorizationServer, url);
        let sent = dpop.nonce_for(&origin).await;
        let proof = key.proof(
            "POST",
            url.as_str(),
            crate::clock::unix_seconds(client.clock()),
            None,
            sent.as_deref(),
        );
        let value = proof.and_then(|proof| {
            http::HeaderValue::try_from(proof)
                .map_err(|_| Error::Internal("a DPoP proof is not a header value".into()))
        });
        match value {
            Ok(value) => {
                request
                    .headers_mut()
                    .insert(crate::dpop::DPOP_HEADER, value);
            }
            Err(e) => return (Err(e), false),
        }
        dpop_state = Some((dpop, origin, sent));
    }

    // The request URI lives from the moment the server stores it: measure from before sending.
    let asked_at = client.clock().now();
    tracing::debug!(
        endpoint = %url.origin().ascii_serialization(),
        "pushed authorization request"
    );
    let mut response = match client
        .exchange(Endpoint::PushedAuthorization, request)
        .await
    {
        Ok(response) => response,
        Err(e) => return (Err(e.into()), false),
    };
    tracing::debug!(
        status = response.status.as_u16(),
        "pushed authorization response"
    );
    let result = parse(&response, asked_at, &secrets);
    #[cfg(feature = "dpop")]
    if let Some((dpop, origin, sent)) = dpop_state {
        let fresh = response
            .dpop_nonce
            .take()
            .map(|nonce| dpop.learn(&origin, &nonce));
        let new_nonce = matches!(&result, Err(Error::Server(e)) if e.code.as_str() == "use_dpop_nonce")
            && fresh.is_some()
            && fresh != sent;
        return (result, new_nonce);
    }
    #[cfg(not(feature = "dpop"))]
    let _ = &mut response;
    (result, false)
}

/// Reads the answer (RFC 9126 §2.2, §2.3): 201 (or 200) with a JSON object carrying a string
/// `request_uri` and a positive integer `expires_in`; an OAuth error is [`Error::Server`];
/// anything else [`Error::UnexpectedResponse`], with what the server echoed redacted.
fn parse(response: &RawResponse, asked_at: Instant, secrets: &Secrets<'_>) -> Result<Pushed> {
    let map = response.json_object(secrets)?;
    response.check_oauth(&map, secrets)?;
    let request_uri = match map.get("request_uri") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        None | Some(Value::String(_)) => {
            return Err(response.unexpected("no request_uri", secrets));
        }
        Some(_) => return Err(response.unexpected("request_uri is not a string", secrets)),
    };
    if request_uri.chars().any(char::is_control) || request_uri.len() > 2048 {
        return Err(response.unexpected("request_uri is not a usable URI", secrets));
    }
    let expires_in = match map.get("expires_in") {
        Some(Value::Number(n)) => match n.as_u64() {
            Some(0) | None => {
                return Err(response.unexpected("expires_in is not a positive integer", secrets));
            }
            Some(secs) => Duration::from_secs(secs).min(MAX_REQUEST_URI_LIFETIME),
        },
        None => return Err(response.unexpected("no expires_in", secrets)),
        Some(_) => return Err(response.unexpected("expires_in is not a number", secrets)),
    };
    Ok(Pushed {
        request_uri,
        expires_at: crate::clock::instant_after(asked_at, expires_in),
        expires_in,
    })
}
