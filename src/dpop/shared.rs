//! Nonces shared by the processes of a fleet through a store ([`Dpop::share_nonces`]).
//!
//! Without sharing, each replica of a service learns each server's nonce on its own: one
//! `use_dpop_nonce` round trip per replica per server, and again after every rotation. With a
//! [`NonceStore`], a replica asks the store before its first proof for a server (and again every
//! [`shared_nonce_refresh`](Dpop::shared_nonce_refresh)), and writes every nonce it learns
//! from a response (and did not just read from the store) through to the store, in the
//! background.
//!
//! [`Dpop::share_nonces`]: super::Dpop::share_nonces
//! [`Dpop`]: super::Dpop

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::Nonces;
use super::nonce::{MAX_ORIGINS, well_formed};
use crate::error::Result;

/// The longest a look-up in the shared store may hold up a request. A nonce only saves one
/// round trip to the server, so waiting longer for it than such a round trip is a loss; a
/// look-up that runs out counts as "no nonce known".
const LOOKUP_TIMEOUT: Duration = Duration::from_millis(250);
/// A nonce still in use is written again after this long, so a store that expires entries
/// (the Redis store keeps them 10 minutes) keeps a long-lived nonce for new processes.
const SAVE_AGAIN_AFTER: Duration = Duration::from_secs(5 * 60);
/// The longest a background write may take before it is given up.
const SAVE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a process trusts what it knows about a server's nonce before it asks the store
/// again, by default ([`Dpop::shared_nonce_refresh`](super::Dpop::shared_nonce_refresh)).
pub(crate) const DEFAULT_REFRESH: Duration = Duration::from_secs(5);

/// Where the processes of a fleet share the DPoP nonces servers hand out, so that one process's
/// `use_dpop_nonce` round trip spares the others theirs ([`Dpop::share_nonces`]).
///
/// Keys are short strings naming a server and its role (the token endpoint's nonces and a
/// resource's are kept apart, even at one origin); a store may hash them. Values are nonces as
/// servers send them: at most 1024 visible ASCII characters. Nonces are not secrets, but a
/// store should not print them either. A store should keep an entry for at least ten minutes;
/// a nonce in use is written again every five. Whatever a store answers is checked: a value
/// that is not a well-formed nonce is ignored.
///
/// Failures are never fatal: a look-up that fails or takes longer than 250 ms counts as "no
/// nonce known" (the request then meets the server's challenge, as without sharing), and a
/// failed write is logged at debug level.
///
/// [`RedisStore`](crate::store::RedisStore) (feature `redis-store`) is one; another shared
/// key-value service takes a few lines (with the `async-trait` crate):
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use oauth_layer::dpop::{Dpop, NonceStore};
///
/// /// Stands in for a service all processes reach.
/// #[derive(Debug, Default)]
/// struct KeyValue(Mutex<HashMap<String, String>>);
///
/// #[async_trait::async_trait]
/// impl NonceStore for KeyValue {
///     async fn load(&self, key: &str) -> oauth_layer::Result<Option<String>> {
///         Ok(self.0.lock().unwrap().get(key).cloned())
///     }
///     async fn save(&self, key: &str, nonce: &str) -> oauth_layer::Result<()> {
///         self.0.lock().unwrap().insert(key.to_owned(), nonce.to_owned());
///         Ok(())
///     }
/// }
///
/// let dpop = Dpop::new().share_nonces(KeyValue::default());
/// # let _ = dpop;
/// ```
///
/// [`Dpop::share_nonces`]: super::Dpop::share_nonces
#[async_trait]
pub trait NonceStore: Send + Sync + fmt::Debug + 'static {
    /// The latest nonce saved under `key`, if any.
    async fn load(&self, key: &str) -> Result<Option<String>>;
    /// Saves `nonce` as the latest under `key`, replacing what was there.
    async fn save(&self, key: &str, nonce: &str) -> Result<()>;
}

/// A [`NonceStore`] and what this process knows about its use: when it last asked the store
/// about each key, the look-up in flight, the writes in flight and the last write.
pub(crate) struct SharedNonces {
    store: Arc<dyn NonceStore>,
    by_key: Mutex<VecDeque<(String, Known)>>,
}

#[derive(Default)]
struct Known {
    /// When the store was last asked about the key.
    asked: Option<Instant>,
    /// Held while the store is asked, so concurrent first requests make one look-up and all
    /// use its answer.
    gate: Arc<tokio::sync::Mutex<()>>,
    /// Writes of this process under way: the store is about to hold what this process learned
    /// last, so an answer read meanwhile is older and must not replace it.
    writing: usize,
    /// The nonce last written, and when.
    saved: Option<(Arc<str>, Instant)>,
}

impl SharedNonces {
    pub(crate) fn new(store: Arc<dyn NonceStore>) -> Self {
        Self {
            store,
            by_key: Mutex::default(),
        }
    }

    fn known(&self) -> MutexGuard<'_, VecDeque<(String, Known)>> {
        self.by_key.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on what is known about `key`, made now if nothing is (the oldest key is
    /// forgotten first).
    fn with<T>(&self, key: &str, f: impl FnOnce(&mut Known) -> T) -> T {
        let mut known = self.known();
        if let Some(i) = known.iter().position(|(k, _)| k == key) {
            return f(&mut known[i].1);
        }
        if known.len() >= MAX_ORIGINS {
            known.pop_front();
        }
        known.push_back((key.to_owned(), Known::default()));
        let last = known.len() - 1;
        f(&mut known[last].1)
    }

    /// Whether the store should be asked about `key` now (never asked, or last asked more than
    /// `refresh` ago, and no write of this process under way).
    fn due(known: &Known, refresh: Duration) -> bool {
        known.writing == 0 && known.asked.is_none_or(|at| at.elapsed() >= refresh)
    }

    /// Asks the store for `key`'s nonce when that is due, and keeps a well-formed answer in
    /// `local`. At most one look-up per key at a time; callers that arrive meanwhile wait for
    /// it (bounded by the look-up timeout) and then read `local`.
    pub(crate) async fn refresh(&self, key: &str, local: &Nonces, refresh: Duration) {
        let Some(gate) = self.with(key, |k| Self::due(k, refresh).then(|| k.gate.clone())) else {
            return;
        };
        let _one_at_a_time = gate.lock().await;
        if !self.with(key, |k| Self::due(k, refresh)) {
            return;
        }
        let answer = tokio::time::timeout(LOOKUP_TIMEOUT, self.store.load(key)).await;
        let usable = match &answer {
            Ok(Ok(Some(nonce))) if well_formed(nonce) => Some(nonce.as_str()),
            _ => None,
        };
        self.with(key, |k| {
            let now = Instant::now();
            k.asked = Some(now);
            // A write of this process under way is newer than this answer.
            if let Some(nonce) = usable.filter(|_| k.writing == 0) {
                local.set(key, nonce);
                // The store holds it already: the responses that carry it back are not
                // written again (a fleet of readers makes no writes, and a slow write of a
                // nonce read earlier cannot land on top of a newer one).
                k.saved = Some((nonce.into(), now));
            }
        });
        match answer {
            Ok(Ok(Some(nonce))) if well_formed(&nonce) => {}
            Ok(Ok(Some(_))) => {
                tracing::debug!(key, "ignoring a shared DPoP nonce that is not a nonce");
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::debug!(key, error = %e, "shared DPoP nonce not read"),
            Err(_) => tracing::debug!(
                key,
                timeout_ms = LOOKUP_TIMEOUT.as_millis(),
                "shared DPoP nonce not read in time"
            ),
        }
    }

    /// Writes `nonce`, just learned from a response, through to the store in the background
    /// when it is new (or was last written long ago). Outside a Tokio runtime nothing is
    /// written.
    pub(crate) fn learned(self: &Arc<Self>, key: &str, nonce: &Arc<str>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let now = Instant::now();
        let write = self.with(key, |k| {
            let fresh = matches!(&k.saved, Some((saved, at))
                if **saved == **nonce && now.duration_since(*at) < SAVE_AGAIN_AFTER);
            if !fresh {
                k.saved = Some((nonce.clone(), now));
                k.writing += 1;
            }
            !fresh
        });
        if !write {
            return;
        }
        let shared = self.clone();
        let key = key.to_owned();
        let nonce = nonce.clone();
        runtime.spawn(async move {
            match tokio::time::timeout(SAVE_TIMEOUT, shared.store.save(&key, &nonce)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(key, error = %e, "shared DPoP nonce not written"),
                Err(_) => tracing::debug!(key, "shared DPoP nonce not written in time"),
            }
            shared.with(&key, |k| k.writing = k.writing.saturating_sub(1));
        });
    }
}

impl fmt::Debug for SharedNonces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedNonces")
            .field("store", &self.store)
            .field("keys", &self.known().len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A store in memory that counts its calls.
    #[derive(Debug, Default)]
    struct Counting {
        value: Mutex<Option<String>>,
        loads: AtomicUsize,
        saves: AtomicUsize,
    }

    #[async_trait]
    impl NonceStore for Counting {
        async fn load(&self, _: &str) -> Result<Option<String>> {
            self.loads.fetch_add(1, Ordering::SeqCst);
            Ok(self.value.lock().unwrap().clone())
        }

        async fn save(&self, _: &str, nonce: &str) -> Result<()> {
            self.saves.fetch_add(1, Ordering::SeqCst);
            *self.value.lock().unwrap() = Some(nonce.to_owned());
            Ok(())
        }
    }

    fn shared() -> (Arc<Counting>, Arc<SharedNonces>, Nonces) {
        let store = Arc::new(Counting::default());
        let shared = Arc::new(SharedNonces::new(store.clone()));
        (store, shared, Nonces::default())
    }

    #[tokio::test(start_paused = true)]
    async fn no_nonce_in_the_store_is_remembered_until_the_refresh_interval_passes() {
        let (store, shared, local) = shared();
        let refresh = Duration::from_secs(5);
        for _ in 0..100 {
            shared.refresh("as:https://idp:443", &local, refresh).await;
        }
        assert_eq!(store.loads.load(Ordering::SeqCst), 1, "asked once");
        assert!(local.get("as:https://idp:443").is_none());

        tokio::time::advance(Duration::from_secs(4)).await;
        shared.refresh("as:https://idp:443", &local, refresh).await;
        assert_eq!(store.loads.load(Ordering::SeqCst), 1, "still remembered");
        // Another key is another question.
        shared.refresh("rs:https://api:443", &local, refresh).await;
        assert_eq!(store.loads.load(Ordering::SeqCst), 2);

        *store.value.lock().unwrap() = Some("from-another-process".into());
        tokio::time::advance(Duration::from_secs(1)).await;
        shared.refresh("as:https://idp:443", &local, refresh).await;
        assert_eq!(store.loads.load(Ordering::SeqCst), 3, "asked again");
        assert_eq!(
            local.get("as:https://idp:443").as_deref(),
            Some("from-another-process")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_first_requests_make_one_look_up() {
        let (store, shared, local) = shared();
        *store.value.lock().unwrap() = Some("n".into());
        let local = Arc::new(local);
        let mut all = Vec::new();
        for _ in 0..50 {
            let (shared, local) = (shared.clone(), local.clone());
            all.push(tokio::spawn(async move {
                shared.refresh("k", &local, DEFAULT_REFRESH).await;
                local.get("k")
            }));
        }
        for one in all {
            assert_eq!(one.await.unwrap().as_deref(), Some("n"));
        }
        assert_eq!(store.loads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn garbage_in_the_store_is_ignored() {
        for garbage in ["", "has space", "quo\"te", &"x".repeat(2000), "é"] {
            let (store, shared, local) = shared();
            *store.value.lock().unwrap() = Some(garbage.to_owned());
            shared.refresh("k", &local, DEFAULT_REFRESH).await;
            assert!(local.get("k").is_none(), "{garbage:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_nonce_is_written_once_and_again_only_when_old() {
        let (store, shared, _) = shared();
        let nonce: Arc<str> = "n1".into();
        for _ in 0..10 {
            shared.learned("k", &nonce);
        }
        tokio::task::yield_now().await;
        assert_eq!(store.saves.load(Ordering::SeqCst), 1);
        shared.learned("k", &"n2".into());
        tokio::task::yield_now().await;
        assert_eq!(store.saves.load(Ordering::SeqCst), 2);
        tokio::time::advance(SAVE_AGAIN_AFTER).await;
        shared.learned("k", &"n2".into());
        tokio::task::yield_now().await;
        assert_eq!(store.saves.load(Ordering::SeqCst), 3);
        assert_eq!(store.value.lock().unwrap().as_deref(), Some("n2"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_nonce_read_from_the_store_is_not_written_back() {
        let (store, shared, local) = shared();
        *store.value.lock().unwrap() = Some("n1".into());
        shared.refresh("k", &local, DEFAULT_REFRESH).await;
        // Every response carries the nonce this process read: nothing to write.
        for _ in 0..10 {
            shared.learned("k", &"n1".into());
        }
        tokio::task::yield_now().await;
        assert_eq!(store.saves.load(Ordering::SeqCst), 0);
        // A rotation this process learns first is written.
        shared.learned("k", &"n2".into());
        tokio::task::yield_now().await;
        assert_eq!(store.saves.load(Ordering::SeqCst), 1);
        assert_eq!(store.value.lock().unwrap().as_deref(), Some("n2"));
    }

    /// A store that never answers.
    #[derive(Debug)]
    struct Silent;

    #[async_trait]
    impl NonceStore for Silent {
        async fn load(&self, _: &str) -> Result<Option<String>> {
            std::future::pending().await
        }

        async fn save(&self, _: &str, _: &str) -> Result<()> {
            std::future::pending().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_store_holds_a_request_up_for_the_look_up_timeout_once() {
        let shared = SharedNonces::new(Arc::new(Silent));
        let local = Nonces::default();
        let start = Instant::now();
        shared.refresh("k", &local, DEFAULT_REFRESH).await;
        shared.refresh("k", &local, DEFAULT_REFRESH).await;
        assert_eq!(start.elapsed(), LOOKUP_TIMEOUT);
        assert!(local.get("k").is_none());
    }
}
