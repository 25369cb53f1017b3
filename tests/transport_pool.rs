#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The default transport keeps its connections per tokio runtime: token requests on one runtime
//! reuse one connection, and a connection opened on one runtime is never handed to another,
//! whether the first runtime is gone or only idle (a pooled connection is driven by a task on the
//! runtime that opened it).
//!
//! The token endpoints run on their own runtime, on its own thread, so that they outlive the
//! runtimes the tests create and drop.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Request, Response};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use oauth_layer::flow::ClientCredentials;
use oauth_layer::testing::TestServer;
use oauth_layer::{AuthMethod, OAuthClient, TokenSource};
use tokio::net::TcpListener;
use tokio::runtime::{Builder, Runtime};

/// Long enough for a loopback token request on a busy machine, short enough to fail fast on a
/// connection that nobody drives.
const DEADLINE: Duration = Duration::from_secs(5);

/// A runtime on its own thread for the servers.
fn server_runtime() -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn current_thread() -> Runtime {
    Builder::new_current_thread().enable_all().build().unwrap()
}

fn multi_thread() -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// One token request through a new source (nothing cached), on whatever runtime polls it.
async fn fetch(client: &OAuthClient) {
    let source = TokenSource::new(client.clone(), ClientCredentials::new());
    tokio::time::timeout(DEADLINE, source.token())
        .await
        .expect("the token request finishes (a connection of another runtime would hang)")
        .expect("the token request succeeds");
}

fn test_server(servers: &Runtime) -> (TestServer, OAuthClient) {
    let server = servers.block_on(async {
        TestServer::builder()
            .client("pool", Some("s3cret"), AuthMethod::ClientSecretBasic)
            .start()
            .await
            .unwrap()
    });
    let client = server
        .oauth_client_builder("pool")
        .unwrap()
        .timeout(DEADLINE)
        .build()
        .unwrap();
    (server, client)
}

#[test]
fn a_runtime_after_a_dropped_one_gets_its_own_connection() {
    let servers = server_runtime();
    let (server, client) = test_server(&servers);
    for make in [current_thread, multi_thread, current_thread] {
        let runtime = make();
        runtime.block_on(fetch(&client));
        drop(runtime);
    }
    assert_eq!(server.token_requests(), 3);
}

#[test]
fn a_runtime_never_uses_a_connection_of_another_idle_runtime() {
    let servers = server_runtime();
    let (server, client) = test_server(&servers);
    // The first runtime stays alive but is not driven after its `block_on`: a connection it
    // opened would never be written to.
    let idle = current_thread();
    idle.block_on(fetch(&client));
    let second = current_thread();
    second.block_on(fetch(&client));
    // The same from a plain thread.
    let client_for_thread = client.clone();
    std::thread::spawn(move || current_thread().block_on(fetch(&client_for_thread)))
        .join()
        .unwrap();
    // And the first still works once it is driven again.
    idle.block_on(fetch(&client));
    assert_eq!(server.token_requests(), 4);
}

#[test]
fn many_runtimes_at_once_each_get_their_tokens() {
    // As a test binary runs its `#[tokio::test]`s: a runtime per thread, several at a time,
    // each dropped when its test ends.
    let servers = server_runtime();
    let (server, client) = test_server(&servers);
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let client = client.clone();
            std::thread::spawn(move || {
                let runtime = if i % 2 == 0 {
                    current_thread()
                } else {
                    multi_thread()
                };
                runtime.block_on(async {
                    fetch(&client).await;
                    fetch(&client).await;
                });
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(server.token_requests(), 16);
}

/// A plain HTTP/1.1 token endpoint that counts the connections it accepts.
/// A token endpoint's answer: a bearer token for an hour.
fn token_response() -> Response<Full<Bytes>> {
    let body = r#"{"access_token":"a","token_type":"Bearer","expires_in":3600}"#;
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, "application/json".parse().unwrap());
    response
}

async fn counting_endpoint() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let service = service_fn(|_: Request<hyper::body::Incoming>| async {
                    Ok::<_, Infallible>(token_response())
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, accepted)
}

#[test]
fn token_requests_on_one_runtime_reuse_one_connection() {
    let servers = server_runtime();
    let (url, accepted) = servers.block_on(counting_endpoint());
    let client = OAuthClient::builder("pool")
        .secret("s3cret")
        .token_url(url.as_str())
        .build()
        .unwrap();
    for make in [current_thread, multi_thread] {
        accepted.store(0, Ordering::SeqCst);
        make().block_on(async {
            fetch(&client).await;
            fetch(&client).await;
            fetch(&client).await;
        });
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "three token requests, one connection"
        );
    }
}

/// Set in the child processes of
/// [`the_default_transport_trusts_the_platform_roots_and_offers_h2_on_every_runtime`] and
/// [`an_own_transport_trusts_the_platform_roots_next_to_its_own_on_every_runtime`]: the folder
/// holding the endpoints' certificates and keys.
const CHILD: &str = "OAUTH_LAYER_TEST_PLATFORM_ROOTS";
const PLATFORM_ROOTS_TEST: &str =
    "the_default_transport_trusts_the_platform_roots_and_offers_h2_on_every_runtime";
const OWN_ROOTS_TEST: &str =
    "an_own_transport_trusts_the_platform_roots_next_to_its_own_on_every_runtime";

/// Runs this test binary again for `test` alone, with `SSL_CERT_FILE` naming the CA in `dir`
/// (so that it is the platform's only root certificate there) and [`CHILD`] naming `dir`, and
/// checks that the test passed there.
fn run_child_with_platform_roots(test: &str, dir: &std::path::Path) {
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("SSL_CERT_FILE", dir.join("ca.pem"))
        .env_remove("SSL_CERT_DIR")
        .env(CHILD, dir)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&child.stdout).into_owned()
        + &String::from_utf8_lossy(&child.stderr);
    assert!(child.status.success(), "{out}");
    assert!(out.contains("1 passed"), "the child ran no test: {out}");
}

/// A new test CA in `dir` (`ca.pem`), with a certificate for 127.0.0.1 it issued (`leaf.pem`)
/// and that certificate's key (`key.pem`).
fn write_test_ca(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    let (ca, leaf, key) = test_ca();
    std::fs::write(dir.join("ca.pem"), ca).unwrap();
    std::fs::write(dir.join("leaf.pem"), leaf).unwrap();
    std::fs::write(dir.join("key.pem"), key).unwrap();
}

/// A TLS failure, as a token request to a server no root certificate vouches for ends.
fn assert_tls_failure(error: oauth_layer::Error) {
    match error {
        oauth_layer::Error::Transport(e) => {
            assert_eq!(e.kind, oauth_layer::TransportErrorKind::Tls, "{e}");
        }
        other => panic!("expected a TLS failure, got {other:?}"),
    }
}

/// The default transport's TLS (one configuration for the clients of every runtime) is what
/// reqwest makes by itself: it trusts the platform's root certificates and nothing else, and
/// offers HTTP/2. The platform's roots are read from `SSL_CERT_FILE` when it is set; a test
/// cannot set it in its own process (the test binary's threads share the environment), so
/// this test runs the binary again, for this test alone, with `SSL_CERT_FILE` naming a CA of
/// its own. There, token requests on three runtimes one after the other (each with its own
/// client) reach a TLS endpoint whose certificate that CA issued, each over `h2`. Here, without
/// it, the same endpoint is refused as a TLS failure.
#[test]
fn the_default_transport_trusts_the_platform_roots_and_offers_h2_on_every_runtime() {
    if let Some(dir) = std::env::var_os(CHILD) {
        return platform_roots_child(std::path::Path::new(&dir));
    }
    let dir = std::env::temp_dir().join(format!("oauth-layer-roots-{}", std::process::id()));
    write_test_ca(&dir);
    run_child_with_platform_roots(PLATFORM_ROOTS_TEST, &dir);

    // Without the CA among the roots, the same endpoint is refused.
    let servers = server_runtime();
    let (url, _) = servers.block_on(tls_endpoint(&dir));
    let client = OAuthClient::builder("pool")
        .secret("s3cret")
        .token_url(url.as_str())
        .build()
        .unwrap();
    let error = current_thread().block_on(async {
        TokenSource::new(client.clone(), ClientCredentials::new())
            .token()
            .await
            .unwrap_err()
    });
    let _ = std::fs::remove_dir_all(&dir);
    assert_tls_failure(error);
}

/// A client's own transport (made by `root_certificate`) trusts its own root next to the
/// platform's, through the one TLS configuration the client makes when it is built. In a child
/// process whose platform roots are CA A (`SSL_CERT_FILE`, as above), a client given CA B
/// reaches an endpoint of each CA on three runtimes one after the other, each time over `h2`.
/// Here, without CA A among the platform's roots, a client given CA B still reaches B's
/// endpoint, and A's is refused as a TLS failure.
#[test]
fn an_own_transport_trusts_the_platform_roots_next_to_its_own_on_every_runtime() {
    if let Some(dir) = std::env::var_os(CHILD) {
        return own_roots_child(std::path::Path::new(&dir));
    }
    let dir = std::env::temp_dir().join(format!("oauth-layer-own-roots-{}", std::process::id()));
    write_test_ca(&dir);
    write_test_ca(&dir.join("b"));
    run_child_with_platform_roots(OWN_ROOTS_TEST, &dir);

    let servers = server_runtime();
    let (a_url, _) = servers.block_on(tls_endpoint(&dir));
    let (b_url, _) = servers.block_on(tls_endpoint(&dir.join("b")));
    let b_ca = std::fs::read(dir.join("b").join("ca.pem")).unwrap();
    let (to_a, to_b) = (trusting(&a_url, &b_ca), trusting(&b_url, &b_ca));
    let error = current_thread().block_on(async {
        fetch(&to_b).await;
        TokenSource::new(to_a.clone(), ClientCredentials::new())
            .token()
            .await
            .unwrap_err()
    });
    let _ = std::fs::remove_dir_all(&dir);
    assert_tls_failure(error);
}

/// A client of the token endpoint at `url` whose own transport trusts `ca_pem` too.
fn trusting(url: &str, ca_pem: &[u8]) -> OAuthClient {
    OAuthClient::builder("pool")
        .secret("s3cret")
        .token_url(url)
        .root_certificate(ca_pem)
        .timeout(DEADLINE)
        .build()
        .unwrap()
}

fn own_roots_child(dir: &std::path::Path) {
    let servers = server_runtime();
    let (a_url, a_protocols) = servers.block_on(tls_endpoint(dir));
    let (b_url, b_protocols) = servers.block_on(tls_endpoint(&dir.join("b")));
    let b_ca = std::fs::read(dir.join("b").join("ca.pem")).unwrap();
    let (to_a, to_b) = (trusting(&a_url, &b_ca), trusting(&b_url, &b_ca));
    for make in [current_thread, multi_thread, current_thread] {
        make().block_on(async {
            fetch(&to_a).await;
            fetch(&to_b).await;
        });
    }
    for protocols in [a_protocols, b_protocols] {
        let protocols = protocols.lock().unwrap().clone();
        assert_eq!(
            protocols,
            ["h2", "h2", "h2"],
            "one connection per runtime, each h2"
        );
    }
}

fn platform_roots_child(dir: &std::path::Path) {
    let servers = server_runtime();
    let (url, protocols) = servers.block_on(tls_endpoint(dir));
    let client = OAuthClient::builder("pool")
        .secret("s3cret")
        .token_url(url.as_str())
        .timeout(DEADLINE)
        .build()
        .unwrap();
    for make in [current_thread, multi_thread, current_thread] {
        make().block_on(fetch(&client));
    }
    let protocols = protocols.lock().unwrap().clone();
    assert_eq!(
        protocols,
        ["h2", "h2", "h2"],
        "one connection per runtime, each h2"
    );
}

/// A CA, and a certificate for 127.0.0.1 it issued with its key, as PEM.
fn test_ca() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(params, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    (ca.pem(), leaf.pem(), key.serialize_pem())
}

/// A TLS token endpoint serving the certificate in `dir` over `h2` or `http/1.1`, as the client
/// chooses, and the protocol each connection chose.
async fn tls_endpoint(dir: &std::path::Path) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let leaf = CertificateDer::from_pem_file(dir.join("leaf.pem")).unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("key.pem")).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf], key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/token", listener.local_addr().unwrap());
    let protocols = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = protocols.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                seen.lock()
                    .unwrap()
                    .push(if h2 { "h2" } else { "http/1.1" }.to_owned());
                let service = service_fn(|_: Request<hyper::body::Incoming>| async {
                    Ok::<_, Infallible>(token_response())
                });
                let io = TokioIo::new(tls);
                if h2 {
                    let executor = hyper_util::rt::TokioExecutor::new();
                    let _ = hyper::server::conn::http2::Builder::new(executor)
                        .serve_connection(io, service)
                        .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                }
            });
        }
    });
    (url, protocols)
}
