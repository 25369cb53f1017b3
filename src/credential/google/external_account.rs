//! Google `external_account` credentials (workload identity federation): a platform token
//! (a Kubernetes service-account token, a GitHub Actions OIDC token, a program's output)
//! traded at Google's security token service, optionally for a service account's token.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use super::executable::{self, Executable, ExecutableConfig};
use super::federation::{CLOUD_PLATFORM, Federation};
use super::impersonation::{self, Impersonation};
use super::trusted_endpoint::{self, GOOGLE_UNIVERSE};
use crate::client::{OAuthClient, OAuthClientBuilder};
use crate::credential::{
    CredentialSource, FileSource, MAX_CREDENTIAL_BYTES, ResponseFormat, UrlSource,
};
use crate::error::{Error, Result};
use crate::source::TokenSource;

/// The `type` of the credential files this loader reads.
const TYPE: &str = "external_account";

/// Google's security token service.
const STS_URL: &str = "https://sts.googleapis.com/v1/token";

/// An `external_account` credential: how to obtain a Google access token from a token the
/// platform gives the workload, with no long-lived secret in the service.
///
/// Load one from the JSON file `gcloud iam workload-identity-pools create-cred-config` writes
/// ([`from_file`](Self::from_file)), or build one in code for the common case
/// ([`workload_identity_federation`](Self::workload_identity_federation)). Then ask for a
/// [`TokenSource`] with the scopes you need.
///
/// What is refused, and why:
///
/// - a file whose `type` is not `external_account`: a loader handed a service account key or a
///   user's refresh token by mistake, or by someone else, says so rather than using it;
/// - a `credential_source.executable`, until the caller says
///   [`allow_executables(true)`](Self::allow_executables): a credential file is data, and data
///   from someone else must not run programs. [`token_source`](Self::token_source) fails before
///   anything runs (loading succeeds, since the caller may allow executables after loading);
/// - a `token_url` or `service_account_impersonation_url` off Google's domain (SECURITY.md):
///   both receive the workload's tokens;
/// - AWS sources (`environment_id` `aws1`): AWS signs requests with SigV4, which is not OAuth
///   and not in this crate.
///
/// The file's `quota_project_id` is not sent by the token source (it is a header of the API
/// calls); read it with [`quota_project_id`](Self::quota_project_id) to send
/// `x-goog-user-project` yourself.
///
/// ```
/// use oauth_layer::credential::google::ExternalAccount;
///
/// let account = ExternalAccount::from_json(r#"{
///   "type": "external_account",
///   "audience": "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/pool/providers/k8s",
///   "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
///   "token_url": "https://sts.googleapis.com/v1/token",
///   "credential_source": { "file": "/var/run/secrets/tokens/gcp" }
/// }"#)?;
/// let source = account.token_source("https://www.googleapis.com/auth/devstorage.read_only")?;
/// # let _ = source;
/// # Ok::<(), oauth_layer::Error>(())
/// ```
///
/// The README's example: a file, and Kubernetes' projected token traded for a service
/// account's token without one.
///
/// ```
/// use oauth_layer::credential::FileSource;
/// use oauth_layer::credential::google::ExternalAccount;
///
/// # fn run() -> oauth_layer::Result<()> {
/// // A credential file.
/// let storage = ExternalAccount::from_file("/etc/gcp/credentials.json")?
///     .token_source("https://www.googleapis.com/auth/devstorage.read_only")?;
///
/// // Kubernetes' projected token, traded for a service account's token, without a file.
/// let bigquery = ExternalAccount::workload_identity_federation(
///     "123456789",
///     "my-pool",
///     "my-cluster",
///     FileSource::new("/var/run/secrets/tokens/gcp"),
///     "urn:ietf:params:oauth:token-type:jwt",
/// )
/// .impersonate("reader@my-project.iam.gserviceaccount.com")
/// .token_source("https://www.googleapis.com/auth/bigquery")?;
/// # let _ = (storage, bigquery); Ok(()) }
/// ```
#[derive(Clone)]
pub struct ExternalAccount {
    audience: String,
    subject_token_type: String,
    token_url: String,
    impersonation_url: Option<String>,
    /// The account named by [`ExternalAccount::impersonate`], whose URL is made on the trusted
    /// universe when the token source is.
    impersonated: Option<String>,
    lifetime: Duration,
    client_id: Option<String>,
    client_secret: Option<SecretString>,
    quota_project_id: Option<String>,
    workforce_pool_user_project: Option<String>,
    /// The universe the file names (`universe_domain`).
    file_universe: Option<String>,
    /// The universe the caller trusts.
    universe: String,
    subject: Subject,
    allow_executables: bool,
}

/// Where the subject token comes from.
#[derive(Clone, Debug)]
enum Subject {
    Source(Arc<dyn CredentialSource>),
    Executable(ExecutableConfig),
}

impl ExternalAccount {
    /// Parses an `external_account` file's JSON; refuses any other `type`, a file over 64 KiB,
    /// and AWS sources. Errors name the member at fault, never a value from the file.
    pub fn from_json(json: &str) -> Result<Self> {
        parse(json)
            .map_err(|reason| Error::config(format!("external_account credentials: {reason}")))
    }

    /// Reads and parses an `external_account` file (a small blocking read; refused over
    /// 64 KiB before it is read).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let fail = |reason: String| {
            Error::config(format!(
                "external_account credentials in {}: {reason}",
                path.display()
            ))
        };
        let metadata = std::fs::metadata(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
        if !metadata.is_file() {
            return Err(fail("it is not a regular file".into()));
        }
        if metadata.len() > MAX_CREDENTIAL_BYTES {
            return Err(fail(format!(
                "it is {} bytes, over the {MAX_CREDENTIAL_BYTES}-byte limit",
                metadata.len()
            )));
        }
        let json =
            std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
        parse(&json).map_err(fail)
    }

    /// Google workload identity federation without a credential file: the subject token from
    /// `source` (a Kubernetes token [`FileSource`], [`UrlSource::github_actions`], ...) of type
    /// `subject_token_type` (usually `urn:ietf:params:oauth:token-type:jwt`) is traded at
    /// `sts.googleapis.com` for the provider `provider_id` of pool `pool_id` in the project
    /// numbered `project_number`. Add [`impersonate`](Self::impersonate) to end with a service
    /// account's token.
    ///
    /// ```
    /// use oauth_layer::credential::UrlSource;
    /// use oauth_layer::credential::google::ExternalAccount;
    ///
    /// # fn run() -> oauth_layer::Result<()> {
    /// let audience = "//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/ci/providers/github";
    /// let google = ExternalAccount::workload_identity_federation(
    ///     "123456",
    ///     "ci",
    ///     "github",
    ///     UrlSource::github_actions(format!("https:{audience}"))?,
    ///     "urn:ietf:params:oauth:token-type:jwt",
    /// )
    /// .impersonate("deployer@my-project.iam.gserviceaccount.com")
    /// .token_source("https://www.googleapis.com/auth/cloud-platform")?;
    /// # let _ = google; Ok(()) }
    /// ```
    pub fn workload_identity_federation(
        project_number: impl AsRef<str>,
        pool_id: impl AsRef<str>,
        provider_id: impl AsRef<str>,
        source: impl CredentialSource,
        subject_token_type: impl Into<String>,
    ) -> Self {
        Self {
            audience: format!(
                "//iam.googleapis.com/projects/{}/locations/global/workloadIdentityPools/{}/providers/{}",
                project_number.as_ref(),
                pool_id.as_ref(),
                provider_id.as_ref()
            ),
            subject_token_type: subject_token_type.into(),
            token_url: STS_URL.into(),
            impersonation_url: None,
            impersonated: None,
            lifetime: impersonation::DEFAULT_LIFETIME,
            client_id: None,
            client_secret: None,
            quota_project_id: None,
            workforce_pool_user_project: None,
            file_universe: None,
            universe: GOOGLE_UNIVERSE.into(),
            subject: Subject::Source(Arc::new(source)),
            allow_executables: false,
        }
    }

    /// Ends with a token of the service account `email`, obtained from IAM Credentials with the
    /// federated token (the account must grant the pool's principal
    /// `roles/iam.workloadIdentityUser`).
    pub fn impersonate(mut self, email: impl Into<String>) -> Self {
        self.impersonated = Some(email.into());
        self.impersonation_url = None;
        self
    }

    /// Whether a `credential_source.executable` may run (off by default). Only allow it for
    /// files you trust as much as the program they name.
    pub fn allow_executables(mut self, allow: bool) -> Self {
        self.allow_executables = allow;
        self
    }

    /// The universe domain the caller trusts (`googleapis.com` by default): the token and
    /// impersonation URLs must be on it, and a file naming another `universe_domain` is refused
    /// unless it is this one.
    pub fn universe_domain(mut self, domain: impl Into<String>) -> Self {
        self.universe = domain.into();
        self
    }

    /// Replaces the security token service's URL (a private service connect endpoint, a local
    /// fake); checked like the file's, when the token source is made.
    pub fn token_url(mut self, url: impl Into<String>) -> Self {
        self.token_url = url.into();
        self
    }

    /// Replaces the impersonation URL (IAM Credentials' `generateAccessToken` of the account);
    /// checked like the file's, when the token source is made.
    pub fn impersonation_url(mut self, url: impl Into<String>) -> Self {
        self.impersonation_url = Some(url.into());
        self.impersonated = None;
        self
    }

    /// The lifetime asked for an impersonated token (1 hour by default, 10 minutes to
    /// 12 hours; longer than 1 hour needs an organization policy exception at Google).
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// The workload identity pool provider the token is for (`audience`).
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The type URI of the subject token.
    pub fn subject_token_type(&self) -> &str {
        &self.subject_token_type
    }

    /// The email of the impersonated service account, read from the impersonation URL.
    pub fn service_account_email(&self) -> Option<&str> {
        if let Some(email) = &self.impersonated {
            return Some(email);
        }
        let url = self.impersonation_url.as_deref()?;
        let tail = &url[url.rfind('/')? + 1..];
        tail.strip_suffix(":generateAccessToken")
    }

    /// Where the impersonated token is asked for, if anywhere.
    fn impersonation_target(&self) -> Option<String> {
        match (&self.impersonation_url, &self.impersonated) {
            (Some(url), _) => Some(url.clone()),
            (None, Some(email)) => Some(format!(
                "https://iamcredentials.{}/v1/projects/-/serviceAccounts/{email}:generateAccessToken",
                self.universe
            )),
            (None, None) => None,
        }
    }

    /// The project billed for API calls (`quota_project_id`), to send as `x-goog-user-project`.
    pub fn quota_project_id(&self) -> Option<&str> {
        self.quota_project_id.as_deref()
    }

    /// A token source for Google APIs with `scopes` (space separated; `cloud-platform` when
    /// empty). Fails when an endpoint is not Google's, the file's universe is not the trusted
    /// one, or the subject comes from an executable the caller did not allow.
    pub fn token_source(&self, scopes: impl Into<String>) -> Result<TokenSource> {
        self.token_source_with(scopes, |builder| builder)
    }

    /// [`token_source`](Self::token_source) with the client adjusted by `configure` (a
    /// transport, a clock, a timeout) before it is built.
    pub fn token_source_with(
        &self,
        scopes: impl Into<String>,
        configure: impl FnOnce(OAuthClientBuilder) -> OAuthClientBuilder,
    ) -> Result<TokenSource> {
        let flow = self.federation(scopes.into())?;
        let client = configure(self.client_builder()?).build()?;
        Ok(TokenSource::new(client, flow))
    }

    /// The client of the security token service: no client authentication unless the file has
    /// a `client_id` (HTTP Basic with `client_secret`).
    fn client_builder(&self) -> Result<OAuthClientBuilder> {
        let token_url = trusted_endpoint::check("token_url", &self.token_url, &self.universe)?;
        let mut builder =
            OAuthClient::builder(self.client_id.clone().unwrap_or_default()).token_url(token_url);
        if let Some(secret) = &self.client_secret {
            builder = builder.secret(secret.expose_secret());
        }
        Ok(builder)
    }

    fn federation(&self, scopes: String) -> Result<Federation> {
        if let Some(file_universe) = &self.file_universe
            && !file_universe.eq_ignore_ascii_case(&self.universe)
        {
            return Err(Error::config(format!(
                "external_account credentials: the file names the universe {file_universe:?}, \
                 not the trusted {:?} (ExternalAccount::universe_domain)",
                self.universe
            )));
        }
        let impersonation = match self.impersonation_target() {
            Some(url) => {
                if !(impersonation::MIN_LIFETIME..=impersonation::MAX_LIFETIME)
                    .contains(&self.lifetime)
                {
                    return Err(Error::config(
                        "external_account credentials: the impersonated token's lifetime must be \
                         600 to 43200 seconds",
                    ));
                }
                Some(Impersonation {
                    url: trusted_endpoint::check(
                        "service_account_impersonation_url",
                        &url,
                        &self.universe,
                    )?,
                    lifetime: self.lifetime,
                })
            }
            None => None,
        };
        let subject: Arc<dyn CredentialSource> = match &self.subject {
            Subject::Source(source) => source.clone(),
            Subject::Executable(config) => {
                if !self.allow_executables {
                    return Err(Error::config(
                        "external_account credentials: the credential_source is an executable, \
                         and executables are not allowed (call \
                         ExternalAccount::allow_executables(true) if you trust this file as \
                         much as the program it runs)",
                    ));
                }
                Arc::new(Executable::new(
                    config,
                    &self.audience,
                    &self.subject_token_type,
                    self.service_account_email(),
                )?)
            }
        };
        let scopes = match scopes.split_whitespace().collect::<Vec<_>>() {
            words if words.is_empty() => CLOUD_PLATFORM.to_owned(),
            words => words.join(" "),
        };
        Ok(Federation {
            audience: self.audience.clone(),
            subject,
            subject_token_type: self.subject_token_type.clone(),
            scopes,
            user_project: self
                .workforce_pool_user_project
                .clone()
                .filter(|_| self.client_id.is_none()),
            impersonation,
        })
    }
}

impl fmt::Debug for ExternalAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalAccount")
            .field("audience", &self.audience)
            .field("subject_token_type", &self.subject_token_type)
            .field("token_url", &self.token_url)
            .field("impersonation_url", &self.impersonation_target())
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("subject", &self.subject)
            .field("allow_executables", &self.allow_executables)
            .finish_non_exhaustive()
    }
}

/// The account an `external_account` document describes, or why not (member names only).
fn parse(json: &str) -> std::result::Result<ExternalAccount, String> {
    if json.len() as u64 > MAX_CREDENTIAL_BYTES {
        return Err(format!("the file is over {MAX_CREDENTIAL_BYTES} bytes"));
    }
    let value: Value = serde_json::from_str(json).map_err(|e| {
        format!(
            "the file is not JSON (line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    let object = value.as_object().ok_or("the file is not a JSON object")?;
    match object.get("type") {
        Some(Value::String(kind)) if kind == TYPE => {}
        Some(Value::String(kind)) => {
            return Err(format!(
                "the file's type is {}, not \"{TYPE}\"",
                printable_type(kind)
            ));
        }
        _ => {
            return Err(format!(
                "the file has no string \"type\" (\"{TYPE}\" expected)"
            ));
        }
    }
    let members = Members(object);
    let audience = members.required("audience")?;
    let subject_token_type = members.required("subject_token_type")?;
    let file_universe = members.optional("universe_domain")?;
    let universe = file_universe
        .clone()
        .unwrap_or_else(|| GOOGLE_UNIVERSE.into());
    let token_url = members
        .optional("token_url")?
        .unwrap_or_else(|| format!("https://sts.{universe}/v1/token"));
    let impersonation_url = members.optional("service_account_impersonation_url")?;
    let lifetime = match object.get("service_account_impersonation") {
        None | Some(Value::Null) => impersonation::DEFAULT_LIFETIME,
        Some(Value::Object(settings)) => match settings.get("token_lifetime_seconds") {
            None | Some(Value::Null) => impersonation::DEFAULT_LIFETIME,
            Some(seconds) => seconds
                .as_u64()
                .map(Duration::from_secs)
                .filter(|l| (impersonation::MIN_LIFETIME..=impersonation::MAX_LIFETIME).contains(l))
                .ok_or("service_account_impersonation.token_lifetime_seconds must be a whole number from 600 to 43200")?,
        },
        Some(_) => return Err("service_account_impersonation is not an object".into()),
    };
    let workforce_pool_user_project = members.optional("workforce_pool_user_project")?;
    if workforce_pool_user_project.is_some() && !is_workforce_audience(&audience) {
        return Err(
            "workforce_pool_user_project is set, but the audience is not a workforce pool".into(),
        );
    }
    let source = match object.get("credential_source") {
        Some(Value::Object(source)) => source,
        _ => return Err("credential_source is missing or not an object".into()),
    };
    let subject = parse_source(source)?;
    // Checked now for an early, clear error; checked again (against the universe the caller
    // trusts) when a token source is made.
    crate::client::endpoint("token_url", &token_url).map_err(|e| e.to_string())?;
    if let Some(url) = &impersonation_url {
        crate::client::endpoint("service_account_impersonation_url", url)
            .map_err(|e| e.to_string())?;
    }
    if file_universe.is_none() {
        trusted_endpoint::check("token_url", &token_url, GOOGLE_UNIVERSE)
            .map_err(|e| e.to_string())?;
        if let Some(url) = &impersonation_url {
            trusted_endpoint::check("service_account_impersonation_url", url, GOOGLE_UNIVERSE)
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(ExternalAccount {
        audience,
        subject_token_type,
        token_url,
        impersonation_url,
        impersonated: None,
        lifetime,
        client_id: members.optional("client_id")?,
        client_secret: members.optional("client_secret")?.map(SecretString::from),
        quota_project_id: members.optional("quota_project_id")?,
        workforce_pool_user_project,
        file_universe,
        universe: GOOGLE_UNIVERSE.into(),
        subject,
        allow_executables: false,
    })
}

/// `credential_source`: exactly one of `file`, `url`, `executable`.
fn parse_source(source: &Map<String, Value>) -> std::result::Result<Subject, String> {
    if let Some(environment) = source.get("environment_id") {
        let aws = environment
            .as_str()
            .is_some_and(|e| e.to_ascii_lowercase().starts_with("aws"));
        return Err(if aws {
            "credential_source is AWS (environment_id aws1), which is out of scope: AWS signs \
             its requests with SigV4, not OAuth"
                .into()
        } else {
            "credential_source.environment_id names an unsupported environment".into()
        });
    }
    if source.contains_key("certificate") {
        return Err(
            "credential_source.certificate (X.509 workload certificates) is not supported".into(),
        );
    }
    let kinds: Vec<&str> = ["file", "url", "executable"]
        .into_iter()
        .filter(|k| source.get(*k).is_some_and(|v| !v.is_null()))
        .collect();
    let members = Members(source);
    match kinds.as_slice() {
        ["file"] => {
            let path = members.required("file")?;
            Ok(Subject::Source(Arc::new(
                FileSource::new(path).format(parse_format(source)?),
            )))
        }
        ["url"] => {
            let url = members.required("url")?;
            let mut url_source =
                UrlSource::new(&url).map_err(|e| format!("credential_source.url: {e}"))?;
            match source.get("headers") {
                None | Some(Value::Null) => {}
                Some(Value::Object(headers)) => {
                    for (name, value) in headers {
                        let value = value.as_str().ok_or_else(|| {
                            format!("credential_source.headers.{name} is not a string")
                        })?;
                        url_source = url_source.header(name, value);
                    }
                }
                Some(_) => return Err("credential_source.headers is not an object".into()),
            }
            Ok(Subject::Source(Arc::new(
                url_source.format(parse_format(source)?),
            )))
        }
        ["executable"] => {
            let Some(Value::Object(settings)) = source.get("executable") else {
                return Err("credential_source.executable is not an object".into());
            };
            let settings_members = Members(settings);
            let command = settings_members
                .required("command")
                .map_err(|e| format!("credential_source.executable: {e}"))?;
            let timeout = match settings.get("timeout_millis") {
                None | Some(Value::Null) => executable::DEFAULT_TIMEOUT,
                Some(millis) => millis
                    .as_u64()
                    .map(Duration::from_millis)
                    .filter(|t| (executable::MIN_TIMEOUT..=executable::MAX_TIMEOUT).contains(t))
                    .ok_or("credential_source.executable.timeout_millis must be a whole number from 5000 to 120000")?,
            };
            let output_file = settings_members
                .optional("output_file")
                .map_err(|e| format!("credential_source.executable: {e}"))?
                .map(PathBuf::from);
            Ok(Subject::Executable(ExecutableConfig {
                command,
                timeout,
                output_file,
            }))
        }
        [] => Err("credential_source has none of file, url or executable".into()),
        _ => Err(format!(
            "credential_source has {}; exactly one is allowed",
            kinds.join(" and ")
        )),
    }
}

/// `credential_source.format`: `text` (the default) or `json` with `subject_token_field_name`.
fn parse_format(source: &Map<String, Value>) -> std::result::Result<ResponseFormat, String> {
    let format = match source.get("format") {
        None | Some(Value::Null) => return Ok(ResponseFormat::Text),
        Some(Value::Object(format)) => format,
        Some(_) => return Err("credential_source.format is not an object".into()),
    };
    match format.get("type").and_then(Value::as_str) {
        None | Some("text") => Ok(ResponseFormat::Text),
        Some("json") => {
            let field = Members(format)
                .required("subject_token_field_name")
                .map_err(|e| format!("credential_source.format: {e}"))?;
            Ok(ResponseFormat::JsonField(field))
        }
        Some(_) => Err("credential_source.format.type must be \"text\" or \"json\"".into()),
    }
}

/// Whether `audience` names a workforce pool (`//iam.googleapis.com/locations/*/workforcePools/*`).
fn is_workforce_audience(audience: &str) -> bool {
    audience
        .split('/')
        .collect::<Vec<_>>()
        .windows(2)
        .any(|w| w[0] == "locations" && !w[1].is_empty())
        && audience.contains("/workforcePools/")
}

/// A file's `type` as an error may show it: a short identifier, or a placeholder.
fn printable_type(kind: &str) -> String {
    if kind.len() <= 40 && kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        format!("{kind:?}")
    } else {
        "an unrecognized value".into()
    }
}

/// The string members of a JSON object, with errors that name the member, never its value.
struct Members<'a>(&'a Map<String, Value>);

impl Members<'_> {
    fn optional(&self, name: &str) -> std::result::Result<Option<String>, String> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
            Some(_) => Err(format!("{name} is not a string")),
        }
    }

    fn required(&self, name: &str) -> std::result::Result<String, String> {
        self.optional(name)?
            .ok_or_else(|| format!("{name} is missing or empty"))
    }
}
