#![allow(clippy::unwrap_used, clippy::expect_used)]
//! ID token validation (SECURITY.md rules 44 and 45) against a wiremock JWKS endpoint, with
//! tokens signed by test keys made for this file.

mod test_keys;

use std::time::{Duration, UNIX_EPOCH};
use test_keys::{ED_KEY, ED_X, OTHER_ED_KEY, OTHER_ED_X, RSA_KEY, RSA_N};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use oauth_layer::clock::{Clock, ManualClock};
use oauth_layer::oidc::IdTokenValidator;
use oauth_layer::{Error, OAuthClient};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ISSUER: &str = "https://idp.example";
const CLIENT_ID: &str = "my-app";

struct Idp {
    server: MockServer,
    clock: ManualClock,
}

impl Idp {
    async fn start() -> Self {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/jwks"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"keys": [
                {"kty": "OKP", "crv": "Ed25519", "x": ED_X, "kid": "ed-1", "alg": "EdDSA", "use": "sig"},
                {"kty": "OKP", "crv": "Ed25519", "x": OTHER_ED_X, "kid": "ed-2", "use": "sig"},
                {"kty": "RSA", "n": RSA_N, "e": "AQAB", "kid": "rsa-1", "alg": "RS256", "use": "sig"},
            ]})))
            .mount(&server)
            .await;
        Self {
            server,
            clock: ManualClock::new(),
        }
    }

    fn validator(&self) -> IdTokenValidator {
        let client = OAuthClient::builder(CLIENT_ID)
            .secret("client-secret-for-hs256")
            .clock(self.clock.clone())
            .build()
            .unwrap();
        IdTokenValidator::new(&client, ISSUER, &format!("{}/jwks", self.server.uri())).unwrap()
    }

    /// Claims that pass, on the test's clock.
    fn claims(&self) -> Value {
        let now = self
            .clock
            .now_utc()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        json!({
            "iss": ISSUER, "sub": "user-42", "aud": CLIENT_ID,
            "exp": now + 300, "iat": now, "nonce": "n-123",
            "email": "ada@example.com", "email_verified": true,
        })
    }
}

fn sign(claims: &Value, alg: Algorithm, kid: Option<&str>, pem: &str) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    let key = match alg {
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()).unwrap(),
        Algorithm::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        Algorithm::HS256 => EncodingKey::from_secret(pem.as_bytes()),
        _ => unreachable!(),
    };
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

fn ed(claims: &Value) -> String {
    sign(claims, Algorithm::EdDSA, Some("ed-1"), ED_KEY)
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    if value.is_null() {
        claims.as_object_mut().unwrap().remove(name);
    } else {
        claims[name] = value;
    }
    claims
}

async fn rejected(idp: &Idp, token: &str, nonce: Option<&str>) -> String {
    match idp.validator().validate(token, nonce).await {
        Err(Error::InvalidIdToken(why)) => why,
        other => panic!("expected InvalidIdToken, got {other:?}"),
    }
}

#[tokio::test]
async fn a_good_token_is_accepted_with_its_claims() {
    let idp = Idp::start().await;
    let claims = idp
        .validator()
        .validate(&ed(&idp.claims()), Some("n-123"))
        .await
        .unwrap();
    assert_eq!(claims.subject, "user-42");
    assert_eq!(claims.issuer, ISSUER);
    assert_eq!(claims.audience, [CLIENT_ID]);
    assert_eq!(claims.email.as_deref(), Some("ada@example.com"));
    assert_eq!(claims.email_verified, Some(true));

    let rsa = sign(&idp.claims(), Algorithm::RS256, Some("rsa-1"), RSA_KEY);
    idp.validator().validate(&rsa, Some("n-123")).await.unwrap();
}

#[tokio::test]
async fn a_wrong_signature_is_refused() {
    let idp = Idp::start().await;
    // Signed with another key than the one its kid names.
    let forged = sign(&idp.claims(), Algorithm::EdDSA, Some("ed-1"), OTHER_ED_KEY);
    assert!(
        rejected(&idp, &forged, Some("n-123"))
            .await
            .contains("signature")
    );
    // A claim changed after signing.
    let token = ed(&idp.claims());
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let tampered = ed(&with(idp.claims(), "sub", json!("someone-else")));
    parts[1] = tampered.split('.').nth(1).unwrap().to_owned();
    assert!(
        rejected(&idp, &parts.join("."), Some("n-123"))
            .await
            .contains("signature")
    );
}

#[tokio::test]
async fn alg_none_and_unlisted_algorithms_are_refused() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let idp = Idp::start().await;
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": "ed-1"})),
        b64(&idp.claims())
    );
    rejected(&idp, &none, Some("n-123")).await;
    // HS256 with the client secret is refused unless turned on.
    let hs = sign(
        &idp.claims(),
        Algorithm::HS256,
        None,
        "client-secret-for-hs256",
    );
    assert!(
        rejected(&idp, &hs, Some("n-123"))
            .await
            .contains("not accepted")
    );
    let allowed = idp.validator().allow_client_secret_hs256(true);
    allowed.validate(&hs, Some("n-123")).await.unwrap();
    // A token whose alg is not its key's.
    let mismatched = sign(&idp.claims(), Algorithm::RS256, Some("ed-1"), RSA_KEY);
    rejected(&idp, &mismatched, Some("n-123")).await;
}

#[tokio::test]
async fn wrong_iss_aud_or_azp_are_refused() {
    let idp = Idp::start().await;
    for (name, value, why) in [
        ("iss", json!("https://idp.example/"), "iss"),
        ("iss", json!("https://evil.example"), "iss"),
        ("iss", Value::Null, "iss"),
        ("aud", json!("another-app"), "aud"),
        ("aud", json!([]), "aud"),
        ("aud", Value::Null, "aud"),
        ("aud", json!([CLIENT_ID, "another-app"]), "azp"),
    ] {
        let token = ed(&with(idp.claims(), name, value.clone()));
        let got = rejected(&idp, &token, Some("n-123")).await;
        assert!(got.contains(why), "{name}={value}: {got}");
    }
    let with_azp = with(
        with(idp.claims(), "aud", json!([CLIENT_ID, "another-app"])),
        "azp",
        json!(CLIENT_ID),
    );
    idp.validator()
        .validate(&ed(&with_azp), Some("n-123"))
        .await
        .unwrap();
}

/// OIDC Core §3.1.3.7 step 5: an `azp` that names another party is refused even when `aud` is
/// this client alone (or lists it among others).
#[tokio::test]
async fn a_foreign_azp_is_refused_whatever_the_audience() {
    let idp = Idp::start().await;
    for aud in [
        json!(CLIENT_ID),
        json!([CLIENT_ID]),
        json!([CLIENT_ID, "another-app"]),
    ] {
        for azp in [
            json!("another-app"),
            json!(""),
            json!(42),
            json!([CLIENT_ID]),
        ] {
            let claims = with(with(idp.claims(), "aud", aud.clone()), "azp", azp.clone());
            let why = rejected(&idp, &ed(&claims), Some("n-123")).await;
            assert!(why.contains("azp"), "aud={aud} azp={azp}: {why}");
        }
    }
    let own = with(idp.claims(), "azp", json!(CLIENT_ID));
    idp.validator()
        .validate(&ed(&own), Some("n-123"))
        .await
        .unwrap();
}

/// RFC 7515 §4.1.11: a token whose header names a critical extension the validator does not
/// implement is refused, even when properly signed.
#[tokio::test]
async fn an_unknown_critical_header_is_refused() {
    let idp = Idp::start().await;
    for crit in [vec!["urn:example:must-understand"], vec!["exp"], vec![]] {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some("ed-1".into());
        header.crit = Some(crit.iter().map(|c| c.to_string()).collect());
        let key = EncodingKey::from_ed_pem(ED_KEY.as_bytes()).unwrap();
        let token = jsonwebtoken::encode(&header, &idp.claims(), &key).unwrap();
        let why = rejected(&idp, &token, Some("n-123")).await;
        assert!(why.contains("crit"), "{crit:?}: {why}");
    }
}

/// SECURITY.md rule 46: times too large to represent saturate, times before 1970 are refused;
/// nothing panics.
#[tokio::test]
async fn extreme_times_are_refused_or_saturate_without_a_panic() {
    let idp = Idp::start().await;
    let huge = [
        json!(i64::MAX),
        json!(u64::MAX),
        json!(1e300),
        json!(1.8e19),
    ];
    for value in &huge {
        // A far expiry is the issuer's word: the token is valid.
        let claims = idp
            .validator()
            .validate(
                &ed(&with(idp.claims(), "exp", value.clone())),
                Some("n-123"),
            )
            .await
            .unwrap();
        assert!(claims.expires_at > idp.clock.now_utc() + Duration::from_secs(100 * 365 * 86400));
        // Issued, or valid, only in a far future: refused.
        let why = rejected(
            &idp,
            &ed(&with(idp.claims(), "iat", value.clone())),
            Some("n-123"),
        )
        .await;
        assert!(why.contains("future"), "iat={value}: {why}");
        let why = rejected(
            &idp,
            &ed(&with(idp.claims(), "nbf", value.clone())),
            Some("n-123"),
        )
        .await;
        assert!(why.contains("nbf"), "nbf={value}: {why}");
    }
    for name in ["exp", "iat", "nbf"] {
        for value in [
            json!(-1),
            json!(i64::MIN),
            json!(-1e300),
            json!("1700000000"),
        ] {
            let why = rejected(
                &idp,
                &ed(&with(idp.claims(), name, value.clone())),
                Some("n-123"),
            )
            .await;
            assert!(why.contains(name), "{name}={value}: {why}");
        }
    }
    // A present, passed nbf is fine.
    let now = idp.claims()["iat"].clone();
    idp.validator()
        .validate(&ed(&with(idp.claims(), "nbf", now)), Some("n-123"))
        .await
        .unwrap();
    // An endless leeway accepts an expired token rather than panicking.
    let token = ed(&idp.claims());
    idp.clock.advance(Duration::from_secs(10_000));
    idp.validator()
        .leeway(Duration::MAX)
        .validate(&token, Some("n-123"))
        .await
        .unwrap();
}

/// An issuer alias is accepted byte for byte, and only it: the expected issuer still is, and
/// near misses are not.
#[tokio::test]
async fn an_issuer_alias_is_accepted_exactly() {
    let idp = Idp::start().await;
    let validator = idp.validator().also_accept_issuer("idp.example");
    for iss in [ISSUER, "idp.example"] {
        let token = ed(&with(idp.claims(), "iss", json!(iss)));
        validator.validate(&token, Some("n-123")).await.unwrap();
    }
    for iss in [
        "IDP.EXAMPLE",
        "idp.example/",
        "evil.idp.example",
        "https://evil.example",
    ] {
        let token = ed(&with(idp.claims(), "iss", json!(iss)));
        let err = validator.validate(&token, Some("n-123")).await.unwrap_err();
        assert!(err.to_string().contains("iss"), "{iss}: {err}");
    }
    // Without the alias it is refused.
    let token = ed(&with(idp.claims(), "iss", json!("idp.example")));
    assert!(rejected(&idp, &token, Some("n-123")).await.contains("iss"));
}

#[tokio::test]
async fn missing_or_passed_times_are_refused_on_the_clients_clock() {
    let idp = Idp::start().await;
    for name in ["exp", "iat"] {
        let token = ed(&with(idp.claims(), name, Value::Null));
        assert!(rejected(&idp, &token, Some("n-123")).await.contains(name));
    }
    let token = ed(&idp.claims());
    let validator = idp.validator();
    validator.validate(&token, Some("n-123")).await.unwrap();
    idp.clock.advance(Duration::from_secs(300 + 61));
    match validator.validate(&token, Some("n-123")).await {
        Err(Error::InvalidIdToken(why)) => assert!(why.contains("expired")),
        other => panic!("{other:?}"),
    }
    let future = with(idp.claims(), "iat", json!(9_999_999_999u64));
    assert!(
        rejected(&idp, &ed(&future), Some("n-123"))
            .await
            .contains("future")
    );
}

#[tokio::test]
async fn the_nonce_must_be_the_sign_ins() {
    let idp = Idp::start().await;
    assert!(
        rejected(&idp, &ed(&idp.claims()), Some("another-nonce"))
            .await
            .contains("nonce")
    );
    let without = ed(&with(idp.claims(), "nonce", Value::Null));
    assert!(
        rejected(&idp, &without, Some("n-123"))
            .await
            .contains("nonce")
    );
}

#[tokio::test]
async fn oversized_or_malformed_input_is_refused_before_decoding() {
    let idp = Idp::start().await;
    let huge = format!("{}.{}.{}", "a".repeat(10_000), "b".repeat(10_000), "c");
    assert!(rejected(&idp, &huge, None).await.contains("longer"));
    for bad in [
        "",
        "a",
        "a.b",
        "a.b.c.d",
        "....",
        "a.b.c.d.e",
        "!!.??.**",
        "é.é.é",
    ] {
        rejected(&idp, bad, None).await;
    }
    assert!(
        idp.server.received_requests().await.unwrap().is_empty(),
        "no key was fetched"
    );
}

#[tokio::test]
async fn keys_are_fetched_once_and_an_unknown_kid_is_refused() {
    let idp = Idp::start().await;
    let validator = idp.validator();
    for _ in 0..5 {
        validator
            .validate(&ed(&idp.claims()), Some("n-123"))
            .await
            .unwrap();
    }
    let unknown = sign(
        &idp.claims(),
        Algorithm::EdDSA,
        Some("rotated-away"),
        ED_KEY,
    );
    match validator.validate(&unknown, Some("n-123")).await {
        Err(Error::InvalidIdToken(why)) => assert!(why.contains("kid")),
        other => panic!("{other:?}"),
    }
    assert_eq!(idp.server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_plain_http_jwks_uri_to_a_remote_host_is_refused() {
    let client = OAuthClient::builder(CLIENT_ID).build().unwrap();
    let err = IdTokenValidator::new(&client, ISSUER, "http://idp.example/jwks").unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
}

/// An OpenID provider on wiremock: discovery, keys and a token endpoint that answers with an ID
/// token made by `id_token` (given the sign-in's nonce).
async fn sign_in_with(
    id_token: impl Fn(&Idp, &str) -> String,
) -> oauth_layer::Result<oauth_layer::Token> {
    use oauth_layer::flow::AuthCode;
    use oauth_layer::flow::auth_code::Callback;

    let idp = Idp::start().await;
    let issuer = idp.server.uri();
    Mock::given(method("GET"))
        .and(path("/.well-known/openid-configuration"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks"),
        })))
        .mount(&idp.server)
        .await;
    let client = oauth_layer::discovery::configure(
        OAuthClient::builder(CLIENT_ID).clock(idp.clock.clone()),
        &issuer,
    )
    .await
    .unwrap();
    let flow = AuthCode::new()
        .scope("openid email")
        .validate_id_token(true);
    let request = flow
        .authorization_request(&client, "http://127.0.0.1:9/cb")
        .unwrap();
    let nonce = request.nonce().expect("openid sends a nonce").to_owned();
    let token = id_token(&idp, &nonce);
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "at-1", "token_type": "Bearer", "expires_in": 300, "id_token": token,
        })))
        .mount(&idp.server)
        .await;
    let code = request
        .check(&Callback::from_pairs([
            ("code", "c-1"),
            ("state", request.state()),
        ]))
        .unwrap();
    flow.exchange(&client, &request, code).await
}

/// Claims for the wiremock issuer.
fn issued_by(idp: &Idp, nonce: &str) -> Value {
    let claims = with(idp.claims(), "iss", json!(idp.server.uri()));
    with(claims, "nonce", json!(nonce))
}

#[tokio::test]
async fn the_auth_code_flow_validates_the_id_token_with_the_discovered_keys() {
    let token = sign_in_with(|idp, nonce| ed(&issued_by(idp, nonce)))
        .await
        .unwrap();
    assert!(token.id_token().is_some());
}

#[tokio::test]
async fn the_auth_code_flow_refuses_a_bad_id_token() {
    // Another sign-in's nonce.
    let err = sign_in_with(|idp, _| ed(&issued_by(idp, "stale-nonce")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidIdToken(ref why) if why.contains("nonce")),
        "{err:?}"
    );
    // Signed by a key the issuer does not publish under that kid.
    let err = sign_in_with(|idp, nonce| {
        sign(
            &issued_by(idp, nonce),
            Algorithm::EdDSA,
            Some("ed-1"),
            OTHER_ED_KEY,
        )
    })
    .await
    .unwrap_err();
    assert!(matches!(err, Error::InvalidIdToken(_)), "{err:?}");
    // Another issuer's token.
    let err = sign_in_with(|idp, nonce| ed(&with(issued_by(idp, nonce), "iss", json!(ISSUER))))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidIdToken(ref why) if why.contains("iss")),
        "{err:?}"
    );
}

#[tokio::test]
async fn userinfo_is_read_with_the_bearer_token_from_the_discovered_endpoint() {
    use wiremock::matchers::header;

    let server = MockServer::start().await;
    let issuer = server.uri();
    Mock::given(path("/.well-known/openid-configuration"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issuer": issuer,
            "token_endpoint": format!("{issuer}/token"),
            "userinfo_endpoint": format!("{issuer}/userinfo"),
        })))
        .mount(&server)
        .await;
    Mock::given(path("/userinfo"))
        .and(header("authorization", "Bearer at-42"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"sub": "u-1", "email": "a@b.example"})),
        )
        .mount(&server)
        .await;
    Mock::given(path("/userinfo"))
        .respond_with(ResponseTemplate::new(401).insert_header("www-authenticate", "Bearer"))
        .mount(&server)
        .await;
    let client = oauth_layer::discovery::configure(OAuthClient::builder(CLIENT_ID), &issuer)
        .await
        .unwrap();
    let token = oauth_layer::Token::builder("at-42")
        .build(&oauth_layer::clock::SystemClock)
        .unwrap();
    let claims = client.userinfo(&token).await.unwrap();
    assert_eq!(claims["email"], "a@b.example");

    let stale = oauth_layer::Token::builder("at-stale")
        .build(&oauth_layer::clock::SystemClock)
        .unwrap();
    let err = client.userinfo(&stale).await.unwrap_err();
    assert!(matches!(err, Error::UnexpectedResponse(_)), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("at-stale"));

    let undiscovered = OAuthClient::builder(CLIENT_ID).build().unwrap();
    assert!(matches!(
        undiscovered.userinfo(&token).await,
        Err(Error::Config(_))
    ));
}
