//! Workload identity: short-lived credentials the platform hands a service (a Kubernetes
//! projected service-account token, a GitHub Actions OIDC token, a SPIFFE JWT-SVID, a command's
//! output), read anew for every token request and traded for an access token, with no
//! long-lived secret in the service's configuration.
//!
//! A [`CredentialSource`] yields a [`Credential`]. The crate uses one, whichever the server
//! expects:
//!
//! - as the client's authentication, a `client_assertion` of type
//!   `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`
//!   ([`OAuthClientBuilder::client_assertion`](crate::OAuthClientBuilder::client_assertion),
//!   feature `jwt`);
//! - as the assertion of the JWT bearer grant (RFC 7523 §2.1,
//!   [`flow::AssertionGrant`](crate::flow::AssertionGrant));
//! - as the subject token of a token exchange (RFC 8693,
//!   [`SubjectToken::credential`](crate::flow::SubjectToken::credential)).
//!
//! Sources: [`FileSource`] (a rotating token file), [`UrlSource`] (an HTTP endpoint, GitHub
//! Actions among them), [`CommandSource`] (a program's output, no shell),
//! [`CallbackSource`] (your own code) and [`FirstAvailable`] (the first of several that yields
//! one). [`AzureWorkloadIdentity`] (feature `jwt`) puts Azure's environment together, and
//! [`google`] (feature `jwt`) reads Google's `external_account` files (workload identity
//! federation), its other credentials files, and finds them the way Google's libraries do
//! ([`google::ApplicationDefault`]: `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's file, the
//! metadata server).
//!
//! A credential that is a JWT whose own `exp` has passed on the client's clock is never sent:
//! the request fails with [`Error::Credential`] instead (SECURITY.md
//! rule 53). Credential values never appear in `Debug` output, errors or logs.
//!
//! ```
//! use oauth_layer::OAuthClient;
//! use oauth_layer::credential::FileSource;
//!
//! let client = OAuthClient::builder("my-client")
//!     .token_url("https://idp.example/oauth/token")
//!     .client_assertion(FileSource::new("/var/run/secrets/tokens/oauth"))
//!     .build()?;
//! # let _ = client;
//! # Ok::<(), oauth_layer::Error>(())
//! ```
//!
//! The three uses, and Azure (the README's example):
//!
//! ```
//! use oauth_layer::credential::{AzureWorkloadIdentity, FileSource, UrlSource};
//! use oauth_layer::flow::{ClientCredentials, SubjectToken, TokenExchange};
//! use oauth_layer::{OAuthClient, TokenSource};
//!
//! # fn run() -> oauth_layer::Result<()> {
//! // A Kubernetes projected token as the client's assertion.
//! let client = OAuthClient::builder("my-service")
//!     .token_url("https://idp.example/oauth/token")
//!     .client_assertion(FileSource::new("/var/run/secrets/tokens/oauth"))
//!     .build()?;
//! let api = TokenSource::new(client.clone(), ClientCredentials::new().scope("api:read"));
//!
//! // GitHub Actions' OIDC token exchanged for a token of your own server.
//! let ci = TokenSource::new(
//!     client,
//!     TokenExchange::new(SubjectToken::credential(
//!         UrlSource::github_actions("https://idp.example")?,
//!         "urn:ietf:params:oauth:token-type:jwt",
//!     )),
//! );
//!
//! // Azure workload identity.
//! let graph = AzureWorkloadIdentity::from_env()?.token_source("https://graph.microsoft.com/.default")?;
//! # let _ = (api, ci, graph); Ok(()) }
//! ```

mod callback;
mod chain;
mod command;
mod file;
mod url;
mod value;

#[cfg(feature = "jwt")]
mod azure;
#[cfg(feature = "jwt")]
pub mod google;

use std::fmt;

use async_trait::async_trait;

use crate::clock::Clock;
use crate::error::{Error, Result};

#[cfg(feature = "jwt")]
pub use azure::AzureWorkloadIdentity;
pub use callback::{CallbackSource, from_fn};
pub use chain::FirstAvailable;
pub use command::CommandSource;
pub use file::{FileSource, MAX_CREDENTIAL_BYTES};
pub use url::{ResponseFormat, UrlSource};
pub use value::Credential;

/// Where a short-lived credential comes from. Read anew for every token request, so a rotated
/// file, a renewed CI token or a new command output is picked up without a restart.
///
/// ```
/// use async_trait::async_trait;
/// use oauth_layer::credential::{Credential, CredentialSource};
///
/// #[derive(Debug)]
/// struct FromVault;
///
/// #[async_trait]
/// impl CredentialSource for FromVault {
///     async fn credential(&self) -> oauth_layer::Result<Credential> {
///         Ok(Credential::new("eyJ...the-signed-token"))
///     }
/// }
/// ```
#[async_trait]
pub trait CredentialSource: fmt::Debug + Send + Sync + 'static {
    /// The current credential.
    async fn credential(&self) -> Result<Credential>;

    /// What this source is, for errors, logs and cache keys: a path, a URL without its
    /// query, a program name. Never the credential. The default is the `Debug` output, which
    /// every source in this module keeps free of secrets.
    fn describe(&self) -> String {
        format!("{self:?}")
    }

    /// Everything that decides which credential this source yields, for cache keys: two
    /// sources that could yield credentials of different subjects (the same program with other
    /// arguments, the same URL with another audience or header) must differ here, so a token
    /// obtained with one is never served for the other. It is kept only as a digest (a
    /// secret part of the key), so it may contain secrets. The default is
    /// [`describe`](Self::describe); the sources of this module add what their description
    /// leaves out.
    fn identity(&self) -> String {
        self.describe()
    }
}

/// The current credential of `source`, refused when it is a JWT whose `exp` has passed on
/// `clock` (it would be refused by the server anyway, and must never travel).
pub(crate) async fn fresh(source: &dyn CredentialSource, clock: &dyn Clock) -> Result<Credential> {
    let credential = source.credential().await?;
    if let Some(exp) = credential.expires_at()
        && exp <= clock.now_utc()
    {
        return Err(Error::Credential {
            origin: source.describe(),
            reason: "the credential's own exp has passed; it is not sent".into(),
        });
    }
    Ok(credential)
}
