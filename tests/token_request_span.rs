//! Each token request runs in a `tracing` span naming the grant and the endpoint (without the
//! URL's query), and saying how it ended; nothing in the span carries a secret. Alone in its
//! test binary, so that no test without a subscriber on another thread races `tracing`'s
//! per-call-site cache of who listens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::logs::Captured;
use oauth_layer::clock::ManualClock;
use oauth_layer::flow::ClientCredentials;
use oauth_layer::{OAuthClient, RetryPolicy, TokenSource};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "span-SENTINEL-SECRET";

fn client(server: &MockServer, clock: &ManualClock, query: &str) -> OAuthClient {
    OAuthClient::builder("span-test")
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

#[tokio::test]
async fn each_token_request_runs_in_a_span_with_the_grant_and_endpoint_and_no_secret() {
    let server = MockServer::start().await;
    answer(&server, token("AT-SENTINEL-TOKEN", 1000), 1).await;
    answer(
        &server,
        ResponseTemplate::new(400).set_body_json(json!({ "error": "invalid_client" })),
        1,
    )
    .await;
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer({
            let captured = captured.clone();
            move || captured.clone()
        })
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let clock = ManualClock::new();
    let source = TokenSource::new(
        client(&server, &clock, "?api_key=SENTINEL-QUERY"),
        ClientCredentials::new(),
    );
    source.token().await.unwrap();
    clock.advance(Duration::from_secs(2000));
    assert!(source.token().await.is_err());

    let text = captured.text();
    let endpoint = format!("{}/token", server.uri());
    let opened = format!("oauth.token_request{{grant_type=client_credentials endpoint={endpoint}");
    assert!(text.contains(&opened), "{text}");
    assert!(
        text.contains("outcome=\"success\"") || text.contains("outcome=success"),
        "{text}"
    );
    assert!(
        text.contains("outcome=\"oauth_error\"") || text.contains("outcome=oauth_error"),
        "{text}"
    );
    // The span and everything logged inside it. (The source's own `new token` event prints
    // its cache key, whose `server` part is the configured token URL, query included: not
    // this span's business, and left as it is.)
    for line in text.lines().filter(|l| l.contains("oauth.token_request")) {
        assert!(!line.contains("SENTINEL"), "{line}");
    }
}
