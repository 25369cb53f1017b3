//! Workload identity: the credential source the options name (a token file, a URL, a command,
//! GitHub Actions, Azure, Google's credentials), what it is used as in the run's flow, and the
//! options it contradicts.
//!
//! A new source is one more entry in [`SOURCE_OPTIONS`] and one more arm in [`workload`]; one
//! that brings its own client (Azure) or its own token source (Google) is also a [`Kind`],
//! handled in `build::build_source`.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use oauth_layer::AuthMethod;
use oauth_layer::credential::google::{ApplicationDefault, CredentialType, GoogleCredentials};
use oauth_layer::credential::{
    AzureWorkloadIdentity, CommandSource, Credential, CredentialSource, FileSource, ResponseFormat,
    UrlSource,
};

use crate::cli::WorkloadArgs;
use crate::options::{Options, Stop, method_name, usage};

/// The options that each name a credential source; one at most may be given.
pub(crate) const SOURCE_OPTIONS: &[&str] = &[
    "--assertion-file",
    "--assertion-url",
    "--assertion-command",
    "--github-actions-audience",
    "--azure-workload-identity",
    "--google-adc",
    "--google-credentials",
];

/// The sources that are Google credentials, which `--google-credential-type` and
/// `--allow-executables` refine.
const GOOGLE_OPTIONS: &[&str] = &["--google-adc", "--google-credentials"];

/// The scope of a Google token when `--scope` names none: every Google Cloud API the identity
/// has been granted (its IAM roles still decide what it may do).
pub(crate) const GOOGLE_DEFAULT_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Options that refine one source, and the source they refine.
const REFINING_OPTIONS: &[(&str, &str)] = &[
    ("--assertion-header", "--assertion-url"),
    ("--assertion-field", "--assertion-url"),
    ("--assertion-arg", "--assertion-command"),
];

/// The subject token type of a credential used in a token exchange, unless
/// `--subject-token-type` says otherwise: platforms hand out JWTs.
pub(crate) const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// The credential source of the run and the option that named it (for messages).
pub(crate) struct Workload {
    pub(crate) option: &'static str,
    pub(crate) kind: Kind,
}

/// What the source is.
pub(crate) enum Kind {
    /// A credential alone: what it is used as depends on the flow ([`Workload::role`]).
    Source(Shared),
    /// A client of its own: its id, its token endpoint, and its credential as the client
    /// assertion.
    Azure(AzureWorkloadIdentity),
    /// A token source of its own: Google's credentials name their client, endpoint and grant
    /// (or are the metadata server), so the run's flow and client options do not apply.
    Google(Google),
}

/// Google's credentials, as `--google-adc` or `--google-credentials` name them.
pub(crate) enum Google {
    /// The application default credentials, looked for when the run starts.
    Adc(ApplicationDefault),
    /// A credentials file, read once the options are checked.
    File(GoogleFile),
}

/// `--google-credentials FILE`, with the types it may be and whether it may run a program.
pub(crate) struct GoogleFile {
    path: PathBuf,
    types: Vec<CredentialType>,
    allow_executables: bool,
}

impl GoogleFile {
    /// Reads the file (a small blocking read, at start-up): one of a type not named is
    /// refused, naming the type found and nothing else from it.
    pub(crate) fn load(&self) -> Result<GoogleCredentials, Stop> {
        GoogleCredentials::from_file(&self.path, &self.types)
            .map(|file| file.allow_executables(self.allow_executables))
            .map_err(|e| usage(format!("--google-credentials: {}", config_reason(&e))))
    }
}

/// What the credential is in the token request.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// `client_assertion`: the client's authentication.
    ClientAssertion,
    /// `assertion` of the JWT bearer grant.
    Grant,
    /// `subject_token` of a token exchange.
    SubjectToken,
    /// None of the run's own: the source makes its own token requests (Google's credentials).
    OwnRequests,
}

impl Workload {
    /// What the credential is in a run of `--flow flow`.
    pub(crate) fn role(&self, flow: &str) -> Role {
        match (&self.kind, flow) {
            (Kind::Google(_), _) => Role::OwnRequests,
            (Kind::Azure(_), _) => Role::ClientAssertion,
            (Kind::Source(_), "jwt-bearer") => Role::Grant,
            (Kind::Source(_), "token-exchange") => Role::SubjectToken,
            (Kind::Source(_), _) => Role::ClientAssertion,
        }
    }

    /// The source, when the credential is the grant or the subject token in `flow`.
    pub(crate) fn grant_source(&self, flow: &str) -> Option<Shared> {
        match &self.kind {
            Kind::Source(source) if self.role(flow) != Role::ClientAssertion => {
                Some(source.clone())
            }
            _ => None,
        }
    }

    /// The Azure client, when the source is one.
    pub(crate) fn azure(&self) -> Option<&AzureWorkloadIdentity> {
        match &self.kind {
            Kind::Azure(azure) => Some(azure),
            _ => None,
        }
    }

    /// Google's credentials, when the source is them.
    pub(crate) fn google(&self) -> Option<&Google> {
        match &self.kind {
            Kind::Google(google) => Some(google),
            _ => None,
        }
    }
}

/// A source chosen at run time, shared by the client or flow that uses it. Its description
/// and identity (cache keys) are the source's own.
#[derive(Clone, Debug)]
pub(crate) struct Shared(Arc<dyn CredentialSource>);

#[async_trait]
impl CredentialSource for Shared {
    async fn credential(&self) -> oauth_layer::Result<Credential> {
        self.0.credential().await
    }

    fn describe(&self) -> String {
        self.0.describe()
    }

    fn identity(&self) -> String {
        self.0.identity()
    }
}

/// The source the options name, if any: one at most, each refining option with its source.
/// Environment variables (GitHub Actions, Azure) are read now, so a missing one is a usage
/// error naming it; files, URLs and commands are read at each token request.
pub(crate) fn workload(args: WorkloadArgs, given: &[String]) -> Result<Option<Workload>, Stop> {
    let named: Vec<&str> = SOURCE_OPTIONS
        .iter()
        .copied()
        .filter(|option| given.iter().any(|n| n == option))
        .collect();
    if let [first, second, ..] = named.as_slice() {
        return Err(usage(format!(
            "{first} and {second} are two credential sources: give one"
        )));
    }
    for (option, source) in REFINING_OPTIONS {
        if given.iter().any(|n| n == option) && named.first() != Some(source) {
            return Err(usage(format!("{option} goes with {source}")));
        }
    }
    let google = named.first().is_some_and(|n| GOOGLE_OPTIONS.contains(n));
    for option in ["--google-credential-type", "--allow-executables"] {
        if given.iter().any(|n| n == option) && !google {
            return Err(usage(format!(
                "{option} goes with --google-credentials or --google-adc"
            )));
        }
    }
    let Some(option) = named.first().copied() else {
        return Ok(None);
    };
    let shared = |source: Arc<dyn CredentialSource>| Kind::Source(Shared(source));
    let kind = match option {
        "--assertion-file" => {
            let path = args.assertion_file.unwrap_or_default();
            if path.as_os_str().is_empty() {
                return Err(usage("--assertion-file needs a file name"));
            }
            if path.as_os_str() == "-" {
                return Err(usage(
                    "--assertion-file is read again for every token request: give a file, not \
                     standard input (-)",
                ));
            }
            shared(Arc::new(FileSource::new(path)))
        }
        "--assertion-url" => {
            let url = args.assertion_url.unwrap_or_default();
            let mut source =
                UrlSource::new(&url).map_err(|e| usage(format!("--assertion-url: {e}")))?;
            for (name, value) in
                crate::options::header_lines(&args.assertion_header, "--assertion-header")?
            {
                source = source.header(name.as_str(), value);
            }
            if let Some(field) = args.assertion_field {
                if field.is_empty() {
                    return Err(usage("--assertion-field needs a member name"));
                }
                source = source.format(ResponseFormat::JsonField(field));
            }
            shared(Arc::new(source))
        }
        "--assertion-command" => {
            let program = args.assertion_command.unwrap_or_default();
            if program.is_empty() {
                return Err(usage("--assertion-command needs a program"));
            }
            let source = args
                .assertion_arg
                .into_iter()
                .fold(CommandSource::new(program), CommandSource::arg);
            shared(Arc::new(source))
        }
        "--github-actions-audience" => {
            let audience = args.github_actions_audience.unwrap_or_default();
            if audience.is_empty() {
                return Err(usage("--github-actions-audience needs an audience"));
            }
            let source = UrlSource::github_actions(audience).map_err(|e| {
                usage(format!(
                    "--github-actions-audience: {} (a GitHub Actions job with `permissions: \
                     id-token: write` sets it)",
                    config_reason(&e)
                ))
            })?;
            shared(Arc::new(source))
        }
        "--azure-workload-identity" => Kind::Azure(
            AzureWorkloadIdentity::from_env()
                .map_err(|e| usage(format!("--azure-workload-identity: {}", config_reason(&e))))?,
        ),
        "--google-adc" => {
            let mut adc = ApplicationDefault::new().credential_types(&google_types(&args)?);
            if args.allow_executables {
                adc = adc.allow_executables(true);
            }
            Kind::Google(Google::Adc(adc))
        }
        "--google-credentials" => {
            let path = args.google_credentials.clone().unwrap_or_default();
            if path.as_os_str().is_empty() {
                return Err(usage("--google-credentials needs a file name"));
            }
            Kind::Google(Google::File(GoogleFile {
                path,
                types: google_types(&args)?,
                allow_executables: args.allow_executables,
            }))
        }
        other => unreachable!("{other} is one of SOURCE_OPTIONS"),
    };
    Ok(Some(Workload { option, kind }))
}

/// The credential types `--google-credential-type` names, or every type the crate supports.
fn google_types(args: &WorkloadArgs) -> Result<Vec<CredentialType>, Stop> {
    if args.google_credential_type.is_empty() {
        return Ok(CredentialType::SUPPORTED.to_vec());
    }
    args.google_credential_type
        .iter()
        .map(|name| {
            CredentialType::SUPPORTED
                .iter()
                .copied()
                .find(|t| t.as_str() == name)
                .ok_or_else(|| {
                    usage(format!(
                        "unknown --google-credential-type {name:?} (service_account, \
                         authorized_user, external_account)"
                    ))
                })
        })
        .collect()
}

/// A configuration error's own words, without the crate's prefix.
fn config_reason(error: &oauth_layer::Error) -> String {
    match error {
        oauth_layer::Error::Config(reason) => reason.clone(),
        other => other.to_string(),
    }
}

/// The options that contradict the source in this run's flow, refused with a message that
/// names both. Runs once every secret (environment variables included) is known.
pub(crate) fn check_workload(o: &Options) -> Result<(), Stop> {
    let Some(workload) = &o.workload else {
        return Ok(());
    };
    let option = workload.option;
    let given = |name: &str| o.given.iter().any(|n| n == name);
    if o.provider.is_some() {
        return Err(usage(format!(
            "{option} and --provider are ambiguous: the preset configures the client (its \
             endpoints and client authentication); give one or the other"
        )));
    }
    if workload.google().is_some() {
        return check_google(o, option);
    }
    if workload.azure().is_some() {
        for (other, what) in [
            ("--client-id", "AZURE_CLIENT_ID names the client"),
            (
                "--token-url",
                "AZURE_TENANT_ID and AZURE_AUTHORITY_HOST name the token endpoint",
            ),
            (
                "--issuer",
                "AZURE_TENANT_ID and AZURE_AUTHORITY_HOST name the token endpoint",
            ),
        ] {
            if given(other) {
                return Err(usage(format!(
                    "{other} and {option} are ambiguous: {what}; give one or the other"
                )));
            }
        }
        if o.flow == "client-credentials" && o.scopes.is_empty() {
            return Err(usage(format!(
                "{option} needs --scope: Entra ID wants one resource's .default scope, such as \
                 https://graph.microsoft.com/.default"
            )));
        }
    } else if o.resource_first {
        return Err(usage(format!(
            "{option} needs --token-url or --issuer: the server the credential is for"
        )));
    }
    match workload.role(&o.flow) {
        Role::ClientAssertion => {
            let two_ways = |other: &str| {
                usage(format!(
                    "{option} (a client assertion) and {other} are two ways to authenticate the \
                     client: give one"
                ))
            };
            if o.client_secret.is_some() {
                return Err(two_ways("--client-secret (or OAUTH_CLIENT_SECRET)"));
            }
            if o.key.is_some() {
                return Err(two_ways("--key (the client's key)"));
            }
            if let Some(method) = o.auth_method.filter(|m| *m != AuthMethod::PrivateKeyJwt) {
                return Err(usage(format!(
                    "--auth-method {} and {option}: the credential authenticates the client as a \
                     client assertion (private-key-jwt); leave out --auth-method",
                    method_name(method)
                )));
            }
        }
        Role::Grant => {
            if given("--subject") {
                return Err(usage(format!(
                    "--subject and {option}: the credential is the jwt-bearer assertion, signed \
                     already (its sub is its own); leave out --subject"
                )));
            }
            if o.key.is_some() && o.auth_method != Some(AuthMethod::PrivateKeyJwt) {
                return Err(usage(format!(
                    "--key and {option} are both the jwt-bearer grant's assertion: give one (or \
                     --auth-method private-key-jwt to make --key the client's key)"
                )));
            }
        }
        Role::OwnRequests => {}
        Role::SubjectToken => {
            if o.subject_token.is_some() {
                return Err(usage(format!(
                    "--subject-token (or OAUTH_SUBJECT_TOKEN) and {option} are both the token to \
                     exchange: give one"
                )));
            }
        }
    }
    Ok(())
}

/// Options that say what Google's credentials say themselves, or that their token source
/// (built by the crate, kept in memory) has no use for, and why.
const NOT_WITH_GOOGLE: &[(&str, &str)] = &[
    ("--client-id", "the credentials name their own client"),
    ("--client-secret", "the credentials name their own client"),
    ("--key", "the credentials hold their own key"),
    ("--auth-method", "the credentials name their own client"),
    (
        "--token-url",
        "the credentials name their own token endpoint",
    ),
    ("--issuer", "the credentials name their own token endpoint"),
    ("--auth-url", "the credentials name their own endpoints"),
    ("--device-url", "the credentials name their own endpoints"),
    (
        "--revocation-url",
        "the credentials name their own endpoints",
    ),
    ("--audience", "the credentials name their own token request"),
    ("--resource", "the credentials name their own token request"),
    (
        "--authorization-details",
        "the credentials name their own token request",
    ),
    ("--dpop", "Google issues bearer tokens"),
    (
        "--profile",
        "Google's token endpoints are not a FAPI 2.0 server",
    ),
    ("--client-cert", "the credentials authenticate on their own"),
    ("--client-key", "the credentials authenticate on their own"),
    ("--cache", "their tokens are kept in memory only"),
    ("--redis", "their tokens are kept in memory only"),
    ("--identity", "their tokens are kept in memory only"),
];

/// `--google-adc` and `--google-credentials` make their own token requests: the default flow
/// only, and none of the options that would configure the client or the store.
fn check_google(o: &Options, option: &str) -> Result<(), Stop> {
    let given = |name: &str| o.given.iter().any(|n| n == name);
    if given("--flow") && o.flow != "client-credentials" {
        return Err(usage(format!(
            "--flow {} and {option}: Google's credentials make their own token requests (a \
             service account's JWT, a refresh token, a token exchange at Google's STS or the \
             metadata server); leave out --flow",
            o.flow
        )));
    }
    if let Some((other, why)) = NOT_WITH_GOOGLE.iter().find(|(other, _)| given(other)) {
        return Err(usage(format!(
            "{other} and {option} do not go together: {why}; give one or the other"
        )));
    }
    if o.client_secret.is_some() {
        return Err(usage(format!(
            "OAUTH_CLIENT_SECRET and {option} do not go together: the credentials name their \
             own client; unset it"
        )));
    }
    Ok(())
}
