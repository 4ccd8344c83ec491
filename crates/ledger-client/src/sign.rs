//! Building and signing ledger records.
//!
//! A record of kind `K` is a DSSE envelope with payload type
//! `application/vnd.ledger.K.v1+json` ([`ledger_core::registry::payload_type`]) whose payload is
//! compact JSON. Every key given signs the same PAE.

use crate::error::ClientError;
use ed25519_dalek::SigningKey;
use ledger_core::dsse::Envelope;
use ledger_core::registry::payload_type;
use serde::Serialize;

/// Signs raw payload bytes as a record of `kind`, once by each key, in order.
pub fn sign_record_bytes(kind: &str, payload: Vec<u8>, keys: &[&SigningKey]) -> Envelope {
    let mut env = Envelope::new(payload_type(kind), payload);
    for k in keys {
        env.sign(k);
    }
    env
}

/// Signs a JSON value as a record of `kind`; the payload is the value serialized compactly
/// (no whitespace, keys in the value's own order).
pub fn sign_record(kind: &str, payload: &serde_json::Value, keys: &[&SigningKey]) -> Envelope {
    // Serializing a `Value` into a Vec cannot fail.
    let bytes = serde_json::to_vec(payload).unwrap_or_default();
    sign_record_bytes(kind, bytes, keys)
}

/// Signs any serializable record (e.g. [`ledger_core::registry::KeyEnroll`]) as `kind`.
///
/// # Errors
/// When the value does not serialize to JSON.
pub fn sign_record_json<T: Serialize + ?Sized>(
    kind: &str,
    payload: &T,
    keys: &[&SigningKey],
) -> Result<Envelope, ClientError> {
    let bytes = serde_json::to_vec(payload).map_err(|e| ClientError::Payload(e.to_string()))?;
    Ok(sign_record_bytes(kind, bytes, keys))
}

/// Re-serializes JSON text compactly, so the signed bytes do not depend on the file's layout.
///
/// # Errors
/// When the text is not JSON.
pub fn compact_json(text: &[u8]) -> Result<Vec<u8>, ClientError> {
    let v: serde_json::Value = serde_json::from_slice(text).map_err(|e| ClientError::Payload(e.to_string()))?;
    serde_json::to_vec(&v).map_err(|e| ClientError::Payload(e.to_string()))
}
