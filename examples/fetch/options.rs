//! The command line: the usage text, the options, their parsing and the checks that need no
//! file and no server.

use std::path::PathBuf;
use std::time::Duration;

use oauth_layer::AuthMethod;
use oauth_layer::client::TokenTypeHint;
use reqwest::Url;

use crate::secret::{Given, SECRET_OPTIONS, from_env};

pub(crate) const USAGE: &str = "\
usage: fetch [OPTIONS] URL...
       fetch revoke [OPTIONS] --token T

  --token-url URL          token endpoint (required, unless --issuer discovers it or a
                           service account key file names it)
  --client-id ID           client id (required, except with a service account key file)
  --client-secret S        client secret (a secret: see Secrets below)
  --auth-method M          basic | post | none (default: basic with a secret, none without)
  --issuer ISS             the server's issuer identifier. Without --token-url, the client is
                           configured from ISS's discovery document (OpenID Connect, then
                           RFC 8414); explicit --token-url, --auth-url, --device-url and
                           --revocation-url win over it. An `iss` in the authorization
                           response must match it (RFC 9207)
  --provider NAME          take the client from a provider preset: github | google |
                           microsoft | okta | auth0 | keycloak | gitlab | discord | facebook |
                           reddit | shopify | linkedin | kakao | naver | franceconnect |
                           openid (with --issuer). Its endpoints, client authentication and
                           quirks, with --client-id and --client-secret; --scope replaces its
                           default scopes; --flow defaults to auth-code, the preset's sign-in
                           (device, refresh and client-credentials also work; device only
                           where the preset has a device endpoint). Not with --token-url,
                           --auth-url, --device-url, --revocation-url, --auth-method, or
                           --issuer but for openid: ambiguous, a usage error
  --provider-arg VALUE     where the provider lives: the tenant for microsoft (default
                           common), the domain for okta and auth0, the realm URL for keycloak,
                           the base URL of a self-hosted gitlab (default gitlab.com), the shop
                           for shopify, a descriptive user agent for reddit, integration or
                           production for franceconnect. Required where there is no default
  --flow F                 client-credentials (default) | password | refresh | auth-code |
                           device | jwt-bearer | token-exchange
  --scope S                scope to request (repeatable)
  --resource URI           resource indicator (RFC 8707; client-credentials, token-exchange)
  --audience A             audience (client-credentials, token-exchange)
  --username U             username (password flow)
  --password P             password (password flow; a secret)
  --refresh-token T        refresh token (refresh flow; a secret)
  --auth-url URL           authorization endpoint (auth-code flow; required unless
                           discovered)
  --redirect-uri URI       redirect URI (auth-code flow), e.g. http://127.0.0.1:1410/callback
                           for a fixed port (default: a free port on 127.0.0.1; with --paste,
                           http://127.0.0.1:1410/callback)
  --paste                  auth-code flow: paste the address the browser ends on (read from
                           stdin) instead of receiving it on a loopback server; also what
                           happens when no browser can be opened
  --device-url URL         device authorization endpoint (device flow; required unless
                           discovered)
  --key FILE               jwt-bearer flow: a PEM private key, or a service account key file
                           (JSON; it also gives the token URL, the issuer and the key id, and
                           the scopes go in the assertion's scope claim)
  --key-alg ALG            RS256 | RS384 | RS512 | PS256 | ES256 | ES384 | EdDSA (default:
                           guessed from the PEM key: RS256, ES256/ES384 or EdDSA)
  --key-id KID             the assertion's kid header (PEM keys)
  --subject S              jwt-bearer flow: the assertion's sub (default: the client id, which
                           is its iss; none for a service account)
  --subject-token T        token-exchange flow: the token to exchange (required; a secret)
  --subject-token-type U   its type URI (default urn:ietf:params:oauth:token-type:access_token)
  --actor-token T          token-exchange flow: the acting party's token (a secret)
  --actor-token-type U     its type URI (default urn:ietf:params:oauth:token-type:access_token)
  --requested-token-type U token-exchange flow: the type of token wanted
  --cache DIR              keep tokens between runs in files in DIR, a directory of the
                           tool's own (made 0700, files 0600; plain JSON, so they hold the
                           tokens): a run starts with the token an earlier run left and signs
                           in or asks the server only when it cannot be renewed. Feature
                           file-store
  --redis URL              keep tokens in Redis instead (redis://[[user]:password@]host[:port]
                           [/db]), shared by every machine that uses it. Not with --cache.
                           A secret when it holds a password. Feature redis-store
  --identity NAME          whose tokens these are in the store (--cache or --redis), for
                           several people or roles of one client and grant
  --repeat N               send the URLs N times through one client (default 1)
  --interval SECS          wait SECS between rounds (default 0)
  -X METHOD                HTTP method (default GET, or POST with -d)
  -d BODY                  request body
  -v                       token events on stderr (never the token itself)
  -h, --help               this help

revoke (RFC 7009): revokes one token and prints `revoked`. Takes --client-id,
--client-secret, --auth-method, --token-url, --issuer, --provider, --provider-arg, -v and:
  --revocation-url URL     revocation endpoint (required unless --issuer discovers it)
  --token T                the token to revoke (required; a secret)
  --token-type-hint H      access_token (default) | refresh_token

Options that take a value also accept --name=value.

Secrets: --client-secret, --password, --refresh-token, --subject-token, --actor-token,
--token and --redis each take their value in one of these ways:
  VALUE                    on the command line: every user of this machine can read it
                           (ps, /proc/PID/cmdline). Avoid it where others log in
  @FILE                    the contents of FILE, without one trailing newline
  -                        standard input, read to its end, without one trailing newline.
                           One option at most, and not with --paste (which reads the address
                           from standard input)
  (option left out)        the environment variable named OAUTH_ and the option's name in
                           capitals: OAUTH_CLIENT_SECRET, OAUTH_PASSWORD, OAUTH_REFRESH_TOKEN,
                           OAUTH_SUBJECT_TOKEN, OAUTH_ACTOR_TOKEN, OAUTH_TOKEN, OAUTH_REDIS
                           (the Redis URL; it turns the Redis store on unless --cache is
                           given). An empty variable counts as unset; the option wins over it
A value that starts with @ always names a file and - always means standard input, so a secret
that starts with @ goes in a file or a variable. A file that cannot be read, or that is
empty, is a usage error, which shows neither the file's name nor its contents.

auth-code and device sign in once, at the first request, with the address to open on stderr
(auth-code also opens the browser, honouring $BROWSER); later requests and rounds reuse the
token and renew it with its refresh token.
Key files, client secrets, passwords (the one in a --redis URL too) and tokens are never
printed, wherever they came from, -v included.
Exit code: 0 when every response was 2xx, 1 otherwise, 2 for usage or configuration errors
(a failed discovery and a Redis that cannot be reached included). revoke: 0 when revoked, 1
when the server refused or could not be reached, 2 for usage or configuration errors.";

/// Everything the command line said.
#[derive(Default)]
pub(crate) struct Options {
    /// `fetch revoke ...`: revoke `--token` instead of fetching URLs.
    pub(crate) revoke: bool,
    /// The name of every option given, in order (`--name`, also for `--name=value`).
    given: Vec<String>,
    pub(crate) token_url: Option<String>,
    pub(crate) client_id: Option<String>,
    pub(crate) client_secret: Option<String>,
    pub(crate) auth_method: Option<AuthMethod>,
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
    pub(crate) body: Option<String>,
    pub(crate) verbose: bool,
    /// Each URL as given (printed back in the status line) and parsed.
    pub(crate) urls: Vec<(String, Url)>,
}

/// Why the program stops early.
pub(crate) enum Stop {
    /// `--help`: the usage text on stdout, exit code 0.
    Help,
    /// A usage or configuration problem: one line on stderr, exit code 2.
    Usage(String),
    /// `revoke`: the server refused, or could not be reached: one line on stderr, exit code 1.
    Failed(String),
}

pub(crate) fn usage(msg: impl Into<String>) -> Stop {
    Stop::Usage(msg.into())
}

pub(crate) fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, Stop> {
    let mut o = Options {
        flow: "client-credentials".into(),
        repeat: 1,
        ..Options::default()
    };
    let mut args = args.into_iter().peekable();
    // A first word `revoke` switches the mode.
    if args.peek().is_some_and(|first| first == "revoke") {
        args.next();
        o.revoke = true;
    }
    let mut only_urls = false;
    // Secrets given as `@FILE` or `-`, read once every option is known and checked.
    let mut to_read: Vec<(&'static str, Given)> = Vec::new();
    while let Some(arg) = args.next() {
        if only_urls || !arg.starts_with('-') || arg == "-" {
            if o.revoke {
                // Not echoed: it may be the token, put in the wrong place.
                return Err(usage("revoke takes no URL (see --help)"));
            }
            let url = parse_url(&arg)?;
            o.urls.push((arg, url));
            continue;
        }
        if arg == "--" {
            only_urls = true;
            continue;
        }
        // `--name=value` as well as `--name value`. Only the name is ever echoed back, so a
        // mistyped `--client-secret=...` does not print the secret.
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name.to_owned(), Some(value)),
            _ => (arg.clone(), None),
        };
        let mut value = || match inline {
            Some(v) => Ok(v.to_owned()),
            None => args
                .next()
                .ok_or_else(|| usage(format!("{name} needs a value"))),
        };
        o.given.push(name.clone());
        if let Some(&(option, _)) = SECRET_OPTIONS.iter().find(|(n, _)| *n == name) {
            // The last one given wins, whichever way each came.
            to_read.retain(|(n, _)| *n != option);
            let value = match Given::from_arg(value()?) {
                Given::Inline(value) => value,
                // Present now (for the checks), read once the options are checked.
                elsewhere => {
                    to_read.push((option, elsewhere));
                    String::new()
                }
            };
            *o.secret_mut(option) = Some(value);
            continue;
        }
        match name.as_str() {
            "--token-url" => o.token_url = Some(value()?),
            "--client-id" => o.client_id = Some(value()?),
            "--auth-method" => {
                o.auth_method = Some(match value()?.as_str() {
                    "basic" => AuthMethod::ClientSecretBasic,
                    "post" => AuthMethod::ClientSecretPost,
                    "none" => AuthMethod::None,
                    other => {
                        return Err(usage(format!(
                            "unknown --auth-method {other:?} (basic, post or none)"
                        )));
                    }
                })
            }
            "--flow" => o.flow = value()?,
            "--scope" => o.scopes.push(value()?),
            "--resource" => o.resource = Some(value()?),
            "--audience" => o.audience = Some(value()?),
            "--username" => o.username = Some(value()?),
            "--auth-url" => o.auth_url = Some(value()?),
            "--redirect-uri" => o.redirect_uri = Some(value()?),
            "--paste" if inline.is_none() => o.paste = true,
            "--device-url" => o.device_url = Some(value()?),
            "--issuer" => {
                o.issuer = Some(value()?).filter(|s| !s.is_empty());
                if o.issuer.is_none() {
                    return Err(usage("--issuer needs a non-empty value"));
                }
            }
            "--provider" => o.provider = Some(value()?),
            "--provider-arg" => o.provider_arg = Some(value()?),
            "--key" => o.key = Some(PathBuf::from(value()?)),
            "--key-alg" => o.key_alg = Some(value()?),
            "--key-id" => o.key_id = Some(value()?),
            "--subject" => o.subject = Some(value()?),
            "--subject-token-type" => o.subject_token_type = Some(value()?),
            "--actor-token-type" => o.actor_token_type = Some(value()?),
            "--requested-token-type" => o.requested_token_type = Some(value()?),
            "--revocation-url" => o.revocation_url = Some(value()?),
            "--cache" => {
                o.cache = Some(value()?).filter(|s| !s.is_empty()).map(PathBuf::from);
                if o.cache.is_none() {
                    return Err(usage("--cache needs a directory"));
                }
            }
            "--identity" => {
                o.identity = Some(value()?).filter(|s| !s.is_empty());
                if o.identity.is_none() {
                    return Err(usage("--identity needs a non-empty name"));
                }
            }
            "--token-type-hint" => {
                o.token_type_hint = Some(match value()?.as_str() {
                    "access_token" => TokenTypeHint::AccessToken,
                    "refresh_token" => TokenTypeHint::RefreshToken,
                    other => {
                        return Err(usage(format!(
                            "unknown --token-type-hint {other:?} (access_token or refresh_token)"
                        )));
                    }
                })
            }
            "--repeat" => {
                o.repeat = value()?
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| usage("--repeat takes a whole number, 1 or more"))?
            }
            "--interval" => {
                let secs: f64 = value()?
                    .parse()
                    .map_err(|_| usage("--interval takes a number of seconds"))?;
                o.interval = Duration::try_from_secs_f64(secs)
                    .map_err(|_| usage("--interval must be zero or more seconds"))?;
            }
            "-X" => {
                o.method = Some(
                    value()?
                        .parse()
                        .map_err(|_| usage("-X takes an HTTP method"))?,
                )
            }
            "-d" => o.body = Some(value()?),
            "-v" if inline.is_none() => o.verbose = true,
            "-h" | "--help" if inline.is_none() => return Err(Stop::Help),
            _ => return Err(usage(format!("unknown option {name} (see --help)"))),
        }
    }
    if o.provider.is_some() && !o.given.iter().any(|n| n == "--flow") {
        // A preset's sign-in is its authorization code flow.
        o.flow = "auth-code".into();
    }
    if o.method.is_none() && o.body.is_some() {
        // As curl does.
        o.method = Some(reqwest::Method::POST);
    }
    for (option, variable) in SECRET_OPTIONS {
        // A Redis URL in the environment turns the Redis store on, unless --cache chose the
        // other store; revoke keeps no tokens.
        if *option == "--redis" && (o.revoke || o.cache.is_some()) {
            continue;
        }
        let field = o.secret_mut(option);
        if field.is_none() {
            *field = from_env(variable);
        }
    }
    if o.urls.is_empty() && !o.revoke {
        return Err(usage("no URL given (see --help)"));
    }
    check_options(&o)?;
    check_stdin(&o, &to_read)?;
    for (option, given) in to_read {
        *o.secret_mut(option) = Some(given.read(option)?);
    }
    Ok(o)
}

impl Options {
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
            "{option} - and --paste both read standard input: give {option} as @FILE or in              its environment variable"
        ))),
        [first, second, ..] => Err(usage(format!(
            "{first} - and {second} -: only one option may read standard input (give the              others as @FILE or in their environment variables)"
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
    ("--key", &["jwt-bearer"]),
    ("--key-alg", &["jwt-bearer"]),
    ("--key-id", &["jwt-bearer"]),
    ("--subject", &["jwt-bearer"]),
    ("--subject-token", &["token-exchange"]),
    ("--subject-token-type", &["token-exchange"]),
    ("--actor-token", &["token-exchange"]),
    ("--actor-token-type", &["token-exchange"]),
    ("--requested-token-type", &["token-exchange"]),
];

/// What `fetch revoke` takes; everything else is a usage error there.
const REVOKE_OPTIONS: &[&str] = &[
    "--token-url",
    "--client-id",
    "--client-secret",
    "--auth-method",
    "--issuer",
    "--provider",
    "--provider-arg",
    "--revocation-url",
    "--token",
    "--token-type-hint",
    "-v",
];

/// What only `fetch revoke` takes.
const REVOKE_ONLY: &[&str] = &["--revocation-url", "--token", "--token-type-hint"];

const FLOWS: &[&str] = &[
    "client-credentials",
    "password",
    "refresh",
    "auth-code",
    "device",
    "jwt-bearer",
    "token-exchange",
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
            "{option} and --provider are ambiguous: the preset sets the endpoints and the \
             client authentication (give one or the other)"
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
        if let Some(other) = o
            .given
            .iter()
            .find(|n| !REVOKE_OPTIONS.contains(&n.as_str()))
        {
            return Err(usage(format!(
                "{other} does not apply to revoke (see --help)"
            )));
        }
        return check_provider(o);
    }
    if let Some(only) = o.given.iter().find(|n| REVOKE_ONLY.contains(&n.as_str())) {
        return Err(usage(format!("{only} applies to `fetch revoke` only")));
    }
    if !FLOWS.contains(&o.flow.as_str()) {
        return Err(usage(format!(
            "unknown --flow {:?} (client-credentials, password, refresh, auth-code, device, \
             jwt-bearer or token-exchange)",
            o.flow
        )));
    }
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
            "--cache needs the crate's file-store feature (cargo run --features file-store \
             --example fetch)",
        ));
    }
    #[cfg(not(feature = "redis-store"))]
    if o.redis.is_some() {
        return Err(usage(
            "--redis needs the crate's redis-store feature (cargo run --features redis-store \
             --example fetch)",
        ));
    }
    if o.identity.is_some() && o.cache.is_none() && o.redis.is_none() {
        return Err(usage(
            "--identity goes with --cache or --redis (it tells identities apart in a store)",
        ));
    }
    Ok(())
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
