//! The command line as clap sees it: every option with its help text and group, the `revoke`
//! and `completions` subcommands, and one-line messages for what clap refuses.
//!
//! Values are kept as text here: the checks that say which options go together, and the
//! reading of secrets from files and standard input, happen afterwards ([`crate::options`]),
//! so that a mistake never echoes a secret and every message names the option it is about.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

/// The grants `--flow` takes.
pub(crate) const FLOWS: &[&str] = &[
    "client-credentials",
    "password",
    "refresh",
    "auth-code",
    "device",
    "jwt-bearer",
    "token-exchange",
];

/// The client authentication methods `--auth-method` takes.
pub(crate) const AUTH_METHODS: &[&str] = &[
    "basic",
    "post",
    "none",
    "private-key-jwt",
    "tls-client-auth",
    "self-signed-tls-client-auth",
];

/// The names `--provider` takes.
pub(crate) const PROVIDER_NAMES: &[&str] = &[
    "github",
    "google",
    "microsoft",
    "okta",
    "auth0",
    "keycloak",
    "gitlab",
    "discord",
    "facebook",
    "reddit",
    "shopify",
    "linkedin",
    "kakao",
    "naver",
    "franceconnect",
    "openid",
];

const SECRETS_HELP: &str = "\
Secrets: --client-secret, --password, --refresh-token, --subject-token, --actor-token,
--token (oauth-fetch revoke) and --redis each take their value in one of these ways:
  VALUE              on the command line: every user of this machine can read it
                     (ps, /proc/PID/cmdline). Avoid it where others log in
  @FILE              the contents of FILE, without one trailing newline
  -                  standard input, read to its end, without one trailing newline.
                     One option at most, and not with --paste (which reads the address
                     from standard input)
  (option left out)  the environment variable named OAUTH_ and the option's name in
                     capitals: OAUTH_CLIENT_SECRET, OAUTH_PASSWORD, OAUTH_REFRESH_TOKEN,
                     OAUTH_SUBJECT_TOKEN, OAUTH_ACTOR_TOKEN, OAUTH_TOKEN, OAUTH_REDIS
                     (the Redis URL; it turns the Redis store on unless --cache is
                     given). An empty variable counts as unset; the option wins over it
A value that starts with @ always names a file and - always means standard input, so a secret
that starts with @ goes in a file or a variable. A file that cannot be read, or that is
empty, is a usage error, which shows neither the file's name nor its contents.";

const AFTER_HELP: &str = "\
For each response oauth-fetch prints `STATUS URL` on a line of its own, then the body
(--output json: one JSON object a line instead). auth-code and device sign in once, at the
first request, with the address to open on stderr (auth-code also opens the browser,
honouring $BROWSER); later requests and rounds reuse the token and renew it with its refresh
token.

Resource-first: without --token-url, --issuer and --provider, the first request to each URL
goes without a token, and the resource's 401 (or its well-known URL) gives its metadata (RFC
9728), which names the authorization server. The client is --client-id (with --client-secret),
or else one registered there now (RFC 7591); the flow is auth-code (the default) or
client-credentials; each token is bound to its resource (RFC 8707) and the request is sent
again with it. --auth-url, --device-url, --auth-method, --audience, --resource and --identity
do not apply.

  oauth-fetch revoke --token T ...   revokes one token (RFC 7009) at --revocation-url (or the
                                     one --issuer discovers), with --token-type-hint; see
                                     oauth-fetch revoke --help
  oauth-fetch completions SHELL      prints a completion script (bash, zsh, fish, elvish,
                                     powershell)

Key files (--key, --client-key), client secrets, passwords (the one in a --redis URL too) and
tokens are never printed, wherever they came from, -v and --output json included.

Exit code: 0 when every response was 2xx, 1 otherwise, 2 for usage or configuration errors
(a failed discovery and a Redis that cannot be reached included). revoke: 0 when revoked, 1
when the server refused or could not be reached, 2 for usage or configuration errors.";

/// Send requests with an OAuth 2.0 bearer token, from the command line.
///
/// Gets a token from the authorization server (any grant: client credentials, a person's
/// sign-in in the browser or on another device, a refresh token, a JWT, token exchange),
/// keeps it, renews it before it expires, and sends it to the URLs given, and only to them.
#[derive(Parser)]
#[command(
    name = "oauth-fetch",
    version,
    args_override_self = true,
    args_conflicts_with_subcommands = true,
    max_term_width = 100,
    help_template = "{usage-heading} {usage}\n\n{about-with-newline}\n{all-args}{after-help}",
    after_help = format!("{SECRETS_HELP}\n\n{WORKLOAD_HELP}\n\n{AFTER_HELP}"),
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
    #[command(flatten)]
    pub(crate) grant: GrantArgs,
    #[command(flatten)]
    pub(crate) sign_in: SignInArgs,
    #[command(flatten)]
    pub(crate) jwt: JwtArgs,
    #[command(flatten)]
    pub(crate) exchange: ExchangeArgs,
    #[command(flatten)]
    pub(crate) workload: WorkloadArgs,
    #[command(flatten)]
    pub(crate) security: SecurityArgs,
    #[command(flatten)]
    pub(crate) tls: TlsArgs,
    #[command(flatten)]
    pub(crate) cache: CacheArgs,
    #[command(flatten)]
    pub(crate) request: RequestArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    /// The URLs to send the request to; the token goes only to their origins (https, or http
    /// to loopback).
    #[arg(value_name = "URL")]
    pub(crate) urls: Vec<String>,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Revoke one token (RFC 7009) and print `revoked`.
    #[command(
        args_override_self = true,
        help_template = "{usage-heading} {usage}\n\n{about-with-newline}\n{all-args}{after-help}",
        after_help = format!(
            "{SECRETS_HELP}\n\nExit code: 0 when revoked, 1 when the server refused or could \
             not be reached, 2 for usage or configuration errors (an invalid_client included)."
        ),
    )]
    Revoke(Box<RevokeArgs>),
    /// Print a shell completion script, for example
    /// `oauth-fetch completions bash > ~/.local/share/bash-completion/completions/oauth-fetch`.
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
}

/// `oauth-fetch revoke`.
#[derive(Args)]
pub(crate) struct RevokeArgs {
    #[command(flatten)]
    pub(crate) client: ClientArgs,
    /// Revocation endpoint (required unless --issuer discovers it).
    #[arg(
        long,
        value_name = "URL",
        allow_hyphen_values = true,
        help_heading = "Revocation"
    )]
    pub(crate) revocation_url: Option<String>,
    /// The token to revoke (required; a secret: @FILE, - or OAUTH_TOKEN).
    #[arg(
        long,
        value_name = "T",
        allow_hyphen_values = true,
        help_heading = "Revocation"
    )]
    pub(crate) token: Option<String>,
    /// What the token is.
    #[arg(
        long,
        value_name = "H",
        value_parser = ["access_token", "refresh_token"],
        hide_possible_values = false,
        help_heading = "Revocation"
    )]
    pub(crate) token_type_hint: Option<String>,
    #[command(flatten)]
    pub(crate) tls: TlsArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    /// Nothing: a word here is a mistake (perhaps the token, put in the wrong place), refused
    /// without being echoed.
    #[arg(hide = true, allow_hyphen_values = false)]
    pub(crate) stray: Vec<String>,
}

/// Who the client is and where its authorization server lives.
#[derive(Args)]
#[command(next_help_heading = "Client")]
pub(crate) struct ClientArgs {
    /// Token endpoint (unless --issuer discovers it, a service account key file names it or
    /// --provider knows it). Without any of them the run is resource-first: each URL's resource
    /// names its authorization server (RFC 9728; see below).
    #[arg(long, value_name = "URL", allow_hyphen_values = true)]
    pub(crate) token_url: Option<String>,
    /// Client id (required, except with a service account key file and resource-first, where
    /// a client is registered at the resource's authorization server when it is left out).
    #[arg(long, value_name = "ID", allow_hyphen_values = true)]
    pub(crate) client_id: Option<String>,
    /// Client secret (a secret: @FILE, - or OAUTH_CLIENT_SECRET; see Secrets below).
    #[arg(long, value_name = "S", allow_hyphen_values = true)]
    pub(crate) client_secret: Option<String>,
    /// How the client authenticates (default: basic with a secret, private-key-jwt with
    /// --key but for jwt-bearer, tls-client-auth with --client-cert, none without).
    /// private-key-jwt signs with --key; the tls methods present --client-cert (RFC 8705).
    #[arg(long, value_name = "M", value_parser = AUTH_METHODS.to_vec())]
    pub(crate) auth_method: Option<String>,
    /// Bind tokens to a fresh key with DPoP (RFC 9449): every token and resource request carries
    /// a proof, and a stolen token is useless without the key. ALG picks the key's algorithm
    /// (default: ES256, or the first the server's metadata accepts).
    #[arg(
        long,
        value_name = "ALG",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "auto",
        value_parser = ["auto", "ES256", "EdDSA", "PS256"]
    )]
    pub(crate) dpop: Option<String>,
    /// The server's issuer identifier. Without --token-url the client is configured from its
    /// discovery document (OpenID Connect, then RFC 8414); explicit --token-url, --auth-url,
    /// --device-url and --revocation-url win over it. An `iss` in the authorization response
    /// must match it (RFC 9207).
    #[arg(long, value_name = "ISS", allow_hyphen_values = true)]
    pub(crate) issuer: Option<String>,
    /// Take the client from a provider preset: its endpoints, client authentication and quirks,
    /// with --client-id and --client-secret; --scope replaces its default scopes; --flow
    /// defaults to auth-code, the preset's sign-in (device, refresh and client-credentials also
    /// work). Not with --token-url, --auth-url, --device-url, --revocation-url, --auth-method,
    /// or --issuer but for openid (which discovers the provider from --issuer).
    #[arg(long, value_name = "NAME", value_parser = PROVIDER_NAMES.to_vec())]
    pub(crate) provider: Option<String>,
    /// Where the provider lives: the tenant for microsoft (default common), the domain for okta
    /// and auth0, the realm URL for keycloak, the base URL of a self-hosted gitlab (default
    /// gitlab.com), the shop for shopify, a descriptive user agent for reddit, integration or
    /// production for franceconnect.
    #[arg(long, value_name = "VALUE", allow_hyphen_values = true)]
    pub(crate) provider_arg: Option<String>,
}

/// How the token is obtained.
#[derive(Args)]
#[command(next_help_heading = "Grant")]
pub(crate) struct GrantArgs {
    /// The grant [default: client-credentials; auth-code with --provider and resource-first,
    /// which takes auth-code and client-credentials only].
    #[arg(long, value_name = "F", value_parser = FLOWS.to_vec())]
    pub(crate) flow: Option<String>,
    /// A scope to request (repeatable).
    #[arg(long, value_name = "S", allow_hyphen_values = true)]
    pub(crate) scope: Vec<String>,
    /// Resource indicator (RFC 8707; client-credentials, token-exchange).
    #[arg(long, value_name = "URI", allow_hyphen_values = true)]
    pub(crate) resource: Option<String>,
    /// Audience (client-credentials, token-exchange).
    #[arg(long, value_name = "A", allow_hyphen_values = true)]
    pub(crate) audience: Option<String>,
    /// Username (password flow).
    #[arg(long, value_name = "U", allow_hyphen_values = true)]
    pub(crate) username: Option<String>,
    /// Password (password flow; a secret: @FILE, - or OAUTH_PASSWORD).
    #[arg(long, value_name = "P", allow_hyphen_values = true)]
    pub(crate) password: Option<String>,
    /// Refresh token (refresh flow; a secret: @FILE, - or OAUTH_REFRESH_TOKEN).
    #[arg(long, value_name = "T", allow_hyphen_values = true)]
    pub(crate) refresh_token: Option<String>,
}

/// A person's sign-in: `--flow auth-code` and `--flow device`.
#[derive(Args)]
#[command(next_help_heading = "Sign-in (--flow auth-code, --flow device)")]
pub(crate) struct SignInArgs {
    /// Authorization endpoint (auth-code flow; required unless discovered).
    #[arg(long, value_name = "URL", allow_hyphen_values = true)]
    pub(crate) auth_url: Option<String>,
    /// Redirect URI (auth-code flow), e.g. http://127.0.0.1:1410/callback for a fixed port
    /// (default: a free port on 127.0.0.1; with --paste, http://127.0.0.1:1410/callback).
    #[arg(long, value_name = "URI", allow_hyphen_values = true)]
    pub(crate) redirect_uri: Option<String>,
    /// auth-code flow: paste the address the browser ends on (read from stdin) instead of
    /// receiving it on a loopback server; also what happens when no browser can be opened.
    #[arg(long)]
    pub(crate) paste: bool,
    /// Device authorization endpoint (device flow; required unless discovered).
    #[arg(long, value_name = "URL", allow_hyphen_values = true)]
    pub(crate) device_url: Option<String>,
}

/// `--flow jwt-bearer` and `--auth-method private-key-jwt`.
#[derive(Args)]
#[command(next_help_heading = "Keys (--flow jwt-bearer, --auth-method private-key-jwt)")]
pub(crate) struct JwtArgs {
    /// A PEM private key: the assertion's (jwt-bearer), else the client's (private-key-jwt,
    /// RFC 7523 §2.2). For jwt-bearer also a service account key file (JSON; it also gives the
    /// token URL, the issuer and the key id, and the scopes go in the assertion's scope claim).
    #[arg(long, value_name = "FILE", allow_hyphen_values = true, value_hint = clap::ValueHint::FilePath)]
    pub(crate) key: Option<std::path::PathBuf>,
    /// RS256 | RS384 | RS512 | PS256 | ES256 | ES384 | EdDSA (default: guessed from the PEM
    /// key: RS256 (PS256 with --profile), ES256/ES384 or EdDSA).
    #[arg(long, value_name = "ALG", allow_hyphen_values = true)]
    pub(crate) key_alg: Option<String>,
    /// The assertion's kid header (PEM keys).
    #[arg(long, value_name = "KID", allow_hyphen_values = true)]
    pub(crate) key_id: Option<String>,
    /// The jwt-bearer assertion's sub (default: the client id, which is its iss; none for a
    /// service account).
    #[arg(long, value_name = "S", allow_hyphen_values = true)]
    pub(crate) subject: Option<String>,
}

/// `--flow token-exchange`.
#[derive(Args)]
#[command(next_help_heading = "Token exchange (--flow token-exchange)")]
pub(crate) struct ExchangeArgs {
    /// The token to exchange (required; a secret: @FILE, - or OAUTH_SUBJECT_TOKEN).
    #[arg(long, value_name = "T", allow_hyphen_values = true)]
    pub(crate) subject_token: Option<String>,
    /// Its type URI (default urn:ietf:params:oauth:token-type:access_token).
    #[arg(long, value_name = "U", allow_hyphen_values = true)]
    pub(crate) subject_token_type: Option<String>,
    /// The acting party's token (a secret: @FILE, - or OAUTH_ACTOR_TOKEN).
    #[arg(long, value_name = "T", allow_hyphen_values = true)]
    pub(crate) actor_token: Option<String>,
    /// Its type URI (default urn:ietf:params:oauth:token-type:access_token).
    #[arg(long, value_name = "U", allow_hyphen_values = true)]
    pub(crate) actor_token_type: Option<String>,
    /// The type of token wanted.
    #[arg(long, value_name = "U", allow_hyphen_values = true)]
    pub(crate) requested_token_type: Option<String>,
}

/// Workload identity: a short-lived credential the platform hands the service, read anew for
/// every token request, instead of a long-lived secret.
#[derive(Args)]
#[command(next_help_heading = "Workload identity (instead of a secret; see below)")]
pub(crate) struct WorkloadArgs {
    /// The credential is the contents of FILE (a Kubernetes projected service-account token,
    /// a SPIFFE JWT-SVID), read again for each token request, so a file rotated in place is
    /// picked up. A JWT past its own exp is never sent.
    #[arg(long, value_name = "FILE", allow_hyphen_values = true, value_hint = clap::ValueHint::FilePath)]
    pub(crate) assertion_file: Option<std::path::PathBuf>,
    /// The credential is the answer to a GET of URL (https, or http to loopback; no
    /// redirects, 64 KiB at most), as text unless --assertion-field names a JSON member.
    #[arg(long, value_name = "URL", allow_hyphen_values = true)]
    pub(crate) assertion_url: Option<String>,
    /// A header for --assertion-url, `Name: value` (repeatable), or @FILE: a header a line from
    /// FILE. Values are secrets (often a bearer token): put them in a file, as the command line
    /// is visible to every user of the machine.
    #[arg(long, value_name = "HEADER", allow_hyphen_values = true)]
    pub(crate) assertion_header: Vec<String>,
    /// --assertion-url answers a JSON object: the credential is its string member NAME.
    #[arg(long, value_name = "NAME", allow_hyphen_values = true)]
    pub(crate) assertion_field: Option<String>,
    /// The credential is what PROG prints on stdout, run for each token request without a
    /// shell (30 s at most, 64 KiB of output at most).
    #[arg(long, value_name = "PROG", allow_hyphen_values = true, value_hint = clap::ValueHint::CommandName)]
    pub(crate) assertion_command: Option<String>,
    /// An argument for --assertion-command (repeatable, in order; no shell expands it).
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub(crate) assertion_arg: Vec<String>,
    /// GitHub Actions' OIDC token for audience AUD, from ACTIONS_ID_TOKEN_REQUEST_URL and
    /// ACTIONS_ID_TOKEN_REQUEST_TOKEN (jobs with `permissions: id-token: write`).
    #[arg(long, value_name = "AUD", allow_hyphen_values = true)]
    pub(crate) github_actions_audience: Option<String>,
    /// Azure workload identity: the client is AZURE_CLIENT_ID, its token endpoint that of
    /// AZURE_TENANT_ID (at AZURE_AUTHORITY_HOST, default `https://login.microsoftonline.com/`),
    /// and AZURE_FEDERATED_TOKEN_FILE its client assertion. Give --scope (such as
    /// `https://graph.microsoft.com/.default`); not with --token-url, --issuer or --client-id.
    #[arg(long)]
    pub(crate) azure_workload_identity: bool,
    /// Google's application default credentials: the file GOOGLE_APPLICATION_CREDENTIALS
    /// names, else gcloud's application_default_credentials.json (in CLOUDSDK_CONFIG, else
    /// $HOME/.config/gcloud), else the metadata server (GCE_METADATA_HOST, default
    /// 169.254.169.254). --scope gives the scopes (default
    /// `https://www.googleapis.com/auth/cloud-platform`).
    #[arg(long)]
    pub(crate) google_adc: bool,
    /// A Google credentials file (service_account, authorized_user or external_account; see
    /// --google-credential-type), read when the run starts. --scope gives the scopes (default
    /// `https://www.googleapis.com/auth/cloud-platform`; an authorized_user keeps the scopes
    /// it was granted).
    #[arg(long, value_name = "FILE", allow_hyphen_values = true, value_hint = clap::ValueHint::FilePath)]
    pub(crate) google_credentials: Option<std::path::PathBuf>,
    /// The type the Google credentials file must be (repeatable; default: any of them): a file
    /// of another type is refused, naming its type. Also for the files --google-adc finds.
    #[arg(
        long,
        value_name = "TYPE",
        value_parser = ["service_account", "authorized_user", "external_account"],
        hide_possible_values = false
    )]
    pub(crate) google_credential_type: Vec<String>,
    /// Let an external_account file whose credential source is an executable run it
    /// (--google-credentials, --google-adc; off by default, as such a file runs whatever
    /// program it names). --google-adc also follows GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1.
    #[arg(long)]
    pub(crate) allow_executables: bool,
}

/// What a workload identity credential is used as, and how the sources are picked.
const WORKLOAD_HELP: &str = "\
Workload identity: --assertion-file, --assertion-url, --assertion-command,
--github-actions-audience, --azure-workload-identity, --google-adc and --google-credentials
each name where a short-lived credential comes from; give one at most. It is read again for
each token request, never printed, and used as:
  --flow jwt-bearer       the grant's assertion (RFC 7523 \u{a7}2.1); no --key, no --subject
  --flow token-exchange   the subject token (RFC 8693), of --subject-token-type (default
                          urn:ietf:params:oauth:token-type:jwt); not with --subject-token
  any other flow          the client's authentication: a client assertion (RFC 7523 \u{a7}2.2,
                          private-key-jwt), instead of --client-secret or --key
--azure-workload-identity is always the client's authentication.
--google-adc and --google-credentials are Google's credentials: they name their own client,
token endpoint and grant (a service account's signed JWT, a refresh token, a token exchange
at Google's STS, or the metadata server), so they go with the default flow only and not with
--client-id, --client-secret, --key, --token-url, --issuer or --provider; their tokens are
kept in memory only (no --cache, --redis or --identity).";

/// Security profiles and the protocols they are made of.
#[derive(Args)]
#[command(next_help_heading = "High security")]
pub(crate) struct SecurityArgs {
    /// Follow a security profile: fapi2 (FAPI 2.0) or fapi2-message-signing. It needs
    /// private-key-jwt (--key) or mutual TLS (--client-cert), --dpop or a client certificate,
    /// and --issuer; it turns on PAR and refuses, as a usage error, what the profile forbids.
    #[arg(long, value_name = "P", value_parser = PROFILES.to_vec())]
    pub(crate) profile: Option<String>,
    /// auth-code flow: push the authorization request to the server first (PAR, RFC 9126);
    /// the browser's URL carries only a reference to it.
    #[arg(long)]
    pub(crate) par: bool,
    /// Pushed authorization request endpoint (unless --issuer discovers it).
    #[arg(long, value_name = "URL", allow_hyphen_values = true)]
    pub(crate) par_url: Option<String>,
    /// auth-code flow: sign the authorization request with --key (JAR, RFC 9101).
    #[arg(long)]
    pub(crate) jar: bool,
    /// Rich authorization request (RFC 9396; auth-code, client-credentials, token-exchange):
    /// a JSON object with a "type", an array of them, or @FILE holding one (repeatable).
    #[arg(long, value_name = "JSON", allow_hyphen_values = true)]
    pub(crate) authorization_details: Vec<String>,
}

/// Mutual TLS and private certificate authorities: for fetching and for `revoke`.
#[derive(Args)]
#[command(next_help_heading = "High security")]
pub(crate) struct TlsArgs {
    /// Mutual TLS (RFC 8705): the client certificate chain (PEM) every connection to the
    /// server and to the URLs presents; tokens are bound to it. Needs --client-key.
    #[arg(long, value_name = "FILE", allow_hyphen_values = true, value_hint = clap::ValueHint::FilePath)]
    pub(crate) client_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --client-cert.
    #[arg(long, value_name = "FILE", allow_hyphen_values = true, value_hint = clap::ValueHint::FilePath)]
    pub(crate) client_key: Option<std::path::PathBuf>,
    /// Trust the certificate authority (PEM) of a private server, for the authorization
    /// server and the URLs, next to the system's roots.
    #[arg(long, value_name = "FILE", allow_hyphen_values = true, value_hint = clap::ValueHint::FilePath)]
    pub(crate) ca_cert: Option<std::path::PathBuf>,
}

/// The names `--profile` takes.
pub(crate) const PROFILES: &[&str] = &["fapi2", "fapi2-message-signing"];

/// Where tokens are kept between runs.
#[derive(Args)]
#[command(next_help_heading = "Token cache")]
pub(crate) struct CacheArgs {
    /// Keep tokens between runs in files in DIR, a directory of the tool's own (made 0700,
    /// files 0600; plain JSON, so they hold the tokens): a run starts with the token an
    /// earlier run left and signs in or asks the server only when it cannot be renewed.
    /// Feature file-store.
    #[arg(long, value_name = "DIR", allow_hyphen_values = true, value_hint = clap::ValueHint::DirPath)]
    pub(crate) cache: Option<String>,
    /// Keep tokens in Redis instead (`redis://[[user]:password@]host[:port][/db]`), shared by
    /// every machine that uses it. Not with --cache. A secret when it holds a password
    /// (@FILE, - or OAUTH_REDIS). Feature redis-store.
    #[arg(long, value_name = "URL", allow_hyphen_values = true)]
    pub(crate) redis: Option<String>,
    /// Whose tokens these are in the store (--cache or --redis), for several people or roles
    /// of one client and grant.
    #[arg(long, value_name = "NAME", allow_hyphen_values = true)]
    pub(crate) identity: Option<String>,
}

/// What is sent to the URLs.
#[derive(Args)]
#[command(next_help_heading = "Request")]
pub(crate) struct RequestArgs {
    /// HTTP method (default GET, or POST with -d).
    #[arg(short = 'X', value_name = "METHOD", allow_hyphen_values = true)]
    pub(crate) method: Option<String>,
    /// A header to send, `Name: value` (repeatable), or @FILE: a header a line from FILE (for
    /// values that should stay off the command line). Not Authorization: that is the token's.
    #[arg(
        short = 'H',
        long = "header",
        value_name = "HEADER",
        allow_hyphen_values = true
    )]
    pub(crate) headers: Vec<String>,
    /// Request body, sent as a form (Content-Type: application/x-www-form-urlencoded) unless
    /// --json or a Content-Type header says otherwise.
    #[arg(
        short = 'd',
        long = "data",
        value_name = "BODY",
        allow_hyphen_values = true
    )]
    pub(crate) data: Option<String>,
    /// Send -d as JSON (Content-Type and Accept: application/json).
    #[arg(long)]
    pub(crate) json: bool,
    /// Send the URLs N times through one client (default 1).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub(crate) repeat: Option<String>,
    /// Wait SECS between rounds (default 0).
    #[arg(long, value_name = "SECS", allow_hyphen_values = true)]
    pub(crate) interval: Option<String>,
}

/// What is printed.
#[derive(Args)]
#[command(next_help_heading = "Output")]
pub(crate) struct OutputArgs {
    /// text: `STATUS URL` and the body; json: one JSON object a line for scripts (url,
    /// status, headers, body, and the token's metadata, never the token).
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = Format::Text)]
    pub(crate) output: Format,
    /// Token events on stderr (never the token itself).
    #[arg(short = 'v', long = "verbose")]
    pub(crate) verbose: bool,
}

/// `--output`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// `STATUS URL`, then the body.
    Text,
    /// One JSON object a line.
    Json,
}

/// The one-line message for what clap refused, or `None` for `--help` and `--version` (which
/// clap prints itself). Only option names and values clap did not take as a secret's are
/// echoed: an unknown `--name=value` shows its name only.
pub(crate) fn one_line_message(error: &clap::Error, args: &[String]) -> Option<String> {
    let context = |kind: ContextKind| match error.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(s)) => s.first().cloned(),
        _ => None,
    };
    let values = |kind: ContextKind| match error.get(kind) {
        Some(ContextValue::Strings(s)) => s.clone(),
        Some(ContextValue::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    };
    // `--name <VALUE>` (clap's rendering of an argument) to `--name`; `<SHELL>` to `shell`.
    let option_name = |text: String| match text.strip_prefix('<') {
        Some(positional) => positional.trim_end_matches('>').to_lowercase(),
        None => text.split([' ', '=']).next().unwrap_or_default().to_owned(),
    };
    let suggestion =
        |kind: ContextKind| context(kind).map(|s| format!("; did you mean {}?", option_name(s)));
    let revoking = args.first().is_some_and(|a| a == "revoke");
    Some(match error.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => return None,
        ErrorKind::UnknownArgument => {
            let name = option_name(context(ContextKind::InvalidArg).unwrap_or_default());
            if revoking && takes(&Cli::command(), &name) {
                format!("{name} does not apply to revoke (see oauth-fetch revoke --help)")
            } else if !revoking && takes(revoke_command(), &name) {
                format!("{name} applies to `oauth-fetch revoke` only")
            } else {
                format!(
                    "unknown option {name}{} (see --help)",
                    suggestion(ContextKind::SuggestedArg).unwrap_or_default()
                )
            }
        }
        ErrorKind::InvalidValue
            if context(ContextKind::InvalidValue).is_some_and(|v| !v.is_empty()) =>
        {
            let name = option_name(context(ContextKind::InvalidArg).unwrap_or_default());
            let value = context(ContextKind::InvalidValue).unwrap_or_default();
            let valid = values(ContextKind::ValidValue);
            format!(
                "unknown {name} {value:?} ({}){}",
                valid.join(", "),
                context(ContextKind::SuggestedValue)
                    .map(|s| format!("; did you mean {s}?"))
                    .unwrap_or_default()
            )
        }
        ErrorKind::InvalidValue | ErrorKind::WrongNumberOfValues => {
            let name = option_name(context(ContextKind::InvalidArg).unwrap_or_default());
            format!("{name} needs a value")
        }
        ErrorKind::TooManyValues => {
            let name = option_name(context(ContextKind::InvalidArg).unwrap_or_default());
            format!("unknown option {name} with a value (it takes none; see --help)")
        }
        ErrorKind::InvalidSubcommand => format!(
            "unknown command {}{} (see --help)",
            context(ContextKind::InvalidSubcommand).unwrap_or_default(),
            suggestion(ContextKind::SuggestedSubcommand).unwrap_or_default()
        ),
        ErrorKind::ArgumentConflict => {
            "options go after the command word (oauth-fetch revoke --client-id ...); see --help"
                .to_owned()
        }
        ErrorKind::MissingRequiredArgument | ErrorKind::MissingSubcommand => {
            "a shell is needed: oauth-fetch completions bash|zsh|fish|elvish|powershell".to_owned()
        }
        // Anything else clap says, on one line and without the usage it appends.
        _ => error
            .render()
            .to_string()
            .lines()
            .next()
            .unwrap_or("the command line is not understood")
            .trim_start_matches("error: ")
            .to_owned(),
    })
}

/// The `revoke` subcommand's definition.
fn revoke_command() -> &'static clap::Command {
    static COMMAND: std::sync::OnceLock<clap::Command> = std::sync::OnceLock::new();
    COMMAND.get_or_init(|| {
        let mut cli = Cli::command();
        cli.build();
        cli.find_subcommand("revoke").cloned().unwrap_or_default()
    })
}

/// Whether `command` has the option `name` (`--long` or `-s`).
fn takes(command: &clap::Command, name: &str) -> bool {
    command.get_arguments().any(|arg| {
        name.strip_prefix("--")
            .is_some_and(|long| arg.get_long() == Some(long))
            || name
                .strip_prefix('-')
                .and_then(|s| s.chars().next())
                .is_some_and(|short| name.len() == 2 && arg.get_short() == Some(short))
    })
}
