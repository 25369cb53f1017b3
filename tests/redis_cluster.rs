//! The Redis store on a Redis Cluster: three primaries and three replicas (all started here, on
//! free loopback ports, and stopped at the end), a fleet sharing it with rotating single-use
//! refresh tokens, and the primary owning the fleet's entry killed in the middle of a renewal.
//!
//! The entry and its renewal lock carry one hash tag, so the fenced write (a script touching
//! both) runs on one node instead of failing with `CROSSSLOT`; `WAIT` goes to the primary that
//! owns them. Without durability the replica promoted in the failover never had the rotated
//! refresh token, and the next process sends the spent one; with
//! `RedisDurability::replicas(1, ..)` the renewal hands its token out only once a replica holds
//! it, and the write follows the slot to the promoted replica.
//!
//! Needs `redis-server` and `redis-cli`; skips, saying so, where they cannot run.
#![cfg(feature = "redis-store")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod redis_support;

use std::time::Duration;

use oauth_layer::clock::SystemClock;
use oauth_layer::flow::{ClientCredentials, Flow};
use oauth_layer::store::{CacheKey, RedisDurability, RedisStore, TokenStore};
use oauth_layer::{OAuthClient, Token, TokenSource};
use redis_support::cluster::Cluster;
use redis_support::fleet::{Aftermath, client, requests_with, rotating_idp, spent_token};
use redis_support::redis_runs;
use secrecy::ExposeSecret;

/// How long the token endpoint takes to answer `rt-1`: long enough to cut the replica off
/// after the renewal lock reached it and before the new token is written.
const IDP_DELAY: Duration = Duration::from_millis(400);

fn store(cluster: &Cluster, durability: RedisDurability) -> RedisStore {
    RedisStore::cluster_lazy(cluster.urls())
        .unwrap()
        // The default: on a machine busy starting several clusters, a shorter bound fails a
        // renewal's calls, which then renews without the lock.
        .operation_timeout(RedisStore::DEFAULT_OPERATION_TIMEOUT)
        // Longer than a failover takes on a loaded machine (freeze, kill, promotion: 2-4 s in
        // CI, where a 1 s lock expired on the promoted replica before the durable write, and
        // the renewal was refused with `LockLost`); a lock the failover left behind (its
        // release never reached the replica) costs the next process what is left of it.
        .lock_ttl(Duration::from_secs(8))
        .durability(durability)
}

/// The fleet's entry: an expired `at-1` with `rt-1`, on the primary and its replica.
async fn seed(cluster: &Cluster, key: &CacheKey) -> RedisStore {
    let seed = store(
        cluster,
        RedisDurability::replicas(1, Duration::from_secs(5)),
    );
    seed.save(key, &spent_token()).await.unwrap();
    seed
}

/// The ports of the nodes that hold a key matching `pattern`.
async fn holders(cluster: &Cluster, pattern: &str) -> Vec<u16> {
    let mut ports = Vec::new();
    for node in cluster.topology(&[]).await.iter().filter(|n| n.primary) {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut cluster.node(node.port).raw().await)
            .await
            .unwrap();
        if !keys.is_empty() {
            ports.push(node.port);
        }
    }
    ports
}

/// The bytes of `key` on the node on `port`.
async fn entry_on(cluster: &Cluster, port: u16, key: &str) -> Option<Vec<u8>> {
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut cluster.node(port).raw().await)
        .await
        .unwrap()
}

/// Polls `done` every 10 ms, for at most twenty seconds (a loaded machine is slow to show it).
async fn wait_until<F: std::future::Future<Output = bool>>(what: &str, done: impl Fn() -> F) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(std::time::Instant::now() < deadline, "never saw {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A fleet of processes shares one entry: five sources renew at once, one token request is
/// made, and the renewal lock and the entry live on the one primary owning their slot. Without
/// the hash tag the fenced write under the lock fails with `CROSSSLOT` (the two keys hash to
/// different slots) and no process could store its token. A prefix whose brace would move the
/// tag is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_shares_one_entry_and_its_lock_on_one_node() {
    if !redis_runs("a_fleet_shares_one_entry_and_its_lock_on_one_node") {
        return;
    }
    let cluster = Cluster::start().await;
    let idp = rotating_idp(Duration::from_millis(200)).await;
    let client = client(&idp, "fleet");
    let key = ClientCredentials::new().cache_key(&client);
    let seeded = seed(&cluster, &key).await;
    let entry = seeded.entry_key(&key).await.unwrap();
    assert!(entry.contains('{') && entry.ends_with('}'), "{entry}");

    let fleet: Vec<_> = (0..5)
        .map(|_| {
            TokenSource::builder(client.clone(), ClientCredentials::new())
                .store(store(
                    &cluster,
                    RedisDurability::replicas(1, Duration::from_secs(5)),
                ))
                .build()
        })
        .collect();
    let renewals = fleet.iter().map(|source| source.token());
    for token in futures::future::join_all(renewals).await {
        assert_eq!(token.unwrap().access_token().expose_secret(), "at-2");
    }
    assert_eq!(idp.received_requests().await.unwrap().len(), 1);
    assert_eq!(requests_with(&idp, "refresh_token=rt-1").await, 1);

    // Under a held lock the fenced write and delete (one script, both keys) run, on the node
    // that holds both keys.
    let holder = store(&cluster, RedisDurability::Primary);
    let lock = holder.lock(&key).await.unwrap().expect("a Redis lock");
    let (owner, _) = cluster.owners(cluster.slot(&entry).await).await;
    assert_eq!(holders(&cluster, "*lock:*").await, vec![owner]);
    assert_eq!(holders(&cluster, "*token:*").await, vec![owner]);
    let newer = Token::builder("at-3")
        .expires_in(Duration::from_secs(3600))
        .refresh_token("rt-3")
        .build(&SystemClock)
        .unwrap();
    holder.save(&key, &newer).await.unwrap();
    let stored = holder.load(&key).await.unwrap().unwrap();
    assert_eq!(stored.access_token().expose_secret(), "at-3");
    holder.delete(&key).await.unwrap();
    assert!(holder.load(&key).await.unwrap().is_none());
    lock.release().await;
    assert!(holders(&cluster, "*lock:*").await.is_empty());

    // A prefix with a brace that would move the hash tag (the entry and its lock would hash to
    // different slots) is refused, saying why; a complete `{tag}` in it is fine (every key then
    // shares its slot).
    let token = Token::builder("at-4")
        .expires_in(Duration::from_secs(3600))
        .build(&SystemClock)
        .unwrap();
    for broken in ["app{:", "app{}:"] {
        let store = store(&cluster, RedisDurability::Primary).prefix(broken);
        let error = store.save(&key, &token).await.unwrap_err();
        assert!(matches!(error, oauth_layer::Error::Config(_)), "{error:?}");
        assert!(error.to_string().contains("hash tag"), "{error}");
    }
    let tagged = store(&cluster, RedisDurability::Primary).prefix("{billing}:");
    let lock = tagged.lock(&key).await.unwrap().expect("a Redis lock");
    tagged.save(&key, &token).await.unwrap();
    lock.release().await;
    assert!(tagged.load(&key).await.unwrap().is_some());
}

/// `WAIT` goes to the primary owning the entry's slot, not to every primary: with the other
/// primaries' replicas frozen a durable write is still confirmed at once; with the owner's own
/// replica frozen it is not, and fails within its bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_writes_wait_for_the_replica_of_the_entrys_primary() {
    if !redis_runs("durable_writes_wait_for_the_replica_of_the_entrys_primary") {
        return;
    }
    let cluster = Cluster::start().await;
    let idp = rotating_idp(Duration::ZERO).await;
    let key = ClientCredentials::new().cache_key(&client(&idp, "fleet"));
    let seeded = seed(&cluster, &key).await;
    let slot = cluster.slot(&seeded.entry_key(&key).await.unwrap()).await;
    let (_, own_replica) = cluster.owners(slot).await;
    let others: Vec<u16> = cluster
        .topology(&[])
        .await
        .into_iter()
        .filter(|n| !n.primary && n.port != own_replica)
        .map(|n| n.port)
        .collect();
    assert_eq!(others.len(), 2);
    let token = Token::builder("at-9")
        .expires_in(Duration::from_secs(3600))
        .refresh_token("rt-9")
        .build(&SystemClock)
        .unwrap();
    let durable = store(
        &cluster,
        RedisDurability::replicas(1, Duration::from_millis(600)),
    );
    // Connected while every node answers (a new connection reads the slot map from them).
    durable.load(&key).await.unwrap();

    for port in &others {
        cluster.node(*port).freeze();
    }
    let other_replicas_frozen = durable.save(&key, &token).await;
    // Under the lock, too: its confirmation and the fenced write go to the owner.
    let lock = durable.lock(&key).await.unwrap().expect("a Redis lock");
    let fenced = durable.save(&key, &token).await;
    lock.release().await;
    for port in &others {
        cluster.node(*port).thaw();
    }
    other_replicas_frozen.unwrap();
    fenced.unwrap();

    cluster.node(own_replica).freeze();
    let own_replica_frozen = durable.save(&key, &token).await;
    cluster.node(own_replica).thaw();
    let error = own_replica_frozen.unwrap_err().to_string();
    assert!(error.contains("not confirmed by 1 replicas"), "{error}");
}

/// A replica that hangs does not hold up the scripts a renewal runs on its primary. The store
/// runs them by hash and, where the primary has not cached one yet (after every restart or
/// failover), sends it whole to that primary; a cluster client's `SCRIPT LOAD` instead goes to
/// every node it knows, the hung replica too, and the fenced write waited for it until it timed
/// out (the token then went unstored).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_replica_does_not_hold_up_the_locked_write_on_its_primary() {
    if !redis_runs("a_hung_replica_does_not_hold_up_the_locked_write_on_its_primary") {
        return;
    }
    let cluster = Cluster::start().await;
    let idp = rotating_idp(Duration::ZERO).await;
    let key = ClientCredentials::new().cache_key(&client(&idp, "fleet"));
    let seeded = seed(&cluster, &key).await;
    let entry = seeded.entry_key(&key).await.unwrap();
    let (primary, replica) = cluster.owners(cluster.slot(&entry).await).await;
    // The store's slot map names the replica (it is read when the store connects).
    cluster.wait_until_listed(replica).await;
    let store =
        store(&cluster, RedisDurability::Primary).operation_timeout(Duration::from_millis(1500));
    store.load(&key).await.unwrap();

    let lock = store.lock(&key).await.unwrap().expect("a Redis lock");
    cluster.node(replica).freeze();
    let token = Token::builder("at-5")
        .expires_in(Duration::from_secs(3600))
        .refresh_token("rt-5")
        .build(&SystemClock)
        .unwrap();
    let started = std::time::Instant::now();
    let written = store.save(&key, &token).await;
    lock.release().await;
    let took = started.elapsed();
    let lock_left = holders(&cluster, "*lock:*").await;
    cluster.node(replica).thaw();

    written.unwrap();
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    let stored = cluster_entry(&cluster, &key).await;
    assert_eq!(stored.as_deref(), Some("at-5"));
    assert!(
        lock_left.is_empty(),
        "the lock was not released on {lock_left:?}"
    );
    assert!(entry_on(&cluster, primary, &entry).await.is_some());
}

/// The access token the cluster holds for `key`, read by a new store.
async fn cluster_entry(cluster: &Cluster, key: &CacheKey) -> Option<String> {
    store(cluster, RedisDurability::Primary)
        .load(key)
        .await
        .unwrap()
        .map(|t| t.access_token().expose_secret().to_owned())
}

/// One process renews the fleet's entry; while the token endpoint answers, the replica of the
/// primary owning the entry is cut off (frozen, and its link closed on the primary, so nothing
/// written from then on reaches it); just after the write the primary is killed, and the
/// cluster promotes the replica. An operator adds a replica to the new primary. Then another
/// process asks for a token.
async fn failover_mid_renewal(durability: RedisDurability) -> Aftermath {
    // What the store and the source did, shown when the test fails.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("oauth_layer=debug")
        .try_init();
    let mut cluster = Cluster::start().await;
    let idp = rotating_idp(IDP_DELAY).await;
    let client = client(&idp, "fleet");
    let key = ClientCredentials::new().cache_key(&client);
    let seeded = seed(&cluster, &key).await;
    let entry = seeded.entry_key(&key).await.unwrap();
    let slot = cluster.slot(&entry).await;
    let (primary, replica) = cluster.owners(slot).await;
    let on_primary = || async { entry_on(&cluster, primary, &entry).await };
    let seeded_entry = on_primary().await;
    // The renewing store's slot map names the replica, as a long-running process's does.
    cluster.wait_until_listed(replica).await;

    let renewing_store = store(&cluster, durability);
    renewing_store.load(&key).await.unwrap();
    let renewing = TokenSource::builder(client.clone(), ClientCredentials::new())
        .store(renewing_store)
        .build();
    let renewal = tokio::spawn(async move { renewing.token().await });
    // Once the lock is taken (and, with durability, confirmed by the replica), the replica is
    // cut off, before the token endpoint answers.
    wait_until("the renewal lock", || async {
        !holders(&cluster, "*lock:*").await.is_empty()
    })
    .await;
    tokio::time::sleep(IDP_DELAY / 4).await;
    cluster.node(replica).freeze();
    let _: redis::Value = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("replica")
        .query_async(&mut cluster.node(primary).raw().await)
        .await
        .unwrap();
    // The rotated token is written on the primary; a renewal that does not wait for replicas
    // hands it out right after (one more call, to release the lock).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while on_primary().await == seeded_entry {
        if std::time::Instant::now() > deadline {
            let renewed = if renewal.is_finished() {
                format!("{:?}", renewal.await.unwrap().map(|_| "a token"))
            } else {
                "still running".to_owned()
            };
            panic!(
                "never saw the rotated token on the primary ({primary}; replica {replica}); \
                 the renewal: {renewed}\n{}",
                cluster.describe(&entry).await
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let handed_out_before_failover = renewal.is_finished();
    cluster.kill(primary);
    cluster.node(replica).thaw();
    cluster.wait_for_primary(slot, replica, &[primary]).await;
    cluster.add_replica_of(replica).await;

    let survivor = store(&cluster, RedisDurability::Primary);
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
/// failover loses `rt-2`, the next process sends `rt-1` again, and the grant is revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_durability_a_cluster_failover_loses_the_rotated_refresh_token() {
    if !redis_runs("without_durability_a_cluster_failover_loses_the_rotated_refresh_token") {
        return;
    }
    failover_mid_renewal(RedisDurability::Primary)
        .await
        .assert_rotated_refresh_token_lost();
}

/// With durability the renewal waits for a replica to confirm `rt-2` before handing `at-2`
/// out; the write follows the slot to the promoted replica, which holds `rt-2`, and the next
/// process uses the new token without a token request. `rt-1` is sent once, and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_durability_a_rotated_refresh_token_survives_a_cluster_failover() {
    if !redis_runs("with_durability_a_rotated_refresh_token_survives_a_cluster_failover") {
        return;
    }
    let after = failover_mid_renewal(RedisDurability::replicas(1, Duration::from_secs(20))).await;
    after.assert_rotated_refresh_token_survived();
    assert_eq!(after.requests, 1, "the next process made a token request");
}

/// Passwords in cluster node URLs never show: not in the store's `Debug`, not in the error
/// when no node answers (which comes within the operation timeout). A prefix whose brace would
/// split the entry and its lock across slots is refused, saying why.
#[tokio::test]
async fn cluster_passwords_never_show() {
    let port = redis_support::free_port();
    let store = RedisStore::cluster_lazy([
        format!("redis://:pw-SECRET-1@127.0.0.1:{port}"),
        format!("redis://:pw-SECRET-1@127.0.0.1:{}", port + 1),
    ])
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

    let error = RedisStore::cluster_lazy(Vec::<String>::new()).unwrap_err();
    assert!(matches!(error, oauth_layer::Error::Config(_)), "{error:?}");
    let error = RedisStore::cluster_lazy([
        "redis://:pw-SECRET-1@127.0.0.1:1",
        "redis://:pw-SECRET-2@127.0.0.1:2",
    ])
    .unwrap_err();
    assert!(matches!(error, oauth_layer::Error::Config(_)), "{error:?}");
    assert!(
        !format!("{error} {error:?}").contains("SECRET"),
        "{error:?}"
    );
}

/// Credentials travel in the node URLs: on a cluster whose nodes ask for a password, a store
/// with it in its URLs takes the lock and writes under it; without it every call fails saying
/// the server wants authentication; with a wrong one, that authentication failed. No error and
/// no `Debug` shows a password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_credentials_come_from_the_node_urls() {
    if !redis_runs("cluster_credentials_come_from_the_node_urls") {
        return;
    }
    let cluster = Cluster::start_with(Some("pw-CLUSTER-SECRET")).await;
    let key = ClientCredentials::new().cache_key(&OAuthClient::builder("id").build().unwrap());
    let token = Token::builder("at-1")
        .expires_in(Duration::from_secs(3600))
        .refresh_token("rt-1")
        .build(&SystemClock)
        .unwrap();

    let urls = cluster.urls();
    assert!(urls.iter().all(|u| u.contains("pw-CLUSTER-SECRET@")));
    let store = RedisStore::connect_cluster(&urls)
        .await
        .unwrap()
        .durability(RedisDurability::replicas(1, Duration::from_secs(5)));
    assert!(!format!("{store:?}").contains("SECRET"));
    let lock = store.lock(&key).await.unwrap().expect("a Redis lock");
    store.save(&key, &token).await.unwrap();
    lock.release().await;
    let stored = store.load(&key).await.unwrap().unwrap();
    assert_eq!(stored.refresh_token().unwrap().expose_secret(), "rt-1");

    let without: Vec<String> = urls
        .iter()
        .map(|u| u.replace(":pw-CLUSTER-SECRET@", ""))
        .collect();
    let wrong: Vec<String> = urls
        .iter()
        .map(|u| u.replace("pw-CLUSTER-SECRET", "pw-WRONG-SECRET"))
        .collect();
    for (urls, expected) in [(without, "NOAUTH"), (wrong, "uthentication")] {
        let store = RedisStore::cluster_lazy(&urls)
            .unwrap()
            .operation_timeout(Duration::from_millis(500));
        let error = store.load(&key).await.unwrap_err();
        assert!(matches!(error, oauth_layer::Error::Store(_)), "{error:?}");
        let text = format!("{error} {error:?}");
        assert!(!text.contains("SECRET"), "{text}");
        assert!(text.contains(expected), "{text}");
    }
}
