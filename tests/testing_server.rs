//! The local authorization server (`oauth_layer::testing`), driven by a plain HTTP client and by
//! the crate's own `TokenSource`.
#![cfg(all(feature = "testing", feature = "reqwest", feature = "jwt"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod test_keys;

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm as JoseAlgorithm, EncodingKey, Header};
use oauth_layer::client::OAuthClientBuilder;
use oauth_layer::clock::{Clock, ManualClock};
use oauth_layer::discovery;
use oauth_layer::flow::{ClientCredentials, JwtBearer, Password, SubjectToken, TokenExchange};
use oauth_layer::jwt::{self, SigningKey};
use oauth_layer::testing::TestServer;
use oauth_layer::{AuthMethod, ErrorCode, OAuthClient, TokenSource, TokenTypeHint};
use reqwest::StatusCode;
use reqwest::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HeaderMap, LOCATION, WWW_AUTHENTICATE,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use test_keys::{EC_PRIVATE, EC_PUBLIC, RSA_KEY, RSA_PRIVATE, RSA_PUBLIC};

const WEIRD_SECRET: &str = "a:b/c+d%e&f=g h~";

async fn server() -> TestServer {
    TestServer::builder()
        .client(
            "basic-app",
            Some(WEIRD_SECRET),
            AuthMethod::ClientSecretBasic,
        )
        .client(
            "post-app",
            Some("post-secret"),
            AuthMethod::ClientSecretPost,
        )
        .client("public-app", None, AuthMethod::None)
        .user("alice", "wonderland")
        .start()
        .await
        .unwrap()
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))`, as RFC 6749 §2.3.1 asks.
fn basic(id: &str, secret: &str) -> String {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", encode(id), encode(secret)))
    )
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        form.append_pair(name, value);
    }
    form.finish()
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    json: Value,
}

impl Answer {
    fn error(&self) -> &str {
        self.json["error"].as_str().unwrap_or("<none>")
    }

    fn challenge(&self) -> &str {
        self.headers
            .get(WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("<none>")
    }

    fn str(&self, name: &str) -> &str {
        self.json[name].as_str().unwrap()
    }
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    Answer {
        status,
        headers,
        json,
    }
}

async fn post_token(
    server: &TestServer,
    basic_auth: Option<String>,
    pairs: &[(&str, &str)],
) -> Answer {
    post_form(&server.token_url(), basic_auth, pairs).await
}

async fn post_form(url: &str, authorization: Option<String>, pairs: &[(&str, &str)]) -> Answer {
    let mut request = reqwest::Client::new()
        .post(url)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form(pairs));
    if let Some(authorization) = authorization {
        request = request.header(AUTHORIZATION, authorization);
    }
    answer(request.send().await.unwrap()).await
}

async fn get_resource(server: &TestServer, path: &str, token: Option<&str>) -> Answer {
    let mut request = reqwest::Client::new().get(server.resource_url(path));
    if let Some(token) = token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    answer(request.send().await.unwrap()).await
}

async fn client_credentials_token(server: &TestServer, scope: &str) -> Answer {
    post_token(
        server,
        Some(basic("basic-app", WEIRD_SECRET)),
        &[("grant_type", "client_credentials"), ("scope", scope)],
    )
    .await
}

async fn password_token(server: &TestServer) -> Answer {
    post_token(
        server,
        None,
        &[
            ("grant_type", "password"),
            ("client_id", "post-app"),
            ("client_secret", "post-secret"),
            ("username", "alice"),
            ("password", "wonderland"),
            ("scope", "read write"),
        ],
    )
    .await
}

async fn refresh_with_post_app(server: &TestServer, refresh_token: &str) -> Answer {
    post_token(
        server,
        None,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "post-app"),
            ("client_secret", "post-secret"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

/// Every client this file builds by hand is made here; `method: None` leaves the choice to the
/// client (or to discovery).
fn unconfigured_client(
    id: &str,
    secret: Option<&str>,
    method: Option<AuthMethod>,
) -> OAuthClientBuilder {
    let mut client = OAuthClient::builder(id);
    if let Some(method) = method {
        client = client.auth_method(method);
    }
    if let Some(secret) = secret {
        client = client.secret(secret);
    }
    client
}

/// What a test adds to a client as the server registered it ([`TestServer::oauth_client`]):
/// the private key of a `private_key_jwt` client, a clock of its own (to lag the server's), the
/// issuer as the audience of its assertions.
#[derive(Default)]
struct Extra {
    key: Option<SigningKey>,
    clock: Option<ManualClock>,
    audience_issuer: bool,
}

fn registered_client(server: &TestServer, id: &str, extra: Extra) -> OAuthClient {
    let mut client = server
        .oauth_client_builder(id)
        .unwrap()
        .assertion_audience_issuer(extra.audience_issuer);
    if let Some(key) = extra.key {
        client = client.signing_key(key);
    }
    if let Some(clock) = extra.clock {
        client = client.clock(clock);
    }
    client.build().unwrap()
}

fn oauth_client(
    server: &TestServer,
    id: &str,
    secret: Option<&str>,
    method: AuthMethod,
) -> OAuthClient {
    unconfigured_client(id, secret, Some(method))
        .token_url(server.token_url())
        .build()
        .unwrap()
}

// --- the token endpoint -------------------------------------------------------------------

#[tokio::test]
async fn client_credentials_answers_rfc_6749_json_with_no_store() {
    let server = server().await;
    let token = client_credentials_token(&server, "api:read  api:write").await;

    assert_eq!(token.status, StatusCode::OK, "{:?}", token.json);
    assert_eq!(token.headers[CACHE_CONTROL], "no-store");
    assert!(
        token.headers[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(token.str("token_type"), "Bearer");
    assert_eq!(token.json["expires_in"], 3600);
    assert_eq!(token.str("scope"), "api:read api:write");
    assert!(token.json.get("refresh_token").is_none());
    // 128 bits at least: 22 base64url characters after the prefix.
    assert!(token.str("access_token").len() >= 3 + 22);
    assert_ne!(
        token.str("access_token"),
        client_credentials_token(&server, "x")
            .await
            .str("access_token")
    );
}

#[tokio::test]
async fn client_credentials_can_issue_refresh_tokens_when_asked() {
    let server = TestServer::builder()
        .client("app", Some("s"), AuthMethod::ClientSecretBasic)
        .issue_refresh_tokens(true)
        .access_token_lifetime(Duration::from_secs(90))
        .start()
        .await
        .unwrap();
    let token = post_token(
        &server,
        Some(basic("app", "s")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(token.status, StatusCode::OK);
    assert!(token.json["refresh_token"].is_string());
    assert_eq!(token.json["expires_in"], 90);
    assert!(token.json.get("scope").is_none());
}

#[tokio::test]
async fn basic_credentials_are_form_decoded_before_comparing() {
    let server = server().await;

    let encoded = client_credentials_token(&server, "s").await;
    assert_eq!(encoded.status, StatusCode::OK, "{:?}", encoded.json);

    // The same secret without the §2.3.1 encoding is not the registered secret.
    let raw = format!(
        "Basic {}",
        STANDARD.encode(format!("basic-app:{WEIRD_SECRET}"))
    );
    let rejected = post_token(&server, Some(raw), &[("grant_type", "client_credentials")]).await;
    assert_eq!(rejected.status, StatusCode::UNAUTHORIZED);
    assert_eq!(rejected.error(), "invalid_client");
}

#[tokio::test]
async fn token_source_authenticates_with_a_hostile_secret_over_basic() {
    let server = server().await;
    let client = oauth_client(
        &server,
        "basic-app",
        Some(WEIRD_SECRET),
        AuthMethod::ClientSecretBasic,
    );
    let tokens = TokenSource::new(client, ClientCredentials::new().scope("api:read"));

    let token = tokens.token().await.unwrap();
    assert_eq!(token.scope(), Some("api:read"));
    let again = tokens.token().await.unwrap();
    assert!(again.same_as(&token));
    assert_eq!(server.token_requests(), 1);

    let hello = get_resource(
        &server,
        "/api/hello",
        Some(token.access_token().expose_secret()),
    )
    .await;
    assert_eq!(hello.status, StatusCode::OK);
    assert_eq!(hello.str("client_id"), "basic-app");
    assert_eq!(hello.str("scope"), "api:read");
}

#[tokio::test]
async fn a_client_must_use_the_method_it_registered() {
    let server = server().await;

    let basic_client_posting = post_token(
        &server,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "basic-app"),
            ("client_secret", WEIRD_SECRET),
        ],
    )
    .await;
    assert_eq!(basic_client_posting.status, StatusCode::UNAUTHORIZED);
    assert_eq!(basic_client_posting.error(), "invalid_client");
    assert!(basic_client_posting.challenge().starts_with("Basic"));

    let post_client_using_basic = post_token(
        &server,
        Some(basic("post-app", "post-secret")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(post_client_using_basic.status, StatusCode::UNAUTHORIZED);
    assert_eq!(post_client_using_basic.error(), "invalid_client");

    let confidential_client_without_secret = post_token(
        &server,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "post-app"),
        ],
    )
    .await;
    assert_eq!(confidential_client_without_secret.error(), "invalid_client");

    let wrong_secret = post_token(
        &server,
        Some(basic("basic-app", "nope")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(wrong_secret.error(), "invalid_client");

    let unknown = post_token(
        &server,
        Some(basic("who", "ever")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(unknown.error(), "invalid_client");

    // Through the crate: a post client configured for basic fails with the server's code.
    let misconfigured = oauth_client(
        &server,
        "post-app",
        Some("post-secret"),
        AuthMethod::ClientSecretBasic,
    );
    let error = TokenSource::new(misconfigured, ClientCredentials::new())
        .token()
        .await
        .unwrap_err();
    assert_eq!(
        error.server_error().map(|e| e.code.as_str()),
        Some("invalid_client"),
        "{error:?}"
    );
}

#[tokio::test]
async fn client_secret_post_client_gets_a_token() {
    let server = server().await;
    let client = oauth_client(
        &server,
        "post-app",
        Some("post-secret"),
        AuthMethod::ClientSecretPost,
    );
    let token = TokenSource::new(client, ClientCredentials::new())
        .token()
        .await
        .unwrap();
    assert!(token.scope().is_none());
    assert_eq!(server.token_requests_for("client_credentials"), 1);
}

#[tokio::test]
async fn password_grant_issues_a_refresh_token_and_checks_the_password() {
    let server = server().await;

    let token = password_token(&server).await;
    assert_eq!(token.status, StatusCode::OK, "{:?}", token.json);
    assert!(token.json["refresh_token"].is_string());
    assert_eq!(token.str("scope"), "read write");

    let hello = get_resource(&server, "/api/me", Some(token.str("access_token"))).await;
    assert_eq!(hello.str("username"), "alice");

    let wrong = post_token(
        &server,
        None,
        &[
            ("grant_type", "password"),
            ("client_id", "public-app"),
            ("username", "alice"),
            ("password", "looking-glass"),
        ],
    )
    .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert_eq!(wrong.error(), "invalid_grant");

    let missing = post_token(
        &server,
        None,
        &[("grant_type", "password"), ("client_id", "public-app")],
    )
    .await;
    assert_eq!(missing.error(), "invalid_request");
}

#[tokio::test]
async fn public_client_uses_the_password_flow_with_only_its_id() {
    let server = server().await;
    let client = oauth_client(&server, "public-app", None, AuthMethod::None);
    let tokens = TokenSource::new(client, Password::new("alice", "wonderland").scope("read"));

    let token = tokens.token().await.unwrap();
    assert!(token.refresh_token().is_some());
    assert_eq!(token.scope(), Some("read"));
    assert_eq!(server.token_requests_for("password"), 1);

    // Public clients cannot use client credentials (RFC 6749 §4.4).
    let error = post_token(
        &server,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "public-app"),
        ],
    )
    .await;
    assert_eq!(error.status, StatusCode::BAD_REQUEST);
    assert_eq!(error.error(), "unauthorized_client");
}

#[tokio::test]
async fn rotation_makes_the_old_refresh_token_invalid_grant() {
    let server = server().await;
    let first = password_token(&server).await;
    let old = first.str("refresh_token").to_owned();

    let refreshed = refresh_with_post_app(&server, &old).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{:?}", refreshed.json);
    let new = refreshed.str("refresh_token").to_owned();
    assert_ne!(new, old);
    assert_eq!(refreshed.str("scope"), "read write");

    let replayed = refresh_with_post_app(&server, &old).await;
    assert_eq!(replayed.status, StatusCode::BAD_REQUEST);
    assert_eq!(replayed.error(), "invalid_grant");

    assert_eq!(
        refresh_with_post_app(&server, &new).await.status,
        StatusCode::OK
    );

    // The same through `OAuthClient::refresh`.
    let client = oauth_client(
        &server,
        "post-app",
        Some("post-secret"),
        AuthMethod::ClientSecretPost,
    );
    let error = client.refresh(&SecretString::from(old)).await.unwrap_err();
    assert!(error.is_invalid_grant(), "{error:?}");
}

#[tokio::test]
async fn without_rotation_the_refresh_token_stays_valid() {
    let server = TestServer::builder()
        .client(
            "post-app",
            Some("post-secret"),
            AuthMethod::ClientSecretPost,
        )
        .user("alice", "wonderland")
        .rotate_refresh_tokens(false)
        .start()
        .await
        .unwrap();
    let refresh_token = password_token(&server)
        .await
        .str("refresh_token")
        .to_owned();
    for _ in 0..2 {
        let refreshed = refresh_with_post_app(&server, &refresh_token).await;
        assert_eq!(refreshed.status, StatusCode::OK);
        assert!(refreshed.json.get("refresh_token").is_none());
    }
    assert_eq!(server.token_requests_for("refresh_token"), 2);
}

#[tokio::test]
async fn a_refresh_may_narrow_the_scope_but_not_widen_it() {
    let server = server().await;
    let refresh_token = password_token(&server)
        .await
        .str("refresh_token")
        .to_owned();
    let auth = [
        ("grant_type", "refresh_token"),
        ("client_id", "post-app"),
        ("client_secret", "post-secret"),
        ("refresh_token", refresh_token.as_str()),
    ];

    let wider = post_token(
        &server,
        None,
        &[&auth[..], &[("scope", "read admin")]].concat(),
    )
    .await;
    assert_eq!(wider.error(), "invalid_scope");

    let narrower = post_token(&server, None, &[&auth[..], &[("scope", "read")]].concat()).await;
    assert_eq!(narrower.status, StatusCode::OK);
    assert_eq!(narrower.str("scope"), "read");
    // The rotated refresh token keeps the original grant.
    let again = refresh_with_post_app(&server, narrower.str("refresh_token")).await;
    assert_eq!(again.str("scope"), "read write");
}

#[tokio::test]
async fn a_refresh_token_belongs_to_its_client() {
    let server = server().await;
    let refresh_token = password_token(&server)
        .await
        .str("refresh_token")
        .to_owned();
    let stolen = post_token(
        &server,
        None,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "public-app"),
            ("refresh_token", refresh_token.as_str()),
        ],
    )
    .await;
    assert_eq!(stolen.error(), "invalid_grant");
}

#[tokio::test]
async fn malformed_token_requests_get_400_not_a_panic() {
    let server = server().await;
    let auth = Some(basic("basic-app", WEIRD_SECRET));

    let unsupported = post_token(&server, auth.clone(), &[("grant_type", "magic")]).await;
    assert_eq!(unsupported.status, StatusCode::BAD_REQUEST);
    assert_eq!(unsupported.error(), "unsupported_grant_type");

    let no_grant = post_token(&server, auth.clone(), &[("scope", "x")]).await;
    assert_eq!(no_grant.error(), "invalid_request");

    let repeated = post_token(
        &server,
        auth.clone(),
        &[
            ("grant_type", "client_credentials"),
            ("grant_type", "password"),
        ],
    )
    .await;
    assert_eq!(repeated.error(), "invalid_request");

    let bad_scope = post_token(
        &server,
        auth.clone(),
        &[("grant_type", "client_credentials"), ("scope", "a\"b")],
    )
    .await;
    assert_eq!(bad_scope.error(), "invalid_scope");

    let two_methods = post_token(
        &server,
        auth.clone(),
        &[
            ("grant_type", "client_credentials"),
            ("client_secret", WEIRD_SECRET),
        ],
    )
    .await;
    assert_eq!(two_methods.error(), "invalid_request");

    let garbage_basic = post_token(
        &server,
        Some("Basic !!!not base64".into()),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(garbage_basic.status, StatusCode::UNAUTHORIZED);
    assert_eq!(garbage_basic.error(), "invalid_client");

    let http = reqwest::Client::new();
    let json_body = http
        .post(server.token_url())
        .header(AUTHORIZATION, auth.clone().unwrap())
        .header(CONTENT_TYPE, "application/json")
        .body(r#"{"grant_type":"client_credentials"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(answer(json_body).await.error(), "invalid_request");

    let get = http.get(server.token_url()).send().await.unwrap();
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);

    let invalid_utf8 = http
        .post(server.token_url())
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(vec![0xff, 0xfe, b'=', 0x80])
        .send()
        .await
        .unwrap();
    assert_eq!(invalid_utf8.status(), StatusCode::UNAUTHORIZED);

    let huge = http
        .post(server.token_url())
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(vec![b'a'; 100 * 1024])
        .send()
        .await;
    // The server may close the connection before reading the whole body.
    if let Ok(huge) = huge {
        assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    let elsewhere = http
        .get(server.resource_url("/nowhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::NOT_FOUND);

    // Still serving after all that.
    assert_eq!(
        client_credentials_token(&server, "x").await.status,
        StatusCode::OK
    );
}

// --- the protected resource ---------------------------------------------------------------

#[tokio::test]
async fn resource_answers_bearer_challenges() {
    let server = server().await;

    let missing = get_resource(&server, "/api/hello", None).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.challenge(), "Bearer");

    let unknown = get_resource(&server, "/api/hello", Some("made-up")).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.challenge(), r#"Bearer error="invalid_token""#);

    let token = client_credentials_token(&server, "read").await;
    let hello = get_resource(&server, "/api/hello", Some(token.str("access_token"))).await;
    assert_eq!(hello.status, StatusCode::OK);
    assert_eq!(hello.json["ok"], true);
    assert_eq!(hello.str("client_id"), "basic-app");
    assert_eq!(hello.str("scope"), "read");
    assert_eq!(hello.str("method"), "GET");
    assert_eq!(hello.str("path"), "/api/hello");
    assert_eq!(hello.json["body_len"], 0);

    let two_headers = reqwest::Client::new()
        .get(server.resource_url("/api/hello"))
        .header(
            AUTHORIZATION,
            format!("Bearer {}", token.str("access_token")),
        )
        .header(AUTHORIZATION, "Bearer other")
        .send()
        .await
        .unwrap();
    assert_eq!(two_headers.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn scoped_resource_needs_admin() {
    let server = server().await;

    let reader = client_credentials_token(&server, "read").await;
    let forbidden = get_resource(&server, "/api/scoped", Some(reader.str("access_token"))).await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    assert_eq!(
        forbidden.challenge(),
        r#"Bearer error="insufficient_scope", scope="admin""#
    );

    let admin = client_credentials_token(&server, "read admin").await;
    let allowed = get_resource(&server, "/api/scoped", Some(admin.str("access_token"))).await;
    assert_eq!(allowed.status, StatusCode::OK);
}

#[tokio::test]
async fn required_scopes_are_configurable() {
    let server = TestServer::builder()
        .client("app", Some("s"), AuthMethod::ClientSecretBasic)
        .require_scope("/api/reports", "reports:read")
        .start()
        .await
        .unwrap();
    let token = post_token(
        &server,
        Some(basic("app", "s")),
        &[("grant_type", "client_credentials"), ("scope", "other")],
    )
    .await;
    let answer = get_resource(&server, "/api/reports", Some(token.str("access_token"))).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(
        answer.challenge(),
        r#"Bearer error="insufficient_scope", scope="reports:read""#
    );
}

#[tokio::test]
async fn resource_requests_are_recorded_with_their_bodies() {
    let server = server().await;
    let token = client_credentials_token(&server, "read").await;
    let bearer = format!("Bearer {}", token.str("access_token"));

    let posted = reqwest::Client::new()
        .post(server.resource_url("/api/echo?x=1"))
        .header(AUTHORIZATION, &bearer)
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(answer(posted).await.json["body_len"], 7);
    get_resource(&server, "/api/hello", None).await;

    let recorded = server.resource_requests();
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[0].method, reqwest::Method::POST);
    assert_eq!(recorded[0].path, "/api/echo");
    assert_eq!(recorded[0].query.as_deref(), Some("x=1"));
    assert_eq!(recorded[0].authorization.as_deref(), Some(bearer.as_str()));
    assert_eq!(recorded[0].bearer_token(), Some(token.str("access_token")));
    assert_eq!(&recorded[0].body[..], b"payload");
    assert_eq!(recorded[0].headers.get_all(AUTHORIZATION).iter().count(), 1);
    assert_eq!(recorded[0].status, 200);
    assert_eq!(recorded[1].authorization, None);
    assert_eq!(recorded[1].status, 401);
}

// --- time and revocation ------------------------------------------------------------------

#[tokio::test]
async fn tokens_expire_by_the_servers_manual_clock() {
    let clock = ManualClock::new();
    let server = TestServer::builder()
        .client("app", Some("s"), AuthMethod::ClientSecretBasic)
        .access_token_lifetime(Duration::from_secs(60))
        .clock(clock.clone())
        .start()
        .await
        .unwrap();
    let client = OAuthClient::builder("app")
        .secret("s")
        .clock(clock.clone())
        .token_url(server.token_url())
        .build()
        .unwrap();
    let tokens = TokenSource::new(client, ClientCredentials::new());
    let first = tokens.token().await.unwrap();
    let first_secret = first.access_token().expose_secret().to_owned();

    clock.advance(Duration::from_secs(59));
    assert_eq!(
        get_resource(&server, "/api/hello", Some(&first_secret))
            .await
            .status,
        StatusCode::OK
    );

    clock.advance(Duration::from_secs(2));
    let expired = get_resource(&server, "/api/hello", Some(&first_secret)).await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert_eq!(expired.challenge(), r#"Bearer error="invalid_token""#);

    // The source sees the same clock and fetches a new token that works.
    let second = tokens.token().await.unwrap();
    assert!(!second.same_as(&first));
    assert_eq!(server.token_requests(), 2);
    assert_eq!(
        get_resource(
            &server,
            "/api/hello",
            Some(second.access_token().expose_secret())
        )
        .await
        .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn expire_all_access_tokens_needs_no_clock() {
    let server = server().await;
    let token = client_credentials_token(&server, "read").await;
    server.expire_all_access_tokens();
    let answer = get_resource(&server, "/api/hello", Some(token.str("access_token"))).await;
    assert_eq!(answer.challenge(), r#"Bearer error="invalid_token""#);
}

#[tokio::test]
async fn revoking_access_tokens_keeps_refresh_tokens() {
    let server = server().await;
    let token = password_token(&server).await;

    server.revoke_all_access_tokens();
    let revoked = get_resource(&server, "/api/hello", Some(token.str("access_token"))).await;
    assert_eq!(revoked.status, StatusCode::UNAUTHORIZED);
    assert_eq!(revoked.challenge(), r#"Bearer error="invalid_token""#);

    let refreshed = refresh_with_post_app(&server, token.str("refresh_token")).await;
    assert_eq!(refreshed.status, StatusCode::OK);
    let fresh = get_resource(&server, "/api/hello", Some(refreshed.str("access_token"))).await;
    assert_eq!(fresh.status, StatusCode::OK);
}

#[tokio::test]
async fn revoking_refresh_tokens_keeps_access_tokens() {
    let server = server().await;
    let token = password_token(&server).await;

    server.revoke_refresh_tokens();
    let refreshed = refresh_with_post_app(&server, token.str("refresh_token")).await;
    assert_eq!(refreshed.error(), "invalid_grant");
    let still = get_resource(&server, "/api/hello", Some(token.str("access_token"))).await;
    assert_eq!(still.status, StatusCode::OK);
}

#[tokio::test]
async fn token_source_recovers_after_server_side_revocation() {
    let server = server().await;
    let client = oauth_client(
        &server,
        "basic-app",
        Some(WEIRD_SECRET),
        AuthMethod::ClientSecretBasic,
    );
    let tokens = TokenSource::new(client, ClientCredentials::new());
    let first = tokens.token().await.unwrap();

    server.revoke_all_access_tokens();
    let rejected = get_resource(
        &server,
        "/api/hello",
        Some(first.access_token().expose_secret()),
    )
    .await;
    assert_eq!(rejected.status, StatusCode::UNAUTHORIZED);

    assert!(tokens.invalidate(&first));
    let second = tokens.token().await.unwrap();
    let accepted = get_resource(
        &server,
        "/api/hello",
        Some(second.access_token().expose_secret()),
    )
    .await;
    assert_eq!(accepted.status, StatusCode::OK);
    assert_eq!(server.token_requests_for("client_credentials"), 2);
}

#[tokio::test]
async fn revocation_endpoint_follows_rfc_7009() {
    let server = server().await;
    let token = password_token(&server).await;
    let unknown = revoke(&server, Some("nonsense"), None).await;
    assert_eq!(unknown.status, StatusCode::OK);

    let access = revoke(
        &server,
        Some(token.str("access_token")),
        Some("access_token"),
    )
    .await;
    assert_eq!(access.status, StatusCode::OK);
    let answer = get_resource(&server, "/api/hello", Some(token.str("access_token"))).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);

    // Revoking the refresh token also takes the access tokens of its grant.
    let refreshed = refresh_with_post_app(&server, token.str("refresh_token")).await;
    revoke(&server, Some(refreshed.str("refresh_token")), None).await;
    assert_eq!(
        refresh_with_post_app(&server, refreshed.str("refresh_token"))
            .await
            .error(),
        "invalid_grant"
    );
    let answer = get_resource(&server, "/api/hello", Some(refreshed.str("access_token"))).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);

    let missing = revoke(&server, None, None).await;
    assert_eq!(missing.error(), "invalid_request");
    assert_eq!(server.revocation_requests(), 4);
}

async fn revoke(server: &TestServer, token: Option<&str>, hint: Option<&str>) -> Answer {
    let mut pairs = vec![("client_id", "post-app"), ("client_secret", "post-secret")];
    pairs.extend(token.map(|t| ("token", t)));
    pairs.extend(hint.map(|h| ("token_type_hint", h)));
    post_form(&server.revocation_url(), None, &pairs).await
}

// --- counts and lifecycle -----------------------------------------------------------------

#[tokio::test]
async fn token_requests_are_counted_per_grant_and_reset() {
    let server = server().await;
    client_credentials_token(&server, "a").await;
    client_credentials_token(&server, "b").await;
    password_token(&server).await;
    post_token(
        &server,
        None,
        &[("grant_type", "magic"), ("client_id", "public-app")],
    )
    .await;
    post_token(&server, None, &[("scope", "no grant type")]).await;
    get_resource(&server, "/api/hello", None).await;

    assert_eq!(server.token_requests(), 5);
    assert_eq!(server.token_requests_for("client_credentials"), 2);
    assert_eq!(server.token_requests_for("password"), 1);
    assert_eq!(server.token_requests_for("magic"), 1);
    assert_eq!(server.token_requests_for("refresh_token"), 0);
    assert_eq!(server.resource_requests().len(), 1);

    server.reset_counts();
    assert_eq!(server.token_requests(), 0);
    assert_eq!(server.token_requests_for("client_credentials"), 0);
    assert!(server.resource_requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_token_requests_are_all_answered_and_counted() {
    let server = server().await;
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let url = server.token_url();
        requests.spawn(async move {
            reqwest::Client::new()
                .post(url)
                .header(AUTHORIZATION, basic("basic-app", WEIRD_SECRET))
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(form(&[("grant_type", "client_credentials")]))
                .send()
                .await
                .unwrap()
                .status()
        });
    }
    while let Some(status) = requests.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    assert_eq!(server.token_requests(), 20);
}

#[tokio::test]
async fn oauth_client_helper_matches_the_registration() {
    let clock = ManualClock::new();
    let server = TestServer::builder()
        .client(
            "post-app",
            Some("post-secret"),
            AuthMethod::ClientSecretPost,
        )
        .clock(clock.clone())
        .start()
        .await
        .unwrap();
    let client = server.oauth_client("post-app").unwrap();
    assert_eq!(client.auth_method(), AuthMethod::ClientSecretPost);
    assert_eq!(
        client.token_url().map(|u| u.as_str()),
        Some(server.token_url().as_str())
    );
    assert!(client.revocation_url().is_some());
    let tokens = TokenSource::new(client, ClientCredentials::new());
    tokens.token().await.unwrap();
    assert!(server.oauth_client("stranger").is_err());
}

#[tokio::test]
async fn access_tokens_are_random_unless_numbered() {
    let random = server().await;
    let first = client_credentials_token(&random, "a").await;
    let second = client_credentials_token(&random, "a").await;
    assert!(first.str("access_token").starts_with("at_"));
    assert!(first.str("access_token").len() > 40);
    assert_ne!(first.str("access_token"), second.str("access_token"));

    let numbered = TestServer::builder()
        .client(
            "basic-app",
            Some(WEIRD_SECRET),
            AuthMethod::ClientSecretBasic,
        )
        .user("alice", "wonderland")
        .client(
            "post-app",
            Some("post-secret"),
            AuthMethod::ClientSecretPost,
        )
        .numbered_access_tokens("tok-")
        .start()
        .await
        .unwrap();
    let first = client_credentials_token(&numbered, "a").await;
    let second = password_token(&numbered).await;
    assert_eq!(first.str("access_token"), "tok-1");
    assert_eq!(second.str("access_token"), "tok-2");
    assert_ne!(
        second.str("refresh_token"),
        "tok-3",
        "refresh tokens stay random"
    );
    let resource = get_resource(&numbered, "/api/hello", Some("tok-2")).await;
    assert_eq!(resource.str("username"), "alice");
}

#[tokio::test]
async fn builder_rejects_configuration_that_cannot_work() {
    use AuthMethod::{ClientSecretBasic, ClientSecretJwt, None as Public, PrivateKeyJwt};
    use jwt::Algorithm::{ES256, HS256, RS256};
    // (case, client registered, its secret, a client_key for it)
    #[rustfmt::skip]
    let cases = [
        ("Basic without a secret", ClientSecretBasic, None, None),
        ("a public client with a secret", Public, Some("s"), None),
        ("client_secret_jwt without a secret", ClientSecretJwt, None, None),
        ("private_key_jwt without a key", PrivateKeyJwt, None, None),
        ("private_key_jwt with a secret", PrivateKeyJwt, Some("s"), Some(("a", RS256, RSA_PUBLIC))),
        ("a key that is not a public key", PrivateKeyJwt, None, Some(("a", RS256, RSA_PRIVATE))),
        ("a key of another algorithm", PrivateKeyJwt, None, Some(("a", ES256, RSA_PUBLIC))),
        ("a key for HS256", PrivateKeyJwt, None, Some(("a", HS256, RSA_PUBLIC))),
    ];
    for (case, method, secret, key) in cases {
        let mut builder = TestServer::builder().client("a", secret, method);
        if let Some((id, algorithm, pem)) = key {
            builder = builder.client_key(id, algorithm, pem);
        }
        let error = builder.start().await.expect_err(case);
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput, "{case}");
    }
    let stray_key = TestServer::builder()
        .client("a", Some("s"), AuthMethod::ClientSecretBasic)
        .client_key("a", RS256, RSA_PUBLIC)
        .start()
        .await;
    assert!(
        stray_key.is_err(),
        "a client_key for a client that is not private_key_jwt"
    );
    let bad_issuer_key = TestServer::builder()
        .assertion_issuer("https://issuer.example", RS256, "not a PEM")
        .start()
        .await;
    assert!(bad_issuer_key.is_err());
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let server = server().await;
    let url = server.token_url();
    assert!(url.starts_with("http://127.0.0.1:"));
    server.shutdown().await;
    let refused = reqwest::Client::new().post(&url).send().await;
    assert!(refused.is_err());

    let dropped = self::server().await;
    let url = dropped.resource_url("api/hello");
    assert!(url.ends_with("/api/hello"));
    drop(dropped);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(reqwest::Client::new().get(&url).send().await.is_err());
}

// --- the authorization endpoint and the authorization code grant -------------------------

const LOOPBACK: &str = "http://127.0.0.1:7777/callback";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A verifier of 43+ unreserved characters and its S256 challenge, computed here rather than
/// by the crate.
fn pkce(seed: &str) -> (String, String) {
    use sha2::{Digest, Sha256};
    let verifier = format!("{seed}-{}", "v".repeat(50));
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// The query of an authorization request with PKCE, for `public-app` at [`LOOPBACK`], plus
/// `extra` (which replaces parameters of the same name; an empty value removes one).
fn authorization_query<'a>(
    challenge: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", "public-app"),
        ("redirect_uri", LOOPBACK),
        ("scope", "openid profile"),
        ("state", "st-123"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("nonce", "n-456"),
    ];
    for (name, value) in extra {
        pairs.retain(|(n, _)| n != name);
        if !value.is_empty() {
            pairs.push((name, value));
        }
    }
    pairs
}

struct Authorized {
    status: StatusCode,
    headers: HeaderMap,
    /// The `Location` header, when there is one.
    location: Option<String>,
    /// The parameters added to the redirect URI's query; each must come once.
    params: HashMap<String, String>,
    body: String,
}

impl Authorized {
    fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// `GET /authorize?pairs` without following the redirect.
async fn authorize(server: &TestServer, pairs: &[(&str, &str)]) -> Authorized {
    let mut url = url::Url::parse(&server.authorization_url()).unwrap();
    url.query_pairs_mut().extend_pairs(pairs);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client.get(url).send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let location = headers
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_owned());
    let mut params = HashMap::new();
    if let Some(location) = &location {
        for (name, value) in url::Url::parse(location).unwrap().query_pairs() {
            let repeated = params.insert(name.into_owned(), value.into_owned());
            assert!(repeated.is_none(), "repeated parameter in {location}");
        }
    }
    let body = response.text().await.unwrap();
    Authorized {
        status,
        headers,
        location,
        params,
        body,
    }
}

/// A code for `public-app` at [`LOOPBACK`], bound to `challenge`.
async fn code_for(server: &TestServer, challenge: &str) -> String {
    let authorized = authorize(server, &authorization_query(challenge, &[])).await;
    assert_eq!(authorized.status, StatusCode::FOUND);
    authorized.param("code").unwrap().to_owned()
}

/// Redeems `code` for `public-app`.
async fn redeem(
    server: &TestServer,
    code: &str,
    verifier: Option<&str>,
    redirect_uri: Option<&str>,
) -> Answer {
    let mut pairs = vec![
        ("grant_type", "authorization_code"),
        ("client_id", "public-app"),
        ("code", code),
    ];
    if let Some(verifier) = verifier {
        pairs.push(("code_verifier", verifier));
    }
    if let Some(redirect_uri) = redirect_uri {
        pairs.push(("redirect_uri", redirect_uri));
    }
    post_token(server, None, &pairs).await
}

#[tokio::test]
async fn authorize_redirects_with_code_state_and_iss() {
    let server = server().await;
    let (_, challenge) = pkce("a");
    let authorized = authorize(&server, &authorization_query(&challenge, &[])).await;
    assert_eq!(authorized.status, StatusCode::FOUND);
    let location = authorized.location.as_deref().unwrap();
    assert!(
        location.starts_with(&format!("{LOOPBACK}?code=")),
        "{location}"
    );
    assert!(authorized.param("code").unwrap().len() >= 43);
    assert_eq!(authorized.param("state"), Some("st-123"));
    assert_eq!(authorized.param("iss"), Some(server.url().as_str()));
    assert_eq!(authorized.params.len(), 3);
    assert_eq!(authorized.headers[CACHE_CONTROL], "no-store");
    assert_eq!(authorized.headers["referrer-policy"], "no-referrer");
    assert_eq!(server.authorization_requests(), 1);

    // Any loopback port and path, IPv6 too; the redirect URI's own query is kept.
    let kept = authorize(
        &server,
        &authorization_query(&challenge, &[("redirect_uri", "http://[::1]:1/cb?keep=1")]),
    )
    .await;
    assert_eq!(kept.status, StatusCode::FOUND);
    assert!(
        kept.location
            .as_deref()
            .unwrap()
            .starts_with("http://[::1]:1/cb?keep=1&code=")
    );
    assert_eq!(kept.param("keep"), Some("1"));

    // No state sent, none echoed.
    let stateless = authorize(&server, &authorization_query(&challenge, &[("state", "")])).await;
    assert_eq!(stateless.status, StatusCode::FOUND);
    assert_eq!(stateless.param("state"), None);
    assert_eq!(server.authorization_requests(), 3);
    server.reset_counts();
    assert_eq!(server.authorization_requests(), 0);
}

#[tokio::test]
async fn send_iss_false_leaves_iss_out() {
    let server = TestServer::builder()
        .client("public-app", None, AuthMethod::None)
        .send_iss(false)
        .start()
        .await
        .unwrap();
    let (_, challenge) = pkce("a");
    let authorized = authorize(&server, &authorization_query(&challenge, &[])).await;
    assert_eq!(authorized.status, StatusCode::FOUND);
    assert!(authorized.param("code").is_some());
    assert_eq!(authorized.param("iss"), None);
}

#[tokio::test]
async fn pkce_code_is_redeemed_once_and_replay_revokes_its_tokens() {
    let server = server().await;
    let (verifier, challenge) = pkce("a");
    let code = code_for(&server, &challenge).await;

    let tokens = redeem(&server, &code, Some(&verifier), Some(LOOPBACK)).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.json);
    assert_eq!(tokens.headers[CACHE_CONTROL], "no-store");
    assert_eq!(tokens.str("token_type"), "Bearer");
    assert_eq!(tokens.str("scope"), "openid profile");
    let access_token = tokens.str("access_token");
    let refresh_token = tokens.str("refresh_token");
    let resource = get_resource(&server, "/api/me", Some(access_token)).await;
    assert_eq!(resource.status, StatusCode::OK);
    assert_eq!(resource.str("username"), "user");
    assert_eq!(resource.str("client_id"), "public-app");
    assert_eq!(server.token_requests_for("authorization_code"), 1);

    // RFC 6749 §4.1.2: a second use fails and takes the tokens of the first along.
    let replay = redeem(&server, &code, Some(&verifier), Some(LOOPBACK)).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);
    assert_eq!(replay.error(), "invalid_grant");
    let revoked = get_resource(&server, "/api/me", Some(access_token)).await;
    assert_eq!(revoked.challenge(), r#"Bearer error="invalid_token""#);
    let refresh = post_token(
        &server,
        None,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "public-app"),
            ("refresh_token", refresh_token),
        ],
    )
    .await;
    assert_eq!(refresh.error(), "invalid_grant");
}

#[tokio::test]
async fn login_hint_picks_the_user_and_default_user_is_configurable() {
    let server = TestServer::builder()
        .client("public-app", None, AuthMethod::None)
        .default_user("alice")
        .start()
        .await
        .unwrap();
    let (verifier, challenge) = pkce("a");
    for (hint, expected) in [("", "alice"), ("bob", "bob")] {
        let authorized = authorize(
            &server,
            &authorization_query(&challenge, &[("login_hint", hint)]),
        )
        .await;
        let code = authorized.param("code").unwrap();
        let tokens = redeem(&server, code, Some(&verifier), Some(LOOPBACK)).await;
        let resource = get_resource(&server, "/api/me", Some(tokens.str("access_token"))).await;
        assert_eq!(resource.str("username"), expected);
    }
}

#[tokio::test]
async fn a_code_needs_its_verifier_client_and_redirect_uri() {
    let server = server().await;
    let (verifier, challenge) = pkce("a");
    let (other_verifier, _) = pkce("b");

    let code = code_for(&server, &challenge).await;
    let wrong = redeem(&server, &code, Some(&other_verifier), Some(LOOPBACK)).await;
    assert_eq!(wrong.error(), "invalid_grant");
    // The code was spent by that attempt.
    let late = redeem(&server, &code, Some(&verifier), Some(LOOPBACK)).await;
    assert_eq!(late.error(), "invalid_grant");

    let code = code_for(&server, &challenge).await;
    let missing = redeem(&server, &code, None, Some(LOOPBACK)).await;
    assert_eq!(missing.error(), "invalid_grant");

    // The challenge itself is not a verifier.
    let code = code_for(&server, &challenge).await;
    let as_is = redeem(&server, &code, Some(&challenge), Some(LOOPBACK)).await;
    assert_eq!(as_is.error(), "invalid_grant");

    for redirect_uri in [
        Some("http://127.0.0.1:7778/callback"),
        Some("http://127.0.0.1:7777/callback/"),
        None,
    ] {
        let code = code_for(&server, &challenge).await;
        let answer = redeem(&server, &code, Some(&verifier), redirect_uri).await;
        assert_eq!(answer.error(), "invalid_grant", "{redirect_uri:?}");
    }

    let code = code_for(&server, &challenge).await;
    let other_client = post_token(
        &server,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", "post-app"),
            ("client_secret", "post-secret"),
            ("code", &code),
            ("code_verifier", &verifier),
            ("redirect_uri", LOOPBACK),
        ],
    )
    .await;
    assert_eq!(other_client.error(), "invalid_grant");

    let unknown = redeem(&server, "ac_nope", Some(&verifier), Some(LOOPBACK)).await;
    assert_eq!(unknown.error(), "invalid_grant");
    let no_code = post_token(
        &server,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", "public-app"),
        ],
    )
    .await;
    assert_eq!(no_code.error(), "invalid_request");
}

#[tokio::test]
async fn a_code_expires_after_60_seconds_on_the_servers_clock() {
    let clock = ManualClock::new();
    let server = TestServer::builder()
        .client("public-app", None, AuthMethod::None)
        .clock(clock.clone())
        .start()
        .await
        .unwrap();
    let (verifier, challenge) = pkce("a");
    let code = code_for(&server, &challenge).await;
    clock.advance(Duration::from_secs(59));
    let fresh = redeem(&server, &code, Some(&verifier), Some(LOOPBACK)).await;
    assert_eq!(fresh.status, StatusCode::OK);

    let code = code_for(&server, &challenge).await;
    clock.advance(Duration::from_secs(60));
    let expired = redeem(&server, &code, Some(&verifier), Some(LOOPBACK)).await;
    assert_eq!(expired.error(), "invalid_grant");
}

#[tokio::test]
async fn confidential_clients_redeem_codes_with_their_credentials() {
    let server = server().await;
    let (verifier, challenge) = pkce("a");
    let authorized = authorize(
        &server,
        &authorization_query(&challenge, &[("client_id", "basic-app")]),
    )
    .await;
    let code = authorized.param("code").unwrap();
    let pairs = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("code_verifier", verifier.as_str()),
        ("redirect_uri", LOOPBACK),
    ];
    let unauthenticated = post_token(&server, None, &pairs).await;
    assert_eq!(unauthenticated.error(), "invalid_client");
    // That attempt never reached the code, which is still good.
    let tokens = post_token(&server, Some(basic("basic-app", WEIRD_SECRET)), &pairs).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.json);
    assert!(tokens.json["refresh_token"].is_string());
}

#[tokio::test]
async fn authorization_errors_are_redirected_with_state() {
    let server = server().await;
    let (_, challenge) = pkce("a");
    let cases: [(&[(&str, &str)], &str); 7] = [
        (
            &[("code_challenge", ""), ("code_challenge_method", "")],
            "invalid_request",
        ),
        (&[("code_challenge_method", "plain")], "invalid_request"),
        (&[("code_challenge_method", "")], "invalid_request"),
        (&[("code_challenge", "too-short")], "invalid_request"),
        (&[("code_challenge", "")], "invalid_request"),
        (&[("response_type", "token")], "unsupported_response_type"),
        (&[("response_type", "")], "invalid_request"),
    ];
    for (extra, error) in cases {
        let refused = authorize(&server, &authorization_query(&challenge, extra)).await;
        assert_eq!(refused.status, StatusCode::FOUND, "{extra:?}");
        assert!(refused.location.as_deref().unwrap().starts_with(LOOPBACK));
        assert_eq!(refused.param("error"), Some(error), "{extra:?}");
        assert!(refused.param("error_description").is_some());
        assert_eq!(refused.param("state"), Some("st-123"));
        assert_eq!(refused.param("iss"), Some(server.url().as_str()));
        assert_eq!(refused.param("code"), None);
    }
    let bad_scope = authorize(
        &server,
        &authorization_query(&challenge, &[("scope", "a\"b")]),
    )
    .await;
    assert_eq!(bad_scope.param("error"), Some("invalid_scope"));

    // A repeated parameter (here `scope`) is refused too.
    let mut pairs = authorization_query(&challenge, &[]);
    pairs.push(("scope", "again"));
    let repeated = authorize(&server, &pairs).await;
    assert_eq!(repeated.param("error"), Some("invalid_request"));
    assert_eq!(server.authorization_requests(), 9);
}

#[tokio::test]
async fn pkce_can_be_made_optional_but_never_plain_or_downgraded() {
    let server = TestServer::builder()
        .client("public-app", None, AuthMethod::None)
        .require_pkce(false)
        .start()
        .await
        .unwrap();
    let without = authorize(
        &server,
        &authorization_query("", &[("code_challenge_method", "")]),
    )
    .await;
    let code = without.param("code").unwrap();
    let tokens = redeem(&server, code, None, Some(LOOPBACK)).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.json);

    // A verifier for a code that had no challenge is a downgrade (RFC 9700 §2.1.1).
    let (verifier, _) = pkce("a");
    let without = authorize(
        &server,
        &authorization_query("", &[("code_challenge_method", "")]),
    )
    .await;
    let code = without.param("code").unwrap();
    let downgrade = redeem(&server, code, Some(&verifier), Some(LOOPBACK)).await;
    assert_eq!(downgrade.error(), "invalid_grant");

    let plain = authorize(
        &server,
        &authorization_query(&verifier, &[("code_challenge_method", "plain")]),
    )
    .await;
    assert_eq!(plain.param("error"), Some("invalid_request"));
}

#[tokio::test]
async fn unknown_clients_and_redirect_uris_get_a_page_not_a_redirect() {
    let server = server().await;
    let (_, challenge) = pkce("a");
    let cases: [&[(&str, &str)]; 9] = [
        &[("redirect_uri", "https://evil.example/cb")],
        &[("redirect_uri", "http://localhost:7777/callback")],
        &[("redirect_uri", "https://127.0.0.1:7777/callback")],
        &[("redirect_uri", "http://127.0.0.1.evil.example/cb")],
        &[("redirect_uri", "http://127.0.0.1:7777/cb#fragment")],
        &[("redirect_uri", "not a url")],
        &[("redirect_uri", "")],
        &[("client_id", "stranger")],
        &[("client_id", "")],
    ];
    for extra in cases {
        // Even with an otherwise broken request: nothing goes to an unchecked redirect URI.
        let mut pairs = authorization_query(&challenge, extra);
        pairs.retain(|(n, _)| *n != "response_type");
        let refused = authorize(&server, &pairs).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{extra:?}");
        assert_eq!(refused.location, None);
        assert!(
            refused.headers[CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert_eq!(refused.headers[CACHE_CONTROL], "no-store");
        assert!(!refused.body.contains("evil"), "{}", refused.body);
    }
    // A repeated redirect_uri cannot be trusted either.
    let mut pairs = authorization_query(&challenge, &[]);
    pairs.push(("redirect_uri", "http://127.0.0.1:1/other"));
    let repeated = authorize(&server, &pairs).await;
    assert_eq!(repeated.status, StatusCode::BAD_REQUEST);
    assert_eq!(repeated.location, None);
}

#[tokio::test]
async fn registered_redirect_uris_are_matched_exactly() {
    let server = TestServer::builder()
        .client("web-app", Some("s"), AuthMethod::ClientSecretPost)
        .redirect_uri("web-app", "https://app.example/cb")
        .client("two-uris", None, AuthMethod::None)
        .redirect_uri("two-uris", "https://a.example/cb")
        .redirect_uri("two-uris", "https://b.example/cb")
        .start()
        .await
        .unwrap();
    let (verifier, challenge) = pkce("a");
    let web = |extra: &[(&'static str, &'static str)]| {
        let mut pairs = authorization_query(&challenge, &[("client_id", "web-app")]);
        pairs.retain(|(n, _)| *n != "redirect_uri");
        pairs.extend_from_slice(extra);
        pairs
    };
    let registered = authorize(&server, &web(&[("redirect_uri", "https://app.example/cb")])).await;
    assert_eq!(registered.status, StatusCode::FOUND);
    assert!(
        registered
            .location
            .as_deref()
            .unwrap()
            .starts_with("https://app.example/cb?code=")
    );
    for near_miss in [
        "https://app.example/cb/",
        "https://app.example/cb?x=1",
        "http://app.example/cb",
    ] {
        let refused = authorize(&server, &web(&[("redirect_uri", near_miss)])).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{near_miss}");
    }

    // With exactly one registered URI the parameter may be left out, and then the token
    // request may leave it out too.
    let implied = authorize(&server, &web(&[])).await;
    assert!(
        implied
            .location
            .as_deref()
            .unwrap()
            .starts_with("https://app.example/cb?code=")
    );
    let tokens = post_token(
        &server,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", "web-app"),
            ("client_secret", "s"),
            ("code", implied.param("code").unwrap()),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.json);

    // With two, it is required.
    let mut pairs = authorization_query(&challenge, &[("client_id", "two-uris")]);
    pairs.retain(|(n, _)| *n != "redirect_uri");
    assert_eq!(
        authorize(&server, &pairs).await.status,
        StatusCode::BAD_REQUEST
    );

    // Registration is checked when the server starts.
    let unregistered = TestServer::builder()
        .redirect_uri("nobody", "https://app.example/cb")
        .start()
        .await;
    assert_eq!(
        unregistered.unwrap_err().kind(),
        std::io::ErrorKind::InvalidInput
    );
    let relative = TestServer::builder()
        .client("a", None, AuthMethod::None)
        .redirect_uri("a", "/cb")
        .start()
        .await;
    assert!(relative.is_err());
}

#[tokio::test]
async fn deny_authorization_redirects_with_access_denied() {
    let server = server().await;
    let (_, challenge) = pkce("a");
    server.deny_authorization(true);
    let denied = authorize(&server, &authorization_query(&challenge, &[])).await;
    assert_eq!(denied.status, StatusCode::FOUND);
    assert_eq!(denied.param("error"), Some("access_denied"));
    assert!(denied.param("error_description").is_some());
    assert_eq!(denied.param("state"), Some("st-123"));
    assert_eq!(denied.param("code"), None);
    server.deny_authorization(false);
    let allowed = authorize(&server, &authorization_query(&challenge, &[])).await;
    assert!(allowed.param("code").is_some());
}

#[tokio::test]
async fn interactive_endpoints_take_one_method() {
    let server = server().await;
    let client = reqwest::Client::new();
    let post = client
        .post(server.authorization_url())
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.headers()["allow"], "GET");
    let get = client
        .get(server.device_authorization_url())
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(get.headers()["allow"], "POST");
}

#[tokio::test]
async fn oauth_client_knows_the_interactive_endpoints_and_issuer() {
    let server = server().await;
    let client = server.oauth_client("public-app").unwrap();
    assert_eq!(
        client.authorization_url().map(|u| u.as_str()),
        Some(server.authorization_url().as_str())
    );
    assert_eq!(
        client.device_authorization_url().map(|u| u.as_str()),
        Some(server.device_authorization_url().as_str())
    );
    assert_eq!(client.issuer(), Some(server.url().as_str()));
    assert_eq!(
        server.authorization_url(),
        format!("{}/authorize", server.url())
    );
    assert_eq!(
        server.device_authorization_url(),
        format!("{}/device_authorization", server.url())
    );
}

// --- the device authorization grant -------------------------------------------------------

async fn device_authorization(server: &TestServer, scope: &str) -> Answer {
    post_form(
        &server.device_authorization_url(),
        None,
        &[("client_id", "public-app"), ("scope", scope)],
    )
    .await
}

async fn poll(server: &TestServer, device_code: &str) -> Answer {
    post_token(
        server,
        None,
        &[
            ("grant_type", DEVICE_GRANT),
            ("client_id", "public-app"),
            ("device_code", device_code),
        ],
    )
    .await
}

/// What a browser following `verification_uri_complete` sees: status, content type, body.
async fn visit(url: &str) -> (StatusCode, String, String) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status();
    let content_type = response.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    (status, content_type, response.text().await.unwrap())
}

async fn device_server(clock: &ManualClock) -> TestServer {
    TestServer::builder()
        .client("public-app", None, AuthMethod::None)
        .client("basic-app", Some("s"), AuthMethod::ClientSecretBasic)
        .clock(clock.clone())
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn device_flow_polls_slows_down_and_issues_tokens_once() {
    let clock = ManualClock::new();
    let server = device_server(&clock).await;
    let started = device_authorization(&server, "tv").await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.json);
    assert_eq!(started.headers[CACHE_CONTROL], "no-store");
    let device_code = started.str("device_code").to_owned();
    let user_code = started.str("user_code").to_owned();
    assert_eq!(user_code.len(), 9);
    assert_eq!(&user_code[4..5], "-");
    assert!(
        user_code
            .chars()
            .filter(|c| *c != '-')
            .all(|c| "BCDFGHJKLMNPQRSTVWXZ".contains(c))
    );
    assert_eq!(
        started.str("verification_uri"),
        server.device_verification_url()
    );
    assert_eq!(
        started.str("verification_uri"),
        format!("{}/device", server.url())
    );
    let complete = started.str("verification_uri_complete").to_owned();
    assert_eq!(
        complete,
        format!("{}/device?user_code={user_code}", server.url())
    );
    assert_eq!(started.json["expires_in"], 600);
    assert_eq!(started.json["interval"], 5);
    assert_eq!(server.device_requests(), 1);

    let pending = poll(&server, &device_code).await;
    assert_eq!(pending.status, StatusCode::BAD_REQUEST);
    assert_eq!(pending.error(), "authorization_pending");
    let too_fast = poll(&server, &device_code).await;
    assert_eq!(too_fast.error(), "slow_down");
    // The interval is now 10 s for good (RFC 8628 §3.5).
    clock.advance(Duration::from_secs(6));
    assert_eq!(poll(&server, &device_code).await.error(), "slow_down");
    clock.advance(Duration::from_secs(15));
    assert_eq!(
        poll(&server, &device_code).await.error(),
        "authorization_pending"
    );

    let (status, content_type, body) = visit(&complete).await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/html"));
    assert!(!body.contains("<script"));

    clock.advance(Duration::from_secs(15));
    let tokens = poll(&server, &device_code).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.json);
    assert_eq!(tokens.str("scope"), "tv");
    assert!(tokens.json["refresh_token"].is_string());
    let resource = get_resource(&server, "/api/me", Some(tokens.str("access_token"))).await;
    assert_eq!(resource.str("username"), "user");
    assert_eq!(resource.str("scope"), "tv");

    clock.advance(Duration::from_secs(15));
    let reused = poll(&server, &device_code).await;
    assert_eq!(reused.error(), "invalid_grant");
    assert_eq!(server.token_requests_for(DEVICE_GRANT), 6);
    // Visiting again is harmless.
    assert_eq!(visit(&complete).await.0, StatusCode::OK);
}

#[tokio::test]
async fn denied_device_codes_get_access_denied() {
    let clock = ManualClock::new();
    let server = device_server(&clock).await;
    let started = device_authorization(&server, "tv").await;
    let device_code = started.str("device_code").to_owned();
    let user_code = started.str("user_code").to_owned();
    // User codes compare without case or dash.
    assert!(server.deny_device(&user_code.replace('-', "").to_lowercase()));
    assert!(!server.approve_device(&user_code), "no longer pending");
    assert_eq!(poll(&server, &device_code).await.error(), "access_denied");
    clock.advance(Duration::from_secs(5));
    assert_eq!(poll(&server, &device_code).await.error(), "access_denied");
    assert!(!server.deny_device("BBBB-BBBB"));

    // While authorizations are denied, the verification page denies too.
    server.deny_authorization(true);
    let started = device_authorization(&server, "tv").await;
    let (status, _, _) = visit(started.str("verification_uri_complete")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        poll(&server, started.str("device_code")).await.error(),
        "access_denied"
    );
}

#[tokio::test]
async fn approve_device_is_the_page_without_a_browser() {
    let clock = ManualClock::new();
    let server = device_server(&clock).await;
    let started = device_authorization(&server, "tv").await;
    assert!(server.approve_device(started.str("user_code")));
    let tokens = poll(&server, started.str("device_code")).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.json);

    // A device code belongs to its client.
    let started = device_authorization(&server, "tv").await;
    assert!(server.approve_device(started.str("user_code")));
    let stolen = post_token(
        &server,
        Some(basic("basic-app", "s")),
        &[
            ("grant_type", DEVICE_GRANT),
            ("device_code", started.str("device_code")),
        ],
    )
    .await;
    assert_eq!(stolen.error(), "invalid_grant");

    // Unknown codes, on the page and at the token endpoint.
    let (status, _, _) = visit(&format!(
        "{}?user_code=XXXX-XXXX",
        server.device_verification_url()
    ))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        visit(&server.device_verification_url()).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(poll(&server, "dc_nope").await.error(), "invalid_grant");
}

#[tokio::test]
async fn device_codes_expire_on_the_servers_clock() {
    let clock = ManualClock::new();
    let server = TestServer::builder()
        .client("public-app", None, AuthMethod::None)
        .device_code_lifetime(Duration::from_secs(30))
        .clock(clock.clone())
        .start()
        .await
        .unwrap();
    let started = device_authorization(&server, "tv").await;
    assert_eq!(started.json["expires_in"], 30);
    let device_code = started.str("device_code").to_owned();
    assert_eq!(
        poll(&server, &device_code).await.error(),
        "authorization_pending"
    );
    clock.advance(Duration::from_secs(30));
    assert_eq!(poll(&server, &device_code).await.error(), "expired_token");
    assert!(!server.approve_device(started.str("user_code")));
    let (status, _, _) = visit(started.str("verification_uri_complete")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(poll(&server, &device_code).await.error(), "expired_token");
}

#[tokio::test]
async fn device_interval_and_slow_down_are_configurable() {
    let server = TestServer::builder()
        .client("public-app", None, AuthMethod::None)
        .device_interval(None)
        .enforce_slow_down(false)
        .start()
        .await
        .unwrap();
    let started = device_authorization(&server, "").await;
    assert!(started.json.get("interval").is_none(), "{}", started.json);
    assert!(started.json.get("scope").is_none());
    let device_code = started.str("device_code").to_owned();
    for _ in 0..3 {
        assert_eq!(
            poll(&server, &device_code).await.error(),
            "authorization_pending"
        );
    }
    assert!(server.approve_device(started.str("user_code")));
    let tokens = poll(&server, &device_code).await;
    assert_eq!(tokens.status, StatusCode::OK);
    assert!(tokens.json.get("scope").is_none());

    // Without an interval the server still expects the 5 s of RFC 8628 §3.5.
    let clock = ManualClock::new();
    let strict = TestServer::builder()
        .client("public-app", None, AuthMethod::None)
        .device_interval(None)
        .clock(clock.clone())
        .start()
        .await
        .unwrap();
    let started = device_authorization(&strict, "").await;
    let device_code = started.str("device_code").to_owned();
    assert_eq!(
        poll(&strict, &device_code).await.error(),
        "authorization_pending"
    );
    clock.advance(Duration::from_secs(4));
    assert_eq!(poll(&strict, &device_code).await.error(), "slow_down");
    clock.advance(Duration::from_secs(10));
    assert_eq!(
        poll(&strict, &device_code).await.error(),
        "authorization_pending"
    );
}

#[tokio::test]
async fn device_authorization_authenticates_confidential_clients() {
    let clock = ManualClock::new();
    let server = device_server(&clock).await;
    let anonymous = post_form(
        &server.device_authorization_url(),
        None,
        &[("client_id", "basic-app")],
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.error(), "invalid_client");
    let stranger = post_form(
        &server.device_authorization_url(),
        None,
        &[("client_id", "stranger")],
    )
    .await;
    assert_eq!(stranger.error(), "invalid_client");
    let authenticated = post_form(
        &server.device_authorization_url(),
        Some(basic("basic-app", "s")),
        &[("scope", "tv")],
    )
    .await;
    assert_eq!(
        authenticated.status,
        StatusCode::OK,
        "{}",
        authenticated.json
    );
    assert!(server.approve_device(authenticated.str("user_code")));
    let tokens = post_token(
        &server,
        Some(basic("basic-app", "s")),
        &[
            ("grant_type", DEVICE_GRANT),
            ("device_code", authenticated.str("device_code")),
        ],
    )
    .await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.json);
    assert_eq!(server.device_requests(), 3);
}

// --- discovery ----------------------------------------------------------------------------

#[tokio::test]
async fn discovery_names_the_issuer_and_every_endpoint_at_both_well_known_urls() {
    let server = server().await;
    let client = oauth_client(
        &server,
        "basic-app",
        Some(WEIRD_SECRET),
        AuthMethod::ClientSecretBasic,
    );
    let metadata = discovery::discover(&client, server.url()).await.unwrap();
    let url = |u: &Option<url::Url>| u.as_ref().map(|u| u.as_str().to_owned());
    assert_eq!(metadata.issuer, server.url());
    assert_eq!(url(&metadata.token_endpoint), Some(server.token_url()));
    assert_eq!(
        url(&metadata.authorization_endpoint),
        Some(server.authorization_url())
    );
    assert_eq!(
        url(&metadata.device_authorization_endpoint),
        Some(server.device_authorization_url())
    );
    assert_eq!(
        url(&metadata.revocation_endpoint),
        Some(server.revocation_url())
    );
    let grants = metadata.grant_types_supported.clone().unwrap();
    for grant in [
        "authorization_code",
        "refresh_token",
        "client_credentials",
        "password",
        DEVICE_GRANT,
        JWT_BEARER_GRANT,
        TOKEN_EXCHANGE_GRANT,
    ] {
        assert!(grants.iter().any(|g| g == grant), "{grant} in {grants:?}");
    }
    let methods = metadata
        .token_endpoint_auth_methods_supported
        .clone()
        .unwrap();
    for method in [
        "client_secret_basic",
        "client_secret_post",
        "none",
        "private_key_jwt",
        "client_secret_jwt",
    ] {
        assert!(
            methods.iter().any(|m| m == method),
            "{method} in {methods:?}"
        );
    }
    assert_eq!(
        metadata.code_challenge_methods_supported,
        Some(vec!["S256".to_owned()])
    );
    assert!(metadata.authorization_response_iss_parameter_supported);
    // The OpenID Connect URL answered, so the RFC 8414 one was not asked.
    assert_eq!(server.discovery_requests(), 1);

    let [oidc, oauth] = discovery::metadata_urls(server.url()).unwrap();
    let fetch = |url: url::Url| async move {
        let response = reqwest::get(url).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json::<Value>().await.unwrap()
    };
    assert_eq!(fetch(oidc).await, fetch(oauth.clone()).await);
    assert_eq!(server.discovery_requests(), 3);
    let post = reqwest::Client::new().post(oauth).send().await.unwrap();
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);

    let quiet = TestServer::builder().send_iss(false).start().await.unwrap();
    let metadata = discovery::discover(&client, quiet.url()).await.unwrap();
    assert!(!metadata.authorization_response_iss_parameter_supported);
}

#[tokio::test]
async fn a_client_configured_by_discovery_alone_gets_tokens() {
    let server = server().await;
    let client = discovery::configure(
        unconfigured_client("basic-app", Some(WEIRD_SECRET), None),
        server.url(),
    )
    .await
    .unwrap();
    assert_eq!(client.issuer(), Some(server.url().as_str()));
    assert_eq!(client.auth_method(), AuthMethod::ClientSecretBasic);
    assert_eq!(
        client.revocation_url().map(|u| u.as_str()),
        Some(server.revocation_url().as_str())
    );
    let token = TokenSource::new(client, ClientCredentials::new().scope("api:read"))
        .token()
        .await
        .unwrap();
    assert_eq!(token.scope(), Some("api:read"));
    assert_eq!(server.token_requests_for("client_credentials"), 1);
}

// --- client assertions: private_key_jwt and client_secret_jwt ------------------------------

const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
const HMAC_SECRET: &str = "a shared secret long enough for HS256";
/// Signs JWT bearer grant assertions and JWT subject tokens, with `EC_PRIVATE`.
const ASSERTION_ISSUER: &str = "https://issuer.example";

/// Clients for every assertion case: `key-app` (`private_key_jwt`, `RSA_PUBLIC`), `hmac-app`
/// (`client_secret_jwt`), `basic-app` and `public-app`; and a trusted assertion issuer.
async fn assertion_server(clock: &ManualClock) -> TestServer {
    TestServer::builder()
        .client("key-app", None, AuthMethod::PrivateKeyJwt)
        .client_key("key-app", jwt::Algorithm::RS256, RSA_PUBLIC)
        .client("hmac-app", Some(HMAC_SECRET), AuthMethod::ClientSecretJwt)
        .client(
            "basic-app",
            Some(WEIRD_SECRET),
            AuthMethod::ClientSecretBasic,
        )
        .client("public-app", None, AuthMethod::None)
        .assertion_issuer(ASSERTION_ISSUER, jwt::Algorithm::ES256, EC_PUBLIC)
        .clock(clock.clone())
        .start()
        .await
        .unwrap()
}

/// A JWT signed by hand, for claims the crate would never send.
fn sign(algorithm: JoseAlgorithm, key: &str, claims: &Value) -> String {
    let key = match algorithm {
        JoseAlgorithm::HS256 => EncodingKey::from_secret(key.as_bytes()),
        JoseAlgorithm::ES256 => EncodingKey::from_ec_pem(key.as_bytes()).unwrap(),
        _ => EncodingKey::from_rsa_pem(key.as_bytes()).unwrap(),
    };
    jsonwebtoken::encode(&Header::new(algorithm), claims, &key).unwrap()
}

/// The server's clock in seconds since the epoch.
fn unix_time(clock: &ManualClock) -> u64 {
    clock
        .now_utc()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A fresh `jti`.
fn jti() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    format!(
        "jti-{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// Claims a server accepts from `iss`/`sub` `client` (or the assertion issuer) for `aud`.
fn claims(clock: &ManualClock, client: &str, aud: &str) -> Value {
    let now = unix_time(clock);
    json!({ "iss": client, "sub": client, "aud": aud, "iat": now, "exp": now + 60, "jti": jti() })
}

/// `claims` with `name` set to `value`, or removed when `value` is null.
fn with(mut claims: Value, name: &str, value: Value) -> Value {
    if value.is_null() {
        claims.as_object_mut().unwrap().remove(name);
    } else {
        claims[name] = value;
    }
    claims
}

async fn post_client_assertion(
    server: &TestServer,
    client_id: Option<&str>,
    assertion: &str,
) -> Answer {
    let mut pairs = vec![
        ("grant_type", "client_credentials"),
        ("client_assertion_type", CLIENT_ASSERTION_TYPE),
        ("client_assertion", assertion),
    ];
    if let Some(client_id) = client_id {
        pairs.push(("client_id", client_id));
    }
    post_token(server, None, &pairs).await
}

#[tokio::test]
async fn private_key_jwt_with_the_registered_key_gets_a_token() {
    let clock = ManualClock::new();
    let server = assertion_server(&clock).await;
    let client = registered_client(
        &server,
        "key-app",
        Extra {
            key: Some(SigningKey::rs256_pem(RSA_PRIVATE).unwrap()),
            ..Extra::default()
        },
    );
    assert_eq!(client.auth_method(), AuthMethod::PrivateKeyJwt);
    let token = TokenSource::new(client.clone(), ClientCredentials::new().scope("api:read"))
        .token()
        .await
        .unwrap();
    let resource = get_resource(
        &server,
        "/api/hello",
        Some(token.access_token().expose_secret()),
    )
    .await;
    assert_eq!(resource.status, StatusCode::OK);
    assert_eq!(resource.str("client_id"), "key-app");
    assert_eq!(resource.str("scope"), "api:read");

    // The revocation endpoint takes the same assertions.
    client
        .revoke(token.access_token(), TokenTypeHint::AccessToken)
        .await
        .unwrap();
    assert_eq!(server.revocation_requests(), 1);
    let revoked = get_resource(
        &server,
        "/api/hello",
        Some(token.access_token().expose_secret()),
    )
    .await;
    assert_eq!(revoked.status, StatusCode::UNAUTHORIZED);

    // Addressed to the issuer rather than the token endpoint, as Okta wants it.
    let by_issuer = registered_client(
        &server,
        "key-app",
        Extra {
            key: Some(SigningKey::rs256_pem(RSA_PRIVATE).unwrap()),
            audience_issuer: true,
            ..Extra::default()
        },
    );
    TokenSource::new(by_issuer, ClientCredentials::new())
        .token()
        .await
        .unwrap();

    let hmac = server.oauth_client("hmac-app").unwrap();
    assert_eq!(hmac.auth_method(), AuthMethod::ClientSecretJwt);
    TokenSource::new(hmac, ClientCredentials::new())
        .token()
        .await
        .unwrap();
    assert_eq!(server.token_requests_for("client_credentials"), 3);
}

#[tokio::test]
async fn private_key_jwt_with_a_wrong_key_or_an_expired_assertion_is_refused() {
    let clock = ManualClock::new();
    let server = assertion_server(&clock).await;
    let refusal = |error: oauth_layer::Error| match error {
        oauth_layer::Error::Server(e) => (e.status.as_u16(), e.code),
        other => panic!("not a server error: {other}"),
    };

    let wrong_key = registered_client(
        &server,
        "key-app",
        Extra {
            key: Some(SigningKey::rs256_pem(RSA_KEY).unwrap()),
            ..Extra::default()
        },
    );
    let error = TokenSource::new(wrong_key, ClientCredentials::new())
        .token()
        .await
        .unwrap_err();
    assert_eq!(refusal(error), (401, ErrorCode::InvalidClient));

    // The client's clock lags the server's by an hour: its assertions arrive expired.
    clock.advance(Duration::from_secs(3600));
    let late = registered_client(
        &server,
        "key-app",
        Extra {
            key: Some(SigningKey::rs256_pem(RSA_PRIVATE).unwrap()),
            clock: Some(ManualClock::new()),
            ..Extra::default()
        },
    );
    let error = TokenSource::new(late, ClientCredentials::new())
        .token()
        .await
        .unwrap_err();
    assert_eq!(refusal(error), (401, ErrorCode::InvalidClient));
    assert_eq!(server.token_requests_for("client_credentials"), 2);
}

#[tokio::test]
async fn client_assertions_are_refused_unless_key_claims_and_time_fit() {
    const RS: (JoseAlgorithm, &str) = (JoseAlgorithm::RS256, RSA_PRIVATE);
    const OTHER_RS: (JoseAlgorithm, &str) = (JoseAlgorithm::RS256, RSA_KEY);
    const PS: (JoseAlgorithm, &str) = (JoseAlgorithm::PS256, RSA_PRIVATE);
    const HS: (JoseAlgorithm, &str) = (JoseAlgorithm::HS256, HMAC_SECRET);
    const OTHER_HS: (JoseAlgorithm, &str) = (JoseAlgorithm::HS256, "not the secret");
    let clock = ManualClock::new();
    let server = assertion_server(&clock).await;
    let (url, now) = (server.url(), unix_time(&clock));
    let token_url = server.token_url();
    let null = Value::Null;
    // (case, client_id sent, iss and sub, signed with, claims changed (null removes),
    //  None if accepted or Some(why it is refused))
    #[rustfmt::skip]
    let cases = [
        ("right key", Some("key-app"), "key-app", RS, json!({}), None),
        ("aud the issuer", Some("key-app"), "key-app", RS, json!({ "aud": url }), None),
        ("aud a list", Some("key-app"), "key-app", RS, json!({ "aud": ["x", token_url] }), None),
        ("iss names the client", None, "key-app", RS, json!({}), None),
        ("client_secret_jwt", Some("hmac-app"), "hmac-app", HS, json!({}), None),
        ("another RSA key", Some("key-app"), "key-app", OTHER_RS, json!({}), Some("key")),
        ("another algorithm", Some("key-app"), "key-app", PS, json!({}), Some("algorithm")),
        ("another secret", Some("hmac-app"), "hmac-app", OTHER_HS, json!({}), Some("key")),
        ("wrong aud", Some("key-app"), "key-app", RS, json!({ "aud": "x" }), Some("aud")),
        ("no aud", Some("key-app"), "key-app", RS, json!({ "aud": null }), Some("aud")),
        ("expired", Some("key-app"), "key-app", RS, json!({ "exp": now - 1 }), Some("expired")),
        ("no exp", Some("key-app"), "key-app", RS, json!({ "exp": null }), Some("no exp")),
        ("early", Some("key-app"), "key-app", RS, json!({ "nbf": now + 120 }), Some("nbf")),
        ("iss another", Some("key-app"), "key-app", RS, json!({ "iss": "x" }), Some("iss and")),
        ("sub a user", Some("key-app"), "key-app", RS, json!({ "sub": "x" }), Some("and sub")),
        ("no jti", Some("key-app"), "key-app", RS, json!({ "jti": null }), Some("jti")),
        ("a Basic client", Some("basic-app"), "basic-app", RS, json!({}), Some("registered for")),
        ("unknown client", Some("nobody"), "nobody", RS, json!({}), Some("unknown client")),
        ("not a JWT", Some("key-app"), "key-app", RS, null, Some("malformed")),
    ];
    for (case, client_id, client, (algorithm, key), changes, refusal) in cases {
        let assertion = match changes.as_object() {
            None => "not.a.jwt".to_owned(),
            Some(changes) => {
                let mut claims = claims(&clock, client, &token_url);
                for (name, value) in changes {
                    claims = with(claims, name, value.clone());
                }
                sign(algorithm, key, &claims)
            }
        };
        let answer = post_client_assertion(&server, client_id, &assertion).await;
        match refusal {
            None => assert_eq!(answer.status, StatusCode::OK, "{case}: {}", answer.json),
            Some(why) => {
                assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{case}");
                assert_eq!(answer.error(), "invalid_client", "{case}");
                assert_eq!(answer.challenge(), "Basic", "{case}");
                let description = answer.str("error_description");
                assert!(description.contains(why), "{case}: {description}");
            }
        }
    }
}

#[tokio::test]
async fn a_client_assertion_is_accepted_once_and_alone() {
    let clock = ManualClock::new();
    let server = assertion_server(&clock).await;
    let assertion = sign(
        JoseAlgorithm::RS256,
        RSA_PRIVATE,
        &claims(&clock, "key-app", &server.token_url()),
    );
    let first = post_client_assertion(&server, Some("key-app"), &assertion).await;
    assert_eq!(first.status, StatusCode::OK);
    let replay = post_client_assertion(&server, Some("key-app"), &assertion).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    assert!(replay.str("error_description").contains("used before"));

    // (case, Basic header, client_assertion_type, an assertion, client_secret); each gets
    // invalid_request.
    const TYPE: &str = CLIENT_ASSERTION_TYPE;
    let basic_header = Some(basic("key-app", "x"));
    #[rustfmt::skip]
    let cases = [
        ("with Basic too", basic_header, Some(TYPE), true, None),
        ("with a client_secret too", None, Some(TYPE), true, Some("x")),
        ("another assertion type", None, Some("urn:example:saml"), true, None),
        ("no assertion", None, Some(TYPE), false, None),
    ];
    for (case, authorization, assertion_type, with_assertion, secret) in cases {
        let assertion = with_assertion.then(|| {
            let claims = claims(&clock, "key-app", &server.token_url());
            sign(JoseAlgorithm::RS256, RSA_PRIVATE, &claims)
        });
        let params = [
            ("grant_type", Some("client_credentials")),
            ("client_id", Some("key-app")),
            ("client_assertion_type", assertion_type),
            ("client_assertion", assertion.as_deref()),
            ("client_secret", secret),
        ];
        let pairs: Vec<(&str, &str)> = params
            .into_iter()
            .filter_map(|(name, value)| Some((name, value?)))
            .collect();
        let answer = post_token(&server, authorization, &pairs).await;
        let status = answer.status;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {}", answer.json);
        assert_eq!(answer.error(), "invalid_request", "{case}");
    }
}

// --- the JWT bearer grant -------------------------------------------------------------------

fn jwt_bearer(subject: &str) -> JwtBearer {
    JwtBearer::new(SigningKey::es256_pem(EC_PRIVATE).unwrap(), ASSERTION_ISSUER).subject(subject)
}

#[tokio::test]
async fn jwt_bearer_grant_issues_a_token_for_the_assertions_subject() {
    let clock = ManualClock::new();
    let server = assertion_server(&clock).await;
    let flow = || jwt_bearer("alice").scope("api:read");
    #[rustfmt::skip]
    let cases = [
        ("scope parameter", flow(), "public-app"),
        ("scope claim", flow().scope_claim(true), "public-app"),
        ("aud the issuer, a confidential client", flow().audience(server.url()), "basic-app"),
    ];
    for (case, flow, client_id) in cases {
        let client = server.oauth_client(client_id).unwrap();
        let token = TokenSource::new(client, flow).token().await.unwrap();
        assert_eq!(token.scope(), Some("api:read"), "{case}");
        assert!(token.refresh_token().is_none(), "{case}");
        let resource = get_resource(
            &server,
            "/api/hello",
            Some(token.access_token().expose_secret()),
        )
        .await;
        assert_eq!(resource.status, StatusCode::OK, "{case}");
        assert_eq!(resource.str("username"), "alice", "{case}");
        assert_eq!(resource.str("client_id"), client_id, "{case}");
    }
    assert_eq!(server.token_requests_for(JWT_BEARER_GRANT), 3);
}

#[tokio::test]
async fn jwt_bearer_grant_refuses_untrusted_wrong_or_stale_assertions() {
    let clock = ManualClock::new();
    let server = assertion_server(&clock).await;
    let client = || server.oauth_client("public-app").unwrap();
    let refused = |error: oauth_layer::Error| match error {
        oauth_layer::Error::Server(e) => {
            assert_eq!(e.status.as_u16(), 400);
            assert_eq!(e.code, ErrorCode::InvalidGrant);
            e.description.unwrap_or_default()
        }
        other => panic!("not a server error: {other}"),
    };
    let (ec, rsa) = (
        || SigningKey::es256_pem(EC_PRIVATE),
        || SigningKey::rs256_pem(RSA_PRIVATE),
    );
    let stranger = "https://stranger.example";
    let elsewhere = "https://elsewhere.example/token";
    #[rustfmt::skip]
    let cases = [
        ("untrusted issuer", JwtBearer::new(ec().unwrap(), stranger), "not a trusted issuer"),
        ("another key", JwtBearer::new(rsa().unwrap(), ASSERTION_ISSUER), "registered key"),
        ("wrong aud", jwt_bearer("alice").audience(elsewhere), "aud"),
    ];
    for (case, flow, why) in cases {
        let description = refused(TokenSource::new(client(), flow).token().await.unwrap_err());
        assert!(description.contains(why), "{case}: {description}");
    }

    // The client's clock lags the server's by an hour.
    clock.advance(Duration::from_secs(3600));
    let late = registered_client(
        &server,
        "public-app",
        Extra {
            clock: Some(ManualClock::new()),
            ..Extra::default()
        },
    );
    let description = refused(
        TokenSource::new(late, jwt_bearer("alice"))
            .token()
            .await
            .unwrap_err(),
    );
    assert!(description.contains("expired"), "{description}");

    // Claims the crate never leaves out, and a replay.
    let token_url = server.token_url();
    let good = || claims(&clock, ASSERTION_ISSUER, &token_url);
    let signed = |claims: &Value| sign(JoseAlgorithm::ES256, EC_PRIVATE, claims);
    let replayed = signed(&good());
    #[rustfmt::skip]
    let cases = [
        ("no sub", signed(&with(good(), "sub", Value::Null)), "no sub"),
        ("no exp", signed(&with(good(), "exp", Value::Null)), "no exp"),
        ("first use", replayed.clone(), ""),
        ("replay", replayed, "used before"),
    ];
    for (case, assertion, why) in cases {
        let answer = post_token(
            &server,
            None,
            &[
                ("grant_type", JWT_BEARER_GRANT),
                ("client_id", "public-app"),
                ("assertion", &assertion),
            ],
        )
        .await;
        if why.is_empty() {
            assert_eq!(answer.status, StatusCode::OK, "{case}: {}", answer.json);
        } else {
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{case}");
            assert_eq!(answer.error(), "invalid_grant", "{case}");
            assert!(
                answer.str("error_description").contains(why),
                "{case}: {}",
                answer.json
            );
        }
    }
    let missing = post_token(
        &server,
        None,
        &[
            ("grant_type", JWT_BEARER_GRANT),
            ("client_id", "public-app"),
        ],
    )
    .await;
    assert_eq!(missing.error(), "invalid_request");
}

// --- token exchange -----------------------------------------------------------------------

const BACKEND: &str = "https://backend.example";

async fn exchange_server() -> TestServer {
    TestServer::builder()
        .client(
            "basic-app",
            Some(WEIRD_SECRET),
            AuthMethod::ClientSecretBasic,
        )
        .client("public-app", None, AuthMethod::None)
        .user("alice", "wonderland")
        .assertion_issuer(ASSERTION_ISSUER, jwt::Algorithm::ES256, EC_PUBLIC)
        .exchange_audience(BACKEND)
        .exchange_audience("https://api.example/orders")
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn token_exchange_trades_the_users_token_for_one_on_the_actors_behalf() {
    let server = exchange_server().await;
    let client = server.oauth_client("basic-app").unwrap();
    let user = TokenSource::new(
        server.oauth_client("public-app").unwrap(),
        Password::new("alice", "wonderland").scope("orders:read"),
    );
    let own = TokenSource::new(client.clone(), ClientCredentials::new());
    let exchange = TokenExchange::new(SubjectToken::source(user))
        .actor(SubjectToken::source(own))
        .audience(BACKEND)
        .resource("https://api.example/orders")
        .requested_token_type(ACCESS_TOKEN_TYPE);
    let token = TokenSource::new(client, exchange).token().await.unwrap();
    assert_eq!(token.issued_token_type(), Some(ACCESS_TOKEN_TYPE));
    assert_eq!(token.scope(), Some("orders:read"));
    assert!(token.refresh_token().is_none());
    let resource = get_resource(
        &server,
        "/api/hello",
        Some(token.access_token().expose_secret()),
    )
    .await;
    assert_eq!(resource.status, StatusCode::OK);
    assert_eq!(resource.str("username"), "alice");
    assert_eq!(resource.str("actor"), "basic-app");
    assert_eq!(resource.str("client_id"), "basic-app");
    assert_eq!(
        resource.json["audience"],
        json!([BACKEND, "https://api.example/orders"])
    );
    assert_eq!(server.token_requests_for(TOKEN_EXCHANGE_GRANT), 1);

    // A JWT of a trusted issuer is a subject token too, with its own scope.
    let jwt = sign(
        JoseAlgorithm::ES256,
        EC_PRIVATE,
        &json!({ "iss": ASSERTION_ISSUER, "sub": "bob", "exp": unix_time(&ManualClock::new()) + 60, "scope": "profile" }),
    );
    let exchange = TokenExchange::new(SubjectToken::fixed(jwt, JWT_TOKEN_TYPE)).audience(BACKEND);
    let token = TokenSource::new(server.oauth_client("public-app").unwrap(), exchange)
        .token()
        .await
        .unwrap();
    assert_eq!(token.scope(), Some("profile"));
    let resource = get_resource(
        &server,
        "/api/hello",
        Some(token.access_token().expose_secret()),
    )
    .await;
    assert_eq!(resource.str("username"), "bob");
    assert!(resource.json.get("actor").is_none());
}

/// Parameters changed from a default request.
type Changes<'a> = &'a [(&'a str, &'a str)];
/// `None` when accepted, else the `error` and words of the `error_description`.
type Refusal<'a> = Option<(&'a str, &'a str)>;

#[tokio::test]
async fn token_exchange_refuses_unknown_tokens_and_targets() {
    const ST: &str = "subject_token";
    const STT: &str = "subject_token_type";
    const AT: &str = "actor_token";
    const ATT: &str = "actor_token_type";
    const ACCESS: &str = ACCESS_TOKEN_TYPE;
    const SAML: &str = "urn:ietf:params:oauth:token-type:saml2";
    const REFRESH: &str = "urn:ietf:params:oauth:token-type:refresh_token";
    let server = exchange_server().await;
    let subject = client_credentials_token(&server, "api:read").await;
    let subject = subject.str("access_token").to_owned();
    let exp = unix_time(&ManualClock::new()) + 60;
    let claims = json!({ "iss": ASSERTION_ISSUER, "sub": "bob", "exp": exp });
    let foreign = sign(JoseAlgorithm::RS256, RSA_PRIVATE, &claims);
    let (s, f) = (subject.as_str(), foreign.as_str());
    // (case, parameters changed from subject_token=<an access token of the server> with its
    //  type ("" removes one), None if accepted or Some((error, why)))
    #[rustfmt::skip]
    let cases: [(&str, Changes, Refusal); 12] = [
        ("accepted", &[("audience", BACKEND)], None),
        ("no subject token", &[(ST, ""), (STT, "")], Some(("invalid_request", "is missing"))),
        ("no subject token type", &[(STT, "")], Some(("invalid_request", "go together"))),
        ("unknown subject token", &[(ST, "at_forged")], Some(("invalid_request", "unknown"))),
        ("a SAML subject token", &[(STT, SAML)], Some(("invalid_request", "not supported"))),
        ("a JWT of another key", &[(ST, f), (STT, JWT_TOKEN_TYPE)], Some(("invalid_request", ST))),
        ("actor without its type", &[(AT, s)], Some(("invalid_request", "go together"))),
        ("unknown actor", &[(AT, "at_forged"), (ATT, ACCESS)], Some(("invalid_request", AT))),
        ("audience not served", &[("audience", "https://evil.example")], Some(("invalid_target", "evil"))),
        ("resource not served", &[("resource", "https://evil.example/")], Some(("invalid_target", "evil"))),
        ("resource not a URI", &[("resource", "backend")], Some(("invalid_target", "absolute URI"))),
        ("refresh token wanted", &[("requested_token_type", REFRESH)], Some(("invalid_request", "not supported"))),
    ];
    for (case, changes, refusal) in cases {
        let mut pairs = vec![("grant_type", TOKEN_EXCHANGE_GRANT), (ST, s), (STT, ACCESS)];
        for (name, value) in changes {
            pairs.retain(|(n, _)| n != name);
            if !value.is_empty() {
                pairs.push((name, value));
            }
        }
        let answer = post_token(&server, Some(basic("basic-app", WEIRD_SECRET)), &pairs).await;
        match refusal {
            None => {
                assert_eq!(answer.status, StatusCode::OK, "{case}: {}", answer.json);
                assert_eq!(answer.str("issued_token_type"), ACCESS, "{case}");
            }
            Some((error, why)) => {
                assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{case}");
                assert_eq!(answer.error(), error, "{case}");
                let description = answer.str("error_description");
                assert!(description.contains(why), "{case}: {description}");
            }
        }
    }

    // A revoked subject token is refused like an unknown one, and the crate says so.
    server.revoke_all_access_tokens();
    let exchange = TokenExchange::new(SubjectToken::fixed(subject, ACCESS_TOKEN_TYPE));
    let error = TokenSource::new(server.oauth_client("basic-app").unwrap(), exchange)
        .token()
        .await
        .unwrap_err();
    match error {
        oauth_layer::Error::Server(e) => assert_eq!(e.code, ErrorCode::InvalidRequest),
        other => panic!("not a server error: {other}"),
    }
}

// --- DPoP (RFC 9449) and the resource's challenges ---------------------------------------------
//
// The client side is written here by hand, independent of the crate's own DPoP code: proofs are
// signed with jsonwebtoken and thumbprints computed from RFC 7638 directly.

/// The public point of `EC_PRIVATE` (P-256), base64url.
const EC_X: &str = "7MvaOV5gEfJ6x3yet6KJTNu8h68-sVAbWjoYmcYpod0";
const EC_Y: &str = "8wNCuNEThlavruh0XTRQ_bG2vGI3Dr2buNLNhu4PB6k";

/// A DPoP key held by the test: signs proofs by hand.
struct Prover {
    key: EncodingKey,
    alg: JoseAlgorithm,
    jwk: Value,
}

impl Prover {
    fn es256() -> Self {
        Self {
            key: EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap(),
            alg: JoseAlgorithm::ES256,
            jwk: json!({ "kty": "EC", "crv": "P-256", "x": EC_X, "y": EC_Y }),
        }
    }

    fn eddsa() -> Self {
        Self {
            key: EncodingKey::from_ed_pem(test_keys::ED_KEY.as_bytes()).unwrap(),
            alg: JoseAlgorithm::EdDSA,
            jwk: json!({ "kty": "OKP", "crv": "Ed25519", "x": test_keys::ED_X }),
        }
    }

    fn ps256() -> Self {
        Self {
            key: EncodingKey::from_rsa_pem(RSA_KEY.as_bytes()).unwrap(),
            alg: JoseAlgorithm::PS256,
            jwk: json!({ "kty": "RSA", "e": "AQAB", "n": test_keys::RSA_N }),
        }
    }

    fn alg_name(&self) -> &'static str {
        match self.alg {
            JoseAlgorithm::ES256 => "ES256",
            JoseAlgorithm::EdDSA => "EdDSA",
            _ => "PS256",
        }
    }

    /// RFC 7638: the required members in lexicographic order, no whitespace, SHA-256.
    fn jkt(&self) -> String {
        use sha2::{Digest, Sha256};
        let j = &self.jwk;
        let canonical = match j["kty"].as_str().unwrap() {
            "EC" => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                j["crv"].as_str().unwrap(),
                j["x"].as_str().unwrap(),
                j["y"].as_str().unwrap()
            ),
            "OKP" => format!(
                r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#,
                j["crv"].as_str().unwrap(),
                j["x"].as_str().unwrap()
            ),
            _ => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                j["e"].as_str().unwrap(),
                j["n"].as_str().unwrap()
            ),
        };
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    fn header(&self) -> Value {
        json!({ "typ": "dpop+jwt", "alg": self.alg_name(), "jwk": self.jwk })
    }

    /// Fresh claims for `htm` `htu` now (by the system clock), with `extra` merged in (a `null`
    /// removes a claim).
    fn claims(&self, htm: &str, htu: &str, extra: Value) -> Value {
        let mut claims = json!({
            "jti": fresh_jti(),
            "htm": htm,
            "htu": htu,
            "iat": std::time::SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs(),
        });
        for (name, value) in extra.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        claims
    }

    /// A proof for `htm` `htu`, with `extra` claims.
    fn proof(&self, htm: &str, htu: &str, extra: Value) -> String {
        self.sign(&self.header(), &self.claims(htm, htu, extra))
    }

    /// A resource proof: `ath` of `token`.
    fn resource_proof(&self, htm: &str, htu: &str, token: &str, extra: Value) -> String {
        use sha2::{Digest, Sha256};
        let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
        let mut all = json!({ "ath": ath });
        for (name, value) in extra.as_object().unwrap() {
            all[name] = value.clone();
        }
        self.proof(htm, htu, all)
    }

    /// Any header and claims, signed with this key.
    fn sign(&self, header: &Value, claims: &Value) -> String {
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &self.key, self.alg).unwrap();
        format!("{message}.{signature}")
    }
}

fn fresh_jti() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("jti-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The clients of [`server`], for servers with more settings.
fn registered() -> oauth_layer::testing::TestServerBuilder {
    TestServer::builder()
        .client(
            "basic-app",
            Some(WEIRD_SECRET),
            AuthMethod::ClientSecretBasic,
        )
        .client(
            "post-app",
            Some("post-secret"),
            AuthMethod::ClientSecretPost,
        )
        .client("public-app", None, AuthMethod::None)
        .user("alice", "wonderland")
}

/// A token request with each of `proofs` as a `DPoP` header.
async fn post_token_with_proofs(
    server: &TestServer,
    basic_auth: Option<String>,
    proofs: &[String],
    pairs: &[(&str, &str)],
) -> Answer {
    let mut request = reqwest::Client::new()
        .post(server.token_url())
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form(pairs));
    if let Some(authorization) = basic_auth {
        request = request.header(AUTHORIZATION, authorization);
    }
    for proof in proofs {
        request = request.header("DPoP", proof);
    }
    answer(request.send().await.unwrap()).await
}

/// Client credentials for `basic-app` with `scope`, with the proof (if any).
async fn dpop_client_credentials(
    server: &TestServer,
    proof: Option<String>,
    scope: &str,
) -> Answer {
    let proofs: Vec<String> = proof.into_iter().collect();
    post_token_with_proofs(
        server,
        Some(basic("basic-app", WEIRD_SECRET)),
        &proofs,
        &[("grant_type", "client_credentials"), ("scope", scope)],
    )
    .await
}

/// A DPoP-bound client credentials token with `scope`, made with `prover`.
async fn dpop_token(server: &TestServer, prover: &Prover, scope: &str) -> String {
    let proof = prover.proof("POST", &server.token_url(), json!({}));
    let answer = dpop_client_credentials(server, Some(proof), scope).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.str("token_type"), "DPoP");
    answer.str("access_token").to_owned()
}

/// `GET path` with `Authorization: {scheme} {token}` and each of `proofs` as a `DPoP` header.
async fn resource_with(
    server: &TestServer,
    path: &str,
    scheme: &str,
    token: &str,
    proofs: &[String],
) -> Answer {
    let mut request = reqwest::Client::new()
        .get(server.resource_url(path))
        .header(AUTHORIZATION, format!("{scheme} {token}"));
    for proof in proofs {
        request = request.header("DPoP", proof);
    }
    answer(request.send().await.unwrap()).await
}

/// `GET path` with the DPoP-bound `token` and a fresh proof by `prover`, plus `extra` claims.
async fn dpop_get(
    server: &TestServer,
    prover: &Prover,
    path: &str,
    token: &str,
    extra: Value,
) -> Answer {
    let proof = prover.resource_proof("GET", &server.resource_url(path), token, extra);
    resource_with(server, path, "DPoP", token, &[proof]).await
}

const DPOP_ALGS: &str = r#"algs="ES256 EdDSA PS256""#;

#[tokio::test]
async fn a_dpop_proof_gets_a_bound_token_that_the_resource_accepts_with_a_proof() {
    let server = server().await;
    for prover in [Prover::es256(), Prover::eddsa(), Prover::ps256()] {
        let token = dpop_token(&server, &prover, "read").await;
        let info = server.access_token_info(&token).unwrap();
        assert_eq!(info.jkt.as_deref(), Some(prover.jkt().as_str()));
        assert_eq!(info.scope.as_deref(), Some("read"));

        let logged = server.token_request_log().pop().unwrap();
        assert_eq!(logged.grant_type.as_deref(), Some("client_credentials"));
        assert_eq!(logged.status, 200);
        assert_eq!(logged.token_type.as_deref(), Some("DPoP"));
        let proof = logged.dpop.unwrap();
        assert!(proof.is_valid(), "{:?}", proof.problem);
        assert_eq!(proof.jkt.as_deref(), Some(prover.jkt().as_str()));
        assert_eq!(proof.htu.as_deref(), Some(server.token_url().as_str()));
        assert_eq!(proof.alg.as_deref(), Some(prover.alg_name()));

        let ok = dpop_get(&server, &prover, "/api/hello", &token, json!({})).await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.json);
        assert_eq!(ok.str("token_type"), "DPoP");
        assert_eq!(ok.str("jkt"), prover.jkt());
        let recorded = server.resource_requests().pop().unwrap();
        assert_eq!(recorded.scheme(), Some("DPoP"));
        assert_eq!(recorded.dpop_token(), Some(token.as_str()));
        assert!(recorded.dpop.unwrap().is_valid());
        assert_eq!(recorded.challenge, None);
    }
    // Without a proof the same grant still issues bearer tokens.
    let bearer = dpop_client_credentials(&server, None, "read").await;
    assert_eq!(bearer.str("token_type"), "Bearer");
    assert_eq!(server.token_request_log().pop().unwrap().dpop, None);
    let document = reqwest::get(format!(
        "{}/.well-known/oauth-authorization-server",
        server.url()
    ))
    .await
    .unwrap()
    .json::<Value>()
    .await
    .unwrap();
    assert_eq!(
        document["dpop_signing_alg_values_supported"],
        json!(["ES256", "EdDSA", "PS256"])
    );
}

#[tokio::test]
async fn the_token_endpoint_refuses_every_kind_of_bad_proof() {
    let server = server().await;
    let prover = Prover::es256();
    let url = server.token_url();
    let now = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = || prover.claims("POST", &url, json!({}));
    let with_header = |change: Value| {
        let mut header = prover.header();
        for (name, value) in change.as_object().unwrap() {
            header[name] = value.clone();
        }
        prover.sign(&header, &claims())
    };
    let mut private_jwk = prover.jwk.clone();
    private_jwk["d"] = json!("3C3D7dVjrPBNfUBOiMX-2H7-vrllf2-MpZTksqDo6S8");
    let unsigned = {
        let header = json!({ "typ": "dpop+jwt", "alg": "none", "jwk": prover.jwk });
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims().to_string())
        )
    };
    let hs256 = {
        let header =
            json!({ "typ": "dpop+jwt", "alg": "HS256", "jwk": { "kty": "oct", "k": "c2VjcmV0" } });
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims().to_string())
        );
        let signature = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &EncodingKey::from_secret(b"secret"),
            JoseAlgorithm::HS256,
        )
        .unwrap();
        format!("{message}.{signature}")
    };
    // Signed by one Ed25519 key but naming another.
    let other_key = {
        let other_jwk = json!({ "kty": "OKP", "crv": "Ed25519", "x": test_keys::OTHER_ED_X });
        Prover::eddsa().sign(
            &json!({ "typ": "dpop+jwt", "alg": "EdDSA", "jwk": other_jwk }),
            &claims(),
        )
    };
    let forged_signature = {
        let good = prover.proof("POST", &url, json!({}));
        let (message, _) = good.rsplit_once('.').unwrap();
        let other = prover.proof("POST", &url, json!({}));
        format!("{message}.{}", other.rsplit_once('.').unwrap().1)
    };
    let replayed = prover.proof("POST", &url, json!({}));
    let first = dpop_client_credentials(&server, Some(replayed.clone()), "read").await;
    assert_eq!(first.status, StatusCode::OK);

    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        ("typ JWT", vec![with_header(json!({ "typ": "JWT" }))], "typ"),
        ("no typ", vec![with_header(json!({ "typ": null }))], "typ"),
        ("alg none", vec![unsigned], "alg"),
        ("alg HS256", vec![hs256], "alg"),
        (
            "private jwk",
            vec![with_header(json!({ "jwk": private_jwk }))],
            "private",
        ),
        ("no jwk", vec![with_header(json!({ "jwk": null }))], "jwk"),
        (
            "alg and key differ",
            vec![with_header(json!({ "alg": "EdDSA" }))],
            "jwk",
        ),
        ("another key's signature", vec![other_key], "signature"),
        ("forged signature", vec![forged_signature], "signature"),
        ("htm GET", vec![prover.proof("GET", &url, json!({}))], "htm"),
        (
            "htu of another endpoint",
            vec![prover.proof("POST", &format!("{}/revoke", server.url()), json!({}))],
            "htu",
        ),
        (
            "htu of another host",
            vec![prover.proof("POST", "http://example.com/token", json!({}))],
            "htu",
        ),
        (
            "no htu",
            vec![prover.proof("POST", &url, json!({ "htu": null }))],
            "htu",
        ),
        (
            "no jti",
            vec![prover.proof("POST", &url, json!({ "jti": null }))],
            "jti",
        ),
        (
            "no iat",
            vec![prover.proof("POST", &url, json!({ "iat": null }))],
            "iat",
        ),
        (
            "iat too old",
            vec![prover.proof("POST", &url, json!({ "iat": now - 120 }))],
            "iat",
        ),
        (
            "iat ahead",
            vec![prover.proof("POST", &url, json!({ "iat": now + 120 }))],
            "iat",
        ),
        ("replayed jti", vec![replayed], "replay"),
        (
            "two DPoP headers",
            vec![
                prover.proof("POST", &url, json!({})),
                prover.proof("POST", &url, json!({})),
            ],
            "more than one",
        ),
        ("not a JWT", vec!["garbage".to_owned()], "JWS"),
    ];
    for (name, proofs, why) in cases {
        let answer = post_token_with_proofs(
            &server,
            Some(basic("basic-app", WEIRD_SECRET)),
            &proofs,
            &[("grant_type", "client_credentials")],
        )
        .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{name}");
        assert_eq!(answer.error(), "invalid_dpop_proof", "{name}");
        let logged = server.token_request_log().pop().unwrap();
        assert_eq!(
            logged.error.as_deref(),
            Some("invalid_dpop_proof"),
            "{name}"
        );
        let problem = logged.dpop.unwrap().problem.unwrap();
        assert!(problem.contains(why), "{name}: {problem}");
    }

    // The query and fragment of htu are ignored, and so is the case of scheme and host.
    let loose = url.replace("http://", "HTTP://") + "?x=1#frag";
    let answer = dpop_client_credentials(
        &server,
        Some(prover.proof("POST", &loose, json!({}))),
        "read",
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
}

#[tokio::test]
async fn the_iat_window_follows_the_servers_clock() {
    let clock = ManualClock::new();
    let server = registered()
        .clock(clock.clone())
        .dpop_iat_window(Duration::from_secs(10))
        .start()
        .await
        .unwrap();
    let prover = Prover::es256();
    let server_now = clock
        .now_utc()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let at = |iat: u64| prover.proof("POST", &server.token_url(), json!({ "iat": iat }));
    let ok = dpop_client_credentials(&server, Some(at(server_now + 9)), "a").await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.json);
    let late = dpop_client_credentials(&server, Some(at(server_now - 12)), "a").await;
    assert_eq!(late.error(), "invalid_dpop_proof");
}

#[tokio::test]
async fn require_dpop_refuses_token_requests_without_a_proof() {
    let server = registered().require_dpop(true).start().await.unwrap();
    let answer = dpop_client_credentials(&server, None, "read").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.error(), "invalid_dpop_proof");
    let logged = server.token_request_log().pop().unwrap();
    assert_eq!(logged.dpop, None);
    assert_eq!(logged.error.as_deref(), Some("invalid_dpop_proof"));
    dpop_token(&server, &Prover::es256(), "read").await;

    // The resource names DPoP as a second challenge to a request without credentials.
    let bare = reqwest::get(server.resource_url("/api/hello"))
        .await
        .unwrap();
    let challenges: Vec<_> = bare
        .headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        challenges,
        ["Bearer".to_owned(), format!("DPoP {DPOP_ALGS}")]
    );
}

#[tokio::test]
async fn the_resource_refuses_bad_proofs_and_bound_tokens_sent_as_bearer() {
    let server = server().await;
    let prover = Prover::es256();
    let token = dpop_token(&server, &prover, "read").await;
    let url = server.resource_url("/api/hello");
    let invalid_proof = format!(r#"DPoP error="invalid_dpop_proof", {DPOP_ALGS}"#);

    // A stolen token presented as a bearer token.
    let stolen = get_resource(&server, "/api/hello", Some(&token)).await;
    assert_eq!(stolen.status, StatusCode::UNAUTHORIZED);
    assert_eq!(stolen.challenge(), r#"DPoP error="invalid_token""#);
    // ... even with a valid proof next to it.
    let proof = prover.resource_proof("GET", &url, &token, json!({}));
    let stolen = resource_with(&server, "/api/hello", "Bearer", &token, &[proof]).await;
    assert_eq!(stolen.challenge(), r#"DPoP error="invalid_token""#);

    // The DPoP scheme without a proof.
    let bare = resource_with(&server, "/api/hello", "DPoP", &token, &[]).await;
    assert_eq!(bare.status, StatusCode::UNAUTHORIZED);
    assert_eq!(bare.challenge(), invalid_proof);

    // A bearer token under the DPoP scheme is not bound.
    let bearer = client_credentials_token(&server, "read").await;
    let bearer = bearer.str("access_token");
    let proof = prover.resource_proof("GET", &url, bearer, json!({}));
    let unbound = resource_with(&server, "/api/hello", "DPoP", bearer, &[proof]).await;
    assert_eq!(unbound.challenge(), r#"DPoP error="invalid_token""#);

    // Each bad proof.
    let other = Prover::eddsa();
    let replayed = prover.resource_proof("GET", &url, &token, json!({}));
    let ok = resource_with(
        &server,
        "/api/hello",
        "DPoP",
        &token,
        std::slice::from_ref(&replayed),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "wrong htu",
            vec![prover.resource_proof(
                "GET",
                &server.resource_url("/api/other"),
                &token,
                json!({}),
            )],
            "htu",
        ),
        (
            "token endpoint htu",
            vec![prover.resource_proof("GET", &server.token_url(), &token, json!({}))],
            "htu",
        ),
        (
            "wrong htm",
            vec![prover.resource_proof("POST", &url, &token, json!({}))],
            "htm",
        ),
        (
            "wrong ath",
            vec![prover.resource_proof("GET", &url, "another-token", json!({}))],
            "ath",
        ),
        ("no ath", vec![prover.proof("GET", &url, json!({}))], "ath"),
        ("replayed jti", vec![replayed], "replay"),
        (
            "another key",
            vec![other.resource_proof("GET", &url, &token, json!({}))],
            "key the token is bound to",
        ),
    ];
    for (name, proofs, why) in cases {
        let answer = resource_with(&server, "/api/hello", "DPoP", &token, &proofs).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{name}");
        assert_eq!(answer.challenge(), invalid_proof, "{name}");
        let recorded = server.resource_requests().pop().unwrap();
        assert_eq!(recorded.challenge.as_deref(), Some(invalid_proof.as_str()));
        let problem = recorded.dpop.unwrap().problem.unwrap();
        assert!(problem.contains(why), "{name}: {problem}");
    }

    // The query is not part of htu.
    let with_query = format!("{url}?page=2");
    let proof = prover.resource_proof("GET", &url, &token, json!({}));
    let answer = answer(
        reqwest::Client::new()
            .get(with_query)
            .header(AUTHORIZATION, format!("DPoP {token}"))
            .header("DPoP", proof)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
}

#[tokio::test]
async fn token_endpoint_nonces_are_demanded_sent_and_rotated() {
    let server = registered()
        .require_dpop_nonce(true)
        .dpop_nonce_uses(1)
        .start()
        .await
        .unwrap();
    let prover = Prover::es256();
    let url = server.token_url();
    let nonce_of = |answer: &Answer| {
        answer
            .headers
            .get("DPoP-Nonce")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };

    let first =
        dpop_client_credentials(&server, Some(prover.proof("POST", &url, json!({}))), "a").await;
    assert_eq!(first.status, StatusCode::BAD_REQUEST);
    assert_eq!(first.json["error"], "use_dpop_nonce");
    let n1 = nonce_of(&first);
    assert_eq!(n1, server.dpop_nonce());
    let logged = server.token_request_log().pop().unwrap();
    assert_eq!(logged.error.as_deref(), Some("use_dpop_nonce"));
    assert_eq!(logged.dpop.unwrap().nonce, None);

    let retry = dpop_client_credentials(
        &server,
        Some(prover.proof("POST", &url, json!({ "nonce": n1 }))),
        "a",
    )
    .await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.json);
    // The nonce was single-use: the successful answer already names its successor.
    let n2 = nonce_of(&retry);
    assert_ne!(n2, n1);
    assert_eq!(n2, server.dpop_nonce());
    assert_eq!(
        server
            .token_request_log()
            .pop()
            .unwrap()
            .dpop
            .unwrap()
            .nonce
            .as_deref(),
        Some(n1.as_str())
    );

    // A client that kept the nonce of the successful answer is not challenged again.
    let next = dpop_client_credentials(
        &server,
        Some(prover.proof("POST", &url, json!({ "nonce": n2 }))),
        "a",
    )
    .await;
    assert_eq!(next.status, StatusCode::OK, "{}", next.json);
    // A stale nonce is challenged.
    let stale = dpop_client_credentials(
        &server,
        Some(prover.proof("POST", &url, json!({ "nonce": n1 }))),
        "a",
    )
    .await;
    assert_eq!(stale.json["error"], "use_dpop_nonce");

    // Rotation by hand; a nonce-less request without a proof still gets the header.
    let before = server.dpop_nonce();
    server.rotate_dpop_nonces();
    assert_ne!(server.dpop_nonce(), before);
    let plain = dpop_client_credentials(&server, None, "a").await;
    assert_eq!(plain.status, StatusCode::OK);
    assert_eq!(nonce_of(&plain), server.dpop_nonce());
}

#[tokio::test]
async fn resource_nonces_are_the_resources_own() {
    let server = registered()
        .require_resource_dpop_nonce(true)
        .start()
        .await
        .unwrap();
    let prover = Prover::es256();
    // The token endpoint demands no nonce here.
    let token = dpop_token(&server, &prover, "read").await;

    let first = dpop_get(&server, &prover, "/api/hello", &token, json!({})).await;
    assert_eq!(first.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        first.challenge(),
        format!(r#"DPoP error="use_dpop_nonce", {DPOP_ALGS}"#)
    );
    let nonce = first
        .headers
        .get("DPoP-Nonce")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(nonce, server.resource_dpop_nonce());
    assert_ne!(nonce, server.dpop_nonce());

    let retry = dpop_get(
        &server,
        &prover,
        "/api/hello",
        &token,
        json!({ "nonce": nonce }),
    )
    .await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.json);
    assert_eq!(
        retry.headers.get("DPoP-Nonce").unwrap().to_str().unwrap(),
        nonce
    );
    let recorded = server.resource_requests();
    assert_eq!(recorded[0].status, 401);
    assert!(recorded[0].dpop.as_ref().unwrap().problem.is_some());
    assert!(recorded[1].dpop.as_ref().unwrap().is_valid());

    // Every resource answer carries the nonce, errors included.
    let none = get_resource(&server, "/api/hello", None).await;
    assert_eq!(
        none.headers.get("DPoP-Nonce").unwrap().to_str().unwrap(),
        nonce
    );
}

#[tokio::test]
async fn a_bound_refresh_token_needs_a_proof_by_the_same_key() {
    let server = server().await;
    let prover = Prover::es256();
    let url = server.token_url();
    let password = [
        ("grant_type", "password"),
        ("client_id", "post-app"),
        ("client_secret", "post-secret"),
        ("username", "alice"),
        ("password", "wonderland"),
    ];
    let issued = post_token_with_proofs(
        &server,
        None,
        &[prover.proof("POST", &url, json!({}))],
        &password,
    )
    .await;
    assert_eq!(issued.str("token_type"), "DPoP");
    let refresh_token = issued.str("refresh_token");
    let refresh = [
        ("grant_type", "refresh_token"),
        ("client_id", "post-app"),
        ("client_secret", "post-secret"),
        ("refresh_token", refresh_token),
    ];

    let without = post_token_with_proofs(&server, None, &[], &refresh).await;
    assert_eq!(without.error(), "invalid_dpop_proof");
    let other = Prover::eddsa().proof("POST", &url, json!({}));
    let other_key = post_token_with_proofs(&server, None, &[other], &refresh).await;
    assert_eq!(other_key.error(), "invalid_grant");

    let same = post_token_with_proofs(
        &server,
        None,
        &[prover.proof("POST", &url, json!({}))],
        &refresh,
    )
    .await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.json);
    assert_eq!(same.str("token_type"), "DPoP");
    let info = server.access_token_info(same.str("access_token")).unwrap();
    assert_eq!(info.jkt, Some(prover.jkt()));
    assert_eq!(info.username.as_deref(), Some("alice"));
}

#[tokio::test]
async fn every_grant_binds_to_the_proofs_key() {
    let server = server().await;
    let prover = Prover::es256();
    let url = server.token_url();

    // Authorization code, with dpop_jkt binding the code to the key.
    let (verifier, challenge) = pkce("dpop");
    let jkt = prover.jkt();
    let authorized = authorize(
        &server,
        &authorization_query(&challenge, &[("dpop_jkt", jkt.as_str())]),
    )
    .await;
    let code = authorized.param("code").unwrap().to_owned();
    let pairs = [
        ("grant_type", "authorization_code"),
        ("client_id", "public-app"),
        ("code", code.as_str()),
        ("code_verifier", verifier.as_str()),
        ("redirect_uri", LOOPBACK),
    ];
    let unproven = post_token_with_proofs(&server, None, &[], &pairs).await;
    assert_eq!(unproven.error(), "invalid_dpop_proof");
    let other = Prover::eddsa().proof("POST", &url, json!({}));
    assert_eq!(
        post_token_with_proofs(&server, None, &[other], &pairs)
            .await
            .error(),
        "invalid_grant"
    );
    let redeemed = post_token_with_proofs(
        &server,
        None,
        &[prover.proof("POST", &url, json!({}))],
        &pairs,
    )
    .await;
    assert_eq!(redeemed.status, StatusCode::OK, "{}", redeemed.json);
    assert_eq!(redeemed.str("token_type"), "DPoP");
    let info = server
        .access_token_info(redeemed.str("access_token"))
        .unwrap();
    assert_eq!(info.jkt, Some(jkt.clone()));

    // Token exchange of the bound token.
    let subject = redeemed.str("access_token");
    let exchanged = post_token_with_proofs(
        &server,
        Some(basic("basic-app", WEIRD_SECRET)),
        &[prover.proof("POST", &url, json!({}))],
        &[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", subject),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
        ],
    )
    .await;
    assert_eq!(exchanged.status, StatusCode::OK, "{}", exchanged.json);
    assert_eq!(exchanged.str("token_type"), "DPoP");
    assert_eq!(
        server
            .access_token_info(exchanged.str("access_token"))
            .unwrap()
            .jkt,
        Some(jkt)
    );
}

#[tokio::test]
async fn scope_challenges_name_the_scope_in_the_tokens_scheme() {
    let server = registered()
        .require_scope("/api/admin", "admin")
        .start()
        .await
        .unwrap();
    let prover = Prover::es256();

    let bearer = client_credentials_token(&server, "read").await;
    let refused = get_resource(&server, "/api/admin", Some(bearer.str("access_token"))).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        refused.challenge(),
        r#"Bearer error="insufficient_scope", scope="admin""#
    );

    let bound = dpop_token(&server, &prover, "read").await;
    let refused = dpop_get(&server, &prover, "/api/admin", &bound, json!({})).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        refused.challenge(),
        r#"DPoP error="insufficient_scope", scope="admin""#
    );
    assert_eq!(
        server
            .resource_requests()
            .pop()
            .unwrap()
            .challenge
            .as_deref(),
        Some(r#"DPoP error="insufficient_scope", scope="admin""#)
    );

    // Client credentials grants what is asked, so a scope upgrade is one more request.
    let upgraded = dpop_token(&server, &prover, "read admin").await;
    let ok = dpop_get(&server, &prover, "/api/admin", &upgraded, json!({})).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.json);
    assert_eq!(ok.str("scope"), "read admin");
}

#[tokio::test]
async fn step_up_challenges_are_met_by_a_new_sign_in_with_acr_values() {
    let clock = ManualClock::new();
    let server = registered()
        .clock(clock.clone())
        .require_acr("/api/secure", "urn:mfa urn:hwk")
        .require_max_age("/api/secure", Duration::from_secs(300))
        .require_max_age("/api/fresh", Duration::from_secs(60))
        .start()
        .await
        .unwrap();
    let expected = r#"Bearer error="insufficient_user_authentication", acr_values="urn:mfa urn:hwk", max_age=300"#;

    let machine = client_credentials_token(&server, "read").await;
    let refused = get_resource(&server, "/api/secure", Some(machine.str("access_token"))).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.challenge(), expected);
    let fresh = get_resource(&server, "/api/fresh", Some(machine.str("access_token"))).await;
    assert_eq!(
        fresh.challenge(),
        r#"Bearer error="insufficient_user_authentication", max_age=60"#
    );

    // A sign-in without acr_values has no acr.
    let (verifier, challenge) = pkce("plain-login");
    let code = code_for(&server, &challenge).await;
    let plain = redeem(&server, &code, Some(&verifier), Some(LOOPBACK)).await;
    let plain = plain.str("access_token");
    assert_eq!(server.access_token_info(plain).unwrap().acr, None);
    assert_eq!(
        get_resource(&server, "/api/secure", Some(plain))
            .await
            .challenge(),
        expected
    );
    assert_eq!(
        get_resource(&server, "/api/fresh", Some(plain))
            .await
            .status,
        StatusCode::OK
    );

    // The step-up: acr_values and max_age on the authorization request.
    let (verifier, challenge) = pkce("step-up");
    let authorized = authorize(
        &server,
        &authorization_query(&challenge, &[("acr_values", "urn:mfa"), ("max_age", "0")]),
    )
    .await;
    let code = authorized.param("code").unwrap();
    let stepped = redeem(&server, code, Some(&verifier), Some(LOOPBACK)).await;
    let stepped = stepped.str("access_token").to_owned();
    assert_eq!(
        server.access_token_info(&stepped).unwrap().acr.as_deref(),
        Some("urn:mfa")
    );
    let ok = get_resource(&server, "/api/secure", Some(&stepped)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.json);
    assert_eq!(ok.str("acr"), "urn:mfa");

    // The sign-in ages by the server's clock.
    clock.advance(Duration::from_secs(301));
    assert_eq!(
        get_resource(&server, "/api/secure", Some(&stepped))
            .await
            .challenge(),
        expected
    );

    // A malformed max_age is refused.
    let (_, challenge) = pkce("bad-max-age");
    let bad = authorize(
        &server,
        &authorization_query(&challenge, &[("max_age", "soon")]),
    )
    .await;
    assert_eq!(bad.param("error"), Some("invalid_request"));
}

#[tokio::test]
async fn claims_challenges_are_met_by_a_token_requested_with_those_claims() {
    let claims = r#"{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}"#;
    let server = registered()
        .require_claims("/api/cae", claims)
        .start()
        .await
        .unwrap();
    let expected = format!(
        r#"Bearer error="insufficient_claims", claims="{}""#,
        STANDARD.encode(claims)
    );

    let plain = client_credentials_token(&server, "read").await;
    let refused = get_resource(&server, "/api/cae", Some(plain.str("access_token"))).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.challenge(), expected);

    // The client decodes the challenge and asks with the JSON (spacing does not matter).
    let encoded = refused
        .challenge()
        .split("claims=\"")
        .nth(1)
        .unwrap()
        .trim_end_matches('"');
    let decoded = String::from_utf8(STANDARD.decode(encoded).unwrap()).unwrap();
    let spaced = decoded.replace(':', ": ");
    let with_claims = post_token(
        &server,
        Some(basic("basic-app", WEIRD_SECRET)),
        &[("grant_type", "client_credentials"), ("claims", &spaced)],
    )
    .await;
    let token = with_claims.str("access_token");
    assert_eq!(
        server.access_token_info(token).unwrap().claims.as_deref(),
        Some(claims)
    );
    let ok = get_resource(&server, "/api/cae", Some(token)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.json);

    // Other claims do not satisfy it; a DPoP-bound token gets the DPoP scheme.
    let prover = Prover::es256();
    let proof = prover.proof("POST", &server.token_url(), json!({}));
    let other = post_token_with_proofs(
        &server,
        Some(basic("basic-app", WEIRD_SECRET)),
        &[proof],
        &[
            ("grant_type", "client_credentials"),
            ("claims", r#"{"id_token":{}}"#),
        ],
    )
    .await;
    let refused = dpop_get(
        &server,
        &prover,
        "/api/cae",
        other.str("access_token"),
        json!({}),
    )
    .await;
    assert_eq!(refused.challenge(), expected.replacen("Bearer", "DPoP", 1));

    // Claims through the authorization request.
    let (verifier, challenge) = pkce("cae");
    let authorized = authorize(
        &server,
        &authorization_query(&challenge, &[("claims", claims)]),
    )
    .await;
    let code = authorized.param("code").unwrap();
    let redeemed = redeem(&server, code, Some(&verifier), Some(LOOPBACK)).await;
    let ok = get_resource(&server, "/api/cae", Some(redeemed.str("access_token"))).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.json);

    // Demanded while the server runs, and no longer.
    let bearer = client_credentials_token(&server, "read").await;
    let bearer = bearer.str("access_token");
    assert_eq!(
        get_resource(&server, "/api/live", Some(bearer))
            .await
            .status,
        StatusCode::OK
    );
    server.demand_claims("/api/live", Some(claims));
    let live = get_resource(&server, "/api/live", Some(bearer)).await;
    assert_eq!(live.challenge(), expected);
    server.demand_claims("/api/live", None);
    server.demand_claims("/api/cae", None);
    assert_eq!(
        get_resource(&server, "/api/live", Some(bearer))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        get_resource(&server, "/api/cae", Some(bearer)).await.status,
        StatusCode::OK
    );

    // A claims parameter that is not a JSON object is refused.
    let bad = post_token(
        &server,
        Some(basic("basic-app", WEIRD_SECRET)),
        &[("grant_type", "client_credentials"), ("claims", "nope")],
    )
    .await;
    assert_eq!(bad.error(), "invalid_request");
}

#[tokio::test]
async fn a_server_without_dpop_ignores_proofs_and_issues_bearer_tokens() {
    let server = registered().support_dpop(false).start().await.unwrap();
    let prover = Prover::es256();
    let proof = prover.proof("POST", &server.token_url(), json!({}));
    let answer = dpop_client_credentials(&server, Some(proof), "read").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.str("token_type"), "Bearer");
    let logged = server.token_request_log().pop().unwrap();
    assert_eq!(logged.token_type.as_deref(), Some("Bearer"));
    let proof = logged.dpop.unwrap();
    assert_eq!(proof.jkt, Some(prover.jkt()));
    assert!(!proof.is_valid());
    let token = answer.str("access_token");
    assert_eq!(server.access_token_info(token).unwrap().jkt, None);
    assert_eq!(
        get_resource(&server, "/api/hello", Some(token))
            .await
            .status,
        StatusCode::OK
    );
    let dpop = dpop_get(&server, &prover, "/api/hello", token, json!({})).await;
    assert_eq!(dpop.status, StatusCode::UNAUTHORIZED);
    assert_eq!(dpop.challenge(), "Bearer");
    let document = reqwest::get(format!(
        "{}/.well-known/oauth-authorization-server",
        server.url()
    ))
    .await
    .unwrap()
    .json::<Value>()
    .await
    .unwrap();
    assert_eq!(document.get("dpop_signing_alg_values_supported"), None);
}
