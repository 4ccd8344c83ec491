//! Order-independent preparation of entries, run by the pipeline's worker threads: decoding,
//! leaf hash, envelope limits, kind and payload checks; and [`prepared_signers`], the signature
//! check that reuses the workers' results before the state step. Pure: no I/O.

use crate::fault::Code;
use ledger_core::dsse::Envelope;
use ledger_core::entry::Entry;
use ledger_core::hash::{Hash, leaf_hash};
use ledger_core::registry::{ParsedPayload, Registry, RegistryError, RegistryFault, check_payload, envelope_kind};

/// Fields a source sends beside the canonical bytes, which must agree with them.
#[derive(Debug, Clone)]
pub struct WireFields {
    /// Timestamp field.
    pub timestamp_micros: u64,
    /// prev_root field (raw bytes as received).
    pub prev_root: Vec<u8>,
    /// Envelope field, when present.
    pub envelope: Option<Envelope>,
}

/// An entry as a source delivers it.
#[derive(Debug, Clone)]
pub struct RawEntry {
    /// The index under which the source holds it (None for a plain stream, e.g. an export).
    pub position: Option<u64>,
    /// Canonical entry bytes (the leaf).
    pub bytes: Vec<u8>,
    /// Leaf hash the source claims (raw bytes as received), if it supplies one.
    pub leaf_hash: Option<Vec<u8>>,
    /// Other fields the source supplies.
    pub wire: Option<WireFields>,
}

/// What a source delivers, in log order.
#[derive(Debug, Clone)]
pub enum Item {
    /// An entry.
    Entry(RawEntry),
    /// A signed checkpoint note.
    Checkpoint(String),
}

/// Outcome of the cryptographic check of one signature, done ahead of the ordered rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigCheck {
    /// Not checked yet (key unknown to the worker): the replayer verifies it itself.
    Unchecked,
    /// Verifies (strict Ed25519 over the DSSE PAE).
    Valid,
    /// Does not verify.
    Invalid,
}

/// A decoded entry with its order-independent checks done.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The entry.
    pub entry: Entry,
    /// Limits, kind and payload checks: the kind, or the first rule broken. Not used for entry 0.
    pub rules: Result<String, RegistryError>,
    /// Per signature, in envelope order.
    pub sigs: Vec<SigCheck>,
    /// The payload parsed by the checks of `rules` (when they passed), for the state step.
    pub parsed: Option<ParsedPayload>,
}

/// An entry after [`prepare`].
#[derive(Debug, Clone)]
pub struct PreparedEntry {
    /// See [`RawEntry::position`].
    pub position: Option<u64>,
    /// Leaf hash of the bytes.
    pub leaf_hash: Hash,
    /// Leaf hash the source claims.
    pub supplied_leaf_hash: Option<Vec<u8>>,
    /// How the source's other fields disagree with the bytes, if they do.
    pub wire_mismatch: Option<String>,
    /// The decoded entry, or why the bytes do not decode.
    pub decoded: Result<Decoded, String>,
}

/// An item after preparation.
#[derive(Debug, Clone)]
pub enum Prepared {
    /// An entry.
    Entry(Box<PreparedEntry>),
    /// A checkpoint note.
    Checkpoint(String),
}

/// Envelope limits, kind and payload: the steps of [`Registry::check_entry`] before signatures.
fn pre_rules(env: &Envelope) -> Result<(String, ParsedPayload), RegistryError> {
    env.check_limits()?;
    let kind = envelope_kind(env)?.to_string();
    let checked = check_payload(&kind, &env.payload)?;
    Ok((kind, checked.parsed))
}

/// Decodes an entry and does every check that does not depend on the log before it.
pub fn prepare(raw: RawEntry) -> PreparedEntry {
    let lh = leaf_hash(&raw.bytes);
    let decoded = Entry::decode(&raw.bytes).map_err(|e| e.to_string()).map(|entry| {
        let (rules, parsed) = if entry.index == 0 {
            (Ok("charter".to_string()), None)
        } else {
            match pre_rules(&entry.envelope) {
                Ok((kind, parsed)) => (Ok(kind), Some(parsed)),
                Err(e) => (Err(e), None),
            }
        };
        let sigs = vec![SigCheck::Unchecked; entry.envelope.signatures.len()];
        Decoded {
            entry,
            rules,
            sigs,
            parsed,
        }
    });
    let wire_mismatch = match (&raw.wire, &decoded) {
        (Some(w), Ok(d)) => {
            let e = &d.entry;
            let mut bad = Vec::new();
            if w.timestamp_micros != e.timestamp_micros {
                bad.push(format!(
                    "timestamp {} (bytes say {})",
                    w.timestamp_micros, e.timestamp_micros
                ));
            }
            if w.prev_root.as_slice() != e.prev_root.0.as_slice() {
                bad.push(format!(
                    "prev_root {} (bytes say {})",
                    hex::encode(&w.prev_root),
                    e.prev_root
                ));
            }
            if w.envelope.as_ref().is_some_and(|env| *env != e.envelope) {
                bad.push("envelope".to_string());
            }
            (!bad.is_empty()).then(|| format!("the source's fields disagree with the leaf bytes: {}", bad.join(", ")))
        }
        _ => None,
    };
    PreparedEntry {
        position: raw.position,
        leaf_hash: lh,
        supplied_leaf_hash: raw.leaf_hash,
        wire_mismatch,
        decoded,
    }
}

/// Prepares any item.
pub fn prepare_item(item: Item) -> Prepared {
    match item {
        Item::Entry(raw) => Prepared::Entry(Box::new(prepare(raw))),
        Item::Checkpoint(n) => Prepared::Checkpoint(n),
    }
}

/// The checks of [`ledger_core::state::LedgerState::verify_entry`] for an entry whose
/// order-independent checks are done: the same rules in the same order (limits, kind, payload;
/// then the registry's one signer loop, [`Registry::verify_signers_with`]: every key known and
/// none twice, then each signature verifies), using the worker's cryptographic results where it
/// has them and verifying the rest here. Returns the kind and the verified signers, for the state
/// step that follows (authorization and effects).
///
/// # Errors
/// The first rule the entry breaks, as `verify_entry` would report it.
pub fn prepared_signers(reg: &Registry, d: &Decoded) -> Result<(String, Vec<String>), RegistryError> {
    let kind = d.rules.clone()?;
    let env = &d.entry.envelope;
    let signers = reg.verify_signers_with(env, |i, key| match d.sigs.get(i) {
        Some(SigCheck::Valid) => true,
        Some(SigCheck::Invalid) => false,
        _ => env.verify_signature(i, key).is_ok(),
    })?;
    Ok((kind, signers))
}

/// The fault code of a registry rule ([`RegistryError::fault`], shared with bundles and the node).
pub fn registry_code(e: &RegistryError) -> Code {
    match e.fault() {
        RegistryFault::BadSignature => Code::BadSignature,
        RegistryFault::UnauthorizedSigner => Code::UnauthorizedSigner,
        RegistryFault::InvalidRecord => Code::InvalidRecord,
        RegistryFault::WrongLog => Code::WrongLog,
        RegistryFault::LogBindingMissing => Code::LogBindingMissing,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::sigs::{KeyCache, SigMode, keys_in_window, verify_window};
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;
    use ed25519_dalek::SigningKey;
    use ledger_core::registry::{Charter, KeyEnroll, NamedKey, Policy, Role, Scope, payload_type};
    use ledger_core::state::{LedgerState, StepError};

    fn b64(k: &SigningKey) -> String {
        B64.encode(k.verifying_key().as_bytes())
    }

    fn raw(index: u64, env: Envelope) -> RawEntry {
        let e = Entry {
            index,
            timestamp_micros: index,
            prev_root: Hash::default(),
            envelope: env,
        };
        RawEntry {
            position: None,
            bytes: e.encode(),
            leaf_hash: None,
            wire: None,
        }
    }

    fn signed(kind: &str, payload: &[u8], keys: &[&SigningKey]) -> Envelope {
        let mut env = Envelope::new(payload_type(kind), payload.to_vec());
        for k in keys {
            env.sign(k);
        }
        env
    }

    /// What the replayer does with a prepared entry (`prepared_signers`, then the state step of
    /// `ledger_core::state`), as far as the registry goes.
    fn step(st: &mut LedgerState, d: &Decoded) -> Result<(), RegistryError> {
        let (_, signers) = prepared_signers(&st.registry, d)?;
        let lh = leaf_hash(&d.entry.encode());
        match st.fold(&d.entry, &lh, &signers) {
            Ok(_) => Ok(()),
            Err(StepError::Registry(e)) => Err(e),
            Err(e) => panic!("not a registry error: {e}"),
        }
    }

    /// The replayer's step decides exactly as `Registry::check_entry`, with the signatures checked
    /// ahead (batch or strict) or not at all.
    #[test]
    fn prepared_step_matches_check_entry() {
        let (node, admin, reg_key, stranger) = (
            SigningKey::from_bytes(&[1; 32]),
            SigningKey::from_bytes(&[2; 32]),
            SigningKey::from_bytes(&[3; 32]),
            SigningKey::from_bytes(&[4; 32]),
        );
        let charter = Charter {
            version: 1,
            origin: "test/log".into(),
            node_key: b64(&node),
            admins: vec![NamedKey {
                name: "a".into(),
                key: b64(&admin),
            }],
            policy: Policy::default(),
        };
        let genesis = signed("charter", &serde_json::to_vec(&charter).unwrap(), &[&node, &admin]);
        let enroll = serde_json::to_vec(&KeyEnroll {
            version: 1,
            name: "registrar".into(),
            key: b64(&reg_key),
            roles: vec![Role::Registrar],
            scope: Scope::default(),
            mldsa44_key: None,
        })
        .unwrap();
        let enroll_again = serde_json::to_vec(&KeyEnroll {
            version: 1,
            name: "registrar again".into(),
            key: b64(&reg_key),
            roles: vec![Role::Registrar],
            scope: Scope::default(),
            mldsa44_key: None,
        })
        .unwrap();
        let note = br#"{"version":1,"x":1}"#;
        let mut flipped = signed("note", note, &[&admin]);
        flipped.signatures[0].sig[5] ^= 1;
        let mut short = signed("note", note, &[&admin]);
        short.signatures[0].sig.truncate(10);
        let cases = vec![
            signed("note", note, &[&admin]),
            flipped,
            short,
            signed("note", note, &[&stranger]),
            signed("note", note, &[&admin, &admin]),
            signed("note", note, &[&admin, &stranger]),
            signed("note", note, &[&reg_key]), // not enrolled yet
            signed("key.enroll", &enroll, &[&node]),
            signed("key.enroll", &enroll, &[&admin]),
            signed("note", br#"{"version":1,"x":2}"#, &[&reg_key]),
            signed("key.enroll", &enroll_again, &[&admin]), // already enrolled
            signed("note", br#"{"version":1,"x":3}"#, &[&node]), // the node role may not sign notes
            signed("no-such-kind", note, &[&admin]),
            signed("note", b"not json", &[&admin]),
            signed("note", br#"{"version":2}"#, &[&admin]),
            signed("note", note, &[]),
            signed("charter", &serde_json::to_vec(&charter).unwrap(), &[&node, &admin]),
            // A bad signature before an unknown key or a second signature by the same key: the
            // key ids are checked first (one signer loop), as the node does.
            {
                let mut e = signed("note", br#"{"version":1,"x":4}"#, &[&admin, &stranger]);
                e.signatures[0].sig[5] ^= 1;
                e
            },
            {
                let mut e = signed("note", br#"{"version":1,"x":5}"#, &[&admin, &admin]);
                e.signatures[0].sig[5] ^= 1;
                e
            },
        ];
        let g = prepare(raw(0, genesis));
        let genesis_entry = &g.decoded.as_ref().unwrap().entry;
        let mut reg_ref = Registry::genesis(genesis_entry).unwrap();
        let mut reg_lazy = LedgerState::genesis(genesis_entry).unwrap();
        let mut reg_batch = reg_lazy.clone();
        let mut reg_strict = reg_lazy.clone();
        let mut items = vec![Prepared::Entry(Box::new(g))];
        items.extend(
            cases
                .into_iter()
                .enumerate()
                .map(|(i, env)| prepare_item(Item::Entry(raw(i as u64 + 1, env)))),
        );
        let mut cache = KeyCache::default();
        for (id, k) in keys_in_window(&items) {
            cache.insert(id, k);
        }
        let lazy = items.clone();
        let mut batch = items.clone();
        let mut strict = items;
        verify_window(&mut batch, &cache, SigMode::Batch);
        verify_window(&mut strict, &cache, SigMode::Strict);
        let mut outcomes = Vec::new();
        for ((l, b), s) in lazy.iter().zip(&batch).zip(&strict).skip(1) {
            let get = |p: &Prepared| match p {
                Prepared::Entry(e) => e.decoded.clone().unwrap(),
                Prepared::Checkpoint(_) => unreachable!(),
            };
            let (l, b, s) = (get(l), get(b), get(s));
            let want = reg_ref.check_entry(&l.entry);
            assert_eq!(step(&mut reg_lazy, &l), want, "{:?}", l.entry.envelope);
            assert_eq!(step(&mut reg_batch, &b), want, "{:?}", b.entry.envelope);
            assert_eq!(step(&mut reg_strict, &s), want, "{:?}", s.entry.envelope);
            outcomes.push(want.map_err(|e| registry_code(&e)));
        }
        use Code::*;
        assert_eq!(
            outcomes,
            vec![
                Ok(()),
                Err(BadSignature),
                Err(BadSignature),
                Err(UnauthorizedSigner),
                Err(InvalidRecord),
                Err(UnauthorizedSigner),
                Err(UnauthorizedSigner),
                Err(UnauthorizedSigner),
                Ok(()),
                Ok(()),
                Err(InvalidRecord),
                Err(UnauthorizedSigner),
                Err(InvalidRecord),
                Err(InvalidRecord),
                Err(InvalidRecord),
                Err(InvalidRecord),
                Err(InvalidRecord),
                Err(UnauthorizedSigner),
                Err(InvalidRecord),
            ]
        );
    }
}
