//! A private three-master Redis Cluster: three `redis-server --cluster-enabled
//! yes` on free ports of 127.0.0.1 (each with its own dir and `nodes.conf`),
//! joined by `redis-cli --cluster create … --cluster-replicas 0`, killed on
//! drop. Never touches a system Redis.
//!
//! [`RedisCluster::shared`] hands every concurrently running test the same
//! cluster (each test keeps to its own key prefix or chats), started by the
//! first and stopped when the last lets go; a test that kills masters starts
//! its own with [`RedisCluster::start_with_aof`].
//!
//! Without `redis-server` and `redis-cli` it prints a loud `SKIPPED` line and
//! returns `None`, unless `FLOWGATE_REQUIRE_REDIS=1`, when it panics (CI).
#![allow(dead_code)]

use std::io::{ErrorKind, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a node may take to answer, and the cluster to reach `ok`.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// A running private cluster of three masters.
pub struct RedisCluster {
    nodes: Vec<Node>,
    aof: bool,
    dir: TempDir,
}

/// One master: its client port, its cluster bus port and its process.
struct Node {
    port: u16,
    bus: u16,
    child: Option<Child>,
}

static SHARED: Mutex<Weak<RedisCluster>> = Mutex::new(Weak::new());

impl RedisCluster {
    /// The cluster every running test shares (no persistence); `None`
    /// without the binaries.
    pub fn shared() -> Option<Arc<RedisCluster>> {
        let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cluster) = slot.upgrade() {
            return Some(cluster);
        }
        let cluster = Arc::new(Self::launch(false)?);
        *slot = Arc::downgrade(&cluster);
        Some(cluster)
    }

    /// A cluster of the caller's own whose masters append every write to an
    /// AOF (fsync always), so a restarted master has every acknowledged write.
    pub fn start_with_aof() -> Option<RedisCluster> {
        Self::launch(true)
    }

    fn launch(aof: bool) -> Option<RedisCluster> {
        if !binaries_present() {
            if std::env::var("FLOWGATE_REQUIRE_REDIS").as_deref() == Ok("1") {
                panic!("redis-server or redis-cli not found and FLOWGATE_REQUIRE_REDIS=1");
            }
            let _ = writeln!(
                std::io::stderr(),
                "*** SKIPPED: redis-server/redis-cli not found; this Redis Cluster test did not run ***"
            );
            return None;
        }
        let dir = tempfile::tempdir().expect("a temp dir for the cluster");
        let mut cluster = RedisCluster { nodes: Vec::new(), aof, dir };
        for _ in 0..3 {
            let mut node = Node { port: free_port(), bus: free_port(), child: None };
            assert!(cluster.spawn(&mut node), "redis-server --cluster-enabled started");
            cluster.nodes.push(node);
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        create.args(cluster.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)));
        let status = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status()
            .expect("runs redis-cli --cluster create");
        assert!(status.success(), "redis-cli --cluster create succeeded");
        cluster.wait_ok();
        Some(cluster)
    }

    /// Every node's `redis://127.0.0.1:<port>`.
    pub fn seeds(&self) -> Vec<String> {
        self.nodes.iter().map(|n| format!("redis://127.0.0.1:{}", n.port)).collect()
    }

    /// The seeds comma separated, as `redis_url` takes them with `redis.cluster`.
    pub fn url(&self) -> String {
        self.seeds().join(",")
    }

    /// The index of the master that serves `key` (the others answer MOVED).
    pub fn master_of(&self, key: &str) -> usize {
        let serves = |n: &Node| cli(n.port, &["EXISTS", key]).is_some_and(|out| !out.contains("MOVED"));
        self.nodes.iter().position(serves).expect("one master serves the key")
    }

    /// Kills master `index` (SIGKILL, like a crash), starts it again on the same
    /// ports over the same dir (its `nodes.conf` gives its slots back), and
    /// waits until the cluster is `ok` again.
    pub fn restart_master(&mut self, index: usize) {
        let mut node = std::mem::replace(&mut self.nodes[index], Node { port: 0, bus: 0, child: None });
        stop(&mut node);
        assert!(self.spawn(&mut node), "master {index} restarted on port {}", node.port);
        self.nodes[index] = node;
        self.wait_ok();
    }

    /// Spawns a node's process and waits for PING; `false` if it exited first.
    fn spawn(&self, node: &mut Node) -> bool {
        let dir = self.dir.path().join(node.port.to_string());
        std::fs::create_dir_all(&dir).expect("a node dir");
        let mut command = Command::new("redis-server");
        command
            .args(["--bind", "127.0.0.1", "--port", &node.port.to_string()])
            .args(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"])
            .args(["--cluster-port", &node.bus.to_string()])
            .args(["--cluster-node-timeout", "5000", "--cluster-require-full-coverage", "no"])
            .args(["--save", "", "--daemonize", "no", "--loglevel", "warning"])
            .arg("--dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if self.aof {
            command.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            command.args(["--appendonly", "no"]);
        }
        let Ok(child) = command.spawn() else { return false };
        node.child = Some(child);
        let deadline = Instant::now() + READY_WITHIN;
        while Instant::now() < deadline {
            if node.child.as_mut().is_none_or(|c| c.try_wait().ok().flatten().is_some()) {
                return false;
            }
            if cli(node.port, &["PING"]).is_some_and(|out| out.trim() == "PONG") {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Waits (bounded) until every node says `cluster_state:ok`.
    fn wait_ok(&self) {
        let deadline = Instant::now() + READY_WITHIN;
        let ok = |n: &Node| cli(n.port, &["CLUSTER", "INFO"]).is_some_and(|i| i.contains("cluster_state:ok"));
        while !self.nodes.iter().all(ok) {
            assert!(Instant::now() < deadline, "the cluster reached cluster_state:ok in time");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        self.nodes.iter_mut().for_each(stop);
    }
}

fn stop(node: &mut Node) {
    if let Some(mut child) = node.child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// `redis-cli -p <port> <args>`'s output, `None` if it could not run.
fn cli(port: u16, args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn binaries_present() -> bool {
    ["redis-server", "redis-cli"].iter().all(|bin| {
        match Command::new(bin).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status() {
            Ok(_) => true,
            Err(e) => e.kind() != ErrorKind::NotFound,
        }
    })
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binds port 0");
    let port = listener.local_addr().expect("has an address").port();
    assert_ne!(port, 6379, "never the system Redis port");
    port
}
