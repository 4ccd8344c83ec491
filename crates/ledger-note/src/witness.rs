//! The decision rules of a C2SP tlog-witness (<https://c2sp.org/tlog-witness>), transport-agnostic.
//!
//! A witness keeps, per log origin, the latest checkpoint it cosigned. An `add-checkpoint` request
//! carries the size the submitter believes the witness holds (`old`), a consistency proof from that
//! size, and the new signed checkpoint. The witness cosigns only when the log's signature verifies,
//! `old` is exactly the size it holds, and the proof shows the new tree extends the held one; so it
//! never cosigns a smaller tree or a tree that conflicts with one it cosigned.
//!
//! The request body is the spec's text form (`old N\n`, base64 proof lines, a blank line, the
//! checkpoint note); [`AddCheckpoint::parse`] and [`AddCheckpoint::to_body`] read and write it.
//! Storage, locking (check-and-persist must be atomic) and the network belong to the caller.

use crate::checkpoint::{Checkpoint, SignedCheckpoint};
use crate::note::{MAX_NOTE_BYTES, Note, NoteError, NoteSignature, NoteVerifier};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ledger_tlog::hash::{Hash, empty_root};
use ledger_tlog::merkle::verify_consistency;

/// Most consistency proof lines a request may carry (the spec's limit).
pub const MAX_PROOF_LINES: usize = 63;
/// Largest add-checkpoint body accepted: a maximal note, 63 proof lines and the old-size line.
pub const MAX_ADD_CHECKPOINT_BYTES: usize = MAX_NOTE_BYTES + MAX_PROOF_LINES * 45 + 32;

/// Why a witness refuses a checkpoint. Each variant names the HTTP status the spec gives it
/// ([`WitnessError::http_status`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessError {
    /// The request is not well formed (400).
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The old size is larger than the checkpoint's size (400).
    #[error("old size {old} is larger than the checkpoint size {size}")]
    OldSizeTooLarge {
        /// Old size in the request.
        old: u64,
        /// Size of the submitted checkpoint.
        size: u64,
    },
    /// The witness does not know this log (404).
    #[error("unknown log origin {0:?}")]
    UnknownOrigin(String),
    /// No trusted log key signed the checkpoint (403).
    #[error("the checkpoint is not signed by the log's key: {0}")]
    BadSignature(String),
    /// The old size is not the size the witness holds, or the same size arrives with another root
    /// (409). The witness's size is in `held_size`.
    #[error("conflict: the witness holds a checkpoint of size {held_size} for this log: {reason}")]
    Conflict {
        /// Size of the latest checkpoint the witness cosigned for this log (0 if none).
        held_size: u64,
        /// What conflicts.
        reason: String,
    },
    /// The consistency proof does not verify (422): the checkpoint does not extend the one held.
    #[error("the consistency proof from size {old} to {size} does not verify: {detail}")]
    ProofInvalid {
        /// Old size.
        old: u64,
        /// New size.
        size: u64,
        /// Verifier error.
        detail: String,
    },
}

impl WitnessError {
    /// The HTTP status code the tlog-witness spec gives this refusal.
    pub fn http_status(&self) -> u16 {
        match self {
            WitnessError::Malformed(_) | WitnessError::OldSizeTooLarge { .. } => 400,
            WitnessError::BadSignature(_) => 403,
            WitnessError::UnknownOrigin(_) => 404,
            WitnessError::Conflict { .. } => 409,
            WitnessError::ProofInvalid { .. } => 422,
        }
    }

    /// The held size, for conflicts.
    pub fn held_size(&self) -> Option<u64> {
        match self {
            WitnessError::Conflict { held_size, .. } => Some(*held_size),
            _ => None,
        }
    }
}

/// An add-checkpoint request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// Size of the checkpoint the submitter believes the witness holds (0: none).
    pub old_size: u64,
    /// RFC 6962 consistency proof from `old_size` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, as text.
    pub checkpoint: String,
}

impl AddCheckpoint {
    /// The spec's request body.
    pub fn to_body(&self) -> String {
        let mut s = format!("old {}\n", self.old_size);
        for h in &self.proof {
            s.push_str(&B64.encode(h.0));
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&self.checkpoint);
        s
    }

    /// Parses the spec's request body, refusing bodies over [`MAX_ADD_CHECKPOINT_BYTES`] and more
    /// than [`MAX_PROOF_LINES`] proof lines.
    ///
    /// # Errors
    /// [`WitnessError::Malformed`] when the body does not follow the spec.
    pub fn parse(body: &str) -> Result<Self, WitnessError> {
        let bad = |m: String| WitnessError::Malformed(m);
        if body.len() > MAX_ADD_CHECKPOINT_BYTES {
            return Err(bad(format!(
                "request is {} bytes, the limit is {MAX_ADD_CHECKPOINT_BYTES}",
                body.len()
            )));
        }
        let (first, mut rest) = body
            .split_once('\n')
            .ok_or_else(|| bad("missing old size line".into()))?;
        let n = first
            .strip_prefix("old ")
            .ok_or_else(|| bad("the first line must be \"old <size>\"".into()))?;
        if n.is_empty() || !n.bytes().all(|c| c.is_ascii_digit()) || (n.len() > 1 && n.starts_with('0')) {
            return Err(bad("old size must be a decimal without leading zeros".into()));
        }
        let old_size: u64 = n.parse().map_err(|_| bad("old size does not fit in 64 bits".into()))?;
        let mut proof = Vec::new();
        loop {
            let (line, r) = rest
                .split_once('\n')
                .ok_or_else(|| bad("missing blank line before the checkpoint".into()))?;
            rest = r;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(bad(format!("more than {MAX_PROOF_LINES} consistency proof lines")));
            }
            let b = B64.decode(line).map_err(|_| bad("a proof line is not base64".into()))?;
            proof.push(Hash::from_slice(&b).map_err(|_| bad("a proof hash is not 32 bytes".into()))?);
        }
        Ok(AddCheckpoint {
            old_size,
            proof,
            checkpoint: rest.to_string(),
        })
    }
}

/// Opens a submitted checkpoint: parses the note and its body, finds the log by origin among the
/// trusted log keys (named after their origins) and verifies the log's signature.
///
/// # Errors
/// [`WitnessError::Malformed`], [`WitnessError::UnknownOrigin`] or [`WitnessError::BadSignature`].
pub fn open_submission(note_text: &str, logs: &[NoteVerifier]) -> Result<SignedCheckpoint, WitnessError> {
    let note = Note::parse(note_text).map_err(|e| WitnessError::Malformed(e.to_string()))?;
    let checkpoint = Checkpoint::from_body(&note.text).map_err(|e| WitnessError::Malformed(e.to_string()))?;
    let keys: Vec<NoteVerifier> = logs.iter().filter(|k| k.name == checkpoint.origin).cloned().collect();
    if keys.is_empty() {
        return Err(WitnessError::UnknownOrigin(checkpoint.origin));
    }
    note.verify(&keys).map_err(|e| match e {
        NoteError::Unverified => WitnessError::BadSignature("no signature by a trusted key for this origin".into()),
        e => WitnessError::BadSignature(e.to_string()),
    })?;
    Ok(SignedCheckpoint { checkpoint, note })
}

/// The note a witness keeps and serves for an accepted submission: the checkpoint text, the
/// signature lines of the log's trusted key(s) for this origin (each verified by
/// [`open_submission`]), once each, and the witness's own cosignature(s) `own` (one per key type it
/// cosigns with; none only when a witness reloads a held note without a valid cosignature of its
/// own). Every other line of
/// the submission (cosignatures in other witnesses' names, lines by unknown keys, junk) is
/// dropped: a witness vouches only for what it verified or signed, so nothing planted by a
/// submitter is stored or served in its name.
pub fn kept_note(
    opened: &SignedCheckpoint,
    logs: &[NoteVerifier],
    own: impl IntoIterator<Item = NoteSignature>,
) -> Note {
    let origin = &opened.checkpoint.origin;
    let mut signatures: Vec<NoteSignature> = Vec::new();
    for s in &opened.note.signatures {
        let by_log = logs
            .iter()
            .any(|k| k.name == *origin && k.name == s.name && k.key_hash == s.key_hash);
        if by_log && !signatures.contains(s) {
            signatures.push(s.clone());
        }
    }
    signatures.extend(own);
    Note {
        text: opened.note.text.clone(),
        signatures,
    }
}

/// Checks a submission against the checkpoint the witness holds for its origin (`held`: size and
/// root, `None` if it never cosigned one), in the order the spec gives.
///
/// # Errors
/// [`WitnessError::OldSizeTooLarge`], [`WitnessError::Malformed`] (proof lines after old size 0),
/// [`WitnessError::Conflict`] or [`WitnessError::ProofInvalid`].
pub fn check_submission(
    held: Option<(u64, Hash)>,
    old_size: u64,
    proof: &[Hash],
    cp: &Checkpoint,
) -> Result<(), WitnessError> {
    if old_size > cp.size {
        return Err(WitnessError::OldSizeTooLarge {
            old: old_size,
            size: cp.size,
        });
    }
    let (held_size, held_root) = held.unwrap_or((0, empty_root()));
    if old_size != held_size {
        return Err(WitnessError::Conflict {
            held_size,
            reason: format!("the request's old size is {old_size}"),
        });
    }
    if old_size == 0 {
        if !proof.is_empty() {
            return Err(WitnessError::Malformed(
                "the proof must be empty when the old size is 0".into(),
            ));
        }
        return Ok(());
    }
    if old_size == cp.size {
        if !proof.is_empty() {
            return Err(WitnessError::Malformed(
                "the proof must be empty when the sizes are equal".into(),
            ));
        }
        if cp.root != held_root {
            return Err(WitnessError::Conflict {
                held_size,
                reason: format!(
                    "same size with a different root: held {held_root}, submitted {}",
                    cp.root
                ),
            });
        }
        return Ok(());
    }
    verify_consistency(old_size, cp.size, &held_root, &cp.root, proof).map_err(|e| WitnessError::ProofInvalid {
        old: old_size,
        size: cp.size,
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cosignature::CosignatureSigner;
    use crate::note::NoteSigner;
    use ed25519_dalek::SigningKey;
    use ledger_tlog::hash::Hash;

    #[test]
    fn kept_note_holds_only_the_log_signature_and_the_own_cosignature() {
        let log = NoteSigner::new("log.test/a", SigningKey::from_bytes(&[1; 32])).expect("log key");
        let other_log = NoteSigner::new("log.test/b", SigningKey::from_bytes(&[2; 32])).expect("log key");
        let me = CosignatureSigner::new("w.test/me", SigningKey::from_bytes(&[3; 32])).expect("witness");
        let peer = CosignatureSigner::new("w.test/peer", SigningKey::from_bytes(&[4; 32])).expect("witness");
        let cp = Checkpoint {
            origin: "log.test/a".into(),
            size: 3,
            root: Hash::digest(b"root"),
            extensions: vec![],
        };
        let mut note = cp.sign(&log).expect("sign");
        let log_line = note.signatures[0].clone();
        // Planted: a line in the peer's name (not its signature), the peer's valid cosignature, a
        // line in the other log's name, a repeat of the log's line, and junk by unknown names.
        let mut planted = peer.sign(&note.text, 7).expect("cosign");
        planted.sig[20] ^= 1;
        note.signatures.push(planted);
        note.signatures.push(peer.sign(&note.text, 8).expect("cosign"));
        note.signatures.push(other_log.sign(&note.text).expect("sign"));
        note.signatures.push(log_line.clone());
        for i in 0..20u8 {
            note.signatures.push(NoteSignature {
                name: format!("junk{i}"),
                key_hash: u32::from(i),
                sig: vec![i; 64],
            });
        }
        let opened = open_submission(&note.to_text(), &[log.verifier().clone(), other_log.verifier().clone()])
            .expect("the log's signature verifies");
        let own = me.sign(&opened.note.text, 9).expect("cosign");
        let kept = kept_note(
            &opened,
            &[log.verifier().clone(), other_log.verifier().clone()],
            Some(own.clone()),
        );
        assert_eq!(kept.signatures, vec![log_line.clone(), own]);
        assert_eq!(kept.text, note.text);
        let reloaded = kept_note(&opened, &[log.verifier().clone()], None);
        assert_eq!(reloaded.signatures, vec![log_line]);
    }
}
