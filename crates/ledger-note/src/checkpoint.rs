//! C2SP tlog-checkpoint bodies (<https://c2sp.org/tlog-checkpoint>), signed as [`crate::note`]s.
//!
//! ```text
//! <origin>\n
//! <tree size, decimal, no leading zeros>\n
//! <base64 root hash>\n
//! [extension lines]\n
//! ```

use crate::note::{Note, NoteError, NoteSigner, NoteVerifier};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ledger_tlog::hash::Hash;

/// Errors parsing a checkpoint body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The body is malformed.
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    /// The enclosing note failed to parse or verify.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// The checkpoint is for another log.
    #[error("checkpoint origin is {found:?}, expected {expected:?}")]
    WrongOrigin {
        /// Origin expected.
        expected: String,
        /// Origin found.
        found: String,
    },
}

/// A checkpoint: the log's origin, its size and root, and optional extension lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Log origin (unique name of the log).
    pub origin: String,
    /// Tree size.
    pub size: u64,
    /// RFC 9162 root of the first `size` leaves.
    pub root: Hash,
    /// Extension lines, each non-empty, without newlines.
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The note body text.
    pub fn to_body(&self) -> String {
        let mut s = format!("{}\n{}\n{}\n", self.origin, self.size, B64.encode(self.root.0));
        for e in &self.extensions {
            s.push_str(e);
            s.push('\n');
        }
        s
    }

    /// Parses a note body.
    ///
    /// # Errors
    /// When the body is malformed.
    pub fn from_body(text: &str) -> Result<Self, CheckpointError> {
        let bad = |m: &str| CheckpointError::Malformed(m.to_string());
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| bad("body must end in a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| bad("empty origin line"))?;
        let size_s = lines.next().ok_or_else(|| bad("missing size line"))?;
        if size_s.is_empty()
            || !size_s.bytes().all(|c| c.is_ascii_digit())
            || (size_s.len() > 1 && size_s.starts_with('0'))
        {
            return Err(bad("size must be a decimal number without leading zeros"));
        }
        let size: u64 = size_s.parse().map_err(|_| bad("size does not fit in 64 bits"))?;
        let root_s = lines.next().ok_or_else(|| bad("missing root line"))?;
        let root_b = B64.decode(root_s).map_err(|_| bad("root is not base64"))?;
        let root = Hash::from_slice(&root_b).map_err(|_| bad("root is not 32 bytes"))?;
        let extensions: Vec<String> = lines.map(str::to_string).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(bad("empty extension line"));
        }
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root,
            extensions,
        })
    }

    /// Signs the checkpoint into a note.
    ///
    /// # Errors
    /// When the origin or an extension makes the body invalid note text.
    pub fn sign(&self, signer: &NoteSigner) -> Result<Note, CheckpointError> {
        let text = self.to_body();
        let sig = signer.sign(&text)?;
        Ok(Note {
            text,
            signatures: vec![sig],
        })
    }
}

/// A checkpoint whose note carried a valid signature by the log's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// The whole note (with any further cosignatures), as received.
    pub note: Note,
}

/// Parses a signed checkpoint note and verifies the log's signature.
///
/// # Errors
/// When the note is malformed, the log key did not sign it, or the origin differs from the
/// log key's name (the C2SP convention: the log key is named after the origin).
pub fn open_checkpoint(text: &str, log_key: &NoteVerifier) -> Result<SignedCheckpoint, CheckpointError> {
    let note = Note::parse(text)?;
    let checkpoint = Checkpoint::from_body(&note.text)?;
    if checkpoint.origin != log_key.name {
        return Err(CheckpointError::WrongOrigin {
            expected: log_key.name.clone(),
            found: checkpoint.origin,
        });
    }
    note.verify(std::slice::from_ref(log_key))?;
    Ok(SignedCheckpoint { checkpoint, note })
}
