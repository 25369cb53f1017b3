//! The authorization request and the checks on its answer (SECURITY.md rules 1–5), through the
//! public API: `AuthCode::authorization_request`, `AuthorizationRequest::check` and
//! `AuthCode::exchange`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oauth_layer::flow::AuthCode;
use oauth_layer::flow::auth_code::{AuthorizationRequest, Callback};
use oauth_layer::{Error, ErrorCode, OAuthClient, RetryPolicy};
use sha2::{Digest, Sha256};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const REDIRECT: &str = "http://127.0.0.1:8765/callback";
const ISSUER: &str = "https://idp.example";

fn client() -> OAuthClient {
    OAuthClient::builder("my-app")
        .authorization_url("https://idp.example/authorize?tenant=acme")
        .token_url("https://idp.example/token")
        .build()
        .unwrap()
}

fn query(request: &AuthorizationRequest) -> Vec<(String, String)> {
    request
        .url()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param(request: &AuthorizationRequest, name: &str) -> Option<String> {
    let all: Vec<String> = query(request)
        .into_iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v)
        .collect();
    assert!(all.len() <= 1, "{name} is repeated in {}", request.url());
    all.into_iter().next()
}

fn is_base64url(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn good(request: &AuthorizationRequest) -> Callback {
    Callback::from_pairs([("code", "the-code"), ("state", request.state())])
}

fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

#[test]
fn the_url_carries_every_authorization_parameter() {
    let flow = AuthCode::new()
        .scope("read write")
        .auth_param("prompt", "consent")
        .auth_param("access_type", "offline");
    let request = flow.authorization_request(&client(), REDIRECT).unwrap();
    let url = request.url();
    assert_eq!(url.host_str(), Some("idp.example"));
    assert_eq!(url.path(), "/authorize");
    assert_eq!(param(&request, "tenant").as_deref(), Some("acme"));
    assert_eq!(param(&request, "response_type").as_deref(), Some("code"));
    assert_eq!(param(&request, "client_id").as_deref(), Some("my-app"));
    assert_eq!(param(&request, "redirect_uri").as_deref(), Some(REDIRECT));
    assert_eq!(param(&request, "scope").as_deref(), Some("read write"));
    assert_eq!(param(&request, "prompt").as_deref(), Some("consent"));
    assert_eq!(param(&request, "access_type").as_deref(), Some("offline"));
    assert_eq!(
        param(&request, "code_challenge_method").as_deref(),
        Some("S256")
    );
    let challenge = param(&request, "code_challenge").unwrap();
    assert_eq!(challenge.len(), 43, "a SHA-256 digest in base64url");
    assert!(is_base64url(&challenge));
    assert_eq!(param(&request, "nonce"), None, "no nonce without openid");
    assert_eq!(request.redirect_uri(), REDIRECT);
}

#[test]
fn state_has_256_random_bits_and_is_fresh_per_request() {
    let flow = AuthCode::new();
    let a = flow.authorization_request(&client(), REDIRECT).unwrap();
    let b = flow.authorization_request(&client(), REDIRECT).unwrap();
    let state = param(&a, "state").unwrap();
    assert_eq!(state, a.state());
    assert!(state.len() >= 43, "32 bytes in base64url: {state}");
    assert!(is_base64url(&state));
    assert_ne!(a.state(), b.state());
    assert_ne!(
        param(&a, "code_challenge"),
        param(&b, "code_challenge"),
        "a fresh verifier per request"
    );
}

#[test]
fn a_nonce_is_sent_only_with_openid() {
    let oidc = AuthCode::new().scope("openid profile");
    let request = oidc.authorization_request(&client(), REDIRECT).unwrap();
    let nonce = param(&request, "nonce").unwrap();
    assert!(nonce.len() >= 43 && is_base64url(&nonce));
    assert_eq!(request.nonce(), Some(nonce.as_str()));

    let plain = AuthCode::new().scope("profile");
    let request = plain.authorization_request(&client(), REDIRECT).unwrap();
    assert_eq!(param(&request, "nonce"), None);
    assert_eq!(request.nonce(), None);
}

#[test]
fn pkce_can_be_turned_off_and_then_nothing_of_it_is_sent() {
    let flow = AuthCode::new().pkce(false);
    let request = flow.authorization_request(&client(), REDIRECT).unwrap();
    assert_eq!(param(&request, "code_challenge"), None);
    assert_eq!(param(&request, "code_challenge_method"), None);
}

#[test]
fn no_authorization_url_is_a_configuration_error() {
    let client = OAuthClient::builder("my-app").build().unwrap();
    let err = AuthCode::new()
        .authorization_request(&client, REDIRECT)
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
}

#[test]
fn the_right_state_yields_the_code() {
    let request = AuthCode::new()
        .authorization_request(&client(), REDIRECT)
        .unwrap();
    let code = request.check(&good(&request)).unwrap();
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(code.secret()),
        "the-code"
    );
    assert!(!format!("{code:?}").contains("the-code"));
}

#[test]
fn wrong_missing_empty_or_repeated_state_is_a_state_mismatch() {
    let flow = AuthCode::new();
    let request = flow.authorization_request(&client(), REDIRECT).unwrap();
    let state = request.state().to_owned();
    let truncated = &state[..state.len() - 1];
    let cases: Vec<(&str, Callback)> = vec![
        (
            "wrong",
            Callback::from_pairs([("code", "c"), ("state", "not-ours")]),
        ),
        (
            "a prefix of ours",
            Callback::from_pairs([("code", "c"), ("state", truncated)]),
        ),
        ("missing", Callback::from_pairs([("code", "c")])),
        (
            "empty",
            Callback::from_pairs([("code", "c"), ("state", "")]),
        ),
        (
            "repeated",
            Callback::from_pairs([("code", "c"), ("state", &state), ("state", &state)]),
        ),
        (
            "repeated, one foreign",
            Callback::from_pairs([("code", "c"), ("state", &state), ("state", "x")]),
        ),
        ("from a query", Callback::from_query("?code=c&state=nope")),
    ];
    for (what, callback) in cases {
        let err = request.check(&callback).unwrap_err();
        assert!(matches!(err, Error::StateMismatch), "{what}: {err:?}");
    }
    // None of them used the request up.
    assert!(request.check(&good(&request)).is_ok());
}

#[test]
fn a_replayed_callback_is_a_state_mismatch() {
    let request = AuthCode::new()
        .authorization_request(&client(), REDIRECT)
        .unwrap();
    let callback = good(&request);
    assert!(request.check(&callback).is_ok());
    let err = request.check(&callback).unwrap_err();
    assert!(matches!(err, Error::StateMismatch), "{err:?}");
}

#[test]
fn an_error_with_our_state_is_authorization_denied_without_control_characters() {
    let request = AuthCode::new()
        .authorization_request(&client(), REDIRECT)
        .unwrap();
    let callback = Callback::from_pairs([
        ("error", "access_denied"),
        (
            "error_description",
            "The user said no\r\n<script>alert(1)</script>\u{7}\u{1b}[31m",
        ),
        ("state", request.state()),
    ]);
    let err = request.check(&callback).unwrap_err();
    let Error::AuthorizationDenied(denied) = &err else {
        panic!("expected AuthorizationDenied, got {err:?}");
    };
    assert_eq!(denied.code, ErrorCode::AccessDenied);
    let description = denied.description.as_deref().unwrap();
    assert!(description.starts_with("The user said no"), "{description}");
    assert!(
        !description.chars().any(char::is_control),
        "{description:?}"
    );
    assert!(!err.to_string().chars().any(char::is_control));
}

#[test]
fn an_error_with_a_foreign_state_is_a_state_mismatch() {
    let request = AuthCode::new()
        .authorization_request(&client(), REDIRECT)
        .unwrap();
    let callback = Callback::from_pairs([("error", "access_denied"), ("state", "forged")]);
    let err = request.check(&callback).unwrap_err();
    assert!(matches!(err, Error::StateMismatch), "{err:?}");
    // The real answer still gets through.
    assert!(request.check(&good(&request)).is_ok());
}

#[test]
fn code_with_error_or_repeated_parameters_is_malformed() {
    let flow = AuthCode::new();
    let client = client().to_builder().issuer(ISSUER).build().unwrap();
    let request = flow.authorization_request(&client, REDIRECT).unwrap();
    let state = request.state().to_owned();
    let cases: Vec<(&str, Callback)> = vec![
        (
            "code and error",
            Callback::from_pairs([("code", "c"), ("error", "access_denied"), ("state", &state)]),
        ),
        (
            "repeated code",
            Callback::from_pairs([("code", "c"), ("code", "d"), ("state", &state)]),
        ),
        (
            "repeated iss",
            Callback::from_pairs([
                ("code", "c"),
                ("iss", ISSUER),
                ("iss", ISSUER),
                ("state", &state),
            ]),
        ),
        (
            "repeated error",
            Callback::from_pairs([
                ("error", "access_denied"),
                ("error", "server_error"),
                ("state", &state),
            ]),
        ),
    ];
    for (what, callback) in cases {
        let err = request.check(&callback).unwrap_err();
        assert!(
            matches!(err, Error::MalformedCallback(_)),
            "{what}: {err:?}"
        );
    }
}

#[test]
fn neither_code_nor_error_is_malformed() {
    let request = AuthCode::new()
        .authorization_request(&client(), REDIRECT)
        .unwrap();
    let empty_code = Callback::from_pairs([("code", ""), ("state", request.state())]);
    let err = request.check(&empty_code).unwrap_err();
    assert!(matches!(err, Error::MalformedCallback(_)), "{err:?}");
}

#[test]
fn iss_must_name_the_configured_issuer() {
    let client = client().to_builder().issuer(ISSUER).build().unwrap();
    let flow = AuthCode::new();

    let request = flow.authorization_request(&client, REDIRECT).unwrap();
    let mixed_up = Callback::from_pairs([
        ("code", "c"),
        ("state", request.state()),
        ("iss", "https://evil.example"),
    ]);
    let err = request.check(&mixed_up).unwrap_err();
    assert!(matches!(err, Error::MalformedCallback(_)), "{err:?}");

    let request = flow.authorization_request(&client, REDIRECT).unwrap();
    let trailing_slash = Callback::from_pairs([
        ("code", "c"),
        ("state", request.state()),
        ("iss", "https://idp.example/"),
    ]);
    let err = request.check(&trailing_slash).unwrap_err();
    assert!(
        matches!(err, Error::MalformedCallback(_)),
        "exact match: {err:?}"
    );

    let request = flow.authorization_request(&client, REDIRECT).unwrap();
    let right = Callback::from_pairs([("code", "c"), ("state", request.state()), ("iss", ISSUER)]);
    let code = request.check(&right).unwrap();
    assert_eq!(code.issuer(), Some(ISSUER));

    // Without require_iss, a missing iss is fine.
    let request = flow.authorization_request(&client, REDIRECT).unwrap();
    assert!(request.check(&good(&request)).is_ok());
}

#[test]
fn a_required_iss_that_is_missing_is_malformed() {
    let client = client().to_builder().issuer(ISSUER).build().unwrap();
    let flow = AuthCode::new().require_iss(true);
    let request = flow.authorization_request(&client, REDIRECT).unwrap();
    let err = request.check(&good(&request)).unwrap_err();
    assert!(matches!(err, Error::MalformedCallback(_)), "{err:?}");

    let request = flow.authorization_request(&client, REDIRECT).unwrap();
    let with_iss =
        Callback::from_pairs([("code", "c"), ("state", request.state()), ("iss", ISSUER)]);
    assert!(request.check(&with_iss).is_ok());
}

#[test]
fn pasted_text_is_parsed_as_a_url_or_a_query() {
    let request = AuthCode::new()
        .authorization_request(&client(), REDIRECT)
        .unwrap();
    let pasted = format!("  {REDIRECT}?code=abc&state={}\n", request.state());
    assert!(
        request
            .check(&Callback::from_pasted(&pasted).unwrap())
            .is_ok()
    );

    for garbage in ["", "   ", "hello"] {
        let err = Callback::from_pasted(garbage).unwrap_err();
        assert!(
            matches!(err, Error::MalformedCallback(_)),
            "{garbage:?}: {err:?}"
        );
    }
}

async fn token_endpoint(server: &MockServer, status: u16, expect: u64) {
    let response = if status == 200 {
        ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "at-1",
            "token_type": "Bearer",
            "expires_in": 3600,
        }))
    } else {
        ResponseTemplate::new(status).insert_header("Retry-After", "0")
    };
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(response)
        .expect(expect)
        .mount(server)
        .await;
}

fn local_client(server: &MockServer) -> OAuthClient {
    OAuthClient::builder("my-app")
        .authorization_url(format!("{}/authorize", server.uri()))
        .token_url(format!("{}/token", server.uri()))
        .build()
        .unwrap()
}

#[tokio::test]
async fn exchange_sends_the_code_redirect_uri_and_the_matching_verifier() {
    let server = MockServer::start().await;
    token_endpoint(&server, 200, 1).await;
    let client = local_client(&server);
    let flow = AuthCode::new()
        .scope("read")
        .token_param("resource", "https://api.example");
    let request = flow.authorization_request(&client, REDIRECT).unwrap();
    let challenge = param(&request, "code_challenge").unwrap();
    let code = request.check(&good(&request)).unwrap();

    let token = flow.exchange(&client, &request, code).await.unwrap();
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(token.access_token()),
        "at-1"
    );

    let sent = server.received_requests().await.unwrap();
    assert_eq!(sent.len(), 1);
    let body = form(&sent[0].body);
    assert_eq!(body["grant_type"], "authorization_code");
    assert_eq!(body["code"], "the-code");
    assert_eq!(body["redirect_uri"], REDIRECT);
    assert_eq!(body["client_id"], "my-app");
    assert_eq!(body["resource"], "https://api.example");
    let verifier = &body["code_verifier"];
    assert!(
        (43..=128).contains(&verifier.len()) && is_base64url(verifier),
        "verifier of {} chars",
        verifier.len()
    );
    assert_eq!(
        URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
        challenge,
        "S256 of the verifier sent is the challenge in the URL"
    );
}

#[tokio::test]
async fn without_pkce_no_verifier_is_sent() {
    let server = MockServer::start().await;
    token_endpoint(&server, 200, 1).await;
    let client = local_client(&server);
    let flow = AuthCode::new().pkce(false);
    let request = flow.authorization_request(&client, REDIRECT).unwrap();
    let code = request.check(&good(&request)).unwrap();
    flow.exchange(&client, &request, code).await.unwrap();

    let sent = server.received_requests().await.unwrap();
    assert!(!form(&sent[0].body).contains_key("code_verifier"));
}

#[tokio::test]
async fn a_code_is_sent_once_even_when_the_server_answers_503() {
    let server = MockServer::start().await;
    token_endpoint(&server, 503, 1).await;
    let client = local_client(&server)
        .to_builder()
        .retry_policy(RetryPolicy::default().attempts(5))
        .build()
        .unwrap();
    let flow = AuthCode::new();
    let request = flow.authorization_request(&client, REDIRECT).unwrap();
    let code = request.check(&good(&request)).unwrap();

    let err = flow.exchange(&client, &request, code).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(!format!("{err:?}").contains("the-code"));
    // `.expect(1)` is verified when the server drops.
}
