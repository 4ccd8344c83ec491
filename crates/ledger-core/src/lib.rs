//! Pure core of the evaluation ledger: the domain of the log, over the spec crates.
//!
//! Everything that *decides* lives here so that the node and the verifier run the very same code.
//! The standards it builds on are separate crates with no domain knowledge, re-exported here under
//! the module names they had when they lived in this crate (`ledger_core::hash::Hash`,
//! `ledger_core::dsse::Envelope`, … keep working):
//!
//! - `ledger-tlog` (RFC 9162 tree): [`hash`] (SHA-256 [`struct@Hash`], leaf and node hashes), [`merkle`]
//!   (Merkle Tree Hash, inclusion and consistency proofs over any [`merkle::NodeSource`]) and
//!   [`compact`] (incremental O(log n) tree for appending and streaming replay).
//! - `ledger-note` (C2SP): [`note`] (signed notes, Ed25519), [`checkpoint`] (tlog-checkpoint
//!   bodies), [`cosignature`] (tlog-cosignature v1 witness cosignatures) and [`witness`] (the
//!   tlog-witness add-checkpoint rules).
//! - `ledger-dsse`: [`dsse`] (DSSE v1 envelopes signed with Ed25519 over the PAE) and [`keys`]
//!   (Ed25519 key ids and encodings).
//! - `ledger-credential`: [`credential`] (RFC 9474 RSA blind-signature ballot credentials).
//! - `ledger-seal`: [`seal`] (RFC 9180 HPKE sealing of complainant identities).
//!
//! This crate's own modules:
//!
//! - [`entry`]: the log entry (index, timestamp, `prev_root` chain link, envelope) and its canonical
//!   byte encoding, whose SHA-256 leaf hash goes into the tree.
//! - [`registry`]: the on-ledger key registry (charter, enrol/rotate/revoke by administrator
//!   quorum): who may append which payload type as of each index, and the store's index terms.
//! - [`domain`]: strict types and single-record checks of the domain records (`docs/records.md`);
//!   [`rules`]: the cross-record domain rules ([`rules::DomainState`]) that follow the log, one module
//!   per record family, and their typed codes ([`rules::RuleCode`]).
//! - [`election`]: election, credential, ballot, tally and micro-evaluation records and the tally
//!   arithmetic; [`rules::election`]: their cross-record rules (`docs/ballots.md`).
//! - [`draw`]: verifiable random draws (`ledger-draw-v1`, `docs/draws.md`); [`rfc3797`]: RFC 3797
//!   publicly verifiable selection from public sources named in advance.
//! - [`state`]: the whole state of a log (registry and domain) and the one step that folds an entry
//!   into it, used by the node's sequencer and start-up and by the verifier.
//! - [`bundle`]: court proof bundles (`docs/bundle.md`), built by the node and checked offline.
//! - [`ids`]: the syntax of record ids (the leaf module the record and rule modules share).
//! - [`time`]: formatting of node timestamps (UTC microseconds) without a date crate.
//!
//! No I/O, no async, no storage, no network: storage enters through the one-method
//! [`merkle::NodeSource`] trait and time enters as an argument. Functions never panic on input;
//! they return typed errors.

pub use ledger_credential as credential;
pub use ledger_dsse::{dsse, keys};
pub use ledger_note::{checkpoint, cosignature, note, witness};
pub use ledger_seal as seal;
pub use ledger_tlog::{compact, hash, merkle};

pub mod bundle;
pub mod domain;
pub mod draw;
pub mod election;
pub mod entry;
pub mod ids;
pub mod registry;
pub mod rfc3797;
pub mod rules;
pub mod state;
pub mod time;

/// The election rules, now [`rules::election`] (old path kept for callers).
pub use rules::election as election_rules;

pub use checkpoint::Checkpoint;
pub use compact::CompactTree;
pub use dsse::{Envelope, Signature};
pub use entry::Entry;
pub use hash::Hash;
