#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The reqwest middleware through its public API, against a wiremock token endpoint and a
//! wiremock API that rejects revoked tokens.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{ApiState, Idp};
use http::header::AUTHORIZATION;
use oauth_layer::flow::ClientCredentials;
use oauth_layer::{Action, Error, OAuthMiddleware, RequestAuth, TokenSource};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// A wiremock API answering per `state`.
async fn api(state: &ApiState) -> MockServer {
    let server = MockServer::start().await;
    let state = state.clone();
    Mock::given(path("/api"))
        .respond_with(move |req: &Request| {
            let auth = req.headers.get(AUTHORIZATION).map(|v| v.to_str().unwrap());
            let (status, challenge) = state.answer(auth, &req.body);
            let mut resp = ResponseTemplate::new(status);
            if let Some(c) = challenge {
                resp = resp.insert_header("www-authenticate", c);
            }
            resp
        })
        .mount(&server)
        .await;
    server
}

fn client(middleware: impl Into<OAuthMiddleware>) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(middleware.into())
        .build()
}

fn bearer(seen: &common::Seen) -> &str {
    seen.authorization.as_deref().unwrap_or("")
}

#[tokio::test]
async fn a_token_is_reused_across_requests() {
    let idp = Idp::start(3600).await;
    let state = ApiState::default();
    let api = api(&state).await;
    let http = client(OAuthMiddleware::client_credentials(idp.client()).scope("api:read"));

    for _ in 0..500 {
        let resp = http.get(format!("{}/api", api.uri())).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(idp.issued(), 1);
    assert!(state.seen().iter().all(|s| bearer(s) == "Bearer tok-1"));
    // The token was requested with the scope: the server's resource says so.
    let granted = reqwest::Client::new()
        .get(idp.server.resource_url("/api/scope"))
        .bearer_auth("tok-1")
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(granted["scope"], "api:read", "{granted}");
}

#[tokio::test]
async fn a_401_renews_and_retries_once_with_the_same_body() {
    let idp = Idp::start(3600).await;
    let state = ApiState::default();
    let api = api(&state).await;
    let http = client(OAuthMiddleware::client_credentials(idp.client()));
    let url = format!("{}/api", api.uri());

    http.get(&url).send().await.unwrap();
    state.revoke("tok-1");
    let resp = http.post(&url).body("payload-bytes").send().await.unwrap();
    assert_eq!(resp.status(), 200);

    let seen = state.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(
        (bearer(&seen[1]), bearer(&seen[2])),
        ("Bearer tok-1", "Bearer tok-2")
    );
    assert_eq!(seen[1].body, b"payload-bytes");
    assert_eq!(seen[2].body, seen[1].body);
    assert_eq!(idp.issued(), 2);
}

#[tokio::test]
async fn a_second_401_goes_back_to_the_caller() {
    let idp = Idp::start(3600).await;
    let api = MockServer::start().await;
    Mock::given(path("/api"))
        .respond_with(
            ResponseTemplate::new(401)
                .insert_header("www-authenticate", "Bearer error=\"invalid_token\""),
        )
        .expect(2)
        .mount(&api)
        .await;
    let http = client(OAuthMiddleware::client_credentials(idp.client()));
    let resp = http.get(format!("{}/api", api.uri())).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(idp.issued(), 2);
}

#[tokio::test]
async fn a_401_without_any_challenge_renews_as_github_needs() {
    let idp = Idp::start(3600).await;
    let api = MockServer::start().await;
    Mock::given(path("/api"))
        .and(wiremock::matchers::header("authorization", "Bearer tok-1"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&api)
        .await;
    Mock::given(path("/api"))
        .and(wiremock::matchers::header("authorization", "Bearer tok-2"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&api)
        .await;
    let http = client(OAuthMiddleware::client_credentials(idp.client()));
    let resp = http.get(format!("{}/api", api.uri())).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
/// `insufficient_scope` is no reason to renew the token: one wider token is asked for, the
/// request goes once more, and a second 403 is returned.
async fn insufficient_scope_gets_one_upgrade_and_no_renewal() {
    let idp = Idp::start(3600).await;
    let api = MockServer::start().await;
    Mock::given(path("/api"))
        .respond_with(ResponseTemplate::new(403).insert_header(
            "www-authenticate",
            "Bearer error=\"insufficient_scope\", scope=\"admin\"",
        ))
        .expect(4)
        .mount(&api)
        .await;
    let http = client(OAuthMiddleware::client_credentials(idp.client()));
    let resp = http.get(format!("{}/api", api.uri())).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(idp.issued(), 2, "the token and the wider one");
    let resp = http.get(format!("{}/api", api.uri())).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(idp.issued(), 2, "both cached: no renewal, no new upgrade");
}

#[tokio::test]
async fn a_streaming_body_gets_its_401_back_and_is_not_resent() {
    let idp = Idp::start(3600).await;
    let state = ApiState::default();
    let api = api(&state).await;
    let http = client(OAuthMiddleware::client_credentials(idp.client()));
    let url = format!("{}/api", api.uri());
    http.get(&url).send().await.unwrap();
    state.revoke("tok-1");

    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
    tx.send(Ok(bytes::Bytes::from_static(b"streamed")))
        .await
        .unwrap();
    drop(tx);
    let stream = futures_stream(rx);
    let resp = http
        .post(&url)
        .body(reqwest::Body::wrap(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(state.seen().len(), 2, "not resent");

    let next = http.get(&url).send().await.unwrap();
    assert_eq!(next.status(), 200);
    assert_eq!(bearer(&state.seen()[2]), "Bearer tok-2");
}

/// A body whose frames come from a channel: it cannot be cloned.
fn futures_stream(
    rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, std::io::Error>>,
) -> impl http_body::Body<Data = bytes::Bytes, Error = std::io::Error> + Send + Sync + 'static {
    struct ChannelBody(tokio::sync::mpsc::Receiver<Result<bytes::Bytes, std::io::Error>>);
    impl http_body::Body for ChannelBody {
        type Data = bytes::Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>>
        {
            self.0
                .poll_recv(cx)
                .map(|o| o.map(|r| r.map(http_body::Frame::data)))
        }
    }
    ChannelBody(rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_401s_cause_one_renewal() {
    let idp = Idp::start(3600).await;
    let state = ApiState::default();
    let api = api(&state).await;
    let http = client(OAuthMiddleware::client_credentials(idp.client()));
    let url = format!("{}/api", api.uri());
    http.get(&url).send().await.unwrap();
    state.revoke("tok-1");

    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (http, url, barrier) = (http.clone(), url.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                http.get(&url).send().await.unwrap().status()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(idp.issued(), 2);
}

#[tokio::test]
async fn tokens_go_only_to_allowed_origins_and_loopback_http() {
    let idp = Idp::start(3600).await;
    let state = ApiState::default();
    let allowed = api(&state).await;
    let other_port = api(&state).await;
    let http = client(
        OAuthMiddleware::client_credentials(idp.client())
            .allow_origins([allowed.uri()])
            .unwrap(),
    );
    http.get(format!("{}/api", other_port.uri()))
        .send()
        .await
        .unwrap();
    http.get(format!("{}/api", allowed.uri()))
        .send()
        .await
        .unwrap();
    let seen = state.seen();
    assert_eq!(
        seen[0].authorization, None,
        "another port is another origin"
    );
    assert_eq!(bearer(&seen[1]), "Bearer tok-1");
}

#[tokio::test]
async fn a_cross_origin_redirect_does_not_carry_the_token() {
    let idp = Idp::start(3600).await;
    let target = MockServer::start().await;
    Mock::given(path("/landing"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&target)
        .await;
    let origin = MockServer::start().await;
    Mock::given(path("/start"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", format!("{}/landing", target.uri())),
        )
        .mount(&origin)
        .await;
    let http = client(OAuthMiddleware::client_credentials(idp.client()));
    // reqwest's default policy followed the redirect below the middleware: the answer is refused
    // (such a client would re-send the token on a second hop to the same origin).
    let err = http
        .get(format!("{}/start", origin.uri()))
        .send()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("redirect_policy"), "{err}");
    let at_origin = &origin.received_requests().await.unwrap()[0];
    assert_eq!(at_origin.headers[AUTHORIZATION], "Bearer tok-1");
    let at_target = &target.received_requests().await.unwrap()[0];
    assert!(at_target.headers.get(AUTHORIZATION).is_none());
}

#[tokio::test]
async fn per_request_credentials_through_extensions() {
    let idp = Idp::start(3600).await;
    let admin_idp = Idp::start(3600).await;
    let state = ApiState::default();
    let api = api(&state).await;
    let http = client(OAuthMiddleware::client_credentials(idp.client()));
    let url = format!("{}/api", api.uri());
    let admin = TokenSource::new(admin_idp.client(), ClientCredentials::new().scope("admin"));

    http.get(&url)
        .with_extension(RequestAuth::Source(admin))
        .send()
        .await
        .unwrap();
    http.get(&url)
        .with_extension(RequestAuth::Skip)
        .send()
        .await
        .unwrap();
    http.get(&url)
        .header(AUTHORIZATION, "Basic dXNlcjpwdw==")
        .send()
        .await
        .unwrap();
    let seen = state.seen();
    assert_eq!(bearer(&seen[0]), "Bearer tok-1");
    assert_eq!(seen[1].authorization, None);
    assert_eq!(seen[2].authorization.as_deref(), Some("Basic dXNlcjpwdw=="));
    assert_eq!((idp.issued(), admin_idp.issued()), (0, 1));
}

#[tokio::test]
async fn a_token_endpoint_failure_is_a_typed_error() {
    let server = MockServer::start().await;
    Mock::given(path("/token"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(serde_json::json!({"error": "invalid_grant"})),
        )
        .mount(&server)
        .await;
    let state = ApiState::default();
    let api = api(&state).await;
    let oauth = oauth_layer::OAuthClient::builder("c")
        .token_url(format!("{}/token", server.uri()))
        .build()
        .unwrap();
    let http = client(OAuthMiddleware::password(oauth, "alice", "pw"));
    let err = http
        .get(format!("{}/api", api.uri()))
        .send()
        .await
        .unwrap_err();
    let reqwest_middleware::Error::Middleware(err) = err else {
        panic!("expected a middleware error, got {err:?}");
    };
    let err = err.downcast_ref::<Error>().expect("an oauth_layer::Error");
    assert_eq!(err.action(), Action::Reauthenticate);
    assert!(state.seen().is_empty());
}

#[tokio::test]
async fn tokens_are_renewed_ahead_of_expiry_and_never_sent_expired() {
    use oauth_layer::AuthMethod;
    use oauth_layer::clock::ManualClock;
    use oauth_layer::testing::TestServer;

    // The server judges expiry by the same manual clock the client uses.
    let clock = ManualClock::new();
    let server = TestServer::builder()
        .client("app", Some("app-secret"), AuthMethod::ClientSecretBasic)
        .access_token_lifetime(Duration::from_secs(1000))
        .clock(clock.clone())
        .start()
        .await
        .unwrap();
    let http = client(OAuthMiddleware::client_credentials(
        server.oauth_client("app").unwrap(),
    ));

    // 2,500 s of traffic, a request every 5 s, with 1,000 s tokens.
    for _ in 0..500 {
        let resp = http
            .get(server.resource_url("/api/hello"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        clock.advance(Duration::from_secs(5));
        tokio::task::yield_now().await;
    }
    let rejected = server
        .resource_requests()
        .iter()
        .filter(|r| r.status != 200)
        .count();
    assert_eq!(rejected, 0, "the API never saw an expired token");
    let issued = server.token_requests();
    assert!(
        (3..=4).contains(&issued),
        "{issued} tokens for 2,500 s of 1,000 s tokens"
    );
}

#[tokio::test]
async fn without_retry_a_401_is_returned_and_the_next_request_is_renewed() {
    let idp = Idp::start(3600).await;
    let state = ApiState::default();
    let api = api(&state).await;
    let http = client(OAuthMiddleware::client_credentials(idp.client()).retry_after_401(false));
    let url = format!("{}/api", api.uri());
    http.get(&url).send().await.unwrap();
    state.revoke("tok-1");
    assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(state.seen().len(), 2, "not retried");
    assert_eq!(http.get(&url).send().await.unwrap().status(), 200);
    assert_eq!(bearer(&state.seen()[2]), "Bearer tok-2");
}

/// The copy a retry sends is the request as the caller built it: method, URL with its query,
/// its own headers (not the refused token), and its timeout, which still bounds the retry.
#[tokio::test]
async fn the_retry_after_a_401_resends_the_method_url_headers_and_timeout() {
    let idp = Idp::start(3600).await;
    let api = MockServer::start().await;
    Mock::given(path("/api"))
        .respond_with(|req: &Request| {
            if req.headers.get(AUTHORIZATION).unwrap().to_str().unwrap() == "Bearer tok-1" {
                return ResponseTemplate::new(401)
                    .insert_header("www-authenticate", "Bearer error=\"invalid_token\"");
            }
            // The retry's answer comes late, unless the retry was asked to go slow.
            match req.url.query() {
                Some("slow=1") => ResponseTemplate::new(200).set_delay(Duration::from_millis(900)),
                _ => ResponseTemplate::new(200),
            }
        })
        .mount(&api)
        .await;
    let http = client(OAuthMiddleware::client_credentials(idp.client()));

    let response = http
        .put(format!("{}/api?fast=1", api.uri()))
        .header("x-trace", "t-42")
        .version(http::Version::HTTP_11)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = api.received_requests().await.unwrap();
    assert_eq!(seen.len(), 2);
    let (first, retry) = (&seen[0], &seen[1]);
    assert_eq!(retry.method, first.method);
    assert_eq!(retry.method.as_str(), "PUT");
    assert_eq!(retry.url, first.url);
    assert_eq!(retry.url.query(), Some("fast=1"));
    assert_eq!(retry.headers.get("x-trace").unwrap(), "t-42");
    let tokens: Vec<_> = retry.headers.get_all(AUTHORIZATION).iter().collect();
    assert_eq!(
        tokens,
        ["Bearer tok-2"],
        "exactly one Authorization, the renewed token"
    );

    // The timeout goes with the copy: the late answer to the retry is not waited for. (A new
    // identity provider, so that the first attempt carries `tok-1` again.)
    let idp = Idp::start(3600).await;
    let http = client(OAuthMiddleware::client_credentials(idp.client()));
    let started = std::time::Instant::now();
    let error = http
        .get(format!("{}/api?slow=1", api.uri()))
        .timeout(Duration::from_millis(250))
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");
    assert!(
        started.elapsed() < Duration::from_millis(850),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(api.received_requests().await.unwrap().len(), 4);
    assert_eq!(idp.issued(), 2, "renewed once, then the retry timed out");
}
