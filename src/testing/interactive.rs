//! The interactive flows: the authorization endpoint with its automatic login (RFC 6749 §4.1,
//! RFC 7636, RFC 9207), the device authorization endpoint and its verification page (RFC 8628),
//! and the two token grants that redeem what they hand out.
//!
//! As at the token endpoint, every handler is synchronous and takes the state lock without an `.await`
//! in between.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, PRAGMA, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS,
};
use http::request::Parts;
use http::{HeaderValue, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use url::Url;

use super::client_auth::authenticate;
use super::form::{Form, parse_form, requested_scope};
use super::reply::{OAuthError, Response, json_response, no_store, token_answer};
use super::state::{
    AuthorizationCode, DeviceAuthorization, DeviceStatus, Shared, random_token, random_user_code,
};

/// The grant type of RFC 8628 §3.4.
pub(super) const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// How long an authorization code can be redeemed (RFC 6749 §4.1.2 recommends at most 10
/// minutes).
pub(super) const AUTHORIZATION_CODE_LIFETIME: Duration = Duration::from_secs(60);

/// What a client waits between polls when the server sends no `interval` (RFC 8628 §3.5), and
/// what every `slow_down` adds.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

// --- the authorization endpoint ---------------------------------------------------------

/// `GET /authorize`: checks the request, logs in automatically, and redirects back with a code
/// or an error.
pub(super) fn authorize(shared: &Shared, parts: &Parts) -> Response {
    shared.lock().authorization_requests += 1;
    let config = &shared.config;
    let query = Query::parse(parts.uri.query());

    // Until the client and its redirect URI are known good, nothing is redirected
    // (RFC 6749 §4.1.2.1): the user gets a page instead.
    if query.is_repeated("client_id") || query.is_repeated("redirect_uri") {
        return page(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            "client_id or redirect_uri is repeated.",
        );
    }
    let Some(client_id) = query.get("client_id") else {
        return page(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            "client_id is missing.",
        );
    };
    if !config.clients.contains_key(client_id) {
        return page(
            StatusCode::BAD_REQUEST,
            "Unknown client",
            "This client is not registered.",
        );
    }
    let registered = config
        .redirect_uris
        .get(client_id)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let redirect_uri = match query.get("redirect_uri") {
        Some(uri) if registered.iter().any(|r| r == uri) || is_loopback_redirect(uri) => uri,
        Some(_) => {
            return page(
                StatusCode::BAD_REQUEST,
                "Invalid redirect URI",
                "The redirect URI is neither registered for this client nor an http loopback URI.",
            );
        }
        // RFC 6749 §3.1.2.3: the parameter may be left out only when exactly one is registered.
        None => match registered {
            [only] => only.as_str(),
            _ => {
                return page(
                    StatusCode::BAD_REQUEST,
                    "Invalid request",
                    "redirect_uri is missing.",
                );
            }
        },
    };
    let Ok(target) = Url::parse(redirect_uri) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Invalid redirect URI",
            "The redirect URI is not a URL.",
        );
    };

    // From here on, errors go back to the client.
    let state = if query.is_repeated("state") {
        None
    } else {
        query.get("state")
    };
    let back = Redirect {
        target,
        state,
        iss: config.send_iss.then_some(config.issuer.as_str()),
    };
    let code = match check_authorization_request(&query, config.require_pkce) {
        Ok(checked) => checked,
        Err((error, description)) => return back.error(error, description),
    };
    let mut locked = shared.lock();
    if locked.deny_authorization {
        return back.error("access_denied", "the user denied the request");
    }
    let Ok(value) = random_token("ac") else {
        return back.error("server_error", "no randomness available");
    };
    locked.authorization_codes.insert(
        value.clone(),
        AuthorizationCode {
            client_id: client_id.to_owned(),
            redirect_uri_param: query.get("redirect_uri").map(str::to_owned),
            redirect_uri: redirect_uri.to_owned(),
            code_challenge: code.challenge,
            scope: code.scope,
            nonce: query.get("nonce").map(str::to_owned),
            username: query
                .get("login_hint")
                .unwrap_or(&config.default_user)
                .to_owned(),
            expires_at: config.clock.now() + AUTHORIZATION_CODE_LIFETIME,
            spent: false,
            grant_id: None,
        },
    );
    drop(locked);
    back.to(&[("code", &value)])
}

/// What a valid authorization request asks for.
struct Checked {
    challenge: Option<String>,
    scope: Option<String>,
}

type Refusal = (&'static str, &'static str);

fn check_authorization_request(query: &Query, require_pkce: bool) -> Result<Checked, Refusal> {
    if !query.repeated.is_empty() {
        return Err(("invalid_request", "a parameter is repeated"));
    }
    match query.get("response_type") {
        None => return Err(("invalid_request", "response_type is missing")),
        Some("code") => {}
        Some(_) => {
            return Err((
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
    }
    let scope = requested_scope(&query.params).map_err(|_| {
        (
            "invalid_scope",
            "scope contains characters RFC 6749 §3.3 forbids",
        )
    })?;
    let challenge = match (
        query.get("code_challenge"),
        query.get("code_challenge_method"),
    ) {
        (None, None) if require_pkce => {
            return Err(("invalid_request", "code_challenge is required (PKCE)"));
        }
        (None, None) => None,
        (None, Some(_)) => {
            return Err((
                "invalid_request",
                "code_challenge_method without code_challenge",
            ));
        }
        (Some(challenge), Some("S256")) => {
            // BASE64URL(SHA-256(verifier)) is always 43 characters.
            let decoded = URL_SAFE_NO_PAD.decode(challenge);
            if challenge.len() != 43 || decoded.is_err() {
                return Err(("invalid_request", "code_challenge is not an S256 challenge"));
            }
            Some(challenge.to_owned())
        }
        // A missing method means `plain` (RFC 7636 §4.3), which is never accepted.
        (Some(_), _) => {
            return Err((
                "invalid_request",
                "transform algorithm not supported: use code_challenge_method=S256",
            ));
        }
    };
    Ok(Checked { challenge, scope })
}

/// Whether `uri` is an `http` URI on a loopback IP literal, any port (RFC 8252 §7.3). `localhost`
/// is refused, as RFC 8252 §8.3 advises.
pub(super) fn is_loopback_redirect(uri: &str) -> bool {
    let Ok(url) = Url::parse(uri) else {
        return false;
    };
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        _ => false,
    };
    url.scheme() == "http"
        && loopback
        && url.username().is_empty()
        && url.password().is_none()
        && url.fragment().is_none()
}

/// The way back to the client: its redirect URI, the `state` to echo and the `iss` to add.
struct Redirect<'a> {
    target: Url,
    state: Option<&'a str>,
    iss: Option<&'a str>,
}

impl Redirect<'_> {
    fn error(&self, error: &str, description: &str) -> Response {
        self.to(&[("error", error), ("error_description", description)])
    }

    /// `302 Found` to the redirect URI with `params`, then `state` and `iss`, added to its
    /// query (which is kept, RFC 6749 §3.1.2).
    fn to(&self, params: &[(&str, &str)]) -> Response {
        let mut location = self.target.clone();
        {
            let mut pairs = location.query_pairs_mut();
            for (name, value) in params {
                pairs.append_pair(name, value);
            }
            if let Some(state) = self.state {
                pairs.append_pair("state", state);
            }
            if let Some(iss) = self.iss {
                pairs.append_pair("iss", iss);
            }
        }
        let Ok(location) = HeaderValue::try_from(location.as_str()) else {
            return page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Server error",
                "The redirect could not be built.",
            );
        };
        let mut response = inert(http::Response::new(Full::new(Bytes::new())));
        *response.status_mut() = StatusCode::FOUND;
        response.headers_mut().insert(LOCATION, location);
        response
    }
}

// --- the device authorization endpoint ---------------------------------------------------

/// `POST /device_authorization` (RFC 8628 §3.1–3.2).
pub(super) fn device_authorization(shared: &Shared, parts: &Parts, body: &[u8]) -> Response {
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
pub(super) fn device_page(shared: &Shared, parts: &Parts) -> Response {
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
pub(super) fn decide_device(shared: &Shared, user_code: &str, approve: bool) -> bool {
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

// --- the token grants ---------------------------------------------------------------------

/// `grant_type=authorization_code` (RFC 6749 §4.1.3, RFC 7636 §4.5–4.6). A code is spent the
/// first time it is presented, whatever the outcome; presenting it again revokes the tokens it
/// produced (RFC 6749 §4.1.2).
pub(super) fn authorization_code(
    shared: &Shared,
    client_id: &str,
    form: &Form,
) -> Result<Value, OAuthError> {
    let config = &shared.config;
    let code = form
        .get("code")
        .ok_or_else(|| OAuthError::invalid_request("code is missing"))?;
    let now = config.clock.now();
    let mut state = shared.lock();
    let record = state
        .authorization_codes
        .get_mut(code)
        .ok_or_else(|| OAuthError::invalid_grant("unknown authorization code"))?;
    if record.spent {
        if let Some(grant_id) = record.grant_id.take() {
            state.revoke_grant(grant_id);
        }
        return Err(OAuthError::invalid_grant(
            "authorization code already used; the tokens issued for it are revoked",
        ));
    }
    record.spent = true;
    if record.client_id != client_id {
        return Err(OAuthError::invalid_grant(
            "authorization code was issued to another client",
        ));
    }
    if now >= record.expires_at {
        return Err(OAuthError::invalid_grant("authorization code expired"));
    }
    let redirect_matches = match (&record.redirect_uri_param, form.get("redirect_uri")) {
        (Some(sent), Some(given)) => sent == given,
        (Some(_), None) => false,
        (None, given) => given.is_none_or(|g| g == record.redirect_uri),
    };
    if !redirect_matches {
        return Err(OAuthError::invalid_grant(
            "redirect_uri differs from the authorization request",
        ));
    }
    match (&record.code_challenge, form.get("code_verifier")) {
        (Some(challenge), Some(verifier)) => {
            if !is_verifier(verifier)
                || !constant_time_eq(s256(verifier).as_bytes(), challenge.as_bytes())
            {
                return Err(OAuthError::invalid_grant(
                    "code_verifier does not match the code_challenge",
                ));
            }
        }
        (Some(_), None) => return Err(OAuthError::invalid_grant("code_verifier is missing")),
        // RFC 9700 §2.1.1: a verifier without a challenge is a downgrade attempt.
        (None, Some(_)) => {
            return Err(OAuthError::invalid_grant(
                "code_verifier sent but the authorization request had no code_challenge",
            ));
        }
        (None, None) => {}
    }
    let scope = record.scope.clone();
    let username = record.username.clone();
    let grant = state.new_grant(client_id, Some(&username), scope.clone());
    let grant_id = grant.id;
    let issued = state.issue(config, grant, scope.clone(), true);
    if issued.is_ok()
        && let Some(record) = state.authorization_codes.get_mut(code)
    {
        record.grant_id = Some(grant_id);
    }
    drop(state);
    token_answer(config, issued, scope)
}

/// `grant_type=urn:ietf:params:oauth:grant-type:device_code` (RFC 8628 §3.4–3.5).
pub(super) fn device_code(
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

/// RFC 7636 §4.1: 43 to 128 unreserved characters.
fn is_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// `BASE64URL(SHA256(ASCII(verifier)))`, no padding (RFC 7636 §4.2).
fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

// --- pages and queries --------------------------------------------------------------------

/// A short HTML page for the user's browser. Only fixed text goes in: nothing from the request
/// is reflected.
fn page(status: StatusCode, title: &'static str, message: &'static str) -> Response {
    let html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><h1>{title}</h1><p>{message}</p></body></html>\n"
    );
    let mut response = inert(http::Response::new(Full::new(Bytes::from(html))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// Headers for anything a browser sees: not cached, no referrer, no scripts or subresources.
fn inert(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'"),
    );
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// A query string: each parameter once (empty values count as absent, RFC 6749 §3.1), and the
/// names of those that came more than once.
struct Query {
    params: Form,
    repeated: Vec<String>,
}

impl Query {
    fn parse(query: Option<&str>) -> Self {
        let mut params = HashMap::new();
        let mut repeated = Vec::new();
        for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            if value.is_empty() {
                continue;
            }
            if params
                .insert(name.to_string(), value.into_owned())
                .is_some()
            {
                repeated.push(name.into_owned());
            }
        }
        Self {
            params: Form::new(params),
            repeated,
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name)
    }

    fn is_repeated(&self, name: &str) -> bool {
        self.repeated.iter().any(|r| r == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_redirects_are_ip_literals_over_http() {
        assert!(is_loopback_redirect("http://127.0.0.1:4000/callback"));
        assert!(is_loopback_redirect("http://127.0.0.1/"));
        assert!(is_loopback_redirect("http://[::1]:4000/cb?x=1"));
        assert!(!is_loopback_redirect("https://127.0.0.1/cb"));
        assert!(!is_loopback_redirect("http://localhost:4000/cb"));
        assert!(!is_loopback_redirect("http://127.0.0.1.evil.example/cb"));
        assert!(!is_loopback_redirect("http://user@127.0.0.1/cb"));
        assert!(!is_loopback_redirect("http://127.0.0.1/cb#frag"));
        assert!(!is_loopback_redirect("http://example.com/cb"));
    }

    #[test]
    fn s256_matches_rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(is_verifier(verifier));
        assert_eq!(
            s256(verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(!is_verifier("short"));
        assert!(!is_verifier(&"a+".repeat(30)));
    }

    #[test]
    fn repeated_query_parameters_are_noticed() {
        let query = Query::parse(Some("a=1&b=&a=2&c=3"));
        assert!(query.is_repeated("a"));
        assert_eq!(query.get("b"), None);
        assert_eq!(query.get("c"), Some("3"));
    }
}
