//! Issue 12 item 3: every key id is looked up before any signature is verified, single and in
//! batches, so a signature by a key the registry does not know costs no cryptography and cannot
//! make a batch fail for the honest items in it.

use ed25519_dalek::SigningKey;
use ledger_core::dsse::{Envelope, Signature};
use ledger_core::entry::Entry;
use ledger_core::hash::Hash;
use ledger_core::keys::{key_id, public_key_to_base64};
use ledger_core::registry::{Registry, RegistryError, payload_type};

fn k(b: u8) -> SigningKey {
    SigningKey::from_bytes(&[b; 32])
}

fn registry(node: &SigningKey, admin: &SigningKey) -> Registry {
    let v = serde_json::json!({
        "version": 1, "origin": "ledger.test/sig", "node_key": public_key_to_base64(&node.verifying_key()),
        "admins": [{"name": "admin", "key": public_key_to_base64(&admin.verifying_key())}],
        "policy": {"admin_quorum": 1}
    });
    let mut env = Envelope::new(payload_type("charter"), serde_json::to_vec(&v).expect("json"));
    env.sign(node);
    env.sign(admin);
    Registry::genesis(&Entry {
        index: 0,
        timestamp_micros: 0,
        prev_root: Hash::default(),
        envelope: env,
    })
    .expect("charter")
}

fn note(i: u64) -> Envelope {
    Envelope::new(
        payload_type("note"),
        serde_json::to_vec(&serde_json::json!({"version": 1, "text": format!("n{i}")})).expect("json"),
    )
}

/// A signature that cannot verify, under `key`'s id.
fn garbage(env: &mut Envelope, key: &SigningKey) {
    env.signatures.push(Signature {
        keyid: key_id(&key.verifying_key()),
        sig: vec![0x5a; 64],
    });
}

#[test]
fn unknown_keys_are_refused_before_any_signature_is_verified() {
    let (node, admin, stranger) = (k(1), k(2), k(3));
    let reg = registry(&node, &admin);
    // A bad signature by a known key first, then an unknown key: the lookup decides, no
    // verification runs (it would have named the bad signature).
    let mut env = note(1);
    garbage(&mut env, &admin);
    env.sign(&stranger);
    assert_eq!(
        reg.verify_signatures(&env),
        Err(RegistryError::UnknownKey {
            keyid: key_id(&stranger.verifying_key())
        })
    );
    // A repeated signer is refused the same way.
    let mut env = note(2);
    garbage(&mut env, &admin);
    garbage(&mut env, &admin);
    assert!(matches!(
        reg.verify_signatures(&env),
        Err(RegistryError::DuplicateSigner { .. })
    ));
    // Known keys only: the bad signature is found by verification.
    let mut env = note(3);
    env.sign(&admin);
    assert_eq!(reg.verify_signatures(&env), Ok(vec![key_id(&admin.verifying_key())]));
    garbage(&mut env, &node);
    assert!(matches!(
        reg.verify_signatures(&env),
        Err(RegistryError::BadSignature { .. })
    ));
}

#[test]
fn a_batch_keeps_unknown_keys_out_and_names_each_failure() {
    let (node, admin, stranger) = (k(1), k(2), k(3));
    let reg = registry(&node, &admin);
    let mut good: Vec<Envelope> = (0..5).map(note).collect();
    good.iter_mut().for_each(|e| e.sign(&admin));
    // An item with a garbage signature by a known key and one by an unknown key: refused for the
    // unknown key, and its garbage signature never enters the batch.
    let mut mixed = note(10);
    garbage(&mut mixed, &admin);
    mixed.sign(&stranger);
    let mut envs: Vec<&Envelope> = good.iter().collect();
    envs.insert(2, &mixed);
    let out = reg.verify_signatures_batch(&envs);
    assert_eq!(out.len(), 6);
    assert!(matches!(out[2], Err(RegistryError::UnknownKey { .. })), "{:?}", out[2]);
    for (i, r) in out.iter().enumerate().filter(|(i, _)| *i != 2) {
        assert_eq!(r, &Ok(vec![key_id(&admin.verifying_key())]), "item {i}");
    }
    // Well-formed signatures over another payload go into the batch: it fails, and each item in it
    // is then verified on its own, so only those two are refused.
    let mut bad = note(11);
    bad.sign(&admin);
    bad.payload = note(12).payload;
    let mut weak = note(13);
    garbage(&mut weak, &admin);
    envs.push(&bad);
    envs.push(&weak);
    let out = reg.verify_signatures_batch(&envs);
    assert!(
        matches!(out[6], Err(RegistryError::BadSignature { .. })),
        "{:?}",
        out[6]
    );
    assert!(
        matches!(out[7], Err(RegistryError::BadSignature { .. })),
        "{:?}",
        out[7]
    );
    assert!(matches!(out[2], Err(RegistryError::UnknownKey { .. })), "{:?}", out[2]);
    assert_eq!(out.iter().filter(|r| r.is_ok()).count(), 5);
}
