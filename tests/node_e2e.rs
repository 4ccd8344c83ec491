//! End-to-end tests of the real `ledger-node` binary over real gRPC on loopback: append, read,
//! prove, restart; idempotency; authorization; bad input; tampered stores; crashes (kill -9).

mod support;

use ledger_core::checkpoint::open_checkpoint;
use ledger_core::hash::{Hash, leaf_hash};
use ledger_core::merkle;
use ledger_core::note::NoteVerifier;
use ledger_proto::pb;
use support::*;
use tonic::Code;

fn node_verifier(data: &std::path::Path, origin: &str) -> NoteVerifier {
    let pk = ledger_client::keyfile::read_public_key(data.join("keys/node.key.pub")).expect("node pub");
    NoteVerifier::new(origin, pk).expect("verifier")
}

fn hashes(v: &[Vec<u8>]) -> Vec<Hash> {
    v.iter().map(|h| Hash::from_slice(h).expect("32 bytes")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_read_prove_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, "ledger.test/e2e", &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let reg = new_key();
    let mut node = Node::start(&data);
    let mut c = node.client().await;

    let enr = append(
        &mut c,
        &enroll(&reg, "registrar", &["registrar"], &[&admin]),
        "enroll-1",
    )
    .await
    .expect("enroll");
    assert_eq!(enr.index, 1);
    let env = record("note", note_payload(7), &[&reg]);
    let r = c.append(req(&env, "note-7", true)).await.expect("append").into_inner();
    assert_eq!(r.index, 2);
    assert!(!r.duplicate);
    // The returned checkpoint is signed by the node key and the proof includes our leaf.
    let v = node_verifier(&data, "ledger.test/e2e");
    let cp = open_checkpoint(&r.checkpoint, &v).expect("checkpoint verifies");
    assert!(cp.checkpoint.size > 2);
    let lh = Hash::from_slice(&r.leaf_hash).expect("hash");
    merkle::verify_inclusion(
        2,
        cp.checkpoint.size,
        &lh,
        &hashes(&r.inclusion_proof),
        &cp.checkpoint.root,
    )
    .expect("inclusion proof verifies");

    // Read back: the canonical leaf hashes to the leaf hash, and the envelope is byte-identical.
    let e = c
        .get_entry(pb::GetEntryRequest { index: 2 })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(leaf_hash(&e.leaf).0.to_vec(), r.leaf_hash);
    let decoded = ledger_proto::entry_from_wire(&e).expect("decode");
    assert_eq!(decoded.envelope, env);

    // Idempotency: same id + same envelope = same index; same id + other envelope = ALREADY_EXISTS.
    let again = append(&mut c, &env, "note-7").await.expect("retry");
    assert_eq!((again.index, again.duplicate), (2, true));
    let other = record("note", note_payload(8), &[&reg]);
    let err = append(&mut c, &other, "note-7").await.expect_err("reused id");
    assert_eq!(err.code(), Code::AlreadyExists, "{err}");

    // Query by kind and subject.
    for i in 10..20 {
        append(&mut c, &record("note", note_payload(i), &[&reg]), &format!("q-{i}"))
            .await
            .expect("append");
    }
    let q = c
        .query(pb::QueryRequest {
            kind: "note".into(),
            subject: "cadre-1".into(),
            limit: 2,
            ..Default::default()
        })
        .await
        .expect("query")
        .into_inner();
    assert_eq!(q.indices.len(), 2);
    assert!(q.next_page_start > 0);

    // Lookup by leaf hash.
    let p = c
        .get_inclusion_proof(pb::GetInclusionProofRequest {
            target: Some(pb::get_inclusion_proof_request::Target::LeafHash(r.leaf_hash.clone())),
            tree_size: 0,
        })
        .await
        .expect("proof by leaf hash")
        .into_inner();
    assert_eq!(p.index, 2);

    // Restart and check that history is intact and consistent with what we saw.
    let old = cp.checkpoint.clone();
    node.stop();
    let node2 = Node::start(&data);
    let mut c = node2.client().await;
    let e2 = c
        .get_entry(pb::GetEntryRequest { index: 2 })
        .await
        .expect("get after restart")
        .into_inner();
    assert_eq!(e2.leaf, e.leaf);
    let latest = c
        .get_checkpoint(pb::GetCheckpointRequest { size: None })
        .await
        .expect("cp")
        .into_inner();
    let latest = open_checkpoint(&latest.note, &v).expect("latest verifies").checkpoint;
    assert_eq!(
        latest.size, 13,
        "every acknowledged entry survives a restart and is checkpointed"
    );
    let cons = c
        .get_consistency_proof(pb::GetConsistencyProofRequest {
            old_size: old.size,
            new_size: latest.size,
        })
        .await
        .expect("consistency")
        .into_inner();
    merkle::verify_consistency(old.size, latest.size, &old.root, &latest.root, &hashes(&cons.hashes))
        .expect("old checkpoint is a prefix of today's log");
    // Every entry streamed back chains correctly.
    let mut s = c
        .get_entries(pb::GetEntriesRequest { start: 0, end: 0 })
        .await
        .expect("stream")
        .into_inner();
    let mut ct = ledger_core::compact::CompactTree::new();
    while let Some(m) = s.message().await.expect("stream item") {
        let e = ledger_proto::entry_from_wire(&m).expect("entry");
        assert_eq!(e.prev_root, ct.root(), "chain at {}", e.index);
        ct.append(leaf_hash(&m.leaf));
    }
    assert_eq!(ct.root(), latest.root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_rules() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    let (a1, a2) = (dir.path().join("a1.key"), dir.path().join("a2.key"));
    init(&data, "ledger.test/auth", &[a1.clone(), a2.clone()], 2);
    let (admin1, admin2) = (key(&a1), key(&a2));
    let node = Node::start(&data);
    let mut c = node.client().await;
    let reg = new_key();

    // Missing quorum: one of two required administrators.
    let e = append(&mut c, &enroll(&reg, "r", &["registrar"], &[&admin1]), "")
        .await
        .expect_err("quorum");
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("2 distinct administrator"), "{}", e.message());
    append(&mut c, &enroll(&reg, "r", &["registrar"], &[&admin1, &admin2]), "")
        .await
        .expect("quorum met");

    // Unknown key.
    let stranger = new_key();
    let e = append(&mut c, &record("note", note_payload(1), &[&stranger]), "")
        .await
        .expect_err("unknown");
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("unknown key"), "{}", e.message());

    // Wrong role: a registrar may not submit citizen micro-evaluations.
    let e = append(&mut c, &record("evaluation.micro", micro_payload(1), &[&reg]), "")
        .await
        .expect_err("role");
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("service-platform"), "{}", e.message());

    // A registrar cannot manage keys.
    let e = append(&mut c, &enroll(&new_key(), "x", &["registrar"], &[&reg]), "")
        .await
        .expect_err("not admin");
    assert_eq!(e.code(), Code::PermissionDenied);

    // Revocation works going forward.
    append(&mut c, &record("note", note_payload(2), &[&reg]), "")
        .await
        .expect("before revocation");
    let revoke = record(
        "key.revoke",
        serde_json::json!({"version": 1, "keyid": ledger_core::keys::key_id(&reg.verifying_key()), "reason": "stolen"}),
        &[&admin1, &admin2],
    );
    append(&mut c, &revoke, "").await.expect("revoke");
    let e = append(&mut c, &record("note", note_payload(3), &[&reg]), "")
        .await
        .expect_err("revoked");
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("revoked"), "{}", e.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, "ledger.test/bad", &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let node = Node::start(&data);
    let mut c = node.client().await;
    let reg = new_key();
    append(&mut c, &enroll(&reg, "r", &["registrar"], &[&admin]), "")
        .await
        .expect("enroll");
    let size = |c: &mut pb::ledger_client::LedgerClient<tonic::transport::Channel>| {
        let mut c = c.clone();
        async move {
            let q = c
                .query(pb::QueryRequest {
                    from_micros: 1,
                    limit: 1000,
                    ..Default::default()
                })
                .await
                .expect("q");
            q.into_inner().indices.len()
        }
    };
    let before = size(&mut c).await;

    let mut cases: Vec<(&str, pb::AppendRequest, Code)> = Vec::new();
    let big = ledger_core::dsse::Envelope::new(
        ledger_core::registry::payload_type("note"),
        vec![b' '; ledger_core::dsse::limits::MAX_PAYLOAD + 1],
    );
    let mut big_signed = big.clone();
    big_signed.sign(&reg);
    cases.push(("oversize payload", req(&big_signed, "", false), Code::InvalidArgument));
    let mut not_json =
        ledger_core::dsse::Envelope::new(ledger_core::registry::payload_type("note"), b"{not json".to_vec());
    not_json.sign(&reg);
    cases.push(("invalid JSON", req(&not_json, "", false), Code::InvalidArgument));
    let mut not_utf8 =
        ledger_core::dsse::Envelope::new(ledger_core::registry::payload_type("note"), vec![0xff, 0xfe, 0x7b]);
    not_utf8.sign(&reg);
    cases.push(("invalid UTF-8", req(&not_utf8, "", false), Code::InvalidArgument));
    let extra = serde_json::json!({"version": 1, "name": "x", "key": ledger_core::keys::public_key_to_base64(&new_key().verifying_key()), "roles": ["registrar"], "sneaky": true});
    cases.push((
        "unknown field",
        req(&record("key.enroll", extra, &[&admin]), "", false),
        Code::InvalidArgument,
    ));
    let unsigned =
        ledger_core::dsse::Envelope::new(ledger_core::registry::payload_type("note"), b"{\"version\":1}".to_vec());
    cases.push(("empty signature list", req(&unsigned, "", false), Code::InvalidArgument));
    let mut bad_kid = record("note", note_payload(1), &[&reg]);
    bad_kid.signatures[0].keyid = "k".repeat(500);
    cases.push(("malformed key id", req(&bad_kid, "", false), Code::InvalidArgument));
    let mut forged = record("note", note_payload(1), &[&reg]);
    forged.signatures[0].sig[0] ^= 1;
    cases.push(("forged signature", req(&forged, "", false), Code::InvalidArgument));
    let mut unknown_type = record("note", note_payload(1), &[&reg]);
    unknown_type.payload_type = "application/json".into();
    cases.push((
        "unknown payload type",
        req(&unknown_type, "", false),
        Code::InvalidArgument,
    ));
    cases.push(("missing envelope", pb::AppendRequest::default(), Code::InvalidArgument));
    let ok = record("note", note_payload(1), &[&reg]);
    cases.push((
        "over-long request id",
        req(&ok, &"r".repeat(200), false),
        Code::InvalidArgument,
    ));
    let charter_again = record("charter", serde_json::json!({"version": 1}), &[&admin]);
    cases.push(("second charter", req(&charter_again, "", false), Code::InvalidArgument));

    for (what, r, code) in cases {
        let e = c.append(r).await.expect_err(what);
        assert_eq!(e.code(), code, "{what}: {e}");
        assert!(!e.message().is_empty(), "{what}: empty message");
    }
    // A huge batch.
    let items: Vec<pb::AppendRequest> = (0..10_001).map(|_| req(&ok, "", false)).collect();
    let e = c
        .append_batch(pb::AppendBatchRequest {
            items,
            wait_for_checkpoint: false,
        })
        .await
        .expect_err("huge batch");
    assert_eq!(e.code(), Code::InvalidArgument);
    // A mixed batch: good items land, bad ones get per-item errors.
    let items = vec![
        req(&ok, "", false),
        req(&forged, "", false),
        req(&record("note", note_payload(9), &[&reg]), "", false),
    ];
    let r = c
        .append_batch(pb::AppendBatchRequest {
            items,
            wait_for_checkpoint: true,
        })
        .await
        .expect("batch")
        .into_inner();
    assert!(r.results[0].ok.is_some() && r.results[2].ok.is_some());
    assert_eq!(r.results[1].error_code, Code::InvalidArgument as i32);
    assert!(!r.checkpoint.is_empty());
    // Proofs for sizes that do not exist.
    let e = c
        .get_consistency_proof(pb::GetConsistencyProofRequest {
            old_size: 5,
            new_size: 1_000_000,
        })
        .await
        .expect_err("beyond");
    assert_eq!(e.code(), Code::OutOfRange);
    let e = c
        .get_entry(pb::GetEntryRequest { index: 999_999 })
        .await
        .expect_err("missing");
    assert_eq!(e.code(), Code::NotFound);
    // Still serving; only the two good batch items were added.
    assert_eq!(size(&mut c).await, before + 2);
}

/// `--cache-mb` bounds the store's page cache; a value of 0 (or absurdly large) is refused at
/// start-up with a message naming the flag, and nothing is served.
#[test]
fn cache_size_out_of_range_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, "ledger.test/cache", &[], 1);
    for bad in ["0", "2000000"] {
        let e = match Node::try_start_with(&data, &["--cache-mb", bad]) {
            Ok(_) => panic!("--cache-mb {bad} was accepted"),
            Err(e) => e,
        };
        assert!(e.contains("--cache-mb must be between 1 and 1048576"), "{e}");
    }
    let mut node = Node::try_start_with(&data, &["--cache-mb", "16"]).expect("a small cache starts");
    node.stop();
}
