#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Requests per second through a reqwest-middleware client against a local hyper server (HTTP/1.1
//! on 127.0.0.1, answering `200 ok` at once), with `OAuthMiddleware` (a cached, valid token) vs
//! a middleware that sets a fixed `Authorization` header. 1 task sending one request after the
//! other, and 16 tasks sharing the client.
//!
//! The criterion group gives each side's throughput. The two are measured one after the other,
//! and on a shared machine the throughput drifts by a few percent in that time, as much as the
//! difference being measured; so after the group the ratio is measured again with the sides
//! interleaved (the median of 40 paired rounds of 0.15 s) and printed.
//!
//! `cargo bench --bench loopback`.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http::header::AUTHORIZATION;
use http::{Extensions, HeaderValue};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use oauth_layer::clock::SystemClock;
use oauth_layer::flow::ClientCredentials;
use oauth_layer::{OAuthClient, OAuthMiddleware, Token, TokenSource};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use tokio::net::TcpListener;

const TASKS: [u64; 2] = [1, 16];

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

/// A local API answering every request with `200 ok`.
async fn api_server() -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = service_fn(|_req| async {
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// `iters` requests in each of `tasks` tasks sharing `client`; the time until the last answer.
async fn run(client: ClientWithMiddleware, url: String, tasks: u64, iters: u64) -> Duration {
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                for _ in 0..iters {
                    let response = client.get(&url).send().await.unwrap();
                    assert!(response.status().is_success());
                    std::hint::black_box(response.bytes().await.unwrap());
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
    start.elapsed()
}

fn loopback(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let addr = rt.block_on(api_server());
    let url = format!("http://{addr}/api/things");

    let token = Token::builder("seeded-token")
        .expires_in(Duration::from_secs(3600))
        .build(&SystemClock)
        .unwrap();
    let client = OAuthClient::builder("bench")
        .secret("bench-secret")
        .token_url("http://127.0.0.1:1/token")
        .build()
        .unwrap();
    let source = TokenSource::builder(client, ClientCredentials::new())
        .initial_token(token)
        .build();
    let ours = ClientBuilder::new(reqwest::Client::new())
        .with(OAuthMiddleware::from_source(source))
        .build();
    let mut fixed = HeaderValue::from_static("Bearer seeded-token");
    fixed.set_sensitive(true);
    let static_header = ClientBuilder::new(reqwest::Client::new())
        .with(StaticHeader(fixed))
        .build();

    let mut group = c.benchmark_group("loopback");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    for tasks in TASKS {
        group.throughput(Throughput::Elements(tasks));
        for (name, client) in [("static_header", &static_header), ("oauth_layer", &ours)] {
            group.bench_with_input(BenchmarkId::new(name, tasks), &tasks, |b, &tasks| {
                b.to_async(&rt)
                    .iter_custom(|iters| run(client.clone(), url.clone(), tasks, iters))
            });
        }
    }
    group.finish();

    println!("\nthroughput ratio, OAuthMiddleware / static header, interleaved:");
    for tasks in TASKS {
        let ratio = rt.block_on(interleaved_ratio(&ours, &static_header, &url, tasks));
        println!("  {tasks:>2} tasks: {ratio:.3}");
    }
}

/// Requests in `round` through `client` with `tasks` tasks: how many were answered.
async fn requests_in(client: &ClientWithMiddleware, url: &str, tasks: u64, round: Duration) -> u64 {
    let deadline = Instant::now() + round;
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (client, url) = (client.clone(), url.to_owned());
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let response = client.get(&url).send().await.unwrap();
                    std::hint::black_box(response.bytes().await.unwrap());
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for handle in handles {
        total += handle.await.unwrap();
    }
    total
}

/// Requests answered through `ours` over those through `baseline`, as the median of 40 paired
/// rounds taken in turn (alternating which goes first), so that drift affects both alike and a
/// disturbed round does not count.
async fn interleaved_ratio(
    ours: &ClientWithMiddleware,
    baseline: &ClientWithMiddleware,
    url: &str,
    tasks: u64,
) -> f64 {
    const ROUNDS: usize = 40;
    const ROUND: Duration = Duration::from_millis(150);
    let mut ratios = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let (a, b) = if round % 2 == 0 {
            let a = requests_in(ours, url, tasks, ROUND).await;
            (a, requests_in(baseline, url, tasks, ROUND).await)
        } else {
            let b = requests_in(baseline, url, tasks, ROUND).await;
            (requests_in(ours, url, tasks, ROUND).await, b)
        };
        ratios.push(a as f64 / b as f64);
    }
    ratios.sort_by(f64::total_cmp);
    ratios[ROUNDS / 2]
}

criterion_group!(benches, loopback);
criterion_main!(benches);
