//! The JWT bearer grant (RFC 7523 §2.1): an assertion signed by a trusted issuer is the grant.

use serde_json::Value;

use super::assertion::{Expect, unverified_issuer, verify};
use super::form::{Form, requested_scope};
use super::reply::{OAuthError, token_answer};
use super::state::Shared;

/// The grant type of RFC 7523 §2.1.
pub(super) const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`: the `assertion` must be signed by
/// the key registered for its `iss`, name a `sub` (who the token is for), have an `aud` naming
/// this token endpoint or issuer, an `exp` ahead and a new `jti`. The scope is the `scope`
/// parameter, or else the assertion's `scope` claim (as Google service accounts send it). No
/// refresh token is issued: the client signs a new assertion instead.
pub(super) fn grant(shared: &Shared, client_id: &str, form: &Form) -> Result<Value, OAuthError> {
    let config = &shared.config;
    let assertion = form
        .get("assertion")
        .ok_or_else(|| OAuthError::invalid_request("assertion is missing"))?;
    let issuer = unverified_issuer(assertion)
        .ok_or_else(|| OAuthError::invalid_grant("the assertion has no iss"))?;
    let key = config
        .assertion_issuers
        .get(&issuer)
        .ok_or_else(|| OAuthError::invalid_grant("the assertion's iss is not a trusted issuer"))?;
    let expect = Expect {
        audience: true,
        single_use: true,
    };
    let claims = verify(shared, assertion, key, &expect).map_err(OAuthError::invalid_grant)?;
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .ok_or_else(|| OAuthError::invalid_grant("the assertion has no sub"))?;
    let scope = match requested_scope(form)? {
        Some(scope) => Some(scope),
        None => claims
            .get("scope")
            .and_then(Value::as_str)
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|s| !s.is_empty()),
    };
    let issued = {
        let mut state = shared.lock();
        let grant = state.new_grant(client_id, Some(subject), scope.clone());
        state.issue(config, grant, scope.clone(), false)
    };
    token_answer(config, issued, scope)
}
