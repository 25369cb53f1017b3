//! What the crate's values hold in memory: their own size (`size_of`) and the heap bytes they
//! keep alive, counted by a wrapper around the system allocator (`stats_alloc`):
//!
//! - an `OAuthClient` (client credentials, secret, token URL) and a `TokenSource` holding one
//!   cached bearer token (its cache entry, the single-flight state, the settings);
//! - `OAuthLayer::from_source` and a clone of it, the `OAuthService` it makes, and a clone of that;
//! - a request waiting for a renewal in flight: its response future, and the heap it holds once
//!   polled (1,000 of them, averaged); and, for scale, the size of `TokenSource::token`'s future.
//!
//! The token endpoint for the waiting requests accepts connections and never answers, so the
//! renewal stays in flight while the futures are counted.
//!
//! ```text
//! cargo run --release --example memory
//! ```

use std::alloc::System;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use oauth_layer::clock::SystemClock;
use oauth_layer::flow::ClientCredentials;
use oauth_layer::{OAuthClient, OAuthLayer, Token, TokenSource};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::{Layer, Service, ServiceExt};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The heap bytes still allocated that were allocated since `region` started.
fn live(region: &Region<'_, System>) -> isize {
    let change = region.change();
    // A reallocation is already in `bytes_allocated` or `bytes_deallocated`.
    change.bytes_allocated as isize - change.bytes_deallocated as isize
}

/// `value`, and the heap bytes making it left allocated.
fn measured<T>(make: impl FnOnce() -> T) -> (T, isize) {
    let region = Region::new(GLOBAL);
    let value = make();
    (value, live(&region))
}

fn client(token_url: &str) -> Result<OAuthClient, Error> {
    Ok(OAuthClient::builder("memory-client")
        .secret("memory-secret")
        .token_url(token_url)
        .build()?)
}

/// A token endpoint that takes connections and never answers.
async fn silent_endpoint() -> Result<String, Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/token", listener.local_addr()?);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    Ok(url)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    const WAITING: usize = 1_000;
    let url = silent_endpoint().await?;

    println!("what                                       size_of   heap held");
    let row = |what: &str, size: usize, heap: isize| {
        println!("{what:<42} {size:>7} B {heap:>9} B");
    };

    let (oauth_client, heap) = measured(|| client(&url));
    let oauth_client = oauth_client?;
    row("OAuthClient", size_of::<OAuthClient>(), heap);

    // A typical token as a server issues it: an opaque access token, a scope, an hour.
    let (token, heap) = measured(|| {
        Token::builder("ya29.a0AfB_byC-an-opaque-access-token-of-about-64-characters-0123")
            .scope("api:read api:write")
            .expires_in(Duration::from_secs(3600))
            .build(&SystemClock)
    });
    let token = token?;
    row(
        "Token (as built, shared by clones)",
        size_of::<Token>(),
        heap,
    );

    let (source, heap) = measured(|| {
        TokenSource::builder(
            oauth_client.clone(),
            ClientCredentials::new().scope("api:read"),
        )
        .initial_token(token.clone())
        .build()
    });
    row(
        "TokenSource with the token cached",
        size_of::<TokenSource>(),
        heap,
    );
    assert!(source.cached().is_some());

    let (layer, heap) = measured(|| OAuthLayer::from_source(source.clone()));
    row("OAuthLayer::from_source", size_of_val(&layer), heap);
    let (layer_clone, heap) = measured(|| layer.clone());
    row("  a clone of the layer", size_of_val(&layer_clone), heap);

    let inner =
        tower::service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
    let (service, heap) = measured(|| layer.layer(inner));
    row(
        "OAuthService (over a service_fn)",
        size_of_val(&service),
        heap,
    );
    let (service_clone, heap) = measured(|| service.clone());
    row(
        "  a clone of the service",
        size_of_val(&service_clone),
        heap,
    );
    drop((layer_clone, service_clone));

    // Requests waiting for the one renewal: a source with no token, a silent endpoint.
    let waiting_source = TokenSource::new(
        oauth_client.clone(),
        ClientCredentials::new().scope("api:read"),
    );
    let waiting_service = OAuthLayer::from_source(waiting_source.clone()).layer(inner);
    let mut ready = waiting_service.clone();
    ready.ready().await?;
    let future_size = size_of_val(&ready.call(api_request()));
    // The renewal task and its connection are made by the first waiting request; counted
    // apart.
    let mut first = Box::pin(waiting_service.clone().oneshot(api_request()));
    poll_once(first.as_mut()).await;
    tokio::time::sleep(Duration::from_millis(50)).await;

    let region = Region::new(GLOBAL);
    let mut futures = Vec::with_capacity(WAITING);
    let services: Vec<_> = (0..WAITING).map(|_| waiting_service.clone()).collect();
    let before_calls = live(&region);
    for mut service in services {
        service.ready().await?;
        futures.push(Box::pin(service.call(api_request())));
    }
    for future in &mut futures {
        poll_once(future.as_mut()).await;
    }
    let per_request = (live(&region) - before_calls) as f64 / WAITING as f64;
    row(
        "a waiting request's response future",
        future_size,
        (per_request - future_size as f64).round() as isize,
    );
    println!("  (heap: beyond the future itself, which this example boxes; the mean of {WAITING})");
    assert!(waiting_source.cached().is_none(), "still waiting");
    row(
        "  TokenSource::token's future, for scale",
        size_of_val(&waiting_source.token()),
        0,
    );
    drop((futures, first));
    Ok(())
}

/// A request to an https API, so the layer attaches a token to it.
fn api_request() -> Request<()> {
    let mut request = Request::new(());
    *request.uri_mut() = http::Uri::from_static("https://api.example/things");
    request
}

/// Polls `future` once; it must still be pending.
async fn poll_once<F: Future>(mut future: Pin<&mut F>) {
    std::future::poll_fn(|cx: &mut Context<'_>| {
        assert!(future.as_mut().poll(cx).is_pending(), "a waiting request");
        Poll::Ready(())
    })
    .await
}
