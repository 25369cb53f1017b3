//! The local authorization server in the resource-first world (`oauth_layer::testing`):
//! dynamic client registration (RFC 7591/7592), resource indicators (RFC 8707), protected
//! resources that publish RFC 9728 metadata, a resource on another port, and the round-trip log.
//! Driven by plain HTTP and by the crate's public API, refusals included.
#![cfg(all(feature = "testing", feature = "reqwest", feature = "jwt"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oauth_layer::challenge::{Challenge, Challenges};
use oauth_layer::discovery::resource::{self, ResourceIdentifier};
use oauth_layer::flow::ClientCredentials;
use oauth_layer::testing::{
    ProtectedResource, RegistrationPolicy, ResourceServer, RoundTripKind, TestServer,
};
use oauth_layer::{AuthMethod, Error, OAuthClient, TokenSource};
use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, LOCATION};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

// --- helpers -------------------------------------------------------------------------------

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `POST` a form to `url`, with an `Authorization` header when given.
async fn post_form(url: &str, authorization: Option<&str>, pairs: &[(&str, &str)]) -> Answer {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let mut request = http()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    Answer::of(request.send().await.unwrap()).await
}

/// `POST /register` with `metadata`, and the initial access token when given.
async fn register(server: &TestServer, iat: Option<&str>, metadata: &Value) -> Answer {
    let mut request = http().post(server.registration_url()).json(metadata);
    if let Some(iat) = iat {
        request = request.bearer_auth(iat);
    }
    Answer::of(request.send().await.unwrap()).await
}

/// A request to `url` with the method, bearer token and JSON body given.
async fn call(
    method: reqwest::Method,
    url: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> Answer {
    let mut request = http().request(method, url);
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    Answer::of(request.send().await.unwrap()).await
}

async fn get(url: &str, bearer: Option<&str>) -> Answer {
    call(reqwest::Method::GET, url, bearer, None).await
}

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    json: Value,
}

impl Answer {
    async fn of(response: reqwest::Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Self {
            status,
            headers,
            json,
        }
    }

    fn error(&self) -> Option<&str> {
        self.json["error"].as_str()
    }

    fn str(&self, name: &str) -> &str {
        self.json[name]
            .as_str()
            .unwrap_or_else(|| panic!("no string {name} in {}", self.json))
    }

    /// The first challenge of `WWW-Authenticate`, read with the crate's own parser.
    fn challenge(&self) -> Challenge {
        Challenges::from_headers(&self.headers)
            .into_vec()
            .into_iter()
            .next()
            .expect("a WWW-Authenticate challenge")
    }
}

/// A verifier and its S256 challenge, computed here rather than by the crate.
fn pkce() -> (String, String) {
    use sha2::{Digest, Sha256};
    let verifier = "v".repeat(50);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// `GET /authorize` for `client_id` with PKCE and `extra` parameters (repeatable), without
/// following the redirect.
async fn authorize(
    server: &TestServer,
    client_id: &str,
    redirect_uri: &str,
    extra: &[(&str, &str)],
) -> Answer {
    let (_, challenge) = pkce();
    let mut url = url::Url::parse(&server.authorization_url()).unwrap();
    url.query_pairs_mut()
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("state", "st"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .extend_pairs(extra);
    Answer::of(http().get(url).send().await.unwrap()).await
}

/// The query parameter `name` of the redirect an [`authorize`] answer carries.
fn redirect_param(answer: &Answer, name: &str) -> Option<String> {
    let location = answer.headers.get(LOCATION)?.to_str().unwrap();
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.into_owned())
}

/// A code for the public client `client_id`, with `extra` authorization parameters.
async fn code(
    server: &TestServer,
    client_id: &str,
    redirect_uri: &str,
    extra: &[(&str, &str)],
) -> String {
    let answer = authorize(server, client_id, redirect_uri, extra).await;
    assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.json);
    redirect_param(&answer, "code").expect("a code")
}

/// Redeems `code` for the public client `client_id`, with `extra` token parameters.
async fn redeem(
    server: &TestServer,
    client_id: &str,
    redirect_uri: &str,
    code: &str,
    extra: &[(&str, &str)],
) -> Answer {
    let (verifier, _) = pkce();
    let mut pairs = vec![
        ("grant_type", "authorization_code"),
        ("client_id", client_id),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier.as_str()),
    ];
    pairs.extend_from_slice(extra);
    post_form(&server.token_url(), None, &pairs).await
}

fn basic(id: &str, secret: &str) -> String {
    use base64::engine::general_purpose::STANDARD;
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", encode(id), encode(secret)))
    )
}

const LOOPBACK: &str = "http://127.0.0.1:4000/callback";

async fn open_server() -> TestServer {
    TestServer::builder()
        .registration(RegistrationPolicy::Open)
        .start()
        .await
        .unwrap()
}

// --- registration (RFC 7591, RFC 7592) ----------------------------------------------------

#[tokio::test]
async fn registration_is_closed_by_default_and_not_advertised() {
    let server = TestServer::builder().start().await.unwrap();
    let answer = register(&server, None, &json!({ "redirect_uris": [LOOPBACK] })).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let answer = get(&format!("{}/register/anything", server.url()), Some("x")).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let metadata = get(
        &format!("{}/.well-known/oauth-authorization-server", server.url()),
        None,
    )
    .await;
    assert!(metadata.json.get("registration_endpoint").is_none());
    assert!(server.registered_clients().is_empty());
}

#[tokio::test]
async fn open_registration_answers_fresh_credentials_and_echoes_the_metadata() {
    let server = open_server().await;
    for well_known in ["openid-configuration", "oauth-authorization-server"] {
        let metadata = get(&format!("{}/.well-known/{well_known}", server.url()), None).await;
        assert_eq!(
            metadata.str("registration_endpoint"),
            server.registration_url()
        );
    }
    let metadata = json!({
        "redirect_uris": ["https://app.example/callback"],
        "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
        "client_name": "My App",
        "software_id": "4NRB1-0XZABZI9E6-5SM3R",
    });
    let first = register(&server, None, &metadata).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.json);
    assert_eq!(first.headers[CACHE_CONTROL], "no-store");
    let client_id = first.str("client_id").to_owned();
    let secret = first.str("client_secret").to_owned();
    assert!(!first.str("registration_access_token").is_empty());
    assert_eq!(
        first.str("registration_client_uri"),
        format!("{}/register/{client_id}", server.url())
    );
    assert_eq!(first.json["client_secret_expires_at"], 0);
    assert!(first.json["client_id_issued_at"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(first.json["client_name"], "My App");
    assert_eq!(first.json["software_id"], "4NRB1-0XZABZI9E6-5SM3R");
    assert_eq!(
        first.json["redirect_uris"],
        json!(["https://app.example/callback"])
    );
    assert_eq!(
        first.json["token_endpoint_auth_method"],
        "client_secret_basic"
    );
    assert_eq!(first.json["response_types"], json!(["code"]));

    let second = register(&server, None, &metadata).await;
    assert_ne!(second.str("client_id"), client_id);
    assert_ne!(second.str("client_secret"), secret);
    assert_ne!(
        second.str("registration_access_token"),
        first.str("registration_access_token")
    );
    assert_eq!(server.registration_requests(), 2);
    assert_eq!(server.registered_clients().len(), 2);

    // The registered client works like one of the builder, with its secret checked.
    let client = server.oauth_client(&client_id).unwrap();
    let token = TokenSource::new(client, ClientCredentials::new().scope("api:read"))
        .token()
        .await
        .unwrap();
    let info = server
        .access_token_info(token.access_token().expose_secret())
        .unwrap();
    assert_eq!(info.client_id, client_id);
    let wrong = post_form(
        &server.token_url(),
        Some(&basic(&client_id, "not-the-secret")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.error(), Some("invalid_client"));
}

#[tokio::test]
async fn public_clients_get_no_secret_and_their_loopback_redirect_matches_on_any_port() {
    let server = open_server().await;
    let answer = register(
        &server,
        None,
        &json!({
            "redirect_uris": ["http://127.0.0.1:1234/callback", "https://app.example/cb"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
        }),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
    assert!(answer.json.get("client_secret").is_none());
    assert!(answer.json.get("client_secret_expires_at").is_none());
    let client_id = answer.str("client_id").to_owned();

    // RFC 8252 §7.3: the port is the app's choice at run time.
    let on_another_port = "http://127.0.0.1:5678/callback";
    let code = code(&server, &client_id, on_another_port, &[]).await;
    let tokens = redeem(&server, &client_id, on_another_port, &code, &[]).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.json);
    assert!(tokens.json["refresh_token"].is_string());
    let exact = authorize(&server, &client_id, "https://app.example/cb", &[]).await;
    assert_eq!(exact.status, StatusCode::FOUND);

    // Anything else is refused with a page, never a redirect.
    for refused in [
        "http://127.0.0.1:5678/other",
        "http://[::1]:1234/callback",
        "https://app.example/cb/more",
        "http://localhost:1234/callback",
    ] {
        let answer = authorize(&server, &client_id, refused, &[]).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{refused}");
        assert!(answer.headers.get(LOCATION).is_none(), "{refused}");
    }
    // A public client authenticates with its id only; a secret it never had is refused.
    let refused = post_form(
        &server.token_url(),
        Some(&basic(&client_id, "guess")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(refused.error(), Some("invalid_client"));
}

#[tokio::test]
async fn registration_refuses_metadata_a_strict_server_refuses() {
    let server = open_server().await;
    let cases: [(Value, &str); 12] = [
        (
            json!({ "redirect_uris": ["http://app.example/cb"] }),
            "invalid_redirect_uri",
        ),
        (
            json!({ "redirect_uris": ["https://app.example/cb#frag"] }),
            "invalid_redirect_uri",
        ),
        (
            json!({ "redirect_uris": ["com.example.app:/cb"] }),
            "invalid_redirect_uri",
        ),
        (
            json!({ "redirect_uris": ["not a url"] }),
            "invalid_redirect_uri",
        ),
        (json!({ "redirect_uris": [7] }), "invalid_redirect_uri"),
        (
            json!({ "client_name": "no redirect" }),
            "invalid_redirect_uri",
        ),
        (
            json!({ "redirect_uris": [LOOPBACK], "grant_types": ["authorization_code", "implicit"] }),
            "invalid_client_metadata",
        ),
        (
            json!({ "redirect_uris": [LOOPBACK], "grant_types": "authorization_code" }),
            "invalid_client_metadata",
        ),
        (
            json!({ "redirect_uris": [LOOPBACK], "response_types": ["token"] }),
            "invalid_client_metadata",
        ),
        (
            json!({ "redirect_uris": [LOOPBACK], "token_endpoint_auth_method": "private_key_jwt" }),
            "invalid_client_metadata",
        ),
        (
            json!({ "redirect_uris": [LOOPBACK], "token_endpoint_auth_method": "tls_client_auth" }),
            "invalid_client_metadata",
        ),
        (json!(["not", "an", "object"]), "invalid_client_metadata"),
    ];
    for (metadata, error) in cases {
        let answer = register(&server, None, &metadata).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{metadata}");
        assert_eq!(answer.error(), Some(error), "{metadata}");
    }
    assert!(server.registered_clients().is_empty());
    assert_eq!(server.registration_requests(), 12);
    // A client without the code grant needs no redirect URI.
    let machine = register(
        &server,
        None,
        &json!({ "grant_types": ["client_credentials"] }),
    )
    .await;
    assert_eq!(machine.status, StatusCode::CREATED, "{}", machine.json);
}

#[tokio::test]
async fn an_initial_access_token_is_required_when_configured() {
    let server = TestServer::builder()
        .registration(RegistrationPolicy::InitialAccessToken("iat-123".into()))
        .start()
        .await
        .unwrap();
    let metadata = json!({ "redirect_uris": [LOOPBACK] });
    for iat in [None, Some("iat-999"), Some("")] {
        let answer = register(&server, iat, &metadata).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{iat:?}");
        assert_eq!(answer.error(), Some("invalid_token"));
        assert_eq!(answer.challenge().error(), Some("invalid_token"));
    }
    assert!(server.registered_clients().is_empty());
    let answer = register(&server, Some("iat-123"), &metadata).await;
    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(server.registration_requests(), 4);
    assert!(
        !format!(
            "{:?}",
            RegistrationPolicy::InitialAccessToken("iat-123".into())
        )
        .contains("iat-123")
    );
}

#[tokio::test]
async fn client_configuration_reads_updates_and_deletes_with_the_registration_access_token() {
    let server = open_server().await;
    let registered = register(
        &server,
        None,
        &json!({
            "redirect_uris": [LOOPBACK],
            "grant_types": ["authorization_code", "client_credentials"],
            "client_name": "Before",
        }),
    )
    .await;
    let client_id = registered.str("client_id").to_owned();
    let secret = registered.str("client_secret").to_owned();
    let rat = registered.str("registration_access_token").to_owned();
    let uri = registered.str("registration_client_uri").to_owned();

    let read = get(&uri, Some(&rat)).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.json, registered.json);

    // A wrong, missing or other client's token looks like an unknown client: 401.
    let other = register(&server, None, &json!({ "redirect_uris": [LOOPBACK] })).await;
    for token in [
        None,
        Some("rat_wrong"),
        Some(other.str("registration_access_token")),
    ] {
        let answer = get(&uri, token).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(answer.challenge().error(), Some("invalid_token"));
    }
    let unknown = get(
        &format!("{}/register/client_nope", server.url()),
        Some(&rat),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);

    // PUT replaces the metadata; the body must name the client; the credentials stay.
    let update = json!({
        "client_id": client_id,
        "client_secret": secret,
        "redirect_uris": ["https://app.example/new"],
        "grant_types": ["authorization_code", "client_credentials"],
        "client_name": "After",
    });
    let updated = call(reqwest::Method::PUT, &uri, Some(&rat), Some(&update)).await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.json);
    assert_eq!(updated.json["client_name"], "After");
    assert_eq!(updated.str("client_secret"), secret);
    assert_eq!(
        updated.json["redirect_uris"],
        json!(["https://app.example/new"])
    );
    let old_redirect = authorize(&server, &client_id, LOOPBACK, &[]).await;
    assert_eq!(old_redirect.status, StatusCode::BAD_REQUEST);
    let mut wrong_id = update.clone();
    wrong_id["client_id"] = json!("someone-else");
    let refused = call(reqwest::Method::PUT, &uri, Some(&rat), Some(&wrong_id)).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let mut bad = update.clone();
    bad["redirect_uris"] = json!(["http://evil.example/cb"]);
    let refused = call(reqwest::Method::PUT, &uri, Some(&rat), Some(&bad)).await;
    assert_eq!(refused.error(), Some("invalid_redirect_uri"));

    // DELETE removes the client and what it holds.
    let token = post_form(
        &server.token_url(),
        Some(&basic(&client_id, &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    let access_token = token.str("access_token").to_owned();
    assert!(server.access_token_info(&access_token).is_some());
    let deleted = call(reqwest::Method::DELETE, &uri, Some(&rat), None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(server.access_token_info(&access_token).is_none());
    assert_eq!(get(&uri, Some(&rat)).await.status, StatusCode::UNAUTHORIZED);
    let gone = post_form(
        &server.token_url(),
        Some(&basic(&client_id, &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(gone.error(), Some("invalid_client"));
    assert!(server.oauth_client(&client_id).is_err());
    let kinds: Vec<RoundTripKind> = server
        .round_trips()
        .iter()
        .filter(|t| t.path.starts_with("/register/"))
        .map(|t| t.kind)
        .collect();
    assert!(
        kinds
            .iter()
            .all(|k| *k == RoundTripKind::ClientConfiguration)
    );
    assert_eq!(kinds.len(), 10);
}

#[tokio::test]
async fn registered_clients_use_only_the_grant_types_they_registered() {
    let server = open_server().await;
    let registered = register(&server, None, &json!({ "redirect_uris": [LOOPBACK] })).await;
    let id = registered.str("client_id");
    let secret = registered.str("client_secret");
    assert_eq!(
        registered.json["grant_types"],
        json!(["authorization_code"])
    );
    let refused = post_form(
        &server.token_url(),
        Some(&basic(id, secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.error(), Some("unauthorized_client"));
}

// --- resource indicators (RFC 8707) --------------------------------------------------------

async fn machine_server(require: bool) -> TestServer {
    TestServer::builder()
        .client("svc", Some("s3cret"), AuthMethod::ClientSecretBasic)
        .client("cli", None, AuthMethod::None)
        .require_resource_indicator(require)
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn client_credentials_tokens_record_their_resources() {
    let server = machine_server(false).await;
    let flow = ClientCredentials::new()
        .resource("https://mcp.example/mcp")
        .resource("https://api.example/");
    let token = TokenSource::new(server.oauth_client("svc").unwrap(), flow)
        .token()
        .await
        .unwrap();
    let info = server
        .access_token_info(token.access_token().expose_secret())
        .unwrap();
    assert_eq!(
        info.resources,
        ["https://mcp.example/mcp", "https://api.example/"]
    );
    let log = server.token_request_log();
    assert_eq!(
        log[0].resources,
        ["https://mcp.example/mcp", "https://api.example/"]
    );

    let plain = TokenSource::new(
        server.oauth_client("svc").unwrap(),
        ClientCredentials::new(),
    )
    .token()
    .await
    .unwrap();
    let info = server
        .access_token_info(plain.access_token().expose_secret())
        .unwrap();
    assert!(info.resources.is_empty());
    assert!(server.token_request_log()[1].resources.is_empty());
}

#[tokio::test]
async fn a_resource_must_be_an_absolute_uri_without_a_fragment() {
    let server = machine_server(false).await;
    for bad in ["/mcp", "mcp.example", "https://mcp.example/mcp#part"] {
        let answer = post_form(
            &server.token_url(),
            Some(&basic("svc", "s3cret")),
            &[("grant_type", "client_credentials"), ("resource", bad)],
        )
        .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(answer.error(), Some("invalid_target"), "{bad}");
    }
    let log = server.token_request_log();
    assert_eq!(log[2].resources, ["https://mcp.example/mcp#part"]);
    assert_eq!(log[2].error.as_deref(), Some("invalid_target"));

    // The crate's client surfaces it as the server's error.
    let flow = ClientCredentials::new().resource("urn-without-colon");
    let error = TokenSource::new(server.oauth_client("svc").unwrap(), flow)
        .token()
        .await
        .unwrap_err();
    assert_eq!(
        error.server_error().map(|e| e.code.as_str()),
        Some("invalid_target")
    );

    // At the authorization endpoint the refusal is redirected back to the client.
    let answer = authorize(
        &server,
        "cli",
        LOOPBACK,
        &[("resource", "https://a.example/#x")],
    )
    .await;
    assert_eq!(answer.status, StatusCode::FOUND);
    assert_eq!(
        redirect_param(&answer, "error").as_deref(),
        Some("invalid_target")
    );
}

#[tokio::test]
async fn required_resource_indicators_refuse_token_requests_without_one() {
    let server = machine_server(true).await;
    let error = TokenSource::new(
        server.oauth_client("svc").unwrap(),
        ClientCredentials::new(),
    )
    .token()
    .await
    .unwrap_err();
    assert_eq!(
        error.server_error().map(|e| e.code.as_str()),
        Some("invalid_target")
    );
    let flow = ClientCredentials::new().resource("https://mcp.example/mcp");
    TokenSource::new(server.oauth_client("svc").unwrap(), flow)
        .token()
        .await
        .unwrap();
    let log = server.token_request_log();
    assert_eq!(log[0].error.as_deref(), Some("invalid_target"));
    assert_eq!(log[1].status, 200);
}

#[tokio::test]
async fn the_authorization_requests_resources_carry_to_the_code_and_a_refresh_may_narrow_them() {
    let server = machine_server(false).await;
    let (a, b, c) = (
        "https://a.example/mcp",
        "https://b.example/api",
        "https://c.example/",
    );
    let authorized = [("resource", a), ("resource", b)];

    // Redeemed without `resource`: everything authorized.
    let first = code(&server, "cli", LOOPBACK, &authorized).await;
    let tokens = redeem(&server, "cli", LOOPBACK, &first, &[]).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.json);
    let info = server
        .access_token_info(tokens.str("access_token"))
        .unwrap();
    assert_eq!(info.resources, [a, b]);

    // A refresh narrows to one; one never authorized is refused.
    let refresh = tokens.str("refresh_token").to_owned();
    let narrowed = post_form(
        &server.token_url(),
        None,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "cli"),
            ("refresh_token", &refresh),
            ("resource", b),
        ],
    )
    .await;
    assert_eq!(narrowed.status, StatusCode::OK, "{}", narrowed.json);
    let info = server
        .access_token_info(narrowed.str("access_token"))
        .unwrap();
    assert_eq!(info.resources, [b]);
    // The rotated refresh token still holds the whole authorization.
    let widened = post_form(
        &server.token_url(),
        None,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "cli"),
            ("refresh_token", narrowed.str("refresh_token")),
            ("resource", c),
        ],
    )
    .await;
    assert_eq!(widened.error(), Some("invalid_target"));

    // Redeemed with one of them: just that one; with another: refused.
    let second = code(&server, "cli", LOOPBACK, &authorized).await;
    let tokens = redeem(&server, "cli", LOOPBACK, &second, &[("resource", a)]).await;
    let info = server
        .access_token_info(tokens.str("access_token"))
        .unwrap();
    assert_eq!(info.resources, [a]);
    let third = code(&server, "cli", LOOPBACK, &authorized).await;
    let refused = redeem(&server, "cli", LOOPBACK, &third, &[("resource", c)]).await;
    assert_eq!(refused.error(), Some("invalid_target"));
    let resources: Vec<Vec<String>> = server
        .token_request_log()
        .into_iter()
        .map(|r| r.resources)
        .collect();
    assert_eq!(
        resources,
        [
            vec![],
            vec![b.to_owned()],
            vec![c.to_owned()],
            vec![a.to_owned()],
            vec![c.to_owned()]
        ]
    );
}

// --- protected resources (RFC 9728) ----------------------------------------------------------

async fn resource_server() -> TestServer {
    TestServer::builder()
        .client("svc", Some("s3cret"), AuthMethod::ClientSecretBasic)
        .protected_resource(
            ProtectedResource::new("/mcp")
                .scopes_supported(["mcp:tools", "mcp:prompts"])
                .scope("mcp:tools"),
        )
        .protected_resource(ProtectedResource::new("/other"))
        .protected_resource(ProtectedResource::new("/open").require_audience(false))
        .start()
        .await
        .unwrap()
}

/// A client credentials token of `svc` for `resources`, with `scope`.
async fn token_for(server: &TestServer, scope: &str, resources: &[&str]) -> String {
    let mut pairs = vec![("grant_type", "client_credentials"), ("scope", scope)];
    pairs.extend(resources.iter().map(|r| ("resource", *r)));
    let answer = post_form(&server.token_url(), Some(&basic("svc", "s3cret")), &pairs).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    answer.str("access_token").to_owned()
}

#[tokio::test]
async fn a_protected_resource_challenges_with_its_metadata_and_publishes_it() {
    let server = resource_server().await;
    let mcp = server.resource_identifier("/mcp");
    assert_eq!(mcp, format!("{}/mcp", server.url()));

    let answer = get(&server.resource_url("/mcp/tools/list"), None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let challenge = answer.challenge();
    assert!(challenge.is_bearer());
    assert_eq!(challenge.error(), None);
    assert_eq!(
        challenge.resource_metadata(),
        Some(server.resource_metadata_url("/mcp").as_str())
    );
    assert_eq!(challenge.scope(), Some("mcp:tools"));
    assert_eq!(
        server.resource_metadata_url("/mcp"),
        format!("{}/.well-known/oauth-protected-resource/mcp", server.url())
    );

    // The crate's discovery, from the well-known URL and from the challenge.
    let client = OAuthClient::builder("anyone").build().unwrap();
    let identifier = ResourceIdentifier::new(server.resource_url("/mcp")).unwrap();
    let metadata = resource::fetch(&client, &identifier).await.unwrap();
    assert_eq!(metadata.resource, mcp);
    assert_eq!(metadata.authorization_servers, Some(vec![server.url()]));
    assert_eq!(
        metadata.scopes_supported,
        Some(vec!["mcp:tools".to_owned(), "mcp:prompts".to_owned()])
    );
    assert_eq!(
        metadata.bearer_methods_supported,
        Some(vec!["header".to_owned()])
    );
    let from_challenge =
        resource::fetch_from(&client, &identifier, challenge.resource_metadata().unwrap())
            .await
            .unwrap();
    assert_eq!(from_challenge, metadata);
    let other = ResourceIdentifier::new(server.resource_url("/other")).unwrap();
    assert_eq!(
        resource::fetch(&client, &other).await.unwrap().resource,
        server.resource_identifier("/other")
    );
    assert_eq!(server.resource_metadata_requests(), 3);

    // Nothing is published for what is not declared.
    let none = get(
        &format!(
            "{}/.well-known/oauth-protected-resource/nothing",
            server.url()
        ),
        None,
    )
    .await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
    assert_eq!(server.resource_metadata_requests(), 3);

    // A bad token: `error` and the metadata.
    let answer = get(&server.resource_url("/mcp"), Some("forged")).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let challenge = answer.challenge();
    assert_eq!(challenge.error(), Some("invalid_token"));
    assert_eq!(
        challenge.resource_metadata(),
        Some(server.resource_metadata_url("/mcp").as_str())
    );
    let recorded = server.resource_requests();
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[0].path, "/mcp/tools/list");
    assert_eq!(recorded[1].status, 401);
}

#[tokio::test]
async fn a_protected_resource_takes_only_tokens_issued_for_it() {
    let server = resource_server().await;
    let mcp = server.resource_identifier("/mcp");
    let other = server.resource_identifier("/other");
    let for_mcp = token_for(&server, "mcp:tools", &[&mcp]).await;

    let answer = get(&server.resource_url("/mcp"), Some(&for_mcp)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["resource"], mcp);
    assert_eq!(answer.json["resources"], json!([mcp]));

    // Another resource of the same server refuses it, and says where its metadata is.
    let answer = get(&server.resource_url("/other"), Some(&for_mcp)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let challenge = answer.challenge();
    assert_eq!(challenge.error(), Some("invalid_token"));
    assert_eq!(
        challenge.resource_metadata(),
        Some(server.resource_metadata_url("/other").as_str())
    );
    assert_eq!(challenge.scope(), None);

    // A token for no resource, or for a look-alike, is refused too.
    let unbound = token_for(&server, "mcp:tools", &[]).await;
    assert_eq!(
        get(&server.resource_url("/mcp"), Some(&unbound))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let lookalike = token_for(&server, "mcp:tools", &[&format!("{mcp}/")]).await;
    assert_eq!(
        get(&server.resource_url("/mcp"), Some(&lookalike))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // A token for both is accepted by both; without the scope /mcp answers 403.
    let both = token_for(&server, "mcp:tools", &[&mcp, &other]).await;
    assert_eq!(
        get(&server.resource_url("/other"), Some(&both))
            .await
            .status,
        StatusCode::OK
    );
    let unscoped = token_for(&server, "other", &[&mcp]).await;
    let answer = get(&server.resource_url("/mcp"), Some(&unscoped)).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.challenge().error(), Some("insufficient_scope"));
    assert_eq!(answer.challenge().scope(), Some("mcp:tools"));
    assert_eq!(
        answer.challenge().resource_metadata(),
        Some(server.resource_metadata_url("/mcp").as_str())
    );
    // A resource that does not check the audience takes any valid token.
    assert_eq!(
        get(&server.resource_url("/open"), Some(&unbound))
            .await
            .status,
        StatusCode::OK
    );
    // `/api/` is as it was.
    assert_eq!(
        get(&server.resource_url("/api/hello"), Some(&unbound))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn hostile_resources_lie_about_themselves() {
    let server = TestServer::builder()
        .protected_resource(ProtectedResource::new("/mcp"))
        .protected_resource(
            ProtectedResource::new("/liar").document_resource("https://mcp.example/mcp"),
        )
        .protected_resource(ProtectedResource::new("/quiet").challenge_without_metadata())
        .protected_resource(
            ProtectedResource::new("/pointer").challenge_metadata_url("https://evil.example/prm"),
        )
        .protected_resource(
            ProtectedResource::new("/foreign")
                .authorization_server("https://idp.example")
                .authorization_server("https://other-idp.example/tenant"),
        )
        .start()
        .await
        .unwrap();
    let client = OAuthClient::builder("anyone").build().unwrap();

    // A document naming another resource is refused by the crate.
    let liar = ResourceIdentifier::new(server.resource_url("/liar")).unwrap();
    let error = resource::fetch(&client, &liar).await.unwrap_err();
    assert!(matches!(error, Error::ResourceMismatch { .. }), "{error:?}");
    // So is a challenge pointing at another resource's document.
    let mcp = ResourceIdentifier::new(server.resource_url("/mcp")).unwrap();
    let error = resource::fetch_from(&client, &liar, mcp.well_known_url().as_str())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::ResourceMismatch { .. }), "{error:?}");

    // No `resource_metadata` in the challenge: the well-known URL still works.
    let answer = get(&server.resource_url("/quiet"), None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.challenge().resource_metadata(), None);
    assert!(answer.challenge().is_bearer());
    let quiet = ResourceIdentifier::new(server.resource_url("/quiet")).unwrap();
    assert_eq!(
        resource::fetch(&client, &quiet).await.unwrap().resource,
        quiet.as_str()
    );

    let answer = get(&server.resource_url("/pointer"), None).await;
    assert_eq!(
        answer.challenge().resource_metadata(),
        Some("https://evil.example/prm")
    );

    let foreign = ResourceIdentifier::new(server.resource_url("/foreign")).unwrap();
    let metadata = resource::fetch(&client, &foreign).await.unwrap();
    assert_eq!(
        metadata.authorization_servers,
        Some(vec![
            "https://idp.example".to_owned(),
            "https://other-idp.example/tenant".to_owned()
        ])
    );
}

#[tokio::test]
async fn a_resource_on_another_port_never_accepts_the_first_resources_token() {
    let idp = TestServer::builder()
        .client("svc", Some("s3cret"), AuthMethod::ClientSecretBasic)
        .protected_resource(ProtectedResource::new("/mcp"))
        .start()
        .await
        .unwrap();
    let second = ResourceServer::builder(&idp)
        .resource(ProtectedResource::new("/mcp"))
        .start()
        .await
        .unwrap();
    assert_ne!(second.url(), idp.url());
    let first_id = idp.resource_identifier("/mcp");
    let second_id = second.resource_identifier("/mcp");
    assert_ne!(first_id, second_id);

    // The second publishes its own metadata, naming the first as authorization server.
    let client = OAuthClient::builder("anyone").build().unwrap();
    let identifier = ResourceIdentifier::new(second.resource_url("/mcp")).unwrap();
    let metadata = resource::fetch(&client, &identifier).await.unwrap();
    assert_eq!(metadata.resource, second_id);
    assert_eq!(metadata.authorization_servers, Some(vec![idp.url()]));
    assert_eq!(second.resource_metadata_requests(), 1);
    assert_eq!(idp.resource_metadata_requests(), 0);
    let challenge = get(&second.resource_url("/mcp"), None).await.challenge();
    assert_eq!(
        challenge.resource_metadata(),
        Some(second.resource_metadata_url("/mcp").as_str())
    );

    // Each token works only where it was issued for.
    let source = |resource: &str| {
        TokenSource::new(
            idp.oauth_client("svc").unwrap(),
            ClientCredentials::new().resource(resource),
        )
    };
    let first_token = source(&first_id).token().await.unwrap();
    let second_token = source(&second_id).token().await.unwrap();
    let first_token = first_token.access_token().expose_secret();
    let second_token = second_token.access_token().expose_secret();
    assert_eq!(
        get(&idp.resource_url("/mcp"), Some(first_token))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        get(&second.resource_url("/mcp"), Some(second_token))
            .await
            .status,
        StatusCode::OK
    );
    let refused = get(&second.resource_url("/mcp"), Some(first_token)).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.challenge().error(), Some("invalid_token"));
    assert_eq!(
        get(&idp.resource_url("/mcp"), Some(second_token))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    // Each server records its own resource requests; the round trips are in one log.
    let statuses: Vec<u16> = second
        .resource_requests()
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [401, 200, 401]);
    let on_second: Vec<(RoundTripKind, u16)> = idp
        .round_trips()
        .iter()
        .filter(|t| t.origin == second.url())
        .map(|t| (t.kind, t.status))
        .collect();
    assert_eq!(
        on_second,
        [
            (RoundTripKind::ResourceMetadata, 200),
            (RoundTripKind::Resource, 401),
            (RoundTripKind::Resource, 200),
            (RoundTripKind::Resource, 401),
        ]
    );
    assert_eq!(
        get(&second.resource_url("/elsewhere"), None).await.status,
        StatusCode::NOT_FOUND
    );
    second.reset_counts();
    assert!(second.resource_requests().is_empty());
    assert_eq!(second.resource_metadata_requests(), 0);
}

// --- round trips -----------------------------------------------------------------------------

#[tokio::test]
async fn the_round_trip_log_shows_a_cold_start_in_order_and_resets() {
    let server = TestServer::builder()
        .registration(RegistrationPolicy::Open)
        .protected_resource(ProtectedResource::new("/mcp"))
        .start()
        .await
        .unwrap();
    let mcp = server.resource_url("/mcp");

    // What a resource-first client does from nothing, by hand.
    let challenge = get(&mcp, None).await.challenge();
    let client = OAuthClient::builder("anyone").build().unwrap();
    let identifier = ResourceIdentifier::new(&mcp).unwrap();
    let metadata =
        resource::fetch_from(&client, &identifier, challenge.resource_metadata().unwrap())
            .await
            .unwrap();
    let issuer = &metadata.authorization_servers.unwrap()[0];
    let server_metadata = oauth_layer::discovery::discover(&client, issuer)
        .await
        .unwrap();
    let registration_endpoint = server_metadata.registration_endpoint.unwrap();
    let registered = Answer::of(
        http()
            .post(registration_endpoint.as_str())
            .json(&json!({ "redirect_uris": [LOOPBACK], "token_endpoint_auth_method": "none" }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let client_id = registered.str("client_id").to_owned();
    let resource_param = [("resource", identifier.as_str())];
    let code = code(&server, &client_id, LOOPBACK, &resource_param).await;
    let tokens = redeem(&server, &client_id, LOOPBACK, &code, &resource_param).await;
    let answer = get(&mcp, Some(tokens.str("access_token"))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);

    let trips: Vec<(RoundTripKind, u16)> = server
        .round_trips()
        .iter()
        .map(|t| (t.kind, t.status))
        .collect();
    assert_eq!(
        trips,
        [
            (RoundTripKind::Resource, 401),
            (RoundTripKind::ResourceMetadata, 200),
            (RoundTripKind::ServerMetadata, 200),
            (RoundTripKind::Registration, 201),
            (RoundTripKind::Authorization, 302),
            (RoundTripKind::Token, 200),
            (RoundTripKind::Resource, 200),
        ]
    );
    let trips = server.round_trips();
    assert!(trips.iter().all(|t| t.origin == server.url()));
    assert_eq!(trips[0].path, "/mcp");
    assert_eq!(trips[0].method, reqwest::Method::GET);
    assert_eq!(trips[1].path, "/.well-known/oauth-protected-resource/mcp");
    assert_eq!(server.registration_requests(), 1);
    assert_eq!(server.resource_metadata_requests(), 1);
    assert_eq!(server.discovery_requests(), 1);

    server.reset_counts();
    assert!(server.round_trips().is_empty());
    assert_eq!(server.registration_requests(), 0);
    assert_eq!(server.resource_metadata_requests(), 0);
    assert_eq!(server.registered_clients(), [client_id]);
    let _ = get(&format!("{}/nowhere", server.url()), None).await;
    assert_eq!(server.round_trips()[0].kind, RoundTripKind::Other);
}
