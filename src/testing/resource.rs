//! The protected resource (RFC 6750): any path under `/api/`.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderValue, StatusCode};
use serde_json::json;

use super::RecordedRequest;
use super::form::has_scope;
use super::reply::{Response, json_response};
use super::state::Shared;

/// `/api/...`: checks the bearer token, then records the request with the answer's status.
pub(super) fn endpoint(shared: &Shared, parts: &Parts, body: Bytes) -> Response {
    let response = resource_answer(shared, parts, body.len());
    let authorization = parts
        .headers
        .get(AUTHORIZATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    shared.lock().resource_requests.push(RecordedRequest {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        authorization,
        headers: parts.headers.clone(),
        body,
        status: response.status().as_u16(),
    });
    response
}

fn resource_answer(shared: &Shared, parts: &Parts, body_len: usize) -> Response {
    let path = parts.uri.path();
    let authorizations: Vec<&HeaderValue> = parts.headers.get_all(AUTHORIZATION).iter().collect();
    let token = match authorizations.as_slice() {
        [] => return bearer_challenge(StatusCode::UNAUTHORIZED, "Bearer", None),
        [value] => match bearer_token(value) {
            Bearer::Token(token) => token,
            Bearer::OtherScheme => {
                return bearer_challenge(StatusCode::UNAUTHORIZED, "Bearer", None);
            }
            Bearer::Malformed => return invalid_bearer_request("malformed Bearer credentials"),
        },
        _ => return invalid_bearer_request("more than one Authorization header"),
    };

    let now = shared.config.clock.now();
    let grant = shared
        .lock()
        .access_tokens
        .get(token)
        .filter(|t| now < t.expires_at)
        .map(|t| t.grant.clone());
    let Some(grant) = grant else {
        return bearer_challenge(
            StatusCode::UNAUTHORIZED,
            r#"Bearer error="invalid_token""#,
            Some(("invalid_token", "unknown, expired or revoked access token")),
        );
    };

    if let Some(required) = shared.config.required_scope(path)
        && !has_scope(grant.scope.as_deref(), required)
    {
        let challenge = format!(r#"Bearer error="insufficient_scope", scope="{required}""#);
        let challenge = if HeaderValue::try_from(challenge.as_str()).is_ok() {
            Cow::Owned(challenge)
        } else {
            Cow::Borrowed(r#"Bearer error="insufficient_scope""#)
        };
        return bearer_challenge(
            StatusCode::FORBIDDEN,
            &challenge,
            Some((
                "insufficient_scope",
                "the token lacks the scope this path needs",
            )),
        );
    }

    let mut answer = json!({
        "ok": true,
        "client_id": grant.client_id,
        "username": grant.username,
        "scope": grant.scope,
        "method": parts.method.as_str(),
        "path": path,
        "body_len": body_len,
    });
    // Only tokens from a token exchange carry these.
    if let Some(actor) = &grant.actor {
        answer["actor"] = json!(actor);
    }
    if !grant.audience.is_empty() {
        answer["audience"] = json!(grant.audience);
    }
    json_response(StatusCode::OK, &answer)
}

enum Bearer<'a> {
    Token(&'a str),
    OtherScheme,
    Malformed,
}

fn bearer_token(value: &HeaderValue) -> Bearer<'_> {
    let Ok(value) = value.to_str() else {
        return Bearer::Malformed;
    };
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Bearer::OtherScheme;
    }
    let token = token.trim();
    if token.is_empty() || token.contains(' ') {
        return Bearer::Malformed;
    }
    Bearer::Token(token)
}

fn invalid_bearer_request(description: &'static str) -> Response {
    bearer_challenge(
        StatusCode::BAD_REQUEST,
        r#"Bearer error="invalid_request""#,
        Some(("invalid_request", description)),
    )
}

/// A resource error: the `WWW-Authenticate` challenge carries the meaning (RFC 6750 §3); the
/// JSON body repeats it for people reading logs.
fn bearer_challenge(status: StatusCode, challenge: &str, error: Option<(&str, &str)>) -> Response {
    let body = match error {
        Some((code, description)) => {
            json!({ "ok": false, "error": code, "error_description": description })
        }
        None => json!({ "ok": false }),
    };
    let mut response = json_response(status, &body);
    if let Ok(challenge) = HeaderValue::try_from(challenge) {
        response.headers_mut().insert(WWW_AUTHENTICATE, challenge);
    }
    response
}
