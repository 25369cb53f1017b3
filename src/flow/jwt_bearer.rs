//! The JWT bearer grant (RFC 7523 §2.1): a signed assertion is the grant. Also Google-style
//! service account key files, which are this grant with the scopes in the assertion.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Map, Value};
use zeroize::Zeroize;

use super::{Flow, Requirements, Scopes};
use crate::client::{OAuthClient, Resend, TokenRequest};
use crate::error::{Error, Result};
use crate::jwt::{Claims, MAX_ASSERTION_LIFETIME, SigningKey};
use crate::source::TokenSource;
use crate::store::CacheKey;
use crate::token::Token;

const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The largest service account key file read.
const MAX_SERVICE_ACCOUNT_BYTES: u64 = 64 * 1024;

/// Google's token endpoint, for key files that do not name one.
const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// The JWT bearer grant: the client trades an assertion it signs itself for an access token,
/// with no user and no secret on the wire. For an assertion signed by someone else (a
/// workload identity token), see [`AssertionGrant`](super::AssertionGrant).
///
/// Every attempt, retries included, sends a new assertion with a fresh `jti` and `iat`, `aud` the
/// token endpoint unless [`audience`](Self::audience) says otherwise, and `exp` at most five
/// minutes ahead. Scopes go in the `scope` form parameter, or in a `scope` claim with
/// [`scope_claim`](Self::scope_claim) (what Google wants; see [`ServiceAccount`]).
///
/// ```no_run
/// use oauth_layer::{OAuthClient, TokenSource, flow::JwtBearer, jwt::SigningKey};
///
/// # async fn run() -> oauth_layer::Result<()> {
/// let pem = std::fs::read("issuer-key.pem").expect("the key file");
/// let key = SigningKey::rs256_pem(&pem)?.kid("key-1");
/// let client = OAuthClient::builder("my-client")
///     .token_url("https://idp.example/oauth/token")
///     .build()?;
/// let flow = JwtBearer::new(key, "my-client")
///     .subject("user@example.com")
///     .scope("api:read");
/// let token = TokenSource::new(client, flow).token().await?;
/// # let _ = token; Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct JwtBearer {
    key: SigningKey,
    issuer: String,
    subject: Option<String>,
    subject_defaults_to_issuer: bool,
    audience: Option<String>,
    scopes: Scopes,
    scope_claim: bool,
    claims: Map<String, Value>,
    lifetime: Duration,
    not_before: bool,
    /// The claims request of an upgrade (see [`Flow::upgraded`]), a token request parameter.
    claims_request: Option<String>,
}

impl JwtBearer {
    /// The grant with assertions signed by `key` and issued by `issuer` (`iss`). The subject
    /// (`sub`) is the issuer until [`subject`](Self::subject) names someone else.
    pub fn new(key: SigningKey, issuer: impl Into<String>) -> Self {
        Self {
            key,
            issuer: issuer.into(),
            subject: None,
            subject_defaults_to_issuer: true,
            audience: None,
            scopes: Scopes::default(),
            scope_claim: false,
            claims: Map::new(),
            lifetime: MAX_ASSERTION_LIFETIME,
            not_before: false,
            claims_request: None,
        }
    }

    /// The principal the token is for (`sub`), such as a user to impersonate.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// The assertion's audience (`aud`); by default the token endpoint URL.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Requests a scope (space-separated scopes are split; call it again to add more).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.add(scope);
        self
    }

    /// Sends the scopes as a `scope` claim in the assertion instead of a form parameter (off
    /// by default; Google service accounts need it on).
    pub fn scope_claim(mut self, in_assertion: bool) -> Self {
        self.scope_claim = in_assertion;
        self
    }

    /// Adds a claim of your own to every assertion. The claims this flow sets itself (`iss`,
    /// `sub`, `aud`, `iat`, `exp`, `nbf`, `jti`, and `scope` with
    /// [`scope_claim`](Self::scope_claim)) always win over one of the same name.
    pub fn claim(mut self, name: impl Into<String>, value: Value) -> Self {
        self.claims.insert(name.into(), value);
        self
    }

    /// How long each assertion is valid (`exp - iat`): at most
    /// [`MAX_ASSERTION_LIFETIME`](crate::jwt::MAX_ASSERTION_LIFETIME) (the default), at least
    /// one second; values outside are clamped.
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime.clamp(Duration::from_secs(1), MAX_ASSERTION_LIFETIME);
        self
    }

    /// Also sends `nbf` (equal to `iat`); off by default.
    pub fn not_before(mut self, send: bool) -> Self {
        self.not_before = send;
        self
    }

    fn subject_claim(&self) -> Option<&str> {
        self.subject.as_deref().or(self
            .subject_defaults_to_issuer
            .then_some(self.issuer.as_str()))
    }

    fn audience_for(&self, client: &OAuthClient) -> Result<String> {
        match (&self.audience, client.token_url()) {
            (Some(aud), _) => Ok(aud.clone()),
            (None, Some(url)) => Ok(url.as_str().to_owned()),
            (None, None) => Err(Error::config("no token URL configured")),
        }
    }
}

#[async_trait]
impl Flow for JwtBearer {
    async fn fetch(&self, client: &OAuthClient) -> Result<Token> {
        let audience = self.audience_for(client)?;
        let scope = self.scopes.joined();
        client
            .request_token_with(|_attempt| {
                let assertion = self.key.assertion(&Claims {
                    issuer: &self.issuer,
                    subject: self.subject_claim(),
                    audience: &audience,
                    issued_at: client.clock().now_utc(),
                    lifetime: self.lifetime,
                    not_before: self.not_before,
                    scope: self.scope_claim.then_some(scope.as_str()),
                    extra: Some(&self.claims),
                })?;
                let mut request = TokenRequest::new(GRANT_TYPE)
                    .secret_param("assertion", assertion)
                    .resend(Resend::Always);
                if let Some(claims) = &self.claims_request {
                    request = request.param("claims", claims.clone());
                }
                Ok(if !self.scope_claim {
                    request.scope(scope.clone())
                } else if !scope.is_empty() {
                    request.requested_scope(scope.clone())
                } else {
                    request
                })
            })
            .await
    }

    fn cache_key(&self, client: &OAuthClient) -> CacheKey {
        let audience = self.audience_for(client).unwrap_or_default();
        let mut key = CacheKey::builder(client, "jwt-bearer")
            .part("issuer", self.issuer.clone())
            .part("subject", self.subject_claim().unwrap_or_default())
            .part("audience", audience)
            .scopes(self.scopes.iter())
            .secret_part("signing_key", &self.key.fingerprint());
        if !self.claims.is_empty() {
            key = key.part("claims", Value::Object(self.claims.clone()).to_string());
        }
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

/// A Google-style service account key file (`"type": "service_account"`): the account's email,
/// its RSA private key and key id, and the token endpoint. One call turns it into a working
/// token source.
///
/// ```no_run
/// use oauth_layer::flow::ServiceAccount;
///
/// # async fn run() -> oauth_layer::Result<()> {
/// let account = ServiceAccount::from_file("service-account.json")?;
/// let tokens = account.source("https://www.googleapis.com/auth/cloud-platform")?;
/// let token = tokens.token().await?;
/// # let _ = token; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ServiceAccount {
    email: String,
    token_uri: String,
    key: SigningKey,
}

#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: Option<String>,
    private_key: Option<String>,
    private_key_id: Option<String>,
    token_uri: Option<String>,
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        if let Some(key) = &mut self.private_key {
            key.zeroize();
        }
    }
}

impl ServiceAccount {
    /// Reads a key file's JSON. Fails with [`Error::Key`] when it is not a service account key
    /// or its private key is missing or unusable.
    pub fn from_json(json: &str) -> Result<Self> {
        if json.len() as u64 > MAX_SERVICE_ACCOUNT_BYTES {
            return Err(Error::Key(format!(
                "the service account key is larger than {MAX_SERVICE_ACCOUNT_BYTES} bytes"
            )));
        }
        // serde_json's messages can quote the input, so keep only where the problem is.
        let file: KeyFile = serde_json::from_str(json).map_err(|e| {
            Error::Key(format!(
                "the service account key is not valid JSON of the expected shape (line {}, \
                 column {})",
                e.line(),
                e.column()
            ))
        })?;
        if let Some(kind) = file.kind.as_deref().filter(|k| *k != "service_account") {
            return Err(Error::Key(format!(
                "the key file is of type {:?}, not service_account",
                kind.chars().take(40).collect::<String>()
            )));
        }
        let email = file
            .client_email
            .clone()
            .filter(|e| !e.is_empty())
            .ok_or_else(|| Error::Key("the service account key has no client_email".into()))?;
        let pem = file
            .private_key
            .as_deref()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| Error::Key("the service account key has no private_key".into()))?;
        let mut key = SigningKey::rs256_pem(pem)?;
        if let Some(kid) = file.private_key_id.clone().filter(|k| !k.is_empty()) {
            key = key.kid(kid);
        }
        let token_uri = file
            .token_uri
            .clone()
            .unwrap_or_else(|| GOOGLE_TOKEN_URI.to_owned());
        // Check the endpoint now (https, or http to loopback) rather than at the first request.
        OAuthClient::builder(email.as_str())
            .token_url(&token_uri)
            .build()?;
        Ok(Self {
            email,
            token_uri,
            key,
        })
    }

    /// Reads a key file from disk (a small blocking read: call it at start-up, not inside a
    /// request).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let unreadable = |e: std::io::Error| {
            Error::Key(format!(
                "cannot read the service account key {}: {e}",
                path.display()
            ))
        };
        let mut json = String::new();
        let read = std::fs::File::open(path)
            .and_then(|f| {
                f.take(MAX_SERVICE_ACCOUNT_BYTES + 1)
                    .read_to_string(&mut json)
            })
            .map_err(unreadable);
        let account = read.and_then(|_| Self::from_json(&json));
        json.zeroize();
        account
    }

    /// The account's email: the assertions' issuer and the client id.
    pub fn email(&self) -> &str {
        &self.email
    }

    /// The token endpoint the key file names.
    pub fn token_uri(&self) -> &str {
        &self.token_uri
    }

    /// The private key's id (`private_key_id`), sent as the `kid` header.
    pub fn key_id(&self) -> Option<&str> {
        self.key.key_id()
    }

    /// A client for the account's token endpoint, with the email as client id. Adjust it
    /// (transport, clock, retries) before use if needed.
    pub fn client(&self) -> Result<OAuthClient> {
        OAuthClient::builder(self.email.as_str())
            .token_url(&self.token_uri)
            .build()
    }

    /// The JWT bearer flow for `scopes` (space separated): issuer the account, scopes in the
    /// assertion's `scope` claim, audience the token endpoint, no `sub` (add one with
    /// [`JwtBearer::subject`] for domain-wide delegation).
    pub fn flow(&self, scopes: impl Into<String>) -> JwtBearer {
        let mut flow = JwtBearer::new(self.key.clone(), self.email.as_str())
            .scope(scopes)
            .scope_claim(true);
        flow.subject_defaults_to_issuer = false;
        flow
    }

    /// A token source for `scopes`: [`client`](Self::client) and [`flow`](Self::flow) together.
    pub fn source(&self, scopes: impl Into<String>) -> Result<TokenSource> {
        Ok(TokenSource::new(self.client()?, self.flow(scopes)))
    }
}
