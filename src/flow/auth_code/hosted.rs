//! Notebooks on hosted platforms: the platform's redirect page keeps the code, and we poll the
//! platform's code source for it (httr2's `HTTR2_OAUTH_REDIRECT_URL` and
//! `HTTR2_OAUTH_CODE_SOURCE_URL`).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::ACCEPT;
use http::{Method, StatusCode};
use serde_json::Value;
use url::Url;

use super::callback::{Callback, ReceivedCode};
use super::receiver::{CodeReceiver, PreparedReceiver, ReceiveContext};
use super::request::AuthorizationRequest;
use crate::error::{Error, Result};
use crate::redact::Secrets;
use crate::transport::RawResponse;
use crate::transport::is_loopback_host;

/// The variable naming the platform's redirect page.
const REDIRECT_URL_VAR: &str = "OAUTH_LAYER_REDIRECT_URL";
/// The variable naming the platform's code source.
const CODE_SOURCE_URL_VAR: &str = "OAUTH_LAYER_CODE_SOURCE_URL";

/// The poll interval when none is set.
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(2);
/// The shortest wait between polls, whatever the interval or `Retry-After` says, so polling
/// cannot spin.
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Receives the code through a hosted platform (a notebook server, a cloud IDE): the
/// authorization server redirects the person's browser to the platform's redirect page, which
/// keeps the code; we poll the platform's code source, `GET <code source>?state=<state>`, until
/// it hands the code over.
///
/// The code source answers `404` (or `429`/`503`) until the code has arrived, then `200` with a
/// JSON object: `code` (or `error` and `error_description`), and optionally `state` and `iss`.
/// The answer is checked like any callback (SECURITY.md rules 1–5): a `state` other than ours
/// is [`Error::StateMismatch`]. Waits honour `Retry-After`, else the poll interval (2 s by
/// default), and are measured on the client's [`Clock`](crate::clock::Clock); polling stops at
/// the flow's timeout with [`Error::Timeout`]. Any other status, or a body that is not a JSON
/// object, is [`Error::UnexpectedResponse`]. Polls go through the client's transport, so they
/// never follow redirects.
///
/// The platform's redirect URL is always the redirect URI, whatever
/// [`AuthCode::redirect_uri`](super::AuthCode::redirect_uri) says: the code source only ever
/// sees codes sent to the platform's page, and a redirect URI configured for desktop use
/// (a loopback port) would leave the poll waiting forever.
///
/// [`AuthCode::new`](super::AuthCode::new) picks this receiver by itself when
/// `OAUTH_LAYER_REDIRECT_URL` and `OAUTH_LAYER_CODE_SOURCE_URL` are set (see
/// [`from_env`](Self::from_env)).
///
/// ```
/// use std::time::Duration;
/// use oauth_layer::flow::{AuthCode, auth_code::HostedReceiver};
///
/// let hosted = HostedReceiver::new(
///     "https://notebooks.example/oauth/redirect",
///     "https://notebooks.example/oauth/code",
/// )?
/// .poll_interval(Duration::from_secs(1));
/// let flow = AuthCode::new().receiver(hosted);
/// # let _ = flow;
/// # Ok::<(), oauth_layer::Error>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct HostedReceiver {
    redirect_url: Url,
    code_source_url: Url,
    poll_interval: Duration,
}

impl HostedReceiver {
    /// A receiver for the platform's redirect page `redirect_url` and its code source
    /// `code_source_url`. Both must be `https` (or `http` to a loopback address), since the
    /// code passes through both (SECURITY.md rule 14).
    pub fn new(redirect_url: impl AsRef<str>, code_source_url: impl AsRef<str>) -> Result<Self> {
        Ok(Self {
            redirect_url: secure_url("the hosted redirect URL", redirect_url.as_ref())?,
            code_source_url: secure_url("the hosted code source URL", code_source_url.as_ref())?,
            poll_interval: DEFAULT_POLL_INTERVAL,
        })
    }

    /// From `OAUTH_LAYER_REDIRECT_URL` and `OAUTH_LAYER_CODE_SOURCE_URL`: `None` unless both are
    /// set and non-empty, else the receiver or the reason they are unusable.
    pub fn from_env() -> Option<Result<Self>> {
        let redirect = std::env::var_os(REDIRECT_URL_VAR).filter(|v| !v.is_empty())?;
        let source = std::env::var_os(CODE_SOURCE_URL_VAR).filter(|v| !v.is_empty())?;
        let text = |name: &str, v: std::ffi::OsString| {
            v.into_string()
                .map_err(|_| Error::config(format!("{name} is not valid UTF-8")))
        };
        Some(
            text(REDIRECT_URL_VAR, redirect)
                .and_then(|r| Ok((r, text(CODE_SOURCE_URL_VAR, source)?)))
                .and_then(|(r, s)| Self::new(r, s)),
        )
    }

    /// How long to wait between polls when the code source does not say (`Retry-After`);
    /// default 2 s. Waits are never shorter than 100 ms.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(MIN_POLL_INTERVAL);
        self
    }

    /// The platform's redirect page, which becomes the redirect URI.
    pub fn redirect_url(&self) -> &Url {
        &self.redirect_url
    }

    /// The platform's code source, which is polled.
    pub fn code_source_url(&self) -> &Url {
        &self.code_source_url
    }
}

impl fmt::Debug for HostedReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostedReceiver")
            .field("redirect_url", &self.redirect_url.as_str())
            .field("code_source_url", &self.code_source_url.as_str())
            .field("poll_interval", &self.poll_interval)
            .finish()
    }
}

#[async_trait]
impl CodeReceiver for HostedReceiver {
    async fn prepare(&self, configured: Option<&str>) -> Result<Box<dyn PreparedReceiver>> {
        if let Some(configured) = configured.filter(|c| *c != self.redirect_url.as_str()) {
            tracing::debug!(
                configured,
                hosted = self.redirect_url.as_str(),
                "a hosted platform is in use: its redirect URL replaces the configured one"
            );
        }
        Ok(Box::new(PreparedHosted(self.clone())))
    }
}

/// A hosted receiver once a sign-in has started (nothing to set up: the platform's page is
/// already there).
struct PreparedHosted(HostedReceiver);

#[async_trait]
impl PreparedReceiver for PreparedHosted {
    fn redirect_uri(&self) -> &str {
        self.0.redirect_url.as_str()
    }

    fn reads_signed_responses(&self) -> bool {
        false
    }

    async fn receive(
        self: Box<Self>,
        request: &AuthorizationRequest,
        context: &ReceiveContext,
    ) -> Result<ReceivedCode> {
        let hosted = &self.0;
        let poll_url = hosted.poll_url(request.state());
        let code_source = hosted.code_source_url.origin().ascii_serialization();
        let clock = context.clock();
        let timeout = context.timeout();
        let start = clock.now();
        let mut polls = 0u32;
        loop {
            let response = context
                .client()
                .exchange(
                    crate::error::Endpoint::HostedCodeSource,
                    poll_request(&poll_url)?,
                )
                .await?;
            polls += 1;
            tracing::debug!(
                code_source = %code_source,
                status = response.status.as_u16(),
                polls,
                "polled the hosted code source"
            );
            match response.status {
                StatusCode::OK => {
                    let callback = callback_from(&response, request)?;
                    return request.check(&callback);
                }
                StatusCode::NOT_FOUND
                | StatusCode::TOO_MANY_REQUESTS
                | StatusCode::SERVICE_UNAVAILABLE => {}
                _ => {
                    return Err(response.unexpected(
                        "the hosted code source answered with an unexpected status",
                        &Secrets::default(),
                    ));
                }
            }
            let waited = clock.now().saturating_duration_since(start);
            // Never a zero wait, which would spin on a clock that does not move by itself.
            let wait = response
                .retry_after
                .unwrap_or(hosted.poll_interval)
                .max(MIN_POLL_INTERVAL);
            if waited.saturating_add(wait) > timeout {
                return Err(Error::Timeout(format!(
                    "the hosted code source had no code after {polls} polls in {waited:?}"
                )));
            }
            clock.sleep(wait).await;
        }
    }
}

impl HostedReceiver {
    /// The code source URL with `state` set (replacing any `state` it already had).
    fn poll_url(&self, state: &str) -> Url {
        let mut url = self.code_source_url.clone();
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != "state")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(kept)
            .append_pair("state", state);
        url
    }
}

fn poll_request(url: &Url) -> Result<http::Request<Bytes>> {
    http::Request::builder()
        .method(Method::GET)
        .uri(url.as_str())
        .header(ACCEPT, "application/json")
        .body(Bytes::new())
        .map_err(|e| Error::config(format!("cannot build the code source request: {e}")))
}

/// The callback a `200` answer stands for. When the JSON omits `state`, ours stands in: the poll
/// asked by state, so the answer is for it.
fn callback_from(response: &RawResponse, request: &AuthorizationRequest) -> Result<Callback> {
    let parsed = serde_json::from_slice::<Value>(&response.body);
    // A 200 answer may carry the code in any shape, so its errors keep no snippet of the body.
    let unexpected = |problem: &str| {
        let bodiless = RawResponse {
            status: response.status,
            content_type: response.content_type.clone(),
            retry_after: response.retry_after,
            dpop_nonce: None,
            body: Bytes::new(),
        };
        bodiless.unexpected(problem, &Secrets::default())
    };
    let Ok(Value::Object(map)) = parsed else {
        return Err(unexpected(
            "the hosted code source did not answer a JSON object",
        ));
    };
    let mut pairs = Vec::new();
    for name in [
        "code",
        "state",
        "iss",
        "error",
        "error_description",
        "error_uri",
    ] {
        match map.get(name) {
            None | Some(Value::Null) => {}
            Some(Value::String(value)) => pairs.push((name, value.clone())),
            Some(_) => {
                return Err(unexpected(&format!(
                    "the hosted code source's {name} is not a string"
                )));
            }
        }
    }
    if !pairs.iter().any(|(k, _)| *k == "state") {
        pairs.push(("state", request.state().to_owned()));
    }
    Ok(Callback::from_pairs(pairs))
}

fn secure_url(name: &str, url: &str) -> Result<Url> {
    let parsed = Url::parse(url).map_err(|e| Error::config(format!("{name} is not a URL: {e}")))?;
    let secure = match parsed.scheme() {
        "https" => true,
        "http" => parsed.host_str().is_some_and(is_loopback_host),
        _ => false,
    };
    if !secure {
        return Err(Error::config(format!(
            "{name} must be https (plain http is allowed only to loopback addresses)"
        )));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_appended_to_the_code_source_query() {
        let hosted = HostedReceiver::new(
            "https://hub.example/redirect",
            "https://hub.example/code?user=ann&state=stale",
        )
        .unwrap();
        let url = hosted.poll_url("s t");
        assert_eq!(url.query(), Some("user=ann&state=s+t"));
        let bare = HostedReceiver::new("https://hub.example/r", "https://hub.example/code")
            .unwrap()
            .poll_url("abc");
        assert_eq!(bare.as_str(), "https://hub.example/code?state=abc");
    }

    #[test]
    fn plain_http_is_refused_except_to_loopback() {
        assert!(HostedReceiver::new("https://a.example/r", "http://a.example/code").is_err());
        assert!(HostedReceiver::new("http://a.example/r", "https://a.example/code").is_err());
        assert!(HostedReceiver::new("http://127.0.0.1:8000/r", "http://localhost:8000/c").is_ok());
        assert!(HostedReceiver::new("https://a.example/r", "not a url").is_err());
    }
}
