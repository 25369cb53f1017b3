//! [`ResourceMiddleware`]: the reqwest-middleware side of the resource-first client.

use std::sync::Arc;

use http::Extensions;
use http::header::AUTHORIZATION;
use reqwest::{Request, Response, StatusCode};
use reqwest_middleware::{Middleware, Next};

use super::{Resolved, ResourceClient};
use crate::OAuthMiddleware;
use crate::discovery::resource::ResourceIdentifier;
use crate::request::plan::RequestAuth;

/// A reqwest-middleware middleware that gives each request to a configured resource that
/// resource's token, finding the authorization server, the client identity and the token the
/// first time the resource answers `401` (see [`crate::resource`]).
///
/// Made with [`OAuthMiddleware::for_resource`] or [`OAuthMiddleware::for_resources`].
/// Requests to anything but a configured resource go out untouched, without a token.
#[derive(Debug, Clone)]
pub struct ResourceMiddleware {
    client: ResourceClient,
}

impl OAuthMiddleware {
    /// A middleware for the protected resource at `url`, with the defaults of
    /// [`ResourceClient::new`]: the first request finds out where its tokens come from, the
    /// client registers itself where the server allows it, a person signs in, and the request
    /// is sent again with the token.
    ///
    /// ```no_run
    /// use oauth_layer::OAuthMiddleware;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let http = reqwest_middleware::ClientBuilder::new(oauth_layer::reqwest::client_builder().build()?)
    ///     .with(OAuthMiddleware::for_resource("https://mcp.example/mcp")?)
    ///     .build();
    /// let answer = http.get("https://mcp.example/mcp").send().await?;
    /// # let _ = answer; Ok(()) }
    /// ```
    pub fn for_resource(url: impl AsRef<str>) -> crate::Result<ResourceMiddleware> {
        Ok(Self::for_resources(ResourceClient::new(url)?))
    }

    /// A middleware for the resources `client` is configured with.
    pub fn for_resources(client: ResourceClient) -> ResourceMiddleware {
        ResourceMiddleware { client }
    }
}

impl ResourceMiddleware {
    /// The resource-first client inside (clones share what it discovered).
    pub fn client(&self) -> &ResourceClient {
        &self.client
    }
}

impl ResourceMiddleware {
    /// Sends `request` through the ordinary middleware of the discovered resource.
    async fn send(
        &self,
        resource: &ResourceIdentifier,
        done: Arc<Resolved>,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let result = done.middleware.handle(request, extensions, next).await;
        if result.is_err() {
            self.client.forget_if_unused(resource, &done);
        }
        result
    }
}

#[async_trait::async_trait]
impl Middleware for ResourceMiddleware {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let Some(resource) = self.client.resource_for(request.url()).cloned() else {
            return next.run(request, extensions).await;
        };
        if let Some(done) = self.client.resolved(&resource) {
            return self.send(&resource, done, request, extensions, next).await;
        }
        // The caller's own credentials, or a request told to go without: no discovery.
        if request.headers().contains_key(AUTHORIZATION) {
            return next.run(request, extensions).await;
        }
        match extensions.get::<RequestAuth>() {
            Some(RequestAuth::Source(source)) => {
                // Another source's token for this one request, to this resource's origin only.
                let origin = [resource.as_url().origin().ascii_serialization()];
                return OAuthMiddleware::from_source(source.clone())
                    .allow_origins(origin)
                    .map_err(reqwest_middleware::Error::middleware)?
                    .handle(request, extensions, next)
                    .await;
            }
            Some(_) => return next.run(request, extensions).await,
            None => {}
        }
        // Known to this process already (another client found it): no need to ask first.
        if self.client.knows_or_recalls(&resource).await {
            let done = self
                .client
                .resolve(&resource, None)
                .await
                .map_err(reqwest_middleware::Error::middleware)?;
            return self.send(&resource, done, request, extensions, next).await;
        }
        let replay = request.try_clone();
        let asked = request.url().origin();
        let response = next.clone().run(request, extensions).await?;
        // Only the resource's own answer counts: a 401 from wherever a redirect led is no
        // word of the resource's.
        if response.status() != StatusCode::UNAUTHORIZED || response.url().origin() != asked {
            return Ok(response);
        }
        let done = self
            .client
            .resolve(&resource, Some(response.headers()))
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        match replay {
            Some(request) => {
                tracing::debug!(resource = %resource, "sending the first request again, with a token");
                self.send(&resource, done, request, extensions, next).await
            }
            None => {
                tracing::debug!(
                    resource = %resource,
                    "the first request's body cannot be sent again; its 401 is returned and the \
                     next request gets a token"
                );
                Ok(response)
            }
        }
    }
}
