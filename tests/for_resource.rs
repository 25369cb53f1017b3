//! The resource-first client (`OAuthMiddleware::for_resource`, `OAuthLayer::for_resource`,
//! `resource::ResourceClient`) through the public API: a resource played by wiremock that
//! answers `401` with an RFC 9728 challenge, and `TestServer` as its authorization server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use oauth_layer::resource::ResourceClient;
use oauth_layer::testing::TestServer;
use oauth_layer::{AuthMethod, Error, OAuthMiddleware};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// A protected resource at `{mock}/mcp`: it publishes RFC 9728 metadata naming `issuers`, and
/// takes the access tokens `server` issued for it (RFC 8707 `resource`).
async fn resource(
    server: &Arc<TestServer>,
    issuers: &[String],
    challenge_points: bool,
) -> MockServer {
    let mock = MockServer::start().await;
    let id = format!("{}/mcp", mock.uri());
    let metadata_url = format!("{}/.well-known/oauth-protected-resource/mcp", mock.uri());
    Mock::given(method("GET"))
        .and(path("/.well-known/oauth-protected-resource/mcp"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "resource": id,
            "authorization_servers": issuers,
            "scopes_supported": ["mcp:tools"],
        })))
        .mount(&mock)
        .await;
    let checker = server.clone();
    Mock::given(path("/mcp"))
        .respond_with(move |request: &Request| {
            let token = request
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            match token.and_then(|t| checker.access_token_info(t)) {
                Some(_) => ResponseTemplate::new(200).set_body_string("tools"),
                None => {
                    let challenge = if challenge_points {
                        format!(r#"Bearer resource_metadata="{metadata_url}""#)
                    } else {
                        "Bearer".to_owned()
                    };
                    ResponseTemplate::new(401).insert_header("www-authenticate", challenge)
                }
            }
        })
        .mount(&mock)
        .await;
    mock
}

#[tokio::test]
async fn a_machine_client_finds_its_authorization_server_from_a_401_and_retries() {
    let server = Arc::new(
        TestServer::builder()
            .client("agent", Some("agent-secret"), AuthMethod::ClientSecretBasic)
            .start()
            .await
            .unwrap(),
    );
    let mock = resource(&server, &[server.url()], true).await;
    let resources = ResourceClient::new(format!("{}/mcp", mock.uri()))
        .unwrap()
        .client_id_and_secret("agent", "agent-secret")
        .machine();
    let http = reqwest_middleware::ClientBuilder::new(
        oauth_layer::reqwest::client_builder().build().unwrap(),
    )
    .with(OAuthMiddleware::for_resources(resources))
    .build();
    let answer = http
        .get(format!("{}/mcp", mock.uri()))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "tools");
    let answer = http
        .get(format!("{}/mcp", mock.uri()))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(server.token_requests(), 1);
    let log = server.token_request_log();
    assert_eq!(log.len(), 1);
    let received: Vec<_> = mock
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.url.path().to_owned())
        .collect();
    assert_eq!(
        received,
        [
            "/mcp",
            "/.well-known/oauth-protected-resource/mcp",
            "/mcp",
            "/mcp"
        ],
    );
}

#[tokio::test]
async fn an_authorization_server_the_caller_did_not_allow_gets_nothing() {
    let server = Arc::new(
        TestServer::builder()
            .client("agent", Some("agent-secret"), AuthMethod::ClientSecretBasic)
            .start()
            .await
            .unwrap(),
    );
    let mock = resource(&server, &[server.url()], false).await;
    let resources = ResourceClient::new(format!("{}/mcp", mock.uri()))
        .unwrap()
        .client_id_and_secret("agent", "agent-secret")
        .authorization_server("https://login.example")
        .machine();
    let http = reqwest_middleware::ClientBuilder::new(
        oauth_layer::reqwest::client_builder().build().unwrap(),
    )
    .with(OAuthMiddleware::for_resources(resources))
    .build();
    let err = http
        .get(format!("{}/mcp", mock.uri()))
        .send()
        .await
        .unwrap_err();
    let reqwest_middleware::Error::Middleware(err) = err else {
        panic!("{err:?}");
    };
    let Some(Error::UntrustedAuthorizationServer { offered }) = err.downcast_ref::<Error>() else {
        panic!("{err:?}");
    };
    assert_eq!(offered, &[server.url()]);
    assert_eq!(server.token_requests(), 0);
    assert_eq!(server.discovery_requests(), 0);
}
