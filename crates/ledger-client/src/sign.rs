//! Building and signing ledger records.
//!
//! A record of kind `K` is a DSSE envelope with payload type
//! `application/vnd.ledger.K.v1+json; log="<origin>"`
//! ([`ledger_core::registry::payload_type_for_log`]) whose payload is compact JSON. Every key
//! given signs the same PAE, so the signatures hold in the log of that origin only. The `_in`
//! functions take the origin (learn it with [`crate::LedgerClient::origin`]); the others write
//! the unbound `application/vnd.ledger.K.v1+json`, which only logs whose charter predates log
//! binding accept.

use crate::error::ClientError;
use ed25519_dalek::SigningKey;
use ledger_core::dsse::Envelope;
use ledger_core::registry::payload_type_in;
use serde::Serialize;

/// Signs raw payload bytes as a record of `kind` bound to the log `origin` (unbound when `None`),
/// once by each key, in order.
pub fn sign_record_bytes_in(kind: &str, origin: Option<&str>, payload: Vec<u8>, keys: &[&SigningKey]) -> Envelope {
    let mut env = Envelope::new(payload_type_in(kind, origin), payload);
    for k in keys {
        env.sign(k);
    }
    env
}

/// [`sign_record_in`] for raw payload bytes, unbound (for logs without log binding).
pub fn sign_record_bytes(kind: &str, payload: Vec<u8>, keys: &[&SigningKey]) -> Envelope {
    sign_record_bytes_in(kind, None, payload, keys)
}

/// Signs a JSON value as a record of `kind` bound to the log `origin` (unbound when `None`).
pub fn sign_record_in(kind: &str, origin: Option<&str>, payload: &serde_json::Value, keys: &[&SigningKey]) -> Envelope {
    // Serializing a `Value` into a Vec cannot fail.
    let bytes = serde_json::to_vec(payload).unwrap_or_default();
    sign_record_bytes_in(kind, origin, bytes, keys)
}

/// Signs any serializable record as `kind` bound to the log `origin` (unbound when `None`).
///
/// # Errors
/// When the value does not serialize to JSON.
pub fn sign_record_json_in<T: Serialize + ?Sized>(
    kind: &str,
    origin: Option<&str>,
    payload: &T,
    keys: &[&SigningKey],
) -> Result<Envelope, ClientError> {
    let bytes = serde_json::to_vec(payload).map_err(|e| ClientError::Payload(e.to_string()))?;
    Ok(sign_record_bytes_in(kind, origin, bytes, keys))
}

/// Signs a JSON value as an unbound record of `kind` (for logs without log binding); the payload is the value serialized compactly
/// (no whitespace, keys in the value's own order).
pub fn sign_record(kind: &str, payload: &serde_json::Value, keys: &[&SigningKey]) -> Envelope {
    // Serializing a `Value` into a Vec cannot fail.
    let bytes = serde_json::to_vec(payload).unwrap_or_default();
    sign_record_bytes(kind, bytes, keys)
}

/// Signs any serializable record (e.g. [`ledger_core::registry::KeyEnroll`]) as an unbound `kind`
/// (for logs without log binding).
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
