//! The per-request plan: for each outgoing request, whether it gets a token, from which source,
//! or why not; and how the token goes in (one `Authorization` header, marked sensitive).

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};

use super::origin::{Origins, Target};
use super::withheld::{TokenWithheld, WithheldLog};
use crate::error::Result;
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

/// Everything the layer and the middleware share: the source, the origin rules and whether an
/// interactive flow may run in the middle of a request.
#[derive(Debug, Clone)]
pub(crate) struct Attach {
    pub(crate) source: TokenSource,
    origins: Origins,
    interactive: bool,
    pub(crate) retry_after_401: bool,
    withheld: WithheldLog,
    /// The thumbprint of the client certificate the pipeline's connections present (RFC 8705),
    /// as declared: the only certificate-bound tokens it attaches.
    presented: Option<std::sync::Arc<str>>,
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

impl Attach {
    /// Tokens from `source`, to the origin of the first request only, no interaction, one retry
    /// after a 401.
    pub(crate) fn new(source: TokenSource) -> Self {
        Self {
            source,
            origins: Origins::first_use(),
            interactive: false,
            retry_after_401: true,
            withheld: WithheldLog::default(),
            presented: None,
        }
    }

    /// The same rules with another source (a shorthand's grant was reconfigured).
    pub(crate) fn with_source(self, source: TokenSource) -> Self {
        Self { source, ..self }
    }

    /// Restricts tokens to these origins (`https://api.example`, `http://127.0.0.1:8080`).
    pub(crate) fn allow_origins<I, U>(mut self, origins: I) -> Result<Self>
    where
        I: IntoIterator<Item = U>,
        U: AsRef<str>,
    {
        self.origins = Origins::list(origins)?;
        Ok(self)
    }

    /// Declares the thumbprint of the client certificate the pipeline presents.
    pub(crate) fn presents_certificate(mut self, thumbprint: &str) -> Self {
        self.presented = Some(thumbprint.into());
        self
    }

    /// The thumbprint of the certificate the pipeline declared it presents.
    #[inline]
    pub(crate) fn presented(&self) -> Option<&str> {
        self.presented.as_deref()
    }

    /// [`presented`](Self::presented), shared: what a request keeps for its retry (a reference
    /// count, where `presented().map(Into::into)` copied the thumbprint into a new allocation
    /// on every request).
    #[cfg(feature = "tower")]
    #[inline]
    pub(crate) fn presented_shared(&self) -> Option<std::sync::Arc<str>> {
        self.presented.clone()
    }

    pub(crate) fn interactive(mut self, allowed: bool) -> Self {
        self.interactive = allowed;
        self
    }

    /// Decides what happens to a request to `target` with these headers and extensions.
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
        if let Err(reason) = self.origins.check(target) {
            return Plan::Withheld(Box::new(self.withheld.record(target, reason)));
        }
        match own {
            Some(source) => Plan::AttachFrom(source.clone()),
            None => Plan::Attach,
        }
    }

    /// The allowed origin a request to `target` goes to, when it writes it the way it was
    /// allowed (see [`Origins::allowed_as_written`]).
    #[cfg(feature = "reqwest")]
    #[inline]
    pub(crate) fn allowed_origin<T: Target + ?Sized>(
        &self,
        target: &T,
    ) -> Option<&super::origin::Origin> {
        self.origins.allowed_as_written(target)
    }

    /// Whether a request may wait for an interactive sign-in.
    pub(crate) fn is_interactive(&self) -> bool {
        self.interactive
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
