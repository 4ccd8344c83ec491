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
//! and an `[api]` table, id = the public API address (`host:port`) of that peer, which a follower
//! names to clients that send it appends (`docs/cluster.md`).

use openraft::BasicNode;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

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
    /// Public API address (`host:port`) of peers, by id: what a follower names as the leader.
    #[serde(default)]
    pub api: BTreeMap<u64, String>,
    /// Heartbeat interval in milliseconds.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_ms: u64,
    /// Lower bound of the election timeout in milliseconds.
    #[serde(default = "default_election_min")]
    pub election_timeout_min_ms: u64,
    /// Upper bound of the election timeout in milliseconds.
    #[serde(default = "default_election_max")]
    pub election_timeout_max_ms: u64,
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
            if !is_host_port(addr) {
                return Err(format!("cluster config: peer {id} address {addr:?} is not host:port"));
            }
        }
        for (id, addr) in &self.api {
            if !self.peers.contains_key(id) {
                return Err(format!(
                    "cluster config: [api] names {id}, which is not among the peers"
                ));
            }
            if !is_host_port(addr) {
                return Err(format!(
                    "cluster config: [api] address {addr:?} of {id} is not host:port"
                ));
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
            ..openraft::Config::default()
        }
    }

    /// The initial membership (`Raft::initialize`).
    pub fn members(&self) -> BTreeMap<u64, BasicNode> {
        self.peers
            .iter()
            .map(|(id, a)| (*id, BasicNode::new(a.clone())))
            .collect()
    }
}

fn is_host_port(addr: &str) -> bool {
    matches!(addr.rsplit_once(':'), Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0))
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
        assert!(c.api.is_empty());
        let with_api = ClusterConfig::parse(&format!("{GOOD}[api]\n1 = \"127.0.0.1:50051\"\n")).unwrap();
        assert_eq!(with_api.api[&1], "127.0.0.1:50051");
        let r = c.raft_config();
        assert_eq!(
            (r.heartbeat_interval, r.election_timeout_min, r.election_timeout_max),
            (100, 400, 800)
        );
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
            (format!("{GOOD}[api]\n4 = \"a:1\"\n"), "not among the peers"),
            (format!("{GOOD}[api]\n1 = \"a\"\n"), "is not host:port"),
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
