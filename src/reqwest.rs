//! The reqwest-middleware integration: [`OAuthMiddleware`] gives every request of a
//! `reqwest_middleware::ClientWithMiddleware` a valid bearer token.
//!
//! A single request can use other credentials, or none, by carrying a [`RequestAuth`](crate::RequestAuth) extension
//! (`RequestBuilder::with_extension`), like httr2's per-request `req_oauth_*()`.
//!
//! Redirects: reqwest follows them below the middleware and drops `Authorization` itself when
//! the host or port changes; build the client with `redirect::Policy::none()` to be stricter.

use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};

use crate::attach::{Attach, Plan, Shorthand, calls_for_renewal, set_token};
use crate::source::TokenSource;
use crate::token::Token;

/// A reqwest-middleware middleware that attaches a valid bearer token from one shared
/// [`TokenSource`], renews it before it expires, and after a 401 renews and retries once (when
/// the request body can be cloned).
///
/// ```
/// use oauth_layer::{OAuthClient, OAuthMiddleware};
///
/// # fn build() -> oauth_layer::Result<()> {
/// let client = OAuthClient::new("my-client-id")
///     .secret("s3cret")
///     .token_url("https://idp.example/oauth/token")?;
/// let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(OAuthMiddleware::client_credentials(client).scope("api:read"))
///     .build();
/// # let _ = http; Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct OAuthMiddleware {
    attach: Attach,
    shorthand: Option<Shorthand>,
}

impl OAuthMiddleware {
    crate::attach::shorthand_constructors!("middleware");
}

#[async_trait::async_trait]
impl Middleware for OAuthMiddleware {
    async fn handle(
        &self,
        mut request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let plan = self
            .attach
            .plan(request.url(), request.headers(), extensions);
        let per_request;
        let source = match plan {
            Plan::AsIs => return next.run(request, extensions).await,
            Plan::Attach => &self.attach.source,
            Plan::AttachFrom(source) => {
                per_request = source;
                &per_request
            }
        };
        let interactive = self.attach.is_interactive();
        // The rare paths (waiting for a token, the retry after a 401) are boxed: inline they
        // would make every request's future several times larger.
        let token = match source.fast() {
            Some(token) => token,
            None => Box::pin(source.token_for(interactive))
                .await
                .map_err(reqwest_middleware::Error::middleware)?,
        };
        // The copy for the retry is taken before the token goes in (the retry sets its own).
        // Boxed, to keep this future under glibc's 1 KiB large-allocation threshold.
        let replay = if self.attach.retry_after_401 {
            request.try_clone().map(Box::new)
        } else {
            None
        };
        set_token(request.headers_mut(), &token);
        let response = next.clone().run(request, extensions).await?;
        if !calls_for_renewal(response.status(), response.headers()) {
            return Ok(response);
        }
        let retry = Retry {
            source,
            used: &token,
            replay,
            interactive,
        };
        Box::pin(retry.run(response, extensions, next)).await
    }
}

/// What the middleware needs after a 401.
struct Retry<'a> {
    source: &'a TokenSource,
    used: &'a Token,
    replay: Option<Box<Request>>,
    interactive: bool,
}

impl Retry<'_> {
    /// Drops the token that failed (unless a newer one is cached) and, if the request could be
    /// copied, sends it once more with a renewed token.
    async fn run(
        self,
        unauthorized: Response,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        self.source.invalidate(self.used);
        let Some(mut replay) = self.replay.map(|boxed| *boxed) else {
            tracing::debug!("401 on a request that cannot be replayed; returned as is");
            return Ok(unauthorized);
        };
        let token = self
            .source
            .token_for(self.interactive)
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        tracing::debug!("401: retrying once with a renewed token");
        set_token(replay.headers_mut(), &token);
        next.run(replay, extensions).await
    }
}
