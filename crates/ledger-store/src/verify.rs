//! Verification of a store on open: the node refuses to serve a store that was altered.
//!
//! Every stored entry is decoded and re-hashed; the leaf hashes (in the level-0 tiles and the tail
//! chunks), the `prev_root` chain, the stored node hashes (every hash of every level ≥ 1 tile is
//! recomputed from the entries; no tile may be missing, short, long or beyond the log), the
//! recorded size and every stored checkpoint (its root at its size, and its
//! signature by the node key for its size: the charter's, or the key a `node.rotate` in the store
//! handed the node role to) must agree. The first disagreement is
//! reported with its index.
//!
//! [`Store::verify_streaming`] is the same pass with two differences for node start-up
//! (STARTUP): each entry, once checked, is handed to a visitor (the node folds its state in the
//! same pass: one read, one decode and one hash per entry), and the `prev_root` chain is checked
//! only from a given size on (the size of a signed high-water mark whose root the caller then
//! compares with the root this pass recomputes: below it every entry's bytes, `prev_root`
//! included, are bound to that signed root by their re-computed leaf hashes).

use crate::{Store, StoreError};
use ledger_core::checkpoint::open_checkpoint;
use ledger_core::compact::{CompactTree, CompletedNode};
use ledger_core::entry::Entry;
use ledger_core::hash::Hash;
use ledger_core::merkle::root_from_source;
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
    /// A hash tile (layout 2) is missing, or holds more or fewer hashes than the log has.
    TileMismatch {
        /// Tile level (0: leaf hashes).
        level: u8,
        /// Tile number.
        tile: u64,
        /// What is wrong.
        detail: String,
    },
    /// An entry is stored twice (a tail chunk or bundle overlapping another).
    StrayRecord {
        /// Index stored again.
        index: u64,
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
            TileMismatch { level, tile, detail } => {
                write!(f, "TILE_MISMATCH at tile level {level}, tile {tile}: {detail}")
            }
            StrayRecord { index } => write!(
                f,
                "STRAY_RECORD: entry {index} is stored twice (an overlapping bundle or chunk)"
            ),
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

/// The level ≥ 1 tiles, checked node by node as the entries complete them (layout 2); one tile
/// per level is held at a time.
#[derive(Default)]
struct TileCheck {
    held: BTreeMap<u8, (u64, Option<sled::IVec>)>,
}

impl TileCheck {
    fn check(&mut self, store: &Store, n: &CompletedNode) -> Result<(), StoreError> {
        let Ok(level) = u8::try_from(n.level / 8) else {
            return Ok(());
        };
        let tile = n.index / crate::layout::BUNDLE_ENTRIES;
        let pos = (n.index % crate::layout::BUNDLE_ENTRIES) as usize;
        if self.held.get(&level).is_none_or(|(t, _)| *t != tile) {
            let v = store.raw_tree().get(crate::layout::tile_key(level, tile))?;
            self.held.insert(level, (tile, v));
        }
        let Some((_, Some(v))) = self.held.get(&level) else {
            return Err(tampered(TamperFault::TileMismatch {
                level,
                tile,
                detail: "missing".into(),
            }));
        };
        if v.get(pos * 32..pos * 32 + 32) != Some(&n.hash.0[..]) {
            return Err(tampered(TamperFault::NodeMismatch {
                size: (n.index + 1) << n.level,
            }));
        }
        Ok(())
    }
}

/// Every `t` key holds exactly the hashes the log of `size` entries has at its place, and no
/// tile the log has is missing (layout 2): [`Self::key`] for each `t` key in key order, then
/// [`Self::end`].
struct TileKeys {
    size: u64,
    count: BTreeMap<u8, u64>,
}

impl TileKeys {
    fn new(size: u64) -> Self {
        Self {
            size,
            count: BTreeMap::new(),
        }
    }

    // Hashes at tile level `l`: entries for level 0 (in full tiles only), completed nodes above.
    fn hashes_at(&self, l: u8) -> u64 {
        let per = crate::layout::BUNDLE_ENTRIES;
        if l == 0 {
            self.size / per * per
        } else {
            self.size.checked_shr(8 * u32::from(l)).unwrap_or(0)
        }
    }

    fn key(&mut self, k: &[u8], v: &[u8]) -> Result<(), StoreError> {
        let per = crate::layout::BUNDLE_ENTRIES;
        let (Some(&level), Some(tile)) = (
            k.get(1),
            k.get(2..10)
                .and_then(|s| <[u8; 8]>::try_from(s).ok())
                .map(u64::from_be_bytes),
        ) else {
            return Err(tampered(TamperFault::TileMismatch {
                level: k.get(1).copied().unwrap_or(0),
                tile: 0,
                detail: "malformed key".into(),
            }));
        };
        let want = self.hashes_at(level).saturating_sub(tile.saturating_mul(per)).min(per);
        if want == 0 || v.len() as u64 != want * 32 {
            return Err(tampered(TamperFault::TileMismatch {
                level,
                tile,
                detail: format!("holds {} bytes, the log has {} hashes here", v.len(), want),
            }));
        }
        *self.count.entry(level).or_default() += 1;
        Ok(())
    }

    fn end(&self) -> Result<(), StoreError> {
        let per = crate::layout::BUNDLE_ENTRIES;
        for l in 0..=crate::tiles::MAX_TILE_LEVEL {
            let want = self.hashes_at(l).div_ceil(per);
            if want == 0 {
                break;
            }
            let have = self.count.get(&l).copied().unwrap_or(0);
            if have != want {
                return Err(tampered(TamperFault::TileMismatch {
                    level: l,
                    tile: have,
                    detail: format!("{have} tiles stored, the log has {want}"),
                }));
            }
        }
        Ok(())
    }
}

/// What [`Store::verify_streaming`] calls with each checked entry: index, decoded entry, the leaf
/// hash recomputed from its bytes. An error ends the pass with [`StoreError::Visit`].
pub type Visit<'a> = dyn FnMut(u64, &Entry, &Hash) -> Result<(), String> + 'a;

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
        self.verify_streaming(sizes, 0, &mut |_, _, _| Ok(()))
    }

    /// [`Self::verify_with_roots_at`] that checks the `prev_root` chain only for the entries from
    /// `chain_from` on and hands every checked entry to `visit` in index order (module docs).
    /// Everything else is checked for every entry: decoding, index, time order, the leaf hash
    /// recomputed and compared with the stored one, every stored node hash, the tiles, the
    /// checkpoints. With `chain_from` above 0 the caller must compare the returned root at
    /// `chain_from` with a signed root of that size.
    ///
    /// # Errors
    /// As [`Self::verify`]; [`StoreError::Visit`] with the visitor's error.
    pub fn verify_streaming(
        &self,
        sizes: &[u64],
        chain_from: u64,
        visit: &mut Visit<'_>,
    ) -> Result<(OpenReport, BTreeMap<u64, Hash>), StoreError> {
        let mut v = Verification::begin(self, sizes, chain_from)?;
        while !v.pass(self, u64::MAX, visit)? {}
        v.finish(self)
    }
}

/// [`Store::verify_streaming`] in passes, so that the caller can close and reopen the store
/// between two of them ([`crate::Reopen`]): sled keeps in memory every page a scan reads (the
/// blob pages of the entry bundles are not bounded by its cache), and only a reopen frees them.
/// The passes together read, check and visit every entry exactly once, in the order of one
/// pass, and check everything [`Store::verify_streaming`] checks.
pub struct Verification {
    size: u64,
    checkpoints: BTreeMap<u64, String>,
    sizes: Vec<u64>,
    chain_from: u64,
    roots: BTreeMap<u64, Hash>,
    ct: CompactTree,
    last_ts: u64,
    registry: Option<Registry>,
    v2: bool,
    tiles: TileCheck,
    // Where the next pass resumes (layout 2): the bundle and the index after the last entry read.
    resume: Option<(u64, u64)>,
    done: bool,
    // The scan of the `t` keys after the entries (layout 2), and the key it resumes at.
    tile_keys: TileKeys,
    tiles_from: Option<Vec<u8>>,
    tiles_done: bool,
    passes: u64,
}

impl Verification {
    /// Starts the check of `store` (see [`Store::verify_streaming`]).
    ///
    /// # Errors
    /// On storage failure.
    pub fn begin(store: &Store, sizes: &[u64], chain_from: u64) -> Result<Self, StoreError> {
        let checkpoints: BTreeMap<u64, String> = store.checkpoints().collect::<Result<_, _>>()?;
        let mut roots: BTreeMap<u64, Hash> = BTreeMap::new();
        let ct = CompactTree::new();
        if checkpoints.contains_key(&0) || sizes.contains(&0) {
            roots.insert(0, ct.root());
        }
        let size = store.size()?;
        Ok(Self {
            size,
            checkpoints,
            sizes: sizes.to_vec(),
            chain_from,
            roots,
            ct,
            last_ts: 0,
            registry: None,
            v2: store.layout() == crate::layout::LAYOUT_VERSION,
            tiles: TileCheck::default(),
            resume: None,
            done: false,
            tile_keys: TileKeys::new(size),
            tiles_from: None,
            tiles_done: false,
            passes: 0,
        })
    }

    /// Entries checked so far.
    #[must_use]
    pub fn checked(&self) -> u64 {
        self.ct.size()
    }

    /// Passes run so far.
    #[must_use]
    pub fn passes(&self) -> u64 {
        self.passes
    }

    /// Checks and visits the next entries of `store` (the store [`Self::begin`] was given, or the
    /// same store reopened) until every entry was read, or until at least `budget` bytes of
    /// entries were read and the pass can stop at a bundle boundary. Returns whether every entry
    /// was read (then call [`Self::finish`]).
    ///
    /// # Errors
    /// As [`Store::verify_streaming`].
    pub fn pass(&mut self, store: &Store, budget: u64, visit: &mut Visit<'_>) -> Result<bool, StoreError> {
        if self.done && (self.tiles_done || !self.v2) {
            return Ok(true);
        }
        self.passes += 1;
        let mut read = 0u64;
        if !self.done && !self.entries(store, budget, &mut read, visit)? {
            return Ok(false);
        }
        if !self.v2 || self.tiles_done {
            return Ok(true);
        }
        // The `t` keys (every tile of the log, 8 KiB each when full): read in passes too, of a
        // quarter of the budget (a tile is held as stored, 32 bytes per entry, while the entry
        // bundles are held compressed).
        let budget = (budget / 4).max(1);
        let from = self.tiles_from.take().unwrap_or_else(|| vec![b't']);
        for r in store.raw_tree().range(from..) {
            let (k, v) = r?;
            if k.first() != Some(&b't') {
                break;
            }
            self.tile_keys.key(&k, &v)?;
            read = read.saturating_add(v.len() as u64);
            if read >= budget {
                let mut next = k.to_vec();
                next.push(0);
                self.tiles_from = Some(next);
                return Ok(false);
            }
        }
        self.tiles_done = true;
        Ok(true)
    }

    /// The entries part of [`Self::pass`]: false when it stopped at its budget.
    fn entries(
        &mut self,
        store: &Store,
        budget: u64,
        read: &mut u64,
        visit: &mut Visit<'_>,
    ) -> Result<bool, StoreError> {
        if self.v2 {
            let mut it = match self.resume {
                None => crate::layout::Records::new(store, 0, u64::MAX),
                Some(at) => crate::layout::Records::resumed(store, at, u64::MAX),
            };
            while let Some(r) = it.next() {
                let (index, stored, bytes) = r?;
                *read = read.saturating_add(bytes.len() as u64);
                self.entry(store, index, stored, &bytes, visit)?;
                if *read >= budget
                    && let Some(at) = it.resume_at()
                {
                    self.resume = Some(at);
                    return Ok(false);
                }
            }
        } else {
            for r in store.records(0, u64::MAX) {
                let (index, stored, bytes) = r?;
                self.entry(store, index, stored, &bytes, visit)?;
            }
        }
        self.done = true;
        // As in one pass: a missing last entry is named before the tiles are checked.
        if self.ct.size() != self.size {
            return Err(tampered(TamperFault::MissingEntry { index: self.ct.size() }));
        }
        Ok(true)
    }

    fn entry(
        &mut self,
        store: &Store,
        index: u64,
        stored: Option<Hash>,
        bytes: &[u8],
        visit: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        let expected = self.ct.size();
        if index < expected {
            return Err(tampered(TamperFault::StrayRecord { index }));
        }
        if index != expected {
            return Err(tampered(TamperFault::MissingEntry { index: expected }));
        }
        if index >= self.size {
            return Err(tampered(TamperFault::ExtraEntry { index }));
        }
        let e = Entry::decode(bytes).map_err(|e| {
            tampered(TamperFault::Malformed {
                index,
                detail: e.to_string(),
            })
        })?;
        if e.index != index {
            return Err(tampered(TamperFault::IndexMismatch { index, found: e.index }));
        }
        if index == 0 {
            self.registry = Some(charter_registry(&e)?);
        } else if let Some(reg) = self.registry.as_mut()
            && matches!(
                kind_of(&e.envelope.payload_type),
                Some("node.rotate" | "node.compromise")
            )
        {
            // The chain of node keys: a rotation the rules refuse has no effect, so the
            // checkpoints after it must still be the old key's.
            let _ = ledger_core::state::fold_registry(reg, &e);
        }
        let lh = ledger_core::hash::leaf_hash(bytes);
        let stored = stored.ok_or_else(|| {
            tampered(TamperFault::TileMismatch {
                level: 0,
                tile: index / crate::layout::BUNDLE_ENTRIES,
                detail: format!("no leaf hash for entry {index}"),
            })
        })?;
        if stored != lh {
            return Err(tampered(TamperFault::LeafHashMismatch {
                index,
                computed: lh,
                stored,
            }));
        }
        if index >= self.chain_from {
            let prev = self.ct.root();
            if e.prev_root != prev {
                return Err(tampered(TamperFault::ChainBroken {
                    index,
                    expected: prev,
                    found: e.prev_root,
                }));
            }
        }
        if e.timestamp_micros < self.last_ts {
            return Err(tampered(TamperFault::TimeRegression { index }));
        }
        self.last_ts = e.timestamp_micros;
        let v2 = self.v2;
        let mut completed = Vec::new();
        self.ct.append_with(lh, |n| {
            if v2 && n.level >= 8 && n.level % 8 == 0 {
                completed.push(n);
            }
        });
        for n in completed {
            self.tiles.check(store, &n)?;
        }
        visit(index, &e, &lh).map_err(StoreError::Visit)?;
        let now = self.ct.size();
        if self.checkpoints.contains_key(&now) || self.sizes.contains(&now) {
            self.roots.insert(now, self.ct.root());
        }
        Ok(())
    }

    /// The checks after the last entry (tiles, stored root, checkpoints) on `store`, and the
    /// report with the roots at the asked sizes.
    ///
    /// # Errors
    /// As [`Store::verify_streaming`]; also when a pass is still due.
    pub fn finish(self, store: &Store) -> Result<(OpenReport, BTreeMap<u64, Hash>), StoreError> {
        if !self.done || (self.v2 && !self.tiles_done) {
            return Err(StoreError::Corrupt(
                "the store check finished before its last pass".into(),
            ));
        }
        let size = self.size;
        let ct = self.ct;
        if ct.size() != size {
            return Err(tampered(TamperFault::MissingEntry { index: ct.size() }));
        }
        if self.v2 {
            self.tile_keys.end()?;
        }
        let stored_root = root_from_source(store, size).map_err(|_| tampered(TamperFault::NodeMismatch { size }))?;
        if stored_root != ct.root() {
            return Err(tampered(TamperFault::NodeMismatch { size }));
        }
        check_checkpoints(&self.checkpoints, &self.roots, self.registry.as_ref(), &ct.root())?;
        let asked = self
            .roots
            .iter()
            .filter(|(s, _)| self.sizes.contains(s))
            .map(|(s, r)| (*s, *r))
            .collect();
        Ok((
            OpenReport {
                size,
                root: ct.root(),
                checkpoints: self.checkpoints.len(),
                node_verifier: self
                    .registry
                    .as_ref()
                    .and_then(|r| NoteVerifier::new(&r.charter.origin, r.node_key).ok()),
                node_keys: self.registry.map(|r| r.node_keys).unwrap_or_default(),
            },
            asked,
        ))
    }
}
