//! The `ledger.raft.v1.Raft` service: decodes a peer's request, hands it to the local Raft, and
//! answers the encoded `Result` (a refusal by Raft is a value in the body, not a gRPC error).

use super::config::ClusterConfig;
use super::{LedgerRaft, decode, encode};
use ledger_proto::raft_pb::raft_server::{Raft, RaftServer};
use ledger_proto::raft_pb::{RaftReply, RaftRequest};
use ledger_raft::StateMachine;
use ledger_raft::{MAX_SNAPSHOT_BYTES, TypeConfig};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use tonic::transport::server::Router;
use tonic::{Request, Response, Status};

/// Largest gRPC message the Raft service accepts (one append batch or one snapshot chunk).
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Serves a node's Raft to its peers.
#[derive(Clone)]
pub struct RaftService {
    raft: LedgerRaft,
}

impl RaftService {
    /// The service over the local Raft instance, as a tonic server with message limits.
    pub fn server(raft: LedgerRaft) -> RaftServer<Self> {
        RaftServer::new(Self { raft })
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

/// The Raft port of the node a cluster config describes: the `ledger.raft.v1.Raft` service over
/// `raft`, behind mutual TLS with the `[tls]` files (a caller without a certificate signed by the
/// cluster's CA is refused during the handshake), or plain where the config allows it
/// (`ClusterConfig::peer_tls`). Serve it on the config's `listen` address
/// (`serve_with_incoming_shutdown` or `serve_with_shutdown`).
///
/// The same port serves the admin service (`ledger.raft.v1.Admin`, [`super::admin`]) over `raft`
/// and `sm`, behind the same TLS.
///
/// # Errors
/// As `ClusterConfig::peer_tls`, or TLS settings tonic refuses: a node refuses to start a cluster
/// on it.
pub fn router(config: &ClusterConfig, raft: LedgerRaft, sm: StateMachine) -> Result<Router, String> {
    let mut builder = tonic::transport::Server::builder();
    if let Some(t) = config.peer_tls()? {
        builder = builder
            .tls_config(t.server())
            .map_err(|e| format!("cluster config: [tls]: {e}"))?;
    }
    Ok(builder
        .add_service(RaftService::server(raft.clone()))
        .add_service(super::admin::AdminService::server(raft, sm)))
}

fn reply<T: serde::Serialize>(v: &T) -> Result<Response<RaftReply>, Status> {
    encode(v)
        .map(|body| Response::new(RaftReply { body }))
        .map_err(Status::internal)
}

/// Checks that a snapshot chunk stays under [`MAX_SNAPSHOT_BYTES`] in total.
pub fn check_chunk(offset: u64, len: usize) -> Result<(), Status> {
    let end = u64::try_from(len).ok().and_then(|l| offset.checked_add(l));
    match end {
        Some(end) if end <= MAX_SNAPSHOT_BYTES => Ok(()),
        _ => Err(Status::resource_exhausted(format!(
            "snapshot chunk at offset {offset} of {len} bytes passes the snapshot cap of {MAX_SNAPSHOT_BYTES} bytes"
        ))),
    }
}

#[tonic::async_trait]
impl Raft for RaftService {
    async fn append_entries(&self, req: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let rpc: AppendEntriesRequest<TypeConfig> = decode(&req.into_inner().body).map_err(Status::invalid_argument)?;
        reply(&self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, req: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let rpc: VoteRequest<u64> = decode(&req.into_inner().body).map_err(Status::invalid_argument)?;
        reply(&self.raft.vote(rpc).await)
    }

    async fn install_snapshot(&self, req: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let rpc: InstallSnapshotRequest<TypeConfig> =
            decode(&req.into_inner().body).map_err(Status::invalid_argument)?;
        check_chunk(rpc.offset, rpc.data.len())?;
        reply(&self.raft.install_snapshot(rpc).await)
    }
}
