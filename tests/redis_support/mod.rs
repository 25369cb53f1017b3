//! Redis servers for the Redis store's tests: a `redis-server` (or a Sentinel) child process
//! on a free loopback port, killed when dropped.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub mod cluster;
pub mod fleet;

/// A `redis-server` child process on a loopback port, killed when dropped.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    password: Option<String>,
    dir: std::path::PathBuf,
}

impl RedisServer {
    pub async fn start() -> Self {
        Self::start_on(free_port(), None).await
    }

    pub async fn start_on(port: u16, password: Option<&str>) -> Self {
        Self::start_with(port, password, &[]).await
    }

    /// A replica of `primary` on a free port, ready once its link to the primary is up.
    pub async fn replica_of(primary: &RedisServer) -> Self {
        Self::replica_through(primary.port).await
    }

    /// A replica that reaches its primary through `link`, ready once its link is up.
    pub async fn replica_over(link: &ReplicationLink) -> Self {
        Self::replica_through(link.port).await
    }

    async fn replica_through(port: u16) -> Self {
        let replica = Self::start_with(
            free_port(),
            None,
            &["--replicaof", "127.0.0.1", &port.to_string()],
        )
        .await;
        replica.wait_for_link().await;
        replica
    }

    /// Waits until this replica's link to its primary is up.
    pub async fn wait_for_link(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut self.raw().await)
                .await
                .unwrap();
            if info.contains("master_link_status:up") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the replica never synced: {info}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the process (`SIGSTOP`): it holds its connections but answers nothing, as a
    /// server whose replication stalls.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen process run again (`SIGCONT`).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let status = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success(), "kill {signal} {pid}");
    }

    pub async fn start_with(port: u16, password: Option<&str>, extra: &[&str]) -> Self {
        // Its own directory: a replica's full sync writes an RDB file there, which any server
        // started in the same directory would load.
        let dir = scratch_dir("redis", port);
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&dir)
            .args(extra)
            .args(["--save", "", "--appendonly", "no"])
            // A replica's first sync starts at once, not after Redis's default five seconds.
            .args(["--repl-diskless-sync-delay", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(password) = password {
            command.args(["--requirepass", password]);
        }
        let child = match command.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server is not installed; these tests need it: \
                 `apt-get install redis-server` (CI's .ci/run installs it)"
            ),
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        let mut server = Self {
            child: Some(child),
            port,
            password: password.map(str::to_owned),
            dir,
        };
        server.wait_until_ready().await;
        server
    }

    /// Waits until the server answers `PING` (`NOAUTH` counts: it is up).
    async fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "redis-server exited at start ({status}); is port {} free?",
                    self.port
                );
            }
            if let Ok(mut tcp) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await {
                let mut reply = [0u8; 16];
                if tcp.write_all(b"PING\r\n").await.is_ok()
                    && let Ok(n) = tcp.read(&mut reply).await
                    && (reply[..n].starts_with(b"+PONG") || reply[..n].starts_with(b"-NOAUTH"))
                {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server never answered PING"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A plain connection for looking at (and tampering with) what the store wrote.
    pub async fn raw(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A loopback port on which nothing listens now, and which no other test's server can be given
/// meanwhile: it lies below the kernel's ephemeral range, where `bind(0)` (and so [`free_port`])
/// picks. For a port that must stay empty for a while (a store that must find no Redis there,
/// and maybe one started on it later): a [`free_port`] was once handed again to a server of a
/// test running alongside, and the store found that test's Redis.
pub fn unused_port() -> u16 {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let first = 10_000;
    let span = ephemeral_low.saturating_sub(first).max(1);
    let mut seed = [0u8; 2];
    getrandom::fill(&mut seed).unwrap();
    let start = u16::from_le_bytes(seed) % span;
    (0..span)
        .map(|i| first + (start + i) % span)
        .find(|&port| TcpListener::bind(("127.0.0.1", port)).is_ok())
        .expect("a free loopback port below the ephemeral range")
}

/// A new empty directory for one server, removed when the server is dropped.
fn scratch_dir(what: &str, port: u16) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("oauth-layer-{what}-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `true` when `redis-server` runs here; otherwise says so, for a test that then skips.
pub fn redis_runs(test: &str) -> bool {
    match Command::new("redis-server").arg("--version").output() {
        Ok(out) if out.status.success() => true,
        _ => {
            eprintln!(
                "skipping {test}: redis-server cannot run here (`apt-get install redis-server`; \
                 tests/setup.sh installs it)"
            );
            false
        }
    }
}

/// A Redis Sentinel (`redis-server --sentinel`) watching one primary under `SERVICE`, with
/// short timeouts (down after 500 ms, failover timeout 2 s), its config in a temporary
/// directory; killed when dropped.
pub struct Sentinel {
    child: Option<Child>,
    port: u16,
    dir: std::path::PathBuf,
}

/// The service name the Sentinel watches.
pub const SERVICE: &str = "oauth";

impl Sentinel {
    pub async fn watch(primary: &RedisServer) -> Self {
        Self::watch_with(primary, "").await
    }

    /// A Sentinel that reaches the primary with `user` (`None`: the default user) and
    /// `password`, itself without a password.
    pub async fn watch_authenticated(
        primary: &RedisServer,
        user: Option<&str>,
        password: &str,
    ) -> Self {
        let mut auth = format!("sentinel auth-pass {SERVICE} {password}\n");
        if let Some(user) = user {
            auth.push_str(&format!("sentinel auth-user {SERVICE} {user}\n"));
        }
        Self::watch_with(primary, &auth).await
    }

    async fn watch_with(primary: &RedisServer, extra_config: &str) -> Self {
        let port = free_port();
        let dir = scratch_dir("sentinel", port);
        let config = dir.join("sentinel.conf");
        std::fs::write(
            &config,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                 sentinel monitor {SERVICE} 127.0.0.1 {primary} 1\n\
                 sentinel down-after-milliseconds {SERVICE} 500\n\
                 sentinel failover-timeout {SERVICE} 2000\n\
                 sentinel parallel-syncs {SERVICE} 1\n{extra_config}",
                dir = dir.display(),
                primary = primary.port,
            ),
        )
        .unwrap();
        let child = Command::new("redis-server")
            .arg(&config)
            .arg("--sentinel")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start redis-server --sentinel");
        let sentinel = Self {
            child: Some(child),
            port,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while sentinel.primary_port().await != Some(primary.port) {
            assert!(
                Instant::now() < deadline,
                "the Sentinel never named the primary"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sentinel
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port of the primary the Sentinel names now (`None` while it does not answer).
    pub async fn primary_port(&self) -> Option<u16> {
        let client = redis::Client::open(self.url()).ok()?;
        let mut connection = client.get_multiplexed_async_connection().await.ok()?;
        let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(SERVICE)
            .query_async(&mut connection)
            .await
            .ok()?;
        addr.map(|(_, port)| port)
    }

    /// Waits until the Sentinel knows of `count` replicas (it learns them from the primary).
    pub async fn wait_for_replicas(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let client = redis::Client::open(self.url()).unwrap();
            let mut connection = client.get_multiplexed_async_connection().await.unwrap();
            let replicas: Vec<redis::Value> = redis::cmd("SENTINEL")
                .arg("replicas")
                .arg(SERVICE)
                .query_async(&mut connection)
                .await
                .unwrap();
            if replicas.len() >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the Sentinel never saw the replicas"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The flags the Sentinel gives the primary (`master` when it is up and settled).
    pub async fn primary_flags(&self) -> Option<String> {
        let client = redis::Client::open(self.url()).ok()?;
        let mut connection = client.get_multiplexed_async_connection().await.ok()?;
        let fields: Vec<String> = redis::cmd("SENTINEL")
            .arg("master")
            .arg(SERVICE)
            .query_async(&mut connection)
            .await
            .ok()?;
        let at = fields.iter().position(|f| f == "flags")?;
        fields.get(at + 1).cloned()
    }

    /// Waits until the Sentinel names the server on `port` as the primary, and counts it up
    /// (clients asking it then get that primary, not an error).
    pub async fn wait_for_primary(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.primary_port().await != Some(port)
            || self.primary_flags().await.as_deref() != Some("master")
        {
            assert!(
                Instant::now() < deadline,
                "the Sentinel never promoted port {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP relay between a replica and its primary that can be cut: once cut, whatever either
/// side sends is dropped, as on a partitioned network. Killing the primary then loses every
/// write the replica had not received, which a frozen replica would not (the kernel would
/// still take the bytes for it).
pub struct ReplicationLink {
    port: u16,
    cut: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl ReplicationLink {
    pub async fn to(primary: &RedisServer) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let upstream = primary.port;
        let task = tokio::spawn({
            let cut = cut.clone();
            async move {
                while let Ok((downstream, _)) = listener.accept().await {
                    let Ok(up) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    else {
                        continue;
                    };
                    let (down_read, down_write) = downstream.into_split();
                    let (up_read, up_write) = up.into_split();
                    tokio::spawn(relay(up_read, down_write, cut.clone()));
                    tokio::spawn(relay(down_read, up_write, cut.clone()));
                }
            }
        });
        Self { port, cut, task }
    }

    /// From now on nothing crosses the link.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }
}

impl Drop for ReplicationLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    cut: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if !cut.load(Ordering::SeqCst) && to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
