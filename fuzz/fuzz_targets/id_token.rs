//! JOSE input: ID token headers and claims (signed with HS256 under the client secret, so the
//! fuzzer reaches every claim check), raw compact tokens against a hostile JWKS, and PEM keys.
//!
//! Invariants: no panic; a token is accepted only when its header says HS256 (the key it was
//! signed with), `iss` is the issuer, `aud` holds the client (and `azp` names it when there are
//! several audiences), `exp` has not passed, `iat` is not in the future, and the nonce matches;
//! a raw token never verifies against a JWKS the attacker wrote without a matching signature;
//! errors never carry the client secret or PEM contents.
#![no_main]

#[path = "common.rs"]
mod common;

use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{assert_no_leak, encodings, fields, text};
use jsonwebtoken::{Algorithm as Jose, EncodingKey};
use libfuzzer_sys::fuzz_target;
use oauth_layer::OAuthClient;
use oauth_layer::clock::{Clock, ManualClock};
use oauth_layer::fuzzing::{CannedTransport, block_on};
use oauth_layer::jwt::{Algorithm, SigningKey};
use oauth_layer::oidc::{DEFAULT_LEEWAY, IdTokenValidator};

const CLIENT_ID: &str = "fuzz-client";
const CLIENT_SECRET: &str = "cs-SENTINEL-1d-t0ken-secret";
const ISSUER: &str = "https://idp.example";
const NONCE: &str = "n0nce-SENTINEL";

fuzz_target!(|data: &[u8]| {
    // flags ~ header JSON ~ claims JSON ~ JWKS body
    let f = fields(data, 4);
    let flags = text(f[0]);
    let clock = ManualClock::new();
    let now = clock.now_utc();
    let forbidden = encodings(CLIENT_SECRET);

    if flags.contains('K') {
        // A PEM key for each algorithm: errors say what is wrong, never what the key holds.
        for alg in [
            Algorithm::RS256,
            Algorithm::PS256,
            Algorithm::ES256,
            Algorithm::EdDSA,
        ] {
            if let Err(e) = SigningKey::from_pem(alg, f[1]) {
                let message = format!("{e} {e:?}");
                assert!(
                    !message.contains("SENTINEL"),
                    "a key error quotes the PEM: {message}"
                );
            }
        }
        let _ = SigningKey::hs256(f[1]);
        return;
    }

    let header = text(f[1]).replace("{now}", &unix(now).to_string());
    let claims = text(f[2])
        .replace("{now}", &unix(now).to_string())
        .replace("{issuer}", ISSUER)
        .replace("{client}", CLIENT_ID)
        .replace("{nonce}", NONCE);
    let transport = CannedTransport::new(200, &[("content-type", b"application/json")], f[3]);
    let client = OAuthClient::builder(CLIENT_ID)
        .secret(CLIENT_SECRET)
        .clock(clock.clone())
        .transport(transport)
        .build()
        .unwrap();
    let validator = IdTokenValidator::new(&client, ISSUER, "https://idp.example/jwks")
        .expect("a validator")
        .allow_client_secret_hs256(true);
    let nonce = flags.contains('N').then_some(NONCE);

    // Signed with the client secret, so the claims are what gets tested.
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.as_bytes()),
        URL_SAFE_NO_PAD.encode(claims.as_bytes())
    );
    let signature = jsonwebtoken::crypto::sign(
        signing_input.as_bytes(),
        &EncodingKey::from_secret(CLIENT_SECRET.as_bytes()),
        Jose::HS256,
    )
    .expect("an HS256 signature");
    let token = format!("{signing_input}.{signature}");
    match block_on(validator.validate(&token, nonce)) {
        Ok(valid) => {
            let header: serde_json::Value =
                serde_json::from_str(&header).expect("an accepted header is JSON");
            assert_eq!(
                header["alg"], "HS256",
                "accepted under another alg: {header}"
            );
            assert_eq!(valid.issuer, ISSUER);
            assert!(valid.audience.iter().any(|a| a == CLIENT_ID), "aud");
            if valid.audience.len() > 1 {
                assert_eq!(valid.claims["azp"], CLIENT_ID, "azp");
            }
            // The validator saturates times at the latest `SystemTime`; so does this check.
            let exp_with_leeway = valid.expires_at.checked_add(DEFAULT_LEEWAY);
            assert!(exp_with_leeway.is_none_or(|t| t > now), "expired");
            assert!(
                valid.issued_at <= now + DEFAULT_LEEWAY,
                "issued in the future"
            );
            if nonce.is_some() {
                assert_eq!(valid.claims["nonce"], NONCE, "nonce");
            }
        }
        Err(e) => assert_no_leak("an error", &format!("{e} {e:?}"), &forbidden),
    }

    // The raw text as a token, its key looked up in the JWKS the fuzzer wrote.
    let raw = text(f[2]);
    let result = block_on(validator.validate(raw.trim(), nonce));
    if let Ok(valid) = &result {
        // Only an HS256 token under the client secret can verify here.
        let header = raw.trim().split('.').next().unwrap_or("");
        let header = URL_SAFE_NO_PAD.decode(header).unwrap_or_default();
        let header: serde_json::Value = serde_json::from_slice(&header).unwrap_or_default();
        assert_eq!(header["alg"], "HS256", "a forged token verified: {valid:?}");
    }
    if let Err(e) = &result {
        assert_no_leak("an error", &format!("{e} {e:?}"), &forbidden);
    }
});

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}
