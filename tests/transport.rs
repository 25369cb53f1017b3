//! The back channel to the token endpoint: redirects, plain http, body caps, deadlines, client
//! authentication on the wire and pluggable transports (SECURITY.md rules 13, 14 and 16; RFC 6749
//! §2.3.1).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use oauth_layer::transport::TowerTransport;
use oauth_layer::{
    Action, AuthMethod, Error, OAuthClient, RetryPolicy, Token, TokenRequest, TransportError,
    TransportErrorKind,
};
use secrecy::ExposeSecret;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wiremock::matchers::{any, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TRICKY_ID: &str = "my client";
const TRICKY_SECRET: &str = "a:b/c+d%e&f=g h~";
const MIB: usize = 1024 * 1024;

fn token_json() -> serde_json::Value {
    json!({ "access_token": "AT-transport-0001", "token_type": "Bearer", "expires_in": 3600 })
}

fn token_response() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(token_json())
}

fn client_for(url: &str) -> OAuthClient {
    OAuthClient::builder("transport-client")
        .secret("transport-secret")
        .retry_policy(RetryPolicy::none())
        .token_url(url)
        .build()
        .unwrap()
}

async fn request(client: &OAuthClient) -> Result<Token, Error> {
    client
        .request_token(TokenRequest::new("client_credentials").scope("read"))
        .await
}

fn transport_kind(result: &Result<Token, Error>) -> TransportErrorKind {
    match result {
        Err(Error::Transport(TransportError { kind, .. })) => *kind,
        other => panic!("expected Error::Transport, got {other:?}"),
    }
}

/// The form members of a request body, decoded.
fn form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn form_value<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

// ---------------------------------------------------------------------------------------------
// Rule 13: redirects are refused, never followed.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn redirects_from_the_token_endpoint_are_refused_and_never_followed() {
    for status in [301, 302, 303, 307, 308] {
        let elsewhere = MockServer::start().await;
        Mock::given(any())
            .respond_with(token_response())
            .expect(0)
            .mount(&elsewhere)
            .await;
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(
                ResponseTemplate::new(status)
                    .insert_header("location", format!("{}/token", elsewhere.uri())),
            )
            .expect(1)
            .mount(&server)
            .await;

        let result = request(&client_for(&format!("{}/token", server.uri()))).await;

        assert_eq!(
            transport_kind(&result),
            TransportErrorKind::Redirect,
            "{status}"
        );
        assert_eq!(result.unwrap_err().action(), Action::FixConfiguration);
        assert!(
            elsewhere.received_requests().await.unwrap().is_empty(),
            "the redirect target of a {status} was contacted"
        );
    }
}

#[tokio::test]
async fn a_caller_supplied_reqwest_client_that_follows_redirects_is_refused_and_nothing_is_sent() {
    let policies: [fn() -> Option<reqwest::redirect::Policy>; 3] = [
        || None,
        || Some(reqwest::redirect::Policy::limited(5)),
        || {
            Some(reqwest::redirect::Policy::custom(|attempt| {
                attempt.follow()
            }))
        },
    ];
    for policy in policies {
        for status in [302, 307] {
            let elsewhere = MockServer::start().await;
            Mock::given(any())
                .respond_with(token_response())
                .mount(&elsewhere)
                .await;
            let server = MockServer::start().await;
            Mock::given(any())
                .respond_with(
                    ResponseTemplate::new(status)
                        .insert_header("location", format!("{}/token", elsewhere.uri())),
                )
                .mount(&server)
                .await;
            let mut builder = reqwest::Client::builder();
            if let Some(policy) = policy() {
                builder = builder.redirect(policy);
            }
            let client = client_for(&format!("{}/token", server.uri()))
                .to_builder()
                .transport(builder.build().unwrap())
                .build()
                .unwrap();
            let result = request(&client).await;

            assert_eq!(transport_kind(&result), TransportErrorKind::Redirect);
            let err = result.unwrap_err();
            assert_eq!(err.action(), Action::FixConfiguration);
            assert!(err.to_string().contains("Policy::none()"), "{err}");
            assert!(
                server.received_requests().await.unwrap().is_empty(),
                "the refused client was used"
            );
            assert!(
                elsewhere.received_requests().await.unwrap().is_empty(),
                "the redirect target of a {status} was contacted"
            );
        }
    }
}

#[tokio::test]
async fn a_caller_supplied_reqwest_client_without_redirects_is_used() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(token_response())
        .expect(1)
        .mount(&server)
        .await;
    let own = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let client = client_for(&format!("{}/token", server.uri()))
        .to_builder()
        .transport(own)
        .build()
        .unwrap();
    request(&client).await.unwrap();
}

#[tokio::test]
async fn a_tower_transport_over_follow_redirect_is_refused_and_nothing_is_sent() {
    use tower_http::follow_redirect::FollowRedirectLayer;
    let elsewhere = MockServer::start().await;
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(307)
                .insert_header("location", format!("{}/token", elsewhere.uri())),
        )
        .mount(&server)
        .await;
    let hyper = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let following = tower::ServiceBuilder::new()
        .layer(FollowRedirectLayer::new())
        .service(hyper);
    let client = client_for(&format!("{}/token", server.uri()))
        .to_builder()
        .transport(TowerTransport::new(following))
        .build()
        .unwrap();
    let result = request(&client).await;
    assert_eq!(transport_kind(&result), TransportErrorKind::Redirect);
    assert!(server.received_requests().await.unwrap().is_empty());
    assert!(elsewhere.received_requests().await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Rule 14: secrets go over https only, or plain http to loopback.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn plain_http_to_a_remote_host_is_refused() {
    for url in [
        "http://idp.example/token",
        "http://localhost.idp.example/token",
        "http://127.0.0.1.nip.io/token",
        "http://10.0.0.1/token",
        "http://idp.example:443/token",
        "ftp://idp.example/token",
    ] {
        let result = OAuthClient::builder("id").token_url(url).build();
        match result {
            Err(Error::Transport(TransportError {
                kind: TransportErrorKind::InsecureUrl,
                ..
            })) => {}
            other => panic!("{url}: expected InsecureUrl, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn every_endpoint_setter_refuses_plain_http_to_a_remote_host() {
    let url = "http://idp.example/x";
    let client = OAuthClient::builder("id");
    for result in [
        client.clone().authorization_url(url).build(),
        client.clone().device_authorization_url(url).build(),
        client.clone().revocation_url(url).build(),
        client.clone().introspection_url(url).build(),
    ] {
        assert!(
            matches!(
                result,
                Err(Error::Transport(TransportError {
                    kind: TransportErrorKind::InsecureUrl,
                    ..
                }))
            ),
            "{result:?}"
        );
    }
}

#[tokio::test]
async fn https_and_loopback_urls_are_accepted() {
    for url in [
        "https://idp.example/token",
        "http://127.0.0.1:8080/token",
        "http://127.8.9.10/token",
        "http://localhost:8080/token",
        "http://[::1]:8080/token",
    ] {
        let client = OAuthClient::builder("id").token_url(url).build().unwrap();
        assert_eq!(client.token_url().unwrap().as_str(), url);
    }
}

#[tokio::test]
async fn plain_http_to_loopback_works() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(token_response())
        .expect(2)
        .mount(&server)
        .await;
    let port = server.address().port();

    for url in [
        format!("http://127.0.0.1:{port}/token"),
        format!("http://localhost:{port}/token"),
    ] {
        let token = request(&client_for(&url)).await.unwrap();
        assert_eq!(token.access_token().expose_secret(), "AT-transport-0001");
    }
}

// ---------------------------------------------------------------------------------------------
// Rule 16: the body is capped while streaming; one deadline covers everything.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_body_over_the_default_one_mib_cap_is_refused() {
    let server = MockServer::start().await;
    let huge = format!(
        r#"{{"access_token":"AT","padding":"{}"}}"#,
        "x".repeat(MIB + 1)
    );
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(huge, "application/json"))
        .mount(&server)
        .await;

    let result = request(&client_for(&format!("{}/token", server.uri()))).await;

    assert_eq!(transport_kind(&result), TransportErrorKind::BodyTooLarge);
    assert_eq!(result.unwrap_err().action(), Action::Report);
}

#[tokio::test]
async fn a_body_over_a_smaller_cap_is_refused_and_one_at_the_cap_is_read() {
    let body = serde_json::to_vec(&token_json()).unwrap();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body.clone(), "application/json"))
        .mount(&server)
        .await;
    let client = client_for(&format!("{}/token", server.uri()));

    let result = request(
        &client
            .clone()
            .to_builder()
            .max_response_body(body.len() - 1)
            .build()
            .unwrap(),
    )
    .await;
    assert_eq!(transport_kind(&result), TransportErrorKind::BodyTooLarge);

    let token = request(
        &client
            .to_builder()
            .max_response_body(body.len())
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(token.access_token().expose_secret(), "AT-transport-0001");
}

/// A raw HTTP/1.1 endpoint: reads one request, then writes `head` and streams `chunks` copies
/// of `chunk`, each after `pause`, until the client goes away.
async fn raw_endpoint(head: &'static str, chunk: Bytes, chunks: usize, pause: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            if n == 0 {
                return;
            }
            request.extend_from_slice(&buf[..n]);
        }
        if stream.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        for _ in 0..chunks {
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            if stream.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = stream.shutdown().await;
    });
    url
}

/// One HTTP/1.1 chunk of `size` bytes of `x`.
fn http_chunk(size: usize) -> Bytes {
    let mut chunk = format!("{size:x}\r\n").into_bytes();
    chunk.extend(std::iter::repeat_n(b'x', size));
    chunk.extend_from_slice(b"\r\n");
    Bytes::from(chunk)
}

#[tokio::test]
async fn a_chunked_body_without_content_length_over_one_mib_is_refused() {
    let url = raw_endpoint(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
        http_chunk(64 * 1024),
        64, // 4 MiB, never terminated
        Duration::ZERO,
    )
    .await;

    let result = request(&client_for(&url)).await;

    assert_eq!(transport_kind(&result), TransportErrorKind::BodyTooLarge);
}

#[tokio::test]
async fn a_close_delimited_body_over_a_small_cap_is_refused() {
    let url = raw_endpoint(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n",
        Bytes::from(vec![b'x'; 1024]),
        64,
        Duration::ZERO,
    )
    .await;

    let result = request(
        &client_for(&url)
            .to_builder()
            .max_response_body(4096)
            .build()
            .unwrap(),
    )
    .await;

    assert_eq!(transport_kind(&result), TransportErrorKind::BodyTooLarge);
}

/// A body that claims to be `claimed` bytes long and never ends.
struct EndlessBody {
    claimed: u64,
    produced: Arc<AtomicUsize>,
}

const ENDLESS_CHUNK: usize = 16 * 1024;

impl http_body::Body for EndlessBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.produced.fetch_add(ENDLESS_CHUNK, Ordering::SeqCst);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![
            b'x';
            ENDLESS_CHUNK
        ])))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.claimed)
    }
}

#[tokio::test]
async fn a_body_that_lies_about_its_length_is_counted_while_streaming() {
    let produced = Arc::new(AtomicUsize::new(0));
    let counter = produced.clone();
    let service = tower::service_fn(move |_req: http::Request<Full<Bytes>>| {
        let body = EndlessBody {
            claimed: 64,
            produced: counter.clone(),
        };
        std::future::ready(Ok::<_, Infallible>(http::Response::new(body)))
    });
    let client = client_for("https://idp.example/token")
        .to_builder()
        .transport(TowerTransport::new(service))
        .build()
        .unwrap();

    let result = request(&client).await;

    assert_eq!(transport_kind(&result), TransportErrorKind::BodyTooLarge);
    let read = produced.load(Ordering::SeqCst);
    assert!(
        read <= MIB + ENDLESS_CHUNK,
        "read {read} bytes past the cap"
    );
}

#[tokio::test]
async fn a_slow_server_hits_the_deadline() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(token_response().set_delay(Duration::from_secs(2)))
        .mount(&server)
        .await;
    let client = client_for(&format!("{}/token", server.uri()))
        .to_builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();

    let started = Instant::now();
    let result = request(&client).await;

    assert_eq!(transport_kind(&result), TransportErrorKind::Timeout);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert!(result.unwrap_err().is_transient());
}

#[tokio::test]
async fn the_deadline_also_covers_a_body_that_trickles_in() {
    let url = raw_endpoint(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{",
        Bytes::from_static(b" "),
        99,
        Duration::from_millis(50),
    )
    .await;
    let client = client_for(&url)
        .to_builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();

    let started = Instant::now();
    let result = request(&client).await;

    assert_eq!(transport_kind(&result), TransportErrorKind::Timeout);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// Client authentication and the request itself, as seen on the wire.
// ---------------------------------------------------------------------------------------------

/// Sends one client credentials request with `client` against a fresh endpoint and returns what
/// the endpoint received.
async fn received_by_endpoint(client: OAuthClient) -> wiremock::Request {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(token_response())
        .expect(1)
        .mount(&server)
        .await;
    let client = client
        .to_builder()
        .token_url(format!("{}/token", server.uri()))
        .build()
        .unwrap();
    request(&client).await.unwrap();
    let mut received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 1);
    received.remove(0)
}

fn header<'a>(request: &'a wiremock::Request, name: &str) -> Option<&'a str> {
    request.headers.get(name).map(|v| v.to_str().unwrap())
}

fn assert_form_post(request: &wiremock::Request) {
    assert_eq!(request.method, http::Method::POST);
    assert_eq!(
        header(request, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(header(request, "accept"), Some("application/json"));
    let form = form(&request.body);
    assert_eq!(form_value(&form, "grant_type"), Some("client_credentials"));
    assert_eq!(form_value(&form, "scope"), Some("read"));
    assert_eq!(
        request.url.query(),
        None,
        "nothing goes in the query string"
    );
}

#[tokio::test]
async fn client_secret_basic_form_encodes_id_and_secret_before_base64() {
    let client = OAuthClient::builder(TRICKY_ID)
        .secret(TRICKY_SECRET)
        .auth_method(AuthMethod::ClientSecretBasic)
        .build()
        .unwrap();
    let received = received_by_endpoint(client).await;

    assert_form_post(&received);
    let authorization = header(&received, "authorization").unwrap();
    let encoded = authorization.strip_prefix("Basic ").unwrap();
    let decoded = String::from_utf8(STANDARD.decode(encoded).unwrap()).unwrap();
    // RFC 6749 §2.3.1: application/x-www-form-urlencoded, then base64.
    assert_eq!(decoded, "my+client:a%3Ab%2Fc%2Bd%25e%26f%3Dg+h%7E");
    let (id, secret) = decoded.split_once(':').unwrap();
    let unform = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .unwrap()
            .1
            .into_owned()
    };
    assert_eq!(unform(id), TRICKY_ID);
    assert_eq!(unform(secret), TRICKY_SECRET);

    let form = form(&received.body);
    assert_eq!(form_value(&form, "client_id"), None);
    assert_eq!(form_value(&form, "client_secret"), None);
}

#[tokio::test]
async fn client_secret_basic_is_the_default_with_a_secret() {
    let received = received_by_endpoint(
        OAuthClient::builder(TRICKY_ID)
            .secret(TRICKY_SECRET)
            .build()
            .unwrap(),
    )
    .await;

    assert!(
        header(&received, "authorization")
            .unwrap()
            .starts_with("Basic ")
    );
    assert_eq!(form_value(&form(&received.body), "client_secret"), None);
}

#[tokio::test]
async fn client_secret_post_puts_id_and_secret_in_the_form() {
    let client = OAuthClient::builder(TRICKY_ID)
        .secret(TRICKY_SECRET)
        .auth_method(AuthMethod::ClientSecretPost)
        .build()
        .unwrap();
    let received = received_by_endpoint(client).await;

    assert_form_post(&received);
    assert_eq!(header(&received, "authorization"), None);
    let form = form(&received.body);
    assert_eq!(form_value(&form, "client_id"), Some(TRICKY_ID));
    assert_eq!(form_value(&form, "client_secret"), Some(TRICKY_SECRET));
}

#[tokio::test]
async fn auth_method_none_sends_only_the_client_id() {
    for client in [
        OAuthClient::builder(TRICKY_ID).build().unwrap(),
        OAuthClient::builder(TRICKY_ID)
            .secret(TRICKY_SECRET)
            .auth_method(AuthMethod::None)
            .build()
            .unwrap(),
    ] {
        let received = received_by_endpoint(client).await;

        assert_form_post(&received);
        assert_eq!(header(&received, "authorization"), None);
        let form = form(&received.body);
        assert_eq!(form_value(&form, "client_id"), Some(TRICKY_ID));
        assert_eq!(form_value(&form, "client_secret"), None);
        let body = String::from_utf8(received.body.clone()).unwrap();
        assert!(!body.contains("a%3Ab"), "{body}");
    }
}

#[tokio::test]
async fn a_secret_method_without_a_secret_is_a_configuration_error_and_sends_nothing() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(token_response())
        .expect(0)
        .mount(&server)
        .await;
    for method in [AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost] {
        let client = OAuthClient::builder("id")
            .auth_method(method)
            .token_url(format!("{}/token", server.uri()))
            .build()
            .unwrap();

        let result = request(&client).await;

        assert!(matches!(result, Err(Error::Config(_))), "{result:?}");
    }
}

#[tokio::test]
async fn the_user_agent_is_sent() {
    let received = received_by_endpoint(
        OAuthClient::builder("id")
            .user_agent("my-app/1.0 (ops@example.com)")
            .build()
            .unwrap(),
    )
    .await;

    assert_eq!(
        header(&received, "user-agent"),
        Some("my-app/1.0 (ops@example.com)")
    );
}

// ---------------------------------------------------------------------------------------------
// A transport over any tower service.
// ---------------------------------------------------------------------------------------------

type Seen = Arc<Mutex<Vec<(http::request::Parts, Bytes)>>>;

/// A tower service that records each request and answers `status` with `body`.
fn recording_service(
    seen: Seen,
    status: u16,
    answer: &'static str,
) -> impl tower::Service<
    http::Request<Full<Bytes>>,
    Response = http::Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ Sync
+ 'static {
    tower::service_fn(move |req: http::Request<Full<Bytes>>| {
        let seen = seen.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            seen.lock().unwrap().push((parts, body));
            let response = http::Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .header("location", "https://elsewhere.example/token")
                .body(Full::new(Bytes::from_static(answer.as_bytes())))
                .unwrap();
            Ok::<_, Infallible>(response)
        }
    })
}

#[tokio::test]
async fn tower_transport_over_a_service_fn_gets_a_token() {
    let seen: Seen = Arc::default();
    let service = recording_service(
        seen.clone(),
        200,
        r#"{"access_token":"AT-from-tower","token_type":"bearer","expires_in":60}"#,
    );
    let client = OAuthClient::builder(TRICKY_ID)
        .secret(TRICKY_SECRET)
        .auth_method(AuthMethod::ClientSecretPost)
        .token_url("https://idp.example/oauth/token")
        .transport(TowerTransport::new(service))
        .build()
        .unwrap();

    let token = request(&client).await.unwrap();

    assert_eq!(token.access_token().expose_secret(), "AT-from-tower");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let (parts, body) = &seen[0];
    assert_eq!(parts.method, http::Method::POST);
    assert_eq!(parts.uri, "https://idp.example/oauth/token");
    assert_eq!(parts.headers["accept"], "application/json");
    assert_eq!(
        parts.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    let form = form(body);
    assert_eq!(form_value(&form, "grant_type"), Some("client_credentials"));
    assert_eq!(form_value(&form, "client_secret"), Some(TRICKY_SECRET));
}

#[tokio::test]
async fn tower_transport_redirects_are_refused_too() {
    let seen: Seen = Arc::default();
    let client = client_for("https://idp.example/token")
        .to_builder()
        .transport(TowerTransport::new(recording_service(
            seen.clone(),
            302,
            "",
        )))
        .build()
        .unwrap();

    let result = request(&client).await;

    assert_eq!(transport_kind(&result), TransportErrorKind::Redirect);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn tower_service_errors_are_transport_errors() {
    let service = tower::service_fn(|_req: http::Request<Full<Bytes>>| {
        std::future::ready(Err::<http::Response<Full<Bytes>>, _>(
            std::io::Error::other("connection reset by peer"),
        ))
    });
    let client = client_for("https://idp.example/token")
        .to_builder()
        .transport(TowerTransport::new(service))
        .build()
        .unwrap();

    let result = request(&client).await;

    assert_eq!(transport_kind(&result), TransportErrorKind::Other);
}
