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
//! provider documents), `scopes` (replaces the default scopes), `with_client` /
//! `try_with_client` (any [`OAuthClient`] setting: a transport, a clock, a timeout), and the
//! provider's own options. [`Preset::auth_code`] gives the recommended
//! [`AuthCode`] flow, with the provider's authorization parameters, default scopes and, for
//! OpenID Connect providers, ID token validation; [`Preset::token_source`],
//! [`Preset::middleware`] and [`Preset::layer`] are the one-line versions, the last two sending
//! tokens only to the provider's API origins when the preset knows them.
//!
//! What each preset needs, and what it encodes:
//!
//! | preset | needs | with a secret | default scopes | quirks encoded |
//! |---|---|---|---|---|
//! | [`GitHub`] | `new(client_id)` | `client_secret_post` | `read:user user:email` | form-encoded token answers parsed; tokens without expiry kept a year (401 renews); `/user` then `/user/emails` |
//! | [`Google`] | `new(client_id)` | `client_secret_basic` | `openid email profile` | OpenID Connect; `access_type=offline` for refresh tokens; optional `prompt=consent`; two spellings of the issuer |
//! | [`Microsoft`] | `new(tenant, client_id)` | `client_secret_post` | `openid profile email offline_access` | tenant in every endpoint; `offline_access` always asked for; ID tokens validated for one known tenant only |
//! | [`Okta`] | `new(domain, client_id)`, [`with_authorization_server`](Okta::with_authorization_server), [`org`](Okta::org) | `client_secret_basic` | `openid profile email offline_access` | custom authorization server (`default`) or the org server |
//! | [`Auth0`] | `new(domain, client_id)`; [`audience`](Auth0::audience) for tokens to your API | `client_secret_post` | `openid profile email offline_access` | `audience` parameter; issuer with a trailing `/` |
//! | [`Keycloak`] | `new(realm_url, client_id)` | `client_secret_basic` | `openid profile email` | realm URL and `/protocol/openid-connect/...` |
//! | [`GitLab`] | `new(client_id)` or [`self_hosted`](GitLab::self_hosted)`(base_url, client_id)` | `client_secret_post` | `openid profile email` | gitlab.com or self-hosted; OpenID Connect |
//! | [`Discord`] | `new(client_id)` | `client_secret_basic` | `identify email` | email only when verified |
//! | [`Facebook`] | `new(app_id)` or [`with_version`](Facebook::with_version); a secret for [`long_lived`](Facebook::long_lived) | `client_secret_post` | `email public_profile` | versioned Graph API; no refresh tokens, long-lived exchange |
//! | [`Reddit`] | `new(client_id, user_agent)` | `client_secret_basic`, also without a secret | `identity` | HTTP Basic even without a secret; descriptive `User-Agent`; `duration=permanent`; no email |
//! | [`Shopify`] | `new(shop, client_id)` and a secret (required: it verifies the callback) | `client_secret_post` | none: set `scopes` | per-shop host; comma-separated scopes; offline tokens without `token_type` or expiry; `X-Shopify-Access-Token` |
//! | [`LinkedIn`] | `new(client_id)` | `client_secret_post` | `openid profile email` | OpenID Connect without PKCE and without `nonce` in its ID tokens |
//! | [`Kakao`] | `new(rest_api_key)`; a secret when the console enables one | `client_secret_post` | none: chosen in the console | numeric ids; email only when valid and verified |
//! | [`Naver`] | `new(client_id)` | `client_secret_post` | none: chosen in the console | `response` envelope; `expires_in` as a string |
//! | [`FranceConnect`] | `discover(client, Environment)`, async; feature `jwt` | as discovered | `openid given_name family_name email` | integration or production; `acr_values`; signed userinfo |
//! | [`OpenId`] | [`openid`]`(issuer, client_id, secret)` or `OpenId::discover(client, issuer)`, async | as discovered | `openid profile email` | any OpenID Connect provider, by discovery |
//!
//! Without a secret every preset is a public client (PKCE, `client_id` only), except Reddit's,
//! which sends HTTP Basic with an empty secret as Reddit asks.
//!
//! Presets name the provider's real `https` hosts. To test code that uses them, give the client
//! a transport ([`OAuthClient::transport`], through `with_client`) that sends the requests to a
//! local double: the crate checks the URL before the transport sees it, so the presets stay
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
mod profile;
mod reddit;
mod shopify;
mod spec;

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
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Map;
use url::Url;

use crate::client::{AuthMethod, OAuthClient, endpoint};
use crate::discovery::Metadata;
use crate::error::{Error, Result};
use crate::flow::AuthCode;
use crate::source::TokenSource;
use crate::token::Token;

use profile::Profile;
use spec::{Spec, fill, new_client};

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
    fn middleware(&self) -> Result<crate::OAuthMiddleware> {
        let middleware =
            crate::OAuthMiddleware::auth_code_with(self.client().clone(), self.auth_code());
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
    fn layer(&self) -> Result<crate::OAuthLayer> {
        let layer = crate::OAuthLayer::auth_code_with(self.client().clone(), self.auth_code());
        let origins = self.api_origins();
        if origins.is_empty() {
            Ok(layer)
        } else {
            layer.allow_origins(origins)
        }
    }
}

/// What every preset holds: the client, the sign-in's scopes and parameters, the client
/// authentication used once a secret is set, whether ID tokens are validated, the API origins
/// and how the account behind a token is read. Made from a [`Spec`] (or by discovery).
#[derive(Debug, Clone)]
struct Base {
    name: &'static str,
    client: OAuthClient,
    scopes: String,
    always_scope: Option<&'static str>,
    secret_method: AuthMethod,
    validate_id_token: bool,
    other_issuer: Option<&'static str>,
    pkce: bool,
    auth_params: Vec<(&'static str, String)>,
    api_origins: Vec<String>,
    profile: &'static Profile,
    profile_url: Option<String>,
    other_emails_url: Option<String>,
}

impl Base {
    fn new(
        name: &'static str,
        client: OAuthClient,
        scopes: &str,
        secret_method: AuthMethod,
    ) -> Self {
        Self {
            name,
            client,
            scopes: scopes.to_owned(),
            always_scope: None,
            secret_method,
            validate_id_token: false,
            other_issuer: None,
            pkce: true,
            auth_params: Vec::new(),
            api_origins: Vec::new(),
            profile: &Profile::USERINFO,
            profile_url: None,
            other_emails_url: None,
        }
    }

    /// Turns ID token validation on (the client must carry metadata with a `jwks_uri`).
    fn validating(mut self, validate: bool) -> Self {
        self.validate_id_token = validate;
        self
    }

    /// Reads the account as `profile` says, its URL templates filled with `vars`.
    fn profile(mut self, profile: &'static Profile, vars: &[(&str, &str)]) -> Self {
        self.profile = profile;
        self.profile_url = profile.url.map(|url| fill(url, vars));
        self.other_emails_url = profile.other_emails.map(|url| fill(url, vars));
        self
    }

    /// Sets (or, with `None`, removes) an authorization parameter of the sign-in.
    fn param(mut self, name: &'static str, value: Option<&str>) -> Self {
        self.auth_params.retain(|(n, _)| *n != name);
        if let Some(value) = value {
            self.auth_params.push((name, value.to_owned()));
        }
        self
    }

    fn secret(mut self, secret: impl Into<String>) -> Self {
        self.client = self.client.secret(secret).auth_method(self.secret_method);
        self
    }

    /// The sign-in with the preset's scopes, parameters and ID token validation.
    fn flow(&self) -> AuthCode {
        let mut flow = AuthCode::new().scope(self.scopes.clone());
        if let Some(scope) = self.always_scope {
            flow = flow.scope(scope);
        }
        if !self.pkce {
            flow = flow.pkce(false);
        }
        #[cfg(feature = "jwt")]
        {
            if self.validate_id_token {
                flow = flow.validate_id_token(true);
            }
            if let Some(issuer) = self.other_issuer {
                flow = flow.accept_id_token_issuer(issuer);
            }
        }
        for (name, value) in &self.auth_params {
            flow = flow.auth_param(*name, value.clone());
        }
        flow
    }

    /// The account behind `token`, read as the preset's profile says.
    async fn id_email(&self, token: &Token) -> Result<(String, Option<String>)> {
        self.profile
            .read(
                &self.client,
                self.profile_url.as_deref(),
                self.other_emails_url.as_deref(),
                token,
            )
            .await
    }
}

/// A preset made of a [`Base`]: its builder methods ([`preset_common`]) and its [`Preset`]
/// implementation. `discovered` presets have no `secret` (their client comes configured).
macro_rules! preset {
    ($ty:ident) => {
        $crate::provider::preset_common!($ty);
        $crate::provider::preset!(@trait $ty);
    };
    ($ty:ident, discovered) => {
        $crate::provider::preset_settings!($ty);
        $crate::provider::preset!(@trait $ty);
    };
    (@trait $ty:ident) => {
        #[async_trait::async_trait]
        impl $crate::provider::Preset for $ty {
            fn name(&self) -> &'static str {
                self.base.name
            }

            fn client(&self) -> &$crate::OAuthClient {
                &self.base.client
            }

            fn auth_code(&self) -> $crate::flow::AuthCode {
                self.base.flow()
            }

            async fn id_email(
                &self,
                token: &$crate::Token,
            ) -> $crate::Result<(String, Option<String>)> {
                self.base.id_email(token).await
            }

            fn api_origins(&self) -> Vec<String> {
                self.base.api_origins.clone()
            }
        }
    };
}
use preset;

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
            /// Replaces the default scopes (space separated) of [`Preset::auth_code`](crate::provider::Preset::auth_code).
            pub fn scopes(mut self, scopes: impl Into<String>) -> Self {
                self.base.scopes = scopes.into();
                self
            }

            /// Changes the client: a transport, a clock, a timeout... The preset's endpoints and
            /// quirks stay unless `change` overrides them.
            pub fn with_client(
                mut self,
                change: impl FnOnce($crate::OAuthClient) -> $crate::OAuthClient,
            ) -> Self {
                self.base.client = change(self.base.client);
                self
            }

            /// Like [`with_client`](Self::with_client), for fallible settings (an endpoint, a
            /// user agent).
            pub fn try_with_client(
                mut self,
                change: impl FnOnce($crate::OAuthClient) -> $crate::Result<$crate::OAuthClient>,
            ) -> $crate::Result<Self> {
                self.base.client = change(self.base.client)?;
                Ok(self)
            }
        }
    };
}
use preset_settings;

/// The documented OpenID Connect configuration of a provider, attached to the client as if it
/// had been discovered (without a request): the issuer, the userinfo endpoint and the keys ID
/// tokens are checked with. The client's endpoints must already be set.
fn static_oidc(
    client: OAuthClient,
    issuer: &str,
    userinfo: Option<&str>,
    jwks: Option<&str>,
) -> Result<OAuthClient> {
    let metadata = Metadata {
        issuer: issuer.to_owned(),
        authorization_endpoint: client.authorization_endpoint().cloned(),
        token_endpoint: client.token_endpoint().cloned(),
        device_authorization_endpoint: client.device_authorization_endpoint().cloned(),
        revocation_endpoint: client.revocation_endpoint().cloned(),
        introspection_endpoint: client.introspection_endpoint().cloned(),
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
    Ok(client.issuer(issuer).with_metadata(Arc::new(metadata)))
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
