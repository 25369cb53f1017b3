//! Google credentials found by type and by place (SECURITY.md rule 53): the typed loader refuses
//! a file of a type the caller did not name, the metadata server is believed only when it says
//! `Metadata-Flavor: Google` and its probe gives up quickly, and application default credentials
//! take `GOOGLE_APPLICATION_CREDENTIALS`, then gcloud's file, then the metadata server, saying
//! in a debug log why each skipped step was skipped and listing them all when none works. The
//! environment is always injected; local fakes stand in for Google.
#![cfg(all(feature = "jwt", feature = "reqwest"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod test_keys;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::logs::Captured;
use oauth_layer::Error;
use oauth_layer::credential::google::{
    ApplicationDefault, AuthorizedUser, CredentialType, DefaultSource, GoogleCredentials,
    MAX_CREDENTIALS_FILE_BYTES, MetadataServer,
};
use serde_json::json;
use test_keys::RSA_PRIVATE;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request as Seen, ResponseTemplate};

const TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";
const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
const CLIENT_SECRET: &str = "d-FL95Q19q7MQmFpd7hHD0Ty";
const REFRESH_TOKEN: &str = "1//0gRefreshTokenOfAPerson-Zq9";

/// A fresh, empty directory under the system's temp dir.
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

/// An environment of exactly these variables.
fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Send + Sync + 'static {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| vars.get(name).cloned()
}

fn service_account_json(token_uri: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": "demo-project",
        "private_key_id": "0123456789abcdef",
        "private_key": RSA_PRIVATE,
        "client_email": "robot@demo-project.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": token_uri,
    })
    .to_string()
}

fn authorized_user_json(token_uri: Option<&str>) -> String {
    let mut file = json!({
        "type": "authorized_user",
        "client_id": "764086051850-6qr4p6gpi6hn506pt8ejuq83di341hur.apps.googleusercontent.com",
        "client_secret": CLIENT_SECRET,
        "refresh_token": REFRESH_TOKEN,
        "quota_project_id": "demo-project",
    });
    if let Some(uri) = token_uri {
        file["token_uri"] = json!(uri);
    }
    file.to_string()
}

/// Writes gcloud's file under `home` the way gcloud does on Linux and macOS.
fn write_gcloud_file(home: &Path, content: &str) -> PathBuf {
    let dir = home.join(".config/gcloud");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("application_default_credentials.json");
    std::fs::write(&file, content).unwrap();
    file
}

/// A token endpoint at `/token` giving `token`.
async fn token_endpoint(token: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": token, "token_type": "Bearer", "expires_in": 3599,
        })))
        .mount(&server)
        .await;
    server
}

fn form(request: &Seen) -> HashMap<String, String> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

/// A fake metadata server: answers the probe and the token path when asked with
/// `Metadata-Flavor: Google`, saying `Metadata-Flavor: Google` back only when `flavored`.
async fn metadata_fake(flavored: bool) -> MockServer {
    let server = MockServer::start().await;
    let answer = |body: ResponseTemplate| {
        if flavored {
            body.insert_header("Metadata-Flavor", "Google")
        } else {
            body
        }
    };
    Mock::given(method("GET"))
        .and(path("/"))
        .and(header("Metadata-Flavor", "Google"))
        .respond_with(answer(
            ResponseTemplate::new(200).set_body_string("computeMetadata/\n"),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(TOKEN_PATH))
        .and(header("Metadata-Flavor", "Google"))
        .respond_with(answer(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "ya29.from-the-metadata-server",
            "expires_in": 3599,
            "token_type": "Bearer",
        }))))
        .mount(&server)
        .await;
    server
}

fn metadata_at(server: &MockServer) -> MetadataServer {
    MetadataServer::at(server.address().to_string())
        .unwrap()
        .probe_timeout(Duration::from_millis(500))
}

/// A TCP server that accepts connections and never answers.
async fn hanging_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    address
}

// ---------------------------------------------------------------- the typed loader

#[test]
fn a_file_of_a_type_the_caller_did_not_name_is_refused_naming_the_type() {
    let user = authorized_user_json(None);
    let refused =
        GoogleCredentials::from_json(&user, &[CredentialType::ServiceAccount]).unwrap_err();
    let text = refused.to_string();
    assert!(matches!(refused, Error::Credential { .. }), "{refused:?}");
    assert!(text.contains("of type authorized_user"), "{text}");
    assert!(text.contains("expected: service_account"), "{text}");
    assert!(
        !text.contains(CLIENT_SECRET) && !text.contains(REFRESH_TOKEN),
        "{text}"
    );

    let account = service_account_json("https://oauth2.googleapis.com/token");
    let refused = GoogleCredentials::from_json(
        &account,
        &[
            CredentialType::AuthorizedUser,
            CredentialType::ExternalAccount,
        ],
    )
    .unwrap_err()
    .to_string();
    assert!(refused.contains("of type service_account"), "{refused}");
    assert!(!refused.contains("PRIVATE KEY"), "{refused}");

    let external = json!({"type": "external_account", "audience": "//iam.googleapis.com/x",
        "credential_source": {"executable": {"command": "/bin/steal"}}})
    .to_string();
    let refused = GoogleCredentials::from_json(&external, &[CredentialType::ServiceAccount])
        .unwrap_err()
        .to_string();
    assert!(refused.contains("of type external_account"), "{refused}");
    assert!(!refused.contains("/bin/steal"), "{refused}");

    let none = GoogleCredentials::from_json(&user, &[])
        .unwrap_err()
        .to_string();
    assert!(none.contains("expected: none"), "{none}");
}

#[test]
fn unknown_unsupported_and_malformed_files_are_refused_without_quoting_them() {
    let all = CredentialType::SUPPORTED;
    let cases = [
        (
            json!({"type": "impersonated_service_account", "source_credentials": {"refresh_token": REFRESH_TOKEN}}).to_string(),
            vec![CredentialType::ImpersonatedServiceAccount],
            "impersonated_service_account are not supported",
        ),
        (
            json!({"type": "external_account_authorized_user", "refresh_token": REFRESH_TOKEN}).to_string(),
            vec![CredentialType::ExternalAccountAuthorizedUser],
            "external_account_authorized_user are not supported",
        ),
        (
            json!({"type": "gdch_service_account"}).to_string(),
            all.to_vec(),
            "\"gdch_service_account\" is not a known credential type",
        ),
        (
            json!({"type": format!("Bearer {REFRESH_TOKEN}")}).to_string(),
            all.to_vec(),
            "its type is not a known credential type",
        ),
        (
            json!({"type": 7, "refresh_token": REFRESH_TOKEN}).to_string(),
            all.to_vec(),
            "not a string",
        ),
        (
            json!({"refresh_token": REFRESH_TOKEN}).to_string(),
            all.to_vec(),
            "no type member",
        ),
        (
            format!("{{\"type\": \"authorized_user\", \"refresh_token\": {REFRESH_TOKEN}}}"),
            all.to_vec(),
            "not a JSON object (line 1",
        ),
        (
            format!("<html>{REFRESH_TOKEN}</html>"),
            all.to_vec(),
            "not a JSON object",
        ),
        (
            json!({"type": "authorized_user", "client_id": "x", "client_secret": CLIENT_SECRET}).to_string(),
            all.to_vec(),
            "no refresh_token",
        ),
        (
            json!({"type": "authorized_user", "client_id": "x", "client_secret": CLIENT_SECRET,
                   "refresh_token": REFRESH_TOKEN, "token_uri": "http://idp.example/token"})
            .to_string(),
            all.to_vec(),
            "https",
        ),
        (
            json!({"type": "service_account", "client_email": "a@b", "private_key": format!("not a key {REFRESH_TOKEN}")}).to_string(),
            all.to_vec(),
            "key",
        ),
    ];
    for (json, expected, says) in cases {
        let err = GoogleCredentials::from_json(&json, &expected).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Credential { .. }), "{err:?}");
        assert!(text.contains(says), "{says:?} not in {text}");
        assert!(!text.contains(REFRESH_TOKEN), "{text}");
        assert!(!text.contains(CLIENT_SECRET), "{text}");
        assert!(!format!("{err:?}").contains(REFRESH_TOKEN), "{err:?}");
    }
}

#[test]
fn a_file_over_the_size_limit_is_refused_before_parsing() {
    let dir = temp_dir("big");
    let file = dir.join("big.json");
    let padding = "x".repeat(MAX_CREDENTIALS_FILE_BYTES as usize);
    std::fs::write(
        &file,
        format!(r#"{{"type": "authorized_user", "pad": "{padding}"}}"#),
    )
    .unwrap();
    let err = GoogleCredentials::from_file(&file, CredentialType::SUPPORTED)
        .unwrap_err()
        .to_string();
    assert!(err.contains("larger than 65536 bytes"), "{err}");
    assert!(err.contains(&file.display().to_string()), "{err}");

    // A directory, or a FIFO (which would block a reader until a writer comes), is refused
    // without reading.
    let not_a_file = GoogleCredentials::from_file(&dir, CredentialType::SUPPORTED)
        .unwrap_err()
        .to_string();
    assert!(not_a_file.contains("not a regular file"), "{not_a_file}");
    #[cfg(unix)]
    {
        let fifo = dir.join("fifo.json");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            let err = GoogleCredentials::from_file(&fifo, CredentialType::SUPPORTED)
                .unwrap_err()
                .to_string();
            assert!(err.contains("not a regular file"), "{err}");
        }
    }

    let missing = GoogleCredentials::from_file(dir.join("nope.json"), CredentialType::SUPPORTED)
        .unwrap_err()
        .to_string();
    assert!(missing.contains("cannot read it"), "{missing}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An `external_account` file whose subject token is the file `subject`, exchanged at the
/// security token service `sts` (a loopback fake), or produced by `program` when given.
fn external_account_json(sts: &str, subject: &Path, program: Option<&Path>) -> String {
    let source = match program {
        Some(program) => json!({"executable": {"command": program.to_str().unwrap()}}),
        None => json!({"file": subject.to_str().unwrap(), "format": {"type": "text"}}),
    };
    json!({
        "type": "external_account",
        "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/k8s",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": format!("{sts}/v1/token"),
        "credential_source": source,
    })
    .to_string()
}

/// A security token service at `/v1/token` giving `token`.
async fn sts_fake(token: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": token, "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "token_type": "Bearer", "expires_in": 3599,
        })))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn an_external_account_file_named_by_the_environment_is_exchanged_at_sts() {
    // The whole path a GKE or CI workload takes: GOOGLE_APPLICATION_CREDENTIALS names an
    // external_account file, whose subject token file is read and traded at STS.
    let sts = sts_fake("ya29.federated").await;
    let home = temp_dir("external");
    let subject = home.join("k8s-token");
    std::fs::write(&subject, "projected-service-account-token\n").unwrap();
    let file = home.join("external.json");
    std::fs::write(&file, external_account_json(&sts.uri(), &subject, None)).unwrap();
    let metadata = metadata_fake(true).await;

    let adc = ApplicationDefault::from_env_lookup(env(&[
        ("GOOGLE_APPLICATION_CREDENTIALS", file.to_str().unwrap()),
        ("HOME", home.to_str().unwrap()),
    ]))
    .metadata_server(metadata_at(&metadata))
    .scope(CLOUD_PLATFORM);
    let found = adc.find().await.unwrap();
    assert_eq!(
        found.credential_type(),
        Some(CredentialType::ExternalAccount)
    );
    let token = adc.token_source().await.unwrap().token().await.unwrap();
    assert_eq!(
        oauth_layer::ExposeSecret::expose_secret(token.access_token()),
        "ya29.federated"
    );
    let seen = sts.received_requests().await.unwrap();
    assert_eq!(seen.len(), 1);
    let form = form(&seen[0]);
    assert_eq!(
        form.get("subject_token").map(String::as_str),
        Some("projected-service-account-token")
    );
    assert_eq!(
        form.get("grant_type").map(String::as_str),
        Some("urn:ietf:params:oauth:grant-type:token-exchange")
    );
    assert!(metadata.received_requests().await.unwrap().is_empty());

    // A caller that accepts only service account keys refuses the same file.
    let narrow = ApplicationDefault::from_env_lookup(env(&[(
        "GOOGLE_APPLICATION_CREDENTIALS",
        file.to_str().unwrap(),
    )]))
    .metadata_server(metadata_at(&metadata))
    .credential_types(&[CredentialType::ServiceAccount]);
    let err = narrow.find().await.unwrap_err().to_string();
    assert!(err.contains("external_account"), "{err}");
    assert!(metadata.received_requests().await.unwrap().is_empty());
    std::fs::remove_dir_all(&home).unwrap();
}

#[cfg(unix)]
#[tokio::test]
async fn an_executable_source_runs_only_when_allowed_by_the_caller_or_googles_switch() {
    use std::os::unix::fs::PermissionsExt;

    let sts = sts_fake("ya29.from-a-program").await;
    let home = temp_dir("executable");
    let marker = home.join("ran");
    let program = home.join("issue-token.sh");
    let expiry = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    std::fs::write(
        &program,
        format!(
            "#!/bin/sh\ntouch '{}'\nprintf '{{\"version\":1,\"success\":true,\"token_type\":\"urn:ietf:params:oauth:token-type:jwt\",\"id_token\":\"from-the-program\",\"expiration_time\":{expiry}}}'\n",
            marker.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = home.join("external.json");
    std::fs::write(
        &file,
        external_account_json(&sts.uri(), &home.join("unused"), Some(&program)),
    )
    .unwrap();
    let metadata = metadata_fake(true).await;
    let path = file.to_str().unwrap().to_owned();

    // Not allowed: nothing runs, and the error says how to allow it.
    let refused = ApplicationDefault::from_env_lookup(env(&[(
        "GOOGLE_APPLICATION_CREDENTIALS",
        path.as_str(),
    )]))
    .metadata_server(metadata_at(&metadata))
    .scope(CLOUD_PLATFORM);
    let err = refused.token_source().await.unwrap_err().to_string();
    assert!(err.contains("allow_executables"), "{err}");
    assert!(!marker.exists(), "the program ran without being allowed");
    assert!(sts.received_requests().await.unwrap().is_empty());

    // The caller's own `false` wins over Google's switch in the environment.
    let vetoed = ApplicationDefault::from_env_lookup(env(&[
        ("GOOGLE_APPLICATION_CREDENTIALS", path.as_str()),
        ("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES", "1"),
    ]))
    .metadata_server(metadata_at(&metadata))
    .allow_executables(false)
    .scope(CLOUD_PLATFORM);
    assert!(vetoed.token_source().await.is_err());
    assert!(!marker.exists(), "the program ran against the caller's no");

    // Google's switch, when the caller did not say, and the caller's yes: the program runs and
    // its token is the subject.
    for adc in [
        ApplicationDefault::from_env_lookup(env(&[
            ("GOOGLE_APPLICATION_CREDENTIALS", path.as_str()),
            ("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES", "1"),
        ])),
        ApplicationDefault::from_env_lookup(env(&[(
            "GOOGLE_APPLICATION_CREDENTIALS",
            path.as_str(),
        )]))
        .allow_executables(true),
    ] {
        let _ = std::fs::remove_file(&marker);
        let adc = adc
            .metadata_server(metadata_at(&metadata))
            .scope(CLOUD_PLATFORM);
        let token = adc.token_source().await.unwrap().token().await.unwrap();
        assert_eq!(
            oauth_layer::ExposeSecret::expose_secret(token.access_token()),
            "ya29.from-a-program"
        );
        assert!(marker.exists(), "the allowed program did not run");
    }
    let seen = sts.received_requests().await.unwrap();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|request| {
        form(request).get("subject_token").map(String::as_str) == Some("from-the-program")
    }));
    std::fs::remove_dir_all(&home).unwrap();
}

#[tokio::test]
async fn a_service_account_file_gets_a_token_at_its_token_uri() {
    let idp = token_endpoint("ya29.service-account-token").await;
    let dir = temp_dir("sa");
    let file = dir.join("sa.json");
    std::fs::write(&file, service_account_json(&format!("{}/token", idp.uri()))).unwrap();

    let loaded = GoogleCredentials::from_file(&file, &[CredentialType::ServiceAccount]).unwrap();
    assert_eq!(loaded.credential_type(), CredentialType::ServiceAccount);
    let debug = format!("{loaded:?}");
    let key_body = RSA_PRIVATE.lines().nth(1).unwrap();
    assert!(!debug.contains(key_body), "{debug}");
    let tokens = loaded.token_source(CLOUD_PLATFORM).unwrap();
    let token = tokens.token().await.unwrap();
    assert_eq!(
        oauth_layer::ExposeSecret::expose_secret(token.access_token()),
        "ya29.service-account-token"
    );
    assert_eq!(
        tokens.cache_key().get("identity"),
        Some("service_account robot@demo-project.iam.gserviceaccount.com")
    );

    let seen = idp.received_requests().await.unwrap();
    let form = form(&seen[0]);
    assert_eq!(
        form["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    assert!(form.contains_key("assertion"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn an_authorized_user_file_refreshes_at_its_token_uri_with_the_secret_in_the_form() {
    let idp = token_endpoint("ya29.user-token").await;
    let user =
        AuthorizedUser::from_json(&authorized_user_json(Some(&format!("{}/token", idp.uri()))))
            .unwrap();
    let debug = format!("{user:?}");
    assert!(
        !debug.contains(CLIENT_SECRET) && !debug.contains(REFRESH_TOKEN),
        "{debug}"
    );

    let loaded = GoogleCredentials::from_json(
        &authorized_user_json(Some(&format!("{}/token", idp.uri()))),
        &[CredentialType::AuthorizedUser],
    )
    .unwrap();
    let tokens = loaded.token_source(CLOUD_PLATFORM).unwrap();
    let token = tokens.token().await.unwrap();
    assert_eq!(
        oauth_layer::ExposeSecret::expose_secret(token.access_token()),
        "ya29.user-token"
    );

    let seen = idp.received_requests().await.unwrap();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].headers.get("authorization").is_none());
    let form = form(&seen[0]);
    assert_eq!(form["grant_type"], "refresh_token");
    assert_eq!(form["refresh_token"], REFRESH_TOKEN);
    assert_eq!(form["client_secret"], CLIENT_SECRET);
    assert!(form["client_id"].ends_with(".apps.googleusercontent.com"));
    // The refresh token keeps the scopes the person granted.
    assert!(!form.contains_key("scope"), "{form:?}");

    let without_uri = AuthorizedUser::from_json(&authorized_user_json(None)).unwrap();
    assert_eq!(
        without_uri.token_uri(),
        "https://oauth2.googleapis.com/token"
    );
}

// ---------------------------------------------------------------- the metadata server

#[tokio::test]
async fn the_metadata_server_is_asked_with_its_flavor_header_and_scopes() {
    let fake = metadata_fake(true).await;
    let server = metadata_at(&fake);
    server.probe().await.unwrap();

    let tokens = server
        .token_source(format!(
            "{CLOUD_PLATFORM} https://www.googleapis.com/auth/pubsub"
        ))
        .unwrap();
    let token = tokens.token().await.unwrap();
    assert_eq!(
        oauth_layer::ExposeSecret::expose_secret(token.access_token()),
        "ya29.from-the-metadata-server"
    );
    assert!(token.lifetime() <= Duration::from_secs(3599));
    assert_eq!(tokens.cache_key().get("grant"), Some("gce_metadata"));
    assert_eq!(
        tokens.cache_key().get("metadata_host"),
        Some(fake.address().to_string().as_str())
    );

    let seen = fake.received_requests().await.unwrap();
    let token_request = seen.iter().find(|r| r.url.path() == TOKEN_PATH).unwrap();
    assert_eq!(token_request.headers["metadata-flavor"], "Google");
    let scopes: HashMap<_, _> = token_request.url.query_pairs().into_owned().collect();
    assert_eq!(
        scopes["scopes"],
        format!("{CLOUD_PLATFORM},https://www.googleapis.com/auth/pubsub")
    );

    // No scopes: the account's default scopes, no query.
    let fake = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(TOKEN_PATH))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Metadata-Flavor", "Google")
                .set_body_json(json!({"access_token": "ya29.default", "expires_in": 100, "token_type": "Bearer"})),
        )
        .mount(&fake)
        .await;
    metadata_at(&fake)
        .token_source("")
        .unwrap()
        .token()
        .await
        .unwrap();
    let seen = fake.received_requests().await.unwrap();
    assert_eq!(seen[0].url.query(), None);
}

#[tokio::test]
async fn an_answer_without_metadata_flavor_is_never_believed() {
    let fake = metadata_fake(false).await;
    let server = metadata_at(&fake);

    let probe = server.probe().await.unwrap_err().to_string();
    assert!(probe.contains("without Metadata-Flavor: Google"), "{probe}");

    let err = server
        .token_source(CLOUD_PLATFORM)
        .unwrap()
        .token()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Credential { .. }), "{err:?}");
    assert!(text.contains("not a metadata server"), "{text}");
    assert!(!text.contains("from-the-metadata-server"), "{text}");

    // A flavor other than Google is no better.
    let fake = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Metadata-Flavor", "Azure")
                .set_body_json(json!({"access_token": "ya29.imposter", "token_type": "Bearer"})),
        )
        .mount(&fake)
        .await;
    let err = metadata_at(&fake)
        .token_source(CLOUD_PLATFORM)
        .unwrap()
        .token()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a metadata server"), "{err}");
}

#[tokio::test]
async fn the_probe_of_a_server_that_hangs_gives_up_at_its_deadline() {
    let address = hanging_server().await;
    let server = MetadataServer::at(&address)
        .unwrap()
        .probe_timeout(Duration::from_millis(200));
    let started = Instant::now();
    let err = server.probe().await.unwrap_err().to_string();
    let took = started.elapsed();
    assert!(err.contains("no answer within 200ms"), "{err}");
    assert!(
        took >= Duration::from_millis(190) && took < Duration::from_millis(900),
        "{took:?}"
    );

    // The token request has its own deadline.
    let err = server
        .timeout(Duration::from_millis(200))
        .token_source(CLOUD_PLATFORM)
        .unwrap()
        .token()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no answer within 200ms"), "{err}");
}

#[tokio::test]
async fn hostile_metadata_answers_are_typed_errors() {
    let cases = [
        (
            ResponseTemplate::new(200).set_body_string("x".repeat(100 * 1024)),
            "over 65536 bytes",
        ),
        (
            ResponseTemplate::new(200).set_body_string("<html>captive portal</html>"),
            "not JSON",
        ),
        (
            ResponseTemplate::new(404).set_body_string("not found"),
            "404",
        ),
        (
            ResponseTemplate::new(200).set_body_json(
                json!({"access_token": "ya29.x\r\nInjected: 1", "token_type": "Bearer"}),
            ),
            "access_token",
        ),
        (
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "ya29.leak", "token_type": "mac"})),
            "mac",
        ),
        (
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "ya29.leak", "expires_in": 3599})),
            "no token_type",
        ),
        (
            ResponseTemplate::new(302).insert_header("Location", "http://evil.example/"),
            "redirect",
        ),
    ];
    for (answer, says) in cases {
        let fake = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(TOKEN_PATH))
            .respond_with(answer.insert_header("Metadata-Flavor", "Google"))
            .mount(&fake)
            .await;
        let err = metadata_at(&fake)
            .token_source("")
            .unwrap()
            .token()
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(says), "{says:?} not in {err}");
        assert!(!err.contains("ya29.leak"), "{err}");
    }
}

#[test]
fn plain_http_goes_only_to_loopback_link_local_or_metadata_google_internal() {
    for good in [
        "169.254.169.254",
        "169.254.169.254:80",
        "metadata.google.internal",
        "METADATA.GOOGLE.INTERNAL:8080",
        "127.0.0.1:8089",
        "localhost:8089",
        "[::1]:8089",
        "[fe80::1]",
    ] {
        assert!(MetadataServer::at(good).is_ok(), "{good}");
    }
    for bad in [
        "evil.example",
        "10.0.0.1",
        "metadata.google.internal.evil.example",
        "127.0.0.1/steal",
        "user@127.0.0.1",
        "127.0.0.1?x=1",
        "http://169.254.169.254",
        "",
    ] {
        let err = MetadataServer::at(bad).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{bad}: {err:?}");
    }
    let from_env = MetadataServer::from_env_lookup(env(&[("GCE_METADATA_HOST", "evil.example")]))
        .unwrap_err()
        .to_string();
    assert!(from_env.contains("GCE_METADATA_HOST"), "{from_env}");
    let default = MetadataServer::from_env_lookup(env(&[])).unwrap();
    assert_eq!(default.host(), "169.254.169.254");
    let set =
        MetadataServer::from_env_lookup(env(&[("GCE_METADATA_HOST", "127.0.0.1:1234")])).unwrap();
    assert_eq!(set.host(), "127.0.0.1:1234");
}

// ---------------------------------------------------------------- the ADC chain

#[tokio::test]
async fn google_application_credentials_comes_first() {
    let idp = token_endpoint("ya29.from-the-env-file").await;
    let home = temp_dir("env-first");
    let file = home.join("sa.json");
    std::fs::write(&file, service_account_json(&format!("{}/token", idp.uri()))).unwrap();
    write_gcloud_file(&home, &authorized_user_json(None));
    let metadata = metadata_fake(true).await;

    let adc = ApplicationDefault::from_env_lookup(env(&[
        ("GOOGLE_APPLICATION_CREDENTIALS", file.to_str().unwrap()),
        ("HOME", home.to_str().unwrap()),
    ]))
    .metadata_server(metadata_at(&metadata))
    .scope(CLOUD_PLATFORM);
    let found = adc.find().await.unwrap();
    assert_eq!(
        found.source(),
        &DefaultSource::EnvironmentFile(file.clone())
    );
    assert_eq!(
        found.credential_type(),
        Some(CredentialType::ServiceAccount)
    );
    assert!(
        found.describe().contains("robot@demo-project"),
        "{}",
        found.describe()
    );

    let token = adc.token_source().await.unwrap().token().await.unwrap();
    assert_eq!(
        oauth_layer::ExposeSecret::expose_secret(token.access_token()),
        "ya29.from-the-env-file"
    );
    // Neither the metadata server nor anything else was asked.
    assert!(metadata.received_requests().await.unwrap().is_empty());
    std::fs::remove_dir_all(&home).unwrap();
}

#[tokio::test]
async fn the_gcloud_file_comes_second_and_the_skipped_step_says_why() {
    let idp = token_endpoint("ya29.from-gcloud").await;
    let home = temp_dir("gcloud");
    let file = write_gcloud_file(
        &home,
        &authorized_user_json(Some(&format!("{}/token", idp.uri()))),
    );
    let metadata = metadata_fake(true).await;

    let logs = Captured::default();
    let _guard = logs.install(tracing::Level::TRACE);
    let adc = ApplicationDefault::from_env_lookup(env(&[("HOME", home.to_str().unwrap())]))
        .metadata_server(metadata_at(&metadata));
    let found = adc.find().await.unwrap();
    assert_eq!(found.source(), &DefaultSource::GcloudFile(file));
    assert_eq!(
        found.credential_type(),
        Some(CredentialType::AuthorizedUser)
    );
    let tokens = adc.token_source().await.unwrap();
    tokens.token().await.unwrap();
    assert!(metadata.received_requests().await.unwrap().is_empty());

    let text = logs.text();
    assert!(text.contains("DEBUG"), "{text}");
    assert!(
        text.contains("step skipped")
            && text.contains("GOOGLE_APPLICATION_CREDENTIALS")
            && text.contains("it is not set"),
        "{text}"
    );
    assert!(
        !text.contains(CLIENT_SECRET) && !text.contains(REFRESH_TOKEN),
        "{text}"
    );
    assert!(!text.contains("ya29.from-gcloud"), "{text}");

    // CLOUDSDK_CONFIG wins over HOME.
    let config = temp_dir("cloudsdk");
    std::fs::write(
        config.join("application_default_credentials.json"),
        service_account_json(&format!("{}/token", idp.uri())),
    )
    .unwrap();
    let found = ApplicationDefault::from_env_lookup(env(&[
        ("HOME", home.to_str().unwrap()),
        ("CLOUDSDK_CONFIG", config.to_str().unwrap()),
    ]))
    .metadata_server(metadata_at(&metadata))
    .find()
    .await
    .unwrap();
    assert_eq!(
        found.source(),
        &DefaultSource::GcloudFile(config.join("application_default_credentials.json"))
    );
    std::fs::remove_dir_all(&home).unwrap();
    std::fs::remove_dir_all(&config).unwrap();
}

#[tokio::test]
async fn the_metadata_server_comes_last_after_two_logged_skips() {
    let home = temp_dir("metadata");
    let metadata = metadata_fake(true).await;

    let logs = Captured::default();
    let _guard = logs.install(tracing::Level::DEBUG);
    let adc = ApplicationDefault::from_env_lookup(env(&[
        ("HOME", home.to_str().unwrap()),
        ("GCE_METADATA_HOST", &metadata.address().to_string()),
    ]))
    .scope(CLOUD_PLATFORM);
    let found = adc.find().await.unwrap();
    assert_eq!(
        found.source(),
        &DefaultSource::MetadataServer(metadata.address().to_string())
    );
    assert_eq!(found.credential_type(), None);
    let text = logs.text();

    let tokens = adc.token_source().await.unwrap();
    let token = tokens.token().await.unwrap();
    assert_eq!(
        oauth_layer::ExposeSecret::expose_secret(token.access_token()),
        "ya29.from-the-metadata-server"
    );
    assert_eq!(
        tokens.cache_key().get("identity"),
        Some(format!("adc metadata server http://{}", metadata.address()).as_str())
    );

    let skips: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("step skipped"))
        .collect();
    assert_eq!(skips.len(), 2, "{text}");
    assert!(skips[0].contains("GOOGLE_APPLICATION_CREDENTIALS") && skips[0].contains("not set"));
    assert!(skips[1].contains("gcloud file") && skips[1].contains("there is no file"));
    assert!(skips[1].contains(home.to_str().unwrap()), "{}", skips[1]);
    assert!(text.contains("found source=metadata server"), "{text}");
    assert!(!logs.text().contains("ya29.from-the-metadata-server"));
    std::fs::remove_dir_all(&home).unwrap();
}

#[tokio::test]
async fn when_nothing_works_the_error_lists_every_step_with_its_reason() {
    let home = temp_dir("nothing");
    let impostor = metadata_fake(false).await;
    let logs = Captured::default();
    let _guard = logs.install(tracing::Level::DEBUG);

    let err = ApplicationDefault::from_env_lookup(env(&[("HOME", home.to_str().unwrap())]))
        .metadata_server(metadata_at(&impostor))
        .find()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Credential { .. }), "{err:?}");
    assert!(text.contains("none found"), "{text}");
    assert!(
        text.contains("GOOGLE_APPLICATION_CREDENTIALS: it is not set"),
        "{text}"
    );
    assert!(text.contains("gcloud file: there is no file"), "{text}");
    assert!(
        text.contains(&format!("metadata server http://{}", impostor.address()))
            && text.contains("without Metadata-Flavor: Google"),
        "{text}"
    );
    assert_eq!(
        logs.text().matches("step skipped").count(),
        3,
        "{}",
        logs.text()
    );

    // A metadata server that hangs: the whole search still ends quickly.
    let hanging = hanging_server().await;
    let started = Instant::now();
    let err = ApplicationDefault::from_env_lookup(env(&[]))
        .metadata_server(
            MetadataServer::at(&hanging)
                .unwrap()
                .probe_timeout(Duration::from_millis(200)),
        )
        .token_source()
        .await
        .unwrap_err()
        .to_string();
    assert!(started.elapsed() < Duration::from_millis(900));
    assert!(err.contains("neither CLOUDSDK_CONFIG nor"), "{err}");
    assert!(err.contains("no answer within 200ms"), "{err}");

    // GCE_METADATA_HOST naming a remote host is a reason too, not a request.
    let err = ApplicationDefault::from_env_lookup(env(&[("GCE_METADATA_HOST", "evil.example")]))
        .find()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("GCE_METADATA_HOST"), "{err}");
    std::fs::remove_dir_all(&home).unwrap();
}

#[tokio::test]
async fn a_broken_google_application_credentials_stops_the_search() {
    let home = temp_dir("broken");
    write_gcloud_file(&home, &authorized_user_json(None));
    let metadata = metadata_fake(true).await;

    let cases = [
        (
            home.join("missing.json").to_str().unwrap().to_owned(),
            "cannot read it",
        ),
        (
            {
                let file = home.join("garbage.json");
                std::fs::write(&file, format!("{{{REFRESH_TOKEN}")).unwrap();
                file.to_str().unwrap().to_owned()
            },
            "not a JSON object",
        ),
    ];
    for (path, says) in cases {
        let err = ApplicationDefault::from_env_lookup(env(&[
            ("GOOGLE_APPLICATION_CREDENTIALS", &path),
            ("HOME", home.to_str().unwrap()),
        ]))
        .metadata_server(metadata_at(&metadata))
        .find()
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains(says), "{says:?} not in {err}");
        assert!(
            err.contains("GOOGLE_APPLICATION_CREDENTIALS names"),
            "{err}"
        );
        assert!(err.contains("rather than fall back"), "{err}");
        assert!(!err.contains(REFRESH_TOKEN), "{err}");
    }
    // The gcloud file and the metadata server were never used in place of the configured one.
    assert!(metadata.received_requests().await.unwrap().is_empty());

    // A type the caller narrowed out stops it too, naming the type.
    let err = ApplicationDefault::from_env_lookup(env(&[("HOME", home.to_str().unwrap())]))
        .credential_types(&[CredentialType::ServiceAccount])
        .metadata_server(metadata_at(&metadata))
        .find()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("gcloud file"), "{err}");
    assert!(err.contains("of type authorized_user"), "{err}");
    assert!(metadata.received_requests().await.unwrap().is_empty());
    std::fs::remove_dir_all(&home).unwrap();
}

#[tokio::test]
async fn secrets_never_show_in_debug_errors_or_logs() {
    // A token endpoint that echoes the refresh token and the secret in its error.
    let idp = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_grant",
            "error_description": format!("bad {REFRESH_TOKEN} for {CLIENT_SECRET}"),
        })))
        .mount(&idp)
        .await;
    let home = temp_dir("secrets");
    write_gcloud_file(
        &home,
        &authorized_user_json(Some(&format!("{}/token", idp.uri()))),
    );
    let logs = Captured::default();
    let _guard = logs.install(tracing::Level::TRACE);

    let adc = ApplicationDefault::from_env_lookup(env(&[("HOME", home.to_str().unwrap())]))
        .metadata_server(MetadataServer::at("127.0.0.1:9").unwrap());
    let found = adc.find().await.unwrap();
    let err = adc.token_source().await.unwrap().token().await.unwrap_err();
    for shown in [
        format!("{adc:?}"),
        format!("{found:?}"),
        found.describe(),
        err.to_string(),
        format!("{err:?}"),
        logs.text(),
    ] {
        assert!(!shown.contains(REFRESH_TOKEN), "{shown}");
        assert!(!shown.contains(CLIENT_SECRET), "{shown}");
    }
    std::fs::remove_dir_all(&home).unwrap();

    // The metadata server's token stays out of Debug and logs too.
    let fake = metadata_fake(true).await;
    let tokens = metadata_at(&fake).token_source(CLOUD_PLATFORM).unwrap();
    let token = tokens.token().await.unwrap();
    assert!(!format!("{token:?} {tokens:?}").contains("from-the-metadata-server"));
    assert!(!logs.text().contains("from-the-metadata-server"));
}

#[test]
fn the_futures_are_send_and_the_types_are_shareable() {
    fn send<T: Send>(_: T) {}
    fn shareable<T: Send + Sync + Clone>() {}
    shareable::<ApplicationDefault>();
    shareable::<GoogleCredentials>();
    shareable::<MetadataServer>();
    let adc = ApplicationDefault::from_env_lookup(env(&[]));
    send(adc.find());
    send(adc.token_source());
    send(MetadataServer::at("127.0.0.1:1").unwrap().probe());
}

#[test]
fn a_metadata_token_can_be_widened_but_not_asked_for_a_sign_in() {
    use oauth_layer::flow::{Flow, Requirements};
    let server = MetadataServer::at("127.0.0.1:1").unwrap();
    let client = server.client().unwrap();
    let flow = server.flow("https://www.googleapis.com/auth/devstorage.read_only");
    let wider = flow
        .upgraded(&Requirements::new().scope(CLOUD_PLATFORM))
        .unwrap();
    assert_eq!(
        wider.cache_key(&client).get("scope"),
        Some(
            format!("{CLOUD_PLATFORM} https://www.googleapis.com/auth/devstorage.read_only")
                .as_str()
        )
    );
    assert!(flow.upgraded(&Requirements::new().max_age(0)).is_none());
}
