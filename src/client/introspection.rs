//! Token introspection (RFC 7662): asking the server whether a token is active, and what it is
//! for.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use super::{OAuthClient, TokenTypeHint};
use crate::error::{Error, Result};
use crate::redact::Secrets;

/// What the introspection endpoint said about a token (RFC 7662 §2.2).
///
/// An inactive token (expired, revoked, unknown, or not for this client) is `active: false`,
/// usually with nothing else. Members this crate does not interpret are kept in `extra`, and so
/// are standard members of an unexpected type (an `exp` that is not a number).
#[derive(Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Introspection {
    /// Whether the token is currently active. The only member a server must send.
    pub active: bool,
    /// `scope`: the token's scopes, space separated.
    pub scope: Option<String>,
    /// `client_id`: the client the token was issued to.
    pub client_id: Option<String>,
    /// `username`: a human-readable identifier of the resource owner.
    pub username: Option<String>,
    /// `token_type`: the type of the token (`Bearer`...).
    pub token_type: Option<String>,
    /// `exp`: when the token expires.
    pub exp: Option<SystemTime>,
    /// `iat`: when the token was issued.
    pub iat: Option<SystemTime>,
    /// `nbf`: the token is not to be used before this.
    pub nbf: Option<SystemTime>,
    /// `sub`: the subject of the token, usually a machine-readable user id.
    pub sub: Option<String>,
    /// `aud`: the audiences, whether the server sent one string or an array.
    pub aud: Vec<String>,
    /// `iss`: the issuer of the token.
    pub iss: Option<String>,
    /// `jti`: the token's identifier.
    pub jti: Option<String>,
    /// Every other member, as sent.
    pub extra: Map<String, Value>,
}

impl Introspection {
    /// The scopes, split on spaces.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
    }

    fn from_object(mut map: Map<String, Value>) -> Option<Self> {
        let active = match map.remove("active") {
            Some(Value::Bool(active)) => active,
            _ => return None,
        };
        let m = &mut map;
        Some(Self {
            active,
            scope: take(m, "scope", string),
            client_id: take(m, "client_id", string),
            username: take(m, "username", string),
            token_type: take(m, "token_type", string),
            exp: take(m, "exp", numeric_date),
            iat: take(m, "iat", numeric_date),
            nbf: take(m, "nbf", numeric_date),
            sub: take(m, "sub", string),
            aud: take(m, "aud", audiences).unwrap_or_default(),
            iss: take(m, "iss", string),
            jti: take(m, "jti", string),
            extra: map,
        })
    }
}

/// Removes member `name` from `map` and parses it; a value that does not parse stays in `map`,
/// where the caller can still see it.
fn take<T>(
    map: &mut Map<String, Value>,
    name: &str,
    parse: impl Fn(&Value) -> Option<T>,
) -> Option<T> {
    let value = map.remove(name)?;
    let parsed = parse(&value);
    if parsed.is_none() {
        map.insert(name.to_owned(), value);
    }
    parsed
}

fn string(value: &Value) -> Option<String> {
    value.as_str().map(str::to_owned)
}

/// A NumericDate: seconds since the epoch, fractions floored. Negative, huge or non-numeric
/// values do not parse.
fn numeric_date(value: &Value) -> Option<SystemTime> {
    let seconds = value.as_f64().filter(|s| s.is_finite() && *s >= 0.0)?;
    let since_epoch = Duration::try_from_secs_f64(seconds.floor()).ok()?;
    UNIX_EPOCH.checked_add(since_epoch)
}

/// `aud` as one string or an array of strings.
fn audiences(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) => items.iter().map(string).collect(),
        _ => None,
    }
}

impl fmt::Debug for Introspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Extra members could hold anything; only their names are shown.
        let extra: Vec<&String> = self.extra.keys().collect();
        f.debug_struct("Introspection")
            .field("active", &self.active)
            .field("scope", &self.scope)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("token_type", &self.token_type)
            .field("exp", &self.exp)
            .field("iat", &self.iat)
            .field("nbf", &self.nbf)
            .field("sub", &self.sub)
            .field("aud", &self.aud)
            .field("iss", &self.iss)
            .field("jti", &self.jti)
            .field("extra_members", &extra)
            .finish()
    }
}

impl OAuthClient {
    /// Asks the introspection endpoint (RFC 7662) about `token`, with the client's
    /// authentication and, if given, a `token_type_hint`.
    ///
    /// An inactive token is `Ok` with [`active`](Introspection::active) `false`. An OAuth error
    /// is [`Error::Server`]; an answer without a boolean `active`, or that is not a JSON object,
    /// is [`Error::UnexpectedResponse`]; without an introspection endpoint, [`Error::Config`].
    /// Nothing is retried: the error's [`retry_after`](Error::retry_after) says when to try
    /// again. The token never appears in errors or logs, even if the server echoes it.
    ///
    /// ```no_run
    /// use oauth_layer::OAuthClient;
    /// use oauth_layer::client::TokenTypeHint;
    /// use secrecy::SecretString;
    ///
    /// # async fn run(token: SecretString) -> oauth_layer::Result<()> {
    /// let client = OAuthClient::builder("resource-server")
    ///     .secret("s3cret")
    ///     .introspection_url("https://idp.example/oauth/introspect")
    ///     .build()?;
    /// let info = client.introspect(&token, Some(TokenTypeHint::AccessToken)).await?;
    /// if info.active {
    ///     println!("token for {:?}, scopes {:?}", info.sub, info.scope);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn introspect(
        &self,
        token: &SecretString,
        hint: Option<TokenTypeHint>,
    ) -> Result<Introspection> {
        let url = self
            .introspection_url()
            .ok_or_else(|| Error::config("no introspection URL configured"))?;
        let mut secrets = Secrets::default();
        secrets.add(token.expose_secret());
        let request = self
            .authenticated_form(
                url,
                |form| {
                    form.append_pair("token", token.expose_secret());
                    if let Some(hint) = hint {
                        form.append_pair("token_type_hint", hint.as_str());
                    }
                },
                &mut secrets,
            )
            .await?;
        tracing::debug!(
            endpoint = %url.origin().ascii_serialization(),
            "introspection request"
        );
        let response = self
            .exchange(crate::error::Endpoint::Introspection, request)
            .await?;
        tracing::debug!(status = response.status.as_u16(), "introspection response");
        let map = response.json_object(&secrets)?;
        response.check_oauth(&map, &secrets)?;
        Introspection::from_object(map).ok_or_else(|| {
            response.unexpected(
                "the introspection response has no boolean `active`",
                &secrets,
            )
        })
    }
}
