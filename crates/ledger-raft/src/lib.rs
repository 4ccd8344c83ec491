//! Raft foundation for a replicated ledger (issue 15, first step): openraft 0.9 storage for the
//! ledger. This crate holds the log storage and the state machine; there is no network and no
//! cluster yet (`docs/cluster.md` says what exists and what comes next).
//!
//! - [`types`]: the Raft type configuration. One Raft entry is one sequenced group
//!   ([`SequencedGroup`]) or one signed checkpoint ([`LedgerRequest`]); applying it answers an
//!   [`ApplyOutcome`] (a refusal is a value).
//! - [`LogStore`]: the Raft log on its own sled database under `DATA/raft/log`, fsync'd before
//!   openraft is told an append or a vote is durable.
//! - [`StateMachine`]: `apply` is the ledger store's group commit, with the last applied log id and
//!   membership in the same batch; snapshots are the store's export stream.

// openraft's `StorageError` (over 200 bytes) is the error type its storage traits require; the
// helpers return it too rather than converting at every call.
#![allow(clippy::result_large_err)]

pub mod log_store;
pub mod snapshot;
pub mod state_machine;
pub mod types;

pub use log_store::LogStore;
pub use state_machine::{
    APPLIED_META, CheckedGroup, Folded, MAX_REQUEST_ID, MAX_SNAPSHOT_BYTES, SnapshotBuilder, StateMachine, check_group,
    fold_store, fold_store_reopening, request_digest,
};
pub use types::{ApplyOutcome, GroupEntry, LedgerNode, LedgerRequest, Rejection, SequencedGroup, TypeConfig};
