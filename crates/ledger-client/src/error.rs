//! The client's error type.

use ledger_core::checkpoint::CheckpointError;
use ledger_core::dsse::DsseError;
use ledger_core::hash::Hash;
use ledger_core::keys::KeyError;
use ledger_core::merkle::ProofError;
use std::path::PathBuf;

/// Everything that can go wrong talking to a node or checking what it said.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The node URL does not parse.
    #[error("invalid node URL {url:?}: {detail}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        detail: String,
    },
    /// No connection could be made to the node.
    #[error("cannot connect to {url}: {detail}")]
    Connect {
        /// The node URL.
        url: String,
        /// What the transport said.
        detail: String,
    },
    /// The node refused the request (or the call failed) with a gRPC status.
    #[error("node refused ({}): {message}", code_name(*.code))]
    Node {
        /// gRPC status code.
        code: tonic::Code,
        /// The node's message.
        message: String,
    },
    /// The node's answer is not well formed (wrong hash length, missing field, undecodable entry).
    #[error("malformed answer from the node: {0}")]
    Malformed(String),
    /// The leaf hash the node sent does not match the leaf bytes it sent.
    #[error("entry {index}: node says leaf hash {claimed}, the leaf bytes hash to {computed}")]
    LeafHashMismatch {
        /// Entry index.
        index: u64,
        /// Leaf hash the node claimed.
        claimed: Hash,
        /// Leaf hash of the bytes.
        computed: Hash,
    },
    /// The entry the node holds is not the one expected.
    #[error("entry {index}: {detail}")]
    EntryMismatch {
        /// Entry index.
        index: u64,
        /// What differs.
        detail: String,
    },
    /// A checkpoint note did not parse, or its signature by the node key did not verify.
    #[error("checkpoint not accepted: {0}")]
    Checkpoint(CheckpointError),
    /// No signed checkpoint was available to verify against.
    #[error("no signed checkpoint covers entry {index}{}", .detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    NoCheckpoint {
        /// Entry index.
        index: u64,
        /// Why, when known.
        detail: Option<String>,
    },
    /// An inclusion proof did not verify.
    #[error("inclusion proof of entry {index} in tree of size {size} (root {root}) does not verify: {error}")]
    Inclusion {
        /// Entry index.
        index: u64,
        /// Tree size.
        size: u64,
        /// Signed root.
        root: Hash,
        /// Why.
        error: ProofError,
    },
    /// A newer checkpoint is smaller than one seen before: the log was rewound.
    #[error("log rewound: saw size {old_size} (root {old_root}), now size {new_size} (root {new_root})")]
    Rewind {
        /// Size seen before.
        old_size: u64,
        /// Root seen before.
        old_root: Hash,
        /// Size now.
        new_size: u64,
        /// Root now.
        new_root: Hash,
    },
    /// Two checkpoints disagree: same size with different roots, or a consistency proof failed.
    #[error(
        "log forked: size {old_size} (root {old_root}) is not a prefix of size {new_size} (root {new_root}): {detail}"
    )]
    Fork {
        /// Size seen before.
        old_size: u64,
        /// Root seen before.
        old_root: Hash,
        /// Size now.
        new_size: u64,
        /// Root now.
        new_root: Hash,
        /// Why.
        detail: String,
    },
    /// An envelope breaks DSSE limits or its signature does not verify.
    #[error("envelope: {0}")]
    Envelope(DsseError),
    /// A key does not parse.
    #[error("key: {0}")]
    Key(KeyError),
    /// A key file could not be read or written.
    #[error("key file {}: {error}", path.display())]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A key file's contents are not a key.
    #[error("key file {}: {detail}", path.display())]
    BadKeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A payload could not be serialized.
    #[error("payload: {0}")]
    Payload(String),
    /// A data file (e.g. a micro-evaluation file or its progress file) could not be read or written.
    #[error("{}: {error}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
}

impl ClientError {
    /// The gRPC status code when the node refused the request.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            ClientError::Node { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether this error means the node refused or failed the request (as opposed to a local or
    /// verification failure).
    pub fn is_node_refusal(&self) -> bool {
        matches!(self, ClientError::Node { .. })
    }

    /// Whether this error means that something the node sent failed verification.
    pub fn is_verification_failure(&self) -> bool {
        matches!(
            self,
            ClientError::Malformed(_)
                | ClientError::LeafHashMismatch { .. }
                | ClientError::EntryMismatch { .. }
                | ClientError::Checkpoint(_)
                | ClientError::Inclusion { .. }
                | ClientError::Rewind { .. }
                | ClientError::Fork { .. }
        )
    }
}

impl From<tonic::Status> for ClientError {
    fn from(s: tonic::Status) -> Self {
        ClientError::Node {
            code: s.code(),
            message: s.message().to_string(),
        }
    }
}

// The wrapped errors are part of the message, not a `source()`, so that printing the chain does
// not repeat them.
impl From<CheckpointError> for ClientError {
    fn from(e: CheckpointError) -> Self {
        ClientError::Checkpoint(e)
    }
}

impl From<DsseError> for ClientError {
    fn from(e: DsseError) -> Self {
        ClientError::Envelope(e)
    }
}

impl From<KeyError> for ClientError {
    fn from(e: KeyError) -> Self {
        ClientError::Key(e)
    }
}

impl From<ledger_proto::ConversionError> for ClientError {
    fn from(e: ledger_proto::ConversionError) -> Self {
        ClientError::Malformed(e.0)
    }
}

/// The canonical upper-case name of a gRPC status code, e.g. `PERMISSION_DENIED`.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}
