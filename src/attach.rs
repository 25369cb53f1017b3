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
use crate::http::is_loopback_host;
use crate::source::TokenSource;
use crate::token::Token;

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

    fn matches(&self, allowed: &Origin) -> bool {
        self.port == allowed.port
            && self.scheme.eq_ignore_ascii_case(&allowed.scheme)
            && self.host.eq_ignore_ascii_case(&allowed.host)
    }
}

/// Where a request goes, as the layer and the middleware see it.
pub(crate) trait Target {
    /// The scheme, cheaply.
    fn scheme(&self) -> Option<&str>;
    /// Scheme, host and port.
    fn origin(&self) -> Option<OriginRef<'_>>;
}

impl Target for Uri {
    fn scheme(&self) -> Option<&str> {
        self.scheme_str()
    }

    fn origin(&self) -> Option<OriginRef<'_>> {
        OriginRef::of_uri(self)
    }
}

#[cfg(feature = "reqwest")]
impl Target for url::Url {
    fn scheme(&self) -> Option<&str> {
        Some(url::Url::scheme(self))
    }

    fn origin(&self) -> Option<OriginRef<'_>> {
        OriginRef::of_url(self)
    }
}

/// An allowed origin, lowercased.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

/// Everything the layer and the middleware share: the source, the origin rules and whether an
/// interactive flow may run in the middle of a request.
#[derive(Debug, Clone)]
pub(crate) struct Attach {
    pub(crate) source: TokenSource,
    origins: Option<Arc<[Origin]>>,
    interactive: bool,
    pub(crate) retry_after_401: bool,
}

/// What to do with one outgoing request.
pub(crate) enum Plan {
    /// Send it as it is (no token: the caller set its own `Authorization`, the origin is not
    /// allowed, or the request asked to skip).
    AsIs,
    /// Attach a token from the layer's or middleware's own source (no clone of it on the hot
    /// path; it is borrowed from [`Attach::source`]).
    Attach,
    /// Attach a token from this per-request source ([`RequestAuth::Source`]).
    AttachFrom(TokenSource),
}

impl Attach {
    pub(crate) fn new(source: TokenSource) -> Self {
        Self {
            source,
            origins: None,
            interactive: false,
            retry_after_401: true,
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
            list.push(Origin {
                scheme: origin.scheme.to_ascii_lowercase(),
                host: origin.host.to_ascii_lowercase(),
                port: origin.port,
            });
        }
        self.origins = Some(list.into());
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
        if !self.target_allowed(target) {
            tracing::debug!(origin = ?target.origin(), "not attaching a token: origin not allowed");
            return Plan::AsIs;
        }
        match own {
            Some(source) => Plan::AttachFrom(source.clone()),
            None => Plan::Attach,
        }
    }

    /// Without a list, any `https` target is allowed: the scheme alone decides, with no parsing of
    /// the host on the hot path. Everything else goes through the full origin check.
    #[inline]
    fn target_allowed<T: Target + ?Sized>(&self, target: &T) -> bool {
        if self.origins.is_none()
            && target
                .scheme()
                .is_some_and(|s| s.eq_ignore_ascii_case("https"))
        {
            return true;
        }
        target.origin().is_some_and(|o| self.origin_allowed(o))
    }

    /// Plain `http` only to loopback (rule 14); with a list, exact origin matches only (rule 24).
    fn origin_allowed(&self, origin: OriginRef<'_>) -> bool {
        let transport_ok = origin.scheme.eq_ignore_ascii_case("https")
            || (origin.scheme.eq_ignore_ascii_case("http") && origin.is_loopback());
        transport_ok
            && self
                .origins
                .as_deref()
                .is_none_or(|list| list.iter().any(|allowed| origin.matches(allowed)))
    }

    /// Whether a request may wait for an interactive sign-in.
    pub(crate) fn is_interactive(&self) -> bool {
        self.interactive
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
        /// rule 24). Without a list, any `https` origin and loopback `http` get the token.
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
