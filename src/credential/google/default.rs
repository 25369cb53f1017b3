//! Google's application default credentials: the first of `GOOGLE_APPLICATION_CREDENTIALS`, the
//! gcloud file and the metadata server that is there.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{CredentialType, GoogleCredentials, MetadataServer};
use crate::error::{Error, Result};
use crate::flow::Scopes;
use crate::source::TokenSource;

/// The environment variable naming a credentials file.
const ENV_FILE: &str = "GOOGLE_APPLICATION_CREDENTIALS";

/// The file `gcloud auth application-default login` writes, in gcloud's configuration
/// directory.
const GCLOUD_FILE: &str = "application_default_credentials.json";

type Lookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Google's application default credentials (ADC), found as Google's own libraries and
/// gcp_auth find them, in this order:
///
/// 1. the credentials file named by `GOOGLE_APPLICATION_CREDENTIALS`;
/// 2. gcloud's `application_default_credentials.json`, in `$CLOUDSDK_CONFIG`, else
///    `$HOME/.config/gcloud` (`%APPDATA%\gcloud` on Windows);
/// 3. the [metadata server](MetadataServer) (on Google Cloud), if its probe gets an answer.
///
/// The first that is there is used. Each step that is skipped says why in a `tracing` debug
/// event, and when none is there the error lists every step with its reason. A step that is
/// there but broken (a `GOOGLE_APPLICATION_CREDENTIALS` naming a missing, unreadable or invalid
/// file, a gcloud file of a type not accepted) stops the search with an error, as in Google's
/// libraries: falling through would silently run the program as another identity (the VM's
/// service account instead of the one configured), which is harder to notice and may hold other
/// permissions.
///
/// Files of the types in [`CredentialType::SUPPORTED`] are accepted by default;
/// [`credential_types`](Self::credential_types) narrows that. An `external_account` file whose
/// source runs a program runs it only when
/// [`allow_executables`](Self::allow_executables) says so or, when the caller did not say,
/// when `GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES` is `1` (Google's switch for the same thing).
///
/// The README's example:
///
/// ```no_run
/// use oauth_layer::credential::google::{ApplicationDefault, CredentialType, GoogleCredentials};
///
/// # async fn run() -> oauth_layer::Result<()> {
/// // Whatever this machine has: a key file, gcloud's login, or the VM's service account.
/// let tokens = ApplicationDefault::new()
///     .scope("https://www.googleapis.com/auth/cloud-platform")
///     .token_source()
///     .await?;
/// let bearer = tokens.token().await?;
///
/// // One file, of the types you expect: any other type is refused, naming the type found.
/// let pubsub = GoogleCredentials::from_file("sa.json", &[CredentialType::ServiceAccount])?
///     .token_source("https://www.googleapis.com/auth/pubsub")?;
/// # let _ = (bearer, pubsub); Ok(()) }
/// ```
///
/// Tests and programs configured from elsewhere read the environment through a closure, so
/// the process environment is never touched:
///
/// ```
/// use oauth_layer::credential::google::ApplicationDefault;
///
/// let adc = ApplicationDefault::from_env_lookup(|name| match name {
///     "GOOGLE_APPLICATION_CREDENTIALS" => Some("/etc/secrets/google.json".into()),
///     _ => None,
/// });
/// # let _ = adc;
/// ```
#[derive(Clone)]
pub struct ApplicationDefault {
    lookup: Lookup,
    metadata: Option<MetadataServer>,
    scopes: Scopes,
    types: Vec<CredentialType>,
    allow_executables: Option<bool>,
}

/// Where the application default credentials were found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DefaultSource {
    /// The file named by `GOOGLE_APPLICATION_CREDENTIALS`.
    EnvironmentFile(PathBuf),
    /// gcloud's `application_default_credentials.json`.
    GcloudFile(PathBuf),
    /// The metadata server at this host.
    MetadataServer(String),
}

impl fmt::Display for DefaultSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EnvironmentFile(path) => write!(f, "{ENV_FILE} file {}", path.display()),
            Self::GcloudFile(path) => write!(f, "gcloud file {}", path.display()),
            Self::MetadataServer(host) => write!(f, "metadata server http://{host}"),
        }
    }
}

/// The credentials [`ApplicationDefault`] found, and where.
#[derive(Debug, Clone)]
pub struct DefaultCredentials {
    source: DefaultSource,
    found: Found,
}

#[derive(Debug, Clone)]
enum Found {
    File(GoogleCredentials),
    Metadata(MetadataServer),
}

impl DefaultCredentials {
    /// Where they were found.
    pub fn source(&self) -> &DefaultSource {
        &self.source
    }

    /// The file's type, or `None` for the metadata server.
    pub fn credential_type(&self) -> Option<CredentialType> {
        match &self.found {
            Found::File(file) => Some(file.credential_type()),
            Found::Metadata(_) => None,
        }
    }

    /// Which identity they are, for logs: where they were found and who they are (a service
    /// account's email, a client id), never a secret.
    pub fn describe(&self) -> String {
        match &self.found {
            Found::File(file) => format!("{} ({})", file.describe(), self.source),
            Found::Metadata(_) => format!("default service account ({})", self.source),
        }
    }

    /// A token source for `scopes` (space separated). Its cache key holds the chosen identity
    /// (the `identity` part), so tokens of one never serve another.
    pub fn token_source(&self, scopes: impl Into<String>) -> Result<TokenSource> {
        match &self.found {
            Found::File(file) => file.token_source(scopes),
            Found::Metadata(server) => {
                Ok(TokenSource::builder(server.client()?, server.flow(scopes))
                    .identity(format!("adc {}", self.source))
                    .build())
            }
        }
    }
}

impl ApplicationDefault {
    /// The chain over the process environment.
    pub fn new() -> Self {
        Self::from_env_lookup(|name| std::env::var(name).ok())
    }

    /// The chain with the environment (`GOOGLE_APPLICATION_CREDENTIALS`, `CLOUDSDK_CONFIG`,
    /// `HOME`, `APPDATA`, `GCE_METADATA_HOST`, `GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES`) read
    /// through `lookup`.
    pub fn from_env_lookup(
        lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        Self {
            lookup: Arc::new(lookup),
            metadata: None,
            scopes: Scopes::default(),
            types: CredentialType::SUPPORTED.to_vec(),
            allow_executables: None,
        }
    }

    /// Adds scopes (space separated) for the token source.
    #[must_use]
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.add(scope);
        self
    }

    /// The metadata server to ask in step 3, instead of the one `GCE_METADATA_HOST` or the
    /// default address names (a local fake in tests, other deadlines).
    #[must_use]
    pub fn metadata_server(mut self, server: MetadataServer) -> Self {
        self.metadata = Some(server);
        self
    }

    /// The credential file types accepted in steps 1 and 2 ([`CredentialType::SUPPORTED`] by
    /// default). A file of another type stops the search with an error naming its type.
    #[must_use]
    pub fn credential_types(mut self, types: &[CredentialType]) -> Self {
        self.types = types.to_vec();
        self
    }

    /// Whether an `external_account` file may run the program its source names. Unset, it
    /// follows `GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1`.
    #[must_use]
    pub fn allow_executables(mut self, allow: bool) -> Self {
        self.allow_executables = Some(allow);
        self
    }

    /// Finds the credentials: the first step that is there (see the type's documentation).
    pub async fn find(&self) -> Result<DefaultCredentials> {
        let mut tried: Vec<String> = Vec::new();

        // 1. GOOGLE_APPLICATION_CREDENTIALS
        match self.var(ENV_FILE) {
            Some(path) => {
                let path = PathBuf::from(path);
                return match self.load(&path).await {
                    Ok(file) => Ok(self.chose(DefaultSource::EnvironmentFile(path), file)),
                    Err(e) => {
                        tried.push(format!("{ENV_FILE} names {}: {e}", path.display()));
                        Err(self.stop(&tried))
                    }
                };
            }
            None => self.skip(&mut tried, ENV_FILE, "it is not set".into()),
        }

        // 2. gcloud's file
        match self.gcloud_file() {
            Err(why) => self.skip(&mut tried, "gcloud file", why),
            Ok(path) => match std::fs::symlink_metadata(&path) {
                // A stat, not a read: cheap enough for the async thread.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let why = format!("there is no file {}", path.display());
                    self.skip(&mut tried, "gcloud file", why);
                }
                _ => {
                    return match self.load(&path).await {
                        Ok(file) => Ok(self.chose(DefaultSource::GcloudFile(path), file)),
                        Err(e) => {
                            tried.push(format!("gcloud file {}: {e}", path.display()));
                            Err(self.stop(&tried))
                        }
                    };
                }
            },
        }

        // 3. the metadata server
        let server = match &self.metadata {
            Some(server) => Ok(server.clone()),
            None => MetadataServer::from_env_lookup(|name| self.var(name)),
        };
        match server {
            Err(e) => self.skip(&mut tried, "metadata server", e.to_string()),
            Ok(server) => match server.probe().await {
                Ok(()) => {
                    let source = DefaultSource::MetadataServer(server.host().to_owned());
                    tracing::debug!(source = %source, "Google application default credentials found");
                    return Ok(DefaultCredentials {
                        source,
                        found: Found::Metadata(server),
                    });
                }
                Err(e) => {
                    let step = format!("metadata server http://{}", server.host());
                    self.skip(&mut tried, &step, e.to_string());
                }
            },
        }

        Err(Error::Credential {
            origin: "Google application default credentials".into(),
            reason: format!("none found; tried {}", tried.join("; ")),
        })
    }

    /// [`find`](Self::find), then a token source for the scopes given with
    /// [`scope`](Self::scope): the one call a program needs.
    pub async fn token_source(&self) -> Result<TokenSource> {
        self.find().await?.token_source(self.scopes.joined())
    }

    fn var(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    fn skip(&self, tried: &mut Vec<String>, step: &str, why: String) {
        tracing::debug!(step, reason = %why, "Google application default credentials: step skipped");
        tried.push(format!("{step}: {why}"));
    }

    fn stop(&self, tried: &[String]) -> Error {
        Error::Credential {
            origin: "Google application default credentials".into(),
            reason: format!(
                "{} (the search stops at a configured but unusable credential rather than fall \
                 back to another identity)",
                tried.join("; ")
            ),
        }
    }

    fn chose(&self, source: DefaultSource, file: GoogleCredentials) -> DefaultCredentials {
        tracing::debug!(
            source = %source,
            identity = %file.describe(),
            "Google application default credentials found"
        );
        DefaultCredentials {
            source,
            found: Found::File(file),
        }
    }

    /// gcloud's file, or why there is none to look at.
    fn gcloud_file(&self) -> std::result::Result<PathBuf, String> {
        if let Some(dir) = self.var("CLOUDSDK_CONFIG") {
            return Ok(Path::new(&dir).join(GCLOUD_FILE));
        }
        if cfg!(windows) {
            self.var("APPDATA")
                .map(|dir| Path::new(&dir).join("gcloud").join(GCLOUD_FILE))
                .ok_or_else(|| "neither CLOUDSDK_CONFIG nor APPDATA is set".to_owned())
        } else {
            self.var("HOME")
                .map(|dir| Path::new(&dir).join(".config/gcloud").join(GCLOUD_FILE))
                .ok_or_else(|| "neither CLOUDSDK_CONFIG nor HOME is set".to_owned())
        }
    }

    /// Loads a credentials file off the async threads (a small blocking read).
    async fn load(&self, path: &Path) -> Result<GoogleCredentials> {
        let allow = self.allow_executables.unwrap_or_else(|| {
            self.var("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES")
                .as_deref()
                == Some("1")
        });
        let path = path.to_owned();
        let types = self.types.clone();
        tokio::task::spawn_blocking(move || GoogleCredentials::from_file(path, &types))
            .await
            .map_err(|e| Error::Internal(format!("reading the credentials file failed: {e}")))?
            .map(|file| file.allow_executables(allow))
    }
}

impl Default for ApplicationDefault {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ApplicationDefault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApplicationDefault")
            .field("metadata", &self.metadata)
            .field("scopes", &self.scopes)
            .field("types", &self.types)
            .field("allow_executables", &self.allow_executables)
            .finish_non_exhaustive()
    }
}
