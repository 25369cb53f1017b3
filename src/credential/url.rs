//! A credential from an HTTP endpoint: GitHub Actions' OIDC token URL, a metadata server, a
//! token broker.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, HeaderName, HeaderValue, USER_AGENT};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::{Credential, CredentialSource};
use crate::clock::SystemClock;
use crate::error::{Endpoint, Error, Result, TransportError, TransportErrorKind};
use crate::redact::Secrets;
use crate::transport::{HttpTransport, Limits, exchange};

/// The largest answer a URL source reads (64 KiB): a credential is a few kilobytes at most.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The deadline for one request to a URL source.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How a URL source's answer holds the credential.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseFormat {
    /// The whole body, trimmed, is the credential.
    Text,
    /// The body is a JSON object; the credential is the string member with this name.
    JsonField(String),
}

/// A credential fetched with a `GET` at every token request.
///
/// The request follows the crate's back-channel rules: `https` only (plain `http` to loopback
/// addresses alone), no redirects, a deadline (10 s by default) and a 64 KiB cap on the answer.
/// Header values are kept as secrets (they are usually bearer tokens) and never printed.
///
/// ```
/// use oauth_layer::credential::{ResponseFormat, UrlSource};
///
/// let source = UrlSource::new("https://broker.example/token")?
///     .header("Authorization", "Bearer the-ci-token")
///     .query("audience", "api://AzureADTokenExchange")
///     .format(ResponseFormat::JsonField("value".into()));
/// assert!(!format!("{source:?}").contains("the-ci-token"));
/// # Ok::<(), oauth_layer::Error>(())
/// ```
#[derive(Clone)]
pub struct UrlSource {
    url: Url,
    headers: Vec<(HeaderName, SecretString)>,
    format: ResponseFormat,
    timeout: Duration,
    transport: Option<Arc<dyn HttpTransport>>,
    problem: Option<String>,
}

impl UrlSource {
    /// A source reading `url` as plain text. Fails when `url` is not a URL, or neither `https`
    /// nor plain `http` to a loopback or link-local address. The link-local exception
    /// (`169.254.0.0/16`, `fe80::/10`, as IP addresses) is for instance metadata services such
    /// as Azure's IMDS (`http://169.254.169.254/metadata/identity/oauth2/token?...` with
    /// `.header("Metadata", "true")`), which speak only plain http and are reached without a
    /// proxy; token endpoints never get it.
    pub fn new(url: impl AsRef<str>) -> Result<Self> {
        let url = match Url::parse(url.as_ref()) {
            Ok(parsed)
                if parsed
                    .as_str()
                    .parse::<http::Uri>()
                    .is_ok_and(|uri| crate::transport::is_link_local_http(&uri)) =>
            {
                parsed
            }
            _ => crate::client::endpoint("credential URL", url.as_ref())?,
        };
        Ok(Self {
            url,
            headers: Vec::new(),
            format: ResponseFormat::Text,
            timeout: DEFAULT_TIMEOUT,
            transport: None,
            problem: None,
        })
    }

    /// GitHub Actions' OIDC token for `audience`: reads `ACTIONS_ID_TOKEN_REQUEST_URL` and
    /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN` (present in jobs with `permissions: id-token: write`),
    /// and asks for the token with `Authorization: bearer <token>` and the `audience` query
    /// parameter; the answer's `value` member is the credential. A missing variable is an error
    /// naming it.
    pub fn github_actions(audience: impl Into<String>) -> Result<Self> {
        Self::github_actions_from_env_lookup(audience, |name| std::env::var(name).ok())
    }

    /// [`github_actions`](Self::github_actions) with the environment read through `lookup`
    /// (for tests, or a configuration that is not the process environment).
    pub fn github_actions_from_env_lookup(
        audience: impl Into<String>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let var = |name: &str| {
            lookup(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| Error::config(format!("{name} is not set")))
        };
        let url = var("ACTIONS_ID_TOKEN_REQUEST_URL")?;
        let token = var("ACTIONS_ID_TOKEN_REQUEST_TOKEN")?;
        Ok(Self::new(url)?
            .header("Authorization", format!("bearer {token}"))
            .query("audience", audience.into())
            .format(ResponseFormat::JsonField("value".into())))
    }

    /// Sends a header with every request; its value is kept as a secret.
    pub fn header(mut self, name: impl AsRef<str>, value: impl Into<String>) -> Self {
        match HeaderName::try_from(name.as_ref()) {
            Ok(name) => self.headers.push((name, SecretString::from(value.into()))),
            Err(_) => {
                self.problem
                    .get_or_insert_with(|| format!("{:?} is not a header name", name.as_ref()));
            }
        }
        self
    }

    /// Adds a query parameter to the URL.
    pub fn query(mut self, name: impl AsRef<str>, value: impl AsRef<str>) -> Self {
        self.url
            .query_pairs_mut()
            .append_pair(name.as_ref(), value.as_ref());
        self
    }

    /// How the answer holds the credential (plain text by default).
    pub fn format(mut self, format: ResponseFormat) -> Self {
        self.format = format;
        self
    }

    /// The deadline for one request (10 s by default).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The transport the request goes through; by default the crate's shared reqwest client
    /// (feature `reqwest`). A transport that follows redirects is refused, as
    /// [`OAuthClientBuilder::transport`](crate::OAuthClientBuilder::transport) refuses it.
    pub fn transport(mut self, transport: impl HttpTransport) -> Self {
        self.transport = Some(match transport.follows_redirects() {
            None => Arc::new(transport),
            Some(why) => Arc::new(crate::transport::Refused { why }),
        });
        self
    }

    fn fail(&self, reason: impl Into<String>) -> Error {
        Error::Credential {
            origin: self.describe(),
            reason: reason.into(),
        }
    }

    async fn send(
        &self,
        request: http::Request<Bytes>,
    ) -> std::result::Result<crate::transport::RawResponse, TransportError> {
        let limits = Limits {
            timeout: self.timeout,
            max_body: MAX_ANSWER_BYTES,
        };
        match &self.transport {
            Some(t) => {
                exchange(
                    &**t,
                    Endpoint::CredentialSource,
                    request,
                    limits,
                    &SystemClock,
                )
                .await
            }
            None => {
                #[cfg(feature = "reqwest")]
                {
                    let client = if crate::transport::is_link_local_http(request.uri()) {
                        crate::transport::direct_client()?
                    } else {
                        crate::transport::default_client()?
                    };
                    exchange(
                        &client,
                        Endpoint::CredentialSource,
                        request,
                        limits,
                        &SystemClock,
                    )
                    .await
                }
                #[cfg(not(feature = "reqwest"))]
                {
                    let _ = (request, limits);
                    Err(TransportError::new(
                        TransportErrorKind::Other,
                        "no transport configured (enable the `reqwest` feature or call UrlSource::transport)",
                    ))
                }
            }
        }
    }
}

#[async_trait]
impl CredentialSource for UrlSource {
    async fn credential(&self) -> Result<Credential> {
        if let Some(problem) = &self.problem {
            return Err(Error::config(problem.clone()));
        }
        let mut builder = http::Request::get(self.url.as_str())
            .header(
                USER_AGENT,
                concat!("oauth-layer/", env!("CARGO_PKG_VERSION")),
            )
            .header(
                ACCEPT,
                match self.format {
                    ResponseFormat::Text => "text/plain, application/jwt, */*",
                    ResponseFormat::JsonField(_) => "application/json",
                },
            );
        let mut secrets = Secrets::default();
        for (name, value) in &self.headers {
            let mut header = HeaderValue::try_from(value.expose_secret())
                .map_err(|_| self.fail(format!("the {name} header value is not a header value")))?;
            header.set_sensitive(true);
            builder = builder.header(name, header);
            secrets.add(value.expose_secret());
            if name == AUTHORIZATION
                && let Some((_, token)) = value.expose_secret().split_once(' ')
            {
                secrets.add(token);
            }
        }
        let request = builder
            .body(Bytes::new())
            .map_err(|e| Error::config(format!("cannot build the request: {e}")))?;
        let response = self.send(request).await.map_err(|e| {
            let kind = e.kind;
            let reason = e.to_string();
            match kind {
                TransportErrorKind::Redirect | TransportErrorKind::BodyTooLarge => {
                    self.fail(reason)
                }
                _ => Error::Transport(e),
            }
        })?;
        if !response.status.is_success() {
            return Err(self.fail(format!(
                "it answered HTTP {} ({})",
                response.status.as_u16(),
                crate::redact::snippet(&response.body, &secrets)
            )));
        }
        let text = std::str::from_utf8(&response.body)
            .map_err(|_| self.fail("the answer is not UTF-8"))?;
        let value = match &self.format {
            ResponseFormat::Text => {
                let value = text.trim();
                if value.starts_with('<') {
                    return Err(self.fail("the answer is HTML or XML, not a credential"));
                }
                value.to_owned()
            }
            ResponseFormat::JsonField(field) => {
                let json: serde_json::Value = serde_json::from_str(text).map_err(|_| {
                    let what = if text.trim_start().starts_with('<') {
                        "HTML or XML"
                    } else {
                        "not JSON"
                    };
                    self.fail(format!("the answer is {what}; a JSON object was expected"))
                })?;
                json.get(field)
                    .and_then(serde_json::Value::as_str)
                    .map(|v| v.trim().to_owned())
                    .ok_or_else(|| {
                        self.fail(format!("the JSON answer has no string member {field:?}"))
                    })?
            }
        };
        if value.is_empty() || value.chars().any(char::is_whitespace) {
            return Err(self.fail("the answer is empty or not a single token"));
        }
        Ok(Credential::new(value))
    }

    fn describe(&self) -> String {
        // The path names the endpoint; the query may carry something private.
        format!(
            "url {}{}",
            self.url.origin().ascii_serialization(),
            self.url.path()
        )
    }

    fn identity(&self) -> String {
        // The query (an audience) and the headers (whose token asks) decide the credential.
        let mut identity = format!("url {}", self.url);
        for (name, value) in &self.headers {
            identity.push('\0');
            identity.push_str(name.as_str());
            identity.push(':');
            identity.push_str(value.expose_secret());
        }
        identity
    }
}

impl fmt::Debug for UrlSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UrlSource")
            .field("url", &self.describe())
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(name, _)| (name.as_str(), "[redacted]"))
                    .collect::<Vec<_>>(),
            )
            .field("format", &self.format)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}
