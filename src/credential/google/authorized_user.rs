//! Google `authorized_user` files: a person's refresh token, as `gcloud auth
//! application-default login` writes it.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use zeroize::Zeroize;

use crate::client::{AuthMethod, OAuthClient};
use crate::error::{Error, Result};
use crate::flow::RefreshToken;
use crate::source::TokenSource;

/// Google's token endpoint, for files that do not name one.
const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// An `authorized_user` credentials file: an OAuth client (`client_id`, `client_secret`) and a
/// person's `refresh_token`, renewed with the refresh grant at `token_uri` (Google's token
/// endpoint when absent). The secret and the refresh token never appear in `Debug` or errors.
///
/// ```
/// use oauth_layer::credential::google::AuthorizedUser;
///
/// let user = AuthorizedUser::from_json(r#"{"type": "authorized_user",
///     "client_id": "id.apps.googleusercontent.com", "client_secret": "the-secret",
///     "refresh_token": "1//the-refresh-token"}"#)?;
/// assert_eq!(user.token_uri(), "https://oauth2.googleapis.com/token");
/// assert!(!format!("{user:?}").contains("the-refresh-token"));
/// # Ok::<(), oauth_layer::Error>(())
/// ```
#[derive(Clone)]
pub struct AuthorizedUser {
    client_id: String,
    client_secret: SecretString,
    refresh_token: SecretString,
    token_uri: String,
}

#[derive(Deserialize)]
struct UserFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
    token_uri: Option<String>,
}

impl Drop for UserFile {
    fn drop(&mut self) {
        for secret in [&mut self.client_secret, &mut self.refresh_token]
            .into_iter()
            .flatten()
        {
            secret.zeroize();
        }
    }
}

impl AuthorizedUser {
    /// Parses an `authorized_user` file's JSON; refuses any other `type`, and a file without
    /// `client_id`, `client_secret` or `refresh_token`.
    pub fn from_json(json: &str) -> Result<Self> {
        let fail = |reason: &str| Error::Credential {
            origin: "authorized_user credentials".into(),
            reason: reason.to_owned(),
        };
        // serde_json's messages can quote the input, so keep only where the problem is.
        let mut file: UserFile = serde_json::from_str(json).map_err(|e| Error::Credential {
            origin: "authorized_user credentials".into(),
            reason: format!(
                "not valid JSON of the expected shape (line {}, column {})",
                e.line(),
                e.column()
            ),
        })?;
        if file.kind.as_deref() != Some("authorized_user") {
            return Err(fail("the type is not authorized_user"));
        }
        let client_id = file
            .client_id
            .take()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| fail("no client_id"))?;
        let client_secret = file
            .client_secret
            .take()
            .filter(|v| !v.is_empty())
            .map(SecretString::from)
            .ok_or_else(|| fail("no client_secret"))?;
        let refresh_token = file
            .refresh_token
            .take()
            .filter(|v| !v.is_empty())
            .map(SecretString::from)
            .ok_or_else(|| fail("no refresh_token"))?;
        let token_uri = file
            .token_uri
            .take()
            .unwrap_or_else(|| GOOGLE_TOKEN_URI.to_owned());
        let user = Self {
            client_id,
            client_secret,
            refresh_token,
            token_uri,
        };
        // Check the endpoint now (https, or http to loopback) rather than at the first request.
        user.client()?;
        Ok(user)
    }

    /// The OAuth client's id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    pub(crate) fn refresh_token(&self) -> &SecretString {
        &self.refresh_token
    }

    /// The token endpoint the refresh token is used at.
    pub fn token_uri(&self) -> &str {
        &self.token_uri
    }

    /// The client: `client_id` and `client_secret` sent in the form (`client_secret_post`, as
    /// Google's own libraries do), at [`token_uri`](Self::token_uri).
    pub fn client(&self) -> Result<OAuthClient> {
        OAuthClient::builder(self.client_id.as_str())
            .secret(self.client_secret.expose_secret())
            .auth_method(AuthMethod::ClientSecretPost)
            .token_url(&self.token_uri)
            .build()
    }

    /// A token source renewing the refresh token. No scope is sent: the refresh token keeps the
    /// scopes the person granted.
    pub fn token_source(&self) -> Result<TokenSource> {
        Ok(TokenSource::new(
            self.client()?,
            RefreshToken::new(self.refresh_token.expose_secret()),
        ))
    }
}

impl fmt::Debug for AuthorizedUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizedUser")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("refresh_token", &"[redacted]")
            .field("token_uri", &self.token_uri)
            .finish()
    }
}
