//! What the crate tells operators about itself: the labels its `tracing` spans and metrics
//! share, always; and with the `metrics` feature, OpenTelemetry instruments.

use url::Url;

use crate::error::Error;

/// The token endpoint as spans and metrics name it: scheme, host, port and path, never the
/// query, fragment or credentials a configured URL might carry.
pub(crate) fn endpoint_label(url: &Url) -> String {
    format!("{}{}", url.origin().ascii_serialization(), url.path())
}

/// How a request ended, as one word from a fixed set (never text a server chose).
pub(crate) fn outcome_label(result: Result<(), &Error>) -> &'static str {
    match result {
        Ok(()) => "success",
        Err(Error::Server(_)) => "oauth_error",
        Err(Error::UnexpectedResponse(_)) => "unexpected_response",
        Err(Error::Transport(_)) => "transport_error",
        Err(Error::Timeout(_)) => "timeout",
        Err(_) => "error",
    }
}

#[cfg(feature = "metrics")]
pub use instruments::{BACKGROUND, GRANT_TYPE, METER_NAME, OUTCOME};
#[cfg(feature = "metrics")]
pub(crate) use instruments::{Instruments, SourceMetrics};

/// A retry of the request path, as the metrics count it.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(
    not(any(feature = "tower", feature = "reqwest")),
    allow(dead_code, unreachable_pub)
)]
pub(crate) enum Retry {
    /// A 401 answered with a renewed token.
    Unauthorized,
    /// A DPoP nonce challenge answered with the new nonce.
    DpopNonce,
    /// A challenge for more (scope, `acr`, claims) answered with an upgraded token.
    StepUp,
}

/// OpenTelemetry instruments (feature `metrics`). See the README's "Observability" section for
/// the table of names, units and attributes.
#[cfg(feature = "metrics")]
mod instruments {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, OnceLock, PoisonError};
    use std::time::Duration;

    use opentelemetry::KeyValue;
    use opentelemetry::metrics::{Counter, Histogram, Meter};

    /// The instrumentation scope name the crate's meter is made with.
    pub const METER_NAME: &str = "oauth-layer";

    /// The attribute naming the grant (`client_credentials`, `refresh_token`, ...).
    pub const GRANT_TYPE: &str = "oauth.grant_type";
    /// The attribute saying how something ended, one word from a fixed set.
    pub const OUTCOME: &str = "outcome";
    /// The attribute saying whether a renewal ran in the background (refresh-ahead).
    pub const BACKGROUND: &str = "background";

    /// What one token source records with: the instruments, its grant as the one attribute
    /// (made once), and the count of cached tokens served for that grant.
    #[derive(Clone)]
    pub(crate) struct SourceMetrics {
        instruments: Arc<Instruments>,
        grant: [KeyValue; 1],
        cache_hits: Arc<AtomicU64>,
    }

    impl SourceMetrics {
        pub(crate) fn new(client: &crate::OAuthClient, key: &crate::store::CacheKey) -> Self {
            let grant = [KeyValue::new(
                GRANT_TYPE,
                key.get("grant").unwrap_or("custom").to_owned(),
            )];
            let instruments = client.instruments();
            let cache_hits = instruments.cache_hits.of(&grant[0]);
            Self {
                instruments,
                grant,
                cache_hits,
            }
        }

        /// One token served from the cache: every request that finds a fresh token counts one,
        /// so this is one atomic add, read at the next collection. Recorded through the SDK
        /// (`Counter::add`), it cost some 700 instructions a request: the SDK hashes the
        /// attribute set on every add to find its counter.
        #[inline]
        pub(crate) fn cache_hit(&self) {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
        }

        pub(crate) fn renewal_wait(&self) {
            self.instruments.renewal_waits.add(1, &self.grant);
        }

        pub(crate) fn renewal_started(&self, left: Duration) {
            self.instruments
                .remaining_at_renewal
                .record(left.as_secs_f64(), &self.grant);
        }

        pub(crate) fn renewal(&self, background: bool, renewed: bool, still_serving: bool) {
            let outcome = match (renewed, still_serving) {
                (true, _) => "success",
                (false, true) => "failure_still_serving",
                (false, false) => "failure",
            };
            self.instruments.renewals.add(
                1,
                &[
                    self.grant[0].clone(),
                    KeyValue::new(OUTCOME, outcome),
                    KeyValue::new(BACKGROUND, background),
                ],
            );
        }

        #[cfg_attr(not(any(feature = "reqwest", feature = "tower")), allow(dead_code))]
        pub(crate) fn retry(&self, retry: super::Retry) {
            let counter = match retry {
                super::Retry::Unauthorized => &self.instruments.unauthorized_retries,
                super::Retry::DpopNonce => &self.instruments.dpop_nonce_retries,
                super::Retry::StepUp => &self.instruments.step_ups,
            };
            counter.add(1, &self.grant);
        }

        /// Reports, at each collection, the time until the source's current token expires
        /// (`left` returns `None` once the source is gone or holds no token).
        pub(crate) fn watch_expiry(
            &self,
            left: impl Fn() -> Option<Duration> + Send + Sync + 'static,
        ) {
            let grant = self.grant.clone();
            let _gauge = self
                .instruments
                .meter
                .f64_observable_gauge("oauth.client.token.time_to_expiry")
                .with_description("Time until the current token expires")
                .with_unit("s")
                .with_callback(move |observer| {
                    if let Some(left) = left() {
                        observer.observe(left.as_secs_f64(), &grant);
                    }
                })
                .build();
        }
    }

    /// Tokens served from the cache, one running total per grant attribute; the observable
    /// counter `oauth.client.token.cache_hits` reports them at each collection.
    #[derive(Default)]
    pub(crate) struct CacheHits(Mutex<Vec<(KeyValue, Arc<AtomicU64>)>>);

    impl CacheHits {
        /// The running total for `grant`, shared by every source of that grant.
        fn of(&self, grant: &KeyValue) -> Arc<AtomicU64> {
            let mut totals = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((_, total)) = totals.iter().find(|(g, _)| g == grant) {
                return total.clone();
            }
            let total = Arc::new(AtomicU64::new(0));
            totals.push((grant.clone(), total.clone()));
            total
        }
    }

    /// The crate's instruments, made once per meter.
    pub(crate) struct Instruments {
        pub(crate) cache_hits: Arc<CacheHits>,
        pub(crate) token_requests: Counter<u64>,
        pub(crate) token_request_duration: Histogram<f64>,
        pub(crate) renewals: Counter<u64>,
        pub(crate) renewal_waits: Counter<u64>,
        pub(crate) remaining_at_renewal: Histogram<f64>,
        #[cfg_attr(not(any(feature = "reqwest", feature = "tower")), allow(dead_code))]
        pub(crate) unauthorized_retries: Counter<u64>,
        pub(crate) dpop_nonce_retries: Counter<u64>,
        #[cfg_attr(not(any(feature = "reqwest", feature = "tower")), allow(dead_code))]
        pub(crate) step_ups: Counter<u64>,
        pub(crate) meter: Meter,
    }

    impl Instruments {
        pub(crate) fn new(meter: Meter) -> Self {
            let cache_hits = Arc::new(CacheHits::default());
            let totals = cache_hits.clone();
            let _observed = meter
                .u64_observable_counter("oauth.client.token.cache_hits")
                .with_description("Tokens served from the cache without waiting")
                .with_unit("{token}")
                .with_callback(move |observer| {
                    let totals = totals.0.lock().unwrap_or_else(PoisonError::into_inner);
                    for (grant, total) in totals.iter() {
                        observer
                            .observe(total.load(Ordering::Relaxed), std::slice::from_ref(grant));
                    }
                })
                .build();
            Self {
                cache_hits,
                token_requests: meter
                    .u64_counter("oauth.client.token.requests")
                    .with_description("Requests sent to the token endpoint")
                    .with_unit("{request}")
                    .build(),
                token_request_duration: meter
                    .f64_histogram("oauth.client.token.request.duration")
                    .with_description("Time the token endpoint took to answer")
                    .with_unit("s")
                    .build(),
                renewals: meter
                    .u64_counter("oauth.client.token.renewals")
                    .with_description("Renewals of a cached token, by outcome")
                    .with_unit("{renewal}")
                    .build(),
                renewal_waits: meter
                    .u64_counter("oauth.client.token.renewal.waits")
                    .with_description("Callers that waited for a renewal")
                    .with_unit("{call}")
                    .build(),
                remaining_at_renewal: meter
                    .f64_histogram("oauth.client.token.remaining_at_renewal")
                    .with_description("Lifetime left on the current token when its renewal started")
                    .with_unit("s")
                    .build(),
                unauthorized_retries: meter
                    .u64_counter("oauth.client.unauthorized.retries")
                    .with_description("Requests retried with a renewed token after a 401")
                    .with_unit("{request}")
                    .build(),
                dpop_nonce_retries: meter
                    .u64_counter("oauth.client.dpop.nonce_retries")
                    .with_description("Requests retried with a new DPoP nonce")
                    .with_unit("{request}")
                    .build(),
                step_ups: meter
                    .u64_counter("oauth.client.step_ups")
                    .with_description(
                        "Challenges answered with a token for more (scope, acr, claims)",
                    )
                    .with_unit("{request}")
                    .build(),
                meter,
            }
        }

        /// The instruments of the global meter provider's `oauth-layer` meter, made the first
        /// time they are needed: set the global provider before the first token is requested.
        pub(crate) fn global() -> Arc<Self> {
            static GLOBAL: OnceLock<Arc<Instruments>> = OnceLock::new();
            GLOBAL
                .get_or_init(|| Arc::new(Self::new(opentelemetry::global::meter(METER_NAME))))
                .clone()
        }

        /// One request to the token endpoint, and whether it was answered with a new DPoP
        /// nonce (so it is sent again).
        pub(crate) fn token_request(
            &self,
            grant_type: &str,
            outcome: &'static str,
            took: Duration,
            nonce_retry: bool,
        ) {
            let attributes = [
                KeyValue::new(GRANT_TYPE, grant_type.to_owned()),
                KeyValue::new(OUTCOME, outcome),
            ];
            self.token_requests.add(1, &attributes);
            self.token_request_duration
                .record(took.as_secs_f64(), &attributes);
            if nonce_retry {
                self.dpop_nonce_retries.add(1, &attributes[..1]);
            }
        }
    }
}
