//! Test support: valid sequenced groups (a charter at entry 0, then notes signed by the admin), so
//! that the store's export/import (which verifies the registry rules) accepts what `apply` wrote.
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

use ed25519_dalek::SigningKey;
use ledger_core::compact::CompactTree;
use ledger_core::dsse::Envelope;
use ledger_core::entry::Entry;
use ledger_core::hash::leaf_hash;
use ledger_core::keys::public_key_to_base64;
use ledger_core::registry::{IndexTag, payload_type};
use ledger_raft::{GroupEntry, SequencedGroup};

/// Produces consecutive valid groups, tracking the tree they extend.
pub struct GroupMaker {
    pub tree: CompactTree,
    node: SigningKey,
    admin: SigningKey,
}

impl Default for GroupMaker {
    fn default() -> Self {
        Self {
            tree: CompactTree::new(),
            node: SigningKey::from_bytes(&[1; 32]),
            admin: SigningKey::from_bytes(&[2; 32]),
        }
    }
}

impl GroupMaker {
    fn envelope(&self, index: u64) -> Envelope {
        if index == 0 {
            let charter = format!(
                r#"{{"version":1,"origin":"ledger.test/raft","node_key":"{}","admins":[{{"name":"admin","key":"{}"}}],"policy":{{"admin_quorum":1}}}}"#,
                public_key_to_base64(&self.node.verifying_key()),
                public_key_to_base64(&self.admin.verifying_key())
            );
            let mut e = Envelope::new(payload_type("charter"), charter.into_bytes());
            e.sign(&self.node);
            e.sign(&self.admin);
            e
        } else {
            let mut e = Envelope::new(
                payload_type("note"),
                format!(r#"{{"version":1,"text":"note {index}"}}"#).into_bytes(),
            );
            e.sign(&self.admin);
            e
        }
    }

    /// The next group of `n` entries (the first group starts with the charter). Does not advance
    /// the tree: call [`Self::accept`] when the group was applied.
    pub fn next(&self, n: usize) -> SequencedGroup {
        let first = self.tree.size();
        self.next_envelopes((first..first + n as u64).map(|i| self.envelope(i)).collect())
    }

    /// A key record enrolling `key` as a registrar for notes, signed by the admin.
    pub fn enroll(&self, key: &SigningKey) -> Envelope {
        let mut e = Envelope::new(
            payload_type("key.enroll"),
            format!(
                r#"{{"version":1,"name":"r","key":"{}","roles":["registrar"],"scope":{{"kinds":["note"]}}}}"#,
                public_key_to_base64(&key.verifying_key())
            )
            .into_bytes(),
        );
        e.sign(&self.admin);
        e
    }

    /// A note signed by `key`.
    pub fn note_by(&self, key: &SigningKey, text: &str) -> Envelope {
        let mut e = Envelope::new(
            payload_type("note"),
            format!(r#"{{"version":1,"text":"{text}"}}"#).into_bytes(),
        );
        e.sign(key);
        e
    }

    /// The next group holding these envelopes.
    pub fn next_envelopes(&self, envelopes: Vec<Envelope>) -> SequencedGroup {
        let mut ct = self.tree.clone();
        let prev_root = ct.root();
        let mut entries = Vec::with_capacity(envelopes.len());
        for envelope in envelopes {
            let index = ct.size();
            let digest = ledger_raft::request_digest(envelope.clone());
            let leaf = Entry {
                index,
                timestamp_micros: 1_000 + index,
                prev_root: ct.root(),
                envelope,
            }
            .encode();
            let lh = leaf_hash(&leaf);
            ct.append(lh);
            entries.push(GroupEntry {
                index,
                leaf,
                leaf_hash: lh,
                request: Some((format!("req-{index}"), digest)),
                terms: vec![(
                    IndexTag::Kind.byte(),
                    if index == 0 { "charter" } else { "note" }.into(),
                )],
            });
        }
        SequencedGroup {
            prev_root,
            entries,
            new_size: ct.size(),
        }
    }

    /// Advances the tree over an applied group.
    pub fn accept(&mut self, g: &SequencedGroup) {
        for e in &g.entries {
            self.tree.append(e.leaf_hash);
        }
    }
}
