//! Client authentication at the token, revocation and device authorization endpoints: HTTP
//! Basic, `client_secret_post` and `none` (RFC 6749 §2.3), and JWT client assertions
//! (`private_key_jwt` and `client_secret_jwt`, RFC 7523 §2.2 and OpenID Connect Core §9).

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};

use crate::client::AuthMethod;

use super::form::{Form, form_decode};
use super::reply::OAuthError;
use super::state::Shared;

/// The `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
#[cfg(feature = "jwt")]
const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Finds and checks the client's credentials: HTTP Basic, `client_secret` in the body, a JWT
/// client assertion, or only `client_id` for a public client. A client must use the method it
/// registered.
pub(super) fn authenticate(
    shared: &Shared,
    headers: &HeaderMap,
    form: &Form,
) -> Result<String, OAuthError> {
    let mut authorizations = headers.get_all(AUTHORIZATION).iter();
    let header = authorizations.next();
    if authorizations.next().is_some() {
        return Err(OAuthError::invalid_request(
            "more than one Authorization header",
        ));
    }
    let body_id = form.get("client_id");
    let body_secret = form.get("client_secret");
    if form.get("client_assertion").is_some() || form.get("client_assertion_type").is_some() {
        if header.is_some() || body_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "more than one client authentication method",
            ));
        }
        return client_assertion(shared, form);
    }
    let (client_id, secret, method) = match header {
        Some(value) => {
            let (id, secret) = basic_credentials(value)
                .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
            if body_secret.is_some() {
                return Err(OAuthError::invalid_request(
                    "more than one client authentication method",
                ));
            }
            if body_id.is_some_and(|b| b != id) {
                return Err(OAuthError::invalid_request(
                    "client_id in the body differs from the Basic credentials",
                ));
            }
            (
                Cow::Owned(id),
                Some(Cow::Owned(secret)),
                AuthMethod::ClientSecretBasic,
            )
        }
        None => match (body_id, body_secret) {
            (Some(id), Some(secret)) => (
                Cow::Borrowed(id),
                Some(Cow::Borrowed(secret)),
                AuthMethod::ClientSecretPost,
            ),
            (Some(id), None) => (Cow::Borrowed(id), None, AuthMethod::None),
            (None, _) => return Err(OAuthError::invalid_client("no client authentication")),
        },
    };
    let registration = shared
        .client(client_id.as_ref())
        .ok_or_else(|| OAuthError::invalid_client("unknown client"))?;
    if registration.method != method {
        return Err(OAuthError::invalid_client(format!(
            "client is registered for {}, not {}",
            registration.method.as_str(),
            method.as_str()
        )));
    }
    if registration.secret.as_deref() != secret.as_deref() {
        return Err(OAuthError::invalid_client("wrong client secret"));
    }
    Ok(client_id.into_owned())
}

/// A JWT client assertion: `client_id` (or else the assertion's `iss`) names the client, whose
/// registered method says which key checks the signature; `iss` and `sub` must be the client,
/// `aud` this token endpoint or issuer, `exp` ahead, and the `jti` new.
#[cfg(feature = "jwt")]
fn client_assertion(shared: &Shared, form: &Form) -> Result<String, OAuthError> {
    use super::assertion::{Expect, TrustedKey, unverified_issuer, verify};

    if form.get("client_assertion_type") != Some(CLIENT_ASSERTION_TYPE) {
        return Err(OAuthError::invalid_request(format!(
            "client_assertion_type must be {CLIENT_ASSERTION_TYPE}"
        )));
    }
    let assertion = form
        .get("client_assertion")
        .ok_or_else(|| OAuthError::invalid_request("client_assertion is missing"))?;
    let claimed = match form.get("client_id") {
        Some(id) => id.to_owned(),
        None => unverified_issuer(assertion)
            .ok_or_else(|| OAuthError::invalid_client("the client assertion names no client"))?,
    };
    let registration = shared
        .client(&claimed)
        .ok_or_else(|| OAuthError::invalid_client("unknown client"))?;
    let registered_id = claimed.as_str();
    let key = match (registration.method, &registration.key, &registration.secret) {
        (AuthMethod::PrivateKeyJwt, Some(key), _) => key.clone(),
        (AuthMethod::ClientSecretJwt, _, Some(secret)) => TrustedKey::from_secret(secret),
        (method, _, _) => {
            return Err(OAuthError::invalid_client(format!(
                "client is registered for {}, not a client assertion",
                method.as_str()
            )));
        }
    };
    let expect = Expect {
        audience: true,
        single_use: true,
    };
    let claims = verify(shared, assertion, &key, &expect).map_err(OAuthError::invalid_client)?;
    let is_client =
        |name: &str| claims.get(name).and_then(serde_json::Value::as_str) == Some(registered_id);
    if !is_client("iss") || !is_client("sub") {
        return Err(OAuthError::invalid_client(
            "the client assertion's iss and sub must both be the client id",
        ));
    }
    Ok(claimed)
}

#[cfg(not(feature = "jwt"))]
fn client_assertion(_: &Shared, _: &Form) -> Result<String, OAuthError> {
    Err(OAuthError::invalid_client(
        "client assertions need the jwt feature of oauth-layer",
    ))
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` → `(id, secret)`, decoded as RFC 6749
/// §2.3.1 requires.
fn basic_credentials(value: &HeaderValue) -> Option<(String, String)> {
    let (scheme, encoded) = value.to_str().ok()?.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decode(id)?, form_decode(secret)?))
}
