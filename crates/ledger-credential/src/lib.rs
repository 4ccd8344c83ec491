//! Anonymous ballot credentials: RFC 9474 RSA blind signatures, variant RSABSSA-SHA384-PSS-Randomized
//! (`docs/ballots.md`).
//!
//! A drawn evaluator makes a one-time Ed25519 ballot key, blinds the [`credential_message`] that
//! binds it to the election, and has the registrar sign the blinded message with the election's
//! credential key ([`IssuerKey::blind_sign`]). The evaluator unblinds the result ([`finalize`])
//! into a [`Credential`]: an RSA-PSS signature anyone can check with the election's public key
//! ([`verify`]), which the registrar cannot link to the blinded message it signed.
//!
//! This crate wraps the `blind-rsa-signatures` crate; it adds the message format, the key encoding
//! used in `election.open` (standard base64 of the SubjectPublicKeyInfo DER, `rsaEncryption`
//! algorithm identifier) and typed errors ([`CredentialError`]). Randomness enters as an argument.
//!
//! What this crate does not do: it does not decide who may hold a credential or whether a ballot
//! counts (the election rules in `ledger-core`), and it does no I/O. It is its own crate so that
//! a reader of the log format (`ledger-tlog`, `ledger-note`, `ledger-dsse`) never compiles RSA.
//! Its vectors (`tests/credential_vectors.rs`) are RFC 9474 Appendix A's
//! RSABSSA-SHA384-PSS-Randomized test vector (`tests/data/rfc9474_sha384_pss_randomized.json`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use blind_rsa_signatures::{
    BlindSignature, BlindingResult, KeyPairSha384PSSRandomized, MessageRandomizer, PublicKeySha384PSSRandomized,
    SecretKeySha384PSSRandomized, Signature,
};
use serde::{Deserialize, Serialize};

pub use blind_rsa_signatures::BlindMessage;

/// The RFC 9474 variant, as named in `election.open`'s `credential_suite`.
pub const SUITE: &str = "RSABSSA-SHA384-PSS-Randomized";
/// Domain tag that starts every credential message.
pub const MESSAGE_TAG: &[u8] = b"ledger-credential-v1";
/// Modulus size of keys made by [`IssuerKey::generate`].
pub const DEFAULT_BITS: usize = 2048;
/// Longest base64 public key accepted (a 4096-bit SPKI is 550 bytes).
pub const MAX_KEY_BASE64: usize = 1100;

/// Errors of credential operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// A key could not be decoded or is outside RFC 9474's parameters (2048–4096 bits, e = 65537 or 3).
    #[error("invalid credential key: {0}")]
    Key(String),
    /// A blinded message, blind signature or credential is malformed.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// The signature does not verify for the message and key.
    #[error("credential does not verify for this election key and ballot key")]
    Invalid,
    /// The underlying operation failed (key generation, blinding, signing).
    #[error("credential operation failed: {0}")]
    Operation(String),
}

fn op(e: blind_rsa_signatures::Error) -> CredentialError {
    CredentialError::Operation(e.to_string())
}

/// The message a credential signs:
/// `"ledger-credential-v1" ‖ 0x00 ‖ election_id (UTF-8) ‖ 0x00 ‖ ballot public key (32 bytes)`.
///
/// Election ids never contain control characters (so no 0x00), which makes the encoding unambiguous.
pub fn credential_message(election_id: &str, ballot_key: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(MESSAGE_TAG.len() + election_id.len() + 34);
    m.extend_from_slice(MESSAGE_TAG);
    m.push(0);
    m.extend_from_slice(election_id.as_bytes());
    m.push(0);
    m.extend_from_slice(ballot_key);
    m
}

/// The election's public credential key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerPublicKey(PublicKeySha384PSSRandomized);

impl IssuerPublicKey {
    /// Parses standard base64 of the SubjectPublicKeyInfo DER (`rsaEncryption`), as in `election.open`.
    ///
    /// # Errors
    /// Not base64, not an RSA SPKI, or outside RFC 9474's parameters.
    pub fn from_base64(s: &str) -> Result<Self, CredentialError> {
        if s.len() > MAX_KEY_BASE64 {
            return Err(CredentialError::Key("too long".into()));
        }
        let der = B64.decode(s).map_err(|e| CredentialError::Key(e.to_string()))?;
        let pk = PublicKeySha384PSSRandomized::from_der(&der).map_err(|e| CredentialError::Key(e.to_string()))?;
        // Only the canonical SPKI encoding is accepted, so one key has one text form.
        if pk.to_der().map_err(op)? != der {
            return Err(CredentialError::Key(
                "not the canonical SubjectPublicKeyInfo DER (rsaEncryption)".into(),
            ));
        }
        Ok(Self(pk))
    }

    /// Standard base64 of the SubjectPublicKeyInfo DER.
    ///
    /// # Errors
    /// When the key cannot be encoded (does not happen for parsed or generated keys).
    pub fn to_base64(&self) -> Result<String, CredentialError> {
        Ok(B64.encode(self.0.to_der().map_err(op)?))
    }

    /// The underlying `blind-rsa-signatures` key.
    pub fn inner(&self) -> &PublicKeySha384PSSRandomized {
        &self.0
    }
}

/// The registrar's secret credential key (one per election).
#[derive(Debug, Clone)]
pub struct IssuerKey {
    sk: SecretKeySha384PSSRandomized,
    pk: IssuerPublicKey,
}

impl IssuerKey {
    /// Generates a key of `bits` (2048–4096). Slow: seconds for 2048 bits.
    ///
    /// # Errors
    /// Unsupported size.
    pub fn generate<R: blind_rsa_signatures::reexports::rand::CryptoRng + ?Sized>(
        rng: &mut R,
        bits: usize,
    ) -> Result<Self, CredentialError> {
        let kp = KeyPairSha384PSSRandomized::generate(rng, bits).map_err(op)?;
        Ok(Self {
            sk: kp.sk,
            pk: IssuerPublicKey(kp.pk),
        })
    }

    /// Parses a PKCS#8 (or PKCS#1) PEM secret key.
    ///
    /// # Errors
    /// Not a valid RSA key within RFC 9474's parameters.
    pub fn from_pem(pem: &str) -> Result<Self, CredentialError> {
        let sk = SecretKeySha384PSSRandomized::from_pem(pem).map_err(|e| CredentialError::Key(e.to_string()))?;
        let pk = sk.public_key().map_err(|e| CredentialError::Key(e.to_string()))?;
        Ok(Self {
            sk,
            pk: IssuerPublicKey(pk),
        })
    }

    /// PKCS#8 PEM of the secret key.
    ///
    /// # Errors
    /// When encoding fails.
    pub fn to_pem(&self) -> Result<String, CredentialError> {
        self.sk.to_pem().map_err(op)
    }

    /// The public key.
    pub fn public_key(&self) -> &IssuerPublicKey {
        &self.pk
    }

    /// Signs a blinded message (RFC 9474 §4.3 BlindSign). The registrar learns nothing about the
    /// message; it must only check, outside this function, that the requester is a drawn evaluator
    /// who has not yet received a credential.
    ///
    /// # Errors
    /// A blinded message of the wrong length or not below the modulus.
    pub fn blind_sign(&self, blinded: &[u8]) -> Result<Vec<u8>, CredentialError> {
        let n = self.pk.0.components().n().len();
        if blinded.len() != n {
            return Err(CredentialError::Malformed("blinded message"));
        }
        self.sk.blind_sign(blinded).map(|s| s.0).map_err(op)
    }
}

/// What the evaluator keeps between blinding and finalizing (secret: it would link the credential).
#[derive(Debug, Clone)]
pub struct BlindingState {
    message: Vec<u8>,
    result: BlindingResult,
}

impl BlindingState {
    /// The blinded message to send to the registrar.
    pub fn blinded_message(&self) -> &[u8] {
        &self.result.blind_message.0
    }

    /// The blinding secret (RFC 9474's inverse blinding factor `inv`) and the message randomizer,
    /// for an evaluator who keeps them in a file between blinding and finalizing. Secret: with them
    /// the registrar could link the credential to the blinded message it signed.
    pub fn secret_parts(&self) -> (&[u8], Option<[u8; 32]>) {
        (&self.result.secret.0, self.result.msg_randomizer.map(|r| r.0))
    }

    /// Rebuilds the state kept by [`blind`] for `ballot_key` in `election_id` from the blinded
    /// message and [`Self::secret_parts`].
    pub fn from_parts(
        election_id: &str,
        ballot_key: &[u8; 32],
        blinded_message: Vec<u8>,
        secret: Vec<u8>,
        randomizer: Option<[u8; 32]>,
    ) -> Self {
        Self {
            message: credential_message(election_id, ballot_key),
            result: BlindingResult {
                blind_message: BlindMessage(blinded_message),
                secret: blind_rsa_signatures::Secret(secret),
                msg_randomizer: randomizer.map(MessageRandomizer),
            },
        }
    }
}

/// Blinds the credential message for `ballot_key` in `election_id` (RFC 9474 §4.2 Prepare + Blind).
///
/// # Errors
/// When blinding fails (negligible probability).
pub fn blind<R: blind_rsa_signatures::reexports::rand::CryptoRng + ?Sized>(
    rng: &mut R,
    key: &IssuerPublicKey,
    election_id: &str,
    ballot_key: &[u8; 32],
) -> Result<BlindingState, CredentialError> {
    let message = credential_message(election_id, ballot_key);
    let result = key.0.blind(rng, &message).map_err(op)?;
    Ok(BlindingState { message, result })
}

/// A finalized credential: RFC 9474's message randomizer and the RSA-PSS signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// Hex of the 32-byte message randomizer (RFC 9474 §4.1, prepended to the message).
    pub randomizer: String,
    /// Standard base64 of the signature (modulus length).
    pub signature: String,
}

impl Credential {
    /// Builds the JSON form from raw parts.
    pub fn from_parts(randomizer: &[u8; 32], signature: &[u8]) -> Self {
        Self {
            randomizer: hex::encode(randomizer),
            signature: B64.encode(signature),
        }
    }

    /// Decodes the raw parts.
    ///
    /// # Errors
    /// When the randomizer is not 64 hex digits or the signature not base64 (of at most 512 bytes).
    pub fn parts(&self) -> Result<([u8; 32], Vec<u8>), CredentialError> {
        let mut r = [0u8; 32];
        if self.randomizer.len() != 64 || self.randomizer.bytes().any(|c| c.is_ascii_uppercase()) {
            return Err(CredentialError::Malformed("credential randomizer"));
        }
        hex::decode_to_slice(&self.randomizer, &mut r)
            .map_err(|_| CredentialError::Malformed("credential randomizer"))?;
        if self.signature.len() > 700 {
            return Err(CredentialError::Malformed("credential signature"));
        }
        let s = B64
            .decode(&self.signature)
            .map_err(|_| CredentialError::Malformed("credential signature"))?;
        Ok((r, s))
    }
}

/// Unblinds the registrar's blind signature (RFC 9474 §4.4 Finalize) and checks the result.
///
/// # Errors
/// A malformed blind signature, or one that does not finalize into a valid signature.
pub fn finalize(
    key: &IssuerPublicKey,
    state: &BlindingState,
    blind_signature: &[u8],
) -> Result<Credential, CredentialError> {
    let sig = key
        .0
        .finalize(&BlindSignature(blind_signature.to_vec()), &state.result, &state.message)
        .map_err(|_| CredentialError::Invalid)?;
    let r = state.result.msg_randomizer.ok_or(CredentialError::Operation(
        "randomized variant without randomizer".into(),
    ))?;
    Ok(Credential::from_parts(&r.0, &sig.0))
}

/// Verifies a credential for `ballot_key` in `election_id` (RFC 9474 §4.5 Verify).
///
/// # Errors
/// [`CredentialError::Malformed`] or [`CredentialError::Invalid`].
pub fn verify(
    key: &IssuerPublicKey,
    election_id: &str,
    ballot_key: &[u8; 32],
    credential: &Credential,
) -> Result<(), CredentialError> {
    let (r, s) = credential.parts()?;
    key.0
        .verify(
            &Signature(s),
            Some(MessageRandomizer(r)),
            credential_message(election_id, ballot_key),
        )
        .map_err(|_| CredentialError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TEST ONLY: a published 2048-bit credential key, so that tests need not generate RSA keys.
    const TEST_KEY_PEM: &str = include_str!("../../ledger-core/tests/data/TEST_ONLY_credential_key.pem");

    #[test]
    fn message_bytes() {
        let m = credential_message("el-1", &[7u8; 32]);
        let mut want = b"ledger-credential-v1\0el-1\0".to_vec();
        want.extend_from_slice(&[7u8; 32]);
        assert_eq!(m, want);
    }

    #[test]
    fn round_trip_and_refusals() {
        let issuer = IssuerKey::from_pem(TEST_KEY_PEM).expect("test key");
        let pk = IssuerPublicKey::from_base64(&issuer.public_key().to_base64().expect("b64")).expect("parse");
        assert_eq!(&pk, issuer.public_key());
        let mut rng = blind_rsa_signatures::DefaultRng;
        let bk = [9u8; 32];
        let st = blind(&mut rng, &pk, "el-1", &bk).expect("blind");
        let bs = issuer.blind_sign(st.blinded_message()).expect("sign");
        let cred = finalize(&pk, &st, &bs).expect("finalize");
        assert_eq!(verify(&pk, "el-1", &bk, &cred), Ok(()));
        // The state survives a trip through its parts (an evaluator's secrets file).
        let (secret, r) = st.secret_parts();
        let kept = BlindingState::from_parts("el-1", &bk, st.blinded_message().to_vec(), secret.to_vec(), r);
        assert_eq!(
            verify(&pk, "el-1", &bk, &finalize(&pk, &kept, &bs).expect("kept")),
            Ok(())
        );
        let wrong = BlindingState::from_parts("el-1", &[8u8; 32], st.blinded_message().to_vec(), secret.to_vec(), r);
        assert!(finalize(&pk, &wrong, &bs).is_err(), "secrets of another ballot key");
        assert_eq!(verify(&pk, "el-2", &bk, &cred), Err(CredentialError::Invalid));
        assert_eq!(verify(&pk, "el-1", &[8u8; 32], &cred), Err(CredentialError::Invalid));
        let mut other = cred.clone();
        other.randomizer = "00".repeat(32);
        assert_eq!(verify(&pk, "el-1", &bk, &other), Err(CredentialError::Invalid));
        assert!(matches!(
            verify(&pk, "el-1", &bk, &Credential::from_parts(&[0; 32], &[1, 2, 3])),
            Err(CredentialError::Invalid | CredentialError::Malformed(_))
        ));
        assert!(issuer.blind_sign(&[1, 2, 3]).is_err());
        assert!(finalize(&pk, &st, &[0u8; 256]).is_err());
        assert!(IssuerPublicKey::from_base64("AAAA").is_err());
        assert!(IssuerPublicKey::from_base64("not base64!").is_err());
    }
}
