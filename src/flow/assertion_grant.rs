//! The JWT bearer grant (RFC 7523 §2.1) with an assertion someone else signed: a workload
//! identity token read from a [`CredentialSource`].

use std::sync::Arc;

use async_trait::async_trait;

use super::{Flow, Requirements, Scopes};
use crate::client::{OAuthClient, Resend, TokenRequest};
use crate::credential::CredentialSource;
use crate::error::Result;
use crate::store::CacheKey;
use crate::token::Token;

const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The JWT bearer grant (RFC 7523 §2.1) whose assertion comes from a [`CredentialSource`]
/// rather than a key this process holds (for that, see `JwtBearer`, feature `jwt`): the
/// platform's token (a Kubernetes projected token, a GitHub Actions OIDC token) is itself the
/// grant.
///
/// The source is read for every token request; an assertion past its own `exp` is never sent.
/// Cached tokens are keyed by the source (its path or URL) and the scopes, never by the
/// assertion.
///
/// ```
/// use oauth_layer::{OAuthClient, TokenSource};
/// use oauth_layer::credential::FileSource;
/// use oauth_layer::flow::AssertionGrant;
///
/// let client = OAuthClient::builder("my-client")
///     .token_url("https://idp.example/oauth/token")
///     .build()?;
/// let flow = AssertionGrant::new(FileSource::new("/var/run/secrets/tokens/oauth")).scope("api:read");
/// let source = TokenSource::new(client, flow);
/// # let _ = source;
/// # Ok::<(), oauth_layer::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct AssertionGrant {
    source: Arc<dyn CredentialSource>,
    scopes: Scopes,
    /// The claims request of an upgrade (see [`Flow::upgraded`]), a token request parameter.
    claims_request: Option<String>,
}

impl AssertionGrant {
    /// The grant with assertions read from `source`.
    pub fn new(source: impl CredentialSource) -> Self {
        Self {
            source: Arc::new(source),
            scopes: Scopes::default(),
            claims_request: None,
        }
    }

    /// Requests a scope (space-separated scopes are split; call it again to add more).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.add(scope);
        self
    }
}

#[async_trait]
impl Flow for AssertionGrant {
    async fn fetch(&self, client: &OAuthClient) -> Result<Token> {
        // Read once per token request; retries resend the same assertion, which the server
        // has not spent if it refused before looking at it.
        let assertion = crate::credential::fresh(&*self.source, client.clock()).await?;
        let mut request = TokenRequest::new(GRANT_TYPE)
            .secret_param("assertion", assertion.secret().clone())
            .resend(Resend::IfUnprocessed);
        if let Some(claims) = &self.claims_request {
            request = request.param("claims", claims.clone());
        }
        client
            .request_token(request.scope(self.scopes.joined()))
            .await
    }

    fn cache_key(&self, client: &OAuthClient) -> CacheKey {
        let mut key = CacheKey::builder(client, "jwt-bearer")
            .secret_part("assertion_source", &self.source.identity())
            .scopes(self.scopes.iter());
        if let Some(claims) = &self.claims_request {
            key = key.part("claims_request", claims.clone());
        }
        key.build()
    }

    /// Wider scopes, and `claims` as a token request parameter; `None` for `acr_values` or
    /// `max_age`, which no person signs in for here.
    fn upgraded(&self, need: &Requirements) -> Option<Arc<dyn Flow>> {
        if need.needs_sign_in() {
            return None;
        }
        let mut wider = self.clone();
        wider.scopes = need.widen(&self.scopes);
        if need.claims.is_some() {
            wider.claims_request.clone_from(&need.claims);
        }
        Some(Arc::new(wider))
    }
}
