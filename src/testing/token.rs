//! The token endpoint (RFC 6749 §3.2): client authentication, then one handler per grant. This
//! file holds the grants without a file of their own (client credentials, password, refresh);
//! the authorization code grant lives in `authorization`, the device code grant in `device`,
//! the JWT bearer grant in `jwt_bearer`, token exchange in `token_exchange`.
//!
//! Each handler is synchronous: the body has already been read, so the state lock is taken and
//! released without any `.await` in between.

use http::request::Parts;
use http::{HeaderValue, StatusCode};
use serde_json::Value;

use crate::client::AuthMethod;

use super::authorization;
use super::client_auth::authenticate;
use super::device::{self, DEVICE_CODE_GRANT};
use super::dpop;
use super::form::{Form, has_scope, parse_form, requested_scope};
#[cfg(feature = "jwt")]
use super::jwt_bearer::{self, JWT_BEARER_GRANT};
use super::reply::{OAuthError, Response, json_response, no_store, token_answer};
use super::state::{Grant, Shared};
use super::token_exchange::{self, TOKEN_EXCHANGE_GRANT};
use super::{RecordedProof, RecordedTokenRequest};

/// `POST /token`: counts and records the request, checks its DPoP proof, then runs the grant.
pub(super) fn endpoint(shared: &Shared, parts: &Parts, body: &[u8]) -> Response {
    let config = &shared.config;
    let form = parse_form(&parts.headers, body);
    let grant_type = form
        .as_ref()
        .ok()
        .and_then(|f| f.get("grant_type"))
        .map(str::to_owned);
    let resources = form
        .as_ref()
        .map(|f| f.get_all("resource").to_vec())
        .unwrap_or_default();
    {
        let mut state = shared.lock();
        state.token_requests += 1;
        if let Some(grant_type) = &grant_type {
            *state
                .token_requests_by_grant
                .entry(grant_type.clone())
                .or_default() += 1;
        }
    }
    let nonce = config
        .require_dpop_nonce
        .then(|| shared.lock().token_nonce.value.clone());
    let expect = dpop::Expect {
        method: &parts.method,
        url: &config.token_url,
        access_token: None,
        nonce: nonce.as_deref(),
    };
    let (proof, outcome) = if !config.support_dpop {
        // A server that does not know DPoP ignores the header and issues bearer tokens.
        let proof = parts.headers.get(dpop::DPOP).map(|value| {
            let mut proof = RecordedProof::read(value.to_str().unwrap_or(""));
            proof.problem = Some("not checked: this server does not support DPoP".to_owned());
            proof
        });
        (proof, None)
    } else {
        match dpop::check(shared, &parts.headers, &expect) {
            Some((record, outcome)) => (Some(record), Some(outcome)),
            None => (None, None),
        }
    };
    if config.require_dpop_nonce && matches!(outcome, Some(Ok(_))) {
        shared.lock().token_nonce.used(config.dpop_nonce_uses);
    }
    let result = form.and_then(|form| {
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
        check_resources(config.require_resource_indicator, &form)?;
        let details = super::authorization_details::parse(&form, config)
            .map_err(super::authorization_details::refusal)?;
        check_grant_type(shared, &client_id, &form)?;
        check_binding(shared, &form, jkt.as_deref())?;
        let mut answer = grant(shared, &client_id, &form)?;
        bind(shared, &form, jkt, &mut answer)?;
        bind_resources(shared, &form, &answer);
        super::authorization_details::grant(shared, details, &mut answer);
        Ok(answer)
    });
    let (mut response, record) = match result {
        Ok(value) => {
            let token_type = value["token_type"].as_str().map(str::to_owned);
            let response = no_store(json_response(StatusCode::OK, &value));
            (response, (None, token_type))
        }
        Err(error) => {
            let code = error.code().to_owned();
            (error.into_response(), (Some(code), None))
        }
    };
    let mut state = shared.lock();
    if config.require_dpop_nonce
        && let Ok(value) = HeaderValue::try_from(state.token_nonce.value.as_str())
    {
        response.headers_mut().insert(dpop::DPOP_NONCE, value);
    }
    state.token_request_log.push(RecordedTokenRequest {
        grant_type,
        dpop: proof,
        status: response.status().as_u16(),
        error: record.0,
        token_type: record.1,
        resources,
    });
    response
}

fn grant(shared: &Shared, client_id: &str, form: &Form) -> Result<Value, OAuthError> {
    match form.get("grant_type") {
        None => Err(OAuthError::invalid_request("grant_type is missing")),
        Some("client_credentials") => client_credentials(shared, client_id, form),
        Some("password") => password(shared, client_id, form),
        Some("refresh_token") => refresh(shared, client_id, form),
        Some("authorization_code") => authorization::code_grant(shared, client_id, form),
        Some(DEVICE_CODE_GRANT) => device::code_grant(shared, client_id, form),
        #[cfg(feature = "jwt")]
        Some(JWT_BEARER_GRANT) => jwt_bearer::grant(shared, client_id, form),
        Some(TOKEN_EXCHANGE_GRANT) => token_exchange::grant(shared, client_id, form),
        Some(other) => Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            format!("grant type {other:?} is not supported"),
        )),
    }
}

/// The `resource` parameters (RFC 8707 §2): each an absolute URI without a fragment, and at
/// least one when the server requires them; `invalid_target` otherwise.
pub(super) fn check_resources(required: bool, params: &Form) -> Result<(), OAuthError> {
    let resources = params.get_all("resource");
    if required && resources.is_empty() {
        return Err(invalid_target(
            "this server requires a resource parameter (RFC 8707)",
        ));
    }
    if resources
        .iter()
        .any(|r| url::Url::parse(r).map_or(true, |u| u.fragment().is_some()))
    {
        return Err(invalid_target(
            "resource must be an absolute URI without a fragment",
        ));
    }
    Ok(())
}

/// `invalid_target` (RFC 8707 §2): the resource cannot be served, or was not asked for before.
pub(super) fn invalid_target(description: impl Into<std::borrow::Cow<'static, str>>) -> OAuthError {
    OAuthError::new(StatusCode::BAD_REQUEST, "invalid_target", description)
}

/// The resources a refresh or a code redemption issues for: the ones the request names, which
/// must all be among those of the original authorization when it named any (RFC 8707 §2.2);
/// else the original ones.
pub(super) fn narrowed_resources(
    granted: &[String],
    requested: &[String],
) -> Result<Vec<String>, OAuthError> {
    if requested.is_empty() {
        return Ok(granted.to_vec());
    }
    if !granted.is_empty() && requested.iter().any(|r| !granted.contains(r)) {
        return Err(invalid_target(
            "a resource was not part of the original authorization",
        ));
    }
    Ok(requested.to_vec())
}

/// A client registered at `/register` uses only the grant types it registered; a refresh token
/// is redeemable by the client it was issued to whatever it registered.
fn check_grant_type(shared: &Shared, client_id: &str, form: &Form) -> Result<(), OAuthError> {
    let Some(grant_type) = form.get("grant_type") else {
        return Ok(());
    };
    let allowed = shared
        .client(client_id)
        .and_then(|c| c.grant_types)
        .is_none_or(|types| grant_type == "refresh_token" || types.iter().any(|t| t == grant_type));
    if allowed {
        Ok(())
    } else {
        Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            format!("the client did not register the grant type {grant_type:?}"),
        ))
    }
}

/// Records the request's `resource` parameters with the tokens of the grants that do not
/// decide them themselves (the code and refresh grants narrow what was authorized).
fn bind_resources(shared: &Shared, form: &Form, answer: &Value) {
    let resources = form.get_all("resource");
    if resources.is_empty()
        || matches!(
            form.get("grant_type"),
            Some("authorization_code" | "refresh_token")
        )
    {
        return;
    }
    let mut state = shared.lock();
    if let Some(token) = answer["access_token"].as_str()
        && let Some(issued) = state.access_tokens.get_mut(token)
    {
        issued.grant.resources = resources.to_vec();
    }
    if let Some(token) = answer["refresh_token"].as_str()
        && let Some(grant) = state.refresh_tokens.get_mut(token)
    {
        grant.resources = resources.to_vec();
    }
}

/// What is bound to a DPoP key must be redeemed with that key: a refresh token issued to a
/// DPoP client (RFC 9449 §5) and a code requested with `dpop_jkt` (§10).
fn check_binding(shared: &Shared, form: &Form, jkt: Option<&str>) -> Result<(), OAuthError> {
    let state = shared.lock();
    let bound = match form.get("grant_type") {
        Some("refresh_token") => form
            .get("refresh_token")
            .and_then(|t| state.refresh_tokens.get(t))
            .and_then(|g| g.jkt.clone()),
        Some("authorization_code") => form
            .get("code")
            .and_then(|c| state.authorization_codes.get(c))
            .and_then(|c| c.dpop_jkt.clone()),
        _ => None,
    };
    match (bound, jkt) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(OAuthError::invalid_dpop_proof(
            "the grant is bound to a DPoP key: a proof by that key is required",
        )),
        (Some(bound), Some(jkt)) if bound == jkt => Ok(()),
        (Some(_), Some(_)) => Err(OAuthError::invalid_grant(
            "the grant is bound to another DPoP key",
        )),
    }
}

/// Binds the tokens just issued to the proof's key (`token_type` `DPoP`), and records the
/// request's `claims` parameter with them.
fn bind(
    shared: &Shared,
    form: &Form,
    jkt: Option<String>,
    answer: &mut Value,
) -> Result<(), OAuthError> {
    let claims = match form.get("claims") {
        None => None,
        Some(raw) => Some(
            serde_json::from_str::<Value>(raw)
                .ok()
                .filter(Value::is_object)
                .ok_or_else(|| OAuthError::invalid_request("claims is not a JSON object"))?,
        ),
    };
    if jkt.is_none() && claims.is_none() {
        return Ok(());
    }
    let mut state = shared.lock();
    if let Some(token) = answer["access_token"].as_str()
        && let Some(issued) = state.access_tokens.get_mut(token)
    {
        if jkt.is_some() {
            issued.grant.jkt.clone_from(&jkt);
        }
        if claims.is_some() {
            issued.grant.claims.clone_from(&claims);
        }
    }
    if let Some(token) = answer["refresh_token"].as_str()
        && let Some(grant) = state.refresh_tokens.get_mut(token)
    {
        if jkt.is_some() {
            grant.jkt.clone_from(&jkt);
        }
        if claims.is_some() {
            grant.claims.clone_from(&claims);
        }
    }
    if jkt.is_some() {
        answer["token_type"] = Value::String("DPoP".to_owned());
    }
    Ok(())
}

fn client_credentials(shared: &Shared, client_id: &str, form: &Form) -> Result<Value, OAuthError> {
    let config = &shared.config;
    if shared
        .client(client_id)
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
    token_answer(config, issued, scope)
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
    token_answer(config, issued, scope)
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
    let resources = narrowed_resources(&grant.resources, form.get_all("resource"))?;
    if config.rotate_refresh_tokens {
        state.refresh_tokens.remove(presented);
    }
    let issued = state.issue(config, grant, scope.clone(), config.rotate_refresh_tokens);
    if let Ok(issued) = &issued
        && let Some(token) = state.access_tokens.get_mut(&issued.access_token)
    {
        token.grant.resources = resources;
    }
    drop(state);
    token_answer(config, issued, scope)
}
