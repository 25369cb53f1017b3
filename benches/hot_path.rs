#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The cost of a token layer on one request whose token is already cached, against an
//! in-memory API that answers at once, through 1, 4 and 64 tasks sharing one layer:
//!
//! - `static_header`: tower-http's `AddAuthorization::bearer` with a fixed token, the floor;
//! - `static_header_retry` (in the interleaved comparison only): the static header inside
//!   `tower::retry::Retry`, with a policy that copies each request and sends it once more after
//!   a 401: the layer's one retry, written with tower's own middleware;
//! - `oauth_layer`: `OAuthLayer::from_source` with a valid cached token;
//! - `oauth_layer_metrics` (with `--features metrics`): the same, its source recording
//!   OpenTelemetry metrics into an SDK meter provider (one counter add per request);
//! - `hand_rolled`: the layer people write by hand (token behind a `tokio::sync::RwLock`, expiry
//!   checked per request);
//! - `yup_oauth2`: yup-oauth2's `Authenticator::token()` (its cached path) setting the header.
//!
//! Each measurement is `tasks × iterations` requests; the throughput line is requests per second
//! over all tasks.
//!
//! After the group, what each of our variants costs over `static_header` with one task, measured
//! in turns (400 rounds, each timing 2,000 requests of every variant, starting with a different
//! one each round): the median and quartiles of the per-round differences, which the machine's
//! drift touches far less than criterion's medians taken one after the other. A filter that
//! matches no benchmark (`cargo bench --bench hot_path --features metrics -- interleaved`) runs
//! this comparison alone.
//!
//! Group `middleware`: the same for the reqwest-middleware side, one task, through a
//! `ClientWithMiddleware` whose last middleware answers at once without any I/O (what is left is
//! reqwest's request building and the middleware chain): no token middleware, a middleware that
//! sets a fixed header, and `OAuthMiddleware` with and without the retry copy.
//!
//! `cargo bench --bench hot_path`.

mod support;

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http::{Request, Response, Uri};
use oauth_layer::{OAuthLayer, OAuthMiddleware};
use support::{API_URL, HandRolledLayer, SCOPE, TokenEndpoint, YupLayer, api, call};
use tower::{Layer, Service};
use tower_http::auth::AddAuthorizationLayer;

const TASKS: [u64; 3] = [1, 4, 64];

/// `iters` requests through `service` in each of `tasks` tasks (clones of one service, so they
/// share its token); the time until the last one is answered.
async fn run<S>(service: S, tasks: u64, iters: u64) -> Duration
where
    S: Service<Request<()>, Response = Response<()>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
{
    let uri: Uri = API_URL.parse().unwrap();
    if tasks == 1 {
        let mut service = service;
        let start = Instant::now();
        for _ in 0..iters {
            call(&mut service, &uri).await;
        }
        return start.elapsed();
    }
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let mut service = service.clone();
            let uri = uri.clone();
            tokio::spawn(async move {
                for _ in 0..iters {
                    call(&mut service, &uri).await;
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
    start.elapsed()
}

fn hot_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Only yup-oauth2 asks it, once, to fill its cache; the other layers start with a token.
    let endpoint = rt.block_on(TokenEndpoint::start(Duration::ZERO));
    let url = endpoint.token_url();

    let static_header = AddAuthorizationLayer::bearer("seeded-token")
        .as_sensitive(true)
        .layer(api());
    let static_header_retry = tower::ServiceBuilder::new()
        .layer(tower::retry::RetryLayer::new(support::OnceAfter401::new()))
        .layer(AddAuthorizationLayer::bearer("seeded-token").as_sensitive(true))
        .service(api());
    let oauth = {
        let _guard = rt.enter();
        OAuthLayer::from_source(support::source(&url, true)).layer(api())
    };
    let oauth_no_retry = {
        let _guard = rt.enter();
        OAuthLayer::from_source(support::source(&url, true))
            .retry_after_401(false)
            .layer(api())
    };
    #[cfg(feature = "metrics")]
    let (oauth_metrics, _provider) = {
        let _guard = rt.enter();
        let (source, provider) = support::source_with_metrics(&url);
        (OAuthLayer::from_source(source).layer(api()), provider)
    };
    let hand_rolled = HandRolledLayer::new(&url, Some("seeded-token")).layer(api());
    let yup = rt.block_on(async {
        let auth = support::yup_authenticator(&url).await;
        auth.token(&[SCOPE]).await.unwrap();
        YupLayer::new(auth).layer(api())
    });

    let mut group = c.benchmark_group("hot_path");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    for tasks in TASKS {
        group.throughput(Throughput::Elements(tasks));
        macro_rules! variant {
            ($name:literal, $service:expr) => {
                group.bench_with_input(BenchmarkId::new($name, tasks), &tasks, |b, &tasks| {
                    b.to_async(&rt)
                        .iter_custom(|iters| run($service.clone(), tasks, iters))
                });
            };
        }
        variant!("static_header", static_header);
        variant!("oauth_layer", oauth);
        variant!("oauth_layer_no_retry", oauth_no_retry);
        #[cfg(feature = "metrics")]
        variant!("oauth_layer_metrics", oauth_metrics);
        variant!("hand_rolled", hand_rolled);
        variant!("yup_oauth2", yup);
    }
    group.finish();
    assert_eq!(
        endpoint.requests(),
        1,
        "only yup-oauth2's first token() asks"
    );

    // The same services, one task, in turns: what each costs over the static header.
    #[cfg_attr(not(feature = "metrics"), allow(unused_mut))]
    let mut variants: Vec<(&str, Batch<'_>)> = vec![
        (
            "static_header_retry",
            Box::new(|n| rt.block_on(run(static_header_retry.clone(), 1, n))),
        ),
        (
            "oauth_layer",
            Box::new(|n| rt.block_on(run(oauth.clone(), 1, n))),
        ),
        (
            "oauth_layer_no_retry",
            Box::new(|n| rt.block_on(run(oauth_no_retry.clone(), 1, n))),
        ),
    ];
    #[cfg(feature = "metrics")]
    variants.push((
        "oauth_layer_metrics",
        Box::new(|n| rt.block_on(run(oauth_metrics.clone(), 1, n))),
    ));
    let floor = |n| rt.block_on(run(static_header.clone(), 1, n));
    let over = interleaved(&floor, &variants);
    println!(
        "\nns per request over static_header, 1 task, interleaved (median of {ROUNDS} rounds of \
         {BATCH} requests each; quartiles):"
    );
    for ((name, _), [q1, median, q3]) in variants.iter().zip(over) {
        println!("  {name:<22} {median:+6.1} ({q1:+.1} to {q3:+.1})");
    }
}

/// `n` requests through one variant, one after the other: how long they took.
type Batch<'a> = Box<dyn Fn(u64) -> Duration + 'a>;

/// Rounds of the interleaved comparison, and requests per variant in each.
const ROUNDS: usize = 400;
const BATCH: u64 = 2_000;

/// For each of `variants`, the quartiles over [`ROUNDS`] rounds of its time per request minus
/// `floor`'s in the same round, in ns. Each round times one batch of every variant and of the
/// floor, starting with a different one each time, so that the machine's drift (other work on
/// the shared cores, frequency) touches all alike and a disturbed round does not count.
fn interleaved(floor: &dyn Fn(u64) -> Duration, variants: &[(&str, Batch<'_>)]) -> Vec<[f64; 3]> {
    let all: Vec<&dyn Fn(u64) -> Duration> = std::iter::once(floor)
        .chain(
            variants
                .iter()
                .map(|(_, v)| &**v as &dyn Fn(u64) -> Duration),
        )
        .collect();
    for service in &all {
        service(BATCH); // warm-up
    }
    let mut over = vec![Vec::with_capacity(ROUNDS); variants.len()];
    for round in 0..ROUNDS {
        let mut times = vec![Duration::ZERO; all.len()];
        for k in 0..all.len() {
            let i = (round + k) % all.len();
            times[i] = all[i](BATCH);
        }
        let per = |t: Duration| t.as_nanos() as f64 / BATCH as f64;
        for (v, time) in times[1..].iter().enumerate() {
            over[v].push(per(*time) - per(times[0]));
        }
    }
    over.into_iter()
        .map(|mut d| {
            d.sort_by(f64::total_cmp);
            [d[ROUNDS / 4], d[ROUNDS / 2], d[3 * ROUNDS / 4]]
        })
        .collect()
}

/// The last middleware: answers `200 ok` without sending anything.
struct Answer;

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for Answer {
    async fn handle(
        &self,
        request: reqwest::Request,
        _: &mut http::Extensions,
        _: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        use reqwest::ResponseBuilderExt;
        // The answer names the URL it answers, as a real one does: the middleware refuses a
        // response whose URL is another origin than the request's (a redirect it did not see).
        let answer = http::Response::builder()
            .url(request.url().clone())
            .body("ok")
            .expect("a response with a URL");
        std::hint::black_box(&request);
        Ok(reqwest::Response::from(answer))
    }
}

/// Sets one fixed `Authorization` header: the floor.
struct StaticHeader(http::HeaderValue);

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for StaticHeader {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, self.0.clone());
        next.run(request, extensions).await
    }
}

fn middleware(c: &mut Criterion) {
    use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = |with: Option<std::sync::Arc<dyn reqwest_middleware::Middleware>>| {
        let builder = ClientBuilder::new(reqwest::Client::new());
        let builder = match with {
            Some(m) => builder.with_arc(m),
            None => builder,
        };
        builder.with(Answer).build()
    };
    let url = "http://127.0.0.1:8080/api/things";
    let ours = |retry: bool| {
        let _guard = rt.enter();
        OAuthMiddleware::from_source(support::source("http://127.0.0.1:1/token", true))
            .retry_after_401(retry)
    };
    let mut fixed = http::HeaderValue::from_static("Bearer seeded-token");
    fixed.set_sensitive(true);
    let variants: [(&str, ClientWithMiddleware); 4] = [
        ("none", client(None)),
        (
            "static_header",
            client(Some(std::sync::Arc::new(StaticHeader(fixed)))),
        ),
        (
            "oauth_middleware",
            client(Some(std::sync::Arc::new(ours(true)))),
        ),
        (
            "oauth_middleware_no_retry",
            client(Some(std::sync::Arc::new(ours(false)))),
        ),
    ];

    let mut group = c.benchmark_group("middleware");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    for (name, client) in &variants {
        group.bench_function(*name, |b| {
            b.to_async(&rt).iter(|| async {
                std::hint::black_box(client.get(url).send().await.unwrap());
            })
        });
    }
    group.finish();
}

criterion_group!(benches, hot_path, middleware);
criterion_main!(benches);
