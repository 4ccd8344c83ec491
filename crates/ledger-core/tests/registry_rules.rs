//! Key-registry rules as the node and the verifier apply them.

use ed25519_dalek::SigningKey;
use ledger_core::dsse::Envelope;
use ledger_core::entry::Entry;
use ledger_core::hash::Hash;
use ledger_core::keys::{key_id, public_key_to_base64};
use ledger_core::registry::{Registry, RegistryError, payload_type};

fn k(b: u8) -> SigningKey {
    SigningKey::from_bytes(&[b; 32])
}

fn rec(kind: &str, v: serde_json::Value, keys: &[&SigningKey]) -> Envelope {
    let mut e = Envelope::new(payload_type(kind), serde_json::to_vec(&v).expect("json"));
    keys.iter().for_each(|key| e.sign(key));
    e
}

fn entry(index: u64, envelope: Envelope) -> Entry {
    Entry {
        index,
        timestamp_micros: index,
        prev_root: Hash::default(),
        envelope,
    }
}

fn charter(node: &SigningKey, admins: &[&SigningKey], quorum: u32, signers: &[&SigningKey]) -> Entry {
    let v = serde_json::json!({
        "version": 1, "origin": "ledger.test/reg", "node_key": public_key_to_base64(&node.verifying_key()),
        "admins": admins.iter().enumerate().map(|(i, a)| serde_json::json!({"name": format!("admin {i}"), "key": public_key_to_base64(&a.verifying_key())})).collect::<Vec<_>>(),
        "policy": {"admin_quorum": quorum}
    });
    entry(0, rec("charter", v, signers))
}

fn enroll(key: &SigningKey, roles: &[&str], kinds: &[&str], admins: &[&SigningKey]) -> Envelope {
    rec(
        "key.enroll",
        serde_json::json!({"version": 1, "name": "x", "key": public_key_to_base64(&key.verifying_key()), "roles": roles, "scope": {"kinds": kinds}}),
        admins,
    )
}

#[test]
fn charter_must_be_signed_by_every_listed_key() {
    let (node, a, b) = (k(1), k(2), k(3));
    assert!(Registry::genesis(&charter(&node, &[&a, &b], 1, &[&node, &a, &b])).is_ok());
    assert!(matches!(
        Registry::genesis(&charter(&node, &[&a, &b], 1, &[&node, &a])),
        Err(RegistryError::Charter(_))
    ));
    assert!(
        matches!(
            Registry::genesis(&charter(&node, &[&a], 2, &[&node, &a])),
            Err(RegistryError::Charter(m)) if m.starts_with("admin_quorum 2 must be between 1 and")
        ),
        "quorum above admin count"
    );
    let mut c = charter(&node, &[&a], 1, &[&node, &a]);
    c.index = 1;
    assert_eq!(
        Registry::genesis(&c).map(drop),
        Err(RegistryError::Charter("the charter must be entry 0, not 1".into())),
        "charter not at index 0"
    );
}

#[test]
fn roles_scopes_quorum_revocation_rotation() {
    let (node, a, b) = (k(1), k(2), k(3));
    let mut reg = Registry::genesis(&charter(&node, &[&a, &b], 2, &[&node, &a, &b])).expect("charter");
    let r = k(10);
    let e = reg.check_entry(&entry(1, enroll(&r, &["registrar"], &["note"], &[&a])));
    assert!(
        matches!(e, Err(RegistryError::MissingQuorum { need: 2, have: 1, .. })),
        "{e:?}"
    );
    reg.check_entry(&entry(1, enroll(&r, &["registrar"], &["note"], &[&a, &b])))
        .expect("quorum");
    reg.check_entry(&entry(2, rec("note", serde_json::json!({"version": 1}), &[&r])))
        .expect("in scope");
    let e = reg.check_entry(&entry(
        3,
        rec(
            "evaluation.micro",
            serde_json::json!({"version": 1, "ticket_hash": "00".repeat(32),
                "subject": "c1", "department": "d1", "rating": 5, "service_time_micros": 1}),
            &[&r],
        ),
    ));
    assert!(
        matches!(e, Err(RegistryError::MissingRole { .. })),
        "out of scope: {e:?}"
    );
    let e = reg.check_entry(&entry(3, rec("note", serde_json::json!({"version": 1}), &[&k(99)])));
    assert!(matches!(e, Err(RegistryError::UnknownKey { .. })));
    // Rotation: the new key inherits the roles; the old key stops.
    let r2 = k(11);
    let rot = serde_json::json!({"version": 1, "keyid": key_id(&r.verifying_key()), "new_key": public_key_to_base64(&r2.verifying_key())});
    reg.check_entry(&entry(4, rec("key.rotate", rot, &[&a, &b])))
        .expect("rotate");
    let e = reg.check_entry(&entry(5, rec("note", serde_json::json!({"version": 1}), &[&r])));
    assert!(
        matches!(
            e,
            Err(RegistryError::Revoked {
                how: "rotated",
                at: 4,
                ..
            })
        ),
        "{e:?}"
    );
    reg.check_entry(&entry(5, rec("note", serde_json::json!({"version": 1}), &[&r2])))
        .expect("new key");
    let rev = serde_json::json!({"version": 1, "keyid": key_id(&r2.verifying_key()), "reason": "stolen"});
    reg.check_entry(&entry(6, rec("key.revoke", rev.clone(), &[&a, &b])))
        .expect("revoke");
    let e = reg.check_entry(&entry(7, rec("note", serde_json::json!({"version": 1}), &[&r2])));
    assert!(
        matches!(
            e,
            Err(RegistryError::Revoked {
                how: "revoked",
                at: 6,
                ..
            })
        ),
        "{e:?}"
    );
    // Revoking twice, or revoking an admin below the quorum, is a conflict and changes nothing.
    assert!(matches!(
        reg.check_entry(&entry(7, rec("key.revoke", rev, &[&a, &b]))),
        Err(RegistryError::Conflict(_))
    ));
    let rev_a = serde_json::json!({"version": 1, "keyid": key_id(&a.verifying_key()), "reason": "x"});
    assert!(matches!(
        reg.check_entry(&entry(7, rec("key.revoke", rev_a, &[&a, &b]))),
        Err(RegistryError::Conflict(_))
    ));
    reg.check_entry(&entry(7, enroll(&k(12), &["inspector"], &[], &[&a, &b])))
        .expect("admins still intact");
}

#[test]
fn payload_and_signature_checks() {
    let (node, a) = (k(1), k(2));
    let mut reg = Registry::genesis(&charter(&node, &[&a], 1, &[&node, &a])).expect("charter");
    let bad = rec(
        "key.enroll",
        serde_json::json!({"version": 1, "name": "x", "key": "AAAA", "roles": ["registrar"], "extra": 1}),
        &[&a],
    );
    assert!(matches!(
        reg.check_entry(&entry(1, bad)),
        Err(RegistryError::InvalidPayload { .. })
    ));
    let mut forged = enroll(&k(5), &["registrar"], &[], &[&a]);
    forged.signatures[0].sig[3] ^= 4;
    assert!(matches!(
        reg.check_entry(&entry(1, forged)),
        Err(RegistryError::BadSignature { .. })
    ));
    let mut twice = enroll(&k(5), &["registrar"], &[], &[&a]);
    twice.sign(&a);
    assert!(matches!(
        reg.check_entry(&entry(1, twice)),
        Err(RegistryError::DuplicateSigner { .. })
    ));
    let unknown = rec("gossip", serde_json::json!({"version": 1}), &[&a]);
    assert!(matches!(
        reg.check_entry(&entry(1, unknown)),
        Err(RegistryError::UnknownKind(_))
    ));
    let v2 = rec("note", serde_json::json!({"version": 2}), &[&a]);
    assert!(matches!(
        reg.check_entry(&entry(1, v2)),
        Err(RegistryError::InvalidPayload { .. })
    ));
    assert!(matches!(
        reg.check_entry(&entry(1, rec("charter", serde_json::json!({"version": 1}), &[&node]))),
        Err(RegistryError::InvalidPayload { .. })
    ));
}

#[test]
fn batch_verification_names_exactly_the_bad_envelopes() {
    let (node, a) = (k(1), k(2));
    let reg = Registry::genesis(&charter(&node, &[&a], 1, &[&node, &a])).expect("charter");
    let mut envs: Vec<Envelope> = (0..20)
        .map(|i| rec("note", serde_json::json!({"version": 1, "i": i}), &[&a]))
        .collect();
    let refs: Vec<&Envelope> = envs.iter().collect();
    assert!(reg.verify_signatures_batch(&refs).iter().all(Result::is_ok));
    envs[7].signatures[0].sig[0] ^= 1;
    envs[13] = rec("note", serde_json::json!({"version": 1}), &[&k(77)]);
    let refs: Vec<&Envelope> = envs.iter().collect();
    let v = reg.verify_signatures_batch(&refs);
    for (i, r) in v.iter().enumerate() {
        match i {
            7 => assert!(matches!(r, Err(RegistryError::BadSignature { .. })), "{r:?}"),
            13 => assert!(matches!(r, Err(RegistryError::UnknownKey { .. })), "{r:?}"),
            _ => assert!(r.is_ok(), "{i}: {r:?}"),
        }
    }
}

#[test]
fn weak_keys_cannot_enter_and_are_not_batch_verified() {
    let (node, a) = (k(1), k(2));
    let mut reg = Registry::genesis(&charter(&node, &[&a], 1, &[&node, &a])).expect("charter");
    let mut id = [0u8; 32];
    id[0] = 1; // the identity point: batch verification would accept forged signatures under it
    let weak = ed25519_dalek::VerifyingKey::from_bytes(&id).expect("decodes");
    let v =
        serde_json::json!({"version": 1, "name": "weak", "key": public_key_to_base64(&weak), "roles": ["registrar"]});
    let e = reg.check_entry(&entry(1, rec("key.enroll", v, &[&a])));
    assert!(matches!(e, Err(RegistryError::InvalidPayload { .. })), "{e:?}");
    let sk = k(5);
    let forged = ed25519_dalek::Signature::from_components(sk.verifying_key().to_bytes(), sk.to_scalar().to_bytes());
    assert!(!ledger_core::keys::batch_compatible(&weak, &forged.to_bytes()));
    assert!(ledger_core::keys::batch_compatible(
        &sk.verifying_key(),
        &sk.sign_pae_for_test()
    ));
}

trait SignForTest {
    fn sign_pae_for_test(&self) -> [u8; 64];
}

impl SignForTest for SigningKey {
    fn sign_pae_for_test(&self) -> [u8; 64] {
        use ed25519_dalek::Signer as _;
        self.sign(b"message").to_bytes()
    }
}

#[test]
fn witness_keys_are_named_cosigners_until_revoked() {
    let (node, a) = (k(1), k(2));
    let mut reg = Registry::genesis(&charter(&node, &[&a], 1, &[&node, &a])).expect("charter");
    let w = k(20);
    let named = |name: &str| {
        rec(
            "key.enroll",
            serde_json::json!({"version": 1, "name": name, "key": public_key_to_base64(&w.verifying_key()), "roles": ["witness"], "scope": {}}),
            &[&a],
        )
    };
    // A witness name is its note key name: one with a space can never be matched, so such a
    // witness does not count (the enrollment itself stays valid, as in logs written before).
    let mut other = reg.clone();
    other.check_entry(&entry(1, named("audit office"))).expect("enroll");
    assert!(other.witnesses().is_empty());
    reg.check_entry(&entry(1, named("audit.example/w1")))
        .expect("enroll witness");
    let ws = reg.witnesses();
    assert_eq!(ws.len(), 1);
    assert_eq!(ws[0].name, "audit.example/w1");
    assert_eq!(
        ws[0].key,
        ledger_core::cosignature::CosignerKey::Ed25519(w.verifying_key())
    );
    let revoke = rec(
        "key.revoke",
        serde_json::json!({"version": 1, "keyid": key_id(&w.verifying_key()), "reason": "retired"}),
        &[&a],
    );
    reg.check_entry(&entry(2, revoke)).expect("revoke");
    assert!(reg.witnesses().is_empty(), "a revoked witness no longer counts");
}

fn bound_rec(kind: &str, origin: &str, v: serde_json::Value, keys: &[&SigningKey]) -> Envelope {
    let mut e = Envelope::new(
        ledger_core::registry::payload_type_for_log(kind, origin),
        serde_json::to_vec(&v).expect("json"),
    );
    keys.iter().for_each(|key| e.sign(key));
    e
}

fn binding_charter(node: &SigningKey, admin: &SigningKey, log_binding: bool) -> Registry {
    let mut policy = serde_json::json!({"admin_quorum": 1});
    if log_binding {
        policy["log_binding"] = serde_json::json!(true);
    }
    let v = serde_json::json!({
        "version": 1, "origin": "ledger.test/reg", "node_key": public_key_to_base64(&node.verifying_key()),
        "admins": [{"name": "admin", "key": public_key_to_base64(&admin.verifying_key())}], "policy": policy
    });
    Registry::genesis(&entry(0, rec("charter", v, &[node, admin]))).expect("charter")
}

/// Issue 12 item 2: the payload type names the log; both forms parse to the same kind.
#[test]
fn payload_types_bound_and_unbound() {
    use ledger_core::registry::{kind_of, parse_payload_type, payload_type_for_log};
    let bound = payload_type_for_log("key.enroll", "ledger.example/county-7");
    assert_eq!(
        bound,
        "application/vnd.ledger.key.enroll.v1+json; log=\"ledger.example/county-7\""
    );
    assert_eq!(kind_of(&bound), Some("key.enroll"));
    assert_eq!(kind_of(&payload_type("key.enroll")), Some("key.enroll"));
    assert_eq!(
        parse_payload_type(&bound),
        Some(("key.enroll", Some("ledger.example/county-7")))
    );
    for bad in [
        "application/vnd.ledger.note.v1+json; log=\"\"",
        "application/vnd.ledger.note.v1+json; log=\"a b\"",
        "application/vnd.ledger.note.v1+json; log=\"a\\\"b\"",
        "application/vnd.ledger.note.v1+json; log=a",
        "application/vnd.ledger.note.v1+json;log=\"a\"",
        "application/vnd.ledger.note.v1+json; log=\"a\" ",
    ] {
        assert_eq!(kind_of(bad), None, "{bad}");
    }
}

/// A log with `log_binding` takes only envelopes bound to its origin; an older log takes both
/// forms, the bound one only with its own origin.
#[test]
fn log_binding_rules() {
    let (node, admin, r) = (k(1), k(2), k(5));
    let note = serde_json::json!({"version": 1, "text": "x"});
    for log_binding in [true, false] {
        let mut reg = binding_charter(&node, &admin, log_binding);
        reg.check_entry(&entry(1, bound_rec("key.enroll", "ledger.test/reg", serde_json::json!({"version": 1, "name": "r", "key": public_key_to_base64(&r.verifying_key()), "roles": ["registrar"]}), &[&admin])))
            .expect("bound enrollment");
        let other = reg.check_entry(&entry(2, bound_rec("note", "ledger.test/other", note.clone(), &[&r])));
        assert!(
            matches!(&other, Err(e @ RegistryError::WrongLog { found, .. }) if found == "ledger.test/other" && e.to_string().starts_with("WRONG_LOG")),
            "{other:?}"
        );
        let batch = reg.verify_signatures_batch(&[&bound_rec("note", "ledger.test/other", note.clone(), &[&r])]);
        assert!(matches!(batch[0], Err(RegistryError::WrongLog { .. })));
        let unbound = reg.check_entry(&entry(2, rec("note", note.clone(), &[&r])));
        if log_binding {
            assert!(
                matches!(&unbound, Err(RegistryError::LogBindingMissing { expected, .. }) if expected.ends_with("; log=\"ledger.test/reg\"")),
                "{unbound:?}"
            );
        } else {
            unbound.expect("an older log takes unbound records");
        }
        reg.check_entry(&entry(3, bound_rec("note", "ledger.test/reg", note.clone(), &[&r])))
            .expect("bound to this log");
    }
}

#[test]
fn an_mldsa44_witness_key_replaces_the_ed25519_one_for_cosigning_and_rotates_with_it() {
    use base64::Engine as _;
    use ledger_core::cosignature::{CosignatureSigner, CosignerKey};
    let (node, a) = (k(1), k(2));
    let mut reg = Registry::genesis(&charter(&node, &[&a], 1, &[&node, &a])).expect("charter");
    let (w, w2) = (k(21), k(22));
    let pq = CosignatureSigner::new_mldsa44("audit.example/pq", &[6u8; 32]).expect("pq");
    let pq2 = CosignatureSigner::new_mldsa44("audit.example/pq", &[7u8; 32]).expect("pq2");
    let b64 = |s: &CosignatureSigner| base64::engine::general_purpose::STANDARD.encode(s.verifier().key.as_bytes());
    let enroll_with = |roles: serde_json::Value, mk: String| {
        rec(
            "key.enroll",
            serde_json::json!({"version": 1, "name": "audit.example/pq", "key": public_key_to_base64(&w.verifying_key()),
                "mldsa44_key": mk, "roles": roles, "scope": {}}),
            &[&a],
        )
    };
    // Only a witness may carry one, and it must be a 1312-byte key.
    let e = reg
        .clone()
        .check_entry(&entry(1, enroll_with(serde_json::json!(["registrar"]), b64(&pq))))
        .expect_err("not a witness");
    assert!(e.to_string().contains("only for the witness role"), "{e}");
    let e = reg
        .clone()
        .check_entry(&entry(1, enroll_with(serde_json::json!(["witness"]), "AAAA".into())))
        .expect_err("short key");
    assert!(e.to_string().contains("1312 bytes"), "{e}");
    reg.check_entry(&entry(1, enroll_with(serde_json::json!(["witness"]), b64(&pq))))
        .expect("enroll ML-DSA witness");
    assert_eq!(
        reg.witnesses(),
        vec![pq.verifier().clone()],
        "counted by its 0x06 key only"
    );
    // Rotation carries the new ML-DSA-44 key; without one the rotated witness counts by Ed25519.
    let rotate = |new: &SigningKey, mk: Option<String>| {
        let mut v = serde_json::json!({"version": 1, "keyid": key_id(&w.verifying_key()), "new_key": public_key_to_base64(&new.verifying_key()), "reason": "r"});
        if let Some(mk) = mk {
            v["new_mldsa44_key"] = serde_json::json!(mk);
        }
        rec("key.rotate", v, &[&a])
    };
    let mut plain = reg.clone();
    plain.check_entry(&entry(2, rotate(&w2, None))).expect("rotate");
    assert_eq!(plain.witnesses()[0].key, CosignerKey::Ed25519(w2.verifying_key()));
    reg.check_entry(&entry(2, rotate(&w2, Some(b64(&pq2)))))
        .expect("rotate");
    assert_eq!(reg.witnesses(), vec![pq2.verifier().clone()]);
}

fn node_rotate(new: &SigningKey, signers: &[&SigningKey]) -> Envelope {
    rec(
        "node.rotate",
        serde_json::json!({"version": 1, "new_key": public_key_to_base64(&new.verifying_key()), "reason": "new HSM"}),
        signers,
    )
}

#[test]
fn node_rotate_needs_the_current_node_key_and_the_admin_quorum() {
    let (node, a, b, new) = (k(1), k(2), k(3), k(40));
    let mut reg = Registry::genesis(&charter(&node, &[&a, &b], 2, &[&node, &a, &b])).expect("charter");
    // Without the node key: the admin quorum alone cannot move the node role.
    let e = reg.check_entry(&entry(1, node_rotate(&new, &[&a, &b])));
    assert!(
        matches!(&e, Err(RegistryError::MissingRole { kind, .. }) if kind == "node.rotate"),
        "{e:?}"
    );
    assert_eq!(e.as_ref().map_err(|e| e.fault().as_str()), Err("UNAUTHORIZED_SIGNER"));
    // Without the quorum: the node key alone cannot replace itself.
    let e = reg.check_entry(&entry(1, node_rotate(&new, &[&node, &a])));
    assert!(
        matches!(&e, Err(RegistryError::MissingQuorum { kind, need: 2, have: 1 }) if kind == "node.rotate"),
        "{e:?}"
    );
    let e = reg.check_entry(&entry(1, node_rotate(&new, &[&node])));
    assert!(
        matches!(e, Err(RegistryError::MissingQuorum { need: 2, have: 0, .. })),
        "{e:?}"
    );
    // A new key already known is a conflict; a weak or unparsable key is invalid.
    let e = reg.check_entry(&entry(1, node_rotate(&a, &[&node, &a, &b])));
    assert!(matches!(e, Err(RegistryError::Conflict(_))), "{e:?}");
    let bad = rec(
        "node.rotate",
        serde_json::json!({"version": 1, "new_key": "AAAA", "reason": "x"}),
        &[&node, &a, &b],
    );
    let e = reg.check_entry(&entry(1, bad));
    assert!(matches!(e, Err(RegistryError::InvalidPayload { .. })), "{e:?}");
    let extra = rec(
        "node.rotate",
        serde_json::json!({"version": 1, "new_key": public_key_to_base64(&new.verifying_key()), "reason": "x", "keyid": "z"}),
        &[&node, &a, &b],
    );
    let e = reg.check_entry(&entry(1, extra));
    assert!(matches!(e, Err(RegistryError::InvalidPayload { .. })), "{e:?}");
    // Failed attempts left the registry unchanged.
    assert_eq!(reg.node_key, node.verifying_key());
    assert_eq!(reg.node_keys.len(), 1);
    // Both: accepted.
    reg.check_entry(&entry(1, node_rotate(&new, &[&node, &a, &b])))
        .expect("rotation signed by the node key and the quorum");
    assert_eq!(reg.node_key, new.verifying_key());
    assert_eq!(
        reg.keys.get(&key_id(&node.verifying_key())).and_then(|s| s.ended),
        Some((1, "rotated"))
    );
    // The chain of keys: node records at index <= 1 and checkpoints of size <= 1 are the old
    // key's; from index 2 and size 2 (the first tree holding the rotation) the new key's.
    assert_eq!(reg.node_key_at(0), node.verifying_key());
    assert_eq!(reg.node_key_at(1), node.verifying_key());
    assert_eq!(reg.node_key_at(2), new.verifying_key());
    assert_eq!(reg.checkpoint_key(1), node.verifying_key());
    assert_eq!(reg.checkpoint_key(2), new.verifying_key());
    assert_eq!(reg.checkpoint_key(1_000), new.verifying_key());
    // key.rotate and key.revoke still refuse the node key, old or new.
    let rot = serde_json::json!({"version": 1, "keyid": key_id(&new.verifying_key()), "new_key": public_key_to_base64(&k(41).verifying_key())});
    let e = reg.check_entry(&entry(2, rec("key.rotate", rot, &[&a, &b])));
    assert!(
        matches!(&e, Err(RegistryError::Conflict(m)) if m.contains("node key")),
        "{e:?}"
    );
    // The old key can no longer rotate the node key again; the new one can.
    let e = reg.check_entry(&entry(2, node_rotate(&k(42), &[&node, &a, &b])));
    assert!(
        matches!(
            &e,
            Err(RegistryError::Revoked {
                how: "rotated",
                at: 1,
                ..
            })
        ),
        "{e:?}"
    );
    reg.check_entry(&entry(2, node_rotate(&k(42), &[&new, &a, &b])))
        .expect("second rotation by the new key");
    assert_eq!(reg.node_key_at(2), new.verifying_key());
    assert_eq!(reg.node_key_at(3), k(42).verifying_key());
    assert_eq!(reg.node_keys.len(), 3);
}

fn node_compromise(keyid: &str, as_of: u64, new: &SigningKey, signers: &[&SigningKey]) -> Envelope {
    rec(
        "node.compromise",
        serde_json::json!({"version": 1, "keyid": keyid, "as_of": as_of, "new_key": public_key_to_base64(&new.verifying_key()), "reason": "HSM stolen"}),
        signers,
    )
}

#[test]
fn node_compromise_needs_the_admin_quorum_alone_and_a_node_key_of_the_chain() {
    let (node, a, b, new) = (k(1), k(2), k(3), k(50));
    let node_id = key_id(&node.verifying_key());
    let mut reg = Registry::genesis(&charter(&node, &[&a, &b], 2, &[&node, &a, &b])).expect("charter");
    reg.check_entry(&entry(1, enroll(&k(9), &["registrar"], &[], &[&a, &b])))
        .expect("enroll");
    // Not the quorum; the node key alone (a thief cannot declare for the administrators).
    let e = reg.check_entry(&entry(5, node_compromise(&node_id, 2, &new, &[&a])));
    assert!(
        matches!(&e, Err(RegistryError::MissingQuorum { kind, need: 2, have: 1 }) if kind == "node.compromise"),
        "{e:?}"
    );
    let e = reg.check_entry(&entry(5, node_compromise(&node_id, 2, &new, &[&node])));
    assert!(
        matches!(e, Err(RegistryError::MissingQuorum { need: 2, have: 0, .. })),
        "{e:?}"
    );
    assert_eq!(e.as_ref().map_err(|e| e.fault().as_str()), Err("UNAUTHORIZED_SIGNER"));
    // The quorum with the node key's signature: refused, the quorum signs alone.
    let e = reg.check_entry(&entry(5, node_compromise(&node_id, 2, &new, &[&node, &a, &b])));
    assert!(
        matches!(&e, Err(RegistryError::Conflict(m)) if m == "node.compromise is signed by the administrator quorum alone; a node key must not sign it"),
        "{e:?}"
    );
    // as_of after the record's own index.
    let e = reg.check_entry(&entry(5, node_compromise(&node_id, 6, &new, &[&a, &b])));
    assert!(
        matches!(&e, Err(RegistryError::Conflict(m)) if m.starts_with("as_of 6 is after this record's own index 5")),
        "{e:?}"
    );
    // Unknown keyid; a key that is not a node key; a new key already known; unknown fields.
    let e = reg.check_entry(&entry(5, node_compromise("00ff", 2, &new, &[&a, &b])));
    assert!(
        matches!(&e, Err(RegistryError::Conflict(m)) if m == "key 00ff is not a node key of this log: node.compromise names a key of the chain of node keys"),
        "{e:?}"
    );
    let e = reg.check_entry(&entry(
        5,
        node_compromise(&key_id(&k(9).verifying_key()), 2, &new, &[&a, &b]),
    ));
    assert!(
        matches!(&e, Err(RegistryError::Conflict(m)) if m.ends_with("is not a node key of this log: node.compromise names a key of the chain of node keys")),
        "{e:?}"
    );
    let e = reg.check_entry(&entry(5, node_compromise(&node_id, 2, &k(9), &[&a, &b])));
    assert!(
        matches!(&e, Err(RegistryError::Conflict(m)) if m.ends_with("is already enrolled")),
        "{e:?}"
    );
    let extra = rec(
        "node.compromise",
        serde_json::json!({"version": 1, "keyid": node_id, "as_of": 2, "new_key": public_key_to_base64(&new.verifying_key()), "reason": "x", "extra": 1}),
        &[&a, &b],
    );
    let e = reg.check_entry(&entry(5, extra));
    assert!(matches!(e, Err(RegistryError::InvalidPayload { .. })), "{e:?}");
    assert_eq!(reg.node_keys.len(), 1);
    assert!(reg.compromises.is_empty());
    // The quorum alone: accepted.
    reg.check_entry(&entry(5, node_compromise(&node_id, 2, &new, &[&a, &b])))
        .expect("compromise declared by the quorum");
    assert_eq!(reg.node_key, new.verifying_key());
    assert_eq!(reg.node_key_at(5), node.verifying_key());
    assert_eq!(reg.node_key_at(6), new.verifying_key());
    assert_eq!(reg.checkpoint_key(6), new.verifying_key());
    // The span: node records at 2..=5 and checkpoints of sizes 3..=5 by the old key.
    assert!(reg.compromised_record(1).is_none());
    assert!(reg.compromised_record(2).is_some_and(|c| c.as_of == 2 && c.at == 5));
    assert!(reg.compromised_record(5).is_some());
    assert!(reg.compromised_record(6).is_none(), "the new key's");
    assert!(reg.compromised_checkpoint(&node.verifying_key(), 2).is_none());
    assert!(reg.compromised_checkpoint(&node.verifying_key(), 3).is_some());
    assert!(reg.compromised_checkpoint(&new.verifying_key(), 9).is_none());
    // Anything the compromised key signs later is refused, naming the compromise.
    let e = reg.check_entry(&entry(6, node_rotate(&k(51), &[&node, &a, &b])));
    assert!(
        matches!(&e, Err(RegistryError::Compromised { keyid, as_of: 2, at: 5, .. }) if *keyid == node_id),
        "{e:?}"
    );
    let msg = e.as_ref().err().map(ToString::to_string).unwrap_or_default();
    assert_eq!(
        msg,
        format!(
            "key {node_id} (node ledger.test/reg) was declared compromised as of index 2 by the node.compromise record at index 5: its signatures after that record are refused"
        )
    );
    assert_eq!(e.map_err(|e| e.fault().as_str()), Err("UNAUTHORIZED_SIGNER"));
    // Declared once only.
    let e = reg.check_entry(&entry(6, node_compromise(&node_id, 2, &k(52), &[&a, &b])));
    assert!(
        matches!(&e, Err(RegistryError::Conflict(m)) if m.ends_with("is already declared compromised")),
        "{e:?}"
    );
    // The new key rotates on as usual.
    reg.check_entry(&entry(7, node_rotate(&k(53), &[&new, &a, &b])))
        .expect("the new key rotates");
}

#[test]
fn node_compromise_of_a_rotated_key_must_reach_into_its_tenure() {
    let (node, a, new, newer) = (k(1), k(2), k(60), k(61));
    let node_id = key_id(&node.verifying_key());
    let mut reg = Registry::genesis(&charter(&node, &[&a], 1, &[&node, &a])).expect("charter");
    reg.check_entry(&entry(3, node_rotate(&new, &[&node, &a])))
        .expect("rotation at 3");
    // The charter key signed node records up to index 3 and checkpoints up to size 3.
    let e = reg.check_entry(&entry(8, node_compromise(&node_id, 4, &newer, &[&a])));
    assert!(
        matches!(&e, Err(RegistryError::Conflict(m)) if m.contains("was rotated at index 3, before as_of 4")),
        "{e:?}"
    );
    reg.check_entry(&entry(8, node_compromise(&node_id, 3, &newer, &[&a])))
        .expect("the rotated key, compromised as of its last index");
    // The current key (`new`) is handed on too: `newer` holds the node role from index 9.
    assert_eq!(
        reg.keys.get(&key_id(&new.verifying_key())).and_then(|s| s.ended),
        Some((8, "rotated"))
    );
    assert_eq!(reg.node_key_at(9), newer.verifying_key());
    assert!(reg.compromised_record(3).is_some());
    assert!(reg.compromised_record(4).is_none(), "index 4 is the next key's");
    // A checkpoint of size 3 holds entries 0..=2 only, before as_of.
    assert!(reg.compromised_checkpoint(&node.verifying_key(), 3).is_none());
    assert!(reg.compromised_checkpoint(&node.verifying_key(), 4).is_some());
}
