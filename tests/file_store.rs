//! The secure file store: tokens shared across processes through private files, written
//! atomically, locked around renewal, and corrupt files treated as misses (SECURITY.md rules 21,
//! 33, 35, 36, 37 and 38).
//!
//! Tests that need other processes re-run this test binary with `--exact <child> --ignored`; the
//! child tests are ignored and do nothing unless their environment variable is set.
#![cfg(feature = "file-store")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::logs::Captured;
use std::collections::HashSet;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oauth_layer::clock::{Clock, ManualClock, Sleep, SystemClock};
use oauth_layer::flow::{ClientCredentials, Flow, Password};
use oauth_layer::store::{CacheKey, Codec, FileStore, TokenStore};
use oauth_layer::testing::TestServer;
use oauth_layer::{AuthMethod, Error, OAuthClient, Token, TokenSource};
use secrecy::ExposeSecret;
use serde_json::json;
use tokio::task::JoinSet;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CLIENT_ID: &str = "file-store-test";
const CLIENT_SECRET: &str = "SENTINEL-SECRET-7070";
const USER: &str = "alice";
const PASSWORD: &str = "SENTINEL-PASSWORD-8080";

const CHILD_RENEW_DIR: &str = "FILE_STORE_TEST_RENEW_DIR";
const CHILD_RENEW_URL: &str = "FILE_STORE_TEST_RENEW_URL";
const CHILD_RENEW_START: &str = "FILE_STORE_TEST_RENEW_START_MS";
const CHILD_WRITER_DIR: &str = "FILE_STORE_TEST_WRITER_DIR";
const CHILD_UMASK_DIR: &str = "FILE_STORE_TEST_UMASK_DIR";
const CHILD_EXPECTED_DIR: &str = "FILE_STORE_TEST_EXPECTED_DIR";

/// A private (0700) directory under the system temp dir with a random name, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).unwrap();
        let name: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let path = std::env::temp_dir().join(format!("oauth-layer-file-store-{name}"));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .unwrap();
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
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

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o777
}

/// Names in `dir` that contain `part`.
fn names_with(dir: &Path, part: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(part))
        .collect()
}

fn secret(s: &secrecy::SecretString) -> String {
    s.expose_secret().to_owned()
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

fn password_client(token_url: &str) -> OAuthClient {
    OAuthClient::builder(CLIENT_ID)
        .secret(CLIENT_SECRET)
        .token_url(token_url)
        .build()
        .unwrap()
}

fn password_flow() -> Password {
    Password::new(USER, PASSWORD).scope("api")
}

async fn password_server() -> TestServer {
    TestServer::builder()
        .client(
            CLIENT_ID,
            Some(CLIENT_SECRET),
            AuthMethod::ClientSecretBasic,
        )
        .user(USER, PASSWORD)
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_new_process_starts_with_the_saved_token_and_refresh_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "AT-1",
            "token_type": "Bearer",
            "expires_in": 3600,
            "refresh_token": "RT-1",
            "scope": "api",
        })))
        .expect(1)
        .mount(&server)
        .await;
    let dir = TempDir::new();
    let cache = dir.join("cache");
    let client = || {
        OAuthClient::builder("c")
            .secret("s")
            .token_url(format!("{}/token", server.uri()))
            .build()
            .unwrap()
    };

    let first = TokenSource::builder(client(), ClientCredentials::new().scope("api"))
        .store(FileStore::in_dir(&cache))
        .build();
    let issued = first.token().await.unwrap();

    // A new process: a new store instance and a new source on the same directory.
    let second = TokenSource::builder(client(), ClientCredentials::new().scope("api"))
        .store(FileStore::in_dir(&cache))
        .build();
    let restored = second.token().await.unwrap();

    assert_eq!(secret(restored.access_token()), "AT-1");
    assert_eq!(secret(restored.refresh_token().unwrap()), "RT-1");
    assert_eq!(restored.scope(), Some("api"));
    let unix = |t: &Token| {
        t.expires_at_utc()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    assert_eq!(unix(&restored), unix(&issued));
    assert_eq!(mode(&cache), 0o700);
    let file = FileStore::in_dir(&cache).path(second.cache_key()).unwrap();
    assert_eq!(mode(&file), 0o600);
    server.verify().await;
}

/// The system clock, two hours back on the wall: tokens built with it expired long ago.
#[derive(Debug)]
struct TwoHoursAgo;

impl Clock for TwoHoursAgo {
    fn now(&self) -> std::time::Instant {
        SystemClock.now()
    }

    fn now_utc(&self) -> SystemTime {
        SystemTime::now() - Duration::from_secs(2 * 3600)
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        SystemClock.sleep(duration)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_with_twenty_callers_each_refresh_once() {
    let server = password_server().await;
    let dir = TempDir::new();
    let store = FileStore::in_dir(dir.path());

    // Seed the cache with a real grant, then write it back as if issued two hours ago for one.
    let seed = TokenSource::builder(password_client(&server.token_url()), password_flow())
        .store(store.clone())
        .build();
    let first = seed.token().await.unwrap();
    let expired = Token::builder(secret(first.access_token()))
        .refresh_token(secret(first.refresh_token().unwrap()))
        .scope("api")
        .expires_in(Duration::from_secs(3600))
        .build(&TwoHoursAgo)
        .unwrap();
    store.save(seed.cache_key(), &expired).await.unwrap();
    server.reset_counts();

    let start = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_millis(500);
    let children: Vec<_> = (0..2)
        .map(|_| {
            child("child_twenty_callers_renew")
                .env(CHILD_RENEW_DIR, dir.path())
                .env(CHILD_RENEW_URL, server.token_url())
                .env(CHILD_RENEW_START, start.as_millis().to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut tokens = HashSet::new();
    for child in children {
        let out = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "child failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = stdout
            .lines()
            .find_map(|l| l.split_once("CHILD-TOKEN ").map(|(_, token)| token))
            .expect("the child reports its token");
        tokens.insert(line.to_owned());
    }

    assert_eq!(server.token_requests_for("refresh_token"), 1, "one refresh");
    assert_eq!(
        server.token_requests(),
        1,
        "no invalid_grant, hence no fallback to the password grant"
    );
    assert_eq!(tokens.len(), 1, "both processes use the one new token");
    assert!(!tokens.contains(&secret(first.access_token())));
    let on_disk = store.load(seed.cache_key()).await.unwrap().unwrap();
    assert_ne!(
        secret(on_disk.refresh_token().unwrap()),
        secret(first.refresh_token().unwrap()),
        "the rotated refresh token is on disk"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of two_processes_with_twenty_callers_each_refresh_once"]
async fn child_twenty_callers_renew() {
    let Ok(dir) = std::env::var(CHILD_RENEW_DIR) else {
        return;
    };
    let url = std::env::var(CHILD_RENEW_URL).unwrap();
    let start: u64 = std::env::var(CHILD_RENEW_START).unwrap().parse().unwrap();
    let source = TokenSource::builder(password_client(&url), password_flow())
        .store(FileStore::in_dir(dir))
        .build();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    if let Some(wait) = Duration::from_millis(start).checked_sub(now) {
        tokio::time::sleep(wait).await;
    }
    let mut callers = JoinSet::new();
    for _ in 0..20 {
        let source = source.clone();
        callers.spawn(async move { source.token().await });
    }
    let mut seen = HashSet::new();
    while let Some(result) = callers.join_next().await {
        let token = result.unwrap().unwrap();
        seen.insert(secret(token.access_token()));
    }
    assert_eq!(seen.len(), 1);
    println!("CHILD-TOKEN {}", seen.into_iter().next().unwrap());
}

#[tokio::test]
async fn killing_a_writer_never_leaves_a_partial_file() {
    let dir = TempDir::new();
    let key = key("writer");
    let store = FileStore::in_dir(dir.path());
    store
        .save(&key, &token("AT-seed", "RT-seed"))
        .await
        .unwrap();

    for _ in 0..20 {
        let mut writer = child("child_writer_loop")
            .env(CHILD_WRITER_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The test harness prints its own words before the child's on the same line.
        let mut ready = String::new();
        let mut out = BufReader::new(writer.stdout.take().unwrap());
        while !ready.contains("WRITING") {
            ready.clear();
            assert!(out.read_line(&mut ready).unwrap() > 0, "the writer started");
        }
        let mut pause = [0u8; 1];
        getrandom::fill(&mut pause).unwrap();
        std::thread::sleep(Duration::from_micros(u64::from(pause[0]) * 80));
        writer.kill().unwrap();
        writer.wait().unwrap();

        let loaded = FileStore::in_dir(dir.path())
            .load(&key)
            .await
            .unwrap()
            .expect("a whole token, old or new");
        let access = secret(loaded.access_token());
        let n = access.strip_prefix("AT-").unwrap();
        assert_eq!(secret(loaded.refresh_token().unwrap()), format!("RT-{n}"));
        assert!(names_with(dir.path(), ".corrupt-").is_empty());
    }
}

#[tokio::test]
#[ignore = "child process of killing_a_writer_never_leaves_a_partial_file"]
async fn child_writer_loop() {
    let Ok(dir) = std::env::var(CHILD_WRITER_DIR) else {
        return;
    };
    let store = FileStore::in_dir(dir);
    let key = key("writer");
    for n in 0u64.. {
        let access = format!("AT-{n}-{}", "x".repeat(4096));
        let refresh = format!("RT-{n}-{}", "x".repeat(4096));
        store.save(&key, &token(&access, &refresh)).await.unwrap();
        if n == 0 {
            let mut out = io::stdout().lock();
            writeln!(out, "WRITING").unwrap();
            out.flush().unwrap();
        }
    }
}

#[test]
fn files_are_private_even_with_umask_000() {
    let dir = TempDir::new();
    let cache = dir.join("nested/cache");
    let out = child("child_save_with_umask_000")
        .env(CHILD_UMASK_DIR, &cache)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        mode(&dir.join("control")),
        0o666,
        "the child really ran with umask 000"
    );
    assert_eq!(mode(&cache), 0o700);
    assert_eq!(mode(&dir.join("nested")), 0o700);
    let store = FileStore::in_dir(&cache);
    let key = key("umask");
    let entry = store.path(&key).unwrap();
    assert_eq!(mode(&entry), 0o600);
    assert_eq!(mode(&entry.with_extension("lock")), 0o600);
}

#[tokio::test]
#[ignore = "child process of files_are_private_even_with_umask_000"]
async fn child_save_with_umask_000() {
    let Ok(cache) = std::env::var(CHILD_UMASK_DIR) else {
        return;
    };
    rustix::process::umask(rustix::fs::Mode::empty());
    let cache = PathBuf::from(cache);
    let root = cache.parent().unwrap().parent().unwrap();
    std::fs::write(root.join("control"), b"umask probe").unwrap();
    let store = FileStore::in_dir(&cache);
    let key = key("umask");
    store.save(&key, &token("AT-u", "RT-u")).await.unwrap();
    let lock = store.lock(&key).await.unwrap().unwrap();
    lock.release().await;
}

/// Linux only: macOS and the BSDs do not read `XDG_CACHE_HOME`.
#[cfg(target_os = "linux")]
#[test]
fn the_default_directory_is_oauth_layer_cache_or_the_user_cache_dir() {
    let dir = TempDir::new();
    let chosen = dir.join("chosen");
    let xdg = dir.join("xdg");
    for (env_value, expected) in [
        (chosen.as_os_str(), chosen.clone()),
        ("".as_ref(), xdg.join("oauth-layer")),
    ] {
        let out = child("child_default_dir")
            .env("OAUTH_LAYER_CACHE", env_value)
            .env("XDG_CACHE_HOME", &xdg)
            .env(CHILD_EXPECTED_DIR, &expected)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let entry = FileStore::in_dir(&expected).path(&key("default")).unwrap();
        assert_eq!(mode(&entry), 0o600, "{}", entry.display());
    }
}

#[tokio::test]
#[ignore = "child process of the_default_directory_is_oauth_layer_cache_or_the_user_cache_dir"]
async fn child_default_dir() {
    let Ok(expected) = std::env::var(CHILD_EXPECTED_DIR) else {
        return;
    };
    let store = FileStore::new().unwrap();
    assert_eq!(store.dir(), Path::new(&expected));
    store
        .save(&key("default"), &token("AT-d", "RT-d"))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_existing_directory_open_to_others_is_refused_and_left_as_it_was() {
    let dir = TempDir::new();
    let shared = dir.join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("report.txt"), "someone else's file").unwrap();
    for wide in [0o755, 0o750, 0o701, 0o777] {
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(wide)).unwrap();
        let store = FileStore::in_dir(&shared);
        let save = store.save(&key("wide"), &token("AT-w", "RT-w")).await;
        for result in [
            save.map(|()| true),
            store.load(&key("wide")).await.map(|t| t.is_some()),
            store.lock(&key("wide")).await.map(|l| l.is_some()),
            store.path(&key("wide")).map(|_| true),
        ] {
            match result {
                Err(Error::Store(message)) => {
                    assert!(message.contains(&shared.display().to_string()), "{message}");
                    assert!(message.contains(&format!("{wide:o}")), "{message}");
                    assert!(message.contains("chmod 700"), "{message}");
                    assert!(message.contains("directory of its own"), "{message}");
                }
                other => panic!("mode {wide:o}: expected a refusal, got {other:?}"),
            }
        }
        assert_eq!(mode(&shared), wide, "the directory's mode is not changed");
        assert_eq!(names_with(&shared, ""), ["report.txt"], "nothing written");
    }

    // Once its owner makes it private, the store uses it and leaves the other file alone.
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o700)).unwrap();
    let store = FileStore::in_dir(&shared);
    store
        .save(&key("wide"), &token("AT-w", "RT-w"))
        .await
        .unwrap();
    assert!(store.load(&key("wide")).await.unwrap().is_some());
    assert_eq!(
        std::fs::read_to_string(shared.join("report.txt")).unwrap(),
        "someone else's file"
    );
}

#[tokio::test]
async fn an_entry_opened_to_others_is_restricted_again_when_read() {
    let dir = TempDir::new();
    let store = FileStore::in_dir(dir.join("cache"));
    store
        .save(&key("wide"), &token("AT-w", "RT-w"))
        .await
        .unwrap();
    assert_eq!(mode(&dir.join("cache")), 0o700);

    let entry = store.path(&key("wide")).unwrap();
    std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(store.load(&key("wide")).await.unwrap().is_some());
    assert_eq!(mode(&entry), 0o600);
}

fn assert_refused(result: Result<impl std::fmt::Debug, Error>, why: &str) {
    match result {
        Err(Error::Store(message)) => assert!(message.contains(why), "{message}"),
        other => panic!("expected a refusal ({why}), got {other:?}"),
    }
}

#[tokio::test]
async fn a_symlinked_cache_file_is_refused_and_its_target_untouched() {
    let dir = TempDir::new();
    let cache = dir.join("cache");
    let store = FileStore::in_dir(&cache);
    store
        .save(&key("other"), &token("AT-o", "RT-o"))
        .await
        .unwrap();

    let target = dir.join("precious.txt");
    std::fs::write(&target, "precious").unwrap();
    let key = key("linked");
    std::os::unix::fs::symlink(&target, store.path(&key).unwrap()).unwrap();
    std::os::unix::fs::symlink(&target, store.path(&key).unwrap().with_extension("lock")).unwrap();

    assert_refused(store.load(&key).await, "symbolic link");
    assert_refused(
        store.save(&key, &token("AT-x", "RT-x")).await,
        "symbolic link",
    );
    assert_refused(store.lock(&key).await.map(|l| l.is_some()), "symbolic link");

    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
    assert!(
        std::fs::symlink_metadata(store.path(&key).unwrap())
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[tokio::test]
async fn a_symlinked_cache_directory_is_refused() {
    let dir = TempDir::new();
    let real = dir.join("real");
    std::fs::create_dir(&real).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();
    let link = dir.join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();

    let store = FileStore::in_dir(&link);
    assert_refused(store.load(&key("d")).await, "symbolic link");
    assert_refused(
        store.save(&key("d"), &token("AT-d", "RT-d")).await,
        "symbolic link",
    );
    assert!(std::fs::read_dir(&real).unwrap().next().is_none());

    // A file where the directory should be is refused too.
    std::fs::write(dir.join("plain"), "x").unwrap();
    assert_refused(
        FileStore::in_dir(dir.join("plain")).load(&key("d")).await,
        "not a directory",
    );
}

#[tokio::test]
async fn files_owned_by_another_user_are_refused() {
    if rustix::process::geteuid().as_raw() != 0 {
        eprintln!("skipped: changing a file's owner needs root");
        return;
    }
    let dir = TempDir::new();
    let cache = dir.join("cache");
    let store = FileStore::in_dir(&cache);
    let key = key("owned");
    store.save(&key, &token("AT-1", "RT-1")).await.unwrap();

    std::os::unix::fs::chown(store.path(&key).unwrap(), Some(4242), None).unwrap();
    assert_refused(store.load(&key).await, "owned by another user");
    assert_refused(
        store.save(&key, &token("AT-2", "RT-2")).await,
        "owned by another user",
    );

    std::os::unix::fs::chown(store.path(&key).unwrap(), Some(0), None).unwrap();
    std::os::unix::fs::chown(&cache, Some(4242), None).unwrap();
    assert_refused(
        FileStore::in_dir(&cache).load(&key).await,
        "owned by another user",
    );
}

#[tokio::test(flavor = "current_thread")]
async fn truncated_garbage_and_future_files_are_misses_moved_aside_without_secrets_in_logs() {
    let captured = Captured::default();
    let _default = captured.install(tracing::Level::TRACE);

    let dir = TempDir::new();
    let store = FileStore::in_dir(dir.path());
    let key = key("corrupt");
    store
        .save(&key, &token("SENTINEL-ACCESS-1", "SENTINEL-REFRESH-2"))
        .await
        .unwrap();
    let entry = store.path(&key).unwrap();
    let good = std::fs::read(&entry).unwrap();
    let mut random = vec![0u8; 300];
    getrandom::fill(&mut random).unwrap();
    let future = String::from_utf8(good.clone())
        .unwrap()
        .replace("\"version\":1", "\"version\":99");

    let cases: [(&str, &[u8]); 5] = [
        ("truncated", &good[..good.len() / 2]),
        ("empty", b""),
        ("random bytes", &random),
        ("version 99 only", br#"{"version":99}"#),
        ("future version", future.as_bytes()),
    ];
    for (what, bytes) in cases {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&entry)
            .unwrap()
            .write_all(bytes)
            .unwrap();
        assert!(store.load(&key).await.unwrap().is_none(), "{what}");
        assert!(!entry.exists(), "{what}: moved away");
        let aside = names_with(dir.path(), ".corrupt-");
        assert_eq!(aside.len(), 1, "{what}: {aside:?}");
        assert_eq!(
            std::fs::read(dir.join(&aside[0])).unwrap(),
            bytes,
            "{what}: kept as it was"
        );
        std::fs::remove_file(dir.join(&aside[0])).unwrap();
    }

    let logs = captured.text();
    assert_eq!(logs.matches("moved aside").count(), 5, "{logs}");
    assert!(!logs.contains("SENTINEL"), "{logs}");
}

#[tokio::test]
async fn encrypted_files_hide_the_tokens_and_other_keys_miss() {
    let dir = TempDir::new();
    let key = key("sealed");
    let sealed = FileStore::in_dir(dir.path()).encryption_key([1; 32]);
    sealed
        .save(&key, &token("SENTINEL-ACCESS-3", "SENTINEL-REFRESH-4"))
        .await
        .unwrap();

    let bytes = std::fs::read(sealed.path(&key).unwrap()).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains("SENTINEL-ACCESS-3"), "{text}");
    assert!(!text.contains("SENTINEL-REFRESH-4"), "{text}");

    let back = sealed.load(&key).await.unwrap().unwrap();
    assert_eq!(secret(back.access_token()), "SENTINEL-ACCESS-3");
    assert_eq!(secret(back.refresh_token().unwrap()), "SENTINEL-REFRESH-4");

    let other = FileStore::in_dir(dir.path()).codec(Codec::encrypted([2; 32]));
    assert!(other.load(&key).await.unwrap().is_none());
    assert_eq!(names_with(dir.path(), ".corrupt-").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_refresh_token_is_on_disk_before_token_returns() {
    let clock = ManualClock::new();
    let server = TestServer::builder()
        .client(
            CLIENT_ID,
            Some(CLIENT_SECRET),
            AuthMethod::ClientSecretBasic,
        )
        .user(USER, PASSWORD)
        .clock(clock.clone())
        .start()
        .await
        .unwrap();
    let dir = TempDir::new();
    let client = password_client(&server.token_url())
        .to_builder()
        .clock(clock.clone())
        .build()
        .unwrap();
    let key = password_flow().cache_key(&client);

    // What the file held each time the hook ran, next to the refresh token being handed out.
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let probe = FileStore::in_dir(dir.path()).clock(clock.clone());
    let hook = {
        let seen = seen.clone();
        move |token: &Token| {
            let on_disk = std::thread::scope(|s| {
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
            .expect("the token is on disk");
            seen.lock().unwrap().push((
                secret(token.refresh_token().unwrap()),
                secret(on_disk.refresh_token().unwrap()),
            ));
        }
    };
    let source = TokenSource::builder(client, password_flow())
        .store(FileStore::in_dir(dir.path()).clock(clock.clone()))
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
    for (handed_out, on_disk) in seen.iter() {
        assert_eq!(handed_out, on_disk);
    }
}

#[tokio::test]
async fn stale_entries_are_pruned_and_fresh_ones_kept() {
    let dir = TempDir::new();
    let first = FileStore::in_dir(dir.path());
    let (stale, fresh) = (key("stale"), key("fresh"));
    first.save(&stale, &token("AT-s", "RT-s")).await.unwrap();
    first.save(&fresh, &token("AT-f", "RT-f")).await.unwrap();
    first.lock(&stale).await.unwrap().unwrap().release().await;
    let entry_name = |key: &CacheKey| {
        first
            .path(key)
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    let digest = entry_name(&stale).strip_suffix(".json").unwrap().to_owned();
    let leftovers = [
        format!("{digest}.json.corrupt-1700000000"),
        format!(".{digest}.json.tmp-0011223344556677"),
        ".cache-key.salt.tmp-8899aabbccddeeff".to_owned(),
        "notes.txt".to_owned(),
    ];
    for name in &leftovers {
        std::fs::write(dir.join(name), "x").unwrap();
    }
    let long_ago = SystemTime::now() - Duration::from_secs(100 * 24 * 3600);
    for name in leftovers.iter().cloned().chain([
        format!("{digest}.json"),
        format!("{digest}.lock"),
        // However old, the salt stays: it names every entry.
        "cache-key.salt".to_owned(),
    ]) {
        std::fs::File::options()
            .write(true)
            .open(dir.join(&name))
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
    }

    // A new store (a new process) prunes when it is first used.
    let second = FileStore::in_dir(dir.path()).prune_after(Duration::from_secs(30 * 24 * 3600));
    assert!(second.load(&fresh).await.unwrap().is_some());
    let mut left: Vec<_> = names_with(dir.path(), "");
    left.sort();
    let mut expected = vec![
        entry_name(&fresh),
        "cache-key.salt".to_owned(),
        "notes.txt".to_owned(),
    ];
    expected.sort();
    assert_eq!(
        left, expected,
        "only the fresh entry, the salt and foreign files remain"
    );
    assert!(second.load(&stale).await.unwrap().is_none());

    // Saving prunes too; an entry whose lock is held is left for later.
    let held = second.lock(&fresh).await.unwrap().unwrap();
    std::fs::File::options()
        .write(true)
        .open(second.path(&fresh).unwrap())
        .unwrap()
        .set_modified(long_ago)
        .unwrap();
    second.save(&stale, &token("AT-s2", "RT-s2")).await.unwrap();
    assert!(
        second.path(&fresh).unwrap().exists(),
        "a held entry is not pruned"
    );
    held.release().await;
    second.save(&stale, &token("AT-s3", "RT-s3")).await.unwrap();
    assert!(!second.path(&fresh).unwrap().exists(), "pruned once free");
    assert!(second.load(&stale).await.unwrap().is_some());
}

#[tokio::test]
async fn the_renewal_lock_excludes_other_holders_until_released() {
    let dir = TempDir::new();
    let key = key("lock");
    let a = FileStore::in_dir(dir.path());
    let b = FileStore::in_dir(dir.path()).lock_timeout(Duration::from_millis(200));

    let held = a.lock(&key).await.unwrap().unwrap();
    assert_refused(b.lock(&key).await.map(|l| l.is_some()), "timed out");
    held.release().await;
    let again = b.lock(&key).await.unwrap().unwrap();
    // Dropping a lock without release frees it too (as a dying process does).
    drop(again);
    a.lock(&key).await.unwrap().unwrap().release().await;
}

#[test]
fn debug_shows_neither_tokens_nor_keys() {
    let store = FileStore::in_dir("/tmp/somewhere").encryption_key([0x5a; 32]);
    let debug = format!("{store:?}");
    assert!(
        debug.contains("somewhere") && debug.contains("encrypted: true"),
        "{debug}"
    );
    assert!(!debug.contains("90") && !debug.contains("5a"), "{debug}");
}

#[tokio::test]
async fn a_stored_token_that_arrived_expired_is_never_handed_out() {
    let server = password_server().await;
    let dir = TempDir::new();
    let store = FileStore::in_dir(dir.path());
    let client = password_client(&server.token_url());
    let flow = password_flow();
    // A token saved with no lifetime left (a server that sent expires_in 0).
    let expired = Token::builder("stored-but-expired")
        .expires_in(Duration::ZERO)
        .build(&SystemClock)
        .unwrap();
    store
        .save(&flow.cache_key(&client), &expired)
        .await
        .unwrap();

    let tokens = TokenSource::builder(client, flow).store(store).build();
    let token = tokens.token().await.unwrap();
    assert_ne!(secret(token.access_token()), "stored-but-expired");
    assert_eq!(server.token_requests(), 1);
}
