//! `oauth-fetch`'s workload identity options, run as the compiled binary against wiremock:
//! each credential source (a file, a URL, a command, GitHub Actions, Azure) reaches the token
//! endpoint as the client assertion, the jwt-bearer grant's assertion or the token exchange's
//! subject token, read again for each run; Google's credentials (a file of each type, the
//! application default credentials down to a fake metadata server) get their own tokens;
//! contradictory options are usage errors naming both; and the credential never reaches
//! stdout or stderr, `-v` and `--output json` included.
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
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES",
    "CLOUDSDK_CONFIG",
    "GCE_METADATA_HOST",
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

// ---------------------------------------------------------------- Google's credentials

const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
const ROBOT: &str = "robot@demo-project.iam.gserviceaccount.com";
const USER_CLIENT_SECRET: &str = "d-FL95Q19q7MQmFpd7hHD0Ty";
const USER_REFRESH_TOKEN: &str = "1//0gVtRZr3WFzGvCgYIARAAGBASNwF-L9IrV6xHqWkA";
const POOL_AUDIENCE: &str =
    "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/pool/providers/k8s";
const METADATA_TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";

/// A service account key file whose token_uri is `token_uri`.
fn service_account_json(token_uri: &str) -> String {
    serde_json::json!({
        "type": "service_account",
        "project_id": "demo-project",
        "private_key_id": "0123456789abcdef",
        "private_key": test_keys::RSA_PRIVATE,
        "client_email": ROBOT,
        "client_id": "1234567890",
        "token_uri": token_uri,
    })
    .to_string()
}

/// gcloud's file after `gcloud auth application-default login`, refreshing at `token_uri`.
fn authorized_user_json(token_uri: &str) -> String {
    serde_json::json!({
        "type": "authorized_user",
        "client_id": "764086051850-6qr4p6gpi6hn506pt8ejuq83di341hur.apps.googleusercontent.com",
        "client_secret": USER_CLIENT_SECRET,
        "refresh_token": USER_REFRESH_TOKEN,
        "token_uri": token_uri,
    })
    .to_string()
}

/// An `external_account` file exchanging at `sts` (a token URL) what `source` gives.
fn external_account_json(sts: &str, source: serde_json::Value) -> String {
    serde_json::json!({
        "type": "external_account",
        "audience": POOL_AUDIENCE,
        "subject_token_type": JWT_TOKEN_TYPE,
        "token_url": sts,
        "credential_source": source,
    })
    .to_string()
}

/// The lines of the test key's PEM body: none may ever be printed.
fn private_key_lines() -> Vec<&'static str> {
    test_keys::RSA_PRIVATE
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect()
}

/// The claims of a JWT `assertion`.
fn claims(assertion: &str) -> serde_json::Value {
    let payload = assertion.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// A fake metadata server: its probe (`GET /`) and the default service account's token, each
/// only when asked with `Metadata-Flavor: Google`, and answered with it.
async fn metadata_fake() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/"))
        .and(header("Metadata-Flavor", "Google"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Metadata-Flavor", "Google")
                .set_body_string("computeMetadata/\n"),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(METADATA_TOKEN_PATH))
        .and(header("Metadata-Flavor", "Google"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Metadata-Flavor", "Google")
                .set_body_json(serde_json::json!({
                    "access_token": ACCESS_TOKEN,
                    "expires_in": 3599,
                    "token_type": "Bearer",
                })),
        )
        .mount(&server)
        .await;
    server
}

/// `--google-credentials` with a service account key file signs a JWT bearer assertion for
/// `--scope` (cloud-platform without one) at the file's token_uri, and with an authorized_user
/// file refreshes its refresh token there; `-v` says whose credentials they are, and neither
/// the private key, the refresh token, the client secret, the assertion nor the token shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_credentials_files_get_tokens_at_their_token_uri() {
    let mock = token_server("/token").await;
    let dir = TempDir::new("google-files");
    let token_uri = format!("{}/token", mock.uri());
    let api = format!("{}/api/items", mock.uri());
    let account = dir.write("sa.json", &service_account_json(&token_uri));
    let user = dir.write("user.json", &authorized_user_json(&token_uri));
    let mut secrets = private_key_lines();
    secrets.extend([USER_CLIENT_SECRET, USER_REFRESH_TOKEN, ACCESS_TOKEN]);

    for extra in [
        "--scope https://www.googleapis.com/auth/pubsub --google-credential-type service_account",
        "--output json",
    ] {
        let mut args = cli("--google-credentials {} -v {}", [&account, &api]);
        args.extend(extra.split_whitespace().map(str::to_owned));
        let out = fetch(&args).await;
        out.assert_code(0);
        out.assert_no_secrets(&secrets);
        assert!(
            out.stderr.contains(&format!(
                "token: Google credentials: service_account {ROBOT}"
            )),
            "{out:#?}"
        );
        assert!(out.stderr.contains("token: fetched"), "{out:#?}");
        assert!(out.stdout.contains("hello from the API"), "{out:#?}");
    }
    let forms = forms_at(&mock, "/token").await;
    assert_eq!(forms.len(), 2);
    for (form, scope) in forms
        .iter()
        .zip(["https://www.googleapis.com/auth/pubsub", CLOUD_PLATFORM])
    {
        assert_eq!(
            field(form, "grant_type"),
            Some(JWT_BEARER_GRANT),
            "{form:?}"
        );
        let assertion = field(form, "assertion").unwrap();
        let claims = claims(assertion);
        assert_eq!(claims["iss"], ROBOT);
        assert_eq!(claims["aud"], token_uri.as_str());
        assert_eq!(claims["scope"], scope);
        assert_eq!(field(form, "client_secret"), None, "{form:?}");
    }
    let assertion = field(&forms[0], "assertion").unwrap().to_owned();

    let out = fetch(&cli(
        "--google-credentials {} --google-credential-type authorized_user \
         --google-credential-type service_account -v {}",
        [&user, &api],
    ))
    .await;
    out.assert_code(0);
    out.assert_no_secrets(&secrets);
    out.assert_no_secrets(&[&assertion]);
    assert!(
        out.stderr
            .contains("token: Google credentials: authorized_user 764086051850"),
        "{out:#?}"
    );
    let forms = forms_at(&mock, "/token").await;
    assert_eq!(forms.len(), 3);
    assert_eq!(field(&forms[2], "grant_type"), Some("refresh_token"));
    assert_eq!(field(&forms[2], "refresh_token"), Some(USER_REFRESH_TOKEN));
}

/// An external_account file whose source is a token file is exchanged at its STS (here a
/// loopback wiremock) for the scopes; one whose source is a program runs it only with
/// `--allow-executables`, and without it is refused before anything runs or is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_account_file_exchanges_its_token_and_runs_programs_only_when_allowed() {
    let mock = token_server("/v1/token").await;
    let dir = TempDir::new("google-external");
    let sts = format!("{}/v1/token", mock.uri());
    let api = format!("{}/api/items", mock.uri());
    let subject = platform_token("k8s-workload", 600);
    let token_file = dir.write("k8s-token", &subject);
    let file = dir.write(
        "external.json",
        &external_account_json(&sts, serde_json::json!({ "file": token_file })),
    );

    let out = fetch(&cli(
        "--google-credentials {} --google-credential-type external_account -v {}",
        [&file, &api],
    ))
    .await;
    out.assert_code(0);
    out.assert_no_secrets(&[&subject, ACCESS_TOKEN]);
    assert!(out.stderr.contains("token: fetched"), "{out:#?}");
    let forms = forms_at(&mock, "/v1/token").await;
    assert_eq!(forms.len(), 1);
    assert_eq!(field(&forms[0], "grant_type"), Some(TOKEN_EXCHANGE_GRANT));
    assert_eq!(field(&forms[0], "subject_token"), Some(subject.as_str()));
    assert_eq!(field(&forms[0], "subject_token_type"), Some(JWT_TOKEN_TYPE));
    assert_eq!(field(&forms[0], "audience"), Some(POOL_AUDIENCE));
    assert_eq!(field(&forms[0], "scope"), Some(CLOUD_PLATFORM));

    // A program as the source: refused without --allow-executables, run with it.
    let marker = dir.path().join("ran");
    let from_program = platform_token("from-program", 600);
    let expires = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let program = dir.write(
        "get-token",
        &format!(
            "#!/bin/sh\ntouch '{}'\necho '{{\"version\": 1, \"success\": true, \"token_type\": \
             \"{JWT_TOKEN_TYPE}\", \"id_token\": \"{from_program}\", \"expiration_time\": \
             {expires}}}'\n",
            marker.display()
        ),
    );
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let file = dir.write(
        "executable.json",
        &external_account_json(
            &sts,
            serde_json::json!({ "executable": { "command": program, "timeout_millis": 5000 } }),
        ),
    );
    let refused = fetch(&cli("--google-credentials {} -v {}", [&file, &api])).await;
    refused.assert_usage_error(&["--google-credentials", "--allow-executables"]);
    // GOOGLE_APPLICATION_CREDENTIALS naming it: the same for --google-adc.
    let home = TempDir::new("google-external-home");
    let refused = fetch_with(
        &cli("--google-adc {}", [&api]),
        &[
            ("GOOGLE_APPLICATION_CREDENTIALS", file.as_str()),
            ("HOME", home.path().to_str().unwrap()),
        ],
    )
    .await;
    refused.assert_usage_error(&["--google-adc", "--allow-executables"]);
    assert!(
        !marker.exists(),
        "a program ran without --allow-executables"
    );
    assert_eq!(forms_at(&mock, "/v1/token").await.len(), 1);

    let out = fetch(&cli(
        "--google-credentials {} --allow-executables -v {}",
        [&file, &api],
    ))
    .await;
    out.assert_code(0);
    out.assert_no_secrets(&[&from_program, ACCESS_TOKEN]);
    assert!(marker.exists(), "the allowed program did not run");
    let forms = forms_at(&mock, "/v1/token").await;
    assert_eq!(forms.len(), 2);
    assert_eq!(
        field(&forms[1], "subject_token"),
        Some(from_program.as_str())
    );
}

/// `--google-adc` reads the environment the library reads: GOOGLE_APPLICATION_CREDENTIALS
/// first (over gcloud's file and a metadata server that are there too), then gcloud's file in
/// CLOUDSDK_CONFIG, and with neither the metadata server at GCE_METADATA_HOST, asked and
/// believed with `Metadata-Flavor: Google`. With nothing there, a usage error lists each step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_adc_takes_the_first_of_the_environment_file_gcloud_and_the_metadata_server() {
    let account_server = token_server("/token").await;
    let user_server = token_server("/token").await;
    let metadata = metadata_fake().await;
    let api = format!("{}/api/items", account_server.uri());
    let home = TempDir::new("google-adc-home");
    let gcloud = home.path().join(".config/gcloud");
    std::fs::create_dir_all(&gcloud).unwrap();
    std::fs::write(
        gcloud.join("application_default_credentials.json"),
        authorized_user_json(&format!("{}/token", user_server.uri())),
    )
    .unwrap();
    let dir = TempDir::new("google-adc");
    let account = dir.write(
        "sa.json",
        &service_account_json(&format!("{}/token", account_server.uri())),
    );
    let home_dir = home.path().to_str().unwrap();
    let metadata_host = metadata.address().to_string();
    let mut secrets = private_key_lines();
    secrets.extend([USER_CLIENT_SECRET, USER_REFRESH_TOKEN, ACCESS_TOKEN]);

    // 1. GOOGLE_APPLICATION_CREDENTIALS, though gcloud's file and a metadata server are there.
    let out = fetch_with(
        &cli("--google-adc -v {}", [&api]),
        &[
            ("GOOGLE_APPLICATION_CREDENTIALS", account.as_str()),
            ("HOME", home_dir),
            ("GCE_METADATA_HOST", &metadata_host),
        ],
    )
    .await;
    out.assert_code(0);
    out.assert_no_secrets(&secrets);
    assert!(
        out.stderr.contains(&format!(
            "token: Google credentials: service_account {ROBOT} (GOOGLE_APPLICATION_CREDENTIALS"
        )),
        "{out:#?}"
    );
    let forms = forms_at(&account_server, "/token").await;
    assert_eq!(forms.len(), 1);
    assert_eq!(
        claims(field(&forms[0], "assertion").unwrap())["scope"],
        CLOUD_PLATFORM
    );
    assert!(forms_at(&user_server, "/token").await.is_empty());

    // 2. gcloud's file, in CLOUDSDK_CONFIG (HOME names an empty directory).
    let empty = TempDir::new("google-adc-empty");
    let out = fetch_with(
        &cli("--google-adc -v {}", [&api]),
        &[
            ("CLOUDSDK_CONFIG", gcloud.to_str().unwrap()),
            ("HOME", empty.path().to_str().unwrap()),
            ("GCE_METADATA_HOST", &metadata_host),
        ],
    )
    .await;
    out.assert_code(0);
    out.assert_no_secrets(&secrets);
    assert!(out.stderr.contains("(gcloud file"), "{out:#?}");
    let forms = forms_at(&user_server, "/token").await;
    assert_eq!(forms.len(), 1);
    assert_eq!(field(&forms[0], "refresh_token"), Some(USER_REFRESH_TOKEN));
    assert!(metadata.received_requests().await.unwrap().is_empty());

    // 3. Nothing else: the metadata server, with --scope.
    let out = fetch_with(
        &cli(
            "--google-adc --scope https://www.googleapis.com/auth/pubsub -v {}",
            [&api],
        ),
        &[
            ("HOME", empty.path().to_str().unwrap()),
            ("GCE_METADATA_HOST", &metadata_host),
        ],
    )
    .await;
    out.assert_code(0);
    out.assert_no_secrets(&[ACCESS_TOKEN]);
    assert!(
        out.stderr.contains(&format!(
            "token: Google credentials: default service account (metadata server http://{metadata_host})"
        )),
        "{out:#?}"
    );
    assert!(out.stderr.contains("token: fetched"), "{out:#?}");
    let asked: Vec<_> = metadata
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == METADATA_TOKEN_PATH)
        .collect();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].headers.get("metadata-flavor").unwrap(), "Google");
    assert!(
        asked[0]
            .url
            .query_pairs()
            .any(|(k, v)| k == "scopes" && v == "https://www.googleapis.com/auth/pubsub"),
        "{:?}",
        asked[0].url
    );

    // Nothing at all: every step and why, exit code 2, nothing sent.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let out = fetch_with(
        &cli("--google-adc {}", [&api]),
        &[
            ("HOME", empty.path().to_str().unwrap()),
            ("GCE_METADATA_HOST", &closed),
        ],
    )
    .await;
    out.assert_usage_error(&[
        "--google-adc",
        "none found",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "gcloud file",
        "metadata server",
    ]);
}

/// A Google credentials file of a type not named is refused before anything is sent, naming
/// the type it is and nothing from inside it; so is one GOOGLE_APPLICATION_CREDENTIALS names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_google_credentials_file_of_another_type_is_refused_naming_the_type() {
    let mock = token_server("/token").await;
    let dir = TempDir::new("google-type");
    let api = format!("{}/api/items", mock.uri());
    let user = dir.write(
        "user.json",
        &authorized_user_json(&format!("{}/token", mock.uri())),
    );
    let account = dir.write(
        "sa.json",
        &service_account_json(&format!("{}/token", mock.uri())),
    );
    let mut secrets = private_key_lines();
    secrets.extend([USER_CLIENT_SECRET, USER_REFRESH_TOKEN]);

    let out = fetch(&cli(
        "--google-credentials {} --google-credential-type service_account -v {}",
        [&user, &api],
    ))
    .await;
    out.assert_usage_error(&["--google-credentials", "authorized_user", "service_account"]);
    out.assert_no_secrets(&secrets);

    let out = fetch(&cli(
        "--google-credentials {} --google-credential-type external_account \
         --google-credential-type authorized_user {}",
        [&account, &api],
    ))
    .await;
    out.assert_usage_error(&["--google-credentials", "of type service_account"]);
    out.assert_no_secrets(&secrets);

    let home = TempDir::new("google-type-home");
    let out = fetch_with(
        &cli(
            "--google-adc --google-credential-type service_account {}",
            [&api],
        ),
        &[
            ("GOOGLE_APPLICATION_CREDENTIALS", user.as_str()),
            ("HOME", home.path().to_str().unwrap()),
        ],
    )
    .await;
    out.assert_usage_error(&["--google-adc", "authorized_user"]);
    out.assert_no_secrets(&secrets);

    // A type clap does not know, and a file that is not there.
    fetch(&cli(
        "--google-credentials {} --google-credential-type impersonated_service_account {}",
        [&user, &api],
    ))
    .await
    .assert_usage_error(&["--google-credential-type", "service_account"]);
    let missing = dir.path().join("missing.json");
    fetch(&cli(
        "--google-credentials {} {}",
        [missing.to_str().unwrap(), &api],
    ))
    .await
    .assert_usage_error(&["--google-credentials", "missing.json"]);
    assert!(forms_at(&mock, "/token").await.is_empty());
}

/// Google's credentials make their own token requests: another flow, the client's and the
/// endpoint's options, a store and the other sources are usage errors naming both, and
/// `--google-credential-type` and `--allow-executables` go with them only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_credentials_refuse_the_options_they_contradict_naming_both() {
    let mock = token_server("/token").await;
    let dir = TempDir::new("google-refused");
    let account = dir.write(
        "sa.json",
        &service_account_json(&format!("{}/token", mock.uri())),
    );
    let token = platform_token("refused", 600);
    let token_file = dir.write("token", &token);
    let key = dir.write("key.pem", test_keys::RSA_PRIVATE);
    let api = format!("{}/api/items", mock.uri());
    let token_url = format!("{}/token", mock.uri());
    let cache = dir.path().join("cache");
    let cases: &[(&str, &[&str])] = &[
        (
            "--google-adc --flow password",
            &["--flow password", "--google-adc"],
        ),
        (
            "--google-credentials {a} --flow token-exchange",
            &["--flow token-exchange", "--google-credentials"],
        ),
        (
            "--google-credentials {a} --flow jwt-bearer",
            &["--flow jwt-bearer", "--google-credentials"],
        ),
        (
            "--google-adc --client-id app",
            &["--client-id", "--google-adc"],
        ),
        (
            "--google-credentials {a} --client-secret hunter2-secret",
            &["--client-secret", "--google-credentials"],
        ),
        (
            "--google-adc --token-url {t}",
            &["--token-url", "--google-adc"],
        ),
        (
            "--google-adc --issuer https://issuer.example",
            &["--issuer", "--google-adc"],
        ),
        (
            "--google-adc --provider google --client-id app",
            &["--provider", "--google-adc"],
        ),
        (
            "--google-credentials {a} --key {k}",
            &["--key", "--google-credentials"],
        ),
        (
            "--google-adc --auth-method private-key-jwt",
            &["--auth-method", "--google-adc"],
        ),
        ("--google-adc --dpop", &["--dpop", "--google-adc"]),
        (
            "--google-adc --audience aud",
            &["--audience", "--google-adc"],
        ),
        ("--google-adc --cache {c}", &["--cache", "--google-adc"]),
        (
            "--google-adc --google-credentials {a}",
            &["--google-adc", "--google-credentials", "give one"],
        ),
        (
            "--assertion-file {f} --google-adc",
            &["--assertion-file", "--google-adc", "give one"],
        ),
        (
            "--google-credentials {a} --azure-workload-identity",
            &["--google-credentials", "--azure-workload-identity"],
        ),
        (
            "--token-url {t} --client-id app --assertion-file {f} --allow-executables",
            &[
                "--allow-executables",
                "--google-credentials",
                "--google-adc",
            ],
        ),
        (
            "--token-url {t} --client-id app --assertion-file {f} \
             --google-credential-type service_account",
            &[
                "--google-credential-type",
                "--google-credentials",
                "--google-adc",
            ],
        ),
    ];
    for (options, needles) in cases {
        let mut args: Vec<String> = options
            .split_whitespace()
            .map(|w| {
                w.replace("{a}", &account)
                    .replace("{f}", &token_file)
                    .replace("{k}", &key)
                    .replace("{t}", &token_url)
                    .replace("{c}", cache.to_str().unwrap())
            })
            .collect();
        args.push(api.clone());
        let out = fetch(&args).await;
        eprintln!("case: {options}");
        out.assert_usage_error(needles);
        let mut secrets = private_key_lines();
        secrets.extend([token.as_str(), "hunter2-secret"]);
        out.assert_no_secrets(&secrets);
    }

    // A client secret in the environment contradicts them as well; a Redis URL there is not
    // theirs to use, so it is left alone.
    let out = fetch_with(
        &cli("--google-credentials {} {}", [&account, &api]),
        &[("OAUTH_CLIENT_SECRET", "hunter2-secret")],
    )
    .await;
    out.assert_usage_error(&["OAUTH_CLIENT_SECRET", "--google-credentials"]);
    out.assert_no_secrets(&["hunter2-secret"]);
    assert!(forms_at(&mock, "/token").await.is_empty());
    let out = fetch_with(
        &cli("--google-credentials {} {}", [&account, &api]),
        &[("OAUTH_REDIS", "redis://:hunter2-secret@127.0.0.1:1/")],
    )
    .await;
    out.assert_code(0);
    out.assert_no_secrets(&["hunter2-secret", ACCESS_TOKEN]);
    assert!(!cache.exists());
}

/// `--help` lists the Google options, the default scope and what they do not go with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_describes_the_google_options() {
    let out = fetch(&["--help".to_owned()]).await;
    out.assert_code(0);
    let help = out.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in [
        "--google-adc",
        "--google-credentials <FILE>",
        "--google-credential-type <TYPE>",
        "--allow-executables",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "CLOUDSDK_CONFIG",
        "GCE_METADATA_HOST",
        "(default `https://www.googleapis.com/auth/cloud-platform`)",
        "go with the default flow only and not with --client-id, --client-secret, --key, \
         --token-url, --issuer or --provider",
    ] {
        assert!(help.contains(needle), "--help should say {needle:?}");
    }
}
