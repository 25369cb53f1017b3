//! Pushed authorization requests (RFC 9126): the authorization code flow pushes its parameters
//! with client authentication (and a DPoP proof), the browser carries only `client_id` and
//! `request_uri`, and hostile or expired answers end the sign-in with clear, redacted errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use oauth_layer::clock::ManualClock;
use oauth_layer::dpop::Dpop;
use oauth_layer::flow::{AuthCode, Flow};
use oauth_layer::interact::BrowserFn;
use oauth_layer::testing::{RoundTripKind, TestServer, TestServerBuilder};
use oauth_layer::{AuthMethod, Error, OAuthClient, discovery};
use serde_json::json;
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "par-s3cret-value-never-printed";

/// The URLs the browser was sent to.
type Opened = Arc<Mutex<Vec<Url>>>;

/// A person who approves every sign-in: the browser follows the authorization URL, the server's
/// redirect included, to the loopback receiver. `before` runs first (to move a clock).
fn approving_browser(
    opened: Opened,
    before: impl Fn() + Send + Sync + 'static,
) -> BrowserFn<impl Fn(&Url) -> std::io::Result<()>> {
    BrowserFn(move |url: &Url| {
        opened.lock().unwrap().push(url.clone());
        before();
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

fn server() -> TestServerBuilder {
    TestServer::builder().client("app", Some(SECRET), AuthMethod::ClientSecretBasic)
}

async fn discovered(server: &TestServer) -> OAuthClient {
    discovery::configure(server.oauth_client_builder("app").unwrap(), server.url())
        .await
        .unwrap()
}

fn names(url: &Url) -> Vec<String> {
    url.query_pairs().map(|(k, _)| k.into_owned()).collect()
}

#[tokio::test]
async fn a_server_that_requires_par_gets_the_parameters_pushed_and_the_browser_only_a_reference() {
    let server = server().require_par(true).start().await.unwrap();
    let client = discovered(&server).await;
    assert_eq!(client.par_url().unwrap().as_str(), server.par_url());
    assert!(
        client
            .metadata()
            .unwrap()
            .require_pushed_authorization_requests
    );

    let opened = Opened::default();
    let flow = AuthCode::new()
        .scope("read")
        .auth_param("login_hint", "alice")
        .loopback()
        .browser(approving_browser(opened.clone(), || {}));
    flow.fetch(&client).await.unwrap();
    assert_eq!(server.token_requests(), 1);

    let url = opened.lock().unwrap()[0].clone();
    assert_eq!(names(&url), ["client_id", "request_uri"]);
    let request_uri = url
        .query_pairs()
        .find(|(k, _)| k == "request_uri")
        .unwrap()
        .1
        .into_owned();

    assert_eq!(server.par_requests(), 1);
    let log = server.par_request_log();
    let push = &log[0];
    assert_eq!(push.status, 201);
    assert_eq!(push.client_id.as_deref(), Some("app"));
    assert_eq!(push.param("response_type"), Some("code"));
    assert_eq!(push.param("scope"), Some("read"));
    assert_eq!(push.param("login_hint"), Some("alice"));
    assert_eq!(push.param("code_challenge_method"), Some("S256"));
    assert!(push.param("code_challenge").is_some());
    assert!(push.param("state").is_some());
    assert!(
        push.param("redirect_uri")
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    let kinds: Vec<_> = server
        .round_trips()
        .iter()
        .map(|t| (t.kind, t.status))
        .collect();
    let pushed_at = kinds
        .iter()
        .position(|k| *k == (RoundTripKind::PushedAuthorization, 201))
        .unwrap();
    let authorized_at = kinds
        .iter()
        .position(|k| *k == (RoundTripKind::Authorization, 302))
        .unwrap();
    assert!(pushed_at < authorized_at);

    // The request URI is single use.
    let again = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(url.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 400);
    assert!(!format!("{:?}", server.par_request_log()).contains(SECRET));
    assert!(request_uri.starts_with("urn:ietf:params:oauth:request_uri:"));
}

#[tokio::test]
async fn par_on_request_pushes_to_a_server_that_does_not_require_it() {
    let server = server().start().await.unwrap();
    let client = server.oauth_client("app").unwrap();
    let opened = Opened::default();
    let flow = AuthCode::new()
        .loopback()
        .par(true)
        .browser(approving_browser(opened.clone(), || {}));
    flow.fetch(&client).await.unwrap();
    assert_eq!(server.par_requests(), 1);
    assert_eq!(
        names(&opened.lock().unwrap()[0]),
        ["client_id", "request_uri"]
    );

    // Without it, nothing is pushed and the URL carries everything.
    let opened = Opened::default();
    let flow = AuthCode::new()
        .loopback()
        .browser(approving_browser(opened.clone(), || {}));
    flow.fetch(&client).await.unwrap();
    assert_eq!(server.par_requests(), 1);
    assert!(names(&opened.lock().unwrap()[0]).contains(&"code_challenge".to_owned()));
}

#[tokio::test]
async fn a_server_that_requires_par_refuses_a_request_that_was_not_pushed() {
    let server = server().require_par(true).start().await.unwrap();
    // A client that does not know (configured by hand), told not to push.
    let client = server.oauth_client("app").unwrap();
    let flow = AuthCode::new().par(false);
    let request = flow
        .authorization_request(&client, "http://127.0.0.1:9/cb")
        .unwrap();
    let answer = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(request.url().clone())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 302);
    let location = answer.headers()["location"].to_str().unwrap();
    assert!(location.contains("error=invalid_request"), "{location}");

    // A client that knows: par(false) is a configuration error, before anything is sent.
    let client = discovered(&server).await;
    let opened = Opened::default();
    let flow = AuthCode::new()
        .loopback()
        .par(false)
        .browser(approving_browser(opened.clone(), || {}));
    match flow.fetch(&client).await {
        Err(Error::Config(message)) => assert!(message.contains("par(false)"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(opened.lock().unwrap().is_empty());
    assert_eq!(server.par_requests(), 0);
    // The synchronous request cannot push, and says which call can.
    match AuthCode::new().authorization_request(&client, "http://127.0.0.1:9/cb") {
        Err(Error::Config(message)) => {
            assert!(
                message.contains("authorization_request_pushed"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_push_carries_client_authentication() {
    let server = server()
        .client("post-app", Some(SECRET), AuthMethod::ClientSecretPost)
        .start()
        .await
        .unwrap();
    let client = server.oauth_client("post-app").unwrap();
    let request = AuthCode::new()
        .par(true)
        .authorization_request_pushed(&client, "http://127.0.0.1:9/cb")
        .await
        .unwrap();
    assert!(request.request_uri().is_some());
    assert!(request.expires_at().is_some());
    assert_eq!(
        server.par_request_log()[0].client_id.as_deref(),
        Some("post-app")
    );
    // The secret went in the body, and the log leaves it out.
    assert!(server.par_request_log()[0].param("client_secret").is_none());

    // A wrong secret: the server refuses the push, and nothing reaches a browser.
    let wrong = server
        .oauth_client_builder("app")
        .unwrap()
        .secret("wrong-secret")
        .build()
        .unwrap();
    let opened = Opened::default();
    let flow = AuthCode::new()
        .loopback()
        .par(true)
        .browser(approving_browser(opened.clone(), || {}));
    match flow.fetch(&wrong).await {
        Err(Error::Server(e)) => assert_eq!(e.code.as_str(), "invalid_client"),
        other => panic!("{other:?}"),
    }
    assert!(opened.lock().unwrap().is_empty());
    let log = server.par_request_log();
    assert_eq!(log[1].status, 401);
    assert_eq!(log[1].client_id, None);
}

#[tokio::test]
async fn the_push_carries_a_dpop_proof_and_answers_a_nonce_challenge_once() {
    let server = server()
        .require_dpop_nonce(true)
        .require_par(true)
        .start()
        .await
        .unwrap();
    let client = discovery::configure(
        server
            .oauth_client_builder("app")
            .unwrap()
            .dpop(Dpop::new()),
        server.url(),
    )
    .await
    .unwrap();
    let opened = Opened::default();
    let flow = AuthCode::new()
        .loopback()
        .browser(approving_browser(opened.clone(), || {}));
    let token = flow.fetch(&client).await.unwrap();
    assert_eq!(token.token_type(), "DPoP");

    let log = server.par_request_log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0].error.as_deref(), Some("use_dpop_nonce"));
    assert_eq!(log[1].status, 201);
    let proof = log[1].dpop.as_ref().unwrap();
    assert_eq!(proof.problem, None);
    assert_eq!(proof.htm.as_deref(), Some("POST"));
    assert_eq!(proof.htu.as_deref(), Some(server.par_url().as_str()));
    assert!(proof.nonce.is_some());
    assert_ne!(log[0].dpop.as_ref().unwrap().jti, proof.jti);
    // The code is bound to the key that made the proof.
    assert_eq!(log[1].param("dpop_jkt"), proof.jkt.as_deref());
}

#[tokio::test]
async fn a_browser_that_arrives_after_the_request_uri_expired_ends_the_sign_in_saying_so() {
    let clock = ManualClock::new();
    let server = server()
        .require_par(true)
        .par_request_uri_lifetime(Duration::from_secs(5))
        .clock(clock.clone())
        .start()
        .await
        .unwrap();
    let client = discovered(&server).await;
    let opened = Opened::default();
    // The person takes ten seconds to get to the authorization server, which refuses the
    // expired request URI and redirects back with invalid_request.
    let late = clock.clone();
    let flow = AuthCode::new()
        .loopback()
        .browser(approving_browser(opened.clone(), move || {
            late.advance(Duration::from_secs(10))
        }));
    match flow.fetch(&client).await {
        Err(Error::Timeout(message)) => {
            assert!(
                message.contains("pushed authorization request expired"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    let refused = server
        .round_trips()
        .iter()
        .any(|t| t.kind == RoundTripKind::Authorization && t.status == 302);
    assert!(refused);
    assert_eq!(server.token_requests(), 0);
}

#[tokio::test]
async fn the_sign_in_timeout_is_capped_by_the_request_uri_lifetime() {
    let server = server()
        .require_par(true)
        .par_request_uri_lifetime(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    let client = discovered(&server).await;
    // Nobody ever signs in.
    let flow = AuthCode::new()
        .loopback()
        .timeout(Duration::from_secs(30))
        .browser(BrowserFn(|_: &Url| Ok(())));
    let started = std::time::Instant::now();
    match flow.fetch(&client).await {
        Err(Error::Timeout(message)) => {
            assert!(
                message.contains("pushed authorization request expired"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    // The wait ended with the request URI's lifetime, not the 30 s sign-in timeout.
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(server.par_requests(), 1);
    assert_eq!(server.authorization_requests(), 0);
}

/// A client of a wiremock server whose PAR endpoint answers `answer`.
async fn hostile(answer: ResponseTemplate) -> (MockServer, OAuthClient) {
    let idp = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/par"))
        .respond_with(answer)
        .mount(&idp)
        .await;
    let client = OAuthClient::builder("app")
        .secret(SECRET)
        .authorization_url(format!("{}/authorize", idp.uri()))
        .token_url(format!("{}/token", idp.uri()))
        .par_url(format!("{}/par", idp.uri()))
        .build()
        .unwrap();
    (idp, client)
}

async fn push(answer: ResponseTemplate) -> oauth_layer::Result<Url> {
    let (_idp, client) = hostile(answer).await;
    AuthCode::new()
        .par(true)
        .authorization_request_pushed(&client, "http://127.0.0.1:9/cb")
        .await
        .map(|r| r.url().clone())
}

#[tokio::test]
async fn hostile_par_answers_are_typed_errors() {
    let ok = |body: serde_json::Value| ResponseTemplate::new(201).set_body_json(body);
    let cases = [
        (
            "missing request_uri",
            ok(json!({"expires_in": 60})),
            "no request_uri",
        ),
        (
            "number request_uri",
            ok(json!({"request_uri": 7, "expires_in": 60})),
            "request_uri is not a string",
        ),
        (
            "zero expires_in",
            ok(json!({"request_uri": "urn:x", "expires_in": 0})),
            "positive integer",
        ),
        (
            "negative expires_in",
            ok(json!({"request_uri": "urn:x", "expires_in": -5})),
            "positive integer",
        ),
        (
            "fractional expires_in",
            ok(json!({"request_uri": "urn:x", "expires_in": 1.5})),
            "positive integer",
        ),
        (
            "string expires_in",
            ok(json!({"request_uri": "urn:x", "expires_in": "60"})),
            "not a number",
        ),
        (
            "missing expires_in",
            ok(json!({"request_uri": "urn:x"})),
            "no expires_in",
        ),
        ("not an object", ok(json!(["urn:x", 60])), "not an object"),
        (
            "an error status without an OAuth error",
            ResponseTemplate::new(500).set_body_string("boom"),
            "",
        ),
    ];
    for (name, answer, problem) in cases {
        match push(answer).await {
            Err(Error::UnexpectedResponse(e)) => {
                assert!(e.problem.contains(problem), "{name}: {e:?}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_huge_expires_in_is_clamped_and_200_is_accepted() {
    let url = push(
        ResponseTemplate::new(200)
            .set_body_json(json!({"request_uri": "urn:x:1", "expires_in": 1u64 << 62})),
    )
    .await
    .unwrap();
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert_eq!(
        pairs,
        [
            ("client_id".to_owned(), "app".to_owned()),
            ("request_uri".to_owned(), "urn:x:1".to_owned())
        ]
    );
}

#[tokio::test]
async fn a_redirect_from_the_par_endpoint_is_not_followed() {
    for status in [302, 307] {
        let target = MockServer::start().await;
        let (_idp, client) = hostile(
            ResponseTemplate::new(status)
                .insert_header("location", format!("{}/par", target.uri())),
        )
        .await;
        let result = AuthCode::new()
            .par(true)
            .authorization_request_pushed(&client, "http://127.0.0.1:9/cb")
            .await;
        assert!(result.is_err(), "{status}: {result:?}");
        assert!(target.received_requests().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_huge_par_answer_is_cut_off() {
    let body = format!(
        "{{\"request_uri\":\"urn:x\",\"expires_in\":60,\"pad\":\"{}\"}}",
        "a".repeat(2 << 20)
    );
    let result = push(
        ResponseTemplate::new(201)
            .insert_header("content-type", "application/json")
            .set_body_string(body),
    )
    .await;
    assert!(matches!(result, Err(Error::Transport(_))), "{result:?}");
}

#[tokio::test]
async fn an_oauth_error_from_the_par_endpoint_is_a_server_error_with_the_secret_redacted() {
    let result = push(ResponseTemplate::new(400).set_body_json(json!({
        "error": "invalid_request",
        "error_description": format!("bad secret {SECRET}"),
    })))
    .await;
    let err = result.unwrap_err();
    match &err {
        Error::Server(e) => assert_eq!(e.code.as_str(), "invalid_request"),
        other => panic!("{other:?}"),
    }
    assert!(!format!("{err} {err:?}").contains(SECRET), "{err:?}");

    // Echoed in a body that is not an OAuth error: redacted too.
    let err = push(ResponseTemplate::new(201).set_body_string(format!("<p>{SECRET}</p>")))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnexpectedResponse(_)), "{err:?}");
    assert!(!format!("{err} {err:?}").contains(SECRET), "{err:?}");
}

#[tokio::test]
async fn pushing_without_a_par_endpoint_is_a_configuration_error() {
    let client = OAuthClient::builder("app")
        .authorization_url("https://idp.example/authorize")
        .build()
        .unwrap();
    let result = AuthCode::new()
        .par(true)
        .authorization_request_pushed(&client, "http://127.0.0.1:9/cb")
        .await;
    assert!(matches!(result, Err(Error::Config(_))), "{result:?}");
    assert!(
        OAuthClient::builder("app")
            .par_url("http://idp.example/par")
            .build()
            .is_err()
    );
}

#[tokio::test]
async fn the_test_server_refuses_request_uris_it_should_not_take() {
    let server = server()
        .client("other", Some(SECRET), AuthMethod::ClientSecretBasic)
        .start()
        .await
        .unwrap();
    let client = server.oauth_client("app").unwrap();
    let push = || async {
        AuthCode::new()
            .par(true)
            .authorization_request_pushed(&client, "http://127.0.0.1:9/cb")
            .await
            .unwrap()
    };
    let browser = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let status = |url: Url| {
        let browser = browser.clone();
        async move { browser.get(url).send().await.unwrap().status().as_u16() }
    };

    // Another client's request URI: refused, and spent.
    let request = push().await;
    let mut foreign = request.url().clone();
    foreign
        .query_pairs_mut()
        .clear()
        .append_pair("client_id", "other")
        .append_pair("request_uri", request.request_uri().unwrap());
    assert_eq!(status(foreign).await, 400);
    assert_eq!(status(request.url().clone()).await, 400);

    // Parameters next to the request URI: refused.
    let request = push().await;
    let mut extra = request.url().clone();
    extra.query_pairs_mut().append_pair("scope", "admin");
    assert_eq!(status(extra).await, 400);

    // A fresh one works once.
    let request = push().await;
    assert_eq!(status(request.url().clone()).await, 302);
    assert_eq!(status(request.url().clone()).await, 400);

    // The push itself may not name a request URI.
    let answer = reqwest::Client::new()
        .post(server.par_url())
        .basic_auth("app", Some(SECRET))
        .form(&[
            ("response_type", "code"),
            ("client_id", "app"),
            ("request_uri", "urn:x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
}

#[tokio::test]
async fn authorization_details_travel_in_the_push_not_the_url() {
    use oauth_layer::flow::AuthorizationDetail;
    let server = server().require_par(true).start().await.unwrap();
    let client = discovered(&server).await;
    let detail = AuthorizationDetail::new("payment_initiation")
        .action("initiate")
        .field(
            "instructedAmount",
            json!({ "currency": "EUR", "amount": "9.99" }),
        );
    let opened = Opened::default();
    let flow = AuthCode::new()
        .loopback()
        .authorization_detail(detail.clone())
        .browser(approving_browser(opened.clone(), || {}));
    let token = flow.fetch(&client).await.unwrap();
    assert_eq!(
        names(&opened.lock().unwrap()[0]),
        ["client_id", "request_uri"]
    );
    let pushed: serde_json::Value = serde_json::from_str(
        server.par_request_log()[0]
            .param("authorization_details")
            .unwrap(),
    )
    .unwrap();
    let expected = json!([serde_json::to_value(&detail).unwrap()]);
    assert_eq!(pushed, expected);
    assert_eq!(
        token.authorization_details(),
        Some(&[serde_json::to_value(&detail).unwrap()][..])
    );
}
