//! A shared store that did not take a rotated refresh token (Redis whose replicas never
//! confirmed a durable write across a failover, or a store that went away mid-renewal) may
//! still hold the refresh token that renewal spent. With rotating refresh tokens, sending it
//! again is a reuse and the server revokes the whole grant. The source keeps its new token in
//! memory, never takes the spent one from the store again, and writes its newest token back
//! until the store takes it, so the next process needs no token request.
//! (`tests/redis_failover.rs` shows the same with a real failover.)

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use oauth_layer::clock::SystemClock;
use oauth_layer::flow::{Flow, Password};
use oauth_layer::store::{CacheKey, MemoryStore, RenewalLock, TokenStore};
use oauth_layer::testing::TestServer;
use oauth_layer::{AuthMethod, Error, Token, TokenSource};
use secrecy::ExposeSecret;

/// A store shared by the fleet that refuses every write while `refusing` is set, keeping what
/// it held.
#[derive(Clone, Debug, Default)]
struct Refusing {
    tokens: MemoryStore,
    refusing: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl TokenStore for Refusing {
    async fn load(&self, key: &CacheKey) -> oauth_layer::Result<Option<Token>> {
        self.tokens.load(key).await
    }

    async fn save(&self, key: &CacheKey, token: &Token) -> oauth_layer::Result<()> {
        if self.refusing.load(Ordering::SeqCst) {
            return Err(Error::Store(
                "the token written to Redis was not confirmed by 1 replicas".into(),
            ));
        }
        self.tokens.save(key, token).await
    }

    async fn delete(&self, key: &CacheKey) -> oauth_layer::Result<()> {
        self.tokens.delete(key).await
    }

    async fn lock(&self, _: &CacheKey) -> oauth_layer::Result<Option<Box<dyn RenewalLock>>> {
        Ok(None)
    }
}

fn refresh_token(token: &Token) -> String {
    token.refresh_token().unwrap().expose_secret().to_owned()
}

#[tokio::test]
async fn a_refresh_token_the_store_kept_after_a_refused_write_is_never_sent_again() {
    let server = TestServer::builder()
        .client("fleet", Some("fleet-secret"), AuthMethod::ClientSecretBasic)
        .user("alice", "alice-password")
        .rotate_refresh_tokens(true)
        .start()
        .await
        .unwrap();
    let client = server.oauth_client("fleet").unwrap();
    let flow = || Password::new("alice", "alice-password");
    let key = flow().cache_key(&client);
    let store = Refusing::default();

    // The fleet's entry: an expired access token and the grant's refresh token `r1`.
    let granted = TokenSource::new(client.clone(), flow())
        .token()
        .await
        .unwrap();
    let r1 = refresh_token(&granted);
    let stale = Token::builder("expired")
        .expires_in(Duration::ZERO)
        .refresh_token(r1.clone())
        .build(&SystemClock)
        .unwrap();
    store.save(&key, &stale).await.unwrap();

    // A renewal spends `r1`; the store refuses `r2` and keeps the entry with `r1`.
    store.refusing.store(true, Ordering::SeqCst);
    let renewing = TokenSource::builder(client.clone(), flow())
        .store(store.clone())
        .build();
    let second = renewing.token().await.unwrap();
    let r2 = refresh_token(&second);
    assert_ne!(r1, r2);
    assert_eq!(refresh_token(&store.load(&key).await.unwrap().unwrap()), r1);

    // Its next renewal sends `r2`, not the `r1` the store still holds (which would revoke the
    // grant: the server answers a reuse so, and the flow would need a new password grant).
    assert!(renewing.invalidate(&second));
    let third = renewing.token().await.unwrap();
    let r3 = refresh_token(&third);
    assert_ne!(r2, r3);
    assert_eq!(server.token_requests_for("refresh_token"), 2);
    assert_eq!(server.token_requests_for("password"), 1);

    // Once the store takes writes again, the newest token is written back, and the next
    // process uses it without a token request.
    store.refusing.store(false, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while store.load(&key).await.unwrap().map(|t| refresh_token(&t)) != Some(r3.clone()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the store still holds the spent refresh token"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let next = TokenSource::builder(client, flow()).store(store).build();
    let token = next.token().await.unwrap();
    assert_eq!(
        token.access_token().expose_secret(),
        third.access_token().expose_secret()
    );
    assert_eq!(server.token_requests_for("refresh_token"), 2);
    assert_eq!(server.token_requests_for("password"), 1);
}
