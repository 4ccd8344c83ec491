//! C2SP tlog-cosignature v1 with Ed25519 (<https://c2sp.org/tlog-cosignature>): the timestamped
//! note signatures with which witnesses cosign checkpoints.
//!
//! - Signature type byte `0x04`; key hash = first four bytes of
//!   `SHA-256(key name ‖ 0x0A ‖ 0x04 ‖ 32-byte Ed25519 public key)`.
//! - Signed message: `"cosignature/v1\n" ‖ "time " ‖ decimal POSIX seconds ‖ "\n" ‖ note body` (the
//!   checkpoint text including its final newline, without any signature line).
//! - Signature bytes after the key hash: `u64 timestamp (big-endian) ‖ 64-byte Ed25519 signature`.
//! - Verifier key string: `<name>+<hex key hash>+<base64(0x04 ‖ public key)>`.
//!
//! Not implemented: the ML-DSA-44 cosignature type (`0x06`); its lines are ignored like any
//! signature by an unknown key.

use crate::note::{Note, NoteError, NoteSignature, key_hash};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

/// Signature type byte of Ed25519 cosignature/v1 (C2SP tlog-cosignature).
pub const ALG_COSIGNATURE_V1: u8 = 0x04;
/// Length of the signature bytes after the key hash: timestamp (8) and Ed25519 signature (64).
pub const COSIGNATURE_LEN: usize = 8 + 64;

/// The message a cosignature/v1 signs for `body` at `timestamp` (POSIX seconds).
pub fn cosignature_message(timestamp: u64, body: &str) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{body}").into_bytes()
}

/// A verified cosignature: who cosigned, and when (POSIX seconds, the witness's clock).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Cosignature {
    /// Witness key name.
    pub name: String,
    /// Timestamp carried by the cosignature.
    pub timestamp: u64,
}

fn valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// A trusted witness key (cosignature/v1, Ed25519).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignatureVerifier {
    /// Key name (the witness's name).
    pub name: String,
    /// Key hash.
    pub key_hash: u32,
    /// Public key.
    pub key: VerifyingKey,
}

impl CosignatureVerifier {
    /// A verifier for `key` under `name`.
    ///
    /// # Errors
    /// When the name is empty or contains spaces or `+`.
    pub fn new(name: &str, key: VerifyingKey) -> Result<Self, NoteError> {
        if !valid_key_name(name) {
            return Err(NoteError::MalformedKey(format!("invalid key name {name:?}")));
        }
        Ok(Self {
            name: name.to_string(),
            key_hash: key_hash(name, ALG_COSIGNATURE_V1, key.as_bytes()),
            key,
        })
    }

    /// Parses `<name>+<hex key hash>+<base64(0x04 ‖ key)>` and checks the key hash.
    ///
    /// # Errors
    /// When the string is malformed, is not a cosignature/v1 key, or the hash does not match.
    pub fn parse(s: &str) -> Result<Self, NoteError> {
        let (name, key) = crate::note::parse_verifier_key(
            s.trim(),
            ALG_COSIGNATURE_V1,
            "key must be 0x04 followed by a 32-byte Ed25519 key (cosignature/v1)",
        )?;
        Self::new(name, key)
    }

    /// The `name+hash+key` string.
    pub fn to_string_key(&self) -> String {
        let mut raw = vec![ALG_COSIGNATURE_V1];
        raw.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.key_hash, B64.encode(raw))
    }

    /// Whether `sig` is this key's signature line (same name and key hash).
    pub fn matches(&self, sig: &NoteSignature) -> bool {
        sig.name == self.name && sig.key_hash == self.key_hash
    }

    /// Verifies the signature bytes of one line (after the key hash) over `body`; returns the
    /// timestamp.
    ///
    /// # Errors
    /// [`NoteError::InvalidSignature`] when the bytes have the wrong length, the timestamp exceeds
    /// 2^63 − 1, or the Ed25519 signature does not verify.
    pub fn verify(&self, body: &str, sig: &[u8]) -> Result<u64, NoteError> {
        let invalid = || NoteError::InvalidSignature {
            name: self.name.clone(),
            key_hash: self.key_hash,
        };
        if sig.len() != COSIGNATURE_LEN {
            return Err(invalid());
        }
        let ts = u64::from_be_bytes(sig[..8].try_into().map_err(|_| invalid())?);
        if ts > i64::MAX as u64 {
            return Err(invalid());
        }
        let s = ed25519_dalek::Signature::from_slice(&sig[8..]).map_err(|_| invalid())?;
        self.key
            .verify_strict(&cosignature_message(ts, body), &s)
            .map_err(|_| invalid())?;
        Ok(ts)
    }
}

impl Note {
    /// Verifies the cosignatures on the note by the given witness keys and returns one
    /// [`Cosignature`] per distinct witness name that cosigned, in note order. Lines by other keys
    /// (the log's own, unknown witnesses) are ignored, as the signed-note spec requires.
    ///
    /// # Errors
    /// [`NoteError::InvalidSignature`] when a line claims a trusted witness key but does not verify.
    pub fn verify_cosignatures(&self, witnesses: &[CosignatureVerifier]) -> Result<Vec<Cosignature>, NoteError> {
        let mut out: Vec<Cosignature> = Vec::new();
        for s in &self.signatures {
            let Some(w) = witnesses.iter().find(|w| w.matches(s)) else {
                continue;
            };
            let timestamp = w.verify(&self.text, &s.sig)?;
            if !out.iter().any(|c| c.name == w.name) {
                out.push(Cosignature {
                    name: w.name.clone(),
                    timestamp,
                });
            }
        }
        Ok(out)
    }

    /// Adds signature lines not already on the note (same name, key hash and bytes).
    pub fn merge_signatures(&mut self, more: impl IntoIterator<Item = NoteSignature>) {
        for s in more {
            if !self.signatures.contains(&s) {
                self.signatures.push(s);
            }
        }
    }
}

/// A witness's cosigning key.
#[derive(Debug, Clone)]
pub struct CosignatureSigner {
    verifier: CosignatureVerifier,
    key: SigningKey,
}

impl CosignatureSigner {
    /// A signer for `key` under `name`.
    ///
    /// # Errors
    /// When the name is invalid.
    pub fn new(name: &str, key: SigningKey) -> Result<Self, NoteError> {
        Ok(Self {
            verifier: CosignatureVerifier::new(name, key.verifying_key())?,
            key,
        })
    }

    /// The matching verifier.
    pub fn verifier(&self) -> &CosignatureVerifier {
        &self.verifier
    }

    /// Cosigns note text `body` at `timestamp` (POSIX seconds; time enters as an argument).
    ///
    /// # Errors
    /// When the timestamp exceeds 2^63 − 1 or the body is not valid note text.
    pub fn sign(&self, body: &str, timestamp: u64) -> Result<NoteSignature, NoteError> {
        if timestamp > i64::MAX as u64 {
            return Err(NoteError::Malformed("cosignature timestamp exceeds 2^63 - 1".into()));
        }
        if !body.ends_with('\n') || body.chars().any(|c| c.is_control() && c != '\n') {
            return Err(NoteError::Malformed("not valid note text".into()));
        }
        let sig = self.key.sign(&cosignature_message(timestamp, body));
        let mut bytes = Vec::with_capacity(COSIGNATURE_LEN);
        bytes.extend_from_slice(&timestamp.to_be_bytes());
        bytes.extend_from_slice(&sig.to_bytes());
        Ok(NoteSignature {
            name: self.verifier.name.clone(),
            key_hash: self.verifier.key_hash,
            sig: bytes,
        })
    }
}
