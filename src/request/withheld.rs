//! A token withheld: the request went out without one because its origin may not have it, and
//! a `401` in answer says so to the caller ([`TokenWithheld`]) and, once per origin, to the log.

use std::sync::{Arc, Mutex};

use http::StatusCode;

use super::origin::Target;

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

    /// Marks a `401` answer to the request this was made for; other answers are left alone.
    pub(crate) fn mark(self, status: StatusCode, extensions: &mut http::Extensions) {
        if status == StatusCode::UNAUTHORIZED {
            extensions.insert(self);
        }
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

/// The origins a token was withheld from and that were already warned about, shared by every
/// clone of a layer or middleware.
#[derive(Debug, Clone, Default)]
pub(crate) struct WithheldLog {
    warned: Arc<Mutex<Vec<String>>>,
}

impl WithheldLog {
    /// At most this many origins are remembered; past that every withheld request is logged at
    /// debug level only, so a crawler through one client cannot grow the list without bound.
    const MAX_WARNED: usize = 64;

    /// Builds the [`TokenWithheld`] for a request, warning once per origin.
    #[cold]
    pub(crate) fn record<T: Target + ?Sized>(
        &self,
        target: &T,
        reason: WithheldReason,
    ) -> TokenWithheld {
        let withheld = TokenWithheld {
            origin: target.origin_text(),
            reason,
        };
        let first_time = match self.warned.lock() {
            Ok(mut warned)
                if !warned.contains(&withheld.origin) && warned.len() < Self::MAX_WARNED =>
            {
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
}
