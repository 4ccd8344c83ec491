//! An incremental Merkle tree ("compact range" from leaf 0): the roots of the perfect subtrees
//! that make up a tree of `size` leaves, one per set bit of `size`, O(log n) hashes in all.
//!
//! Appending a leaf costs amortized O(1) hashes and reports the perfect subtrees it completes, so
//! a store can persist every node hash as it goes; the root is folded from the frontier on demand.
//! The verifier replays millions of entries with it in bounded memory.

use crate::hash::{Hash, empty_root, node_hash};

/// Perfect subtree completed by an append: `2^level` leaves starting at `index << level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedNode {
    /// Height of the subtree (0 = a leaf).
    pub level: u32,
    /// Position of the subtree among those of its level.
    pub index: u64,
    /// Its hash.
    pub hash: Hash,
}

/// The frontier of a Merkle tree built from leaf 0.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactTree {
    size: u64,
    /// Perfect subtree roots, largest (leftmost) first.
    nodes: Vec<Hash>,
}

/// The frontier given does not match the size given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a tree of size {size} needs {expected} frontier hashes, got {found}")]
pub struct FrontierError {
    /// Tree size.
    pub size: u64,
    /// Number of set bits in the size.
    pub expected: usize,
    /// Number of hashes given.
    pub found: usize,
}

impl CompactTree {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a tree from its size and frontier hashes (largest subtree first).
    ///
    /// # Errors
    /// When the number of hashes differs from the number of set bits of `size`.
    pub fn from_parts(size: u64, nodes: Vec<Hash>) -> Result<Self, FrontierError> {
        let expected = size.count_ones() as usize;
        if nodes.len() != expected {
            return Err(FrontierError {
                size,
                expected,
                found: nodes.len(),
            });
        }
        Ok(Self { size, nodes })
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Frontier hashes, largest subtree first.
    pub fn frontier(&self) -> &[Hash] {
        &self.nodes
    }

    /// Levels of the frontier hashes, largest subtree first.
    pub fn frontier_levels(&self) -> impl Iterator<Item = u32> + '_ {
        (0..64u32).rev().filter(move |b| self.size >> b & 1 == 1)
    }

    /// Appends a leaf hash; calls `completed` for the leaf itself and for every perfect subtree
    /// the append completes, bottom-up.
    pub fn append_with(&mut self, leaf: Hash, mut completed: impl FnMut(CompletedNode)) {
        let mut h = leaf;
        let mut level = 0u32;
        let mut idx = self.size;
        completed(CompletedNode {
            level,
            index: idx,
            hash: h,
        });
        while idx & 1 == 1 {
            // The frontier always holds one hash per set bit, so this pop cannot fail.
            let Some(left) = self.nodes.pop() else { break };
            h = node_hash(&left, &h);
            level += 1;
            idx >>= 1;
            completed(CompletedNode {
                level,
                index: idx,
                hash: h,
            });
        }
        self.nodes.push(h);
        self.size += 1;
    }

    /// Appends a leaf hash.
    pub fn append(&mut self, leaf: Hash) {
        self.append_with(leaf, |_| {});
    }

    /// The RFC 9162 root of the tree.
    pub fn root(&self) -> Hash {
        let mut it = self.nodes.iter().rev();
        let Some(first) = it.next() else { return empty_root() };
        it.fold(*first, |acc, left| node_hash(left, &acc))
    }
}
