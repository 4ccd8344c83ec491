//! The state machine (`RaftStateMachine`): applying a Raft entry is the ledger store's group commit.
//!
//! - `apply` checks, from what the entry carries and the applied tree only (never the local clock),
//!   that the group extends the applied tree, then commits it with [`Store::commit_group_with_meta`]:
//!   the entries, node hashes, new size **and** the last applied log id and membership (meta key
//!   `raft.applied`) are one sled batch made durable by one flush. A group that does not extend the
//!   tree is answered [`ApplyOutcome::Rejected`] and only the applied log id moves.
//! - Snapshots are the store's export stream (`docs/format.md` §Export) of the applied tree, in a
//!   file under `DATA/raft/`, plus the Raft metadata in `DATA/raft/snapshot.meta`.
//! - Installing a snapshot imports it (verifying every entry and checkpoint) into a fresh directory
//!   next to the ledger directory, then swaps the two by renames (recovered on open).

use crate::log_store::{decode, encode};
use crate::types::{
    ApplyOutcome, LedgerRequest, LogEntry, LogId, Rejection, SequencedGroup, StorageError, StoredMembership,
    TypeConfig, index_tag,
};
use ledger_core::checkpoint::{SignedCheckpoint, open_checkpoint};
use ledger_core::compact::{CompactTree, CompletedNode};
use ledger_core::entry::Entry;
use ledger_core::hash::Hash;
use ledger_core::note::{Note, NoteVerifier};
use ledger_core::state::LedgerState;
use ledger_store::{PreparedEntry, Store};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{AnyError, EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, StorageIOError};
use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Meta key (in the ledger store) of the last applied log id and membership.
pub const APPLIED_META: &str = "raft.applied";

/// Largest snapshot this node builds or installs (bytes). A snapshot is the whole export stream
/// of the applied log: at about 1 KiB per entry this is some 64 million entries. Raise it (and the
/// disk) before a log grows past it: a node refuses to build or install a larger one.
pub const MAX_SNAPSHOT_BYTES: u64 = 64 << 30;

const SNAPSHOT_META: &str = "snapshot.meta";

fn sm_err(verb: ErrorVerb, e: impl ToString) -> StorageError {
    StorageIOError::new(ErrorSubject::StateMachine, verb, AnyError::error(e.to_string())).into()
}

fn snap_err(verb: ErrorVerb, e: impl ToString) -> StorageError {
    StorageIOError::new(ErrorSubject::Snapshot(None), verb, AnyError::error(e.to_string())).into()
}

/// Where the state machine keeps its files.
#[derive(Debug, Clone)]
struct Paths {
    /// The ledger store's sled directory.
    ledger: PathBuf,
    /// `DATA/raft`: snapshot files.
    raft: PathBuf,
    /// Entry bytes a fold of a store it owns reads between two reopens ([`fold_store_reopening`]).
    scan_bytes: u64,
}

impl Paths {
    fn sibling(&self, suffix: &str) -> PathBuf {
        let mut name = self.ledger.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(suffix);
        self.ledger.with_file_name(name)
    }
    fn install(&self) -> PathBuf {
        self.sibling(".install")
    }
    fn old(&self) -> PathBuf {
        self.sibling(".old")
    }
}

struct Inner {
    /// `None` only while a snapshot install swaps directories (or after a failed swap). Shared
    /// with the node's readers ([`StateMachine::store`]), who take it again after an install.
    store: Option<Arc<Store>>,
    tree: CompactTree,
    /// Ledger state (registry and domain) as of the applied tree; none before a valid charter.
    state: Option<LedgerState>,
    /// Timestamp of the last applied entry (0 for an empty log).
    last_ts: u64,
    applied: Option<LogId>,
    membership: StoredMembership,
    /// Sequence number of the last snapshot file made here.
    seq: u64,
}

impl Inner {
    fn store(&self) -> Result<&Arc<Store>, StorageError> {
        self.store.as_ref().ok_or_else(|| {
            sm_err(
                ErrorVerb::Read,
                "the ledger store is closed (a snapshot install failed)",
            )
        })
    }
}

/// The record in `DATA/raft/snapshot.meta`: the current snapshot's metadata and its file.
#[derive(serde::Serialize, serde::Deserialize)]
struct SnapshotRecord {
    meta: SnapshotMeta<u64, crate::types::LedgerNode>,
    file: String,
    len: u64,
}

/// The ledger state machine. Cloning shares it.
#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<Mutex<Inner>>,
    paths: Arc<Paths>,
    open_reopens: u64,
}

fn lock(m: &Mutex<Inner>) -> Result<MutexGuard<'_, Inner>, StorageError> {
    m.lock()
        .map_err(|_| sm_err(ErrorVerb::Read, "state machine lock poisoned"))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn read_applied(store: &Store) -> Result<(Option<LogId>, StoredMembership), String> {
    match store.meta(APPLIED_META).map_err(|e| e.to_string())? {
        None => Ok((None, StoredMembership::default())),
        Some(v) => decode(&v),
    }
}

impl StateMachine {
    /// Opens the state machine on the ledger store in `ledger_dir`, keeping snapshots in `raft_dir`
    /// (by convention `DATA/ledger` and `DATA/raft`). Finishes or discards a snapshot install that
    /// a crash interrupted, and removes snapshot files no record names.
    ///
    /// # Errors
    /// When a directory cannot be created or the store does not open.
    pub fn open(ledger_dir: &Path, raft_dir: &Path) -> Result<Self, StorageError> {
        let budget = ledger_store::scan::scan_bytes(ledger_store::scan::NODE_SCAN_BYTES);
        Self::open_with_scan_bytes(ledger_dir, raft_dir, budget)
    }

    /// [`Self::open`] whose fold of the applied log (and of an installed snapshot's store later)
    /// reopens the store every `scan_bytes` bytes of entries read ([`fold_store_reopening`];
    /// `open` takes [`ledger_store::scan::NODE_SCAN_BYTES`] or `LEDGER_SCAN_BYTES`).
    ///
    /// # Errors
    /// As [`Self::open`].
    pub fn open_with_scan_bytes(ledger_dir: &Path, raft_dir: &Path, scan_bytes: u64) -> Result<Self, StorageError> {
        let paths = Paths {
            ledger: ledger_dir.to_path_buf(),
            raft: raft_dir.to_path_buf(),
            scan_bytes,
        };
        std::fs::create_dir_all(&paths.raft).map_err(|e| sm_err(ErrorVerb::Read, e))?;
        recover_swap(&paths).map_err(|e| sm_err(ErrorVerb::Read, format!("snapshot install recovery: {e}")))?;
        let store = Store::open(&paths.ledger).map_err(|e| sm_err(ErrorVerb::Read, e))?;
        let tree = store.compact_tree().map_err(|e| sm_err(ErrorVerb::Read, e))?;
        // The state machine owns the only handle until it returns: the fold reopens the store
        // between its passes, so start-up memory does not grow with the log (CSTART).
        let t = std::time::Instant::now();
        let Folded {
            store,
            state,
            left_out,
            reopens,
        } = fold_store_reopening(store, tree.size(), scan_bytes).map_err(|e| sm_err(ErrorVerb::Read, e))?;
        if left_out > 0 {
            tracing::warn!(left_out, "stored entries break a rule; left out of the state");
        }
        tracing::info!(
            size = tree.size(),
            left_out,
            reopens,
            ms = t.elapsed().as_millis() as u64,
            "applied log folded"
        );
        let last_ts = last_timestamp(&store, tree.size()).map_err(|e| sm_err(ErrorVerb::Read, e))?;
        let (applied, membership) = read_applied(&store).map_err(|e| sm_err(ErrorVerb::Read, e))?;
        let record = read_record(&paths.raft).map_err(|e| snap_err(ErrorVerb::Read, e))?;
        let seq = clean_snapshot_files(&paths.raft, record.as_ref().map(|r| r.file.as_str()))
            .map_err(|e| snap_err(ErrorVerb::Read, e))?;
        Ok(Self {
            inner: Arc::new(Mutex::new(Inner {
                store: Some(store),
                tree,
                state,
                last_ts,
                applied,
                membership,
                seq,
            })),
            paths: Arc::new(paths),
            open_reopens: reopens,
        })
    }

    /// Times [`Self::open`]'s fold of the applied log closed and reopened the store between two
    /// of its passes (every [`ledger_store::scan::NODE_SCAN_BYTES`] of entries read, or
    /// `LEDGER_SCAN_BYTES`).
    #[must_use]
    pub fn open_reopens(&self) -> u64 {
        self.open_reopens
    }

    /// Runs `f` on the ledger store under the state machine's lock (reads see a whole number of
    /// applied groups).
    ///
    /// # Errors
    /// When the store is closed after a failed snapshot install.
    pub fn with_store<T>(&self, f: impl FnOnce(&Store) -> T) -> Result<T, StorageError> {
        let g = lock(&self.inner)?;
        Ok(f(g.store()?))
    }

    /// The ledger store as applied now. A snapshot install replaces it (the old one is closed once
    /// its last holder drops it): readers take it again for each request rather than keeping it.
    ///
    /// # Errors
    /// When the store is closed after a failed snapshot install.
    pub fn store(&self) -> Result<Arc<Store>, StorageError> {
        let g = lock(&self.inner)?;
        g.store.clone().ok_or_else(|| {
            sm_err(
                ErrorVerb::Read,
                "the ledger store is closed (a snapshot install failed)",
            )
        })
    }

    /// The applied tree, the timestamp of its last entry (0 when empty) and the store, taken
    /// together under the lock: where a new leader's sequencer starts from.
    ///
    /// # Errors
    /// When the store is closed after a failed snapshot install.
    pub fn applied(&self) -> Result<(CompactTree, u64, Arc<Store>), StorageError> {
        let g = lock(&self.inner)?;
        let store = g.store.clone().ok_or_else(|| {
            sm_err(
                ErrorVerb::Read,
                "the ledger store is closed (a snapshot install failed)",
            )
        })?;
        Ok((g.tree.clone(), g.last_ts, store))
    }

    /// [`Self::applied`] with a copy of the ledger state of that tree (`None` before a valid
    /// charter), all taken under one lock: a new leader's sequencer starts from it instead of
    /// folding the whole log again (the copy's rated tickets are looked up in the same store).
    ///
    /// # Errors
    /// When the store is closed after a failed snapshot install.
    pub fn applied_with_state(&self) -> Result<(CompactTree, u64, Arc<Store>, Option<LedgerState>), StorageError> {
        let g = lock(&self.inner)?;
        let store = g.store.clone().ok_or_else(|| {
            sm_err(
                ErrorVerb::Read,
                "the ledger store is closed (a snapshot install failed)",
            )
        })?;
        Ok((g.tree.clone(), g.last_ts, store, g.state.clone()))
    }

    /// Runs `f` on the ledger state (registry and domain) as of the applied tree, under the lock
    /// (`None` before a valid charter): what the leader's sequencer will check appends against.
    ///
    /// # Errors
    /// When the lock is poisoned.
    pub fn with_state<T>(&self, f: impl FnOnce(Option<&LedgerState>) -> T) -> Result<T, StorageError> {
        let g = lock(&self.inner)?;
        Ok(f(g.state.as_ref()))
    }

    /// Applied tree size and root.
    ///
    /// # Errors
    /// When the lock is poisoned.
    pub fn applied_tree(&self) -> Result<CompactTree, StorageError> {
        Ok(lock(&self.inner)?.tree.clone())
    }
}

/// A group that passed [`check_group`], prepared for the store.
#[derive(Debug, Clone)]
pub struct CheckedGroup {
    /// The entries as the store takes them.
    pub prepared: Vec<PreparedEntry>,
    /// Node hashes the group completes.
    pub nodes: Vec<CompletedNode>,
    /// The tree after the group.
    pub tree: CompactTree,
    /// Timestamp of its last entry.
    pub last_timestamp: u64,
}

/// Checks that `group` extends `tree`, whose last entry has time `last_timestamp` (see
/// [`Rejection`] for each rule), and prepares it for the store.
///
/// # Errors
/// The first rule the group breaks.
pub fn check_group(tree: &CompactTree, last_timestamp: u64, group: &SequencedGroup) -> Result<CheckedGroup, Rejection> {
    let first = group.entries.first().ok_or(Rejection::Empty)?;
    if first.index != tree.size() {
        return Err(Rejection::NotAtSize {
            applied: tree.size(),
            first: first.index,
        });
    }
    if group.prev_root != tree.root() {
        return Err(Rejection::PrevRoot { applied: tree.size() });
    }
    let mut ct = tree.clone();
    let mut nodes = Vec::new();
    let mut prepared = Vec::with_capacity(group.entries.len());
    let mut in_group: HashMap<&str, u64> = HashMap::new();
    let mut last_ts = last_timestamp;
    for (position, g) in group.entries.iter().enumerate() {
        let index = ct.size();
        if g.index != index {
            return Err(Rejection::Index {
                position,
                expected: index,
                found: g.index,
            });
        }
        if ledger_core::hash::leaf_hash(&g.leaf) != g.leaf_hash {
            return Err(Rejection::LeafHash { index });
        }
        let e = Entry::decode(&g.leaf).map_err(|x| Rejection::Entry {
            index,
            detail: format!("does not decode: {x}"),
        })?;
        if e.index != index {
            return Err(Rejection::Entry {
                index,
                detail: format!("the entry bytes carry index {}", e.index),
            });
        }
        if e.timestamp_micros <= last_ts {
            return Err(Rejection::TimeRegression {
                index,
                timestamp: e.timestamp_micros,
                previous: last_ts,
            });
        }
        last_ts = e.timestamp_micros;
        if e.prev_root != ct.root() {
            return Err(Rejection::Entry {
                index,
                detail: "the entry bytes carry a prev_root that is not the root before it".into(),
            });
        }
        if let Some((id, digest)) = &g.request {
            if id.is_empty() || id.len() > MAX_REQUEST_ID || id.chars().any(char::is_control) {
                return Err(Rejection::RequestId { index });
            }
            if let Some(original) = in_group.insert(id.as_str(), index) {
                return Err(Rejection::DuplicateRequest {
                    index,
                    id: id.clone(),
                    original,
                });
            }
            if request_digest(e.envelope) != *digest {
                return Err(Rejection::RequestDigest { index });
            }
        }
        let mut terms = Vec::with_capacity(g.terms.len());
        for (tag, value) in &g.terms {
            terms.push((
                index_tag(*tag).ok_or(Rejection::Tag { index, tag: *tag })?,
                value.clone(),
            ));
        }
        ct.append_with(g.leaf_hash, |n| nodes.push(n));
        prepared.push(PreparedEntry {
            index,
            leaf: g.leaf.clone(),
            leaf_hash: g.leaf_hash,
            request: g.request.clone(),
            terms,
            // Filled by the state step (`step_group`), which parses the record.
            tickets: Vec::new(),
        });
    }
    if group.new_size != ct.size() {
        return Err(Rejection::NewSize {
            claimed: group.new_size,
            actual: ct.size(),
        });
    }
    Ok(CheckedGroup {
        prepared,
        nodes,
        tree: ct,
        last_timestamp: last_ts,
    })
}

/// A request id of the group that the store already holds (the original index answers a retry).
fn recorded_request(store: &Store, prepared: &[PreparedEntry]) -> Result<Option<Rejection>, StorageError> {
    for p in prepared {
        if let Some((id, _)) = &p.request
            && let Some((original, _)) = store.request(id).map_err(|e| sm_err(ErrorVerb::Read, e))?
        {
            return Ok(Some(Rejection::DuplicateRequest {
                index: p.index,
                id: id.clone(),
                original,
            }));
        }
    }
    Ok(None)
}

fn apply_all(inner: &mut Inner, entries: Vec<LogEntry>) -> Result<Vec<ApplyOutcome>, StorageError> {
    let mut out = Vec::with_capacity(entries.len());
    // Applied log id / membership changed since the last write to the store.
    let mut dirty = false;
    for e in entries {
        let log_id = e.log_id;
        let mut membership = inner.membership.clone();
        let outcome = match e.payload {
            EntryPayload::Blank => ApplyOutcome::NoGroup {
                size: inner.tree.size(),
            },
            EntryPayload::Membership(m) => {
                membership = StoredMembership::new(Some(log_id), m);
                ApplyOutcome::NoGroup {
                    size: inner.tree.size(),
                }
            }
            EntryPayload::Normal(request) => {
                let (outcome, written) = match request {
                    LedgerRequest::Group(group) => {
                        let outcome = apply_group(inner, log_id, &membership, &group)?;
                        let written = matches!(outcome, ApplyOutcome::Applied { .. });
                        (outcome, written)
                    }
                    LedgerRequest::Checkpoint { size, note } => {
                        apply_checkpoint(inner, log_id, &membership, size, &note)?
                    }
                    LedgerRequest::Cosigned { size, note, witnessed } => {
                        apply_cosigned(inner, log_id, &membership, size, &note, witnessed)?
                    }
                };
                if written {
                    // The applied log id and membership went into the same batch.
                    inner.applied = Some(log_id);
                    inner.membership = membership;
                    dirty = false;
                    out.push(outcome);
                    continue;
                }
                outcome
            }
        };
        inner.applied = Some(log_id);
        inner.membership = membership;
        dirty = true;
        out.push(outcome);
    }
    if dirty {
        write_applied(inner)?;
    }
    Ok(out)
}

/// Applies one group: the structural checks ([`check_group`]), request ids against the store, then
/// the ledger rules (the same state step as the single node's sequencer, start-up and the verifier,
/// signatures verified, timestamps from the entries); commits it with the applied log id. A group
/// that breaks a rule is answered as a rejection, the state as it was before it.
fn apply_group(
    inner: &mut Inner,
    log_id: LogId,
    membership: &StoredMembership,
    group: &SequencedGroup,
) -> Result<ApplyOutcome, StorageError> {
    let size = inner.tree.size();
    let rejected = |reason| Ok(ApplyOutcome::Rejected { size, reason });
    let CheckedGroup {
        mut prepared,
        nodes,
        tree: ct,
        last_timestamp,
    } = match check_group(&inner.tree, inner.last_ts, group) {
        Ok(p) => p,
        Err(reason) => return rejected(reason),
    };
    if let Some(reason) = recorded_request(inner.store()?, &prepared)? {
        return rejected(reason);
    }
    if let Err((position, reason)) = step_group(&mut inner.state, &mut prepared) {
        if position > 0 {
            // Earlier entries of the group changed the state: fold it again from the store.
            let store = inner.store()?;
            let (state, _) = fold_store(store, size).map_err(|x| sm_err(ErrorVerb::Read, x))?;
            inner.state = state;
        }
        return rejected(reason);
    }
    let meta = encode(&(Some(log_id), membership)).map_err(|x| sm_err(ErrorVerb::Write, x))?;
    inner
        .store()?
        .commit_group_with_meta(&prepared, &nodes, ct.size(), None, &[(APPLIED_META, &meta)])
        .map_err(|x| StorageError::from(StorageIOError::apply(log_id, AnyError::error(x.to_string()))))?;
    if let Some(st) = inner.state.as_mut() {
        st.observe_size(ct.size(), &ct.root());
        // The group's rated tickets are in the store's ticket index now (its journal rode in the
        // same batch): look them up there instead of holding them (memory stays flat).
        let store = inner
            .store
            .as_ref()
            .ok_or_else(|| sm_err(ErrorVerb::Read, "the ledger store is closed"))?;
        back_tickets(st, store, ct.size());
    }
    inner.last_ts = last_timestamp;
    inner.tree = ct;
    inner.applied = Some(log_id);
    Ok(ApplyOutcome::Applied {
        first_index: size,
        new_size: inner.tree.size(),
    })
}

/// Opens a checkpoint note of `size` with the node key in force for that size in the applied
/// registry (`Registry::checkpoint_key`: after a `node.rotate`, the new key), refusing a key that a
/// `node.compromise` declared compromised for that size, as the verifier does.
fn open_for_size(state: Option<&LedgerState>, size: u64, note: &str) -> Result<SignedCheckpoint, Rejection> {
    let bad = |detail: String| Rejection::CheckpointSignature { size, detail };
    let reg = &state
        .ok_or_else(|| bad("the applied log has no valid charter".into()))?
        .registry;
    let key = reg.checkpoint_key(size);
    if let Some(c) = reg.compromised_checkpoint(&key, size) {
        return Err(bad(format!(
            "the node key in force for this size was declared compromised as of index {} (record {})",
            c.as_of, c.at
        )));
    }
    let v = NoteVerifier::new(&reg.charter.origin, key).map_err(|e| bad(e.to_string()))?;
    let cp = open_checkpoint(note, &v).map_err(|e| bad(format!("not signed by the node key in force: {e}")))?;
    if cp.checkpoint.size != size {
        return Err(bad(format!("the note signs size {}", cp.checkpoint.size)));
    }
    Ok(cp)
}

/// The applied tree's root at `size` (at most the applied size), from the stored hashes.
fn root_at(inner: &Inner, size: u64) -> Result<Hash, StorageError> {
    if size == inner.tree.size() {
        return Ok(inner.tree.root());
    }
    ledger_core::merkle::root_from_source(&**inner.store()?, size).map_err(|e| sm_err(ErrorVerb::Read, e))
}

fn read_err(e: impl ToString) -> StorageError {
    sm_err(ErrorVerb::Read, e)
}

/// Applies a signed checkpoint: size applied and above 0, signed by the node key in force for it,
/// the applied root at that size, extending the latest stored checkpoint; stored with the applied
/// log id in one batch. Returns the outcome and whether it wrote (with the applied id).
fn apply_checkpoint(
    inner: &mut Inner,
    log_id: LogId,
    membership: &StoredMembership,
    size: u64,
    note: &str,
) -> Result<(ApplyOutcome, bool), StorageError> {
    let applied = inner.tree.size();
    let rejected = |reason| Ok((ApplyOutcome::Rejected { size: applied, reason }, false));
    if size == 0 || size > applied {
        return rejected(Rejection::CheckpointSize { size, applied });
    }
    let cp = match open_for_size(inner.state.as_ref(), size, note) {
        Ok(cp) => cp,
        Err(r) => return rejected(r),
    };
    if cp.checkpoint.root != root_at(inner, size)? {
        return rejected(Rejection::CheckpointRoot { size });
    }
    let store = inner.store()?;
    if let Some((latest, latest_note)) = store.latest_checkpoint().map_err(read_err)? {
        let latest_body = Note::parse(&latest_note).map(|n| n.text).unwrap_or_default();
        if size < latest || (size == latest && latest_body != cp.note.text) {
            return rejected(Rejection::CheckpointStale { size, latest });
        }
        if size == latest {
            // The same checkpoint again (a retry): already stored, perhaps with cosignatures.
            return Ok((ApplyOutcome::CheckpointStored { size, witnessed: false }, false));
        }
        // The latest stored checkpoint must be of this tree (the new one then extends it).
        let latest_root = ledger_core::checkpoint::Checkpoint::from_body(&latest_body).map(|c| c.root);
        if latest_root.ok() != Some(root_at(inner, latest)?) {
            return rejected(Rejection::CheckpointStale { size, latest });
        }
    }
    let meta = encode(&(Some(log_id), membership)).map_err(|x| sm_err(ErrorVerb::Write, x))?;
    inner
        .store()?
        .commit_group_with_meta(&[], &[], applied, Some((size, note)), &[(APPLIED_META, &meta)])
        .map_err(|x| StorageError::from(StorageIOError::apply(log_id, AnyError::error(x.to_string()))))?;
    Ok((ApplyOutcome::CheckpointStored { size, witnessed: false }, true))
}

/// Applies a cosigned checkpoint: the stored checkpoint of `size` with signature lines only added,
/// every line claiming an enrolled witness valid, `witnessed` only with the charter's quorum of
/// enrolled witnesses and not below the latest witnessed checkpoint; stored with the applied log
/// id in one batch.
fn apply_cosigned(
    inner: &mut Inner,
    log_id: LogId,
    membership: &StoredMembership,
    size: u64,
    note: &str,
    witnessed: bool,
) -> Result<(ApplyOutcome, bool), StorageError> {
    let applied = inner.tree.size();
    let rejected = |reason| Ok((ApplyOutcome::Rejected { size: applied, reason }, false));
    let bad = |detail: String| Rejection::Cosigned { size, detail };
    let store = inner.store()?;
    let Some(stored) = store.checkpoint(size).map_err(read_err)? else {
        return rejected(bad("no checkpoint of this size is stored".into()));
    };
    let cp = match open_for_size(inner.state.as_ref(), size, note) {
        Ok(cp) => cp,
        Err(r) => return rejected(r),
    };
    let stored_note = Note::parse(&stored).map_err(read_err)?;
    if stored_note.text != cp.note.text {
        return rejected(bad("its body is not the stored checkpoint's".into()));
    }
    if let Some(s) = stored_note.signatures.iter().find(|s| !cp.note.signatures.contains(s)) {
        return rejected(bad(format!(
            "it drops the stored signature line of {:?} (cosignatures are only added)",
            s.name
        )));
    }
    let Some(reg) = inner.state.as_ref().map(|st| &st.registry) else {
        return rejected(bad("the applied log has no valid charter".into()));
    };
    let cosigners = match cp.note.verify_cosignatures(&reg.witnesses()) {
        Ok(c) => c.len(),
        Err(e) => {
            return rejected(bad(format!(
                "a cosignature by an enrolled witness does not verify: {e}"
            )));
        }
    };
    let quorum = reg.charter.policy.witness_quorum;
    if witnessed && (quorum == 0 || (cosigners as u64) < u64::from(quorum)) {
        return rejected(bad(format!(
            "claimed witnessed with {cosigners} enrolled cosigners, the quorum is {quorum}"
        )));
    }
    let latest_witnessed = store.latest_witnessed().map_err(read_err)?;
    if witnessed
        && let Some((w, _)) = &latest_witnessed
        && size < *w
    {
        return rejected(bad(format!("the latest witnessed checkpoint is of size {w}")));
    }
    let unchanged = stored == note && (!witnessed || latest_witnessed.is_some_and(|(w, n)| w == size && n == note));
    if unchanged {
        return Ok((ApplyOutcome::CheckpointStored { size, witnessed }, false));
    }
    let meta = encode(&(Some(log_id), membership)).map_err(|x| sm_err(ErrorVerb::Write, x))?;
    store
        .put_cosigned_checkpoint_with_meta(size, note, witnessed, &[(APPLIED_META, &meta)])
        .map_err(|x| StorageError::from(StorageIOError::apply(log_id, AnyError::error(x.to_string()))))?;
    Ok((ApplyOutcome::CheckpointStored { size, witnessed }, true))
}

/// The ledger state step for each entry of a checked group (the charter makes the genesis
/// state), recording in each prepared entry the ticket its record rates (the store indexes it).
/// On a failure: the position in the group and the rejection.
fn step_group(state: &mut Option<LedgerState>, prepared: &mut [PreparedEntry]) -> Result<(), (usize, Rejection)> {
    for (position, p) in prepared.iter_mut().enumerate() {
        let index = p.index;
        let rule = |detail: String| (position, Rejection::Rule { index, detail });
        let e = Entry::decode(&p.leaf).map_err(|x| rule(x.to_string()))?;
        if index == 0 {
            *state = Some(LedgerState::genesis(&e).map_err(|x| rule(x.to_string()))?);
            continue;
        }
        let st = state
            .as_mut()
            .ok_or_else(|| rule("the log has no valid charter".into()))?;
        st.observe_size(index, &e.prev_root);
        let record = st
            .step_stored(&e, &p.leaf_hash, true)
            .map_err(|x| rule(x.to_string()))?;
        p.tickets = ledger_core::rules::tickets::record_ticket(&record)
            .into_iter()
            .collect();
    }
    Ok(())
}

/// Rated tickets are forgotten from memory every this many folded entries (they are in the
/// store's ticket index by then).
const FOLD_FORGET_EVERY: u64 = 65_536;

/// Makes `store`'s ticket index the backing of the state's rated tickets and forgets those below
/// `size` from memory (they are in the index: their groups were committed with them).
fn back_tickets(state: &mut LedgerState, store: &Arc<Store>, size: u64) {
    let tickets = &mut state.domain.elections.tickets;
    tickets.set_backing(Arc::new(ledger_store::tickets::StoreTickets::new(store.clone())));
    tickets.forget_below(size);
}

/// Folds the stored log (first `size` entries) into the ledger state, as the node does at start-up:
/// an entry that breaks a rule (a log written under older rules) is left out of the state and
/// counted. Returns the state (none without a valid charter) and that count.
///
/// Rated tickets are kept in the store's ticket index, not in memory: one the index lacks (a
/// store imported or rebuilt without them) is put there as the fold meets it, unless the store
/// records that every ticket below [`Store::tickets_checked`] is indexed.
///
/// One pass: `store` is shared, so it cannot be closed and reopened to free the pages sled read
/// (memory grows with the log, as before issue 14's CSTART). A fold that owns its store
/// ([`fold_store_reopening`]) reopens it between passes.
///
/// # Errors
/// On storage failure or an entry that does not decode.
pub fn fold_store(store: &Arc<Store>, size: u64) -> Result<(Option<LedgerState>, u64), String> {
    let f = fold_passes(store.clone(), size, u64::MAX)?;
    Ok((f.state, f.left_out))
}

/// What [`fold_store_reopening`] gives back.
pub struct Folded {
    /// The store (reopened, when it was).
    pub store: Arc<Store>,
    /// The ledger state (none without a valid charter); its rated tickets are backed by `store`.
    pub state: Option<LedgerState>,
    /// Entries that break a rule, left out of the state.
    pub left_out: u64,
    /// Times the store was closed and reopened between two passes.
    pub reopens: u64,
}

/// [`fold_store`] of a store the fold owns, in passes of at least `budget` bytes of entries
/// (ending at an entry bundle boundary), closing and reopening the store between two of them
/// ([`Store::reopen`]): sled keeps in memory every page a scan reads until the store is closed,
/// so a fold in one pass grew with the log (issue 14, docs/performance.md "Cluster start-up
/// memory"). Every entry is folded exactly once and in order: the state, the left-out count and
/// the ticket index are those of one pass. The state machine's open (and a snapshot install's
/// fold of the imported store) reopen every [`ledger_store::scan::NODE_SCAN_BYTES`], or
/// `LEDGER_SCAN_BYTES` ([`ledger_store::scan::scan_bytes`]).
///
/// # Errors
/// As [`fold_store`], and a failed reopen (the store is then closed).
pub fn fold_store_reopening(store: Store, size: u64, budget: u64) -> Result<Folded, String> {
    fold_passes(Arc::new(store), size, budget.max(1))
}

/// The state's ticket backing while the fold reopens the store: it holds no store handle (a
/// handle would keep the store open); the fold looks nothing up meanwhile.
struct Reopening;

impl ledger_core::rules::TicketBacking for Reopening {
    fn ticket_index(&self, _: &[u8; 32], _: u64) -> Result<Option<u64>, ledger_core::rules::TicketLookupError> {
        Err(ledger_core::rules::TicketLookupError(
            "the store is being reopened".to_string(),
        ))
    }
}

/// The fold in passes of `budget` bytes of entries; between two passes the store is reopened
/// when the fold holds its only handle, else left as it is (memory as one pass).
fn fold_passes(mut store: Arc<Store>, size: u64, budget: u64) -> Result<Folded, String> {
    let charter = match store.entries(0, size).next() {
        None => None,
        Some(first) => {
            let (_, bytes) = first.map_err(|e| e.to_string())?;
            Some(Entry::decode(&bytes).map_err(|e| format!("entry 0: {e}"))?)
        }
    };
    let Some(charter) = charter else {
        return Ok(Folded {
            store,
            state: None,
            left_out: 0,
            reopens: 0,
        });
    };
    let Ok(mut state) = LedgerState::genesis(&charter) else {
        return Ok(Folded {
            store,
            state: None,
            left_out: size,
            reopens: 0,
        });
    };
    back_tickets(&mut state, &store, 1);
    let checked = store.tickets_checked().map_err(|e| e.to_string())?;
    let mut unindexed: Vec<([u8; 32], u64)> = Vec::new();
    let mut left_out = 0u64;
    let mut reopens = 0u64;
    let mut next = 1u64;
    while next < size {
        let from = next;
        let mut read = 0u64;
        for r in store.entries(from, size) {
            let (index, bytes) = r.map_err(|e| e.to_string())?;
            read = read.saturating_add(bytes.len() as u64);
            let e = Entry::decode(&bytes).map_err(|x| format!("entry {index}: {x}"))?;
            state.observe_size(index, &e.prev_root);
            match state.step_stored(&e, &ledger_core::hash::leaf_hash(&bytes), false) {
                Ok(record) => {
                    if index >= checked
                        && let Some(t) = ledger_core::rules::tickets::record_ticket(&record)
                        && store.ticket_index(&t).map_err(|e| e.to_string())? != Some(index)
                    {
                        unindexed.push((t, index));
                    }
                }
                Err(ledger_core::state::StepError::StateLookup(err)) => return Err(format!("entry {index}: {err}")),
                Err(_) => left_out += 1,
            }
            if index.is_multiple_of(FOLD_FORGET_EVERY) {
                store.put_tickets(&unindexed).map_err(|e| e.to_string())?;
                unindexed.clear();
                state.domain.elections.tickets.forget_below(index + 1);
            }
            next = index + 1;
            if read >= budget && next.is_multiple_of(ledger_store::layout::BUNDLE_ENTRIES) {
                break;
            }
        }
        if next >= size || next == from {
            break;
        }
        // Between two passes: the tickets met so far go to the index, and the state lets go of
        // its handle on the store, so that the fold holds the only one and may reopen it.
        store.put_tickets(&unindexed).map_err(|e| e.to_string())?;
        unindexed.clear();
        state.domain.elections.tickets.forget_below(next);
        state.domain.elections.tickets.set_backing(Arc::new(Reopening));
        store = match Arc::try_unwrap(store) {
            Ok(s) => {
                reopens += 1;
                Arc::new(s.reopen().map_err(|e| format!("reopening the store: {e}"))?)
            }
            Err(shared) => shared,
        };
        back_tickets(&mut state, &store, next);
    }
    store.put_tickets(&unindexed).map_err(|e| e.to_string())?;
    state.domain.elections.tickets.forget_below(size);
    let root = store.compact_tree().map_err(|e| e.to_string())?.root();
    state.observe_size(size, &root);
    Ok(Folded {
        store,
        state: Some(state),
        left_out,
        reopens,
    })
}

/// Timestamp of the last entry of the first `size` (0 for an empty log).
fn last_timestamp(store: &Store, size: u64) -> Result<u64, String> {
    match size.checked_sub(1) {
        None => Ok(0),
        Some(i) => store
            .timestamp(i)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("entry {i} missing")),
    }
}

/// Writes the applied log id and membership alone (one batch, one flush).
fn write_applied(inner: &Inner) -> Result<(), StorageError> {
    let meta = encode(&(&inner.applied, &inner.membership)).map_err(|x| sm_err(ErrorVerb::Write, x))?;
    inner
        .store()?
        .commit_group_with_meta(&[], &[], inner.tree.size(), None, &[(APPLIED_META, &meta)])
        .map_err(|x| sm_err(ErrorVerb::Write, x))
}

fn read_record(raft: &Path) -> Result<Option<SnapshotRecord>, String> {
    match std::fs::read(raft.join(SNAPSHOT_META)) {
        Ok(b) => decode(&b).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

fn snapshot_seq(name: &str) -> Option<u64> {
    name.strip_prefix("snapshot-")?.strip_suffix(".export")?.parse().ok()
}

/// Removes snapshot files the record does not name (interrupted builds and installs, received
/// streams); returns the highest sequence number seen.
fn clean_snapshot_files(raft: &Path, keep: Option<&str>) -> std::io::Result<u64> {
    let mut seq = 0;
    for e in std::fs::read_dir(raft)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let n = snapshot_seq(&name).or_else(|| name.strip_prefix("incoming-").and_then(|s| s.parse().ok()));
        if let Some(n) = n {
            seq = seq.max(n);
            if Some(name.as_str()) != keep {
                std::fs::remove_file(e.path())?;
            }
        } else if name == "snapshot.meta.tmp" {
            std::fs::remove_file(e.path())?;
        }
    }
    Ok(seq)
}

/// Makes `record` the current snapshot (atomic rename), then removes the other snapshot files.
fn write_record(raft: &Path, record: &SnapshotRecord) -> Result<(), String> {
    let b = encode(record)?;
    let tmp = raft.join("snapshot.meta.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| e.to_string())?;
    f.write_all(&b).map_err(|e| e.to_string())?;
    f.sync_all().map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, raft.join(SNAPSHOT_META)).map_err(|e| e.to_string())?;
    sync_dir(raft).map_err(|e| e.to_string())?;
    clean_snapshot_files(raft, Some(&record.file)).map_err(|e| e.to_string())?;
    Ok(())
}

/// Finishes or discards a snapshot install a crash interrupted. The install directory is complete
/// once the first rename (ledger → `.old`) happened, so: no ledger directory but an install
/// directory → finish the swap; both → the import did not finish, discard it.
fn recover_swap(paths: &Paths) -> std::io::Result<()> {
    let (install, old) = (paths.install(), paths.old());
    if install.exists() {
        if paths.ledger.exists() {
            std::fs::remove_dir_all(&install)?;
        } else {
            std::fs::rename(&install, &paths.ledger)?;
        }
    }
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    if let Some(parent) = paths.ledger.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(())
}

fn build_snapshot_locked(inner: &mut Inner, raft: &Path) -> Result<Snapshot<TypeConfig>, StorageError> {
    inner.seq += 1;
    let store = inner.store()?;
    let file = format!("snapshot-{}.export", inner.seq);
    let path = raft.join(&file);
    let w = |e: &dyn std::fmt::Display| snap_err(ErrorVerb::Write, e.to_string());
    let f = std::fs::File::create(&path).map_err(|e| w(&e))?;
    let mut bw = BufWriter::new(CappedWriter { w: f, written: 0 });
    let (size, _) = ledger_store::export::export(store, &mut bw).map_err(|e| w(&e))?;
    crate::snapshot::write_requests(store, &mut bw).map_err(|e| w(&e))?;
    let capped = bw.into_inner().map_err(|e| w(&e.error().to_string()))?;
    capped.w.sync_all().map_err(|e| w(&e))?;
    if size != inner.tree.size() {
        return Err(w(&format!("exported {size} entries, applied {}", inner.tree.size())));
    }
    let meta = SnapshotMeta {
        last_log_id: inner.applied,
        last_membership: inner.membership.clone(),
        snapshot_id: match &inner.applied {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, inner.seq),
            None => format!("none-{}", inner.seq),
        },
    };
    let record = SnapshotRecord {
        meta: meta.clone(),
        file,
        len: capped.written,
    };
    write_record(raft, &record).map_err(|e| w(&e))?;
    let data = std::fs::File::open(&path).map_err(|e| w(&e))?;
    Ok(Snapshot {
        meta,
        snapshot: Box::new(tokio::fs::File::from_std(data)),
    })
}

/// A writer that fails past [`MAX_SNAPSHOT_BYTES`].
struct CappedWriter<W: Write> {
    w: W,
    written: u64,
}

impl<W: Write> Write for CappedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.written + buf.len() as u64 > MAX_SNAPSHOT_BYTES {
            return Err(std::io::Error::other(format!(
                "snapshot exceeds the cap of {MAX_SNAPSHOT_BYTES} bytes"
            )));
        }
        let n = self.w.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

/// Installs the export stream in `data` (a local file) as the ledger: import into a fresh
/// directory with the Raft metadata, then swap directories.
fn install_locked(
    inner: &mut Inner,
    paths: &Paths,
    meta: &SnapshotMeta<u64, crate::types::LedgerNode>,
    file: String,
    len: u64,
) -> Result<(), StorageError> {
    let w = |e: &dyn std::fmt::Display| snap_err(ErrorVerb::Write, e.to_string());
    let install = paths.install();
    if install.exists() {
        std::fs::remove_dir_all(&install).map_err(|e| w(&e))?;
    }
    let (size, tree) = {
        let fresh = Store::open(&install).map_err(|e| w(&e))?;
        let src = std::fs::File::open(paths.raft.join(&file)).map_err(|e| w(&e))?;
        let mut br = BufReader::new(src);
        let size = ledger_store::export::import(&fresh, &mut br)
            .map_err(|e| w(&format!("the snapshot does not import: {e}")))?;
        let end = crate::snapshot::read_requests(&mut br, |batch| restore_requests(&fresh, size, batch))
            .map_err(|e| w(&format!("the snapshot does not import: {e}")))?;
        if let Some((wsize, note)) = end.witnessed {
            // The witnessed marker names a checkpoint the import verified, byte for byte.
            if fresh.checkpoint(wsize).map_err(|e| w(&e))?.as_deref() != Some(note.as_str()) {
                return Err(w(&format!(
                    "the snapshot does not import: its witnessed checkpoint of size {wsize} is not a checkpoint it holds"
                )));
            }
            fresh.put_cosigned_checkpoint(wsize, &note, true).map_err(|e| w(&e))?;
        }
        let applied = encode(&(&meta.last_log_id, &meta.last_membership)).map_err(|e| w(&e))?;
        fresh
            .commit_group_with_meta(&[], &[], size, None, &[(APPLIED_META, &applied)])
            .map_err(|e| w(&e))?;
        let tree = fresh.compact_tree().map_err(|e| w(&e))?;
        (size, tree)
    };
    // The ledger state of the imported log, folded before the swap (the live ledger is untouched
    // until then).
    let (mut state, last_ts) = {
        // The fold owns the only handle on the imported store: it reopens it between passes.
        let fresh = Store::open(&install).map_err(|e| w(&e))?;
        let Folded {
            store: fresh,
            mut state,
            reopens,
            ..
        } = fold_store_reopening(fresh, size, paths.scan_bytes).map_err(|e| w(&e))?;
        tracing::info!(size, reopens, "installed snapshot folded");
        if let Some(st) = state.as_mut() {
            // The fold forgot every ticket into `fresh`'s index; drop its handle on `fresh` (the
            // directory is reopened after the swap, and sled allows one opener), the backing is
            // set to the reopened store below.
            st.domain.elections.tickets = ledger_core::rules::tickets::TicketSet::new();
        }
        (state, last_timestamp(&fresh, size).map_err(|e| w(&e))?)
    };
    // Swap: close the old store, ledger → .old, .install → ledger, then remove .old. A reader that
    // still holds the old store (`StateMachine::store`) keeps its open files until it drops it
    // (on Unix a removed file stays readable while open); it reads the old, shorter log meanwhile.
    drop(inner.store.take());
    let old = paths.old();
    std::fs::rename(&paths.ledger, &old).map_err(|e| w(&e))?;
    std::fs::rename(&install, &paths.ledger).map_err(|e| w(&e))?;
    if let Some(parent) = paths.ledger.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent).map_err(|e| w(&e))?;
    }
    std::fs::remove_dir_all(&old).map_err(|e| w(&e))?;
    let store = Store::open(&paths.ledger).map_err(|e| w(&e))?;
    if store.size().map_err(|e| w(&e))? != size {
        return Err(w(&"the installed store does not hold the snapshot's size"));
    }
    let store = Arc::new(store);
    if let Some(st) = state.as_mut() {
        back_tickets(st, &store, size);
    }
    inner.store = Some(store);
    inner.tree = tree;
    inner.state = state;
    inner.last_ts = last_ts;
    inner.applied = meta.last_log_id;
    inner.membership = meta.last_membership.clone();
    write_record(
        &paths.raft,
        &SnapshotRecord {
            meta: meta.clone(),
            file,
            len,
        },
    )
    .map_err(|e| w(&e))
}

/// Checks request ids from a snapshot against the imported entries (each names an entry below the
/// size whose envelope has that digest), then records them.
fn restore_requests(store: &Store, size: u64, batch: Vec<([u8; 32], u64, Hash)>) -> Result<(), String> {
    for (key, index, digest) in &batch {
        let id = Hash(*key).to_hex();
        if *index >= size {
            return Err(format!(
                "request id {id:?} names entry {index}, the snapshot holds {size}"
            ));
        }
        let bytes = store
            .entry(*index)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("entry {index} missing"))?;
        let e = Entry::decode(&bytes).map_err(|e| e.to_string())?;
        if request_digest(e.envelope) != *digest {
            return Err(format!("request id {id:?}: the digest is not that of entry {index}"));
        }
    }
    store.put_requests(&batch).map_err(|e| e.to_string())
}

/// The digest a request id is recorded with: SHA-256 of the envelope's encoding in an entry with
/// zero index, time and chain link (as the node's sequencer computes it).
pub fn request_digest(envelope: ledger_core::dsse::Envelope) -> Hash {
    Hash::digest(
        &Entry {
            index: 0,
            timestamp_micros: 0,
            prev_root: Hash::default(),
            envelope,
        }
        .encode(),
    )
}

/// Longest request id a group may carry (the node's limit, `ledger-node` `MAX_REQUEST_ID`).
pub const MAX_REQUEST_ID: usize = 128;

/// Builds snapshots of the state machine it came from.
pub struct SnapshotBuilder {
    sm: StateMachine,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (inner, paths) = (self.sm.inner.clone(), self.sm.paths.clone());
        // Under the lock: the export, the applied log id and the membership are of the same state.
        tokio::task::spawn_blocking(move || build_snapshot_locked(&mut *lock(&inner)?, &paths.raft))
            .await
            .map_err(|e| snap_err(ErrorVerb::Write, e))?
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let g = lock(&self.inner)?;
        Ok((g.applied, g.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ApplyOutcome>, StorageError>
    where
        I: IntoIterator<Item = LogEntry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<LogEntry> = entries.into_iter().collect();
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || apply_all(&mut *lock(&inner)?, entries))
            .await
            .map_err(|e| sm_err(ErrorVerb::Write, e))?
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder { sm: self.clone() }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        let n = {
            let mut g = lock(&self.inner)?;
            g.seq += 1;
            g.seq
        };
        let f = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.paths.raft.join(format!("incoming-{n}")))
            .await
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        Ok(Box::new(f))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, crate::types::LedgerNode>,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        let mut src = snapshot.into_std().await;
        let (inner, paths, meta) = (self.inner.clone(), self.paths.clone(), meta.clone());
        tokio::task::spawn_blocking(move || {
            let w = |e: &dyn std::fmt::Display| snap_err(ErrorVerb::Write, e.to_string());
            let mut g = lock(&inner)?;
            g.seq += 1;
            let file = format!("snapshot-{}.export", g.seq);
            // Copy the received stream into a file of our own (at most the cap), durably.
            std::io::Seek::seek(&mut src, std::io::SeekFrom::Start(0)).map_err(|e| w(&e))?;
            let mut dst = std::fs::File::create(paths.raft.join(&file)).map_err(|e| w(&e))?;
            let len = std::io::copy(&mut (&mut src).take(MAX_SNAPSHOT_BYTES + 1), &mut dst).map_err(|e| w(&e))?;
            if len > MAX_SNAPSHOT_BYTES {
                return Err(w(&format!(
                    "the snapshot exceeds the cap of {MAX_SNAPSHOT_BYTES} bytes"
                )));
            }
            dst.sync_all().map_err(|e| w(&e))?;
            install_locked(&mut g, &paths, &meta, file, len)
        })
        .await
        .map_err(|e| snap_err(ErrorVerb::Write, e))?
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let raft = self.paths.raft.clone();
        let _g = lock(&self.inner)?;
        let Some(record) = read_record(&raft).map_err(|e| snap_err(ErrorVerb::Read, e))? else {
            return Ok(None);
        };
        let f = std::fs::File::open(raft.join(&record.file)).map_err(|e| snap_err(ErrorVerb::Read, e))?;
        Ok(Some(Snapshot {
            meta: record.meta,
            snapshot: Box::new(tokio::fs::File::from_std(f)),
        }))
    }
}
