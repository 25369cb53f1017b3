//! `fetch`: send requests with an OAuth bearer token, from the command line.
//!
//! ```text
//! cargo run --example fetch -- --token-url URL --client-id ID [OPTIONS] URL...
//! cargo run --example fetch -- --issuer ISSUER --client-id ID [OPTIONS] URL...
//! cargo run --example fetch -- --provider NAME [--provider-arg V] --client-id ID [OPTIONS] URL...
//! cargo run --example fetch -- revoke --revocation-url URL --client-id ID --token T
//! ```
//!
//! For each response it prints `STATUS URL` on a line of its own, then the body. With `-v`,
//! token events go to stderr, one line each and never with a token or secret in them:
//! `token: fetched`, `token: reused`, `token: renewed`, `token: retried after 401`, and
//! `token: not sent` for a URL that may not receive one.
//! Exit code: 0 when every response was 2xx, 1 otherwise, 2 for usage or configuration errors
//! (with a one-line message on stderr).
//!
//! Where the endpoints come from, first match wins: `--token-url` (and `--auth-url`,
//! `--device-url`, `--revocation-url`) as given; the `token_uri` of a service account key file
//! (`--flow jwt-bearer`); otherwise, with `--issuer`, the issuer's discovery document
//! (OpenID Connect, then RFC 8414), whose issuer must be exactly `--issuer` and whose endpoints
//! must be `https` (or `http` to loopback). Explicit options still win over the document. A
//! failed discovery is a configuration error (exit code 2).
//!
//! `--provider NAME` takes the client from one of the crate's provider presets
//! (`oauth_layer::provider`, feature `auth-code`) instead: its endpoints, client authentication
//! and quirks, with `--client-id` and `--client-secret`. `--scope` replaces the preset's default
//! scopes, and the flow defaults to the preset's own sign-in (`Preset::auth_code`: its
//! authorization parameters, such as Google's `access_type=offline` or Reddit's
//! `duration=permanent`), which the auth-code options below (`--paste`, `--redirect-uri`) adjust.
//! `--flow device` (with the preset's default scopes unless `--scope` is given), `refresh` and
//! `client-credentials` use the preset's client too; device needs a preset with a device
//! authorization endpoint. Presets that need to know where the provider lives take it from
//! `--provider-arg`: the tenant for `microsoft` (default `common`), the domain for `okta` and
//! `auth0`, the realm URL for `keycloak`, the base URL of a self-hosted `gitlab` (default
//! gitlab.com), the shop for `shopify`, a descriptive user agent for `reddit`, and `integration`
//! or `production` for `franceconnect` (feature `jwt`); `openid` discovers any OpenID Connect
//! provider from `--issuer`. Endpoint options (`--token-url`, `--auth-url`, `--device-url`,
//! `--revocation-url`), `--auth-method` and (but for `openid`) `--issuer` say what the preset
//! already says, so with `--provider` they are usage errors (ambiguous). Tokens go to the URLs
//! given as usual, as bearer tokens (Shopify's Admin API wants them in `X-Shopify-Access-Token`
//! instead, which this tool does not send).
//!
//! The interactive flows sign in once, at the first request. `--flow auth-code` opens the
//! system browser (`$BROWSER` is honoured) at the authorization URL, also printed on stderr, and
//! receives the code on a loopback server; with `--paste`, or when no browser can be opened, the
//! person pastes the address the browser ended on (read from stdin); on hosted platforms that
//! set `OAUTH_LAYER_REDIRECT_URL` and `OAUTH_LAYER_CODE_SOURCE_URL`, their code source is used.
//! `--flow device` prints the verification URL and the code to enter on stderr and polls until
//! the sign-in is approved. Later requests and `--repeat` rounds reuse the token, and its
//! refresh token renews it without asking again.
//!
//! `--flow jwt-bearer` (RFC 7523 §2.1) signs an assertion with `--key FILE`: a PEM private key,
//! whose assertions are issued (`iss`) by `--client-id` for `--subject` (default: the client
//! id), addressed (`aud`) to the token endpoint, with the scopes as the `scope` form parameter;
//! or a Google-style service account key file (JSON, recognised by its content), which also
//! gives the token endpoint, the issuer (its `client_email`, also the default client id) and
//! the key id, and takes the scopes in the assertion's `scope` claim.
//! The algorithm of a PEM key is `--key-alg`, or else guessed from the key: RS256 for RSA,
//! ES256 or ES384 for P-256 or P-384, EdDSA for Ed25519 (give `--key-alg` for PS256, RS384...).
//!
//! `--flow token-exchange` (RFC 8693) trades `--subject-token` (and `--actor-token`) for a
//! token.
//!
//! Tokens live in memory for one run unless a store keeps them between runs: `--cache DIR`
//! (feature `file-store`) keeps them in files in DIR (`oauth_layer::store::FileStore`: the
//! directory `0700`, each file `0600`, plain JSON, so the files hold the tokens; give it a
//! directory of its own, as an existing one is made private, and one writable by everyone such
//! as `/tmp` is refused), and `--redis URL` (feature `redis-store`) in a Redis
//! (`oauth_layer::store::RedisStore`), shared by every machine that uses it. The token source
//! reads through the store (a run starts with the token an earlier run left, and signs in or
//! asks the server only when there is none or it cannot be renewed with its refresh token) and
//! writes through it (every new token is saved before it is used). Processes sharing a store
//! make one renewal between them. `--identity NAME` tells apart the tokens of several people
//! (or roles) of one client and grant in one store. `--cache` and `--redis` do not go
//! together; a Redis that cannot be reached or refuses the credentials is a configuration error
//! (exit code 2), whose message never shows the password from the URL. With `-v`, a token read
//! from the store is reported as `token: loaded from the store`.
//!
//! `fetch revoke ...` revokes one token (RFC 7009) at `--revocation-url` (or the one the
//! issuer's discovery document names) and prints `revoked`. Exit code: 0 when revoked, 1 when
//! the server refused or could not be reached, 2 for usage or configuration errors (an
//! `invalid_client` included).
//!
//! Key files, subject, actor and revoked tokens are secrets: never printed, `-v` included.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::Extensions;
use oauth_layer::client::TokenTypeHint;
#[cfg(feature = "auth-code")]
use oauth_layer::flow::AuthCode;
use oauth_layer::flow::token_exchange::ACCESS_TOKEN_TYPE;
use oauth_layer::flow::{
    ActorToken, ClientCredentials, DeviceCode, Flow, Password, RefreshToken, SubjectToken,
    TokenExchange,
};
#[cfg(feature = "auth-code")]
use oauth_layer::provider::Preset;
use oauth_layer::{
    Action, AuthMethod, OAuthClient, OAuthMiddleware, Token, TokenSource, TokenSourceBuilder,
};
#[cfg(feature = "jwt")]
use oauth_layer::{
    flow::{JwtBearer, ServiceAccount},
    jwt::{Algorithm, SigningKey},
};
use reqwest::{Request, Response, Url};
use reqwest_middleware::{Middleware, Next};
use secrecy::SecretString;

const USAGE: &str = "\
usage: fetch [OPTIONS] URL...
       fetch revoke [OPTIONS] --token T

  --token-url URL          token endpoint (required, unless --issuer discovers it or a
                           service account key file names it)
  --client-id ID           client id (required, except with a service account key file)
  --client-secret S        client secret (or the OAUTH_CLIENT_SECRET variable)
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
  --password P             password (password flow)
  --refresh-token T        refresh token (refresh flow)
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
  --subject-token T        token-exchange flow: the token to exchange (required)
  --subject-token-type U   its type URI (default urn:ietf:params:oauth:token-type:access_token)
  --actor-token T          token-exchange flow: the acting party's token
  --actor-token-type U     its type URI (default urn:ietf:params:oauth:token-type:access_token)
  --requested-token-type U token-exchange flow: the type of token wanted
  --cache DIR              keep tokens between runs in files in DIR, a directory of the
                           tool's own (made 0700, files 0600; plain JSON, so they hold the
                           tokens): a run starts with the token an earlier run left and signs
                           in or asks the server only when it cannot be renewed. Feature
                           file-store
  --redis URL              keep tokens in Redis instead (redis://[[user]:password@]host[:port]
                           [/db]), shared by every machine that uses it. Not with --cache.
                           Feature redis-store
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
  --token T                the token to revoke (required)
  --token-type-hint H      access_token (default) | refresh_token

Options that take a value also accept --name=value.
auth-code and device sign in once, at the first request, with the address to open on stderr
(auth-code also opens the browser, honouring $BROWSER); later requests and rounds reuse the
token and renew it with its refresh token.
Key files, client secrets, passwords (the one in a --redis URL too) and tokens are never
printed.
Exit code: 0 when every response was 2xx, 1 otherwise, 2 for usage or configuration errors
(a failed discovery and a Redis that cannot be reached included). revoke: 0 when revoked, 1
when the server refused or could not be reached, 2 for usage or configuration errors.";

/// Everything the command line said.
#[derive(Default)]
struct Options {
    /// `fetch revoke ...`: revoke `--token` instead of fetching URLs.
    revoke: bool,
    /// The name of every option given, in order (`--name`, also for `--name=value`).
    given: Vec<String>,
    token_url: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    auth_method: Option<AuthMethod>,
    flow: String,
    scopes: Vec<String>,
    resource: Option<String>,
    audience: Option<String>,
    username: Option<String>,
    password: Option<String>,
    refresh_token: Option<String>,
    auth_url: Option<String>,
    redirect_uri: Option<String>,
    paste: bool,
    device_url: Option<String>,
    issuer: Option<String>,
    /// `--provider`: a provider preset's name.
    provider: Option<String>,
    /// `--provider-arg`: where the provider lives (tenant, domain, realm URL, shop...).
    provider_arg: Option<String>,
    /// `--key`: a PEM private key or a service account key file (jwt-bearer).
    key: Option<PathBuf>,
    key_alg: Option<String>,
    key_id: Option<String>,
    subject: Option<String>,
    subject_token: Option<String>,
    subject_token_type: Option<String>,
    actor_token: Option<String>,
    actor_token_type: Option<String>,
    requested_token_type: Option<String>,
    revocation_url: Option<String>,
    /// `--token` (revoke).
    token: Option<String>,
    token_type_hint: Option<TokenTypeHint>,
    /// `--cache`: the directory of a file store.
    cache: Option<PathBuf>,
    /// `--redis`: a Redis URL, which may hold a password (never echoed).
    redis: Option<String>,
    /// `--identity`: whose tokens these are in the store.
    identity: Option<String>,
    repeat: u32,
    interval: Duration,
    method: Option<reqwest::Method>,
    body: Option<String>,
    verbose: bool,
    /// Each URL as given (printed back in the status line) and parsed.
    urls: Vec<(String, Url)>,
}

/// Why the program stops early.
enum Stop {
    /// `--help`: the usage text on stdout, exit code 0.
    Help,
    /// A usage or configuration problem: one line on stderr, exit code 2.
    Usage(String),
    /// `revoke`: the server refused, or could not be reached: one line on stderr, exit code 1.
    Failed(String),
}

fn usage(msg: impl Into<String>) -> Stop {
    Stop::Usage(msg.into())
}

fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, Stop> {
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
        match name.as_str() {
            "--token-url" => o.token_url = Some(value()?),
            "--client-id" => o.client_id = Some(value()?),
            "--client-secret" => o.client_secret = Some(value()?),
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
            "--password" => o.password = Some(value()?),
            "--refresh-token" => o.refresh_token = Some(value()?),
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
            "--subject-token" => o.subject_token = Some(value()?),
            "--subject-token-type" => o.subject_token_type = Some(value()?),
            "--actor-token" => o.actor_token = Some(value()?),
            "--actor-token-type" => o.actor_token_type = Some(value()?),
            "--requested-token-type" => o.requested_token_type = Some(value()?),
            "--revocation-url" => o.revocation_url = Some(value()?),
            "--token" => o.token = Some(value()?),
            "--cache" => {
                o.cache = Some(value()?).filter(|s| !s.is_empty()).map(PathBuf::from);
                if o.cache.is_none() {
                    return Err(usage("--cache needs a directory"));
                }
            }
            // Not echoed: the URL may carry a password.
            "--redis" => o.redis = Some(value()?),
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
    if o.client_secret.is_none() {
        o.client_secret = std::env::var("OAUTH_CLIENT_SECRET")
            .ok()
            .filter(|s| !s.is_empty());
    }
    if o.urls.is_empty() && !o.revoke {
        return Err(usage("no URL given (see --help)"));
    }
    check_options(&o)?;
    Ok(o)
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
fn check_provider(o: &Options) -> Result<(), Stop> {
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
fn check_store(o: &Options) -> Result<(), Stop> {
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

/// The endpoint a run cannot do without: discovery runs when it was not given.
#[derive(Clone, Copy, PartialEq)]
enum Needs {
    /// Fetching URLs: the token endpoint.
    TokenEndpoint,
    /// `fetch revoke`: the revocation endpoint.
    RevocationEndpoint,
}

/// The client for `client_id`, its endpoints from the first of these that has them:
///
/// 1. the options (`--token-url`, `--auth-url`, `--device-url`, `--revocation-url`), or
///    `token_url` from a service account key file;
/// 2. the discovery document of `--issuer`, fetched when the endpoint the run `needs` is still
///    missing. Explicit endpoints win over the document's.
///
/// With `--provider` the client is the preset's instead ([`build_preset`]), and the options
/// that would say otherwise are usage errors ([`check_provider`]).
///
/// Usage and discovery problems are [`Stop::Usage`] (exit code 2).
async fn build_client(
    o: &Options,
    client_id: &str,
    token_url: Option<&str>,
    needs: Needs,
) -> Result<OAuthClient, Stop> {
    let mut client = OAuthClient::new(client_id);
    if let Some(method) = o.auth_method {
        if method != AuthMethod::None && o.client_secret.is_none() {
            return Err(usage(format!(
                "--auth-method {} needs --client-secret (or OAUTH_CLIENT_SECRET)",
                if method == AuthMethod::ClientSecretPost {
                    "post"
                } else {
                    "basic"
                }
            )));
        }
        client = client.auth_method(method);
    }
    if let Some(secret) = &o.client_secret {
        client = client.secret(secret.clone());
    }
    // Each checked (https, or http to loopback) whenever given.
    if let Some(url) = token_url {
        client = client
            .token_url(url)
            .map_err(|e| usage(format!("--token-url: {e}")))?;
    }
    if let Some(url) = &o.auth_url {
        client = client
            .authorization_url(url)
            .map_err(|e| usage(format!("--auth-url: {e}")))?;
    }
    if let Some(url) = &o.device_url {
        client = client
            .device_authorization_url(url)
            .map_err(|e| usage(format!("--device-url: {e}")))?;
    }
    if let Some(url) = &o.revocation_url {
        client = client
            .revocation_url(url)
            .map_err(|e| usage(format!("--revocation-url: {e}")))?;
    }
    let missing = match needs {
        Needs::TokenEndpoint => client.token_endpoint().is_none(),
        Needs::RevocationEndpoint => client.revocation_endpoint().is_none(),
    };
    let Some(issuer) = &o.issuer else {
        return match (needs, missing) {
            (Needs::TokenEndpoint, true) => Err(usage(
                "--token-url is required (or --issuer to discover it)",
            )),
            (Needs::RevocationEndpoint, true) => Err(usage(
                "revoke needs --revocation-url (or --issuer to discover it)",
            )),
            (_, false) => Ok(client),
        };
    };
    if !missing {
        return Ok(client.issuer(issuer.clone()));
    }
    let client = client
        .discover(issuer)
        .await
        .map_err(|e| usage(format!("discovery of {issuer} failed: {e}")))?;
    match needs {
        Needs::TokenEndpoint if client.token_endpoint().is_none() => Err(usage(format!(
            "the discovery document of {issuer} names no token endpoint (give --token-url)"
        ))),
        Needs::RevocationEndpoint if client.revocation_endpoint().is_none() => Err(usage(format!(
            "the discovery document of {issuer} names no revocation endpoint (give \
                 --revocation-url)"
        ))),
        _ => Ok(client),
    }
}

async fn build_source(o: &Options, events: &Events) -> Result<TokenSource, Stop> {
    // The key file comes first: a service account's names the token endpoint and client.
    #[cfg(feature = "jwt")]
    let key = match o.flow.as_str() {
        "jwt-bearer" => Some(load_key(o)?),
        _ => None,
    };
    #[cfg(feature = "jwt")]
    let (client_id, token_url) = match &key {
        // Explicit options win over the key file.
        Some(KeyFile::ServiceAccount(account)) => (
            Some(
                o.client_id
                    .clone()
                    .unwrap_or_else(|| account.email().into()),
            ),
            Some(
                o.token_url
                    .clone()
                    .unwrap_or_else(|| account.token_uri().into()),
            ),
        ),
        _ => (o.client_id.clone(), o.token_url.clone()),
    };
    #[cfg(not(feature = "jwt"))]
    let (client_id, token_url) = (o.client_id.clone(), o.token_url.clone());

    if o.provider.is_none() && token_url.is_none() && o.issuer.is_none() {
        return Err(usage(
            "--token-url is required (or --issuer to discover it, or --provider)",
        ));
    }
    let client_id = client_id.ok_or_else(|| usage("--client-id is required"))?;
    let preset = match &o.provider {
        Some(name) => Some(build_preset(o, name, &client_id).await?),
        None => None,
    };
    let client = match &preset {
        Some(preset) => preset_client(preset),
        None => build_client(o, &client_id, token_url.as_deref(), Needs::TokenEndpoint).await?,
    };
    let store = open_store(o).await?;
    let tokens = match o.flow.as_str() {
        "client-credentials" => {
            let mut flow = ClientCredentials::new();
            for s in &o.scopes {
                flow = flow.scope(s.clone());
            }
            if let Some(a) = &o.audience {
                flow = flow.audience(a.clone());
            }
            if let Some(r) = &o.resource {
                flow = flow.resource(r.clone());
            }
            events.source(client, flow, &store)
        }
        "password" => {
            let (Some(user), Some(password)) = (&o.username, &o.password) else {
                return Err(usage("--flow password needs --username and --password"));
            };
            let mut flow = Password::new(user.clone(), password.clone());
            for s in &o.scopes {
                flow = flow.scope(s.clone());
            }
            events.source(client, flow, &store)
        }
        "refresh" => {
            let Some(rt) = &o.refresh_token else {
                return Err(usage("--flow refresh needs --refresh-token"));
            };
            let mut flow = RefreshToken::new(rt.clone());
            for s in &o.scopes {
                flow = flow.scope(s.clone());
            }
            events.source(client, flow, &store)
        }
        #[cfg(feature = "auth-code")]
        "auth-code" => {
            if client.authorization_endpoint().is_none() {
                return Err(usage(
                    "--flow auth-code needs --auth-url (or --issuer, without --token-url, whose \
                     discovery document names one)",
                ));
            }
            // A preset's sign-in carries its scopes (or --scope) and authorization parameters.
            let mut flow = match &preset {
                Some(preset) => preset.auth_code(),
                None => o
                    .scopes
                    .iter()
                    .fold(AuthCode::new(), |flow, s| flow.scope(s.clone())),
            };
            if let Some(uri) = &o.redirect_uri {
                check_redirect_uri(uri, o.paste)?;
                flow = flow.redirect_uri(uri.clone());
            }
            if o.paste {
                flow = flow.paste();
            }
            events.source(client, flow, &store)
        }
        #[cfg(not(feature = "auth-code"))]
        "auth-code" => {
            return Err(usage(
                "--flow auth-code needs the crate's auth-code feature",
            ));
        }
        "device" => {
            if client.device_authorization_endpoint().is_none() {
                return Err(usage(match &o.provider {
                    Some(name) => format!(
                        "--provider {name} has no device authorization endpoint (use --flow \
                         auth-code)"
                    ),
                    None => "--flow device needs --device-url (or --issuer, without \
                             --token-url, whose discovery document names one)"
                        .to_owned(),
                }));
            }
            let scopes = match &preset {
                // The preset's scopes (or --scope, which replaced them).
                Some(preset) => preset_scopes(preset),
                None => o.scopes.clone(),
            };
            let mut flow = DeviceCode::new();
            for s in scopes {
                flow = flow.scope(s);
            }
            events.source(client, flow, &store)
        }
        #[cfg(feature = "jwt")]
        "jwt-bearer" => match key {
            Some(KeyFile::Pem(key)) => {
                // RFC 7523 §3: the issuer is typically the client id; `sub` defaults to it.
                let mut flow = JwtBearer::new(key, client_id.as_str());
                if let Some(subject) = &o.subject {
                    flow = flow.subject(subject.clone());
                }
                for s in &o.scopes {
                    flow = flow.scope(s.clone());
                }
                events.source(client, flow, &store)
            }
            Some(KeyFile::ServiceAccount(account)) => {
                // Issuer the account's email, scopes in the assertion's `scope` claim.
                let mut flow = account.flow(o.scopes.join(" "));
                if let Some(subject) = &o.subject {
                    flow = flow.subject(subject.clone());
                }
                events.source(client, flow, &store)
            }
            None => unreachable!("the key is loaded for --flow jwt-bearer"),
        },
        #[cfg(not(feature = "jwt"))]
        "jwt-bearer" => {
            return Err(usage("--flow jwt-bearer needs the crate's jwt feature"));
        }
        "token-exchange" => {
            let Some(subject) = &o.subject_token else {
                return Err(usage("--flow token-exchange needs --subject-token"));
            };
            let token_type =
                |t: &Option<String>| t.as_deref().unwrap_or(ACCESS_TOKEN_TYPE).to_owned();
            let mut flow = TokenExchange::new(SubjectToken::fixed(
                subject.clone(),
                token_type(&o.subject_token_type),
            ));
            if let Some(actor) = &o.actor_token {
                flow = flow.actor(ActorToken::fixed(
                    actor.clone(),
                    token_type(&o.actor_token_type),
                ));
            }
            if let Some(t) = &o.requested_token_type {
                flow = flow.requested_token_type(t.clone());
            }
            if let Some(a) = &o.audience {
                flow = flow.audience(a.clone());
            }
            if let Some(r) = &o.resource {
                flow = flow.resource(r.clone());
            }
            for s in &o.scopes {
                flow = flow.scope(s.clone());
            }
            events.source(client, flow, &store)
        }
        other => unreachable!("--flow {other:?} was checked when parsing"),
    };
    store.check(&tokens).await?;
    Ok(tokens)
}

/// Where tokens are kept between runs: `--cache DIR`, `--redis URL` or nowhere (memory only),
/// and `--identity`.
struct Store {
    #[cfg(feature = "file-store")]
    file: Option<oauth_layer::store::FileStore>,
    #[cfg(feature = "redis-store")]
    redis: Option<oauth_layer::store::RedisStore>,
    identity: Option<String>,
}

impl Store {
    /// The builder with this store and identity.
    fn attach(&self, builder: TokenSourceBuilder) -> TokenSourceBuilder {
        #[cfg(feature = "file-store")]
        let builder = match &self.file {
            Some(store) => builder.store(store.clone()),
            None => builder,
        };
        #[cfg(feature = "redis-store")]
        let builder = match &self.redis {
            Some(store) => builder.store(store.clone()),
            None => builder,
        };
        match &self.identity {
            Some(identity) => builder.identity(identity.clone()),
            None => builder,
        }
    }

    /// Reads the source's entry once before anything is sent, so that a cache directory the
    /// store refuses (a file, a symbolic link, another user's) is a configuration error rather
    /// than a warning at each request. (The Redis store was reached when it connected.)
    async fn check(&self, tokens: &TokenSource) -> Result<(), Stop> {
        #[cfg(feature = "file-store")]
        if let Some(store) = &self.file {
            use oauth_layer::store::TokenStore;
            store
                .load(tokens.cache_key())
                .await
                .map_err(|e| usage(format!("--cache: {e}")))?;
        }
        let _ = tokens;
        Ok(())
    }
}

/// The store of `--cache` or `--redis` (checked by [`check_store`]), and `--identity`.
async fn open_store(o: &Options) -> Result<Store, Stop> {
    Ok(Store {
        #[cfg(feature = "file-store")]
        file: open_file_store(o)?,
        #[cfg(feature = "redis-store")]
        redis: open_redis_store(o).await?,
        identity: o.identity.clone(),
    })
}

/// `--cache DIR`: a file store there, unless DIR is a directory everyone may write to (such as
/// `/tmp`), which the store would make private. Nothing is created or read yet.
#[cfg(feature = "file-store")]
fn open_file_store(o: &Options) -> Result<Option<oauth_layer::store::FileStore>, Stop> {
    use std::os::unix::fs::PermissionsExt;
    let Some(dir) = &o.cache else {
        return Ok(None);
    };
    if std::fs::metadata(dir).is_ok_and(|m| m.is_dir() && m.permissions().mode() & 0o002 != 0) {
        return Err(usage(format!(
            "--cache: {} is writable by everyone; give a directory of the tool's own (it is \
             made private, 0700)",
            dir.display()
        )));
    }
    Ok(Some(oauth_layer::store::FileStore::in_dir(dir)))
}

/// `--redis URL`: connected now; failing to is a configuration error whose message holds no
/// password.
#[cfg(feature = "redis-store")]
async fn open_redis_store(o: &Options) -> Result<Option<oauth_layer::store::RedisStore>, Stop> {
    let Some(url) = &o.redis else {
        return Ok(None);
    };
    oauth_layer::store::RedisStore::connect(url)
        .await
        .map(Some)
        .map_err(|e| usage(without_password(format!("--redis: {e}"), url)))
}

/// `text` without the password of the Redis URL `url`, as given or percent-decoded (the
/// crate's messages already leave it out; this makes sure).
#[cfg(feature = "redis-store")]
fn without_password(mut text: String, url: &str) -> String {
    let Some(password) = Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(str::to_owned))
    else {
        return text;
    };
    // Percent-decoded as in a query, but with `+` kept (it is no space in user information).
    let query = format!("p={}", password.replace('+', "%2B"));
    let decoded = url::form_urlencoded::parse(query.as_bytes())
        .next()
        .map(|(_, v)| v.into_owned());
    for secret in [Some(password), decoded].into_iter().flatten() {
        if !secret.is_empty() {
            text = text.replace(&secret, "[redacted]");
        }
    }
    text
}

/// A provider preset ([`build_preset`]); without the auth-code feature there is none.
#[cfg(feature = "auth-code")]
type PresetBox = Box<dyn Preset>;
#[cfg(not(feature = "auth-code"))]
type PresetBox = std::convert::Infallible;

/// The preset `--provider` names (checked by [`check_provider`]), for `client_id`, with
/// `--client-secret` (and with it the client authentication the provider documents),
/// `--scope` replacing its default scopes, and `--provider-arg` where it lives. `openid` and
/// `franceconnect` are discovered. Problems are [`Stop::Usage`] (exit code 2).
#[cfg(feature = "auth-code")]
async fn build_preset(o: &Options, name: &str, client_id: &str) -> Result<PresetBox, Stop> {
    use oauth_layer::provider::{
        Auth0, Discord, Facebook, GitHub, GitLab, Google, Kakao, Keycloak, LinkedIn, Microsoft,
        Naver, Okta, OpenId, Reddit, Shopify,
    };

    let arg = o.provider_arg.as_deref();
    let required = || arg.ok_or_else(|| usage(format!("--provider {name} needs --provider-arg")));
    let bad = |e: oauth_layer::Error| usage(format!("--provider {name}: {e}"));
    let scopes = (!o.scopes.is_empty()).then(|| o.scopes.join(" "));
    // Every preset with a fixed location: the secret, then the scopes.
    macro_rules! preset {
        ($made:expr) => {{
            let mut preset = $made.map_err(bad)?;
            if let Some(secret) = &o.client_secret {
                preset = preset.secret(secret.clone());
            }
            if let Some(scopes) = &scopes {
                preset = preset.scopes(scopes.clone());
            }
            Box::new(preset) as PresetBox
        }};
    }
    // The discovered ones: the secret goes on the client first, so that discovery picks the
    // client authentication from the methods the document lists.
    let client = || {
        let client = OAuthClient::new(client_id);
        match &o.client_secret {
            Some(secret) => client.secret(secret.clone()),
            None => client,
        }
    };
    Ok(match name {
        "github" => preset!(GitHub::new(client_id)),
        "google" => preset!(Google::new(client_id)),
        "microsoft" => preset!(Microsoft::new(arg.unwrap_or("common"), client_id)),
        "okta" => preset!(Okta::new(required()?, client_id)),
        "auth0" => preset!(Auth0::new(required()?, client_id)),
        "keycloak" => preset!(Keycloak::new(required()?, client_id)),
        "gitlab" => preset!(match arg {
            Some(base) => GitLab::self_hosted(base, client_id),
            None => GitLab::new(client_id),
        }),
        "discord" => preset!(Discord::new(client_id)),
        "facebook" => preset!(Facebook::new(client_id)),
        "reddit" => preset!(Reddit::new(client_id, required()?)),
        "shopify" => preset!(Shopify::new(required()?, client_id)),
        "linkedin" => preset!(LinkedIn::new(client_id)),
        "kakao" => preset!(Kakao::new(client_id)),
        "naver" => preset!(Naver::new(client_id)),
        "openid" => {
            let issuer = o
                .issuer
                .as_deref()
                .ok_or_else(|| usage("--provider openid needs --issuer"))?;
            let mut preset = OpenId::discover(client(), issuer)
                .await
                .map_err(|e| usage(format!("discovery of {issuer} failed: {e}")))?;
            if let Some(scopes) = &scopes {
                preset = preset.scopes(scopes.clone());
            }
            Box::new(preset)
        }
        #[cfg(feature = "jwt")]
        "franceconnect" => {
            use oauth_layer::provider::{Environment, FranceConnect};
            let environment = match required()? {
                "integration" => Environment::Integration,
                "production" => Environment::Production,
                _ => {
                    return Err(usage(
                        "--provider franceconnect takes --provider-arg integration or production",
                    ));
                }
            };
            let mut preset = FranceConnect::discover(client(), environment)
                .await
                .map_err(|e| usage(format!("discovery of {} failed: {e}", environment.issuer())))?;
            if let Some(scopes) = &scopes {
                preset = preset.scopes(scopes.clone());
            }
            Box::new(preset)
        }
        #[cfg(not(feature = "jwt"))]
        "franceconnect" => {
            return Err(usage(
                "--provider franceconnect needs the crate's jwt feature",
            ));
        }
        other => unreachable!("--provider {other:?} was checked when parsing"),
    })
}

#[cfg(not(feature = "auth-code"))]
async fn build_preset(_: &Options, _: &str, _: &str) -> Result<PresetBox, Stop> {
    Err(usage("--provider needs the crate's auth-code feature"))
}

/// The preset's client: endpoints, client authentication, user agent and quirks.
fn preset_client(preset: &PresetBox) -> OAuthClient {
    #[cfg(feature = "auth-code")]
    return preset.client().clone();
    #[cfg(not(feature = "auth-code"))]
    match *preset {}
}

/// The scopes of the preset's sign-in (its defaults, or `--scope`), for the device flow: those
/// its authorization request would carry (a preset keeps them to itself otherwise).
fn preset_scopes(preset: &PresetBox) -> Vec<String> {
    #[cfg(feature = "auth-code")]
    return preset
        .auth_code()
        .authorization_request(preset.client(), "http://127.0.0.1/callback")
        .ok()
        .and_then(|request| {
            let (_, scope) = request
                .url()
                .query_pairs()
                .find(|(name, _)| name == "scope")?;
            Some(
                scope
                    .split([' ', ','])
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            )
        })
        .unwrap_or_default();
    #[cfg(not(feature = "auth-code"))]
    match *preset {}
}

/// What `--key` held.
#[cfg(feature = "jwt")]
enum KeyFile {
    /// A PEM private key, with its algorithm and `--key-id`.
    Pem(SigningKey),
    /// A Google-style service account key file.
    ServiceAccount(ServiceAccount),
}

/// The largest key file read (a service account file is a few KiB, a PEM key less).
#[cfg(feature = "jwt")]
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// Reads `--key`: JSON (its first non-blank character is `{`) is a service account key file,
/// anything else a PEM private key. The contents never reach a message; the buffer is wiped.
#[cfg(feature = "jwt")]
fn load_key(o: &Options) -> Result<KeyFile, Stop> {
    use std::io::Read;
    use zeroize::Zeroizing;

    let Some(path) = &o.key else {
        return Err(usage("--flow jwt-bearer needs --key FILE"));
    };
    let mut bytes = Zeroizing::new(Vec::new());
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_KEY_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| usage(format!("--key: cannot read {}: {e}", path.display())))?;
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(usage(format!(
            "--key: {} is larger than {MAX_KEY_FILE_BYTES} bytes",
            path.display()
        )));
    }
    let is_json = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    if is_json {
        for (option, given) in [
            ("--key-alg", o.key_alg.is_some()),
            ("--key-id", o.key_id.is_some()),
        ] {
            if given {
                return Err(usage(format!(
                    "{option} does not apply to a service account key file (RS256, with its \
                     private_key_id)"
                )));
            }
        }
        let json = std::str::from_utf8(&bytes)
            .map_err(|_| usage(format!("--key: {} is not UTF-8", path.display())))?;
        let account = ServiceAccount::from_json(json)
            .map_err(|e| usage(format!("--key: {}: {e}", path.display())))?;
        return Ok(KeyFile::ServiceAccount(account));
    }
    if o.client_id.is_none() {
        return Err(usage(
            "--flow jwt-bearer with a PEM key needs --client-id (the assertion's issuer)",
        ));
    }
    let key = match o.key_alg.as_deref() {
        Some(name) => SigningKey::from_pem(key_algorithm(name)?, &*bytes)
            .map_err(|e| usage(format!("--key: {}: {e}", path.display())))?,
        // Only the right key type and curve parses and signs, so the first that works is it.
        None => [
            Algorithm::RS256,
            Algorithm::ES256,
            Algorithm::ES384,
            Algorithm::EdDSA,
        ]
        .into_iter()
        .find_map(|alg| SigningKey::from_pem(alg, &*bytes).ok())
        .ok_or_else(|| {
            usage(format!(
                "--key: {} is not a usable PEM private key (RSA, P-256, P-384 or Ed25519; \
                 PKCS#8, or PKCS#1 for RSA; not encrypted)",
                path.display()
            ))
        })?,
    };
    Ok(KeyFile::Pem(match &o.key_id {
        Some(kid) => key.kid(kid.clone()),
        None => key,
    }))
}

/// `--key-alg`, by its JWS name (any case).
#[cfg(feature = "jwt")]
fn key_algorithm(name: &str) -> Result<Algorithm, Stop> {
    [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ]
    .into_iter()
    .find(|alg| alg.as_str().eq_ignore_ascii_case(name))
    .ok_or_else(|| {
        usage(format!(
            "unknown --key-alg {name:?} (RS256, RS384, RS512, PS256, ES256, ES384 or EdDSA)"
        ))
    })
}

/// `fetch revoke`: one revocation request; prints `revoked`.
async fn revoke(o: &Options, events: &Events) -> Result<(), Stop> {
    let token = o
        .token
        .as_deref()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| usage("revoke needs --token"))?;
    let client_id = o
        .client_id
        .as_deref()
        .ok_or_else(|| usage("--client-id is required"))?;
    let client = match &o.provider {
        Some(name) => {
            let client = preset_client(&build_preset(o, name, client_id).await?);
            if client.revocation_endpoint().is_none() {
                return Err(usage(format!(
                    "--provider {name} names no revocation endpoint"
                )));
            }
            client
        }
        None => {
            build_client(
                o,
                client_id,
                o.token_url.as_deref(),
                Needs::RevocationEndpoint,
            )
            .await?
        }
    };
    let hint = o.token_type_hint.unwrap_or(TokenTypeHint::AccessToken);
    events.say(&format!("revoking (hint {})", hint.as_str()));
    client
        .revoke(&SecretString::from(token), hint)
        .await
        .map_err(|e| {
            // Wrong client credentials or an endpoint that cannot be used: 2, as when fetching.
            // A refusal (`unsupported_token_type`...) or an unreachable server: 1.
            let msg = format!("cannot revoke the token: {e}");
            if e.action() == Action::FixConfiguration {
                Stop::Usage(msg)
            } else {
                Stop::Failed(msg)
            }
        })?;
    println!("revoked");
    Ok(())
}

/// Whether `--flow` needs a person (who signs in once, at the first request).
fn is_interactive(flow: &str) -> bool {
    matches!(flow, "auth-code" | "device")
}

/// The auth-code flow's redirect URI: `http` to a loopback address for the loopback server;
/// with `--paste`, `https` too (plain `http` elsewhere would carry the code in the clear).
#[cfg(feature = "auth-code")]
fn check_redirect_uri(text: &str, paste: bool) -> Result<(), Stop> {
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

/// What `-v` reports. Every line names an event, never a token or secret.
#[derive(Clone)]
struct Events {
    verbose: bool,
    /// Counts tokens obtained from the server; the first one is "fetched", later ones "renewed".
    obtained: Arc<AtomicU64>,
    /// Whether tokens may come from a store (`--cache`, `--redis`).
    stored: bool,
    /// Set when a request first carried a token this run did not obtain: one from the store.
    loaded: Arc<AtomicBool>,
}

impl Events {
    fn say(&self, line: &str) {
        if self.verbose {
            eprintln!("token: {line}");
        }
    }

    fn source(&self, client: OAuthClient, flow: impl Flow, store: &Store) -> TokenSource {
        let events = self.clone();
        let builder = TokenSource::builder(client, flow);
        store
            .attach(builder)
            .on_token_change(move |token: &Token| {
                // After a token from the store, the first one obtained replaces it.
                let first = events.obtained.fetch_add(1, Ordering::SeqCst) == 0
                    && !events.loaded.load(Ordering::SeqCst);
                events.say(&format!(
                    "{} (expires in {} s{})",
                    if first { "fetched" } else { "renewed" },
                    token.lifetime().as_secs(),
                    if token.refresh_token().is_some() {
                        ", with a refresh token"
                    } else {
                        ""
                    }
                ));
            })
            .build()
    }
}

/// One send of the command line's request, put in its extensions so [`Observer`] can tell
/// its first attempt from the retry [`OAuthMiddleware`] makes after a 401.
#[derive(Clone)]
struct Exchange {
    /// [`Events::obtained`] when the send began: no new token since means the cached one was
    /// reused.
    obtained_before: u64,
    /// The status of each attempt so far.
    attempts: Arc<Mutex<Vec<u16>>>,
}

/// Sits below [`OAuthMiddleware`], so it sees every attempt as it goes on the wire, with the
/// token attached (or not), and reports `reused`, `retried after 401` and `not sent`.
struct Observer {
    events: Events,
}

#[async_trait::async_trait]
impl Middleware for Observer {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        if let Some(send) = extensions.get::<Exchange>().cloned() {
            let earlier = send
                .attempts
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let has_token = request
                .headers()
                .contains_key(reqwest::header::AUTHORIZATION);
            match earlier.as_slice() {
                [] if !has_token => self.events.say(&format!(
                    "not sent to {} (tokens go only to https and to loopback http)",
                    request.url().origin().ascii_serialization()
                )),
                [] if self.events.obtained.load(Ordering::SeqCst) == send.obtained_before => {
                    // No token obtained in this run yet: it came from the store (once).
                    if self.events.stored
                        && send.obtained_before == 0
                        && !self.events.loaded.swap(true, Ordering::SeqCst)
                    {
                        self.events.say("loaded from the store");
                    } else {
                        self.events.say("reused");
                    }
                }
                [] => {}
                [.., 401] => self.events.say("retried after 401"),
                [..] => self.events.say("request sent again"),
            }
            let response = next.run(request, extensions).await?;
            send.attempts
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(response.status().as_u16());
            return Ok(response);
        }
        next.run(request, extensions).await
    }
}

/// With `-v`, the crate's warnings (a token request that failed, a token kept after a failed
/// renewal) as `token: warning: ...` lines. The crate keeps tokens and secrets out of its events.
struct Warnings;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let meta = event.metadata();
        // `Level` orders by verbosity: anything above WARN is INFO, DEBUG or TRACE.
        if *meta.level() > tracing::Level::WARN || !meta.target().starts_with("oauth_layer") {
            return;
        }
        let mut text = EventText::default();
        event.record(&mut text);
        eprintln!(
            "token: warning: {}{}",
            one_line(text.message),
            one_line(text.fields)
        );
    }
}

/// An event's message, then its other fields as `; name: value`.
#[derive(Default)]
struct EventText {
    message: String,
    fields: String,
}

impl tracing::field::Visit for EventText {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.fields
                .push_str(&format!("; {}: {value:?}", field.name()));
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.record_debug(field, &format_args!("{value}"));
    }
}

/// `text` on one line: control characters (newlines included) become spaces.
fn one_line(text: impl std::fmt::Display) -> String {
    text.to_string()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `error: cause: cause`, as reqwest's own message names only the URL.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[tokio::main]
async fn main() -> ExitCode {
    let stop = |stop: Stop| match stop {
        Stop::Help => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Stop::Usage(msg) => {
            eprintln!("fetch: {}", one_line(msg));
            ExitCode::from(2)
        }
        Stop::Failed(msg) => {
            eprintln!("fetch: {}", one_line(msg));
            ExitCode::from(1)
        }
    };
    let options = match parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(s) => return stop(s),
    };
    let events = Events {
        verbose: options.verbose,
        obtained: Arc::new(AtomicU64::new(0)),
        stored: options.cache.is_some() || options.redis.is_some(),
        loaded: Arc::default(),
    };
    if options.verbose {
        use tracing_subscriber::layer::SubscriberExt;
        // Ignoring the error is right: it only means a subscriber is already set.
        let _ =
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Warnings));
    }
    if options.revoke {
        return match revoke(&options, &events).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(s) => stop(s),
        };
    }
    let tokens = match build_source(&options, &events).await {
        Ok(s) => s,
        Err(s) => return stop(s),
    };

    let transport = match reqwest::Client::builder().build() {
        Ok(c) => c,
        Err(e) => return stop(usage(format!("cannot build the HTTP client: {e}"))),
    };
    let http = reqwest_middleware::ClientBuilder::new(transport)
        // The interactive flows may sign in during a request (the first one).
        .with(OAuthMiddleware::from_source(tokens).interactive(is_interactive(&options.flow)))
        .with(Observer {
            events: events.clone(),
        })
        .build();

    let mut all_ok = true;
    for round in 0..options.repeat {
        if round > 0 && !options.interval.is_zero() {
            tokio::time::sleep(options.interval).await;
        }
        for (url, parsed) in &options.urls {
            let send = Exchange {
                obtained_before: events.obtained.load(Ordering::SeqCst),
                attempts: Arc::default(),
            };
            let mut request = http
                .request(options.method.clone().unwrap_or_default(), parsed.clone())
                .with_extension(send);
            if let Some(body) = &options.body {
                request = request.body(body.clone());
            }
            match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    all_ok &= status.is_success();
                    println!("{} {url}", status.as_u16());
                    match response.text().await {
                        Ok(body) if body.is_empty() || body.ends_with('\n') => print!("{body}"),
                        Ok(body) => println!("{body}"),
                        Err(e) => {
                            all_ok = false;
                            eprintln!("fetch: reading the body of {url} failed: {}", one_line(e));
                        }
                    }
                }
                Err(reqwest_middleware::Error::Middleware(e)) => {
                    all_ok = false;
                    match e.downcast_ref::<oauth_layer::Error>() {
                        // Wrong credentials, an unknown client, a scope the server refuses: no
                        // other URL will do better.
                        Some(e) if e.action() == Action::FixConfiguration => {
                            return stop(usage(format!("cannot get a token: {e}")));
                        }
                        Some(e) => eprintln!("fetch: {url}: cannot get a token: {}", one_line(e)),
                        None => eprintln!("fetch: {url}: {}", one_line(e)),
                    }
                }
                Err(reqwest_middleware::Error::Reqwest(e)) => {
                    all_ok = false;
                    eprintln!("fetch: {url}: {}", one_line(with_causes(&e)));
                }
            }
        }
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
