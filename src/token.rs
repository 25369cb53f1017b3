//! Access tokens, and the tolerant but safe parsing of token endpoint responses
//! (RFC 6749 §5.1 and §5.2; SECURITY.md rules 15–21).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use http::HeaderValue;
use secrecy::SecretString;
use serde_json::{Map, Value};

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::redact::{self, Secrets};
use crate::transport::RawResponse;

/// The token response member of RFC 9396 §7.
const AUTHORIZATION_DETAILS: &str = "authorization_details";

/// The lifetime assumed when the server sends no `expires_in`, unless the client sets another
/// with [`OAuthClientBuilder::default_lifetime`](crate::OAuthClientBuilder::default_lifetime). A
/// token is never taken to be valid forever by accident.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// Lifetimes above this (about ten years) are clamped to it.
pub const MAX_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// An OAuth 2.0 access token with what came with it.
///
/// Cloning is cheap (one reference count), so the fast path of
/// [`TokenSource::token`](crate::TokenSource::token) hands out clones. Secrets never show in
/// `Debug`:
///
/// ```
/// use std::time::Duration;
/// use oauth_layer::{Token, clock::SystemClock};
///
/// let token = Token::builder("s3cr3t-access")
///     .expires_in(Duration::from_secs(60))
///     .refresh_token("s3cr3t-refresh")
///     .build(&SystemClock)?;
/// let shown = format!("{token:?}");
/// assert!(!shown.contains("s3cr3t"));
/// # Ok::<(), oauth_layer::Error>(())
/// ```
#[derive(Clone)]
pub struct Token {
    inner: Arc<TokenInner>,
}

#[derive(Clone)]
struct TokenInner {
    /// Which issuance this is, unique in the process: what [`Token::same_as`] compares, and what
    /// the layer keeps of a sent token instead of a reference to it.
    issue: u64,
    access_token: SecretString,
    header: HeaderValue,
    token_type: String,
    lifetime: Duration,
    lifetime_reported: bool,
    expires_at: Instant,
    expires_at_utc: SystemTime,
    /// When the server asked that the token be renewed (its `refresh_in`, checked), on the
    /// monotonic clock and in UTC.
    renew_at: Option<(Instant, SystemTime)>,
    refresh_token: Option<SecretString>,
    scope: Option<String>,
    id_token: Option<SecretString>,
    issued_token_type: Option<String>,
    extra: Map<String, Value>,
    /// The DPoP key the token is bound to, with the token's `ath`.
    #[cfg(feature = "dpop")]
    dpop: Option<Arc<Binding>>,
    /// The thumbprint of the client certificate the token is bound to (RFC 8705 §3).
    certificate_thumbprint: Option<Box<str>>,
}

/// A DPoP-bound token's key, and the hash of the token that every resource proof carries
/// (computed once per token, not once per request).
#[cfg(feature = "dpop")]
struct Binding {
    key: crate::dpop::DpopKey,
    ath: Box<str>,
}

impl Token {
    /// Starts building a bearer token by hand (for custom flows, stores and tests).
    pub fn builder(access_token: impl Into<String>) -> TokenBuilder {
        TokenBuilder {
            access_token: access_token.into(),
            token_type: "Bearer".into(),
            expires_in: None,
            refresh_in: None,
            default_lifetime: DEFAULT_LIFETIME,
            refresh_token: None,
            scope: None,
            id_token: None,
            issued_token_type: None,
            extra: Map::new(),
            #[cfg(feature = "dpop")]
            dpop: None,
            certificate_thumbprint: None,
        }
    }

    /// The access token itself. Read it with [`ExposeSecret`](crate::ExposeSecret), re-exported
    /// by this crate so that no matching `secrecy` version has to be added by hand:
    ///
    /// ```
    /// use oauth_layer::{ExposeSecret, Token};
    ///
    /// let token = Token::builder("abc").build(&oauth_layer::clock::SystemClock)?;
    /// assert_eq!(token.access_token().expose_secret(), "abc");
    /// # Ok::<(), oauth_layer::Error>(())
    /// ```
    pub fn access_token(&self) -> &SecretString {
        &self.inner.access_token
    }

    /// The `Authorization` header value, marked sensitive so that `Debug` hides it:
    /// `Bearer <token>`, or `DPoP <token>` for a DPoP-bound token (which is never sent as
    /// `Bearer`, and needs a proof with each request: the layer and the middleware add it).
    pub fn header_value(&self) -> &HeaderValue {
        &self.inner.header
    }

    /// The `token_type` as the server sent it: a bearer type, or `DPoP` for a DPoP-bound token.
    pub fn token_type(&self) -> &str {
        &self.inner.token_type
    }

    /// The DPoP key this token is bound to (RFC 9449), if it is: every request that carries it
    /// needs a proof signed with this key.
    #[cfg(feature = "dpop")]
    pub fn dpop_key(&self) -> Option<&crate::dpop::DpopKey> {
        self.inner.dpop.as_deref().map(|b| &b.key)
    }

    /// The key and `ath` of a DPoP-bound token.
    #[cfg(feature = "dpop")]
    pub(crate) fn dpop_binding(&self) -> Option<(&crate::dpop::DpopKey, &str)> {
        self.inner.dpop.as_deref().map(|b| (&b.key, &*b.ath))
    }

    /// The RFC 8705 thumbprint (`x5t#S256`) of the client certificate this token is bound to,
    /// if it is: a token a client got while presenting a certificate (without DPoP). The
    /// layer and the middleware attach it only to requests of a pipeline that declared it
    /// presents that certificate (`client_certificate`), and refuse the request otherwise with
    /// [`Error::CertificateBinding`].
    pub fn certificate_thumbprint(&self) -> Option<&str> {
        self.inner.certificate_thumbprint.as_deref()
    }

    /// Checks that this token may go out on a connection presenting the certificate with the
    /// thumbprint `presented` (`None`: no certificate): a bearer token anywhere, a
    /// certificate-bound one only with its certificate.
    pub(crate) fn check_certificate(&self, presented: Option<&str>) -> Result<()> {
        match self.certificate_thumbprint() {
            Some(bound) if !self.fits_certificate(presented) => Err(Error::CertificateBinding {
                bound_to: bound.to_owned(),
                declared: presented.map(str::to_owned),
            }),
            _ => Ok(()),
        }
    }

    /// [`check_certificate`](Self::check_certificate) without the error, for the per-request
    /// check (a bearer token passes with one comparison).
    #[inline]
    pub(crate) fn fits_certificate(&self, presented: Option<&str>) -> bool {
        match self.inner.certificate_thumbprint.as_deref() {
            Some(bound) => presented == Some(bound),
            None => true,
        }
    }

    /// The lifetime the token was issued with (zero if it arrived expired).
    pub fn lifetime(&self) -> Duration {
        self.inner.lifetime
    }

    /// `false` when the server sent no usable `expires_in` and the default lifetime was assumed.
    pub fn lifetime_was_reported(&self) -> bool {
        self.inner.lifetime_reported
    }

    /// When the token expires, on the monotonic clock of the [`Clock`] it was made with.
    pub fn expires_at(&self) -> Instant {
        self.inner.expires_at
    }

    /// When the token expires, in UTC (for persisting it).
    pub fn expires_at_utc(&self) -> SystemTime {
        self.inner.expires_at_utc
    }

    /// When the server asked that this token be renewed (the `refresh_in` member of the token
    /// response, as Microsoft's identity platform sends it), on the monotonic clock of the
    /// [`Clock`] it was made with. `None` when the response had none or an unusable one: zero,
    /// negative, not a number, or not before the token's expiry. A value under five minutes
    /// (or, for a token shorter than 50 minutes, under a tenth of its lifetime) is raised to
    /// that, so that a server cannot make a client renew over and over.
    ///
    /// A [`TokenSource`](crate::TokenSource) renews the token in the background from this
    /// instant on (never later than its own refresh window); stores persist it with the token.
    ///
    /// ```
    /// use std::time::Duration;
    /// use oauth_layer::{Token, clock::{Clock, ManualClock}};
    ///
    /// let clock = ManualClock::new();
    /// let token = Token::builder("abc")
    ///     .expires_in(Duration::from_secs(3600))
    ///     .refresh_in(Duration::from_secs(1800))
    ///     .build(&clock)?;
    /// assert_eq!(token.renew_at(), Some(clock.now() + Duration::from_secs(1800)));
    /// # Ok::<(), oauth_layer::Error>(())
    /// ```
    pub fn renew_at(&self) -> Option<Instant> {
        self.inner.renew_at.map(|(at, _)| at)
    }

    /// [`renew_at`](Self::renew_at) in UTC (for persisting it).
    pub fn renew_at_utc(&self) -> Option<SystemTime> {
        self.inner.renew_at.map(|(_, at)| at)
    }

    /// `true` when the token has expired at `now` (no skew applied).
    pub fn is_expired_at(&self, now: Instant) -> bool {
        now >= self.inner.expires_at
    }

    /// The refresh token, if the server issued one (or one was kept from before).
    pub fn refresh_token(&self) -> Option<&SecretString> {
        self.inner.refresh_token.as_ref()
    }

    /// The granted scope exactly as the server stated it, or the requested scope when the server
    /// said nothing (RFC 6749 §5.1).
    pub fn scope(&self) -> Option<&str> {
        self.inner.scope.as_deref()
    }

    /// The granted scopes, split on spaces.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope()
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
    }

    /// The OpenID Connect ID token, if one came with the access token.
    pub fn id_token(&self) -> Option<&SecretString> {
        self.inner.id_token.as_ref()
    }

    /// `issued_token_type` (RFC 8693), if sent.
    pub fn issued_token_type(&self) -> Option<&str> {
        self.inner.issued_token_type.as_deref()
    }

    /// Members of the response this crate does not interpret, kept as sent.
    pub fn extra(&self) -> &Map<String, Value> {
        &self.inner.extra
    }

    /// The `authorization_details` the server granted (RFC 9396 §7), each a JSON object with
    /// a `type`, when the response carried them as an array of objects (anything else is
    /// ignored). When a [`TokenSource`](crate::TokenSource) refreshes this token and the
    /// response leaves them out, the new token keeps these; stores persist them with the token.
    ///
    /// ```
    /// use oauth_layer::{Token, clock::SystemClock};
    ///
    /// let token = Token::builder("abc").build(&SystemClock)?;
    /// assert!(token.authorization_details().is_none());
    /// # Ok::<(), oauth_layer::Error>(())
    /// ```
    pub fn authorization_details(&self) -> Option<&[Value]> {
        self.inner
            .extra
            .get(AUTHORIZATION_DETAILS)
            .and_then(Value::as_array)
            .map(Vec::as_slice)
    }

    /// `true` when both are the very same token (the same issuance), not merely equal text.
    pub fn same_as(&self, other: &Token) -> bool {
        self.inner.issue == other.inner.issue
    }

    /// The issuance number [`same_as`](Self::same_as) compares.
    pub(crate) fn issue(&self) -> u64 {
        self.inner.issue
    }

    /// This token carrying `refresh_token` when it has none of its own (RFC 6749 §6: a refresh
    /// response without a new refresh token keeps the old one).
    pub(crate) fn keeping_refresh_token(self, refresh_token: &SecretString) -> Token {
        if self.inner.refresh_token.is_some() {
            return self;
        }
        let mut inner = (*self.inner).clone();
        inner.issue = next_issue();
        inner.refresh_token = Some(refresh_token.clone());
        Token {
            inner: Arc::new(inner),
        }
    }

    /// This token carrying the `authorization_details` of `previous` when its own response
    /// had none: a refresh response may leave out what the grant still covers (RFC 9396 §7).
    pub(crate) fn keeping_authorization_details(self, previous: &Token) -> Token {
        let Some(details) = previous.inner.extra.get(AUTHORIZATION_DETAILS) else {
            return self;
        };
        if self.inner.extra.contains_key(AUTHORIZATION_DETAILS) {
            return self;
        }
        let mut inner = (*self.inner).clone();
        inner.issue = next_issue();
        inner
            .extra
            .insert(AUTHORIZATION_DETAILS.to_owned(), details.clone());
        Token {
            inner: Arc::new(inner),
        }
    }

    /// This token without its refresh token (after the server rejected it).
    pub(crate) fn without_refresh_token(&self) -> Token {
        let mut inner = (*self.inner).clone();
        inner.issue = next_issue();
        inner.refresh_token = None;
        Token {
            inner: Arc::new(inner),
        }
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let extra: Vec<&String> = self.inner.extra.keys().collect();
        let mut d = f.debug_struct("Token");
        d.field("access_token", &"[redacted]")
            .field("token_type", &self.inner.token_type)
            .field("lifetime", &self.inner.lifetime)
            .field("expires_at_utc", &self.inner.expires_at_utc)
            .field(
                "refresh_token",
                &self.inner.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("scope", &self.inner.scope)
            .field(
                "id_token",
                &self.inner.id_token.as_ref().map(|_| "[redacted]"),
            )
            .field("issued_token_type", &self.inner.issued_token_type)
            .field("extra_members", &extra);
        #[cfg(feature = "dpop")]
        if let Some(key) = self.dpop_key() {
            d.field("dpop_key", key);
        }
        if let Some(thumbprint) = self.certificate_thumbprint() {
            d.field("certificate_thumbprint", &thumbprint);
        }
        d.finish()
    }
}

/// Builds a [`Token`] by hand. See [`Token::builder`].
#[derive(Debug)]
#[must_use]
pub struct TokenBuilder {
    access_token: String,
    token_type: String,
    expires_in: Option<Duration>,
    refresh_in: Option<Duration>,
    default_lifetime: Duration,
    refresh_token: Option<SecretString>,
    scope: Option<String>,
    id_token: Option<SecretString>,
    issued_token_type: Option<String>,
    extra: Map<String, Value>,
    #[cfg(feature = "dpop")]
    dpop: Option<crate::dpop::DpopKey>,
    certificate_thumbprint: Option<Box<str>>,
}

impl TokenBuilder {
    /// The lifetime; without it the token gets [`DEFAULT_LIFETIME`].
    pub fn expires_in(mut self, lifetime: Duration) -> Self {
        self.expires_in = Some(lifetime);
        self
    }

    /// When the server asks that the token be renewed, counted from now (a token response's
    /// `refresh_in`); see [`Token::renew_at`] for how it is checked.
    pub fn refresh_in(mut self, refresh_in: Duration) -> Self {
        self.refresh_in = Some(refresh_in);
        self
    }

    /// The refresh token.
    pub fn refresh_token(mut self, refresh_token: impl Into<String>) -> Self {
        self.refresh_token = Some(SecretString::from(refresh_token.into()));
        self
    }

    /// The granted scope (space separated).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The ID token.
    pub fn id_token(mut self, id_token: impl Into<String>) -> Self {
        self.id_token = Some(SecretString::from(id_token.into()));
        self
    }

    /// Keeps `value` among the token's [extra members](Token::extra) under `name` (what a
    /// crate-internal entry, such as a client registration, stores next to a token).
    #[cfg_attr(not(any(feature = "reqwest", feature = "tower")), allow(dead_code))]
    pub(crate) fn extra(mut self, name: impl Into<String>, value: Value) -> Self {
        self.extra.insert(name.into(), value);
        self
    }

    /// Makes it a DPoP-bound token (`token_type` `DPoP`) bound to `key`.
    #[cfg(feature = "dpop")]
    pub fn dpop_key(mut self, key: crate::dpop::DpopKey) -> Self {
        self.token_type = "DPoP".into();
        self.dpop = Some(key);
        self
    }

    /// Binds the token to the client certificate with this RFC 8705 thumbprint
    /// ([`Token::certificate_thumbprint`]).
    pub fn certificate_thumbprint(mut self, thumbprint: impl Into<String>) -> Self {
        self.certificate_thumbprint = Some(thumbprint.into().into_boxed_str());
        self
    }

    /// Checks the token and stamps its expiry with `clock`.
    pub fn build(self, clock: &dyn Clock) -> Result<Token> {
        self.build_at(clock.now(), clock.now_utc())
    }

    fn build_at(self, now: Instant, now_utc: SystemTime) -> Result<Token> {
        #[cfg(feature = "dpop")]
        let dpop = self.dpop.map(|key| {
            Arc::new(Binding {
                ath: crate::dpop::access_token_hash(&self.access_token).into(),
                key,
            })
        });
        #[cfg(feature = "dpop")]
        let scheme = if dpop.is_some() { "DPoP" } else { "Bearer" };
        #[cfg(not(feature = "dpop"))]
        let scheme = "Bearer";
        let header = authorization_header(scheme, &self.access_token).map_err(Error::config)?;
        let lifetime_reported = self.expires_in.is_some();
        let lifetime = self
            .expires_in
            .unwrap_or(self.default_lifetime)
            .min(MAX_LIFETIME);
        let renew_at = checked_refresh_in(self.refresh_in, lifetime).map(|refresh_in| {
            (
                crate::clock::instant_after(now, refresh_in),
                crate::clock::time_after(now_utc, refresh_in),
            )
        });
        Ok(Token {
            inner: Arc::new(TokenInner {
                issue: next_issue(),
                access_token: SecretString::from(self.access_token),
                header,
                token_type: self.token_type,
                lifetime,
                lifetime_reported,
                expires_at: crate::clock::instant_after(now, lifetime),
                expires_at_utc: crate::clock::time_after(now_utc, lifetime),
                renew_at,
                refresh_token: self.refresh_token,
                scope: self.scope,
                id_token: self.id_token,
                issued_token_type: self.issued_token_type,
                extra: self.extra,
                #[cfg(feature = "dpop")]
                dpop,
                certificate_thumbprint: self.certificate_thumbprint,
            }),
        })
    }
}

/// The soonest a server's `refresh_in` can ask for a renewal: five minutes, or a tenth of the
/// lifetime for tokens shorter than 50 minutes.
const REFRESH_IN_FLOOR: Duration = Duration::from_secs(300);

/// A server's `refresh_in` as this crate honours it: ignored when zero or not before the
/// token's expiry (a server cannot delay a renewal past the expiry, nor ask for one "now"), and
/// at least [`REFRESH_IN_FLOOR`] (or a tenth of a shorter token's lifetime), so a hostile or
/// broken server cannot make a client renew over and over.
fn checked_refresh_in(refresh_in: Option<Duration>, lifetime: Duration) -> Option<Duration> {
    refresh_in
        .filter(|r| !r.is_zero() && *r < lifetime)
        .map(|r| r.max((lifetime / 10).min(REFRESH_IN_FLOOR)))
}

/// What a persistent store keeps of a token: every field, with the expiry as absolute UTC time
/// (SECURITY.md rule 27), so it can be restored in another process.
#[cfg(any(
    feature = "file-store",
    feature = "redis-store",
    feature = "keyring-store"
))]
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Persisted {
    pub(crate) access_token: String,
    pub(crate) token_type: String,
    pub(crate) lifetime_secs: u64,
    pub(crate) lifetime_reported: bool,
    pub(crate) expires_at_unix: u64,
    /// When the server asked that the token be renewed ([`Token::renew_at_utc`]); absent in
    /// entries written before it was kept, which read back without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) renew_at_unix: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) id_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) issued_token_type: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub(crate) extra: Map<String, Value>,
    /// The DPoP key a bound token needs (PKCS#8 DER, base64): stored with the token, so the
    /// token and its refresh token work after a restart and in other processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) dpop_key: Option<String>,
    /// The thumbprint of the client certificate a bound token needs (RFC 8705): kept, so the
    /// binding is still checked after a restart and in other processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) certificate_thumbprint: Option<String>,
}

#[cfg(any(
    feature = "file-store",
    feature = "redis-store",
    feature = "keyring-store"
))]
impl Token {
    pub(crate) fn to_persisted(&self) -> Persisted {
        use secrecy::ExposeSecret;
        let t = &*self.inner;
        Persisted {
            access_token: t.access_token.expose_secret().to_owned(),
            token_type: t.token_type.clone(),
            lifetime_secs: t.lifetime.as_secs(),
            lifetime_reported: t.lifetime_reported,
            expires_at_unix: t
                .expires_at_utc
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            renew_at_unix: t.renew_at.map(|(_, at)| {
                at.duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0)
            }),
            refresh_token: t
                .refresh_token
                .as_ref()
                .map(|s| s.expose_secret().to_owned()),
            scope: t.scope.clone(),
            id_token: t.id_token.as_ref().map(|s| s.expose_secret().to_owned()),
            issued_token_type: t.issued_token_type.clone(),
            extra: t.extra.clone(),
            #[cfg(feature = "dpop")]
            dpop_key: self.dpop_key().map(|key| {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.encode(&*key.to_pkcs8_der())
            }),
            #[cfg(not(feature = "dpop"))]
            dpop_key: None,
            certificate_thumbprint: self.certificate_thumbprint().map(str::to_owned),
        }
    }

    /// Restores a persisted token, placing its expiry on `clock`'s monotonic time: a token
    /// whose UTC expiry has passed comes back already expired (never a panic on clock jumps).
    pub(crate) fn from_persisted(p: Persisted, clock: &dyn Clock) -> Result<Token> {
        #[cfg(feature = "dpop")]
        let dpop = match (&p.dpop_key, p.token_type.eq_ignore_ascii_case("dpop")) {
            (Some(der), true) => {
                use base64::Engine;
                let der = zeroize::Zeroizing::new(
                    base64::engine::general_purpose::STANDARD
                        .decode(der)
                        .map_err(|_| Error::Store("the stored DPoP key is not base64".into()))?,
                );
                let key = crate::dpop::DpopKey::from_pkcs8_der(&der)
                    .map_err(|_| Error::Store("the stored DPoP key is unusable".into()))?;
                Some(Arc::new(Binding {
                    ath: crate::dpop::access_token_hash(&p.access_token).into(),
                    key,
                }))
            }
            (None, false) => None,
            _ => return Err(Error::Store("a DPoP token stored without its key".into())),
        };
        #[cfg(feature = "dpop")]
        let scheme = if dpop.is_some() { "DPoP" } else { "Bearer" };
        #[cfg(not(feature = "dpop"))]
        let scheme = "Bearer";
        let header = authorization_header(scheme, &p.access_token).map_err(Error::config)?;
        if scheme == "Bearer" && !p.token_type.eq_ignore_ascii_case("bearer") {
            return Err(Error::UnsupportedTokenType {
                token_type: p.token_type.chars().take(64).collect(),
            });
        }
        let now = clock.now();
        let now_utc = clock.now_utc();
        let expires_at_utc = std::time::UNIX_EPOCH
            .checked_add(Duration::from_secs(p.expires_at_unix))
            .unwrap_or(now_utc);
        let remaining = expires_at_utc
            .duration_since(now_utc)
            .unwrap_or(Duration::ZERO)
            .min(MAX_LIFETIME);
        // A renewal instant already past comes back as "now": renew at the next chance.
        let renew_at = p.renew_at_unix.map(|unix| {
            let at_utc = std::time::UNIX_EPOCH
                .checked_add(Duration::from_secs(unix))
                .unwrap_or(now_utc);
            let ahead = at_utc
                .duration_since(now_utc)
                .unwrap_or(Duration::ZERO)
                .min(remaining);
            (crate::clock::instant_after(now, ahead), at_utc)
        });
        Ok(Token {
            inner: Arc::new(TokenInner {
                issue: next_issue(),
                access_token: SecretString::from(p.access_token),
                header,
                token_type: p.token_type,
                lifetime: Duration::from_secs(p.lifetime_secs).min(MAX_LIFETIME),
                lifetime_reported: p.lifetime_reported,
                expires_at: crate::clock::instant_after(now, remaining),
                expires_at_utc,
                renew_at,
                refresh_token: p.refresh_token.map(SecretString::from),
                scope: p.scope,
                id_token: p.id_token.map(SecretString::from),
                issued_token_type: p.issued_token_type,
                extra: p.extra,
                #[cfg(feature = "dpop")]
                dpop,
                certificate_thumbprint: p.certificate_thumbprint.map(String::into_boxed_str),
            }),
        })
    }
}

/// A new issuance number. A 64-bit counter does not wrap in the life of a process.
fn next_issue() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// `<scheme> <token>` (`Bearer` or `DPoP`), checked and marked sensitive (rule 17). Only
/// visible ASCII is accepted, so no CR, LF, space or control character can reach a header.
fn authorization_header(
    scheme: &str,
    access_token: &str,
) -> std::result::Result<HeaderValue, &'static str> {
    if access_token.is_empty() {
        return Err("access_token is empty");
    }
    if !access_token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("access_token contains characters not allowed in an HTTP header");
    }
    let mut value = HeaderValue::try_from(format!("{scheme} {access_token}"))
        .map_err(|_| "access_token is not a valid header value")?;
    value.set_sensitive(true);
    Ok(value)
}

/// What parsing a token response needs to know besides the response.
pub(crate) struct ParseContext<'a> {
    pub(crate) clock: &'a dyn Clock,
    pub(crate) default_lifetime: Duration,
    pub(crate) requested_scope: Option<&'a str>,
    pub(crate) lenient_token_type: bool,
    pub(crate) secrets: &'a Secrets<'a>,
    /// The DPoP key the request's proof was signed with, and whether an unbound (`Bearer`)
    /// answer is refused.
    #[cfg(feature = "dpop")]
    pub(crate) dpop: Option<(&'a crate::dpop::DpopKey, bool)>,
    /// The thumbprint of the certificate the request's connection presented, when the token is
    /// to be bound to it (RFC 8705 §3; not with DPoP).
    pub(crate) certificate_thumbprint: Option<&'a str>,
}

/// Classifies a token endpoint response (rule 15): a token, an OAuth error, or an unexpected
/// response. Never panics, whatever the body.
pub(crate) fn parse_token_response(resp: &RawResponse, ctx: &ParseContext<'_>) -> Result<Token> {
    let mut map = resp.json_object(ctx.secrets)?;
    resp.check_oauth(&map, ctx.secrets)?;

    let access_token = match map.remove("access_token") {
        Some(Value::String(s)) => s,
        Some(_) => return Err(resp.unexpected("access_token is not a string", ctx.secrets)),
        None => return Err(resp.unexpected("no access_token", ctx.secrets)),
    };
    if let Err(problem) = authorization_header("Bearer", &access_token) {
        return Err(resp.unexpected(problem, ctx.secrets));
    }

    #[cfg(feature = "dpop")]
    let mut bound_to = None;
    let token_type = match map.remove("token_type") {
        Some(Value::String(t)) if t.eq_ignore_ascii_case("bearer") => t,
        // RFC 9449 §5: a token bound to the key of the proof sent; accepted in any case, and
        // only when a proof was sent (an unrequested DPoP token could not be used).
        #[cfg(feature = "dpop")]
        Some(Value::String(t)) if t.eq_ignore_ascii_case("dpop") && ctx.dpop.is_some() => {
            bound_to = ctx.dpop.map(|(key, _)| key.clone());
            "DPoP".to_owned()
        }
        Some(Value::String(t)) => {
            return Err(Error::UnsupportedTokenType {
                token_type: redact::server_text(&t, ctx.secrets)
                    .chars()
                    .take(64)
                    .collect(),
            });
        }
        None | Some(Value::Null) if ctx.lenient_token_type => "Bearer".to_owned(),
        None | Some(Value::Null) => {
            return Err(resp.unexpected(
                "no token_type (enable lenient_token_type for servers that omit it)",
                ctx.secrets,
            ));
        }
        Some(_) => return Err(resp.unexpected("token_type is not a string", ctx.secrets)),
    };

    // A caller that demands bound tokens refuses a bearer one (lenient or stated).
    #[cfg(feature = "dpop")]
    if bound_to.is_none() && matches!(ctx.dpop, Some((_, true))) {
        return Err(Error::UnboundToken);
    }

    let expires_in = parse_expires_in(map.remove("expires_in"));
    // Microsoft's `refresh_in`: only a positive number of seconds counts; a missing, zero,
    // negative or unreadable one leaves the crate's own schedule.
    let refresh_in = match parse_expires_in(map.remove("refresh_in")) {
        ExpiresIn::Seconds(s) if s > 0 => Some(Duration::from_secs(s)),
        _ => None,
    };
    let refresh_token = non_empty_string(map.remove("refresh_token")).map(SecretString::from);
    let id_token = non_empty_string(map.remove("id_token")).map(SecretString::from);
    let issued_token_type = non_empty_string(map.remove("issued_token_type"));
    let scope = match map.remove("scope") {
        Some(Value::String(s)) => Some(s),
        // A few servers send an array; keep it in the standard form.
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => ctx.requested_scope.map(str::to_owned),
    };

    // RFC 9396 §7: an array of objects. Anything else is dropped, so that
    // `authorization_details()` never shows it and a refresh keeps the earlier grant's.
    if map.get(AUTHORIZATION_DETAILS).is_some_and(|d| {
        !d.as_array()
            .is_some_and(|items| items.iter().all(Value::is_object))
    }) {
        tracing::debug!(
            "ignoring authorization_details in the token response: not an array of objects"
        );
        map.remove(AUTHORIZATION_DETAILS);
    }

    let builder = TokenBuilder {
        access_token,
        token_type,
        expires_in: match expires_in {
            ExpiresIn::Seconds(s) => Some(Duration::from_secs(s)),
            ExpiresIn::Missing => None,
        },
        refresh_in,
        default_lifetime: ctx.default_lifetime,
        refresh_token,
        scope,
        id_token,
        issued_token_type,
        extra: map,
        #[cfg(feature = "dpop")]
        certificate_thumbprint: match &bound_to {
            Some(_) => None,
            None => ctx.certificate_thumbprint.map(Box::from),
        },
        #[cfg(not(feature = "dpop"))]
        certificate_thumbprint: ctx.certificate_thumbprint.map(Box::from),
        #[cfg(feature = "dpop")]
        dpop: bound_to,
    };
    builder.build_at(ctx.clock.now(), ctx.clock.now_utc())
}

enum ExpiresIn {
    Seconds(u64),
    Missing,
}

/// `expires_in` as a number or numeric string; fractions floor, negatives mean "already expired",
/// huge values clamp (rule 19). Anything unusable counts as missing, so the default applies.
fn parse_expires_in(value: Option<Value>) -> ExpiresIn {
    let seconds = match value {
        Some(Value::Number(n)) => n.as_f64(),
        // Only digits, sign, point and exponent: Rust's float parser also takes "inf" and
        // "NaN", which would turn a garbage value into a ten-year token.
        Some(Value::String(s)) => Some(s.trim())
            .filter(|s| {
                s.bytes()
                    .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
            })
            .and_then(|s| s.parse::<f64>().ok()),
        _ => None,
    };
    match seconds {
        Some(s) if s.is_nan() => ExpiresIn::Missing,
        Some(s) if s <= 0.0 => ExpiresIn::Seconds(0),
        Some(s) => ExpiresIn::Seconds(s.floor().min(MAX_LIFETIME.as_secs() as f64) as u64),
        None => ExpiresIn::Missing,
    }
}

fn non_empty_string(value: Option<Value>) -> Option<String> {
    match value {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    }
}
