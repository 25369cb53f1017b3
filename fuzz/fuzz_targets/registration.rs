//! Client registration answers (RFC 7591, RFC 7592): any status, content type and body, through
//! `registration::register` and `registration::read` over a canned transport.
//!
//! Invariants: no panic; an accepted registration has a non-empty client id and, when it names
//! a `registration_client_uri`, one on the registration endpoint's origin over `https`; its
//! `Debug` shows neither its client secret nor its registration access token; an error never
//! shows the initial access token or the registration access token the client sent (unless the
//! answer already held them); every request goes to the registration endpoint or to the
//! configuration URL, with the right bearer token.
#![no_main]

#[path = "common.rs"]
mod common;

use common::{assert_no_leak, encodings, fields, text};
use libfuzzer_sys::fuzz_target;
use oauth_layer::fuzzing::{CannedTransport, block_on};
use oauth_layer::registration::{self, ClientMetadata, Registration};
use oauth_layer::{ExposeSecret, OAuthClient};

const ENDPOINT: &str = "https://idp.example/register";
const INITIAL: &str = "iat-SENTINEL-initial";

fuzz_target!(|data: &[u8]| {
    // status and flags ~ content type ~ body
    let f = fields(data, 3);
    let head = text(f[0]);
    let digits: String = head.chars().take_while(char::is_ascii_digit).collect();
    let status = digits.parse::<u16>().unwrap_or(201);
    let body = text(f[2]);
    let mut headers: Vec<(&str, &[u8])> = Vec::new();
    if !f[1].is_empty() {
        headers.push(("content-type", f[1]));
    }
    let transport = CannedTransport::new(status, &headers, body.as_bytes());
    let client = OAuthClient::builder("unregistered")
        .transport(transport.clone())
        .build()
        .expect("no URL to refuse");
    let mut metadata = ClientMetadata::new()
        .client_name("fuzz")
        .redirect_uri("http://127.0.0.1/callback");
    if head.contains('I') {
        metadata = metadata.initial_access_token(INITIAL);
    }
    let forbidden = if data.windows(8).any(|w| w == b"SENTINEL") {
        Vec::new()
    } else {
        encodings(INITIAL)
    };

    let registered = block_on(registration::register(&client, ENDPOINT, &metadata));
    match &registered {
        Ok(registration) => check(registration, &body),
        Err(e) => assert_no_leak("an error", &format!("{e} {e:?}"), &forbidden),
    }
    // RFC 7592: reading it back gets the same canned answer.
    if let Ok(registration) = &registered
        && registration.registration_access_token().is_some()
        && registration.registration_client_uri().is_some()
    {
        let rat = registration
            .registration_access_token()
            .map(|t| t.expose_secret().to_owned())
            .unwrap_or_default();
        let rat_forbidden = if body.contains(&rat) {
            Vec::new()
        } else {
            encodings(&rat)
        };
        match block_on(registration::read(&client, registration)) {
            Ok(read) => check(&read, &body),
            Err(e) => assert_no_leak("a read error", &format!("{e} {e:?}"), &rat_forbidden),
        }
    }
    for request in transport.sent() {
        let uri = request.uri().to_string();
        let bearer = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if request.method() == http::Method::POST {
            assert_eq!(uri, ENDPOINT);
            let expected = metadata
                .has_initial_access_token()
                .then(|| format!("Bearer {INITIAL}"));
            assert_eq!(bearer, expected);
        } else {
            assert!(uri.starts_with("https://idp.example/"), "read at {uri}");
            assert!(bearer.is_some_and(|b| b.starts_with("Bearer ")));
        }
    }
});

fn check(registration: &Registration, body: &str) {
    assert!(!registration.client_id().is_empty());
    if let Some(uri) = registration.registration_client_uri() {
        assert_eq!(uri.scheme(), "https");
        assert_eq!(uri.host_str(), Some("idp.example"));
    }
    let shown = format!("{registration:?}");
    for secret in [
        registration.client_secret(),
        registration.registration_access_token(),
    ]
    .into_iter()
    .flatten()
    {
        let secret = secret.expose_secret();
        // Only a secret the answer holds once, as itself: the same text in another member is
        // that member's, and shows.
        if secret.len() >= 4 && body.matches(secret).count() == 1 {
            assert!(!shown.contains(secret), "Debug shows a secret: {shown}");
        }
    }
}
