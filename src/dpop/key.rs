//! DPoP keys and the proofs they sign (RFC 9449 §4).

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

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
#[derive(Clone)]
pub struct DpopKey {
    inner: Arc<KeyInner>,
}

struct KeyInner {
    alg: DpopAlg,
    // TODO(helper): the aws-lc-rs key pair, the PKCS#8 document, the public JWK, the
    // thumbprint and the pre-encoded protected header.
}

impl DpopKey {
    /// A new random key for `alg`.
    pub fn generate(alg: DpopAlg) -> Result<Self> {
        let _ = alg;
        Err(Error::Internal("DpopKey::generate: not yet".into()))
    }

    /// A key from a PKCS#8 document (DER); the algorithm follows from the key type (P-256: ES256,
    /// Ed25519: EdDSA, RSA: PS256).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self> {
        let _ = der;
        Err(Error::config("DpopKey::from_pkcs8_der: not yet"))
    }

    /// A key from a PEM `PRIVATE KEY` (PKCS#8) document.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self> {
        let _ = pem;
        Err(Error::config("DpopKey::from_pkcs8_pem: not yet"))
    }

    /// The algorithm this key signs with.
    pub fn alg(&self) -> DpopAlg {
        self.inner.alg
    }

    /// The key's JWK SHA-256 thumbprint (RFC 7638), base64url without padding: what a server
    /// puts in a bound token's `cnf.jkt`, and what `dpop_jkt` carries.
    pub fn thumbprint(&self) -> &str {
        ""
    }

    /// The public key as a JWK (only public members).
    pub fn public_jwk(&self) -> &Map<String, Value> {
        unimplemented!()
    }

    /// A proof for one request: `htm` = `method`, `htu` = `url` without its query and fragment,
    /// `iat` = `issued_at` (seconds since the Unix epoch), a fresh random `jti`, `ath` when
    /// `access_token` is given (resource requests), and `nonce` when given.
    pub fn proof(
        &self,
        method: &str,
        url: &str,
        issued_at: u64,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<String> {
        let _ = (method, url, issued_at, access_token, nonce);
        Err(Error::Internal("DpopKey::proof: not yet".into()))
    }

    /// [`proof`](Self::proof) for a resource request whose token's `ath` is already known.
    pub(crate) fn proof_with_ath(
        &self,
        method: &str,
        url: &str,
        issued_at: u64,
        ath: &str,
        nonce: Option<&str>,
    ) -> Result<String> {
        let _ = (method, url, issued_at, ath, nonce);
        Err(Error::Internal("DpopKey::proof_with_ath: not yet".into()))
    }

    /// The private key as a PKCS#8 DER document, for stores (which seal it when they encrypt).
    pub(crate) fn to_pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(Vec::new())
    }
}

/// `ath`: the base64url SHA-256 of an access token (RFC 9449 §4.2).
pub(crate) fn access_token_hash(access_token: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(access_token))
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("alg", &self.inner.alg)
            .field("thumbprint", &self.thumbprint())
            .finish_non_exhaustive()
    }
}
