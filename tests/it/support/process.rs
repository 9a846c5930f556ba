//! The `flowgate` binary as a child process, for tests where a gateway must
//! die abruptly (SIGKILL, no graceful stop) and start again on the same
//! address and data: `flowgate serve` on a fixed port over a data dir, set up
//! by `FLOWGATE_*` variables (and `--config FILE` when given), killed when
//! dropped. Its log lines go to the test's captured output, and starting waits
//! (bounded) for its `flowgate listening` line rather than polling.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::app::{JWT_SECRET, KEY, WAIT, client_with_key, send};

/// How to run a gateway process: its data dir, extra `FLOWGATE_*` variables
/// and an optional config file. Every process gets the test key
/// ([`KEY`]) and JWT secret ([`JWT_SECRET`]), and logs at `flowgate=info`.
#[derive(Debug, Clone, Default)]
pub struct ProcessSpec {
    /// `FLOWGATE_DATA_DIR`.
    pub data_dir: PathBuf,
    /// More environment variables, e.g. `("FLOWGATE_STORE", "redis")`.
    pub env: Vec<(String, String)>,
    /// Passed as `--config FILE`.
    pub config: Option<PathBuf>,
}

impl ProcessSpec {
    /// A gateway on `data_dir` (SQLite unless a variable says otherwise).
    pub fn new(data_dir: &Path) -> ProcessSpec {
        ProcessSpec { data_dir: data_dir.to_path_buf(), ..Default::default() }
    }

    /// Adds an environment variable.
    pub fn env(mut self, name: &str, value: impl Into<String>) -> ProcessSpec {
        self.env.push((name.to_owned(), value.into()));
        self
    }

    /// Writes `toml` to `flowgate.toml` in the data dir and passes it as
    /// `--config`.
    pub fn config_file(mut self, toml: &str) -> ProcessSpec {
        let path = self.data_dir.join("flowgate.toml");
        std::fs::write(&path, toml).expect("the config file is written");
        self.config = Some(path);
        self
    }
}

/// A running `flowgate serve` process.
pub struct ProcessNode {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The port it listens on.
    pub port: u16,
    /// A client that sends [`KEY`].
    pub client: reqwest::Client,
    spec: ProcessSpec,
    child: Child,
    logs: JoinHandle<()>,
}

impl ProcessNode {
    /// Starts a process on a free port (another one if that port is taken
    /// before the process binds it).
    pub async fn start(spec: ProcessSpec) -> ProcessNode {
        for _ in 0..5 {
            if let Some(node) = Self::launch(&spec, free_port()).await {
                return node;
            }
        }
        panic!("the flowgate process never started; its output is above");
    }

    /// SIGKILLs the process and reaps it: no graceful shutdown of any kind.
    pub async fn kill(&mut self) {
        self.child.start_kill().expect("the process can be killed");
        let status = tokio::time::timeout(WAIT, self.child.wait()).await.expect("it dies in time");
        assert!(!status.expect("it is reaped").success(), "it was killed, not stopped");
    }

    /// Kills this process (if still alive) and starts a new one with the
    /// same spec on the same port and data dir.
    pub async fn restart_in_place(mut self) -> ProcessNode {
        if self.child.try_wait().expect("the process status").is_none() {
            self.kill().await;
        }
        let node = Self::launch(&self.spec, self.port).await;
        node.unwrap_or_else(|| panic!("the process did not start again on port {}", self.port))
    }

    /// The URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET with the test key; returns status and JSON (or Null).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        send(self.client.get(self.url(path))).await
    }

    /// POST JSON with the test key.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        send(self.client.post(self.url(path)).json(&body)).await
    }

    /// PUT JSON with the test key.
    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        send(self.client.put(self.url(path)).json(&body)).await
    }

    /// Spawns the process on `port`; `None` if it exits before listening.
    async fn launch(spec: &ProcessSpec, port: u16) -> Option<ProcessNode> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_flowgate"));
        if let Some(config) = &spec.config {
            command.arg("--config").arg(config);
        }
        command
            .arg("serve")
            .env("FLOWGATE_LISTEN", format!("127.0.0.1:{port}"))
            .env("FLOWGATE_DATA_DIR", &spec.data_dir)
            .env("FLOWGATE_API_KEY", KEY)
            .env("FLOWGATE_JWT__SECRET", JWT_SECRET)
            .env("FLOWGATE_LOG", "warn,flowgate=info")
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("the flowgate binary starts");
        let (listening, logs) = forward_logs(&mut child, port);
        let started = tokio::time::timeout(WAIT, listening).await.expect("the process listens in time");
        if started.is_err() {
            // It exited first (the port was taken, or a bad config: see above).
            let _ = tokio::time::timeout(WAIT, child.wait()).await;
            return None;
        }
        let base = format!("http://127.0.0.1:{port}");
        let client = client_with_key(KEY);
        Some(ProcessNode { base, port, client, spec: spec.clone(), child, logs })
    }
}

impl Drop for ProcessNode {
    fn drop(&mut self) {
        self.logs.abort();
    }
}

/// Copies the child's log lines to the test's output; the receiver resolves
/// at the `flowgate listening` line, or fails if the output ends first.
fn forward_logs(child: &mut Child, port: u16) -> (oneshot::Receiver<()>, JoinHandle<()>) {
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = oneshot::channel();
    let logs = tokio::spawn(async move {
        let mut tx = Some(tx);
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("[flowgate :{port}] {line}");
            if line.contains("flowgate listening") {
                tx.take().map(|tx| tx.send(()));
            }
        }
    });
    (rx, logs)
}

/// A port free at the time of asking.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binds port 0");
    listener.local_addr().expect("has an address").port()
}
