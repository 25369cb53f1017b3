//! The pages the loopback server shows in the person's browser at the end of a sign-in
//! (SECURITY.md rules 4 and 9): what each says, the headers that keep it inert, escaping of
//! hostile server text, the app's own name and texts; and, in a real headless Chromium driven
//! over WebDriver, how they read on a phone and on a desktop, in light and dark mode.
//! Screenshots of every page are written under `target/loopback-pages/`.
#![cfg(feature = "auth-code")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

mod browser_support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use oauth_layer::flow::auth_code::{LoopbackPages, LoopbackReceiver};
use oauth_layer::flow::{AuthCode, Flow};
use oauth_layer::interact::{BrowserFn, ScriptedPrompt};
use oauth_layer::testing::TestServer;
use oauth_layer::{AuthMethod, Error, OAuthClient, Token};

use browser_support::Chromium;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use url::Url;

/// Long enough for anything that should happen; short enough to fail a hung test quickly.
const PATIENCE: Duration = Duration::from_secs(20);

const APP: &str = "Acme CLI";
const SUCCESS_TEXT: &str = "You can close this tab and return to the terminal.";
const FAILURE_TEXT: &str = "Return to the terminal and run “acme login” to try again.";

/// A server whose authorization endpoint signs the person in by itself and redirects to the
/// loopback server, as a real one would after its login pages.
async fn server() -> TestServer {
    TestServer::builder()
        .client("acme-cli", None, AuthMethod::None)
        .start()
        .await
        .unwrap()
}

fn client(server: &TestServer) -> OAuthClient {
    server.oauth_client("acme-cli").unwrap()
}

fn acme_pages() -> LoopbackPages {
    LoopbackPages::new()
        .app_name(APP)
        .success_text(SUCCESS_TEXT)
        .failure_text(FAILURE_TEXT)
}

/// A sign-in in progress: the flow runs in a task, and the test is the browser.
struct SignIn {
    fetch: JoinHandle<oauth_layer::Result<Token>>,
    /// The authorization URL the flow opened.
    authorize: Url,
    redirect: Url,
    state: String,
}

async fn start(server: &TestServer, pages: LoopbackPages) -> SignIn {
    let (opened, mut urls) = mpsc::unbounded_channel();
    let flow = AuthCode::new()
        .receiver(LoopbackReceiver::new())
        .pages(pages)
        .browser(BrowserFn(move |url: &Url| {
            let _ = opened.send(url.clone());
            Ok(())
        }))
        .prompt(ScriptedPrompt::default());
    let client = client(server);
    let fetch = tokio::spawn(async move { flow.fetch(&client).await });
    let authorize = tokio::time::timeout(PATIENCE, urls.recv())
        .await
        .expect("the browser was never opened")
        .expect("the flow ended without opening the browser");
    let param = |name: &str| {
        authorize
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };
    let redirect = Url::parse(&param("redirect_uri")).unwrap();
    let state = param("state");
    SignIn {
        fetch,
        authorize,
        redirect,
        state,
    }
}

impl SignIn {
    /// The redirect URI with these parameters, and this sign-in's state unless `state` says
    /// otherwise.
    fn callback(&self, params: &[(&str, &str)], state: Option<&str>) -> Url {
        let mut url = self.redirect.clone();
        {
            let mut query = url.query_pairs_mut();
            for (name, value) in params {
                query.append_pair(name, value);
            }
            query.append_pair("state", state.unwrap_or(&self.state));
        }
        url
    }

    /// What `fetch` returned.
    async fn result(self) -> oauth_layer::Result<Token> {
        tokio::time::timeout(PATIENCE, self.fetch)
            .await
            .expect("the flow did not finish")
            .unwrap()
    }
}

/// Which page to bring up, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The server signs the person in and redirects with a code.
    SignedIn,
    /// The server redirects with `error=access_denied`.
    Cancelled,
    /// A redirect with this sign-in's state and a hostile `error` code.
    Refused,
    /// A redirect with this sign-in's state and neither code nor error.
    Unusable,
    /// A redirect with a state that is not this sign-in's: the sign-in goes on.
    Expired,
    /// Another path on the loopback server.
    NotFound,
}

/// An `error` code no server should send, and a description worse still.
const HOSTILE_CODE: &str = "<img src=x onerror=alert(1)>\"'&amp;";
const HOSTILE_DESCRIPTION: &str = "<script>alert('pwned')</script>Call +1-555-0100 to unlock";

impl Outcome {
    const ALL: [Outcome; 6] = [
        Outcome::SignedIn,
        Outcome::Cancelled,
        Outcome::Refused,
        Outcome::Unusable,
        Outcome::Expired,
        Outcome::NotFound,
    ];

    fn name(self) -> &'static str {
        match self {
            Outcome::SignedIn => "signed-in",
            Outcome::Cancelled => "cancelled",
            Outcome::Refused => "refused",
            Outcome::Unusable => "unusable",
            Outcome::Expired => "expired",
            Outcome::NotFound => "not-found",
        }
    }

    /// The URL a browser is sent to for this outcome (the server's authorization URL, or a
    /// redirect to the loopback server), after setting up `server`.
    fn url(self, server: &TestServer, sign_in: &SignIn) -> Url {
        server.deny_authorization(self == Outcome::Cancelled);
        match self {
            Outcome::SignedIn | Outcome::Cancelled => sign_in.authorize.clone(),
            Outcome::Refused => sign_in.callback(
                &[
                    ("error", HOSTILE_CODE),
                    ("error_description", HOSTILE_DESCRIPTION),
                    ("error_uri", "javascript:alert(2)"),
                ],
                None,
            ),
            Outcome::Unusable => sign_in.callback(&[], None),
            Outcome::Expired => sign_in.callback(&[("code", "old-code")], Some("an-old-state")),
            Outcome::NotFound => {
                let mut url = sign_in.redirect.clone();
                url.set_path("/favicon.ico");
                url
            }
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Outcome::SignedIn => StatusCode::OK,
            Outcome::NotFound => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The heading, and sentences the page must carry, for the Acme pages.
    fn words(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Outcome::SignedIn => ("You’re signed in to Acme CLI", &[SUCCESS_TEXT]),
            Outcome::Cancelled => (
                "Sign-in was cancelled",
                &[
                    "The sign-in to Acme CLI was cancelled, so Acme CLI has not been given access.",
                    FAILURE_TEXT,
                ],
            ),
            Outcome::Refused => (
                "Sign-in failed",
                &[
                    "The sign-in server did not let Acme CLI sign you in.",
                    FAILURE_TEXT,
                    "Error code from the sign-in server:",
                ],
            ),
            Outcome::Unusable => (
                "Sign-in failed",
                &[
                    "The sign-in server sent an answer Acme CLI cannot use",
                    FAILURE_TEXT,
                ],
            ),
            Outcome::Expired => (
                "This sign-in link has expired or was already used",
                &[
                    "It does not belong to the sign-in Acme CLI is waiting for.",
                    "finish in the newest tab Acme CLI opened",
                ],
            ),
            Outcome::NotFound => (
                "Nothing here",
                &["This address only receives the sign-in for Acme CLI."],
            ),
        }
    }

    /// Whether the sign-in ends with this page.
    fn ends_the_sign_in(self) -> bool {
        !matches!(self, Outcome::Expired | Outcome::NotFound)
    }
}

/// A page fetched by a plain HTTP client that follows redirects as a browser does.
struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

async fn fetch_page(url: Url) -> Page {
    let browser = reqwest::Client::builder()
        .no_proxy()
        .timeout(PATIENCE)
        .build()
        .unwrap();
    let response = browser.get(url).send().await.unwrap();
    Page {
        status: response.status(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap(),
    }
}

/// Brings up `outcome`'s page for a new sign-in with `pages`, and checks how the sign-in ended.
async fn page_for(server: &TestServer, pages: LoopbackPages, outcome: Outcome) -> Page {
    let sign_in = start(server, pages).await;
    let page = fetch_page(outcome.url(server, &sign_in)).await;
    assert_eq!(page.status, outcome.status(), "{outcome:?}: {}", page.body);
    if outcome.ends_the_sign_in() {
        let result = sign_in.result().await;
        match outcome {
            Outcome::SignedIn => assert!(result.is_ok(), "{result:?}"),
            Outcome::Cancelled | Outcome::Refused => {
                assert!(
                    matches!(result, Err(Error::AuthorizationDenied(_))),
                    "{result:?}"
                );
            }
            _ => assert!(
                matches!(result, Err(Error::MalformedCallback(_))),
                "{result:?}"
            ),
        }
    } else {
        assert!(
            !sign_in.fetch.is_finished(),
            "{outcome:?} ended the sign-in"
        );
        sign_in.fetch.abort();
    }
    page
}

/// The text of the page's one `<style>` element.
fn style_of(body: &str) -> &str {
    let start = body.find("<style>").expect("a style element") + "<style>".len();
    let end = body[start..].find("</style>").expect("its end") + start;
    assert_eq!(body.matches("<style").count(), 1, "one style element");
    &body[start..end]
}

// ---- what the pages say, over plain HTTP -------------------------------------------------------

#[tokio::test]
async fn each_outcome_has_a_page_that_says_what_happened_and_what_to_do() {
    let server = server().await;
    for outcome in Outcome::ALL {
        let page = page_for(&server, acme_pages(), outcome).await;
        let (heading, sentences) = outcome.words();
        let body = page.body.replace("&#39;", "'");
        assert!(
            body.contains(&format!("<h1>{heading}</h1>")),
            "{outcome:?}: {body}"
        );
        assert!(
            body.contains("<p class=\"app\">Acme CLI</p>"),
            "{outcome:?}: {body}"
        );
        assert!(body.contains("<title>"), "{outcome:?}");
        for sentence in sentences {
            assert!(
                body.contains(*sentence),
                "{outcome:?}: {sentence} in {body}"
            );
        }
        assert!(
            body.contains(
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            ),
            "{outcome:?}"
        );
        assert!(body.contains("prefers-color-scheme:dark"), "{outcome:?}");
    }
}

#[tokio::test]
async fn every_page_allows_only_its_own_style_and_is_never_stored() {
    let server = server().await;
    for outcome in Outcome::ALL {
        let page = page_for(&server, acme_pages(), outcome).await;
        let h = &page.headers;
        assert_eq!(h["content-type"], "text/html; charset=utf-8", "{outcome:?}");
        assert_eq!(h["cache-control"], "no-store", "{outcome:?}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{outcome:?}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{outcome:?}");
        assert_eq!(h["x-frame-options"], "DENY", "{outcome:?}");
        assert!(h.get("location").is_none() && h.get("refresh").is_none());

        let csp = h["content-security-policy"].to_str().unwrap();
        let hash = STANDARD.encode(Sha256::digest(style_of(&page.body).as_bytes()));
        let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
        assert_eq!(directives[0], "default-src 'none'", "{csp}");
        assert!(
            directives.contains(&format!("style-src 'sha256-{hash}'").as_str()),
            "the policy allows exactly the page's style: {csp}"
        );
        for directive in [
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ] {
            assert!(directives.contains(&directive), "{directive} in {csp}");
        }
        assert!(!csp.contains("unsafe"), "{csp}");

        // Inert: nothing to run, nothing to load, nowhere to go. (The hostile code the
        // refused page shows, escaped, is text; its own test checks it.)
        let body = page
            .body
            .to_ascii_lowercase()
            .replace("&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;amp;", "");
        for needle in [
            "<script",
            "src=",
            "href=",
            "url(",
            "@import",
            "http-equiv",
            "http://",
            "https://",
            "style=\"",
            "<link",
            "<img",
            "<form",
            "<iframe",
        ] {
            assert!(!body.contains(needle), "{outcome:?}: {needle} in {body}");
        }
    }
}

#[tokio::test]
async fn hostile_error_text_is_escaped_and_the_description_never_shown() {
    let server = server().await;
    let page = page_for(&server, acme_pages(), Outcome::Refused).await;
    let body = &page.body;
    assert!(
        body.contains("<code>&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;amp;</code>"),
        "{body}"
    );
    for needle in [
        "<img",
        "<script",
        "alert('pwned')",
        "pwned",
        "555-0100",
        "javascript:",
    ] {
        assert!(!body.contains(needle), "{needle} in {body}");
    }

    // A hostile app name and texts are text too.
    let pages = LoopbackPages::new()
        .app_name("<b>Acme</b> & \"co\"")
        .success_text("<a href=x>click</a>");
    let page = page_for(&server, pages, Outcome::SignedIn).await;
    assert!(
        page.body
            .contains("<h1>You’re signed in to &lt;b&gt;Acme&lt;/b&gt; &amp; &quot;co&quot;</h1>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("&lt;a href=x&gt;click&lt;/a&gt;"));
    assert!(!page.body.contains("<b>") && !page.body.contains("<a "));
}

#[tokio::test]
async fn without_a_name_the_pages_speak_of_the_application() {
    let server = server().await;
    let page = page_for(&server, LoopbackPages::new(), Outcome::SignedIn).await;
    assert!(
        page.body.contains("<h1>You’re signed in</h1>"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("The application has received your sign-in.")
    );
    assert!(
        page.body
            .contains("You can close this tab and return to the application.")
    );

    let page = page_for(
        &server,
        LoopbackPages::new().app_name("  "),
        Outcome::Cancelled,
    )
    .await;
    assert!(
        page.body.contains("<p class=\"app\">Sign-in</p>"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains(
            "You can close this tab. To try again, return to the application and sign in again."
        ),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn the_flow_s_pages_reach_the_default_receiver_too() {
    let server = server().await;
    let (opened, mut urls) = mpsc::unbounded_channel();
    let flow = AuthCode::new()
        .pages(LoopbackPages::new().app_name("Default Receiver App"))
        .browser(BrowserFn(move |url: &Url| {
            let _ = opened.send(url.clone());
            Ok(())
        }))
        .prompt(ScriptedPrompt::default());
    let client = client(&server);
    let fetch = tokio::spawn(async move { flow.fetch(&client).await });
    let authorize = urls.recv().await.unwrap();
    let page = fetch_page(authorize).await;
    assert!(
        page.body
            .contains("You’re signed in to Default Receiver App"),
        "{}",
        page.body
    );
    fetch.await.unwrap().unwrap();
}

// ---- how the pages look, in headless Chromium --------------------------------------------------

/// The sizes the pages are checked at: a phone (emulated as one: touch, device pixels) and a
/// desktop window.
const SIZES: [(&str, u32, u32, bool); 2] =
    [("phone", 375, 667, true), ("desktop", 1280, 800, false)];

#[tokio::test]
async fn pages_read_well_in_chromium_on_a_phone_and_a_desktop_in_light_and_dark() {
    let server = server().await;
    let chromium = Chromium::start(
        "loopback-pages",
        &[
            "--disable-extensions",
            "--hide-scrollbars",
            "--force-color-profile=srgb",
        ],
        serde_json::Map::from_iter([("goog:loggingPrefs".into(), json!({"browser": "ALL"}))]),
    )
    .await;
    let dir = screenshot_dir();
    for dark in [false, true] {
        chromium
            .cdp(
                "Emulation.setEmulatedMedia",
                json!({"features": [{"name": "prefers-color-scheme",
                                     "value": if dark { "dark" } else { "light" }}]}),
            )
            .await;
        for outcome in [
            Outcome::SignedIn,
            Outcome::Cancelled,
            Outcome::Refused,
            Outcome::Expired,
        ] {
            for (size, width, height, mobile) in SIZES {
                chromium
                    .cdp(
                        "Emulation.setDeviceMetricsOverride",
                        json!({"width": width, "height": height, "mobile": mobile,
                               "deviceScaleFactor": if mobile { 2 } else { 1 }}),
                    )
                    .await;
                let what = format!(
                    "{}-{size}{}",
                    outcome.name(),
                    if dark { "-dark" } else { "" }
                );
                let sign_in = start(&server, acme_pages()).await;
                chromium.goto(outcome.url(&server, &sign_in)).await;
                let seen = chromium.look().await;
                check_page(&what, outcome, &seen, width, dark);
                let png = chromium.screenshot().await;
                std::fs::write(dir.join(format!("{what}.png")), png).unwrap();
                if outcome.ends_the_sign_in() {
                    sign_in.result().await.ok();
                } else {
                    sign_in.fetch.abort();
                }
            }
        }
    }
    let violations = chromium.csp_messages().await;
    assert!(
        violations.is_empty(),
        "the policy blocked something: {violations:?}"
    );
}

/// What a script reads from the page as the browser laid it out.
const LOOK: &str = r#"
const text = sel => { const e = document.querySelector(sel); return e ? e.innerText : null; };
const shown = sel => {
  const e = document.querySelector(sel);
  if (!e) return false;
  const r = e.getBoundingClientRect(), s = getComputedStyle(e);
  return r.width > 0 && r.height > 0 && r.left >= 0 && r.right <= innerWidth
    && r.top >= 0 && r.bottom <= innerHeight && s.visibility === 'visible' && s.display !== 'none';
};
const main = document.querySelector('main');
const body = getComputedStyle(document.body);
return {
  app: text('.app'), heading: text('h1'), message: text('.message'), next: text('.next'),
  code: (document.querySelector('code') || {}).textContent || null,
  appShown: shown('.app'), headingShown: shown('h1'), nextShown: shown('.next'),
  scrollWidth: document.documentElement.scrollWidth, innerWidth: innerWidth,
  bodyBackground: body.backgroundColor, bodyColor: body.color, bodyMargin: body.marginTop,
  mainRadius: main ? getComputedStyle(main).borderTopLeftRadius : null,
  headingSize: parseFloat(getComputedStyle(document.querySelector('h1')).fontSize),
  dark: matchMedia('(prefers-color-scheme: dark)').matches,
  elements: [...document.querySelectorAll('script,img,iframe,link,form,a')].map(e => e.tagName),
};
"#;

fn check_page(what: &str, outcome: Outcome, seen: &Value, width: u32, dark: bool) {
    let (heading, sentences) = outcome.words();
    let text = |key: &str| seen[key].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        text("app").to_uppercase(),
        APP.to_uppercase(),
        "{what}: {seen}"
    );
    assert_eq!(text("heading"), heading, "{what}: {seen}");
    let all = format!("{} {}", text("message"), text("next"));
    for sentence in sentences.iter().filter(|s| !s.starts_with("Error code")) {
        assert!(all.contains(sentence), "{what}: {sentence:?} in {all:?}");
    }
    for key in ["appShown", "headingShown", "nextShown"] {
        assert_eq!(seen[key], true, "{what}: {key} off screen: {seen}");
    }
    if outcome == Outcome::Refused {
        // The hostile code is shown as the characters it is, and made no element.
        assert_eq!(
            text("code"),
            HOSTILE_CODE,
            "{what}: the code as text: {seen}"
        );
    }
    assert_eq!(seen["elements"], json!([]), "{what}: {seen}");

    // Fits: no horizontal scrolling, at the width the page was given.
    assert_eq!(seen["innerWidth"], width, "{what}: the viewport: {seen}");
    let scroll = seen["scrollWidth"].as_u64().unwrap();
    assert!(
        scroll <= u64::from(width),
        "{what}: scrolls sideways: {seen}"
    );

    // The style sheet applied (a policy that refused it would leave the browser's defaults:
    // an 8px body margin, a transparent background, square corners, a 32px heading).
    assert_eq!(seen["bodyMargin"], "0px", "{what}: {seen}");
    assert_eq!(seen["mainRadius"], "16px", "{what}: {seen}");
    assert!(
        seen["headingSize"].as_f64().unwrap() < 30.0,
        "{what}: {seen}"
    );
    assert_eq!(seen["dark"], dark, "{what}: {seen}");
    let background = text("bodyBackground");
    let expected = if dark {
        "rgb(13, 17, 23)"
    } else {
        "rgb(243, 244, 246)"
    };
    assert_eq!(background, expected, "{what}: {seen}");
}

/// `target/loopback-pages/`, emptied.
fn screenshot_dir() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .to_path_buf();
    let dir = target.join("loopback-pages");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A WebDriver command chromedriver adds: a DevTools command, or the browser's console log.
#[derive(Debug)]
struct ChromeCommand {
    path: &'static str,
    body: Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for ChromeCommand {
    fn endpoint(&self, base: &Url, session: Option<&str>) -> Result<Url, url::ParseError> {
        base.join(&format!(
            "session/{}/{}",
            session.unwrap_or_default(),
            self.path
        ))
    }

    fn method_and_body(&self, _: &Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.body.to_string()))
    }
}

impl Chromium {
    async fn cdp(&self, cmd: &str, params: Value) {
        self.webdriver
            .issue_cmd(ChromeCommand {
                path: "goog/cdp/execute",
                body: json!({"cmd": cmd, "params": params}),
            })
            .await
            .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    }

    async fn goto(&self, url: Url) {
        self.webdriver.goto(url.as_str()).await.unwrap();
    }

    async fn look(&self) -> Value {
        self.webdriver.execute(LOOK, vec![]).await.unwrap()
    }

    async fn screenshot(&self) -> Vec<u8> {
        self.webdriver.screenshot().await.unwrap()
    }

    /// The console messages that say the Content-Security-Policy refused something.
    async fn csp_messages(&self) -> Vec<String> {
        let log = self
            .webdriver
            .issue_cmd(ChromeCommand {
                path: "se/log",
                body: json!({"type": "browser"}),
            })
            .await
            .unwrap();
        log.as_array()
            .into_iter()
            .flatten()
            .filter_map(|entry| entry["message"].as_str())
            .filter(|m| m.contains("Content Security Policy") || m.contains("Refused to"))
            .map(str::to_owned)
            .collect()
    }
}
