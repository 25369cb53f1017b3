//! [`Registration`]: what the server registered (RFC 7591 §3.2.1, RFC 7592 §3), and how an
//! answer of the registration or client configuration endpoint is checked before it becomes one.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use url::Url;

use crate::client::{AuthMethod, OAuthClient, OAuthClientBuilder, endpoint};
use crate::clock::Clock;
use crate::error::{Error, Result, TransportError, TransportErrorKind};
use crate::redact::Secrets;
use crate::transport::{RawResponse, is_loopback_host};

/// What the server registered (RFC 7591 §3.2.1): the client id, the client secret if one was
/// issued, and, when the server supports RFC 7592, the registration access token and the URL
/// to read, update or delete the registration with.
///
/// Made by [`register`](super::register) (and [`read`](super::read), [`update`](super::update));
/// turn it into a client with [`client_builder`](Self::client_builder). The client secret and
/// the registration access token are secrets: `Debug` shows neither, and neither appears in
/// any error.
///
/// See [`register`](super::register) for an example.
#[derive(Clone)]
pub struct Registration {
    pub(super) client_id: String,
    pub(super) client_secret: Option<SecretString>,
    pub(super) client_secret_expires_at: Option<SystemTime>,
    pub(super) client_id_issued_at: Option<SystemTime>,
    pub(super) registration_access_token: Option<SecretString>,
    pub(super) registration_client_uri: Option<Url>,
    /// Every member of the answer but the two secrets.
    pub(super) metadata: Map<String, Value>,
    /// The clock of the client that made (or read) the registration: what a stored copy's
    /// expiry is measured with.
    #[cfg_attr(not(any(feature = "reqwest", feature = "tower")), allow(dead_code))]
    pub(super) clock: Arc<dyn Clock>,
}

impl Registration {
    /// The client id the server issued.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The client secret, if the server issued one.
    pub fn client_secret(&self) -> Option<&SecretString> {
        self.client_secret.as_ref()
    }

    /// When the client secret expires; `None` when it never does (the server sent `0` or
    /// nothing) or there is no secret.
    pub fn client_secret_expires_at(&self) -> Option<SystemTime> {
        self.client_secret_expires_at
    }

    /// When the client id was issued, if the server said.
    pub fn client_id_issued_at(&self) -> Option<SystemTime> {
        self.client_id_issued_at
    }

    /// The registration access token (RFC 7592), for [`read`](super::read),
    /// [`update`](super::update) and [`delete`](super::delete).
    pub fn registration_access_token(&self) -> Option<&SecretString> {
        self.registration_access_token.as_ref()
    }

    /// The client configuration endpoint (RFC 7592): where the registration is read, updated
    /// and deleted. Always on the origin of the registration endpoint (see
    /// [`register`](super::register)).
    pub fn registration_client_uri(&self) -> Option<&Url> {
        self.registration_client_uri.as_ref()
    }

    /// The token endpoint authentication method the server registered, when it named one this
    /// crate knows (RFC 7591 §2: a server that names none uses `client_secret_basic`).
    pub fn token_endpoint_auth_method(&self) -> Option<AuthMethod> {
        self.metadata
            .get("token_endpoint_auth_method")
            .and_then(Value::as_str)
            .and_then(super::auth_method_named)
    }

    /// Every member the server answered with, as sent (the registered `redirect_uris`,
    /// `grant_types`, `client_id`...), except `client_secret` and `registration_access_token`.
    pub fn metadata(&self) -> &Map<String, Value> {
        &self.metadata
    }

    /// `true` when the client secret has expired at `now`: the client must be registered again
    /// (or its registration read again, when the server rotates secrets, RFC 7592 §2.1).
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.client_secret.is_some()
            && self
                .client_secret_expires_at
                .is_some_and(|expires| now >= expires)
    }

    /// A client builder for this registration: its client id, its secret, and the
    /// authentication method the server registered (when it named one this crate knows; the
    /// builder's default otherwise). Add the server's endpoints (or its metadata) and build.
    pub fn client_builder(&self) -> OAuthClientBuilder {
        let mut builder = OAuthClient::builder(&self.client_id);
        if let Some(secret) = &self.client_secret {
            builder = builder.secret(secret.expose_secret());
        }
        if let Some(method) = self.token_endpoint_auth_method() {
            builder = builder.auth_method(method);
        }
        builder
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let members: Vec<&String> = self.metadata.keys().collect();
        f.debug_struct("Registration")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("client_secret_expires_at", &self.client_secret_expires_at)
            .field("client_id_issued_at", &self.client_id_issued_at)
            .field(
                "registration_access_token",
                &self
                    .registration_access_token
                    .as_ref()
                    .map(|_| "[redacted]"),
            )
            .field(
                "registration_client_uri",
                &self.registration_client_uri.as_ref().map(Url::as_str),
            )
            .field("members", &members)
            .finish()
    }
}

/// What checking an answer needs besides the answer.
pub(super) struct Answer<'a> {
    /// Where the request went: a `registration_client_uri` must be on its origin.
    pub(super) sent_to: &'a Url,
    pub(super) clock: Arc<dyn Clock>,
    /// The registration read or updated (RFC 7592), whose secrets the answer may leave out.
    pub(super) previous: Option<&'a Registration>,
}

/// The registration in an answer of the registration endpoint (`201`, or `200`) or of the
/// client configuration endpoint (`200`), checked member by member. Never panics, whatever the
/// body. The secrets the body carries are added to `secrets` before anything can fail, so that
/// no error shows them.
pub(super) fn parse(
    response: &RawResponse,
    answer: &Answer<'_>,
    secrets: &mut Secrets<'_>,
) -> Result<Registration> {
    if let Some(map) = response.object() {
        for member in ["client_secret", "registration_access_token"] {
            if let Some(Value::String(secret)) = map.get(member) {
                secrets.add_owned(secret.clone());
            }
        }
    }
    check_status(response, answer.previous.is_some(), secrets)?;
    let map = json_object(response, secrets)?;
    response.check_oauth(&map, secrets)?;
    let unexpected = |problem: &str| response.unexpected(problem, secrets);

    let client_id = match map.get("client_id") {
        Some(Value::String(id)) if !id.is_empty() && !id.chars().any(char::is_control) => id,
        Some(Value::String(_)) => {
            return Err(unexpected("client_id is empty or has control characters"));
        }
        Some(_) => return Err(unexpected("client_id is not a string")),
        None => return Err(unexpected("the answer has no client_id")),
    };
    if let Some(previous) = answer.previous
        && previous.client_id != *client_id
    {
        return Err(unexpected(
            "the answer names another client than the registration",
        ));
    }

    let (client_secret, secret_is_new) = match map.get("client_secret") {
        Some(Value::String(s)) if !s.is_empty() => (Some(SecretString::from(s.clone())), true),
        None | Some(Value::Null) | Some(Value::String(_)) => {
            (answer.previous.and_then(|p| p.client_secret.clone()), false)
        }
        Some(_) => return Err(unexpected("client_secret is not a string")),
    };
    let client_secret_expires_at = match (
        map.contains_key("client_secret_expires_at"),
        secret_is_new,
        answer.previous,
    ) {
        // A secret kept from before keeps its expiry unless the answer restates it.
        (false, false, Some(previous)) => previous.client_secret_expires_at,
        _ => time_member(&map, "client_secret_expires_at").map_err(|p| unexpected(&p))?,
    };
    let client_id_issued_at = match time_member(&map, "client_id_issued_at") {
        Ok(None) => answer.previous.and_then(|p| p.client_id_issued_at),
        other => other.map_err(|p| unexpected(&p))?,
    };

    let registration_access_token = match map.get("registration_access_token") {
        Some(Value::String(token)) if is_bearer_safe(token) => {
            Some(SecretString::from(token.clone()))
        }
        Some(Value::String(_)) => {
            return Err(unexpected(
                "registration_access_token is empty or has characters not allowed in an HTTP \
                 header",
            ));
        }
        None | Some(Value::Null) => answer
            .previous
            .and_then(|p| p.registration_access_token.clone()),
        Some(_) => return Err(unexpected("registration_access_token is not a string")),
    };
    let registration_client_uri = match map.get("registration_client_uri") {
        Some(Value::String(uri)) => Some(configuration_uri(uri, answer.sent_to, &unexpected)?),
        None | Some(Value::Null) => answer
            .previous
            .and_then(|p| p.registration_client_uri.clone()),
        Some(_) => return Err(unexpected("registration_client_uri is not a string")),
    };
    if map
        .get("token_endpoint_auth_method")
        .is_some_and(|m| !m.is_string() && !m.is_null())
    {
        return Err(unexpected("token_endpoint_auth_method is not a string"));
    }

    let client_id = client_id.clone();
    let mut metadata = map;
    metadata.remove("client_secret");
    metadata.remove("registration_access_token");
    Ok(Registration {
        client_id,
        client_secret,
        client_secret_expires_at,
        client_id_issued_at,
        registration_access_token,
        registration_client_uri,
        metadata,
        clock: answer.clock.clone(),
    })
}

/// Fails for any status but `200` and `201`: with the OAuth error the body carries
/// (`invalid_redirect_uri`, `invalid_client_metadata`, `invalid_software_statement`...), or,
/// for the client configuration endpoint, with [`Error::RegistrationGone`] on `401` and `403`.
fn check_status(response: &RawResponse, configuration: bool, secrets: &Secrets<'_>) -> Result<()> {
    if matches!(response.status, StatusCode::OK | StatusCode::CREATED) {
        return Ok(());
    }
    if configuration
        && matches!(
            response.status,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        )
    {
        return Err(Error::RegistrationGone {
            status: response.status.as_u16(),
        });
    }
    let oauth_error = response
        .object()
        .and_then(|map| response.server_error(&map, secrets));
    Err(oauth_error.unwrap_or_else(|| {
        let problem = if response.status.is_success() {
            "a success status other than 200 or 201"
        } else {
            "error status without an OAuth error code"
        };
        response.unexpected(problem, secrets)
    }))
}

/// The body as a JSON object, or the typed error that says what it was instead.
fn json_object(response: &RawResponse, secrets: &Secrets<'_>) -> Result<Map<String, Value>> {
    let problem = match serde_json::from_slice::<Value>(&response.body) {
        Ok(Value::Object(map)) => return Ok(map),
        Ok(_) => "JSON body is not an object",
        Err(_) if response.body.is_empty() => "empty body",
        Err(_) if std::str::from_utf8(&response.body).is_err() => "body is not UTF-8",
        Err(_) => "body is not JSON",
    };
    Err(response.unexpected(problem, secrets))
}

/// A time in seconds since the epoch (RFC 7591 §3.2.1): a non-negative number (fractions
/// floor) or numeric string; `0`, absent or `null` is `None`, and so is a time too far away to
/// represent (it never comes). The problem otherwise.
fn time_member(
    map: &Map<String, Value>,
    name: &str,
) -> std::result::Result<Option<SystemTime>, String> {
    let seconds = match map.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(_) => None,
    };
    match seconds {
        None => Err(format!("{name} is not a non-negative number of seconds")),
        Some(0) => Ok(None),
        Some(s) => Ok(UNIX_EPOCH.checked_add(Duration::from_secs(s))),
    }
}

/// A `registration_client_uri`, accepted only on the origin of the endpoint that answered.
///
/// RFC 7592 lets a server put the client configuration endpoint anywhere. This crate does not:
/// the registration endpoint may have been found through a protected resource's metadata,
/// which anyone can publish, and the registration access token, and every later read, update
/// and delete, go to this URL. Keeping them on the origin the client already chose to register
/// with means a hostile or confused server cannot turn the client into a way to send
/// authenticated requests to another host (an internal service, another tenant). Servers put
/// it next to their registration endpoint in practice (Keycloak, node oidc-provider and Okta
/// do). It must be `https`, or `http` to a loopback address when the endpoint
/// is, and carry no user name or password.
fn configuration_uri(uri: &str, sent_to: &Url, unexpected: &dyn Fn(&str) -> Error) -> Result<Url> {
    let url = endpoint("registration_client_uri", uri).map_err(|e| match e {
        Error::Config(_) => unexpected("registration_client_uri is not a URL"),
        other => other,
    })?;
    if url.scheme() != "https" && !sent_to.host_str().is_some_and(is_loopback_host) {
        return Err(Error::Transport(TransportError::new(
            TransportErrorKind::InsecureUrl,
            "registration_client_uri is plain http to a loopback address, named by a server \
             that is not loopback",
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(unexpected(
            "registration_client_uri carries a user name or password",
        ));
    }
    if url.origin() != sent_to.origin() {
        return Err(unexpected(
            "registration_client_uri is on another origin than the registration endpoint; \
             the registration access token is sent only to the server that issued it",
        ));
    }
    Ok(url)
}

/// `true` for a value usable as a bearer token in a header: not empty, visible ASCII only.
pub(super) fn is_bearer_safe(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic())
}
