//! Origin rules: which origins get a token (SECURITY.md rules 14, 24 and 25).
//!
//! An origin is scheme, host and port. Tokens go over `https`, or plain `http` to loopback only;
//! with an allow list, to exactly its origins; without one, to the origin of the first request
//! a token is attached to, and no other.

use std::sync::{Arc, OnceLock};

use http::Uri;

use super::withheld::WithheldReason;
use crate::error::{Error, Result};
use crate::transport::is_loopback_host;

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

    /// `https`, or `http` to a loopback host (rule 14).
    fn transport_ok(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("https")
            || (self.scheme.eq_ignore_ascii_case("http") && self.is_loopback())
    }
}

/// Where a request goes, as the layer and the middleware see it.
pub(crate) trait Target {
    /// Scheme, host and port.
    fn origin(&self) -> Option<OriginRef<'_>>;
    /// The scheme and the authority as written, without parsing: the per-request check compares
    /// these first and parses only when they differ from an allowed origin's.
    fn scheme_and_authority(&self) -> Option<(&str, &str)>;

    /// `scheme://host:port`, lowercased, for messages.
    fn origin_text(&self) -> String {
        self.origin()
            .map(|o| Origin::of(o, "").to_string())
            .unwrap_or_else(|| "<no origin>".to_owned())
    }
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
pub(crate) struct Origin {
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

    /// Whether `scheme` and `authority`, exactly as written, name this origin. Requests almost
    /// always write them in lower case, as kept here: a byte comparison (`memcmp`) settles that
    /// case, and the byte-by-byte case-insensitive loop, some 300 instructions for
    /// `https://api.example`, runs only when it fails.
    #[inline]
    fn written_as(&self, scheme: &str, authority: &str) -> bool {
        (scheme == self.scheme || scheme.eq_ignore_ascii_case(&self.scheme))
            && (authority == self.authority || authority.eq_ignore_ascii_case(&self.authority))
    }

    /// Whether `target` goes to this origin: compared as written, parsed only when that
    /// differs.
    #[cfg(feature = "reqwest")]
    #[inline]
    pub(crate) fn is_origin_of<T: Target + ?Sized>(&self, target: &T) -> bool {
        target
            .scheme_and_authority()
            .is_some_and(|(scheme, authority)| self.written_as(scheme, authority))
            || target.origin().is_some_and(|origin| origin.matches(self))
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// Which origins get tokens (SECURITY.md rules 24 and 25).
#[derive(Debug, Clone)]
pub(crate) struct Origins(Allowed);

#[derive(Debug, Clone)]
enum Allowed {
    /// No list was given: the origin of the first request a token is attached to, and no other.
    /// A redirect-following layer outside ours, or a second API, can then never make us attach a
    /// token for another host, whatever the redirect policy.
    FirstUse(Arc<OnceLock<Origin>>),
    /// Exactly these (`allow_origins`).
    List(Arc<[Origin]>),
}

impl Origins {
    /// The origin of the first request a token is attached to, and no other.
    pub(crate) fn first_use() -> Self {
        Origins(Allowed::FirstUse(Arc::default()))
    }

    /// Exactly these origins (`https://api.example`, `http://127.0.0.1:8080`); an error for a
    /// text that is not an origin URL, for plain `http` to a host that is not loopback, and for
    /// an empty list.
    pub(crate) fn list<I, U>(origins: I) -> Result<Self>
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
            if !origin.transport_ok() {
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
        Ok(Origins(Allowed::List(list.into())))
    }

    /// The allowed origin `target` writes as it was first seen or listed (the fast path of
    /// [`check`](Self::check)), borrowed for as long as these rules: what a response is
    /// compared with to tell whether it came from the origin the token went to.
    #[cfg(feature = "reqwest")]
    #[inline]
    pub(crate) fn allowed_as_written<T: Target + ?Sized>(&self, target: &T) -> Option<&Origin> {
        let (scheme, authority) = target.scheme_and_authority()?;
        match &self.0 {
            Allowed::List(list) => list.iter().find(|o| o.written_as(scheme, authority)),
            Allowed::FirstUse(first) => first.get().filter(|o| o.written_as(scheme, authority)),
        }
    }

    /// Plain `http` only to loopback (rule 14); with a list, exact origin matches only (rule
    /// 24); without one, the first origin only (rule 25).
    #[inline]
    pub(crate) fn check<T: Target + ?Sized>(
        &self,
        target: &T,
    ) -> std::result::Result<(), WithheldReason> {
        // The common case without parsing: the request writes an allowed origin the way it was
        // first seen or listed (every allowed origin passed the transport check already).
        if let Some((scheme, authority)) = target.scheme_and_authority() {
            let written_as_allowed = match &self.0 {
                Allowed::List(list) => list.iter().any(|o| o.written_as(scheme, authority)),
                Allowed::FirstUse(first) => {
                    first.get().is_some_and(|o| o.written_as(scheme, authority))
                }
            };
            if written_as_allowed {
                return Ok(());
            }
        }
        let origin = target.origin().ok_or(WithheldReason::NoOrigin)?;
        if !origin.transport_ok() {
            return Err(WithheldReason::PlainHttp);
        }
        let allowed = match &self.0 {
            Allowed::List(list) => list.iter().any(|allowed| origin.matches(allowed)),
            Allowed::FirstUse(first) => origin.matches(first.get_or_init(|| {
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
}
