//! An authorization server's published signing keys (its JWK set at `jwks_uri`) and the checks
//! every JWT it signs goes through before its claims are read (SECURITY.md rules 44 and 45).
//!
//! Shared by ID tokens ([`IdTokenValidator`](crate::oidc::IdTokenValidator)) and signed
//! authorization responses (JARM, [`AuthCode::jarm`](crate::flow::AuthCode::jarm)). Each caller
//! turns the short reasons given here into its own error, through the `invalid` function it
//! passes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::ACCEPT;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde_json::{Map, Value};
use url::Url;

use crate::client::OAuthClient;
use crate::clock::time_after;
use crate::error::{Error, Result};
use crate::redact::Secrets;

/// The asymmetric algorithms a server's JWT may be signed with by default: never `none`, never
/// a MAC (whose key the client would have to share).
pub(crate) const ASYMMETRIC_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// `uri` as a JWKS location: a URL, https (or http on loopback).
pub(crate) fn checked_uri(uri: &str) -> Result<Url> {
    let url = Url::parse(uri).map_err(|e| Error::config(format!("jwks_uri is not a URL: {e}")))?;
    let parsed: http::Uri = url
        .as_str()
        .parse()
        .map_err(|_| Error::config("jwks_uri is not a valid HTTP URI"))?;
    if !crate::transport::is_secure_or_loopback(&parsed) {
        return Err(Error::config(
            "jwks_uri must be https (plain http only to loopback addresses)",
        ));
    }
    Ok(url)
}

/// Downloads the JWK set at `uri` through the client's transport (no redirects, bounded).
pub(crate) async fn fetch(client: &OAuthClient, uri: &Url) -> Result<JwkSet> {
    let request = http::Request::get(uri.as_str())
        .header(ACCEPT, "application/json")
        .body(Bytes::new())
        .map_err(|e| Error::config(format!("cannot build the JWKS request: {e}")))?;
    let response = client
        .exchange(crate::error::Endpoint::Jwks, request)
        .await?;
    // The request carries no secret, but the server knows the client's: a body that quotes it
    // (a confused endpoint dumping the client's configuration) must not carry it into an error.
    let mut secrets = Secrets::default();
    if let Some(secret) = client.secret() {
        secrets.add(secret.expose_secret());
    }
    let map = response.json_object(&secrets)?;
    if !response.status.is_success() {
        return Err(response.unexpected("the JWKS endpoint answered an error status", &secrets));
    }
    serde_json::from_value(Value::Object(map))
        .map_err(|_| response.unexpected("not a JWK set", &secrets))
}

/// The header of `token`, once it is known to be a bounded, three-part compact JWS that names no
/// critical extension (RFC 7515 §4.1.11: none is understood here).
pub(crate) fn header(token: &str, max_len: usize, invalid: fn(&str) -> Error) -> Result<Header> {
    // Rule 45: bound the input before any decoding.
    if token.len() > max_len {
        return Err(invalid("longer than the crate accepts"));
    }
    match token.split('.').count() {
        3 => {}
        5 => return Err(invalid("encrypted (JWE), which is not supported")),
        _ => return Err(invalid("not a compact JWS")),
    }
    let header =
        jsonwebtoken::decode_header(token).map_err(|_| invalid("the header cannot be decoded"))?;
    if header.crit.is_some() {
        return Err(invalid(
            "the header names critical extensions (crit) this client does not implement",
        ));
    }
    Ok(header)
}

/// The claims of `token` once its signature verifies with `key` under `alg`. Nothing else is
/// checked here: times, issuer and audience are the caller's, on the client's clock.
pub(crate) fn verify(
    token: &str,
    alg: Algorithm,
    key: &DecodingKey,
    invalid: fn(&str) -> Error,
) -> Result<Map<String, Value>> {
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation)
        .map(|data| data.claims)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                invalid("the signature does not verify")
            }
            _ => invalid("the token cannot be verified"),
        })
}

/// Finds the key for `kid` in `keys`; `None` when there is none. Without a `kid` only a set of
/// one key will do; a key that names its algorithm must name `alg`.
pub(crate) fn pick(
    keys: &JwkSet,
    kid: Option<&str>,
    alg: Algorithm,
    invalid: fn(&str) -> Error,
) -> Result<Option<DecodingKey>> {
    let jwk = match kid {
        Some(kid) => keys.find(kid),
        None if keys.keys.len() == 1 => keys.keys.first(),
        None => {
            return Err(invalid(
                "the token names no kid and the issuer has several keys",
            ));
        }
    };
    let Some(jwk) = jwk else {
        return Ok(None);
    };
    if let Some(key_alg) = jwk.common.key_algorithm
        && Algorithm::try_from(key_alg).ok() != Some(alg)
    {
        return Err(invalid("the token's alg is not its key's algorithm"));
    }
    DecodingKey::from_jwk(jwk)
        .map(Some)
        .map_err(|_| invalid("the issuer's key cannot be used"))
}

/// The NumericDate claim `name`: seconds since 1970, not before it; `None` when absent. A value
/// too far ahead to represent (1e300, 2^64) saturates rather than panicking (SECURITY.md rule
/// 46): for `exp` it is then simply far away, for `iat` and `nbf` in the future.
pub(crate) fn numeric_date(
    claims: &Map<String, Value>,
    name: &str,
    invalid: fn(&str) -> Error,
) -> Result<Option<SystemTime>> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_f64()
            .filter(|t| t.is_finite() && *t >= 0.0)
            // `as` saturates: 1e300 becomes u64::MAX.
            .map(|t| Some(time_after(UNIX_EPOCH, Duration::from_secs(t as u64))))
            .ok_or_else(|| invalid(&format!("{name} is not a time after 1970"))),
    }
}

/// The `aud` claim as a list: a string or an array of strings.
pub(crate) fn audience(claims: &Map<String, Value>) -> Option<Vec<String>> {
    match claims.get("aud") {
        Some(Value::String(a)) => Some(vec![a.clone()]),
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        ),
        _ => None,
    }
}
