//! Mapping of core, sequencer and store errors to gRPC status codes, each with a message that says
//! what to fix. This is the only place where a refusal becomes a status: the sequencer answers with
//! core errors ([`Refusal`]) and the service edge maps them here.

use crate::refusal::Refusal;
use ledger_core::registry::{RegistryError, RegistryFault};
use ledger_core::rules::RuleCode;
use ledger_core::state::StepError;
use ledger_store::StoreError;
use tonic::{Code, Status};

/// The gRPC code for a registry/validation error, from its fault class
/// ([`RegistryError::fault`], which the verifier and bundles use too): UNAUTHORIZED_SIGNER and
/// WRONG_LOG are PERMISSION_DENIED, a key record that conflicts with the registry
/// FAILED_PRECONDITION, every other fault (BAD_SIGNATURE, INVALID_RECORD — a duplicate signer
/// included —, LOG_BINDING_MISSING) INVALID_ARGUMENT.
pub fn registry_code(e: &RegistryError) -> Code {
    if matches!(e, RegistryError::Conflict(_)) {
        return Code::FailedPrecondition;
    }
    match e.fault() {
        RegistryFault::UnauthorizedSigner | RegistryFault::WrongLog => Code::PermissionDenied,
        RegistryFault::BadSignature | RegistryFault::InvalidRecord | RegistryFault::LogBindingMissing => {
            Code::InvalidArgument
        }
    }
}

/// Status for a registry/validation error.
pub fn registry_status(e: &RegistryError) -> Status {
    Status::new(registry_code(e), e.to_string())
}

/// The gRPC code of a broken domain rule: ALREADY_EXISTS for a record already in the log (its id or
/// its signed statement), PERMISSION_DENIED for a cancellation without authority, and
/// FAILED_PRECONDITION for every other rule (docs/records.md, "Rule codes").
pub fn rule_code(code: RuleCode) -> Code {
    match code {
        RuleCode::DuplicateId
        | RuleCode::DuplicateStatement
        | RuleCode::DuplicateDraw
        | RuleCode::EscrowDuplicate
        | RuleCode::ElectionDuplicate => Code::AlreadyExists,
        RuleCode::CancellationNotAuthorized => Code::PermissionDenied,
        _ => Code::FailedPrecondition,
    }
}

/// The gRPC code of a refused state step: registry errors as [`registry_code`], a payload that
/// does not parse as its kind INVALID_ARGUMENT, a domain rule as [`rule_code`], a state lookup
/// that failed (the store's ticket index could not be read) UNAVAILABLE: nothing was decided, the
/// client may retry with the same request id.
pub fn step_code(e: &StepError) -> Code {
    match e {
        StepError::Registry(e) => registry_code(e),
        StepError::Record(_) => Code::InvalidArgument,
        StepError::Rule(e) => rule_code(e.code),
        StepError::StateLookup(_) => Code::Unavailable,
    }
}

/// The gRPC code of a sequencer refusal.
pub fn refusal_code(r: &Refusal) -> Code {
    match r {
        Refusal::Step(e) => step_code(e),
        Refusal::Unavailable(_) | Refusal::NotLeader { .. } => Code::Unavailable,
        Refusal::RequestIdReused { .. } => Code::AlreadyExists,
        Refusal::NextKeyNotHeld { .. } | Refusal::CompromiseBelowWitnessed { .. } => Code::FailedPrecondition,
    }
}

/// Status for a sequencer refusal: its code and the refusal's message (and, for
/// [`Refusal::NotLeader`], the leader's address in [`LEADER_METADATA`]).
pub fn refusal_status(r: &Refusal) -> Status {
    with_leader(Status::new(refusal_code(r), r.to_string()), r)
}

/// Response metadata key naming the cluster leader's public API address (`host:port`) on an
/// append a follower refused (docs/api.md); `ledger-client` follows it.
pub const LEADER_METADATA: &str = "ledger-leader";

/// An append sent to a follower: FAILED_PRECONDITION (nothing was done), naming the leader in the
/// message and in [`LEADER_METADATA`]; UNAVAILABLE (retry shortly) when no leader's address is
/// known, as during an election.
pub fn not_leader_status(r: &Refusal) -> Status {
    match r {
        Refusal::NotLeader { api: Some(_), .. } => with_leader(Status::failed_precondition(r.to_string()), r),
        _ => Status::unavailable(r.to_string()),
    }
}

fn with_leader(mut s: Status, r: &Refusal) -> Status {
    if let Refusal::NotLeader { api: Some(a), .. } = r
        && let Ok(v) = a.parse()
    {
        s.metadata_mut().insert(LEADER_METADATA, v);
    }
    s
}

/// Status for a storage failure: the caller may retry with the same request id.
pub fn store_status(e: &StoreError) -> Status {
    tracing::error!(error = %e, "storage failure");
    Status::unavailable(format!("storage failure, retry with the same request id: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORDS_MD: &str = include_str!("../../docs/records.md");

    /// docs/records.md's rule-code table names the status the node answers for every code.
    #[test]
    fn rule_codes_answer_the_documented_status() {
        for &code in RuleCode::ALL {
            let row = format!("| `{code}` | ");
            let line = RECORDS_MD
                .lines()
                .find(|l| l.starts_with(&row))
                .unwrap_or_else(|| panic!("no row for {code} in docs/records.md"));
            let documented = line[row.len()..].split(' ').next().unwrap_or_default();
            let status = Status::new(rule_code(code), "");
            let name = match status.code() {
                Code::AlreadyExists => "ALREADY_EXISTS",
                Code::PermissionDenied => "PERMISSION_DENIED",
                Code::FailedPrecondition => "FAILED_PRECONDITION",
                other => panic!("{code} maps to unexpected {other:?}"),
            };
            assert_eq!(documented, name, "{code}");
        }
    }

    /// A key that signed twice is INVALID_RECORD for verifiers and INVALID_ARGUMENT at the node.
    #[test]
    fn duplicate_signer_has_one_mapping() {
        let e = RegistryError::DuplicateSigner { keyid: "ab".into() };
        assert_eq!(e.fault(), RegistryFault::InvalidRecord);
        assert_eq!(ledger_core::bundle::fault_code(&e), "INVALID_RECORD");
        assert_eq!(registry_code(&e), Code::InvalidArgument);
        assert_eq!(step_code(&StepError::Registry(e)), Code::InvalidArgument);
    }
}
