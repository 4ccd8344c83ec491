//! Pure core of the evaluation ledger.
//!
//! Everything that *decides* lives here so that the node and the verifier run the very same code:
//!
//! - [`hash`] and [`merkle`]: the RFC 9162 §2.1 Merkle Tree Hash, inclusion and consistency proofs
//!   (generation over any [`merkle::NodeSource`], and verification), and [`compact`], an incremental
//!   O(log n) tree for streaming replay.
//! - [`dsse`]: DSSE v1 envelopes signed with Ed25519 over the pre-authentication encoding (PAE).
//! - [`entry`]: the log entry (index, timestamp, `prev_root` chain link, envelope) and its canonical
//!   byte encoding, whose SHA-256 leaf hash goes into the tree.
//! - [`note`] and [`checkpoint`]: C2SP signed notes (Ed25519) and C2SP tlog-checkpoint bodies;
//!   [`cosignature`]: C2SP tlog-cosignature v1 (timestamped Ed25519 witness cosignatures);
//!   [`witness`]: the C2SP tlog-witness add-checkpoint rules.
//! - [`state`]: the whole state of a log (key [`registry`] and domain [`rules`]) and the one step
//!   that folds an entry into it, used by the node's sequencer and start-up and by the verifier.
//!
//! No I/O, no async, no storage, no network: storage enters through the one-method
//! [`merkle::NodeSource`] trait and time enters as an argument. Functions never panic on input;
//! they return typed errors.

pub mod bundle;
pub mod checkpoint;
pub mod compact;
pub mod cosignature;
pub mod credential;
pub mod domain;
pub mod draw;
pub mod dsse;
pub mod election;
pub mod entry;
pub mod hash;
pub mod ids;
pub mod keys;
pub mod merkle;
pub mod note;
pub mod registry;
pub mod rfc3797;
pub mod rules;
pub mod seal;
pub mod state;
pub mod time;
pub mod witness;

/// The election rules, now [`rules::election`] (old path kept for callers).
pub use rules::election as election_rules;

pub use checkpoint::Checkpoint;
pub use compact::CompactTree;
pub use dsse::{Envelope, Signature};
pub use entry::Entry;
pub use hash::Hash;
