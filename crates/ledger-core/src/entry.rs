//! Log entries and their canonical encoding (`docs/format.md` §Entry).
//!
//! An entry is what the node sequences: its `index`, a node-assigned UTC timestamp in microseconds
//! (monotone, never decreasing), `prev_root` (the RFC 9162 root of the tree of size `index`, the
//! hash-chain link that makes every leaf commit to the whole history before it), and the DSSE
//! envelope exactly as the client signed it. The leaf bytes are the canonical encoding below, and
//! the leaf hash is `SHA-256(0x00 ‖ leaf bytes)`.
//!
//! The encoding is bincode 2.0.1's serde format with a fixed configuration (little-endian,
//! fixed-width integers, lengths as u64), which `docs/format.md` writes out byte by byte:
//!
//! ```text
//! u8  version (= 1)
//! u64 index
//! u64 timestamp_micros
//! [32] prev_root
//! u64 len, bytes payload_type (UTF-8)
//! u64 len, bytes payload
//! u64 count, then per signature: u64 len, bytes keyid (UTF-8); u64 len, bytes sig
//! ```

use crate::dsse::{DsseError, Envelope, Signature};
use crate::hash::{Hash, leaf_hash};
use serde::{Deserialize, Serialize};

/// The only entry format version.
pub const ENTRY_VERSION: u8 = 1;

/// Largest encoded entry accepted by the decoder.
pub const MAX_ENTRY_BYTES: usize = crate::dsse::limits::MAX_PAYLOAD + 64 * 1024;

/// Errors decoding an entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// The bytes are not a canonical entry encoding.
    #[error("malformed entry encoding: {0}")]
    Malformed(String),
    /// Bytes follow the encoded entry.
    #[error("{0} trailing bytes after the entry")]
    TrailingBytes(usize),
    /// Unknown format version.
    #[error("unsupported entry version {0}")]
    Version(u8),
    /// The encoding is larger than the limit.
    #[error("entry is {0} bytes, the limit is {MAX_ENTRY_BYTES}")]
    TooLarge(usize),
    /// The envelope inside breaks a limit.
    #[error(transparent)]
    Envelope(#[from] DsseError),
}

/// A sequenced log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Position in the log, from 0.
    pub index: u64,
    /// Node-assigned time of sequencing, UTC microseconds since the Unix epoch.
    pub timestamp_micros: u64,
    /// Root of the tree of size `index` (the empty-tree root for entry 0).
    pub prev_root: Hash,
    /// The signed record.
    pub envelope: Envelope,
}

// Wire mirror with the version byte first; the envelope's bytes fields encode as u64 length +
// raw bytes.
#[derive(Serialize)]
struct WireRef<'a> {
    version: u8,
    index: u64,
    timestamp_micros: u64,
    prev_root: Hash,
    payload_type: &'a str,
    #[serde(with = "bytes")]
    payload: &'a [u8],
    signatures: Vec<SigRef<'a>>,
}

#[derive(Serialize)]
struct SigRef<'a> {
    keyid: &'a str,
    #[serde(with = "bytes")]
    sig: &'a [u8],
}

#[derive(Deserialize)]
struct WireOwned {
    version: u8,
    index: u64,
    timestamp_micros: u64,
    prev_root: Hash,
    payload_type: String,
    payload: Vec<u8>,
    signatures: Vec<SigOwned>,
}

#[derive(Deserialize)]
struct SigOwned {
    keyid: String,
    sig: Vec<u8>,
}

mod bytes {
    pub fn serialize<S: serde::Serializer>(v: &&[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<{ MAX_ENTRY_BYTES }>()
}

impl Entry {
    /// The canonical leaf bytes.
    pub fn encode(&self) -> Vec<u8> {
        let w = WireRef {
            version: ENTRY_VERSION,
            index: self.index,
            timestamp_micros: self.timestamp_micros,
            prev_root: self.prev_root,
            payload_type: &self.envelope.payload_type,
            payload: &self.envelope.payload,
            signatures: self
                .envelope
                .signatures
                .iter()
                .map(|s| SigRef {
                    keyid: &s.keyid,
                    sig: &s.sig,
                })
                .collect(),
        };
        // Encoding plain integers, strings and byte slices into a Vec cannot fail, except when the
        // size limit is exceeded, which `check_limits` on the envelope rules out before sequencing.
        bincode::serde::encode_to_vec(&w, config()).unwrap_or_default()
    }

    /// Decodes canonical leaf bytes. Refuses trailing bytes, unknown versions and anything over
    /// the size limits.
    ///
    /// # Errors
    /// When the bytes are not exactly one canonical entry.
    pub fn decode(b: &[u8]) -> Result<Self, EntryError> {
        if b.len() > MAX_ENTRY_BYTES {
            return Err(EntryError::TooLarge(b.len()));
        }
        match b.first() {
            None => return Err(EntryError::Malformed("empty input".into())),
            Some(&v) if v != ENTRY_VERSION => return Err(EntryError::Version(v)),
            _ => {}
        }
        let (w, used): (WireOwned, usize) =
            bincode::serde::decode_from_slice(b, config()).map_err(|e| EntryError::Malformed(e.to_string()))?;
        if used != b.len() {
            return Err(EntryError::TrailingBytes(b.len() - used));
        }
        if w.version != ENTRY_VERSION {
            return Err(EntryError::Version(w.version));
        }
        let envelope = Envelope {
            payload_type: w.payload_type,
            payload: w.payload,
            signatures: w
                .signatures
                .into_iter()
                .map(|s| Signature {
                    keyid: s.keyid,
                    sig: s.sig,
                })
                .collect(),
        };
        Ok(Entry {
            index: w.index,
            timestamp_micros: w.timestamp_micros,
            prev_root: w.prev_root,
            envelope,
        })
    }

    /// RFC 9162 leaf hash of the canonical encoding.
    pub fn leaf_hash(&self) -> Hash {
        leaf_hash(&self.encode())
    }
}
