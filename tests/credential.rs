//! Workload identity credentials (SECURITY.md rule 53): token files re-read for every request
//! (rotated in place, k8s-style symlinks), JWTs past their own `exp` never sent, URL sources
//! under the back-channel rules (GitHub Actions), commands without a shell and with a deadline,
//! chains that say what they tried, and the three uses: client assertion (token, PAR,
//! revocation, introspection, device), JWT bearer grant, token exchange subject; the Azure
//! preset from an injected environment. Credential values never show in Debug or errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::logs::Captured;
use oauth_layer::clock::ManualClock;
use oauth_layer::credential::{
    AzureWorkloadIdentity, CommandSource, Credential, CredentialSource, FileSource, FirstAvailable,
    ResponseFormat, UrlSource, from_fn,
};
use oauth_layer::flow::{
    AssertionGrant, AuthCode, ClientCredentials, DeviceCode, SubjectToken, TokenExchange,
};
use oauth_layer::{
    AuthMethod, Error, ExposeSecret, OAuthClient, RetryPolicy, SecretString, TokenRequest,
    TokenSource, TokenTypeHint,
};
use serde_json::json;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, Request as Seen, ResponseTemplate};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// A JWT-shaped credential (unsigned: the client never verifies it) expiring at `exp`, with a
/// marker to recognise it by.
fn jwt(marker: &str, exp: SystemTime) -> String {
    let exp = exp.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD
        .encode(json!({"iss": "https://k8s.example", "sub": marker, "exp": exp}).to_string());
    format!("{header}.{payload}.c2lnLW9mLXttYXJrZXJ9")
}

fn in_an_hour() -> SystemTime {
    SystemTime::now() + Duration::from_secs(3600)
}

/// A fresh, empty directory under the system's temp dir.
fn temp_dir(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "oauth-layer-credential-{}-{}-{name}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `content` at `path` the way agents do: a new file renamed over the old one.
fn rotate(path: &Path, content: &str) {
    let next = path.with_extension("next");
    std::fs::write(&next, content).unwrap();
    std::fs::rename(&next, path).unwrap();
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

async fn token_endpoint() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "at-from-the-fake",
            "token_type": "Bearer",
            "expires_in": 3600,
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
        })))
        .mount(&server)
        .await;
    server
}

fn assertion_client(
    server: &MockServer,
    source: impl CredentialSource,
    clock: &ManualClock,
) -> OAuthClient {
    OAuthClient::builder("workload")
        .token_url(format!("{}/token", server.uri()))
        .client_assertion(source)
        .clock(clock.clone())
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap()
}

async fn token_requests(server: &MockServer) -> Vec<Seen> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == "/token")
        .collect()
}

#[tokio::test]
async fn a_rotated_token_file_is_sent_at_the_next_request_without_a_restart() {
    let server = token_endpoint().await;
    let dir = temp_dir("rotated");
    let file = dir.join("token");
    let first = jwt("first", in_an_hour());
    std::fs::write(&file, format!("{first}\n")).unwrap();
    let client = assertion_client(&server, FileSource::new(&file), &ManualClock::new());
    assert_eq!(client.auth_method(), AuthMethod::PrivateKeyJwt);

    client
        .request_token(TokenRequest::new("client_credentials"))
        .await
        .unwrap();
    let second = jwt("second", in_an_hour());
    rotate(&file, &second);
    client
        .request_token(TokenRequest::new("client_credentials"))
        .await
        .unwrap();

    let seen = token_requests(&server).await;
    assert_eq!(seen.len(), 2);
    assert_eq!(
        field(&seen[0], "client_assertion").as_deref(),
        Some(first.as_str())
    );
    assert_eq!(
        field(&seen[1], "client_assertion").as_deref(),
        Some(second.as_str())
    );
    for request in &seen {
        assert_eq!(
            field(request, "client_assertion_type").as_deref(),
            Some(ASSERTION_TYPE)
        );
        assert_eq!(field(request, "client_id").as_deref(), Some("workload"));
        assert!(request.headers.get("authorization").is_none());
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_token_source_renews_with_the_rotated_file_and_never_sends_an_expired_one() {
    let server = token_endpoint().await;
    let dir = temp_dir("expiry");
    let file = dir.join("token");
    let clock = ManualClock::new();
    let short = jwt("short-lived", SystemTime::now() + Duration::from_secs(600));
    std::fs::write(&file, &short).unwrap();
    let client = assertion_client(&server, FileSource::new(&file), &clock);
    let source = TokenSource::new(client, ClientCredentials::new().scope("api"));
    source.token().await.unwrap();

    // The token and the file's JWT both expire; the file was not rotated (its agent is down).
    clock.advance(Duration::from_secs(3700));
    let err = source.token().await.unwrap_err();
    assert!(
        matches!(&err, Error::Credential { origin, .. } if origin.contains("token")),
        "{err:?}"
    );
    assert!(err.to_string().contains("exp has passed"), "{err}");
    assert!(!err.to_string().contains(&short) && !format!("{err:?}").contains(&short));
    assert_eq!(
        token_requests(&server).await.len(),
        1,
        "the expired assertion was never sent"
    );

    // The agent comes back and rotates it: once the failure is no longer remembered, the next
    // request uses the new one.
    clock.advance(oauth_layer::DEFAULT_FAILURE_MEMORY + Duration::from_secs(1));
    let renewed = jwt("renewed", clock_now(&clock) + Duration::from_secs(3600));
    rotate(&file, &renewed);
    source.token().await.unwrap();
    let seen = token_requests(&server).await;
    assert_eq!(
        field(seen.last().unwrap(), "client_assertion").as_deref(),
        Some(renewed.as_str())
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn clock_now(clock: &ManualClock) -> SystemTime {
    use oauth_layer::clock::Clock;
    clock.now_utc()
}

/// The `sub` of a JWT-shaped credential made by [`jwt`].
fn sub_of(credential: &Credential) -> String {
    let payload = credential
        .secret()
        .expose_secret()
        .split('.')
        .nth(1)
        .unwrap()
        .to_owned();
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["sub"].as_str().unwrap().to_owned()
}

#[cfg(unix)]
#[tokio::test]
async fn a_kubernetes_style_symlink_rotation_is_followed() {
    let dir = temp_dir("k8s");
    // token -> ..data/token, ..data -> ..2026_01, swapped to ..2026_02 as the kubelet does.
    for (version, marker) in [("..2026_01", "one"), ("..2026_02", "two")] {
        std::fs::create_dir(dir.join(version)).unwrap();
        std::fs::write(dir.join(version).join("token"), jwt(marker, in_an_hour())).unwrap();
    }
    std::os::unix::fs::symlink("..2026_01", dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/token", dir.join("token")).unwrap();
    let source = FileSource::new(dir.join("token"));
    assert_eq!(sub_of(&source.credential().await.unwrap()), "one");

    std::os::unix::fs::symlink("..2026_02", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    assert_eq!(sub_of(&source.credential().await.unwrap()), "two");
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(unix)]
#[tokio::test]
async fn a_token_file_replaced_by_a_fifo_a_directory_or_a_device_is_refused() {
    let dir = temp_dir("hostile");
    let file = dir.join("token");
    let source = FileSource::new(&file);

    // A FIFO would block a reader forever: refused without opening it.
    let status = std::process::Command::new("mkfifo")
        .arg(&file)
        .status()
        .unwrap();
    assert!(status.success());
    let err = tokio::time::timeout(Duration::from_secs(5), source.credential())
        .await
        .expect("a FIFO must not block the read")
        .unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
    std::fs::remove_file(&file).unwrap();

    // A symlink to a directory, and to a device.
    std::os::unix::fs::symlink(&dir, &file).unwrap();
    let err = source.credential().await.unwrap_err();
    assert!(err.to_string().contains("a directory"), "{err}");
    std::fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &file).unwrap();
    let err = source.credential().await.unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
    assert!(matches!(&err, Error::Credential { origin, .. } if origin.contains("token")));
    std::fs::remove_file(&file).unwrap();

    // A huge file is refused from its size; an empty one (whitespace only) too.
    let huge = std::fs::File::create(&file).unwrap();
    huge.set_len(1 << 30).unwrap();
    let err = source.credential().await.unwrap_err();
    assert!(
        err.to_string().contains("over the 65536-byte limit"),
        "{err}"
    );
    std::fs::write(&file, " \n\t").unwrap();
    let err = source.credential().await.unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
    std::fs::remove_file(&file).unwrap();
    let err = source.credential().await.unwrap_err();
    assert!(err.to_string().contains("cannot read it"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_token_file_replaced_by_a_symlink_to_another_file_reads_that_file() {
    // A symlink is followed wherever it points: the path is the trust boundary, and whoever
    // can replace it can as well write the file. What must hold is that it is still a
    // regular, small, non-empty file, checked above.
    let dir = temp_dir("symlink");
    let other = dir.join("other");
    std::fs::write(&other, jwt("other", in_an_hour())).unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&other, dir.join("token")).unwrap();
        let credential = FileSource::new(dir.join("token"))
            .credential()
            .await
            .unwrap();
        assert_eq!(sub_of(&credential), "other");
    }
    let _ = std::fs::remove_dir_all(dir);
}

async fn github_fake() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/token"))
        .and(header("authorization", "bearer gh-request-S3CRET"))
        .and(query_param("audience", "api://workload"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "count": 1, "value": jwt("github", in_an_hour()),
        })))
        .mount(&server)
        .await;
    for (route, response) in [
        (
            "/html",
            ResponseTemplate::new(200).set_body_raw("<!doctype html><p>sign in</p>", "text/html"),
        ),
        (
            "/huge",
            ResponseTemplate::new(200).set_body_string("x".repeat(2 << 20)),
        ),
        (
            "/redirect",
            ResponseTemplate::new(302).insert_header("location", "https://evil.example/"),
        ),
        (
            "/text",
            ResponseTemplate::new(200).set_body_string("plain-value-not-json"),
        ),
        (
            "/denied",
            ResponseTemplate::new(401).set_body_string("bad gh-request-S3CRET"),
        ),
    ] {
        Mock::given(method("GET"))
            .and(path(route))
            .respond_with(response)
            .mount(&server)
            .await;
    }
    server
}

fn github_env(url: String) -> impl Fn(&str) -> Option<String> {
    move |name| match name {
        "ACTIONS_ID_TOKEN_REQUEST_URL" => Some(url.clone()),
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN" => Some("gh-request-S3CRET".into()),
        _ => None,
    }
}

#[tokio::test]
async fn github_actions_sends_the_request_token_and_audience_and_reads_value() {
    let server = github_fake().await;
    let source = UrlSource::github_actions_from_env_lookup(
        "api://workload",
        github_env(format!("{}/token", server.uri())),
    )
    .unwrap();
    assert!(!format!("{source:?}").contains("gh-request-S3CRET"));
    let credential = source.credential().await.unwrap();
    assert_eq!(sub_of(&credential), "github");

    // Hostile answers: each refused with a clear error that never holds the request token.
    for (route, format, expected) in [
        ("/html", ResponseFormat::JsonField("value".into()), "HTML"),
        ("/html", ResponseFormat::Text, "HTML"),
        ("/huge", ResponseFormat::Text, "over"),
        ("/redirect", ResponseFormat::Text, "redirect"),
        (
            "/text",
            ResponseFormat::JsonField("value".into()),
            "not JSON",
        ),
        ("/denied", ResponseFormat::Text, "HTTP 401"),
    ] {
        let source = UrlSource::new(format!("{}{route}", server.uri()))
            .unwrap()
            .header("Authorization", "bearer gh-request-S3CRET")
            .format(format);
        let err = source.credential().await.unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(text.contains(expected), "{route}: {text}");
        assert!(!text.contains("gh-request-S3CRET"), "{route}: {text}");
        assert!(matches!(err, Error::Credential { .. }), "{route}: {err:?}");
    }
    // Plain http is for loopback alone.
    assert!(
        UrlSource::new("http://example.com/token").is_err(),
        "plain http off loopback"
    );

    let missing = UrlSource::github_actions_from_env_lookup("aud", |_| None).unwrap_err();
    assert!(
        missing.to_string().contains("ACTIONS_ID_TOKEN_REQUEST_URL"),
        "{missing}"
    );
}

#[tokio::test]
async fn a_command_prints_the_credential_without_a_shell() {
    let credential = CommandSource::new("/bin/echo")
        .arg("  from-a-command; not $(run)  ")
        .credential()
        .await
        .unwrap();
    assert_eq!(
        credential.secret().expose_secret(),
        "from-a-command; not $(run)"
    );
}

#[tokio::test]
async fn a_hanging_command_is_killed_at_its_timeout() {
    let started = std::time::Instant::now();
    let err = CommandSource::new("sleep")
        .arg("30")
        .timeout(Duration::from_millis(300))
        .credential()
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(err.to_string().contains("was killed"), "{err}");
    assert!(err.to_string().contains("command sleep"), "{err}");
}

#[tokio::test]
async fn a_failing_command_names_the_program_not_its_output() {
    // `ls` of a missing path exits non-zero; its message goes to stderr, never into the error.
    let err = CommandSource::new("ls")
        .arg("/no/such/path-S3CRET")
        .credential()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("command ls") && text.contains("failed"),
        "{text}"
    );
    assert!(!text.contains("S3CRET"), "{text}");
    let err = CommandSource::new("/no/such/program")
        .credential()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot start it"), "{err}");
}

#[tokio::test]
async fn first_available_takes_the_first_that_works_and_lists_every_failure() {
    let dir = temp_dir("chain");
    let file = dir.join("token");
    let chain = FirstAvailable::new([
        Box::new(FileSource::new(&file)) as Box<dyn CredentialSource>,
        Box::new(CommandSource::new("/no/such/program")),
    ])
    .or(from_fn("vault", || async {
        Err(Error::Credential {
            origin: "vault".into(),
            reason: "sealed".into(),
        })
    }));
    let err = chain.credential().await.unwrap_err();
    let text = err.to_string();
    for tried in [
        "file ",
        "command /no/such/program",
        "callback vault",
        "sealed",
    ] {
        assert!(text.contains(tried), "{tried} missing from {text}");
    }
    std::fs::write(&file, "from-the-file").unwrap();
    let chain = chain.or(from_fn("never", || async { panic!("not reached") }));
    assert_eq!(
        chain.credential().await.unwrap().secret().expose_secret(),
        "from-the-file"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_client_assertion_goes_to_par_revocation_introspection_and_device_too() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/par"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "request_uri": "urn:ietf:params:oauth:request_uri:abc", "expires_in": 60,
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/revoke"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/introspect"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"active": false})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/device"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "device_code": "dc", "user_code": "UC", "verification_uri": "https://idp.example/device",
            "expires_in": 600,
        })))
        .mount(&server)
        .await;
    let assertion = jwt("everywhere", in_an_hour());
    let value = assertion.clone();
    let client = OAuthClient::builder("workload")
        .token_url(format!("{}/token", server.uri()))
        .authorization_url(format!("{}/authorize", server.uri()))
        .par_url(format!("{}/par", server.uri()))
        .revocation_url(format!("{}/revoke", server.uri()))
        .introspection_url(format!("{}/introspect", server.uri()))
        .device_authorization_url(format!("{}/device", server.uri()))
        .client_assertion(from_fn("fixed", move || {
            let value = value.clone();
            async move { Ok(Credential::new(value)) }
        }))
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    AuthCode::new()
        .par(true)
        .authorization_request_pushed(&client, "http://127.0.0.1:9/cb")
        .await
        .unwrap();
    let token = SecretString::from("rt-to-revoke".to_owned());
    client
        .revoke(&token, TokenTypeHint::RefreshToken)
        .await
        .unwrap();
    client.introspect(&token, None).await.unwrap();
    DeviceCode::new()
        .device_authorization(&client)
        .await
        .unwrap();

    let seen = server.received_requests().await.unwrap();
    let paths: Vec<&str> = seen.iter().map(|r| r.url.path()).collect();
    assert_eq!(paths, ["/par", "/revoke", "/introspect", "/device"]);
    for request in &seen {
        assert_eq!(
            field(request, "client_assertion").as_deref(),
            Some(assertion.as_str()),
            "{}",
            request.url
        );
        assert_eq!(
            field(request, "client_assertion_type").as_deref(),
            Some(ASSERTION_TYPE)
        );
        assert_eq!(field(request, "client_id").as_deref(), Some("workload"));
    }
}

#[tokio::test]
async fn a_credential_is_the_jwt_bearer_grant_and_the_token_exchange_subject() {
    let server = token_endpoint().await;
    let dir = temp_dir("grants");
    let file = dir.join("token");
    let first = jwt("grant", in_an_hour());
    std::fs::write(&file, &first).unwrap();
    let client = OAuthClient::builder("svc")
        .secret("svc-secret")
        .token_url(format!("{}/token", server.uri()))
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();

    let grant = TokenSource::new(
        client.clone(),
        AssertionGrant::new(FileSource::new(&file)).scope("api"),
    );
    grant.token().await.unwrap();
    let exchange = TokenSource::new(
        client.clone(),
        TokenExchange::new(SubjectToken::credential(FileSource::new(&file), JWT_TYPE))
            .audience("backend"),
    );
    exchange.token().await.unwrap();
    // The cache key names the file, not the value it holds.
    let rotated = jwt("rotated", in_an_hour());
    rotate(&file, &rotated);
    let again = TokenSource::new(
        client,
        TokenExchange::new(SubjectToken::credential(FileSource::new(&file), JWT_TYPE))
            .audience("backend"),
    );
    assert_eq!(exchange.cache_key(), again.cache_key());
    assert!(!format!("{:?}", exchange.cache_key()).contains(&first));

    let seen = token_requests(&server).await;
    assert_eq!(
        field(&seen[0], "grant_type").as_deref(),
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    );
    assert_eq!(
        field(&seen[0], "assertion").as_deref(),
        Some(first.as_str())
    );
    assert_eq!(field(&seen[0], "scope").as_deref(), Some("api"));
    assert_eq!(
        field(&seen[1], "subject_token").as_deref(),
        Some(first.as_str())
    );
    assert_eq!(
        field(&seen[1], "subject_token_type").as_deref(),
        Some(JWT_TYPE)
    );

    // An expired subject is never sent.
    rotate(
        &file,
        &jwt("expired", SystemTime::now() - Duration::from_secs(5)),
    );
    let err = again.token().await.unwrap_err();
    assert!(matches!(err, Error::Credential { .. }), "{err:?}");
    assert_eq!(token_requests(&server).await.len(), 2);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_azure_preset_reads_its_environment_and_sends_the_federated_token() {
    let server = token_endpoint().await;
    let dir = temp_dir("azure");
    let file = dir.join("azure-identity-token");
    let federated = jwt("azure", in_an_hour());
    std::fs::write(&file, &federated).unwrap();
    let env = {
        let file = file.display().to_string();
        let host = format!("{}/", server.uri());
        move |name: &str| match name {
            "AZURE_FEDERATED_TOKEN_FILE" => Some(file.clone()),
            "AZURE_CLIENT_ID" => Some("app-guid".to_owned()),
            "AZURE_TENANT_ID" => Some("tenant-guid".to_owned()),
            "AZURE_AUTHORITY_HOST" => Some(host.clone()),
            _ => None,
        }
    };
    let azure = AzureWorkloadIdentity::from_env_lookup(&env).unwrap();
    assert_eq!(
        azure.token_url(),
        format!("{}/tenant-guid/oauth2/v2.0/token", server.uri())
    );
    let token = azure
        .token_source("https://graph.microsoft.com/.default")
        .unwrap()
        .token()
        .await;
    // The fake serves /token only; the path is checked here, the form below.
    assert!(token.is_err());
    let seen = server.received_requests().await.unwrap();
    assert_eq!(seen[0].url.path(), "/tenant-guid/oauth2/v2.0/token");
    assert_eq!(
        field(&seen[0], "client_assertion").as_deref(),
        Some(federated.as_str())
    );
    assert_eq!(field(&seen[0], "client_id").as_deref(), Some("app-guid"));
    assert_eq!(
        field(&seen[0], "grant_type").as_deref(),
        Some("client_credentials")
    );
    assert_eq!(
        field(&seen[0], "scope").as_deref(),
        Some("https://graph.microsoft.com/.default")
    );

    for missing in [
        "AZURE_FEDERATED_TOKEN_FILE",
        "AZURE_CLIENT_ID",
        "AZURE_TENANT_ID",
    ] {
        let err = AzureWorkloadIdentity::from_env_lookup(|name| {
            (name != missing).then(|| env(name)).flatten()
        })
        .unwrap_err();
        assert!(err.to_string().contains(missing), "{err}");
    }
    let default = AzureWorkloadIdentity::from_env_lookup(|name| {
        (name != "AZURE_AUTHORITY_HOST")
            .then(|| env(name))
            .flatten()
    })
    .unwrap();
    assert_eq!(
        default.token_url(),
        "https://login.microsoftonline.com/tenant-guid/oauth2/v2.0/token"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn credentials_and_header_tokens_never_print() {
    let secret = jwt("S3CRET-sub", in_an_hour());
    let credential = Credential::new(secret.clone());
    assert!(!format!("{credential:?}").contains(&secret));
    let url = UrlSource::new("https://broker.example/token?x=1")
        .unwrap()
        .header("Authorization", "Bearer header-S3CRET");
    assert!(!format!("{url:?}").contains("S3CRET"));
    let value = secret.clone();
    let client = OAuthClient::builder("c")
        .token_url("https://idp.example/token")
        .client_assertion(from_fn("cb", move || {
            let value = value.clone();
            async move { Ok(Credential::new(value)) }
        }))
        .build()
        .unwrap();
    assert!(!format!("{client:?}").contains(&secret));
    // The cache key names the assertion source, not its value.
    let keyed = |path: &str| {
        let client = OAuthClient::builder("c")
            .token_url("https://idp.example/token")
            .client_assertion(FileSource::new(path))
            .build()
            .unwrap();
        TokenSource::new(client, ClientCredentials::new())
            .cache_key()
            .clone()
    };
    assert_eq!(keyed("/run/a"), keyed("/run/a"));
    assert_ne!(keyed("/run/a"), keyed("/run/b"));
    let flow = TokenExchange::new(SubjectToken::credential(url, JWT_TYPE));
    assert!(!format!("{flow:?}").contains("S3CRET"));
}

#[tokio::test]
async fn credentials_and_header_tokens_never_reach_the_logs() {
    let logs = Captured::default();
    let _guard = logs.install(tracing::Level::TRACE);
    let secret = jwt("S3CRET-logged", in_an_hour());
    // A token endpoint that refuses and echoes what it got.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(|request: &Seen| {
            ResponseTemplate::new(400).set_body_json(json!({
                "error": "invalid_client",
                "error_description": String::from_utf8_lossy(&request.body),
            }))
        })
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/denied"))
        .respond_with(ResponseTemplate::new(401).set_body_string("bad header-S3CRET"))
        .mount(&server)
        .await;
    let value = secret.clone();
    let failing = UrlSource::new(format!("{}/denied", server.uri()))
        .unwrap()
        .header("Authorization", "Bearer header-S3CRET");
    let chain = FirstAvailable::new([Box::new(failing) as Box<dyn CredentialSource>]).or(from_fn(
        "fixed",
        move || {
            let value = value.clone();
            async move { Ok(Credential::new(value)) }
        },
    ));
    let client = assertion_client(&server, chain, &ManualClock::new());
    let err = client
        .request_token(TokenRequest::new("client_credentials"))
        .await
        .unwrap_err();
    let text = format!("{err} {err:?} {}", logs.text());
    assert!(logs.text().contains("credential source skipped"), "{text}");
    assert!(text.contains("invalid_client"), "{text}");
    assert!(!text.contains("S3CRET"), "{text}");
    let payload = secret.split('.').nth(1).unwrap();
    assert!(
        !text.contains(payload),
        "the assertion's payload leaked: {text}"
    );
}

#[test]
fn sources_that_could_yield_another_subjects_credential_never_share_a_cache_key() {
    let client = OAuthClient::builder("c")
        .token_url("https://idp.example/token")
        .build()
        .unwrap();
    // The key of a token exchange whose subject comes from `source`.
    fn keyed(client: &OAuthClient, source: impl CredentialSource) -> oauth_layer::store::CacheKey {
        TokenSource::new(
            client.clone(),
            TokenExchange::new(SubjectToken::credential(source, JWT_TYPE)),
        )
        .cache_key()
        .clone()
    }
    let exchange = |source| keyed(&client, source);
    let command = |user: &str| CommandSource::new("get-token").arg("--user").arg(user);
    assert_eq!(exchange(command("alice")), exchange(command("alice")));
    assert_ne!(exchange(command("alice")), exchange(command("bob")));

    let url = |audience: &str, token: &str| {
        UrlSource::new("https://ci.example/token")
            .unwrap()
            .query("audience", audience)
            .header("authorization", format!("bearer {token}"))
    };
    let by_url = |source| keyed(&client, source);
    assert_eq!(by_url(url("a", "t1")), by_url(url("a", "t1")));
    assert_ne!(by_url(url("a", "t1")), by_url(url("b", "t1")));
    assert_ne!(by_url(url("a", "t1")), by_url(url("a", "t2")));
    // The header's token is only digested: the key never shows it.
    let key = by_url(url("a", "hdr-S3CRET"));
    assert!(!format!("{key:?}").contains("hdr-S3CRET"));

    // The same holds for a client's assertion and for the JWT bearer grant.
    let assertion = |user: &str| {
        let client = OAuthClient::builder("c")
            .token_url("https://idp.example/token")
            .client_assertion(CommandSource::new("get-token").arg(user))
            .build()
            .unwrap();
        TokenSource::new(client, ClientCredentials::new())
            .cache_key()
            .clone()
    };
    assert_ne!(assertion("alice"), assertion("bob"));
    let grant = |user: &str| {
        TokenSource::new(
            client.clone(),
            AssertionGrant::new(CommandSource::new("get-token").arg(user)),
        )
        .cache_key()
        .clone()
    };
    assert_ne!(grant("alice"), grant("bob"));
}

/// A transport standing in for the machine's link-local metadata service: it records what the
/// crate asked for and forwards it to a local fake.
#[derive(Debug)]
struct LinkLocal {
    fake: String,
    seen: std::sync::Mutex<Vec<(String, Option<String>)>>,
    client: reqwest::Client,
}

#[async_trait::async_trait]
impl oauth_layer::transport::HttpTransport for LinkLocal {
    async fn send(
        &self,
        mut request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<oauth_layer::transport::ResponseBody>, oauth_layer::TransportError>
    {
        let metadata = request
            .headers()
            .get("metadata")
            .map(|v| v.to_str().unwrap().to_owned());
        self.seen
            .lock()
            .unwrap()
            .push((request.uri().to_string(), metadata));
        let path_and_query = request.uri().path_and_query().unwrap().as_str().to_owned();
        *request.uri_mut() = format!("{}{path_and_query}", self.fake).parse().unwrap();
        oauth_layer::transport::HttpTransport::send(&self.client, request).await
    }
}

#[tokio::test]
async fn an_instance_metadata_service_on_a_link_local_address_is_a_source_and_nothing_else() {
    // Azure's IMDS (and Google's metadata server) speak plain http on 169.254.169.254: a URL
    // source may use it, as Google's Azure-hosted external_account files do.
    let fake = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/metadata/identity/oauth2/token"))
        .and(header("metadata", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "imds-issued-token", "expires_in": "3599",
        })))
        .mount(&fake)
        .await;
    let imds = "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=api://gcp";
    let transport = std::sync::Arc::new(LinkLocal {
        fake: fake.uri(),
        seen: Default::default(),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    });
    let source = UrlSource::new(imds)
        .unwrap()
        .header("Metadata", "true")
        .format(ResponseFormat::JsonField("access_token".into()))
        .transport(SharedTransport(transport.clone()));
    let credential = source.credential().await.unwrap();
    assert_eq!(credential.secret().expose_secret(), "imds-issued-token");
    let seen = transport.seen.lock().unwrap().clone();
    assert_eq!(seen, vec![(imds.to_owned(), Some("true".to_owned()))]);

    // IPv6 link-local too; anything else in plain http stays refused, names included.
    assert!(UrlSource::new("http://[fe80::a9fe:a9fe]/token").is_ok());
    for refused in [
        "http://10.0.0.1/token",
        "http://192.168.1.1/token",
        "http://metadata.example/token",
        "http://169.254.169.254.nip.io/token",
        "ftp://169.254.169.254/token",
    ] {
        assert!(UrlSource::new(refused).is_err(), "{refused} was accepted");
    }

    // The exception is the credential source's alone: a token endpoint there is refused.
    assert!(
        OAuthClient::builder("app")
            .token_url("http://169.254.169.254/token")
            .build()
            .is_err()
    );
}

/// An `Arc` of a transport, as a transport.
#[derive(Debug)]
struct SharedTransport(std::sync::Arc<LinkLocal>);

#[async_trait::async_trait]
impl oauth_layer::transport::HttpTransport for SharedTransport {
    async fn send(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<oauth_layer::transport::ResponseBody>, oauth_layer::TransportError>
    {
        self.0.send(request).await
    }
}
