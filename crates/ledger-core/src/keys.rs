//! Ed25519 keys and the key ids used in DSSE signatures and the key registry.
//!
//! A key id is the lowercase hex of SHA-256 over the 32-byte raw Ed25519 public key
//! (`docs/format.md` §Key ids). It names a key without trusting anyone's label for it.

use crate::hash::Hash;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{SigningKey, VerifyingKey};

pub use ed25519_dalek::{
    Signature as Ed25519Signature, SigningKey as Ed25519SigningKey, VerifyingKey as Ed25519VerifyingKey,
};

/// Errors parsing keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not valid base64 or hex.
    #[error("key is not valid {encoding}: {detail}")]
    Encoding {
        /// Expected encoding.
        encoding: &'static str,
        /// What the decoder said.
        detail: String,
    },
    /// Wrong number of bytes.
    #[error("key must be {expected} bytes, got {found}")]
    Length {
        /// Required length.
        expected: usize,
        /// Given length.
        found: usize,
    },
    /// The bytes are not a valid Ed25519 public key.
    #[error("not a valid Ed25519 public key")]
    InvalidPoint,
}

/// The key id of an Ed25519 public key: lowercase hex of SHA-256(public key bytes), 64 characters.
pub fn key_id(key: &VerifyingKey) -> String {
    Hash::digest(key.as_bytes()).to_hex()
}

/// Encodes a public key as standard base64 of its 32 raw bytes.
pub fn public_key_to_base64(key: &VerifyingKey) -> String {
    B64.encode(key.as_bytes())
}

/// Parses a public key from standard base64 of its 32 raw bytes.
///
/// # Errors
/// When the text is not base64 of 32 bytes forming a valid point.
pub fn public_key_from_base64(s: &str) -> Result<VerifyingKey, KeyError> {
    let b = B64.decode(s.trim()).map_err(|e| KeyError::Encoding {
        encoding: "base64",
        detail: e.to_string(),
    })?;
    public_key_from_bytes(&b)
}

/// Parses a public key from 32 raw bytes.
///
/// # Errors
/// When the slice is not 32 bytes or not a valid point.
pub fn public_key_from_bytes(b: &[u8]) -> Result<VerifyingKey, KeyError> {
    let arr: [u8; 32] = b.try_into().map_err(|_| KeyError::Length {
        expected: 32,
        found: b.len(),
    })?;
    VerifyingKey::from_bytes(&arr).map_err(|_| KeyError::InvalidPoint)
}

/// Parses a signing key from standard base64 of its 32-byte seed.
///
/// # Errors
/// When the text is not base64 of 32 bytes.
pub fn signing_key_from_base64(s: &str) -> Result<SigningKey, KeyError> {
    let b = B64.decode(s.trim()).map_err(|e| KeyError::Encoding {
        encoding: "base64",
        detail: e.to_string(),
    })?;
    let arr: [u8; 32] = b.as_slice().try_into().map_err(|_| KeyError::Length {
        expected: 32,
        found: b.len(),
    })?;
    Ok(SigningKey::from_bytes(&arr))
}

/// Encodes a signing key's 32-byte seed as standard base64.
pub fn signing_key_to_base64(key: &SigningKey) -> String {
    B64.encode(key.to_bytes())
}
