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
    pub node: SigningKey,
    pub admin: SigningKey,
    /// The charter's witness quorum.
    pub witness_quorum: u32,
    /// Timestamp offset (µs) of the entries made.
    pub time: u64,
}

impl Default for GroupMaker {
    fn default() -> Self {
        Self {
            tree: CompactTree::new(),
            node: SigningKey::from_bytes(&[1; 32]),
            admin: SigningKey::from_bytes(&[2; 32]),
            witness_quorum: 0,
            time: 1_000,
        }
    }
}

/// Origin of the test logs.
pub const ORIGIN: &str = "ledger.test/raft";

impl GroupMaker {
    fn envelope(&self, index: u64) -> Envelope {
        if index == 0 {
            let charter = format!(
                r#"{{"version":1,"origin":"ledger.test/raft","node_key":"{}","admins":[{{"name":"admin","key":"{}"}}],"policy":{{"admin_quorum":1{}}}}}"#,
                public_key_to_base64(&self.node.verifying_key()),
                public_key_to_base64(&self.admin.verifying_key()),
                if self.witness_quorum > 0 {
                    format!(r#","witness_quorum":{}"#, self.witness_quorum)
                } else {
                    String::new()
                }
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

    /// A key record enrolling `key` as a witness named `name`, signed by the admin.
    pub fn enroll_witness(&self, name: &str, key: &SigningKey) -> Envelope {
        let mut e = Envelope::new(
            payload_type("key.enroll"),
            format!(
                r#"{{"version":1,"name":"{name}","key":"{}","roles":["witness"],"scope":{{}}}}"#,
                public_key_to_base64(&key.verifying_key())
            )
            .into_bytes(),
        );
        e.sign(&self.admin);
        e
    }

    /// A `node.rotate` to `new`, signed by the current node key and the admin.
    pub fn node_rotate(&self, new: &SigningKey) -> Envelope {
        let mut e = Envelope::new(
            payload_type("node.rotate"),
            format!(
                r#"{{"version":1,"new_key":"{}","reason":"new HSM"}}"#,
                public_key_to_base64(&new.verifying_key())
            )
            .into_bytes(),
        );
        e.sign(&self.node);
        e.sign(&self.admin);
        e
    }

    /// A `node.compromise` of the current node key as of index `as_of`, handing the node role to
    /// `new`, signed by the admin alone.
    pub fn node_compromise(&self, as_of: u64, new: &SigningKey) -> Envelope {
        let mut e = Envelope::new(
            payload_type("node.compromise"),
            format!(
                r#"{{"version":1,"keyid":"{}","as_of":{as_of},"new_key":"{}","reason":"HSM stolen"}}"#,
                ledger_core::keys::key_id(&self.node.verifying_key()),
                public_key_to_base64(&new.verifying_key())
            )
            .into_bytes(),
        );
        e.sign(&self.admin);
        e
    }

    /// A checkpoint note of `size` with `root`, signed by `key` under the test origin.
    pub fn checkpoint_with(key: &SigningKey, size: u64, root: ledger_core::hash::Hash) -> String {
        let signer = ledger_core::note::NoteSigner::new(ORIGIN, key.clone()).unwrap();
        ledger_core::checkpoint::Checkpoint {
            origin: ORIGIN.into(),
            size,
            root,
            extensions: vec![],
        }
        .sign(&signer)
        .unwrap()
        .to_text()
    }

    /// The checkpoint of the current tree, signed by the charter's node key.
    pub fn checkpoint(&self) -> String {
        Self::checkpoint_with(&self.node, self.tree.size(), self.tree.root())
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
                timestamp_micros: self.time + index,
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
