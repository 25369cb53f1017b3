//! Server-directed refresh through the public API: a token response's `refresh_in` brings the
//! background renewal forward to the instant it names, a token that lives over two hours and
//! names none is renewed from half its lifetime on (what Microsoft's MSAL does), a hostile
//! `refresh_in` is clamped or ignored, and a persisted token keeps its renewal instant.
//!
//! Time is a `ManualClock`; the token endpoint is wiremock, so every `refresh_in` a server could
//! send is sent byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use oauth_layer::clock::{Clock, ManualClock};
use oauth_layer::flow::ClientCredentials;
use oauth_layer::{ExposeSecret, OAuthClient, RetryPolicy, Token, TokenSource};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn client(server: &MockServer, clock: &ManualClock) -> OAuthClient {
    OAuthClient::builder("directed-refresh-test")
        .secret("directed-refresh-secret")
        .token_url(format!("{}/token", server.uri()))
        .clock(clock.clone())
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap()
}

/// A token endpoint that answers `first` once, then `AT-2` with the same lifetime.
async fn endpoint(first: Value) -> MockServer {
    let server = MockServer::start().await;
    let lifetime = first["expires_in"].clone();
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(first))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "AT-2", "token_type": "Bearer", "expires_in": lifetime,
        })))
        .mount(&server)
        .await;
    server
}

fn answer(expires_in: u64, refresh_in: Option<Value>) -> Value {
    let mut body =
        json!({ "access_token": "AT-1", "token_type": "Bearer", "expires_in": expires_in });
    if let Some(refresh_in) = refresh_in {
        body["refresh_in"] = refresh_in;
    }
    body
}

async fn requests(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

fn access(token: &Token) -> &str {
    token.access_token().expose_secret()
}

/// Checks, for the source's current token `AT-1` issued at the clock's start, that no renewal
/// starts one second before `renews_at` (counted from the clock's start) and that one
/// background renewal starts at it, while callers keep getting `AT-1` and then get `AT-2`.
async fn assert_renewal_starts_at(
    case: &str,
    server: &MockServer,
    clock: &ManualClock,
    source: &TokenSource,
    renews_at: Duration,
) {
    clock.advance(renews_at - Duration::from_secs(1) - clock.elapsed());
    assert_eq!(access(&source.token().await.unwrap()), "AT-1", "{case}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        requests(server).await,
        1,
        "{case}: renewed before {renews_at:?}"
    );

    clock.advance(Duration::from_secs(1));
    assert_eq!(
        access(&source.token().await.unwrap()),
        "AT-1",
        "{case}: callers keep the current token while it is renewed"
    );
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if access(&source.token().await.unwrap()) == "AT-2" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{case}: no renewal at {renews_at:?}"));
    assert_eq!(requests(server).await, 2, "{case}: exactly one renewal");
}

/// A source over a fresh endpoint answering `first`, its first token fetched; the clock starts
/// at the token's issuance.
async fn source_after(first: Value) -> (MockServer, ManualClock, TokenSource) {
    let server = endpoint(first).await;
    let clock = ManualClock::new();
    let source = TokenSource::new(client(&server, &clock), ClientCredentials::new());
    assert_eq!(access(&source.token().await.unwrap()), "AT-1");
    (server, clock, source)
}

/// The crate's own instant for a one-hour token: stale at 3570 s (the 30 s skew), renewed from
/// 300 s (the largest refresh window) before that.
const HOUR_TOKEN_RENEWS_AT: u64 = 3270;

#[tokio::test]
async fn refresh_in_starts_the_background_renewal_at_the_instant_the_server_named() {
    for (case, refresh_in, renews_at) in [
        ("a number", json!(600), 600),
        ("a numeric string", json!("600"), 600),
        ("a fraction, floored", json!(600.9), 600),
        (
            "one second before the crate's own instant",
            json!(3269),
            3269,
        ),
    ] {
        let (server, clock, source) = source_after(answer(3600, Some(refresh_in))).await;
        assert_renewal_starts_at(
            case,
            &server,
            &clock,
            &source,
            Duration::from_secs(renews_at),
        )
        .await;
    }
}

/// A hostile or broken `refresh_in` never makes the client renew sooner than five minutes (or a
/// tenth of a short token's lifetime) after issuance, nor later than its own refresh window,
/// and never panics.
#[tokio::test]
async fn a_hostile_refresh_in_is_clamped_or_ignored() {
    for (case, refresh_in, renews_at) in [
        ("one second, raised to five minutes", json!(1), 300),
        ("zero", json!(0), HOUR_TOKEN_RENEWS_AT),
        ("negative", json!(-5), HOUR_TOKEN_RENEWS_AT),
        ("a tiny fraction", json!(0.4), HOUR_TOKEN_RENEWS_AT),
        ("not a number", json!("soon"), HOUR_TOKEN_RENEWS_AT),
        ("NaN as text", json!("NaN"), HOUR_TOKEN_RENEWS_AT),
        ("infinity as text", json!("inf"), HOUR_TOKEN_RENEWS_AT),
        ("null", Value::Null, HOUR_TOKEN_RENEWS_AT),
        ("a boolean", json!(true), HOUR_TOKEN_RENEWS_AT),
        ("an object", json!({ "seconds": 600 }), HOUR_TOKEN_RENEWS_AT),
        ("huge", json!(1e300), HOUR_TOKEN_RENEWS_AT),
        ("u64::MAX", json!(u64::MAX), HOUR_TOKEN_RENEWS_AT),
        ("the whole lifetime", json!(3600), HOUR_TOKEN_RENEWS_AT),
        ("past the lifetime", json!(99_999), HOUR_TOKEN_RENEWS_AT),
        (
            "after the crate's own instant (never later)",
            json!(3500),
            HOUR_TOKEN_RENEWS_AT,
        ),
    ] {
        let (server, clock, source) = source_after(answer(3600, Some(refresh_in))).await;
        assert_renewal_starts_at(
            case,
            &server,
            &clock,
            &source,
            Duration::from_secs(renews_at),
        )
        .await;
    }
}

#[tokio::test]
async fn a_token_over_two_hours_without_refresh_in_is_renewed_at_half_life() {
    for (case, expires_in, refresh_in, renews_at) in [
        ("four hours", 4 * 3600, None, 2 * 3600),
        ("a day", 86_400, None, 43_200),
        // Exactly two hours is not over two hours: the crate's own window applies.
        ("two hours", 7200, None, 7200 - 30 - 300),
        ("a day with refresh_in", 86_400, Some(json!(3600)), 3600),
    ] {
        let (server, clock, source) = source_after(answer(expires_in, refresh_in)).await;
        assert_renewal_starts_at(
            case,
            &server,
            &clock,
            &source,
            Duration::from_secs(renews_at),
        )
        .await;
    }
}

#[tokio::test]
async fn server_directed_refresh_can_be_turned_off() {
    for (case, expires_in, refresh_in, renews_at) in [
        ("refresh_in", 3600, Some(json!(600)), HOUR_TOKEN_RENEWS_AT),
        ("half-life", 4 * 3600, None, 4 * 3600 - 330),
    ] {
        let server = endpoint(answer(expires_in, refresh_in)).await;
        let clock = ManualClock::new();
        let source = TokenSource::builder(client(&server, &clock), ClientCredentials::new())
            .server_directed_refresh(false)
            .build();
        source.token().await.unwrap();
        assert_renewal_starts_at(
            case,
            &server,
            &clock,
            &source,
            Duration::from_secs(renews_at),
        )
        .await;
    }
}

/// With background renewal off (`refresh_fraction(0.0)`), `refresh_in` starts none either:
/// the token is served until it goes stale, then callers wait for the renewal.
#[tokio::test]
async fn refresh_in_starts_no_renewal_when_background_renewal_is_off() {
    let server = endpoint(answer(3600, Some(json!(600)))).await;
    let clock = ManualClock::new();
    let source = TokenSource::builder(client(&server, &clock), ClientCredentials::new())
        .refresh_fraction(0.0)
        .build();
    source.token().await.unwrap();
    clock.advance(Duration::from_secs(3569));
    assert_eq!(access(&source.token().await.unwrap()), "AT-1");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(requests(&server).await, 1);
    clock.advance(Duration::from_secs(1));
    assert_eq!(access(&source.token().await.unwrap()), "AT-2");
}

#[test]
fn a_hand_built_token_keeps_its_checked_renewal_instant() {
    let clock = ManualClock::new();
    let hour = Duration::from_secs(3600);
    let build = |refresh_in: Duration| {
        Token::builder("abc")
            .expires_in(hour)
            .refresh_in(refresh_in)
            .build(&clock)
            .unwrap()
    };
    let at = |secs: u64| Some(clock.now() + Duration::from_secs(secs));
    assert_eq!(build(Duration::from_secs(900)).renew_at(), at(900));
    assert_eq!(build(Duration::from_secs(1)).renew_at(), at(300));
    let short = Token::builder("abc")
        .expires_in(Duration::from_secs(600))
        .refresh_in(Duration::from_secs(1))
        .build(&clock)
        .unwrap();
    assert_eq!(short.renew_at(), at(60), "a tenth of a 10-minute token");
    assert_eq!(build(Duration::ZERO).renew_at(), None);
    assert_eq!(build(hour).renew_at(), None);
    assert_eq!(build(Duration::MAX).renew_at(), None);
    assert!(
        Token::builder("abc")
            .build(&clock)
            .unwrap()
            .renew_at()
            .is_none()
    );
}

/// Another process (a second source on the same file store) reads the token back with the
/// instant its server named, in UTC: it renews then, not at its own later instant.
#[cfg(feature = "file-store")]
#[tokio::test]
async fn a_persisted_token_keeps_the_renewal_instant_the_server_named() {
    use oauth_layer::store::FileStore;
    use std::os::unix::fs::DirBuilderExt;

    let mut random = [0u8; 8];
    getrandom::fill(&mut random).unwrap();
    let name: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let dir = std::env::temp_dir().join(format!("oauth-layer-directed-{name}"));
    std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();

    let server = endpoint(answer(3600, Some(json!(600)))).await;
    let clock = ManualClock::new();
    let first = TokenSource::builder(client(&server, &clock), ClientCredentials::new())
        .store(FileStore::in_dir(&dir))
        .build();
    assert_eq!(access(&first.token().await.unwrap()), "AT-1");

    clock.advance(Duration::from_secs(100));
    let second = TokenSource::builder(client(&server, &clock), ClientCredentials::new())
        .store(FileStore::in_dir(&dir))
        .build();
    let read_back = second.token().await.unwrap();
    assert_eq!(
        access(&read_back),
        "AT-1",
        "read from the store, not fetched"
    );
    assert_eq!(requests(&server).await, 1);
    let left = read_back.renew_at().unwrap() - clock.now();
    assert!(
        (Duration::from_secs(499)..=Duration::from_secs(500)).contains(&left),
        "{left:?}"
    );
    assert_renewal_starts_at(
        "read back from the store",
        &server,
        &clock,
        &second,
        Duration::from_secs(600),
    )
    .await;
    std::fs::remove_dir_all(&dir).unwrap();
}
