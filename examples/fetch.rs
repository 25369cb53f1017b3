//! `fetch`: send requests with an OAuth bearer token, from the command line.
//!
//! ```text
//! cargo run --example fetch -- --token-url URL --client-id ID [OPTIONS] URL...
//! ```
//!
//! For each response it prints `STATUS URL` on a line of its own, then the body. With `-v`,
//! token events go to stderr, one line each and never with a token or secret in them:
//! `token: fetched`, `token: reused`, `token: renewed`, `token: retried after 401`, and
//! `token: not sent` for a URL that may not receive one.
//! Exit code: 0 when every response was 2xx, 1 otherwise, 2 for usage or configuration errors
//! (with a one-line message on stderr).
//!
//! The interactive flows sign in once, at the first request. `--flow auth-code` opens the
//! system browser (`$BROWSER` is honoured) at the authorization URL, also printed on stderr, and
//! receives the code on a loopback server; with `--paste`, or when no browser can be opened, the
//! person pastes the address the browser ended on (read from stdin); on hosted platforms that
//! set `OAUTH_LAYER_REDIRECT_URL` and `OAUTH_LAYER_CODE_SOURCE_URL`, their code source is used.
//! `--flow device` prints the verification URL and the code to enter on stderr and polls until
//! the sign-in is approved. Later requests and `--repeat` rounds reuse the token, and its
//! refresh token renews it without asking again.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::Extensions;
#[cfg(feature = "auth-code")]
use oauth_layer::flow::AuthCode;
use oauth_layer::flow::{ClientCredentials, DeviceCode, Flow, Password, RefreshToken};
use oauth_layer::{Action, AuthMethod, OAuthClient, OAuthMiddleware, Token, TokenSource};
use reqwest::{Request, Response, Url};
use reqwest_middleware::{Middleware, Next};

const USAGE: &str = "\
usage: fetch [OPTIONS] URL...

  --token-url URL          token endpoint (required)
  --client-id ID           client id (required)
  --client-secret S        client secret (or the OAUTH_CLIENT_SECRET variable)
  --auth-method M          basic | post | none (default: basic with a secret, none without)
  --flow F                 client-credentials (default) | password | refresh | auth-code |
                           device
  --scope S                scope to request (repeatable)
  --resource URI           resource indicator (RFC 8707; client-credentials only)
  --audience A             audience (client-credentials only)
  --username U             username (password flow)
  --password P             password (password flow)
  --refresh-token T        refresh token (refresh flow)
  --auth-url URL           authorization endpoint (required for the auth-code flow)
  --redirect-uri URI       redirect URI (auth-code flow), e.g. http://127.0.0.1:1410/callback
                           for a fixed port (default: a free port on 127.0.0.1; with --paste,
                           http://127.0.0.1:1410/callback)
  --paste                  auth-code flow: paste the address the browser ends on (read from
                           stdin) instead of receiving it on a loopback server; also what
                           happens when no browser can be opened
  --device-url URL         device authorization endpoint (required for the device flow)
  --issuer ISS             the server's issuer identifier; an `iss` in the authorization
                           response must match it (RFC 9207)
  --repeat N               send the URLs N times through one client (default 1)
  --interval SECS          wait SECS between rounds (default 0)
  -X METHOD                HTTP method (default GET, or POST with -d)
  -d BODY                  request body
  -v                       token events on stderr (never the token itself)
  -h, --help               this help

Options that take a value also accept --name=value.
auth-code and device sign in once, at the first request, with the address to open on stderr
(auth-code also opens the browser, honouring $BROWSER); later requests and rounds reuse the
token and renew it with its refresh token.
Exit code: 0 when every response was 2xx, 1 otherwise, 2 for usage or configuration errors.";

/// Everything the command line said.
#[derive(Default)]
struct Options {
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
    repeat: u32,
    interval: Duration,
    method: Option<reqwest::Method>,
    body: Option<String>,
    verbose: bool,
    /// Each URL as given (printed back in the status line) and parsed.
    urls: Vec<(String, Url)>,
}

/// Why the program stops before sending anything.
enum Stop {
    /// `--help`: the usage text on stdout, exit code 0.
    Help,
    /// A usage or configuration problem: one line on stderr, exit code 2.
    Usage(String),
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
    let mut args = args.into_iter();
    let mut only_urls = false;
    while let Some(arg) = args.next() {
        if only_urls || !arg.starts_with('-') || arg == "-" {
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
    if o.method.is_none() && o.body.is_some() {
        // As curl does.
        o.method = Some(reqwest::Method::POST);
    }
    if o.client_secret.is_none() {
        o.client_secret = std::env::var("OAUTH_CLIENT_SECRET")
            .ok()
            .filter(|s| !s.is_empty());
    }
    if o.urls.is_empty() {
        return Err(usage("no URL given (see --help)"));
    }
    Ok(o)
}

/// An absolute `http` or `https` URL.
fn parse_url(text: &str) -> Result<Url, Stop> {
    match Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Ok(url),
        Ok(_) => Err(usage(format!("{text:?} is not an http or https URL"))),
        Err(e) => Err(usage(format!("{text:?} is not a URL: {e}"))),
    }
}

fn build_source(o: &Options, events: &Events) -> Result<TokenSource, Stop> {
    let token_url = o
        .token_url
        .as_deref()
        .ok_or_else(|| usage("--token-url is required"))?;
    let client_id = o
        .client_id
        .as_deref()
        .ok_or_else(|| usage("--client-id is required"))?;
    let mut client = OAuthClient::new(client_id)
        .token_url(token_url)
        .map_err(|e| usage(format!("--token-url: {e}")))?;
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
    if let Some(issuer) = &o.issuer {
        client = client.issuer(issuer.clone());
    }
    // Checked like the token endpoint (https, or http to loopback) whenever given.
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
    if o.flow != "auth-code" {
        if o.paste {
            return Err(usage("--paste applies to --flow auth-code only"));
        }
        if o.redirect_uri.is_some() {
            return Err(usage("--redirect-uri applies to --flow auth-code only"));
        }
    }
    if o.flow != "client-credentials" {
        if o.audience.is_some() {
            return Err(usage(
                "--audience applies to --flow client-credentials only",
            ));
        }
        if o.resource.is_some() {
            return Err(usage(
                "--resource applies to --flow client-credentials only",
            ));
        }
    }
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
            events.source(client, flow)
        }
        "password" => {
            let (Some(user), Some(password)) = (&o.username, &o.password) else {
                return Err(usage("--flow password needs --username and --password"));
            };
            let mut flow = Password::new(user.clone(), password.clone());
            for s in &o.scopes {
                flow = flow.scope(s.clone());
            }
            events.source(client, flow)
        }
        "refresh" => {
            let Some(rt) = &o.refresh_token else {
                return Err(usage("--flow refresh needs --refresh-token"));
            };
            let mut flow = RefreshToken::new(rt.clone());
            for s in &o.scopes {
                flow = flow.scope(s.clone());
            }
            events.source(client, flow)
        }
        #[cfg(feature = "auth-code")]
        "auth-code" => {
            if o.auth_url.is_none() {
                return Err(usage("--flow auth-code needs --auth-url"));
            }
            let mut flow = AuthCode::new();
            for s in &o.scopes {
                flow = flow.scope(s.clone());
            }
            if let Some(uri) = &o.redirect_uri {
                check_redirect_uri(uri, o.paste)?;
                flow = flow.redirect_uri(uri.clone());
            }
            if o.paste {
                flow = flow.paste();
            }
            events.source(client, flow)
        }
        #[cfg(not(feature = "auth-code"))]
        "auth-code" => {
            return Err(usage(
                "--flow auth-code needs the crate's auth-code feature",
            ));
        }
        "device" => {
            if o.device_url.is_none() {
                return Err(usage("--flow device needs --device-url"));
            }
            let mut flow = DeviceCode::new();
            for s in &o.scopes {
                flow = flow.scope(s.clone());
            }
            events.source(client, flow)
        }
        other => {
            return Err(usage(format!(
                "unknown --flow {other:?} (client-credentials, password, refresh, auth-code or \
                 device)"
            )));
        }
    };
    Ok(tokens)
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
}

impl Events {
    fn say(&self, line: &str) {
        if self.verbose {
            eprintln!("token: {line}");
        }
    }

    fn source(&self, client: OAuthClient, flow: impl Flow) -> TokenSource {
        let events = self.clone();
        TokenSource::builder(client, flow)
            .on_token_change(move |token: &Token| {
                let first = events.obtained.fetch_add(1, Ordering::SeqCst) == 0;
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
                    self.events.say("reused");
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
    };
    let options = match parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(s) => return stop(s),
    };
    let events = Events {
        verbose: options.verbose,
        obtained: Arc::new(AtomicU64::new(0)),
    };
    let tokens = match build_source(&options, &events) {
        Ok(s) => s,
        Err(s) => return stop(s),
    };
    if options.verbose {
        use tracing_subscriber::layer::SubscriberExt;
        // Ignoring the error is right: it only means a subscriber is already set.
        let _ =
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Warnings));
    }

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
