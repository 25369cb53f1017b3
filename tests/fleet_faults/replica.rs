//! One replica of the fleet: the harness runs this test binary again inside the replica's
//! namespace (`ip netns exec`), with `FLEET_REPLICA` set. It shares tokens through the crate's
//! `RedisStore`, calls the protected resource through `OAuthMiddleware` in a loop, and prints
//! one JSON line per call on stdout: `{"r":replica,"status":200,"ms":12}` (status 0 when the
//! call failed, with the error in `error`).
//!
//! A process cannot have a wall clock of its own inside a network namespace (namespaces do not
//! separate time), so each replica's clock offset goes through the crate's injectable clock:
//! [`OffsetClock`] is the system clock shifted by `FLEET_OFFSET_MS`, given to the client (which
//! dates the tokens it gets) and to the store (which reads the dates of stored tokens).

use std::time::{Duration, Instant, SystemTime};

use oauth_layer::clock::{Clock, Sleep, SystemClock};
use oauth_layer::flow::Password;
use oauth_layer::store::RedisStore;
use oauth_layer::{OAuthClient, OAuthMiddleware, TokenSource};
use tokio::net::TcpListener;

use crate::relay;

/// The system clock, with the wall time shifted by a fixed offset (monotonic time is shared by
/// every process on a host, and untouched).
#[derive(Debug, Clone)]
pub(crate) struct OffsetClock {
    ahead_ms: i64,
}

impl Clock for OffsetClock {
    fn now(&self) -> Instant {
        SystemClock.now()
    }

    fn now_fast(&self) -> Instant {
        SystemClock.now_fast()
    }

    fn now_utc(&self) -> SystemTime {
        let now = SystemTime::now();
        let by = Duration::from_millis(self.ahead_ms.unsigned_abs());
        if self.ahead_ms >= 0 {
            now + by
        } else {
            now - by
        }
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        SystemClock.sleep(duration)
    }
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

fn idp_port() -> u16 {
    var("FLEET_IDP_PORT").parse().expect("port")
}

fn millis(name: &str) -> Duration {
    Duration::from_millis(var(name).parse().expect("milliseconds"))
}

/// The replica's main loop; never returns (the harness kills the process).
pub(crate) async fn run() {
    let replica: usize = var("FLEET_REPLICA").parse().expect("replica number");
    let idp: std::net::SocketAddr = var("FLEET_IDP").parse().expect("IdP address");
    let clock = OffsetClock {
        ahead_ms: var("FLEET_OFFSET_MS").parse().expect("offset"),
    };

    // The same port on every replica's loopback (the server's own), so that every replica names
    // the same token endpoint and so the same cache key.
    let local = TcpListener::bind(("127.0.0.1", idp_port()))
        .await
        .expect("loopback");
    let base = format!("http://{}", local.local_addr().expect("address"));
    tokio::spawn(relay::plain(local, idp));

    let client = OAuthClient::builder("fleet")
        .secret("fleet-secret")
        .token_url(format!("{base}/token"))
        .clock(clock.clone())
        .build()
        .expect("client");
    let store = RedisStore::connect_lazy(var("FLEET_REDIS"))
        .expect("Redis URL")
        .prefix(var("FLEET_PREFIX"))
        .lock_ttl(millis("FLEET_LOCK_TTL_MS"))
        .operation_timeout(millis("FLEET_STORE_TIMEOUT_MS"))
        .clock(clock);
    let tokens = TokenSource::builder(client, Password::new("alice", "alice-password"))
        .store(store)
        .skew(millis("FLEET_SKEW_MS"))
        .refresh_fraction(0.3)
        .failure_memory(Duration::from_millis(200))
        .build();
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(OAuthMiddleware::from_source(tokens))
        .build();
    let url = format!("{base}/api/fleet");
    let pause = millis("FLEET_CALL_EVERY_MS");
    let deadline = millis("FLEET_CALL_DEADLINE_MS");
    println!("{{\"r\":{replica},\"ready\":true}}");
    loop {
        let started = Instant::now();
        let outcome = tokio::time::timeout(deadline, http.get(&url).send()).await;
        let ms = started.elapsed().as_millis();
        let line = match outcome {
            Ok(Ok(answer)) => {
                serde_json::json!({"r": replica, "status": answer.status().as_u16(), "ms": ms})
            }
            Ok(Err(e)) => {
                serde_json::json!({"r": replica, "status": 0, "ms": ms, "error": e.to_string()})
            }
            Err(_) => serde_json::json!({"r": replica, "status": 0, "ms": ms, "error": "deadline"}),
        };
        println!("{line}");
        tokio::time::sleep(pause).await;
    }
}
