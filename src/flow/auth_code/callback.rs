//! What comes back to the redirect URI, and the authorization code it carries.

use std::fmt;
use std::sync::Arc;

use http::StatusCode;
use secrecy::SecretString;

use crate::error::{Error, ErrorCode, Result, ServerError};
use crate::redact::{self, Secrets};

/// The parameters an authorization server sent to the redirect URI, not yet checked.
/// Check it with [`AuthorizationRequest::check`](super::AuthorizationRequest::check).
#[derive(Clone)]
pub struct Callback {
    pub(crate) params: Vec<(String, String)>,
}

impl Callback {
    /// From a query string (`code=...&state=...`), with or without the leading `?`.
    pub fn from_query(query: &str) -> Self {
        let query = query.strip_prefix('?').unwrap_or(query);
        Self {
            params: url::form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        }
    }

    /// From what a person pasted: the whole redirect URL, or just its query.
    pub fn from_pasted(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::MalformedCallback("nothing was pasted".into()));
        }
        match url::Url::parse(text) {
            Ok(url) => Ok(Self::from_query(url.query().unwrap_or(""))),
            Err(_) if text.contains('=') => Ok(Self::from_query(text)),
            Err(_) => Err(Error::MalformedCallback(
                "paste the whole address the browser was sent to".into(),
            )),
        }
    }

    /// From name/value pairs (a web framework's parsed query, a hosted code source's JSON).
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            params: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

impl fmt::Debug for Callback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.params.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Callback").field("params", &names).finish()
    }
}

/// A provider's own check of a callback (Shopify's `hmac`), run once its state is known to be
/// ours and before its code is accepted.
#[derive(Clone)]
pub(crate) struct CallbackCheck(pub(crate) Arc<CheckFn>);

/// The function behind a [`CallbackCheck`].
pub(crate) type CheckFn = dyn Fn(&Callback) -> Result<()> + Send + Sync;

impl fmt::Debug for CallbackCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CallbackCheck")
    }
}

/// The authorization code a receiver accepted from a callback (its state, `iss` and the rest
/// already checked against the [`AuthorizationRequest`](super::AuthorizationRequest)), ready to
/// be exchanged for a token once with [`AuthCode::exchange`](super::AuthCode::exchange).
///
/// Not to be confused with the flow itself, [`AuthCode`](super::AuthCode): this is the one-time
/// value a sign-in brings back.
pub struct ReceivedCode {
    pub(crate) code: SecretString,
    pub(crate) iss: Option<String>,
}

impl ReceivedCode {
    /// The code.
    pub fn secret(&self) -> &SecretString {
        &self.code
    }

    /// The `iss` the server sent with it, if any (already checked).
    pub fn issuer(&self) -> Option<&str> {
        self.iss.as_deref()
    }
}

impl fmt::Debug for ReceivedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceivedCode")
            .field("code", &"[redacted]")
            .field("iss", &self.iss)
            .finish()
    }
}

/// The outcome of checking a callback.
pub(crate) enum Checked {
    /// Not an answer to this request (wrong, missing or repeated state, a replay, a malformed
    /// answer): a receiver ignores it and keeps waiting.
    NotOurs(Error),
    /// The answer to this request: a code, or the error that ends the sign-in.
    Done(Result<ReceivedCode>),
}

/// The error for `error=` on a callback. The description is cleaned like any server text, with
/// `secrets` (what the request sent that the server might echo) redacted, and must never be
/// rendered as HTML.
pub(crate) fn denied(
    error: &str,
    description: Option<&str>,
    uri: Option<&str>,
    secrets: &Secrets<'_>,
) -> Error {
    Error::AuthorizationDenied(ServerError {
        status: StatusCode::FOUND,
        code: ErrorCode::parse(&redact::server_text(error, secrets)),
        description: description.map(|d| redact::server_text(d, secrets)),
        uri: uri.map(|u| redact::server_text(u, secrets)),
        retry_after: None,
    })
}
