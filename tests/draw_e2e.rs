//! Verifiable draws over real gRPC: commit → (log reaches T) → reveals → the node appends the
//! result itself; every manipulation of the cycle is refused with the rule it breaks.

mod support;

use ledger_core::hash::Hash;
use ledger_core::keys::key_id;
use ledger_proto::pb;
use support::*;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_draw_cycle_and_manipulations() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, "ledger.test/draw", &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let (reg, insp) = (new_key(), new_key());
    let node = Node::start(&data);
    let mut c = node.client().await;
    append(
        &mut c,
        &enroll(&reg, "registrar", &["registrar", "nominator"], &[&admin]),
        "",
    )
    .await
    .expect("enroll");
    append(
        &mut c,
        &enroll(&insp, "discipline inspection", &["inspector"], &[&admin]),
        "",
    )
    .await
    .expect("enroll");
    let nom = serde_json::json!({"version":1,"nomination_id":"nom-1","subject":"cadre-1","post":"head","organization":"org-1"});
    append(&mut c, &record("nomination", nom, &[&reg]), "")
        .await
        .expect("nomination");

    let (s1, s2) = (b"registrar secret 1".to_vec(), b"inspector secret 2".to_vec());
    let pool: Vec<serde_json::Value> = (0..10)
        .map(|i| serde_json::json!({"id": format!("ev-{i:02}"), "stratum": if i % 2 == 0 { "residents" } else { "enterprises" }}))
        .collect();
    let t = 8u64; // the log has 4 entries now; the commit is entry 4
    let commit = serde_json::json!({
        "version": 1, "draw_id": "draw-1", "purpose": "evaluator_selection", "subjects": ["cadre-1"],
        "pool": pool, "strata": [{"name": "residents", "quota": 2}, {"name": "enterprises", "quota": 1}],
        "exclusions": [{"id": "ev-04", "reason": "relative of the subject"}], "k": 3, "algorithm": "ledger-draw-v1",
        "parties": [
            {"name": "registrar", "keyid": key_id(&reg.verifying_key()), "commitment": Hash::digest(&s1).to_hex()},
            {"name": "inspection", "keyid": key_id(&insp.verifying_key()), "commitment": Hash::digest(&s2).to_hex()}
        ],
        "reveal_at_size": t, "reveal_deadline_micros": 4_000_000_000_000_000u64
    });
    let cr = append(&mut c, &record("draw.commit", commit.clone(), &[&reg]), "")
        .await
        .expect("commit");
    assert_eq!(cr.index, 4);
    // The same draw id again (a redraw) is refused.
    let e = append(&mut c, &record("draw.commit", commit.clone(), &[&reg]), "again")
        .await
        .expect_err("redraw");
    assert_eq!(e.code(), Code::AlreadyExists);
    assert!(e.message().contains("DUPLICATE_DRAW"), "{}", e.message());

    let reveal = |party: &str, secret: &[u8]| serde_json::json!({"version": 1, "draw_id": "draw-1", "party": party, "secret": hex::encode(secret)});
    // Too early: the log has not reached T.
    let e = append(&mut c, &record("draw.reveal", reveal("registrar", &s1), &[&reg]), "")
        .await
        .expect_err("early");
    assert!(e.message().contains("REVEAL_TOO_EARLY"), "{}", e.message());
    for i in 0..3 {
        append(&mut c, &record("note", note_payload(i), &[&reg]), "")
            .await
            .expect("filler");
    }
    // Wrong secret, wrong signer.
    let e = append(
        &mut c,
        &record("draw.reveal", reveal("registrar", b"another"), &[&reg]),
        "",
    )
    .await
    .expect_err("mismatch");
    assert!(e.message().contains("REVEAL_MISMATCH"), "{}", e.message());
    let e = append(&mut c, &record("draw.reveal", reveal("inspection", &s2), &[&reg]), "")
        .await
        .expect_err("signer");
    assert!(e.message().contains("REVEAL_WRONG_SIGNER"), "{}", e.message());
    // A decision before the draw is complete is refused.
    let dec = serde_json::json!({"version":1,"decision_id":"dec-1","subject":"cadre-1","nomination_id":"nom-1","evaluation_ref":"draw-1","outcome":"promote","post":"head"});
    let e = append(&mut c, &record("decision", dec.clone(), &[&reg]), "")
        .await
        .expect_err("early decision");
    assert!(e.message().contains("DECISION_WITHOUT_EVALUATION"), "{}", e.message());

    append(&mut c, &record("draw.reveal", reveal("registrar", &s1), &[&reg]), "")
        .await
        .expect("reveal 1");
    let last = append(&mut c, &record("draw.reveal", reveal("inspection", &s2), &[&insp]), "")
        .await
        .expect("reveal 2");
    // The node appended the result right after the last reveal.
    let e = c
        .get_entry(pb::GetEntryRequest { index: last.index + 1 })
        .await
        .expect("result entry")
        .into_inner();
    let entry = ledger_proto::entry_from_wire(&e).expect("entry");
    assert_eq!(
        entry.envelope.payload_type,
        ledger_core::registry::payload_type_for_log("draw.result", "ledger.test/draw")
    );
    let result: ledger_core::domain::DrawResult = serde_json::from_slice(&entry.envelope.payload).expect("result");

    // Recompute independently from public data: the commit's leaf hash, the root at T, the secrets.
    let commit_entry = c
        .get_entry(pb::GetEntryRequest { index: 4 })
        .await
        .expect("commit")
        .into_inner();
    let mut leaves = Vec::new();
    for i in 0..t {
        leaves.push(
            Hash::from_slice(
                &c.get_entry(pb::GetEntryRequest { index: i })
                    .await
                    .expect("e")
                    .into_inner()
                    .leaf_hash,
            )
            .expect("h"),
        );
    }
    let seed = ledger_core::draw::seed(
        &Hash::from_slice(&commit_entry.leaf_hash).expect("h"),
        &ledger_core::merkle::root_of(&leaves),
        &[&s1, &s2],
    );
    assert_eq!(result.seed, seed.to_hex());
    let residents = ["ev-00", "ev-02", "ev-06", "ev-08"]; // ev-04 excluded
    let sel = ledger_core::draw::select_stratified(
        &seed,
        &[
            ledger_core::draw::Stratum {
                name: "residents",
                members: residents.to_vec(),
                quota: 2,
            },
            ledger_core::draw::Stratum {
                name: "enterprises",
                members: vec!["ev-01", "ev-03", "ev-05", "ev-07", "ev-09"],
                quota: 1,
            },
        ],
    )
    .expect("select");
    assert_eq!(result.selection[0].selected, sel[0].1);
    assert_eq!(result.selection[1].selected, sel[1].1);
    assert!(
        !result.selection[0].selected.contains(&"ev-04".to_string()),
        "excluded member drawn"
    );

    // Nobody else may append a result; the decision citing the completed draw is accepted.
    let e = append(
        &mut c,
        &record("draw.result", serde_json::to_value(&result).expect("v"), &[&reg]),
        "",
    )
    .await
    .expect_err("forged result");
    assert_eq!(e.code(), Code::PermissionDenied);
    append(&mut c, &record("decision", dec, &[&reg]), "")
        .await
        .expect("decision");
    let bad = serde_json::json!({"version":1,"verification_id":"v-1","target_id":"no-such-complaint","outcome":"unsubstantiated"});
    let e = append(&mut c, &record("verification", bad, &[&insp]), "")
        .await
        .expect_err("verification target");
    assert!(e.message().contains("VERIFICATION_TARGET_UNKNOWN"), "{}", e.message());
    // Query by draw id shows the whole cycle.
    let q = c
        .query(pb::QueryRequest {
            draw_id: "draw-1".into(),
            ..Default::default()
        })
        .await
        .expect("q")
        .into_inner();
    assert_eq!(q.indices.len(), 4, "commit, two reveals, result: {:?}", q.indices);
    // The verifier replays the whole cycle (re-running the draw) and finds nothing wrong.
    let out = std::process::Command::new(bin("ledger-verify"))
        .args(["replay", "--node", &node.addr])
        .output()
        .expect("ledger-verify");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

/// A party that never reveals: past the deadline the node appends `draw.void` naming it, later
/// reveals are refused, and a cancellation needs a role above the draw's registrar. An RFC 3797
/// draw takes its public source values and the node appends the RFC's selection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_deadline_is_voided_cancellation_authority_and_rfc3797() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, "ledger.test/void", &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let node_key = key_id(&key(&data.join("keys/node.key")).verifying_key());
    let (reg, insp) = (new_key(), new_key());
    let node = Node::start(&data);
    let mut c = node.client().await;
    for (k, name, role) in [(&reg, "registrar", "registrar"), (&insp, "inspection", "inspector")] {
        append(&mut c, &enroll(k, name, &[role], &[&admin]), "")
            .await
            .expect("enroll");
    }
    let (s1, s2) = (b"registrar secret".to_vec(), b"withheld secret".to_vec());
    let pool: Vec<serde_json::Value> = (0..6)
        .map(|i| serde_json::json!({"id": format!("ev-{i:02}"), "stratum": "all"}))
        .collect();
    let deadline = now_micros() + 2_000_000;
    let commit = serde_json::json!({
        "version": 1, "draw_id": "draw-v", "purpose": "evaluator_selection", "subjects": ["cadre-9"],
        "pool": pool, "strata": [{"name": "all", "quota": 2}], "k": 2, "algorithm": "ledger-draw-v1",
        "parties": [
            {"name": "registrar", "keyid": key_id(&reg.verifying_key()), "commitment": Hash::digest(&s1).to_hex()},
            {"name": "inspection", "keyid": key_id(&insp.verifying_key()), "commitment": Hash::digest(&s2).to_hex()}
        ],
        "reveal_at_size": 5, "reveal_deadline_micros": deadline
    });
    let ci = append(&mut c, &record("draw.commit", commit, &[&reg]), "")
        .await
        .expect("commit")
        .index;
    assert_eq!(ci, 3);
    append(&mut c, &record("note", note_payload(1), &[&reg]), "")
        .await
        .expect("filler");
    let reveal = |party: &str, s: &[u8]| serde_json::json!({"version": 1, "draw_id": "draw-v", "party": party, "secret": hex::encode(s)});
    append(&mut c, &record("draw.reveal", reveal("registrar", &s1), &[&reg]), "")
        .await
        .expect("reveal");
    // Wait for the node's void (it checks at least every checkpoint interval).
    let mut void = None;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if let Some(v) = entries(&mut c).await.into_iter().find(|e| e.1 == "draw.void") {
            void = Some(v);
            break;
        }
    }
    let (vi, _, v, signers) = void.expect("the node voids the draw after its deadline");
    assert_eq!(v["draw_id"], "draw-v");
    assert_eq!(v["missing"], serde_json::json!(["inspection"]));
    assert_eq!(v["deadline_micros"], deadline);
    assert_eq!(signers, vec![node_key.clone()], "node-signed");
    let late = append(&mut c, &record("draw.reveal", reveal("inspection", &s2), &[&insp]), "")
        .await
        .expect_err("late reveal");
    assert_eq!(late.code(), Code::FailedPrecondition);
    assert!(late.message().contains("DRAW_CLOSED"), "{}", late.message());
    assert!(
        !entries(&mut c).await.iter().any(|e| e.1 == "draw.result"),
        "no result after a void"
    );

    // Cancellation authority: the registrar may not cancel its own draw; the inspector may.
    let cancel = serde_json::json!({"version": 1, "target_index": ci, "reason": "voided draw, restart ordered"});
    let e = append(&mut c, &record("cancellation", cancel.clone(), &[&reg]), "")
        .await
        .expect_err("registrar cannot cancel a registrar's record");
    assert_eq!(e.code(), Code::PermissionDenied, "{}", e.message());
    assert!(e.message().contains("CANCELLATION_NOT_AUTHORIZED"), "{}", e.message());
    append(&mut c, &record("cancellation", cancel, &[&insp]), "")
        .await
        .expect("inspector cancels");
    let not_cancellable = serde_json::json!({"version": 1, "target_index": vi, "reason": "x"});
    let e = append(&mut c, &record("cancellation", not_cancellable, &[&insp]), "")
        .await
        .expect_err("a node record is not cancellable");
    assert!(e.message().contains("CANCELLATION_TARGET_UNKNOWN"), "{}", e.message());

    // RFC 3797: the pool of the RFC's worked example and its three published sources.
    let pool25: Vec<serde_json::Value> = (1..=25)
        .map(|i| serde_json::json!({"id": format!("m{i:02}"), "stratum": "all"}))
        .collect();
    let commit = serde_json::json!({
        "version": 1, "draw_id": "draw-r", "purpose": "evaluator_selection", "subjects": ["cadre-9"],
        "pool": pool25, "strata": [{"name": "all", "quota": 10}], "k": 10, "algorithm": "rfc3797",
        "sources": ["lottery A", "lottery B", "lottery C"], "reveal_deadline_micros": now_micros() + 600_000_000
    });
    append(&mut c, &record("draw.commit", commit, &[&reg]), "")
        .await
        .expect("rfc3797 commit");
    let sources = serde_json::json!({"version": 1, "draw_id": "draw-r",
        "values": [["9319"], ["2", "5", "12", "8", "10"], ["9", "18", "26", "34", "41", "45"]]});
    let si = append(&mut c, &record("draw.sources", sources, &[&reg]), "")
        .await
        .expect("sources")
        .index;
    let all = entries(&mut c).await;
    let (ri, _, r, signers) = all.iter().find(|e| e.1 == "draw.result").expect("result").clone();
    assert_eq!(ri, si + 1, "the result follows the sources");
    assert_eq!(signers, vec![node_key]);
    let want: Vec<String> = [17, 7, 2, 16, 25, 23, 8, 24, 19, 13]
        .iter()
        .map(|i| format!("m{i:02}"))
        .collect();
    assert_eq!(r["selection"][0]["selected"], serde_json::json!(want));
    assert_eq!(r["key"], "9319./2.5.8.10.12./9.18.26.34.41.45./");
    drop(c);
    drop(node);

    // The verifier replays it all without a fault, and review shows the void with who withheld.
    let out = std::process::Command::new(bin("ledger-verify"))
        .args(["replay", "--data"])
        .arg(&data)
        .output()
        .expect("replay");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let json = dir.path().join("r.json");
    let out = std::process::Command::new(bin("ledger-verify"))
        .args(["review", "--data"])
        .arg(&data)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("review");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("json");
    let flags = r["flags"].as_array().expect("flags");
    let voided = flags.iter().find(|f| f["code"] == "DRAW_VOIDED").expect(&text);
    assert_eq!(voided["index"], vi);
    assert_eq!(voided["accountability"]["did not reveal"][0], "inspection (inspection)");
    assert!(!flags.iter().any(|f| f["code"] == "DRAW_ABANDONED"), "{text}");
    assert!(
        !flags.iter().any(|f| f["code"] == "REDRAW"),
        "the void was cancelled before the redraw: {text}"
    );
}
