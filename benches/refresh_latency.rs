#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A token request's latency against a local TLS token endpoint (HTTPS on 127.0.0.1, a
//! certificate from a test CA, HTTP/1.1, answering at once), through a new `TokenSource` each
//! time: the whole renewal (the spawned task, the form POST, the TLS connection if one is
//! needed, the JSON parse).
//!
//! - `unpooled`: a reqwest client built as the crate's default transport was before issue 19
//!   (redirects off, `pool_max_idle_per_host(0)`), given to `OAuthClientBuilder::transport`:
//!   every token request opens a new connection and makes a TLS handshake;
//! - `per_runtime`: the crate's own default transport (`OAuthClientBuilder::root_certificate`
//!   makes the client its own one, built like the shared default: one pooled reqwest client per
//!   tokio runtime): the connection of the previous token request is reused.
//!
//! After the group, the two are measured again interleaved (the median of 200 pairs), with the
//! connections the endpoint accepted per token request, and printed.
//!
//! `first_request_on_a_new_runtime`: the first token request on a new tokio runtime through the
//! default transport (plain http to a local `TestServer`), which builds that runtime's client.
//!
//! `first_request_on_a_new_runtime_own_roots`: the same through a client's own transport (made
//! by `OAuthClientBuilder::root_certificate`), against the local TLS token endpoint: it builds
//! that runtime's client and makes a TLS handshake on a new connection.
//!
//! `cargo bench --bench refresh_latency`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::header::CONTENT_TYPE;
use http::{Request, Response};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use oauth_layer::flow::ClientCredentials;
use oauth_layer::{OAuthClient, TokenSource};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tokio::net::TcpListener;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

/// A TLS token endpoint and the PEM of the CA that issued its certificate.
struct Endpoint {
    url: String,
    ca_pem: String,
    accepted: Arc<AtomicUsize>,
}

async fn tls_endpoint() -> Endpoint {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![
                leaf.der().clone(),
                CertificateDer::from(ca_cert.der().to_vec()),
            ],
            PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/token", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let _ = socket.set_nodelay(true);
            counter.fetch_add(1, Ordering::Relaxed);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(socket).await else {
                    return;
                };
                let service = service_fn(|_: Request<hyper::body::Incoming>| async {
                    let body =
                        r#"{"access_token":"a-token","token_type":"Bearer","expires_in":3600}"#;
                    let mut response =
                        Response::new(Full::new(Bytes::from_static(body.as_bytes())));
                    response
                        .headers_mut()
                        .insert(CONTENT_TYPE, "application/json".parse().unwrap());
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Endpoint {
        url,
        ca_pem: ca_cert.pem(),
        accepted,
    }
}

/// The crate's default transport as it was: no idle connection kept.
fn unpooled(endpoint: &Endpoint) -> OAuthClient {
    let transport = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .add_root_certificate(reqwest::Certificate::from_pem(endpoint.ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    OAuthClient::builder("bench")
        .secret("bench-secret")
        .token_url(endpoint.url.as_str())
        .transport(transport)
        .build()
        .unwrap()
}

/// The crate's own default transport, trusting the test CA.
fn per_runtime(endpoint: &Endpoint) -> OAuthClient {
    OAuthClient::builder("bench")
        .secret("bench-secret")
        .token_url(endpoint.url.as_str())
        .root_certificate(endpoint.ca_pem.as_bytes())
        .build()
        .unwrap()
}

/// One token request through a new source.
async fn refresh(client: &OAuthClient) -> Duration {
    let source = TokenSource::new(client.clone(), ClientCredentials::new());
    let start = Instant::now();
    std::hint::black_box(source.token().await.unwrap());
    start.elapsed()
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn refreshes(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let endpoint = rt.block_on(tls_endpoint());
    let sides = [
        ("unpooled", unpooled(&endpoint)),
        ("per_runtime", per_runtime(&endpoint)),
    ];

    let mut group = c.benchmark_group("refresh_latency");
    group
        .sample_size(50)
        .measurement_time(Duration::from_secs(5));
    for (name, client) in &sides {
        group.bench_function(*name, |b| {
            b.to_async(&rt).iter_custom(|iters| async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += refresh(client).await;
                }
                total
            })
        });
    }
    group.finish();

    const PAIRS: usize = 200;
    let mut times = [Vec::new(), Vec::new()];
    let mut connections = [0, 0];
    rt.block_on(async {
        for _ in 0..PAIRS {
            for (i, (_, client)) in sides.iter().enumerate() {
                let before = endpoint.accepted.load(Ordering::Relaxed);
                times[i].push(refresh(client).await);
                connections[i] += endpoint.accepted.load(Ordering::Relaxed) - before;
            }
        }
    });
    println!("\ninterleaved, {PAIRS} pairs of token requests:");
    for (i, (name, _)) in sides.iter().enumerate() {
        println!(
            "  refresh_latency/{name:<12} median {:>8.1} µs; connections accepted {}",
            median(times[i].clone()).as_secs_f64() * 1e6,
            connections[i]
        );
    }
}

/// The first token request on a new runtime, through the default transport (plain http to a
/// local `TestServer`, so no handshake): a new runtime builds its own pooled client, and with it
/// a TLS configuration unless the transport shares one (what issue 19's follow-up changed).
fn first_request_on_a_new_runtime(c: &mut Criterion) {
    let servers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = servers.block_on(async {
        oauth_layer::testing::TestServer::builder()
            .client(
                "bench",
                Some("bench-secret"),
                oauth_layer::AuthMethod::ClientSecretBasic,
            )
            .start()
            .await
            .unwrap()
    });
    let client = server
        .oauth_client_builder("bench")
        .unwrap()
        .build()
        .unwrap();
    c.bench_function("refresh_latency/first_request_on_a_new_runtime", |b| {
        b.iter_custom(|iters| each_on_a_new_runtime(&client, iters))
    });
}

/// `iters` token requests through `client`, each the first on a new current-thread runtime: the
/// time they took, without making and dropping the runtimes.
fn each_on_a_new_runtime(client: &OAuthClient, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        total += runtime.block_on(refresh(client));
    }
    total
}

/// The first token request on a new runtime through a client's own transport (the local TLS
/// endpoint, whose CA is given to `root_certificate`): a new runtime builds its own pooled client
/// and opens a new connection with a TLS handshake. Whether the client also builds a new TLS
/// configuration (and reads the platform's roots again) is what this measures.
fn first_request_on_a_new_runtime_own_roots(c: &mut Criterion) {
    let servers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let endpoint = servers.block_on(tls_endpoint());
    let client = per_runtime(&endpoint);
    c.bench_function(
        "refresh_latency/first_request_on_a_new_runtime_own_roots",
        |b| b.iter_custom(|iters| each_on_a_new_runtime(&client, iters)),
    );
}

criterion_group!(
    benches,
    refreshes,
    first_request_on_a_new_runtime,
    first_request_on_a_new_runtime_own_roots
);
criterion_main!(benches);
