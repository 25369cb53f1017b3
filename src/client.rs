//! The app registration and the whole conversation with the token endpoint.

mod auth;
mod builder;
mod introspection;
mod request;
mod retry;
mod revocation;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderValue, Method};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

pub use auth::AuthMethod;
pub use builder::OAuthClientBuilder;
pub use introspection::Introspection;
pub use request::TokenRequest;
pub use retry::{Resend, RetryPolicy};
pub use revocation::TokenTypeHint;

use crate::clock::Clock;
use crate::error::{Error, Result, TransportError, TransportErrorKind};
use crate::metadata::Metadata;
use crate::redact::Secrets;
use crate::token::{ParseContext, Token, parse_token_response};
use crate::transport::{HttpTransport, Limits, RawResponse, exchange, is_secure_or_loopback};
use request::Param;
use retry::Jitter;

/// An OAuth client registration: its id and credential, the server's endpoints, and how to talk
/// to them. The one place that talks to a token endpoint.
///
/// Made with [`OAuthClient::builder`]; every setting is read back with the accessor of the same
/// name. Cheap to clone; clones share everything.
///
/// ```
/// use oauth_layer::{AuthMethod, OAuthClient};
///
/// let client = OAuthClient::builder("my-client-id")
///     .secret("s3cret")
///     .auth_method(AuthMethod::ClientSecretPost)
///     .token_url("https://idp.example/oauth/token")
///     .build()?;
/// assert_eq!(client.client_id(), "my-client-id");
/// assert_eq!(client.token_url().map(|u| u.as_str()), Some("https://idp.example/oauth/token"));
/// assert!(!format!("{client:?}").contains("s3cret"));
/// # Ok::<(), oauth_layer::Error>(())
/// ```
#[derive(Clone)]
pub struct OAuthClient {
    inner: Arc<Config>,
    /// The DPoP key this copy of the client signs proofs with: a token source's own key, or the
    /// key of the token being refreshed. `None` uses the client-wide key.
    #[cfg(feature = "dpop")]
    dpop_key: Option<crate::dpop::DpopKey>,
}

/// Everything an [`OAuthClient`] is configured with; [`OAuthClientBuilder`] fills it.
#[derive(Clone)]
struct Config {
    client_id: String,
    secret: Option<SecretString>,
    auth_method: Option<AuthMethod>,
    token_url: Option<Url>,
    authorization_url: Option<Url>,
    device_authorization_url: Option<Url>,
    revocation_url: Option<Url>,
    introspection_url: Option<Url>,
    /// The pushed authorization request endpoint (RFC 9126).
    par_url: Option<Url>,
    issuer: Option<String>,
    metadata: Option<Arc<Metadata>>,
    /// RFC 8707 resource indicators sent on every token and authorization request.
    resources: Vec<String>,
    transport: Option<Arc<dyn HttpTransport>>,
    clock: Arc<dyn Clock>,
    limits: Limits,
    default_lifetime: Duration,
    lenient_token_type: bool,
    #[cfg(feature = "jwt")]
    signing_key: Option<crate::jwt::SigningKey>,
    /// Where the client's assertions come from when another party signs them (a workload
    /// identity token; [`OAuthClientBuilder::client_assertion`]).
    #[cfg(feature = "jwt")]
    assertion_source: Option<Arc<dyn crate::credential::CredentialSource>>,
    #[cfg(feature = "jwt")]
    assertion_audience_issuer: bool,
    retry: RetryPolicy,
    jitter: Arc<Jitter>,
    user_agent: HeaderValue,
    #[cfg(feature = "dpop")]
    dpop: Option<crate::dpop::Dpop>,
    /// The client certificate (RFC 8705) every back-channel connection presents.
    #[cfg(all(feature = "reqwest", feature = "rustls"))]
    client_certificate: Option<crate::tls::ClientCertificate>,
    /// Private root certificates (DER) the default transport trusts.
    #[cfg(all(feature = "reqwest", feature = "rustls"))]
    root_certificates: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// The default transport when the shared one will not do (it must present a client
    /// certificate or trust a private root): made by `build`, used when `transport` is `None`.
    #[cfg(feature = "reqwest")]
    own_transport: Option<Arc<crate::transport::PerRuntime>>,
    /// The security profile the client follows ([`OAuthClientBuilder::profile`]).
    profile: Option<crate::profile::Profile>,
    /// The instruments of the meter given to [`OAuthClientBuilder::meter`]; `None` for the
    /// global provider's.
    #[cfg(feature = "metrics")]
    metrics: Option<Arc<crate::metrics::Instruments>>,
}

impl Config {
    /// The method [`OAuthClient::auth_method`] reports: the chosen one, else `private_key_jwt`
    /// with a signing key, `client_secret_basic` with a secret, `none` without.
    fn effective_auth_method(&self) -> AuthMethod {
        #[cfg(feature = "jwt")]
        if self.auth_method.is_none()
            && (self.signing_key.is_some() || self.assertion_source.is_some())
        {
            return AuthMethod::PrivateKeyJwt;
        }
        self.auth_method.unwrap_or(if self.secret.is_some() {
            AuthMethod::ClientSecretBasic
        } else {
            AuthMethod::None
        })
    }
}

impl OAuthClient {
    /// Starts configuring a client with this `client_id`; [`OAuthClientBuilder::build`] checks
    /// the settings and makes the client.
    pub fn builder(client_id: impl Into<String>) -> OAuthClientBuilder {
        OAuthClientBuilder::new(client_id.into())
    }

    /// A builder holding this client's settings, to make a changed copy (another transport, a
    /// test clock). The copy shares nothing with this client but the settings; its retry
    /// waits draw from a new random source.
    ///
    /// ```
    /// use std::time::Duration;
    /// use oauth_layer::OAuthClient;
    ///
    /// let client = OAuthClient::builder("id").token_url("https://idp.example/token").build()?;
    /// let patient = client.to_builder().timeout(Duration::from_secs(90)).build()?;
    /// assert_eq!(patient.token_url(), client.token_url());
    /// assert_eq!(patient.timeout(), Duration::from_secs(90));
    /// # Ok::<(), oauth_layer::Error>(())
    /// ```
    pub fn to_builder(&self) -> OAuthClientBuilder {
        OAuthClientBuilder::from_config((*self.inner).clone())
    }

    /// This client with settings changed that cannot be wrong (a secret, a method), without
    /// a `Result` to handle: `change` must not call a setter that can record a problem.
    // Used by the provider presets only.
    #[cfg_attr(not(feature = "auth-code"), allow(dead_code))]
    pub(crate) fn reconfigure(
        &self,
        change: impl FnOnce(OAuthClientBuilder) -> OAuthClientBuilder,
    ) -> Self {
        let builder = change(self.to_builder());
        debug_assert!(
            builder.problems.is_empty(),
            "reconfigure takes only settings that cannot be wrong"
        );
        OAuthClient {
            inner: Arc::new(builder.into_config_unchecked()),
            #[cfg(feature = "dpop")]
            dpop_key: self.dpop_key.clone(),
        }
    }

    /// How the client uses DPoP, if it does ([`OAuthClientBuilder::dpop`]).
    #[cfg(feature = "dpop")]
    pub fn dpop(&self) -> Option<&crate::dpop::Dpop> {
        self.inner.dpop.as_ref()
    }

    /// The key this client signs DPoP proofs with: the key of the token source (or token) it
    /// works for, else the key shared by requests made straight through the client. `None`
    /// without DPoP.
    #[cfg(feature = "dpop")]
    pub fn dpop_key(&self) -> Result<Option<crate::dpop::DpopKey>> {
        match (&self.inner.dpop, &self.dpop_key) {
            (None, _) => Ok(None),
            (Some(_), Some(key)) => Ok(Some(key.clone())),
            (Some(dpop), None) => dpop.client_key().map(Some),
        }
    }

    /// This client signing DPoP proofs with `key` (a source's own key, or the key a stored
    /// token is bound to). Shares everything else.
    #[cfg(feature = "dpop")]
    pub(crate) fn with_dpop_key(&self, key: crate::dpop::DpopKey) -> Self {
        Self {
            inner: self.inner.clone(),
            dpop_key: Some(key),
        }
    }

    /// The client certificate every back-channel connection presents (RFC 8705), if set
    /// ([`OAuthClientBuilder::client_certificate`]).
    #[cfg(all(feature = "reqwest", feature = "rustls"))]
    pub fn client_certificate(&self) -> Option<&crate::tls::ClientCertificate> {
        self.inner.client_certificate.as_ref()
    }

    /// Whether the client presents a certificate on its back-channel connections.
    pub(crate) fn has_client_certificate(&self) -> bool {
        self.certificate_thumbprint().is_some()
    }

    /// The RFC 8705 thumbprint of the client's certificate, if it has one.
    pub(crate) fn certificate_thumbprint(&self) -> Option<&str> {
        #[cfg(all(feature = "reqwest", feature = "rustls"))]
        return self
            .inner
            .client_certificate
            .as_ref()
            .map(crate::tls::ClientCertificate::thumbprint);
        #[cfg(not(all(feature = "reqwest", feature = "rustls")))]
        None
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// The client secret, if set.
    pub fn secret(&self) -> Option<&SecretString> {
        self.inner.secret.as_ref()
    }

    /// The client authentication method in effect: the one set with
    /// [`OAuthClientBuilder::auth_method`], else `private_key_jwt` with a signing key,
    /// `client_secret_basic` with a secret and `none` without.
    pub fn auth_method(&self) -> AuthMethod {
        self.inner.effective_auth_method()
    }

    /// A digest of the client's signing key, if it has one (for cache keys).
    #[cfg(feature = "jwt")]
    pub(crate) fn signing_key_fingerprint(&self) -> Option<String> {
        self.inner.signing_key.as_ref().map(|k| k.fingerprint())
    }

    /// What identifies the source of the client's assertions, if they come from one (for cache
    /// keys: the source, not its rotating value).
    #[cfg(feature = "jwt")]
    pub(crate) fn assertion_source_identity(&self) -> Option<String> {
        self.inner.assertion_source.as_ref().map(|s| s.identity())
    }

    /// The key set with [`OAuthClientBuilder::signing_key`], which also signs request objects.
    #[cfg(feature = "jwt")]
    #[cfg_attr(not(feature = "auth-code"), allow(dead_code))]
    pub(crate) fn signing_key(&self) -> Option<&crate::jwt::SigningKey> {
        self.inner.signing_key.as_ref()
    }

    /// Whether client assertions are addressed to the issuer rather than the token endpoint
    /// (always under a [`profile`](Self::profile)).
    #[cfg(feature = "jwt")]
    pub fn assertion_audience_issuer(&self) -> bool {
        self.inner.assertion_audience_issuer || self.inner.profile.is_some()
    }

    /// The algorithm of the client's signing key, if it has one.
    #[cfg(feature = "jwt")]
    pub(crate) fn signing_key_algorithm(&self) -> Option<crate::jwt::Algorithm> {
        self.inner.signing_key.as_ref().map(|k| k.algorithm())
    }

    /// The security profile the client follows, if any ([`OAuthClientBuilder::profile`]).
    pub fn profile(&self) -> Option<crate::profile::Profile> {
        self.inner.profile
    }

    /// The token endpoint, if set.
    pub fn token_url(&self) -> Option<&Url> {
        self.inner.token_url.as_ref()
    }

    /// The authorization endpoint, if set.
    pub fn authorization_url(&self) -> Option<&Url> {
        self.inner.authorization_url.as_ref()
    }

    /// The device authorization endpoint, if set.
    pub fn device_authorization_url(&self) -> Option<&Url> {
        self.inner.device_authorization_url.as_ref()
    }

    /// The revocation endpoint, if set.
    pub fn revocation_url(&self) -> Option<&Url> {
        self.inner.revocation_url.as_ref()
    }

    /// The introspection endpoint, if set.
    pub fn introspection_url(&self) -> Option<&Url> {
        self.inner.introspection_url.as_ref()
    }

    /// The pushed authorization request endpoint (RFC 9126), if set: set with
    /// [`OAuthClientBuilder::par_url`] or taken from the metadata's
    /// `pushed_authorization_request_endpoint`.
    pub fn par_url(&self) -> Option<&Url> {
        self.inner.par_url.as_ref()
    }

    /// The issuer, if set.
    pub fn issuer(&self) -> Option<&str> {
        self.inner.issuer.as_deref()
    }

    /// The authorization server metadata the client was built from
    /// ([`OAuthClientBuilder::metadata`], or
    /// [`discovery::configure`](crate::discovery::configure)), shared by every clone of this
    /// client.
    pub fn metadata(&self) -> Option<&Metadata> {
        self.inner.metadata.as_deref()
    }

    /// The clock this client measures expiry with.
    pub fn clock(&self) -> &dyn Clock {
        &*self.inner.clock
    }

    pub(crate) fn clock_arc(&self) -> Arc<dyn Clock> {
        self.inner.clock.clone()
    }

    /// The deadline for one back-channel exchange.
    pub fn timeout(&self) -> Duration {
        self.inner.limits.timeout
    }

    /// The largest back-channel response body read.
    pub fn max_response_body(&self) -> usize {
        self.inner.limits.max_body
    }

    /// The lifetime assumed for tokens that come without `expires_in`.
    pub fn default_lifetime(&self) -> Duration {
        self.inner.default_lifetime
    }

    /// Whether token responses without `token_type` are taken as bearer tokens.
    pub fn lenient_token_type(&self) -> bool {
        self.inner.lenient_token_type
    }

    /// When and how often token requests are retried.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.inner.retry
    }

    /// The resource indicators (RFC 8707) this client sends on every token request (every
    /// grant, refreshes included) and every authorization and device authorization request
    /// ([`OAuthClientBuilder::resource`]).
    pub fn resources(&self) -> &[String] {
        &self.inner.resources
    }

    /// The `User-Agent` of back-channel requests.
    pub fn user_agent(&self) -> &HeaderValue {
        &self.inner.user_agent
    }

    /// Sends `request` to the token endpoint, retrying per the [`RetryPolicy`] and the
    /// request's [`Resend`] rule, and parses the answer.
    pub async fn request_token(&self, request: TokenRequest) -> Result<Token> {
        self.request_token_with(|_| Ok(request.clone())).await
    }

    /// Like [`request_token`](Self::request_token), but builds the request anew for each attempt
    /// (`attempt` counts from 1), for grants that must not reuse a value, such as a JWT assertion
    /// with a fresh `jti`.
    pub async fn request_token_with<F>(&self, mut make: F) -> Result<Token>
    where
        F: FnMut(u32) -> Result<TokenRequest> + Send,
    {
        let mut attempt = 1;
        let mut nonce_answered = false;
        loop {
            let request = make(attempt)?;
            let (result, new_nonce) = self.send_token_request(&request).await;
            let err = match result {
                Ok(token) => return Ok(token),
                Err(err) => err,
            };
            // A DPoP nonce challenge with a new nonce: the server refused before it looked at
            // the grant, so nothing was spent. Answered once, with the request made anew (a
            // fresh assertion, a fresh proof carrying the nonce) and without waiting
            // (SECURITY.md rule 48).
            if new_nonce && !nonce_answered {
                nonce_answered = true;
                tracing::debug!("the token endpoint asked for a DPoP nonce; once more with it");
                continue;
            }
            let Some(wait) =
                self.inner
                    .retry
                    .delay(&err, request.resend, attempt, &self.inner.jitter)
            else {
                return Err(err);
            };
            tracing::debug!(
                grant_type = %request.grant_type,
                attempt,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                error = %err,
                "token request failed; retrying"
            );
            self.inner.clock.sleep(wait).await;
            attempt += 1;
        }
    }

    /// The instruments this client records with: its meter's, or the global provider's.
    #[cfg(feature = "metrics")]
    pub(crate) fn instruments(&self) -> Arc<crate::metrics::Instruments> {
        self.inner
            .metrics
            .clone()
            .unwrap_or_else(crate::metrics::Instruments::global)
    }

    /// Uses `refresh_token` for a new access token (RFC 6749 §6). If the answer carries no new
    /// refresh token, the returned token keeps this one.
    pub async fn refresh(&self, refresh_token: &SecretString) -> Result<Token> {
        self.refresh_with_scope(refresh_token, None).await
    }

    pub(crate) async fn refresh_with_scope(
        &self,
        refresh_token: &SecretString,
        previous_scope: Option<&str>,
    ) -> Result<Token> {
        let mut request = TokenRequest::new("refresh_token")
            .secret_param("refresh_token", refresh_token.clone())
            .resend(Resend::IfUnprocessed);
        request.requested_scope = previous_scope.map(str::to_owned);
        let token = self.request_token(request).await?;
        Ok(token.keeping_refresh_token(refresh_token))
    }

    /// Sends one token request, with a DPoP proof when the client uses DPoP. The `bool` says
    /// whether the answer was a `use_dpop_nonce` challenge with a nonce other than the one sent
    /// (the nonce is remembered either way, from every answer that carries one).
    async fn send_token_request(&self, request: &TokenRequest) -> (Result<Token>, bool) {
        use tracing::Instrument;
        // One span per request sent: the grant and the endpoint without query, fragment or
        // credentials, and how it ended as one word; never a parameter of the request.
        let span = tracing::info_span!(
            "oauth.token_request",
            grant_type = %request.grant_type,
            endpoint = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        if let Some(url) = &self.inner.token_url {
            span.record(
                "endpoint",
                tracing::field::display(crate::metrics::endpoint_label(url)),
            );
        }
        #[cfg(feature = "metrics")]
        let started = self.inner.clock.now();
        let (result, new_nonce) = self
            .send_token_request_unobserved(request)
            .instrument(span.clone())
            .await;
        let outcome = crate::metrics::outcome_label(result.as_ref().map(|_| ()));
        span.record("outcome", outcome);
        #[cfg(feature = "metrics")]
        self.instruments().token_request(
            &request.grant_type,
            outcome,
            self.inner.clock.now().saturating_duration_since(started),
            new_nonce,
        );
        (result, new_nonce)
    }

    /// [`send_token_request`](Self::send_token_request) without its span and metrics.
    async fn send_token_request_unobserved(&self, request: &TokenRequest) -> (Result<Token>, bool) {
        let Some(url) = self.inner.token_url.as_ref() else {
            return (Err(Error::config("no token URL configured")), false);
        };
        #[cfg(feature = "dpop")]
        if let Some(dpop) = &self.inner.dpop {
            let key = match self.dpop_key() {
                Ok(Some(key)) => key,
                Ok(None) => return (Err(Error::Internal("no DPoP key".into())), false),
                Err(e) => return (Err(e), false),
            };
            let origin =
                crate::dpop::origin_key_of_url(crate::dpop::NonceRole::AuthorizationServer, url);
            let sent = dpop.nonce_for(&origin).await;
            let proof = match key.proof(
                "POST",
                url.as_str(),
                crate::clock::unix_seconds(self.clock()),
                None,
                sent.as_deref(),
            ) {
                Ok(proof) => proof,
                Err(e) => return (Err(e), false),
            };
            let (result, answered) = self
                .send_token_request_once(url, request, Some((&key, dpop, proof)))
                .await;
            let fresh = answered.map(|n| dpop.learn(&origin, &n));
            let new_nonce = matches!(&result, Err(Error::Server(e)) if e.code.as_str() == "use_dpop_nonce")
                && fresh.is_some()
                && fresh != sent;
            return (result, new_nonce);
        }
        (
            self.send_token_request_once(url, request, None).await.0,
            false,
        )
    }

    /// One attempt of [`send_token_request`](Self::send_token_request): the result, and the
    /// `DPoP-Nonce` the response carried.
    async fn send_token_request_once(
        &self,
        url: &Url,
        request: &TokenRequest,
        dpop: Option<ProofToSend<'_>>,
    ) -> (Result<Token>, Option<Box<str>>) {
        match self.token_attempt(url, request, dpop).await {
            Ok(done) => done,
            Err(e) => (Err(e), None),
        }
    }

    async fn token_attempt(
        &self,
        url: &Url,
        request: &TokenRequest,
        dpop: Option<ProofToSend<'_>>,
    ) -> Result<(Result<Token>, Option<Box<str>>)> {
        let cfg = &*self.inner;
        let mut secrets = Secrets::default();
        let http_request = self
            .authenticated_form(
                url,
                |form| {
                    form.append_pair("grant_type", &request.grant_type);
                    for (name, value) in &request.params {
                        form.append_pair(name, value.expose());
                    }
                    // The client's resource indicators, unless the grant names its own.
                    if !request.params.iter().any(|(name, _)| name == "resource") {
                        for resource in &cfg.resources {
                            form.append_pair("resource", resource);
                        }
                    }
                },
                &mut secrets,
            )
            .await?;
        #[cfg_attr(not(feature = "dpop"), allow(unused_mut))]
        let mut http_request = http_request;
        #[cfg(not(feature = "dpop"))]
        let _ = &dpop;
        #[cfg(feature = "dpop")]
        if let Some((_, _, proof)) = &dpop {
            let value = HeaderValue::try_from(proof.as_str())
                .map_err(|_| Error::Internal("a DPoP proof is not a header value".into()))?;
            http_request
                .headers_mut()
                .insert(crate::dpop::DPOP_HEADER, value);
        }
        for (_, value) in &request.params {
            if let Param::Secret(s) = value {
                secrets.add(s.expose_secret());
            }
        }

        tracing::debug!(
            grant_type = %request.grant_type,
            endpoint = %url.origin().ascii_serialization(),
            "token request"
        );
        let mut response = self
            .exchange(crate::error::Endpoint::Token, http_request)
            .await?;
        tracing::debug!(
            grant_type = %request.grant_type,
            status = response.status.as_u16(),
            "token response"
        );
        // A token requested on a connection that presents a certificate is bound to it (RFC 8705
        // §3), unless DPoP binds it to a key instead.
        let certificate_thumbprint = match &dpop {
            None => self.certificate_thumbprint(),
            Some(_) => None,
        };
        let token = parse_token_response(
            &response,
            &ParseContext {
                certificate_thumbprint,
                clock: &*cfg.clock,
                default_lifetime: cfg.default_lifetime,
                requested_scope: request.requested_scope.as_deref(),
                lenient_token_type: cfg.lenient_token_type,
                secrets: &secrets,
                #[cfg(feature = "dpop")]
                dpop: dpop.as_ref().map(|(key, d, _)| (*key, d.require_bound)),
            },
        );
        Ok((token, response.dpop_nonce.take()))
    }

    /// A form POST to `url` carrying the client's authentication, as the token and device
    /// authorization endpoints take it. `fill` writes the request's own parameters. The client
    /// secret, and the Basic credentials made from it, are added to `secrets`, so that a server
    /// echoing them back is redacted. A client whose assertions come from a
    /// [`CredentialSource`](crate::credential::CredentialSource) reads it here, once per
    /// request.
    pub(crate) async fn authenticated_form<'a>(
        &'a self,
        url: &Url,
        fill: impl FnOnce(&mut url::form_urlencoded::Serializer<'_, String>),
        secrets: &mut Secrets<'a>,
    ) -> Result<http::Request<Bytes>> {
        #[cfg(feature = "jwt")]
        let assertion = match &self.inner.assertion_source {
            Some(source) if self.auth_method() == AuthMethod::PrivateKeyJwt => {
                Some(crate::credential::fresh(&**source, self.clock()).await?)
            }
            _ => None,
        };
        #[cfg(not(feature = "jwt"))]
        let assertion: Option<crate::credential::Credential> = None;
        self.authenticated_form_with(url, fill, secrets, assertion.as_ref())
    }

    fn authenticated_form_with<'a>(
        &'a self,
        url: &Url,
        fill: impl FnOnce(&mut url::form_urlencoded::Serializer<'_, String>),
        secrets: &mut Secrets<'a>,
        assertion: Option<&crate::credential::Credential>,
    ) -> Result<http::Request<Bytes>> {
        let cfg = &*self.inner;
        if let Some(s) = &cfg.secret {
            secrets.add(s.expose_secret());
        }
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        fill(&mut form);
        let basic = auth::authenticate(self, url, &mut form, secrets, assertion)?;
        if let Some(credentials) = basic
            .as_ref()
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Basic "))
        {
            // An echoed Authorization header decodes to the secret, which is already added: hide
            // the header's own base64 spellings too.
            if let Some(plain) = STANDARD
                .decode(credentials)
                .ok()
                .and_then(|plain| String::from_utf8(plain).ok())
            {
                secrets.add_basic_credentials(&plain);
            }
        }
        let mut request = http::Request::builder()
            .method(Method::POST)
            .uri(url.as_str())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, cfg.user_agent.clone())
            .body(Bytes::from(form.finish()))
            .map_err(|e| Error::config(format!("cannot build the request: {e}")))?;
        if let Some(basic) = basic {
            request.headers_mut().insert(AUTHORIZATION, basic);
        }
        Ok(request)
    }

    /// Sends any back-channel request to `endpoint` through the configured transport under the
    /// crate's rules.
    pub(crate) async fn exchange(
        &self,
        endpoint: crate::error::Endpoint,
        mut request: http::Request<Bytes>,
    ) -> std::result::Result<RawResponse, TransportError> {
        request
            .headers_mut()
            .entry(USER_AGENT)
            .or_insert_with(|| self.inner.user_agent.clone());
        let limits = self.inner.limits;
        match &self.inner.transport {
            Some(t) => exchange(&**t, endpoint, request, limits, &*self.inner.clock).await,
            None => {
                #[cfg(feature = "reqwest")]
                {
                    let client = match &self.inner.own_transport {
                        Some(own) => own.client()?,
                        None => crate::transport::default_client()?,
                    };
                    exchange(&client, endpoint, request, limits, &*self.inner.clock).await
                }
                #[cfg(not(feature = "reqwest"))]
                {
                    let _ = (endpoint, request, limits);
                    Err(TransportError::new(
                        TransportErrorKind::Other,
                        "no transport configured (enable the `reqwest` feature or call OAuthClientBuilder::transport)",
                    ))
                }
            }
        }
    }
}

/// A token request's DPoP proof, with the key that signed it and the client's DPoP settings.
#[cfg(feature = "dpop")]
type ProofToSend<'a> = (&'a crate::dpop::DpopKey, &'a crate::dpop::Dpop, String);
#[cfg(not(feature = "dpop"))]
type ProofToSend<'a> = (std::convert::Infallible, std::marker::PhantomData<&'a ()>);

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &*self.inner;
        let mut d = f.debug_struct("OAuthClient");
        d.field("client_id", &c.client_id)
            .field("secret", &c.secret.as_ref().map(|_| "[redacted]"))
            .field("auth_method", &self.auth_method())
            .field("token_url", &c.token_url.as_ref().map(Url::as_str))
            .field("issuer", &c.issuer)
            .field("transport", &c.transport);
        #[cfg(all(feature = "reqwest", feature = "rustls"))]
        d.field("client_certificate", &c.client_certificate);
        d.finish_non_exhaustive()
    }
}

pub(crate) fn endpoint(name: &str, url: &str) -> Result<Url> {
    let parsed = Url::parse(url).map_err(|e| Error::config(format!("{name} is not a URL: {e}")))?;
    let uri: http::Uri = parsed
        .as_str()
        .parse()
        .map_err(|_| Error::config(format!("{name} is not a valid HTTP URI")))?;
    if !is_secure_or_loopback(&uri) {
        return Err(Error::Transport(TransportError::new(
            TransportErrorKind::InsecureUrl,
            format!("{name} must be https (plain http is allowed only to loopback addresses)"),
        )));
    }
    Ok(parsed)
}
