//! [`WatchTrailers`]: dropping a token that a gRPC server rejected in its trailers.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::request::challenge::grpc_unauthenticated;
use crate::source::TokenSource;
use crate::tower::RecordingBody;

/// The inner half of [`OAuthGrpcService`](super::OAuthGrpcService), between the layer and the
/// channel: it hands the channel tonic's own body type, and wraps each response body in a
/// [`TrailersBody`] that remembers the token the call carried.
#[derive(Clone)]
pub struct WatchTrailers<S> {
    inner: S,
    source: TokenSource,
}

impl<S> WatchTrailers<S> {
    pub(crate) fn new(inner: S, source: TokenSource) -> Self {
        Self { inner, source }
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
}

impl<S: fmt::Debug> fmt::Debug for WatchTrailers<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchTrailers")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ResB> Service<Request<RecordingBody<tonic::body::Body>>> for WatchTrailers<S>
where
    S: Service<Request<tonic::body::Body>, Response = Response<ResB>>,
{
    type Response = Response<TrailersBody<ResB>>;
    type Error = S::Error;
    type Future = WatchTrailersFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<RecordingBody<tonic::body::Body>>) -> Self::Future {
        // Only a token this layer's source attached is dropped: a caller's own header, or a token
        // from another source, never matches the source's cached one.
        let watch = request.headers().get(AUTHORIZATION).map(|sent| Watch {
            source: self.source.clone(),
            sent: sent.clone(),
        });
        WatchTrailersFuture {
            fut: self.inner.call(request.map(tonic::body::Body::new)),
            watch,
        }
    }
}

pin_project! {
    /// The response future of [`WatchTrailers`].
    pub struct WatchTrailersFuture<F> {
        #[pin]
        fut: F,
        watch: Option<Watch>,
    }
}

impl<F, ResB, E> Future for WatchTrailersFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = Result<Response<TrailersBody<ResB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.fut.poll(cx))?;
        let watch = this.watch.take();
        Poll::Ready(Ok(response.map(|inner| TrailersBody { inner, watch })))
    }
}

/// The token a call carried, and the source to drop it from.
struct Watch {
    source: TokenSource,
    sent: HeaderValue,
}

impl Watch {
    /// The server rejected the token sent: drop it if it is still the cached one (a newer one
    /// stays), so the next call renews.
    fn rejected(self) {
        if let Some(cached) = self.source.cached()
            && cached.header_value() == self.sent
            && self.source.invalidate(&cached)
        {
            tracing::debug!("grpc-status UNAUTHENTICATED in trailers: token dropped");
        }
    }
}

pin_project! {
    /// A gRPC response body that drops the token its call carried when its trailers say
    /// `UNAUTHENTICATED`. Everything else passes through untouched.
    pub struct TrailersBody<B> {
        #[pin]
        inner: B,
        watch: Option<Watch>,
    }
}

impl<B> Body for TrailersBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && let Some(trailers) = frame.trailers_ref()
            && grpc_unauthenticated(trailers)
            && let Some(watch) = this.watch.take()
        {
            watch.rejected();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> fmt::Debug for TrailersBody<B> {
    // The watch holds the token: it never prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrailersBody")
            .field("watching", &self.watch.is_some())
            .finish_non_exhaustive()
    }
}
