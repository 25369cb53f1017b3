//! What the Redis store keeps, and how a fleet rolls onto a new release of the crate without
//! losing its tokens: every key under the store's namespace (its prefix), every entry carrying
//! its format version, every entry with a TTL that outlives its access token.
//!
//! A roll runs old and new processes side by side on one Redis, so both must read what the
//! other writes. Entry names do not change between releases (a version in the name would split
//! the fleet in two: the rotated refresh token one half writes is invisible to the other, which
//! then sends the spent one). The version lives inside the entry: format 1 is what this and
//! the previous releases write; a newer release may add fields within format 1, which older
//! readers ignore.
//!
//! Needs `redis-server`; skips, saying so, where it cannot run.
#![cfg(feature = "redis-store")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod redis_support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oauth_layer::clock::SystemClock;
use oauth_layer::flow::{ClientCredentials, Flow};
use oauth_layer::store::{CacheKey, RedisStore, TokenStore};
use oauth_layer::{OAuthClient, Token, TokenSource};
use redis_support::{RedisServer, redis_runs};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use wiremock::MockServer;

fn client(id: &str, idp: &MockServer) -> OAuthClient {
    OAuthClient::builder(id)
        .secret("s")
        .token_url(format!("{}/token", idp.uri()))
        .build()
        .unwrap()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An entry exactly as the previous release writes it (format 1, plain), for a token that
/// expires in an hour.
fn previous_release_entry(access: &str, refresh: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "format": "oauth-layer-token",
        "version": 1,
        "token": {
            "access_token": access,
            "token_type": "Bearer",
            "lifetime_secs": 3600,
            "lifetime_reported": true,
            "expires_at_unix": unix_now() + 3600,
            "refresh_token": refresh,
        },
    }))
    .unwrap()
}

async fn set(redis: &RedisServer, name: &str, bytes: &[u8]) {
    let _: () = redis::cmd("SET")
        .arg(name)
        .arg(bytes)
        .arg("PX")
        .arg(3_600_000)
        .query_async(&mut redis.raw().await)
        .await
        .unwrap();
}

async fn get(redis: &RedisServer, name: &str) -> Vec<u8> {
    let bytes: Option<Vec<u8>> = redis::cmd("GET")
        .arg(name)
        .query_async(&mut redis.raw().await)
        .await
        .unwrap();
    bytes.unwrap()
}

fn secret_of(token: &Token) -> (String, Option<String>) {
    (
        token.access_token().expose_secret().to_owned(),
        token.refresh_token().map(|r| r.expose_secret().to_owned()),
    )
}

fn key_for(client: &OAuthClient) -> CacheKey {
    ClientCredentials::new().cache_key(client)
}

/// Entries of two releases side by side on one Redis during a roll: one the previous release
/// wrote, one this release wrote, and one a newer release wrote with a field this one does not
/// know. This release reads all three, and a source serves the previous release's token
/// without a token request. What this release writes is format 1 with only the fields the
/// previous release reads, under the same name, so the previous release reads it too.
#[tokio::test]
async fn two_releases_share_one_redis_during_a_roll() {
    if !redis_runs("two_releases_share_one_redis_during_a_roll") {
        return;
    }
    let redis = RedisServer::start().await;
    let idp = MockServer::start().await; // answers nothing: no token request may be needed
    let store = RedisStore::connect(redis.url())
        .await
        .unwrap()
        .prefix("fleet:");
    let (old, new, newer) = (
        client("old", &idp),
        client("new", &idp),
        client("newer", &idp),
    );

    let old_name = store.entry_key(&key_for(&old)).await.unwrap();
    set(
        &redis,
        &old_name,
        &previous_release_entry("at-old", "rt-old"),
    )
    .await;

    let written = Token::builder("at-new")
        .expires_in(Duration::from_secs(3600))
        .refresh_token("rt-new")
        .build(&SystemClock)
        .unwrap();
    store.save(&key_for(&new), &written).await.unwrap();

    let mut from_newer: Value =
        serde_json::from_slice(&previous_release_entry("at-newer", "rt-newer")).unwrap();
    from_newer["written_by"] = json!("a newer release");
    from_newer["token"]["refresh_generation"] = json!(7);
    let newer_name = store.entry_key(&key_for(&newer)).await.unwrap();
    set(
        &redis,
        &newer_name,
        &serde_json::to_vec(&from_newer).unwrap(),
    )
    .await;

    for (client, expected) in [
        (&old, ("at-old", "rt-old")),
        (&new, ("at-new", "rt-new")),
        (&newer, ("at-newer", "rt-newer")),
    ] {
        let loaded = store.load(&key_for(client)).await.unwrap().unwrap();
        assert_eq!(
            secret_of(&loaded),
            (expected.0.to_owned(), Some(expected.1.to_owned()))
        );
    }
    let source = TokenSource::builder(old, ClientCredentials::new())
        .store(store.clone())
        .build();
    assert_eq!(
        source.token().await.unwrap().access_token().expose_secret(),
        "at-old"
    );
    assert!(idp.received_requests().await.unwrap().is_empty());

    // What this release wrote is what the previous release reads.
    let new_name = store.entry_key(&key_for(&new)).await.unwrap();
    assert!(new_name.starts_with("fleet:token:"), "{new_name}");
    let entry: Value = serde_json::from_slice(&get(&redis, &new_name).await).unwrap();
    assert_eq!(entry["format"], "oauth-layer-token");
    assert_eq!(entry["version"], 1);
    let mut fields: Vec<&str> = entry["token"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "access_token",
            "expires_at_unix",
            "lifetime_reported",
            "lifetime_secs",
            "refresh_token",
            "token_type",
        ]
    );
}

/// Every key the store writes is under its namespace, and every entry has a TTL: one that
/// holds a refresh token is kept for `refresh_token_ttl`, but never for less than its access
/// token's remaining life (plus a minute), however short the setting.
#[tokio::test]
async fn every_key_is_namespaced_and_no_entry_outlives_its_ttl_or_dies_before_its_token() {
    if !redis_runs("every_key_is_namespaced_and_no_entry_outlives_its_ttl_or_dies_before_its_token")
    {
        return;
    }
    let redis = RedisServer::start().await;
    let idp = MockServer::start().await;
    let store = RedisStore::connect(redis.url())
        .await
        .unwrap()
        .prefix("billing:")
        .refresh_token_ttl(Duration::from_secs(1));
    let key = key_for(&client("ttl", &idp));
    let token = Token::builder("at")
        .expires_in(Duration::from_secs(600))
        .refresh_token("rt")
        .build(&SystemClock)
        .unwrap();
    store.save(&key, &token).await.unwrap();
    let lock = store.lock(&key).await.unwrap().unwrap();

    let mut raw = redis.raw().await;
    let names: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(names.len(), 3, "{names:?}");
    for name in &names {
        assert!(name.starts_with("billing:"), "{name}");
        let ttl: i64 = redis::cmd("PTTL")
            .arg(name)
            .query_async(&mut raw)
            .await
            .unwrap();
        if name == "billing:salt" {
            assert_eq!(ttl, -1, "the salt is kept");
        } else {
            assert!(ttl > 0, "{name} has no TTL");
        }
    }
    let entry: i64 = redis::cmd("PTTL")
        .arg(store.entry_key(&key).await.unwrap())
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!((655_000..=660_000).contains(&entry), "{entry}");
    lock.release().await;
}
