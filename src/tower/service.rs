//! [`OAuthService`]: the service the layer wraps around yours.

use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::ResponseFuture;
use super::future::{Retry, authorize_and_send};
use super::replay::{ReplayableBody, try_clone_request};
use crate::attach::{Attach, Plan, set_token};
use crate::http::BoxError;
use crate::source::TokenSource;

/// A service that attaches bearer tokens to requests for its inner service. Made by
/// [`OAuthLayer`](super::OAuthLayer).
///
/// Errors are boxed: the inner service's own errors, or an [`Error`](crate::Error) when no token
/// could be had (downcast to act on it).
#[derive(Debug, Clone)]
pub struct OAuthService<S> {
    inner: S,
    attach: Attach,
}

impl<S> OAuthService<S> {
    pub(crate) fn new(inner: S, attach: Attach) -> Self {
        Self { inner, attach }
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

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let source = match self
            .attach
            .plan(request.uri(), request.headers(), request.extensions())
        {
            Plan::AsIs => return ResponseFuture::sent(self.inner.call(request), None),
            Plan::Attach(source) => source,
        };
        match source.fast() {
            Some(token) => {
                set_token(request.headers_mut(), &token);
                let copy = if self.attach.retry_after_401 {
                    try_clone_request(&request)
                } else {
                    None
                };
                let (fut, replay) = match copy {
                    // The readied service goes with this request, to be called again after a
                    // 401; a clone stays for the next request.
                    Some(copy) => {
                        let clone = self.inner.clone();
                        let mut inner = std::mem::replace(&mut self.inner, clone);
                        (inner.call(request), Some((inner, copy)))
                    }
                    None => (self.inner.call(request), None),
                };
                let retry = Retry {
                    replay,
                    source,
                    used: token,
                    attach: self.attach.clone(),
                };
                ResponseFuture::sent(fut, Some(retry))
            }
            None => {
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::boxed(Box::pin(authorize_and_send(
                    inner,
                    request,
                    source,
                    self.attach.clone(),
                )))
            }
        }
    }
}
