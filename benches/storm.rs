#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A renewal storm: 10,000 requests arrive at once with no valid token, against a local token
//! endpoint that takes 20 ms to answer. Measured: the wall time until all 10,000 are answered
//! (the in-memory API answers at once), and how many token requests each layer made (printed
//! after the group).
//!
//! - `static_header`: the same 10,000 requests with a fixed header, no token to get: the time
//!   of "the requests themselves";
//! - `oauth_layer`: a fresh `OAuthLayer::from_source` per storm;
//! - `hand_rolled`: the usual hand-written layer (`tokio::sync::RwLock`, fetch on expiry);
//! - `yup_oauth2`: a fresh yup-oauth2 authenticator per storm, `token()` per request.
//!
//! After the group, where the layer's storm time goes is measured (storms of the layer and of
//! the static header interleaved; the median of 40 each, printed): when the token arrived (the
//! source's `on_renewal` hook runs right after the waiters are told), and how long the waiting
//! requests took to finish after that. `STORM_ONLY=fixed|bare|layer|warm` runs one kind of storm
//! alone (to profile it), `STORM_PHASES=N` sets how many, `STORM_RUNTIME=current_thread` runs
//! them on one thread (for `scripts/storm_instructions.sh`, whose counts then repeat).
//!
//! `cargo bench --bench storm`. `tests/storm.rs` asserts the single token request.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use http::{Request, Response, Uri};
use oauth_layer::flow::ClientCredentials;
use oauth_layer::{OAuthClient, OAuthLayer, TokenSource};
use support::{API_URL, HandRolledLayer, TokenEndpoint, YupLayer, api};
use tower::{Layer, Service, ServiceExt};
use tower_http::auth::AddAuthorizationLayer;

const REQUESTS: usize = 10_000;
const TOKEN_DELAY: Duration = Duration::from_millis(20);

/// `REQUESTS` tasks, each sending one request through a clone of `service`; the time until the
/// last is answered, and how many failed.
async fn storm<S>(service: S) -> (Duration, usize)
where
    S: Service<Request<()>, Response = Response<()>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
{
    let uri: Uri = API_URL.parse().unwrap();
    let start = Instant::now();
    let handles: Vec<_> = (0..REQUESTS)
        .map(|_| {
            let service = service.clone();
            let mut request = Request::new(());
            *request.uri_mut() = uri.clone();
            tokio::spawn(async move { service.oneshot(request).await.is_ok() })
        })
        .collect();
    let mut failed = 0;
    for handle in handles {
        failed += usize::from(!handle.await.unwrap());
    }
    (start.elapsed(), failed)
}

/// Per variant, per storm: token requests made, requests that failed.
type Counts = Arc<Mutex<BTreeMap<&'static str, Vec<(usize, usize)>>>>;

fn storms(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let endpoint = Arc::new(rt.block_on(TokenEndpoint::start(TOKEN_DELAY)));
    let url: Arc<str> = endpoint.token_url().into();
    let counts: Counts = Arc::default();

    let mut group = c.benchmark_group("storm");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));

    // Each iteration is one storm with fresh layers; only the storm itself is timed.
    macro_rules! variant {
        ($name:literal, |$url:ident| $make:expr) => {
            group.bench_function($name, |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    let (endpoint, $url, counts) = (endpoint.clone(), url.clone(), counts.clone());
                    async move {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let service = $make;
                            endpoint.reset();
                            let (time, failed) = storm(service).await;
                            total += time;
                            counts
                                .lock()
                                .unwrap()
                                .entry($name)
                                .or_default()
                                .push((endpoint.requests(), failed));
                        }
                        total
                    }
                })
            });
        };
    }
    variant!("static_header", |_url| AddAuthorizationLayer::bearer(
        "fixed-token"
    )
    .as_sensitive(true)
    .layer(api()));
    variant!("oauth_layer", |url| OAuthLayer::from_source(
        support::source(&url, false)
    )
    .layer(api()));
    variant!("hand_rolled", |url| HandRolledLayer::new(&url, None)
        .layer(api()));
    variant!("yup_oauth2", |url| YupLayer::new(
        support::yup_authenticator(&url).await
    )
    .layer(api()));
    group.finish();

    println!(
        "\ntoken requests per storm of {REQUESTS} requests (token endpoint delay {TOKEN_DELAY:?}):"
    );
    for (name, counts) in counts.lock().unwrap().iter() {
        let min = counts.iter().map(|c| c.0).min().unwrap_or(0);
        let max = counts.iter().map(|c| c.0).max().unwrap_or(0);
        let failed: usize = counts.iter().map(|c| c.1).sum();
        println!(
            "  storm/{name:<14} token requests min {min:>6} max {max:>6}; failed requests {failed} ({} storms)",
            counts.len()
        );
    }
}

/// A fresh source as `support::source` makes it, whose renewal hook records when the token
/// arrived.
fn timed_source(url: &str, arrived: Arc<Mutex<Option<Instant>>>) -> TokenSource {
    timed_source_of(client(url), arrived)
}

/// A client of the bench endpoint with its own HTTP/2 connection.
fn client(url: &str) -> OAuthClient {
    OAuthClient::builder("bench")
        .secret("bench-secret")
        .token_url(url)
        .transport(support::h2_client())
        .build()
        .unwrap()
}

/// A fresh source of `client` whose renewal hook records when the token arrived.
fn timed_source_of(client: OAuthClient, arrived: Arc<Mutex<Option<Instant>>>) -> TokenSource {
    TokenSource::builder(client, ClientCredentials::new().scope(support::SCOPE))
        .on_renewal(move |_| *arrived.lock().unwrap() = Some(Instant::now()))
        .build()
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

/// The floor of any single flight on tokio: the same storm without a token layer, every task
/// waiting on a bare `tokio::sync::watch` channel that one task fills after `TOKEN_DELAY`,
/// then sending its request with the token as header. Returns the storm's time, when the token
/// was sent (after waking every waiting task), and when the last request had been spawned.
async fn bare_watch_storm() -> (Duration, Duration, Duration) {
    let uri: Uri = API_URL.parse().unwrap();
    let (tx, rx) = tokio::sync::watch::channel(None::<http::HeaderValue>);
    let start = Instant::now();
    let sender = tokio::spawn(async move {
        tokio::time::sleep(TOKEN_DELAY).await;
        let _ = tx.send(Some(http::HeaderValue::from_static("Bearer a-token")));
        start.elapsed()
    });
    let handles: Vec<_> = (0..REQUESTS)
        .map(|_| {
            let mut rx = rx.clone();
            let mut request = Request::new(());
            *request.uri_mut() = uri.clone();
            tokio::spawn(async move {
                let header = rx.wait_for(Option::is_some).await.unwrap().clone().unwrap();
                request
                    .headers_mut()
                    .insert(http::header::AUTHORIZATION, header);
                api().oneshot(request).await.is_ok()
            })
        })
        .collect();
    let spawned = start.elapsed();
    for handle in handles {
        assert!(handle.await.unwrap());
    }
    (start.elapsed(), sender.await.unwrap(), spawned)
}

/// Where the layer's storm time goes: token arrival and the waiters' finish, next to the static
/// header's storm, interleaved.
fn phases(c: &mut Criterion) {
    // `STORM_PHASES=2` for a run under `valgrind --tool=callgrind`.
    let storms: usize = std::env::var("STORM_PHASES").map_or(40, |n| n.parse().unwrap());
    // `STORM_ONLY=fixed|bare|layer|warm`: one kind of storm only (to profile it alone).
    let only = std::env::var("STORM_ONLY").ok();
    let runs = |kind: &str| only.as_deref().is_none_or(|o| o == kind);
    let _ = c;
    // `STORM_RUNTIME=current_thread`: one thread, so that instruction counts repeat
    // (`scripts/storm_instructions.sh`); two workers otherwise, like the group.
    let rt = match std::env::var("STORM_RUNTIME").as_deref() {
        Ok("current_thread") => tokio::runtime::Builder::new_current_thread(),
        _ => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(2);
            builder
        }
    }
    .enable_all()
    .build()
    .unwrap();
    let (mut arrival, mut finish, mut total, mut fixed) = (vec![], vec![], vec![], vec![]);
    let (mut bare, mut bare_finish, mut bare_spawned) = (vec![], vec![], vec![]);
    let (mut warm, mut warm_arrival) = (vec![], vec![]);
    rt.block_on(async {
        let endpoint = TokenEndpoint::start(TOKEN_DELAY).await;
        let url = endpoint.token_url();
        // One client for every storm: its connection to the endpoint is open before each.
        let warm_client = client(&url);
        for _ in 0..storms {
            if runs("fixed") {
                let service = AddAuthorizationLayer::bearer("fixed-token")
                    .as_sensitive(true)
                    .layer(api());
                fixed.push(storm(service).await.0);
            }

            if runs("bare") {
                let (time, sent, spawned) = bare_watch_storm().await;
                bare_spawned.push(spawned);
                bare.push(time);
                bare_finish.push(time.saturating_sub(sent));
            }

            if runs("layer") {
                let arrived = Arc::new(Mutex::new(None));
                let service =
                    OAuthLayer::from_source(timed_source(&url, arrived.clone())).layer(api());
                let start = Instant::now();
                let (time, failed) = storm(service).await;
                assert_eq!(failed, 0);
                let at = arrived.lock().unwrap().expect("the renewal ran") - start;
                arrival.push(at);
                finish.push(time.saturating_sub(at));
                total.push(time);
            }

            if runs("warm") {
                let arrived = Arc::new(Mutex::new(None));
                let source = timed_source_of(warm_client.clone(), arrived.clone());
                let service = OAuthLayer::from_source(source).layer(api());
                let start = Instant::now();
                let (time, failed) = storm(service).await;
                assert_eq!(failed, 0);
                warm_arrival.push(arrived.lock().unwrap().expect("the renewal ran") - start);
                warm.push(time);
            }
        }
    });
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("\nstorm phases, median of {storms} storms each (interleaved):");
    println!(
        "  static_header storm              {:>6.2} ms",
        ms(median(fixed))
    );
    println!(
        "  oauth_layer storm                {:>6.2} ms",
        ms(median(total))
    );
    println!(
        "    token arrived (from the start) {:>6.2} ms",
        ms(median(arrival))
    );
    println!(
        "    waiters finished after that    {:>6.2} ms",
        ms(median(finish))
    );
    println!(
        "  oauth_layer, warm connection     {:>6.2} ms",
        ms(median(warm))
    );
    println!(
        "    token arrived (from the start) {:>6.2} ms",
        ms(median(warm_arrival))
    );
    println!(
        "  bare watch storm (the floor)     {:>6.2} ms",
        ms(median(bare))
    );
    println!(
        "    waiters finished after send    {:>6.2} ms",
        ms(median(bare_finish))
    );
    println!(
        "    last request spawned at        {:>6.2} ms",
        ms(median(bare_spawned))
    );
}

criterion_group!(benches, storms, phases);
criterion_main!(benches);
