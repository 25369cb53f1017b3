//! Client authentication at the token, revocation and device authorization endpoints
//! (RFC 6749 §2.3).

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};

use crate::client::AuthMethod;

use super::form::{Form, form_decode};
use super::reply::OAuthError;
use super::state::Config;

/// Finds and checks the client's credentials (RFC 6749 §2.3): HTTP Basic, `client_secret` in the
/// body, or only `client_id` for a public client. A client must use the method it registered.
pub(super) fn authenticate<'c>(
    config: &'c Config,
    headers: &HeaderMap,
    form: &Form,
) -> Result<&'c str, OAuthError> {
    let mut authorizations = headers.get_all(AUTHORIZATION).iter();
    let header = authorizations.next();
    if authorizations.next().is_some() {
        return Err(OAuthError::invalid_request(
            "more than one Authorization header",
        ));
    }
    let body_id = form.get("client_id");
    let body_secret = form.get("client_secret");
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
    let (registered_id, registration) = config
        .clients
        .get_key_value(client_id.as_ref())
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
    Ok(registered_id)
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
