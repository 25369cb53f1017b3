//! Attaching tokens to requests: which requests get one, how, and which answers call for a
//! renewal. Shared by the tower layer and the reqwest middleware so both behave the same
//! (SECURITY.md §D and §E).

use std::sync::Arc;

use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, StatusCode, Uri};

use secrecy::{ExposeSecret, SecretString};

use crate::client::OAuthClient;
use crate::error::{Error, Result};
use crate::flow::{ClientCredentials, Password, RefreshToken};
use crate::source::TokenSource;
use crate::token::Token;
use crate::transport::is_loopback_host;

/// A per-request choice, put in the request's extensions, that overrides the layer's or
/// middleware's own source: use another identity for this one request, or send it without a
/// token. Like httr2's per-request `req_oauth_*()`.
///
/// ```
/// use oauth_layer::RequestAuth;
///
/// let mut request = http::Request::new(());
/// request.extensions_mut().insert(RequestAuth::Skip);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum RequestAuth {
    /// Use this source's token for this request.
    Source(TokenSource),
    /// Send this request without a token.
    Skip,
}

/// An origin a token may be sent to: scheme, host and port, borrowed from a request's URL.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OriginRef<'a> {
    scheme: &'a str,
    host: &'a str,
    port: u16,
    /// Whether the host is a loopback address, when the URL type has already parsed it.
    loopback: Option<bool>,
}

impl<'a> OriginRef<'a> {
    pub(crate) fn of_uri(uri: &'a Uri) -> Option<Self> {
        Self::new(uri.scheme_str()?, uri.host()?, uri.port_u16(), None)
    }

    #[cfg(feature = "reqwest")]
    pub(crate) fn of_url(url: &'a url::Url) -> Option<Self> {
        let loopback = match url.host()? {
            url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
            url::Host::Ipv4(ip) => ip.is_loopback(),
            url::Host::Ipv6(ip) => ip.is_loopback(),
        };
        Self::new(url.scheme(), url.host_str()?, url.port(), Some(loopback))
    }

    fn new(
        scheme: &'a str,
        host: &'a str,
        port: Option<u16>,
        loopback: Option<bool>,
    ) -> Option<Self> {
        let port = port.or(if scheme.eq_ignore_ascii_case("https") {
            Some(443)
        } else if scheme.eq_ignore_ascii_case("http") {
            Some(80)
        } else {
            None
        })?;
        Some(Self {
            scheme,
            host,
            port,
            loopback,
        })
    }

    fn is_loopback(&self) -> bool {
        self.loopback.unwrap_or_else(|| is_loopback_host(self.host))
    }

    /// Scheme, host and port equal, ASCII case-insensitively.
    #[cfg(feature = "tower")]
    pub(crate) fn same_as(&self, other: OriginRef<'_>) -> bool {
        self.port == other.port
            && self.scheme.eq_ignore_ascii_case(other.scheme)
            && self.host.eq_ignore_ascii_case(other.host)
    }

    #[inline]
    fn matches(&self, allowed: &Origin) -> bool {
        self.port == allowed.port
            && self.scheme.eq_ignore_ascii_case(&allowed.scheme)
            && self.host.eq_ignore_ascii_case(&allowed.host)
    }
}

/// Where a request goes, as the layer and the middleware see it.
pub(crate) trait Target {
    /// Scheme, host and port.
    fn origin(&self) -> Option<OriginRef<'_>>;
    /// The scheme and the authority as written, without parsing: the per-request check compares
    /// these first and parses only when they differ from an allowed origin's.
    fn scheme_and_authority(&self) -> Option<(&str, &str)>;
}

impl Target for Uri {
    fn origin(&self) -> Option<OriginRef<'_>> {
        OriginRef::of_uri(self)
    }

    #[inline]
    fn scheme_and_authority(&self) -> Option<(&str, &str)> {
        Some((self.scheme_str()?, self.authority()?.as_str()))
    }
}

#[cfg(feature = "reqwest")]
impl Target for url::Url {
    fn origin(&self) -> Option<OriginRef<'_>> {
        OriginRef::of_url(self)
    }

    #[inline]
    fn scheme_and_authority(&self) -> Option<(&str, &str)> {
        Some((self.scheme(), self.authority()))
    }
}

/// An origin tokens may go to, lowercased.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
    /// `host[:port]` as a request wrote it (ASCII case aside), for the comparison without
    /// parsing; a request that writes the same origin another way is compared parsed.
    authority: String,
}

impl Origin {
    fn of(origin: OriginRef<'_>, authority: &str) -> Self {
        Self {
            scheme: origin.scheme.to_ascii_lowercase(),
            host: origin.host.to_ascii_lowercase(),
            port: origin.port,
            authority: authority.to_ascii_lowercase(),
        }
    }

    /// Whether `scheme` and `authority`, exactly as written, name this origin.
    #[inline]
    fn written_as(&self, scheme: &str, authority: &str) -> bool {
        scheme.eq_ignore_ascii_case(&self.scheme) && authority.eq_ignore_ascii_case(&self.authority)
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// Which origins get tokens (SECURITY.md rules 24 and 25).
#[derive(Debug, Clone)]
enum Origins {
    /// No list was given: the origin of the first request a token is attached to, and no other.
    /// A redirect-following layer outside ours, or a second API, can then never make us attach a
    /// token for another host, whatever the redirect policy.
    FirstUse(Arc<std::sync::OnceLock<Origin>>),
    /// Exactly these (`allow_origins`).
    List(Arc<[Origin]>),
}

/// Everything the layer and the middleware share: the source, the origin rules and whether an
/// interactive flow may run in the middle of a request.
#[derive(Debug, Clone)]
pub(crate) struct Attach {
    pub(crate) source: TokenSource,
    origins: Origins,
    interactive: bool,
    pub(crate) retry_after_401: bool,
    /// Origins a token was withheld from and that were already warned about.
    warned: Arc<std::sync::Mutex<Vec<String>>>,
}

/// What to do with one outgoing request.
pub(crate) enum Plan {
    /// Send it as it is (no token: the caller set its own `Authorization`, or the request asked
    /// to skip).
    AsIs,
    /// Send it without a token because its origin may not have one; a 401 in answer is marked
    /// with this [`TokenWithheld`].
    Withheld(Box<TokenWithheld>),
    /// Attach a token from the layer's or middleware's own source (no clone of it on the hot
    /// path; it is borrowed from [`Attach::source`]).
    Attach,
    /// Attach a token from this per-request source ([`RequestAuth::Source`]).
    AttachFrom(TokenSource),
}

/// Why a request went out without a token although the layer or middleware had one for it. Put in
/// the extensions of the response when that response is a `401`, so a caller can tell a token
/// the server refused from a token that was never sent:
///
/// ```
/// # fn check(response: &http::Response<()>) {
/// if let Some(withheld) = response.extensions().get::<oauth_layer::TokenWithheld>() {
///     eprintln!("{withheld}"); // says which origin and what to change
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenWithheld {
    origin: String,
    reason: WithheldReason,
}

/// Why a token was withheld (see [`TokenWithheld`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WithheldReason {
    /// The request went over plain `http` to a host that is not loopback.
    PlainHttp,
    /// The origin is not in the list given to `allow_origins`, or, without a list, it is not the
    /// origin of the first request this layer or middleware attached a token to.
    OriginNotAllowed,
    /// The request had no scheme and host to check.
    NoOrigin,
}

impl TokenWithheld {
    /// `scheme://host:port` of the request.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Why no token was sent.
    pub fn reason(&self) -> WithheldReason {
        self.reason
    }
}

impl std::fmt::Display for TokenWithheld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.reason {
            WithheldReason::PlainHttp => write!(
                f,
                "no token was sent to {}: tokens never go over plain http except to loopback; use https",
                self.origin
            ),
            WithheldReason::OriginNotAllowed => write!(
                f,
                "no token was sent to {}: it is not an origin this client sends tokens to; \
                 name every API origin with allow_origins([...]) (without a list, only the \
                 origin of the first request gets tokens, and never a redirect target)",
                self.origin
            ),
            WithheldReason::NoOrigin => {
                write!(
                    f,
                    "no token was sent: the request URL has no scheme and host"
                )
            }
        }
    }
}

impl Attach {
    pub(crate) fn new(source: TokenSource) -> Self {
        Self {
            source,
            origins: Origins::FirstUse(Arc::default()),
            interactive: false,
            retry_after_401: true,
            warned: Arc::default(),
        }
    }

    /// Restricts tokens to these origins (`https://api.example`, `http://127.0.0.1:8080`).
    pub(crate) fn allow_origins<I, U>(mut self, origins: I) -> Result<Self>
    where
        I: IntoIterator<Item = U>,
        U: AsRef<str>,
    {
        let mut list = Vec::new();
        for o in origins {
            let text = o.as_ref();
            let uri: Uri = text
                .parse()
                .map_err(|_| Error::config(format!("{text:?} is not an origin URL")))?;
            let origin = OriginRef::of_uri(&uri)
                .ok_or_else(|| Error::config(format!("{text:?} has no scheme and host")))?;
            if !transport_ok(origin) {
                return Err(Error::config(format!(
                    "{text:?}: tokens never go over plain http except to loopback; use https"
                )));
            }
            let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
            list.push(Origin::of(origin, authority));
        }
        if list.is_empty() {
            return Err(Error::config(
                "allow_origins needs at least one origin (to send no token, use RequestAuth::Skip)",
            ));
        }
        self.origins = Origins::List(list.into());
        Ok(self)
    }

    pub(crate) fn interactive(mut self, allowed: bool) -> Self {
        self.interactive = allowed;
        self
    }

    /// Decides what happens to a request to `origin` with these headers and extensions.
    #[inline]
    pub(crate) fn plan<T: Target + ?Sized>(
        &self,
        target: &T,
        headers: &HeaderMap,
        extensions: &http::Extensions,
    ) -> Plan {
        if headers.contains_key(AUTHORIZATION) {
            return Plan::AsIs;
        }
        let own = match extensions.get::<RequestAuth>() {
            Some(RequestAuth::Skip) => return Plan::AsIs,
            Some(RequestAuth::Source(s)) => Some(s),
            None => None,
        };
        if let Err(reason) = self.target_allowed(target) {
            return Plan::Withheld(Box::new(self.withheld(target, reason)));
        }
        match own {
            Some(source) => Plan::AttachFrom(source.clone()),
            None => Plan::Attach,
        }
    }

    /// Plain `http` only to loopback (rule 14); with a list, exact origin matches only (rule
    /// 24); without one, the first origin only (rule 25).
    #[inline]
    fn target_allowed<T: Target + ?Sized>(
        &self,
        target: &T,
    ) -> std::result::Result<(), WithheldReason> {
        // The common case without parsing: the request writes an allowed origin the way it was
        // first seen or listed (every allowed origin passed the transport check already).
        if let Some((scheme, authority)) = target.scheme_and_authority() {
            let written_as_allowed = match &self.origins {
                Origins::List(list) => list.iter().any(|o| o.written_as(scheme, authority)),
                Origins::FirstUse(first) => {
                    first.get().is_some_and(|o| o.written_as(scheme, authority))
                }
            };
            if written_as_allowed {
                return Ok(());
            }
        }
        let origin = target.origin().ok_or(WithheldReason::NoOrigin)?;
        if !transport_ok(origin) {
            return Err(WithheldReason::PlainHttp);
        }
        let allowed = match &self.origins {
            Origins::List(list) => list.iter().any(|allowed| origin.matches(allowed)),
            Origins::FirstUse(first) => origin.matches(first.get_or_init(|| {
                let authority = target.scheme_and_authority().map_or("", |(_, a)| a);
                Origin::of(origin, authority)
            })),
        };
        if allowed {
            Ok(())
        } else {
            Err(WithheldReason::OriginNotAllowed)
        }
    }

    /// Builds the [`TokenWithheld`] for a request, warning once per origin.
    #[cold]
    fn withheld<T: Target + ?Sized>(&self, target: &T, reason: WithheldReason) -> TokenWithheld {
        let origin = target
            .origin()
            .map(|o| Origin::of(o, "").to_string())
            .unwrap_or_else(|| "<no origin>".to_owned());
        let withheld = TokenWithheld { origin, reason };
        // At most this many origins are remembered; past that every withheld request is logged at
        // debug level only, so a crawler through one client cannot grow the list without bound.
        const MAX_WARNED: usize = 64;
        let first_time = match self.warned.lock() {
            Ok(mut warned) if !warned.contains(&withheld.origin) && warned.len() < MAX_WARNED => {
                warned.push(withheld.origin.clone());
                true
            }
            _ => false,
        };
        if first_time {
            tracing::warn!(origin = %withheld.origin, "{withheld}");
        } else {
            tracing::debug!(origin = %withheld.origin, "{withheld}");
        }
        withheld
    }

    /// Whether a request may wait for an interactive sign-in.
    pub(crate) fn is_interactive(&self) -> bool {
        self.interactive
    }
}

/// `https`, or `http` to a loopback host (rule 14).
fn transport_ok(origin: OriginRef<'_>) -> bool {
    origin.scheme.eq_ignore_ascii_case("https")
        || (origin.scheme.eq_ignore_ascii_case("http") && origin.is_loopback())
}

/// Marks a `401` answer to a request that went out without a token (see [`TokenWithheld`]).
pub(crate) fn mark_withheld(
    status: StatusCode,
    extensions: &mut http::Extensions,
    withheld: TokenWithheld,
) {
    if status == StatusCode::UNAUTHORIZED {
        extensions.insert(withheld);
    }
}

/// The grant behind a shorthand constructor (`client_credentials`, `password`, `refresh`), kept
/// so that `.scope(...)` and friends can rebuild the source before first use.
#[derive(Debug, Clone)]
pub(crate) enum Shorthand {
    ClientCredentials(OAuthClient, ClientCredentials),
    Password(OAuthClient, Password),
    Refresh(OAuthClient, SecretString, Vec<String>),
    #[cfg(feature = "auth-code")]
    AuthCode(OAuthClient, crate::flow::AuthCode),
    Device(OAuthClient, crate::flow::DeviceCode),
}

impl Shorthand {
    pub(crate) fn source(&self) -> TokenSource {
        match self {
            Shorthand::ClientCredentials(c, f) => TokenSource::new(c.clone(), f.clone()),
            Shorthand::Password(c, f) => TokenSource::new(c.clone(), f.clone()),
            #[cfg(feature = "auth-code")]
            Shorthand::AuthCode(c, f) => TokenSource::new(c.clone(), f.clone()),
            Shorthand::Device(c, f) => TokenSource::new(c.clone(), f.clone()),
            Shorthand::Refresh(c, rt, scopes) => {
                let flow = scopes.iter().fold(
                    RefreshToken::new(rt.expose_secret().to_owned()),
                    |flow, s| flow.scope(s.clone()),
                );
                TokenSource::new(c.clone(), flow)
            }
        }
    }

    pub(crate) fn scope(self, scope: String) -> Self {
        match self {
            Shorthand::ClientCredentials(c, f) => Shorthand::ClientCredentials(c, f.scope(scope)),
            Shorthand::Password(c, f) => Shorthand::Password(c, f.scope(scope)),
            #[cfg(feature = "auth-code")]
            Shorthand::AuthCode(c, f) => Shorthand::AuthCode(c, f.scope(scope)),
            Shorthand::Device(c, f) => Shorthand::Device(c, f.scope(scope)),
            Shorthand::Refresh(c, rt, mut scopes) => {
                scopes.push(scope);
                Shorthand::Refresh(c, rt, scopes)
            }
        }
    }

    /// Whether the grant needs a person (so the shorthand allows an interactive flow mid-request).
    pub(crate) fn is_interactive(&self) -> bool {
        match self {
            #[cfg(feature = "auth-code")]
            Shorthand::AuthCode(..) => true,
            Shorthand::Device(..) => true,
            _ => false,
        }
    }

    pub(crate) fn audience(self, audience: String) -> Self {
        match self {
            Shorthand::ClientCredentials(c, f) => {
                Shorthand::ClientCredentials(c, f.audience(audience))
            }
            other => {
                tracing::warn!("audience applies to the client credentials grant only; ignored");
                other
            }
        }
    }
}

/// Applies a change to the shorthand grant, if there is one, and rebuilds the source.
pub(crate) fn reshape(
    attach: &mut Attach,
    shorthand: &mut Option<Shorthand>,
    change: impl FnOnce(Shorthand) -> Shorthand,
) {
    match shorthand.take() {
        Some(s) => {
            let s = change(s);
            attach.source = s.source();
            *shorthand = Some(s);
        }
        None => tracing::warn!(
            "scope and audience apply to the shorthand constructors only; \
             configure the flow of a TokenSource instead"
        ),
    }
}

/// Sets exactly one `Authorization` header, marked sensitive (rule 26).
#[inline]
pub(crate) fn set_token(headers: &mut HeaderMap, token: &Token) {
    set_header(headers, token.header_value().clone());
}

/// [`set_token`] with the header value already taken from the token.
#[inline]
pub(crate) fn set_header(headers: &mut HeaderMap, value: HeaderValue) {
    headers.insert(AUTHORIZATION, value);
}

/// `true` when a response says the token was not accepted and a renewed one may work (rule 29):
/// a 401 whose bearer challenge says `invalid_token` or no error at all, or a 401 with no
/// challenge (as GitHub sends). A 401 whose challenges are all for other schemes, or whose bearer
/// error is something else (`invalid_request`, `insufficient_scope`), is returned as it is.
pub(crate) fn calls_for_renewal(status: StatusCode, headers: &HeaderMap) -> bool {
    if status != StatusCode::UNAUTHORIZED {
        return false;
    }
    let mut challenges = headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .peekable();
    if challenges.peek().is_none() {
        return true;
    }
    challenges
        .flat_map(parse_challenges)
        .filter(|c| c.scheme.eq_ignore_ascii_case("bearer"))
        .any(|c| match c.error {
            None => true,
            Some(e) => e == "invalid_token",
        })
}

/// One challenge of a `WWW-Authenticate` value: its scheme and, for our purposes, its `error`.
#[derive(Debug, PartialEq)]
struct Challenge {
    scheme: String,
    error: Option<String>,
}

/// Parses `WWW-Authenticate` (RFC 9110 §11.6.1) leniently: several challenges per value, params
/// as tokens or quoted strings with escapes. Malformed input yields what could be read, never a
/// panic.
fn parse_challenges(value: &str) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_ascii_whitespace());
        if rest.is_empty() {
            break;
        }
        let (word, after) = take_token(rest);
        if word.is_empty() {
            // Not a token character: skip it and go on.
            let mut chars = rest.chars();
            chars.next();
            rest = chars.as_str();
            continue;
        }
        let after_ws = after.trim_start();
        if let Some(value_part) = after_ws.strip_prefix('=') {
            if value_part.starts_with('=') || value_part.trim_start().is_empty() {
                // token68 padding like `abc==`: part of the challenge, not a parameter.
                rest = value_part.trim_start_matches('=');
                continue;
            }
            let (val, after_val) = take_value(value_part.trim_start());
            if let Some(current) = out.last_mut()
                && word.eq_ignore_ascii_case("error")
                && current.error.is_none()
            {
                current.error = Some(val);
            }
            rest = after_val;
        } else {
            out.push(Challenge {
                scheme: word.to_owned(),
                error: None,
            });
            rest = after;
        }
    }
    out
}

fn take_token(s: &str) -> (&str, &str) {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~/".contains(c)))
        .unwrap_or(s.len());
    s.split_at(end)
}

fn take_value(s: &str) -> (String, &str) {
    if let Some(quoted) = s.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => return (value, &quoted[i + 1..]),
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                c => value.push(c),
            }
        }
        (value, "")
    } else {
        let (token, rest) = take_token(s);
        (token.to_owned(), rest)
    }
}

/// The constructors and settings [`OAuthLayer`](crate::OAuthLayer) and
/// [`OAuthMiddleware`](crate::OAuthMiddleware) share, written once. The type must have the
/// fields `attach: Attach` and `shorthand: Option<Shorthand>`.
macro_rules! shorthand_constructors {
    ($what:literal) => {
        /// A
        #[doc = $what]
        /// taking its tokens from `source` (shared with every other user of it). Interactive
        /// flows are not started mid-request unless [`interactive`](Self::interactive) says so.
        pub fn from_source(source: $crate::TokenSource) -> Self {
            Self {
                attach: $crate::attach::Attach::new(source),
                shorthand: None,
            }
        }
        /// The client credentials grant (httr2's `req_oauth_client_credentials()`).
        pub fn client_credentials(client: $crate::OAuthClient) -> Self {
            Self::shorthand($crate::attach::Shorthand::ClientCredentials(
                client,
                $crate::flow::ClientCredentials::new(),
            ))
        }

        /// The resource owner password grant (httr2's `req_oauth_password()`). Deprecated by
        /// RFC 9700; for legacy systems only.
        pub fn password(
            client: $crate::OAuthClient,
            username: impl Into<String>,
            password: impl Into<String>,
        ) -> Self {
            Self::shorthand($crate::attach::Shorthand::Password(
                client,
                $crate::flow::Password::new(username, password),
            ))
        }

        /// Starts from a refresh token you already hold (httr2's `req_oauth_refresh()`).
        pub fn refresh(client: $crate::OAuthClient, refresh_token: impl Into<String>) -> Self {
            Self::shorthand($crate::attach::Shorthand::Refresh(
                client,
                secrecy::SecretString::from(refresh_token.into()),
                Vec::new(),
            ))
        }

        /// The authorization code grant with PKCE (httr2's `req_oauth_auth_code()`): the first
        /// request that needs a token opens the browser for the person to sign in; afterwards the
        /// refresh token keeps it silent. Interactive by default; configure the sign-in with
        /// [`auth_code_with`](Self::auth_code_with).
        #[cfg(feature = "auth-code")]
        pub fn auth_code(client: $crate::OAuthClient) -> Self {
            Self::auth_code_with(client, $crate::flow::AuthCode::new())
        }

        /// The authorization code grant with a configured [`AuthCode`]($crate::flow::AuthCode) flow (receiver, redirect URI,
        /// extra parameters...).
        #[cfg(feature = "auth-code")]
        pub fn auth_code_with(client: $crate::OAuthClient, flow: $crate::flow::AuthCode) -> Self {
            Self::shorthand($crate::attach::Shorthand::AuthCode(client, flow))
        }

        /// The device authorization grant (RFC 8628): the first request that needs a token shows
        /// the person a code to enter at a URL on another device, then waits for their approval.
        /// Interactive by default; configure it with [`device_with`](Self::device_with).
        pub fn device(client: $crate::OAuthClient) -> Self {
            Self::device_with(client, $crate::flow::DeviceCode::new())
        }

        /// The device authorization grant with a configured [`DeviceCode`]($crate::flow::DeviceCode)
        /// flow (display, browser, extra parameters).
        pub fn device_with(client: $crate::OAuthClient, flow: $crate::flow::DeviceCode) -> Self {
            Self::shorthand($crate::attach::Shorthand::Device(client, flow))
        }

        fn shorthand(shorthand: $crate::attach::Shorthand) -> Self {
            Self {
                attach: $crate::attach::Attach::new(shorthand.source())
                    .interactive(shorthand.is_interactive()),
                shorthand: Some(shorthand),
            }
        }

        /// Requests a scope (shorthand constructors only; with [`from_source`](Self::from_source),
        /// set it on the source's flow).
        pub fn scope(mut self, scope: impl Into<String>) -> Self {
            let scope = scope.into();
            $crate::attach::reshape(&mut self.attach, &mut self.shorthand, |s| s.scope(scope));
            self
        }

        /// Requests an `audience` (client credentials shorthand only).
        pub fn audience(mut self, audience: impl Into<String>) -> Self {
            let audience = audience.into();
            $crate::attach::reshape(&mut self.attach, &mut self.shorthand, |s| {
                s.audience(audience)
            });
            self
        }

        /// Sends tokens only to these origins (`scheme://host[:port]`, exact match; SECURITY.md
        /// rule 24), and never over plain `http` except to loopback. Without a list, tokens go
        /// to one origin only: that of the first request a token is attached to. Either way a
        /// redirect target on another origin never gets one, whatever follows the redirects
        /// (rule 25). A request to another origin goes out without a token; if it is answered
        /// with a 401, the response carries a [`TokenWithheld`]($crate::TokenWithheld) extension
        /// that says why, and the first one per origin is logged at `warn` level.
        pub fn allow_origins<I, U>(mut self, origins: I) -> $crate::Result<Self>
        where
            I: IntoIterator<Item = U>,
            U: AsRef<str>,
        {
            self.attach = self.attach.allow_origins(origins)?;
            Ok(self)
        }

        /// Whether an interactive flow may run in the middle of a request (default `false`, but
        /// `true` for the `auth_code` and `device` shorthands).
        pub fn interactive(mut self, allowed: bool) -> Self {
            self.attach = self.attach.interactive(allowed);
            self
        }

        /// Whether a request rejected with a 401 is sent once more with a renewed token (default
        /// `true`). Retrying needs a copy of every request made before it is sent; turn it off
        /// to save that copy when your requests' 401s are handled elsewhere. The failed token is
        /// dropped either way, so the next request gets a renewed one.
        pub fn retry_after_401(mut self, retry: bool) -> Self {
            self.attach.retry_after_401 = retry;
            self
        }

        /// The shared token source.
        pub fn source(&self) -> &$crate::TokenSource {
            &self.attach.source
        }
    };
}

pub(crate) use shorthand_constructors;

#[cfg(test)]
mod tests {
    use super::*;

    fn renews(challenges: &[&str]) -> bool {
        let mut headers = HeaderMap::new();
        for c in challenges {
            headers.append(WWW_AUTHENTICATE, c.parse().unwrap());
        }
        calls_for_renewal(StatusCode::UNAUTHORIZED, &headers)
    }

    #[test]
    fn invalid_token_and_bare_challenges_renew() {
        assert!(renews(&[]));
        assert!(renews(&["Bearer"]));
        assert!(renews(&[r#"Bearer realm="api", error="invalid_token""#]));
        assert!(renews(&[
            r#"Basic realm="x", Bearer error="invalid_token""#
        ]));
        assert!(renews(&[r#"Basic realm="x""#, r#"Bearer realm="y""#]));
    }

    #[test]
    fn other_errors_and_schemes_do_not_renew() {
        assert!(!renews(&[
            r#"Bearer error="insufficient_scope", scope="admin""#
        ]));
        assert!(!renews(&[r#"Bearer error="invalid_request""#]));
        assert!(!renews(&[r#"Basic realm="x""#]));
        assert!(!calls_for_renewal(StatusCode::FORBIDDEN, &HeaderMap::new()));
    }

    #[test]
    fn quoted_values_with_escapes_and_commas() {
        let c = parse_challenges(
            r#"Bearer realm="a \"quoted\", realm", error="invalid_token", Newauth abc=="#,
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].error.as_deref(), Some("invalid_token"));
        assert_eq!(c[1].scheme, "Newauth");
    }

    #[test]
    fn malformed_challenges_never_panic() {
        for s in [
            "",
            "=",
            "\"",
            "Bearer error=\"",
            "Bearer ,,,, =x",
            "é Bearer",
            "Bearer error",
            "Bearer error=",
            "\\\\\"",
            "Bearer realm=\"\\",
        ] {
            let _ = parse_challenges(s);
        }
    }
}
