//! Shopify (the authorization code grant of standalone and API-only apps).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use super::profile::{Credential, Profile};
use super::{Base, Preset, Spec, preset_common};
use crate::client::OAuthClient;
use crate::error::{Error, Result};
use crate::flow::AuthCode;
use crate::flow::auth_code::{Callback, CallbackCheck};
use crate::token::Token;

/// The Admin API version [`id_email`](Preset::id_email) asks unless told otherwise.
pub const DEFAULT_SHOPIFY_API_VERSION: &str = "2025-10";

/// How long an offline token (which comes without `expires_in`) is taken to live: it lasts until
/// the app is uninstalled, which a 401 reveals.
const OFFLINE_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

const SHOPIFY: Spec = Spec {
    name: "shopify",
    authorize: "https://{shop}/admin/oauth/authorize",
    token: "https://{shop}/admin/oauth/access_token",
    lifetime_without_expiry: Some(OFFLINE_LIFETIME),
    lenient_token_type: true,
    api: Some("https://{shop}"),
    profile: Profile {
        // The Admin API takes tokens in this header.
        credential: Credential::Header("x-shopify-access-token"),
        ..Profile::api(
            "https://{shop}/admin/api/{version}/shop.json",
            &["shop", "id"],
            &["shop", "email"],
        )
    },
    ..Spec::OAUTH
};

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
/// Shopify signs its redirect with an `hmac` parameter, and the preset's
/// [`auth_code`](Preset::auth_code) verifies it, as Shopify requires, before the code is
/// accepted and so before any token request: HMAC-SHA256 keyed with the client secret over the
/// callback's other parameters (`name=value`, `%` and `&` escaped in both and `=` in names, as
/// Shopify's libraries do, sorted and joined with `&`), compared in constant time with the
/// hex `hmac`. A callback whose `hmac` is missing, repeated or wrong, or whose `shop` is not
/// this shop, is refused with [`Error::MalformedCallback`] (the loopback receiver ignores it
/// and keeps waiting for the real one). Without a [`secret`](Self::secret) nothing could be
/// verified, so the sign-in fails with [`Error::Config`] before any browser opens.
///
/// [`id_email`](Preset::id_email) returns the id and the contact email of the **shop**
/// (`GET /admin/api/{version}/shop.json`), not of a person: an offline token belongs to the
/// shop.
#[derive(Debug, Clone)]
pub struct Shopify {
    base: Base,
    shop: String,
    online: bool,
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
        let base = SHOPIFY.base(
            client_id,
            &[("shop", &shop), ("version", DEFAULT_SHOPIFY_API_VERSION)],
        )?;
        Ok(Self {
            base,
            shop,
            online: false,
        })
    }

    /// Ask for an online (per-user, expiring) token instead of an offline one.
    pub fn online(mut self, online: bool) -> Self {
        self.online = online;
        self
    }

    /// The Admin API version [`id_email`](Preset::id_email) asks (`2025-10`).
    pub fn api_version(mut self, version: impl Into<String>) -> Self {
        let vars = [("shop", self.shop.as_str()), ("version", &version.into())];
        self.base = self.base.profile(&SHOPIFY.profile, &vars);
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
        self.base.name
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
        match self.base.client.secret() {
            Some(secret) => {
                let secret = secret.clone();
                let shop = self.shop.clone();
                flow.check_callback(CallbackCheck(Arc::new(move |callback| {
                    verify_callback(callback, secret.expose_secret().as_bytes(), &shop)
                })))
            }
            None => flow.refuse(
                "Shopify signs its sign-in callback with the app's client secret, and the \
                 preset verifies that signature: set the secret (Shopify::secret) to sign in",
            ),
        }
    }

    async fn id_email(&self, token: &Token) -> Result<(String, Option<String>)> {
        self.base.id_email(token).await
    }

    fn api_origins(&self) -> Vec<String> {
        self.base.api_origins.clone()
    }

    #[cfg(feature = "reqwest")]
    fn middleware(&self) -> Result<crate::reqwest::OAuthMiddleware> {
        Err(bearer_refused())
    }

    #[cfg(feature = "tower")]
    fn layer(&self) -> Result<crate::tower::OAuthLayer> {
        Err(bearer_refused())
    }
}

/// Checks Shopify's `hmac` on a callback (and that it names `shop`, when it names one).
fn verify_callback(callback: &Callback, secret: &[u8], shop: &str) -> Result<()> {
    let refused = |why: &str| {
        Error::MalformedCallback(format!(
            "the callback's Shopify signature (hmac) {why}; it was not sent by Shopify for this \
             app, or was altered"
        ))
    };
    let params = &callback.params;
    let mut hmacs = params.iter().filter(|(k, _)| k == "hmac").map(|(_, v)| v);
    let given = match (hmacs.next(), hmacs.next()) {
        (Some(given), None) => given,
        (None, _) => return Err(refused("is missing")),
        (Some(_), Some(_)) => return Err(refused("is repeated")),
    };
    let given = decode_hex(given).ok_or_else(|| refused("is not a hex SHA-256 signature"))?;
    let mut signed: Vec<String> = params
        .iter()
        .filter(|(k, _)| k != "hmac")
        .map(|(k, v)| {
            let k = k.replace('%', "%25").replace('=', "%3D");
            let v = v.replace('%', "%25");
            format!("{k}={v}").replace('&', "%26")
        })
        .collect();
    signed.sort();
    let expected = hmac_sha256(secret, signed.join("&").as_bytes());
    let same = given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0;
    if !same {
        return Err(refused("does not match"));
    }
    let mut shops = params.iter().filter(|(k, _)| k == "shop").map(|(_, v)| v);
    match (shops.next(), shops.next()) {
        (None, _) => Ok(()),
        (Some(named), None) if named.eq_ignore_ascii_case(shop) => Ok(()),
        _ => Err(Error::MalformedCallback(
            "the callback names another shop than the one signing in".into(),
        )),
    }
}

/// HMAC-SHA256 (RFC 2104).
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut pad = block.map(|b| b ^ 0x36);
    let inner = Sha256::new()
        .chain_update(pad)
        .chain_update(message)
        .finalize();
    pad = block.map(|b| b ^ 0x5c);
    let outer = Sha256::new()
        .chain_update(pad)
        .chain_update(inner)
        .finalize();
    block.zeroize();
    pad.zeroize();
    outer.into()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let digit = |b: u8| {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let bytes = text.as_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(any(feature = "reqwest", feature = "tower"))]
fn bearer_refused() -> Error {
    Error::config(
        "Shopify's Admin API takes tokens in X-Shopify-Access-Token, not as bearer tokens; \
         use token_source() and set that header",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    /// The example Shopify documents (secret `hush`), signature and all.
    #[test]
    fn shopify_s_documented_example_verifies() {
        let query = "code=0907a61c0c8d55e99db179b68161bc00\
                     &hmac=700e2dadb827fcc8609e9d5ce208b2e9cdaab9df07390d2cbca10d7c328fc4bf\
                     &shop=some-shop.myshopify.com&state=0.6784241404160823&timestamp=1337178173";
        let shop = "some-shop.myshopify.com";
        assert!(verify_callback(&Callback::from_query(query), b"hush", shop).is_ok());
        assert!(verify_callback(&Callback::from_query(query), b"hush!", shop).is_err());
        let tampered = query.replace("timestamp=1337178173", "timestamp=1337178174");
        assert!(verify_callback(&Callback::from_query(&tampered), b"hush", shop).is_err());
        let upper = query.replace("700e2dadb827", "700E2DADB827");
        assert!(verify_callback(&Callback::from_query(&upper), b"hush", shop).is_ok());
        assert!(
            verify_callback(&Callback::from_query(query), b"hush", "other.myshopify.com").is_err()
        );
    }

    #[test]
    fn hex_decoding_refuses_odd_and_foreign_text() {
        assert_eq!(decode_hex("0aFf"), Some(vec![0x0a, 0xff]));
        for bad in ["", "0", "zz", "+1", "0a "] {
            assert_eq!(decode_hex(bad), None, "{bad:?}");
        }
    }
}
