//! Getting the authorization code back: the [`CodeReceiver`] seam and what receivers share.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::callback::ReceivedCode;
use super::pages::LoopbackPages;
use super::request::AuthorizationRequest;
use crate::client::OAuthClient;
use crate::clock::Clock;
use crate::error::Result;
use crate::interact::Prompt;

/// A way to receive the authorization response: the loopback server, a pasted URL, a hosted
/// platform's code source, or your own (a web app that handles the callback itself).
#[async_trait]
pub trait CodeReceiver: fmt::Debug + Send + Sync + 'static {
    /// Gets ready to receive (binds a port, for instance) and says which redirect URI the
    /// authorization request must name. `configured` is the redirect URI the flow was given, if
    /// any.
    async fn prepare(&self, configured: Option<&str>) -> Result<Box<dyn PreparedReceiver>>;
}

/// A receiver that is ready: it knows its redirect URI and waits for the answer.
#[async_trait]
pub trait PreparedReceiver: Send {
    /// The redirect URI to put in the authorization request.
    fn redirect_uri(&self) -> &str;

    /// `true` when the receiver shows the authorization URL to the person itself (as pasting
    /// does), so the flow need not show it too.
    fn shows_url(&self) -> bool {
        false
    }

    /// `true` when the receiver may accept an answer that carries no `state` (a bare pasted
    /// code): only PKCE then ties the code to this sign-in, so the flow refuses to run it with
    /// PKCE off, with [`Error::Config`](crate::Error::Config), before any browser opens.
    fn requires_pkce(&self) -> bool {
        false
    }

    /// `false` when the receiver cannot pass on a signed authorization response (JARM's single
    /// `response` parameter), as the hosted receiver, which reads plain codes by state: a flow
    /// with [`AuthCode::jarm`](super::AuthCode::jarm) then fails with
    /// [`Error::Config`](crate::Error::Config) before any browser opens.
    fn reads_signed_responses(&self) -> bool {
        true
    }

    /// Waits for the callback that answers `request` and returns its code. Callbacks that are not
    /// answers to it are ignored; the wait ends at `context.timeout()`.
    async fn receive(
        self: Box<Self>,
        request: &AuthorizationRequest,
        context: &ReceiveContext,
    ) -> Result<ReceivedCode>;
}

/// What a receiver may use while it waits.
#[derive(Debug, Clone)]
pub struct ReceiveContext {
    pub(crate) client: OAuthClient,
    pub(crate) prompt: Arc<dyn Prompt>,
    pub(crate) timeout: Duration,
    pub(crate) pages: Arc<LoopbackPages>,
}

impl ReceiveContext {
    /// The client (its transport and clock serve back-channel polling).
    pub fn client(&self) -> &OAuthClient {
        &self.client
    }

    /// The way to talk to the person.
    pub fn prompt(&self) -> &dyn Prompt {
        &*self.prompt
    }

    /// How long to wait for the answer in all: the flow's [`timeout`](super::AuthCode::timeout).
    /// (The code exchange after it has its own deadline.)
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The clock to measure the wait with.
    pub fn clock(&self) -> &dyn Clock {
        self.client.clock()
    }
}
