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
//! `cargo bench --bench storm`. `tests/storm.rs` asserts the single token request.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use http::{Request, Response, Uri};
use oauth_layer::OAuthLayer;
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

criterion_group!(benches, storms);
criterion_main!(benches);
