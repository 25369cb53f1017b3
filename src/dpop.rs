//! Sender-constrained tokens with DPoP (RFC 9449).
//!
//! A bearer token works for whoever holds it. With DPoP the client proves, on every request, that
//! it holds a private key: each request carries a fresh `DPoP` header, a short JWT signed with the
//! key and bound to the request's method and URL (and, for resource requests, to the access
//! token). The authorization server binds the tokens it issues to the key's thumbprint, so a
//! stolen token is useless without the key.
//!
//! Turn it on for a client with [`OAuthClientBuilder::dpop`](crate::OAuthClientBuilder::dpop):
//!
//! ```
//! use oauth_layer::{OAuthClient, dpop::Dpop};
//!
//! let client = OAuthClient::builder("my-client-id")
//!     .token_url("https://idp.example/token")
//!     .dpop(Dpop::new())
//!     .build()?;
//! # let _ = client;
//! # Ok::<(), oauth_layer::Error>(())
//! ```
//!
//! - **Keys** ([`DpopKey`]): each [`TokenSource`](crate::TokenSource) generates its own key
//!   (ES256 unless the server's metadata or [`Dpop::algorithms`] say otherwise), or uses the one
//!   given with [`Dpop::with_key`]. A token remembers the key it is bound to, and stores keep the
//!   key with the token (sealed when the store encrypts), so a bound refresh token still works
//!   after a restart and in every process sharing the store. The private key never prints.
//! - **Proofs** go on every token request of every grant and on every resource request the
//!   tower layer or the middleware sends with a DPoP-bound token (`Authorization: DPoP …`, never
//!   `Bearer`), each with a fresh `jti`, and `ath` for resource requests.
//! - **Nonces**: a server that answers `use_dpop_nonce` gets the request once more with its
//!   nonce (when the nonce changed and the request can be replayed); nonces are remembered per
//!   origin from every response that carries one, and can be shared by the processes of a
//!   fleet through a [`NonceStore`] such as the Redis store ([`Dpop::share_nonces`]).

mod config;
mod key;
mod nonce;
mod shared;

pub use config::Dpop;
pub(crate) use key::access_token_hash;
pub use key::{DpopAlg, DpopKey};
#[cfg(feature = "tower")]
pub(crate) use nonce::origin_key_of_uri;
pub(crate) use nonce::{NonceRole, Nonces, nonce_in, origin_key_of_url};
pub use shared::NonceStore;

/// The `DPoP` request header, which carries a proof.
pub const DPOP_HEADER: http::HeaderName = http::HeaderName::from_static("dpop");
/// The `DPoP-Nonce` response header, which carries a server's nonce.
pub const DPOP_NONCE_HEADER: http::HeaderName = http::HeaderName::from_static("dpop-nonce");
