//! Client library of the evaluation ledger, and the `ledgerctl` command line tool.
//!
//! - [`sign`]: build records (`application/vnd.ledger.<kind>.v1+json` DSSE envelopes with compact
//!   JSON payloads) and sign them with one or more Ed25519 keys.
//! - [`keyfile`]: the key file format shared with the node (base64 seed, mode 0600, never
//!   overwritten).
//! - [`client`]: [`LedgerClient`], a gRPC client of one node. Appends always carry a request id and
//!   retries on `UNAVAILABLE` reuse it, so a record is sequenced at most once.
//! - [`election`]: the registrar's and evaluators' steps of an election (open, blind credentials,
//!   ballots, receipts).
//! - [`micro`]: a service platform's micro-evaluations sent in bulk from a JSON-lines file,
//!   resumable without duplicates.
//! - [`verify`]: checks that trust only the node's checkpoint key: signed checkpoints, inclusion
//!   proofs of appended entries, and a [`CheckpointTracker`] that refuses rewinds and forks.
//!
//! Every error is a [`ClientError`]; a refusal by the node keeps its gRPC code and message.

pub mod client;
pub mod demo;
pub mod election;
pub mod error;
pub mod keyfile;
pub mod micro;
pub mod sign;
pub mod verify;

pub use client::{
    AppendOutcome, BatchItem, BatchOutcome, CheckpointInfo, ConsistencyProof, InclusionProof, LedgerClient,
    RetryPolicy, random_request_id,
};
pub use error::ClientError;
pub use keyfile::{
    public_key_path, read_public_key, read_signing_key, write_key_pair, write_public_key, write_signing_key,
};
pub use sign::{
    compact_json, sign_record, sign_record_bytes, sign_record_bytes_in, sign_record_in, sign_record_json,
    sign_record_json_in,
};
pub use verify::{CheckpointTracker, check_extends, verify_appended, verify_inclusion_in_note, verify_outcome_proof};
