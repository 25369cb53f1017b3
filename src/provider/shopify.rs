//! Shopify (the authorization code grant of standalone and API-only apps).

use std::time::Duration;

use async_trait::async_trait;

use super::{Base, Credential, Preset, api_get, endpoints, preset_common};
use crate::client::{AuthMethod, OAuthClient};
use crate::error::{Error, Result};
use crate::flow::AuthCode;
use crate::token::Token;

/// The Admin API version [`id_email`](Preset::id_email) asks unless told otherwise.
pub const DEFAULT_SHOPIFY_API_VERSION: &str = "2025-10";

/// How long an offline token (which comes without `expires_in`) is taken to live: it lasts until
/// the app is uninstalled, which a 401 reveals.
const OFFLINE_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// The header the Admin API takes tokens in.
const TOKEN_HEADER: &str = "x-shopify-access-token";

/// Shopify: one shop, `{shop}.myshopify.com`, whose admin signs the app in
/// (`/admin/oauth/authorize`, `/admin/oauth/access_token`).
///
/// Quirks encoded:
/// - the shop name is checked (`[a-zA-Z0-9][a-zA-Z0-9-]*`, optionally with
///   `.myshopify.com`): it comes from a query string, and a token must not be sent elsewhere;
/// - scopes are comma separated (`read_products,write_orders`): the preset sends `scopes` that
///   way, as the authorization parameter `scope`;
/// - offline tokens (the default) answer without `token_type` and without `expires_in`, and
///   do not expire: the client accepts the missing type as bearer and keeps the token a year,
///   a 401 (the app was uninstalled) renewing it. [`online`](Self::online) asks for an
///   online, per-user token (`grant_options[]=per-user`), which does expire;
/// - client authentication is `client_secret_post`;
/// - the Admin API takes the token in `X-Shopify-Access-Token`, not `Authorization: Bearer`:
///   [`middleware`](Preset::middleware) and [`layer`](Preset::layer) refuse to build (they
///   would send a bearer header Shopify ignores); take tokens from
///   [`token_source`](Preset::token_source) and set the header yourself.
///
/// Shopify signs its redirect with an `hmac` parameter; the flow checks `state` (which is what
/// ties the answer to this sign-in) but not that signature.
///
/// [`id_email`](Preset::id_email) returns the id and the contact email of the **shop**
/// (`GET /admin/api/{version}/shop.json`), not of a person: an offline token belongs to the
/// shop.
#[derive(Debug, Clone)]
pub struct Shopify {
    base: Base,
    shop: String,
    online: bool,
    api_version: String,
}

preset_common!(Shopify);

impl Shopify {
    /// A preset for `shop` (`my-shop` or `my-shop.myshopify.com`) and this app's client id.
    pub fn new(shop: &str, client_id: impl Into<String>) -> Result<Self> {
        let name = shop
            .trim()
            .strip_suffix(".myshopify.com")
            .unwrap_or(shop.trim());
        let valid = name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !valid {
            return Err(Error::config(
                "the shop must be a myshopify.com shop name, such as my-shop",
            ));
        }
        let shop = format!("{}.myshopify.com", name.to_ascii_lowercase());
        let client = endpoints(
            OAuthClient::new(client_id),
            &format!("https://{shop}/admin/oauth/authorize"),
            &format!("https://{shop}/admin/oauth/access_token"),
        )?
        .lenient_token_type(true)
        .default_lifetime(OFFLINE_LIFETIME);
        Ok(Self {
            base: Base::new(client, "", AuthMethod::ClientSecretPost),
            shop,
            online: false,
            api_version: DEFAULT_SHOPIFY_API_VERSION.to_owned(),
        })
    }

    /// Ask for an online (per-user, expiring) token instead of an offline one.
    pub fn online(mut self, online: bool) -> Self {
        self.online = online;
        self
    }

    /// The Admin API version [`id_email`](Preset::id_email) asks (`2025-10`).
    pub fn api_version(mut self, version: impl Into<String>) -> Self {
        self.api_version = version.into();
        self
    }

    /// The shop's host, `{shop}.myshopify.com`.
    pub fn shop(&self) -> &str {
        &self.shop
    }
}

#[async_trait]
impl Preset for Shopify {
    fn name(&self) -> &'static str {
        "shopify"
    }

    fn client(&self) -> &OAuthClient {
        &self.base.client
    }

    fn auth_code(&self) -> AuthCode {
        let scopes: Vec<&str> = self
            .base
            .scopes
            .split([' ', ','])
            .filter(|s| !s.is_empty())
            .collect();
        let mut flow = AuthCode::new();
        if !scopes.is_empty() {
            flow = flow.auth_param("scope", scopes.join(","));
        }
        if self.online {
            flow = flow.auth_param("grant_options[]", "per-user");
        }
        flow
    }

    async fn id_email(&self, token: &Token) -> Result<(String, Option<String>)> {
        let url = format!(
            "https://{}/admin/api/{}/shop.json",
            self.shop, self.api_version
        );
        let shop = api_get(
            &self.base.client,
            &url,
            token,
            Credential::Header(TOKEN_HEADER),
        )
        .await?;
        Ok((shop.id(&["shop", "id"])?, shop.text(&["shop", "email"])))
    }

    fn api_origins(&self) -> Vec<String> {
        vec![format!("https://{}", self.shop)]
    }

    #[cfg(feature = "reqwest")]
    fn middleware(&self) -> Result<crate::OAuthMiddleware> {
        Err(bearer_refused())
    }

    #[cfg(feature = "tower")]
    fn layer(&self) -> Result<crate::OAuthLayer> {
        Err(bearer_refused())
    }
}

#[cfg(any(feature = "reqwest", feature = "tower"))]
fn bearer_refused() -> Error {
    Error::config(
        "Shopify's Admin API takes tokens in X-Shopify-Access-Token, not as bearer tokens; \
         use token_source() and set that header",
    )
}
