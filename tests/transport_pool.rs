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
                    let body = r#"{"access_token":"a","token_type":"Bearer","expires_in":3600}"#;
                    let mut response =
                        Response::new(Full::new(Bytes::from_static(body.as_bytes())));
                    response
                        .headers_mut()
                        .insert(CONTENT_TYPE, "application/json".parse().unwrap());
                    Ok::<_, Infallible>(response)
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
