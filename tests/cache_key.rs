//! Cache keys bind every credential a flow uses, through a digest keyed by the store
//! (SECURITY.md rule 34): two sources that differ only in a password, a secret or a token never
//! share a token, and no key, file name or log line lets a weak secret be guessed offline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use oauth_layer::flow::{
    ClientCredentials, DeviceCode, Flow, Password, RefreshToken, SubjectToken, TokenExchange,
};
use oauth_layer::store::{CacheKey, KeySalt, MemoryStore, TokenStore};
use oauth_layer::testing::TestServer;
use oauth_layer::{AuthMethod, OAuthClient, TokenSource};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

const CLIENT_ID: &str = "cache-key-test";
const CLIENT_SECRET: &str = "cache-key-client-secret";
const USER: &str = "alice";
const RIGHT: &str = "the-right-password";
const WRONG: &str = "a-wrong-password";

async fn password_server() -> TestServer {
    TestServer::builder()
        .client(
            CLIENT_ID,
            Some(CLIENT_SECRET),
            AuthMethod::ClientSecretBasic,
        )
        .user(USER, RIGHT)
        .start()
        .await
        .unwrap()
}

fn password_client(server: &TestServer) -> OAuthClient {
    OAuthClient::builder(CLIENT_ID)
        .secret(CLIENT_SECRET)
        .token_url(server.token_url())
        .build()
        .unwrap()
}

/// The source with the right password fills `store`; the one with a wrong password, sharing
/// it, must ask the server (and be refused) instead of taking that token.
async fn a_wrong_password_is_refused_with(store: impl TokenStore + Clone) {
    let server = password_server().await;
    let right = TokenSource::builder(password_client(&server), Password::new(USER, RIGHT))
        .store(store.clone())
        .build();
    let token = right.token().await.unwrap();
    assert_eq!(server.token_requests(), 1);

    let wrong = TokenSource::builder(password_client(&server), Password::new(USER, WRONG))
        .store(store)
        .build();
    match wrong.token().await {
        Ok(got) => panic!(
            "a wrong password got a token (the right one's: {})",
            got.access_token().expose_secret() == token.access_token().expose_secret()
        ),
        Err(e) => assert!(e.is_invalid_grant(), "{e}"),
    }
    assert_eq!(
        server.token_requests(),
        2,
        "the wrong password asked the server"
    );
    assert_ne!(right.cache_key(), wrong.cache_key());
}

#[tokio::test]
async fn a_wrong_password_never_gets_the_right_ones_token_from_a_memory_store() {
    a_wrong_password_is_refused_with(MemoryStore::new()).await;
}

#[cfg(feature = "file-store")]
#[tokio::test]
async fn a_wrong_password_never_gets_the_right_ones_token_from_a_file_store() {
    let dir = files::TempDir::new();
    a_wrong_password_is_refused_with(oauth_layer::store::FileStore::in_dir(dir.path())).await;
}

const WEAK: &str = "password1";
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

fn client() -> OAuthClient {
    OAuthClient::builder("app")
        .secret("client-secret")
        .token_url("https://idp.example/token")
        .build()
        .unwrap()
}

/// Every form of `secret` an offline guesser could match: the secret itself, and its plain
/// SHA-256 (the whole digest or a 48-bit prefix) in hex and base64.
fn guessable_forms(secret: &str) -> Vec<String> {
    let digest = Sha256::digest(secret.as_bytes());
    let hex = hex(&digest);
    vec![
        secret.to_owned(),
        hex[..12].to_owned(),
        hex[..12].to_uppercase(),
        URL_SAFE_NO_PAD.encode(&digest[..9]),
        STANDARD.encode(&digest[..9]),
    ]
}

fn assert_no_guessable(what: &str, shown: &str, secret: &str) {
    for form in guessable_forms(secret) {
        assert!(
            !shown.contains(&form),
            "{what} shows {form:?}, a form of the secret: {shown}"
        );
    }
}

/// One flow for each place a credential goes, each using the weak secret there only.
fn flows_with_a_weak_credential() -> Vec<(&'static str, OAuthClient, Box<dyn Flow>)> {
    let weak_client = || {
        OAuthClient::builder("app")
            .secret(WEAK)
            .token_url("https://idp.example/token")
            .build()
            .unwrap()
    };
    let mut flows: Vec<(&'static str, OAuthClient, Box<dyn Flow>)> = vec![
        ("password", client(), Box::new(Password::new("alice", WEAK))),
        (
            "client secret",
            weak_client(),
            Box::new(ClientCredentials::new()),
        ),
        ("refresh token", client(), Box::new(RefreshToken::new(WEAK))),
        (
            "subject token",
            client(),
            Box::new(TokenExchange::new(SubjectToken::fixed(WEAK, JWT_TYPE))),
        ),
        (
            "actor token",
            client(),
            Box::new(
                TokenExchange::new(SubjectToken::fixed("subject", JWT_TYPE))
                    .actor(SubjectToken::fixed(WEAK, JWT_TYPE)),
            ),
        ),
        (
            "chained source's client secret",
            client(),
            Box::new(TokenExchange::new(SubjectToken::source(TokenSource::new(
                weak_client(),
                ClientCredentials::new(),
            )))),
        ),
        (
            "device grant's client secret",
            weak_client(),
            Box::new(DeviceCode::new()),
        ),
    ];
    #[cfg(feature = "jwt")]
    {
        use oauth_layer::jwt::SigningKey;
        flows.push((
            "JWT bearer HS256 key",
            client(),
            Box::new(oauth_layer::flow::JwtBearer::new(
                SigningKey::hs256(WEAK).unwrap(),
                "issuer",
            )),
        ));
        flows.push((
            "client_secret_jwt",
            weak_client()
                .to_builder()
                .auth_method(AuthMethod::ClientSecretJwt)
                .build()
                .unwrap(),
            Box::new(ClientCredentials::new()),
        ));
    }
    #[cfg(feature = "auth-code")]
    flows.push((
        "authorization code grant's client secret",
        weak_client(),
        Box::new(oauth_layer::flow::AuthCode::new()),
    ));
    flows
}

/// The same flow with `"password2"` in place of the weak secret.
fn the_same_with_another_secret(what: &str) -> CacheKey {
    let other = |secret: &str| -> (OAuthClient, Box<dyn Flow>) {
        let weak_client = || {
            OAuthClient::builder("app")
                .secret(secret)
                .token_url("https://idp.example/token")
                .build()
                .unwrap()
        };
        match what {
            "password" => (client(), Box::new(Password::new("alice", secret))),
            "client secret" => (weak_client(), Box::new(ClientCredentials::new())),
            "refresh token" => (client(), Box::new(RefreshToken::new(secret))),
            "subject token" => (
                client(),
                Box::new(TokenExchange::new(SubjectToken::fixed(secret, JWT_TYPE))),
            ),
            "actor token" => (
                client(),
                Box::new(
                    TokenExchange::new(SubjectToken::fixed("subject", JWT_TYPE))
                        .actor(SubjectToken::fixed(secret, JWT_TYPE)),
                ),
            ),
            "chained source's client secret" => (
                client(),
                Box::new(TokenExchange::new(SubjectToken::source(TokenSource::new(
                    weak_client(),
                    ClientCredentials::new(),
                )))),
            ),
            "device grant's client secret" => (weak_client(), Box::new(DeviceCode::new())),
            #[cfg(feature = "jwt")]
            "JWT bearer HS256 key" => (
                client(),
                Box::new(oauth_layer::flow::JwtBearer::new(
                    oauth_layer::jwt::SigningKey::hs256(secret).unwrap(),
                    "issuer",
                )),
            ),
            #[cfg(feature = "jwt")]
            "client_secret_jwt" => (
                weak_client()
                    .to_builder()
                    .auth_method(AuthMethod::ClientSecretJwt)
                    .build()
                    .unwrap(),
                Box::new(ClientCredentials::new()),
            ),
            #[cfg(feature = "auth-code")]
            "authorization code grant's client secret" => {
                (weak_client(), Box::new(oauth_layer::flow::AuthCode::new()))
            }
            _ => unreachable!("{what}"),
        }
    };
    let (client, flow) = other("password2");
    flow.cache_key(&client)
}

#[test]
fn every_credential_a_flow_sends_tells_its_keys_apart() {
    for (what, client, flow) in flows_with_a_weak_credential() {
        let key = flow.cache_key(&client);
        assert_eq!(key, flow.cache_key(&client), "{what}: stable");
        assert_ne!(
            key,
            the_same_with_another_secret(what),
            "{what}: another secret, another key"
        );
    }
}

#[test]
fn no_printed_key_shows_a_guessable_form_of_a_weak_secret() {
    let parts = [
        "credential",
        "signing_key",
        "password",
        "refresh_token",
        "subject_token",
        "actor_token",
        "subject",
        "claims",
    ];
    for (what, client, flow) in flows_with_a_weak_credential() {
        let key = flow.cache_key(&client);
        let shown = format!("{key:?} {key:#?} {flow:?}");
        assert_no_guessable(what, &shown, WEAK);
        assert!(shown.contains("[redacted]"), "{what}: {shown}");
        for part in parts {
            if let Some(value) = key.get(part) {
                assert_no_guessable(what, value, WEAK);
            }
        }
    }
}

#[test]
fn a_stores_names_depend_on_its_salt_and_reveal_no_secret() {
    let (a, b) = (KeySalt::generate().unwrap(), KeySalt::generate().unwrap());
    for (what, client, flow) in flows_with_a_weak_credential() {
        let key = flow.cache_key(&client);
        assert_eq!(a.name(&key), a.name(&key), "{what}");
        assert_ne!(a.name(&key), b.name(&key), "{what}");
        assert_no_guessable(what, &a.name(&key), WEAK);
    }
}

#[cfg(feature = "auth-code")]
#[test]
fn authorization_parameters_that_change_the_token_change_the_key() {
    use oauth_layer::flow::AuthCode;
    let key = |flow: AuthCode| flow.cache_key(&client());
    let api = || AuthCode::new().auth_param("audience", "https://api.example");
    assert_eq!(key(api()), key(api()));
    assert_ne!(
        key(api()),
        key(AuthCode::new().auth_param("audience", "https://admin.example")),
        "Auth0's audience"
    );
    assert_ne!(key(api()), key(AuthCode::new()));
    assert_ne!(
        key(AuthCode::new().auth_param("login_hint", "alice")),
        key(AuthCode::new().auth_param("login_hint", "bob"))
    );
    assert_ne!(
        key(AuthCode::new().token_param("resource", "https://a")),
        key(AuthCode::new().token_param("resource", "https://b"))
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 over `name NUL value NUL` for each part, in hex.
#[cfg(feature = "file-store")]
fn unkeyed_name(parts: &[(&str, &str)]) -> String {
    let mut hasher = Sha256::new();
    for (name, value) in parts {
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(value.as_bytes());
        hasher.update([0]);
    }
    hex(&hasher.finalize())
}

/// Presets configure the authorization request; an Auth0 API audience is part of the key, so
/// sources for two APIs of one tenant never share a token.
#[cfg(feature = "auth-code")]
#[test]
fn an_auth0_audience_separates_the_presets_tokens() {
    use oauth_layer::provider::{Auth0, Preset};
    let source = |audience: &str| {
        Auth0::new("tenant.eu.auth0.com", "app")
            .unwrap()
            .audience(audience)
            .token_source()
    };
    assert_ne!(
        source("https://billing.example").cache_key(),
        source("https://admin.example").cache_key()
    );
    assert_eq!(
        source("https://billing.example").cache_key(),
        source("https://billing.example").cache_key()
    );
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(feature = "file-store")]
#[tokio::test(flavor = "current_thread")]
async fn file_names_and_logs_reveal_no_weak_secret() {
    use oauth_layer::store::FileStore;

    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer({
            let captured = captured.clone();
            move || captured.clone()
        })
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    // A weak password and a weak client secret, through a real grant and a real store.
    let server = TestServer::builder()
        .client("weak-app", Some(WEAK), AuthMethod::ClientSecretPost)
        .user(USER, WEAK)
        .start()
        .await
        .unwrap();
    let client = OAuthClient::builder("weak-app")
        .secret(WEAK)
        .auth_method(AuthMethod::ClientSecretPost)
        .token_url(server.token_url())
        .build()
        .unwrap();
    let dir = files::TempDir::new();
    let store = FileStore::in_dir(dir.path());
    let source = TokenSource::builder(client.clone(), Password::new(USER, WEAK))
        .store(store.clone())
        .build();
    source.token().await.unwrap();
    let again = TokenSource::builder(client, Password::new(USER, WEAK))
        .store(store.clone())
        .build();
    again.token().await.unwrap();
    assert_eq!(
        server.token_requests(),
        1,
        "the second source read the file"
    );
    for (_, client, flow) in flows_with_a_weak_credential() {
        let token = oauth_layer::Token::builder("t")
            .build(&oauth_layer::clock::SystemClock)
            .unwrap();
        store.save(&flow.cache_key(&client), &token).await.unwrap();
    }

    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.len() > 10, "{names:?}");
    assert_no_guessable("file names", &names.join(" "), WEAK);
    // An attacker who knows everything but the client secret tries a guess the way names
    // were once made (an unkeyed digest of the key's parts): no file answers.
    let guessed = unkeyed_name(&[
        ("server", &server.token_url()),
        ("client_id", "weak-app"),
        ("grant", "password"),
        ("credential", &hex(&Sha256::digest(WEAK.as_bytes())[..16])),
        ("subject", USER),
    ]);
    assert!(
        !names.contains(&format!("{guessed}.json")),
        "the guess {WEAK:?} matches a file name"
    );
    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(logs.contains("using a token from the store"), "{logs}");
    assert_no_guessable("logs", &logs, WEAK);
}

#[cfg(feature = "file-store")]
#[test]
fn two_stores_on_one_directory_name_a_key_alike_and_other_directories_do_not() {
    use oauth_layer::store::FileStore;

    let key = Password::new("alice", WEAK).cache_key(&client());
    let (one, other) = (files::TempDir::new(), files::TempDir::new());
    // Eight "processes" opening a new directory at once agree on one salt.
    let paths: Vec<_> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..8)
            .map(|_| s.spawn(|| FileStore::in_dir(one.path().join("cache")).path(&key)))
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap().unwrap())
            .collect()
    });
    assert!(paths.iter().all(|p| *p == paths[0]), "{paths:?}");
    assert_eq!(
        FileStore::in_dir(one.path().join("cache"))
            .path(&key)
            .unwrap(),
        paths[0]
    );
    let elsewhere = FileStore::in_dir(other.path()).path(&key).unwrap();
    assert_ne!(elsewhere.file_name(), paths[0].file_name());

    // The salt is a private file of 64 hex digits; no temporary file is left behind.
    let salt = one.path().join("cache/cache-key.salt");
    let meta = std::fs::symlink_metadata(&salt).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&salt).unwrap();
    assert!(
        text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()),
        "{text:?}"
    );
    let names: Vec<String> = std::fs::read_dir(one.path().join("cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["cache-key.salt"]);
}

#[cfg(feature = "file-store")]
#[tokio::test]
async fn a_salt_file_that_is_a_link_or_not_a_salt_is_refused() {
    use oauth_layer::Error;
    use oauth_layer::store::FileStore;

    let key = Password::new("alice", WEAK).cache_key(&client());
    let token = oauth_layer::Token::builder("t")
        .build(&oauth_layer::clock::SystemClock)
        .unwrap();
    let refused = |result: oauth_layer::Result<()>, why: &str| match result {
        Err(Error::Store(message)) => {
            assert!(message.contains("cache-key.salt"), "{message}");
            assert!(message.contains(why), "{message}");
        }
        other => panic!("expected a refusal ({why}), got {other:?}"),
    };

    // A link planted where the salt goes: a salt of the attacker's choosing is never used.
    let dir = files::TempDir::new();
    let planted = dir.path().join("planted");
    std::fs::write(&planted, "00".repeat(32)).unwrap();
    std::os::unix::fs::symlink(&planted, dir.path().join("cache-key.salt")).unwrap();
    refused(
        FileStore::in_dir(dir.path()).save(&key, &token).await,
        "symbolic link",
    );

    // Garbage in the salt file.
    let dir = files::TempDir::new();
    std::fs::write(dir.path().join("cache-key.salt"), "not a salt").unwrap();
    std::fs::set_permissions(
        dir.path().join("cache-key.salt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    refused(
        FileStore::in_dir(dir.path()).save(&key, &token).await,
        "remove it",
    );
}

#[cfg(feature = "file-store")]
mod files {
    use std::path::{Path, PathBuf};

    /// A private directory under the system temp dir with a random name, removed on drop.
    pub(crate) struct TempDir(PathBuf);

    impl TempDir {
        pub(crate) fn new() -> Self {
            use std::os::unix::fs::DirBuilderExt;
            let mut random = [0u8; 8];
            getrandom::fill(&mut random).unwrap();
            let name: String = random.iter().map(|b| format!("{b:02x}")).collect();
            let path = std::env::temp_dir().join(format!("oauth-layer-cache-key-{name}"));
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&path)
                .unwrap();
            Self(path)
        }

        pub(crate) fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[test]
fn a_token_url_query_never_shows_in_a_keys_debug_output() {
    // Some servers take an API key in the token URL's query; the key binds it (two such URLs
    // never share a token), but its Debug output, which the source logs at debug level, never
    // shows it.
    let client = |url: &str| {
        OAuthClient::builder("app")
            .token_url(url)
            .secret("s3cret")
            .build()
            .unwrap()
    };
    let one = CacheKey::builder(
        &client("https://idp.example/token?api_key=Q9-secret-in-query"),
        "g",
    )
    .build();
    let other =
        CacheKey::builder(&client("https://idp.example/token?api_key=another"), "g").build();
    let shown = format!("{one:?}");
    assert!(!shown.contains("Q9-secret-in-query"), "{shown}");
    assert!(shown.contains("https://idp.example/token?"), "{shown}");
    assert_ne!(one, other);
}
