//! Client registration through the public API: RFC 7591 registration, RFC 7592 read, update
//! and delete, and Client ID Metadata Documents, against wiremock servers that answer byte for
//! byte what a server (or an attacker playing one) would: the request on the wire, each OAuth
//! error, each hostile answer, redirects, huge bodies, slow servers, configuration URLs on other
//! origins, and secrets echoed back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use common::logs::Captured;
use oauth_layer::metadata::Metadata;
use oauth_layer::registration::{self, ClientMetadata, Registration};
use oauth_layer::transport::{HttpTransport, ResponseBody};
use oauth_layer::{
    Action, AuthMethod, Endpoint, Error, ExposeSecret, OAuthClient, TransportError,
    TransportErrorKind,
};
use serde_json::{Value, json};
use wiremock::matchers::{any, body_json, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// What the client sends (the initial access token) and what servers issue (the client secret,
/// the registration access token): none of them may ever show.
const IAT: &str = "initial-access-token-never-shown";
const CLIENT_SECRET: &str = "issued-client-secret-never-shown";
const RAT: &str = "registration-access-token-never-shown";
const ROTATED_SECRET: &str = "rotated-client-secret-never-shown";
const ROTATED_RAT: &str = "rotated-registration-token-never-shown";

fn client() -> OAuthClient {
    OAuthClient::builder("unregistered").build().unwrap()
}

fn metadata() -> ClientMetadata {
    ClientMetadata::new()
        .client_name("Test CLI")
        .redirect_uri("http://127.0.0.1/callback")
        .grant_type("authorization_code")
        .grant_type("refresh_token")
        .response_type("code")
        .token_endpoint_auth_method(AuthMethod::ClientSecretBasic)
        .scope("openid api:read")
}

/// A server's answer to a registration at `server`: everything RFC 7591 §3.2.1 and RFC 7592 §3
/// name, the configuration endpoint on the same origin.
fn issued(server: &MockServer) -> Value {
    json!({
        "client_id": "s6BhdRkqt3",
        "client_secret": CLIENT_SECRET,
        "client_id_issued_at": 1_700_000_000u64,
        "client_secret_expires_at": 4_000_000_000u64,
        "registration_access_token": RAT,
        "registration_client_uri": format!("{}/register/s6BhdRkqt3", server.uri()),
        "client_name": "Test CLI",
        "redirect_uris": ["http://127.0.0.1/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "client_secret_basic",
    })
}

fn registration_endpoint(server: &MockServer) -> String {
    format!("{}/register", server.uri())
}

/// Registers once, with the initial access token, at `server`, which answers `answer`.
async fn register_with(answer: ResponseTemplate) -> (MockServer, Result<Registration, Error>) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/register"))
        .respond_with(answer)
        .expect(1)
        .mount(&server)
        .await;
    let result = registration::register(
        &client(),
        &registration_endpoint(&server),
        &metadata().initial_access_token(IAT),
    )
    .await;
    (server, result)
}

/// A registration made at `server` (one POST, answered with [`issued`]).
async fn registered(server: &MockServer) -> Registration {
    Mock::given(method("POST"))
        .and(path("/register"))
        .respond_with(ResponseTemplate::new(201).set_body_json(issued(server)))
        .up_to_n_times(1)
        .mount(server)
        .await;
    registration::register(&client(), &registration_endpoint(server), &metadata())
        .await
        .unwrap()
}

/// No secret of this file in the error's `Display` or `Debug`.
fn assert_clean(err: &Error) {
    for text in [err.to_string(), format!("{err:?}")] {
        for secret in [IAT, CLIENT_SECRET, RAT, ROTATED_SECRET, ROTATED_RAT] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}

fn secs(time: Option<SystemTime>) -> Option<u64> {
    time.map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs())
}

#[tokio::test]
async fn registration_posts_json_with_the_initial_access_token_as_bearer() {
    let server = MockServer::start().await;
    let expected_body = json!({
        "client_name": "Test CLI",
        "redirect_uris": ["http://127.0.0.1/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": "openid api:read",
    });
    Mock::given(method("POST"))
        .and(path("/register"))
        .and(header("content-type", "application/json"))
        .and(header("accept", "application/json"))
        .and(header("authorization", format!("Bearer {IAT}").as_str()))
        .and(body_json(&expected_body))
        .respond_with(ResponseTemplate::new(201).set_body_json(issued(&server)))
        .expect(1)
        .mount(&server)
        .await;

    let r = registration::register(
        &client(),
        &registration_endpoint(&server),
        &metadata().initial_access_token(IAT),
    )
    .await
    .unwrap();

    assert_eq!(r.client_id(), "s6BhdRkqt3");
    assert_eq!(
        r.client_secret().map(|s| s.expose_secret()),
        Some(CLIENT_SECRET)
    );
    assert_eq!(
        r.registration_access_token().map(|s| s.expose_secret()),
        Some(RAT)
    );
    assert_eq!(
        r.registration_client_uri().map(|u| u.as_str()),
        Some(format!("{}/register/s6BhdRkqt3", server.uri()).as_str())
    );
    assert_eq!(secs(r.client_id_issued_at()), Some(1_700_000_000));
    assert_eq!(secs(r.client_secret_expires_at()), Some(4_000_000_000));
    assert!(!r.is_expired(SystemTime::now()));
    assert!(r.is_expired(UNIX_EPOCH + Duration::from_secs(4_000_000_000)));
    assert_eq!(
        r.token_endpoint_auth_method(),
        Some(AuthMethod::ClientSecretBasic)
    );
    assert_eq!(
        r.metadata()["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert!(!r.metadata().contains_key("client_secret"));
    assert!(!r.metadata().contains_key("registration_access_token"));
    let shown = format!("{r:?}");
    assert!(shown.contains("s6BhdRkqt3"), "{shown}");
    assert!(
        !shown.contains(CLIENT_SECRET) && !shown.contains(RAT),
        "{shown}"
    );

    let made = r
        .client_builder()
        .token_url("https://idp.example/token")
        .build()
        .unwrap();
    assert_eq!(made.client_id(), "s6BhdRkqt3");
    assert_eq!(
        made.secret().map(|s| s.expose_secret()),
        Some(CLIENT_SECRET)
    );
    assert_eq!(made.auth_method(), AuthMethod::ClientSecretBasic);
}

#[tokio::test]
async fn a_public_client_is_registered_without_an_authorization_header_and_a_200_is_taken() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/register"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "client_id": "public-1",
            "client_secret_expires_at": 0,
            "token_endpoint_auth_method": "none",
        })))
        .expect(1)
        .mount(&server)
        .await;
    let public = ClientMetadata::new()
        .redirect_uri("http://127.0.0.1/callback")
        .token_endpoint_auth_method(AuthMethod::None)
        .application_type("native");
    let r = registration::register(&client(), &registration_endpoint(&server), &public)
        .await
        .unwrap();
    assert_eq!(r.client_id(), "public-1");
    assert!(r.client_secret().is_none());
    assert_eq!(r.client_secret_expires_at(), None, "0 means never");
    assert!(!r.is_expired(SystemTime::now()));
    assert!(r.registration_client_uri().is_none());
    let made = r.client_builder().build().unwrap();
    assert_eq!(made.auth_method(), AuthMethod::None);

    let sent = &server.received_requests().await.unwrap()[0];
    assert!(!sent.headers.contains_key("authorization"));
    let body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(
        body,
        json!({
            "redirect_uris": ["http://127.0.0.1/callback"],
            "token_endpoint_auth_method": "none",
            "application_type": "native",
        })
    );
}

#[tokio::test]
async fn registration_errors_keep_their_code_and_never_show_the_initial_access_token() {
    for (status, code) in [
        (400, "invalid_redirect_uri"),
        (400, "invalid_client_metadata"),
        (400, "invalid_software_statement"),
        (400, "unapproved_software_statement"),
        (401, "invalid_token"),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status).set_body_json(json!({
                "error": code,
                "error_description": format!("rejected {IAT} (echoed)"),
            })))
            .expect(1)
            .mount(&server)
            .await;
        let err = registration::register(
            &client(),
            &registration_endpoint(&server),
            &metadata().initial_access_token(IAT),
        )
        .await
        .unwrap_err();
        let Error::Server(e) = &err else {
            panic!("{code}: {err:?}")
        };
        assert_eq!(e.code.as_str(), code);
        assert_eq!(e.status.as_u16(), status);
        assert!(
            e.description.as_deref().unwrap().contains("[redacted]"),
            "{e:?}"
        );
        assert_clean(&err);
    }
}

#[tokio::test]
async fn hostile_answers_are_typed_errors_that_show_no_secret() {
    // The server echoes what it was sent, and an unusable answer may still carry the secrets it
    // issued: neither shows.
    let echo = format!("<html>{IAT}</html>");
    let cases: Vec<(&str, ResponseTemplate)> = vec![
        ("html", ResponseTemplate::new(201).set_body_string(echo.clone())),
        ("html error", ResponseTemplate::new(500).set_body_string(echo)),
        ("empty", ResponseTemplate::new(201)),
        ("not json", ResponseTemplate::new(201).set_body_string("client_id=abc")),
        ("not utf-8", ResponseTemplate::new(201).set_body_bytes(vec![0xff, 0xfe, b'{'])),
        ("array", ResponseTemplate::new(201).set_body_json(json!([{"client_id": "a"}]))),
        ("string", ResponseTemplate::new(201).set_body_json(json!("a"))),
        ("no client_id", ResponseTemplate::new(201).set_body_json(json!({"client_secret": CLIENT_SECRET}))),
        (
            "array client_id",
            ResponseTemplate::new(201).set_body_json(
                json!({"client_id": ["a"], "client_secret": CLIENT_SECRET, "registration_access_token": RAT, "note": CLIENT_SECRET}),
            ),
        ),
        ("number client_id", ResponseTemplate::new(201).set_body_json(json!({"client_id": 42}))),
        ("empty client_id", ResponseTemplate::new(201).set_body_json(json!({"client_id": ""}))),
        ("control client_id", ResponseTemplate::new(201).set_body_json(json!({"client_id": "a\r\nb"}))),
        ("number secret", ResponseTemplate::new(201).set_body_json(json!({"client_id": "a", "client_secret": 7}))),
        (
            "object token",
            ResponseTemplate::new(201).set_body_json(json!({"client_id": "a", "registration_access_token": {"t": RAT}})),
        ),
        (
            "token with a space",
            ResponseTemplate::new(201)
                .set_body_json(json!({"client_id": "a", "registration_access_token": format!("{RAT} x")})),
        ),
        (
            "negative expiry",
            ResponseTemplate::new(201).set_body_json(json!({"client_id": "a", "client_secret": CLIENT_SECRET, "client_secret_expires_at": -1})),
        ),
        (
            "word expiry",
            ResponseTemplate::new(201).set_body_json(json!({"client_id": "a", "client_secret_expires_at": "soon"})),
        ),
        (
            "number uri",
            ResponseTemplate::new(201).set_body_json(json!({"client_id": "a", "registration_client_uri": 7})),
        ),
        (
            "not a uri",
            ResponseTemplate::new(201).set_body_json(json!({"client_id": "a", "registration_client_uri": "::"})),
        ),
        (
            "list auth method",
            ResponseTemplate::new(201).set_body_json(json!({"client_id": "a", "token_endpoint_auth_method": ["none"]})),
        ),
        (
            "error in a 201",
            ResponseTemplate::new(201).set_body_json(json!({"client_id": "a", "error": 5})),
        ),
        ("202", ResponseTemplate::new(202).set_body_json(json!({"client_id": "a"}))),
        ("204", ResponseTemplate::new(204)),
    ];
    for (name, answer) in cases {
        let (_server, result) = register_with(answer).await;
        let err = result.unwrap_err();
        assert!(
            matches!(err, Error::UnexpectedResponse(_)),
            "{name}: {err:?}"
        );
        let expected = if name == "html error" {
            Action::RetryLater { after: None }
        } else {
            Action::Report
        };
        assert_eq!(err.action(), expected, "{name}");
        assert_clean(&err);
    }
    // An OAuth error in a success status is still the server's error.
    let (_server, result) = register_with(
        ResponseTemplate::new(201)
            .set_body_json(json!({"client_id": "a", "error": "invalid_client_metadata"})),
    )
    .await;
    assert_eq!(
        result.unwrap_err().server_error().unwrap().code.as_str(),
        "invalid_client_metadata"
    );
}

#[tokio::test]
async fn tolerated_answers_read_as_the_server_meant_them() {
    for (answer, expires) in [
        (
            json!({"client_id": "a", "client_secret": "x-secret", "client_secret_expires_at": "4000000000"}),
            Some(4_000_000_000),
        ),
        (
            json!({"client_id": "a", "client_secret": "x-secret", "client_secret_expires_at": 4_000_000_000.7}),
            Some(4_000_000_000),
        ),
        (
            json!({"client_id": "a", "client_secret": "x-secret", "client_secret_expires_at": null}),
            None,
        ),
        (
            json!({"client_id": "a", "client_secret": "x-secret", "client_secret_expires_at": u64::MAX}),
            None,
        ),
        (
            json!({"client_id": "a", "client_secret": "", "registration_access_token": null}),
            None,
        ),
    ] {
        let (_server, result) =
            register_with(ResponseTemplate::new(201).set_body_json(&answer)).await;
        let r = result.unwrap();
        if answer["client_secret"] == "" {
            assert!(r.client_secret().is_none(), "an empty secret is no secret");
        }
        if let Some(expected) = expires {
            assert_eq!(
                secs(r.client_secret_expires_at()),
                Some(expected),
                "{answer}"
            );
        } else {
            assert!(!r.is_expired(SystemTime::now()), "{answer}");
        }
        assert_eq!(r.metadata()["client_id"], "a");
    }
}

#[tokio::test]
async fn a_huge_answer_is_cut_off_while_streaming() {
    let huge = format!(
        r#"{{"client_id":"a","padding":"{}"}}"#,
        "x".repeat(1024 * 1024 + 10)
    );
    let (_server, result) = register_with(ResponseTemplate::new(201).set_body_string(huge)).await;
    match result.unwrap_err() {
        Error::Transport(t) => {
            assert_eq!(t.kind, TransportErrorKind::BodyTooLarge);
            assert_eq!(t.endpoint, Some(Endpoint::Registration));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_slow_registration_endpoint_runs_into_the_deadline() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"client_id": "a"}))
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&server)
        .await;
    let impatient = OAuthClient::builder("x")
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let err = registration::register(&impatient, &registration_endpoint(&server), &metadata())
        .await
        .unwrap_err();
    match err {
        Error::Transport(t) => assert_eq!(t.kind, TransportErrorKind::Timeout),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn redirects_are_never_followed_with_the_initial_access_token() {
    let elsewhere = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"client_id": "stolen"})))
        .expect(0)
        .mount(&elsewhere)
        .await;
    for status in [301, 302, 303, 307, 308] {
        let (_server, result) = register_with(
            ResponseTemplate::new(status)
                .insert_header("location", registration_endpoint(&elsewhere).as_str()),
        )
        .await;
        match result.unwrap_err() {
            Error::Transport(t) => {
                assert_eq!(t.kind, TransportErrorKind::Redirect, "{status}");
                assert_eq!(t.endpoint, Some(Endpoint::Registration));
            }
            other => panic!("{status}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_registration_endpoint_must_be_https_or_loopback_http() {
    for url in ["http://idp.example/register", "http://10.0.0.1/register"] {
        match registration::register(&client(), url, &metadata().initial_access_token(IAT)).await {
            Err(Error::Transport(t)) => assert_eq!(t.kind, TransportErrorKind::InsecureUrl),
            other => panic!("{url}: {other:?}"),
        }
    }
    let err = registration::register(&client(), "not a url", &metadata())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    // An initial access token that cannot be a header is refused before sending, unseen.
    let server = MockServer::start().await;
    let bad = format!("{IAT}\r\nx-injected: 1");
    let err = registration::register(
        &client(),
        &registration_endpoint(&server),
        &metadata().initial_access_token(bad),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert_clean(&err);
    assert!(server.received_requests().await.unwrap().is_empty());
}

/// A transport that sends `https://host[:port]/path` to `server` as `/host[:port]/path`, so
/// remote servers can be played by a local one.
#[derive(Debug)]
struct Rewrite {
    base: String,
    client: reqwest::Client,
}

#[async_trait]
impl HttpTransport for Rewrite {
    async fn send(
        &self,
        mut request: http::Request<Bytes>,
    ) -> Result<http::Response<ResponseBody>, TransportError> {
        let uri = request.uri();
        assert_eq!(uri.scheme_str(), Some("https"), "remote servers are https");
        let rest = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let rewritten = format!("{}/{}{}", self.base, uri.authority().unwrap(), rest);
        *request.uri_mut() = rewritten.parse().unwrap();
        self.client.send(request).await
    }
}

fn remote_client(server: &MockServer) -> OAuthClient {
    OAuthClient::builder("unregistered")
        .transport(Rewrite {
            base: server.uri(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        })
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_configuration_endpoint_must_be_on_the_registration_endpoints_origin() {
    let cases = [
        ("https://other.example/register/a", "origin"),
        ("https://idp.example:8443/register/a", "origin"),
        ("https://sub.idp.example/register/a", "origin"),
        ("https://user:pw@idp.example/register/a", "user name"),
        ("http://idp.example/register/a", "insecure"),
        ("http://127.0.0.1:9/register/a", "insecure"),
        ("http://localhost/register/a", "insecure"),
    ];
    for (uri, why) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/idp.example/register"))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({
                "client_id": "a",
                "client_secret": CLIENT_SECRET,
                "registration_access_token": RAT,
                "registration_client_uri": uri,
            })))
            .expect(1)
            .mount(&server)
            .await;
        let err = registration::register(
            &remote_client(&server),
            "https://idp.example/register",
            &metadata(),
        )
        .await
        .unwrap_err();
        match (&err, why) {
            (Error::Transport(t), "insecure") => {
                assert_eq!(t.kind, TransportErrorKind::InsecureUrl, "{uri}")
            }
            (Error::UnexpectedResponse(e), _) => {
                assert!(e.problem.contains(why), "{uri}: {e}")
            }
            _ => panic!("{uri}: {err:?}"),
        }
        assert_clean(&err);
    }

    // The same origin is fine, and a loopback server may use loopback http (the other tests).
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/idp.example/register"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "client_id": "a",
            "registration_access_token": RAT,
            "registration_client_uri": "https://idp.example/clients/a?tenant=1",
        })))
        .mount(&server)
        .await;
    let r = registration::register(
        &remote_client(&server),
        "https://idp.example/register",
        &metadata(),
    )
    .await
    .unwrap();
    assert_eq!(
        r.registration_client_uri().unwrap().as_str(),
        "https://idp.example/clients/a?tenant=1"
    );
}

#[tokio::test]
async fn read_sends_the_registration_access_token_and_keeps_what_the_answer_leaves_out() {
    let server = MockServer::start().await;
    let r = registered(&server).await;
    // First read: the server restates the client without its secrets.
    Mock::given(method("GET"))
        .and(path("/register/s6BhdRkqt3"))
        .and(header("authorization", format!("Bearer {RAT}").as_str()))
        .and(header("accept", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "client_id": "s6BhdRkqt3",
            "client_name": "Renamed by the admin",
        })))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    let read = client().read_registration(&r).await.unwrap();
    assert_eq!(read.client_id(), "s6BhdRkqt3");
    assert_eq!(read.metadata()["client_name"], "Renamed by the admin");
    assert_eq!(
        read.client_secret().map(|s| s.expose_secret()),
        Some(CLIENT_SECRET)
    );
    assert_eq!(secs(read.client_secret_expires_at()), Some(4_000_000_000));
    assert_eq!(secs(read.client_id_issued_at()), Some(1_700_000_000));
    assert_eq!(
        read.registration_access_token().map(|s| s.expose_secret()),
        Some(RAT)
    );
    assert_eq!(read.registration_client_uri(), r.registration_client_uri());
    assert!(server.received_requests().await.unwrap()[1].body.is_empty());

    // Second read: the server rotates the secret and the token.
    Mock::given(method("GET"))
        .and(path("/register/s6BhdRkqt3"))
        .and(header("authorization", format!("Bearer {RAT}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "client_id": "s6BhdRkqt3",
            "client_secret": ROTATED_SECRET,
            "client_secret_expires_at": 0,
            "registration_access_token": ROTATED_RAT,
        })))
        .expect(1)
        .mount(&server)
        .await;
    let rotated = registration::read(&client(), &read).await.unwrap();
    assert_eq!(
        rotated.client_secret().map(|s| s.expose_secret()),
        Some(ROTATED_SECRET)
    );
    assert_eq!(rotated.client_secret_expires_at(), None);
    assert_eq!(
        rotated
            .registration_access_token()
            .map(|s| s.expose_secret()),
        Some(ROTATED_RAT)
    );
}

#[tokio::test]
async fn a_refused_registration_access_token_means_the_registration_is_gone() {
    for status in [401, 403] {
        let server = MockServer::start().await;
        let r = registered(&server).await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(status).set_body_json(json!({
                "error": "invalid_token",
                "error_description": format!("unknown token {RAT}"),
            })))
            .mount(&server)
            .await;
        Mock::given(method("PUT"))
            .respond_with(ResponseTemplate::new(status))
            .mount(&server)
            .await;
        Mock::given(method("DELETE"))
            .respond_with(ResponseTemplate::new(status))
            .mount(&server)
            .await;
        for err in [
            registration::read(&client(), &r).await.unwrap_err(),
            registration::update(&client(), &r, &metadata())
                .await
                .unwrap_err(),
            registration::delete(&client(), &r).await.unwrap_err(),
        ] {
            assert!(
                matches!(err, Error::RegistrationGone { status: s } if s == status),
                "{err:?}"
            );
            let text = err.to_string();
            assert!(text.contains("registration is gone"), "{text}");
            assert!(text.contains("register the client again"), "{text}");
            assert_eq!(err.action(), Action::Reauthenticate);
            assert_clean(&err);
        }
    }
}

#[tokio::test]
async fn read_refuses_an_answer_for_another_client_or_a_moved_configuration_endpoint() {
    let server = MockServer::start().await;
    let r = registered(&server).await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "client_id": "someone-else",
            "client_secret": ROTATED_SECRET,
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let err = registration::read(&client(), &r).await.unwrap_err();
    assert!(matches!(err, Error::UnexpectedResponse(_)), "{err:?}");
    assert_clean(&err);

    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "client_id": "s6BhdRkqt3",
            "registration_client_uri": "https://elsewhere.example/clients/s6BhdRkqt3",
        })))
        .mount(&server)
        .await;
    let err = registration::read(&client(), &r).await.unwrap_err();
    assert!(
        matches!(&err, Error::UnexpectedResponse(e) if e.problem.contains("origin")),
        "{err:?}"
    );
}

#[tokio::test]
async fn update_puts_every_member_with_the_client_id_and_no_secret() {
    let server = MockServer::start().await;
    let r = registered(&server).await;
    let changed = ClientMetadata::new()
        .client_name("Test CLI 2")
        .redirect_uri("http://127.0.0.1/callback")
        .redirect_uri("http://[::1]/callback")
        .token_endpoint_auth_method(AuthMethod::ClientSecretPost)
        .field("client_secret", json!("must not be sent"))
        .initial_access_token(IAT);
    Mock::given(method("PUT"))
        .and(path("/register/s6BhdRkqt3"))
        .and(header("authorization", format!("Bearer {RAT}").as_str()))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "client_id": "s6BhdRkqt3",
            "client_name": "Test CLI 2",
            "redirect_uris": ["http://127.0.0.1/callback", "http://[::1]/callback"],
            "token_endpoint_auth_method": "client_secret_post",
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "client_id": "s6BhdRkqt3",
            "client_secret": CLIENT_SECRET,
            "client_name": "Test CLI 2",
            "redirect_uris": ["http://127.0.0.1/callback", "http://[::1]/callback"],
            "token_endpoint_auth_method": "client_secret_post",
        })))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    let updated = client().update_registration(&r, &changed).await.unwrap();
    assert_eq!(
        updated.token_endpoint_auth_method(),
        Some(AuthMethod::ClientSecretPost)
    );
    assert_eq!(
        updated
            .registration_access_token()
            .map(|s| s.expose_secret()),
        Some(RAT),
        "kept when the answer leaves it out"
    );

    // An error from the configuration endpoint keeps its code.
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_redirect_uri",
            "error_description": format!("bad {RAT} {CLIENT_SECRET}"),
        })))
        .mount(&server)
        .await;
    let err = registration::update(&client(), &updated, &changed)
        .await
        .unwrap_err();
    assert_eq!(
        err.server_error().unwrap().code.as_str(),
        "invalid_redirect_uri"
    );
    assert_clean(&err);
}

#[tokio::test]
async fn delete_sends_the_token_and_takes_204_or_200() {
    for status in [204, 200] {
        let server = MockServer::start().await;
        let r = registered(&server).await;
        Mock::given(method("DELETE"))
            .and(path("/register/s6BhdRkqt3"))
            .and(header("authorization", format!("Bearer {RAT}").as_str()))
            .respond_with(ResponseTemplate::new(status))
            .expect(1)
            .mount(&server)
            .await;
        client().delete_registration(&r).await.unwrap();
    }
    let server = MockServer::start().await;
    let r = registered(&server).await;
    Mock::given(method("DELETE"))
        .respond_with(ResponseTemplate::new(500).set_body_string(format!("oops {RAT}")))
        .mount(&server)
        .await;
    let err = registration::delete(&client(), &r).await.unwrap_err();
    assert!(matches!(err, Error::UnexpectedResponse(_)), "{err:?}");
    assert!(err.is_transient());
    assert_clean(&err);
}

#[tokio::test]
async fn configuration_calls_need_rfc_7592_support_and_never_follow_redirects() {
    // A registration without a configuration endpoint: nothing is sent.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"client_id": "a"})))
        .mount(&server)
        .await;
    let r = registration::register(&client(), &registration_endpoint(&server), &metadata())
        .await
        .unwrap();
    for err in [
        registration::read(&client(), &r).await.unwrap_err(),
        registration::update(&client(), &r, &metadata())
            .await
            .unwrap_err(),
        registration::delete(&client(), &r).await.unwrap_err(),
    ] {
        assert!(
            matches!(&err, Error::Config(m) if m.contains("RFC 7592")),
            "{err:?}"
        );
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 1);

    // A configuration endpoint that redirects: refused, the target never contacted.
    let elsewhere = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"client_id": "s6BhdRkqt3"})))
        .expect(0)
        .mount(&elsewhere)
        .await;
    let server = MockServer::start().await;
    let r = registered(&server).await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(307).insert_header("location", elsewhere.uri().as_str()),
        )
        .mount(&server)
        .await;
    for err in [
        registration::read(&client(), &r).await.unwrap_err(),
        registration::delete(&client(), &r).await.unwrap_err(),
    ] {
        match err {
            Error::Transport(t) => {
                assert_eq!(t.kind, TransportErrorKind::Redirect);
                assert_eq!(t.endpoint, Some(Endpoint::ClientConfiguration));
                assert!(
                    t.to_string().starts_with("client configuration endpoint"),
                    "{t}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}

fn server_metadata(issuer: &str, registration_endpoint: Option<String>) -> Metadata {
    let mut document = json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/token"),
    });
    if let Some(url) = registration_endpoint {
        document["registration_endpoint"] = json!(url);
    }
    serde_json::from_value(document).unwrap()
}

#[tokio::test]
async fn oauth_client_register_uses_the_servers_registration_endpoint() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/register"))
        .respond_with(ResponseTemplate::new(201).set_body_json(issued(&server)))
        .expect(1)
        .mount(&server)
        .await;
    let discovered = OAuthClient::builder("unregistered")
        .metadata(server_metadata(
            &server.uri(),
            Some(registration_endpoint(&server)),
        ))
        .build()
        .unwrap();
    let r = discovered.register(&metadata()).await.unwrap();
    assert_eq!(r.client_id(), "s6BhdRkqt3");

    let without = OAuthClient::builder("unregistered")
        .metadata(server_metadata(&server.uri(), None))
        .build()
        .unwrap();
    let err = without.register(&metadata()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Config(m) if m.contains("registration_endpoint")),
        "{err:?}"
    );
    let err = client().register(&metadata()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Config(m) if m.contains("registration_endpoint")),
        "{err:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn no_secret_reaches_debug_errors_or_logs_in_a_whole_life_cycle() {
    let captured = Captured::default();
    let _logs = captured.install(tracing::Level::TRACE);

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("authorization", format!("Bearer {IAT}").as_str()))
        .respond_with(ResponseTemplate::new(201).set_body_json(issued(&server)))
        .mount(&server)
        .await;
    let with_iat = metadata().initial_access_token(IAT);
    let shown = format!("{with_iat:?}");
    assert!(!shown.contains(IAT), "{shown}");
    assert!(!serde_json::to_string(&with_iat).unwrap().contains(IAT));
    assert!(with_iat.has_initial_access_token());

    let r = registration::register(&client(), &registration_endpoint(&server), &with_iat)
        .await
        .unwrap();
    tracing::info!(registration = ?r, "registered");
    // Every later call is answered with the secrets echoed back, raw and percent-encoded (the
    // initial access token too, which an update holds though it does not send it).
    let echo = ResponseTemplate::new(500).set_body_string(format!(
        r#"{{"error":"invalid_request","error_description":"got {RAT} / {CLIENT_SECRET} / {IAT} / {}","echo":"{RAT}"}}"#,
        RAT.replace('-', "%2D"),
    ));
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(400).set_body_string(format!(
            r#"{{"error":"invalid_request","error_description":"got {RAT} / {CLIENT_SECRET}"}}"#
        )))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .respond_with(echo)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .respond_with(
            ResponseTemplate::new(502).set_body_string(format!("<p>{RAT} {CLIENT_SECRET}</p>")),
        )
        .mount(&server)
        .await;
    let errors = [
        registration::read(&client(), &r).await.unwrap_err(),
        registration::update(&client(), &r, &with_iat)
            .await
            .unwrap_err(),
        registration::delete(&client(), &r).await.unwrap_err(),
    ];
    for err in &errors {
        assert_clean(err);
        tracing::error!(error = %err, debug = ?err, "caller saw");
    }
    let logs = captured.text();
    assert!(logs.contains("registration request"), "{logs}");
    for secret in [IAT, CLIENT_SECRET, RAT] {
        assert!(!logs.contains(secret), "{secret} in {logs}");
        assert!(
            !logs.contains(&secret.replace('-', "%2D")),
            "{secret} in {logs}"
        );
    }
    // The update did not send the initial access token either.
    let sent = server.received_requests().await.unwrap();
    let put: &Request = sent.iter().find(|r| r.method.as_str() == "PUT").unwrap();
    assert_eq!(
        put.headers.get("authorization").unwrap().to_str().unwrap(),
        format!("Bearer {RAT}")
    );
    assert!(!String::from_utf8_lossy(&put.body).contains(IAT));
}

#[test]
fn client_metadata_builds_exactly_the_members_set() {
    let m = ClientMetadata::new()
        .redirect_uri("https://app.example/cb")
        .contact("ops@app.example")
        .client_uri("https://app.example")
        .logo_uri("https://app.example/logo.png")
        .software_id("4NRB1-0XZABZI9E6-5SM3R")
        .software_version("2.1")
        .jwks_uri("https://app.example/jwks.json")
        .field("tos_uri", json!("https://app.example/tos"))
        .field("client_name#fr", json!("Mon appli"));
    assert_eq!(m.redirect_uris(), ["https://app.example/cb"]);
    assert_eq!(m.contacts(), ["ops@app.example"]);
    assert!(m.grant_types().is_empty());
    assert_eq!(m.auth_method(), None);
    assert_eq!(
        serde_json::to_value(&m).unwrap(),
        json!({
            "redirect_uris": ["https://app.example/cb"],
            "contacts": ["ops@app.example"],
            "client_uri": "https://app.example",
            "logo_uri": "https://app.example/logo.png",
            "software_id": "4NRB1-0XZABZI9E6-5SM3R",
            "software_version": "2.1",
            "jwks_uri": "https://app.example/jwks.json",
            "tos_uri": "https://app.example/tos",
            "client_name#fr": "Mon appli",
        })
    );
    // `field` with a member a setter owns replaces it, typed when it can be.
    let m = m
        .field(
            "redirect_uris",
            json!(["https://a.example/1", "https://a.example/2"]),
        )
        .field("grant_types", json!("not a list"))
        .field("token_endpoint_auth_method", json!("private_key_jwt"));
    assert_eq!(
        m.redirect_uris(),
        ["https://a.example/1", "https://a.example/2"]
    );
    assert!(m.grant_types().is_empty());
    assert_eq!(m.get("grant_types"), Some(json!("not a list")));
    assert_eq!(m.auth_method(), Some(AuthMethod::PrivateKeyJwt));
    let m = m.field("token_endpoint_auth_method", json!("tls_client_auth"));
    assert_eq!(m.auth_method(), Some(AuthMethod::TlsClientAuth));
    // A method the crate does not know is kept as sent, untyped.
    let m = m.field(
        "token_endpoint_auth_method",
        json!("private_method_of_a_vendor"),
    );
    assert_eq!(m.auth_method(), None);
    assert_eq!(
        m.get("token_endpoint_auth_method"),
        Some(json!("private_method_of_a_vendor"))
    );
    let m = m
        .token_endpoint_auth_method(AuthMethod::None)
        .grant_type("client_credentials");
    assert_eq!(m.get("token_endpoint_auth_method"), Some(json!("none")));
    assert_eq!(m.get("grant_types"), Some(json!(["client_credentials"])));
}

#[test]
fn a_metadata_document_is_the_metadata_with_the_client_id_url() {
    let public = ClientMetadata::new()
        .client_name("My CLI")
        .redirect_uri("http://127.0.0.1/callback")
        .token_endpoint_auth_method(AuthMethod::None)
        .initial_access_token(IAT);
    let document = public
        .metadata_document("https://app.example:443/oauth/client.json")
        .unwrap();
    assert_eq!(
        document,
        json!({
            "client_id": "https://app.example:443/oauth/client.json",
            "client_name": "My CLI",
            "redirect_uris": ["http://127.0.0.1/callback"],
            "token_endpoint_auth_method": "none",
        }),
        "the client id exactly as given, and never the initial access token"
    );
    let keyed = ClientMetadata::new()
        .token_endpoint_auth_method(AuthMethod::PrivateKeyJwt)
        .jwks(json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "f83O", "y": "x_FE"}]}));
    assert!(
        keyed
            .metadata_document("https://app.example/client")
            .is_ok()
    );
}

#[test]
fn a_metadata_document_refuses_what_the_draft_forbids() {
    let public = ClientMetadata::new().token_endpoint_auth_method(AuthMethod::None);
    for url in [
        "http://app.example/client.json",
        "http://127.0.0.1/client.json",
        "https://app.example",
        "https://app.example/",
        "https://user:pw@app.example/client.json",
        "https://app.example/client.json#x",
        "https://app.example/a/../client.json",
        "https://app.example/./client.json",
        "https://app.example/%2E%2e/client.json",
        "app.example/client.json",
    ] {
        let err = public.metadata_document(url).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{url}: {err:?}");
        assert!(!err.to_string().contains("pw@"), "{err}");
    }
    let url = "https://app.example/client.json";
    for (name, metadata) in [
        ("basic", public.clone().token_endpoint_auth_method(AuthMethod::ClientSecretBasic)),
        ("post", public.clone().token_endpoint_auth_method(AuthMethod::ClientSecretPost)),
        ("jwt", public.clone().token_endpoint_auth_method(AuthMethod::ClientSecretJwt)),
        ("raw jwt", public.clone().field("token_endpoint_auth_method", json!("client_secret_jwt"))),
        ("secret", public.clone().field("client_secret", json!(CLIENT_SECRET))),
        ("secret expiry", public.clone().field("client_secret_expires_at", json!(0))),
        (
            "private key",
            public.clone().jwks(json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b", "d": "private"}]})),
        ),
        ("symmetric key", public.clone().jwks(json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}))),
        ("another client id", public.clone().field("client_id", json!("https://evil.example/c"))),
    ] {
        let err = metadata.metadata_document(url).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{name}: {err:?}");
        assert!(!err.to_string().contains(CLIENT_SECRET), "{err}");
    }
}

#[test]
fn every_call_returns_a_send_future() {
    fn send<T: Send>(_: T) {}
    let client = client();
    let metadata = metadata();
    send(async {
        let r = registration::register(&client, "https://idp.example/register", &metadata).await?;
        let r = client.read_registration(&r).await?;
        let r = client.update_registration(&r, &metadata).await?;
        client.delete_registration(&r).await?;
        client.register(&metadata).await
    });
}

#[test]
fn an_empty_list_set_on_purpose_is_sent_and_a_list_replaces_it() {
    use oauth_layer::registration::ClientMetadata;
    let none = ClientMetadata::new().field("response_types", serde_json::json!([]));
    assert_eq!(none.get("response_types"), Some(serde_json::json!([])));
    assert!(none.response_types().is_empty());
    let code = none.response_type("code");
    assert_eq!(
        code.get("response_types"),
        Some(serde_json::json!(["code"]))
    );
    assert_eq!(
        ClientMetadata::new().get("response_types"),
        None,
        "unset stays unset"
    );
}
