//! The resource-first client against `TestServer` playing the whole deployment: an
//! authorization server with resource indicators and protected resources that publish RFC 9728
//! metadata and take only tokens issued for them, on one port or two.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use oauth_layer::resource::ResourceClient;
use oauth_layer::testing::{
    ProtectedResource, ResourceServer, RoundTripKind, TestServer, TestServerBuilder,
};
use oauth_layer::{AuthMethod, OAuthMiddleware};
use reqwest_middleware::ClientWithMiddleware;

const SECRET: &str = "agent-secret-never-shown";

fn deployment() -> TestServerBuilder {
    TestServer::builder()
        .client("agent", Some(SECRET), AuthMethod::ClientSecretBasic)
        .require_resource_indicator(true)
        .protected_resource(ProtectedResource::new("/mcp").scopes_supported(["mcp:tools"]))
}

fn http(resources: ResourceClient) -> ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(oauth_layer::reqwest::client_builder().build().unwrap())
        .with(OAuthMiddleware::for_resources(resources))
        .build()
}

fn kinds(server: &TestServer) -> Vec<(RoundTripKind, u16)> {
    server
        .round_trips()
        .iter()
        .map(|r| (r.kind, r.status))
        .collect()
}

#[tokio::test]
async fn a_cold_start_takes_the_fewest_round_trips_and_a_warm_one_none() {
    let server = deployment().start().await.unwrap();
    let mcp = server.resource_url("/mcp");
    let resources = ResourceClient::new(&mcp)
        .unwrap()
        .client_id_and_secret("agent", SECRET)
        .machine();
    let http = http(resources);
    assert_eq!(http.get(&mcp).send().await.unwrap().status(), 200);
    use RoundTripKind::*;
    assert_eq!(
        kinds(&server),
        [
            (Resource, 401),
            (ResourceMetadata, 200),
            (ServerMetadata, 200),
            (Token, 200),
            (Resource, 200),
        ]
    );
    // The token was asked for this resource, and only this one.
    let log = server.token_request_log();
    assert_eq!(log[0].resources, [server.resource_identifier("/mcp")]);
    server.reset_counts();
    assert_eq!(http.get(&mcp).send().await.unwrap().status(), 200);
    assert_eq!(kinds(&server), [(Resource, 200)]);
}

#[tokio::test]
async fn two_resources_on_two_ports_each_get_their_own_token() {
    let server = deployment().start().await.unwrap();
    let other = ResourceServer::builder(&server)
        .resource(ProtectedResource::new("/api").scopes_supported(["api:read"]))
        .start()
        .await
        .unwrap();
    let (mcp, api) = (server.resource_url("/mcp"), other.resource_url("/api"));
    let resources = ResourceClient::new(&mcp)
        .unwrap()
        .resource(&api)
        .unwrap()
        .client_id_and_secret("agent", SECRET)
        .machine();
    let http = http(resources);
    for _ in 0..2 {
        assert_eq!(http.get(&mcp).send().await.unwrap().status(), 200);
        assert_eq!(
            http.get(format!("{api}/items"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    assert_eq!(server.token_requests(), 2, "one token per resource");
    let mcp_tokens: Vec<_> = server
        .resource_requests()
        .iter()
        .filter_map(|r| r.authorization.clone())
        .collect();
    let api_tokens: Vec<_> = other
        .resource_requests()
        .iter()
        .filter_map(|r| r.authorization.clone())
        .collect();
    assert_eq!(mcp_tokens.len(), 2);
    assert_eq!(api_tokens.len(), 2);
    assert!(
        mcp_tokens.iter().all(|t| !api_tokens.contains(t)),
        "one resource's token never goes to the other"
    );
    for (tokens, id) in [
        (&mcp_tokens, server.resource_identifier("/mcp")),
        (&api_tokens, other.resource_identifier("/api")),
    ] {
        let token = tokens[0].strip_prefix("Bearer ").unwrap();
        let info = server.access_token_info(token).unwrap();
        assert_eq!(info.resources, [id]);
    }
}

#[tokio::test]
async fn a_person_signs_in_with_a_client_registered_on_the_fly_and_a_restart_does_not_register_again()
 {
    let server = deployment()
        .registration(oauth_layer::testing::RegistrationPolicy::Open)
        .start()
        .await
        .unwrap();
    let mcp = server.resource_url("/mcp");
    let store = oauth_layer::store::MemoryStore::new();
    let person = || {
        ResourceClient::new(&mcp)
            .unwrap()
            .auth_code(oauth_layer::flow::AuthCode::new().browser(approving_browser()))
            .store(store.clone())
    };
    assert_eq!(http(person()).get(&mcp).send().await.unwrap().status(), 200);
    use RoundTripKind::*;
    assert_eq!(
        kinds(&server),
        [
            (Resource, 401),
            (ResourceMetadata, 200),
            (ServerMetadata, 200),
            (Registration, 201),
            (Authorization, 302),
            (Token, 200),
            (Resource, 200),
        ]
    );
    assert_eq!(server.registered_clients().len(), 1);

    // A restart: a new client with the same store finds the registration and the token.
    server.reset_counts();
    let restarted = http(person());
    assert_eq!(restarted.get(&mcp).send().await.unwrap().status(), 200);
    assert_eq!(server.registration_requests(), 0);
    assert_eq!(server.token_requests(), 0);
    assert_eq!(server.registered_clients().len(), 1);
}

#[tokio::test]
async fn a_path_that_needs_more_scope_upgrades_the_resources_token() {
    let server = deployment()
        .require_scope("/mcp/admin", "mcp:admin")
        .start()
        .await
        .unwrap();
    let mcp = server.resource_url("/mcp");
    let http = http(
        ResourceClient::new(&mcp)
            .unwrap()
            .client_id_and_secret("agent", SECRET)
            .machine(),
    );
    assert_eq!(http.get(&mcp).send().await.unwrap().status(), 200);
    let answer = http.get(format!("{mcp}/admin")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let log = server.token_request_log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(
        log.iter()
            .all(|r| r.resources == [server.resource_identifier("/mcp")])
    );
}

#[tokio::test]
async fn dpop_bound_tokens_come_from_a_template_with_dpop() {
    let server = deployment().support_dpop(true).start().await.unwrap();
    let mcp = server.resource_url("/mcp");
    let template = oauth_layer::OAuthClient::builder("").dpop(oauth_layer::dpop::Dpop::new());
    let http = http(
        ResourceClient::new(&mcp)
            .unwrap()
            .client_id_and_secret("agent", SECRET)
            .machine()
            .client_settings(template),
    );
    assert_eq!(http.get(&mcp).send().await.unwrap().status(), 200);
    let last = server.resource_requests().pop().unwrap();
    assert!(last.dpop.as_ref().is_some_and(|p| p.is_valid()), "{last:?}");
    assert_eq!(last.scheme(), Some("DPoP"));
}

/// A person who approves every sign-in: the browser follows the authorization URL, the server's
/// redirect included, to the loopback receiver.
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
async fn a_request_can_skip_discovery_or_bring_its_own_source() {
    let server = deployment().start().await.unwrap();
    let mcp = server.resource_url("/mcp");
    let http = http(
        ResourceClient::new(&mcp)
            .unwrap()
            .client_id_and_secret("agent", SECRET)
            .machine(),
    );
    // Told to go without a token: its 401 comes back, and nothing is discovered.
    let answer = http
        .get(&mcp)
        .with_extension(oauth_layer::RequestAuth::Skip)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    assert_eq!(kinds(&server), [(RoundTripKind::Resource, 401)]);

    // With a source of its own: that source's token, for this request only.
    let own = oauth_layer::TokenSource::new(
        server
            .oauth_client("agent")
            .unwrap()
            .to_builder()
            .secret(SECRET)
            .resource(server.resource_identifier("/mcp"))
            .build()
            .unwrap(),
        oauth_layer::flow::ClientCredentials::new(),
    );
    let answer = http
        .get(&mcp)
        .with_extension(oauth_layer::RequestAuth::Source(own.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(server.resource_metadata_requests(), 0);
    let sent = server
        .resource_requests()
        .pop()
        .unwrap()
        .authorization
        .unwrap();
    let own_token = own.cached().unwrap();
    assert_eq!(
        sent,
        format!(
            "Bearer {}",
            oauth_layer::ExposeSecret::expose_secret(own_token.access_token())
        )
    );
}

#[tokio::test]
async fn a_client_with_a_resource_indicator_sends_it_on_every_grant_and_refresh() {
    let server = deployment()
        .user("alice", "alice-password")
        .start()
        .await
        .unwrap();
    let mcp = server.resource_identifier("/mcp");
    let client = server
        .oauth_client_builder("agent")
        .unwrap()
        .secret(SECRET)
        .resource(&mcp)
        .build()
        .unwrap();
    let tokens = oauth_layer::TokenSource::new(
        client,
        oauth_layer::flow::Password::new("alice", "alice-password"),
    );
    let first = tokens.token().await.unwrap();
    assert!(first.refresh_token().is_some());
    tokens.invalidate(&first);
    let renewed = tokens.token().await.unwrap();
    let log = server.token_request_log();
    let grants: Vec<_> = log
        .iter()
        .map(|r| r.grant_type.as_deref().unwrap())
        .collect();
    assert_eq!(grants, ["password", "refresh_token"]);
    assert!(log.iter().all(|r| r.resources == [mcp.clone()]), "{log:?}");
    let info = server
        .access_token_info(oauth_layer::ExposeSecret::expose_secret(
            renewed.access_token(),
        ))
        .unwrap();
    assert_eq!(info.resources, [mcp]);
}
