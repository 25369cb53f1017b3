//! The keyring store against a real Secret Service: GNOME Keyring in a private D-Bus session
//! (SECURITY.md rules 21, 34, 37 and 38), and the message people get where there is none.
//!
//! Each test that needs the Secret Service re-runs itself (this test binary, `--exact <name>`)
//! under `dbus-run-session` with a fresh, unlocked `gnome-keyring-daemon` whose keyrings live in
//! a temporary directory, so the tests never touch the keychain of whoever runs them and need
//! nothing started beforehand: `tests/setup.sh` installs the packages. Children that need other
//! environments are ignored tests that do nothing unless their environment variable is set.
#![cfg(all(feature = "keyring-store", target_os = "linux"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::logs::Captured;
use oauth_layer::clock::{Clock, ManualClock, Sleep, SystemClock};
use oauth_layer::flow::{ClientCredentials, Flow, Password};
use oauth_layer::store::{CacheKey, Codec, KeySalt, KeyringStore, TokenStore};
use oauth_layer::testing::TestServer;
use oauth_layer::{AuthMethod, Error, OAuthClient, OAuthClientBuilder, Token, TokenSource};
use secrecy::ExposeSecret;

/// Set in the environment of a test re-run inside the private Secret Service.
const INSIDE: &str = "OAUTH_LAYER_KEYRING_TEST_SESSION";
/// Set for the child that reads a token another process saved: the token URL, and the access
/// token it must find.
const CHILD_TOKEN_URL: &str = "KEYRING_TEST_TOKEN_URL";
const CHILD_EXPECTED: &str = "KEYRING_TEST_EXPECTED";
/// Set for the child that runs where no keychain can be reached.
const CHILD_NO_KEYCHAIN: &str = "KEYRING_TEST_NO_KEYCHAIN";

const CLIENT_ID: &str = "keyring-client-7f3a";
const CLIENT_SECRET: &str = "keyring-secret-51c9";
const USER: &str = "alice-keyring";
const PASSWORD: &str = "password-keyring-88";
const SCOPE: &str = "api:read-keyring";

/// Run inside a private D-Bus session: unlocks a new login keyring (its files in a temporary
/// directory), waits until its Secret Service owns its bus name (so that no call starts a
/// second, locked daemon on demand), and replaces the shell with the test named by `$2` of the
/// binary `$1`.
const SESSION_SCRIPT: &str = r#"printf '%s' "keyring-test-unlock" | gnome-keyring-daemon --unlock --components=secrets >/dev/null || exit 97
tries=0
until dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
    org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null | grep -q true; do
  tries=$((tries + 1))
  [ "$tries" -lt 100 ] || exit 98
  sleep 0.05
done
exec "$1" --exact "$2" --nocapture --test-threads=1"#;

/// A directory under the system temp dir with a random name, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).unwrap();
        let name: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let path = std::env::temp_dir().join(format!("oauth-layer-keyring-{name}"));
        std::fs::create_dir(&path).unwrap();
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// A private (0700) directory inside, as the Secret Service wants its runtime directory.
    fn private(&self, name: &str) -> PathBuf {
        use std::os::unix::fs::DirBuilderExt;
        let dir = self.0.join(name);
        std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        dir
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `true` inside the private Secret Service: the test goes on. Outside, re-runs the test `name`
/// there, asserts that it passed, and returns `false`: the test is done.
fn in_secret_service(name: &str) -> bool {
    if std::env::var_os(INSIDE).is_some() {
        return true;
    }
    let home = TempDir::new();
    let output = Command::new("dbus-run-session")
        .args(["--", "sh", "-c", SESSION_SCRIPT, "sh"])
        .arg(std::env::current_exe().unwrap())
        .arg(name)
        .env(INSIDE, "1")
        .env("HOME", home.path())
        .env("XDG_DATA_HOME", home.private("data"))
        .env("XDG_RUNTIME_DIR", home.private("run"))
        .env("XDG_CACHE_HOME", home.private("cache"))
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run dbus-run-session ({e}): run `bash tests/setup.sh` first")
        });
    let shown = shown(&output);
    assert_ne!(
        output.status.code(),
        Some(97),
        "gnome-keyring-daemon did not start: run `bash tests/setup.sh` first\n{shown}"
    );
    assert_ne!(
        output.status.code(),
        Some(98),
        "gnome-keyring-daemon did not provide the Secret Service within 5 s\n{shown}"
    );
    assert!(
        output.status.success(),
        "{name} failed in the Secret Service:\n{shown}"
    );
    assert!(shown.contains("1 passed"), "{name} did not run:\n{shown}");
    false
}

/// This test binary, running only the ignored child test `name`.
fn child(name: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        name,
        "--nocapture",
        "--ignored",
        "--test-threads=1",
    ]);
    cmd
}

fn shown(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The one place tests build a client.
fn client(token_url: &str) -> OAuthClient {
    client_builder(token_url).build().unwrap()
}

fn client_builder(token_url: &str) -> OAuthClientBuilder {
    OAuthClient::builder(CLIENT_ID)
        .secret(CLIENT_SECRET)
        .token_url(token_url)
}

async fn server(clock: Option<ManualClock>) -> TestServer {
    let mut builder = TestServer::builder()
        .client(
            CLIENT_ID,
            Some(CLIENT_SECRET),
            AuthMethod::ClientSecretBasic,
        )
        .user(USER, PASSWORD);
    if let Some(clock) = clock {
        builder = builder.clock(clock);
    }
    builder.start().await.unwrap()
}

fn store(test: &str) -> KeyringStore {
    KeyringStore::for_service(format!("oauth-layer-test:{test}"))
}

fn key(scope: &str) -> CacheKey {
    ClientCredentials::new()
        .scope(scope)
        .cache_key(&OAuthClient::builder("c").build().unwrap())
}

fn token(access: &str, refresh: &str) -> Token {
    Token::builder(access)
        .refresh_token(refresh)
        .expires_in(Duration::from_secs(3600))
        .scope("a b")
        .build(&SystemClock)
        .unwrap()
}

fn secret(s: &secrecy::SecretString) -> String {
    s.expose_secret().to_owned()
}

/// Everything the Secret Service holds for `service`, as `secret-tool` shows it: labels,
/// attributes and secrets.
fn secret_tool_search(service: &str) -> String {
    let output = Command::new("secret-tool")
        .args(["search", "--all", "--unlock", "service", service])
        .output()
        .expect("secret-tool (libsecret-tools): run `bash tests/setup.sh` first");
    shown(&output)
}

/// The secret `secret-tool` finds for `service` and the account `username`, if any.
fn secret_tool_lookup(service: &str, username: &str) -> Option<String> {
    let output = Command::new("secret-tool")
        .args(["lookup", "service", service, "username", username])
        .output()
        .expect("secret-tool (libsecret-tools): run `bash tests/setup.sh` first");
    (output.status.success() && !output.stdout.is_empty())
        .then(|| String::from_utf8(output.stdout).unwrap())
}

#[tokio::test]
async fn a_token_survives_into_a_new_source_and_a_new_process() {
    if !in_secret_service("a_token_survives_into_a_new_source_and_a_new_process") {
        return;
    }
    let server = server(None).await;
    let flow = || ClientCredentials::new().scope(SCOPE);
    let first = TokenSource::builder(client(&server.token_url()), flow())
        .store(store("survives"))
        .build();
    let issued = first.token().await.unwrap();
    assert_eq!(server.token_requests(), 1);

    // A new store value and a new source: the token comes from the keychain.
    let second = TokenSource::builder(client(&server.token_url()), flow())
        .store(store("survives"))
        .build();
    let restored = second.token().await.unwrap();
    assert_eq!(
        secret(restored.access_token()),
        secret(issued.access_token())
    );
    assert_eq!(restored.scope(), issued.scope());
    let unix = |t: &Token| {
        t.expires_at_utc()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    assert_eq!(unix(&restored), unix(&issued));

    // A new process.
    let output = child("child_reads_the_saved_token")
        .env(CHILD_TOKEN_URL, server.token_url())
        .env(CHILD_EXPECTED, secret(issued.access_token()))
        .output()
        .unwrap();
    let shown = shown(&output);
    assert!(output.status.success(), "{shown}");
    assert!(shown.contains("1 passed"), "{shown}");
    assert_eq!(server.token_requests(), 1, "nobody asked the server again");
}

#[tokio::test]
#[ignore = "a child of a_token_survives_into_a_new_source_and_a_new_process"]
async fn child_reads_the_saved_token() {
    let (Ok(url), Ok(expected)) = (
        std::env::var(CHILD_TOKEN_URL),
        std::env::var(CHILD_EXPECTED),
    ) else {
        return;
    };
    let source = TokenSource::builder(client(&url), ClientCredentials::new().scope(SCOPE))
        .store(store("survives"))
        .build();
    assert_eq!(
        secret(source.token().await.unwrap().access_token()),
        expected
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_refresh_token_is_in_the_keychain_before_it_is_handed_out() {
    if !in_secret_service("a_rotated_refresh_token_is_in_the_keychain_before_it_is_handed_out") {
        return;
    }
    let clock = ManualClock::new();
    let server = server(Some(clock.clone())).await;
    let client = client_builder(&server.token_url())
        .clock(clock.clone())
        .build()
        .unwrap();
    let flow = || Password::new(USER, PASSWORD).scope(SCOPE);
    let key = flow().cache_key(&client);

    // What the keychain held each time the hook ran, next to the refresh token handed out.
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let probe = store("rotation").clock(clock.clone());
    let hook = {
        let seen = seen.clone();
        move |token: &Token| {
            let stored = std::thread::scope(|s| {
                s.spawn(|| {
                    tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap()
                        .block_on(probe.load(&key))
                })
                .join()
                .unwrap()
            })
            .unwrap()
            .expect("the token is in the keychain");
            seen.lock().unwrap().push((
                secret(token.refresh_token().unwrap()),
                secret(stored.refresh_token().unwrap()),
            ));
        }
    };
    let source = TokenSource::builder(client, flow())
        .store(store("rotation").clock(clock.clone()))
        .on_token_change(hook)
        .build();

    let first = source.token().await.unwrap();
    clock.advance(Duration::from_secs(2 * 3600));
    let second = source.token().await.unwrap();

    assert_eq!(server.token_requests_for("refresh_token"), 1);
    assert_ne!(
        secret(first.refresh_token().unwrap()),
        secret(second.refresh_token().unwrap())
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    for (handed_out, stored) in seen.iter() {
        assert_eq!(handed_out, stored);
    }
}

#[tokio::test]
async fn delete_forgets_a_token_and_deleting_nothing_is_fine() {
    if !in_secret_service("delete_forgets_a_token_and_deleting_nothing_is_fine") {
        return;
    }
    let store = store("delete");
    let key = key("a");
    store.save(&key, &token("AT-1", "RT-1")).await.unwrap();
    assert!(store.load(&key).await.unwrap().is_some());

    store.delete(&key).await.unwrap();
    assert!(store.load(&key).await.unwrap().is_none());
    let name = store.entry_name(&key).await.unwrap();
    assert_eq!(secret_tool_lookup(store.service(), &name), None);
    store.delete(&key).await.unwrap();
}

#[tokio::test]
async fn two_cache_keys_and_two_services_are_kept_apart() {
    if !in_secret_service("two_cache_keys_and_two_services_are_kept_apart") {
        return;
    }
    let store = store("apart");
    store.save(&key("a"), &token("AT-A", "RT-A")).await.unwrap();
    store.save(&key("b"), &token("AT-B", "RT-B")).await.unwrap();
    let access = |t: Option<Token>| secret(t.unwrap().access_token());
    assert_eq!(access(store.load(&key("a")).await.unwrap()), "AT-A");
    assert_eq!(access(store.load(&key("b")).await.unwrap()), "AT-B");
    assert!(store.load(&key("c")).await.unwrap().is_none());

    // Another service has its own salt, so the same key has another entry there.
    let other = KeyringStore::for_service("oauth-layer-test:another-app");
    assert!(other.load(&key("a")).await.unwrap().is_none());
    assert_ne!(
        other.entry_name(&key("a")).await.unwrap(),
        store.entry_name(&key("a")).await.unwrap()
    );
    store.delete(&key("a")).await.unwrap();
    assert_eq!(access(store.load(&key("b")).await.unwrap()), "AT-B");
}

#[tokio::test]
async fn entries_are_named_by_a_salted_digest_that_reveals_nothing() {
    if !in_secret_service("entries_are_named_by_a_salted_digest_that_reveals_nothing") {
        return;
    }
    let server = server(None).await;
    let store = store("names");
    let flow = || Password::new(USER, PASSWORD).scope(SCOPE);
    let client = client(&server.token_url());
    let key = flow().cache_key(&client);
    let source = TokenSource::builder(client, flow())
        .store(store.clone())
        .build();
    let issued = source.token().await.unwrap();

    // Every name and attribute the Secret Service keeps, as any program of the user can list
    // them: no client, user, scope, server or credential, and the entry is a 64-digit name.
    let listing = secret_tool_search(store.service());
    let name = store.entry_name(&key).await.unwrap();
    assert_eq!(name.len(), 64);
    assert!(name.bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
    let names: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.strip_prefix("attribute.username = "))
        .collect();
    assert_eq!(names.len(), 2, "the salt and one token:\n{listing}");
    assert!(names.contains(&name.as_str()), "{listing}");
    assert!(names.contains(&"cache-key-salt"), "{listing}");
    let described: String = listing
        .lines()
        .filter(|l| !l.starts_with("secret = "))
        .collect::<Vec<_>>()
        .join("\n");
    let host = server.addr().to_string();
    for revealing in [
        CLIENT_ID,
        CLIENT_SECRET,
        USER,
        PASSWORD,
        SCOPE,
        host.as_str(),
    ] {
        assert!(!described.contains(revealing), "{revealing}:\n{described}");
    }

    // Guessing the account from what the guesser knows finds nothing.
    for guess in [
        CLIENT_ID,
        USER,
        SCOPE,
        &server.token_url(),
        "default",
        "token",
    ] {
        assert_eq!(secret_tool_lookup(store.service(), guess), None, "{guess}");
    }

    // The name is the HMAC of the key under the salt the keychain holds, and without that salt
    // another salt gives another name.
    let salt_hex = secret_tool_lookup(store.service(), "cache-key-salt").unwrap();
    let salt_bytes: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&salt_hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let salt = KeySalt::from_bytes(salt_bytes.try_into().unwrap());
    assert_eq!(salt.name(&key), name);
    assert_ne!(KeySalt::from_bytes([0; 32]).name(&key), name);

    // The entry holds the token, in the codec's format.
    let stored = secret_tool_lookup(store.service(), &name).unwrap();
    assert!(stored.contains("oauth-layer-token"), "{stored}");
    assert!(stored.contains(&secret(issued.access_token())));
}

#[tokio::test]
async fn sealed_entries_hide_the_tokens_and_unreadable_ones_are_logged_misses() {
    if !in_secret_service("sealed_entries_hide_the_tokens_and_unreadable_ones_are_logged_misses") {
        return;
    }
    let captured = Captured::default();
    let _logs = captured.install(tracing::Level::WARN);
    let sealed = store("sealed").codec(Codec::encrypted([1; 32]));
    let key = key("a");
    sealed
        .save(&key, &token("AT-SENTINEL-1", "RT-SENTINEL-2"))
        .await
        .unwrap();
    let name = sealed.entry_name(&key).await.unwrap();
    let stored = secret_tool_lookup(sealed.service(), &name).unwrap();
    assert!(!stored.contains("SENTINEL"), "{stored}");
    assert!(sealed.load(&key).await.unwrap().is_some());

    // Sealed under another key, or not sealed where sealed entries are expected: misses,
    // logged without the contents.
    let other_key = store("sealed").codec(Codec::encrypted([2; 32]));
    assert!(other_key.load(&key).await.unwrap().is_none());
    assert!(store("sealed").load(&key).await.unwrap().is_none());
    let logs = captured.text();
    assert!(logs.contains("unreadable keychain entry"), "{logs}");
    assert!(!logs.contains("SENTINEL"), "{logs}");

    // Garbage written by someone else is a miss too, and the next save replaces it.
    let status = Command::new("sh")
        .args([
            "-c",
            "printf 'not a token' | secret-tool store --label=x service \"$1\" username \"$2\"",
            "sh",
        ])
        .arg(sealed.service())
        .arg(&name)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(sealed.load(&key).await.unwrap().is_none());
    sealed.save(&key, &token("AT-3", "RT-3")).await.unwrap();
    let access = secret(sealed.load(&key).await.unwrap().unwrap().access_token());
    assert_eq!(access, "AT-3");
}

#[tokio::test]
async fn the_renewal_lock_excludes_other_holders_until_released() {
    if !in_secret_service("the_renewal_lock_excludes_other_holders_until_released") {
        return;
    }
    let key = key("lock");
    let a = store("lock");
    let b = store("lock").lock_timeout(Duration::from_millis(200));
    let dir = a.lock_dir().unwrap().to_owned();
    assert!(
        dir.ends_with("oauth-layer/keyring-locks"),
        "{}",
        dir.display()
    );

    let held = a.lock(&key).await.unwrap().unwrap();
    let err = b.lock(&key).await.map(|l| l.is_some()).unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
    held.release().await;
    let again = b.lock(&key).await.unwrap().unwrap();
    // Dropping a lock without release frees it too (as a dying process does).
    drop(again);
    a.lock(&key).await.unwrap().unwrap().release().await;

    // The lock directory is private, and one others may enter is refused.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let open = TempDir::new();
    std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = store("lock")
        .locks_in(open.path())
        .lock(&key)
        .await
        .map(|l| l.is_some())
        .unwrap_err();
    assert!(err.to_string().contains("other users may use it"), "{err}");
}

/// The system clock, two hours back on the wall: tokens built with it expired long ago.
#[derive(Debug)]
struct TwoHoursAgo;

impl Clock for TwoHoursAgo {
    fn now(&self) -> Instant {
        SystemClock.now()
    }

    fn now_utc(&self) -> SystemTime {
        SystemClock.now_utc() - Duration::from_secs(2 * 3600)
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        SystemClock.sleep(duration)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_programs_finding_the_token_expired_refresh_once() {
    if !in_secret_service("two_programs_finding_the_token_expired_refresh_once") {
        return;
    }
    let server = server(None).await;
    let flow = || Password::new(USER, PASSWORD).scope(SCOPE);
    // Seed the keychain with a real grant, then write it back as if issued two hours ago.
    let seed = TokenSource::builder(client(&server.token_url()), flow())
        .store(store("once"))
        .build();
    let first = seed.token().await.unwrap();
    let expired = Token::builder(secret(first.access_token()))
        .refresh_token(secret(first.refresh_token().unwrap()))
        .scope(SCOPE)
        .expires_in(Duration::from_secs(3600))
        .build(&TwoHoursAgo)
        .unwrap();
    store("once")
        .save(seed.cache_key(), &expired)
        .await
        .unwrap();
    server.reset_counts();

    // Two programs: each its own source and its own store value, sharing only the keychain
    // and the lock directory.
    let programs: Vec<TokenSource> = (0..2)
        .map(|_| {
            TokenSource::builder(client(&server.token_url()), flow())
                .store(store("once"))
                .build()
        })
        .collect();
    let (a, b) = tokio::join!(programs[0].token(), programs[1].token());
    let (a, b) = (a.unwrap(), b.unwrap());

    assert_eq!(server.token_requests_for("refresh_token"), 1, "one refresh");
    assert_eq!(
        server.token_requests(),
        1,
        "no invalid_grant, hence no fallback to the password grant"
    );
    assert_eq!(secret(a.access_token()), secret(b.access_token()));
    assert_ne!(secret(a.access_token()), secret(first.access_token()));
}

#[test]
fn debug_shows_the_service_and_no_secrets() {
    let store = KeyringStore::for_service("my-app").encryption_key([9; 32]);
    let shown = format!("{store:?}");
    assert!(shown.contains("my-app"), "{shown}");
    assert!(shown.contains("encrypted: true"), "{shown}");
    assert!(
        !shown.contains("9, 9") && !shown.contains("0909"),
        "{shown}"
    );
    assert!(
        KeyringStore::new()
            .service()
            .starts_with("oauth-layer:keyring_store")
    );
}

/// What a store says where no keychain can be reached, from a child process with `env`.
fn no_keychain_message(env: &[(&str, &str)], remove: &[&str]) -> String {
    let mut cmd = child("child_without_a_keychain");
    cmd.env(CHILD_NO_KEYCHAIN, "1").env_remove(INSIDE);
    for name in remove {
        cmd.env_remove(name);
    }
    for (name, value) in env {
        cmd.env(name, value);
    }
    let output = cmd.output().unwrap();
    let shown = shown(&output);
    assert!(output.status.success(), "{shown}");
    assert!(shown.contains("1 passed"), "{shown}");
    shown
}

#[test]
fn without_a_session_bus_the_error_says_what_is_missing_and_what_to_use() {
    let home = TempDir::new();
    let run = home.private("run");
    let run = run.to_str().unwrap();

    // DBUS_SESSION_BUS_ADDRESS pointing nowhere.
    let nowhere = format!("unix:path={}/no-bus-here", home.path().display());
    let shown = no_keychain_message(
        &[
            ("DBUS_SESSION_BUS_ADDRESS", &nowhere),
            ("XDG_RUNTIME_DIR", run),
        ],
        &[],
    );
    assert!(
        shown.contains(&format!(
            "DBUS_SESSION_BUS_ADDRESS={nowhere} cannot be reached"
        )),
        "{shown}"
    );
    assert!(shown.contains("FileStore"), "{shown}");

    // No session bus at all, as on a server over SSH.
    let shown = no_keychain_message(&[("XDG_RUNTIME_DIR", run)], &["DBUS_SESSION_BUS_ADDRESS"]);
    assert!(shown.contains("there is no D-Bus session bus"), "{shown}");
    assert!(
        shown.contains("DBUS_SESSION_BUS_ADDRESS is not set"),
        "{shown}"
    );
    assert!(shown.contains("FileStore"), "{shown}");
}

/// What a store says in a new D-Bus session (`config`: its configuration file, else the
/// standard session bus, which starts GNOME Keyring on demand), from a child process.
fn message_in_a_session(config: Option<&Path>, home: &TempDir) -> String {
    let mut cmd = Command::new("dbus-run-session");
    if let Some(config) = config {
        cmd.arg(format!("--config-file={}", config.display()));
    }
    let output = cmd
        .arg("--")
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_without_a_keychain",
            "--nocapture",
            "--ignored",
            "--test-threads=1",
        ])
        .env(CHILD_NO_KEYCHAIN, "1")
        .env_remove(INSIDE)
        .env("HOME", home.path())
        .env("XDG_DATA_HOME", home.private("data"))
        .env("XDG_RUNTIME_DIR", home.private("run"))
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run dbus-run-session ({e}): run `bash tests/setup.sh` first")
        });
    let shown = shown(&output);
    assert!(output.status.success(), "{shown}");
    assert!(shown.contains("1 passed"), "{shown}");
    shown
}

#[test]
fn a_session_bus_without_a_secret_service_is_named_as_such() {
    // A session bus that cannot start services on demand, and nothing that provides one.
    let home = TempDir::new();
    let config = home.path().join("session.conf");
    std::fs::write(
        &config,
        format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>"#,
            home.path().display()
        ),
    )
    .unwrap();
    let shown = message_in_a_session(Some(&config), &home);
    assert!(
        shown.contains("no Secret Service is running on the D-Bus session bus"),
        "{shown}"
    );
    assert!(shown.contains("FileStore"), "{shown}");
}

#[test]
fn a_keyring_nobody_can_unlock_is_named_as_such() {
    // The standard session bus starts GNOME Keyring on demand, with no keyring unlocked and
    // nobody to answer the prompt that would create one.
    let home = TempDir::new();
    let shown = message_in_a_session(None, &home);
    assert!(shown.contains("keyring is locked"), "{shown}");
    assert!(shown.contains("unlock the login keyring first"), "{shown}");
    assert!(shown.contains("FileStore"), "{shown}");
}

#[tokio::test]
#[ignore = "a child of the tests without a keychain"]
async fn child_without_a_keychain() {
    if std::env::var_os(CHILD_NO_KEYCHAIN).is_none() {
        return;
    }
    let store = store("nowhere");
    let check = store.check().await.unwrap_err();
    let load = store.load(&key("a")).await.unwrap_err();
    let save = store
        .save(&key("a"), &token("AT-SENTINEL-1", "RT-SENTINEL-2"))
        .await
        .unwrap_err();
    let delete = store.delete(&key("a")).await.unwrap_err();
    for err in [&check, &load, &save, &delete] {
        assert!(matches!(err, Error::Store(_)), "{err:?}");
        let text = err.to_string();
        assert!(!text.contains("SENTINEL"), "{text}");
        assert!(text.contains("oauth-layer-test:nowhere"), "{text}");
    }
    // The parent reads the message.
    println!("{save}");

    // A source without its store still works from memory: the error is a warning, not a
    // failure, so a program keeps running where the keychain is missing.
    let server = server(None).await;
    let source = TokenSource::builder(client(&server.token_url()), ClientCredentials::new())
        .store(store)
        .build();
    assert!(source.token().await.is_ok());
}
