//! The device authorization grant (RFC 8628), for devices and tools that cannot open a browser
//! themselves: a TV, a CLI on a remote shell, a container.
//!
//! The client asks the device authorization endpoint for a pair of codes, shows the person the
//! short `user_code` and a URL to enter it at (through a [`DeviceDisplay`]), and polls the token
//! endpoint with the secret `device_code` until the person approves or refuses, or the code
//! expires (SECURITY.md rule 40):
//!
//! - polls are `interval` apart ([`DEFAULT_INTERVAL`] when the server sends none);
//! - `authorization_pending` keeps polling; `slow_down` adds five seconds to the interval for the
//!   rest of the flow (RFC 8628 §3.5);
//! - `access_denied` stops with [`Error::AuthorizationDenied`];
//! - `expired_token`, or reaching `expires_in` on the client's [`Clock`], stops with
//!   [`Error::Timeout`];
//! - transient failures (5xx, 429, connection errors) keep polling until the code expires; a
//!   `Retry-After` on them (a `503` from a server under load) is waited out, up to
//!   [`MAX_RETRY_AFTER_WAIT`], before the next poll; any other error stops the flow.
//!
//! Every wait goes through the client's [`Clock`], so a
//! [`ManualClock`](crate::clock::ManualClock) runs the whole flow instantly in tests.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use secrecy::SecretString;
use serde_json::{Map, Value};
use url::Url;

use super::{Flow, Requirements, Scopes};
use crate::client::{OAuthClient, Resend, TokenRequest};
use crate::clock::Clock;
use crate::error::{Error, ErrorCode, Result};
use crate::interact::{Browser, DeviceDisplay, DevicePrompt, TerminalDisplay, open_in_background};
use crate::redact::Secrets;
use crate::store::CacheKey;
use crate::token::Token;
use crate::transport::RawResponse;

/// The grant type of the polling requests (RFC 8628 §3.4).
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The polling interval when the server sends none (RFC 8628 §3.2).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// The shortest polling interval used, whatever the server says (an `interval` of 0 would
/// otherwise poll in a tight loop).
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// How long the codes are taken to live when the server omits `expires_in` (which RFC 8628
/// requires): the flow never waits forever by accident.
pub const DEFAULT_EXPIRES_IN: Duration = Duration::from_secs(30 * 60);

/// Longer `expires_in` values (and `interval` values) are clamped to this (one day).
pub const MAX_EXPIRES_IN: Duration = Duration::from_secs(24 * 3600);

/// The longest wait a `Retry-After` on a failed poll can ask for (five minutes): a server that
/// asks for a day still gets polled again while the person may be approving.
pub const MAX_RETRY_AFTER_WAIT: Duration = Duration::from_secs(5 * 60);

/// What `slow_down` adds to the interval, for the rest of the flow (RFC 8628 §3.5).
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// What a person reads when the code expired: what happened, and what to do.
const EXPIRED: &str = "the device code expired before the sign-in was approved. Start the \
                       sign-in again and enter the new code before it expires";

/// How often the display's countdown is updated while waiting.
const TICK: Duration = Duration::from_secs(1);

/// The device authorization grant (RFC 8628): show a code, wait for the person to approve it on
/// another device.
///
/// As a [`Flow`] it runs both steps: [`device_authorization`](Self::device_authorization), then
/// showing the code through the [`DeviceDisplay`] (the terminal by default) and, if asked,
/// opening the verification URL in a browser, then [`poll_token`](Self::poll_token). Both steps
/// are public for applications that show the code their own way.
///
/// ```no_run
/// use oauth_layer::{OAuthClient, TokenSource, flow::DeviceCode};
///
/// # async fn run() -> oauth_layer::Result<()> {
/// let client = OAuthClient::builder("my-cli")
///     .device_authorization_url("https://idp.example/oauth/device")
///     .token_url("https://idp.example/oauth/token")
///     .build()?;
/// let flow = DeviceCode::new()
///     .scope("openid offline_access")
///     .open_browser(true);
/// let tokens = TokenSource::new(client, flow);
/// // Shows "To sign in, open https://idp.example/device and enter the code WDJB-MJHT", counts
/// // down on stderr, and returns once the person approved.
/// let token = tokens.token().await?;
/// # let _ = token; Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct DeviceCode {
    scopes: Scopes,
    params: Vec<(String, String)>,
    display: Arc<dyn DeviceDisplay>,
    browser: Arc<dyn Browser>,
    open_browser: bool,
}

impl Default for DeviceCode {
    fn default() -> Self {
        Self {
            scopes: Scopes::default(),
            params: Vec::new(),
            display: Arc::new(TerminalDisplay),
            browser: default_browser(),
            open_browser: false,
        }
    }
}

impl DeviceCode {
    /// The grant with no scope (the server's default applies), shown on the terminal, without
    /// opening a browser.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests a scope (space-separated scopes are split; call it again to add more).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.add(scope);
        self
    }

    /// Any other form parameter of the device authorization request (an `audience`, a
    /// `resource`...). Not one the request carries already (`client_id`, `client_secret`,
    /// `client_assertion`, `client_assertion_type`, and `scope` when the flow has scopes):
    /// [`device_authorization`](Self::device_authorization) fails with [`Error::Config`].
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), value.into()));
        self
    }

    /// How the code is shown and the wait reported (default: [`TerminalDisplay`]).
    pub fn display(mut self, display: impl DeviceDisplay) -> Self {
        self.display = Arc::new(display);
        self
    }

    /// The browser [`open_browser`](Self::open_browser) uses (default: the system's).
    pub fn browser(mut self, browser: impl Browser) -> Self {
        self.browser = Arc::new(browser);
        self
    }

    /// Whether to open the verification URL (`verification_uri_complete` when the server sent
    /// one, which carries the code) in a browser on this machine as well as showing it. Off by
    /// default: the grant exists for machines where the person signs in elsewhere. Only `https`
    /// URLs (or `http` to loopback) are ever opened; a failure to open is not an error, since
    /// the URL is shown anyway.
    pub fn open_browser(mut self, open: bool) -> Self {
        self.open_browser = open;
        self
    }

    /// Step 1 (RFC 8628 §3.1): asks the device authorization endpoint for a device code and a
    /// user code. Fails with [`Error::Config`] when the client has no device authorization
    /// endpoint, [`Error::Server`] when the server answers with an OAuth error, and
    /// [`Error::UnexpectedResponse`] when the answer is not a usable device authorization.
    pub async fn device_authorization(&self, client: &OAuthClient) -> Result<DeviceAuthorization> {
        let url = client
            .device_authorization_url()
            .ok_or_else(|| Error::config("no device authorization URL configured"))?;
        let scope = self.scopes.joined();
        super::refuse_owned_params("param", &self.params, super::CLIENT_AUTH_PARAMS)?;
        if !scope.is_empty() {
            super::refuse_owned_params("param", &self.params, &["scope"])?;
        }
        let mut secrets = Secrets::default();
        let request = client
            .authenticated_form(
                url,
                |form| {
                    if !scope.is_empty() {
                        form.append_pair("scope", &scope);
                    }
                    for (name, value) in &self.params {
                        form.append_pair(name, value);
                    }
                    if !self.params.iter().any(|(name, _)| name == "resource") {
                        for resource in client.resources() {
                            form.append_pair("resource", resource);
                        }
                    }
                },
                &mut secrets,
            )
            .await?;
        // The codes live from the moment they were asked for: measure from before the request.
        let asked_at = client.clock().now();
        tracing::debug!(
            endpoint = %url.origin().ascii_serialization(),
            "device authorization request"
        );
        let response = client
            .exchange(crate::error::Endpoint::DeviceAuthorization, request)
            .await?;
        tracing::debug!(
            status = response.status.as_u16(),
            "device authorization response"
        );
        parse_device_authorization(&response, asked_at, &mut secrets)
    }

    /// Step 2 (RFC 8628 §3.4, §3.5): polls the token endpoint until the person approves
    /// (the token), refuses ([`Error::AuthorizationDenied`]) or the code expires
    /// ([`Error::Timeout`], whether the server said `expired_token` or `expires_in` passed on
    /// the client's clock). The display's [`tick`](DeviceDisplay::tick) counts down meanwhile
    /// and [`finish`](DeviceDisplay::finish) reports the outcome.
    pub async fn poll_token(
        &self,
        client: &OAuthClient,
        authorization: &DeviceAuthorization,
    ) -> Result<Token> {
        let result = self.poll_until_done(client, authorization).await;
        self.display.finish(result.is_ok());
        result
    }

    async fn poll_until_done(
        &self,
        client: &OAuthClient,
        authorization: &DeviceAuthorization,
    ) -> Result<Token> {
        let clock = client.clock();
        let deadline = authorization.expires_at;
        let scope = self.scopes.joined();
        let mut interval = authorization.interval();
        let mut wait = interval;
        loop {
            self.wait(clock, wait, deadline).await?;
            // One attempt per poll: this loop paces every retry itself, by the interval and
            // `Retry-After`, and never past the code's expiry.
            let mut request = TokenRequest::new(DEVICE_CODE_GRANT)
                .secret_param("device_code", authorization.device_code.clone())
                .resend(Resend::Never);
            if !scope.is_empty() {
                request = request.requested_scope(scope.clone());
            }
            let err = match client.request_token(request).await {
                Ok(token) => return Ok(token),
                Err(err) => err,
            };
            wait = interval;
            match err {
                Error::Server(e) if e.code == ErrorCode::AuthorizationPending => {}
                Error::Server(e) if e.code == ErrorCode::SlowDown => {
                    interval = interval.saturating_add(SLOW_DOWN_STEP).min(MAX_EXPIRES_IN);
                    wait = interval;
                    tracing::debug!(
                        interval_s = interval.as_secs(),
                        "device grant: slow_down, polling less often"
                    );
                }
                Error::Server(e) if e.code == ErrorCode::AccessDenied => {
                    return Err(Error::AuthorizationDenied(e));
                }
                Error::Server(e) if e.code == ErrorCode::ExpiredToken => {
                    return Err(Error::Timeout(format!(
                        "{EXPIRED} (OAuth error `expired_token`)"
                    )));
                }
                err if err.is_transient() => {
                    if let Some(after) = err.retry_after() {
                        wait = wait.max(after.min(MAX_RETRY_AFTER_WAIT));
                    }
                    tracing::debug!(
                        error = %err,
                        wait_s = wait.as_secs(),
                        "device grant: transient failure, polling on"
                    );
                }
                err => return Err(err),
            }
        }
    }

    /// Waits `wait`, counting down on the display every second, or fails once `deadline` is
    /// reached.
    async fn wait(&self, clock: &dyn Clock, wait: Duration, deadline: Instant) -> Result<()> {
        let start = clock.now();
        let until = crate::clock::instant_after(start, wait);
        loop {
            let now = clock.now();
            if now >= deadline {
                return Err(Error::Timeout(EXPIRED.into()));
            }
            if now >= until {
                return Ok(());
            }
            let remaining = deadline - now;
            self.display.tick(remaining);
            clock.sleep((until - now).min(remaining).min(TICK)).await;
        }
    }

    fn open_in_browser(&self, authorization: &DeviceAuthorization) {
        let url = authorization
            .verification_uri_complete()
            .unwrap_or(authorization.verification_uri());
        // The code is shown anyway, so the outcome of opening only matters to the logs.
        match open_in_background(self.browser.clone(), url) {
            Ok(opening) => {
                tokio::spawn(async move {
                    if let Ok(Err(e)) = opening.await {
                        tracing::debug!(error = %e, "could not open a browser; the URL is shown instead");
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "not opening the verification URL"),
        }
    }
}

#[async_trait]
impl Flow for DeviceCode {
    async fn fetch(&self, client: &OAuthClient) -> Result<Token> {
        let authorization = self.device_authorization(client).await?;
        self.display.show(authorization.prompt());
        if self.open_browser {
            self.open_in_browser(&authorization);
        }
        self.poll_token(client, &authorization).await
    }

    fn cache_key(&self, client: &OAuthClient) -> CacheKey {
        let mut key = CacheKey::builder(client, "device_code").scopes(self.scopes.iter());
        for (name, value) in &self.params {
            key = key.part("param", format!("{name}={value}"));
        }
        key.build()
    }

    fn is_interactive(&self) -> bool {
        true
    }

    /// Wider scopes, and `claims` on the device authorization request; `None` for `acr_values`
    /// or `max_age`, which the device grant has no standard way to ask for (RFC 8628).
    fn upgraded(&self, need: &Requirements) -> Option<Arc<dyn Flow>> {
        if need.needs_sign_in() {
            return None;
        }
        let mut wider = self.clone();
        wider.scopes = need.widen(&self.scopes);
        super::requirements::replace_param(&mut wider.params, "claims", need.claims.clone());
        Some(Arc::new(wider))
    }
}

/// The device authorization endpoint's answer (RFC 8628 §3.2): what to show the person (its
/// [`prompt`](Self::prompt)), and the secret device code to poll with.
///
/// The `user_code` is meant to be shown; the `device_code` is a secret and never appears in
/// `Debug`. Google's `verification_url` is accepted for `verification_uri`, and members this
/// crate does not interpret (such as Microsoft's ready-made `message`) are kept in
/// [`extra`](Self::extra).
#[derive(Clone)]
pub struct DeviceAuthorization {
    device_code: SecretString,
    expires_at: Instant,
    prompt: DevicePrompt,
}

impl DeviceAuthorization {
    /// What the person is shown: the code, where to enter it, how long it lives.
    pub fn prompt(&self) -> &DevicePrompt {
        &self.prompt
    }

    /// The code the person enters at the verification URL.
    pub fn user_code(&self) -> &str {
        self.prompt.user_code()
    }

    /// Where the person enters the code.
    pub fn verification_uri(&self) -> &Url {
        self.prompt.verification_uri()
    }

    /// The verification URL with the code already in it, if the server sent one (for a QR code
    /// or a browser).
    pub fn verification_uri_complete(&self) -> Option<&Url> {
        self.prompt.verification_uri_complete()
    }

    /// How long the codes live, as the server said (or [`DEFAULT_EXPIRES_IN`]).
    pub fn expires_in(&self) -> Duration {
        self.prompt.expires_in()
    }

    /// When the codes expire, on the monotonic clock of the client that asked for them.
    pub fn expires_at(&self) -> Instant {
        self.expires_at
    }

    /// The polling interval the server asked for (or [`DEFAULT_INTERVAL`]), before any
    /// `slow_down`.
    pub fn interval(&self) -> Duration {
        self.prompt.interval()
    }

    /// Members of the response this crate does not interpret, kept as sent.
    pub fn extra(&self) -> &Map<String, Value> {
        self.prompt.extra()
    }
}

impl fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("device_code", &"[redacted]")
            .field("prompt", &self.prompt)
            .finish()
    }
}

/// Classifies a device authorization response like a token response (rule 15): the
/// authorization, an OAuth error, or an unexpected response. Never panics.
fn parse_device_authorization(
    resp: &RawResponse,
    asked_at: Instant,
    secrets: &mut Secrets<'_>,
) -> Result<DeviceAuthorization> {
    let mut map = resp.json_object(secrets)?;
    if let Some(Value::String(code)) = map.get("device_code") {
        secrets.add_owned(code.clone());
    }
    resp.check_oauth(&map, secrets)?;

    let device_code = match map.remove("device_code") {
        Some(Value::String(s)) if !s.is_empty() => SecretString::from(s),
        None | Some(Value::String(_)) => return Err(resp.unexpected("no device_code", secrets)),
        Some(_) => return Err(resp.unexpected("device_code is not a string", secrets)),
    };
    let user_code = match map.remove("user_code") {
        Some(Value::String(s)) if !s.trim().is_empty() => s,
        None | Some(Value::String(_)) => return Err(resp.unexpected("no user_code", secrets)),
        Some(_) => return Err(resp.unexpected("user_code is not a string", secrets)),
    };
    let verification_uri = match map
        .remove("verification_uri")
        .or_else(|| map.remove("verification_url"))
    {
        Some(Value::String(s)) => match web_url(&s) {
            Some(url) => url,
            None => return Err(resp.unexpected("verification_uri is not an http(s) URL", secrets)),
        },
        None => return Err(resp.unexpected("no verification_uri", secrets)),
        Some(_) => return Err(resp.unexpected("verification_uri is not a string", secrets)),
    };
    // Optional: one that is unusable is dropped, and the plain URL shown instead.
    let verification_uri_complete = match map.remove("verification_uri_complete") {
        Some(Value::String(s)) => web_url(&s),
        _ => None,
    };
    let expires_in = seconds(map.remove("expires_in")).unwrap_or(DEFAULT_EXPIRES_IN);
    let interval = seconds(map.remove("interval"))
        .unwrap_or(DEFAULT_INTERVAL)
        .max(MIN_INTERVAL);

    Ok(DeviceAuthorization {
        device_code,
        expires_at: crate::clock::instant_after(asked_at, expires_in),
        prompt: DevicePrompt {
            user_code,
            verification_uri,
            verification_uri_complete,
            expires_in,
            interval,
            extra: map,
        },
    })
}

/// `s` as an `http` or `https` URL; anything else (`javascript:`, `file:`, junk) is `None`.
fn web_url(s: &str) -> Option<Url> {
    Url::parse(s.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
}

/// A duration in seconds, sent as a number or a numeric string; fractions floor, negatives are
/// zero, huge values clamp to [`MAX_EXPIRES_IN`]. Missing or unusable is `None`.
fn seconds(value: Option<Value>) -> Option<Duration> {
    let secs = match value? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => Some(s.trim())
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
            .and_then(|s| s.parse::<f64>().ok()),
        _ => None,
    }?;
    if secs.is_nan() {
        return None;
    }
    let max = MAX_EXPIRES_IN.as_secs();
    Some(Duration::from_secs(
        secs.floor().clamp(0.0, max as f64) as u64
    ))
}

/// The system browser when the `browser` feature is on; otherwise none (the URL is shown).
fn default_browser() -> Arc<dyn Browser> {
    #[cfg(feature = "browser")]
    return Arc::new(crate::interact::SystemBrowser);
    #[cfg(not(feature = "browser"))]
    return Arc::new(crate::interact::NoBrowser);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_accept_numbers_and_numeric_strings() {
        let s = |v: Value| seconds(Some(v));
        assert_eq!(s(Value::from(5)), Some(Duration::from_secs(5)));
        assert_eq!(s(Value::from(2.9)), Some(Duration::from_secs(2)));
        assert_eq!(s(Value::from("30")), Some(Duration::from_secs(30)));
        assert_eq!(s(Value::from(-3)), Some(Duration::ZERO));
        assert_eq!(s(Value::from(1e300)), Some(MAX_EXPIRES_IN));
        assert_eq!(s(Value::from("NaN")), None);
        assert_eq!(s(Value::from("inf")), None);
        assert_eq!(s(Value::Null), None);
        assert_eq!(seconds(None), None);
    }

    #[test]
    fn only_web_urls_are_kept() {
        assert!(web_url("https://idp.example/device").is_some());
        assert!(web_url("javascript:alert(1)").is_none());
        assert!(web_url("file:///etc/passwd").is_none());
        assert!(web_url("not a url").is_none());
    }
}
