//! What discovery learned, kept for every resource-first client of the process: a second
//! client (or a second middleware over the same resources) fetches nothing again.

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::discovery::resource::ProtectedResourceMetadata;
use crate::metadata::Metadata;

/// How long a fetched document is used before it is fetched again. Servers rarely change their
/// metadata, and a client that keeps a token keeps the server it came from anyway; an hour
/// bounds how long a changed document goes unnoticed by new resources of a process.
pub(crate) const LIFETIME: Duration = Duration::from_secs(60 * 60);

/// The most documents of each kind kept; the oldest is forgotten first.
const CAPACITY: usize = 256;

/// Documents by URL-like key, each with when it was fetched.
pub(crate) struct Documents<T> {
    entries: Mutex<VecDeque<(String, T, Instant)>>,
}

impl<T: Clone> Documents<T> {
    const fn new() -> Self {
        Self {
            entries: Mutex::new(VecDeque::new()),
        }
    }

    /// The document kept under `key`, when it is younger than [`LIFETIME`].
    pub(crate) fn get(&self, key: &str) -> Option<T> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .iter()
            .find(|(k, _, at)| k == key && at.elapsed() < LIFETIME)
            .map(|(_, doc, _)| doc.clone())
    }

    /// Keeps `doc` under `key`, replacing an older one.
    pub(crate) fn put(&self, key: &str, doc: T) {
        self.put_at(key, doc, Instant::now());
    }

    /// Keeps `doc`, fetched at `fetched` (by another process), under `key`.
    pub(crate) fn put_at(&self, key: &str, doc: T, fetched: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|(k, _, _)| k != key);
        if entries.len() >= CAPACITY {
            entries.pop_front();
        }
        entries.push_back((key.to_owned(), doc, fetched));
    }

    /// Forgets `key` (a document that led nowhere).
    pub(crate) fn forget(&self, key: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|(k, _, _)| k != key);
    }
}

/// Checked protected resource metadata, by resource identifier, with the scopes the challenge
/// that led to it asked for.
pub(crate) fn resources() -> &'static Documents<(ProtectedResourceMetadata, Option<String>)> {
    static DOCS: OnceLock<Documents<(ProtectedResourceMetadata, Option<String>)>> = OnceLock::new();
    DOCS.get_or_init(Documents::new)
}

/// Checked authorization server metadata, by issuer.
pub(crate) fn servers() -> &'static Documents<Metadata> {
    static DOCS: OnceLock<Documents<Metadata>> = OnceLock::new();
    DOCS.get_or_init(Documents::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn documents_expire_and_the_oldest_goes_first() {
        let docs = Documents::<u32>::new();
        docs.put("a", 1);
        assert_eq!(docs.get("a"), Some(1));
        tokio::time::advance(LIFETIME).await;
        assert_eq!(docs.get("a"), None, "too old");
        for i in 0..=CAPACITY {
            docs.put(&i.to_string(), 0);
        }
        assert_eq!(docs.get("0"), None, "forgotten first");
        assert_eq!(docs.get(&CAPACITY.to_string()), Some(0));
        docs.forget(&CAPACITY.to_string());
        assert_eq!(docs.get(&CAPACITY.to_string()), None);
    }
}
