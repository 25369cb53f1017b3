//! DPoP keys and the proofs they sign (RFC 9449 §4).
//!
//! A [`DpopKey`] holds an aws-lc-rs key pair together with everything a proof needs that never
//! changes: the public JWK, its RFC 7638 thumbprint and the base64url protected header. A proof
//! is then one small JSON payload, one base64 pass and one signature.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING,
    ECDSA_P521_SHA512_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PSS_SHA256,
    RsaKeyPair, RsaPublicKeyComponents, Signature,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The largest PEM document accepted (an 8192-bit RSA key is well under it), as for
/// [`SigningKey`](crate::jwt::SigningKey).
const MAX_PEM_BYTES: usize = 32 * 1024;
/// The largest PKCS#8 DER document accepted (an 8192-bit RSA key takes about 4.8 KiB).
const MAX_DER_BYTES: usize = 16 * 1024;
/// The smallest RSA modulus accepted for PS256, in bits (RFC 7518 §3.5).
const MIN_RSA_BITS: usize = 2048;
/// Random bytes in a proof's `jti`: 128 bits, above the 96 RFC 9449 §4.2 asks for.
const JTI_BYTES: usize = 16;
/// The length of a `jti` in base64url.
const JTI_LEN: usize = 22;
/// The length of an `ath` (a SHA-256 digest) in base64url.
const ATH_LEN: usize = 43;

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";

/// The key types a DPoP key may have, for error messages.
const KEY_TYPES: &str = "a P-256 key (ES256), an Ed25519 key (EdDSA) or an RSA key of 2048 bits \
                         or more (PS256)";

/// The algorithms a [`DpopKey`] signs with. All three are asymmetric; there is no `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DpopAlg {
    /// ECDSA on P-256 with SHA-256 (the default).
    ES256,
    /// Ed25519.
    EdDSA,
    /// RSASSA-PSS with SHA-256 and a 2048-bit (or larger, when loaded) RSA key.
    PS256,
}

impl DpopAlg {
    /// The JWS `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
            Self::PS256 => "PS256",
        }
    }

    /// The algorithm with this JWS name (exact match), if this crate signs with it.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "ES256" => Some(Self::ES256),
            "EdDSA" | "Ed25519" => Some(Self::EdDSA),
            "PS256" => Some(Self::PS256),
            _ => None,
        }
    }
}

impl fmt::Display for DpopAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A DPoP private key with its public JWK and thumbprint. Cheap to clone (shared).
///
/// `Debug` shows the algorithm and the thumbprint only, never key material.
///
/// ```
/// use oauth_layer::dpop::{DpopAlg, DpopKey};
///
/// let key = DpopKey::generate(DpopAlg::ES256)?;
/// let proof = key.proof("GET", "https://api.example/items?page=2", 1_700_000_000, None, None)?;
/// assert_eq!(proof.split('.').count(), 3);
/// assert_eq!(key.public_jwk()["kty"], "EC");
/// assert_eq!(key.thumbprint().len(), 43);
/// # Ok::<(), oauth_layer::Error>(())
/// ```
#[derive(Clone)]
pub struct DpopKey {
    inner: Arc<KeyInner>,
}

struct KeyInner {
    alg: DpopAlg,
    signer: Signer,
    /// The private key as given or generated, for stores (only the persistent ones read it).
    #[cfg_attr(
        not(any(
            feature = "file-store",
            feature = "redis-store",
            feature = "keyring-store"
        )),
        allow(dead_code)
    )]
    pkcs8: Zeroizing<Vec<u8>>,
    jwk: Map<String, Value>,
    thumbprint: String,
    /// `base64url({"typ":"dpop+jwt","alg":…,"jwk":…})`: the same in every proof.
    header: String,
}

/// A signature: on the stack for ECDSA and Ed25519 (64 bytes each), as long as the modulus for
/// RSA.
enum SignatureBytes {
    Fixed([u8; 64]),
    Rsa(Vec<u8>),
}

impl SignatureBytes {
    fn fixed(signature: &Signature) -> Result<Self> {
        let bytes = signature
            .as_ref()
            .try_into()
            .map_err(|_| Error::Internal("dpop: a signature of an unexpected length".into()))?;
        Ok(Self::Fixed(bytes))
    }
}

impl AsRef<[u8]> for SignatureBytes {
    fn as_ref(&self) -> &[u8] {
        match self {
            Self::Fixed(signature) => signature,
            Self::Rsa(signature) => signature,
        }
    }
}

/// The key pair, by algorithm.
enum Signer {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
    Ps256(RsaKeyPair),
}

impl Signer {
    fn alg(&self) -> DpopAlg {
        match self {
            Self::Es256(_) => DpopAlg::ES256,
            Self::EdDsa(_) => DpopAlg::EdDSA,
            Self::Ps256(_) => DpopAlg::PS256,
        }
    }

    /// The length of a signature in bytes.
    fn signature_len(&self) -> usize {
        match self {
            Self::Es256(_) => 64,
            Self::EdDsa(_) => 64,
            Self::Ps256(pair) => pair.public_modulus_len(),
        }
    }

    /// The JWS signature of `message`.
    fn sign(&self, message: &[u8]) -> Result<SignatureBytes> {
        let failed = |_| Error::Internal("dpop: signing the proof failed".into());
        match self {
            // JWS wants the fixed-size `r || s` form, which the FIXED algorithm gives.
            Self::Es256(pair) => {
                SignatureBytes::fixed(&pair.sign(&SystemRandom::new(), message).map_err(failed)?)
            }
            Self::EdDsa(pair) => SignatureBytes::fixed(&pair.try_sign(message).map_err(failed)?),
            Self::Ps256(pair) => {
                let mut signature = vec![0u8; pair.public_modulus_len()];
                pair.sign(
                    &RSA_PSS_SHA256,
                    &SystemRandom::new(),
                    message,
                    &mut signature,
                )
                .map_err(failed)?;
                Ok(SignatureBytes::Rsa(signature))
            }
        }
    }

    /// The public key as a JWK with only the members RFC 7518 §6 defines for public keys.
    fn public_jwk(&self) -> Map<String, Value> {
        let b64 = |bytes: &[u8]| Value::String(URL_SAFE_NO_PAD.encode(bytes));
        let mut jwk = Map::new();
        match self {
            Self::Es256(pair) => {
                // The uncompressed point, the only form aws-lc-rs gives: 0x04 || x || y, 32
                // bytes each on P-256.
                let point = pair.public_key().as_ref();
                let (x, y) = point[1..].split_at(32);
                jwk.insert("kty".into(), "EC".into());
                jwk.insert("crv".into(), "P-256".into());
                jwk.insert("x".into(), b64(x));
                jwk.insert("y".into(), b64(y));
            }
            Self::EdDsa(pair) => {
                jwk.insert("kty".into(), "OKP".into());
                jwk.insert("crv".into(), "Ed25519".into());
                jwk.insert("x".into(), b64(pair.public_key().as_ref()));
            }
            Self::Ps256(pair) => {
                // Big-endian without leading zeros, as RFC 7518 §6.3.1 wants.
                let parts = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                jwk.insert("kty".into(), "RSA".into());
                jwk.insert("n".into(), b64(&parts.n));
                jwk.insert("e".into(), b64(&parts.e));
            }
        }
        jwk
    }
}

impl DpopKey {
    /// A new random key for `alg` (PS256: a 2048-bit RSA key, which takes a moment to make).
    pub fn generate(alg: DpopAlg) -> Result<Self> {
        let failed = |_| Error::Internal(format!("dpop: generating a {alg} key failed"));
        let rng = SystemRandom::new();
        match alg {
            DpopAlg::ES256 => {
                let document = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(failed)?;
                let pair =
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, document.as_ref())
                        .map_err(|_| Error::Internal("dpop: a generated key is unusable".into()))?;
                Self::new(Signer::Es256(pair), document.as_ref())
            }
            DpopAlg::EdDSA => {
                let document = Ed25519KeyPair::generate_pkcs8(&rng).map_err(failed)?;
                let pair = Ed25519KeyPair::from_pkcs8(document.as_ref())
                    .map_err(|_| Error::Internal("dpop: a generated key is unusable".into()))?;
                Self::new(Signer::EdDsa(pair), document.as_ref())
            }
            DpopAlg::PS256 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(failed)?;
                let document = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'static>>::as_der(&pair)
                    .map_err(failed)?;
                Self::new(Signer::Ps256(pair), document.as_ref())
            }
        }
    }

    /// A key from a PKCS#8 document (DER); the algorithm follows from the key type (P-256: ES256,
    /// Ed25519: EdDSA, RSA: PS256).
    ///
    /// Ed25519 keys may be PKCS#8 v1 (what `openssl genpkey` writes) or v2. Another curve
    /// (P-384, P-521), an RSA key under 2048 bits or anything else is an
    /// [`Error::Config`](crate::Error::Config); the error never contains key material.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self> {
        if der.len() > MAX_DER_BYTES {
            return Err(Error::config(format!(
                "dpop: the PKCS#8 document is larger than {MAX_DER_BYTES} bytes; expected {KEY_TYPES}"
            )));
        }
        if let Ok(pair) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
            return Self::new(Signer::Es256(pair), der);
        }
        if let Ok(pair) = Ed25519KeyPair::from_pkcs8(der) {
            return Self::new(Signer::EdDsa(pair), der);
        }
        match RsaKeyPair::from_pkcs8(der) {
            Ok(pair) if pair.public_modulus_len() * 8 >= MIN_RSA_BITS => {
                return Self::new(Signer::Ps256(pair), der);
            }
            Ok(pair) => return Err(rsa_too_small(pair.public_modulus_len() * 8)),
            Err(rejected) if rejected.description_() == "TooSmall" => {
                return Err(rsa_too_small(0));
            }
            Err(_) => {}
        }
        for (curve, alg) in [
            ("P-384", &ECDSA_P384_SHA384_FIXED_SIGNING),
            ("P-521", &ECDSA_P521_SHA512_FIXED_SIGNING),
        ] {
            if EcdsaKeyPair::from_pkcs8(alg, der).is_ok() {
                return Err(Error::config(format!(
                    "dpop: the key is a {curve} key, which DPoP keys here cannot be; expected \
                     {KEY_TYPES}"
                )));
            }
        }
        Err(Error::config(format!(
            "dpop: not an unencrypted PKCS#8 private key of a usable type; expected {KEY_TYPES}"
        )))
    }

    /// A key from a PEM `PRIVATE KEY` (PKCS#8) document, as `openssl genpkey` writes it.
    ///
    /// Other PEM labels (`EC PRIVATE KEY`, `RSA PRIVATE KEY`, `ENCRYPTED PRIVATE KEY`) are
    /// refused with a hint to convert them (`openssl pkcs8 -topk8 -nocrypt`); documents over
    /// 32 KiB are refused unread. See [`from_pkcs8_der`](Self::from_pkcs8_der) for the key types.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self> {
        let der = pem_body(pem)?;
        Self::from_pkcs8_der(&der)
    }

    fn new(signer: Signer, pkcs8: &[u8]) -> Result<Self> {
        let alg = signer.alg();
        let jwk = signer.public_jwk();
        let thumbprint = jwk_thumbprint(&jwk)?;
        let jwk_json = serde_json::to_string(&jwk)
            .map_err(|_| Error::Internal("dpop: cannot serialize the JWK".into()))?;
        let header_json = format!(r#"{{"typ":"dpop+jwt","alg":"{alg}","jwk":{jwk_json}}}"#);
        Ok(Self {
            inner: Arc::new(KeyInner {
                alg,
                signer,
                pkcs8: Zeroizing::new(pkcs8.to_vec()),
                jwk,
                thumbprint,
                header: URL_SAFE_NO_PAD.encode(header_json),
            }),
        })
    }

    /// The algorithm this key signs with.
    pub fn alg(&self) -> DpopAlg {
        self.inner.alg
    }

    /// The key's JWK SHA-256 thumbprint (RFC 7638), base64url without padding: what a server
    /// puts in a bound token's `cnf.jkt`, and what `dpop_jkt` carries.
    pub fn thumbprint(&self) -> &str {
        &self.inner.thumbprint
    }

    /// The public key as a JWK (only public members: `kty`, `crv`, `x`, `y` for P-256; `kty`,
    /// `crv`, `x` for Ed25519; `kty`, `n`, `e` for RSA).
    pub fn public_jwk(&self) -> &Map<String, Value> {
        &self.inner.jwk
    }

    /// A proof for one request: `htm` = `method`, `htu` = `url` without its query and fragment,
    /// `iat` = `issued_at` (seconds since the Unix epoch), a fresh random `jti`, `ath` when
    /// `access_token` is given (resource requests), and `nonce` when given.
    ///
    /// It costs one signature and about a microsecond around it (`benches/dpop.rs`); make a
    /// fresh one for every request and every retry.
    pub fn proof(
        &self,
        method: &str,
        url: &str,
        issued_at: u64,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<String> {
        let mut ath = [0u8; ATH_LEN];
        let ath = match access_token {
            Some(token) => {
                encode_exact(
                    digest::digest(&digest::SHA256, token.as_bytes()).as_ref(),
                    &mut ath,
                )?;
                Some(&ath[..])
            }
            None => None,
        };
        self.sign_proof(method, url, issued_at, ath, nonce)
    }

    /// [`proof`](Self::proof) for a resource request whose token's `ath` is already known (a
    /// bound [`Token`](crate::Token) computes it once).
    pub(crate) fn proof_with_ath(
        &self,
        method: &str,
        url: &str,
        issued_at: u64,
        ath: &str,
        nonce: Option<&str>,
    ) -> Result<String> {
        self.sign_proof(method, url, issued_at, Some(ath.as_bytes()), nonce)
    }

    fn sign_proof(
        &self,
        method: &str,
        url: &str,
        issued_at: u64,
        ath: Option<&[u8]>,
        nonce: Option<&str>,
    ) -> Result<String> {
        let inner = &*self.inner;
        let htu = url.find(['?', '#']).map_or(url, |end| &url[..end]);

        let mut random = [0u8; JTI_BYTES];
        getrandom::fill(&mut random)
            .map_err(|e| Error::Internal(format!("no system randomness: {e}")))?;
        let mut jti = [0u8; JTI_LEN];
        encode_exact(&random, &mut jti)?;

        // Names and the base64url values need no escaping; the caller's strings go through
        // serde_json.
        let mut payload =
            Vec::with_capacity(96 + method.len() + htu.len() + nonce.map_or(0, |n| n.len() + 12));
        payload.extend_from_slice(br#"{"jti":""#);
        payload.extend_from_slice(&jti);
        payload.extend_from_slice(br#"","htm":"#);
        json_string(&mut payload, method)?;
        payload.extend_from_slice(br#","htu":"#);
        json_string(&mut payload, htu)?;
        payload.extend_from_slice(br#","iat":"#);
        payload.extend_from_slice(itoa_u64(issued_at, &mut [0u8; 20]));
        if let Some(ath) = ath {
            // base64url: nothing to escape.
            payload.extend_from_slice(br#","ath":""#);
            payload.extend_from_slice(ath);
            payload.push(b'"');
        }
        if let Some(nonce) = nonce {
            payload.extend_from_slice(br#","nonce":"#);
            json_string(&mut payload, nonce)?;
        }
        payload.push(b'}');

        let b64_len = |n: usize| n.div_ceil(3) * 4;
        let mut proof = String::with_capacity(
            inner.header.len() + 2 + b64_len(payload.len()) + b64_len(inner.signer.signature_len()),
        );
        proof.push_str(&inner.header);
        proof.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut proof);
        let signature = inner.signer.sign(proof.as_bytes())?;
        proof.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut proof);
        Ok(proof)
    }

    /// The private key as a PKCS#8 DER document, for stores (which seal it when they encrypt).
    #[cfg_attr(
        not(any(
            feature = "file-store",
            feature = "redis-store",
            feature = "keyring-store"
        )),
        allow(dead_code)
    )]
    pub(crate) fn to_pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.inner.pkcs8.to_vec())
    }
}

fn rsa_too_small(bits: usize) -> Error {
    let size = if bits == 0 {
        "under 2048 bits".to_owned()
    } else {
        format!("{bits} bits")
    };
    Error::config(format!(
        "dpop: the RSA key is {size}; PS256 keys need at least {MIN_RSA_BITS} bits"
    ))
}

/// The DER body of a PEM `PRIVATE KEY` document. Errors say what is wrong with the document,
/// never what it contains.
fn pem_body(pem: &str) -> Result<Zeroizing<Vec<u8>>> {
    if pem.len() > MAX_PEM_BYTES {
        return Err(Error::config(format!(
            "dpop: the PEM document is larger than {MAX_PEM_BYTES} bytes"
        )));
    }
    let Some(start) = pem.find(PEM_BEGIN) else {
        let hint = if pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            "an encrypted key; decrypt it with `openssl pkcs8 -in key.pem -out plain.pem`"
        } else if pem.contains("-----BEGIN EC PRIVATE KEY-----")
            || pem.contains("-----BEGIN RSA PRIVATE KEY-----")
        {
            "a key in its legacy format; convert it with `openssl pkcs8 -topk8 -nocrypt -in \
             key.pem -out pkcs8.pem`"
        } else {
            "no `-----BEGIN PRIVATE KEY-----` line"
        };
        return Err(Error::config(format!(
            "dpop: not a PEM PKCS#8 private key: {hint}"
        )));
    };
    let body_start = start + PEM_BEGIN.len();
    let Some(len) = pem[body_start..].find(PEM_END) else {
        return Err(Error::config(
            "dpop: the PEM private key has no `-----END PRIVATE KEY-----` line",
        ));
    };
    let body = &pem[body_start..body_start + len];
    let text: Zeroizing<Vec<u8>> =
        Zeroizing::new(body.bytes().filter(|b| !b.is_ascii_whitespace()).collect());
    // base64's error names the offending byte, which is key material: it is not passed on.
    STANDARD
        .decode(&*text)
        .map(Zeroizing::new)
        .map_err(|_| Error::config("dpop: the PEM private key's body is not valid base64"))
}

/// The JWK SHA-256 thumbprint of `jwk` (RFC 7638 §3): the SHA-256 of the JSON object of the
/// required members of its key type, in lexicographic order, without whitespace; base64url.
pub(crate) fn jwk_thumbprint(jwk: &Map<String, Value>) -> Result<String> {
    let members: &[&str] = match jwk.get("kty").and_then(Value::as_str) {
        Some("EC") => &["crv", "kty", "x", "y"],
        Some("OKP") => &["crv", "kty", "x"],
        Some("RSA") => &["e", "kty", "n"],
        Some("oct") => &["k", "kty"],
        _ => return Err(Error::config("jwk: no known `kty`, so no thumbprint")),
    };
    let mut canonical = Vec::with_capacity(512);
    canonical.push(b'{');
    for (i, name) in members.iter().enumerate() {
        let Some(value) = jwk.get(*name).and_then(Value::as_str) else {
            return Err(Error::config(format!(
                "jwk: the member `{name}` is missing or not a string"
            )));
        };
        if i > 0 {
            canonical.push(b',');
        }
        json_string(&mut canonical, name)?;
        canonical.push(b':');
        json_string(&mut canonical, value)?;
    }
    canonical.push(b'}');
    Ok(URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, &canonical)))
}

/// `ath`: the base64url SHA-256 of an access token (RFC 9449 §4.2).
pub(crate) fn access_token_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, access_token.as_bytes()))
}

/// Appends `value` as a JSON string (quoted and escaped).
fn json_string(out: &mut Vec<u8>, value: &str) -> Result<()> {
    serde_json::to_writer(out, value)
        .map_err(|_| Error::Internal("dpop: cannot write a JSON string".into()))
}

/// Base64url of `input` into exactly `out` (whose length is the encoded length).
fn encode_exact(input: &[u8], out: &mut [u8]) -> Result<()> {
    match URL_SAFE_NO_PAD.encode_slice(input, out) {
        Ok(n) if n == out.len() => Ok(()),
        _ => Err(Error::Internal("dpop: base64 length mismatch".into())),
    }
}

/// The decimal digits of `n`, written at the end of `buf`.
fn itoa_u64(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("alg", &self.inner.alg)
            .field("thumbprint", &self.thumbprint())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use jsonwebtoken::{DecodingKey, Validation, jwk::Jwk};

    use super::*;

    const ALGS: [DpopAlg; 3] = [DpopAlg::ES256, DpopAlg::EdDSA, DpopAlg::PS256];

    const P256_PEM: &str = include_str!("../../tests/test_keys/dpop_p256.pem");
    /// The public point of `P256_PEM`, from `openssl pkey -pubout`.
    const P256_X: &str = "_uTsVjAVjcKJdl5gJ7IdZeL7LgQ2BhfGxqstPMLLl5Q";
    const P256_Y: &str = "_-i-Kz4-N16OkZ-kGnERr-KEriiCpqg22umeXZ_ih54";
    const ED25519_PEM: &str = include_str!("../../tests/test_keys/dpop_ed25519.pem");
    /// The public key of `ED25519_PEM`, from `openssl pkey -pubout`.
    const ED25519_X: &str = "yyHPQ7n0R1kzAgteMCugNz35J0pqpYlQVB29jcL1psY";
    const P384_PEM: &str = include_str!("../../tests/test_keys/dpop_p384.pem");
    const RSA_1024_PEM: &str = include_str!("../../tests/test_keys/dpop_rsa1024.pem");

    fn jose(alg: DpopAlg) -> jsonwebtoken::Algorithm {
        match alg {
            DpopAlg::ES256 => jsonwebtoken::Algorithm::ES256,
            DpopAlg::EdDSA => jsonwebtoken::Algorithm::EdDSA,
            DpopAlg::PS256 => jsonwebtoken::Algorithm::PS256,
        }
    }

    fn b64_json(segment: &str) -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
    }

    /// Verifies `proof` the way a server does, with nothing but the proof itself: the key is
    /// the JWK in its header. Returns the header and the claims.
    fn verify(proof: &str, alg: DpopAlg) -> (Value, Value) {
        let segments: Vec<&str> = proof.split('.').collect();
        assert_eq!(segments.len(), 3, "a compact JWS");
        let header = b64_json(segments[0]);
        let jwk: Jwk = serde_json::from_value(header["jwk"].clone()).unwrap();
        let key = DecodingKey::from_jwk(&jwk).unwrap();
        let mut validation = Validation::new(jose(alg));
        validation.required_spec_claims = HashSet::new();
        validation.validate_exp = false;
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<Value>(proof, &key, &validation)
            .unwrap_or_else(|e| panic!("{alg} proof does not verify: {e}"))
            .claims;
        (header, claims)
    }

    #[test]
    fn every_algorithm_signs_proofs_a_server_verifies_from_the_header_alone() {
        for alg in ALGS {
            let key = DpopKey::generate(alg).unwrap();
            assert_eq!(key.alg(), alg);
            let proof = key
                .proof(
                    "POST",
                    "https://api.example/items?page=2#top",
                    1_700_000_000,
                    Some("an-access-token"),
                    Some("server-nonce-1"),
                )
                .unwrap();
            let (header, claims) = verify(&proof, alg);

            let header = header.as_object().unwrap();
            assert_eq!(header.len(), 3, "{alg}: {header:?}");
            assert_eq!(header["typ"], "dpop+jwt");
            assert_eq!(header["alg"], alg.as_str());
            assert_eq!(header["jwk"].as_object().unwrap(), key.public_jwk());
            assert_eq!(
                jwk_thumbprint(header["jwk"].as_object().unwrap()).unwrap(),
                key.thumbprint()
            );

            let claims = claims.as_object().unwrap();
            assert_eq!(claims.len(), 6, "{alg}: {claims:?}");
            let jti = claims["jti"].as_str().unwrap();
            assert!(
                URL_SAFE_NO_PAD.decode(jti).unwrap().len() * 8 >= 96,
                "{jti}"
            );
            assert_eq!(claims["htm"], "POST");
            assert_eq!(claims["htu"], "https://api.example/items");
            assert_eq!(claims["iat"], 1_700_000_000u64);
            assert_eq!(claims["ath"], access_token_hash("an-access-token"));
            assert_eq!(claims["nonce"], "server-nonce-1");
        }
    }

    #[test]
    fn a_token_request_proof_has_no_ath_and_no_nonce_unless_given() {
        let key = DpopKey::generate(DpopAlg::ES256).unwrap();
        let proof = key
            .proof("POST", "https://idp.example/token", 0, None, None)
            .unwrap();
        let (_, claims) = verify(&proof, DpopAlg::ES256);
        let mut names: Vec<&str> = claims
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["htm", "htu", "iat", "jti"]);
        assert_eq!(claims["iat"], 0);
    }

    #[test]
    fn htu_drops_the_query_and_the_fragment_at_their_first_mark() {
        let key = DpopKey::generate(DpopAlg::EdDSA).unwrap();
        for (url, htu) in [
            ("https://api.example/a/b", "https://api.example/a/b"),
            ("https://api.example/a?x=1&y=2", "https://api.example/a"),
            ("https://api.example/a#frag", "https://api.example/a"),
            ("https://api.example/a?x=1#frag", "https://api.example/a"),
            ("https://api.example/a#frag?x=1", "https://api.example/a"),
            ("https://api.example:8443/?", "https://api.example:8443/"),
        ] {
            let proof = key.proof("GET", url, 1, None, None).unwrap();
            let (_, claims) = verify(&proof, DpopAlg::EdDSA);
            assert_eq!(claims["htu"], htu, "{url}");
        }
    }

    #[test]
    fn strings_from_callers_and_servers_are_json_escaped() {
        let key = DpopKey::generate(DpopAlg::ES256).unwrap();
        let nonce = "n\"o\\n\u{1}ce\u{e9}";
        let url = "https://api.example/\"quoted\"/\u{2028}";
        let proof = key
            .proof("GE\"T", url, u64::MAX, Some("t"), Some(nonce))
            .unwrap();
        let (_, claims) = verify(&proof, DpopAlg::ES256);
        assert_eq!(claims["nonce"], nonce);
        assert_eq!(claims["htm"], "GE\"T");
        assert_eq!(claims["htu"], url);
        assert_eq!(claims["iat"], u64::MAX);
    }

    #[test]
    fn every_proof_has_its_own_jti() {
        let key = DpopKey::generate(DpopAlg::ES256).unwrap();
        let jtis: HashSet<String> = (0..50)
            .map(|_| {
                let proof = key
                    .proof("GET", "https://a.example/", 1, None, None)
                    .unwrap();
                let payload = b64_json(proof.split('.').nth(1).unwrap());
                payload["jti"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(jtis.len(), 50);
    }

    #[test]
    fn the_public_jwk_has_only_public_members() {
        for (alg, members) in [
            (DpopAlg::ES256, vec!["crv", "kty", "x", "y"]),
            (DpopAlg::EdDSA, vec!["crv", "kty", "x"]),
            (DpopAlg::PS256, vec!["e", "kty", "n"]),
        ] {
            let key = DpopKey::generate(alg).unwrap();
            let jwk = key.public_jwk();
            let mut names: Vec<&str> = jwk.keys().map(String::as_str).collect();
            names.sort_unstable();
            assert_eq!(names, members, "{alg}");
        }
        let rsa = DpopKey::generate(DpopAlg::PS256).unwrap();
        assert_eq!(rsa.public_jwk()["e"], "AQAB");
        let n = URL_SAFE_NO_PAD
            .decode(rsa.public_jwk()["n"].as_str().unwrap())
            .unwrap();
        assert_eq!(n.len() * 8, 2048, "2048 bits, no leading zero");
    }

    #[test]
    fn pkcs8_round_trips_keep_the_key() {
        for alg in ALGS {
            let key = DpopKey::generate(alg).unwrap();
            let der = key.to_pkcs8_der();
            let again = DpopKey::from_pkcs8_der(&der).unwrap();
            assert_eq!(again.alg(), alg);
            assert_eq!(again.thumbprint(), key.thumbprint(), "{alg}");
            assert_eq!(again.public_jwk(), key.public_jwk());
            assert_eq!(*again.to_pkcs8_der(), *der);
            // The reloaded key signs proofs the original's JWK verifies.
            let proof = again
                .proof("GET", "https://a.example/", 1, None, None)
                .unwrap();
            let (header, _) = verify(&proof, alg);
            assert_eq!(&header["jwk"], &Value::Object(key.public_jwk().clone()));
        }
    }

    #[test]
    fn openssl_pem_keys_load_with_the_algorithm_of_their_type() {
        let p256 = DpopKey::from_pkcs8_pem(P256_PEM).unwrap();
        assert_eq!(p256.alg(), DpopAlg::ES256);
        assert_eq!(p256.public_jwk()["crv"], "P-256");
        assert_eq!(p256.public_jwk()["x"], P256_X);
        assert_eq!(p256.public_jwk()["y"], P256_Y);

        // `openssl genpkey` writes Ed25519 keys as PKCS#8 v1; generated ones are v2.
        let ed = DpopKey::from_pkcs8_pem(ED25519_PEM).unwrap();
        assert_eq!(ed.alg(), DpopAlg::EdDSA);
        assert_eq!(ed.public_jwk()["crv"], "Ed25519");
        assert_eq!(ed.public_jwk()["x"], ED25519_X);

        for key in [p256, ed] {
            let proof = key
                .proof("GET", "https://a.example/", 1, Some("t"), None)
                .unwrap();
            verify(&proof, key.alg());
        }

        let crlf = ED25519_PEM.replace('\n', "\r\n");
        assert_eq!(
            DpopKey::from_pkcs8_pem(&crlf).unwrap().public_jwk()["x"],
            ED25519_X
        );
    }

    /// The base64 body of a PEM document, on one line.
    fn pem_base64(pem: &str) -> String {
        pem.lines().filter(|l| !l.starts_with("-----")).collect()
    }

    fn config_error(result: Result<DpopKey>) -> String {
        match result {
            Err(e @ Error::Config(_)) => e.to_string(),
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    /// No 12-character run of the secret appears in `message`.
    fn assert_no_part_of(message: &str, secret: &str) {
        let secret: Vec<char> = secret.chars().collect();
        for window in secret.windows(12) {
            let part: String = window.iter().collect();
            assert!(!message.contains(&part), "{message:?} contains {part:?}");
        }
    }

    #[test]
    fn keys_of_other_types_and_garbage_are_clear_configuration_errors() {
        let p384 = config_error(DpopKey::from_pkcs8_pem(P384_PEM));
        assert!(p384.contains("P-384"), "{p384}");
        assert!(p384.contains("P-256"), "the types that work: {p384}");
        assert_no_part_of(&p384, &pem_base64(P384_PEM));

        let small = config_error(DpopKey::from_pkcs8_pem(RSA_1024_PEM));
        assert!(small.contains("2048"), "{small}");
        assert_no_part_of(&small, &pem_base64(RSA_1024_PEM));

        let body = pem_base64(P256_PEM);
        for (pem, says) in [
            ("", "BEGIN PRIVATE KEY"),
            ("garbage", "BEGIN PRIVATE KEY"),
            (
                &*format!("-----BEGIN EC PRIVATE KEY-----\n{body}\n-----END EC PRIVATE KEY-----"),
                "openssl pkcs8 -topk8",
            ),
            (
                &*format!(
                    "-----BEGIN ENCRYPTED PRIVATE KEY-----\n{body}\n-----END ENCRYPTED PRIVATE KEY-----"
                ),
                "encrypted",
            ),
            (
                &*format!("-----BEGIN PRIVATE KEY-----\n{body}\n"),
                "END PRIVATE KEY",
            ),
            (
                &*format!("-----BEGIN PRIVATE KEY-----\n{body}$\n-----END PRIVATE KEY-----"),
                "base64",
            ),
            (
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
                "PKCS#8",
            ),
            (&*"A".repeat(MAX_PEM_BYTES + 1), "larger"),
        ] {
            let message = config_error(DpopKey::from_pkcs8_pem(pem));
            assert!(message.contains(says), "{message:?} should say {says:?}");
            assert_no_part_of(&message, &body);
        }

        let der = config_error(DpopKey::from_pkcs8_der(b"\x30\x03\x02\x01\x00"));
        assert!(der.contains("PKCS#8"), "{der}");
        let huge = config_error(DpopKey::from_pkcs8_der(&vec![0x30; MAX_DER_BYTES + 1]));
        assert!(huge.contains("larger"), "{huge}");
    }

    #[test]
    fn debug_shows_the_algorithm_and_thumbprint_and_no_key_material() {
        let key = DpopKey::from_pkcs8_pem(P256_PEM).unwrap();
        let debug = format!("{key:?} {key:#?}");
        assert!(debug.contains("ES256"), "{debug}");
        assert!(debug.contains(key.thumbprint()), "{debug}");

        let der = key.to_pkcs8_der();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der).unwrap();
        let d = aws_lc_rs::encoding::AsBigEndian::<aws_lc_rs::encoding::EcPrivateKeyBin<'_>>::as_be_bytes(
            &pair.private_key(),
        )
        .unwrap();
        let d = d.as_ref();
        assert_eq!(d.len(), 32);
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        for secret in [
            STANDARD.encode(&*der),
            pem_base64(P256_PEM),
            URL_SAFE_NO_PAD.encode(d),
            STANDARD.encode(d),
            hex,
        ] {
            assert_no_part_of(&debug, &secret);
        }
        // Nor through the configuration that holds the key.
        let config = format!("{:?}", crate::dpop::Dpop::with_key(key.clone()));
        assert!(config.contains(key.thumbprint()), "{config}");
        assert_no_part_of(&config, &URL_SAFE_NO_PAD.encode(d));
        assert!(!key.public_jwk().contains_key("d"));

        for alg in [DpopAlg::EdDSA, DpopAlg::PS256] {
            let key = DpopKey::generate(alg).unwrap();
            let debug = format!("{key:#?}");
            assert_no_part_of(&debug, &STANDARD.encode(&*key.to_pkcs8_der()));
            assert_no_part_of(&debug, &URL_SAFE_NO_PAD.encode(&*key.to_pkcs8_der()));
        }
    }

    #[test]
    fn the_thumbprint_of_rfc_7638s_example_key() {
        // RFC 7638 §3.1: the RSA key of RFC 7517 appendix A.1, with members that do not count.
        let jwk = serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6\
                  tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v\
                  -65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08q\
                  NLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8aw\
                  apJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        let jwk = jwk.as_object().unwrap();
        assert_eq!(
            jwk_thumbprint(jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );

        let mut no_e = jwk.clone();
        no_e.remove("e");
        assert!(jwk_thumbprint(&no_e).is_err());
        let mut unknown = jwk.clone();
        unknown.insert("kty".into(), "XYZ".into());
        assert!(jwk_thumbprint(&unknown).is_err());
    }

    #[test]
    fn a_keys_thumbprint_is_that_of_its_public_jwk_in_canonical_form() {
        let key = DpopKey::from_pkcs8_pem(P256_PEM).unwrap();
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{P256_X}","y":"{P256_Y}"}}"#);
        assert_eq!(
            key.thumbprint(),
            URL_SAFE_NO_PAD.encode(sha2_digest(canonical.as_bytes()))
        );
        let ed = DpopKey::from_pkcs8_pem(ED25519_PEM).unwrap();
        let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{ED25519_X}"}}"#);
        assert_eq!(
            ed.thumbprint(),
            URL_SAFE_NO_PAD.encode(sha2_digest(canonical.as_bytes()))
        );
    }

    /// SHA-256 from another implementation than the one under test.
    fn sha2_digest(bytes: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        sha2::Sha256::digest(bytes).to_vec()
    }

    #[test]
    fn ath_matches_rfc_9449s_example() {
        // RFC 9449 §7.1: the access token of the example resource request and its `ath`.
        assert_eq!(
            access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
        let key = DpopKey::generate(DpopAlg::ES256).unwrap();
        let proof = key
            .proof(
                "GET",
                "https://resource.example.org/protectedresource",
                1,
                Some("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
                None,
            )
            .unwrap();
        let (_, claims) = verify(&proof, DpopAlg::ES256);
        assert_eq!(claims["ath"], "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo");
    }

    #[test]
    fn keys_are_shared_across_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<DpopKey>();
        let key = DpopKey::generate(DpopAlg::EdDSA).unwrap();
        let other = key.clone();
        let proof =
            std::thread::spawn(move || other.proof("GET", "https://a.example/", 1, None, None))
                .join()
                .unwrap()
                .unwrap();
        verify(&proof, DpopAlg::EdDSA);
    }

    #[test]
    fn algorithm_names() {
        for alg in ALGS {
            assert_eq!(DpopAlg::from_name(alg.as_str()), Some(alg));
            assert_eq!(alg.to_string(), alg.as_str());
        }
        assert_eq!(DpopAlg::from_name("es256"), None);
        assert_eq!(DpopAlg::from_name("none"), None);
        assert_eq!(DpopAlg::from_name("HS256"), None);
    }
}
