//! Store entries: any bytes as a plain entry, and any bytes as the plaintext behind a valid
//! AES-GCM seal (which the fuzzer could not forge), through `store::Codec::decode`.
//!
//! Invariants: no panic; a decoded token is a valid bearer token that survives another round
//! trip unchanged, plain and sealed; a sealed entry never shows the tokens; an entry sealed
//! under another cache key or read without the key is refused; errors never quote the entry (seeds mark their values with `SENTINEL`).
#![no_main]

#[path = "common.rs"]
mod common;

use common::{fields, text};
use libfuzzer_sys::fuzz_target;
use oauth_layer::clock::ManualClock;
use oauth_layer::fuzzing::seal_entry;
use oauth_layer::store::{CacheKey, Codec};
use oauth_layer::{OAuthClient, Token};
use secrecy::ExposeSecret;

const KEY: [u8; 32] = [42; 32];
const MARK: &str = "SENTINEL";

fuzz_target!(|data: &[u8]| {
    // flags ~ entry bytes
    let f = fields(data, 2);
    let sealed = text(f[0]).contains('S');
    let client = OAuthClient::builder("fuzz-client")
        .token_url("https://idp.example/token")
        .build()
        .expect("a token URL");
    let key = CacheKey::builder(&client, "client_credentials").build();
    let other_key = CacheKey::builder(&client, "password").build();
    let clock = ManualClock::new();

    let (codec, bytes) = if sealed {
        (Codec::encrypted(KEY), seal_entry(KEY, &key, f[1]))
    } else {
        (Codec::plain(), f[1].to_vec())
    };
    let result = codec.decode(&key, &bytes, &clock);
    // Behind the seal the same decoder runs: a JSON object that opens sealed opens plain too.
    if sealed && serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(f[1]).is_ok()
    {
        let plain = format!(
            r#"{{"format":"oauth-layer-token","version":1,"token":{}}}"#,
            text(f[1])
        );
        let plain_result = Codec::plain().decode(&key, plain.as_bytes(), &clock);
        assert_eq!(
            plain_result.is_ok(),
            result.is_ok(),
            "sealed and plain entries disagree"
        );
    }
    match result {
        Ok(token) => {
            round_trip(&token, &key, &clock);
            if sealed {
                assert!(
                    codec.decode(&other_key, &bytes, &clock).is_err(),
                    "moved key"
                );
                assert!(
                    Codec::plain().decode(&key, &bytes, &clock).is_err(),
                    "no key"
                );
            }
        }
        Err(e) => {
            // Errors are the crate's own words: the seeds' values all carry the mark.
            let message = format!("{e} {e:?}");
            assert!(
                !message.contains(MARK),
                "an error quotes the entry: {message}"
            );
        }
    }
});

fn round_trip(token: &Token, key: &CacheKey, clock: &ManualClock) {
    let access = token.access_token().expose_secret();
    assert!(!access.is_empty() && access.bytes().all(|b| b.is_ascii_graphic()));
    assert!(token.token_type().eq_ignore_ascii_case("bearer"));
    for codec in [Codec::plain(), Codec::encrypted(KEY)] {
        let bytes = codec.encode(key, token).expect("a decoded token encodes");
        if codec.is_encrypted() && access.len() >= 8 {
            assert!(
                !String::from_utf8_lossy(&bytes).contains(access),
                "sealed entry shows it"
            );
        }
        let back = codec.decode(key, &bytes, clock).expect("a round trip");
        assert_eq!(back.access_token().expose_secret(), access);
        assert_eq!(
            back.refresh_token().map(|s| s.expose_secret().to_owned()),
            token.refresh_token().map(|s| s.expose_secret().to_owned())
        );
        assert_eq!(
            back.id_token().map(|s| s.expose_secret().to_owned()),
            token.id_token().map(|s| s.expose_secret().to_owned())
        );
        assert_eq!(back.scope(), token.scope());
        assert_eq!(back.token_type(), token.token_type());
        assert_eq!(back.issued_token_type(), token.issued_token_type());
        assert_eq!(back.extra(), token.extra());
        assert_eq!(back.lifetime(), token.lifetime());
        assert_eq!(back.lifetime_was_reported(), token.lifetime_was_reported());
        assert!(back.expires_at_utc() <= token.expires_at_utc());
    }
}
