//! What the benchmarks share: a local token endpoint that counts its requests, an in-memory API,
//! the token layer people write by hand today, and a layer over a published peer crate
//! (yup-oauth2) doing the same work.
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Request, Response};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use oauth_layer::clock::SystemClock;
use oauth_layer::flow::ClientCredentials;
use oauth_layer::{OAuthClient, Token, TokenSource};
use tokio::net::TcpListener;
use tokio::sync::RwLock;
use tower::{Layer, Service, ServiceExt};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The URL every benchmark request goes to (https, so every layer attaches its token).
pub(crate) const API_URL: &str = "https://api.example/things";

/// The scope asked for.
pub(crate) const SCOPE: &str = "api:read";

/// The in-memory API: answers every request at once with an empty 200.
pub(crate) fn api() -> impl Service<
    Request<()>,
    Response = Response<()>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<()>, Infallible>> + Send + 'static,
> + Clone
+ Send
+ 'static {
    tower::service_fn(|_req: Request<()>| std::future::ready(Ok(Response::new(()))))
}

/// A `tower::retry` policy that copies every request (method, URI, version, headers and
/// extensions: `Request` has no `Clone`) and sends the copy once after a 401: the one retry the
/// layer makes, written with tower's own middleware.
#[derive(Clone, Copy)]
pub(crate) struct OnceAfter401 {
    left: bool,
}

impl OnceAfter401 {
    pub(crate) fn new() -> Self {
        Self { left: true }
    }
}

impl<E> tower::retry::Policy<Request<()>, Response<()>, E> for OnceAfter401 {
    type Future = std::future::Ready<()>;

    fn retry(
        &mut self,
        _request: &mut Request<()>,
        result: &mut Result<Response<()>, E>,
    ) -> Option<Self::Future> {
        match result {
            Ok(response) if response.status() == http::StatusCode::UNAUTHORIZED && self.left => {
                self.left = false;
                Some(std::future::ready(()))
            }
            _ => None,
        }
    }

    fn clone_request(&mut self, request: &Request<()>) -> Option<Request<()>> {
        let mut copy = Request::new(());
        *copy.method_mut() = request.method().clone();
        *copy.uri_mut() = request.uri().clone();
        *copy.version_mut() = request.version();
        *copy.headers_mut() = request.headers().clone();
        *copy.extensions_mut() = request.extensions().clone();
        Some(copy)
    }
}

/// One request to [`API_URL`] through `service`, which must answer 200.
pub(crate) async fn call<S>(service: &mut S, uri: &http::Uri)
where
    S: Service<Request<()>, Response = Response<()>>,
    S::Error: std::fmt::Debug,
{
    let mut request = Request::new(());
    *request.uri_mut() = uri.clone();
    let response = service.ready().await.unwrap().call(request).await.unwrap();
    debug_assert!(response.status().is_success());
    std::hint::black_box(response);
}

/// A local token endpoint: every request to it waits `delay`, is counted, and gets a fresh
/// one-hour bearer token as RFC 6749 §5.1 JSON, whatever it asked for.
///
/// It speaks HTTP/2 (prior knowledge) and every client here uses one multiplexed connection to
/// it: a storm of 10,000 token requests over HTTP/1.1 would need 10,000 connections, 20,000 file
/// descriptors in this one process, over the usual limit. That only helps the layers without a
/// single flight; ours makes one request either way.
///
/// It is not `oauth_layer::testing::TestServer`, the fake every test uses for behaviour, on
/// purpose: that one speaks HTTP/1.1 only (so the storm's peers would need a connection per
/// waiting request), has no answer delay to simulate a slow provider, and answers only the
/// registered clients and grants, while the peer crate's installed flow asks with its own.
pub(crate) struct TokenEndpoint {
    pub(crate) addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl TokenEndpoint {
    pub(crate) async fn start(delay: Duration) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                // As any real server does: a response's frames go out at once instead of
                // waiting for the client's delayed acknowledgement of the previous write.
                let _ = stream.set_nodelay(true);
                let counter = counter.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
                        let n = counter.fetch_add(1, Ordering::SeqCst);
                        async move {
                            tokio::time::sleep(delay).await;
                            let body = format!(
                                r#"{{"access_token":"token-{n}","token_type":"Bearer","expires_in":3600}}"#
                            );
                            let mut response = Response::new(Full::new(Bytes::from(body)));
                            response
                                .headers_mut()
                                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .max_concurrent_streams(u32::MAX)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            requests,
            task,
        }
    }

    pub(crate) fn token_url(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    pub(crate) fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub(crate) fn reset(&self) {
        self.requests.store(0, Ordering::SeqCst);
    }
}

impl Drop for TokenEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A one-hour token, as a source seeded with `initial_token` holds it.
pub(crate) fn hour_token(access_token: &str) -> Token {
    Token::builder(access_token)
        .expires_in(Duration::from_secs(3600))
        .build(&SystemClock)
        .unwrap()
}

/// A client-credentials source asking `token_url`; seeded with a valid token when `seeded`.
pub(crate) fn source(token_url: &str, seeded: bool) -> TokenSource {
    let client = OAuthClient::builder("bench")
        .secret("bench-secret")
        .token_url(token_url)
        .transport(h2_client())
        .build()
        .unwrap();
    let builder = TokenSource::builder(client, ClientCredentials::new().scope(SCOPE));
    if seeded {
        builder.initial_token(hour_token("seeded-token")).build()
    } else {
        builder.build()
    }
}

/// [`source`], seeded, recording OpenTelemetry metrics with an SDK meter provider (its
/// in-memory exporter, collected every minute): what the hot path costs with the `metrics`
/// feature on and a real provider behind it. The provider must outlive the measurement.
#[cfg(feature = "metrics")]
pub(crate) fn source_with_metrics(
    token_url: &str,
) -> (TokenSource, opentelemetry_sdk::metrics::SdkMeterProvider) {
    use opentelemetry::metrics::MeterProvider;
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(InMemoryMetricExporter::default()).build())
        .build();
    let client = OAuthClient::builder("bench")
        .secret("bench-secret")
        .token_url(token_url)
        .transport(h2_client())
        .meter(provider.meter("bench"))
        .build()
        .unwrap();
    let source = TokenSource::builder(client, ClientCredentials::new().scope(SCOPE))
        .initial_token(hour_token("seeded-token"))
        .build();
    (source, provider)
}

/// A reqwest client speaking HTTP/2 to the token endpoint (see [`TokenEndpoint`]). It follows
/// no redirects: `OAuthClientBuilder::transport` refuses a client that would (every token
/// request through it would fail unsent).
pub(crate) fn h2_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .http2_prior_knowledge()
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// The hand-rolled layer: what people write today when no crate does it for them.

/// The token the hand-rolled layer keeps: the header to send and when to stop sending it.
struct Cached {
    header: HeaderValue,
    expires_at: Instant,
}

/// The usual hand-written token layer: the token behind a `tokio::sync::RwLock`, its expiry
/// checked on every request (with 30 s of skew), and on expiry a new one fetched with a plain
/// `reqwest::Client` outside the lock (so other requests are not blocked) and written back.
/// There is no single flight: every request that finds the token expired fetches one.
#[derive(Clone)]
pub(crate) struct HandRolledLayer {
    state: Arc<RwLock<Option<Cached>>>,
    http: reqwest::Client,
    token_url: Arc<str>,
}

impl HandRolledLayer {
    pub(crate) fn new(token_url: &str, initial: Option<&str>) -> Self {
        let cached = initial.map(|t| Cached {
            header: HeaderValue::try_from(format!("Bearer {t}")).unwrap(),
            expires_at: Instant::now() + Duration::from_secs(3600),
        });
        Self {
            state: Arc::new(RwLock::new(cached)),
            http: h2_client(),
            token_url: token_url.into(),
        }
    }

    async fn header(&self) -> Result<HeaderValue, BoxError> {
        {
            let guard = self.state.read().await;
            if let Some(c) = guard.as_ref()
                && Instant::now() + Duration::from_secs(30) < c.expires_at
            {
                return Ok(c.header.clone());
            }
        }
        let answer: serde_json::Value = self
            .http
            .post(&*self.token_url)
            .basic_auth("bench", Some("bench-secret"))
            .form(&[("grant_type", "client_credentials"), ("scope", SCOPE)])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let token = answer["access_token"].as_str().ok_or("no access_token")?;
        let lifetime = answer["expires_in"].as_u64().unwrap_or(3600);
        let mut header = HeaderValue::try_from(format!("Bearer {token}"))?;
        header.set_sensitive(true);
        *self.state.write().await = Some(Cached {
            header: header.clone(),
            expires_at: Instant::now() + Duration::from_secs(lifetime),
        });
        Ok(header)
    }
}

impl<S> Layer<S> for HandRolledLayer {
    type Service = HandRolled<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HandRolled {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct HandRolled<S> {
    inner: S,
    layer: HandRolledLayer,
}

impl<S, B> Service<Request<B>> for HandRolled<S>
where
    S: Service<Request<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let header = layer.header().await?;
            request.headers_mut().insert(AUTHORIZATION, header);
            inner.call(request).await.map_err(Into::into)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The peer: yup-oauth2's authenticator, with its cached-token path, as a tower layer.

/// Answers yup-oauth2's installed flow at once with a fixed code, so the flow goes straight to
/// the token endpoint (no person, no browser).
struct AutoCode;

impl yup_oauth2::authenticator_delegate::InstalledFlowDelegate for AutoCode {
    fn present_user_url<'a>(
        &'a self,
        _url: &'a str,
        _need_code: bool,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'a>> {
        Box::pin(std::future::ready(Ok("bench-code".to_owned())))
    }
}

pub(crate) type YupAuthenticator =
    yup_oauth2::authenticator::Authenticator<hyper_util::client::legacy::connect::HttpConnector>;

/// A yup-oauth2 authenticator (installed flow) whose token endpoint is `token_url`, over plain
/// HTTP with hyper-util's connector.
pub(crate) async fn yup_authenticator(token_url: &str) -> YupAuthenticator {
    let secret = yup_oauth2::ApplicationSecret {
        client_id: "bench".into(),
        client_secret: "bench-secret".into(),
        token_uri: token_url.into(),
        auth_uri: "http://127.0.0.1:1/authorize".into(),
        redirect_uris: vec!["http://127.0.0.1:1/callback".into()],
        ..Default::default()
    };
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(hyper_util::client::legacy::connect::HttpConnector::new());
    yup_oauth2::InstalledFlowAuthenticator::with_client(
        secret,
        yup_oauth2::InstalledFlowReturnMethod::Interactive,
        yup_oauth2::CustomHyperClientBuilder::from(client),
    )
    .flow_delegate(Box::new(AutoCode))
    .build()
    .await
    .unwrap()
}

/// A layer that asks a yup-oauth2 authenticator for a token on every request, as its docs show
/// (`authenticator.token(&scopes)`), and sets the header.
#[derive(Clone)]
pub(crate) struct YupLayer {
    auth: Arc<YupAuthenticator>,
}

impl YupLayer {
    pub(crate) fn new(auth: YupAuthenticator) -> Self {
        Self {
            auth: Arc::new(auth),
        }
    }
}

impl<S> Layer<S> for YupLayer {
    type Service = Yup<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Yup {
            inner,
            auth: self.auth.clone(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct Yup<S> {
    inner: S,
    auth: Arc<YupAuthenticator>,
}

impl<S, B> Service<Request<B>> for Yup<S>
where
    S: Service<Request<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        Box::pin(async move {
            let token = auth.token(&[SCOPE]).await?;
            let access = token.token().ok_or("no access token")?;
            let mut header = HeaderValue::try_from(format!("Bearer {access}"))?;
            header.set_sensitive(true);
            request.headers_mut().insert(AUTHORIZATION, header);
            inner.call(request).await.map_err(Into::into)
        })
    }
}
