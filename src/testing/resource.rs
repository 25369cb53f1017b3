//! The protected resource (RFC 6750, RFC 9449 §7): any path under `/api/` and the declared
//! resources of `protected`, with the challenges of scope (RFC 6750 §3.1), step-up (RFC 9470),
//! claims (continuous access evaluation) and, for declared resources, audience (RFC 8707) and
//! metadata (RFC 9728 §5.1).

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::{AUTHORIZATION, HOST, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderValue, StatusCode};
use serde_json::{Value, json};

use super::dpop;
use super::form::has_scope;
use super::protected::Serving;
use super::reply::{Response, json_response};
use super::state::{AuthRequirement, Grant, Shared};
use super::{RecordedProof, RecordedRequest};

/// `/api/...`, or a declared protected resource (`serving`): checks the token (and its DPoP
/// proof, and for a protected resource its audience), then answers with the record of the
/// request, its status and challenge, for the caller to keep. `shared` is the authorization
/// server whose tokens are checked.
pub(super) fn endpoint(
    shared: &Shared,
    parts: &Parts,
    body: Bytes,
    serving: Option<Serving<'_>>,
) -> (Response, RecordedRequest) {
    let (mut response, proof) = resource_answer(shared, parts, body.len(), serving);
    if let Some(serving) = serving {
        serving.decorate(&mut response);
    }
    let authorization = parts
        .headers
        .get(AUTHORIZATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let state = shared.lock();
    if shared.config.require_resource_dpop_nonce
        && let Ok(nonce) = HeaderValue::try_from(state.resource_nonce.value.as_str())
    {
        response.headers_mut().insert(dpop::DPOP_NONCE, nonce);
    }
    drop(state);
    let challenge = response
        .headers()
        .get(WWW_AUTHENTICATE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let record = RecordedRequest {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        authorization,
        headers: parts.headers.clone(),
        body,
        status: response.status().as_u16(),
        dpop: proof,
        challenge,
    };
    (response, record)
}

fn resource_answer(
    shared: &Shared,
    parts: &Parts,
    body_len: usize,
    serving: Option<Serving<'_>>,
) -> (Response, Option<RecordedProof>) {
    let config = &shared.config;
    let path = parts.uri.path();
    let authorizations: Vec<&HeaderValue> = parts.headers.get_all(AUTHORIZATION).iter().collect();
    let (scheme, token) = match authorizations.as_slice() {
        [] => return (no_credentials(config.require_dpop), None),
        [value] => match credentials(value) {
            Credentials::Token(Scheme::DPoP, _) if !config.support_dpop => {
                return (no_credentials(false), None);
            }
            Credentials::Token(scheme, token) => (scheme, token),
            Credentials::OtherScheme => return (no_credentials(config.require_dpop), None),
            Credentials::Malformed => {
                return (
                    invalid_request("malformed Bearer or DPoP credentials"),
                    None,
                );
            }
        },
        _ => return (invalid_request("more than one Authorization header"), None),
    };

    let now = config.clock.now();
    let grant = shared
        .lock()
        .access_tokens
        .get(token)
        .filter(|t| now < t.expires_at)
        .map(|t| t.grant.clone());
    let Some(grant) = grant else {
        let challenge = format!(r#"{} error="invalid_token""#, scheme.name());
        return (
            bearer_challenge(
                StatusCode::UNAUTHORIZED,
                &challenge,
                Some(("invalid_token", "unknown, expired or revoked access token")),
            ),
            None,
        );
    };

    let mut proof = None;
    match (scheme, &grant.jkt) {
        (Scheme::Bearer, None) => {}
        (Scheme::Bearer, Some(_)) => {
            return (
                bearer_challenge(
                    StatusCode::UNAUTHORIZED,
                    r#"DPoP error="invalid_token""#,
                    Some((
                        "invalid_token",
                        "a DPoP-bound token must come with the DPoP scheme and a proof",
                    )),
                ),
                None,
            );
        }
        (Scheme::DPoP, None) => {
            return (
                bearer_challenge(
                    StatusCode::UNAUTHORIZED,
                    r#"DPoP error="invalid_token""#,
                    Some(("invalid_token", "the token is not DPoP-bound")),
                ),
                None,
            );
        }
        (Scheme::DPoP, Some(jkt)) => {
            let (record, refusal) = check_proof(shared, parts, token, jkt);
            proof = record;
            if let Some(refusal) = refusal {
                return (refusal, proof);
            }
        }
    }

    let scheme = scheme.name();
    if let Some(serving) = serving {
        if serving.resource.require_audience && !grant.resources.contains(&serving.identifier()) {
            let challenge = format!(r#"{scheme} error="invalid_token""#);
            let response = bearer_challenge(
                StatusCode::UNAUTHORIZED,
                &challenge,
                Some((
                    "invalid_token",
                    "the token was not issued for this resource",
                )),
            );
            return (response, proof);
        }
        if let Some(required) = &serving.resource.scope
            && !required
                .split(' ')
                .all(|s| has_scope(grant.scope.as_deref(), s))
        {
            let challenge = format!(r#"{scheme} error="insufficient_scope", scope="{required}""#);
            let response = bearer_challenge(
                StatusCode::FORBIDDEN,
                &challenge,
                Some((
                    "insufficient_scope",
                    "the token lacks the scope this resource needs",
                )),
            );
            return (response, proof);
        }
    }
    if let Some(required) = config.required_scope(path)
        && !has_scope(grant.scope.as_deref(), required)
    {
        let challenge = format!(r#"{scheme} error="insufficient_scope", scope="{required}""#);
        let challenge = if HeaderValue::try_from(challenge.as_str()).is_ok() {
            Cow::Owned(challenge)
        } else {
            Cow::Owned(format!(r#"{scheme} error="insufficient_scope""#))
        };
        let response = bearer_challenge(
            StatusCode::FORBIDDEN,
            &challenge,
            Some((
                "insufficient_scope",
                "the token lacks the scope this path needs",
            )),
        );
        return (response, proof);
    }

    if let Some(required) = config.required_authentication(path)
        && !meets(shared, &grant, required)
    {
        let mut challenge = format!(r#"{scheme} error="insufficient_user_authentication""#);
        if let Some(acr_values) = &required.acr_values {
            challenge.push_str(&format!(r#", acr_values="{acr_values}""#));
        }
        if let Some(max_age) = required.max_age {
            challenge.push_str(&format!(", max_age={}", max_age.as_secs()));
        }
        let response = bearer_challenge(
            StatusCode::UNAUTHORIZED,
            &challenge,
            Some((
                "insufficient_user_authentication",
                "the sign-in behind the token is not strong or recent enough for this path",
            )),
        );
        return (response, proof);
    }

    let required_claims = shared
        .lock()
        .required_claims
        .iter()
        .find(|(p, _)| p == path)
        .map(|(_, claims)| claims.clone());
    if let Some(required) = required_claims {
        let wanted = serde_json::from_str::<Value>(&required).ok();
        if wanted.is_none() || grant.claims != wanted {
            let challenge = format!(
                r#"{scheme} error="insufficient_claims", claims="{}""#,
                STANDARD.encode(required)
            );
            let response = bearer_challenge(
                StatusCode::UNAUTHORIZED,
                &challenge,
                Some((
                    "insufficient_claims",
                    "the token was not requested with the claims this path needs",
                )),
            );
            return (response, proof);
        }
    }

    let mut answer = json!({
        "ok": true,
        "client_id": grant.client_id,
        "username": grant.username,
        "scope": grant.scope,
        "method": parts.method.as_str(),
        "path": path,
        "body_len": body_len,
        "token_type": scheme,
    });
    // Only tokens from a token exchange carry these.
    if let Some(actor) = &grant.actor {
        answer["actor"] = json!(actor);
    }
    if !grant.audience.is_empty() {
        answer["audience"] = json!(grant.audience);
    }
    if let Some(jkt) = &grant.jkt {
        answer["jkt"] = json!(jkt);
    }
    if let Some(acr) = &grant.acr {
        answer["acr"] = json!(acr);
    }
    if !grant.resources.is_empty() {
        answer["resources"] = json!(grant.resources);
    }
    if let Some(serving) = serving {
        answer["resource"] = json!(serving.identifier());
    }
    (json_response(StatusCode::OK, &answer), proof)
}

/// Checks the DPoP proof of a request carrying a token bound to `jkt`; a refusal is the answer
/// to send.
fn check_proof(
    shared: &Shared,
    parts: &Parts,
    token: &str,
    jkt: &str,
) -> (Option<RecordedProof>, Option<Response>) {
    let config = &shared.config;
    // The URL as the client used it: the host it named, this server's scheme, the path.
    let host = parts
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map_or_else(
            || config.issuer.trim_start_matches("http://").to_owned(),
            str::to_owned,
        );
    let url = format!("http://{host}{}", parts.uri.path());
    let nonce = config
        .require_resource_dpop_nonce
        .then(|| shared.lock().resource_nonce.value.clone());
    let expect = dpop::Expect {
        method: &parts.method,
        url: &url,
        access_token: Some(token),
        nonce: nonce.as_deref(),
    };
    let Some((mut record, outcome)) = dpop::check(shared, &parts.headers, &expect) else {
        return (
            None,
            Some(dpop_refusal(
                "invalid_dpop_proof",
                "a DPoP-bound token needs a DPoP proof",
            )),
        );
    };
    let refusal = match outcome {
        Ok(proof_jkt) if proof_jkt == jkt => {
            if config.require_resource_dpop_nonce {
                shared.lock().resource_nonce.used(config.dpop_nonce_uses);
            }
            None
        }
        Ok(_) => {
            let why = "the proof's key is not the key the token is bound to";
            record.problem = Some(why.to_owned());
            Some(dpop_refusal("invalid_dpop_proof", why))
        }
        Err(dpop::Refusal::Nonce) => Some(dpop_refusal(
            "use_dpop_nonce",
            dpop::Refusal::Nonce.description(),
        )),
        Err(dpop::Refusal::Invalid(why)) => Some(dpop_refusal("invalid_dpop_proof", why)),
    };
    (Some(record), refusal)
}

/// Whether the sign-in behind `grant` meets `required`: its `acr` is one of the values, and it
/// is at most `max_age` old by the server's clock.
fn meets(shared: &Shared, grant: &Grant, required: &AuthRequirement) -> bool {
    let acr_ok = required.acr_values.as_deref().is_none_or(|values| {
        grant
            .acr
            .as_deref()
            .is_some_and(|acr| values.split(' ').any(|v| v == acr))
    });
    let age_ok = required.max_age.is_none_or(|max_age| {
        grant.auth_time.is_some_and(|auth_time| {
            let now = shared.config.clock.now_utc();
            now.duration_since(auth_time).unwrap_or_default() <= max_age
        })
    });
    acr_ok && age_ok
}

/// `401` with a DPoP challenge naming `error` and the algorithms the resource accepts
/// (RFC 9449 §7.1).
fn dpop_refusal(error: &'static str, description: &'static str) -> Response {
    let challenge = format!(r#"DPoP error="{error}", algs="{}""#, dpop::ALGS);
    bearer_challenge(
        StatusCode::UNAUTHORIZED,
        &challenge,
        Some((error, description)),
    )
}

/// `401` to a request without usable credentials: `Bearer`, and when the server demands DPoP
/// also `DPoP algs="..."` as a second challenge.
fn no_credentials(dpop: bool) -> Response {
    let mut response = bearer_challenge(StatusCode::UNAUTHORIZED, "Bearer", None);
    if dpop {
        let challenge = format!(r#"DPoP algs="{}""#, dpop::ALGS);
        if let Ok(challenge) = HeaderValue::try_from(challenge) {
            response.headers_mut().append(WWW_AUTHENTICATE, challenge);
        }
    }
    response
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Bearer,
    DPoP,
}

impl Scheme {
    fn name(self) -> &'static str {
        match self {
            Self::Bearer => "Bearer",
            Self::DPoP => "DPoP",
        }
    }
}

enum Credentials<'a> {
    Token(Scheme, &'a str),
    OtherScheme,
    Malformed,
}

fn credentials(value: &HeaderValue) -> Credentials<'_> {
    let Ok(value) = value.to_str() else {
        return Credentials::Malformed;
    };
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::DPoP
    } else {
        return Credentials::OtherScheme;
    };
    let token = token.trim();
    if token.is_empty() || token.contains(' ') {
        return Credentials::Malformed;
    }
    Credentials::Token(scheme, token)
}

fn invalid_request(description: &'static str) -> Response {
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
