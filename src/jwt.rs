//! Signing keys and the JWT assertions made with them (RFC 7523).
//!
//! One [`SigningKey`] signs both kinds of assertion this crate sends: client assertions
//! (`private_key_jwt` and `client_secret_jwt`, see [`OAuthClientBuilder::signing_key`]) and the JWT
//! bearer grant ([`JwtBearer`](crate::flow::JwtBearer)). Every assertion gets a fresh random
//! `jti`, `iat` from the client's clock and an `exp` at most five minutes later (SECURITY.md
//! rule 41). The algorithm comes from a closed list, so an unsigned (`none`) JWT cannot be made.
//!
//! [`OAuthClientBuilder::signing_key`]: crate::OAuthClientBuilder::signing_key

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use secrecy::SecretString;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The longest lifetime of an assertion: `exp` is at most this far after `iat`. Longer requests
/// are shortened to it; a stolen assertion is useful for minutes, not hours.
pub const MAX_ASSERTION_LIFETIME: Duration = Duration::from_secs(300);

/// The largest PEM document accepted (a 8192-bit RSA key is well under it).
const MAX_PEM_BYTES: usize = 32 * 1024;

/// The JWS algorithms a [`SigningKey`] can sign with. There is no `none`: every assertion is
/// signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (what most servers and Google service accounts expect).
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
    /// HMAC with SHA-256 over a shared secret (`client_secret_jwt`).
    HS256,
}

impl Algorithm {
    /// The `alg` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
            Self::HS256 => "HS256",
        }
    }

    /// `true` for a shared-secret (HMAC) algorithm, which `private_key_jwt` must not use.
    pub fn is_symmetric(self) -> bool {
        self == Self::HS256
    }

    pub(crate) fn jose(self) -> jsonwebtoken::Algorithm {
        use jsonwebtoken::Algorithm as A;
        match self {
            Self::RS256 => A::RS256,
            Self::RS384 => A::RS384,
            Self::RS512 => A::RS512,
            Self::PS256 => A::PS256,
            Self::ES256 => A::ES256,
            Self::ES384 => A::ES384,
            Self::EdDSA => A::EdDSA,
            Self::HS256 => A::HS256,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A private key (or shared secret) with the algorithm it signs with and an optional key id.
///
/// Made from a PEM document (PKCS#8 `PRIVATE KEY`, or PKCS#1 `RSA PRIVATE KEY` for RSA); the
/// key is checked by signing once, so a public key, a key of the wrong type or a curve that does
/// not match the algorithm fails here with [`Error::Key`] rather than at the first token request.
/// Cheap to clone; `Debug` shows the algorithm and key id, never the key.
///
/// ```no_run
/// use oauth_layer::jwt::SigningKey;
///
/// # fn run() -> oauth_layer::Result<()> {
/// let pem = std::fs::read("client-key.pem").expect("the key file");
/// let key = SigningKey::rs256_pem(&pem)?.kid("2024-05");
/// assert!(!format!("{key:?}").contains("PRIVATE"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SigningKey {
    algorithm: Algorithm,
    key: Arc<EncodingKey>,
    kid: Option<String>,
}

impl SigningKey {
    /// A key for `algorithm` from a PEM document. `HS256` takes a secret: use
    /// [`hs256`](Self::hs256).
    pub fn from_pem(algorithm: Algorithm, pem: impl AsRef<[u8]>) -> Result<Self> {
        let pem = pem.as_ref();
        if pem.len() > MAX_PEM_BYTES {
            return Err(Error::Key(format!(
                "the PEM document is larger than {MAX_PEM_BYTES} bytes"
            )));
        }
        let parsed = match algorithm {
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::PS256 => {
                EncodingKey::from_rsa_pem(pem)
            }
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
            Algorithm::HS256 => {
                return Err(Error::Key(
                    "HS256 signs with a shared secret, not a PEM key".into(),
                ));
            }
        };
        let key = parsed.map_err(|e| {
            Error::Key(format!(
                "not a usable {algorithm} private key in PEM form: {}",
                e.kind_text()
            ))
        })?;
        let key = Self {
            algorithm,
            key: Arc::new(key),
            kid: None,
        };
        // The PEM parser also accepts public keys and any curve; signing once proves the key
        // can do what it will be asked to.
        key.sign(&Map::new(), None).map_err(|_| {
            Error::Key(format!(
                "the PEM document is not a {algorithm} private key (a public key, or another \
                 key type or curve?)"
            ))
        })?;
        Ok(key)
    }

    /// An RS256 key from an RSA private key in PEM form.
    pub fn rs256_pem(pem: impl AsRef<[u8]>) -> Result<Self> {
        Self::from_pem(Algorithm::RS256, pem)
    }

    /// A PS256 key from an RSA private key in PEM form.
    pub fn ps256_pem(pem: impl AsRef<[u8]>) -> Result<Self> {
        Self::from_pem(Algorithm::PS256, pem)
    }

    /// An ES256 key from a P-256 private key in PKCS#8 PEM form.
    pub fn es256_pem(pem: impl AsRef<[u8]>) -> Result<Self> {
        Self::from_pem(Algorithm::ES256, pem)
    }

    /// An EdDSA key from an Ed25519 private key in PKCS#8 PEM form.
    pub fn eddsa_pem(pem: impl AsRef<[u8]>) -> Result<Self> {
        Self::from_pem(Algorithm::EdDSA, pem)
    }

    /// An HS256 key from a shared secret (for `client_secret_jwt` the client secret; the
    /// client builds this key itself from
    /// [`OAuthClientBuilder::secret`](crate::OAuthClientBuilder::secret)).
    pub fn hs256(secret: impl AsRef<[u8]>) -> Result<Self> {
        let secret = secret.as_ref();
        if secret.is_empty() {
            return Err(Error::Key("an HS256 secret cannot be empty".into()));
        }
        Ok(Self {
            algorithm: Algorithm::HS256,
            key: Arc::new(EncodingKey::from_secret(secret)),
            kid: None,
        })
    }

    /// Sets the key id, sent as the `kid` header so the server can pick the right public key.
    #[must_use]
    pub fn kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The key id, if set.
    pub fn key_id(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// A digest of the key material and algorithm, to tell keys apart in cache keys without
    /// revealing them.
    pub(crate) fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.algorithm.as_str().as_bytes());
        hasher.update([0]);
        hasher.update(self.key.as_bytes());
        URL_SAFE_NO_PAD.encode(&hasher.finalize()[..16])
    }

    /// Signs a JWT assertion: `claims`' registered claims plus a fresh random `jti`, `iat` and
    /// `exp` (at most [`MAX_ASSERTION_LIFETIME`] after `iat`), with `kid` in the header when set.
    pub(crate) fn assertion(&self, claims: &Claims<'_>) -> Result<SecretString> {
        self.typed_assertion(claims, None)
    }

    /// [`assertion`](Self::assertion) with an explicit `typ` header (RFC 8725 §3.11) instead of
    /// `JWT`, so that the JWT cannot be mistaken for another kind (a request object's
    /// `oauth-authz-req+jwt`, RFC 9101 §10.8).
    pub(crate) fn typed_assertion(
        &self,
        claims: &Claims<'_>,
        typ: Option<&str>,
    ) -> Result<SecretString> {
        let iat = claims
            .issued_at
            .duration_since(UNIX_EPOCH)
            .map_err(|_| Error::Internal("the clock reads before 1970".into()))?
            .as_secs();
        let lifetime = claims
            .lifetime
            .clamp(Duration::from_secs(1), MAX_ASSERTION_LIFETIME)
            .as_secs();

        // Extra claims first, so that none of them can replace a registered one.
        let mut body = claims.extra.cloned().unwrap_or_default();
        if let Some(scope) = claims.scope.filter(|s| !s.is_empty()) {
            body.insert("scope".into(), scope.into());
        }
        body.insert("iss".into(), claims.issuer.into());
        match claims.subject {
            Some(sub) => body.insert("sub".into(), sub.into()),
            None => body.remove("sub"),
        };
        body.insert("aud".into(), claims.audience.into());
        body.insert("iat".into(), iat.into());
        body.insert("exp".into(), iat.saturating_add(lifetime).into());
        if claims.not_before {
            body.insert("nbf".into(), iat.into());
        } else {
            body.remove("nbf");
        }
        body.insert("jti".into(), jti()?.into());
        self.sign(&body, typ).map(SecretString::from)
    }

    fn sign(&self, claims: &Map<String, Value>, typ: Option<&str>) -> Result<String> {
        let mut header = Header::new(self.algorithm.jose());
        header.kid = self.kid.clone();
        if let Some(typ) = typ {
            header.typ = Some(typ.to_owned());
        }
        jsonwebtoken::encode(&header, claims, &self.key).map_err(|e| {
            Error::Key(format!(
                "cannot sign with the {} key: {}",
                self.algorithm,
                e.kind_text()
            ))
        })
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// What an assertion says, apart from the claims [`SigningKey::assertion`] adds itself (`jti`,
/// `iat`, `exp`, `nbf`).
pub(crate) struct Claims<'a> {
    /// `iss`: who made the assertion (the client id, a service account).
    pub(crate) issuer: &'a str,
    /// `sub`: whom it is about; omitted when `None`.
    pub(crate) subject: Option<&'a str>,
    /// `aud`: the token endpoint or issuer it is for.
    pub(crate) audience: &'a str,
    /// `iat`, from the client's clock.
    pub(crate) issued_at: SystemTime,
    /// `exp - iat`, clamped to 1 s ..= [`MAX_ASSERTION_LIFETIME`].
    pub(crate) lifetime: Duration,
    /// Whether to send `nbf` (equal to `iat`).
    pub(crate) not_before: bool,
    /// A `scope` claim, for servers that take scopes in the assertion (Google).
    pub(crate) scope: Option<&'a str>,
    /// Further claims; registered ones of the same name are overwritten.
    pub(crate) extra: Option<&'a Map<String, Value>>,
}

/// 128 random bits, base64url: unique per assertion so a server can refuse a replay.
fn jti() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Internal(format!("no system randomness: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// A short description of a jsonwebtoken error that cannot carry key material.
trait KindText {
    fn kind_text(&self) -> String;
}

impl KindText for jsonwebtoken::errors::Error {
    fn kind_text(&self) -> String {
        use jsonwebtoken::errors::ErrorKind as K;
        match self.kind() {
            K::InvalidEcdsaKey => "invalid ECDSA key".into(),
            K::InvalidEddsaKey => "invalid EdDSA key".into(),
            K::InvalidRsaKey(_) => "invalid RSA key".into(),
            K::InvalidKeyFormat => "invalid key format".into(),
            K::InvalidAlgorithm => "the key does not fit the algorithm".into(),
            K::Base64(_) => "bad base64 in the PEM body".into(),
            K::Json(_) => "cannot serialize the claims".into(),
            K::Utf8(_) => "not UTF-8".into(),
            K::RsaFailedSigning | K::Signing(_) | K::Provider(_) => "signing failed".into(),
            K::UnsupportedAlgorithm => "unsupported algorithm".into(),
            _ => "not a usable key".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hs256_assertion_has_fresh_jti_and_bounded_lifetime() {
        let key = SigningKey::hs256("a-shared-secret-of-some-length").unwrap();
        let claims = Claims {
            issuer: "me",
            subject: Some("me"),
            audience: "https://idp.example/token",
            issued_at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            lifetime: Duration::from_secs(3600),
            not_before: false,
            scope: None,
            extra: None,
        };
        use secrecy::ExposeSecret;
        let a = key.assertion(&claims).unwrap();
        let b = key.assertion(&claims).unwrap();
        assert_ne!(a.expose_secret(), b.expose_secret());
        let payload = a.expose_secret().split('.').nth(1).unwrap();
        let json: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(json["iat"], 1_700_000_000u64);
        assert_eq!(json["exp"], 1_700_000_300u64);
    }
}
