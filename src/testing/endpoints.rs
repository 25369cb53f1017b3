//! The back-channel endpoints: the token endpoint (RFC 6749 §3.2), the revocation endpoint
//! (RFC 7009) and a protected resource (RFC 6750). The grants of the interactive flows live in
//! `interactive`.
//!
//! Each handler is synchronous: the body has already been read, so the state lock is taken and
//! released without any `.await` in between.

use std::borrow::Cow;
use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, PRAGMA, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

use crate::client::AuthMethod;

use super::RecordedRequest;
use super::interactive::{self, DEVICE_CODE_GRANT};
use super::state::{Config, Grant, Issued, Shared};

pub(super) type Response = http::Response<Full<Bytes>>;

/// `POST /token`.
pub(super) fn token(shared: &Shared, parts: &Parts, body: &[u8]) -> Response {
    match token_response(shared, parts, body) {
        Ok(value) => no_store(json_response(StatusCode::OK, &value)),
        Err(error) => error.into_response(),
    }
}

/// `POST /revoke`: always 200 once the client is authenticated, whether or not the token was
/// known (RFC 7009 §2.2).
pub(super) fn revoke(shared: &Shared, parts: &Parts, body: &[u8]) -> Response {
    shared.lock().revocation_requests += 1;
    let revoked = parse_form(&parts.headers, body).and_then(|form| {
        let client_id = authenticate(&shared.config, &parts.headers, &form)?;
        let token = form
            .get("token")
            .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
        let mut state = shared.lock();
        if state
            .access_tokens
            .get(token)
            .is_some_and(|t| t.grant.client_id == client_id)
        {
            state.access_tokens.remove(token);
        }
        let grant_id = state
            .refresh_tokens
            .get(token)
            .filter(|g| g.client_id == client_id)
            .map(|g| g.id);
        if let Some(grant_id) = grant_id {
            state.refresh_tokens.remove(token);
            state.access_tokens.retain(|_, t| t.grant.id != grant_id);
        }
        Ok(())
    });
    match revoked {
        Ok(()) => no_store(http::Response::new(Full::new(Bytes::new()))),
        Err(error) => error.into_response(),
    }
}

/// `/api/...`: checks the bearer token, then records the request with the answer's status.
pub(super) fn resource(shared: &Shared, parts: &Parts, body: Bytes) -> Response {
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

    json_response(
        StatusCode::OK,
        &json!({
            "ok": true,
            "client_id": grant.client_id,
            "username": grant.username,
            "scope": grant.scope,
            "method": parts.method.as_str(),
            "path": path,
            "body_len": body_len,
        }),
    )
}

/// An answer to a request the routes do not know.
pub(super) fn not_found() -> Response {
    json_response(StatusCode::NOT_FOUND, &json!({ "error": "not_found" }))
}

/// An answer to `GET /token`, `POST /authorize` and the like; `allow` is the one method the
/// path takes.
pub(super) fn method_not_allowed(allow: &'static str) -> Response {
    let mut response = OAuthError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        format!("use {allow}"),
    )
    .into_response();
    response
        .headers_mut()
        .insert(http::header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// An answer to a body over the cap.
pub(super) fn payload_too_large() -> Response {
    OAuthError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_request",
        "request body too large",
    )
    .into_response()
}

/// An answer to a body that could not be read.
pub(super) fn unreadable_body() -> Response {
    OAuthError::invalid_request("request body could not be read").into_response()
}

fn token_response(shared: &Shared, parts: &Parts, body: &[u8]) -> Result<Value, OAuthError> {
    let form = parse_form(&parts.headers, body);
    {
        let mut state = shared.lock();
        state.token_requests += 1;
        if let Some(grant_type) = form.as_ref().ok().and_then(|f| f.get("grant_type")) {
            *state
                .token_requests_by_grant
                .entry(grant_type.to_owned())
                .or_default() += 1;
        }
    }
    let form = form?;
    let client_id = authenticate(&shared.config, &parts.headers, &form)?;
    match form.get("grant_type") {
        None => Err(OAuthError::invalid_request("grant_type is missing")),
        Some("client_credentials") => client_credentials(shared, client_id, &form),
        Some("password") => password(shared, client_id, &form),
        Some("refresh_token") => refresh(shared, client_id, &form),
        Some("authorization_code") => interactive::authorization_code(shared, client_id, &form),
        Some(DEVICE_CODE_GRANT) => interactive::device_code(shared, client_id, &form),
        Some(other) => Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            format!("grant type {other:?} is not supported"),
        )),
    }
}

fn client_credentials(shared: &Shared, client_id: &str, form: &Form) -> Result<Value, OAuthError> {
    let config = &shared.config;
    if config
        .clients
        .get(client_id)
        .is_some_and(|c| c.method == AuthMethod::None)
    {
        // RFC 6749 §4.4: only confidential clients may use this grant.
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "a public client cannot use client_credentials",
        ));
    }
    let scope = requested_scope(form)?;
    let issued = {
        let mut state = shared.lock();
        let grant = state.new_grant(client_id, None, scope.clone());
        state.issue(config, grant, scope.clone(), config.issue_refresh_tokens)
    };
    issued_response(config, issued, scope)
}

fn password(shared: &Shared, client_id: &str, form: &Form) -> Result<Value, OAuthError> {
    let config = &shared.config;
    let username = form
        .get("username")
        .ok_or_else(|| OAuthError::invalid_request("username is missing"))?;
    let password = form
        .get("password")
        .ok_or_else(|| OAuthError::invalid_request("password is missing"))?;
    let scope = requested_scope(form)?;
    if config.users.get(username).map(String::as_str) != Some(password) {
        return Err(OAuthError::invalid_grant("wrong username or password"));
    }
    let issued = {
        let mut state = shared.lock();
        let grant = state.new_grant(client_id, Some(username), scope.clone());
        state.issue(config, grant, scope.clone(), true)
    };
    issued_response(config, issued, scope)
}

fn refresh(shared: &Shared, client_id: &str, form: &Form) -> Result<Value, OAuthError> {
    let config = &shared.config;
    let presented = form
        .get("refresh_token")
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is missing"))?;
    let requested = requested_scope(form)?;
    let mut state = shared.lock();
    let grant: Grant = state
        .refresh_tokens
        .get(presented)
        .filter(|g| g.client_id == client_id)
        .cloned()
        .ok_or_else(|| OAuthError::invalid_grant("unknown, revoked or rotated refresh token"))?;
    // RFC 6749 §6: a refresh may narrow the scope, never widen it.
    let scope = match requested {
        None => grant.scope.clone(),
        Some(requested) => {
            if !requested
                .split(' ')
                .all(|s| has_scope(grant.scope.as_deref(), s))
            {
                return Err(OAuthError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    "a refresh cannot add scopes",
                ));
            }
            Some(requested)
        }
    };
    if config.rotate_refresh_tokens {
        state.refresh_tokens.remove(presented);
    }
    let issued = state.issue(config, grant, scope.clone(), config.rotate_refresh_tokens);
    drop(state);
    issued_response(config, issued, scope)
}

pub(super) fn issued_response(
    config: &Config,
    issued: Result<Issued, super::state::NoRandomness>,
    scope: Option<String>,
) -> Result<Value, OAuthError> {
    let issued = issued.map_err(|_| OAuthError::no_randomness())?;
    let mut body = json!({
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": config.access_token_lifetime.as_secs(),
    });
    if let Some(refresh_token) = issued.refresh_token {
        body["refresh_token"] = Value::String(refresh_token);
    }
    if let Some(scope) = scope {
        body["scope"] = Value::String(scope);
    }
    Ok(body)
}

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

/// Undoes `application/x-www-form-urlencoded` for one component: `+` is a space, `%XX` a byte.
fn form_decode(input: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(input.len());
    let mut rest = input.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        match byte {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = tail.get(..2)?;
                let hex = std::str::from_utf8(hex).ok()?;
                bytes.push(u8::from_str_radix(hex, 16).ok()?);
                rest = &tail[2..];
                continue;
            }
            other => bytes.push(other),
        }
        rest = tail;
    }
    String::from_utf8(bytes).ok()
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

fn has_scope(granted: Option<&str>, wanted: &str) -> bool {
    granted.is_some_and(|g| g.split(' ').any(|s| s == wanted))
}

/// The form parameters, each at most once; empty values count as absent (RFC 6749 §3.1).
#[derive(Debug)]
pub(super) struct Form(HashMap<String, String>);

impl Form {
    pub(super) fn new(params: HashMap<String, String>) -> Self {
        Self(params)
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

pub(super) fn parse_form(headers: &HeaderMap, body: &[u8]) -> Result<Form, OAuthError> {
    let is_form = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(OAuthError::invalid_request(
            "content type must be application/x-www-form-urlencoded",
        ));
    }
    let mut params = HashMap::new();
    for (name, value) in url::form_urlencoded::parse(body) {
        if value.is_empty() {
            continue;
        }
        if params
            .insert(name.to_string(), value.into_owned())
            .is_some()
        {
            return Err(OAuthError::invalid_request(format!(
                "parameter {name:?} is repeated"
            )));
        }
    }
    Ok(Form(params))
}

/// A `scope` parameter, normalised to single spaces; `None` when absent.
pub(super) fn requested_scope(form: &Form) -> Result<Option<String>, OAuthError> {
    let Some(raw) = form.get("scope") else {
        return Ok(None);
    };
    let scopes: Vec<&str> = raw.split(' ').filter(|s| !s.is_empty()).collect();
    // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
    let valid = |c: char| matches!(c, '\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E');
    if scopes.iter().any(|s| !s.chars().all(valid)) {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "scope contains characters RFC 6749 §3.3 forbids",
        ));
    }
    Ok((!scopes.is_empty()).then(|| scopes.join(" ")))
}

/// An RFC 6749 §5.2 error response.
#[derive(Debug)]
pub(super) struct OAuthError {
    status: StatusCode,
    code: &'static str,
    description: Cow<'static, str>,
}

impl OAuthError {
    fn new(
        status: StatusCode,
        code: &'static str,
        description: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code,
            description: description.into(),
        }
    }

    pub(super) fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    fn invalid_client(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
    }

    pub(super) fn invalid_grant(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }

    /// One of the device grant's polling answers (RFC 8628 §3.5), all 400.
    pub(super) fn device(code: &'static str, description: &'static str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, description)
    }

    pub(super) fn no_randomness() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "no randomness available",
        )
    }

    pub(super) fn into_response(self) -> Response {
        let mut response = no_store(json_response(
            self.status,
            &json!({ "error": self.code, "error_description": self.description }),
        ));
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
        }
        response
    }
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

pub(super) fn json_response(status: StatusCode, value: &Value) -> Response {
    let mut response = http::Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Token endpoint answers must not be cached (RFC 6749 §5.1).
pub(super) fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decode_undoes_the_basic_encoding() {
        let encoded: String =
            url::form_urlencoded::byte_serialize("a:b/c+d%e&f=g h~".as_bytes()).collect();
        assert_eq!(form_decode(&encoded).as_deref(), Some("a:b/c+d%e&f=g h~"));
        assert_eq!(form_decode("%zz"), None);
        assert_eq!(form_decode("%4"), None);
    }

    #[test]
    fn scopes_are_normalised_and_checked() {
        let form = Form(HashMap::from([("scope".into(), " a  b ".into())]));
        assert_eq!(
            requested_scope(&form).ok().flatten().as_deref(),
            Some("a b")
        );
        let form = Form(HashMap::from([("scope".into(), "a\"b".into())]));
        assert!(requested_scope(&form).is_err());
    }
}
