#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The interactive flows end to end through the layer and the middleware, against the local
//! authorization server: a person signs in once, then refresh tokens keep every later request
//! silent.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use oauth_layer::flow::AuthCode;
use oauth_layer::flow::DeviceCode;
use oauth_layer::interact::RecordingDisplay;
use oauth_layer::interact::{BrowserFn, ScriptedPrompt};
use oauth_layer::testing::TestServer;
use oauth_layer::{AuthMethod, OAuthLayer, OAuthMiddleware};
use tower::{ServiceBuilder, ServiceExt};

/// A "browser" that follows the authorization URL, and every redirect after it, the way a
/// person's browser would after an automatic login.
fn following_browser() -> BrowserFn<impl Fn(&url::Url) -> std::io::Result<()> + Send + Sync> {
    BrowserFn(|url: &url::Url| {
        let url = url.clone();
        tokio::spawn(async move {
            let resp = reqwest::get(url)
                .await
                .expect("the browser reaches the server");
            assert_eq!(resp.status(), 200, "the loopback page says signed in");
        });
        Ok(())
    })
}

#[tokio::test]
async fn auth_code_signs_in_once_then_refresh_keeps_the_middleware_silent() {
    let server = TestServer::builder()
        .client("desktop-app", None, AuthMethod::None)
        .start()
        .await
        .unwrap();
    let flow = AuthCode::new()
        .scope("api:read")
        .browser(following_browser())
        .prompt(ScriptedPrompt::default())
        .timeout(Duration::from_secs(20));
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(OAuthMiddleware::with_flow(
            server.oauth_client("desktop-app").unwrap(),
            flow,
        ))
        .build();
    let url = server.resource_url("/api/hello");

    for _ in 0..3 {
        assert_eq!(http.get(&url).send().await.unwrap().status(), 200);
    }
    assert_eq!(server.authorization_requests(), 1, "one sign-in");
    assert_eq!(server.token_requests_for("authorization_code"), 1);

    // Once the access token is dead, the refresh token renews it without a person.
    server.expire_all_access_tokens();
    assert_eq!(http.get(&url).send().await.unwrap().status(), 200);
    assert_eq!(server.authorization_requests(), 1, "still one sign-in");
    assert_eq!(server.token_requests_for("refresh_token"), 1);
}

#[tokio::test]
async fn a_silent_layer_never_starts_a_sign_in() {
    let server = TestServer::builder()
        .client("desktop-app", None, AuthMethod::None)
        .start()
        .await
        .unwrap();
    let layer = OAuthLayer::with_flow(
        server.oauth_client("desktop-app").unwrap(),
        AuthCode::new().browser(following_browser()),
    )
    .interactive(false);
    let svc = ServiceBuilder::new().layer(layer).service(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<Full<Bytes>>(),
    );
    let req = http::Request::get(server.resource_url("/api/hello"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let err = svc.oneshot(req).await.unwrap_err();
    let err = err.downcast::<oauth_layer::Error>().unwrap();
    assert!(matches!(*err, oauth_layer::Error::InteractionRequired));
    assert_eq!(server.authorization_requests(), 0);
}

#[tokio::test]
async fn the_device_grant_through_the_tower_layer() {
    let server = TestServer::builder()
        .client("tv-app", None, AuthMethod::None)
        .device_interval(Some(Duration::from_secs(1)))
        .start()
        .await
        .unwrap();
    let display = RecordingDisplay::default();
    let layer = OAuthLayer::with_flow(
        server.oauth_client("tv-app").unwrap(),
        DeviceCode::new().scope("api:read").display(display.clone()),
    );
    let svc = ServiceBuilder::new().layer(layer).service(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<Full<Bytes>>(),
    );
    let get = || {
        http::Request::get(server.resource_url("/api/hello"))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };

    // The person reads the code off the display and approves it on another device.
    let request = tokio::spawn(svc.clone().oneshot(get()));
    let code = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(shown) = display.shown() {
                return shown.user_code().to_owned();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert!(server.approve_device(&code));

    let resp = tokio::time::timeout(Duration::from_secs(20), request)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(svc.oneshot(get()).await.unwrap().status(), 200);
    assert_eq!(server.device_requests(), 1, "one device authorization");
}

/// A person at a terminal with no browser on this machine: they open the shown address
/// elsewhere, sign in, and paste back the address the browser was sent to.
#[derive(Debug, Default, Clone)]
struct PersonElsewhere {
    shown: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

#[async_trait::async_trait]
impl oauth_layer::interact::Prompt for PersonElsewhere {
    fn show(&self, message: &str) {
        self.shown.lock().unwrap().push(message.to_owned());
    }

    async fn read_line(&self, message: &str, _max_len: usize) -> std::io::Result<String> {
        self.show(message);
        let text = self.shown.lock().unwrap().join("\n");
        let url = text
            .split_whitespace()
            .find(|w| w.contains("/authorize?"))
            .expect("the authorization address was shown")
            .to_owned();
        // The browser elsewhere: the login completes and the server redirects to our (closed)
        // loopback address, which the person copies from the address bar.
        let no_redirects = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let resp = no_redirects.get(url).send().await.unwrap();
        assert_eq!(resp.status(), 302);
        Ok(resp.headers()["location"].to_str().unwrap().to_owned())
    }
}

#[tokio::test]
async fn with_no_browser_the_automatic_choice_falls_back_to_pasting() {
    use oauth_layer::flow::Flow;

    let server = TestServer::builder()
        .client("cli-app", None, AuthMethod::None)
        .start()
        .await
        .unwrap();
    let person = PersonElsewhere::default();
    let flow = AuthCode::new()
        .scope("api:read")
        .browser(oauth_layer::interact::NoBrowser)
        .prompt(person.clone())
        .timeout(Duration::from_secs(20));
    let client = server.oauth_client("cli-app").unwrap();

    let token = flow.fetch(&client).await.unwrap();
    assert_eq!(token.scope(), Some("api:read"));
    assert!(token.refresh_token().is_some());
    assert_eq!(server.token_requests_for("authorization_code"), 1);
    let shown = person.shown.lock().unwrap().join("\n");
    assert!(
        shown.contains("Paste"),
        "the person was asked to paste: {shown}"
    );
}

#[tokio::test]
async fn a_browser_that_returns_only_when_it_exits_does_not_block_the_sign_in() {
    use oauth_layer::flow::Flow;

    let server = TestServer::builder()
        .client("cli-app", None, AuthMethod::None)
        .start()
        .await
        .unwrap();
    // Like a text browser run by $BROWSER: `open` returns only after the whole sign-in page
    // sequence, our loopback page included, has been loaded.
    let text_browser = BrowserFn(|url: &url::Url| {
        let url = url.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async { reqwest::get(url).await.map(|r| r.status()) })
        })
        .join()
        .unwrap()
        .map(|status| assert_eq!(status, 200))
        .map_err(std::io::Error::other)
    });
    let flow = AuthCode::new()
        .browser(text_browser)
        .prompt(ScriptedPrompt::default())
        .timeout(Duration::from_secs(20));
    let client = server.oauth_client("cli-app").unwrap();

    let token = tokio::time::timeout(Duration::from_secs(10), flow.fetch(&client))
        .await
        .expect("the sign-in does not wait for the browser to exit")
        .unwrap();
    assert!(token.refresh_token().is_some());
}
