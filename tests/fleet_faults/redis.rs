//! `redis-server` on a host of its own (the Redis namespace), listening on every address of
//! that host, with its append-only file fsynced at every write so a restart loses nothing.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::process::Child;

use crate::net::Network;

/// A `redis-server` process in its namespace, killed when dropped.
pub(crate) struct RedisHost {
    ns: String,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisHost {
    pub(crate) async fn start(ns: String) -> Self {
        let dir = std::env::temp_dir().join(format!("{ns}-data"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("Redis data directory");
        let mut host = RedisHost {
            ns,
            dir,
            child: None,
        };
        host.start_again().await;
        host
    }

    /// Starts the server (again, after [`kill`](Self::kill)) and waits until it answers.
    pub(crate) async fn start_again(&mut self) {
        let dir = self.dir.to_str().expect("UTF-8 path");
        let child = Network::exec_in(&self.ns, "redis-server")
            .args([
                "--port",
                "6379",
                "--bind",
                "0.0.0.0",
                "--protected-mode",
                "no",
            ])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .args(["--dir", dir])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server (tests/setup.sh installs it): {e}")
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pong = tokio::process::Command::new("ip")
                .args(["netns", "exec", &self.ns, "redis-cli", "-p", "6379", "ping"])
                .output()
                .await
                .is_ok_and(|o| o.stdout.starts_with(b"PONG"));
            if pong {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server never answered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the server at once (`SIGKILL`, as a crash would).
    pub(crate) async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

impl Drop for RedisHost {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
