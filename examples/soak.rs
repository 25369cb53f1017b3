//! A soak run: steady load against the crate's local `TestServer` handing out 2-second access
//! tokens, through `OAuthMiddleware`, and the same load with a fixed `Authorization` header (to a
//! second `TestServer` whose token lives an hour) for comparison, in one run.
//!
//! It prints the requests sent, the requests that reached the API with an expired token (the
//! server's own record; must be 0), the 401s the caller saw (must be 0), the token requests made
//! next to the number expected, and p50/p99 latency for both. Exits 1 if a must-be-0 is not.
//!
//! ```text
//! cargo run --release --example soak -- [SECONDS (30)] [REQUESTS PER SECOND EACH (200)]
//! ```

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::header::AUTHORIZATION;
use http::{Extensions, HeaderValue, StatusCode};
use oauth_layer::flow::ClientCredentials;
use oauth_layer::testing::TestServer;
use oauth_layer::{AuthMethod, OAuthMiddleware, TokenSource};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

type Error = Box<dyn std::error::Error + Send + Sync>;

const LIFETIME: Duration = Duration::from_secs(2);

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

/// What one side of the run saw.
#[derive(Default)]
struct Side {
    latencies: Vec<Duration>,
    unauthorized: usize,
    failed: usize,
}

impl Side {
    fn percentile(&self, p: usize) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        sorted
            .get((sorted.len() * p / 100).min(sorted.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
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
    side.latencies.push(elapsed);
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

    let server = TestServer::builder()
        .client("soak", Some("s3cret"), AuthMethod::ClientSecretBasic)
        .access_token_lifetime(LIFETIME)
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
        LIFETIME.as_secs()
    );
    let our_side = Arc::new(Mutex::new(Side::default()));
    let fixed_side = Arc::new(Mutex::new(Side::default()));
    let (our_url, fixed_url) = (
        server.resource_url("/api/soak"),
        baseline.resource_url("/api/soak"),
    );
    let mut tasks = JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut n = 0u64;
    while Instant::now() < deadline {
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

    let expired = server
        .resource_requests()
        .iter()
        .filter(|r| r.status == 401)
        .count();
    let token_requests = server.token_requests();
    // The default skew is at most half the lifetime (1 s for 2 s tokens), and the background
    // renewal starts 10 % of the lifetime (0.2 s) before that: a token is renewed every 0.8 s.
    let window = Duration::from_millis(1200);
    let expected = seconds as f64 / (LIFETIME - window).as_secs_f64();
    let our_side = our_side.lock().unwrap_or_else(|e| e.into_inner());
    let fixed_side = fixed_side.lock().unwrap_or_else(|e| e.into_inner());

    println!(
        "requests sent:                    {}",
        our_side.latencies.len()
    );
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
        fixed_side.latencies.len(),
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
