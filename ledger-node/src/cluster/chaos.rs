//! Failover rounds and a partitioned former leader (issue 15), with Raft nodes in this process.
//!
//! `serve` does not run a cluster yet, so these rounds drive three Raft instances of the ledger
//! (ledger-raft storage, the `ledger.raft.v1` service and network on loopback ports, each node
//! reaching each peer through its own [`proxy::Proxy`] link) the way the leader's sequencer will:
//! several writer tasks each build a one-entry group on the leader's applied tree and propose it
//! with `client_write`; readers read the leader's store after `ensure_linearizable`. Every call is
//! recorded and the whole history is checked with the Wing–Gong checker
//! (`tests/support/linearizable.rs`).
//!
//! A "kill" here aborts the node's Raft server and shuts its Raft down (one process cannot SIGKILL
//! a part of itself); the node is then reopened from its directory on the same address. The
//! real-process version (SIGKILL of `ledger-node serve --cluster`) needs the cluster in `serve`.
//!
//! Rounds: `LEDGER_CHAOS_ROUNDS` (default 3). Failover times are printed (`--nocapture`), not
//! asserted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../tests/support/linearizable.rs"]
#[allow(dead_code)]
mod linearizable;
#[path = "../../../tests/support/proxy.rs"]
#[allow(dead_code)]
mod proxy;

use super::LedgerRaft;
use super::network::{Connection, Network};
use super::server::RaftService;
use ed25519_dalek::SigningKey;
use ledger_core::dsse::Envelope;
use ledger_core::entry::Entry;
use ledger_core::hash::{Hash, leaf_hash};
use ledger_core::keys::public_key_to_base64;
use ledger_core::registry::{IndexTag, payload_type};
use ledger_raft::{
    ApplyOutcome, GroupEntry, LedgerNode, LedgerRequest, LogStore, Rejection, SequencedGroup, StateMachine, TypeConfig,
};
use linearizable::{Call, Outcome, Recorder, Verdict};
use openraft::Config;
use openraft::error::{ClientWriteError, RaftError};
use openraft::network::RaftNetworkFactory;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// Bound on every wait (generous for a loaded 2-core machine).
const WAIT: Duration = Duration::from_secs(30);
/// Bound on one client call; past it the outcome is unknown.
const CALL: Duration = Duration::from_secs(3);
const ORIGIN: &str = "ledger.test/chaos";

/// Sends to each peer through this node's own proxy link instead of the membership's address.
#[derive(Clone)]
struct Routed {
    inner: Network,
    routes: Arc<BTreeMap<u64, String>>,
}

impl RaftNetworkFactory<TypeConfig> for Routed {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, node: &LedgerNode) -> Connection {
        let node = self
            .routes
            .get(&target)
            .map_or_else(|| node.clone(), |a| LedgerNode::new(a.clone()));
        self.inner.new_client(target, &node).await
    }
}

fn config() -> Config {
    Config {
        cluster_name: "chaos-test".into(),
        // Twice the cluster defaults, as tests/cluster_chaos.rs: robust on a loaded 2-core machine.
        heartbeat_interval: 200,
        election_timeout_min: 800,
        election_timeout_max: 1600,
        ..Config::default()
    }
}

/// A running node.
struct Node {
    id: u64,
    raft: LedgerRaft,
    sm: StateMachine,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
}

/// What the cluster needs to (re)start node `id`.
struct Slot {
    dir: PathBuf,
    addr: SocketAddr,
    routes: Arc<BTreeMap<u64, String>>,
}

async fn start(id: u64, slot: &Slot) -> Node {
    let listener = {
        // The port was just released by a stopped server: retry briefly.
        let deadline = Instant::now() + WAIT;
        loop {
            match TcpListener::bind(slot.addr).await {
                Ok(l) => break l,
                Err(e) => {
                    assert!(Instant::now() < deadline, "cannot bind {}: {e}", slot.addr);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    };
    let config = Arc::new(config().validate().unwrap());
    let log = LogStore::open(&slot.dir.join("raft").join("log")).unwrap();
    let sm = StateMachine::open(&slot.dir.join("ledger"), &slot.dir.join("raft")).unwrap();
    let net = Routed {
        inner: Network::plain(id),
        routes: slot.routes.clone(),
    };
    let raft = openraft::Raft::new(id, config, net, log, sm.clone()).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let svc = RaftService::server(raft.clone());
    let server = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            })
            .await;
    });
    Node {
        id,
        raft,
        sm,
        stop,
        server,
    }
}

impl Node {
    /// Abrupt stop: the server task is aborted (open connections drop), then Raft is shut down
    /// and the storage released.
    async fn kill(self) {
        self.server.abort();
        let _ = self.server.await;
        drop(self.stop);
        let _ = self.raft.shutdown().await;
        drop(self.sm);
        drop(self.raft);
    }

    fn tree(&self) -> (u64, Hash) {
        self.sm
            .with_store(|s| {
                let t = s.compact_tree().unwrap();
                (t.size(), t.root())
            })
            .unwrap()
    }

    /// The leaf hashes of `0..size`.
    fn leaves(&self, size: u64) -> Vec<Hash> {
        self.sm
            .with_store(|s| (0..size).map(|i| s.stored_leaf_hash(i).unwrap().unwrap()).collect())
            .unwrap()
    }

    fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().state.is_leader()
    }
}

/// Keys and envelopes of the test log.
struct Keys {
    node: SigningKey,
    admin: SigningKey,
}

impl Keys {
    fn new() -> Self {
        Keys {
            node: SigningKey::from_bytes(&[1; 32]),
            admin: SigningKey::from_bytes(&[2; 32]),
        }
    }

    fn charter(&self) -> Envelope {
        let charter = format!(
            r#"{{"version":1,"origin":"{ORIGIN}","node_key":"{}","admins":[{{"name":"admin","key":"{}"}}],"policy":{{"admin_quorum":1}}}}"#,
            public_key_to_base64(&self.node.verifying_key()),
            public_key_to_base64(&self.admin.verifying_key())
        );
        let mut e = Envelope::new(payload_type("charter"), charter.into_bytes());
        e.sign(&self.node);
        e.sign(&self.admin);
        e
    }

    fn note(&self, text: &str) -> Envelope {
        let mut e = Envelope::new(
            payload_type("note"),
            format!(r#"{{"version":1,"text":"{text}"}}"#).into_bytes(),
        );
        e.sign(&self.admin);
        e
    }
}

/// A one-entry group putting `envelope` at the end of `sm`'s applied tree, as a leader's
/// sequencer would.
fn group_on(sm: &StateMachine, envelope: Envelope, request_id: &str, kind: &str) -> SequencedGroup {
    let (size, root, last_ts) = sm
        .with_store(|s| {
            let t = s.compact_tree().unwrap();
            let last = if t.size() == 0 {
                0
            } else {
                s.timestamp(t.size() - 1).unwrap().unwrap_or(0)
            };
            (t.size(), t.root(), last)
        })
        .unwrap();
    let now = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros(),
    )
    .unwrap();
    let digest = ledger_raft::request_digest(envelope.clone());
    let leaf = Entry {
        index: size,
        timestamp_micros: now.max(last_ts + 1),
        prev_root: root,
        envelope,
    }
    .encode();
    let lh = leaf_hash(&leaf);
    SequencedGroup {
        prev_root: root,
        entries: vec![GroupEntry {
            index: size,
            leaf,
            leaf_hash: lh,
            request: Some((request_id.to_string(), digest)),
            terms: vec![(IndexTag::Kind.byte(), kind.into())],
        }],
        new_size: size + 1,
    }
}

/// The payload of the entry at `index` in `sm`, if the store has it.
fn payload_at(sm: &StateMachine, index: u64) -> Option<Vec<u8>> {
    sm.with_store(|s| s.entry(index).unwrap())
        .unwrap()
        .map(|leaf| Entry::decode(&leaf).unwrap().envelope.payload)
}

/// Three nodes behind per-link proxies; nodes may be down (`None`).
struct Cluster {
    slots: BTreeMap<u64, Slot>,
    nodes: Mutex<BTreeMap<u64, Arc<Node>>>,
    partition: proxy::Partition,
    _proxies: Vec<proxy::Proxy>,
    _tmp: tempfile::TempDir,
}

impl Cluster {
    async fn start(n: u64) -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let partition = proxy::Partition::new();
        let mut addrs = BTreeMap::new();
        for id in 1..=n {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            addrs.insert(id, l.local_addr().unwrap());
        }
        // One proxy per ordered pair: from's route to `to`.
        let mut proxies = Vec::new();
        let mut routes: BTreeMap<u64, BTreeMap<u64, String>> = BTreeMap::new();
        for &from in addrs.keys() {
            for (&to, &target) in &addrs {
                if from == to {
                    continue;
                }
                let p = proxy::Proxy::link(from, to, "127.0.0.1:0".parse().unwrap(), target, partition.clone())
                    .await
                    .unwrap();
                routes.entry(from).or_default().insert(to, p.addr().to_string());
                proxies.push(p);
            }
        }
        let mut slots = BTreeMap::new();
        for (&id, &addr) in &addrs {
            slots.insert(
                id,
                Slot {
                    dir: tmp.path().join(format!("n{id}")),
                    addr,
                    routes: Arc::new(routes.remove(&id).unwrap_or_default()),
                },
            );
        }
        let mut nodes = BTreeMap::new();
        for (&id, slot) in &slots {
            nodes.insert(id, Arc::new(start(id, slot).await));
        }
        let members: BTreeMap<u64, LedgerNode> = addrs
            .iter()
            .map(|(id, a)| (*id, LedgerNode::new(a.to_string())))
            .collect();
        nodes[&1].raft.initialize(members).await.unwrap();
        Cluster {
            slots,
            nodes: Mutex::new(nodes),
            partition,
            _proxies: proxies,
            _tmp: tmp,
        }
    }

    fn live(&self) -> Vec<Arc<Node>> {
        self.nodes.lock().unwrap().values().cloned().collect()
    }

    fn node(&self, id: u64) -> Option<Arc<Node>> {
        self.nodes.lock().unwrap().get(&id).cloned()
    }

    /// The live node that leads in the highest term, if any (a cut-off former leader may still
    /// believe it leads, in an older term).
    fn leader_now(&self, excluding: Option<u64>) -> Option<Arc<Node>> {
        self.live()
            .into_iter()
            .filter(|n| Some(n.id) != excluding && n.is_leader())
            .max_by_key(|n| n.raft.metrics().borrow().current_term)
    }

    /// Waits for a leader other than `excluding`.
    async fn leader(&self, excluding: Option<u64>) -> Arc<Node> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(l) = self.leader_now(excluding) {
                return l;
            }
            assert!(Instant::now() < deadline, "no leader within {WAIT:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn kill(&self, id: u64) {
        let node = self.nodes.lock().unwrap().remove(&id);
        if let Some(node) = node {
            // Other tasks may hold clones for a moment; wait for them to let go.
            let deadline = Instant::now() + WAIT;
            let mut node = node;
            let owned = loop {
                match Arc::try_unwrap(node) {
                    Ok(n) => break n,
                    Err(n) => {
                        assert!(Instant::now() < deadline, "node {id} still in use");
                        node = n;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            };
            owned.kill().await;
        }
    }

    async fn restart(&self, id: u64) {
        let node = start(id, &self.slots[&id]).await;
        self.nodes.lock().unwrap().insert(id, Arc::new(node));
    }

    /// Waits until every live node has applied everything the leader had committed, and checks
    /// that they agree on every leaf up to the smallest size among them (the load may still run);
    /// returns that size.
    async fn converge(&self, excluding: Option<u64>) -> u64 {
        let leader = self.leader(excluding).await;
        let target = leader.raft.metrics().borrow().last_log_index;
        drop(leader);
        let nodes: Vec<Arc<Node>> = self.live().into_iter().filter(|n| Some(n.id) != excluding).collect();
        for n in &nodes {
            n.raft
                .wait(Some(WAIT))
                .applied_index_at_least(target, "converge")
                .await
                .unwrap_or_else(|e| panic!("node {} did not catch up to {target:?}: {e}", n.id));
        }
        let size = nodes.iter().map(|n| n.tree().0).min().unwrap_or(0);
        let reference = nodes[0].leaves(size);
        for n in &nodes {
            assert_eq!(
                n.leaves(size),
                reference,
                "node {} holds other leaves below {size}",
                n.id
            );
        }
        size
    }
}

/// What the writers and readers share.
struct Load {
    rec: Recorder,
    stop: AtomicBool,
    /// Return times (since the recorder's start, via `Instant`) of acknowledged appends.
    acks: Mutex<Vec<(Instant, u64, Vec<u8>)>>,
    /// Tree heads (size, root) seen on any node.
    heads: Mutex<BTreeSet<(u64, Hash)>>,
}

/// One writer: appends `c{client}-{n}` until told to stop; retries each request id until it is
/// acknowledged (a lost answer may have taken effect: the retry then gets the original index).
async fn writer(cluster: Arc<Cluster>, load: Arc<Load>, keys: Arc<Keys>, client: usize) {
    let mut n = 0u64;
    while !load.stop.load(Ordering::Relaxed) {
        let text = format!("c{client}-{n}");
        let req = format!("req-{text}");
        let envelope = keys.note(&text);
        let payload = envelope.payload.clone();
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(
                Instant::now() < deadline,
                "request {req} not acknowledged within {WAIT:?}"
            );
            let Some(leader) = cluster.leader_now(None) else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let group = group_on(&leader.sm, envelope.clone(), &req, "note");
            let p = load.rec.invoke(
                client,
                Call::Append {
                    request_id: req.clone().into_bytes(),
                    payload: payload.clone(),
                },
            );
            let raft = leader.raft.clone();
            drop(leader);
            let answer = tokio::time::timeout(CALL, raft.client_write(LedgerRequest::Group(group))).await;
            drop(raft);
            let outcome = match answer {
                Ok(Ok(resp)) => match resp.data {
                    ApplyOutcome::Applied { first_index, .. } => Outcome::Appended(first_index),
                    ApplyOutcome::Rejected {
                        reason: Rejection::DuplicateRequest { original, .. },
                        ..
                    } => Outcome::Appended(original),
                    // Refused on apply (another writer's group got there first): no effect.
                    ApplyOutcome::Rejected { .. } => Outcome::Failed,
                    other => panic!("a group answered {other:?}"),
                },
                // Not the leader: nothing was proposed.
                Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => Outcome::Failed,
                Ok(Err(_)) | Err(_) => Outcome::Unknown,
            };
            let done = matches!(outcome, Outcome::Appended(_));
            if let Outcome::Appended(i) = outcome {
                load.acks.lock().unwrap().push((Instant::now(), i, payload.clone()));
            }
            load.rec.complete(p, outcome);
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        n += 1;
    }
}

/// One reader: reads an index near the end, or the size, from the leader after
/// `ensure_linearizable`; records tree heads from every node.
async fn reader(cluster: Arc<Cluster>, load: Arc<Load>, client: usize) {
    let mut k = 0u64;
    while !load.stop.load(Ordering::Relaxed) {
        for n in cluster.live() {
            let (size, root) = n.tree();
            load.heads.lock().unwrap().insert((size, root));
        }
        let Some(leader) = cluster.leader_now(None) else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let (size, _) = leader.tree();
        let call = if k.is_multiple_of(3) {
            Call::Size
        } else {
            Call::Read {
                index: (size + (k % 3)).saturating_sub(2),
            }
        };
        k += 1;
        let p = load.rec.invoke(client, call.clone());
        let ok = tokio::time::timeout(CALL, leader.raft.ensure_linearizable()).await;
        let outcome = match (ok, &call) {
            (Ok(Ok(_)), Call::Size) => Outcome::Size(leader.tree().0),
            (Ok(Ok(_)), Call::Read { index }) => Outcome::Entry(payload_at(&leader.sm, *index)),
            _ => Outcome::Unknown,
        };
        drop(leader);
        load.rec.complete(p, outcome);
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Every pair of tree heads seen is consistent: a consistency proof from the final leaves
/// (ledger-tlog) verifies between them.
fn assert_no_fork(heads: &BTreeSet<(u64, Hash)>, leaves: &[Hash]) {
    use ledger_core::merkle;
    let heads: Vec<(u64, Hash)> = heads.iter().copied().collect();
    for &(size, root) in &heads {
        assert!(
            size <= leaves.len() as u64,
            "a head of size {size} beyond the final log"
        );
        assert_eq!(
            merkle::root_of(&leaves[..size as usize]),
            root,
            "the head of size {size} is not a prefix of the final log"
        );
    }
    for (i, &(a, ra)) in heads.iter().enumerate() {
        for &(b, rb) in &heads[i + 1..] {
            if a == 0 || a >= b {
                continue;
            }
            let proof = merkle::consistency_proof(leaves, a, b).unwrap();
            merkle::verify_consistency(a, b, &ra, &rb, &proof)
                .unwrap_or_else(|e| panic!("heads {a} and {b} fork: {e:?}"));
        }
    }
}

/// Final reads of every index and the size (after the load stopped), then the check.
fn check_history(load: &Load, leader: &Node) {
    let (size, _) = leader.tree();
    for i in 0..=size {
        let p = load.rec.invoke(usize::MAX, Call::Read { index: i });
        load.rec.complete(p, Outcome::Entry(payload_at(&leader.sm, i)));
    }
    let p = load.rec.invoke(usize::MAX, Call::Size);
    load.rec.complete(p, Outcome::Size(size));
    let history = load.rec.history();
    let started = Instant::now();
    let verdict = linearizable::check(&history);
    println!(
        "chaos: {} operations checked for linearizability in {:?}",
        history.len(),
        started.elapsed()
    );
    match verdict {
        Verdict::Linearizable { .. } => {}
        other => panic!("history not linearizable: {other:?}"),
    }
}

fn rounds() -> usize {
    std::env::var("LEDGER_CHAOS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

async fn start_load(
    cluster: &Arc<Cluster>,
    keys: &Arc<Keys>,
    writers: usize,
) -> (Arc<Load>, Vec<tokio::task::JoinHandle<()>>) {
    let load = Arc::new(Load {
        rec: Recorder::new(),
        stop: AtomicBool::new(false),
        acks: Mutex::new(Vec::new()),
        heads: Mutex::new(BTreeSet::new()),
    });
    // The charter, written by `genesis` before the load: the first operation of the history.
    let charter = keys.charter();
    let p = load.rec.invoke(
        usize::MAX,
        Call::Append {
            request_id: b"genesis".to_vec(),
            payload: charter.payload,
        },
    );
    load.rec.complete(p, Outcome::Appended(0));
    let mut tasks = Vec::new();
    for c in 0..writers {
        tasks.push(tokio::spawn(writer(cluster.clone(), load.clone(), keys.clone(), c)));
    }
    tasks.push(tokio::spawn(reader(cluster.clone(), load.clone(), writers)));
    (load, tasks)
}

/// Writes the charter through the first leader.
async fn genesis(cluster: &Cluster, keys: &Keys) {
    let leader = cluster.leader(None).await;
    let g = group_on(&leader.sm, keys.charter(), "genesis", "charter");
    let resp = leader.raft.client_write(LedgerRequest::Group(g)).await.unwrap();
    assert_eq!(
        resp.data,
        ApplyOutcome::Applied {
            first_index: 0,
            new_size: 1
        }
    );
}

/// Waits until `n` more appends are acknowledged after `since`.
async fn wait_acks_after(load: &Load, since: Instant, n: usize) -> Instant {
    let deadline = Instant::now() + WAIT;
    loop {
        let acks: Vec<Instant> = load
            .acks
            .lock()
            .unwrap()
            .iter()
            .map(|(t, _, _)| *t)
            .filter(|t| *t > since)
            .collect();
        if acks.len() >= n {
            return acks.into_iter().min().unwrap();
        }
        assert!(Instant::now() < deadline, "no acknowledged append within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Every acknowledged append in `acks` (taken before the nodes converged) is in every live node's store, same payload, same leaf hash.
fn assert_acked_everywhere(cluster: &Cluster, acks: &[(Instant, u64, Vec<u8>)]) {
    let nodes = cluster.live();
    let size = acks.iter().map(|(_, i, _)| i + 1).max().unwrap_or(0);
    let reference = nodes[0].leaves(size);
    for n in &nodes {
        let leaves = n.leaves(size);
        assert_eq!(leaves, reference, "node {} has other leaf hashes", n.id);
        for (_, i, payload) in acks {
            assert_eq!(
                payload_at(&n.sm, *i).as_ref(),
                Some(payload),
                "node {} lost acknowledged entry {i}",
                n.id
            );
        }
    }
}

/// Three nodes under concurrent appends and reads, the leader killed at random moments, each
/// killed node restarted and caught up; after each round every acknowledged entry is on every
/// node with the same leaf hash; at the end no two tree heads seen fork and the whole history
/// is linearizable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_rounds_keep_acknowledged_appends_and_stay_linearizable() {
    let cluster = Arc::new(Cluster::start(3).await);
    let keys = Arc::new(Keys::new());
    genesis(&cluster, &keys).await;
    let (load, tasks) = start_load(&cluster, &keys, 4).await;
    let mut failovers = Vec::new();
    let mut seed = u64::from(std::process::id()) ^ 0x5eed;
    for round in 0..rounds() {
        // Some acknowledged load, then the kill at a random moment 50-450 ms later.
        wait_acks_after(&load, Instant::now(), 3).await;
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        tokio::time::sleep(Duration::from_millis(50 + (seed >> 33) % 400)).await;
        let old = cluster.leader(None).await.id;
        // From the moment the node is gone (an append in flight on it may still be answered
        // while it shuts down).
        cluster.kill(old).await;
        let killed_at = Instant::now();
        let next = wait_acks_after(&load, killed_at, 1).await;
        failovers.push(next - killed_at);
        let new = cluster.leader(Some(old)).await.id;
        println!(
            "chaos round {round}: leader {old} killed, leader {new}, next append acknowledged after {:?}",
            next - killed_at
        );
        cluster.restart(old).await;
        let acks = load.acks.lock().unwrap().clone();
        let size = cluster.converge(None).await;
        assert_acked_everywhere(&cluster, &acks);
        println!("chaos round {round}: node {old} restarted and caught up to size {size}");
    }
    load.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    cluster.converge(None).await;
    assert_acked_everywhere(&cluster, &load.acks.lock().unwrap());
    let leader = cluster.leader(None).await;
    let (size, _) = leader.tree();
    let leaves = leader.leaves(size);
    for n in cluster.live() {
        assert_eq!(n.tree(), leader.tree(), "node {} ends on another tree", n.id);
        load.heads.lock().unwrap().insert(n.tree());
    }
    assert_no_fork(&load.heads.lock().unwrap(), &leaves);
    check_history(&load, &leader);
    failovers.sort();
    println!(
        "chaos: {} rounds, {} entries, failover (leader kill -> next acknowledged append) p50 {:?} p99 {:?} max {:?}",
        failovers.len(),
        size,
        percentile(&failovers, 0.5),
        percentile(&failovers, 0.99),
        failovers.last().copied().unwrap_or_default()
    );
}

/// The leader cut off from the others (both ways, through the proxies): its appends are never
/// acknowledged, the other two elect a leader and go on; after healing, the old leader holds the
/// majority's log and the append it took while cut off is nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_former_leader_cannot_append_and_rejoins_the_majority() {
    let cluster = Arc::new(Cluster::start(3).await);
    let keys = Arc::new(Keys::new());
    genesis(&cluster, &keys).await;
    let (load, tasks) = start_load(&cluster, &keys, 2).await;
    wait_acks_after(&load, Instant::now(), 3).await;
    let old = cluster.leader(None).await;
    cluster.partition.cut(old.id);
    let cut_at = Instant::now();

    // The old leader, cut off, takes an append it cannot commit.
    let envelope = keys.note("from the cut-off leader");
    let group = group_on(&old.sm, envelope.clone(), "req-cut-off", "note");
    let stale = tokio::time::timeout(CALL, old.raft.client_write(LedgerRequest::Group(group))).await;
    match &stale {
        Err(_) => {}
        Ok(Err(_)) => {}
        Ok(Ok(resp)) => panic!("a cut-off leader acknowledged an append: {:?}", resp.data),
    }

    // The majority elects a leader and goes on.
    let new = cluster.leader(Some(old.id)).await;
    assert_ne!(new.id, old.id);
    let next = wait_acks_after(&load, cut_at, 3).await;
    println!(
        "partition: leader {} cut off, leader {} acknowledged after {:?}",
        old.id,
        new.id,
        next - cut_at
    );
    let cut_id = old.id;
    drop(new);
    drop(old);

    // Healed: the old leader takes the majority's log.
    cluster.partition.heal(cut_id);
    load.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let size = cluster.converge(None).await;
    let rejoined = cluster.node(cut_id).unwrap();
    let leader = cluster.leader(None).await;
    assert_eq!(rejoined.tree(), leader.tree());
    assert_eq!(leader.tree().0, size);
    let found = rejoined.sm.with_store(|s| s.request("req-cut-off").unwrap()).unwrap();
    assert_eq!(found, None, "the cut-off leader's append reached the log");
    assert_acked_everywhere(&cluster, &load.acks.lock().unwrap());
    let leaves = leader.leaves(size);
    assert_no_fork(&load.heads.lock().unwrap(), &leaves);
    check_history(&load, &leader);
}
