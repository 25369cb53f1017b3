#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A fixed number of requests through a reqwest-middleware client, for counting instructions per
//! request with callgrind (`scripts/middleware_instructions.sh` runs it and does the arithmetic).
//!
//! ```text
//! instructions_middleware <client> <where> <tasks> <requests>
//!   client:   bare | static_header | oauth_middleware | oauth_middleware_no_retry
//!   where:    loopback (a hyper server on 127.0.0.1 in the same process, HTTP/1.1)
//!             | memory (the chain's last middleware answers at once, no I/O)
//!   tasks:    tasks sharing the client, each sending requests / tasks one after the other
//! instructions_middleware sizes
//!   the size of each middleware's boxed future (what every request allocates for it)
//! instructions_middleware clone <try_clone|parts> <copies>
//!   copies of one GET request (no body, no timeout): reqwest's `Request::try_clone`, or the
//!   parts the middleware's retry copy keeps (method, URL, headers, version, timeout) in one
//!   box; prints ns per copy (wall clock: noisy on a shared machine)
//! ```
//!
//! Everything runs on one thread (a current-thread runtime, server included), so a count does
//! not depend on how the scheduler interleaves threads, and repeats exactly. The client makes
//! its connections and warms up with 200 requests per task first; the requests counted are
//! those made in [`measured`], which is what `--toggle-collect` selects. A run with 0 requests
//! gives the toggle's own cost (the spawns and joins), which the script subtracts.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
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

const WARM_UP: u64 = 200;

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

/// The last middleware of the in-memory variant: answers `200 ok` without sending anything,
/// from the request's URL (as reqwest's answers say where they came from).
struct Answer;

#[async_trait::async_trait]
impl Middleware for Answer {
    async fn handle(
        &self,
        request: reqwest::Request,
        _: &mut Extensions,
        _: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        use reqwest::ResponseBuilderExt;
        let request = std::hint::black_box(request);
        let response = http::Response::builder()
            .url(request.url().clone())
            .body("ok")
            .unwrap();
        Ok(reqwest::Response::from(response))
    }
}

/// Wraps a middleware and records the size of the future its `handle` returns.
struct SizeProbe(Arc<dyn Middleware>, Arc<std::sync::atomic::AtomicUsize>);

#[async_trait::async_trait]
impl Middleware for SizeProbe {
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let future = self.0.handle(request, extensions, next);
        self.1.store(
            std::mem::size_of_val(&*future),
            std::sync::atomic::Ordering::Relaxed,
        );
        future.await
    }
}

/// Prints the size of each middleware's future.
fn sizes(rt: &tokio::runtime::Runtime) {
    for name in [
        "static_header",
        "oauth_middleware",
        "oauth_middleware_no_retry",
    ] {
        let size = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let client = ClientBuilder::new(reqwest::Client::new())
            .with(SizeProbe(middleware(name).unwrap(), size.clone()))
            .with(Answer)
            .build();
        rt.block_on(send(&client, "http://127.0.0.1:8080/api/things", 1, 1));
        let size = size.load(std::sync::atomic::Ordering::Relaxed);
        println!("{name:<27} future: {size} bytes");
    }
}

/// Copies of a request, counted by callgrind (`--toggle-collect=*copies*`) and timed.
#[inline(never)]
fn copies(request: &reqwest::Request, how: &str, n: u64) {
    match how {
        "try_clone" => {
            for _ in 0..n {
                drop(std::hint::black_box(request.try_clone()));
            }
        }
        "parts" => {
            for _ in 0..n {
                drop(std::hint::black_box(Box::new((
                    request.method().clone(),
                    request.url().clone(),
                    request.headers().clone(),
                    request.version(),
                    request.timeout().copied(),
                ))));
            }
        }
        other => panic!("unknown copy {other:?}"),
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

/// The middleware under test, if any, given the token source's client.
fn middleware(name: &str) -> Option<Arc<dyn Middleware>> {
    let source = || {
        let token = Token::builder("seeded-token")
            .expires_in(Duration::from_secs(3600))
            .build(&SystemClock)
            .unwrap();
        let client = OAuthClient::builder("bench")
            .secret("bench-secret")
            .token_url("http://127.0.0.1:1/token")
            .build()
            .unwrap();
        TokenSource::builder(client, ClientCredentials::new())
            .initial_token(token)
            .build()
    };
    match name {
        "bare" => None,
        "static_header" => {
            let mut fixed = HeaderValue::from_static("Bearer seeded-token");
            fixed.set_sensitive(true);
            Some(Arc::new(StaticHeader(fixed)))
        }
        "oauth_middleware" => Some(Arc::new(OAuthMiddleware::from_source(source()))),
        "oauth_middleware_no_retry" => Some(Arc::new(
            OAuthMiddleware::from_source(source()).retry_after_401(false),
        )),
        other => panic!("unknown client {other:?}"),
    }
}

/// `requests` requests through `client`, one after the other in each of `tasks` tasks.
async fn send(client: &ClientWithMiddleware, url: &str, tasks: u64, requests: u64) {
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (client, url) = (client.clone(), url.to_owned());
            tokio::spawn(async move {
                for _ in 0..requests / tasks {
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
}

/// The requests callgrind counts (`--toggle-collect=*measured*`).
#[inline(never)]
fn measured(
    rt: &tokio::runtime::Runtime,
    client: &ClientWithMiddleware,
    url: &str,
    tasks: u64,
    requests: u64,
) {
    rt.block_on(send(client, url, tasks, requests));
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    if args == ["sizes"] {
        return sizes(&rt);
    }
    if let [mode, how, n] = args.as_slice()
        && mode == "clone"
    {
        let n: u64 = n.parse().unwrap();
        let request = reqwest::Client::new()
            .get("http://127.0.0.1:8080/api/things")
            .build()
            .unwrap();
        copies(&request, how, 1000);
        let start = std::time::Instant::now();
        copies(&request, how, n);
        let ns = start.elapsed().as_nanos() as f64 / n.max(1) as f64;
        println!("{how}: {ns:.1} ns per copy");
        return;
    }
    // `cargo bench` passes `--bench`: nothing to do then (this is a harness for callgrind).
    let [name, place, tasks, requests] = args.as_slice() else {
        eprintln!("usage: instructions_middleware <client> <loopback|memory> <tasks> <requests>");
        eprintln!("       instructions_middleware sizes");
        return;
    };
    let tasks: u64 = tasks.parse().unwrap();
    let requests: u64 = requests.parse().unwrap();
    assert!(
        requests.is_multiple_of(tasks),
        "requests must be a multiple of tasks"
    );
    let builder = ClientBuilder::new(reqwest::Client::new());
    let builder = match middleware(name) {
        Some(m) => builder.with_arc(m),
        None => builder,
    };
    let (client, url) = match place.as_str() {
        "loopback" => {
            let addr = rt.block_on(api_server());
            (builder.build(), format!("http://{addr}/api/things"))
        }
        "memory" => (
            builder.with(Answer).build(),
            "http://127.0.0.1:8080/api/things".to_owned(),
        ),
        other => panic!("unknown place {other:?}"),
    };
    rt.block_on(send(&client, &url, tasks, WARM_UP * tasks));
    measured(&rt, &client, &url, tasks, requests);
}
