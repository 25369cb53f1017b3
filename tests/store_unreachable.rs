//! A shared store that cannot be reached (Redis partitioned away or restarting): the renewal
//! runs without the store's lock, so another process may be spending the same refresh token at
//! that moment. With rotating refresh tokens the second use is a reuse that servers answer by
//! revoking the grant, so the source gets a grant of its own from its flow instead, and spends
//! the held refresh token only when the flow cannot run without it. (tests/fleet_faults/ shows
//! the same with a real fleet, in network namespaces.)

#![allow(clippy::unwrap_used)]

use oauth_layer::flow::{Password, RefreshToken};
use oauth_layer::store::{CacheKey, RenewalLock, TokenStore};
use oauth_layer::testing::TestServer;
use oauth_layer::{AuthMethod, Error, Token, TokenSource};
use secrecy::ExposeSecret;

/// A shared store whose every call fails, as `RedisStore` does when Redis cannot be reached.
#[derive(Debug)]
struct Unreachable;

#[async_trait::async_trait]
impl TokenStore for Unreachable {
    async fn load(&self, _: &CacheKey) -> oauth_layer::Result<Option<Token>> {
        Err(Error::Store("cannot connect to Redis".into()))
    }

    async fn save(&self, _: &CacheKey, _: &Token) -> oauth_layer::Result<()> {
        Err(Error::Store("cannot connect to Redis".into()))
    }

    async fn delete(&self, _: &CacheKey) -> oauth_layer::Result<()> {
        Err(Error::Store("cannot connect to Redis".into()))
    }

    async fn lock(&self, _: &CacheKey) -> oauth_layer::Result<Option<Box<dyn RenewalLock>>> {
        Err(Error::Store("cannot connect to Redis".into()))
    }
}

async fn server() -> TestServer {
    TestServer::builder()
        .client("fleet", Some("fleet-secret"), AuthMethod::ClientSecretBasic)
        .user("alice", "alice-password")
        .rotate_refresh_tokens(true)
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn without_the_stores_lock_a_refresh_token_is_not_spent_when_the_flow_can_run_again() {
    let server = server().await;
    let tokens = TokenSource::builder(
        server.oauth_client("fleet").unwrap(),
        Password::new("alice", "alice-password"),
    )
    .store(Unreachable)
    .build();
    let first = tokens.token().await.unwrap();
    assert!(first.refresh_token().is_some());
    assert!(tokens.invalidate(&first));

    let second = tokens.token().await.unwrap();
    assert!(!second.same_as(&first));
    assert_eq!(server.token_requests_for("password"), 2);
    assert_eq!(
        server.token_requests_for("refresh_token"),
        0,
        "the held refresh token was spent without the store's lock"
    );
}

#[tokio::test]
async fn without_the_stores_lock_a_used_up_refresh_token_flow_still_renews_with_the_held_one() {
    let server = server().await;
    // A refresh token to start from, as a deployment seeded with one has.
    let seed = TokenSource::builder(
        server.oauth_client("fleet").unwrap(),
        Password::new("alice", "alice-password"),
    )
    .build()
    .token()
    .await
    .unwrap();
    let seed = seed.refresh_token().unwrap().expose_secret().to_owned();

    let tokens = TokenSource::builder(
        server.oauth_client("fleet").unwrap(),
        RefreshToken::new(seed),
    )
    .store(Unreachable)
    .build();
    let first = tokens.token().await.unwrap();
    assert!(tokens.invalidate(&first));
    let second = tokens.token().await.unwrap();
    assert!(!second.same_as(&first));
    // The seed, then the refresh token it rotated into: each sent once, both accepted.
    let refreshes: Vec<_> = server
        .token_request_log()
        .into_iter()
        .filter(|r| r.grant_type.as_deref() == Some("refresh_token"))
        .map(|r| r.status)
        .collect();
    assert_eq!(refreshes, [200, 200]);
}
