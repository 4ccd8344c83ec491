//! Sealed complainant identities with accountable anonymity (`docs/ballots.md` §Sealed complaints).
//!
//! A complainant's identity is encrypted with HPKE (RFC 9180, base mode) to an escrow X25519 key
//! registered on the ledger, suite DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305
//! (KEM 0x0020, KDF 0x0001, AEAD 0x0003), and committed to with `SHA-256(salt ‖ identity)`.
//! Only the escrow (a court) can [`unseal`]; the resulting [`Opening`] is checked by anyone
//! against the commitment on the ledger ([`Opening::verify`]) without the escrow key.
//!
//! Bytes (fixed here, documented in `docs/ballots.md`):
//! - `salt`: 32 random bytes; `commitment = SHA-256(salt ‖ identity UTF-8)`;
//! - HPKE `info = "ledger-complaint-seal-v1" ‖ 0x00 ‖ complaint_id UTF-8`;
//! - HPKE `aad = commitment` (32 bytes), `plaintext = salt ‖ identity UTF-8`.
//!
//! This crate wraps the `hpke` crate and adds the byte layout above and typed errors
//! ([`SealError`]). Randomness enters as an argument.
//!
//! What this crate does not do: it does not decide who may open a seal or when (the complaint
//! rules in `ledger-core`), keeps no keys and does no I/O. It is its own crate so that a reader of
//! the log format (`ledger-tlog`, `ledger-note`, `ledger-dsse`) never compiles HPKE. The
//! commitment is a [`struct@ledger_tlog::Hash`] (a SHA-256 value). Its vectors
//! (`tests/seal_vectors.rs`) are RFC 9180 Appendix A.2.1 (the suite above, base mode, first
//! encryption) plus the unseal and opening rules under tampering.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::rand_core::CryptoRng;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use ledger_tlog::hash::Hash;
use serde::{Deserialize, Serialize};

/// The HPKE suite, as documented.
pub const SUITE: &str = "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305";
/// Domain tag at the start of the HPKE info string.
pub const INFO_TAG: &[u8] = b"ledger-complaint-seal-v1";
/// Longest identity that can be sealed, in bytes.
pub const MAX_IDENTITY: usize = 256;
/// Salt length.
pub const SALT_LEN: usize = 32;

/// Errors of sealing and opening.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// A key, encapsulated key, ciphertext, salt or commitment is malformed.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// The identity is empty, too long or contains control characters.
    #[error("identity must be 1-{MAX_IDENTITY} bytes without control characters")]
    Identity,
    /// HPKE decryption failed: wrong escrow key, wrong complaint, or tampered ciphertext.
    #[error("cannot open the sealed identity (wrong escrow key, complaint or commitment, or tampered)")]
    Open,
    /// The opening does not match the commitment on the ledger.
    #[error("the opening does not match the commitment")]
    CommitmentMismatch,
    /// HPKE sealing failed.
    #[error("sealing failed: {0}")]
    Seal(String),
}

/// An escrow's X25519 public key (32 bytes, RFC 7748 encoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EscrowPublicKey(pub [u8; 32]);

impl EscrowPublicKey {
    /// Standard base64 of the 32 bytes.
    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }

    /// Parses standard base64 of 32 bytes.
    ///
    /// # Errors
    /// Not base64 of 32 bytes.
    pub fn from_base64(s: &str) -> Result<Self, SealError> {
        let b = B64.decode(s).map_err(|_| SealError::Malformed("escrow public key"))?;
        Ok(Self(
            b.try_into().map_err(|_| SealError::Malformed("escrow public key"))?,
        ))
    }
}

/// An escrow's X25519 secret key (held by the court, never on the ledger).
#[derive(Clone)]
pub struct EscrowSecretKey([u8; 32]);

impl std::fmt::Debug for EscrowSecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EscrowSecretKey(..)")
    }
}

impl EscrowSecretKey {
    /// A new key pair (RFC 9180 DeriveKeyPair over 32 random bytes).
    pub fn generate(rng: &mut impl CryptoRng) -> (Self, EscrowPublicKey) {
        let (sk, pk) = X25519HkdfSha256::gen_keypair_with_rng(rng);
        (Self(sk.to_bytes().into()), EscrowPublicKey(pk.to_bytes().into()))
    }

    /// The key from its 32 bytes (RFC 9180 SerializePrivateKey).
    pub fn from_bytes(b: [u8; 32]) -> Self {
        Self(b)
    }

    /// Its 32 bytes, for storage by the escrow.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// The matching public key.
    ///
    /// # Errors
    /// When the bytes are not a valid private key.
    pub fn public_key(&self) -> Result<EscrowPublicKey, SealError> {
        let sk = <X25519HkdfSha256 as hpke::Kem>::PrivateKey::from_bytes(&self.0)
            .map_err(|_| SealError::Malformed("escrow secret key"))?;
        Ok(EscrowPublicKey(X25519HkdfSha256::sk_to_pk(&sk).to_bytes().into()))
    }
}

/// The sealed identity carried by a `complaint` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedIdentity {
    /// The `escrow.key` record (its `escrow_id`) whose key the identity is sealed to.
    pub escrow_id: String,
    /// Standard base64 of the HPKE encapsulated key (32 bytes).
    pub enc: String,
    /// Standard base64 of the HPKE ciphertext of `salt ‖ identity` (with its 16-byte tag).
    pub ciphertext: String,
    /// Hex SHA-256(salt ‖ identity).
    pub commitment: String,
}

impl SealedIdentity {
    /// Checks the encodings and sizes without any key.
    ///
    /// # Errors
    /// The first malformed field.
    pub fn check(&self) -> Result<(), SealError> {
        self.decode().map(drop)
    }

    /// (enc, ciphertext, commitment) decoded.
    fn decode(&self) -> Result<Decoded, SealError> {
        let enc: [u8; 32] = B64
            .decode(&self.enc)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(SealError::Malformed("enc"))?;
        if self.ciphertext.len() > 1024 {
            return Err(SealError::Malformed("ciphertext"));
        }
        let ct = B64
            .decode(&self.ciphertext)
            .map_err(|_| SealError::Malformed("ciphertext"))?;
        // salt + at least one identity byte + 16-byte tag.
        if ct.len() < SALT_LEN + 1 + 16 || ct.len() > SALT_LEN + MAX_IDENTITY + 16 {
            return Err(SealError::Malformed("ciphertext"));
        }
        let commitment = Hash::from_hex(&self.commitment).map_err(|_| SealError::Malformed("commitment"))?;
        if commitment.to_hex() != self.commitment {
            return Err(SealError::Malformed("commitment"));
        }
        Ok((enc, ct, commitment.0))
    }
}

type Decoded = ([u8; 32], Vec<u8>, [u8; 32]);

/// What the escrow reveals: the identity and the salt. Anyone checks it against the commitment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Opening {
    /// The complainant's identity, as sealed.
    pub identity: String,
    /// Hex of the 32-byte salt.
    pub salt: String,
}

impl Opening {
    /// Checks `SHA-256(salt ‖ identity)` against the hex commitment from the ledger.
    ///
    /// # Errors
    /// [`SealError::Malformed`] or [`SealError::CommitmentMismatch`].
    pub fn verify(&self, commitment_hex: &str) -> Result<(), SealError> {
        let mut salt = [0u8; SALT_LEN];
        if self.salt.len() != 64 || self.salt.bytes().any(|c| c.is_ascii_uppercase()) {
            return Err(SealError::Malformed("salt"));
        }
        hex::decode_to_slice(&self.salt, &mut salt).map_err(|_| SealError::Malformed("salt"))?;
        if commitment(&salt, &self.identity).to_hex() != commitment_hex {
            return Err(SealError::CommitmentMismatch);
        }
        Ok(())
    }
}

/// `SHA-256(salt ‖ identity UTF-8)`.
pub fn commitment(salt: &[u8; SALT_LEN], identity: &str) -> Hash {
    let mut b = Vec::with_capacity(SALT_LEN + identity.len());
    b.extend_from_slice(salt);
    b.extend_from_slice(identity.as_bytes());
    Hash::digest(&b)
}

/// The HPKE info string: `"ledger-complaint-seal-v1" ‖ 0x00 ‖ complaint_id`.
pub fn info(complaint_id: &str) -> Vec<u8> {
    let mut v = INFO_TAG.to_vec();
    v.push(0);
    v.extend_from_slice(complaint_id.as_bytes());
    v
}

/// RFC 9180 SealBase with this module's suite: returns (enc, ciphertext).
///
/// # Errors
/// A malformed recipient key or a sealing failure.
pub fn hpke_seal(
    rng: &mut impl CryptoRng,
    recipient: &EscrowPublicKey,
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<([u8; 32], Vec<u8>), SealError> {
    let pk = <X25519HkdfSha256 as hpke::Kem>::PublicKey::from_bytes(&recipient.0)
        .map_err(|_| SealError::Malformed("escrow public key"))?;
    let (enc, ct) = hpke::single_shot_seal_with_rng::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
        &OpModeS::Base,
        &pk,
        info,
        plaintext,
        aad,
        rng,
    )
    .map_err(|e| SealError::Seal(e.to_string()))?;
    Ok((enc.to_bytes().into(), ct))
}

/// RFC 9180 OpenBase with this module's suite.
///
/// # Errors
/// [`SealError::Open`] when decryption fails.
pub fn hpke_open(
    secret: &EscrowSecretKey,
    enc: &[u8; 32],
    info: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Vec<u8>, SealError> {
    let sk = <X25519HkdfSha256 as hpke::Kem>::PrivateKey::from_bytes(&secret.0)
        .map_err(|_| SealError::Malformed("escrow secret key"))?;
    let enc = <X25519HkdfSha256 as hpke::Kem>::EncappedKey::from_bytes(enc).map_err(|_| SealError::Malformed("enc"))?;
    hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
        &OpModeR::Base,
        &sk,
        &enc,
        info,
        ciphertext,
        aad,
    )
    .map_err(|_| SealError::Open)
}

fn identity_ok(identity: &str) -> Result<(), SealError> {
    if identity.is_empty() || identity.len() > MAX_IDENTITY || identity.chars().any(char::is_control) {
        return Err(SealError::Identity);
    }
    Ok(())
}

/// Seals `identity` for complaint `complaint_id` to the escrow `escrow_id` with key `escrow_key`.
/// Returns the record field and the opening the complainant may keep.
///
/// # Errors
/// An invalid identity or key.
pub fn seal_identity(
    rng: &mut impl CryptoRng,
    escrow_id: &str,
    escrow_key: &EscrowPublicKey,
    complaint_id: &str,
    identity: &str,
) -> Result<(SealedIdentity, Opening), SealError> {
    identity_ok(identity)?;
    let mut salt = [0u8; SALT_LEN];
    rng.fill_bytes(&mut salt);
    let c = commitment(&salt, identity);
    let mut pt = salt.to_vec();
    pt.extend_from_slice(identity.as_bytes());
    let (enc, ct) = hpke_seal(rng, escrow_key, &info(complaint_id), &c.0, &pt)?;
    Ok((
        SealedIdentity {
            escrow_id: escrow_id.to_string(),
            enc: B64.encode(enc),
            ciphertext: B64.encode(ct),
            commitment: c.to_hex(),
        },
        Opening {
            identity: identity.to_string(),
            salt: hex::encode(salt),
        },
    ))
}

/// The court's unseal: decrypts with the escrow secret key and checks the opening against the
/// commitment, so what it returns always verifies with [`Opening::verify`].
///
/// # Errors
/// [`SealError::Open`] for a wrong key, complaint id or tampered field; [`SealError::CommitmentMismatch`]
/// when the sealed content does not match the commitment.
pub fn unseal(secret: &EscrowSecretKey, complaint_id: &str, sealed: &SealedIdentity) -> Result<Opening, SealError> {
    let (enc, ct, c) = sealed.decode()?;
    let pt = hpke_open(secret, &enc, &info(complaint_id), &c, &ct)?;
    let (salt, id) = pt.split_at_checked(SALT_LEN).ok_or(SealError::Open)?;
    let identity = std::str::from_utf8(id).map_err(|_| SealError::Identity)?;
    let opening = Opening {
        identity: identity.to_string(),
        salt: hex::encode(salt),
    };
    opening.verify(&sealed.commitment)?;
    Ok(opening)
}
