//! [`OAuthService`]: the service the layer wraps around yours.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::ResponseFuture;
use super::future::{Retry, Waiting, authorize_and_send, send_withheld};
use super::redirect::{follows_redirects, hides_unsafe_redirects};
use super::replay::{Replay, ReplayableBody};
use crate::error::Error;
use crate::request::plan::{Attach, Plan, set_header};
use crate::source::{LocalCache, TokenSource};
use crate::transport::BoxError;

/// A service that attaches bearer tokens to requests for its inner service. Made by
/// [`OAuthLayer`](super::OAuthLayer).
///
/// Errors are boxed: the inner service's own errors, or an [`Error`](crate::Error) when no token
/// could be had (downcast to act on it).
#[derive(Debug, Clone)]
pub struct OAuthService<S> {
    inner: S,
    /// Behind one reference count: callers that share the service across tasks clone it for
    /// every request (`svc.clone().oneshot(request)`), and the clone then takes one reference
    /// where it took one for each shared part of the settings.
    attach: Arc<Attach>,
    /// `attach.source`'s cached token, read through this service's own reference to it.
    cache: LocalCache,
    /// How the inner service handles redirects, as far as its type tells.
    redirects: InnerRedirects,
    /// Whether the source's tokens are DPoP-bound (each request then needs its own proof).
    sender_constrained: bool,
}

/// Whether `source`'s client binds tokens with DPoP.
fn is_sender_constrained(source: &TokenSource) -> bool {
    #[cfg(feature = "dpop")]
    return source.client().dpop().is_some();
    #[cfg(not(feature = "dpop"))]
    {
        let _ = source;
        false
    }
}

/// What the layer knows of the redirects its inner service follows (SECURITY.md rule 25).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InnerRedirects {
    /// None that the type shows.
    None,
    /// tower-http's `FollowRedirect` with [`RedirectPolicy`](super::RedirectPolicy): hops to
    /// other origins go without the token, and their answers are not ours to act on.
    Safe,
    /// tower-http's `FollowRedirect` with another policy: it would re-send the token on hops we
    /// cannot see, so every request is refused.
    Unsafe,
}

impl<S> OAuthService<S> {
    pub(crate) fn new(inner: S, attach: Attach) -> Self {
        let cache = LocalCache::new(&attach.source);
        let redirects = if hides_unsafe_redirects::<S>() {
            tracing::error!(service = std::any::type_name::<S>(), "{}", UNSAFE_REDIRECTS);
            InnerRedirects::Unsafe
        } else if follows_redirects::<S>() {
            InnerRedirects::Safe
        } else {
            InnerRedirects::None
        };
        Self {
            inner,
            sender_constrained: is_sender_constrained(&attach.source),
            attach: Arc::new(attach),
            cache,
            redirects,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The token source requests are authorized from.
    pub fn source(&self) -> &TokenSource {
        &self.attach.source
    }
}

impl<S, B, ResB> Service<Request<B>> for OAuthService<S>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: ReplayableBody + Send + 'static,
    ResB: Send + 'static,
{
    type Response = Response<ResB>;
    type Error = BoxError;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        if self.redirects == InnerRedirects::Unsafe {
            return ResponseFuture::boxed(Box::pin(std::future::ready(Err(Error::config(
                UNSAFE_REDIRECTS,
            )
            .into()))));
        }
        let plan = self
            .attach
            .plan(request.uri(), request.headers(), request.extensions());
        // `missed`: the fast path was tried and found no fresh token (the boxed path then goes
        // straight to the source's slow path).
        let (fresh, per_request, missed) = match plan {
            // A DPoP-bound token needs a proof made for this request: the boxed path makes it.
            Plan::Attach if self.sender_constrained => (None, None, false),
            Plan::AttachFrom(source) if is_sender_constrained(&source) => {
                (None, Some(source), false)
            }
            Plan::AsIs => return ResponseFuture::sent(self.inner.call(request), None),
            Plan::Withheld(withheld) => {
                return ResponseFuture::boxed(Box::pin(send_withheld(
                    self.inner.call(request),
                    *withheld,
                )));
            }
            Plan::Attach => (
                self.cache
                    .fast_header(&self.attach.source, self.attach.presented()),
                None,
                true,
            ),
            Plan::AttachFrom(source) => (
                source.fast_header(self.attach.presented()),
                Some(source),
                true,
            ),
        };
        let source = per_request.unwrap_or_else(|| self.attach.source.clone());
        let interactive = self.attach.is_interactive();
        let Some((header, issue)) = fresh else {
            let clone = self.inner.clone();
            let inner = std::mem::replace(&mut self.inner, clone);
            return ResponseFuture::boxed(Box::pin(authorize_and_send(
                inner,
                request,
                source,
                Waiting {
                    interactive,
                    retry_after_401: self.attach.retry_after_401,
                    redirects: self.redirects,
                    missed,
                },
                self.attach.presented_shared(),
            )));
        };
        // The copy for the retry is taken before the token goes in: the retry sets its own, and
        // the token that failed is not kept in a second place. The readied service goes with the
        // copy (it is called for this request, and again after a 401); a clone stays for the
        // next request.
        let mut replay = if self.attach.retry_after_401 {
            Replay::of(&request, || {
                let clone = self.inner.clone();
                std::mem::replace(&mut self.inner, clone)
            })
        } else {
            None
        };
        let sent_to =
            (self.redirects == InnerRedirects::Safe).then(|| Box::new(request.uri().clone()));
        set_header(request.headers_mut(), header);
        let fut = match replay.as_deref_mut() {
            Some(replay) => replay.service_mut().call(request),
            None => self.inner.call(request),
        };
        let retry = Retry {
            replay,
            source,
            used: issue,
            interactive,
            sent_to,
            presented: self.attach.presented_shared(),
        };
        ResponseFuture::sent(fut, Some(retry))
    }
}

const UNSAFE_REDIRECTS: &str = "OAuthLayer wraps a tower-http FollowRedirect whose policy would \
    re-send the token on redirect hops to other origins (it copies the first request's headers \
    to every hop); put the FollowRedirect layer outside OAuthLayer (before it in the \
    ServiceBuilder), or give it oauth_layer::tower::RedirectPolicy";
