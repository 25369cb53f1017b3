//! What a token source tells operators, through the public API: the renewal hook reports every
//! renewal's outcome (failures included, background or not). The token request span is in
//! `tests/token_request_span.rs`, alone in its binary: `tracing` caches per call site whether
//! anyone listens, and a test without a subscriber on another thread can race it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use oauth_layer::clock::{Clock, ManualClock};
use oauth_layer::flow::ClientCredentials;
use oauth_layer::{OAuthClient, RenewalOutcome, RetryPolicy, TokenSource};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "observability-SENTINEL-SECRET";

fn client(server: &MockServer, clock: &ManualClock, query: &str) -> OAuthClient {
    OAuthClient::builder("observability-test")
        .secret(SECRET)
        .token_url(format!("{}/token{query}", server.uri()))
        .clock(clock.clone())
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap()
}

async fn answer(server: &MockServer, template: ResponseTemplate, times: u64) {
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(template)
        .up_to_n_times(times)
        .mount(server)
        .await;
}

fn token(access_token: &str, expires_in: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "access_token": access_token, "token_type": "Bearer", "expires_in": expires_in,
    }))
}

/// One line per outcome the hook saw.
type Seen = Arc<Mutex<Vec<String>>>;

fn recording_hook(seen: &Seen, clock: &ManualClock) -> impl Fn(&RenewalOutcome<'_>) + use<> {
    let seen = seen.clone();
    let clock = clock.clone();
    move |outcome| {
        let line = match outcome {
            RenewalOutcome::Renewed {
                expires_at,
                lifetime,
                background,
            } => {
                let left = expires_at
                    .duration_since(clock.now_utc())
                    .unwrap_or_default()
                    .as_secs();
                format!("renewed background={background} lifetime={lifetime:?} left~{left}")
            }
            RenewalOutcome::Failed {
                error,
                background,
                still_serving,
            } => format!(
                "failed background={background} still_serving={still_serving} error={error}"
            ),
            other => format!("{other:?}"),
        };
        seen.lock().unwrap().push(line);
    }
}

async fn until_seen(seen: &Seen, n: usize) -> Vec<String> {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let lines = seen.lock().unwrap().clone();
            if lines.len() >= n {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the hook saw fewer than {n} renewals: {seen:?}"))
}

#[tokio::test]
async fn the_renewal_hook_reports_successes_and_failures_background_or_waited_for() {
    let server = MockServer::start().await;
    answer(&server, token("AT-1", 1000), 1).await;
    answer(&server, ResponseTemplate::new(503), 1).await;
    answer(&server, token("AT-2", 1000), 1).await;
    answer(
        &server,
        ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_client", "error_description": format!("bad {SECRET}"),
        })),
        1,
    )
    .await;
    let clock = ManualClock::new();
    let seen: Seen = Arc::default();
    let source = TokenSource::builder(client(&server, &clock, ""), ClientCredentials::new())
        .on_renewal(recording_hook(&seen, &clock))
        .failure_memory(Duration::from_secs(1))
        .build();

    source.token().await.unwrap();
    assert_eq!(
        until_seen(&seen, 1).await,
        ["renewed background=false lifetime=1000s left~1000"]
    );

    // In the refresh window (from 870 s) the background renewal meets a 503: callers keep AT-1.
    clock.advance(Duration::from_secs(905));
    source.token().await.unwrap();
    let lines = until_seen(&seen, 2).await;
    assert!(
        lines[1].starts_with("failed background=true still_serving=true error="),
        "{lines:?}"
    );

    // After the failure memory, the next background renewal succeeds.
    clock.advance(Duration::from_secs(2));
    source.token().await.unwrap();
    let lines = until_seen(&seen, 3).await;
    assert_eq!(lines[2], "renewed background=true lifetime=1000s left~1000");

    // Past the new token's expiry the server refuses the client: callers wait, and get it.
    clock.advance(Duration::from_secs(1000));
    assert!(source.token().await.is_err());
    let lines = until_seen(&seen, 4).await;
    assert!(
        lines[3].starts_with("failed background=false still_serving=false error="),
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| !l.contains("SENTINEL")), "{lines:?}");
}
