//! Shared test helpers: an in-memory log with entries, leaves and signed checkpoints.

#![allow(dead_code, clippy::unwrap_used)]

use ed25519_dalek::SigningKey;
use ledger_client::{AppendOutcome, sign_record};
use ledger_core::checkpoint::Checkpoint;
use ledger_core::entry::Entry;
use ledger_core::hash::Hash;
use ledger_core::merkle::{inclusion_proof, root_of};
use ledger_core::note::{NoteSigner, NoteVerifier};

/// Log origin, also the node key name.
pub const ORIGIN: &str = "example.org/ledger";

/// A deterministic key.
pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// An in-memory log.
pub struct Log {
    pub entries: Vec<Entry>,
    pub leaves: Vec<Hash>,
    pub signer: NoteSigner,
}

impl Log {
    pub fn push(&mut self, envelope: ledger_core::dsse::Envelope) -> &Entry {
        let i = self.entries.len() as u64;
        let entry = Entry {
            index: i,
            timestamp_micros: 1_700_000_000_000_000 + i,
            prev_root: root_of(&self.leaves),
            envelope,
        };
        self.leaves.push(entry.leaf_hash());
        self.entries.push(entry);
        &self.entries[i as usize]
    }

    pub fn new(n: u64) -> Self {
        let mut log = Log {
            entries: Vec::new(),
            leaves: Vec::new(),
            signer: NoteSigner::new(ORIGIN, key(42)).unwrap(),
        };
        for i in 0..n {
            log.push(sign_record("note", &serde_json::json!({ "i": i }), &[&key(1)]));
        }
        log
    }

    pub fn verifier(&self) -> NoteVerifier {
        self.signer.verifier().clone()
    }

    pub fn checkpoint(&self, size: u64) -> Checkpoint {
        Checkpoint {
            origin: ORIGIN.into(),
            size,
            root: root_of(&self.leaves[..size as usize]),
            extensions: vec![],
        }
    }

    pub fn note(&self, size: u64) -> String {
        self.checkpoint(size).sign(&self.signer).unwrap().to_text()
    }

    pub fn outcome(&self, index: u64, size: u64) -> AppendOutcome {
        let e = &self.entries[index as usize];
        AppendOutcome {
            index,
            leaf_hash: e.leaf_hash(),
            timestamp_micros: e.timestamp_micros,
            duplicate: false,
            checkpoint: Some(self.note(size)),
            inclusion_proof: inclusion_proof(&self.leaves, index, size).unwrap(),
            request_id: "r".into(),
        }
    }
}
