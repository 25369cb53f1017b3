//! Signed authorization responses (JARM: OpenID "JWT Secured Authorization Response Mode for
//! OAuth 2.0"): the server puts `code`, `state`, `iss` (or `error`) in one JWT it signs, sent as
//! the single `response` parameter, and the client verifies it like an ID token before reading
//! anything in it.
//!
//! The callback is checked synchronously by every receiver, so the server's keys are fetched
//! when the authorization request is made (from its metadata's `jwks_uri`) and kept with it. A
//! response signed with a key the server published later (a rotation in the middle of a sign-in)
//! is refused; signing in again fetches the new keys.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};
use secrecy::ExposeSecret;
use serde_json::Value;

use super::callback::Callback;
use crate::client::OAuthClient;
use crate::clock::time_after;
use crate::error::{Error, Result};
use crate::jwks;
use crate::oidc::DEFAULT_LEEWAY;

/// The longest `response` JWT examined (SECURITY.md rule 45), as for ID tokens.
const MAX_RESPONSE_LEN: usize = crate::oidc::MAX_ID_TOKEN_LEN;

/// The parameters of a plain response: with JARM they travel inside the JWT only.
const PLAIN_PARAMS: [&str; 6] = [
    "code",
    "state",
    "iss",
    "error",
    "error_description",
    "error_uri",
];

/// The `response_mode` to ask `client`'s server for: `jwt` (for the code flow, the response JWT
/// in the redirect URI's query), or `query.jwt` for a server that lists only that. Fails with
/// [`Error::Config`] when the server cannot sign responses for this client: no metadata (no
/// issuer or keys to check them with), a `response_modes_supported` without either mode, or no
/// signing algorithm both sides accept.
pub(crate) fn response_mode(client: &OAuthClient, hs256: bool) -> Result<&'static str> {
    let metadata = client.metadata().ok_or_else(|| {
        Error::config(
            "signed authorization responses (JARM) need the server's metadata \
             (discovery::configure): its issuer and jwks_uri check them",
        )
    })?;
    let mode = match &metadata.response_modes_supported {
        None => "jwt",
        Some(modes) if modes.iter().any(|m| m == "jwt") => "jwt",
        Some(modes) if modes.iter().any(|m| m == "query.jwt") => "query.jwt",
        Some(_) => {
            return Err(Error::config(
                "signed authorization responses (JARM) were asked for, but the server's \
                 response_modes_supported names neither jwt nor query.jwt",
            ));
        }
    };
    let algorithms = algorithms(client, hs256)?;
    if algorithms.iter().any(|a| *a != Algorithm::HS256) && metadata.jwks_uri.is_none() {
        return Err(Error::config(
            "signed authorization responses (JARM) need the server's keys, and its metadata \
             has no jwks_uri",
        ));
    }
    Ok(mode)
}

/// The algorithms a response may be signed with: the asymmetric ones (and HS256 with the client
/// secret when allowed, never under a profile), narrowed to the client's profile and to the
/// server's `authorization_signing_alg_values_supported`.
fn algorithms(client: &OAuthClient, hs256: bool) -> Result<Vec<Algorithm>> {
    let mut ours = jwks::ASYMMETRIC_ALGORITHMS.to_vec();
    // A profile narrows the algorithms (FAPI 2.0: PS256, ES256, EdDSA) and shares no secret.
    if let Some(profile) = client.profile() {
        ours.retain(|alg| profile.allows_algorithm(&format!("{alg:?}")));
    }
    if hs256 && client.profile().is_none() {
        if client.secret().is_none() {
            return Err(Error::config(
                "HS256-signed authorization responses are checked with the client secret, and \
                 this client has none",
            ));
        }
        ours.push(Algorithm::HS256);
    }
    let offered = client
        .metadata()
        .and_then(|m| m.authorization_signing_alg_values_supported.as_ref());
    if let Some(offered) = offered {
        ours.retain(|alg| {
            offered
                .iter()
                .any(|o| Algorithm::from_str(o).ok() == Some(*alg))
        });
        if ours.is_empty() {
            return Err(Error::config(
                "the server signs authorization responses (authorization_signing_alg_values_\
                 supported) only with algorithms this client does not accept (none, or a MAC \
                 without jarm_allow_client_secret_hs256)",
            ));
        }
    }
    Ok(ours)
}

/// What a signed response is checked against: the server's keys as they were when the sign-in
/// started, its issuer, this client, and the accepted algorithms.
pub(crate) struct ResponseVerifier {
    client: OAuthClient,
    issuer: String,
    keys: JwkSet,
    algorithms: Vec<Algorithm>,
    leeway: Duration,
}

/// Why a callback could not be opened.
pub(crate) enum Refused {
    /// It carries no `response` at all: an unsigned answer.
    Unsigned,
    /// It is not a valid signed response for this client (never names the JWT or the code).
    Invalid(Error),
}

impl ResponseVerifier {
    /// Fetches the keys of `client`'s server for a sign-in that asked for a signed response
    /// (after [`response_mode`] agreed to it).
    pub(crate) async fn fetch(client: &OAuthClient, hs256: bool) -> Result<Self> {
        let algorithms = algorithms(client, hs256)?;
        let metadata = client.metadata().ok_or_else(|| {
            Error::config("signed authorization responses (JARM) need the server's metadata")
        })?;
        let keys = match &metadata.jwks_uri {
            Some(uri) if algorithms.iter().any(|a| *a != Algorithm::HS256) => {
                jwks::fetch(client, &jwks::checked_uri(uri.as_str())?).await?
            }
            _ => JwkSet { keys: Vec::new() },
        };
        Ok(Self {
            client: client.clone(),
            issuer: metadata.issuer.clone(),
            keys,
            algorithms,
            leeway: DEFAULT_LEEWAY,
        })
    }

    /// The parameters inside `callback`'s signed `response`, once its signature, issuer,
    /// audience and lifetime check out; they then go through the checks of a plain response.
    pub(crate) fn open(&self, callback: &Callback) -> std::result::Result<Callback, Refused> {
        let refused = |why: &str| Refused::Invalid(invalid(why));
        let mut responses = callback.params.iter().filter(|(k, _)| k == "response");
        let jwt = match (responses.next(), responses.next()) {
            (None, _) => return Err(Refused::Unsigned),
            (Some(_), Some(_)) => return Err(refused("the parameter response is repeated")),
            (Some((_, jwt)), None) => jwt.as_str(),
        };
        if let Some(name) = PLAIN_PARAMS
            .iter()
            .find(|name| callback.params.iter().any(|(k, _)| k == *name))
        {
            return Err(refused(&format!(
                "it carries {name} outside the signed response (a mixed response)"
            )));
        }
        self.claims(jwt).map_err(Refused::Invalid)
    }

    fn claims(&self, jwt: &str) -> Result<Callback> {
        let header = jwks::header(jwt, MAX_RESPONSE_LEN, invalid)?;
        let alg = header.alg;
        if !self.algorithms.contains(&alg) {
            return Err(invalid(&format!("the algorithm {alg:?} is not accepted")));
        }
        let key = if alg == Algorithm::HS256 {
            let secret = self
                .client
                .secret()
                .ok_or_else(|| invalid("HS256 needs a client secret"))?;
            DecodingKey::from_secret(secret.expose_secret().as_bytes())
        } else {
            jwks::pick(&self.keys, header.kid.as_deref(), alg, invalid)?.ok_or_else(|| {
                invalid(
                    "it is signed with a key (kid) the server did not publish when the sign-in \
                     started; sign in again to use its current keys",
                )
            })?
        };
        let claims = jwks::verify(jwt, alg, &key, invalid)?;

        match claims.get("iss") {
            Some(Value::String(iss)) if *iss == self.issuer => {}
            Some(_) => return Err(invalid("iss is not the expected issuer (a mix-up attack?)")),
            None => return Err(invalid("no iss")),
        }
        let audience = jwks::audience(&claims).ok_or_else(|| invalid("no aud"))?;
        if !audience.iter().any(|a| a == self.client.client_id()) {
            return Err(invalid("aud does not name this client"));
        }
        let now = self.client.clock().now_utc();
        let expires_at =
            jwks::numeric_date(&claims, "exp", invalid)?.ok_or_else(|| invalid("no exp"))?;
        if time_after(expires_at, self.leeway) <= now {
            return Err(invalid("expired"));
        }
        if jwks::numeric_date(&claims, "nbf", invalid)?
            .is_some_and(|nbf| nbf > time_after(now, self.leeway))
        {
            return Err(invalid("not valid yet (nbf)"));
        }

        let mut params = Vec::new();
        for name in PLAIN_PARAMS {
            match claims.get(name) {
                None | Some(Value::Null) => {}
                Some(Value::String(value)) => params.push((name.to_owned(), value.clone())),
                Some(_) => return Err(invalid(&format!("its {name} is not a string"))),
            }
        }
        Ok(Callback { params })
    }
}

fn invalid(why: &str) -> Error {
    Error::MalformedCallback(format!(
        "the signed authorization response (JARM) is refused: {why}"
    ))
}

impl fmt::Debug for ResponseVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseVerifier")
            .field("issuer", &self.issuer)
            .field("keys", &self.keys.keys.len())
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}
