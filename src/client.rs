//! The app registration and the whole conversation with the token endpoint.

pub mod auth;
mod introspection;
mod revocation;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderValue, Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

pub use auth::AuthMethod;
pub use introspection::Introspection;
pub use revocation::TokenTypeHint;

use crate::clock::{Clock, SystemClock};
use crate::discovery::Metadata;
use crate::error::{Error, Result, TransportError, TransportErrorKind};
use crate::redact::Secrets;
use crate::token::{DEFAULT_LIFETIME, ParseContext, Token, parse_token_response};
use crate::transport::RawResponse;
use crate::transport::{HttpTransport, Limits, exchange, is_secure_or_loopback};

/// An OAuth client registration: its id and credential, the server's endpoints, and how to talk
/// to them. The one place that talks to a token endpoint.
///
/// Cheap to clone; clones share everything.
///
/// ```
/// use oauth_layer::{AuthMethod, OAuthClient};
///
/// let client = OAuthClient::new("my-client-id")
///     .secret("s3cret")
///     .auth_method(AuthMethod::ClientSecretPost)
///     .token_url("https://idp.example/oauth/token")?;
/// assert_eq!(client.client_id(), "my-client-id");
/// assert!(!format!("{client:?}").contains("s3cret"));
/// # Ok::<(), oauth_layer::Error>(())
/// ```
#[derive(Clone)]
pub struct OAuthClient {
    inner: Arc<Config>,
}

#[derive(Clone)]
struct Config {
    client_id: String,
    secret: Option<SecretString>,
    auth_method: Option<AuthMethod>,
    token_url: Option<Url>,
    authorization_url: Option<Url>,
    device_authorization_url: Option<Url>,
    revocation_url: Option<Url>,
    introspection_url: Option<Url>,
    issuer: Option<String>,
    metadata: Option<Arc<Metadata>>,
    transport: Option<Arc<dyn HttpTransport>>,
    clock: Arc<dyn Clock>,
    limits: Limits,
    default_lifetime: Duration,
    lenient_token_type: bool,
    #[cfg(feature = "jwt")]
    signing_key: Option<crate::jwt::SigningKey>,
    #[cfg(feature = "jwt")]
    assertion_audience_issuer: bool,
    retry: RetryPolicy,
    user_agent: HeaderValue,
}

impl OAuthClient {
    /// A client with this `client_id` and no endpoints yet.
    pub fn new(client_id: impl Into<String>) -> Self {
        Self {
            inner: Arc::new(Config {
                client_id: client_id.into(),
                secret: None,
                auth_method: None,
                token_url: None,
                authorization_url: None,
                device_authorization_url: None,
                revocation_url: None,
                introspection_url: None,
                issuer: None,
                metadata: None,
                transport: None,
                clock: Arc::new(SystemClock),
                limits: Limits::default(),
                default_lifetime: DEFAULT_LIFETIME,
                lenient_token_type: false,
                #[cfg(feature = "jwt")]
                signing_key: None,
                #[cfg(feature = "jwt")]
                assertion_audience_issuer: false,
                retry: RetryPolicy::default(),
                user_agent: HeaderValue::from_static(concat!(
                    "oauth-layer/",
                    env!("CARGO_PKG_VERSION")
                )),
            }),
        }
    }

    fn with(mut self, change: impl FnOnce(&mut Config)) -> Self {
        change(Arc::make_mut(&mut self.inner));
        self
    }

    /// The client secret (kept in a `SecretString`; never printed).
    pub fn secret(self, secret: impl Into<String>) -> Self {
        let secret = SecretString::from(secret.into());
        self.with(|c| c.secret = Some(secret))
    }

    /// How the client authenticates; by default `private_key_jwt` with a
    /// [`signing_key`](Self::signing_key), else `client_secret_basic` with a secret and `none`
    /// without.
    pub fn auth_method(self, method: AuthMethod) -> Self {
        self.with(|c| c.auth_method = Some(method))
    }

    /// The private key for `private_key_jwt` client authentication (RFC 7523 §2.2), which
    /// becomes the default method. Each token request carries a new assertion signed with it.
    /// (`client_secret_jwt` needs no key: it signs with the client [`secret`](Self::secret).)
    #[cfg(feature = "jwt")]
    pub fn signing_key(self, key: crate::jwt::SigningKey) -> Self {
        self.with(|c| c.signing_key = Some(key))
    }

    /// Address client assertions to the [`issuer`](Self::issuer) rather than the token endpoint
    /// URL (off by default; some servers, Okta among them, accept or want the issuer).
    #[cfg(feature = "jwt")]
    pub fn assertion_audience_issuer(self, use_issuer: bool) -> Self {
        self.with(|c| c.assertion_audience_issuer = use_issuer)
    }

    /// The token endpoint. Must be `https`, or `http` to a loopback address.
    pub fn token_url(self, url: impl AsRef<str>) -> Result<Self> {
        let url = endpoint("token_url", url.as_ref())?;
        Ok(self.with(|c| c.token_url = Some(url)))
    }

    /// The authorization endpoint (for the authorization code flow).
    pub fn authorization_url(self, url: impl AsRef<str>) -> Result<Self> {
        let url = endpoint("authorization_url", url.as_ref())?;
        Ok(self.with(|c| c.authorization_url = Some(url)))
    }

    /// The device authorization endpoint (RFC 8628).
    pub fn device_authorization_url(self, url: impl AsRef<str>) -> Result<Self> {
        let url = endpoint("device_authorization_url", url.as_ref())?;
        Ok(self.with(|c| c.device_authorization_url = Some(url)))
    }

    /// The revocation endpoint (RFC 7009).
    pub fn revocation_url(self, url: impl AsRef<str>) -> Result<Self> {
        let url = endpoint("revocation_url", url.as_ref())?;
        Ok(self.with(|c| c.revocation_url = Some(url)))
    }

    /// The introspection endpoint (RFC 7662).
    pub fn introspection_url(self, url: impl AsRef<str>) -> Result<Self> {
        let url = endpoint("introspection_url", url.as_ref())?;
        Ok(self.with(|c| c.introspection_url = Some(url)))
    }

    /// The issuer identifier, used in cache keys and, later, to check discovery metadata and
    /// the `iss` authorization response parameter.
    pub fn issuer(self, issuer: impl Into<String>) -> Self {
        let issuer = issuer.into();
        self.with(|c| c.issuer = Some(issuer))
    }

    /// The transport for back-channel requests. The default is a shared reqwest client that
    /// never follows redirects. A transport that would follow redirects on its own (a reqwest
    /// client built without `redirect::Policy::none()`, a tower service with tower-http's
    /// `FollowRedirect`; see [`HttpTransport::follows_redirects`]) is refused here: it is logged
    /// at `error` level, and every back-channel request fails with a
    /// [`TransportErrorKind::Redirect`] error without
    /// contacting anything, so a `307` can never replay the client secret to another host.
    pub fn transport(self, transport: impl HttpTransport) -> Self {
        let transport: Arc<dyn HttpTransport> = match transport.follows_redirects() {
            None => Arc::new(transport),
            Some(why) => {
                tracing::error!("refusing the configured transport: it {why}");
                Arc::new(crate::transport::Refused { why })
            }
        };
        self.with(|c| c.transport = Some(transport))
    }

    /// The clock every expiry is measured with. Default: [`SystemClock`]; in tests a
    /// [`ManualClock`](crate::clock::ManualClock), or [`TokioClock`](crate::clock::TokioClock)
    /// under tokio's paused time.
    pub fn clock(self, clock: impl Clock) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(clock);
        self.with(|c| c.clock = clock)
    }

    /// The deadline for one back-channel exchange: connect, headers and body (default 30 s).
    pub fn timeout(self, timeout: Duration) -> Self {
        self.with(|c| c.limits.timeout = timeout)
    }

    /// The largest back-channel response body read (default 1 MiB).
    pub fn max_response_body(self, bytes: usize) -> Self {
        self.with(|c| c.limits.max_body = bytes)
    }

    /// The lifetime assumed for tokens that come without `expires_in` (default one hour).
    pub fn default_lifetime(self, lifetime: Duration) -> Self {
        self.with(|c| c.default_lifetime = lifetime)
    }

    /// Accept token responses that omit `token_type` as bearer tokens. Off by default: RFC 6749
    /// requires the member, and a token of an unknown type is never sent as a bearer token.
    pub fn lenient_token_type(self, lenient: bool) -> Self {
        self.with(|c| c.lenient_token_type = lenient)
    }

    /// When and how often token requests are retried (see [`RetryPolicy`]).
    pub fn retry_policy(self, retry: RetryPolicy) -> Self {
        self.with(|c| c.retry = retry)
    }

    /// The `User-Agent` of back-channel requests (some providers, such as Reddit, insist on a
    /// descriptive one).
    pub fn user_agent(self, user_agent: impl AsRef<str>) -> Result<Self> {
        let ua = HeaderValue::try_from(user_agent.as_ref())
            .map_err(|_| Error::config("user agent is not a valid header value"))?;
        Ok(self.with(|c| c.user_agent = ua))
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// The client secret, if set.
    pub fn client_secret(&self) -> Option<&SecretString> {
        self.inner.secret.as_ref()
    }

    /// A digest of the client's signing key, if it has one (for cache keys).
    #[cfg(feature = "jwt")]
    pub(crate) fn signing_key_fingerprint(&self) -> Option<String> {
        self.inner.signing_key.as_ref().map(|k| k.fingerprint())
    }

    /// The client authentication method in effect.
    pub fn effective_auth_method(&self) -> AuthMethod {
        #[cfg(feature = "jwt")]
        if self.inner.auth_method.is_none() && self.inner.signing_key.is_some() {
            return AuthMethod::PrivateKeyJwt;
        }
        self.inner
            .auth_method
            .unwrap_or(if self.inner.secret.is_some() {
                AuthMethod::ClientSecretBasic
            } else {
                AuthMethod::None
            })
    }

    /// The token endpoint, if set.
    pub fn token_endpoint(&self) -> Option<&Url> {
        self.inner.token_url.as_ref()
    }

    /// The authorization endpoint, if set.
    pub fn authorization_endpoint(&self) -> Option<&Url> {
        self.inner.authorization_url.as_ref()
    }

    /// The device authorization endpoint, if set.
    pub fn device_authorization_endpoint(&self) -> Option<&Url> {
        self.inner.device_authorization_url.as_ref()
    }

    /// The revocation endpoint, if set.
    pub fn revocation_endpoint(&self) -> Option<&Url> {
        self.inner.revocation_url.as_ref()
    }

    /// The introspection endpoint, if set.
    pub fn introspection_endpoint(&self) -> Option<&Url> {
        self.inner.introspection_url.as_ref()
    }

    /// The issuer, if set.
    pub fn issuer_id(&self) -> Option<&str> {
        self.inner.issuer.as_deref()
    }

    /// The authorization server metadata [`discover`](Self::discover) fetched, if any. It is
    /// fetched once and shared by every clone of this client.
    pub fn metadata(&self) -> Option<&Metadata> {
        self.inner.metadata.as_deref()
    }

    /// `true` when [`auth_method`](Self::auth_method) chose the method (discovery keeps it).
    pub(crate) fn auth_method_is_explicit(&self) -> bool {
        self.inner.auth_method.is_some()
    }

    pub(crate) fn with_metadata(self, metadata: Arc<Metadata>) -> Self {
        self.with(|c| c.metadata = Some(metadata))
    }

    /// The clock this client measures expiry with.
    pub fn clock_ref(&self) -> &dyn Clock {
        &*self.inner.clock
    }

    pub(crate) fn clock_arc(&self) -> Arc<dyn Clock> {
        self.inner.clock.clone()
    }

    /// Sends `request` to the token endpoint, retrying per the [`RetryPolicy`] and the
    /// request's [`Replay`] rule, and parses the answer.
    pub async fn request_token(&self, request: TokenRequest) -> Result<Token> {
        self.request_token_with(|_| Ok(request.clone())).await
    }

    /// Like [`request_token`](Self::request_token), but builds the request anew for each attempt
    /// (`attempt` counts from 1), for grants that must not reuse a value, such as a JWT assertion
    /// with a fresh `jti`.
    pub async fn request_token_with<F>(&self, mut make: F) -> Result<Token>
    where
        F: FnMut(u32) -> Result<TokenRequest> + Send,
    {
        let mut attempt = 1;
        loop {
            let request = make(attempt)?;
            let err = match self.send_token_request(&request).await {
                Ok(token) => return Ok(token),
                Err(err) => err,
            };
            let Some(wait) = self.inner.retry.delay(&err, request.replay, attempt) else {
                return Err(err);
            };
            tracing::debug!(
                grant_type = %request.grant_type,
                attempt,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                error = %err,
                "token request failed; retrying"
            );
            self.inner.clock.sleep(wait).await;
            attempt += 1;
        }
    }

    /// Uses `refresh_token` for a new access token (RFC 6749 §6). If the answer carries no new
    /// refresh token, the returned token keeps this one.
    pub async fn refresh(&self, refresh_token: &SecretString) -> Result<Token> {
        self.refresh_with_scope(refresh_token, None).await
    }

    pub(crate) async fn refresh_with_scope(
        &self,
        refresh_token: &SecretString,
        previous_scope: Option<&str>,
    ) -> Result<Token> {
        let mut request = TokenRequest::new("refresh_token")
            .secret_param("refresh_token", refresh_token.clone())
            .replay(Replay::IfUnprocessed);
        request.requested_scope = previous_scope.map(str::to_owned);
        let token = self.request_token(request).await?;
        Ok(token.keeping_refresh_token(refresh_token))
    }

    async fn send_token_request(&self, request: &TokenRequest) -> Result<Token> {
        let cfg = &*self.inner;
        let url = cfg
            .token_url
            .as_ref()
            .ok_or_else(|| Error::config("no token URL configured"))?;

        let mut secrets = Secrets::default();
        let http_request = self.authenticated_form(
            url,
            |form| {
                form.append_pair("grant_type", &request.grant_type);
                for (name, value) in &request.params {
                    form.append_pair(name, value.expose());
                }
            },
            &mut secrets,
        )?;
        for (_, value) in &request.params {
            if let Param::Secret(s) = value {
                secrets.add(s.expose_secret());
            }
        }

        tracing::debug!(
            grant_type = %request.grant_type,
            endpoint = %url.origin().ascii_serialization(),
            "token request"
        );
        let response = self
            .exchange(crate::error::Endpoint::Token, http_request)
            .await?;
        tracing::debug!(
            grant_type = %request.grant_type,
            status = response.status.as_u16(),
            "token response"
        );
        parse_token_response(
            &response,
            &ParseContext {
                clock: &*cfg.clock,
                default_lifetime: cfg.default_lifetime,
                requested_scope: request.requested_scope.as_deref(),
                lenient_token_type: cfg.lenient_token_type,
                secrets: &secrets,
            },
        )
    }

    /// A form POST to `url` carrying the client's authentication, as the token and device
    /// authorization endpoints take it. `fill` writes the request's own parameters. The client
    /// secret, and the Basic credentials made from it, are added to `secrets`, so that a server
    /// echoing them back is redacted.
    pub(crate) fn authenticated_form<'a>(
        &'a self,
        url: &Url,
        fill: impl FnOnce(&mut url::form_urlencoded::Serializer<'_, String>),
        secrets: &mut Secrets<'a>,
    ) -> Result<http::Request<Bytes>> {
        let cfg = &*self.inner;
        if let Some(s) = &cfg.secret {
            secrets.add(s.expose_secret());
        }
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        fill(&mut form);
        let basic = auth::authenticate(self, url, &mut form, secrets)?;
        if let Some(credentials) = basic
            .as_ref()
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Basic "))
        {
            // An echoed Authorization header decodes to the secret, which is already added: hide
            // the header's own base64 spellings too.
            if let Some(plain) = STANDARD
                .decode(credentials)
                .ok()
                .and_then(|plain| String::from_utf8(plain).ok())
            {
                secrets.add_basic_credentials(&plain);
            }
        }
        let mut request = http::Request::builder()
            .method(Method::POST)
            .uri(url.as_str())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, cfg.user_agent.clone())
            .body(Bytes::from(form.finish()))
            .map_err(|e| Error::config(format!("cannot build the request: {e}")))?;
        if let Some(basic) = basic {
            request.headers_mut().insert(AUTHORIZATION, basic);
        }
        Ok(request)
    }

    /// Sends any back-channel request to `endpoint` through the configured transport under the
    /// crate's rules.
    pub(crate) async fn exchange(
        &self,
        endpoint: crate::error::Endpoint,
        mut request: http::Request<Bytes>,
    ) -> std::result::Result<RawResponse, TransportError> {
        request
            .headers_mut()
            .entry(USER_AGENT)
            .or_insert_with(|| self.inner.user_agent.clone());
        let limits = self.inner.limits;
        match &self.inner.transport {
            Some(t) => exchange(&**t, endpoint, request, limits, &*self.inner.clock).await,
            None => {
                #[cfg(feature = "reqwest")]
                {
                    let client = crate::transport::default_client()?;
                    exchange(&client, endpoint, request, limits, &*self.inner.clock).await
                }
                #[cfg(not(feature = "reqwest"))]
                {
                    let _ = (endpoint, request, limits);
                    Err(TransportError::new(
                        TransportErrorKind::Other,
                        "no transport configured (enable the `reqwest` feature or call OAuthClient::transport)",
                    ))
                }
            }
        }
    }
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &*self.inner;
        f.debug_struct("OAuthClient")
            .field("client_id", &c.client_id)
            .field("secret", &c.secret.as_ref().map(|_| "[redacted]"))
            .field("auth_method", &self.effective_auth_method())
            .field("token_url", &c.token_url.as_ref().map(Url::as_str))
            .field("issuer", &c.issuer)
            .field("transport", &c.transport)
            .finish_non_exhaustive()
    }
}

pub(crate) fn endpoint(name: &str, url: &str) -> Result<Url> {
    let parsed = Url::parse(url).map_err(|e| Error::config(format!("{name} is not a URL: {e}")))?;
    let uri: http::Uri = parsed
        .as_str()
        .parse()
        .map_err(|_| Error::config(format!("{name} is not a valid HTTP URI")))?;
    if !is_secure_or_loopback(&uri) {
        return Err(Error::Transport(TransportError::new(
            TransportErrorKind::InsecureUrl,
            format!("{name} must be https (plain http is allowed only to loopback addresses)"),
        )));
    }
    Ok(parsed)
}

/// When a failed token request may be sent again (SECURITY.md rule 23).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Replay {
    /// Never: the grant is single use (an authorization code).
    Never,
    /// Only when the server certainly did not act on it: a connection that was never made, or a
    /// 429/503 answer. For refresh tokens, which a server may rotate on receipt.
    IfUnprocessed,
    /// Also after timeouts, resets and other 5xx answers, for grants that can be minted again
    /// (client credentials, password, JWT bearer, token exchange).
    Always,
}

/// How often and how long failed token requests are retried.
///
/// Retries happen only where [`Replay`] allows; `Retry-After` is honoured up to
/// `max_retry_after`, and a longer demand is returned to the caller as an error to back off on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included (default 3; 1 turns retries off).
    pub max_attempts: u32,
    /// The first backoff; each later one doubles (default 250 ms).
    pub initial_backoff: Duration,
    /// The largest backoff (default 5 s).
    pub max_backoff: Duration,
    /// The longest `Retry-After` waited for (default 30 s).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The same policy with `max_attempts` attempts.
    pub fn attempts(self, max_attempts: u32) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            ..self
        }
    }

    /// How long to wait before attempt `attempt + 1`, or `None` to give up.
    fn delay(&self, err: &Error, replay: Replay, attempt: u32) -> Option<Duration> {
        if attempt >= self.max_attempts || replay == Replay::Never {
            return None;
        }
        // An OAuth error that says the request itself is wrong (`invalid_client`,
        // `invalid_grant`, `invalid_scope`...) gets the same answer however often it is sent,
        // even when the status it came with (429, 503) would otherwise invite a retry.
        if matches!(err, Error::Server(e) if !matches!(e.action(), crate::Action::RetryLater { .. }))
        {
            return None;
        }
        let status = match err {
            Error::Server(e) => Some(e.status),
            Error::UnexpectedResponse(e) => e.status,
            _ => None,
        };
        let server_declined = matches!(
            status,
            Some(StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE)
        ) || matches!(err, Error::Server(e) if e.code == crate::ErrorCode::TemporarilyUnavailable);
        let not_sent =
            matches!(err, Error::Transport(e) if e.kind.request_not_sent()) && err.is_transient();
        let maybe_processed = matches!(
            err,
            Error::Transport(e) if matches!(e.kind, TransportErrorKind::Timeout | TransportErrorKind::Other)
        ) || status.is_some_and(|s| s.is_server_error())
            || matches!(err, Error::Server(e) if e.code == crate::ErrorCode::ServerError);

        let allowed = server_declined || not_sent || (replay == Replay::Always && maybe_processed);
        if !allowed {
            return None;
        }
        if let Some(after) = err.retry_after() {
            return (after <= self.max_retry_after).then_some(after);
        }
        let factor = 2u32.saturating_pow(attempt - 1);
        Some(
            self.initial_backoff
                .saturating_mul(factor)
                .min(self.max_backoff),
        )
    }
}

/// One request to the token endpoint: the grant type and its parameters. Client authentication
/// is added by [`OAuthClient`]. Secret parameters never show in `Debug`.
///
/// ```
/// use oauth_layer::{Replay, TokenRequest};
///
/// let req = TokenRequest::new("urn:example:grant")
///     .param("scope", "read")
///     .secret_param("assertion", "xyz-secret")
///     .replay(Replay::Always);
/// assert!(!format!("{req:?}").contains("xyz-secret"));
/// ```
#[derive(Clone)]
#[must_use]
pub struct TokenRequest {
    grant_type: Cow<'static, str>,
    params: Vec<(Cow<'static, str>, Param)>,
    requested_scope: Option<String>,
    replay: Replay,
}

#[derive(Clone)]
enum Param {
    Plain(String),
    Secret(SecretString),
}

impl Param {
    fn expose(&self) -> &str {
        match self {
            Param::Plain(s) => s,
            Param::Secret(s) => s.expose_secret(),
        }
    }
}

impl TokenRequest {
    /// A request for `grant_type`; by default never replayed.
    pub fn new(grant_type: impl Into<Cow<'static, str>>) -> Self {
        Self {
            grant_type: grant_type.into(),
            params: Vec::new(),
            requested_scope: None,
            replay: Replay::Never,
        }
    }

    /// Adds a form parameter.
    pub fn param(mut self, name: impl Into<Cow<'static, str>>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), Param::Plain(value.into())));
        self
    }

    /// Adds a form parameter whose value is secret (a password, a refresh token, an assertion).
    pub fn secret_param(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<SecretString>,
    ) -> Self {
        self.params.push((name.into(), Param::Secret(value.into())));
        self
    }

    /// Adds `scope` (space separated) and remembers it as the requested scope: a response
    /// without `scope` means this was granted (RFC 6749 §5.1).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        let scope = scope.into();
        if !scope.is_empty() {
            self.requested_scope = Some(scope.clone());
            self.params.push(("scope".into(), Param::Plain(scope)));
        }
        self
    }

    /// Remembers `scope` as the requested scope without sending it (a code exchange, whose
    /// scope was asked for in the authorization request).
    pub fn requested_scope(mut self, scope: impl Into<String>) -> Self {
        self.requested_scope = Some(scope.into());
        self
    }

    /// When the request may be sent again after a failure.
    pub fn replay(mut self, replay: Replay) -> Self {
        self.replay = replay;
        self
    }

    /// The grant type.
    pub fn grant_type(&self) -> &str {
        &self.grant_type
    }
}

impl fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let params: Vec<(&str, &str)> = self
            .params
            .iter()
            .map(|(k, v)| {
                (
                    k.as_ref(),
                    match v {
                        Param::Plain(s) => s.as_str(),
                        Param::Secret(_) => "[redacted]",
                    },
                )
            })
            .collect();
        f.debug_struct("TokenRequest")
            .field("grant_type", &self.grant_type)
            .field("params", &params)
            .field("replay", &self.replay)
            .finish()
    }
}
