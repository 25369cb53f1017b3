//! The Redis store through a failover: a primary, a replica and a Sentinel (all started here,
//! on free loopback ports, and stopped at the end), a fleet behind the Sentinel with rotating
//! single-use refresh tokens, and the primary killed just after a renewal wrote the rotated
//! refresh token while the replica was cut off from it.
//!
//! Without durability the promoted replica never had the new refresh token: the next process
//! sends the spent one and the server revokes the grant. With
//! `RedisDurability::replicas(1, ..)` the renewal does not hand its token out until a replica
//! holds it; the write follows the Sentinel to the new primary, and the next process uses the
//! new token.
//!
//! Needs `redis-server` (which runs as a Sentinel with `--sentinel`); skips, saying so, where it
//! cannot run.
#![cfg(feature = "redis-store")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod redis_support;

use std::time::Duration;

use oauth_layer::clock::SystemClock;
use oauth_layer::flow::{ClientCredentials, Flow};
use oauth_layer::store::{RedisDurability, RedisStore, TokenStore};
use oauth_layer::{OAuthClient, Token, TokenSource};
use redis_support::fleet::{Aftermath, client, requests_with, rotating_idp, spent_token};
use redis_support::{RedisServer, ReplicationLink, SERVICE, Sentinel, redis_runs};
use secrecy::ExposeSecret;
use serde_json::json;
use wiremock::matchers::{body_string_contains, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// How long the token endpoint takes to answer `rt-1`: long enough to cut the replica off
/// after the renewal lock reached the replica and before the new token is written.
const IDP_DELAY: Duration = Duration::from_millis(400);

fn store(sentinel: &Sentinel, durability: RedisDurability) -> RedisStore {
    RedisStore::sentinel_lazy([sentinel.url()], SERVICE)
        .unwrap()
        .operation_timeout(Duration::from_millis(500))
        // A lock the failover left behind (its release never reached the replica) costs the
        // next process one lock lifetime.
        .lock_ttl(Duration::from_secs(1))
        .durability(durability)
}

/// The fleet's entry holds an expired `at-1` and `rt-1`, on the primary and the replica. One
/// process renews; while the token endpoint answers, the replica is cut off from the primary
/// (nothing crosses their link); the primary is killed just after the write and the replica promoted. Then another
/// process asks for a token.
async fn failover_mid_renewal(durability: RedisDurability) -> Aftermath {
    let primary = RedisServer::start().await;
    let link = ReplicationLink::to(&primary).await;
    let replica = RedisServer::replica_over(&link).await;
    let sentinel = Sentinel::watch(&primary).await;
    sentinel.wait_for_replicas(1).await;
    let idp = rotating_idp(IDP_DELAY).await;
    let client = client(&idp, "fleet");
    let key = ClientCredentials::new().cache_key(&client);

    let seed = store(
        &sentinel,
        RedisDurability::replicas(1, Duration::from_secs(5)),
    );
    seed.save(&key, &spent_token()).await.unwrap();

    let renewing = TokenSource::builder(client.clone(), ClientCredentials::new())
        .store(store(&sentinel, durability))
        .build();
    let renewal = tokio::spawn(async move { renewing.token().await });
    // The lock is taken (and, with durability, confirmed by the replica) at once; the replica
    // is cut off before the token endpoint answers, so the rotated token reaches the primary only.
    tokio::time::sleep(IDP_DELAY / 2).await;
    link.cut();
    tokio::time::sleep(IDP_DELAY).await;
    let handed_out_before_failover = renewal.is_finished();
    let mut primary = primary;
    primary.stop();
    sentinel.wait_for_primary(replica.port()).await;
    // A new replica for the new primary, as an operator (or Sentinel, for the old primary once
    // it returns) provides; a durable write waiting for one is confirmed then.
    let _new_replica = RedisServer::replica_of(&replica).await;

    let survivor = store(&sentinel, RedisDurability::Primary);
    Aftermath::gather(
        handed_out_before_failover,
        renewal,
        survivor,
        client,
        &key,
        &idp,
    )
    .await
}

/// Without durability the renewal hands `at-2` out as soon as the primary has `rt-2`; the
/// failover loses `rt-2`, the next process sends `rt-1` again, and the grant is revoked. This
/// is the loss the durability setting closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_durability_a_failover_loses_the_rotated_refresh_token() {
    if !redis_runs("without_durability_a_failover_loses_the_rotated_refresh_token") {
        return;
    }
    failover_mid_renewal(RedisDurability::Primary)
        .await
        .assert_rotated_refresh_token_lost();
}

/// With durability the renewal waits for a replica to confirm `rt-2` before handing `at-2`
/// out; the write follows the Sentinel to the promoted replica, which holds `rt-2`, and the
/// next process uses the new token without a token request. `rt-1` is sent once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_durability_a_rotated_refresh_token_survives_a_failover() {
    if !redis_runs("with_durability_a_rotated_refresh_token_survives_a_failover") {
        return;
    }
    let after = failover_mid_renewal(RedisDurability::replicas(1, Duration::from_secs(10))).await;
    after.assert_rotated_refresh_token_survived();
}

/// A password in a Sentinel URL never shows: not in the store's `Debug`, not in the error when
/// no Sentinel answers (which comes within the operation timeout).
#[tokio::test]
async fn a_sentinel_password_never_shows() {
    let store = RedisStore::sentinel_lazy(
        [format!(
            "redis://:pw-SECRET-1@127.0.0.1:{}",
            redis_support::free_port()
        )],
        SERVICE,
    )
    .unwrap()
    .operation_timeout(Duration::from_millis(500));
    let shown = format!("{store:?}");
    assert!(
        !shown.contains("SECRET") && shown.contains("[redacted]@127.0.0.1"),
        "{shown}"
    );
    let started = std::time::Instant::now();
    let key = ClientCredentials::new().cache_key(&OAuthClient::builder("id").build().unwrap());
    let error = store.load(&key).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(error, oauth_layer::Error::Store(_)), "{error:?}");
    assert!(
        !format!("{error} {error:?}").contains("SECRET"),
        "{error:?}"
    );

    let error = RedisStore::sentinel_lazy(Vec::<String>::new(), SERVICE).unwrap_err();
    assert!(matches!(error, oauth_layer::Error::Config(_)), "{error:?}");
}

/// A rotating authorization server for two renewals: `rt-1` is answered once, slowly, with
/// `at-2`/`rt-2`; `rt-2` once with `at-3`/`rt-3`; anything else (a refresh token sent twice) is
/// `invalid_grant`.
async fn rotating_idp_twice() -> MockServer {
    let idp = rotating_idp(IDP_DELAY).await;
    Mock::given(method("POST"))
        .and(body_string_contains("refresh_token=rt-2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "at-3", "token_type": "Bearer", "expires_in": 3600,
            "refresh_token": "rt-3",
        })))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&idp)
        .await;
    idp
}

/// A durable write that gives up before the failover is over leaves the spent refresh token in
/// the store: the renewal's write of `rt-2` reached only the primary (the replica was cut off),
/// the replicas never confirmed it within its 300 ms, and the primary died; the promoted replica
/// holds `rt-1`, which the server already rotated. The renewing process keeps `at-2`/`rt-2` in
/// memory, and it must never send `rt-1` again, nor leave it for the others: its next renewal
/// sends `rt-2`, and it writes its newest token back (under the lock) until a replica confirms
/// it, so the next process uses that without a token request. Each refresh token is sent once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_refresh_token_left_in_the_store_by_a_failover_is_never_sent_again() {
    if !redis_runs("a_spent_refresh_token_left_in_the_store_by_a_failover_is_never_sent_again") {
        return;
    }
    let primary = RedisServer::start().await;
    let link = ReplicationLink::to(&primary).await;
    let replica = RedisServer::replica_over(&link).await;
    let sentinel = Sentinel::watch(&primary).await;
    sentinel.wait_for_replicas(1).await;
    let idp = rotating_idp_twice().await;
    let client = client(&idp, "fleet");
    let key = ClientCredentials::new().cache_key(&client);
    store(
        &sentinel,
        RedisDurability::replicas(1, Duration::from_secs(5)),
    )
    .save(&key, &spent_token())
    .await
    .unwrap();

    let renewing_store = store(
        &sentinel,
        RedisDurability::replicas(1, Duration::from_millis(300)),
    );
    let renewing = TokenSource::builder(client.clone(), ClientCredentials::new())
        .store(renewing_store)
        .build();
    let renewal = tokio::spawn({
        let renewing = renewing.clone();
        async move { renewing.token().await }
    });
    tokio::time::sleep(IDP_DELAY / 2).await;
    link.cut();
    // The write is not confirmed in time: the token is kept in memory and handed out.
    let first = renewal.await.unwrap().unwrap();
    assert_eq!(first.access_token().expose_secret(), "at-2");
    let mut primary = primary;
    primary.stop();
    sentinel.wait_for_primary(replica.port()).await;

    // The next renewal of the same process sends `rt-2`, whatever the promoted replica holds,
    // and under the fleet's lock: its store's first call after the failover finds the old
    // primary gone and is sent again to the new one (had it failed, the source would have
    // renewed without the lock, with a client credentials grant of its own).
    assert!(renewing.invalidate(&first));
    let second = renewing.token().await.unwrap();
    assert_eq!(second.access_token().expose_secret(), "at-3");

    // Once the new primary has a replica, the newest token is written back and confirmed.
    let _new_replica = RedisServer::replica_of(&replica).await;
    let survivor = store(&sentinel, RedisDurability::Primary);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stored = survivor.load(&key).await.ok().flatten();
        let refresh = stored.and_then(|t| t.refresh_token().map(|r| r.expose_secret().to_owned()));
        if refresh.as_deref() == Some("rt-3") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the store still holds {refresh:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let next = TokenSource::builder(client, ClientCredentials::new())
        .store(survivor)
        .build();
    let token = next.token().await.unwrap();
    assert_eq!(token.access_token().expose_secret(), "at-3");
    assert_eq!(requests_with(&idp, "refresh_token=rt-1").await, 1);
    assert_eq!(requests_with(&idp, "refresh_token=rt-2").await, 1);
    assert_eq!(idp.received_requests().await.unwrap().len(), 2);
}

/// A store connected before a failover reaches the new primary on its first call after it: the
/// call that finds the old primary gone is sent again, within the operation timeout, on a new
/// connection to the primary the Sentinel names now. (Before, that call failed, and a renewal
/// making it ran without the fleet's lock.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_calls_after_a_failover_reach_the_new_primary() {
    if !redis_runs("the_first_calls_after_a_failover_reach_the_new_primary") {
        return;
    }
    let mut primary = RedisServer::start().await;
    let link = ReplicationLink::to(&primary).await;
    let replica = RedisServer::replica_over(&link).await;
    let sentinel = Sentinel::watch(&primary).await;
    sentinel.wait_for_replicas(1).await;
    let idp = rotating_idp(IDP_DELAY).await;
    let key = ClientCredentials::new().cache_key(&client(&idp, "fleet"));
    let token = Token::builder("at-1")
        .expires_in(Duration::from_secs(3600))
        .refresh_token("rt-1")
        .build(&SystemClock)
        .unwrap();
    let reader = store(&sentinel, RedisDurability::Primary);
    let locker = store(&sentinel, RedisDurability::Primary);
    store(
        &sentinel,
        RedisDurability::replicas(1, Duration::from_secs(5)),
    )
    .save(&key, &token)
    .await
    .unwrap();
    // Both connected to the first primary.
    assert!(reader.load(&key).await.unwrap().is_some());
    assert!(locker.load(&key).await.unwrap().is_some());

    primary.stop();
    sentinel.wait_for_primary(replica.port()).await;

    let loaded = reader.load(&key).await.unwrap().expect("the entry");
    assert_eq!(loaded.access_token().expose_secret(), "at-1");
    let lock = locker.lock(&key).await.unwrap().expect("a Redis lock");
    let newer = Token::builder("at-2")
        .expires_in(Duration::from_secs(3600))
        .refresh_token("rt-2")
        .build(&SystemClock)
        .unwrap();
    locker.save(&key, &newer).await.unwrap();
    lock.release().await;
    let stored = reader.load(&key).await.unwrap().expect("the entry");
    assert_eq!(stored.access_token().expose_secret(), "at-2");
}
