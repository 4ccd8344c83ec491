//! Sending Raft to peers: a [`RaftNetworkFactory`] whose clients are tonic channels to each peer's
//! `ledger.raft.v1.Raft` service. Every call is bounded by openraft's `RPCOption` hard TTL; a peer
//! that cannot be reached is an `Unreachable` error (openraft backs off), never a panic. Snapshot
//! chunks are refused past [`ledger_raft::MAX_SNAPSHOT_BYTES`] in total and after
//! [`SNAPSHOT_DEADLINE`] from the first chunk.

use super::config::ClusterConfig;
use super::server::{MAX_MESSAGE_BYTES, check_chunk};
use super::{decode, encode};
use ledger_proto::raft_pb::RaftRequest;
use ledger_proto::raft_pb::raft_client::RaftClient;
use ledger_raft::LedgerNode;
use ledger_raft::TypeConfig;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable};
use openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use std::time::{Duration, Instant};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// Longest a whole snapshot transfer may take, from its first chunk to its last.
pub const SNAPSHOT_DEADLINE: Duration = Duration::from_secs(30 * 60);
/// Longest a connection attempt to a peer may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Makes one [`Connection`] per peer for the Raft instance of node `id`.
#[derive(Debug, Clone, Default)]
pub struct Network {
    /// The local node's id (named in timeout errors).
    pub id: u64,
    /// Mutual TLS to peers (`https://`); `None`: plain HTTP/2 (loopback clusters only).
    tls: Option<ClientTlsConfig>,
}

impl Network {
    /// Plain HTTP/2 to peers, without TLS (tests; [`Self::from_config`] allows it only on
    /// loopback addresses).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn plain(id: u64) -> Self {
        Self { id, tls: None }
    }

    /// The network of the node a cluster config describes: mutual TLS with the `[tls]` files, or
    /// plain HTTP/2 where the config allows it (`ClusterConfig::peer_tls`).
    ///
    /// # Errors
    /// As `ClusterConfig::peer_tls`: a node refuses to start a cluster on it.
    pub fn from_config(config: &ClusterConfig) -> Result<Self, String> {
        Ok(Self {
            id: config.id,
            tls: config.peer_tls()?.map(|t| t.client()),
        })
    }

    /// A lazily connected channel to the Raft port at `addr` (`host:port`), with this network's
    /// TLS (the admin client uses it too).
    ///
    /// # Errors
    /// When the address does not make a URI or the TLS settings are refused.
    pub fn channel(&self, addr: &str) -> Result<Channel, String> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut e = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(|e| format!("address {addr:?} is not usable: {e}"))?
            .connect_timeout(CONNECT_TIMEOUT);
        if let Some(t) = &self.tls {
            e = e.tls_config(t.clone()).map_err(|e| format!("TLS to {addr:?}: {e}"))?;
        }
        Ok(e.connect_lazy())
    }
}

/// The client side of Raft to one peer.
pub struct Connection {
    id: u64,
    target: u64,
    /// The channel, or why the peer's address is unusable.
    client: Result<RaftClient<Channel>, String>,
    /// Id and start of the snapshot being sent.
    snapshot: Option<(String, Instant)>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, node: &LedgerNode) -> Connection {
        let client = self
            .channel(&node.addr)
            .map(|channel| {
                RaftClient::new(channel)
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES)
            })
            .map_err(|e| format!("peer {target}: {e}"));
        Connection {
            id: self.id,
            target,
            client,
            snapshot: None,
        }
    }
}

/// Why a call to a peer failed, before openraft's error types.
#[derive(Debug)]
pub struct CallError(String);

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CallError {}

type RpcResult<T, E> = Result<T, RPCError<u64, LedgerNode, RaftError<u64, E>>>;

impl Connection {
    async fn call<Req, Resp, E, F, Fut>(
        &self,
        action: RPCTypes,
        req: &Req,
        option: &RPCOption,
        send: F,
    ) -> RpcResult<Resp, E>
    where
        Req: serde::Serialize,
        Resp: serde::de::DeserializeOwned,
        E: std::error::Error + serde::de::DeserializeOwned,
        F: FnOnce(RaftClient<Channel>, RaftRequest) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<ledger_proto::raft_pb::RaftReply>, tonic::Status>>,
    {
        let client = match &self.client {
            Ok(c) => c.clone(),
            Err(e) => return Err(RPCError::Unreachable(Unreachable::new(&CallError(e.clone())))),
        };
        let body = encode(req).map_err(|e| RPCError::Network(NetworkError::new(&CallError(e))))?;
        let timeout = option.hard_ttl();
        let answer = match tokio::time::timeout(timeout, send(client, RaftRequest { body })).await {
            Err(_) => {
                return Err(RPCError::Timeout(Timeout {
                    action,
                    id: self.id,
                    target: self.target,
                    timeout,
                }));
            }
            Ok(Err(status)) => return Err(status_error(self.target, &status)),
            Ok(Ok(r)) => r.into_inner(),
        };
        let result: Result<Resp, RaftError<u64, E>> = decode(&answer.body).map_err(|e| {
            RPCError::Network(NetworkError::new(&CallError(format!(
                "answer of peer {}: {e}",
                self.target
            ))))
        })?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

/// A gRPC failure: a peer that cannot be reached (no connection) is `Unreachable`, so that openraft
/// backs off; anything else is a network error.
fn status_error<E: std::error::Error>(
    target: u64,
    status: &tonic::Status,
) -> RPCError<u64, LedgerNode, RaftError<u64, E>> {
    let e = CallError(format!("peer {target}: {:?}: {}", status.code(), status.message()));
    match status.code() {
        tonic::Code::Unavailable => RPCError::Unreachable(Unreachable::new(&e)),
        _ => RPCError::Network(NetworkError::new(&e)),
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>, openraft::error::Infallible> {
        self.call(RPCTypes::AppendEntries, &rpc, &option, |mut c, r| async move {
            c.append_entries(r).await
        })
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<u64>, openraft::error::Infallible> {
        self.call(RPCTypes::Vote, &rpc, &option, |mut c, r| async move { c.vote(r).await })
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<u64>, InstallSnapshotError> {
        let refuse = |m: String| RPCError::Network(NetworkError::new(&CallError(m)));
        check_chunk(rpc.offset, rpc.data.len()).map_err(|s| refuse(s.message().to_string()))?;
        let id = rpc.meta.snapshot_id.clone();
        let started = match &self.snapshot {
            Some((sid, at)) if *sid == id && rpc.offset > 0 => *at,
            _ => Instant::now(),
        };
        if started.elapsed() > SNAPSHOT_DEADLINE {
            self.snapshot = None;
            return Err(refuse(format!(
                "snapshot {id} to peer {} passed its deadline of {}s",
                self.target,
                SNAPSHOT_DEADLINE.as_secs()
            )));
        }
        self.snapshot = if rpc.done { None } else { Some((id, started)) };
        self.call(RPCTypes::InstallSnapshot, &rpc, &option, |mut c, r| async move {
            c.install_snapshot(r).await
        })
        .await
    }
}
