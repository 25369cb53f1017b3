//! The token endpoint (RFC 6749 §3.2): client authentication, then one handler per grant. This
//! file holds the grants without a file of their own (client credentials, password, refresh);
//! the authorization code grant lives in `authorization`, the device code grant in `device`,
//! the JWT bearer grant in `jwt_bearer`, token exchange in `token_exchange`.
//!
//! Each handler is synchronous: the body has already been read, so the state lock is taken and
//! released without any `.await` in between.

use http::StatusCode;
use http::request::Parts;
use serde_json::Value;

use crate::client::AuthMethod;

use super::authorization;
use super::client_auth::authenticate;
use super::device::{self, DEVICE_CODE_GRANT};
use super::form::{Form, has_scope, parse_form, requested_scope};
#[cfg(feature = "jwt")]
use super::jwt_bearer::{self, JWT_BEARER_GRANT};
use super::reply::{OAuthError, Response, json_response, no_store, token_answer};
use super::state::{Grant, Shared};
use super::token_exchange::{self, TOKEN_EXCHANGE_GRANT};

/// `POST /token`.
pub(super) fn endpoint(shared: &Shared, parts: &Parts, body: &[u8]) -> Response {
    match token_response(shared, parts, body) {
        Ok(value) => no_store(json_response(StatusCode::OK, &value)),
        Err(error) => error.into_response(),
    }
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
    let client_id = authenticate(shared, &parts.headers, &form)?;
    match form.get("grant_type") {
        None => Err(OAuthError::invalid_request("grant_type is missing")),
        Some("client_credentials") => client_credentials(shared, client_id, &form),
        Some("password") => password(shared, client_id, &form),
        Some("refresh_token") => refresh(shared, client_id, &form),
        Some("authorization_code") => authorization::code_grant(shared, client_id, &form),
        Some(DEVICE_CODE_GRANT) => device::code_grant(shared, client_id, &form),
        #[cfg(feature = "jwt")]
        Some(JWT_BEARER_GRANT) => jwt_bearer::grant(shared, client_id, &form),
        Some(TOKEN_EXCHANGE_GRANT) => token_exchange::grant(shared, client_id, &form),
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
    if config.rotate_refresh_tokens {
        state.refresh_tokens.remove(presented);
    }
    let issued = state.issue(config, grant, scope.clone(), config.rotate_refresh_tokens);
    drop(state);
    token_answer(config, issued, scope)
}
