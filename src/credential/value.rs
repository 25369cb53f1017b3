//! The credential a source yields.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};

/// A short-lived credential (usually a signed JWT) read from a
/// [`CredentialSource`](super::CredentialSource). Kept as a secret: `Debug` prints
/// `[redacted]`.
///
/// ```
/// use oauth_layer::credential::Credential;
///
/// let credential = Credential::new("not-a-jwt");
/// assert_eq!(credential.expires_at(), None);
/// assert!(!format!("{credential:?}").contains("not-a-jwt"));
/// ```
#[derive(Clone)]
pub struct Credential {
    value: SecretString,
}

impl Credential {
    /// A credential holding `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self {
            value: SecretString::from(value.into()),
        }
    }

    /// The value, as sent.
    pub fn secret(&self) -> &SecretString {
        &self.value
    }

    /// When the credential expires, read from the `exp` claim when the value is a JWT (three
    /// base64url parts, a JSON payload). The signature is not verified: the server verifies it;
    /// this only keeps an expired one from being sent. `None` for anything else.
    pub fn expires_at(&self) -> Option<SystemTime> {
        let mut parts = self.value.expose_secret().split('.');
        let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let payload = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
        let claims: serde_json::Value = serde_json::from_slice(&payload).ok()?;
        let exp = claims.get("exp")?;
        let seconds = exp.as_u64().or_else(|| {
            exp.as_f64()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(|s| s as u64)
        })?;
        UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credential([redacted])")
    }
}
