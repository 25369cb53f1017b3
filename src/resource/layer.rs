//! [`ResourceLayer`] and [`ResourceService`]: the tower side of the resource-first client.

use std::task::{Context, Poll};

use std::sync::Arc;

use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;
use url::Url;

use super::{Resolved, ResourceClient};
use crate::OAuthLayer;
use crate::discovery::resource::ResourceIdentifier;
use crate::request::plan::RequestAuth;
use crate::tower::ResponseFuture;
use crate::tower::replay::{Replay, ReplayableBody};
use crate::transport::BoxError;

/// A tower layer that gives each request to a configured resource that resource's token,
/// finding the authorization server, the client identity and the token the first time the
/// resource answers `401` (see [`crate::resource`]).
///
/// Made with [`OAuthLayer::for_resource`] or [`OAuthLayer::for_resources`]. Requests need an
/// absolute URI (as hyper-util's client takes them); requests to anything but a configured
/// resource go out untouched, without a token.
#[derive(Debug, Clone)]
pub struct ResourceLayer {
    client: ResourceClient,
}

impl OAuthLayer {
    /// A layer for the protected resource at `url`, with the defaults of
    /// [`ResourceClient::new`] (see [`OAuthMiddleware::for_resource`](crate::OAuthMiddleware::for_resource)).
    pub fn for_resource(url: impl AsRef<str>) -> crate::Result<ResourceLayer> {
        Ok(Self::for_resources(ResourceClient::new(url)?))
    }

    /// A layer for the resources `client` is configured with.
    pub fn for_resources(client: ResourceClient) -> ResourceLayer {
        ResourceLayer { client }
    }
}

impl ResourceLayer {
    /// The resource-first client inside (clones share what it discovered).
    pub fn client(&self) -> &ResourceClient {
        &self.client
    }
}

impl<S> Layer<S> for ResourceLayer {
    type Service = ResourceService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ResourceService {
            inner,
            client: self.client.clone(),
        }
    }
}

/// The service [`ResourceLayer`] wraps around yours.
#[derive(Debug, Clone)]
pub struct ResourceService<S> {
    inner: S,
    client: ResourceClient,
}

impl<S, B, ResB> Service<Request<B>> for ResourceService<S>
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

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let resource = Url::parse(&request.uri().to_string())
            .ok()
            .and_then(|url| self.client.resource_for(&url).cloned());
        // The readied service goes with this request; a clone stays for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let Some(resource) = resource else {
            return ResponseFuture::sent(inner.call(request), None);
        };
        if let Some(done) = self.client.resolved(&resource) {
            return done.layer.layer(inner).call(request);
        }
        if request.headers().contains_key(AUTHORIZATION) {
            return ResponseFuture::sent(inner.call(request), None);
        }
        match request.extensions().get::<RequestAuth>() {
            Some(RequestAuth::Source(source)) => {
                // Another source's token for this one request, to this resource's origin only.
                let origin = [resource.as_url().origin().ascii_serialization()];
                return match OAuthLayer::from_source(source.clone()).allow_origins(origin) {
                    Ok(layer) => layer.layer(inner).call(request),
                    Err(e) => ResponseFuture::boxed(Box::pin(std::future::ready(Err(e.into())))),
                };
            }
            Some(_) => return ResponseFuture::sent(inner.call(request), None),
            None => {}
        }
        let client = self.client.clone();
        ResponseFuture::boxed(Box::pin(discover_and_send(
            inner, request, client, resource,
        )))
    }
}

/// The first request to a resource not discovered yet: sent without a token (unless this
/// process knows the resource already), then, after its `401`, discovery and the request again
/// with the token.
async fn discover_and_send<S, B, ResB>(
    mut inner: S,
    request: Request<B>,
    client: ResourceClient,
    resource: ResourceIdentifier,
) -> Result<Response<ResB>, BoxError>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: ReplayableBody + Send + 'static,
    ResB: Send + 'static,
{
    if client.knows_or_recalls(&resource).await {
        let done = client.resolve(&resource, None).await?;
        return send_to(&client, &resource, done, inner, request).await;
    }
    let replay = Replay::of(&request, || inner.clone());
    let asked = request.uri().clone();
    let response = inner.call(request).await.map_err(Into::into)?;
    // Only the resource's own answer counts: a 401 from wherever a redirect led is no word of
    // the resource's.
    let answered_elsewhere = response
        .extensions()
        .get::<tower_http::follow_redirect::RequestUri>()
        .is_some_and(|answered| !same_origin(&asked, &answered.0));
    if response.status() != StatusCode::UNAUTHORIZED || answered_elsewhere {
        return Ok(response);
    }
    let done = client.resolve(&resource, Some(response.headers())).await?;
    match replay.and_then(|replay| replay.into_parts()) {
        Some((service, request)) => {
            tracing::debug!(resource = %resource, "sending the first request again, with a token");
            send_to(&client, &resource, done, service, request).await
        }
        None => Ok(response),
    }
}

/// Sends `request` through the ordinary layer of the discovered resource, over `inner`.
async fn send_to<S, B, ResB>(
    client: &ResourceClient,
    resource: &ResourceIdentifier,
    done: Arc<Resolved>,
    inner: S,
    request: Request<B>,
) -> Result<Response<ResB>, BoxError>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: ReplayableBody + Send + 'static,
    ResB: Send + 'static,
{
    let result = send(done.layer.layer(inner), request).await;
    if result.is_err() {
        client.forget_if_unused(resource, &done);
    }
    result
}

fn same_origin(a: &http::Uri, b: &http::Uri) -> bool {
    a.scheme() == b.scheme() && a.host() == b.host() && a.port_u16() == b.port_u16()
}

async fn send<S, B>(mut service: S, request: Request<B>) -> Result<S::Response, BoxError>
where
    S: Service<Request<B>, Error = BoxError>,
{
    std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
    service.call(request).await
}
