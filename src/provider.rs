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
//! [`OAuthClientBuilder`] setting: a transport, a clock, a timeout), and the provider's own
//! options. [`Preset::auth_code`] gives the recommended
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
//! a transport ([`OAuthClientBuilder::transport`], through `with_client`) that sends the
//! requests to a local double: the crate checks the URL before the transport sees it, so the
//! presets stay as they are.
//!
//! [`OAuthClientBuilder`]: crate::client::OAuthClientBuilder
//! [`OAuthClientBuilder::transport`]: crate::client::OAuthClientBuilder::transport

// A simple provider is data: a `const Spec` (spec.rs) turned into a `Base` (base.rs) by its
// constructor, and `preset!(Type)` for its settings and `Preset` implementation (discord.rs).
mod auth0;
mod base;
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

use async_trait::async_trait;
use url::Url;

use crate::client::{OAuthClient, endpoint};
use crate::error::{Error, Result};
use crate::flow::AuthCode;
use crate::source::TokenSource;
use crate::token::Token;

use base::{Base, preset, preset_common, preset_settings};
use spec::{Spec, new_client};

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
