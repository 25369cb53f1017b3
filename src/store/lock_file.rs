//! The renewal lock of the stores that live on one machine (the file store and the keychain
//! store): an OS file lock on a `.lock` file, taken with a bounded, backing-off wait, and the
//! blocking-thread runner both stores use for their file and keychain calls.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::RenewalLock;
use crate::error::{Error, Result};

/// The longest pause between two tries for a lock held by another process.
const MAX_LOCK_PAUSE: Duration = Duration::from_millis(50);

/// A held `.lock` file. Closing the file (on drop, or when the process dies) also frees it.
pub(super) struct FileLock {
    file: File,
}

impl FileLock {
    /// Tries `try_lock` until it hands over a locked file or `timeout` passes, pausing 2 ms,
    /// then twice as long each time up to 50 ms. `path` names the lock in the timeout error.
    pub(super) fn wait(
        timeout: Duration,
        path: &Path,
        mut try_lock: impl FnMut() -> Result<Option<File>>,
    ) -> Result<Self> {
        let deadline = crate::clock::instant_after(Instant::now(), timeout);
        let mut pause = Duration::from_millis(2);
        loop {
            if let Some(file) = try_lock()? {
                return Ok(Self { file });
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Store(format!(
                    "timed out after {timeout:?} waiting for the renewal lock {} (another \
                     process is renewing this token)",
                    path.display()
                )));
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(MAX_LOCK_PAUSE);
        }
    }
}

#[async_trait]
impl RenewalLock for FileLock {
    async fn release(self: Box<Self>) {
        let file = self.file;
        let _ = tokio::task::spawn_blocking(move || {
            let _ = fs4::FileExt::unlock(&file);
        })
        .await;
    }
}

/// Runs a store's file or keychain work on a blocking thread; `what` names the store in the
/// error a panic or a cancelled task becomes.
pub(super) async fn blocking<T: Send + 'static>(
    what: &str,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        Error::Internal(if e.is_panic() {
            format!("a {what} task panicked")
        } else {
            format!("a {what} task was cancelled")
        })
    })?
}
