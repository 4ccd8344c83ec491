//! Raft between real nodes (issue 15, second step): the `ledger.raft.v1` gRPC service that hands
//! peers' requests to the local [`openraft::Raft`] ([`server`]), the network factory that sends them
//! over tonic channels ([`network`]), a node's TOML settings ([`config`]), and [`open_raft`], which starts one Raft instance on a node's
//! data directory with the ledger-raft storage.
//!
//! `serve --cluster FILE` starts a node's Raft with [`start`] and hands the sequencer and the
//! services a [`ClusterView`] (who leads, the applied state); without it `serve` is the single
//! node, as before (`docs/cluster.md`).

pub mod admin;
pub mod config;
pub mod network;
pub mod server;

#[cfg(test)]
mod admin_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;

use anyhow::Context;
use ledger_raft::{LogStore, StateMachine, TypeConfig};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Version byte that starts every `ledger.raft.v1` body (`docs/cluster.md`, "Transport").
pub const WIRE_VERSION: u8 = 1;

/// The local Raft instance of a node.
pub type LedgerRaft = openraft::Raft<TypeConfig>;

/// Encodes an openraft value for the wire: [`WIRE_VERSION`] then bincode (standard config, serde).
pub fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, String> {
    let mut out = vec![WIRE_VERSION];
    bincode::serde::encode_into_std_write(v, &mut out, bincode::config::standard())
        .map_err(|e| format!("raft wire encoding: {e}"))?;
    Ok(out)
}

/// Decodes a body written by [`encode`]; refuses another version byte and trailing bytes.
pub fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    match body.split_first() {
        None => Err("raft wire body is empty".into()),
        Some((&WIRE_VERSION, rest)) => {
            let (v, used) = bincode::serde::decode_from_slice(rest, bincode::config::standard())
                .map_err(|e| format!("raft wire body does not decode: {e}"))?;
            if used != rest.len() {
                return Err(format!("raft wire body has {} trailing bytes", rest.len() - used));
            }
            Ok(v)
        }
        Some((v, _)) => Err(format!(
            "raft wire version {v} is not supported (this node speaks {WIRE_VERSION})"
        )),
    }
}

/// Starts the Raft instance of node `id` on `data` (the log in `DATA/raft/log`, the ledger in
/// `DATA/ledger`, snapshots in `DATA/raft`), sending to peers through [`network::Network`].
///
/// Also returns a handle on the state machine (it shares the store: drop it before reopening the
/// directory).
///
/// # Errors
/// When the configuration is invalid or the storage does not open.
#[cfg_attr(not(test), allow(dead_code))]
pub async fn open_raft(id: u64, data: &Path, config: openraft::Config) -> anyhow::Result<(LedgerRaft, StateMachine)> {
    open_raft_with(id, data, config, network::Network::plain(id)).await
}

/// [`open_raft`] with a given network ([`network::Network::from_config`] for a node's cluster
/// config: mutual TLS to peers).
///
/// # Errors
/// As [`open_raft`].
pub async fn open_raft_with(
    id: u64,
    data: &Path,
    config: openraft::Config,
    network: network::Network,
) -> anyhow::Result<(LedgerRaft, StateMachine)> {
    let config = Arc::new(config.validate()?);
    let log = LogStore::open(&data.join("raft").join("log"))?;
    let sm = StateMachine::open(&data.join("ledger"), &data.join("raft"))?;
    let raft = openraft::Raft::new(id, config, network, log, sm.clone()).await?;
    Ok((raft, sm))
}

/// What the node's sequencer and services see of the cluster: this node's id, its Raft, its state
/// machine (the applied ledger) and the peers' public API addresses.
pub struct ClusterView {
    /// This node's Raft id.
    pub id: u64,
    /// The local Raft instance.
    pub raft: LedgerRaft,
    /// The state machine: the applied ledger store, tree and state.
    pub sm: StateMachine,
    /// Public API address of peers, by id (the config's `[api]` table), for members whose
    /// membership record names none.
    pub api: BTreeMap<u64, String>,
    /// The runtime the Raft runs on (the sequencer's threads block on it).
    pub rt: tokio::runtime::Handle,
}

/// This node's view of the leadership, from the Raft metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Role {
    /// This node is the leader.
    pub leader: bool,
    /// The leader's id, if known.
    pub leader_id: Option<u64>,
    /// The current term.
    pub term: u64,
}

impl ClusterView {
    /// The leadership as this node sees it now.
    pub fn role(&self) -> Role {
        let m = self.raft.metrics();
        let m = m.borrow();
        Role {
            leader: m.state == openraft::ServerState::Leader,
            leader_id: m.current_leader,
            term: m.current_term,
        }
    }

    /// The public API address of node `id`: as the membership records it, else as the config's
    /// `[api]` table names it.
    pub fn api_of(&self, id: u64) -> Option<String> {
        let m = self.raft.metrics();
        let recorded = m
            .borrow()
            .membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.api_addr.clone())
            .filter(|a| !a.is_empty());
        recorded.or_else(|| self.api.get(&id).cloned())
    }

    /// The refusal of an append this node cannot sequence (it does not lead), naming the leader.
    pub fn not_leader(&self, leader_id: Option<u64>) -> crate::refusal::Refusal {
        crate::refusal::Refusal::NotLeader {
            leader_id,
            api: leader_id.and_then(|l| self.api_of(l)),
        }
    }
}

/// The tlog-tiles of what this node applied: each request reads the state machine's current
/// store, so the tiles follow a snapshot install.
pub struct AppliedTiles(pub Arc<ClusterView>);

impl AppliedTiles {
    fn store(&self) -> Result<Arc<ledger_store::Store>, ledger_store::tiles::TileError> {
        self.0.sm.store().map_err(|e| {
            ledger_store::tiles::TileError::Store(ledger_store::StoreError::Io(std::io::Error::other(e.to_string())))
        })
    }
}

impl ledger_store::tiles::TileSource for AppliedTiles {
    fn signed_checkpoint(&self) -> Result<Option<(u64, String)>, ledger_store::tiles::TileError> {
        self.store()?.signed_checkpoint()
    }

    fn hash_tile(&self, level: u8, index: u64, width: u16) -> Result<Vec<u8>, ledger_store::tiles::TileError> {
        self.store()?.hash_tile(level, index, width)
    }

    fn entry_bundle(&self, index: u64, width: u16) -> Result<Vec<u8>, ledger_store::tiles::TileError> {
        self.store()?.entry_bundle(index, width)
    }
}

/// A started cluster member: its view and the Raft service's server task.
pub struct ClusterHandle {
    /// What the sequencer and the services use.
    pub view: Arc<ClusterView>,
    /// The `ledger.raft.v1` server (ends with the stop signal given to [`start`]).
    pub server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    /// Where the Raft service listens.
    pub bound: std::net::SocketAddr,
}

/// Starts node `cfg.id`: opens its Raft on `cfg.data` ([`open_raft`]), serves `ledger.raft.v1` on
/// `cfg.listen` until `stop` resolves ([`server::router`]: mutual TLS as the config says), and, when `init` and the Raft was never
/// initialized, initializes the cluster with `cfg`'s peers as voters.
///
/// # Errors
/// When the storage does not open, the port cannot be bound, or initialization fails.
pub async fn start(
    cfg: &config::ClusterConfig,
    init: bool,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<ClusterHandle> {
    let net = network::Network::from_config(cfg).map_err(anyhow::Error::msg)?;
    let (raft, sm) = open_raft_with(cfg.id, &cfg.data, cfg.raft_config(), net).await?;
    let router = server::router(cfg, raft.clone(), sm.clone()).map_err(anyhow::Error::msg)?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("binding the Raft port {}", cfg.listen))?;
    let bound = listener.local_addr()?;
    let server = tokio::spawn(
        router.serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), stop),
    );
    if init {
        if raft.is_initialized().await? {
            tracing::info!("--cluster-init: this node's Raft is already initialized; nothing to do");
        } else {
            raft.initialize(cfg.members())
                .await
                .context("initializing the cluster")?;
            tracing::info!(voters = ?cfg.peers.keys().collect::<Vec<_>>(), "cluster initialized");
        }
    }
    tracing::info!(id = cfg.id, addr = %bound, "Raft service (ledger.raft.v1) open to peers");
    Ok(ClusterHandle {
        view: Arc::new(ClusterView {
            id: cfg.id,
            raft,
            sm,
            api: cfg.api.clone(),
            rt: tokio::runtime::Handle::current(),
        }),
        server,
        bound,
    })
}
