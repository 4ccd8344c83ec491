//! The log as C2SP tlog-tiles resources (c2sp.org/tlog-tiles): hash tiles and entry bundles.
//!
//! [`TileSource`] is the interface the read-only HTTP tile server (`ledger-node`, `docs/api.md`)
//! serves from. Today [`Store`] implements it by assembling each tile from the stored node hashes
//! and entries (one sled range scan per tile); a store that keeps tiles and bundles as such can
//! implement it by returning them directly.
//!
//! A tile at level `L`, index `N`, width `W` is the `W` Merkle Tree Hashes of the perfect subtrees
//! of height `8·L` with indices `N·256 … N·256+W-1`, concatenated (32 bytes each). An entry bundle
//! is the entries `N·256 … N·256+W-1`, each as a big-endian uint16 length and the exact leaf bytes
//! whose leaf hash is in the level-0 tile.

use crate::{Store, StoreError, UNSTORED_LEVELS, be, key, node_key};
use ledger_core::hash::Hash;
use ledger_core::merkle::NodeSource;

/// Tree levels one tile spans (the spec's tile height).
pub const TILE_HEIGHT: u32 = 8;

/// Hashes in a full tile (and entries in a full bundle).
pub const TILE_WIDTH: u16 = 1 << TILE_HEIGHT;

/// Highest tile level the spec allows in a path.
pub const MAX_TILE_LEVEL: u8 = 63;

/// Largest entry an entry bundle can carry: its length is a big-endian uint16. The node accepts
/// entries up to `ledger_core::entry::MAX_ENTRY_BYTES` (1 MiB of payload plus 64 KiB); a bundle
/// that would hold a longer entry is not served ([`TileError::EntryTooLarge`], `docs/format.md`).
pub const MAX_BUNDLE_ENTRY_BYTES: usize = u16::MAX as usize;

/// Why a tile or bundle cannot be produced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TileError {
    /// The tile's width is 0 or above 256, or its level above 63.
    #[error("no such tile: level {level}, width {width}")]
    Malformed {
        /// Requested level.
        level: u8,
        /// Requested width.
        width: u16,
    },
    /// The tile reaches past the log (or past `u64` indices).
    #[error("the tile reaches past the log's {size} entries")]
    Beyond {
        /// Entries in the log.
        size: u64,
    },
    /// An entry of the bundle is longer than a uint16 length can say.
    #[error(
        "entry {index} is {len} bytes, over the {MAX_BUNDLE_ENTRY_BYTES} a tlog-tiles entry bundle can carry; read it with GetEntry"
    )]
    EntryTooLarge {
        /// The entry's index.
        index: u64,
        /// Its length in bytes.
        len: usize,
    },
    /// The store failed or holds a malformed value.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Source of the log's tlog-tiles resources.
pub trait TileSource: Send + Sync {
    /// The latest signed checkpoint note (size, note), with the witness cosignatures stored for it.
    ///
    /// # Errors
    /// On storage failure.
    fn signed_checkpoint(&self) -> Result<Option<(u64, String)>, TileError>;

    /// The hash tile at `level`, `index`, `width` (1 to 256 hashes): `width`·32 bytes.
    ///
    /// # Errors
    /// [`TileError::Malformed`], [`TileError::Beyond`], or on storage failure.
    fn hash_tile(&self, level: u8, index: u64, width: u16) -> Result<Vec<u8>, TileError>;

    /// The entry bundle at `index`, `width` (1 to 256 entries).
    ///
    /// # Errors
    /// [`TileError::Malformed`], [`TileError::Beyond`], [`TileError::EntryTooLarge`], or on
    /// storage failure.
    fn entry_bundle(&self, index: u64, width: u16) -> Result<Vec<u8>, TileError>;
}

/// The range of tree-level-`8·level` nodes a tile covers, and the entries `[start, end)` they
/// span; `None` when it does not fit in `u64` indices.
fn tile_span(level: u8, index: u64, width: u16) -> Option<(u64, u64, u64)> {
    let first = index.checked_mul(u64::from(TILE_WIDTH))?;
    let shift = u32::from(level) * TILE_HEIGHT;
    if shift >= 64 {
        // Even one hash at this level spans 2^64 entries or more.
        return None;
    }
    let end_node = first.checked_add(u64::from(width))?;
    let start = (u128::from(first)) << shift;
    let end = (u128::from(end_node)) << shift;
    Some((first, u64::try_from(start).ok()?, u64::try_from(end).ok()?))
}

/// The entries `[start, end)` a tile at `level`, `index`, `width` spans, or `None` when the tile
/// is malformed or reaches past `u64` indices.
#[must_use]
pub fn tile_entries(level: u8, index: u64, width: u16) -> Option<(u64, u64)> {
    if level > MAX_TILE_LEVEL || width == 0 || width > TILE_WIDTH {
        return None;
    }
    tile_span(level, index, width).map(|(_, s, e)| (s, e))
}

impl Store {
    /// Checks a tile request against the stored log; returns the first node index at the tile's
    /// tree level.
    fn tile_node_start(&self, level: u8, index: u64, width: u16) -> Result<u64, TileError> {
        if level > MAX_TILE_LEVEL || width == 0 || width > TILE_WIDTH {
            return Err(TileError::Malformed { level, width });
        }
        let size = self.size()?;
        match tile_span(level, index, width) {
            Some((first, _, end)) if end <= size => Ok(first),
            _ => Err(TileError::Beyond { size }),
        }
    }
}

impl TileSource for Store {
    fn signed_checkpoint(&self) -> Result<Option<(u64, String)>, TileError> {
        Ok(self.latest_checkpoint()?)
    }

    fn hash_tile(&self, level: u8, index: u64, width: u16) -> Result<Vec<u8>, TileError> {
        let first = self.tile_node_start(level, index, width)?;
        let n = u64::from(width);
        let mut out = Vec::with_capacity(usize::from(width) * 32);
        let tree_level = u32::from(level) * TILE_HEIGHT;
        if tree_level == 0 {
            // Leaf hashes are stored with the entries: one range scan.
            let from = key(b'e', &be(first));
            let to = key(b'e', &be(first + n));
            for (want, r) in (first..).zip(self.tree.range(from..to)) {
                let (k, v) = r.map_err(StoreError::from)?;
                if k.get(1..) != Some(&be(want)[..]) || v.len() < 32 {
                    return Err(StoreError::Corrupt(format!("entry {want}")).into());
                }
                out.extend_from_slice(&v[..32]);
            }
        } else if tree_level <= UNSTORED_LEVELS {
            for i in first..first + n {
                let h = self
                    .node(tree_level, i)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                out.extend_from_slice(&h.0);
            }
        } else {
            let from = node_key(tree_level, first);
            let to = node_key(tree_level, first + n);
            for (want, r) in (first..).zip(self.tree.range(from..to)) {
                let (k, v) = r.map_err(StoreError::from)?;
                if k[..] != node_key(tree_level, want)[..] {
                    return Err(StoreError::Corrupt(format!("node {tree_level}/{want} not stored")).into());
                }
                let h = Hash::from_slice(&v).map_err(|_| StoreError::Corrupt(format!("node {tree_level}/{want}")))?;
                out.extend_from_slice(&h.0);
            }
        }
        if out.len() != usize::from(width) * 32 {
            return Err(StoreError::Corrupt(format!("tile {level}/{index}: hashes missing")).into());
        }
        Ok(out)
    }

    fn entry_bundle(&self, index: u64, width: u16) -> Result<Vec<u8>, TileError> {
        let first = self.tile_node_start(0, index, width)?;
        let n = u64::from(width);
        let from = key(b'e', &be(first));
        let to = key(b'e', &be(first + n));
        let mut out = Vec::new();
        let mut got = 0u64;
        for (want, r) in (first..).zip(self.tree.range(from..to)) {
            let (k, v) = r.map_err(StoreError::from)?;
            if k.get(1..) != Some(&be(want)[..]) {
                return Err(StoreError::Corrupt(format!("entry {want}")).into());
            }
            let leaf = v
                .get(32..)
                .ok_or_else(|| StoreError::Corrupt(format!("entry {want}")))?;
            let len = u16::try_from(leaf.len()).map_err(|_| TileError::EntryTooLarge {
                index: want,
                len: leaf.len(),
            })?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(leaf);
            got += 1;
        }
        if got != n {
            return Err(StoreError::Corrupt(format!("bundle {index}: entries missing")).into());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PreparedEntry;
    use ledger_core::compact::CompactTree;
    use ledger_core::hash::{leaf_hash, node_hash};
    use ledger_core::merkle::root_of;

    /// A store of `n` entries of `len(i)` bytes, written in groups of 5000.
    fn store_of(n: u64, len: impl Fn(u64) -> usize) -> (tempfile::TempDir, Store, Vec<Vec<u8>>) {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(dir.path()).expect("open");
        let mut ct = CompactTree::new();
        let mut leaves = Vec::new();
        let mut i = 0u64;
        while i < n {
            let mut group = Vec::new();
            let mut nodes = Vec::new();
            for j in i..(i + 5000).min(n) {
                let leaf: Vec<u8> = (0..len(j)).map(|k| (j as usize + k) as u8).collect();
                let lh = leaf_hash(&leaf);
                ct.append_with(lh, |c| nodes.push(c));
                group.push(PreparedEntry {
                    index: j,
                    leaf: leaf.clone(),
                    leaf_hash: lh,
                    request: None,
                    terms: Vec::new(),
                    tickets: Vec::new(),
                });
                leaves.push(leaf);
            }
            i = (i + 5000).min(n);
            store.commit_group(&group, &nodes, i, None).expect("commit");
        }
        (dir, store, leaves)
    }

    /// The tile's hashes rebuilt into the subtree root they span (a full tile's MTH).
    fn tile_root(tile: &[u8]) -> Hash {
        let hs: Vec<Hash> = tile.chunks(32).map(|c| Hash::from_slice(c).expect("32")).collect();
        root_of(&hs)
    }

    #[test]
    fn tiles_hold_the_spec_hashes_and_bundles_the_leaves() {
        let n = 256 * 256 + 300;
        let (_d, store, leaves) = store_of(n, |j| 10 + (j % 50) as usize);
        let hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l)).collect();
        // Level 0, full: the leaf hashes; its root is the level-1 tile's first hash.
        let t0 = store.hash_tile(0, 3, 256).expect("tile 0/3");
        assert_eq!(t0.len(), 256 * 32);
        assert_eq!(&t0[..32], &hashes[768].0);
        let t1 = store.hash_tile(1, 0, 256).expect("tile 1/0");
        assert_eq!(&t1[3 * 32..4 * 32], &tile_root(&t0).0);
        assert_eq!(&t1[3 * 32..4 * 32], &root_of(&hashes[768..1024]).0);
        // Level 2, width 1: the root of the first 65536 entries, which is also level 1's root.
        let t2 = store.hash_tile(2, 0, 1).expect("tile 2/0.p/1");
        assert_eq!(&t2[..], &root_of(&hashes[..65536]).0);
        assert_eq!(&t2[..], &tile_root(&t1).0);
        // A partial level-1 tile and a partial level-0 tile at the end.
        let p1 = store.hash_tile(1, 1, 1).expect("tile 1/1.p/1");
        assert_eq!(&p1[..], &root_of(&hashes[65536..65792]).0);
        let p0 = store.hash_tile(0, 257, 44).expect("partial");
        assert_eq!(&p0[..32], &hashes[65792].0);
        assert_eq!(&p0[43 * 32..], &hashes[65835].0);
        // Bundles: uint16 BE length + the exact leaf, in order.
        let b = store.entry_bundle(257, 44).expect("bundle");
        let mut at = 0;
        for leaf in &leaves[65792..65836] {
            let len = usize::from(u16::from_be_bytes([b[at], b[at + 1]]));
            assert_eq!(&b[at + 2..at + 2 + len], &leaf[..]);
            at += 2 + len;
        }
        assert_eq!(at, b.len());
        // The whole tree's root from tiles equals the compact tree's.
        let root = node_hash(&root_of(&hashes[..65536]), &root_of(&hashes[65536..]));
        assert_eq!(root, store.compact_tree().expect("ct").root());
    }

    #[test]
    fn tiles_past_the_log_or_malformed_are_refused() {
        let (_d, store, _) = store_of(300, |_| 8);
        assert!(matches!(
            store.hash_tile(0, 1, 45),
            Err(TileError::Beyond { size: 300 })
        ));
        assert!(matches!(store.hash_tile(0, 1, 256), Err(TileError::Beyond { .. })));
        assert!(matches!(store.hash_tile(1, 0, 2), Err(TileError::Beyond { .. })));
        assert!(matches!(store.entry_bundle(2, 1), Err(TileError::Beyond { .. })));
        assert!(matches!(store.hash_tile(0, u64::MAX, 1), Err(TileError::Beyond { .. })));
        assert!(matches!(store.hash_tile(8, 0, 1), Err(TileError::Beyond { .. })));
        assert!(matches!(store.hash_tile(63, 1, 1), Err(TileError::Beyond { .. })));
        assert!(matches!(store.hash_tile(64, 0, 1), Err(TileError::Malformed { .. })));
        assert!(matches!(store.hash_tile(0, 0, 0), Err(TileError::Malformed { .. })));
        assert!(matches!(store.entry_bundle(0, 257), Err(TileError::Malformed { .. })));
        assert_eq!(store.hash_tile(0, 1, 44).expect("fits").len(), 44 * 32);
        assert_eq!(store.hash_tile(1, 0, 1).expect("fits").len(), 32);
    }

    #[test]
    fn the_checkpoint_served_is_the_latest_with_its_cosignatures() {
        let (_d, store, _) = store_of(300, |_| 8);
        assert_eq!(store.signed_checkpoint().expect("read"), None);
        store
            .put_checkpoint(100, "log\n100\nroot\n\n\u{2014} log sig\n")
            .expect("put");
        store
            .put_checkpoint(300, "log\n300\nroot\n\n\u{2014} log sig\n")
            .expect("put");
        let cosigned = "log\n300\nroot\n\n\u{2014} log sig\n\u{2014} witness cosig\n";
        store.put_cosigned_checkpoint(300, cosigned, true).expect("cosigned");
        assert_eq!(
            store.signed_checkpoint().expect("read"),
            Some((300, cosigned.to_string()))
        );
    }

    #[test]
    fn a_bundle_with_an_entry_over_65535_bytes_is_refused_by_name() {
        let (_d, store, _) = store_of(10, |j| if j == 7 { 70_000 } else { 100 });
        assert_eq!(store.entry_bundle(0, 7).expect("entries 0-6").len(), 7 * 102);
        match store.entry_bundle(0, 8) {
            Err(TileError::EntryTooLarge { index: 7, len: 70_000 }) => {}
            other => panic!("{other:?}"),
        }
        // Its hash is still in the hash tile (the entry itself is read with GetEntry).
        assert_eq!(store.hash_tile(0, 0, 10).expect("tile").len(), 320);
        let max = store_of(1, |_| MAX_BUNDLE_ENTRY_BYTES)
            .1
            .entry_bundle(0, 1)
            .expect("max");
        assert_eq!(&max[..2], &[0xff, 0xff]);
    }
}
