//! Token exchange (RFC 8693, SECURITY.md rule 42) against a wiremock token endpoint: the exact
//! form, chained sources, actor tokens, a required `issued_token_type`, `N_A` tokens that are
//! never attached, and cache keys that tell subjects apart without holding them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use oauth_layer::clock::ManualClock;
use oauth_layer::flow::{ClientCredentials, Flow, SubjectToken, TokenExchange};
use oauth_layer::{Error, OAuthClient, OAuthLayer, RetryPolicy, TokenSource};
use serde_json::{Value, json};
use tower::{ServiceBuilder, ServiceExt};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, Request as Seen, ResponseTemplate};

const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
const EXCHANGE: &str = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange";
const SUBJECT: &str = "subject-S3CRET-jwt";

fn client(server: &MockServer, clock: &ManualClock) -> OAuthClient {
    OAuthClient::builder("exchanger")
        .secret("exchanger-secret")
        .token_url(format!("{}/token", server.uri()))
        .clock(clock.clone())
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap()
}

fn form(request: &Seen) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

fn field(request: &Seen, name: &str) -> Option<String> {
    form(request)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn exchanged(access_token: &str) -> Value {
    json!({
        "access_token": access_token,
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": "Bearer",
        "expires_in": 60,
    })
}

/// Answers token exchanges with `x-<subject_token>`, so the subject each exchange used shows in
/// the token it returns.
async fn echoing_exchange(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains(EXCHANGE))
        .respond_with(|req: &Seen| {
            let subject = field(req, "subject_token").unwrap();
            ResponseTemplate::new(200).set_body_json(exchanged(&format!("x-{subject}")))
        })
        .mount(server)
        .await;
}

/// Answers client credentials requests with `cc-1`, `cc-2`... living 60 s.
async fn numbered_client_credentials(server: &MockServer) -> Arc<AtomicUsize> {
    let issued = Arc::new(AtomicUsize::new(0));
    let counter = issued.clone();
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=client_credentials"))
        .respond_with(move |_: &Seen| {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            ResponseTemplate::new(200).set_body_json(json!({
                "access_token": format!("cc-{n}"),
                "token_type": "Bearer",
                "expires_in": 60,
            }))
        })
        .mount(server)
        .await;
    issued
}

async fn exchange_requests(server: &MockServer) -> Vec<Seen> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| field(r, "grant_type").as_deref() == Some(GRANT))
        .collect()
}

#[tokio::test]
async fn exchange_sends_exactly_the_rfc_8693_form() {
    let server = MockServer::start().await;
    echoing_exchange(&server).await;
    let clock = ManualClock::new();
    let flow = TokenExchange::new(SubjectToken::fixed(SUBJECT, JWT_TYPE))
        .actor(SubjectToken::fixed("actor-S3CRET", ACCESS_TOKEN_TYPE))
        .requested_token_type(ACCESS_TOKEN_TYPE)
        .audience("https://a.example")
        .audience("https://b.example")
        .resource("https://api.example/orders")
        .resource("https://api.example/users")
        .scope("orders:read users:read");
    let source = TokenSource::new(client(&server, &clock), flow);

    let token = source.token().await.unwrap();

    assert_eq!(
        secrecy::ExposeSecret::expose_secret(token.access_token()),
        format!("x-{SUBJECT}")
    );
    assert_eq!(token.issued_token_type(), Some(ACCESS_TOKEN_TYPE));
    let requests = exchange_requests(&server).await;
    assert_eq!(requests.len(), 1);
    let expected: Vec<(String, String)> = [
        ("grant_type", GRANT),
        ("subject_token", SUBJECT),
        ("subject_token_type", JWT_TYPE),
        ("actor_token", "actor-S3CRET"),
        ("actor_token_type", ACCESS_TOKEN_TYPE),
        ("requested_token_type", ACCESS_TOKEN_TYPE),
        ("audience", "https://a.example"),
        ("audience", "https://b.example"),
        ("resource", "https://api.example/orders"),
        ("resource", "https://api.example/users"),
        ("scope", "orders:read users:read"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(form(&requests[0]), expected);
    // The client authenticates with Basic (its default with a secret), not in the form.
    let auth = requests[0].headers.get("authorization").unwrap();
    assert!(auth.to_str().unwrap().starts_with("Basic "));
}

#[tokio::test]
async fn a_chained_source_token_is_the_subject_and_follows_its_renewals() {
    let server = MockServer::start().await;
    echoing_exchange(&server).await;
    let issued = numbered_client_credentials(&server).await;
    let clock = ManualClock::new();
    let own = TokenSource::new(client(&server, &clock), ClientCredentials::new());
    let delegated = TokenSource::new(
        client(&server, &clock),
        TokenExchange::new(SubjectToken::source(own.clone())).audience("https://downstream"),
    );

    let first = delegated.token().await.unwrap();
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(first.access_token()),
        "x-cc-1"
    );

    // Both tokens expire; the first source renews, and the next exchange uses its new token.
    clock.advance(Duration::from_secs(120));
    let second = delegated.token().await.unwrap();
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(second.access_token()),
        "x-cc-2"
    );
    assert_eq!(issued.load(Ordering::SeqCst), 2);
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(own.token().await.unwrap().access_token()),
        "cc-2"
    );

    let requests = exchange_requests(&server).await;
    assert_eq!(requests.len(), 2);
    for (request, subject) in requests.iter().zip(["cc-1", "cc-2"]) {
        assert_eq!(field(request, "subject_token").as_deref(), Some(subject));
        assert_eq!(
            field(request, "subject_token_type").as_deref(),
            Some(ACCESS_TOKEN_TYPE)
        );
        assert_eq!(
            field(request, "audience").as_deref(),
            Some("https://downstream")
        );
    }
}

#[tokio::test]
async fn a_chained_source_can_be_the_actor() {
    let server = MockServer::start().await;
    echoing_exchange(&server).await;
    numbered_client_credentials(&server).await;
    let clock = ManualClock::new();
    let own = TokenSource::new(client(&server, &clock), ClientCredentials::new());
    let flow =
        TokenExchange::new(SubjectToken::fixed(SUBJECT, JWT_TYPE)).actor(SubjectToken::source(own));
    let source = TokenSource::new(client(&server, &clock), flow);

    source.token().await.unwrap();

    let requests = exchange_requests(&server).await;
    assert_eq!(
        field(&requests[0], "subject_token").as_deref(),
        Some(SUBJECT)
    );
    assert_eq!(field(&requests[0], "actor_token").as_deref(), Some("cc-1"));
    assert_eq!(
        field(&requests[0], "actor_token_type").as_deref(),
        Some(ACCESS_TOKEN_TYPE)
    );
}

#[tokio::test]
async fn a_chained_source_that_fails_fails_the_exchange_without_a_request() {
    let server = MockServer::start().await;
    echoing_exchange(&server).await;
    Mock::given(body_string_contains("grant_type=client_credentials"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"})))
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let own = TokenSource::new(client(&server, &clock), ClientCredentials::new());
    let delegated = TokenSource::new(
        client(&server, &clock),
        TokenExchange::new(SubjectToken::source(own)),
    );

    let err = delegated.token().await.unwrap_err();

    assert!(
        matches!(&err, Error::Server(e) if e.code.as_str() == "invalid_client"),
        "{err:?}"
    );
    assert!(exchange_requests(&server).await.is_empty());
}

#[tokio::test]
async fn a_response_without_issued_token_type_is_an_unexpected_response() {
    let server = MockServer::start().await;
    Mock::given(body_string_contains(EXCHANGE))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "exchanged-token",
            "token_type": "Bearer",
            "expires_in": 60,
        })))
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let source = TokenSource::new(
        client(&server, &clock),
        TokenExchange::new(SubjectToken::fixed(SUBJECT, JWT_TYPE)),
    );

    let err = source.token().await.unwrap_err();

    match &err {
        Error::UnexpectedResponse(e) => assert!(e.problem.contains("issued_token_type"), "{e}"),
        other => panic!("expected UnexpectedResponse, got {other:?}"),
    }
    assert!(source.cached().is_none());
    assert!(!err.to_string().contains("exchanged-token"));
}

#[tokio::test]
async fn an_n_a_token_is_refused_and_never_attached() {
    let server = MockServer::start().await;
    Mock::given(body_string_contains(EXCHANGE))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "not-an-access-token",
            "issued_token_type": "urn:ietf:params:oauth:token-type:saml2",
            "token_type": "N_A",
            "expires_in": 60,
        })))
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let source = TokenSource::new(
        client(&server, &clock),
        TokenExchange::new(SubjectToken::fixed(SUBJECT, JWT_TYPE))
            .requested_token_type("urn:ietf:params:oauth:token-type:saml2"),
    );
    let api_calls = Arc::new(AtomicUsize::new(0));
    let calls = api_calls.clone();
    let api = tower::service_fn(move |_: Request<Full<Bytes>>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, Infallible>(Response::new(String::new())) }
    });
    let svc = ServiceBuilder::new()
        .layer(OAuthLayer::from_source(source.clone()))
        .service(api);

    let err = source.token().await.unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedTokenType { token_type } if token_type == "N_A"),
        "{err:?}"
    );
    let request = Request::get("https://api.example/")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let err = svc.oneshot(request).await.unwrap_err();

    assert_eq!(api_calls.load(Ordering::SeqCst), 0, "no request went out");
    assert!(!err.to_string().contains("not-an-access-token"));
    assert!(source.cached().is_none());
}

#[test]
fn cache_keys_separate_subjects_and_audiences_without_holding_the_token() {
    let client = OAuthClient::builder("exchanger")
        .secret("exchanger-secret")
        .token_url("https://idp.example/token")
        .build()
        .unwrap();
    let key = |flow: TokenExchange| flow.cache_key(&client);
    let base = || TokenExchange::new(SubjectToken::fixed(SUBJECT, JWT_TYPE)).audience("https://a");

    assert_eq!(key(base()), key(base()));
    let other_subject = key(
        TokenExchange::new(SubjectToken::fixed("another-subject", JWT_TYPE)).audience("https://a"),
    );
    assert_ne!(key(base()), other_subject);
    assert_ne!(
        key(base()),
        key(TokenExchange::new(SubjectToken::fixed(SUBJECT, JWT_TYPE)).audience("https://b"))
    );
    assert_ne!(key(base()), key(base().resource("https://r")));
    assert_ne!(key(base()), key(base().requested_token_type(JWT_TYPE)));
    assert_ne!(key(base()), key(base().scope("read")));
    assert_ne!(
        key(base().actor(SubjectToken::fixed("actor-1", JWT_TYPE))),
        key(base().actor(SubjectToken::fixed("actor-2", JWT_TYPE)))
    );
    assert_ne!(
        key(base()),
        key(base().actor(SubjectToken::fixed("actor-1", JWT_TYPE)))
    );
    assert_eq!(key(base().scope("b a")), key(base().scope("a").scope("b")));

    let shown = format!("{:?} {:#?}", key(base()), key(base()));
    assert!(!shown.contains(SUBJECT), "{shown}");
    assert_eq!(key(base()).get("subject_token"), Some("[redacted]"));
    assert_eq!(key(base()).get("audience"), Some("https://a"));

    // A chained source takes part through its own cache key.
    let read = TokenSource::new(client.clone(), ClientCredentials::new().scope("read"));
    let write = TokenSource::new(client.clone(), ClientCredentials::new().scope("write"));
    let chained_read = key(TokenExchange::new(SubjectToken::source(read.clone())));
    assert_eq!(
        chained_read,
        key(TokenExchange::new(SubjectToken::source(read)))
    );
    assert_ne!(
        chained_read,
        key(TokenExchange::new(SubjectToken::source(write)))
    );
    assert_eq!(
        chained_read.get("subject_token_type"),
        Some(ACCESS_TOKEN_TYPE)
    );
}

#[tokio::test]
async fn the_subject_token_never_shows_in_debug_or_errors() {
    let server = MockServer::start().await;
    Mock::given(body_string_contains(EXCHANGE))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_request",
            "error_description": format!("subject_token {SUBJECT} is not acceptable"),
        })))
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let flow = TokenExchange::new(SubjectToken::fixed(SUBJECT, JWT_TYPE))
        .actor(SubjectToken::fixed("actor-S3CRET", JWT_TYPE));
    let source = TokenSource::new(client(&server, &clock), flow.clone());

    let err = source.token().await.unwrap_err();

    assert!(matches!(&err, Error::Server(_)), "{err:?}");
    let shown = format!("{err} {err:?} {flow:?} {source:?}");
    assert!(!shown.contains("S3CRET"), "{shown}");
    assert!(
        shown.contains(JWT_TYPE),
        "token types are not secret: {shown}"
    );
}
