//! `oauth-fetch`'s workload identity options, run as the compiled binary against wiremock:
//! each credential source (a file, a URL, a command, GitHub Actions, Azure) reaches the token
//! endpoint as the client assertion, the jwt-bearer grant's assertion or the token exchange's
//! subject token, read again for each run; contradictory options are usage errors naming
//! both; and the credential never reaches stdout or stderr, `-v` and `--output json` included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod test_keys;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokio::process::Command;
use wiremock::matchers::{header, method, path, path_regex, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
const ACCESS_TOKEN: &str = "at-workload-0123456789";

/// Variables a run must not inherit from the machine the tests run on (a CI job may well be
/// a GitHub Actions job with an OIDC token, or an AKS pod).
const INHERITED: &[&str] = &[
    "OAUTH_CLIENT_SECRET",
    "OAUTH_PASSWORD",
    "OAUTH_REFRESH_TOKEN",
    "OAUTH_SUBJECT_TOKEN",
    "OAUTH_ACTOR_TOKEN",
    "OAUTH_TOKEN",
    "OAUTH_REDIS",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_AUTHORITY_HOST",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "RUST_LOG",
];

/// What one run of the binary left behind.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn assert_code(&self, code: i32) {
        assert_eq!(self.code, Some(code), "exit code; run: {self:#?}");
    }

    /// Exit code 2, nothing on stdout, one line on stderr containing each of `needles`.
    fn assert_usage_error(&self, needles: &[&str]) {
        self.assert_code(2);
        assert_eq!(self.stdout, "", "stdout of a usage error: {self:#?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line on stderr: {self:#?}");
        assert!(lines[0].starts_with("oauth-fetch: "), "{self:#?}");
        for needle in needles {
            assert!(
                lines[0].contains(needle),
                "stderr should say {needle:?}: {self:#?}"
            );
        }
    }

    /// None of `secrets`, whole or any dot-separated part of them, on stdout or stderr.
    fn assert_no_secrets(&self, secrets: &[&str]) {
        for (name, text) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            for secret in secrets {
                for part in std::iter::once(*secret).chain(secret.split('.')) {
                    assert!(
                        !text.contains(part),
                        "a secret ({} chars) appeared on {name}: {self:#?}",
                        part.len()
                    );
                }
            }
        }
    }
}

/// The binary with `args`, stdin closed, none of [`INHERITED`], and `env` set.
fn command(args: &[String], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_oauth-fetch"));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for name in INHERITED {
        cmd.env_remove(name);
    }
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd
}

/// What the started `child` leaves behind when it ends.
async fn finish(child: tokio::process::Child) -> Run {
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("fetch finished in time")
        .expect("fetch ran");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

async fn fetch_with(args: &[String], env: &[(&str, &str)]) -> Run {
    finish(command(args, env).spawn().expect("fetch started")).await
}

async fn fetch(args: &[String]) -> Run {
    fetch_with(args, &[]).await
}

/// A command line written as one line: words split at spaces, each `{}` the next of `values`.
fn cli<const N: usize>(template: &str, values: [&str; N]) -> Vec<String> {
    let mut values = values.into_iter();
    let args = template
        .split_whitespace()
        .map(|word| match word {
            "{}" => values.next().expect("a value for each {}").to_owned(),
            word => word.to_owned(),
        })
        .collect();
    assert!(values.next().is_none(), "a {{}} for each value");
    args
}

/// An unsigned JWT-shaped credential for `sub`, whose `exp` is `lifetime` seconds from now
/// (negative: already past), as a platform's token looks to the client.
fn platform_token(sub: &str, lifetime: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let part = |json: serde_json::Value| URL_SAFE_NO_PAD.encode(json.to_string());
    format!(
        "{}.{}.{}",
        part(serde_json::json!({ "alg": "RS256", "kid": "platform-key" })),
        part(serde_json::json!({
            "iss": "https://kubernetes.default.svc",
            "sub": sub,
            "aud": "oauth-fetch-tests",
            "exp": now + lifetime,
        })),
        URL_SAFE_NO_PAD.encode(format!("signature-of-{sub}-that-nobody-checks-here")),
    )
}

/// A directory of the test's own, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "fetch-cli-credential-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// Writes `contents` to `name` in the directory (replacing it), and returns its path.
    fn write(&self, name: &str, contents: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path.to_str().unwrap().to_owned()
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A wiremock server with a token endpoint at `token_path` that answers every POST with
/// [`ACCESS_TOKEN`], and an API at `/api/...` that wants it.
async fn token_server(token_path: &str) -> MockServer {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(token_path))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": ACCESS_TOKEN,
            "token_type": "Bearer",
            "expires_in": 3600,
            // Token exchange answers say what they issued (RFC 8693 §2.2.1).
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
        })))
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("^/api/"))
        .and(header(
            "authorization",
            format!("Bearer {ACCESS_TOKEN}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_string("hello from the API\n"))
        .mount(&mock)
        .await;
    mock
}

/// The form of every request `mock` received at `at`, in order.
async fn forms_at(mock: &MockServer, at: &str) -> Vec<Vec<(String, String)>> {
    mock.received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == at)
        .map(|r| {
            url::form_urlencoded::parse(&r.body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .collect()
}

/// `name`'s value in `form`, which must hold it at most once.
fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let values: Vec<&str> = form
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect();
    assert!(values.len() <= 1, "{name} sent more than once: {form:?}");
    values.first().copied()
}

/// The form is a client credentials request authenticated by `assertion` as `client_id`.
fn assert_client_assertion(form: &[(String, String)], client_id: &str, assertion: &str) {
    assert_eq!(
        field(form, "grant_type"),
        Some("client_credentials"),
        "{form:?}"
    );
    assert_eq!(field(form, "client_id"), Some(client_id), "{form:?}");
    assert_eq!(
        field(form, "client_assertion_type"),
        Some(CLIENT_ASSERTION_TYPE),
        "{form:?}"
    );
    assert_eq!(field(form, "client_assertion"), Some(assertion), "{form:?}");
    assert_eq!(field(form, "client_secret"), None, "{form:?}");
}

/// `--assertion-file` with the default flow is the client's assertion, read again for every
/// run: a file rotated in place between two runs sends its new content. `-v` and
/// `--output json` show neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assertion_file_authenticates_the_client_and_is_read_again_each_run() {
    let mock = token_server("/token").await;
    let dir = TempDir::new("client-assertion");
    let first = platform_token("system:serviceaccount:ns:first", 600);
    let second = platform_token("system:serviceaccount:ns:second", 600);
    let file = dir.write("token", &format!("{first}\n"));
    let token_url = format!("{}/token", mock.uri());
    let api = format!("{}/api/items", mock.uri());

    for (assertion, extra) in [(&first, "-v"), (&second, "--output=json")] {
        dir.write("token", assertion);
        let out = fetch(&cli(
            "--token-url {} --client-id workload --assertion-file {} --scope api:read {} {}",
            [&token_url, &file, extra, &api],
        ))
        .await;
        out.assert_code(0);
        assert!(out.stdout.contains("hello from the API"), "{out:#?}");
        out.assert_no_secrets(&[&first, &second, ACCESS_TOKEN]);
    }
    let forms = forms_at(&mock, "/token").await;
    assert_eq!(forms.len(), 2, "one token request a run: {forms:?}");
    assert_client_assertion(&forms[0], "workload", &first);
    assert_client_assertion(&forms[1], "workload", &second);
    assert_eq!(field(&forms[0], "scope"), Some("api:read"));

    // --auth-method private-key-jwt says the same, and is accepted without --key.
    let out = fetch(&cli(
        "--token-url {} --client-id workload --assertion-file {} --auth-method private-key-jwt {}",
        [&token_url, &file, &api],
    ))
    .await;
    out.assert_code(0);
    assert_client_assertion(&forms_at(&mock, "/token").await[2], "workload", &second);
}

/// A token file rotated while a run goes on: the next token request (the first token expired
/// between rounds) carries the new content, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_file_rotated_during_a_run_is_picked_up_at_the_next_renewal() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": ACCESS_TOKEN,
            "token_type": "Bearer",
            "expires_in": 1,
        })))
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/items"))
        .respond_with(ResponseTemplate::new(200).set_body_string("hello from the API\n"))
        .mount(&mock)
        .await;
    let dir = TempDir::new("rotated");
    let before = platform_token("before-rotation", 600);
    let after = platform_token("after-rotation", 600);
    let file = dir.write("token", &before);
    let child = command(
        &cli(
            "--token-url {} --client-id app --assertion-file {} --repeat 2 --interval 1 -v {}",
            [
                &format!("{}/token", mock.uri()),
                &file,
                &format!("{}/api/items", mock.uri()),
            ],
        ),
        &[],
    )
    .spawn()
    .expect("fetch started");
    tokio::time::timeout(Duration::from_secs(10), async {
        while forms_at(&mock, "/token").await.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the first token request");
    // Replaced the way the kubelet does it: a new file renamed over the old one.
    let next = dir.write("token.next", &after);
    std::fs::rename(&next, &file).unwrap();

    let out = finish(child).await;
    out.assert_code(0);
    out.assert_no_secrets(&[&before, &after, ACCESS_TOKEN]);
    let forms = forms_at(&mock, "/token").await;
    assert_eq!(forms.len(), 2, "fetched, then renewed: {forms:?}");
    assert_client_assertion(&forms[0], "app", &before);
    assert_client_assertion(&forms[1], "app", &after);
}

/// With `--flow jwt-bearer` the credential is the grant's assertion (no `--key`), and with
/// `--flow token-exchange` the subject token, of type jwt unless `--subject-token-type` says
/// otherwise; the client authenticates as the other options say (here a public client).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_credential_is_the_jwt_bearer_assertion_or_the_subject_token() {
    let mock = token_server("/token").await;
    let dir = TempDir::new("grant");
    let token = platform_token("repo:example/app:ref:refs/heads/main", 600);
    let file = dir.write("token", &token);
    let token_url = format!("{}/token", mock.uri());
    let api = format!("{}/api/items", mock.uri());

    let runs = [
        "--flow jwt-bearer --scope api:read",
        "--flow token-exchange --audience https://api.example",
        "--flow token-exchange --subject-token-type urn:ietf:params:oauth:token-type:id_token",
    ];
    for flow in runs {
        let mut args = cli(
            "--token-url {} --client-id app -v --assertion-file {}",
            [&token_url, &file],
        );
        args.extend(flow.split_whitespace().map(str::to_owned));
        args.push(api.clone());
        let out = fetch(&args).await;
        out.assert_code(0);
        out.assert_no_secrets(&[&token, ACCESS_TOKEN]);
    }
    let forms = forms_at(&mock, "/token").await;
    assert_eq!(forms.len(), 3, "{forms:?}");

    assert_eq!(field(&forms[0], "grant_type"), Some(JWT_BEARER_GRANT));
    assert_eq!(field(&forms[0], "assertion"), Some(token.as_str()));
    assert_eq!(field(&forms[0], "scope"), Some("api:read"));
    assert_eq!(field(&forms[0], "client_assertion"), None);

    assert_eq!(field(&forms[1], "grant_type"), Some(TOKEN_EXCHANGE_GRANT));
    assert_eq!(field(&forms[1], "subject_token"), Some(token.as_str()));
    assert_eq!(field(&forms[1], "subject_token_type"), Some(JWT_TOKEN_TYPE));
    assert_eq!(field(&forms[1], "audience"), Some("https://api.example"));
    assert_eq!(field(&forms[1], "client_assertion"), None);

    assert_eq!(field(&forms[2], "subject_token"), Some(token.as_str()));
    assert_eq!(
        field(&forms[2], "subject_token_type"),
        Some("urn:ietf:params:oauth:token-type:id_token")
    );

    // The grant's assertion from the file, the client's own signed with --key.
    let key = dir.write("client.pem", test_keys::RSA_PRIVATE);
    let out = fetch(&cli(
        "--token-url {} --client-id app --flow jwt-bearer --assertion-file {} \
         --auth-method private-key-jwt --key {} -v {}",
        [&token_url, &file, &key, &api],
    ))
    .await;
    out.assert_code(0);
    out.assert_no_secrets(&[&token, ACCESS_TOKEN]);
    let form = &forms_at(&mock, "/token").await[3];
    assert_eq!(field(form, "grant_type"), Some(JWT_BEARER_GRANT));
    assert_eq!(field(form, "assertion"), Some(token.as_str()));
    assert_eq!(
        field(form, "client_assertion_type"),
        Some(CLIENT_ASSERTION_TYPE)
    );
    let signed = field(form, "client_assertion").expect("the client's own assertion");
    assert_ne!(signed, token, "signed with --key, not the file's");
    assert_eq!(signed.split('.').count(), 3);
}

/// `--assertion-url` GETs the credential with the `--assertion-header`s (one from a file, so
/// its value stays off the command line), as text or as the JSON member
/// `--assertion-field` names, once a run; neither the credential nor a header value is shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assertion_url_with_headers_and_a_json_field() {
    let mock = token_server("/token").await;
    let dir = TempDir::new("url");
    let broker_key = "broker-api-key-that-is-a-secret";
    let headers = format!(
        "@{}",
        dir.write("headers", &format!("X-Broker-Key: {broker_key}\n"))
    );
    let as_json = platform_token("json-answer", 600);
    let as_text = platform_token("text-answer", 600);
    Mock::given(method("GET"))
        .and(path("/credential.json"))
        .and(header("x-broker-key", broker_key))
        .and(header("x-tenant", "blue"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({ "token": as_json })),
        )
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/credential.txt"))
        .and(header("x-broker-key", broker_key))
        .respond_with(ResponseTemplate::new(200).set_body_string(format!("{as_text}\n")))
        .mount(&mock)
        .await;
    let token_url = format!("{}/token", mock.uri());
    let api = format!("{}/api/items", mock.uri());

    let json = fetch(&cli(
        "--token-url {} --client-id app --assertion-url {} --assertion-header {} \
         --assertion-header {} --assertion-field token -v {}",
        [
            &token_url,
            &format!("{}/credential.json", mock.uri()),
            &headers,
            "X-Tenant: blue",
            &api,
        ],
    ))
    .await;
    json.assert_code(0);
    json.assert_no_secrets(&[&as_json, broker_key, ACCESS_TOKEN]);
    let text = fetch(&cli(
        "--token-url {} --client-id app --assertion-url {} --assertion-header {} {}",
        [
            &token_url,
            &format!("{}/credential.txt", mock.uri()),
            &headers,
            &api,
        ],
    ))
    .await;
    text.assert_code(0);
    text.assert_no_secrets(&[&as_text, broker_key, ACCESS_TOKEN]);

    let forms = forms_at(&mock, "/token").await;
    assert_client_assertion(&forms[0], "app", &as_json);
    assert_client_assertion(&forms[1], "app", &as_text);

    // A credential URL that answers HTML: no token request, and a message naming the URL.
    Mock::given(method("GET"))
        .and(path("/login"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>sign in</html>"))
        .mount(&mock)
        .await;
    let html = fetch(&cli(
        "--token-url {} --client-id app --assertion-url {} {}",
        [&token_url, &format!("{}/login", mock.uri()), &api],
    ))
    .await;
    html.assert_code(1);
    assert!(
        html.stdout.contains("/login") || html.stderr.contains("/login"),
        "{html:#?}"
    );
    assert_eq!(forms_at(&mock, "/token").await.len(), 2);
}

/// `--assertion-command` runs the program with the `--assertion-arg`s (no shell: a `$HOME`
/// or `;` in an argument is the argument), once a run, and its output is the credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assertion_command_prints_the_credential() {
    let mock = token_server("/token").await;
    let dir = TempDir::new("command");
    let first = platform_token("command-first", 600);
    let second = platform_token("command-second", 600);
    let odd_name = "token; rm -rf $HOME";
    let file = dir.write(odd_name, &first);
    let token_url = format!("{}/token", mock.uri());
    let api = format!("{}/api/items", mock.uri());
    let args = cli(
        "--token-url {} --client-id app --assertion-command cat --assertion-arg -- \
         --assertion-arg {} -v {}",
        [&token_url, &file, &api],
    );

    let out = fetch(&args).await;
    out.assert_code(0);
    out.assert_no_secrets(&[&first, ACCESS_TOKEN]);
    dir.write(odd_name, &second);
    let out = fetch(&args).await;
    out.assert_code(0);
    out.assert_no_secrets(&[&second, ACCESS_TOKEN]);

    let forms = forms_at(&mock, "/token").await;
    assert_client_assertion(&forms[0], "app", &first);
    assert_client_assertion(&forms[1], "app", &second);
    assert!(dir.path().join(odd_name).exists());

    // A command that fails: no token request, exit code 1, the program named.
    let out = fetch(&cli(
        "--token-url {} --client-id app --assertion-command false {}",
        [&token_url, &api],
    ))
    .await;
    out.assert_code(1);
    assert!(
        out.stderr.contains("false") || out.stdout.contains("false"),
        "{out:#?}"
    );
    assert_eq!(forms_at(&mock, "/token").await.len(), 2);
}

/// `--github-actions-audience` asks `ACTIONS_ID_TOKEN_REQUEST_URL` for the audience, with
/// `ACTIONS_ID_TOKEN_REQUEST_TOKEN` as bearer, and uses the `value` it answers; without the
/// variables it is a usage error naming the missing one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_actions_oidc_comes_from_the_jobs_environment() {
    let mock = token_server("/token").await;
    let request_token = "ghs_request-token-of-the-job-0123456789";
    let oidc = platform_token("repo:example/app:ref:refs/heads/main", 600);
    Mock::given(method("GET"))
        .and(path("/_apis/oidc/token"))
        .and(query_param("api-version", "2.0"))
        .and(query_param("audience", "https://idp.example"))
        .and(header(
            "authorization",
            format!("bearer {request_token}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "count": 1,
            "value": oidc,
        })))
        .mount(&mock)
        .await;
    let token_url = format!("{}/token", mock.uri());
    let api = format!("{}/api/items", mock.uri());
    let request_url = format!("{}/_apis/oidc/token?api-version=2.0", mock.uri());
    let env = [
        ("ACTIONS_ID_TOKEN_REQUEST_URL", request_url.as_str()),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", request_token),
    ];

    let out = fetch_with(
        &cli(
            "--token-url {} --client-id app --flow token-exchange \
             --github-actions-audience https://idp.example -v {}",
            [&token_url, &api],
        ),
        &env,
    )
    .await;
    out.assert_code(0);
    out.assert_no_secrets(&[&oidc, request_token, ACCESS_TOKEN]);
    let forms = forms_at(&mock, "/token").await;
    assert_eq!(field(&forms[0], "subject_token"), Some(oidc.as_str()));
    assert_eq!(field(&forms[0], "subject_token_type"), Some(JWT_TOKEN_TYPE));

    let missing = fetch_with(
        &cli(
            "--token-url {} --client-id app --github-actions-audience https://idp.example {}",
            [&token_url, &api],
        ),
        &env[1..],
    )
    .await;
    missing.assert_usage_error(&["--github-actions-audience", "ACTIONS_ID_TOKEN_REQUEST_URL"]);
    missing.assert_no_secrets(&[request_token]);
}

/// `--azure-workload-identity` takes the client, the tenant's token endpoint and the
/// federated token file from Azure's variables, with `--scope`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_workload_identity_comes_from_the_pods_environment() {
    let mock = token_server("/contoso.example/oauth2/v2.0/token").await;
    let dir = TempDir::new("azure");
    let federated = platform_token("system:serviceaccount:default:workload", 600);
    let file = dir.write("azure-identity-token", &federated);
    let authority = format!("{}/", mock.uri());
    let env = [
        ("AZURE_FEDERATED_TOKEN_FILE", file.as_str()),
        ("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555"),
        ("AZURE_TENANT_ID", "contoso.example"),
        ("AZURE_AUTHORITY_HOST", authority.as_str()),
    ];
    let api = format!("{}/api/items", mock.uri());

    let out = fetch_with(
        &cli(
            "--azure-workload-identity --scope https://graph.microsoft.com/.default -v {}",
            [&api],
        ),
        &env,
    )
    .await;
    out.assert_code(0);
    out.assert_no_secrets(&[&federated, ACCESS_TOKEN]);
    let forms = forms_at(&mock, "/contoso.example/oauth2/v2.0/token").await;
    assert_eq!(forms.len(), 1);
    assert_client_assertion(
        &forms[0],
        "11111111-2222-3333-4444-555555555555",
        &federated,
    );
    assert_eq!(
        field(&forms[0], "scope"),
        Some("https://graph.microsoft.com/.default")
    );

    let cases: [(&str, &[&str]); 4] = [
        (
            "--azure-workload-identity {}",
            &["--azure-workload-identity needs --scope"],
        ),
        (
            "--azure-workload-identity --scope s --client-id other {}",
            &[
                "--client-id",
                "--azure-workload-identity",
                "AZURE_CLIENT_ID",
            ],
        ),
        (
            "--azure-workload-identity --scope s --token-url https://idp.example/token {}",
            &["--token-url", "--azure-workload-identity"],
        ),
        (
            "--azure-workload-identity --scope s --client-secret hunter2-secret {}",
            &["--azure-workload-identity", "--client-secret"],
        ),
    ];
    for (line, needles) in cases {
        let out = fetch_with(&cli(line, [&api]), &env).await;
        out.assert_usage_error(needles);
        out.assert_no_secrets(&[&federated, "hunter2-secret"]);
    }
    let unset = fetch_with(
        &cli("--azure-workload-identity --scope s {}", [&api]),
        &env[1..],
    )
    .await;
    unset.assert_usage_error(&["--azure-workload-identity", "AZURE_FEDERATED_TOKEN_FILE"]);
    assert_eq!(
        forms_at(&mock, "/contoso.example/oauth2/v2.0/token")
            .await
            .len(),
        1
    );
}

/// A platform token past its own `exp` is never sent: the run fails (exit code 1) before any
/// token request, saying why, without showing the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_credential_is_never_sent() {
    let mock = token_server("/token").await;
    let dir = TempDir::new("expired");
    let expired = platform_token("expired", -60);
    let file = dir.write("token", &expired);
    let out = fetch(&cli(
        "--token-url {} --client-id app --assertion-file {} -v {}",
        [
            &format!("{}/token", mock.uri()),
            &file,
            &format!("{}/api/items", mock.uri()),
        ],
    ))
    .await;
    out.assert_code(1);
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(said.contains("exp has passed"), "{out:#?}");
    out.assert_no_secrets(&[&expired]);
    assert!(forms_at(&mock, "/token").await.is_empty());
}

/// Options that contradict a credential source are usage errors naming both, before any
/// request, and never echo a secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contradictory_options_are_refused_naming_both() {
    let mock = token_server("/token").await;
    let dir = TempDir::new("refused");
    let token = platform_token("refused", 600);
    let file = dir.write("token", &token);
    let key = dir.write("key.pem", "-----BEGIN PRIVATE KEY-----\nnot-a-key\n");
    let token_url = format!("{}/token", mock.uri());
    let api = format!("{}/api/items", mock.uri());
    let cases: &[(&str, &[&str])] = &[
        (
            "--assertion-file {f} --assertion-url https://broker.example/token",
            &["--assertion-file", "--assertion-url", "give one"],
        ),
        (
            "--assertion-command cat --github-actions-audience aud",
            &["--assertion-command", "--github-actions-audience"],
        ),
        (
            "--assertion-file {f} --client-secret hunter2-secret",
            &["--assertion-file", "--client-secret"],
        ),
        (
            "--assertion-file {f} --key {k}",
            &["--assertion-file", "--key"],
        ),
        (
            "--assertion-file {f} --auth-method basic",
            &["--auth-method basic", "--assertion-file"],
        ),
        (
            "--assertion-file {f} --flow token-exchange --subject-token hunter2-secret",
            &["--subject-token", "--assertion-file"],
        ),
        (
            "--assertion-file {f} --flow jwt-bearer --key {k}",
            &["--key", "--assertion-file", "jwt-bearer"],
        ),
        (
            "--assertion-file {f} --flow jwt-bearer --subject someone",
            &["--subject", "--assertion-file"],
        ),
        (
            "--assertion-header X-A:b --assertion-file {f}",
            &["--assertion-header", "--assertion-url"],
        ),
        (
            "--assertion-field value --assertion-command cat",
            &["--assertion-field", "--assertion-url"],
        ),
        (
            "--assertion-arg x --assertion-file {f}",
            &["--assertion-arg", "--assertion-command"],
        ),
        (
            "--assertion-file -",
            &["--assertion-file", "standard input"],
        ),
        (
            "--assertion-url http://broker.example/token",
            &["--assertion-url"],
        ),
        (
            "--assertion-url https://broker.example/token --assertion-header no-colon",
            &["--assertion-header", "Name: value"],
        ),
    ];
    for (options, needles) in cases {
        let mut args = cli("--token-url {} --client-id app", [&token_url]);
        args.extend(
            options
                .split_whitespace()
                .map(|w| w.replace("{f}", &file).replace("{k}", &key)),
        );
        args.push(api.clone());
        let out = fetch(&args).await;
        eprintln!("case: {options}");
        out.assert_usage_error(needles);
        out.assert_no_secrets(&[&token, "hunter2-secret"]);
    }

    // The client secret from the environment contradicts a client assertion as well.
    let out = fetch_with(
        &cli(
            "--token-url {} --client-id app --assertion-file {} {}",
            [&token_url, &file, &api],
        ),
        &[("OAUTH_CLIENT_SECRET", "hunter2-secret")],
    )
    .await;
    out.assert_usage_error(&["--assertion-file", "OAUTH_CLIENT_SECRET"]);
    out.assert_no_secrets(&["hunter2-secret"]);

    // Without a token endpoint the resource would choose the client authentication; with a
    // preset, the preset does.
    for (options, needles) in [
        (
            vec!["--client-id", "app", "--assertion-file", &file],
            &["--assertion-file", "--token-url"][..],
        ),
        (
            vec![
                "--provider",
                "github",
                "--client-id",
                "app",
                "--assertion-file",
                &file,
            ],
            &["--assertion-file", "--provider"][..],
        ),
    ] {
        let mut args: Vec<String> = options.into_iter().map(str::to_owned).collect();
        args.push(api.clone());
        fetch(&args).await.assert_usage_error(needles);
    }
    assert!(forms_at(&mock, "/token").await.is_empty());
}
