//! The tower integration: [`OAuthLayer`] wraps any `Service<http::Request<B>>` (a hyper-util
//! client, a tonic channel, an SDK stack) so that every request carries a valid bearer token.
//!
//! Redirects (SECURITY.md rule 25): put `OAuthLayer` *outside* a redirect-following layer (before
//! it in a `ServiceBuilder`), so that the redirect layer's credential filter (tower-http's
//! `FollowRedirect` drops `Authorization` when the origin changes) sees the token; or configure
//! [`OAuthLayer::allow_origins`], which re-checks every request the layer sees. Either way a token
//! never goes over plain `http` except to loopback.

mod future;
mod layer;
mod replay;
mod service;

pub use future::ResponseFuture;
pub use layer::OAuthLayer;
pub use replay::ReplayableBody;
pub use service::OAuthService;
