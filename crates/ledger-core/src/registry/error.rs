//! Errors of registry rules and their fault classes (docs/verifier.md).

use crate::dsse::DsseError;

/// Errors of registry rules. Each says what is missing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Envelope shape or limits.
    #[error(transparent)]
    Envelope(#[from] DsseError),
    /// The payload type is not a ledger record kind.
    #[error(
        "unknown payload type {0:?}: expected application/vnd.ledger.<kind>.v1+json (or bound: ...v1+json; log=\"<origin>\") with a known kind"
    )]
    UnknownKind(String),
    /// The payload does not parse as its kind requires.
    #[error("invalid {kind} payload: {detail}")]
    InvalidPayload {
        /// Record kind.
        kind: String,
        /// What is wrong.
        detail: String,
    },
    /// A signature names a key the registry does not know.
    #[error("signature by unknown key {keyid}: enroll it first (key.enroll)")]
    UnknownKey {
        /// Key id.
        keyid: String,
    },
    /// The same key signed twice.
    #[error("key {keyid} signed the envelope more than once")]
    DuplicateSigner {
        /// Key id.
        keyid: String,
    },
    /// A signature does not verify.
    #[error("signature by key {keyid} does not verify over the DSSE PAE")]
    BadSignature {
        /// Key id.
        keyid: String,
    },
    /// A signer was revoked or rotated away.
    #[error("key {keyid} ({name}) was {how} at index {at}")]
    Revoked {
        /// Key id.
        keyid: String,
        /// Holder.
        name: String,
        /// "revoked" or "rotated".
        how: &'static str,
        /// Index of the record that did it.
        at: u64,
    },
    /// A signer is a node key that a `node.compromise` record declared compromised.
    #[error(
        "key {keyid} ({name}) was declared compromised as of index {as_of} by the node.compromise record at index {at}: its signatures after that record are refused"
    )]
    Compromised {
        /// Key id.
        keyid: String,
        /// Holder.
        name: String,
        /// First index the declaration holds the key compromised.
        as_of: u64,
        /// Index of the `node.compromise` record.
        at: u64,
    },
    /// No signer holds a role allowed for the kind.
    #[error("{kind} needs a signature by a key with role {needed}; signers hold {held}")]
    MissingRole {
        /// Record kind.
        kind: String,
        /// Roles that would do.
        needed: String,
        /// Roles the signers hold.
        held: String,
    },
    /// Not enough administrators signed.
    #[error("{kind} needs {need} distinct administrator signatures, got {have}")]
    MissingQuorum {
        /// Record kind.
        kind: String,
        /// Required.
        need: u32,
        /// Present.
        have: u32,
    },
    /// A key record conflicts with the registry's state.
    #[error("{0}")]
    Conflict(String),
    /// The charter is missing, misplaced or invalid.
    #[error("charter: {0}")]
    Charter(String),
    /// The envelope's payload type binds it to another log.
    #[error(
        "WRONG_LOG: the envelope is bound to log {found:?}, not to this log {expected:?}; it was signed for another ledger"
    )]
    WrongLog {
        /// Origin named in the payload type.
        found: String,
        /// This log's origin.
        expected: String,
    },
    /// This log requires bound payload types and the envelope's is not.
    #[error(
        "LOG_BINDING_MISSING: this log's charter requires payload type {expected:?}; sign the record with it (the unbound {found:?} is valid in any log)"
    )]
    LogBindingMissing {
        /// The payload type found.
        found: String,
        /// The bound payload type expected.
        expected: String,
    },
}

/// What verifiers call a registry error (docs/verifier.md): the one mapping shared by the
/// verifier's replay, `bundle verify` and the node's gRPC status (`ledger-node` errors.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegistryFault {
    /// `BAD_SIGNATURE`: a signature does not verify.
    BadSignature,
    /// `UNAUTHORIZED_SIGNER`: a signer is unknown, revoked or rotated away, lacks a role, or an
    /// administrator quorum is missing.
    UnauthorizedSigner,
    /// `INVALID_RECORD`: any other registry rule (limits, unknown kind, invalid payload, a key
    /// that signed twice, a conflicting key record, a second charter).
    InvalidRecord,
    /// `WRONG_LOG`: the payload type binds the envelope to another log.
    WrongLog,
    /// `LOG_BINDING_MISSING`: the charter requires bound payload types.
    LogBindingMissing,
}

impl RegistryFault {
    /// The fault code as reports write it.
    pub const fn as_str(self) -> &'static str {
        match self {
            RegistryFault::BadSignature => "BAD_SIGNATURE",
            RegistryFault::UnauthorizedSigner => "UNAUTHORIZED_SIGNER",
            RegistryFault::InvalidRecord => "INVALID_RECORD",
            RegistryFault::WrongLog => "WRONG_LOG",
            RegistryFault::LogBindingMissing => "LOG_BINDING_MISSING",
        }
    }
}

impl RegistryError {
    /// The fault class of this error. A key that signed twice ([`RegistryError::DuplicateSigner`])
    /// is `INVALID_RECORD` (the envelope is malformed; no signer lacks authority), everywhere.
    pub fn fault(&self) -> RegistryFault {
        use RegistryError::*;
        match self {
            BadSignature { .. } => RegistryFault::BadSignature,
            UnknownKey { .. } | Revoked { .. } | Compromised { .. } | MissingRole { .. } | MissingQuorum { .. } => {
                RegistryFault::UnauthorizedSigner
            }
            WrongLog { .. } => RegistryFault::WrongLog,
            LogBindingMissing { .. } => RegistryFault::LogBindingMissing,
            _ => RegistryFault::InvalidRecord,
        }
    }
}
