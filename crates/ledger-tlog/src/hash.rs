//! SHA-256 hashes and the RFC 9162 §2.1 leaf and interior node hash functions.

use sha2::{Digest, Sha256};
use std::fmt;

/// Domain-separation prefix of a leaf hash (RFC 9162 §2.1.1).
pub const LEAF_PREFIX: u8 = 0x00;
/// Domain-separation prefix of an interior node hash (RFC 9162 §2.1.1).
pub const NODE_PREFIX: u8 = 0x01;

/// A SHA-256 digest.
///
/// In human-readable serializations (JSON) it is lowercase hex; in binary ones (bincode) it is the
/// 32 raw bytes with no length prefix.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; 32]);

/// The input to a hash function had the wrong length or was not valid hex/base64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid hash: {0}")]
pub struct HashParseError(pub String);

impl Hash {
    /// Length of a hash in bytes.
    pub const LEN: usize = 32;

    /// SHA-256 of arbitrary bytes (no prefix).
    pub fn digest(data: &[u8]) -> Self {
        Hash(Sha256::digest(data).into())
    }

    /// The hash as a byte slice.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses a 32-byte slice.
    ///
    /// # Errors
    /// When the slice is not exactly 32 bytes long.
    pub fn from_slice(b: &[u8]) -> Result<Self, HashParseError> {
        <[u8; 32]>::try_from(b)
            .map(Hash)
            .map_err(|_| HashParseError(format!("expected 32 bytes, got {}", b.len())))
    }

    /// Parses 64 hex digits.
    ///
    /// # Errors
    /// When the text is not 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, HashParseError> {
        let v = hex::decode(s).map_err(|e| HashParseError(format!("{e}")))?;
        Self::from_slice(&v)
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_hex())
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Hash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_hex())
        } else {
            self.0.serialize(s)
        }
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Hash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            Hash::from_hex(&s).map_err(serde::de::Error::custom)
        } else {
            <[u8; 32]>::deserialize(d).map(Hash)
        }
    }
}

/// RFC 9162 leaf hash: SHA-256(0x00 ‖ leaf).
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([LEAF_PREFIX]);
    h.update(leaf);
    Hash(h.finalize().into())
}

/// RFC 9162 interior node hash: SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 65];
    buf[0] = NODE_PREFIX;
    buf[1..33].copy_from_slice(&left.0);
    buf[33..].copy_from_slice(&right.0);
    Hash(Sha256::digest(buf).into())
}

/// Root of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1).
pub fn empty_root() -> Hash {
    Hash::digest(&[])
}
