//! The `metrics` feature through the public API: a token source on a meter the test gives it,
//! read back with the OpenTelemetry SDK's in-memory exporter. Counts are exact; no attribute
//! ever carries a secret, a token, the client id or a URL.
#![cfg(feature = "metrics")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use oauth_layer::clock::ManualClock;
use oauth_layer::flow::ClientCredentials;
use oauth_layer::{ExposeSecret, OAuthClient, RetryPolicy, TokenSource};
use opentelemetry::metrics::MeterProvider;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CLIENT_ID: &str = "metrics-client-SENTINEL-ID";
const SECRET: &str = "metrics-SENTINEL-SECRET";

/// One data point: instrument name, attributes, and its value (a sum, a gauge's value, or a
/// histogram's count).
#[derive(Debug)]
struct Point {
    name: String,
    attributes: Vec<(String, String)>,
    value: f64,
}

fn points(provider: &SdkMeterProvider, exporter: &InMemoryMetricExporter) -> Vec<Point> {
    provider.force_flush().unwrap();
    let mut out = Vec::new();
    let finished = exporter.get_finished_metrics().unwrap();
    let Some(last) = finished.last() else {
        return out;
    };
    for scope in last.scope_metrics() {
        for metric in scope.metrics() {
            let name = metric.name().to_owned();
            let attrs = |kv: &mut dyn Iterator<Item = &opentelemetry::KeyValue>| {
                let mut v: Vec<(String, String)> = kv
                    .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                    .collect();
                v.sort();
                v
            };
            match metric.data() {
                AggregatedMetrics::U64(MetricData::Sum(sum)) => {
                    for p in sum.data_points() {
                        out.push(Point {
                            name: name.clone(),
                            attributes: attrs(&mut p.attributes()),
                            value: p.value() as f64,
                        });
                    }
                }
                AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                    for p in h.data_points() {
                        out.push(Point {
                            name: name.clone(),
                            attributes: attrs(&mut p.attributes()),
                            value: p.count() as f64,
                        });
                    }
                }
                AggregatedMetrics::F64(MetricData::Gauge(g)) => {
                    for p in g.data_points() {
                        out.push(Point {
                            name: name.clone(),
                            attributes: attrs(&mut p.attributes()),
                            value: p.value(),
                        });
                    }
                }
                other => panic!("unexpected data for {name}: {other:?}"),
            }
        }
    }
    out
}

/// The value of `name` with exactly these attributes (0 when absent).
fn value(points: &[Point], name: &str, attributes: &[(&str, &str)]) -> f64 {
    let mut wanted: Vec<(String, String)> = attributes
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    wanted.sort();
    points
        .iter()
        .filter(|p| p.name == name && p.attributes == wanted)
        .map(|p| p.value)
        .sum()
}

fn meter_provider() -> (SdkMeterProvider, InMemoryMetricExporter) {
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    (provider, exporter)
}

#[tokio::test]
async fn a_source_counts_cache_hits_requests_renewals_and_reports_time_to_expiry() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "AT-SENTINEL-1", "token_type": "Bearer", "expires_in": 1000,
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "AT-SENTINEL-2", "token_type": "Bearer", "expires_in": 1000,
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(json!({ "error": "invalid_client" })),
        )
        .mount(&server)
        .await;
    let (provider, exporter) = meter_provider();
    let clock = ManualClock::new();
    let client = OAuthClient::builder(CLIENT_ID)
        .secret(SECRET)
        .token_url(format!("{}/token?tenant=SENTINEL-QUERY", server.uri()))
        .clock(clock.clone())
        .retry_policy(RetryPolicy::none())
        .meter(provider.meter("metrics-test"))
        .build()
        .unwrap();
    let source = TokenSource::new(client, ClientCredentials::new());

    // The first call waits for the first token; the next five are served from the cache.
    source.token().await.unwrap();
    for _ in 0..5 {
        source.token().await.unwrap();
    }
    let cc = [("oauth.grant_type", "client_credentials")];
    let p = points(&provider, &exporter);
    assert_eq!(
        value(&p, "oauth.client.token.cache_hits", &cc),
        5.0,
        "{p:#?}"
    );
    assert_eq!(value(&p, "oauth.client.token.renewal.waits", &cc), 1.0);
    let ok = [
        ("oauth.grant_type", "client_credentials"),
        ("outcome", "success"),
    ];
    assert_eq!(value(&p, "oauth.client.token.requests", &ok), 1.0);
    assert_eq!(value(&p, "oauth.client.token.request.duration", &ok), 1.0);
    let left = value(&p, "oauth.client.token.time_to_expiry", &cc);
    assert!((999.0..=1000.0).contains(&left), "{left}");

    // Into the refresh window (from 870 s): one background renewal, from a token with 95 s left.
    clock.advance(Duration::from_secs(905));
    source.token().await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), async {
        while source.token().await.unwrap().access_token().expose_secret() != "AT-SENTINEL-2" {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    let p = points(&provider, &exporter);
    let background_ok = [
        ("background", "true"),
        ("oauth.grant_type", "client_credentials"),
        ("outcome", "success"),
    ];
    assert_eq!(
        value(&p, "oauth.client.token.renewals", &background_ok),
        1.0
    );
    assert_eq!(value(&p, "oauth.client.token.requests", &ok), 2.0);
    assert_eq!(
        value(&p, "oauth.client.token.remaining_at_renewal", &cc),
        1.0
    );
    let left = value(&p, "oauth.client.token.time_to_expiry", &cc);
    assert!((999.0..=1000.0).contains(&left), "the new token's: {left}");

    // Past the new token's expiry the server refuses: a failed request, a failed renewal.
    clock.advance(Duration::from_secs(1000));
    assert!(source.token().await.is_err());
    let p = points(&provider, &exporter);
    let refused = [
        ("oauth.grant_type", "client_credentials"),
        ("outcome", "oauth_error"),
    ];
    assert_eq!(value(&p, "oauth.client.token.requests", &refused), 1.0);
    let waited_failed = [
        ("background", "false"),
        ("oauth.grant_type", "client_credentials"),
        ("outcome", "failure"),
    ];
    assert_eq!(
        value(&p, "oauth.client.token.renewals", &waited_failed),
        1.0
    );

    // No attribute carries anything but the documented keys and fixed words.
    for point in &p {
        for (key, value) in &point.attributes {
            assert!(
                ["oauth.grant_type", "outcome", "background"].contains(&key.as_str()),
                "{point:?}"
            );
            for secret in ["SENTINEL", "metrics-client", "http", "token?"] {
                assert!(!value.contains(secret), "{point:?}");
            }
        }
    }
}

/// Through the reqwest middleware against the crate's test server: a revoked token's 401 is
/// retried once with a renewed token, and an `insufficient_scope` answer is one step-up.
#[tokio::test]
async fn the_request_path_counts_401_retries_and_step_ups() {
    use oauth_layer::testing::TestServer;
    use oauth_layer::{AuthMethod, OAuthMiddleware};

    let server = TestServer::builder()
        .client(
            "app",
            Some("app-SENTINEL-SECRET"),
            AuthMethod::ClientSecretBasic,
        )
        .require_scope("/api/reports", "reports:read")
        .start()
        .await
        .unwrap();
    let (provider, exporter) = meter_provider();
    let client = server
        .oauth_client_builder("app")
        .unwrap()
        .meter(provider.meter("metrics-test"))
        .build()
        .unwrap();
    let source = TokenSource::new(client, ClientCredentials::new().scope("read"));
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(OAuthMiddleware::from_source(source))
        .build();
    let get = |path: &str| http.get(server.resource_url(path)).send();

    assert_eq!(get("/api/hello").await.unwrap().status(), 200);
    server.revoke_all_access_tokens();
    assert_eq!(get("/api/hello").await.unwrap().status(), 200);
    assert_eq!(get("/api/reports").await.unwrap().status(), 200);

    let p = points(&provider, &exporter);
    let cc = [("oauth.grant_type", "client_credentials")];
    assert_eq!(
        value(&p, "oauth.client.unauthorized.retries", &cc),
        1.0,
        "{p:#?}"
    );
    assert_eq!(value(&p, "oauth.client.step_ups", &cc), 1.0, "{p:#?}");
    let ok = [
        ("oauth.grant_type", "client_credentials"),
        ("outcome", "success"),
    ];
    assert_eq!(value(&p, "oauth.client.token.requests", &ok), 3.0, "{p:#?}");
    assert!(p.iter().all(|point| {
        point
            .attributes
            .iter()
            .all(|(_, v)| !v.contains("SENTINEL") && !v.contains("app"))
    }));
}

/// A strict DPoP server wants a nonce at the token endpoint and at the resource: each first
/// request meets one challenge and is resent once with the nonce, and each resend is counted.
#[tokio::test]
async fn dpop_nonce_retries_are_counted_at_the_token_endpoint_and_the_resource() {
    use oauth_layer::dpop::Dpop;
    use oauth_layer::testing::TestServer;
    use oauth_layer::{AuthMethod, OAuthMiddleware};

    let server = TestServer::builder()
        .client("svc", Some("s3cret"), AuthMethod::ClientSecretBasic)
        .require_dpop(true)
        .require_dpop_nonce(true)
        .require_resource_dpop_nonce(true)
        .start()
        .await
        .unwrap();
    let (provider, exporter) = meter_provider();
    let client = server
        .oauth_client_builder("svc")
        .unwrap()
        .dpop(Dpop::new())
        .meter(provider.meter("metrics-test"))
        .build()
        .unwrap();
    let source = TokenSource::new(client, ClientCredentials::new().scope("api:read"));
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(OAuthMiddleware::from_source(source))
        .build();
    for _ in 0..3 {
        let answer = http.get(server.resource_url("/api/item/1")).send().await;
        assert_eq!(answer.unwrap().status(), 200);
    }

    let p = points(&provider, &exporter);
    let cc = [("oauth.grant_type", "client_credentials")];
    assert_eq!(
        value(&p, "oauth.client.dpop.nonce_retries", &cc),
        2.0,
        "{p:#?}"
    );
    let challenged = [
        ("oauth.grant_type", "client_credentials"),
        ("outcome", "oauth_error"),
    ];
    assert_eq!(value(&p, "oauth.client.token.requests", &challenged), 1.0);
    assert_eq!(value(&p, "oauth.client.unauthorized.retries", &cc), 0.0);
}

/// The tower layer's own fast path (a per-service reference to the cached token) counts its
/// cache hits too: one per request served without waiting.
#[tokio::test]
async fn the_tower_layer_counts_each_request_served_from_the_cache() {
    use oauth_layer::testing::TestServer;
    use oauth_layer::{AuthMethod, OAuthLayer};
    use tower::{Layer, Service, ServiceExt};

    let server = TestServer::builder()
        .client("app", Some("s3cret"), AuthMethod::ClientSecretBasic)
        .start()
        .await
        .unwrap();
    let (provider, exporter) = meter_provider();
    let client = server
        .oauth_client_builder("app")
        .unwrap()
        .meter(provider.meter("metrics-test"))
        .build()
        .unwrap();
    let source = TokenSource::new(client, ClientCredentials::new().scope("read"));
    let api = tower::service_fn(|_: http::Request<String>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    });
    let mut svc = OAuthLayer::from_source(source).layer(api);
    for _ in 0..10 {
        let request = http::Request::get("https://api.example/x")
            .body(String::new())
            .unwrap();
        let answer = svc.ready().await.unwrap().call(request).await.unwrap();
        assert_eq!(answer.status(), 200);
    }
    let p = points(&provider, &exporter);
    let cc = [("oauth.grant_type", "client_credentials")];
    assert_eq!(
        value(&p, "oauth.client.token.renewal.waits", &cc),
        1.0,
        "{p:#?}"
    );
    assert_eq!(
        value(&p, "oauth.client.token.cache_hits", &cc),
        9.0,
        "{p:#?}"
    );
}
