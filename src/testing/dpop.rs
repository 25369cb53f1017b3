//! Checking DPoP proofs (RFC 9449 §4.3) at the token endpoint and the protected resource, on
//! the server's own terms: the signature through jsonwebtoken with the proof's embedded key,
//! the thumbprint (RFC 7638), `ath` and the time window computed here, against the server's
//! clock. Nothing of the crate's client side is used, so the server is an independent judge of
//! the proofs the client makes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, Method};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::RecordedProof;
use super::state::{NoRandomness, Shared, random_token};

/// The `DPoP` request header and the `DPoP-Nonce` response header.
pub(super) const DPOP: HeaderName = HeaderName::from_static("dpop");
pub(super) const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// The signature algorithms the server accepts in proofs, as challenges list them.
pub(super) const ALGS: &str = "ES256 EdDSA PS256";

/// What a request must match: its method, its URL (query and fragment are ignored), and for a
/// resource request the access token the proof must hash into `ath`.
pub(super) struct Expect<'a> {
    pub(super) method: &'a Method,
    pub(super) url: &'a str,
    pub(super) access_token: Option<&'a str>,
    /// The nonce the proof must carry, when the server demands one.
    pub(super) nonce: Option<&'a str>,
}

/// Why a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The proof is missing, malformed or does not fit the request: `invalid_dpop_proof`.
    Invalid(&'static str),
    /// The proof is fine but lacks the current nonce: `use_dpop_nonce`.
    Nonce,
}

impl Refusal {
    pub(super) fn description(&self) -> &'static str {
        match self {
            Self::Invalid(why) => why,
            Self::Nonce => "the proof must carry the server's current DPoP nonce",
        }
    }
}

/// What the request's `DPoP` headers said and whether the proof passed; `None` when there was
/// no `DPoP` header. On success the key's thumbprint comes with it.
pub(super) fn check(
    shared: &Shared,
    headers: &HeaderMap,
    expect: &Expect<'_>,
) -> Option<(RecordedProof, Result<String, Refusal>)> {
    let values: Vec<&HeaderValue> = headers.get_all(DPOP).iter().collect();
    let value = match values.as_slice() {
        [] => return None,
        [one] => one.to_str().unwrap_or(""),
        _ => {
            let refusal = Refusal::Invalid("more than one DPoP header");
            return Some((RecordedProof::refused(&refusal), Err(refusal)));
        }
    };
    let mut record = RecordedProof::read(value);
    let outcome = verify(shared, value, expect).and_then(|(jkt, jti, iat)| {
        // Only a proof that passed everything else may spend its `jti`.
        let mut state = shared.lock();
        let now = shared.config.clock.now_utc();
        let window = shared.config.dpop_iat_window;
        state
            .seen_proofs
            .retain(|_, iat| now.duration_since(*iat).unwrap_or_default() <= window * 2);
        if state.seen_proofs.contains_key(&jti) {
            return Err(Refusal::Invalid("the proof's jti was used before (replay)"));
        }
        state.seen_proofs.insert(jti, iat);
        Ok(jkt)
    });
    if let Err(refusal) = &outcome {
        record.problem = Some(refusal.description().to_owned());
    }
    Some((record, outcome))
}

/// Everything but the replay check; returns the thumbprint, the `jti` and the `iat`.
fn verify(
    shared: &Shared,
    proof: &str,
    expect: &Expect<'_>,
) -> Result<(String, String, SystemTime), Refusal> {
    let header = unverified_header(proof).ok_or(Refusal::Invalid("the proof is not a JWS"))?;
    if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err(Refusal::Invalid("the proof's typ is not dpop+jwt"));
    }
    let (algorithm, kty, crv) = match header.get("alg").and_then(Value::as_str) {
        Some("ES256") => (Algorithm::ES256, "EC", Some("P-256")),
        Some("EdDSA") => (Algorithm::EdDSA, "OKP", Some("Ed25519")),
        Some("PS256") => (Algorithm::PS256, "RSA", None),
        _ => {
            return Err(Refusal::Invalid(
                "the proof's alg is not one of ES256, EdDSA, PS256",
            ));
        }
    };
    let Some(Value::Object(jwk)) = header.get("jwk") else {
        return Err(Refusal::Invalid("the proof has no jwk"));
    };
    const PRIVATE: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
    if PRIVATE.iter().any(|member| jwk.contains_key(*member)) {
        return Err(Refusal::Invalid(
            "the proof's jwk holds private key material",
        ));
    }
    if jwk.get("kty").and_then(Value::as_str) != Some(kty)
        || crv.is_some_and(|crv| jwk.get("crv").and_then(Value::as_str) != Some(crv))
    {
        return Err(Refusal::Invalid("the proof's jwk does not fit its alg"));
    }
    let jkt = thumbprint(jwk).ok_or(Refusal::Invalid("the proof's jwk is incomplete"))?;
    let key = serde_json::from_value::<Jwk>(Value::Object(jwk.clone()))
        .ok()
        .and_then(|jwk| DecodingKey::from_jwk(&jwk).ok())
        .ok_or(Refusal::Invalid(
            "the proof's jwk is not a usable public key",
        ))?;
    let mut validation = Validation::new(algorithm);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Map<String, Value>>(proof, &key, &validation)
        .map_err(|_| Refusal::Invalid("the proof's signature does not verify with its jwk"))?
        .claims;

    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|jti| !jti.is_empty())
        .ok_or(Refusal::Invalid("the proof has no jti"))?;
    if claims.get("htm").and_then(Value::as_str) != Some(expect.method.as_str()) {
        return Err(Refusal::Invalid(
            "the proof's htm is not the request's method",
        ));
    }
    let htu = claims
        .get("htu")
        .and_then(Value::as_str)
        .ok_or(Refusal::Invalid("the proof has no htu"))?;
    if without_query(htu).is_none() || without_query(htu) != without_query(expect.url) {
        return Err(Refusal::Invalid("the proof's htu is not the request's URL"));
    }
    // A NumericDate may have a fraction (RFC 7519 §2).
    let iat = claims
        .get("iat")
        .and_then(Value::as_f64)
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .map(|since_epoch| UNIX_EPOCH + since_epoch)
        .ok_or(Refusal::Invalid("the proof has no numeric iat"))?;
    let now = shared.config.clock.now_utc();
    let skew = now
        .duration_since(iat)
        .unwrap_or_else(|ahead| ahead.duration());
    if skew > shared.config.dpop_iat_window {
        return Err(Refusal::Invalid(
            "the proof's iat is outside the server's window",
        ));
    }
    let ath = claims.get("ath").and_then(Value::as_str);
    match expect.access_token {
        Some(token) if ath != Some(access_token_hash(token).as_str()) => {
            return Err(Refusal::Invalid(
                "the proof's ath is not the hash of the access token",
            ));
        }
        _ => {}
    }
    if let Some(nonce) = expect.nonce
        && claims.get("nonce").and_then(Value::as_str) != Some(nonce)
    {
        return Err(Refusal::Nonce);
    }
    Ok((jkt, jti.to_owned(), iat))
}

/// The JOSE header, decoded without checking anything.
fn unverified_header(jwt: &str) -> Option<Map<String, Value>> {
    let mut parts = jwt.split('.');
    let header = parts.next()?;
    if parts.count() != 2 {
        return None;
    }
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()
}

/// The claims, decoded without checking anything.
fn unverified_claims(jwt: &str) -> Option<Map<String, Value>> {
    let claims = jwt.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()
}

/// The URL without query and fragment, normalised by parsing (`HTTP://Host:80/` and
/// `http://host/` are the same); `None` when it is no absolute URL.
fn without_query(url: &str) -> Option<String> {
    let mut url = url::Url::parse(url).ok()?;
    url.set_query(None);
    url.set_fragment(None);
    Some(url.into())
}

/// The JWK SHA-256 thumbprint (RFC 7638): the required members in lexicographic order, no
/// whitespace, hashed, base64url.
pub(super) fn thumbprint(jwk: &Map<String, Value>) -> Option<String> {
    let members: &[&str] = match jwk.get("kty")?.as_str()? {
        "EC" => &["crv", "kty", "x", "y"],
        "OKP" => &["crv", "kty", "x"],
        "RSA" => &["e", "kty", "n"],
        _ => return None,
    };
    let mut canonical = Map::new();
    for member in members {
        canonical.insert(
            (*member).to_owned(),
            Value::String(jwk.get(*member)?.as_str()?.to_owned()),
        );
    }
    // serde_json's map keeps keys sorted, and strings are escaped as RFC 7638 §3.3 expects.
    let json = Value::Object(canonical).to_string();
    Some(URL_SAFE_NO_PAD.encode(Sha256::digest(json.as_bytes())))
}

/// `ath`: base64url of the SHA-256 of the access token's ASCII (RFC 9449 §4.2).
pub(super) fn access_token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

impl RecordedProof {
    /// What a proof says, read without verifying it, for the records.
    pub(super) fn read(proof: &str) -> Self {
        let header = unverified_header(proof).unwrap_or_default();
        let claims = unverified_claims(proof).unwrap_or_default();
        let text = |map: &Map<String, Value>, name: &str| {
            map.get(name).and_then(Value::as_str).map(str::to_owned)
        };
        Self {
            alg: text(&header, "alg"),
            jkt: match header.get("jwk") {
                Some(Value::Object(jwk)) => thumbprint(jwk),
                _ => None,
            },
            htm: text(&claims, "htm"),
            htu: text(&claims, "htu"),
            jti: text(&claims, "jti"),
            ath: text(&claims, "ath"),
            nonce: text(&claims, "nonce"),
            iat: claims.get("iat").and_then(Value::as_u64),
            problem: None,
        }
    }

    fn refused(refusal: &Refusal) -> Self {
        Self {
            alg: None,
            jkt: None,
            htm: None,
            htu: None,
            jti: None,
            ath: None,
            nonce: None,
            iat: None,
            problem: Some(refusal.description().to_owned()),
        }
    }
}

/// A server nonce and how many accepted proofs have used it.
#[derive(Debug, Default)]
pub(super) struct Nonce {
    pub(super) value: String,
    pub(super) uses: u32,
}

impl Nonce {
    pub(super) fn fresh() -> Result<Self, NoRandomness> {
        Ok(Self {
            value: random_token("n")?,
            uses: 0,
        })
    }

    /// Counts one accepted proof; after `limit` uses the nonce is replaced.
    pub(super) fn used(&mut self, limit: Option<u32>) {
        self.uses += 1;
        if limit.is_some_and(|limit| self.uses >= limit) {
            self.rotate();
        }
    }

    pub(super) fn rotate(&mut self) {
        // Without randomness the old nonce stays: tests then see no rotation, nothing worse.
        if let Ok(fresh) = Self::fresh() {
            *self = fresh;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_matches_rfc_7638_section_3_1() {
        let jwk: Map<String, Value> = serde_json::from_str(
            r#"{"kty":"RSA","e":"AQAB","alg":"RS256","kid":"2011-04-29","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}"#,
        )
        .unwrap_or_default();
        assert_eq!(
            thumbprint(&jwk).as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
    }

    #[test]
    fn access_token_hash_is_base64url_sha256() {
        // RFC 9449 §7.1's example token and its ath.
        assert_eq!(
            access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }

    #[test]
    fn htu_comparison_ignores_query_fragment_and_case() {
        assert_eq!(
            without_query("HTTP://Example.com:80/a?x=1#f"),
            without_query("http://example.com/a")
        );
        assert_ne!(
            without_query("http://example.com/a"),
            without_query("http://example.com/b")
        );
        assert_eq!(without_query("/relative"), None);
    }
}
