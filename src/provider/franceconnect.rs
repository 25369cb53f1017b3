//! FranceConnect (version 2 of its API), the French state's sign-in.

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::ExposeSecret;
use serde_json::{Map, Value};

use super::profile::userinfo_url;
use super::{Base, Preset, preset_settings};
use crate::client::{OAuthClient, OAuthClientBuilder};
use crate::error::{Error, Result};
use crate::flow::AuthCode;
use crate::oidc::MAX_ID_TOKEN_LEN;
use crate::redact::Secrets;
use crate::token::Token;
use crate::transport::RawResponse;

/// Which FranceConnect platform to sign in with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Environment {
    /// The integration (test) platform, with test identities:
    /// `https://fcp-low.integ01.dev-franceconnect.fr/api/v2`.
    Integration,
    /// The production platform: `https://oidc.franceconnect.gouv.fr/api/v2`.
    Production,
}

impl Environment {
    /// The issuer of this platform, whose discovery document the preset reads.
    pub fn issuer(self) -> &'static str {
        match self {
            Environment::Integration => "https://fcp-low.integ01.dev-franceconnect.fr/api/v2",
            Environment::Production => "https://oidc.franceconnect.gouv.fr/api/v2",
        }
    }
}

/// FranceConnect, version 2 of its API, configured by discovery (as FranceConnect
/// recommends; the client authentication is the one its document lists).
///
/// Quirks encoded:
/// - the authorization request must carry `acr_values` (`eidas1` by default,
///   [`acr_values`](Self::acr_values) to change it), and `state` and `nonce` (always sent);
/// - ID tokens are signed with ES256 or RS256 and validated against the platform's keys;
/// - the userinfo endpoint answers a **signed JWT** (`application/jwt`), not JSON. The preset
///   verifies it (signature with the platform's keys, ES256 or RS256; `iss` the platform;
///   `aud` this client) and refuses an unsigned or encrypted answer: FranceConnect requires
///   that check;
/// - default scopes `openid given_name family_name email`; no refresh tokens.
///
/// [`id_email`](Preset::id_email) returns `sub` (an id for the person, per service provider)
/// and `email` from the verified userinfo.
#[derive(Debug, Clone)]
pub struct FranceConnect {
    base: Base,
    acr_values: String,
}

preset_settings!(FranceConnect);

impl FranceConnect {
    /// Discovers `environment` and builds `client` from its document; set on `client` first
    /// its secret and its transport.
    pub async fn discover(client: OAuthClientBuilder, environment: Environment) -> Result<Self> {
        Self::discover_issuer(client, environment.issuer()).await
    }

    /// Discovers another FranceConnect platform (FranceConnect+, a new integration host).
    pub async fn discover_issuer(client: OAuthClientBuilder, issuer: &str) -> Result<Self> {
        let base = Base::discover(
            "franceconnect",
            client,
            issuer,
            "openid given_name family_name email",
        )
        .await?;
        Ok(Self {
            base: base.validating(true),
            acr_values: "eidas1".to_owned(),
        })
    }

    /// The `acr_values` of the authorization request (default `eidas1`).
    pub fn acr_values(mut self, acr_values: impl Into<String>) -> Self {
        self.acr_values = acr_values.into();
        self
    }

    /// The userinfo claims, from the signed JWT FranceConnect answers, after checking it.
    pub async fn userinfo(&self, token: &Token) -> Result<Map<String, Value>> {
        let client = &self.base.client;
        let url = userinfo_url(client)?;
        let request = http::Request::get(url.as_str())
            .header(ACCEPT, "application/jwt")
            .header(AUTHORIZATION, token.header_value().clone())
            .body(Bytes::new())
            .map_err(|e| Error::config(format!("cannot build the request: {e}")))?;
        let response = client
            .exchange(crate::error::Endpoint::UserInfo, request)
            .await?;
        let mut secrets = Secrets::default();
        secrets.add(token.access_token().expose_secret());
        if !response.status.is_success() {
            return Err(
                response.unexpected("the userinfo endpoint answered an error status", &secrets)
            );
        }
        let jwt = std::str::from_utf8(&response.body)
            .map(str::trim)
            .map_err(|_| response.unexpected("the userinfo answer is not text", &secrets))?;
        self.verify(&response, jwt, &secrets).await
    }

    async fn verify(
        &self,
        response: &RawResponse,
        jwt: &str,
        secrets: &Secrets<'_>,
    ) -> Result<Map<String, Value>> {
        let refuse =
            |why: &str| response.unexpected(&format!("userinfo JWT refused: {why}"), secrets);
        if jwt.len() > MAX_ID_TOKEN_LEN || jwt.split('.').count() != 3 {
            return Err(refuse("not a signed JWT of a sensible size"));
        }
        let header =
            jsonwebtoken::decode_header(jwt).map_err(|_| refuse("the header cannot be decoded"))?;
        if !matches!(header.alg, Algorithm::ES256 | Algorithm::RS256) {
            return Err(refuse("the algorithm is neither ES256 nor RS256"));
        }
        // RFC 7515 §4.1.11: a critical extension we do not implement means the JWS is refused.
        if header.crit.is_some() {
            return Err(refuse("the header names critical extensions (crit)"));
        }
        let keys = self.keys().await?;
        let jwk = match header.kid.as_deref() {
            Some(kid) => keys.find(kid),
            None if keys.keys.len() == 1 => keys.keys.first(),
            None => None,
        }
        .ok_or_else(|| refuse("no key of the platform matches"))?;
        let key = DecodingKey::from_jwk(jwk).map_err(|_| refuse("the key cannot be used"))?;
        let mut validation = Validation::new(header.alg);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<Map<String, Value>>(jwt, &key, &validation)
            .map_err(|_| refuse("the signature does not verify"))?
            .claims;
        let issuer = self.base.client.issuer().unwrap_or_default();
        if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
            return Err(refuse("iss is not the platform"));
        }
        let client_id = self.base.client.client_id();
        let for_us = match claims.get("aud") {
            Some(Value::String(a)) => a == client_id,
            Some(Value::Array(items)) => items.iter().any(|a| a.as_str() == Some(client_id)),
            _ => false,
        };
        if !for_us {
            return Err(refuse("aud is not this client"));
        }
        Ok(claims)
    }

    async fn keys(&self) -> Result<JwkSet> {
        let client = &self.base.client;
        let jwks = client
            .metadata()
            .and_then(|m| m.jwks_uri.as_ref())
            .ok_or_else(|| Error::config("the platform's metadata names no jwks_uri"))?;
        let request = http::Request::get(jwks.as_str())
            .header(ACCEPT, "application/json")
            .body(Bytes::new())
            .map_err(|e| Error::config(format!("cannot build the JWKS request: {e}")))?;
        let response = client
            .exchange(crate::error::Endpoint::Jwks, request)
            .await?;
        let none = Secrets::default();
        let map = response.json_object(&none)?;
        if !response.status.is_success() {
            return Err(response.unexpected("the JWKS endpoint answered an error status", &none));
        }
        serde_json::from_value(Value::Object(map))
            .map_err(|_| response.unexpected("not a JWK set", &none))
    }
}

#[async_trait]
impl Preset for FranceConnect {
    fn name(&self) -> &'static str {
        "franceconnect"
    }

    fn client(&self) -> &OAuthClient {
        &self.base.client
    }

    fn auth_code(&self) -> AuthCode {
        self.base
            .flow()
            .auth_param("acr_values", self.acr_values.clone())
    }

    async fn id_email(&self, token: &Token) -> Result<(String, Option<String>)> {
        let claims = self.userinfo(token).await?;
        let text = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let sub = text("sub")
            .ok_or_else(|| Error::InvalidIdToken("the userinfo JWT has no sub".into()))?;
        Ok((sub, text("email")))
    }
}
