//! DSSE v1 envelopes (<https://github.com/secure-systems-lab/dsse>) signed with Ed25519, and the
//! Ed25519 key ids and key encodings that name their signers.
//!
//! - [`dsse`]: the envelope (`payloadType`, `payload`, `signatures`) in its JSON form (standard
//!   base64), the pre-authentication encoding `PAE(type, body)` that is signed, signing, verifying
//!   one signature against a key, and the size limits on envelopes.
//! - [`keys`]: key ids (lowercase hex of SHA-256 over the 32-byte raw public key, `docs/format.md`
//!   §Key ids) and base64/hex encodings of Ed25519 public and signing keys.
//!
//! What this crate does not do: it does not decide *who* may sign *what* (that is the key
//! registry in `ledger-core`), does not interpret payloads, and knows nothing of the log, its
//! tree or its checkpoints. Functions never panic on input; they return [`dsse::DsseError`] or
//! [`keys::KeyError`]. Its vectors (`tests/dsse_vectors.rs`) are the PAE worked example of the
//! DSSE `protocol.md` and sign/verify/tamper cases.

pub mod dsse;
pub mod keys;

pub use dsse::{Envelope, Signature};
