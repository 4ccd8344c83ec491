//! The serialized form of `LedgerState` (issue 14, the node's `DATA/state.snapshot`): a decoded
//! state encodes to the same bytes, and a state decoded at any size N and folded on to M is the
//! state folded from 0 to M, over a log with records of every kind (registry, draws, elections,
//! credentials, ballots, micro-evaluations, escrows, complaints, nominations, cancellations,
//! notes, node.rotate), accepted and refused.

use ed25519_dalek::SigningKey;
use ledger_core::credential::{self, Credential, IssuerKey};
use ledger_core::dsse::Envelope;
use ledger_core::entry::Entry;
use ledger_core::hash::{Hash, leaf_hash};
use ledger_core::keys::{key_id, public_key_to_base64};
use ledger_core::registry::payload_type;
use ledger_core::seal::EscrowSecretKey;
use ledger_core::state::LedgerState;
use serde_json::{Value, json};

/// TEST ONLY credential key (tests/data/README.md).
const TEST_KEY_PEM: &str = include_str!("data/TEST_ONLY_credential_key.pem");

fn k(b: u8) -> SigningKey {
    SigningKey::from_bytes(&[b; 32])
}

fn b64(k: &SigningKey) -> String {
    public_key_to_base64(&k.verifying_key())
}

fn root_at(size: u64) -> Hash {
    Hash::digest(format!("root {size}").as_bytes())
}

/// One step of the fold as the node's start-up does it: the size first, then the entry.
fn step(st: &mut LedgerState, e: &Entry) {
    st.observe_size(e.index, &root_at(e.index));
    let _ = st.step_stored(e, &leaf_hash(&e.encode()), true);
}

/// A log of every kind of record; built by folding as it goes (the node's draw result and tally
/// are computed from the state).
struct Builder {
    entries: Vec<Entry>,
    state: LedgerState,
}

impl Builder {
    fn add(&mut self, kind: &str, v: &Value, keys: &[&SigningKey], ts: u64) {
        let mut env = Envelope::new(payload_type(kind), serde_json::to_vec(v).expect("json"));
        keys.iter().for_each(|key| env.sign(key));
        let e = Entry {
            index: self.entries.len() as u64,
            timestamp_micros: ts,
            prev_root: root_at(self.entries.len() as u64),
            envelope: env,
        };
        step(&mut self.state, &e);
        self.entries.push(e);
    }
}

fn obtain(issuer: &IssuerKey, election: &str, seed: u8) -> (SigningKey, Credential) {
    let key = SigningKey::from_bytes(&[seed; 32]);
    let mut rng = blind_rsa_signatures::DefaultRng;
    let st = credential::blind(&mut rng, issuer.public_key(), election, key.verifying_key().as_bytes()).expect("blind");
    let sig = issuer.blind_sign(st.blinded_message()).expect("blind sign");
    (
        key,
        credential::finalize(issuer.public_key(), &st, &sig).expect("finalize"),
    )
}

fn log() -> Vec<Entry> {
    let (node, admin, reg, insp, nom, src, platform, new_node) = (k(1), k(2), k(10), k(11), k(12), k(13), k(14), k(40));
    let charter = json!({"version": 1, "origin": "ledger.test/snapshot", "node_key": b64(&node),
        "admins": [{"name": "admin", "key": b64(&admin)}], "policy": {"admin_quorum": 1}});
    let mut env = Envelope::new(payload_type("charter"), serde_json::to_vec(&charter).expect("json"));
    env.sign(&node);
    env.sign(&admin);
    let e0 = Entry {
        index: 0,
        timestamp_micros: 0,
        prev_root: Hash::default(),
        envelope: env,
    };
    let mut b = Builder {
        state: LedgerState::genesis(&e0).expect("charter"),
        entries: vec![e0],
    };
    let enroll = |key: &SigningKey, name: &str, role: &str| json!({"version": 1, "name": name, "key": b64(key), "roles": [role]});
    b.add("key.enroll", &enroll(&reg, "registrar", "registrar"), &[&admin], 1);
    b.add("key.enroll", &enroll(&insp, "inspector", "inspector"), &[&admin], 1);
    b.add("key.enroll", &enroll(&nom, "nominator", "nominator"), &[&admin], 1);
    b.add("key.enroll", &enroll(&src, "source", "data-source"), &[&admin], 1);
    b.add(
        "key.enroll",
        &enroll(&platform, "platform", "service-platform"),
        &[&admin],
        1,
    );
    // Refused: the same enrollment again.
    b.add("key.enroll", &enroll(&reg, "registrar", "registrar"), &[&admin], 1);
    // A key rotated, then the new one revoked.
    let (tmp, tmp2) = (k(20), k(21));
    b.add("key.enroll", &enroll(&tmp, "temporary", "nominator"), &[&admin], 2);
    b.add(
        "key.rotate",
        &json!({"version": 1, "keyid": key_id(&tmp.verifying_key()), "new_key": b64(&tmp2)}),
        &[&admin],
        2,
    );
    b.add(
        "key.revoke",
        &json!({"version": 1, "keyid": key_id(&tmp2.verifying_key()), "reason": "left"}),
        &[&admin],
        2,
    );
    // A draw with pool keys, revealed, with the node's result.
    let secret = b"registrar secret";
    let t = b.entries.len() as u64 + 2;
    let members: Vec<Value> = (1..=5)
        .map(|i| json!({"id": format!("ev-{i:03}"), "stratum": "all", "key": b64(&k(100 + i))}))
        .collect();
    b.add(
        "draw.commit",
        &json!({"version": 1, "draw_id": "draw-1", "purpose": "evaluator_selection", "subjects": ["cadre-1"],
            "pool": members, "strata": [{"name": "all", "quota": 3}], "k": 3, "algorithm": "ledger-draw-v1",
            "parties": [{"name": "registrar", "keyid": key_id(&reg.verifying_key()), "commitment": Hash::digest(secret).to_hex()}],
            "reveal_at_size": t, "reveal_deadline_micros": 1_000_000}),
        &[&reg],
        10,
    );
    b.add("note", &json!({"version": 1, "text": "filler"}), &[&reg], 11);
    let reveal = json!({"version": 1, "draw_id": "draw-1", "party": "registrar", "secret": hex::encode(secret)});
    b.add("draw.reveal", &reveal, &[&reg], 12);
    b.add("draw.reveal", &reveal, &[&reg], 12);
    let result = b.state.domain.compute_result("draw-1").expect("result");
    b.add(
        "draw.result",
        &serde_json::to_value(&result).expect("json"),
        &[&node],
        13,
    );
    // A second draw, left open and waiting for its size, then cancelled.
    let t2 = b.entries.len() as u64 + 50;
    b.add(
        "draw.commit",
        &json!({"version": 1, "draw_id": "draw-2", "purpose": "evaluator_selection", "subjects": ["cadre-2"],
            "pool": [{"id": "m1", "stratum": "all"}, {"id": "m2", "stratum": "all"}],
            "strata": [{"name": "all", "quota": 1}], "k": 1, "algorithm": "ledger-draw-v1",
            "parties": [{"name": "registrar", "keyid": key_id(&reg.verifying_key()), "commitment": Hash::digest(b"x").to_hex()}],
            "reveal_at_size": t2, "reveal_deadline_micros": 9_000_000_000u64}),
        &[&reg],
        14,
    );
    let d2 = b.entries.len() as u64 - 1;
    // Election with credentials (one requested personally) and ballots.
    let issuer = IssuerKey::from_pem(TEST_KEY_PEM).expect("test key");
    let (open_at, close_at) = (1_000u64, 2_000u64);
    b.add(
        "election.open",
        &json!({"version": 1, "election_id": "el-1", "subjects": ["cadre-1"], "draw_id": "draw-1",
            "weights": {"political": 20, "performance": 20, "integrity": 15, "public_opinion": 30, "responsibility": 15},
            "score_min": 0, "score_max": 100, "opens_at_micros": open_at, "closes_at_micros": close_at,
            "credential_suite": "RSABSSA-SHA384-PSS-Randomized",
            "credential_key": issuer.public_key().to_base64().expect("b64")}),
        &[&reg],
        500,
    );
    let drawn: Vec<String> = result.selection.iter().flat_map(|s| s.selected.clone()).collect();
    for ev in &drawn {
        use base64::Engine as _;
        use ed25519_dalek::Signer as _;
        let n: u8 = ev.trim_start_matches("ev-").parse().expect("member number");
        let h = Hash::digest(ev.as_bytes());
        let m = ledger_core::election::credential_request_message("el-1", ev, &h);
        b.add(
            "credential.issued",
            &json!({"version": 1, "election_id": "el-1", "evaluator": ev, "count": 1,
                "blinded_message_hash": h.to_hex(),
                "request_signature": base64::engine::general_purpose::STANDARD.encode(k(100 + n).sign(&m).to_bytes())}),
            &[&reg],
            600,
        );
    }
    for (i, seed) in [31u8, 32].into_iter().enumerate() {
        let (key, cred) = obtain(&issuer, "el-1", seed);
        let ballot = json!({"version": 1, "election_id": "el-1",
            "scores": [{"subject": "cadre-1", "scores": {"political": 50 + i, "performance": 60, "integrity": 70,
                "public_opinion": 80, "responsibility": 90}}],
            "ballot_key": b64(&key), "credential": cred});
        b.add("ballot", &ballot, &[&key], open_at + 1);
        b.add("ballot", &ballot, &[&key], open_at + 2);
    }
    if let Ok(tally) = b.state.domain.elections.compute_tally("el-1") {
        b.add(
            "tally",
            &serde_json::to_value(&tally).expect("json"),
            &[&node],
            close_at,
        );
    }
    // Micro-evaluations, one ticket twice.
    for n in [1u64, 2, 3, 2] {
        b.add(
            "evaluation.micro",
            &json!({"version": 1, "ticket_hash": Hash::digest(format!("ticket-{n}").as_bytes()).to_hex(),
                "subject": format!("cadre-{}", n % 2), "department": "dept", "rating": 1 + n % 5,
                "service_time_micros": 3_000}),
            &[&platform],
            5_000 + n,
        );
    }
    // Escrow, complaints, facts, a verification, a nomination, cancellations.
    let pk = EscrowSecretKey::from_bytes([7; 32]).public_key().expect("escrow key");
    b.add(
        "escrow.key",
        &json!({"version": 1, "escrow_id": "court-1", "public_key": pk.to_base64(), "holder": "court"}),
        &[&admin],
        6_000,
    );
    b.add(
        "complaint",
        &json!({"version": 1, "complaint_id": "c1", "subject": "cadre-1", "category": "a",
            "content_hash": Hash::digest(b"c1").to_hex()}),
        &[&src],
        6_001,
    );
    b.add(
        "dossier.fact",
        &json!({"version": 1, "fact_id": "f1", "subject": "cadre-1", "source": "audit", "category": "a",
            "content_hash": Hash::digest(b"f1").to_hex()}),
        &[&src],
        6_002,
    );
    b.add(
        "nomination",
        &json!({"version": 1, "nomination_id": "n1", "subject": "cadre-1", "post": "head", "organization": "org"}),
        &[&nom],
        6_003,
    );
    let ni = b.entries.len() as u64 - 1;
    b.add(
        "cancellation",
        &json!({"version": 1, "target_index": ni, "reason": "procedural error"}),
        &[&reg],
        6_004,
    );
    b.add(
        "cancellation",
        &json!({"version": 1, "target_index": d2, "reason": "void"}),
        &[&insp],
        6_005,
    );
    b.add("note", &json!({"version": 1, "text": "after"}), &[&reg], 6_006);
    // The node key rotates.
    b.add(
        "node.rotate",
        &json!({"version": 1, "new_key": b64(&new_node), "reason": "new HSM"}),
        &[&node, &admin],
        6_007,
    );
    b.add("note", &json!({"version": 1, "text": "last"}), &[&reg], 6_008);
    b.entries
}

fn fold(entries: &[Entry], from: Option<LedgerState>) -> LedgerState {
    let (mut st, rest) = match from {
        Some(st) => (st, entries),
        None => (LedgerState::genesis(&entries[0]).expect("charter"), &entries[1..]),
    };
    for e in rest {
        step(&mut st, e);
    }
    st
}

/// The log exercises every part of the state, and a decoded state encodes to the same bytes.
#[test]
fn decoded_state_encodes_to_the_same_bytes() {
    let entries = log();
    let st = fold(&entries, None);
    // The records the log was built to hold were accepted.
    let d = &st.domain;
    assert_eq!(d.draws.len(), 2, "both draws");
    assert!(d.draws["draw-1"].result_index.is_some());
    let el = &d.elections.elections["el-1"];
    assert_eq!(el.issued.len(), 3, "three credentials");
    assert_eq!(el.ballots.len(), 2, "two ballots, the repeats refused");
    assert_eq!(
        d.elections.micro.values().map(|(c, _)| c).sum::<u64>(),
        3,
        "a ticket rates once"
    );
    assert_eq!(d.escrows.len(), 1);
    assert_eq!(d.cancelled.len(), 2);
    assert_eq!(st.registry.node_keys.len(), 2, "node.rotate");
    assert!(st.registry.keys.values().any(|k| k.ended.is_some()));
    assert!(!d.statements.is_empty());

    let bytes = st.encode();
    let back = LedgerState::decode(&bytes).expect("decode");
    assert_eq!(back.encode(), bytes);
    assert_eq!(back.registry.keys, st.registry.keys);
    assert_eq!(back.registry.node_keys, st.registry.node_keys);
    assert_eq!(back.registry.charter, st.registry.charter);
    assert_eq!(back.domain.statements, st.domain.statements);
    assert_eq!(back.domain.elections.micro, st.domain.elections.micro);
    // Another state encodes differently.
    let shorter = fold(&entries[..entries.len() - 1], None);
    assert_ne!(shorter.encode(), bytes);
}

/// snapshot(N) + fold(N..M) == fold(0..M), for every N of the log; and a damaged encoding is
/// refused, never decoded into some other state.
#[test]
fn snapshot_then_fold_equals_fold_for_every_size() {
    let entries = log();
    let whole = fold(&entries, None).encode();
    for n in 1..=entries.len() {
        let mut at_n = fold(&entries[..n], None);
        at_n.observe_size(n as u64, &root_at(n as u64));
        let decoded = LedgerState::decode(&at_n.encode()).expect("decode");
        let on = fold(&entries[n..], Some(decoded));
        assert!(
            on.encode() == whole,
            "snapshot at {n} then fold differs from the whole fold"
        );
    }
    let bytes = fold(&entries, None).encode();
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(LedgerState::decode(&trailing).is_err());
    assert!(LedgerState::decode(&bytes[..bytes.len() - 1]).is_err());
    let mut wrong_version = bytes.clone();
    wrong_version[0] ^= 0x7f;
    assert!(LedgerState::decode(&wrong_version).is_err());
}
