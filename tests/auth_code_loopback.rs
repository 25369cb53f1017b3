//! The loopback redirect server, driven through `AuthCode` with a real HTTP client playing the
//! browser and a wiremock token endpoint that counts token requests (SECURITY.md rules 1–9).
#![cfg(feature = "auth-code")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oauth_layer::flow::auth_code::{LoopbackPages, LoopbackReceiver};
use oauth_layer::flow::{AuthCode, Flow};
use oauth_layer::interact::{BrowserFn, ScriptedPrompt};
use oauth_layer::{Error, ErrorCode, OAuthClient, Token};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Long enough for anything that should happen; short enough to fail a hung test quickly.
const PATIENCE: Duration = Duration::from_secs(10);

/// A token endpoint that must see exactly `token_requests` requests.
async fn idp(token_requests: u64) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "at-1",
            "token_type": "Bearer",
            "expires_in": 3600,
        })))
        .expect(token_requests)
        .mount(&server)
        .await;
    server
}

fn client(idp: &MockServer) -> OAuthClient {
    OAuthClient::builder("desktop-app")
        .authorization_url("https://idp.example/authorize")
        .token_url(format!("{}/token", idp.uri()))
        .build()
        .unwrap()
}

/// A sign-in in progress: the flow runs in a task, and the test is the browser.
struct SignIn {
    fetch: JoinHandle<oauth_layer::Result<Token>>,
    url: Url,
    redirect: Url,
    state: String,
    addr: SocketAddr,
    browser: reqwest::Client,
}

/// Starts `flow.fetch(client)` and waits for it to "open the browser".
async fn start(flow: AuthCode, client: OAuthClient) -> SignIn {
    let (opened, mut urls) = mpsc::unbounded_channel();
    let flow = flow
        .browser(BrowserFn(move |url: &Url| {
            let _ = opened.send(url.clone());
            Ok(())
        }))
        .prompt(ScriptedPrompt::default());
    let fetch = tokio::spawn(async move { flow.fetch(&client).await });
    let url = tokio::time::timeout(PATIENCE, urls.recv())
        .await
        .expect("the browser was never opened")
        .expect("the flow ended without opening the browser");
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };
    let redirect = Url::parse(&param("redirect_uri")).unwrap();
    let state = param("state");
    let addr = redirect.socket_addrs(|| None).unwrap()[0];
    let browser = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(PATIENCE)
        .build()
        .unwrap();
    SignIn {
        fetch,
        url,
        redirect,
        state,
        addr,
        browser,
    }
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl SignIn {
    /// The redirect URI with this query.
    fn with_query(&self, query: &str) -> Url {
        let mut url = self.redirect.clone();
        url.set_query(Some(query));
        url
    }

    /// The callback the authorization server sends on success.
    fn good_callback(&self) -> Url {
        self.with_query(&format!("code=good-code&state={}", self.state))
    }

    async fn get(&self, url: Url) -> Page {
        let response = self.browser.get(url).send().await.unwrap();
        Page {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }

    /// Follows the good callback and returns the token the flow got.
    async fn complete(self) -> Token {
        let page = self.get(self.good_callback()).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("You’re signed in"), "{}", page.body);
        assert!(
            page.body.contains("You can close this tab"),
            "{}",
            page.body
        );
        self.result().await.unwrap()
    }

    /// What `fetch` returned.
    async fn result(self) -> oauth_layer::Result<Token> {
        tokio::time::timeout(PATIENCE, self.fetch)
            .await
            .expect("the flow did not finish")
            .unwrap()
    }
}

/// Sends raw bytes and returns whatever came back before the server closed the connection
/// (a write or read error, such as a reset, ends the reading).
async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer))
        .await
        .expect("the server kept the connection open");
    String::from_utf8_lossy(&answer).into_owned()
}

async fn assert_refused(addr: SocketAddr) {
    let err = TcpStream::connect(addr)
        .await
        .expect_err("the loopback port still accepts connections");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn form_value(form: &[(String, String)], name: &str) -> String {
    let values: Vec<&String> = form
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values.len(), 1, "{name} in the token request");
    values[0].clone()
}

#[tokio::test]
async fn happy_path_exchanges_the_code_with_its_redirect_uri_and_verifier() {
    let idp = idp(1).await;
    let sign_in = start(AuthCode::new().loopback(), client(&idp)).await;
    assert_eq!(sign_in.redirect.scheme(), "http");
    assert_eq!(sign_in.redirect.host_str(), Some("127.0.0.1"));
    assert_eq!(sign_in.redirect.path(), "/callback");
    assert_ne!(sign_in.redirect.port(), None);
    let redirect_uri = sign_in.redirect.to_string();
    let challenge = sign_in
        .url
        .query_pairs()
        .find(|(k, _)| k == "code_challenge")
        .unwrap()
        .1
        .into_owned();

    let token = sign_in.complete().await;
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(token.access_token()),
        "at-1"
    );

    let requests = idp.received_requests().await.unwrap();
    let body = form(&requests[0].body);
    assert_eq!(form_value(&body, "grant_type"), "authorization_code");
    assert_eq!(form_value(&body, "code"), "good-code");
    assert_eq!(form_value(&body, "redirect_uri"), redirect_uri);
    let verifier = form_value(&body, "code_verifier");
    assert_eq!(
        URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
        challenge
    );
    idp.verify().await;
}

#[tokio::test]
async fn bad_states_get_a_400_page_and_the_flow_keeps_waiting() {
    let idp = idp(1).await;
    let sign_in = start(AuthCode::new().loopback(), client(&idp)).await;
    let state = sign_in.state.clone();
    let wrong = format!("x{}", &state[1..]);
    for query in [
        format!("code=evil&state={wrong}"),
        "code=evil".to_owned(),
        "code=evil&state=".to_owned(),
        format!("code=evil&state={state}&state={state}"),
        format!("code=evil&state={state}&state={wrong}"),
    ] {
        let page = sign_in.get(sign_in.with_query(&query)).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(
            page.body
                .contains("This sign-in link has expired or was already used"),
            "{}",
            page.body
        );
        assert!(!sign_in.fetch.is_finished(), "{query} ended the flow");
    }
    sign_in.complete().await;
    let body = form(&idp.received_requests().await.unwrap()[0].body);
    assert_eq!(form_value(&body, "code"), "good-code");
    idp.verify().await;
}

#[tokio::test]
async fn a_replayed_callback_finds_the_port_closed() {
    let idp = idp(1).await;
    let sign_in = start(AuthCode::new().loopback(), client(&idp)).await;
    let (addr, replay, browser) = (
        sign_in.addr,
        sign_in.good_callback(),
        sign_in.browser.clone(),
    );
    sign_in.complete().await;

    let err = browser.get(replay).send().await.unwrap_err();
    assert!(err.is_connect(), "{err}");
    assert_refused(addr).await;
    idp.verify().await;
}

#[tokio::test]
async fn error_with_the_right_state_is_denied_and_its_description_is_not_rendered() {
    let idp = idp(0).await;
    let sign_in = start(AuthCode::new().loopback(), client(&idp)).await;
    let mut url = sign_in.redirect.clone();
    url.query_pairs_mut()
        .append_pair("error", "access_denied")
        .append_pair("error_description", "<script>alert(1)</script>")
        .append_pair("state", &sign_in.state);
    let page = sign_in.get(url).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("Sign-in was cancelled"), "{}", page.body);
    assert!(!page.body.contains("<script"), "{}", page.body);
    assert!(!page.body.contains("alert"), "{}", page.body);

    match sign_in.result().await {
        Err(Error::AuthorizationDenied(e)) => assert_eq!(e.code, ErrorCode::AccessDenied),
        other => panic!("expected AuthorizationDenied, got {other:?}"),
    }
    idp.verify().await;
}

#[tokio::test]
async fn error_with_a_wrong_state_is_ignored() {
    let idp = idp(1).await;
    let sign_in = start(AuthCode::new().loopback(), client(&idp)).await;
    let page = sign_in
        .get(sign_in.with_query("error=access_denied&state=forged"))
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(!sign_in.fetch.is_finished());
    sign_in.complete().await;
    idp.verify().await;
}

#[tokio::test]
async fn a_duplicated_code_is_not_accepted() {
    let idp = idp(1).await;
    let sign_in = start(AuthCode::new().loopback(), client(&idp)).await;
    let query = format!("code=evil-1&code=evil-2&state={}", sign_in.state);
    let page = sign_in.get(sign_in.with_query(&query)).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(!sign_in.fetch.is_finished());

    sign_in.complete().await;
    let body = form(&idp.received_requests().await.unwrap()[0].body);
    assert_eq!(form_value(&body, "code"), "good-code");
    idp.verify().await;
}

#[tokio::test]
async fn a_wrong_iss_is_a_malformed_callback() {
    let idp = idp(0).await;
    let client = client(&idp)
        .to_builder()
        .issuer("https://idp.example")
        .build()
        .unwrap();
    let sign_in = start(AuthCode::new().loopback(), client).await;
    let mut url = sign_in.redirect.clone();
    url.query_pairs_mut()
        .append_pair("code", "good-code")
        .append_pair("state", &sign_in.state)
        .append_pair("iss", "https://evil.example");
    let page = sign_in.get(url).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(!page.body.contains("evil.example"), "{}", page.body);
    assert!(matches!(
        sign_in.result().await,
        Err(Error::MalformedCallback(_))
    ));
    idp.verify().await;
}

#[tokio::test]
async fn other_paths_get_404_and_the_flow_goes_on() {
    let idp = idp(1).await;
    let sign_in = start(AuthCode::new().loopback(), client(&idp)).await;
    for path in ["/favicon.ico", "/", "/callback/", "/CALLBACK"] {
        let mut url = sign_in.good_callback();
        url.set_path(path);
        let page = sign_in.get(url).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
    }
    assert!(!sign_in.fetch.is_finished());
    sign_in.complete().await;
    idp.verify().await;
}

#[tokio::test]
async fn only_get_is_allowed_on_the_callback() {
    let idp = idp(1).await;
    let sign_in = start(AuthCode::new().loopback(), client(&idp)).await;
    for method in [
        reqwest::Method::POST,
        reqwest::Method::PUT,
        reqwest::Method::HEAD,
    ] {
        let response = sign_in
            .browser
            .request(method.clone(), sign_in.good_callback())
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method}"
        );
        assert_eq!(response.headers()["allow"], "GET");
    }
    assert!(!sign_in.fetch.is_finished());
    sign_in.complete().await;
    idp.verify().await;
}

#[tokio::test]
async fn an_oversized_request_head_is_rejected_and_the_flow_goes_on() {
    let idp = idp(1).await;
    let sign_in = start(AuthCode::new().loopback(), client(&idp)).await;
    let port = sign_in.addr.port();
    let long_line = format!(
        "GET /callback?code=good-code&state={}&pad={} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n",
        sign_in.state,
        "a".repeat(20_000)
    );
    let answer = raw(sign_in.addr, long_line.as_bytes()).await;
    assert!(
        answer.is_empty()
            || answer.starts_with("HTTP/1.1 431")
            || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    let big_headers = format!(
        "GET /callback?code=good-code&state={} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Pad: {}\r\n\r\n",
        sign_in.state,
        "b".repeat(9_000)
    );
    let answer = raw(sign_in.addr, big_headers.as_bytes()).await;
    assert!(
        answer.is_empty()
            || answer.starts_with("HTTP/1.1 431")
            || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    assert!(!sign_in.fetch.is_finished());
    sign_in.complete().await;
    idp.verify().await;
}

#[tokio::test]
async fn a_foreign_host_gets_400_and_is_ignored() {
    let idp = idp(1).await;
    let sign_in = start(AuthCode::new().loopback(), client(&idp)).await;
    let port = sign_in.addr.port();
    let target = format!("/callback?code=rebound&state={}", sign_in.state);
    for request in [
        format!("GET {target} HTTP/1.1\r\nHost: evil.example\r\n\r\n"),
        format!("GET {target} HTTP/1.1\r\nHost: evil.example:{port}\r\n\r\n"),
        format!(
            "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
            port ^ 1
        ),
        format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
        format!("GET {target} HTTP/1.1\r\n\r\n"),
        format!(
            "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nHost: evil.example:{port}\r\n\r\n"
        ),
        format!(
            "GET http://evil.example:{port}{target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
        ),
    ] {
        let answer = raw(sign_in.addr, request.as_bytes()).await;
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{request:?} -> {answer}"
        );
    }
    assert!(!sign_in.fetch.is_finished());

    sign_in.complete().await;
    let body = form(&idp.received_requests().await.unwrap()[0].body);
    assert_eq!(form_value(&body, "code"), "good-code");
    idp.verify().await;
}

#[tokio::test]
async fn loopback_host_names_are_accepted() {
    let idp = idp(1).await;
    let sign_in = start(AuthCode::new().loopback(), client(&idp)).await;
    let port = sign_in.addr.port();
    // `localhost` and `[::1]` name us too; the wrong path proves the Host check passed.
    for host in [format!("localhost:{port}"), format!("[::1]:{port}")] {
        let request = format!("GET /favicon.ico HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let answer = raw(sign_in.addr, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 404"), "{host} -> {answer}");
    }
    let request = format!(
        "GET /callback?code=good-code&state={} HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n",
        sign_in.state
    );
    let answer = raw(sign_in.addr, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    sign_in.result().await.unwrap();
    idp.verify().await;
}

#[tokio::test]
async fn a_slow_client_is_closed_after_the_client_timeout() {
    let idp = idp(1).await;
    let receiver = LoopbackReceiver::new().client_timeout(Duration::from_millis(300));
    let sign_in = start(AuthCode::new().receiver(receiver), client(&idp)).await;

    // Connects and sends nothing.
    let started = Instant::now();
    assert_eq!(raw(sign_in.addr, b"").await, "");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");

    // Sends half a request and stalls.
    let started = Instant::now();
    let answer = raw(sign_in.addr, b"GET /callback?code=x HTTP/1.1\r\nHost: 127.").await;
    assert!(!answer.contains("200"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));

    assert!(!sign_in.fetch.is_finished());
    sign_in.complete().await;
    idp.verify().await;
}

#[tokio::test]
async fn a_connection_beyond_the_limit_evicts_the_oldest_idle_one() {
    let idp = idp(1).await;
    let receiver = LoopbackReceiver::new()
        .max_connections(2)
        .client_timeout(Duration::from_secs(30))
        .header_timeout(Duration::from_secs(30));
    let sign_in = start(AuthCode::new().receiver(receiver), client(&idp)).await;

    let mut idle_1 = TcpStream::connect(sign_in.addr).await.unwrap();
    let _idle_2 = TcpStream::connect(sign_in.addr).await.unwrap();
    // Give the server time to accept both before the third arrives.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _third = TcpStream::connect(sign_in.addr).await.unwrap();
    // The oldest idle connection makes room for it.
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(PATIENCE, idle_1.read(&mut buf))
        .await
        .expect("the oldest idle connection was kept open");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

    // And the browser gets through while the other two are still open.
    sign_in.complete().await;
    idp.verify().await;
}

/// Holds `n` connections that connect and send nothing.
async fn idle_connections(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    held
}

/// Starts `n` connections that send a request head one byte every 20 ms, reconnecting when
/// closed (slowloris). Dropping the handles stops them.
fn trickling_connections(addr: SocketAddr, n: usize) -> Vec<tokio::task::JoinHandle<()>> {
    let head = format!(
        "GET /callback?code=attacker&state=x HTTP/1.1\r\nHost: {addr}\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(4000)
    );
    (0..n)
        .map(|_| {
            let head = head.clone().into_bytes();
            tokio::spawn(async move {
                loop {
                    let Ok(mut stream) = TcpStream::connect(addr).await else {
                        return;
                    };
                    for byte in &head {
                        if stream.write_all(&[*byte]).await.is_err() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            })
        })
        .collect()
}

#[tokio::test]
async fn idle_and_trickling_connections_cannot_keep_the_browser_out() {
    let idp = idp(1).await;
    // The default receiver: 16 connections, 3 s to send a request head.
    let sign_in = start(AuthCode::new().loopback(), client(&idp)).await;

    let idle = idle_connections(sign_in.addr, 64).await;
    let trickling = trickling_connections(sign_in.addr, 32);
    // Let the server accept them all and the trickling ones start sending.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    let page = sign_in.get(sign_in.good_callback()).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let token = sign_in.result().await.unwrap();
    assert_eq!(token.header_value(), "Bearer at-1");
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(2),
        "the browser waited {waited:?}"
    );

    for task in trickling {
        task.abort();
    }
    drop(idle);
    idp.verify().await;
}

#[tokio::test]
async fn a_connection_that_never_finishes_its_head_is_closed_at_the_header_deadline() {
    let idp = idp(1).await;
    let receiver = LoopbackReceiver::new()
        .client_timeout(Duration::from_secs(30))
        .header_timeout(Duration::from_millis(300));
    let sign_in = start(AuthCode::new().receiver(receiver), client(&idp)).await;

    // Idle: closed at the header deadline, not the 30 s client deadline.
    let started = Instant::now();
    assert_eq!(raw(sign_in.addr, b"").await, "");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");

    // Trickling a byte at a time: closed at the deadline too, however busy it looks.
    let started = Instant::now();
    let mut stream = TcpStream::connect(sign_in.addr).await.unwrap();
    let closed = tokio::time::timeout(PATIENCE, async {
        for byte in b"GET /callback?code=x&state=y HTTP/1.1\r\nHost: 127.0.0.1\r\n".repeat(100) {
            if stream.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(closed.is_ok(), "a trickling connection stayed open");
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(3), "{waited:?}");

    assert!(!sign_in.fetch.is_finished());
    sign_in.complete().await;
    idp.verify().await;
}

#[tokio::test]
async fn the_longest_deadlines_do_not_panic() {
    let idp = idp(1).await;
    let receiver = LoopbackReceiver::new()
        .client_timeout(Duration::MAX)
        .header_timeout(Duration::MAX);
    let sign_in = start(AuthCode::new().receiver(receiver), client(&idp)).await;
    sign_in.complete().await;
    idp.verify().await;
}

#[tokio::test]
async fn nobody_signing_in_times_out_and_closes_the_port() {
    let idp = idp(0).await;
    let flow = AuthCode::new()
        .loopback()
        .timeout(Duration::from_millis(300));
    let sign_in = start(flow, client(&idp)).await;
    let addr = sign_in.addr;
    match sign_in.result().await {
        Err(Error::Timeout(message)) => {
            assert!(
                message.contains("nobody completed the sign-in"),
                "{message}"
            );
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert_refused(addr).await;
    idp.verify().await;
}

/// A token endpoint that answers the code exchange only after `delay`, and must see exactly one
/// request (a code is never sent twice).
async fn slow_idp(delay: Duration) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({
                    "access_token": "at-1",
                    "token_type": "Bearer",
                    "expires_in": 3600,
                }))
                .set_delay(delay),
        )
        .expect(1)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn a_stalled_code_exchange_ends_at_the_exchange_timeout() {
    let idp = slow_idp(Duration::from_secs(60)).await;
    let flow = AuthCode::new()
        .loopback()
        .exchange_timeout(Duration::from_millis(300));
    let sign_in = start(flow, client(&idp)).await;
    let page = sign_in.get(sign_in.good_callback()).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);

    let started = Instant::now();
    let err = sign_in.result().await.unwrap_err();
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    match &err {
        Error::Timeout(message) => {
            assert!(message.contains("within 300 ms"), "{message}");
            assert!(message.contains("sign in again"), "{message}");
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    idp.verify().await;
}

#[tokio::test]
async fn the_sign_in_timeout_does_not_cut_the_code_exchange_short() {
    // The person answers at once; the exchange then outlasts the wait for the browser.
    let idp = slow_idp(Duration::from_millis(700)).await;
    let flow = AuthCode::new()
        .loopback()
        .timeout(Duration::from_millis(400))
        .exchange_timeout(Duration::from_secs(10));
    let sign_in = start(flow, client(&idp)).await;
    let token = sign_in.complete().await;
    assert_eq!(token.access_token().expose_secret(), "at-1");
    idp.verify().await;
}

#[tokio::test]
async fn dropping_the_fetch_future_closes_the_port() {
    let idp = idp(0).await;
    let sign_in = start(AuthCode::new().loopback(), client(&idp)).await;
    // The port is open while the flow waits.
    drop(TcpStream::connect(sign_in.addr).await.unwrap());
    sign_in.fetch.abort();
    assert!(sign_in.fetch.await.unwrap_err().is_cancelled());
    assert_refused(sign_in.addr).await;
    idp.verify().await;
}

#[tokio::test]
async fn a_busy_fixed_port_is_a_config_error_naming_the_port() {
    let idp = idp(0).await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let flow = AuthCode::new()
        .loopback()
        .redirect_uri(format!("http://127.0.0.1:{port}/cb"))
        .browser(BrowserFn(|_: &Url| panic!("the browser must not open")))
        .prompt(ScriptedPrompt::default());
    match flow.fetch(&client(&idp)).await {
        Err(Error::Config(message)) => {
            assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
            assert!(message.contains("in use"), "{message}");
            assert!(message.contains("another port"), "{message}");
        }
        other => panic!("expected a Config error, got {other:?}"),
    }
    idp.verify().await;
}

#[tokio::test]
async fn a_fixed_port_redirect_uri_is_honoured() {
    let idp = idp(1).await;
    let port = free_port();
    let configured = format!("http://127.0.0.1:{port}/cb");
    let flow = AuthCode::new().loopback().redirect_uri(configured.clone());
    let sign_in = start(flow, client(&idp)).await;
    assert_eq!(sign_in.redirect.as_str(), configured);
    assert_eq!(sign_in.addr, SocketAddr::from(([127, 0, 0, 1], port)));

    let mut elsewhere = sign_in.good_callback();
    elsewhere.set_path("/callback");
    assert_eq!(sign_in.get(elsewhere).await.status, StatusCode::NOT_FOUND);

    sign_in.complete().await;
    let body = form(&idp.received_requests().await.unwrap()[0].body);
    assert_eq!(form_value(&body, "redirect_uri"), configured);
    assert_refused(SocketAddr::from(([127, 0, 0, 1], port))).await;
    idp.verify().await;
}

#[tokio::test]
async fn a_localhost_redirect_uri_listens_on_127_0_0_1_and_is_named_as_given() {
    let idp = idp(1).await;
    let port = free_port();
    let configured = format!("http://localhost:{port}/");
    let flow = AuthCode::new().loopback().redirect_uri(configured.clone());
    let sign_in = start(flow, client(&idp)).await;
    assert_eq!(sign_in.redirect.as_str(), configured);

    let request = format!(
        "GET /?code=good-code&state={} HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n",
        sign_in.state
    );
    let answer = raw(SocketAddr::from(([127, 0, 0, 1], port)), request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    sign_in.result().await.unwrap();
    idp.verify().await;
}

/// `true` when this machine has an IPv6 loopback; says so on stderr when it has not, since the
/// test that asked then proves nothing.
fn ipv6_loopback(test: &str) -> bool {
    let available = std::net::TcpListener::bind("[::1]:0").is_ok();
    if !available {
        eprintln!("SKIPPED {test}: this machine has no IPv6 loopback (::1); nothing was tested");
    }
    available
}

#[tokio::test]
async fn a_localhost_redirect_uri_is_served_on_ipv6_loopback_too() {
    if !ipv6_loopback("a_localhost_redirect_uri_is_served_on_ipv6_loopback_too") {
        return;
    }
    let idp = idp(1).await;
    // No port: a free one, the same on 127.0.0.1 and ::1.
    let flow = AuthCode::new()
        .loopback()
        .redirect_uri("http://localhost/callback");
    let sign_in = start(flow, client(&idp)).await;
    assert_eq!(sign_in.redirect.host_str(), Some("localhost"));
    let port = sign_in.redirect.port().unwrap();

    // A browser that resolves localhost to ::1 first reaches the flow, not another program.
    let taken = std::net::TcpListener::bind(("::1", port));
    assert!(
        taken.is_err(),
        "another program could listen on [::1]:{port}"
    );
    let request = format!(
        "GET /callback?code=good-code&state={} HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n",
        sign_in.state
    );
    let v6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port));
    let answer = raw(v6, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    sign_in.result().await.unwrap();
    assert_refused(v6).await;
    assert_refused(SocketAddr::from(([127, 0, 0, 1], port))).await;
    idp.verify().await;
}

#[tokio::test]
async fn a_localhost_redirect_uri_whose_ipv6_port_is_taken_is_refused() {
    if !ipv6_loopback("a_localhost_redirect_uri_whose_ipv6_port_is_taken_is_refused") {
        return;
    }
    let idp = idp(0).await;
    // Another program listens on [::1]:PORT, where localhost may lead the browser.
    let (squatter, port) = loop {
        let squatter = std::net::TcpListener::bind("[::1]:0").unwrap();
        let port = squatter.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            break (squatter, port);
        }
    };
    let opened = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&opened);
    let flow = AuthCode::new()
        .loopback()
        .redirect_uri(format!("http://localhost:{port}/cb"))
        .timeout(Duration::from_millis(300))
        .browser(BrowserFn(move |_: &Url| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }))
        .prompt(ScriptedPrompt::default());
    match flow.fetch(&client(&idp)).await {
        Err(Error::Config(message)) => {
            assert!(message.contains(&format!("[::1]:{port}")), "{message}");
            assert!(message.contains("127.0.0.1"), "{message}");
        }
        other => panic!("expected a Config error, got {other:?}"),
    }
    assert_eq!(opened.load(Ordering::SeqCst), 0, "the browser opened");
    drop(squatter);
    idp.verify().await;
}

#[tokio::test]
async fn an_ipv6_loopback_redirect_uri_is_honoured() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here; skipped");
        return;
    }
    let idp = idp(2).await;
    let flow = AuthCode::new().receiver(LoopbackReceiver::new().bind_ipv6());
    let sign_in = start(flow, client(&idp)).await;
    assert_eq!(sign_in.redirect.host_str(), Some("[::1]"));
    sign_in.complete().await;

    let port = free_port();
    let configured = format!("http://[::1]:{port}/cb");
    let flow = AuthCode::new().loopback().redirect_uri(configured.clone());
    let sign_in = start(flow, client(&idp)).await;
    assert_eq!(sign_in.redirect.as_str(), configured);
    sign_in.complete().await;
    idp.verify().await;
}

#[tokio::test]
async fn a_redirect_uri_that_is_not_http_loopback_is_a_config_error() {
    let idp = idp(0).await;
    for configured in [
        "http://idp.example:1410/callback",
        "https://127.0.0.1:1410/callback",
        "http://10.0.0.1:1410/callback",
        "http://localhost.evil.example:1410/callback",
        "urn:ietf:wg:oauth:2.0:oob",
        "not a url",
    ] {
        let flow = AuthCode::new()
            .loopback()
            .redirect_uri(configured)
            .browser(BrowserFn(|_: &Url| panic!("the browser must not open")))
            .prompt(ScriptedPrompt::default());
        match flow.fetch(&client(&idp)).await {
            Err(Error::Config(message)) => {
                assert!(message.contains("http loopback redirect URI"), "{message}");
            }
            other => panic!("{configured}: expected a Config error, got {other:?}"),
        }
    }
    idp.verify().await;
}

#[tokio::test]
async fn a_custom_path_and_page_text_are_used() {
    let idp = idp(1).await;
    let receiver = LoopbackReceiver::new().path("/oauth/done");
    let pages = LoopbackPages::new().success_text("All set <for> my-tool.");
    let sign_in = start(
        AuthCode::new().receiver(receiver).pages(pages),
        client(&idp),
    )
    .await;
    assert_eq!(sign_in.redirect.path(), "/oauth/done");
    let page = sign_in.get(sign_in.good_callback()).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("All set &lt;for&gt; my-tool."),
        "{}",
        page.body
    );
    sign_in.result().await.unwrap();
    idp.verify().await;
}

#[tokio::test]
async fn every_page_is_inert_and_carries_the_security_headers() {
    let idp = idp(1).await;
    let sign_in = start(AuthCode::new().loopback(), client(&idp)).await;
    let mut favicon = sign_in.good_callback();
    favicon.set_path("/favicon.ico");
    let pages = vec![
        sign_in.get(favicon).await,
        sign_in.get(sign_in.with_query("code=x&state=forged")).await,
        sign_in.get(sign_in.good_callback()).await,
    ];
    let statuses: Vec<StatusCode> = pages.iter().map(|p| p.status).collect();
    assert_eq!(
        statuses,
        [
            StatusCode::NOT_FOUND,
            StatusCode::BAD_REQUEST,
            StatusCode::OK
        ]
    );
    for page in &pages {
        let h = &page.headers;
        assert_eq!(h["content-type"], "text/html; charset=utf-8");
        assert_eq!(h["cache-control"], "no-store");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["x-content-type-options"], "nosniff");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.starts_with("default-src 'none'"), "{csp}");
        assert!(h.get("location").is_none());
        assert!(h.get("refresh").is_none());
        let body = page.body.to_ascii_lowercase();
        for needle in [
            "<script",
            "src=",
            "href=",
            "http-equiv",
            "http://",
            "https://",
        ] {
            assert!(!body.contains(needle), "{needle} in {body}");
        }
    }
    sign_in.result().await.unwrap();
    idp.verify().await;
}
