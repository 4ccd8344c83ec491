//! Cluster administration: the `ledger.raft.v1.Admin` service on the Raft port (behind the same
//! mutual TLS as the peers) and the `ledger-node cluster init|add|remove|status` commands that
//! call it (`docs/cluster.md`, "Membership").
//!
//! A membership change sent to a follower is refused with `FAILED_PRECONDITION` naming the leader
//! (in the message and in the [`LEADER_METADATA`] key: its Raft address); the commands follow it.
//! `add` makes the node a learner, waits (bounded) until the leader has replicated its log to it,
//! then makes it a voter; `remove` changes the voters without it (or removes a learner).

use super::LedgerRaft;
use super::config::ClusterConfig;
use super::network::Network;
use clap::{Args, Subcommand};
use ledger_proto::raft_pb::admin_client::AdminClient;
use ledger_proto::raft_pb::admin_server::{Admin, AdminServer};
use ledger_proto::raft_pb::{
    AddLearnerRequest, AdminReply, ChangeMembershipRequest, InitializeRequest, Member, Replication, StatusReply,
    StatusRequest,
};
use ledger_raft::{LedgerNode, StateMachine};
use openraft::error::{ChangeMembershipError, ClientWriteError, InitializeError, RaftError};
use openraft::{ChangeMembers, ServerState};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// Metadata key of a `FAILED_PRECONDITION` answer from a follower: the leader's Raft address.
pub const LEADER_METADATA: &str = "ledger-leader-raft";

/// Longest one admin call may take (a membership change waits for its commit).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How many times a command follows a "not the leader" answer.
const MAX_HOPS: usize = 3;
/// How long `cluster add` / `remove` retry a change refused because another is still committing
/// (ABORTED), before they report it.
const BUSY_RETRY: Duration = Duration::from_secs(20);

/// The admin service over a node's Raft instance and state machine.
#[derive(Clone)]
pub struct AdminService {
    raft: LedgerRaft,
    sm: StateMachine,
}

impl AdminService {
    /// The service as a tonic server.
    pub fn server(raft: LedgerRaft, sm: StateMachine) -> AdminServer<Self> {
        AdminServer::new(Self { raft, sm })
    }
}

fn check_addr(what: &str, addr: &str, empty_ok: bool) -> Result<(), Status> {
    if empty_ok && addr.is_empty() {
        return Ok(());
    }
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0) => Ok(()),
        _ => Err(Status::invalid_argument(format!("{what} {addr:?} is not host:port"))),
    }
}

fn member_node(m: &Member) -> Result<(u64, LedgerNode), Status> {
    if m.id == 0 {
        return Err(Status::invalid_argument("member id 0 is not allowed"));
    }
    check_addr("raft address", &m.raft_addr, false)?;
    check_addr("api address", &m.api_addr, true)?;
    Ok((m.id, LedgerNode::with_api(&m.raft_addr, &m.api_addr)))
}

/// "Not the leader" as a status: the leader's id and Raft address in the message, the address in
/// [`LEADER_METADATA`].
fn not_leader(id: Option<u64>, node: Option<&LedgerNode>) -> Status {
    let mut s = Status::failed_precondition(match (id, node) {
        (Some(id), Some(n)) => format!("this node is not the leader; the leader is node {id} ({n})"),
        _ => "this node is not the leader and knows of none (an election may be under way); retry".into(),
    });
    if let Some(n) = node
        && let Ok(v) = n.addr.parse()
    {
        s.metadata_mut().insert(LEADER_METADATA, v);
    }
    s
}

pub(super) fn write_error(e: RaftError<u64, ClientWriteError<u64, LedgerNode>>) -> Status {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => not_leader(f.leader_id, f.leader_node.as_ref()),
        // A change still committing (a joint configuration left by a leader change, or a change
        // from another operator) clears by itself: ABORTED tells a client to retry.
        RaftError::APIError(ClientWriteError::ChangeMembershipError(ChangeMembershipError::InProgress(p))) => {
            Status::aborted(format!("{p}; retry once it has committed"))
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => Status::failed_precondition(c.to_string()),
        RaftError::Fatal(f) => Status::unavailable(format!("raft stopped: {f}")),
    }
}

fn reply(log_index: u64, message: String) -> Result<Response<AdminReply>, Status> {
    Ok(Response::new(AdminReply { log_index, message }))
}

fn member(id: u64, n: Option<&LedgerNode>) -> Member {
    Member {
        id,
        raft_addr: n.map(|n| n.addr.clone()).unwrap_or_default(),
        api_addr: n.map(|n| n.api_addr.clone()).unwrap_or_default(),
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn initialize(&self, req: Request<InitializeRequest>) -> Result<Response<AdminReply>, Status> {
        let members = req
            .into_inner()
            .members
            .iter()
            .map(member_node)
            .collect::<Result<BTreeMap<u64, LedgerNode>, Status>>()?;
        if members.is_empty() {
            return Err(Status::invalid_argument("initialize needs at least one member"));
        }
        let n = members.len();
        match self.raft.initialize(members).await {
            Ok(()) => reply(0, format!("initialized with {n} voters")),
            Err(RaftError::APIError(InitializeError::NotAllowed(e))) => Err(Status::failed_precondition(format!(
                "this node's Raft log is not empty (the cluster is already initialized): {e}"
            ))),
            Err(RaftError::APIError(InitializeError::NotInMembers(e))) => Err(Status::invalid_argument(e.to_string())),
            Err(RaftError::Fatal(f)) => Err(Status::unavailable(format!("raft stopped: {f}"))),
        }
    }

    async fn add_learner(&self, req: Request<AddLearnerRequest>) -> Result<Response<AdminReply>, Status> {
        let m = req
            .into_inner()
            .node
            .ok_or_else(|| Status::invalid_argument("add_learner needs a node"))?;
        let (id, node) = member_node(&m)?;
        if self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .voter_ids()
            .any(|v| v == id)
        {
            return Err(Status::already_exists(format!("node {id} is already a voter")));
        }
        let r = self.raft.add_learner(id, node, false).await.map_err(write_error)?;
        reply(r.log_id.index, format!("node {id} added as a learner"))
    }

    async fn change_membership(&self, req: Request<ChangeMembershipRequest>) -> Result<Response<AdminReply>, Status> {
        let req = req.into_inner();
        let (change, what): (ChangeMembers<u64, LedgerNode>, String) =
            match (req.voters.is_empty(), req.remove.is_empty()) {
                (false, true) => {
                    let voters: BTreeSet<u64> = req.voters.iter().copied().collect();
                    let what = format!("voters are now {voters:?}");
                    (ChangeMembers::ReplaceAllVoters(voters), what)
                }
                (true, false) => {
                    let gone: BTreeSet<u64> = req.remove.iter().copied().collect();
                    let voters: BTreeSet<u64> = self.raft.metrics().borrow().membership_config.voter_ids().collect();
                    if let Some(v) = gone.iter().find(|g| voters.contains(g)) {
                        return Err(Status::invalid_argument(format!(
                            "node {v} is a voter: change the voters without it instead"
                        )));
                    }
                    let what = format!("removed {gone:?}");
                    (ChangeMembers::RemoveNodes(gone), what)
                }
                _ => {
                    return Err(Status::invalid_argument(
                        "change_membership takes either voters or remove, not both or neither",
                    ));
                }
            };
        let r = self.raft.change_membership(change, false).await.map_err(write_error)?;
        reply(r.log_id.index, what)
    }

    async fn status(&self, _req: Request<StatusRequest>) -> Result<Response<StatusReply>, Status> {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let list = |ids: &mut dyn Iterator<Item = u64>| -> Vec<Member> {
            ids.map(|id| member(id, membership.get_node(&id))).collect()
        };
        let last_log = m.last_log_index.unwrap_or(0);
        let replication = m
            .replication
            .as_ref()
            .map(|r| {
                r.iter()
                    .filter(|(id, _)| **id != m.id)
                    .map(|(id, matched)| {
                        let idx = matched.map_or(0, |l| l.index);
                        Replication {
                            id: *id,
                            matched_index: idx,
                            matched: matched.is_some(),
                            lag: last_log.saturating_sub(idx),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let applied_size = self
            .sm
            .applied_tree()
            .map_err(|e| Status::internal(e.to_string()))?
            .size();
        Ok(Response::new(StatusReply {
            id: m.id,
            leader_id: m.current_leader.unwrap_or(0),
            has_leader: m.current_leader.is_some(),
            term: m.current_term,
            state: format!("{:?}", m.state),
            voters: list(&mut voters.iter().copied()),
            learners: list(&mut membership.learner_ids()),
            last_log_index: last_log,
            last_applied_index: m.last_applied.map_or(0, |l| l.index),
            applied_size,
            replication,
        }))
    }
}

/// Whether a status says this node leads.
pub fn is_leader(s: &StatusReply) -> bool {
    s.state == format!("{:?}", ServerState::Leader)
}

// ---------------------------------------------------------------------------------------------
// The commands.

/// `ledger-node cluster`: membership of a cluster, through any node's admin service.
#[derive(Args, Debug)]
pub struct ClusterArgs {
    #[command(subcommand)]
    cmd: ClusterCmd,
}

#[derive(Subcommand, Debug)]
enum ClusterCmd {
    /// Initialize a new cluster with the config's peers as its voters (once, on any one of them).
    Init {
        /// This node's cluster config (its peers, `[api]`, `[tls]`).
        #[arg(long)]
        config: PathBuf,
    },
    /// Add a node: as a learner, then, once it has caught up, as a voter.
    Add {
        /// This node's cluster config (the node to talk to, and the TLS to use).
        #[arg(long)]
        config: PathBuf,
        /// The new node's id.
        #[arg(long)]
        id: u64,
        /// The new node's Raft address (host:port).
        #[arg(long)]
        raft: String,
        /// The new node's public API address (host:port).
        #[arg(long, default_value = "")]
        api: String,
        /// Longest wait for the new node to catch up before it is made a voter (seconds).
        #[arg(long, default_value_t = 300)]
        wait_secs: u64,
        /// Keep the node a learner (do not make it a voter).
        #[arg(long)]
        learner: bool,
    },
    /// Remove a node (a voter or a learner) from the cluster.
    Remove {
        /// This node's cluster config.
        #[arg(long)]
        config: PathBuf,
        /// The node to remove.
        #[arg(long)]
        id: u64,
    },
    /// Print what the node (and, through it, the leader) knows of the cluster.
    Status {
        /// This node's cluster config.
        #[arg(long)]
        config: PathBuf,
    },
}

/// Runs a `ledger-node cluster` command.
///
/// # Errors
/// A config that does not load, a node that cannot be reached, or the refusal of the change.
pub fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let cmd = &args.cmd;
        let (ClusterCmd::Init { config }
        | ClusterCmd::Add { config, .. }
        | ClusterCmd::Remove { config, .. }
        | ClusterCmd::Status { config }) = cmd;
        let cfg = ClusterConfig::load(config).map_err(anyhow::Error::msg)?;
        let net = Network::from_config(&cfg).map_err(anyhow::Error::msg)?;
        let addr = cfg
            .peers
            .get(&cfg.id)
            .cloned()
            .unwrap_or_else(|| cfg.listen.to_string());
        let out = match cmd {
            ClusterCmd::Init { .. } => init(&net, &addr, &cfg.members()).await,
            ClusterCmd::Add {
                id,
                raft,
                api,
                wait_secs,
                learner,
                ..
            } => {
                let m = Member {
                    id: *id,
                    raft_addr: raft.clone(),
                    api_addr: api.clone(),
                };
                add(&net, &addr, m, (!learner).then(|| Duration::from_secs(*wait_secs))).await
            }
            ClusterCmd::Remove { id, .. } => remove(&net, &addr, *id).await,
            ClusterCmd::Status { .. } => status(&net, &addr).await.map(|s| render_status(&s)),
        }?;
        println!("{out}");
        Ok(())
    })
}

async fn client(net: &Network, addr: &str) -> anyhow::Result<AdminClient<Channel>> {
    Ok(AdminClient::new(net.channel(addr).map_err(anyhow::Error::msg)?))
}

fn status_error(addr: &str, s: &Status) -> anyhow::Error {
    anyhow::anyhow!("node at {addr}: {:?}: {}", s.code(), s.message())
}

/// Calls `f` on the node at `addr`, following "not the leader" answers to the leader (at most
/// [`MAX_HOPS`] times) and retrying ABORTED answers (a membership change still committing) for
/// [`BUSY_RETRY`]; returns the answer and the address that gave it.
async fn on_leader<T, F, Fut>(net: &Network, addr: &str, f: F) -> anyhow::Result<(T, String)>
where
    F: Fn(AdminClient<Channel>) -> Fut,
    Fut: std::future::Future<Output = Result<Response<T>, Status>>,
{
    on_leader_within(net, addr, BUSY_RETRY, f).await
}

/// [`on_leader`] retrying ABORTED answers for `busy` instead of [`BUSY_RETRY`].
pub(super) async fn on_leader_within<T, F, Fut>(
    net: &Network,
    addr: &str,
    busy: Duration,
    f: F,
) -> anyhow::Result<(T, String)>
where
    F: Fn(AdminClient<Channel>) -> Fut,
    Fut: std::future::Future<Output = Result<Response<T>, Status>>,
{
    let mut at = addr.to_string();
    let busy_until = tokio::time::Instant::now() + busy;
    let mut hops = 0;
    while hops <= MAX_HOPS {
        let c = client(net, &at).await?;
        match tokio::time::timeout(CALL_TIMEOUT, f(c)).await {
            Err(_) => anyhow::bail!("node at {at} did not answer within {}s", CALL_TIMEOUT.as_secs()),
            Ok(Ok(r)) => return Ok((r.into_inner(), at)),
            Ok(Err(s)) if s.code() == tonic::Code::Aborted && tokio::time::Instant::now() < busy_until => {
                tracing::info!(node = %at, reason = %s.message(), "membership change in progress; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(Err(s)) => {
                hops += 1;
                let next = s
                    .metadata()
                    .get(LEADER_METADATA)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                match next {
                    Some(leader) if s.code() == tonic::Code::FailedPrecondition && leader != at => at = leader,
                    _ => return Err(status_error(&at, &s)),
                }
            }
        }
    }
    anyhow::bail!("no leader found after {MAX_HOPS} redirections from {addr}")
}

/// The status of the node at `addr`.
///
/// # Errors
/// When it cannot be reached.
pub async fn status(net: &Network, addr: &str) -> anyhow::Result<StatusReply> {
    let mut c = client(net, addr).await?;
    match tokio::time::timeout(CALL_TIMEOUT, c.status(StatusRequest {})).await {
        Err(_) => anyhow::bail!("node at {addr} did not answer within {}s", CALL_TIMEOUT.as_secs()),
        Ok(r) => Ok(r.map_err(|s| status_error(addr, &s))?.into_inner()),
    }
}

/// The leader's status, reached through the node at `addr`; and the leader's address.
async fn leader_status(net: &Network, addr: &str) -> anyhow::Result<(StatusReply, String)> {
    let s = status(net, addr).await?;
    if is_leader(&s) {
        return Ok((s, addr.to_string()));
    }
    let leader = s
        .voters
        .iter()
        .chain(&s.learners)
        .find(|m| s.has_leader && m.id == s.leader_id)
        .ok_or_else(|| anyhow::anyhow!("node at {addr} knows of no leader (an election may be under way); retry"))?;
    let ls = status(net, &leader.raft_addr).await?;
    if !is_leader(&ls) {
        anyhow::bail!(
            "node {} at {} is no longer the leader; retry",
            leader.id,
            leader.raft_addr
        );
    }
    Ok((ls, leader.raft_addr.clone()))
}

/// `cluster init`: initializes the cluster with `members` as voters through the node at `addr`.
///
/// # Errors
/// When the node refuses (already initialized, itself not among the members) or is unreachable.
pub async fn init(net: &Network, addr: &str, members: &BTreeMap<u64, LedgerNode>) -> anyhow::Result<String> {
    let req = InitializeRequest {
        members: members.iter().map(|(id, n)| member(*id, Some(n))).collect(),
    };
    let mut c = client(net, addr).await?;
    let r = tokio::time::timeout(CALL_TIMEOUT, c.initialize(req))
        .await
        .map_err(|_| anyhow::anyhow!("node at {addr} did not answer"))?
        .map_err(|s| status_error(addr, &s))?;
    Ok(r.into_inner().message)
}

/// `cluster add`: adds `m` as a learner through the node at `addr` (following it to the leader),
/// then, unless `wait` is `None`, waits at most `wait` until the leader has replicated its whole
/// log as of the add to it, and makes it a voter.
///
/// # Errors
/// A refused change, or a node that did not catch up in time (it stays a learner).
pub async fn add(net: &Network, addr: &str, m: Member, wait: Option<Duration>) -> anyhow::Result<String> {
    let id = m.id;
    let (added, leader) = on_leader(net, addr, |mut c| {
        let m = m.clone();
        async move { c.add_learner(AddLearnerRequest { node: Some(m) }).await }
    })
    .await?;
    let Some(wait) = wait else {
        return Ok(added.message);
    };
    let deadline = tokio::time::Instant::now() + wait;
    let target = added.log_index;
    loop {
        let (s, _) = leader_status(net, &leader).await?;
        let caught_up = s
            .replication
            .iter()
            .find(|r| r.id == id)
            .is_some_and(|r| r.matched && r.matched_index >= target);
        if caught_up {
            let mut voters: BTreeSet<u64> = s.voters.iter().map(|v| v.id).collect();
            voters.insert(id);
            let (r, _) = on_leader(net, &leader, |mut c| {
                let voters = voters.iter().copied().collect();
                async move {
                    c.change_membership(ChangeMembershipRequest { voters, remove: vec![] })
                        .await
                }
            })
            .await?;
            return Ok(format!("node {id} caught up and is a voter: {}", r.message));
        }
        if tokio::time::Instant::now() >= deadline {
            let lag = s.replication.iter().find(|r| r.id == id).map(|r| r.lag);
            anyhow::bail!(
                "node {id} did not catch up within {}s (lag {lag:?} log entries); it stays a learner: run `cluster add` again or `cluster remove --id {id}`",
                wait.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `cluster remove`: the voters without `id` (or, for a learner, the learner removed), through
/// the node at `addr` (following it to the leader).
///
/// # Errors
/// When `id` is not a member, is the last voter, or the change is refused.
pub async fn remove(net: &Network, addr: &str, id: u64) -> anyhow::Result<String> {
    let (s, leader) = leader_status(net, addr).await?;
    let voters: BTreeSet<u64> = s.voters.iter().map(|v| v.id).collect();
    let req = if voters.contains(&id) {
        let rest: Vec<u64> = voters.iter().copied().filter(|v| *v != id).collect();
        if rest.is_empty() {
            anyhow::bail!("node {id} is the last voter: a cluster cannot remove its last voter");
        }
        ChangeMembershipRequest {
            voters: rest,
            remove: vec![],
        }
    } else if s.learners.iter().any(|l| l.id == id) {
        ChangeMembershipRequest {
            voters: vec![],
            remove: vec![id],
        }
    } else {
        anyhow::bail!("node {id} is not a member of the cluster");
    };
    let (r, _) = on_leader(net, &leader, |mut c| {
        let req = req.clone();
        async move { c.change_membership(req).await }
    })
    .await?;
    Ok(r.message)
}

/// A status as text for the operator.
pub fn render_status(s: &StatusReply) -> String {
    let members = |ms: &[Member]| -> String {
        ms.iter()
            .map(|m| {
                if m.api_addr.is_empty() {
                    format!("{} (raft {})", m.id, m.raft_addr)
                } else {
                    format!("{} (raft {}, api {})", m.id, m.raft_addr, m.api_addr)
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = format!(
        "node {}: {}, term {}, leader {}\nvoters: {}\nlearners: {}\nraft log: last {}, applied {}; ledger size {}",
        s.id,
        s.state,
        s.term,
        if s.has_leader {
            s.leader_id.to_string()
        } else {
            "none".into()
        },
        members(&s.voters),
        if s.learners.is_empty() {
            "none".into()
        } else {
            members(&s.learners)
        },
        s.last_log_index,
        s.last_applied_index,
        s.applied_size
    );
    for r in &s.replication {
        out.push_str(&format!(
            "\nreplication to {}: {}",
            r.id,
            if r.matched {
                format!("matched {}, lag {}", r.matched_index, r.lag)
            } else {
                "nothing matched yet".into()
            }
        ));
    }
    out
}
