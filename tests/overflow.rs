//! SECURITY.md rule 46: arithmetic on times from servers or configuration saturates. Every
//! extreme value a server can send (`Retry-After`, `expires_in`, device `interval`) or a caller
//! can configure (`Duration::MAX` in every duration setter) gives a working source or a typed
//! error, never a panic, and a failure that is remembered stays remembered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use oauth_layer::clock::{Clock, ManualClock};
use oauth_layer::flow::auth_code::{LoopbackReceiver, callback_channel};
use oauth_layer::flow::{AuthCode, ClientCredentials, DeviceCode, Flow, RefreshToken};
use oauth_layer::interact::RecordingDisplay;
use oauth_layer::interact::{BrowserFn, NoBrowser, ScriptedPrompt};
use oauth_layer::store::{FileStore, TokenStore};
use oauth_layer::{Action, Error, MAX_RETRY_AFTER, OAuthClient, RetryPolicy, Token, TokenSource};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const HUGE_RETRY_AFTER: &str = "18446744073709551615";
const FAR_DATE: &str = "Fri, 31 Dec 9999 23:59:59 GMT";

fn client(server: &MockServer, clock: &ManualClock) -> OAuthClient {
    OAuthClient::builder("overflow-client")
        .secret("overflow-secret")
        .token_url(format!("{}/token", server.uri()))
        .clock(clock.clone())
        .build()
        .unwrap()
}

fn issued(extra: Value) -> ResponseTemplate {
    let mut body = json!({ "access_token": "at-1", "token_type": "Bearer", "expires_in": 600 });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    ResponseTemplate::new(200).set_body_json(body)
}

async fn token_endpoint(response: ResponseTemplate, expected: u64) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(response)
        .expect(expected)
        .mount(&server)
        .await;
    server
}

fn assert_back_off(err: &Error) {
    assert!(
        !matches!(err, Error::Internal(_)),
        "the renewal crashed: {err:?}"
    );
    assert!(
        matches!(err.action(), Action::RetryLater { after: Some(_) }),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_endless_retry_after_on_429_or_503_is_a_remembered_typed_error() {
    for status in [429, 503] {
        for retry_after in [HUGE_RETRY_AFTER, FAR_DATE] {
            let answer = ResponseTemplate::new(status)
                .insert_header("retry-after", retry_after)
                .set_body_string("busy");
            let server = token_endpoint(answer, 2).await;
            let clock = ManualClock::new();
            let source = TokenSource::new(client(&server, &clock), ClientCredentials::new());

            let first = source.token().await.unwrap_err();
            assert_back_off(&first);
            assert_eq!(first.retry_after(), Some(MAX_RETRY_AFTER));
            // The failure is remembered: no second request, the same answer.
            clock.advance(Duration::from_secs(3600));
            let second = source.token().await.unwrap_err();
            assert_back_off(&second);
            assert_eq!(first.to_string(), second.to_string());
            assert_eq!(server.received_requests().await.unwrap().len(), 1);
            // For a day, not for centuries.
            clock.advance(MAX_RETRY_AFTER);
            source.token().await.unwrap_err();
            server.verify().await;
        }
    }
}

#[tokio::test]
async fn an_endless_retry_after_during_a_background_renewal_keeps_the_current_token() {
    let answer = ResponseTemplate::new(503).insert_header("retry-after", HUGE_RETRY_AFTER);
    let server = token_endpoint(answer, 1).await;
    let clock = ManualClock::new();
    let current = Token::builder("current")
        .expires_in(Duration::from_secs(600))
        .refresh_token("rt-1")
        .build(&clock)
        .unwrap();
    let source = TokenSource::builder(client(&server, &clock), RefreshToken::new("rt-1"))
        .initial_token(current.clone())
        .build();
    // Past the skew: the caller waits for the renewal, which fails; the token still works.
    clock.advance(Duration::from_secs(580));
    assert!(source.token().await.unwrap().same_as(&current));
    assert!(source.token().await.unwrap().same_as(&current));
    server.verify().await;
}

#[tokio::test]
async fn retrying_with_every_policy_duration_at_its_maximum_does_not_panic() {
    let answer = ResponseTemplate::new(503).insert_header("retry-after", HUGE_RETRY_AFTER);
    let server = token_endpoint(answer, 3).await;
    let clock = ManualClock::new();
    let mut policy = RetryPolicy::default();
    policy.initial_backoff = Duration::MAX;
    policy.max_backoff = Duration::MAX;
    policy.max_retry_after = Duration::MAX;
    let client = client(&server, &clock)
        .to_builder()
        .retry_policy(policy)
        .build()
        .unwrap();
    let err = TokenSource::new(client, ClientCredentials::new())
        .token()
        .await
        .unwrap_err();
    assert_back_off(&err);
    server.verify().await;
}

#[tokio::test]
async fn huge_expires_in_values_are_clamped() {
    for expires_in in [
        json!(u64::MAX),
        json!(i64::MAX),
        json!(1e300),
        json!("18446744073709551616"),
        json!("1e300"),
    ] {
        let server = token_endpoint(issued(json!({ "expires_in": expires_in })), 1).await;
        let clock = ManualClock::new();
        let token = TokenSource::new(client(&server, &clock), ClientCredentials::new())
            .token()
            .await
            .unwrap();
        assert!(token.lifetime() <= oauth_layer::MAX_LIFETIME);
        assert!(token.lifetime() >= Duration::from_secs(365 * 24 * 3600));
    }
}

#[tokio::test]
async fn duration_max_in_every_source_setting_gives_a_working_source() {
    let server = token_endpoint(ResponseTemplate::new(500), 1).await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(issued(json!({})))
        .with_priority(1)
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let client = client(&server, &clock)
        .to_builder()
        .timeout(Duration::MAX)
        .default_lifetime(Duration::MAX)
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let source = TokenSource::builder(client, ClientCredentials::new())
        .skew(Duration::MAX)
        .max_refresh_window(Duration::MAX)
        .failure_memory(Duration::MAX)
        .build();
    let token = source.token().await.unwrap();
    assert_eq!(token.access_token().expose_secret(), "at-1");
    // Expired: the renewal fails (500) and the failure is remembered for ever.
    clock.advance(Duration::MAX);
    clock.advance(Duration::MAX);
    let first = source.token().await.unwrap_err();
    let second = source.token().await.unwrap_err();
    assert_eq!(first.to_string(), second.to_string());
}

#[test]
fn a_manual_clock_advanced_past_its_range_saturates() {
    let clock = ManualClock::new();
    let start = clock.now();
    clock.advance(Duration::MAX);
    let far = clock.now();
    clock.advance(Duration::MAX);
    assert!(clock.now() >= far && far > start);
    let built = Token::builder("at")
        .expires_in(Duration::MAX)
        .build(&clock)
        .unwrap();
    assert!(built.expires_at() > far);
}

#[tokio::test]
async fn a_file_store_with_an_endless_lock_timeout_still_locks() {
    let dir = std::env::temp_dir().join(format!(
        "oauth-layer-overflow-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    let store = FileStore::in_dir(&dir)
        .lock_timeout(Duration::MAX)
        .prune_after(Duration::MAX);
    let clock = ManualClock::new();
    let client = OAuthClient::builder("c").clock(clock).build().unwrap();
    let key = ClientCredentials::new().cache_key(&client);
    let lock = store.lock(&key).await.unwrap();
    assert!(lock.is_some());
    drop(lock);
    let _ = std::fs::remove_dir_all(&dir);
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[tokio::test]
async fn an_endless_sign_in_timeout_does_not_panic() {
    let server = token_endpoint(issued(json!({})), 0).await;
    let (receiver, sender) = callback_channel("https://app.example/oauth/callback");
    drop(sender);
    let flow = AuthCode::new()
        .receiver(receiver)
        .browser(NoBrowser)
        .prompt(ScriptedPrompt::default())
        .timeout(Duration::MAX);
    let client = OAuthClient::builder("app")
        .authorization_url("https://idp.example/authorize")
        .token_url(format!("{}/token", server.uri()))
        .build()
        .unwrap();
    let err = flow.fetch(&client).await.unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
}

#[tokio::test]
async fn an_endless_loopback_client_timeout_still_serves_the_callback() {
    let server = token_endpoint(issued(json!({})), 1).await;
    let flow = AuthCode::new()
        .receiver(LoopbackReceiver::new().client_timeout(Duration::MAX))
        .timeout(Duration::MAX)
        .prompt(ScriptedPrompt::default())
        .browser(BrowserFn(|url: &Url| {
            let param = |name: &str| {
                url.query_pairs()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.into_owned())
                    .unwrap()
            };
            let mut callback = Url::parse(&param("redirect_uri")).unwrap();
            callback
                .query_pairs_mut()
                .append_pair("code", "the-code")
                .append_pair("state", &param("state"));
            tokio::spawn(async move {
                let _ = reqwest::get(callback).await;
            });
            Ok(())
        }));
    let client = OAuthClient::builder("app")
        .authorization_url("https://idp.example/authorize")
        .token_url(format!("{}/token", server.uri()))
        .build()
        .unwrap();
    let token = tokio::time::timeout(Duration::from_secs(10), flow.fetch(&client))
        .await
        .expect("the sign-in hung")
        .unwrap();
    assert_eq!(token.access_token().expose_secret(), "at-1");
}

#[tokio::test]
async fn huge_device_interval_and_lifetime_are_clamped() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/device"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "device_code": "dc-1",
            "user_code": "WDJB-MJHT",
            "verification_uri": "https://idp.example/device",
            "expires_in": 1e300,
            "interval": u64::MAX,
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(503)
                .insert_header("retry-after", HUGE_RETRY_AFTER)
                .set_body_json(json!({ "error": "temporarily_unavailable" })),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(issued(json!({})))
        .mount(&server)
        .await;
    let clock = ManualClock::new();
    let client = OAuthClient::builder("tv")
        .device_authorization_url(format!("{}/device", server.uri()))
        .token_url(format!("{}/token", server.uri()))
        .clock(clock.clone())
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let display = RecordingDisplay::new();
    let flow = DeviceCode::new().display(display.clone());
    // The interval is clamped to the longest lifetime, so the first poll is the last moment
    // before the code expires: the flow times out or gets its token, and never panics.
    match flow.fetch(&client).await {
        Ok(token) => assert_eq!(token.access_token().expose_secret(), "at-1"),
        Err(err) => assert!(matches!(err, Error::Timeout(_)), "{err:?}"),
    }
    let shown = display.shown().unwrap();
    assert!(shown.expires_in() <= oauth_layer::flow::device::MAX_EXPIRES_IN);
    assert!(shown.interval() <= oauth_layer::flow::device::MAX_EXPIRES_IN);
}

#[tokio::test]
async fn the_test_server_issues_tokens_with_an_endless_lifetime() {
    let server = oauth_layer::testing::TestServer::builder()
        .client("app", Some("s"), oauth_layer::AuthMethod::ClientSecretBasic)
        .access_token_lifetime(Duration::MAX)
        .device_code_lifetime(Duration::MAX)
        .start()
        .await
        .unwrap();
    let client = OAuthClient::builder("app")
        .secret("s")
        .token_url(server.token_url())
        .build()
        .unwrap();
    let token = TokenSource::new(client, ClientCredentials::new())
        .token()
        .await
        .unwrap();
    assert!(token.lifetime() <= oauth_layer::MAX_LIFETIME);
}
