//! What the server answers: the response type every handler returns, RFC 6749 §5.2 errors,
//! successful token answers (§5.1), and the plain answers of the router.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

use super::state::{Config, Issued, NoRandomness};

pub(super) type Response = http::Response<Full<Bytes>>;

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

pub(super) fn token_answer(
    config: &Config,
    issued: Result<Issued, NoRandomness>,
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

/// An RFC 6749 §5.2 error response.
#[derive(Debug)]
pub(super) struct OAuthError {
    status: StatusCode,
    code: &'static str,
    description: Cow<'static, str>,
}

impl OAuthError {
    pub(super) fn new(
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

    pub(super) fn invalid_client(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
    }

    pub(super) fn invalid_grant(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }

    /// A DPoP proof that is missing, malformed or does not fit (RFC 9449 §5).
    pub(super) fn invalid_dpop_proof(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_dpop_proof", description)
    }

    /// The `error` code.
    pub(super) fn code(&self) -> &'static str {
        self.code
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
