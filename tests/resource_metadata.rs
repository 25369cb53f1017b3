//! Protected resource metadata (RFC 9728) through the public API: the identifier a client
//! derives from a URL, where the document is looked for, and every reason a document is refused
//! (a document for another resource, plain-http authorization servers, hostile bodies,
//! redirects), against wiremock servers that answer byte for byte what an attacker would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use bytes::Bytes;
use oauth_layer::challenge::Challenges;
use oauth_layer::discovery::resource::{
    self, ProtectedResourceMetadata, ResourceIdentifier, WELL_KNOWN_PREFIX,
};
use oauth_layer::transport::{HttpTransport, ResponseBody};
use oauth_layer::{Action, Endpoint, Error, OAuthClient, TransportError, TransportErrorKind};
use serde_json::{Value, json};
use wiremock::matchers::{any, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "client-secret-never-shown";
/// A credential some APIs take in the query; the identifier drops it, so no error shows it.
const QUERY_SECRET: &str = "sk-live-query-credential";

fn client() -> OAuthClient {
    OAuthClient::builder("client")
        .secret(SECRET)
        .build()
        .unwrap()
}

/// A client whose requests to any `https://host[:port]/path` go to `server` as
/// `/host[:port]/path`, so remote resources can be played by a local server.
fn remote_client(server: &MockServer) -> OAuthClient {
    OAuthClient::builder("client")
        .secret(SECRET)
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
        assert_eq!(
            uri.scheme_str(),
            Some("https"),
            "remote resources are https"
        );
        let rest = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let rewritten = format!("{}/{}{}", self.base, uri.authority().unwrap(), rest);
        *request.uri_mut() = rewritten.parse().unwrap();
        self.client.send(request).await
    }
}

/// Answers GET `at` with `response`, expecting exactly `times` requests.
async fn serve(server: &MockServer, at: &str, response: ResponseTemplate, times: u64) {
    Mock::given(method("GET"))
        .and(path(at))
        .respond_with(response)
        .expect(times)
        .named(at)
        .mount(server)
        .await;
}

/// The loopback resource `/mcp` on `server`, and where its document is.
fn local_mcp(server: &MockServer) -> (ResourceIdentifier, String) {
    let mcp = ResourceIdentifier::new(format!("{}/mcp?key={QUERY_SECRET}", server.uri())).unwrap();
    (mcp, format!("{WELL_KNOWN_PREFIX}/mcp"))
}

fn json_reply(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

/// Fetches `body` as the document of the loopback resource `/mcp`.
async fn fetch_local(body: ResponseTemplate) -> Result<ProtectedResourceMetadata, Error> {
    let server = MockServer::start().await;
    let (mcp, at) = local_mcp(&server);
    serve(&server, &at, body, 1).await;
    resource::fetch(&client(), &mcp).await
}

/// No error of this file may show the client's secret or the query credential, in either form.
fn assert_clean(err: &Error) {
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains(QUERY_SECRET), "{text}");
    }
}

#[test]
fn the_identifier_keeps_scheme_host_port_and_path_and_the_well_known_url_inserts_the_suffix() {
    for (url, identifier, well_known) in [
        (
            "https://mcp.example/mcp",
            "https://mcp.example/mcp",
            "https://mcp.example/.well-known/oauth-protected-resource/mcp",
        ),
        // A terminating slash is dropped for the well-known URL only; the identifier keeps it.
        (
            "https://mcp.example/tools/",
            "https://mcp.example/tools/",
            "https://mcp.example/.well-known/oauth-protected-resource/tools",
        ),
        (
            "https://mcp.example/a/b/c",
            "https://mcp.example/a/b/c",
            "https://mcp.example/.well-known/oauth-protected-resource/a/b/c",
        ),
        // Root resources, with or without their `/`.
        (
            "https://mcp.example",
            "https://mcp.example/",
            "https://mcp.example/.well-known/oauth-protected-resource",
        ),
        (
            "https://mcp.example/",
            "https://mcp.example/",
            "https://mcp.example/.well-known/oauth-protected-resource",
        ),
        // Ports stay (the default one goes), the host is lower-cased.
        (
            "https://mcp.example:8443/mcp",
            "https://mcp.example:8443/mcp",
            "https://mcp.example:8443/.well-known/oauth-protected-resource/mcp",
        ),
        (
            "https://MCP.Example:443/mcp",
            "https://mcp.example/mcp",
            "https://mcp.example/.well-known/oauth-protected-resource/mcp",
        ),
        (
            "http://127.0.0.1:3000/",
            "http://127.0.0.1:3000/",
            "http://127.0.0.1:3000/.well-known/oauth-protected-resource",
        ),
        // Query and fragment are not part of the identifier, nor of the well-known URL.
        (
            "https://mcp.example/mcp?session=1&key=2#part",
            "https://mcp.example/mcp",
            "https://mcp.example/.well-known/oauth-protected-resource/mcp",
        ),
        (
            "https://[::1]:9/x/",
            "https://[::1]:9/x/",
            "https://[::1]:9/.well-known/oauth-protected-resource/x",
        ),
    ] {
        let id: ResourceIdentifier = url.parse().unwrap();
        assert_eq!(id.as_str(), identifier, "{url}");
        assert_eq!(id.to_string(), identifier, "{url}");
        assert_eq!(id.well_known_url().as_str(), well_known, "{url}");
    }
}

#[test]
fn an_identifier_must_be_https_or_loopback_http_without_credentials() {
    for url in [
        "http://mcp.example/mcp",
        "http://10.0.0.1/mcp",
        "ftp://mcp.example/",
    ] {
        match ResourceIdentifier::new(url) {
            Err(Error::Transport(t)) => assert_eq!(t.kind, TransportErrorKind::InsecureUrl),
            other => panic!("{url}: {other:?}"),
        }
    }
    for url in [
        "not a url",
        "",
        "/mcp",
        "https://user:pw@mcp.example/mcp",
        "https://user@mcp.example/",
    ] {
        let err = ResourceIdentifier::new(url).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{url}: {err:?}");
        assert!(!err.to_string().contains("pw@"), "{err}");
    }
    assert!(ResourceIdentifier::new("http://localhost:8080/mcp").is_ok());
}

#[tokio::test]
async fn a_good_document_is_returned_typed_with_unknown_members_kept() {
    let server = MockServer::start().await;
    let (mcp, at) = local_mcp(&server);
    let document = json!({
        "resource": mcp.as_str(),
        "authorization_servers": ["https://idp.example", "https://idp.example/tenant", "http://127.0.0.1:9"],
        "scopes_supported": ["mcp:read", "mcp:write"],
        "bearer_methods_supported": ["header"],
        "resource_signing_alg_values_supported": ["ES256"],
        "resource_name": "Tools",
        "resource_documentation": "https://docs.mcp.example/",
        "dpop_signing_alg_values_supported": ["ES256", "EdDSA"],
        "dpop_bound_access_tokens_required": true,
        "tls_client_certificate_bound_access_tokens": true,
        "jwks_uri": "https://mcp.example/jwks",
        "resource_policy_uri": "https://mcp.example/policy",
        "resource_name#fr": "Outils",
    });
    // No credential of the client goes to a resource's metadata.
    Mock::given(method("GET"))
        .and(path(at.as_str()))
        .and(wiremock::matchers::header("accept", "application/json"))
        .respond_with(json_reply(document.clone()))
        .expect(1)
        .mount(&server)
        .await;

    let m = resource::fetch(&client(), &mcp).await.unwrap();
    assert_eq!(m.resource, mcp.as_str());
    assert_eq!(
        m.authorization_servers.as_deref().unwrap(),
        [
            "https://idp.example",
            "https://idp.example/tenant",
            "http://127.0.0.1:9"
        ],
        "issuers are kept byte for byte, for the issuer check that follows"
    );
    assert_eq!(m.scopes_supported.unwrap(), ["mcp:read", "mcp:write"]);
    assert_eq!(m.bearer_methods_supported.unwrap(), ["header"]);
    assert_eq!(m.resource_signing_alg_values_supported.unwrap(), ["ES256"]);
    assert_eq!(m.resource_name.as_deref(), Some("Tools"));
    assert_eq!(
        m.resource_documentation.unwrap().as_str(),
        "https://docs.mcp.example/"
    );
    assert_eq!(
        m.dpop_signing_alg_values_supported.unwrap(),
        ["ES256", "EdDSA"]
    );
    assert!(m.dpop_bound_access_tokens_required);
    assert!(m.tls_client_certificate_bound_access_tokens);
    assert_eq!(m.jwks_uri.unwrap().as_str(), "https://mcp.example/jwks");
    assert_eq!(m.extra["resource_policy_uri"], "https://mcp.example/policy");
    assert_eq!(m.extra["resource_name#fr"], "Outils");

    for request in server.received_requests().await.unwrap() {
        assert!(request.headers.get("authorization").is_none());
        assert!(
            !request.url.as_str().contains(QUERY_SECRET),
            "{}",
            request.url
        );
    }
}

#[tokio::test]
async fn a_minimal_document_defaults_and_round_trips_through_serde() {
    let server = MockServer::start().await;
    let (mcp, at) = local_mcp(&server);
    serve(
        &server,
        &at,
        json_reply(json!({"resource": mcp.as_str()})),
        1,
    )
    .await;
    let m = resource::fetch(&client(), &mcp).await.unwrap();
    assert_eq!(m.authorization_servers, None);
    assert_eq!(m.scopes_supported, None);
    assert!(!m.dpop_bound_access_tokens_required);
    assert!(!m.tls_client_certificate_bound_access_tokens);
    assert!(m.extra.is_empty());

    let full = json!({
        "resource": "https://mcp.example/mcp",
        "authorization_servers": ["https://idp.example"],
        "jwks_uri": "https://mcp.example/jwks",
        "scopes_supported": ["a"],
        "dpop_bound_access_tokens_required": true,
        "tls_client_certificate_bound_access_tokens": false,
        "custom": {"x": 1},
    });
    let parsed: ProtectedResourceMetadata = serde_json::from_value(full).unwrap();
    let again: ProtectedResourceMetadata =
        serde_json::from_value(serde_json::to_value(&parsed).unwrap()).unwrap();
    assert_eq!(parsed, again);
}

#[tokio::test]
async fn remote_resources_are_looked_up_at_their_well_known_url_with_ports_and_paths() {
    let server = MockServer::start().await;
    let client = remote_client(&server);
    for (url, at, says) in [
        (
            "https://mcp.example:8443/tools/",
            "/mcp.example:8443/.well-known/oauth-protected-resource/tools",
            "https://mcp.example:8443/tools/",
        ),
        (
            "https://api.example/v1/mcp",
            "/api.example/.well-known/oauth-protected-resource/v1/mcp",
            "https://api.example/v1/mcp",
        ),
        // A root resource may name itself with or without its `/`.
        (
            "https://root.example",
            "/root.example/.well-known/oauth-protected-resource",
            "https://root.example",
        ),
        (
            "https://slash.example/",
            "/slash.example/.well-known/oauth-protected-resource",
            "https://slash.example/",
        ),
    ] {
        let body = json!({"resource": says, "authorization_servers": ["https://idp.example"]});
        serve(&server, at, json_reply(body), 1).await;
        let id = ResourceIdentifier::new(url).unwrap();
        let m = resource::fetch(&client, &id).await.unwrap();
        assert_eq!(m.resource, says, "{url}");
    }
}

#[tokio::test]
async fn a_document_for_another_resource_is_refused_naming_both() {
    let server = MockServer::start().await;
    let client = remote_client(&server);
    let cases = [
        ("https://mcp.example/mcp", "https://evil.example/mcp"),
        ("https://mcp.example/mcp", "https://mcp.example/other"),
        ("https://mcp.example/mcp", "https://mcp.example/mcp/"),
        ("https://mcp.example/mcp/", "https://mcp.example/mcp"),
        ("https://mcp.example/mcp", "https://MCP.example/mcp"),
        ("https://mcp.example/mcp", "https://mcp.example:443/mcp"),
        ("https://mcp.example/mcp", "http://mcp.example/mcp"),
        ("https://mcp.example/mcp", "https://mcp.example/mcp?x=1"),
        ("https://mcp.example/mcp", "https://mcp.example/mcp#f"),
        ("https://mcp.example/mcp", "https://mcp.example"),
        ("https://mcp.example/mcp", ""),
        ("https://mcp.example/", "https://mcp.example//"),
        ("https://mcp.example:8443/", "https://mcp.example/"),
    ];
    for (url, says) in cases {
        let id = ResourceIdentifier::new(url).unwrap();
        let at = format!("/{}{}", id.as_url().authority(), id.well_known_url().path());
        serve(&server, &at, json_reply(json!({"resource": says})), 1).await;
        match resource::fetch(&client, &id).await {
            Err(err @ Error::ResourceMismatch { .. }) => {
                assert_eq!(err.action(), Action::FixConfiguration);
                let text = err.to_string();
                assert!(text.contains(id.as_str()), "{text}");
                assert!(text.contains(&format!("{says:?}")), "{text}");
                let Error::ResourceMismatch { expected, found } = err else {
                    unreachable!()
                };
                assert_eq!((expected.as_str(), found.as_str()), (id.as_str(), says));
            }
            other => panic!("{url} vs {says}: {other:?}"),
        }
        server.reset().await;
    }
}

#[tokio::test]
async fn a_missing_or_non_string_resource_is_refused() {
    for body in [
        json!({}),
        json!({"resource": null}),
        json!({"resource": 42}),
        json!({"resource": ["https://mcp.example/mcp"]}),
        json!({"authorization_servers": ["https://idp.example"]}),
    ] {
        let err = fetch_local(json_reply(body.clone())).await.unwrap_err();
        assert!(
            matches!(err, Error::UnexpectedResponse(_)),
            "{body}: {err:?}"
        );
    }
}

#[tokio::test]
async fn hostile_resource_text_is_shortened_and_cleaned_in_the_error() {
    let long = format!(
        "https://evil.example/{}\u{1b}[2J\r\nX-Injected: 1",
        "a".repeat(5000)
    );
    let err = fetch_local(json_reply(json!({ "resource": long })))
        .await
        .unwrap_err();
    let Error::ResourceMismatch { found, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(found.len() < 1000, "{}", found.len());
    assert!(!found.chars().any(char::is_control), "{found:?}");
    assert_clean(&err);
}

#[tokio::test]
async fn authorization_servers_must_be_https_issuers() {
    let server = MockServer::start().await;
    let (mcp, at) = local_mcp(&server);
    let insecure = [
        "http://idp.example",
        "http://10.0.0.7:8080/realms/a",
        "ftp://idp.example",
    ];
    for issuer in insecure {
        let body = json!({"resource": mcp.as_str(), "authorization_servers": ["https://ok.example", issuer]});
        serve(&server, &at, json_reply(body), 1).await;
        match resource::fetch(&client(), &mcp).await {
            Err(Error::Transport(t)) => assert_eq!(t.kind, TransportErrorKind::InsecureUrl),
            other => panic!("{issuer}: {other:?}"),
        }
        server.reset().await;
    }
    for issuer in [
        json!("not a url"),
        json!("https://idp.example/?tenant=a"),
        json!("https://idp.example/#f"),
        json!("https://user:pw@idp.example"),
        json!(""),
    ] {
        let body = json!({"resource": mcp.as_str(), "authorization_servers": [issuer]});
        serve(&server, &at, json_reply(body), 1).await;
        match resource::fetch(&client(), &mcp).await {
            Err(err @ Error::UnexpectedResponse(_)) => {
                assert!(
                    err.to_string().contains("authorization_servers[0]"),
                    "{err}"
                );
            }
            other => panic!("{issuer}: {other:?}"),
        }
        server.reset().await;
    }
    for body in [
        json!({"resource": mcp.as_str(), "authorization_servers": "https://idp.example"}),
        json!({"resource": mcp.as_str(), "authorization_servers": [1]}),
    ] {
        serve(&server, &at, json_reply(body.clone()), 1).await;
        let err = resource::fetch(&client(), &mcp).await.unwrap_err();
        assert!(
            matches!(err, Error::UnexpectedResponse(_)),
            "{body}: {err:?}"
        );
        server.reset().await;
    }
}

#[tokio::test]
async fn a_remote_resource_may_not_name_loopback_http_servers() {
    let server = MockServer::start().await;
    let client = remote_client(&server);
    let id = ResourceIdentifier::new("https://mcp.example/mcp").unwrap();
    let at = "/mcp.example/.well-known/oauth-protected-resource/mcp";
    for body in [
        json!({"resource": id.as_str(), "authorization_servers": ["http://127.0.0.1:8080"]}),
        json!({"resource": id.as_str(), "authorization_servers": ["http://localhost"]}),
        json!({"resource": id.as_str(), "jwks_uri": "http://127.0.0.1/jwks"}),
        json!({"resource": id.as_str(), "jwks_uri": "http://keys.example/jwks"}),
    ] {
        serve(&server, at, json_reply(body.clone()), 1).await;
        match resource::fetch(&client, &id).await {
            Err(Error::Transport(t)) => assert_eq!(t.kind, TransportErrorKind::InsecureUrl),
            other => panic!("{body}: {other:?}"),
        }
        server.reset().await;
    }
}

#[tokio::test]
async fn bodies_that_are_not_a_json_object_are_refused_without_panicking() {
    let bodies: Vec<(&str, ResponseTemplate)> = vec![
        ("array", json_reply(json!([{"resource": "x"}]))),
        ("string", json_reply(json!("https://mcp.example"))),
        ("null", json_reply(Value::Null)),
        ("number", json_reply(json!(1))),
        ("empty", ResponseTemplate::new(200)),
        (
            "html",
            ResponseTemplate::new(200).set_body_raw("<html>hello</html>", "text/html"),
        ),
        (
            "truncated",
            ResponseTemplate::new(200).set_body_raw("{\"resource\": \"ht", "application/json"),
        ),
        (
            "not utf-8",
            ResponseTemplate::new(200).set_body_raw(vec![0xff, 0xfe, 0x7b], "application/json"),
        ),
        (
            "form",
            ResponseTemplate::new(200).set_body_raw(
                "resource=x&access_token=y",
                "application/x-www-form-urlencoded",
            ),
        ),
        (
            "deep",
            ResponseTemplate::new(200).set_body_raw("[".repeat(100_000), "application/json"),
        ),
        (
            "wrong member type",
            ResponseTemplate::new(200).set_body_raw(
                r#"{"resource":"RES","scopes_supported":"a b"}"#,
                "application/json",
            ),
        ),
        (
            "bad url member",
            ResponseTemplate::new(200).set_body_raw(
                r#"{"resource":"RES","resource_documentation":"::"}"#,
                "application/json",
            ),
        ),
    ];
    for (what, body) in bodies {
        let server = MockServer::start().await;
        let (mcp, at) = local_mcp(&server);
        // Members that must parse get the right resource, so only their own problem is seen.
        let body = match what {
            "wrong member type" | "bad url member" => {
                let raw = match what {
                    "wrong member type" => r#"{"resource":"RES","scopes_supported":"a b"}"#,
                    _ => r#"{"resource":"RES","resource_documentation":"::"}"#,
                };
                ResponseTemplate::new(200)
                    .set_body_raw(raw.replace("RES", mcp.as_str()), "application/json")
            }
            _ => body,
        };
        serve(&server, &at, body, 1).await;
        let err = resource::fetch(&client(), &mcp).await.unwrap_err();
        assert!(
            matches!(err, Error::UnexpectedResponse(_)),
            "{what}: {err:?}"
        );
        assert_clean(&err);
    }
}

#[tokio::test]
async fn error_statuses_are_refused_and_say_what_the_server_said() {
    let err = fetch_local(ResponseTemplate::new(404)).await.unwrap_err();
    match &err {
        Error::UnexpectedResponse(e) => assert_eq!(e.status.map(|s| s.as_u16()), Some(404)),
        other => panic!("{other:?}"),
    }
    let err = fetch_local(ResponseTemplate::new(503)).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    let err =
        fetch_local(ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_request"})))
            .await
            .unwrap_err();
    assert!(matches!(err, Error::Server(_)), "{err:?}");
}

#[tokio::test]
async fn a_huge_document_is_refused_at_the_clients_cap() {
    let server = MockServer::start().await;
    let (mcp, at) = local_mcp(&server);
    let padding = "x".repeat(2 * 1024 * 1024);
    let body = json!({"resource": mcp.as_str(), "resource_name": padding});
    serve(&server, &at, json_reply(body.clone()), 2).await;

    for client in [
        client(),
        OAuthClient::builder("client")
            .max_response_body(16 * 1024)
            .build()
            .unwrap(),
    ] {
        match resource::fetch(&client, &mcp).await {
            Err(Error::Transport(t)) => {
                assert_eq!(t.kind, TransportErrorKind::BodyTooLarge);
                assert_eq!(t.endpoint, Some(Endpoint::ResourceMetadata));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn redirects_are_refused_and_never_followed() {
    for status in [301, 302, 303, 307, 308] {
        let server = MockServer::start().await;
        let (mcp, at) = local_mcp(&server);
        let target = format!("{}/elsewhere", server.uri());
        serve(
            &server,
            &at,
            ResponseTemplate::new(status).insert_header("location", target.as_str()),
            1,
        )
        .await;
        serve(
            &server,
            "/elsewhere",
            json_reply(json!({"resource": mcp.as_str()})),
            0,
        )
        .await;
        match resource::fetch(&client(), &mcp).await {
            Err(Error::Transport(t)) => {
                assert_eq!(t.kind, TransportErrorKind::Redirect, "{status}");
                assert_eq!(t.endpoint, Some(Endpoint::ResourceMetadata));
            }
            other => panic!("{status}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_challenges_metadata_url_is_fetched_and_checked_the_same_way() {
    let resource_server = MockServer::start().await;
    let metadata_server = MockServer::start().await; // another origin: RFC 9728 allows it
    let mcp = ResourceIdentifier::new(format!("{}/mcp", resource_server.uri())).unwrap();
    let header = format!(
        r#"Bearer error="invalid_token", resource_metadata="{}/meta/mcp?v=2""#,
        metadata_server.uri()
    );
    let challenges = Challenges::from_value(&header);
    let url = challenges[0].resource_metadata().unwrap();

    serve(
        &metadata_server,
        "/meta/mcp",
        json_reply(
            json!({"resource": mcp.as_str(), "authorization_servers": ["https://idp.example"]}),
        ),
        1,
    )
    .await;
    let m = resource::fetch_from(&client(), &mcp, url).await.unwrap();
    assert_eq!(m.authorization_servers.unwrap(), ["https://idp.example"]);
    assert!(
        resource_server
            .received_requests()
            .await
            .unwrap()
            .is_empty()
    );

    // The same check as at the well-known URL: a document for another resource is refused.
    metadata_server.reset().await;
    serve(
        &metadata_server,
        "/meta/mcp",
        json_reply(json!({"resource": format!("{}/other", resource_server.uri())})),
        1,
    )
    .await;
    let err = resource::fetch_from(&client(), &mcp, url)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ResourceMismatch { .. }), "{err:?}");
}

#[tokio::test]
async fn a_challenges_metadata_url_must_be_https_or_loopback_for_a_loopback_resource() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    let local = ResourceIdentifier::new(format!("{}/mcp", server.uri())).unwrap();
    let remote = ResourceIdentifier::new("https://mcp.example/mcp").unwrap();
    let loopback_metadata = format!("{}/meta", server.uri());
    for (resource, url) in [
        (&local, "http://metadata.example/meta"),
        (&remote, "http://metadata.example/meta"),
        (&remote, "http://10.1.2.3/meta"),
        (&remote, loopback_metadata.as_str()),
        (&remote, "ftp://metadata.example/meta"),
    ] {
        match resource::fetch_from(&client(), resource, url).await {
            Err(Error::Transport(t)) => {
                assert_eq!(t.kind, TransportErrorKind::InsecureUrl, "{url}")
            }
            other => panic!("{url}: {other:?}"),
        }
    }
    for url in ["", "not a url", "https://user:pw@metadata.example/meta"] {
        let err = resource::fetch_from(&client(), &remote, url)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{url}: {err:?}");
        assert!(!err.to_string().contains("pw@"), "{err}");
    }
}

#[tokio::test]
async fn errors_never_show_the_client_secret_or_the_resource_query() {
    let server = MockServer::start().await;
    let (mcp, at) = local_mcp(&server);
    let echo = json!({"resource": format!("https://evil.example/{SECRET}")});
    serve(&server, &at, json_reply(echo), 1).await;
    let err = resource::fetch(&client(), &mcp).await.unwrap_err();
    assert!(matches!(err, Error::ResourceMismatch { .. }), "{err:?}");
    // The server chose to echo the secret back into its own `resource`; what the crate adds
    // (the expected identifier, its own words) never carries it, nor the query credential.
    let Error::ResourceMismatch { expected, .. } = &err else {
        unreachable!()
    };
    assert!(!expected.contains(SECRET) && !expected.contains(QUERY_SECRET));
    assert!(!format!("{mcp:?}").contains(QUERY_SECRET));

    let unreachable =
        ResourceIdentifier::new(format!("http://127.0.0.1:9/mcp?key={QUERY_SECRET}")).unwrap();
    let err = resource::fetch(&client(), &unreachable).await.unwrap_err();
    match &err {
        Error::Transport(t) => {
            assert_eq!(t.endpoint, Some(Endpoint::ResourceMetadata));
            assert!(
                err.to_string()
                    .starts_with("protected resource metadata (http://127.0.0.1:9)"),
                "{err}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_clean(&err);
    let err = resource::fetch_from(
        &client(),
        &unreachable,
        &format!("http://127.0.0.1:9/meta?key={QUERY_SECRET}"),
    )
    .await
    .unwrap_err();
    assert_clean(&err);
}
