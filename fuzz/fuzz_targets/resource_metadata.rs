//! Protected resource metadata (RFC 9728): any status, content type and body, through
//! `discovery::resource::fetch` and `fetch_from` over a canned transport. `{resource}` in the
//! body stands for the resource asked about.
//!
//! Invariants: no panic; a document is accepted only when its `resource` names the resource
//! asked about (the root resource with or without its `/`) and every authorization server and
//! `jwks_uri` it names is `https` (the resource is remote); the requests are GETs to the
//! well-known URL or the challenge's URL, never carrying a credential, and an error never shows
//! the client secret unless the answer already held it.
#![no_main]

#[path = "common.rs"]
mod common;

use common::{assert_no_leak, encodings, fields, text};
use libfuzzer_sys::fuzz_target;
use oauth_layer::OAuthClient;
use oauth_layer::discovery::resource::{self, ProtectedResourceMetadata, ResourceIdentifier};
use oauth_layer::fuzzing::{CannedTransport, block_on};

const CLIENT_SECRET: &str = "cs-SENTINEL-res0urce";
const POINTER: &str = "https://meta.example/prm";

fuzz_target!(|data: &[u8]| {
    // status and flags ~ content type ~ body
    let f = fields(data, 3);
    let head = text(f[0]);
    let digits: String = head.chars().take_while(char::is_ascii_digit).collect();
    let status = digits.parse::<u16>().unwrap_or(200);
    let asked = if head.contains('R') {
        "https://api.example/"
    } else {
        "https://mcp.example/mcp"
    };
    let id = ResourceIdentifier::new(asked).expect("a valid resource");
    let body = text(f[2]).replace("{resource}", id.as_str());
    let mut headers: Vec<(&str, &[u8])> = Vec::new();
    if !f[1].is_empty() {
        headers.push(("content-type", f[1]));
    }
    let transport = CannedTransport::new(status, &headers, body.as_bytes());
    let client = OAuthClient::builder("fuzz-client")
        .secret(CLIENT_SECRET)
        .transport(transport.clone())
        .build()
        .expect("no URL to refuse");
    let forbidden = if data.windows(8).any(|w| w == b"SENTINEL") {
        Vec::new()
    } else {
        encodings(CLIENT_SECRET)
    };

    let results = [
        block_on(resource::fetch(&client, &id)),
        block_on(resource::fetch_from(&client, &id, POINTER)),
    ];
    for result in results {
        match result {
            Ok(metadata) => check(&metadata, &id),
            Err(e) => assert_no_leak("an error", &format!("{e} {e:?}"), &forbidden),
        }
    }
    let well_known = id.well_known_url();
    for request in transport.sent() {
        assert_eq!(request.method(), http::Method::GET);
        let uri = request.uri().to_string();
        assert!(uri == well_known.as_str() || uri == POINTER, "asked {uri}");
        assert!(request.headers().get(http::header::AUTHORIZATION).is_none());
        assert!(request.body().is_empty());
    }
});

fn check(metadata: &ProtectedResourceMetadata, id: &ResourceIdentifier) {
    let asked = id.as_str();
    assert!(
        metadata.resource == asked
            || (id.as_url().path() == "/" && metadata.resource == asked.trim_end_matches('/')),
        "accepted a document for {:?} when asking about {asked}",
        metadata.resource
    );
    for issuer in metadata.authorization_servers.iter().flatten() {
        assert!(issuer.starts_with("https://"), "authorization server {issuer}");
    }
    if let Some(jwks) = &metadata.jwks_uri {
        assert_eq!(jwks.scheme(), "https", "jwks_uri {jwks}");
    }
}
