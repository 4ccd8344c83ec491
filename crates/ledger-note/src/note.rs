//! C2SP signed notes (<https://c2sp.org/signed-note>) with Ed25519 keys.
//!
//! A note is UTF-8 text ending in a newline, a blank line, and one or more signature lines
//! `— <key name> <base64(key hash[4] ‖ signature)>`. The key hash of an Ed25519 key is the first
//! four bytes of `SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ public key)`, and the signature covers the text
//! including its final newline. A verifier key is written `<name>+<hex key hash>+<base64(0x01 ‖
//! public key)>`. Signatures by keys the verifier does not know are ignored, as the spec requires;
//! a signature that claims a known key but does not verify is an error.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use ledger_tlog::hash::Hash;

/// Signature type byte of plain Ed25519 note signatures.
pub const ALG_ED25519: u8 = 0x01;
/// Largest note accepted by the parser, in bytes.
pub const MAX_NOTE_BYTES: usize = 64 * 1024;
/// Most signature lines accepted on one note (the Go reference implementation's limit).
pub const MAX_SIGNATURES: usize = 100;

/// Errors parsing, signing or verifying notes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// The note is not well formed.
    #[error("malformed note: {0}")]
    Malformed(String),
    /// A verifier or signer key string is not well formed.
    #[error("malformed key: {0}")]
    MalformedKey(String),
    /// A known key's signature does not verify.
    #[error("invalid signature by {name}+{key_hash:08x}")]
    InvalidSignature {
        /// Key name.
        name: String,
        /// Key hash.
        key_hash: u32,
    },
    /// No signature by any trusted key.
    #[error("note has no signature by a trusted key")]
    Unverified,
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// Key name.
    pub name: String,
    /// 4-byte key hash, big-endian.
    pub key_hash: u32,
    /// Signature bytes after the key hash (64 for Ed25519).
    pub sig: Vec<u8>,
}

impl NoteSignature {
    /// The signature line without its final newline.
    pub fn to_line(&self) -> String {
        let mut b = Vec::with_capacity(4 + self.sig.len());
        b.extend_from_slice(&self.key_hash.to_be_bytes());
        b.extend_from_slice(&self.sig);
        format!("— {} {}", self.name, B64.encode(b))
    }
}

/// A parsed (not yet verified) note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The signed text, ending in a newline.
    pub text: String,
    /// Signature lines in order.
    pub signatures: Vec<NoteSignature>,
}

fn valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// Key hash of a key: first four bytes of SHA-256(name ‖ "\n" ‖ alg ‖ key), big-endian.
pub fn key_hash(name: &str, alg: u8, key: &[u8]) -> u32 {
    let mut b = Vec::with_capacity(name.len() + 2 + key.len());
    b.extend_from_slice(name.as_bytes());
    b.push(b'\n');
    b.push(alg);
    b.extend_from_slice(key);
    let h = Hash::digest(&b);
    u32::from_be_bytes([h.0[0], h.0[1], h.0[2], h.0[3]])
}

fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::Malformed("text must end in a newline".into()));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(NoteError::Malformed("text contains a control character".into()));
    }
    Ok(())
}

impl Note {
    /// Parses a signed note. Refuses notes over [`MAX_NOTE_BYTES`], without signatures, with more
    /// than [`MAX_SIGNATURES`] or with malformed signature lines.
    ///
    /// # Errors
    /// When the note is malformed.
    pub fn parse(s: &str) -> Result<Self, NoteError> {
        if s.len() > MAX_NOTE_BYTES {
            return Err(NoteError::Malformed(format!(
                "note is {} bytes, the limit is {MAX_NOTE_BYTES}",
                s.len()
            )));
        }
        let split = s
            .rfind("\n\n")
            .ok_or_else(|| NoteError::Malformed("no blank line before the signatures".into()))?;
        let text = &s[..split + 1];
        let sigs = &s[split + 2..];
        check_text(text)?;
        if sigs.is_empty() || !sigs.ends_with('\n') {
            return Err(NoteError::Malformed(
                "signature block must be non-empty and end in a newline".into(),
            ));
        }
        let mut signatures = Vec::new();
        for line in sigs[..sigs.len() - 1].split('\n') {
            if signatures.len() == MAX_SIGNATURES {
                return Err(NoteError::Malformed(format!("more than {MAX_SIGNATURES} signatures")));
            }
            let rest = line.strip_prefix("— ").ok_or_else(|| {
                NoteError::Malformed(format!("signature line does not start with an em dash: {line:?}"))
            })?;
            let (name, b64) = rest
                .split_once(' ')
                .ok_or_else(|| NoteError::Malformed("signature line has no space after the key name".into()))?;
            if !valid_key_name(name) {
                return Err(NoteError::Malformed(format!("invalid key name {name:?}")));
            }
            let raw = B64
                .decode(b64)
                .map_err(|e| NoteError::Malformed(format!("signature is not base64: {e}")))?;
            if raw.len() < 5 {
                return Err(NoteError::Malformed("signature shorter than 5 bytes".into()));
            }
            let key_hash = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
            signatures.push(NoteSignature {
                name: name.to_string(),
                key_hash,
                sig: raw[4..].to_vec(),
            });
        }
        Ok(Note {
            text: text.to_string(),
            signatures,
        })
    }

    /// Serializes the note: text, blank line, one line per signature.
    pub fn to_text(&self) -> String {
        let mut s = String::with_capacity(self.text.len() + 128 * self.signatures.len());
        s.push_str(&self.text);
        s.push('\n');
        for sig in &self.signatures {
            s.push_str(&sig.to_line());
            s.push('\n');
        }
        s
    }

    /// Verifies the note against a set of trusted keys; returns the names whose signatures verified.
    /// Signatures by unknown keys are ignored.
    ///
    /// # Errors
    /// [`NoteError::InvalidSignature`] when a known key's signature fails, and
    /// [`NoteError::Unverified`] when no trusted key signed.
    pub fn verify(&self, verifiers: &[NoteVerifier]) -> Result<Vec<String>, NoteError> {
        let mut ok = Vec::new();
        for s in &self.signatures {
            let Some(v) = verifiers.iter().find(|v| v.name == s.name && v.key_hash == s.key_hash) else {
                continue;
            };
            if !v.verify(self.text.as_bytes(), &s.sig) {
                return Err(NoteError::InvalidSignature {
                    name: s.name.clone(),
                    key_hash: s.key_hash,
                });
            }
            if !ok.contains(&s.name) {
                ok.push(s.name.clone());
            }
        }
        if ok.is_empty() {
            return Err(NoteError::Unverified);
        }
        Ok(ok)
    }
}

/// A trusted Ed25519 note key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    /// Key name.
    pub name: String,
    /// Key hash.
    pub key_hash: u32,
    /// Public key.
    pub key: VerifyingKey,
}

impl NoteVerifier {
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
            key_hash: key_hash(name, ALG_ED25519, key.as_bytes()),
            key,
        })
    }

    /// Parses `<name>+<hex key hash>+<base64(0x01 ‖ key)>` and checks the key hash.
    ///
    /// # Errors
    /// When the string is malformed or the key hash does not match.
    pub fn parse(s: &str) -> Result<Self, NoteError> {
        let (name, key) = parse_verifier_key(s, ALG_ED25519, "key must be 0x01 followed by a 32-byte Ed25519 key")?;
        Self::new(name, key)
    }

    /// The `name+hash+key` string.
    pub fn to_string_key(&self) -> String {
        let mut raw = vec![ALG_ED25519];
        raw.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.key_hash, B64.encode(raw))
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else {
            return false;
        };
        self.key.verify_strict(msg, &sig).is_ok()
    }
}

/// Splits a verifier key string `<name>+<hex key hash>+<base64(alg ‖ key)>` into the name, the key
/// hash and the decoded bytes `alg ‖ key` (neither checked against each other here).
///
/// # Errors
/// [`NoteError::MalformedKey`] naming what is wrong.
pub(crate) fn split_verifier_key(s: &str) -> Result<(&str, u32, Vec<u8>), NoteError> {
    let bad = |m: &str| NoteError::MalformedKey(m.to_string());
    let mut parts = s.splitn(3, '+');
    let (Some(name), Some(hash_hex), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("expected name+hash+key"));
    };
    if !valid_key_name(name) {
        return Err(bad("invalid key name"));
    }
    if hash_hex.len() != 8
        || !hash_hex
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    {
        return Err(bad("key hash must be 8 lowercase hex digits"));
    }
    let kh = u32::from_str_radix(hash_hex, 16).map_err(|_| bad("key hash is not hex"))?;
    let raw = B64.decode(b64).map_err(|_| bad("key is not base64"))?;
    Ok((name, kh, raw))
}

/// Parses a verifier key string `<name>+<hex key hash>+<base64(alg ‖ 32-byte Ed25519 key)>` for
/// signature type `alg` and checks that the key hash is the one `key_hash(name, alg, key)` gives.
/// `wrong_type` is the error text for a key of another type or length.
///
/// # Errors
/// [`NoteError::MalformedKey`] naming what is wrong.
pub(crate) fn parse_verifier_key<'a>(
    s: &'a str,
    alg: u8,
    wrong_type: &str,
) -> Result<(&'a str, VerifyingKey), NoteError> {
    let bad = |m: &str| NoteError::MalformedKey(m.to_string());
    let (name, kh, raw) = split_verifier_key(s)?;
    if raw.len() != 33 || raw[0] != alg {
        return Err(bad(wrong_type));
    }
    let arr: [u8; 32] = raw[1..].try_into().map_err(|_| bad("key length"))?;
    let key = VerifyingKey::from_bytes(&arr).map_err(|_| bad("not a valid Ed25519 key"))?;
    if key_hash(name, alg, key.as_bytes()) != kh {
        return Err(bad("key hash does not match the key"));
    }
    Ok((name, key))
}

/// An Ed25519 note signer.
#[derive(Debug, Clone)]
pub struct NoteSigner {
    verifier: NoteVerifier,
    key: SigningKey,
}

impl NoteSigner {
    /// A signer for `key` under `name`.
    ///
    /// # Errors
    /// When the name is invalid.
    pub fn new(name: &str, key: SigningKey) -> Result<Self, NoteError> {
        Ok(Self {
            verifier: NoteVerifier::new(name, key.verifying_key())?,
            key,
        })
    }

    /// Parses the Go/C2SP private key string `PRIVATE+KEY+<name>+<hex hash>+<base64(0x01 ‖ seed)>`.
    ///
    /// # Errors
    /// When the string is malformed or its hash does not match the derived public key.
    pub fn parse(s: &str) -> Result<Self, NoteError> {
        let bad = |m: &str| NoteError::MalformedKey(m.to_string());
        let rest = s
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| bad("expected PRIVATE+KEY+ prefix"))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(hash_hex), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected name+hash+key"));
        };
        let kh = u32::from_str_radix(hash_hex, 16).map_err(|_| bad("key hash is not hex"))?;
        let raw = B64.decode(b64).map_err(|_| bad("key is not base64"))?;
        if raw.len() != 33 || raw[0] != ALG_ED25519 {
            return Err(bad("key must be 0x01 followed by a 32-byte seed"));
        }
        let seed: [u8; 32] = raw[1..].try_into().map_err(|_| bad("seed length"))?;
        let signer = Self::new(name, SigningKey::from_bytes(&seed))?;
        if signer.verifier.key_hash != kh {
            return Err(bad("key hash does not match the key"));
        }
        Ok(signer)
    }

    /// The matching verifier.
    pub fn verifier(&self) -> &NoteVerifier {
        &self.verifier
    }

    /// Signs `text` (which must end in a newline and hold no control characters).
    ///
    /// # Errors
    /// When the text is not valid note text.
    pub fn sign(&self, text: &str) -> Result<NoteSignature, NoteError> {
        check_text(text)?;
        let sig = self.key.sign(text.as_bytes());
        Ok(NoteSignature {
            name: self.verifier.name.clone(),
            key_hash: self.verifier.key_hash,
            sig: sig.to_bytes().to_vec(),
        })
    }
}
