//! Token revocation (RFC 7009): telling the server a token is no longer needed.
//!
//! SECURITY.md rule 39: the request carries `token_type_hint`; a 200 is success whatever the
//! body (RFC 7009 §2.2: the server answers 200 for an unknown or already invalid token too);
//! [`TokenSource::revoke`](crate::TokenSource::revoke) purges its local copies whatever the
//! server said.

use http::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::OAuthClient;
use crate::error::{Error, Result};
use crate::redact::Secrets;

/// What kind of token is being revoked or introspected (`token_type_hint`, RFC 7009 §2.1 and
/// RFC 7662 §2.1). It helps the server find the token; a server that looks elsewhere first still
/// finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenTypeHint {
    /// `access_token`
    AccessToken,
    /// `refresh_token`
    RefreshToken,
}

impl TokenTypeHint {
    /// The hint as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessToken => "access_token",
            Self::RefreshToken => "refresh_token",
        }
    }
}

impl OAuthClient {
    /// Revokes `token` at the revocation endpoint (RFC 7009), sending `token_type_hint` and the
    /// client's authentication.
    ///
    /// - Any 2xx answer is success, whatever the body (HTML, empty, JSON).
    /// - A 503 with a `Retry-After` no longer than the [`RetryPolicy`](crate::RetryPolicy)'s
    ///   `max_retry_after` is retried once after that wait (revocation is idempotent), unless
    ///   the policy allows a single attempt. Nothing else is retried.
    /// - Any other answer is an error: [`Error::Server`] for an OAuth error such as
    ///   `unsupported_token_type`, [`Error::UnexpectedResponse`] otherwise.
    /// - Without a revocation endpoint, [`Error::Config`] and no request.
    ///
    /// The token never appears in errors or logs, even if the server echoes it.
    ///
    /// ```no_run
    /// use oauth_layer::OAuthClient;
    /// use oauth_layer::client::TokenTypeHint;
    /// use secrecy::SecretString;
    ///
    /// # async fn run(refresh_token: SecretString) -> oauth_layer::Result<()> {
    /// let client = OAuthClient::builder("my-client-id")
    ///     .secret("s3cret")
    ///     .revocation_url("https://idp.example/oauth/revoke")
    ///     .build()?;
    /// client.revoke(&refresh_token, TokenTypeHint::RefreshToken).await?;
    /// # Ok(()) }
    /// ```
    pub async fn revoke(&self, token: &SecretString, hint: TokenTypeHint) -> Result<()> {
        let url = self
            .revocation_url()
            .ok_or_else(|| Error::config("no revocation URL configured"))?;
        let retry = self.inner.retry;
        let mut attempt = 1;
        loop {
            let err = match self.revoke_once(url, token, hint).await {
                Ok(()) => return Ok(()),
                Err(err) => err,
            };
            let status = match &err {
                Error::Server(e) => Some(e.status),
                Error::UnexpectedResponse(e) => e.status,
                _ => None,
            };
            let wait = err
                .retry_after()
                .filter(|after| *after <= retry.max_retry_after);
            match wait {
                Some(wait)
                    if attempt == 1
                        && retry.max_attempts > 1
                        && status == Some(StatusCode::SERVICE_UNAVAILABLE) =>
                {
                    tracing::debug!(
                        hint = hint.as_str(),
                        wait_ms = wait.as_millis() as u64,
                        "revocation endpoint unavailable; retrying once"
                    );
                    self.inner.clock.sleep(wait).await;
                    attempt += 1;
                }
                _ => return Err(err),
            }
        }
    }

    async fn revoke_once(
        &self,
        url: &Url,
        token: &SecretString,
        hint: TokenTypeHint,
    ) -> Result<()> {
        let mut secrets = Secrets::default();
        secrets.add(token.expose_secret());
        let request = self
            .authenticated_form(
                url,
                |form| {
                    form.append_pair("token", token.expose_secret());
                    form.append_pair("token_type_hint", hint.as_str());
                },
                &mut secrets,
            )
            .await?;
        tracing::debug!(
            endpoint = %url.origin().ascii_serialization(),
            hint = hint.as_str(),
            "revocation request"
        );
        let response = self
            .exchange(crate::error::Endpoint::Revocation, request)
            .await?;
        tracing::debug!(status = response.status.as_u16(), "revocation response");
        if response.status.is_success() {
            return Ok(());
        }
        let map = response.json_object(&secrets)?;
        response.check_oauth(&map, &secrets)?;
        // check_oauth fails on every status that is not a success; kept for the type checker.
        Err(response.unexpected("revocation failed", &secrets))
    }
}
