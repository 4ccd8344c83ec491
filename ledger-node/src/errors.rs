//! Mapping of core and store errors to gRPC status codes, each with a message that says what to fix.

use ledger_core::registry::RegistryError;
use ledger_store::StoreError;
use tonic::{Code, Status};

/// The gRPC code for a registry/validation error.
pub fn registry_code(e: &RegistryError) -> Code {
    use RegistryError::*;
    match e {
        UnknownKey { .. } | Revoked { .. } | MissingRole { .. } | MissingQuorum { .. } | WrongLog { .. } => {
            Code::PermissionDenied
        }
        Conflict(_) => Code::FailedPrecondition,
        _ => Code::InvalidArgument,
    }
}

/// Status for a registry/validation error.
pub fn registry_status(e: &RegistryError) -> Status {
    Status::new(registry_code(e), e.to_string())
}

/// Status for a storage failure: the caller may retry with the same request id.
pub fn store_status(e: &StoreError) -> Status {
    tracing::error!(error = %e, "storage failure");
    Status::unavailable(format!("storage failure, retry with the same request id: {e}"))
}
