//! OAuth 2.0 tokens for any HTTP request pipeline.
//!
//! `oauth-layer` gets a token with a pluggable grant (a [`flow`]), caches it, attaches it to
//! requests, renews it before it expires or after a 401, acts on what a server's challenges ask
//! for (a DPoP nonce, more scope, a stronger sign-in, claims), and never leaks it. Tokens are
//! bearer tokens, or sender-constrained with DPoP when the client asks for it. There are three
//! ways in; each example below runs in the crate's tests against its local authorization server
//! ([`testing::TestServer`], hidden lines), exactly as it would against a real provider.
//!
//! - [`OAuthClient`]: the app registration and the conversation with the token endpoint.
//! - [`flow`]: how a new token is obtained (client credentials, password, refresh token,
//!   authorization code, device code, JWT bearer, token exchange).
//! - [`TokenSource`]: the shared cache: lock-free reads, one renewal for any number of callers,
//!   refresh ahead of expiry.
//! - [`challenge`]: what a server's `WWW-Authenticate` says, parsed into typed challenges.
//! - `dpop` (feature `dpop`, on by default): sender-constrained tokens (RFC 9449): keys, proofs
//!   on every token and resource request, nonces.
//! - `tls` (features `reqwest` and `rustls`, on by default): mutual TLS (RFC 8705): a client
//!   certificate that authenticates the client and binds its tokens.
//! - [`store`]: where tokens persist besides the source's own memory (a file, the OS keychain,
//!   Redis for fleets).
//!
//! # reqwest-middleware
//!
//! [`OAuthMiddleware`] over a reqwest client whose redirects stay on the request's origin
//! ([`reqwest::client_builder`]):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # use oauth_layer::{AuthMethod, testing::TestServer};
//! # let server = TestServer::builder()
//! #     .client("my-client-id", Some("s3cret"), AuthMethod::ClientSecretBasic)
//! #     .start()
//! #     .await?;
//! # let (token_url, api) = (server.token_url(), server.resource_url("/api/things"));
//! use oauth_layer::{OAuthClient, OAuthMiddleware};
//!
//! let client = OAuthClient::builder("my-client-id")
//!     .secret("s3cret")
//!     .token_url(token_url)
//!     .build()?;
//! let http = reqwest_middleware::ClientBuilder::new(oauth_layer::reqwest::client_builder().build()?)
//!     .with(OAuthMiddleware::client_credentials(client).scope("api:read"))
//!     .build();
//!
//! let response = http.get(&api).send().await?;
//! assert_eq!(response.status(), 200);
//! # Ok(()) }
//! ```
//!
//! # A tower stack
//!
//! [`OAuthLayer`] over a hyper-util client (or a tonic channel). Order matters: tower-http's
//! `FollowRedirect` goes *outside* the layer, so every hop of a redirect comes back through it and
//! is checked like a new request ([`tower::RedirectPolicy`] also keeps the caller's own
//! credentials on the first origin); layers that log or time requests go outside both, so they
//! see the request as sent and the header marked sensitive.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! # use oauth_layer::{AuthMethod, testing::TestServer};
//! # let server = TestServer::builder()
//! #     .client("my-client-id", Some("s3cret"), AuthMethod::ClientSecretBasic)
//! #     .start()
//! #     .await?;
//! # let (token_url, api) = (server.token_url(), server.resource_url("/api/things"));
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper_util::{client::legacy::Client, rt::TokioExecutor};
//! use oauth_layer::{OAuthClient, OAuthLayer, tower::RedirectPolicy};
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_http::follow_redirect::FollowRedirectLayer;
//!
//! let client = OAuthClient::builder("my-client-id")
//!     .secret("s3cret")
//!     .token_url(token_url)
//!     .build()?;
//! // In real use, an HTTPS connector (hyper-rustls) in place of `build_http`.
//! let hyper = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
//! let service = ServiceBuilder::new()
//!     .layer(FollowRedirectLayer::with_policy(RedirectPolicy::new()))
//!     .layer(OAuthLayer::client_credentials(client).scope("api:read"))
//!     .service(hyper);
//!
//! let request = http::Request::get(&api).body(Full::default())?;
//! let response = service.oneshot(request).await?;
//! assert_eq!(response.status(), 200);
//! # Ok(()) }
//! ```
//!
//! # A token source
//!
//! For SDKs that only want "a valid token now": one [`TokenSource`], cheap to clone, shared by
//! every caller (and by any layer or middleware made with `from_source`).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # use oauth_layer::{AuthMethod, testing::TestServer};
//! # let server = TestServer::builder()
//! #     .client("my-client-id", Some("s3cret"), AuthMethod::ClientSecretBasic)
//! #     .start()
//! #     .await?;
//! # let token_url = server.token_url();
//! use oauth_layer::{ExposeSecret, OAuthClient, TokenSource, flow::ClientCredentials};
//!
//! let client = OAuthClient::builder("my-client-id")
//!     .secret("s3cret")
//!     .token_url(token_url)
//!     .build()?;
//! let tokens = TokenSource::new(client, ClientCredentials::new().scope("api:read"));
//! let token = tokens.token().await?; // cached, valid, one request for any number of callers
//! let header = token.header_value(); // `Bearer ...`, marked sensitive
//! let raw: &str = token.access_token().expose_secret(); // for SDKs that want the string
//! # assert!(!raw.is_empty()); let _ = header;
//! # Ok(()) }
//! ```
//!
//! Where each piece lives, and how a request flows through them, is in the README's
//! architecture section.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod challenge;
pub mod client;
pub mod clock;
pub mod credential;
pub mod discovery;
#[cfg(feature = "dpop")]
pub mod dpop;
mod error;
pub mod flow;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod interact;
#[cfg(feature = "jwt")]
mod jwks;
#[cfg(feature = "jwt")]
pub mod jwt;
pub mod metadata;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(not(feature = "metrics"))]
mod metrics;
pub mod oidc;
pub mod profile;
#[cfg(feature = "auth-code")]
pub mod provider;
mod redact;
pub mod registration;
#[cfg(any(feature = "tower", feature = "reqwest"))]
mod request;
#[cfg(feature = "reqwest")]
pub mod reqwest;
#[cfg(any(feature = "reqwest", feature = "tower"))]
pub mod resource;
mod source;
pub mod store;
#[cfg(all(feature = "reqwest", feature = "rustls"))]
pub mod tls;
mod token;
pub mod transport;

pub use client::{
    AuthMethod, Introspection, OAuthClient, OAuthClientBuilder, Resend, RetryPolicy, TokenRequest,
    TokenTypeHint,
};
pub use error::{
    Action, Endpoint, Error, ErrorCode, MAX_RETRY_AFTER, ResponseError, Result, ServerError,
    TransportError, TransportErrorKind,
};
/// Reads a secret: `token.access_token().expose_secret()`. Re-exported from `secrecy`, whose
/// `SecretString` holds every token and secret this crate hands out.
pub use secrecy::{ExposeSecret, SecretString};
pub use source::{
    DEFAULT_FAILURE_MEMORY, DEFAULT_MAX_REFRESH_WINDOW, DEFAULT_SKEW, HALF_LIFE_REFRESH_ABOVE,
    RenewalOutcome, TokenSource, TokenSourceBuilder,
};
pub use token::{DEFAULT_LIFETIME, MAX_LIFETIME, Token, TokenBuilder};

#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "tower")]
pub mod tower;

#[cfg(any(feature = "tower", feature = "reqwest"))]
pub use request::plan::RequestAuth;
#[cfg(any(feature = "tower", feature = "reqwest"))]
pub use request::withheld::{TokenWithheld, WithheldReason};
#[cfg(feature = "reqwest")]
pub use reqwest::OAuthMiddleware;
#[cfg(feature = "tower")]
pub use tower::{OAuthLayer, OAuthService};
