//! Discovery (RFC 8414, OpenID Connect Discovery) through the public API: where the document is
//! looked for, what makes it trusted (SECURITY.md rules 12–14), and what a discovered client
//! does with it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use oauth_layer::discovery::{self, metadata_urls};
use oauth_layer::flow::auth_code::Callback;
use oauth_layer::flow::{AuthCode, ClientCredentials};
use oauth_layer::{
    AuthMethod, Error, OAuthClient, OAuthClientBuilder, TokenSource, TransportErrorKind,
};
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, header_exists, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const OIDC: &str = "/.well-known/openid-configuration";
const OAUTH: &str = "/.well-known/oauth-authorization-server";
const REDIRECT: &str = "http://127.0.0.1:8765/callback";

/// A full metadata document for `issuer`, whose endpoints live on `server`.
fn document(server: &MockServer, issuer: &str) -> Value {
    let base = server.uri();
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "device_authorization_endpoint": format!("{base}/device"),
        "revocation_endpoint": format!("{base}/revoke"),
        "introspection_endpoint": format!("{base}/introspect"),
        "userinfo_endpoint": format!("{base}/userinfo"),
        "jwks_uri": format!("{base}/jwks"),
        "end_session_endpoint": format!("{base}/logout"),
        "scopes_supported": ["openid", "api:read"],
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": ["sub", "email"],
    })
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

/// A token endpoint that must see `times` requests.
async fn token_endpoint(server: &MockServer, times: u64) {
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "discovered-token",
            "token_type": "Bearer",
            "expires_in": 3600,
        })))
        .expect(times)
        .named("token endpoint")
        .mount(server)
        .await;
}

fn client() -> OAuthClientBuilder {
    OAuthClient::builder("client").secret("client-secret")
}

/// Discovers, with `client`, a server whose OIDC document (its issuer: the server itself) is
/// [`document`] changed by `edit`.
async fn discovered(
    client: OAuthClientBuilder,
    edit: impl FnOnce(&mut Value),
) -> (MockServer, oauth_layer::Result<OAuthClient>) {
    let server = MockServer::start().await;
    let mut doc = document(&server, &server.uri());
    edit(&mut doc);
    serve(
        &server,
        OIDC,
        ResponseTemplate::new(200).set_body_json(doc),
        1,
    )
    .await;
    let result = discovery::configure(client, server.uri()).await;
    (server, result)
}

fn assert_transport(err: Error, kind: TransportErrorKind) {
    match err {
        Error::Transport(e) => assert_eq!(e.kind, kind, "{e}"),
        other => panic!("expected a transport error of kind {kind:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn discovered_client_has_every_endpoint_and_gets_tokens() {
    let server = MockServer::start().await;
    let issuer = server.uri();
    serve(
        &server,
        OIDC,
        ResponseTemplate::new(200).set_body_json(document(&server, &issuer)),
        1,
    )
    .await;
    serve(&server, OAUTH, ResponseTemplate::new(200), 0).await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(header_exists("authorization"))
        .and(body_string_contains("grant_type=client_credentials"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "discovered-token",
            "token_type": "Bearer",
            "expires_in": 3600,
        })))
        .expect(1)
        .mount(&server)
        .await;

    let client = discovery::configure(client(), &issuer).await.unwrap();

    let url = |p: &str| format!("{issuer}{p}");
    assert_eq!(client.issuer(), Some(issuer.as_str()));
    assert_eq!(client.token_url().unwrap().as_str(), url("/token"));
    assert_eq!(
        client.authorization_url().unwrap().as_str(),
        url("/authorize")
    );
    assert_eq!(
        client.device_authorization_url().unwrap().as_str(),
        url("/device")
    );
    assert_eq!(client.revocation_url().unwrap().as_str(), url("/revoke"));
    assert_eq!(
        client.introspection_url().unwrap().as_str(),
        url("/introspect")
    );
    let metadata = client.metadata().unwrap();
    assert_eq!(metadata.issuer, issuer);
    assert_eq!(metadata.jwks_uri.as_ref().unwrap().as_str(), url("/jwks"));
    assert_eq!(
        metadata.userinfo_endpoint.as_ref().unwrap().as_str(),
        url("/userinfo")
    );
    assert_eq!(
        metadata.code_challenge_methods_supported.as_deref(),
        Some(&["S256".to_owned()][..])
    );
    assert!(!metadata.authorization_response_iss_parameter_supported);
    assert_eq!(metadata.extra["claims_supported"], json!(["sub", "email"]));

    let tokens = TokenSource::new(client, ClientCredentials::new());
    let token = tokens.token().await.unwrap();
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(token.access_token()),
        "discovered-token"
    );
}

#[tokio::test]
async fn discover_alone_returns_the_checked_document() {
    let server = MockServer::start().await;
    let issuer = server.uri();
    serve(
        &server,
        OIDC,
        ResponseTemplate::new(200).set_body_json(document(&server, &issuer)),
        1,
    )
    .await;
    let client = client().build().unwrap();

    let metadata = discovery::discover(&client, &issuer).await.unwrap();

    assert_eq!(metadata.issuer, issuer);
    assert!(metadata.token_endpoint.is_some());
    assert!(client.metadata().is_none());
    assert!(client.token_url().is_none());
}

#[tokio::test]
async fn issuer_with_a_path_appends_the_openid_configuration() {
    let server = MockServer::start().await;
    let issuer = format!("{}/tenant/a", server.uri());
    serve(
        &server,
        "/tenant/a/.well-known/openid-configuration",
        ResponseTemplate::new(200).set_body_json(document(&server, &issuer)),
        1,
    )
    .await;
    serve(
        &server,
        "/.well-known/oauth-authorization-server/tenant/a",
        ResponseTemplate::new(200),
        0,
    )
    .await;

    let client = discovery::configure(client(), &issuer).await.unwrap();

    assert_eq!(client.issuer(), Some(issuer.as_str()));
}

#[tokio::test]
async fn issuer_with_a_path_inserts_the_rfc8414_well_known_segment() {
    let server = MockServer::start().await;
    let issuer = format!("{}/tenant/a", server.uri());
    serve(
        &server,
        "/tenant/a/.well-known/openid-configuration",
        ResponseTemplate::new(404),
        1,
    )
    .await;
    serve(
        &server,
        "/.well-known/oauth-authorization-server/tenant/a",
        ResponseTemplate::new(200).set_body_json(document(&server, &issuer)),
        1,
    )
    .await;

    let client = discovery::configure(client(), &issuer).await.unwrap();

    assert_eq!(client.metadata().unwrap().issuer, issuer);
}

#[tokio::test]
async fn not_found_at_the_oidc_url_falls_back_to_rfc8414() {
    let server = MockServer::start().await;
    let issuer = server.uri();
    serve(&server, OIDC, ResponseTemplate::new(404), 1).await;
    serve(
        &server,
        OAUTH,
        ResponseTemplate::new(200).set_body_json(document(&server, &issuer)),
        1,
    )
    .await;

    let client = discovery::configure(client(), &issuer).await.unwrap();

    assert!(client.token_url().is_some());
}

#[tokio::test]
async fn not_found_at_both_urls_is_an_unexpected_response() {
    let server = MockServer::start().await;
    serve(&server, OIDC, ResponseTemplate::new(404), 1).await;
    serve(&server, OAUTH, ResponseTemplate::new(404), 1).await;

    let err = discovery::configure(client(), server.uri())
        .await
        .unwrap_err();

    match err {
        Error::UnexpectedResponse(e) => assert_eq!(e.status.unwrap().as_u16(), 404),
        other => panic!("expected UnexpectedResponse, got {other:?}"),
    }
}

#[tokio::test]
async fn other_errors_at_the_oidc_url_do_not_fall_back() {
    let server = MockServer::start().await;
    serve(&server, OIDC, ResponseTemplate::new(500), 1).await;
    serve(&server, OAUTH, ResponseTemplate::new(200), 0).await;

    let err = discovery::configure(client(), server.uri())
        .await
        .unwrap_err();

    assert!(matches!(err, Error::UnexpectedResponse(_)), "{err:?}");
    assert!(err.is_transient());
}

#[tokio::test]
async fn issuer_mismatch_is_refused_before_any_token_request() {
    let server = MockServer::start().await;
    let doc = document(&server, "https://evil.example");
    serve(
        &server,
        OIDC,
        ResponseTemplate::new(200).set_body_json(doc),
        1,
    )
    .await;
    token_endpoint(&server, 0).await;

    let err = discovery::configure(client(), server.uri())
        .await
        .unwrap_err();

    match err {
        Error::IssuerMismatch { expected, found } => {
            assert_eq!(expected, server.uri());
            assert_eq!(found, "https://evil.example");
        }
        other => panic!("expected IssuerMismatch, got {other:?}"),
    }
}

#[tokio::test]
async fn a_trailing_slash_difference_is_an_issuer_mismatch() {
    let server = MockServer::start().await;
    let with_slash = format!("{}/", server.uri());
    serve(
        &server,
        OIDC,
        ResponseTemplate::new(200).set_body_json(document(&server, &with_slash)),
        2,
    )
    .await;

    let err = discovery::configure(client(), server.uri())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::IssuerMismatch { .. }), "{err:?}");

    // The same document is accepted for the issuer it names (same well-known URL).
    let client = discovery::configure(client(), &with_slash).await.unwrap();
    assert_eq!(client.issuer(), Some(with_slash.as_str()));
}

#[tokio::test]
async fn a_plain_http_endpoint_to_a_remote_host_is_refused() {
    for member in ["token_endpoint", "jwks_uri", "end_session_endpoint"] {
        let server = MockServer::start().await;
        let mut doc = document(&server, &server.uri());
        doc[member] = json!("http://remote.example/somewhere");
        serve(
            &server,
            OIDC,
            ResponseTemplate::new(200).set_body_json(doc),
            1,
        )
        .await;
        token_endpoint(&server, 0).await;

        let err = discovery::configure(client(), server.uri())
            .await
            .unwrap_err();

        assert!(err.to_string().contains(member), "{member}: {err}");
        assert_transport(err, TransportErrorKind::InsecureUrl);
    }
}

/// Routes `https://idp.example/...` to a local server, as if it were a remote https issuer.
#[derive(Debug)]
struct RemoteIssuer(String);

#[async_trait::async_trait]
impl oauth_layer::transport::HttpTransport for RemoteIssuer {
    async fn send(
        &self,
        mut request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<oauth_layer::transport::ResponseBody>, oauth_layer::TransportError>
    {
        let uri = request.uri();
        assert_eq!(
            uri.host(),
            Some("idp.example"),
            "only the issuer is contacted"
        );
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        *request.uri_mut() = format!("{}{path}", self.0).parse().unwrap();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        oauth_layer::transport::HttpTransport::send(&client, request).await
    }
}

#[tokio::test]
async fn a_remote_issuer_naming_a_local_plain_http_endpoint_is_refused() {
    // Whatever listens on this machine's loopback must never receive the client secret because
    // a remote issuer's document says so.
    let local = MockServer::start().await;
    token_endpoint(&local, 0).await;
    let server = MockServer::start().await;
    let mut doc = document(&server, "https://idp.example");
    for member in ["authorization_endpoint", "jwks_uri"] {
        doc[member] = json!(format!("https://idp.example/{member}"));
    }
    doc["token_endpoint"] = json!(format!("{}/token", local.uri()));
    doc["revocation_endpoint"] = json!("https://idp.example/revoke");
    doc["introspection_endpoint"] = json!("https://idp.example/introspect");
    doc["device_authorization_endpoint"] = json!("https://idp.example/device");
    doc["userinfo_endpoint"] = json!("https://idp.example/userinfo");
    doc["end_session_endpoint"] = json!("https://idp.example/logout");
    serve(
        &server,
        OIDC,
        ResponseTemplate::new(200).set_body_json(doc),
        1,
    )
    .await;

    let err = discovery::configure(
        client().transport(RemoteIssuer(server.uri())),
        "https://idp.example",
    )
    .await
    .unwrap_err();

    assert!(err.to_string().contains("token_endpoint"), "{err}");
    assert!(err.to_string().contains("loopback issuer"), "{err}");
    assert_transport(err, TransportErrorKind::InsecureUrl);
}

#[tokio::test]
async fn a_redirect_on_the_metadata_url_is_an_error_and_not_followed() {
    let server = MockServer::start().await;
    let target = format!("{}/elsewhere", server.uri());
    serve(
        &server,
        OIDC,
        ResponseTemplate::new(307).insert_header("location", target.as_str()),
        1,
    )
    .await;
    serve(
        &server,
        "/elsewhere",
        ResponseTemplate::new(200).set_body_json(document(&server, &server.uri())),
        0,
    )
    .await;
    serve(&server, OAUTH, ResponseTemplate::new(200), 0).await;

    let err = discovery::configure(client(), server.uri())
        .await
        .unwrap_err();

    assert_transport(err, TransportErrorKind::Redirect);
}

#[tokio::test]
async fn a_body_that_is_not_a_json_object_is_an_unexpected_response() {
    let bodies = [
        ResponseTemplate::new(200).set_body_string("<html>sign in</html>"),
        ResponseTemplate::new(200).set_body_json(json!(["issuer"])),
        ResponseTemplate::new(200).set_body_json(json!({"token_endpoint": "x"})),
        ResponseTemplate::new(200).set_body_json(json!({"issuer": 7})),
    ];
    for body in bodies {
        let server = MockServer::start().await;
        serve(&server, OIDC, body, 1).await;
        serve(&server, OAUTH, ResponseTemplate::new(200), 0).await;

        let err = discovery::configure(client(), server.uri())
            .await
            .unwrap_err();

        assert!(matches!(err, Error::UnexpectedResponse(_)), "{err:?}");
    }
}

#[tokio::test]
async fn a_huge_metadata_body_is_refused() {
    let server = MockServer::start().await;
    let mut doc = document(&server, &server.uri());
    doc["padding"] = json!("x".repeat(2 * 1024 * 1024));
    serve(
        &server,
        OIDC,
        ResponseTemplate::new(200).set_body_json(doc),
        1,
    )
    .await;
    serve(&server, OAUTH, ResponseTemplate::new(200), 0).await;

    let err = discovery::configure(client(), server.uri())
        .await
        .unwrap_err();

    assert_transport(err, TransportErrorKind::BodyTooLarge);
}

/// The method a client ends up with after discovering a server that lists `listed`.
async fn method_after_discovery(client: OAuthClientBuilder, listed: Option<&[&str]>) -> AuthMethod {
    let (_server, client) = discovered(client, |doc| {
        if let Some(listed) = listed {
            doc["token_endpoint_auth_methods_supported"] = json!(listed);
        }
    })
    .await;
    client.unwrap().auth_method()
}

#[tokio::test]
async fn auth_method_is_basic_when_the_server_lists_it() {
    let listed = ["client_secret_post", "client_secret_basic"];
    let method = method_after_discovery(client(), Some(&listed)).await;
    assert_eq!(method, AuthMethod::ClientSecretBasic);
}

#[tokio::test]
async fn auth_method_is_post_when_the_server_lists_only_post() {
    let listed = ["client_secret_post", "private_key_jwt"];
    let method = method_after_discovery(client(), Some(&listed)).await;
    assert_eq!(method, AuthMethod::ClientSecretPost);
}

#[tokio::test]
async fn auth_method_is_basic_when_the_server_lists_nothing() {
    let method = method_after_discovery(client(), None).await;
    assert_eq!(method, AuthMethod::ClientSecretBasic);
}

#[tokio::test]
async fn auth_method_is_none_without_a_secret() {
    let listed = ["client_secret_basic", "none"];
    let method = method_after_discovery(OAuthClient::builder("public"), Some(&listed)).await;
    assert_eq!(method, AuthMethod::None);
}

#[tokio::test]
async fn an_explicit_auth_method_and_endpoint_win() {
    let explicit = client()
        .auth_method(AuthMethod::ClientSecretPost)
        .token_url("https://explicit.example/token");

    let (server, client) = discovered(explicit, |doc| {
        doc["token_endpoint_auth_methods_supported"] = json!(["client_secret_basic"]);
    })
    .await;
    let client = client.unwrap();

    assert_eq!(client.auth_method(), AuthMethod::ClientSecretPost);
    assert_eq!(
        client.token_url().unwrap().as_str(),
        "https://explicit.example/token"
    );
    assert_eq!(
        client.authorization_url().unwrap().as_str(),
        format!("{}/authorize", server.uri())
    );
}

#[tokio::test]
async fn the_chosen_post_method_is_what_the_token_request_uses() {
    let server = MockServer::start().await;
    let mut doc = document(&server, &server.uri());
    doc["token_endpoint_auth_methods_supported"] = json!(["client_secret_post"]);
    serve(
        &server,
        OIDC,
        ResponseTemplate::new(200).set_body_json(doc),
        1,
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("client_secret=client-secret"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "posted",
            "token_type": "Bearer",
        })))
        .expect(1)
        .mount(&server)
        .await;

    let client = discovery::configure(client(), server.uri()).await.unwrap();
    let tokens = TokenSource::new(client, ClientCredentials::new());

    tokens.token().await.unwrap();
}

#[tokio::test]
async fn a_client_configured_for_another_issuer_is_refused() {
    let server = MockServer::start().await;
    serve(&server, OIDC, ResponseTemplate::new(200), 0).await;

    let err = discovery::configure(client().issuer("https://other.example"), server.uri())
        .await
        .unwrap_err();

    assert!(matches!(err, Error::Config(_)), "{err:?}");
}

#[tokio::test]
async fn metadata_is_fetched_once_and_shared_by_clones() {
    let server = MockServer::start().await;
    let doc = document(&server, &server.uri());
    serve(
        &server,
        OIDC,
        ResponseTemplate::new(200).set_body_json(doc),
        1,
    )
    .await;
    token_endpoint(&server, 3).await;

    let client = discovery::configure(client(), server.uri()).await.unwrap();
    let original = client.metadata().unwrap();
    for _ in 0..3 {
        let clone = client.clone();
        assert!(std::ptr::eq(clone.metadata().unwrap(), original));
        let tokens = TokenSource::new(clone, ClientCredentials::new());
        tokens.token().await.unwrap();
    }
    // The MockServer checks `.expect(1)` on the metadata URL when it drops.
}

#[tokio::test]
async fn a_promised_iss_parameter_is_required_on_the_callback() {
    let (server, client) = discovered(client(), |doc| {
        doc["authorization_response_iss_parameter_supported"] = json!(true);
    })
    .await;
    let client = client.unwrap();
    let flow = AuthCode::new();

    let request = flow.authorization_request(&client, REDIRECT).unwrap();
    let without_iss = Callback::from_pairs([("state", request.state()), ("code", "c0de")]);
    let err = request.check(&without_iss).unwrap_err();
    assert!(matches!(err, Error::MalformedCallback(_)), "{err:?}");

    let request = flow.authorization_request(&client, REDIRECT).unwrap();
    let issuer = server.uri();
    let with_iss = Callback::from_pairs([
        ("state", request.state()),
        ("code", "c0de"),
        ("iss", issuer.as_str()),
    ]);
    request.check(&with_iss).unwrap();
}

#[tokio::test]
async fn without_the_promise_a_callback_without_iss_is_accepted() {
    let (_server, client) = discovered(client(), |_| {}).await;
    let client = client.unwrap();

    let request = AuthCode::new()
        .authorization_request(&client, REDIRECT)
        .unwrap();
    let callback = Callback::from_pairs([("state", request.state()), ("code", "c0de")]);
    request.check(&callback).unwrap();
}

#[tokio::test]
async fn s256_is_sent_even_when_the_server_does_not_list_it() {
    let (_server, client) = discovered(client(), |doc| {
        doc["code_challenge_methods_supported"] = json!(["plain"]);
    })
    .await;
    let client = client.unwrap();

    let request = AuthCode::new()
        .authorization_request(&client, REDIRECT)
        .unwrap();

    let method: Vec<_> = request
        .url()
        .query_pairs()
        .filter(|(k, _)| k == "code_challenge_method")
        .map(|(_, v)| v.into_owned())
        .collect();
    assert_eq!(method, ["S256"]);
}

#[test]
fn metadata_urls_follow_both_specifications() {
    let cases = [
        (
            "https://idp.example",
            "https://idp.example/.well-known/openid-configuration",
            "https://idp.example/.well-known/oauth-authorization-server",
        ),
        (
            "https://idp.example/",
            "https://idp.example/.well-known/openid-configuration",
            "https://idp.example/.well-known/oauth-authorization-server",
        ),
        (
            "https://idp.example/tenant/a",
            "https://idp.example/tenant/a/.well-known/openid-configuration",
            "https://idp.example/.well-known/oauth-authorization-server/tenant/a",
        ),
        (
            "https://idp.example/tenant/a/",
            "https://idp.example/tenant/a/.well-known/openid-configuration",
            "https://idp.example/.well-known/oauth-authorization-server/tenant/a",
        ),
        (
            "https://idp.example:8443/realms/x",
            "https://idp.example:8443/realms/x/.well-known/openid-configuration",
            "https://idp.example:8443/.well-known/oauth-authorization-server/realms/x",
        ),
        (
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/.well-known/openid-configuration",
            "http://127.0.0.1:8080/.well-known/oauth-authorization-server",
        ),
        (
            "http://localhost/x",
            "http://localhost/x/.well-known/openid-configuration",
            "http://localhost/.well-known/oauth-authorization-server/x",
        ),
    ];
    for (issuer, oidc, oauth) in cases {
        let [got_oidc, got_oauth] = metadata_urls(issuer).unwrap();
        assert_eq!(got_oidc.as_str(), oidc, "{issuer}");
        assert_eq!(got_oauth.as_str(), oauth, "{issuer}");
    }
}

#[test]
fn metadata_urls_refuse_issuers_rfc8414_forbids() {
    assert_transport(
        metadata_urls("http://idp.example").unwrap_err(),
        TransportErrorKind::InsecureUrl,
    );
    for issuer in [
        "https://idp.example?tenant=a",
        "https://idp.example/#a",
        "https://user:pw@idp.example",
        "not a url",
        "ftp://idp.example",
    ] {
        let err = metadata_urls(issuer).unwrap_err();
        assert!(
            matches!(err, Error::Config(_) | Error::Transport(_)),
            "{issuer}: {err:?}"
        );
    }
    for issuer in ["https://idp.example?tenant=a", "https://idp.example/#a"] {
        assert!(matches!(metadata_urls(issuer), Err(Error::Config(_))));
    }
}

#[test]
fn discover_futures_are_send() {
    fn send<T: Send>(_: T) {}
    send(discovery::configure(client(), "https://idp.example"));
    send(discovery::discover(
        &OAuthClient::builder("x").build().unwrap(),
        "https://idp.example",
    ));
}

#[tokio::test]
async fn a_metadata_document_that_quotes_the_client_secret_does_not_put_it_in_the_error() {
    const SECRET: &str = "cs-quoted-by-a-confused-server";
    let server = MockServer::builder().start().await;
    let issuer = server.uri();
    for (status, body) in [
        (200, format!("not json {SECRET}")),
        (
            200,
            format!(r#"{{"issuer": 42, "token_endpoint": "{SECRET}"}}"#),
        ),
        (
            200,
            format!(r#"{{"issuer": "{SECRET}", "token_endpoint": "{issuer}/token"}}"#),
        ),
        (
            500,
            format!(r#"{{"error": "oops", "error_description": "{SECRET}"}}"#),
        ),
        (500, format!("<html>{SECRET}</html>")),
    ] {
        server.reset().await;
        for well_known in [OIDC, OAUTH] {
            Mock::given(method("GET"))
                .and(path(well_known))
                .respond_with(
                    ResponseTemplate::new(status).set_body_raw(body.clone(), "application/json"),
                )
                .mount(&server)
                .await;
        }
        let err = discovery::configure(OAuthClient::builder("app").secret(SECRET), &issuer)
            .await
            .unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(SECRET), "{body}: {shown}");
    }
}
