//! The revocation endpoint (RFC 7009).

use bytes::Bytes;
use http::request::Parts;
use http_body_util::Full;

use super::client_auth::authenticate;
use super::form::parse_form;
use super::reply::{OAuthError, Response, no_store};
use super::state::Shared;

/// `POST /revoke`: always 200 once the client is authenticated, whether or not the token was
/// known (RFC 7009 §2.2).
pub(super) fn endpoint(shared: &Shared, parts: &Parts, body: &[u8]) -> Response {
    shared.lock().revocation_requests += 1;
    let revoked = parse_form(&parts.headers, body).and_then(|form| {
        let client_id = authenticate(shared, &parts.headers, &form)?;
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
