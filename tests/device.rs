//! The device authorization grant (RFC 8628, SECURITY.md rule 40) against a scripted server and
//! a `ManualClock`, so every wait is instant and every poll gap exact.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oauth_layer::clock::ManualClock;
use oauth_layer::flow::device::DeviceAuthorization;
use oauth_layer::flow::{DeviceCode, Flow};
use oauth_layer::interact::BrowserFn;
use oauth_layer::interact::{DevicePrompt, RecordingDisplay};
use oauth_layer::{Error, ErrorCode, OAuthClient, TokenSource};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const DEVICE_CODE: &str = "GmRhmhcxhwAzkoEqiMEg_DnyEysNkuNhszIySk9eS";
const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A device authorization endpoint and a token endpoint that answers polls from a script.
struct Idp {
    server: MockServer,
    clock: ManualClock,
    /// `clock.elapsed()` at each poll of the token endpoint.
    polls: Arc<Mutex<Vec<Duration>>>,
}

impl Idp {
    /// A server whose device endpoint answers `device` and whose token endpoint answers
    /// `script`, one entry per poll (the last one repeats).
    async fn start(device: ResponseTemplate, script: Vec<ResponseTemplate>) -> Self {
        let server = MockServer::start().await;
        let clock = ManualClock::new();
        Mock::given(method("POST"))
            .and(path("/device"))
            .respond_with(device)
            .mount(&server)
            .await;
        let polls = Arc::new(Mutex::new(Vec::new()));
        let (seen, at) = (polls.clone(), clock.clone());
        Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(move |_: &Request| {
                let mut seen = seen.lock().unwrap();
                seen.push(at.elapsed());
                script[(seen.len() - 1).min(script.len() - 1)].clone()
            })
            .mount(&server)
            .await;
        Self {
            server,
            clock,
            polls,
        }
    }

    /// A public client (no secret: `client_id` goes in the body).
    fn client(&self) -> OAuthClient {
        OAuthClient::builder("tv-app")
            .device_authorization_url(format!("{}/device", self.server.uri()))
            .token_url(format!("{}/token", self.server.uri()))
            .clock(self.clock.clone())
            .build()
            .unwrap()
    }

    fn polls(&self) -> Vec<Duration> {
        self.polls.lock().unwrap().clone()
    }

    /// The form bodies the server received at `at`.
    async fn forms(&self, at: &str) -> Vec<HashMap<String, String>> {
        self.server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.url.path() == at)
            .map(|r| {
                url::form_urlencoded::parse(&r.body)
                    .into_owned()
                    .collect::<HashMap<_, _>>()
            })
            .collect()
    }
}

fn device(extra: Value) -> ResponseTemplate {
    let mut body = json!({
        "device_code": DEVICE_CODE,
        "user_code": "WDJB-MJHT",
        "verification_uri": "https://idp.example/device",
        "verification_uri_complete": "https://idp.example/device?user_code=WDJB-MJHT",
        "expires_in": 1800,
        "interval": 5,
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            body.as_object_mut().unwrap().remove(k);
        } else {
            body[k] = v.clone();
        }
    }
    ResponseTemplate::new(200).set_body_json(body)
}

fn oauth_error(code: &str) -> ResponseTemplate {
    ResponseTemplate::new(400).set_body_json(json!({ "error": code }))
}

fn pending() -> ResponseTemplate {
    oauth_error("authorization_pending")
}

fn token() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "access_token": "at-1",
        "token_type": "Bearer",
        "expires_in": 3600,
        "refresh_token": "rt-1",
    }))
}

/// Runs the flow as a `TokenSource` would.
async fn run(idp: &Idp, flow: DeviceCode) -> oauth_layer::Result<oauth_layer::Token> {
    flow.fetch(&idp.client()).await
}

#[tokio::test]
async fn device_flow_shows_the_code_polls_while_pending_and_returns_the_token() {
    let idp = Idp::start(device(json!({})), vec![pending(), pending(), token()]).await;
    let display = RecordingDisplay::new();
    let flow = DeviceCode::new()
        .scope("openid profile")
        .param("audience", "https://api.example")
        .display(display.clone());

    let token = run(&idp, flow).await.unwrap();

    assert_eq!(token.access_token().expose_secret(), "at-1");
    assert_eq!(token.scope(), Some("openid profile"));
    assert_eq!(idp.polls(), [secs(5), secs(10), secs(15)]);

    let device_forms = idp.forms("/device").await;
    assert_eq!(device_forms.len(), 1);
    assert_eq!(device_forms[0]["client_id"], "tv-app");
    assert_eq!(device_forms[0]["scope"], "openid profile");
    assert_eq!(device_forms[0]["audience"], "https://api.example");
    for poll in idp.forms("/token").await {
        assert_eq!(poll["grant_type"], GRANT);
        assert_eq!(poll["device_code"], DEVICE_CODE);
        assert_eq!(poll["client_id"], "tv-app");
    }

    let shown = display.shown().expect("the code was shown");
    assert_eq!(shown.user_code(), "WDJB-MJHT");
    assert_eq!(
        shown.verification_uri().as_str(),
        "https://idp.example/device"
    );
    assert_eq!(
        shown.verification_uri_complete().map(Url::as_str),
        Some("https://idp.example/device?user_code=WDJB-MJHT")
    );
    assert_eq!(shown.expires_in(), secs(1800));
    assert_eq!(shown.interval(), secs(5));

    // A live countdown: one tick per second of waiting, from the full lifetime down.
    let ticks = display.ticks();
    assert_eq!(ticks.len(), 15);
    assert_eq!(ticks[0], secs(1800));
    assert_eq!(ticks[14], secs(1786));
    assert!(ticks.windows(2).all(|w| w[0] > w[1]));
    assert_eq!(display.outcome(), Some(true));
}

#[tokio::test]
async fn slow_down_adds_five_seconds_for_good() {
    let script = vec![
        oauth_error("slow_down"),
        oauth_error("slow_down"),
        pending(),
        token(),
    ];
    let idp = Idp::start(device(json!({})), script).await;

    run(&idp, DeviceCode::new().display(RecordingDisplay::new()))
        .await
        .unwrap();

    let polls = idp.polls();
    let gaps: Vec<Duration> = std::iter::once(polls[0])
        .chain(polls.windows(2).map(|w| w[1] - w[0]))
        .collect();
    assert_eq!(gaps, [secs(5), secs(10), secs(15), secs(15)]);
}

#[tokio::test]
async fn the_interval_the_server_sends_is_honoured() {
    let idp = Idp::start(
        device(json!({ "interval": 2 })),
        vec![pending(), pending(), token()],
    )
    .await;
    run(&idp, DeviceCode::new().display(RecordingDisplay::new()))
        .await
        .unwrap();
    assert_eq!(idp.polls(), [secs(2), secs(4), secs(6)]);

    // As a numeric string too.
    let idp = Idp::start(device(json!({ "interval": "3" })), vec![pending(), token()]).await;
    run(&idp, DeviceCode::new().display(RecordingDisplay::new()))
        .await
        .unwrap();
    assert_eq!(idp.polls(), [secs(3), secs(6)]);
}

#[tokio::test]
async fn a_missing_interval_means_five_seconds() {
    let idp = Idp::start(
        device(json!({ "interval": null })),
        vec![pending(), pending(), token()],
    )
    .await;
    let display = RecordingDisplay::new();
    run(&idp, DeviceCode::new().display(display.clone()))
        .await
        .unwrap();
    assert_eq!(idp.polls(), [secs(5), secs(10), secs(15)]);
    assert_eq!(display.shown().unwrap().interval(), secs(5));
}

#[tokio::test]
async fn a_zero_interval_never_polls_in_a_tight_loop() {
    let idp = Idp::start(device(json!({ "interval": 0 })), vec![pending(), token()]).await;
    run(&idp, DeviceCode::new().display(RecordingDisplay::new()))
        .await
        .unwrap();
    assert_eq!(idp.polls(), [secs(1), secs(2)]);
}

#[tokio::test]
async fn access_denied_stops_with_authorization_denied() {
    let idp = Idp::start(
        device(json!({})),
        vec![pending(), oauth_error("access_denied")],
    )
    .await;
    let display = RecordingDisplay::new();

    let err = run(&idp, DeviceCode::new().display(display.clone()))
        .await
        .unwrap_err();

    assert!(
        matches!(&err, Error::AuthorizationDenied(e) if e.code == ErrorCode::AccessDenied),
        "{err:?}"
    );
    assert_eq!(idp.polls().len(), 2, "no poll after the refusal");
    assert_eq!(display.outcome(), Some(false));
    // Words for the person, the protocol's at the end.
    let text = err.to_string();
    assert!(
        text.starts_with("the sign-in was declined where the code was entered."),
        "{text}"
    );
    assert!(text.ends_with("(OAuth error `access_denied`)"), "{text}");
}

#[tokio::test]
async fn expired_token_stops_with_timeout() {
    let idp = Idp::start(
        device(json!({})),
        vec![pending(), oauth_error("expired_token")],
    )
    .await;
    let display = RecordingDisplay::new();

    let err = run(&idp, DeviceCode::new().display(display.clone()))
        .await
        .unwrap_err();

    assert!(matches!(&err, Error::Timeout(_)), "{err:?}");
    assert_eq!(idp.polls().len(), 2);
    assert_eq!(display.outcome(), Some(false));
    let text = err.to_string();
    assert!(text.contains("Start the sign-in again"), "{text}");
    assert!(text.ends_with("(OAuth error `expired_token`)"), "{text}");
}

#[tokio::test]
async fn reaching_expires_in_while_pending_times_out() {
    let idp = Idp::start(
        device(json!({ "expires_in": 30, "interval": 5 })),
        vec![pending()],
    )
    .await;

    let err = run(&idp, DeviceCode::new().display(RecordingDisplay::new()))
        .await
        .unwrap_err();

    assert!(matches!(&err, Error::Timeout(_)), "{err:?}");
    // Polls at 5..25 s; at 30 s the code is dead, so there is no sixth poll.
    assert_eq!(
        idp.polls(),
        [secs(5), secs(10), secs(15), secs(20), secs(25)]
    );
    assert_eq!(idp.clock.elapsed(), secs(30));
}

#[tokio::test]
async fn transient_server_errors_keep_polling() {
    let script = vec![
        ResponseTemplate::new(500).set_body_string("<html>oops</html>"),
        ResponseTemplate::new(502).set_body_json(json!({ "error": "server_error" })),
        pending(),
        token(),
    ];
    let idp = Idp::start(device(json!({})), script).await;
    run(&idp, DeviceCode::new().display(RecordingDisplay::new()))
        .await
        .unwrap();
    assert_eq!(idp.polls(), [secs(5), secs(10), secs(15), secs(20)]);
}

fn busy(retry_after: &str) -> ResponseTemplate {
    ResponseTemplate::new(503).insert_header("retry-after", retry_after)
}

#[tokio::test]
async fn a_503_with_retry_after_is_waited_out_then_polling_goes_on() {
    let script = vec![
        busy("20"),
        // The same as an OAuth error, with a date in the past: back to the interval.
        ResponseTemplate::new(503)
            .insert_header("retry-after", "Thu, 01 Jan 1970 00:00:00 GMT")
            .set_body_json(json!({ "error": "temporarily_unavailable" })),
        pending(),
        token(),
    ];
    let idp = Idp::start(device(json!({})), script).await;

    run(&idp, DeviceCode::new().display(RecordingDisplay::new()))
        .await
        .unwrap();

    // 5 s, then the 20 s asked for, then the interval again.
    assert_eq!(idp.polls(), [secs(5), secs(25), secs(30), secs(35)]);
}

#[tokio::test]
async fn retry_after_never_keeps_polling_past_the_codes_expiry() {
    let idp = Idp::start(
        device(json!({ "expires_in": 30, "interval": 5 })),
        vec![busy("20")],
    )
    .await;
    let display = RecordingDisplay::new();

    let err = run(&idp, DeviceCode::new().display(display.clone()))
        .await
        .unwrap_err();

    assert!(matches!(&err, Error::Timeout(_)), "{err:?}");
    // A poll at 45 s would send a dead code; the flow stops at 30 s instead.
    assert_eq!(idp.polls(), [secs(5), secs(25)]);
    assert_eq!(idp.clock.elapsed(), secs(30));
    // The countdown goes on while waiting.
    assert!(display.ticks().contains(&secs(4)), "{:?}", display.ticks());
}

#[tokio::test]
async fn a_huge_retry_after_is_capped_and_polling_goes_on() {
    let idp = Idp::start(device(json!({})), vec![busy("86400"), token()]).await;

    run(&idp, DeviceCode::new().display(RecordingDisplay::new()))
        .await
        .unwrap();

    assert_eq!(
        idp.polls(),
        [
            secs(5),
            secs(5) + oauth_layer::flow::device::MAX_RETRY_AFTER_WAIT
        ]
    );
}

#[tokio::test]
async fn other_token_errors_stop_polling() {
    let idp = Idp::start(device(json!({})), vec![oauth_error("invalid_client")]).await;
    let err = run(&idp, DeviceCode::new().display(RecordingDisplay::new()))
        .await
        .unwrap_err();
    assert!(
        err.server_error()
            .is_some_and(|e| e.code == ErrorCode::InvalidClient)
    );
    assert_eq!(idp.polls().len(), 1);
}

#[tokio::test]
async fn garbage_device_responses_are_typed_errors_and_nothing_is_polled() {
    let html = ResponseTemplate::new(200)
        .insert_header("content-type", "text/html")
        .set_body_string("<html><body>Sign in</body></html>");
    let cases = vec![
        html,
        ResponseTemplate::new(200).set_body_string(""),
        ResponseTemplate::new(200).set_body_json(json!(["device_code"])),
        ResponseTemplate::new(200).set_body_bytes(vec![0xff, 0xfe, b'{']),
        ResponseTemplate::new(502).set_body_string("bad gateway"),
        device(json!({ "user_code": null })),
        device(json!({ "device_code": 42 })),
        device(json!({ "verification_uri": "javascript:alert(1)" })),
        device(json!({ "verification_uri": null })),
        ResponseTemplate::new(200).set_body_json(json!({ "error": 7 })),
    ];
    for response in cases {
        let idp = Idp::start(response, vec![token()]).await;
        let display = RecordingDisplay::new();
        let err = run(&idp, DeviceCode::new().display(display.clone()))
            .await
            .unwrap_err();
        assert!(matches!(&err, Error::UnexpectedResponse(_)), "{err:?}");
        assert!(idp.polls().is_empty(), "no poll after {err}");
        assert!(display.events().is_empty(), "nothing shown after {err}");
    }
}

#[tokio::test]
async fn an_oauth_error_from_the_device_endpoint_is_a_server_error() {
    let idp = Idp::start(oauth_error("invalid_scope"), vec![token()]).await;
    let err = run(
        &idp,
        DeviceCode::new()
            .scope("admin")
            .display(RecordingDisplay::new()),
    )
    .await
    .unwrap_err();
    assert!(
        err.server_error()
            .is_some_and(|e| e.code == ErrorCode::InvalidScope),
        "{err:?}"
    );
    assert!(idp.polls().is_empty());
}

#[tokio::test]
async fn googles_verification_url_and_string_numbers_are_accepted() {
    let google = json!({
        "verification_uri": null,
        "verification_uri_complete": null,
        "verification_url": "https://www.google.com/device",
        "expires_in": "1800",
    });
    let idp = Idp::start(device(google), vec![token()]).await;
    let display = RecordingDisplay::new();
    run(&idp, DeviceCode::new().display(display.clone()))
        .await
        .unwrap();
    let shown = display.shown().unwrap();
    assert_eq!(
        shown.verification_uri().as_str(),
        "https://www.google.com/device"
    );
    assert_eq!(shown.verification_uri_complete(), None);
    assert_eq!(shown.expires_in(), secs(1800));
}

#[tokio::test]
async fn the_device_code_never_shows_in_debug_or_errors() {
    // Debug of the authorization.
    let idp = Idp::start(device(json!({ "message": "hello" })), vec![token()]).await;
    let display = RecordingDisplay::new();
    run(&idp, DeviceCode::new().display(display.clone()))
        .await
        .unwrap();
    let shown: DevicePrompt = display.shown().unwrap();
    let debug = format!("{shown:?} {:?}", display.events());
    assert!(!debug.contains(DEVICE_CODE), "{debug}");
    assert!(
        debug.contains("WDJB-MJHT"),
        "the user code is meant to be shown"
    );
    assert_eq!(shown.extra()["message"], "hello");
    // The whole authorization, which holds the code, as an application running step 1 sees it.
    let authorization: DeviceAuthorization = DeviceCode::new()
        .device_authorization(&idp.client())
        .await
        .unwrap();
    let debug = format!("{authorization:?}");
    assert!(!debug.contains(DEVICE_CODE), "{debug}");
    assert!(debug.contains("WDJB-MJHT"), "{debug}");
    assert_eq!(authorization.extra()["message"], "hello");

    // A device endpoint that echoes the code in its error.
    let echo = ResponseTemplate::new(400).set_body_json(json!({
        "error": "invalid_request",
        "error_description": format!("device_code {DEVICE_CODE} is odd"),
        "device_code": DEVICE_CODE,
    }));
    let idp = Idp::start(echo, vec![token()]).await;
    let err = run(&idp, DeviceCode::new().display(RecordingDisplay::new()))
        .await
        .unwrap_err();
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains(DEVICE_CODE), "{text}");
    }

    // A device response that is unusable but carries the code.
    let idp = Idp::start(device(json!({ "user_code": 5 })), vec![token()]).await;
    let err = run(&idp, DeviceCode::new().display(RecordingDisplay::new()))
        .await
        .unwrap_err();
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains(DEVICE_CODE), "{text}");
    }

    // A token endpoint that echoes the code while refusing, and one that answers junk with it.
    for answer in [
        ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_grant",
            "error_description": format!("unknown device code {DEVICE_CODE}"),
        })),
        ResponseTemplate::new(400).set_body_string(format!("bad grant for {DEVICE_CODE}")),
    ] {
        let idp = Idp::start(device(json!({})), vec![answer]).await;
        let err = run(&idp, DeviceCode::new().display(RecordingDisplay::new()))
            .await
            .unwrap_err();
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(!text.contains(DEVICE_CODE), "{text}");
        }
    }
}

#[tokio::test]
async fn open_browser_opens_the_complete_verification_uri() {
    let opened = Arc::new(Mutex::new(Vec::<String>::new()));
    let browser = {
        let opened = opened.clone();
        BrowserFn(move |url: &Url| -> io::Result<()> {
            opened.lock().unwrap().push(url.to_string());
            Ok(())
        })
    };
    let idp = Idp::start(device(json!({})), vec![token()]).await;
    run(
        &idp,
        DeviceCode::new()
            .display(RecordingDisplay::new())
            .browser(browser)
            .open_browser(true),
    )
    .await
    .unwrap();
    // The browser is opened on a blocking thread, so the flow never waits on it.
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while opened.lock().unwrap().is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the browser was opened");
    assert_eq!(
        *opened.lock().unwrap(),
        ["https://idp.example/device?user_code=WDJB-MJHT"]
    );
}

#[tokio::test]
async fn the_browser_stays_closed_unless_asked_and_never_opens_unsafe_urls() {
    let opened = Arc::new(Mutex::new(Vec::<String>::new()));
    let browser = || {
        let opened = opened.clone();
        BrowserFn(move |url: &Url| -> io::Result<()> {
            opened.lock().unwrap().push(url.to_string());
            Ok(())
        })
    };

    let idp = Idp::start(device(json!({})), vec![token()]).await;
    run(
        &idp,
        DeviceCode::new()
            .display(RecordingDisplay::new())
            .browser(browser()),
    )
    .await
    .unwrap();

    // Plain http to a remote host is shown but not opened; the flow goes on.
    let insecure = json!({
        "verification_uri": "http://idp.example/device",
        "verification_uri_complete": null,
    });
    let idp = Idp::start(device(insecure), vec![token()]).await;
    run(
        &idp,
        DeviceCode::new()
            .display(RecordingDisplay::new())
            .browser(browser())
            .open_browser(true),
    )
    .await
    .unwrap();

    // Opening happens on a blocking thread; give one that was wrongly started time to show.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(opened.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_token_source_runs_the_device_flow_once_then_serves_from_cache() {
    let idp = Idp::start(device(json!({})), vec![pending(), token()]).await;
    let display = RecordingDisplay::new();
    let tokens = TokenSource::new(idp.client(), DeviceCode::new().display(display.clone()));

    let first = tokens.token().await.unwrap();
    let second = tokens.token().await.unwrap();

    assert!(first.same_as(&second));
    assert_eq!(idp.forms("/device").await.len(), 1);
    assert_eq!(idp.polls().len(), 2);
    assert!(display.shown().is_some());
}

#[tokio::test]
async fn the_device_request_carries_client_authentication() {
    let idp = Idp::start(device(json!({})), vec![token()]).await;
    let client = idp
        .client()
        .to_builder()
        .secret("tv-secret")
        .build()
        .unwrap();
    DeviceCode::new()
        .display(RecordingDisplay::new())
        .fetch(&client)
        .await
        .unwrap();

    let requests = idp.server.received_requests().await.unwrap();
    for request in &requests {
        let auth = request.headers.get("authorization").unwrap();
        assert!(auth.to_str().unwrap().starts_with("Basic "));
        let body = String::from_utf8_lossy(&request.body).into_owned();
        assert!(!body.contains("tv-secret"), "{body}");
    }
}

#[tokio::test]
async fn no_device_authorization_url_is_a_config_error() {
    let client = OAuthClient::builder("tv-app")
        .token_url("https://idp.example/token")
        .build()
        .unwrap();
    let err = DeviceCode::new().fetch(&client).await.unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
}

#[test]
fn the_flow_is_interactive_and_keyed_by_its_scopes() {
    let client = OAuthClient::builder("tv-app")
        .token_url("https://idp.example/token")
        .build()
        .unwrap();
    let flow = DeviceCode::new().scope("b a");
    assert!(flow.is_interactive());
    assert_eq!(
        flow.cache_key(&client),
        DeviceCode::new().scope("b").scope("a").cache_key(&client)
    );
    assert_ne!(
        flow.cache_key(&client),
        DeviceCode::new().scope("a").cache_key(&client)
    );
}
