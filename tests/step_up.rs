#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Challenges that ask for more than a renewal, acted on by the middleware and the tower layer
//! against servers that issue them: `insufficient_scope` (a wider token, cached apart, the
//! original kept for requests that need no more), `insufficient_user_authentication` (a
//! person signs in again with `acr_values`/`max_age`; a machine gets the typed step-up error),
//! `insufficient_claims` (a token requested with the claims), and hostile resources that never
//! stop asking (one upgrade per request, no loop).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use oauth_layer::flow::AuthCode;
use oauth_layer::interact::{BrowserFn, ScriptedPrompt};
use oauth_layer::testing::TestServer;
use oauth_layer::{Action, AuthMethod, Error, OAuthLayer, OAuthMiddleware, TokenSource};
use reqwest_middleware::ClientBuilder;
use url::Url;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn http(middleware: impl Into<OAuthMiddleware>) -> reqwest_middleware::ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(middleware.into())
        .build()
}

async fn machine_server() -> TestServer {
    TestServer::builder()
        .client("svc", Some("s3cret"), AuthMethod::ClientSecretBasic)
        .require_scope("/api/admin", "admin")
        .require_acr("/api/mfa", "urn:example:mfa")
        .require_claims(
            "/api/cae",
            r#"{"access_token":{"nbf":{"essential":true,"value":"1"}}}"#,
        )
        .start()
        .await
        .unwrap()
}

fn scope_of(server: &TestServer, request: &oauth_layer::testing::RecordedRequest) -> String {
    let token = request
        .bearer_token()
        .or(request.dpop_token())
        .unwrap()
        .to_owned();
    server
        .access_token_info(&token)
        .unwrap()
        .scope
        .unwrap_or_default()
}

#[tokio::test]
async fn a_scope_challenge_gets_a_wider_token_once_and_the_narrow_one_keeps_serving() {
    let server = machine_server().await;
    let http = http(
        OAuthMiddleware::client_credentials(server.oauth_client("svc").unwrap()).scope("api:read"),
    );
    let admin = server.resource_url("/api/admin");
    let plain = server.resource_url("/api/hello");

    assert_eq!(http.get(&admin).send().await.unwrap().status(), 200);
    assert_eq!(
        server.token_requests(),
        2,
        "the original and the wider token"
    );
    assert_eq!(http.get(&plain).send().await.unwrap().status(), 200);
    // Again: the wider token is cached, so no token request.
    assert_eq!(
        http.post(&admin).body("x").send().await.unwrap().status(),
        200
    );
    assert_eq!(server.token_requests(), 2);

    let log = server.resource_requests();
    let statuses: Vec<u16> = log.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [403, 200, 200, 403, 200]);
    assert_eq!(scope_of(&server, &log[0]), "api:read");
    assert_eq!(scope_of(&server, &log[1]), "api:read admin");
    assert_eq!(
        scope_of(&server, &log[2]),
        "api:read",
        "least privilege where enough"
    );
    assert_eq!(log[4].body.as_ref(), b"x", "the body went again");
}

#[tokio::test]
async fn the_tower_layer_upgrades_scope_the_same_way() {
    use tower::{Service, ServiceExt};
    let server = machine_server().await;
    let hyper = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let mut service = tower::ServiceBuilder::new()
        .layer(
            OAuthLayer::client_credentials(server.oauth_client("svc").unwrap()).scope("api:read"),
        )
        .service(hyper);
    for _ in 0..2 {
        let request = http::Request::get(server.resource_url("/api/admin"))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let resp = service.ready().await.unwrap().call(request).await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(server.token_requests(), 2);
}

#[tokio::test]
async fn a_machine_asked_to_sign_in_again_gets_the_typed_step_up_error() {
    let server = machine_server().await;
    let http = http(OAuthMiddleware::client_credentials(
        server.oauth_client("svc").unwrap(),
    ));
    let err = http
        .get(server.resource_url("/api/mfa"))
        .send()
        .await
        .unwrap_err();
    let err = match err {
        reqwest_middleware::Error::Middleware(e) => e.downcast::<Error>().unwrap(),
        other => panic!("{other:?}"),
    };
    let Error::StepUpRequired(need) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(need.acr_values.as_deref(), Some("urn:example:mfa"));
    assert!(matches!(err.action(), Action::StepUp(_)));
    assert_eq!(
        server.token_requests(),
        1,
        "nothing a machine could ask for"
    );
}

#[tokio::test]
async fn a_source_that_cannot_widen_its_scope_says_which_scope_is_missing() {
    // A source that holds a token and a refresh token, and no grant that could ask for more.
    let server = machine_server().await;
    let api = MockServer::start().await;
    Mock::given(path("/api"))
        .respond_with(ResponseTemplate::new(403).insert_header(
            "www-authenticate",
            r#"Bearer error="insufficient_scope", scope="admin""#,
        ))
        .mount(&api)
        .await;
    let token = oauth_layer::Token::builder("static")
        .build(&oauth_layer::clock::SystemClock)
        .unwrap();
    let fixed = TokenSource::builder(
        server.oauth_client("svc").unwrap(),
        oauth_layer::flow::RefreshToken::new("rt"),
    )
    .initial_token(token)
    .build();
    let err = http(OAuthMiddleware::from_source(fixed))
        .get(format!("{}/api", api.uri()))
        .send()
        .await
        .unwrap_err();
    let err = match err {
        reqwest_middleware::Error::Middleware(e) => e.downcast::<Error>().unwrap(),
        other => panic!("{other:?}"),
    };
    assert!(
        matches!(&err, Error::StepUpRequired(need) if need.scopes == ["admin"]),
        "{err:?}"
    );
    assert!(err.to_string().contains("admin"), "{err}");
}

#[tokio::test]
async fn a_claims_challenge_is_met_with_a_token_requested_with_those_claims() {
    let server = machine_server().await;
    let http = http(OAuthMiddleware::client_credentials(
        server.oauth_client("svc").unwrap(),
    ));
    assert_eq!(
        http.get(server.resource_url("/api/cae"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let log = server.token_request_log();
    assert_eq!(log.len(), 2, "the plain token, then one with the claims");
    let statuses: Vec<u16> = server
        .resource_requests()
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [401, 200]);
}

/// A resource that asks for another scope on every answer: one upgrade, then its 403 back.
#[tokio::test]
async fn a_resource_that_never_stops_asking_gets_one_upgrade_per_request_and_no_loop() {
    let server = machine_server().await;
    let api = MockServer::start().await;
    let counter = Arc::new(Mutex::new(0u32));
    let c = counter.clone();
    Mock::given(path("/api"))
        .respond_with(move |_: &Request| {
            let mut n = c.lock().unwrap();
            *n += 1;
            ResponseTemplate::new(403).insert_header(
                "www-authenticate",
                format!(
                    r#"Bearer error="insufficient_scope", scope="s{n}", DPoP error="insufficient_user_authentication", Bearer error="insufficient_claims", claims="e30=""#
                ),
            )
        })
        .mount(&api)
        .await;
    let http = http(OAuthMiddleware::client_credentials(
        server.oauth_client("svc").unwrap(),
    ));
    for _ in 0..3 {
        let resp = http.get(format!("{}/api", api.uri())).send().await.unwrap();
        assert_eq!(resp.status(), 403);
    }
    assert_eq!(*counter.lock().unwrap(), 6, "two requests each");
    assert!(server.token_requests() <= 4, "{}", server.token_requests());
}

/// A person's source: the step-up signs in again with the challenge's `acr_values` and
/// `max_age`, then the request is sent once more, when the layer may interact.
#[tokio::test]
async fn a_step_up_challenge_signs_the_person_in_again_and_retries() {
    let server = TestServer::builder()
        .client("desktop-app", None, AuthMethod::None)
        .require_acr("/api/mfa", "urn:example:mfa")
        .start()
        .await
        .unwrap();
    let seen: Arc<Mutex<Vec<Url>>> = Arc::default();
    let s = seen.clone();
    let browser = BrowserFn(move |url: &Url| {
        s.lock().unwrap().push(url.clone());
        let url = url.clone();
        tokio::spawn(async move {
            let resp = reqwest::get(url)
                .await
                .expect("the browser reaches the server");
            assert_eq!(resp.status(), 200);
        });
        Ok(())
    });
    let flow = AuthCode::new()
        .scope("files:read")
        .browser(browser)
        .prompt(ScriptedPrompt::default())
        .timeout(Duration::from_secs(20));
    let http = http(
        OAuthMiddleware::with_flow(server.oauth_client("desktop-app").unwrap(), flow)
            .interactive(true),
    );
    let resp = http
        .get(server.resource_url("/api/mfa"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let urls = seen.lock().unwrap().clone();
    assert_eq!(urls.len(), 2, "the first sign-in, then the step-up");
    let acr = urls[1]
        .query_pairs()
        .find(|(k, _)| k == "acr_values")
        .map(|(_, v)| v.into_owned());
    assert_eq!(acr.as_deref(), Some("urn:example:mfa"));
    assert!(urls[0].query_pairs().all(|(k, _)| k != "acr_values"));
}
