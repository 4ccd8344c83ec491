//! RFC 9162 §2.1 Merkle Tree Hash, inclusion proofs (§2.1.3) and consistency proofs (§2.1.4).
//!
//! Proof *generation* works over any [`NodeSource`]: something that can return the hash of a
//! perfect (complete, aligned) subtree. A slice of leaf hashes is one (computing subtrees on the
//! fly); the node's store is another (reading stored node hashes, so a proof costs O(log n) reads).
//! Proof *verification* follows the algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2 to the letter,
//! including the check that a proof is consumed exactly.

use crate::hash::{Hash, empty_root, node_hash};

/// Errors from proof generation and verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange {
        /// Requested leaf index.
        index: u64,
        /// Tree size.
        size: u64,
    },
    /// The sizes of a consistency proof are not `0 <= old <= new`.
    #[error("invalid sizes for a consistency proof: old {old}, new {new}")]
    InvalidSizes {
        /// Older tree size.
        old: u64,
        /// Newer tree size.
        new: u64,
    },
    /// The proof has the wrong number of hashes for its index and sizes.
    #[error("proof has {found} hashes, expected {expected}")]
    WrongLength {
        /// Length required by the index and sizes.
        expected: usize,
        /// Length of the proof given.
        found: usize,
    },
    /// The proof recomputes to a different root.
    #[error("proof recomputes root {computed}, expected {expected}")]
    RootMismatch {
        /// Root the proof leads to.
        computed: Hash,
        /// Root it should lead to.
        expected: Hash,
    },
    /// The older root of a consistency proof does not match.
    #[error("consistency proof recomputes old root {computed}, expected {expected}")]
    OldRootMismatch {
        /// Root the proof leads to.
        computed: Hash,
        /// Root it should lead to.
        expected: Hash,
    },
    /// The node source could not provide a subtree hash.
    #[error("node source failed: {0}")]
    Source(String),
}

/// A source of perfect-subtree hashes.
///
/// `node(level, index)` returns the root of the complete subtree of `2^level` leaves that starts at
/// leaf `index << level`. Implementations only need to answer for subtrees that lie entirely within
/// the tree sizes they are asked about.
pub trait NodeSource {
    /// Hash of the perfect subtree at `level` and `index`.
    ///
    /// # Errors
    /// When the subtree is unknown or the backing store fails.
    fn node(&self, level: u32, index: u64) -> Result<Hash, ProofError>;
}

/// Leaf hashes in memory are a node source that computes subtrees on demand (O(2^level) each).
impl NodeSource for [Hash] {
    fn node(&self, level: u32, index: u64) -> Result<Hash, ProofError> {
        let width = 1u64
            .checked_shl(level)
            .ok_or(ProofError::Source("level too large".into()))?;
        let start = index
            .checked_mul(width)
            .ok_or(ProofError::Source("index overflow".into()))?;
        let end = start
            .checked_add(width)
            .ok_or(ProofError::Source("index overflow".into()))?;
        if end > self.len() as u64 {
            return Err(ProofError::Source(format!(
                "subtree {level}/{index} beyond {} leaves",
                self.len()
            )));
        }
        Ok(root_of(&self[start as usize..end as usize]))
    }
}

impl NodeSource for Vec<Hash> {
    fn node(&self, level: u32, index: u64) -> Result<Hash, ProofError> {
        self.as_slice().node(level, index)
    }
}

/// Largest power of two strictly smaller than `n` (for `n >= 2`).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Merkle Tree Hash of a list of leaf hashes (RFC 9162 §2.1.1). The empty list hashes to
/// SHA-256 of the empty string.
pub fn root_of(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split_point(n as u64) as usize;
            node_hash(&root_of(&leaves[..k]), &root_of(&leaves[k..]))
        }
    }
}

/// Root of the leaves `[start, end)` read from a node source. Ranges produced by the RFC 9162
/// recursion are always aligned, so each is a chain of at most log2(n) perfect subtrees.
///
/// # Errors
/// When the node source fails, or the range is empty.
pub fn subtree_root<S: NodeSource + ?Sized>(src: &S, start: u64, end: u64) -> Result<Hash, ProofError> {
    let n = end
        .checked_sub(start)
        .ok_or(ProofError::InvalidSizes { old: start, new: end })?;
    if n == 0 {
        return Ok(empty_root());
    }
    if n.is_power_of_two() && start.is_multiple_of(n) {
        let level = n.trailing_zeros();
        return src.node(level, start >> level);
    }
    if n == 1 {
        return src.node(0, start);
    }
    let k = split_point(n);
    let l = subtree_root(src, start, start + k)?;
    let r = subtree_root(src, start + k, end)?;
    Ok(node_hash(&l, &r))
}

/// Root of the first `size` leaves of a node source.
///
/// # Errors
/// When the node source fails.
pub fn root_from_source<S: NodeSource + ?Sized>(src: &S, size: u64) -> Result<Hash, ProofError> {
    subtree_root(src, 0, size)
}

/// Inclusion proof (audit path) for leaf `index` in the tree of `size` leaves, RFC 9162 §2.1.3.1.
///
/// # Errors
/// When `index >= size` or the node source fails.
pub fn inclusion_proof<S: NodeSource + ?Sized>(src: &S, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut out = Vec::with_capacity(64);
    path(src, index, 0, size, &mut out)?;
    Ok(out)
}

// PATH(m, D[start:end]) with m relative to start; appends bottom-up.
fn path<S: NodeSource + ?Sized>(src: &S, m: u64, start: u64, end: u64, out: &mut Vec<Hash>) -> Result<(), ProofError> {
    let n = end - start;
    if n <= 1 {
        return Ok(());
    }
    let k = split_point(n);
    if m < k {
        path(src, m, start, start + k, out)?;
        out.push(subtree_root(src, start + k, end)?);
    } else {
        path(src, m - k, start + k, end, out)?;
        out.push(subtree_root(src, start, start + k)?);
    }
    Ok(())
}

/// Consistency proof between the trees of `old` and `new` leaves, RFC 9162 §2.1.4.1. Empty when
/// `old == 0` or `old == new`.
///
/// # Errors
/// When `old > new` or the node source fails.
pub fn consistency_proof<S: NodeSource + ?Sized>(src: &S, old: u64, new: u64) -> Result<Vec<Hash>, ProofError> {
    if old > new {
        return Err(ProofError::InvalidSizes { old, new });
    }
    let mut out = Vec::with_capacity(64);
    if old == 0 || old == new {
        return Ok(out);
    }
    subproof(src, old, 0, new, true, &mut out)?;
    Ok(out)
}

// SUBPROOF(m, D[start:end], b).
fn subproof<S: NodeSource + ?Sized>(
    src: &S,
    m: u64,
    start: u64,
    end: u64,
    b: bool,
    out: &mut Vec<Hash>,
) -> Result<(), ProofError> {
    let n = end - start;
    if m == n {
        if !b {
            out.push(subtree_root(src, start, end)?);
        }
        return Ok(());
    }
    let k = split_point(n);
    if m <= k {
        subproof(src, m, start, start + k, b, out)?;
        out.push(subtree_root(src, start + k, end)?);
    } else {
        subproof(src, m - k, start + k, end, false, out)?;
        out.push(subtree_root(src, start, start + k)?);
    }
    Ok(())
}

/// Recomputes the root from an inclusion proof, RFC 9162 §2.1.3.2.
///
/// # Errors
/// When the index is out of range or the proof has the wrong length.
pub fn root_from_inclusion_proof(index: u64, size: u64, leaf: &Hash, proof: &[Hash]) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    if proof.len() != expected {
        return Err(ProofError::WrongLength {
            expected,
            found: proof.len(),
        });
    }
    let mut fn_ = index;
    let mut sn = size - 1;
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(ProofError::WrongLength {
                expected,
                found: proof.len(),
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongLength {
            expected,
            found: proof.len(),
        });
    }
    Ok(r)
}

/// Verifies an inclusion proof against a root.
///
/// # Errors
/// When the proof is malformed or leads to another root.
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> Result<(), ProofError> {
    let computed = root_from_inclusion_proof(index, size, leaf, proof)?;
    if computed != *root {
        return Err(ProofError::RootMismatch {
            computed,
            expected: *root,
        });
    }
    Ok(())
}

/// Number of hashes in the inclusion proof of `index` in a tree of `size` (requires index < size).
pub fn inclusion_proof_len(index: u64, size: u64) -> usize {
    // Inner part: bits where index and size-1 differ below their highest differing bit; plus the
    // border part: set bits of index above that.
    let last = size - 1;
    let inner = (64 - (index ^ last).leading_zeros()) as usize;
    let border = (index >> inner).count_ones() as usize;
    inner + border
}

/// Verifies a consistency proof between two roots, RFC 9162 §2.1.4.2.
///
/// `old == 0` is consistent with anything given an empty proof; `old == new` requires equal roots
/// and an empty proof. The proof must be consumed exactly.
///
/// # Errors
/// When the sizes are invalid, the proof has the wrong shape, or a root does not match.
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old > new {
        return Err(ProofError::InvalidSizes { old, new });
    }
    if old == new {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength {
                expected: 0,
                found: proof.len(),
            });
        }
        if old_root != new_root {
            return Err(ProofError::RootMismatch {
                computed: *old_root,
                expected: *new_root,
            });
        }
        return Ok(());
    }
    if old == 0 {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength {
                expected: 0,
                found: proof.len(),
            });
        }
        return Ok(());
    }
    if proof.is_empty() {
        return Err(ProofError::WrongLength { expected: 1, found: 0 });
    }
    // Step 2: if old is a power of two, the old root is the first node of the path.
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let mut fn_ = old - 1;
    let mut sn = new - 1;
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let mut fr = path[0];
    let mut sr = path[0];
    for c in &path[1..] {
        if sn == 0 {
            return Err(ProofError::WrongLength {
                expected: path.len() - 1,
                found: proof.len(),
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongLength {
            expected: proof.len() + 1,
            found: proof.len(),
        });
    }
    if fr != *old_root {
        return Err(ProofError::OldRootMismatch {
            computed: fr,
            expected: *old_root,
        });
    }
    if sr != *new_root {
        return Err(ProofError::RootMismatch {
            computed: sr,
            expected: *new_root,
        });
    }
    Ok(())
}
