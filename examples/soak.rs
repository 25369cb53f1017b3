//! A soak run: steady load against the crate's local `TestServer` handing out 2-second access
//! tokens, through `OAuthMiddleware`, and the same load with a fixed `Authorization` header (to a
//! second `TestServer` whose token lives an hour) for comparison, in one run.
//!
//! It prints the requests sent, the requests that reached the API with an expired token (the
//! server's own record; must be 0), the 401s the caller saw (must be 0), the token requests made
//! next to the number expected, and p50/p99 latency for both. Exits 1 if a must-be-0 is not.
//!
//! It also prints the process's resident memory (`VmRSS` in `/proc/self/status`, Linux), the
//! heap bytes live (counted by a wrapper around the system allocator) and the open file
//! descriptors (connections, whose buffers are most of the heap) when the load starts, after a
//! warm-up (a tenth of the run, at most 30 s) and at the end. The harness itself does not
//! grow: latencies go into a fixed histogram, and the servers' request logs are read and
//! cleared every second. What still grows with the run is the test server's record of every
//! token it issued (a few hundred bytes each).
//!
//! ```text
//! cargo run --release --example soak -- [SECONDS (30)] [REQUESTS PER SECOND EACH (200)] [TOKEN LIFETIME IN SECONDS (2)]
//! ```
//!
//! With 5-second tokens the source renews every 2 s (the skew is half the lifetime, 2.5 s, and
//! the background renewal starts a tenth of the lifetime before that).

use std::alloc::System;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::header::AUTHORIZATION;
use http::{Extensions, HeaderValue, StatusCode};
use oauth_layer::flow::ClientCredentials;
use oauth_layer::testing::TestServer;
use oauth_layer::{AuthMethod, OAuthMiddleware, TokenSource};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The process's resident memory in KiB (Linux; 0 elsewhere).
fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

/// The heap bytes allocated and not yet freed, process-wide.
fn live_heap() -> i64 {
    let stats = GLOBAL.stats();
    // A reallocation is already in `bytes_allocated` or `bytes_deallocated`.
    stats.bytes_allocated as i64 - stats.bytes_deallocated as i64
}

/// The process's open file descriptors (Linux; 0 elsewhere): mostly its connections, client and
/// server side, each holding its read and write buffers.
fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

fn print_memory(when: &str) {
    println!(
        "memory {when:<22} resident {:>7} KiB, heap live {:>9} B, descriptors open {:>4}",
        resident_kib(),
        live_heap(),
        open_descriptors()
    );
}

/// The baseline: one fixed header on every request.
struct StaticHeader(HeaderValue);

#[async_trait::async_trait]
impl Middleware for StaticHeader {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        request.headers_mut().insert(AUTHORIZATION, self.0.clone());
        next.run(request, extensions).await
    }
}

/// Latencies are counted per microsecond up to this; slower ones in one last bucket.
const HISTOGRAM_MICROS: usize = 20_000;

/// What one side of the run saw.
struct Side {
    /// Requests per latency in microseconds (the last bucket: this long or longer): a fixed
    /// size, so a long soak does not grow the harness.
    latencies: Vec<u32>,
    sent: usize,
    unauthorized: usize,
    failed: usize,
}

impl Default for Side {
    fn default() -> Self {
        Self {
            latencies: vec![0; HISTOGRAM_MICROS + 1],
            sent: 0,
            unauthorized: 0,
            failed: 0,
        }
    }
}

impl Side {
    fn record(&mut self, latency: Duration) {
        let micros = usize::try_from(latency.as_micros()).unwrap_or(usize::MAX);
        self.latencies[micros.min(HISTOGRAM_MICROS)] += 1;
        self.sent += 1;
    }

    fn percentile(&self, p: usize) -> Duration {
        let rank = (self.sent * p / 100).min(self.sent.saturating_sub(1));
        let mut seen = 0;
        for (micros, count) in self.latencies.iter().enumerate() {
            seen += *count as usize;
            if seen > rank {
                return Duration::from_micros(micros as u64);
            }
        }
        Duration::ZERO
    }
}

async fn send(client: ClientWithMiddleware, url: String, side: Arc<Mutex<Side>>) {
    let start = Instant::now();
    let outcome = match client.get(&url).send().await {
        Ok(response) => {
            let status = response.status();
            response.bytes().await.map(|_| status).ok()
        }
        Err(_) => None,
    };
    let elapsed = start.elapsed();
    let mut side = side.lock().unwrap_or_else(|e| e.into_inner());
    side.record(elapsed);
    match outcome {
        Some(StatusCode::UNAUTHORIZED) => side.unauthorized += 1,
        Some(status) if status.is_success() => {}
        _ => side.failed += 1,
    }
}

#[tokio::main]
async fn main() -> Result<ExitCode, Error> {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().map_or(Ok(30), |a| a.parse())?;
    let rate: u32 = args.next().map_or(Ok(200), |a| a.parse())?;
    let lifetime = Duration::from_secs(args.next().map_or(Ok(2), |a| a.parse())?);

    let server = TestServer::builder()
        .client("soak", Some("s3cret"), AuthMethod::ClientSecretBasic)
        .access_token_lifetime(lifetime)
        .start()
        .await?;
    let ours = ClientBuilder::new(reqwest::Client::new())
        .with(OAuthMiddleware::client_credentials(server.oauth_client("soak")?).scope("api:read"))
        .build();

    // The baseline's server gives its one token an hour, so a fixed header stays valid.
    let baseline = TestServer::builder()
        .client("soak", Some("s3cret"), AuthMethod::ClientSecretBasic)
        .start()
        .await?;
    let token = TokenSource::new(
        baseline.oauth_client("soak")?,
        ClientCredentials::new().scope("api:read"),
    )
    .token()
    .await?;
    let fixed = ClientBuilder::new(reqwest::Client::new())
        .with(StaticHeader(token.header_value().clone()))
        .build();

    println!(
        "soak: {seconds} s at {rate} requests/s through each client, access tokens living {} s",
        lifetime.as_secs()
    );
    print_memory("at the start");
    let our_side = Arc::new(Mutex::new(Side::default()));
    let fixed_side = Arc::new(Mutex::new(Side::default()));
    let (our_url, fixed_url) = (
        server.resource_url("/api/soak"),
        baseline.resource_url("/api/soak"),
    );
    let mut tasks = JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let warm_up = Duration::from_secs(seconds / 10).min(Duration::from_secs(30));
    let mut warmed_up = false;
    let mut last_tally = started;
    let (mut expired, mut token_requests) = (0, 0);
    let mut n = 0u64;
    while Instant::now() < deadline {
        // The servers' logs grow with every request; read them and clear them every second.
        if last_tally.elapsed() >= Duration::from_secs(1) {
            (expired, token_requests) = tally(&server, expired, token_requests);
            baseline.reset_counts();
            last_tally = Instant::now();
        }
        if !warmed_up && started.elapsed() >= warm_up {
            print_memory(&format!("after {} s", warm_up.as_secs()));
            warmed_up = true;
        }
        tick.tick().await;
        let a = send(ours.clone(), our_url.clone(), our_side.clone());
        let b = send(fixed.clone(), fixed_url.clone(), fixed_side.clone());
        // Alternate which goes first, so neither is always second in line.
        if n.is_multiple_of(2) {
            tasks.spawn(a);
            tasks.spawn(b);
        } else {
            tasks.spawn(b);
            tasks.spawn(a);
        }
        n += 1;
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    drop(tasks);
    print_memory("at the end");
    let (expired, token_requests) = tally(&server, expired, token_requests);

    // The default skew is at most half the lifetime (1 s for 2 s tokens), and the background
    // renewal starts 10 % of the lifetime (0.2 s) before that: a token is renewed every 0.8 s.
    let skew = Duration::from_secs(30).min(lifetime / 2);
    let ahead = lifetime.mul_f64(0.1).min((lifetime - skew) / 2);
    let expected = seconds as f64 / (lifetime - skew - ahead).as_secs_f64();
    let our_side = our_side.lock().unwrap_or_else(|e| e.into_inner());
    let fixed_side = fixed_side.lock().unwrap_or_else(|e| e.into_inner());

    println!("requests sent:                    {}", our_side.sent);
    println!("requests with an expired token:   {expired} (must be 0)");
    println!(
        "401s seen by the caller:          {} (must be 0)",
        our_side.unauthorized
    );
    println!("other failures:                   {}", our_side.failed);
    println!("token requests:                   {token_requests} (expected about {expected:.0})");
    println!(
        "latency, OAuthMiddleware:         p50 {:>9.1?}  p99 {:>9.1?}",
        our_side.percentile(50),
        our_side.percentile(99)
    );
    println!(
        "latency, static header:           p50 {:>9.1?}  p99 {:>9.1?}  ({} requests, {} 401s)",
        fixed_side.percentile(50),
        fixed_side.percentile(99),
        fixed_side.sent,
        fixed_side.unauthorized
    );
    let ratio = our_side.percentile(99).as_secs_f64() / fixed_side.percentile(99).as_secs_f64();
    println!("p99 ratio (ours / static):        {ratio:.2} (target <= 1.10)");

    Ok(
        if expired == 0 && our_side.unauthorized == 0 && our_side.failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

/// Adds what `server` recorded since the last call (requests that reached the API with an
/// expired token, token requests) to the running totals, and clears its logs.
fn tally(server: &TestServer, expired: usize, token_requests: usize) -> (usize, usize) {
    let newly_expired = server
        .resource_requests()
        .iter()
        .filter(|r| r.status == 401)
        .count();
    let new_token_requests = server.token_requests();
    server.reset_counts();
    (expired + newly_expired, token_requests + new_token_requests)
}
