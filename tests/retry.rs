//! Retries at the token endpoint (SECURITY.md rule 23): `Retry-After` honoured up to a cap,
//! bounded backoff only for grants that can be minted again, an authorization code never sent
//! twice, a refresh token not resent blindly. Time is a `ManualClock`, so nothing really waits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use http::StatusCode;
use oauth_layer::clock::ManualClock;
use oauth_layer::flow::{ClientCredentials, Flow};
use oauth_layer::{
    Action, Error, ErrorCode, OAuthClient, OAuthClientBuilder, Resend, ResponseError, RetryPolicy,
    Token, TokenRequest, TransportError, TransportErrorKind,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "access_token": "AT-after-retry",
        "token_type": "Bearer",
        "expires_in": 3600,
    }))
}

fn unavailable(retry_after: &str) -> ResponseTemplate {
    ResponseTemplate::new(503)
        .insert_header("retry-after", retry_after)
        .set_body_raw("<html>Service Unavailable</html>", "text/html")
}

fn internal_error() -> ResponseTemplate {
    ResponseTemplate::new(500).set_body_raw("<html>Internal Server Error</html>", "text/html")
}

/// A token endpoint that answers with `failures` in order, each once, then `then` forever.
async fn endpoint(failures: Vec<ResponseTemplate>, then: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    for failure in failures {
        Mock::given(method("POST"))
            .respond_with(failure)
            .up_to_n_times(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("POST"))
        .respond_with(then)
        .mount(&server)
        .await;
    server
}

fn client(server: &MockServer, clock: &ManualClock) -> OAuthClient {
    client_with(server, clock, |c| c)
}

/// The client of [`client`], with settings changed by `change`.
fn client_with(
    server: &MockServer,
    clock: &ManualClock,
    change: impl FnOnce(OAuthClientBuilder) -> OAuthClientBuilder,
) -> OAuthClient {
    change(
        OAuthClient::builder("retry-client")
            .secret("retry-secret")
            .clock(clock.clone())
            .token_url(format!("{}/token", server.uri())),
    )
    .build()
    .unwrap()
}

/// The client of [`client`] waiting each backoff bound in full (no jitter), so that the waits
/// are exact.
fn steady_client(server: &MockServer, clock: &ManualClock) -> OAuthClient {
    client_with(server, clock, |c| {
        c.retry_policy(RetryPolicy::default().without_jitter())
    })
}

async fn requests(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

async fn client_credentials(client: &OAuthClient) -> Result<Token, Error> {
    ClientCredentials::new().scope("api").fetch(client).await
}

fn status_of(result: &Result<Token, Error>) -> Option<StatusCode> {
    match result {
        Err(Error::UnexpectedResponse(ResponseError { status, .. })) => *status,
        Err(Error::Server(e)) => Some(e.status),
        other => panic!("expected an error response, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Retry-After.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn client_credentials_waits_for_retry_after_then_succeeds() {
    let server = endpoint(vec![unavailable("7")], ok()).await;
    let clock = ManualClock::new();

    let token = client_credentials(&client(&server, &clock)).await.unwrap();

    assert_eq!(token.access_token().expose_secret(), "AT-after-retry");
    assert_eq!(requests(&server).await, 2);
    assert_eq!(clock.elapsed(), Duration::from_secs(7));
}

#[tokio::test]
async fn too_many_requests_with_retry_after_is_honoured() {
    let too_many = ResponseTemplate::new(429)
        .insert_header("retry-after", "3")
        .set_body_json(json!({ "error": "slow_down" }));
    let server = endpoint(vec![too_many], ok()).await;
    let clock = ManualClock::new();

    client_credentials(&client(&server, &clock)).await.unwrap();

    assert_eq!(requests(&server).await, 2);
    assert_eq!(clock.elapsed(), Duration::from_secs(3));
}

#[tokio::test]
async fn retry_after_as_an_http_date_is_honoured() {
    let when = std::time::SystemTime::now() + Duration::from_secs(10);
    let server = endpoint(vec![unavailable(&httpdate::fmt_http_date(when))], ok()).await;
    let clock = ManualClock::new();

    client_credentials(&client(&server, &clock)).await.unwrap();

    assert_eq!(requests(&server).await, 2);
    let waited = clock.elapsed();
    assert!(
        waited >= Duration::from_secs(8) && waited <= Duration::from_secs(10),
        "{waited:?}"
    );
}

/// A `Retry-After` date is read against the client's clock, not the system's: on a clock an
/// hour ahead, a date an hour and ten seconds from now is ten seconds away (on the system's
/// clock it would be past the 30 s cap and returned as an error).
#[tokio::test]
async fn retry_after_as_an_http_date_is_read_on_the_clients_clock() {
    let when = std::time::SystemTime::now() + Duration::from_secs(3600 + 10);
    let server = endpoint(vec![unavailable(&httpdate::fmt_http_date(when))], ok()).await;
    let clock = ManualClock::new();
    clock.advance(Duration::from_secs(3600));

    client_credentials(&client(&server, &clock)).await.unwrap();

    assert_eq!(requests(&server).await, 2);
    let waited = clock.elapsed() - Duration::from_secs(3600);
    assert!(
        waited >= Duration::from_secs(8) && waited <= Duration::from_secs(10),
        "{waited:?}"
    );
}

#[tokio::test]
async fn retry_after_above_the_cap_is_returned_to_the_caller_without_waiting() {
    let server = endpoint(vec![], unavailable("120")).await;
    let clock = ManualClock::new();
    assert_eq!(
        RetryPolicy::default().max_retry_after,
        Duration::from_secs(30)
    );

    let result = client_credentials(&client(&server, &clock)).await;

    assert_eq!(requests(&server).await, 1);
    assert_eq!(clock.elapsed(), Duration::ZERO);
    assert_eq!(status_of(&result), Some(StatusCode::SERVICE_UNAVAILABLE));
    let err = result.unwrap_err();
    assert!(err.is_transient());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));
}

#[tokio::test]
async fn the_retry_after_cap_is_configurable() {
    let server = endpoint(vec![unavailable("7")], ok()).await;
    let clock = ManualClock::new();
    let mut policy = RetryPolicy::default();
    policy.max_retry_after = Duration::from_secs(5);

    let result =
        client_credentials(&client_with(&server, &clock, |c| c.retry_policy(policy))).await;

    assert_eq!(requests(&server).await, 1);
    assert_eq!(clock.elapsed(), Duration::ZERO);
    assert_eq!(
        result.unwrap_err().retry_after(),
        Some(Duration::from_secs(7))
    );
}

// ---------------------------------------------------------------------------------------------
// Backoff for grants that can be minted again.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn client_credentials_retries_5xx_with_backoff() {
    let server = endpoint(vec![internal_error(), internal_error()], ok()).await;
    let clock = ManualClock::new();

    let token = client_credentials(&steady_client(&server, &clock))
        .await
        .unwrap();

    assert_eq!(token.access_token().expose_secret(), "AT-after-retry");
    assert_eq!(requests(&server).await, 3);
    // 250 ms, then 500 ms.
    assert_eq!(clock.elapsed(), Duration::from_millis(750));
}

#[tokio::test]
async fn client_credentials_gives_up_after_max_attempts() {
    let server = endpoint(vec![], internal_error()).await;
    let clock = ManualClock::new();

    let result = client_credentials(&client(&server, &clock)).await;

    assert_eq!(requests(&server).await, 3);
    assert_eq!(status_of(&result), Some(StatusCode::INTERNAL_SERVER_ERROR));
    assert!(matches!(
        result,
        Err(Error::UnexpectedResponse(ResponseError { ref problem, .. })) if problem == "body is not JSON"
    ));
}

#[tokio::test]
async fn backoff_doubles_up_to_its_cap() {
    let server = endpoint(vec![], internal_error()).await;
    let clock = ManualClock::new();
    let policy = RetryPolicy::default().attempts(8).without_jitter();

    client_credentials(&client_with(&server, &clock, |c| c.retry_policy(policy)))
        .await
        .unwrap_err();

    assert_eq!(requests(&server).await, 8);
    // 0.25 + 0.5 + 1 + 2 + 4 + 5 + 5 seconds.
    assert_eq!(clock.elapsed(), Duration::from_millis(17_750));
}

// ---------------------------------------------------------------------------------------------
// Full jitter: each backoff is drawn from [0, its bound], so a fleet does not come back at once.
// ---------------------------------------------------------------------------------------------

/// The one wait of a client allowed two attempts against a server that always fails, the
/// client's randomness seeded with `seed` (or from the OS with `None`).
async fn first_retry_wait(server: &MockServer, seed: Option<u64>) -> Duration {
    let clock = ManualClock::new();
    let client = client_with(server, &clock, |c| {
        let c = c.retry_policy(RetryPolicy::default().attempts(2));
        match seed {
            Some(seed) => c.jitter_seed(seed),
            None => c,
        }
    });
    client_credentials(&client).await.unwrap_err();
    clock.elapsed()
}

#[tokio::test]
async fn full_jitter_spreads_a_fleets_first_retry_over_the_whole_window() {
    let server = endpoint(vec![], internal_error()).await;
    let window = RetryPolicy::default().initial_backoff;
    assert_eq!(window, Duration::from_millis(250));

    let mut waits = Vec::new();
    for seed in 0..100 {
        waits.push(first_retry_wait(&server, Some(seed)).await);
    }

    assert_eq!(requests(&server).await, 200, "every client retried once");
    assert!(waits.iter().all(|w| *w <= window), "{waits:?}");
    let mut distinct = waits.clone();
    distinct.sort();
    distinct.dedup();
    assert!(distinct.len() >= 95, "the clients wait apart: {waits:?}");
    // Each quarter of the window holds some of the fleet: spread, not bunched at one end.
    for quarter in 0..4u32 {
        let (low, high) = (window * quarter / 4, window * (quarter + 1) / 4);
        let inside = waits.iter().filter(|w| low <= **w && **w < high).count();
        assert!(
            (10..=40).contains(&inside),
            "{inside} of 100 waits in [{low:?}, {high:?}): {waits:?}"
        );
    }
}

#[tokio::test]
async fn the_same_seed_draws_the_same_waits() {
    let server = endpoint(vec![], internal_error()).await;
    let a = first_retry_wait(&server, Some(7)).await;
    assert_eq!(a, first_retry_wait(&server, Some(7)).await);
    assert_ne!(a, first_retry_wait(&server, Some(8)).await);
}

#[tokio::test]
async fn unseeded_clients_do_not_retry_in_step() {
    let server = endpoint(vec![], internal_error()).await;
    let mut waits = Vec::new();
    for _ in 0..20 {
        waits.push(first_retry_wait(&server, None).await);
    }
    waits.sort();
    waits.dedup();
    assert!(waits.len() >= 15, "{waits:?}");
}

#[tokio::test]
async fn jittered_backoff_stays_under_the_doubling_bounds() {
    let server = endpoint(vec![], internal_error()).await;
    for seed in 0..20 {
        let clock = ManualClock::new();
        let policy = RetryPolicy::default().attempts(8);
        let client = client_with(&server, &clock, |c| {
            c.retry_policy(policy).jitter_seed(seed)
        });
        client_credentials(&client).await.unwrap_err();
        // At most 0.25 + 0.5 + 1 + 2 + 4 + 5 + 5 seconds, the waits without jitter.
        assert!(clock.elapsed() <= Duration::from_millis(17_750));
    }
    assert_eq!(requests(&server).await, 8 * 20);
}

#[tokio::test]
async fn retry_after_is_waited_exactly_even_with_jitter() {
    let server = endpoint(vec![unavailable("7")], ok()).await;
    let clock = ManualClock::new();
    let client = client_with(&server, &clock, |c| c.jitter_seed(3));
    assert!(client.retry_policy().jitter);

    client_credentials(&client).await.unwrap();

    assert_eq!(clock.elapsed(), Duration::from_secs(7));
}

#[tokio::test]
async fn oauth_server_error_code_is_retried_for_client_credentials() {
    let server_error = ResponseTemplate::new(500).set_body_json(json!({ "error": "server_error" }));
    let server = endpoint(vec![server_error], ok()).await;
    let clock = ManualClock::new();

    client_credentials(&client(&server, &clock)).await.unwrap();

    assert_eq!(requests(&server).await, 2);
}

#[tokio::test]
async fn client_errors_are_never_retried() {
    for answer in [
        ResponseTemplate::new(400).set_body_json(json!({ "error": "invalid_scope" })),
        ResponseTemplate::new(401).set_body_json(json!({ "error": "invalid_client" })),
        ResponseTemplate::new(404).set_body_raw("not found", "text/plain"),
    ] {
        let server = endpoint(vec![], answer).await;
        let clock = ManualClock::new();

        let result = client_credentials(&client(&server, &clock)).await;

        assert!(result.is_err());
        assert_eq!(requests(&server).await, 1, "{result:?}");
        assert_eq!(clock.elapsed(), Duration::ZERO);
    }
}

#[tokio::test]
async fn a_fresh_request_is_built_for_each_attempt() {
    let server = endpoint(vec![internal_error()], ok()).await;
    let clock = ManualClock::new();

    client(&server, &clock)
        .request_token_with(|attempt| {
            Ok(
                TokenRequest::new("urn:ietf:params:oauth:grant-type:jwt-bearer")
                    .secret_param("assertion", format!("assertion-jti-{attempt}"))
                    .resend(Resend::Always),
            )
        })
        .await
        .unwrap();

    let bodies: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| String::from_utf8(r.body.clone()).unwrap())
        .collect();
    assert_eq!(bodies.len(), 2);
    assert!(
        bodies[0].contains("assertion=assertion-jti-1"),
        "{}",
        bodies[0]
    );
    assert!(
        bodies[1].contains("assertion=assertion-jti-2"),
        "{}",
        bodies[1]
    );
}

// ---------------------------------------------------------------------------------------------
// Grants that must not be replayed.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn refresh_is_not_resent_after_a_500() {
    for answer in [
        internal_error(),
        ResponseTemplate::new(500).set_body_json(json!({ "error": "server_error" })),
        ResponseTemplate::new(502).set_body_raw("bad gateway", "text/plain"),
    ] {
        let server = endpoint(vec![answer], ok()).await;
        let clock = ManualClock::new();

        let result = client(&server, &clock)
            .refresh(&SecretString::from("RT-maybe-rotated"))
            .await;

        assert!(result.as_ref().unwrap_err().is_transient(), "{result:?}");
        assert_eq!(requests(&server).await, 1);
        assert_eq!(clock.elapsed(), Duration::ZERO);
    }
}

#[tokio::test]
async fn refresh_is_not_resent_after_a_timeout() {
    let server = endpoint(vec![], ok().set_delay(Duration::from_millis(800))).await;
    let clock = ManualClock::new();

    let result = client_with(&server, &clock, |c| c.timeout(Duration::from_millis(100)))
        .refresh(&SecretString::from("RT-maybe-rotated"))
        .await;

    assert!(matches!(
        result,
        Err(Error::Transport(TransportError {
            kind: TransportErrorKind::Timeout,
            ..
        }))
    ));
    assert_eq!(requests(&server).await, 1);
}

#[tokio::test]
async fn refresh_is_retried_after_a_503() {
    let server = endpoint(vec![unavailable("2")], ok()).await;
    let clock = ManualClock::new();

    let token = client(&server, &clock)
        .refresh(&SecretString::from("RT-not-processed"))
        .await
        .unwrap();

    assert_eq!(token.access_token().expose_secret(), "AT-after-retry");
    assert_eq!(
        token.refresh_token().unwrap().expose_secret(),
        "RT-not-processed"
    );
    assert_eq!(requests(&server).await, 2);
    assert_eq!(clock.elapsed(), Duration::from_secs(2));
}

#[tokio::test]
async fn refresh_rejected_with_invalid_grant_is_sent_once() {
    let rejected = ResponseTemplate::new(400).set_body_json(json!({ "error": "invalid_grant" }));
    let server = endpoint(vec![], rejected).await;
    let clock = ManualClock::new();

    let result = client(&server, &clock)
        .refresh(&SecretString::from("RT-revoked"))
        .await;

    assert!(matches!(
        &result,
        Err(Error::Server(e)) if e.code == ErrorCode::InvalidGrant
    ));
    assert_eq!(requests(&server).await, 1);
}

/// A definitive OAuth error is not retried because of the status it came with: a 503 or 429
/// carrying `invalid_client` gets the same answer however often it is sent.
#[tokio::test]
async fn a_definitive_oauth_error_on_a_503_or_429_is_sent_once() {
    for status in [503, 429] {
        let rejected = ResponseTemplate::new(status)
            .insert_header("retry-after", "1")
            .set_body_json(json!({ "error": "invalid_client" }));
        let server = endpoint(vec![], rejected).await;
        let clock = ManualClock::new();

        let result = client_credentials(&client(&server, &clock)).await;

        assert!(
            matches!(&result, Err(Error::Server(e)) if e.code == ErrorCode::InvalidClient),
            "{result:?}"
        );
        assert_eq!(result.unwrap_err().action(), Action::FixConfiguration);
        assert_eq!(requests(&server).await, 1, "status {status}");
        assert_eq!(clock.elapsed(), Duration::ZERO);
    }
}

/// `temporarily_unavailable` on a 503 is retried as before.
#[tokio::test]
async fn temporarily_unavailable_is_retried() {
    let busy = ResponseTemplate::new(503)
        .insert_header("retry-after", "2")
        .set_body_json(json!({ "error": "temporarily_unavailable" }));
    let server = endpoint(vec![busy], ok()).await;
    let clock = ManualClock::new();

    client_credentials(&client(&server, &clock)).await.unwrap();

    assert_eq!(requests(&server).await, 2);
    assert_eq!(clock.elapsed(), Duration::from_secs(2));
}

#[tokio::test]
async fn an_authorization_code_is_never_sent_twice() {
    for answer in [unavailable("1"), internal_error()] {
        let server = endpoint(vec![answer], ok()).await;
        let clock = ManualClock::new();
        let request = TokenRequest::new("authorization_code")
            .secret_param("code", "single-use-code")
            .param("redirect_uri", "http://127.0.0.1:8080/callback");

        let result = client(&server, &clock).request_token(request).await;

        assert!(result.is_err());
        assert_eq!(requests(&server).await, 1);
        assert_eq!(clock.elapsed(), Duration::ZERO);
    }
}

#[tokio::test]
async fn explicit_resend_never_is_sent_once_even_on_503() {
    let server = endpoint(vec![unavailable("1")], ok()).await;
    let clock = ManualClock::new();
    let request = TokenRequest::new("client_credentials").resend(Resend::Never);

    let result = client(&server, &clock).request_token(request).await;

    assert_eq!(status_of(&result), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(requests(&server).await, 1);
}

#[tokio::test]
async fn retry_policy_none_sends_once() {
    let server = endpoint(vec![unavailable("1")], ok()).await;
    let clock = ManualClock::new();

    let result = client_credentials(&client_with(&server, &clock, |c| {
        c.retry_policy(RetryPolicy::none())
    }))
    .await;

    assert_eq!(status_of(&result), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(requests(&server).await, 1);
    assert_eq!(clock.elapsed(), Duration::ZERO);
}

// ---------------------------------------------------------------------------------------------
// Connection failures.
// ---------------------------------------------------------------------------------------------

/// A loopback URL nobody listens on.
async fn closed_port_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/token")
}

fn connect_error(result: &Result<Token, Error>) -> bool {
    matches!(
        result,
        Err(Error::Transport(TransportError {
            kind: TransportErrorKind::Refused,
            ..
        }))
    )
}

#[tokio::test]
async fn connection_refused_is_a_connect_error_after_bounded_attempts() {
    let clock = ManualClock::new();
    let client = OAuthClient::builder("retry-client")
        .clock(clock.clone())
        .retry_policy(RetryPolicy::default().without_jitter())
        .token_url(closed_port_url().await)
        .build()
        .unwrap();

    let result = client_credentials(&client).await;

    assert!(connect_error(&result), "{result:?}");
    assert!(result.unwrap_err().is_transient());
    // Three attempts: two backoffs of 250 ms and 500 ms.
    assert_eq!(clock.elapsed(), Duration::from_millis(750));
}

#[tokio::test]
async fn refresh_is_retried_when_the_connection_was_never_made() {
    let clock = ManualClock::new();
    let client = OAuthClient::builder("retry-client")
        .clock(clock.clone())
        .retry_policy(RetryPolicy::default().without_jitter())
        .token_url(closed_port_url().await)
        .build()
        .unwrap();

    let result = client.refresh(&SecretString::from("RT-never-sent")).await;

    assert!(connect_error(&result), "{result:?}");
    assert_eq!(clock.elapsed(), Duration::from_millis(750));
}
