//! Ed25519 keys and the key ids used in DSSE signatures and the key registry.
//!
//! A key id is the lowercase hex of SHA-256 over the 32-byte raw Ed25519 public key
//! (`docs/format.md` §Key ids). It names a key without trusting anyone's label for it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};

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
    hex::encode(Sha256::digest(key.as_bytes()))
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

/// y coordinates (sign bit cleared) of the eight small-order points of edwards25519: 0, 1, p−1
/// and ±the y of the order-8 points. Only canonical encodings (y < p) reach this check.
pub const SMALL_ORDER_Y: [[u8; 32]; 5] = [
    [0; 32],
    [
        1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ],
    [
        0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
    ],
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0, 0xd5, 0xdf,
        0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05,
    ],
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f, 0x2a, 0x20,
        0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a,
    ],
];

/// False for an `R` encoding that `verify_strict` always rejects: a non-canonical y (y ≥ p) or a
/// small-order point (which also covers x = 0 with the sign bit set).
pub fn r_acceptable(r: &[u8; 32]) -> bool {
    let mut y = *r;
    y[31] &= 0x7f;
    let non_canonical = y[31] == 0x7f && y[1..31].iter().all(|&b| b == 0xff) && y[0] >= 0xed;
    !non_canonical && !SMALL_ORDER_Y.contains(&y)
}

/// Whether a signature may go through Ed25519 *batch* verification with the same verdict as strict
/// verification: batch verification accepts forgeries under small-order ("weak") public keys and
/// with small-order or non-canonical `R`, which `verify_strict` rejects. Anything failing this
/// screen must be checked with strict verification (and will then be refused).
pub fn batch_compatible(key: &VerifyingKey, sig: &[u8]) -> bool {
    let Some(r) = sig.get(..32).and_then(|r| <&[u8; 32]>::try_from(r).ok()) else {
        return false;
    };
    !key.is_weak() && r_acceptable(r)
}
