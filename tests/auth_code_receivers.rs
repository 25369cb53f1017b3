//! The ways the authorization code comes back, end to end through `AuthCode` as a `Flow`: a
//! pasted address, a hosted platform's code source, and a web app's own callback handler.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use oauth_layer::clock::ManualClock;
use oauth_layer::flow::auth_code::{
    AuthorizationRequest, Callback, CallbackSender, CodeReceiver, HostedReceiver, PasteReceiver,
    PreparedReceiver, ReceiveContext, ReceivedCode, callback_channel,
};
use oauth_layer::flow::{AuthCode, Flow};
use oauth_layer::interact::{BrowserFn, NoBrowser, Prompt, ScriptedPrompt};
use oauth_layer::{Error, ErrorCode, OAuthClient, Token};
use secrecy::ExposeSecret;
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

// ---- a token endpoint --------------------------------------------------------------------------

/// A wiremock server with a token endpoint that answers every request with `at-1`.
async fn idp() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "at-1",
            "token_type": "Bearer",
            "expires_in": 3600,
        })))
        .mount(&server)
        .await;
    server
}

fn client(server: &MockServer) -> OAuthClient {
    OAuthClient::builder("my-app")
        .authorization_url(format!("{}/authorize", server.uri()))
        .token_url(format!("{}/token", server.uri()))
        .build()
        .unwrap()
}

async fn requests_to(server: &MockServer, to: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == to)
        .collect()
}

/// The form bodies of the token requests the server received.
async fn token_requests(server: &MockServer) -> Vec<HashMap<String, String>> {
    requests_to(server, "/token")
        .await
        .iter()
        .map(|r| url::form_urlencoded::parse(&r.body).into_owned().collect())
        .collect()
}

fn assert_token(token: &Token) {
    assert_eq!(token.access_token().expose_secret(), "at-1");
}

fn query_param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The authorization URL in a message: the word that parses as a URL with a `state`.
fn authorization_url_in(message: &str) -> Option<Url> {
    message
        .split_whitespace()
        .filter_map(|w| Url::parse(w).ok())
        .find(|u| query_param(u, "state").is_some())
}

// ---- a person at a terminal --------------------------------------------------------------------

type Answer = dyn Fn(&Url, usize) -> String + Send + Sync;

/// A person who reads the authorization URL from what is shown, "signs in", and pastes an
/// answer built from it: `answer(url, attempt)`, attempts counting from 0. It ignores the
/// prompt's length cap, like a careless `Prompt` implementation would.
#[derive(Clone)]
struct Person {
    answer: Arc<Answer>,
    url: Arc<Mutex<Option<Url>>>,
    shown: Arc<Mutex<Vec<String>>>,
    asked: Arc<AtomicUsize>,
}

impl Person {
    fn new(answer: impl Fn(&Url, usize) -> String + Send + Sync + 'static) -> Self {
        Self {
            answer: Arc::new(answer),
            url: Arc::default(),
            shown: Arc::default(),
            asked: Arc::default(),
        }
    }

    /// Pastes the redirect URI with this query.
    fn pasting(query: impl Fn(&str) -> String + Send + Sync + 'static) -> Self {
        Self::new(move |url, _| {
            let redirect = query_param(url, "redirect_uri").unwrap();
            let state = query_param(url, "state").unwrap();
            format!("{redirect}?{}", query(&state))
        })
    }

    fn asked(&self) -> usize {
        self.asked.load(Ordering::SeqCst)
    }

    fn shown(&self) -> String {
        self.shown.lock().unwrap().join("\n")
    }

    fn url(&self) -> Url {
        self.url.lock().unwrap().clone().expect("no URL was shown")
    }
}

impl fmt::Debug for Person {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Person")
    }
}

#[async_trait]
impl Prompt for Person {
    fn show(&self, message: &str) {
        self.shown.lock().unwrap().push(message.to_owned());
        if let Some(url) = authorization_url_in(message) {
            *self.url.lock().unwrap() = Some(url);
        }
    }

    async fn read_line(&self, message: &str, _max_len: usize) -> io::Result<String> {
        self.shown.lock().unwrap().push(message.to_owned());
        let attempt = self.asked.fetch_add(1, Ordering::SeqCst);
        let url = self.url.lock().unwrap().clone();
        let url = url.ok_or_else(|| io::Error::other("asked before the URL was shown"))?;
        Ok((self.answer)(&url, attempt))
    }
}

/// A prompt nobody answers.
#[derive(Debug)]
struct Nobody;

#[async_trait]
impl Prompt for Nobody {
    fn show(&self, _message: &str) {}

    async fn read_line(&self, _message: &str, _max_len: usize) -> io::Result<String> {
        std::future::pending().await
    }
}

// ---- pasting -----------------------------------------------------------------------------------

#[tokio::test]
async fn paste_mode_signs_in_with_the_pasted_address() {
    let server = idp().await;
    let person = Person::pasting(|state| format!("code=pasted-code-123&state={state}"));
    let flow = AuthCode::new()
        .paste()
        .browser(NoBrowser)
        .prompt(person.clone());

    let token = flow.fetch(&client(&server)).await.unwrap();
    assert_token(&token);
    assert_eq!(person.asked(), 1);

    let url = person.url();
    assert_eq!(
        query_param(&url, "redirect_uri").as_deref(),
        Some(PasteReceiver::DEFAULT_REDIRECT_URI)
    );
    let sent = token_requests(&server).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["code"], "pasted-code-123");
    assert_eq!(sent[0]["redirect_uri"], PasteReceiver::DEFAULT_REDIRECT_URI);
    let shown = person.shown();
    assert!(shown.contains("address bar"), "instructions: {shown}");
    assert!(
        !shown.contains("pasted-code-123"),
        "the code is never echoed"
    );
}

#[tokio::test]
async fn paste_mode_uses_the_configured_redirect_uri() {
    let server = idp().await;
    let person = Person::pasting(|state| format!("code=c&state={state}"));
    let flow = AuthCode::new()
        .paste()
        .redirect_uri("https://app.example/oauth/done")
        .browser(NoBrowser)
        .prompt(person.clone());

    flow.fetch(&client(&server)).await.unwrap();
    assert_eq!(
        query_param(&person.url(), "redirect_uri").as_deref(),
        Some("https://app.example/oauth/done")
    );
    assert_eq!(
        token_requests(&server).await[0]["redirect_uri"],
        "https://app.example/oauth/done"
    );
}

#[tokio::test]
async fn a_pasted_foreign_state_ends_the_sign_in_without_a_token_request() {
    let server = idp().await;
    let person = Person::pasting(|_| "code=evil-code&state=someone-elses-state".into());
    let flow = AuthCode::new()
        .paste()
        .browser(NoBrowser)
        .prompt(person.clone());

    let err = flow.fetch(&client(&server)).await.unwrap_err();
    assert!(matches!(err, Error::StateMismatch), "{err:?}");
    assert_eq!(person.asked(), 1, "a foreign state is not asked for again");
    assert!(token_requests(&server).await.is_empty());
}

#[tokio::test]
async fn a_pasted_error_with_our_state_is_authorization_denied() {
    let server = idp().await;
    let person = Person::pasting(|state| {
        format!("error=access_denied&error_description=Nope%0D%0A&state={state}")
    });
    let flow = AuthCode::new().paste().browser(NoBrowser).prompt(person);

    let err = flow.fetch(&client(&server)).await.unwrap_err();
    let Error::AuthorizationDenied(denied) = &err else {
        panic!("{err:?}");
    };
    assert_eq!(denied.code, ErrorCode::AccessDenied);
    assert!(token_requests(&server).await.is_empty());
}

#[tokio::test]
async fn a_one_megabyte_paste_is_refused_without_a_panic() {
    let server = idp().await;
    let huge = format!(
        "http://127.0.0.1:1410/callback?code={}",
        "A".repeat(1 << 20)
    );

    // A prompt that honours the cap (the scripted one reads like the terminal does)...
    let scripted = ScriptedPrompt::new([huge.clone()]);
    let flow = AuthCode::new()
        .paste()
        .browser(NoBrowser)
        .prompt(scripted.clone());
    let err = flow.fetch(&client(&server)).await.unwrap_err();
    assert!(matches!(err, Error::MalformedCallback(_)), "{err:?}");
    assert!(
        err.to_string().len() < 500,
        "the paste is not echoed: {err}"
    );

    // ...and one that does not: the receiver caps it itself.
    let careless = Person::new(move |_, _| huge.clone());
    let flow = AuthCode::new()
        .paste()
        .browser(NoBrowser)
        .prompt(careless.clone());
    let err = flow.fetch(&client(&server)).await.unwrap_err();
    assert!(matches!(err, Error::MalformedCallback(_)), "{err:?}");
    assert!(
        err.to_string().len() < 500,
        "the paste is not echoed: {err}"
    );
    assert_eq!(
        careless.asked(),
        1,
        "an over-long paste is not asked for again"
    );
    assert!(!careless.shown().contains("AAAA"));

    assert!(token_requests(&server).await.is_empty());
}

#[tokio::test]
async fn a_bare_code_is_refused_by_default() {
    let server = idp().await;
    let person = Person::new(|_, _| "4/0AbareCode-123".into());
    let flow = AuthCode::new()
        .paste()
        .browser(NoBrowser)
        .prompt(person.clone());

    let err = flow.fetch(&client(&server)).await.unwrap_err();
    let Error::MalformedCallback(why) = &err else {
        panic!("{err:?}");
    };
    assert!(why.contains("whole address"), "{why}");
    assert!(
        !why.contains("0AbareCode"),
        "the code is never echoed: {why}"
    );
    assert!(person.asked() > 1, "the person is told, and asked again");
    assert!(person.shown().contains("whole address"));
    assert!(token_requests(&server).await.is_empty());
}

#[tokio::test]
async fn a_bare_code_is_accepted_when_allowed() {
    let server = idp().await;
    let person = Person::new(|_, _| "  4/0AbareCode-123 ".into());
    let flow = AuthCode::new()
        .receiver(PasteReceiver::new().accept_bare_code(true))
        .browser(NoBrowser)
        .prompt(person);

    let token = flow.fetch(&client(&server)).await.unwrap();
    assert_token(&token);
    let sent = token_requests(&server).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["code"], "4/0AbareCode-123");
}

#[tokio::test]
async fn bare_codes_without_pkce_are_refused_before_the_browser_opens() {
    let server = idp().await;
    let person = Person::new(|_, _| "4/0AbareCode-123".into());
    let opened = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&opened);
    let flow = AuthCode::new()
        .pkce(false)
        .receiver(PasteReceiver::new().accept_bare_code(true))
        .browser(BrowserFn(move |_: &Url| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }))
        .prompt(person.clone());

    let err = flow.fetch(&client(&server)).await.unwrap_err();
    let Error::Config(why) = &err else {
        panic!("{err:?}");
    };
    assert!(why.contains("PKCE"), "{why}");
    assert_eq!(opened.load(Ordering::SeqCst), 0, "the browser opened");
    assert_eq!(person.asked(), 0, "the person was asked to paste");
    assert!(person.shown().is_empty(), "{}", person.shown());
    assert!(token_requests(&server).await.is_empty());

    // Either setting alone still signs in: PKCE off with whole addresses only...
    let person = Person::pasting(|state| format!("code=c-1&state={state}"));
    let flow = AuthCode::new()
        .pkce(false)
        .receiver(PasteReceiver::new())
        .browser(NoBrowser)
        .prompt(person);
    assert_token(&flow.fetch(&client(&server)).await.unwrap());
    let sent = token_requests(&server).await;
    assert!(!sent[0].contains_key("code_verifier"));
}

/// A receiver that wraps the paste receiver and does not pass on `requires_pkce`: the paste
/// receiver still refuses a bare code when the request has no PKCE verifier.
#[derive(Debug)]
struct Wrapped(PasteReceiver);

struct WrappedPrepared(Box<dyn PreparedReceiver>);

#[async_trait]
impl CodeReceiver for Wrapped {
    async fn prepare(
        &self,
        configured: Option<&str>,
    ) -> oauth_layer::Result<Box<dyn PreparedReceiver>> {
        Ok(Box::new(WrappedPrepared(self.0.prepare(configured).await?)))
    }
}

#[async_trait]
impl PreparedReceiver for WrappedPrepared {
    fn redirect_uri(&self) -> &str {
        self.0.redirect_uri()
    }

    fn shows_url(&self) -> bool {
        true
    }

    async fn receive(
        self: Box<Self>,
        request: &AuthorizationRequest,
        context: &ReceiveContext,
    ) -> oauth_layer::Result<ReceivedCode> {
        self.0.receive(request, context).await
    }
}

#[tokio::test]
async fn a_bare_code_for_a_request_without_pkce_is_refused_even_through_a_wrapper() {
    let server = idp().await;
    let person = Person::new(|_, _| "4/0AbareCode-123".into());
    let flow = AuthCode::new()
        .pkce(false)
        .receiver(Wrapped(PasteReceiver::new().accept_bare_code(true)))
        .browser(NoBrowser)
        .prompt(person.clone());

    let err = flow.fetch(&client(&server)).await.unwrap_err();
    let Error::Config(why) = &err else {
        panic!("{err:?}");
    };
    assert!(why.contains("PKCE"), "{why}");
    assert!(!why.contains("0AbareCode"), "{why}");
    assert!(token_requests(&server).await.is_empty());
}

#[tokio::test]
async fn accepting_bare_codes_still_checks_pasted_addresses() {
    let server = idp().await;
    let person = Person::pasting(|_| "code=evil&state=forged".into());
    let flow = AuthCode::new()
        .receiver(PasteReceiver::new().accept_bare_code(true))
        .browser(NoBrowser)
        .prompt(person);

    let err = flow.fetch(&client(&server)).await.unwrap_err();
    assert!(matches!(err, Error::StateMismatch), "{err:?}");
    assert!(token_requests(&server).await.is_empty());
}

#[tokio::test]
async fn garbage_is_asked_for_again_and_then_the_address_is_accepted() {
    let server = idp().await;
    let person = Person::new(|url, attempt| match attempt {
        0 => "".into(),
        1 => "no idea what to paste".into(),
        _ => format!(
            "{}?code=third-time&state={}",
            query_param(url, "redirect_uri").unwrap(),
            query_param(url, "state").unwrap()
        ),
    });
    let flow = AuthCode::new()
        .paste()
        .browser(NoBrowser)
        .prompt(person.clone());

    assert_token(&flow.fetch(&client(&server)).await.unwrap());
    assert_eq!(person.asked(), 3);
    assert_eq!(token_requests(&server).await[0]["code"], "third-time");
}

#[tokio::test]
async fn an_address_without_an_answer_is_asked_for_again_then_refused() {
    let server = idp().await;
    let person = Person::new(|url, _| query_param(url, "redirect_uri").unwrap());
    let flow = AuthCode::new()
        .paste()
        .browser(NoBrowser)
        .prompt(person.clone());

    let err = flow.fetch(&client(&server)).await.unwrap_err();
    assert!(matches!(err, Error::MalformedCallback(_)), "{err:?}");
    assert_eq!(person.asked(), 3);
    assert!(token_requests(&server).await.is_empty());
}

#[tokio::test]
async fn nobody_pasting_is_a_timeout() {
    let server = idp().await;
    let flow = AuthCode::new()
        .paste()
        .browser(NoBrowser)
        .prompt(Nobody)
        .timeout(Duration::from_millis(100));

    let err = flow.fetch(&client(&server)).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    assert!(token_requests(&server).await.is_empty());
}

// ---- hosted platforms --------------------------------------------------------------------------

/// The code source's answers, in order: each response is given `Some(n)` times, or for good.
async fn code_source(server: &MockServer, answers: Vec<(ResponseTemplate, Option<u64>)>) {
    for (priority, (response, times)) in (1u8..).zip(answers) {
        let mock = Mock::given(method("GET"))
            .and(path("/code"))
            .respond_with(response)
            .with_priority(priority);
        match times {
            Some(n) => mock.up_to_n_times(n).mount(server).await,
            None => mock.mount(server).await,
        }
    }
}

fn not_yet() -> ResponseTemplate {
    ResponseTemplate::new(404).set_body_string("not yet")
}

fn code_json(body: serde_json::Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

struct Hosted {
    server: MockServer,
    clock: ManualClock,
    person: ScriptedPrompt,
}

impl Hosted {
    async fn start() -> Self {
        Self {
            server: idp().await,
            clock: ManualClock::new(),
            person: ScriptedPrompt::new(Vec::<String>::new()),
        }
    }

    fn receiver(&self) -> HostedReceiver {
        HostedReceiver::new(
            format!("{}/redirect", self.server.uri()),
            format!("{}/code?user=ann", self.server.uri()),
        )
        .unwrap()
    }

    async fn sign_in(
        &self,
        receiver: HostedReceiver,
        timeout: Duration,
    ) -> oauth_layer::Result<Token> {
        let flow = AuthCode::new()
            .receiver(receiver)
            .browser(NoBrowser)
            .prompt(self.person.clone())
            .timeout(timeout);
        flow.fetch(
            &client(&self.server)
                .to_builder()
                .clock(self.clock.clone())
                .build()
                .unwrap(),
        )
        .await
    }

    /// The state of the authorization URL that was shown.
    fn state(&self) -> String {
        let url = self
            .person
            .shown()
            .iter()
            .find_map(|m| authorization_url_in(m))
            .expect("the authorization URL was shown");
        query_param(&url, "state").unwrap()
    }

    async fn polls(&self) -> Vec<Request> {
        requests_to(&self.server, "/code").await
    }
}

#[tokio::test]
async fn hosted_polling_waits_through_404s_for_the_code() {
    let hosted = Hosted::start().await;
    code_source(
        &hosted.server,
        vec![
            (not_yet(), Some(2)),
            (code_json(serde_json::json!({"code": "abc"})), None),
        ],
    )
    .await;

    let token = hosted
        .sign_in(hosted.receiver(), Duration::from_secs(300))
        .await
        .unwrap();
    assert_token(&token);

    let state = hosted.state();
    let polls = hosted.polls().await;
    assert_eq!(polls.len(), 3);
    for poll in &polls {
        assert_eq!(
            query_param(&poll.url, "state").as_deref(),
            Some(state.as_str())
        );
        assert_eq!(query_param(&poll.url, "user").as_deref(), Some("ann"));
        assert_eq!(
            poll.headers.get("accept").unwrap().to_str().unwrap(),
            "application/json"
        );
    }
    assert_eq!(
        hosted.clock.elapsed(),
        Duration::from_secs(4),
        "two 2 s waits"
    );

    let sent = token_requests(&hosted.server).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["code"], "abc");
    assert_eq!(
        sent[0]["redirect_uri"],
        format!("{}/redirect", hosted.server.uri())
    );
}

#[tokio::test]
async fn hosted_polling_honours_retry_after() {
    let hosted = Hosted::start().await;
    code_source(
        &hosted.server,
        vec![
            (
                ResponseTemplate::new(429).insert_header("Retry-After", "7"),
                Some(1),
            ),
            (code_json(serde_json::json!({"code": "abc"})), None),
        ],
    )
    .await;

    hosted
        .sign_in(hosted.receiver(), Duration::from_secs(300))
        .await
        .unwrap();
    assert_eq!(hosted.polls().await.len(), 2);
    assert!(hosted.clock.elapsed() >= Duration::from_secs(7));
}

#[tokio::test]
async fn hosted_polling_gives_up_at_the_timeout() {
    let hosted = Hosted::start().await;
    code_source(&hosted.server, vec![(not_yet(), None)]).await;

    let receiver = hosted.receiver().poll_interval(Duration::from_secs(2));
    let err = hosted
        .sign_in(receiver, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    let polls = hosted.polls().await.len();
    assert!((5..=6).contains(&polls), "{polls} polls in 10 s at 2 s");
    assert!(hosted.clock.elapsed() <= Duration::from_secs(10));
    assert!(token_requests(&hosted.server).await.is_empty());
}

#[tokio::test]
async fn a_retry_after_past_the_timeout_ends_the_wait_at_once() {
    let hosted = Hosted::start().await;
    code_source(
        &hosted.server,
        vec![(
            ResponseTemplate::new(503).insert_header("Retry-After", "3600"),
            None,
        )],
    )
    .await;

    let err = hosted
        .sign_in(hosted.receiver(), Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    assert_eq!(hosted.polls().await.len(), 1);
}

#[tokio::test]
async fn a_zero_retry_after_does_not_spin() {
    let hosted = Hosted::start().await;
    code_source(
        &hosted.server,
        vec![(not_yet().insert_header("Retry-After", "0"), None)],
    )
    .await;

    let receiver = hosted.receiver().poll_interval(Duration::ZERO);
    let err = hosted
        .sign_in(receiver, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    let polls = hosted.polls().await.len();
    assert!(
        (10..=11).contains(&polls),
        "{polls} polls at the 100 ms floor"
    );
}

#[tokio::test]
async fn a_code_source_answering_a_foreign_state_is_a_state_mismatch() {
    let hosted = Hosted::start().await;
    code_source(
        &hosted.server,
        vec![(
            code_json(serde_json::json!({"code": "abc", "state": "someone-else"})),
            None,
        )],
    )
    .await;

    let err = hosted
        .sign_in(hosted.receiver(), Duration::from_secs(300))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::StateMismatch), "{err:?}");
    assert!(token_requests(&hosted.server).await.is_empty());
}

#[tokio::test]
async fn a_code_source_answering_our_state_and_iss_is_checked_like_a_callback() {
    let hosted = Hosted::start().await;
    // The state is only known once the poll comes in: echo it back.
    Mock::given(method("GET"))
        .and(path("/code"))
        .respond_with(|req: &Request| {
            let state = query_param(&req.url, "state").unwrap();
            code_json(serde_json::json!({
                "code": "abc", "state": state, "iss": "https://idp.example", "extra": 1,
            }))
        })
        .mount(&hosted.server)
        .await;

    let flow = AuthCode::new()
        .receiver(hosted.receiver())
        .browser(NoBrowser)
        .prompt(hosted.person.clone());
    let issuer_client = client(&hosted.server)
        .to_builder()
        .clock(hosted.clock.clone())
        .issuer("https://idp.example")
        .build()
        .unwrap();
    assert_token(&flow.fetch(&issuer_client).await.unwrap());

    let wrong_issuer = client(&hosted.server)
        .to_builder()
        .issuer("https://other.example")
        .build()
        .unwrap();
    let err = flow.fetch(&wrong_issuer).await.unwrap_err();
    assert!(matches!(err, Error::MalformedCallback(_)), "{err:?}");
    assert_eq!(token_requests(&hosted.server).await.len(), 1);
}

#[tokio::test]
async fn a_code_source_error_is_authorization_denied() {
    let hosted = Hosted::start().await;
    code_source(
        &hosted.server,
        vec![(
            code_json(serde_json::json!({
                "error": "access_denied", "error_description": "The user\nsaid no",
            })),
            None,
        )],
    )
    .await;

    let err = hosted
        .sign_in(hosted.receiver(), Duration::from_secs(300))
        .await
        .unwrap_err();
    let Error::AuthorizationDenied(denied) = &err else {
        panic!("{err:?}");
    };
    assert_eq!(denied.code, ErrorCode::AccessDenied);
    assert_eq!(denied.description.as_deref(), Some("The user said no"));
}

#[tokio::test]
async fn unexpected_code_source_answers_are_typed_errors_without_the_code() {
    let cases = [
        ResponseTemplate::new(500).set_body_string("boom"),
        ResponseTemplate::new(200).set_body_string("<html>code=secret-code-1</html>"),
        code_json(serde_json::json!(["secret-code-1"])),
        code_json(serde_json::json!({"code": 12345678})),
        ResponseTemplate::new(401).set_body_json(serde_json::json!({"code": "secret-code-1"})),
    ];
    for response in cases {
        let hosted = Hosted::start().await;
        code_source(&hosted.server, vec![(response, None)]).await;
        let err = hosted
            .sign_in(hosted.receiver(), Duration::from_secs(300))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::UnexpectedResponse(_)), "{err:?}");
        assert!(!err.to_string().contains("secret-code-1"), "{err}");
        assert_eq!(hosted.polls().await.len(), 1, "not retried: {err}");
        assert!(token_requests(&hosted.server).await.is_empty());
    }
}

#[tokio::test]
async fn the_hosted_redirect_url_replaces_a_configured_one() {
    let hosted = Hosted::start().await;
    code_source(
        &hosted.server,
        vec![(code_json(serde_json::json!({"code": "abc"})), None)],
    )
    .await;
    let flow = AuthCode::new()
        .receiver(hosted.receiver())
        .redirect_uri("http://127.0.0.1:1410/callback")
        .browser(NoBrowser)
        .prompt(hosted.person.clone());
    flow.fetch(
        &client(&hosted.server)
            .to_builder()
            .clock(hosted.clock.clone())
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        token_requests(&hosted.server).await[0]["redirect_uri"],
        format!("{}/redirect", hosted.server.uri())
    );
}

#[test]
fn hosted_urls_must_be_https_or_loopback() {
    let insecure = HostedReceiver::new("https://hub.example/r", "http://hub.example/code");
    assert!(matches!(insecure, Err(Error::Config(_))), "{insecure:?}");
    let insecure = HostedReceiver::new("http://hub.example/r", "https://hub.example/code");
    assert!(matches!(insecure, Err(Error::Config(_))), "{insecure:?}");
    assert!(HostedReceiver::new("https://hub.example/r", "https://hub.example/code").is_ok());
    assert!(HostedReceiver::new("http://[::1]:8888/r", "http://localhost:8888/code").is_ok());
}

// The environment is process-wide and setting it is `unsafe` (and racy) in a multi-threaded
// test binary, so these tests run the child test below in a fresh process of this very binary,
// with the variables set only there.

const REDIRECT_VAR: &str = "OAUTH_LAYER_REDIRECT_URL";
const SOURCE_VAR: &str = "OAUTH_LAYER_CODE_SOURCE_URL";
const IDP_VAR: &str = "AUTH_CODE_RECEIVERS_TEST_IDP";
const EXPECT_VAR: &str = "AUTH_CODE_RECEIVERS_TEST_EXPECT";

async fn run_env_child(vars: &[(&str, Option<String>)]) {
    let exe = std::env::current_exe().unwrap();
    let mut child = tokio::process::Command::new(exe);
    child.args([
        "hosted_env_child",
        "--exact",
        "--ignored",
        "--test-threads=1",
    ]);
    for (name, value) in vars {
        match value {
            Some(v) => child.env(name, v),
            None => child.env_remove(name),
        };
    }
    let out = child.output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn hosted_polling_is_chosen_from_the_environment() {
    let server = idp().await;
    code_source(
        &server,
        vec![(code_json(serde_json::json!({"code": "env-code"})), None)],
    )
    .await;
    let uri = server.uri();

    run_env_child(&[
        (REDIRECT_VAR, Some(format!("{uri}/redirect"))),
        (SOURCE_VAR, Some(format!("{uri}/code"))),
        (IDP_VAR, Some(uri.clone())),
        (EXPECT_VAR, Some("hosted".into())),
    ])
    .await;

    assert_eq!(requests_to(&server, "/code").await.len(), 1);
    let sent = token_requests(&server).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["code"], "env-code");
    assert_eq!(sent[0]["redirect_uri"], format!("{uri}/redirect"));
}

#[tokio::test]
async fn hosted_polling_needs_both_variables_and_safe_urls() {
    run_env_child(&[
        (REDIRECT_VAR, Some("https://hub.example/redirect".into())),
        (SOURCE_VAR, None),
        (EXPECT_VAR, Some("none".into())),
    ])
    .await;
    run_env_child(&[
        (REDIRECT_VAR, Some("https://hub.example/redirect".into())),
        (SOURCE_VAR, Some(String::new())),
        (EXPECT_VAR, Some("none".into())),
    ])
    .await;
    run_env_child(&[
        (REDIRECT_VAR, Some("https://hub.example/redirect".into())),
        (SOURCE_VAR, Some("http://hub.example/code".into())),
        (EXPECT_VAR, Some("invalid".into())),
    ])
    .await;
}

#[tokio::test]
#[ignore = "run in a child process by the hosted_polling_* environment tests"]
async fn hosted_env_child() {
    let Ok(expect) = std::env::var(EXPECT_VAR) else {
        return; // run by hand with --ignored: nothing to check
    };
    match (expect.as_str(), HostedReceiver::from_env()) {
        ("none", None) => {}
        ("invalid", Some(Err(Error::Config(_)))) => {}
        ("hosted", Some(Ok(receiver))) => {
            let uri = std::env::var(IDP_VAR).unwrap();
            assert_eq!(receiver.redirect_url().as_str(), format!("{uri}/redirect"));
            let client = OAuthClient::builder("my-app")
                .authorization_url(format!("{uri}/authorize"))
                .token_url(format!("{uri}/token"))
                .clock(ManualClock::new())
                .build()
                .unwrap();
            // The automatic choice, not an explicit receiver.
            let flow = AuthCode::new()
                .browser(NoBrowser)
                .prompt(ScriptedPrompt::new(Vec::<String>::new()));
            assert_token(&flow.fetch(&client).await.unwrap());
        }
        (expect, got) => panic!("expected {expect}, got {got:?}"),
    }
}

// ---- a web app's own callback handler ----------------------------------------------------------

/// A browser that, once the sign-in has started, plays the app's callback handler: it sends a
/// forged callback, then the real one.
fn browser_sending(
    sender: CallbackSender,
    accepted: Arc<Mutex<Vec<bool>>>,
) -> BrowserFn<impl Fn(&Url) -> io::Result<()> + Send + Sync + 'static> {
    BrowserFn(move |url: &Url| {
        let state = query_param(url, "state").unwrap();
        let sender = sender.clone();
        let accepted = accepted.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let forged = [("code", "evil-code"), ("state", "forged")];
            let denied = [("error", "access_denied"), ("state", "forged")];
            let real = [("code", "real-code"), ("state", state.as_str())];
            for pairs in [forged, denied, real] {
                let ok = sender.send(Callback::from_pairs(pairs));
                accepted.lock().unwrap().push(ok);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        Ok(())
    })
}

#[tokio::test]
async fn the_channel_ignores_forged_callbacks_and_takes_the_real_one() {
    let server = idp().await;
    let (receiver, sender) = callback_channel("https://app.example/oauth/callback");
    assert!(
        !sender.send(Callback::from_query("code=early&state=x")),
        "nobody waits yet"
    );
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let flow = AuthCode::new()
        .receiver(receiver)
        .browser(browser_sending(sender.clone(), accepted.clone()))
        .prompt(ScriptedPrompt::default());

    // Twice: the receiver serves one sign-in after another.
    for round in 1..=2 {
        let token = flow.fetch(&client(&server)).await.unwrap();
        assert_token(&token);
        let sent = token_requests(&server).await;
        assert_eq!(sent.len(), round);
        assert_eq!(sent[round - 1]["code"], "real-code");
        assert_eq!(
            sent[round - 1]["redirect_uri"],
            "https://app.example/oauth/callback"
        );
    }
    assert!(!sender.is_waiting());
    assert!(
        !sender.send(Callback::from_query("code=late&state=x")),
        "the sign-in is over"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    let accepted = accepted.lock().unwrap().clone();
    assert_eq!(&accepted[..3], &[true, true, true], "{accepted:?}");
}

#[tokio::test]
async fn the_channel_times_out() {
    let server = idp().await;
    let (receiver, sender) = callback_channel("https://app.example/oauth/callback");
    let flow = AuthCode::new()
        .receiver(receiver)
        .browser(NoBrowser)
        .prompt(ScriptedPrompt::default())
        .timeout(Duration::from_millis(100));

    let err = flow.fetch(&client(&server)).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    assert!(!sender.is_waiting());
    assert!(token_requests(&server).await.is_empty());
}

#[tokio::test]
async fn the_channel_ends_when_every_sender_is_dropped() {
    let server = idp().await;
    let (receiver, sender) = callback_channel("https://app.example/oauth/callback");
    drop(sender);
    let flow = AuthCode::new()
        .receiver(receiver)
        .browser(NoBrowser)
        .prompt(ScriptedPrompt::default());

    let err = flow.fetch(&client(&server)).await.unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
}
