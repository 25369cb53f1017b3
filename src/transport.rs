//! The transport every back-channel request goes through: token, discovery, device, revocation
//! and introspection requests. Never the service the layer wraps, so the layer cannot recurse
//! into itself (SECURITY.md rule 28).
//!
//! [`HttpTransport`] is the small seam: send one request, return the response with a streaming
//! body. The rules that must hold for every request live here once, in one function: plain `http`
//! only to loopback (rule 14), redirects refused (rule 13), one deadline over connect, headers and
//! body, and a body cap counted while streaming (rule 16).

use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use http::StatusCode;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

use crate::clock::Clock;
use crate::error::{Endpoint, TransportError, TransportErrorKind};
use serde_json::{Map, Value};

use crate::error::{Error, ErrorCode, MAX_RETRY_AFTER, ResponseError, ServerError};
use crate::redact::{self, Secrets};

/// A boxed error, as `http-body` and `tower` use.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The response body a transport returns: any streaming body of `Bytes`.
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// Sends one back-channel HTTP request.
///
/// Implemented for [`reqwest::Client`] (feature `reqwest`) and, through [`TowerTransport`], for
/// any tower service such as a hyper-util client (feature `tower`). An implementation must not
/// follow redirects and need not enforce deadlines or size limits: the crate does that around
/// every call.
#[async_trait]
pub trait HttpTransport: fmt::Debug + Send + Sync + 'static {
    /// Sends `request` and returns the response head with a streaming body.
    async fn send(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<ResponseBody>, TransportError>;

    /// Why this transport would follow redirects on its own, if it would. Such a transport
    /// would send a client secret or a refresh token to whatever a `Location` names before the
    /// crate sees the answer (a `307` replays the whole request), so
    /// [`OAuthClientBuilder::transport`](crate::OAuthClientBuilder::transport) refuses it: every
    /// back-channel request through it then fails without contacting anything (SECURITY.md
    /// rule 13).
    ///
    /// The default says it would not; the implementations for `reqwest::Client` and
    /// [`TowerTransport`] look at the client's redirect policy or the service's type.
    fn follows_redirects(&self) -> Option<String> {
        None
    }
}

/// A transport the crate refused when it was configured (see
/// [`HttpTransport::follows_redirects`]): every request fails before anything is sent.
#[derive(Debug)]
pub(crate) struct Refused {
    pub(crate) why: String,
}

#[async_trait]
impl HttpTransport for Refused {
    async fn send(
        &self,
        _request: http::Request<Bytes>,
    ) -> Result<http::Response<ResponseBody>, TransportError> {
        Err(TransportError::new(
            TransportErrorKind::Redirect,
            format!(
                "the configured transport {}; back-channel requests must never follow \
                 redirects (a 307 would replay the client secret to its target)",
                self.why
            ),
        ))
    }
}

/// The limits applied to every back-channel exchange.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) timeout: Duration,
    pub(crate) max_body: usize,
}

/// Default deadline for one back-channel exchange.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default cap on a back-channel response body (1 MiB).
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            max_body: DEFAULT_MAX_BODY,
        }
    }
}

/// `true` for `https` URLs, and for `http` URLs whose host is a loopback address or `localhost`.
pub(crate) fn is_secure_or_loopback(uri: &http::Uri) -> bool {
    match uri.scheme_str() {
        Some("https") => true,
        Some("http") => uri.host().is_some_and(is_loopback_host),
        _ => false,
    }
}

/// `true` for `http` URLs whose host is a link-local IP address literal (`169.254.0.0/16`,
/// `fe80::/10`): where clouds serve their instance metadata (Azure's IMDS, Google's metadata
/// server), which speaks only plain http and cannot be reached from off the machine. Only a
/// workload credential source may use it (SECURITY.md), never a token or other OAuth endpoint.
pub(crate) fn is_link_local_http(uri: &http::Uri) -> bool {
    uri.scheme_str() == Some("http")
        && uri.host().is_some_and(|host| {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            match host.parse::<std::net::IpAddr>() {
                Ok(std::net::IpAddr::V4(ip)) => ip.is_link_local(),
                Ok(std::net::IpAddr::V6(ip)) => (ip.segments()[0] & 0xffc0) == 0xfe80,
                Err(_) => false,
            }
        })
}

/// `localhost`, `127.0.0.0/8` and `[::1]`.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// Sends one request to `endpoint` through `transport` under the crate's rules, and reads the
/// whole (capped) body. A `Retry-After` date is read against `clock`. Every error names the
/// endpoint and the request's origin.
pub(crate) async fn exchange(
    transport: &dyn HttpTransport,
    endpoint: Endpoint,
    request: http::Request<Bytes>,
    limits: Limits,
    clock: &dyn Clock,
) -> Result<RawResponse, TransportError> {
    let origin = origin_of(request.uri());
    let link_local = endpoint == Endpoint::CredentialSource && is_link_local_http(request.uri());
    exchange_unnamed(transport, request, limits, clock, link_local)
        .await
        .map_err(|e| e.at(endpoint, &origin))
}

async fn exchange_unnamed(
    transport: &dyn HttpTransport,
    request: http::Request<Bytes>,
    limits: Limits,
    clock: &dyn Clock,
    link_local_allowed: bool,
) -> Result<RawResponse, TransportError> {
    if !is_secure_or_loopback(request.uri()) && !link_local_allowed {
        return Err(TransportError::new(
            TransportErrorKind::InsecureUrl,
            format!(
                "{} is neither https nor a loopback address",
                origin_of(request.uri())
            ),
        ));
    }
    let work = async {
        let response = transport.send(request).await?;
        let (parts, body) = response.into_parts();
        if parts.status.is_redirection() {
            return Err(TransportError::new(
                TransportErrorKind::Redirect,
                format!(
                    "the server answered {} with a redirect; back-channel requests never follow redirects",
                    parts.status.as_u16()
                ),
            ));
        }
        let body = read_capped(body, limits.max_body)
            .await
            .map_err(|e| match e {
                None => TransportError::new(
                    TransportErrorKind::BodyTooLarge,
                    format!("the body is over {} bytes", limits.max_body),
                ),
                Some(e) => {
                    let kind = classify(&*e).unwrap_or(TransportErrorKind::Other);
                    TransportError::new(kind, format!("reading the body failed: {}", deepest(&*e)))
                        .with_boxed_source(e)
                }
            })?;
        Ok(RawResponse {
            status: parts.status,
            content_type: parts
                .headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            retry_after: parts
                .headers
                .get(RETRY_AFTER)
                .and_then(|value| parse_retry_after(value, clock.now_utc())),
            #[cfg(feature = "dpop")]
            dpop_nonce: crate::dpop::nonce_in(&parts.headers).map(Box::from),
            #[cfg(not(feature = "dpop"))]
            dpop_nonce: None,
            body,
        })
    };
    match tokio::time::timeout(limits.timeout, work).await {
        Ok(result) => result,
        Err(elapsed) => Err(TransportError::new(
            TransportErrorKind::Timeout,
            format!("no complete answer within {:?}", limits.timeout),
        )
        .with_source(elapsed)),
    }
}

/// Reads a whole body, failing as soon as it passes `max` bytes, counted as they arrive (a
/// `Content-Length` is not trusted).
pub(crate) async fn read_capped(
    mut body: ResponseBody,
    max: usize,
) -> Result<Bytes, Option<BoxError>> {
    use http_body::Body as _;
    if body.size_hint().lower() > max as u64 {
        return Err(None);
    }
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(Some)?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > max {
                return Err(None);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// `Retry-After` as delta-seconds or an HTTP date (RFC 9110 §10.2.3), a date measured from
/// `now`.
pub(crate) fn parse_retry_after(value: &http::HeaderValue, now: SystemTime) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let date = httpdate::parse_http_date(text).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `scheme://host:port` of a URI, for messages (never the path or query, which might carry
/// something private).
pub(crate) fn origin_of(uri: &http::Uri) -> String {
    match (uri.scheme_str(), uri.authority()) {
        (Some(s), Some(a)) => format!("{s}://{a}"),
        _ => "<no origin>".to_owned(),
    }
}

/// Every error in `top`'s cause chain, outermost first. An `io::Error` that wraps another error
/// (as TLS libraries wrap theirs) is looked into, since its `source` skips the wrapped error.
fn causes<'a>(
    top: &'a (dyn std::error::Error + 'static),
) -> Vec<&'a (dyn std::error::Error + 'static)> {
    let mut found: Vec<&(dyn std::error::Error + 'static)> = Vec::new();
    let mut next = Some(top);
    // A cycle in a hand-written `source` must not hang us.
    while let Some(e) = next.filter(|_| found.len() < 32) {
        found.push(e);
        next = match e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    found
}

/// The most specific description in `top`'s cause chain: the innermost error's.
pub(crate) fn deepest(top: &(dyn std::error::Error + 'static)) -> String {
    causes(top)
        .last()
        .map_or_else(|| top.to_string(), |e| e.to_string())
}

/// What kind of failure `top` is, read from its cause chain: hyper-util's tunnel and DNS errors,
/// an `io::Error` of kind `ConnectionRefused` or `TimedOut`, a rustls error (or, for other TLS
/// libraries, a message about certificates or TLS). `None` when nothing tells.
fn classify(top: &(dyn std::error::Error + 'static)) -> Option<TransportErrorKind> {
    let (mut proxy, mut tls, mut dns, mut refused, mut timed_out) =
        (false, false, false, false, false);
    for e in causes(top) {
        let text = e.to_string().to_ascii_lowercase();
        proxy |= text.starts_with("tunnel error");
        dns |= text == "dns error" || text.starts_with("error resolving dns");
        #[cfg(feature = "rustls")]
        {
            tls |= e.is::<rustls::Error>();
        }
        tls |= text.contains("certificate") || text.contains("tls") || text.contains("ssl");
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            refused |= io.kind() == std::io::ErrorKind::ConnectionRefused;
            timed_out |= io.kind() == std::io::ErrorKind::TimedOut;
        }
    }
    [
        (proxy, TransportErrorKind::Proxy),
        (tls, TransportErrorKind::Tls),
        (dns, TransportErrorKind::Dns),
        (refused, TransportErrorKind::Refused),
        (timed_out, TransportErrorKind::Timeout),
    ]
    .into_iter()
    .find_map(|(seen, kind)| seen.then_some(kind))
}

/// The address hyper-util's connector failed to connect to, if the chain says (only its `Debug`
/// output does: `ConnectError("tcp connect error", 127.0.0.1:8080, ...)`).
#[cfg(feature = "reqwest")]
fn failed_address(top: &(dyn std::error::Error + 'static)) -> Option<std::net::SocketAddr> {
    causes(top).into_iter().find_map(|e| {
        let debug = format!("{e:?}");
        let rest = debug.strip_prefix("ConnectError(\"")?;
        let (_, rest) = rest.split_once("\", ")?;
        rest.split([',', ')']).next()?.trim().parse().ok()
    })
}

#[cfg(feature = "reqwest")]
mod per_runtime;

#[cfg(feature = "reqwest")]
mod reqwest_transport {
    use super::*;

    #[async_trait]
    impl HttpTransport for reqwest::Client {
        async fn send(
            &self,
            request: http::Request<Bytes>,
        ) -> Result<http::Response<ResponseBody>, TransportError> {
            let request = reqwest::Request::try_from(request.map(reqwest::Body::from))
                .map_err(|e| TransportError::new(TransportErrorKind::Other, e.to_string()))?;
            let sent_to = request.url().clone();
            let response = self
                .execute(request)
                .await
                .map_err(|e| from_reqwest(self, &sent_to, e))?;
            if response.url() != &sent_to {
                // The caller's client followed a redirect on its own; the answer is not from the
                // endpoint we meant to talk to.
                return Err(TransportError::new(
                    TransportErrorKind::Redirect,
                    format!(
                        "the reqwest client followed a redirect from {}; build it with redirect::Policy::none()",
                        sent_to.origin().ascii_serialization()
                    ),
                ));
            }
            let response: http::Response<reqwest::Body> = response.into();
            Ok(response.map(boxed_reqwest_body))
        }

        /// reqwest keeps its redirect policy private; its `Debug` output names it when it is not
        /// the default (which follows up to ten redirects). Only `Policy::none()` is accepted.
        fn follows_redirects(&self) -> Option<String> {
            let described = format!("{self:?}");
            if described.contains(r#"redirect_policy: "Policy(None)""#) {
                None
            } else {
                Some(
                    "is a reqwest client that follows redirects; build it with \
                     .redirect(reqwest::redirect::Policy::none())"
                        .to_owned(),
                )
            }
        }
    }

    fn boxed_reqwest_body(body: reqwest::Body) -> ResponseBody {
        fn boxed(e: reqwest::Error) -> BoxError {
            Box::new(e)
        }
        body.map_err(boxed).boxed_unsync()
    }

    /// Classifies a reqwest error by its cause chain, and keeps the chain (without the URL,
    /// whose path or query may hold something private).
    fn from_reqwest(
        client: &reqwest::Client,
        sent_to: &url::Url,
        e: reqwest::Error,
    ) -> TransportError {
        let mut kind = classify(&e).unwrap_or(if e.is_connect() {
            TransportErrorKind::Connect
        } else if e.is_timeout() {
            TransportErrorKind::Timeout
        } else if e.is_redirect() {
            TransportErrorKind::Redirect
        } else {
            TransportErrorKind::Other
        });
        let mut message = deepest(&e);
        // Through a plain-http proxy, a failed connection to the proxy reads like one to the
        // server; the address it failed on tells them apart.
        if e.is_connect() && kind != TransportErrorKind::Tls && has_proxies(client) {
            let target_port = sent_to.port_or_known_default();
            let target_ip = sent_to.host_str().and_then(|h| {
                h.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .ok()
            });
            if let Some(addr) = failed_address(&e).filter(|addr| {
                Some(addr.port()) != target_port || target_ip.is_some_and(|ip| ip != addr.ip())
            }) {
                message = format!("could not connect to the proxy at {addr}: {message}");
                kind = TransportErrorKind::Proxy;
            }
        }
        if kind == TransportErrorKind::Proxy && !message.contains("proxy") {
            message = format!("through the proxy: {message}");
        }
        TransportError::new(kind, message).with_source(e.without_url())
    }

    /// Whether the client is configured with any proxy (its own or the environment's); reqwest
    /// shows them only in its `Debug` output.
    fn has_proxies(client: &reqwest::Client) -> bool {
        format!("{client:?}").contains("proxies:")
    }

    /// The transport used when none is configured: reqwest clients that never follow
    /// redirects, one per tokio runtime, each keeping its idle connections (see
    /// [`PerRuntime`](super::PerRuntime)).
    pub(crate) fn default_client() -> Result<reqwest::Client, TransportError> {
        static CLIENTS: std::sync::LazyLock<PerRuntime> = std::sync::LazyLock::new(|| {
            PerRuntime::new(|| {
                with_shared_tls(
                    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()),
                )
            })
        });
        CLIENTS.client()
    }

    /// The transport for instance metadata on a link-local address: like
    /// [`default_client`], and never through a proxy (a proxy cannot reach the machine's own
    /// metadata service, and must not see what it answers).
    pub(crate) fn direct_client() -> Result<reqwest::Client, TransportError> {
        static CLIENTS: std::sync::LazyLock<PerRuntime> = std::sync::LazyLock::new(|| {
            PerRuntime::new(|| {
                with_shared_tls(
                    reqwest::Client::builder()
                        .redirect(reqwest::redirect::Policy::none())
                        .no_proxy(),
                )
            })
        });
        CLIENTS.client()
    }

    /// `builder` with the default transports' one TLS configuration: what reqwest makes by
    /// itself (the platform's roots through `rustls-platform-verifier`, TLS 1.2 and 1.3, ALPN
    /// `h2` then `http/1.1`), made once per process. Each runtime builds its own client, and
    /// reqwest would read the platform's root certificates again for each (~19 M
    /// instructions, a few milliseconds). When it cannot be made (no root certificate found),
    /// reqwest makes its own, and its `build` reports why.
    #[cfg(feature = "rustls")]
    fn with_shared_tls(builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        static SHARED: std::sync::Mutex<Option<rustls::ClientConfig>> = std::sync::Mutex::new(None);
        let mut shared = SHARED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if shared.is_none() {
            *shared = platform_tls().ok();
        }
        match &*shared {
            Some(config) => builder.tls_backend_preconfigured(config.clone()),
            None => builder,
        }
    }

    #[cfg(not(feature = "rustls"))]
    fn with_shared_tls(builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        builder
    }

    /// The TLS configuration reqwest makes for a client with no TLS option set.
    #[cfg(feature = "rustls")]
    fn platform_tls() -> Result<rustls::ClientConfig, rustls::Error> {
        tls_config(Vec::new(), None)
    }

    /// The crypto provider reqwest would use: the process default when one is installed,
    /// else aws-lc-rs.
    #[cfg(feature = "rustls")]
    pub(crate) fn tls_provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
        rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
    }

    /// The TLS configuration reqwest makes for a client given `extra_roots` as root
    /// certificates and `client_auth` (a certificate chain, leaf first, and its key) as its
    /// identity: the platform's roots through `rustls-platform-verifier` with the extra ones
    /// added, TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`, and the certificate presented when a
    /// server asks for one.
    ///
    /// Building it reads the platform's root certificates, which costs milliseconds; a
    /// configuration is cheap to clone, and its clones share the verifier and the key. It fails
    /// when no root certificate is found at all (neither the platform's nor extra ones), when an
    /// extra root cannot be read as a trust anchor, or when the key is not the certificate's.
    #[cfg(feature = "rustls")]
    pub(crate) fn tls_config(
        extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
        client_auth: Option<(
            Vec<rustls::pki_types::CertificateDer<'static>>,
            rustls::pki_types::PrivateKeyDer<'static>,
        )>,
    ) -> Result<rustls::ClientConfig, rustls::Error> {
        use std::sync::Arc;
        let provider = tls_provider();
        let verifier = if extra_roots.is_empty() {
            rustls_platform_verifier::Verifier::new(provider.clone())?
        } else {
            with_extra_roots(extra_roots, provider.clone())?
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(rustls::ALL_VERSIONS)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        let mut config = match client_auth {
            Some((chain, key)) => config.with_client_auth_cert(chain, key)?,
            None => config.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }

    /// The platform verifier, trusting `extra_roots` next to the platform's roots.
    #[cfg(all(feature = "rustls", not(target_os = "android")))]
    fn with_extra_roots(
        extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
        provider: std::sync::Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<rustls_platform_verifier::Verifier, rustls::Error> {
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots, provider)
    }

    /// On Android the platform verifier takes no extra roots (nor does reqwest's).
    #[cfg(all(feature = "rustls", target_os = "android"))]
    fn with_extra_roots(
        _extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
        _provider: std::sync::Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<rustls_platform_verifier::Verifier, rustls::Error> {
        Err(rustls::Error::General(
            "the platform verifier takes no extra root certificates on Android".to_owned(),
        ))
    }
}

#[cfg(feature = "reqwest")]
pub(crate) use per_runtime::PerRuntime;
#[cfg(feature = "reqwest")]
pub(crate) use reqwest_transport::{default_client, direct_client};
#[cfg(all(feature = "reqwest", feature = "rustls"))]
pub(crate) use reqwest_transport::{tls_config, tls_provider};

#[cfg(feature = "tower")]
pub use tower_transport::TowerTransport;

#[cfg(feature = "tower")]
mod tower_transport {
    use super::*;
    use http_body_util::Full;
    use tower_service::Service;

    /// A transport over any tower service that takes `http::Request<Full<Bytes>>`, such as a
    /// hyper-util legacy client. The service must not follow redirects: a service whose type
    /// contains tower-http's `FollowRedirect` is refused (see
    /// [`HttpTransport::follows_redirects`]).
    ///
    /// ```no_run
    /// # #[cfg(feature = "tower")] {
    /// use oauth_layer::transport::TowerTransport;
    /// # fn client() -> oauth_layer::OAuthClientBuilder { oauth_layer::OAuthClient::builder("id") }
    /// # fn svc() -> impl tower_service::Service<http::Request<http_body_util::Full<bytes::Bytes>>, Response = http::Response<http_body_util::Full<bytes::Bytes>>, Error = std::io::Error, Future = std::future::Ready<Result<http::Response<http_body_util::Full<bytes::Bytes>>, std::io::Error>>> + Clone + Send + Sync + 'static { tower::service_fn(|_| std::future::ready(Ok(http::Response::new(http_body_util::Full::new(bytes::Bytes::new()))))) }
    /// let client = client().transport(TowerTransport::new(svc())); // then `.build()?`
    /// # }
    /// ```
    #[derive(Clone)]
    pub struct TowerTransport<S> {
        service: S,
    }

    impl<S> TowerTransport<S> {
        /// Wraps `service`.
        pub fn new(service: S) -> Self {
            Self { service }
        }
    }

    impl<S> fmt::Debug for TowerTransport<S> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("TowerTransport")
                .field("service", &std::any::type_name::<S>())
                .finish()
        }
    }

    #[async_trait]
    impl<S, B> HttpTransport for TowerTransport<S>
    where
        S: Service<http::Request<Full<Bytes>>, Response = http::Response<B>>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send,
        S::Error: Into<BoxError>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        async fn send(
            &self,
            request: http::Request<Bytes>,
        ) -> Result<http::Response<ResponseBody>, TransportError> {
            let mut service = self.service.clone();
            let failed = |e: S::Error| {
                let e: BoxError = e.into();
                let kind = classify(&*e).unwrap_or(TransportErrorKind::Other);
                TransportError::new(kind, deepest(&*e)).with_boxed_source(e)
            };
            std::future::poll_fn(|cx| service.poll_ready(cx))
                .await
                .map_err(failed)?;
            let response = service.call(request.map(Full::new)).await.map_err(failed)?;
            Ok(response.map(|body| body.map_err(Into::into).boxed_unsync()))
        }

        /// A tower-http `FollowRedirect` anywhere in the service's type, whatever its policy.
        fn follows_redirects(&self) -> Option<String> {
            std::any::type_name::<S>()
                .contains("tower_http::follow_redirect::FollowRedirect<")
                .then(|| "wraps tower-http's FollowRedirect; leave that layer out".to_owned())
        }
    }
}

/// A response as received: status, selected headers and the (capped) body.
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub(crate) status: StatusCode,
    pub(crate) content_type: Option<String>,
    pub(crate) retry_after: Option<Duration>,
    /// `DPoP-Nonce`, when the response carries one well-formed nonce (RFC 9449 §8).
    pub(crate) dpop_nonce: Option<Box<str>>,
    pub(crate) body: bytes::Bytes,
}

impl RawResponse {
    pub(crate) fn unexpected(&self, problem: &str, secrets: &Secrets<'_>) -> Error {
        Error::UnexpectedResponse(ResponseError {
            problem: problem.to_owned(),
            status: Some(self.status),
            // The header is server text too: a server may echo a secret into it.
            content_type: self
                .content_type
                .as_deref()
                .map(|c| redact::server_text(c, secrets).chars().take(100).collect()),
            snippet: redact::snippet(&self.body, secrets),
            retry_after: self.retry_after.map(|after| after.min(MAX_RETRY_AFTER)),
        })
    }

    /// The body as a JSON object, or as a form-encoded one (GitHub answers that way unless asked
    /// for JSON). `None` when it is neither.
    pub(crate) fn object(&self) -> Option<Map<String, Value>> {
        let text = std::str::from_utf8(&self.body).ok()?;
        if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) {
            return Some(map);
        }
        let is_form = self
            .content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
        if is_form {
            let map: Map<String, Value> = url::form_urlencoded::parse(text.as_bytes())
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect();
            if map.contains_key("access_token") || map.contains_key("error") {
                return Some(map);
            }
        }
        None
    }

    /// The body as an object (JSON, or form-encoded from servers like GitHub), or the typed
    /// error that says what it was instead (rule 15). Never panics, whatever the body.
    pub(crate) fn json_object(&self, secrets: &Secrets<'_>) -> Result<Map<String, Value>, Error> {
        self.object().ok_or_else(|| {
            let problem = if self.body.is_empty() {
                "empty body"
            } else if std::str::from_utf8(&self.body).is_err() {
                "body is not UTF-8"
            } else if serde_json::from_slice::<Value>(&self.body).is_ok() {
                "JSON body is not an object"
            } else {
                "body is not JSON"
            };
            self.unexpected(problem, secrets)
        })
    }

    /// Fails when an object is an OAuth error (whatever the status: a 200 may carry `error`),
    /// or when the status is an error without an OAuth error code.
    pub(crate) fn check_oauth(
        &self,
        map: &Map<String, Value>,
        secrets: &Secrets<'_>,
    ) -> Result<(), Error> {
        if let Some(err) = self.server_error(map, secrets) {
            return Err(err);
        }
        if !self.status.is_success() {
            return Err(self.unexpected("error status without an OAuth error code", secrets));
        }
        if map.get("error").is_some_and(|e| !e.is_null()) {
            return Err(self.unexpected("error member is not a string", secrets));
        }
        Ok(())
    }

    /// Classifies an OAuth error response (RFC 6749 §5.2) if the body is one.
    pub(crate) fn server_error(
        &self,
        map: &Map<String, Value>,
        secrets: &Secrets<'_>,
    ) -> Option<Error> {
        let code = map.get("error")?.as_str()?;
        let text = |name: &str| {
            map.get(name)
                .and_then(Value::as_str)
                .map(|s| redact::server_text(s, secrets))
        };
        Some(Error::Server(ServerError {
            status: self.status,
            // An unknown code is kept as text, so it gets the same care as the description.
            code: ErrorCode::parse(&redact::server_text(code, secrets)),
            description: text("error_description"),
            uri: text("error_uri"),
            retry_after: self.retry_after.map(|after| after.min(MAX_RETRY_AFTER)),
        }))
    }
}
