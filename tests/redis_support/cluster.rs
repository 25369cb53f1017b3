//! A Redis Cluster for the Redis store's tests: three primaries and three replicas on free
//! loopback ports, made with `redis-cli --cluster create`, every process killed when dropped.
//! Failure detection is quick (`cluster-node-timeout` 1000 ms), so a failover takes seconds.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{RedisServer, free_port};

/// How long a node may be unreachable before the others count it as failed.
pub const NODE_TIMEOUT_MS: u64 = 1000;

pub struct Cluster {
    nodes: HashMap<u16, RedisServer>,
    /// Every node's `requirepass` (and `masterauth`), if any.
    password: Option<String>,
    /// One cluster at a time in a test binary, held until its nodes are gone (declared last, so
    /// dropped last): seven nodes each with a 1 s node timeout, several at once on a loaded
    /// 2-core machine, risk a busy node being declared failed in the middle of a test.
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

/// See [`Cluster::_turn`].
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One line of `CLUSTER NODES`.
#[derive(Clone, Debug)]
pub struct Node {
    pub id: String,
    pub port: u16,
    pub primary: bool,
    pub failed: bool,
    /// The primary's id, for a replica.
    pub primary_id: Option<String>,
    /// The slot ranges a primary serves.
    pub slots: Vec<(u16, u16)>,
}

impl Cluster {
    /// Three primaries and three replicas, every slot covered, every replica linked.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Like [`start`](Self::start), every node asking for `password`.
    pub async fn start_with(password: Option<&str>) -> Self {
        let turn = TURN.lock().await;
        let mut nodes = HashMap::new();
        for _ in 0..6 {
            let node = start_node(password).await;
            nodes.insert(node.port(), node);
        }
        let cluster = Self {
            nodes,
            password: password.map(str::to_owned),
            _turn: turn,
        };
        let addresses: Vec<String> = cluster
            .nodes
            .keys()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        cluster
            .redis_cli(
                &[
                    &["--cluster", "create"][..],
                    &str_refs(&addresses)[..],
                    &["--cluster-replicas", "1", "--cluster-yes"],
                ]
                .concat(),
            )
            .await;
        cluster.wait_until_settled(3, 3).await;
        cluster
    }

    /// The URLs of every live node, as seeds for a store.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.values().map(RedisServer::url).collect()
    }

    pub fn node(&self, port: u16) -> &RedisServer {
        &self.nodes[&port]
    }

    /// Kills the node on `port` (its directory is removed with the cluster).
    pub fn kill(&mut self, port: u16) {
        if let Some(node) = self.nodes.get_mut(&port) {
            node.stop();
        }
    }

    /// `CLUSTER NODES` as a live node other than `except` sees it.
    pub async fn topology(&self, except: &[u16]) -> Vec<Node> {
        for (port, node) in &self.nodes {
            if except.contains(port) {
                continue;
            }
            let Ok(text) = query::<String>(node, redis::cmd("CLUSTER").arg("NODES")).await else {
                continue;
            };
            return text.lines().filter_map(parse_node).collect();
        }
        panic!("no cluster node answers");
    }

    /// The slot of `key`.
    pub async fn slot(&self, key: &str) -> u16 {
        let node = self.nodes.values().next().unwrap();
        query(node, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))
            .await
            .unwrap()
    }

    /// The primary serving `slot` and its replica, as `(primary port, replica port)`.
    pub async fn owners(&self, slot: u16) -> (u16, u16) {
        let nodes = self.topology(&[]).await;
        let primary = nodes
            .iter()
            .find(|n| n.primary && n.slots.iter().any(|&(a, b)| (a..=b).contains(&slot)))
            .expect("no primary serves the slot");
        let replica = nodes
            .iter()
            .find(|n| n.primary_id.as_deref() == Some(&primary.id))
            .expect("the primary has no replica");
        (primary.port, replica.port)
    }

    /// Waits until the server on `port` is the primary of `slot` and the cluster is whole again
    /// (as the nodes other than `dead` see it).
    pub async fn wait_for_primary(&self, slot: u16, port: u16, dead: &[u16]) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let nodes = self.topology(dead).await;
            let promoted = nodes.iter().any(|n| {
                n.port == port && n.primary && n.slots.iter().any(|&(a, b)| (a..=b).contains(&slot))
            });
            if promoted && self.all_ok(dead).await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "port {port} never became the primary of slot {slot}: {nodes:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every node lists the replica on `replica` in `CLUSTER SLOTS`, which clients
    /// read the slot map from. Redis leaves out a replica until the answering node has heard
    /// (by gossip) that it holds data, so a client connected earlier may not know it.
    pub async fn wait_until_listed(&self, replica: u16) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut listed = true;
            for node in self.nodes.values() {
                let slots: redis::Value = query(node, redis::cmd("CLUSTER").arg("SLOTS"))
                    .await
                    .unwrap_or(redis::Value::Nil);
                listed &= lists_port(&slots, replica);
            }
            if listed {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the replica on {replica} never showed in CLUSTER SLOTS"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A new node joined as a replica of the primary on `port` (as an operator adds one after
    /// a failover), ready once its link is up.
    pub async fn add_replica_of(&mut self, port: u16) -> u16 {
        let primary_id = self
            .topology(&[])
            .await
            .into_iter()
            .find(|n| n.port == port)
            .unwrap()
            .id;
        let node = start_node(self.password.as_deref()).await;
        let new = format!("127.0.0.1:{}", node.port());
        let existing = format!("127.0.0.1:{port}");
        self.redis_cli(&[
            "--cluster",
            "add-node",
            &new,
            &existing,
            "--cluster-slave",
            "--cluster-master-id",
            &primary_id,
        ])
        .await;
        node.wait_for_link().await;
        let added = node.port();
        self.nodes.insert(added, node);
        added
    }

    async fn all_ok(&self, except: &[u16]) -> bool {
        for (port, node) in &self.nodes {
            if except.contains(port) {
                continue;
            }
            let info: String = match query(node, redis::cmd("CLUSTER").arg("INFO")).await {
                Ok(info) => info,
                Err(_) => return false,
            };
            if !info.contains("cluster_state:ok") {
                return false;
            }
        }
        true
    }

    /// Waits until every node says `cluster_state:ok` and sees `primaries` primaries with
    /// `replicas` linked replicas.
    async fn wait_until_settled(&self, primaries: usize, replicas: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let nodes = self.topology(&[]).await;
            let linked = {
                let mut linked = 0;
                for n in nodes.iter().filter(|n| !n.primary) {
                    let info: String =
                        query(self.node(n.port), redis::cmd("INFO").arg("replication"))
                            .await
                            .unwrap_or_default();
                    linked += usize::from(info.contains("master_link_status:up"));
                }
                linked
            };
            if self.all_ok(&[]).await
                && nodes.iter().filter(|n| n.primary).count() == primaries
                && linked == replicas
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster never settled: {nodes:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn start_node(password: Option<&str>) -> RedisServer {
    let timeout = NODE_TIMEOUT_MS.to_string();
    let mut args = vec![
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        &timeout,
    ];
    if let Some(password) = password {
        args.extend(["--masterauth", password]);
    }
    RedisServer::start_with(free_port(), password, &args).await
}

async fn query<T: redis::FromRedisValue>(
    node: &RedisServer,
    cmd: &redis::Cmd,
) -> redis::RedisResult<T> {
    let client = redis::Client::open(node.url())?;
    let mut connection = tokio::time::timeout(
        Duration::from_secs(1),
        client.get_multiplexed_async_connection(),
    )
    .await
    .map_err(|_| redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut)))??;
    cmd.query_async(&mut connection).await
}

impl Cluster {
    async fn redis_cli(&self, args: &[&str]) {
        redis_cli(self.password.as_deref(), args).await;
    }
}

async fn redis_cli(password: Option<&str>, args: &[&str]) {
    let mut command = tokio::process::Command::new("redis-cli");
    if let Some(password) = password {
        command.args(["--no-auth-warning", "-a", password]);
    }
    let out = command
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("redis-cli (from the redis-tools package) cannot run");
    assert!(
        out.status.success(),
        "redis-cli {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether a `CLUSTER SLOTS` reply names a node on `port` (as a primary or a replica).
fn lists_port(slots: &redis::Value, port: u16) -> bool {
    let redis::Value::Array(ranges) = slots else {
        return false;
    };
    ranges.iter().any(|range| match range {
        redis::Value::Array(fields) => fields.iter().skip(2).any(|node| {
            matches!(node, redis::Value::Array(node)
                if matches!(node.get(1), Some(redis::Value::Int(p)) if *p == i64::from(port)))
        }),
        _ => false,
    })
}

fn str_refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `<id> <ip:port@cport> <flags> <primary id or -> <ping> <pong> <epoch> <state> <slots...>`
fn parse_node(line: &str) -> Option<Node> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let port = fields
        .get(1)?
        .split('@')
        .next()?
        .rsplit(':')
        .next()?
        .parse()
        .ok()?;
    let flags = fields.get(2)?;
    let slots = fields
        .iter()
        .skip(8)
        .filter(|s| !s.starts_with('['))
        .filter_map(|s| match s.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => s.parse().ok().map(|a| (a, a)),
        })
        .collect();
    Some(Node {
        id: fields[0].to_owned(),
        port,
        primary: flags.contains("master"),
        failed: flags.contains("fail"),
        primary_id: Some(fields.get(3)?)
            .filter(|m| **m != "-")
            .map(|m| (*m).to_owned()),
        slots,
    })
}

impl Cluster {
    /// What every live node holds of `key` and of any lock, with the topology one node sees and
    /// each node's cluster state: printed when a test fails.
    pub async fn describe(&self, key: &str) -> String {
        let mut out = String::new();
        for (port, node) in &self.nodes {
            let entry: redis::RedisResult<Option<Vec<u8>>> =
                query(node, redis::cmd("GET").arg(key)).await;
            let locks: redis::RedisResult<Vec<String>> =
                query(node, redis::cmd("KEYS").arg("*lock:*")).await;
            let state = query::<String>(node, redis::cmd("CLUSTER").arg("INFO"))
                .await
                .map(|info| {
                    info.lines()
                        .filter(|l| {
                            l.starts_with("cluster_state") || l.starts_with("cluster_current_epoch")
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                });
            let entry = entry.map(|e| {
                e.map(|b| {
                    String::from_utf8_lossy(&b)
                        .chars()
                        .take(60)
                        .collect::<String>()
                })
            });
            out.push_str(&format!(
                "{port}: entry {entry:?} locks {locks:?} {state:?}\n"
            ));
        }
        out.push_str(&format!("{:#?}", self.topology(&[]).await));
        out
    }
}
