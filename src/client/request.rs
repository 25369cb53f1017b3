//! One request to the token endpoint, as a grant describes it.

use std::borrow::Cow;
use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use super::Resend;

/// One request to the token endpoint: the grant type and its parameters. Client authentication
/// is added by [`OAuthClient`](super::OAuthClient). Secret parameters never show in `Debug`.
///
/// ```
/// use oauth_layer::{Resend, TokenRequest};
///
/// let req = TokenRequest::new("urn:example:grant")
///     .param("scope", "read")
///     .secret_param("assertion", "xyz-secret")
///     .resend(Resend::Always);
/// assert!(!format!("{req:?}").contains("xyz-secret"));
/// ```
#[derive(Clone)]
#[must_use]
pub struct TokenRequest {
    pub(super) grant_type: Cow<'static, str>,
    pub(super) params: Vec<(Cow<'static, str>, Param)>,
    pub(super) requested_scope: Option<String>,
    pub(super) resend: Resend,
}

#[derive(Clone)]
pub(super) enum Param {
    Plain(String),
    Secret(SecretString),
}

impl Param {
    pub(super) fn expose(&self) -> &str {
        match self {
            Param::Plain(s) => s,
            Param::Secret(s) => s.expose_secret(),
        }
    }
}

impl TokenRequest {
    /// A request for `grant_type`; by default never sent twice ([`Resend::Never`]).
    pub fn new(grant_type: impl Into<Cow<'static, str>>) -> Self {
        Self {
            grant_type: grant_type.into(),
            params: Vec::new(),
            requested_scope: None,
            resend: Resend::Never,
        }
    }

    /// Adds a form parameter.
    pub fn param(mut self, name: impl Into<Cow<'static, str>>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), Param::Plain(value.into())));
        self
    }

    /// Adds a form parameter whose value is secret (a password, a refresh token, an assertion).
    pub fn secret_param(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<SecretString>,
    ) -> Self {
        self.params.push((name.into(), Param::Secret(value.into())));
        self
    }

    /// Adds `scope` (space separated) and remembers it as the requested scope: a response
    /// without `scope` means this was granted (RFC 6749 §5.1).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        let scope = scope.into();
        if !scope.is_empty() {
            self.requested_scope = Some(scope.clone());
            self.params.push(("scope".into(), Param::Plain(scope)));
        }
        self
    }

    /// Remembers `scope` as the requested scope without sending it (a code exchange, whose
    /// scope was asked for in the authorization request).
    pub fn requested_scope(mut self, scope: impl Into<String>) -> Self {
        self.requested_scope = Some(scope.into());
        self
    }

    /// Whether the request may be sent again after a failure.
    pub fn resend(mut self, resend: Resend) -> Self {
        self.resend = resend;
        self
    }

    /// The grant type.
    pub fn grant_type(&self) -> &str {
        &self.grant_type
    }
}

impl fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let params: Vec<(&str, &str)> = self
            .params
            .iter()
            .map(|(k, v)| {
                (
                    k.as_ref(),
                    match v {
                        Param::Plain(s) => s.as_str(),
                        Param::Secret(_) => "[redacted]",
                    },
                )
            })
            .collect();
        f.debug_struct("TokenRequest")
            .field("grant_type", &self.grant_type)
            .field("params", &params)
            .field("resend", &self.resend)
            .finish()
    }
}
