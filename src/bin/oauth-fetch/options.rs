//! The options after clap has read them: their values checked, the options that do not go
//! together refused, and secrets read from the environment, files or standard input.

use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, FromArgMatches};
use http::{HeaderMap, HeaderName, HeaderValue};
use oauth_layer::AuthMethod;
use oauth_layer::client::TokenTypeHint;
use oauth_layer::flow::AuthorizationDetail;
use oauth_layer::profile::Profile;
use oauth_layer::tls::ClientCertificate;
use reqwest::Url;

use crate::cli::{Cli, ClientArgs, Command, Format, TlsArgs};
use crate::secret::{Given, SECRET_OPTIONS, from_env};
use crate::workload::{Role, Workload, check_workload, workload};

/// Everything the command line said.
#[derive(Default)]
pub(crate) struct Options {
    /// `oauth-fetch revoke ...`: revoke `--token` instead of fetching URLs.
    pub(crate) revoke: bool,
    /// The name of every option given, in order (`--name`, also for `--name=value`).
    pub(crate) given: Vec<String>,
    pub(crate) token_url: Option<String>,
    pub(crate) client_id: Option<String>,
    pub(crate) client_secret: Option<String>,
    pub(crate) auth_method: Option<AuthMethod>,
    /// `--dpop[=ALG]`: DPoP with these algorithms, most preferred first.
    pub(crate) dpop: Option<Vec<oauth_layer::dpop::DpopAlg>>,
    pub(crate) flow: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) resource: Option<String>,
    pub(crate) audience: Option<String>,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) refresh_token: Option<String>,
    pub(crate) auth_url: Option<String>,
    pub(crate) redirect_uri: Option<String>,
    pub(crate) paste: bool,
    pub(crate) device_url: Option<String>,
    pub(crate) issuer: Option<String>,
    /// `--provider`: a provider preset's name.
    pub(crate) provider: Option<String>,
    /// `--provider-arg`: where the provider lives (tenant, domain, realm URL, shop...).
    pub(crate) provider_arg: Option<String>,
    /// `--key`: a PEM private key or a service account key file (jwt-bearer).
    pub(crate) key: Option<PathBuf>,
    pub(crate) key_alg: Option<String>,
    pub(crate) key_id: Option<String>,
    pub(crate) subject: Option<String>,
    pub(crate) subject_token: Option<String>,
    pub(crate) subject_token_type: Option<String>,
    pub(crate) actor_token: Option<String>,
    pub(crate) actor_token_type: Option<String>,
    pub(crate) requested_token_type: Option<String>,
    /// The workload identity credential source (`--assertion-file`, `--azure-workload-identity`...).
    pub(crate) workload: Option<Workload>,
    /// `--profile`: the security profile the client follows.
    pub(crate) profile: Option<Profile>,
    /// `--par`: push the authorization request (auth-code).
    pub(crate) par: bool,
    pub(crate) par_url: Option<String>,
    /// `--authorization-details` as given (JSON, or `@FILE`), parsed into `details` once the
    /// options are checked.
    authorization_details: Vec<String>,
    /// The authorization details to ask for (RFC 9396), in the order given.
    pub(crate) details: Vec<AuthorizationDetail>,
    /// `--jar`: sign the authorization request (auth-code).
    pub(crate) jar: bool,
    /// `--client-cert`, `--client-key` and `--ca-cert` as given, read into `client_certificate`
    /// and `ca_certificate` once the options are checked.
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
    ca_cert: Option<PathBuf>,
    /// The client certificate for mutual TLS, presented to the server and the URLs.
    pub(crate) client_certificate: Option<ClientCertificate>,
    /// A private certificate authority (PEM) trusted for the server and the URLs.
    pub(crate) ca_certificate: Option<Vec<u8>>,
    pub(crate) revocation_url: Option<String>,
    /// `--token` (revoke).
    pub(crate) token: Option<String>,
    pub(crate) token_type_hint: Option<TokenTypeHint>,
    /// `--cache`: the directory of a file store.
    pub(crate) cache: Option<PathBuf>,
    /// `--redis`: a Redis URL, which may hold a password (never echoed).
    pub(crate) redis: Option<String>,
    /// `--identity`: whose tokens these are in the store.
    pub(crate) identity: Option<String>,
    pub(crate) repeat: u32,
    pub(crate) interval: Duration,
    pub(crate) method: Option<reqwest::Method>,
    /// `-H`: headers sent with every request, `Content-Type` for `-d` among them.
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<String>,
    pub(crate) verbose: bool,
    /// `--output`.
    pub(crate) format: Option<Format>,
    /// Each URL as given (printed back in the status line) and parsed.
    pub(crate) urls: Vec<(String, Url)>,
    /// No `--token-url`, `--issuer` or `--provider`: the URLs' resources say where their
    /// tokens come from (RFC 9728), as [`crate::resource`] sets up.
    pub(crate) resource_first: bool,
}

/// What the command line asks for.
pub(crate) enum Mode {
    /// Fetch URLs, or revoke a token (`Options::revoke`).
    Run(Box<Options>),
    /// `completions SHELL`: print the script.
    Completions(clap_complete::Shell),
}

/// Why the program stops early.
pub(crate) enum Stop {
    /// `--help` or `--version`: clap's text on stdout, exit code 0.
    Shown(clap::Error),
    /// A usage or configuration problem: one line on stderr, exit code 2.
    Usage(String),
    /// `revoke`: the server refused, or could not be reached: one line on stderr, exit code 1.
    Failed(String),
}

pub(crate) fn usage(msg: impl Into<String>) -> Stop {
    Stop::Usage(msg.into())
}

/// Reads the command line `args` (without the program's name).
pub(crate) fn parse(args: Vec<String>) -> Result<Mode, Stop> {
    use clap::CommandFactory;
    let command = Cli::command();
    let argv = std::iter::once("oauth-fetch".to_owned()).chain(args.iter().cloned());
    let clap_error = |e: clap::Error| match crate::cli::one_line_message(&e, &args) {
        Some(message) => usage(message),
        None => Stop::Shown(e),
    };
    let matches = command
        .clone()
        .try_get_matches_from(argv)
        .map_err(clap_error)?;
    let cli = Cli::from_arg_matches(&matches).map_err(clap_error)?;
    let mut o = Options {
        flow: "client-credentials".into(),
        repeat: 1,
        ..Options::default()
    };
    let (client, output) = match cli.command {
        Some(Command::Completions { shell }) => return Ok(Mode::Completions(shell)),
        Some(Command::Revoke(revoke)) => {
            let (Some(sub), Some(sub_matches)) = (
                command.find_subcommand("revoke"),
                matches.subcommand_matches("revoke"),
            ) else {
                return Err(usage("revoke is not understood (see --help)"));
            };
            let revoke = *revoke;
            if !revoke.stray.is_empty() {
                // Not echoed: it may be the token, put in the wrong place.
                return Err(usage("revoke takes no URL (see oauth-fetch revoke --help)"));
            }
            o.revoke = true;
            o.given = given(sub, sub_matches);
            o.revocation_url = revoke.revocation_url;
            o.token = revoke.token;
            o.token_type_hint = revoke.token_type_hint.map(|hint| match hint.as_str() {
                "refresh_token" => TokenTypeHint::RefreshToken,
                _ => TokenTypeHint::AccessToken,
            });
            o.tls(revoke.tls);
            (revoke.client, revoke.output)
        }
        None => {
            o.given = given(&command, &matches);
            let (grant, sign_in, jwt, exchange, security, cache, request) = (
                cli.grant,
                cli.sign_in,
                cli.jwt,
                cli.exchange,
                cli.security,
                cli.cache,
                cli.request,
            );
            if let Some(flow) = grant.flow {
                o.flow = flow;
            }
            o.scopes = grant.scope;
            o.resource = grant.resource;
            o.audience = grant.audience;
            o.username = grant.username;
            o.password = grant.password;
            o.refresh_token = grant.refresh_token;
            o.auth_url = sign_in.auth_url;
            o.redirect_uri = sign_in.redirect_uri;
            o.paste = sign_in.paste;
            o.device_url = sign_in.device_url;
            o.key = jwt.key;
            o.key_alg = jwt.key_alg;
            o.key_id = jwt.key_id;
            o.subject = jwt.subject;
            o.subject_token = exchange.subject_token;
            o.subject_token_type = exchange.subject_token_type;
            o.actor_token = exchange.actor_token;
            o.actor_token_type = exchange.actor_token_type;
            o.requested_token_type = exchange.requested_token_type;
            o.workload = workload(cli.workload, &o.given)?;
            o.profile = security.profile.as_deref().and_then(Profile::from_name);
            o.par = security.par;
            o.par_url = security.par_url;
            o.authorization_details = security.authorization_details;
            o.jar = security.jar;
            o.tls(cli.tls);
            if cache.cache.as_ref().is_some_and(String::is_empty) {
                return Err(usage("--cache needs a directory"));
            }
            o.cache = cache.cache.map(PathBuf::from);
            o.redis = cache.redis;
            o.identity = cache.identity;
            if o.identity.as_ref().is_some_and(String::is_empty) {
                return Err(usage("--identity needs a non-empty name"));
            }
            if let Some(repeat) = request.repeat {
                o.repeat = repeat
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| usage("--repeat takes a whole number, 1 or more"))?;
            }
            if let Some(interval) = request.interval {
                let secs: f64 = interval
                    .parse()
                    .map_err(|_| usage("--interval takes a number of seconds"))?;
                o.interval = Duration::try_from_secs_f64(secs)
                    .map_err(|_| usage("--interval must be zero or more seconds"))?;
            }
            if let Some(method) = request.method {
                o.method = Some(
                    method
                        .parse()
                        .map_err(|_| usage("-X takes an HTTP method"))?,
                );
            }
            o.headers = headers(&request.headers)?;
            if request.json && request.data.is_none() {
                return Err(usage("--json says how to send -d: give -d too"));
            }
            if request.data.is_some() && !o.headers.contains_key(http::header::CONTENT_TYPE) {
                // As curl does: a form unless told otherwise.
                let content_type = if request.json {
                    "application/json"
                } else {
                    "application/x-www-form-urlencoded"
                };
                o.headers.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static(content_type),
                );
            }
            if request.json && !o.headers.contains_key(http::header::ACCEPT) {
                o.headers.insert(
                    http::header::ACCEPT,
                    HeaderValue::from_static("application/json"),
                );
            }
            o.body = request.data;
            for (i, text) in cli.urls.into_iter().enumerate() {
                let url = parse_url(&text).map_err(|e| match similar_command(&text) {
                    Some(command) if i == 0 => usage(format!(
                        "unknown command {text:?}; did you mean {command}? (see --help)"
                    )),
                    _ => e,
                })?;
                o.urls.push((text, url));
            }
            (cli.client, cli.output)
        }
    };
    client_options(&mut o, client)?;
    o.verbose = output.verbose;
    o.format = Some(output.output);
    finish(o).map(|o| Mode::Run(Box::new(o)))
}

/// The options shared by fetching and `revoke`.
fn client_options(o: &mut Options, client: ClientArgs) -> Result<(), Stop> {
    o.token_url = client.token_url;
    o.client_id = client.client_id;
    o.client_secret = client.client_secret;
    o.auth_method = client.auth_method.map(|m| match m.as_str() {
        "basic" => AuthMethod::ClientSecretBasic,
        "post" => AuthMethod::ClientSecretPost,
        "private-key-jwt" => AuthMethod::PrivateKeyJwt,
        "tls-client-auth" => AuthMethod::TlsClientAuth,
        "self-signed-tls-client-auth" => AuthMethod::SelfSignedTlsClientAuth,
        _ => AuthMethod::None,
    });
    o.dpop = client.dpop.map(|alg| {
        use oauth_layer::dpop::DpopAlg;
        match DpopAlg::from_name(&alg) {
            Some(alg) => vec![alg],
            None => vec![DpopAlg::ES256, DpopAlg::EdDSA, DpopAlg::PS256],
        }
    });
    o.issuer = client.issuer;
    if o.issuer.as_ref().is_some_and(String::is_empty) {
        return Err(usage("--issuer needs a non-empty value"));
    }
    o.provider = client.provider;
    o.provider_arg = client.provider_arg;
    Ok(())
}

/// The options given on the command line, by name, in the order given.
fn given(command: &clap::Command, matches: &ArgMatches) -> Vec<String> {
    let mut given: Vec<(usize, String)> = command
        .get_arguments()
        .filter_map(|arg| {
            let id = arg.get_id().as_str();
            let name = match (arg.get_long(), arg.get_short()) {
                (Some(long), _) => format!("--{long}"),
                (None, Some(short)) => format!("-{short}"),
                (None, None) => return None,
            };
            if matches.try_contains_id(id).ok()?
                && matches.value_source(id)? == ValueSource::CommandLine
            {
                Some((matches.index_of(id)?, name))
            } else {
                None
            }
        })
        .collect();
    given.sort();
    given.into_iter().map(|(_, name)| name).collect()
}

/// `-H 'Name: value'`, each checked, or `-H @FILE`: a header a line from FILE (as curl reads
/// them), for values such as API keys that should stay off the command line. Messages name
/// the header, never its value, and `Authorization` is refused: the token goes there.
fn headers(given: &[String]) -> Result<HeaderMap, Stop> {
    let mut headers = HeaderMap::new();
    for (name, value) in header_lines(given, "-H")? {
        if name == http::header::AUTHORIZATION {
            return Err(usage(
                "-H Authorization: that header carries the token oauth-fetch gets (leave it out)",
            ));
        }
        let mut value = HeaderValue::try_from(value).map_err(|_| {
            usage(format!(
                "-H {name}: the value holds characters a header cannot"
            ))
        })?;
        value.set_sensitive(true);
        headers.append(name, value);
    }
    Ok(headers)
}

/// The headers `option` was given, each `Name: value` or `@FILE` (a header a line from FILE),
/// with checked names and trimmed values that a header can hold. Messages name the option and
/// the header, never a value.
pub(crate) fn header_lines(
    given: &[String],
    option: &str,
) -> Result<Vec<(HeaderName, String)>, Stop> {
    let mut lines = Vec::new();
    for text in given {
        match text.strip_prefix('@') {
            Some(path) => {
                let file = Given::File(PathBuf::from(path)).read(option)?;
                lines.extend(
                    file.lines()
                        .filter(|l| !l.trim().is_empty())
                        .map(str::to_owned),
                );
            }
            None => lines.push(text.clone()),
        }
    }
    let mut headers = Vec::new();
    for text in &lines {
        let Some((name, value)) = text.split_once(':') else {
            return Err(usage(format!(
                "{option} takes 'Name: value' (a colon after the name)"
            )));
        };
        let name = HeaderName::try_from(name.trim()).map_err(|_| {
            usage(format!(
                "{option}: the header's name is not a valid HTTP header name"
            ))
        })?;
        let value = value.trim();
        if HeaderValue::try_from(value).is_err() {
            return Err(usage(format!(
                "{option} {name}: the value holds characters a header cannot"
            )));
        }
        headers.push((name, value.to_owned()));
    }
    Ok(headers)
}

/// What clap cannot check: defaults that depend on other options, secrets from the
/// environment, options that do not go together, and last the secrets to read from files and
/// standard input.
fn finish(mut o: Options) -> Result<Options, Stop> {
    let flow_given = o.given.iter().any(|n| n == "--flow");
    if o.provider.is_some() && !flow_given {
        // A preset's sign-in is its authorization code flow.
        o.flow = "auth-code".into();
    }
    // Google's credentials make their own token requests, kept in memory.
    let google = o.workload.as_ref().and_then(Workload::google).is_some();
    // A JWT bearer key file may name the token endpoint: that run keeps its own way.
    o.resource_first = !o.revoke
        && o.token_url.is_none()
        && o.issuer.is_none()
        && o.provider.is_none()
        && o.flow != "jwt-bearer"
        && o.workload.as_ref().and_then(Workload::azure).is_none()
        && !google;
    if o.resource_first && !flow_given {
        // Someone pointing the tool at a resource is most likely a person.
        o.flow = "auth-code".into();
    }
    if o.method.is_none() && o.body.is_some() {
        // As curl does.
        o.method = Some(reqwest::Method::POST);
    }
    // Secrets given as `@FILE` or `-`, read once every option is known and checked.
    let mut to_read: Vec<(&'static str, Given)> = Vec::new();
    // A Redis URL in the environment turns the Redis store on, unless --cache chose the
    // other store; revoke and Google's credentials keep no tokens there.
    let redis_from_env = !o.revoke && o.cache.is_none() && !google;
    for (option, variable) in SECRET_OPTIONS {
        let field = o.secret_mut(option);
        match field.take().map(Given::from_arg) {
            Some(Given::Inline(value)) => *field = Some(value),
            Some(elsewhere) => {
                // Present now (for the checks), read once the options are checked.
                to_read.push((option, elsewhere));
                *field = Some(String::new());
            }
            None if *option == "--redis" && !redis_from_env => {}
            None => *field = from_env(variable),
        }
    }
    // Read (and complained about) in the order given.
    to_read.sort_by_key(|(option, _)| o.given.iter().position(|n| n == option));
    if o.urls.is_empty() && !o.revoke {
        return Err(usage("no URL given (see --help)"));
    }
    check_options(&o)?;
    check_stdin(&o, &to_read)?;
    for (option, given) in to_read {
        *o.secret_mut(option) = Some(given.read(option)?);
    }
    check_client_auth(&o)?;
    o.details = authorization_details(&o.authorization_details)?;
    load_tls(&mut o)?;
    Ok(o)
}

/// `--authorization-details`: each a JSON object with a `type`, or an array of them, given on
/// the command line or as `@FILE`. Messages say what is wrong, never the value.
fn authorization_details(given: &[String]) -> Result<Vec<AuthorizationDetail>, Stop> {
    const OPTION: &str = "--authorization-details";
    let mut details = Vec::new();
    for text in given {
        let text = match text.strip_prefix('@') {
            Some(path) => Given::File(PathBuf::from(path)).read(OPTION)?,
            None => text.clone(),
        };
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| usage(format!("{OPTION} is not JSON: {e}")))?;
        let items = match value {
            serde_json::Value::Array(items) if items.is_empty() => {
                return Err(usage(format!(
                    "{OPTION} is an empty array: give at least one detail"
                )));
            }
            serde_json::Value::Array(items) => items,
            other => vec![other],
        };
        for item in items {
            details.push(
                AuthorizationDetail::from_json(item).map_err(|e| {
                    usage(format!("{OPTION}: {}", crate::messages::config_text(&e)))
                })?,
            );
        }
    }
    Ok(details)
}

/// `--client-cert` and `--client-key` (a pair), then `--ca-cert`: read, checked, and kept
/// for the client and the requests to the URLs. Messages never show what the files hold.
fn load_tls(o: &mut Options) -> Result<(), Stop> {
    use crate::secret::read_key_file;

    // One without the other was refused with the other options.
    if let (Some(cert), Some(key)) = (&o.client_cert, &o.client_key) {
        let chain = read_key_file(cert, "--client-cert")?;
        let key = read_key_file(key, "--client-key")?;
        o.client_certificate = Some(
            ClientCertificate::from_pem(&*chain, &*key)
                .map_err(|e| usage(format!("--client-cert, --client-key: {e}")))?,
        );
    }
    if let Some(path) = &o.ca_cert {
        let pem = read_key_file(path, "--ca-cert")?;
        match reqwest::Certificate::from_pem_bundle(&pem) {
            Ok(roots) if !roots.is_empty() => o.ca_certificate = Some(pem.to_vec()),
            Ok(_) => {
                return Err(usage(format!(
                    "--ca-cert: {} holds no PEM certificate",
                    path.display()
                )));
            }
            Err(_) => {
                return Err(usage(format!(
                    "--ca-cert: {} is not a PEM certificate",
                    path.display()
                )));
            }
        }
    }
    Ok(())
}

/// Who the client is, checked now that every secret is known: `--key` outside jwt-bearer (or
/// with `--auth-method private-key-jwt`) is the client's own key, and `--client-cert` with
/// `--client-key` its certificate; a tls method needs the certificate, and none of them goes
/// with a secret or another method.
fn check_client_auth(o: &Options) -> Result<(), Stop> {
    let method = o.auth_method;
    if o.revoke && method == Some(AuthMethod::PrivateKeyJwt) {
        return Err(usage(
            "--auth-method private-key-jwt does not apply to revoke (it takes no --key)",
        ));
    }
    match (&o.client_cert, &o.client_key) {
        (Some(_), None) => {
            return Err(usage("--client-cert needs --client-key (its private key)"));
        }
        (None, Some(_)) => {
            return Err(usage(
                "--client-key needs --client-cert (the certificate it is the key of)",
            ));
        }
        _ => {}
    }
    if let Some(tls) = method.filter(|m| m.is_mutual_tls()) {
        if o.client_cert.is_none() {
            return Err(usage(format!(
                "--auth-method {} needs --client-cert and --client-key",
                method_name(tls)
            )));
        }
        if o.client_secret.is_some() {
            return Err(usage(format!(
                "--auth-method {} authenticates with the certificate: leave out \
                 --client-secret (or OAUTH_CLIENT_SECRET)",
                method_name(tls)
            )));
        }
    }
    if o.jar && o.key.is_none() {
        return Err(usage(
            "--jar signs the authorization request with the client's key: give --key FILE",
        ));
    }
    for (option, given) in [
        ("--key-alg", o.key_alg.is_some()),
        ("--key-id", o.key_id.is_some()),
    ] {
        if given && o.key.is_none() {
            return Err(usage(format!("{option} goes with --key")));
        }
    }
    let assertion = o
        .workload
        .as_ref()
        .is_some_and(|w| w.role(&o.flow) == Role::ClientAssertion);
    if method == Some(AuthMethod::PrivateKeyJwt) && o.key.is_none() && !assertion {
        return Err(usage(
            "--auth-method private-key-jwt needs --key FILE (the client's PEM private key)",
        ));
    }
    let clients_key =
        o.key.is_some() && (o.flow != "jwt-bearer" || method == Some(AuthMethod::PrivateKeyJwt));
    if !clients_key {
        return Ok(());
    }
    if let Some(other) = method.filter(|m| *m != AuthMethod::PrivateKeyJwt) {
        return Err(usage(format!(
            "--key is the client's key for --auth-method private-key-jwt (or the assertion's key \
             for --flow jwt-bearer), not for --auth-method {}",
            method_name(other)
        )));
    }
    if o.client_secret.is_some() {
        return Err(usage(
            "--key (the client's key, for private-key-jwt) and --client-secret (or \
             OAUTH_CLIENT_SECRET) are two ways to authenticate the client: give one",
        ));
    }
    Ok(())
}

/// `method` as `--auth-method` spells it.
pub(crate) fn method_name(method: AuthMethod) -> &'static str {
    match method {
        AuthMethod::ClientSecretBasic => "basic",
        AuthMethod::ClientSecretPost => "post",
        AuthMethod::PrivateKeyJwt => "private-key-jwt",
        AuthMethod::TlsClientAuth => "tls-client-auth",
        AuthMethod::SelfSignedTlsClientAuth => "self-signed-tls-client-auth",
        _ => "none",
    }
}

impl Options {
    /// `--client-cert`, `--client-key` and `--ca-cert`, as given (read by [`load_tls`]).
    fn tls(&mut self, tls: TlsArgs) {
        self.client_cert = tls.client_cert;
        self.client_key = tls.client_key;
        self.ca_cert = tls.ca_cert;
    }

    /// Where the value of the secret option `option` goes.
    fn secret_mut(&mut self, option: &str) -> &mut Option<String> {
        match option {
            "--client-secret" => &mut self.client_secret,
            "--password" => &mut self.password,
            "--refresh-token" => &mut self.refresh_token,
            "--subject-token" => &mut self.subject_token,
            "--actor-token" => &mut self.actor_token,
            "--token" => &mut self.token,
            "--redis" => &mut self.redis,
            other => unreachable!("{other} is one of SECRET_OPTIONS"),
        }
    }
}

/// Standard input serves one reader: one secret option given as `-`, and not with `--paste`,
/// which reads the address the browser ended on from it.
fn check_stdin(o: &Options, to_read: &[(&str, Given)]) -> Result<(), Stop> {
    let readers: Vec<&str> = to_read
        .iter()
        .filter(|(_, given)| matches!(given, Given::Stdin))
        .map(|(option, _)| *option)
        .collect();
    match readers.as_slice() {
        [] => Ok(()),
        [_] if !o.paste => Ok(()),
        [option] => Err(usage(format!(
            "{option} - and --paste both read standard input: give {option} as @FILE or in \
             its environment variable"
        ))),
        [first, second, ..] => Err(usage(format!(
            "{first} - and {second} -: only one option may read standard input (give the \
             others as @FILE or in their environment variables)"
        ))),
    }
}

/// Options that apply to some flows only, and those flows. Given with another flow they are a
/// usage error rather than silently ignored.
const FLOW_OPTIONS: &[(&str, &[&str])] = &[
    ("--paste", &["auth-code"]),
    ("--redirect-uri", &["auth-code"]),
    ("--audience", &["client-credentials", "token-exchange"]),
    ("--resource", &["client-credentials", "token-exchange"]),
    ("--subject", &["jwt-bearer"]),
    ("--par", &["auth-code"]),
    ("--jar", &["auth-code"]),
    ("--par-url", &["auth-code"]),
    (
        "--authorization-details",
        &["auth-code", "client-credentials", "token-exchange"],
    ),
    ("--subject-token", &["token-exchange"]),
    ("--subject-token-type", &["token-exchange"]),
    ("--actor-token", &["token-exchange"]),
    ("--actor-token-type", &["token-exchange"]),
    ("--requested-token-type", &["token-exchange"]),
];

/// The names `--provider` takes and, for each, what its `--provider-arg` is (`None`: it takes
/// none) and whether it is required (`false`: there is a default).
const PROVIDERS: &[(&str, Option<(&str, bool)>)] = &[
    ("github", None),
    ("google", None),
    ("microsoft", Some(("the tenant", false))),
    ("okta", Some(("the Okta domain", true))),
    ("auth0", Some(("the Auth0 domain", true))),
    ("keycloak", Some(("the realm URL", true))),
    (
        "gitlab",
        Some(("the base URL of a self-hosted GitLab", false)),
    ),
    ("discord", None),
    ("facebook", None),
    (
        "reddit",
        Some((
            "a descriptive user agent, such as 'linux:com.example.app:v1.0 (by /u/name)'",
            true,
        )),
    ),
    ("shopify", Some(("the shop, such as my-shop", true))),
    ("linkedin", None),
    ("kakao", None),
    ("naver", None),
    ("franceconnect", Some(("integration or production", true))),
    ("openid", None),
];

/// The flows `--provider` goes with: the preset's client serves them all.
const PROVIDER_FLOWS: &[&str] = &["auth-code", "device", "refresh", "client-credentials"];

/// Options that say what a preset already says: with `--provider`, ambiguous.
const PRESET_OPTIONS: &[&str] = &[
    "--token-url",
    "--auth-url",
    "--device-url",
    "--revocation-url",
    "--auth-method",
    "--dpop",
    "--par-url",
    "--profile",
    "--key",
    "--client-cert",
    "--client-key",
    "--ca-cert",
];

/// `--provider` and `--provider-arg`: a known name, its argument when it needs one, and none
/// of the options it would contradict.
pub(crate) fn check_provider(o: &Options) -> Result<(), Stop> {
    let Some(name) = o.provider.as_deref() else {
        if o.provider_arg.is_some() {
            return Err(usage("--provider-arg applies to --provider only"));
        }
        return Ok(());
    };
    let Some((_, arg)) = PROVIDERS.iter().find(|(n, _)| *n == name) else {
        let names: Vec<&str> = PROVIDERS.iter().map(|(n, _)| *n).collect();
        return Err(usage(format!(
            "unknown --provider {name:?} ({})",
            names.join(", ")
        )));
    };
    if let Some(option) = o
        .given
        .iter()
        .find(|n| PRESET_OPTIONS.contains(&n.as_str()))
    {
        return Err(usage(format!(
            "{option} and --provider are ambiguous: the preset configures the client (its \
             endpoints, client authentication and token binding); give one or the other"
        )));
    }
    match (name, &o.issuer) {
        ("openid", None) => return Err(usage("--provider openid needs --issuer")),
        ("openid", Some(_)) | (_, None) => {}
        (_, Some(_)) => {
            return Err(usage(format!(
                "--issuer and --provider {name} are ambiguous: the preset knows its issuer \
                 (--issuer goes with --provider openid only)"
            )));
        }
    }
    match (arg, o.provider_arg.as_deref()) {
        (None, Some(_)) => {
            return Err(usage(format!("--provider {name} takes no --provider-arg")));
        }
        (Some((what, true)), None) => {
            return Err(usage(format!(
                "--provider {name} needs --provider-arg: {what}"
            )));
        }
        (Some(_), Some(value)) if value.trim().is_empty() => {
            return Err(usage("--provider-arg needs a non-empty value"));
        }
        _ => {}
    }
    if !o.revoke && !PROVIDER_FLOWS.contains(&o.flow.as_str()) {
        return Err(usage(format!(
            "--provider goes with --flow auth-code, device, refresh or client-credentials \
             only (not {})",
            o.flow
        )));
    }
    Ok(())
}

/// The checks that need no file and no server: options that do not go together.
fn check_options(o: &Options) -> Result<(), Stop> {
    if o.revoke {
        return check_provider(o);
    }
    check_workload(o)?;
    check_resource_first(o)?;
    for (option, flows) in FLOW_OPTIONS {
        if !flows.contains(&o.flow.as_str()) && o.given.iter().any(|n| n == option) {
            return Err(usage(format!(
                "{option} applies to --flow {} only",
                flows.join(" or --flow ")
            )));
        }
    }
    if o.actor_token_type.is_some() && o.actor_token.is_none() {
        return Err(usage("--actor-token-type needs --actor-token"));
    }
    check_store(o)?;
    check_provider(o)
}

/// The flows the resource-first mode runs.
const RESOURCE_FIRST_FLOWS: &[&str] = &["auth-code", "client-credentials"];

/// Options the resource-first mode has no use for, and why.
const NOT_RESOURCE_FIRST: &[(&str, &str)] = &[
    (
        "--auth-url",
        "the endpoints come from the authorization server the resource names",
    ),
    (
        "--device-url",
        "the endpoints come from the authorization server the resource names",
    ),
    (
        "--auth-method",
        "the client authentication comes from the registration or the server's metadata",
    ),
    (
        "--audience",
        "the token is bound to the URL's own resource (RFC 8707)",
    ),
    (
        "--resource",
        "the token is bound to the URL's own resource (RFC 8707)",
    ),
    ("--identity", "each resource keeps one token in the store"),
    (
        "--par-url",
        "the endpoints come from the authorization server the resource names",
    ),
    (
        "--profile",
        "the client is registered or configured by the authorization server the resource \
         names, which the profile cannot check beforehand",
    ),
    (
        "--key",
        "the client authentication comes from the registration or the server's metadata",
    ),
    (
        "--client-cert",
        "the client authentication comes from the registration or the server's metadata",
    ),
    (
        "--client-key",
        "the client authentication comes from the registration or the server's metadata",
    ),
    (
        "--ca-cert",
        "the servers are reached with the system's certificate authorities only",
    ),
];

/// Without `--token-url`, `--issuer` or `--provider`, the resource says where its tokens come
/// from: a person's sign-in or client credentials, a client id given or registered, and none
/// of the options that would configure the authorization server by hand.
fn check_resource_first(o: &Options) -> Result<(), Stop> {
    if !o.resource_first {
        return Ok(());
    }
    if !RESOURCE_FIRST_FLOWS.contains(&o.flow.as_str()) {
        return Err(usage(format!(
            "--token-url is required (or --issuer to discover it, or --provider) for --flow {}; \
             without them oauth-fetch asks the resource where its tokens come from (RFC 9728), \
             for --flow auth-code or --flow client-credentials only",
            o.flow
        )));
    }
    if let Some((option, why)) = NOT_RESOURCE_FIRST
        .iter()
        .find(|(option, _)| o.given.iter().any(|n| n == option))
    {
        return Err(usage(format!(
            "{option} needs --token-url, --issuer or --provider: without them {why}"
        )));
    }
    match (&o.client_id, &o.client_secret) {
        (None, Some(_)) => Err(usage(
            "--client-secret (or OAUTH_CLIENT_SECRET) needs --client-id; without either, \
             oauth-fetch registers a client with the resource's authorization server (RFC 7591)",
        )),
        (Some(_), None) if o.flow == "client-credentials" => Err(usage(
            "--flow client-credentials with --client-id needs --client-secret (or leave out \
             --client-id to register a client with the resource's authorization server)",
        )),
        _ => Ok(()),
    }
}

/// `--cache`, `--redis` and `--identity`: one store at most, each with its feature, and an
/// identity only where there is a store to tell identities apart in.
pub(crate) fn check_store(o: &Options) -> Result<(), Stop> {
    if o.cache.is_some() && o.redis.is_some() {
        return Err(usage(
            "--cache and --redis do not go together: one store at a time (give one or the other)",
        ));
    }
    #[cfg(not(feature = "file-store"))]
    if o.cache.is_some() {
        return Err(usage(
            "--cache needs the crate's file-store feature (cargo install oauth-layer --features cli)",
        ));
    }
    #[cfg(not(feature = "redis-store"))]
    if o.redis.is_some() {
        return Err(usage(
            "--redis needs the crate's redis-store feature (cargo install oauth-layer --features \
             cli,redis-store)",
        ));
    }
    if o.identity.is_some() && o.cache.is_none() && o.redis.is_none() {
        return Err(usage(
            "--identity goes with --cache or --redis (it tells identities apart in a store)",
        ));
    }
    Ok(())
}

/// The command `word` is probably a typo of (at most two letters off), if any.
fn similar_command(word: &str) -> Option<&'static str> {
    ["revoke", "completions"]
        .into_iter()
        .find(|command| edit_distance(word, command) <= 2)
}

/// The Levenshtein distance between `a` and `b`, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

/// An absolute `http` or `https` URL.
fn parse_url(text: &str) -> Result<Url, Stop> {
    match Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Ok(url),
        Ok(_) => Err(usage(format!("{text:?} is not an http or https URL"))),
        Err(e) => Err(usage(format!("{text:?} is not a URL: {e}"))),
    }
}

/// Whether `--flow` needs a person (who signs in once, at the first request).
pub(crate) fn is_interactive(flow: &str) -> bool {
    matches!(flow, "auth-code" | "device")
}

/// The auth-code flow's redirect URI: `http` to a loopback address for the loopback server;
/// with `--paste`, `https` too (plain `http` elsewhere would carry the code in the clear).
#[cfg(feature = "auth-code")]
pub(crate) fn check_redirect_uri(text: &str, paste: bool) -> Result<(), Stop> {
    let url = Url::parse(text)
        .map_err(|e| usage(format!("--redirect-uri {text:?} is not a URL: {e}")))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    let loopback_http = url.scheme() == "http" && loopback;
    if paste && !(loopback_http || url.scheme() == "https") {
        return Err(usage(
            "--redirect-uri must be https (plain http only to a loopback address)",
        ));
    }
    if !paste && !loopback_http {
        return Err(usage(
            "--redirect-uri must be an http loopback address such as \
             http://127.0.0.1:1410/callback (or use --paste)",
        ));
    }
    Ok(())
}
