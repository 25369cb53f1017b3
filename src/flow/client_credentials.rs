//! The client credentials grant (RFC 6749 §4.4): the client acts on its own behalf.

use std::sync::Arc;

use async_trait::async_trait;

use super::authorization_details::AuthorizationDetails;
use super::requirements::replace_param;
use super::{AuthorizationDetail, Flow, Requirements, Scopes};
use crate::client::{OAuthClient, Resend, TokenRequest};
use crate::error::Result;
use crate::store::CacheKey;
use crate::token::Token;

/// The client credentials grant, for service-to-service calls.
///
/// ```
/// use oauth_layer::flow::ClientCredentials;
///
/// let flow = ClientCredentials::new()
///     .scope("api:read api:write")
///     .audience("https://api.example")
///     .param("tenant", "acme");
/// # let _ = flow;
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct ClientCredentials {
    scopes: Scopes,
    audience: Option<String>,
    resources: Vec<String>,
    params: Vec<(String, String)>,
    authorization_details: AuthorizationDetails,
}

impl ClientCredentials {
    /// The grant with no scope; the server's default applies.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests a scope (space-separated scopes are split; call it again to add more).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.add(scope);
        self
    }

    /// `audience` (used by Auth0, Okta and RFC 8693-style servers).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// A `resource` indicator (RFC 8707); call it again for several.
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resources.push(resource.into());
        self
    }

    /// An authorization detail (RFC 9396 §6) sent as `authorization_details` on the token
    /// request; call it again for several. Part of the cache key, so tokens for different
    /// details are never shared, and checked against the server's
    /// `authorization_details_types_supported` before anything is sent.
    ///
    /// ```
    /// use oauth_layer::flow::{AuthorizationDetail, ClientCredentials};
    ///
    /// let flow = ClientCredentials::new().authorization_detail(
    ///     AuthorizationDetail::new("account_information").action("read"),
    /// );
    /// # let _ = flow;
    /// ```
    pub fn authorization_detail(mut self, detail: AuthorizationDetail) -> Self {
        self.authorization_details.push(detail);
        self
    }

    /// Any other form parameter the server wants. A parameter the grant or client
    /// authentication sends itself (`grant_type`, `scope` when scopes are set, `audience` when an
    /// audience is set, `client_id`, `client_secret`, `client_assertion`...) is refused with a
    /// configuration error when the token is requested, so a server that takes the last of two
    /// values can never be handed the caller's instead.
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), value.into()));
        self
    }
}

#[async_trait]
impl Flow for ClientCredentials {
    async fn fetch(&self, client: &OAuthClient) -> Result<Token> {
        super::refuse_owned_params("param", &self.params, super::CLIENT_AUTH_PARAMS)?;
        super::refuse_owned_params("param", &self.params, &["grant_type"])?;
        if !self.scopes.joined().is_empty() {
            super::refuse_owned_params("param", &self.params, &["scope"])?;
        }
        if self.audience.is_some() {
            super::refuse_owned_params("param", &self.params, &["audience"])?;
        }
        self.authorization_details.check(client)?;
        let details = self.authorization_details.parameter();
        if details.is_some() {
            super::refuse_owned_params("param", &self.params, &["authorization_details"])?;
        }
        let mut request = TokenRequest::new("client_credentials")
            .scope(self.scopes.joined())
            .resend(Resend::Always);
        if let Some(audience) = &self.audience {
            request = request.param("audience", audience.clone());
        }
        for resource in &self.resources {
            request = request.param("resource", resource.clone());
        }
        if let Some(details) = details {
            request = request.param("authorization_details", details);
        }
        for (name, value) in &self.params {
            request = request.param(name.clone(), value.clone());
        }
        client.request_token(request).await
    }

    fn cache_key(&self, client: &OAuthClient) -> CacheKey {
        let mut key = CacheKey::builder(client, "client_credentials").scopes(self.scopes.iter());
        if let Some(audience) = &self.audience {
            key = key.part("audience", audience.clone());
        }
        for resource in &self.resources {
            key = key.part("resource", resource.clone());
        }
        key = self.authorization_details.key_part(key);
        for (name, value) in &self.params {
            key = key.part("param", format!("{name}={value}"));
        }
        key.build()
    }

    fn upgraded(&self, need: &Requirements) -> Option<Arc<dyn Flow>> {
        if need.needs_sign_in() {
            return None;
        }
        let mut wider = self.clone();
        wider.scopes = need.widen(&self.scopes);
        replace_param(&mut wider.params, "claims", need.claims.clone());
        Some(Arc::new(wider))
    }
}
