//! Verification of a store on open: the node refuses to serve a store that was altered.
//!
//! Every stored entry is decoded and re-hashed; the leaf hashes, the `prev_root` chain, the stored
//! node hashes, the recorded size and every stored checkpoint (its root at its size, and its
//! signature by the node key for its size: the charter's, or the key a `node.rotate` in the store
//! handed the node role to) must agree. The first disagreement is
//! reported with its index.

use crate::{Store, StoreError};
use ledger_core::checkpoint::open_checkpoint;
use ledger_core::compact::CompactTree;
use ledger_core::entry::Entry;
use ledger_core::hash::Hash;
use ledger_core::merkle::{NodeSource, root_from_source};
use ledger_core::note::NoteVerifier;
use ledger_core::registry::{NodeTenure, Registry, kind_of};
use std::collections::BTreeMap;
use std::fmt;

/// What is wrong with a store, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TamperFault {
    /// An entry is missing (a gap in the indices, or fewer entries than the recorded size).
    MissingEntry {
        /// First missing index.
        index: u64,
    },
    /// An entry does not decode.
    Malformed {
        /// Index.
        index: u64,
        /// Decoder error.
        detail: String,
    },
    /// The entry stored under `index` says it is another index (moved or swapped).
    IndexMismatch {
        /// Key it is stored under.
        index: u64,
        /// Index inside the entry.
        found: u64,
    },
    /// The stored leaf hash does not match the entry bytes.
    LeafHashMismatch {
        /// Index.
        index: u64,
        /// Hash of the stored bytes.
        computed: Hash,
        /// Stored leaf hash.
        stored: Hash,
    },
    /// `prev_root` does not match the root of the entries before it.
    ChainBroken {
        /// Index.
        index: u64,
        /// Root recomputed from the entries before.
        expected: Hash,
        /// `prev_root` in the entry.
        found: Hash,
    },
    /// A timestamp goes backwards.
    TimeRegression {
        /// Index.
        index: u64,
    },
    /// More entries than the recorded size.
    ExtraEntry {
        /// First extra index.
        index: u64,
    },
    /// A stored interior node hash disagrees with the entries.
    NodeMismatch {
        /// Tree size whose root disagrees.
        size: u64,
    },
    /// A stored checkpoint's root differs from the entries' root at its size.
    CheckpointRootMismatch {
        /// Checkpoint size.
        size: u64,
        /// Recomputed root.
        computed: Hash,
    },
    /// A stored checkpoint's signature is not the node's.
    CheckpointBadSignature {
        /// Checkpoint size.
        size: u64,
        /// Detail.
        detail: String,
    },
    /// Entry 0 is not a valid charter.
    BadCharter {
        /// Detail.
        detail: String,
    },
}

impl fmt::Display for TamperFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use TamperFault::*;
        match self {
            MissingEntry { index } => write!(f, "MISSING_ENTRY at index {index}"),
            Malformed { index, detail } => write!(f, "MALFORMED_ENTRY at index {index}: {detail}"),
            IndexMismatch { index, found } => write!(
                f,
                "INDEX_MISMATCH at index {index}: the entry stored there says index {found}"
            ),
            LeafHashMismatch {
                index,
                computed,
                stored,
            } => {
                write!(
                    f,
                    "LEAF_HASH_MISMATCH at index {index}: entry bytes hash to {computed}, stored leaf hash {stored}"
                )
            }
            ChainBroken { index, expected, found } => {
                write!(
                    f,
                    "CHAIN_BROKEN at index {index}: prev_root {found}, root of the entries before is {expected}"
                )
            }
            TimeRegression { index } => write!(f, "TIME_REGRESSION at index {index}"),
            ExtraEntry { index } => write!(f, "EXTRA_ENTRY at index {index} beyond the recorded size"),
            NodeMismatch { size } => write!(
                f,
                "NODE_MISMATCH: stored node hashes disagree with the entries at size {size}"
            ),
            CheckpointRootMismatch { size, computed } => {
                write!(
                    f,
                    "CHECKPOINT_ROOT_MISMATCH at size {size}: entries give root {computed}"
                )
            }
            CheckpointBadSignature { size, detail } => write!(f, "CHECKPOINT_BAD_SIGNATURE at size {size}: {detail}"),
            BadCharter { detail } => write!(f, "BAD_CHARTER at index 0: {detail}"),
        }
    }
}

/// Summary of a successful open check.
#[derive(Debug, Clone)]
pub struct OpenReport {
    /// Entries checked.
    pub size: u64,
    /// Root of the log.
    pub root: Hash,
    /// Checkpoints checked.
    pub checkpoints: usize,
    /// Origin and the current node key: the charter's, or the last `node.rotate`'s (None for an
    /// empty store).
    pub node_verifier: Option<NoteVerifier>,
    /// The chain of node keys (docs/registry.md, "Node key lifecycle"); empty for an empty store.
    pub node_keys: Vec<NodeTenure>,
}

impl OpenReport {
    /// The node key that signs the checkpoint of `size` (the current one for a size the store
    /// does not reach).
    pub fn verifier_at(&self, size: u64) -> Option<NoteVerifier> {
        let v = self.node_verifier.as_ref()?;
        let key = self
            .node_keys
            .iter()
            .rev()
            .find(|t| t.from <= size)
            .map_or(v.key, |t| t.key);
        NoteVerifier::new(&v.name, key).ok()
    }
}

fn tampered(f: TamperFault) -> StoreError {
    StoreError::Tampered(f)
}

/// The registry as of the charter (entry 0), whose node key must make a checkpoint verifier; later
/// `node.rotate` records extend its chain of node keys.
fn charter_registry(e: &Entry) -> Result<Registry, StoreError> {
    let reg = Registry::genesis(e).map_err(|err| {
        tampered(TamperFault::BadCharter {
            detail: err.to_string(),
        })
    })?;
    NoteVerifier::new(&reg.charter.origin, reg.node_key).map_err(|err| {
        tampered(TamperFault::BadCharter {
            detail: err.to_string(),
        })
    })?;
    Ok(reg)
}

/// Every stored checkpoint is signed by the node key for its size (the chain of node keys,
/// `Registry::checkpoint_key`) and names the root the entries compute at its
/// size (`roots`; `final_root` is the store's root, reported for a size the entries never reach).
fn check_checkpoints(
    checkpoints: &BTreeMap<u64, String>,
    roots: &BTreeMap<u64, Hash>,
    registry: Option<&Registry>,
    final_root: &Hash,
) -> Result<(), StoreError> {
    for (cp_size, note) in checkpoints {
        let Some(computed) = roots.get(cp_size) else {
            return Err(tampered(TamperFault::CheckpointRootMismatch {
                size: *cp_size,
                computed: *final_root,
            }));
        };
        let Some(reg) = registry else {
            return Err(tampered(TamperFault::CheckpointBadSignature {
                size: *cp_size,
                detail: "no charter".into(),
            }));
        };
        let v = NoteVerifier::new(&reg.charter.origin, reg.checkpoint_key(*cp_size)).map_err(|e| {
            tampered(TamperFault::CheckpointBadSignature {
                size: *cp_size,
                detail: e.to_string(),
            })
        })?;
        let opened = open_checkpoint(note, &v).map_err(|e| {
            tampered(TamperFault::CheckpointBadSignature {
                size: *cp_size,
                detail: e.to_string(),
            })
        })?;
        if opened.checkpoint.size != *cp_size || opened.checkpoint.root != *computed {
            return Err(tampered(TamperFault::CheckpointRootMismatch {
                size: *cp_size,
                computed: *computed,
            }));
        }
    }
    Ok(())
}

impl Store {
    /// Checks the whole store (see the module docs).
    ///
    /// # Errors
    /// [`StoreError::Tampered`] naming the first fault, or a storage error.
    pub fn verify(&self) -> Result<OpenReport, StoreError> {
        self.verify_with_roots_at(&[]).map(|(r, _)| r)
    }

    /// [`Self::verify`], also returning the recomputed root at each of `sizes` that is not above
    /// the store's size (for the high-water mark check, `crate::high_water`).
    ///
    /// # Errors
    /// As [`Self::verify`].
    pub fn verify_with_roots_at(&self, sizes: &[u64]) -> Result<(OpenReport, BTreeMap<u64, Hash>), StoreError> {
        let size = self.size()?;
        let checkpoints: BTreeMap<u64, String> = self.checkpoints().collect::<Result<_, _>>()?;
        let mut roots: BTreeMap<u64, Hash> = BTreeMap::new();
        let mut ct = CompactTree::new();
        let mut last_ts = 0u64;
        let mut registry: Option<Registry> = None;
        if checkpoints.contains_key(&0) || sizes.contains(&0) {
            roots.insert(0, ct.root());
        }
        for r in self.entries(0, u64::MAX) {
            let (index, bytes) = r?;
            let expected = ct.size();
            if index != expected {
                return Err(tampered(TamperFault::MissingEntry { index: expected }));
            }
            if index >= size {
                return Err(tampered(TamperFault::ExtraEntry { index }));
            }
            let e = Entry::decode(&bytes).map_err(|e| {
                tampered(TamperFault::Malformed {
                    index,
                    detail: e.to_string(),
                })
            })?;
            if e.index != index {
                return Err(tampered(TamperFault::IndexMismatch { index, found: e.index }));
            }
            if index == 0 {
                registry = Some(charter_registry(&e)?);
            } else if let Some(reg) = registry.as_mut()
                && matches!(
                    kind_of(&e.envelope.payload_type),
                    Some("node.rotate" | "node.compromise")
                )
            {
                // The chain of node keys: a rotation the rules refuse has no effect, so the
                // checkpoints after it must still be the old key's.
                let _ = ledger_core::state::fold_registry(reg, &e);
            }
            let lh = ledger_core::hash::leaf_hash(&bytes);
            let stored = self
                .node(0, index)
                .map_err(|_| tampered(TamperFault::MissingEntry { index }))?;
            if stored != lh {
                return Err(tampered(TamperFault::LeafHashMismatch {
                    index,
                    computed: lh,
                    stored,
                }));
            }
            let prev = ct.root();
            if e.prev_root != prev {
                return Err(tampered(TamperFault::ChainBroken {
                    index,
                    expected: prev,
                    found: e.prev_root,
                }));
            }
            if e.timestamp_micros < last_ts {
                return Err(tampered(TamperFault::TimeRegression { index }));
            }
            last_ts = e.timestamp_micros;
            ct.append(lh);
            if checkpoints.contains_key(&ct.size()) || sizes.contains(&ct.size()) {
                roots.insert(ct.size(), ct.root());
            }
        }
        if ct.size() != size {
            return Err(tampered(TamperFault::MissingEntry { index: ct.size() }));
        }
        let stored_root = root_from_source(self, size).map_err(|_| tampered(TamperFault::NodeMismatch { size }))?;
        if stored_root != ct.root() {
            return Err(tampered(TamperFault::NodeMismatch { size }));
        }
        check_checkpoints(&checkpoints, &roots, registry.as_ref(), &ct.root())?;
        let asked = roots
            .iter()
            .filter(|(s, _)| sizes.contains(s))
            .map(|(s, r)| (*s, *r))
            .collect();
        Ok((
            OpenReport {
                size,
                root: ct.root(),
                checkpoints: checkpoints.len(),
                node_verifier: registry
                    .as_ref()
                    .and_then(|r| NoteVerifier::new(&r.charter.origin, r.node_key).ok()),
                node_keys: registry.map(|r| r.node_keys).unwrap_or_default(),
            },
            asked,
        ))
    }
}
