//! RFC 9162 (Certificate Transparency 2.0) §2.1 transparency-log tree, and nothing else.
//!
//! - [`hash`]: the SHA-256 [`struct@Hash`] value and the RFC 9162 §2.1 leaf (`0x00 ‖ leaf`) and interior
//!   node (`0x01 ‖ left ‖ right`) hash functions; the empty tree's root.
//! - [`merkle`]: the Merkle Tree Hash (§2.1.1), inclusion proofs (§2.1.3) and consistency proofs
//!   (§2.1.4): generation over any [`merkle::NodeSource`] (a slice of leaf hashes, or a store's
//!   persisted node hashes) and verification.
//! - [`compact`]: an incremental tree (the "compact range" from leaf 0, O(log n) hashes) for
//!   appending and streaming replay, reporting every perfect subtree it completes.
//!
//! What this crate does not do: it knows nothing of what a leaf contains (entries, envelopes,
//! records), of checkpoints or signatures (see `ledger-note`), of storage (storage enters through
//! the one-method [`merkle::NodeSource`] trait) or of I/O. Functions never panic on input; they
//! return [`merkle::ProofError`]. Its vectors (`tests/rfc6962_vectors.rs`) are the RFC 6962/9162
//! 8-leaf reference tree published by github.com/transparency-dev/merkle (leaves, node hashes,
//! roots, proofs and corruptions).
//!
//! Features: `serde` gives [`struct@Hash`] a serde form (lowercase hex in human-readable formats, 32 raw
//! bytes otherwise).

pub mod compact;
pub mod hash;
pub mod merkle;

pub use compact::CompactTree;
pub use hash::Hash;
