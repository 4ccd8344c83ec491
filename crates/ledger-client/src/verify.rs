//! Checking what the node says without trusting it.
//!
//! Everything here is checked against the node's checkpoint key ([`NoteVerifier`]), obtained out of
//! band (e.g. from the charter): a checkpoint is accepted only when that key signed it, an entry
//! only when an inclusion proof leads from its leaf hash to a signed root, and a new checkpoint
//! only when a consistency proof shows that the last one seen is a prefix of it.

use crate::client::{AppendOutcome, LedgerClient};
use crate::error::ClientError;
use ledger_core::checkpoint::{Checkpoint, open_checkpoint};
use ledger_core::dsse::Envelope;
use ledger_core::entry::Entry;
use ledger_core::hash::{Hash, empty_root};
use ledger_core::merkle::{verify_consistency, verify_inclusion};
use ledger_core::note::NoteVerifier;

/// Opens a checkpoint note: parses it and checks the node key's signature and origin.
///
/// # Errors
/// [`ClientError::Checkpoint`] when the note is malformed, unsigned by the node key, or for
/// another log.
pub fn open_note(note: &str, node_verifier: &NoteVerifier) -> Result<Checkpoint, ClientError> {
    Ok(open_checkpoint(note, node_verifier)?.checkpoint)
}

/// Verifies that leaf `leaf_hash` is entry `index` of the tree a signed checkpoint commits to.
///
/// # Errors
/// When the checkpoint is not signed by the node key, does not cover `index`, or the proof does
/// not lead to its root.
pub fn verify_inclusion_in_note(
    index: u64,
    leaf_hash: &Hash,
    proof: &[Hash],
    note: &str,
    node_verifier: &NoteVerifier,
) -> Result<Checkpoint, ClientError> {
    let cp = open_note(note, node_verifier)?;
    if index >= cp.size {
        return Err(ClientError::NoCheckpoint {
            index,
            detail: Some(format!("the checkpoint has size {}", cp.size)),
        });
    }
    verify_inclusion(index, cp.size, leaf_hash, proof, &cp.root).map_err(|error| ClientError::Inclusion {
        index,
        size: cp.size,
        root: cp.root,
        error,
    })?;
    Ok(cp)
}

/// Verifies an append outcome received with `wait_for_checkpoint` against the sequenced entry.
///
/// Checks that `entry` (e.g. from [`LedgerClient::get_entry`]) is the one the outcome names (index
/// and timestamp) and that its canonical leaf hashes to the outcome's leaf hash, then that the
/// checkpoint carried by the outcome is signed by the node key and that the inclusion proof leads
/// from that leaf hash to its root. Returns the verified checkpoint.
///
/// The append answer alone cannot bind the leaf hash to the envelope: the leaf also commits to the
/// entry's `prev_root`, which the answer does not carry. Hence the entry argument;
/// [`LedgerClient::confirm_appended`] fetches it and also checks its envelope and `prev_root`.
///
/// # Errors
/// When the outcome has no checkpoint, or any check fails.
pub fn verify_appended(
    outcome: &AppendOutcome,
    entry: &Entry,
    node_verifier: &NoteVerifier,
) -> Result<Checkpoint, ClientError> {
    if entry.index != outcome.index || entry.timestamp_micros != outcome.timestamp_micros {
        return Err(ClientError::EntryMismatch {
            index: outcome.index,
            detail: format!(
                "append answered index {} at {} µs, the entry is index {} at {} µs",
                outcome.index, outcome.timestamp_micros, entry.index, entry.timestamp_micros
            ),
        });
    }
    let computed = entry.leaf_hash();
    if computed != outcome.leaf_hash {
        return Err(ClientError::LeafHashMismatch {
            index: outcome.index,
            claimed: outcome.leaf_hash,
            computed,
        });
    }
    verify_outcome_proof(outcome, node_verifier)
}

/// Verifies only the proof part of an append outcome: the checkpoint is signed by the node key and
/// the inclusion proof leads from the outcome's (node-stated) leaf hash to its root. This proves
/// the node committed to *that leaf hash* at that index, not what the leaf holds; see
/// [`verify_appended`].
///
/// # Errors
/// When the outcome has no checkpoint, or a check fails.
pub fn verify_outcome_proof(outcome: &AppendOutcome, node_verifier: &NoteVerifier) -> Result<Checkpoint, ClientError> {
    let note = outcome.checkpoint.as_deref().ok_or(ClientError::NoCheckpoint {
        index: outcome.index,
        detail: Some("the append answer carries no checkpoint (append with wait_for_checkpoint)".into()),
    })?;
    verify_inclusion_in_note(
        outcome.index,
        &outcome.leaf_hash,
        &outcome.inclusion_proof,
        note,
        node_verifier,
    )
}

/// Checks that the entry holds exactly `envelope`.
///
/// # Errors
/// [`ClientError::EntryMismatch`] when it holds another one.
pub fn check_entry_envelope(entry: &Entry, envelope: &Envelope) -> Result<(), ClientError> {
    if entry.envelope != *envelope {
        return Err(ClientError::EntryMismatch {
            index: entry.index,
            detail: "the log holds a different envelope at this index".into(),
        });
    }
    Ok(())
}

impl LedgerClient {
    /// Confirms an append end to end without trusting the node: fetches the entry and checks that it
    /// holds exactly `envelope`; checks the outcome with [`verify_appended`] (fetching the latest
    /// checkpoint and an inclusion proof first when the outcome carries none); and checks the
    /// entry's `prev_root` with a consistency proof from size `index` to the checkpoint. Returns the
    /// verified checkpoint.
    ///
    /// # Errors
    /// When the node refuses a request, no signed checkpoint covers the entry yet, or a check fails.
    pub async fn confirm_appended(
        &self,
        outcome: &AppendOutcome,
        envelope: &Envelope,
        node_verifier: &NoteVerifier,
    ) -> Result<Checkpoint, ClientError> {
        let entry = self.get_entry(outcome.index).await?;
        check_entry_envelope(&entry, envelope)?;
        let mut outcome = outcome.clone();
        if outcome.checkpoint.is_none() {
            let note = self.checkpoint(None).await?;
            let cp = open_note(&note, node_verifier)?;
            if cp.size <= outcome.index {
                return Err(ClientError::NoCheckpoint {
                    index: outcome.index,
                    detail: Some(format!("the latest checkpoint has size {}", cp.size)),
                });
            }
            outcome.inclusion_proof = self.inclusion_proof(outcome.index, Some(cp.size)).await?.hashes;
            outcome.checkpoint = Some(note);
        }
        let cp = verify_appended(&outcome, &entry, node_verifier)?;
        self.check_prev_root(&entry, &cp).await?;
        Ok(cp)
    }

    /// Checks an entry's `prev_root` (the root of the first `index` entries) against a verified
    /// checkpoint at least that large, with a consistency proof.
    ///
    /// # Errors
    /// When the node refuses the proof or it does not verify.
    pub async fn check_prev_root(&self, entry: &Entry, verified: &Checkpoint) -> Result<(), ClientError> {
        let index = entry.index;
        let mismatch = |detail: String| ClientError::EntryMismatch { index, detail };
        if index == 0 {
            if entry.prev_root != empty_root() {
                return Err(mismatch("entry 0's prev_root is not the empty-tree root".into()));
            }
            return Ok(());
        }
        if verified.size < index {
            return Err(mismatch(format!(
                "cannot check prev_root against a checkpoint of size {}",
                verified.size
            )));
        }
        let proof = self.consistency_proof(index, Some(verified.size)).await?;
        verify_consistency(index, verified.size, &entry.prev_root, &verified.root, &proof.hashes)
            .map_err(|e| mismatch(format!("prev_root is not the root of the first {index} entries: {e}")))
    }
}

/// Remembers the last verified checkpoint and accepts a new one only when it extends it.
///
/// The first checkpoint is trusted on first use (or start from a stored one with
/// [`CheckpointTracker::starting_at`]). Every later one must be signed by the node key and either
/// equal the last one, or be larger with a consistency proof from the last one; a smaller size is
/// a [`ClientError::Rewind`], a different root at the same size or a failed proof a
/// [`ClientError::Fork`]. Nothing changes when a checkpoint is refused.
#[derive(Debug, Clone)]
pub struct CheckpointTracker {
    verifier: NoteVerifier,
    last: Option<Checkpoint>,
}

impl CheckpointTracker {
    /// A tracker that has seen nothing yet.
    pub fn new(node_verifier: NoteVerifier) -> Self {
        Self {
            verifier: node_verifier,
            last: None,
        }
    }

    /// A tracker resuming from a checkpoint verified earlier.
    pub fn starting_at(node_verifier: NoteVerifier, checkpoint: Checkpoint) -> Self {
        Self {
            verifier: node_verifier,
            last: Some(checkpoint),
        }
    }

    /// The last checkpoint accepted.
    pub fn last(&self) -> Option<&Checkpoint> {
        self.last.as_ref()
    }

    /// The node key checkpoints are checked against.
    pub fn verifier(&self) -> &NoteVerifier {
        &self.verifier
    }

    /// Checks a new checkpoint note with a consistency proof from the last accepted checkpoint's
    /// size to the new size (ignored, and may be empty, when there is no last one or the sizes are
    /// equal). Returns the new checkpoint, now the last one.
    ///
    /// # Errors
    /// When the note is not signed by the node key, or the log was rewound or forked.
    pub fn advance(&mut self, note: &str, consistency_proof: &[Hash]) -> Result<Checkpoint, ClientError> {
        let new = open_note(note, &self.verifier)?;
        if let Some(old) = &self.last {
            check_extends(old, &new, consistency_proof)?;
        }
        self.last = Some(new.clone());
        Ok(new)
    }

    /// Checks a new checkpoint note, fetching the consistency proof from the node.
    ///
    /// # Errors
    /// When the node refuses, the note is not signed by the node key, or the log was rewound or
    /// forked.
    pub async fn update(&mut self, client: &LedgerClient, note: &str) -> Result<Checkpoint, ClientError> {
        let new = open_note(note, &self.verifier)?;
        let proof = match &self.last {
            Some(old) if old.size > 0 && old.size < new.size => {
                let p = client.consistency_proof(old.size, Some(new.size)).await?;
                if p.old_size != old.size || p.new_size != new.size {
                    return Err(ClientError::Malformed(format!(
                        "asked for a consistency proof {}..{}, got {}..{}",
                        old.size, new.size, p.old_size, p.new_size
                    )));
                }
                p.hashes
            }
            _ => Vec::new(),
        };
        self.advance(note, &proof)
    }

    /// Fetches the node's latest checkpoint and checks it with [`Self::update`].
    ///
    /// # Errors
    /// As [`Self::update`].
    pub async fn refresh(&mut self, client: &LedgerClient) -> Result<Checkpoint, ClientError> {
        let note = client.checkpoint(None).await?;
        self.update(client, &note).await
    }
}

/// Checks that checkpoint `new` extends `old`, given a consistency proof between their sizes.
///
/// # Errors
/// [`ClientError::Rewind`] when `new` is smaller, [`ClientError::Fork`] when the roots differ at
/// equal sizes or the proof fails.
pub fn check_extends(old: &Checkpoint, new: &Checkpoint, consistency_proof: &[Hash]) -> Result<(), ClientError> {
    if new.size < old.size {
        return Err(ClientError::Rewind {
            old_size: old.size,
            old_root: old.root,
            new_size: new.size,
            new_root: new.root,
        });
    }
    let fork = |detail: String| ClientError::Fork {
        old_size: old.size,
        old_root: old.root,
        new_size: new.size,
        new_root: new.root,
        detail,
    };
    if new.size == old.size {
        if new.root != old.root {
            return Err(fork("two different roots for the same size".into()));
        }
        return Ok(());
    }
    if old.size == 0 {
        if old.root != empty_root() {
            return Err(fork("the size-0 checkpoint's root is not the empty-tree root".into()));
        }
        return Ok(());
    }
    verify_consistency(old.size, new.size, &old.root, &new.root, consistency_proof)
        .map_err(|e| fork(format!("consistency proof does not verify: {e}")))
}
