//! C2SP signed notes and the transparency-log formats built on them, with Ed25519 keys (and
//! ML-DSA-44 witness cosignatures).
//!
//! - [`note`]: C2SP signed-note (<https://c2sp.org/signed-note>): note text, signature lines,
//!   Ed25519 key hashes, and the `vkey`/`skey` text encodings of verifier and signer keys.
//! - [`checkpoint`]: C2SP tlog-checkpoint (<https://c2sp.org/tlog-checkpoint>): the origin / tree
//!   size / root hash body, and opening a signed checkpoint with a log's key.
//! - [`cosignature`]: C2SP tlog-cosignature (<https://c2sp.org/tlog-cosignature>): timestamped
//!   witness cosignatures, Ed25519 (`cosignature/v1`, type `0x04`) and ML-DSA-44 (`subtree/v1`,
//!   type `0x06`, FIPS 204 through RustCrypto `ml-dsa`).
//! - [`witness`]: the decision rules of a C2SP tlog-witness (<https://c2sp.org/tlog-witness>)
//!   `add-checkpoint` request: its parsing, size limits, and when a witness may cosign.
//!
//! What this crate does not do: no transport (HTTP/gRPC), no storage of a witness's state, no
//! clock (time enters as an argument), and no knowledge of what the logged entries are. The tree
//! math (root hashes, consistency proofs) comes from `ledger-tlog`. Functions never panic on
//! input; they return [`note::NoteError`] or [`witness::WitnessError`]. Its vectors are the Go
//! `golang.org/x/mod/sumdb/note` test note (`tests/note_vectors.rs`), the c2sp.org
//! tlog-cosignature and tlog-witness examples plus the cosigned vectors of `docs/format.md`
//! (`tests/cosignature_vectors.rs`), the ML-DSA-44 vectors of `docs/format.md`
//! (`tests/mldsa_vectors.rs`) and property tests of the
//! add-checkpoint parser (`tests/witness_request.rs`).
//!
//! Features: `serde` gives [`cosignature::Cosignature`] a serde `Serialize` form (for reports).

pub mod checkpoint;
pub mod cosignature;
pub mod note;
pub mod witness;

pub use checkpoint::Checkpoint;
pub use note::Note;
