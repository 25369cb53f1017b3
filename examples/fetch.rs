//! `fetch`: send requests with an OAuth bearer token, from the command line.
//!
//! ```text
//! cargo run --example fetch -- --token-url URL --client-id ID [OPTIONS] URL...
//! ```
//!
//! For each response it prints `STATUS URL` on a line of its own, then the body. With `-v`,
//! token events (fetched, reused, renewed, retried after a 401; never the token) go to stderr.
//! Exit code: 0 when every response was 2xx, 1 otherwise, 2 for usage or configuration errors.

use std::process::ExitCode;
use std::time::Duration;

use oauth_layer::flow::{ClientCredentials, Flow, Password, RefreshToken};
use oauth_layer::{AuthMethod, OAuthClient, OAuthMiddleware, Token, TokenSource};

const USAGE: &str = "\
usage: fetch [OPTIONS] URL...

  --token-url URL          token endpoint (required)
  --client-id ID           client id (required)
  --client-secret S        client secret (or the OAUTH_CLIENT_SECRET variable)
  --auth-method M          basic | post | none (default: basic with a secret, none without)
  --flow F                 client-credentials (default) | password | refresh
  --scope S                scope to request (repeatable)
  --resource URI           resource indicator (RFC 8707)
  --audience A             audience
  --username U             username (password flow)
  --password P             password (password flow)
  --refresh-token T        refresh token (refresh flow)
  --repeat N               send the URLs N times (default 1)
  --interval SECS          wait SECS between rounds (default 0)
  -X METHOD                HTTP method (default GET)
  -d BODY                  request body
  -v                       token events on stderr
  -h, --help               this help";

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
    repeat: u32,
    interval: Duration,
    method: reqwest::Method,
    body: Option<String>,
    verbose: bool,
    urls: Vec<String>,
}

/// A usage or configuration problem: one line, exit code 2.
struct Usage(String);

fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, Usage> {
    let mut o = Options {
        flow: "client-credentials".into(),
        repeat: 1,
        ..Options::default()
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| Usage(format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--token-url" => o.token_url = Some(value(&arg)?),
            "--client-id" => o.client_id = Some(value(&arg)?),
            "--client-secret" => o.client_secret = Some(value(&arg)?),
            "--auth-method" => {
                o.auth_method = Some(match value(&arg)?.as_str() {
                    "basic" => AuthMethod::ClientSecretBasic,
                    "post" => AuthMethod::ClientSecretPost,
                    "none" => AuthMethod::None,
                    other => return Err(Usage(format!("unknown --auth-method {other:?}"))),
                })
            }
            "--flow" => o.flow = value(&arg)?,
            "--scope" => o.scopes.push(value(&arg)?),
            "--resource" => o.resource = Some(value(&arg)?),
            "--audience" => o.audience = Some(value(&arg)?),
            "--username" => o.username = Some(value(&arg)?),
            "--password" => o.password = Some(value(&arg)?),
            "--refresh-token" => o.refresh_token = Some(value(&arg)?),
            "--repeat" => {
                o.repeat = value(&arg)?
                    .parse()
                    .map_err(|_| Usage("--repeat takes a whole number".into()))?
            }
            "--interval" => {
                let secs: f64 = value(&arg)?
                    .parse()
                    .map_err(|_| Usage("--interval takes a number of seconds".into()))?;
                o.interval = Duration::try_from_secs_f64(secs)
                    .map_err(|_| Usage("--interval must be zero or more".into()))?;
            }
            "-X" => {
                o.method = value(&arg)?
                    .parse()
                    .map_err(|_| Usage("-X takes an HTTP method".into()))?
            }
            "-d" => o.body = Some(value(&arg)?),
            "-v" => o.verbose = true,
            "-h" | "--help" => return Err(Usage(USAGE.into())),
            flag if flag.starts_with('-') => return Err(Usage(format!("unknown option {flag}"))),
            url => o.urls.push(url.to_owned()),
        }
    }
    if o.client_secret.is_none() {
        o.client_secret = std::env::var("OAUTH_CLIENT_SECRET").ok();
    }
    if o.urls.is_empty() {
        return Err(Usage("no URL given (see --help)".into()));
    }
    Ok(o)
}

fn build_source(o: &Options) -> Result<TokenSource, Usage> {
    let token_url = o
        .token_url
        .as_deref()
        .ok_or_else(|| Usage("--token-url is required".into()))?;
    let client_id = o
        .client_id
        .as_deref()
        .ok_or_else(|| Usage("--client-id is required".into()))?;
    let mut client = OAuthClient::new(client_id)
        .token_url(token_url)
        .map_err(|e| Usage(format!("--token-url: {e}")))?;
    if let Some(secret) = &o.client_secret {
        client = client.secret(secret.clone());
    }
    if let Some(method) = o.auth_method {
        client = client.auth_method(method);
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
            source(client, flow, o.verbose)
        }
        "password" => {
            let (Some(user), Some(password)) = (&o.username, &o.password) else {
                return Err(Usage(
                    "--flow password needs --username and --password".into(),
                ));
            };
            let mut flow = Password::new(user.clone(), password.clone());
            for s in &o.scopes {
                flow = flow.scope(s.clone());
            }
            source(client, flow, o.verbose)
        }
        "refresh" => {
            let Some(rt) = &o.refresh_token else {
                return Err(Usage("--flow refresh needs --refresh-token".into()));
            };
            let mut flow = RefreshToken::new(rt.clone());
            for s in &o.scopes {
                flow = flow.scope(s.clone());
            }
            source(client, flow, o.verbose)
        }
        other => return Err(Usage(format!("unknown --flow {other:?}"))),
    };
    Ok(tokens)
}

fn source(client: OAuthClient, flow: impl Flow, verbose: bool) -> TokenSource {
    let first = std::sync::atomic::AtomicBool::new(true);
    TokenSource::builder(client, flow)
        .on_token_change(move |token: &Token| {
            if verbose {
                let first = first.swap(false, std::sync::atomic::Ordering::Relaxed);
                let what = if first { "fetched" } else { "renewed" };
                eprintln!(
                    "token: {what} (expires in {} s{})",
                    token.lifetime().as_secs(),
                    if token.refresh_token().is_some() {
                        ", with a refresh token"
                    } else {
                        ""
                    }
                );
            }
        })
        .build()
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(Usage(msg)) => {
            eprintln!("fetch: {msg}");
            return ExitCode::from(2);
        }
    };
    let tokens = match build_source(&options) {
        Ok(s) => s,
        Err(Usage(msg)) => {
            eprintln!("fetch: {msg}");
            return ExitCode::from(2);
        }
    };
    if options.verbose {
        // The crate's own debug events: renewals, invalidations and retries after a 401. They
        // never carry a token.
        tracing_subscriber::fmt()
            .with_env_filter("oauth_layer=debug")
            .with_writer(std::io::stderr)
            .with_target(false)
            .without_time()
            .init();
    }

    let transport = match reqwest::Client::builder().build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fetch: cannot build the HTTP client: {e}");
            return ExitCode::from(2);
        }
    };
    let http = reqwest_middleware::ClientBuilder::new(transport)
        .with(OAuthMiddleware::from_source(tokens.clone()))
        .build();

    let mut all_ok = true;
    for round in 0..options.repeat {
        if round > 0 && !options.interval.is_zero() {
            tokio::time::sleep(options.interval).await;
        }
        for url in &options.urls {
            let before = tokens.cached();
            let mut request = http.request(options.method.clone(), url);
            if let Some(body) = &options.body {
                request = request.body(body.clone());
            }
            match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    all_ok &= status.is_success();
                    if options.verbose {
                        if let (Some(before), Some(after)) = (before, tokens.cached()) {
                            if before.same_as(&after) {
                                eprintln!("token: reused");
                            }
                        }
                    }
                    println!("{} {url}", status.as_u16());
                    match response.text().await {
                        Ok(body) => println!("{body}"),
                        Err(e) => eprintln!("fetch: reading the body of {url} failed: {e}"),
                    }
                }
                Err(e) => {
                    all_ok = false;
                    let config = matches!(
                        &e,
                        reqwest_middleware::Error::Middleware(m)
                            if m.downcast_ref::<oauth_layer::Error>()
                                .is_some_and(|e| e.action() == oauth_layer::Action::FixConfiguration)
                    );
                    eprintln!("fetch: {url}: {e}");
                    if config {
                        return ExitCode::from(2);
                    }
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
