//! Presets for well-known providers: a client with the provider's documented endpoints, client
//! authentication and quirks, the sign-in it recommends, and the account behind a token.
//!
//! Each provider is a type implementing [`Preset`]:
//!
//! ```no_run
//! use oauth_layer::provider::{GitHub, Preset};
//!
//! # async fn run() -> oauth_layer::Result<()> {
//! let github = GitHub::new("my-client-id")?.secret("my-secret");
//! let tokens = github.token_source();      // signs the person in on first use
//! let token = tokens.token().await?;
//! let (id, email) = github.id_email(&token).await?;
//! # let _ = (id, email); Ok(()) }
//! ```
//!
//! Every preset is built the same way: `Type::new(<where the provider lives>, client_id)?`, then
//! optional settings: [`secret`](GitHub::secret) (switches to the client authentication the
//! provider documents), `scopes` (replaces the default scopes), `with_client` (any
//! [`OAuthClientBuilder`] setting: a transport, a clock, a timeout), and the
//! provider's own options. [`Preset::auth_code`] gives the recommended
//! [`AuthCode`] flow, with the provider's authorization parameters, default scopes and, for
//! OpenID Connect providers, ID token validation; [`Preset::token_source`],
//! [`Preset::middleware`] and [`Preset::layer`] are the one-line versions, the last two sending
//! tokens only to the provider's API origins when the preset knows them.
//!
//! | preset | quirks encoded |
//! |---|---|
//! | [`GitHub`] | form-encoded token answers parsed; tokens without expiry kept a year (401 renews); `/user` then `/user/emails` |
//! | [`Google`] | OpenID Connect; `access_type=offline` for refresh tokens; optional `prompt=consent` |
//! | [`Microsoft`] | tenant in every endpoint; `offline_access` always asked for; ID tokens validated for one known tenant only |
//! | [`Okta`] | custom authorization server (`default`) or the org server |
//! | [`Auth0`] | `audience` parameter; issuer with a trailing `/` |
//! | [`Keycloak`] | realm URL and `/protocol/openid-connect/...` |
//! | [`GitLab`] | gitlab.com or self-hosted; OpenID Connect |
//! | [`Discord`] | `identify email`; email only when verified |
//! | [`Facebook`] | versioned Graph API; no refresh tokens, [`Facebook::long_lived`] exchange |
//! | [`Reddit`] | HTTP Basic even without a secret; descriptive `User-Agent`; `duration=permanent`; no email |
//! | [`Shopify`] | per-shop host; comma-separated scopes; offline tokens without `token_type` or expiry; `X-Shopify-Access-Token` |
//! | [`LinkedIn`] | OpenID Connect without PKCE and without `nonce` in its ID tokens |
//! | [`Kakao`] | numeric ids; email only when valid and verified |
//! | [`Naver`] | `response` envelope; `expires_in` as a string |
//! | [`FranceConnect`] | integration or production; discovery; signed userinfo (feature `jwt`) |
//! | [`OpenId`] | any OpenID Connect provider, by discovery ([`openid`]) |
//!
//! Presets name the provider's real `https` hosts. To test code that uses them, give the client
//! a transport ([`OAuthClientBuilder::transport`], through `with_client`) that sends the requests
//! to a local double: the crate checks the URL before the transport sees it, so the presets stay
//! as they are.

mod auth0;
mod discord;
mod facebook;
#[cfg(feature = "jwt")]
mod franceconnect;
mod github;
mod gitlab;
mod google;
mod kakao;
mod keycloak;
mod linkedin;
mod microsoft;
mod naver;
mod okta;
mod openid;
mod reddit;
mod shopify;

pub use auth0::Auth0;
pub use discord::Discord;
pub use facebook::{DEFAULT_FACEBOOK_VERSION, Facebook};
#[cfg(feature = "jwt")]
pub use franceconnect::{Environment, FranceConnect};
pub use github::{GITHUB_TOKEN_LIFETIME, GitHub};
pub use gitlab::GitLab;
pub use google::Google;
pub use kakao::Kakao;
pub use keycloak::Keycloak;
pub use linkedin::LinkedIn;
pub use microsoft::Microsoft;
pub use naver::Naver;
pub use okta::Okta;
pub use openid::{OpenId, openid};
pub use reddit::Reddit;
pub use shopify::{DEFAULT_SHOPIFY_API_VERSION, Shopify};

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION};
use http::{HeaderName, HeaderValue};
use secrecy::ExposeSecret;
use serde_json::{Map, Value};
use url::Url;

use crate::client::{AuthMethod, OAuthClient, OAuthClientBuilder, endpoint};
use crate::error::{Error, Result};
use crate::flow::AuthCode;
use crate::metadata::Metadata;
use crate::redact::Secrets;
use crate::source::TokenSource;
use crate::token::Token;
use crate::transport::RawResponse;

/// What every provider preset offers. Object safe: presets can be kept as `Box<dyn Preset>`.
#[async_trait]
pub trait Preset: fmt::Debug + Send + Sync {
    /// The provider's name, for logs and menus (`"github"`, `"google"`...).
    fn name(&self) -> &'static str;

    /// The configured client: endpoints, client authentication, user agent and quirks.
    fn client(&self) -> &OAuthClient;

    /// The sign-in the provider recommends: its authorization parameters, the preset's scopes
    /// and, for OpenID Connect providers whose ID tokens can be checked, ID token validation
    /// (feature `jwt`). Adjust it further with the [`AuthCode`] methods.
    fn auth_code(&self) -> AuthCode;

    /// The account behind `token`: the provider's stable id for it and, when the provider
    /// gives one (and, where the provider says so, has verified it), its email address.
    /// Each preset documents which API it asks and what the id is.
    async fn id_email(&self, token: &Token) -> Result<(String, Option<String>)>;

    /// The origins of the provider's API, the only places [`middleware`](Self::middleware) and
    /// [`layer`](Self::layer) send tokens to. Empty when the API is spread over too many hosts
    /// to list (Google's), in which case the origin of the first request gets them and no other
    /// (name yours with `allow_origins` on a layer or middleware you build yourself).
    fn api_origins(&self) -> Vec<String> {
        Vec::new()
    }

    /// A [`TokenSource`] signing the person in with [`auth_code`](Self::auth_code).
    fn token_source(&self) -> TokenSource {
        TokenSource::new(self.client().clone(), self.auth_code())
    }

    /// A reqwest middleware signing the person in on the first request (interactive), sending
    /// tokens to the [`api_origins`](Self::api_origins) only.
    #[cfg(feature = "reqwest")]
    fn middleware(&self) -> Result<crate::reqwest::OAuthMiddleware> {
        let middleware =
            crate::reqwest::OAuthMiddleware::with_flow(self.client().clone(), self.auth_code());
        let origins = self.api_origins();
        if origins.is_empty() {
            Ok(middleware)
        } else {
            middleware.allow_origins(origins)
        }
    }

    /// A tower layer signing the person in on the first request (interactive), sending tokens
    /// to the [`api_origins`](Self::api_origins) only.
    #[cfg(feature = "tower")]
    fn layer(&self) -> Result<crate::tower::OAuthLayer> {
        let layer = crate::tower::OAuthLayer::with_flow(self.client().clone(), self.auth_code());
        let origins = self.api_origins();
        if origins.is_empty() {
            Ok(layer)
        } else {
            layer.allow_origins(origins)
        }
    }
}

/// What every preset holds: the client, the scopes of its sign-in, the client authentication
/// used once a secret is set, and whether ID tokens are validated.
#[derive(Debug, Clone)]
struct Base {
    client: OAuthClient,
    scopes: String,
    secret_method: AuthMethod,
    validate_id_token: bool,
}

impl Base {
    fn new(client: OAuthClient, scopes: &str, secret_method: AuthMethod) -> Self {
        Self {
            client,
            scopes: scopes.to_owned(),
            secret_method,
            validate_id_token: false,
        }
    }

    /// Turns ID token validation on (the client must carry metadata with a `jwks_uri`).
    fn validating(mut self, validate: bool) -> Self {
        self.validate_id_token = validate;
        self
    }

    fn secret(mut self, secret: impl Into<String>) -> Self {
        let method = self.secret_method;
        self.client = self
            .client
            .reconfigure(|c| c.secret(secret).auth_method(method));
        self
    }

    /// The sign-in with the preset's scopes and ID token validation.
    fn flow(&self) -> AuthCode {
        let flow = AuthCode::new().scope(self.scopes.clone());
        #[cfg(feature = "jwt")]
        let flow = if self.validate_id_token {
            flow.validate_id_token(true)
        } else {
            flow
        };
        flow
    }
}

/// The builder methods every preset shares: [`preset_settings`] and `secret`.
macro_rules! preset_common {
    ($ty:ident) => {
        impl $ty {
            /// Sets the client secret, and with it the client authentication this provider
            /// documents (see the type's docs). Without a secret the client is public.
            pub fn secret(mut self, secret: impl Into<String>) -> Self {
                self.base = self.base.secret(secret);
                self
            }
        }
        $crate::provider::preset_settings!($ty);
    };
}
use preset_common;

/// The settings of every preset, discovered ones included.
macro_rules! preset_settings {
    ($ty:ident) => {
        impl $ty {
            /// Replaces the default scopes (space separated) of [`Preset::auth_code`].
            pub fn scopes(mut self, scopes: impl Into<String>) -> Self {
                self.base.scopes = scopes.into();
                self
            }

            /// Changes the client: a transport, a clock, a timeout, an endpoint... The preset's
            /// endpoints and quirks stay unless `change` overrides them.
            ///
            /// # Errors
            ///
            /// What [`OAuthClientBuilder::build`]($crate::client::OAuthClientBuilder::build)
            /// reports for the changed settings.
            pub fn with_client(
                mut self,
                change: impl FnOnce(
                    $crate::client::OAuthClientBuilder,
                ) -> $crate::client::OAuthClientBuilder,
            ) -> $crate::error::Result<Self> {
                self.base.client = change(self.base.client.to_builder()).build()?;
                Ok(self)
            }
        }
    };
}
use preset_settings;

/// Sets the authorization and token endpoints.
fn endpoints(client: OAuthClientBuilder, authorization: &str, token: &str) -> OAuthClientBuilder {
    client.authorization_url(authorization).token_url(token)
}

/// The documented OpenID Connect configuration of a provider, attached to the client as if it
/// had been discovered (without a request): the issuer, the userinfo endpoint and the keys ID
/// tokens are checked with. The client's endpoints must already be set; this builds it.
fn static_oidc(
    client: OAuthClientBuilder,
    issuer: &str,
    userinfo: Option<&str>,
    jwks: Option<&str>,
) -> Result<OAuthClient> {
    let client = client.build()?;
    let metadata = Metadata {
        issuer: issuer.to_owned(),
        authorization_endpoint: client.authorization_url().cloned(),
        token_endpoint: client.token_url().cloned(),
        device_authorization_endpoint: client.device_authorization_url().cloned(),
        revocation_endpoint: client.revocation_url().cloned(),
        introspection_endpoint: client.introspection_url().cloned(),
        userinfo_endpoint: userinfo
            .map(|u| endpoint("userinfo_endpoint", u))
            .transpose()?,
        jwks_uri: jwks.map(|u| endpoint("jwks_uri", u)).transpose()?,
        registration_endpoint: None,
        end_session_endpoint: None,
        scopes_supported: None,
        response_types_supported: Some(vec!["code".to_owned()]),
        grant_types_supported: None,
        token_endpoint_auth_methods_supported: None,
        token_endpoint_auth_signing_alg_values_supported: None,
        code_challenge_methods_supported: None,
        id_token_signing_alg_values_supported: None,
        authorization_response_iss_parameter_supported: false,
        extra: Map::new(),
    };
    client.to_builder().metadata(metadata).build()
}

/// `https://host[/path]` from what a person typed: a bare host (`dev-1.okta.com`) or a URL,
/// without a trailing `/`. Plain `http` is kept only for loopback hosts (local servers).
fn base_url(what: &str, input: &str) -> Result<String> {
    let input = input.trim();
    let with_scheme = if input.contains("://") {
        input.to_owned()
    } else {
        format!("https://{input}")
    };
    let url = endpoint(what, &with_scheme)?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::config(format!(
            "{what} must have no query or fragment"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() || url.host_str().is_none() {
        return Err(Error::config(format!("{what} must be a plain host or URL")));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// The origin (`scheme://host[:port]`) of a URL.
fn origin(url: &str) -> Vec<String> {
    Url::parse(url)
        .map(|u| vec![u.origin().ascii_serialization()])
        .unwrap_or_default()
}

/// How a provider API wants the access token.
#[derive(Debug, Clone, Copy)]
enum Credential {
    /// `Authorization: Bearer ...`
    Bearer,
    /// The bare token in this header (Shopify's `X-Shopify-Access-Token`).
    Header(&'static str),
}

/// A JSON object from a provider API, kept with the response it came in so that a missing member
/// can be reported like any unexpected answer.
struct Answer<'t> {
    response: RawResponse,
    map: Map<String, Value>,
    secrets: Secrets<'t>,
}

impl Answer<'_> {
    /// The member at `path` (nested objects).
    fn get(&self, path: &[&str]) -> Option<&Value> {
        let (first, rest) = path.split_first()?;
        rest.iter()
            .try_fold(self.map.get(*first)?, |v, name| v.get(name))
    }

    /// A string member, `None` when absent, `null` or empty.
    fn text(&self, path: &[&str]) -> Option<String> {
        self.get(path)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }

    fn flag(&self, path: &[&str]) -> Option<bool> {
        self.get(path).and_then(Value::as_bool)
    }

    /// An id, sent as a string or a number (GitHub, Kakao and Shopify send numbers).
    fn id(&self, path: &[&str]) -> Result<String> {
        match self.get(path) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            _ => Err(self.missing(&format!("no {} in the answer", path.join(".")))),
        }
    }

    fn missing(&self, problem: &str) -> Error {
        self.response.unexpected(problem, &self.secrets)
    }
}

/// `GET url` with the access token, answered with a JSON object and a success status.
async fn api_get<'t>(
    client: &OAuthClient,
    url: &str,
    token: &'t Token,
    credential: Credential,
) -> Result<Answer<'t>> {
    let mut request = http::Request::get(url)
        .header(ACCEPT, "application/json")
        .body(Bytes::new())
        .map_err(|e| Error::config(format!("cannot build the request: {e}")))?;
    match credential {
        Credential::Bearer => {
            request
                .headers_mut()
                .insert(AUTHORIZATION, token.header_value().clone());
        }
        Credential::Header(name) => {
            let mut value = HeaderValue::try_from(token.access_token().expose_secret())
                .map_err(|_| Error::config("the access token is not a valid header value"))?;
            value.set_sensitive(true);
            request
                .headers_mut()
                .insert(HeaderName::from_static(name), value);
        }
    }
    let response = client
        .exchange(crate::error::Endpoint::ProviderApi, request)
        .await?;
    let mut secrets = Secrets::default();
    secrets.add(token.access_token().expose_secret());
    let map = response.json_object(&secrets)?;
    if !response.status.is_success() {
        return Err(response.unexpected("the API answered an error status", &secrets));
    }
    Ok(Answer {
        response,
        map,
        secrets,
    })
}

/// `sub` and `email` from an OpenID Connect userinfo endpoint; the email is left out when the
/// provider says it is not verified (`email_verified: false`).
async fn userinfo_id_email(
    client: &OAuthClient,
    url: &str,
    token: &Token,
) -> Result<(String, Option<String>)> {
    let answer = api_get(client, url, token, Credential::Bearer).await?;
    let id = answer.id(&["sub"])?;
    let email = match answer.flag(&["email_verified"]) {
        Some(false) => None,
        _ => answer.text(&["email"]),
    };
    Ok((id, email))
}

/// The userinfo endpoint of an OpenID Connect preset's client.
fn userinfo_url(client: &OAuthClient) -> Result<String> {
    client
        .metadata()
        .and_then(|m| m.userinfo_endpoint.as_ref())
        .map(|u| u.as_str().to_owned())
        .ok_or_else(|| Error::config("the provider's metadata names no userinfo endpoint"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_normalised() {
        assert_eq!(
            base_url("domain", "dev-1.okta.com").ok().as_deref(),
            Some("https://dev-1.okta.com")
        );
        assert_eq!(
            base_url("realm", "https://sso.example/realms/a/")
                .ok()
                .as_deref(),
            Some("https://sso.example/realms/a")
        );
        assert!(base_url("domain", "http://evil.example").is_err());
        assert!(base_url("domain", "https://a.example/?x=1").is_err());
        assert!(base_url("domain", "https://u:p@a.example").is_err());
    }
}
