//! Signed authorization responses (JARM): a server on wiremock publishes its metadata and keys,
//! the test plays the browser and sends the loopback receiver a `response` JWT it signs itself,
//! and only a response signed by the server's key, for this client, from this issuer, unexpired
//! and carrying this sign-in's state gets its inner code exchanged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod test_keys;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use oauth_layer::flow::auth_code::{Callback, HostedReceiver};
use oauth_layer::flow::{AuthCode, Flow};
use oauth_layer::interact::{BrowserFn, ScriptedPrompt};
use oauth_layer::{Error, ErrorCode, OAuthClient, Token, discovery};
use reqwest::StatusCode;
use serde_json::{Value, json};
use test_keys::{ED_KEY, ED_X, OTHER_ED_KEY, RSA_KEY, RSA_N};
use tokio::sync::mpsc;
use url::Url;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CLIENT_ID: &str = "jarm-app";
const SECRET: &str = "jarm-client-secret-never-printed";
/// The code inside the signed response; it must never appear in an error or a Debug output.
const CODE: &str = "inner-code-never-printed-5d1c";

/// Long enough for anything that should happen; short enough to fail a hung test quickly.
const PATIENCE: Duration = Duration::from_secs(10);
/// How long a sign-in that must ignore the answer waits before it gives up.
const SHORT_SIGN_IN: Duration = Duration::from_millis(400);

/// A server that signs authorization responses: metadata (with `metadata` merged in), its keys
/// (an Ed25519 and an RSA key) and a token endpoint that takes only [`CODE`].
async fn server(metadata: Value) -> MockServer {
    let server = MockServer::start().await;
    let issuer = server.uri();
    let mut document = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "fragment", "form_post", "jwt", "query.jwt"],
        "pushed_authorization_request_endpoint": format!("{issuer}/par"),
    });
    for (name, value) in metadata.as_object().unwrap() {
        document[name] = value.clone();
    }
    Mock::given(method("GET"))
        .and(path("/.well-known/oauth-authorization-server"))
        .respond_with(ResponseTemplate::new(200).set_body_json(document))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/jwks"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "x": ED_X, "kid": "ed-1", "alg": "EdDSA", "use": "sig"},
            {"kty": "RSA", "n": RSA_N, "e": "AQAB", "kid": "rsa-1", "alg": "RS256", "use": "sig"},
        ]})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains(format!("code={CODE}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "at-jarm", "token_type": "Bearer", "expires_in": 300,
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"})))
        .mount(&server)
        .await;
    server
}

async fn client(server: &MockServer) -> OAuthClient {
    discovery::configure(OAuthClient::builder(CLIENT_ID).secret(SECRET), server.uri())
        .await
        .unwrap()
}

/// The token requests the server received.
async fn token_requests(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == "/token")
        .map(|r| String::from_utf8(r.body).unwrap())
        .collect()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The claims of a good response from `server` to the sign-in with `state`.
fn claims(server: &MockServer, state: &str) -> Value {
    json!({
        "iss": server.uri(), "aud": CLIENT_ID, "exp": now() + 300,
        "state": state, "code": CODE,
    })
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

fn sign(claims: &Value, alg: Algorithm, kid: Option<&str>, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// Signed by the server's Ed25519 key.
fn ed(claims: &Value) -> String {
    sign(
        claims,
        Algorithm::EdDSA,
        Some("ed-1"),
        &EncodingKey::from_ed_pem(ED_KEY.as_bytes()).unwrap(),
    )
}

/// A callback query carrying `jwt` as the one `response` parameter.
fn response(jwt: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("response", jwt)
        .finish()
}

/// What the "browser" saw: the authorization URL, and the loopback page for the answer.
struct Run {
    url: Url,
    status: StatusCode,
    page: String,
    outcome: oauth_layer::Result<Token>,
}

/// Runs `flow` with the loopback receiver; the test is the browser: it reads the authorization
/// URL and calls the redirect URI with the query `answer` makes from the URL's `state`.
async fn sign_in(client: OAuthClient, flow: AuthCode, answer: impl FnOnce(&str) -> String) -> Run {
    let (opened, mut urls) = mpsc::unbounded_channel();
    let flow = flow
        .loopback()
        .browser(BrowserFn(move |url: &Url| {
            let _ = opened.send(url.clone());
            Ok(())
        }))
        .prompt(ScriptedPrompt::default());
    let fetch = tokio::spawn(async move { flow.fetch(&client).await });
    let url = tokio::time::timeout(PATIENCE, urls.recv())
        .await
        .expect("the browser was never opened")
        .expect("the flow ended without opening the browser");
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };
    let mut redirect = Url::parse(&param("redirect_uri")).unwrap();
    redirect.set_query(Some(&answer(&param("state"))));
    let browser = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(PATIENCE)
        .build()
        .unwrap();
    let page = browser.get(redirect).send().await.unwrap();
    let status = page.status();
    let page = page.text().await.unwrap();
    let outcome = tokio::time::timeout(PATIENCE, fetch)
        .await
        .expect("the sign-in never ended")
        .unwrap();
    Run {
        url,
        status,
        page,
        outcome,
    }
}

/// A hostile answer: the loopback receiver ignores it (the browser is told it is not this
/// sign-in's answer, the sign-in keeps waiting and then times out), no token request goes out,
/// nothing shows the JWT or the code; and checked directly against an authorization request
/// ([`AuthorizationRequest::check`]) it gives the error returned here.
///
/// [`AuthorizationRequest::check`]: oauth_layer::flow::auth_code::AuthorizationRequest::check
async fn ignored(flow: AuthCode, answer: impl Fn(&MockServer, &str) -> String) -> Error {
    let server = server(json!({})).await;
    let run = sign_in(
        client(&server).await,
        flow.clone().timeout(SHORT_SIGN_IN),
        |state| answer(&server, state),
    )
    .await;
    assert_eq!(run.status, StatusCode::BAD_REQUEST, "{}", run.page);
    assert!(!run.page.contains(CODE));
    let timeout = match run.outcome {
        Err(Error::Timeout(message)) => message,
        other => panic!("the answer must be ignored until the sign-in times out: {other:?}"),
    };
    assert!(!timeout.contains(CODE), "{timeout}");
    assert!(token_requests(&server).await.is_empty());

    let client = client(&server).await;
    let request = flow
        .authorization_request_pushed(&client, "http://127.0.0.1:9/cb")
        .await
        .unwrap();
    let query = answer(&server, request.state());
    let err = request.check(&Callback::from_query(&query)).unwrap_err();
    assert_never_shown(&format!("{err} {err:?} {request:?}"), &query);
    // The timeout says why the answer was ignored, so a server that signs wrongly is found.
    assert!(
        timeout.contains(&format!("was refused: {err}")),
        "{timeout} / {err}"
    );
    err
}

/// Neither the code nor any response JWT in `query` is in `text`.
fn assert_never_shown(text: &str, query: &str) {
    assert!(!text.contains(CODE), "{text}");
    for (_, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if value.len() > 40 {
            assert!(!text.contains(&*value), "{text}");
            // Nor the signed part of it (header and claims).
            if let Some((signed, _)) = value.rsplit_once('.') {
                assert!(!text.contains(signed), "{text}");
            }
        }
    }
}

fn malformed(err: &Error, why: &str) {
    match err {
        Error::MalformedCallback(message) => {
            assert!(message.contains(why), "{message:?} should say {why:?}");
        }
        other => panic!("expected MalformedCallback ({why}), got {other:?}"),
    }
}

#[tokio::test]
async fn a_signed_response_is_verified_and_its_inner_code_exchanged() {
    let server = server(json!({})).await;
    let run = sign_in(
        client(&server).await,
        AuthCode::new().scope("read").jarm(true),
        |state| response(&ed(&claims(&server, state))),
    )
    .await;
    let token = run.outcome.unwrap();
    assert_eq!(
        oauth_layer::ExposeSecret::expose_secret(token.access_token()),
        "at-jarm"
    );
    assert_eq!(run.status, StatusCode::OK);
    let asked: Vec<(String, String)> = run.url.query_pairs().into_owned().collect();
    assert!(
        asked.contains(&("response_mode".into(), "jwt".into())),
        "{asked:?}"
    );
    let sent = token_requests(&server).await;
    assert_eq!(sent.len(), 1);
    assert!(sent[0].contains(&format!("code={CODE}")), "{}", sent[0]);
}

#[tokio::test]
async fn an_rsa_signed_response_with_the_audience_in_an_array_is_accepted() {
    let server = server(json!({})).await;
    let run = sign_in(client(&server).await, AuthCode::new().jarm(true), |state| {
        let claims = with(
            claims(&server, state),
            "aud",
            json!(["another-app", CLIENT_ID]),
        );
        let key = EncodingKey::from_rsa_pem(RSA_KEY.as_bytes()).unwrap();
        response(&sign(&claims, Algorithm::RS256, Some("rsa-1"), &key))
    })
    .await;
    run.outcome.unwrap();
}

#[tokio::test]
async fn an_error_response_in_a_jwt_denies_the_sign_in() {
    let server = server(json!({})).await;
    let run = sign_in(client(&server).await, AuthCode::new().jarm(true), |state| {
        response(&ed(&json!({
            "iss": server.uri(), "aud": CLIENT_ID, "exp": now() + 300, "state": state,
            "error": "access_denied", "error_description": "the person said no",
        })))
    })
    .await;
    match run.outcome {
        Err(Error::AuthorizationDenied(e)) => {
            assert_eq!(e.code, ErrorCode::AccessDenied);
            assert_eq!(e.description.as_deref(), Some("the person said no"));
        }
        other => panic!("expected AuthorizationDenied, got {other:?}"),
    }
    assert!(token_requests(&server).await.is_empty());
}

#[tokio::test]
async fn a_response_signed_by_another_key_is_ignored() {
    let err = ignored(AuthCode::new().jarm(true), |server, state| {
        let forged = EncodingKey::from_ed_pem(OTHER_ED_KEY.as_bytes()).unwrap();
        response(&sign(
            &claims(server, state),
            Algorithm::EdDSA,
            Some("ed-1"),
            &forged,
        ))
    })
    .await;
    malformed(&err, "the signature does not verify");
}

#[tokio::test]
async fn a_response_signed_with_an_unknown_kid_is_ignored() {
    let err = ignored(AuthCode::new().jarm(true), |server, state| {
        let key = EncodingKey::from_ed_pem(ED_KEY.as_bytes()).unwrap();
        response(&sign(
            &claims(server, state),
            Algorithm::EdDSA,
            Some("ed-rotated-later"),
            &key,
        ))
    })
    .await;
    malformed(&err, "a key (kid) the server did not publish");
}

#[tokio::test]
async fn an_unsigned_alg_none_response_is_ignored() {
    let err = ignored(AuthCode::new().jarm(true), |server, state| {
        let part = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
        let header = part(&json!({"alg": "none", "typ": "JWT", "kid": "ed-1"}));
        response(&format!("{header}.{}.", part(&claims(server, state))))
    })
    .await;
    malformed(&err, "the header cannot be decoded");
}

#[tokio::test]
async fn an_hs256_response_keyed_with_the_servers_public_key_is_ignored() {
    let hs256_with = |secret: &'static str| {
        move |server: &MockServer, state: &str| {
            response(&sign(
                &claims(server, state),
                Algorithm::HS256,
                Some("ed-1"),
                &EncodingKey::from_secret(secret.as_bytes()),
            ))
        }
    };
    // The classic algorithm confusion: HMAC keyed with what the server publishes.
    let err = ignored(AuthCode::new().jarm(true), hs256_with(ED_X)).await;
    malformed(&err, "the algorithm HS256 is not accepted");
    let err = ignored(AuthCode::new().jarm(true), hs256_with(RSA_N)).await;
    malformed(&err, "the algorithm HS256 is not accepted");
    // Allowed with the client secret, the public key still is not the secret.
    let allowed = AuthCode::new()
        .jarm(true)
        .jarm_allow_client_secret_hs256(true);
    let err = ignored(allowed, hs256_with(ED_X)).await;
    malformed(&err, "the signature does not verify");
}

#[tokio::test]
async fn an_hs256_response_keyed_with_the_client_secret_is_accepted_when_allowed() {
    let server = server(json!({})).await;
    let flow = AuthCode::new()
        .jarm(true)
        .jarm_allow_client_secret_hs256(true);
    let run = sign_in(client(&server).await, flow, |state| {
        response(&sign(
            &claims(&server, state),
            Algorithm::HS256,
            None,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        ))
    })
    .await;
    run.outcome.unwrap();
}

#[tokio::test]
async fn a_response_from_another_issuer_is_ignored() {
    let err = ignored(AuthCode::new().jarm(true), |server, state| {
        response(&ed(&with(
            claims(server, state),
            "iss",
            json!("https://attacker.example"),
        )))
    })
    .await;
    malformed(&err, "iss is not the expected issuer");
}

#[tokio::test]
async fn a_response_for_another_client_is_ignored() {
    let err = ignored(AuthCode::new().jarm(true), |server, state| {
        response(&ed(&with(
            claims(server, state),
            "aud",
            json!(["another-app"]),
        )))
    })
    .await;
    malformed(&err, "aud does not name this client");
}

#[tokio::test]
async fn an_expired_response_is_ignored() {
    // Past the one minute of leeway.
    let err = ignored(AuthCode::new().jarm(true), |server, state| {
        response(&ed(&with(claims(server, state), "exp", json!(now() - 120))))
    })
    .await;
    malformed(&err, "expired");
}

#[tokio::test]
async fn a_response_without_exp_is_ignored() {
    let err = ignored(AuthCode::new().jarm(true), |server, state| {
        let mut claims = claims(server, state);
        claims.as_object_mut().unwrap().remove("exp");
        response(&ed(&claims))
    })
    .await;
    malformed(&err, "no exp");
}

#[tokio::test]
async fn a_signed_response_for_another_sign_in_is_ignored() {
    let err = ignored(AuthCode::new().jarm(true), |server, _| {
        response(&ed(&claims(server, "another-sign-ins-state")))
    })
    .await;
    assert!(matches!(err, Error::StateMismatch), "{err:?}");
}

#[tokio::test]
async fn a_plain_code_next_to_the_signed_response_is_ignored() {
    let err = ignored(AuthCode::new().jarm(true), |server, state| {
        let jwt = ed(&claims(server, state));
        format!("{}&code=swapped-in-code", response(&jwt))
    })
    .await;
    malformed(&err, "code outside the signed response");
    // A plain state next to it, even the right one, is refused as well.
    let err = ignored(AuthCode::new().jarm(true), |server, state| {
        let jwt = ed(&claims(server, state));
        format!("{}&state={state}", response(&jwt))
    })
    .await;
    malformed(&err, "state outside the signed response");
}

#[tokio::test]
async fn two_response_parameters_are_ignored() {
    let err = ignored(AuthCode::new().jarm(true), |server, state| {
        let good = ed(&claims(server, state));
        let other = ed(&with(claims(server, state), "code", json!("second-code")));
        format!("{}&{}", response(&good), response(&other))
    })
    .await;
    malformed(&err, "the parameter response is repeated");
}

#[tokio::test]
async fn a_signed_response_is_used_once() {
    let server = server(json!({})).await;
    let client = client(&server).await;
    let flow = AuthCode::new().jarm(true);
    let request = flow
        .authorization_request_pushed(&client, "http://127.0.0.1:9/cb")
        .await
        .unwrap();
    let callback = Callback::from_query(&response(&ed(&claims(&server, request.state()))));
    let code = request.check(&callback).unwrap();
    assert!(!format!("{code:?} {request:?} {callback:?}").contains(CODE));
    let err = request.check(&callback).unwrap_err();
    assert!(matches!(err, Error::StateMismatch), "{err:?}");
}

#[tokio::test]
async fn an_unsigned_code_with_the_right_state_ends_the_sign_in_without_a_token() {
    let server = server(json!({})).await;
    let run = sign_in(client(&server).await, AuthCode::new().jarm(true), |state| {
        format!("code={CODE}&state={state}")
    })
    .await;
    match run.outcome {
        Err(Error::MalformedCallback(message)) => {
            assert!(message.contains("without signing"), "{message}");
            assert!(!message.contains(CODE));
        }
        other => panic!("expected MalformedCallback, got {other:?}"),
    }
    assert!(token_requests(&server).await.is_empty());
}

#[tokio::test]
async fn only_the_algorithms_the_server_lists_are_accepted() {
    let server = server(json!({"authorization_signing_alg_values_supported": ["EdDSA"]})).await;
    let client = client(&server).await;
    let request = AuthCode::new()
        .jarm(true)
        .authorization_request_pushed(&client, "http://127.0.0.1:9/cb")
        .await
        .unwrap();
    let key = EncodingKey::from_rsa_pem(RSA_KEY.as_bytes()).unwrap();
    let jwt = sign(
        &claims(&server, request.state()),
        Algorithm::RS256,
        Some("rsa-1"),
        &key,
    );
    let err = request
        .check(&Callback::from_query(&response(&jwt)))
        .unwrap_err();
    malformed(&err, "the algorithm RS256 is not accepted");
}

#[tokio::test]
async fn a_server_that_does_not_sign_responses_is_a_configuration_error() {
    let plain = server(json!({"response_modes_supported": ["query", "fragment"]})).await;
    let flow = AuthCode::new()
        .jarm(true)
        .loopback()
        .browser(BrowserFn(|_: &Url| panic!("the browser must not open")));
    let err = flow.fetch(&client(&plain).await).await.unwrap_err();
    assert!(
        matches!(err, Error::Config(ref m) if m.contains("response_modes_supported")),
        "{err:?}"
    );

    // A server that signs only with a MAC the client did not allow.
    let mac_only =
        server(json!({"authorization_signing_alg_values_supported": ["HS256", "none"]})).await;
    let err = AuthCode::new()
        .jarm(true)
        .authorization_request_pushed(&client(&mac_only).await, "http://127.0.0.1:9/cb")
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Config(ref m) if m.contains("authorization_signing_alg_values")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_server_that_lists_only_query_jwt_is_asked_for_query_jwt() {
    let server = server(json!({"response_modes_supported": ["query", "query.jwt"]})).await;
    let request = AuthCode::new()
        .jarm(true)
        .authorization_request_pushed(&client(&server).await, "http://127.0.0.1:9/cb")
        .await
        .unwrap();
    assert!(request.signed_response());
    let modes: Vec<String> = request
        .url()
        .query_pairs()
        .filter(|(k, _)| k == "response_mode")
        .map(|(_, v)| v.into_owned())
        .collect();
    assert_eq!(modes, ["query.jwt"]);
}

#[tokio::test]
async fn jarm_needs_the_servers_keys_and_a_receiver_that_reads_the_response() {
    let server = server(json!({})).await;
    let discovered = client(&server).await;
    // The synchronous request cannot fetch the keys.
    let err = AuthCode::new()
        .jarm(true)
        .authorization_request(&discovered, "http://127.0.0.1:9/cb")
        .unwrap_err();
    assert!(matches!(err, Error::Config(ref m) if m.contains("authorization_request_pushed")));
    // A client configured by hand has no issuer or keys to check the response with.
    let by_hand = OAuthClient::builder(CLIENT_ID)
        .authorization_url(format!("{}/authorize", server.uri()))
        .token_url(format!("{}/token", server.uri()))
        .build()
        .unwrap();
    let err = AuthCode::new()
        .jarm(true)
        .authorization_request_pushed(&by_hand, "http://127.0.0.1:9/cb")
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Config(ref m) if m.contains("metadata")),
        "{err:?}"
    );
    // A second response_mode would fight the flow's own.
    let err = AuthCode::new()
        .jarm(true)
        .auth_param("response_mode", "query")
        .authorization_request_pushed(&discovered, "http://127.0.0.1:9/cb")
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Config(ref m) if m.contains("response_mode")),
        "{err:?}"
    );
    // The hosted receiver's page stores plain codes by state.
    let hosted = HostedReceiver::new(
        "https://hosted.example/redirect",
        "https://hosted.example/code",
    )
    .unwrap();
    let err = AuthCode::new()
        .jarm(true)
        .receiver(hosted)
        .browser(BrowserFn(|_: &Url| panic!("the browser must not open")))
        .fetch(&discovered)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Config(ref m) if m.contains("hosted")),
        "{err:?}"
    );
    assert!(token_requests(&server).await.is_empty());
}

/// A person who pastes the address their browser was sent to: the redirect URI with the query
/// `answer` makes from the state of the authorization URL they were shown.
struct Pasting {
    shown: std::sync::Mutex<Option<Url>>,
    answer: Box<dyn Fn(&str) -> String + Send + Sync>,
}

impl std::fmt::Debug for Pasting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pasting")
    }
}

#[async_trait::async_trait]
impl oauth_layer::interact::Prompt for Pasting {
    fn show(&self, message: &str) {
        if let Some(url) = message
            .split_whitespace()
            .filter_map(|word| Url::parse(word).ok())
            .find(|url| url.query_pairs().any(|(k, _)| k == "state"))
        {
            *self.shown.lock().unwrap() = Some(url);
        }
    }

    async fn read_line(&self, _message: &str, _max_len: usize) -> std::io::Result<String> {
        let url = self
            .shown
            .lock()
            .unwrap()
            .clone()
            .expect("shown the URL first");
        let param = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
                .unwrap()
        };
        let mut redirect = Url::parse(&param("redirect_uri")).unwrap();
        redirect.set_query(Some(&(self.answer)(&param("state"))));
        Ok(redirect.to_string())
    }
}

#[tokio::test]
async fn a_pasted_address_with_a_signed_response_signs_in() {
    let server = server(json!({})).await;
    let issuer = server.uri();
    let client = client(&server).await;
    let flow = AuthCode::new()
        .jarm(true)
        .paste()
        .browser(oauth_layer::interact::NoBrowser)
        .prompt(Pasting {
            shown: std::sync::Mutex::default(),
            answer: Box::new(move |state| {
                response(&ed(&json!({
                    "iss": issuer, "aud": CLIENT_ID, "exp": now() + 300,
                    "state": state, "code": CODE,
                })))
            }),
        });
    flow.fetch(&client).await.unwrap();
    assert_eq!(token_requests(&server).await.len(), 1);
}

#[tokio::test]
async fn an_unsigned_error_with_the_right_state_still_denies_the_sign_in() {
    // A server that cannot sign answers with a plain error: it ends the sign-in (it cannot
    // complete one), as the server's error.
    let server = server(json!({})).await;
    let request = AuthCode::new()
        .jarm(true)
        .authorization_request_pushed(&client(&server).await, "http://127.0.0.1:9/cb")
        .await
        .unwrap();
    let err = request
        .check(&Callback::from_pairs([
            ("error", "unsupported_response_mode"),
            ("state", request.state()),
        ]))
        .unwrap_err();
    match err {
        Error::AuthorizationDenied(e) => {
            assert_eq!(e.code.as_str(), "unsupported_response_mode");
        }
        other => panic!("expected AuthorizationDenied, got {other:?}"),
    }
    // With another sign-in's state it is not ours at all.
    let request = AuthCode::new()
        .jarm(true)
        .authorization_request_pushed(&client(&server).await, "http://127.0.0.1:9/cb")
        .await
        .unwrap();
    let err = request
        .check(&Callback::from_pairs([
            ("error", "access_denied"),
            ("state", "another-state"),
        ]))
        .unwrap_err();
    assert!(matches!(err, Error::StateMismatch), "{err:?}");
}

#[tokio::test]
async fn exp_is_checked_on_the_clients_clock_with_a_minute_of_leeway() {
    use oauth_layer::clock::{Clock, ManualClock};

    let server = server(json!({})).await;
    let clock = ManualClock::new();
    let client = discovery::configure(
        OAuthClient::builder(CLIENT_ID).clock(clock.clone()),
        server.uri(),
    )
    .await
    .unwrap();
    let start = clock
        .now_utc()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let answer = |request: &oauth_layer::flow::auth_code::AuthorizationRequest| {
        let claims = with(claims(&server, request.state()), "exp", json!(start + 10));
        request.check(&Callback::from_query(&response(&ed(&claims))))
    };
    let flow = AuthCode::new().jarm(true);
    let fresh = || flow.authorization_request_pushed(&client, "http://127.0.0.1:9/cb");

    // Expired 50 s ago on the client's clock: within the leeway.
    clock.advance(Duration::from_secs(60));
    answer(&fresh().await.unwrap()).unwrap();
    // Expired 70 s ago: refused.
    clock.advance(Duration::from_secs(20));
    let err = answer(&fresh().await.unwrap()).unwrap_err();
    malformed(&err, "expired");
}

/// A client under the FAPI 2.0 Message Signing profile (an ES256 assertion key, DPoP), from
/// `server`'s metadata, which then names a pushed authorization request endpoint.
async fn message_signing_client(server: &MockServer) -> OAuthClient {
    use oauth_layer::dpop::Dpop;
    use oauth_layer::jwt::SigningKey;
    use oauth_layer::profile::Profile;

    Mock::given(method("POST"))
        .and(path("/par"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "request_uri": "urn:ietf:params:oauth:request_uri:jarm-test", "expires_in": 60,
        })))
        .mount(server)
        .await;
    discovery::configure(
        OAuthClient::builder(CLIENT_ID)
            .signing_key(SigningKey::es256_pem(test_keys::EC_PRIVATE).unwrap())
            .dpop(Dpop::new())
            // (discovery::configure builds the client once before it knows the issuer.)
            .issuer(server.uri())
            .profile(Profile::Fapi2MessageSigning),
        server.uri(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn the_message_signing_profile_asks_for_signed_responses_in_fapi_algorithms_only() {
    let server = server(json!({})).await;
    let client = message_signing_client(&server).await;
    let flow = AuthCode::new();
    flow.conforms(&client).unwrap();
    let request = flow
        .authorization_request_pushed(&client, "http://127.0.0.1:9/cb")
        .await
        .unwrap();
    assert!(request.signed_response());
    let pushed = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.url.path() == "/par")
        .map(|r| String::from_utf8(r.body).unwrap())
        .expect("the request was pushed");
    // Under Message Signing the parameters travel in the pushed request object (JAR).
    let request_object = url::form_urlencoded::parse(pushed.as_bytes())
        .find(|(name, _)| name == "request")
        .map(|(_, value)| value.into_owned())
        .expect("a request object");
    let inside: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(request_object.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(inside["response_mode"], "jwt", "{inside}");

    // RS256 is not a FAPI 2.0 algorithm, even though the server publishes an RS256 key.
    let key = EncodingKey::from_rsa_pem(RSA_KEY.as_bytes()).unwrap();
    let rs256 = sign(
        &claims(&server, request.state()),
        Algorithm::RS256,
        Some("rsa-1"),
        &key,
    );
    let err = request
        .check(&Callback::from_query(&response(&rs256)))
        .unwrap_err();
    malformed(&err, "the algorithm RS256 is not accepted");
    let eddsa = ed(&claims(&server, request.state()));
    request
        .check(&Callback::from_query(&response(&eddsa)))
        .unwrap();
}

#[tokio::test]
async fn the_message_signing_profile_refuses_unsigned_responses_and_servers_without_them() {
    let signing = server(json!({})).await;
    let client = message_signing_client(&signing).await;
    let err = AuthCode::new().jarm(false).conforms(&client).unwrap_err();
    assert!(
        matches!(err, Error::Config(ref m) if m.contains("FAPI 2.0 Message Signing") && m.contains("jarm(false)")),
        "{err:?}"
    );

    let plain = server(json!({"response_modes_supported": ["query"]})).await;
    let client = message_signing_client(&plain).await;
    let err = AuthCode::new().conforms(&client).unwrap_err();
    assert!(
        matches!(err, Error::Config(ref m) if m.contains("response_modes_supported")),
        "{err:?}"
    );
}

/// Found by the `jarm` fuzz target: a JWKS endpoint whose body quoted the client secret (a
/// confused endpoint dumping the client's configuration) put it in the error of the sign-in,
/// the keys being fetched when the request is made. The secret is now redacted from that body,
/// whatever the status.
#[tokio::test]
async fn a_jwks_body_that_quotes_the_client_secret_does_not_put_it_in_the_error() {
    for (status, body) in [
        (200, format!("not json {SECRET}")),
        (200, format!(r#"{{"keys": "{SECRET}"}}"#)),
        (
            500,
            format!(r#"{{"error": "oops", "client_secret": "{SECRET}"}}"#),
        ),
    ] {
        let server = MockServer::start().await;
        let issuer = server.uri();
        Mock::given(method("GET"))
            .and(path("/.well-known/oauth-authorization-server"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "issuer": issuer,
                "authorization_endpoint": format!("{issuer}/authorize"),
                "token_endpoint": format!("{issuer}/token"),
                "jwks_uri": format!("{issuer}/jwks"),
                "response_modes_supported": ["query", "jwt"],
            })))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/jwks"))
            .respond_with(
                ResponseTemplate::new(status).set_body_raw(body.clone(), "application/json"),
            )
            .mount(&server)
            .await;
        let err = AuthCode::new()
            .jarm(true)
            .authorization_request_pushed(&client(&server).await, "http://127.0.0.1:9/cb")
            .await
            .unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(matches!(err, Error::UnexpectedResponse(_)), "{shown}");
        assert!(!shown.contains(SECRET), "{body}: {shown}");
    }
}
