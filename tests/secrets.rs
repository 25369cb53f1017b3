//! SECURITY.md rule 38: tokens, secrets and passwords never appear in `Debug`, `Display`, error
//! messages or `tracing` output, even when a hostile server echoes them back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::logs::Captured;
use std::io;
use std::sync::Once;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use oauth_layer::clock::ManualClock;
use oauth_layer::flow::{ClientCredentials, Flow, Password, RefreshToken};
use oauth_layer::store::{MemoryStore, TokenStore};
use oauth_layer::{AuthMethod, Error, OAuthClient, Resend, RetryPolicy, Token, TokenRequest};
use oauth_layer::{TokenSource, TokenSourceBuilder};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CLIENT_ID: &str = "secrets-test";
const CLIENT_SECRET: &str = "SENTINEL-SECRET-1234";
const PASSWORD: &str = "SENTINEL-PASSWORD-5678";
const START_REFRESH: &str = "SENTINEL-REFRESH-0000";
const REFRESH_1: &str = "SENTINEL-REFRESH-9012";
const REFRESH_2: &str = "SENTINEL-REFRESH-3344";
const ACCESS_1: &str = "SENTINEL-ACCESS-3456";
const ACCESS_2: &str = "SENTINEL-ACCESS-7788";
const ID_TOKEN: &str = "SENTINEL-IDTOKEN-1111";

/// Fails if `text` shows any sentinel, or the client credentials in their Basic form.
fn assert_clean(what: &str, text: &str) {
    let basic = STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    for needle in ["SENTINEL", &basic] {
        assert!(
            !text.contains(needle),
            "{what} shows a secret ({needle}):\n{text}"
        );
    }
}

fn assert_error_clean(what: &str, err: &Error) {
    assert_clean(&format!("{what} (Display)"), &err.to_string());
    assert_clean(&format!("{what} (Debug)"), &format!("{err:?}"));
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        assert_clean(&format!("{what} (cause)"), &cause.to_string());
        source = cause.source();
    }
}

fn client(server: &MockServer, clock: &ManualClock) -> OAuthClient {
    OAuthClient::builder(CLIENT_ID)
        .secret(CLIENT_SECRET)
        .token_url(format!("{}/token", server.uri()))
        .clock(clock.clone())
        .build()
        .unwrap()
}

fn token_endpoint(form_part: &str) -> wiremock::MockBuilder {
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains(form_part))
}

fn issued(access_token: &str, refresh_token: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": 1000,
        "refresh_token": refresh_token,
        "id_token": ID_TOKEN,
    }))
}

/// An HTML error page that echoes `echoed` (what the request sent).
fn html_echo(echoed: &[&str]) -> ResponseTemplate {
    ResponseTemplate::new(500).set_body_raw(
        format!(
            "<html><body><h1>Login failed</h1><p>you sent: {}</p></body></html>",
            echoed.join(", ")
        ),
        "text/html",
    )
}

/// An OAuth error whose description and URI echo `echoed` (what the request sent).
fn json_error_echo(code: &str, echoed: &[&str]) -> ResponseTemplate {
    ResponseTemplate::new(400).set_body_json(json!({
        "error": code,
        "error_description": format!("rejected: {}", echoed.join(" and ")),
        "error_uri": format!("https://idp.example/errors?sent={}", echoed.join("+")),
    }))
}

#[test]
fn debug_output_of_every_public_type_hides_secrets() {
    let clock = ManualClock::new();
    let client = OAuthClient::builder(CLIENT_ID)
        .secret(CLIENT_SECRET)
        .auth_method(AuthMethod::ClientSecretPost)
        .token_url("https://idp.example/token")
        .clock(clock.clone())
        .build()
        .unwrap();
    let token = Token::builder(ACCESS_1)
        .expires_in(Duration::from_secs(600))
        .refresh_token(REFRESH_1)
        .id_token(ID_TOKEN)
        .scope("read")
        .build(&clock)
        .unwrap();
    let password = Password::new("alice", PASSWORD).scope("profile");
    let refresh = RefreshToken::new(START_REFRESH);
    let request = TokenRequest::new("password")
        .param("username", "alice")
        .secret_param("password", PASSWORD)
        .secret_param("refresh_token", REFRESH_1)
        .resend(Resend::Always);
    let store = MemoryStore::new();
    let key = refresh.cache_key(&client);
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(store.save(&key, &token))
        .unwrap();
    let builder: TokenSourceBuilder = TokenSource::builder(client.clone(), password.clone())
        .initial_token(token.clone())
        .store(store.clone());
    let builder_debug = format!("{builder:?}");
    let source = builder.build();
    let refresh_source = TokenSource::builder(client.clone(), RefreshToken::new(START_REFRESH))
        .initial_token(token.clone())
        .build();

    for (what, shown) in [
        ("OAuthClient", format!("{client:?}")),
        ("Token", format!("{token:?}")),
        ("Token (pretty)", format!("{token:#?}")),
        ("Token header", format!("{:?}", token.header_value())),
        (
            "Token secrets",
            format!("{:?} {:?}", token.access_token(), token.refresh_token()),
        ),
        ("Password flow", format!("{password:?}")),
        ("RefreshToken flow", format!("{refresh:?}")),
        (
            "ClientCredentials flow",
            format!("{:?}", ClientCredentials::new().scope("a")),
        ),
        ("TokenRequest", format!("{request:?}")),
        ("CacheKey", format!("{key:?} {key:#?}")),
        ("MemoryStore", format!("{store:?}")),
        ("TokenSourceBuilder", builder_debug),
        ("TokenSource", format!("{source:?}")),
        ("TokenSource (pretty)", format!("{source:#?}")),
        ("TokenSource (refresh flow)", format!("{refresh_source:?}")),
    ] {
        assert_clean(what, &shown);
    }
}

#[tokio::test]
async fn an_html_error_page_echoing_the_password_and_secret_is_redacted() {
    let server = MockServer::start().await;
    token_endpoint("grant_type=password")
        .respond_with(html_echo(&[PASSWORD, CLIENT_SECRET]))
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let client = client(&server, &clock)
        .to_builder()
        .auth_method(AuthMethod::ClientSecretPost)
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let source = TokenSource::new(client, Password::new("alice", PASSWORD));

    let err = source.token().await.unwrap_err();
    let Error::UnexpectedResponse(response) = &err else {
        panic!("expected an unexpected-response error, got {err:?}");
    };
    assert!(response.snippet.contains("Login failed"), "{err}");
    assert_error_clean("HTML error page", &err);
}

/// The Basic header's base64 form decodes to the secret: it is redacted like the secret.
#[tokio::test]
async fn an_error_page_echoing_the_basic_credentials_is_redacted() {
    let basic = STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    let server = MockServer::start().await;
    token_endpoint("grant_type=client_credentials")
        .respond_with(html_echo(&[&format!("Authorization: Basic {basic}")]))
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let source = TokenSource::new(
        client(&server, &clock)
            .to_builder()
            .retry_policy(RetryPolicy::none())
            .build()
            .unwrap(),
        ClientCredentials::new(),
    );

    let err = source.token().await.unwrap_err();
    assert_error_clean("page echoing the Authorization header", &err);
}

#[tokio::test]
async fn a_json_error_description_echoing_the_password_and_secret_is_redacted() {
    let server = MockServer::start().await;
    token_endpoint("grant_type=password")
        .respond_with(json_error_echo("invalid_grant", &[PASSWORD, CLIENT_SECRET]))
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let source = TokenSource::new(
        client(&server, &clock)
            .to_builder()
            .retry_policy(RetryPolicy::none())
            .build()
            .unwrap(),
        Password::new("alice", PASSWORD),
    );

    let err = source.token().await.unwrap_err();
    assert!(err.is_invalid_grant(), "{err:?}");
    let description = err.server_error().unwrap().description.as_deref().unwrap();
    assert!(description.contains("rejected"), "{description}");
    assert_error_clean("JSON error", &err);
}

#[tokio::test]
async fn errors_on_a_refresh_token_flow_never_echo_the_refresh_token() {
    let server = MockServer::start().await;
    token_endpoint(START_REFRESH)
        .respond_with(html_echo(&[START_REFRESH, CLIENT_SECRET]))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    token_endpoint(START_REFRESH)
        .respond_with(json_error_echo(
            "invalid_grant",
            &[START_REFRESH, CLIENT_SECRET],
        ))
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let client = client(&server, &clock)
        .to_builder()
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let source = TokenSource::builder(client, RefreshToken::new(START_REFRESH))
        .failure_memory(Duration::ZERO)
        .build();

    let html = source.token().await.unwrap_err();
    assert_error_clean("HTML error on refresh", &html);
    let rejected = source.token().await.unwrap_err();
    assert!(rejected.is_invalid_grant(), "{rejected:?}");
    assert_error_clean("invalid_grant on refresh", &rejected);
    let spent = source.token().await.unwrap_err();
    assert_error_clean("spent refresh flow", &spent);
}

#[tokio::test]
async fn unusable_token_responses_never_echo_the_access_token() {
    let bodies: [Value; 4] = [
        json!({ "access_token": format!("{ACCESS_1} has a space"), "token_type": "Bearer" }),
        json!({ "access_token": ACCESS_1, "token_type": "mac", "refresh_token": REFRESH_1 }),
        json!({ "access_token": ACCESS_1, "refresh_token": REFRESH_1 }),
        json!({ "error": "server_error", "access_token": ACCESS_1, "id_token": ID_TOKEN }),
    ];
    for body in bodies {
        let server = MockServer::start().await;
        token_endpoint("grant_type=client_credentials")
            .respond_with(ResponseTemplate::new(200).set_body_json(&body))
            .mount(&server)
            .await;
        let clock = ManualClock::new();
        let source = TokenSource::new(
            client(&server, &clock)
                .to_builder()
                .retry_policy(RetryPolicy::none())
                .build()
                .unwrap(),
            ClientCredentials::new(),
        );
        let err = source.token().await.unwrap_err();
        assert_error_clean(&format!("answer {body}"), &err);
    }
}

/// reqwest logs through the `log` crate: route those records into `tracing` (to whichever
/// subscriber is the default on the logging thread) once for the whole test binary.
fn forward_log_records() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(io::sink)
            .try_init();
    });
}

#[tokio::test(flavor = "current_thread")]
async fn trace_logs_of_a_full_run_never_show_secrets() {
    forward_log_records();
    let captured = Captured::default();
    let _default = captured.install(tracing::Level::TRACE);

    let server = MockServer::start().await;
    token_endpoint("grant_type=password")
        .respond_with(issued(ACCESS_1, REFRESH_1))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    token_endpoint("grant_type=password")
        .respond_with(html_echo(&[PASSWORD, CLIENT_SECRET]))
        .with_priority(2)
        .mount(&server)
        .await;
    token_endpoint(REFRESH_1)
        .respond_with(ResponseTemplate::new(503).set_body_string(format!("down {REFRESH_1}")))
        .up_to_n_times(3)
        .with_priority(1)
        .mount(&server)
        .await;
    token_endpoint(REFRESH_1)
        .respond_with(issued(ACCESS_2, REFRESH_2))
        .with_priority(2)
        .mount(&server)
        .await;
    token_endpoint(REFRESH_2)
        .respond_with(json_error_echo(
            "invalid_grant",
            &[REFRESH_2, CLIENT_SECRET],
        ))
        .mount(&server)
        .await;

    let clock = ManualClock::new();
    let store = MemoryStore::new();
    let source = TokenSource::builder(
        client(&server, &clock),
        Password::new("alice", PASSWORD).scope("profile"),
    )
    .store(store)
    .on_token_change(|token| tracing::info!(?token, "hook saw a new token"))
    .build();

    // Fetch with the password grant.
    let first = source.token().await.unwrap();
    tracing::trace!(?first, source = ?source, "first token");
    // Past the skew: the refresh gets three 503s (retried), the old token is kept.
    clock.advance(Duration::from_secs(975));
    assert!(source.token().await.unwrap().same_as(&first));
    // After the failure memory: the refresh succeeds and rotates the refresh token.
    clock.advance(Duration::from_secs(6));
    let second = source.token().await.unwrap();
    assert_ne!(second.access_token().expose_secret(), ACCESS_1);
    // A 401: the rotated refresh token is rejected, the password grant runs and fails with an
    // HTML page echoing everything.
    assert!(source.invalidate(&second));
    let err = source.token().await.unwrap_err();
    tracing::error!(error = %err, debug = ?err, "final error");
    assert_error_clean("final error", &err);

    let logs = captured.text();
    assert!(
        logs.contains("token request"),
        "the crate's own events were not captured:\n{logs}"
    );
    assert!(logs.contains("token renewal failed"), "{logs}");
    assert!(
        logs.contains("hyper_util::") && logs.contains("reqwest::"),
        "the HTTP stack's own events were not captured:\n{logs}"
    );
    assert_clean("TRACE output", &logs);
}
