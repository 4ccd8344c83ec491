//! Raft between real nodes (issue 15, second step): the `ledger.raft.v1` gRPC service that hands
//! peers' requests to the local [`openraft::Raft`] ([`server`]), the network factory that sends them
//! over tonic channels ([`network`]), a node's TOML settings ([`config`]), and [`open_raft`], which starts one Raft instance on a node's
//! data directory with the ledger-raft storage.
//!
//! Not wired into `serve` yet: the single node stays the default (`docs/cluster.md` says what
//! exists and what comes next), so only the tests use this module for now.

pub mod config;
pub mod network;
pub mod server;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod chaos;

use ledger_raft::{LogStore, StateMachine, TypeConfig};
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
pub async fn open_raft(id: u64, data: &Path, config: openraft::Config) -> anyhow::Result<(LedgerRaft, StateMachine)> {
    let config = Arc::new(config.validate()?);
    let log = LogStore::open(&data.join("raft").join("log"))?;
    let sm = StateMachine::open(&data.join("ledger"), &data.join("raft"))?;
    let raft = openraft::Raft::new(id, config, network::Network { id }, log, sm.clone()).await?;
    Ok((raft, sm))
}
