//! Dynamic client registration (RFC 7591) at `POST /register`, and client configuration
//! (RFC 7592) at `/register/<client_id>`: read, update and delete with the registration access
//! token.
//!
//! The metadata is checked the way a strict server checks it: redirect URIs are `https` or an
//! `http` loopback IP literal, without a fragment; grant types, response types and the client
//! authentication method are ones this server knows. A registered client then behaves like one
//! added by the builder, held to its redirect URIs and grant types.

use bytes::Bytes;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode};
use http_body_util::Full;
use serde_json::{Map, Value, json};
use url::Url;

use crate::client::AuthMethod;

use super::RegistrationPolicy;
use super::authorization::is_loopback_redirect;
use super::reply::{OAuthError, Response, json_response, no_store};
use super::state::{Registration, Shared, random_token};

/// The path of the registration endpoint; a client's configuration lives below it.
pub(super) const REGISTRATION_PATH: &str = "/register";

/// The grant types a client may register: the ones the token endpoint serves.
const GRANT_TYPES: [&str; 7] = [
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "password",
    super::device::DEVICE_CODE_GRANT,
    super::jwt_bearer::JWT_BEARER_GRANT,
    super::token_exchange::TOKEN_EXCHANGE_GRANT,
];

/// A client registered at `/register`.
#[derive(Debug, Clone)]
pub(super) struct Registered {
    /// What the token and authorization endpoints check.
    pub(super) registration: Registration,
    /// The registration access token (RFC 7592 §3).
    pub(super) access_token: String,
    /// The client metadata as answered, defaults filled in, without credentials.
    pub(super) metadata: Map<String, Value>,
    /// `client_id_issued_at`, seconds since the epoch.
    pub(super) issued_at: u64,
}

/// `POST /register`.
pub(super) fn register(shared: &Shared, parts: &Parts, body: &[u8]) -> Response {
    shared.lock().registration_requests += 1;
    let allowed = match &shared.config.registration {
        RegistrationPolicy::Closed => return super::reply::not_found(),
        RegistrationPolicy::Open => true,
        RegistrationPolicy::InitialAccessToken(token) => {
            bearer(parts).is_some_and(|presented| presented == token.as_str())
        }
    };
    if !allowed {
        return invalid_token("registration needs a valid initial access token");
    }
    let (metadata, registration) = match checked(body) {
        Ok(checked) => checked,
        Err(error) => return error.into_response(),
    };
    let answer = store(shared, metadata, registration);
    match answer {
        Ok(answer) => no_store(json_response(StatusCode::CREATED, &answer)),
        Err(error) => error.into_response(),
    }
}

/// Gives a checked registration its credentials and keeps it; the answer is its client
/// information response.
fn store(
    shared: &Shared,
    metadata: Map<String, Value>,
    registration: Registration,
) -> Result<Value, OAuthError> {
    let fresh = |prefix: &str| random_token(prefix).map_err(|_| OAuthError::no_randomness());
    let client_id = fresh("client")?;
    let secret = if super::takes_secret(registration.method) {
        Some(fresh("secret")?)
    } else {
        None
    };
    let registered = Registered {
        registration: Registration {
            secret,
            ..registration
        },
        access_token: fresh("rat")?,
        metadata,
        issued_at: epoch_seconds(shared),
    };
    let answer = document(shared, &client_id, &registered);
    shared.lock().registered.insert(client_id, registered);
    Ok(answer)
}

/// `GET`, `PUT` and `DELETE /register/<client_id>` (RFC 7592 §2), with the client's
/// registration access token as a bearer token.
pub(super) fn configure(shared: &Shared, parts: &Parts, body: &[u8], client_id: &str) -> Response {
    if shared.config.registration == RegistrationPolicy::Closed {
        return super::reply::not_found();
    }
    let known = {
        let state = shared.lock();
        state
            .registered
            .get(client_id)
            .filter(|r| bearer(parts) == Some(r.access_token.as_str()))
            .cloned()
    };
    // RFC 7592 §2: an unknown client and a wrong token look the same.
    let Some(registered) = known else {
        return invalid_token("unknown client or wrong registration access token");
    };
    match parts.method {
        Method::GET => no_store(json_response(
            StatusCode::OK,
            &document(shared, client_id, &registered),
        )),
        Method::PUT => match update(shared, body, client_id, registered) {
            Ok(answer) => no_store(json_response(StatusCode::OK, &answer)),
            Err(error) => error.into_response(),
        },
        Method::DELETE => {
            let mut state = shared.lock();
            state.registered.remove(client_id);
            state
                .access_tokens
                .retain(|_, t| t.grant.client_id != client_id);
            state.refresh_tokens.retain(|_, g| g.client_id != client_id);
            let mut response = http::Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::NO_CONTENT;
            no_store(response)
        }
        _ => super::reply::method_not_allowed("GET, PUT, DELETE"),
    }
}

/// RFC 7592 §2.2: the new metadata replaces the old; `client_id` must be the client's own and a
/// `client_secret`, if sent, its current one. The credentials stay as they were.
fn update(
    shared: &Shared,
    body: &[u8],
    client_id: &str,
    registered: Registered,
) -> Result<Value, OAuthError> {
    let sent: Value = serde_json::from_slice(body).map_err(|_| invalid_metadata("not JSON"))?;
    if sent.get("client_id").and_then(Value::as_str) != Some(client_id) {
        return Err(OAuthError::invalid_request(
            "client_id must be the client's own",
        ));
    }
    if let Some(secret) = sent.get("client_secret")
        && secret.as_str() != registered.registration.secret.as_deref()
    {
        return Err(OAuthError::invalid_request(
            "client_secret is not the client's current secret",
        ));
    }
    let (metadata, registration) = checked(body)?;
    if super::takes_secret(registration.method) != registered.registration.secret.is_some() {
        return Err(invalid_metadata(
            "token_endpoint_auth_method cannot change between a public and a confidential client",
        ));
    }
    let updated = Registered {
        registration: Registration {
            secret: registered.registration.secret.clone(),
            ..registration
        },
        metadata,
        ..registered
    };
    let answer = document(shared, client_id, &updated);
    shared
        .lock()
        .registered
        .insert(client_id.to_owned(), updated);
    Ok(answer)
}

/// The client information response (RFC 7591 §3.2.1, RFC 7592 §3): the metadata with the
/// credentials and the configuration endpoint.
fn document(shared: &Shared, client_id: &str, registered: &Registered) -> Value {
    let mut answer = registered.metadata.clone();
    answer.insert("client_id".to_owned(), json!(client_id));
    answer.insert(
        "client_id_issued_at".to_owned(),
        json!(registered.issued_at),
    );
    if let Some(secret) = &registered.registration.secret {
        answer.insert("client_secret".to_owned(), json!(secret));
        answer.insert("client_secret_expires_at".to_owned(), json!(0));
    }
    answer.insert(
        "registration_access_token".to_owned(),
        json!(registered.access_token),
    );
    answer.insert(
        "registration_client_uri".to_owned(),
        json!(format!(
            "{}{REGISTRATION_PATH}/{client_id}",
            shared.config.issuer
        )),
    );
    Value::Object(answer)
}

/// The metadata of a registration or update request, checked and with defaults filled in, and
/// the registration it makes (without a secret yet).
fn checked(body: &[u8]) -> Result<(Map<String, Value>, Registration), OAuthError> {
    let Ok(Value::Object(mut metadata)) = serde_json::from_slice::<Value>(body) else {
        return Err(invalid_metadata("the body is not a JSON object"));
    };
    // Credentials are the server's to hand out; whatever the client sent is not metadata.
    for name in [
        "client_id",
        "client_secret",
        "client_id_issued_at",
        "client_secret_expires_at",
        "registration_access_token",
        "registration_client_uri",
    ] {
        metadata.remove(name);
    }
    let grant_types =
        strings(&metadata, "grant_types")?.unwrap_or_else(|| vec!["authorization_code".to_owned()]);
    if let Some(unknown) = grant_types
        .iter()
        .find(|g| !GRANT_TYPES.contains(&g.as_str()))
    {
        return Err(invalid_metadata(format!(
            "grant type {unknown:?} is not supported"
        )));
    }
    let response_types =
        strings(&metadata, "response_types")?.unwrap_or_else(|| vec!["code".to_owned()]);
    if response_types.iter().any(|r| r != "code") {
        return Err(invalid_metadata("only the response type code is supported"));
    }
    let method = match metadata.get("token_endpoint_auth_method") {
        None => AuthMethod::ClientSecretBasic,
        Some(Value::String(method)) => match method.as_str() {
            "none" => AuthMethod::None,
            "client_secret_basic" => AuthMethod::ClientSecretBasic,
            "client_secret_post" => AuthMethod::ClientSecretPost,
            "client_secret_jwt" => AuthMethod::ClientSecretJwt,
            other => {
                return Err(invalid_metadata(format!(
                    "token_endpoint_auth_method {other:?} cannot be registered here"
                )));
            }
        },
        Some(_) => {
            return Err(invalid_metadata(
                "token_endpoint_auth_method is not a string",
            ));
        }
    };
    let redirect_uris = strings(&metadata, "redirect_uris")
        .map_err(|_| invalid_redirect_uri("redirect_uris is not an array of strings"))?
        .unwrap_or_default();
    if let Some(bad) = redirect_uris
        .iter()
        .find(|uri| !is_acceptable_redirect(uri))
    {
        return Err(invalid_redirect_uri(format!(
            "{bad:?} is neither https nor an http loopback IP literal, or has a fragment"
        )));
    }
    if grant_types.iter().any(|g| g == "authorization_code") && redirect_uris.is_empty() {
        return Err(invalid_redirect_uri(
            "the authorization_code grant needs redirect_uris",
        ));
    }
    for name in ["client_name", "scope", "client_uri", "logo_uri"] {
        if metadata.get(name).is_some_and(|v| !v.is_string()) {
            return Err(invalid_metadata(format!("{name} is not a string")));
        }
    }
    metadata.insert("grant_types".to_owned(), json!(grant_types));
    metadata.insert("response_types".to_owned(), json!(response_types));
    metadata.insert(
        "token_endpoint_auth_method".to_owned(),
        json!(method.as_str()),
    );
    metadata.insert("redirect_uris".to_owned(), json!(redirect_uris));
    let registration = Registration {
        secret: None,
        method,
        key: None,
        redirect_uris: Some(redirect_uris),
        grant_types: Some(grant_types),
    };
    Ok((metadata, registration))
}

/// `https` with a host, or `http` to a loopback IP literal; never a fragment (RFC 6749
/// §3.1.2, RFC 8252 §7.3).
fn is_acceptable_redirect(uri: &str) -> bool {
    match Url::parse(uri) {
        Ok(url) if url.scheme() == "https" => url.host().is_some() && url.fragment().is_none(),
        Ok(_) => is_loopback_redirect(uri),
        Err(_) => false,
    }
}

/// The member `name` as a list of strings; `None` when absent.
fn strings(metadata: &Map<String, Value>, name: &str) -> Result<Option<Vec<String>>, OAuthError> {
    match metadata.get(name) {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| invalid_metadata(format!("{name} is not an array of strings"))),
        Some(_) => Err(invalid_metadata(format!("{name} is not an array"))),
    }
}

/// The token of an `Authorization: Bearer` header, if the request has exactly one.
fn bearer(parts: &Parts) -> Option<&str> {
    let mut values = parts.headers.get_all(AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let (scheme, token) = value.to_str().ok()?.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn epoch_seconds(shared: &Shared) -> u64 {
    shared
        .config
        .clock
        .now_utc()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn invalid_metadata(description: impl Into<std::borrow::Cow<'static, str>>) -> OAuthError {
    OAuthError::new(
        StatusCode::BAD_REQUEST,
        "invalid_client_metadata",
        description,
    )
}

fn invalid_redirect_uri(description: impl Into<std::borrow::Cow<'static, str>>) -> OAuthError {
    OAuthError::new(StatusCode::BAD_REQUEST, "invalid_redirect_uri", description)
}

/// 401 for a missing or wrong initial or registration access token (RFC 6750 §3.1).
fn invalid_token(description: &'static str) -> Response {
    let mut response = no_store(json_response(
        StatusCode::UNAUTHORIZED,
        &json!({ "error": "invalid_token", "error_description": description }),
    ));
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Bearer error="invalid_token""#),
    );
    response
}
