//! Rich authorization requests (RFC 9396) at the authorization and token endpoints: the
//! `authorization_details` parameter checked, carried from an authorization code to its tokens,
//! recorded with the tokens and echoed in the token response (§7).

use http::StatusCode;
use serde_json::Value;

use super::form::Form;
use super::reply::OAuthError;
use super::state::{Config, Shared};

/// The error code of RFC 9396 §5 for details that are malformed or not allowed.
pub(super) const INVALID: &str = "invalid_authorization_details";

/// The request's `authorization_details`, when it has one: a JSON array of objects, each with
/// a non-empty string `type` the server accepts. `Err` carries the description of the refusal.
pub(super) fn parse(params: &Form, config: &Config) -> Result<Option<Value>, &'static str> {
    let Some(raw) = params.get("authorization_details") else {
        return Ok(None);
    };
    let Ok(Value::Array(details)) = serde_json::from_str::<Value>(raw) else {
        return Err("authorization_details is not a JSON array");
    };
    for detail in &details {
        let Some(object) = detail.as_object() else {
            return Err("an authorization detail is not a JSON object");
        };
        let detail_type = match object.get("type") {
            Some(Value::String(t)) if !t.is_empty() => t,
            _ => return Err("an authorization detail has no string type"),
        };
        if let Some(types) = &config.authorization_details_types
            && !types.iter().any(|t| t == detail_type)
        {
            return Err("an authorization detail type is not supported");
        }
    }
    Ok(Some(Value::Array(details)))
}

/// The token endpoint's answer to details [`parse`] refused.
pub(super) fn refusal(description: &'static str) -> OAuthError {
    OAuthError::new(StatusCode::BAD_REQUEST, INVALID, description)
}

/// Records `requested` (the token request's details, when it sent any) with the tokens just
/// issued, then echoes the details the access token was issued for in `answer`: those of the
/// token request, else those of its grant (the authorization request behind a code, or the
/// original request behind a refresh token).
pub(super) fn grant(shared: &Shared, requested: Option<Value>, answer: &mut Value) {
    let mut state = shared.lock();
    if let Some(requested) = &requested {
        if let Some(token) = answer["access_token"].as_str()
            && let Some(issued) = state.access_tokens.get_mut(token)
        {
            issued.grant.authorization_details = Some(requested.clone());
        }
        if let Some(token) = answer["refresh_token"].as_str()
            && let Some(grant) = state.refresh_tokens.get_mut(token)
        {
            grant.authorization_details = Some(requested.clone());
        }
    }
    let granted = answer["access_token"]
        .as_str()
        .and_then(|token| state.access_tokens.get(token))
        .and_then(|issued| issued.grant.authorization_details.clone());
    drop(state);
    if let Some(granted) = granted {
        answer["authorization_details"] = granted;
    }
}
