//! The pushed authorization request endpoint (RFC 9126): `POST /par` takes the authorization
//! parameters with client authentication (and a DPoP proof when the server supports DPoP) and
//! hands back a single-use `request_uri`, which `/authorize` then accepts in their place.
//!
//! As at the token endpoint, the handler is synchronous and takes the state lock without an
//! `.await` in between.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use http::request::Parts;
use http::{HeaderValue, StatusCode};
use serde_json::json;

use super::client_auth::authenticate;
use super::dpop;
use super::form::{Query, parse_form};
use super::reply::{OAuthError, Response, json_response, no_store};
use super::request_object::{self, Opened};
use super::state::{Shared, random_token};
use super::{RecordedPushedRequest, RoundTripKind};

/// Where the endpoint lives.
pub(super) const PAR_PATH: &str = "/par";

/// The prefix RFC 9126 §2.2 suggests for the request URIs a server hands out.
const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// How long a request URI works by default (RFC 9126 §2.2 suggests 5 to 600 s).
pub(super) const DEFAULT_LIFETIME: Duration = Duration::from_secs(60);

/// The builder's settings.
#[derive(Debug, Clone)]
pub(super) struct ParConfig {
    /// `/authorize` takes only `client_id` and a pushed `request_uri`.
    pub(super) require: bool,
    /// How long a request URI works.
    pub(super) lifetime: Duration,
}

impl Default for ParConfig {
    fn default() -> Self {
        Self {
            require: false,
            lifetime: DEFAULT_LIFETIME,
        }
    }
}

/// The pushed requests waiting for the browser, and the log.
#[derive(Debug, Default)]
pub(super) struct ParState {
    pushed: HashMap<String, Pushed>,
    pub(super) requests: usize,
    pub(super) log: Vec<RecordedPushedRequest>,
}

/// One stored request.
#[derive(Debug)]
struct Pushed {
    client_id: String,
    /// The parameters, as the query string `/authorize` would have received.
    query: String,
    expires_at: Instant,
    /// The parameters came in a signed request object (RFC 9101).
    signed: bool,
}

/// Parameters of the push that are client authentication, not authorization parameters.
const CLIENT_AUTH: [&str; 3] = ["client_secret", "client_assertion", "client_assertion_type"];

/// `POST /par`.
pub(super) fn endpoint(shared: &Shared, parts: &Parts, body: &[u8]) -> Response {
    let config = &shared.config;
    shared.lock().par.requests += 1;
    let url = format!("{}{PAR_PATH}", config.issuer);
    let nonce = config
        .require_dpop_nonce
        .then(|| shared.lock().token_nonce.value.clone());
    let expect = dpop::Expect {
        method: &parts.method,
        url: &url,
        access_token: None,
        nonce: nonce.as_deref(),
    };
    let (proof, outcome) = if config.support_dpop {
        match dpop::check(shared, &parts.headers, &expect) {
            Some((record, outcome)) => (Some(record), Some(outcome)),
            None => (None, None),
        }
    } else {
        (None, None)
    };
    if config.require_dpop_nonce && matches!(outcome, Some(Ok(_))) {
        shared.lock().token_nonce.used(config.dpop_nonce_uses);
    }
    let params: Vec<(String, String)> = url::form_urlencoded::parse(body)
        .filter(|(name, _)| !CLIENT_AUTH.contains(&name.as_ref()))
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    let mut client = None;
    let result = parse_form(&parts.headers, body).and_then(|form| {
        let jkt = match outcome {
            None if config.require_dpop => {
                return Err(OAuthError::invalid_dpop_proof(
                    "this server requires a DPoP proof",
                ));
            }
            None => None,
            Some(Ok(jkt)) => Some(jkt),
            Some(Err(dpop::Refusal::Nonce)) => {
                return Err(OAuthError::new(
                    StatusCode::BAD_REQUEST,
                    "use_dpop_nonce",
                    dpop::Refusal::Nonce.description(),
                ));
            }
            Some(Err(dpop::Refusal::Invalid(why))) => {
                return Err(OAuthError::invalid_dpop_proof(why));
            }
        };
        let client_id = authenticate(shared, &parts.headers, &form)?;
        client = Some(client_id.clone());
        // RFC 9126 §2.1: a pushed request cannot itself point to another.
        if form.get("request_uri").is_some() {
            return Err(OAuthError::invalid_request(
                "request_uri is not allowed in a pushed authorization request",
            ));
        }
        // A signed request object (RFC 9101 §5): only the parameters inside it count.
        let opened = request_object::open(
            shared,
            RoundTripKind::PushedAuthorization,
            &request_object::to_query(&params),
            Some(&client_id),
        );
        let (mut query, signed) = match opened {
            Ok(Opened::Plain) => (params.clone(), false),
            Ok(Opened::Signed(inside)) => (inside, true),
            Ok(Opened::Refused(_, why)) | Err(why) => {
                return Err(OAuthError::new(
                    StatusCode::BAD_REQUEST,
                    request_object::INVALID,
                    why,
                ));
            }
        };
        if config.request_objects.require && !signed {
            return Err(OAuthError::invalid_request(
                "this server takes only signed request objects (RFC 9101)",
            ));
        }
        let effective = request_object::to_query(&query);
        if effective.get("response_type").is_none() {
            return Err(OAuthError::invalid_request("response_type is missing"));
        }
        // RFC 9449 §10.1: a proof on the push binds the code to its key, as dpop_jkt does;
        // both must then name the same key.
        match (effective.get("dpop_jkt"), jkt) {
            (Some(sent), Some(jkt)) if sent != jkt => {
                return Err(OAuthError::invalid_request(
                    "dpop_jkt names another key than the DPoP proof",
                ));
            }
            (None, Some(jkt)) => query.push(("dpop_jkt".to_owned(), jkt)),
            _ => {}
        }
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query)
            .finish();
        let request_uri = random_token("ru")
            .map(|token| format!("{REQUEST_URI_PREFIX}{token}"))
            .map_err(|_| OAuthError::no_randomness())?;
        let lifetime = config.par.lifetime;
        shared.lock().par.pushed.insert(
            request_uri.clone(),
            Pushed {
                client_id,
                query,
                expires_at: config.clock.now() + lifetime,
                signed,
            },
        );
        Ok(json!({
            "request_uri": request_uri,
            "expires_in": lifetime.as_secs().max(1),
        }))
    });
    let (mut response, error) = match result {
        Ok(value) => (no_store(json_response(StatusCode::CREATED, &value)), None),
        Err(error) => {
            let code = error.code().to_owned();
            (error.into_response(), Some(code))
        }
    };
    let mut state = shared.lock();
    if config.require_dpop_nonce
        && let Ok(value) = HeaderValue::try_from(state.token_nonce.value.as_str())
    {
        response.headers_mut().insert(dpop::DPOP_NONCE, value);
    }
    state.par.log.push(RecordedPushedRequest {
        client_id: client,
        params,
        dpop: proof,
        status: response.status().as_u16(),
        error,
    });
    response
}

/// How `/authorize` came by its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    /// In the query.
    Query,
    /// Pushed, and the request URI still worked.
    Pushed,
    /// Pushed, but the request URI had expired: the request is refused with `invalid_request`,
    /// redirected back once the client and its redirect URI are known good, as a server that
    /// still remembers the request does.
    Expired,
}

/// What `/authorize` works from: the pushed parameters when the query names a `request_uri`
/// (which is then spent, expired or not), else the query itself. `Err` says why the request
/// is refused outright: a request URI that is unknown, used, or pushed by another client, or a
/// query that carries parameters besides `client_id` and `request_uri`.
/// The `bool` says whether they were pushed in a signed request object.
pub(super) fn resolve(
    shared: &Shared,
    query: Query,
) -> Result<(Query, Source, bool), &'static str> {
    let Some(request_uri) = query.get("request_uri").map(str::to_owned) else {
        return Ok((query, Source::Query, false));
    };
    let others = query
        .params
        .names()
        .any(|name| name != "client_id" && name != "request_uri");
    if others || !query.repeated.is_empty() {
        return Err("A pushed authorization request carries only client_id and request_uri.");
    }
    let mut state = shared.lock();
    // Single use: whatever happens next, the request URI is spent.
    let Some(pushed) = state.par.pushed.remove(&request_uri) else {
        return Err("The request_uri is unknown or was already used.");
    };
    drop(state);
    if query.get("client_id") != Some(pushed.client_id.as_str()) {
        return Err("The request_uri was pushed by another client.");
    }
    let source = if shared.config.clock.now() >= pushed.expires_at {
        Source::Expired
    } else {
        Source::Pushed
    };
    Ok((Query::parse(Some(&pushed.query)), source, pushed.signed))
}
