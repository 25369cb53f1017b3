//! The tower integration: [`OAuthLayer`] wraps any `Service<http::Request<B>>` (a hyper-util
//! client, a tonic channel, an SDK stack) so that every request carries a valid bearer token.
//!
//! Redirects (SECURITY.md rule 25): a token goes only to the origins the layer allows
//! ([`OAuthLayer::allow_origins`]; without a list, the origin of the first request it attaches a
//! token to), and never over plain `http` except to loopback. Put a redirect-following layer
//! *outside* ours (before it in a `ServiceBuilder`): every hop then comes through the layer and
//! is checked like a new request, whatever the redirect policy. tower-http's `FollowRedirect`
//! *inside* ours re-sends the first request's headers, our token included, on hops we cannot
//! see; the layer refuses that stack unless the redirect layer uses [`RedirectPolicy`], which
//! keeps credentials on the first request's origin. [`RedirectPolicy`] is the right policy in
//! either place: it also keeps the caller's own `Authorization` and cookies at home.
//!
//! ```
//! use oauth_layer::{OAuthClient, OAuthLayer, tower::RedirectPolicy};
//! use tower_http::follow_redirect::FollowRedirectLayer;
//!
//! # fn build() -> oauth_layer::Result<()> {
//! # let client = OAuthClient::builder("id").secret("s").token_url("https://idp.example/token").build()?;
//! let service = tower::ServiceBuilder::new()
//!     .layer(FollowRedirectLayer::with_policy(RedirectPolicy::new())) // outside: sees every hop
//!     .layer(OAuthLayer::client_credentials(client).allow_origins(["https://api.example"])?)
//!     .service_fn(|req: http::Request<String>| async move {
//!         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
//!     });
//! # let _ = service; Ok(()) }
//! ```

mod future;
#[cfg(feature = "tonic")]
pub mod grpc;
mod layer;
mod recording;
mod redirect;
pub(crate) mod replay;
mod service;

pub use future::ResponseFuture;
pub use layer::OAuthLayer;
pub use recording::{DEFAULT_RECORDING_LIMIT, RecordingBody};
pub use redirect::RedirectPolicy;
pub use replay::ReplayableBody;
pub use service::OAuthService;
