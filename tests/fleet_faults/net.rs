//! The hosts of the fleet: one network namespace per replica and one for Redis, joined by veth
//! pairs, and the faults the harness injects on those links. Everything it creates carries the
//! run's id and is removed when the [`Network`] is dropped, on failure too.

use std::net::Ipv4Addr;
use std::process::{Command, Output, Stdio};

/// The namespaces and links of one run, torn down on drop.
///
/// Layout, for replica `i` (run id `ID`, two octets `A` and `B` picked from the id):
///
/// ```text
///   ns ofID-redis  10.A.i.1 --veth-- 10.A.i.2  ns ofID-rI  10.B.i.2 --veth-- 10.B.i.1  host
///   (redis-server)                              (replica)                   (the IdP's relay)
/// ```
///
/// Each replica has its own link to Redis, so taking one link down partitions Redis from that
/// replica alone while it still reaches the authorization server through the host.
pub(crate) struct Network {
    id: String,
    replicas: usize,
    namespaces: Vec<String>,
    host_links: Vec<String>,
    a: u8,
    b: u8,
}

/// Why the harness cannot run here (the caller prints it and skips).
pub(crate) struct Unavailable(pub(crate) String);

impl Network {
    /// Creates the namespaces and links, or says why it cannot (not root, no `ip`, namespaces
    /// refused).
    pub(crate) fn create(replicas: usize) -> Result<Self, Unavailable> {
        let pid = std::process::id();
        let id = format!("{:04x}", pid & 0xffff);
        let mut net = Network {
            id: id.clone(),
            replicas,
            namespaces: Vec::new(),
            host_links: Vec::new(),
            // Private /24s per link, chosen from the pid so two runs on one machine differ.
            a: 100 + (pid % 50) as u8,
            b: 150 + (pid % 50) as u8,
        };
        let redis = net.redis_ns();
        match ip(&["netns", "add", &redis]) {
            Ok(()) => net.namespaces.push(redis.clone()),
            Err(e) => {
                return Err(Unavailable(format!(
                    "cannot create a network namespace ({e}); this harness needs root and \
                     iproute2"
                )));
            }
        }
        let setup = (|| -> Result<(), String> {
            ip(&["-n", &redis, "link", "set", "lo", "up"])?;
            for i in 0..replicas {
                let ns = net.replica_ns(i);
                ip(&["netns", "add", &ns])?;
                net.namespaces.push(ns.clone());
                ip(&["-n", &ns, "link", "set", "lo", "up"])?;
                // The replica's link to Redis.
                let (r_side, p_side) = (net.redis_link(i), format!("of{id}q{i}"));
                ip(&[
                    "link", "add", &r_side, "type", "veth", "peer", "name", &p_side,
                ])?;
                ip(&["link", "set", &r_side, "netns", &redis])?;
                ip(&["link", "set", &p_side, "netns", &ns])?;
                let (ra, pa) = (net.redis_addr(i), Ipv4Addr::new(10, net.a, i as u8, 2));
                ip(&[
                    "-n",
                    &redis,
                    "addr",
                    "add",
                    &format!("{ra}/24"),
                    "dev",
                    &r_side,
                ])?;
                ip(&[
                    "-n",
                    &ns,
                    "addr",
                    "add",
                    &format!("{pa}/24"),
                    "dev",
                    &p_side,
                ])?;
                ip(&["-n", &redis, "link", "set", &r_side, "up"])?;
                ip(&["-n", &ns, "link", "set", &p_side, "up"])?;
                // The replica's link to the host, where the authorization server listens.
                let (h_side, p_side) = (format!("of{id}h{i}"), format!("of{id}i{i}"));
                ip(&[
                    "link", "add", &h_side, "type", "veth", "peer", "name", &p_side,
                ])?;
                net.host_links.push(h_side.clone());
                ip(&["link", "set", &p_side, "netns", &ns])?;
                let (ha, pa) = (net.host_addr(i), Ipv4Addr::new(10, net.b, i as u8, 2));
                ip(&["addr", "add", &format!("{ha}/24"), "dev", &h_side])?;
                ip(&[
                    "-n",
                    &ns,
                    "addr",
                    "add",
                    &format!("{pa}/24"),
                    "dev",
                    &p_side,
                ])?;
                ip(&["link", "set", &h_side, "up"])?;
                ip(&["-n", &ns, "link", "set", &p_side, "up"])?;
            }
            Ok(())
        })();
        match setup {
            Ok(()) => Ok(net),
            // Dropping `net` removes what was made so far.
            Err(e) => Err(Unavailable(format!("cannot build the test network: {e}"))),
        }
    }

    pub(crate) fn redis_ns(&self) -> String {
        format!("of{}-redis", self.id)
    }

    pub(crate) fn replica_ns(&self, i: usize) -> String {
        format!("of{}-r{i}", self.id)
    }

    /// The Redis end of replica `i`'s link to Redis (in the Redis namespace).
    fn redis_link(&self, i: usize) -> String {
        format!("of{}d{i}", self.id)
    }

    /// Redis's address as replica `i` reaches it.
    pub(crate) fn redis_addr(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, self.a, i as u8, 1)
    }

    /// The host's address as replica `i` reaches it.
    pub(crate) fn host_addr(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, self.b, i as u8, 1)
    }

    /// Takes replica `i`'s link to Redis down (`up == false`) or up again.
    pub(crate) fn set_redis_link(&self, i: usize, up: bool) {
        let state = if up { "up" } else { "down" };
        must(ip(&[
            "-n",
            &self.redis_ns(),
            "link",
            "set",
            &self.redis_link(i),
            state,
        ]));
    }

    /// Whether this kernel has `tc netem` (many minimal VM kernels ship without `sch_netem`).
    pub(crate) fn has_netem(&self) -> bool {
        let link = self.redis_link(0);
        let ns = self.redis_ns();
        let added = tc(
            &ns,
            &[
                "qdisc", "add", "dev", &link, "root", "netem", "delay", "1ms",
            ],
        );
        if added.is_ok() {
            let _ = tc(&ns, &["qdisc", "del", "dev", &link, "root"]);
        }
        added.is_ok()
    }

    /// Adds `tc netem` latency (with jitter) and loss on the Redis side of every replica's
    /// link to Redis, in both directions of the replica's traffic (the qdisc shapes what Redis
    /// sends; the replica's end gets the same).
    pub(crate) fn impair_redis_links(&self, delay_ms: u32, jitter_ms: u32, loss_pct: u32) {
        for i in 0..self.replicas {
            let args = [
                "delay".to_owned(),
                format!("{delay_ms}ms"),
                format!("{jitter_ms}ms"),
                "loss".to_owned(),
                format!("{loss_pct}%"),
            ];
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let link = self.redis_link(i);
            let mut cmd = vec!["qdisc", "add", "dev", &link, "root", "netem"];
            cmd.extend(&args);
            must(tc(&self.redis_ns(), &cmd));
            let peer = format!("of{}q{i}", self.id);
            let mut cmd = vec!["qdisc", "add", "dev", &peer, "root", "netem"];
            cmd.extend(&args);
            must(tc(&self.replica_ns(i), &cmd));
        }
    }

    /// Removes what [`impair_redis_links`](Self::impair_redis_links) added.
    pub(crate) fn heal_redis_links(&self) {
        for i in 0..self.replicas {
            let link = self.redis_link(i);
            must(tc(
                &self.redis_ns(),
                &["qdisc", "del", "dev", &link, "root"],
            ));
            let peer = format!("of{}q{i}", self.id);
            must(tc(
                &self.replica_ns(i),
                &["qdisc", "del", "dev", &peer, "root"],
            ));
        }
    }

    /// A command run inside namespace `ns` (`ip netns exec`).
    pub(crate) fn exec_in(ns: &str, program: &str) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("ip");
        command.args(["netns", "exec", ns, program]);
        command.kill_on_drop(true);
        command
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth ends inside it, and with them their peers.
        for ns in self.namespaces.drain(..).rev() {
            let _ = ip(&["netns", "del", &ns]);
        }
        for link in self.host_links.drain(..) {
            let _ = quiet(&["link", "del", &link]);
        }
    }
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let output: Output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    run("ip", args)
}

/// `ip` whose failure is expected (a link already gone with its namespace).
fn quiet(args: &[&str]) -> Result<(), String> {
    run("ip", args)
}

fn tc(ns: &str, args: &[&str]) -> Result<(), String> {
    let mut full = vec!["netns", "exec", ns, "tc"];
    full.extend(args);
    run("ip", &full)
}

fn must(result: Result<(), String>) {
    if let Err(e) = result {
        panic!("{e}");
    }
}
