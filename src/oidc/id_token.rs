//! ID token validation against the issuer's keys (SECURITY.md rules 44 and 45).
//!
//! An ID token is accepted only when all of these hold: the input is a bounded, three-part
//! compact JWS; its `alg` is on the allowlist (never `none`, never a MAC unless you turn that
//! on); the signature verifies with a key from the issuer's JWKS (matched by `kid`); `iss` is the
//! issuer byte for byte (or, for Microsoft's multi-tenant template, the issuer of the tenant the
//! token's `tid` names); `aud` contains the client id; `azp`, when present (and it must be with
//! several audiences), names the client (OIDC Core §3.1.3.7); the header names no critical
//! extension (`crit`, RFC 7515 §4.1.11); `exp` and `iat` are present, `exp` has not passed and
//! `iat` and any `nbf` are not in the future (on the client's clock, with a small leeway; times
//! too large to represent saturate); and `nonce` equals the one the sign-in sent.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::ACCEPT;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::ExposeSecret;
use serde_json::{Map, Value};
use url::Url;

use super::{TENANT_PLACEHOLDER, is_guid};
use crate::client::OAuthClient;
use crate::clock::time_after;
use crate::error::{Error, Result};
use crate::redact::Secrets;

/// The longest ID token examined (rule 45): anything longer is refused before decoding.
pub const MAX_ID_TOKEN_LEN: usize = 16 * 1024;

/// How far `exp` and `iat` may be off, for clock differences.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// The asymmetric algorithms accepted by default.
const DEFAULT_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The least time between two JWKS fetches caused by an unknown `kid` (key rotation).
const JWKS_REFETCH_GAP: Duration = Duration::from_secs(60);

/// The claims of a validated ID token.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IdTokenClaims {
    /// `iss`
    pub issuer: String,
    /// `sub`: the person's stable identifier at the issuer.
    pub subject: String,
    /// `aud`
    pub audience: Vec<String>,
    /// `exp`
    pub expires_at: SystemTime,
    /// `iat`
    pub issued_at: SystemTime,
    /// `email`, if present.
    pub email: Option<String>,
    /// `email_verified`, if present.
    pub email_verified: Option<bool>,
    /// `name`, if present.
    pub name: Option<String>,
    /// Every claim, as sent.
    pub claims: Map<String, Value>,
}

/// Validates ID tokens for one client and issuer, with the issuer's keys fetched from its JWKS
/// URI and cached (fetched again, at most once a minute, when a token names an unknown key).
///
/// ```no_run
/// use oauth_layer::{OAuthClient, oidc::IdTokenValidator};
///
/// # async fn run(client: OAuthClient, id_token: &str) -> oauth_layer::Result<()> {
/// let validator = IdTokenValidator::new(
///     &client,
///     "https://idp.example",
///     "https://idp.example/.well-known/jwks.json",
/// )?;
/// let claims = validator.validate(id_token, Some("the-nonce-the-sign-in-sent")).await?;
/// println!("signed in as {}", claims.subject);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct IdTokenValidator {
    inner: Arc<ValidatorInner>,
}

struct ValidatorInner {
    client: OAuthClient,
    issuer: String,
    /// Other spellings of the same issuer that it documents (Google's `accounts.google.com`).
    issuer_aliases: Vec<String>,
    jwks_uri: Url,
    algorithms: Vec<Algorithm>,
    hmac_secret: bool,
    leeway: Duration,
    keys: Mutex<Option<(Instant, Arc<JwkSet>)>>,
}

impl IdTokenValidator {
    /// A validator for tokens that `issuer` issues to `client`, signed with keys from
    /// `jwks_uri` (https, or http on loopback).
    ///
    /// An issuer containing [`TENANT_PLACEHOLDER`](super::TENANT_PLACEHOLDER) (`{tenantid}`) is a template, as Microsoft's
    /// multi-tenant discovery documents publish it
    /// (`https://login.microsoftonline.com/{tenantid}/v2.0`): a token is accepted only if its
    /// `tid` claim is a tenant id (a GUID) and its `iss` is the template with that tenant id in
    /// place. Which tenants an app admits is then the app's decision: read
    /// `tid` from [`IdTokenClaims::claims`].
    pub fn new(client: &OAuthClient, issuer: impl Into<String>, jwks_uri: &str) -> Result<Self> {
        let jwks_uri = Url::parse(jwks_uri)
            .map_err(|e| Error::config(format!("jwks_uri is not a URL: {e}")))?;
        let uri: http::Uri = jwks_uri
            .as_str()
            .parse()
            .map_err(|_| Error::config("jwks_uri is not a valid HTTP URI"))?;
        if !crate::transport::is_secure_or_loopback(&uri) {
            return Err(Error::config(
                "jwks_uri must be https (plain http only to loopback addresses)",
            ));
        }
        Ok(Self {
            inner: Arc::new(ValidatorInner {
                client: client.clone(),
                issuer: issuer.into(),
                issuer_aliases: Vec::new(),
                jwks_uri,
                // A profile narrows the algorithms (FAPI 2.0: no RS256).
                algorithms: DEFAULT_ALGORITHMS
                    .into_iter()
                    .filter(|alg| {
                        client
                            .profile()
                            .is_none_or(|p| p.allows_algorithm(&format!("{alg:?}")))
                    })
                    .collect(),
                hmac_secret: false,
                leeway: DEFAULT_LEEWAY,
                keys: Mutex::new(None),
            }),
        })
    }

    fn with(mut self, change: impl FnOnce(&mut ValidatorInner)) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            change(inner);
        }
        self
    }

    /// Also accept HS256 tokens signed with the client secret (OIDC Core §10.1). Off by default.
    #[must_use]
    pub fn allow_client_secret_hs256(self, allowed: bool) -> Self {
        // A profile permits no shared-secret signatures.
        self.with(|i| i.hmac_secret = allowed && i.client.profile().is_none())
    }

    /// Also accept `iss` spelled `alias`, byte for byte: for an issuer that documents a second
    /// spelling of itself (Google: `accounts.google.com` besides `https://accounts.google.com`).
    /// Never a different issuer: its tokens would be accepted as this one's.
    #[must_use]
    pub fn also_accept_issuer(self, alias: impl Into<String>) -> Self {
        let alias = alias.into();
        self.with(|i| i.issuer_aliases.push(alias))
    }

    /// How far `exp` and `iat` may be off (default one minute).
    #[must_use]
    pub fn leeway(self, leeway: Duration) -> Self {
        self.with(|i| i.leeway = leeway)
    }

    /// Validates `id_token`; `nonce` is the value the sign-in sent (required to match when
    /// given, and then the token must carry it).
    pub async fn validate(&self, id_token: &str, nonce: Option<&str>) -> Result<IdTokenClaims> {
        let inner = &*self.inner;
        // Rule 45: bound the input before any decoding.
        if id_token.len() > MAX_ID_TOKEN_LEN {
            return Err(invalid("longer than the crate accepts"));
        }
        match id_token.split('.').count() {
            3 => {}
            5 => return Err(invalid("encrypted ID tokens (JWE) are not supported")),
            _ => return Err(invalid("not a compact JWS")),
        }
        let header = jsonwebtoken::decode_header(id_token)
            .map_err(|_| invalid("the header cannot be decoded"))?;
        // RFC 7515 §4.1.11: a recipient must refuse a JWS naming a critical extension it does not
        // understand, and this validator understands none.
        if header.crit.is_some() {
            return Err(invalid(
                "the header names critical extensions (crit) this validator does not implement",
            ));
        }
        let alg = header.alg;
        let key = if alg == Algorithm::HS256 && inner.hmac_secret {
            let secret = inner
                .client
                .secret()
                .ok_or_else(|| invalid("HS256 needs a client secret"))?;
            DecodingKey::from_secret(secret.expose_secret().as_bytes())
        } else if inner.algorithms.contains(&alg) {
            self.key_for(header.kid.as_deref(), alg).await?
        } else {
            return Err(invalid(&format!("the algorithm {alg:?} is not accepted")));
        };

        let mut validation = Validation::new(alg);
        // Time, audience and issuer are checked below, on the client's clock and with precise
        // errors; the library checks the signature.
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_aud = false;
        let data = jsonwebtoken::decode::<Map<String, Value>>(id_token, &key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    invalid("the signature does not verify")
                }
                _ => invalid("the token cannot be verified"),
            })?;
        self.check_claims(data.claims, nonce)
    }

    fn check_claims(
        &self,
        claims: Map<String, Value>,
        nonce: Option<&str>,
    ) -> Result<IdTokenClaims> {
        let inner = &*self.inner;
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        // A NumericDate: seconds since 1970, not before it. A value too far ahead to represent
        // (1e300, 2^64) saturates rather than panicking (SECURITY.md rule 46); for `exp` it is
        // then simply far away, for `iat` and `nbf` it is in the future and refused.
        let time = |name: &str| -> Result<Option<SystemTime>> {
            match claims.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(value) => value
                    .as_f64()
                    .filter(|t| t.is_finite() && *t >= 0.0)
                    // `as` saturates: 1e300 becomes u64::MAX.
                    .map(|t| Some(time_after(UNIX_EPOCH, Duration::from_secs(t as u64))))
                    .ok_or_else(|| invalid(&format!("{name} is not a time after 1970"))),
            }
        };

        let issuer = text("iss").ok_or_else(|| invalid("no iss"))?;
        let expected = match inner.issuer.split_once(TENANT_PLACEHOLDER) {
            None => issuer == inner.issuer,
            Some((before, after)) => {
                let tenant = text("tid")
                    .filter(|t| is_guid(t))
                    .ok_or_else(|| invalid("no tid naming a tenant for the issuer template"))?;
                issuer.len() == before.len() + tenant.len() + after.len()
                    && issuer.starts_with(before)
                    && issuer.ends_with(after)
                    && issuer.get(before.len()..issuer.len() - after.len()) == Some(&*tenant)
            }
        };
        if !expected && !inner.issuer_aliases.contains(&issuer) {
            return Err(invalid("iss is not the expected issuer"));
        }
        let audience: Vec<String> = match claims.get("aud") {
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => return Err(invalid("no aud")),
        };
        let client_id = inner.client.client_id();
        if !audience.iter().any(|a| a == client_id) {
            return Err(invalid("aud does not contain this client"));
        }
        // OIDC Core §3.1.3.7 steps 4 and 5: with several audiences `azp` must name this client,
        // and whenever it is present it must, whatever the audience: a token authorized for
        // another party is not this client's, even if it lists it.
        match claims.get("azp") {
            None | Some(Value::Null) if audience.len() > 1 => {
                return Err(invalid(
                    "several audiences and azp does not name this client",
                ));
            }
            None | Some(Value::Null) => {}
            Some(Value::String(azp)) if azp == client_id => {}
            Some(_) => return Err(invalid("azp names another client")),
        }
        let expires_at = time("exp")?.ok_or_else(|| invalid("no exp"))?;
        let issued_at = time("iat")?.ok_or_else(|| invalid("no iat"))?;
        let not_before = time("nbf")?;
        let now = inner.client.clock().now_utc();
        let now_ahead = time_after(now, inner.leeway);
        if time_after(expires_at, inner.leeway) <= now {
            return Err(invalid("expired"));
        }
        if issued_at > now_ahead {
            return Err(invalid("issued in the future"));
        }
        if not_before.is_some_and(|nbf| nbf > now_ahead) {
            return Err(invalid("not valid yet (nbf)"));
        }
        if let Some(expected) = nonce {
            match text("nonce") {
                Some(n) if n == expected => {}
                Some(_) => return Err(invalid("nonce does not match this sign-in")),
                None => return Err(invalid("no nonce")),
            }
        }
        let subject = text("sub").ok_or_else(|| invalid("no sub"))?;
        Ok(IdTokenClaims {
            issuer,
            subject,
            audience,
            expires_at,
            issued_at,
            email: text("email"),
            email_verified: claims.get("email_verified").and_then(Value::as_bool),
            name: text("name"),
            claims,
        })
    }

    /// The key for `kid` (or the only suitable key when there is no `kid`), fetching the JWKS
    /// when nothing is cached, or again when the key is unknown and the last fetch is old enough.
    async fn key_for(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey> {
        let cached = self.cached_keys();
        if let Some((_, keys)) = &cached
            && let Some(key) = pick(keys, kid, alg)?
        {
            return Ok(key);
        }
        let fresh_enough = cached
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < JWKS_REFETCH_GAP);
        if fresh_enough {
            return Err(invalid("no key of the issuer matches the token's kid"));
        }
        let keys = Arc::new(self.fetch_keys().await?);
        *self
            .inner
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), keys.clone()));
        pick(&keys, kid, alg)?
            .ok_or_else(|| invalid("no key of the issuer matches the token's kid"))
    }

    fn cached_keys(&self) -> Option<(Instant, Arc<JwkSet>)> {
        self.inner
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    async fn fetch_keys(&self) -> Result<JwkSet> {
        let inner = &*self.inner;
        let request = http::Request::get(inner.jwks_uri.as_str())
            .header(ACCEPT, "application/json")
            .body(Bytes::new())
            .map_err(|e| Error::config(format!("cannot build the JWKS request: {e}")))?;
        let response = inner
            .client
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

/// Finds the key for `kid` in `keys`; `None` when there is none.
fn pick(keys: &JwkSet, kid: Option<&str>, alg: Algorithm) -> Result<Option<DecodingKey>> {
    let jwk = match kid {
        Some(kid) => keys.find(kid),
        // Without a kid, only an unambiguous key set will do.
        None if keys.keys.len() == 1 => keys.keys.first(),
        None => {
            return Err(invalid(
                "the token names no kid and the issuer has several keys",
            ));
        }
    };
    let Some(jwk) = jwk else {
        return Ok(None);
    };
    if let Some(key_alg) = jwk.common.key_algorithm
        && Algorithm::try_from(key_alg).ok() != Some(alg)
    {
        return Err(invalid("the token's alg is not its key's algorithm"));
    }
    DecodingKey::from_jwk(jwk)
        .map(Some)
        .map_err(|_| invalid("the issuer's key cannot be used"))
}

fn invalid(why: &str) -> Error {
    Error::InvalidIdToken(why.to_owned())
}

impl fmt::Debug for IdTokenValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdTokenValidator")
            .field("issuer", &self.inner.issuer)
            .field("jwks_uri", &self.inner.jwks_uri.as_str())
            .field("algorithms", &self.inner.algorithms)
            .finish_non_exhaustive()
    }
}
