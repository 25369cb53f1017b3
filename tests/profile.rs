//! The FAPI 2.0 profile (`profile::Profile`): a configuration that breaks it is refused when the
//! client or the source is built, with an error naming the requirement; a conforming client
//! pushes every sign-in, requires `iss`, addresses its assertions to the issuer for a minute at
//! most, and accepts no RS256 ID token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod test_keys;

use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oauth_layer::clock::{Clock, ManualClock};
use oauth_layer::dpop::Dpop;
use oauth_layer::flow::{AuthCode, ClientCredentials, Flow, Password};
use oauth_layer::interact::BrowserFn;
use oauth_layer::jwt::{Algorithm, SigningKey};
use oauth_layer::oidc::IdTokenValidator;
use oauth_layer::profile::Profile;
use oauth_layer::store::MemoryStore;
use oauth_layer::testing::{TestServer, TestServerBuilder};
use oauth_layer::{AuthMethod, Error, ExposeSecret, OAuthClient, OAuthClientBuilder, TokenSource};
use serde_json::{Value, json};
use test_keys::{EC_PRIVATE, EC_PUBLIC, ED_KEY, ED_X, RSA_KEY, RSA_N, RSA_PRIVATE};
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ISSUER: &str = "https://bank.example";

/// Everything FAPI 2.0 asks of a client: an ES256 key, the issuer, DPoP, the profile.
fn conforming(id: &str) -> OAuthClientBuilder {
    OAuthClient::builder(id)
        .signing_key(SigningKey::es256_pem(EC_PRIVATE).unwrap())
        .issuer(ISSUER)
        .token_url("https://bank.example/token")
        .authorization_url("https://bank.example/authorize")
        .par_url("https://bank.example/par")
        .dpop(Dpop::new())
        .profile(Profile::Fapi2)
}

fn config_message(result: Result<OAuthClient, Error>) -> String {
    match result {
        Err(Error::Config(message)) => message,
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[test]
fn every_weak_client_setting_is_refused_at_build_naming_the_requirement() {
    let bare = || {
        OAuthClient::builder("bank-app")
            .issuer(ISSUER)
            .token_url("https://bank.example/token")
            .dpop(Dpop::new())
            .profile(Profile::Fapi2)
    };
    let cases: Vec<(&str, OAuthClientBuilder, &[&str])> = vec![
        (
            "a shared secret (basic)",
            bare().secret("s3cret-never-shown"),
            &[
                "FAPI 2.0",
                "client_secret_basic",
                "private_key_jwt or mutual TLS",
            ],
        ),
        (
            "a shared secret (post)",
            bare()
                .secret("s3cret-never-shown")
                .auth_method(AuthMethod::ClientSecretPost),
            &["client_secret_post"],
        ),
        (
            "a shared secret signing (client_secret_jwt)",
            bare()
                .secret("s3cret-never-shown")
                .auth_method(AuthMethod::ClientSecretJwt),
            &["client_secret_jwt"],
        ),
        ("a public client", bare(), &["none"]),
        (
            "an RS256 key",
            bare().signing_key(SigningKey::rs256_pem(RSA_PRIVATE).unwrap()),
            &["does not allow RS256", "PS256, ES256 and EdDSA"],
        ),
        (
            "assertions without an issuer to address",
            OAuthClient::builder("bank-app")
                .token_url("https://bank.example/token")
                .signing_key(SigningKey::es256_pem(EC_PRIVATE).unwrap())
                .dpop(Dpop::new())
                .profile(Profile::Fapi2),
            &["issuer identifier"],
        ),
        (
            "bearer tokens",
            OAuthClient::builder("bank-app")
                .issuer(ISSUER)
                .token_url("https://bank.example/token")
                .signing_key(SigningKey::es256_pem(EC_PRIVATE).unwrap())
                .profile(Profile::Fapi2),
            &["sender-constrained", "dpop"],
        ),
    ];
    for (what, builder, fragments) in cases {
        let message = config_message(builder.build());
        for fragment in fragments {
            assert!(
                message.contains(fragment),
                "{what}: {message:?} lacks {fragment:?}"
            );
        }
        assert!(!message.contains("s3cret-never-shown"), "{what}: {message}");
    }

    // PS256, ES256 and EdDSA keys all conform; the message-signing variant checks the same.
    for key in [
        SigningKey::ps256_pem(RSA_PRIVATE).unwrap(),
        SigningKey::es256_pem(EC_PRIVATE).unwrap(),
        SigningKey::eddsa_pem(ED_KEY).unwrap(),
    ] {
        for profile in [Profile::Fapi2, Profile::Fapi2MessageSigning] {
            let client = conforming("bank-app")
                .signing_key(key.clone())
                .profile(profile)
                .build()
                .unwrap();
            assert_eq!(client.profile(), Some(profile));
            assert!(client.assertion_audience_issuer());
        }
    }
    assert_eq!(Profile::from_name("fapi2"), Some(Profile::Fapi2));
    assert_eq!(
        Profile::from_name(Profile::Fapi2MessageSigning.as_str()),
        Some(Profile::Fapi2MessageSigning)
    );
    assert_eq!(Profile::from_name("FAPI2 "), None);
}

/// A person who approves every sign-in: the browser follows the authorization URL to the
/// loopback receiver.
fn approving_browser(
    opened: Arc<Mutex<Vec<Url>>>,
) -> BrowserFn<impl Fn(&Url) -> std::io::Result<()>> {
    BrowserFn(move |url: &Url| {
        opened.lock().unwrap().push(url.clone());
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

fn bank() -> TestServerBuilder {
    TestServer::builder()
        .client("bank-app", None, AuthMethod::PrivateKeyJwt)
        .client_key("bank-app", Algorithm::ES256, EC_PUBLIC)
        .support_dpop(true)
}

/// The TestServer's client for `bank-app`, made to conform.
fn fapi_client(server: &TestServer) -> OAuthClient {
    server
        .oauth_client_builder("bank-app")
        .unwrap()
        .signing_key(SigningKey::es256_pem(EC_PRIVATE).unwrap())
        .dpop(Dpop::new())
        .profile(Profile::Fapi2)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_conforming_sign_in_is_pushed_with_pkce_and_comes_back_dpop_bound() {
    // The server does not require pushed requests: the profile pushes anyway.
    let server = bank().start().await.unwrap();
    let client = fapi_client(&server);
    let opened = Arc::new(Mutex::new(Vec::new()));
    let flow = AuthCode::new()
        .scope("accounts")
        .loopback()
        .browser(approving_browser(opened.clone()));
    let source = TokenSource::builder(client, flow).try_build().unwrap();
    let token = source.token().await.unwrap();

    assert_eq!(token.token_type(), "DPoP");
    assert_eq!(server.par_requests(), 1);
    let pushed = &server.par_request_log()[0];
    assert_eq!(pushed.client_id.as_deref(), Some("bank-app"));
    let param = |name: &str| {
        pushed
            .params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(param("code_challenge_method"), Some("S256"));
    assert!(param("dpop_jkt").is_some(), "the code is bound to the key");
    let opened = opened.lock().unwrap();
    let mut names: Vec<String> = opened[0]
        .query_pairs()
        .map(|(k, _)| k.into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["client_id", "request_uri"]);
}

#[tokio::test]
async fn a_sign_in_answered_without_iss_is_refused_under_the_profile() {
    let server = bank().send_iss(false).start().await.unwrap();
    let client = fapi_client(&server);
    let flow = AuthCode::new()
        .scope("accounts")
        .loopback()
        .browser(approving_browser(Arc::default()));
    let err = flow.fetch(&client).await.unwrap_err();
    assert!(
        matches!(&err, Error::MalformedCallback(m) if m.contains("iss")),
        "{err:?}"
    );
    assert_eq!(server.token_requests(), 0, "no code was redeemed");
}

#[tokio::test]
async fn weakened_flows_and_the_password_grant_are_refused_before_anything_is_sent() {
    let server = bank()
        .user("ann", "ann-password-never-shown")
        .start()
        .await
        .unwrap();
    let client = fapi_client(&server);
    let flows: Vec<(&str, Arc<dyn Flow>, &str)> = vec![
        (
            "password",
            Arc::new(Password::new("ann", "ann-password-never-shown")),
            "forbids the password grant",
        ),
        (
            "no PKCE",
            Arc::new(AuthCode::new().pkce(false)),
            "requires PKCE",
        ),
        (
            "no PAR",
            Arc::new(AuthCode::new().par(false)),
            "requires pushed authorization requests",
        ),
        (
            "an implicit response mode",
            Arc::new(AuthCode::new().auth_param("response_mode", "fragment")),
            "response_mode",
        ),
    ];
    for (what, flow, fragment) in flows {
        let refused = TokenSource::builder(client.clone(), ArcFlow(flow.clone())).try_build();
        let message = match refused {
            Err(Error::Config(message)) => message,
            other => panic!("{what}: expected a configuration error, got {other:?}"),
        };
        assert!(message.contains(fragment), "{what}: {message}");
        assert!(message.contains("FAPI 2.0"), "{what}: {message}");
        assert!(!message.contains("never-shown"), "{what}: {message}");

        // `build` keeps the error for every token request, and never runs the flow.
        let source = TokenSource::builder(client.clone(), ArcFlow(flow)).build();
        let err = source.token().await.unwrap_err();
        assert!(err.to_string().contains(fragment), "{what}: {err}");
    }
    assert_eq!(server.token_requests(), 0);
    assert_eq!(server.par_requests(), 0);
    assert_eq!(server.authorization_requests(), 0);

    // A client without a pushed authorization request endpoint cannot sign anyone in.
    let no_par = OAuthClient::builder("bank-app")
        .signing_key(SigningKey::es256_pem(EC_PRIVATE).unwrap())
        .issuer(server.url())
        .token_url(server.token_url())
        .authorization_url(server.authorization_url())
        .dpop(Dpop::new())
        .profile(Profile::Fapi2)
        .build()
        .unwrap();
    let err = TokenSource::builder(no_par, AuthCode::new())
        .try_build()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("pushed_authorization_request_endpoint"),
        "{err}"
    );
    // Machine grants conform.
    TokenSource::builder(client, ClientCredentials::new())
        .try_build()
        .unwrap();
}

/// A flow shared between two sources of a test.
#[derive(Debug)]
struct ArcFlow(Arc<dyn Flow>);

#[async_trait::async_trait]
impl Flow for ArcFlow {
    async fn fetch(&self, client: &OAuthClient) -> oauth_layer::Result<oauth_layer::Token> {
        self.0.fetch(client).await
    }
    fn cache_key(&self, client: &OAuthClient) -> oauth_layer::store::CacheKey {
        self.0.cache_key(client)
    }
    fn is_interactive(&self) -> bool {
        self.0.is_interactive()
    }
    fn conforms(&self, client: &OAuthClient) -> oauth_layer::Result<()> {
        self.0.conforms(client)
    }
}

#[tokio::test]
async fn client_assertions_name_only_the_issuer_and_live_a_minute() {
    let server = MockServer::builder().start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "at-1", "token_type": "DPoP", "expires_in": 600
        })))
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let client = OAuthClient::builder("bank-app")
        .signing_key(SigningKey::es256_pem(EC_PRIVATE).unwrap())
        .issuer(ISSUER)
        .token_url(format!("{}/token", server.uri()))
        .dpop(Dpop::new())
        .clock(clock.clone())
        .profile(Profile::Fapi2)
        .build()
        .unwrap();
    TokenSource::new(client, ClientCredentials::new())
        .token()
        .await
        .unwrap();

    let requests = server.received_requests().await.unwrap();
    let body = String::from_utf8(requests[0].body.clone()).unwrap();
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let assertion = &form
        .iter()
        .find(|(k, _)| k == "client_assertion")
        .unwrap()
        .1;
    let payload = assertion.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(claims["aud"], json!(ISSUER), "the issuer alone: {claims}");
    let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert!(lifetime <= 60, "{claims}");
    let now = clock
        .now_utc()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(claims["exp"].as_u64().unwrap() <= now + 60);
}

#[tokio::test]
async fn tokens_obtained_without_the_profile_are_not_served_to_a_client_with_it() {
    let server = bank().start().await.unwrap();
    let store = MemoryStore::new();
    let plain = server
        .oauth_client_builder("bank-app")
        .unwrap()
        .signing_key(SigningKey::es256_pem(EC_PRIVATE).unwrap())
        .dpop(Dpop::new())
        .build()
        .unwrap();
    let plain_token = TokenSource::builder(plain, ClientCredentials::new())
        .store(store.clone())
        .build()
        .token()
        .await
        .unwrap();
    let fapi_token = TokenSource::builder(fapi_client(&server), ClientCredentials::new())
        .store(store)
        .build()
        .token()
        .await
        .unwrap();
    assert_ne!(
        plain_token.access_token().expose_secret(),
        fapi_token.access_token().expose_secret()
    );
    assert_eq!(server.token_requests(), 2);
}

/// An ID token signed with `alg` by `pem`, valid on the wiremock issuer's terms.
fn id_token(
    alg: jsonwebtoken::Algorithm,
    kid: &str,
    pem: &str,
    issuer: &str,
    client: &str,
) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"iss": issuer, "sub": "ann", "aud": client, "exp": now + 300, "iat": now});
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = Some(kid.to_owned());
    let key = match alg {
        jsonwebtoken::Algorithm::EdDSA => jsonwebtoken::EncodingKey::from_ed_pem(pem.as_bytes()),
        _ => jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()),
    }
    .unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

#[tokio::test]
async fn rs256_id_tokens_are_refused_under_the_profile_and_eddsa_accepted() {
    let jwks = MockServer::builder().start().await;
    Mock::given(method("GET"))
        .and(path("/jwks"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "x": ED_X, "kid": "ed-1", "use": "sig"},
            {"kty": "RSA", "n": RSA_N, "e": "AQAB", "kid": "rsa-1", "use": "sig"},
        ]})))
        .mount(&jwks)
        .await;
    let jwks_uri = format!("{}/jwks", jwks.uri());
    let rsa = id_token(
        jsonwebtoken::Algorithm::RS256,
        "rsa-1",
        RSA_KEY,
        ISSUER,
        "bank-app",
    );
    let ed = id_token(
        jsonwebtoken::Algorithm::EdDSA,
        "ed-1",
        ED_KEY,
        ISSUER,
        "bank-app",
    );

    let fapi = conforming("bank-app").build().unwrap();
    let validator = IdTokenValidator::new(&fapi, ISSUER, &jwks_uri).unwrap();
    validator.validate(&ed, None).await.unwrap();
    let err = validator.validate(&rsa, None).await.unwrap_err();
    assert!(err.to_string().contains("RS256"), "{err}");

    // The same token passes without the profile: the refusal is the profile's.
    let plain = OAuthClient::builder("bank-app").build().unwrap();
    IdTokenValidator::new(&plain, ISSUER, &jwks_uri)
        .unwrap()
        .validate(&rsa, None)
        .await
        .unwrap();
}

#[tokio::test]
async fn discovery_alone_configures_a_conforming_client_that_signs_in() {
    let server = bank().start().await.unwrap();
    // No issuer, no endpoints: the profile needs them, and the discovery document brings them.
    let builder = OAuthClient::builder("bank-app")
        .signing_key(SigningKey::es256_pem(EC_PRIVATE).unwrap())
        .dpop(Dpop::new())
        .profile(Profile::Fapi2);
    let client = oauth_layer::discovery::configure(builder, server.url())
        .await
        .unwrap();
    assert_eq!(client.issuer(), Some(server.url().as_str()));
    assert_eq!(client.profile(), Some(Profile::Fapi2));
    let flow = AuthCode::new()
        .scope("accounts")
        .loopback()
        .browser(approving_browser(Arc::default()));
    let token = TokenSource::builder(client, flow)
        .try_build()
        .unwrap()
        .token()
        .await
        .unwrap();
    assert_eq!(token.token_type(), "DPoP");
    assert_eq!(server.par_requests(), 1);
}
