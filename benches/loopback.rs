#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Requests per second through a reqwest-middleware client against a local hyper server (HTTP/1.1
//! on 127.0.0.1, answering `200 ok` at once), with `OAuthMiddleware` (a cached, valid token) vs
//! a middleware that sets a fixed `Authorization` header. 1 task sending one request after the
//! other, and 16 tasks sharing the client.
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
    let client = OAuthClient::new("bench")
        .secret("bench-secret")
        .token_url("http://127.0.0.1:1/token")
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
}

criterion_group!(benches, loopback);
criterion_main!(benches);
