//! JWT assertions (SECURITY.md rules 38 and 41): `private_key_jwt` and `client_secret_jwt`
//! client authentication, the JWT bearer grant and service account key files. Every assertion
//! the server receives is decoded with the matching public key; time is a `ManualClock`.
#![cfg(feature = "jwt")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod test_keys;

use std::collections::HashSet;
use std::time::{Duration, UNIX_EPOCH};
use test_keys::{EC_PRIVATE, EC_PUBLIC, ED_PRIVATE, ED_PUBLIC, RSA_PRIVATE, RSA_PUBLIC};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use oauth_layer::clock::{Clock, ManualClock};
use oauth_layer::flow::{ClientCredentials, Flow, JwtBearer, ServiceAccount};
use oauth_layer::jwt::{self, SigningKey};
use oauth_layer::{AuthMethod, Error, OAuthClient, RetryPolicy, TokenSource};
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

fn ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "access_token": "AT-from-assertion",
        "token_type": "Bearer",
        "expires_in": 3600,
    }))
}

/// A token endpoint at `/token` that answers `failures` in order, each once, then 200.
async fn endpoint(failures: Vec<ResponseTemplate>) -> MockServer {
    let server = MockServer::start().await;
    for failure in failures {
        Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(failure)
            .up_to_n_times(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ok())
        .mount(&server)
        .await;
    server
}

fn token_url(server: &MockServer) -> String {
    format!("{}/token", server.uri())
}

/// The form of every request the server received, in order.
async fn forms(server: &MockServer) -> Vec<Vec<(String, String)>> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            url::form_urlencoded::parse(&r.body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .collect()
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let mut values = form
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str());
    let first = values.next();
    assert!(values.next().is_none(), "{name} sent twice");
    first
}

/// Verifies `jwt` with `key` and `alg`, checking `iss` and `aud` exactly; returns the header's
/// `kid` and the claims.
fn verify(
    jwt: &str,
    key: &DecodingKey,
    alg: Algorithm,
    iss: &str,
    aud: &str,
) -> (Option<String>, Value) {
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    assert_eq!(header.alg, alg);
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[iss]);
    validation.set_audience(&[aud]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "jti"]);
    let data = jsonwebtoken::decode::<Value>(jwt, key, &validation).unwrap();
    let raw_header = segment(jwt, 0);
    assert_ne!(raw_header["alg"], "none");
    assert_eq!(
        raw_header["alg"].as_str(),
        Some(format!("{alg:?}").as_str())
    );
    (header.kid, data.claims)
}

/// One segment of a JWT, decoded without verification (to look at the header as sent).
fn segment(jwt: &str, n: usize) -> Value {
    use base64::Engine;
    let part = jwt.split('.').nth(n).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn unix_now(clock: &ManualClock) -> u64 {
    clock
        .now_utc()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn rsa_public() -> DecodingKey {
    DecodingKey::from_rsa_pem(RSA_PUBLIC.as_bytes()).unwrap()
}

fn pkjwt_client(server: &MockServer, clock: &ManualClock) -> OAuthClient {
    OAuthClient::builder("svc-client")
        .signing_key(SigningKey::rs256_pem(RSA_PRIVATE).unwrap().kid("rsa-1"))
        .clock(clock.clone())
        .token_url(token_url(server))
        .build()
        .unwrap()
}

#[tokio::test]
async fn private_key_jwt_on_client_credentials_carries_exact_claims() {
    let server = endpoint(vec![]).await;
    let clock = ManualClock::new();
    let client = pkjwt_client(&server, &clock);
    assert_eq!(client.auth_method(), AuthMethod::PrivateKeyJwt);
    assert_eq!(AuthMethod::PrivateKeyJwt.as_str(), "private_key_jwt");

    let token = ClientCredentials::new()
        .scope("api:read")
        .fetch(&client)
        .await
        .unwrap();
    assert_eq!(token.scope(), Some("api:read"));

    let forms = forms(&server).await;
    let form = &forms[0];
    assert_eq!(field(form, "grant_type"), Some("client_credentials"));
    assert_eq!(field(form, "client_id"), Some("svc-client"));
    assert_eq!(
        field(form, "client_assertion_type"),
        Some(CLIENT_ASSERTION_TYPE)
    );
    assert_eq!(field(form, "client_secret"), None);
    let requests = server.received_requests().await.unwrap();
    assert!(requests[0].headers.get("authorization").is_none());

    let jwt = field(form, "client_assertion").unwrap();
    let url = token_url(&server);
    let (kid, claims) = verify(jwt, &rsa_public(), Algorithm::RS256, "svc-client", &url);
    assert_eq!(kid.as_deref(), Some("rsa-1"));
    assert_eq!(claims["sub"], "svc-client");
    assert_eq!(claims["aud"], url.as_str());
    let iat = claims["iat"].as_u64().unwrap();
    assert_eq!(iat, unix_now(&clock));
    let exp = claims["exp"].as_u64().unwrap();
    assert!(exp > iat && exp - iat <= 300, "exp - iat = {}", exp - iat);
    assert!(
        claims["jti"].as_str().unwrap().len() >= 22,
        "jti carries 128 bits"
    );
}

#[tokio::test]
async fn each_retry_carries_a_fresh_client_assertion() {
    let server = endpoint(vec![ResponseTemplate::new(503)]).await;
    let clock = ManualClock::new();
    let client = pkjwt_client(&server, &clock)
        .to_builder()
        .retry_policy(RetryPolicy::default())
        .build()
        .unwrap();

    ClientCredentials::new().fetch(&client).await.unwrap();

    let forms = forms(&server).await;
    assert_eq!(forms.len(), 2, "one 503, one success");
    let url = token_url(&server);
    let assertions: Vec<&str> = forms
        .iter()
        .map(|f| field(f, "client_assertion").unwrap())
        .collect();
    assert_ne!(assertions[0], assertions[1]);
    let first = verify(
        assertions[0],
        &rsa_public(),
        Algorithm::RS256,
        "svc-client",
        &url,
    )
    .1;
    let second = verify(
        assertions[1],
        &rsa_public(),
        Algorithm::RS256,
        "svc-client",
        &url,
    )
    .1;
    assert_ne!(first["jti"], second["jti"]);
    assert!(second["iat"].as_u64() >= first["iat"].as_u64());
    assert!(
        clock.elapsed() > Duration::ZERO,
        "the backoff ran on the manual clock"
    );
}

#[tokio::test]
async fn private_key_jwt_authenticates_a_refresh() {
    let server = endpoint(vec![]).await;
    let clock = ManualClock::new();
    let client = pkjwt_client(&server, &clock);

    let token = client.refresh(&SecretString::from("RT-old")).await.unwrap();
    assert!(
        token.refresh_token().is_some(),
        "the old refresh token is kept"
    );

    let forms = forms(&server).await;
    let form = &forms[0];
    assert_eq!(field(form, "grant_type"), Some("refresh_token"));
    assert_eq!(
        field(form, "client_assertion_type"),
        Some(CLIENT_ASSERTION_TYPE)
    );
    let jwt = field(form, "client_assertion").unwrap();
    let (kid, claims) = verify(
        jwt,
        &rsa_public(),
        Algorithm::RS256,
        "svc-client",
        &token_url(&server),
    );
    assert_eq!(kid.as_deref(), Some("rsa-1"));
    assert_eq!(claims["sub"], "svc-client");
}

#[tokio::test]
async fn client_secret_jwt_signs_hs256_with_the_client_secret() {
    let server = endpoint(vec![]).await;
    let secret = "a-client-secret-of-thirty-two-bytes!";
    let client = OAuthClient::builder("web-app")
        .secret(secret)
        .auth_method(AuthMethod::ClientSecretJwt)
        .token_url(token_url(&server))
        .build()
        .unwrap();
    assert_eq!(AuthMethod::ClientSecretJwt.as_str(), "client_secret_jwt");

    ClientCredentials::new().fetch(&client).await.unwrap();

    let requests = server.received_requests().await.unwrap();
    let body = String::from_utf8_lossy(&requests[0].body).into_owned();
    assert!(
        !body.contains(secret),
        "the secret itself never crosses the wire"
    );
    assert!(requests[0].headers.get("authorization").is_none());
    let forms = forms(&server).await;
    let form = &forms[0];
    assert_eq!(field(form, "client_secret"), None);
    assert_eq!(field(form, "client_id"), Some("web-app"));
    let jwt = field(form, "client_assertion").unwrap();
    let key = DecodingKey::from_secret(secret.as_bytes());
    let (kid, claims) = verify(jwt, &key, Algorithm::HS256, "web-app", &token_url(&server));
    assert_eq!(kid, None);
    assert_eq!(claims["sub"], "web-app");
}

#[tokio::test]
async fn client_assertion_audience_can_be_the_issuer() {
    let server = endpoint(vec![]).await;
    let clock = ManualClock::new();
    let client = pkjwt_client(&server, &clock)
        .to_builder()
        .issuer("https://issuer.example")
        .assertion_audience_issuer(true)
        .build()
        .unwrap();

    ClientCredentials::new().fetch(&client).await.unwrap();

    let forms = forms(&server).await;
    let jwt = field(&forms[0], "client_assertion").unwrap();
    let (_, claims) = verify(
        jwt,
        &rsa_public(),
        Algorithm::RS256,
        "svc-client",
        "https://issuer.example",
    );
    assert_eq!(claims["aud"], "https://issuer.example");
}

#[tokio::test]
async fn private_key_jwt_refuses_a_shared_secret_key() {
    let server = endpoint(vec![]).await;
    let client = OAuthClient::builder("c")
        .signing_key(SigningKey::hs256("shared-secret").unwrap())
        .token_url(token_url(&server))
        .build()
        .unwrap();
    let err = ClientCredentials::new().fetch(&client).await.unwrap_err();
    assert!(matches!(err, Error::Key(_)), "{err:?}");
    assert!(server.received_requests().await.unwrap().is_empty());

    let no_key = OAuthClient::builder("c")
        .auth_method(AuthMethod::PrivateKeyJwt)
        .token_url(token_url(&server))
        .build()
        .unwrap();
    let err = ClientCredentials::new().fetch(&no_key).await.unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
}

#[tokio::test]
async fn jwt_bearer_grant_sends_a_signed_assertion() {
    let server = endpoint(vec![]).await;
    let clock = ManualClock::new();
    let client = OAuthClient::builder("app")
        .clock(clock.clone())
        .token_url(token_url(&server))
        .build()
        .unwrap();
    let flow = JwtBearer::new(
        SigningKey::es256_pem(EC_PRIVATE).unwrap().kid("ec-1"),
        "issuer-app",
    )
    .subject("user@example.com")
    .scope("read write")
    .claim("tenant", json!("acme"))
    .claim("iss", json!("forged"))
    .lifetime(Duration::from_secs(3600));

    let token = TokenSource::new(client.clone(), flow.clone())
        .token()
        .await
        .unwrap();
    assert_eq!(token.scope(), Some("read write"));

    let forms = forms(&server).await;
    let form = &forms[0];
    assert_eq!(field(form, "grant_type"), Some(JWT_BEARER));
    assert_eq!(field(form, "scope"), Some("read write"));
    let jwt = field(form, "assertion").unwrap();
    let key = DecodingKey::from_ec_pem(EC_PUBLIC.as_bytes()).unwrap();
    let url = token_url(&server);
    let (kid, claims) = verify(jwt, &key, Algorithm::ES256, "issuer-app", &url);
    assert_eq!(kid.as_deref(), Some("ec-1"));
    assert_eq!(
        claims["iss"], "issuer-app",
        "a custom claim cannot replace iss"
    );
    assert_eq!(claims["sub"], "user@example.com");
    assert_eq!(claims["aud"], url.as_str());
    assert_eq!(claims["tenant"], "acme");
    assert_eq!(claims.get("scope"), None, "scope went in the form");
    let iat = claims["iat"].as_u64().unwrap();
    assert_eq!(iat, unix_now(&clock));
    assert_eq!(
        claims["exp"].as_u64().unwrap() - iat,
        300,
        "an hour is clamped to five minutes"
    );

    let cache_key = flow.cache_key(&client);
    assert_eq!(cache_key.get("issuer"), Some("issuer-app"));
    assert_eq!(cache_key.get("subject"), Some("user@example.com"));
    assert_eq!(cache_key.get("audience"), Some(url.as_str()));
    assert_eq!(cache_key.get("scope"), Some("read write"));
    let other_subject = flow.clone().subject("other@example.com").cache_key(&client);
    assert_ne!(cache_key, other_subject);
    let other_key = JwtBearer::new(SigningKey::eddsa_pem(ED_PRIVATE).unwrap(), "issuer-app")
        .subject("user@example.com")
        .scope("read write")
        .claim("tenant", json!("acme"))
        .claim("iss", json!("forged"));
    assert_ne!(
        cache_key,
        other_key.cache_key(&client),
        "the signing key separates keys"
    );
}

#[tokio::test]
async fn jwt_bearer_with_eddsa_explicit_audience_and_short_lifetime() {
    let server = endpoint(vec![]).await;
    let clock = ManualClock::new();
    let client = OAuthClient::builder("app")
        .clock(clock.clone())
        .token_url(token_url(&server))
        .build()
        .unwrap();
    let flow = JwtBearer::new(SigningKey::eddsa_pem(ED_PRIVATE).unwrap(), "issuer-app")
        .audience("https://as.example")
        .lifetime(Duration::from_secs(60))
        .not_before(true);

    flow.fetch(&client).await.unwrap();

    let forms = forms(&server).await;
    assert_eq!(field(&forms[0], "scope"), None);
    let jwt = field(&forms[0], "assertion").unwrap();
    let key = DecodingKey::from_ed_pem(ED_PUBLIC.as_bytes()).unwrap();
    let (kid, claims) = verify(
        jwt,
        &key,
        Algorithm::EdDSA,
        "issuer-app",
        "https://as.example",
    );
    assert_eq!(kid, None);
    assert_eq!(
        claims["sub"], "issuer-app",
        "the subject defaults to the issuer"
    );
    let iat = claims["iat"].as_u64().unwrap();
    assert_eq!(claims["exp"].as_u64().unwrap() - iat, 60);
    assert_eq!(claims["nbf"].as_u64(), Some(iat));
}

#[tokio::test]
async fn each_retry_of_the_jwt_bearer_grant_carries_a_fresh_assertion() {
    let server = endpoint(vec![ResponseTemplate::new(503), ResponseTemplate::new(500)]).await;
    let clock = ManualClock::new();
    let client = OAuthClient::builder("app")
        .clock(clock.clone())
        .retry_policy(RetryPolicy::default().attempts(3))
        .token_url(token_url(&server))
        .build()
        .unwrap();
    let flow = JwtBearer::new(SigningKey::ps256_pem(RSA_PRIVATE).unwrap(), "issuer-app");

    flow.fetch(&client).await.unwrap();

    let forms = forms(&server).await;
    assert_eq!(
        forms.len(),
        3,
        "503, 500 (replayable for this grant), then 200"
    );
    let url = token_url(&server);
    let mut jtis = HashSet::new();
    let mut assertions = HashSet::new();
    for form in &forms {
        let jwt = field(form, "assertion").unwrap();
        assertions.insert(jwt.to_owned());
        let (_, claims) = verify(jwt, &rsa_public(), Algorithm::PS256, "issuer-app", &url);
        jtis.insert(claims["jti"].as_str().unwrap().to_owned());
    }
    assert_eq!(assertions.len(), 3);
    assert_eq!(jtis.len(), 3);
}

fn service_account_json(token_uri: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": "demo-project",
        "private_key_id": "0123456789abcdef",
        "private_key": RSA_PRIVATE,
        "client_email": "robot@demo-project.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    })
    .to_string()
}

#[tokio::test]
async fn service_account_json_asks_its_token_uri_with_a_scope_claim() {
    let server = endpoint(vec![]).await;
    let url = token_url(&server);
    let account = ServiceAccount::from_json(&service_account_json(&url)).unwrap();
    assert_eq!(
        account.email(),
        "robot@demo-project.iam.gserviceaccount.com"
    );
    assert_eq!(account.token_uri(), url);
    assert_eq!(account.key_id(), Some("0123456789abcdef"));

    let source = account
        .source(
            "https://www.googleapis.com/auth/cloud-platform https://www.googleapis.com/auth/pubsub",
        )
        .unwrap();
    let token = source.token().await.unwrap();
    assert_eq!(
        token.scope(),
        Some(
            "https://www.googleapis.com/auth/cloud-platform https://www.googleapis.com/auth/pubsub"
        )
    );

    let forms = forms(&server).await;
    let form = &forms[0];
    assert_eq!(field(form, "grant_type"), Some(JWT_BEARER));
    assert_eq!(
        field(form, "scope"),
        None,
        "Google takes scopes in the assertion"
    );
    let jwt = field(form, "assertion").unwrap();
    let (kid, claims) = verify(jwt, &rsa_public(), Algorithm::RS256, account.email(), &url);
    assert_eq!(kid.as_deref(), Some("0123456789abcdef"));
    assert_eq!(
        claims["scope"],
        "https://www.googleapis.com/auth/cloud-platform https://www.googleapis.com/auth/pubsub"
    );
    assert_eq!(claims.get("sub"), None, "no impersonation unless asked for");
    let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert!(lifetime <= 300);
}

#[tokio::test]
async fn service_account_file_loads_and_can_impersonate() {
    let server = endpoint(vec![]).await;
    let url = token_url(&server);
    let dir = std::env::temp_dir().join(format!("oauth-layer-jwt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sa.json");
    std::fs::write(&file, service_account_json(&url)).unwrap();
    let account = ServiceAccount::from_file(&file);
    std::fs::remove_dir_all(&dir).unwrap();
    let account = account.unwrap();

    let client = account
        .client()
        .unwrap()
        .to_builder()
        .clock(ManualClock::new())
        .build()
        .unwrap();
    let flow = account.flow("scope-a").subject("admin@example.com");
    flow.fetch(&client).await.unwrap();

    let forms = forms(&server).await;
    let jwt = field(&forms[0], "assertion").unwrap();
    let (_, claims) = verify(jwt, &rsa_public(), Algorithm::RS256, account.email(), &url);
    assert_eq!(claims["sub"], "admin@example.com");
    assert_eq!(claims["scope"], "scope-a");

    let missing = ServiceAccount::from_file(dir.join("nope.json")).unwrap_err();
    assert!(matches!(missing, Error::Key(_)), "{missing:?}");
}

#[test]
fn bad_keys_are_key_errors() {
    let garbage = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n";
    let cases: Vec<(&str, oauth_layer::Result<SigningKey>)> = vec![
        ("not PEM", SigningKey::rs256_pem("hello")),
        ("garbage body", SigningKey::rs256_pem(garbage)),
        ("public key", SigningKey::rs256_pem(RSA_PUBLIC)),
        ("EC key as RSA", SigningKey::rs256_pem(EC_PRIVATE)),
        ("RSA key as EC", SigningKey::es256_pem(RSA_PRIVATE)),
        ("EC key as Ed25519", SigningKey::eddsa_pem(EC_PRIVATE)),
        (
            "P-256 key for ES384",
            SigningKey::from_pem(jwt::Algorithm::ES384, EC_PRIVATE),
        ),
        (
            "PEM for HS256",
            SigningKey::from_pem(jwt::Algorithm::HS256, RSA_PRIVATE),
        ),
        ("empty secret", SigningKey::hs256("")),
        ("huge", SigningKey::rs256_pem("A".repeat(100_000))),
    ];
    for (what, result) in cases {
        let err = result.expect_err(what);
        assert!(matches!(err, Error::Key(_)), "{what}: {err:?}");
        assert!(!err.to_string().contains("MII"), "{what}: {err}");
    }

    let no_key = json!({"type": "service_account", "client_email": "a@b", "token_uri": "https://oauth2.googleapis.com/token"});
    let bad_pem = json!({"type": "service_account", "client_email": "a@b", "private_key": garbage});
    let user =
        json!({"type": "authorized_user", "client_id": "x", "refresh_token": "1//secret-refresh"});
    let wrong_shape = json!({"type": "service_account", "client_email": "a@b", "private_key": 42});
    for (what, json) in [
        ("no private key", no_key.to_string()),
        ("bad private key", bad_pem.to_string()),
        ("user credentials", user.to_string()),
        ("wrong shape", wrong_shape.to_string()),
        ("not JSON", "{\"private_key\": \"-----BEGIN".to_owned()),
    ] {
        let err = ServiceAccount::from_json(&json).expect_err(what);
        assert!(matches!(err, Error::Key(_)), "{what}: {err:?}");
        let text = format!("{err} {err:?}");
        assert!(
            !text.contains("secret-refresh") && !text.contains("BEGIN"),
            "{what}: {text}"
        );
    }

    let http = service_account_json("http://oauth2.example/token");
    assert!(
        ServiceAccount::from_json(&http).is_err(),
        "plain http to a remote host"
    );
}

#[test]
fn signing_keys_use_their_own_algorithm() {
    for (key, alg) in [
        (
            SigningKey::rs256_pem(RSA_PRIVATE).unwrap(),
            jwt::Algorithm::RS256,
        ),
        (
            SigningKey::ps256_pem(RSA_PRIVATE).unwrap(),
            jwt::Algorithm::PS256,
        ),
        (
            SigningKey::from_pem(jwt::Algorithm::RS512, RSA_PRIVATE).unwrap(),
            jwt::Algorithm::RS512,
        ),
        (
            SigningKey::es256_pem(EC_PRIVATE).unwrap(),
            jwt::Algorithm::ES256,
        ),
        (
            SigningKey::eddsa_pem(ED_PRIVATE).unwrap(),
            jwt::Algorithm::EdDSA,
        ),
        (SigningKey::hs256("s").unwrap(), jwt::Algorithm::HS256),
    ] {
        assert_eq!(key.algorithm(), alg);
        assert_eq!(alg.is_symmetric(), alg == jwt::Algorithm::HS256);
    }
    assert_eq!(jwt::MAX_ASSERTION_LIFETIME, Duration::from_secs(300));
}

#[test]
fn debug_never_shows_key_material() {
    let key = SigningKey::rs256_pem(RSA_PRIVATE).unwrap().kid("rsa-1");
    let hmac = SigningKey::hs256("hmac-shared-secret").unwrap();
    let client = OAuthClient::builder("svc")
        .signing_key(key.clone())
        .token_url("https://idp.example/token")
        .build()
        .unwrap();
    let flow = JwtBearer::new(key.clone(), "svc").scope("a");
    let account =
        ServiceAccount::from_json(&service_account_json("https://oauth2.googleapis.com/token"))
            .unwrap();
    let texts = [
        format!("{key:?}"),
        format!("{key:#?}"),
        format!("{hmac:?}"),
        format!("{client:?}"),
        format!("{flow:?}"),
        format!("{account:?}"),
        format!("{:?}", account.flow("a")),
        format!("{:?}", account.source("a").unwrap()),
    ];
    let body_line = RSA_PRIVATE.lines().nth(1).unwrap();
    for text in texts {
        assert!(!text.contains("PRIVATE"), "{text}");
        assert!(!text.contains(body_line), "{text}");
        assert!(!text.contains("hmac-shared-secret"), "{text}");
    }
    assert!(
        format!("{key:?}").contains("rsa-1"),
        "the kid is not secret"
    );
}

/// A server that echoes the assertion it got back, in an error description and in a text body.
async fn hostile(field_name: &'static str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(move |req: &Request| {
            let form: Vec<(String, String)> = url::form_urlencoded::parse(&req.body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let assertion = field(&form, field_name).unwrap_or_default().to_owned();
            if form.iter().any(|(k, v)| k == "scope" && v == "text") {
                ResponseTemplate::new(502)
                    .set_body_raw(format!("upstream saw {assertion}"), "text/plain")
            } else {
                ResponseTemplate::new(400).set_body_json(json!({
                    "error": "invalid_client",
                    "error_description": format!("bad assertion {assertion}"),
                }))
            }
        })
        .mount(&server)
        .await;
    server
}

fn assert_no_assertion(err: &Error, forms: &[Vec<(String, String)>], field_name: &str) {
    let text = format!("{err} {err:?}");
    for form in forms {
        let assertion = field(form, field_name).unwrap();
        let signature = assertion.rsplit('.').next().unwrap();
        let payload = assertion.split('.').nth(1).unwrap();
        assert!(!text.contains(&signature[..24]), "{text}");
        assert!(!text.contains(&payload[..24]), "{text}");
    }
}

#[tokio::test]
async fn echoed_assertions_never_reach_errors() {
    for scope in ["json", "text"] {
        let server = hostile("client_assertion").await;
        let client = OAuthClient::builder("svc-client")
            .signing_key(SigningKey::es256_pem(EC_PRIVATE).unwrap())
            .retry_policy(RetryPolicy::none())
            .token_url(token_url(&server))
            .build()
            .unwrap();
        let err = ClientCredentials::new()
            .scope(scope)
            .fetch(&client)
            .await
            .unwrap_err();
        assert_no_assertion(&err, &forms(&server).await, "client_assertion");

        let server = hostile("assertion").await;
        let client = OAuthClient::builder("app")
            .retry_policy(RetryPolicy::none())
            .token_url(token_url(&server))
            .build()
            .unwrap();
        let flow = JwtBearer::new(SigningKey::eddsa_pem(ED_PRIVATE).unwrap(), "app").scope(scope);
        let err = flow.fetch(&client).await.unwrap_err();
        assert_no_assertion(&err, &forms(&server).await, "assertion");
    }
}
