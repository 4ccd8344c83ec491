//! DSSE v1 envelopes (secure-systems-lab/dsse, `envelope.md` and `protocol.md`) signed with Ed25519.
//!
//! The signature is computed over the pre-authentication encoding
//! `PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, where LEN is the ASCII
//! decimal byte length. The JSON form uses standard base64 for `payload` and `sig`, as the DSSE
//! spec's envelope does; the ledger stores the exact payload bytes that were signed.

use crate::keys::key_id;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// Upper bounds on envelope fields, enforced before any work is done on them.
pub mod limits {
    /// Longest payload type, in bytes.
    pub const MAX_PAYLOAD_TYPE: usize = 256;
    /// Largest payload, in bytes.
    pub const MAX_PAYLOAD: usize = 1 << 20;
    /// Most signatures on one envelope.
    pub const MAX_SIGNATURES: usize = 32;
    /// Longest key id, in bytes.
    pub const MAX_KEYID: usize = 128;
    /// Longest signature, in bytes.
    pub const MAX_SIG: usize = 512;
}

/// Errors about an envelope's shape or signatures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DsseError {
    /// A field exceeds its size limit.
    #[error("{field} is {len} bytes, the limit is {max}")]
    TooLarge {
        /// Field name.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A field is empty or malformed.
    #[error("invalid {field}: {detail}")]
    Invalid {
        /// Field name.
        field: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// A signature does not verify.
    #[error("signature by key {keyid} does not verify")]
    BadSignature {
        /// Key id of the signature.
        keyid: String,
    },
}

/// One signature of a DSSE envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// Key id (see [`crate::keys::key_id`]).
    pub keyid: String,
    /// Ed25519 signature over the PAE, 64 bytes.
    #[serde(with = "b64")]
    pub sig: Vec<u8>,
}

/// A DSSE envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Media type of the payload, e.g. `application/vnd.ledger.nomination+json;version=1`.
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// The exact payload bytes that were signed.
    #[serde(with = "b64")]
    pub payload: Vec<u8>,
    /// Signatures over PAE(payload_type, payload).
    pub signatures: Vec<Signature>,
}

/// DSSE v1 pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let t = payload_type.as_bytes();
    let mut out = Vec::with_capacity(payload.len() + t.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(t.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(t);
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

impl Envelope {
    /// An unsigned envelope.
    pub fn new(payload_type: impl Into<String>, payload: Vec<u8>) -> Self {
        Self {
            payload_type: payload_type.into(),
            payload,
            signatures: Vec::new(),
        }
    }

    /// The bytes every signature covers.
    pub fn pae(&self) -> Vec<u8> {
        pae(&self.payload_type, &self.payload)
    }

    /// Adds an Ed25519 signature by `key`.
    pub fn sign(&mut self, key: &SigningKey) {
        let sig = key.sign(&self.pae());
        self.signatures.push(Signature {
            keyid: key_id(&key.verifying_key()),
            sig: sig.to_bytes().to_vec(),
        });
    }

    /// Checks every size limit and that the envelope is not obviously malformed.
    ///
    /// # Errors
    /// The first limit exceeded or field malformed.
    pub fn check_limits(&self) -> Result<(), DsseError> {
        use limits::*;
        let too_large = |field, len, max| Err(DsseError::TooLarge { field, len, max });
        if self.payload_type.is_empty() {
            return Err(DsseError::Invalid {
                field: "payloadType",
                detail: "empty".into(),
            });
        }
        if self.payload_type.len() > MAX_PAYLOAD_TYPE {
            return too_large("payloadType", self.payload_type.len(), MAX_PAYLOAD_TYPE);
        }
        if self.payload.len() > MAX_PAYLOAD {
            return too_large("payload", self.payload.len(), MAX_PAYLOAD);
        }
        if self.signatures.is_empty() {
            return Err(DsseError::Invalid {
                field: "signatures",
                detail: "no signature".into(),
            });
        }
        if self.signatures.len() > MAX_SIGNATURES {
            return too_large("signatures", self.signatures.len(), MAX_SIGNATURES);
        }
        for s in &self.signatures {
            if s.keyid.is_empty() || s.keyid.len() > MAX_KEYID {
                return Err(DsseError::Invalid {
                    field: "keyid",
                    detail: format!("length {}", s.keyid.len()),
                });
            }
            if s.sig.len() > MAX_SIG {
                return too_large("sig", s.sig.len(), MAX_SIG);
            }
        }
        Ok(())
    }

    /// Verifies the signature at position `i` with `key`.
    ///
    /// # Errors
    /// When there is no such signature, or it does not verify.
    pub fn verify_signature(&self, i: usize, key: &VerifyingKey) -> Result<(), DsseError> {
        let s = self.signatures.get(i).ok_or_else(|| DsseError::Invalid {
            field: "signatures",
            detail: format!("no signature {i}"),
        })?;
        let bad = || DsseError::BadSignature { keyid: s.keyid.clone() };
        let sig = ed25519_dalek::Signature::from_slice(&s.sig).map_err(|_| bad())?;
        key.verify_strict(&self.pae(), &sig).map_err(|_| bad())
    }

    /// The JSON form defined by the DSSE spec.
    pub fn to_json(&self) -> String {
        // Serializing plain strings and byte vectors cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses the JSON form; unknown top-level fields are refused.
    ///
    /// # Errors
    /// When the text is not a DSSE envelope.
    pub fn from_json(s: &str) -> Result<Self, DsseError> {
        serde_json::from_str(s).map_err(|e| DsseError::Invalid {
            field: "envelope",
            detail: e.to_string(),
        })
    }
}

mod b64 {
    use super::B64;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&B64.encode(v))
        } else {
            s.serialize_bytes(v)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            B64.decode(s).map_err(serde::de::Error::custom)
        } else {
            Vec::<u8>::deserialize(d)
        }
    }
}
