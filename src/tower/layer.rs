//! [`OAuthLayer`]: the tower `Layer`.

use tower_layer::Layer;

use super::OAuthService;
use crate::attach::{Attach, Shorthand};

/// A tower layer that gives every request a valid bearer token from one shared
/// [`TokenSource`](crate::TokenSource), renews it before it expires, and after a 401 renews and retries once.
///
/// Every clone of the layer, and every service it makes, shares one source. A request that
/// already carries an `Authorization` header is left alone.
///
/// ```
/// use oauth_layer::{OAuthClient, OAuthLayer};
///
/// # fn build() -> oauth_layer::Result<()> {
/// let client = OAuthClient::builder("my-client-id")
///     .secret("s3cret")
///     .token_url("https://idp.example/oauth/token")
///     .build()?;
/// let layer = OAuthLayer::client_credentials(client)
///     .scope("api:read")
///     .allow_origins(["https://api.example"])?;
/// let service = tower::ServiceBuilder::new()
///     .layer(layer)
///     .service_fn(|req: http::Request<String>| async move {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
///     });
/// # let _ = service; Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct OAuthLayer {
    attach: Attach,
    shorthand: Option<Shorthand>,
}

impl OAuthLayer {
    crate::attach::shorthand_constructors!("layer");
}

impl<S> Layer<S> for OAuthLayer {
    type Service = OAuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OAuthService::new(inner, self.attach.clone())
    }
}
