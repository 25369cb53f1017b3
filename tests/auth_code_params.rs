//! Extra parameters cannot repeat the ones a flow sends itself: a server that takes the last of
//! two values would otherwise use the caller's `state`, `code_challenge_method=plain`,
//! `redirect_uri`... The refusal is a configuration error, before any browser opens and before
//! any request.
#![cfg(feature = "auth-code")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use oauth_layer::flow::auth_code::{Callback, ReceivedCode};
use oauth_layer::flow::{AuthCode, DeviceCode, Flow};
use oauth_layer::interact::{BrowserFn, ScriptedPrompt};
use oauth_layer::{Error, OAuthClient};
use url::Url;
use wiremock::MockServer;

const REDIRECT: &str = "http://127.0.0.1:1410/callback";

/// An authorization server that must receive nothing at all.
async fn silent_server() -> MockServer {
    MockServer::start().await
}

fn client(server: &MockServer) -> OAuthClient {
    OAuthClient::builder("my-app")
        .authorization_url(format!("{}/authorize", server.uri()))
        .token_url(format!("{}/token", server.uri()))
        .device_authorization_url(format!("{}/device", server.uri()))
        .build()
        .unwrap()
}

fn assert_config_naming(result: Result<impl std::fmt::Debug, Error>, name: &str) {
    match result {
        Err(Error::Config(message)) => {
            assert!(message.contains(name), "{name}: {message}");
            assert!(message.contains("sends itself"), "{name}: {message}");
        }
        other => panic!("{name}: expected a Config error, got {other:?}"),
    }
}

/// Runs the whole sign-in and checks that it stops before the browser opens.
async fn assert_sign_in_refused(flow: AuthCode, server: &MockServer, name: &str) {
    let opened = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&opened);
    let flow = flow
        .loopback()
        .browser(BrowserFn(move |_: &Url| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }))
        .prompt(ScriptedPrompt::default())
        .timeout(std::time::Duration::from_millis(300));
    assert_config_naming(flow.fetch(&client(server)).await, name);
    assert_eq!(
        opened.load(Ordering::SeqCst),
        0,
        "{name}: the browser opened"
    );
}

const AUTHORIZATION_PARAMS: [&str; 9] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "code_challenge",
    "code_challenge_method",
    "nonce",
    "request",
    "request_uri",
];

const TOKEN_PARAMS: [&str; 8] = [
    "grant_type",
    "code",
    "redirect_uri",
    "code_verifier",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
];

#[tokio::test]
async fn auth_param_cannot_repeat_a_parameter_the_flow_sends() {
    let server = silent_server().await;
    for name in AUTHORIZATION_PARAMS {
        let flow = AuthCode::new().scope("openid").auth_param(name, "plain");
        assert_config_naming(flow.authorization_request(&client(&server), REDIRECT), name);
        assert_sign_in_refused(flow, &server, name).await;
        // Another spelling a lenient server may take for the same name.
        let shouted = format!(" {} ", name.to_uppercase());
        let flow = AuthCode::new().auth_param(shouted, "plain");
        assert_config_naming(flow.authorization_request(&client(&server), REDIRECT), name);
    }
    // `scope` only when the flow sends one itself (a preset may send its own spelling instead).
    let flow = AuthCode::new().scope("read").auth_param("scope", "admin");
    assert_config_naming(
        flow.authorization_request(&client(&server), REDIRECT),
        "scope",
    );
    assert_sign_in_refused(flow, &server, "scope").await;
    let request = AuthCode::new()
        .auth_param("scope", "read,write")
        .auth_param("prompt", "consent")
        .authorization_request(&client(&server), REDIRECT)
        .unwrap();
    let scopes: Vec<_> = request
        .url()
        .query_pairs()
        .filter(|(k, _)| k == "scope")
        .collect();
    assert_eq!(scopes.len(), 1);
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn token_param_cannot_repeat_a_parameter_the_exchange_sends() {
    let server = silent_server().await;
    let client = client(&server);
    for name in TOKEN_PARAMS {
        let flow = AuthCode::new().token_param(name, "evil");
        // Refused before the sign-in starts...
        assert_config_naming(flow.authorization_request(&client, REDIRECT), name);
        assert_sign_in_refused(flow.clone(), &server, name).await;
        // ...and by the exchange itself, for a request made by another flow.
        let request = AuthCode::new()
            .authorization_request(&client, REDIRECT)
            .unwrap();
        let callback = Callback::from_pairs([("code", "c-1"), ("state", request.state())]);
        let code: ReceivedCode = request.check(&callback).unwrap();
        assert_config_naming(flow.exchange(&client, &request, code).await, name);
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn device_param_cannot_repeat_a_parameter_the_request_sends() {
    let server = silent_server().await;
    let client = client(&server);
    for name in [
        "client_id",
        "client_secret",
        "client_assertion",
        "client_assertion_type",
    ] {
        let flow = DeviceCode::new().param(name, "evil");
        assert_config_naming(flow.device_authorization(&client).await, name);
    }
    let flow = DeviceCode::new().scope("read").param("Scope", "admin");
    assert_config_naming(flow.device_authorization(&client).await, "scope");
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn client_credentials_param_cannot_repeat_a_parameter_the_request_sends() {
    use oauth_layer::flow::ClientCredentials;
    let server = silent_server().await;
    let client = client(&server)
        .to_builder()
        .secret("s3cret")
        .build()
        .unwrap();
    for name in [
        "grant_type",
        "client_id",
        "client_secret",
        "client_assertion",
        "client_assertion_type",
    ] {
        let flow = ClientCredentials::new().param(name, "evil");
        assert_config_naming(flow.fetch(&client).await, name);
    }
    let flow = ClientCredentials::new()
        .scope("read")
        .param(" SCOPE ", "admin");
    assert_config_naming(flow.fetch(&client).await, "scope");
    let flow = ClientCredentials::new()
        .audience("https://api.example")
        .param("audience", "https://evil.example");
    assert_config_naming(flow.fetch(&client).await, "audience");
    assert!(server.received_requests().await.unwrap().is_empty());
}
