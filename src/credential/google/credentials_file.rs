//! Google's credentials files, loaded by type: the caller names the types it expects, and a
//! file of any other type is refused before anything in it is used.

use std::fmt;
use std::io::Read;
use std::path::Path;

use secrecy::ExposeSecret;
use serde::Deserialize;
use zeroize::Zeroize;

use super::ExternalAccount;
use super::authorized_user::AuthorizedUser;
use crate::error::{Error, Result};
use crate::flow::ServiceAccount;
use crate::source::TokenSource;

/// The largest credentials file read (64 KiB; a service account key is about 2 KiB).
pub const MAX_CREDENTIALS_FILE_BYTES: u64 = 64 * 1024;

/// The `type` of a Google credentials file.
///
/// [`GoogleCredentials`] loads the first three; the others are recognised so that the error
/// says what the file is, and refused as unsupported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CredentialType {
    /// A service account key (`service_account`): a private key signing JWT bearer assertions.
    ServiceAccount,
    /// A person's refresh token from `gcloud auth application-default login`
    /// (`authorized_user`).
    AuthorizedUser,
    /// Workload identity federation (`external_account`): a platform token traded at Google's
    /// security token service.
    ExternalAccount,
    /// Service account impersonation (`impersonated_service_account`). Not supported.
    ImpersonatedServiceAccount,
    /// Workforce identity federation with a refresh token
    /// (`external_account_authorized_user`). Not supported.
    ExternalAccountAuthorizedUser,
}

impl CredentialType {
    /// The types this crate can turn into a token source, the default of
    /// [`ApplicationDefault`](super::ApplicationDefault).
    pub const SUPPORTED: &'static [CredentialType] = &[
        CredentialType::ServiceAccount,
        CredentialType::AuthorizedUser,
        CredentialType::ExternalAccount,
    ];

    /// The name in the file's `type` member.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ServiceAccount => "service_account",
            Self::AuthorizedUser => "authorized_user",
            Self::ExternalAccount => "external_account",
            Self::ImpersonatedServiceAccount => "impersonated_service_account",
            Self::ExternalAccountAuthorizedUser => "external_account_authorized_user",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        [
            Self::ServiceAccount,
            Self::AuthorizedUser,
            Self::ExternalAccount,
            Self::ImpersonatedServiceAccount,
            Self::ExternalAccountAuthorizedUser,
        ]
        .into_iter()
        .find(|t| t.as_str() == name)
    }

    fn is_supported(self) -> bool {
        Self::SUPPORTED.contains(&self)
    }
}

impl fmt::Display for CredentialType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Google credentials file of a type the caller expected, ready to become a token source.
///
/// The caller names the types it accepts: a file of another type is refused with an error that
/// names the type found (and nothing else from the file), so a file swapped for another kind
/// (an `external_account` file whose source runs a program, where a service account key was
/// expected) is never used. Errors never quote the file's content; `Debug` shows no secret.
///
/// ```
/// use oauth_layer::credential::google::{CredentialType, GoogleCredentials};
///
/// let json = r#"{"type": "authorized_user", "client_id": "id.apps.googleusercontent.com",
///                "client_secret": "the-secret", "refresh_token": "1//the-refresh-token"}"#;
/// let user = GoogleCredentials::from_json(json, &[CredentialType::AuthorizedUser])?;
/// assert_eq!(user.credential_type(), CredentialType::AuthorizedUser);
/// assert!(!format!("{user:?}").contains("the-secret"));
///
/// let refused = GoogleCredentials::from_json(json, &[CredentialType::ServiceAccount]).unwrap_err();
/// assert!(refused.to_string().contains("authorized_user"));
/// let tokens = user.token_source("https://www.googleapis.com/auth/cloud-platform")?;
/// # let _ = tokens;
/// # Ok::<(), oauth_layer::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct GoogleCredentials {
    kind: Kind,
    origin: String,
    allow_executables: bool,
}

#[derive(Debug, Clone)]
enum Kind {
    ServiceAccount(ServiceAccount),
    AuthorizedUser(AuthorizedUser),
    ExternalAccount(Box<ExternalAccount>),
}

/// Only the `type` member; everything else is read by the type's own parser.
#[derive(Deserialize)]
struct TypeOnly {
    #[serde(rename = "type")]
    kind: Option<serde_json::Value>,
}

impl GoogleCredentials {
    /// Parses a credentials file's JSON, accepting only the `expected` types.
    pub fn from_json(json: &str, expected: &[CredentialType]) -> Result<Self> {
        Self::parse(json, expected, "Google credentials JSON".to_owned())
    }

    /// Reads and parses a credentials file (a small blocking read: call it at start-up, not
    /// inside a request), accepting only the `expected` types.
    pub fn from_file(path: impl AsRef<Path>, expected: &[CredentialType]) -> Result<Self> {
        let path = path.as_ref();
        let origin = format!("Google credentials file {}", path.display());
        let mut json = String::new();
        // Only a regular file, checked before opening (opening a FIFO blocks until a writer
        // comes) and again on the opened file (the path may have been swapped in between).
        let regular = |metadata: std::fs::Metadata| {
            if metadata.is_file() {
                Ok(())
            } else {
                Err(std::io::Error::other("it is not a regular file"))
            }
        };
        let read = std::fs::metadata(path)
            .and_then(regular)
            .and_then(|()| std::fs::File::open(path))
            .and_then(|f| {
                regular(f.metadata()?)?;
                f.take(MAX_CREDENTIALS_FILE_BYTES + 1)
                    .read_to_string(&mut json)
            });
        let result = match read {
            Ok(_) => Self::parse(&json, expected, origin),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(Error::Credential {
                origin,
                reason: "the file is not UTF-8".into(),
            }),
            Err(e) => Err(Error::Credential {
                origin,
                reason: format!("cannot read it: {e}"),
            }),
        };
        json.zeroize();
        result
    }

    fn parse(json: &str, expected: &[CredentialType], origin: String) -> Result<Self> {
        let fail = |reason: String| Error::Credential {
            origin: origin.clone(),
            reason,
        };
        if json.len() as u64 > MAX_CREDENTIALS_FILE_BYTES {
            return Err(fail(format!(
                "it is larger than {MAX_CREDENTIALS_FILE_BYTES} bytes"
            )));
        }
        // serde_json's messages can quote the input, so keep only where the problem is.
        let probe: TypeOnly = serde_json::from_str(json).map_err(|e| {
            fail(format!(
                "it is not a JSON object (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let found = match probe.kind {
            Some(serde_json::Value::String(name)) => match CredentialType::parse(&name) {
                Some(found) => found,
                // The name is the file's content: say only that it is unknown, and its shape
                // when it looks like a type name.
                None if name.len() <= 64
                    && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') =>
                {
                    return Err(fail(format!(
                        "its type {name:?} is not a known credential type"
                    )));
                }
                None => return Err(fail("its type is not a known credential type".into())),
            },
            Some(_) => return Err(fail("its type member is not a string".into())),
            None => return Err(fail("it has no type member".into())),
        };
        if !expected.contains(&found) {
            let accepted = expected
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(fail(format!(
                "it is of type {found}, which this caller does not accept (expected: {})",
                if accepted.is_empty() {
                    "none"
                } else {
                    &accepted
                }
            )));
        }
        if !found.is_supported() {
            return Err(fail(format!(
                "credentials of type {found} are not supported by this crate (supported: \
                 service_account, authorized_user, external_account)"
            )));
        }
        let kind = match found {
            CredentialType::ServiceAccount => {
                ServiceAccount::from_json(json).map(Kind::ServiceAccount)
            }
            CredentialType::AuthorizedUser => {
                AuthorizedUser::from_json(json).map(Kind::AuthorizedUser)
            }
            _ => ExternalAccount::from_json(json)
                .map(|account| Kind::ExternalAccount(Box::new(account))),
        }
        .map_err(|e| match e {
            Error::Credential { reason, .. } => fail(reason),
            other => fail(other.to_string()),
        })?;
        Ok(Self {
            kind,
            origin,
            allow_executables: false,
        })
    }

    /// The file's type.
    pub fn credential_type(&self) -> CredentialType {
        match self.kind {
            Kind::ServiceAccount(_) => CredentialType::ServiceAccount,
            Kind::AuthorizedUser(_) => CredentialType::AuthorizedUser,
            Kind::ExternalAccount(_) => CredentialType::ExternalAccount,
        }
    }

    /// Whether an `external_account` file whose `credential_source` is an executable may run
    /// it (off by default). Other types ignore it.
    #[must_use]
    pub fn allow_executables(mut self, allow: bool) -> Self {
        self.allow_executables = allow;
        self
    }

    /// Who the credentials are, for logs and errors: the type and the account email or client
    /// id (for `external_account`, the pool's audience and the impersonated account), never a
    /// secret.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::ServiceAccount(account) => format!("service_account {}", account.email()),
            Kind::AuthorizedUser(user) => format!("authorized_user {}", user.client_id()),
            Kind::ExternalAccount(account) => match account.service_account_email() {
                Some(email) => format!("external_account {} as {email}", account.audience()),
                None => format!("external_account {}", account.audience()),
            },
        }
    }

    /// A token source for Google APIs with `scopes` (space separated). An `authorized_user`
    /// refresh token keeps the scopes it was granted with (Google refreshes it as granted), so
    /// for that type `scopes` is not sent.
    pub fn token_source(&self, scopes: impl Into<String>) -> Result<TokenSource> {
        let scopes = scopes.into();
        match &self.kind {
            // The identity part of the cache key says who the tokens are for.
            Kind::ServiceAccount(account) => Ok(TokenSource::builder(
                account.client()?,
                account.flow(scopes),
            )
            .identity(self.describe())
            .build()),
            Kind::AuthorizedUser(user) => Ok(TokenSource::builder(
                user.client()?,
                crate::flow::RefreshToken::new(user.refresh_token().expose_secret()),
            )
            .identity(self.describe())
            .build()),
            Kind::ExternalAccount(account) => account
                .clone()
                .allow_executables(self.allow_executables)
                .token_source(scopes),
        }
    }

    /// Where the credentials were read from (a path), for messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }
}
