//! Rich authorization requests (RFC 9396): `authorization_details` sent on the authorization
//! request and on token requests, read back from the token response onto `Token`, kept across
//! a refresh, persisted, part of the cache key, and checked against the server's metadata
//! before anything is sent.

#![cfg(all(feature = "testing", feature = "auth-code", feature = "file-store"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use oauth_layer::client::AuthMethod;
use oauth_layer::flow::{
    AuthCode, AuthorizationDetail, ClientCredentials, Flow, SubjectToken, TokenExchange,
};
use oauth_layer::interact::{BrowserFn, ScriptedPrompt};
use oauth_layer::store::FileStore;
use oauth_layer::testing::TestServer;
use oauth_layer::{Error, ErrorCode, ExposeSecret, OAuthClient, Token, TokenSource, discovery};
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "s3cret-client";

fn payment() -> AuthorizationDetail {
    AuthorizationDetail::new("payment_initiation")
        .action("initiate")
        .location("https://bank.example/payments")
        .field(
            "instructedAmount",
            json!({ "currency": "EUR", "amount": "123.50" }),
        )
        .field("creditorName", "Merchant A")
}

fn accounts() -> AuthorizationDetail {
    AuthorizationDetail::new("account_information")
        .action("read")
        .datatype("balances")
        .identifier("acct-1")
        .privilege("viewer")
}

fn json_of(detail: &AuthorizationDetail) -> Value {
    serde_json::to_value(detail).unwrap()
}

async fn machine_server() -> TestServer {
    TestServer::builder()
        .client("svc", Some(SECRET), AuthMethod::ClientSecretBasic)
        .issue_refresh_tokens(true)
        .start()
        .await
        .unwrap()
}

/// A person who approves every sign-in: the browser follows the authorization URL, the server's
/// redirect included, to the loopback receiver.
fn approving_browser() -> BrowserFn<impl Fn(&url::Url) -> std::io::Result<()>> {
    BrowserFn(|url: &url::Url| {
        let url = url.clone();
        tokio::spawn(async move {
            let _ = reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap()
                .get(url)
                .send()
                .await;
        });
        Ok(())
    })
}

/// A browser that only counts how often it was asked to open.
fn counting_browser(
    opened: Arc<AtomicUsize>,
) -> BrowserFn<impl Fn(&url::Url) -> std::io::Result<()>> {
    BrowserFn(move |_: &url::Url| {
        opened.fetch_add(1, Ordering::SeqCst);
        Ok(())
    })
}

fn sign_in() -> AuthCode {
    AuthCode::new()
        .scope("payments")
        .loopback()
        .browser(approving_browser())
        .prompt(ScriptedPrompt::default())
        .timeout(Duration::from_secs(20))
}

#[tokio::test]
async fn a_sign_in_carries_the_details_to_the_token_and_back() {
    let server = TestServer::builder()
        .client("app", None, AuthMethod::None)
        .start()
        .await
        .unwrap();
    let client = server.oauth_client("app").unwrap();

    // The URL the browser gets carries them as one JSON array.
    let flow = sign_in().authorization_detail(payment());
    let request = flow
        .authorization_request(&client, "http://127.0.0.1:1/cb")
        .unwrap();
    let sent = request
        .url()
        .query_pairs()
        .find(|(name, _)| name == "authorization_details")
        .map(|(_, value)| serde_json::from_str::<Value>(&value).unwrap());
    assert_eq!(sent, Some(json!([json_of(&payment())])));

    let tokens = TokenSource::new(client, flow);
    let token = tokens.token().await.unwrap();
    assert_eq!(
        token.authorization_details(),
        Some(&[json_of(&payment())][..])
    );
    let info = server
        .access_token_info(token.access_token().expose_secret())
        .unwrap();
    let recorded: Value = serde_json::from_str(&info.authorization_details.unwrap()).unwrap();
    assert_eq!(recorded, json!([json_of(&payment())]));

    // A refresh keeps what the sign-in granted, on the server and on the token.
    assert!(tokens.invalidate(&token));
    let refreshed = tokens.token().await.unwrap();
    assert_eq!(server.token_requests_for("refresh_token"), 1);
    assert_eq!(server.authorization_requests(), 1, "no second sign-in");
    assert_eq!(
        refreshed.authorization_details(),
        token.authorization_details()
    );
}

#[tokio::test]
async fn a_sign_in_without_details_sends_none() {
    let server = TestServer::builder()
        .client("app", None, AuthMethod::None)
        .start()
        .await
        .unwrap();
    let client = server.oauth_client("app").unwrap();
    let request = sign_in()
        .authorization_request(&client, "http://127.0.0.1:1/cb")
        .unwrap();
    assert!(
        !request
            .url()
            .query_pairs()
            .any(|(name, _)| name == "authorization_details")
    );
    let token = TokenSource::new(client, sign_in()).token().await.unwrap();
    assert_eq!(token.authorization_details(), None);
}

#[tokio::test]
async fn client_credentials_send_the_details_on_the_token_request() {
    let server = machine_server().await;
    let tokens = TokenSource::new(
        server.oauth_client("svc").unwrap(),
        ClientCredentials::new()
            .authorization_detail(payment())
            .authorization_detail(accounts()),
    );
    let token = tokens.token().await.unwrap();
    let both = [json_of(&payment()), json_of(&accounts())];
    assert_eq!(token.authorization_details(), Some(&both[..]));
    let info = server
        .access_token_info(token.access_token().expose_secret())
        .unwrap();
    let recorded: Value = serde_json::from_str(&info.authorization_details.unwrap()).unwrap();
    assert_eq!(recorded, json!(both));

    // Refreshed (the server echoes the grant's details again), they stay the same.
    assert!(tokens.invalidate(&token));
    let refreshed = tokens.token().await.unwrap();
    assert_eq!(server.token_requests_for("refresh_token"), 1);
    assert_eq!(refreshed.authorization_details(), Some(&both[..]));
}

#[tokio::test]
async fn tokens_for_different_details_are_never_shared() {
    let client = OAuthClient::builder("svc").secret(SECRET).build().unwrap();
    let none = ClientCredentials::new().scope("api").cache_key(&client);
    let pay = ClientCredentials::new()
        .scope("api")
        .authorization_detail(payment())
        .cache_key(&client);
    let pay_again = ClientCredentials::new()
        .scope("api")
        .authorization_detail(payment())
        .cache_key(&client);
    let other_amount = ClientCredentials::new()
        .scope("api")
        .authorization_detail(payment().field("instructedAmount", json!({ "amount": "9999" })))
        .cache_key(&client);
    let both = ClientCredentials::new()
        .scope("api")
        .authorization_detail(payment())
        .authorization_detail(accounts())
        .cache_key(&client);
    assert_eq!(pay, pay_again);
    assert_ne!(none, pay);
    assert_ne!(pay, other_amount);
    assert_ne!(pay, both);
    assert_eq!(none.get("authorization_details"), None);
    let in_key: Value = serde_json::from_str(pay.get("authorization_details").unwrap()).unwrap();
    assert_eq!(in_key, json!([json_of(&payment())]));

    let sign_in_key = |flow: AuthCode| flow.cache_key(&client);
    assert_ne!(
        sign_in_key(AuthCode::new().scope("api")),
        sign_in_key(AuthCode::new().scope("api").authorization_detail(payment()))
    );

    // Two sources on one store: each asks for its own token.
    let server = machine_server().await;
    let dir = TempDir::new();
    let source = |flow: ClientCredentials| {
        TokenSource::builder(server.oauth_client("svc").unwrap(), flow)
            .store(FileStore::in_dir(dir.path()))
            .build()
    };
    let a = source(ClientCredentials::new().authorization_detail(payment()))
        .token()
        .await
        .unwrap();
    let b = source(ClientCredentials::new().authorization_detail(accounts()))
        .token()
        .await
        .unwrap();
    assert_eq!(server.token_requests(), 2);
    assert_ne!(
        a.access_token().expose_secret(),
        b.access_token().expose_secret()
    );
    assert_eq!(a.authorization_details(), Some(&[json_of(&payment())][..]));
    assert_eq!(b.authorization_details(), Some(&[json_of(&accounts())][..]));
}

#[tokio::test]
async fn the_details_are_persisted_with_the_token() {
    let server = machine_server().await;
    let dir = TempDir::new();
    let source = || {
        TokenSource::builder(
            server.oauth_client("svc").unwrap(),
            ClientCredentials::new().authorization_detail(accounts()),
        )
        .store(FileStore::in_dir(dir.path()))
        .build()
    };
    let issued = source().token().await.unwrap();
    // A new process: a new source and store on the same directory, no new request.
    let restored = source().token().await.unwrap();
    assert_eq!(server.token_requests(), 1);
    assert_eq!(
        restored.access_token().expose_secret(),
        issued.access_token().expose_secret()
    );
    assert_eq!(
        restored.authorization_details(),
        Some(&[json_of(&accounts())][..])
    );
}

#[tokio::test]
async fn a_refresh_that_leaves_them_out_keeps_them_and_one_that_names_others_replaces_them() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=client_credentials"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "AT-1",
            "token_type": "Bearer",
            "expires_in": 3600,
            "refresh_token": "RT-1",
            "authorization_details": [json_of(&accounts())],
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("refresh_token=RT-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "AT-2",
            "token_type": "Bearer",
            "expires_in": 3600,
            "refresh_token": "RT-2",
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("refresh_token=RT-2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "AT-3",
            "token_type": "Bearer",
            "expires_in": 3600,
            "authorization_details": [{ "type": "account_information", "actions": [] }],
        })))
        .expect(1)
        .mount(&server)
        .await;
    let client = OAuthClient::builder("svc")
        .secret(SECRET)
        .token_url(format!("{}/token", server.uri()))
        .build()
        .unwrap();
    let tokens = TokenSource::new(
        client,
        ClientCredentials::new().authorization_detail(accounts()),
    );
    let first = tokens.token().await.unwrap();
    assert!(tokens.invalidate(&first));
    let second = tokens.token().await.unwrap();
    assert_eq!(second.access_token().expose_secret(), "AT-2");
    assert_eq!(
        second.authorization_details(),
        Some(&[json_of(&accounts())][..])
    );
    assert!(tokens.invalidate(&second));
    let third = tokens.token().await.unwrap();
    assert_eq!(third.access_token().expose_secret(), "AT-3");
    assert_eq!(
        third.authorization_details(),
        Some(&[json!({ "type": "account_information", "actions": [] })][..])
    );
    server.verify().await;
}

#[tokio::test]
async fn a_type_the_server_does_not_support_is_refused_before_anything_is_sent() {
    let server = TestServer::builder()
        .client("svc", Some(SECRET), AuthMethod::ClientSecretBasic)
        .client("app", None, AuthMethod::None)
        .authorization_details_types(["payment_initiation"])
        .start()
        .await
        .unwrap();
    let discovered =
        |id: &str| discovery::configure(server.oauth_client_builder(id).unwrap(), server.url());
    let svc = discovered("svc").await.unwrap();
    assert_eq!(
        svc.metadata()
            .unwrap()
            .authorization_details_types_supported
            .as_deref(),
        Some(&["payment_initiation".to_owned()][..])
    );

    let err = TokenSource::new(
        svc.clone(),
        ClientCredentials::new()
            .authorization_detail(payment())
            .authorization_detail(accounts()),
    )
    .token()
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::Config(m) if m.contains("\"account_information\"")),
        "{err:?}"
    );
    assert_eq!(server.token_requests(), 0);

    let app = discovered("app").await.unwrap();
    let err = AuthCode::new()
        .authorization_detail(accounts())
        .authorization_request(&app, "http://127.0.0.1:1/cb")
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config(m) if m.contains("\"account_information\"")),
        "{err:?}"
    );
    let opened = Arc::new(AtomicUsize::new(0));
    let err = TokenSource::new(
        app,
        AuthCode::new()
            .browser(counting_browser(Arc::clone(&opened)))
            .prompt(ScriptedPrompt::default())
            .authorization_detail(accounts()),
    )
    .token()
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::Config(m) if m.contains("\"account_information\"")),
        "{err:?}"
    );
    assert_eq!(opened.load(Ordering::SeqCst), 0, "no browser opened");
    assert_eq!(server.authorization_requests(), 0);

    // A supported type goes through.
    let token = TokenSource::new(
        svc,
        ClientCredentials::new().authorization_detail(payment()),
    )
    .token()
    .await
    .unwrap();
    assert_eq!(
        token.authorization_details(),
        Some(&[json_of(&payment())][..])
    );
}

#[tokio::test]
async fn a_detail_without_a_usable_type_is_refused_before_anything_is_sent() {
    let server = machine_server().await;
    for bad in [
        AuthorizationDetail::new(""),
        AuthorizationDetail::new("x").field("type", 7),
        AuthorizationDetail::new("x").field("type", Value::Null),
    ] {
        let err = TokenSource::new(
            server.oauth_client("svc").unwrap(),
            ClientCredentials::new().authorization_detail(bad),
        )
        .token()
        .await
        .unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
    }
    assert_eq!(server.token_requests(), 0);
    let err = TokenSource::new(
        server.oauth_client("svc").unwrap(),
        ClientCredentials::new()
            .authorization_detail(payment())
            .param("authorization_details", "[]"),
    )
    .token()
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert_eq!(server.token_requests(), 0);
}

#[tokio::test]
async fn the_test_server_refuses_malformed_or_unsupported_details() {
    let server = TestServer::builder()
        .client("svc", Some(SECRET), AuthMethod::ClientSecretBasic)
        .client("app", None, AuthMethod::None)
        .authorization_details_types(["payment_initiation"])
        .start()
        .await
        .unwrap();
    // Sent raw, past the client's own checks (the client was not discovered, so it does not
    // know the server's types either).
    for raw in [
        "not json",
        r#"{"type":"payment_initiation"}"#,
        "[1]",
        r#"[{"actions":["read"]}]"#,
        r#"[{"type":""}]"#,
        r#"[{"type":"account_information"}]"#,
    ] {
        let err = TokenSource::new(
            server.oauth_client("svc").unwrap(),
            ClientCredentials::new().param("authorization_details", raw),
        )
        .token()
        .await
        .unwrap_err();
        assert!(
            matches!(&err, Error::Server(e) if e.status == 400
                && e.code == ErrorCode::Other("invalid_authorization_details".into())),
            "{raw}: {err:?}"
        );
    }
    let err = TokenSource::new(
        server.oauth_client("svc").unwrap(),
        ClientCredentials::new().authorization_detail(accounts()),
    )
    .token()
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::Server(e) if e.code == ErrorCode::Other("invalid_authorization_details".into())),
        "{err:?}"
    );

    // At the authorization endpoint the refusal comes back on the redirect, and no code is
    // exchanged.
    let result = TokenSource::new(
        server.oauth_client("app").unwrap(),
        sign_in().authorization_detail(accounts()),
    )
    .token()
    .await;
    assert!(result.is_err(), "{result:?}");
    assert_eq!(server.authorization_requests(), 1);
    assert_eq!(server.token_requests_for("authorization_code"), 0);
}

#[tokio::test]
async fn a_token_exchange_sends_the_details_on_its_token_request() {
    let server = MockServer::start().await;
    let sent = serde_json::to_string(&json!([json_of(&accounts())])).unwrap();
    let encoded: String = url::form_urlencoded::byte_serialize(sent.as_bytes()).collect();
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains(format!(
            "authorization_details={encoded}"
        )))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "AT",
            "token_type": "Bearer",
            "expires_in": 60,
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "authorization_details": [json_of(&accounts())],
        })))
        .expect(1)
        .mount(&server)
        .await;
    let client = OAuthClient::builder("svc")
        .secret(SECRET)
        .token_url(format!("{}/token", server.uri()))
        .build()
        .unwrap();
    let flow = TokenExchange::new(SubjectToken::fixed(
        "subject",
        "urn:ietf:params:oauth:token-type:access_token",
    ))
    .authorization_detail(accounts());
    assert_ne!(
        flow.cache_key(&client),
        TokenExchange::new(SubjectToken::fixed(
            "subject",
            "urn:ietf:params:oauth:token-type:access_token",
        ))
        .cache_key(&client)
    );
    let token = TokenSource::new(client, flow).token().await.unwrap();
    assert_eq!(
        token.authorization_details(),
        Some(&[json_of(&accounts())][..])
    );
    server.verify().await;
}

/// A token endpoint that answers `body` to a client credentials request.
async fn answering(body: String) -> (MockServer, OAuthClient) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
        .mount(&server)
        .await;
    let client = OAuthClient::builder("svc")
        .secret(SECRET)
        .token_url(format!("{}/token", server.uri()))
        .build()
        .unwrap();
    (server, client)
}

async fn token_answering(details: Value) -> Result<Token, Error> {
    let body = json!({
        "access_token": "AT",
        "token_type": "Bearer",
        "expires_in": 60,
        "authorization_details": details,
    });
    let (_server, client) = answering(body.to_string()).await;
    TokenSource::new(
        client,
        ClientCredentials::new().authorization_detail(accounts()),
    )
    .token()
    .await
}

#[tokio::test]
async fn hostile_authorization_details_in_a_token_response_never_panic() {
    // Not an array of objects: the token is fine, the details are ignored (and not kept in
    // `extra` under that name).
    for hostile in [
        json!("payment_initiation"),
        json!({ "type": "payment_initiation" }),
        json!(42),
        json!(null),
        json!([1, 2, 3]),
        json!([{ "type": "a" }, "b"]),
    ] {
        let token = token_answering(hostile.clone()).await.unwrap();
        assert_eq!(token.authorization_details(), None, "{hostile}");
        assert!(!token.extra().contains_key("authorization_details"));
        assert_eq!(token.access_token().expose_secret(), "AT");
    }
    // An empty array is an array.
    let token = token_answering(json!([])).await.unwrap();
    assert_eq!(token.authorization_details(), Some(&[][..]));

    // Huge but under the body cap: kept as sent.
    let many: Vec<Value> = (0..40_000)
        .map(|i| json!({ "type": format!("t{i}") }))
        .collect();
    let token = token_answering(Value::Array(many)).await.unwrap();
    assert_eq!(
        token.authorization_details().map(<[Value]>::len),
        Some(40_000)
    );

    // Deeply nested: serde_json's recursion limit turns it into a typed error.
    let deep = format!(
        r#"{{"access_token":"AT","token_type":"Bearer","authorization_details":{}1{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let (_server, client) = answering(deep).await;
    let result = TokenSource::new(client, ClientCredentials::new())
        .token()
        .await;
    assert!(result.is_err(), "{result:?}");

    // Over the body cap: a typed error.
    let big = format!(
        r#"{{"access_token":"AT","token_type":"Bearer","authorization_details":[{}{{"type":"a"}}]}}"#,
        r#"{"type":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},"#.repeat(40_000)
    );
    let (_server, client) = answering(big).await;
    let result = TokenSource::new(client, ClientCredentials::new())
        .token()
        .await;
    assert!(result.is_err(), "{result:?}");
}

/// A private (0700) directory under the system temp dir with a random name, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).unwrap();
        let name: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let path = std::env::temp_dir().join(format!("oauth-layer-rar-{name}"));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .unwrap();
        Self(path)
    }

    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
