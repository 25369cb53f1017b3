//! [`Dpop`]: how a client uses DPoP.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::HeaderMap;

use super::shared::{DEFAULT_REFRESH, SharedNonces};
use super::{DpopAlg, DpopKey, NonceStore, Nonces, nonce_in};
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
    /// The store the fleet shares nonces through, when it does ([`Self::share_nonces`]).
    shared: Option<Arc<SharedNonces>>,
    /// How long a known nonce is used before the shared store is asked again.
    shared_refresh: Duration,
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
            shared: None,
            shared_refresh: DEFAULT_REFRESH,
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

    /// Shares the nonces servers hand out with every process using the same `store`, so that
    /// a fleet of replicas meets each server's `use_dpop_nonce` challenge once, not once per
    /// replica (and once per replica again after each rotation). Off by default.
    ///
    /// - Before the first proof for a server (and again when what it knows is older than
    ///   [`shared_nonce_refresh`](Self::shared_nonce_refresh), 5 s by default), the process
    ///   asks the store for that server's nonce and uses it. Concurrent requests share one
    ///   look-up. A look-up that fails, finds nothing, finds something that is not a nonce or
    ///   takes longer than 250 ms counts as "no nonce known", and the store is not asked again
    ///   for that server before the interval passes either.
    /// - Every nonce learned from a response (challenges, successful retries, any answer that
    ///   carries `DPoP-Nonce`) is written through to the store in the background when it is
    ///   new to this process and not what it just read from the store; a nonce still in use
    ///   is written again every five minutes.
    /// - A store that fails never fails a request: the request then goes as it would without
    ///   sharing (at worst one challenge, answered with the server's nonce).
    /// - The token endpoint's nonces and a resource's are kept apart even at one origin, as
    ///   they are in each process.
    ///
    /// Only requests with DPoP pay anything; bearer requests never touch the store.
    ///
    /// ```no_run
    /// # #[cfg(feature = "redis-store")]
    /// # async fn run() -> oauth_layer::Result<()> {
    /// use oauth_layer::{OAuthClient, dpop::Dpop, store::RedisStore};
    ///
    /// let store = RedisStore::connect("redis://redis.internal:6379").await?;
    /// let client = OAuthClient::builder("my-client-id")
    ///     .token_url("https://idp.example/token")
    ///     .dpop(Dpop::new().share_nonces(store.clone()))
    ///     .build()?;
    /// # let _ = client; Ok(()) }
    /// ```
    pub fn share_nonces(mut self, store: impl NonceStore) -> Self {
        self.shared = Some(Arc::new(SharedNonces::new(Arc::new(store))));
        self
    }

    /// How long a process uses a server's nonce it already knows before it asks the shared
    /// store again (default 5 s; with [`share_nonces`](Self::share_nonces) only). Each
    /// question is one store read per server; what it brings is a nonce another process
    /// learned after a rotation, which spares this process that rotation's challenge.
    /// `Duration::ZERO` asks before every proof.
    pub fn shared_nonce_refresh(mut self, every: Duration) -> Self {
        self.shared_refresh = every;
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

    /// The nonce a proof for `key` carries: the latest this process knows, after asking the
    /// shared store when one is configured and that is due.
    pub(crate) async fn nonce_for(&self, key: &str) -> Option<Arc<str>> {
        self.refresh_nonce(key).await;
        self.nonces.get(key)
    }

    /// Brings this process's nonce for `key` up to date from the shared store, when one is
    /// configured and that is due; the proof made next reads it.
    pub(crate) async fn refresh_nonce(&self, key: &str) {
        if let Some(shared) = &self.shared {
            shared.refresh(key, &self.nonces, self.shared_refresh).await;
        }
    }

    /// Whether nonces are shared through a store (and so a proof's nonce may need a look-up).
    #[cfg_attr(not(any(feature = "reqwest", feature = "tower")), allow(dead_code))]
    pub(crate) fn shares_nonces(&self) -> bool {
        self.shared.is_some()
    }

    /// Remembers `nonce` (already checked by [`nonce_in`]), just learned from `key`'s server,
    /// as its latest, and writes it through to the shared store.
    pub(crate) fn learn(&self, key: &str, nonce: &str) -> Arc<str> {
        let nonce = self.nonces.set(key, nonce);
        if let Some(shared) = &self.shared {
            shared.learned(key, &nonce);
        }
        nonce
    }

    /// [`learn`](Self::learn)s the nonce in `headers`, if there is a well-formed one.
    #[cfg_attr(not(any(feature = "reqwest", feature = "tower")), allow(dead_code))]
    pub(crate) fn learn_from(&self, key: &str, headers: &HeaderMap) -> Option<Arc<str>> {
        Some(self.learn(key, nonce_in(headers)?))
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
            .field("shared_nonces", &self.shared)
            .field("shared_nonce_refresh", &self.shared_refresh)
            .finish_non_exhaustive()
    }
}
