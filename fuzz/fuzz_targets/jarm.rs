//! Signed authorization responses (JARM): the callback a browser delivers to a sign-in that
//! asked for `response_mode=jwt`, checked by `AuthorizationRequest::check`. The response JWT is
//! either signed with HS256 under the client secret (flag `H` allows that algorithm), so the
//! fuzzer reaches every claim check, or taken raw from the input (flag `R`), its key looked up in
//! the JWKS body the fuzzer wrote, which the canned server serves when the request is made.
//! `{state}`, `{issuer}`, `{client}`, `{now}`, `{later}` (now + 5 min) and `{past}` (now - 1 h)
//! in the claims, and `{jwt}` and `{state}` in the query, stand for the real values.
//!
//! Invariants: no panic; a code is accepted only from a callback with exactly one `response` and
//! none of the plain parameters beside it, whose JWT is signed (checked here independently) with
//! an accepted algorithm, names the issuer in `iss` and the client in `aud`, has an `exp` that has
//! not passed (with the leeway), carries the request's `state`, one non-empty string `code` and
//! no `error`; the same callback is never accepted twice; errors and `Debug` output never carry
//! the client secret, the JWT or a marked code (unless the server's own error text holds it).
#![no_main]

#[path = "common.rs"]
mod common;

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{assert_no_leak, encodings, fields, text};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm as Jose, DecodingKey, EncodingKey};
use libfuzzer_sys::fuzz_target;
use oauth_layer::OAuthClient;
use oauth_layer::clock::{Clock, ManualClock};
use oauth_layer::flow::AuthCode;
use oauth_layer::flow::auth_code::{AuthorizationRequest, Callback};
use oauth_layer::fuzzing::{CannedTransport, block_on};
use oauth_layer::metadata::Metadata;
use oauth_layer::oidc::DEFAULT_LEEWAY;
use secrecy::ExposeSecret;
use serde_json::{Map, Value};

const CLIENT_ID: &str = "fuzz-client";
const CLIENT_SECRET: &str = "cs-SENTINEL-j4rm-client-secret";
const ISSUER: &str = "https://idp.example";
/// Seeds carry this in codes: no message of the crate contains it.
const MARK: &str = "SENTINEL";
/// The parameters of a plain response; with JARM they may only travel inside the JWT.
const PLAIN: [&str; 6] = [
    "code",
    "state",
    "iss",
    "error",
    "error_description",
    "error_uri",
];
/// The algorithms the crate accepts for a signed response without a profile (HS256 only when
/// allowed).
const ASYMMETRIC: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

fuzz_target!(|data: &[u8]| {
    // flags ~ header JSON ~ claims JSON (or, with R, a raw compact JWT) ~ query ~ JWKS body
    let f = fields(data, 5);
    let flags = text(f[0]);
    let hs256 = flags.contains('H');
    let narrowed = flags.contains('S');
    let raw = flags.contains('R');
    let clock = ManualClock::new();
    let now = clock.now_utc();

    let jwks = if f[4].is_empty() {
        &b"{\"keys\":[]}"[..]
    } else {
        f[4]
    };
    let mut metadata = serde_json::json!({
        "issuer": ISSUER,
        "authorization_endpoint": "https://idp.example/authorize",
        "token_endpoint": "https://idp.example/token",
        "jwks_uri": "https://idp.example/jwks",
        "response_modes_supported": ["query", "jwt"],
    });
    if narrowed {
        metadata["authorization_signing_alg_values_supported"] =
            serde_json::json!(["HS256", "ES256"]);
    }
    let metadata: Metadata = serde_json::from_value(metadata).expect("a metadata document");
    let transport = CannedTransport::new(200, &[("content-type", b"application/json")], jwks);
    let client = OAuthClient::builder(CLIENT_ID)
        .secret(CLIENT_SECRET)
        .clock(clock.clone())
        .transport(transport)
        .metadata(metadata)
        .build()
        .expect("a client");
    let flow = AuthCode::new()
        .jarm(true)
        .jarm_allow_client_secret_hs256(hs256);
    // The server's keys are fetched here, from the fuzzer's JWKS body.
    let request = match block_on(
        flow.authorization_request_pushed(&client, "http://127.0.0.1:1410/callback"),
    ) {
        Ok(request) => request,
        Err(e) => {
            assert_no_leak(
                "a request error",
                &format!("{e} {e:?}"),
                &encodings(CLIENT_SECRET),
            );
            return;
        }
    };
    assert!(request.signed_response());

    let unix_now = unix(now);
    let jwt = if raw {
        text(f[2]).trim().to_owned()
    } else {
        let claims = text(f[2])
            .replace("{now}", &unix_now.to_string())
            .replace("{later}", &(unix_now + 300).to_string())
            .replace("{past}", &unix_now.saturating_sub(3600).to_string())
            .replace("{issuer}", ISSUER)
            .replace("{client}", CLIENT_ID)
            .replace("{state}", request.state());
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(f[1]),
            URL_SAFE_NO_PAD.encode(claims.as_bytes())
        );
        let signature = jsonwebtoken::crypto::sign(
            signing_input.as_bytes(),
            &EncodingKey::from_secret(CLIENT_SECRET.as_bytes()),
            Jose::HS256,
        )
        .expect("an HS256 signature");
        format!("{signing_input}.{signature}")
    };
    let query = if f[3].is_empty() {
        format!("response={jwt}")
    } else {
        text(f[3])
            .replace("{jwt}", &jwt)
            .replace("{state}", request.state())
    };
    let callback = Callback::from_query(&query);
    let query = query.strip_prefix('?').unwrap_or(&query);
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();

    let first = request.check(&callback);
    if let Ok(code) = &first {
        let code = code.secret().expose_secret().to_owned();
        accepted(&request, &pairs, &code, jwks, hs256, narrowed, now);
    }
    // Whatever the first answer was, the same callback never gives a code twice.
    let second = request.check(&callback);
    assert!(second.is_err(), "a replay was accepted");

    // Nothing shown carries the client secret, the response JWT or a marked code.
    let mut server_text = String::new();
    let mut codes: Vec<String> = values(&pairs, "code")
        .into_iter()
        .map(str::to_owned)
        .collect();
    for response in values(&pairs, "response") {
        if let Some(claims) = segment(response, 1).and_then(|c| c.as_object().cloned()) {
            for name in ["error", "error_description", "error_uri"] {
                if let Some(Value::String(s)) = claims.get(name) {
                    server_text.push_str(s);
                    server_text.push('\n');
                }
            }
            if let Some(Value::String(c)) = claims.get("code") {
                codes.push(c.clone());
            }
        }
    }
    // The callback's `Debug` names its parameters, whatever the browser called them.
    for (name, _) in &pairs {
        server_text.push_str(name);
        server_text.push('\n');
    }
    for name in ["error", "error_description", "error_uri"] {
        for v in values(&pairs, name) {
            server_text.push_str(v);
            server_text.push('\n');
        }
    }
    let mut forbidden = encodings(CLIENT_SECRET);
    for code in codes.iter().filter(|c| c.contains(MARK)) {
        forbidden.extend(encodings(code));
    }
    for response in values(&pairs, "response") {
        forbidden.extend(jwt_pieces(response));
    }
    // The server's own error text may be quoted (redacted only for what the client sent), and
    // parameter names are the browser's.
    forbidden.retain(|f| !server_text.contains(f.as_str()));
    for result in [&first, &second] {
        match result {
            Ok(code) => assert_no_leak("a received code's Debug", &format!("{code:?}"), &forbidden),
            Err(e) => assert_no_leak("an error", &format!("{e} {e:?}"), &forbidden),
        }
    }
    assert_no_leak("the callback's Debug", &format!("{callback:?}"), &forbidden);
    assert_no_leak("the request's Debug", &format!("{request:?}"), &forbidden);
});

/// The checks a callback whose `code` was accepted must have passed, made here from the query
/// and the JWT themselves.
fn accepted(
    request: &AuthorizationRequest,
    pairs: &[(String, String)],
    code: &str,
    jwks: &[u8],
    hs256: bool,
    narrowed: bool,
    now: SystemTime,
) {
    let responses = values(pairs, "response");
    assert_eq!(responses.len(), 1, "a code without exactly one response");
    for name in PLAIN {
        assert!(
            values(pairs, name).is_empty(),
            "a code accepted with {name} beside the signed response"
        );
    }
    let jwt = responses[0];
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "an accepted response is not a compact JWS");

    // The algorithm and the signature.
    let header = segment(jwt, 0).expect("an accepted header is base64url JSON");
    let alg = header["alg"].as_str().expect("an accepted alg is a string");
    let allowed =
        (hs256 && alg == "HS256") || (ASYMMETRIC.contains(&alg) && (!narrowed || alg == "ES256"));
    assert!(allowed, "a response signed with {alg} was accepted");
    let message = format!("{}.{}", parts[0], parts[1]);
    let verified = if alg == "HS256" {
        let key = DecodingKey::from_secret(CLIENT_SECRET.as_bytes());
        jsonwebtoken::crypto::verify(parts[2], message.as_bytes(), &key, Jose::HS256)
            .unwrap_or(false)
    } else {
        let jose = Jose::from_str(alg).expect("an accepted alg is known");
        let keys: JwkSet = serde_json::from_slice(jwks).expect("keys that verified parse");
        keys.keys.iter().any(|jwk| {
            DecodingKey::from_jwk(jwk).is_ok_and(|key| {
                jsonwebtoken::crypto::verify(parts[2], message.as_bytes(), &key, jose)
                    .unwrap_or(false)
            })
        })
    };
    assert!(
        verified,
        "a response accepted without a valid {alg} signature"
    );

    // The claims.
    let claims = segment(jwt, 1).expect("accepted claims are base64url JSON");
    let claims: &Map<String, Value> = claims.as_object().expect("accepted claims are an object");
    assert_eq!(claims.get("iss"), Some(&Value::from(ISSUER)), "iss");
    let audience_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == CLIENT_ID,
        Some(Value::Array(items)) => items.iter().any(|a| a == CLIENT_ID),
        _ => false,
    };
    assert!(
        audience_ok,
        "aud does not name the client: {:?}",
        claims.get("aud")
    );
    let exp = claims
        .get("exp")
        .and_then(Value::as_f64)
        .expect("an accepted exp is a number");
    assert!(exp.is_finite() && exp >= 0.0, "exp {exp}");
    // The crate saturates times at the latest `SystemTime`; so does this check.
    let expires = SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_secs(exp as u64))
        .and_then(|t| t.checked_add(DEFAULT_LEEWAY));
    assert!(expires.is_none_or(|t| t > now), "expired: exp {exp}");
    assert_eq!(
        claims.get("state"),
        Some(&Value::from(request.state())),
        "state"
    );
    assert!(!code.is_empty(), "an empty code");
    assert_eq!(claims.get("code"), Some(&Value::from(code)), "code");
    assert!(
        claims.get("error").is_none_or(Value::is_null),
        "a code with an error"
    );
}

fn values<'a>(pairs: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    pairs
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Segment `n` of a compact JWT as JSON.
fn segment(jwt: &str, n: usize) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(jwt.split('.').nth(n)?).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The JWT and its segments, where they cannot be taken for the crate's own words: at least 20
/// base64url characters (dots between segments) with a digit and a capital in them.
fn jwt_pieces(jwt: &str) -> Vec<String> {
    let distinctive = |s: &str| {
        s.len() >= 20
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && s.bytes().any(|b| b.is_ascii_digit())
            && s.bytes().any(|b| b.is_ascii_uppercase())
    };
    std::iter::once(jwt)
        .chain(jwt.split('.'))
        .filter(|s| distinctive(s))
        .map(str::to_owned)
        .collect()
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}
