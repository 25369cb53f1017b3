//! A headless Chromium driven over WebDriver by a `chromedriver` the test starts: shared by the
//! interop suite (tests/interop.rs) and the loopback pages' look (tests/loopback_pages.rs).
//! Both processes stop, and the fresh profile folder goes, when the [`Chromium`] is dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What to say when Chromium or chromedriver is missing or will not start.
pub(crate) const INSTALL_HINT: &str = "these tests drive a real headless Chromium; install \
                                       chromium and chromedriver (bash tests/setup.sh)";

/// How long chromedriver may take to accept a session.
const PATIENCE: Duration = Duration::from_secs(30);

/// A headless Chromium with a fresh profile, and the WebDriver client that drives it.
pub(crate) struct Chromium {
    pub(crate) webdriver: fantoccini::Client,
    _driver: Driver,
}

struct Driver {
    child: Child,
    profile: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// `name` on `PATH`, else in `/usr/bin` (where Debian's packages put both programs).
fn program(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .chain([Path::new("/usr/bin").join(name)])
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("`{name}` is not installed: {INSTALL_HINT}"))
}

impl Chromium {
    /// Starts chromedriver and opens a session. `tag` names the profile folder; `args` are
    /// added to the headless flags every run needs (no sandbox as root, no background traffic
    /// on a closed network); `capabilities` are added to the session's (a logging preference).
    pub(crate) async fn start(
        tag: &str,
        args: &[&str],
        capabilities: serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        let chromium = program("chromium");
        let chromedriver = program("chromedriver");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e}; {INSTALL_HINT}",
                    chromedriver.display()
                )
            });
        let profile =
            std::env::temp_dir().join(format!("oauth-layer-{tag}-{}-{port}", std::process::id()));
        let driver = Driver {
            child,
            profile: profile.clone(),
        };
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).unwrap();
        let mut flags: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
        ]
        .into_iter()
        .chain(args.iter().copied())
        .map(str::to_owned)
        .collect();
        flags.push(format!("--user-data-dir={}", profile.display()));
        let mut caps = capabilities;
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "binary": chromium, "args": flags }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + PATIENCE;
        loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match fantoccini::ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(webdriver) => {
                    return Self {
                        webdriver,
                        _driver: driver,
                    };
                }
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!(
                    "cannot open a Chromium session through {}: {e}; {INSTALL_HINT}",
                    chromedriver.display()
                ),
            }
        }
    }
}
