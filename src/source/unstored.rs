//! A rotated refresh token the store did not take. When a renewal spends a refresh token and
//! the store then refuses its successor for a reason other than a lost lock (Redis
//! unreachable, or replicas that never confirmed a durable write across a failover), the store
//! may still hold the refresh token just spent. Sent again, by this source or by another
//! process reading the store, it is a reuse, and a rotating server revokes the whole grant.
//!
//! So the source remembers the spent refresh token: it never takes it from the store again,
//! and it writes its own newer token back, under the store's lock, until the store has it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::{Inner, same_token};
use crate::store::TokenStore;
use crate::token::Token;

/// The first and the longest pause between two attempts at writing the newer token back.
const RESTORE_PAUSE_MIN: Duration = Duration::from_millis(100);
const RESTORE_PAUSE_MAX: Duration = Duration::from_secs(2);

/// How many spent refresh tokens are remembered while the store takes none of their
/// successors (each refused renewal adds one; the store holds one of them).
const MAX_SPENT: usize = 16;

/// The refresh tokens the source's renewals spent since the store last took a token, while
/// the store may still hold one of them.
#[derive(Default)]
pub(super) struct Unstored {
    spent: Mutex<Spent>,
    /// Whether a task is writing the newer token back.
    restoring: AtomicBool,
}

#[derive(Default)]
struct Spent {
    tokens: Vec<SecretString>,
    /// Counts [`Unstored::remember`] calls, so a write-back forgets only what it covered.
    generation: u64,
}

impl Unstored {
    /// The store refused the successor of `spent`.
    pub(super) fn remember(&self, spent: &SecretString) {
        let mut held = self.lock();
        if held.tokens.len() == MAX_SPENT {
            held.tokens.remove(0);
        }
        held.tokens.push(spent.clone());
        held.generation += 1;
    }

    /// The store holds the source's newest token.
    pub(super) fn forget(&self) {
        self.lock().tokens.clear();
    }

    /// Forgets the spent tokens unless a later renewal has remembered another one since
    /// `generation`.
    fn forget_unless_newer(&self, generation: u64) {
        let mut held = self.lock();
        if held.generation == generation {
            held.tokens.clear();
        }
    }

    /// Whether `stored` carries a refresh token this source spent and could not replace.
    pub(super) fn is_spent(&self, stored: &Token) -> bool {
        let Some(refresh) = stored.refresh_token() else {
            return false;
        };
        self.lock()
            .tokens
            .iter()
            .any(|spent| spent.expose_secret() == refresh.expose_secret())
    }

    fn pending(&self) -> bool {
        !self.lock().tokens.is_empty()
    }

    /// The generation of the spent tokens, when there are any.
    fn generation(&self) -> Option<u64> {
        let held = self.lock();
        (!held.tokens.is_empty()).then_some(held.generation)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Spent> {
        self.spent.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    /// After a renewal: if the store did not take its token, starts (once) the task that
    /// writes it back.
    pub(super) fn restore_if_unstored(this: &Arc<Inner>) {
        if !this.unstored.pending() || this.unstored.restoring.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            this.unstored.restoring.store(false, Ordering::Release);
            return;
        };
        tracing::warn!(
            "the token store did not take the rotated refresh token and may still hold the \
             spent one; writing the new one back until it lands"
        );
        runtime.spawn(restore(Arc::downgrade(this)));
    }

    /// One attempt, under the store's lock: writes the current token (read once the lock is
    /// held, so a renewal that finished meanwhile is not undone) unless the store holds a token
    /// that is neither it nor the spent one (another process renewed since). `true` when
    /// nothing is left to do.
    async fn restore_once(&self, store: &Arc<dyn TokenStore>) -> bool {
        let lock = match store.lock(&self.key).await {
            Ok(lock) => lock,
            Err(e) => {
                tracing::debug!(error = %e, "token store lock failed; writing back later");
                return false;
            }
        };
        let current = self.state.load_full();
        let done = match current.as_deref().map(|c| &c.token) {
            Some(ours) if !self.unstored.is_spent(ours) => self.write_back(store, ours).await,
            _ => true,
        };
        if let Some(lock) = lock {
            lock.release().await;
        }
        done
    }

    /// Writes `ours` unless the store holds another process's newer token; `true` when done.
    async fn write_back(&self, store: &Arc<dyn TokenStore>, ours: &Token) -> bool {
        match store.load(&self.key).await {
            Ok(Some(stored)) if !same_token(&stored, ours) && !self.unstored.is_spent(&stored) => {
                true
            }
            Ok(_) => match store.save(&self.key, ours).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::debug!(error = %e, "token store write failed; writing back later");
                    false
                }
            },
            Err(e) => {
                tracing::debug!(error = %e, "token store read failed; writing back later");
                false
            }
        }
    }
}

/// Writes the source's current token back, with a growing pause, until the store has it, the
/// store holds another process's newer token, a later renewal stored its own, or the source is
/// gone.
async fn restore(source: Weak<Inner>) {
    let mut pause = RESTORE_PAUSE_MIN;
    loop {
        tokio::time::sleep(pause).await;
        let Some(inner) = source.upgrade() else {
            return;
        };
        pause = (pause * 2).min(RESTORE_PAUSE_MAX);
        let done = match (&inner.store, inner.unstored.generation()) {
            (Some(store), Some(generation)) => {
                let done = inner.restore_once(store).await;
                if done {
                    inner.unstored.forget_unless_newer(generation);
                }
                done
            }
            _ => true,
        };
        if !done {
            continue;
        }
        // A renewal may have remembered another spent token meanwhile, and found this task
        // running: it is this task's to write back too.
        inner.unstored.restoring.store(false, Ordering::Release);
        if !inner.unstored.pending() || inner.unstored.restoring.swap(true, Ordering::AcqRel) {
            return;
        }
        pause = RESTORE_PAUSE_MIN;
    }
}
