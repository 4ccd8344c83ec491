//! The sequencer: one plain thread that owns the tree, the registry and the domain state, and a
//! writer thread that owns the store's write side.
//!
//! The sequencer takes every job waiting in its queue (up to a group limit), authorizes each item
//! against the registry *as of its index*, assigns indices and timestamps, builds the entries and
//! their node hashes, and signs a checkpoint when one is due or asked for. It hands the finished
//! group to the writer, which writes it with one sled batch and one flush and only then answers
//! every request in the group (group commit), while the sequencer already prepares the next
//! groups (a pipeline). On a single node the groups sequenced while the writer is busy wait for it
//! (at most [`WRITE_QUEUE`]) and the writer takes all of them, up to the first with a checkpoint,
//! as one commit: one sled batch, one flush, then every answer (group commit of groups; a group
//! arriving at an idle writer is written at once, alone). In cluster mode at most one group is
//! being written while the next is sequenced. A request id used in a group not yet durable is
//! found in memory, so de-duplication never misses it. If a write fails nothing of that commit (or
//! any later one) is acknowledged and the sequencer stops: the node then answers UNAVAILABLE until
//! it is restarted and the store re-verified.

use crate::metrics::Metrics;
use ledger_core::checkpoint::Checkpoint;
use ledger_core::compact::{CompactTree, CompletedNode};
use ledger_core::dsse::Envelope;
use ledger_core::entry::Entry;
use ledger_core::hash::Hash;
use ledger_core::note::NoteSigner;
use ledger_core::registry::{CheckedPayload, KeyRecord, Registry, check_payload, payload_type_for_log};
use ledger_core::state::{LedgerState, StepError};
use ledger_store::{PreparedEntry, Store};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

/// Largest number of items in one group.
pub const MAX_GROUP: usize = 8192;

/// An item checked by the handler (limits, kind, payload, signatures) and ready to sequence.
pub struct Item {
    /// The envelope.
    pub envelope: Envelope,
    /// Its record kind.
    pub kind: String,
    /// Key ids whose signatures verified.
    pub signers: Vec<String>,
    /// Idempotency key.
    pub request_id: Option<String>,
    /// The payload as the edge parsed it ([`check_payload`]): the typed record, which the state
    /// step takes without parsing again, and the index terms.
    pub payload: CheckedPayload,
}

pub use crate::refusal::Refusal;

/// What happened to one item.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Appended (or found from an earlier identical request).
    Appended {
        /// Index.
        index: u64,
        /// Leaf hash.
        leaf_hash: Hash,
        /// Timestamp.
        timestamp_micros: u64,
        /// Answer to a retry.
        duplicate: bool,
    },
    /// Refused.
    Refused(Refusal),
}

/// A job: items from one RPC.
pub struct Job {
    /// Items.
    pub items: Vec<Item>,
    /// Sign a checkpoint covering this job before answering.
    pub want_checkpoint: bool,
    /// Where to answer.
    pub reply: oneshot::Sender<JobResult>,
}

/// Answer to a job.
pub struct JobResult {
    /// Per item.
    pub outcomes: Vec<Outcome>,
    /// The checkpoint signed with the group, if any.
    pub checkpoint: Option<(u64, String)>,
}

/// Shared, read-mostly state the handlers see.
pub struct Shared {
    /// Registry snapshot (updated before any reply that depends on it).
    pub registry: RwLock<Registry>,
    /// Latest checkpoint (size, note).
    pub checkpoint: watch::Sender<(u64, String)>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Current tree size (durable).
    pub size: std::sync::atomic::AtomicU64,
    /// The high-water mark file (`DATA/high-water.checkpoint`): the latest signed checkpoint,
    /// written after its group is durable and before anyone is answered.
    pub high_water: ledger_store::high_water::HighWater,
    /// The latest witnessed checkpoint's file (`DATA/high-water.witnessed`).
    pub witnessed_mark: ledger_store::high_water::HighWater,
    /// Whether appends can succeed: None while the sequencer starts, `Some(true)` while it and its
    /// writer run, `Some(false)` once either stopped (storage failure, shutdown). The health
    /// service follows it (docs/operations.md).
    pub up: watch::Sender<Option<bool>>,
    /// Cluster mode (`serve --cluster`): the Raft the writer proposes groups through; `None` for
    /// the single node.
    pub cluster: Option<Arc<crate::cluster::ClusterView>>,
}

impl Shared {
    /// Marks the sequencer running: health SERVING, `ledger_sequencer_up` 1.
    fn set_up(&self) {
        self.metrics.set_up(true);
        self.up.send_replace(Some(true));
    }

    /// Marks appends impossible (health NOT_SERVING, `ledger_sequencer_up` 0), logging why once.
    fn set_down(&self, why: &str) {
        self.metrics.set_up(false);
        if self.up.send_replace(Some(false)) != Some(false) {
            tracing::error!(
                reason = why,
                "appends cannot succeed: health NOT_SERVING until the node is restarted"
            );
        }
    }

    /// Marks the node down for a clean shutdown (every job sender dropped): no error line.
    fn set_stopping(&self) {
        self.metrics.set_up(false);
        self.up.send_replace(Some(false));
    }
}

/// Sets the node down when the sequencer returns or unwinds, whatever the path.
struct DownOnDrop(Arc<Shared>);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        self.0.set_down("the sequencer stopped");
    }
}

/// Fault-injection switch for tests: `LEDGER_FAULT_INJECT=fail-commit` makes the writer fail its
/// first group commit as a storage failure would (nothing written, nothing acknowledged). Honoured
/// only when set to exactly that value; see docs/operations.md.
pub const FAULT_INJECT_ENV: &str = "LEDGER_FAULT_INJECT";

/// Fault-injection switch for tests: `LEDGER_FAULT_INJECT=slow-commit` makes the writer wait
/// [`SLOW_COMMIT`] before each commit, as a slow disk would, so that concurrent requests pile up
/// behind it (group commit of groups). Writes and answers nothing it otherwise would not.
fn fault_slow_commit() -> Option<Duration> {
    let on = std::env::var(FAULT_INJECT_ENV).is_ok_and(|v| v == "slow-commit");
    if on {
        tracing::warn!(
            "{FAULT_INJECT_ENV}=slow-commit: each group commit waits {} ms (fault injection for tests)",
            SLOW_COMMIT.as_millis()
        );
    }
    on.then_some(SLOW_COMMIT)
}

/// The wait `LEDGER_FAULT_INJECT=slow-commit` adds before each commit.
pub const SLOW_COMMIT: Duration = Duration::from_millis(25);

fn fault_fail_commit() -> bool {
    let on = std::env::var(FAULT_INJECT_ENV).is_ok_and(|v| v == "fail-commit");
    if on {
        tracing::warn!("{FAULT_INJECT_ENV}=fail-commit: the first group commit will fail (fault injection for tests)");
    }
    on
}

/// What one group accumulates before its commit.
#[derive(Default)]
struct Group {
    prepared: Vec<PreparedEntry>,
    nodes: Vec<CompletedNode>,
    in_group: HashMap<String, (Hash, Outcome)>,
    /// Request ids of the earlier groups that may still be on their way to disk.
    in_flight: InFlight,
    registry_changed: bool,
}

/// Request ids of groups sequenced but perhaps not durable yet, each with the tree size after its
/// group, oldest first. A group's ids are dropped once the durable size covers it: the store's
/// request index answers for them from then on.
#[derive(Default)]
struct InFlight(std::collections::VecDeque<(u64, RequestIds)>);

/// The request ids one group used: id → (request digest, outcome).
type RequestIds = HashMap<String, (Hash, Outcome)>;

impl InFlight {
    /// The outcome recorded for `id` in a group not known durable yet (the newest first).
    fn get(&self, id: &str) -> Option<&(Hash, Outcome)> {
        self.0.iter().rev().find_map(|(_, m)| m.get(id))
    }

    /// Adds the ids of the group that ends at tree size `size` (nothing when it has none).
    fn push(&mut self, size: u64, ids: RequestIds) {
        if !ids.is_empty() {
            self.0.push_back((size, ids));
        }
    }

    /// Drops the groups the durable size covers.
    fn forget_durable(&mut self, durable: u64) {
        while self.0.front().is_some_and(|(n, _)| *n <= durable) {
            self.0.pop_front();
        }
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// Single node: sequenced groups that may wait for the writer. While it writes one commit the
/// sequencer goes on sequencing the requests that arrive into further groups, and the writer then
/// takes every group waiting as one commit ([`Write::absorb`]): one sled batch and one flush for
/// all of them (group commit of groups). Bounds the entries sequenced ahead of the disk to this
/// many groups. Cluster mode keeps a rendezvous (0): a send returns once the writer took the group.
pub const WRITE_QUEUE: usize = 16;

/// A sequenced group on its way to disk.
struct Write {
    /// Root of the tree the group extends (cluster mode: the proposal's `prev_root`).
    prev_root: Hash,
    /// The sequencer's resync epoch when it sequenced the group (cluster mode, [`Resync`]).
    epoch: u64,
    prepared: Vec<PreparedEntry>,
    nodes: Vec<CompletedNode>,
    size: u64,
    checkpoint: Option<(u64, String)>,
    /// The registry after this group, when the group changed it.
    registry: Option<Registry>,
    replies: Vec<(oneshot::Sender<JobResult>, Vec<Outcome>)>,
}

/// Cluster mode: how long the writer waits for the cluster to commit and apply a group.
pub const COMMIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Cluster mode: the epoch the sequencer must reach before its groups are proposed again. The
/// writer raises it when the cluster refused a group (or lost it, or this node lost the lead): the
/// groups sequenced after it extend a tree the cluster does not hold, so the writer answers them
/// UNAVAILABLE and the sequencer starts again from the applied state.
type Resync = Arc<std::sync::atomic::AtomicU64>;

/// The writer stage: writes groups in order, then publishes and answers them.
fn writer(
    store: Arc<Store>,
    shared: Arc<Shared>,
    failed: Arc<std::sync::atomic::AtomicBool>,
    resync: Resync,
    rx: Receiver<Write>,
) {
    let mut inject_failure = fault_fail_commit();
    let slow = fault_slow_commit();
    let merge = shared.cluster.is_none();
    while let Ok(mut w) = rx.recv() {
        if let Some(d) = slow {
            std::thread::sleep(d);
        }
        let mut groups = 1;
        if merge {
            // Every group sequenced while the previous commit was written goes in this one, up to
            // the first with a checkpoint (a checkpoint is stored with the group it covers).
            while w.checkpoint.is_none() && w.prepared.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(next) => {
                        w.absorb(next);
                        groups += 1;
                    }
                    Err(_) => break,
                }
            }
        }
        if failed.load(Relaxed) {
            refuse_all(w.replies, "storage failure earlier in the pipeline; restart the node");
            continue;
        }
        if let Some(c) = shared.cluster.clone() {
            replicate(&c, &shared, &resync, w);
            continue;
        }
        let t = Instant::now();
        let r = if w.prepared.is_empty() && w.checkpoint.is_none() {
            Ok(())
        } else if std::mem::take(&mut inject_failure) {
            Err(format!("injected by {FAULT_INJECT_ENV}=fail-commit"))
        } else {
            store
                .commit_group(
                    &w.prepared,
                    &w.nodes,
                    w.size,
                    w.checkpoint.as_ref().map(|(s, n)| (*s, n.as_str())),
                )
                .map_err(|e| e.to_string())
        };
        match r {
            Ok(()) => {
                let m = &shared.metrics;
                m.group_committed(w.prepared.len(), t.elapsed());
                m.commit_groups(groups);
                if let Some(reg) = w.registry
                    && let Ok(mut r) = shared.registry.write()
                {
                    *r = reg;
                }
                // The group is durable: only now may the mark cover its checkpoint (one small file
                // write and two fsyncs per checkpoint, not per entry). A failure leaves the older
                // mark in place, which the store still satisfies.
                if let Some((s, n)) = &w.checkpoint
                    && let Err(e) = shared.high_water.advance(*s, n)
                {
                    tracing::error!(error = %e, size = *s, file = %shared.high_water.path().display(), "cannot write the high-water mark");
                }
                shared.size.store(w.size, Relaxed);
                m.set_tree_size(w.size);
                if let Some((s, n)) = &w.checkpoint {
                    m.checkpoint_signed(*s);
                    shared.checkpoint.send_replace((*s, n.clone()));
                }
                for (reply, outcomes) in w.replies {
                    let _ = reply.send(JobResult {
                        outcomes,
                        checkpoint: w.checkpoint.clone(),
                    });
                }
            }
            Err(e) => {
                tracing::error!(error = %e, size = w.size, "group commit failed; nothing acknowledged, sequencer stops");
                failed.store(true, Relaxed);
                shared.set_down("group commit failed");
                refuse_all(w.replies, &format!("storage failure: {e}"));
            }
        }
    }
}

/// Cluster mode: proposes the group through Raft (`client_write`, whose answer is the apply
/// outcome on this node), then publishes and answers it as the single node's writer does.
fn replicate(c: &crate::cluster::ClusterView, shared: &Shared, resync: &Resync, w: Write) {
    use ledger_raft::{ApplyOutcome, Rejection, SequencedGroup};
    use openraft::error::{ClientWriteError, RaftError};
    if w.epoch < resync.load(Relaxed) {
        fail_fresh(
            w.replies,
            &Refusal::Unavailable(
                "the cluster refused or lost an earlier group this one extends; retry with the same request id".into(),
            ),
        );
        return;
    }
    if w.prepared.is_empty() && w.checkpoint.is_none() {
        // A barrier, or a group of earlier answers and refusals only.
        for (reply, outcomes) in w.replies {
            let _ = reply.send(JobResult {
                outcomes,
                checkpoint: None,
            });
        }
        return;
    }
    let t = Instant::now();
    let refused = |why: Refusal| {
        resync.fetch_max(w.epoch + 1, Relaxed);
        why
    };
    let outcome: Result<(), Refusal> = if w.prepared.is_empty() {
        Ok(())
    } else {
        let group = SequencedGroup::from_prepared(w.prev_root, &w.prepared, w.size);
        match c
            .rt
            .block_on(async { tokio::time::timeout(COMMIT_TIMEOUT, c.raft.client_write(group.into())).await })
        {
            Err(_) => Err(refused(Refusal::Unavailable(format!(
                "the cluster did not apply the group within {} s; it may still take effect: retry with the same \
                 request id",
                COMMIT_TIMEOUT.as_secs()
            )))),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                Err(refused(c.not_leader(f.leader_id)))
            }
            Ok(Err(e)) => Err(refused(Refusal::Unavailable(format!(
                "the cluster could not commit the group ({e}); retry with the same request id"
            )))),
            Ok(Ok(resp)) => match resp.data {
                ApplyOutcome::Applied { .. } => Ok(()),
                ApplyOutcome::Rejected {
                    reason: Rejection::DuplicateRequest { index, original, .. },
                    ..
                } => {
                    resync.fetch_max(w.epoch + 1, Relaxed);
                    tracing::warn!(
                        index,
                        original,
                        "the cluster refused a group: a request id was already used (a retry after a failover)"
                    );
                    answer_duplicate(c, w.replies, index, original);
                    return;
                }
                ApplyOutcome::Rejected { reason, .. } => {
                    tracing::warn!(reason = %reason, "the cluster refused a group; the sequencer starts again from the applied state");
                    Err(refused(Refusal::Unavailable(format!(
                        "the cluster refused the group ({reason}); retry with the same request id"
                    ))))
                }
                ApplyOutcome::NoGroup { .. } | ApplyOutcome::CheckpointStored { .. } => {
                    Err(refused(Refusal::Unavailable(
                        "the cluster applied no group for this proposal; retry with the same request id".into(),
                    )))
                }
            },
        }
    };
    if let Err(r) = outcome {
        fail_fresh(w.replies, &r);
        return;
    }
    let m = &shared.metrics;
    m.group_committed(w.prepared.len(), t.elapsed());
    if let Some(reg) = w.registry
        && let Ok(mut r) = shared.registry.write()
    {
        *r = reg;
    }
    let checkpoint = w.checkpoint.filter(|(s, n)| match replicate_checkpoint(c, *s, n) {
        Ok(()) => true,
        Err(e) => {
            // The next group's checkpoint (or the next periodic one) covers these entries.
            resync.fetch_max(w.epoch + 1, Relaxed);
            tracing::warn!(error = %e, size = *s, "checkpoint not stored");
            false
        }
    });
    if let Some((s, n)) = &checkpoint
        && let Err(e) = shared.high_water.advance(*s, n)
    {
        tracing::error!(error = %e, size = *s, file = %shared.high_water.path().display(), "cannot write the high-water mark");
    }
    shared.size.fetch_max(w.size, Relaxed);
    m.set_tree_size(w.size);
    if let Some((s, n)) = &checkpoint {
        m.checkpoint_signed(*s);
        shared.checkpoint.send_replace((*s, n.clone()));
    }
    for (reply, outcomes) in w.replies {
        let _ = reply.send(JobResult {
            outcomes,
            checkpoint: checkpoint.clone(),
        });
    }
}

/// Cluster mode, on the leader: a checkpoint it signed goes to every node as a Raft entry
/// (`LedgerRequest::Checkpoint`, which every node's apply checks again: signed by the node key in
/// force, root of the applied tree at its size, extends the latest stored one), so that every node
/// serves the same bytes. Proposed only after the same checks here, on the applied tree.
fn replicate_checkpoint(c: &crate::cluster::ClusterView, size: u64, note: &str) -> Result<(), String> {
    use ledger_raft::{ApplyOutcome, LedgerRequest};
    check_checkpoint(c, size, note)?;
    let req = LedgerRequest::Checkpoint {
        size,
        note: note.to_string(),
    };
    match c
        .rt
        .block_on(async { tokio::time::timeout(COMMIT_TIMEOUT, c.raft.client_write(req)).await })
    {
        Err(_) => Err("not applied in time".into()),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(r)) => match r.data {
            ApplyOutcome::CheckpointStored { .. } => Ok(()),
            other => Err(format!("the cluster answered {other:?}")),
        },
    }
}

/// Cluster mode, on the leader: a checkpoint it signed is over an applied size, the applied tree
/// has its root at that size, and that tree extends the latest stored checkpoint.
fn check_checkpoint(c: &crate::cluster::ClusterView, size: u64, note: &str) -> Result<(), String> {
    use ledger_core::merkle::root_from_source;
    let store = c.sm.store().map_err(|e| e.to_string())?;
    let root_of = |text: &str| -> Result<Checkpoint, String> {
        let n = ledger_core::note::Note::parse(text).map_err(|e| e.to_string())?;
        Checkpoint::from_body(&n.text).map_err(|e| e.to_string())
    };
    let applied = c.sm.applied_tree().map_err(|e| e.to_string())?.size();
    if size > applied {
        return Err(format!("size {size} is not applied (applied {applied})"));
    }
    let new = root_of(note)?;
    if root_from_source(&*store, size).map_err(|e| e.to_string())? != new.root {
        return Err(format!("the applied tree of size {size} has another root"));
    }
    if let Some((old_size, old_note)) = store.latest_checkpoint().map_err(|e| e.to_string())? {
        if old_size > size {
            return Err(format!("a checkpoint of size {old_size} is already stored"));
        }
        let old = root_of(&old_note)?;
        if root_from_source(&*store, old_size).map_err(|e| e.to_string())? != old.root {
            return Err(format!(
                "the applied tree does not extend the latest stored checkpoint (size {old_size})"
            ));
        }
    }
    Ok(())
}

/// Answers a group that the cluster refused because a request id was already used: the item with
/// that id gets the original entry (a retry after a failover); the group's other new items were
/// not appended (UNAVAILABLE, to retry with the same request id).
fn answer_duplicate(
    c: &crate::cluster::ClusterView,
    replies: Vec<(oneshot::Sender<JobResult>, Vec<Outcome>)>,
    index: u64,
    original: u64,
) {
    let first = c.sm.store().ok().and_then(|st| {
        let bytes = st.entry(original).ok()??;
        let e = Entry::decode(&bytes).ok()?;
        Some(Outcome::Appended {
            index: original,
            leaf_hash: ledger_core::hash::leaf_hash(&bytes),
            timestamp_micros: e.timestamp_micros,
            duplicate: true,
        })
    });
    let retry = Refusal::Unavailable(format!(
        "the cluster refused this group (a request id in it was already used by entry {original}); retry with the \
         same request id"
    ));
    for (reply, outs) in replies {
        let outcomes = outs
            .into_iter()
            .map(|o| match o {
                Outcome::Appended { index: i, .. } => match (&first, i == index) {
                    (Some(f), true) => f.clone(),
                    _ => Outcome::Refused(retry.clone()),
                },
                other => other,
            })
            .collect();
        let _ = reply.send(JobResult {
            outcomes,
            checkpoint: None,
        });
    }
}

/// Answers a group the cluster did not apply: its appended items get `why` (a duplicate's answer
/// too, as it may name an entry of this group or of the one before it; the retry finds the
/// original); refusals stand.
fn fail_fresh(replies: Vec<(oneshot::Sender<JobResult>, Vec<Outcome>)>, why: &Refusal) {
    for (reply, outs) in replies {
        let outcomes = outs
            .into_iter()
            .map(|o| match o {
                Outcome::Appended { .. } => Outcome::Refused(why.clone()),
                other => other,
            })
            .collect();
        let _ = reply.send(JobResult {
            outcomes,
            checkpoint: None,
        });
    }
}

impl Write {
    /// Appends the group sequenced after this one (single node): its entries, tile nodes and
    /// answers follow this group's; the size, checkpoint and registry become the later group's
    /// (a registry only if it changed one).
    fn absorb(&mut self, next: Write) {
        self.prepared.extend(next.prepared);
        self.nodes.extend(next.nodes);
        self.size = next.size;
        self.checkpoint = next.checkpoint;
        if next.registry.is_some() {
            self.registry = next.registry;
        }
        self.replies.extend(next.replies);
    }

    /// Nothing to write: the sequencer's send returns once the writer took it, i.e. once every
    /// earlier group is through.
    fn barrier(epoch: u64) -> Write {
        Write {
            prev_root: Hash::default(),
            epoch,
            prepared: Vec::new(),
            nodes: Vec::new(),
            size: 0,
            checkpoint: None,
            registry: None,
            replies: Vec::new(),
        }
    }

    /// The write of a sequenced group, and the request ids it answers (in flight until written).
    fn of_group(
        g: Group,
        ct: &CompactTree,
        checkpoint: Option<(u64, String)>,
        state: &LedgerState,
        jobs: Vec<Job>,
        outcomes: Vec<Vec<Outcome>>,
    ) -> (Write, HashMap<String, (Hash, Outcome)>) {
        let write = Write {
            prev_root: Hash::default(),
            epoch: 0,
            prepared: g.prepared,
            nodes: g.nodes,
            size: ct.size(),
            checkpoint,
            registry: g.registry_changed.then(|| state.registry.clone()),
            replies: jobs.into_iter().map(|j| j.reply).zip(outcomes).collect(),
        };
        (write, g.in_group)
    }
}

/// Takes the jobs already waiting behind the first, up to [`MAX_GROUP`] items in all.
fn take_waiting(rx: &Receiver<Job>, jobs: &mut Vec<Job>) {
    let mut n: usize = jobs.iter().map(|j| j.items.len()).sum();
    while n < MAX_GROUP {
        match rx.try_recv() {
            Ok(j) => {
                n += j.items.len();
                jobs.push(j);
            }
            Err(_) => break,
        }
    }
}

/// Answers every item of `jobs` with `why` (nothing of them was sequenced).
fn refuse_jobs(jobs: Vec<Job>, why: &Refusal) {
    for j in jobs {
        let _ = j.reply.send(JobResult {
            outcomes: vec![Outcome::Refused(why.clone()); j.items.len()],
            checkpoint: None,
        });
    }
}

fn refuse_all(replies: Vec<(oneshot::Sender<JobResult>, Vec<Outcome>)>, why: &str) {
    for (reply, outs) in replies {
        let refused = Outcome::Refused(Refusal::Unavailable(why.to_string()));
        let _ = reply.send(JobResult {
            outcomes: vec![refused; outs.len()],
            checkpoint: None,
        });
    }
}

/// Sequencer state and configuration.
pub struct Sequencer {
    /// Store.
    pub store: Arc<Store>,
    /// Node key.
    pub signer: NoteSigner,
    /// Origin.
    pub origin: String,
    /// Periodic checkpoint interval.
    pub interval: Duration,
    /// Shared state.
    pub shared: Arc<Shared>,
    /// Node key (signs node-computed records such as `draw.result`).
    pub node_key: ed25519_dalek::SigningKey,
    /// The next node key (`serve --next-node-key`): the one key a `node.rotate` may hand the node
    /// role to; the sequencer signs with it from the record on.
    pub next_key: Option<ed25519_dalek::SigningKey>,
    /// The state snapshots (single node only; `None` in cluster mode).
    pub snapshot: Option<crate::snapshot::Periodic>,
}

fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Digest identifying what a request id was used for: the canonical encoding of the envelope in an
/// entry with zero index, time and chain link.
pub fn request_digest(env: &Envelope) -> Hash {
    Hash::digest(
        &Entry {
            index: 0,
            timestamp_micros: 0,
            prev_root: Hash::default(),
            envelope: env.clone(),
        }
        .encode(),
    )
}

impl Sequencer {
    /// Runs until every job sender is dropped; then signs a final checkpoint if needed and returns.
    /// `state` is the state as of the end of the stored log (folded at start-up).
    pub fn run(mut self, rx: Receiver<Job>, mut state: LedgerState) {
        let _down = DownOnDrop(self.shared.clone());
        let mut ct = match self.store.compact_tree() {
            Ok(ct) => ct,
            Err(e) => {
                tracing::error!(error = %e, "cannot load the tree; sequencer not started");
                return;
            }
        };
        let mut last_ts = self
            .store
            .timestamp(ct.size().saturating_sub(1))
            .ok()
            .flatten()
            .unwrap_or(0);
        let mut last_cp_size = self.store.latest_checkpoint().ok().flatten().map(|c| c.0).unwrap_or(0);
        let mut last_cp_at = Instant::now();
        let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let resync: Resync = Arc::default();
        let Some((wtx, writer_thread)) = self.start_writer(&failed, &resync) else {
            return;
        };
        self.shared.set_up();
        let mut in_flight = InFlight::default();
        // Cluster mode: the term this sequencer's state was loaded in (None: not loaded as leader)
        // and the resync epoch it has reached.
        let mut synced_term: Option<u64> = None;
        let mut epoch = 0u64;
        loop {
            if failed.load(Relaxed) {
                break;
            }
            let wait = self
                .interval
                .saturating_sub(last_cp_at.elapsed())
                .max(Duration::from_millis(1));
            let mut jobs = Vec::new();
            match rx.recv_timeout(wait) {
                Ok(j) => jobs.push(j),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.shared.set_stopping();
                    let leads = self.shared.cluster.as_ref().is_none_or(|c| c.role().leader);
                    if ct.size() > last_cp_size && leads && epoch >= resync.load(Relaxed) {
                        self.final_checkpoint(&ct, &wtx, epoch);
                    }
                    break;
                }
            }
            take_waiting(&rx, &mut jobs);
            self.shared.metrics.dequeued(jobs.len());
            if let Some(c) = self.shared.cluster.clone() {
                let role = c.role();
                if !role.leader {
                    // A follower sequences nothing: appends go to the leader.
                    synced_term = None;
                    let why = c.not_leader(role.leader_id);
                    refuse_jobs(jobs, &why);
                    continue;
                }
                let needed = resync.load(Relaxed);
                if synced_term != Some(role.term) || epoch < needed {
                    // Every earlier group is through the writer before the state is read.
                    if wtx.send(Write::barrier(epoch)).is_err() {
                        refuse_jobs(jobs, &Refusal::Unavailable("the writer stopped".into()));
                        break;
                    }
                    match self.load_applied(&c) {
                        Ok((t, ts, cp, st)) => {
                            (ct, last_ts, last_cp_size, state) = (t, ts, cp, st);
                            in_flight.clear();
                            synced_term = Some(role.term);
                            epoch = needed;
                            tracing::info!(
                                node = c.id,
                                term = role.term,
                                size = ct.size(),
                                "leading: sequencing from the applied state"
                            );
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot start sequencing as leader yet");
                            refuse_jobs(
                                jobs,
                                &Refusal::Unavailable(format!(
                                    "the leader is not ready: {e}; retry with the same request id"
                                )),
                            );
                            continue;
                        }
                    }
                }
            }
            let due = last_cp_at.elapsed() >= self.interval && ct.size() > last_cp_size;
            // Draws past their deadline with reveals (or sources) missing are voided by the node.
            let now = now_micros();
            let overdue = state.domain.overdue_draws(now);
            // Elections past their close get their tally from the node.
            let closed = state.domain.elections.closed_elections_needing_tally(now);
            if jobs.is_empty() && !due && overdue.is_empty() && closed.is_empty() {
                continue;
            }
            let want_cp = due || jobs.iter().any(|j| j.want_checkpoint);
            let prev_root = ct.root();
            in_flight.forget_durable(self.shared.size.load(Relaxed));
            let mut g = Group {
                in_flight: std::mem::take(&mut in_flight),
                ..Group::default()
            };
            self.append_due_records(overdue, closed, &mut ct, &mut state, &mut last_ts, &mut g);
            let outcomes = self.sequence_jobs(&mut jobs, &mut ct, &mut state, &mut last_ts, &mut g);
            self.follow_rotation(&state);
            let checkpoint = if want_cp { self.sign_checkpoint(&ct) } else { None };
            if let Some((s, _)) = &checkpoint {
                last_cp_size = *s;
                last_cp_at = Instant::now();
            }
            in_flight = std::mem::take(&mut g.in_flight);
            let (mut write, in_group) = Write::of_group(g, &ct, checkpoint, &state, jobs, outcomes);
            (write.prev_root, write.epoch) = (prev_root, epoch);
            in_flight.push(ct.size(), in_group);
            if let Err(e) = wtx.send(write) {
                refuse_all(e.0.replies, "the writer stopped");
                break;
            }
            // The durable size (set only after a successful commit) covers the tickets of the
            // groups written so far, which the store's index now holds; the tickets of the groups
            // still in flight stay in memory.
            state
                .domain
                .elections
                .tickets
                .forget_below(self.shared.size.load(Relaxed));
            if let Some(mut p) = self.snapshot.take() {
                let keys = self.snapshot_keys();
                p.after_group(
                    &self.store,
                    &keys,
                    self.shared.size.load(Relaxed),
                    (ct.size(), ct.root(), &state),
                );
                self.snapshot = Some(p);
            }
        }
        drop(wtx);
        let _ = writer_thread.join();
        if let Some(mut p) = self.snapshot.take()
            && !failed.load(Relaxed)
        {
            let keys = self.snapshot_keys();
            p.finish(
                &self.store,
                &keys,
                self.shared.size.load(Relaxed),
                ct.size(),
                &ct.root(),
                &state,
            );
        }
        tracing::info!(size = ct.size(), "sequencer stopped");
    }

    /// The keys a state snapshot may be signed with (the one in force for the state is chosen).
    fn snapshot_keys(&self) -> Vec<ed25519_dalek::SigningKey> {
        std::iter::once(self.node_key.clone())
            .chain(self.next_key.clone())
            .collect()
    }

    /// Starts the writer thread. Single node: behind a queue of [`WRITE_QUEUE`] groups, which the
    /// writer takes as one commit each time it is free. Cluster mode: behind a rendezvous channel
    /// (a send returns once the writer has taken the group, i.e. once the previous group is
    /// through; so at most one group is in flight while the next is sequenced).
    fn start_writer(
        &self,
        failed: &Arc<std::sync::atomic::AtomicBool>,
        resync: &Resync,
    ) -> Option<(std::sync::mpsc::SyncSender<Write>, std::thread::JoinHandle<()>)> {
        let depth = if self.shared.cluster.is_some() { 0 } else { WRITE_QUEUE };
        let (wtx, wrx) = std::sync::mpsc::sync_channel::<Write>(depth);
        let (store, shared, failed, resync) = (self.store.clone(), self.shared.clone(), failed.clone(), resync.clone());
        match std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || writer(store, shared, failed, resync, wrx))
        {
            Ok(h) => Some((wtx, h)),
            Err(_) => {
                tracing::error!("cannot start the writer thread; sequencer not started");
                None
            }
        }
    }

    /// Cluster mode, on becoming leader (or after the cluster refused a group): waits until this
    /// node has applied everything committed before its term (`ensure_linearizable`), then takes the
    /// applied tree, last timestamp, latest checkpoint size, ledger state and store, never its own
    /// earlier copy.
    fn load_applied(
        &mut self,
        c: &crate::cluster::ClusterView,
    ) -> Result<(CompactTree, u64, u64, LedgerState), String> {
        c.rt.block_on(async { tokio::time::timeout(COMMIT_TIMEOUT, c.raft.ensure_linearizable()).await })
            .map_err(|_| "the committed log was not applied in time".to_string())?
            .map_err(|e| e.to_string())?;
        // The state machine's own state of the applied tree (a copy, under one lock with the tree):
        // folding the whole log again here would cost a full pass at every change of leader.
        let (ct, last_ts, store, state) = c.sm.applied_with_state().map_err(|e| e.to_string())?;
        if ct.size() == 0 {
            return Err("the cluster's log is empty (no charter yet)".into());
        }
        let state = state.ok_or("the cluster's log has no valid charter")?;
        let cp = store.latest_checkpoint().map_err(|e| e.to_string())?.map_or(0, |c| c.0);
        if let Ok(mut r) = self.shared.registry.write() {
            *r = state.registry.clone();
        }
        self.follow_rotation(&state);
        self.store = store;
        Ok((ct, last_ts, cp, state))
    }

    /// At shutdown: a last checkpoint over the whole tree, written by the writer.
    fn final_checkpoint(&self, ct: &CompactTree, wtx: &std::sync::mpsc::SyncSender<Write>, epoch: u64) {
        let checkpoint = self.sign_checkpoint(ct);
        let _ = wtx.send(Write {
            prev_root: ct.root(),
            epoch,
            prepared: Vec::new(),
            nodes: Vec::new(),
            size: ct.size(),
            checkpoint,
            registry: None,
            replies: Vec::new(),
        });
    }

    /// The node's own records that are due: `draw.void` for draws past their deadline with
    /// reveals (or sources) missing, and the `tally` of elections past their close.
    fn append_due_records(
        &self,
        overdue: Vec<(String, Vec<String>)>,
        closed: Vec<String>,
        ct: &mut CompactTree,
        state: &mut LedgerState,
        last_ts: &mut u64,
        g: &mut Group,
    ) {
        for (id, missing) in overdue {
            let void = ledger_core::domain::DrawVoid {
                version: 1,
                deadline_micros: state
                    .domain
                    .draws
                    .get(&id)
                    .map_or(0, |d| d.commit.reveal_deadline_micros),
                draw_id: id.clone(),
                missing,
            };
            self.append_node_record(&id, "draw.void", &void, ct, state, last_ts, g);
        }
        for id in closed {
            match state.domain.elections.compute_tally(&id) {
                Ok(t) => self.append_node_record(&id, "tally", &t, ct, state, last_ts, g),
                Err(e) => tracing::error!(election = %id, error = %e, "cannot compute the tally"),
            }
        }
    }

    /// Sequences every item of the jobs in order; the last reveal (or the sources) of a draw makes
    /// the node append its result right after it. Returns the outcomes per job.
    fn sequence_jobs(
        &self,
        jobs: &mut [Job],
        ct: &mut CompactTree,
        state: &mut LedgerState,
        last_ts: &mut u64,
        g: &mut Group,
    ) -> Vec<Vec<Outcome>> {
        let mut outcomes: Vec<Vec<Outcome>> = Vec::with_capacity(jobs.len());
        for job in jobs.iter_mut() {
            let mut outs = Vec::with_capacity(job.items.len());
            for item in job.items.drain(..) {
                let completes_draw = item.kind == "draw.reveal" || item.kind == "draw.sources";
                outs.push(self.sequence_one(item, ct, state, last_ts, g));
                if completes_draw {
                    for id in state.domain.ready_draws() {
                        match state.domain.compute_result(&id) {
                            Ok(result) => self.append_node_record(&id, "draw.result", &result, ct, state, last_ts, g),
                            Err(e) => tracing::error!(draw = %id, error = %e, "cannot compute the draw result"),
                        }
                    }
                }
            }
            outcomes.push(outs);
        }
        outcomes
    }

    /// After a `node.rotate` in the group: sign with the new key from now on (the group's
    /// checkpoint is the first of the new key's tenure; docs/registry.md).
    fn follow_rotation(&mut self, state: &LedgerState) {
        let now = state.registry.node_key;
        if now == self.node_key.verifying_key() {
            return;
        }
        match self.next_key.take() {
            Some(next) if next.verifying_key() == now => match NoteSigner::new(&self.origin, next.clone()) {
                Ok(signer) => {
                    self.signer = signer;
                    self.node_key = next;
                    tracing::info!(
                        node_key = %ledger_core::keys::key_id(&now),
                        "node key rotated: checkpoints and node records are signed by the new key"
                    );
                }
                Err(e) => tracing::error!(error = %e, "cannot sign with the next node key"),
            },
            other => {
                self.next_key = other;
                tracing::error!("the log's node key changed to a key this node does not hold");
            }
        }
    }

    /// A `node.rotate` from the administrators: the node co-signs it, but only when its new key is
    /// the next key its operator placed (`serve --next-node-key`), so that it can sign right after.
    fn cosign_rotation(&self, item: &mut Item) -> Result<(), Refusal> {
        if let Some(KeyRecord::NodeCompromise(r)) = &item.payload.parsed.key {
            return self.accept_compromise(r);
        }
        let Some(KeyRecord::NodeRotate(r)) = &item.payload.parsed.key else {
            return Ok(());
        };
        let new = ledger_core::keys::public_key_from_base64(&r.new_key).ok();
        let held = self.next_key.as_ref().map(|k| k.verifying_key());
        if new.is_none() || new != held {
            return Err(Refusal::NextKeyNotHeld {
                keyid: new.map_or_else(|| r.new_key.clone(), |k| ledger_core::keys::key_id(&k)),
            });
        }
        let id = ledger_core::keys::key_id(&self.node_key.verifying_key());
        if !item.signers.contains(&id) {
            item.envelope.sign(&self.node_key);
            item.signers.push(id);
        }
        Ok(())
    }

    /// A `node.compromise` from the administrator quorum (docs/registry.md): the node does not
    /// sign it (the compromised key must not), takes it only when its new key is the next key its
    /// operator placed (`serve --next-node-key`), and refuses an `as_of` below the latest
    /// checkpoint the witness quorum cosigned.
    fn accept_compromise(&self, r: &ledger_core::registry::NodeCompromise) -> Result<(), Refusal> {
        let new = ledger_core::keys::public_key_from_base64(&r.new_key).ok();
        if new == Some(self.node_key.verifying_key()) {
            // Already the key this node signs with (the same declaration again): the state step
            // answers it (DUPLICATE_STATEMENT, or the key is already enrolled).
            return Ok(());
        }
        let held = self.next_key.as_ref().map(|k| k.verifying_key());
        if new.is_none() || new != held {
            return Err(Refusal::NextKeyNotHeld {
                keyid: new.map_or_else(|| r.new_key.clone(), |k| ledger_core::keys::key_id(&k)),
            });
        }
        let quorum = self
            .shared
            .registry
            .read()
            .map(|reg| reg.charter.policy.witness_quorum)
            .unwrap_or(0);
        let witnessed = self.shared.witnessed_mark.size();
        if quorum > 0 && r.as_of < witnessed {
            return Err(Refusal::CompromiseBelowWitnessed {
                as_of: r.as_of,
                witnessed,
            });
        }
        Ok(())
    }

    /// Signs a checkpoint of the current tree (None for the empty tree or if signing fails).
    fn sign_checkpoint(&self, ct: &CompactTree) -> Option<(u64, String)> {
        let size = ct.size();
        if size == 0 {
            return None;
        }
        let c = Checkpoint {
            origin: self.origin.clone(),
            size,
            root: ct.root(),
            extensions: vec![],
        };
        match c.sign(&self.signer) {
            Ok(n) => Some((size, n.to_text())),
            Err(e) => {
                tracing::error!(error = %e, "cannot sign checkpoint");
                None
            }
        }
    }

    /// Signs and sequences a record computed by the node itself (`draw.result`, `draw.void`, `tally`).
    #[allow(clippy::too_many_arguments)]
    fn append_node_record<T: serde::Serialize>(
        &self,
        draw: &str,
        kind: &str,
        record: &T,
        ct: &mut CompactTree,
        state: &mut LedgerState,
        last_ts: &mut u64,
        g: &mut Group,
    ) {
        let Ok(payload) = serde_json::to_vec(record) else {
            return;
        };
        let checked = match check_payload(kind, &payload) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(id = draw, kind, error = %e, "could not append a node record");
                return;
            }
        };
        // The key in force at this index: after a `node.rotate` or `node.compromise` earlier in
        // this group, already the next key (the sequencer switches for good after the group).
        let key = match &self.next_key {
            Some(next) if state.registry.node_key == next.verifying_key() => next,
            _ => &self.node_key,
        };
        let mut env = Envelope::new(payload_type_for_log(kind, &self.origin), payload);
        env.sign(key);
        let item = Item {
            envelope: env,
            kind: kind.into(),
            signers: vec![ledger_core::keys::key_id(&key.verifying_key())],
            request_id: None,
            payload: checked,
        };
        match self.sequence_one(item, ct, state, last_ts, g) {
            Outcome::Refused(m) => tracing::error!(id = draw, kind, error = %m, "could not append a node record"),
            Outcome::Appended { index, .. } => tracing::info!(id = draw, kind, index, "node record appended"),
        }
    }

    fn sequence_one(
        &self,
        mut item: Item,
        ct: &mut CompactTree,
        state: &mut LedgerState,
        last_ts: &mut u64,
        g: &mut Group,
    ) -> Outcome {
        let digest = item.request_id.as_ref().map(|_| request_digest(&item.envelope));
        if let (Some(id), Some(d)) = (&item.request_id, &digest)
            && let Some(answer) = self.earlier_answer(id, d, g)
        {
            return answer;
        }
        if let Err(r) = self.cosign_rotation(&mut item) {
            return Outcome::Refused(r);
        }
        let Group {
            prepared,
            nodes,
            in_group,
            registry_changed,
            ..
        } = g;
        let index = ct.size();
        let ts = now_micros().max(*last_ts + 1);
        // The one state step (ledger_core::state), as start-up and the verifier fold it.
        let CheckedPayload { parsed, terms } = item.payload;
        let checked = match state.check_parsed(index, ts, &item.kind, &item.envelope, parsed, &item.signers) {
            Ok(c) => c,
            Err(e) => {
                if !matches!(e, StepError::Record(_)) {
                    self.shared.metrics.reject_step(&e);
                }
                return Outcome::Refused(Refusal::Step(e));
            }
        };
        if checked.changes_registry() {
            *registry_changed = true;
        }
        *last_ts = ts;
        let entry = Entry {
            index,
            timestamp_micros: ts,
            prev_root: ct.root(),
            envelope: item.envelope,
        };
        let leaf = entry.encode();
        let leaf_hash = ledger_core::hash::leaf_hash(&leaf);
        ct.append_with(leaf_hash, |n| nodes.push(n));
        let tickets = ledger_core::rules::tickets::record_ticket(&checked.record)
            .into_iter()
            .collect();
        state.apply(&leaf_hash, checked);
        state.observe_size(ct.size(), &ct.root());
        let out = Outcome::Appended {
            index,
            leaf_hash,
            timestamp_micros: ts,
            duplicate: false,
        };
        let request = match (item.request_id, digest) {
            (Some(id), Some(d)) => {
                in_group.insert(id.clone(), (d, out.clone()));
                Some((id, d))
            }
            _ => None,
        };
        prepared.push(PreparedEntry {
            index,
            leaf,
            leaf_hash,
            request,
            terms,
            tickets,
        });
        out
    }

    /// The answer to a request id used before (in this group, the one being written, or the
    /// store): the earlier outcome for the same envelope, marked duplicate; a refusal for another
    /// envelope. `None` for a new request id.
    fn earlier_answer(&self, id: &str, digest: &Hash, g: &Group) -> Option<Outcome> {
        let earlier = match g.in_group.get(id).or_else(|| g.in_flight.get(id)) {
            Some((h, o)) => Some((*h, o.clone())),
            None => match self.store.request(id) {
                Ok(Some((index, h))) => self.outcome_of(index).map(|o| (h, o)),
                Ok(None) => None,
                Err(e) => return Some(Outcome::Refused(Refusal::Unavailable(e.to_string()))),
            },
        };
        let (h, o) = earlier?;
        if h != *digest {
            return Some(Outcome::Refused(Refusal::RequestIdReused { id: id.to_string() }));
        }
        self.shared.metrics.duplicate();
        Some(match o {
            Outcome::Appended {
                index,
                leaf_hash,
                timestamp_micros,
                ..
            } => Outcome::Appended {
                index,
                leaf_hash,
                timestamp_micros,
                duplicate: true,
            },
            r => r,
        })
    }

    fn outcome_of(&self, index: u64) -> Option<Outcome> {
        let bytes = self.store.entry(index).ok()??;
        let e = Entry::decode(&bytes).ok()?;
        Some(Outcome::Appended {
            index,
            leaf_hash: ledger_core::hash::leaf_hash(&bytes),
            timestamp_micros: e.timestamp_micros,
            duplicate: true,
        })
    }
}
