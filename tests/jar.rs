//! Signed request objects (RFC 9101): the authorization code flow signs its parameters into a
//! JWT, sends it by value or through a pushed authorization request, leaves nothing else in the
//! URL, refuses configurations that cannot make a valid one, and ends with a typed error when
//! the server refuses it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod test_keys;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oauth_layer::clock::{ManualClock, SystemClock};
use oauth_layer::dpop::Dpop;
use oauth_layer::flow::{AuthCode, AuthorizationDetail, Flow};
use oauth_layer::interact::BrowserFn;
use oauth_layer::jwt::{Algorithm, SigningKey};
use oauth_layer::metadata::Metadata;
use oauth_layer::testing::{RoundTripKind, TestServer, TestServerBuilder};
use oauth_layer::{AuthMethod, Error, OAuthClient, OAuthClientBuilder, discovery};
use serde_json::{Value, json};
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use test_keys::{EC_PRIVATE, EC_PUBLIC, ED_PRIVATE};

/// The URLs the browser was sent to.
type Opened = Arc<Mutex<Vec<Url>>>;

/// A person who approves every sign-in: the browser follows the authorization URL, the server's
/// redirect included, to the loopback receiver.
fn approving_browser(opened: Opened) -> BrowserFn<impl Fn(&Url) -> std::io::Result<()>> {
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

fn key() -> SigningKey {
    SigningKey::es256_pem(EC_PRIVATE).unwrap().kid("jar-key-1")
}

/// A `private_key_jwt` client whose registered key checks its assertions and request objects.
fn server() -> TestServerBuilder {
    TestServer::builder()
        .client("app", None, AuthMethod::PrivateKeyJwt)
        .client_key("app", Algorithm::ES256, EC_PUBLIC)
}

/// The client as the server knows it, configured by hand (no metadata).
fn by_hand(server: &TestServer) -> OAuthClientBuilder {
    server
        .oauth_client_builder("app")
        .unwrap()
        .signing_key(key())
}

async fn discovered(server: &TestServer) -> OAuthClient {
    discovery::configure(by_hand(server), server.url())
        .await
        .unwrap()
}

fn names(url: &Url) -> Vec<String> {
    url.query_pairs().map(|(k, _)| k.into_owned()).collect()
}

fn param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A JWT's header and claims, decoded without checking anything.
fn decode(jwt: &str) -> (Value, Value) {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWS in compact form");
    let part = |i: usize| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[i]).unwrap()).unwrap()
    };
    (part(0), part(1))
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

/// The claims every request object has, whatever the parameters.
fn assert_registered_claims(claims: &Value, server: &TestServer) {
    assert_eq!(claims["iss"], "app");
    assert_eq!(claims["aud"], server.url());
    let iat = claims["iat"].as_u64().unwrap();
    assert_eq!(claims["nbf"].as_u64(), Some(iat));
    assert_eq!(claims["exp"].as_u64(), Some(iat + 300), "five minutes");
    let jti = claims["jti"].as_str().unwrap();
    assert!(jti.len() >= 22, "128 random bits: {jti}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(iat.abs_diff(now) < 60, "iat {iat} is now ({now})");
}

#[tokio::test]
async fn a_request_object_by_value_carries_every_parameter_and_the_url_nothing_else() {
    let server = server().start().await.unwrap();
    let client = by_hand(&server).build().unwrap();
    let detail = AuthorizationDetail::new("payment_initiation")
        .action("initiate")
        .field(
            "instructedAmount",
            json!({"currency": "EUR", "amount": "9.99"}),
        );
    let opened = Opened::default();
    let flow = AuthCode::new()
        .scope("read write")
        .auth_param("login_hint", "alice")
        .authorization_detail(detail.clone())
        .request_object(true)
        .loopback()
        .browser(approving_browser(opened.clone()));
    let token = flow.fetch(&client).await.unwrap();
    assert_eq!(server.token_requests(), 1);
    assert_eq!(server.par_requests(), 0);

    let url = opened.lock().unwrap()[0].clone();
    assert_eq!(names(&url), ["client_id", "request"], "{url}");
    assert_eq!(param(&url, "client_id").as_deref(), Some("app"));
    let (header, claims) = decode(&param(&url, "request").unwrap());
    assert_eq!(
        header,
        json!({"alg": "ES256", "typ": "oauth-authz-req+jwt", "kid": "jar-key-1"})
    );
    assert_eq!(
        keys(&claims),
        set(&[
            "iss",
            "aud",
            "iat",
            "nbf",
            "exp",
            "jti",
            "response_type",
            "client_id",
            "redirect_uri",
            "scope",
            "state",
            "code_challenge",
            "code_challenge_method",
            "authorization_details",
            "login_hint",
        ])
    );
    assert_registered_claims(&claims, &server);
    assert_eq!(claims["response_type"], "code");
    assert_eq!(claims["client_id"], "app");
    assert!(
        claims["redirect_uri"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    assert_eq!(claims["scope"], "read write");
    assert_eq!(claims["state"].as_str().unwrap().len(), 43);
    assert_eq!(claims["code_challenge"].as_str().unwrap().len(), 43);
    assert_eq!(claims["code_challenge_method"], "S256");
    assert_eq!(claims["login_hint"], "alice");
    // JSON, not a string holding JSON (RFC 9396 §3).
    let expected = json!([serde_json::to_value(&detail).unwrap()]);
    assert_eq!(claims["authorization_details"], expected);

    // The server checked it, and took its parameters.
    let log = server.request_object_log();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].endpoint, RoundTripKind::Authorization);
    assert_eq!(log[0].problem, None);
    assert_eq!(log[0].typ.as_deref(), Some("oauth-authz-req+jwt"));
    assert_eq!(log[0].claims, claims);
    assert_eq!(
        token.authorization_details(),
        expected.as_array().map(|v| &v[..])
    );
    assert_eq!(token.scope(), Some("read write"));
}

#[tokio::test]
async fn an_openid_request_repeats_response_type_and_scope_outside_with_the_same_values() {
    let server = server().start().await.unwrap();
    let client = by_hand(&server).build().unwrap();
    let opened = Opened::default();
    let flow = AuthCode::new()
        .scope("openid email")
        .request_object(true)
        .loopback()
        .browser(approving_browser(opened.clone()));
    flow.fetch(&client).await.unwrap();
    let url = opened.lock().unwrap()[0].clone();
    assert_eq!(
        names(&url),
        ["response_type", "client_id", "scope", "request"],
        "{url}"
    );
    let (_, claims) = decode(&param(&url, "request").unwrap());
    assert_eq!(
        param(&url, "response_type").unwrap(),
        claims["response_type"]
    );
    assert_eq!(param(&url, "scope").unwrap(), claims["scope"]);
    assert_eq!(claims["nonce"].as_str().unwrap().len(), 43);
    assert!(param(&url, "nonce").is_none());
    assert_eq!(server.request_object_log()[0].problem, None);
}

#[tokio::test]
async fn a_request_object_through_par_goes_in_the_push_and_the_url_carries_a_reference() {
    let server = server().start().await.unwrap();
    let client = discovery::configure(
        by_hand(&server)
            .dpop(Dpop::new())
            .resource("https://api.example/"),
        server.url(),
    )
    .await
    .unwrap();
    let opened = Opened::default();
    let flow = AuthCode::new()
        .scope("read")
        .par(true)
        .request_object(true)
        .loopback()
        .browser(approving_browser(opened.clone()));
    let token = flow.fetch(&client).await.unwrap();
    assert_eq!(token.token_type(), "DPoP");

    let url = opened.lock().unwrap()[0].clone();
    assert_eq!(names(&url), ["client_id", "request_uri"], "{url}");
    let push = &server.par_request_log()[0];
    assert_eq!(push.status, 201);
    let pushed: BTreeSet<String> = push.params.iter().map(|(n, _)| n.clone()).collect();
    // Client authentication aside (not logged), only the request object and who sent it.
    assert_eq!(pushed, set(&["client_id", "request"]));
    let (header, claims) = decode(push.param("request").unwrap());
    assert_eq!(header["typ"], "oauth-authz-req+jwt");
    assert_eq!(header["kid"], "jar-key-1");
    assert_registered_claims(&claims, &server);
    assert_eq!(claims["scope"], "read");
    assert_eq!(claims["resource"], "https://api.example/");
    // The code is bound to the DPoP key inside the signed request, and the proof agrees.
    let proof = push.dpop.as_ref().unwrap();
    assert_eq!(claims["dpop_jkt"].as_str(), proof.jkt.as_deref());
    let log = server.request_object_log();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].endpoint, RoundTripKind::PushedAuthorization);
    assert_eq!(log[0].problem, None);
}

#[tokio::test]
async fn a_server_that_requires_request_objects_gets_them_without_the_setting() {
    let server = server().require_request_object(true).start().await.unwrap();
    let client = discovered(&server).await;
    let metadata = client.metadata().unwrap();
    assert!(metadata.require_signed_request_object);
    assert_eq!(metadata.request_parameter_supported, Some(true));
    assert!(
        metadata
            .request_object_signing_alg_values_supported
            .as_ref()
            .unwrap()
            .contains(&"ES256".to_owned())
    );

    let opened = Opened::default();
    let flow = AuthCode::new()
        .scope("read")
        .loopback()
        .browser(approving_browser(opened.clone()));
    flow.fetch(&client).await.unwrap();
    assert_eq!(names(&opened.lock().unwrap()[0]), ["client_id", "request"]);

    // Pushed, too, when also asked to push.
    let opened = Opened::default();
    let flow = AuthCode::new()
        .par(true)
        .loopback()
        .browser(approving_browser(opened.clone()));
    flow.fetch(&client).await.unwrap();
    assert_eq!(server.par_request_log()[0].status, 201);
    assert!(server.par_request_log()[0].param("request").is_some());

    // Told not to: a configuration error, before any browser opens.
    let opened = Opened::default();
    let flow = AuthCode::new()
        .request_object(false)
        .loopback()
        .browser(approving_browser(opened.clone()));
    match flow.fetch(&client).await {
        Err(Error::Config(message)) => {
            assert!(message.contains("request_object(false)"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(opened.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_server_that_requires_request_objects_refuses_plain_requests() {
    let server = server().require_request_object(true).start().await.unwrap();
    // A client that does not know (configured by hand).
    let client = by_hand(&server).build().unwrap();
    let opened = Opened::default();
    let flow = AuthCode::new()
        .loopback()
        .browser(approving_browser(opened.clone()));
    match flow.fetch(&client).await {
        Err(Error::AuthorizationDenied(e)) => assert_eq!(e.code.as_str(), "invalid_request"),
        other => panic!("{other:?}"),
    }
    // Pushed without one: refused at the push.
    let flow = AuthCode::new()
        .par(true)
        .loopback()
        .browser(approving_browser(opened.clone()));
    match flow.fetch(&client).await {
        Err(Error::Server(e)) => assert_eq!(e.code.as_str(), "invalid_request"),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.token_requests(), 0);
}

#[tokio::test]
async fn an_expired_request_object_is_refused_and_the_sign_in_ends_with_a_typed_error() {
    // The client's clock is an hour behind the server's: its request objects have expired
    // when they arrive.
    let clock = ManualClock::new();
    clock.advance(Duration::from_secs(3600));
    let server = server().clock(clock).start().await.unwrap();
    let client = by_hand(&server).clock(SystemClock).build().unwrap();
    let opened = Opened::default();
    let flow = AuthCode::new()
        .request_object(true)
        .loopback()
        .timeout(Duration::from_secs(10))
        .browser(approving_browser(opened.clone()));
    match flow.fetch(&client).await {
        Err(Error::AuthorizationDenied(e)) => {
            assert_eq!(e.code.as_str(), "invalid_request_object");
            let description = e.description.as_deref().unwrap_or_default();
            assert!(description.contains("expired"), "{description}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(opened.lock().unwrap().len(), 1);
    assert_eq!(server.token_requests(), 0);
    let log = server.request_object_log();
    assert_eq!(log[0].problem.as_deref(), Some("the JWT has expired"));
}

#[tokio::test]
async fn a_pushed_request_object_for_another_audience_is_refused_at_the_push() {
    let server = server().start().await.unwrap();
    // The client assertion goes to the token endpoint and passes; the request object names
    // another issuer.
    let client = by_hand(&server)
        .issuer("https://elsewhere.example")
        .build()
        .unwrap();
    let opened = Opened::default();
    let flow = AuthCode::new()
        .par(true)
        .request_object(true)
        .loopback()
        .browser(approving_browser(opened.clone()));
    match flow.fetch(&client).await {
        Err(Error::Server(e)) => {
            assert_eq!(e.code.as_str(), "invalid_request_object");
            assert_eq!(e.status, 400);
        }
        other => panic!("{other:?}"),
    }
    assert!(opened.lock().unwrap().is_empty(), "no browser");
    assert_eq!(
        server.par_request_log()[0].client_id.as_deref(),
        Some("app")
    );
    assert_eq!(
        server.request_object_log()[0].problem.as_deref(),
        Some("the request object's aud is not this issuer")
    );
}

/// The metadata of a server at `issuer` that takes request objects signed with `algs`.
fn metadata(issuer: &str, extra: Value) -> Metadata {
    let mut document = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "pushed_authorization_request_endpoint": format!("{issuer}/par"),
    });
    for (name, value) in extra.as_object().unwrap() {
        document[name] = value.clone();
    }
    serde_json::from_value(document).unwrap()
}

fn config_error(
    result: oauth_layer::Result<oauth_layer::flow::auth_code::AuthorizationRequest>,
) -> String {
    match result {
        Err(Error::Config(message)) => message,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn configurations_that_cannot_make_a_valid_request_object_fail_before_anything_is_sent() {
    let issuer = "https://idp.example";
    let flow = AuthCode::new().request_object(true);
    let redirect = "http://127.0.0.1:9/cb";
    let base = || {
        OAuthClient::builder("app")
            .issuer(issuer)
            .authorization_url(format!("{issuer}/authorize"))
            .token_url(format!("{issuer}/token"))
    };

    // A shared secret cannot sign a request object.
    let hs256 = base()
        .signing_key(SigningKey::hs256("a-shared-secret-of-some-length").unwrap())
        .build()
        .unwrap();
    let message = config_error(flow.authorization_request(&hs256, redirect));
    assert!(message.contains("asymmetric"), "{message}");

    // No key at all.
    let keyless = base().secret("s3cret").build().unwrap();
    let message = config_error(flow.authorization_request(&keyless, redirect));
    assert!(message.contains("signing_key"), "{message}");

    // No issuer to address it to.
    let no_issuer = OAuthClient::builder("app")
        .authorization_url(format!("{issuer}/authorize"))
        .token_url(format!("{issuer}/token"))
        .signing_key(key())
        .build()
        .unwrap();
    let message = config_error(flow.authorization_request(&no_issuer, redirect));
    assert!(message.contains("issuer"), "{message}");

    // The server lists its algorithms, and the key's is not among them.
    let rs_only = base()
        .signing_key(key())
        .metadata(metadata(
            issuer,
            json!({"request_object_signing_alg_values_supported": ["RS256", "PS256"]}),
        ))
        .build()
        .unwrap();
    let message = config_error(flow.authorization_request(&rs_only, redirect));
    assert!(message.contains("RS256, PS256"), "{message}");
    assert!(message.contains("ES256"), "{message}");
    // EdDSA is listed: fine.
    let eddsa = base()
        .signing_key(SigningKey::eddsa_pem(ED_PRIVATE).unwrap())
        .metadata(metadata(
            issuer,
            json!({"request_object_signing_alg_values_supported": ["EdDSA"]}),
        ))
        .build()
        .unwrap();
    assert!(flow.authorization_request(&eddsa, redirect).is_ok());

    // A server that takes no request object by value.
    let no_by_value = base()
        .signing_key(key())
        .metadata(metadata(
            issuer,
            json!({"request_parameter_supported": false}),
        ))
        .build()
        .unwrap();
    let message = config_error(flow.authorization_request(&no_by_value, redirect));
    assert!(message.contains("par(true)"), "{message}");

    // An extra parameter that would replace a claim of the request object itself.
    let client = base().signing_key(key()).build().unwrap();
    for name in ["exp", "aud", "iss", "jti"] {
        let message = config_error(
            AuthCode::new()
                .request_object(true)
                .auth_param(name, "x")
                .authorization_request(&client, redirect),
        );
        assert!(message.contains(name), "{message}");
    }
}

#[tokio::test]
async fn a_configuration_error_opens_no_browser_and_reaches_no_server() {
    let server = server().start().await.unwrap();
    let client = server
        .oauth_client_builder("app")
        .unwrap()
        .signing_key(SigningKey::hs256("a-shared-secret-of-some-length").unwrap())
        .build()
        .unwrap();
    for push in [false, true] {
        let opened = Opened::default();
        let flow = AuthCode::new()
            .par(push)
            .request_object(true)
            .loopback()
            .browser(approving_browser(opened.clone()));
        assert!(matches!(flow.fetch(&client).await, Err(Error::Config(_))));
        assert!(opened.lock().unwrap().is_empty());
    }
    assert_eq!(server.par_requests(), 0);
    assert_eq!(server.authorization_requests(), 0);
}

#[tokio::test]
async fn the_request_object_never_shows_in_debug_output() {
    let server = server().start().await.unwrap();
    let client = by_hand(&server).build().unwrap();
    let flow = AuthCode::new().scope("openid").request_object(true);
    let request = flow
        .authorization_request(&client, "http://127.0.0.1:9/cb")
        .unwrap();
    let jwt = param(request.url(), "request").unwrap();
    let (_, claims) = decode(&jwt);
    let shown = format!("{request:?} {flow:?} {client:?}");
    assert!(!shown.contains(&jwt), "{shown}");
    assert!(
        !shown.contains(claims["state"].as_str().unwrap()),
        "{shown}"
    );
    assert!(
        !shown.contains(claims["nonce"].as_str().unwrap()),
        "{shown}"
    );
}

/// A PAR endpoint that answers with an OAuth error quoting the pushed body back.
struct EchoingRefusal;

impl Respond for EchoingRefusal {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body = String::from_utf8_lossy(&request.body).into_owned();
        let request_object = url::form_urlencoded::parse(body.as_bytes())
            .find(|(name, _)| name == "request")
            .map(|(_, value)| value.into_owned())
            .unwrap_or_default();
        ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_request_object",
            "error_description": format!("cannot use {request_object}"),
        }))
    }
}

#[tokio::test]
async fn the_push_carries_only_the_request_object_and_an_echo_of_it_is_redacted() {
    let idp = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/par"))
        .respond_with(EchoingRefusal)
        .mount(&idp)
        .await;
    let client = OAuthClient::builder("app")
        .issuer(idp.uri())
        .authorization_url(format!("{}/authorize", idp.uri()))
        .token_url(format!("{}/token", idp.uri()))
        .par_url(format!("{}/par", idp.uri()))
        .signing_key(key())
        .build()
        .unwrap();
    let error = AuthCode::new()
        .scope("read")
        .par(true)
        .request_object(true)
        .authorization_request_pushed(&client, "http://127.0.0.1:9/cb")
        .await
        .unwrap_err();
    match &error {
        Error::Server(e) => assert_eq!(e.code.as_str(), "invalid_request_object"),
        other => panic!("{other:?}"),
    }

    let received = idp.received_requests().await.unwrap();
    assert_eq!(received.len(), 1);
    let body = String::from_utf8(received[0].body.clone()).unwrap();
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let sent: BTreeSet<String> = form.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(
        sent,
        set(&[
            "client_id",
            "client_assertion_type",
            "client_assertion",
            "request"
        ]),
        "{body}"
    );
    let jwt = &form.iter().find(|(n, _)| n == "request").unwrap().1;
    let (_, claims) = decode(jwt);
    assert_eq!(claims["aud"], idp.uri());
    assert_eq!(claims["scope"], "read");
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains(jwt.as_str()), "{shown}");
    assert!(
        !shown.contains(claims["state"].as_str().unwrap()),
        "{shown}"
    );
}

/// The test server's answer to `url`: the status and the `error` of a redirect back.
async fn answer(url: &Url) -> (u16, Option<String>) {
    let response = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(url.clone())
        .send()
        .await
        .unwrap();
    let error = response
        .headers()
        .get("location")
        .and_then(|l| Url::parse(l.to_str().unwrap()).ok())
        .and_then(|l| param(&l, "error"));
    (response.status().as_u16(), error)
}

/// A request object signed with the registered key, with `typ` and `claims` as given.
fn craft(typ: &str, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.typ = Some(typ.to_owned());
    let key = jsonwebtoken::EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

#[tokio::test]
async fn the_test_server_refuses_request_objects_it_should_not_take() {
    let server = server().start().await.unwrap();
    let client = by_hand(&server).build().unwrap();
    let flow = AuthCode::new().scope("read").request_object(true);
    let fresh = || {
        flow.authorization_request(&client, "http://127.0.0.1:9/cb")
            .unwrap()
            .url()
            .clone()
    };

    // A good one works once; the same request object again is a replay.
    let url = fresh();
    assert_eq!(answer(&url).await, (302, None));
    let refused = (302, Some("invalid_request_object".to_owned()));
    assert_eq!(answer(&url).await, refused);

    // A parameter outside that differs from the one inside.
    let mut url = fresh();
    url.query_pairs_mut().append_pair("scope", "admin");
    assert_eq!(answer(&url).await, refused);

    // Crafted ones, each wrong in one way.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let good = json!({
        "iss": "app", "aud": server.url(), "iat": now, "nbf": now, "exp": now + 60,
        "jti": "", "client_id": "app", "response_type": "code",
        "redirect_uri": "http://127.0.0.1:9/cb", "state": "s",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    });
    let with = |name: &str, value: Value| {
        let mut claims = good.clone();
        claims[name] = value;
        claims
    };
    let cases = [
        (
            "the crafted control",
            "oauth-authz-req+jwt",
            with("jti", json!("j0")),
            None,
        ),
        ("typ JWT", "JWT", with("jti", json!("j1")), Some("typ")),
        (
            "iss another client",
            "oauth-authz-req+jwt",
            with("iss", json!("other")),
            Some("iss"),
        ),
        (
            "aud the token endpoint",
            "oauth-authz-req+jwt",
            with("aud", json!(server.token_url())),
            Some("aud"),
        ),
        (
            "a day between nbf and exp",
            "oauth-authz-req+jwt",
            with("exp", json!(now + 86_400)),
            Some("an hour"),
        ),
        (
            "no nbf",
            "oauth-authz-req+jwt",
            with("nbf", Value::Null),
            Some("nbf"),
        ),
        (
            "another client_id inside",
            "oauth-authz-req+jwt",
            with("client_id", json!("other")),
            Some("client_id"),
        ),
        (
            "a request_uri inside",
            "oauth-authz-req+jwt",
            with("request_uri", json!("urn:x")),
            Some("request_uri"),
        ),
        (
            "no jti",
            "oauth-authz-req+jwt",
            with("jti", Value::Null),
            Some("jti"),
        ),
    ];
    for (i, (case, typ, mut claims, problem)) in cases.into_iter().enumerate() {
        if claims["jti"] == "" {
            claims["jti"] = json!(format!("jti-{i}"));
        }
        let claims = Value::Object(
            claims
                .as_object()
                .unwrap()
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        );
        let mut url = Url::parse(&server.authorization_url()).unwrap();
        url.query_pairs_mut()
            .append_pair("client_id", "app")
            .append_pair("request", &craft(typ, &claims));
        let expected = if problem.is_some() {
            refused.clone()
        } else {
            (302, None)
        };
        assert_eq!(answer(&url).await, expected, "{case}");
        let logged = server.request_object_log().pop().unwrap();
        match problem {
            Some(word) => {
                let why = logged.problem.unwrap_or_default();
                assert!(why.contains(word), "{case}: {why}");
            }
            None => assert_eq!(logged.problem, None, "{case}"),
        }
    }

    // Signed with a key that is not the client's: refused.
    let rsa = SigningKey::rs256_pem(test_keys::RSA_PRIVATE).unwrap();
    let impostor = by_hand(&server).signing_key(rsa).build().unwrap();
    let url = flow
        .authorization_request(&impostor, "http://127.0.0.1:9/cb")
        .unwrap()
        .url()
        .clone();
    assert_eq!(answer(&url).await, refused);

    // Not a JWT at all: an error page, nowhere to redirect to.
    let mut url = Url::parse(&server.authorization_url()).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", "app")
        .append_pair("request", "not-a-jwt");
    assert_eq!(answer(&url).await, (400, None));
    assert_eq!(server.token_requests(), 0);
}

/// An authorization endpoint that refuses every request object, quoting it back in the
/// `error_description` of its redirect.
struct EchoingAuthorization;

impl Respond for EchoingAuthorization {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let jwt = param(&request.url, "request").unwrap_or_default();
        let (_, claims) = decode(&jwt);
        let mut back = Url::parse(claims["redirect_uri"].as_str().unwrap()).unwrap();
        back.query_pairs_mut()
            .append_pair("error", "invalid_request_object")
            .append_pair("error_description", &format!("cannot use {jwt}"))
            .append_pair("state", claims["state"].as_str().unwrap());
        ResponseTemplate::new(302).insert_header("location", back.as_str())
    }
}

#[tokio::test]
async fn a_refusal_that_quotes_the_request_object_back_is_redacted() {
    let idp = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/authorize"))
        .respond_with(EchoingAuthorization)
        .mount(&idp)
        .await;
    let client = OAuthClient::builder("app")
        .issuer(idp.uri())
        .authorization_url(format!("{}/authorize", idp.uri()))
        .token_url(format!("{}/token", idp.uri()))
        .signing_key(key())
        .build()
        .unwrap();
    let opened = Opened::default();
    let flow = AuthCode::new()
        .scope("read")
        .request_object(true)
        .loopback()
        .timeout(Duration::from_secs(10))
        .browser(approving_browser(opened.clone()));
    let error = flow.fetch(&client).await.unwrap_err();
    match &error {
        Error::AuthorizationDenied(e) => assert_eq!(e.code.as_str(), "invalid_request_object"),
        other => panic!("{other:?}"),
    }
    let jwt = param(&opened.lock().unwrap()[0], "request").unwrap();
    let (_, claims) = decode(&jwt);
    let shown = format!("{error} {error:?}");
    assert!(shown.contains("cannot use"), "{shown}");
    assert!(!shown.contains(&jwt[..40]), "{shown}");
    assert!(
        !shown.contains(claims["state"].as_str().unwrap()),
        "{shown}"
    );
}

#[tokio::test]
async fn the_fapi_message_signing_profile_pushes_a_one_minute_request_object() {
    use oauth_layer::profile::Profile;
    let server = server().start().await.unwrap();
    let client = by_hand(&server)
        .dpop(Dpop::new())
        .profile(Profile::Fapi2MessageSigning)
        .build()
        .unwrap();
    let opened = Opened::default();
    let flow = AuthCode::new()
        .scope("read")
        .loopback()
        .browser(approving_browser(opened.clone()));
    flow.conforms(&client).unwrap();
    let token = flow.fetch(&client).await.unwrap();
    assert_eq!(token.token_type(), "DPoP");
    assert_eq!(
        names(&opened.lock().unwrap()[0]),
        ["client_id", "request_uri"]
    );
    let push = &server.par_request_log()[0];
    let (header, claims) = decode(push.param("request").unwrap());
    assert_eq!(header["typ"], "oauth-authz-req+jwt");
    let iat = claims["iat"].as_u64().unwrap();
    assert_eq!(claims["nbf"].as_u64(), Some(iat));
    assert_eq!(
        claims["exp"].as_u64(),
        Some(iat + 60),
        "a minute under a profile"
    );
    assert_eq!(server.request_object_log()[0].problem, None);

    // Without request objects the flow breaks the profile: refused before anything is sent.
    let flow = AuthCode::new().request_object(false).loopback();
    match flow.conforms(&client) {
        Err(Error::Config(message)) => {
            assert!(message.contains("request_object(false)"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        flow.authorization_request_pushed(&client, "http://127.0.0.1:9/cb")
            .await,
        Err(Error::Config(_))
    ));
    assert_eq!(server.par_requests(), 1);

    // The plain FAPI 2.0 profile does not sign unless asked.
    let plain = by_hand(&server)
        .dpop(Dpop::new())
        .profile(Profile::Fapi2)
        .build()
        .unwrap();
    let request = AuthCode::new()
        .authorization_request_pushed(&plain, "http://127.0.0.1:9/cb")
        .await
        .unwrap();
    assert!(request.request_uri().is_some());
    assert!(server.par_request_log()[1].param("request").is_none());
}
