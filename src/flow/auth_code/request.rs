//! The authorization request: its URL, and the one-time values (state, PKCE verifier, nonce)
//! that tie the answer to it.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use url::Url;

use super::callback::{Callback, CallbackCheck, Checked, ReceivedCode};
use crate::error::{Error, Result};

/// One sign-in attempt: the URL to send the person to, and what the answer must match.
///
/// Single use: once a callback has been accepted, the same state is refused (a replay). Made by
/// [`AuthCode::authorization_request`](super::AuthCode::authorization_request).
pub struct AuthorizationRequest {
    pub(crate) url: Url,
    pub(crate) redirect_uri: String,
    pub(crate) state: SecretString,
    pub(crate) verifier: Option<SecretString>,
    pub(crate) nonce: Option<SecretString>,
    pub(crate) issuer: Option<String>,
    pub(crate) iss_required: bool,
    pub(crate) callback_check: Option<CallbackCheck>,
    pub(crate) used: AtomicBool,
    /// The `request_uri` of a pushed request (RFC 9126), and when it expires on the client's
    /// clock.
    pub(crate) pushed: Option<(String, Instant)>,
    /// The signed request object the request carries (RFC 9101), redacted from what the
    /// server says back.
    pub(crate) request_object: Option<SecretString>,
}

impl AuthorizationRequest {
    /// This request with `params` appended to its URL's query.
    pub(crate) fn with_query(mut self, params: impl IntoIterator<Item = (String, String)>) -> Self {
        {
            let mut q = self.url.query_pairs_mut();
            for (name, value) in params {
                q.append_pair(&name, &value);
            }
        }
        self
    }

    /// The URL to open in the person's browser.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The redirect URI the request names (the token request repeats it).
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// The `state` value (it is in the URL too; it only has to be unguessable).
    pub fn state(&self) -> &str {
        self.state.expose_secret()
    }

    /// The `request_uri` the server handed back for a pushed authorization request (RFC 9126),
    /// the one parameter besides `client_id` the [`url`](Self::url) then carries. Not a secret:
    /// the server binds it to the client and takes it once.
    pub fn request_uri(&self) -> Option<&str> {
        self.pushed.as_ref().map(|(uri, _)| uri.as_str())
    }

    /// When the pushed request's `request_uri` stops working (on the client's
    /// [clock](crate::OAuthClient::clock)); `None` for a request that was not pushed. A sign-in
    /// must reach the authorization endpoint before then.
    pub fn expires_at(&self) -> Option<Instant> {
        self.pushed.as_ref().map(|(_, at)| *at)
    }

    /// The OpenID Connect `nonce`, when `openid` was requested.
    pub fn nonce(&self) -> Option<&str> {
        self.nonce.as_ref().map(|n| n.expose_secret())
    }

    /// Checks a callback against this request (SECURITY.md rules 1, 3, 4 and 5) and returns the
    /// authorization code it carries. A callback whose state is missing, wrong, repeated or
    /// already used is [`Error::StateMismatch`]; one a provider's own check refuses (the
    /// Shopify preset's `hmac`) is that check's error; an `error=` with the right state is
    /// [`Error::AuthorizationDenied`]; repeated parameters, `code` with `error`, a missing code
    /// or a wrong `iss` are [`Error::MalformedCallback`].
    pub fn check(&self, callback: &Callback) -> Result<ReceivedCode> {
        match self.check_callback(callback) {
            Checked::NotOurs(e) => Err(e),
            Checked::Done(r) => r,
        }
    }

    /// Like [`check`](Self::check), but tells apart callbacks that are not answers to this
    /// request (a receiver ignores those and keeps waiting) from answers that end the sign-in.
    pub(crate) fn check_callback(&self, callback: &Callback) -> Checked {
        let params = &callback.params;
        let count = |name: &str| params.iter().filter(|(k, _)| k == name).count();
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };

        // Rule 1: exactly one state, equal to ours, used once.
        let state_ok = count("state") == 1
            && get("state").is_some_and(|s| {
                !s.is_empty() && constant_time_eq(s.as_bytes(), self.state().as_bytes())
            });
        if !state_ok {
            return Checked::NotOurs(Error::StateMismatch);
        }
        // Rule 5: no repeated parameter, never code and error together.
        for name in ["code", "iss", "error", "error_description", "error_uri"] {
            if count(name) > 1 {
                return Checked::NotOurs(Error::MalformedCallback(format!(
                    "the parameter {name} is repeated"
                )));
            }
        }
        if get("code").is_some() && get("error").is_some() {
            return Checked::NotOurs(Error::MalformedCallback(
                "the response carries both code and error".into(),
            ));
        }
        // A provider's own signature on the callback (Shopify's hmac), before it counts.
        if let Some(CallbackCheck(check)) = &self.callback_check
            && let Err(error) = check(callback)
        {
            return Checked::NotOurs(error);
        }
        // Past this point the callback answers this request; it can be answered only once.
        if self.used.swap(true, Ordering::SeqCst) {
            return Checked::NotOurs(Error::StateMismatch);
        }
        Checked::Done(self.accept(params, get("code"), get("error")))
    }

    fn accept(
        &self,
        params: &[(String, String)],
        code: Option<&str>,
        error: Option<&str>,
    ) -> Result<ReceivedCode> {
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        // Rule 3 (RFC 9207): iss, when sent, names our issuer exactly; when required, it is sent.
        match (get("iss"), self.issuer.as_deref()) {
            (Some(iss), Some(expected)) if iss != expected => {
                return Err(Error::MalformedCallback(
                    "iss does not name the expected issuer (a mix-up attack?)".into(),
                ));
            }
            (None, _) if self.iss_required => {
                return Err(Error::MalformedCallback(
                    "the server promised an iss parameter and sent none".into(),
                ));
            }
            _ => {}
        }
        // Rule 4: an error with the right state ends the sign-in with a typed error.
        if let Some(error) = error {
            let mut secrets = crate::redact::Secrets::default();
            if let Some(request_object) = &self.request_object {
                secrets.add(request_object.expose_secret());
            }
            return Err(super::callback::denied(
                error,
                get("error_description"),
                get("error_uri"),
                &secrets,
            ));
        }
        match code {
            Some(code) if !code.is_empty() => Ok(ReceivedCode {
                code: SecretString::from(code.to_owned()),
                iss: get("iss").map(str::to_owned),
            }),
            _ => Err(Error::MalformedCallback(
                "the response carries neither code nor error".into(),
            )),
        }
    }
}

impl fmt::Debug for AuthorizationRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationRequest")
            .field("redirect_uri", &self.redirect_uri)
            .field("pkce", &self.verifier.is_some())
            .field("nonce", &self.nonce.is_some())
            .field("issuer", &self.issuer)
            .field("request_uri", &self.request_uri())
            .finish_non_exhaustive()
    }
}

/// `n` random bytes, base64url without padding.
pub(crate) fn random_string(n: usize) -> Result<String> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| Error::Internal(format!("no system randomness: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// The PKCE S256 challenge of a verifier (RFC 7636 §4.2).
pub(crate) fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Compares without stopping at the first difference, so timing tells nothing about how much
/// of a guessed state was right. (Lengths are not secret.)
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_matches_the_rfc_7636_example() {
        assert_eq!(
            s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn random_strings_are_long_and_distinct() {
        let a = random_string(32).unwrap();
        let b = random_string(32).unwrap();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }
}
