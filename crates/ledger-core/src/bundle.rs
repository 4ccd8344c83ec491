//! Court proof bundles (requirement R9, `docs/bundle.md`): one self-contained JSON file that a court
//! checks offline — the records asked for with their full envelopes, inclusion proofs to one signed
//! checkpoint, the charter and every key record up to that checkpoint (so the authorization of each
//! signer can be re-judged), an optional consistency proof from a checkpoint the court already holds,
//! and each record's proof in the C2SP tlog-proof@v1 text form for tools that know nothing of this
//! project.

use crate::checkpoint::{Checkpoint, CheckpointError, open_checkpoint};
use crate::cosignature::Cosignature;
use crate::entry::{Entry, EntryError};
use crate::hash::{Hash, leaf_hash};
use crate::merkle::{ProofError, verify_consistency, verify_inclusion};
use crate::note::NoteVerifier;
use crate::registry::{NodeCompromised, Registry, envelope_kind};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

/// Format identifier.
pub const BUNDLE_FORMAT: &str = "ledger-bundle/v1";
/// Largest bundle file accepted.
pub const MAX_BUNDLE_BYTES: usize = 256 << 20;

/// One entry in a bundle with its inclusion proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleEntry {
    /// Log index.
    pub index: u64,
    /// Canonical leaf bytes, standard base64.
    pub leaf: String,
    /// Inclusion proof to the bundle's checkpoint, hex hashes bottom-up.
    pub inclusion_proof: Vec<Hash>,
    /// The same proof as C2SP tlog-proof@v1 text (requested records only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tlog_proof: String,
}

/// Consistency proof from a checkpoint the court already holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleConsistency {
    /// The earlier signed checkpoint note.
    pub from_checkpoint: String,
    /// RFC 9162 consistency proof from its size to the bundle checkpoint's size.
    pub proof: Vec<Hash>,
}

/// A court bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// Always [`BUNDLE_FORMAT`].
    pub format: String,
    /// Log origin.
    pub origin: String,
    /// The node's checkpoint verifier key (`name+hash+base64`).
    pub node_key: String,
    /// The signed checkpoint all proofs lead to (with any witness cosignatures).
    pub checkpoint: String,
    /// The records asked for.
    pub records: Vec<BundleEntry>,
    /// The charter (entry 0) and every key record below the checkpoint size.
    pub registry: Vec<BundleEntry>,
    /// Optional consistency proof from an earlier checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<BundleConsistency>,
    /// Readable summary written by the exporter (not trusted by the verifier).
    #[serde(default)]
    pub summary: String,
    /// RFC 3161 trusted timestamp tokens over checkpoints of this log up to the bundle's
    /// checkpoint (optional; absent in bundles without them, which verify as before).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timestamps: Vec<BundleTimestamp>,
}

/// An RFC 3161 timestamp token over one checkpoint, with what ties that checkpoint to the
/// bundle's (docs/bundle.md, "Trusted timestamps"). Checked by `ledger-verify bundle verify
/// --tsa-root`, not by [`verify_bundle`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleTimestamp {
    /// The signed checkpoint note the token covers; the TSA hashed its body (the text before the
    /// blank line, ending in a newline) with SHA-256.
    pub checkpoint: String,
    /// RFC 9162 consistency proof from that checkpoint to the bundle's checkpoint (empty when
    /// the sizes are equal).
    pub consistency_proof: Vec<Hash>,
    /// The TimeStampToken (DER CMS ContentInfo), standard base64.
    pub token: String,
}

/// Formats a C2SP tlog-proof@v1.
pub fn tlog_proof(index: u64, proof: &[Hash], checkpoint_note: &str) -> String {
    let mut s = format!("c2sp.org/tlog-proof@v1\nindex {index}\n");
    for h in proof {
        s.push_str(&B64.encode(h.0));
        s.push('\n');
    }
    s.push('\n');
    s.push_str(checkpoint_note);
    s
}

/// Why a text is not a C2SP tlog-proof@v1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlogProofError {
    /// The first line is not the format header.
    #[error("missing c2sp.org/tlog-proof@v1 header")]
    MissingHeader,
    /// An `extra` line without its newline.
    #[error("truncated extra line")]
    TruncatedExtra,
    /// No `index` line.
    #[error("missing index line")]
    MissingIndex,
    /// The index is not a canonical decimal.
    #[error("index is not a decimal without leading zeros")]
    IndexNotDecimal,
    /// The index does not fit in 64 bits.
    #[error("index out of range")]
    IndexOutOfRange,
    /// The proof lines are not ended by a blank line.
    #[error("missing blank line before the checkpoint")]
    MissingBlankLine,
    /// A proof line is not base64.
    #[error("proof line is not base64")]
    ProofNotBase64,
    /// A proof line does not decode to a 32-byte hash.
    #[error("proof hash is not 32 bytes")]
    ProofHashLength,
}

/// Parses a C2SP tlog-proof@v1 into (index, proof hashes, checkpoint note).
///
/// # Errors
/// When the text is not a tlog-proof.
pub fn parse_tlog_proof(s: &str) -> Result<(u64, Vec<Hash>, String), TlogProofError> {
    use TlogProofError as E;
    let rest = s.strip_prefix("c2sp.org/tlog-proof@v1\n").ok_or(E::MissingHeader)?;
    let rest = match rest.strip_prefix("extra ") {
        Some(r) => r.split_once('\n').ok_or(E::TruncatedExtra)?.1,
        None => rest,
    };
    let (idx_line, mut rest) = rest.split_once('\n').ok_or(E::MissingIndex)?;
    let idx_s = idx_line.strip_prefix("index ").ok_or(E::MissingIndex)?;
    if idx_s.is_empty() || (idx_s.len() > 1 && idx_s.starts_with('0')) || !idx_s.bytes().all(|c| c.is_ascii_digit()) {
        return Err(E::IndexNotDecimal);
    }
    let index: u64 = idx_s.parse().map_err(|_| E::IndexOutOfRange)?;
    let mut proof = Vec::new();
    loop {
        let (line, r) = rest.split_once('\n').ok_or(E::MissingBlankLine)?;
        rest = r;
        if line.is_empty() {
            break;
        }
        let b = B64.decode(line).map_err(|_| E::ProofNotBase64)?;
        proof.push(Hash::from_slice(&b).map_err(|_| E::ProofHashLength)?);
    }
    Ok((index, proof, rest.to_string()))
}

/// Why a bundle entry's leaf cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LeafError {
    /// The leaf field is not standard base64.
    #[error("entry {index}: leaf is not base64")]
    NotBase64 {
        /// The bundle entry's index.
        index: u64,
    },
    /// The leaf bytes are not a canonical entry.
    #[error("entry {index}: {error}")]
    Entry {
        /// The bundle entry's index.
        index: u64,
        /// Why the bytes do not decode.
        error: EntryError,
    },
    /// The leaf names another index than the bundle entry.
    #[error("entry {index}: leaf says index {found}")]
    IndexMismatch {
        /// The bundle entry's index.
        index: u64,
        /// The index inside the leaf.
        found: u64,
    },
}

/// Why the court's earlier checkpoint does not extend to the bundle's checkpoint.
///
/// Serialized as its message (a JSON string), as the verdict has always been.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConsistencyError {
    /// The earlier checkpoint's signature or text does not verify under the node key.
    #[error("the earlier checkpoint does not verify: {0}")]
    EarlierCheckpoint(CheckpointError),
    /// The consistency proof fails: the earlier checkpoint is not a prefix (`FORK`).
    #[error(
        "FORK: the earlier checkpoint (size {old_size}, root {old_root}) is not a prefix of this one (size {size}, root {root}): {error}"
    )]
    Fork {
        /// Earlier size.
        old_size: u64,
        /// Earlier root.
        old_root: Hash,
        /// The bundle checkpoint's size.
        size: u64,
        /// The bundle checkpoint's root.
        root: Hash,
        /// Why the proof does not verify (boxed: the verdict stays small).
        error: Box<ProofError>,
    },
}

impl Serialize for ConsistencyError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What the verifier concluded about one record.
#[derive(Debug, Clone, Serialize)]
pub struct RecordVerdict {
    /// Log index.
    pub index: u64,
    /// Record kind (payload type when unknown).
    pub kind: String,
    /// Node timestamp, UTC microseconds.
    pub timestamp_micros: u64,
    /// Signers: key id, holder's name, roles.
    pub signers: Vec<SignerInfo>,
    /// The payload as text (JSON).
    pub payload: String,
    /// Problems found; empty when the record verifies.
    pub problems: Vec<String>,
}

/// A signer of a record as the registry knows it.
#[derive(Debug, Clone, Serialize)]
pub struct SignerInfo {
    /// Key id.
    pub keyid: String,
    /// Holder.
    pub name: String,
    /// Roles held at the time.
    pub roles: Vec<String>,
    /// Organization.
    pub organization: String,
}

/// The verdict on a bundle.
#[derive(Debug, Clone, Serialize)]
pub struct BundleVerdict {
    /// Log origin.
    pub origin: String,
    /// The checkpoint relied on.
    pub checkpoint_size: u64,
    /// Its root.
    pub checkpoint_root: Hash,
    /// Signature lines on the checkpoint beyond the node's (witness cosignatures; counted, not
    /// judged here).
    pub other_signatures: usize,
    /// Valid cosignatures on the checkpoint by witness keys enrolled (role `witness`, active) in
    /// the registry as of the checkpoint: how many independent witnesses vouch for it.
    pub witnesses: Vec<Cosignature>,
    /// The charter's `witness_quorum` (cosignatures that make a checkpoint witnessed).
    pub witness_quorum: u32,
    /// Where trust in the node key comes from.
    pub trust: String,
    /// Per requested record.
    pub records: Vec<RecordVerdict>,
    /// Consistency with the court's earlier checkpoint: None when not asked, else the outcome.
    pub consistency: Option<Result<u64, ConsistencyError>>,
    /// Bundle-level problems.
    pub problems: Vec<String>,
}

impl BundleVerdict {
    /// True when nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
            && self.records.iter().all(|r| r.problems.is_empty())
            && !matches!(self.consistency, Some(Err(_)))
    }
}

fn decode_leaf(e: &BundleEntry) -> Result<(Entry, Hash), LeafError> {
    let index = e.index;
    let bytes = B64.decode(&e.leaf).map_err(|_| LeafError::NotBase64 { index })?;
    let entry = Entry::decode(&bytes).map_err(|error| LeafError::Entry { index, error })?;
    if entry.index != index {
        return Err(LeafError::IndexMismatch {
            index,
            found: entry.index,
        });
    }
    Ok((entry, leaf_hash(&bytes)))
}

/// Verifies a bundle offline. `trusted` pins the node key; without it the bundle's own key is used
/// and the verdict says so. Never fails: every problem is reported in the verdict.
pub fn verify_bundle(b: &Bundle, trusted: Option<&NoteVerifier>) -> BundleVerdict {
    let mut v = BundleVerdict {
        origin: b.origin.clone(),
        checkpoint_size: 0,
        checkpoint_root: Hash::default(),
        other_signatures: 0,
        witnesses: Vec::new(),
        witness_quorum: 0,
        trust: String::new(),
        records: Vec::new(),
        consistency: None,
        problems: Vec::new(),
    };
    let Some((key, cp, cp_note, by_charter_key)) = open_bundle(b, trusted, &mut v) else {
        return v;
    };
    let reg_entries = registry_entries(b, &cp, &mut v);
    let mut registry = match reg_entries.first().map(Registry::genesis) {
        Some(Ok(r)) => r,
        Some(Err(e)) => {
            v.problems.push(format!("charter: {e}"));
            return v;
        }
        None => {
            v.problems.push("the bundle has no charter (entry 0)".into());
            return v;
        }
    };
    if registry.node_key != key.key || registry.charter.origin != cp.origin {
        v.problems
            .push("the charter's origin or node key differs from the checkpoint's".into());
    }
    judge_records(b, &reg_entries, &mut registry, &cp, &mut v);
    check_rotated_key(b, &registry, &key, &cp, by_charter_key, &mut v);
    check_compromised(&registry, &cp, &mut v);
    check_witnesses(&registry, &cp_note, &mut v);
    // The court's earlier checkpoint, under the node key for its size.
    let earlier = b
        .consistency
        .as_ref()
        .and_then(|c| crate::note::Note::parse(&c.from_checkpoint).ok())
        .and_then(|n| Checkpoint::from_body(&n.text).ok())
        .map(|c| registry.checkpoint_key(c.size))
        .filter(|k| *k != key.key)
        .and_then(|k| NoteVerifier::new(&key.name, k).ok());
    v.consistency = check_consistency(b, earlier.as_ref().unwrap_or(&key), &cp);
    v
}

/// The checkpoint's signature under the node key for its size, following the `node.rotate`
/// records of the bundle's registry history from the charter's key (docs/registry.md): the
/// checkpoint must be signed by that key and no other.
fn check_rotated_key(
    b: &Bundle,
    registry: &Registry,
    key: &NoteVerifier,
    cp: &Checkpoint,
    by_charter_key: Result<(), String>,
    v: &mut BundleVerdict,
) {
    let want = registry.checkpoint_key(cp.size);
    if want == key.key {
        if let Err(e) = by_charter_key {
            v.problems.push(format!("CHECKPOINT_BAD_SIGNATURE: {e}"));
        }
        return;
    }
    let rotated = match NoteVerifier::new(&key.name, want) {
        Ok(k) => k,
        Err(e) => {
            v.problems.push(format!("CHECKPOINT_BAD_SIGNATURE: {e}"));
            return;
        }
    };
    match open_checkpoint(&b.checkpoint, &rotated) {
        Ok(c) => {
            v.other_signatures = c.note.signatures.len().saturating_sub(1);
            v.trust.push_str(&format!(
                "; the checkpoint is signed by the node key {}, which node.rotate records in the bundle (inclusion-proven) hand on from the charter's key",
                rotated.to_string_key()
            ));
        }
        Err(e) => v.problems.push(match compromised_signer(b, registry, key, cp.size) {
            Some(c) => format!(
                "NODE_KEY_COMPROMISED: the checkpoint of size {} is signed by the node key {}, declared compromised as of index {} by the node.compromise record at index {}; the node key for that size is {}",
                cp.size,
                crate::keys::key_id(&c.key),
                c.as_of,
                c.at,
                rotated.to_string_key()
            ),
            None => format!(
                "CHECKPOINT_BAD_SIGNATURE: the checkpoint of size {} must be signed by the node key {} (node.rotate): {e}",
                cp.size,
                rotated.to_string_key()
            ),
        }),
    }
}

/// The compromised node key of the chain, if any, that signed the checkpoint of `size` although
/// a `node.compromise` handed the node role on before it.
fn compromised_signer<'a>(
    b: &Bundle,
    registry: &'a Registry,
    key: &NoteVerifier,
    size: u64,
) -> Option<&'a NodeCompromised> {
    registry.compromises.iter().find(|c| {
        c.covers_checkpoint(&c.key, size)
            && NoteVerifier::new(&key.name, c.key).is_ok_and(|k| open_checkpoint(&b.checkpoint, &k).is_ok())
    })
}

/// `node.compromise` records the bundle carries (docs/registry.md): its checkpoint, when signed by
/// a compromised key for a tree holding entries at or after `as_of`, and its node records
/// (`draw.result`, `draw.void`, `tally`) at an index `>= as_of` signed by that key, are named
/// `NODE_KEY_COMPROMISED`: what they say must be re-done under the new node key.
fn check_compromised(registry: &Registry, cp: &Checkpoint, v: &mut BundleVerdict) {
    let signer = registry.checkpoint_key(cp.size);
    if let Some(c) = registry.compromised_checkpoint(&signer, cp.size) {
        v.problems.push(format!(
            "NODE_KEY_COMPROMISED: the checkpoint of size {} is signed by the node key {}, declared compromised as of index {} by the node.compromise record at index {}; ask the log for a checkpoint signed by the new node key",
            cp.size,
            crate::keys::key_id(&c.key),
            c.as_of,
            c.at
        ));
    }
    for r in &mut v.records {
        if !matches!(r.kind.as_str(), "draw.result" | "draw.void" | "tally") {
            continue;
        }
        let Some(c) = registry.compromised_record(r.index) else {
            continue;
        };
        let id = crate::keys::key_id(&c.key);
        if r.signers.iter().any(|s| s.keyid == id) {
            r.problems.push(format!(
                "NODE_KEY_COMPROMISED: this {} at index {} is signed by the node key {id}, declared compromised as of index {} by the node.compromise record at index {}; it must be re-done under the new node key",
                r.kind, r.index, c.as_of, c.at
            ));
        }
    }
}

/// The bundle's format, node key (against the trusted one), and checkpoint signature; `None`
/// (with the problem recorded) when the bundle cannot be judged further.
fn open_bundle(
    b: &Bundle,
    trusted: Option<&NoteVerifier>,
    v: &mut BundleVerdict,
) -> Option<(NoteVerifier, Checkpoint, crate::note::Note, Result<(), String>)> {
    if b.format != BUNDLE_FORMAT {
        v.problems.push(format!("unknown bundle format {:?}", b.format));
        return None;
    }
    let key = match NoteVerifier::parse(&b.node_key) {
        Ok(k) => k,
        Err(e) => {
            v.problems.push(format!("node key: {e}"));
            return None;
        }
    };
    match trusted {
        Some(t) if *t != key => {
            v.problems.push(format!("the bundle's node key {} is not the trusted key {}", b.node_key, t.to_string_key()));
            return None;
        }
        Some(_) => v.trust = "node key pinned by the caller (--trusted-key)".into(),
        None => v.trust = "node key taken from the bundle itself (no --trusted-key given); compare it with the key published by the operator".into(),
    }
    // A checkpoint not signed by the charter's key may be a later node key's (`node.rotate`): it is
    // judged once the registry history is folded ([`check_rotated_key`]).
    let (cp, cp_note, signed): (Checkpoint, crate::note::Note, Result<(), String>) =
        match open_checkpoint(&b.checkpoint, &key) {
            Ok(c) => {
                v.other_signatures = c.note.signatures.len().saturating_sub(1);
                (c.checkpoint, c.note, Ok(()))
            }
            Err(e) => match crate::note::Note::parse(&b.checkpoint)
                .ok()
                .and_then(|n| Checkpoint::from_body(&n.text).ok().map(|c| (c, n)))
            {
                Some((c, n)) if b.registry.iter().any(|r| r.index > 0) => (c, n, Err(e.to_string())),
                _ => {
                    v.problems.push(format!("CHECKPOINT_BAD_SIGNATURE: {e}"));
                    return None;
                }
            },
        };
    v.checkpoint_size = cp.size;
    v.checkpoint_root = cp.root;
    if cp.origin != b.origin {
        v.problems.push(format!(
            "checkpoint origin {:?} differs from bundle origin {:?}",
            cp.origin, b.origin
        ));
    }
    Some((key, cp, cp_note, signed))
}

/// The bundle's registry entries whose inclusion proofs verify, in index order.
fn registry_entries(b: &Bundle, cp: &Checkpoint, v: &mut BundleVerdict) -> Vec<Entry> {
    let mut reg_entries = Vec::new();
    for e in &b.registry {
        match decode_leaf(e) {
            Ok((entry, lh)) => {
                if let Err(x) = verify_inclusion(e.index, cp.size, &lh, &e.inclusion_proof, &cp.root) {
                    v.problems
                        .push(format!("registry entry {}: INCLUSION_PROOF_INVALID: {x}", e.index));
                    continue;
                }
                reg_entries.push(entry);
            }
            Err(x) => v.problems.push(x.to_string()),
        }
    }
    reg_entries.sort_by_key(|e| e.index);
    reg_entries
}

/// Judges every record against the registry as of its index (key records below it folded in
/// first), then folds the remaining key records: the registry as of the checkpoint.
fn judge_records(b: &Bundle, reg_entries: &[Entry], registry: &mut Registry, cp: &Checkpoint, v: &mut BundleVerdict) {
    let mut records: Vec<&BundleEntry> = b.records.iter().collect();
    records.sort_by_key(|r| r.index);
    let mut ri = 1usize;
    for r in records {
        while ri < reg_entries.len() && reg_entries[ri].index < r.index {
            let e = &reg_entries[ri];
            if let Err(x) = crate::state::fold_registry(registry, e) {
                v.problems.push(format!("key record {}: {x}", e.index));
            }
            ri += 1;
        }
        v.records.push(judge_record(r, registry, cp, &b.checkpoint));
    }
    // Witnesses: the registry as of the checkpoint (every key record below its size).
    for e in reg_entries.iter().skip(ri.max(1)) {
        if let Err(x) = crate::state::fold_registry(registry, e) {
            v.problems.push(format!("key record {}: {x}", e.index));
        }
    }
}

/// Witness cosignatures on the checkpoint by the witnesses enrolled as of it, and the quorum.
fn check_witnesses(registry: &Registry, cp_note: &crate::note::Note, v: &mut BundleVerdict) {
    v.witness_quorum = registry.charter.policy.witness_quorum;
    match cp_note.verify_cosignatures(&registry.witnesses()) {
        Ok(w) => v.witnesses = w,
        Err(e) => v.problems.push(format!(
            "COSIGNATURE_INVALID: a line by an enrolled witness key does not verify: {e}"
        )),
    }
    if (v.witnesses.len() as u32) < v.witness_quorum {
        v.problems.push(format!(
            "NOT_WITNESSED: the checkpoint carries {} valid witness cosignature(s), the charter's witness quorum is {}",
            v.witnesses.len(),
            v.witness_quorum
        ));
    }
}

/// The consistency proof from the earlier checkpoint the bundle carries, if any: the earlier
/// size, or why it is not a prefix (`FORK`).
fn check_consistency(b: &Bundle, key: &NoteVerifier, cp: &Checkpoint) -> Option<Result<u64, ConsistencyError>> {
    b.consistency.as_ref().map(|c| {
        let old = open_checkpoint(&c.from_checkpoint, key).map_err(ConsistencyError::EarlierCheckpoint)?;
        let (old_size, old_root) = (old.checkpoint.size, old.checkpoint.root);
        verify_consistency(old_size, cp.size, &old_root, &cp.root, &c.proof)
            .map(|()| old_size)
            .map_err(|error| ConsistencyError::Fork {
                old_size,
                old_root,
                size: cp.size,
                root: cp.root,
                error: Box::new(error),
            })
    })
}

fn judge_record(r: &BundleEntry, registry: &Registry, cp: &Checkpoint, note: &str) -> RecordVerdict {
    let mut rv = RecordVerdict {
        index: r.index,
        kind: String::new(),
        timestamp_micros: 0,
        signers: Vec::new(),
        payload: String::new(),
        problems: Vec::new(),
    };
    let (entry, lh) = match decode_leaf(r) {
        Ok(x) => x,
        Err(x) => {
            rv.problems.push(format!("MALFORMED_ENTRY: {x}"));
            return rv;
        }
    };
    rv.kind = envelope_kind(&entry.envelope)
        .map(str::to_string)
        .unwrap_or_else(|_| entry.envelope.payload_type.clone());
    rv.timestamp_micros = entry.timestamp_micros;
    rv.payload = String::from_utf8_lossy(&entry.envelope.payload).into_owned();
    if r.index >= cp.size {
        rv.problems.push(format!(
            "entry {} is not below the checkpoint size {}",
            r.index, cp.size
        ));
    } else if let Err(x) = verify_inclusion(r.index, cp.size, &lh, &r.inclusion_proof, &cp.root) {
        rv.problems.push(format!("INCLUSION_PROOF_INVALID: {x}"));
    }
    if !r.tlog_proof.is_empty() {
        match parse_tlog_proof(&r.tlog_proof) {
            Ok((i, p, n)) if i == r.index && p == r.inclusion_proof && n == note => {}
            Ok(_) => rv
                .problems
                .push("the tlog-proof text disagrees with the bundle's proof or checkpoint".into()),
            Err(e) => rv.problems.push(format!("tlog-proof: {e}")),
        }
    }
    for s in &entry.envelope.signatures {
        let (name, roles, org) = match registry.keys.get(&s.keyid) {
            Some(k) => (
                k.name.clone(),
                k.roles
                    .iter()
                    .filter_map(|r| serde_json::to_value(r).ok()?.as_str().map(String::from))
                    .collect(),
                k.scope.organization.clone(),
            ),
            None => ("(unknown key)".into(), vec![], String::new()),
        };
        rv.signers.push(SignerInfo {
            keyid: s.keyid.clone(),
            name,
            roles,
            organization: org,
        });
    }
    // Re-judge signatures and authorization as of this index (on a copy: key records are applied
    // from the bundle's registry history, not twice).
    let mut reg = registry.clone();
    if r.index == 0 {
        if let Err(e) = Registry::genesis(&entry) {
            rv.problems.push(format!("charter: {e}"));
        }
    } else if let Err(e) = crate::state::fold_registry(&mut reg, &entry) {
        rv.problems.push(format!("{}: {e}", fault_code(&e)));
    }
    rv
}

/// Fault code of a registry error, as the verifier names it ([`crate::registry::RegistryError::fault`]).
pub fn fault_code(e: &crate::registry::RegistryError) -> &'static str {
    e.fault().as_str()
}
