//! reqwest clients built alike, one per tokio runtime, so that back-channel requests reuse
//! their connections.
//!
//! A pooled hyper connection is driven by a task spawned on the runtime that opened it. Once
//! that runtime is gone, the connection is dead, yet a client shared by the whole process would
//! still hand it to a request on another runtime, which then fails ("runtime dropped the
//! dispatch task") or hangs: many `#[tokio::test]` runtimes in one test binary, or a program
//! that drops its runtime and makes another. So the process-wide clients used to keep no idle
//! connection at all, and every token request paid a new connection and TLS handshake.
//!
//! Here each runtime gets its own client with reqwest's ordinary idle pool. The client is
//! forgotten when its runtime shuts down: a small task spawned on the runtime holds a guard
//! whose drop removes the entry, and a runtime drops every task it still owns when it shuts
//! down. The task also ends, without removing anything, when the [`PerRuntime`] itself is
//! dropped, so an `OAuthClient` with its own transport leaves no task behind.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use tokio::runtime::{Handle, Id};
use tokio::sync::oneshot;

use crate::error::{TransportError, TransportErrorKind};

type Clients = Mutex<HashMap<Id, Entry>>;

/// reqwest clients made by one recipe, one per live tokio runtime.
pub(crate) struct PerRuntime {
    recipe: Box<dyn Fn() -> reqwest::ClientBuilder + Send + Sync>,
    clients: Arc<Clients>,
    /// Numbers the entries, so that a guard removes only the entry it was made for.
    serial: AtomicU64,
    /// For a caller outside any runtime: a client without idle connections, as before.
    unpooled: OnceLock<Result<reqwest::Client, String>>,
}

struct Entry {
    client: reqwest::Client,
    serial: u64,
    /// Dropped with the entry; the runtime's guard task then ends.
    _alive: oneshot::Sender<()>,
}

/// Held by the task spawned on a runtime: dropped when the runtime shuts down (or when the
/// entry is gone), it removes the runtime's entry.
struct Forget {
    clients: Weak<Clients>,
    id: Id,
    serial: u64,
}

impl Drop for Forget {
    fn drop(&mut self) {
        let Some(clients) = self.clients.upgrade() else {
            return;
        };
        let removed = {
            let mut clients = lock(&clients);
            match clients.get(&self.id) {
                Some(entry) if entry.serial == self.serial => clients.remove(&self.id),
                _ => None,
            }
        };
        // The client (and its pool) is dropped outside the lock.
        drop(removed);
    }
}

fn lock(clients: &Clients) -> std::sync::MutexGuard<'_, HashMap<Id, Entry>> {
    clients.lock().unwrap_or_else(PoisonError::into_inner)
}

fn build_failed(e: reqwest::Error) -> TransportError {
    TransportError::new(
        TransportErrorKind::Other,
        format!(
            "the default transport cannot be built: {}",
            super::deepest(&e)
        ),
    )
}

impl PerRuntime {
    /// Clients from `recipe` (which sets everything but the pool).
    pub(crate) fn new(recipe: impl Fn() -> reqwest::ClientBuilder + Send + Sync + 'static) -> Self {
        Self {
            recipe: Box::new(recipe),
            clients: Arc::default(),
            serial: AtomicU64::new(0),
            unpooled: OnceLock::new(),
        }
    }

    /// The current runtime's client, made on first use; outside a runtime, a client that keeps
    /// no idle connection.
    pub(crate) fn client(&self) -> Result<reqwest::Client, TransportError> {
        let Ok(runtime) = Handle::try_current() else {
            return self.unpooled();
        };
        let id = runtime.id();
        if let Some(entry) = lock(&self.clients).get(&id) {
            return Ok(entry.client.clone());
        }
        let client = (self.recipe)().build().map_err(build_failed)?;
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let (alive, ended) = oneshot::channel();
        {
            let mut clients = lock(&self.clients);
            if let Some(entry) = clients.get(&id) {
                // Another caller on this runtime got here first.
                return Ok(entry.client.clone());
            }
            clients.insert(
                id,
                Entry {
                    client: client.clone(),
                    serial,
                    _alive: alive,
                },
            );
        }
        let forget = Forget {
            clients: Arc::downgrade(&self.clients),
            id,
            serial,
        };
        // On a runtime already shutting down the task is dropped at once, and so is the entry.
        drop(runtime.spawn(async move {
            let _forget = forget;
            let _ = ended.await;
        }));
        Ok(client)
    }

    fn unpooled(&self) -> Result<reqwest::Client, TransportError> {
        self.unpooled
            .get_or_init(|| {
                (self.recipe)()
                    .pool_max_idle_per_host(0)
                    .build()
                    .map_err(|e| super::deepest(&e))
            })
            .clone()
            .map_err(|e| {
                TransportError::new(
                    TransportErrorKind::Other,
                    format!("the default transport cannot be built: {e}"),
                )
            })
    }

    /// How many runtimes hold a client now.
    #[cfg(test)]
    fn runtimes(&self) -> usize {
        lock(&self.clients).len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn clients() -> PerRuntime {
        PerRuntime::new(reqwest::Client::builder)
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    #[test]
    fn a_runtime_keeps_one_client_and_forgets_it_when_it_shuts_down() {
        let clients = clients();
        let first = runtime();
        first.block_on(async {
            clients.client().unwrap();
            clients.client().unwrap();
        });
        assert_eq!(clients.runtimes(), 1);
        let second = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        second.block_on(async { clients.client().unwrap() });
        assert_eq!(clients.runtimes(), 2);
        drop(first);
        assert_eq!(clients.runtimes(), 1);
        drop(second);
        assert_eq!(clients.runtimes(), 0);
    }

    #[test]
    fn outside_a_runtime_the_client_is_unpooled_and_nothing_is_kept() {
        let clients = clients();
        clients.client().unwrap();
        assert_eq!(clients.runtimes(), 0);
    }

    #[test]
    fn dropping_the_clients_ends_the_guard_task() {
        let runtime = runtime();
        let clients = clients();
        runtime.block_on(async { clients.client().unwrap() });
        let tasks = || runtime.metrics().num_alive_tasks();
        assert_eq!(tasks(), 1);
        drop(clients);
        runtime.block_on(async {
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
        });
        assert_eq!(tasks(), 0);
    }
}
