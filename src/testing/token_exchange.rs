//! The token exchange grant (RFC 8693): a token for a token, for another audience or resource,
//! optionally with an actor.

use serde_json::Value;

use super::form::{Form, requested_scope};
use super::reply::{OAuthError, token_answer};
use super::state::Shared;
use super::token::invalid_target;

/// The grant type of RFC 8693 §2.1.
pub(super) const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// The token type of an access token (RFC 8693 §3): this server's own access tokens.
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// The token type of a JWT (RFC 8693 §3): signed by a trusted assertion issuer.
#[cfg(feature = "jwt")]
const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// Who a subject or actor token stands for.
struct Party {
    /// The user, or else the client, the token was issued to; a JWT's `sub`.
    name: String,
    /// The token's scope, the default of the exchanged token.
    scope: Option<String>,
}

/// `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`. A refused subject or actor
/// token gets `invalid_request` (RFC 8693 §2.2.2), an audience or resource outside the
/// configured ones `invalid_target`. The answer is an access token with `issued_token_type`
/// `urn:ietf:params:oauth:token-type:access_token` and no refresh token.
pub(super) fn grant(shared: &Shared, client_id: &str, form: &Form) -> Result<Value, OAuthError> {
    let config = &shared.config;
    let subject = party(shared, form, "subject_token", "subject_token_type")?
        .ok_or_else(|| OAuthError::invalid_request("subject_token is missing"))?;
    let actor = party(shared, form, "actor_token", "actor_token_type")?;
    if let Some(wanted) = form.get("requested_token_type")
        && wanted != ACCESS_TOKEN_TYPE
    {
        return Err(OAuthError::invalid_request(format!(
            "requested_token_type {wanted:?} is not supported; ask for {ACCESS_TOKEN_TYPE}"
        )));
    }
    // The token endpoint has checked each `resource` already (RFC 8707 §2).
    let mut targets = form.get_all("audience").to_vec();
    targets.extend(form.get_all("resource").iter().cloned());
    if !config.exchange_audiences.is_empty()
        && let Some(unknown) = targets
            .iter()
            .find(|t| !config.exchange_audiences.contains(t))
    {
        return Err(invalid_target(format!(
            "tokens for {unknown:?} are not issued here"
        )));
    }
    let scope = requested_scope(form)?.or(subject.scope);
    let issued = {
        let mut state = shared.lock();
        let mut grant = state.new_grant(client_id, Some(&subject.name), scope.clone());
        grant.actor = actor.map(|a| a.name);
        grant.audience = targets;
        state.issue(config, grant, scope.clone(), false)
    };
    let mut answer = token_answer(config, issued, scope)?;
    answer["issued_token_type"] = Value::String(ACCESS_TOKEN_TYPE.to_owned());
    Ok(answer)
}

/// The party the token in `token_name` stands for, `None` when the request has none.
fn party(
    shared: &Shared,
    form: &Form,
    token_name: &str,
    type_name: &str,
) -> Result<Option<Party>, OAuthError> {
    let (token, token_type) = match (form.get(token_name), form.get(type_name)) {
        (None, None) => return Ok(None),
        (Some(token), Some(token_type)) => (token, token_type),
        _ => {
            return Err(OAuthError::invalid_request(format!(
                "{token_name} and {type_name} go together"
            )));
        }
    };
    match token_type {
        ACCESS_TOKEN_TYPE => {
            let now = shared.config.clock.now();
            let state = shared.lock();
            let grant = state
                .access_tokens
                .get(token)
                .filter(|t| now < t.expires_at)
                .map(|t| &t.grant)
                .ok_or_else(|| {
                    OAuthError::invalid_request(format!(
                        "{token_name} is unknown, expired or revoked"
                    ))
                })?;
            Ok(Some(Party {
                name: grant
                    .username
                    .clone()
                    .unwrap_or_else(|| grant.client_id.clone()),
                scope: grant.scope.clone(),
            }))
        }
        #[cfg(feature = "jwt")]
        JWT_TOKEN_TYPE => {
            use super::assertion::{Expect, unverified_issuer, verify};
            let refused = || OAuthError::invalid_request(format!("{token_name} is not acceptable"));
            let issuer = unverified_issuer(token).ok_or_else(refused)?;
            let key = shared
                .config
                .assertion_issuers
                .get(&issuer)
                .ok_or_else(refused)?;
            let expect = Expect {
                audience: false,
                single_use: false,
            };
            let claims = verify(shared, token, key, &expect)
                .map_err(|why| OAuthError::invalid_request(format!("{token_name}: {why}")))?;
            let name = claims
                .get("sub")
                .and_then(Value::as_str)
                .ok_or_else(refused)?;
            Ok(Some(Party {
                name: name.to_owned(),
                scope: claims
                    .get("scope")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            }))
        }
        other => Err(OAuthError::invalid_request(format!(
            "{type_name} {other:?} is not supported"
        ))),
    }
}
