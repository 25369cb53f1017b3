//! [`OAuthLayer`]: the tower `Layer`.

use tower_layer::Layer;

use super::OAuthService;
use crate::request::constructors::shorthand_constructors;
use crate::request::plan::Attach;
use crate::source::TokenSource;

/// A tower layer that gives every request a valid bearer token from one shared
/// [`TokenSource`], renews it before it expires, and after a 401 renews and retries once.
///
/// Every clone of the layer, and every service it makes, shares one source. A request that
/// already carries an `Authorization` header is left alone.
///
/// Certificate-bound tokens (mutual TLS, RFC 8705): a token bound to a client certificate
/// ([`Token::certificate_thumbprint`](crate::Token::certificate_thumbprint)) is attached only
/// when the layer was told the service under it presents that certificate
/// ([`client_certificate`](Self::client_certificate), or
/// [`client_certificate_thumbprint`](Self::client_certificate_thumbprint) for a TLS stack of
/// your own); otherwise the call fails with
/// [`Error::CertificateBinding`](crate::Error::CertificateBinding) and nothing is sent. Bearer
/// and DPoP-bound tokens are not affected.
///
/// Make one with a constructor per grant ([`client_credentials`](Self::client_credentials),
/// [`password`](Self::password), [`refresh`](Self::refresh), `auth_code`,
/// [`device`](Self::device), `jwt_bearer`, [`token_exchange`](Self::token_exchange)), whose
/// grant still takes a [`scope`](Self::scope) (and for client credentials and token exchange an
/// [`audience`](OAuthLayer::<crate::flow::ClientCredentials>::audience)); with any configured
/// flow ([`with_flow`](Self::with_flow)); or over a source you share with other code
/// ([`from_source`](Self::from_source)). The type parameter `G` is the grant a shorthand
/// constructor chose (`OAuthLayer<ClientCredentials>`), and the source otherwise (plain
/// `OAuthLayer`).
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
///     .audience("https://api.example")
///     .allow_origins(["https://api.example"])?;
/// let service = tower::ServiceBuilder::new()
///     .layer(layer)
///     .service_fn(|req: http::Request<String>| async move {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
///     });
/// # let _ = service; Ok(()) }
/// ```
///
/// A source's flow is configured when the source is made, so a layer over it has no `scope`
/// to drop:
///
/// ```compile_fail,E0599
/// # use oauth_layer::{OAuthClient, OAuthLayer, TokenSource, flow::ClientCredentials};
/// # fn build(client: OAuthClient) {
/// let source = TokenSource::new(client, ClientCredentials::new());
/// let layer = OAuthLayer::from_source(source).scope("api:read"); // set it on the flow
/// # }
/// ```
///
/// ```compile_fail,E0599
/// # use oauth_layer::{OAuthClient, OAuthLayer, TokenSource, flow::ClientCredentials};
/// # fn build(client: OAuthClient) {
/// let source = TokenSource::new(client, ClientCredentials::new());
/// let layer = OAuthLayer::from_source(source).audience("https://api.example");
/// # }
/// ```
///
/// and an `audience` goes only to a grant that has one:
///
/// ```compile_fail,E0599
/// # use oauth_layer::{OAuthClient, OAuthLayer};
/// # fn build(client: OAuthClient) {
/// let layer = OAuthLayer::password(client, "alice", "pw").audience("https://api.example");
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct OAuthLayer<G = TokenSource> {
    pub(super) attach: Attach,
    grant: G,
}

shorthand_constructors!(OAuthLayer, "layer");

impl<S, G> Layer<S> for OAuthLayer<G> {
    type Service = OAuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OAuthService::new(inner, self.attach.clone())
    }
}
