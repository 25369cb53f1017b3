//! [`OAuthLayer`]: the tower `Layer`.

use secrecy::SecretString;
use tower_layer::Layer;

use super::OAuthService;
use crate::attach::{Attach, Shorthand, reshape};
use crate::client::OAuthClient;
use crate::error::Result;
use crate::flow::{ClientCredentials, Password};
use crate::source::TokenSource;

/// A tower layer that gives every request a valid bearer token from one shared
/// [`TokenSource`], renews it before it expires, and after a 401 renews and retries once.
///
/// Every clone of the layer, and every service it makes, shares one source. A request that
/// already carries an `Authorization` header is left alone.
///
/// ```
/// use oauth_layer::{OAuthClient, OAuthLayer};
///
/// # fn build() -> oauth_layer::Result<()> {
/// let client = OAuthClient::new("my-client-id")
///     .secret("s3cret")
///     .token_url("https://idp.example/oauth/token")?;
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
    /// A layer taking its tokens from `source` (shared with every other user of it). Interactive
    /// flows are not started mid-request unless [`interactive`](Self::interactive) says so.
    pub fn from_source(source: TokenSource) -> Self {
        Self {
            attach: Attach::new(source),
            shorthand: None,
        }
    }

    /// The client credentials grant (httr2's `req_oauth_client_credentials()`).
    pub fn client_credentials(client: OAuthClient) -> Self {
        Self::shorthand(Shorthand::ClientCredentials(
            client,
            ClientCredentials::new(),
        ))
    }

    /// The resource owner password grant (httr2's `req_oauth_password()`). Deprecated by
    /// RFC 9700; for legacy systems only.
    pub fn password(
        client: OAuthClient,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        Self::shorthand(Shorthand::Password(
            client,
            Password::new(username, password),
        ))
    }

    /// Starts from a refresh token you already hold (httr2's `req_oauth_refresh()`).
    pub fn refresh(client: OAuthClient, refresh_token: impl Into<String>) -> Self {
        Self::shorthand(Shorthand::Refresh(
            client,
            SecretString::from(refresh_token.into()),
            Vec::new(),
        ))
    }

    /// The authorization code grant with PKCE (httr2's `req_oauth_auth_code()`): the first
    /// request that needs a token opens the browser for the person to sign in; afterwards the
    /// refresh token keeps it silent. Interactive by default; configure the sign-in with
    /// [`auth_code_with`](Self::auth_code_with).
    #[cfg(feature = "auth-code")]
    pub fn auth_code(client: OAuthClient) -> Self {
        Self::auth_code_with(client, crate::flow::AuthCode::new())
    }

    /// The authorization code grant with a configured [`AuthCode`](crate::flow::AuthCode) flow (receiver, redirect URI,
    /// extra parameters...).
    #[cfg(feature = "auth-code")]
    pub fn auth_code_with(client: OAuthClient, flow: crate::flow::AuthCode) -> Self {
        Self::shorthand(Shorthand::AuthCode(client, flow))
    }

    /// The device authorization grant (RFC 8628): the first request that needs a token shows
    /// the person a code to enter at a URL on another device, then waits for their approval.
    /// Interactive by default; configure it with [`device_with`](Self::device_with).
    pub fn device(client: OAuthClient) -> Self {
        Self::device_with(client, crate::flow::DeviceCode::new())
    }

    /// The device authorization grant with a configured [`DeviceCode`](crate::flow::DeviceCode)
    /// flow (display, browser, extra parameters).
    pub fn device_with(client: OAuthClient, flow: crate::flow::DeviceCode) -> Self {
        Self::shorthand(Shorthand::Device(client, flow))
    }

    fn shorthand(shorthand: Shorthand) -> Self {
        Self {
            attach: Attach::new(shorthand.source()).interactive(shorthand.is_interactive()),
            shorthand: Some(shorthand),
        }
    }

    /// Requests a scope (shorthand constructors only; with [`from_source`](Self::from_source),
    /// set it on the source's flow).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        let scope = scope.into();
        reshape(&mut self.attach, &mut self.shorthand, |s| s.scope(scope));
        self
    }

    /// Requests an `audience` (client credentials shorthand only).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        let audience = audience.into();
        reshape(&mut self.attach, &mut self.shorthand, |s| {
            s.audience(audience)
        });
        self
    }

    /// Sends tokens only to these origins (`scheme://host[:port]`, exact match; SECURITY.md
    /// rule 24). Without a list, any `https` origin and loopback `http` get the token.
    pub fn allow_origins<I, U>(mut self, origins: I) -> Result<Self>
    where
        I: IntoIterator<Item = U>,
        U: AsRef<str>,
    {
        self.attach = self.attach.allow_origins(origins)?;
        Ok(self)
    }

    /// Whether an interactive flow may run in the middle of a request (default `false`, but
    /// `true` for the `auth_code` and `device` shorthands).
    pub fn interactive(mut self, allowed: bool) -> Self {
        self.attach = self.attach.interactive(allowed);
        self
    }

    /// The shared token source.
    pub fn source(&self) -> &TokenSource {
        &self.attach.source
    }
}

impl<S> Layer<S> for OAuthLayer {
    type Service = OAuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OAuthService::new(inner, self.attach.clone())
    }
}
