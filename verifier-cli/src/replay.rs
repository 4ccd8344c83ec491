//! The judging logic: a [`Replayer`] fed entries and checkpoints one at a time, in log order.
//!
//! Pure: no I/O, no threads, no clock. Per-entry work that does not depend on the order
//! (decoding, leaf hash, envelope limits, kind and payload checks, and the cryptographic half of
//! signature checking) is done by [`crate::prepare`] and [`crate::sigs::verify_window`], which the
//! pipeline runs in worker threads; everything that depends on the log before the entry (index
//! sequence, hash chain, timestamps, the key registry, checkpoint roots) is done here, in order.
//!
//! Memory is O(log n) for the tree, plus the pending checkpoint sizes and a bounded fault list.

use crate::fault::{Code, Fault, Faults};
use crate::prepare::{Prepared, PreparedEntry, prepared_signers, registry_code};
use ledger_core::checkpoint::{Checkpoint, open_checkpoint};
use ledger_core::compact::CompactTree;
use ledger_core::entry::Entry;
use ledger_core::hash::{Hash, empty_root};
use ledger_core::note::{Note, NoteVerifier};
use ledger_core::registry::{RegistryError, envelope_kind};
use ledger_core::rules::RuleCode;
use ledger_core::state::{LedgerState, StepError};
use std::collections::BTreeMap;

/// The kinds the node key signs (docs/registry.md).
const NODE_KINDS: &[&str] = &["draw.result", "draw.void", "tally"];

/// Checkpoint notes kept while the node key is not known yet (before the charter is replayed).
const MAX_DEFERRED_NOTES: usize = 1024;

/// Settings of a replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The node key the user trusts (`--trusted-key`); its name is the log origin.
    pub trusted_key: Option<NoteVerifier>,
    /// The origin the user expects (`--origin`).
    pub origin: Option<String>,
    /// Most faults listed in full.
    pub max_faults: usize,
}

/// The result of a replay.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// What the replay trusted.
    pub trust: String,
    /// The charter's origin, if a charter was read.
    pub origin: Option<String>,
    /// The charter's node key as a note verifier key string.
    pub node_key: Option<String>,
    /// Entries processed (hashed into the tree).
    pub entries: u64,
    /// Entries by record kind.
    pub counts_by_kind: BTreeMap<String, u64>,
    /// Size of the recomputed tree.
    pub final_size: u64,
    /// Its root.
    pub final_root: Hash,
    /// False when entries were missing, so the recomputed tree is not the log's.
    pub tree_complete: bool,
    /// Checkpoints whose signature and root were verified.
    pub checkpoints_checked: u64,
    /// Checkpoints that could not be checked (no node key, or the tree is incomplete).
    pub checkpoints_unchecked: u64,
    /// Entries after a chain break whose links also disagree with the recomputed tree.
    pub links_after_break: u64,
    /// The high-water marks checked: (file, checkpoint size) of each that the log holds.
    pub high_water: Vec<(String, u64)>,
    /// Faults.
    pub faults: Faults,
}

/// A high-water mark kept beside the log, checked at the end of the replay.
#[derive(Debug, Clone)]
struct Mark {
    file: String,
    note: String,
    /// The size the note claims (read before its signature is checked).
    size: Option<u64>,
    /// The recomputed root at that size, once the replay reaches it.
    root: Option<Hash>,
}

/// Replays a log in order.
pub struct Replayer {
    opts: ReplayOptions,
    tree: CompactTree,
    expected: u64,
    entries: u64,
    reliable: bool,
    chain_diverged: bool,
    links_after_break: u64,
    last_ts: Option<u64>,
    /// Registry and domain state, folded with the node's own step (`ledger_core::state`); `None`
    /// until a valid charter is read.
    state: Option<LedgerState>,
    charter_decided: bool,
    verifier: Option<NoteVerifier>,
    node_key: Option<String>,
    deferred: Vec<String>,
    pending: BTreeMap<u64, Vec<Hash>>,
    /// Pending checkpoints (size, the key that verified them on arrival): once the log reaches
    /// the size, that key must be the node key for it (a `node.rotate` in between moves it).
    pending_keys: Vec<(u64, ed25519_dalek::VerifyingKey)>,
    /// Checkpoints beyond the log's current size that do not verify under the latest node key:
    /// they may be signed by a key a later `node.rotate` brings in, so they are judged when the
    /// log reaches their size (or at the end).
    future_notes: Vec<(u64, String)>,
    checkpoints_checked: u64,
    checkpoints_unchecked: u64,
    /// Node records accepted (index, kind): a later `node.compromise` may name them.
    node_records: Vec<(u64, &'static str)>,
    /// Checkpoints whose signature verified (size, key): a later `node.compromise` may name them.
    signed_checkpoints: Vec<(u64, ed25519_dalek::VerifyingKey)>,
    kinds: BTreeMap<String, u64>,
    marks: Vec<Mark>,
    faults: Faults,
    /// The temporary index that holds the rated tickets (`crate::tickets`).
    tickets: Option<crate::tickets::TicketSpill>,
    /// Why the replay could not go on (the ticket index failed): an error, not a fault of the log.
    failure: Option<String>,
}

impl Replayer {
    /// A replayer for a log that starts at entry 0.
    pub fn new(opts: ReplayOptions) -> Self {
        let faults = Faults::new(opts.max_faults);
        Self {
            verifier: opts.trusted_key.clone(),
            opts,
            tree: CompactTree::new(),
            expected: 0,
            entries: 0,
            reliable: true,
            chain_diverged: false,
            links_after_break: 0,
            last_ts: None,
            state: None,
            charter_decided: false,
            node_key: None,
            deferred: Vec::new(),
            pending: BTreeMap::new(),
            pending_keys: Vec::new(),
            future_notes: Vec::new(),
            checkpoints_checked: 0,
            checkpoints_unchecked: 0,
            node_records: Vec::new(),
            signed_checkpoints: Vec::new(),
            kinds: BTreeMap::new(),
            marks: Vec::new(),
            faults,
            tickets: None,
            failure: None,
        }
    }

    /// Why the replay could not be completed (the temporary ticket index failed), if it could not.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Adds a high-water mark (a signed checkpoint the log must hold, kept outside the store):
    /// at the end, a log shorter than it or with another root at its size is a `ROLLBACK`. Call
    /// before feeding entries.
    pub fn high_water(&mut self, file: String, note: String) {
        let size = ledger_store::high_water::claimed_size(&note);
        let root = (size == Some(0)).then(empty_root);
        self.marks.push(Mark { file, note, size, root });
    }

    /// Entries processed so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Faults found so far.
    pub fn fault_count(&self) -> u64 {
        self.faults.total()
    }

    fn fault(&mut self, f: Fault) {
        self.faults.push(f);
    }

    /// Feeds any prepared item.
    pub fn feed(&mut self, p: Prepared) {
        match p {
            Prepared::Entry(e) => self.entry(*e),
            Prepared::Checkpoint(n) => self.checkpoint(&n),
        }
    }

    /// Feeds the next entry.
    pub fn entry(&mut self, p: PreparedEntry) {
        if self.failure.is_some() {
            return;
        }
        let Some(index) = self.sequence(&p) else { return };
        self.leaf_checks(index, &p);
        self.tree.append(p.leaf_hash);
        self.reach_pending();
        self.mark_roots();
        self.step(index, p);
        // After the entry's step, as the node does.
        let (size, root) = (self.tree.size(), self.tree.root());
        if let Some(st) = self.state.as_mut() {
            st.observe_size(size, &root);
        }
        self.reach_rotations(size);
    }

    /// After the step of the entry that brings the log to `size`: the pending checkpoints of
    /// this size must have been verified under the node key for it, and the ones held back
    /// (perhaps signed by a key this step brought in) are judged now.
    fn reach_rotations(&mut self, size: u64) {
        let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending_keys)
            .into_iter()
            .partition(|(s, _)| *s <= size);
        self.pending_keys = later;
        for (s, key) in now {
            if let Some(v) = self.verifier_for(s)
                && v.key != key
            {
                let f = Fault::new(Some(s), Code::CheckpointBadSignature, self.wrong_key_message(s, &key)).evidence(
                    v.to_string_key(),
                    NoteVerifier::new(&v.name, key)
                        .map(|k| k.to_string_key())
                        .unwrap_or_default(),
                );
                self.fault(f);
            }
        }
        if self.future_notes.iter().any(|(s, _)| *s <= size) {
            let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.future_notes)
                .into_iter()
                .partition(|(s, _)| *s <= size);
            self.future_notes = later;
            for (_, note) in now {
                self.check_note(&note, false);
            }
        }
    }

    /// The node key that signs the checkpoint of `size`: the trusted (or charter) key until a
    /// `node.rotate` the log has replayed so far hands the node role on (docs/registry.md).
    fn verifier_for(&self, size: u64) -> Option<NoteVerifier> {
        let v = self.verifier.as_ref()?;
        let Some(reg) = self.state.as_ref().map(|s| &s.registry) else {
            return Some(v.clone());
        };
        let key = reg.checkpoint_key(size);
        if reg.node_keys.first().is_none_or(|t| t.key == key) {
            return Some(v.clone());
        }
        NoteVerifier::new(&reg.charter.origin, key).ok()
    }

    /// Why a checkpoint of `size` signed by `key` is refused although `key` is in the chain.
    fn wrong_key_message(&self, size: u64, key: &ed25519_dalek::VerifyingKey) -> String {
        let Some(reg) = self.state.as_ref().map(|s| &s.registry) else {
            return format!("the checkpoint of size {size} is not signed by the node key for that size");
        };
        let ended = reg
            .keys
            .get(&ledger_core::keys::key_id(key))
            .and_then(|k| k.ended)
            .map_or_else(String::new, |(at, how)| format!(" ({how} at index {at})"));
        format!(
            "the checkpoint of size {size} is signed by the node key {}{ended}, not by the node key for that size; \
             a node.rotate record hands the node role on from the next index (docs/registry.md)",
            ledger_core::keys::key_id(key)
        )
    }

    /// The entry's place in the log: its index, checked against where the source holds it and
    /// against the entries before it. `None` when it is skipped (its index goes backwards or
    /// repeats).
    fn sequence(&mut self, p: &PreparedEntry) -> Option<u64> {
        let index = match &p.decoded {
            Ok(d) => d.entry.index,
            Err(_) => p.position.unwrap_or(self.expected),
        };
        if let (Some(pos), Ok(_)) = (p.position, &p.decoded)
            && pos != index
        {
            self.fault(
                Fault::new(
                    Some(pos),
                    Code::MalformedEntry,
                    format!("the source holds under index {pos} an entry whose bytes say index {index}"),
                )
                .evidence(pos, index),
            );
        }
        if let Some(m) = &p.wire_mismatch {
            self.fault(Fault::new(Some(index), Code::MalformedEntry, m.clone()));
        }
        if index < self.expected {
            self.fault(
                Fault::new(
                    Some(index),
                    Code::Reordered,
                    format!(
                        "entry {index} arrives after entry {}: the index goes backwards or repeats; it is skipped",
                        self.expected - 1
                    ),
                )
                .evidence(self.expected, index),
            );
            return None;
        }
        if index > self.expected {
            let first = self.expected;
            self.fault(
                Fault::new(
                    Some(first),
                    Code::MissingEntry,
                    format!(
                        "entries {first}..{} are missing; the replay continues at {index} but can no longer \
                         recompute roots",
                        index - 1
                    ),
                )
                .evidence(first, index),
            );
            self.set_unreliable();
            if first == 0 {
                self.fault(Fault::new(
                    Some(0),
                    Code::BadCharter,
                    "entry 0 (the charter) is missing: registry rules and checkpoint signatures cannot be checked",
                ));
                self.decide_charter();
            }
        }
        self.expected = index.saturating_add(1);
        self.entries += 1;
        Some(index)
    }

    /// The leaf hash the source supplies, and the entry's link to the root of the entries before
    /// it.
    fn leaf_checks(&mut self, index: u64, p: &PreparedEntry) {
        if let Some(s) = &p.supplied_leaf_hash
            && s.as_slice() != p.leaf_hash.0.as_slice()
        {
            self.fault(
                Fault::new(
                    Some(index),
                    Code::LeafHashMismatch,
                    "the leaf hash the source supplies is not SHA-256(0x00 ‖ leaf bytes)",
                )
                .evidence(p.leaf_hash, hex::encode(s)),
            );
        }
        if let Ok(d) = &p.decoded
            && self.reliable
        {
            let root = self.tree.root();
            if d.entry.prev_root == root {
                self.chain_diverged = false;
            } else if self.chain_diverged {
                self.links_after_break += 1;
            } else {
                self.chain_diverged = true;
                self.fault(
                    Fault::new(
                        Some(index),
                        Code::ChainBroken,
                        format!(
                            "prev_root is not the root of entries 0..{index}: this entry or one before it was \
                             altered (later links that disagree for the same reason are counted, not listed)"
                        ),
                    )
                    .evidence(root, d.entry.prev_root),
                );
            }
        }
    }

    /// Records the recomputed root for the high-water marks at the current size.
    fn mark_roots(&mut self) {
        if self.reliable {
            let size = self.tree.size();
            for m in self.marks.iter_mut().filter(|m| m.size == Some(size)) {
                m.root = Some(self.tree.root());
            }
        }
    }

    /// The entry's own checks and its state step.
    fn step(&mut self, index: u64, p: PreparedEntry) {
        let mut d = match p.decoded {
            Ok(d) => d,
            Err(e) => {
                *self.kinds.entry("(malformed)".into()).or_default() += 1;
                self.fault(Fault::new(
                    Some(index),
                    Code::MalformedEntry,
                    format!("not a canonical entry: {e}"),
                ));
                if index == 0 {
                    self.fault(Fault::new(Some(0), Code::BadCharter, "entry 0 does not decode"));
                    self.decide_charter();
                }
                return;
            }
        };
        let kind = envelope_kind(&d.entry.envelope).unwrap_or("(unknown)").to_string();
        let node_kind = NODE_KINDS.iter().copied().find(|k| *k == kind);
        *self.kinds.entry(kind).or_default() += 1;

        let ts = d.entry.timestamp_micros;
        if let Some(last) = self.last_ts
            && ts < last
        {
            self.fault(
                Fault::new(
                    Some(index),
                    Code::TimeRegression,
                    format!("timestamp {ts} is before the previous entry's {last}"),
                )
                .evidence(format!(">= {last}"), ts),
            );
        }
        self.last_ts = Some(ts);

        if index == 0 {
            self.charter(&d.entry);
            return;
        }
        let Some(state) = self.state.as_mut() else {
            return;
        };
        // Signatures (the workers' results), then the node's step: registry, record, domain rules.
        // The payload as `prepare` parsed it (checked there), not parsed again.
        let step = prepared_signers(&state.registry, &d)
            .map_err(StepError::from)
            .and_then(|(_, signers)| match d.parsed.take() {
                Some(parsed) => state.fold_parsed(&d.entry, &p.leaf_hash, parsed, &signers),
                None => state.fold(&d.entry, &p.leaf_hash, &signers),
            });
        match step {
            Ok(record) => {
                if let Some(k) = node_kind {
                    self.node_records.push((index, k));
                }
                if let Some(t) = &self.tickets
                    && let Err(e) = t.folded(state, index, &record)
                {
                    self.failure = Some(e);
                }
            }
            Err(StepError::StateLookup(e)) => self.failure = Some(format!("entry {index}: {e}")),
            Err(StepError::Rule(e)) => self.fault(Fault::new(Some(index), Code::Domain(e.code.as_str()), e.detail)),
            Err(StepError::Record(m)) => self.fault(Fault::new(Some(index), Code::InvalidRecord, m.to_string())),
            Err(StepError::Registry(e)) => {
                let mut f = Fault::new(Some(index), registry_code(&e), e.to_string());
                match &e {
                    RegistryError::MissingRole { needed, held, .. } => f = f.evidence(needed, held),
                    RegistryError::MissingQuorum { need, have, .. } => f = f.evidence(need, have),
                    _ => {}
                }
                self.fault(f);
            }
        }
    }

    fn charter(&mut self, entry: &Entry) {
        let state = match LedgerState::genesis(entry) {
            Ok(s) => s,
            Err(e) => {
                self.fault(Fault::new(Some(0), Code::BadCharter, e.to_string()));
                self.decide_charter();
                return;
            }
        };
        let reg = &state.registry;
        let origin = reg.charter.origin.clone();
        let charter_key = NoteVerifier::new(&origin, reg.node_key).ok();
        self.node_key = charter_key.as_ref().map(NoteVerifier::to_string_key);
        if let Some(t) = &self.opts.trusted_key
            && (t.name != origin || t.key != reg.node_key)
        {
            let found = self.node_key.clone().unwrap_or_else(|| origin.clone());
            let f = Fault::new(
                Some(0),
                Code::UntrustedCharter,
                "the charter's origin and node key are not the trusted key's (--trusted-key)",
            )
            .evidence(t.to_string_key(), found);
            self.fault(f);
        }
        if let Some(o) = &self.opts.origin
            && *o != origin
        {
            let f = Fault::new(
                Some(0),
                Code::UntrustedCharter,
                "the charter's origin is not the expected one (--origin)",
            )
            .evidence(o, &origin);
            self.fault(f);
        }
        if self.verifier.is_none() {
            self.verifier = charter_key;
        }
        let mut state = state;
        match crate::tickets::TicketSpill::attach(&mut state) {
            Ok(t) => self.tickets = Some(t),
            Err(e) => self.failure = Some(e),
        }
        self.state = Some(state);
        self.decide_charter();
    }

    /// The node key is settled (or known to be unavailable): deal with deferred checkpoints.
    fn decide_charter(&mut self) {
        if self.charter_decided {
            return;
        }
        self.charter_decided = true;
        for n in std::mem::take(&mut self.deferred) {
            self.checkpoint(&n);
        }
    }

    fn set_unreliable(&mut self) {
        if self.reliable {
            self.reliable = false;
            self.checkpoints_unchecked += self.pending.values().map(|v| v.len() as u64).sum::<u64>();
            self.pending.clear();
        }
    }

    fn reach_pending(&mut self) {
        let size = self.tree.size();
        if self.pending.first_key_value().is_some_and(|(s, _)| *s == size)
            && let Some(roots) = self.pending.remove(&size)
        {
            for r in roots {
                self.compare_root(size, r);
            }
        }
    }

    fn compare_root(&mut self, size: u64, root: Hash) {
        let mine = if size == 0 { empty_root() } else { self.tree.root() };
        if mine == root {
            self.checkpoints_checked += 1;
        } else {
            self.fault(
                Fault::new(
                    Some(size),
                    Code::CheckpointRootMismatch,
                    format!("the signed checkpoint of size {size} has a root other than the recomputed one"),
                )
                .evidence(mine, root),
            );
        }
    }

    /// Feeds a signed checkpoint note, at the point of the stream where it arrives.
    pub fn checkpoint(&mut self, note: &str) {
        self.check_note(note, true);
    }

    /// [`Self::checkpoint`]; `hold` lets a note beyond the log's current size that does not
    /// verify wait for a rotation that may still come.
    fn check_note(&mut self, note: &str, hold: bool) {
        if self.verifier.is_none() {
            if self.charter_decided || self.deferred.len() >= MAX_DEFERRED_NOTES {
                self.checkpoints_unchecked += 1;
            } else {
                self.deferred.push(note.to_string());
            }
            return;
        }
        let size = Note::parse(note)
            .ok()
            .and_then(|n| Checkpoint::from_body(&n.text).ok())
            .map(|c| c.size);
        let current = self.tree.size();
        let Some(v) = self.verifier_for(size.map_or(current, |s| s.min(current))) else {
            self.checkpoints_unchecked += 1;
            return;
        };
        let cp = match open_checkpoint(note, &v) {
            Ok(cp) => cp.checkpoint,
            Err(e) => {
                if let Some(s) = size
                    && hold
                    && s > current
                    && self.future_notes.len() < MAX_DEFERRED_NOTES
                {
                    self.future_notes.push((s, note.to_string()));
                    return;
                }
                let chained = self.state.as_ref().and_then(|st| {
                    st.registry
                        .node_keys
                        .iter()
                        .filter(|t| t.key != v.key)
                        .find(|t| NoteVerifier::new(&v.name, t.key).is_ok_and(|o| open_checkpoint(note, &o).is_ok()))
                        .map(|t| t.key)
                });
                if let (Some(s), Some(k)) = (size, chained)
                    && let Some(c) = self
                        .state
                        .as_ref()
                        .and_then(|st| st.registry.compromised_checkpoint(&k, s))
                {
                    let f = Fault::new(
                        Some(s),
                        Code::Domain(RuleCode::NodeKeyCompromised.as_str()),
                        format!(
                            "the checkpoint of size {s} is signed by the node key {}, declared compromised as of index {} \
                             by the node.compromise record at index {}; the node key for that size is {}",
                            ledger_core::keys::key_id(&k),
                            c.as_of,
                            c.at,
                            ledger_core::keys::key_id(&v.key)
                        ),
                    )
                    .evidence(v.to_string_key(), ledger_core::keys::key_id(&k));
                    self.fault(f);
                    return;
                }
                if let (Some(s), Some(k)) = (size, chained) {
                    let f = Fault::new(Some(s), Code::CheckpointBadSignature, self.wrong_key_message(s, &k)).evidence(
                        v.to_string_key(),
                        NoteVerifier::new(&v.name, k)
                            .map(|o| o.to_string_key())
                            .unwrap_or_default(),
                    );
                    self.fault(f);
                    return;
                }
                let f = Fault::new(
                    size,
                    Code::CheckpointBadSignature,
                    format!(
                        "checkpoint does not verify with the node key {}: {e}",
                        v.to_string_key()
                    ),
                );
                self.fault(f);
                return;
            }
        };
        let (size, root) = (cp.size, cp.root);
        self.signed_checkpoints.push((size, v.key));
        if !self.reliable {
            self.checkpoints_unchecked += 1;
        } else if size == 0 || size == self.tree.size() {
            self.compare_root(size, root);
        } else if size > self.tree.size() {
            self.pending.entry(size).or_default().push(root);
            self.pending_keys.push((size, v.key));
        } else {
            let f = Fault::new(
                Some(size),
                Code::CheckpointMisplaced,
                format!(
                    "the checkpoint of size {size} arrives after entry {}; its root cannot be compared",
                    self.tree.size() - 1
                ),
            );
            self.fault(f);
        }
    }

    /// Ends the replay. `claimed_size` is the size the source says it holds, if it says one.
    pub fn finish(mut self, claimed_size: Option<u64>) -> Outcome {
        if self.entries == 0 {
            self.fault(Fault::new(
                None,
                Code::BadCharter,
                "the log has no entries, so no charter",
            ));
        }
        self.decide_charter();
        self.checkpoints_unchecked += self.deferred.len() as u64;
        for (_, note) in std::mem::take(&mut self.future_notes) {
            self.check_note(&note, false);
        }
        if let Some((&max, _)) = self.pending.last_key_value() {
            let end = self.expected;
            self.checkpoints_unchecked += self.pending.values().map(|v| v.len() as u64).sum::<u64>();
            self.fault(
                Fault::new(
                    Some(end),
                    Code::MissingEntry,
                    format!("a signed checkpoint commits to {max} entries but the log ends at {end}"),
                )
                .evidence(max, end),
            );
        }
        let high_water = self.check_marks();
        self.name_compromised();
        if let Some(c) = claimed_size
            && c > self.expected
        {
            let end = self.expected;
            self.fault(
                Fault::new(
                    Some(end),
                    Code::MissingEntry,
                    format!("the source says it holds {c} entries but they end at {end}"),
                )
                .evidence(c, end),
            );
        }
        let trust = match (&self.opts.trusted_key, &self.opts.origin) {
            (Some(k), _) => format!("trusted node key {} (--trusted-key)", k.to_string_key()),
            (None, Some(o)) => {
                format!("charter in entry 0 (no --trusted-key given); its origin checked against --origin {o}")
            }
            (None, None) => "charter in entry 0 (no --trusted-key given)".to_string(),
        };
        Outcome {
            trust,
            origin: self.state.as_ref().map(|s| s.registry.charter.origin.clone()),
            node_key: self.node_key,
            entries: self.entries,
            counts_by_kind: self.kinds,
            final_size: self.tree.size(),
            final_root: self.tree.root(),
            tree_complete: self.reliable,
            checkpoints_checked: self.checkpoints_checked,
            checkpoints_unchecked: self.checkpoints_unchecked,
            links_after_break: self.links_after_break,
            high_water,
            faults: self.faults,
        }
    }

    /// Names, once the whole log is replayed, what a node key signed in the span a `node.compromise`
    /// declared compromised (docs/registry.md): node records at an index `>= as_of` and checkpoints
    /// of a size `> as_of` (`NODE_KEY_COMPROMISED`). They were valid when signed; they must be
    /// re-done under the new node key.
    fn name_compromised(&mut self) {
        let Some(reg) = self.state.as_ref().map(|s| s.registry.clone()) else {
            return;
        };
        if reg.compromises.is_empty() {
            return;
        }
        let code = Code::Domain(RuleCode::NodeKeyCompromised.as_str());
        for (index, kind) in std::mem::take(&mut self.node_records) {
            if let Some(c) = reg.compromised_record(index) {
                let f = Fault::new(
                    Some(index),
                    code,
                    format!(
                        "this {kind} at index {index} is signed by the node key {}, declared compromised as of index {} \
                         by the node.compromise record at index {}: it must be re-done under the new node key",
                        ledger_core::keys::key_id(&c.key),
                        c.as_of,
                        c.at
                    ),
                );
                self.fault(f);
            }
        }
        for (size, key) in std::mem::take(&mut self.signed_checkpoints) {
            if let Some(c) = reg.compromised_checkpoint(&key, size) {
                let f = Fault::new(
                    Some(size),
                    code,
                    format!(
                        "the checkpoint of size {size} is signed by the node key {}, declared compromised as of index {} \
                         by the node.compromise record at index {}: a tree holding entries from index {} on, vouched \
                         for by a stolen key",
                        ledger_core::keys::key_id(&c.key),
                        c.as_of,
                        c.at,
                        c.as_of
                    ),
                );
                self.fault(f);
            }
        }
    }

    /// Judges the high-water marks at the end of the log: each must carry the node key's
    /// signature, and the log must hold its size with the same root there.
    fn check_marks(&mut self) -> Vec<(String, u64)> {
        let mut held = Vec::new();
        for m in std::mem::take(&mut self.marks) {
            let end = self.expected;
            // The node key for the size the mark claims (after a `node.rotate`, the new key).
            let Some(v) = self.verifier_for(m.size.unwrap_or(end)) else {
                // No node key (no valid charter): the signature cannot be checked, but a log
                // shorter than the size the mark claims is still named.
                match m.size {
                    Some(claimed) if claimed > end => {
                        let f = Fault::new(
                            Some(end),
                            Code::Rollback,
                            format!(
                                "the log holds {end} entries but its high-water mark {} claims a checkpoint of \
                                 {claimed} entries (its signature cannot be checked without the charter)",
                                m.file
                            ),
                        )
                        .evidence(claimed, end);
                        self.fault(f);
                    }
                    _ => self.checkpoints_unchecked += 1,
                }
                continue;
            };
            let cp = match open_checkpoint(&m.note, &v) {
                Ok(cp) => cp.checkpoint,
                Err(e) => {
                    let f = Fault::new(
                        m.size,
                        Code::CheckpointBadSignature,
                        format!("the high-water mark {} does not verify with the node key: {e}", m.file),
                    );
                    self.fault(f);
                    continue;
                }
            };
            if cp.size > end {
                let f = Fault::new(
                    Some(end),
                    Code::Rollback,
                    format!(
                        "the log holds {end} entries but its high-water mark {} is a signed checkpoint of {} \
                         entries: {} acknowledged entries are missing (the store was cut or damaged; restore it, \
                         docs/operations.md)",
                        m.file,
                        cp.size,
                        cp.size - end
                    ),
                )
                .evidence(cp.size, end);
                self.fault(f);
                continue;
            }
            match m.root {
                Some(r) if r == cp.root => held.push((m.file, cp.size)),
                Some(r) => {
                    let f = Fault::new(
                        Some(cp.size),
                        Code::Rollback,
                        format!(
                            "the log holds {end} entries but its root at size {} differs from the high-water mark \
                             {} (a signed checkpoint of {} entries): a different log",
                            cp.size, m.file, cp.size
                        ),
                    )
                    .evidence(cp.root, r);
                    self.fault(f);
                }
                None => self.checkpoints_unchecked += 1,
            }
        }
        held
    }
}
