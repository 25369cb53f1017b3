//! The `oauth-fetch` command-line tool: the compiled binary, run against a local
//! [`TestServer`], proves the interface outside checks rely on (options, output, exit codes,
//! `-v` events) and that no token, secret or password ever reaches stdout or stderr.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod test_keys;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use oauth_layer::flow::Password;
use oauth_layer::testing::TestServer;
use oauth_layer::{AuthMethod, TokenSource};
use reqwest::Url;
use secrecy::ExposeSecret;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

/// A client secret with every character RFC 6749 §2.3.1 makes awkward.
const SECRET: &str = "a:b/c+d%e&f=g h~";
const POST_SECRET: &str = "post-secret-value";
const PASSWORD: &str = "correct horse:battery/staple";

/// Each secret option and the environment variable that gives it when the option is left out,
/// as `--help` documents them.
const SECRET_VARIABLES: [(&str, &str); 7] = [
    ("--client-secret", "OAUTH_CLIENT_SECRET"),
    ("--password", "OAUTH_PASSWORD"),
    ("--refresh-token", "OAUTH_REFRESH_TOKEN"),
    ("--subject-token", "OAUTH_SUBJECT_TOKEN"),
    ("--actor-token", "OAUTH_ACTOR_TOKEN"),
    ("--token", "OAUTH_TOKEN"),
    ("--redis", "OAUTH_REDIS"),
];

/// How long one run of the binary may take before the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(20);

/// The `oauth-fetch` binary, which cargo builds for this test (feature `cli`).
fn fetch_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_oauth-fetch"))
}

/// What one run of the binary left behind.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The `STATUS URL` lines, in order (bodies are JSON and never look like one).
    fn status_lines(&self) -> Vec<(u16, String)> {
        self.stdout
            .lines()
            .filter_map(|line| {
                let (status, url) = line.split_once(' ')?;
                if status.len() != 3 || !url.starts_with("http") || url.contains(' ') {
                    return None;
                }
                Some((status.parse().ok()?, url.to_owned()))
            })
            .collect()
    }

    /// How many stderr lines are exactly `line`, or start with it and go on with ` (`.
    fn events(&self, line: &str) -> usize {
        self.stderr
            .lines()
            .filter(|l| *l == line || l.starts_with(&format!("{line} (")))
            .count()
    }

    fn assert_code(&self, code: i32) {
        assert_eq!(self.code, Some(code), "exit code; run: {self:#?}");
    }

    /// Exit code 2, nothing on stdout, and one line on stderr that contains `needle`.
    fn assert_usage_error(&self, needle: &str) {
        self.assert_code(2);
        assert_eq!(self.stdout, "", "stdout of a usage error: {self:#?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line on stderr: {self:#?}");
        assert!(
            lines[0].starts_with("oauth-fetch: ") && lines[0].contains(needle),
            "stderr should say {needle:?}: {self:#?}"
        );
    }

    /// None of `secrets` (nor anything shaped like one of the server's tokens: 32 or more
    /// base64url characters in a row) on stdout or stderr.
    fn assert_no_secrets(&self, secrets: &[&str]) {
        self.assert_no_secrets_besides(secrets, &[]);
    }

    /// As [`assert_no_secrets`](Self::assert_no_secrets), except that the texts in `shown` (the
    /// authorization URL, whose `state` and PKCE challenge are long random values meant for the
    /// browser) are left out of the search for token-shaped text. `secrets` are looked for
    /// everywhere.
    fn assert_no_secrets_besides(&self, secrets: &[&str], shown: &[&str]) {
        for (name, text) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            for secret in secrets {
                assert!(!secret.is_empty());
                assert!(
                    !text.contains(secret),
                    "a secret ({} chars) appeared on {name}: {self:#?}",
                    secret.len()
                );
            }
            let mut text = text.clone();
            for allowed in shown {
                assert!(!allowed.is_empty());
                text = text.replace(allowed, "");
            }
            let longest = text
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
                .map(str::len)
                .max()
                .unwrap_or(0);
            assert!(longest < 32, "something token-shaped on {name}: {self:#?}");
        }
    }
}

/// The binary with `args`, stdin closed, stdout and stderr captured, none of the caller's
/// OAuth or proxy variables, and a `$BROWSER` that opens nothing (`true`): tests that need a
/// browser set their own.
fn command(args: &[String]) -> Command {
    let mut cmd = Command::new(fetch_binary());
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .env("BROWSER", "true")
        .env_remove("OAUTH_LAYER_REDIRECT_URL")
        .env_remove("OAUTH_LAYER_CODE_SOURCE_URL")
        .env_remove("RUST_LOG");
    for (_, variable) in SECRET_VARIABLES {
        cmd.env_remove(variable);
    }
    for proxy in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
        cmd.env_remove(proxy).env_remove(proxy.to_ascii_lowercase());
    }
    cmd
}

async fn run(mut cmd: Command) -> Run {
    let out = tokio::time::timeout(RUN_LIMIT, cmd.output())
        .await
        .expect("fetch finished in time")
        .expect("fetch started");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

async fn fetch(args: &[String]) -> Run {
    run(command(args)).await
}

/// `&str`s to owned arguments.
fn argv<const N: usize>(args: [&str; N]) -> Vec<String> {
    args.into_iter().map(str::to_owned).collect()
}

/// `--token-url ... --client-id ID` for this server, then `rest`.
fn with_client<S: AsRef<str>>(server: &TestServer, id: &str, rest: &[S]) -> Vec<String> {
    let mut args = argv(["--token-url", &server.token_url(), "--client-id", id]);
    args.extend(rest.iter().map(|s| s.as_ref().to_owned()));
    args
}

/// A command line written as one line: `template`'s words (split at spaces), each `{}` the
/// next of `values` as one word, whatever it holds.
fn cli<const N: usize>(template: &str, values: [&str; N]) -> Vec<String> {
    let mut values = values.into_iter();
    let args: Vec<String> = template
        .split_whitespace()
        .map(|word| match word {
            "{}" => values.next().expect("a value for each {}").to_owned(),
            word => word.to_owned(),
        })
        .collect();
    assert!(values.next().is_none(), "a {{}} for each value");
    args
}

/// Clients `basic-app` (Basic, [`SECRET`]), `post-app` (post, [`POST_SECRET`]) and `public-app`
/// (none), and user `alice` ([`PASSWORD`]).
fn builder() -> oauth_layer::testing::TestServerBuilder {
    TestServer::builder()
        .client("basic-app", Some(SECRET), AuthMethod::ClientSecretBasic)
        .client("post-app", Some(POST_SECRET), AuthMethod::ClientSecretPost)
        .client("public-app", None, AuthMethod::None)
        .user("alice", PASSWORD)
}

async fn server() -> TestServer {
    builder().start().await.expect("test server starts")
}

/// Every bearer token the protected resource has seen.
fn access_tokens(server: &TestServer) -> Vec<String> {
    server
        .resource_requests()
        .iter()
        .filter_map(|r| r.bearer_token().map(str::to_owned))
        .collect()
}

/// `name` standing for `words` in a [`words`] command line.
fn var(name: &'static str, words: &[&str]) -> (&'static str, Vec<String>) {
    (name, words.iter().map(|w| (*w).to_owned()).collect())
}

/// A command line written as one line: words split at spaces, `'...'` one word as it is
/// (spaces or nothing inside), and a word `$NAME` the words `vars` give NAME.
fn words(line: &str, vars: &[(&str, Vec<String>)]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line.trim_start();
    while !rest.is_empty() {
        let (word, tail) = match rest.strip_prefix('\'') {
            Some(quoted) => {
                let end = quoted.find('\'').expect("a closing quote");
                out.push(quoted[..end].to_owned());
                rest = quoted[end + 1..].trim_start();
                continue;
            }
            None => rest.split_at(rest.find(' ').unwrap_or(rest.len())),
        };
        match word.strip_prefix('$') {
            Some(name) => out.extend(
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .unwrap_or_else(|| panic!("${name} is not defined"))
                    .1
                    .iter()
                    .cloned(),
            ),
            None => out.push(word.to_owned()),
        }
        rest = tail.trim_start();
    }
    out
}

/// Runs each `(name, command line, needle)` case ([`words`] with `vars`): a usage error (exit
/// code 2, nothing on stdout, one line on stderr that says `needle`) that shows none of
/// `secrets`. The runs, in order, for further checks.
async fn assert_usage_errors(
    cases: &[(&str, &str, &str)],
    vars: &[(&str, Vec<String>)],
    secrets: &[&str],
) -> Vec<Run> {
    let mut runs = Vec::new();
    for (name, line, needle) in cases {
        let out = fetch(&words(line, vars)).await;
        eprintln!("case: {name}");
        out.assert_usage_error(needle);
        if !secrets.is_empty() {
            out.assert_no_secrets(secrets);
        }
        runs.push(out);
    }
    runs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_basic_with_reserved_characters_in_the_secret() {
    let server = server().await;
    let url = server.resource_url("/api/hello");
    for explicit in [true, false] {
        server.reset_counts();
        let mut rest = vec!["--client-secret", SECRET, "-v"];
        if explicit {
            rest.extend(["--auth-method", "basic"]);
        }
        rest.push(&url);
        let out = fetch(&with_client(&server, "basic-app", &rest)).await;
        out.assert_code(0);
        assert_eq!(out.status_lines(), [(200, url.clone())], "{out:#?}");
        assert!(
            out.stdout.contains(r#""client_id":"basic-app""#),
            "{out:#?}"
        );
        assert_eq!(server.token_requests(), 1);
        assert_eq!(server.token_requests_for("client_credentials"), 1);
        let requests = server.resource_requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].status, 200);
        assert!(requests[0].bearer_token().is_some());
        assert_eq!(out.events("token: fetched"), 1, "{out:#?}");
        let tokens = access_tokens(&server);
        let mut secrets: Vec<&str> = tokens.iter().map(String::as_str).collect();
        // The secret as sent: form-encoded, then inside the Basic credentials.
        let basic = base64::engine::general_purpose::STANDARD
            .encode("basic-app:a%3Ab%2Fc%2Bd%25e%26f%3Dg+h%7E");
        secrets.extend([SECRET, "a%3Ab%2Fc%2Bd%25e%26f%3Dg+h%7E", &basic]);
        out.assert_no_secrets(&secrets);
    }
}

/// `--dpop`: tokens bound to a fresh key against a server that checks every proof exactly and
/// demands single-use nonces at the token endpoint and the resource; the tool absorbs both
/// nonce challenges and never shows the token. `--dpop=EdDSA` picks the algorithm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_binds_the_tools_tokens_and_answers_nonce_challenges() {
    let server = builder()
        .require_dpop(true)
        .require_dpop_nonce(true)
        .require_resource_dpop_nonce(true)
        .dpop_nonce_uses(1)
        .start()
        .await
        .unwrap();
    let url = server.resource_url("/api/hello");
    for (flag, alg) in [("--dpop", "ES256"), ("--dpop=EdDSA", "EdDSA")] {
        server.reset_counts();
        let out = fetch(&with_client(
            &server,
            "basic-app",
            &["--client-secret", SECRET, flag, "-v", &url],
        ))
        .await;
        out.assert_code(0);
        assert_eq!(out.status_lines(), [(200, url.clone())], "{out:#?}");
        let log = server.token_request_log();
        assert_eq!(
            log.last().unwrap().token_type.as_deref(),
            Some("DPoP"),
            "{log:?}"
        );
        let requests = server.resource_requests();
        let last = requests.last().unwrap();
        assert_eq!(last.status, 200);
        assert_eq!(last.scheme(), Some("DPoP"));
        let proof = last.dpop.as_ref().unwrap();
        assert!(proof.is_valid(), "{proof:?}");
        assert_eq!(proof.alg.as_deref(), Some(alg));
        let token = last.dpop_token().unwrap().to_owned();
        assert_eq!(
            out.events("token: sent again with the server's DPoP nonce"),
            1,
            "{out:#?}"
        );
        // The resource echoes the key's thumbprint, which is public.
        out.assert_no_secrets_besides(&[SECRET, &token], &[proof.jkt.as_deref().unwrap()]);
    }
    // A preset configures its own client: --dpop with --provider is a usage error.
    let out = fetch(&cli("--provider github --client-id x --dpop {}", [&url])).await;
    out.assert_code(2);
    assert!(out.stderr.contains("--dpop and --provider"), "{out:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_post() {
    let server = server().await;
    let url = server.resource_url("/api/hello");
    // `--name=value` works as well as `--name value`.
    for secret in [
        vec!["--client-secret", POST_SECRET],
        vec!["--client-secret=post-secret-value"],
    ] {
        server.reset_counts();
        let mut rest = vec!["--auth-method", "post", "-v"];
        rest.extend(secret);
        rest.push(&url);
        let out = fetch(&with_client(&server, "post-app", &rest)).await;
        out.assert_code(0);
        assert_eq!(out.status_lines(), [(200, url.clone())], "{out:#?}");
        assert!(out.stdout.contains(r#""client_id":"post-app""#), "{out:#?}");
        assert_eq!(server.token_requests_for("client_credentials"), 1);
        let tokens = access_tokens(&server);
        out.assert_no_secrets(&[POST_SECRET, &tokens[0]]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_client_with_auth_method_none_and_the_password_flow() {
    let server = server().await;
    let url = server.resource_url("/api/me");
    let args = with_client(
        &server,
        "public-app",
        &cli(
            "--auth-method none --flow password --username alice --password {} -v {}",
            [PASSWORD, &url],
        ),
    );
    let out = fetch(&args).await;
    out.assert_code(0);
    assert_eq!(out.status_lines(), [(200, url)], "{out:#?}");
    assert!(
        out.stdout.contains(r#""client_id":"public-app""#),
        "{out:#?}"
    );
    assert!(out.stdout.contains(r#""username":"alice""#), "{out:#?}");
    assert_eq!(server.token_requests(), 1);
    assert_eq!(server.token_requests_for("password"), 1);
    assert_eq!(out.events("token: fetched"), 1, "{out:#?}");
    let tokens = access_tokens(&server);
    out.assert_no_secrets(&[PASSWORD, &tokens[0]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_from_the_environment() {
    let server = server().await;
    let url = server.resource_url("/api/hello");
    let args = with_client(&server, "basic-app", &["-v", &url]);

    let mut cmd = command(&args);
    cmd.env("OAUTH_CLIENT_SECRET", SECRET);
    let out = run(cmd).await;
    out.assert_code(0);
    assert_eq!(out.status_lines(), [(200, url.clone())], "{out:#?}");
    assert_eq!(server.token_requests_for("client_credentials"), 1);
    out.assert_no_secrets(&[SECRET]);

    // `--client-secret` wins over the variable.
    let mut args = args;
    args.splice(0..0, argv(["--client-secret", SECRET]));
    let mut cmd = command(&args);
    cmd.env("OAUTH_CLIENT_SECRET", "not-the-secret");
    let out = run(cmd).await;
    out.assert_code(0);
    assert_eq!(server.token_requests_for("client_credentials"), 2);
    out.assert_no_secrets(&[SECRET, "not-the-secret"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_scope_reaches_the_server() {
    let server = server().await;
    let url = server.resource_url("/api/hello");
    let args = with_client(
        &server,
        "basic-app",
        &cli(
            "--client-secret {} --scope api:read --scope api:write {}",
            [SECRET, &url],
        ),
    );
    let out = fetch(&args).await;
    out.assert_code(0);
    assert!(
        out.stdout.contains(r#""scope":"api:read api:write""#),
        "the server granted both scopes: {out:#?}"
    );
    assert_eq!(server.token_requests(), 1);
}

/// The test server ignores `resource` and `audience`, so a wiremock token endpoint checks that
/// they are sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_and_audience_reach_the_token_endpoint() {
    use wiremock::matchers::{body_string_contains, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=client_credentials"))
        .and(body_string_contains(
            "resource=https%3A%2F%2Fapi.example%2Forders",
        ))
        .and(body_string_contains("audience=orders-api"))
        .and(body_string_contains("scope=orders%3Aread"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "wiremock-access-token",
            "token_type": "Bearer",
            "expires_in": 3600,
        })))
        .expect(1)
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/orders"))
        .and(header("authorization", "Bearer wiremock-access-token"))
        .respond_with(ResponseTemplate::new(200).set_body_string("orders"))
        .expect(1)
        .mount(&mock)
        .await;

    let url = format!("{}/api/orders", mock.uri());
    let args = argv([
        "--token-url",
        &format!("{}/token", mock.uri()),
        "--client-id",
        "orders-app",
        "--client-secret",
        "orders-secret",
        "--scope",
        "orders:read",
        "--resource",
        "https://api.example/orders",
        "--audience",
        "orders-api",
        "-v",
        &url,
    ]);
    let out = fetch(&args).await;
    out.assert_code(0);
    assert_eq!(out.status_lines(), [(200, url)], "{out:#?}");
    assert!(out.stdout.contains("orders"));
    out.assert_no_secrets(&["wiremock-access-token", "orders-secret"]);
    mock.verify().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_flow_for_a_confidential_client() {
    let server = server().await;
    let url = server.resource_url("/api/me");
    let args = with_client(
        &server,
        "basic-app",
        &cli(
            "--client-secret {} --flow password --username alice --password {} --scope api:read -v {}",
            [SECRET, PASSWORD, &url],
        ),
    );
    let out = fetch(&args).await;
    out.assert_code(0);
    assert_eq!(out.status_lines(), [(200, url)], "{out:#?}");
    assert!(out.stdout.contains(r#""username":"alice""#), "{out:#?}");
    assert!(out.stdout.contains(r#""scope":"api:read""#), "{out:#?}");
    assert_eq!(server.token_requests_for("password"), 1);
    assert_eq!(server.token_requests(), 1);
    // The password grant always comes with a refresh token; -v says so, without showing it.
    assert!(
        out.stderr.contains("token: fetched") && out.stderr.contains("with a refresh token"),
        "{out:#?}"
    );
    let tokens = access_tokens(&server);
    out.assert_no_secrets(&[PASSWORD, SECRET, &tokens[0]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_flow_from_a_refresh_token() {
    let server = server().await;
    // A refresh token obtained the ordinary way, through the password grant.
    let tokens = TokenSource::new(
        server.oauth_client("basic-app").unwrap(),
        Password::new("alice", PASSWORD).scope("api:read"),
    );
    let first = tokens.token().await.unwrap();
    let refresh_token = first
        .refresh_token()
        .expect("the password grant issues a refresh token")
        .expose_secret()
        .to_owned();
    let first_access = first.access_token().expose_secret().to_owned();
    server.reset_counts();

    let url = server.resource_url("/api/me");
    let args = with_client(
        &server,
        "basic-app",
        &cli(
            "--client-secret {} --flow refresh --refresh-token {} -v {}",
            [SECRET, &refresh_token, &url],
        ),
    );
    let out = fetch(&args).await;
    out.assert_code(0);
    assert_eq!(out.status_lines(), [(200, url)], "{out:#?}");
    assert!(out.stdout.contains(r#""username":"alice""#), "{out:#?}");
    assert!(out.stdout.contains(r#""scope":"api:read""#), "{out:#?}");
    assert_eq!(server.token_requests(), 1);
    assert_eq!(server.token_requests_for("refresh_token"), 1);
    assert_eq!(out.events("token: fetched"), 1, "{out:#?}");
    let used = access_tokens(&server);
    assert_ne!(used[0], first_access, "a new access token from the refresh");
    out.assert_no_secrets(&[&refresh_token, &used[0], &first_access, SECRET]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeat_three_times_over_two_urls_fetches_one_token() {
    let server = server().await;
    let one = server.resource_url("/api/one");
    let two = server.resource_url("/api/two");
    let args = with_client(
        &server,
        "basic-app",
        &["--client-secret", SECRET, "--repeat", "3", "-v", &one, &two],
    );
    let out = fetch(&args).await;
    out.assert_code(0);
    let expected: Vec<(u16, String)> = (0..3)
        .flat_map(|_| [(200, one.clone()), (200, two.clone())])
        .collect();
    assert_eq!(out.status_lines(), expected, "{out:#?}");
    assert_eq!(server.token_requests(), 1, "one token for all six requests");
    let used = access_tokens(&server);
    assert_eq!(used.len(), 6);
    assert!(
        used.iter().all(|t| *t == used[0]),
        "the same token six times"
    );
    assert_eq!(out.events("token: fetched"), 1, "{out:#?}");
    assert_eq!(out.events("token: reused"), 5, "{out:#?}");
    assert_eq!(out.events("token: renewed"), 0, "{out:#?}");
    out.assert_no_secrets(&[SECRET, &used[0]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_lived_token_is_renewed_between_rounds() {
    let server = builder()
        .access_token_lifetime(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    let url = server.resource_url("/api/hello");
    let args = with_client(
        &server,
        "basic-app",
        &cli(
            "--client-secret {} --repeat 2 --interval 1 -v {}",
            [SECRET, &url],
        ),
    );
    let out = fetch(&args).await;
    out.assert_code(0);
    assert_eq!(
        out.status_lines(),
        [(200, url.clone()), (200, url)],
        "{out:#?}"
    );
    assert_eq!(server.token_requests(), 2, "fetched, then renewed");
    let statuses: Vec<u16> = server
        .resource_requests()
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [200, 200], "renewed before use, not after a 401");
    let used = access_tokens(&server);
    assert_ne!(used[0], used[1]);
    assert_eq!(out.events("token: fetched"), 1, "{out:#?}");
    assert_eq!(out.events("token: renewed"), 1, "{out:#?}");
    out.assert_no_secrets(&[SECRET, &used[0], &used[1]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_renewed_and_the_request_retried_after_401() {
    let server = server().await;
    let url = server.resource_url("/api/hello");
    let args = with_client(
        &server,
        "basic-app",
        &cli(
            "--client-secret {} --repeat 2 --interval 1 -v {}",
            [SECRET, &url],
        ),
    );
    let mut child = command(&args).spawn().expect("fetch started");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut stderr = child.stderr.take().unwrap();
    let stderr = tokio::spawn(async move {
        let mut text = String::new();
        stderr.read_to_string(&mut text).await.map(|_| text)
    });

    // Revoke between the rounds: as soon as the first status line is out.
    let mut first = String::new();
    tokio::time::timeout(RUN_LIMIT, stdout.read_line(&mut first))
        .await
        .expect("the first response in time")
        .unwrap();
    assert_eq!(first.trim_end(), format!("200 {url}"));
    server.revoke_all_access_tokens();

    let mut rest = String::new();
    let status = tokio::time::timeout(RUN_LIMIT, async {
        stdout.read_to_string(&mut rest).await.unwrap();
        child.wait().await.unwrap()
    })
    .await
    .expect("fetch finished in time");
    let out = Run {
        code: status.code(),
        stdout: first + &rest,
        stderr: stderr.await.unwrap().unwrap(),
    };

    out.assert_code(0);
    assert_eq!(
        out.status_lines(),
        [(200, url.clone()), (200, url)],
        "the caller never sees the 401: {out:#?}"
    );
    let statuses: Vec<u16> = server
        .resource_requests()
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [200, 401, 200]);
    assert_eq!(
        server.token_requests(),
        2,
        "fetched, then renewed after the 401"
    );
    assert_eq!(out.events("token: fetched"), 1, "{out:#?}");
    assert_eq!(out.events("token: renewed"), 1, "{out:#?}");
    assert_eq!(out.events("token: retried after 401"), 1, "{out:#?}");
    let used = access_tokens(&server);
    assert_eq!(used[0], used[1], "the revoked token was tried once");
    assert_ne!(used[1], used[2]);
    out.assert_no_secrets(&[SECRET, &used[0], &used[2]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_with_a_body() {
    let server = server().await;
    let url = server.resource_url("/api/items");
    let body = r#"{"name":"widget","note":"a & b = c"}"#;
    let args = with_client(
        &server,
        "basic-app",
        &["--client-secret", SECRET, "-X", "POST", "-d", body, &url],
    );
    let out = fetch(&args).await;
    out.assert_code(0);
    assert_eq!(out.status_lines(), [(200, url)], "{out:#?}");
    assert!(out.stdout.contains(r#""method":"POST""#), "{out:#?}");
    let requests = server.resource_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, http::Method::POST);
    assert_eq!(requests[0].body, body.as_bytes());
    assert!(requests[0].bearer_token().is_some());

    // `-d` alone means POST, as in curl; `-X` alone sends no body.
    server.reset_counts();
    let url = server.resource_url("/api/items/1");
    let out = fetch(&with_client(
        &server,
        "basic-app",
        &["--client-secret", SECRET, "-d", "x=1", &url],
    ))
    .await;
    out.assert_code(0);
    let out = fetch(&with_client(
        &server,
        "basic-app",
        &["--client-secret", SECRET, "-X", "DELETE", &url],
    ))
    .await;
    out.assert_code(0);
    let seen: Vec<(http::Method, Vec<u8>)> = server
        .resource_requests()
        .into_iter()
        .map(|r| (r.method, r.body.to_vec()))
        .collect();
    assert_eq!(
        seen,
        [
            (http::Method::POST, b"x=1".to_vec()),
            (http::Method::DELETE, Vec::new())
        ]
    );
}

/// The exit codes the README documents, one run a row: 0 when every response was 2xx; 1 when
/// one was not (every URL is still sent and printed), when a URL cannot be reached (one line
/// on stderr naming it; the others are still sent), and when the server rejects the grant
/// (`invalid_grant`: not a configuration error; nothing sent to the API). Each row: the
/// command line, the exit code, the `STATUS URL` lines, what stderr says, and nothing secret
/// printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_say_how_the_run_went() {
    let server = server().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/api/hello", listener.local_addr().unwrap())
    };
    let token_url = server.token_url();
    #[rustfmt::skip]
    let vars = [
        var("CC", &["--token-url", &token_url, "--client-id", "basic-app", "--client-secret", SECRET]),
        var("HELLO", &[&server.resource_url("/api/hello")]),
        var("SCOPED", &[&server.resource_url("/api/scoped")]),
        var("MISSING", &[&server.resource_url("/nowhere")]),
        var("ME", &[&server.resource_url("/api/me")]),
        var("CLOSED", &[&closed]),
    ];
    #[rustfmt::skip]
    let cases = [
        ("$CC $HELLO", 0, "200 $HELLO", ""),
        // The 403 asks for a scope the client may have: the tool asks for it and retries.
        ("$CC $SCOPED", 0, "200 $SCOPED", ""),
        ("$CC $MISSING $HELLO", 1, "404 $MISSING 200 $HELLO", ""),
        ("$CC $CLOSED $HELLO", 1, "200 $HELLO", "oauth-fetch: $CLOSED: "),
        (
            "$CC -v --flow password --username alice --password 'wrong password!' $ME",
            1, "", "invalid_grant",
        ),
        (
            "$CC -v --flow refresh --refresh-token rt_not-a-real-refresh-token $ME",
            1, "", "invalid_grant",
        ),
    ];
    for (line, code, statuses, says) in cases {
        server.reset_counts();
        let out = fetch(&words(line, &vars)).await;
        eprintln!("case: {line}");
        out.assert_code(code);
        let expected: Vec<(u16, String)> = words(statuses, &vars)
            .chunks(2)
            .map(|pair| (pair[0].parse().unwrap(), pair[1].clone()))
            .collect();
        assert_eq!(out.status_lines(), expected, "{out:#?}");
        if let Some(url) = says.strip_prefix("oauth-fetch: $CLOSED") {
            let lines: Vec<&str> = out.stderr.lines().collect();
            assert_eq!(lines.len(), 1, "{out:#?}");
            assert!(
                lines[0].starts_with(&format!("oauth-fetch: {closed}{url}")),
                "{out:#?}"
            );
        } else {
            assert!(out.stderr.contains(says), "{out:#?}");
        }
        if expected.is_empty() {
            assert!(
                server.resource_requests().is_empty(),
                "nothing sent without a token"
            );
        }
        out.assert_no_secrets(&[SECRET, "wrong password!", "rt_not-a-real-refresh-token"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_with_2_and_one_line() {
    let server = server().await;
    let token_url = server.token_url();
    let id = ["--token-url", &token_url, "--client-id", "basic-app"];
    #[rustfmt::skip]
    let vars = [
        var("ID", &id),
        var("CC", &[id.as_slice(), &["--client-secret", SECRET]].concat()),
        var("URL", &[&server.resource_url("/api/hello")]),
        var("TOKEN_URL", &[&token_url]),
        var("PASSWORD", &[PASSWORD]),
    ];
    #[rustfmt::skip]
    let cases = [
        ("no URL", "$CC", "no URL"),
        ("unknown option", "$CC --bogus $URL", "unknown option --bogus"),
        (
            "missing --token-url (without it, a resource-first run has no password flow)",
            "--client-id basic-app --flow password --username alice --password $PASSWORD $URL",
            "--token-url is required",
        ),
        ("missing --client-id", "--token-url $TOKEN_URL $URL", "--client-id is required"),
        (
            "insecure --token-url",
            "--token-url http://remote.example/token --client-id basic-app $URL",
            "https",
        ),
        ("unknown --flow", "$CC --flow implicit $URL", "unknown --flow \"implicit\""),
        (
            "password flow without --password",
            "$CC --flow password --username alice $URL",
            "--password",
        ),
        ("refresh flow without --refresh-token", "$CC --flow refresh $URL", "--refresh-token"),
        ("unknown --auth-method", "$CC --auth-method jwt $URL", "--auth-method"),
        ("basic without a secret", "$ID --auth-method basic $URL", "--client-secret"),
        (
            "--audience with the password flow",
            "$CC --flow password --username alice --password $PASSWORD --audience x $URL",
            "--audience",
        ),
        ("--repeat 0", "$CC --repeat 0 $URL", "--repeat"),
        ("--repeat not a number", "$CC --repeat many $URL", "--repeat"),
        ("negative --interval", "$CC --interval -1 $URL", "--interval"),
        ("option without its value", "$CC $URL --scope", "--scope needs a value"),
        ("not a URL", "$CC 'not a url'", "not a URL"),
        ("not an http URL", "$CC ftp://127.0.0.1/file", "not an http or https URL"),
        // Typos get clap's suggestion, on the same one line.
        ("a mistyped option", "$CC --flwo password $URL", "unknown option --flwo; did you mean --flow?"),
        ("a mistyped value", "$CC --flow pasword $URL", "did you mean password?"),
        ("a mistyped --output", "$CC --outptu json $URL", "did you mean --output?"),
        ("-H without a colon", "$CC -H 'X-Trace 1' $URL", "-H takes 'Name: value'"),
        ("-H with a bad name", "$CC -H 'X Trace: 1' $URL", "-H: the header's name"),
        ("-H Authorization", "$CC -H 'Authorization: Bearer abc' $URL", "-H Authorization: "),
        ("--json without -d", "$CC --json $URL", "--json says how to send -d"),
        ("-H @FILE that cannot be read", "$CC -H @/nonexistent/headers-9 $URL", "-H @FILE: cannot read the file"),
        ("completions without a shell", "completions", "a shell is needed"),
        ("a mistyped command", "complettions bash", "did you mean completions?"),
        ("another mistyped command", "revok --token x", "revoke"),
        ("completions for an unknown shell", "completions tcsh", "unknown shell \"tcsh\""),
    ];
    let secrets = [SECRET, PASSWORD, "Bearer abc", "headers-9"];
    assert_usage_errors(&cases, &vars, &secrets).await;
    assert_eq!(server.token_requests(), 0, "usage errors send nothing");
    assert!(server.resource_requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_option_never_echoes_its_value() {
    let server = server().await;
    let url = server.resource_url("/api/hello");
    let out = fetch(&with_client(
        &server,
        "basic-app",
        &["--client-secrett=hunter2-hunter2", &url],
    ))
    .await;
    out.assert_usage_error("unknown option --client-secrett");
    out.assert_no_secrets(&["hunter2-hunter2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_client_is_a_configuration_error() {
    let server = server().await;
    let url = server.resource_url("/api/hello");
    let cases = [
        // Wrong secret.
        ("basic-app", vec!["--client-secret", "wrong:secret/value"]),
        // Right secret, but not the method the client registered.
        (
            "basic-app",
            vec!["--client-secret", SECRET, "--auth-method", "post"],
        ),
        // Unknown client.
        ("nobody", vec!["--client-secret", SECRET]),
    ];
    for (id, rest) in cases {
        server.reset_counts();
        for verbose in [false, true] {
            let mut rest = rest.clone();
            if verbose {
                rest.push("-v");
            }
            rest.push(&url);
            let out = fetch(&with_client(&server, id, &rest)).await;
            if verbose {
                out.assert_code(2);
                assert!(out.stdout.is_empty());
                assert!(out.stderr.contains("invalid_client"), "{out:#?}");
            } else {
                out.assert_usage_error("invalid_client");
            }
            out.assert_no_secrets(&[SECRET, "wrong:secret/value"]);
        }
        assert_eq!(server.token_requests(), 2, "one token request per run");
        assert!(
            server.resource_requests().is_empty(),
            "no request without a token"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_goes_to_stdout_with_exit_code_0() {
    let out = fetch(&argv(["--help"])).await;
    out.assert_code(0);
    assert!(out.stdout.starts_with("Usage: oauth-fetch"), "{out:#?}");
    let options = "--token-url --client-id --client-secret OAUTH_CLIENT_SECRET --auth-method \
                   --flow --scope --resource --audience --username --password --refresh-token \
                   auth-code device --auth-url --redirect-uri --paste --device-url --issuer \
                   jwt-bearer --key --key-alg --key-id --subject token-exchange --subject-token \
                   --subject-token-type --actor-token --actor-token-type --requested-token-type \
                   --revocation-url --token --token-type-hint --repeat --interval -X -d -v \
                   --provider --provider-arg github microsoft openid --cache --redis --identity \
                   file-store redis-store";
    for option in options.split_whitespace().chain(["oauth-fetch revoke"]) {
        assert!(out.stdout.contains(option), "--help mentions {option}");
    }
    assert_eq!(out.stderr, "");
}

// --- The interactive flows: auth-code and device ------------------------------------------------

/// The grant type of the device flow's polls.
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A stand-in for the system browser, for `$BROWSER`: a script in a temporary directory of its
/// own that follows the URL it is given, redirects included (to the test server's `/authorize`,
/// which redirects to the loopback server), and writes the address it ended on to a file. With
/// `curl` on `PATH` it is `#!/bin/sh` + `exec curl -s -L`; otherwise a Python 3 script using
/// urllib. The directory is removed on drop.
///
/// How the `webbrowser` crate runs `$BROWSER` (1.x, on Linux): it splits the variable on `:` and
/// whitespace, runs a name with a `/` in it as a path (it must be an executable file; no `PATH`
/// search), replaces `%s` with the URL or else appends the URL as the last argument, and spawns
/// the command in the background with its output discarded, except for known text browsers
/// (`curl`, `w3m`, `lynx`...), which it runs in the foreground and waits for. So the script has
/// an absolute path free of `:` and spaces, no `%s`, and a name that is not a text browser's: a
/// foreground browser would keep fetch from serving the redirect it follows.
struct FakeBrowser {
    dir: PathBuf,
    script: PathBuf,
    visited: PathBuf,
}

impl FakeBrowser {
    fn new() -> Self {
        Self::with_script(|visited_path| {
            if on_path("curl") {
                format!(
                    "#!/bin/sh\nexec curl -s -L --max-time 10 -o /dev/null -w '%{{url_effective}}' \
                     \"$1\" > '{visited_path}'\n"
                )
            } else {
                // An error page (the loopback server's, after a refused sign-in) still ends the
                // visit.
                format!(
                    "#!/usr/bin/env python3\nimport sys, urllib.error, urllib.request\n\
                     try:\n    \
                     with urllib.request.urlopen(sys.argv[1], timeout=10) as response:\n        \
                     final = response.geturl()\n\
                     except urllib.error.HTTPError as error:\n    final = error.geturl()\n\
                     with open('{visited_path}', 'w') as out:\n    out.write(final)\n"
                )
            }
        })
    }

    /// A browser that goes nowhere: it writes the URL it was given to the file
    /// [`visited`](Self::visited) reads, and exits. For the provider presets, whose real hosts
    /// are not to be reached.
    fn recording() -> Self {
        Self::with_script(|visited_path| {
            format!("#!/bin/sh\nprintf '%s' \"$1\" > '{visited_path}'\n")
        })
    }

    /// A browser running the script `text(path of the visited file)`.
    fn with_script(text: impl FnOnce(&str) -> String) -> Self {
        use std::os::unix::fs::PermissionsExt;
        use std::sync::atomic::{AtomicU32, Ordering};

        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "fetch-cli-browser-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("browser");
        let visited = dir.join("visited");
        // webbrowser splits `$BROWSER` on ':' and whitespace, and the script quotes the path.
        let path = script.to_str().expect("a UTF-8 temporary path");
        assert!(
            !path.contains([':', ' ', '\t', '\n', '\'', '%']),
            "the temporary path {path:?} cannot go into $BROWSER or the script"
        );
        let text = text(visited.to_str().unwrap());
        std::fs::write(&script, text).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self {
            dir,
            script,
            visited,
        }
    }

    /// `command(args)` with `$BROWSER` set to this browser, for the child only.
    fn command(&self, args: &[String]) -> Command {
        let mut cmd = command(args);
        cmd.env("BROWSER", &self.script);
        cmd
    }

    /// Whether the browser was run at all (a [`recording`](Self::recording) one writes the file
    /// [`visited`](Self::visited) reads as soon as it runs).
    #[cfg(feature = "file-store")]
    fn was_run(&self) -> bool {
        self.visited.exists()
    }

    /// The address the browser ended on (the loopback callback, with the code), once it has
    /// written it: it runs in the background and may finish just after `fetch` does.
    async fn visited(&self) -> Url {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(text) = std::fs::read_to_string(&self.visited)
                && !text.is_empty()
            {
                return Url::parse(text.trim()).expect("the browser ended on a URL");
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the browser script never ran to the end"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for FakeBrowser {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether an executable `name` is on `PATH`.
fn on_path(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            std::fs::metadata(dir.join(name))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// `name`'s value in `url`'s query, which must hold exactly one.
fn query_param(url: &Url, name: &str) -> String {
    let values: Vec<String> = url
        .query_pairs()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .collect();
    assert_eq!(values.len(), 1, "one {name} in {url}");
    values.into_iter().next().unwrap()
}

/// The authorization URL `fetch` showed on stderr: exactly one line starting with the server's
/// authorization endpoint and `?`, checked to carry this client, PKCE S256 and a state.
fn shown_authorization_url(out: &Run, server: &TestServer, client_id: &str) -> Url {
    let prefix = format!("{}?", server.authorization_url());
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .collect();
    assert_eq!(lines.len(), 1, "the authorization URL, once: {out:#?}");
    let url = Url::parse(lines[0]).unwrap();
    assert_eq!(query_param(&url, "response_type"), "code");
    assert_eq!(query_param(&url, "client_id"), client_id);
    assert_eq!(query_param(&url, "code_challenge_method"), "S256");
    assert!(!query_param(&url, "state").is_empty());
    url
}

/// Bearer tokens the resource saw, checked to be all the same one (one sign-in, reused).
fn one_access_token(server: &TestServer, expected_requests: usize) -> String {
    let used = access_tokens(server);
    assert_eq!(
        used.len(),
        expected_requests,
        "every request carried a token"
    );
    assert!(used.iter().all(|t| *t == used[0]), "one token for all");
    used[0].clone()
}

/// A running `fetch` whose stderr is read line by line as it comes (and kept), so a test can
/// act on what it shows (an authorization URL, a user code) before it exits.
struct Live {
    child: tokio::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    stderr: tokio::task::JoinHandle<String>,
    stdout: tokio::task::JoinHandle<String>,
}

impl Live {
    fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd.spawn().expect("fetch started");
        let mut stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (send, lines) = tokio::sync::mpsc::unbounded_channel();
        let stderr = tokio::spawn(async move {
            let mut reader = BufReader::new(stderr);
            let mut all = String::new();
            let mut line = String::new();
            while reader.read_line(&mut line).await.unwrap_or(0) > 0 {
                all.push_str(&line);
                let _ = send.send(line.trim_end().to_owned());
                line.clear();
            }
            all
        });
        let stdout = tokio::spawn(async move {
            let mut text = String::new();
            stdout.read_to_string(&mut text).await.unwrap();
            text
        });
        Self {
            child,
            lines,
            stderr,
            stdout,
        }
    }

    /// The first stderr line (from now on) that `pick` accepts, and what it made of it.
    async fn wait_for<T>(&mut self, mut pick: impl FnMut(&str) -> Option<T>) -> T {
        tokio::time::timeout(RUN_LIMIT, async {
            loop {
                let line = self
                    .lines
                    .recv()
                    .await
                    .expect("fetch ended before showing what the test waits for");
                if let Some(found) = pick(&line) {
                    return found;
                }
            }
        })
        .await
        .expect("fetch showed it in time")
    }

    /// Stops the run now (a sign-in that would wait for the person), and what it printed.
    async fn kill(mut self) -> Run {
        let _ = self.child.start_kill();
        self.finish().await
    }

    async fn finish(mut self) -> Run {
        let status = tokio::time::timeout(RUN_LIMIT, self.child.wait())
            .await
            .expect("fetch finished in time")
            .unwrap();
        Run {
            code: status.code(),
            stdout: self.stdout.await.unwrap(),
            stderr: self.stderr.await.unwrap(),
        }
    }
}

/// `--flow auth-code` end to end: the system browser (`$BROWSER`) follows the authorization
/// URL to the server, which redirects it to fetch's loopback server; one sign-in serves every
/// request of every round, and nothing secret is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_code_signs_in_once_through_the_browser() {
    let server = server().await;
    let browser = FakeBrowser::new();
    let one = server.resource_url("/api/one");
    let two = server.resource_url("/api/two");
    let args = with_client(
        &server,
        "basic-app",
        &cli(
            "--client-secret {} --flow auth-code --auth-url {} --issuer {} --scope api:read --repeat 2 -v {} {}",
            [
                SECRET,
                &server.authorization_url(),
                &server.url(),
                &one,
                &two,
            ],
        ),
    );
    let out = run(browser.command(&args)).await;
    out.assert_code(0);
    let expected: Vec<(u16, String)> = (0..2)
        .flat_map(|_| [(200, one.clone()), (200, two.clone())])
        .collect();
    assert_eq!(out.status_lines(), expected, "{out:#?}");
    assert!(
        out.stdout.contains(r#""client_id":"basic-app""#),
        "{out:#?}"
    );
    assert!(out.stdout.contains(r#""scope":"api:read""#), "{out:#?}");

    // One sign-in, one code exchange, one token for the four requests.
    assert_eq!(server.authorization_requests(), 1);
    assert_eq!(server.token_requests_for("authorization_code"), 1);
    assert_eq!(server.token_requests(), 1);
    let token = one_access_token(&server, 4);
    assert_eq!(out.events("token: fetched"), 1, "{out:#?}");
    assert_eq!(out.events("token: reused"), 3, "{out:#?}");

    // The URL to open is on stderr, after a line saying so, and names the loopback server the
    // browser was sent back to (a free port on 127.0.0.1).
    let shown = shown_authorization_url(&out, &server, "basic-app");
    assert_eq!(query_param(&shown, "scope"), "api:read");
    assert!(out.stderr.contains("browser"), "{out:#?}");
    let redirect_uri = query_param(&shown, "redirect_uri");
    assert!(
        redirect_uri.starts_with("http://127.0.0.1:") && redirect_uri.ends_with("/callback"),
        "{redirect_uri}"
    );
    let visited = browser.visited().await;
    assert!(
        visited.as_str().starts_with(&format!("{redirect_uri}?")),
        "the browser ended on the loopback server: {visited}"
    );
    let code = query_param(&visited, "code");
    assert_eq!(query_param(&visited, "iss"), server.url());

    // The refresh token is not known here; no token-shaped text anywhere but in the
    // authorization URL covers it.
    out.assert_no_secrets_besides(&[SECRET, &token, &code], &[shown.as_str()]);
}

/// `--redirect-uri` with a fixed port is what the authorization request names and where the
/// loopback server listens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_code_with_a_fixed_redirect_uri() {
    let server = server().await;
    let browser = FakeBrowser::new();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let redirect_uri = format!("http://127.0.0.1:{port}/cb");
    let url = server.resource_url("/api/me");
    let args = with_client(
        &server,
        "public-app",
        &cli(
            "--flow auth-code --auth-url {} --redirect-uri {} {}",
            [&server.authorization_url(), &redirect_uri, &url],
        ),
    );
    let out = run(browser.command(&args)).await;
    out.assert_code(0);
    assert_eq!(out.status_lines(), [(200, url)], "{out:#?}");
    assert!(out.stdout.contains(r#""username":"user""#), "{out:#?}");
    let shown = shown_authorization_url(&out, &server, "public-app");
    assert_eq!(query_param(&shown, "redirect_uri"), redirect_uri);
    let visited = browser.visited().await;
    assert!(
        visited.as_str().starts_with(&format!("{redirect_uri}?")),
        "the browser was sent back to the fixed address: {visited}"
    );
    assert_eq!(server.authorization_requests(), 1);
    assert_eq!(server.token_requests_for("authorization_code"), 1);
    let token = one_access_token(&server, 1);
    let code = query_param(&visited, "code");
    out.assert_no_secrets_besides(&[&token, &code], &[shown.as_str()]);
}

/// The token from the sign-in is renewed with its refresh token when it expires: no second
/// sign-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_code_token_is_renewed_with_its_refresh_token() {
    let server = builder()
        .access_token_lifetime(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    let browser = FakeBrowser::new();
    let url = server.resource_url("/api/hello");
    let args = with_client(
        &server,
        "public-app",
        &cli(
            "--flow auth-code --auth-url {} --repeat 2 --interval 1 -v {}",
            [&server.authorization_url(), &url],
        ),
    );
    let out = run(browser.command(&args)).await;
    out.assert_code(0);
    assert_eq!(
        out.status_lines(),
        [(200, url.clone()), (200, url)],
        "{out:#?}"
    );
    assert_eq!(server.authorization_requests(), 1, "one sign-in");
    assert_eq!(server.token_requests_for("authorization_code"), 1);
    assert_eq!(server.token_requests_for("refresh_token"), 1);
    let statuses: Vec<u16> = server
        .resource_requests()
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [200, 200]);
    let used = access_tokens(&server);
    assert_ne!(used[0], used[1]);
    assert_eq!(out.events("token: fetched"), 1, "{out:#?}");
    assert_eq!(out.events("token: renewed"), 1, "{out:#?}");
    let shown = shown_authorization_url(&out, &server, "public-app");
    out.assert_no_secrets_besides(&[&used[0], &used[1]], &[shown.as_str()]);
}

/// With `--issuer` naming another server, the `iss` the authorization response carries does
/// not match (RFC 9207): the sign-in fails before any code is exchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_code_refuses_a_response_from_another_issuer() {
    let server = server().await;
    let browser = FakeBrowser::new();
    let url = server.resource_url("/api/hello");
    let args = with_client(
        &server,
        "public-app",
        &cli(
            "--flow auth-code --auth-url {} --issuer https://other-idp.example {}",
            [&server.authorization_url(), &url],
        ),
    );
    let out = run(browser.command(&args)).await;
    out.assert_code(1);
    assert!(out.status_lines().is_empty(), "{out:#?}");
    assert!(
        out.stderr.lines().any(|l| l
            .starts_with(&format!("oauth-fetch: {url}: cannot get a token: "))
            && l.contains("iss")),
        "{out:#?}"
    );
    assert_eq!(server.authorization_requests(), 1);
    assert_eq!(server.token_requests(), 0, "the code was never exchanged");
    assert!(server.resource_requests().is_empty());
    let code = query_param(&browser.visited().await, "code");
    let shown = shown_authorization_url(&out, &server, "public-app");
    out.assert_no_secrets_besides(&[&code], &[shown.as_str()]);
}

/// `--paste`: the person opens the URL shown on stderr and pastes the address the browser was
/// sent to on stdin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_code_with_the_address_pasted_on_stdin() {
    use tokio::io::AsyncWriteExt;

    let server = server().await;
    let url = server.resource_url("/api/me");
    let args = with_client(
        &server,
        "basic-app",
        &cli(
            "--client-secret {} --flow auth-code --auth-url {} --paste --issuer {} -v {}",
            [SECRET, &server.authorization_url(), &server.url(), &url],
        ),
    );
    let mut cmd = command(&args);
    cmd.stdin(Stdio::piped());
    let mut live = Live::spawn(cmd);
    let mut stdin = live.child.stdin.take().unwrap();
    let prefix = format!("{}?", server.authorization_url());
    let shown = live
        .wait_for(|line| line.starts_with(&prefix).then(|| line.to_owned()))
        .await;

    // The person's browser: the server signs in by itself and redirects; nothing listens at
    // the redirect address, so the person copies it from the address bar.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    let answer = browser.get(&shown).send().await.unwrap();
    assert_eq!(answer.status(), 302);
    let location = answer
        .headers()
        .get(reqwest::header::LOCATION)
        .expect("a redirect")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        location.starts_with("http://127.0.0.1:1410/callback?"),
        "the paste receiver's default redirect URI: {location}"
    );
    stdin
        .write_all(format!("{location}\n").as_bytes())
        .await
        .unwrap();
    stdin.flush().await.unwrap();
    drop(stdin);

    let out = live.finish().await;
    out.assert_code(0);
    assert_eq!(out.status_lines(), [(200, url)], "{out:#?}");
    assert!(out.stdout.contains(r#""username":"user""#), "{out:#?}");
    assert!(
        out.stderr.contains("Paste"),
        "the prompt is on stderr: {out:#?}"
    );
    assert_eq!(server.authorization_requests(), 1);
    assert_eq!(server.token_requests_for("authorization_code"), 1);
    assert_eq!(server.token_requests(), 1);
    let token = one_access_token(&server, 1);
    let code = query_param(&Url::parse(&location).unwrap(), "code");
    let shown = shown_authorization_url(&out, &server, "basic-app");
    assert_eq!(
        query_param(&shown, "redirect_uri"),
        "http://127.0.0.1:1410/callback"
    );
    // The pasted address (and its code) is never echoed.
    out.assert_no_secrets_besides(&[SECRET, &token, &code, &location], &[shown.as_str()]);
}

/// Starts `oauth-fetch --flow device` (with `options` before the URL) against a fresh server
/// for `/api/me`, and waits for the user code it shows on stderr.
async fn device_sign_in(options: &str) -> (TestServer, String, Live, String) {
    let server = builder()
        .device_interval(Some(Duration::from_secs(1)))
        .start()
        .await
        .unwrap();
    let url = server.resource_url("/api/me");
    let template = format!("--flow device --device-url {{}} {options} {{}}");
    let args = with_client(
        &server,
        "public-app",
        &cli(&template, [&server.device_authorization_url(), &url]),
    );
    let mut live = Live::spawn(command(&args));
    let prefix = format!(
        "To sign in, open {} and enter the code ",
        server.device_verification_url()
    );
    let user_code = live
        .wait_for(|line| line.strip_prefix(&prefix).map(str::to_owned))
        .await;
    (server, url, live, user_code)
}

/// `--flow device`: the verification URL and the user code on stderr, polling until the person
/// approves, one sign-in for every round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_flow_shows_the_code_and_polls_until_approved() {
    let (server, url, live, user_code) = device_sign_in("--scope api:read --repeat 2 -v").await;
    assert!(
        server.approve_device(&user_code),
        "the code shown is the server's: {user_code:?}"
    );
    let out = live.finish().await;
    out.assert_code(0);
    assert_eq!(
        out.status_lines(),
        [(200, url.clone()), (200, url)],
        "{out:#?}"
    );
    assert!(out.stdout.contains(r#""scope":"api:read""#), "{out:#?}");
    assert!(out.stdout.contains(r#""username":"user""#), "{out:#?}");
    assert_eq!(server.device_requests(), 1, "one sign-in");
    assert!(server.token_requests_for(DEVICE_GRANT) >= 1);
    assert_eq!(server.authorization_requests(), 0);
    let token = one_access_token(&server, 2);
    assert_eq!(out.events("token: fetched"), 1, "{out:#?}");
    assert_eq!(out.events("token: reused"), 1, "{out:#?}");
    out.assert_no_secrets(&[&token]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_flow_usage_errors_exit_with_2_and_one_line() {
    let server = server().await;
    let (auth_url, device_url) = (
        server.authorization_url(),
        server.device_authorization_url(),
    );
    let token_url = server.token_url();
    let id = ["--token-url", &token_url, "--client-id", "public-app"];
    #[rustfmt::skip]
    let vars = [
        var("ID", &id),
        var("AUTH_CODE", &[id.as_slice(), &["--flow", "auth-code", "--auth-url", &auth_url]].concat()),
        var("DEVICE", &[id.as_slice(), &["--flow", "device", "--device-url", &device_url]].concat()),
        var("URL", &[&server.resource_url("/api/hello")]),
    ];
    #[rustfmt::skip]
    let cases = [
        ("auth-code without --auth-url", "$ID --flow auth-code $URL", "--flow auth-code needs --auth-url"),
        ("device without --device-url", "$ID --flow device $URL", "--flow device needs --device-url"),
        ("--paste with client credentials", "$ID --paste $URL", "--paste applies to --flow auth-code only"),
        ("--paste with the device flow", "$DEVICE --paste $URL", "--paste applies to --flow auth-code only"),
        (
            "--redirect-uri with the device flow",
            "$DEVICE --redirect-uri http://127.0.0.1:1410/callback $URL",
            "--redirect-uri applies to --flow auth-code only",
        ),
        (
            "insecure --auth-url",
            "$ID --flow auth-code --auth-url http://idp.example/authorize $URL",
            "authorization_url must be https",
        ),
        (
            "insecure --device-url",
            "$ID --flow device --device-url http://idp.example/device $URL",
            "device_authorization_url must be https",
        ),
        ("--auth-url not a URL", "$ID --flow auth-code --auth-url 'not a url' $URL", "--auth-url"),
        (
            "a redirect URI off loopback for the loopback server",
            "$AUTH_CODE --redirect-uri http://app.example/callback $URL",
            "--redirect-uri must be an http loopback address",
        ),
        (
            "an https redirect URI for the loopback server",
            "$AUTH_CODE --redirect-uri https://127.0.0.1:1410/callback $URL",
            "--redirect-uri must be an http loopback address",
        ),
        (
            "a plain http redirect URI off loopback to paste",
            "$AUTH_CODE --paste --redirect-uri http://app.example/callback $URL",
            "--redirect-uri must be https",
        ),
        (
            "--redirect-uri not a URL",
            "$AUTH_CODE --redirect-uri /callback $URL",
            "--redirect-uri \"/callback\" is not a URL",
        ),
        ("empty --issuer", "$AUTH_CODE --issuer= $URL", "--issuer needs a non-empty value"),
        ("--paste with a value", "$AUTH_CODE --paste=yes $URL", "unknown option --paste"),
    ];
    for (out, (_, _, needle)) in assert_usage_errors(&cases, &vars, &[])
        .await
        .iter()
        .zip(&cases)
    {
        // The crate's message for an insecure endpoint names its own setting; oauth-fetch says
        // which option it came from.
        if needle.starts_with("authorization_url") {
            assert!(
                out.stderr.starts_with("oauth-fetch: --auth-url: "),
                "{out:#?}"
            );
        }
        if needle.starts_with("device_authorization_url") {
            assert!(
                out.stderr.starts_with("oauth-fetch: --device-url: "),
                "{out:#?}"
            );
        }
    }
    assert_eq!(
        server.authorization_requests(),
        0,
        "usage errors send nothing"
    );
    assert_eq!(server.device_requests(), 0);
    assert_eq!(server.token_requests(), 0);
    assert!(server.resource_requests().is_empty());
}

// --- Discovery, the JWT bearer grant, token exchange and revocation ------------------------------

/// The form of every request `mock` received at `path`, in order.
async fn forms_at(mock: &wiremock::MockServer, path: &str) -> Vec<Vec<(String, String)>> {
    mock.received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == path)
        .map(|r| {
            url::form_urlencoded::parse(&r.body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .collect()
}

/// `name`'s value in `form`, which must hold it at most once.
fn form_field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let values: Vec<&str> = form
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect();
    assert!(values.len() <= 1, "{name} sent more than once: {form:?}");
    values.first().copied()
}

/// A wiremock server whose OpenID Connect discovery document is `document`, with `issuer`
/// filled in with the server's own URI unless `document` names one.
async fn discovery_server(mut document: serde_json::Value) -> wiremock::MockServer {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let mock = MockServer::start().await;
    if document.get("issuer").is_none() {
        document["issuer"] = mock.uri().into();
    }
    Mock::given(method("GET"))
        .and(path("/.well-known/openid-configuration"))
        .respond_with(ResponseTemplate::new(200).set_body_json(document))
        .mount(&mock)
        .await;
    mock
}

/// How many discovery document requests `mock` received.
async fn discovery_requests(mock: &wiremock::MockServer) -> usize {
    mock.received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().starts_with("/.well-known/"))
        .count()
}

/// `--issuer` without `--token-url`: the client is configured from the discovery document
/// (wiremock), and the token endpoint it names (the test server's) is used, with the
/// authentication method the document lists (`client_secret_post`: the test server holds
/// `post-app` to it). With `--token-url` as well, nothing is discovered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_discovery_configures_the_client() {
    let server = server().await;
    let idp = discovery_server(serde_json::json!({
        "token_endpoint": server.token_url(),
        "token_endpoint_auth_methods_supported": ["client_secret_post"],
        "grant_types_supported": ["client_credentials"],
    }))
    .await;
    let url = server.resource_url("/api/hello");
    let args = cli(
        "--issuer {} --client-id post-app --client-secret {} -v {}",
        [&idp.uri(), POST_SECRET, &url],
    );
    let out = fetch(&args).await;
    out.assert_code(0);
    assert_eq!(out.status_lines(), [(200, url.clone())], "{out:#?}");
    assert!(out.stdout.contains(r#""client_id":"post-app""#), "{out:#?}");
    assert_eq!(out.events("token: fetched"), 1, "{out:#?}");
    assert_eq!(server.token_requests_for("client_credentials"), 1);
    assert_eq!(discovery_requests(&idp).await, 1);
    let tokens = access_tokens(&server);
    out.assert_no_secrets(&[POST_SECRET, &tokens[0]]);

    // An explicit --token-url wins: no discovery, the issuer is only the `iss` to check.
    let mut explicit = args.clone();
    explicit.splice(
        0..0,
        argv(["--token-url", &server.token_url(), "--auth-method", "post"]),
    );
    let out = fetch(&explicit).await;
    out.assert_code(0);
    assert_eq!(server.token_requests_for("client_credentials"), 2);
    assert_eq!(discovery_requests(&idp).await, 1, "not discovered again");
}

/// A discovery document that cannot be trusted, or none at all, is a configuration error:
/// exit code 2, one line, nothing sent to the token endpoint or the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_discovery_exits_with_2() {
    let server = server().await;
    let url = server.resource_url("/api/hello");
    let mismatch = discovery_server(serde_json::json!({
        "issuer": "https://other-idp.example",
        "token_endpoint": server.token_url(),
    }))
    .await;
    let insecure = discovery_server(serde_json::json!({
        "token_endpoint": "http://idp.example/token",
    }))
    .await;
    let no_token_endpoint = discovery_server(serde_json::json!({
        "authorization_endpoint": server.authorization_url(),
    }))
    .await;
    // Nothing mounted: both well-known URLs answer 404.
    let empty = wiremock::MockServer::start().await;
    let cases = [
        (&mismatch, "issuer"),
        (&insecure, "https"),
        (&no_token_endpoint, "no token endpoint"),
        (&empty, "discovery of"),
    ];
    for (idp, needle) in cases {
        let args = cli(
            "--issuer {} --client-id basic-app --client-secret {} -v {}",
            [&idp.uri(), SECRET, &url],
        );
        let out = fetch(&args).await;
        out.assert_usage_error(needle);
        assert!(
            out.stderr.contains(&idp.uri()),
            "names the issuer: {out:#?}"
        );
        out.assert_no_secrets(&[SECRET]);
    }
    assert_eq!(
        discovery_requests(&empty).await,
        2,
        "OpenID Connect, then RFC 8414"
    );
    assert_eq!(server.token_requests(), 0);
    assert!(server.resource_requests().is_empty());
}

/// A temporary directory of its own, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};

        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "fetch-cli-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// Writes `contents` to `name` in the directory; returns its path as a string.
    fn file(&self, name: &str, contents: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path.to_str().expect("a UTF-8 temporary path").to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A wiremock token endpoint at `/token` that answers `body` to a POST with `grant_type`, and
/// an API at `/api/...` that wants `Bearer {access_token}`.
async fn token_and_api(grant_type: &str, body: serde_json::Value) -> wiremock::MockServer {
    use wiremock::matchers::{body_string_contains, header, method, path, path_regex};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let mock = MockServer::start().await;
    let bearer = format!("Bearer {}", body["access_token"].as_str().unwrap());
    let encoded: String = url::form_urlencoded::byte_serialize(grant_type.as_bytes()).collect();
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains(format!("grant_type={encoded}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("^/api/"))
        .and(header("authorization", bearer.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_string("hello from the API\n"))
        .mount(&mock)
        .await;
    mock
}

#[cfg(feature = "jwt")]
mod jwt_keys {
    //! The shared test keys, and what may never be printed of them.

    pub(super) use crate::test_keys::{
        EC_PRIVATE, EC_PUBLIC, ED_PRIVATE, ED_PUBLIC, RSA_PRIVATE, RSA_PUBLIC,
    };

    /// The base64 lines of a PEM document: none may ever be printed.
    pub(super) fn body_lines(pem: &str) -> Vec<&str> {
        pem.lines().filter(|l| !l.starts_with("-----")).collect()
    }
}

#[cfg(feature = "jwt")]
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Verifies `jwt` (signature, `alg`, `iss`, `aud`, `exp`) and returns its header and claims.
#[cfg(feature = "jwt")]
fn verify_assertion(
    jwt: &str,
    key: &jsonwebtoken::DecodingKey,
    alg: jsonwebtoken::Algorithm,
    iss: &str,
    aud: &str,
) -> (jsonwebtoken::Header, serde_json::Value) {
    let mut validation = jsonwebtoken::Validation::new(alg);
    validation.set_issuer(&[iss]);
    validation.set_audience(&[aud]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "jti"]);
    let data = jsonwebtoken::decode::<serde_json::Value>(jwt, key, &validation)
        .expect("the assertion verifies with the public key");
    (data.header, data.claims)
}

/// `--flow jwt-bearer` with PEM keys: the token request carries the grant type and an
/// assertion signed with the key (algorithm guessed, or `--key-alg`), issued by the client id
/// for `--subject` (or the client id), addressed to the token URL, with `--key-id` as `kid` and
/// the scopes as a form parameter. Neither the key nor the assertion is ever printed.
#[cfg(feature = "jwt")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_bearer_signs_an_assertion_with_a_pem_key() {
    use jsonwebtoken::{Algorithm, DecodingKey};
    use jwt_keys::*;

    const ACCESS_TOKEN: &str = "jwt-bearer-access-token-value";
    let mock = token_and_api(
        JWT_BEARER_GRANT,
        serde_json::json!({
            "access_token": ACCESS_TOKEN,
            "token_type": "Bearer",
            "expires_in": 3600,
        }),
    )
    .await;
    let token_url = format!("{}/token", mock.uri());
    let url = format!("{}/api/things", mock.uri());
    let dir = TempDir::new("jwt");
    let ed = dir.file("ed25519.pem", ED_PRIVATE);
    let rsa = dir.file("rsa.pem", RSA_PRIVATE);
    let ec = dir.file("p256.pem", EC_PRIVATE);
    let ed_key = format!("--key={ed}");
    /// One run: the key's PEM, the key options, then what the assertion must show.
    struct Case<'a> {
        pem: &'a str,
        options: Vec<&'a str>,
        public: DecodingKey,
        alg: Algorithm,
        kid: Option<&'a str>,
        sub: &'a str,
    }
    let cases = [
        Case {
            pem: ED_PRIVATE,
            options: vec![
                &ed_key,
                "--key-id",
                "ed-1",
                "--subject",
                "alice@example.com",
            ],
            public: DecodingKey::from_ed_pem(ED_PUBLIC.as_bytes()).unwrap(),
            alg: Algorithm::EdDSA,
            kid: Some("ed-1"),
            sub: "alice@example.com",
        },
        Case {
            pem: RSA_PRIVATE,
            options: vec!["--key", &rsa],
            public: DecodingKey::from_rsa_pem(RSA_PUBLIC.as_bytes()).unwrap(),
            alg: Algorithm::RS256,
            kid: None,
            sub: "jwt-app",
        },
        Case {
            pem: RSA_PRIVATE,
            options: vec!["--key", &rsa, "--key-alg", "PS256", "--subject", "bob"],
            public: DecodingKey::from_rsa_pem(RSA_PUBLIC.as_bytes()).unwrap(),
            alg: Algorithm::PS256,
            kid: None,
            sub: "bob",
        },
        Case {
            pem: EC_PRIVATE,
            options: vec!["--key", &ec],
            public: DecodingKey::from_ec_pem(EC_PUBLIC.as_bytes()).unwrap(),
            alg: Algorithm::ES256,
            kid: None,
            sub: "jwt-app",
        },
    ];
    for (i, case) in cases.into_iter().enumerate() {
        let Case {
            pem,
            options,
            public,
            alg,
            kid,
            sub,
        } = case;
        let mut args = cli(
            "--token-url {} --client-id jwt-app --flow jwt-bearer --scope api:read -v",
            [&token_url],
        );
        args.extend(options.iter().map(|s| (*s).to_owned()));
        args.push(url.clone());
        let out = fetch(&args).await;
        out.assert_code(0);
        assert_eq!(out.status_lines(), [(200, url.clone())], "{out:#?}");
        assert_eq!(out.events("token: fetched"), 1, "{out:#?}");

        let forms = forms_at(&mock, "/token").await;
        assert_eq!(forms.len(), i + 1, "one token request per run");
        let form = &forms[i];
        assert_eq!(form_field(form, "grant_type"), Some(JWT_BEARER_GRANT));
        assert_eq!(form_field(form, "scope"), Some("api:read"));
        let assertion = form_field(form, "assertion").expect("an assertion");
        let (header, claims) = verify_assertion(assertion, &public, alg, "jwt-app", &token_url);
        assert_eq!(header.kid.as_deref(), kid);
        assert_eq!(claims["sub"], sub, "{claims}");
        assert_eq!(claims.get("scope"), None, "scopes go in the form");

        let mut secrets = body_lines(pem);
        secrets.extend([assertion, ACCESS_TOKEN]);
        out.assert_no_secrets(&secrets);
    }
}

/// A service account key file as `--key`: no `--token-url` or `--client-id` needed; the
/// assertion goes to the file's `token_uri`, issued by its `client_email`, with its
/// `private_key_id` as `kid` and the scopes in a `scope` claim (none in the form).
#[cfg(feature = "jwt")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_bearer_with_a_service_account_key_file() {
    use jsonwebtoken::{Algorithm, DecodingKey};
    use jwt_keys::*;

    const ACCESS_TOKEN: &str = "service-account-access-token";
    const EMAIL: &str = "robot@demo-project.iam.gserviceaccount.com";
    let mock = token_and_api(
        JWT_BEARER_GRANT,
        serde_json::json!({
            "access_token": ACCESS_TOKEN,
            "token_type": "Bearer",
            "expires_in": 3600,
        }),
    )
    .await;
    let token_uri = format!("{}/token", mock.uri());
    let url = format!("{}/api/buckets", mock.uri());
    let dir = TempDir::new("sa");
    let file = dir.file(
        "service-account.json",
        &serde_json::json!({
            "type": "service_account",
            "project_id": "demo-project",
            "private_key_id": "0123456789abcdef",
            "private_key": RSA_PRIVATE,
            "client_email": EMAIL,
            "client_id": "1234567890",
            "token_uri": token_uri,
        })
        .to_string(),
    );
    for (i, subject) in [None, Some("admin@example.com")].into_iter().enumerate() {
        let mut args = cli(
            "--flow jwt-bearer --key {} --scope https://www.googleapis.com/auth/devstorage.read_only --scope email -v",
            [&file],
        );
        if let Some(subject) = subject {
            args.extend(argv(["--subject", subject]));
        }
        args.push(url.clone());
        let out = fetch(&args).await;
        out.assert_code(0);
        assert_eq!(out.status_lines(), [(200, url.clone())], "{out:#?}");

        let forms = forms_at(&mock, "/token").await;
        let form = &forms[i];
        assert_eq!(form_field(form, "grant_type"), Some(JWT_BEARER_GRANT));
        assert_eq!(
            form_field(form, "scope"),
            None,
            "scopes go in the assertion"
        );
        let assertion = form_field(form, "assertion").expect("an assertion");
        let public = DecodingKey::from_rsa_pem(RSA_PUBLIC.as_bytes()).unwrap();
        let (header, claims) =
            verify_assertion(assertion, &public, Algorithm::RS256, EMAIL, &token_uri);
        assert_eq!(header.kid.as_deref(), Some("0123456789abcdef"));
        assert_eq!(
            claims["scope"],
            "https://www.googleapis.com/auth/devstorage.read_only email"
        );
        assert_eq!(claims.get("sub").and_then(|s| s.as_str()), subject);

        let mut secrets = body_lines(RSA_PRIVATE);
        secrets.extend([assertion, ACCESS_TOKEN]);
        out.assert_no_secrets(&secrets);
    }
}

/// `--flow token-exchange`: the form carries the grant type, the subject and actor tokens with
/// their types, the requested token type, audience, resource and scope; without
/// `--subject-token-type` the subject is an access token, and without `--actor-token` no actor
/// is sent. The tokens are never printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_exchange_sends_its_form_fields() {
    const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
    const ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";
    const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
    const SUBJECT: &str = "subject-token-secret-value";
    const ACTOR: &str = "actor-token-secret-value";
    const EXCHANGED: &str = "exchanged-access-token";
    let mock = token_and_api(
        GRANT,
        serde_json::json!({
            "access_token": EXCHANGED,
            "issued_token_type": ACCESS,
            "token_type": "Bearer",
            "expires_in": 600,
        }),
    )
    .await;
    let url = format!("{}/api/orders", mock.uri());
    let base = argv([
        "--token-url",
        &format!("{}/token", mock.uri()),
        "--client-id",
        "gateway",
        "--client-secret",
        "gateway-secret",
        "--flow",
        "token-exchange",
        "-v",
    ]);

    let mut args = base.clone();
    args.extend(argv([
        "--subject-token",
        SUBJECT,
        "--subject-token-type",
        JWT,
        &format!("--actor-token={ACTOR}"),
        "--requested-token-type",
        ACCESS,
        "--audience",
        "orders-backend",
        "--resource",
        "https://orders.example/",
        "--scope",
        "orders:read",
        &url,
    ]));
    let out = fetch(&args).await;
    out.assert_code(0);
    assert_eq!(out.status_lines(), [(200, url.clone())], "{out:#?}");
    out.assert_no_secrets(&[SUBJECT, ACTOR, EXCHANGED, "gateway-secret"]);

    let mut args = base;
    args.extend(argv(["--subject-token", SUBJECT, &url]));
    let out = fetch(&args).await;
    out.assert_code(0);
    out.assert_no_secrets(&[SUBJECT, EXCHANGED, "gateway-secret"]);

    let forms = forms_at(&mock, "/token").await;
    assert_eq!(forms.len(), 2);
    let full = &forms[0];
    for (name, value) in [
        ("grant_type", GRANT),
        ("subject_token", SUBJECT),
        ("subject_token_type", JWT),
        ("actor_token", ACTOR),
        ("actor_token_type", ACCESS),
        ("requested_token_type", ACCESS),
        ("audience", "orders-backend"),
        ("resource", "https://orders.example/"),
        ("scope", "orders:read"),
    ] {
        assert_eq!(form_field(full, name), Some(value), "{name} in {full:?}");
    }
    let plain = &forms[1];
    assert_eq!(form_field(plain, "subject_token"), Some(SUBJECT));
    assert_eq!(form_field(plain, "subject_token_type"), Some(ACCESS));
    for absent in [
        "actor_token",
        "actor_token_type",
        "requested_token_type",
        "audience",
        "resource",
        "scope",
    ] {
        assert_eq!(form_field(plain, absent), None, "{absent} in {plain:?}");
    }
}

/// `fetch revoke` at the test server: the token is revoked (the API refuses it afterwards),
/// `revoked` is printed, and the token never is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_revokes_and_prints_revoked() {
    let server = server().await;
    let client = server.oauth_client("basic-app").unwrap();
    let tokens = TokenSource::new(client, oauth_layer::flow::ClientCredentials::new());
    let token = tokens.token().await.unwrap();
    let access_token = token.access_token().expose_secret().to_owned();
    let api = server.resource_url("/api/hello");
    let answer = |token: String| {
        let api = api.clone();
        async move {
            reqwest::Client::new()
                .get(&api)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(answer(access_token.clone()).await, 200);

    let args = cli(
        "revoke --revocation-url {} --client-id basic-app --client-secret {} --token {} -v",
        [&server.revocation_url(), SECRET, &access_token],
    );
    let out = fetch(&args).await;
    out.assert_code(0);
    assert_eq!(out.stdout, "revoked\n", "{out:#?}");
    assert_eq!(server.revocation_requests(), 1);
    assert_eq!(answer(access_token.clone()).await, 401, "revoked for good");
    out.assert_no_secrets(&[&access_token, SECRET]);
}

/// `fetch revoke` with the revocation endpoint from `--issuer` discovery sends the token,
/// `token_type_hint` and the client's credentials; a server that refuses
/// (`unsupported_token_type`) makes it exit with 1, and `invalid_client` with 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_sends_the_token_and_its_hint_and_reports_refusals() {
    use wiremock::matchers::{body_string_contains, method, path};
    use wiremock::{Mock, ResponseTemplate};

    const REFRESH: &str = "refresh-token-to-revoke";
    const UNSUPPORTED: &str = "unsupported-kind-of-token";
    const UNKNOWN_CLIENT: &str = "token-of-an-unknown-client";
    let idp = discovery_server(serde_json::json!({})).await;
    let revoke_url = format!("{}/revoke", idp.uri());
    // Served over the discovery server: its document now names the revocation endpoint.
    idp.reset().await;
    let idp_uri = idp.uri();
    Mock::given(method("GET"))
        .and(path("/.well-known/openid-configuration"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "issuer": idp_uri,
            "token_endpoint": format!("{idp_uri}/token"),
            "revocation_endpoint": revoke_url,
        })))
        .mount(&idp)
        .await;
    Mock::given(method("POST"))
        .and(path("/revoke"))
        .and(body_string_contains(UNSUPPORTED))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "error": "unsupported_token_type",
            "error_description": "this server revokes refresh tokens only",
        })))
        .mount(&idp)
        .await;
    Mock::given(method("POST"))
        .and(path("/revoke"))
        .and(body_string_contains(UNKNOWN_CLIENT))
        .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
            "error": "invalid_client",
        })))
        .mount(&idp)
        .await;
    Mock::given(method("POST"))
        .and(path("/revoke"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&idp)
        .await;

    let revoke = |token: &str, hint: Option<&str>| {
        let mut args = cli(
            "revoke --issuer {} --client-id cli-app --client-secret cli-secret --auth-method post --token {} -v",
            [&idp.uri(), token],
        );
        if let Some(hint) = hint {
            args.push(format!("--token-type-hint={hint}"));
        }
        args
    };

    let out = fetch(&revoke(REFRESH, Some("refresh_token"))).await;
    out.assert_code(0);
    assert_eq!(out.stdout, "revoked\n", "{out:#?}");
    out.assert_no_secrets(&[REFRESH, "cli-secret"]);

    let out = fetch(&revoke(UNSUPPORTED, None)).await;
    out.assert_code(1);
    assert_eq!(out.stdout, "", "{out:#?}");
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("oauth-fetch: "))
        .collect();
    assert_eq!(errors.len(), 1, "{out:#?}");
    assert!(errors[0].contains("unsupported_token_type"), "{out:#?}");
    out.assert_no_secrets(&[UNSUPPORTED, "cli-secret"]);

    let out = fetch(&revoke(UNKNOWN_CLIENT, None)).await;
    out.assert_code(2);
    assert!(out.stderr.contains("invalid_client"), "{out:#?}");
    out.assert_no_secrets(&[UNKNOWN_CLIENT, "cli-secret"]);

    let forms = forms_at(&idp, "/revoke").await;
    assert_eq!(forms.len(), 3);
    let expected = [
        (REFRESH, "refresh_token"),
        (UNSUPPORTED, "access_token"),
        (UNKNOWN_CLIENT, "access_token"),
    ];
    for (form, (token, hint)) in forms.iter().zip(expected) {
        assert_eq!(form_field(form, "token"), Some(token), "{form:?}");
        assert_eq!(form_field(form, "token_type_hint"), Some(hint), "{form:?}");
        assert_eq!(form_field(form, "client_id"), Some("cli-app"), "{form:?}");
        assert_eq!(form_field(form, "client_secret"), Some("cli-secret"));
    }
    assert_eq!(discovery_requests(&idp).await, 3, "discovered at each run");
}

/// The new options' usage errors: exit code 2, one line, no request, and no secret echoed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_option_usage_errors_exit_with_2_and_one_line() {
    let server = server().await;
    let token_url = server.token_url();
    let revocation_url = server.revocation_url();
    let dir = TempDir::new("usage");
    let garbage = dir.file(
        "garbage.pem",
        "-----BEGIN PRIVATE KEY-----\nbm90LWEta2V5LWJ1dC1hLXNlY3JldC1vbmUtYW55d2F5\n\
         -----END PRIVATE KEY-----\n",
    );
    let not_json = dir.file(
        "broken.json",
        "{\"private_key\": \"very-secret-material-here",
    );
    let missing = dir.0.join("missing.pem");
    let cc = ["--token-url", &token_url, "--client-id", "basic-app"];
    #[rustfmt::skip]
    let vars = [
        var("CC", &cc),
        var("JWT", &[cc.as_slice(), &["--flow", "jwt-bearer"]].concat()),
        var("TE", &[cc.as_slice(), &["--flow", "token-exchange"]].concat()),
        var("RV", &["revoke", "--revocation-url", &revocation_url, "--client-id", "basic-app"]),
        var("URL", &[&server.resource_url("/api/hello")]),
        var("TOKEN_URL", &[&token_url]),
        var("GARBAGE", &[&garbage]),
        var("NOT_JSON", &[&not_json]),
        var("MISSING", &[missing.to_str().unwrap()]),
    ];
    #[rustfmt::skip]
    let mut cases = vec![
        (
            "neither --token-url nor --issuer (a resource-first run has no device flow)",
            "--client-id basic-app --flow device $URL",
            "--token-url is required (or --issuer",
        ),
        // Outside jwt-bearer, --key is the client's own key (private-key-jwt), read as such.
        ("--key with client credentials", "$CC --key $GARBAGE $URL", "is not a usable PEM private key"),
        (
            "--subject-token with jwt-bearer",
            "$JWT --subject-token st-secret-1 $URL",
            "--subject-token applies to --flow token-exchange only",
        ),
        (
            "--audience with jwt-bearer",
            "$JWT --audience x $URL",
            "--audience applies to --flow client-credentials or --flow token-exchange only",
        ),
        ("--token outside revoke", "$CC --token tok-secret-1 $URL", "--token applies to `oauth-fetch revoke` only"),
        ("token-exchange without --subject-token", "$TE $URL", "--flow token-exchange needs --subject-token"),
        (
            "--actor-token-type without --actor-token",
            "$TE --subject-token st-secret-1 --actor-token-type urn:x $URL",
            "--actor-token-type needs --actor-token",
        ),
        ("revoke without --token", "$RV", "revoke needs --token"),
        (
            "revoke without a revocation endpoint",
            "revoke --client-id basic-app --token tok-secret-1",
            "revoke needs --revocation-url (or --issuer",
        ),
        ("revoke with a URL (or a misplaced token)", "$RV --token tok-secret-1 tok-secret-2", "revoke takes no URL"),
        ("revoke with a flow option", "$RV --token tok-secret-1 --scope a", "--scope does not apply to revoke"),
        ("unknown --token-type-hint", "$RV --token tok-secret-1 --token-type-hint id_token", "unknown --token-type-hint"),
        (
            "insecure --revocation-url",
            "revoke --revocation-url http://idp.example/revoke --client-id basic-app --token tok-secret-1",
            "--revocation-url: ",
        ),
    ];
    #[rustfmt::skip]
    let jwt_cases = [
            ("jwt-bearer without --key", "$JWT $URL", "--flow jwt-bearer needs --key FILE"),
            ("a key file that is not there", "$JWT --key $MISSING $URL", "--key: cannot read"),
            ("a PEM document that is no key", "$JWT --key $GARBAGE $URL", "is not a usable PEM private key"),
            ("a PEM document that is no key, with --key-alg", "$JWT --key $GARBAGE --key-alg ES256 $URL", "ES256"),
            ("broken service account JSON", "$JWT --key $NOT_JSON $URL", "service account"),
            ("unknown --key-alg", "$JWT --key $GARBAGE --key-alg HS256 $URL", "unknown --key-alg \"HS256\""),
            (
                "a PEM key without --client-id",
                "--token-url $TOKEN_URL --flow jwt-bearer --key $GARBAGE $URL",
                "needs --client-id",
            ),
    ];
    if cfg!(feature = "jwt") {
        cases.extend(jwt_cases);
    }
    let secrets = [
        "st-secret-1",
        "tok-secret-1",
        "tok-secret-2",
        "bm90LWEta2V5",
        "very-secret-material",
    ];
    assert_usage_errors(&cases, &vars, &secrets).await;
    assert_eq!(server.token_requests(), 0, "usage errors send nothing");
    assert_eq!(server.revocation_requests(), 0);
    assert!(server.resource_requests().is_empty());
}

// --- Provider presets: --provider NAME [--provider-arg VALUE] ------------------------------------

/// The client secret given to the presets: never printed, and never in the authorization URL.
const PRESET_SECRET: &str = "preset-secret-value-1";

/// Runs `fetch args` (a `--provider` sign-in, whose preset names a real host that is not to be
/// reached) with a [`FakeBrowser::recording`] browser, reads the authorization URL it shows on
/// stderr, stops it, and checks what every preset's sign-in shares: the URL starts with
/// `endpoint`, is the one the browser was given, carries `client_id` `X`, PKCE S256 (unless
/// `pkce` is false), a state and a loopback redirect URI, and nothing secret was printed.
async fn preset_sign_in<S: AsRef<str>>(args: &[S], endpoint: &str, pkce: bool) -> Url {
    let browser = FakeBrowser::recording();
    let mut args = argv(["--client-id", "X", "--client-secret", PRESET_SECRET])
        .into_iter()
        .chain(args.iter().map(|s| s.as_ref().to_owned()))
        .collect::<Vec<_>>();
    args.push("-v".to_owned());
    let mut live = Live::spawn(browser.command(&args));
    let prefix = format!("{endpoint}?");
    let shown = live
        .wait_for(|line| line.starts_with(&prefix).then(|| line.to_owned()))
        .await;
    let out = live.kill().await;
    let url = Url::parse(&shown).unwrap();
    assert_eq!(
        browser.visited().await,
        url,
        "the browser was sent there: {out:#?}"
    );
    assert_eq!(query_param(&url, "response_type"), "code");
    assert_eq!(query_param(&url, "client_id"), "X");
    assert!(!query_param(&url, "state").is_empty());
    if pkce {
        assert_eq!(query_param(&url, "code_challenge_method"), "S256");
        assert!(!query_param(&url, "code_challenge").is_empty());
    }
    let redirect_uri = query_param(&url, "redirect_uri");
    assert!(
        redirect_uri.starts_with("http://127.0.0.1:") && redirect_uri.ends_with("/callback"),
        "{redirect_uri}"
    );
    assert!(!url.as_str().contains(PRESET_SECRET));
    // The sign-in never finished: no token, no request to the API, no status line.
    assert_eq!(out.stdout, "", "{out:#?}");
    assert_eq!(out.events("token: fetched"), 0, "{out:#?}");
    out.assert_no_secrets_besides(&[PRESET_SECRET], &[url.as_str()]);
    url
}

/// `--provider github`: the sign-in is GitHub's (its authorize endpoint, PKCE, the preset's
/// default scopes) without `--flow`, `--token-url` or `--auth-url`; `--scope` replaces the
/// scopes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_github_signs_in_at_githubs_authorize_endpoint() {
    const AUTHORIZE: &str = "https://github.com/login/oauth/authorize";
    let url = preset_sign_in(
        &["--provider", "github", "https://api.github.com/user"],
        AUTHORIZE,
        true,
    )
    .await;
    assert_eq!(query_param(&url, "scope"), "read:user user:email");

    let url = preset_sign_in(
        &cli(
            "--provider=github --scope repo --scope gist https://api.github.com/user",
            [],
        ),
        AUTHORIZE,
        true,
    )
    .await;
    assert_eq!(query_param(&url, "scope"), "repo gist");
}

/// `--provider microsoft`: the tenant of `--provider-arg` (default `common`) in the endpoint's
/// path, and `offline_access` in the scopes even when `--scope` replaces them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_microsoft_puts_the_tenant_in_the_path() {
    let api = "https://graph.microsoft.com/oidc/userinfo";
    let url = preset_sign_in(
        &cli(
            "--provider microsoft --provider-arg contoso.onmicrosoft.com {}",
            [api],
        ),
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize",
        true,
    )
    .await;
    assert_eq!(
        query_param(&url, "scope"),
        "openid profile email offline_access"
    );
    // `openid`: a nonce for the ID token.
    assert!(!query_param(&url, "nonce").is_empty());

    let url = preset_sign_in(
        &["--provider", "microsoft", "--scope", "User.Read", api],
        "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
        true,
    )
    .await;
    let scope = query_param(&url, "scope");
    let scopes: Vec<&str> = scope.split(' ').collect();
    assert!(scopes.contains(&"User.Read"), "{scope}");
    assert!(scopes.contains(&"offline_access"), "{scope}");
    assert!(
        !scopes.contains(&"openid"),
        "--scope replaced the defaults: {scope}"
    );
}

/// `--provider google`: `access_type=offline` (for a refresh token) and the OpenID Connect
/// scopes; `--provider reddit`: `duration=permanent`, its `identity` scope and the user agent
/// from `--provider-arg`; `--provider shopify`: the shop's own host, the scopes comma
/// separated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_google_reddit_and_shopify_add_their_quirks() {
    let url = preset_sign_in(
        &cli(
            "--provider google https://www.googleapis.com/oauth2/v3/userinfo",
            [],
        ),
        "https://accounts.google.com/o/oauth2/v2/auth",
        true,
    )
    .await;
    assert_eq!(query_param(&url, "access_type"), "offline");
    assert_eq!(query_param(&url, "scope"), "openid email profile");

    let url = preset_sign_in(
        &cli(
            "--provider reddit --provider-arg {} https://oauth.reddit.com/api/v1/me",
            ["linux:com.example.fetch:v1.0 (by /u/someone)"],
        ),
        "https://www.reddit.com/api/v1/authorize",
        true,
    )
    .await;
    assert_eq!(query_param(&url, "duration"), "permanent");
    assert_eq!(query_param(&url, "scope"), "identity");

    let url = preset_sign_in(
        &cli("--provider shopify --provider-arg my-shop --scope read_products --scope write_orders https://my-shop.myshopify.com/admin/api/2025-10/shop.json", []),
        "https://my-shop.myshopify.com/admin/oauth/authorize",
        true,
    )
    .await;
    assert_eq!(query_param(&url, "scope"), "read_products,write_orders");
}

/// `--provider openid --issuer ISS`, end to end: the preset is discovered (wiremock's document,
/// naming the test server's endpoints), the browser signs in there, and the token from the
/// preset's client reaches the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_openid_is_discovered_from_the_issuer_and_signs_in() {
    // The test server would answer the sign-in with its own `iss`, not the document's issuer.
    let server = builder().send_iss(false).start().await.unwrap();
    let idp = discovery_server(serde_json::json!({
        "authorization_endpoint": server.authorization_url(),
        "token_endpoint": server.token_url(),
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
    }))
    .await;
    let browser = FakeBrowser::new();
    let url = server.resource_url("/api/hello");
    let args = cli(
        "--provider openid --issuer {} --client-id basic-app --client-secret {} --scope api:read -v {}",
        [&idp.uri(), SECRET, &url],
    );
    let out = run(browser.command(&args)).await;
    out.assert_code(0);
    assert_eq!(out.status_lines(), [(200, url.clone())], "{out:#?}");
    assert!(out.stdout.contains(r#""scope":"api:read""#), "{out:#?}");
    assert_eq!(discovery_requests(&idp).await, 1);
    assert_eq!(server.authorization_requests(), 1);
    assert_eq!(server.token_requests_for("authorization_code"), 1);
    let shown = shown_authorization_url(&out, &server, "basic-app");
    assert_eq!(query_param(&shown, "scope"), "api:read");
    let token = one_access_token(&server, 1);
    out.assert_no_secrets_besides(&[SECRET, &token], &[shown.as_str()]);
}

/// `--provider` problems found before anything is sent: exit code 2 and one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_usage_errors_exit_with_2_and_one_line() {
    #[rustfmt::skip]
    let vars = [
        var("ID", &["--client-id", "X", "--client-secret", PRESET_SECRET]),
        var("API", &["https://api.example/"]),
    ];
    #[rustfmt::skip]
    let cases = [
        ("$ID --provider myspace $API", "unknown --provider \"myspace\""),
        ("$ID --provider okta $API", "--provider okta needs --provider-arg"),
        ("$ID --provider auth0 $API", "--provider auth0 needs --provider-arg"),
        ("$ID --provider keycloak $API", "--provider keycloak needs --provider-arg"),
        ("$ID --provider shopify $API", "--provider shopify needs --provider-arg"),
        ("$ID --provider reddit $API", "--provider reddit needs --provider-arg"),
        ("$ID --provider shopify --provider-arg 'not/a shop' $API", "--provider shopify: "),
        (
            "$ID --provider keycloak --provider-arg http://sso.example/realms/a $API",
            "--provider keycloak: ",
        ),
        ("$ID --provider microsoft --provider-arg a/b $API", "--provider microsoft: "),
        ("$ID --provider github --provider-arg x $API", "--provider github takes no --provider-arg"),
        ("$ID --provider-arg x --token-url $API $API", "--provider-arg applies to --provider only"),
        (
            "$ID --provider github --token-url https://t.example/token $API",
            "--token-url and --provider are ambiguous",
        ),
        (
            "$ID --provider github --auth-url https://t.example/authorize $API",
            "--auth-url and --provider are ambiguous",
        ),
        ("$ID --provider github --auth-method basic $API", "--auth-method and --provider are ambiguous"),
        ("$ID --provider github --issuer https://github.com $API", "--issuer and --provider github are ambiguous"),
        ("$ID --provider openid $API", "--provider openid needs --issuer"),
        ("$ID --provider github --flow password $API", "--provider goes with --flow auth-code"),
        ("$ID --provider facebook --flow device $API", "--provider facebook has no device authorization endpoint"),
        ("$ID --provider github --flow refresh --paste $API", "--paste applies to --flow auth-code only"),
        // revoke takes --provider, with the preset's revocation endpoint.
        (
            "revoke --provider github --client-id X --token tok-secret-1",
            "--provider github names no revocation endpoint",
        ),
    ];
    let cases = cases.map(|(line, needle)| (line, line, needle));
    assert_usage_errors(&cases, &vars, &[PRESET_SECRET, "tok-secret-1"]).await;
}

// --- Keeping tokens between runs: --cache DIR, --redis URL, --identity --------------------------

/// A free TCP port on 127.0.0.1 (free when this returns).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The entries of a cache directory (`<key digest>.json`), sorted.
#[cfg(feature = "file-store")]
fn cache_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    entries.sort();
    entries
}

/// The permission bits of `path`.
#[cfg(feature = "file-store")]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `--cache DIR` with `--flow auth-code`: the first run signs in through the browser and leaves
/// the token in DIR (a `0700` directory, a `0600` file); the next run starts from it and makes
/// no interactive request and no token request. When the server has expired its access tokens
/// in between, the token in the file still looks valid by its own expiry: the first request
/// gets a 401, the refresh token from the file renews it (still no sign-in), and the renewed
/// token is written back for the run after.
#[cfg(feature = "file-store")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_keeps_the_auth_code_token_so_the_next_run_signs_in_no_more() {
    let server = server().await;
    let tmp = TempDir::new("cache-auth-code");
    // Not there yet: the store creates it.
    let cache = tmp.0.join("tokens");
    let url = server.resource_url("/api/hello");
    let args = with_client(
        &server,
        "public-app",
        &cli(
            "--flow auth-code --auth-url {} --cache {} -v {}",
            [&server.authorization_url(), cache.to_str().unwrap(), &url],
        ),
    );

    // 1. The sign-in.
    let browser = FakeBrowser::new();
    let first = run(browser.command(&args)).await;
    first.assert_code(0);
    assert_eq!(first.status_lines(), [(200, url.clone())], "{first:#?}");
    assert_eq!(server.authorization_requests(), 1);
    assert_eq!(server.token_requests_for("authorization_code"), 1);
    assert_eq!(server.token_requests(), 1);
    assert_eq!(first.events("token: fetched"), 1, "{first:#?}");
    let shown = shown_authorization_url(&first, &server, "public-app");
    let code = query_param(&browser.visited().await, "code");
    let token = one_access_token(&server, 1);
    first.assert_no_secrets_besides(&[&token, &code], &[shown.as_str()]);

    // The directory is private, and so is the one entry; the plain codec keeps the token in it.
    assert_eq!(mode(&cache), 0o700, "the cache directory's mode");
    let entries = cache_entries(&cache);
    assert_eq!(entries.len(), 1, "one entry: {entries:?}");
    assert_eq!(mode(&entries[0]), 0o600, "the cache file's mode");
    let stored = std::fs::read_to_string(&entries[0]).unwrap();
    assert!(stored.contains(&token), "the file holds the token");

    // 2. The next run: the token from the file, no browser, no token request.
    let no_browser = FakeBrowser::recording();
    let second = run(no_browser.command(&args)).await;
    second.assert_code(0);
    assert_eq!(second.status_lines(), [(200, url.clone())], "{second:#?}");
    assert!(!no_browser.was_run(), "no browser opened: {second:#?}");
    assert_eq!(server.authorization_requests(), 1, "no second sign-in");
    assert_eq!(server.token_requests(), 1, "no token request");
    assert_eq!(
        second.events("token: loaded from the store"),
        1,
        "{second:#?}"
    );
    assert_eq!(second.events("token: fetched"), 0, "{second:#?}");
    assert!(
        !second.stderr.contains(&server.authorization_url()),
        "no authorization URL shown: {second:#?}"
    );
    assert_eq!(one_access_token(&server, 2), token);
    second.assert_no_secrets(&[&token]);

    // 3. The server expires its access tokens: the one in the file is refused once and renewed
    //    with the refresh token from the file. Still no sign-in.
    server.expire_all_access_tokens();
    let no_browser = FakeBrowser::recording();
    let third = run(no_browser.command(&args)).await;
    third.assert_code(0);
    assert_eq!(third.status_lines(), [(200, url.clone())], "{third:#?}");
    assert!(!no_browser.was_run(), "no browser opened: {third:#?}");
    assert_eq!(server.authorization_requests(), 1, "no second sign-in");
    assert_eq!(server.token_requests_for("authorization_code"), 1);
    assert_eq!(server.token_requests_for("refresh_token"), 1);
    assert_eq!(server.token_requests(), 2);
    let statuses: Vec<u16> = server
        .resource_requests()
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [200, 200, 401, 200]);
    let used = access_tokens(&server);
    assert_eq!(used[2], token, "the token from the file went first");
    let renewed = used[3].clone();
    assert_ne!(renewed, token);
    assert_eq!(
        third.events("token: loaded from the store"),
        1,
        "{third:#?}"
    );
    assert_eq!(third.events("token: renewed"), 1, "{third:#?}");
    assert_eq!(third.events("token: retried after 401"), 1, "{third:#?}");
    assert_eq!(third.events("token: fetched"), 0, "{third:#?}");
    third.assert_no_secrets(&[&token, &renewed]);

    // 4. The renewed token was written through: the run after uses it as it is.
    let stored = std::fs::read_to_string(&entries[0]).unwrap();
    assert!(
        stored.contains(&renewed),
        "the file holds the renewed token"
    );
    assert_eq!(mode(&entries[0]), 0o600, "still private after the rewrite");
    let no_browser = FakeBrowser::recording();
    let fourth = run(no_browser.command(&args)).await;
    fourth.assert_code(0);
    assert!(!no_browser.was_run(), "no browser opened: {fourth:#?}");
    assert_eq!(server.token_requests(), 2, "no token request");
    assert_eq!(server.authorization_requests(), 1);
    assert_eq!(access_tokens(&server)[4], renewed);
    assert_eq!(cache_entries(&cache), entries);
}

/// `--cache DIR` with client credentials: two runs, one token request. `--identity NAME` keeps
/// a token of its own next to it (another entry, another token request), which its next run
/// reuses in turn.
#[cfg(feature = "file-store")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_serves_client_credentials_across_runs_and_identities_apart() {
    let server = server().await;
    let tmp = TempDir::new("cache-cc");
    // Not there yet: the store creates it private (it refuses a directory open to others).
    let cache = tmp.0.join("tokens").to_str().unwrap().to_owned();
    let url = server.resource_url("/api/hello");
    let args = with_client(
        &server,
        "basic-app",
        &["--client-secret", SECRET, "--cache", &cache, "-v", &url],
    );
    let first = fetch(&args).await;
    first.assert_code(0);
    assert_eq!(first.events("token: fetched"), 1, "{first:#?}");
    let second = fetch(&args).await;
    second.assert_code(0);
    assert_eq!(second.status_lines(), [(200, url.clone())], "{second:#?}");
    assert_eq!(server.token_requests_for("client_credentials"), 1);
    assert_eq!(server.token_requests(), 1);
    assert_eq!(
        second.events("token: loaded from the store"),
        1,
        "{second:#?}"
    );
    assert_eq!(second.events("token: fetched"), 0, "{second:#?}");
    let token = one_access_token(&server, 2);
    let entries = cache_entries(&tmp.0.join("tokens"));
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(mode(&entries[0]), 0o600);

    // Another identity: its own entry and token.
    let mut bob = args.clone();
    bob.splice(0..0, argv(["--identity", "bob"]));
    let third = fetch(&bob).await;
    third.assert_code(0);
    assert_eq!(third.events("token: fetched"), 1, "{third:#?}");
    assert_eq!(server.token_requests(), 2);
    let fourth = fetch(&bob).await;
    fourth.assert_code(0);
    assert_eq!(
        fourth.events("token: loaded from the store"),
        1,
        "{fourth:#?}"
    );
    assert_eq!(server.token_requests(), 2);
    let used = access_tokens(&server);
    assert_ne!(used[2], token);
    assert_eq!(used[3], used[2]);
    assert_eq!(cache_entries(&tmp.0.join("tokens")).len(), 2);
    // And the first identity still has its own.
    fetch(&args).await.assert_code(0);
    assert_eq!(server.token_requests(), 2);
    assert_eq!(access_tokens(&server)[4], token);

    for out in [&first, &second, &third, &fourth] {
        out.assert_no_secrets(&[SECRET, &token, &used[2]]);
    }
}

/// A `redis-server` child process on a free loopback port, with a password, killed when
/// dropped. (The starter of tests/redis_store.rs, cut down.)
#[cfg(feature = "redis-store")]
struct RedisServer {
    child: std::process::Child,
    port: u16,
}

#[cfg(feature = "redis-store")]
impl RedisServer {
    async fn start(password: &str) -> Self {
        let port = free_port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--requirepass", password])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server is not installed; the --redis tests need it: \
                 `apt-get install redis-server` (CI's .ci/run installs it)"
            ),
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        let mut server = Self { child, port };
        server.wait_until_ready().await;
        server
    }

    /// Waits until the server answers `PING` (`NOAUTH` counts: it is up).
    async fn wait_until_ready(&mut self) {
        use tokio::io::AsyncWriteExt;

        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "redis-server exited at start ({status}); is port {} free?",
                    self.port
                );
            }
            if let Ok(mut tcp) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await {
                let mut reply = [0u8; 16];
                if tcp.write_all(b"PING\r\n").await.is_ok()
                    && let Ok(n) = tcp.read(&mut reply).await
                    && (reply[..n].starts_with(b"+PONG") || reply[..n].starts_with(b"-NOAUTH"))
                {
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server never answered PING"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn url(&self, password: &str) -> String {
        format!("redis://:{password}@127.0.0.1:{}", self.port)
    }
}

#[cfg(feature = "redis-store")]
impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The password of the test's Redis: never printed, `-v` included.
#[cfg(feature = "redis-store")]
const REDIS_PASSWORD: &str = "redis-pass-word-1";

/// `--redis URL` against a `redis-server` this test starts (with a password): two runs, one
/// token request, and the password from the URL never printed. The wrong password is a
/// configuration error (exit code 2, one line), without the password either.
#[cfg(feature = "redis-store")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_serves_the_token_across_runs() {
    let redis = RedisServer::start(REDIS_PASSWORD).await;
    let server = server().await;
    let url = server.resource_url("/api/hello");
    let args = with_client(
        &server,
        "basic-app",
        &[
            "--client-secret",
            SECRET,
            "--redis",
            &redis.url(REDIS_PASSWORD),
            "-v",
            &url,
        ],
    );
    let first = fetch(&args).await;
    first.assert_code(0);
    assert_eq!(first.status_lines(), [(200, url.clone())], "{first:#?}");
    assert_eq!(first.events("token: fetched"), 1, "{first:#?}");
    let second = fetch(&args).await;
    second.assert_code(0);
    assert_eq!(second.status_lines(), [(200, url.clone())], "{second:#?}");
    assert_eq!(
        second.events("token: loaded from the store"),
        1,
        "{second:#?}"
    );
    assert_eq!(second.events("token: fetched"), 0, "{second:#?}");
    assert_eq!(server.token_requests_for("client_credentials"), 1);
    assert_eq!(server.token_requests(), 1);
    let token = one_access_token(&server, 2);
    for out in [&first, &second] {
        out.assert_no_secrets(&[SECRET, &token, REDIS_PASSWORD]);
    }

    // The wrong password: refused before any token request.
    let wrong = "wrong-redis-pass-2";
    let args = with_client(
        &server,
        "basic-app",
        &[
            "--client-secret",
            SECRET,
            "--redis",
            &redis.url(wrong),
            "-v",
            &url,
        ],
    );
    let out = fetch(&args).await;
    out.assert_usage_error("--redis: ");
    out.assert_no_secrets(&[SECRET, wrong, REDIS_PASSWORD]);
    assert_eq!(server.token_requests(), 1);
    assert_eq!(server.resource_requests().len(), 2);
}

/// `--cache`, `--redis` and `--identity` problems: exit code 2, one line, nothing sent, and
/// never the password of a `--redis` URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_usage_errors_exit_with_2_and_one_line() {
    const PASSWORD_IN_URL: &str = "pass-in-the-url-3";
    let server = server().await;
    let tmp = TempDir::new("cache-usage");
    let not_a_dir = tmp.file("plain-file", "not a directory");
    // Like /tmp, and like a home directory others may enter: the store never narrows them.
    let open_dir = |name: &str, mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        let path = tmp.0.join(name);
        std::fs::create_dir(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let shared = open_dir("shared", 0o1777);
    let token_url = server.token_url();
    #[rustfmt::skip]
    let vars = [
        var("CC", &["--token-url", &token_url, "--client-id", "basic-app", "--client-secret", SECRET]),
        var("URL", &[&server.resource_url("/api/hello")]),
        var("DIR", &[tmp.0.to_str().unwrap()]),
        var("NOT_A_DIR", &[&not_a_dir]),
        var("SHARED", &[&shared]),
        var("READABLE", &[&open_dir("readable", 0o755)]),
        var("UNREACHABLE", &[&format!("redis://:{PASSWORD_IN_URL}@127.0.0.1:{}", free_port())]),
        var("BAD_URL", &[&format!("redis://:{PASSWORD_IN_URL}@[::1")]),
    ];
    #[rustfmt::skip]
    let mut cases = vec![
        ("--cache and --redis", "$CC --cache $DIR --redis $UNREACHABLE $URL", "--cache and --redis do not go together"),
        ("--identity without a store", "$CC --identity bob $URL", "--identity goes with --cache or --redis"),
        ("--cache without a directory", "$CC --cache= $URL", "--cache needs a directory"),
        ("--identity without a name", "$CC --cache $DIR --identity= $URL", "--identity needs a non-empty name"),
        (
            "--cache with revoke",
            "revoke --revocation-url http://127.0.0.1:1/revoke --client-id basic-app --token tok-secret-1 --cache $DIR",
            "--cache does not apply to revoke",
        ),
    ];
    #[rustfmt::skip]
    let file_cases = [
        ("--cache naming a file", "$CC --cache $NOT_A_DIR $URL", "--cache: "),
        ("--cache naming a directory everyone may write to", "$CC --cache $SHARED $URL", "is open to other users (mode 1777)"),
        ("--cache naming a directory others may read", "$CC --cache $READABLE $URL", "is open to other users (mode 755)"),
    ];
    #[rustfmt::skip]
    let redis_cases = [
        ("a --redis URL that does not parse", "$CC --redis $BAD_URL $URL", "invalid Redis URL"),
        ("a --redis URL that is not Redis's", "$CC --redis http://127.0.0.1:1/ $URL", "invalid Redis URL"),
        ("a Redis that cannot be reached", "$CC --redis $UNREACHABLE -v $URL", "cannot connect to Redis"),
    ];
    // The cli feature brings file-store; redis-store is optional.
    if cfg!(feature = "file-store") {
        cases.extend(file_cases);
    } else {
        cases.push((
            "--cache without the feature",
            "$CC --cache $DIR $URL",
            "--cache needs the crate's file-store feature",
        ));
    }
    if cfg!(feature = "redis-store") {
        cases.extend(redis_cases);
    } else {
        cases.push((
            "--redis without the feature",
            "$CC --redis $UNREACHABLE $URL",
            "--redis needs the crate's redis-store feature",
        ));
    }
    assert_usage_errors(&cases, &vars, &[SECRET, PASSWORD_IN_URL, "tok-secret-1"]).await;
    assert_eq!(server.token_requests(), 0, "usage errors send nothing");
    assert!(server.resource_requests().is_empty());
    assert_eq!(
        std::fs::read_to_string(&not_a_dir).unwrap(),
        "not a directory",
        "the file --cache named is left alone"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&shared).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o1777, "the shared directory is left alone");
    }
}

// --- Secrets off the command line: OAUTH_* variables, @FILE and - (standard input) ------------

/// A way to give a secret option its value without putting it on the command line.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Way {
    /// The option left out, its `OAUTH_...` variable set.
    Env,
    /// `--option @FILE`, the file ending with a newline that is no part of the secret.
    File,
    /// `--option -`, the value and a newline written to standard input, which is then closed.
    Stdin,
}

const WAYS: [Way; 3] = [Way::Env, Way::File, Way::Stdin];

/// A secret option, its value, and the way it is given.
type Secret<'a> = (&'a str, &'a str, Way);

/// The environment variable of the secret option `option`.
fn variable(option: &str) -> &'static str {
    SECRET_VARIABLES
        .iter()
        .find(|(o, _)| *o == option)
        .map(|(_, v)| *v)
        .expect("a secret option")
}

/// The binary with `args`, then each `(option, value, way)` of `secrets` given that way (files
/// in `dir`), and what to write to its standard input.
fn secret_command(
    args: &[String],
    secrets: &[Secret<'_>],
    dir: &TempDir,
) -> (Command, Option<String>) {
    let mut args = args.to_vec();
    let mut env = Vec::new();
    let mut stdin = None;
    for (option, value, way) in secrets {
        match way {
            Way::Env => env.push((variable(option), *value)),
            Way::File => {
                let name = format!("{}.secret", option.trim_start_matches('-'));
                let path = dir.file(&name, &format!("{value}\n"));
                args.extend([(*option).to_owned(), format!("@{path}")]);
            }
            Way::Stdin => {
                assert!(stdin.is_none(), "one secret at most on standard input");
                stdin = Some(format!("{value}\n"));
                args.extend([(*option).to_owned(), "-".to_owned()]);
            }
        }
    }
    let mut cmd = command(&args);
    for (name, value) in env {
        cmd.env(name, value);
    }
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    (cmd, stdin)
}

/// Runs `cmd`, writing `input` to its standard input (piped) and closing it.
async fn run_with_stdin(mut cmd: Command, input: Option<String>) -> Run {
    use tokio::io::AsyncWriteExt;

    let Some(input) = input else {
        return run(cmd).await;
    };
    let mut child = cmd.spawn().expect("fetch started");
    let mut stdin = child.stdin.take().expect("a piped standard input");
    // A run that stops before reading (a usage error) closes the pipe: not the test's concern.
    let _ = stdin.write_all(input.as_bytes()).await;
    drop(stdin);
    let out = tokio::time::timeout(RUN_LIMIT, child.wait_with_output())
        .await
        .expect("fetch finished in time")
        .expect("fetch ran");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

/// The binary with `args` and `secrets` given off the command line, run to its end.
async fn fetch_with_secrets(args: &[String], secrets: &[Secret<'_>], dir: &TempDir) -> Run {
    let (cmd, stdin) = secret_command(args, secrets, dir);
    run_with_stdin(cmd, stdin).await
}

/// `--help` names every secret's variable, `@FILE` and `-`, and warns that a value on the
/// command line is visible to the machine's other users.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_says_how_secrets_stay_off_the_command_line() {
    let out = fetch(&argv(["--help"])).await;
    out.assert_code(0);
    for (option, variable) in SECRET_VARIABLES {
        assert!(out.stdout.contains(option), "--help mentions {option}");
        assert!(out.stdout.contains(variable), "--help mentions {variable}");
    }
    for text in ["@FILE", "standard input", "/proc/PID/cmdline", "every user"] {
        assert!(out.stdout.contains(text), "--help mentions {text:?}");
    }
}

/// The client secret from its variable, a file or standard input: the client authenticates
/// (Basic, with every awkward character), and `-v` shows none of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_from_the_environment_a_file_or_stdin() {
    let server = server().await;
    let dir = TempDir::new("client-secret");
    let url = server.resource_url("/api/hello");
    for way in WAYS {
        server.reset_counts();
        let args = with_client(&server, "basic-app", &["-v", &url]);
        let out = fetch_with_secrets(&args, &[("--client-secret", SECRET, way)], &dir).await;
        eprintln!("way: {way:?}");
        out.assert_code(0);
        assert_eq!(out.status_lines(), [(200, url.clone())], "{out:#?}");
        assert_eq!(server.token_requests_for("client_credentials"), 1);
        let token = one_access_token(&server, 1);
        out.assert_no_secrets(&[SECRET, &token]);
    }
}

/// The password from its variable, a file or standard input signs `alice` in; a wrong one,
/// given the same ways, is refused (exit code 1) and never printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_from_the_environment_a_file_or_stdin() {
    const WRONG: &str = "wrong horse:battery/staple";
    let server = server().await;
    let dir = TempDir::new("password");
    let url = server.resource_url("/api/me");
    let args = with_client(
        &server,
        "public-app",
        &["--flow", "password", "--username", "alice", "-v", &url],
    );
    for way in WAYS {
        server.reset_counts();
        let out = fetch_with_secrets(&args, &[("--password", PASSWORD, way)], &dir).await;
        eprintln!("way: {way:?}");
        out.assert_code(0);
        assert_eq!(out.status_lines(), [(200, url.clone())], "{out:#?}");
        assert!(out.stdout.contains(r#""username":"alice""#), "{out:#?}");
        assert_eq!(server.token_requests_for("password"), 1);
        let token = one_access_token(&server, 1);
        out.assert_no_secrets(&[PASSWORD, &token]);

        let out = fetch_with_secrets(&args, &[("--password", WRONG, way)], &dir).await;
        out.assert_code(1);
        assert!(out.stderr.contains("invalid_grant"), "{out:#?}");
        out.assert_no_secrets(&[PASSWORD, WRONG]);
    }
}

/// A refresh token from its variable, a file or standard input is redeemed, with the client
/// secret from another of the three ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_token_from_the_environment_a_file_or_stdin() {
    let server = server().await;
    let dir = TempDir::new("refresh-token");
    let url = server.resource_url("/api/me");
    let args = with_client(&server, "basic-app", &["--flow", "refresh", "-v", &url]);
    for (way, secret_way) in [
        (Way::Env, Way::File),
        (Way::File, Way::Stdin),
        (Way::Stdin, Way::Env),
    ] {
        let tokens = TokenSource::new(
            server.oauth_client("basic-app").unwrap(),
            Password::new("alice", PASSWORD),
        );
        let first = tokens.token().await.unwrap();
        let refresh_token = first.refresh_token().unwrap().expose_secret().to_owned();
        server.reset_counts();
        let out = fetch_with_secrets(
            &args,
            &[
                ("--refresh-token", &refresh_token, way),
                ("--client-secret", SECRET, secret_way),
            ],
            &dir,
        )
        .await;
        eprintln!("way: {way:?}");
        out.assert_code(0);
        assert_eq!(out.status_lines(), [(200, url.clone())], "{out:#?}");
        assert_eq!(server.token_requests_for("refresh_token"), 1);
        assert_eq!(server.token_requests(), 1);
        let token = one_access_token(&server, 1);
        out.assert_no_secrets(&[&refresh_token, SECRET, &token]);
    }
}

/// `fetch revoke` with the token from its variable, a file or standard input revokes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_to_revoke_from_the_environment_a_file_or_stdin() {
    let server = server().await;
    let dir = TempDir::new("revoke");
    let api = server.resource_url("/api/hello");
    let args = cli(
        "revoke --revocation-url {} --client-id basic-app -v",
        [&server.revocation_url()],
    );
    for (way, secret_way) in [
        (Way::Env, Way::Stdin),
        (Way::File, Way::Env),
        (Way::Stdin, Way::File),
    ] {
        let tokens = TokenSource::new(
            server.oauth_client("basic-app").unwrap(),
            oauth_layer::flow::ClientCredentials::new(),
        );
        let token = tokens
            .token()
            .await
            .unwrap()
            .access_token()
            .expose_secret()
            .to_owned();
        let status = |token: String| {
            let api = api.clone();
            async move {
                reqwest::Client::new()
                    .get(&api)
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        };
        assert_eq!(status(token.clone()).await, 200);
        let out = fetch_with_secrets(
            &args,
            &[
                ("--token", &token, way),
                ("--client-secret", SECRET, secret_way),
            ],
            &dir,
        )
        .await;
        eprintln!("way: {way:?}");
        out.assert_code(0);
        assert_eq!(out.stdout, "revoked\n", "{out:#?}");
        assert_eq!(status(token.clone()).await, 401, "revoked for good");
        out.assert_no_secrets(&[&token, SECRET]);
    }
    assert_eq!(server.revocation_requests(), 3);
}

/// The subject and actor tokens of a token exchange, each from its variable, a file or
/// standard input, reach the token endpoint as they are (the test server has no token
/// exchange: wiremock stands in).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subject_and_actor_tokens_from_the_environment_a_file_or_stdin() {
    const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
    const SUBJECT: &str = "subject-token secret/value+1";
    const ACTOR: &str = "actor-token secret/value+2";
    const EXCHANGED: &str = "exchanged-access-token";
    let mock = token_and_api(
        GRANT,
        serde_json::json!({
            "access_token": EXCHANGED,
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "token_type": "Bearer",
            "expires_in": 600,
        }),
    )
    .await;
    let dir = TempDir::new("token-exchange");
    let url = format!("{}/api/orders", mock.uri());
    let args = argv([
        "--token-url",
        &format!("{}/token", mock.uri()),
        "--client-id",
        "gateway",
        "--flow",
        "token-exchange",
        "-v",
        &url,
    ]);
    let ways = [
        (Way::Env, Way::File, Way::Stdin),
        (Way::File, Way::Stdin, Way::Env),
        (Way::Stdin, Way::Env, Way::File),
    ];
    for (subject, actor, secret) in ways {
        let out = fetch_with_secrets(
            &args,
            &[
                ("--subject-token", SUBJECT, subject),
                ("--actor-token", ACTOR, actor),
                ("--client-secret", "gateway-secret", secret),
            ],
            &dir,
        )
        .await;
        eprintln!("ways: {subject:?} {actor:?} {secret:?}");
        out.assert_code(0);
        assert_eq!(out.status_lines(), [(200, url.clone())], "{out:#?}");
        out.assert_no_secrets(&[SUBJECT, ACTOR, EXCHANGED, "gateway-secret"]);
    }
    let forms = forms_at(&mock, "/token").await;
    assert_eq!(forms.len(), ways.len());
    for form in &forms {
        assert_eq!(form_field(form, "subject_token"), Some(SUBJECT), "{form:?}");
        assert_eq!(form_field(form, "actor_token"), Some(ACTOR), "{form:?}");
    }
}

/// The Redis URL, whose password is a secret, from `OAUTH_REDIS`, a file or standard input:
/// the first run fetches a token into Redis and the next ones load it. A wrong password that
/// way is a configuration error that shows no password. `OAUTH_REDIS` gives way to `--cache`.
#[cfg(feature = "redis-store")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_url_from_the_environment_a_file_or_stdin() {
    let redis = RedisServer::start(REDIS_PASSWORD).await;
    let server = server().await;
    let dir = TempDir::new("redis-url");
    let url = server.resource_url("/api/hello");
    let args = with_client(
        &server,
        "basic-app",
        &["--client-secret", SECRET, "-v", &url],
    );
    let redis_url = redis.url(REDIS_PASSWORD);
    for (run, way) in WAYS.into_iter().enumerate() {
        let out = fetch_with_secrets(&args, &[("--redis", &redis_url, way)], &dir).await;
        eprintln!("way: {way:?}");
        out.assert_code(0);
        assert_eq!(out.status_lines(), [(200, url.clone())], "{out:#?}");
        let event = if run == 0 {
            "token: fetched"
        } else {
            "token: loaded from the store"
        };
        assert_eq!(out.events(event), 1, "{out:#?}");
        out.assert_no_secrets(&[SECRET, REDIS_PASSWORD]);
    }
    assert_eq!(server.token_requests(), 1, "one token, kept in Redis");

    let wrong = "wrong-redis-pass-2";
    for way in WAYS {
        let out = fetch_with_secrets(&args, &[("--redis", &redis.url(wrong), way)], &dir).await;
        out.assert_usage_error("--redis: ");
        out.assert_no_secrets(&[SECRET, wrong, REDIS_PASSWORD]);
    }
    assert_eq!(server.token_requests(), 1);

    // --cache chooses the file store: the variable is not even connected to.
    let cache = TempDir::new("redis-url-cache");
    let cache_dir = cache.0.join("tokens");
    let mut args = args;
    args.extend(["--cache".to_owned(), cache_dir.to_str().unwrap().to_owned()]);
    let unreachable = format!("redis://:{REDIS_PASSWORD}@127.0.0.1:{}", free_port());
    let out = fetch_with_secrets(&args, &[("--redis", &unreachable, Way::Env)], &dir).await;
    out.assert_code(0);
    assert_eq!(out.events("token: fetched"), 1, "{out:#?}");
    out.assert_no_secrets(&[SECRET, REDIS_PASSWORD]);
}

/// A token endpoint (and API) on 127.0.0.1 that holds every `POST` until the test lets it go,
/// so the test can look at the fetch process while it waits with every secret in hand. A
/// `POST` gets a token-exchange-shaped token answer (also fine for the other grants and for
/// revocation, where any 200 will do); anything else `200 ok`.
struct HeldEndpoint {
    url: String,
    posts: tokio::sync::mpsc::UnboundedReceiver<(String, tokio::sync::oneshot::Sender<()>)>,
}

impl HeldEndpoint {
    async fn start() -> Self {
        use tokio::io::AsyncWriteExt;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (send, posts) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let send = send.clone();
                tokio::spawn(async move {
                    let Some(request) = read_request(&mut tcp).await else {
                        return;
                    };
                    let body = if request.starts_with("POST ") {
                        let (release, released) = tokio::sync::oneshot::channel();
                        if send.send((request, release)).is_err() || released.await.is_err() {
                            return;
                        }
                        r#"{"access_token":"held-endpoint-access-token","token_type":"Bearer","expires_in":600,"issued_token_type":"urn:ietf:params:oauth:token-type:access_token"}"#
                    } else {
                        "ok"
                    };
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: \
                         no-store\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tcp.write_all(answer.as_bytes()).await;
                });
            }
        });
        Self { url, posts }
    }

    /// The next `POST` (request line, headers and body), and what lets it go.
    async fn next_post(&mut self) -> (String, tokio::sync::oneshot::Sender<()>) {
        tokio::time::timeout(RUN_LIMIT, self.posts.recv())
            .await
            .expect("fetch sent its request in time")
            .expect("the endpoint runs")
    }
}

/// One HTTP/1.1 request: its head and its `content-length` body.
async fn read_request(tcp: &mut tokio::net::TcpStream) -> Option<String> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tcp.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        bytes.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&bytes);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if bytes.len() >= end + 4 + length {
                return Some(String::from_utf8_lossy(&bytes).into_owned());
            }
        }
    }
}

/// The command line of the running process `pid` as every user of the machine can read it.
fn cmdline(pid: u32) -> Vec<u8> {
    std::fs::read(format!("/proc/{pid}/cmdline")).expect("/proc/PID/cmdline is readable")
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// Every secret option, given by variable, file or standard input, while the fetch process
/// waits on the token (or revocation) endpoint with the secrets already sent: its
/// `/proc/PID/cmdline`, which any local user can read, holds none of them, though the request
/// does. The same read shows a secret given the old way, as a value on the command line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_command_line_of_the_running_process() {
    const CLIENT_SECRET: &str = "held client secret/1";
    const PASSWORD_HELD: &str = "held password/2";
    const REFRESH: &str = "held-refresh-token-3";
    const SUBJECT: &str = "held-subject-token-4";
    const ACTOR: &str = "held-actor-token-5";
    const REVOKED: &str = "held-token-to-revoke-6";
    let mut held = HeldEndpoint::start().await;
    let dir = TempDir::new("cmdline");
    let token_url = format!("{}/token", held.url);
    let api = format!("{}/api/hello", held.url);
    let fetch_args = |flow: &str| {
        cli(
            "--token-url {} --client-id held-app --auth-method post --flow {} -v {}",
            [&token_url, flow, &api],
        )
    };
    let mut password = fetch_args("password");
    password.extend(argv(["--username", "alice"]));
    let revoke = argv([
        "revoke",
        "--revocation-url",
        &format!("{}/revoke", held.url),
        "--client-id",
        "held-app",
        "--auth-method",
        "post",
        "-v",
    ]);
    let runs: Vec<(Vec<String>, Vec<Secret<'_>>)> = vec![
        (
            fetch_args("token-exchange"),
            vec![
                ("--client-secret", CLIENT_SECRET, Way::File),
                ("--subject-token", SUBJECT, Way::Stdin),
                ("--actor-token", ACTOR, Way::Env),
            ],
        ),
        (
            fetch_args("token-exchange"),
            vec![
                ("--client-secret", CLIENT_SECRET, Way::Stdin),
                ("--subject-token", SUBJECT, Way::Env),
                ("--actor-token", ACTOR, Way::File),
            ],
        ),
        (
            password.clone(),
            vec![
                ("--client-secret", CLIENT_SECRET, Way::Env),
                ("--password", PASSWORD_HELD, Way::Stdin),
            ],
        ),
        (
            password,
            vec![
                ("--client-secret", CLIENT_SECRET, Way::Stdin),
                ("--password", PASSWORD_HELD, Way::File),
            ],
        ),
        (
            fetch_args("refresh"),
            vec![
                ("--client-secret", CLIENT_SECRET, Way::File),
                ("--refresh-token", REFRESH, Way::Stdin),
            ],
        ),
        (
            fetch_args("refresh"),
            vec![
                ("--client-secret", CLIENT_SECRET, Way::Stdin),
                ("--refresh-token", REFRESH, Way::Env),
            ],
        ),
        (
            revoke.clone(),
            vec![
                ("--client-secret", CLIENT_SECRET, Way::Env),
                ("--token", REVOKED, Way::File),
            ],
        ),
        (
            revoke,
            vec![
                ("--client-secret", CLIENT_SECRET, Way::File),
                ("--token", REVOKED, Way::Stdin),
            ],
        ),
    ];
    for (args, secrets) in &runs {
        eprintln!("run: {args:?} {secrets:?}");
        let (cmd, input) = secret_command(args, secrets, &dir);
        let mut live = Live::spawn(cmd);
        if let Some(input) = input {
            use tokio::io::AsyncWriteExt;
            let mut stdin = live.child.stdin.take().unwrap();
            stdin.write_all(input.as_bytes()).await.unwrap();
        }
        let (request, release) = held.next_post().await;
        let seen = cmdline(live.child.id().expect("fetch is running"));
        assert!(contains(&seen, "--client-id"), "read the right process");
        let form: Vec<(String, String)> = request
            .split_once("\r\n\r\n")
            .map(|(_, body)| {
                url::form_urlencoded::parse(body.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        for (option, value, _) in secrets {
            assert!(
                form.iter().any(|(_, v)| v == value),
                "{option} reached the endpoint: {form:?}"
            );
            assert!(
                !contains(&seen, value),
                "{option} is on the command line: {}",
                String::from_utf8_lossy(&seen)
            );
        }
        release.send(()).unwrap();
        let out = live.finish().await;
        out.assert_code(0);
        let values: Vec<&str> = secrets.iter().map(|(_, v, _)| *v).collect();
        out.assert_no_secrets(&values);
    }

    // The check sees what it looks for: a value given on the command line is there for all.
    let mut args = fetch_args("password");
    args.extend(cli(
        "--username alice --password {} --client-secret {}",
        [PASSWORD_HELD, CLIENT_SECRET],
    ));
    let live = Live::spawn(command(&args));
    let (_, release) = held.next_post().await;
    let seen = cmdline(live.child.id().expect("fetch is running"));
    assert!(contains(&seen, PASSWORD_HELD) && contains(&seen, CLIENT_SECRET));
    release.send(()).unwrap();
    live.finish().await.assert_code(0);
}

/// The same, for the password of a Redis URL, while the process waits on the token endpoint
/// with the Redis store connected.
#[cfg(feature = "redis-store")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_redis_password_reaches_the_command_line_of_the_running_process() {
    let redis = RedisServer::start(REDIS_PASSWORD).await;
    let mut held = HeldEndpoint::start().await;
    let dir = TempDir::new("cmdline-redis");
    let args = argv([
        "--token-url",
        &format!("{}/token", held.url),
        "--client-id",
        "held-app",
        "--client-secret",
        "not-the-point",
        "-v",
        &format!("{}/api/hello", held.url),
    ]);
    let redis_url = redis.url(REDIS_PASSWORD);
    for way in WAYS {
        // An identity of its own, so that each run asks for a token rather than loading one.
        let mut args = args.clone();
        args.extend(["--identity".to_owned(), format!("{way:?}")]);
        let (cmd, input) = secret_command(&args, &[("--redis", &redis_url, way)], &dir);
        let mut live = Live::spawn(cmd);
        if let Some(input) = input {
            use tokio::io::AsyncWriteExt;
            let mut stdin = live.child.stdin.take().unwrap();
            stdin.write_all(input.as_bytes()).await.unwrap();
        }
        let (_, release) = held.next_post().await;
        let seen = cmdline(live.child.id().expect("fetch is running"));
        assert!(contains(&seen, "--client-id"), "read the right process");
        assert!(
            !contains(&seen, REDIS_PASSWORD),
            "{way:?}: the Redis password is on the command line"
        );
        release.send(()).unwrap();
        let out = live.finish().await;
        out.assert_code(0);
        out.assert_no_secrets(&[REDIS_PASSWORD]);
    }
}

/// `@FILE` that cannot be used (missing, a directory, empty, not UTF-8, too large) and
/// standard input asked for twice, or with `--paste`: usage errors (exit code 2, one line)
/// that send nothing and show neither the file's name (it may be a secret that starts with
/// `@`) nor anything it holds. Two `-` are refused before anything is read: standard input,
/// held open, does not make the run wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_secret_files_and_stdin_are_usage_errors_that_show_nothing() {
    const IN_FILE: &str = "secret-inside-the-file-7";
    let server = server().await;
    let dir = TempDir::new("secret-usage");
    let url = server.resource_url("/api/hello");
    let missing = dir.0.join("missing-file-named-like-a-secret-8");
    let missing = format!("@{}", missing.to_str().unwrap());
    let directory = format!("@{}", dir.0.to_str().unwrap());
    let empty = format!("@{}", dir.file("empty", "\n"));
    let not_utf8 = {
        let path = dir.0.join("not-utf8");
        std::fs::write(&path, [IN_FILE.as_bytes(), &[0xff, 0xfe]].concat()).unwrap();
        format!("@{}", path.to_str().unwrap())
    };
    let too_large = format!("@{}", dir.file("large", &IN_FILE.repeat(4000)));
    let token_url = server.token_url();
    let revocation_url = server.revocation_url();
    #[rustfmt::skip]
    let vars = [
        var("PW", &["--token-url", &token_url, "--client-id", "public-app", "--flow", "password", "--username", "alice", "-v", &url, "--password"]),
        var("ID", &["--token-url", &token_url, "--client-id", "basic-app"]),
        var("URL", &[&url]),
        var("SECRET", &[SECRET]),
        var("REVOCATION_URL", &[&revocation_url]),
        var("MISSING", &[&missing]),
        var("DIRECTORY", &[&directory]),
        var("EMPTY", &[&empty]),
        var("NOT_UTF8", &[&not_utf8]),
        var("TOO_LARGE", &[&too_large]),
    ];
    #[rustfmt::skip]
    let cases = [
        ("a missing file", "$PW $MISSING", "--password @FILE: cannot read the file"),
        ("a directory", "$PW $DIRECTORY", "--password @FILE: cannot read the file"),
        ("an empty file", "$PW $EMPTY", "--password: the file is empty"),
        ("a file that is not UTF-8", "$PW $NOT_UTF8", "--password: the file is not UTF-8"),
        ("a file too large", "$PW $TOO_LARGE", "--password: the file holds more than"),
        ("a missing file for --redis", "$ID --client-secret $SECRET --redis $MISSING $URL", "--redis @FILE: cannot read the file"),
        (
            "a missing file for --token",
            "revoke --revocation-url $REVOCATION_URL --client-id basic-app --token $MISSING",
            "--token @FILE: cannot read the file",
        ),
        ("an empty standard input", "$ID --client-secret - $URL", "--client-secret: standard input is empty"),
    ];
    let secrets = [IN_FILE, "missing-file-named-like-a-secret-8", PASSWORD];
    assert_usage_errors(&cases, &vars, &secrets).await;

    // Standard input for two options, or for one and --paste: refused at once, standard
    // input (held open here) unread.
    let twice = [
        (
            "two options",
            with_client(
                &server,
                "public-app",
                &cli(
                    "--flow password --username alice --password - --client-secret=- {}",
                    [&url],
                ),
            ),
            "--password - and --client-secret -: only one option may read standard input",
        ),
        (
            "an option and --paste",
            with_client(
                &server,
                "basic-app",
                &cli(
                    "--flow auth-code --auth-url {} --paste --client-secret - {}",
                    [&server.authorization_url(), &url],
                ),
            ),
            "--client-secret - and --paste both read standard input",
        ),
    ];
    for (name, args, needle) in twice {
        eprintln!("case: {name}");
        let mut cmd = command(&args);
        cmd.stdin(Stdio::piped());
        let mut live = Live::spawn(cmd);
        let stdin = live.child.stdin.take().unwrap();
        let out = live.finish().await;
        drop(stdin);
        out.assert_usage_error(needle);
    }
    assert_eq!(server.token_requests(), 0, "usage errors send nothing");
    assert_eq!(server.revocation_requests(), 0);
    assert!(server.resource_requests().is_empty());
}

/// A secret option given twice: the last one wins, whichever way each came; and the option
/// on the command line wins over its variable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_secret_given_wins() {
    let server = server().await;
    let dir = TempDir::new("last-wins");
    let url = server.resource_url("/api/me");
    let wrong = format!("@{}", dir.file("wrong", "wrong password\n"));
    let right = format!("@{}", dir.file("right", &format!("{PASSWORD}\n")));
    let base = ["--flow", "password", "--username", "alice", "-v"];
    for (first, last) in [
        (wrong.as_str(), PASSWORD),
        ("wrong password", right.as_str()),
    ] {
        let args = with_client(
            &server,
            "public-app",
            &[&base[..], &["--password", first, "--password", last, &url]].concat(),
        );
        let out = fetch(&args).await;
        out.assert_code(0);
        out.assert_no_secrets(&[PASSWORD, "wrong password"]);
    }
    let args = with_client(
        &server,
        "public-app",
        &[&base[..], &["--password", &right, &url]].concat(),
    );
    let mut cmd = command(&args);
    cmd.env("OAUTH_PASSWORD", "wrong password");
    let out = run(cmd).await;
    out.assert_code(0);
    out.assert_no_secrets(&[PASSWORD, "wrong password"]);
    assert_eq!(server.token_requests_for("password"), 3);
}

// --- The tool itself: version, grouped help, completions, headers, bodies, JSON output --------

/// `--version` prints the crate's version on stdout, and exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_prints_the_crates_version() {
    for flag in ["--version", "-V"] {
        let out = fetch(&argv([flag])).await;
        out.assert_code(0);
        assert_eq!(
            out.stdout,
            format!("oauth-fetch {}\n", env!("CARGO_PKG_VERSION")),
            "{out:#?}"
        );
        assert_eq!(out.stderr, "");
    }
}

/// `--help` groups the options under a heading for what they configure, each option in its
/// group; `-h` is the short form of the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_groups_the_options_by_what_they_configure() {
    let groups: [(&str, &[&str]); 9] = [
        (
            "Client:",
            &[
                "--token-url",
                "--client-id",
                "--client-secret",
                "--auth-method",
                "--issuer",
                "--provider",
                "--provider-arg",
            ],
        ),
        (
            "Grant:",
            &[
                "--flow",
                "--scope",
                "--resource",
                "--audience",
                "--username",
                "--password",
                "--refresh-token",
            ],
        ),
        (
            "Sign-in (--flow auth-code, --flow device):",
            &["--auth-url", "--redirect-uri", "--paste", "--device-url"],
        ),
        (
            "Keys (--flow jwt-bearer, --auth-method private-key-jwt):",
            &["--key", "--key-alg", "--key-id", "--subject"],
        ),
        (
            "Token exchange (--flow token-exchange):",
            &[
                "--subject-token",
                "--subject-token-type",
                "--actor-token",
                "--actor-token-type",
                "--requested-token-type",
            ],
        ),
        (
            "High security:",
            &[
                "--profile",
                "--par",
                "--par-url",
                "--jar",
                "--authorization-details",
                "--client-cert",
                "--client-key",
                "--ca-cert",
            ],
        ),
        ("Token cache:", &["--cache", "--redis", "--identity"]),
        (
            "Request:",
            &[
                "-X",
                "--header",
                "--data",
                "--json",
                "--repeat",
                "--interval",
            ],
        ),
        ("Output:", &["--output", "--verbose"]),
    ];
    for flag in ["--help", "-h"] {
        let out = fetch(&argv([flag])).await;
        out.assert_code(0);
        let help = &out.stdout;
        let heading_at = |heading: &str| {
            help.lines()
                .position(|line| line == heading)
                .unwrap_or_else(|| panic!("{flag} has the heading {heading:?}: {help}"))
        };
        let starts: Vec<usize> = groups.iter().map(|(h, _)| heading_at(h)).collect();
        let lines: Vec<&str> = help.lines().collect();
        for (i, (heading, options)) in groups.iter().enumerate() {
            let end = starts
                .iter()
                .copied()
                .filter(|s| *s > starts[i])
                .min()
                .unwrap_or(lines.len());
            let section = lines[starts[i]..end].join("\n");
            for option in *options {
                assert!(
                    section.contains(&format!("{option} "))
                        || section.contains(&format!("{option},"))
                        || section.contains(&format!("{option}\n"))
                        || section.ends_with(option),
                    "{flag}: {option} is under {heading:?}:\n{section}"
                );
            }
        }
    }
    // revoke has its own help, with its own group.
    let out = fetch(&argv(["revoke", "--help"])).await;
    out.assert_code(0);
    for text in [
        "Revocation:",
        "--revocation-url",
        "--token ",
        "--token-type-hint",
        "OAUTH_TOKEN",
        "--client-cert",
        "--ca-cert",
    ] {
        assert!(
            out.stdout.contains(text),
            "revoke --help mentions {text}: {out:#?}"
        );
    }
}

/// `completions SHELL` prints a script for that shell that completes the options; bash's is
/// also checked by bash itself where bash is installed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_print_a_script_for_bash_zsh_and_fish() {
    let shells = [
        ("bash", "complete -F _oauth__fetch"),
        ("zsh", "#compdef oauth-fetch"),
        ("fish", "complete -c oauth-fetch"),
    ];
    for (shell, marker) in shells {
        let out = fetch(&argv(["completions", shell])).await;
        out.assert_code(0);
        assert_eq!(out.stderr, "");
        for text in [
            marker,
            "--client-secret",
            "--flow",
            "client-credentials",
            "github",
            "revoke",
        ] {
            assert!(
                out.stdout.contains(text),
                "{shell}: the script has {text:?}"
            );
        }
        if shell == "bash" && on_path("bash") {
            let mut check = std::process::Command::new("bash")
                .arg("-n")
                .stdin(Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            check
                .stdin
                .take()
                .unwrap()
                .write_all(out.stdout.as_bytes())
                .unwrap();
            assert!(
                check.wait().unwrap().success(),
                "bash -n accepts the script"
            );
        }
    }
}

/// `-H 'Name: value'`, repeatable, or `-H @FILE` (a header a line, for a key that stays off the
/// command line), reaches the resource next to the token, which stays the one `Authorization`
/// header. The key is never printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_reach_the_resource_next_to_the_token() {
    let server = server().await;
    let url = server.resource_url("/api/hello");
    let dir = TempDir::new("headers");
    let file = format!(
        "@{}",
        dir.file("headers", "X-Api-Key: key-secret-9\n\nX-Trace: three\n")
    );
    let out = fetch(&with_client(
        &server,
        "basic-app",
        &cli(
            "--client-secret {} -H {} --header=X-Trace:two -H {} -H {} -v {}",
            [SECRET, "X-Trace: abc 1", "Accept: text/plain", &file, &url],
        ),
    ))
    .await;
    out.assert_code(0);
    let requests = server.resource_requests();
    assert_eq!(requests.len(), 1);
    let values = |name: &str| -> Vec<&str> {
        requests[0]
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    };
    assert_eq!(values("x-trace"), ["abc 1", "two", "three"]);
    assert_eq!(values("x-api-key"), ["key-secret-9"]);
    assert_eq!(values("accept"), ["text/plain"]);
    assert_eq!(values("authorization").len(), 1);
    assert!(requests[0].bearer_token().is_some());
    out.assert_no_secrets(&[SECRET, "key-secret-9"]);
}

/// `-d` sends a form unless `--json` says JSON (which also asks for JSON back instead of
/// reqwest's `*/*`) or a `Content-Type` header says something else, as the resource sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_is_sent_with_its_content_type() {
    let server = server().await;
    let url = server.resource_url("/api/items");
    let cases: [(&[&str], &str, &str, Option<&str>); 4] = [
        (
            &["-d", "name=widget&n=1"],
            "name=widget&n=1",
            "application/x-www-form-urlencoded",
            Some("*/*"),
        ),
        (
            &["-d", r#"{"name":"widget"}"#, "--json"],
            r#"{"name":"widget"}"#,
            "application/json",
            Some("application/json"),
        ),
        (
            &["--json", "--data", "[1,2]", "-H", "Accept: text/csv"],
            "[1,2]",
            "application/json",
            Some("text/csv"),
        ),
        (
            &["-d", "plain words", "-H", "Content-Type: text/plain"],
            "plain words",
            "text/plain",
            Some("*/*"),
        ),
    ];
    for (rest, body, content_type, accept) in cases {
        server.reset_counts();
        let mut args = vec!["--client-secret", SECRET];
        args.extend(rest);
        args.push(&url);
        let out = fetch(&with_client(&server, "basic-app", &args)).await;
        out.assert_code(0);
        let requests = server.resource_requests();
        assert_eq!(requests.len(), 1, "{rest:?}");
        let header = |name: &str| {
            let values: Vec<&str> = requests[0]
                .headers
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            assert!(values.len() <= 1, "one {name} header: {values:?}");
            values.first().map(|v| (*v).to_owned())
        };
        assert_eq!(requests[0].method, http::Method::POST, "{rest:?}");
        assert_eq!(requests[0].body, body.as_bytes(), "{rest:?}");
        assert_eq!(
            header("content-type").as_deref(),
            Some(content_type),
            "{rest:?}"
        );
        assert_eq!(header("accept").as_deref(), accept, "{rest:?}");
    }
}

/// `--output json`: one JSON object a line, for each URL, with its status, headers, body and
/// the token's metadata, and never the token, the secret or anything shaped like a token. A
/// URL that got no response has its line too, with the error. `revoke` answers in JSON too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_json_describes_each_response_without_secrets() {
    let server = server().await;
    let hello = server.resource_url("/api/hello");
    let scoped = server.resource_url("/api/scoped");
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/api/hello", listener.local_addr().unwrap())
    };
    let args = with_client(
        &server,
        "basic-app",
        &cli(
            "--client-secret {} --scope api:read --output json {} {} {}",
            [SECRET, &hello, &scoped, &closed],
        ),
    );
    let out = fetch(&args).await;
    out.assert_code(1);
    let lines: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is a JSON object"))
        .collect();
    assert_eq!(lines.len(), 3, "{out:#?}");
    // `/api/scoped` answers 403 insufficient_scope for the narrow token; the tool gets a token
    // with the scope it names and sends the request once more.
    let used = access_tokens(&server);
    assert_eq!(used.len(), 3, "every request carried a token");
    assert_eq!(used[0], used[1], "the narrow token, reused");
    assert_ne!(used[1], used[2], "the wider token for the retry");
    let token = used[0].clone();
    let wider = used[2].clone();

    let ok = &lines[0];
    assert_eq!(ok["url"], hello.as_str());
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["headers"]["content-type"][0], "application/json", "{ok}");
    let body: serde_json::Value = serde_json::from_str(ok["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["client_id"], "basic-app");
    let meta = &ok["token"];
    assert_eq!(meta["sent"], true, "{meta}");
    assert_eq!(meta["retried_after_401"], false, "{meta}");
    assert!(
        meta["token_type"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case("bearer")
    );
    assert!(meta["expires_in"].as_u64().unwrap() > 0, "{meta}");
    assert!(
        meta["expires_at"].as_u64().unwrap() > 1_700_000_000,
        "{meta}"
    );
    assert_eq!(meta["scope"], "api:read", "{meta}");
    assert_eq!(meta["refresh_token"], false, "{meta}");
    let keys: Vec<&String> = meta.as_object().unwrap().keys().collect();
    assert!(
        keys.iter().all(|k| !k.contains("access") && *k != "token"),
        "no token in the metadata: {keys:?}"
    );

    assert_eq!(lines[1]["url"], scoped.as_str());
    assert_eq!(lines[1]["status"], 200);
    assert_eq!(lines[2]["url"], closed.as_str());
    assert_eq!(lines[2]["status"], serde_json::Value::Null);
    assert!(
        lines[2]["error"].as_str().unwrap().contains("onnect"),
        "{}",
        lines[2]
    );
    out.assert_no_secrets(&[SECRET, &token, &wider]);

    let out = fetch(&cli("revoke --revocation-url {} --client-id basic-app --client-secret {} --token {} --output json", [&server.revocation_url(), SECRET, &token]))
    .await;
    out.assert_code(0);
    assert_eq!(out.stdout, "{\"revoked\":true}\n");
    out.assert_no_secrets(&[SECRET, &token]);
}

/// A sign-in the person cancels in the browser (the server redirects back with
/// `error=access_denied`) is said in their words, with what to do next, not in the protocol's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_sign_in_says_so_and_what_to_do() {
    let server = server().await;
    server.deny_authorization(true);
    let browser = FakeBrowser::new();
    let url = server.resource_url("/api/hello");
    let args = with_client(
        &server,
        "public-app",
        &cli(
            "--flow auth-code --auth-url {} {}",
            [&server.authorization_url(), &url],
        ),
    );
    let out = run(browser.command(&args)).await;
    out.assert_code(1);
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with(&format!("oauth-fetch: {url}: cannot get a token: ")))
        .unwrap_or_else(|| panic!("a line for the URL: {out:#?}"));
    assert!(
        line.contains("the sign-in was cancelled in the browser"),
        "{line}"
    );
    assert!(line.contains("Run the command again"), "{line}");
    assert!(!line.contains("answered 302"), "{line}");
    assert_eq!(server.token_requests(), 0);
    assert!(server.resource_requests().is_empty());
}

/// A device sign-in declined on the verification page says so, and what to do next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_device_sign_in_says_so_and_what_to_do() {
    let (server, url, live, user_code) = device_sign_in("").await;
    assert!(server.deny_device(&user_code));
    let out = live.finish().await;
    out.assert_code(1);
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with(&format!("oauth-fetch: {url}: cannot get a token: ")))
        .unwrap_or_else(|| panic!("a line for the URL: {out:#?}"));
    assert!(line.contains("the sign-in was declined"), "{line}");
    assert!(line.contains("Run the command again"), "{line}");
    assert!(server.resource_requests().is_empty());
}

// --- The resource-first mode: no --token-url, --issuer or --provider --------------------------

/// A protected resource at `{mock}/mcp`, played by wiremock: it publishes RFC 9728 metadata
/// naming `server` as its authorization server, answers a request without a token the server
/// knows with `401` and a challenge pointing at that metadata, and one with such a token with
/// `200 tools`.
async fn mcp_resource(server: &std::sync::Arc<TestServer>) -> wiremock::MockServer {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    let mock = MockServer::start().await;
    let metadata_url = format!("{}/.well-known/oauth-protected-resource/mcp", mock.uri());
    Mock::given(method("GET"))
        .and(path("/.well-known/oauth-protected-resource/mcp"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "resource": format!("{}/mcp", mock.uri()),
            "authorization_servers": [server.url()],
            "scopes_supported": ["mcp:tools"],
        })))
        .mount(&mock)
        .await;
    let checker = server.clone();
    Mock::given(path("/mcp"))
        .respond_with(move |request: &Request| {
            // A DPoP-bound token must come as `DPoP` (its proof is the test server's to
            // check, at its own resource); a bearer token as `Bearer`.
            let token = request
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .map(|t| (t, false))
                        .or_else(|| v.strip_prefix("DPoP ").map(|t| (t, true)))
                })
                .filter(|(t, dpop)| {
                    checker
                        .access_token_info(t)
                        .is_some_and(|info| info.jkt.is_some() == *dpop)
                })
                .map(|(t, _)| t);
            match token.and_then(|t| checker.access_token_info(t)) {
                Some(_) => ResponseTemplate::new(200).set_body_string("tools"),
                None => ResponseTemplate::new(401).insert_header(
                    "www-authenticate",
                    format!(r#"Bearer resource_metadata="{metadata_url}""#),
                ),
            }
        })
        .mount(&mock)
        .await;
    mock
}

/// The paths the resource was asked for, in order, and the bearer tokens it was sent.
async fn mcp_requests(mock: &wiremock::MockServer) -> (Vec<String>, Vec<String>) {
    let received = mock.received_requests().await.unwrap();
    let paths = received.iter().map(|r| r.url.path().to_owned()).collect();
    let tokens = received
        .iter()
        .filter_map(|r| r.headers.get("authorization")?.to_str().ok())
        .filter_map(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("DPoP "))
                .map(str::to_owned)
        })
        .collect();
    (paths, tokens)
}

/// Two resources on two origins, both served by one authorization server: each is discovered
/// on its own, gets its own token, and never sees the other's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_first_each_resource_gets_its_own_token() {
    let server = std::sync::Arc::new(server().await);
    let (one, two) = (mcp_resource(&server).await, mcp_resource(&server).await);
    let (url_one, url_two) = (format!("{}/mcp", one.uri()), format!("{}/mcp", two.uri()));
    let out = fetch(&cli(
        "--flow client-credentials --client-id basic-app --client-secret {} -v {} {}",
        [SECRET, &url_one, &url_two],
    ))
    .await;
    out.assert_code(0);
    assert_eq!(
        out.status_lines(),
        [(200, url_one.clone()), (200, url_two.clone())],
        "{out:#?}"
    );
    assert_eq!(server.token_requests(), 2, "one token per resource");
    let (_, tokens_one) = mcp_requests(&one).await;
    let (_, tokens_two) = mcp_requests(&two).await;
    assert_eq!(tokens_one.len(), 1);
    assert_eq!(tokens_two.len(), 1);
    assert_ne!(tokens_one[0], tokens_two[0], "a token per resource");
    assert_eq!(
        out.events(&format!("resource: discovered {}", server.url())),
        2,
        "{out:#?}"
    );
    for url in [&url_one, &url_two] {
        assert!(out.stderr.contains(&format!("(for {url})")), "{out:#?}");
    }
    // Each resource's first token is "fetched", not a renewal of the other's.
    assert_eq!(out.events("token: fetched"), 2, "{out:#?}");
    assert_eq!(out.events("token: renewed"), 0, "{out:#?}");
    out.assert_no_secrets(&[SECRET, &tokens_one[0], &tokens_two[0]]);
}

/// `--dpop` in the resource-first mode: the token is bound to the tool's key and sent as a
/// `DPoP` token with a proof.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_first_dpop_binds_the_token() {
    let server = std::sync::Arc::new(builder().require_dpop(true).start().await.unwrap());
    let mock = mcp_resource(&server).await;
    let mcp = format!("{}/mcp", mock.uri());
    let out = fetch(&cli(
        "--flow client-credentials --client-id basic-app --client-secret {} --dpop -v {}",
        [SECRET, &mcp],
    ))
    .await;
    out.assert_code(0);
    assert_eq!(out.status_lines(), [(200, mcp.clone())], "{out:#?}");
    let received = mock.received_requests().await.unwrap();
    let last = received.last().unwrap();
    assert!(
        last.headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("DPoP ")),
        "{received:?}"
    );
    assert!(last.headers.contains_key("dpop"), "a proof with the token");
    let (_, tokens) = mcp_requests(&mock).await;
    let info = server.access_token_info(&tokens[0]).unwrap();
    assert!(info.jkt.is_some(), "bound to the tool's key");
    let log = server.token_request_log();
    assert!(
        log.iter().all(|r| r.dpop.is_some()),
        "every token request had a proof"
    );
    out.assert_no_secrets(&[SECRET, &tokens[0]]);
}

/// `oauth-fetch URL` with nothing but a pre-registered machine client: the resource's `401`
/// names its metadata, the metadata the authorization server, whose discovery document the
/// token endpoint; the first request is sent again with the token, and every later one (the
/// same resource behind another query too) carries it from the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_first_a_machine_client_finds_its_authorization_server_from_the_resource() {
    let server = std::sync::Arc::new(server().await);
    let mock = mcp_resource(&server).await;
    let mcp = format!("{}/mcp", mock.uri());
    let page = format!("{mcp}?page=2");
    let out = fetch(&cli(
        "--flow client-credentials --client-id basic-app --client-secret {} --repeat 2 -v {} {}",
        [SECRET, &mcp, &page],
    ))
    .await;
    out.assert_code(0);
    let expected: Vec<(u16, String)> = (0..2)
        .flat_map(|_| [(200, mcp.clone()), (200, page.clone())])
        .collect();
    assert_eq!(out.status_lines(), expected, "{out:#?}");
    assert!(out.stdout.contains("tools"), "{out:#?}");

    // One discovery, one token for the one resource.
    assert_eq!(server.token_requests(), 1);
    assert_eq!(server.token_requests_for("client_credentials"), 1);
    let (paths, tokens) = mcp_requests(&mock).await;
    assert_eq!(
        paths,
        [
            "/mcp",
            "/.well-known/oauth-protected-resource/mcp",
            "/mcp",
            "/mcp",
            "/mcp",
            "/mcp"
        ],
        "{out:#?}"
    );
    assert_eq!(
        tokens.len(),
        4,
        "every request but the first carried the token"
    );
    assert!(tokens.iter().all(|t| *t == tokens[0]), "one token for all");
    let info = server.access_token_info(&tokens[0]).unwrap();
    assert_eq!(info.client_id, "basic-app");
    assert_eq!(
        info.scope.as_deref(),
        Some("mcp:tools"),
        "the metadata's scopes"
    );

    // -v tells the story, in order.
    let origin = Url::parse(&mcp).unwrap().origin().ascii_serialization();
    let story = [
        format!("token: not sent to {origin} (none for this resource yet"),
        format!("resource: discovered {} (for {mcp})", server.url()),
        "token: fetched (expires in".to_owned(),
        "token: retried after 401".to_owned(),
        "token: reused".to_owned(),
    ];
    let mut at = 0;
    for step in &story {
        let found = out
            .stderr
            .lines()
            .skip(at)
            .position(|l| l.starts_with(step.as_str()));
        at += found.unwrap_or_else(|| panic!("{step:?} after line {at}: {out:#?}")) + 1;
    }
    assert_eq!(out.events("token: fetched"), 1, "{out:#?}");
    assert_eq!(out.events("token: retried after 401"), 1, "{out:#?}");
    assert_eq!(out.events("token: reused"), 3, "{out:#?}");
    out.assert_no_secrets(&[SECRET, &tokens[0]]);
}

/// `--output json` in the resource-first mode: the first request's line says the token was
/// sent after a `401`, with the token's metadata (never the token).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_first_json_output_shows_the_retry_and_the_tokens_metadata() {
    let server = std::sync::Arc::new(server().await);
    let mock = mcp_resource(&server).await;
    let mcp = format!("{}/mcp", mock.uri());
    let out = fetch(&cli(
        "--flow client-credentials --client-id basic-app --client-secret {} --scope mcp:admin --output json {}",
        [SECRET, &mcp],
    ))
    .await;
    out.assert_code(0);
    let line: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(line["status"], 200, "{out:#?}");
    assert_eq!(line["body"], "tools");
    assert_eq!(line["token"]["sent"], true);
    assert_eq!(line["token"]["retried_after_401"], true);
    assert_eq!(line["token"]["token_type"], "Bearer");
    assert_eq!(
        line["token"]["scope"], "mcp:admin",
        "--scope wins over the metadata's"
    );
    let (_, tokens) = mcp_requests(&mock).await;
    out.assert_no_secrets(&[SECRET, &tokens[0]]);
}

/// The default flow of the resource-first mode is a person's sign-in: the browser goes to
/// the authorization server the resource named, with the pre-registered public client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_first_a_person_signs_in_at_the_server_the_resource_names() {
    let server = std::sync::Arc::new(server().await);
    let mock = mcp_resource(&server).await;
    let mcp = format!("{}/mcp", mock.uri());
    let browser = FakeBrowser::new();
    let out = run(browser.command(&cli("--client-id public-app -v {}", [&mcp]))).await;
    out.assert_code(0);
    assert_eq!(out.status_lines(), [(200, mcp.clone())], "{out:#?}");
    assert_eq!(server.authorization_requests(), 1);
    assert_eq!(server.token_requests_for("authorization_code"), 1);
    let shown = shown_authorization_url(&out, &server, "public-app");
    assert_eq!(query_param(&shown, "scope"), "mcp:tools");
    assert_eq!(
        query_param(&shown, "resource"),
        mcp,
        "RFC 8707 on the authorization request"
    );
    let (_, tokens) = mcp_requests(&mock).await;
    assert_eq!(tokens.len(), 1);
    assert_eq!(
        server.access_token_info(&tokens[0]).unwrap().client_id,
        "public-app"
    );
    assert_eq!(out.events("token: fetched"), 1, "{out:#?}");
    assert_eq!(out.events("token: retried after 401"), 1, "{out:#?}");
    let visited = browser.visited().await;
    out.assert_no_secrets_besides(
        &[&tokens[0], &query_param(&visited, "code")],
        &[shown.as_str()],
    );
}

/// `--cache` in the resource-first mode: the second run finds the resource again (a new
/// process), but takes the token the first one left instead of asking the server.
#[cfg(feature = "file-store")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_first_a_second_run_takes_the_token_from_the_cache() {
    let server = std::sync::Arc::new(server().await);
    let mock = mcp_resource(&server).await;
    let mcp = format!("{}/mcp", mock.uri());
    let tmp = TempDir::new("resource-cache");
    let cache = tmp.0.join("cache");
    let args = cli(
        "--flow client-credentials --client-id basic-app --client-secret {} --cache {} -v {}",
        [SECRET, cache.to_str().unwrap(), &mcp],
    );
    let first = fetch(&args).await;
    first.assert_code(0);
    assert_eq!(first.events("token: fetched"), 1, "{first:#?}");
    let (seen, _) = mcp_requests(&mock).await;
    let discovered = server.discovery_requests();
    let second = fetch(&args).await;
    second.assert_code(0);
    assert_eq!(second.status_lines(), [(200, mcp.clone())], "{second:#?}");
    // Another process, the same store: straight to the resource with the stored token, the
    // discovery kept in the store too (no probe, no metadata fetched again).
    let (paths, _) = mcp_requests(&mock).await;
    assert_eq!(&paths[seen.len()..], ["/mcp"], "{paths:?}");
    assert_eq!(server.discovery_requests(), discovered);
    assert_eq!(
        second.events("token: loaded from the store"),
        1,
        "{second:#?}"
    );
    assert_eq!(second.events("token: fetched"), 0, "{second:#?}");
    assert_eq!(server.token_requests(), 1, "one token for both runs");
    let (_, tokens) = mcp_requests(&mock).await;
    second.assert_no_secrets(&[SECRET, &tokens[0]]);
}

/// Without `--client-id`, at a server that takes no registration: a configuration error that
/// says what to give; nothing reaches the token endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_first_without_a_client_id_at_a_server_without_registration() {
    let server = std::sync::Arc::new(server().await);
    let mock = mcp_resource(&server).await;
    let mcp = format!("{}/mcp", mock.uri());
    let out = fetch(&cli("--flow client-credentials {}", [&mcp])).await;
    out.assert_usage_error("Give --client-id");
    assert!(out.stderr.contains("registration"), "{out:#?}");
    assert_eq!(server.token_requests(), 0);
}

/// The options that configure an authorization server by hand, flows other than a person's
/// sign-in and client credentials, and half an identity are usage errors in the
/// resource-first mode, each saying why; nothing is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_first_usage_errors() {
    let server = std::sync::Arc::new(server().await);
    let mock = mcp_resource(&server).await;
    let mcp = format!("{}/mcp", mock.uri());
    #[rustfmt::skip]
    let vars = [
        var("URL", &[&mcp]),
        var("CC", &["--flow", "client-credentials", "--client-id", "basic-app", "--client-secret", SECRET]),
    ];
    let needs = "--token-url is required (or --issuer to discover it, or --provider) for";
    #[rustfmt::skip]
    let cases = [
        ("the password flow", "--flow password --username alice --password pw-secret-1 $URL", needs),
        ("the device flow", "--client-id public-app --flow device $URL", "for --flow auth-code or --flow client-credentials only"),
        ("the refresh flow", "--flow refresh --refresh-token rt-secret-1 $URL", needs),
        ("token exchange", "--flow token-exchange --subject-token st-secret-1 $URL", needs),
        ("--auth-url", "--auth-url https://idp.example/authorize $URL", "--auth-url needs --token-url, --issuer or --provider: without them the endpoints come from"),
        ("--device-url", "--device-url https://idp.example/device $URL", "--device-url needs --token-url"),
        ("--auth-method", "$CC --auth-method post $URL", "--auth-method needs --token-url, --issuer or --provider: without them the client authentication"),
        ("--audience", "$CC --audience api $URL", "--audience needs --token-url, --issuer or --provider: without them the token is bound to the URL's own resource"),
        ("--resource", "$CC --resource https://other.example/ $URL", "--resource needs --token-url"),
        ("--identity", "$CC --identity bob --cache /nonexistent/cache-9 $URL", "--identity needs --token-url"),
        ("a secret without a client id", "--client-secret cs-secret-1 $URL", "--client-secret (or OAUTH_CLIENT_SECRET) needs --client-id"),
        ("client credentials without a secret", "--flow client-credentials --client-id basic-app $URL", "--flow client-credentials with --client-id needs --client-secret"),
        ("--paste with client credentials", "$CC --paste $URL", "--paste applies to --flow auth-code only"),
        ("no URL that may get a token", "--client-id public-app http://remote.example/mcp", "no URL may receive a token"),
    ];
    assert_usage_errors(
        &cases,
        &vars,
        &[
            SECRET,
            "pw-secret-1",
            "rt-secret-1",
            "st-secret-1",
            "cs-secret-1",
        ],
    )
    .await;
    assert_eq!(server.token_requests(), 0, "usage errors send nothing");
    assert_eq!(server.discovery_requests(), 0);
    assert!(mock.received_requests().await.unwrap().is_empty());
}

/// The access token the [`registering_server`] issues.
const REGISTERED_TOKEN: &str = "at-registered-client-0123456789abcdefghijkl";
/// The client secret and registration access token it registers machines with.
const REGISTERED_SECRET: &str = "cs-registered-0123456789abcdefghijklmnop";
const REGISTRATION_TOKEN: &str = "rat-registered-0123456789abcdefghijklmno";

/// An authorization server that takes dynamic registration (RFC 7591) and the protected
/// resource `{mock}/mcp` it serves, both played by one wiremock server (a loopback issuer, so
/// its plain-http endpoints are taken). A machine is registered as `dyn-machine` with
/// [`REGISTERED_SECRET`], a person's app as the public client `dyn-person`; `/authorize` sends
/// the browser straight back with a code, and `/token` gives [`REGISTERED_TOKEN`] to a
/// registered client only.
async fn registering_server() -> wiremock::MockServer {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    let mock = MockServer::start().await;
    let issuer = mock.uri();
    let mcp = format!("{issuer}/mcp");
    Mock::given(method("GET"))
        .and(path("/.well-known/oauth-protected-resource/mcp"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "resource": mcp,
            "authorization_servers": [issuer],
            "scopes_supported": ["mcp:tools"],
        })))
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/.well-known/oauth-authorization-server"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "registration_endpoint": format!("{issuer}/register"),
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": true,
        })))
        .mount(&mock)
        .await;
    Mock::given(method("POST"))
        .and(path("/register"))
        .respond_with(move |request: &Request| {
            let asked: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
            let machine = asked["grant_types"]
                .as_array()
                .is_some_and(|g| g.iter().any(|g| g == "client_credentials"));
            let mut answer = asked.clone();
            if machine {
                answer["client_id"] = "dyn-machine".into();
                answer["client_secret"] = REGISTERED_SECRET.into();
                answer["token_endpoint_auth_method"] = "client_secret_basic".into();
            } else {
                answer["client_id"] = "dyn-person".into();
                answer["token_endpoint_auth_method"] = "none".into();
            }
            answer["registration_access_token"] = REGISTRATION_TOKEN.into();
            ResponseTemplate::new(201).set_body_json(answer)
        })
        .mount(&mock)
        .await;
    let authorize_issuer = issuer.clone();
    Mock::given(method("GET"))
        .and(path("/authorize"))
        .respond_with(move |request: &Request| {
            let param = |name: &str| {
                request
                    .url
                    .query_pairs()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            if param("client_id") != "dyn-person" {
                return ResponseTemplate::new(400);
            }
            let mut back = Url::parse(&param("redirect_uri")).unwrap();
            back.query_pairs_mut()
                .append_pair("code", "code-for-dyn-person")
                .append_pair("state", &param("state"))
                .append_pair("iss", &authorize_issuer);
            ResponseTemplate::new(302).insert_header("location", back.as_str())
        })
        .mount(&mock)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(|request: &Request| {
            let form: Vec<(String, String)> = url::form_urlencoded::parse(&request.body)
                .into_owned()
                .collect();
            let param = |name: &str| {
                form.iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.as_str())
            };
            let basic = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("dyn-machine:{REGISTERED_SECRET}"))
            );
            let machine = request
                .headers
                .get("authorization")
                .is_some_and(|v| v.as_bytes() == basic.as_bytes())
                && param("grant_type") == Some("client_credentials");
            let person = param("grant_type") == Some("authorization_code")
                && param("client_id") == Some("dyn-person")
                && param("code") == Some("code-for-dyn-person");
            if !(machine || person) {
                return ResponseTemplate::new(401)
                    .set_body_json(serde_json::json!({"error": "invalid_client"}));
            }
            ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "access_token": REGISTERED_TOKEN,
                "token_type": "Bearer",
                "expires_in": 3600,
            }))
        })
        .mount(&mock)
        .await;
    let metadata_url = format!("{issuer}/.well-known/oauth-protected-resource/mcp");
    Mock::given(path("/mcp"))
        .respond_with(move |request: &Request| {
            let bearer = format!("Bearer {REGISTERED_TOKEN}");
            match request.headers.get("authorization") {
                Some(v) if v.as_bytes() == bearer.as_bytes() => {
                    ResponseTemplate::new(200).set_body_string("tools")
                }
                _ => ResponseTemplate::new(401).insert_header(
                    "www-authenticate",
                    format!(r#"Bearer resource_metadata="{metadata_url}""#),
                ),
            }
        })
        .mount(&mock)
        .await;
    mock
}

/// The requests `mock` received at `path`.
async fn received_at(mock: &wiremock::MockServer, path: &str) -> Vec<wiremock::Request> {
    mock.received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == path)
        .collect()
}

/// `oauth-fetch --flow client-credentials URL` with no client id: the tool registers a machine
/// client at the server the resource names (RFC 7591), gets a token bound to the resource
/// with it, and, with `--cache`, a second run registers nothing and asks for no token again.
/// The registered secret and registration access token are never shown.
#[cfg(feature = "file-store")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_first_a_machine_registers_itself_when_no_client_id_is_given() {
    let mock = registering_server().await;
    let mcp = format!("{}/mcp", mock.uri());
    let tmp = TempDir::new("resource-register");
    let cache = tmp.0.join("cache");
    let args = cli(
        "--flow client-credentials --cache {} -v {}",
        [cache.to_str().unwrap(), &mcp],
    );
    let first = fetch(&args).await;
    first.assert_code(0);
    assert_eq!(first.status_lines(), [(200, mcp.clone())], "{first:#?}");
    assert_eq!(first.events("token: fetched"), 1, "{first:#?}");

    let registrations = received_at(&mock, "/register").await;
    assert_eq!(registrations.len(), 1);
    let asked: serde_json::Value = serde_json::from_slice(&registrations[0].body).unwrap();
    assert_eq!(
        asked["grant_types"],
        serde_json::json!(["client_credentials"])
    );
    let token_requests = received_at(&mock, "/token").await;
    assert_eq!(token_requests.len(), 1);
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&token_requests[0].body)
        .into_owned()
        .collect();
    assert!(
        form.contains(&("resource".to_owned(), mcp.clone())),
        "RFC 8707 resource: {form:?}"
    );

    let second = fetch(&args).await;
    second.assert_code(0);
    assert_eq!(second.status_lines(), [(200, mcp.clone())], "{second:#?}");
    assert_eq!(
        second.events("token: loaded from the store"),
        1,
        "{second:#?}"
    );
    assert_eq!(
        received_at(&mock, "/register").await.len(),
        1,
        "registered once"
    );
    assert_eq!(received_at(&mock, "/token").await.len(), 1, "one token");
    for out in [&first, &second] {
        out.assert_no_secrets(&[REGISTERED_SECRET, REGISTRATION_TOKEN, REGISTERED_TOKEN]);
    }
}

/// `oauth-fetch URL` and nothing else: the resource names the server, the tool registers a
/// public client for a person's sign-in there, the browser signs in, and the request is sent
/// again with the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_first_with_nothing_but_the_url_registers_and_signs_in() {
    let mock = registering_server().await;
    let mcp = format!("{}/mcp", mock.uri());
    let browser = FakeBrowser::new();
    let out = run(browser.command(&cli("-v {}", [&mcp]))).await;
    out.assert_code(0);
    assert_eq!(out.status_lines(), [(200, mcp.clone())], "{out:#?}");
    assert!(out.stdout.contains("tools"), "{out:#?}");
    assert_eq!(out.events("token: fetched"), 1, "{out:#?}");
    assert_eq!(out.events("token: retried after 401"), 1, "{out:#?}");

    let registrations = received_at(&mock, "/register").await;
    assert_eq!(registrations.len(), 1);
    let asked: serde_json::Value = serde_json::from_slice(&registrations[0].body).unwrap();
    assert_eq!(asked["token_endpoint_auth_method"], "none", "{asked}");
    let authorizations = received_at(&mock, "/authorize").await;
    assert_eq!(authorizations.len(), 1);
    let shown = &authorizations[0].url;
    assert_eq!(query_param(shown, "client_id"), "dyn-person");
    assert_eq!(query_param(shown, "resource"), mcp);
    assert_eq!(query_param(shown, "scope"), "mcp:tools");
    let token_requests = received_at(&mock, "/token").await;
    assert_eq!(token_requests.len(), 1);
    let shown_line = out
        .stderr
        .lines()
        .find(|l| l.starts_with(&format!("{}/authorize?", mock.uri())))
        .unwrap_or_else(|| panic!("the authorization URL: {out:#?}"))
        .to_owned();
    out.assert_no_secrets_besides(&[REGISTRATION_TOKEN, REGISTERED_TOKEN], &[&shown_line]);
}

/// The issue's promise, against the crate's own deployment (`TestServer` with open
/// registration, RFC 8707 required and an RFC 9728 resource at `/mcp`): `oauth-fetch URL` and
/// nothing else registers, signs in through the browser and gets `200` in the fewest round
/// trips, with a token for that resource only; with `--cache`, a second run registers nothing
/// and asks for no token.
#[cfg(feature = "file-store")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_first_against_the_test_servers_own_resource_with_registration() {
    use oauth_layer::testing::{ProtectedResource, RegistrationPolicy, RoundTripKind::*};

    let server = TestServer::builder()
        .registration(RegistrationPolicy::Open)
        .require_resource_indicator(true)
        .protected_resource(ProtectedResource::new("/mcp").scopes_supported(["mcp:tools"]))
        .start()
        .await
        .unwrap();
    let mcp = server.resource_url("/mcp");
    let tmp = TempDir::new("resource-deployment");
    let cache = tmp.0.join("cache");
    let browser = FakeBrowser::new();
    let args = cli("--cache {} -v {}", [cache.to_str().unwrap(), &mcp]);
    let out = run(browser.command(&args)).await;
    out.assert_code(0);
    assert_eq!(out.status_lines(), [(200, mcp.clone())], "{out:#?}");
    let trips: Vec<_> = server
        .round_trips()
        .iter()
        .map(|t| (t.kind, t.status))
        .collect();
    assert_eq!(
        trips,
        [
            (Resource, 401),
            (ResourceMetadata, 200),
            (ServerMetadata, 200),
            (Registration, 201),
            (Authorization, 302),
            (Token, 200),
            (Resource, 200),
        ],
        "{out:#?}"
    );
    assert_eq!(server.registered_clients().len(), 1);
    let token = server
        .resource_requests()
        .last()
        .and_then(|r| r.bearer_token().map(str::to_owned))
        .unwrap();
    assert_eq!(
        server.access_token_info(&token).unwrap().resources,
        [server.resource_identifier("/mcp")]
    );
    assert_eq!(
        out.events(&format!("resource: discovered {}", server.url())),
        1,
        "{out:#?}"
    );

    server.reset_counts();
    let again = run(browser.command(&args)).await;
    again.assert_code(0);
    assert_eq!(again.status_lines(), [(200, mcp.clone())], "{again:#?}");
    assert_eq!(
        server.registration_requests(),
        0,
        "the registration was kept"
    );
    assert_eq!(server.token_requests(), 0, "so was the token");
    assert_eq!(server.registered_clients().len(), 1);
    assert_eq!(
        again.events("token: loaded from the store"),
        1,
        "{again:#?}"
    );
    // The registered client id is random but no secret (the resource's body echoes it), nor
    // is the authorization URL.
    let client_id = server.registered_clients().remove(0);
    let mut shown: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with(&format!("{}?", server.authorization_url())))
        .collect();
    shown.push(&client_id);
    out.assert_no_secrets_besides(&[&token], &shown);
    again.assert_no_secrets_besides(&[&token], &[&client_id]);
}

// --- High security: --profile, private-key-jwt, PAR, rich authorization requests ------------

/// A server for the FAPI 2.0 cases: `bank-app` authenticates with `private_key_jwt` (ES256,
/// the P-256 test key) and `rsa-app` likewise with PS256 (the RSA test key); tokens must be
/// DPoP-bound. The other clients of [`builder`] are there too.
async fn fapi_server(
    configure: impl FnOnce(
        oauth_layer::testing::TestServerBuilder,
    ) -> oauth_layer::testing::TestServerBuilder,
) -> TestServer {
    use jwt_keys::{EC_PUBLIC, RSA_PUBLIC};
    use oauth_layer::jwt::Algorithm;

    configure(
        builder()
            .client("bank-app", None, AuthMethod::PrivateKeyJwt)
            .client_key("bank-app", Algorithm::ES256, EC_PUBLIC)
            .client("rsa-app", None, AuthMethod::PrivateKeyJwt)
            .client_key("rsa-app", Algorithm::PS256, RSA_PUBLIC)
            .require_dpop(true),
    )
    .start()
    .await
    .unwrap()
}

/// `--profile fapi2` with discovery needs nothing but the client's key and `--dpop`: the client
/// authenticates with `private_key_jwt` (named, or implied by `--key`; an RSA key signs PS256
/// under the profile), the token is DPoP-bound, and neither the key nor the token is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fapi2_profile_gets_a_dpop_token_with_private_key_jwt() {
    use jwt_keys::{EC_PRIVATE, RSA_PRIVATE, body_lines};

    let server = fapi_server(|b| b).await;
    let dir = TempDir::new("fapi2");
    let ec = dir.file("client-p256.pem", EC_PRIVATE);
    let rsa = dir.file("client-rsa.pem", RSA_PRIVATE);
    let url = server.resource_url("/api/hello");
    let cases = [
        (
            "bank-app",
            "--auth-method private-key-jwt --key {}",
            &ec,
            EC_PRIVATE,
        ),
        ("bank-app", "--key {}", &ec, EC_PRIVATE),
        ("rsa-app", "--key {}", &rsa, RSA_PRIVATE),
    ];
    for (client_id, key_options, key, pem) in cases {
        server.reset_counts();
        let line = format!(
            "--issuer {{}} --client-id {client_id} --profile fapi2 {key_options} --dpop \
             --flow client-credentials -v {{}}"
        );
        let out = fetch(&cli(&line, [&server.url(), key, &url])).await;
        out.assert_code(0);
        assert_eq!(out.status_lines(), [(200, url.clone())], "{out:#?}");
        assert!(
            out.stdout
                .contains(&format!(r#""client_id":"{client_id}""#)),
            "{out:#?}"
        );
        assert_eq!(out.events("token: fetched"), 1, "{out:#?}");
        let log = server.token_request_log();
        assert_eq!(log.len(), 1, "{log:?}");
        assert_eq!(log[0].status, 200, "{log:?}");
        assert_eq!(log[0].token_type.as_deref(), Some("DPoP"), "{log:?}");
        assert!(
            log[0].dpop.as_ref().is_some_and(|p| p.is_valid()),
            "{log:?}"
        );
        let requests = server.resource_requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].scheme(), Some("DPoP"));
        let token = requests[0].dpop_token().unwrap().to_owned();
        let info = server.access_token_info(&token).unwrap();
        assert_eq!(info.client_id, client_id);
        assert!(info.jkt.is_some(), "bound to the tool's DPoP key");
        let jkt = requests[0].dpop.as_ref().unwrap().jkt.clone().unwrap();
        let mut secrets = body_lines(pem);
        secrets.push(&token);
        out.assert_no_secrets_besides(&secrets, &[&jkt]);
    }
}

/// What FAPI 2.0 forbids is refused before any request, as a usage error that names the
/// requirement (in the tool's options, not the library's methods), without showing a secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fapi2_profile_refuses_what_it_forbids() {
    use jwt_keys::{EC_PRIVATE, RSA_PRIVATE, body_lines};

    let server = fapi_server(|b| b).await;
    let dir = TempDir::new("fapi2-refused");
    let ec = dir.file("client-p256.pem", EC_PRIVATE);
    let rsa = dir.file("client-rsa.pem", RSA_PRIVATE);
    let issuer = server.url();
    #[rustfmt::skip]
    let vars = [
        var("FAPI", &["--issuer", &issuer, "--client-id", "bank-app", "--profile", "fapi2"]),
        var("KEY", &["--key", &ec]),
        var("RSA", &["--key", &rsa]),
        var("SECRET", &[SECRET]),
        var("URL", &[&server.resource_url("/api/hello")]),
        var("TOKEN_URL", &[&server.token_url()]),
    ];
    #[rustfmt::skip]
    let cases = [
        (
            "a client secret",
            "$FAPI --client-secret $SECRET --dpop $URL",
            "requires private_key_jwt or mutual TLS client authentication, not client_secret_basic",
        ),
        ("a public client", "$FAPI --dpop $URL", "requires private_key_jwt or mutual TLS client authentication, not none"),
        ("bearer tokens", "$FAPI $KEY $URL", "requires sender-constrained tokens"),
        ("bearer tokens: the advice names the option", "$FAPI $KEY $URL", "(--dpop)"),
        ("an RS256 key", "$FAPI $RSA --key-alg RS256 --dpop $URL", "does not allow RS256 signatures"),
        ("an RS256 key: the advice names the option", "$FAPI $RSA --key-alg RS256 --dpop $URL", "Give --key-alg PS256"),
        (
            "no issuer to address the assertion to",
            "--token-url $TOKEN_URL --client-id bank-app --profile fapi2 $KEY --dpop $URL",
            "addresses client assertions to the issuer identifier",
        ),
        (
            "the password grant",
            "$FAPI $KEY --dpop --flow password --username alice --password pw-secret-1 $URL",
            "forbids the password grant",
        ),
        ("an unknown profile", "--token-url $TOKEN_URL --client-id bank-app --profile fapi3 $URL", "unknown --profile"),
        (
            "a provider preset",
            "--provider github --client-id x --profile fapi2 $URL",
            "--profile and --provider are ambiguous",
        ),
        (
            "resource-first",
            "--client-id bank-app --profile fapi2 $KEY --dpop $URL",
            "--profile needs --token-url, --issuer or --provider",
        ),
        (
            "revoke",
            "revoke --revocation-url $TOKEN_URL --client-id x --token t --profile fapi2",
            "--profile does not apply to revoke",
        ),
    ];
    let mut secrets = body_lines(EC_PRIVATE);
    secrets.extend(body_lines(RSA_PRIVATE));
    secrets.extend([SECRET, "pw-secret-1"]);
    assert_usage_errors(&cases, &vars, &secrets).await;
    assert_eq!(
        server.token_requests(),
        0,
        "nothing was asked of the server"
    );
    assert!(server.resource_requests().is_empty());
}

/// `--key` outside jwt-bearer is the client's own key (private-key-jwt); the options that do
/// not go with it are usage errors that show no secret and ask nothing of the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clients_key_goes_with_private_key_jwt_only() {
    use jwt_keys::{EC_PRIVATE, body_lines};

    let server = fapi_server(|b| b).await;
    let dir = TempDir::new("client-key");
    let ec = dir.file("client-p256.pem", EC_PRIVATE);
    let account = dir.file(
        "account.json",
        r#"{"type": "service_account", "client_email": "x@y.example"}"#,
    );
    let token_url = server.token_url();
    #[rustfmt::skip]
    let vars = [
        var("CC", &["--token-url", &token_url, "--client-id", "bank-app"]),
        var("KEY", &["--key", &ec]),
        var("SECRET", &[SECRET]),
        var("URL", &[&server.resource_url("/api/hello")]),
        var("ACCOUNT", &[&account]),
        var("TOKEN_URL", &[&token_url]),
    ];
    #[rustfmt::skip]
    let cases = [
        ("private-key-jwt without a key", "$CC --auth-method private-key-jwt $URL", "--auth-method private-key-jwt needs --key FILE"),
        ("a key and a secret", "$CC $KEY --client-secret $SECRET $URL", "are two ways to authenticate the client"),
        (
            "a key and another method",
            "$CC $KEY --auth-method basic --client-secret $SECRET $URL",
            "not for --auth-method basic",
        ),
        ("--key-alg without a key", "$CC --key-alg ES256 --client-secret $SECRET $URL", "--key-alg goes with --key"),
        ("--key-id without a key", "$CC --key-id k1 --client-secret $SECRET $URL", "--key-id goes with --key"),
        ("a service account file", "$CC --key $ACCOUNT $URL", "the client's key for private-key-jwt is a PEM private key"),
        (
            "revoke",
            "revoke --revocation-url $TOKEN_URL --client-id x --token t --auth-method private-key-jwt",
            "--auth-method private-key-jwt does not apply to revoke",
        ),
        (
            "resource-first",
            "--client-id bank-app $KEY --flow client-credentials $URL",
            "--key needs --token-url, --issuer or --provider",
        ),
    ];
    let mut secrets = body_lines(EC_PRIVATE);
    secrets.push(SECRET);
    assert_usage_errors(&cases, &vars, &secrets).await;
    assert_eq!(server.token_requests(), 0);

    // Without a profile, private-key-jwt against the token URL: the assertion is accepted.
    let url = server.resource_url("/api/hello");
    let out = fetch(&cli(
        "--token-url {} --client-id bank-app --key {} --key-id client-1 --dpop -v {}",
        [&token_url, &ec, &url],
    ))
    .await;
    out.assert_code(0);
    assert_eq!(out.status_lines(), [(200, url)], "{out:#?}");
    let token = server.resource_requests()[0]
        .dpop_token()
        .unwrap()
        .to_owned();
    let jkt = server.resource_requests()[0]
        .dpop
        .as_ref()
        .unwrap()
        .jkt
        .clone()
        .unwrap();
    let mut secrets = body_lines(EC_PRIVATE);
    secrets.push(&token);
    out.assert_no_secrets_besides(&secrets, &[&jkt]);
}

/// The token exchange grant type (RFC 8693).
const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// `--authorization-details` (RFC 9396): each given as JSON on the command line or in a file,
/// one object or an array, reaches the token request in the order given (client credentials
/// and token exchange) and is what the token is for; malformed ones, and flows that take none,
/// are usage errors before any request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_details_reach_the_token_request() {
    use serde_json::json;

    let server = server().await;
    let url = server.resource_url("/api/hello");
    let dir = TempDir::new("details");
    let payment = json!({
        "type": "payment_initiation",
        "actions": ["initiate"],
        "instructedAmount": { "currency": "EUR", "amount": "123.50" },
    });
    let accounts = json!({ "type": "account_information", "actions": ["read"] });
    let file = dir.file("details.json", &json!([accounts]).to_string());
    let out = fetch(&with_client(
        &server,
        "basic-app",
        &cli(
            "--client-secret {} --authorization-details {} --authorization-details {} -v {}",
            [SECRET, &payment.to_string(), &format!("@{file}"), &url],
        ),
    ))
    .await;
    out.assert_code(0);
    assert_eq!(out.status_lines(), [(200, url.clone())], "{out:#?}");
    let token = one_access_token(&server, 1);
    let info = server.access_token_info(&token).unwrap();
    let recorded: serde_json::Value =
        serde_json::from_str(&info.authorization_details.expect("details recorded")).unwrap();
    assert_eq!(recorded, json!([payment, accounts]));
    out.assert_no_secrets(&[SECRET, &token]);

    // Token exchange sends them too: the exchanged token is for the details asked.
    server.reset_counts();
    let own = server
        .oauth_client_builder("basic-app")
        .unwrap()
        .secret(SECRET)
        .build()
        .unwrap();
    let subject = TokenSource::new(own, oauth_layer::flow::ClientCredentials::new())
        .token()
        .await
        .unwrap();
    let subject = subject.access_token().expose_secret().to_owned();
    let mut cmd = command(&with_client(
        &server,
        "basic-app",
        &cli(
            "--client-secret {} --flow token-exchange --authorization-details {} {}",
            [SECRET, &accounts.to_string(), &url],
        ),
    ));
    cmd.env("OAUTH_SUBJECT_TOKEN", &subject);
    let out = run(cmd).await;
    out.assert_code(0);
    assert_eq!(server.token_requests_for(TOKEN_EXCHANGE_GRANT), 1);
    let exchanged = one_access_token(&server, 1);
    assert_ne!(exchanged, subject);
    let info = server.access_token_info(&exchanged).unwrap();
    let recorded: serde_json::Value =
        serde_json::from_str(&info.authorization_details.expect("details recorded")).unwrap();
    assert_eq!(recorded, json!([accounts]));
    out.assert_no_secrets(&[SECRET, &subject, &exchanged]);

    #[rustfmt::skip]
    let vars = [
        var("CC", &["--token-url", &server.token_url(), "--client-id", "basic-app", "--client-secret", SECRET]),
        var("URL", &[&url]),
        var("MISSING", &[&format!("@{}", dir.0.join("missing.json").display())]),
    ];
    #[rustfmt::skip]
    let cases = [
        ("not JSON", "$CC --authorization-details {type: $URL", "--authorization-details is not JSON"),
        ("no type", r#"$CC --authorization-details '{"actions":["read"]}' $URL"#, "has no type"),
        ("an empty type", r#"$CC --authorization-details '{"type":""}' $URL"#, "type is empty"),
        ("a string", r#"$CC --authorization-details '"payment_initiation"' $URL"#, "must be a JSON object"),
        ("an empty array", "$CC --authorization-details '[]' $URL", "an empty array"),
        (
            "one bad detail in an array",
            r#"$CC --authorization-details '[{"type":"a"},{"type":7}]' $URL"#,
            "type must be a string",
        ),
        ("a file that is not there", "$CC --authorization-details $MISSING $URL", "--authorization-details @FILE: cannot read"),
        (
            "the password grant",
            r#"$CC --flow password --username alice --password x --authorization-details '{"type":"a"}' $URL"#,
            "--authorization-details applies to --flow auth-code or --flow client-credentials or --flow token-exchange only",
        ),
    ];
    server.reset_counts();
    assert_usage_errors(&cases, &vars, &[SECRET]).await;
    assert_eq!(server.token_requests(), 0);
}

/// `--par`: the sign-in's parameters are pushed to the server (RFC 9126, client authenticated,
/// details included) and the browser's URL carries only `client_id` and the `request_uri`; the
/// endpoint comes from discovery or `--par-url`, and without either it is a usage error.
/// `--profile fapi2` pushes by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn par_pushes_the_sign_in_and_the_browser_gets_a_reference() {
    use jwt_keys::EC_PRIVATE;

    let server = fapi_server(|b| b.support_dpop(true).require_dpop(false)).await;
    let url = server.resource_url("/api/me");
    let detail = r#"{"type":"account_information","actions":["read"]}"#;
    let detail_json: serde_json::Value = serde_json::from_str(detail).unwrap();
    let dir = TempDir::new("par");
    let ec = dir.file("client-p256.pem", EC_PRIVATE);
    let discovered = cli(
        "--issuer {} --client-id basic-app --client-secret {} --flow auth-code --par \
         --authorization-details {} -v {}",
        [&server.url(), SECRET, detail, &url],
    );
    let explicit = with_client(
        &server,
        "basic-app",
        &cli(
            "--client-secret {} --flow auth-code --auth-url {} --issuer {} --par --par-url {} \
             --authorization-details {} -v {}",
            [
                SECRET,
                &server.authorization_url(),
                &server.url(),
                &server.par_url(),
                detail,
                &url,
            ],
        ),
    );
    let profile = cli(
        "--issuer {} --client-id bank-app --key {} --dpop --profile fapi2 --flow auth-code -v {}",
        [&server.url(), &ec, &url],
    );
    for (name, args, client_id) in [
        ("discovered", discovered, "basic-app"),
        ("--par-url", explicit, "basic-app"),
        ("--profile fapi2", profile, "bank-app"),
    ] {
        server.reset_counts();
        let browser = FakeBrowser::new();
        let out = run(browser.command(&args)).await;
        eprintln!("case: {name}");
        out.assert_code(0);
        assert_eq!(out.status_lines(), [(200, url.clone())], "{out:#?}");
        assert_eq!(server.par_requests(), 1, "one push");
        let pushed = server.par_request_log().remove(0);
        assert_eq!(pushed.status, 201, "{pushed:?}");
        assert_eq!(pushed.client_id.as_deref(), Some(client_id));
        assert_eq!(pushed.param("code_challenge_method"), Some("S256"));
        let pushed_details = pushed
            .param("authorization_details")
            .map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap());
        let details = (client_id == "basic-app").then(|| serde_json::json!([detail_json]));
        assert_eq!(pushed_details, details);

        // The browser's URL: the client and the reference, nothing of the request itself.
        let prefix = format!("{}?", server.authorization_url());
        let shown: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .collect();
        assert_eq!(shown.len(), 1, "the authorization URL, once: {out:#?}");
        let shown_url = Url::parse(shown[0]).unwrap();
        let names: Vec<String> = shown_url
            .query_pairs()
            .map(|(k, _)| k.into_owned())
            .collect();
        assert_eq!(names, ["client_id", "request_uri"], "{shown_url}");
        assert_eq!(server.token_requests_for("authorization_code"), 1);
        let token = access_tokens(&server)
            .pop()
            .or_else(|| {
                server.resource_requests()[0]
                    .dpop_token()
                    .map(str::to_owned)
            })
            .unwrap();
        if client_id == "basic-app" {
            let info = server.access_token_info(&token).unwrap();
            let granted: serde_json::Value =
                serde_json::from_str(&info.authorization_details.unwrap()).unwrap();
            assert_eq!(granted, serde_json::json!([detail_json]));
        }
        let code = query_param(&browser.visited().await, "code");
        // The resource echoes the DPoP key's thumbprint, which is public.
        let jkt = server.resource_requests()[0]
            .dpop
            .as_ref()
            .and_then(|p| p.jkt.clone());
        let mut shown = vec![shown[0]];
        shown.extend(jkt.as_deref());
        out.assert_no_secrets_besides(&[SECRET, &token, &code], &shown);
    }

    #[rustfmt::skip]
    let vars = [
        var("AC", &["--token-url", &server.token_url(), "--client-id", "basic-app", "--client-secret", SECRET,
            "--auth-url", &server.authorization_url(), "--flow", "auth-code"]),
        var("URL", &[&url]),
    ];
    #[rustfmt::skip]
    let cases = [
        ("no endpoint to push to", "$AC --par $URL", "--par needs the server's pushed authorization request endpoint"),
        ("a preset without one", "--provider github --client-id x --par $URL", "--provider github names no pushed authorization request endpoint"),
        ("client credentials", "--token-url x --client-id basic-app --par $URL", "--par applies to --flow auth-code only"),
        ("--par-url with the device flow", "--token-url x --client-id basic-app --flow device --par-url x $URL", "--par-url applies to --flow auth-code only"),
        ("--par-url off loopback in plain http", "$AC --par --par-url http://idp.example/par $URL", "--par-url: "),
    ];
    server.reset_counts();
    assert_usage_errors(&cases, &vars, &[SECRET]).await;
    assert_eq!(server.par_requests(), 0);
}

/// A certificate authority no system trusts, for the mutual TLS cases: it issues the TLS
/// server's certificate (so `--ca-cert` is needed to reach it) and the client's.
struct TestCa {
    pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

/// A certificate and its key, as PEM, with the thumbprint (`x5t#S256`) of the certificate.
struct TestCert {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl TestCa {
    fn new() -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "oauth-fetch test CA");
        let cert = params.self_signed(&key).unwrap();
        Self {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    fn issue(&self, name: &str, purpose: rcgen::ExtendedKeyUsagePurpose) -> TestCert {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.extended_key_usages = vec![purpose];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        TestCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

/// What [`TlsServer`] saw of one request: its path, the thumbprint of the certificate its
/// connection presented, and its form body.
#[derive(Debug, Clone)]
struct TlsSeen {
    path: String,
    presented: Option<String>,
    body: String,
}

/// An HTTPS server on 127.0.0.1 with a certificate from a [`TestCa`], which asks each client
/// for a certificate from that CA (a connection without one gets in, and a 401). `/token` is
/// a token endpoint for `tls_client_auth` (RFC 8705 §2): client `mtls-app` with the certificate
/// and no other credential, or `invalid_client`; its token is bound to the certificate.
/// `/revoke` takes the same client the same way. `/api`
/// is a resource that takes the token only on a connection presenting that certificate (§3).
struct TlsServer {
    base: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<TlsSeen>>>,
}

impl TlsServer {
    async fn start(ca: &TestCa) -> Self {
        use std::sync::{Arc, Mutex};
        use tokio_rustls::rustls;
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

        let own = ca.issue("127.0.0.1", rcgen::ExtendedKeyUsagePurpose::ServerAuth);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.pem.as_bytes()).unwrap())
            .unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots.into(),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![CertificateDer::from(own.der.clone())],
                PrivateKeyDer::from_pem_slice(own.key_pem.as_bytes()).unwrap(),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<TlsSeen>>> = Arc::default();
        let bound: Arc<Mutex<std::collections::HashMap<String, String>>> = Arc::default();
        let shared = seen.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (acceptor, seen, bound) = (acceptor.clone(), shared.clone(), bound.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(socket).await else {
                        return;
                    };
                    let presented = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .map(|leaf| oauth_layer::tls::thumbprint(leaf));
                    let service = hyper::service::service_fn(move |request| {
                        tls_answer(request, presented.clone(), seen.clone(), bound.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self {
            base: format!("https://127.0.0.1:{port}"),
            seen,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn seen(&self) -> Vec<TlsSeen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn tls_answer(
    request: http::Request<hyper::body::Incoming>,
    presented: Option<String>,
    seen: std::sync::Arc<std::sync::Mutex<Vec<TlsSeen>>>,
    bound: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>,
) -> Result<http::Response<http_body_util::Full<bytes::Bytes>>, std::convert::Infallible> {
    use http_body_util::BodyExt;

    let path = request.uri().path().to_owned();
    let authorization = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body).into_owned();
    seen.lock().unwrap().push(TlsSeen {
        path: path.clone(),
        presented: presented.clone(),
        body: body.clone(),
    });
    let reply = |status: u16, body: String| {
        Ok(http::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .header("www-authenticate", r#"Bearer error="invalid_token""#)
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap())
    };
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
    match (path.as_str(), presented) {
        ("/token", Some(thumbprint))
            if authorization.is_none()
                && !form.contains_key("client_secret")
                && !form.contains_key("client_assertion")
                && form.get("client_id").map(String::as_str) == Some("mtls-app") =>
        {
            let mut bound = bound.lock().unwrap();
            let token = format!("mtls-bound-access-token-{:032}", bound.len() + 1);
            bound.insert(token.clone(), thumbprint);
            reply(
                200,
                format!(r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":3600}}"#),
            )
        }
        ("/token", _) => reply(401, r#"{"error":"invalid_client"}"#.into()),
        ("/revoke", Some(_))
            if authorization.is_none()
                && !form.contains_key("client_secret")
                && form.get("client_id").map(String::as_str) == Some("mtls-app") =>
        {
            reply(200, "{}".into())
        }
        ("/revoke", _) => reply(401, r#"{"error":"invalid_client"}"#.into()),
        ("/api", presented) => {
            let token = authorization
                .as_deref()
                .and_then(|a| a.strip_prefix("Bearer "))
                .unwrap_or_default();
            match bound.lock().unwrap().get(token) {
                Some(thumbprint) if Some(thumbprint) == presented.as_ref() => {
                    reply(200, r#"{"ok":true}"#.into())
                }
                _ => reply(401, "{}".into()),
            }
        }
        _ => reply(404, "{}".into()),
    }
}

/// Mutual TLS end to end (RFC 8705): `--client-cert` and `--client-key` authenticate the
/// client at a token endpoint reached through `--ca-cert` (`tls-client-auth`, named or implied
/// by the certificate, also under `--profile fapi2`), and the bound token goes to the resource on a connection presenting
/// the same certificate, also reached through `--ca-cert`. Without `--ca-cert` the server is
/// not trusted; the key never shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_client_certificate_authenticates_and_binds_the_token() {
    let ca = TestCa::new();
    let server = TlsServer::start(&ca).await;
    let client = ca.issue("mtls-app", rcgen::ExtendedKeyUsagePurpose::ClientAuth);
    let dir = TempDir::new("mtls");
    let cert = dir.file("client.crt", &client.cert_pem);
    let key = dir.file("client.key", &client.key_pem);
    let ca_file = dir.file("ca.pem", &ca.pem);
    let thumbprint = oauth_layer::tls::thumbprint(&client.der);
    let (token_url, api) = (server.url("/token"), server.url("/api"));
    // Named, implied by the certificate, and under FAPI 2.0 (mutual TLS is both its client
    // authentication and its sender constraint).
    for method in [
        vec!["--auth-method", "tls-client-auth"],
        vec![],
        vec!["--profile", "fapi2"],
    ] {
        let before = server.seen().len();
        let mut args = cli(
            "--token-url {} --client-id mtls-app --client-cert {} --client-key {} --ca-cert {} -v",
            [&token_url, &cert, &key, &ca_file],
        );
        args.extend(method.iter().map(|s| (*s).to_owned()));
        args.push(api.clone());
        let out = fetch(&args).await;
        out.assert_code(0);
        assert_eq!(out.status_lines(), [(200, api.clone())], "{out:#?}");
        assert_eq!(out.events("token: fetched"), 1, "{out:#?}");
        let seen = &server.seen()[before..];
        assert_eq!(
            seen.iter().map(|s| s.path.as_str()).collect::<Vec<_>>(),
            ["/token", "/api"],
            "{seen:?}"
        );
        for request in seen {
            assert_eq!(request.presented.as_deref(), Some(thumbprint.as_str()));
        }
        assert!(seen[0].body.contains("client_id=mtls-app"), "{seen:?}");
        let mut secrets = client
            .key_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>();
        secrets.push("mtls-bound-access-token-");
        out.assert_no_secrets(&secrets);
    }

    // The server's certificate comes from a CA only --ca-cert names: without it, no request.
    let before = server.seen().len();
    let out = fetch(&cli(
        "--token-url {} --client-id mtls-app --client-cert {} --client-key {} {}",
        [&token_url, &cert, &key, &api],
    ))
    .await;
    assert_ne!(out.code, Some(0), "{out:#?}");
    assert!(out.stderr.contains("certificate"), "{out:#?}");
    assert_eq!(server.seen().len(), before, "no request got through");

    // revoke authenticates the same way, through the same CA.
    let out = fetch(&cli(
        "revoke --revocation-url {} --client-id mtls-app --client-cert {} --client-key {} \
         --ca-cert {} --token mtls-token-to-revoke",
        [&server.url("/revoke"), &cert, &key, &ca_file],
    ))
    .await;
    out.assert_code(0);
    assert_eq!(out.stdout, "revoked\n", "{out:#?}");
    let revoked = server.seen().pop().unwrap();
    assert_eq!(revoked.path, "/revoke");
    assert_eq!(revoked.presented.as_deref(), Some(thumbprint.as_str()));
    assert!(
        revoked.body.contains("token=mtls-token-to-revoke"),
        "{revoked:?}"
    );
}

/// The mutual TLS and JAR options that do not go together, or with a flow, or whose files hold
/// no certificate or key, are usage errors that never show a key, before any request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_and_jar_options_are_checked_before_any_request() {
    let ca = TestCa::new();
    let server = server().await;
    let client = ca.issue("mtls-app", rcgen::ExtendedKeyUsagePurpose::ClientAuth);
    let other = ca.issue("other-app", rcgen::ExtendedKeyUsagePurpose::ClientAuth);
    let dir = TempDir::new("mtls-usage");
    let cert = dir.file("client.crt", &client.cert_pem);
    let key = dir.file("client.key", &client.key_pem);
    let other_key = dir.file("other.key", &other.key_pem);
    let garbage = dir.file("garbage.pem", "not a certificate\n");
    let token_url = server.token_url();
    #[rustfmt::skip]
    let vars = [
        var("CC", &["--token-url", &token_url, "--client-id", "basic-app"]),
        var("CERT", &["--client-cert", &cert]),
        var("KEY", &["--client-key", &key]),
        var("OTHER_KEY", &["--client-key", &other_key]),
        var("GARBAGE", &[&garbage]),
        var("SECRET", &[SECRET]),
        var("URL", &[&server.resource_url("/api/hello")]),
        var("AUTH_URL", &[&server.authorization_url()]),
    ];
    #[rustfmt::skip]
    let cases = [
        ("--client-key alone", "$CC $KEY $URL", "--client-key needs --client-cert"),
        ("--client-cert alone", "$CC $CERT $URL", "--client-cert needs --client-key"),
        ("tls-client-auth without a certificate", "$CC --auth-method tls-client-auth $URL", "--auth-method tls-client-auth needs --client-cert and --client-key"),
        (
            "self-signed-tls-client-auth and a secret",
            "$CC --auth-method self-signed-tls-client-auth $CERT $KEY --client-secret $SECRET $URL",
            "authenticates with the certificate: leave out --client-secret",
        ),
        ("a certificate file without a certificate", "$CC --client-cert $GARBAGE $KEY $URL", "no certificate"),
        ("a key file without a key", "$CC $CERT --client-key $GARBAGE $URL", "no usable private key"),
        ("the key of another certificate", "$CC $CERT $OTHER_KEY $URL", "cannot be used together"),
        ("a CA file without a certificate", "$CC --client-secret $SECRET --ca-cert $GARBAGE $URL", "--ca-cert: "),
        ("a CA file that is not there", "$CC --client-secret $SECRET --ca-cert /nonexistent/ca.pem $URL", "--ca-cert: cannot read"),
        ("--client-cert with a preset", "--provider github --client-id x $CERT $KEY $URL", "--client-cert and --provider are ambiguous"),
        ("--ca-cert resource-first", "--client-id basic-app --ca-cert $GARBAGE $URL", "--ca-cert needs --token-url, --issuer or --provider"),
        (
            "revoke with tls-client-auth but no certificate",
            "revoke --revocation-url $URL --client-id x --token t --auth-method tls-client-auth",
            "--auth-method tls-client-auth needs --client-cert and --client-key",
        ),
        ("revoke with --client-key alone", "revoke --revocation-url $URL --client-id x --token t $KEY", "--client-key needs --client-cert"),
        ("--jar with client credentials", "$CC --client-secret $SECRET --jar $URL", "--jar applies to --flow auth-code only"),
        (
            "--jar without a key to sign with",
            "$CC --client-secret $SECRET --flow auth-code --auth-url $AUTH_URL --jar $URL",
            "--jar signs the authorization request with the client's key: give --key FILE",
        ),
    ];
    let mut secrets: Vec<&str> = client
        .key_pem
        .lines()
        .chain(other.key_pem.lines())
        .filter(|l| !l.starts_with("-----"))
        .collect();
    secrets.push(SECRET);
    assert_usage_errors(&cases, &vars, &secrets).await;
    assert_eq!(server.token_requests(), 0);
    assert!(server.resource_requests().is_empty());
}

/// `--jar`: the sign-in's parameters travel in a request object signed with the client's
/// `--key` (RFC 9101), by value in the browser's URL, or pushed with `--par`; the server that
/// requires request objects accepts it, and the key never shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jar_signs_the_sign_in_with_the_clients_key() {
    use jwt_keys::{EC_PRIVATE, body_lines};

    let server = fapi_server(|b| b.require_dpop(false).require_request_object(true)).await;
    let url = server.resource_url("/api/me");
    let dir = TempDir::new("jar");
    let ec = dir.file("client-p256.pem", EC_PRIVATE);
    for (pushed, names) in [
        (false, vec!["client_id", "request"]),
        (true, vec!["client_id", "request_uri"]),
    ] {
        server.reset_counts();
        let before = server.request_object_log().len();
        let mut args = cli(
            "--issuer {} --client-id bank-app --key {} --key-id client-1 --flow auth-code --jar -v",
            [&server.url(), &ec],
        );
        if pushed {
            args.push("--par".into());
        }
        args.push(url.clone());
        let browser = FakeBrowser::new();
        let out = run(browser.command(&args)).await;
        out.assert_code(0);
        assert_eq!(out.status_lines(), [(200, url.clone())], "{out:#?}");
        let objects = server.request_object_log();
        assert_eq!(objects.len(), before + 1, "one request object: {objects:?}");
        let object = objects.last().unwrap();
        assert_eq!(object.problem, None, "{object:?}");
        assert_eq!(object.client_id.as_deref(), Some("bank-app"));
        assert_eq!(object.alg.as_deref(), Some("ES256"));
        assert_eq!(object.kid.as_deref(), Some("client-1"));
        assert_eq!(server.par_requests(), usize::from(pushed));

        let prefix = format!("{}?", server.authorization_url());
        let shown: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .collect();
        assert_eq!(shown.len(), 1, "the authorization URL, once: {out:#?}");
        let shown_url = Url::parse(shown[0]).unwrap();
        let query: Vec<String> = shown_url
            .query_pairs()
            .map(|(k, _)| k.into_owned())
            .collect();
        assert_eq!(query, names, "{shown_url}");
        let token = one_access_token(&server, 1);
        let code = query_param(&browser.visited().await, "code");
        let mut secrets = body_lines(EC_PRIVATE);
        secrets.extend([token.as_str(), &code]);
        out.assert_no_secrets_besides(&secrets, &[shown[0]]);
    }
}
