//! Discovery documents (RFC 8414, OIDC Discovery): any status, content type and body, through
//! `discovery::discover` and `discovery::configure` over a canned transport. `{issuer}` in the
//! body stands for the issuer asked for.
//!
//! Invariants: no panic; a document is accepted only when its `issuer` is the one asked for,
//! byte for byte, and every endpoint it names is `https` (plain `http` only to loopback); the
//! client then only ever holds such endpoints; discovery requests are GETs to the issuer's
//! well-known URLs, never carrying a credential (discovery never sends the client secret, so a
//! server cannot echo it: an error shows it only when the answer already held it).
#![no_main]

#[path = "common.rs"]
mod common;

use common::{assert_no_leak, encodings, fields, secure_or_loopback, text};
use libfuzzer_sys::fuzz_target;
use oauth_layer::OAuthClient;
use oauth_layer::discovery::{configure, discover, metadata_urls};
use oauth_layer::metadata::Metadata;
use oauth_layer::fuzzing::{CannedTransport, block_on};

const CLIENT_SECRET: &str = "cs-SENTINEL-d1scovery";

fuzz_target!(|data: &[u8]| {
    // status and flags ~ content type ~ body
    let f = fields(data, 3);
    let head = text(f[0]);
    let digits: String = head.chars().take_while(char::is_ascii_digit).collect();
    let status = digits.parse::<u16>().unwrap_or(200);
    let issuer = if head.contains('P') {
        "https://idp.example/tenant/v2"
    } else if head.contains('L') {
        "http://127.0.0.1:8080"
    } else {
        "https://idp.example"
    };
    let body = text(f[2]).replace("{issuer}", issuer);
    let mut headers: Vec<(&str, &[u8])> = Vec::new();
    if !f[1].is_empty() {
        headers.push(("content-type", f[1]));
    }
    let transport = CannedTransport::new(status, &headers, body.as_bytes());
    let builder = OAuthClient::builder("fuzz-client")
        .secret(CLIENT_SECRET)
        .transport(transport.clone());
    let client = builder.clone().build().expect("no URL to refuse");
    // The server never sees the secret; only a body that holds it can put it in an error.
    let forbidden = if data.windows(8).any(|w| w == b"SENTINEL") {
        Vec::new()
    } else {
        encodings(CLIENT_SECRET)
    };

    match block_on(discover(&client, issuer)) {
        Ok(metadata) => check_metadata(&metadata, issuer),
        Err(e) => assert_no_leak("an error", &format!("{e} {e:?}"), &forbidden),
    }
    match block_on(configure(builder, issuer)) {
        Ok(client) => {
            check_metadata(client.metadata().expect("discovered metadata"), issuer);
            for url in [
                client.token_url(),
                client.authorization_url(),
                client.device_authorization_url(),
                client.revocation_url(),
                client.introspection_url(),
            ]
            .into_iter()
            .flatten()
            {
                assert!(secure_or_loopback(url.as_str()), "client endpoint {url}");
            }
            assert_no_leak("the client's Debug", &format!("{client:?}"), &forbidden);
        }
        Err(e) => assert_no_leak("an error", &format!("{e} {e:?}"), &forbidden),
    }

    let well_known = metadata_urls(issuer).expect("well-known URLs");
    for request in transport.sent() {
        assert_eq!(request.method(), http::Method::GET);
        assert!(
            well_known
                .iter()
                .any(|u| u.as_str() == request.uri().to_string()),
            "discovery asked {}",
            request.uri()
        );
        assert!(request.headers().get(http::header::AUTHORIZATION).is_none());
        assert!(request.body().is_empty());
        assert!(!request.uri().to_string().contains("SENTINEL"));
    }
});

fn check_metadata(metadata: &Metadata, issuer: &str) {
    assert_eq!(metadata.issuer, issuer, "issuer");
    for url in [
        &metadata.authorization_endpoint,
        &metadata.token_endpoint,
        &metadata.device_authorization_endpoint,
        &metadata.revocation_endpoint,
        &metadata.introspection_endpoint,
        &metadata.userinfo_endpoint,
        &metadata.jwks_uri,
        &metadata.registration_endpoint,
        &metadata.end_session_endpoint,
    ]
    .into_iter()
    .flatten()
    {
        assert!(secure_or_loopback(url.as_str()), "endpoint {url}");
    }
}
