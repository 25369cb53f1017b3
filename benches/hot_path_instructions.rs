#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The hot path of `benches/hot_path.rs` (one task) as a plain program for instruction counts:
//! `hot_path_instructions <variant> <requests>` sends 1,000 warm-up requests, then `<requests>`
//! more, through one service over the same in-memory API, on a current-thread runtime.
//!
//! Variants: `static_header` (tower-http's `AddAuthorization::bearer`, the floor),
//! `static_header_retry` (the same inside `tower::retry::Retry` with a policy that copies each
//! request and sends it once more after a 401: the one retry written with tower), `oauth_layer`
//! (cached token, retry copy on: the default), `oauth_layer_no_retry`, and `oauth_layer_metrics`
//! (the default with OpenTelemetry metrics into an SDK meter provider; needs `--features
//! metrics`).
//!
//! Run under `valgrind --tool=callgrind` twice, with `<requests>` = 0 and N: the difference over N
//! is the instructions one request costs, exactly the same from run to run whatever else the
//! machine does. `scripts/hot_path_instructions.sh` does that for every variant.

mod support;

use http::{Request, Response, Uri};
use oauth_layer::OAuthLayer;
use support::{API_URL, api, call};
use tower::{Layer, Service};
use tower_http::auth::AddAuthorizationLayer;

const WARM_UP: u64 = 1_000;

/// `WARM_UP + requests` requests through `service`, one after the other.
async fn run<S>(mut service: S, requests: u64)
where
    S: Service<Request<()>, Response = Response<()>>,
    S::Error: std::fmt::Debug,
{
    let uri: Uri = API_URL.parse().unwrap();
    for _ in 0..WARM_UP + requests {
        call(&mut service, &uri).await;
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: hot_path_instructions <static_header|static_header_retry|oauth_layer|\
                 oauth_layer_no_retry|oauth_layer_metrics> <requests>";
    let variant = args.next().expect(usage);
    let requests: u64 = args.next().expect(usage).parse().expect(usage);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    // Never asked: every source starts with a valid one-hour token.
    let token_url = "http://127.0.0.1:1/token";
    match variant.as_str() {
        "static_header" => {
            let service = AddAuthorizationLayer::bearer("seeded-token")
                .as_sensitive(true)
                .layer(api());
            rt.block_on(run(service, requests));
        }
        "static_header_retry" => {
            let service = tower::ServiceBuilder::new()
                .layer(tower::retry::RetryLayer::new(support::OnceAfter401::new()))
                .layer(AddAuthorizationLayer::bearer("seeded-token").as_sensitive(true))
                .service(api());
            rt.block_on(run(service, requests));
        }
        "oauth_layer" => {
            let service = OAuthLayer::from_source(support::source(token_url, true)).layer(api());
            rt.block_on(run(service, requests));
        }
        "oauth_layer_no_retry" => {
            let service = OAuthLayer::from_source(support::source(token_url, true))
                .retry_after_401(false)
                .layer(api());
            rt.block_on(run(service, requests));
        }
        #[cfg(feature = "metrics")]
        "oauth_layer_metrics" => {
            let (source, provider) = support::source_with_metrics(token_url);
            let service = OAuthLayer::from_source(source).layer(api());
            rt.block_on(run(service, requests));
            drop(provider);
        }
        other => panic!("unknown variant {other:?}; {usage}"),
    }
}
