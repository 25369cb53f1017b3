//! OAuth 2.0 bearer tokens for any HTTP request pipeline.
//!
//! `oauth-layer` gets a token with a pluggable grant (a [`flow`]), caches it, attaches it to
//! requests, renews it before it expires or after a 401, and never leaks it.
//!
//! - [`OAuthClient`]: the app registration and the conversation with the token endpoint.
//! - [`flow`]: how a new token is obtained (client credentials, password, refresh token...).
//! - [`TokenSource`]: the shared cache: lock-free reads, one renewal for any number of callers,
//!   refresh ahead of expiry.
//! - [`store`]: where tokens persist besides the source's own memory.
//!
//! ```no_run
//! use oauth_layer::{OAuthClient, TokenSource, flow::ClientCredentials};
//!
//! # async fn run() -> oauth_layer::Result<()> {
//! let client = OAuthClient::builder("my-client-id")
//!     .secret("s3cret")
//!     .token_url("https://idp.example/oauth/token")
//!     .build()?;
//! let tokens = TokenSource::new(client, ClientCredentials::new().scope("api:read"));
//! let token = tokens.token().await?;
//! let header = token.header_value(); // `Bearer ...`, marked sensitive
//! # let _ = header; Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod client;
pub mod clock;
pub mod discovery;
mod error;
pub mod flow;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod interact;
#[cfg(feature = "jwt")]
pub mod jwt;
pub mod metadata;
pub mod oidc;
#[cfg(feature = "auth-code")]
pub mod provider;
mod redact;
#[cfg(any(feature = "tower", feature = "reqwest"))]
mod request;
#[cfg(feature = "reqwest")]
pub mod reqwest;
mod source;
pub mod store;
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
    DEFAULT_FAILURE_MEMORY, DEFAULT_MAX_REFRESH_WINDOW, DEFAULT_SKEW, TokenSource,
    TokenSourceBuilder,
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
