//! The device authorization endpoint and its verification page (RFC 8628), and the device code
//! grant that redeems what it hands out.
//!
//! As at the token endpoint, every handler is synchronous and takes the state lock without an
//! `.await` in between.

use std::time::Duration;

use http::StatusCode;
use http::request::Parts;
use serde_json::{Value, json};

use super::client_auth::authenticate;
use super::form::{Form, Query, parse_form, requested_scope};
use super::page::page;
use super::reply::{OAuthError, Response, json_response, no_store, token_answer};
use super::state::{DeviceAuthorization, DeviceStatus, Shared, random_token, random_user_code};

/// The grant type of RFC 8628 §3.4.
pub(super) const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// What a client waits between polls when the server sends no `interval` (RFC 8628 §3.5), and
/// what every `slow_down` adds.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// `POST /device_authorization` (RFC 8628 §3.1–3.2).
pub(super) fn authorization_endpoint(shared: &Shared, parts: &Parts, body: &[u8]) -> Response {
    shared.lock().device_requests += 1;
    match device_authorization_response(shared, parts, body) {
        Ok(value) => no_store(json_response(StatusCode::OK, &value)),
        Err(error) => error.into_response(),
    }
}

fn device_authorization_response(
    shared: &Shared,
    parts: &Parts,
    body: &[u8],
) -> Result<Value, OAuthError> {
    let config = &shared.config;
    let form = parse_form(&parts.headers, body)?;
    let client_id = authenticate(shared, &parts.headers, &form)?;
    let scope = requested_scope(&form)?;
    let device_code = random_token("dc").map_err(|_| OAuthError::no_randomness())?;
    let mut state = shared.lock();
    let user_code = loop {
        let candidate = random_user_code().map_err(|_| OAuthError::no_randomness())?;
        if !state.devices.values().any(|d| d.user_code == candidate) {
            break candidate;
        }
    };
    let interval = config
        .device_interval
        .map_or(DEFAULT_INTERVAL, |i| Duration::from_secs(i.as_secs()));
    state.devices.insert(
        device_code.clone(),
        DeviceAuthorization {
            client_id: client_id.to_owned(),
            user_code: user_code.clone(),
            scope,
            expires_at: crate::clock::instant_after(
                config.clock.now(),
                config.device_code_lifetime,
            ),
            interval,
            last_poll: None,
            status: DeviceStatus::Pending,
        },
    );
    drop(state);
    let (first, second) = user_code.split_at(4);
    let user_code = format!("{first}-{second}");
    let verification_uri = format!("{}/device", config.issuer);
    let mut body = json!({
        "device_code": device_code,
        "user_code": user_code,
        "verification_uri_complete": format!("{verification_uri}?user_code={user_code}"),
        "verification_uri": verification_uri,
        "expires_in": config.device_code_lifetime.as_secs(),
    });
    if let Some(interval) = config.device_interval {
        body["interval"] = json!(interval.as_secs());
    }
    Ok(body)
}

/// `GET /device?user_code=...`: the verification page. The automatic login approves the code
/// (or denies it while authorizations are denied) and answers a short inert page.
pub(super) fn verification_page(shared: &Shared, parts: &Parts) -> Response {
    let query = Query::parse(parts.uri.query());
    let Some(user_code) = query.get("user_code").filter(|_| query.repeated.is_empty()) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Enter the code",
            "Open this page with ?user_code= and the code your device shows.",
        );
    };
    let now = shared.config.clock.now();
    let default_user = shared.config.default_user.clone();
    let mut state = shared.lock();
    let deny = state.deny_authorization;
    let Some(device) = state
        .device_by_user_code(user_code)
        .filter(|d| now < d.expires_at)
    else {
        return page(
            StatusCode::BAD_REQUEST,
            "Unknown code",
            "This code is unknown or has expired.",
        );
    };
    match (&device.status, deny) {
        (DeviceStatus::Pending, false) => {
            device.status = DeviceStatus::Approved {
                username: default_user,
            };
            page(
                StatusCode::OK,
                "Device approved",
                "You can return to your device.",
            )
        }
        (DeviceStatus::Pending, true) => {
            device.status = DeviceStatus::Denied;
            page(StatusCode::OK, "Device denied", "The request was denied.")
        }
        (DeviceStatus::Approved { .. } | DeviceStatus::Redeemed, _) => page(
            StatusCode::OK,
            "Device approved",
            "This code was already approved.",
        ),
        (DeviceStatus::Denied, _) => page(
            StatusCode::BAD_REQUEST,
            "Device denied",
            "This code was denied.",
        ),
    }
}

/// Approves or denies the pending, unexpired device authorization with `user_code`; `false`
/// when there is none.
pub(super) fn decide(shared: &Shared, user_code: &str, approve: bool) -> bool {
    let now = shared.config.clock.now();
    let mut state = shared.lock();
    let Some(device) = state
        .device_by_user_code(user_code)
        .filter(|d| now < d.expires_at && d.status == DeviceStatus::Pending)
    else {
        return false;
    };
    device.status = if approve {
        DeviceStatus::Approved {
            username: shared.config.default_user.clone(),
        }
    } else {
        DeviceStatus::Denied
    };
    true
}

// --- the token grant ----------------------------------------------------------------------

/// `grant_type=urn:ietf:params:oauth:grant-type:device_code` (RFC 8628 §3.4–3.5).
pub(super) fn code_grant(
    shared: &Shared,
    client_id: &str,
    form: &Form,
) -> Result<Value, OAuthError> {
    let config = &shared.config;
    let device_code = form
        .get("device_code")
        .ok_or_else(|| OAuthError::invalid_request("device_code is missing"))?;
    let now = config.clock.now();
    let mut state = shared.lock();
    let device = state
        .devices
        .get_mut(device_code)
        .filter(|d| d.client_id == client_id)
        .ok_or_else(|| OAuthError::invalid_grant("unknown device_code"))?;
    if device.status == DeviceStatus::Redeemed {
        return Err(OAuthError::invalid_grant("device_code already used"));
    }
    if now >= device.expires_at {
        return Err(OAuthError::device("expired_token", "device_code expired"));
    }
    let last_poll = device.last_poll.replace(now);
    if config.enforce_slow_down
        && last_poll.is_some_and(|last| now.saturating_duration_since(last) < device.interval)
    {
        // RFC 8628 §3.5: the interval grows by 5 s for this and every later request.
        device.interval += DEFAULT_INTERVAL;
        return Err(OAuthError::device(
            "slow_down",
            "polled faster than the interval",
        ));
    }
    let username = match &device.status {
        DeviceStatus::Pending => {
            return Err(OAuthError::device(
                "authorization_pending",
                "the user has not answered yet",
            ));
        }
        DeviceStatus::Denied => {
            return Err(OAuthError::device(
                "access_denied",
                "the user denied the request",
            ));
        }
        DeviceStatus::Redeemed => {
            return Err(OAuthError::invalid_grant("device_code already used"));
        }
        DeviceStatus::Approved { username } => username.clone(),
    };
    let scope = device.scope.clone();
    let grant = state.new_grant(client_id, Some(&username), scope.clone());
    let issued = state.issue(config, grant, scope.clone(), true);
    if issued.is_ok()
        && let Some(device) = state.devices.get_mut(device_code)
    {
        device.status = DeviceStatus::Redeemed;
    }
    drop(state);
    token_answer(config, issued, scope)
}
