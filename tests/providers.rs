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
use oauth_layer::{Error, OAuthClient, OAuthClientBuilder, Token, TransportError};
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const REDIRECT: &str = "http://127.0.0.1:1410/callback";
const SECRET: &str = "s3cret";

/// The settings of a client for `id` whose requests go to `server`: the one place this file
/// starts a client.
fn client_for(id: &str, server: &MockServer) -> OAuthClientBuilder {
    OAuthClient::builder(id).transport(Rewrite::to(server))
}

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
    let callback = Callback::from_pairs(code_and_state(request));
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
    serde_json::from_str(BEARER).unwrap()
}

// ---------------------------------------------------------------------------------------------
// The table: one row per provider quirk (endpoints, default scopes, client authentication, token
// and profile answers), each run through the same sign-in against the double.

/// A preset whose requests go to the double.
type Build = fn(Rewrite) -> Box<dyn Preset>;

/// The [`Build`] of a preset expression.
macro_rules! on {
    ($preset:expr) => {
        Some(|to| Box::new($preset.with_client(|c| c.transport(to)).unwrap()))
    };
}

/// Authorization parameters and their values (`None`: absent).
type Params = &'static [(&'static str, Option<&'static str>)];

/// How the token request authenticates the client.
#[derive(Clone, Copy)]
enum ClientAuth {
    /// HTTP Basic with this id and secret; no `client_secret` in the body.
    Basic(&'static str, &'static str),
    /// `client_id` and `client_secret` in the body; no `Authorization`.
    Post(&'static str),
    /// A public client: `client_id` only, in the body.
    Public(&'static str),
}

/// The ID token the token endpoint adds: its issuer, claims beyond the usual, and whether it
/// carries the sign-in's nonce.
struct IdToken {
    iss: &'static str,
    claims: &'static str,
    nonce: bool,
}

/// How `id_email` reads an account: the GET requests it makes, in order (`path?query` at the
/// double), each with its JSON answer, and what it returns.
struct Profile {
    at: &'static str,
    body: &'static str,
    /// Further requests, after the first.
    then: &'static [(&'static str, &'static str)],
    /// Headers each of these requests carries.
    headers: &'static [(&'static str, &'static str)],
    /// Headers none of them carries.
    absent: &'static [&'static str],
    id: &'static str,
    email: Option<&'static str>,
}

/// A profile read with one request to `at`, answered with `body`.
const fn profile(
    at: &'static str,
    body: &'static str,
    id: &'static str,
    email: Option<&'static str>,
) -> Profile {
    Profile {
        at,
        body,
        then: &[],
        headers: &[],
        absent: &[],
        id,
        email,
    }
}

/// One provider quirk, from the authorization URL to the account behind the token.
struct Row {
    quirk: &'static str,
    /// `None` for a preset built by discovery (its test builds it).
    preset: Option<Build>,
    /// The authorization endpoint (the URL before `?`) and parameters (`None`: absent).
    authorize: &'static str,
    params: Params,
    pkce: bool,
    /// The callback's parameters for a request (code and state unless the provider signs them).
    callback: fn(&AuthorizationRequest) -> Pairs,
    /// The token endpoint's path at the double, its answer and the answer's content type.
    token_path: &'static str,
    answer: &'static str,
    content_type: &'static str,
    id_token: Option<IdToken>,
    /// Where the ID token's keys are served.
    keys: Option<&'static str>,
    client: ClientAuth,
    /// The `User-Agent` of every request (`None`: the crate's own).
    user_agent: Option<&'static str>,
    /// What the token must be (the provider's answer quirks).
    token: fn(&Token),
    profiles: &'static [Profile],
    api_origins: Option<&'static [&'static str]>,
}

const BEARER: &str = r#"{"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "rt-1"}"#;

const ROW: Row = Row {
    quirk: "",
    preset: None,
    authorize: "",
    params: &[],
    pkce: true,
    callback: code_and_state,
    token_path: "",
    answer: BEARER,
    content_type: "application/json",
    id_token: None,
    keys: None,
    client: ClientAuth::Post(""),
    user_agent: None,
    token: |_| {},
    profiles: &[],
    api_origins: None,
};

/// The callback of a provider that does not sign it: the code and the request's state.
fn code_and_state(request: &AuthorizationRequest) -> Pairs {
    vec![
        ("code".into(), "the-code".into()),
        ("state".into(), request.state().into()),
    ]
}

const GITHUB: Row = Row {
    quirk: "GitHub: JSON asked for, client_secret_post, no expires_in (a year), the emails fallback",
    preset: on!(provider::GitHub::new("gh-client").unwrap().secret(SECRET)),
    authorize: "https://github.com/login/oauth/authorize",
    params: &[("scope", Some("read:user user:email"))],
    token_path: "/github.com/login/oauth/access_token",
    answer: r#"{"access_token": "gho_abc", "token_type": "bearer", "scope": "read:user,user:email"}"#,
    client: ClientAuth::Post("gh-client"),
    token: |token| {
        // No expires_in: an OAuth app token, kept a year rather than an hour.
        assert_eq!(token.lifetime(), provider::GITHUB_TOKEN_LIFETIME);
        assert!(!token.lifetime_was_reported());
    },
    profiles: &[Profile {
        then: &[(
            "/api.github.com/user/emails",
            r#"[{"email": "old@example.com", "primary": false, "verified": true},
                {"email": "unverified@example.com", "primary": true, "verified": false},
                {"email": "octocat@github.com", "primary": true, "verified": true}]"#,
        )],
        headers: &[("authorization", "Bearer gho_abc")],
        ..profile(
            "/api.github.com/user",
            r#"{"id": 583231, "login": "octocat", "email": null}"#,
            "583231",
            Some("octocat@github.com"),
        )
    }],
    api_origins: Some(&["https://api.github.com"]),
    ..ROW
};

const GITHUB_FORM: Row = Row {
    quirk: "GitHub: a form-encoded token answer; a public email needs no second request",
    answer: "access_token=gho_form&scope=read%3Auser&token_type=bearer",
    content_type: "application/x-www-form-urlencoded; charset=utf-8",
    token: |token| {
        assert_eq!(token.scope(), Some("read:user"));
        assert_eq!(token.header_value(), "Bearer gho_form");
    },
    profiles: &[profile(
        "/api.github.com/user",
        r#"{"id": 1, "email": "public@example.com"}"#,
        "1",
        Some("public@example.com"),
    )],
    ..GITHUB
};

const GOOGLE: Row = Row {
    quirk: "Google: offline access, prompt=consent, client_secret_basic, validated ID token",
    preset: on!(provider::Google::new("g-client.apps.googleusercontent.com")
        .unwrap()
        .secret(SECRET)
        .prompt_consent(true)),
    authorize: "https://accounts.google.com/o/oauth2/v2/auth",
    params: &[
        ("access_type", Some("offline")),
        ("prompt", Some("consent")),
        ("scope", Some("openid email profile")),
    ],
    token_path: "/oauth2.googleapis.com/token",
    id_token: Some(IdToken {
        iss: "https://accounts.google.com",
        claims: r#"{"email": "ada@gmail.com", "email_verified": true}"#,
        nonce: true,
    }),
    keys: Some("/www.googleapis.com/oauth2/v3/certs"),
    client: ClientAuth::Basic("g-client.apps.googleusercontent.com", SECRET),
    token: |token| assert!(token.refresh_token().is_some()),
    profiles: &[profile(
        "/openidconnect.googleapis.com/v1/userinfo",
        r#"{"sub": "1089", "email": "ada@gmail.com", "email_verified": true}"#,
        "1089",
        Some("ada@gmail.com"),
    )],
    ..ROW
};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

const MICROSOFT: Row = Row {
    quirk: "Microsoft: the tenant in every endpoint, offline_access added to scopes set by hand",
    preset: on!(provider::Microsoft::new(TENANT, "ms-client")
        .unwrap()
        .secret(SECRET)
        .scopes("openid User.Read")),
    authorize: "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/authorize",
    // No refresh token without offline_access.
    params: &[("scope", Some("openid User.Read offline_access"))],
    token_path: "/login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token",
    id_token: Some(IdToken {
        iss: "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0",
        claims: r#"{"tid": "72f988bf-86f1-41af-91ab-2d7cd011db47"}"#,
        nonce: true,
    }),
    keys: Some(
        "/login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/discovery/v2.0/keys",
    ),
    client: ClientAuth::Post("ms-client"),
    profiles: &[profile(
        "/graph.microsoft.com/oidc/userinfo",
        r#"{"sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ", "email": "ada@contoso.com"}"#,
        "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
        Some("ada@contoso.com"),
    )],
    api_origins: Some(&["https://graph.microsoft.com"]),
    ..ROW
};

const MICROSOFT_COMMON: Row = Row {
    quirk: "Microsoft, multi-tenant: the issuer is the person's tenant, named by tid; a public client",
    preset: on!(provider::Microsoft::new("common", "ms-client").unwrap()),
    authorize: "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
    params: &[("scope", Some("openid profile email offline_access"))],
    token_path: "/login.microsoftonline.com/common/oauth2/v2.0/token",
    keys: Some("/login.microsoftonline.com/common/discovery/v2.0/keys"),
    client: ClientAuth::Public("ms-client"),
    profiles: &[],
    ..MICROSOFT
};

/// An OpenID Connect sign-in whose ID token comes from `iss` with the sign-in's nonce.
const fn oidc(iss: &'static str) -> Option<IdToken> {
    Some(IdToken {
        iss,
        claims: "{}",
        nonce: true,
    })
}

const OKTA: Row = Row {
    quirk: "Okta: the default custom authorization server, client_secret_basic",
    preset: on!(provider::Okta::new("dev-123.okta.com", "okta-client")
        .unwrap()
        .secret(SECRET)),
    authorize: "https://dev-123.okta.com/oauth2/default/v1/authorize",
    params: &[("scope", Some("openid profile email offline_access"))],
    token_path: "/dev-123.okta.com/oauth2/default/v1/token",
    id_token: oidc("https://dev-123.okta.com/oauth2/default"),
    keys: Some("/dev-123.okta.com/oauth2/default/v1/keys"),
    client: ClientAuth::Basic("okta-client", SECRET),
    profiles: &[profile(
        "/dev-123.okta.com/oauth2/default/v1/userinfo",
        r#"{"sub": "00uid4BxXw6I6TV4m0g3", "email": "ada@example.com", "email_verified": true}"#,
        "00uid4BxXw6I6TV4m0g3",
        Some("ada@example.com"),
    )],
    ..ROW
};

const AUTH0: Row = Row {
    quirk: "Auth0: the audience parameter, the issuer with a trailing slash, no unverified email",
    preset: on!(provider::Auth0::new("acme.eu.auth0.com", "a0-client")
        .unwrap()
        .secret(SECRET)
        .audience("https://api.acme.example")),
    authorize: "https://acme.eu.auth0.com/authorize",
    params: &[("audience", Some("https://api.acme.example"))],
    token_path: "/acme.eu.auth0.com/oauth/token",
    id_token: oidc("https://acme.eu.auth0.com/"),
    keys: Some("/acme.eu.auth0.com/.well-known/jwks.json"),
    client: ClientAuth::Post("a0-client"),
    // An address the provider says is unverified is not returned.
    profiles: &[profile(
        "/acme.eu.auth0.com/userinfo",
        r#"{"sub": "google-oauth2|1234", "email": "ada@example.com", "email_verified": false}"#,
        "google-oauth2|1234",
        None,
    )],
    ..ROW
};

const KEYCLOAK: Row = Row {
    quirk: "Keycloak: the realm's /protocol/openid-connect endpoints, client_secret_basic",
    preset: on!(
        provider::Keycloak::new("https://sso.example/realms/acme/", "kc-client")
            .unwrap()
            .secret(SECRET)
    ),
    authorize: "https://sso.example/realms/acme/protocol/openid-connect/auth",
    token_path: "/sso.example/realms/acme/protocol/openid-connect/token",
    id_token: oidc("https://sso.example/realms/acme"),
    keys: Some("/sso.example/realms/acme/protocol/openid-connect/certs"),
    client: ClientAuth::Basic("kc-client", SECRET),
    profiles: &[profile(
        "/sso.example/realms/acme/protocol/openid-connect/userinfo",
        r#"{"sub": "f1b3c1e0-7c5e-4b4e-9d59-7f3f0a6f9d11", "email": "ada@acme.example", "email_verified": true}"#,
        "f1b3c1e0-7c5e-4b4e-9d59-7f3f0a6f9d11",
        Some("ada@acme.example"),
    )],
    ..ROW
};

const GITLAB: Row = Row {
    quirk: "GitLab: a self-hosted instance, its own origin for the API",
    preset: on!(
        provider::GitLab::self_hosted("gitlab.acme.example", "gl-client")
            .unwrap()
            .secret(SECRET)
    ),
    authorize: "https://gitlab.acme.example/oauth/authorize",
    params: &[("scope", Some("openid profile email"))],
    token_path: "/gitlab.acme.example/oauth/token",
    id_token: oidc("https://gitlab.acme.example"),
    keys: Some("/gitlab.acme.example/oauth/discovery/keys"),
    client: ClientAuth::Post("gl-client"),
    profiles: &[profile(
        "/gitlab.acme.example/oauth/userinfo",
        r#"{"sub": "1234", "email": "ada@acme.example", "email_verified": true}"#,
        "1234",
        Some("ada@acme.example"),
    )],
    api_origins: Some(&["https://gitlab.acme.example"]),
    ..ROW
};

const DISCORD: Row = Row {
    quirk: "Discord: identify email, client_secret_basic, the email only when verified",
    preset: on!(provider::Discord::new("dc-client").unwrap().secret(SECRET)),
    authorize: "https://discord.com/oauth2/authorize",
    params: &[("scope", Some("identify email"))],
    token_path: "/discord.com/api/oauth2/token",
    answer: r#"{"access_token": "dc-at", "token_type": "Bearer", "expires_in": 604800,
                "refresh_token": "dc-rt", "scope": "identify email"}"#,
    client: ClientAuth::Basic("dc-client", SECRET),
    profiles: &[
        profile(
            "/discord.com/api/users/@me",
            r#"{"id": "80351110224678912", "username": "nelly", "email": "nelly@example.com", "verified": true}"#,
            "80351110224678912",
            Some("nelly@example.com"),
        ),
        profile(
            "/discord.com/api/users/@me",
            r#"{"id": "80351110224678912", "email": "nelly@example.com", "verified": false}"#,
            "80351110224678912",
            None,
        ),
    ],
    api_origins: Some(&["https://discord.com"]),
    ..ROW
};

const FACEBOOK: Row = Row {
    quirk: "Facebook: a versioned Graph API, no refresh token, the fields of /me",
    preset: on!(provider::Facebook::with_version("fb-app", "v21.0")
        .unwrap()
        .secret(SECRET)),
    authorize: "https://www.facebook.com/v21.0/dialog/oauth",
    params: &[("scope", Some("email public_profile"))],
    token_path: "/graph.facebook.com/v21.0/oauth/access_token",
    answer: r#"{"access_token": "EAAshort", "token_type": "bearer", "expires_in": 5400}"#,
    client: ClientAuth::Post("fb-app"),
    token: |token| {
        assert!(
            token.refresh_token().is_none(),
            "Facebook issues no refresh tokens"
        );
    },
    profiles: &[profile(
        "/graph.facebook.com/v21.0/me?fields=id,email",
        r#"{"id": "10158", "email": "ada@example.com"}"#,
        "10158",
        Some("ada@example.com"),
    )],
    ..ROW
};

const REDDIT_UA: &str = "linux:com.example.tests:v1.0 (by /u/example)";

const REDDIT: Row = Row {
    quirk: "Reddit: Basic without a secret, a descriptive User-Agent, duration=permanent, no email",
    preset: on!(provider::Reddit::new("rd-client", REDDIT_UA).unwrap()),
    authorize: "https://www.reddit.com/api/v1/authorize",
    params: &[("duration", Some("permanent")), ("scope", Some("identity"))],
    token_path: "/www.reddit.com/api/v1/access_token",
    answer: r#"{"access_token": "rd-at", "token_type": "bearer", "expires_in": 86400,
                "refresh_token": "rd-rt", "scope": "identity"}"#,
    // An installed app has no secret, and Reddit still wants Basic: `client_id:`.
    client: ClientAuth::Basic("rd-client", ""),
    user_agent: Some(REDDIT_UA),
    token: |token| assert!(token.refresh_token().is_some()),
    profiles: &[Profile {
        headers: &[("authorization", "Bearer rd-at")],
        ..profile(
            "/oauth.reddit.com/api/v1/me",
            r#"{"id": "1w72", "name": "spez"}"#,
            "1w72",
            None,
        )
    }],
    api_origins: Some(&["https://oauth.reddit.com"]),
    ..ROW
};

const SHOPIFY: Row = Row {
    quirk: "Shopify: comma-separated scopes, a signed callback, an offline token without type or \
            expiry, the token in X-Shopify-Access-Token",
    preset: on!(provider::Shopify::new("acme-store", "sh-client")
        .unwrap()
        .secret(SECRET)
        .scopes("read_products write_orders")),
    authorize: "https://acme-store.myshopify.com/admin/oauth/authorize",
    params: &[
        ("scope", Some("read_products,write_orders")),
        ("grant_options[]", None),
    ],
    callback: |request| shopify_signed(shopify_pairs(request), SECRET),
    token_path: "/acme-store.myshopify.com/admin/oauth/access_token",
    // An offline token: no token_type, no expires_in.
    answer: r#"{"access_token": "shpat_abc", "scope": "read_products,write_orders"}"#,
    client: ClientAuth::Post("sh-client"),
    token: |token| {
        assert_eq!(token.header_value(), "Bearer shpat_abc");
        assert!(token.lifetime() > Duration::from_secs(300 * 24 * 3600));
    },
    profiles: &[Profile {
        headers: &[("x-shopify-access-token", "shpat_abc")],
        absent: &["authorization"],
        ..profile(
            "/acme-store.myshopify.com/admin/api/2025-10/shop.json",
            r#"{"shop": {"id": 690933842, "name": "Acme", "email": "owner@acme.example"}}"#,
            "690933842",
            Some("owner@acme.example"),
        )
    }],
    api_origins: Some(&["https://acme-store.myshopify.com"]),
    ..ROW
};

const LINKEDIN: Row = Row {
    quirk: "LinkedIn: no PKCE, an ID token without the nonce",
    preset: on!(provider::LinkedIn::new("li-client").unwrap().secret(SECRET)),
    authorize: "https://www.linkedin.com/oauth/v2/authorization",
    params: &[("scope", Some("openid profile email"))],
    pkce: false,
    token_path: "/www.linkedin.com/oauth/v2/accessToken",
    answer: r#"{"access_token": "li-at", "token_type": "Bearer", "expires_in": 5183999}"#,
    id_token: Some(IdToken {
        iss: "https://www.linkedin.com/oauth",
        claims: "{}",
        nonce: false,
    }),
    client: ClientAuth::Post("li-client"),
    profiles: &[profile(
        "/api.linkedin.com/v2/userinfo",
        r#"{"sub": "782bbtaQ", "email": "ada@example.com", "email_verified": true}"#,
        "782bbtaQ",
        Some("ada@example.com"),
    )],
    api_origins: Some(&["https://api.linkedin.com"]),
    ..ROW
};

const KAKAO: Row = Row {
    quirk: "Kakao: a numeric id, the email only when valid and verified",
    preset: on!(provider::Kakao::new("kk-rest-key").unwrap().secret(SECRET)),
    authorize: "https://kauth.kakao.com/oauth/authorize",
    token_path: "/kauth.kakao.com/oauth/token",
    answer: r#"{"token_type": "bearer", "access_token": "kk-at", "expires_in": 43199,
                "refresh_token": "kk-rt", "refresh_token_expires_in": 5183999}"#,
    client: ClientAuth::Post("kk-rest-key"),
    profiles: &[
        profile(
            "/kapi.kakao.com/v2/user/me",
            r#"{"id": 123456789, "kakao_account": {"email": "ada@kakao.example",
                    "is_email_valid": true, "is_email_verified": true}}"#,
            "123456789",
            Some("ada@kakao.example"),
        ),
        profile(
            "/kapi.kakao.com/v2/user/me",
            r#"{"id": 123456789, "kakao_account": {"email": "ada@kakao.example",
                    "is_email_valid": false, "is_email_verified": true}}"#,
            "123456789",
            None,
        ),
    ],
    api_origins: Some(&["https://kapi.kakao.com"]),
    ..ROW
};

const NAVER: Row = Row {
    quirk: "Naver: expires_in as a string, the response envelope",
    preset: on!(provider::Naver::new("nv-client").unwrap().secret(SECRET)),
    authorize: "https://nid.naver.com/oauth2.0/authorize",
    token_path: "/nid.naver.com/oauth2.0/token",
    answer: r#"{"access_token": "nv-at", "refresh_token": "nv-rt", "token_type": "bearer", "expires_in": "3600"}"#,
    client: ClientAuth::Post("nv-client"),
    token: |token| {
        assert_eq!(token.lifetime(), Duration::from_secs(3600));
        assert!(token.lifetime_was_reported());
    },
    profiles: &[profile(
        "/openapi.naver.com/v1/nid/me",
        r#"{"resultcode": "00", "message": "success",
                "response": {"id": "32742776", "email": "ada@naver.com", "nickname": "ada"}}"#,
        "32742776",
        Some("ada@naver.com"),
    )],
    api_origins: Some(&["https://openapi.naver.com"]),
    ..ROW
};

#[tokio::test]
async fn every_preset_signs_in_as_its_provider_documents() {
    for row in [
        GITHUB,
        GITHUB_FORM,
        GOOGLE,
        MICROSOFT,
        MICROSOFT_COMMON,
        OKTA,
        AUTH0,
        KEYCLOAK,
        GITLAB,
        DISCORD,
        FACEBOOK,
        REDDIT,
        SHOPIFY,
        LINKEDIN,
        KAKAO,
        NAVER,
    ] {
        let server = MockServer::start().await;
        let build = row.preset.expect("a preset");
        sign_in(&row, &server, &*build(Rewrite::to(&server))).await;
    }
}

/// Runs `row` with `preset`: the authorization request, the token request and its answer, and
/// each profile; returns the token.
async fn sign_in(row: &Row, server: &MockServer, preset: &dyn Preset) -> Token {
    eprintln!("{}", row.quirk);
    let flow = preset.auth_code();
    let request = flow
        .authorization_request(preset.client(), REDIRECT)
        .unwrap();
    assert_eq!(
        request.url().as_str().split('?').next(),
        Some(row.authorize)
    );
    let client_id = preset.client().client_id().to_owned();
    assert_eq!(param(&request, "client_id"), Some(client_id.clone()));
    for (name, value) in row.params {
        assert_eq!(param(&request, name).as_deref(), *value, "{name}");
    }
    assert_eq!(param(&request, "code_challenge").is_some(), row.pkce);
    assert_eq!(
        param(&request, "code_challenge_method").as_deref(),
        row.pkce.then_some("S256")
    );

    let mut answer = row.answer.to_owned();
    let mut _keys = None;
    if let Some(keys) = row.keys {
        _keys = Some(get(keys, jwks()).mount_as_scoped(server).await);
    }
    if let Some(id) = &row.id_token {
        let nonce = if id.nonce {
            assert!(param(&request, "nonce").is_some());
            request.nonce()
        } else {
            None
        };
        let claims = serde_json::from_str(id.claims).unwrap();
        let mut body: Value = serde_json::from_str(&answer).unwrap();
        body["id_token"] = json!(id_token(id.iss, &client_id, nonce, claims));
        answer = body.to_string();
    }
    let _token = Mock::given(method("POST"))
        .and(path(row.token_path))
        .respond_with(ResponseTemplate::new(200).set_body_raw(answer, row.content_type))
        .expect(1)
        .mount_as_scoped(server)
        .await;
    let pairs = (row.callback)(&request);
    let code = pairs.iter().find(|(k, _)| k == "code").unwrap().1.clone();
    let checked = request.check(&Callback::from_pairs(pairs)).unwrap();
    let token = flow
        .exchange(preset.client(), &request, checked)
        .await
        .unwrap();
    (row.token)(&token);

    let (headers, form) = token_request(server, row.token_path).await;
    assert_eq!(headers["accept"], "application/json");
    match row.user_agent {
        Some(agent) => assert_eq!(headers["user-agent"], agent),
        None => assert!(
            headers["user-agent"]
                .to_str()
                .unwrap()
                .starts_with("oauth-layer/")
        ),
    }
    assert!(form_has(&form, "code", &code));
    assert!(form_has(&form, "grant_type", "authorization_code"));
    assert_eq!(form_lacks(&form, "code_verifier"), !row.pkce);
    match row.client {
        ClientAuth::Basic(id, secret) => {
            assert_eq!(headers["authorization"], basic(id, secret).as_str());
            assert!(form_lacks(&form, "client_secret"));
        }
        ClientAuth::Post(id) => {
            assert!(headers.get("authorization").is_none());
            assert!(form_has(&form, "client_id", id));
            assert!(form_has(&form, "client_secret", SECRET));
        }
        ClientAuth::Public(id) => {
            assert!(headers.get("authorization").is_none());
            assert!(form_has(&form, "client_id", id));
            assert!(form_lacks(&form, "client_secret"));
        }
    }

    for profile in row.profiles {
        read_profile(row, server, preset, &token, profile).await;
    }
    if let Some(origins) = row.api_origins {
        assert_eq!(preset.api_origins(), origins);
    }
    token
}

/// A GET of `at` (`path?query`) answered with the JSON `body`, once.
fn get(at: &str, body: impl ToString) -> Mock {
    let (at_path, query) = at.split_once('?').unwrap_or((at, ""));
    let mut mock = Mock::given(method("GET")).and(path(at_path));
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        mock = mock.and(query_param(name.into_owned(), value.into_owned()));
    }
    mock.respond_with(ResponseTemplate::new(200).set_body_raw(body.to_string(), "application/json"))
}

/// `id_email` against the answers of `profile`: the requests it makes and what it returns.
async fn read_profile(
    row: &Row,
    server: &MockServer,
    preset: &dyn Preset,
    token: &Token,
    profile: &Profile,
) {
    let answers: Vec<(&str, &str)> = [(profile.at, profile.body)]
        .into_iter()
        .chain(profile.then.iter().copied())
        .collect();
    let mut mocks = Vec::new();
    for (at, body) in &answers {
        let mock = get(at, body).expect(1);
        mocks.push(mock.mount_as_scoped(server).await);
    }
    let before = server.received_requests().await.unwrap().len();
    let (id, email) = preset.id_email(token).await.unwrap();
    assert_eq!((id.as_str(), email.as_deref()), (profile.id, profile.email));
    let requests = server.received_requests().await.unwrap();
    let asked: Vec<String> = requests[before..]
        .iter()
        .map(|r| match r.url.query() {
            Some(query) => format!("{}?{query}", r.url.path()),
            None => r.url.path().to_owned(),
        })
        .collect();
    let answered: Vec<&str> = answers.iter().map(|(at, _)| *at).collect();
    assert_eq!(asked, answered);
    for request in &requests[before..] {
        let agent = request.headers["user-agent"].to_str().unwrap();
        match row.user_agent {
            Some(expected) => assert_eq!(agent, expected),
            None => assert!(agent.starts_with("oauth-layer/"), "{agent}"),
        }
        for (name, value) in profile.headers {
            assert_eq!(request.headers[*name], *value, "{name}");
        }
        for name in profile.absent {
            assert!(request.headers.get(*name).is_none(), "{name}");
        }
    }
}

#[tokio::test]
async fn authorization_parameters_follow_the_presets_options() {
    let web = provider::Reddit::new("rd-web", REDDIT_UA).unwrap();
    let online = provider::Shopify::new("acme-store.myshopify.com", "c").unwrap();
    let cases: [(Box<dyn Preset>, Params); 3] = [
        // Without the options: offline by default, no prompt.
        (
            Box::new(provider::Google::new("g").unwrap().offline(false)),
            &[("access_type", None), ("prompt", None)],
        ),
        // A web app: Basic with its secret; a temporary grant on request.
        (
            Box::new(web.secret(SECRET).permanent(false)),
            &[("duration", Some("temporary"))],
        ),
        (
            Box::new(online.secret(SECRET).online(true)),
            &[("grant_options[]", Some("per-user"))],
        ),
    ];
    for (preset, expected) in cases {
        let request = preset
            .auth_code()
            .authorization_request(preset.client(), REDIRECT)
            .unwrap();
        for (name, value) in expected {
            assert_eq!(
                param(&request, name).as_deref(),
                *value,
                "{}",
                preset.name()
            );
        }
    }
}

#[tokio::test]
async fn constructors_check_where_the_provider_lives() {
    let org = provider::Okta::org("https://dev-123.okta.com/", "okta-client").unwrap();
    assert_eq!(
        org.client().token_url().unwrap().as_str(),
        "https://dev-123.okta.com/oauth2/v1/token"
    );
    assert_eq!(org.client().issuer(), Some("https://dev-123.okta.com"));
    assert_eq!(
        provider::GitLab::new("c").unwrap().client().issuer(),
        Some("https://gitlab.com")
    );
    let microsoft = |tenant| provider::Microsoft::new(tenant, "ms-client").unwrap();
    assert!(microsoft(TENANT).validates_id_tokens());
    assert!(microsoft("common").validates_id_tokens());
    assert!(!microsoft("common").issuer_is_fixed());
    assert!(microsoft("consumers").issuer_is_fixed());
    assert!(!microsoft("organizations").issuer_is_fixed());
    assert_eq!(
        provider::Shopify::new("acme-store", "c").unwrap().shop(),
        "acme-store.myshopify.com"
    );
    let refused = [
        (
            "an Okta server id",
            provider::Okta::with_authorization_server("dev-123.okta.com", "../x", "c").err(),
        ),
        (
            "a Graph API version",
            provider::Facebook::with_version("x", "23").err(),
        ),
        (
            "a Graph API path",
            provider::Facebook::with_version("x", "v23.0/../..").err(),
        ),
        (
            "a Microsoft tenant",
            provider::Microsoft::new("bad/tenant", "x").err(),
        ),
        (
            "a user agent",
            provider::Reddit::new("x", "bad\nagent").err(),
        ),
    ];
    for (what, error) in refused {
        assert!(error.is_some(), "{what}");
    }
    for bad in ["evil.example/x", "", "-x", "a.b.myshopify.com", "x?y"] {
        assert!(provider::Shopify::new(bad, "c").is_err(), "{bad}");
    }
}

#[tokio::test]
async fn facebook_trades_the_sign_in_token_for_a_long_lived_one() {
    let server = MockServer::start().await;
    let facebook = provider::Facebook::with_version("fb-app", "v21.0")
        .unwrap()
        .secret(SECRET)
        .with_client(|c| c.transport(Rewrite::to(&server)))
        .unwrap();
    let short = sign_in(&FACEBOOK, &server, &facebook).await;
    Mock::given(method("POST"))
        .and(path("/graph.facebook.com/v21.0/oauth/access_token"))
        .and(body_string_contains("grant_type=fb_exchange_token"))
        .and(body_string_contains("fb_exchange_token=EAAshort"))
        .and(body_string_contains("client_secret=s3cret"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "EAAlong", "token_type": "bearer", "expires_in": 5183944}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let long = facebook.long_lived(&short).await.unwrap();
    assert_eq!(long.header_value(), "Bearer EAAlong");
    assert_eq!(long.lifetime(), Duration::from_secs(5183944));
}

// ---------------------------------------------------------------------------------------------
// What a row cannot say: errors with status 200, ID tokens from elsewhere

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

#[tokio::test]
async fn id_tokens_are_checked_against_the_providers_issuer() {
    const OTHER_TENANT: &str = "11111111-2222-3333-4444-555555555555";
    let issuer_of = |tenant: &str| format!("https://login.microsoftonline.com/{tenant}/v2.0");
    let google = |iss: &str, nonce_ok| (&GOOGLE, iss.to_owned(), nonce_ok, json!({}));
    let common = |iss: String, tid: Value, nonce_ok| {
        let claims = if tid.is_null() {
            json!({})
        } else {
            json!({ "tid": tid })
        };
        (&MICROSOFT_COMMON, iss, nonce_ok, claims)
    };
    // Google documents both spellings of `iss`.
    let accepted = [
        google("https://accounts.google.com", true),
        google("accounts.google.com", true),
    ];
    // Refused: another issuer or another sign-in's nonce; for Microsoft's common endpoint, an
    // issuer of another tenant than `tid`, no `tid`, a `tid` that is no tenant id, the template
    // itself.
    let refused = [
        google("https://evil.example", true),
        google("evil.example", true),
        google("accounts.google.com.evil.example", true),
        google("https://accounts.google.com", false),
        (
            &MICROSOFT,
            issuer_of("00000000-0000-0000-0000-000000000000"),
            true,
            json!({}),
        ),
        common(issuer_of(TENANT), json!(OTHER_TENANT), true),
        common(issuer_of(TENANT), Value::Null, true),
        common(issuer_of("common"), json!("common"), true),
        common(issuer_of("{tenantid}"), json!(TENANT), true),
        common("https://evil.example/v2.0".to_owned(), json!(TENANT), true),
        common(issuer_of(TENANT), json!(TENANT), false),
    ];
    let verdicts = accepted
        .into_iter()
        .map(|case| (case, true))
        .chain(refused.into_iter().map(|case| (case, false)));
    for ((row, iss, nonce_ok, claims), accept) in verdicts {
        let server = MockServer::start().await;
        let preset = (row.preset.unwrap())(Rewrite::to(&server));
        get(row.keys.unwrap(), jwks()).mount(&server).await;
        let result =
            sign_in_with_id_token(&*preset, &server, row.token_path, &iss, nonce_ok, claims).await;
        let what = format!("{} {iss} {nonce_ok}: {result:?}", preset.name());
        if accept {
            assert!(result.is_ok(), "{what}");
        } else {
            assert!(matches!(result, Err(Error::InvalidIdToken(_))), "{what}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shopify: the signed callback

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
    get(
        &format!("/{host_path}/.well-known/openid-configuration"),
        doc,
    )
    .mount(server)
    .await;
    get(&format!("/{host_path}/jwks"), jwks())
        .mount(server)
        .await;
}

const FRANCECONNECT: Row = Row {
    quirk: "FranceConnect: acr_values, the method the discovery document lists",
    authorize: "https://fcp-low.integ01.dev-franceconnect.fr/api/v2/authorize",
    params: &[
        ("acr_values", Some("eidas1")),
        ("scope", Some("openid given_name family_name email")),
    ],
    token_path: "/fcp-low.integ01.dev-franceconnect.fr/api/v2/token",
    answer: r#"{"access_token": "fc-at", "token_type": "Bearer", "expires_in": 60}"#,
    id_token: Some(IdToken {
        iss: "https://fcp-low.integ01.dev-franceconnect.fr/api/v2",
        claims: r#"{"acr": "eidas1"}"#,
        nonce: true,
    }),
    client: ClientAuth::Post("fc-client"),
    ..ROW
};

#[tokio::test]
async fn franceconnect_integration_acr_values_and_signed_userinfo() {
    let server = MockServer::start().await;
    let issuer = provider::Environment::Integration.issuer();
    let host_path = issuer.strip_prefix("https://").unwrap();
    mount_discovery(&server, issuer, json!({})).await;
    let client = client_for("fc-client", &server).secret(SECRET);
    let fc = provider::FranceConnect::discover(client, provider::Environment::Integration)
        .await
        .unwrap();
    let token = sign_in(&FRANCECONNECT, &server, &fc).await;
    assert_eq!(FRANCECONNECT.authorize, format!("{issuer}/authorize"));

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

const OPENID: Row = Row {
    quirk: "OpenID Connect by discovery: the method the document lists, the userinfo endpoint",
    authorize: "https://idp.example/authorize",
    params: &[("scope", Some("openid email"))],
    token_path: "/idp.example/token",
    id_token: oidc("https://idp.example"),
    client: ClientAuth::Basic("oidc-client", SECRET),
    profiles: &[profile(
        "/idp.example/userinfo",
        r#"{"sub": "user-42", "email": "ada@idp.example"}"#,
        "user-42",
        Some("ada@idp.example"),
    )],
    ..ROW
};

#[tokio::test]
async fn openid_discovers_validates_and_reads_userinfo() {
    let server = MockServer::start().await;
    mount_discovery(
        &server,
        "https://idp.example",
        json!({"token_endpoint_auth_methods_supported": ["client_secret_basic"]}),
    )
    .await;
    let client = client_for("oidc-client", &server).secret(SECRET);
    let idp = provider::OpenId::discover(client, "https://idp.example")
        .await
        .unwrap()
        .scopes("openid email");
    sign_in(&OPENID, &server, &idp).await;

    // A document for another issuer is refused.
    let server = MockServer::start().await;
    get(
        "/idp.example/.well-known/openid-configuration",
        json!({"issuer": "https://evil.example", "token_endpoint": "https://evil.example/token"}),
    )
    .mount(&server)
    .await;
    let client = client_for("oidc-client", &server);
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
    // Bearer middleware would be ignored by Shopify: refused up front.
    let shopify = provider::Shopify::new("acme-store", "c")
        .unwrap()
        .secret(SECRET);
    assert!(matches!(shopify.middleware(), Err(Error::Config(_))));
}
