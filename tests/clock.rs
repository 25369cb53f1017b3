#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The clocks through the public API: `TokioClock` follows a paused tokio runtime, so a test can
//! move time with `tokio::time::advance` and watch the layer renew; `SystemClock`, the default,
//! does not see tokio's pause. The token endpoint is an in-memory tower service (no sockets, so
//! tokio's auto-advance never fires a deadline early).

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use oauth_layer::clock::{Clock, SystemClock, TokioClock};
use oauth_layer::transport::TowerTransport;
use oauth_layer::{OAuthClient, OAuthLayer};
use tower::{Layer, Service, ServiceExt};

/// A token endpoint in memory: every request gets `AT-<n>`, valid for one hour.
#[derive(Clone)]
struct Endpoint {
    requests: Arc<AtomicUsize>,
}

impl Service<Request<Full<Bytes>>> for Endpoint {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: Request<Full<Bytes>>) -> Self::Future {
        let n = self.requests.fetch_add(1, Ordering::SeqCst) + 1;
        let body =
            format!(r#"{{"access_token":"AT-{n}","token_type":"Bearer","expires_in":3600}}"#);
        let response = Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        std::future::ready(Ok(response))
    }
}

/// A layered in-memory API that records the `Authorization` header of each request.
async fn send(
    service: &mut (
             impl Service<Request<()>, Response = Response<()>, Error = oauth_layer::transport::BoxError>
             + Send
         ),
) {
    let request = Request::get("https://api.example/things").body(()).unwrap();
    service.ready().await.unwrap().call(request).await.unwrap();
}

struct Rig<S> {
    requests: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<String>>>,
    service: S,
}

fn rig(
    clock: impl Clock,
) -> Rig<
    impl Service<Request<()>, Response = Response<()>, Error = oauth_layer::transport::BoxError> + Send,
> {
    let requests = Arc::new(AtomicUsize::new(0));
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let client = OAuthClient::builder("clock-test")
        .secret("clock-secret")
        .token_url("https://idp.example/token")
        .transport(TowerTransport::new(Endpoint {
            requests: requests.clone(),
        }))
        .clock(clock)
        .build()
        .unwrap();
    let record = seen.clone();
    let api = tower::service_fn(move |request: Request<()>| {
        let header = request.headers()["authorization"]
            .to_str()
            .unwrap()
            .to_owned();
        record.lock().unwrap().push(header);
        std::future::ready(Ok::<_, Infallible>(Response::new(())))
    });
    let service = OAuthLayer::client_credentials(client).layer(api);
    Rig {
        requests,
        seen,
        service,
    }
}

fn last(seen: &Mutex<Vec<String>>) -> String {
    seen.lock().unwrap().last().cloned().unwrap()
}

#[tokio::test(start_paused = true)]
async fn with_tokio_clock_the_layer_renews_when_paused_time_passes_the_expiry() {
    let mut rig = rig(TokioClock);

    send(&mut rig.service).await;
    assert_eq!(last(&rig.seen), "Bearer AT-1");

    // Half an hour later the token is still fresh: no new request.
    tokio::time::advance(Duration::from_secs(30 * 60)).await;
    send(&mut rig.service).await;
    assert_eq!(last(&rig.seen), "Bearer AT-1");
    assert_eq!(rig.requests.load(Ordering::SeqCst), 1);

    // Past the expiry the next request waits for a new token.
    tokio::time::advance(Duration::from_secs(31 * 60)).await;
    send(&mut rig.service).await;
    assert_eq!(last(&rig.seen), "Bearer AT-2");
    assert_eq!(rig.requests.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn the_system_clock_does_not_see_tokios_pause() {
    let mut rig = rig(SystemClock);

    send(&mut rig.service).await;
    tokio::time::advance(Duration::from_secs(2 * 3600)).await;
    send(&mut rig.service).await;

    assert_eq!(last(&rig.seen), "Bearer AT-1");
    assert_eq!(rig.requests.load(Ordering::SeqCst), 1);
}
