//! Checking the JWTs a client presents (RFC 7523): client assertions (`private_key_jwt`,
//! `client_secret_jwt`), JWT bearer grant assertions, and JWT subject and actor tokens of a
//! token exchange.
//!
//! The signature is checked by jsonwebtoken with exactly the registered key and algorithm; the
//! claims are checked here, against the server's clock, so a test holding a
//! [`ManualClock`](crate::clock::ManualClock) decides when an assertion has expired.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::jwt::Algorithm;

use super::state::Shared;

/// A key the server checks signatures with, and the one algorithm it accepts for it.
#[derive(Clone)]
pub(super) struct TrustedKey {
    algorithm: Algorithm,
    key: Arc<DecodingKey>,
}

impl TrustedKey {
    /// A public key from a PEM document (`PUBLIC KEY`, or `RSA PUBLIC KEY` for RSA).
    pub(super) fn from_pem(algorithm: Algorithm, pem: &[u8]) -> Result<Self, String> {
        // A private key would verify too, but a test that hands the server one has its keys
        // mixed up: the server never needs more than the public half.
        if !String::from_utf8_lossy(pem).contains("PUBLIC KEY-----") {
            return Err("not a PUBLIC KEY PEM document".into());
        }
        let key = match algorithm {
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::PS256 => {
                DecodingKey::from_rsa_pem(pem)
            }
            Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem),
            Algorithm::EdDSA => DecodingKey::from_ed_pem(pem),
            Algorithm::HS256 => {
                return Err("HS256 takes the client secret (client_secret_jwt), not a PEM".into());
            }
        }
        .map_err(|_| format!("not a usable {algorithm} public key"))?;
        Ok(Self {
            algorithm,
            key: Arc::new(key),
        })
    }

    /// The HS256 key of `client_secret_jwt`: the client secret itself.
    pub(super) fn from_secret(secret: &str) -> Self {
        Self {
            algorithm: Algorithm::HS256,
            key: Arc::new(DecodingKey::from_secret(secret.as_bytes())),
        }
    }
}

impl fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// What an assertion must say besides a good signature and an `exp` still ahead.
pub(super) struct Expect {
    /// `aud` must name the token endpoint or the issuer (RFC 7523 §3 item 3).
    pub(super) audience: bool,
    /// A `jti` seen before is a replay (RFC 7523 §3 item 7); subject tokens may be exchanged
    /// more than once, assertions may not.
    pub(super) single_use: bool,
}

/// Why a JWT was refused, in words for `error_description`.
pub(super) type Refusal = &'static str;

/// The `iss` claim, read without checking anything: it says which key to check with.
pub(super) fn unverified_issuer(jwt: &str) -> Option<String> {
    let claims: Map<String, Value> = jsonwebtoken::dangerous::insecure_decode_claims(jwt).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

/// Checks `jwt`'s signature with `key`, then its claims against the server's clock and
/// `expect`; returns the claims.
pub(super) fn verify(
    shared: &Shared,
    jwt: &str,
    key: &TrustedKey,
    expect: &Expect,
) -> Result<Map<String, Value>, Refusal> {
    let mut validation = Validation::new(key.algorithm.jose());
    // Time and audience are checked below, against the server's own clock and endpoints.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Map<String, Value>>(jwt, &key.key, &validation)
        .map_err(|_| "the JWT is malformed, not signed with the registered key, or uses another algorithm")?
        .claims;

    let config = &shared.config;
    let now = config.clock.now_utc();
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .ok_or("the JWT has no iss")?;
    let exp = time_claim(&claims, "exp")?.ok_or("the JWT has no exp")?;
    if now >= exp {
        return Err("the JWT has expired");
    }
    if time_claim(&claims, "nbf")?.is_some_and(|nbf| now < nbf) {
        return Err("the JWT is not valid yet (nbf)");
    }
    if expect.audience {
        let names = |wanted: &str| wanted == config.token_url || wanted == config.issuer;
        let addressed = match claims.get("aud") {
            Some(Value::String(aud)) => names(aud),
            Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).any(names),
            _ => false,
        };
        if !addressed {
            return Err("the JWT's aud names neither this token endpoint nor this issuer");
        }
    }
    if expect.single_use {
        let jti = claims
            .get("jti")
            .and_then(Value::as_str)
            .ok_or("the JWT has no jti")?;
        let mut state = shared.lock();
        state.used_assertions.retain(|_, expires| *expires > now);
        if state
            .used_assertions
            .insert((iss.to_owned(), jti.to_owned()), exp)
            .is_some()
        {
            return Err("the JWT was used before (same iss and jti)");
        }
    }
    Ok(claims)
}

/// A NumericDate claim (seconds since the epoch), when present.
fn time_claim(claims: &Map<String, Value>, name: &str) -> Result<Option<SystemTime>, Refusal> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => {
            let seconds = value
                .as_u64()
                .or_else(|| value.as_f64().filter(|s| *s >= 0.0).map(|s| s as u64))
                .ok_or("a time claim of the JWT is not a NumericDate")?;
            UNIX_EPOCH
                .checked_add(Duration::from_secs(seconds))
                .map(Some)
                .ok_or("a time claim of the JWT is out of range")
        }
    }
}
