//! Every constructor of `OAuthLayer` and `OAuthMiddleware` through a real layer (over a hyper
//! client) and a real middleware (over reqwest), against a wiremock token endpoint and API: each
//! asks for its grant with the scope and audience set on it, and the API gets that token.
//! The interactive ones (`auth_code`, `device`) are in tests/interactive.rs.
#![cfg(feature = "jwt")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod test_keys;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use oauth_layer::flow::{JwtBearer, SubjectToken, TokenExchange};
use oauth_layer::jwt::SigningKey;
use oauth_layer::{OAuthClient, OAuthLayer, OAuthMiddleware};
use serde_json::{Value, json};
use test_keys::{EC_PRIVATE, EC_PUBLIC};
use tower::{ServiceBuilder, ServiceExt};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const SUBJECT: &str = "subject-S3CRET-jwt";

fn client(server: &MockServer) -> OAuthClient {
    OAuthClient::builder("app")
        .secret("app-secret")
        .token_url(format!("{}/token", server.uri()))
        .build()
        .unwrap()
}

fn key() -> SigningKey {
    SigningKey::es256_pem(EC_PRIVATE).unwrap().kid("ec-1")
}

/// A token endpoint that answers every grant with `at-<grant>` (`at-client_credentials`,
/// `at-jwt-bearer`...), and an API at `/api` that answers 200 with the `Authorization` header it
/// got, or 401 without one.
async fn start() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(|request: &Request| {
            let grant = grant_name(&form(request));
            ResponseTemplate::new(200).set_body_json(json!({
                "access_token": format!("at-{grant}"),
                "token_type": "Bearer",
                "issued_token_type": ACCESS_TOKEN_TYPE,
                "expires_in": 3600,
            }))
        })
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api"))
        .respond_with(
            |request: &Request| match request.headers.get("authorization") {
                Some(value) => ResponseTemplate::new(200).set_body_bytes(value.as_bytes().to_vec()),
                None => ResponseTemplate::new(401),
            },
        )
        .mount(&server)
        .await;
    server
}

/// The last part of the form's `grant_type` (`jwt-bearer` for the URN).
fn grant_name(form: &[(String, String)]) -> String {
    let grant = field(form, "grant_type").concat();
    grant.rsplit(':').next().unwrap_or_default().to_owned()
}

fn form(request: &Request) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

/// The one token request the server got, and the token it answered with.
async fn token_request(server: &MockServer) -> (Vec<(String, String)>, String) {
    let requests: Vec<_> = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == "/token")
        .collect();
    assert_eq!(requests.len(), 1, "one token request");
    let form = form(&requests[0]);
    let token = format!("Bearer at-{}", grant_name(&form));
    (form, token)
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    form.iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// One GET of `/api` through the layer; the API's answer (the header it saw).
async fn through_layer(server: &MockServer, layer: OAuthLayer) -> String {
    let service = ServiceBuilder::new().layer(layer).service(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<Full<Bytes>>(),
    );
    let request = http::Request::get(format!("{}/api", server.uri()))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

/// One GET of `/api` through the middleware; the API's answer (the header it saw).
async fn through_middleware(server: &MockServer, middleware: OAuthMiddleware) -> String {
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(middleware)
        .build();
    let response = http
        .get(format!("{}/api", server.uri()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// A constructor, as the layer and the middleware spell it, and what its token request must
/// carry.
struct Case {
    name: &'static str,
    layer: fn(OAuthClient) -> OAuthLayer,
    middleware: fn(OAuthClient) -> OAuthMiddleware,
    form: &'static [(&'static str, &'static str)],
    /// The assertion's `sub`, for the JWT bearer grant.
    assertion_subject: Option<&'static str>,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "client_credentials",
            layer: |c| {
                OAuthLayer::client_credentials(c)
                    .scope("api:read")
                    .audience("https://api.example")
                    .into()
            },
            middleware: |c| {
                OAuthMiddleware::client_credentials(c)
                    .scope("api:read")
                    .audience("https://api.example")
                    .into()
            },
            form: &[
                ("grant_type", "client_credentials"),
                ("scope", "api:read"),
                ("audience", "https://api.example"),
            ],
            assertion_subject: None,
        },
        Case {
            name: "password",
            layer: |c| {
                OAuthLayer::password(c, "alice", "pw")
                    .scope("api:read")
                    .into()
            },
            middleware: |c| {
                OAuthMiddleware::password(c, "alice", "pw")
                    .scope("api:read")
                    .into()
            },
            form: &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("scope", "api:read"),
            ],
            assertion_subject: None,
        },
        Case {
            name: "refresh",
            layer: |c| OAuthLayer::refresh(c, "rt-1").scope("api:read").into(),
            middleware: |c| OAuthMiddleware::refresh(c, "rt-1").scope("api:read").into(),
            form: &[
                ("grant_type", "refresh_token"),
                ("refresh_token", "rt-1"),
                ("scope", "api:read"),
            ],
            assertion_subject: None,
        },
        Case {
            name: "jwt_bearer",
            layer: |c| {
                OAuthLayer::jwt_bearer(c, key(), "issuer-app")
                    .scope("api:read api:write")
                    .into()
            },
            middleware: |c| {
                OAuthMiddleware::jwt_bearer(c, key(), "issuer-app")
                    .scope("api:read api:write")
                    .into()
            },
            form: &[("grant_type", JWT_BEARER), ("scope", "api:read api:write")],
            assertion_subject: Some("issuer-app"),
        },
        Case {
            name: "token_exchange",
            layer: |c| {
                OAuthLayer::token_exchange(c, SubjectToken::fixed(SUBJECT, JWT_TYPE))
                    .scope("orders:read")
                    .audience("https://a.example")
                    .audience("https://b.example")
                    .into()
            },
            middleware: |c| {
                OAuthMiddleware::token_exchange(c, SubjectToken::fixed(SUBJECT, JWT_TYPE))
                    .scope("orders:read")
                    .audience("https://a.example")
                    .audience("https://b.example")
                    .into()
            },
            form: &[
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token", SUBJECT),
                ("subject_token_type", JWT_TYPE),
                ("scope", "orders:read"),
                ("audience", "https://a.example"),
                ("audience", "https://b.example"),
            ],
            assertion_subject: None,
        },
        Case {
            name: "with_flow (JWT bearer for another subject)",
            layer: |c| {
                OAuthLayer::with_flow(
                    c,
                    JwtBearer::new(key(), "issuer-app")
                        .subject("user@example.com")
                        .scope("api:read"),
                )
            },
            middleware: |c| {
                OAuthMiddleware::with_flow(
                    c,
                    JwtBearer::new(key(), "issuer-app")
                        .subject("user@example.com")
                        .scope("api:read"),
                )
            },
            form: &[("grant_type", JWT_BEARER), ("scope", "api:read")],
            assertion_subject: Some("user@example.com"),
        },
        Case {
            name: "with_flow (token exchange with an actor and a resource)",
            layer: |c| OAuthLayer::with_flow(c, actor_exchange()),
            middleware: |c| OAuthMiddleware::with_flow(c, actor_exchange()),
            form: &[
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token", SUBJECT),
                ("actor_token", "actor-S3CRET"),
                ("resource", "https://api.example/orders"),
                ("requested_token_type", ACCESS_TOKEN_TYPE),
            ],
            assertion_subject: None,
        },
    ]
}

fn actor_exchange() -> TokenExchange {
    TokenExchange::new(SubjectToken::fixed(SUBJECT, JWT_TYPE))
        .actor(SubjectToken::fixed("actor-S3CRET", ACCESS_TOKEN_TYPE))
        .resource("https://api.example/orders")
        .requested_token_type(ACCESS_TOKEN_TYPE)
}

/// Checks the token request of `case` on `server`, and that `seen` (what the API got) is its
/// token.
async fn check(case: &Case, integration: &str, server: &MockServer, seen: &str) {
    let (form, token) = token_request(server).await;
    let what = format!("{} through the {integration}", case.name);
    for (name, value) in case.form {
        assert!(
            field(&form, name).contains(value),
            "{what}: {name}={value} missing from {:?}",
            field(&form, name)
        );
    }
    for name in ["grant_type", "scope"] {
        assert!(field(&form, name).len() <= 1, "{what}: {name} sent twice");
    }
    if let Some(subject) = case.assertion_subject {
        let assertion = field(&form, "assertion");
        assert_eq!(assertion.len(), 1, "{what}: one assertion");
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&["issuer-app"]);
        validation.set_audience(&[format!("{}/token", server.uri())]);
        let key = DecodingKey::from_ec_pem(EC_PUBLIC.as_bytes()).unwrap();
        let claims = jsonwebtoken::decode::<Value>(assertion[0], &key, &validation)
            .unwrap()
            .claims;
        assert_eq!(claims["sub"], subject, "{what}");
    }
    assert_eq!(seen, token, "{what}: the API got the grant's token");
}

#[tokio::test]
async fn every_constructor_asks_for_its_grant_and_attaches_its_token_through_the_layer() {
    for case in cases() {
        let server = start().await;
        let seen = through_layer(&server, (case.layer)(client(&server))).await;
        check(&case, "layer", &server, &seen).await;
    }
}

#[tokio::test]
async fn every_constructor_asks_for_its_grant_and_attaches_its_token_through_the_middleware() {
    for case in cases() {
        let server = start().await;
        let seen = through_middleware(&server, (case.middleware)(client(&server))).await;
        check(&case, "middleware", &server, &seen).await;
    }
}

/// A scope set after `allow_origins` reaches the grant, and the origin list stays: the scope
/// rebuilds the source, not the rules.
#[tokio::test]
async fn scope_after_allow_origins_keeps_the_origins() {
    let server = start().await;
    let layer = OAuthLayer::token_exchange(client(&server), SubjectToken::fixed(SUBJECT, JWT_TYPE))
        .allow_origins([server.uri()])
        .unwrap()
        .scope("orders:read");
    let service = ServiceBuilder::new().layer(layer).service(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<Full<Bytes>>(),
    );
    let get = |url: String| {
        http::Request::get(url)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };

    let other_origin = server.uri().replace("127.0.0.1", "localhost");
    assert_ne!(other_origin, server.uri());
    let response = service
        .clone()
        .oneshot(get(format!("{other_origin}/api")))
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "no token for an origin not listed");
    assert!(
        response
            .extensions()
            .get::<oauth_layer::TokenWithheld>()
            .is_some()
    );

    let response = service
        .oneshot(get(format!("{}/api", server.uri())))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (form, _) = token_request(&server).await;
    assert_eq!(field(&form, "scope"), ["orders:read"]);
}
