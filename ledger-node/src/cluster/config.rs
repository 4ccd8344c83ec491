//! One node's cluster settings, from a TOML file (`docs/cluster.md`, "Config"):
//!
//! ```toml
//! id = 1
//! listen = "127.0.0.1:7101"   # the Raft service (ledger.raft.v1) of this node
//! data = "n1"                 # DATA: raft/log, raft/ (snapshots), ledger/
//! [peers]                     # every voter, this node included: id = "host:port"
//! 1 = "127.0.0.1:7101"
//! 2 = "127.0.0.1:7102"
//! 3 = "127.0.0.1:7103"
//! ```
//!
//! Optional: `heartbeat_ms` (100), `election_timeout_min_ms` (400), `election_timeout_max_ms` (800),
//! `snapshot_after_logs` (5000), `snapshot_keep_logs` (1000);
//! `[api]` (id = "host:port" of each node's public gRPC API, recorded in the membership);
//! `[tls]` with `ca`, `cert`, `key` (PEM files, relative to the config file): mutual TLS between
//! peers, required unless `insecure_loopback = true` and every address is a loopback one.

use ledger_raft::LedgerNode;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A node's cluster settings.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's Raft id (not 0).
    pub id: u64,
    /// Address the Raft service listens on.
    pub listen: SocketAddr,
    /// Data directory.
    pub data: PathBuf,
    /// The initial voters, this node included: id → address of its Raft service.
    pub peers: BTreeMap<u64, String>,
    /// Heartbeat interval in milliseconds.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_ms: u64,
    /// Lower bound of the election timeout in milliseconds.
    #[serde(default = "default_election_min")]
    pub election_timeout_min_ms: u64,
    /// Upper bound of the election timeout in milliseconds.
    #[serde(default = "default_election_max")]
    pub election_timeout_max_ms: u64,
    /// The public API address of each peer (id → `host:port`), recorded in the membership so that
    /// a follower can name the leader's; optional.
    #[serde(default)]
    pub api: BTreeMap<u64, String>,
    /// Mutual TLS between peers (`[tls]`).
    #[serde(default)]
    pub tls: Option<TlsFiles>,
    /// Runs the Raft port without TLS; allowed only when `listen` and every peer are loopback
    /// addresses (tests, the one-machine walkthrough).
    #[serde(default)]
    pub insecure_loopback: bool,
    /// openraft's snapshot policy: a snapshot after this many Raft log entries since the last
    /// one (5000, openraft's default).
    #[serde(default = "default_snapshot_after")]
    pub snapshot_after_logs: u64,
    /// Raft log entries kept past the last snapshot (1000, openraft's default); a node further
    /// behind catches up through the snapshot.
    #[serde(default = "default_snapshot_keep")]
    pub snapshot_keep_logs: u64,
}

/// The `[tls]` section: PEM files (relative paths are relative to the config file).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The cluster's CA certificate: peers' certificates must be signed by it, both ways.
    pub ca: PathBuf,
    /// This node's certificate (chain), signed by the CA; presented as server and as client.
    pub cert: PathBuf,
    /// This node's private key.
    pub key: PathBuf,
}

/// The loaded PEM material of `[tls]`.
#[derive(Clone)]
pub struct PeerTls {
    /// CA certificate (PEM).
    pub ca: Vec<u8>,
    /// This node's certificate (PEM).
    pub cert: Vec<u8>,
    /// This node's key (PEM).
    pub key: Vec<u8>,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerTls").finish_non_exhaustive()
    }
}

impl PeerTls {
    /// The Raft server's TLS: this node's identity, and a client certificate signed by the CA
    /// required from every caller.
    pub fn server(&self) -> tonic::transport::ServerTlsConfig {
        tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(&self.cert, &self.key))
            .client_ca_root(tonic::transport::Certificate::from_pem(&self.ca))
            .client_auth_optional(false)
    }

    /// The client's TLS: the server's certificate checked against the CA (and the peer's host
    /// name or IP), this node's certificate presented.
    pub fn client(&self) -> tonic::transport::ClientTlsConfig {
        tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&self.ca))
            .identity(tonic::transport::Identity::from_pem(&self.cert, &self.key))
    }
}

/// Whether `addr` (`host:port`) names a loopback address.
fn is_loopback(addr: &str) -> bool {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn read_pem(what: &str, path: &Path) -> Result<Vec<u8>, String> {
    let b = std::fs::read(path).map_err(|e| format!("cluster config: [tls] {what} {}: {e}", path.display()))?;
    if !b.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(format!(
            "cluster config: [tls] {what} {} is not a PEM file",
            path.display()
        ));
    }
    Ok(b)
}

/// Snapshot chunk size: below tokio's 2 MiB file write buffer, so that each received chunk is one
/// write of the file openraft receives it into (larger chunks corrupted received snapshots here:
/// docs/cluster.md, "Known limits").
pub const SNAPSHOT_CHUNK_BYTES: u64 = 1 << 20;

/// Bound on one snapshot chunk's round trip (openraft's `install_snapshot_timeout`; its default,
/// 200 ms, is for small chunks on a fast network). A chunk of [`SNAPSHOT_CHUNK_BYTES`] that misses
/// the bound makes the leader start the whole snapshot again from offset 0: on a loaded machine
/// (or a link under about 5 MB/s) every first chunk missed 200 ms and a new node never caught
/// up. 10 s per MiB: about 100 KiB/s at the least.
pub const SNAPSHOT_CHUNK_TIMEOUT_MS: u64 = 10_000;

fn default_snapshot_after() -> u64 {
    5000
}
fn default_snapshot_keep() -> u64 {
    1000
}
fn default_heartbeat() -> u64 {
    100
}
fn default_election_min() -> u64 {
    400
}
fn default_election_max() -> u64 {
    800
}

impl ClusterConfig {
    /// Reads, parses and checks a TOML file; `[tls]` paths are made relative to its directory.
    ///
    /// # Errors
    /// When the file cannot be read, or as [`Self::parse`].
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cluster config {}: {e}", path.display()))?;
        let mut c = Self::parse(&text)?;
        let base = path.parent().unwrap_or(Path::new(""));
        if let Some(t) = c.tls.as_mut() {
            for p in [&mut t.ca, &mut t.cert, &mut t.key] {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
        }
        Ok(c)
    }

    /// How this node secures its Raft port and its calls to peers: the `[tls]` files loaded, or
    /// `None` for plain HTTP/2, allowed only with `insecure_loopback = true` and every address
    /// (listen, peers) a loopback one. A node refuses to start a cluster on an error here.
    ///
    /// # Errors
    /// No `[tls]` without `insecure_loopback`, a non-loopback address with it, or a PEM file
    /// that cannot be read.
    pub fn peer_tls(&self) -> Result<Option<PeerTls>, String> {
        if let Some(t) = &self.tls {
            return Ok(Some(PeerTls {
                ca: read_pem("ca", &t.ca)?,
                cert: read_pem("cert", &t.cert)?,
                key: read_pem("key", &t.key)?,
            }));
        }
        if !self.insecure_loopback {
            return Err("cluster config: the Raft port must not accept strangers: add [tls] with ca, cert and key (PEM files: the cluster's CA, this node's certificate signed by it, its key), or set insecure_loopback = true for a cluster whose nodes all run on this machine".into());
        }
        if !self.listen.ip().is_loopback() {
            return Err(format!(
                "cluster config: insecure_loopback allows only loopback addresses, and listen is {}; add [tls]",
                self.listen
            ));
        }
        if let Some((id, a)) = self.peers.iter().find(|(_, a)| !is_loopback(a)) {
            return Err(format!(
                "cluster config: insecure_loopback allows only loopback addresses, and peer {id} is {a:?}; add [tls]"
            ));
        }
        Ok(None)
    }

    /// Parses and checks a TOML file's text.
    ///
    /// # Errors
    /// A syntax error, an unknown key, or settings that cannot form a cluster (see [`Self::check`]).
    pub fn parse(text: &str) -> Result<Self, String> {
        let c: Self = toml::from_str(text).map_err(|e| format!("cluster config: {e}"))?;
        c.check()?;
        Ok(c)
    }

    /// Checks that the settings can form a cluster: id not 0, this node among the peers at its
    /// listen port, every peer address a `host:port`, timeouts that openraft accepts.
    ///
    /// # Errors
    /// The first problem found, naming the setting.
    pub fn check(&self) -> Result<(), String> {
        if self.id == 0 {
            return Err("cluster config: id must not be 0".into());
        }
        if self.peers.contains_key(&0) {
            return Err("cluster config: peer id 0 is not allowed".into());
        }
        for (id, addr) in &self.peers {
            match addr.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0) => {}
                _ => return Err(format!("cluster config: peer {id} address {addr:?} is not host:port")),
            }
        }
        match self.peers.get(&self.id) {
            None => {
                return Err(format!(
                    "cluster config: this node (id {}) is not among the peers",
                    self.id
                ));
            }
            Some(a) if !a.ends_with(&format!(":{}", self.listen.port())) => {
                return Err(format!(
                    "cluster config: this node's peer address {a:?} does not end with its listen port {}",
                    self.listen.port()
                ));
            }
            Some(_) => {}
        }
        if let Some(id) = self.api.keys().find(|id| !self.peers.contains_key(id)) {
            return Err(format!(
                "cluster config: [api] names {id}, which is not among the peers"
            ));
        }
        for (id, addr) in &self.api {
            match addr.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0) => {}
                _ => return Err(format!("cluster config: [api] {id} address {addr:?} is not host:port")),
            }
        }
        self.raft_config()
            .validate()
            .map_err(|e| format!("cluster config: {e}"))?;
        Ok(())
    }

    /// The openraft settings.
    pub fn raft_config(&self) -> openraft::Config {
        openraft::Config {
            cluster_name: "ledger".into(),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_after_logs),
            max_in_snapshot_log_to_keep: self.snapshot_keep_logs,
            snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES,
            install_snapshot_timeout: SNAPSHOT_CHUNK_TIMEOUT_MS,
            ..openraft::Config::default()
        }
    }

    /// The initial membership (`Raft::initialize`).
    pub fn members(&self) -> BTreeMap<u64, LedgerNode> {
        self.peers
            .iter()
            .map(|(id, a)| {
                (
                    *id,
                    LedgerNode::with_api(a, self.api.get(id).map_or("", String::as_str)),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::ClusterConfig;

    const GOOD: &str = r#"
id = 2
listen = "127.0.0.1:7102"
data = "n2"
[peers]
1 = "127.0.0.1:7101"
2 = "127.0.0.1:7102"
3 = "node3.example:7103"
"#;

    #[test]
    fn a_three_node_file_parses_with_defaults() {
        let c = ClusterConfig::parse(GOOD).unwrap();
        assert_eq!(c.id, 2);
        assert_eq!(c.members().len(), 3);
        assert_eq!(c.members()[&3].addr, "node3.example:7103");
        let r = c.raft_config();
        assert_eq!(
            (r.heartbeat_interval, r.election_timeout_min, r.election_timeout_max),
            (100, 400, 800)
        );
        assert_eq!(r.snapshot_policy, openraft::SnapshotPolicy::LogsSinceLast(5000));
        assert_eq!(r.max_in_snapshot_log_to_keep, 1000);
        // A 1 MiB snapshot chunk has 10 s, not openraft's 200 ms (missed under load: the
        // transfer restarted from offset 0 for ever).
        assert_eq!(
            (r.snapshot_max_chunk_size, r.install_snapshot_timeout),
            (1 << 20, 10_000)
        );
        let c = ClusterConfig::parse(&GOOD.replace(
            "data = \"n2\"",
            "data = \"n2\"\nsnapshot_after_logs = 300\nsnapshot_keep_logs = 10",
        ))
        .unwrap();
        let r = c.raft_config();
        assert_eq!(r.snapshot_policy, openraft::SnapshotPolicy::LogsSinceLast(300));
        assert_eq!(r.max_in_snapshot_log_to_keep, 10);
    }

    #[test]
    fn settings_that_cannot_form_a_cluster_are_refused() {
        let cases = [
            (GOOD.replace("id = 2", "id = 4"), "not among the peers"),
            (GOOD.replace("id = 2", "id = 0"), "must not be 0"),
            (
                GOOD.replace("3 = \"node3.example:7103\"", "3 = \"node3.example\""),
                "not host:port",
            ),
            (GOOD.replace("3 = \"node3.example:7103\"", "0 = \"a:1\""), "peer id 0"),
            (
                GOOD.replace("listen = \"127.0.0.1:7102\"", "listen = \"127.0.0.1:7109\""),
                "listen port",
            ),
            (format!("{GOOD}\n"), ""),
            (
                GOOD.replace("data = \"n2\"", "data = \"n2\"\nheartbeat_ms = 900"),
                "cluster config:",
            ),
            (
                GOOD.replace("data = \"n2\"", "data = \"n2\"\nvoters = 3"),
                "unknown field",
            ),
        ];
        for (text, want) in cases {
            match ClusterConfig::parse(&text) {
                Ok(_) => assert!(want.is_empty(), "accepted, expected {want:?}"),
                Err(e) => assert!(!want.is_empty() && e.contains(want), "{e} (expected {want:?})"),
            }
        }
    }
}
