//! Credentials on one resource request: the `Authorization` header and, for a DPoP-bound
//! token, a fresh proof for this very request (SECURITY.md rule 47).

use std::sync::Arc;

use http::HeaderMap;

use super::challenge::Sent;
use super::plan::set_token;
use crate::error::Result;
use crate::source::TokenSource;
use crate::token::Token;

/// What went out with a request, for acting on its answer: whether it carried a DPoP proof,
/// and the nonce the proof carried.
#[derive(Debug, Default)]
pub(crate) struct SentWith {
    dpop: bool,
    nonce: Option<Arc<str>>,
}

impl SentWith {
    /// The view the challenge policy takes.
    pub(crate) fn as_sent(&self) -> Sent<'_> {
        Sent {
            dpop: self.dpop,
            nonce: self.nonce.as_deref(),
        }
    }
}

/// Where a resource request goes, as DPoP needs it.
// Only DPoP reads these.
#[cfg_attr(not(feature = "dpop"), allow(dead_code))]
pub(crate) trait ProofTarget {
    /// The URL as sent (the proof's `htu` drops its query and fragment).
    fn htu(&self) -> std::borrow::Cow<'_, str>;
    /// The key the origin's nonces are kept under.
    fn nonce_key(&self) -> String;
}

#[cfg(feature = "tower")]
impl ProofTarget for http::Uri {
    fn htu(&self) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Owned(self.to_string())
    }

    fn nonce_key(&self) -> String {
        #[cfg(feature = "dpop")]
        return crate::dpop::origin_key_of_uri(crate::dpop::NonceRole::Resource, self);
        #[cfg(not(feature = "dpop"))]
        String::new()
    }
}

#[cfg(feature = "reqwest")]
impl ProofTarget for url::Url {
    fn htu(&self) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Borrowed(self.as_str())
    }

    fn nonce_key(&self) -> String {
        #[cfg(feature = "dpop")]
        return crate::dpop::origin_key_of_url(crate::dpop::NonceRole::Resource, self);
        #[cfg(not(feature = "dpop"))]
        String::new()
    }
}

/// The proof a request to `target` with `method` needs with `token`: `None` for a bearer
/// token; for a DPoP-bound one a fresh proof carrying the token's hash and the origin's latest
/// nonce. Made before [`set_credentials`], while the request is only borrowed.
///
/// A token bound to a client certificate other than `presented` (the thumbprint of the one the
/// pipeline declared it presents, if any) is refused here with
/// [`Error::CertificateBinding`](crate::Error::CertificateBinding), so nothing is sent.
#[inline]
pub(crate) fn proof_for<T: ProofTarget + ?Sized>(
    token: &Token,
    source: &TokenSource,
    method: &http::Method,
    target: &T,
    presented: Option<&str>,
) -> Result<Proof> {
    token.check_certificate(presented)?;
    #[cfg(feature = "dpop")]
    if let Some((key, ath)) = token.dpop_binding() {
        return dpop_proof(key, ath, source, method, target);
    }
    let _ = (token, source, method, target);
    Ok(Proof::default())
}

/// Readies what [`proof_for`] reads that may need waiting for: with a DPoP-bound token and
/// nonces shared through a store, the origin's nonce is looked up there when that is due.
/// Nothing for a bearer token, nor without a shared store.
pub(crate) async fn prepare_proof<T: ProofTarget + ?Sized>(
    token: &Token,
    source: &TokenSource,
    target: &T,
) {
    #[cfg(feature = "dpop")]
    if token.dpop_binding().is_some()
        && let Some(dpop) = source.client().dpop()
        && dpop.shares_nonces()
    {
        dpop.refresh_nonce(&target.nonce_key()).await;
    }
    let _ = (token, source, target);
}

/// Whether [`prepare_proof`] has anything to do for `token` (so that callers await it only
/// then, and the bearer path stays as small as it was).
#[inline]
pub(crate) fn needs_preparing(token: &Token, source: &TokenSource) -> bool {
    #[cfg(feature = "dpop")]
    return token.dpop_binding().is_some()
        && source.client().dpop().is_some_and(|d| d.shares_nonces());
    #[cfg(not(feature = "dpop"))]
    {
        let _ = (token, source);
        false
    }
}

/// A request's proof, if it needs one, and what the answer is judged against.
#[derive(Default)]
pub(crate) struct Proof {
    #[cfg_attr(not(feature = "dpop"), allow(dead_code))]
    header: Option<http::HeaderValue>,
    pub(crate) sent: SentWith,
}

/// Sets `token` as the request's credentials: exactly one `Authorization` header (marked
/// sensitive) and, for a DPoP-bound token, its `DPoP` proof.
#[inline]
pub(crate) fn set_credentials(headers: &mut HeaderMap, token: &Token, proof: Proof) -> SentWith {
    set_token(headers, token);
    #[cfg(feature = "dpop")]
    if let Some(value) = proof.header {
        headers.insert(crate::dpop::DPOP_HEADER, value);
    }
    proof.sent
}

#[cfg(feature = "dpop")]
fn dpop_proof<T: ProofTarget + ?Sized>(
    key: &crate::dpop::DpopKey,
    ath: &str,
    source: &TokenSource,
    method: &http::Method,
    target: &T,
) -> Result<Proof> {
    let client = source.client();
    let nonce = client
        .dpop()
        .and_then(|d| d.nonces.get(&target.nonce_key()));
    let proof = key.proof_with_ath(
        method.as_str(),
        &target.htu(),
        crate::clock::unix_seconds(client.clock()),
        ath,
        nonce.as_deref(),
    )?;
    let value = http::HeaderValue::try_from(proof)
        .map_err(|_| crate::error::Error::Internal("a DPoP proof is not a header value".into()))?;
    Ok(Proof {
        header: Some(value),
        sent: SentWith { dpop: true, nonce },
    })
}

/// The key the nonces of `target`'s origin are kept under, for a request that carried a DPoP
/// proof; `None` for any other (nothing to remember, so nothing is kept while it is in flight).
#[cfg(feature = "tower")]
#[inline]
pub(crate) fn nonce_origin<T: ProofTarget + ?Sized>(sent: &SentWith, target: &T) -> Option<String> {
    sent.dpop.then(|| target.nonce_key())
}

/// [`remember_nonce`] for a request whose origin was taken with [`nonce_origin`] before it
/// went out.
#[cfg(feature = "tower")]
pub(crate) fn remember_nonce_at(source: &TokenSource, origin: &str, headers: &HeaderMap) {
    #[cfg(feature = "dpop")]
    if let Some(dpop) = source.client().dpop() {
        dpop.learn_from(origin, headers);
    }
    let _ = (source, origin, headers);
}

/// Remembers the nonce a response to a DPoP request carries (every response, the successful
/// retry's included: SECURITY.md rule 48).
#[cfg_attr(not(feature = "reqwest"), allow(dead_code))]
pub(crate) fn remember_nonce<T: ProofTarget + ?Sized>(
    sent: &SentWith,
    source: &TokenSource,
    target: &T,
    headers: &HeaderMap,
) {
    #[cfg(feature = "dpop")]
    if sent.dpop
        && let Some(dpop) = source.client().dpop()
    {
        dpop.learn_from(&target.nonce_key(), headers);
    }
    let _ = (sent, source, target, headers);
}
