#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A renewal storm: 10,000 requests arriving at once with no token make exactly one token
//! request, and all of them carry its token. The token endpoint is the crate's `TestServer`; the
//! wrapped service is in memory and answers with the `Authorization` header it saw.
//! `benches/storm.rs` times the same storm.

use std::collections::HashSet;
use std::convert::Infallible;

use http::header::AUTHORIZATION;
use http::{Request, Response};
use oauth_layer::flow::ClientCredentials;
use oauth_layer::testing::TestServer;
use oauth_layer::{AuthMethod, OAuthLayer, TokenSource};
use tower::{ServiceBuilder, ServiceExt};

const REQUESTS: usize = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_requests_without_a_token_make_one_token_request() {
    let server = TestServer::builder()
        .client("storm", Some("s3cret"), AuthMethod::ClientSecretBasic)
        .start()
        .await
        .unwrap();
    let source = TokenSource::new(
        server.oauth_client("storm").unwrap(),
        ClientCredentials::new().scope("api:read"),
    );
    let service = ServiceBuilder::new()
        .layer(OAuthLayer::from_source(source))
        .service_fn(|request: Request<()>| async move {
            let seen = request.headers().get(AUTHORIZATION).cloned();
            Ok::<_, Infallible>(Response::new(seen))
        });

    let handles: Vec<_> = (0..REQUESTS)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move {
                let request = Request::get("https://api.example/things").body(()).unwrap();
                service.oneshot(request).await.unwrap().into_body()
            })
        })
        .collect();
    let mut headers = HashSet::new();
    for handle in handles {
        let seen = handle
            .await
            .unwrap()
            .expect("every request carries a token");
        headers.insert(seen);
    }

    assert_eq!(server.token_requests(), 1);
    assert_eq!(headers.len(), 1, "every request carries the one token");
}
