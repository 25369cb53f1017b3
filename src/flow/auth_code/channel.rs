//! A receiver fed by the application's own callback handler, for web apps that serve the
//! redirect URI themselves.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use tokio::sync::{Mutex, OwnedMutexGuard, mpsc};

use super::callback::{Callback, Checked, ReceivedCode};
use super::receiver::{CodeReceiver, PreparedReceiver, ReceiveContext};
use super::request::AuthorizationRequest;
use crate::error::{Error, Result};

/// How many callbacks may wait to be checked. More than this at once is a flood; the extra ones
/// are dropped (and `send` says so).
const QUEUE: usize = 32;

/// A receiver fed by your own callback handler: a pair made by [`callback_channel`].
///
/// Serves one sign-in at a time: a second sign-in's `prepare` waits until the first one ends
/// (with a code, an error or its timeout). The redirect URI is the one given to
/// [`callback_channel`], whatever [`AuthCode::redirect_uri`](super::AuthCode::redirect_uri)
/// says, since that is where your handler listens.
pub struct ChannelReceiver {
    redirect_uri: String,
    rx: Arc<Mutex<mpsc::Receiver<Callback>>>,
    shared: Arc<Shared>,
}

/// The sending end of [`callback_channel`]: your redirect URI's handler gives it what arrived.
/// Cheap to clone.
#[derive(Clone)]
pub struct CallbackSender {
    tx: mpsc::Sender<Callback>,
    shared: Arc<Shared>,
}

struct Shared {
    /// A sign-in is between `prepare` and the end of `receive`.
    waiting: AtomicBool,
}

/// A receiver for web apps that handle the redirect themselves: route the redirect URI to your
/// own handler, and have it pass the query to the [`CallbackSender`]. The sign-in checks each
/// callback (SECURITY.md rules 1–5): ones with a wrong or missing state are ignored and the wait
/// goes on; the first that answers the sign-in ends it, with a code or a typed error. The wait
/// ends at the flow's timeout with [`Error::Timeout`], measured in tokio time.
///
/// ```
/// use oauth_layer::flow::{AuthCode, auth_code::{Callback, callback_channel}};
///
/// let (receiver, sender) = callback_channel("https://app.example/oauth/callback");
/// let flow = AuthCode::new().receiver(receiver);
///
/// // In the handler for https://app.example/oauth/callback:
/// let query = "code=abc&state=xyz";
/// let accepted = sender.send(Callback::from_query(query));
/// // Not waited for: no sign-in is under way, so the handler can answer with an error page.
/// assert!(!accepted);
/// # let _ = flow;
/// ```
pub fn callback_channel(redirect_uri: impl Into<String>) -> (ChannelReceiver, CallbackSender) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let shared = Arc::new(Shared {
        waiting: AtomicBool::new(false),
    });
    (
        ChannelReceiver {
            redirect_uri: redirect_uri.into(),
            rx: Arc::new(Mutex::new(rx)),
            shared: shared.clone(),
        },
        CallbackSender { tx, shared },
    )
}

impl CallbackSender {
    /// Hands a callback to the sign-in that is waiting. Never blocks. Returns `false` when no
    /// sign-in is waiting (none started, it ended, or the receiver is gone) or too many
    /// callbacks are queued; the callback is then dropped. `true` only means it will be checked:
    /// one that does not answer the sign-in is ignored.
    pub fn send(&self, callback: Callback) -> bool {
        self.shared.waiting.load(Ordering::SeqCst) && self.tx.try_send(callback).is_ok()
    }

    /// `true` while a sign-in is waiting for its callback.
    pub fn is_waiting(&self) -> bool {
        self.shared.waiting.load(Ordering::SeqCst) && !self.tx.is_closed()
    }
}

impl fmt::Debug for CallbackSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackSender")
            .field("waiting", &self.is_waiting())
            .finish()
    }
}

impl fmt::Debug for ChannelReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelReceiver")
            .field("redirect_uri", &self.redirect_uri)
            .field("waiting", &self.shared.waiting.load(Ordering::SeqCst))
            .finish()
    }
}

#[async_trait]
impl CodeReceiver for ChannelReceiver {
    async fn prepare(&self, configured: Option<&str>) -> Result<Box<dyn PreparedReceiver>> {
        if let Some(configured) = configured.filter(|c| *c != self.redirect_uri) {
            tracing::debug!(
                configured,
                channel = %self.redirect_uri,
                "the callback channel's redirect URI replaces the configured one"
            );
        }
        let mut rx = self.rx.clone().lock_owned().await;
        // Whatever came while no sign-in was waiting cannot answer this one.
        while rx.try_recv().is_ok() {}
        self.shared.waiting.store(true, Ordering::SeqCst);
        Ok(Box::new(PreparedChannel {
            redirect_uri: self.redirect_uri.clone(),
            rx,
            shared: self.shared.clone(),
        }))
    }
}

/// One sign-in's hold on the channel: it alone reads callbacks until it is dropped.
struct PreparedChannel {
    redirect_uri: String,
    rx: OwnedMutexGuard<mpsc::Receiver<Callback>>,
    shared: Arc<Shared>,
}

impl Drop for PreparedChannel {
    fn drop(&mut self) {
        self.shared.waiting.store(false, Ordering::SeqCst);
    }
}

#[async_trait]
impl PreparedReceiver for PreparedChannel {
    fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    async fn receive(
        mut self: Box<Self>,
        request: &AuthorizationRequest,
        context: &ReceiveContext,
    ) -> Result<ReceivedCode> {
        let timeout = context.timeout();
        let deadline = tokio::time::Instant::from_std(crate::clock::instant_after(
            tokio::time::Instant::now().into_std(),
            timeout,
        ));
        loop {
            let callback = match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Err(_) => {
                    return Err(Error::Timeout(format!(
                        "no callback answered the sign-in within {timeout:?}"
                    )));
                }
                Ok(None) => {
                    return Err(Error::config(
                        "every CallbackSender was dropped, so no callback can arrive",
                    ));
                }
                Ok(Some(callback)) => callback,
            };
            match request.check_callback(&callback) {
                Checked::Done(result) => return result,
                Checked::NotOurs(e) => {
                    tracing::debug!(error = %e, "ignored a callback that does not answer this sign-in");
                }
            }
        }
    }
}
