//! Flows: how a *new* token is obtained. One file per grant.
//!
//! A flow is a value implementing [`Flow`]. The [`TokenSource`](crate::TokenSource) calls it when
//! it has no token it can renew with a refresh token; renewal with a refresh token is the
//! source's job, the same for every flow.

mod assertion_grant;
#[cfg(feature = "auth-code")]
pub mod auth_code;
pub mod authorization_details;
mod client_credentials;
pub mod device;
#[cfg(feature = "jwt")]
mod jwt_bearer;
mod password;
mod refresh;
mod requirements;
#[cfg(any(feature = "tower", feature = "reqwest"))]
pub(crate) mod scoped;
pub mod token_exchange;

pub use assertion_grant::AssertionGrant;
#[cfg(feature = "auth-code")]
pub use auth_code::AuthCode;
pub use authorization_details::AuthorizationDetail;
pub use client_credentials::ClientCredentials;
pub use device::DeviceCode;
#[cfg(feature = "jwt")]
pub use jwt_bearer::{JwtBearer, ServiceAccount};
pub use password::Password;
pub use refresh::RefreshToken;
pub use requirements::Requirements;
#[cfg(any(feature = "tower", feature = "reqwest"))]
pub use scoped::Scoped;
pub use token_exchange::{ActorToken, SubjectToken, TokenExchange};

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::client::OAuthClient;
use crate::error::{Error, Result};
use crate::store::CacheKey;
use crate::token::Token;

/// A way to obtain a new token from the authorization server.
///
/// Implement it for a grant this crate lacks: build a [`TokenRequest`](crate::TokenRequest) and
/// send it with [`OAuthClient::request_token`].
///
/// ```
/// use async_trait::async_trait;
/// use oauth_layer::{OAuthClient, Resend, Result, Token, TokenRequest, flow::Flow, store::CacheKey};
///
/// #[derive(Debug)]
/// struct SamlBearer { assertion: String }
///
/// #[async_trait]
/// impl Flow for SamlBearer {
///     async fn fetch(&self, client: &OAuthClient) -> Result<Token> {
///         let request = TokenRequest::new("urn:ietf:params:oauth:grant-type:saml2-bearer")
///             .secret_param("assertion", self.assertion.clone())
///             .resend(Resend::Always);
///         client.request_token(request).await
///     }
///
///     fn cache_key(&self, client: &OAuthClient) -> CacheKey {
///         CacheKey::builder(client, "saml2-bearer").secret_part("assertion", &self.assertion).build()
///     }
/// }
/// ```
#[async_trait]
pub trait Flow: fmt::Debug + Send + Sync + 'static {
    /// Obtains a new token.
    async fn fetch(&self, client: &OAuthClient) -> Result<Token>;

    /// The key under which this flow's tokens are cached and shared. Start from
    /// [`CacheKey::builder`] (it binds the client and its secret or key) and add every other
    /// credential the flow sends with [`secret_part`](crate::store::CacheKeyBuilder::secret_part),
    /// so that two flows differing only in it never share a token (SECURITY.md rule 34).
    fn cache_key(&self, client: &OAuthClient) -> CacheKey;

    /// `true` when `fetch` needs a person (a browser sign-in, a device code). The middleware runs
    /// such a flow in the middle of a request only when told it may.
    fn is_interactive(&self) -> bool {
        false
    }

    /// A flow that asks for what `need` adds to this one (a scope upgrade, a step-up sign-in, a
    /// claims request), or `None` when this grant cannot ask for it. The default is `None`.
    ///
    /// The grants of this crate ask for the union of their own scopes and the required ones.
    /// Machine grants (client credentials, password, JWT bearer, token exchange) and the device
    /// grant send `claims` as a request parameter but cannot promise an `acr` or a sign-in age,
    /// so they return `None` when `acr_values` or `max_age` is required; the authorization code
    /// grant sends all four on the authorization request (it is interactive, so only a caller
    /// that may interact runs it). A [`RefreshToken`] flow cannot widen a grant (RFC 6749 §6)
    /// and returns `None`.
    ///
    /// The upgraded flow's [`cache_key`](Self::cache_key) must differ from this one's whenever it
    /// asks for more, so the wider token is cached under its own key (SECURITY.md rule 34); a
    /// [`TokenSource`](crate::TokenSource) refuses an upgrade whose key is unchanged.
    ///
    /// ```
    /// use oauth_layer::{OAuthClient, flow::{ClientCredentials, Flow, Requirements}};
    ///
    /// let client = OAuthClient::builder("id").build()?;
    /// let flow = ClientCredentials::new().scope("read");
    /// let wider = flow.upgraded(&Requirements::new().scope("write")).unwrap();
    /// assert_eq!(wider.cache_key(&client).get("scope"), Some("read write"));
    /// assert!(flow.upgraded(&Requirements::new().max_age(0)).is_none());
    /// # Ok::<(), oauth_layer::Error>(())
    /// ```
    fn upgraded(&self, need: &Requirements) -> Option<Arc<dyn Flow>> {
        let _ = need;
        None
    }

    /// Checks this flow against the client's security [profile](crate::profile), if it has
    /// one: `Err` with [`Error::Config`] naming the requirement this flow
    /// breaks. [`TokenSourceBuilder::try_build`](crate::TokenSourceBuilder::try_build) calls it;
    /// the default accepts every flow. The password grant refuses every profile; the
    /// authorization code flow refuses PKCE or pushed requests turned off.
    fn conforms(&self, client: &OAuthClient) -> Result<()> {
        let _ = client;
        Ok(())
    }
}

/// Scopes given as several strings or one space-separated string, kept in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scopes(Vec<String>);

impl Scopes {
    pub(crate) fn add(&mut self, scope: impl Into<String>) {
        let scope = scope.into();
        for s in scope.split(' ').filter(|s| !s.is_empty()) {
            if !self.0.iter().any(|have| have == s) {
                self.0.push(s.to_owned());
            }
        }
    }

    pub(crate) fn joined(&self) -> String {
        self.0.join(" ")
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

/// The parameters client authentication sends (RFC 6749 §2.3.1, RFC 7523 §2.2): no flow's extra
/// parameters may repeat them.
pub(crate) const CLIENT_AUTH_PARAMS: &[&str] = &[
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
];

/// Refuses extra parameters (added with `setter`) that repeat one of `owned`: a server that
/// takes the last of two values would use the caller's instead of the flow's.
pub(crate) fn refuse_owned_params(
    setter: &str,
    params: &[(String, String)],
    owned: &[&str],
) -> Result<()> {
    for (name, _) in params {
        let trimmed = name.trim();
        if let Some(own) = owned.iter().find(|o| o.eq_ignore_ascii_case(trimmed)) {
            return Err(Error::config(format!(
                "{setter}({own:?}, ..) would send a second {own}, which the flow sends itself; \
                 use the flow's own setting instead"
            )));
        }
    }
    Ok(())
}
