//! The heart of the crate: one cached token, renewed once however many callers need it.
//!
//! - **Fast path**: a valid token is read from an [`ArcSwapOption`] without a lock; the caller
//!   gets a clone of a [`Token`] (one reference count).
//! - **Single flight**: callers that find no valid token share one renewal, run in a spawned task
//!   so that a caller dropped mid-way (a timeout, a `select!`) neither cancels it nor loses a
//!   rotated refresh token. Every waiter gets the same result, the same error included.
//! - **Refresh-ahead**: inside the refresh window one background renewal starts while callers
//!   keep getting the still-valid token; past `expires_at - skew` callers wait.
//! - **Keep what works**: a transient failure while the old token is still valid keeps serving
//!   it; failures are remembered briefly so an outage costs one request, not one per caller.
//! - **Generation-checked invalidation**: [`TokenSource::invalidate`] names the token that failed;
//!   if a newer one is already cached nothing happens.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::watch;

use crate::client::{OAuthClient, TokenTypeHint};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::flow::Flow;
use crate::store::{CacheKey, TokenStore};
use crate::token::Token;

mod renewal;
mod unstored;
mod upgrade;

use renewal::RenewalHook;
pub use renewal::RenewalOutcome;

/// Default clock skew: a token counts as expired this long before its stated expiry.
pub const DEFAULT_SKEW: Duration = Duration::from_secs(30);
/// Default upper bound of the refresh-ahead window.
pub const DEFAULT_MAX_REFRESH_WINDOW: Duration = Duration::from_secs(300);
/// Default time a failed renewal is remembered before another is tried.
pub const DEFAULT_FAILURE_MEMORY: Duration = Duration::from_secs(5);
/// Tokens that live longer than this, and whose server named no `refresh_in`, are renewed in
/// the background from half their lifetime on (what Microsoft's MSAL libraries do): a day-long
/// token is not kept until its last minutes, when an outage would leave no time to renew it.
pub const HALF_LIFE_REFRESH_ABOVE: Duration = Duration::from_secs(2 * 3600);

type ChangeHook = Arc<dyn Fn(&Token) + Send + Sync>;
type Outcome = Option<Result<Token>>;

/// A shared, cached, self-renewing source of tokens for one client and flow.
///
/// Cheap to clone: every clone, and every layer or middleware built from it, shares one cache
/// and one renewal.
///
/// ```no_run
/// use oauth_layer::{OAuthClient, TokenSource, flow::ClientCredentials};
///
/// # async fn run() -> oauth_layer::Result<()> {
/// let client = OAuthClient::builder("my-client-id")
///     .secret("s3cret")
///     .token_url("https://idp.example/oauth/token")
///     .build()?;
/// let tokens = TokenSource::new(client, ClientCredentials::new().scope("api:read"));
/// let token = tokens.token().await?; // cached, valid, single-flight
/// # let _ = token; Ok(()) }
/// ```
#[derive(Clone)]
pub struct TokenSource {
    inner: Arc<Inner>,
}

struct Inner {
    client: OAuthClient,
    flow: Arc<dyn Flow>,
    key: CacheKey,
    clock: Arc<dyn Clock>,
    config: Config,
    store: Option<Arc<dyn TokenStore>>,
    on_change: Option<ChangeHook>,
    on_renewal: Option<RenewalHook>,
    #[cfg(feature = "metrics")]
    metrics: crate::metrics::SourceMetrics,
    state: ArcSwapOption<Cached>,
    renewing: AtomicBool,
    slow: Mutex<Slow>,
    upgrades: upgrade::Upgrades,
    unstored: unstored::Unstored,
}

#[derive(Debug, Clone, Copy)]
struct Config {
    skew: Duration,
    refresh_fraction: f64,
    max_refresh_window: Duration,
    failure_memory: Duration,
    interactive: bool,
    server_directed: bool,
}

/// The current token and the instants that decide how it is served.
struct Cached {
    token: Token,
    /// From here on, one background renewal starts; callers still get this token.
    refresh_at: Instant,
    /// From here on, callers wait for a renewal.
    stale_at: Instant,
    /// The token may be served after a failed renewal until here (its expiry, or the moment it
    /// was invalidated).
    usable_until: Instant,
}

#[derive(Default)]
struct Slow {
    inflight: Option<watch::Receiver<Outcome>>,
    failure: Option<(Instant, Error)>,
}

/// A handle on a source's cached token for one service value (the tower layer's
/// [`OAuthService`](crate::OAuthService), which is called through `&mut self`): it keeps its own
/// reference to the cached entry, so reading it costs one plain load while the entry has not
/// changed, instead of the shared load every [`TokenSource::token`] makes. When the entry has
/// changed (a renewal, an invalidation, a sign-out), the next read takes the new one; an idle
/// handle holds the entry it last read until then or until it is dropped.
#[cfg(feature = "tower")]
#[derive(Clone)]
pub(crate) struct LocalCache {
    cache: arc_swap::Cache<StateOf, Option<Arc<Cached>>>,
}

/// The source's shared state, as [`arc_swap::Cache`] wants it.
#[cfg(feature = "tower")]
#[derive(Clone)]
struct StateOf(Arc<Inner>);

#[cfg(feature = "tower")]
impl std::ops::Deref for StateOf {
    type Target = ArcSwapOption<Cached>;

    fn deref(&self) -> &Self::Target {
        &self.0.state
    }
}

#[cfg(feature = "tower")]
impl LocalCache {
    /// A handle on `source`'s cached token; [`fast_header`](Self::fast_header) must be given the
    /// same source.
    pub(crate) fn new(source: &TokenSource) -> Self {
        Self {
            cache: arc_swap::Cache::new(StateOf(source.inner.clone())),
        }
    }

    /// [`TokenSource::fast_header`] of `source` (the one this handle was made for), through the
    /// local reference while the cached token is fresh and outside its refresh window; anything
    /// else goes to the source.
    #[inline]
    pub(crate) fn fast_header(
        &mut self,
        source: &TokenSource,
        presented: Option<&str>,
    ) -> Option<(http::HeaderValue, u64)> {
        debug_assert!(std::ptr::eq(self.cache.arc_swap(), &source.inner.state));
        let now = source.inner.clock.now_fast();
        if let Some(cached) = self.cache.load().as_deref()
            && now < cached.refresh_at
        {
            if !cached.token.fits_certificate(presented) {
                return None;
            }
            #[cfg(feature = "metrics")]
            source.inner.metrics.cache_hit();
            return Some((cached.token.header_value().clone(), cached.token.issue()));
        }
        source.fast_header(presented)
    }
}

#[cfg(feature = "tower")]
impl fmt::Debug for LocalCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalCache").finish_non_exhaustive()
    }
}

impl TokenSource {
    /// A source for `flow` with default settings.
    pub fn new(client: OAuthClient, flow: impl Flow) -> Self {
        Self::builder(client, flow).build()
    }

    /// Starts configuring a source for `flow`.
    pub fn builder(client: OAuthClient, flow: impl Flow) -> TokenSourceBuilder {
        TokenSourceBuilder {
            client,
            flow: Arc::new(flow),
            config: Config {
                skew: DEFAULT_SKEW,
                refresh_fraction: 0.1,
                max_refresh_window: DEFAULT_MAX_REFRESH_WINDOW,
                failure_memory: DEFAULT_FAILURE_MEMORY,
                interactive: true,
                server_directed: true,
            },
            store: None,
            on_change: None,
            on_renewal: None,
            initial: None,
            identity: None,
        }
    }

    /// A valid token: the cached one when it is fresh (without locking), otherwise the result of
    /// the one renewal shared by every caller. May run an interactive flow if the source allows
    /// it (the default).
    pub async fn token(&self) -> Result<Token> {
        if let Some(token) = self.fast() {
            return Ok(token);
        }
        self.slow(self.inner.config.interactive).await
    }

    /// [`token`](Self::token) when `may_interact`, else [`token_silently`](Self::token_silently),
    /// as one future (the layer and the middleware keep one of these per waiting request).
    #[cfg(any(feature = "tower", feature = "reqwest"))]
    pub(crate) async fn token_for(&self, may_interact: bool) -> Result<Token> {
        if let Some(token) = self.fast() {
            return Ok(token);
        }
        self.slow(may_interact && self.inner.config.interactive)
            .await
    }

    /// [`token_for`](Self::token_for) for a caller that has just found no fresh token on the
    /// fast path: straight to the slow path, which reads the cached token again under its lock
    /// (a storm's waiting requests each skip a second lock-free read and clock reading).
    #[cfg(any(feature = "tower", feature = "reqwest"))]
    pub(crate) async fn token_after_miss(&self, may_interact: bool) -> Result<Token> {
        self.slow(may_interact && self.inner.config.interactive)
            .await
    }

    /// Like [`token`](Self::token), but never starts an interactive flow: when only a person could
    /// provide a new token, it fails with [`Error::InteractionRequired`].
    pub async fn token_silently(&self) -> Result<Token> {
        if let Some(token) = self.fast() {
            return Ok(token);
        }
        self.slow(false).await
    }

    /// The cached token if it is fresh, without any I/O.
    pub fn cached(&self) -> Option<Token> {
        let guard = self.inner.state.load();
        let cached = guard.as_deref()?;
        (self.inner.clock.now() < cached.stale_at).then(|| cached.token.clone())
    }

    /// Reports that `used` was rejected (a 401). If it is still the cached token, it is dropped
    /// (its refresh token is kept for the renewal) and the next call renews; if a newer token is
    /// already cached, nothing happens. Returns `true` when the token was dropped.
    pub fn invalidate(&self, used: &Token) -> bool {
        self.invalidate_issue(used.issue())
    }

    /// [`invalidate`](Self::invalidate) by issuance number.
    pub(crate) fn invalidate_issue(&self, used: u64) -> bool {
        // A moment in the past rather than `now`: the fast path reads a cheaper clock, which a
        // busy virtual machine can leave some milliseconds behind `now`, and it must not find
        // the invalidated token fresh again.
        let now = self.inner.clock.now();
        let past = now.checked_sub(Duration::from_secs(1)).unwrap_or(now);
        let mut dropped = false;
        self.inner.state.rcu(|current| match current.as_deref() {
            Some(c) if c.token.issue() == used => {
                dropped = true;
                Some(Arc::new(Cached {
                    token: c.token.clone(),
                    refresh_at: past,
                    stale_at: past,
                    usable_until: past,
                }))
            }
            _ => {
                dropped = false;
                current.clone()
            }
        });
        if dropped {
            tracing::debug!(key = ?self.inner.key, "token invalidated");
        }
        dropped
    }

    /// Forgets the cached token and any remembered failure (for example after signing out). The
    /// store is left alone.
    pub fn clear(&self) {
        self.inner.state.store(None);
        self.inner.lock_slow().failure = None;
    }

    /// Signs out: forgets every local copy of the token, then revokes it at the server
    /// (RFC 7009): the refresh token first (hint `refresh_token`), then the access token (hint
    /// `access_token`), for the cached token and, if it differs, the one in the store.
    ///
    /// The in-memory token, any remembered failure and the store entry are purged before any
    /// request, whatever the server then answers (SECURITY.md rule 39): after `revoke` the next
    /// [`token`](Self::token) asks the server for a new token. Every revocation is attempted;
    /// the first error is returned (a store that failed to delete, a server error, an
    /// unreachable server, or [`Error::Config`] when the client has no revocation endpoint).
    ///
    /// A renewal already running when `revoke` is called is not cancelled; the token it brings,
    /// if any, is cached as usual.
    pub async fn revoke(&self) -> Result<()> {
        let inner = &self.inner;
        let mut tokens: Vec<Token> = inner
            .state
            .swap(None)
            .map(|c| c.token.clone())
            .into_iter()
            .collect();
        inner.lock_slow().failure = None;
        let mut first_error = None;
        if let Some(store) = &inner.store {
            match store.load(&inner.key).await {
                Ok(Some(stored)) if !tokens.iter().any(|t| same_token(t, &stored)) => {
                    tokens.push(stored);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "token store read failed while revoking"),
            }
            if let Err(e) = store.delete(&inner.key).await {
                tracing::warn!(error = %e, "token store delete failed while revoking");
                first_error = Some(e);
            }
        }
        for token in &tokens {
            let refresh = token
                .refresh_token()
                .map(|rt| (rt, TokenTypeHint::RefreshToken));
            let access = Some((token.access_token(), TokenTypeHint::AccessToken));
            for (secret, hint) in refresh.into_iter().chain(access) {
                if let Err(e) = inner.client.revoke(secret, hint).await {
                    tracing::warn!(error = %e, hint = hint.as_str(), "token revocation failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        tracing::debug!(
            key = ?inner.key,
            revoked = first_error.is_none(),
            "local tokens purged; revocation done"
        );
        first_error.map_or(Ok(()), Err)
    }

    /// The key this source caches under.
    pub fn cache_key(&self) -> &CacheKey {
        &self.inner.key
    }

    /// The client this source asks.
    pub fn client(&self) -> &OAuthClient {
        &self.inner.client
    }

    /// The fresh cached token without waiting; inside the refresh window this also starts the
    /// one background renewal.
    #[inline]
    pub(crate) fn fast(&self) -> Option<Token> {
        self.fresh(Token::clone)
    }

    /// What a request needs of the fresh cached token, without waiting and without taking a
    /// reference to it: its header value, and its issuance number for
    /// [`invalidate_issue`](Self::invalidate_issue) after a 401. `None` also for a token bound
    /// to another certificate than `presented` (the slow path refuses it with its error).
    #[cfg(feature = "tower")]
    #[inline]
    pub(crate) fn fast_header(&self, presented: Option<&str>) -> Option<(http::HeaderValue, u64)> {
        self.fresh(|token| {
            token
                .fits_certificate(presented)
                .then(|| (token.header_value().clone(), token.issue()))
        })
        .flatten()
    }

    /// `read` applied to the fresh cached token, if there is one; inside the refresh window this
    /// also starts the one background renewal.
    #[inline]
    fn fresh<R>(&self, read: impl FnOnce(&Token) -> R) -> Option<R> {
        let guard = self.inner.state.load();
        let cached = guard.as_deref()?;
        // The cheap reading: it may be a few milliseconds ahead, which only renews a little
        // early, and is never behind, so no expired token goes out.
        let now = self.inner.clock.now_fast();
        if now < cached.refresh_at {
            #[cfg(feature = "metrics")]
            self.inner.metrics.cache_hit();
            return Some(read(&cached.token));
        }
        if now < cached.stale_at {
            if !self.inner.renewing.load(Ordering::Acquire) {
                self.start_background_renewal(now);
            }
            #[cfg(feature = "metrics")]
            self.inner.metrics.cache_hit();
            return Some(read(&cached.token));
        }
        None
    }

    /// Counts a retry of the request path (a 401, a DPoP nonce, a step-up) in the metrics.
    #[cfg(any(feature = "tower", feature = "reqwest"))]
    pub(crate) fn observe_retry(&self, retry: crate::metrics::Retry) {
        #[cfg(feature = "metrics")]
        self.inner.metrics.retry(retry);
        let _ = retry;
    }

    /// Starts the refresh-ahead renewal, unless one just finished or just failed.
    fn start_background_renewal(&self, now: Instant) {
        let mut slow = self.inner.lock_slow();
        // Re-read under the lock: a renewal stores its token (or its failure) before it frees the
        // in-flight slot, so a caller that read the old token just before that starts no second
        // renewal, and a failed one is not retried before the failure memory passes.
        // A background renewal never asks a person; with an interactive flow it needs a refresh
        // token, and without one the renewal waits until a caller who may interact needs it.
        let due = self.inner.state.load().as_deref().is_some_and(|c| {
            now >= c.refresh_at
                && (!self.inner.flow.is_interactive() || c.token.refresh_token().is_some())
        });
        let failed_recently = matches!(&slow.failure, Some((until, _)) if now < *until);
        if due && !failed_recently {
            Inner::start_renewal(&self.inner, &mut slow, false, true);
        }
    }

    async fn slow(&self, interactive: bool) -> Result<Token> {
        let mut outcome = {
            let mut slow = self.inner.lock_slow();
            let now = self.inner.clock.now();
            if let Some(c) = self.inner.state.load().as_deref()
                && now < c.stale_at
            {
                return Ok(c.token.clone());
            }
            match &slow.failure {
                Some((until, err)) if now < *until => return Err(err.clone()),
                Some(_) => slow.failure = None,
                None => {}
            }
            Inner::start_renewal(&self.inner, &mut slow, interactive, false)
        };
        #[cfg(feature = "metrics")]
        self.inner.metrics.renewal_wait();
        match outcome.wait_for(Option::is_some).await {
            Ok(result) => result.clone().unwrap_or_else(|| {
                Err(Error::Internal("renewal finished without a result".into()))
            }),
            Err(_) => Err(Error::Internal(
                "the renewal task ended without a result (did it panic?)".into(),
            )),
        }
    }
}

impl Inner {
    fn lock_slow(&self) -> MutexGuard<'_, Slow> {
        self.slow.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins the renewal in flight, or starts one (`background`: a refresh-ahead renewal no
    /// caller waits for). Called with the slow-path lock held.
    fn start_renewal(
        this: &Arc<Inner>,
        slow: &mut Slow,
        interactive: bool,
        background: bool,
    ) -> watch::Receiver<Outcome> {
        if let Some(rx) = &slow.inflight {
            return rx.clone();
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            let (_, rx) = watch::channel(Some(Err(Error::config(
                "TokenSource needs a tokio runtime to renew tokens",
            ))));
            return rx;
        };
        let (tx, rx) = watch::channel(None);
        slow.inflight = Some(rx.clone());
        this.renewing.store(true, Ordering::Release);
        #[cfg(feature = "metrics")]
        if let Some(current) = this.state.load().as_deref() {
            let left = current
                .token
                .expires_at()
                .saturating_duration_since(this.clock.now());
            this.metrics.renewal_started(left);
        }

        let inner = this.clone();
        runtime.spawn(async move {
            // Clears the in-flight slot even if the renewal panics; waiters then see the channel
            // close and get an error instead of hanging.
            let guard = InflightGuard(inner.clone());
            let result = inner.renew(interactive).await;
            Inner::restore_if_unstored(&inner);
            let renewed = result
                .as_ref()
                .ok()
                .map(|t| (t.expires_at_utc(), t.lifetime()));
            let failure = result.as_ref().err().cloned();
            let result = inner.settle(result);
            let still_serving = result.is_ok();
            #[cfg(feature = "metrics")]
            inner
                .metrics
                .renewal(background, renewed.is_some(), still_serving);
            drop(guard);
            let _ = tx.send(Some(result));
            if let Some(hook) = &inner.on_renewal {
                let outcome = match (renewed, &failure) {
                    (Some((expires_at, lifetime)), _) => RenewalOutcome::Renewed {
                        expires_at,
                        lifetime,
                        background,
                    },
                    (None, Some(error)) => RenewalOutcome::Failed {
                        error,
                        background,
                        still_serving,
                    },
                    (None, None) => return,
                };
                hook(&outcome);
            }
        });
        rx
    }

    /// Gets a new token under the store's renewal lock, if it has one, so that processes
    /// sharing the store make one renewal, not one each (rule 33).
    async fn renew(&self, interactive: bool) -> Result<Token> {
        let (lock, unlocked) = match &self.store {
            Some(store) => match store.lock(&self.key).await {
                Ok(lock) => (lock, false),
                Err(e) => {
                    tracing::warn!(error = %e, "token store lock failed; renewing without it");
                    (None, true)
                }
            },
            None => (None, false),
        };
        let result = self.renew_locked(interactive, unlocked).await;
        if let Some(lock) = lock {
            lock.release().await;
        }
        result
    }

    /// Gets a new token: from the store if another source already renewed (read again now that
    /// the lock is held), else with the refresh token if there is one, else from the flow.
    ///
    /// `unlocked`: the store is shared but its lock could not be taken (Redis unreachable).
    async fn renew_locked(&self, interactive: bool, unlocked: bool) -> Result<Token> {
        let mut unlocked = unlocked;
        let current = self.state.load_full();
        let mut held = current.as_deref().map(|c| c.token.clone());

        if let Some(store) = &self.store {
            match store.load(&self.key).await {
                // Our last renewal spent this refresh token and the store did not take its
                // successor: it is left behind (a failover), and ours is the live one.
                Ok(Some(stored)) if self.unstored.is_spent(&stored) => {
                    tracing::warn!(key = ?self.key, "the store holds a spent refresh token; ignoring it");
                }
                // A store that persists tokens hands back copies, so "the token we hold" is
                // recognised by its value too; otherwise an invalidated token would come back.
                Ok(Some(stored)) if !held.as_ref().is_some_and(|h| same_token(h, &stored)) => {
                    // The clock is read again: loading may take long enough to matter for a
                    // stored token that is already (or almost) expired.
                    if self.clock.now() < self.schedule(&stored).stale_at {
                        tracing::debug!(key = ?self.key, "using a token from the store");
                        self.state.store(Some(Arc::new(self.schedule(&stored))));
                        return Ok(stored);
                    }
                    // Another source (or an earlier run) renewed last: its refresh token is the
                    // live one, and the one we hold (if any) may have been rotated away.
                    if stored.refresh_token().is_some() {
                        held = Some(stored);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "token store read failed; renewing anyway");
                    unlocked = true;
                }
            }
        }

        // Without the store's lock, or without knowing what it holds, another process may be
        // spending the same refresh token at this moment, and with rotating refresh tokens the
        // second use is a reuse that servers answer by revoking the whole grant. A flow that can
        // run without a person gets a grant of this process's own instead; only when it cannot
        // (interactive, or a refresh token flow already used up) is the held one spent.
        if unlocked
            && held.as_ref().is_some_and(|t| t.refresh_token().is_some())
            && !self.flow.is_interactive()
        {
            match self.fetch_new(false).await {
                Err(Error::ReauthenticationRequired(_) | Error::InteractionRequired) => {}
                other => return self.keep(other?, current.as_deref(), None).await,
            }
        }

        let spent = held.as_ref().and_then(|t| t.refresh_token().cloned());
        let result = match spent.clone() {
            Some(refresh_token) => {
                let scope = held.as_ref().and_then(Token::scope);
                let client = held
                    .as_ref()
                    .map_or_else(|| self.client.clone(), |t| self.client_for(t));
                let refreshed = client.refresh_with_scope(&refresh_token, scope).await;
                let refreshed = match &held {
                    Some(held) => refreshed.map(|t| t.keeping_authorization_details(held)),
                    None => refreshed,
                };
                match refreshed {
                    Err(e) if e.is_invalid_grant() => {
                        // Rule 22: that refresh token is dead; never send it again.
                        tracing::debug!("refresh token rejected; purged");
                        if let Some(held) = &held {
                            self.purge_refresh_token(held).await;
                        }
                        match self.fetch_new(interactive).await {
                            Err(Error::ReauthenticationRequired(_)) => Err(e),
                            other => other,
                        }
                    }
                    other => other,
                }
            }
            None => self.fetch_new(interactive).await,
        };

        self.keep(result?, current.as_deref(), spent.as_ref()).await
    }

    /// Stores, announces and caches a token fresh from the server, for a renewal that started
    /// from `current` and spent the refresh token `spent`.
    async fn keep(
        &self,
        token: Token,
        current: Option<&Cached>,
        spent: Option<&SecretString>,
    ) -> Result<Token> {
        if let Some(store) = &self.store {
            // Rule 21: persisted before anyone gets the new access token.
            let saved = store.save(&self.key, &token).await;
            if let Err(refused @ Error::LockLost(_)) = saved {
                return self.after_lost_lock(store, current, refused).await;
            }
            match (saved, spent) {
                (Ok(()), _) => self.unstored.forget(),
                (Err(e), spent) => {
                    tracing::warn!(error = %e, "token store write failed; keeping the token in memory");
                    // The store may still hold the refresh token just spent (see `unstored`).
                    let rotated = |spent: &&SecretString| {
                        token
                            .refresh_token()
                            .is_some_and(|r| r.expose_secret() != spent.expose_secret())
                    };
                    if let Some(spent) = spent.filter(rotated) {
                        self.unstored.remember(spent);
                    }
                }
            }
        }
        if let Some(hook) = &self.on_change {
            hook(&token);
        }
        tracing::debug!(
            key = ?self.key,
            lifetime_s = token.lifetime().as_secs(),
            "new token"
        );
        self.state.store(Some(Arc::new(self.schedule(&token))));
        Ok(token)
    }

    /// The store refused our new token because our renewal lock expired or was taken over
    /// (rule 54): another process is renewing, and what it stores is the current token. Ours is
    /// neither cached nor handed out, since it was never stored and the other process's
    /// renewal may already have spent its grant; the newer stored token is served if it is
    /// there and fresh. Otherwise the renewal fails with the transient refusal: callers keep the
    /// cached token while it is usable, and the next renewal reads the store again.
    async fn after_lost_lock(
        &self,
        store: &Arc<dyn TokenStore>,
        started_from: Option<&Cached>,
        refused: Error,
    ) -> Result<Token> {
        match store.load(&self.key).await {
            Ok(Some(stored))
                if !started_from.is_some_and(|c| same_token(&c.token, &stored))
                    && self.clock.now() < self.schedule(&stored).stale_at =>
            {
                tracing::warn!(
                    key = ?self.key,
                    "renewal lock lost; using the token another process stored"
                );
                self.state.store(Some(Arc::new(self.schedule(&stored))));
                Ok(stored)
            }
            _ => Err(refused),
        }
    }

    /// The client that renews `token`: with DPoP, one that signs with the key the token (and so
    /// its refresh token) is bound to, which may be another process's key read from the store.
    fn client_for(&self, token: &Token) -> OAuthClient {
        #[cfg(feature = "dpop")]
        if let Some(key) = token.dpop_key() {
            return self.client.with_dpop_key(key.clone());
        }
        let _ = token;
        self.client.clone()
    }

    async fn fetch_new(&self, interactive: bool) -> Result<Token> {
        if self.flow.is_interactive() && !interactive {
            return Err(Error::InteractionRequired);
        }
        self.flow.fetch(&self.client).await
    }

    async fn purge_refresh_token(&self, held: &Token) {
        let purged = held.without_refresh_token();
        self.state.rcu(|current| match current.as_deref() {
            Some(c) if c.token.same_as(held) => Some(Arc::new(Cached {
                token: purged.clone(),
                refresh_at: c.refresh_at,
                stale_at: c.stale_at,
                usable_until: c.usable_until,
            })),
            _ => current.clone(),
        });
        if let Some(store) = &self.store
            && let Err(e) = store.delete(&self.key).await
        {
            tracing::warn!(error = %e, "token store delete failed");
        }
    }

    /// After a renewal: remember a failure briefly, or keep serving a still-valid token when the
    /// failure is transient. Returns what the waiters get.
    fn settle(&self, result: Result<Token>) -> Result<Token> {
        let err = match result {
            Ok(token) => return Ok(token),
            Err(err) => err,
        };
        let now = self.clock.now();
        let retry_at = crate::clock::instant_after(
            now,
            self.config
                .failure_memory
                .max(err.retry_after().unwrap_or_default()),
        );
        if err.is_transient() {
            let mut kept = None;
            self.state.rcu(|current| match current.as_deref() {
                Some(c) if now < c.usable_until => {
                    let stale_at = c.stale_at.max(retry_at.min(c.usable_until));
                    kept = Some(c.token.clone());
                    Some(Arc::new(Cached {
                        token: c.token.clone(),
                        refresh_at: retry_at.min(stale_at),
                        stale_at,
                        usable_until: c.usable_until,
                    }))
                }
                _ => {
                    kept = None;
                    current.clone()
                }
            });
            if let Some(token) = kept {
                tracing::warn!(error = %err, "token renewal failed; still serving the current token");
                return Ok(token);
            }
        }
        tracing::warn!(error = %err, "token renewal failed");
        // "A person is needed" depends on who asked, so it is not remembered for the next caller.
        if !matches!(err, Error::InteractionRequired) {
            self.lock_slow().failure = Some((retry_at, err.clone()));
        }
        Err(err)
    }

    /// When a token should be renewed in the background, and when callers must wait.
    fn schedule(&self, token: &Token) -> Cached {
        let lifetime = token.lifetime();
        let expires_at = token.expires_at();
        // The skew never eats more than half the lifetime, so even a 5-second token is usable.
        let skew = self.config.skew.min(lifetime / 2);
        // The background renewal starts this long before the token goes stale, so that callers
        // never wait for it, however short the token; at most half the usable time, so a new
        // token is not renewed the moment it arrives.
        let ahead = lifetime
            .mul_f64(self.config.refresh_fraction)
            .min(self.config.max_refresh_window)
            .min((lifetime - skew) / 2);
        let stale_at = expires_at.checked_sub(skew).unwrap_or(expires_at);
        let mut refresh_at = stale_at.checked_sub(ahead).unwrap_or(stale_at);
        // Server-directed refresh: the server's `refresh_in`, or half-life for a long token; it
        // only ever brings the renewal forward, and never when background renewal is off.
        if self.config.server_directed && !ahead.is_zero() {
            let directed = token.renew_at().or_else(|| {
                (lifetime > HALF_LIFE_REFRESH_ABOVE)
                    .then(|| expires_at.checked_sub(lifetime / 2))
                    .flatten()
            });
            if let Some(directed) = directed {
                refresh_at = refresh_at.min(directed);
            }
        }
        Cached {
            token: token.clone(),
            refresh_at,
            stale_at,
            usable_until: expires_at,
        }
    }
}

/// The same issuance, or a copy of it read back from a store.
fn same_token(a: &Token, b: &Token) -> bool {
    a.same_as(b) || a.access_token().expose_secret() == b.access_token().expose_secret()
}

struct InflightGuard(Arc<Inner>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        let mut slow = self.0.lock_slow();
        slow.inflight = None;
        self.0.renewing.store(false, Ordering::Release);
    }
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.state.load();
        f.debug_struct("TokenSource")
            .field("key", &self.inner.key)
            .field("flow", &self.inner.flow)
            .field("token", &state.as_deref().map(|c| &c.token))
            .finish_non_exhaustive()
    }
}

/// Configures a [`TokenSource`]. See [`TokenSource::builder`].
#[must_use]
pub struct TokenSourceBuilder {
    client: OAuthClient,
    flow: Arc<dyn Flow>,
    config: Config,
    store: Option<Arc<dyn TokenStore>>,
    on_change: Option<ChangeHook>,
    on_renewal: Option<RenewalHook>,
    initial: Option<Token>,
    identity: Option<String>,
}

impl TokenSourceBuilder {
    /// How long before its stated expiry a token counts as expired (default 30 s; never more
    /// than half the token's lifetime). Covers clock differences and request latency.
    pub fn skew(mut self, skew: Duration) -> Self {
        self.config.skew = skew;
        self
    }

    /// How early a token is renewed in the background, as a share of its lifetime (default
    /// 0.1): the renewal starts that long before the token goes stale (its expiry minus the
    /// [`skew`](Self::skew)), so callers keep the old token meanwhile instead of waiting. At most
    /// [`max_refresh_window`](Self::max_refresh_window), and at most half the token's usable
    /// time. 0 turns background renewal off.
    pub fn refresh_fraction(mut self, fraction: f64) -> Self {
        self.config.refresh_fraction = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.1
        };
        self
    }

    /// Whether the server decides when a token is renewed (default `true`): from the instant
    /// its `refresh_in` names ([`Token::renew_at`]), or, for a token that lives longer than
    /// [`HALF_LIFE_REFRESH_ABOVE`] (two hours) and came without one, from half its lifetime.
    /// Either only brings the background renewal forward, never past the
    /// [refresh window](Self::refresh_fraction); callers keep the current token meanwhile.
    /// With a [`refresh_fraction`](Self::refresh_fraction) of 0 there is no background renewal,
    /// server-directed or not.
    pub fn server_directed_refresh(mut self, honour: bool) -> Self {
        self.config.server_directed = honour;
        self
    }

    /// The longest refresh-ahead window (default 5 min): a one-hour token is renewed from 5 min
    /// 30 s before its expiry.
    pub fn max_refresh_window(mut self, window: Duration) -> Self {
        self.config.max_refresh_window = window;
        self
    }

    /// How long a failed renewal is remembered: callers in that time get the same error without
    /// a new request (default 5 s, or longer if the server sent `Retry-After`). Any value is
    /// safe: `Duration::MAX`, or a `Retry-After` of 2^64 - 1 seconds, saturates to a time
    /// centuries away, so the failure stays remembered until [`TokenSource::clear`].
    pub fn failure_memory(mut self, memory: Duration) -> Self {
        self.config.failure_memory = memory;
        self
    }

    /// Whether [`TokenSource::token`] may run an interactive flow (default `true`).
    pub fn interactive(mut self, allowed: bool) -> Self {
        self.config.interactive = allowed;
        self
    }

    /// A store to read through and write through (see [`crate::store`]).
    pub fn store(mut self, store: impl TokenStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// [`store`](Self::store) with a store already shared.
    #[cfg_attr(not(any(feature = "reqwest", feature = "tower")), allow(dead_code))]
    pub(crate) fn store_arc(mut self, store: Arc<dyn TokenStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Called with every token obtained from the server, after it is stored and before it is
    /// handed out. Keep it quick; it runs inside the renewal.
    pub fn on_token_change(mut self, hook: impl Fn(&Token) + Send + Sync + 'static) -> Self {
        self.on_change = Some(Arc::new(hook));
        self
    }

    /// Called once after each renewal, background or not, with how it ended: the new token's
    /// expiry, or the error and whether callers keep the current token. Unlike
    /// [`on_token_change`](Self::on_token_change), which sees only new tokens, this sees
    /// failures too, for alerting on a renewal that keeps failing while an old token is still
    /// served. It runs after the renewal's waiters have their result; keep it quick.
    ///
    /// ```no_run
    /// use oauth_layer::{OAuthClient, RenewalOutcome, TokenSource, flow::ClientCredentials};
    ///
    /// # fn run(client: OAuthClient) {
    /// let tokens = TokenSource::builder(client, ClientCredentials::new())
    ///     .on_renewal(|outcome| {
    ///         if let RenewalOutcome::Failed { error, still_serving, .. } = outcome {
    ///             eprintln!("token renewal failed: {error} (still serving: {still_serving})");
    ///         }
    ///     })
    ///     .build();
    /// # let _ = tokens; }
    /// ```
    pub fn on_renewal(
        mut self,
        hook: impl Fn(&RenewalOutcome<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.on_renewal = Some(Arc::new(hook));
        self
    }

    /// Tells this source's tokens apart from those of other sources with the same client and
    /// grant in a shared store (httr2's `cache_key`): for example one per person when a tool
    /// signs several people in.
    pub fn identity(mut self, identity: impl Into<String>) -> Self {
        self.identity = Some(identity.into());
        self
    }

    /// A token to start with (for example one saved by an earlier run).
    pub fn initial_token(mut self, token: Token) -> Self {
        self.initial = Some(token);
        self
    }

    /// The source, after checking its flow against the client's security
    /// [profile](crate::profile) ([`Flow::conforms`]).
    ///
    /// # Errors
    ///
    /// [`Error::Config`](crate::Error::Config) naming the requirement of the profile the flow
    /// breaks (the password grant, or a sign-in without PKCE or pushed requests under FAPI 2.0).
    ///
    /// ```
    /// use oauth_layer::{OAuthClient, TokenSource, dpop::Dpop, flow::Password, jwt::SigningKey, profile::Profile};
    ///
    /// # fn pem() -> Vec<u8> { std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/test_keys/dpop_p256.pem")).unwrap() }
    /// let client = OAuthClient::builder("bank-app")
    ///     .signing_key(SigningKey::es256_pem(pem())?)
    ///     .issuer("https://bank.example")
    ///     .token_url("https://bank.example/token")
    ///     .dpop(Dpop::new())
    ///     .profile(Profile::Fapi2)
    ///     .build()?;
    /// let refused = TokenSource::builder(client, Password::new("ann", "pw")).try_build();
    /// assert!(refused.unwrap_err().to_string().contains("password"));
    /// # Ok::<(), oauth_layer::Error>(())
    /// ```
    pub fn try_build(self) -> crate::Result<TokenSource> {
        self.flow.conforms(&self.client)?;
        Ok(self.build())
    }

    /// The source. A flow that breaks the client's security [profile](crate::profile) is
    /// logged at `error` level and every token request of the source fails with that error
    /// (no cached or stored token is served either); [`try_build`](Self::try_build) reports it
    /// here instead.
    pub fn build(mut self) -> TokenSource {
        if let Err(error) = self.flow.conforms(&self.client) {
            tracing::error!(%error, "the token source's flow breaks the client's profile");
            self.flow = Arc::new(Refused {
                error,
                flow: self.flow,
            });
        }
        let mut key = self.flow.cache_key(&self.client);
        // With DPoP, the source's own key (fresh unless the client has a fixed one): its flow
        // and its refreshes sign with it, and its tokens are bound to it.
        #[cfg(feature = "dpop")]
        let client = match self.client.dpop().map(crate::dpop::Dpop::key_for_source) {
            Some(Ok(key)) => self.client.with_dpop_key(key),
            Some(Err(e)) => {
                tracing::error!(error = %e, "cannot generate a DPoP key; using the client's");
                self.client
            }
            None => self.client,
        };
        #[cfg(not(feature = "dpop"))]
        let client = self.client;
        if let Some(identity) = &self.identity {
            key = key.with_part("identity", identity.clone());
        }
        #[cfg(feature = "metrics")]
        let metrics = crate::metrics::SourceMetrics::new(&client, &key);
        let inner = Arc::new(Inner {
            clock: client.clock_arc(),
            client,
            flow: self.flow,
            key,
            config: self.config,
            store: self.store,
            on_change: self.on_change,
            on_renewal: self.on_renewal,
            #[cfg(feature = "metrics")]
            metrics,
            state: ArcSwapOption::empty(),
            renewing: AtomicBool::new(false),
            slow: Mutex::new(Slow::default()),
            upgrades: upgrade::Upgrades::new(self.identity),
            unstored: unstored::Unstored::default(),
        });
        if let Some(token) = self.initial {
            inner.state.store(Some(Arc::new(inner.schedule(&token))));
        }
        #[cfg(feature = "metrics")]
        {
            let weak = Arc::downgrade(&inner);
            inner.metrics.watch_expiry(move || {
                let inner = weak.upgrade()?;
                let state = inner.state.load();
                let cached = state.as_deref()?;
                Some(
                    cached
                        .token
                        .expires_at()
                        .saturating_duration_since(inner.clock.now()),
                )
            });
        }
        TokenSource { inner }
    }
}

/// A flow that breaks the client's profile: it never runs, and its tokens are never served
/// (its cache key differs from the flow's own).
#[derive(Debug)]
struct Refused {
    error: crate::Error,
    flow: Arc<dyn Flow>,
}

#[async_trait::async_trait]
impl Flow for Refused {
    async fn fetch(&self, _client: &OAuthClient) -> crate::Result<Token> {
        Err(self.error.clone())
    }

    fn cache_key(&self, client: &OAuthClient) -> CacheKey {
        self.flow
            .cache_key(client)
            .with_part("refused", "breaks the client's profile")
    }

    fn is_interactive(&self) -> bool {
        self.flow.is_interactive()
    }

    fn conforms(&self, _client: &OAuthClient) -> crate::Result<()> {
        Err(self.error.clone())
    }
}

impl fmt::Debug for TokenSourceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSourceBuilder")
            .field("flow", &self.flow)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
