//! Revocation (RFC 7009, SECURITY.md rule 39) and introspection (RFC 7662) against wiremock:
//! what is sent, what counts as success, and `TokenSource::revoke` purging every local copy
//! whatever the server answers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use oauth_layer::client::{Introspection, TokenTypeHint};
use oauth_layer::clock::ManualClock;
use oauth_layer::flow::ClientCredentials;
use oauth_layer::store::MemoryStore;
use oauth_layer::{AuthMethod, Error, ErrorCode, OAuthClient, RetryPolicy, TokenSource};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const TOKEN: &str = "revoke-me-S3CRET";

fn client(server: &MockServer, clock: &ManualClock) -> OAuthClient {
    OAuthClient::builder("revoker")
        .secret("revoker-secret")
        .token_url(format!("{}/token", server.uri()))
        .revocation_url(format!("{}/revoke", server.uri()))
        .introspection_url(format!("{}/introspect", server.uri()))
        .clock(clock.clone())
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap()
}

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

fn form(request: &Request) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn requests_to(server: &MockServer, endpoint: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == endpoint)
        .collect()
}

async fn revocation_answers(server: &MockServer, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path("/revoke"))
        .respond_with(response)
        .mount(server)
        .await;
}

/// A token endpoint issuing `at-1`/`rt-1`, `at-2`/`rt-2`... for any grant.
async fn token_endpoint(server: &MockServer) -> Arc<AtomicUsize> {
    let issued = Arc::new(AtomicUsize::new(0));
    let counter = issued.clone();
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(move |_: &Request| {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            ResponseTemplate::new(200).set_body_json(json!({
                "access_token": format!("at-{n}"),
                "refresh_token": format!("rt-{n}"),
                "token_type": "Bearer",
                "expires_in": 3600,
            }))
        })
        .mount(server)
        .await;
    issued
}

#[tokio::test]
async fn revoke_sends_the_token_its_hint_and_client_authentication() {
    let server = MockServer::start().await;
    revocation_answers(&server, ResponseTemplate::new(200)).await;
    let clock = ManualClock::new();

    client(&server, &clock)
        .revoke(&secret(TOKEN), TokenTypeHint::RefreshToken)
        .await
        .unwrap();
    client(&server, &clock)
        .to_builder()
        .auth_method(AuthMethod::ClientSecretPost)
        .build()
        .unwrap()
        .revoke(&secret(TOKEN), TokenTypeHint::AccessToken)
        .await
        .unwrap();

    let requests = requests_to(&server, "/revoke").await;
    assert_eq!(requests.len(), 2);
    assert_eq!(
        form(&requests[0]),
        pairs(&[("token", TOKEN), ("token_type_hint", "refresh_token")])
    );
    // client_secret_basic: base64("revoker:revoker-secret")
    assert_eq!(
        requests[0].headers.get("authorization").unwrap(),
        "Basic cmV2b2tlcjpyZXZva2VyLXNlY3JldA=="
    );
    assert_eq!(
        form(&requests[1]),
        pairs(&[
            ("token", TOKEN),
            ("token_type_hint", "access_token"),
            ("client_id", "revoker"),
            ("client_secret", "revoker-secret"),
        ])
    );
    assert!(requests[1].headers.get("authorization").is_none());
}

#[tokio::test]
async fn a_200_is_success_whatever_the_body() {
    for response in [
        ResponseTemplate::new(200),
        ResponseTemplate::new(200).set_body_raw("<html><body>Revoked!</body></html>", "text/html"),
        ResponseTemplate::new(200).set_body_raw("{not json", "application/json"),
        ResponseTemplate::new(200).set_body_json(json!({"error": "invalid_token"})),
    ] {
        let server = MockServer::start().await;
        revocation_answers(&server, response).await;
        let result = client(&server, &ManualClock::new())
            .revoke(&secret(TOKEN), TokenTypeHint::AccessToken)
            .await;
        assert!(result.is_ok(), "{result:?}");
    }
}

#[tokio::test]
async fn other_statuses_are_classified_errors() {
    let server = MockServer::start().await;
    revocation_answers(
        &server,
        ResponseTemplate::new(400).set_body_json(json!({"error": "unsupported_token_type"})),
    )
    .await;
    let err = client(&server, &ManualClock::new())
        .revoke(&secret(TOKEN), TokenTypeHint::AccessToken)
        .await
        .unwrap_err();
    let server_error = err.server_error().expect("an OAuth error");
    assert_eq!(
        server_error.code,
        ErrorCode::Other("unsupported_token_type".into())
    );

    let server = MockServer::start().await;
    revocation_answers(
        &server,
        ResponseTemplate::new(500).set_body_raw("<html>oops</html>", "text/html"),
    )
    .await;
    let err = client(&server, &ManualClock::new())
        .revoke(&secret(TOKEN), TokenTypeHint::AccessToken)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnexpectedResponse(e) if e.status.map(|s| s.as_u16()) == Some(500)),
        "{err:?}"
    );
    assert!(err.is_transient());
}

#[tokio::test]
async fn a_503_with_retry_after_is_retried_once() {
    let server = MockServer::start().await;
    Mock::given(path("/revoke"))
        .respond_with(ResponseTemplate::new(503).insert_header("retry-after", "2"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    revocation_answers(&server, ResponseTemplate::new(200)).await;
    let clock = ManualClock::new();
    let revoker = client(&server, &clock)
        .to_builder()
        .retry_policy(RetryPolicy::default())
        .build()
        .unwrap();

    revoker
        .revoke(&secret(TOKEN), TokenTypeHint::AccessToken)
        .await
        .unwrap();
    assert_eq!(requests_to(&server, "/revoke").await.len(), 2);
    assert_eq!(clock.elapsed(), Duration::from_secs(2));

    // Only once: a second 503 is the caller's.
    let server = MockServer::start().await;
    revocation_answers(
        &server,
        ResponseTemplate::new(503).insert_header("retry-after", "2"),
    )
    .await;
    let clock = ManualClock::new();
    let err = client(&server, &clock)
        .to_builder()
        .retry_policy(RetryPolicy::default())
        .build()
        .unwrap()
        .revoke(&secret(TOKEN), TokenTypeHint::AccessToken)
        .await
        .unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
    assert_eq!(requests_to(&server, "/revoke").await.len(), 2);

    // Not at all without Retry-After, or with RetryPolicy::none().
    let server = MockServer::start().await;
    revocation_answers(&server, ResponseTemplate::new(503)).await;
    let revoker = client(&server, &ManualClock::new())
        .to_builder()
        .retry_policy(RetryPolicy::default())
        .build()
        .unwrap();
    revoker
        .revoke(&secret(TOKEN), TokenTypeHint::AccessToken)
        .await
        .unwrap_err();
    assert_eq!(requests_to(&server, "/revoke").await.len(), 1);
}

#[tokio::test]
async fn no_revocation_endpoint_is_a_config_error_without_a_request() {
    let server = MockServer::start().await;
    let client = OAuthClient::builder("revoker")
        .secret("revoker-secret")
        .token_url(format!("{}/token", server.uri()))
        .build()
        .unwrap();

    let err = client
        .revoke(&secret(TOKEN), TokenTypeHint::AccessToken)
        .await
        .unwrap_err();

    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_revoked_token_never_shows_in_errors() {
    let server = MockServer::start().await;
    revocation_answers(
        &server,
        ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_request",
            "error_description": format!("cannot revoke {TOKEN}"),
        })),
    )
    .await;
    let err = client(&server, &ManualClock::new())
        .revoke(&secret(TOKEN), TokenTypeHint::AccessToken)
        .await
        .unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(TOKEN), "{shown}");

    let server = MockServer::start().await;
    revocation_answers(
        &server,
        ResponseTemplate::new(502).set_body_raw(format!("<p>bad token {TOKEN}</p>"), "text/html"),
    )
    .await;
    let err = client(&server, &ManualClock::new())
        .revoke(&secret(TOKEN), TokenTypeHint::AccessToken)
        .await
        .unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(TOKEN), "{shown}");
}

#[tokio::test]
async fn source_revoke_revokes_the_refresh_then_the_access_token_and_purges() {
    let server = MockServer::start().await;
    let issued = token_endpoint(&server).await;
    revocation_answers(&server, ResponseTemplate::new(200)).await;
    let clock = ManualClock::new();
    let store = MemoryStore::new();
    let source = TokenSource::builder(client(&server, &clock), ClientCredentials::new())
        .store(store.clone())
        .build();
    source.token().await.unwrap();
    assert_eq!(store.len(), 1);

    // Spawned: the future is Send.
    let revoking = source.clone();
    tokio::spawn(async move { revoking.revoke().await })
        .await
        .unwrap()
        .unwrap();

    let revoked: Vec<_> = requests_to(&server, "/revoke")
        .await
        .iter()
        .map(form)
        .collect();
    assert_eq!(
        revoked,
        vec![
            pairs(&[("token", "rt-1"), ("token_type_hint", "refresh_token")]),
            pairs(&[("token", "at-1"), ("token_type_hint", "access_token")]),
        ]
    );
    assert!(store.is_empty());
    assert!(source.cached().is_none());

    // The next token is a fresh grant, not a refresh with the revoked refresh token.
    let next = source.token().await.unwrap();
    assert_eq!(next.access_token().expose_secret(), "at-2");
    assert_eq!(issued.load(Ordering::SeqCst), 2);
    let refreshes = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("grant_type=refresh_token"))
        .count();
    assert_eq!(refreshes, 0);
}

#[tokio::test]
async fn source_revoke_purges_even_when_the_server_answers_500() {
    let server = MockServer::start().await;
    let issued = token_endpoint(&server).await;
    revocation_answers(&server, ResponseTemplate::new(500)).await;
    let clock = ManualClock::new();
    let store = MemoryStore::new();
    let source = TokenSource::builder(client(&server, &clock), ClientCredentials::new())
        .store(store.clone())
        .build();
    source.token().await.unwrap();

    let err = source.revoke().await.unwrap_err();

    assert!(
        matches!(&err, Error::UnexpectedResponse(e) if e.status.map(|s| s.as_u16()) == Some(500)),
        "{err:?}"
    );
    // Both revocations were attempted despite the first failure.
    assert_eq!(requests_to(&server, "/revoke").await.len(), 2);
    assert!(store.is_empty());
    assert!(source.cached().is_none());
    let next = source.token().await.unwrap();
    assert_eq!(next.access_token().expose_secret(), "at-2");
    assert_eq!(issued.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn source_revoke_purges_even_when_the_server_is_unreachable() {
    let server = MockServer::start().await;
    let issued = token_endpoint(&server).await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let clock = ManualClock::new();
    let client = client(&server, &clock)
        .to_builder()
        .revocation_url(format!("http://127.0.0.1:{closed}/revoke"))
        .build()
        .unwrap();
    let store = MemoryStore::new();
    let source = TokenSource::builder(client, ClientCredentials::new())
        .store(store.clone())
        .build();
    source.token().await.unwrap();

    let err = source.revoke().await.unwrap_err();

    assert!(matches!(err, Error::Transport(_)), "{err:?}");
    assert!(store.is_empty());
    assert!(source.cached().is_none());
    source.token().await.unwrap();
    assert_eq!(issued.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn source_revoke_without_an_endpoint_is_a_config_error_but_purges() {
    let server = MockServer::start().await;
    let issued = token_endpoint(&server).await;
    let clock = ManualClock::new();
    let client = OAuthClient::builder("revoker")
        .secret("revoker-secret")
        .token_url(format!("{}/token", server.uri()))
        .clock(clock)
        .build()
        .unwrap();
    let store = MemoryStore::new();
    let source = TokenSource::builder(client, ClientCredentials::new())
        .store(store.clone())
        .build();
    source.token().await.unwrap();

    let err = source.revoke().await.unwrap_err();

    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(store.is_empty());
    assert!(source.cached().is_none());
    source.token().await.unwrap();
    assert_eq!(issued.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn source_revoke_also_revokes_a_newer_token_found_in_the_store() {
    let server = MockServer::start().await;
    token_endpoint(&server).await;
    revocation_answers(&server, ResponseTemplate::new(200)).await;
    let clock = ManualClock::new();
    let store = MemoryStore::new();
    let build = || {
        TokenSource::builder(client(&server, &clock), ClientCredentials::new())
            .store(store.clone())
            .build()
    };
    let (first, second) = (build(), build());
    first.token().await.unwrap();
    // Another source sharing the store renewed meanwhile (a 401 made it drop the shared token).
    let shared = second.token().await.unwrap();
    assert!(second.invalidate(&shared));
    second.token().await.unwrap();

    first.revoke().await.unwrap();

    let revoked: Vec<String> = requests_to(&server, "/revoke")
        .await
        .iter()
        .map(|r| form(r)[0].1.clone())
        .collect();
    assert_eq!(revoked, ["rt-1", "at-1", "rt-2", "at-2"]);
    assert!(store.is_empty());
}

#[tokio::test]
async fn source_revoke_forgets_a_remembered_failure() {
    let server = MockServer::start().await;
    Mock::given(path("/token"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    token_endpoint(&server).await;
    revocation_answers(&server, ResponseTemplate::new(200)).await;
    let source = TokenSource::new(
        client(&server, &ManualClock::new()),
        ClientCredentials::new(),
    );
    source.token().await.unwrap_err();
    // Remembered: no new request yet.
    source.token().await.unwrap_err();

    source.revoke().await.unwrap();

    assert_eq!(
        source.token().await.unwrap().access_token().expose_secret(),
        "at-1"
    );
    assert!(
        requests_to(&server, "/revoke").await.is_empty(),
        "nothing to revoke"
    );
}

async fn introspection_answers(server: &MockServer, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path("/introspect"))
        .respond_with(response)
        .mount(server)
        .await;
}

#[tokio::test]
async fn introspection_reads_an_active_token() {
    let server = MockServer::start().await;
    introspection_answers(
        &server,
        ResponseTemplate::new(200).set_body_json(json!({
            "active": true,
            "scope": "read write",
            "client_id": "app",
            "username": "jdoe",
            "token_type": "Bearer",
            "exp": 1_900_000_000,
            "iat": 1_800_000_000.7,
            "nbf": "soon",
            "sub": "Z5O3upPC88QrAjx00dis",
            "aud": ["https://a.example", "https://b.example"],
            "iss": "https://idp.example/",
            "jti": "abc",
            "tenant": "acme",
        })),
    )
    .await;
    let client = client(&server, &ManualClock::new());

    // Spawned: the future is Send.
    let info = tokio::spawn(async move {
        client
            .introspect(&secret(TOKEN), Some(TokenTypeHint::AccessToken))
            .await
    })
    .await
    .unwrap()
    .unwrap();

    assert!(info.active);
    assert_eq!(info.scopes().collect::<Vec<_>>(), ["read", "write"]);
    assert_eq!(info.client_id.as_deref(), Some("app"));
    assert_eq!(info.username.as_deref(), Some("jdoe"));
    assert_eq!(info.token_type.as_deref(), Some("Bearer"));
    assert_eq!(
        info.exp,
        Some(UNIX_EPOCH + Duration::from_secs(1_900_000_000))
    );
    assert_eq!(
        info.iat,
        Some(UNIX_EPOCH + Duration::from_secs(1_800_000_000))
    );
    assert_eq!(info.nbf, None);
    assert_eq!(info.sub.as_deref(), Some("Z5O3upPC88QrAjx00dis"));
    assert_eq!(info.aud, ["https://a.example", "https://b.example"]);
    assert_eq!(info.iss.as_deref(), Some("https://idp.example/"));
    assert_eq!(info.jti.as_deref(), Some("abc"));
    assert_eq!(info.extra.get("tenant"), Some(&json!("acme")));
    assert_eq!(
        info.extra.get("nbf"),
        Some(&json!("soon")),
        "kept, not lost"
    );

    let requests = requests_to(&server, "/introspect").await;
    assert_eq!(
        form(&requests[0]),
        pairs(&[("token", TOKEN), ("token_type_hint", "access_token")])
    );
    assert!(requests[0].headers.get("authorization").is_some());
}

#[tokio::test]
async fn an_inactive_token_is_ok_and_inactive() {
    let server = MockServer::start().await;
    introspection_answers(
        &server,
        ResponseTemplate::new(200).set_body_json(json!({"active": false, "aud": "only-one"})),
    )
    .await;

    let info = client(&server, &ManualClock::new())
        .introspect(&secret(TOKEN), None)
        .await
        .unwrap();

    assert!(!info.active);
    assert_eq!(info.aud, ["only-one"]);
    assert!(info.scope.is_none() && info.exp.is_none() && info.extra.is_empty());
    let requests = requests_to(&server, "/introspect").await;
    assert_eq!(form(&requests[0]), pairs(&[("token", TOKEN)]));
}

#[tokio::test]
async fn an_introspection_answer_without_a_boolean_active_is_an_error() {
    for response in [
        ResponseTemplate::new(200).set_body_json(json!({"scope": "read"})),
        ResponseTemplate::new(200).set_body_json(json!({"active": "true"})),
        ResponseTemplate::new(200).set_body_json(json!([{"active": true}])),
        ResponseTemplate::new(200).set_body_raw("<html>login</html>", "text/html"),
        ResponseTemplate::new(200),
    ] {
        let server = MockServer::start().await;
        introspection_answers(&server, response).await;
        let err = client(&server, &ManualClock::new())
            .introspect(&secret(TOKEN), None)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::UnexpectedResponse(_)), "{err:?}");
    }

    let server = MockServer::start().await;
    introspection_answers(
        &server,
        ResponseTemplate::new(401).set_body_json(json!({
            "error": "invalid_client",
            "error_description": format!("who sent {TOKEN}?"),
        })),
    )
    .await;
    let err = client(&server, &ManualClock::new())
        .introspect(&secret(TOKEN), None)
        .await
        .unwrap_err();
    assert_eq!(err.server_error().unwrap().code, ErrorCode::InvalidClient);
    assert!(!format!("{err} {err:?}").contains(TOKEN));

    let no_endpoint = OAuthClient::builder("x").build().unwrap();
    let err = no_endpoint
        .introspect(&secret(TOKEN), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
}

#[test]
fn introspection_debug_shows_member_names_only() {
    let mut info = Introspection::default();
    info.extra.insert("custom".into(), json!("value-S3CRET"));
    let shown = format!("{info:?}");
    assert!(
        shown.contains("custom") && !shown.contains("S3CRET"),
        "{shown}"
    );
}
