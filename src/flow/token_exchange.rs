//! Token exchange (RFC 8693): trade a token you hold (the *subject*) for another one, for
//! another audience, resource or token type, optionally on behalf of an *actor*.
//!
//! The subject and actor tokens are fixed strings, another [`TokenSource`], whose current access
//! token is fetched at each exchange (sources chain, and when the first one renews, the next
//! exchange uses its new token), or a workload credential read at each exchange from a
//! [`CredentialSource`](crate::credential::CredentialSource) and never sent past its own `exp`
//! (SECURITY.md rules 42 and 53):
//!
//! - `issued_token_type` is required in the response (RFC 8693 §2.2.1); without it the exchange
//!   fails with [`Error::UnexpectedResponse`];
//! - a token whose `token_type` is not `Bearer` (`N_A`, the type RFC 8693 gives tokens that are
//!   not access tokens) is refused with [`Error::UnsupportedTokenType`] and never sent;
//! - the cache key holds digests of the fixed subject and actor tokens (or the chained source's
//!   cache key digest, or the credential source's path or URL), the audiences, resources, requested token type and scopes, never the
//!   tokens themselves.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use super::authorization_details::AuthorizationDetails;
use super::{AuthorizationDetail, Flow, Requirements, Scopes};
use crate::client::{OAuthClient, Resend, TokenRequest};
use crate::error::{Error, ResponseError, Result};
use crate::source::TokenSource;
use crate::store::{CacheKey, CacheKeyBuilder};
use crate::token::Token;

/// The grant type of a token exchange request (RFC 8693 §2.1).
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// The token type URI of an OAuth access token (RFC 8693 §3), used for tokens taken from a
/// chained [`TokenSource`].
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// The token exchange grant (RFC 8693): a token for a token.
///
/// ```
/// use oauth_layer::flow::{SubjectToken, TokenExchange};
///
/// let flow = TokenExchange::new(SubjectToken::fixed(
///     "eyJhbGciOi-the-user-token",
///     "urn:ietf:params:oauth:token-type:jwt",
/// ))
/// .audience("https://backend.example")
/// .scope("orders:read")
/// .requested_token_type("urn:ietf:params:oauth:token-type:access_token");
/// assert!(!format!("{flow:?}").contains("the-user-token"));
/// ```
///
/// Chaining sources: the exchange uses the client credentials source's current token as its
/// subject, each time it runs.
///
/// ```
/// use oauth_layer::{OAuthClient, TokenSource};
/// use oauth_layer::flow::{ClientCredentials, SubjectToken, TokenExchange};
///
/// let client = OAuthClient::builder("svc")
///     .secret("s")
///     .token_url("https://idp.example/token")
///     .build()?;
/// let own = TokenSource::new(client.clone(), ClientCredentials::new());
/// let delegated = TokenSource::new(
///     client,
///     TokenExchange::new(SubjectToken::source(own)).audience("https://downstream.example"),
/// );
/// # let _ = delegated;
/// # Ok::<(), oauth_layer::Error>(())
/// ```
///
/// When the server issues a refresh token with the exchanged token, the [`TokenSource`]
/// renews with it rather than exchanging again; servers rarely do.
#[derive(Debug, Clone)]
#[must_use]
pub struct TokenExchange {
    subject: SubjectToken,
    actor: Option<ActorToken>,
    requested_token_type: Option<String>,
    audiences: Vec<String>,
    resources: Vec<String>,
    scopes: Scopes,
    /// The claims request of an upgrade (see [`Flow::upgraded`]), a token request parameter.
    claims_request: Option<String>,
    authorization_details: AuthorizationDetails,
}

/// The token given in a token exchange: a fixed string with its type URI, or the current access
/// token of another [`TokenSource`]. Used for the subject and, as [`ActorToken`], for the actor.
///
/// A fixed token is kept as a secret: it never shows in `Debug`, and cache keys hold only its
/// digest.
#[derive(Clone)]
pub struct SubjectToken {
    kind: Kind,
}

/// The actor token of a token exchange (RFC 8693 §2.1 `actor_token`): the party acting on the
/// subject's behalf. The same two kinds as [`SubjectToken`].
pub type ActorToken = SubjectToken;

#[derive(Clone)]
enum Kind {
    Fixed {
        token: SecretString,
        token_type: String,
    },
    Source(TokenSource),
    Credential {
        source: Arc<dyn crate::credential::CredentialSource>,
        token_type: String,
    },
}

impl SubjectToken {
    /// A fixed token and its type URI (`urn:ietf:params:oauth:token-type:jwt`,
    /// `...:id_token`, `...:access_token`...), sent as is at every exchange.
    pub fn fixed(token: impl Into<String>, token_type: impl Into<String>) -> Self {
        Self {
            kind: Kind::Fixed {
                token: SecretString::from(token.into()),
                token_type: token_type.into(),
            },
        }
    }

    /// The current access token of `source`, fetched (and renewed if need be) at each
    /// exchange, with the type [`ACCESS_TOKEN_TYPE`]. The chained source's own settings apply,
    /// its [`interactive`](crate::TokenSourceBuilder::interactive) one included.
    pub fn source(source: TokenSource) -> Self {
        Self {
            kind: Kind::Source(source),
        }
    }

    /// A workload credential read from `source` at each exchange (a Kubernetes projected
    /// token, a GitHub Actions OIDC token), with its type URI (usually
    /// `urn:ietf:params:oauth:token-type:jwt`). One past its own `exp` is never sent. Cache
    /// keys hold the source (its path or URL), not its rotating value.
    ///
    /// ```
    /// use oauth_layer::credential::FileSource;
    /// use oauth_layer::flow::{SubjectToken, TokenExchange};
    ///
    /// let flow = TokenExchange::new(SubjectToken::credential(
    ///     FileSource::new("/var/run/secrets/tokens/sts"),
    ///     "urn:ietf:params:oauth:token-type:jwt",
    /// ));
    /// # let _ = flow;
    /// ```
    pub fn credential(
        source: impl crate::credential::CredentialSource,
        token_type: impl Into<String>,
    ) -> Self {
        Self {
            kind: Kind::Credential {
                source: Arc::new(source),
                token_type: token_type.into(),
            },
        }
    }

    /// The token and its type, as sent now.
    async fn resolve(&self, client: &OAuthClient) -> Result<(SecretString, &str)> {
        match &self.kind {
            Kind::Credential { source, token_type } => {
                let credential = crate::credential::fresh(&**source, client.clock()).await?;
                Ok((credential.secret().clone(), token_type))
            }
            Kind::Fixed { token, token_type } => Ok((token.clone(), token_type)),
            Kind::Source(source) => {
                let token = source.token().await?;
                Ok((token.access_token().clone(), ACCESS_TOKEN_TYPE))
            }
        }
    }

    /// Adds what tells this token apart to `key`, under `name` (`"subject"` or `"actor"`).
    fn key_parts(
        &self,
        key: CacheKeyBuilder,
        name: &'static str,
        type_name: &'static str,
    ) -> CacheKeyBuilder {
        match &self.kind {
            Kind::Fixed { token, token_type } => key
                .secret_part(name, token.expose_secret())
                .part(type_name, token_type.clone()),
            Kind::Source(source) => key
                .key_part(name, source.cache_key())
                .part(type_name, ACCESS_TOKEN_TYPE),
            Kind::Credential { source, token_type } => key
                .secret_part(name, &source.identity())
                .part(type_name, token_type.clone()),
        }
    }
}

impl fmt::Debug for SubjectToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Fixed { token_type, .. } => f
                .debug_struct("Fixed")
                .field("token", &"[redacted]")
                .field("token_type", token_type)
                .finish(),
            Kind::Source(source) => f
                .debug_struct("Source")
                .field("cache_key", source.cache_key())
                .finish(),
            Kind::Credential { source, token_type } => f
                .debug_struct("Credential")
                .field("source", source)
                .field("token_type", token_type)
                .finish(),
        }
    }
}

impl TokenExchange {
    /// An exchange of `subject`, with no actor, audience, resource or scope.
    pub fn new(subject: SubjectToken) -> Self {
        Self {
            subject,
            actor: None,
            requested_token_type: None,
            audiences: Vec::new(),
            resources: Vec::new(),
            scopes: Scopes::default(),
            claims_request: None,
            authorization_details: AuthorizationDetails::default(),
        }
    }

    /// The party acting on the subject's behalf (`actor_token` and `actor_token_type`).
    pub fn actor(mut self, actor: ActorToken) -> Self {
        self.actor = Some(actor);
        self
    }

    /// The type of token wanted (`requested_token_type`); the server's default otherwise.
    pub fn requested_token_type(mut self, token_type: impl Into<String>) -> Self {
        self.requested_token_type = Some(token_type.into());
        self
    }

    /// A logical name of the service the token is for (`audience`); call it again for several.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// The URI of a resource the token is for (`resource`, RFC 8693 §2.1 and RFC 8707); call it
    /// again for several.
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resources.push(resource.into());
        self
    }

    /// An authorization detail (RFC 9396 §6) sent as `authorization_details` on the token
    /// request; call it again for several. Part of the cache key, and checked against the
    /// server's `authorization_details_types_supported` before anything is sent.
    pub fn authorization_detail(mut self, detail: AuthorizationDetail) -> Self {
        self.authorization_details.push(detail);
        self
    }

    /// Requests a scope (space-separated scopes are split; call it again to add more).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.add(scope);
        self
    }
}

#[async_trait]
impl Flow for TokenExchange {
    async fn fetch(&self, client: &OAuthClient) -> Result<Token> {
        self.authorization_details.check(client)?;
        let (subject_token, subject_type) = self.subject.resolve(client).await?;
        let mut request = TokenRequest::new(TOKEN_EXCHANGE_GRANT)
            .secret_param("subject_token", subject_token)
            .param("subject_token_type", subject_type);
        if let Some(actor) = &self.actor {
            let (actor_token, actor_type) = actor.resolve(client).await?;
            request = request
                .secret_param("actor_token", actor_token)
                .param("actor_token_type", actor_type);
        }
        if let Some(token_type) = &self.requested_token_type {
            request = request.param("requested_token_type", token_type.clone());
        }
        for audience in &self.audiences {
            request = request.param("audience", audience.clone());
        }
        for resource in &self.resources {
            request = request.param("resource", resource.clone());
        }
        if let Some(claims) = &self.claims_request {
            request = request.param("claims", claims.clone());
        }
        if let Some(details) = self.authorization_details.parameter() {
            request = request.param("authorization_details", details);
        }
        let request = request.scope(self.scopes.joined()).resend(Resend::Always);
        let token = client.request_token(request).await?;
        if token.issued_token_type().is_none() {
            return Err(Error::UnexpectedResponse(ResponseError {
                problem: "the token exchange response has no issued_token_type (RFC 8693 §2.2.1)"
                    .into(),
                status: None,
                content_type: None,
                snippet: String::new(),
                retry_after: None,
            }));
        }
        Ok(token)
    }

    fn cache_key(&self, client: &OAuthClient) -> CacheKey {
        let mut key = CacheKey::builder(client, "token_exchange");
        key = self
            .subject
            .key_parts(key, "subject_token", "subject_token_type");
        if let Some(actor) = &self.actor {
            key = actor.key_parts(key, "actor_token", "actor_token_type");
        }
        if let Some(token_type) = &self.requested_token_type {
            key = key.part("requested_token_type", token_type.clone());
        }
        for audience in &self.audiences {
            key = key.part("audience", audience.clone());
        }
        for resource in &self.resources {
            key = key.part("resource", resource.clone());
        }
        if let Some(claims) = &self.claims_request {
            key = key.part("claims", claims.clone());
        }
        key = self.authorization_details.key_part(key);
        key.scopes(self.scopes.iter()).build()
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
