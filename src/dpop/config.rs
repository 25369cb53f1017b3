//! [`Dpop`]: how a client uses DPoP.

use std::fmt;
use std::sync::{Arc, OnceLock};

use super::{DpopAlg, DpopKey, Nonces};
use crate::error::{Error, Result};

/// How a client binds its tokens with DPoP; give it to
/// [`OAuthClientBuilder::dpop`](crate::OAuthClientBuilder::dpop).
///
/// By default each [`TokenSource`](crate::TokenSource) made with the client generates its own
/// ES256 key (or the first algorithm of [`algorithms`](Self::algorithms) the server supports,
/// when its metadata lists `dpop_signing_alg_values_supported`), and a token the server answers
/// as `Bearer` is accepted as an unbound bearer token unless
/// [`require_bound_tokens`](Self::require_bound_tokens) is set.
///
/// ```
/// use oauth_layer::dpop::{Dpop, DpopAlg, DpopKey};
///
/// let fresh_per_source = Dpop::new().algorithms([DpopAlg::EdDSA, DpopAlg::ES256]);
/// let one_key = Dpop::with_key(DpopKey::generate(DpopAlg::ES256)?).require_bound_tokens(true);
/// # let _ = (fresh_per_source, one_key);
/// # Ok::<(), oauth_layer::Error>(())
/// ```
#[derive(Clone)]
pub struct Dpop {
    pub(crate) key: Option<DpopKey>,
    pub(crate) algorithms: Vec<DpopAlg>,
    pub(crate) require_bound: bool,
    /// The latest nonce per origin, shared by every clone of the client.
    pub(crate) nonces: Arc<Nonces>,
    /// The key of requests made straight through the client, outside any source: generated
    /// once, when first needed.
    pub(crate) client_key: Arc<OnceLock<DpopKey>>,
}

impl Default for Dpop {
    fn default() -> Self {
        Self::new()
    }
}

impl Dpop {
    /// A fresh key per token source, ES256 unless the server wants another.
    pub fn new() -> Self {
        Self {
            key: None,
            algorithms: vec![DpopAlg::ES256, DpopAlg::EdDSA, DpopAlg::PS256],
            require_bound: false,
            nonces: Arc::default(),
            client_key: Arc::default(),
        }
    }

    /// Always this key (every source of the client shares it).
    pub fn with_key(key: DpopKey) -> Self {
        Self {
            algorithms: vec![key.alg()],
            key: Some(key),
            ..Self::new()
        }
    }

    /// The algorithms fresh keys may use, most preferred first (default ES256, EdDSA, PS256).
    /// The first one the server lists in `dpop_signing_alg_values_supported` is used; without
    /// metadata, the first.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = DpopAlg>) -> Self {
        if self.key.is_none() {
            let mut list: Vec<DpopAlg> = Vec::new();
            for alg in algorithms {
                if !list.contains(&alg) {
                    list.push(alg);
                }
            }
            self.algorithms = list;
        }
        self
    }

    /// Whether a token the server issues as `Bearer` in answer to a DPoP request is refused
    /// ([`Error::UnboundToken`](crate::Error::UnboundToken)) instead of used as a plain bearer token
    /// (default `false`). Set it when a stolen token must be useless: the server then has to
    /// bind every token.
    pub fn require_bound_tokens(mut self, required: bool) -> Self {
        self.require_bound = required;
        self
    }

    /// The algorithm fresh keys use.
    pub fn algorithm(&self) -> Option<DpopAlg> {
        self.algorithms.first().copied()
    }

    /// The configured key, if one was given.
    pub fn key(&self) -> Option<&DpopKey> {
        self.key.as_ref()
    }

    /// Narrows the algorithms to those the server supports (`supported`, from its metadata);
    /// an error when none is left.
    pub(crate) fn for_server(mut self, supported: Option<&[String]>) -> Result<Self> {
        let Some(supported) = supported else {
            return self.checked();
        };
        self.algorithms
            .retain(|alg| supported.iter().any(|s| s == alg.as_str()));
        if self.algorithms.is_empty() {
            let offered: Vec<&str> = supported.iter().map(String::as_str).take(8).collect();
            return Err(Error::config(format!(
                "dpop: the server accepts DPoP proofs signed with {offered:?} only, and none \
                 of them is configured (this crate signs with ES256, EdDSA and PS256)"
            )));
        }
        Ok(self)
    }

    fn checked(self) -> Result<Self> {
        if self.algorithms.is_empty() {
            return Err(Error::config("dpop: no algorithm chosen"));
        }
        Ok(self)
    }

    /// A key for a new token source: the configured one, or a fresh one.
    pub(crate) fn key_for_source(&self) -> Result<DpopKey> {
        match &self.key {
            Some(key) => Ok(key.clone()),
            None => DpopKey::generate(self.algorithm().unwrap_or(DpopAlg::ES256)),
        }
    }

    /// The key for requests made through the client outside any source.
    pub(crate) fn client_key(&self) -> Result<DpopKey> {
        if let Some(key) = &self.key {
            return Ok(key.clone());
        }
        if let Some(key) = self.client_key.get() {
            return Ok(key.clone());
        }
        let key = self.key_for_source()?;
        Ok(self.client_key.get_or_init(|| key).clone())
    }
}

impl fmt::Debug for Dpop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dpop")
            .field("key", &self.key)
            .field("algorithms", &self.algorithms)
            .field("require_bound", &self.require_bound)
            .finish_non_exhaustive()
    }
}
