//! The one error type of the crate, and what a caller should do about each error.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

/// The longest `Retry-After` an error reports (one day). A server may send 2^64 - 1 seconds or
/// a date in the year 9999; such a demand is read as "not today", which keeps a
/// [`TokenSource`](crate::TokenSource) from remembering a failure for centuries and a caller's
/// `Instant::now() + after` from panicking.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while getting, renewing or using a token.
///
/// Errors are cheap to clone, because one failed renewal is handed to every caller that waited
/// for it. None of them ever contains a token, secret, password or code: server text is kept only
/// as a short snippet with those values redacted.
///
/// Match on [`Error::action`] to decide what to do next without string matching:
///
/// ```
/// use oauth_layer::{Action, Error};
///
/// fn next_step(err: &Error) -> &'static str {
///     match err.action() {
///         Action::Reauthenticate => "sign in again",
///         Action::RetryLater { .. } => "back off and try again",
///         Action::FixConfiguration => "fix the client settings",
///         _ => "report it",
///     }
/// }
/// # let _ = next_step;
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The authorization server answered with an OAuth error (RFC 6749 §5.2), for example
    /// `invalid_grant` or `invalid_client`.
    #[error("{0}")]
    Server(ServerError),

    /// The server's answer could not be understood as a token response or an OAuth error:
    /// HTML, an empty body, the wrong JSON shape, an unusable token, and the like.
    #[error("{0}")]
    UnexpectedResponse(ResponseError),

    /// The request did not complete: DNS, a refused connection, TLS, a proxy, the deadline, a
    /// redirect, an oversized body. It names the endpoint and its origin, and its
    /// [`source`](std::error::Error::source) is the HTTP client's error.
    #[error(transparent)]
    Transport(TransportError),

    /// The server issued a token of a type this crate will not send as a bearer token
    /// (for example `mac` or `N_A`).
    #[error("the server issued a token of type {token_type:?}, which is not a bearer token")]
    UnsupportedTokenType {
        /// The `token_type` the server sent (not secret).
        token_type: String,
    },

    /// The client demands DPoP-bound tokens
    /// (`dpop::Dpop::require_bound_tokens`) and the server
    /// issued a bearer token, which would work for whoever stole it.
    #[error(
        "the authorization server issued a bearer token although this client requires \
         DPoP-bound tokens; enable DPoP for this client at the server, or stop requiring bound \
         tokens"
    )]
    UnboundToken,

    /// The client or flow is configured in a way that cannot work (a missing token URL, a
    /// plain `http` URL to a remote host, an invalid parameter).
    #[error("configuration error: {0}")]
    Config(String),

    /// A request that carried a token was answered from another origin: the HTTP client below
    /// the middleware followed a redirect across origins, and such a client may re-send the
    /// token on a later hop (reqwest re-sends the first request's headers on every hop). The
    /// answer is withheld; build the client with
    /// [`reqwest::redirect_policy`](crate::reqwest::redirect_policy) or
    /// `redirect::Policy::none()` (SECURITY.md rule 25).
    #[error(
        "a request carrying a token was answered by {to} after a redirect to another origin; \
         a client that follows such redirects may re-send the token on a later hop. Build the \
         reqwest client with .redirect(oauth_layer::reqwest::redirect_policy()) or \
         redirect::Policy::none()"
    )]
    UnsafeRedirect {
        /// The origin that answered (`scheme://host[:port]`).
        to: String,
    },

    /// A token bound to a client certificate (RFC 8705 §3) was about to go out through a layer
    /// or middleware that did not declare it presents that certificate (or, for userinfo,
    /// through a client without it): nothing was sent. Build the HTTP client under the layer
    /// or middleware with the certificate (`ClientCertificate::reqwest_client_builder`) and
    /// declare it with `client_certificate(&certificate)` on the layer or middleware.
    #[error(
        "the access token is bound to the client certificate {bound_to}, and the layer, \
         middleware or client about to send it {}; nothing was sent. Build its HTTP client with \
         that certificate (ClientCertificate::reqwest_client_builder) and declare it with \
         .client_certificate(&certificate)",
        match declared {
            Some(d) => format!("declared another certificate ({d})"),
            None => "declared no client certificate".to_owned(),
        }
    )]
    CertificateBinding {
        /// The thumbprint (`x5t#S256`) of the certificate the token is bound to.
        bound_to: String,
        /// The thumbprint the layer or middleware declared, if any.
        declared: Option<String>,
    },

    /// A new token needs a person (an interactive flow), and the caller did not allow one.
    #[error("a new token needs an interactive sign-in, and this call does not allow one")]
    InteractionRequired,

    /// The grant this source started from can no longer produce tokens (its refresh token was
    /// rejected or used up); a new sign-in or credential is needed.
    #[error("the grant can no longer produce tokens: {0}")]
    ReauthenticationRequired(String),

    /// The authorization response's `state` was missing, empty, wrong or already used: the
    /// callback did not come from the sign-in this flow started (RFC 6749 §10.12). No token
    /// request was made.
    #[error("the authorization response's state does not match this sign-in")]
    StateMismatch,

    /// The authorization response was malformed: a repeated parameter, `code` and `error`
    /// together, no code at all, or an `iss` that does not name the expected issuer
    /// (RFC 9207). No token request was made.
    #[error("malformed authorization response: {0}")]
    MalformedCallback(String),

    /// The authorization server or the person refused the sign-in (`error=` on the redirect,
    /// RFC 6749 §4.1.2.1, or `access_denied` from the device grant).
    ///
    /// `Display` says what happened and what to do in words for the person ("the sign-in was
    /// cancelled in the browser. To continue, sign in again and approve the request"), and ends
    /// with the OAuth error code, which the [`ServerError`] keeps for programs.
    #[error("{}", .0.refusal())]
    AuthorizationDenied(ServerError),

    /// An interactive step did not finish in time (nobody completed the sign-in, the device
    /// code expired, the hosted code source never answered).
    #[error("timed out: {0}")]
    Timeout(String),

    /// Discovery metadata (or a token's `iss`) names another issuer than the one configured:
    /// the document is not the issuer's own, or the configuration is wrong (RFC 8414 §3.3).
    #[error("issuer mismatch: expected {expected:?}, the server says {found:?}")]
    IssuerMismatch {
        /// The issuer the client was configured with.
        expected: String,
        /// The issuer the server's document names (shortened).
        found: String,
    },

    /// A protected resource's metadata document (RFC 9728) names another resource than the one
    /// the client derived from the URL it was asked to reach: the document is not that
    /// resource's own, so nothing in it is used (RFC 9728 §3.3).
    #[error(
        "protected resource metadata mismatch: expected resource {expected:?}, the document says \
         {found:?}"
    )]
    ResourceMismatch {
        /// The resource identifier the client derived (scheme, host, port and path of the URL
        /// it was asked to reach; never its query).
        expected: String,
        /// The `resource` the document names (shortened, control characters replaced).
        found: String,
    },

    /// A protected resource's metadata names no authorization server the client allows
    /// ([`ResourceClient::authorization_server`](crate::resource::ResourceClient::authorization_server)),
    /// or none at all: nothing is sent to any of them.
    #[error("the resource names no authorization server this client allows (it names {offered:?})")]
    UntrustedAuthorizationServer {
        /// The issuers the resource's metadata names (shortened, control characters replaced).
        offered: Vec<String>,
    },

    /// The client configuration endpoint (RFC 7592) refused the registration access token with
    /// `401` or `403`: the client was deleted, or its registration access token was revoked or
    /// replaced (RFC 7592 §2: a server answers `401` for a client it no longer knows). The
    /// registration is of no further use; register the client again.
    #[error(
        "the client registration is gone: the client configuration endpoint answered {status} \
         to its registration access token (the client was deleted, or the token revoked or \
         replaced); register the client again"
    )]
    RegistrationGone {
        /// The HTTP status of the answer (`401` or `403`).
        status: u16,
    },

    /// An ID token failed validation (signature, algorithm, `iss`, `aud`, `exp`, `nonce`...).
    #[error("invalid ID token: {0}")]
    InvalidIdToken(String),

    /// A signing key or JWT could not be used (a malformed PEM, an algorithm the key cannot
    /// sign with, a service account file without a private key).
    #[error("key error: {0}")]
    Key(String),

    /// A workload credential (a token file, a URL, a command; see [`crate::credential`]) could
    /// not be had, or was refused before it was sent (a JWT past its own `exp`). `origin` names
    /// the source (a path, a URL without its query, a program); neither field ever holds the
    /// credential. Platforms rotate these credentials, so trying again later may succeed.
    #[error("credential from {origin}: {reason}")]
    Credential {
        /// The source: `file /var/run/...`, `url https://...`, `command ...`.
        origin: String,
        /// Why it yielded nothing usable.
        reason: String,
    },

    /// The token store failed.
    #[error("token store error: {0}")]
    Store(String),

    /// The store refused a write because this process's renewal lock was no longer its own (it
    /// expired or another process took it over): another process is renewing, and its token,
    /// not this one, is the current one (fencing, SECURITY.md rule 54). Transient: read the
    /// store again later.
    #[error("token store refused a write: {0}")]
    LockLost(String),

    /// A resource asked for more than the token source can obtain by itself: scopes its grant
    /// cannot widen to (a refresh token alone, or a server that keeps refusing), a stronger or
    /// fresher sign-in (`acr_values`, `max_age`) that a machine grant cannot give, or more
    /// upgrades than a source keeps. It names what is needed, never a token; its
    /// [`action`](Error::action) is [`Action::StepUp`] with the same [`Requirements`].
    ///
    /// [`Requirements`]: crate::flow::Requirements
    #[error("{}", .0.step_up_message())]
    StepUpRequired(crate::flow::Requirements),

    /// A bug or a panic inside the crate's background renewal.
    #[error("internal error: {0}")]
    Internal(String),
}

/// What a caller can do about an [`Error`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// The grant is dead (`invalid_grant`, a rejected refresh token, an interactive sign-in that
    /// is needed): get a new one from the person or the credential owner.
    Reauthenticate,
    /// A transient failure (network, 5xx, 429, `temporarily_unavailable`): try again later, after
    /// `after` when the server said how long.
    RetryLater {
        /// How long the server asked us to wait (`Retry-After`), if it said.
        after: Option<Duration>,
    },
    /// The client registration or this crate's configuration is wrong (`invalid_client`,
    /// `unauthorized_client`, `invalid_scope`, a missing endpoint): retrying will not help.
    FixConfiguration,
    /// The server broke the protocol, or the crate failed: report it.
    Report,
    /// A resource needs what these [`Requirements`](crate::flow::Requirements) name (more
    /// scopes, a sign-in at an `acr` level or no older than `max_age`, extra claims), and this
    /// source cannot obtain it by itself: sign the person in with them (a source with an
    /// interactive flow, see [`TokenSource::upgraded`](crate::TokenSource::upgraded)), or have
    /// the client or account granted them.
    StepUp(crate::flow::Requirements),
}

impl Error {
    /// What a caller should do next.
    pub fn action(&self) -> Action {
        match self {
            Error::Server(e) => e.action(),
            Error::UnexpectedResponse(e) => match e.status {
                Some(s) if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                    Action::RetryLater {
                        after: e.retry_after,
                    }
                }
                _ => Action::Report,
            },
            Error::Transport(e) => match e.kind {
                // An untrusted certificate stays untrusted however often it is tried.
                TransportErrorKind::Redirect
                | TransportErrorKind::InsecureUrl
                | TransportErrorKind::Tls => Action::FixConfiguration,
                TransportErrorKind::BodyTooLarge => Action::Report,
                _ => Action::RetryLater { after: None },
            },
            Error::UnsupportedTokenType { .. }
            | Error::UnboundToken
            | Error::Config(_)
            | Error::UnsafeRedirect { .. }
            | Error::CertificateBinding { .. }
            | Error::IssuerMismatch { .. }
            | Error::ResourceMismatch { .. }
            | Error::UntrustedAuthorizationServer { .. }
            | Error::Key(_) => Action::FixConfiguration,
            Error::InvalidIdToken(_) => Action::Report,
            Error::InteractionRequired
            | Error::ReauthenticationRequired(_)
            | Error::StateMismatch
            | Error::RegistrationGone { .. }
            | Error::AuthorizationDenied(_)
            | Error::Timeout(_) => Action::Reauthenticate,
            Error::MalformedCallback(_) => Action::Report,
            Error::Store(_) | Error::LockLost(_) | Error::Credential { .. } => {
                Action::RetryLater { after: None }
            }
            Error::Internal(_) => Action::Report,
            Error::StepUpRequired(need) => Action::StepUp(need.clone()),
        }
    }

    /// `true` when trying again later may succeed (network, 5xx, 429, `temporarily_unavailable`).
    pub fn is_transient(&self) -> bool {
        matches!(self.action(), Action::RetryLater { .. })
    }

    /// `true` when the server rejected the grant with `invalid_grant`.
    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, Error::Server(e) if e.code == ErrorCode::InvalidGrant)
    }

    /// The OAuth error the server sent, if this is one.
    pub fn server_error(&self) -> Option<&ServerError> {
        match self {
            Error::Server(e) => Some(e),
            _ => None,
        }
    }

    /// How long the server asked us to wait, if it did: at most [`MAX_RETRY_AFTER`] (a day),
    /// so that adding it to an `Instant` is safe whatever the server sent.
    pub fn retry_after(&self) -> Option<Duration> {
        match self.action() {
            Action::RetryLater { after } => after,
            _ => None,
        }
    }

    pub(crate) fn config(msg: impl Into<String>) -> Self {
        Error::Config(msg.into())
    }
}

/// An OAuth error response from the authorization server (RFC 6749 §5.2, RFC 8628 §3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerError {
    /// The HTTP status of the response.
    pub status: StatusCode,
    /// The `error` code.
    pub code: ErrorCode,
    /// `error_description`, shortened and with known secrets redacted. Never render it as HTML.
    pub description: Option<String>,
    /// `error_uri`, as sent.
    pub uri: Option<String>,
    /// `Retry-After`, when the response carried one (at most [`MAX_RETRY_AFTER`]).
    pub retry_after: Option<Duration>,
}

impl ServerError {
    /// What a caller should do about this error.
    pub fn action(&self) -> Action {
        match &self.code {
            ErrorCode::InvalidGrant
            | ErrorCode::AccessDenied
            | ErrorCode::ExpiredToken
            | ErrorCode::LoginRequired
            | ErrorCode::ConsentRequired
            | ErrorCode::InteractionRequired
            | ErrorCode::AccountSelectionRequired => Action::Reauthenticate,
            ErrorCode::InvalidClient
            | ErrorCode::UnauthorizedClient
            | ErrorCode::UnsupportedGrantType
            | ErrorCode::InvalidScope
            | ErrorCode::InvalidRequest => Action::FixConfiguration,
            ErrorCode::TemporarilyUnavailable
            | ErrorCode::ServerError
            | ErrorCode::SlowDown
            | ErrorCode::AuthorizationPending => Action::RetryLater {
                after: self.retry_after,
            },
            ErrorCode::Other(_) => {
                if self.status.is_server_error() || self.status == StatusCode::TOO_MANY_REQUESTS {
                    Action::RetryLater {
                        after: self.retry_after,
                    }
                } else {
                    Action::Report
                }
            }
        }
    }
}

impl ServerError {
    /// What happened and what to do, in words for a person, for the codes a person causes or can
    /// act on. `None` for the ones only a developer can fix.
    fn advice(&self) -> Option<&'static str> {
        Some(match self.code {
            ErrorCode::AccessDenied => {
                "the authorization server refused the request (the person or a policy said no)"
            }
            ErrorCode::InvalidGrant => {
                "the authorization server no longer accepts this grant (a sign-in that expired or \
                 was revoked, a code already used, a wrong credential). Sign in again, or fix the \
                 credential"
            }
            ErrorCode::ExpiredToken => {
                "the device code expired before the sign-in was approved. Start the sign-in \
                 again and enter the new code before it expires"
            }
            ErrorCode::SlowDown => {
                "the authorization server asked to be asked less often. Wait a little, then try \
                 again"
            }
            ErrorCode::AuthorizationPending => {
                "the sign-in has not been approved yet. Finish it where the code was entered"
            }
            ErrorCode::TemporarilyUnavailable => {
                "the authorization server is busy or briefly down. Try again in a moment"
            }
            ErrorCode::LoginRequired => {
                "you are no longer signed in at the identity provider. Sign in again"
            }
            ErrorCode::ConsentRequired => {
                "the app needs your consent, and this sign-in could not ask for it. Sign in \
                 again interactively and approve the access the app asks for"
            }
            ErrorCode::InteractionRequired => {
                "the identity provider needs you to do something in the browser (a second \
                 factor, new terms to accept). Sign in again interactively"
            }
            ErrorCode::AccountSelectionRequired => {
                "the identity provider needs you to choose an account. Sign in again \
                 interactively and pick one"
            }
            _ => return None,
        })
    }

    /// `(OAuth error `code`: description)`, the protocol's words at the end of a message.
    fn code_suffix(&self) -> String {
        match &self.description {
            Some(d) => format!("(OAuth error `{}`: {d})", self.code),
            None => format!("(OAuth error `{}`)", self.code),
        }
    }

    /// The message for [`Error::AuthorizationDenied`]: for the person first, the code last. A
    /// refusal on the redirect (RFC 6749 §4.1.2.1) is recorded with status `302`; one from the
    /// token endpoint (the device grant) with the endpoint's status.
    pub(crate) fn refusal(&self) -> String {
        let from_browser = self.status == StatusCode::FOUND;
        let what = match (&self.code, from_browser) {
            (ErrorCode::AccessDenied, true) => "the sign-in was cancelled in the browser. To \
                 continue, sign in again and approve the request"
                .to_owned(),
            (ErrorCode::AccessDenied, false) => "the sign-in was declined where the code was \
                 entered. To continue, start the sign-in again and approve the request"
                .to_owned(),
            _ => match self.advice() {
                Some(advice) => format!("the sign-in did not complete: {advice}"),
                None => "the identity provider refused the sign-in".to_owned(),
            },
        };
        format!("{what} {}", self.code_suffix())
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(advice) = self.advice() {
            write!(f, "{advice} ")?;
            return write!(
                f,
                "(the authorization server answered {} with OAuth error `{}`{})",
                self.status.as_u16(),
                self.code,
                self.description
                    .as_deref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            );
        }
        write!(
            f,
            "the authorization server answered {} with error `{}`",
            self.status.as_u16(),
            self.code
        )?;
        if let Some(d) = &self.description {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

/// The `error` codes of RFC 6749 §5.2, RFC 8628 §3.5 and OpenID Connect Core §3.1.2.6; anything
/// else is kept in `Other`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `invalid_request`
    InvalidRequest,
    /// `invalid_client`
    InvalidClient,
    /// `invalid_grant`: the code, refresh token or credentials are invalid, expired or revoked.
    InvalidGrant,
    /// `unauthorized_client`
    UnauthorizedClient,
    /// `unsupported_grant_type`
    UnsupportedGrantType,
    /// `invalid_scope`
    InvalidScope,
    /// `temporarily_unavailable`
    TemporarilyUnavailable,
    /// `server_error`
    ServerError,
    /// `access_denied`
    AccessDenied,
    /// `authorization_pending` (device grant)
    AuthorizationPending,
    /// `slow_down` (device grant)
    SlowDown,
    /// `expired_token` (device grant)
    ExpiredToken,
    /// `login_required` (OpenID Connect Core §3.1.2.6): the person is not signed in at the
    /// identity provider, and the request allowed no prompt.
    LoginRequired,
    /// `consent_required` (OpenID Connect Core §3.1.2.6): the person's consent is needed, and
    /// the request allowed no prompt.
    ConsentRequired,
    /// `interaction_required` (OpenID Connect Core §3.1.2.6): the identity provider needs the
    /// person to act, and the request allowed no prompt.
    InteractionRequired,
    /// `account_selection_required` (OpenID Connect Core §3.1.2.6).
    AccountSelectionRequired,
    /// Any other code, as sent (shortened).
    Other(String),
}

impl ErrorCode {
    /// Parses an `error` value; unknown values are kept.
    pub fn parse(code: &str) -> Self {
        match code {
            "invalid_request" => Self::InvalidRequest,
            "invalid_client" => Self::InvalidClient,
            "invalid_grant" => Self::InvalidGrant,
            "unauthorized_client" => Self::UnauthorizedClient,
            "unsupported_grant_type" => Self::UnsupportedGrantType,
            "invalid_scope" => Self::InvalidScope,
            "temporarily_unavailable" => Self::TemporarilyUnavailable,
            "server_error" => Self::ServerError,
            "access_denied" => Self::AccessDenied,
            "authorization_pending" => Self::AuthorizationPending,
            "slow_down" => Self::SlowDown,
            "expired_token" => Self::ExpiredToken,
            "login_required" => Self::LoginRequired,
            "consent_required" => Self::ConsentRequired,
            "interaction_required" => Self::InteractionRequired,
            "account_selection_required" => Self::AccountSelectionRequired,
            other => Self::Other(other.chars().take(64).collect()),
        }
    }

    /// The code as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::ServerError => "server_error",
            Self::AccessDenied => "access_denied",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::ExpiredToken => "expired_token",
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
            Self::InteractionRequired => "interaction_required",
            Self::AccountSelectionRequired => "account_selection_required",
            Self::Other(s) => s,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A response that was neither a token nor an OAuth error.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResponseError {
    /// What was wrong with it, in a few words.
    pub problem: String,
    /// The HTTP status, when there was a response.
    pub status: Option<StatusCode>,
    /// The `Content-Type` header, as sent (shortened).
    pub content_type: Option<String>,
    /// At most a couple of hundred characters of the body, with known secrets and token-like
    /// JSON members redacted and control characters replaced.
    pub snippet: String,
    /// `Retry-After`, when the response carried one (at most [`MAX_RETRY_AFTER`]).
    pub retry_after: Option<Duration>,
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unexpected response from the authorization server")?;
        if let Some(s) = self.status {
            write!(f, " ({})", s.as_u16())?;
        }
        write!(f, ": {}", self.problem)?;
        if let Some(ct) = &self.content_type {
            write!(f, "; content type {ct:?}")?;
        }
        if !self.snippet.is_empty() {
            write!(f, "; body starts {:?}", self.snippet)?;
        }
        Ok(())
    }
}

/// A request that did not complete: which endpoint it was for, where that endpoint is, what kind
/// of failure it was, and the error underneath.
///
/// `Display` reads like `token endpoint (https://idp.example:443): DNS lookup failed: failed to
/// lookup address information: Name or service not known`. [`source`](std::error::Error::source)
/// walks down to the HTTP client's own error and from there to the I/O or TLS error, for tools
/// that print the whole chain. The origin is `scheme://host:port` only: a path or a query may hold
/// something private and never appears.
///
/// ```
/// use oauth_layer::{Endpoint, Error, TransportErrorKind};
///
/// fn explain(err: &Error) -> String {
///     match err {
///         Error::Transport(t) if t.kind == TransportErrorKind::Dns => {
///             format!("check the host name of the {}", t.endpoint.map_or("server".to_string(), |e| e.to_string()))
///         }
///         Error::Transport(t) if t.endpoint == Some(Endpoint::Token) => "the token endpoint is unreachable".into(),
///         other => other.to_string(),
///     }
/// }
/// # let _ = explain;
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TransportError {
    /// What kind of failure it was.
    pub kind: TransportErrorKind,
    /// Which endpoint the request was for, once the crate knows it (a custom
    /// [`HttpTransport`](crate::transport::HttpTransport) creates its errors without one; the
    /// crate fills it in).
    pub endpoint: Option<Endpoint>,
    /// `scheme://host:port` of the request (never its path or query).
    pub origin: Option<String>,
    /// A description without secrets: the most specific cause the crate found.
    pub message: String,
    /// The underlying error, if any.
    pub source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl TransportError {
    /// A new transport error, for no endpoint yet.
    pub fn new(kind: TransportErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            endpoint: None,
            origin: None,
            message: message.into(),
            source: None,
        }
    }

    /// Keeps `source` as the cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// Keeps an already boxed error as the cause (what tower services and `http-body` give).
    pub fn with_boxed_source(mut self, source: Box<dyn std::error::Error + Send + Sync>) -> Self {
        self.source = Some(Arc::from(source));
        self
    }

    /// Names the endpoint and its origin, unless they are named already.
    pub(crate) fn at(mut self, endpoint: Endpoint, origin: &str) -> Self {
        self.endpoint.get_or_insert(endpoint);
        self.origin.get_or_insert_with(|| origin.to_owned());
        self
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.endpoint, &self.origin) {
            (Some(endpoint), Some(origin)) => write!(f, "{endpoint} ({origin}): ")?,
            (Some(endpoint), None) => write!(f, "{endpoint}: ")?,
            (None, Some(origin)) => write!(f, "{origin}: ")?,
            (None, None) => {}
        }
        write!(f, "{}", self.kind)?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<TransportError> for Error {
    fn from(e: TransportError) -> Self {
        Error::Transport(e)
    }
}

/// The back-channel endpoints the crate talks to, as named in a [`TransportError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// The token endpoint (RFC 6749 §3.2).
    Token,
    /// The discovery document (RFC 8414, OpenID Connect Discovery).
    Discovery,
    /// The issuer's signing keys (`jwks_uri`).
    Jwks,
    /// The device authorization endpoint (RFC 8628 §3.1).
    DeviceAuthorization,
    /// The revocation endpoint (RFC 7009).
    Revocation,
    /// The introspection endpoint (RFC 7662).
    Introspection,
    /// The OpenID Connect userinfo endpoint.
    UserInfo,
    /// A hosted code source polled for an authorization code.
    HostedCodeSource,
    /// A provider's own API read with the token (GitHub's `/user`, for example).
    ProviderApi,
    /// A protected resource's metadata document (RFC 9728).
    ResourceMetadata,
    /// The client registration endpoint (RFC 7591).
    Registration,
    /// A client's configuration endpoint, its `registration_client_uri` (RFC 7592).
    ClientConfiguration,
    /// The pushed authorization request endpoint (RFC 9126).
    PushedAuthorization,
    /// A URL a workload credential is read from ([`crate::credential::UrlSource`]).
    CredentialSource,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Token => "token endpoint",
            Self::Discovery => "discovery document",
            Self::Jwks => "JWKS endpoint",
            Self::DeviceAuthorization => "device authorization endpoint",
            Self::Revocation => "revocation endpoint",
            Self::Introspection => "introspection endpoint",
            Self::UserInfo => "userinfo endpoint",
            Self::HostedCodeSource => "hosted code source",
            Self::ProviderApi => "provider API",
            Self::ResourceMetadata => "protected resource metadata",
            Self::Registration => "registration endpoint",
            Self::ClientConfiguration => "client configuration endpoint",
            Self::PushedAuthorization => "pushed authorization request endpoint",
            Self::CredentialSource => "credential source",
        })
    }
}

/// The kinds of [`TransportError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// The host name did not resolve; the request was not sent.
    Dns,
    /// Nothing accepted the connection (nothing listens on that port, or a firewall said no);
    /// the request was not sent.
    Refused,
    /// The TLS handshake failed (a certificate no trusted authority signed, a name mismatch, an
    /// expired certificate); the request was not sent.
    Tls,
    /// The proxy the HTTP client is configured with could not be reached or refused the
    /// tunnel; the request was not sent.
    Proxy,
    /// The connection could not be made for another reason; the request was not sent.
    Connect,
    /// The deadline for the whole exchange (connect, headers, body) passed.
    Timeout,
    /// The server answered with a redirect; back-channel requests never follow one.
    Redirect,
    /// The response body was larger than the cap.
    BodyTooLarge,
    /// A secret would have gone over plain `http` to a host that is not loopback.
    InsecureUrl,
    /// Anything else (connection reset, protocol error).
    Other,
}

impl TransportErrorKind {
    /// `true` when the request certainly did not reach the server.
    pub fn request_not_sent(self) -> bool {
        matches!(
            self,
            Self::Dns | Self::Refused | Self::Tls | Self::Proxy | Self::Connect | Self::InsecureUrl
        )
    }
}

impl fmt::Display for TransportErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Dns => "DNS lookup failed",
            Self::Refused => "connection refused",
            Self::Tls => "TLS handshake failed",
            Self::Proxy => "proxy failed",
            Self::Connect => "could not connect",
            Self::Timeout => "timed out",
            Self::Redirect => "redirect refused",
            Self::BodyTooLarge => "response body too large",
            Self::InsecureUrl => "refused plain http to a host that is not loopback",
            Self::Other => "request failed",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: StatusCode, code: &str, description: Option<&str>) -> ServerError {
        ServerError {
            status,
            code: ErrorCode::parse(code),
            description: description.map(str::to_owned),
            uri: None,
            retry_after: None,
        }
    }

    #[test]
    fn a_sign_in_cancelled_in_the_browser_reads_as_such_and_ends_with_the_code() {
        let err = Error::AuthorizationDenied(refused(
            StatusCode::FOUND,
            "access_denied",
            Some("The user denied access"),
        ));
        let text = err.to_string();
        assert!(
            text.starts_with("the sign-in was cancelled in the browser."),
            "{text}"
        );
        assert!(text.contains("sign in again"), "{text}");
        assert!(!text.contains("302"), "{text}");
        assert!(
            text.ends_with("(OAuth error `access_denied`: The user denied access)"),
            "{text}"
        );
        assert_eq!(err.action(), Action::Reauthenticate);
    }

    #[test]
    fn a_sign_in_declined_on_the_other_device_says_so() {
        let text =
            Error::AuthorizationDenied(refused(StatusCode::BAD_REQUEST, "access_denied", None))
                .to_string();
        assert!(
            text.starts_with("the sign-in was declined where the code was entered."),
            "{text}"
        );
        assert!(text.ends_with("(OAuth error `access_denied`)"), "{text}");
    }

    #[test]
    fn prompt_none_refusals_say_what_the_person_must_do() {
        for (code, says) in [
            ("login_required", "no longer signed in"),
            ("consent_required", "needs your consent"),
            ("interaction_required", "do something in the browser"),
            ("account_selection_required", "choose an account"),
        ] {
            let denied = refused(StatusCode::FOUND, code, None);
            assert_eq!(denied.code.as_str(), code, "the code is typed and kept");
            assert!(!matches!(denied.code, ErrorCode::Other(_)), "{code}");
            let text = Error::AuthorizationDenied(denied.clone()).to_string();
            assert!(text.contains(says), "{text}");
            assert!(text.contains("Sign in again"), "{text}");
            assert!(text.ends_with(&format!("(OAuth error `{code}`)")), "{text}");
            assert_eq!(denied.action(), Action::Reauthenticate);
        }
    }

    #[test]
    fn device_and_grant_errors_explain_themselves_and_keep_the_protocol_words() {
        for (code, says) in [
            ("expired_token", "device code expired"),
            ("slow_down", "asked less often"),
            ("authorization_pending", "not been approved yet"),
            ("invalid_grant", "Sign in again"),
            ("temporarily_unavailable", "Try again"),
        ] {
            let text = refused(StatusCode::BAD_REQUEST, code, Some("details")).to_string();
            assert!(text.contains(says), "{text}");
            assert!(
                text.ends_with(&format!(
                    "(the authorization server answered 400 with OAuth error `{code}`: details)"
                )),
                "{text}"
            );
        }
        // A code only a developer can act on stays in the protocol's words.
        assert_eq!(
            refused(StatusCode::UNAUTHORIZED, "invalid_client", None).to_string(),
            "the authorization server answered 401 with error `invalid_client`"
        );
        assert_eq!(
            Error::AuthorizationDenied(refused(StatusCode::FOUND, "unknown_thing", None))
                .to_string(),
            "the identity provider refused the sign-in (OAuth error `unknown_thing`)"
        );
    }
}
