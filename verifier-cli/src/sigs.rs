//! The cryptographic half of signature checking, for a window of entries at a time.
//!
//! A key id is the SHA-256 of the key, so whether a signature verifies under the key a key id
//! names is a fact independent of the registry: the cache may hold any key seen anywhere in the log
//! (in the charter, `key.enroll` and `key.rotate` payloads, see [`keys_in_window`]), its id always
//! computed from the key itself. Whether the key was *known and allowed* at the entry's index is
//! decided later, in order, by the replayer. Signatures by keys the cache does not know yet stay
//! [`SigCheck::Unchecked`] and the replayer verifies them itself.
//!
//! [`SigMode::Batch`] verifies with `ed25519_dalek::verify_batch` in chunks and falls back to
//! one-by-one `verify_strict` for a chunk that fails, to name the bad signatures. Batch
//! verification does not reject what `verify_strict` rejects by construction, so before batching
//! each signature is screened for exactly those cases: a weak (small-order) public key, a
//! non-canonical `R` encoding, a small-order `R`, a wrong length. The one remaining difference
//! (`R` with a torsion component that happens to cancel in the random linear combination) can only
//! be produced by the holder of the private key; `--strict-signatures` removes it at about half the
//! speed (`docs/verifier.md`).

use crate::prepare::{Prepared, SigCheck};
use ed25519_dalek::{Signature, VerifyingKey};
use ledger_core::keys::{key_id, public_key_from_base64};
use ledger_core::registry::{Charter, KeyEnroll, KeyRotate, kind_of};
use std::collections::HashMap;

/// Signatures per `verify_batch` call.
const BATCH: usize = 256;

/// How signatures are verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigMode {
    /// Batches, screened for the strict rules (the default).
    Batch,
    /// `verify_strict` one by one.
    Strict,
}

/// Keys by key id, as the registry has known them so far.
#[derive(Debug, Clone, Default)]
pub struct KeyCache {
    keys: HashMap<String, (VerifyingKey, bool)>,
}

impl KeyCache {
    /// Adds a key (a no-op when the id is known).
    pub fn insert(&mut self, id: String, key: VerifyingKey) {
        self.keys.entry(id).or_insert_with(|| (key, key.is_weak()));
    }

    /// True when the id is known.
    pub fn contains(&self, id: &str) -> bool {
        self.keys.contains_key(id)
    }
}

/// Every public key named by a charter, `key.enroll` or `key.rotate` payload in the window, with
/// its id computed from the key. Whether those records are valid does not matter here.
pub fn keys_in_window(items: &[Prepared]) -> Vec<(String, VerifyingKey)> {
    let mut out = Vec::new();
    for it in items {
        let Prepared::Entry(p) = it else { continue };
        let Ok(d) = &p.decoded else { continue };
        let env = &d.entry.envelope;
        let b64: Vec<String> = match kind_of(&env.payload_type) {
            Some("charter") => serde_json::from_slice::<Charter>(&env.payload)
                .map(|c| {
                    let mut v = vec![c.node_key];
                    v.extend(c.admins.into_iter().map(|a| a.key));
                    v
                })
                .unwrap_or_default(),
            Some("key.enroll") => serde_json::from_slice::<KeyEnroll>(&env.payload)
                .map(|r| vec![r.key])
                .unwrap_or_default(),
            Some("key.rotate") => serde_json::from_slice::<KeyRotate>(&env.payload)
                .map(|r| vec![r.new_key])
                .unwrap_or_default(),
            _ => continue,
        };
        out.extend(
            b64.iter()
                .filter_map(|b| public_key_from_base64(b).ok())
                .map(|k| (key_id(&k), k)),
        );
    }
    out
}

#[cfg(test)]
use ledger_core::keys::SMALL_ORDER_Y;
pub use ledger_core::keys::r_acceptable;

struct Job {
    item: usize,
    sig: usize,
    msg: usize,
    key: VerifyingKey,
    signature: Signature,
}

/// Fills [`crate::prepare::Decoded::sigs`] for every signature of the window whose key is in
/// `keys`. Entries whose earlier rules already fail, and the charter, are left alone.
pub fn verify_window(items: &mut [Prepared], keys: &KeyCache, mode: SigMode) {
    let mut msgs: Vec<Vec<u8>> = Vec::new();
    let mut jobs: Vec<Job> = Vec::new();
    let mut early: Vec<(usize, usize)> = Vec::new();
    for (i, it) in items.iter().enumerate() {
        let Prepared::Entry(p) = it else { continue };
        let Ok(d) = &p.decoded else { continue };
        if d.entry.index == 0 || d.rules.is_err() {
            continue;
        }
        let mut msg = None;
        for (j, s) in d.entry.envelope.signatures.iter().enumerate() {
            let Some(&(key, weak)) = keys.keys.get(&s.keyid) else {
                continue;
            };
            let Ok(signature) = Signature::from_slice(&s.sig) else {
                early.push((i, j));
                continue;
            };
            if weak || !r_acceptable(signature.r_bytes()) {
                early.push((i, j));
                continue;
            }
            let m = *msg.get_or_insert_with(|| {
                msgs.push(d.entry.envelope.pae());
                msgs.len() - 1
            });
            jobs.push(Job {
                item: i,
                sig: j,
                msg: m,
                key,
                signature,
            });
        }
    }
    let mut results: Vec<(usize, usize, SigCheck)> =
        early.into_iter().map(|(i, j)| (i, j, SigCheck::Invalid)).collect();
    let strict = |j: &Job| {
        if j.key.verify_strict(&msgs[j.msg], &j.signature).is_ok() {
            SigCheck::Valid
        } else {
            SigCheck::Invalid
        }
    };
    match mode {
        SigMode::Strict => results.extend(jobs.iter().map(|j| (j.item, j.sig, strict(j)))),
        SigMode::Batch => {
            for chunk in jobs.chunks(BATCH) {
                let m: Vec<&[u8]> = chunk.iter().map(|j| msgs[j.msg].as_slice()).collect();
                let s: Vec<Signature> = chunk.iter().map(|j| j.signature).collect();
                let k: Vec<VerifyingKey> = chunk.iter().map(|j| j.key).collect();
                if ed25519_dalek::verify_batch(&m, &s, &k).is_ok() {
                    results.extend(chunk.iter().map(|j| (j.item, j.sig, SigCheck::Valid)));
                } else {
                    results.extend(chunk.iter().map(|j| (j.item, j.sig, strict(j))));
                }
            }
        }
    }
    for (i, j, r) in results {
        if let Some(Prepared::Entry(p)) = items.get_mut(i)
            && let Ok(d) = &mut p.decoded
            && let Some(slot) = d.sigs.get_mut(j)
        {
            *slot = r;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn small_order_encodings_are_weak_points() {
        for y in SMALL_ORDER_Y {
            for sign in [0u8, 0x80] {
                let mut b = y;
                b[31] |= sign;
                // Either it does not decode at all, or it is a small-order point.
                if let Ok(k) = VerifyingKey::from_bytes(&b) {
                    assert!(k.is_weak(), "{}", hex::encode(b));
                }
                assert!(!r_acceptable(&b));
            }
        }
        // The order-8 points do decode (so the constants are right).
        assert!(VerifyingKey::from_bytes(&SMALL_ORDER_Y[3]).is_ok_and(|k| k.is_weak()));
        assert!(VerifyingKey::from_bytes(&SMALL_ORDER_Y[4]).is_ok_and(|k| k.is_weak()));
    }

    #[test]
    fn non_canonical_y_is_refused_and_ordinary_points_pass() {
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        assert!(!r_acceptable(&p));
        p[0] = 0xec;
        assert!(!r_acceptable(&p)); // p − 1: order 2
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
        assert!(r_acceptable(key.as_bytes()));
    }

    /// A small-order public key "signs" anything under batch verification; strict verification
    /// refuses it, and so must the screened batch path.
    #[test]
    fn weak_key_forgery_is_refused() {
        use crate::prepare::{Item, RawEntry, prepare_item};
        use ledger_core::dsse::Envelope;
        use ledger_core::entry::Entry;
        let mut id = [0u8; 32];
        id[0] = 1; // the identity point
        let weak = VerifyingKey::from_bytes(&id).unwrap();
        assert!(weak.is_weak());
        let sk = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        // R = s·B with s the signing scalar: R + h·A = s·B holds for A = identity and any message.
        let forged = Signature::from_components(sk.verifying_key().to_bytes(), sk.to_scalar().to_bytes());
        let mut env = Envelope::new("application/vnd.ledger.note.v1+json", br#"{"version":1}"#.to_vec());
        let msg = env.pae();
        assert!(ed25519_dalek::verify_batch(&[msg.as_slice()], &[forged], &[weak]).is_ok());
        assert!(weak.verify_strict(&msg, &forged).is_err());
        env.signatures.push(ledger_core::dsse::Signature {
            keyid: key_id(&weak),
            sig: forged.to_bytes().to_vec(),
        });
        let bytes = Entry {
            index: 1,
            timestamp_micros: 1,
            prev_root: Default::default(),
            envelope: env,
        }
        .encode();
        let mut items = vec![prepare_item(Item::Entry(RawEntry {
            position: None,
            bytes,
            leaf_hash: None,
            wire: None,
        }))];
        let mut cache = KeyCache::default();
        cache.insert(key_id(&weak), weak);
        verify_window(&mut items, &cache, SigMode::Batch);
        let Prepared::Entry(p) = &items[0] else { panic!() };
        assert_eq!(p.decoded.as_ref().unwrap().sigs, vec![SigCheck::Invalid]);
    }
}
