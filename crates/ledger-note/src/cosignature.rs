//! C2SP tlog-cosignature (<https://c2sp.org/tlog-cosignature>): the timestamped note signatures
//! with which witnesses cosign checkpoints, of both types the spec defines.
//!
//! Ed25519 (`cosignature/v1`, signature type byte `0x04`):
//! - key hash = first four bytes of `SHA-256(key name ‖ 0x0A ‖ 0x04 ‖ 32-byte Ed25519 public key)`;
//! - signed message: `"cosignature/v1\n" ‖ "time " ‖ decimal POSIX seconds ‖ "\n" ‖ note body` (the
//!   checkpoint text including its final newline, without any signature line);
//! - signature bytes after the key hash: `u64 timestamp (big-endian) ‖ 64-byte Ed25519 signature`.
//!
//! ML-DSA-44 (`subtree/v1`, signature type byte `0x06`, FIPS 204 pure ML-DSA, empty context):
//! - key hash = first four bytes of `SHA-256(key name ‖ 0x0A ‖ 0x06 ‖ 1312-byte public key)`;
//! - signed message: the `cosigned_message` structure of [`subtree_message`], which commits to the
//!   cosigner's name, the timestamp, the log origin, the leaf range `[start, end)` (for a
//!   checkpoint `[0, size)`) and the root hash; checkpoint extension lines are not covered;
//! - signature bytes after the key hash: `u64 timestamp (big-endian) ‖ 2420-byte ML-DSA-44
//!   signature`.
//!
//! Verifier key strings: `<name>+<hex key hash>+<base64(type byte ‖ public key)>`.

use crate::checkpoint::Checkpoint;
use crate::note::{Note, NoteError, NoteSignature, key_hash};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use ledger_tlog::hash::Hash;
use ml_dsa::{B32, EncodedVerifyingKey, ExpandedSigningKey, MlDsa44};

/// Signature type byte of Ed25519 cosignature/v1 (C2SP tlog-cosignature).
pub const ALG_COSIGNATURE_V1: u8 = 0x04;
/// Length of the signature bytes after the key hash: timestamp (8) and Ed25519 signature (64).
pub const COSIGNATURE_LEN: usize = 8 + 64;

/// Signature type byte of ML-DSA-44 subtree/v1 cosignatures (C2SP tlog-cosignature).
pub const ALG_COSIGNATURE_MLDSA44: u8 = 0x06;
/// Length of an ML-DSA-44 public key (FIPS 204, `pk`).
pub const MLDSA44_PUBLIC_KEY_LEN: usize = 1312;
/// Length of an ML-DSA-44 signature (FIPS 204, `σ`).
pub const MLDSA44_SIGNATURE_LEN: usize = 2420;
/// Length of the ML-DSA-44 signature bytes after the key hash: timestamp (8) and signature (2420).
pub const MLDSA44_COSIGNATURE_LEN: usize = 8 + MLDSA44_SIGNATURE_LEN;
/// The 12-byte label that opens a subtree/v1 `cosigned_message`.
pub const SUBTREE_V1_LABEL: &[u8; 12] = b"subtree/v1\n\0";

/// The `cosigned_message` an ML-DSA-44 cosignature signs (C2SP tlog-cosignature, TLS
/// presentation language): `"subtree/v1\n\0"`, `cosigner_name<1..255>` (one length byte, then
/// the name), `u64 timestamp`, `log_origin<1..255>`, `u64 start`, `u64 end`, the 32-byte root
/// hash; integers big-endian. A checkpoint of size `n` is the subtree `[0, n)`.
///
/// # Errors
/// [`NoteError::Malformed`] when the name or origin is empty or longer than 255 bytes, or when
/// `start` is not zero while `timestamp` is (the spec requires a zero timestamp for subtrees that
/// do not start at zero).
pub fn subtree_message(
    cosigner_name: &str,
    timestamp: u64,
    origin: &str,
    start: u64,
    end: u64,
    hash: &Hash,
) -> Result<Vec<u8>, NoteError> {
    let short = |what: &str, v: &str| -> Result<u8, NoteError> {
        u8::try_from(v.len())
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| NoteError::Malformed(format!("{what} must be 1 to 255 bytes for subtree/v1")))
    };
    let name_len = short("cosigner name", cosigner_name)?;
    let origin_len = short("log origin", origin)?;
    if start != 0 && timestamp != 0 {
        return Err(NoteError::Malformed(
            "a subtree not starting at 0 must carry timestamp 0".into(),
        ));
    }
    if start > end {
        return Err(NoteError::Malformed("subtree start is after its end".into()));
    }
    let mut m = Vec::with_capacity(12 + 2 + cosigner_name.len() + origin.len() + 24 + 32);
    m.extend_from_slice(SUBTREE_V1_LABEL);
    m.push(name_len);
    m.extend_from_slice(cosigner_name.as_bytes());
    m.extend_from_slice(&timestamp.to_be_bytes());
    m.push(origin_len);
    m.extend_from_slice(origin.as_bytes());
    m.extend_from_slice(&start.to_be_bytes());
    m.extend_from_slice(&end.to_be_bytes());
    m.extend_from_slice(&hash.0);
    Ok(m)
}

/// The subtree/v1 message an ML-DSA-44 cosignature by `cosigner_name` at `timestamp` signs for
/// the checkpoint note body `body` (its origin, `[0, size)` and root hash).
///
/// # Errors
/// [`NoteError::Malformed`] when `body` is not a checkpoint body or the message cannot be built.
pub fn checkpoint_subtree_message(cosigner_name: &str, timestamp: u64, body: &str) -> Result<Vec<u8>, NoteError> {
    let cp = Checkpoint::from_body(body).map_err(|e| NoteError::Malformed(e.to_string()))?;
    subtree_message(cosigner_name, timestamp, &cp.origin, 0, cp.size, &cp.root)
}

/// An ML-DSA-44 public key (FIPS 204), kept with its 1312-byte encoding.
#[derive(Clone)]
pub struct MlDsa44PublicKey {
    bytes: Vec<u8>,
    key: Box<ml_dsa::VerifyingKey<MlDsa44>>,
}

impl MlDsa44PublicKey {
    /// Decodes a 1312-byte public key (FIPS 204 `pkDecode`).
    ///
    /// # Errors
    /// [`NoteError::MalformedKey`] when the length is not 1312.
    pub fn from_bytes(b: &[u8]) -> Result<Self, NoteError> {
        let enc = EncodedVerifyingKey::<MlDsa44>::try_from(b).map_err(|_| {
            NoteError::MalformedKey(format!(
                "an ML-DSA-44 public key is {MLDSA44_PUBLIC_KEY_LEN} bytes, not {}",
                b.len()
            ))
        })?;
        Ok(Self {
            bytes: b.to_vec(),
            key: Box::new(ml_dsa::VerifyingKey::decode(&enc)),
        })
    }

    /// The 1312-byte encoding.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// FIPS 204 `ML-DSA.Verify(pk, message, σ, ctx = "")`.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match ml_dsa::Signature::<MlDsa44>::try_from(sig) {
            Ok(s) => self.key.verify_with_context(message, &[], &s),
            Err(_) => false,
        }
    }
}

impl PartialEq for MlDsa44PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for MlDsa44PublicKey {}

impl std::fmt::Debug for MlDsa44PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MlDsa44PublicKey({})",
            B64.encode(&self.bytes[..16.min(self.bytes.len())])
        )
    }
}

/// A cosigner's public key, of either cosignature type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CosignerKey {
    /// Ed25519, cosignature/v1 (type `0x04`).
    Ed25519(VerifyingKey),
    /// ML-DSA-44, subtree/v1 (type `0x06`).
    MlDsa44(MlDsa44PublicKey),
}

impl CosignerKey {
    /// The signature type byte.
    pub fn alg(&self) -> u8 {
        match self {
            CosignerKey::Ed25519(_) => ALG_COSIGNATURE_V1,
            CosignerKey::MlDsa44(_) => ALG_COSIGNATURE_MLDSA44,
        }
    }

    /// The public key bytes (32 for Ed25519, 1312 for ML-DSA-44).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            CosignerKey::Ed25519(k) => k.as_bytes(),
            CosignerKey::MlDsa44(k) => k.as_bytes(),
        }
    }

    /// The type's name in reports: `Ed25519` or `ML-DSA-44`.
    pub fn type_name(&self) -> &'static str {
        match self {
            CosignerKey::Ed25519(_) => "Ed25519",
            CosignerKey::MlDsa44(_) => "ML-DSA-44",
        }
    }
}

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
    /// The cosignature type that verified: `Ed25519` (`0x04`) or `ML-DSA-44` (`0x06`).
    pub signature_type: &'static str,
}

fn valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// A trusted witness key: Ed25519 (cosignature/v1, `0x04`) or ML-DSA-44 (subtree/v1, `0x06`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignatureVerifier {
    /// Key name (the witness's name).
    pub name: String,
    /// Key hash.
    pub key_hash: u32,
    /// Public key.
    pub key: CosignerKey,
}

impl CosignatureVerifier {
    /// An Ed25519 (cosignature/v1) verifier for `key` under `name`.
    ///
    /// # Errors
    /// When the name is empty or contains spaces or `+`.
    pub fn new(name: &str, key: VerifyingKey) -> Result<Self, NoteError> {
        Self::with_key(name, CosignerKey::Ed25519(key))
    }

    /// An ML-DSA-44 (subtree/v1) verifier for `key` under `name`.
    ///
    /// # Errors
    /// When the name is empty, longer than 255 bytes, or contains spaces or `+`.
    pub fn new_mldsa44(name: &str, key: MlDsa44PublicKey) -> Result<Self, NoteError> {
        Self::with_key(name, CosignerKey::MlDsa44(key))
    }

    /// A verifier for a key of either type under `name`.
    ///
    /// # Errors
    /// When the name is empty or contains spaces or `+` (or, for ML-DSA-44, is over 255 bytes:
    /// the subtree/v1 message could not hold it).
    pub fn with_key(name: &str, key: CosignerKey) -> Result<Self, NoteError> {
        if !valid_key_name(name) {
            return Err(NoteError::MalformedKey(format!("invalid key name {name:?}")));
        }
        if matches!(key, CosignerKey::MlDsa44(_)) && name.len() > 255 {
            return Err(NoteError::MalformedKey(
                "an ML-DSA-44 cosigner name is at most 255 bytes".into(),
            ));
        }
        Ok(Self {
            name: name.to_string(),
            key_hash: key_hash(name, key.alg(), key.as_bytes()),
            key,
        })
    }

    /// Parses `<name>+<hex key hash>+<base64(type ‖ key)>` (type `0x04` with a 32-byte Ed25519
    /// key, or `0x06` with a 1312-byte ML-DSA-44 key) and checks the key hash.
    ///
    /// # Errors
    /// When the string is malformed, is not a cosignature key of either type, or the hash does not
    /// match.
    pub fn parse(s: &str) -> Result<Self, NoteError> {
        let s = s.trim();
        let (name, kh, raw) = crate::note::split_verifier_key(s)?;
        if raw.first() == Some(&ALG_COSIGNATURE_MLDSA44) {
            let key = MlDsa44PublicKey::from_bytes(&raw[1..]).map_err(|_| {
                NoteError::MalformedKey(format!(
                    "key must be 0x06 followed by a {MLDSA44_PUBLIC_KEY_LEN}-byte ML-DSA-44 key (subtree/v1)"
                ))
            })?;
            let v = Self::new_mldsa44(name, key)?;
            if v.key_hash != kh {
                return Err(NoteError::MalformedKey("key hash does not match the key".into()));
            }
            return Ok(v);
        }
        let (name, key) = crate::note::parse_verifier_key(
            s,
            ALG_COSIGNATURE_V1,
            "key must be 0x04 followed by a 32-byte Ed25519 key (cosignature/v1) or 0x06 followed by a 1312-byte ML-DSA-44 key (subtree/v1)",
        )?;
        Self::new(name, key)
    }

    /// The Ed25519 key of a cosignature/v1 verifier (`None` for ML-DSA-44).
    pub fn ed25519_key(&self) -> Option<&VerifyingKey> {
        match &self.key {
            CosignerKey::Ed25519(k) => Some(k),
            CosignerKey::MlDsa44(_) => None,
        }
    }

    /// The `name+hash+key` string.
    pub fn to_string_key(&self) -> String {
        let mut raw = vec![self.key.alg()];
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
        let want = match self.key {
            CosignerKey::Ed25519(_) => COSIGNATURE_LEN,
            CosignerKey::MlDsa44(_) => MLDSA44_COSIGNATURE_LEN,
        };
        if sig.len() != want {
            return Err(invalid());
        }
        let ts = u64::from_be_bytes(sig[..8].try_into().map_err(|_| invalid())?);
        if ts > i64::MAX as u64 {
            return Err(invalid());
        }
        match &self.key {
            CosignerKey::Ed25519(key) => {
                let s = ed25519_dalek::Signature::from_slice(&sig[8..]).map_err(|_| invalid())?;
                key.verify_strict(&cosignature_message(ts, body), &s)
                    .map_err(|_| invalid())?;
            }
            CosignerKey::MlDsa44(key) => {
                let msg = checkpoint_subtree_message(&self.name, ts, body).map_err(|_| invalid())?;
                if !key.verify(&msg, &sig[8..]) {
                    return Err(invalid());
                }
            }
        }
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
                    signature_type: w.key.type_name(),
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

/// A cosigner's private key, of either type.
#[derive(Clone)]
enum SignerKey {
    Ed25519(SigningKey),
    MlDsa44 {
        seed: [u8; 32],
        key: Box<ExpandedSigningKey<MlDsa44>>,
    },
}

/// A witness's cosigning key: Ed25519 (cosignature/v1) or ML-DSA-44 (subtree/v1).
#[derive(Clone)]
pub struct CosignatureSigner {
    verifier: CosignatureVerifier,
    key: SignerKey,
}

impl std::fmt::Debug for CosignatureSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CosignatureSigner")
            .field("verifier", &self.verifier.to_string_key())
            .finish_non_exhaustive()
    }
}

impl CosignatureSigner {
    /// An Ed25519 (cosignature/v1) signer for `key` under `name`.
    ///
    /// # Errors
    /// When the name is invalid.
    pub fn new(name: &str, key: SigningKey) -> Result<Self, NoteError> {
        Ok(Self {
            verifier: CosignatureVerifier::new(name, key.verifying_key())?,
            key: SignerKey::Ed25519(key),
        })
    }

    /// An ML-DSA-44 (subtree/v1) signer under `name` for the key pair that FIPS 204
    /// `ML-DSA.KeyGen_internal` derives from the 32-byte `seed` (ξ).
    ///
    /// # Errors
    /// When the name is invalid.
    pub fn new_mldsa44(name: &str, seed: &[u8; 32]) -> Result<Self, NoteError> {
        let key = ExpandedSigningKey::<MlDsa44>::from_seed(&B32::from(*seed));
        let public = MlDsa44PublicKey::from_bytes(&key.verifying_key().encode())?;
        Ok(Self {
            verifier: CosignatureVerifier::new_mldsa44(name, public)?,
            key: SignerKey::MlDsa44 {
                seed: *seed,
                key: Box::new(key),
            },
        })
    }

    /// The matching verifier.
    pub fn verifier(&self) -> &CosignatureVerifier {
        &self.verifier
    }

    /// The ML-DSA-44 seed (ξ), for writing the key file; `None` for an Ed25519 signer.
    pub fn mldsa44_seed(&self) -> Option<&[u8; 32]> {
        match &self.key {
            SignerKey::MlDsa44 { seed, .. } => Some(seed),
            SignerKey::Ed25519(_) => None,
        }
    }

    /// Cosigns note text `body` at `timestamp` (POSIX seconds; time enters as an argument). An
    /// ML-DSA-44 signer uses FIPS 204's deterministic variant (`rnd` = 32 zero bytes), so the
    /// line is reproducible (test vectors); a witness signs with [`Self::sign_hedged`].
    ///
    /// # Errors
    /// When the timestamp exceeds 2^63 − 1 or the body is not valid note text (for ML-DSA-44:
    /// not a checkpoint body).
    pub fn sign(&self, body: &str, timestamp: u64) -> Result<NoteSignature, NoteError> {
        self.sign_hedged(body, timestamp, &[0u8; 32])
    }

    /// As [`Self::sign`], with FIPS 204's hedged ML-DSA signing: `rnd` is 32 fresh random bytes
    /// from the caller (ignored by Ed25519, which is deterministic).
    ///
    /// # Errors
    /// As [`Self::sign`].
    pub fn sign_hedged(&self, body: &str, timestamp: u64, rnd: &[u8; 32]) -> Result<NoteSignature, NoteError> {
        if timestamp > i64::MAX as u64 {
            return Err(NoteError::Malformed("cosignature timestamp exceeds 2^63 - 1".into()));
        }
        if !body.ends_with('\n') || body.chars().any(|c| c.is_control() && c != '\n') {
            return Err(NoteError::Malformed("not valid note text".into()));
        }
        let mut bytes = Vec::with_capacity(MLDSA44_COSIGNATURE_LEN);
        bytes.extend_from_slice(&timestamp.to_be_bytes());
        match &self.key {
            SignerKey::Ed25519(key) => {
                bytes.extend_from_slice(&key.sign(&cosignature_message(timestamp, body)).to_bytes());
            }
            SignerKey::MlDsa44 { key, .. } => {
                let msg = checkpoint_subtree_message(&self.verifier.name, timestamp, body)?;
                // FIPS 204 Algorithm 2 (ML-DSA.Sign) with an empty context: M' = 0x00 ‖ 0x00 ‖ M.
                let sig = key.sign_internal(&[&[0u8, 0u8], &msg], &B32::from(*rnd));
                bytes.extend_from_slice(&sig.encode());
            }
        }
        Ok(NoteSignature {
            name: self.verifier.name.clone(),
            key_hash: self.verifier.key_hash,
            sig: bytes,
        })
    }
}
