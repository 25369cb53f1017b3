#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Provider presets against wiremock doubles that answer the way each provider documents,
//! quirks included. The presets name real https hosts; the test transport sends
//! `https://HOST/PATH?Q` to `http://127.0.0.1:<port>/HOST/PATH?Q` (the crate checks the
//! original URL before the transport sees it).

mod test_keys;

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use test_keys::{ED_KEY, ED_X, RSA_KEY, RSA_N};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use oauth_layer::flow::AuthCode;
use oauth_layer::flow::Flow;
use oauth_layer::flow::auth_code::{AuthorizationRequest, Callback};
use oauth_layer::interact::{BrowserFn, ScriptedPrompt};
use oauth_layer::provider::{self, Preset};
use oauth_layer::transport::{HttpTransport, ResponseBody};
use oauth_layer::{Error, OAuthClient, Token, TransportError};
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const REDIRECT: &str = "http://127.0.0.1:1410/callback";
const SECRET: &str = "s3cret";

/// Sends every request to the wiremock server, keeping the original host as the first path
/// segment. Redirects are never followed.
#[derive(Debug)]
struct Rewrite {
    base: String,
    client: reqwest::Client,
}

impl Rewrite {
    fn to(server: &MockServer) -> Self {
        Self {
            base: server.uri(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }
}

#[async_trait]
impl HttpTransport for Rewrite {
    async fn send(
        &self,
        mut request: http::Request<Bytes>,
    ) -> Result<http::Response<ResponseBody>, TransportError> {
        let uri = request.uri();
        assert_eq!(uri.scheme_str(), Some("https"), "presets talk https only");
        let path_and_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let rewritten = format!("{}/{}{}", self.base, uri.host().unwrap(), path_and_query);
        *request.uri_mut() = rewritten.parse().unwrap();
        self.client.send(request).await
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An ID token signed with the Ed25519 test key.
fn id_token(iss: &str, aud: &str, nonce: Option<&str>, extra: Value) -> String {
    let mut claims = json!({
        "iss": iss, "sub": "user-42", "aud": aud, "exp": now() + 300, "iat": now(),
    });
    if let Some(n) = nonce {
        claims["nonce"] = json!(n);
    }
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("ed-1".into());
    let key = EncodingKey::from_ed_pem(ED_KEY.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

fn jwks() -> Value {
    json!({"keys": [
        {"kty": "OKP", "crv": "Ed25519", "x": ED_X, "kid": "ed-1", "alg": "EdDSA", "use": "sig"},
        {"kty": "RSA", "n": RSA_N, "e": "AQAB", "kid": "rsa-1", "alg": "RS256", "use": "sig"},
    ]})
}

async fn mount_get(server: &MockServer, at: &str, status: u16, body: Value) {
    Mock::given(method("GET"))
        .and(path(at))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(server)
        .await;
}

async fn mount_token(server: &MockServer, at: &str, body: Value) {
    Mock::given(method("POST"))
        .and(path(at))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .expect(1)
        .mount(server)
        .await;
}

/// The query parameters of an authorization URL.
fn params(request: &AuthorizationRequest) -> Vec<(String, String)> {
    request
        .url()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param(request: &AuthorizationRequest, name: &str) -> Option<String> {
    params(request)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// Trades `code` for a token, as the callback of `request` would carry it.
async fn exchange(
    preset: &dyn Preset,
    flow: &AuthCode,
    request: &AuthorizationRequest,
) -> oauth_layer::Result<Token> {
    let callback = Callback::from_pairs([("code", "the-code"), ("state", request.state())]);
    let code = request.check(&callback)?;
    flow.exchange(preset.client(), request, code).await
}

/// Signs in with `preset` while its token endpoint at `token_path` answers with an ID token from
/// `iss` carrying `extra` claims and this sign-in's nonce (or another's, when `nonce_ok` is
/// false).
async fn sign_in_with_id_token(
    preset: &dyn Preset,
    server: &MockServer,
    token_path: &str,
    iss: &str,
    nonce_ok: bool,
    extra: Value,
) -> oauth_layer::Result<Token> {
    let flow = preset.auth_code();
    let request = flow
        .authorization_request(preset.client(), REDIRECT)
        .unwrap();
    let nonce = if nonce_ok {
        request.nonce()
    } else {
        Some("another")
    };
    let aud = preset.client().client_id().to_owned();
    let mut body = bearer_token();
    body["id_token"] = json!(id_token(iss, &aud, nonce, extra));
    let _mock = Mock::given(method("POST"))
        .and(path(token_path))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount_as_scoped(server)
        .await;
    exchange(preset, &flow, &request).await
}

/// The one token request the server received, as (headers, form).
async fn token_request(server: &MockServer, at: &str) -> (http::HeaderMap, Vec<(String, String)>) {
    let requests = server.received_requests().await.unwrap();
    let request = requests
        .iter()
        .find(|r| r.method.as_str() == "POST" && r.url.path() == at)
        .expect("a token request");
    let form = url::form_urlencoded::parse(&request.body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut headers = http::HeaderMap::new();
    for (k, v) in request.headers.iter() {
        headers.append(
            http::HeaderName::from_bytes(k.as_str().as_bytes()).unwrap(),
            http::HeaderValue::from_bytes(v.as_bytes()).unwrap(),
        );
    }
    (headers, form)
}

fn form_has(form: &[(String, String)], name: &str, value: &str) -> bool {
    form.iter().any(|(k, v)| k == name && v == value)
}

fn form_lacks(form: &[(String, String)], name: &str) -> bool {
    !form.iter().any(|(k, _)| k == name)
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

fn bearer_token() -> Value {
    json!({"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "rt-1"})
}

// ---------------------------------------------------------------------------------------------
// GitHub

#[tokio::test]
async fn github_json_token_post_auth_and_the_emails_fallback() {
    let server = MockServer::start().await;
    let github = provider::GitHub::new("gh-client")
        .unwrap()
        .secret(SECRET)
        .with_client(|c| c.transport(Rewrite::to(&server)))
        .unwrap();
    let flow = github.auth_code();
    let request = flow
        .authorization_request(github.client(), REDIRECT)
        .unwrap();
    assert_eq!(
        request.url().as_str().split('?').next(),
        Some("https://github.com/login/oauth/authorize")
    );
    assert_eq!(
        param(&request, "scope").as_deref(),
        Some("read:user user:email")
    );
    assert_eq!(param(&request, "client_id").as_deref(), Some("gh-client"));

    mount_token(
        &server,
        "/github.com/login/oauth/access_token",
        json!({"access_token": "gho_abc", "token_type": "bearer", "scope": "read:user,user:email"}),
    )
    .await;
    let token = exchange(&github, &flow, &request).await.unwrap();
    // No expires_in: an OAuth app token, kept a year rather than an hour.
    assert_eq!(token.lifetime(), provider::GITHUB_TOKEN_LIFETIME);
    assert!(!token.lifetime_was_reported());
    let (headers, form) = token_request(&server, "/github.com/login/oauth/access_token").await;
    assert!(headers.get("authorization").is_none());
    assert_eq!(headers["accept"], "application/json");
    assert!(form_has(&form, "client_id", "gh-client"));
    assert!(form_has(&form, "client_secret", SECRET));
    assert!(form_has(&form, "code", "the-code"));
    assert!(form_has(&form, "grant_type", "authorization_code"));

    mount_get(
        &server,
        "/api.github.com/user",
        200,
        json!({"id": 583231, "login": "octocat", "email": null}),
    )
    .await;
    mount_get(
        &server,
        "/api.github.com/user/emails",
        200,
        json!([
            {"email": "old@example.com", "primary": false, "verified": true},
            {"email": "unverified@example.com", "primary": true, "verified": false},
            {"email": "octocat@github.com", "primary": true, "verified": true},
        ]),
    )
    .await;
    let (id, email) = github.id_email(&token).await.unwrap();
    assert_eq!(id, "583231");
    assert_eq!(email.as_deref(), Some("octocat@github.com"));
    let requests = server.received_requests().await.unwrap();
    let user = requests
        .iter()
        .find(|r| r.url.path() == "/api.github.com/user")
        .unwrap();
    assert_eq!(user.headers["authorization"], "Bearer gho_abc");
    assert!(
        user.headers["user-agent"]
            .to_str()
            .unwrap()
            .starts_with("oauth-layer/")
    );
    assert_eq!(github.api_origins(), ["https://api.github.com"]);
}

#[tokio::test]
async fn github_form_encoded_token_and_a_public_email() {
    let server = MockServer::start().await;
    let github = provider::GitHub::new("gh-client")
        .unwrap()
        .secret(SECRET)
        .with_client(|c| c.transport(Rewrite::to(&server)))
        .unwrap();
    let flow = github.auth_code();
    let request = flow
        .authorization_request(github.client(), REDIRECT)
        .unwrap();
    Mock::given(method("POST"))
        .and(path("/github.com/login/oauth/access_token"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            "access_token=gho_form&scope=read%3Auser&token_type=bearer",
            "application/x-www-form-urlencoded; charset=utf-8",
        ))
        .mount(&server)
        .await;
    let token = exchange(&github, &flow, &request).await.unwrap();
    assert_eq!(token.scope(), Some("read:user"));
    assert_eq!(token.header_value(), "Bearer gho_form");

    mount_get(
        &server,
        "/api.github.com/user",
        200,
        json!({"id": 1, "email": "public@example.com"}),
    )
    .await;
    let (id, email) = github.id_email(&token).await.unwrap();
    assert_eq!(
        (id.as_str(), email.as_deref()),
        ("1", Some("public@example.com"))
    );
    let requests = server.received_requests().await.unwrap();
    assert!(
        !requests
            .iter()
            .any(|r| r.url.path() == "/api.github.com/user/emails")
    );
}

#[tokio::test]
async fn github_errors_sent_with_status_200_are_errors() {
    let server = MockServer::start().await;
    let github = provider::GitHub::new("gh-client")
        .unwrap()
        .secret(SECRET)
        .with_client(|c| c.transport(Rewrite::to(&server)))
        .unwrap();
    let flow = github.auth_code();
    let request = flow
        .authorization_request(github.client(), REDIRECT)
        .unwrap();
    Mock::given(method("POST"))
        .and(path("/github.com/login/oauth/access_token"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            "error=bad_verification_code&error_description=The+code+passed+is+incorrect+or+expired.",
            "application/x-www-form-urlencoded; charset=utf-8",
        ))
        .mount(&server)
        .await;
    let err = exchange(&github, &flow, &request).await.unwrap_err();
    let server_error = err.server_error().expect("an OAuth error");
    assert_eq!(server_error.code.as_str(), "bad_verification_code");
}

// ---------------------------------------------------------------------------------------------
// Google

#[tokio::test]
async fn google_offline_access_validated_id_token_and_userinfo() {
    let server = MockServer::start().await;
    let google = provider::Google::new("g-client.apps.googleusercontent.com")
        .unwrap()
        .secret(SECRET)
        .prompt_consent(true)
        .with_client(|c| c.transport(Rewrite::to(&server)))
        .unwrap();
    let flow = google.auth_code();
    let request = flow
        .authorization_request(google.client(), REDIRECT)
        .unwrap();
    assert!(
        request
            .url()
            .as_str()
            .starts_with("https://accounts.google.com/o/oauth2/v2/auth?")
    );
    assert_eq!(param(&request, "access_type").as_deref(), Some("offline"));
    assert_eq!(param(&request, "prompt").as_deref(), Some("consent"));
    assert_eq!(
        param(&request, "scope").as_deref(),
        Some("openid email profile")
    );
    assert!(param(&request, "nonce").is_some());
    assert_eq!(
        param(&request, "code_challenge_method").as_deref(),
        Some("S256")
    );

    mount_get(&server, "/www.googleapis.com/oauth2/v3/certs", 200, jwks()).await;
    let mut body = bearer_token();
    body["id_token"] = json!(id_token(
        "https://accounts.google.com",
        "g-client.apps.googleusercontent.com",
        request.nonce(),
        json!({"email": "ada@gmail.com", "email_verified": true}),
    ));
    mount_token(&server, "/oauth2.googleapis.com/token", body).await;
    let token = exchange(&google, &flow, &request).await.unwrap();
    assert!(token.refresh_token().is_some());
    let (headers, form) = token_request(&server, "/oauth2.googleapis.com/token").await;
    assert_eq!(
        headers["authorization"],
        basic("g-client.apps.googleusercontent.com", SECRET).as_str()
    );
    assert!(form_lacks(&form, "client_secret"));
    assert!(form.iter().any(|(k, _)| k == "code_verifier"));

    mount_get(
        &server,
        "/openidconnect.googleapis.com/v1/userinfo",
        200,
        json!({"sub": "1089", "email": "ada@gmail.com", "email_verified": true}),
    )
    .await;
    let (id, email) = google.id_email(&token).await.unwrap();
    assert_eq!(
        (id.as_str(), email.as_deref()),
        ("1089", Some("ada@gmail.com"))
    );

    // Without the options: offline by default, no prompt.
    let plain = provider::Google::new("g").unwrap().offline(false);
    let request = plain
        .auth_code()
        .authorization_request(plain.client(), REDIRECT)
        .unwrap();
    assert_eq!(param(&request, "access_type"), None);
    assert_eq!(param(&request, "prompt"), None);
}

#[tokio::test]
async fn google_accepts_both_spellings_of_its_issuer_and_refuses_others() {
    let server = MockServer::start().await;
    let google = provider::Google::new("g-client")
        .unwrap()
        .secret(SECRET)
        .with_client(|c| c.transport(Rewrite::to(&server)))
        .unwrap();
    mount_get(&server, "/www.googleapis.com/oauth2/v3/certs", 200, jwks()).await;
    let token_path = "/oauth2.googleapis.com/token";
    // Google documents both spellings of `iss`.
    for iss in ["https://accounts.google.com", "accounts.google.com"] {
        sign_in_with_id_token(&google, &server, token_path, iss, true, json!({}))
            .await
            .unwrap();
    }
    for (iss, nonce_ok) in [
        ("https://evil.example", true),
        ("evil.example", true),
        ("accounts.google.com.evil.example", true),
        ("https://accounts.google.com", false),
    ] {
        let result =
            sign_in_with_id_token(&google, &server, token_path, iss, nonce_ok, json!({})).await;
        assert!(
            matches!(result, Err(Error::InvalidIdToken(_))),
            "{iss} {nonce_ok}: {result:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Microsoft

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

#[tokio::test]
async fn microsoft_tenant_endpoints_offline_access_and_id_token_of_the_tenant() {
    let server = MockServer::start().await;
    let microsoft = provider::Microsoft::new(TENANT, "ms-client")
        .unwrap()
        .secret(SECRET)
        .scopes("openid User.Read")
        .with_client(|c| c.transport(Rewrite::to(&server)))
        .unwrap();
    assert!(microsoft.validates_id_tokens());
    let flow = microsoft.auth_code();
    let request = flow
        .authorization_request(microsoft.client(), REDIRECT)
        .unwrap();
    assert!(request.url().as_str().starts_with(&format!(
        "https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/authorize?"
    )));
    // offline_access is added even to scopes set by hand: no refresh token without it.
    assert_eq!(
        param(&request, "scope").as_deref(),
        Some("openid User.Read offline_access")
    );

    mount_get(
        &server,
        &format!("/login.microsoftonline.com/{TENANT}/discovery/v2.0/keys"),
        200,
        jwks(),
    )
    .await;
    let mut body = bearer_token();
    body["id_token"] = json!(id_token(
        &format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
        "ms-client",
        request.nonce(),
        json!({"tid": TENANT}),
    ));
    let token_path = format!("/login.microsoftonline.com/{TENANT}/oauth2/v2.0/token");
    mount_token(&server, &token_path, body).await;
    let token = exchange(&microsoft, &flow, &request).await.unwrap();
    let (headers, form) = token_request(&server, &token_path).await;
    assert!(headers.get("authorization").is_none());
    assert!(form_has(&form, "client_id", "ms-client"));
    assert!(form_has(&form, "client_secret", SECRET));

    mount_get(
        &server,
        "/graph.microsoft.com/oidc/userinfo",
        200,
        json!({"sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ", "email": "ada@contoso.com"}),
    )
    .await;
    let (id, email) = microsoft.id_email(&token).await.unwrap();
    assert_eq!(id, "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ");
    assert_eq!(email.as_deref(), Some("ada@contoso.com"));
}

#[tokio::test]
async fn microsoft_refuses_an_id_token_of_another_tenant() {
    let server = MockServer::start().await;
    let microsoft = provider::Microsoft::new(TENANT, "ms-client")
        .unwrap()
        .with_client(|c| c.transport(Rewrite::to(&server)))
        .unwrap();
    let flow = microsoft.auth_code();
    let request = flow
        .authorization_request(microsoft.client(), REDIRECT)
        .unwrap();
    mount_get(
        &server,
        &format!("/login.microsoftonline.com/{TENANT}/discovery/v2.0/keys"),
        200,
        jwks(),
    )
    .await;
    let mut body = bearer_token();
    body["id_token"] = json!(id_token(
        "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/v2.0",
        "ms-client",
        request.nonce(),
        json!({}),
    ));
    mount_token(
        &server,
        &format!("/login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"),
        body,
    )
    .await;
    let err = exchange(&microsoft, &flow, &request).await.unwrap_err();
    assert!(matches!(err, Error::InvalidIdToken(_)), "{err:?}");
}

#[tokio::test]
async fn microsoft_multi_tenant_validates_against_the_issuer_template() {
    let server = MockServer::start().await;
    let common = provider::Microsoft::new("common", "ms-client")
        .unwrap()
        .with_client(|c| c.transport(Rewrite::to(&server)))
        .unwrap();
    assert!(common.validates_id_tokens());
    assert!(!common.issuer_is_fixed());
    assert!(
        provider::Microsoft::new("consumers", "x")
            .unwrap()
            .issuer_is_fixed()
    );
    assert!(
        !provider::Microsoft::new("organizations", "x")
            .unwrap()
            .issuer_is_fixed()
    );
    assert!(provider::Microsoft::new("bad/tenant", "x").is_err());
    mount_get(
        &server,
        "/login.microsoftonline.com/common/discovery/v2.0/keys",
        200,
        jwks(),
    )
    .await;
    let token_path = "/login.microsoftonline.com/common/oauth2/v2.0/token";
    const OTHER_TENANT: &str = "11111111-2222-3333-4444-555555555555";
    let issuer_of = |tenant: &str| format!("https://login.microsoftonline.com/{tenant}/v2.0");

    // The issuer is the person's tenant, named by `tid`.
    let flow = common.auth_code();
    let request = flow
        .authorization_request(common.client(), REDIRECT)
        .unwrap();
    assert_eq!(
        param(&request, "scope").as_deref(),
        Some("openid profile email offline_access")
    );
    let mut body = bearer_token();
    body["id_token"] = json!(id_token(
        &issuer_of(TENANT),
        "ms-client",
        request.nonce(),
        json!({ "tid": TENANT }),
    ));
    let mock = Mock::given(method("POST"))
        .and(path(token_path))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount_as_scoped(&server)
        .await;
    exchange(&common, &flow, &request).await.unwrap();
    // A public client: client_id only.
    let (headers, form) = token_request(&server, token_path).await;
    assert!(headers.get("authorization").is_none());
    assert!(form_has(&form, "client_id", "ms-client"));
    assert!(form_lacks(&form, "client_secret"));
    drop(mock);

    // Refused: an issuer of another tenant than `tid`, no `tid`, a `tid` that is no tenant id,
    // the template itself, and another sign-in's nonce.
    for (iss, tid, nonce_ok) in [
        (issuer_of(TENANT), json!(OTHER_TENANT), true),
        (issuer_of(TENANT), Value::Null, true),
        (issuer_of("common"), json!("common"), true),
        (issuer_of("{tenantid}"), json!(TENANT), true),
        ("https://evil.example/v2.0".to_owned(), json!(TENANT), true),
        (issuer_of(TENANT), json!(TENANT), false),
    ] {
        let extra = if tid.is_null() {
            json!({})
        } else {
            json!({ "tid": tid })
        };
        let result =
            sign_in_with_id_token(&common, &server, token_path, &iss, nonce_ok, extra).await;
        assert!(
            matches!(result, Err(Error::InvalidIdToken(_))),
            "{iss} tid={tid} {nonce_ok}: {result:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Okta, Auth0, Keycloak, GitLab: OpenID Connect at a host of the customer's

/// Signs in to a static OpenID Connect preset: authorization URL at `authorize`, token at
/// `token_path`, keys at `jwks_path`, ID token from `issuer`; returns the token and the token
/// request.
async fn oidc_sign_in(
    server: &MockServer,
    preset: &dyn Preset,
    authorize: &str,
    token_path: &str,
    jwks_path: &str,
    issuer: &str,
) -> (
    AuthorizationRequest,
    Token,
    http::HeaderMap,
    Vec<(String, String)>,
) {
    let flow = preset.auth_code();
    let request = flow
        .authorization_request(preset.client(), REDIRECT)
        .unwrap();
    assert!(
        request.url().as_str().starts_with(&format!("{authorize}?")),
        "{}",
        request.url()
    );
    mount_get(server, jwks_path, 200, jwks()).await;
    let mut body = bearer_token();
    body["id_token"] = json!(id_token(
        issuer,
        preset.client().client_id(),
        request.nonce(),
        json!({})
    ));
    mount_token(server, token_path, body).await;
    let token = exchange(preset, &flow, &request).await.unwrap();
    let (headers, form) = token_request(server, token_path).await;
    (request, token, headers, form)
}

#[tokio::test]
async fn okta_default_authorization_server() {
    let server = MockServer::start().await;
    let okta = provider::Okta::new("dev-123.okta.com", "okta-client")
        .unwrap()
        .secret(SECRET)
        .with_client(|c| c.transport(Rewrite::to(&server)))
        .unwrap();
    let (request, token, headers, _) = oidc_sign_in(
        &server,
        &okta,
        "https://dev-123.okta.com/oauth2/default/v1/authorize",
        "/dev-123.okta.com/oauth2/default/v1/token",
        "/dev-123.okta.com/oauth2/default/v1/keys",
        "https://dev-123.okta.com/oauth2/default",
    )
    .await;
    assert_eq!(
        param(&request, "scope").as_deref(),
        Some("openid profile email offline_access")
    );
    assert_eq!(
        headers["authorization"],
        basic("okta-client", SECRET).as_str()
    );
    mount_get(
        &server,
        "/dev-123.okta.com/oauth2/default/v1/userinfo",
        200,
        json!({"sub": "00uid4BxXw6I6TV4m0g3", "email": "ada@example.com", "email_verified": true}),
    )
    .await;
    let (id, email) = okta.id_email(&token).await.unwrap();
    assert_eq!(
        (id.as_str(), email.as_deref()),
        ("00uid4BxXw6I6TV4m0g3", Some("ada@example.com"))
    );

    let org = provider::Okta::org("https://dev-123.okta.com/", "okta-client").unwrap();
    assert_eq!(
        org.client().token_url().unwrap().as_str(),
        "https://dev-123.okta.com/oauth2/v1/token"
    );
    assert_eq!(org.client().issuer(), Some("https://dev-123.okta.com"));
    assert!(provider::Okta::with_authorization_server("dev-123.okta.com", "../x", "c").is_err());
}

#[tokio::test]
async fn auth0_audience_and_the_issuer_with_a_trailing_slash() {
    let server = MockServer::start().await;
    let auth0 = provider::Auth0::new("acme.eu.auth0.com", "a0-client")
        .unwrap()
        .secret(SECRET)
        .audience("https://api.acme.example")
        .with_client(|c| c.transport(Rewrite::to(&server)))
        .unwrap();
    let (request, token, headers, form) = oidc_sign_in(
        &server,
        &auth0,
        "https://acme.eu.auth0.com/authorize",
        "/acme.eu.auth0.com/oauth/token",
        "/acme.eu.auth0.com/.well-known/jwks.json",
        "https://acme.eu.auth0.com/",
    )
    .await;
    assert_eq!(
        param(&request, "audience").as_deref(),
        Some("https://api.acme.example")
    );
    assert!(headers.get("authorization").is_none());
    assert!(form_has(&form, "client_secret", SECRET));
    mount_get(
        &server,
        "/acme.eu.auth0.com/userinfo",
        200,
        json!({"sub": "google-oauth2|1234", "email": "ada@example.com", "email_verified": false}),
    )
    .await;
    // An address the provider says is unverified is not returned.
    let (id, email) = auth0.id_email(&token).await.unwrap();
    assert_eq!((id.as_str(), email), ("google-oauth2|1234", None));
}

#[tokio::test]
async fn keycloak_realm_endpoints() {
    let server = MockServer::start().await;
    let keycloak = provider::Keycloak::new("https://sso.example/realms/acme/", "kc-client")
        .unwrap()
        .secret(SECRET)
        .with_client(|c| c.transport(Rewrite::to(&server)))
        .unwrap();
    let oidc = "sso.example/realms/acme/protocol/openid-connect";
    let (_, token, headers, _) = oidc_sign_in(
        &server,
        &keycloak,
        &format!("https://{oidc}/auth"),
        &format!("/{oidc}/token"),
        &format!("/{oidc}/certs"),
        "https://sso.example/realms/acme",
    )
    .await;
    assert_eq!(
        headers["authorization"],
        basic("kc-client", SECRET).as_str()
    );
    mount_get(
        &server,
        &format!("/{oidc}/userinfo"),
        200,
        json!({"sub": "f1b3c1e0-7c5e-4b4e-9d59-7f3f0a6f9d11", "email": "ada@acme.example", "email_verified": true}),
    )
    .await;
    let (id, email) = keycloak.id_email(&token).await.unwrap();
    assert_eq!(id, "f1b3c1e0-7c5e-4b4e-9d59-7f3f0a6f9d11");
    assert_eq!(email.as_deref(), Some("ada@acme.example"));
}

#[tokio::test]
async fn gitlab_self_hosted() {
    let server = MockServer::start().await;
    let gitlab = provider::GitLab::self_hosted("gitlab.acme.example", "gl-client")
        .unwrap()
        .secret(SECRET)
        .with_client(|c| c.transport(Rewrite::to(&server)))
        .unwrap();
    let (request, token, headers, form) = oidc_sign_in(
        &server,
        &gitlab,
        "https://gitlab.acme.example/oauth/authorize",
        "/gitlab.acme.example/oauth/token",
        "/gitlab.acme.example/oauth/discovery/keys",
        "https://gitlab.acme.example",
    )
    .await;
    assert_eq!(
        param(&request, "scope").as_deref(),
        Some("openid profile email")
    );
    assert!(headers.get("authorization").is_none());
    assert!(form_has(&form, "client_secret", SECRET));
    mount_get(
        &server,
        "/gitlab.acme.example/oauth/userinfo",
        200,
        json!({"sub": "1234", "email": "ada@acme.example", "email_verified": true}),
    )
    .await;
    let (id, email) = gitlab.id_email(&token).await.unwrap();
    assert_eq!(
        (id.as_str(), email.as_deref()),
        ("1234", Some("ada@acme.example"))
    );
    assert_eq!(gitlab.api_origins(), ["https://gitlab.acme.example"]);
    assert_eq!(
        provider::GitLab::new("c").unwrap().client().issuer(),
        Some("https://gitlab.com")
    );
}

// ---------------------------------------------------------------------------------------------
// Discord

#[tokio::test]
async fn discord_identify_email_basic_auth_and_verified_email_only() {
    let server = MockServer::start().await;
    let discord = provider::Discord::new("dc-client")
        .unwrap()
        .secret(SECRET)
        .with_client(|c| c.transport(Rewrite::to(&server)))
        .unwrap();
    let flow = discord.auth_code();
    let request = flow
        .authorization_request(discord.client(), REDIRECT)
        .unwrap();
    assert!(
        request
            .url()
            .as_str()
            .starts_with("https://discord.com/oauth2/authorize?")
    );
    assert_eq!(param(&request, "scope").as_deref(), Some("identify email"));
    mount_token(
        &server,
        "/discord.com/api/oauth2/token",
        json!({"access_token": "dc-at", "token_type": "Bearer", "expires_in": 604800,
               "refresh_token": "dc-rt", "scope": "identify email"}),
    )
    .await;
    let token = exchange(&discord, &flow, &request).await.unwrap();
    let (headers, _) = token_request(&server, "/discord.com/api/oauth2/token").await;
    assert_eq!(
        headers["authorization"],
        basic("dc-client", SECRET).as_str()
    );

    let me = Mock::given(method("GET"))
        .and(path("/discord.com/api/users/@me"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"id": "80351110224678912", "username": "nelly", "email": "nelly@example.com", "verified": true}),
        ))
        .mount_as_scoped(&server)
        .await;
    let (id, email) = discord.id_email(&token).await.unwrap();
    assert_eq!(
        (id.as_str(), email.as_deref()),
        ("80351110224678912", Some("nelly@example.com"))
    );
    drop(me);
    mount_get(
        &server,
        "/discord.com/api/users/@me",
        200,
        json!({"id": "80351110224678912", "email": "nelly@example.com", "verified": false}),
    )
    .await;
    assert_eq!(discord.id_email(&token).await.unwrap().1, None);
}

// ---------------------------------------------------------------------------------------------
// Facebook

#[tokio::test]
async fn facebook_versioned_endpoints_and_the_long_lived_exchange() {
    let server = MockServer::start().await;
    let facebook = provider::Facebook::with_version("fb-app", "v21.0")
        .unwrap()
        .secret(SECRET)
        .with_client(|c| c.transport(Rewrite::to(&server)))
        .unwrap();
    let flow = facebook.auth_code();
    let request = flow
        .authorization_request(facebook.client(), REDIRECT)
        .unwrap();
    assert!(
        request
            .url()
            .as_str()
            .starts_with("https://www.facebook.com/v21.0/dialog/oauth?")
    );
    assert_eq!(
        param(&request, "scope").as_deref(),
        Some("email public_profile")
    );

    let token_path = "/graph.facebook.com/v21.0/oauth/access_token";
    Mock::given(method("POST"))
        .and(path(token_path))
        .and(body_string_contains("grant_type=authorization_code"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "EAAshort", "token_type": "bearer", "expires_in": 5400}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(token_path))
        .and(body_string_contains("grant_type=fb_exchange_token"))
        .and(body_string_contains("fb_exchange_token=EAAshort"))
        .and(body_string_contains("client_secret=s3cret"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "EAAlong", "token_type": "bearer", "expires_in": 5183944}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let short = exchange(&facebook, &flow, &request).await.unwrap();
    assert!(
        short.refresh_token().is_none(),
        "Facebook issues no refresh tokens"
    );
    let long = facebook.long_lived(&short).await.unwrap();
    assert_eq!(long.header_value(), "Bearer EAAlong");
    assert_eq!(long.lifetime(), Duration::from_secs(5183944));

    Mock::given(method("GET"))
        .and(path("/graph.facebook.com/v21.0/me"))
        .and(query_param("fields", "id,email"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "10158", "email": "ada@example.com"})),
        )
        .mount(&server)
        .await;
    let (id, email) = facebook.id_email(&long).await.unwrap();
    assert_eq!(
        (id.as_str(), email.as_deref()),
        ("10158", Some("ada@example.com"))
    );
    assert!(provider::Facebook::with_version("x", "23").is_err());
    assert!(provider::Facebook::with_version("x", "v23.0/../..").is_err());
}

// ---------------------------------------------------------------------------------------------
// Reddit

const REDDIT_UA: &str = "linux:com.example.tests:v1.0 (by /u/example)";

#[tokio::test]
async fn reddit_basic_without_secret_user_agent_and_permanent_duration() {
    let server = MockServer::start().await;
    let reddit = provider::Reddit::new("rd-client", REDDIT_UA)
        .unwrap()
        .with_client(|c| c.transport(Rewrite::to(&server)))
        .unwrap();
    let flow = reddit.auth_code();
    let request = flow
        .authorization_request(reddit.client(), REDIRECT)
        .unwrap();
    assert!(
        request
            .url()
            .as_str()
            .starts_with("https://www.reddit.com/api/v1/authorize?")
    );
    assert_eq!(param(&request, "duration").as_deref(), Some("permanent"));
    assert_eq!(param(&request, "scope").as_deref(), Some("identity"));

    mount_token(
        &server,
        "/www.reddit.com/api/v1/access_token",
        json!({"access_token": "rd-at", "token_type": "bearer", "expires_in": 86400,
               "refresh_token": "rd-rt", "scope": "identity"}),
    )
    .await;
    let token = exchange(&reddit, &flow, &request).await.unwrap();
    assert!(token.refresh_token().is_some());
    let (headers, form) = token_request(&server, "/www.reddit.com/api/v1/access_token").await;
    // An installed app has no secret, and Reddit still wants Basic: `client_id:`.
    assert_eq!(headers["authorization"], basic("rd-client", "").as_str());
    assert_eq!(headers["user-agent"], REDDIT_UA);
    assert!(form_lacks(&form, "client_secret"));

    Mock::given(method("GET"))
        .and(path("/oauth.reddit.com/api/v1/me"))
        .and(header("user-agent", REDDIT_UA))
        .and(header("authorization", "Bearer rd-at"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": "1w72", "name": "spez"})),
        )
        .mount(&server)
        .await;
    let (id, email) = reddit.id_email(&token).await.unwrap();
    assert_eq!((id.as_str(), email), ("1w72", None));

    // A web app: Basic with its secret; a temporary grant on request.
    let web = provider::Reddit::new("rd-web", REDDIT_UA)
        .unwrap()
        .secret(SECRET)
        .permanent(false);
    let request = web
        .auth_code()
        .authorization_request(web.client(), REDIRECT)
        .unwrap();
    assert_eq!(param(&request, "duration").as_deref(), Some("temporary"));
    assert!(provider::Reddit::new("x", "bad\nagent").is_err());
}

// ---------------------------------------------------------------------------------------------
// Shopify

#[tokio::test]
async fn shopify_comma_scopes_offline_token_without_type_and_the_shop_header() {
    let server = MockServer::start().await;
    let shopify = provider::Shopify::new("acme-store", "sh-client")
        .unwrap()
        .secret(SECRET)
        .scopes("read_products write_orders")
        .with_client(|c| c.transport(Rewrite::to(&server)))
        .unwrap();
    assert_eq!(shopify.shop(), "acme-store.myshopify.com");
    let flow = shopify.auth_code();
    let request = flow
        .authorization_request(shopify.client(), REDIRECT)
        .unwrap();
    assert!(
        request
            .url()
            .as_str()
            .starts_with("https://acme-store.myshopify.com/admin/oauth/authorize?")
    );
    assert_eq!(
        param(&request, "scope").as_deref(),
        Some("read_products,write_orders")
    );
    assert_eq!(param(&request, "grant_options[]"), None);

    // An offline token: no token_type, no expires_in.
    mount_token(
        &server,
        "/acme-store.myshopify.com/admin/oauth/access_token",
        json!({"access_token": "shpat_abc", "scope": "read_products,write_orders"}),
    )
    .await;
    let callback = shopify_callback(&request, SECRET);
    let code = request.check(&callback).unwrap();
    let token = flow
        .exchange(shopify.client(), &request, code)
        .await
        .unwrap();
    assert_eq!(token.header_value(), "Bearer shpat_abc");
    assert!(token.lifetime() > Duration::from_secs(300 * 24 * 3600));
    let (_, form) = token_request(
        &server,
        "/acme-store.myshopify.com/admin/oauth/access_token",
    )
    .await;
    assert!(form_has(&form, "client_id", "sh-client"));
    assert!(form_has(&form, "client_secret", SECRET));

    Mock::given(method("GET"))
        .and(path(
            "/acme-store.myshopify.com/admin/api/2025-10/shop.json",
        ))
        .and(header("x-shopify-access-token", "shpat_abc"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"shop": {"id": 690933842, "name": "Acme", "email": "owner@acme.example"}}),
        ))
        .mount(&server)
        .await;
    let (id, email) = shopify.id_email(&token).await.unwrap();
    assert_eq!(
        (id.as_str(), email.as_deref()),
        ("690933842", Some("owner@acme.example"))
    );
    let requests = server.received_requests().await.unwrap();
    let shop = requests
        .iter()
        .find(|r| r.url.path().ends_with("shop.json"))
        .unwrap();
    assert!(shop.headers.get("authorization").is_none());

    // Bearer middleware would be ignored by Shopify: refused up front.
    assert!(matches!(shopify.middleware(), Err(Error::Config(_))));
    let online = provider::Shopify::new("acme-store.myshopify.com", "c")
        .unwrap()
        .secret(SECRET)
        .online(true);
    let request = online
        .auth_code()
        .authorization_request(online.client(), REDIRECT)
        .unwrap();
    assert_eq!(
        param(&request, "grant_options[]").as_deref(),
        Some("per-user")
    );
    for bad in ["evil.example/x", "", "-x", "a.b.myshopify.com", "x?y"] {
        assert!(provider::Shopify::new(bad, "c").is_err(), "{bad}");
    }
}

/// HMAC-SHA256 (RFC 2104), written out here so the test does not share the crate's code.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key);
    let inner = Sha256::new()
        .chain_update(block.map(|b| b ^ 0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(block.map(|b| b ^ 0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

type Pairs = Vec<(String, String)>;

/// What Shopify sends back for `request`, unsigned: code, host, shop, state and timestamp.
fn shopify_pairs(request: &AuthorizationRequest) -> Pairs {
    shopify_pairs_for(request.state())
}

fn shopify_pairs_for(state: &str) -> Pairs {
    [
        ("code", "0907a61c0c8d55e99db179b68161bc00"),
        ("host", "YWNtZS1zdG9yZS5teXNob3BpZnkuY29tL2FkbWlu"),
        ("shop", "acme-store.myshopify.com"),
        ("state", state),
        ("timestamp", "1337178173"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

/// `pairs` with the `hmac` Shopify adds: HMAC-SHA256 with `secret` over the sorted
/// `name=value` pairs joined with `&`, in hex.
fn shopify_signed(mut pairs: Pairs, secret: &str) -> Pairs {
    let mut signed: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    signed.sort();
    let hmac: String = hmac_sha256(secret.as_bytes(), signed.join("&").as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    pairs.push(("hmac".into(), hmac));
    pairs
}

/// The callback Shopify sends for `request`, signed with `secret`.
fn shopify_callback(request: &AuthorizationRequest, secret: &str) -> Callback {
    Callback::from_pairs(shopify_signed(shopify_pairs(request), secret))
}

#[tokio::test]
async fn shopify_refuses_a_callback_without_its_valid_hmac_and_sends_no_token_request() {
    let server = MockServer::start().await;
    let shopify = provider::Shopify::new("acme-store", "sh-client")
        .unwrap()
        .secret(SECRET)
        .with_client(|c| c.transport(Rewrite::to(&server)))
        .unwrap();
    let flow = shopify.auth_code();
    let request = flow
        .authorization_request(shopify.client(), REDIRECT)
        .unwrap();
    let signed = shopify_signed(shopify_pairs(&request), SECRET);
    let edit = |edit: &dyn Fn(&mut Pairs)| {
        let mut pairs = signed.clone();
        edit(&mut pairs);
        Callback::from_pairs(pairs)
    };
    let hmac = signed.last().unwrap().1.clone();
    let mut other_shop = shopify_pairs(&request);
    other_shop[2].1 = "evil-store.myshopify.com".into();
    let refused = [
        ("missing", Callback::from_pairs(shopify_pairs(&request))),
        (
            "signed with another secret",
            shopify_callback(&request, "not-the-secret"),
        ),
        ("tampered code", edit(&|p| p[0].1 = "attacker-code".into())),
        (
            "an added parameter",
            edit(&|p| p.push(("scope".into(), "write_everything".into()))),
        ),
        (
            "repeated hmac",
            edit(&|p| p.push(("hmac".into(), hmac.clone()))),
        ),
        ("not hex", edit(&|p| p.last_mut().unwrap().1 = "zz".into())),
        ("empty", edit(&|p| p.last_mut().unwrap().1 = String::new())),
        (
            "another shop, correctly signed",
            Callback::from_pairs(shopify_signed(other_shop, SECRET)),
        ),
    ];
    for (why, callback) in &refused {
        match request.check(callback) {
            Err(Error::MalformedCallback(message)) => {
                assert!(
                    message.contains("another shop") || message.contains("hmac"),
                    "{why}: {message}"
                );
                assert!(!message.contains(SECRET), "{why}: {message}");
            }
            other => panic!("{why}: expected MalformedCallback, got {other:?}"),
        }
    }
    // Not one token request so far; the correctly signed callback still completes.
    assert!(server.received_requests().await.unwrap().is_empty());
    mount_token(
        &server,
        "/acme-store.myshopify.com/admin/oauth/access_token",
        json!({"access_token": "shpat_abc", "scope": "read_products"}),
    )
    .await;
    let code = request
        .check(&Callback::from_pairs(signed.clone()))
        .unwrap();
    let token = flow
        .exchange(shopify.client(), &request, code)
        .await
        .unwrap();
    assert_eq!(token.header_value(), "Bearer shpat_abc");
    let (_, form) = token_request(
        &server,
        "/acme-store.myshopify.com/admin/oauth/access_token",
    )
    .await;
    assert!(form_has(&form, "code", "0907a61c0c8d55e99db179b68161bc00"));
    server.verify().await;
}

#[tokio::test]
async fn shopify_sign_in_ignores_tampered_callbacks_at_the_loopback_and_takes_the_signed_one() {
    let server = MockServer::start().await;
    mount_token(
        &server,
        "/acme-store.myshopify.com/admin/oauth/access_token",
        json!({"access_token": "shpat_abc", "scope": "read_products"}),
    )
    .await;
    let shopify = provider::Shopify::new("acme-store", "sh-client")
        .unwrap()
        .secret(SECRET)
        .with_client(|c| c.transport(Rewrite::to(&server)))
        .unwrap();
    let (opened, mut urls) = tokio::sync::mpsc::unbounded_channel();
    let flow = shopify
        .auth_code()
        .loopback()
        .browser(BrowserFn(move |url: &url::Url| {
            let _ = opened.send(url.clone());
            Ok(())
        }))
        .prompt(ScriptedPrompt::default());
    let client = shopify.client().clone();
    let fetch = tokio::spawn(async move { flow.fetch(&client).await });

    // The test is the browser Shopify redirects.
    let url = urls.recv().await.unwrap();
    let query = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };
    let redirect = url::Url::parse(&query("redirect_uri")).unwrap();
    let state = query("state");
    let browser = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let visit = |pairs: Pairs| {
        let mut target = redirect.clone();
        target.query_pairs_mut().extend_pairs(pairs);
        let browser = browser.clone();
        async move { browser.get(target).send().await.unwrap().status() }
    };
    let unsigned = shopify_pairs_for(&state);
    let mut tampered = shopify_signed(unsigned.clone(), SECRET);
    tampered[0].1 = "attacker-code".into();
    for bad in [
        unsigned.clone(),
        tampered,
        shopify_signed(unsigned.clone(), "not-the-secret"),
    ] {
        assert_eq!(visit(bad).await, reqwest::StatusCode::BAD_REQUEST);
        assert!(
            !fetch.is_finished(),
            "the sign-in ended on a refused callback"
        );
    }
    assert!(server.received_requests().await.unwrap().is_empty());

    assert_eq!(
        visit(shopify_signed(unsigned, SECRET)).await,
        reqwest::StatusCode::OK
    );
    let token = fetch.await.unwrap().unwrap();
    assert_eq!(token.header_value(), "Bearer shpat_abc");
    server.verify().await;
}

#[tokio::test]
async fn shopify_without_a_secret_cannot_sign_in() {
    let shopify = provider::Shopify::new("acme-store", "sh-client").unwrap();
    match shopify
        .auth_code()
        .authorization_request(shopify.client(), REDIRECT)
    {
        Err(Error::Config(message)) => assert!(message.contains("secret"), "{message}"),
        other => panic!("expected a Config error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// LinkedIn

#[tokio::test]
async fn linkedin_without_pkce_and_with_an_id_token_lacking_the_nonce() {
    let server = MockServer::start().await;
    let linkedin = provider::LinkedIn::new("li-client")
        .unwrap()
        .secret(SECRET)
        .with_client(|c| c.transport(Rewrite::to(&server)))
        .unwrap();
    let flow = linkedin.auth_code();
    let request = flow
        .authorization_request(linkedin.client(), REDIRECT)
        .unwrap();
    assert!(
        request
            .url()
            .as_str()
            .starts_with("https://www.linkedin.com/oauth/v2/authorization?")
    );
    assert_eq!(param(&request, "code_challenge"), None);
    assert_eq!(
        param(&request, "scope").as_deref(),
        Some("openid profile email")
    );
    let mut body = json!({"access_token": "li-at", "token_type": "Bearer", "expires_in": 5183999});
    body["id_token"] = json!(id_token(
        "https://www.linkedin.com/oauth",
        "li-client",
        None,
        json!({})
    ));
    mount_token(&server, "/www.linkedin.com/oauth/v2/accessToken", body).await;
    let token = exchange(&linkedin, &flow, &request).await.unwrap();
    let (_, form) = token_request(&server, "/www.linkedin.com/oauth/v2/accessToken").await;
    assert!(form_lacks(&form, "code_verifier"));
    assert!(form_has(&form, "client_secret", SECRET));
    mount_get(
        &server,
        "/api.linkedin.com/v2/userinfo",
        200,
        json!({"sub": "782bbtaQ", "email": "ada@example.com", "email_verified": true}),
    )
    .await;
    let (id, email) = linkedin.id_email(&token).await.unwrap();
    assert_eq!(
        (id.as_str(), email.as_deref()),
        ("782bbtaQ", Some("ada@example.com"))
    );
}

// ---------------------------------------------------------------------------------------------
// Kakao and Naver

#[tokio::test]
async fn kakao_numeric_id_and_trusted_email_only() {
    let server = MockServer::start().await;
    let kakao = provider::Kakao::new("kk-rest-key")
        .unwrap()
        .secret(SECRET)
        .with_client(|c| c.transport(Rewrite::to(&server)))
        .unwrap();
    let flow = kakao.auth_code();
    let request = flow
        .authorization_request(kakao.client(), REDIRECT)
        .unwrap();
    assert!(
        request
            .url()
            .as_str()
            .starts_with("https://kauth.kakao.com/oauth/authorize?")
    );
    mount_token(
        &server,
        "/kauth.kakao.com/oauth/token",
        json!({"token_type": "bearer", "access_token": "kk-at", "expires_in": 43199,
               "refresh_token": "kk-rt", "refresh_token_expires_in": 5183999}),
    )
    .await;
    let token = exchange(&kakao, &flow, &request).await.unwrap();
    let (_, form) = token_request(&server, "/kauth.kakao.com/oauth/token").await;
    assert!(form_has(&form, "client_id", "kk-rest-key"));
    assert!(form_has(&form, "client_secret", SECRET));

    let account = |valid: bool| {
        json!({"id": 123456789, "kakao_account": {
            "email": "ada@kakao.example", "is_email_valid": valid, "is_email_verified": true}})
    };
    let scoped = Mock::given(method("GET"))
        .and(path("/kapi.kakao.com/v2/user/me"))
        .respond_with(ResponseTemplate::new(200).set_body_json(account(true)))
        .mount_as_scoped(&server)
        .await;
    let (id, email) = kakao.id_email(&token).await.unwrap();
    assert_eq!(
        (id.as_str(), email.as_deref()),
        ("123456789", Some("ada@kakao.example"))
    );
    drop(scoped);
    mount_get(&server, "/kapi.kakao.com/v2/user/me", 200, account(false)).await;
    assert_eq!(kakao.id_email(&token).await.unwrap().1, None);
}

#[tokio::test]
async fn naver_string_expires_in_and_the_response_envelope() {
    let server = MockServer::start().await;
    let naver = provider::Naver::new("nv-client")
        .unwrap()
        .secret(SECRET)
        .with_client(|c| c.transport(Rewrite::to(&server)))
        .unwrap();
    let flow = naver.auth_code();
    let request = flow
        .authorization_request(naver.client(), REDIRECT)
        .unwrap();
    assert!(
        request
            .url()
            .as_str()
            .starts_with("https://nid.naver.com/oauth2.0/authorize?")
    );
    mount_token(
        &server,
        "/nid.naver.com/oauth2.0/token",
        json!({"access_token": "nv-at", "refresh_token": "nv-rt", "token_type": "bearer", "expires_in": "3600"}),
    )
    .await;
    let token = exchange(&naver, &flow, &request).await.unwrap();
    assert_eq!(token.lifetime(), Duration::from_secs(3600));
    assert!(token.lifetime_was_reported());
    let (_, form) = token_request(&server, "/nid.naver.com/oauth2.0/token").await;
    assert!(form_has(&form, "client_secret", SECRET));
    mount_get(
        &server,
        "/openapi.naver.com/v1/nid/me",
        200,
        json!({"resultcode": "00", "message": "success",
               "response": {"id": "32742776", "email": "ada@naver.com", "nickname": "ada"}}),
    )
    .await;
    let (id, email) = naver.id_email(&token).await.unwrap();
    assert_eq!(
        (id.as_str(), email.as_deref()),
        ("32742776", Some("ada@naver.com"))
    );
}

// ---------------------------------------------------------------------------------------------
// FranceConnect and the generic OpenID Connect preset: discovery

/// Mounts a discovery document for `issuer` (an https URL) whose endpoints are under it.
async fn mount_discovery(server: &MockServer, issuer: &str, extra: Value) {
    let host_path = issuer.strip_prefix("https://").unwrap();
    let mut doc = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "token_endpoint_auth_methods_supported": ["client_secret_post"],
    });
    for (k, v) in extra.as_object().unwrap() {
        doc[k] = v.clone();
    }
    mount_get(
        server,
        &format!("/{host_path}/.well-known/openid-configuration"),
        200,
        doc,
    )
    .await;
    mount_get(server, &format!("/{host_path}/jwks"), 200, jwks()).await;
}

#[tokio::test]
async fn franceconnect_integration_acr_values_and_signed_userinfo() {
    let server = MockServer::start().await;
    let issuer = provider::Environment::Integration.issuer();
    let host_path = issuer.strip_prefix("https://").unwrap();
    mount_discovery(&server, issuer, json!({})).await;
    let client = OAuthClient::builder("fc-client")
        .secret(SECRET)
        .transport(Rewrite::to(&server));
    let fc = provider::FranceConnect::discover(client, provider::Environment::Integration)
        .await
        .unwrap();
    let flow = fc.auth_code();
    let request = flow.authorization_request(fc.client(), REDIRECT).unwrap();
    assert!(
        request
            .url()
            .as_str()
            .starts_with(&format!("{issuer}/authorize?"))
    );
    assert_eq!(param(&request, "acr_values").as_deref(), Some("eidas1"));
    assert!(param(&request, "nonce").is_some());
    assert_eq!(
        param(&request, "scope").as_deref(),
        Some("openid given_name family_name email")
    );
    let mut body = json!({"access_token": "fc-at", "token_type": "Bearer", "expires_in": 60});
    body["id_token"] = json!(id_token(
        issuer,
        "fc-client",
        request.nonce(),
        json!({"acr": "eidas1"})
    ));
    mount_token(&server, &format!("/{host_path}/token"), body).await;
    let token = exchange(&fc, &flow, &request).await.unwrap();
    let (headers, form) = token_request(&server, &format!("/{host_path}/token")).await;
    // The method the discovery document lists.
    assert!(headers.get("authorization").is_none());
    assert!(form_has(&form, "client_secret", SECRET));

    // Userinfo: a JWT signed RS256 with the platform's key.
    let sign_userinfo_with = |iss: &str, aud: &str, crit: Option<Vec<String>>| {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("rsa-1".into());
        header.crit = crit;
        let claims = json!({"iss": iss, "aud": aud, "sub": "fc-sub-9", "email": "marianne@example.fr",
                            "given_name": "Marianne"});
        jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_rsa_pem(RSA_KEY.as_bytes()).unwrap(),
        )
        .unwrap()
    };
    let sign_userinfo = |iss: &str, aud: &str| sign_userinfo_with(iss, aud, None);
    let userinfo = |body: String, content_type: &'static str| {
        Mock::given(method("GET"))
            .and(path(format!("/{host_path}/userinfo")))
            .and(header("authorization", "Bearer fc-at"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(body, content_type))
    };
    let good = userinfo(sign_userinfo(issuer, "fc-client"), "application/jwt")
        .mount_as_scoped(&server)
        .await;
    let (id, email) = fc.id_email(&token).await.unwrap();
    assert_eq!(
        (id.as_str(), email.as_deref()),
        ("fc-sub-9", Some("marianne@example.fr"))
    );
    drop(good);

    // For another client, from another issuer, with a critical extension, or unsigned: refused.
    let bad_answers = [
        (sign_userinfo(issuer, "another-client"), "application/jwt"),
        (
            sign_userinfo_with(issuer, "fc-client", Some(vec!["b64".into()])),
            "application/jwt",
        ),
        (
            sign_userinfo("https://evil.example", "fc-client"),
            "application/jwt",
        ),
        (
            json!({"sub": "fc-sub-9", "email": "x@example.fr"}).to_string(),
            "application/json",
        ),
    ];
    for (body, content_type) in bad_answers {
        let mock = userinfo(body, content_type).mount_as_scoped(&server).await;
        let err = fc.id_email(&token).await.unwrap_err();
        assert!(matches!(err, Error::UnexpectedResponse(_)), "{err:?}");
        drop(mock);
    }
}

#[tokio::test]
async fn openid_discovers_validates_and_reads_userinfo() {
    let server = MockServer::start().await;
    mount_discovery(
        &server,
        "https://idp.example",
        json!({"token_endpoint_auth_methods_supported": ["client_secret_basic"]}),
    )
    .await;
    let client = OAuthClient::builder("oidc-client")
        .secret(SECRET)
        .transport(Rewrite::to(&server));
    let idp = provider::OpenId::discover(client, "https://idp.example")
        .await
        .unwrap()
        .scopes("openid email");
    let (request, token, headers, _) = oidc_sign_in(
        &server,
        &idp,
        "https://idp.example/authorize",
        "/idp.example/token",
        "/idp.example/jwks",
        "https://idp.example",
    )
    .await;
    assert_eq!(param(&request, "scope").as_deref(), Some("openid email"));
    assert_eq!(
        headers["authorization"],
        basic("oidc-client", SECRET).as_str()
    );
    mount_get(
        &server,
        "/idp.example/userinfo",
        200,
        json!({"sub": "user-42", "email": "ada@idp.example"}),
    )
    .await;
    let (id, email) = idp.id_email(&token).await.unwrap();
    assert_eq!(
        (id.as_str(), email.as_deref()),
        ("user-42", Some("ada@idp.example"))
    );

    // A document for another issuer is refused.
    let server = MockServer::start().await;
    mount_get(
        &server,
        "/idp.example/.well-known/openid-configuration",
        200,
        json!({"issuer": "https://evil.example", "token_endpoint": "https://evil.example/token"}),
    )
    .await;
    let client = OAuthClient::builder("oidc-client").transport(Rewrite::to(&server));
    let err = provider::OpenId::discover(client, "https://idp.example")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::IssuerMismatch { .. }), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// Shorthands

#[tokio::test]
async fn shorthands_keep_tokens_on_the_providers_api() {
    let github = provider::GitHub::new("c").unwrap().secret(SECRET);
    let source = github.token_source();
    assert!(source.cached().is_none());
    let _ = github.middleware().unwrap();
    let _ = github.layer().unwrap();
    // Presets can be kept behind the trait.
    let presets: Vec<Box<dyn Preset>> = vec![
        Box::new(github),
        Box::new(provider::Google::new("c").unwrap()),
        Box::new(provider::Reddit::new("c", REDDIT_UA).unwrap()),
    ];
    let names: Vec<&str> = presets.iter().map(|p| p.name()).collect();
    assert_eq!(names, ["github", "google", "reddit"]);
    assert!(presets[1].api_origins().is_empty());
}
