//! `TokenSource` against real token endpoints (wiremock on loopback): single flight, shared
//! failures, cancellation, refresh-ahead, keeping a working token, invalidation, refresh tokens,
//! the change hook and shared stores, exactly as DESIGN.md "The token source, precisely" says.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use oauth_layer::clock::ManualClock;
use oauth_layer::flow::{ClientCredentials, Flow, RefreshToken};
use oauth_layer::store::{MemoryStore, TokenStore};
use oauth_layer::{
    Action, DEFAULT_FAILURE_MEMORY, DEFAULT_LIFETIME, Error, ErrorCode, OAuthClient, RetryPolicy,
    Token, TokenSource,
};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const CC: &str = "grant_type=client_credentials";
const REFRESH: &str = "grant_type=refresh_token";

/// A client for `server`'s `/token`, on `clock`, without retries so request counts are exact.
fn client(server: &MockServer, clock: &ManualClock) -> OAuthClient {
    OAuthClient::builder("source-test")
        .secret("source-test-secret")
        .token_url(format!("{}/token", server.uri()))
        .clock(clock.clone())
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap()
}

fn bearer(access_token: &str, expires_in: Value) -> Value {
    json!({ "access_token": access_token, "token_type": "Bearer", "expires_in": expires_in })
}

fn bearer_with_refresh(access_token: &str, expires_in: u64, refresh_token: &str) -> Value {
    json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "refresh_token": refresh_token,
    })
}

fn ok(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

fn oauth_error(status: u16, code: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({ "error": code }))
}

/// A mock answering token requests whose form contains `form_part`.
fn token_endpoint(form_part: &str) -> wiremock::MockBuilder {
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains(form_part))
}

fn access(token: &Token) -> &str {
    token.access_token().expose_secret()
}

fn refresh_of(token: &Token) -> Option<&str> {
    token.refresh_token().map(|r| r.expose_secret())
}

fn form(request: &Request) -> HashMap<String, String> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

/// The forms of every request the server received, in order.
async fn forms(server: &MockServer) -> Vec<HashMap<String, String>> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(form)
        .collect()
}

async fn request_count(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

/// Polls `token()` until it returns `wanted` (a background renewal finishing), bounded.
async fn until_served(source: &TokenSource, wanted: &str) -> Token {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let token = source.token().await.unwrap();
            if access(&token) == wanted {
                return token;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{wanted} was never served"))
}

/// Polls until the server has received `n` requests, bounded.
async fn until_requests(server: &MockServer, n: usize) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while request_count(server).await < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the server never received {n} requests"));
}

/// Runs `token()` on `n` spawned tasks at once and collects the results.
async fn concurrent_tokens(source: &TokenSource, n: usize) -> Vec<oauth_layer::Result<Token>> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let source = source.clone();
            tokio::spawn(async move { source.token().await })
        })
        .collect();
    let mut results = Vec::with_capacity(n);
    for task in tasks {
        results.push(task.await.unwrap());
    }
    // Each finished `JoinHandle` spends a unit of tokio's cooperative budget, and awaiting a
    // thousand can leave this task's poll with none. The `MockServer` dropped at the end of the
    // test then checks its expectations in a blocking executor, whose lock waits on that budget
    // and is woken again at once, for ever (a hang seen once in 1,191 tests). Yielding here gives
    // the rest of the test a fresh budget.
    tokio::task::yield_now().await;
    results
}

/// Polls a future that must be ready at once (a `MemoryStore` call) from synchronous code.
fn now_or_never<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the store was expected to answer at once"),
    }
}

fn assert_same_server_error(a: &Error, b: &Error) {
    match (a, b) {
        (Error::Server(a), Error::Server(b)) => assert_eq!(a, b),
        _ => panic!("expected two server errors, got {a:?} and {b:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Single flight
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_runs_once_for_a_thousand_waiters() {
    let server = MockServer::start().await;
    token_endpoint(CC)
        .respond_with(ok(bearer("AT-1", json!(3600))).set_delay(Duration::from_millis(200)))
        .expect(1)
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let source = TokenSource::new(client(&server, &clock), ClientCredentials::new());

    let results = concurrent_tokens(&source, 1000).await;

    let tokens: Vec<Token> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!(access(&tokens[0]), "AT-1");
    assert!(tokens.iter().all(|t| t.same_as(&tokens[0])));
    assert_eq!(request_count(&server).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_renewal_gives_every_waiter_the_same_error_and_is_remembered() {
    let server = MockServer::start().await;
    token_endpoint(CC)
        .respond_with(oauth_error(400, "invalid_scope").set_delay(Duration::from_millis(200)))
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let source = TokenSource::new(client(&server, &clock), ClientCredentials::new());

    let errors: Vec<Error> = concurrent_tokens(&source, 1000)
        .await
        .into_iter()
        .map(Result::unwrap_err)
        .collect();

    assert_eq!(request_count(&server).await, 1);
    let first = errors[0].server_error().expect("a server error");
    assert_eq!(first.code, ErrorCode::InvalidScope);
    assert_eq!(first.status.as_u16(), 400);
    for err in &errors {
        assert_same_server_error(err, &errors[0]);
    }

    // Within the failure memory: the same error, no request.
    clock.advance(DEFAULT_FAILURE_MEMORY - Duration::from_secs(1));
    let again = source.token().await.unwrap_err();
    assert_same_server_error(&again, &errors[0]);
    assert_eq!(request_count(&server).await, 1);

    // Once it has passed, a new request.
    clock.advance(Duration::from_secs(1));
    let later = source.token().await.unwrap_err();
    assert_same_server_error(&later, &errors[0]);
    assert_eq!(request_count(&server).await, 2);
}

#[tokio::test]
async fn the_failure_memory_is_configurable() {
    let server = MockServer::start().await;
    token_endpoint(CC)
        .respond_with(oauth_error(400, "invalid_scope"))
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let source = TokenSource::builder(client(&server, &clock), ClientCredentials::new())
        .failure_memory(Duration::from_secs(60))
        .build();

    source.token().await.unwrap_err();
    clock.advance(Duration::from_secs(59));
    source.token().await.unwrap_err();
    assert_eq!(request_count(&server).await, 1);

    clock.advance(Duration::from_secs(1));
    source.token().await.unwrap_err();
    assert_eq!(request_count(&server).await, 2);
}

// ---------------------------------------------------------------------------------------------
// Cancellation
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_caller_does_not_cancel_the_renewal_it_started() {
    let server = MockServer::start().await;
    token_endpoint(CC)
        .respond_with(ok(bearer("AT-1", json!(3600))).set_delay(Duration::from_millis(300)))
        .expect(1)
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let source = TokenSource::new(client(&server, &clock), ClientCredentials::new());

    let starter = tokio::spawn({
        let source = source.clone();
        async move { source.token().await }
    });
    until_requests(&server, 1).await;
    let others: Vec<_> = (0..10)
        .map(|_| {
            let source = source.clone();
            tokio::spawn(async move { source.token().await })
        })
        .collect();
    starter.abort();
    assert!(starter.await.unwrap_err().is_cancelled());

    let mut tokens = Vec::new();
    for other in others {
        tokens.push(other.await.unwrap().unwrap());
    }
    assert_eq!(access(&tokens[0]), "AT-1");
    assert!(tokens.iter().all(|t| t.same_as(&tokens[0])));
    assert!(source.token().await.unwrap().same_as(&tokens[0]));
    assert_eq!(request_count(&server).await, 1);
}

#[tokio::test]
async fn a_caller_that_times_out_does_not_lose_the_rotated_refresh_token() {
    let server = MockServer::start().await;
    token_endpoint("refresh_token=RT-0")
        .respond_with(
            ok(bearer_with_refresh("AT-1", 100, "RT-1")).set_delay(Duration::from_millis(300)),
        )
        .expect(1)
        .mount(&server)
        .await;
    token_endpoint("refresh_token=RT-1")
        .respond_with(ok(bearer_with_refresh("AT-2", 100, "RT-2")))
        .expect(1)
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let source = TokenSource::new(client(&server, &clock), RefreshToken::new("RT-0"));

    let timed_out = tokio::time::timeout(Duration::from_millis(50), source.token()).await;
    assert!(timed_out.is_err(), "the first caller should have given up");

    // Another caller still gets the token from the renewal the first one started.
    let first = source.token().await.unwrap();
    assert_eq!(access(&first), "AT-1");
    assert_eq!(refresh_of(&first), Some("RT-1"));
    assert_eq!(request_count(&server).await, 1);

    clock.advance(Duration::from_secs(100));
    let second = source.token().await.unwrap();
    assert_eq!(access(&second), "AT-2");

    let sent = forms(&server).await;
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0]["refresh_token"], "RT-0");
    assert_eq!(sent[1]["grant_type"], "refresh_token");
    assert_eq!(
        sent[1]["refresh_token"], "RT-1",
        "the rotated refresh token must be used"
    );
}

// ---------------------------------------------------------------------------------------------
// Refresh-ahead and lifetimes
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inside_the_refresh_window_the_old_token_is_served_while_one_renewal_runs() {
    let server = MockServer::start().await;
    token_endpoint(CC)
        .respond_with(ok(bearer("AT-1", json!(1000))))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    token_endpoint(CC)
        .respond_with(ok(bearer("AT-2", json!(1000))).set_delay(Duration::from_millis(300)))
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let source = TokenSource::new(client(&server, &clock), ClientCredentials::new());
    let old = source.token().await.unwrap();

    // The token goes stale at 970 s (expiry minus the 30 s skew); the background renewal starts
    // 10 % of its lifetime (100 s) before that, at 870 s.
    clock.advance(Duration::from_secs(905));
    let started = std::time::Instant::now();
    for _ in 0..20 {
        assert!(source.token().await.unwrap().same_as(&old));
    }
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "callers in the refresh window must not wait for the renewal"
    );

    let new = until_served(&source, "AT-2").await;
    for _ in 0..10 {
        assert!(source.token().await.unwrap().same_as(&new));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        request_count(&server).await,
        2,
        "exactly one background renewal"
    );
}

/// A short token is renewed ahead too: a 2-second token goes stale after 1 s (the skew is capped
/// at half the lifetime) and its background renewal starts 0.2 s before that, so callers never
/// wait for a renewal.
#[tokio::test]
async fn a_two_second_token_is_renewed_in_the_background_before_it_goes_stale() {
    let server = MockServer::start().await;
    token_endpoint(CC)
        .respond_with(ok(bearer("AT-1", json!(2))))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    token_endpoint(CC)
        .respond_with(ok(bearer("AT-2", json!(2))).set_delay(Duration::from_millis(300)))
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let source = TokenSource::new(client(&server, &clock), ClientCredentials::new());
    let old = source.token().await.unwrap();

    clock.advance(Duration::from_millis(700));
    assert!(source.token().await.unwrap().same_as(&old));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(request_count(&server).await, 1, "not yet in the window");

    clock.advance(Duration::from_millis(150));
    let started = std::time::Instant::now();
    assert!(source.token().await.unwrap().same_as(&old));
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "a caller in the refresh window must not wait for the renewal"
    );
    until_requests(&server, 2).await;
    until_served(&source, "AT-2").await;
}

#[tokio::test]
async fn past_expiry_minus_skew_callers_wait_for_the_new_token() {
    let server = MockServer::start().await;
    token_endpoint(CC)
        .respond_with(ok(bearer("AT-1", json!(1000))))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    token_endpoint(CC)
        .respond_with(ok(bearer("AT-2", json!(1000))).set_delay(Duration::from_millis(100)))
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let source = TokenSource::new(client(&server, &clock), ClientCredentials::new());
    source.token().await.unwrap();

    clock.advance(Duration::from_secs(971));
    assert!(source.cached().is_none());
    assert_eq!(access(&source.token().await.unwrap()), "AT-2");
    assert_eq!(request_count(&server).await, 2);
}

#[tokio::test]
async fn a_five_second_token_is_served_and_renewed_after_half_its_lifetime() {
    let server = MockServer::start().await;
    token_endpoint(CC)
        .respond_with(ok(bearer("AT-1", json!(5))))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    token_endpoint(CC)
        .respond_with(ok(bearer("AT-2", json!(5))))
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let source = TokenSource::new(client(&server, &clock), ClientCredentials::new());
    let first = source.token().await.unwrap();

    // The default 30 s skew would make a 5 s token useless; it is bounded by half the lifetime.
    clock.advance(Duration::from_millis(2400));
    assert!(source.token().await.unwrap().same_as(&first));
    assert_eq!(request_count(&server).await, 1);

    clock.advance(Duration::from_millis(100));
    assert_eq!(access(&source.token().await.unwrap()), "AT-2");
    assert_eq!(request_count(&server).await, 2);
}

async fn every_call_fetches_a_token_that_expires_in(expires_in: Value) {
    let server = MockServer::start().await;
    token_endpoint(CC)
        .respond_with(ok(bearer("AT-X", expires_in)))
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let source = TokenSource::new(client(&server, &clock), ClientCredentials::new());

    let first = source.token().await.unwrap();
    assert_eq!(first.lifetime(), Duration::ZERO);
    assert!(source.cached().is_none(), "an expired token is never valid");
    let second = source.token().await.unwrap();
    let third = source.token().await.unwrap();
    assert!(!second.same_as(&first) && !third.same_as(&second));
    assert_eq!(request_count(&server).await, 3);
}

#[tokio::test]
async fn a_token_that_expires_in_zero_is_never_cached() {
    every_call_fetches_a_token_that_expires_in(json!(0)).await;
}

#[tokio::test]
async fn a_token_with_negative_expires_in_is_never_cached() {
    every_call_fetches_a_token_that_expires_in(json!(-30)).await;
}

#[tokio::test]
async fn expires_in_as_a_string_is_honoured() {
    let server = MockServer::start().await;
    token_endpoint(CC)
        .respond_with(ok(bearer("AT-1", json!("120"))))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    token_endpoint(CC)
        .respond_with(ok(bearer("AT-2", json!("120"))))
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let source = TokenSource::new(client(&server, &clock), ClientCredentials::new());

    let first = source.token().await.unwrap();
    assert_eq!(first.lifetime(), Duration::from_secs(120));
    assert!(first.lifetime_was_reported());
    clock.advance(Duration::from_secs(80));
    assert!(source.token().await.unwrap().same_as(&first));
    assert_eq!(request_count(&server).await, 1);

    clock.advance(Duration::from_secs(11)); // 91 s: past 120 - 30 s skew
    assert_eq!(access(&source.token().await.unwrap()), "AT-2");
    assert_eq!(request_count(&server).await, 2);
}

#[tokio::test]
async fn missing_expires_in_means_the_default_lifetime() {
    let server = MockServer::start().await;
    token_endpoint(CC)
        .respond_with(ok(
            json!({ "access_token": "AT-1", "token_type": "bearer" }),
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    token_endpoint(CC)
        .respond_with(ok(bearer("AT-2", json!(3600))))
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let source = TokenSource::new(client(&server, &clock), ClientCredentials::new());

    let first = source.token().await.unwrap();
    assert_eq!(first.lifetime(), DEFAULT_LIFETIME);
    assert!(!first.lifetime_was_reported());
    clock.advance(DEFAULT_LIFETIME - Duration::from_secs(301));
    assert!(source.token().await.unwrap().same_as(&first));
    assert_eq!(request_count(&server).await, 1);

    // Not valid forever: at the end of the default lifetime it is renewed.
    clock.advance(Duration::from_secs(301));
    assert_eq!(access(&source.token().await.unwrap()), "AT-2");
    assert_eq!(request_count(&server).await, 2);
}

// ---------------------------------------------------------------------------------------------
// Keep what works
// ---------------------------------------------------------------------------------------------

/// A source whose first request succeeds (AT-1, 1000 s) and every later one gets `failure`.
async fn source_that_then_fails(
    failure: ResponseTemplate,
) -> (MockServer, ManualClock, TokenSource, Token) {
    let server = MockServer::start().await;
    token_endpoint(CC)
        .respond_with(ok(bearer("AT-1", json!(1000))))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    token_endpoint(CC)
        .respond_with(failure)
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let source = TokenSource::new(client(&server, &clock), ClientCredentials::new());
    let old = source.token().await.unwrap();
    (server, clock, source, old)
}

#[tokio::test]
async fn a_503_past_the_skew_keeps_serving_the_still_valid_token() {
    let (server, clock, source, old) = source_that_then_fails(ResponseTemplate::new(503)).await;

    clock.advance(Duration::from_secs(975)); // stale (975 > 970), but valid until 1000
    assert!(source.token().await.unwrap().same_as(&old));
    assert_eq!(request_count(&server).await, 2);
    for _ in 0..20 {
        assert!(source.token().await.unwrap().same_as(&old));
    }
    clock.advance(DEFAULT_FAILURE_MEMORY - Duration::from_secs(1));
    assert!(source.token().await.unwrap().same_as(&old));
    assert_eq!(
        request_count(&server).await,
        2,
        "no request within the failure memory"
    );

    clock.advance(Duration::from_secs(1));
    assert!(source.token().await.unwrap().same_as(&old));
    assert_eq!(request_count(&server).await, 3);

    // Past its hard expiry the old token is never served.
    clock.advance(Duration::from_secs(20));
    let err = source.token().await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(request_count(&server).await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_in_the_refresh_window_keeps_serving_without_more_requests() {
    let (server, clock, source, old) = source_that_then_fails(ResponseTemplate::new(503)).await;

    clock.advance(Duration::from_secs(905));
    assert!(source.token().await.unwrap().same_as(&old));
    until_requests(&server, 2).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..50 {
        assert!(source.token().await.unwrap().same_as(&old));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(request_count(&server).await, 2);
}

#[tokio::test]
async fn a_connection_error_past_the_skew_keeps_serving_the_still_valid_token() {
    let reset = |_: &Request| std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
    let server = MockServer::start().await;
    token_endpoint(CC)
        .respond_with(ok(bearer("AT-1", json!(1000))))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    token_endpoint(CC)
        .respond_with_err(reset)
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let source = TokenSource::new(client(&server, &clock), ClientCredentials::new());
    let old = source.token().await.unwrap();

    clock.advance(Duration::from_secs(975));
    assert!(source.token().await.unwrap().same_as(&old));
    let after_failure = request_count(&server).await;
    assert!(after_failure >= 2);
    for _ in 0..20 {
        assert!(source.token().await.unwrap().same_as(&old));
    }
    assert_eq!(request_count(&server).await, after_failure);
}

#[tokio::test]
async fn a_refused_connection_keeps_serving_the_still_valid_token() {
    // A port nobody listens on: connection refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/token", closed.local_addr().unwrap());
    drop(closed);
    let clock = ManualClock::new();
    let client = OAuthClient::builder("source-test")
        .secret("source-test-secret")
        .token_url(url)
        .clock(clock.clone())
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let old = Token::builder("AT-1")
        .expires_in(Duration::from_secs(1000))
        .build(&clock)
        .unwrap();
    let source = TokenSource::builder(client, ClientCredentials::new())
        .initial_token(old.clone())
        .build();

    clock.advance(Duration::from_secs(975));
    assert!(source.token().await.unwrap().same_as(&old));
    assert!(source.cached().unwrap().same_as(&old));

    clock.advance(Duration::from_secs(30));
    let err = source.token().await.unwrap_err();
    assert!(
        matches!(&err, Error::Transport(t) if t.kind == oauth_layer::TransportErrorKind::Refused),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Invalidation
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_401s_cause_one_renewal() {
    let server = MockServer::start().await;
    token_endpoint(CC)
        .respond_with(ok(bearer("AT-1", json!(3600))))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    token_endpoint(CC)
        .respond_with(ok(bearer("AT-2", json!(3600))).set_delay(Duration::from_millis(100)))
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let source = TokenSource::new(client(&server, &clock), ClientCredentials::new());
    let used = source.token().await.unwrap();

    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (source, used) = (source.clone(), used.clone());
            tokio::spawn(async move {
                source.invalidate(&used);
                source.token().await
            })
        })
        .collect();
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.push(task.await.unwrap().unwrap());
    }
    assert_eq!(access(&tokens[0]), "AT-2");
    assert!(tokens.iter().all(|t| t.same_as(&tokens[0])));
    assert_eq!(request_count(&server).await, 2);

    // A late 401 for the old token changes nothing.
    assert!(!source.invalidate(&used));
    assert!(source.token().await.unwrap().same_as(&tokens[0]));
    assert_eq!(request_count(&server).await, 2);
}

#[tokio::test]
async fn invalidating_an_older_token_returns_false_and_sends_nothing() {
    let server = MockServer::start().await;
    token_endpoint(CC)
        .respond_with(ok(bearer("AT-1", json!(100))))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    token_endpoint(CC)
        .respond_with(ok(bearer("AT-2", json!(100))))
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let source = TokenSource::new(client(&server, &clock), ClientCredentials::new());
    let older = source.token().await.unwrap();
    clock.advance(Duration::from_secs(100));
    let newer = source.token().await.unwrap();
    assert_eq!(access(&newer), "AT-2");

    assert!(!source.invalidate(&older));
    assert!(source.token().await.unwrap().same_as(&newer));
    assert_eq!(request_count(&server).await, 2);

    assert!(source.invalidate(&newer));
    assert!(!source.token().await.unwrap().same_as(&newer));
    assert_eq!(request_count(&server).await, 3);
}

// ---------------------------------------------------------------------------------------------
// Refresh tokens
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_token_with_a_refresh_token_is_renewed_with_it_and_keeps_it_when_none_is_returned() {
    let server = MockServer::start().await;
    token_endpoint(CC)
        .respond_with(ok(bearer_with_refresh("AT-1", 100, "RT-1")))
        .expect(1)
        .mount(&server)
        .await;
    token_endpoint(REFRESH)
        .respond_with(ok(bearer("AT-R", json!(100))))
        .expect(2)
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let source = TokenSource::new(client(&server, &clock), ClientCredentials::new());
    source.token().await.unwrap();

    clock.advance(Duration::from_secs(100));
    let second = source.token().await.unwrap();
    assert_eq!(access(&second), "AT-R");
    assert_eq!(
        refresh_of(&second),
        Some("RT-1"),
        "rule 21: the old one is kept"
    );

    clock.advance(Duration::from_secs(100));
    source.token().await.unwrap();

    let sent = forms(&server).await;
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[0]["grant_type"], "client_credentials");
    for refresh in &sent[1..] {
        assert_eq!(refresh["grant_type"], "refresh_token");
        assert_eq!(refresh["refresh_token"], "RT-1");
    }
}

#[tokio::test]
async fn a_rotated_refresh_token_is_stored_before_the_hook_runs_and_before_token_returns() {
    let server = MockServer::start().await;
    token_endpoint(CC)
        .respond_with(ok(bearer_with_refresh("AT-1", 100, "RT-1")))
        .mount(&server)
        .await;
    token_endpoint("refresh_token=RT-1")
        .respond_with(ok(bearer_with_refresh("AT-2", 100, "RT-2")))
        .expect(1)
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let store = MemoryStore::new();
    let client = client(&server, &clock);
    let flow = ClientCredentials::new();
    let key = flow.cache_key(&client);
    let seen_in_hook = Arc::new(Mutex::new(Vec::new()));
    let source = TokenSource::builder(client, flow)
        .store(store.clone())
        .on_token_change({
            let (store, key, seen) = (store.clone(), key.clone(), seen_in_hook.clone());
            move |token| {
                let stored = now_or_never(store.load(&key)).unwrap().expect("stored");
                assert!(stored.same_as(token), "the hook runs after the store write");
                seen.lock()
                    .unwrap()
                    .push(refresh_of(&stored).map(str::to_owned));
            }
        })
        .build();
    source.token().await.unwrap();

    clock.advance(Duration::from_secs(100));
    let rotated = source.token().await.unwrap();
    assert_eq!(refresh_of(&rotated), Some("RT-2"));
    let stored = store.load(&key).await.unwrap().unwrap();
    assert!(stored.same_as(&rotated));
    assert_eq!(
        *seen_in_hook.lock().unwrap(),
        [Some("RT-1".to_owned()), Some("RT-2".to_owned())]
    );
}

#[tokio::test]
async fn invalid_grant_on_refresh_runs_the_client_credentials_flow_again() {
    let server = MockServer::start().await;
    token_endpoint(CC)
        .respond_with(ok(bearer_with_refresh("AT-1", 100, "RT-1")))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    token_endpoint(REFRESH)
        .respond_with(oauth_error(400, "invalid_grant"))
        .expect(1)
        .mount(&server)
        .await;
    token_endpoint(CC)
        .respond_with(ok(bearer("AT-2", json!(100))))
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let source = TokenSource::new(client(&server, &clock), ClientCredentials::new());
    source.token().await.unwrap();

    clock.advance(Duration::from_secs(100));
    assert_eq!(access(&source.token().await.unwrap()), "AT-2");

    let grants: Vec<String> = forms(&server)
        .await
        .iter()
        .map(|f| f["grant_type"].clone())
        .collect();
    assert_eq!(
        grants,
        ["client_credentials", "refresh_token", "client_credentials"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_grant_on_refresh_is_terminal_for_a_refresh_token_flow() {
    let server = MockServer::start().await;
    token_endpoint("refresh_token=RT-0")
        .respond_with(ok(bearer_with_refresh("AT-1", 100, "RT-1")))
        .expect(1)
        .mount(&server)
        .await;
    token_endpoint("refresh_token=RT-1")
        .respond_with(oauth_error(400, "invalid_grant").set_delay(Duration::from_millis(200)))
        .expect(1)
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let store = MemoryStore::new();
    let source = TokenSource::builder(client(&server, &clock), RefreshToken::new("RT-0"))
        .store(store.clone())
        .build();
    source.token().await.unwrap();
    assert_eq!(store.len(), 1);

    clock.advance(Duration::from_secs(100));
    let errors: Vec<Error> = concurrent_tokens(&source, 50)
        .await
        .into_iter()
        .map(Result::unwrap_err)
        .collect();
    for err in &errors {
        assert!(err.is_invalid_grant(), "{err:?}");
        assert_same_server_error(err, &errors[0]);
    }
    assert!(
        store.is_empty(),
        "the dead refresh token is purged from the store"
    );

    // Never sent again: a later call fails at once, telling the caller to sign in again.
    clock.advance(DEFAULT_FAILURE_MEMORY);
    let later = source.token().await.unwrap_err();
    assert_eq!(later.action(), Action::Reauthenticate, "{later:?}");
    clock.advance(Duration::from_secs(3600));
    assert_eq!(
        source.token().await.unwrap_err().action(),
        Action::Reauthenticate
    );
    let sent = forms(&server).await;
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1]["refresh_token"], "RT-1");
}

// ---------------------------------------------------------------------------------------------
// Change hook and shared stores
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn on_token_change_runs_once_per_new_token() {
    let server = MockServer::start().await;
    for (n, at) in ["AT-1", "AT-2", "AT-3"].into_iter().enumerate() {
        token_endpoint(CC)
            .respond_with(ok(bearer(at, json!(100))))
            .up_to_n_times(1)
            .with_priority(u8::try_from(n + 1).unwrap())
            .mount(&server)
            .await;
    }
    let clock = ManualClock::new();
    let changes = Arc::new(Mutex::new(Vec::new()));
    let source = TokenSource::builder(client(&server, &clock), ClientCredentials::new())
        .on_token_change({
            let changes = changes.clone();
            move |token| changes.lock().unwrap().push(access(token).to_owned())
        })
        .build();

    for _ in 0..3 {
        for _ in 0..5 {
            source.token().await.unwrap();
        }
        clock.advance(Duration::from_secs(100));
    }
    assert_eq!(*changes.lock().unwrap(), ["AT-1", "AT-2", "AT-3"]);
    assert_eq!(request_count(&server).await, 3);
}

#[tokio::test]
async fn two_sources_sharing_a_memory_store_make_one_request() {
    let server = MockServer::start().await;
    token_endpoint(CC)
        .respond_with(ok(bearer("AT-1", json!(3600))))
        .expect(1)
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let store = MemoryStore::new();
    let a = TokenSource::builder(client(&server, &clock), ClientCredentials::new().scope("x"))
        .store(store.clone())
        .build();
    let b = TokenSource::builder(client(&server, &clock), ClientCredentials::new().scope("x"))
        .store(store.clone())
        .build();

    let from_a = a.token().await.unwrap();
    let from_b = b.token().await.unwrap();
    assert!(from_b.same_as(&from_a));
    assert_eq!(request_count(&server).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_background_renewal_is_not_retried_within_the_failure_memory() {
    let (server, clock, source, old) =
        source_that_then_fails(oauth_error(400, "invalid_scope")).await;

    clock.advance(Duration::from_secs(905));
    assert!(source.token().await.unwrap().same_as(&old));
    until_requests(&server, 2).await;
    for _ in 0..50 {
        assert!(source.token().await.unwrap().same_as(&old));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(request_count(&server).await, 2);

    clock.advance(DEFAULT_FAILURE_MEMORY);
    assert!(source.token().await.unwrap().same_as(&old));
    until_requests(&server, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_racing_the_end_of_a_background_renewal_start_no_second_one() {
    let server = MockServer::start().await;
    token_endpoint(CC)
        .respond_with(ok(bearer("AT", json!(1000))))
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let source = TokenSource::new(client(&server, &clock), ClientCredentials::new());
    let mut current = source.token().await.unwrap();
    for round in 0..100 {
        clock.advance(Duration::from_secs(950));
        let hammers: Vec<_> = (0..2)
            .map(|_| {
                let (source, old) = (source.clone(), current.clone());
                tokio::spawn(async move {
                    loop {
                        let token = source.token().await.unwrap();
                        if !token.same_as(&old) {
                            return token;
                        }
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for hammer in hammers {
            current = tokio::time::timeout(Duration::from_secs(5), hammer)
                .await
                .unwrap()
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert_eq!(request_count(&server).await, round + 2, "round {round}");
    }
}

#[tokio::test]
async fn a_second_source_renews_with_the_refresh_token_in_the_shared_store() {
    let server = MockServer::start().await;
    token_endpoint("refresh_token=RT-0")
        .respond_with(ok(bearer_with_refresh("AT-1", 100, "RT-1")))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    token_endpoint("refresh_token=RT-0")
        .respond_with(oauth_error(400, "invalid_grant"))
        .mount(&server)
        .await;
    token_endpoint("refresh_token=RT-1")
        .respond_with(ok(bearer_with_refresh("AT-2", 100, "RT-2")))
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let store = MemoryStore::new();
    let build = || {
        TokenSource::builder(client(&server, &clock), RefreshToken::new("RT-0"))
            .store(store.clone())
            .build()
    };
    let a = build();
    a.token().await.unwrap();

    // Like a process restart: a new source, the stored token expired, its refresh token alive.
    clock.advance(Duration::from_secs(100));
    let b = build();
    let renewed = b.token().await.unwrap();
    assert_eq!(access(&renewed), "AT-2");
    let sent = forms(&server).await;
    assert_eq!(sent[1]["refresh_token"], "RT-1");
}

/// A store that, like one that persists to disk, hands back a copy of what it saved.
#[derive(Debug)]
struct CopyingStore {
    clock: ManualClock,
    saved: Mutex<Option<(String, Option<String>, std::time::Instant)>>,
}

#[async_trait::async_trait]
impl TokenStore for CopyingStore {
    async fn load(&self, _: &oauth_layer::store::CacheKey) -> oauth_layer::Result<Option<Token>> {
        use oauth_layer::clock::Clock;
        let saved = self.saved.lock().unwrap().clone();
        Ok(saved.map(|(access, refresh, expires_at)| {
            let left = expires_at.saturating_duration_since(self.clock.now());
            let mut copy = Token::builder(access).expires_in(left);
            if let Some(refresh) = refresh {
                copy = copy.refresh_token(refresh);
            }
            copy.build(&self.clock).unwrap()
        }))
    }

    async fn save(
        &self,
        _: &oauth_layer::store::CacheKey,
        token: &Token,
    ) -> oauth_layer::Result<()> {
        let saved = (
            access(token).to_owned(),
            refresh_of(token).map(str::to_owned),
            token.expires_at(),
        );
        *self.saved.lock().unwrap() = Some(saved);
        Ok(())
    }

    async fn delete(&self, _: &oauth_layer::store::CacheKey) -> oauth_layer::Result<()> {
        *self.saved.lock().unwrap() = None;
        Ok(())
    }
}

#[tokio::test]
async fn an_invalidated_token_is_not_brought_back_from_a_store_that_returns_copies() {
    let server = MockServer::start().await;
    token_endpoint(CC)
        .respond_with(ok(bearer("AT-1", json!(3600))))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    token_endpoint(CC)
        .respond_with(ok(bearer("AT-2", json!(3600))))
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let store = CopyingStore {
        clock: clock.clone(),
        saved: Mutex::new(None),
    };
    let source = TokenSource::builder(client(&server, &clock), ClientCredentials::new())
        .store(store)
        .build();
    let rejected = source.token().await.unwrap();

    assert!(source.invalidate(&rejected));
    assert_eq!(access(&source.token().await.unwrap()), "AT-2");
    assert_eq!(request_count(&server).await, 2);
}

#[tokio::test]
async fn identities_keep_tokens_of_one_client_apart_in_a_shared_store() {
    let server = MockServer::start().await;
    token_endpoint("grant_type=client_credentials")
        .respond_with(ok(bearer("shared", json!(3600))))
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let store = MemoryStore::new();
    let source = |identity: &str| {
        TokenSource::builder(client(&server, &clock), ClientCredentials::new())
            .store(store.clone())
            .identity(identity)
            .build()
    };
    let (alice, bob, alice_again) = (source("alice"), source("bob"), source("alice"));
    assert_ne!(alice.cache_key(), bob.cache_key());
    assert_eq!(alice.cache_key(), alice_again.cache_key());

    alice.token().await.unwrap();
    alice_again.token().await.unwrap();
    assert_eq!(
        request_count(&server).await,
        1,
        "alice's second source shares her token"
    );
    bob.token().await.unwrap();
    assert_eq!(request_count(&server).await, 2, "bob gets his own");
}
