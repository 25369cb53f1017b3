//! SECURITY.md rule 38, hostile edition: a server that echoes what it received (the form body,
//! the `Authorization` header) back in an error, in any spelling a server can plausibly write it
//! in, never gets a secret into an `Error` (Display, Debug, `source()` chain) or into `tracing`
//! output at TRACE, including the `token renewal failed` warning of a background renewal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use common::logs::Captured;
use oauth_layer::clock::ManualClock;
use oauth_layer::flow::TokenExchange;
use oauth_layer::flow::{
    ActorToken, ClientCredentials, Flow, Password, RefreshToken, SubjectToken,
};
use oauth_layer::{AuthMethod, Error, OAuthClient, RetryPolicy, Token, TokenSource};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Every character a careless escaper gets wrong.
const SECRET: &str = "a\"b\\c+d%e&f=g h~é<>'";
const CLIENT_ID: &str = "echo-client";
/// A second, ordinary secret, for flows where `SECRET` is not the client secret.
const OTHER_SECRET: &str = "OTHER-client-secret-77";

/// Every spelling of `secret` that must not show.
fn spellings(secret: &str) -> Vec<String> {
    let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let lower_hex = |s: &str| {
        let mut out = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            out.push(c);
            if c == '%' {
                for _ in 0..2 {
                    out.extend(chars.next().map(|d| d.to_ascii_lowercase()));
                }
            }
        }
        out
    };
    let json = serde_json::to_string(secret).unwrap();
    let json = json[1..json.len() - 1].to_owned();
    let mut out = vec![
        secret.to_owned(),
        json.clone(),
        json.replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026")
            .replace('\'', "\\u0027"),
        unicode_escaped(secret),
        form.clone(),
        form.replace('+', "%20"),
        lower_hex(&form),
        lower_hex(&form.replace('+', "%20")),
        html_escaped(secret),
        // Distinctive pieces, so that a half-redacted value is caught too.
        "b\\c+d".to_owned(),
        "e&f=g".to_owned(),
        "h~é<".to_owned(),
    ];
    let basic = format!("{CLIENT_ID}:{form}");
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        out.push(engine.encode(secret));
        out.push(engine.encode(&form));
        out.push(engine.encode(&basic));
    }
    out
}

/// Every character but letters and digits as `\uXXXX` (what some JSON encoders write).
fn unicode_escaped(s: &str) -> String {
    s.encode_utf16()
        .map(|u| match char::from_u32(u32::from(u)) {
            Some(c) if c.is_ascii_alphanumeric() => c.to_string(),
            _ => format!("\\u{u:04x}"),
        })
        .collect()
}

fn html_escaped(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&#39;")
}

fn assert_clean(what: &str, text: &str) {
    for needle in spellings(SECRET) {
        assert!(
            !text.contains(&needle),
            "{what} shows the secret as {needle:?}:\n{text}"
        );
    }
}

fn assert_error_clean(what: &str, err: &Error) {
    let display = err.to_string();
    let debug = format!("{err:?}");
    assert_clean(&format!("{what} (Display)"), &display);
    assert_clean(&format!("{what} (Debug)"), &debug);
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        assert_clean(&format!("{what} (cause)"), &cause.to_string());
        assert_clean(&format!("{what} (cause, Debug)"), &format!("{cause:?}"));
        source = cause.source();
    }
    // The echo was within what the error keeps: the test is not vacuous.
    assert!(
        debug.contains("[redacted]"),
        "{what}: the echo did not reach the error:\n{debug}"
    );
}

/// The credentials a request carried, as sent and as a server decodes them.
struct Sent {
    /// `name=value` as on the wire (form-encoded), for the secret-bearing members.
    wire: Vec<String>,
    /// The decoded values of those members, and the decoded Basic credentials.
    decoded: Vec<String>,
    /// The `Authorization` header's credentials, as sent (base64).
    basic: Option<String>,
}

fn sent(request: &Request) -> Sent {
    const SECRET_MEMBERS: [&str; 5] = [
        "client_secret",
        "password",
        "refresh_token",
        "subject_token",
        "actor_token",
    ];
    let body = String::from_utf8_lossy(&request.body).into_owned();
    let mut wire = Vec::new();
    let mut decoded = Vec::new();
    for pair in body.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if SECRET_MEMBERS.contains(&name) {
            wire.push(pair.to_owned());
            let value: String = url::form_urlencoded::parse(format!("v={value}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            decoded.push(value);
        }
    }
    let basic = request
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .map(str::to_owned);
    if let Some(b) = &basic {
        let plain = String::from_utf8(STANDARD.decode(b).unwrap()).unwrap();
        let (_, secret) = plain.split_once(':').unwrap();
        decoded.push(
            url::form_urlencoded::parse(format!("v={secret}").as_bytes())
                .next()
                .unwrap()
                .1
                .into_owned(),
        );
        wire.push(format!("Authorization: Basic {b}"));
    }
    Sent {
        wire,
        decoded,
        basic,
    }
}

/// How a hostile server echoes the request.
#[derive(Clone, Copy, Debug)]
enum Echo {
    /// An OAuth error whose description quotes the decoded values (JSON-escaped on the wire).
    Description,
    /// An OAuth error whose description quotes the form body as sent.
    DescriptionOfWire,
    /// An OAuth error whose `error_uri` carries the values percent-encoded in lower case.
    ErrorUri,
    /// A 500 with a JSON body quoting the decoded values.
    JsonBody,
    /// A 500 with a JSON body that escapes everything but letters and digits as `\uXXXX`, cut
    /// off (so it is not valid JSON and is kept as text).
    CutUnicodeJson,
    /// A 500 with the form body as sent, as plain text.
    PlainWire,
    /// A 500 HTML page with the values HTML-escaped.
    Html,
    /// A 500 quoting the Basic credentials in URL-safe base64 without padding, and the values in
    /// standard base64.
    Base64,
    /// A 500 with a JSON log line holding a JSON document as a string (escaped twice).
    DoubleJson,
    /// A 400 with a form-encoded (not JSON) OAuth error echoing the values.
    FormBody,
}

const ECHOES: [Echo; 10] = [
    Echo::Description,
    Echo::DescriptionOfWire,
    Echo::ErrorUri,
    Echo::JsonBody,
    Echo::CutUnicodeJson,
    Echo::PlainWire,
    Echo::Html,
    Echo::Base64,
    Echo::DoubleJson,
    Echo::FormBody,
];

impl Respond for Echo {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let sent = sent(request);
        let values = sent.decoded.join(" | ");
        let wire = sent.wire.join("&");
        let text = |status: u16, content_type: &str, body: String| {
            ResponseTemplate::new(status).set_body_raw(body, content_type)
        };
        match self {
            Echo::Description => ResponseTemplate::new(400).set_body_json(json!({
                "error": "invalid_request",
                "error_description": format!("you sent {values}"),
            })),
            Echo::DescriptionOfWire => ResponseTemplate::new(400).set_body_json(json!({
                "error": "invalid_client",
                "error_description": format!("bad request {wire}"),
            })),
            Echo::ErrorUri => {
                let lower: String = values
                    .bytes()
                    .map(|b| match b {
                        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
                        _ => format!("%{b:02x}"),
                    })
                    .collect();
                ResponseTemplate::new(400).set_body_json(json!({
                    "error": "invalid_client",
                    "error_uri": format!("https://idp.example/e?sent={lower}"),
                }))
            }
            Echo::JsonBody => ResponseTemplate::new(500).set_body_json(json!({
                "message": "internal error",
                "you_sent": values,
                "raw": wire,
            })),
            Echo::CutUnicodeJson => text(
                500,
                "application/json",
                format!("{{\"message\":\"{}", unicode_escaped(&values)),
            ),
            Echo::PlainWire => text(500, "text/plain", format!("could not parse {wire}")),
            Echo::Html => text(
                500,
                "text/html",
                format!("<html><p>you sent {}</p></html>", html_escaped(&values)),
            ),
            Echo::Base64 => {
                let basic = sent
                    .basic
                    .as_deref()
                    .map(|b| URL_SAFE_NO_PAD.encode(STANDARD.decode(b).unwrap()))
                    .unwrap_or_default();
                let values: Vec<String> = sent.decoded.iter().map(|v| STANDARD.encode(v)).collect();
                text(
                    500,
                    "text/plain",
                    format!("auth={basic} values={}", values.join(",")),
                )
            }
            Echo::DoubleJson => {
                let inner = json!({ "you_sent": values }).to_string();
                ResponseTemplate::new(500).set_body_json(json!({ "log": inner }))
            }
            Echo::FormBody => {
                let body: String = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("error", "invalid_request")
                    .append_pair("error_description", &format!("you sent {values}"))
                    .finish();
                text(400, "application/x-www-form-urlencoded", body)
            }
        }
    }
}

/// The credential that carries `SECRET` in each case.
#[derive(Clone, Copy, Debug)]
enum Carrier {
    ClientSecretBasic,
    ClientSecretPost,
    Password,
    RefreshToken,
    SubjectToken,
    ActorToken,
}

const CARRIERS: [Carrier; 6] = [
    Carrier::ClientSecretBasic,
    Carrier::ClientSecretPost,
    Carrier::Password,
    Carrier::RefreshToken,
    Carrier::SubjectToken,
    Carrier::ActorToken,
];

impl Carrier {
    fn client(self, server: &MockServer, clock: &ManualClock) -> OAuthClient {
        let (secret, method) = match self {
            Carrier::ClientSecretBasic => (SECRET, AuthMethod::ClientSecretBasic),
            Carrier::ClientSecretPost => (SECRET, AuthMethod::ClientSecretPost),
            _ => (OTHER_SECRET, AuthMethod::ClientSecretBasic),
        };
        OAuthClient::builder(CLIENT_ID)
            .secret(secret)
            .auth_method(method)
            .token_url(format!("{}/token", server.uri()))
            .clock(clock.clone())
            .retry_policy(RetryPolicy::none())
            .build()
            .unwrap()
    }

    fn flow(self) -> Box<dyn FnOnce(OAuthClient) -> TokenSource> {
        match self {
            Carrier::ClientSecretBasic | Carrier::ClientSecretPost => {
                Box::new(|c| TokenSource::new(c, ClientCredentials::new()))
            }
            Carrier::Password => Box::new(|c| TokenSource::new(c, Password::new("alice", SECRET))),
            Carrier::RefreshToken => Box::new(|c| source_for(c, RefreshToken::new(SECRET))),
            Carrier::SubjectToken => Box::new(|c| {
                source_for(
                    c,
                    TokenExchange::new(SubjectToken::fixed(
                        SECRET,
                        "urn:ietf:params:oauth:token-type:access_token",
                    )),
                )
            }),
            Carrier::ActorToken => Box::new(|c| {
                source_for(
                    c,
                    TokenExchange::new(SubjectToken::fixed(
                        "ordinary-subject-token",
                        "urn:ietf:params:oauth:token-type:access_token",
                    ))
                    .actor(ActorToken::fixed(
                        SECRET,
                        "urn:ietf:params:oauth:token-type:access_token",
                    )),
                )
            }),
        }
    }
}

fn source_for(client: OAuthClient, flow: impl Flow) -> TokenSource {
    TokenSource::builder(client, flow).build()
}

async fn echo_server(echo: Echo) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(echo)
        .mount(&server)
        .await;
    server
}

#[tokio::test(flavor = "current_thread")]
async fn echoed_credentials_never_show_in_errors_or_trace_logs_in_any_spelling() {
    let captured = Captured::default();
    let _guard = captured.install(tracing::Level::TRACE);
    for carrier in CARRIERS {
        for echo in ECHOES {
            let server = echo_server(echo).await;
            let clock = ManualClock::new();
            let source = carrier.flow()(carrier.client(&server, &clock));
            let err = source.token().await.unwrap_err();
            tracing::error!(error = %err, debug = ?err, "caller saw");
            assert_error_clean(&format!("{carrier:?} echoed as {echo:?}"), &err);
        }
    }
    let logs = captured.text();
    assert!(logs.contains("token renewal failed"), "{logs}");
    assert_clean("TRACE output", &logs);
}

#[tokio::test(flavor = "current_thread")]
async fn the_background_renewal_warning_never_shows_an_echoed_refresh_token() {
    let captured = Captured::default();
    let _guard = captured.install(tracing::Level::TRACE);
    for echo in ECHOES {
        let server = echo_server(echo).await;
        let clock = ManualClock::new();
        let client = Carrier::RefreshToken.client(&server, &clock);
        let current = Token::builder("current-access-token")
            .expires_in(Duration::from_secs(600))
            .refresh_token(SECRET)
            .build(&clock)
            .unwrap();
        let source = TokenSource::builder(client, RefreshToken::new(SECRET))
            .initial_token(current.clone())
            .build();
        // Inside the refresh-ahead window: the caller gets the current token at once and the
        // renewal runs in the background, where only the log can tell of its failure.
        clock.advance(Duration::from_secs(540));
        let before = captured.text().matches("token renewal failed").count();
        assert!(source.token().await.unwrap().same_as(&current));
        for _ in 0..200 {
            if captured.text().matches("token renewal failed").count() > before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let logs = captured.text();
        assert!(
            logs.matches("token renewal failed").count() > before,
            "{echo:?}: no warning:\n{logs}"
        );
        assert!(
            logs.contains("[redacted]"),
            "{echo:?}: the echo did not reach the log"
        );
    }
    assert_clean("TRACE output of background renewals", &captured.text());
}
