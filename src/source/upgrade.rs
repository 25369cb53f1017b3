//! Upgraded sources: a token that satisfies more than the one a source serves, without touching
//! that one.
//!
//! A resource may answer a request with a demand: more scopes (`insufficient_scope`), a stronger
//! or fresher sign-in (`insufficient_user_authentication` with `acr_values`/`max_age`), or extra
//! claims (`insufficient_claims`). [`TokenSource::upgraded`] answers it with a *derived* source:
//! the same client, store, settings and change hook, the flow's
//! [`upgraded`](crate::flow::Flow::upgraded) version, and a cache key of its own, so the wider
//! token is cached apart and the original keeps serving every request that does not need more.
//!
//! The original keeps its derived sources in a small map ([`TokenSource::MAX_UPGRADES`], the
//! least recently asked dropped first), so a need asked again reuses the same source and its
//! cached token instead of a new token request. A derived source asked for more still upgrades
//! from the original, with both needs merged, so upgrades never chain.
//!
//! Claims (Microsoft Entra continuous access evaluation) are different: the server has
//! revoked or outdated the token, not narrowed it. The source for a claims need has its own key
//! (the claims are part of it), so its first token is always a new token request carrying the
//! claims, whatever is cached; when that token arrives, the source the claims were asked for (the
//! original, or the derived source with the same needs but the claims) adopts it in memory, so
//! later requests use it at once instead of being challenged again. The store keeps it under
//! the claims source's key only: the original's entry is never replaced by a token obtained
//! with a resource's claims request.

use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use arc_swap::ArcSwapOption;

use super::{ChangeHook, Inner, Slow, TokenSource};
use crate::error::{Error, Result};
use crate::flow::{Flow, Requirements};
use crate::store::CacheKey;
use crate::token::Token;

/// The most scopes a need may name (after splitting and removing duplicates).
const MAX_REQUIRED_SCOPES: usize = 64;
/// The longest scope, `acr_values` or claims request a need may carry, in bytes.
const MAX_SCOPE_LEN: usize = 256;
const MAX_ACR_LEN: usize = 1024;
const MAX_CLAIMS_LEN: usize = 16 * 1024;

/// A source's upgrades: the derived sources it keeps, or, for a derived source, where it came
/// from.
pub(super) struct Upgrades {
    /// The identity the original was built with, added to every derived key too.
    identity: Option<String>,
    /// For a derived source: the original, and the (normalized) need it was derived for.
    origin: Option<(Weak<Inner>, Requirements)>,
    /// For an original: its derived sources (by their cache keys), least recently asked first.
    derived: Mutex<VecDeque<TokenSource>>,
}

impl Upgrades {
    pub(super) fn new(identity: Option<String>) -> Self {
        Self {
            identity,
            origin: None,
            derived: Mutex::new(VecDeque::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<TokenSource>> {
        self.derived.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl TokenSource {
    /// How many upgraded sources one source keeps; asking for another drops the least recently
    /// asked one (and its cached token).
    pub const MAX_UPGRADES: usize = 8;

    /// A source whose tokens satisfy `need` as well: more scopes, a sign-in at an `acr` level or
    /// no older than `max_age`, or a claims request.
    ///
    /// The derived source shares this one's client, store, settings and change hook; its flow
    /// is this flow's [`upgraded`](crate::flow::Flow::upgraded) one, and its cache key is its
    /// own, so this source's token is neither replaced nor widened and keeps serving requests
    /// that need nothing more. Asking again for the same need (however its scopes are spelled
    /// or ordered) returns the same derived source, so its cached token is reused. A derived
    /// source's own `upgraded` merges both needs and asks the original.
    ///
    /// A source keeps at most [`MAX_UPGRADES`](Self::MAX_UPGRADES) derived sources; asking for
    /// another drops the least recently asked one.
    ///
    /// A need with `claims` (Microsoft Entra continuous access evaluation) means the server
    /// revoked or outdated the token rather than finding it too narrow. Its source has a key of
    /// its own (the claims are part of it), so its first token is always a new token request
    /// carrying the claims, whatever is cached. When that token arrives, the source the claims
    /// were asked of (this one, or the derived source for the same need without the claims)
    /// adopts it in memory, so later requests use it at once instead of being challenged
    /// again; a source asked for fewer scopes never adopts a wider token. The store keeps the
    /// token under the claims source's key only: an entry is never replaced by a token obtained
    /// in answer to a resource's claims request.
    ///
    /// An upgraded authorization code flow signs the person in again (the derived source is
    /// interactive): [`token`](Self::token) runs it, [`token_silently`](Self::token_silently)
    /// fails with [`Error::InteractionRequired`].
    ///
    /// Fails with [`Error::StepUpRequired`] naming `need` when this source cannot satisfy it:
    /// the flow cannot ask for it (a refresh token alone, `acr_values` or `max_age` with a
    /// machine grant), `need` adds nothing this source does not ask for already (asking again
    /// would bring the same token), or `need` is absurd (more than 64 scopes, a scope that is
    /// not a valid scope token, values of kilobytes).
    ///
    /// ```no_run
    /// use oauth_layer::{OAuthClient, TokenSource, flow::{ClientCredentials, Requirements}};
    ///
    /// # async fn run(client: OAuthClient) -> oauth_layer::Result<()> {
    /// let tokens = TokenSource::new(client, ClientCredentials::new().scope("files:read"));
    /// let writer = tokens.upgraded(&Requirements::new().scope("files:write"))?;
    /// let wide = writer.token().await?; // scope "files:read files:write", cached apart
    /// let narrow = tokens.token().await?; // still "files:read"
    /// # let _ = (wide, narrow); Ok(()) }
    /// ```
    pub fn upgraded(&self, need: &Requirements) -> Result<TokenSource> {
        if let Some((origin, first)) = &self.inner.upgrades.origin
            && let Some(origin) = origin.upgrade()
        {
            return TokenSource { inner: origin }.upgraded(&first.and_then(need));
        }
        let refused = || Error::StepUpRequired(need.clone());
        let need = need.normalized();
        if need.is_empty() || !reasonable(&need) {
            return Err(refused());
        }
        let (flow, key) = self.upgraded_flow(&need).ok_or_else(refused)?;
        if key == self.inner.key {
            return Err(refused());
        }
        let mut derived = self.inner.upgrades.lock();
        if let Some(at) = derived.iter().position(|s| s.inner.key == key) {
            let source = derived.remove(at).ok_or_else(refused)?;
            derived.push_back(source.clone());
            return Ok(source);
        }
        let on_change = self.derived_hook(&need);
        let source = TokenSource {
            inner: Arc::new(Inner {
                client: self.inner.client.clone(),
                flow,
                key,
                clock: self.inner.clock.clone(),
                config: self.inner.config,
                store: self.inner.store.clone(),
                on_change,
                on_renewal: self.inner.on_renewal.clone(),
                #[cfg(feature = "metrics")]
                metrics: self.inner.metrics.clone(),
                state: ArcSwapOption::empty(),
                renewing: AtomicBool::new(false),
                slow: Mutex::new(Slow::default()),
                upgrades: Upgrades {
                    identity: self.inner.upgrades.identity.clone(),
                    origin: Some((Arc::downgrade(&self.inner), need.clone())),
                    derived: Mutex::new(VecDeque::new()),
                },
                unstored: super::unstored::Unstored::default(),
            }),
        };
        tracing::debug!(key = ?source.inner.key, "upgraded token source");
        derived.push_back(source.clone());
        while derived.len() > Self::MAX_UPGRADES {
            derived.pop_front();
        }
        Ok(source)
    }

    /// [`upgraded`](Self::upgraded) for a request whose token `rejected` was refused with the
    /// demand `need`. When the derived source is the one that issued `rejected` and `need` asks
    /// for claims or a sign-in (a claims challenge for a token an earlier claims request
    /// brought, which the original adopted; a `max_age` the step-up sign-in no longer meets),
    /// that token is forgotten first, its refresh token and store entry included (renewing
    /// with it would bring a token without the claims, or from the same old sign-in), so the
    /// next [`token`](Self::token) asks the flow again. A newer token is left alone, so
    /// concurrent requests refused with the same demand share one token request.
    ///
    /// A scope-only need never drops a token: a new token request for the same scopes brings the
    /// same grant, so a resource that keeps refusing costs no token requests.
    pub async fn upgraded_after(
        &self,
        need: &Requirements,
        rejected: &Token,
    ) -> Result<TokenSource> {
        self.upgraded_after_issue(need, rejected.issue()).await
    }

    /// [`upgraded_after`](Self::upgraded_after) by the rejected token's issuance number (the
    /// tower layer keeps only that of the token it sent).
    pub(crate) async fn upgraded_after_issue(
        &self,
        need: &Requirements,
        rejected: u64,
    ) -> Result<TokenSource> {
        let source = self.upgraded(need)?;
        if need.claims.is_some() || need.needs_sign_in() {
            source.forget_if_current(rejected).await;
        }
        Ok(source)
    }

    /// Forgets the cached token, and the store's copy, if it is still issuance `rejected`.
    async fn forget_if_current(&self, rejected: u64) {
        let mut forgot = false;
        self.inner.state.rcu(|current| match current.as_deref() {
            Some(c) if c.token.issue() == rejected => {
                forgot = true;
                None
            }
            _ => {
                forgot = false;
                current.clone()
            }
        });
        if !forgot {
            return;
        }
        tracing::debug!(key = ?self.inner.key, "upgraded token refused again; forgotten");
        if let Some(store) = &self.inner.store
            && let Err(e) = store.delete(&self.inner.key).await
        {
            tracing::warn!(error = %e, "token store delete failed");
        }
    }

    /// This flow upgraded for `need`, and the key a source for it caches under.
    fn upgraded_flow(&self, need: &Requirements) -> Option<(Arc<dyn Flow>, CacheKey)> {
        let flow = self.inner.flow.upgraded(need)?;
        let mut key = flow.cache_key(&self.inner.client);
        if let Some(identity) = &self.inner.upgrades.identity {
            key = key.with_part("identity", identity.clone());
        }
        Some((flow, key))
    }

    /// The change hook of a source derived for `need`: the original's hook, and for a claims
    /// need, adoption of each new token by the source that asked without the claims.
    fn derived_hook(&self, need: &Requirements) -> Option<ChangeHook> {
        let hook = self.inner.on_change.clone();
        if need.claims.is_none() {
            return hook;
        }
        let origin = Arc::downgrade(&self.inner);
        let without_claims = Requirements {
            claims: None,
            ..need.clone()
        };
        // The source asked without the claims: this one, or the derived one with the same key.
        let adopter_key = if without_claims.is_empty() {
            Some(self.inner.key.clone())
        } else {
            self.upgraded_flow(&without_claims).map(|(_, key)| key)
        };
        Some(Arc::new(move |token: &Token| {
            if let Some(hook) = &hook {
                hook(token);
            }
            let Some(origin) = origin.upgrade() else {
                return;
            };
            let adopter = if adopter_key.as_ref() == Some(&origin.key) {
                Some(origin)
            } else {
                origin
                    .upgrades
                    .lock()
                    .iter()
                    .find(|s| Some(&s.inner.key) == adopter_key.as_ref())
                    .map(|s| s.inner.clone())
            };
            if let Some(adopter) = adopter {
                tracing::debug!(key = ?adopter.key, "adopting the token of a claims request");
                adopter.state.store(Some(Arc::new(adopter.schedule(token))));
            }
        }))
    }
}

/// `false` for a need no honest resource sends: too many or malformed scopes (RFC 6749 §3.3
/// `scope-token`), or values of kilobytes.
fn reasonable(need: &Requirements) -> bool {
    let scope_token = |s: &str| {
        s.len() <= MAX_SCOPE_LEN
            && s.bytes()
                .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
    };
    need.scopes.len() <= MAX_REQUIRED_SCOPES
        && need.scopes.iter().all(|s| scope_token(s))
        && need
            .acr_values
            .as_ref()
            .is_none_or(|a| a.len() <= MAX_ACR_LEN)
        && need
            .claims
            .as_ref()
            .is_none_or(|c| c.len() <= MAX_CLAIMS_LEN)
}
