//! `oauth-fetch`: send requests with an OAuth bearer token, from the command line.
//!
//! ```text
//! cargo install oauth-layer --features cli
//! oauth-fetch --token-url URL --client-id ID [OPTIONS] URL...
//! oauth-fetch --issuer ISSUER --client-id ID [OPTIONS] URL...
//! oauth-fetch --provider NAME [--provider-arg V] --client-id ID [OPTIONS] URL...
//! oauth-fetch [--client-id ID] [--flow auth-code|client-credentials] [OPTIONS] URL...
//! oauth-fetch revoke --revocation-url URL --client-id ID --token T
//! oauth-fetch completions bash|zsh|fish|elvish|powershell
//! ```
//!
//! The options are declared in [`cli`] (clap, with `--help` grouped by what they configure),
//! checked and completed in [`options`]; the client and token source are built in [`build`].
//!
//! For each response it prints `STATUS URL` on a line of its own, then the body
//! (`--output json`: one JSON object a line with the status, headers, body and the token's
//! metadata, never the token). `-H 'Name: value'` adds headers; `-d` sends a body as a form,
//! or as JSON with `--json`. With `-v`,
//! token events go to stderr, one line each and never with a token or secret in them:
//! `token: fetched`, `token: reused`, `token: renewed`, `token: retried after 401`, `token: sent
//! again with the server's DPoP nonce`, and
//! `token: not sent` for a URL that may not receive one (or, resource-first, that has none
//! yet), and `resource: discovered ISSUER (for RESOURCE)`.
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
//! Without `--token-url`, `--issuer` and `--provider`, for any flow but `jwt-bearer` (whose
//! key file may name the token endpoint), the run is resource-first
//! (`oauth_layer::resource::ResourceClient`): each URL that may receive a token (https, or
//! http to loopback) is a resource, named by the URL without its query and fragment (several
//! URLs may be one resource). Its first request goes without a token; the `401` (or the
//! well-known URL) gives the resource's RFC 9728 metadata, which must name this resource and
//! names the authorization server, whose discovery document gives the endpoints. The client is
//! `--client-id` (with `--client-secret` when it has one), else a client registered there now
//! (RFC 7591; the server must allow it). The flow is `--flow auth-code` (the default here, with
//! `--paste` and `--redirect-uri`) or `--flow client-credentials` (a client id needs its secret);
//! every token is bound to its resource (RFC 8707 `resource`) and goes to it only, and the
//! first request is sent again with it. `--scope` replaces the scopes the challenge or the
//! metadata ask for; `--dpop`, `--cache` and `--redis` (which also keep a registration) work as
//! elsewhere. The other flows, and `--auth-url`, `--device-url`, `--auth-method`, `--audience`,
//! `--resource` and `--identity`, are usage errors here, saying why.
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
//! Workload identity (`crate::workload`): one of `--assertion-file`, `--assertion-url` (with
//! `--assertion-header` and `--assertion-field`), `--assertion-command` (with `--assertion-arg`),
//! `--github-actions-audience` and `--azure-workload-identity` names where a short-lived
//! credential comes from (`oauth_layer::credential`), read again for each token request. It is
//! the assertion of `--flow jwt-bearer` (`AssertionGrant`), the subject token of `--flow
//! token-exchange` (`SubjectToken::credential`, type `--subject-token-type` or jwt), and
//! otherwise the client's assertion (`OAuthClientBuilder::client_assertion`); Azure's is always
//! the client's, with its client id and token endpoint. The options it replaces or contradicts
//! are usage errors naming both.
//!
//! `--key FILE` outside `--flow jwt-bearer` is the client's own PEM private key, for
//! `private_key_jwt` client authentication (RFC 7523 §2.2): the default method with a key, or
//! `--auth-method private-key-jwt`. `--profile fapi2` (or `fapi2-message-signing`) puts the
//! client under `oauth_layer::profile::Profile`, which pushes every sign-in (PAR) with PKCE and
//! a required `iss`, and refuses what the profile forbids (client secrets, public clients,
//! bearer tokens, RS256 keys, no issuer, the password grant) as a usage error that names the
//! requirement, with the options that fix it; under a profile an RSA key signs PS256.
//! `--par` pushes an auth-code sign-in without a profile (to the endpoint discovery names or
//! `--par-url` gives), `--jar` signs it with `--key` (RFC 9101), and `--authorization-details`
//! (RFC 9396) adds rich authorization details to the auth-code, client-credentials and
//! token-exchange flows. `--client-cert` with `--client-key` is the client's certificate for
//! mutual TLS (RFC 8705): the token requests and the requests to the URLs present it, tokens
//! are bound to it, and without a secret or a key it authenticates the client
//! (`tls-client-auth`, or `--auth-method self-signed-tls-client-auth`). `--ca-cert` trusts a
//! private certificate authority for both the authorization server and the URLs.
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
//! `oauth-fetch revoke ...` revokes one token (RFC 7009) at `--revocation-url` (or the one the
//! issuer's discovery document names) and prints `revoked`. Exit code: 0 when revoked, 1 when
//! the server refused or could not be reached, 2 for usage or configuration errors (an
//! `invalid_client` included).
//!
//! Key files, subject, actor and revoked tokens are secrets: never printed, `-v` included.
//!
//! Secrets stay off the command line, where every user of the machine can read them (`ps`,
//! `/proc/PID/cmdline`), when they come another way: each secret option (`--client-secret`,
//! `--password`, `--refresh-token`, `--subject-token`, `--actor-token`, `--token` and `--redis`,
//! whose URL may hold a password) takes `@FILE` (the file's contents without one trailing
//! newline), `-` (standard input, likewise; one option at most, and not with `--paste`), or,
//! when the option is left out, the environment variable `OAUTH_` and the option's name in
//! capitals (`OAUTH_CLIENT_SECRET`, `OAUTH_PASSWORD`, ..., `OAUTH_REDIS`; the latter turns
//! the Redis store on unless `--cache` is given). The value itself on the command line still
//! works, and `--help` says who can see it. A file that cannot be read is a usage error that
//! shows neither its name (it may be a secret that starts with `@`) nor its contents.

mod build;
mod cli;
mod events;
mod messages;
mod options;
mod output;
mod resource;
mod secret;
mod store;
mod tokens;
mod workload;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use oauth_layer::Action;

use build::revoke;
use cli::Format;
use events::{Events, Exchange, ResourceEvents, Warnings, one_line, with_causes};
use options::{Mode, Options, Stop, parse, usage};
use output::{Printer, TokenUse};
use tokens::Tokens;

#[tokio::main]
async fn main() -> ExitCode {
    // Parsing may read secrets from files and standard input: blocking work.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = tokio::task::spawn_blocking(|| parse(args)).await;
    let outcome = match parsed {
        Ok(Ok(Mode::Run(options))) => run(*options).await,
        Ok(Ok(Mode::Completions(shell))) => {
            use clap::CommandFactory;
            let mut command = cli::Cli::command();
            // Into a buffer first: clap_complete panics when its writer fails (a closed pipe).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "oauth-fetch", &mut script);
            use std::io::Write;
            match std::io::stdout().lock().write_all(&script) {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(e) => Err(Stop::Failed(format!("cannot write the script: {e}"))),
            }
        }
        Ok(Err(stop)) => Err(stop),
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    outcome.unwrap_or_else(|stop| match stop {
        Stop::Shown(help) => {
            // Only fails when stdout is closed; there is nobody left to tell.
            let _ = help.print();
            ExitCode::SUCCESS
        }
        Stop::Usage(msg) => {
            eprintln!("oauth-fetch: {}", one_line(msg));
            ExitCode::from(2)
        }
        Stop::Failed(msg) => {
            eprintln!("oauth-fetch: {}", one_line(msg));
            ExitCode::from(1)
        }
    })
}

/// Fetches the URLs (or revokes the token) the options name.
async fn run(options: Options) -> Result<ExitCode, Stop> {
    // Google's credentials are a token source the crate builds, as the resource-first mode's.
    let google = options.workload.as_ref().and_then(|w| w.google()).is_some();
    let events = Events {
        verbose: options.verbose,
        obtained: Arc::new(AtomicU64::new(0)),
        stored: options.cache.is_some() || options.redis.is_some(),
        loaded: Arc::default(),
        resource_first: options.resource_first,
        // The first token of Google's credentials is "fetched".
        fresh: Arc::new(AtomicBool::new(google)),
    };
    if options.verbose {
        use tracing_subscriber::layer::SubscriberExt;
        // The resource-first mode's sources and Google's are built by the crate, without the
        // change hook: their events come from its tracing instead.
        let resources = (options.resource_first || google).then(|| ResourceEvents {
            events: events.clone(),
        });
        // Ignoring the error is right: it only means a subscriber is already set.
        let _ = tracing::subscriber::set_global_default(
            tracing_subscriber::registry()
                .with(Warnings)
                .with(resources),
        );
    }
    let printer = Printer {
        format: options.format.unwrap_or(Format::Text),
    };
    if options.revoke {
        revoke(&options, &events).await?;
        match printer.format {
            Format::Text => println!("revoked"),
            Format::Json => println!("{}", serde_json::json!({ "revoked": true })),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let tokens = Tokens::build(&options, &events).await?;
    let http = tokens.client(&options, &events)?;

    let mut all_ok = true;
    for round in 0..options.repeat {
        if round > 0 && !options.interval.is_zero() {
            tokio::time::sleep(options.interval).await;
        }
        for (url, parsed) in &options.urls {
            let send = Exchange {
                obtained_before: events.obtained.load(Ordering::SeqCst),
                attempts: Arc::default(),
                sent: Arc::default(),
            };
            let mut request = http
                .request(options.method.clone().unwrap_or_default(), parsed.clone())
                .headers(options.headers.clone())
                .with_extension(send.clone());
            if let Some(body) = &options.body {
                request = request.body(body.clone());
            }
            match request.send().await {
                Ok(response) => {
                    let sent = send.sent.load(Ordering::SeqCst);
                    let used = TokenUse {
                        sent,
                        retried: send.attempts.lock().is_ok_and(|a| a.len() > 1),
                        token: tokens.held(parsed, sent).await,
                    };
                    all_ok &= printer.response(url, response, used).await;
                }
                Err(reqwest_middleware::Error::Middleware(e)) => {
                    all_ok = false;
                    match e.downcast_ref::<oauth_layer::Error>() {
                        // Wrong credentials, an unknown client, a scope the server refuses: no
                        // other URL will do better.
                        Some(e) if e.action() == Action::FixConfiguration => {
                            return Err(usage(format!(
                                "cannot get a token: {}",
                                messages::explain(e, &options.flow)
                            )));
                        }
                        Some(e) => printer.failure(
                            url,
                            &format!(
                                "cannot get a token: {}",
                                messages::explain(e, &options.flow)
                            ),
                        ),
                        None => printer.failure(url, &e.to_string()),
                    }
                }
                Err(reqwest_middleware::Error::Reqwest(e)) => {
                    all_ok = false;
                    printer.failure(url, &with_causes(&e));
                }
            }
        }
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `http://` to a loopback host: the only plain-http origins a token may go to.
pub(crate) fn is_loopback_origin(origin: &str) -> bool {
    let Some(host_port) = origin.strip_prefix("http://") else {
        return false;
    };
    let host = match host_port.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => host_port,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
