//! `RedisStore` against a real `redis-server` that each test starts on a free loopback port:
//! one token request for a fleet, a dead lock holder, Redis going away and coming back, rule 21
//! across processes, encryption, corrupt entries, a password that never shows, and DPoP nonces
//! shared by the fleet (`Dpop::share_nonces`).
//!
//! Needs `redis-server` on `PATH` (`apt-get install redis-server`; CI's `.ci/run` installs it).
#![cfg(feature = "redis-store")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod redis_support;

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oauth_layer::clock::SystemClock;
use oauth_layer::flow::{ClientCredentials, Flow};
use oauth_layer::store::{CacheKey, RedisStore, TokenStore};
use oauth_layer::{Error, OAuthClient, RetryPolicy, Token, TokenSource};
use secrecy::ExposeSecret;
use serde_json::json;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::Idp;
use redis_support::fleet::{client, requests_with, rotating_idp, spent_token};
use redis_support::{RedisServer, free_port, unused_port};

fn key() -> CacheKey {
    ClientCredentials::new().cache_key(&OAuthClient::builder("redis-test").build().unwrap())
}

/// The Redis key of `key`'s entry under the default prefix: named with the salt the store
/// keeps in Redis.
async fn entry_name(redis: &RedisServer, key: &CacheKey) -> String {
    let store = RedisStore::connect(redis.url()).await.unwrap();
    let name = store.entry_key(key).await.unwrap();
    assert!(name.starts_with("oauth-layer:token:"), "{name}");
    name
}

fn token(access: &str, refresh: Option<&str>, lifetime: Duration) -> Token {
    let mut builder = Token::builder(access).expires_in(lifetime);
    if let Some(refresh) = refresh {
        builder = builder.refresh_token(refresh);
    }
    builder.build(&SystemClock).unwrap()
}

fn access(token: &Token) -> String {
    token.access_token().expose_secret().to_owned()
}

async fn raw_get(redis: &RedisServer, name: &str) -> Option<Vec<u8>> {
    redis::cmd("GET")
        .arg(name)
        .query_async(&mut redis.raw().await)
        .await
        .unwrap()
}

async fn pttl(redis: &RedisServer, key: &CacheKey) -> i64 {
    redis::cmd("PTTL")
        .arg(entry_name(redis, key).await)
        .query_async(&mut redis.raw().await)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_with_a_thousand_callers_each_make_one_token_request() {
    let redis = RedisServer::start().await;
    let idp = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({
                    "access_token": "fleet-token",
                    "token_type": "Bearer",
                    "expires_in": 3600,
                }))
                .set_delay(Duration::from_millis(300)),
        )
        .expect(1)
        .mount(&idp)
        .await;
    let client = client(&idp, "fleet");

    let mut sources = Vec::new();
    for _ in 0..8 {
        let store = RedisStore::connect(redis.url()).await.unwrap();
        sources.push(
            TokenSource::builder(client.clone(), ClientCredentials::new())
                .store(store)
                .build(),
        );
    }
    let mut calls = tokio::task::JoinSet::new();
    for source in &sources {
        for _ in 0..1_000 {
            let source = source.clone();
            calls.spawn(async move { source.token().await });
        }
    }
    let mut answered = 0;
    while let Some(result) = calls.join_next().await {
        assert_eq!(access(&result.unwrap().unwrap()), "fleet-token");
        answered += 1;
    }
    assert_eq!(answered, 8_000);
    // Eight thousand finished tasks spend tokio's cooperative budget; the `MockServer` dropped
    // at the end needs some of it (see `concurrent_tokens` in tests/source.rs), so the end of
    // the test starts on a fresh one.
    tokio::task::yield_now().await;
    idp.verify().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_holders_lock_expires_and_another_process_renews() {
    let redis = RedisServer::start().await;
    let idp = Idp::start(3600).await;
    let dead = RedisStore::connect(redis.url())
        .await
        .unwrap()
        .lock_ttl(Duration::from_secs(1));
    let alive = RedisStore::connect(redis.url())
        .await
        .unwrap()
        .lock_wait(Duration::from_secs(5));
    let source = TokenSource::builder(idp.client(), ClientCredentials::new())
        .store(alive)
        .build();

    // The "dead" process takes the lock and never releases it (dropping it does not).
    let lock = dead.lock(source.cache_key()).await.unwrap();
    assert!(lock.is_some());
    drop(lock);

    let started = Instant::now();
    let token = source.token().await.unwrap();
    let waited = started.elapsed();
    assert_eq!(access(&token), "tok-1");
    assert_eq!(idp.issued(), 1);
    assert!(
        waited >= Duration::from_millis(800),
        "renewed under a live lock after {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(3),
        "waited {waited:?} for a 1 s lock"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_is_released_only_by_its_holder_and_waiting_is_bounded() {
    let redis = RedisServer::start().await;
    let k = key();
    let lock_name = entry_name(&redis, &k)
        .await
        .replacen(":token:", ":lock:", 1);
    let first = RedisStore::connect(redis.url())
        .await
        .unwrap()
        .lock_ttl(Duration::from_millis(200));
    let second = RedisStore::connect(redis.url()).await.unwrap();
    let impatient = RedisStore::connect(redis.url())
        .await
        .unwrap()
        .lock_wait(Duration::from_millis(300));

    let stale = first.lock(&k).await.unwrap().unwrap();
    // The first holder's lock expires behind its back (its watchdog could not reach Redis, or
    // Redis lost the key in a failover).
    let _: () = redis::cmd("DEL")
        .arg(&lock_name)
        .query_async(&mut redis.raw().await)
        .await
        .unwrap();
    let held = second.lock(&k).await.unwrap().unwrap();
    let owner = raw_get(&redis, &lock_name).await.unwrap();

    // Releasing the lost lock late must not free the second holder's.
    stale.release().await;
    assert_eq!(raw_get(&redis, &lock_name).await, Some(owner));

    let started = Instant::now();
    let err = impatient.lock(&k).await.err().unwrap();
    assert!(matches!(err, Error::Store(_)), "{err:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(2),
        "{waited:?}"
    );

    held.release().await;
    assert_eq!(raw_get(&redis, &lock_name).await, None);
    let again = impatient.lock(&k).await.unwrap();
    assert!(again.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_keep_working_while_redis_is_down_and_the_store_recovers() {
    let mut redis = RedisServer::start().await;
    let idp = Idp::start(3600).await;
    let store = RedisStore::connect(redis.url())
        .await
        .unwrap()
        .operation_timeout(Duration::from_millis(300));
    let source = TokenSource::builder(idp.client(), ClientCredentials::new())
        .store(store.clone())
        .build();
    let k = source.cache_key().clone();

    let first = source.token().await.unwrap();
    assert_eq!(access(&first), "tok-1");
    assert!(
        raw_get(&redis, &entry_name(&redis, &k).await)
            .await
            .is_some()
    );

    redis.stop();
    // The cached token is served from memory, without the store.
    assert_eq!(access(&source.token().await.unwrap()), "tok-1");
    // A renewal goes ahead without the store: lock, read and write fail fast and are logged.
    source.invalidate(&first);
    let started = Instant::now();
    let second = source.token().await.unwrap();
    assert_eq!(access(&second), "tok-2");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let err = store.load(&k).await.unwrap_err();
    assert!(matches!(err, Error::Store(_)), "{err:?}");
    assert_eq!(access(&source.token().await.unwrap()), "tok-2");

    let redis = RedisServer::start_on(redis.port(), None).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.load(&k).await.is_err() {
        assert!(Instant::now() < deadline, "the store never reconnected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    source.invalidate(&second);
    let third = source.token().await.unwrap();
    assert_eq!(access(&third), "tok-3");
    let elsewhere = RedisStore::connect(redis.url()).await.unwrap();
    let stored = elsewhere
        .load(&k)
        .await
        .unwrap()
        .expect("saved after the restart");
    assert_eq!(access(&stored), "tok-3");
    assert_eq!(idp.issued(), 3);
}

/// A lazily connected store lets a service start before Redis is up: requests are served from
/// the token endpoint meanwhile, each store call fails fast, and the first call after Redis
/// comes up connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazy_store_starts_without_redis_and_connects_when_it_comes_up() {
    let port = unused_port();
    let idp = Idp::start(3600).await;
    let store = RedisStore::connect_lazy(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .operation_timeout(Duration::from_millis(300));
    let source = TokenSource::builder(idp.client(), ClientCredentials::new())
        .store(store.clone())
        .build();
    let k = source.cache_key().clone();

    let started = Instant::now();
    let first = source.token().await.unwrap();
    assert_eq!(access(&first), "tok-1");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let err = store.load(&k).await.unwrap_err();
    assert!(matches!(err, Error::Store(_)), "{err:?}");

    let redis = RedisServer::start_on(port, None).await;
    assert!(store.load(&k).await.unwrap().is_none(), "nothing saved yet");
    source.invalidate(&first);
    let second = source.token().await.unwrap();
    assert_eq!(access(&second), "tok-2");
    assert_eq!(
        access(&store.load(&k).await.unwrap().expect("saved once connected")),
        "tok-2"
    );
    assert!(
        raw_get(&redis, &entry_name(&redis, &k).await)
            .await
            .is_some()
    );
    assert_eq!(idp.issued(), 2);
}

/// Several callers arriving while Redis does not answer (a port that takes the connection and
/// never replies) all fail within about one operation timeout: they do not wait for each
/// other's connection attempts in turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_of_a_silent_lazy_store_fail_within_one_timeout() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let store = RedisStore::connect_lazy(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .operation_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.load(&key()).await })
        })
        .collect();
    for call in calls {
        let err = call.await.unwrap().unwrap_err();
        assert!(matches!(err, Error::Store(_)), "{err:?}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_refresh_token_is_in_redis_before_the_new_access_token_is_handed_out() {
    let redis = RedisServer::start().await;
    let idp = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("grant_type=client_credentials"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "at-1", "token_type": "Bearer", "expires_in": 3600,
            "refresh_token": "rt-1",
        })))
        .expect(1)
        .mount(&idp)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains("grant_type=refresh_token"))
        .and(body_string_contains("refresh_token=rt-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "at-2", "token_type": "Bearer", "expires_in": 3600,
            "refresh_token": "rt-2",
        })))
        .expect(1)
        .mount(&idp)
        .await;
    let client = client(&idp, "rotating");

    // Another process's view of Redis, read from inside the change hook.
    let other = RedisStore::connect(redis.url()).await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let key_for_hook = ClientCredentials::new().cache_key(&client);
    let hook_seen = seen.clone();
    let source = TokenSource::builder(client, ClientCredentials::new())
        .store(RedisStore::connect(redis.url()).await.unwrap())
        .on_token_change(move |new| {
            let stored = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(other.load(&key_for_hook))
            })
            .unwrap()
            .expect("the new token is in Redis when the hook runs");
            hook_seen.lock().unwrap().push((
                access(new),
                access(&stored),
                stored.refresh_token().unwrap().expose_secret().to_owned(),
            ));
        })
        .build();

    let first = source.token().await.unwrap();
    source.invalidate(&first);
    let second = source.token().await.unwrap();
    assert_eq!(access(&second), "at-2");
    assert_eq!(
        *seen.lock().unwrap(),
        [
            ("at-1".to_owned(), "at-1".to_owned(), "rt-1".to_owned()),
            ("at-2".to_owned(), "at-2".to_owned(), "rt-2".to_owned()),
        ]
    );
    idp.verify().await;
}

#[tokio::test]
async fn encrypted_entries_hide_the_tokens_and_other_keys_miss() {
    let redis = RedisServer::start().await;
    let k = key();
    let sealed = RedisStore::connect(redis.url())
        .await
        .unwrap()
        .encryption_key([7; 32]);
    sealed
        .save(
            &k,
            &token(
                "AT-SENTINEL-1",
                Some("RT-SENTINEL-2"),
                Duration::from_secs(600),
            ),
        )
        .await
        .unwrap();

    let raw = raw_get(&redis, &entry_name(&redis, &k).await)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(!text.contains("SENTINEL"), "{text}");

    let back = sealed.load(&k).await.unwrap().unwrap();
    assert_eq!(access(&back), "AT-SENTINEL-1");
    let other_key = sealed.clone().encryption_key([8; 32]);
    assert!(other_key.load(&k).await.unwrap().is_none());
    let plain = RedisStore::connect(redis.url()).await.unwrap();
    assert!(plain.load(&k).await.unwrap().is_none());
}

#[tokio::test]
async fn corrupt_foreign_and_future_entries_are_misses() {
    let redis = RedisServer::start().await;
    let store = RedisStore::connect(redis.url()).await.unwrap();
    let k = key();
    let name = entry_name(&redis, &k).await;
    let mut raw = redis.raw().await;

    store
        .save(&k, &token("AT-SENTINEL", None, Duration::from_secs(600)))
        .await
        .unwrap();
    let good = raw_get(&redis, &name).await.unwrap();
    let future = String::from_utf8(good.clone())
        .unwrap()
        .replace("\"version\":1", "\"version\":99")
        .into_bytes();
    let huge = vec![b'{'; 2 * 1024 * 1024];
    for bad in [
        &good[..good.len() / 2],
        b"".as_slice(),
        b"\x00\xff garbage",
        br#"{"format":"someone-else","version":1}"#,
        &future,
        &huge,
    ] {
        let _: () = redis::cmd("SET")
            .arg(&name)
            .arg(bad)
            .query_async(&mut raw)
            .await
            .unwrap();
        assert!(store.load(&k).await.unwrap().is_none());
    }

    let _: () = redis::cmd("DEL")
        .arg(&name)
        .query_async(&mut raw)
        .await
        .unwrap();
    let _: () = redis::cmd("RPUSH")
        .arg(&name)
        .arg("not a string")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(store.load(&k).await.unwrap().is_none(), "a list is a miss");

    store
        .save(&k, &token("AT-2", None, Duration::from_secs(600)))
        .await
        .unwrap();
    assert_eq!(access(&store.load(&k).await.unwrap().unwrap()), "AT-2");
    store.delete(&k).await.unwrap();
    assert!(store.load(&k).await.unwrap().is_none());
}

#[tokio::test]
async fn entries_expire_with_the_access_token_unless_they_hold_a_refresh_token() {
    let redis = RedisServer::start().await;
    let store = RedisStore::connect(redis.url())
        .await
        .unwrap()
        .refresh_token_ttl(Duration::from_secs(7 * 24 * 3600));
    let short = ClientCredentials::new().cache_key(&OAuthClient::builder("short").build().unwrap());
    store
        .save(&short, &token("AT", None, Duration::from_secs(600)))
        .await
        .unwrap();
    let ms = pttl(&redis, &short).await;
    assert!((655_000..=660_000).contains(&ms), "{ms}");

    let long = ClientCredentials::new().cache_key(&OAuthClient::builder("long").build().unwrap());
    store
        .save(&long, &token("AT", Some("RT"), Duration::from_secs(600)))
        .await
        .unwrap();
    let ms = pttl(&redis, &long).await;
    assert!((604_795_000..=604_800_000).contains(&ms), "{ms}");
}

#[tokio::test]
async fn the_redis_password_never_shows_in_debug_or_errors() {
    let port = free_port();
    let redis = RedisServer::start_on(port, Some("pw-SENTINEL-right")).await;

    let store = RedisStore::connect(redis.url()).await.unwrap();
    let shown = format!("{store:?}");
    assert!(!shown.contains("SENTINEL"), "{shown}");
    assert!(shown.contains(&format!("127.0.0.1:{port}")), "{shown}");
    let k = key();
    store
        .save(&k, &token("AT", None, Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(store.load(&k).await.unwrap().is_some());

    let wrong = format!("redis://:pw-SENTINEL-wrong@127.0.0.1:{port}");
    let closed = format!(
        "redis://user:pw-SENTINEL-closed@127.0.0.1:{}",
        unused_port()
    );
    for url in [wrong, closed] {
        let started = Instant::now();
        let err = RedisStore::connect(&url).await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert!(matches!(err, Error::Store(_)), "{err:?}");
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(!text.contains("SENTINEL"), "{text}");
        }
    }

    let err = RedisStore::connect("redis://:pw-SENTINEL-bad@[::1")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("SENTINEL"), "{err:?}");
}

#[tokio::test]
async fn redis_keys_are_named_under_a_salt_kept_in_redis_and_reveal_no_weak_secret() {
    use oauth_layer::flow::Password;
    use sha2::{Digest, Sha256};

    let redis = RedisServer::start().await;
    let client = OAuthClient::builder("app")
        .secret("password1")
        .token_url("https://idp.example/token")
        .build()
        .unwrap();
    let k = Password::new("alice", "password1").cache_key(&client);
    let a = RedisStore::connect(redis.url()).await.unwrap();
    let b = RedisStore::connect(redis.url()).await.unwrap();
    a.save(&k, &token("AT-salted", None, Duration::from_secs(600)))
        .await
        .unwrap();
    let held = a.lock(&k).await.unwrap().unwrap();

    // Another process finds the entry: one salt for every store on this Redis and prefix.
    assert_eq!(access(&b.load(&k).await.unwrap().unwrap()), "AT-salted");
    assert_eq!(
        a.entry_key(&k).await.unwrap(),
        b.entry_key(&k).await.unwrap()
    );
    let mut names: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut redis.raw().await)
        .await
        .unwrap();
    names.sort();
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(names[1], "oauth-layer:salt");
    let salt = String::from_utf8(raw_get(&redis, "oauth-layer:salt").await.unwrap()).unwrap();
    assert!(
        salt.len() == 64 && salt.bytes().all(|b| b.is_ascii_hexdigit()),
        "{salt}"
    );
    let digest: String = Sha256::digest(b"password1")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    for name in &names {
        assert!(
            !name.contains("password1") && !name.contains(&digest[..12]),
            "{name}"
        );
    }
    held.release().await;

    // Another prefix has its own salt, hence other names.
    let other = RedisStore::connect(redis.url())
        .await
        .unwrap()
        .prefix("other:");
    let suffix = |name: String| name.rsplit(':').next().unwrap().to_owned();
    assert_ne!(
        suffix(other.entry_key(&k).await.unwrap()),
        suffix(a.entry_key(&k).await.unwrap())
    );

    // A deleted salt is made again; a store that remembers the old one converges on the new
    // one when it next takes the renewal lock.
    let _: i64 = redis::cmd("DEL")
        .arg("oauth-layer:salt")
        .query_async(&mut redis.raw().await)
        .await
        .unwrap();
    let newcomer = RedisStore::connect(redis.url()).await.unwrap();
    let renamed = newcomer.entry_key(&k).await.unwrap();
    assert_ne!(renamed, a.entry_key(&k).await.unwrap());
    a.lock(&k).await.unwrap().unwrap().release().await;
    assert_eq!(a.entry_key(&k).await.unwrap(), renamed);
}

/// A source that starts from an expired access token and the refresh token `rt-1`, as a
/// process does after a restart.
fn rotating_source(client: &OAuthClient, store: RedisStore) -> TokenSource {
    TokenSource::builder(client.clone(), ClientCredentials::new())
        .store(store)
        .initial_token(spent_token())
        .build()
}

/// Two processes renew at the same moment through a token endpoint three times slower than the
/// lock's lifetime. The holder's lock is extended while it waits, so the other process waits
/// for it instead of taking an expired lock and replaying `rt-1` (which a rotating server
/// answers by revoking the grant), then finds the new token in Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_slower_than_the_lock_sends_a_rotating_refresh_token_once() {
    let redis = RedisServer::start().await;
    let idp = rotating_idp(Duration::from_millis(900)).await;
    let client = client(&idp, "rotating");
    let process = || async {
        RedisStore::connect(redis.url())
            .await
            .unwrap()
            .lock_ttl(Duration::from_millis(300))
            .lock_wait(Duration::from_secs(5))
    };
    let first = rotating_source(&client, process().await);
    let second = rotating_source(&client, process().await);

    let (a, b) = tokio::join!(first.token(), second.token());
    assert_eq!(access(&a.unwrap()), "at-2");
    assert_eq!(access(&b.unwrap()), "at-2");
    assert_eq!(requests_with(&idp, "refresh_token=rt-1").await, 1);
    assert_eq!(idp.received_requests().await.unwrap().len(), 1);
    let stored = process()
        .await
        .load(first.cache_key())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.refresh_token().unwrap().expose_secret(), "rt-2");
}

/// A holder whose lock was taken over (here: the lock key overwritten by "another process")
/// may no longer write: its save and delete are refused with `Error::LockLost`, and the entry
/// the new holder wrote stays.
#[tokio::test]
async fn a_holder_that_lost_its_lock_cannot_write() {
    let redis = RedisServer::start().await;
    let k = key();
    let lock_name = entry_name(&redis, &k)
        .await
        .replacen(":token:", ":lock:", 1);
    let holder = RedisStore::connect(redis.url()).await.unwrap();
    let newer = RedisStore::connect(redis.url()).await.unwrap();

    let lock = holder.lock(&k).await.unwrap().unwrap();
    holder
        .save(
            &k,
            &token("at-mine", Some("rt-mine"), Duration::from_secs(600)),
        )
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(&lock_name)
        .arg("another-holder")
        .query_async(&mut redis.raw().await)
        .await
        .unwrap();
    newer
        .save(
            &k,
            &token("at-new", Some("rt-new"), Duration::from_secs(600)),
        )
        .await
        .unwrap();

    let err = holder
        .save(
            &k,
            &token("at-stale", Some("rt-stale"), Duration::from_secs(600)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::LockLost(_)), "{err:?}");
    let err = holder.delete(&k).await.unwrap_err();
    assert!(matches!(err, Error::LockLost(_)), "{err:?}");
    assert_eq!(access(&newer.load(&k).await.unwrap().unwrap()), "at-new");

    // Releasing the lost lock frees nothing; once released, the store writes freely again.
    lock.release().await;
    assert_eq!(
        raw_get(&redis, &lock_name).await.as_deref(),
        Some(b"another-holder".as_slice())
    );
    holder
        .save(&k, &token("at-later", None, Duration::from_secs(600)))
        .await
        .unwrap();
    assert_eq!(access(&newer.load(&k).await.unwrap().unwrap()), "at-later");
}

/// The same through a source: its lock is taken over while the token endpoint is answering,
/// and the new holder stores `at-3`. The source's own `at-2` is refused by the store, never
/// handed out, and the newer stored token is what callers get.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_whose_lock_was_taken_over_serves_the_newer_stored_token() {
    let redis = RedisServer::start().await;
    let idp = rotating_idp(Duration::from_millis(600)).await;
    let client = client(&idp, "rotating");
    let store = RedisStore::connect(redis.url())
        .await
        .unwrap()
        .lock_ttl(Duration::from_millis(300));
    let source = rotating_source(&client, store);
    let k = source.cache_key().clone();
    let lock_name = entry_name(&redis, &k)
        .await
        .replacen(":token:", ":lock:", 1);

    let renewal = tokio::spawn({
        let source = source.clone();
        async move { source.token().await }
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while idp.received_requests().await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no token request");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _: () = redis::cmd("SET")
        .arg(&lock_name)
        .arg("another-holder")
        .arg("PX")
        .arg(10_000)
        .query_async(&mut redis.raw().await)
        .await
        .unwrap();
    let other = RedisStore::connect(redis.url()).await.unwrap();
    other
        .save(&k, &token("at-3", Some("rt-3"), Duration::from_secs(3600)))
        .await
        .unwrap();

    let got = renewal.await.unwrap().unwrap();
    assert_eq!(access(&got), "at-3");
    assert_eq!(access(&other.load(&k).await.unwrap().unwrap()), "at-3");
    assert_eq!(access(&source.token().await.unwrap()), "at-3");
}

/// The lock outlives its TTL while held (the watchdog extends it), and stops being extended
/// once released or dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lock_is_extended_until_released_or_dropped() {
    let redis = RedisServer::start().await;
    let k = key();
    let lock_name = entry_name(&redis, &k)
        .await
        .replacen(":token:", ":lock:", 1);
    let store = RedisStore::connect(redis.url())
        .await
        .unwrap()
        .lock_ttl(Duration::from_millis(300));

    let lock = store.lock(&k).await.unwrap().unwrap();
    let mine = raw_get(&redis, &lock_name).await.unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(raw_get(&redis, &lock_name).await, Some(mine));
    lock.release().await;
    assert_eq!(raw_get(&redis, &lock_name).await, None);

    let dropped = store.lock(&k).await.unwrap().unwrap();
    drop(dropped);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(raw_get(&redis, &lock_name).await, None, "still extended");
}

/// The default lock outlives the slowest renewal the defaults allow, so a holder whose
/// watchdog cannot reach Redis still keeps its lock to the end: a refresh answered
/// `invalid_grant` at the deadline (never retried), then a new grant's request with every
/// attempt at the deadline and the longest `Retry-After` between them, plus the store's calls
/// (read, delete, write, release).
#[test]
fn the_default_lock_outlives_the_slowest_default_renewal() {
    let retry = RetryPolicy::default();
    let deadline = oauth_layer::transport::DEFAULT_TIMEOUT;
    let between = retry.max_retry_after.max(retry.max_backoff);
    let one_grant = deadline * retry.max_attempts + between * (retry.max_attempts - 1);
    let store_calls = RedisStore::DEFAULT_OPERATION_TIMEOUT * 4;
    let slowest = deadline + one_grant + store_calls;
    assert!(
        RedisStore::DEFAULT_LOCK_TTL > slowest,
        "{:?} <= {slowest:?}",
        RedisStore::DEFAULT_LOCK_TTL
    );
}

/// `Duration::MAX` anywhere in the store's configuration saturates instead of panicking or
/// being refused by Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_max_in_the_configuration_saturates() {
    let redis = RedisServer::start().await;
    let idp = Idp::start(3600).await;
    let store = RedisStore::connect(redis.url())
        .await
        .unwrap()
        .lock_ttl(Duration::MAX)
        .lock_wait(Duration::MAX)
        .operation_timeout(Duration::MAX)
        .refresh_token_ttl(Duration::MAX);
    let k = key();
    let lock = store.lock(&k).await.unwrap().unwrap();
    store
        .save(&k, &token("at", Some("rt"), Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(pttl(&redis, &k).await > 0);
    lock.release().await;

    let source = TokenSource::builder(idp.client(), ClientCredentials::new())
        .store(store.clone())
        .build();
    assert_eq!(access(&source.token().await.unwrap()), "tok-1");
    assert_eq!(
        access(&store.load(source.cache_key()).await.unwrap().unwrap()),
        "tok-1"
    );
}

/// DPoP nonces shared by a fleet through the Redis store (`Dpop::share_nonces`), against the
/// crate's test server with nonces required at its token endpoint and at its resource.
#[cfg(all(feature = "dpop", feature = "testing", feature = "tower"))]
mod shared_nonces {
    use super::*;
    use oauth_layer::dpop::Dpop;
    use oauth_layer::testing::TestServer;
    use oauth_layer::{AuthMethod, OAuthLayer, OAuthMiddleware};
    use tower::{Service, ServiceExt};

    const NONCE_KEYS: &str = "oauth-layer:dpop-nonce:*";

    async fn strict_server() -> TestServer {
        TestServer::builder()
            .client("svc", Some("s3cret"), AuthMethod::ClientSecretBasic)
            .require_dpop(true)
            .require_dpop_nonce(true)
            .require_resource_dpop_nonce(true)
            .start()
            .await
            .unwrap()
    }

    /// One process of the fleet: its own client (own key, own nonce memory) and source.
    struct Process {
        source: TokenSource,
        http: reqwest_middleware::ClientWithMiddleware,
    }

    impl Process {
        fn new(server: &TestServer, dpop: Dpop) -> Self {
            let client = server
                .oauth_client_builder("svc")
                .unwrap()
                .dpop(dpop)
                .build()
                .unwrap();
            let source = TokenSource::new(client, ClientCredentials::new().scope("api:read"));
            let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
                .with(OAuthMiddleware::from_source(source.clone()))
                .build();
            Self { source, http }
        }

        /// A resource request through the middleware.
        async fn get(&self, server: &TestServer) -> u16 {
            let resp = self
                .http
                .get(server.resource_url("/api/hello"))
                .send()
                .await;
            resp.unwrap().status().as_u16()
        }

        /// A resource request through the tower layer, with the same source.
        async fn get_through_tower(&self, server: &TestServer) -> u16 {
            type Body = http_body_util::Full<bytes::Bytes>;
            let hyper =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http::<Body>();
            let mut service = tower::ServiceBuilder::new()
                .layer(OAuthLayer::from_source(self.source.clone()))
                .service(hyper);
            let request = http::Request::get(server.resource_url("/api/hello"))
                .body(Body::default())
                .unwrap();
            let resp = service.ready().await.unwrap().call(request).await.unwrap();
            resp.status().as_u16()
        }

        /// Drops the token, so the next request makes a token request.
        async fn forget_token(&self) {
            let token = self.source.token().await.unwrap();
            self.source.invalidate(&token);
        }
    }

    /// (token endpoint challenges, resource challenges) since the last reset.
    fn challenges(server: &TestServer) -> (usize, usize) {
        let token = server
            .token_request_log()
            .iter()
            .filter(|r| r.error.as_deref() == Some("use_dpop_nonce"))
            .count();
        let resource = server
            .resource_requests()
            .iter()
            .filter(|r| r.status == 401)
            .count();
        (token, resource)
    }

    /// The shared nonces in Redis, by value.
    async fn shared(redis: &RedisServer) -> Vec<String> {
        let mut raw = redis.raw().await;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(NONCE_KEYS)
            .query_async(&mut raw)
            .await
            .unwrap();
        let mut values = Vec::new();
        for key in keys {
            let value: Option<String> = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut raw)
                .await
                .unwrap_or_default();
            values.extend(value);
        }
        values.sort();
        values
    }

    /// Waits (briefly: writes go in the background) until Redis holds the server's current
    /// nonces.
    async fn until_shared(redis: &RedisServer, server: &TestServer) {
        let mut want = vec![server.dpop_nonce(), server.resource_dpop_nonce()];
        want.sort();
        let deadline = Instant::now() + Duration::from_secs(3);
        while shared(redis).await != want {
            assert!(Instant::now() < deadline, "{:?}", shared(redis).await);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_process_uses_the_nonces_the_first_learned_and_meets_no_challenge() {
        let redis = RedisServer::start().await;
        let server = strict_server().await;
        let store = RedisStore::connect(redis.url()).await.unwrap();

        let first = Process::new(&server, Dpop::new().share_nonces(store.clone()));
        assert_eq!(first.get(&server).await, 200);
        assert_eq!(challenges(&server), (1, 1), "one challenge per server");
        until_shared(&redis, &server).await;

        // Another process: its very first token request and resource requests carry the
        // shared nonces, through the middleware and through the tower layer.
        server.reset_counts();
        let dpop = Dpop::new().share_nonces(RedisStore::connect(redis.url()).await.unwrap());
        let second = Process::new(&server, dpop.clone());
        assert_eq!(second.get(&server).await, 200);
        assert_eq!(second.get_through_tower(&server).await, 200);
        let third = Process::new(&server, Dpop::new().share_nonces(store.clone()));
        assert_eq!(third.get_through_tower(&server).await, 200);
        assert_eq!(challenges(&server), (0, 0));
        let token_log = server.token_request_log();
        assert_eq!(token_log.len(), 2, "{token_log:?}");
        for request in &token_log {
            let proof = request.dpop.as_ref().unwrap();
            assert_eq!(proof.nonce, Some(server.dpop_nonce()), "{request:?}");
        }
        let resource_log = server.resource_requests();
        assert_eq!(resource_log.len(), 3);
        for request in &resource_log {
            let proof = request.dpop.as_ref().unwrap();
            assert!(proof.is_valid(), "{proof:?}");
            assert_eq!(proof.nonce, Some(server.resource_dpop_nonce()));
        }

        // Two bounded keys, kept for ten minutes; no nonce in any Debug output.
        let mut raw = redis.raw().await;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(NONCE_KEYS)
            .query_async(&mut raw)
            .await
            .unwrap();
        assert_eq!(keys.len(), 2, "{keys:?}");
        for key in &keys {
            assert_eq!(key.len(), "oauth-layer:dpop-nonce:".len() + 64, "{key}");
            let ttl: i64 = redis::cmd("PTTL")
                .arg(key)
                .query_async(&mut raw)
                .await
                .unwrap();
            assert!((1..=600_000).contains(&ttl), "{ttl}");
        }
        for shown in [format!("{dpop:?}"), format!("{store:?}")] {
            assert!(!shown.contains(&server.dpop_nonce()), "{shown}");
            assert!(!shown.contains(&server.resource_dpop_nonce()), "{shown}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rotated_nonce_learned_by_one_process_is_used_by_the_other() {
        let redis = RedisServer::start().await;
        let server = strict_server().await;
        let dpop = || {
            Dpop::new()
                .share_nonces(RedisStore::connect_lazy(redis.url()).unwrap())
                .shared_nonce_refresh(Duration::ZERO)
        };
        let (one, other) = (Process::new(&server, dpop()), Process::new(&server, dpop()));
        assert_eq!(one.get(&server).await, 200);
        until_shared(&redis, &server).await;
        assert_eq!(other.get(&server).await, 200);
        assert_eq!(challenges(&server), (1, 1));

        server.rotate_dpop_nonces();
        server.reset_counts();
        one.forget_token().await;
        assert_eq!(one.get(&server).await, 200);
        assert_eq!(
            challenges(&server),
            (1, 1),
            "the rotation costs one process"
        );
        until_shared(&redis, &server).await;

        server.reset_counts();
        other.forget_token().await;
        assert_eq!(other.get(&server).await, 200);
        assert_eq!(other.get_through_tower(&server).await, 200);
        assert_eq!(challenges(&server), (0, 0), "and only that one");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_redis_requests_work_as_without_sharing() {
        let server = strict_server().await;
        // Nothing listens there.
        let nowhere = RedisStore::connect_lazy(format!("redis://127.0.0.1:{}", unused_port()))
            .unwrap()
            .operation_timeout(Duration::from_millis(200));
        // Redis went away after the process connected.
        let mut redis = RedisServer::start().await;
        let gone = RedisStore::connect(redis.url())
            .await
            .unwrap()
            .operation_timeout(Duration::from_millis(200));
        redis.stop();

        for store in [nowhere, gone] {
            server.reset_counts();
            let process = Process::new(&server, Dpop::new().share_nonces(store));
            let started = Instant::now();
            for _ in 0..3 {
                assert_eq!(process.get(&server).await, 200);
            }
            assert_eq!(process.get_through_tower(&server).await, 200);
            assert_eq!(
                challenges(&server),
                (1, 1),
                "one challenge per server, no more"
            );
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{:?}",
                started.elapsed()
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn garbage_under_the_nonce_keys_is_ignored_and_replaced() {
        let redis = RedisServer::start().await;
        let server = strict_server().await;
        let dpop = || Dpop::new().share_nonces(RedisStore::connect_lazy(redis.url()).unwrap());
        assert_eq!(Process::new(&server, dpop()).get(&server).await, 200);
        until_shared(&redis, &server).await;
        let mut raw = redis.raw().await;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(NONCE_KEYS)
            .query_async(&mut raw)
            .await
            .unwrap();
        assert_eq!(keys.len(), 2);

        let garbage: [&[u8]; 4] = [b"has space", b"\xff\xfe not utf-8", &[b'x'; 5000], b""];
        for (i, bytes) in garbage.iter().enumerate() {
            for key in &keys {
                let _: () = redis::cmd("SET")
                    .arg(key)
                    .arg(*bytes)
                    .query_async(&mut raw)
                    .await
                    .unwrap();
            }
            server.reset_counts();
            let process = Process::new(&server, dpop());
            assert_eq!(process.get(&server).await, 200, "garbage {i}");
            assert_eq!(challenges(&server), (1, 1), "garbage {i}");
            until_shared(&redis, &server).await;
        }
        // Another type under the key.
        for key in &keys {
            let _: () = redis::cmd("DEL")
                .arg(key)
                .query_async(&mut raw)
                .await
                .unwrap();
            let _: () = redis::cmd("HSET")
                .arg(key)
                .arg("nonce")
                .arg("x")
                .query_async(&mut raw)
                .await
                .unwrap();
        }
        server.reset_counts();
        let process = Process::new(&server, dpop());
        assert_eq!(process.get(&server).await, 200);
        assert_eq!(process.get(&server).await, 200);
        assert_eq!(challenges(&server), (1, 1));
    }
}
