//! Token endpoint responses: any status, content type, `Retry-After` and body, through the
//! classifier directly and through `OAuthClient::request_token` over a canned transport.
//!
//! Invariants: no panic; a token is only ever a bearer token with a valid header value and a
//! bounded lifetime; its `Debug` never shows the access, refresh or ID token; an error never
//! carries the client secret or the password the client sent, in any encoding a server can
//! echo them in.
#![no_main]

#[path = "common.rs"]
mod common;

use common::{assert_no_leak, basic, encodings, fields, text};
use libfuzzer_sys::fuzz_target;
use oauth_layer::clock::ManualClock;
use oauth_layer::fuzzing::{
    CannedTransport, block_on, parse_retry_after, parse_token_response_raw,
};
use oauth_layer::{MAX_LIFETIME, OAuthClient, RetryPolicy, Token, TokenRequest};
use secrecy::ExposeSecret;

const CLIENT_ID: &str = "fuzz-client";
const CLIENT_SECRET: &str = "cs-SENTINEL-5ecret+/=9";
const PASSWORD: &str = "pw-SENTINEL-p4ss&word";

fuzz_target!(|data: &[u8]| {
    // status line (digits, then flags) ~ content type ~ body ~ Retry-After
    let f = fields(data, 4);
    let head = text(f[0]);
    let digits: String = head.chars().take_while(char::is_ascii_digit).collect();
    let status = digits.parse::<u16>().unwrap_or(200);
    let lenient = head.contains('L');
    let content_type = std::str::from_utf8(f[1]).ok().filter(|c| !c.is_empty());
    let body = f[2];

    let mut forbidden = Vec::new();
    for s in [CLIENT_SECRET, PASSWORD] {
        forbidden.extend(encodings(s));
    }
    forbidden.push(basic(CLIENT_ID, CLIENT_SECRET));

    // The classifier alone.
    match parse_token_response_raw(
        status,
        content_type,
        body,
        lenient,
        &[CLIENT_SECRET, PASSWORD],
        &[&basic(CLIENT_ID, CLIENT_SECRET)],
    ) {
        Ok(token) => check_token(&token, lenient),
        Err(e) => {
            assert_no_leak("an error", &e.to_string(), &forbidden);
            assert_no_leak("an error's Debug", &format!("{e:?}"), &forbidden);
        }
    }

    let _ = parse_retry_after(f[3]);

    // The whole exchange, as a caller runs it.
    let mut headers: Vec<(&str, &[u8])> = vec![("retry-after", f[3])];
    if let Some(ct) = content_type {
        headers.push(("content-type", ct.as_bytes()));
    }
    let transport = CannedTransport::new(status, &headers, body);
    let client = OAuthClient::builder(CLIENT_ID)
        .secret(CLIENT_SECRET)
        .token_url("https://idp.example/token")
        .transport(transport.clone())
        .clock(ManualClock::new())
        .retry_policy(RetryPolicy::none())
        .lenient_token_type(lenient)
        .build()
        .expect("a valid token URL");
    let request = TokenRequest::new("password")
        .param("username", "alice")
        .secret_param("password", PASSWORD);
    match block_on(client.request_token(request)) {
        Ok(token) => check_token(&token, lenient),
        Err(e) => {
            assert_no_leak("an error", &e.to_string(), &forbidden);
            assert_no_leak("an error's Debug", &format!("{e:?}"), &forbidden);
        }
    }
    assert_eq!(transport.sent().len(), 1, "one request, never retried here");
});

fn check_token(token: &Token, _lenient: bool) {
    let access = token.access_token().expose_secret();
    assert!(!access.is_empty());
    assert!(access.bytes().all(|b| b.is_ascii_graphic()), "{access:?}");
    assert_eq!(
        token.header_value().to_str().ok(),
        Some(format!("Bearer {access}").as_str())
    );
    assert!(token.header_value().is_sensitive());
    assert!(token.token_type().eq_ignore_ascii_case("bearer"));
    assert!(token.lifetime() <= MAX_LIFETIME);

    let debug = format!("{token:?}");
    // What Debug may show: the non-secret fields, as Debug writes them.
    let extra: Vec<&String> = token.extra().keys().collect();
    let visible = format!(
        "{:?} {:?} {:?} {:?}",
        token.token_type(),
        token.scope(),
        token.issued_token_type(),
        extra
    );
    let mut secrets = vec![access.to_owned()];
    secrets.extend(token.refresh_token().map(|s| s.expose_secret().to_owned()));
    secrets.extend(token.id_token().map(|s| s.expose_secret().to_owned()));
    for s in secrets {
        let escaped = format!("{s:?}");
        let escaped = escaped.trim_matches('"');
        for form in [s.as_str(), escaped] {
            assert!(
                form.len() < 8 || !debug.contains(form) || visible.contains(form),
                "Debug shows a token: {debug}"
            );
        }
    }
}
