//! Google `external_account` credentials and the workload identity federation preset, against
//! fakes of the security token service and IAM Credentials on loopback: file, URL and
//! executable subject tokens (text and JSON formats), the RFC 8693 exchange, service account
//! impersonation, executables that run only when allowed, endpoints held to Google's domain,
//! and files of another type or for AWS refused. Tokens and secrets never show in Debug,
//! errors or logs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::logs::Captured;
use oauth_layer::credential::google::ExternalAccount;
use oauth_layer::credential::{FileSource, UrlSource};
use oauth_layer::{Error, ExposeSecret};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request as Seen, ResponseTemplate};

const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
const AUDIENCE: &str =
    "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/pool/providers/k8s";
const SA: &str = "robot@my-project.iam.gserviceaccount.com";
const IMPERSONATE_PATH: &str =
    "/v1/projects/-/serviceAccounts/robot@my-project.iam.gserviceaccount.com:generateAccessToken";

/// A JWT-shaped subject token (unsigned) with a marker to recognise it by.
fn jwt(marker: &str) -> String {
    let exp = (SystemTime::now() + Duration::from_secs(3600))
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(json!({"sub": marker, "exp": exp}).to_string());
    format!("{header}.{payload}.c2ln")
}

fn temp_dir(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "oauth-layer-google-{}-{}-{name}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn form(request: &Seen) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

fn field(request: &Seen, name: &str) -> Option<String> {
    form(request)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// A security token service answering `access_token` for any exchange, and IAM Credentials
/// answering `impersonated` to the holder of `access_token`.
async fn google_fake(access_token: &str, impersonated: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": access_token,
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "token_type": "Bearer",
            "expires_in": 3600,
        })))
        .mount(&server)
        .await;
    let expire = SystemTime::now() + Duration::from_secs(1800);
    let expire = format_rfc3339(expire);
    Mock::given(method("POST"))
        .and(path(IMPERSONATE_PATH))
        .and(header("authorization", format!("Bearer {access_token}")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"accessToken": impersonated, "expireTime": expire})),
        )
        .mount(&server)
        .await;
    server
}

fn format_rfc3339(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.250Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

async fn requests_to(server: &MockServer, to: &str) -> Vec<Seen> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == to)
        .collect()
}

/// An `external_account` document for `server` with `source` as its `credential_source`.
fn document(server: &MockServer, source: Value) -> Value {
    json!({
        "type": "external_account",
        "audience": AUDIENCE,
        "subject_token_type": JWT_TYPE,
        "token_url": format!("{}/v1/token", server.uri()),
        "credential_source": source,
    })
}

#[tokio::test]
async fn a_json_token_file_is_exchanged_at_sts_for_the_callers_scopes() {
    let server = google_fake("sts-token", "unused").await;
    let dir = temp_dir("json-file");
    let token_file = dir.join("token.json");
    let subject = jwt("k8s-subject");
    std::fs::write(
        &token_file,
        json!({"id_token": subject, "other": "x"}).to_string(),
    )
    .unwrap();
    let account = ExternalAccount::from_json(
        &document(
            &server,
            json!({"file": token_file, "format": {"type": "json", "subject_token_field_name": "id_token"}}),
        )
        .to_string(),
    )
    .unwrap();
    let source = account
        .token_source("https://www.googleapis.com/auth/devstorage.read_only")
        .unwrap();
    let token = source.token().await.unwrap();
    assert_eq!(token.access_token().expose_secret(), "sts-token");

    let seen = requests_to(&server, "/v1/token").await;
    assert_eq!(seen.len(), 1);
    let sts = &seen[0];
    assert_eq!(
        field(sts, "grant_type").as_deref(),
        Some("urn:ietf:params:oauth:grant-type:token-exchange")
    );
    assert_eq!(field(sts, "audience").as_deref(), Some(AUDIENCE));
    assert_eq!(
        field(sts, "requested_token_type").as_deref(),
        Some("urn:ietf:params:oauth:token-type:access_token")
    );
    assert_eq!(field(sts, "subject_token"), Some(subject));
    assert_eq!(field(sts, "subject_token_type").as_deref(), Some(JWT_TYPE));
    assert_eq!(
        field(sts, "scope").as_deref(),
        Some("https://www.googleapis.com/auth/devstorage.read_only")
    );
    // No client in the file: no client authentication at all, and no options.
    assert_eq!(field(sts, "client_id"), None);
    assert_eq!(field(sts, "options"), None);
    assert!(sts.headers.get("authorization").is_none());
}

#[tokio::test]
async fn a_text_token_file_is_reread_and_the_file_client_authenticates_with_basic() {
    let server = google_fake("sts-token", "unused").await;
    let dir = temp_dir("text-file");
    let token_file = dir.join("token");
    std::fs::write(&token_file, format!("{}\n", jwt("first"))).unwrap();
    let mut doc = document(
        &server,
        json!({"file": token_file, "format": {"type": "text"}}),
    );
    doc["client_id"] = json!("sts-client");
    doc["client_secret"] = json!("sts-S3CRET");
    let account = ExternalAccount::from_json(&doc.to_string()).unwrap();
    let source = account.token_source("").unwrap();
    source.token().await.unwrap();
    std::fs::write(&token_file, jwt("second")).unwrap();
    source.clear();
    source.token().await.unwrap();

    let seen = requests_to(&server, "/v1/token").await;
    assert_eq!(seen.len(), 2);
    assert_eq!(field(&seen[0], "subject_token"), Some(jwt("first")));
    assert_eq!(field(&seen[1], "subject_token"), Some(jwt("second")));
    // No scope asked: cloud-platform.
    assert_eq!(field(&seen[0], "scope").as_deref(), Some(CLOUD_PLATFORM));
    let basic = format!("Basic {}", STANDARD.encode("sts-client:sts-S3CRET"));
    assert_eq!(
        seen[0]
            .headers
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap(),
        basic
    );
}

#[tokio::test]
async fn a_workforce_pool_file_without_a_client_sends_its_user_project_as_options() {
    let server = google_fake("sts-token", "unused").await;
    let dir = temp_dir("workforce");
    let token_file = dir.join("token");
    std::fs::write(&token_file, jwt("person")).unwrap();
    let mut doc = document(&server, json!({"file": token_file}));
    doc["audience"] =
        json!("//iam.googleapis.com/locations/global/workforcePools/pool/providers/oidc");
    doc["workforce_pool_user_project"] = json!("billing-project");
    let account = ExternalAccount::from_json(&doc.to_string()).unwrap();
    account.token_source("").unwrap().token().await.unwrap();
    let seen = requests_to(&server, "/v1/token").await;
    let options: Value = serde_json::from_str(&field(&seen[0], "options").unwrap()).unwrap();
    assert_eq!(options, json!({"userProject": "billing-project"}));

    // A workload pool audience with a user project is a mistake, said at load.
    let mut wrong = document(&server, json!({"file": token_file}));
    wrong["workforce_pool_user_project"] = json!("billing-project");
    let err = ExternalAccount::from_json(&wrong.to_string()).unwrap_err();
    assert!(err.to_string().contains("not a workforce pool"), "{err}");
}

#[tokio::test]
async fn a_url_source_sends_its_headers_and_reads_the_json_field() {
    let server = google_fake("sts-token", "unused").await;
    let subject = jwt("from-url");
    Mock::given(method("GET"))
        .and(path("/identity"))
        .and(header("metadata", "true"))
        .and(header("authorization", "Bearer url-S3CRET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"access_token": subject})))
        .mount(&server)
        .await;
    let account = ExternalAccount::from_json(
        &document(
            &server,
            json!({
                "url": format!("{}/identity?resource=api", server.uri()),
                "headers": {"Metadata": "true", "Authorization": "Bearer url-S3CRET"},
                "format": {"type": "json", "subject_token_field_name": "access_token"},
            }),
        )
        .to_string(),
    )
    .unwrap();
    assert!(!format!("{account:?}").contains("url-S3CRET"));
    account.token_source("").unwrap().token().await.unwrap();
    let seen = requests_to(&server, "/v1/token").await;
    assert_eq!(field(&seen[0], "subject_token"), Some(subject));
}

#[tokio::test]
async fn impersonation_trades_the_federated_token_for_the_service_accounts() {
    let server = google_fake("federated-S3CRET", "impersonated-token").await;
    let dir = temp_dir("impersonation");
    let token_file = dir.join("token");
    std::fs::write(&token_file, jwt("k8s")).unwrap();
    let mut doc = document(&server, json!({"file": token_file}));
    doc["service_account_impersonation_url"] = json!(format!("{}{IMPERSONATE_PATH}", server.uri()));
    doc["service_account_impersonation"] = json!({"token_lifetime_seconds": 1800});
    let account = ExternalAccount::from_json(&doc.to_string()).unwrap();
    assert_eq!(account.service_account_email(), Some(SA));
    let token = account
        .token_source(
            "https://www.googleapis.com/auth/bigquery https://www.googleapis.com/auth/pubsub",
        )
        .unwrap()
        .token()
        .await
        .unwrap();
    assert_eq!(token.access_token().expose_secret(), "impersonated-token");
    // The answer's expireTime (in 30 minutes) decides the lifetime.
    let left = token
        .expires_at_utc()
        .duration_since(SystemTime::now())
        .unwrap();
    assert!(
        left > Duration::from_secs(1700) && left <= Duration::from_secs(1800),
        "{left:?}"
    );

    let sts = requests_to(&server, "/v1/token").await;
    assert_eq!(field(&sts[0], "scope").as_deref(), Some(CLOUD_PLATFORM));
    let iam = requests_to(&server, IMPERSONATE_PATH).await;
    assert_eq!(iam.len(), 1);
    let body: Value = serde_json::from_slice(&iam[0].body).unwrap();
    assert_eq!(
        body,
        json!({
            "scope": ["https://www.googleapis.com/auth/bigquery", "https://www.googleapis.com/auth/pubsub"],
            "lifetime": "1800s",
        })
    );
}

#[tokio::test]
async fn a_refused_impersonation_says_so_without_either_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "federated-S3CRET",
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "token_type": "Bearer",
            "expires_in": 3600,
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(IMPERSONATE_PATH))
        .respond_with(|request: &Seen| {
            let echoed = request
                .headers
                .get("authorization")
                .map(|h| h.to_str().unwrap().to_owned())
                .unwrap_or_default();
            ResponseTemplate::new(403).set_body_json(json!({"error": {
                "code": 403,
                "message": format!("Permission denied for {echoed}"),
                "status": "PERMISSION_DENIED",
            }}))
        })
        .mount(&server)
        .await;
    let dir = temp_dir("refused");
    let token_file = dir.join("token");
    let subject = jwt("subject-S3CRET");
    std::fs::write(&token_file, &subject).unwrap();
    let logs = Captured::default();
    let _guard = logs.install(tracing::Level::TRACE);
    let err = ExternalAccount::workload_identity_federation(
        "123",
        "pool",
        "k8s",
        FileSource::new(&token_file),
        JWT_TYPE,
    )
    .token_url(format!("{}/v1/token", server.uri()))
    .impersonation_url(format!("{}{IMPERSONATE_PATH}", server.uri()))
    .token_source("")
    .unwrap()
    .token()
    .await
    .unwrap_err();
    let text = format!("{err} {err:?} {}", logs.text());
    assert!(text.contains("PERMISSION_DENIED"), "{text}");
    assert!(text.contains("403"), "{text}");
    assert!(!text.contains("S3CRET"), "{text}");
    assert!(!text.contains(subject.split('.').nth(1).unwrap()), "{text}");
}

#[tokio::test]
async fn the_preset_builds_the_pool_audience_and_impersonates() {
    let server = google_fake("sts-token", "impersonated-token").await;
    let dir = temp_dir("preset");
    let token_file = dir.join("token");
    std::fs::write(&token_file, jwt("k8s")).unwrap();
    let google = ExternalAccount::workload_identity_federation(
        "123",
        "pool",
        "k8s",
        FileSource::new(&token_file),
        JWT_TYPE,
    )
    .impersonate(SA);
    assert_eq!(google.audience(), AUDIENCE);
    assert_eq!(google.service_account_email(), Some(SA));
    // Pointed at the fakes, as a private endpoint would be.
    let token = google
        .token_url(format!("{}/v1/token", server.uri()))
        .impersonation_url(format!("{}{IMPERSONATE_PATH}", server.uri()))
        .token_source("https://www.googleapis.com/auth/bigquery")
        .unwrap()
        .token()
        .await
        .unwrap();
    assert_eq!(token.access_token().expose_secret(), "impersonated-token");
    let sts = requests_to(&server, "/v1/token").await;
    assert_eq!(field(&sts[0], "audience").as_deref(), Some(AUDIENCE));

    // GitHub Actions as the source, from an injected environment.
    let github =
        UrlSource::github_actions_from_env_lookup(format!("https:{AUDIENCE}"), |name| match name {
            "ACTIONS_ID_TOKEN_REQUEST_URL" => Some(format!("{}/gh", server.uri())),
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN" => Some("gh-request-token".into()),
            _ => None,
        })
        .unwrap();
    let subject = jwt("github");
    Mock::given(method("GET"))
        .and(path("/gh"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": subject})))
        .mount(&server)
        .await;
    ExternalAccount::workload_identity_federation("123", "pool", "k8s", github, JWT_TYPE)
        .token_url(format!("{}/v1/token", server.uri()))
        .token_source("")
        .unwrap()
        .token()
        .await
        .unwrap();
    let sts = requests_to(&server, "/v1/token").await;
    assert_eq!(field(&sts[1], "subject_token"), Some(subject));
}

/// Writes an executable shell script named `name` in `dir`.
#[cfg(unix)]
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn in_an_hour_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600
}

#[cfg(unix)]
#[tokio::test]
async fn an_allowed_executable_runs_with_googles_environment_and_no_shell() {
    let server = google_fake("sts-token", "impersonated-token").await;
    let dir = temp_dir("executable");
    let seen = dir.join("seen");
    let output_file = dir.join("cache.json");
    let subject = jwt("from-program");
    let program = script(
        &dir,
        "get-token",
        &format!(
            "printf '%s\\n' \"$@\" \"$GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE\" \
             \"$GOOGLE_EXTERNAL_ACCOUNT_TOKEN_TYPE\" \"$GOOGLE_EXTERNAL_ACCOUNT_INTERACTIVE\" \
             \"$GOOGLE_EXTERNAL_ACCOUNT_IMPERSONATED_EMAIL\" \"$GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE\" > {seen}\n\
             echo '{{\"version\": 1, \"success\": true, \"token_type\": \"{ID_TOKEN_TYPE}\", \
             \"id_token\": \"{subject}\", \"expiration_time\": {exp}}}'",
            seen = seen.display(),
            exp = in_an_hour_unix(),
        ),
    );
    let mut doc = document(
        &server,
        json!({"executable": {
            "command": format!("{} --flag  $(not-run) ;x", program.display()),
            "timeout_millis": 5000,
            "output_file": output_file,
        }}),
    );
    doc["service_account_impersonation_url"] = json!(format!("{}{IMPERSONATE_PATH}", server.uri()));
    let account = ExternalAccount::from_json(&doc.to_string())
        .unwrap()
        .allow_executables(true);
    account.token_source("").unwrap().token().await.unwrap();

    let lines: Vec<String> = std::fs::read_to_string(&seen)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        lines,
        [
            "--flag",
            "$(not-run)",
            ";x",
            AUDIENCE,
            JWT_TYPE,
            "0",
            SA,
            &output_file.display().to_string(),
        ]
    );
    let sts = requests_to(&server, "/v1/token").await;
    assert_eq!(field(&sts[0], "subject_token"), Some(subject));
}

#[cfg(unix)]
#[tokio::test]
async fn an_unexpired_output_file_is_used_without_running_the_program() {
    let server = google_fake("sts-token", "unused").await;
    let dir = temp_dir("output-file");
    let marker = dir.join("ran");
    let output_file = dir.join("cache.json");
    let cached = jwt("cached");
    std::fs::write(
        &output_file,
        json!({"version": 1, "success": true, "token_type": JWT_TYPE, "id_token": cached,
               "expiration_time": in_an_hour_unix()})
        .to_string(),
    )
    .unwrap();
    let program = script(
        &dir,
        "get-token",
        &format!("touch {}\nexit 1", marker.display()),
    );
    let doc = document(
        &server,
        json!({"executable": {"command": program, "output_file": output_file}}),
    );
    let account = ExternalAccount::from_json(&doc.to_string())
        .unwrap()
        .allow_executables(true);
    let source = account.token_source("").unwrap();
    source.token().await.unwrap();
    assert!(
        !marker.exists(),
        "the program ran despite a valid cached answer"
    );
    let sts = requests_to(&server, "/v1/token").await;
    assert_eq!(field(&sts[0], "subject_token"), Some(cached));

    // Expired: the program runs (and its failure is reported with its code and message).
    std::fs::write(
        &output_file,
        json!({"version": 1, "success": true, "token_type": JWT_TYPE, "id_token": jwt("old"),
               "expiration_time": 1000})
        .to_string(),
    )
    .unwrap();
    let program = script(
        &dir,
        "refuse",
        &format!(
            "touch {}\necho '{{\"version\": 1, \"success\": false, \"code\": \"401\", \"message\": \"Caller not authorized.\"}}'",
            marker.display()
        ),
    );
    let doc = document(
        &server,
        json!({"executable": {"command": program, "output_file": output_file}}),
    );
    let err = ExternalAccount::from_json(&doc.to_string())
        .unwrap()
        .allow_executables(true)
        .token_source("")
        .unwrap()
        .token()
        .await
        .unwrap_err();
    assert!(marker.exists());
    assert!(err.to_string().contains("401"), "{err}");
    assert!(err.to_string().contains("Caller not authorized."), "{err}");
}

#[cfg(unix)]
#[tokio::test(start_paused = true)]
async fn a_hanging_executable_is_killed_at_its_timeout() {
    let dir = temp_dir("hanging");
    let program = script(&dir, "hang", "exec sleep 600");
    let doc = json!({
        "type": "external_account",
        "audience": AUDIENCE,
        "subject_token_type": JWT_TYPE,
        "token_url": "http://127.0.0.1:9/v1/token",
        "credential_source": {"executable": {"command": program, "timeout_millis": 5000}},
    });
    let started = std::time::Instant::now();
    // Tokio's paused clock reaches the 5 s deadline as soon as the runtime waits.
    let err = ExternalAccount::from_json(&doc.to_string())
        .unwrap()
        .allow_executables(true)
        .token_source("")
        .unwrap()
        .token()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("was killed"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[cfg(unix)]
#[tokio::test]
async fn an_executable_never_runs_unless_the_caller_allowed_it() {
    let dir = temp_dir("disallowed");
    let marker = dir.join("ran");
    let program = script(&dir, "get-token", &format!("touch {}", marker.display()));
    let doc = json!({
        "type": "external_account",
        "audience": AUDIENCE,
        "subject_token_type": JWT_TYPE,
        "token_url": "https://sts.googleapis.com/v1/token",
        "credential_source": {"executable": {"command": program}},
    })
    .to_string();
    let path = dir.join("credentials.json");
    std::fs::write(&path, &doc).unwrap();
    for account in [
        ExternalAccount::from_json(&doc).unwrap(),
        ExternalAccount::from_file(&path).unwrap(),
        ExternalAccount::from_file(&path)
            .unwrap()
            .allow_executables(false),
        ExternalAccount::from_file(&path)
            .unwrap()
            .allow_executables(true)
            .allow_executables(false),
    ] {
        let err = account.token_source("").unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
        assert!(
            err.to_string().contains("executables are not allowed"),
            "{err}"
        );
        assert!(err.to_string().contains("allow_executables(true)"), "{err}");
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!marker.exists(), "a disallowed executable ran");
}

#[test]
fn a_file_of_another_type_is_refused_naming_the_type_not_the_content() {
    let key = json!({
        "type": "service_account",
        "private_key": "-----BEGIN PRIVATE KEY-----\nS3CRET\n-----END PRIVATE KEY-----\n",
        "client_email": "x@y.iam.gserviceaccount.com",
    });
    let err = ExternalAccount::from_json(&key.to_string()).unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(text.contains("\"service_account\""), "{text}");
    assert!(text.contains("external_account"), "{text}");
    assert!(
        !text.contains("S3CRET") && !text.contains("PRIVATE KEY"),
        "{text}"
    );

    let weird = json!({"type": "<script>S3CRET</script>"});
    let err = ExternalAccount::from_json(&weird.to_string()).unwrap_err();
    assert!(!err.to_string().contains("S3CRET"), "{err}");
    let err = ExternalAccount::from_json(r#"{"audience": "x"}"#).unwrap_err();
    assert!(err.to_string().contains("no string \"type\""), "{err}");
}

#[test]
fn malformed_files_are_refused_without_quoting_them() {
    let base = json!({
        "type": "external_account",
        "audience": AUDIENCE,
        "subject_token_type": JWT_TYPE,
        "credential_source": {"file": "/var/run/token"},
    });
    let cases: Vec<(Value, &str)> = vec![
        (json!({"audience": 12345678}), "audience is not a string"),
        (json!({"audience": null}), "audience is missing"),
        (
            json!({"credential_source": "S3CRET"}),
            "credential_source is missing or not an object",
        ),
        (
            json!({"credential_source": {"file": "/a", "url": "https://x.googleapis.com/S3CRET"}}),
            "file and url; exactly one",
        ),
        (
            json!({"credential_source": {}}),
            "none of file, url or executable",
        ),
        (
            json!({"credential_source": {"executable": {"command": "x", "timeout_millis": 1000}}}),
            "timeout_millis must be a whole number from 5000 to 120000",
        ),
        (
            json!({"credential_source": {"executable": {"command": "x", "timeout_millis": 120001}}}),
            "from 5000 to 120000",
        ),
        (
            json!({"credential_source": {"file": "/a", "format": {"type": "json"}}}),
            "subject_token_field_name is missing",
        ),
        (
            json!({"credential_source": {"file": "/a", "format": {"type": "S3CRET"}}}),
            "must be \"text\" or \"json\"",
        ),
        (
            json!({"service_account_impersonation": {"token_lifetime_seconds": 100}}),
            "from 600 to 43200",
        ),
        (
            json!({"client_secret": ["S3CRET"]}),
            "client_secret is not a string",
        ),
    ];
    for (change, expected) in cases {
        let mut doc = base.clone();
        for (k, v) in change.as_object().unwrap() {
            doc[k] = v.clone();
        }
        let err = ExternalAccount::from_json(&doc.to_string()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(expected), "{expected}: {text}");
        assert!(
            !text.contains("S3CRET") && !text.contains("12345678"),
            "{text}"
        );
    }
    let err = ExternalAccount::from_json(r#"{"type": "external_account", "audience": S3CRET}"#)
        .unwrap_err();
    assert!(err.to_string().contains("not JSON (line 1"), "{err}");
    assert!(!err.to_string().contains("S3CRET"), "{err}");
    let huge = format!(
        "{{\"type\": \"external_account\", \"pad\": \"{}\"}}",
        "x".repeat(70_000)
    );
    let err = ExternalAccount::from_json(&huge).unwrap_err();
    assert!(err.to_string().contains("over 65536 bytes"), "{err}");
    let dir = temp_dir("huge");
    std::fs::write(dir.join("big.json"), &huge).unwrap();
    let err = ExternalAccount::from_file(dir.join("big.json")).unwrap_err();
    assert!(err.to_string().contains("65536-byte limit"), "{err}");
    let err = ExternalAccount::from_file(&dir).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
}

#[test]
fn aws_and_certificate_sources_are_refused_as_out_of_scope() {
    let aws = json!({
        "type": "external_account",
        "audience": AUDIENCE,
        "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
        "token_url": "https://sts.googleapis.com/v1/token",
        "credential_source": {
            "environment_id": "aws1",
            "region_url": "http://169.254.169.254/latest/meta-data/placement/availability-zone",
            "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
        },
    });
    let err = ExternalAccount::from_json(&aws.to_string()).unwrap_err();
    assert!(err.to_string().contains("AWS"), "{err}");
    assert!(err.to_string().contains("out of scope"), "{err}");
    let mut certificate = aws.clone();
    certificate["credential_source"] =
        json!({"certificate": {"use_default_certificate_config": true}});
    let err = ExternalAccount::from_json(&certificate.to_string()).unwrap_err();
    assert!(err.to_string().contains("not supported"), "{err}");
}

#[test]
fn endpoints_off_googles_domain_or_without_tls_are_refused() {
    let with = |name: &str, url: &str| {
        let mut doc = json!({
            "type": "external_account",
            "audience": AUDIENCE,
            "subject_token_type": JWT_TYPE,
            "token_url": "https://sts.googleapis.com/v1/token",
            "credential_source": {"file": "/var/run/token"},
        });
        doc[name] = json!(url);
        ExternalAccount::from_json(&doc.to_string())
    };
    for (name, url, expected) in [
        (
            "token_url",
            "http://sts.googleapis.com/v1/token",
            "must be https",
        ),
        (
            "token_url",
            "https://evil.example/v1/token",
            "not on \"googleapis.com\"",
        ),
        (
            "token_url",
            "https://googleapis.com.evil.example/v1/token",
            "not on",
        ),
        ("token_url", "https://evilgoogleapis.com/v1/token", "not on"),
        (
            "token_url",
            "https://user@sts.googleapis.com/v1/token",
            "not on",
        ),
        (
            "service_account_impersonation_url",
            "https://evil.example/x:generateAccessToken",
            "not on",
        ),
        (
            "service_account_impersonation_url",
            "http://iamcredentials.googleapis.com/x",
            "must be https",
        ),
    ] {
        let err = with(name, url).unwrap_err();
        assert!(err.to_string().contains(expected), "{url}: {err}");
    }
    for url in [
        "https://sts.googleapis.com/v1/token",
        "https://sts-private.p.googleapis.com/v1/token",
        "http://127.0.0.1:8080/v1/token",
        "http://[::1]:8080/v1/token",
    ] {
        with("token_url", url).unwrap().token_source("").unwrap();
    }

    // Setters on a loaded or preset account are checked when the token source is made.
    let preset = || {
        ExternalAccount::workload_identity_federation(
            "1",
            "p",
            "k",
            FileSource::new("/t"),
            JWT_TYPE,
        )
    };
    let err = preset()
        .token_url("https://evil.example/t")
        .token_source("")
        .unwrap_err();
    assert!(err.to_string().contains("not on"), "{err}");
    let err = preset()
        .impersonation_url("https://evil.example/sa:generateAccessToken")
        .token_source("")
        .unwrap_err();
    assert!(err.to_string().contains("not on"), "{err}");
    let err = preset()
        .impersonate(SA)
        .token_lifetime(Duration::from_secs(60))
        .token_source("")
        .unwrap_err();
    assert!(err.to_string().contains("600 to 43200"), "{err}");

    // A file naming another universe loads, but works only for a caller trusting that universe.
    let other = json!({
        "type": "external_account",
        "audience": AUDIENCE,
        "subject_token_type": JWT_TYPE,
        "universe_domain": "evil.example",
        "credential_source": {"file": "/var/run/token"},
    })
    .to_string();
    let err = ExternalAccount::from_json(&other)
        .unwrap()
        .token_source("")
        .unwrap_err();
    assert!(err.to_string().contains("universe"), "{err}");
    ExternalAccount::from_json(&other)
        .unwrap()
        .universe_domain("evil.example")
        .token_source("")
        .unwrap();
}

#[test]
fn an_azure_hosted_file_reads_the_instance_metadata_service_in_plain_http() {
    // What `gcloud iam workload-identity-pools create-cred-config --azure` writes: the subject
    // token comes from Azure's IMDS on its link-local address, the one plain http URL a
    // credential source may use. Any other plain http source host is refused at load.
    let with_url = |url: &str| {
        json!({
            "type": "external_account",
            "audience": AUDIENCE,
            "subject_token_type": JWT_TYPE,
            "token_url": "https://sts.googleapis.com/v1/token",
            "credential_source": {
                "url": url,
                "headers": {"Metadata": "True"},
                "format": {"type": "json", "subject_token_field_name": "access_token"},
            },
        })
        .to_string()
    };
    let azure = "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/azure";
    ExternalAccount::from_json(&with_url(azure))
        .unwrap()
        .token_source("")
        .unwrap();
    for refused in ["http://10.1.2.3/token", "http://imds.example/token"] {
        let err = ExternalAccount::from_json(&with_url(refused))
            .and_then(|account| account.token_source("").map(|_| ()))
            .unwrap_err();
        assert!(err.to_string().contains("https"), "{refused}: {err}");
    }
}

#[test]
fn cache_keys_bind_the_source_audience_account_and_scopes() {
    let key = |account: ExternalAccount, scopes: &str| {
        account.token_source(scopes).unwrap().cache_key().clone()
    };
    let base = || {
        ExternalAccount::workload_identity_federation(
            "1",
            "pool",
            "k8s",
            FileSource::new("/var/run/a"),
            JWT_TYPE,
        )
    };
    let reference = key(base(), "s1");
    assert_eq!(key(base(), "s1"), reference);
    let others = [
        key(base(), "s2"),
        key(
            ExternalAccount::workload_identity_federation(
                "1",
                "pool",
                "k8s",
                FileSource::new("/var/run/b"),
                JWT_TYPE,
            ),
            "s1",
        ),
        key(
            ExternalAccount::workload_identity_federation(
                "1",
                "pool",
                "other",
                FileSource::new("/var/run/a"),
                JWT_TYPE,
            ),
            "s1",
        ),
        key(base().impersonate(SA), "s1"),
        key(base().impersonate("other@p.iam.gserviceaccount.com"), "s1"),
        key(
            ExternalAccount::workload_identity_federation(
                "1",
                "pool",
                "k8s",
                UrlSource::new("https://token.example/a")
                    .unwrap()
                    .header("Authorization", "Bearer one"),
                JWT_TYPE,
            ),
            "s1",
        ),
        key(
            ExternalAccount::workload_identity_federation(
                "1",
                "pool",
                "k8s",
                UrlSource::new("https://token.example/a")
                    .unwrap()
                    .header("Authorization", "Bearer two"),
                JWT_TYPE,
            ),
            "s1",
        ),
    ];
    for (i, other) in others.iter().enumerate() {
        assert_ne!(other, &reference, "case {i}");
        for (j, another) in others.iter().enumerate().skip(i + 1) {
            assert_ne!(other, another, "cases {i} and {j}");
        }
    }
    assert!(!format!("{reference:?}").contains("Bearer"));
}

#[tokio::test]
async fn secrets_never_print_in_debug_errors_or_logs() {
    let logs = Captured::default();
    let _guard = logs.install(tracing::Level::TRACE);
    // A security token service that refuses and echoes everything it got.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/token"))
        .respond_with(|request: &Seen| {
            ResponseTemplate::new(400).set_body_json(json!({
                "error": "invalid_grant",
                "error_description": format!(
                    "{} {:?}",
                    String::from_utf8_lossy(&request.body),
                    request.headers.get("authorization")
                ),
            }))
        })
        .mount(&server)
        .await;
    let dir = temp_dir("secrets");
    let token_file = dir.join("token");
    let subject = jwt("subject-S3CRET");
    std::fs::write(&token_file, &subject).unwrap();
    let mut doc = document(&server, json!({"file": token_file}));
    doc["client_id"] = json!("sts-client");
    doc["client_secret"] = json!("client-S3CRET");
    let account = ExternalAccount::from_json(&doc.to_string()).unwrap();
    let source = account.token_source("").unwrap();
    let err = source.token().await.unwrap_err();
    let text = format!("{account:?} {source:?} {err} {err:?} {}", logs.text());
    assert!(text.contains("invalid_grant"), "{text}");
    assert!(!text.contains("S3CRET"), "{text}");
    assert!(!text.contains(subject.split('.').nth(1).unwrap()), "{text}");
    assert!(
        !text.contains(&STANDARD.encode("sts-client:client-S3CRET")),
        "{text}"
    );

    // An executable's arguments may carry something private: only the program prints.
    let executable = document(
        &server,
        json!({"executable": {"command": "/usr/bin/get-token --password=arg-S3CRET"}}),
    );
    let account = ExternalAccount::from_json(&executable.to_string())
        .unwrap()
        .allow_executables(true);
    let source = account.token_source("").unwrap();
    let text = format!("{account:?} {source:?}");
    assert!(text.contains("get-token"), "{text}");
    assert!(!text.contains("S3CRET"), "{text}");
}

#[tokio::test]
async fn an_expired_or_unreadable_subject_token_never_reaches_sts() {
    let server = google_fake("sts-token", "unused").await;
    let dir = temp_dir("expired");
    let token_file = dir.join("token.json");
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256"}"#);
    let payload = URL_SAFE_NO_PAD.encode(json!({"sub": "old", "exp": 1000}).to_string());
    let expired = format!("{header}.{payload}.c2ln");
    std::fs::write(&token_file, json!({"token": expired}).to_string()).unwrap();
    let doc = document(
        &server,
        json!({"file": token_file, "format": {"type": "json", "subject_token_field_name": "token"}}),
    );
    // A new token source each time: one remembers a failure for a while.
    let source = || {
        ExternalAccount::from_json(&doc.to_string())
            .unwrap()
            .token_source("")
            .unwrap()
    };
    let err = source().token().await.unwrap_err();
    assert!(matches!(err, Error::Credential { .. }), "{err:?}");
    assert!(err.to_string().contains("exp has passed"), "{err}");

    // The JSON member missing, or the file not JSON: the error names the member, never the
    // content.
    std::fs::write(&token_file, json!({"other": "content-S3CRET"}).to_string()).unwrap();
    let err = source().token().await.unwrap_err();
    assert!(err.to_string().contains("\"token\""), "{err}");
    std::fs::write(&token_file, "plain-S3CRET").unwrap();
    let err = source().token().await.unwrap_err();
    assert!(err.to_string().contains("not JSON"), "{err}");
    assert!(!err.to_string().contains("S3CRET"), "{err}");
    assert!(requests_to(&server, "/v1/token").await.is_empty());

    // Once the file is good, the token is fetched once and then served from the cache.
    std::fs::write(&token_file, json!({"token": jwt("fresh")}).to_string()).unwrap();
    let source = source();
    source.token().await.unwrap();
    source.token().await.unwrap();
    assert_eq!(requests_to(&server, "/v1/token").await.len(), 1);
}
