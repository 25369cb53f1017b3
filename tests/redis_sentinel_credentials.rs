//! Sentinels and the servers behind them with different credentials: a Sentinel without a
//! password in front of a primary with `requirepass` and an ACL user (all started here, on free
//! loopback ports). `RedisSentinel::primary_credentials` gives the servers theirs; without
//! them the store fails, saying that the server wants authentication, and no password ever
//! shows.
//!
//! Needs `redis-server`; skips, saying so, where it cannot run.
#![cfg(feature = "redis-store")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod redis_support;

use std::time::Duration;

use oauth_layer::clock::SystemClock;
use oauth_layer::flow::{ClientCredentials, Flow};
use oauth_layer::store::{CacheKey, RedisSentinel, RedisStore, TokenStore};
use oauth_layer::{OAuthClient, Token};
use redis_support::{RedisServer, SERVICE, Sentinel, free_port, redis_runs};
use secrecy::ExposeSecret;

const DEFAULT_PASSWORD: &str = "pw-DEFAULT-SECRET";
const APP_PASSWORD: &str = "pw-APP-SECRET";

/// A primary with `requirepass` and an ACL user `app` that may use every key and command.
async fn protected_primary() -> RedisServer {
    let app = format!(">{APP_PASSWORD}");
    RedisServer::start_with(
        free_port(),
        Some(DEFAULT_PASSWORD),
        &["--user", "app", "on", &app, "~*", "&*", "+@all"],
    )
    .await
}

fn key() -> CacheKey {
    ClientCredentials::new().cache_key(&OAuthClient::builder("id").build().unwrap())
}

fn token() -> Token {
    Token::builder("at-1")
        .expires_in(Duration::from_secs(3600))
        .refresh_token("rt-1")
        .build(&SystemClock)
        .unwrap()
}

/// The text of a store's error, checked to name no password.
fn shown(error: &oauth_layer::Error) -> String {
    let text = format!("{error} {error:?}");
    assert!(!text.contains("SECRET"), "{text}");
    text
}

/// With the primary's own credentials (an ACL user, or the default user's `requirepass`), a
/// store behind a Sentinel without a password writes and reads its entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_primary_gets_credentials_of_its_own() {
    if !redis_runs("the_primary_gets_credentials_of_its_own") {
        return;
    }
    let primary = protected_primary().await;
    let sentinel = Sentinel::watch_authenticated(&primary, None, DEFAULT_PASSWORD).await;

    let as_app = RedisSentinel::new([sentinel.url()], SERVICE)
        .primary_credentials(Some("app"), APP_PASSWORD)
        .connect()
        .await
        .unwrap();
    as_app.save(&key(), &token()).await.unwrap();
    let stored = as_app.load(&key()).await.unwrap().unwrap();
    assert_eq!(stored.access_token().expose_secret(), "at-1");
    // The entry really is on the protected primary.
    let entry = as_app.entry_key(&key()).await.unwrap();
    let exists: bool = redis::cmd("EXISTS")
        .arg(&entry)
        .query_async(&mut primary.raw().await)
        .await
        .unwrap();
    assert!(exists);

    let as_default = RedisSentinel::new([sentinel.url()], SERVICE)
        .primary_credentials(None, DEFAULT_PASSWORD)
        .lazy()
        .unwrap();
    let stored = as_default.load(&key()).await.unwrap().unwrap();
    assert_eq!(stored.refresh_token().unwrap().expose_secret(), "rt-1");
}

/// Without the primary's credentials (the Sentinel's URL has none) every call fails with a
/// store error saying the server wants authentication; with a wrong password, that the
/// credentials were refused. Neither shows a password, nor does `Debug`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_primarys_credentials_the_store_says_so() {
    if !redis_runs("without_the_primarys_credentials_the_store_says_so") {
        return;
    }
    let primary = protected_primary().await;
    let sentinel = Sentinel::watch_authenticated(&primary, None, DEFAULT_PASSWORD).await;

    let anonymous = RedisStore::sentinel_lazy([sentinel.url()], SERVICE)
        .unwrap()
        .operation_timeout(Duration::from_millis(500));
    let error = anonymous.load(&key()).await.unwrap_err();
    assert!(matches!(error, oauth_layer::Error::Store(_)), "{error:?}");
    let text = shown(&error);
    assert!(text.contains("NOAUTH"), "{text}");
    assert!(text.contains("primary_credentials"), "{text}");
    let error = RedisStore::connect_sentinel([sentinel.url()], SERVICE)
        .await
        .unwrap_err();
    let text = shown(&error);
    assert!(text.contains("NOAUTH"), "{text}");
    assert!(text.contains("primary_credentials"), "{text}");

    let wrong = RedisSentinel::new([sentinel.url()], SERVICE)
        .primary_credentials(Some("app"), "pw-WRONG-SECRET");
    let debug = format!("{wrong:?}");
    assert!(
        !debug.contains("SECRET") && debug.contains("app"),
        "{debug}"
    );
    let wrong = wrong
        .lazy()
        .unwrap()
        .operation_timeout(Duration::from_millis(500));
    assert!(!format!("{wrong:?}").contains("SECRET"));
    let error = wrong.save(&key(), &token()).await.unwrap_err();
    assert!(matches!(error, oauth_layer::Error::Store(_)), "{error:?}");
    let text = shown(&error);
    assert!(text.contains("authentication failed"), "{text}");
    assert!(text.contains("primary_credentials"), "{text}");
}
