//! Fault codes and the bounded list of faults a run collects.

use serde::Serialize;
use std::collections::BTreeMap;

/// What is wrong, as a stable machine-readable code (`docs/verifier.md` lists their meaning).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Code {
    /// The bytes are not a canonical entry encoding, or the source's fields disagree with them.
    MalformedEntry,
    /// An index is missing: the source skipped entries, or ends before a signed checkpoint's size.
    MissingEntry,
    /// An index goes backwards or repeats.
    Reordered,
    /// The leaf hash the source supplied is not the hash of the entry's bytes.
    LeafHashMismatch,
    /// `prev_root` is not the root of the entries before it.
    ChainBroken,
    /// A timestamp is smaller than the one before it.
    TimeRegression,
    /// Entry 0 is missing or not a valid, fully signed charter.
    BadCharter,
    /// The charter's node key or origin is not the one the user trusts.
    UntrustedCharter,
    /// A DSSE signature does not verify.
    BadSignature,
    /// A signer is unknown, revoked, lacks the role, or a quorum is missing.
    UnauthorizedSigner,
    /// Any other registry rule: unknown kind, invalid payload, duplicate signer, conflicting key record.
    InvalidRecord,
    /// The envelope's payload type binds it to another log (another origin).
    WrongLog,
    /// The charter requires bound payload types (`policy.log_binding`) and the envelope's is not.
    LogBindingMissing,
    /// A checkpoint does not carry a valid signature by the node key (or does not parse).
    CheckpointBadSignature,
    /// A checkpoint's root is not the recomputed root at its size.
    CheckpointRootMismatch,
    /// A checkpoint arrived after entries beyond its size, so its root could not be compared.
    CheckpointMisplaced,
    /// Two signed checkpoints cannot both be prefixes of one log.
    Fork,
    /// The node's log is now smaller than a checkpoint it signed earlier.
    Rollback,
    /// A cross-record domain rule (`ledger_core::rules`), e.g. `DRAW_RESULT_MISMATCH`,
    /// `REVEAL_MISMATCH`, `DUPLICATE_DRAW`, `VERIFICATION_TARGET_UNKNOWN`.
    Domain(&'static str),
}

/// Codes are written as their plain name (`"TALLY_MISMATCH"`, `"BAD_SIGNATURE"`), domain rule
/// codes included.
impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl Code {
    /// The code as written in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Domain(c) => c,
            Code::MalformedEntry => "MALFORMED_ENTRY",
            Code::MissingEntry => "MISSING_ENTRY",
            Code::Reordered => "REORDERED",
            Code::LeafHashMismatch => "LEAF_HASH_MISMATCH",
            Code::ChainBroken => "CHAIN_BROKEN",
            Code::TimeRegression => "TIME_REGRESSION",
            Code::BadCharter => "BAD_CHARTER",
            Code::UntrustedCharter => "UNTRUSTED_CHARTER",
            Code::BadSignature => "BAD_SIGNATURE",
            Code::UnauthorizedSigner => "UNAUTHORIZED_SIGNER",
            Code::InvalidRecord => "INVALID_RECORD",
            Code::WrongLog => "WRONG_LOG",
            Code::LogBindingMissing => "LOG_BINDING_MISSING",
            Code::CheckpointBadSignature => "CHECKPOINT_BAD_SIGNATURE",
            Code::CheckpointRootMismatch => "CHECKPOINT_ROOT_MISMATCH",
            Code::CheckpointMisplaced => "CHECKPOINT_MISPLACED",
            Code::Fork => "FORK",
            Code::Rollback => "ROLLBACK",
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One fault with its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fault {
    /// Entry index (for checkpoint faults: the checkpoint's tree size), when there is one.
    pub index: Option<u64>,
    /// Code.
    pub code: Code,
    /// Human explanation.
    pub message: String,
    /// What a valid log would hold here, when that is known.
    pub expected: Option<String>,
    /// What the source holds.
    pub found: Option<String>,
}

impl Fault {
    /// A fault without evidence values.
    pub fn new(index: Option<u64>, code: Code, message: impl Into<String>) -> Self {
        Self {
            index,
            code,
            message: message.into(),
            expected: None,
            found: None,
        }
    }

    /// Adds expected and found values.
    pub fn evidence(mut self, expected: impl ToString, found: impl ToString) -> Self {
        self.expected = Some(expected.to_string());
        self.found = Some(found.to_string());
        self
    }
}

/// Faults of a run: counted by code without bound, listed up to a limit so that memory stays
/// bounded however broken a log is.
#[derive(Debug, Clone)]
pub struct Faults {
    list: Vec<Fault>,
    counts: BTreeMap<Code, u64>,
    omitted: u64,
    max: usize,
}

impl Faults {
    /// Keeps at most `max` faults in full.
    pub fn new(max: usize) -> Self {
        Self {
            list: Vec::new(),
            counts: BTreeMap::new(),
            omitted: 0,
            max,
        }
    }

    /// Records a fault.
    pub fn push(&mut self, f: Fault) {
        *self.counts.entry(f.code).or_default() += 1;
        if self.list.len() < self.max {
            self.list.push(f);
        } else {
            self.omitted += 1;
        }
    }

    /// Total number of faults.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// The listed faults, in the order found.
    pub fn list(&self) -> &[Fault] {
        &self.list
    }

    /// Counts by code.
    pub fn counts(&self) -> &BTreeMap<Code, u64> {
        &self.counts
    }

    /// Faults counted but not listed.
    pub fn omitted(&self) -> u64 {
        self.omitted
    }
}
