//! A private `redis-server` per test: a free port on 127.0.0.1, no RDB
//! snapshots, optionally an append-only file in a temp dir, killed on drop.
//! Never touches a system Redis.
//!
//! Used as `crate::support::redis_server`.
//! Without a `redis-server` binary, [`RedisServer::start`] prints a loud
//! `SKIPPED` line and returns `None`, unless `FLOWGATE_REQUIRE_REDIS=1`, when
//! it panics instead (CI).
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a server may take to answer its first PING.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// A running private `redis-server`.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    aof: bool,
    dir: TempDir,
}

impl RedisServer {
    /// Starts a server without persistence; `None` if the binary is missing.
    pub fn start() -> Option<RedisServer> {
        Self::launch(false)
    }

    /// Starts a server that appends every write to an AOF (fsync always) in
    /// its own temp dir, so a restart finds every acknowledged write.
    pub fn start_with_aof() -> Option<RedisServer> {
        Self::launch(true)
    }

    fn launch(aof: bool) -> Option<RedisServer> {
        if !binary_present() {
            if std::env::var("FLOWGATE_REQUIRE_REDIS").as_deref() == Ok("1") {
                panic!("redis-server not found and FLOWGATE_REQUIRE_REDIS=1");
            }
            // Straight to the process's stderr: the test harness captures
            // `eprintln!` of passing tests, and this must be seen.
            let _ = writeln!(
                std::io::stderr(),
                "*** SKIPPED: redis-server not found; this Redis test did not run ***"
            );
            return None;
        }
        let mut server = RedisServer {
            child: None,
            port: free_port(),
            aof,
            dir: tempfile::tempdir().expect("a temp dir for redis-server"),
        };
        // A port picked free may be taken before the server binds it: retry.
        for _ in 0..5 {
            if server.spawn() {
                return Some(server);
            }
            server.port = free_port();
        }
        panic!("redis-server did not start on any of five free ports");
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A client for it.
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("a redis:// URL")
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL, like a crash); its port and dir are kept.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Suspends the server (SIGSTOP): it keeps its connections but answers
    /// nothing, like a hung host, until [`RedisServer::thaw`].
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Resumes a frozen server (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("the server is running");
        let status =
            Command::new("kill").arg(signal).arg(child.id().to_string()).status().expect("runs kill");
        assert!(status.success(), "kill {signal} worked");
    }

    /// Starts the server again on the same port over the same dir, and waits
    /// until it answers.
    pub fn restart(&mut self) {
        self.stop();
        assert!(self.spawn(), "redis-server restarted on port {}", self.port);
    }

    /// Spawns the process and waits for PING; `false` if it exited first.
    fn spawn(&mut self) -> bool {
        let mut command = Command::new("redis-server");
        command
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--daemonize", "no", "--loglevel", "warning"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if self.aof {
            command.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            command.args(["--appendonly", "no"]);
        }
        let Ok(child) = command.spawn() else {
            return false;
        };
        self.child = Some(child);
        let deadline = Instant::now() + READY_WITHIN;
        while Instant::now() < deadline {
            if self.exited() {
                self.child = None;
                return false;
            }
            if pings(self.port) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop();
        false
    }

    fn exited(&mut self) -> bool {
        self.child.as_mut().is_none_or(|c| c.try_wait().ok().flatten().is_some())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn binary_present() -> bool {
    match Command::new("redis-server").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status() {
        Ok(_) => true,
        Err(e) => e.kind() != ErrorKind::NotFound,
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binds port 0");
    let port = listener.local_addr().expect("has an address").port();
    assert_ne!(port, 6379, "never the system Redis port");
    port
}

/// Whether a server on `port` answers `PING` with `+PONG`.
fn pings(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}
