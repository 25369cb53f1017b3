//! The resource-first client (`OAuthMiddleware::for_resource`, `OAuthLayer::for_resource`,
//! `resource::ResourceClient`) through the public API: resources played by wiremock that answer
//! `401` with an RFC 9728 challenge (or worse), and `TestServer` as their authorization server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use oauth_layer::resource::ResourceClient;
use oauth_layer::testing::TestServer;
use oauth_layer::{AuthMethod, Error, OAuthLayer, OAuthMiddleware};
use reqwest_middleware::ClientWithMiddleware;
use serde_json::json;
use tower::{Service, ServiceBuilder, ServiceExt};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const SECRET: &str = "agent-secret-never-shown";

/// A mock server of its own: wiremock's pool hands the same address to test after test, and a
/// resource-first client keeps what it learned about an address for the whole process.
async fn fresh_mock() -> MockServer {
    MockServer::builder().start().await
}

async fn authorization_server() -> Arc<TestServer> {
    Arc::new(
        TestServer::builder()
            .client("agent", Some(SECRET), AuthMethod::ClientSecretBasic)
            .start()
            .await
            .unwrap(),
    )
}

/// How the played resource describes itself.
struct Resource {
    /// The `authorization_servers` of its metadata.
    issuers: Vec<String>,
    /// Whether its challenge carries `resource_metadata` (else the client must use the
    /// well-known URL).
    points: bool,
    /// The `resource` its metadata names (`None`: its own).
    claims: Option<String>,
    /// The `scope` of its challenge.
    scope: Option<&'static str>,
}

impl Resource {
    fn of(server: &TestServer) -> Self {
        Self {
            issuers: vec![server.url()],
            points: true,
            claims: None,
            scope: None,
        }
    }

    /// A resource at `{mock}/mcp` that takes the access tokens `server` issued.
    async fn start(self, server: &Arc<TestServer>) -> MockServer {
        let mock = fresh_mock().await;
        let id = format!("{}/mcp", mock.uri());
        let metadata_url = format!("{}/.well-known/oauth-protected-resource/mcp", mock.uri());
        Mock::given(method("GET"))
            .and(path("/.well-known/oauth-protected-resource/mcp"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "resource": self.claims.unwrap_or(id),
                "authorization_servers": self.issuers,
                "scopes_supported": ["mcp:tools", "mcp:admin"],
            })))
            .mount(&mock)
            .await;
        let checker = server.clone();
        let (points, scope) = (self.points, self.scope);
        Mock::given(path("/mcp"))
            .respond_with(move |request: &Request| {
                let token = request
                    .headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "));
                if token.and_then(|t| checker.access_token_info(t)).is_some() {
                    return ResponseTemplate::new(200).set_body_string("tools");
                }
                let mut challenge = "Bearer".to_owned();
                if points {
                    challenge.push_str(&format!(r#" resource_metadata="{metadata_url}""#));
                }
                if let Some(scope) = scope {
                    challenge.push_str(&format!(r#", scope="{scope}""#));
                }
                ResponseTemplate::new(401).insert_header("www-authenticate", challenge)
            })
            .mount(&mock)
            .await;
        mock
    }
}

fn machine(mock: &MockServer) -> ResourceClient {
    ResourceClient::new(format!("{}/mcp", mock.uri()))
        .unwrap()
        .client_id_and_secret("agent", SECRET)
        .machine()
}

fn http(resources: ResourceClient) -> ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(oauth_layer::reqwest::client_builder().build().unwrap())
        .with(OAuthMiddleware::for_resources(resources))
        .build()
}

async fn paths(mock: &MockServer) -> Vec<String> {
    mock.received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.url.path().to_owned())
        .collect()
}

fn oauth_error(err: reqwest_middleware::Error) -> Error {
    match err {
        reqwest_middleware::Error::Middleware(e) => e.downcast::<Error>().unwrap(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_machine_client_finds_its_authorization_server_from_a_401_and_retries() {
    let server = authorization_server().await;
    let mock = Resource::of(&server).start(&server).await;
    let http = http(machine(&mock));
    let answer = http
        .get(format!("{}/mcp", mock.uri()))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "tools");
    let answer = http
        .get(format!("{}/mcp?page=2", mock.uri()))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    // The minimum: the probe, the resource's metadata, the server's metadata, the token, the
    // retry; then straight to the resource.
    assert_eq!(
        paths(&mock).await,
        [
            "/mcp",
            "/.well-known/oauth-protected-resource/mcp",
            "/mcp",
            "/mcp"
        ],
    );
    assert_eq!(server.discovery_requests(), 1);
    assert_eq!(server.token_requests(), 1);
}

#[tokio::test]
async fn without_resource_metadata_in_the_challenge_the_well_known_url_is_used() {
    let server = authorization_server().await;
    let mock = Resource {
        points: false,
        ..Resource::of(&server)
    }
    .start(&server)
    .await;
    let answer = http(machine(&mock))
        .get(format!("{}/mcp", mock.uri()))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        paths(&mock).await,
        ["/mcp", "/.well-known/oauth-protected-resource/mcp", "/mcp"]
    );
    assert_eq!(server.token_requests(), 1);
}

#[tokio::test]
async fn the_scopes_of_the_challenge_come_before_the_metadatas() {
    let server = authorization_server().await;
    let mock = Resource {
        scope: Some("mcp:tools"),
        ..Resource::of(&server)
    }
    .start(&server)
    .await;
    let resources = machine(&mock);
    let http = http(resources.clone());
    assert_eq!(
        http.get(format!("{}/mcp", mock.uri()))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let source = resources
        .token_source(format!("{}/mcp", mock.uri()))
        .await
        .unwrap();
    let token = source.cached().unwrap();
    let info = server
        .access_token_info(oauth_layer::ExposeSecret::expose_secret(
            token.access_token(),
        ))
        .unwrap();
    assert_eq!(info.scope.as_deref(), Some("mcp:tools"));
    // Without a scope in the challenge, all the metadata lists.
    let server = authorization_server().await;
    let mock = Resource::of(&server).start(&server).await;
    let resources = machine(&mock);
    let source = resources
        .token_source(format!("{}/mcp", mock.uri()))
        .await
        .unwrap();
    let token = source.token().await.unwrap();
    let info = server
        .access_token_info(oauth_layer::ExposeSecret::expose_secret(
            token.access_token(),
        ))
        .unwrap();
    assert_eq!(info.scope.as_deref(), Some("mcp:tools mcp:admin"));
}

#[tokio::test]
async fn a_second_client_with_a_shared_store_makes_no_discovery_or_token_request() {
    let server = authorization_server().await;
    // The challenge's scope is remembered with the document: the second client, which meets no
    // challenge, asks for the same token.
    let mock = Resource {
        scope: Some("mcp:tools"),
        ..Resource::of(&server)
    }
    .start(&server)
    .await;
    let url = format!("{}/mcp", mock.uri());
    let store = oauth_layer::store::MemoryStore::new();
    let first = http(machine(&mock).store(store.clone()));
    assert_eq!(first.get(&url).send().await.unwrap().status(), 200);
    let seen = paths(&mock).await.len();
    let discovered = server.discovery_requests();

    // Another client of the same resource: straight to the resource with the stored token.
    let second = http(machine(&mock).store(store));
    assert_eq!(second.get(&url).send().await.unwrap().status(), 200);
    assert_eq!(&paths(&mock).await[seen..], ["/mcp"]);
    assert_eq!(server.discovery_requests(), discovered);
    assert_eq!(server.token_requests(), 1);
}

#[tokio::test]
async fn a_resource_metadata_document_for_another_resource_stops_everything() {
    let server = authorization_server().await;
    let mock = Resource {
        claims: Some("https://other.example/mcp".into()),
        ..Resource::of(&server)
    }
    .start(&server)
    .await;
    let err = http(machine(&mock))
        .get(format!("{}/mcp", mock.uri()))
        .send()
        .await
        .unwrap_err();
    let err = oauth_error(err);
    assert!(matches!(err, Error::ResourceMismatch { .. }), "{err:?}");
    assert_eq!(server.discovery_requests(), 0);
    assert_eq!(server.token_requests(), 0);
}

#[tokio::test]
async fn an_authorization_server_the_caller_did_not_allow_gets_nothing() {
    let server = authorization_server().await;
    let mock = Resource {
        points: false,
        ..Resource::of(&server)
    }
    .start(&server)
    .await;
    let resources = machine(&mock).authorization_server("https://login.example");
    let err = http(resources)
        .get(format!("{}/mcp", mock.uri()))
        .send()
        .await
        .unwrap_err();
    let Error::UntrustedAuthorizationServer { offered } = oauth_error(err) else {
        panic!()
    };
    assert_eq!(offered, [server.url()]);
    assert_eq!(server.token_requests(), 0);
    assert_eq!(server.discovery_requests(), 0);
}

#[tokio::test]
async fn the_first_allowed_server_the_resource_names_is_used() {
    let server = authorization_server().await;
    let mock = Resource {
        issuers: vec!["https://login.example".into(), server.url()],
        ..Resource::of(&server)
    }
    .start(&server)
    .await;
    let resources = machine(&mock).authorization_server(server.url());
    let answer = http(resources)
        .get(format!("{}/mcp", mock.uri()))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
}

#[tokio::test]
async fn requests_elsewhere_get_no_token_and_start_no_discovery() {
    let server = authorization_server().await;
    let mock = Resource::of(&server).start(&server).await;
    Mock::given(path("/mcpx"))
        .respond_with(ResponseTemplate::new(401).insert_header(
            "www-authenticate",
            format!(
                r#"Bearer resource_metadata="{}/.well-known/oauth-protected-resource/mcp""#,
                mock.uri()
            ),
        ))
        .mount(&mock)
        .await;
    let http = http(machine(&mock));
    let answer = http
        .get(format!("{}/mcpx", mock.uri()))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    assert_eq!(paths(&mock).await, ["/mcpx"]);
    assert_eq!(server.token_requests(), 0);
    // Once discovered, /mcp's token still never goes to /mcpx.
    assert_eq!(
        http.get(format!("{}/mcp", mock.uri()))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    mock.reset().await;
    Mock::given(path("/mcpx"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&mock)
        .await;
    http.get(format!("{}/mcpx", mock.uri()))
        .send()
        .await
        .unwrap();
    let sent = mock.received_requests().await.unwrap();
    assert!(sent[0].headers.get("authorization").is_none());
}

#[tokio::test]
async fn a_401_from_where_a_redirect_led_is_not_the_resources_word() {
    let server = authorization_server().await;
    // An attacker's server: its own metadata claims to be the resource, naming its own issuer.
    let evil = fresh_mock().await;
    let mock = fresh_mock().await;
    let resource_id = format!("{}/mcp", mock.uri());
    Mock::given(path("/.well-known/oauth-protected-resource/mcp"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "resource": resource_id,
            "authorization_servers": [server.url()],
        })))
        .mount(&evil)
        .await;
    Mock::given(path("/mcp"))
        .respond_with(ResponseTemplate::new(401).insert_header(
            "www-authenticate",
            format!(
                r#"Bearer resource_metadata="{}/.well-known/oauth-protected-resource/mcp""#,
                evil.uri()
            ),
        ))
        .mount(&evil)
        .await;
    Mock::given(path("/mcp"))
        .respond_with(
            ResponseTemplate::new(302).insert_header("location", format!("{}/mcp", evil.uri())),
        )
        .mount(&mock)
        .await;
    // reqwest's default policy follows the redirect to the other origin.
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(OAuthMiddleware::for_resources(machine(&mock)))
        .build();
    let answer = http.get(&resource_id).send().await.unwrap();
    assert_eq!(answer.status(), 401);
    assert_eq!(paths(&evil).await, ["/mcp"], "its metadata was not read");
    assert_eq!(server.token_requests(), 0);
}

#[tokio::test]
async fn a_first_request_that_cannot_be_copied_gets_its_401_and_the_next_one_the_token() {
    let server = authorization_server().await;
    let mock = Resource::of(&server).start(&server).await;
    let http = http(machine(&mock));
    let url = format!("{}/mcp", mock.uri());
    // A body made of a stream cannot be copied.
    let stream = futures::stream::iter([Ok::<_, std::io::Error>(http_body::Frame::data(
        Bytes::from_static(b"{}"),
    ))]);
    let answer = http
        .post(&url)
        .body(reqwest::Body::wrap(http_body_util::StreamBody::new(stream)))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    assert_eq!(
        server.token_requests(),
        0,
        "no sign-in for a request that is not sent again"
    );
    assert_eq!(server.discovery_requests(), 1, "but discovered");
    assert_eq!(
        http.post(&url).body("{}").send().await.unwrap().status(),
        200
    );
    assert_eq!(server.token_requests(), 1);
    assert_eq!(
        paths(&mock).await,
        ["/mcp", "/.well-known/oauth-protected-resource/mcp", "/mcp"],
        "no second probe"
    );
}

#[tokio::test]
async fn concurrent_first_requests_share_one_discovery() {
    let server = authorization_server().await;
    let mock = Resource::of(&server).start(&server).await;
    let http = http(machine(&mock));
    let url = format!("{}/mcp", mock.uri());
    let all = futures::future::join_all((0..20).map(|_| http.get(&url).send())).await;
    for answer in all {
        assert_eq!(answer.unwrap().status(), 200);
    }
    let metadata_fetches = paths(&mock)
        .await
        .iter()
        .filter(|p| p.starts_with("/.well-known"))
        .count();
    assert_eq!(metadata_fetches, 1);
    assert_eq!(server.discovery_requests(), 1);
    assert_eq!(server.token_requests(), 1);
}

#[tokio::test]
async fn the_tower_layer_discovers_the_same_way() {
    let server = authorization_server().await;
    let mock = Resource::of(&server).start(&server).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut service = ServiceBuilder::new()
        .layer(OAuthLayer::for_resources(machine(&mock)))
        .service(client);
    for _ in 0..2 {
        let request = http::Request::get(format!("{}/mcp", mock.uri()))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let answer = service.ready().await.unwrap().call(request).await.unwrap();
        assert_eq!(answer.status(), 200);
        let body = answer.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"tools");
    }
    assert_eq!(
        paths(&mock).await,
        [
            "/mcp",
            "/.well-known/oauth-protected-resource/mcp",
            "/mcp",
            "/mcp"
        ],
    );
    assert_eq!(server.token_requests(), 1);
}

#[tokio::test]
async fn an_authorization_server_whose_metadata_names_another_issuer_gets_no_request() {
    let server = authorization_server().await;
    // The resource names `impostor`, whose discovery document says it is `server`.
    let impostor = fresh_mock().await;
    Mock::given(path("/.well-known/openid-configuration"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issuer": server.url(),
            "token_endpoint": server.token_url(),
        })))
        .mount(&impostor)
        .await;
    let mock = Resource {
        issuers: vec![impostor.uri()],
        ..Resource::of(&server)
    }
    .start(&server)
    .await;
    let err = http(machine(&mock))
        .get(format!("{}/mcp", mock.uri()))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(oauth_error(err), Error::IssuerMismatch { .. }));
    assert_eq!(server.token_requests(), 0);
}

#[tokio::test]
async fn debug_output_and_errors_show_no_secret() {
    let server = authorization_server().await;
    let mock = Resource {
        issuers: vec!["https://login.example".into()],
        ..Resource::of(&server)
    }
    .start(&server)
    .await;
    let resources = machine(&mock).authorization_server("https://elsewhere.example");
    let middleware = OAuthMiddleware::for_resources(resources.clone());
    for shown in [format!("{resources:?}"), format!("{middleware:?}")] {
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(shown.contains("agent"), "{shown}");
    }
    let err = http(resources)
        .get(format!("{}/mcp", mock.uri()))
        .send()
        .await
        .unwrap_err();
    let err = oauth_error(err);
    assert!(!format!("{err} {err:?}").contains(SECRET));
}

/// A person who approves every sign-in: the browser follows the authorization URL, the server's
/// redirects included, to the loopback receiver.
fn approving_browser() -> oauth_layer::interact::BrowserFn<impl Fn(&url::Url) -> std::io::Result<()>>
{
    oauth_layer::interact::BrowserFn(|url: &url::Url| {
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

#[tokio::test]
async fn a_client_id_metadata_document_is_the_client_id_where_the_server_takes_them() {
    const CLIENT_ID: &str = "https://agent.example/oauth/client.json";
    // An authorization server that takes metadata documents: its authorization endpoint sends
    // the browser straight back with a code, its token endpoint gives a token to that client
    // for the resource only.
    let idp = fresh_mock().await;
    let mock = fresh_mock().await;
    let resource_id = format!("{}/mcp", mock.uri());
    Mock::given(path("/.well-known/openid-configuration"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issuer": idp.uri(),
            "authorization_endpoint": format!("{}/authorize", idp.uri()),
            "token_endpoint": format!("{}/token", idp.uri()),
            "client_id_metadata_document_supported": true,
            "registration_endpoint": format!("{}/register", idp.uri()),
        })))
        .mount(&idp)
        .await;
    Mock::given(path("/authorize"))
        .respond_with(|request: &Request| {
            let q: std::collections::HashMap<_, _> = request.url.query_pairs().collect();
            let back = format!("{}?code=the-code&state={}", q["redirect_uri"], q["state"]);
            ResponseTemplate::new(302).insert_header("location", back)
        })
        .mount(&idp)
        .await;
    Mock::given(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "resource-bound-token",
            "token_type": "Bearer",
            "expires_in": 3600,
        })))
        .mount(&idp)
        .await;
    Mock::given(path("/.well-known/oauth-protected-resource/mcp"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "resource": resource_id,
            "authorization_servers": [idp.uri()],
        })))
        .mount(&mock)
        .await;
    Mock::given(path("/mcp"))
        .respond_with(
            |request: &Request| match request.headers.get("authorization") {
                Some(v) if v == "Bearer resource-bound-token" => ResponseTemplate::new(200),
                _ => ResponseTemplate::new(401).insert_header("www-authenticate", "Bearer"),
            },
        )
        .mount(&mock)
        .await;

    let resources = ResourceClient::new(&resource_id)
        .unwrap()
        .client_id_metadata_document(CLIENT_ID)
        .unwrap()
        .register(Default::default())
        .auth_code(oauth_layer::flow::AuthCode::new().browser(approving_browser()));
    let answer = http(resources).get(&resource_id).send().await.unwrap();
    assert_eq!(answer.status(), 200);

    let requests = idp.received_requests().await.unwrap();
    let authorize = requests
        .iter()
        .find(|r| r.url.path() == "/authorize")
        .unwrap();
    let q: std::collections::HashMap<_, _> = authorize.url.query_pairs().collect();
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(
        q["resource"],
        resource_id.as_str(),
        "RFC 8707 on the authorization request"
    );
    assert_eq!(q["code_challenge_method"], "S256");
    let token = requests.iter().find(|r| r.url.path() == "/token").unwrap();
    let form: std::collections::HashMap<_, _> = url::form_urlencoded::parse(&token.body)
        .into_owned()
        .collect();
    assert_eq!(form["client_id"], CLIENT_ID, "a public client names itself");
    assert_eq!(
        form["resource"], resource_id,
        "RFC 8707 on the token request"
    );
    assert!(
        requests.iter().all(|r| r.url.path() != "/register"),
        "the metadata document came first, so no registration"
    );
}

#[test]
fn a_client_id_metadata_document_url_must_be_https_with_a_path() {
    let client = ResourceClient::new("https://mcp.example/mcp").unwrap();
    for bad in [
        "http://agent.example/client.json",
        "https://agent.example/",
        "https://agent.example/client.json#x",
        "not a url",
    ] {
        assert!(
            client.clone().client_id_metadata_document(bad).is_err(),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn a_root_resource_is_asked_for_as_its_document_writes_it() {
    let server = authorization_server().await;
    let mock = fresh_mock().await;
    // The document writes the root resource without its `/`, as many servers do.
    Mock::given(path("/.well-known/oauth-protected-resource"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "resource": mock.uri(),
            "authorization_servers": [server.url()],
        })))
        .mount(&mock)
        .await;
    let checker = server.clone();
    Mock::given(path("/things"))
        .respond_with(move |request: &Request| {
            let token = request
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            match token.and_then(|t| checker.access_token_info(t)) {
                Some(_) => ResponseTemplate::new(200),
                None => ResponseTemplate::new(401).insert_header("www-authenticate", "Bearer"),
            }
        })
        .mount(&mock)
        .await;
    let resources = ResourceClient::new(format!("{}/", mock.uri()))
        .unwrap()
        .client_id_and_secret("agent", SECRET)
        .machine();
    let answer = http(resources)
        .get(format!("{}/things", mock.uri()))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(server.token_request_log()[0].resources, [mock.uri()]);
}

#[tokio::test]
async fn under_the_tower_layer_a_401_from_where_an_inner_redirect_led_starts_nothing() {
    let server = authorization_server().await;
    let evil = fresh_mock().await;
    let mock = fresh_mock().await;
    let resource_id = format!("{}/mcp", mock.uri());
    Mock::given(path("/.well-known/oauth-protected-resource/mcp"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "resource": resource_id,
            "authorization_servers": [server.url()],
        })))
        .mount(&evil)
        .await;
    Mock::given(path("/mcp"))
        .respond_with(ResponseTemplate::new(401).insert_header(
            "www-authenticate",
            format!(
                r#"Bearer resource_metadata="{}/.well-known/oauth-protected-resource/mcp""#,
                evil.uri()
            ),
        ))
        .mount(&evil)
        .await;
    Mock::given(path("/mcp"))
        .respond_with(
            ResponseTemplate::new(302).insert_header("location", format!("{}/mcp", evil.uri())),
        )
        .mount(&mock)
        .await;
    // tower-http's standard policy below the layer follows the redirect to the other origin.
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut service = ServiceBuilder::new()
        .layer(OAuthLayer::for_resources(machine(&mock)))
        .layer(tower_http::follow_redirect::FollowRedirectLayer::new())
        .service(client);
    let request = http::Request::get(&resource_id)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let answer = service.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(answer.status(), 401);
    assert_eq!(paths(&evil).await, ["/mcp"], "its metadata was not read");
    assert_eq!(server.token_requests(), 0);
    assert_eq!(server.discovery_requests(), 0);
}
