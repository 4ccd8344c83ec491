//! Generated gRPC code for `ledger.v1` (from `proto/`), re-exported as [`pb`], and the conversions
//! between wire types and checked `ledger-core` types. Wire types never reach core, store or crypto
//! code: they are converted here, at the edge.

/// Generated protobuf and tonic code. Never edited by hand.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
#[rustfmt::skip]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/ledger.v1.rs"));
}

/// Generated code for `ledger.raft.v1`: Raft between cluster peers (not the public API; not in
/// [`FILE_DESCRIPTOR_SET`]). Never edited by hand.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
#[rustfmt::skip]
pub mod raft_pb {
    include!(concat!(env!("OUT_DIR"), "/ledger.raft.v1.rs"));
}

/// Encoded `FileDescriptorSet` of the API, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ledger_descriptor.bin"));

use ledger_core::dsse::{Envelope, Signature};
use ledger_core::entry::Entry;
use ledger_core::hash::Hash;

/// A wire message that does not convert into a core type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversionError(pub String);

impl std::fmt::Display for ConversionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConversionError {}

impl From<pb::Envelope> for Envelope {
    fn from(e: pb::Envelope) -> Self {
        Envelope {
            payload_type: e.payload_type,
            payload: e.payload,
            signatures: e
                .signatures
                .into_iter()
                .map(|s| Signature {
                    keyid: s.keyid,
                    sig: s.sig,
                })
                .collect(),
        }
    }
}

impl From<&Envelope> for pb::Envelope {
    fn from(e: &Envelope) -> Self {
        pb::Envelope {
            payload_type: e.payload_type.clone(),
            payload: e.payload.clone(),
            signatures: e
                .signatures
                .iter()
                .map(|s| pb::Signature {
                    keyid: s.keyid.clone(),
                    sig: s.sig.clone(),
                })
                .collect(),
        }
    }
}

/// Parses a 32-byte hash field.
///
/// # Errors
/// When the field is not 32 bytes.
pub fn hash_from_bytes(field: &str, b: &[u8]) -> Result<Hash, ConversionError> {
    Hash::from_slice(b).map_err(|_| ConversionError(format!("{field} must be 32 bytes, got {}", b.len())))
}

/// A wire entry from its canonical leaf bytes (the envelope is decoded from them, so the two can
/// never disagree).
pub fn log_entry(leaf: &[u8], entry: &Entry, leaf_hash: &Hash) -> pb::LogEntry {
    pb::LogEntry {
        index: entry.index,
        timestamp_micros: entry.timestamp_micros,
        prev_root: entry.prev_root.0.to_vec(),
        envelope: Some((&entry.envelope).into()),
        leaf: leaf.to_vec(),
        leaf_hash: leaf_hash.0.to_vec(),
    }
}

/// A checked entry from the wire. The canonical `leaf` bytes are authoritative: the entry is
/// decoded from them, and the other fields must agree.
///
/// # Errors
/// When the leaf does not decode or a field disagrees with it.
pub fn entry_from_wire(e: &pb::LogEntry) -> Result<Entry, ConversionError> {
    let entry = Entry::decode(&e.leaf).map_err(|err| ConversionError(format!("entry {}: {err}", e.index)))?;
    if entry.index != e.index || entry.timestamp_micros != e.timestamp_micros {
        return Err(ConversionError(format!(
            "entry {}: fields disagree with the leaf bytes",
            e.index
        )));
    }
    Ok(entry)
}
