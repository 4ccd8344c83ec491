//! A cluster of real `ledger-node serve --cluster` processes on loopback, for end-to-end tests
//! (cluster_e2e, and the failover tests that reuse it): generated TOML files with free ports, a
//! seed made by `ledger-node init` whose node key every voter holds, start / SIGKILL / restart of
//! each node, and finding the leader from outside.
//!
//! Include it next to `support` with `#[path = "support/cluster.rs"] mod cluster;`.
#![allow(dead_code)]

use super::support::bin;
use ledger_proto::pb;
use ledger_proto::pb::ledger_client::LedgerClient;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// Bound on every wait for the cluster (a loaded 2-core machine elects within seconds).
pub const WAIT: Duration = Duration::from_secs(40);

/// Origin of the test cluster's log.
pub const ORIGIN: &str = "ledger.test/cluster";

/// `n` distinct free loopback ports, outside the ephemeral range ([`super::support::free_ports`]).
pub fn free_ports(n: usize) -> Vec<u16> {
    super::support::free_ports(n)
}

/// One node of the cluster: its files and, while it runs, its process.
pub struct ClusterNode {
    /// Raft id (1-based).
    pub id: u64,
    /// Data directory.
    pub data: PathBuf,
    /// Its cluster file.
    pub file: PathBuf,
    /// Public API address, `host:port`.
    pub api: String,
    /// Raft address, `host:port`.
    pub raft: String,
    /// The running process.
    pub child: Option<Child>,
    /// Its stderr log file.
    pub log: PathBuf,
    /// Its tlog-tiles HTTP address once it printed one (with `--tiles-listen` in `extra`).
    pub tiles: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl ClusterNode {
    /// The public API URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.api)
    }

    /// A raw gRPC client (connects lazily; the node may be down).
    pub fn client(&self) -> LedgerClient<Channel> {
        let ch = tonic::transport::Endpoint::from_shared(self.url())
            .expect("url")
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(15))
            .connect_lazy();
        LedgerClient::new(ch)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20)
    }

    /// Hard kill (SIGKILL), as in a crash.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Graceful stop (SIGTERM) and wait.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    /// The last lines of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for ClusterNode {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// What a node says of the leadership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// It leads.
    Leader,
    /// It follows; the leader's API address when it names one.
    Follower(Option<String>),
    /// No answer (down, starting, or no leader known).
    Unknown,
}

/// A running test cluster; the directory is removed on drop.
pub struct Cluster {
    /// Keeps the directory.
    pub dir: tempfile::TempDir,
    /// The nodes, `nodes[i].id == i + 1`.
    pub nodes: Vec<ClusterNode>,
    /// The administrator key of the log (signs test records).
    pub admin: PathBuf,
    /// Further `serve` arguments for every node (e.g. `--witness URL=KEY`).
    pub extra: Vec<String>,
}

impl Cluster {
    /// [`Cluster::prepare`] then [`Cluster::start_all`].
    pub fn start(n: u64) -> Cluster {
        let mut c = Self::prepare(n);
        c.start_all();
        c
    }

    /// Starts every node (node 1 with `--cluster-init`); returns once every node serves its API.
    pub fn start_all(&mut self) {
        let waits: Vec<_> = (0..self.nodes.len()).map(|i| self.spawn(i, i == 0)).collect();
        for (i, w) in waits.into_iter().enumerate() {
            self.wait_serving(i, w);
        }
    }

    /// The seed's checkpoint verifier key file (`keys/node.vkey`), for witnesses.
    pub fn log_vkey(&self) -> PathBuf {
        self.nodes[0].data.join("keys/node.vkey")
    }

    /// Writes `n` cluster files with free ports, makes the seed ledger (`ledger-node init`) in
    /// node 1's directory and gives every node its node key; starts nothing.
    pub fn prepare(n: u64) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let free = free_ports(2 * n as usize);
        let ports: Vec<(u16, u16)> = free.chunks(2).map(|p| (p[0], p[1])).collect();
        let peers: String = ports
            .iter()
            .enumerate()
            .map(|(i, (r, _))| format!("{} = \"127.0.0.1:{r}\"\n", i + 1))
            .collect();
        let apis: String = ports
            .iter()
            .enumerate()
            .map(|(i, (_, a))| format!("{} = \"127.0.0.1:{a}\"\n", i + 1))
            .collect();
        let seed = dir.path().join("n1");
        let out = Command::new(bin("ledger-node"))
            .args(["init", "--origin", ORIGIN, "--data"])
            .arg(&seed)
            .output()
            .expect("init");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mut nodes = Vec::new();
        for (i, (r, a)) in ports.iter().enumerate() {
            let id = i as u64 + 1;
            let data = dir.path().join(format!("n{id}"));
            std::fs::create_dir_all(data.join("keys")).expect("mkdir");
            if id != 1 {
                std::fs::copy(seed.join("keys/node.key"), data.join("keys/node.key")).expect("node key");
            }
            let file = dir.path().join(format!("n{id}.toml"));
            std::fs::write(
                &file,
                format!(
                    "id = {id}\nlisten = \"127.0.0.1:{r}\"\ndata = \"{}\"\ninsecure_loopback = true\n[peers]\n{peers}[api]\n{apis}",
                    data.display()
                ),
            )
            .expect("cluster file");
            nodes.push(ClusterNode {
                id,
                log: dir.path().join(format!("n{id}.log")),
                data,
                file,
                api: format!("127.0.0.1:{a}"),
                raft: format!("127.0.0.1:{r}"),
                child: None,
                tiles: Default::default(),
            });
        }
        Cluster {
            admin: seed.join("keys/admin.key"),
            dir,
            nodes,
            extra: Vec::new(),
        }
    }

    /// Starts node `i` (again), with `--cluster-init` if asked; the receiver gets its API address
    /// once it serves (see [`Cluster::wait_serving`]).
    pub fn spawn(&mut self, i: usize, init: bool) -> mpsc::Receiver<String> {
        self.spawn_with_env(i, init, &[])
    }

    /// [`Cluster::spawn`] with further environment variables for this start only.
    pub fn spawn_with_env(&mut self, i: usize, init: bool, env: &[(&str, &str)]) -> mpsc::Receiver<String> {
        let extra = self.extra.clone();
        let node = &mut self.nodes[i];
        assert!(node.child.is_none(), "node {} is running", node.id);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("log");
        let mut cmd = Command::new(bin("ledger-node"));
        cmd.args(["serve", "--cluster"])
            .arg(&node.file)
            .args(["--listen", &node.api])
            .args(["--metrics-listen", "off"])
            .args(["--checkpoint-interval-ms", "200"])
            .args(&extra)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        if !extra.iter().any(|a| a == "--tiles-listen") {
            cmd.args(["--tiles-listen", "off"]);
        }
        if init {
            cmd.arg("--cluster-init");
        }
        let mut child = cmd.spawn().expect("spawn ledger-node");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        let tiles = node.tiles.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let line = line.unwrap_or_default();
                if let Some(a) = line.strip_prefix("listening on ") {
                    let _ = tx.send(a.to_string());
                } else if let Some(a) = line.strip_prefix("tiles on ")
                    && let Ok(mut t) = tiles.lock()
                {
                    *t = Some(a.to_string());
                }
            }
        });
        node.child = Some(child);
        rx
    }

    /// Waits (bounded) until node `i` prints that it serves.
    pub fn wait_serving(&self, i: usize, rx: mpsc::Receiver<String>) {
        let node = &self.nodes[i];
        match rx.recv_timeout(WAIT) {
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("node {} did not start within {WAIT:?}:\n{}", node.id, node.log_tail())
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("node {} exited before it served:\n{}", node.id, node.log_tail())
            }
        }
    }

    /// Restarts node `i` (after [`ClusterNode::kill9`] or `stop`) and waits until it serves.
    pub fn restart(&mut self, i: usize) {
        let rx = self.spawn(i, false);
        self.wait_serving(i, rx);
    }

    /// [`Cluster::restart`] with further environment variables (e.g. `LEDGER_SCAN_BYTES`).
    pub fn restart_with_env(&mut self, i: usize, env: &[(&str, &str)]) {
        let rx = self.spawn_with_env(i, false, env);
        self.wait_serving(i, rx);
    }

    /// Asks node `i` who leads, with an Append that no node accepts (no envelope): a follower
    /// refuses it before looking at it, naming the leader; the leader refuses the empty request.
    pub async fn probe(&self, i: usize) -> Probe {
        let mut c = self.nodes[i].client();
        let r = tokio::time::timeout(
            Duration::from_secs(3),
            c.append(pb::AppendRequest {
                envelope: None,
                request_id: String::new(),
                wait_for_checkpoint: false,
            }),
        )
        .await;
        match r {
            Ok(Err(s)) if s.code() == tonic::Code::InvalidArgument => Probe::Leader,
            Ok(Err(s)) if s.message().starts_with("NOT_LEADER") => Probe::Follower(
                s.metadata()
                    .get("ledger-leader")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
            ),
            _ => Probe::Unknown,
        }
    }

    /// The index of the node that leads, agreed by every other running node (bounded wait).
    pub async fn leader(&self) -> usize {
        let t = Instant::now();
        while t.elapsed() < WAIT {
            let mut leaders = Vec::new();
            let mut named = Vec::new();
            for (i, n) in self.nodes.iter().enumerate() {
                if n.child.is_none() {
                    continue;
                }
                match self.probe(i).await {
                    Probe::Leader => leaders.push(i),
                    Probe::Follower(Some(a)) => named.push(a),
                    _ => named.push(String::new()),
                }
            }
            if let [l] = leaders[..]
                && named.iter().all(|a| *a == self.nodes[l].api)
            {
                return l;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no leader agreed within {WAIT:?}");
    }

    /// `AppendBatch` of `items` on the leader; sent again, with the same request ids, to the
    /// leader found next while the answer is UNAVAILABLE (NOT_LEADER, or leadership lost during
    /// the call: on a loaded machine a leader can miss its heartbeats and an election follows).
    /// The request ids make a resent item answer its first index. Returns the node that answered
    /// and its answer; bounded by [`WAIT`].
    pub async fn append_batch_on_leader(&self, items: Vec<pb::AppendRequest>) -> (usize, pb::AppendBatchResponse) {
        let t = Instant::now();
        loop {
            let l = self.leader().await;
            let r = self.nodes[l]
                .client()
                .append_batch(pb::AppendBatchRequest {
                    items: items.clone(),
                    wait_for_checkpoint: false,
                })
                .await;
            let why = match r {
                Ok(r) => {
                    let r = r.into_inner();
                    match r
                        .results
                        .iter()
                        .find(|x| x.error_code == tonic::Code::Unavailable as i32)
                    {
                        Some(x) => x.error_message.clone(),
                        None => return (l, r),
                    }
                }
                Err(s) if s.code() == tonic::Code::Unavailable => s.message().to_string(),
                Err(s) => panic!("append batch on node {}: {s:?}", self.nodes[l].id),
            };
            assert!(
                t.elapsed() < WAIT,
                "append batch not answered within {WAIT:?}; last answer: {why}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (bounded) until node `i` holds at least `size` entries; returns its size.
    pub async fn wait_size(&self, i: usize, size: u64) -> u64 {
        let t = Instant::now();
        let mut c = self.nodes[i].client();
        let mut last = 0;
        while t.elapsed() < WAIT {
            if let Ok(r) = c.get_entry(pb::GetEntryRequest { index: size - 1 }).await {
                last = r.into_inner().index + 1;
                if last >= size {
                    return last;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "node {} did not reach size {size} within {WAIT:?} (has {last}):\n{}",
            self.nodes[i].id,
            self.nodes[i].log_tail()
        );
    }
}

impl Cluster {
    /// Waits (bounded) until node `i` serves a latest checkpoint of at least `size`; returns its
    /// (size, note).
    pub async fn wait_checkpoint(&self, i: usize, size: u64) -> (u64, String) {
        let t = Instant::now();
        let mut c = self.nodes[i].client();
        while t.elapsed() < WAIT {
            if let Ok(r) = c.get_checkpoint(pb::GetCheckpointRequest { size: None }).await {
                let r = r.into_inner();
                if r.size >= size {
                    return (r.size, r.note);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "node {} did not serve a checkpoint of size {size} within {WAIT:?}:\n{}",
            self.nodes[i].id,
            self.nodes[i].log_tail()
        );
    }
}

/// The body of `GET path` from an HTTP/1.1 server at `addr` (status 200 required).
pub fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
    body.to_string()
}
