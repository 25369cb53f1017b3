//! [`OAuthGrpcLayer`] and [`OAuthGrpcService`]: [`OAuthLayer`] for tonic channels.

use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::trailers::{TrailersBody, WatchTrailers};
use crate::request::plan::Attach;
use crate::tower::{OAuthLayer, OAuthService, RecordingBody, ResponseFuture};
use crate::transport::BoxError;

impl<G> OAuthLayer<G> {
    /// This layer for gRPC over tonic (feature `tonic`): a call answered `UNAUTHENTICATED`
    /// renews the token, like a `401` does over plain HTTP.
    ///
    /// - A trailers-only `UNAUTHENTICATED` (the usual rejection, what tonic's interceptors send)
    ///   drops the token sent and retries the call once with a renewed one: tonic's request
    ///   bodies are recorded as they stream ([`RecordingBody`], up to 4 MiB) so they can be sent
    ///   again. A second `UNAUTHENTICATED` is the call's answer.
    /// - An `UNAUTHENTICATED` in the trailers (the server began to answer first) drops the token
    ///   sent, so the next call renews; that call gets its status, it is not retried.
    ///
    /// Call it last: the grant's settings (`scope`, `audience`) come before it. Give the tonic
    /// client the channel's origin (`tonic::client::Grpc::with_origin`, or the generated
    /// client's `with_origin`) so the layer sees where the call goes: a tonic client made with
    /// `new` sends a path alone, and the layer then cannot check the origin and withholds the
    /// token.
    ///
    /// ```no_run
    /// use oauth_layer::{OAuthClient, OAuthLayer};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = OAuthClient::builder("my-client-id")
    ///     .secret("s3cret")
    ///     .token_url("https://idp.example/oauth/token")
    ///     .build()?;
    /// let origin: http::Uri = "https://grpc.example".parse()?;
    /// let channel = tonic::transport::Channel::builder(origin.clone()).connect_lazy();
    /// let service = tower::ServiceBuilder::new()
    ///     .layer(OAuthLayer::client_credentials(client).scope("api").grpc())
    ///     .service(channel);
    /// let grpc = tonic::client::Grpc::with_origin(service, origin);
    /// # let _ = grpc; Ok(()) }
    /// ```
    pub fn grpc(self) -> OAuthGrpcLayer {
        OAuthGrpcLayer {
            attach: self.attach,
        }
    }
}

/// [`OAuthLayer`] for tonic channels, made by [`OAuthLayer::grpc`].
#[derive(Debug, Clone)]
#[must_use]
pub struct OAuthGrpcLayer {
    attach: Attach,
}

impl<S> Layer<S> for OAuthGrpcLayer {
    type Service = OAuthGrpcService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let watch = WatchTrailers::new(inner, self.attach.source.clone());
        OAuthGrpcService {
            inner: OAuthService::new(watch, self.attach.clone()),
        }
    }
}

/// The service [`OAuthGrpcLayer`] wraps around a tonic channel: an [`OAuthService`] whose
/// requests carry [`RecordingBody`]s and whose responses are watched for `UNAUTHENTICATED` in
/// their trailers.
#[derive(Debug, Clone)]
pub struct OAuthGrpcService<S> {
    inner: OAuthService<WatchTrailers<S>>,
}

impl<S> OAuthGrpcService<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        self.inner.get_ref().get_ref()
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        self.inner.get_mut().get_mut()
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner.into_inner().into_inner()
    }

    /// The token source calls are authorized from.
    pub fn source(&self) -> &crate::TokenSource {
        self.inner.source()
    }
}

impl<S, ResB> Service<Request<tonic::body::Body>> for OAuthGrpcService<S>
where
    S: Service<Request<tonic::body::Body>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
{
    type Response = Response<TrailersBody<ResB>>;
    type Error = BoxError;
    type Future = ResponseFuture<WatchTrailers<S>, RecordingBody<tonic::body::Body>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<tonic::body::Body>) -> Self::Future {
        self.inner.call(request.map(RecordingBody::new))
    }
}
