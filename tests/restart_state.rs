//! Restart drift (issue 12 item 4): the node folds its whole log into its state at start-up with the
//! same step the sequencer and the verifier use, so a restart forgets nothing. Through real gRPC
//! against the real binary: a node restarted mid-election keeps the election's credentials and
//! ballots (a double vote is refused after the restart, the remaining ballot is accepted, and the
//! tally at close counts the ballots from both sides of the restart); a micro-evaluation ticket
//! and an escrow id used before the restart are still refused after it; and `ledger-verify replay`
//! of the log says OK.

#[path = "support/mod.rs"]
mod support;

use ed25519_dalek::SigningKey;
use ledger_core::credential::{Credential, IssuerKey};
use ledger_core::seal::EscrowSecretKey;
use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;
use support::*;
use tonic::Code;

const TEST_ONLY_ISSUER_PEM: &str = include_str!("../crates/ledger-core/tests/data/TEST_ONLY_credential_key.pem");

fn escrow_key(id: &str) -> Value {
    let pk = EscrowSecretKey::from_bytes(rand::random())
        .public_key()
        .expect("public key");
    json!({"version": 1, "escrow_id": id, "public_key": pk.to_base64(), "holder": "people's court"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_forgets_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, "ledger.test/restart", &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let (reg, platform) = (new_key(), new_key());
    let mut node = Node::start(&data);
    let mut c = node.client().await;
    append(&mut c, &enroll(&reg, "registrar", &["registrar"], &[&admin]), "")
        .await
        .expect("enroll registrar");
    enroll_platform(&mut c, &platform, &admin).await;

    // The draw that selects the evaluators (3 of 5): commit at 3, filler at 4, reveal at 5 ≥ T = 5.
    let drawn = evaluator_draw(&mut c, &reg, "draw-r", 5, 5).await;

    // Micro-evaluations and an escrow key before the restart.
    let r = rate_batch(&mut c, &platform, 0..20).await;
    assert!(r.results.iter().all(|x| x.ok.is_some()), "all 20 accepted");
    append(&mut c, &record("escrow.key", escrow_key("court-1"), &[&admin]), "")
        .await
        .expect("escrow key");

    // The election: open now, closing after the restart.
    let issuer = IssuerKey::from_pem(TEST_ONLY_ISSUER_PEM).expect("test issuer key");
    let close = now_micros() + 8_000_000;
    let open = json!({"version": 1, "election_id": "el-r", "subjects": ["cadre-1"], "draw_id": "draw-r",
        "weights": {"political": 20, "performance": 20, "integrity": 15, "public_opinion": 30, "responsibility": 15},
        "score_min": 0, "score_max": 100, "opens_at_micros": now_micros(), "closes_at_micros": close,
        "credential_suite": "RSABSSA-SHA384-PSS-Randomized",
        "credential_key": issuer.public_key().to_base64().expect("key")});
    append(&mut c, &record("election.open", open, &[&reg]), "")
        .await
        .expect("open");
    let issued = |ev: &str| json!({"version": 1, "election_id": "el-r", "evaluator": ev, "count": 1});
    for ev in &drawn {
        append(&mut c, &record("credential.issued", issued(ev), &[&reg]), "")
            .await
            .expect("credential");
    }
    let scores = [[80, 90, 70, 60, 85], [90, 70, 80, 100, 75], [60, 60, 60, 60, 60]];
    let voters: Vec<(SigningKey, Credential)> = (0..3).map(|_| obtain(&issuer, "el-r")).collect();
    let mut ballot_idx = Vec::new();
    for (i, (k, cred)) in voters.iter().enumerate().take(2) {
        let r = append(&mut c, &ballot("el-r", k, cred, scores[i]), "")
            .await
            .expect("ballot before the restart");
        ballot_idx.push(r.index);
    }

    // Restart mid-election (a clean stop, as an operator's upgrade would do).
    drop(c);
    node.stop();
    assert!(
        now_micros() < close,
        "the test machine is too slow: the election closed before the restart"
    );
    node = Node::start(&data);
    let mut c = node.client().await;

    // Everything decided before the restart still binds.
    let e = rate(&mut c, &platform, 7)
        .await
        .expect_err("a ticket rated before the restart");
    assert_eq!(e.code(), Code::FailedPrecondition, "{}", e.message());
    assert_eq!(code_of(&e), "MICRO_DUPLICATE_TICKET", "{}", e.message());
    let e = append(&mut c, &record("escrow.key", escrow_key("court-1"), &[&admin]), "")
        .await
        .expect_err("a second escrow.key with the same id");
    assert_eq!(e.code(), Code::AlreadyExists, "{}", e.message());
    assert_eq!(code_of(&e), "ESCROW_DUPLICATE", "{}", e.message());
    let e = append(&mut c, &record("credential.issued", issued(&drawn[0]), &[&reg]), "")
        .await
        .expect_err("a second credential for an evaluator");
    assert_eq!(code_of(&e), "CREDENTIAL_DUPLICATE", "{}", e.message());
    let e = append(&mut c, &ballot("el-r", &voters[0].0, &voters[0].1, [0; 5]), "")
        .await
        .expect_err("a double vote across the restart");
    assert_eq!(e.code(), Code::FailedPrecondition, "{}", e.message());
    assert_eq!(code_of(&e), "BALLOT_DUPLICATE", "{}", e.message());
    // The last ballot is accepted: the election is still open and its credentials known.
    let r = append(&mut c, &ballot("el-r", &voters[2].0, &voters[2].1, scores[2]), "")
        .await
        .expect("ballot after the restart");
    ballot_idx.push(r.index);
    assert!(
        now_micros() < close,
        "the test machine is too slow: the election closed too early"
    );

    // At close the node appends the tally of all three ballots, as without a restart.
    let mut tally = None;
    for _ in 0..200 {
        if let Some(t) = entries(&mut c).await.into_iter().find(|e| e.1 == "tally") {
            tally = Some(t);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, _, t, _) = tally.unwrap_or_else(|| {
        panic!(
            "the node tallies at close (now {}, close {close}); node log:\n{}",
            now_micros(),
            std::fs::read_to_string(data.with_extension("node.log")).unwrap_or_else(|e| e.to_string())
        )
    });
    assert_eq!(t["election_id"], "el-r");
    assert_eq!(t["ballot_count"], 3, "{t}");
    assert_eq!(t["ballot_indices"], json!(ballot_idx), "{t}");
    // (20·230 + 20·220 + 15·210 + 30·220 + 15·220) / (100·3) = 22050 / 300 = 73.5
    assert_eq!(t["results"][0]["weighted_score"], "73.5000", "{t}");
    drop(c);
    node.stop();

    // A second restart after the close: the election is tallied once, never again.
    node = Node::start(&data);
    let mut c = node.client().await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let tallies = entries(&mut c).await.into_iter().filter(|e| e.1 == "tally").count();
    assert_eq!(tallies, 1, "one tally per election, also across restarts");
    drop(c);
    node.stop();

    assert!(replay_data_ok(&data).contains("OK"));
}

/// A log written under older rules (here: a second `escrow.key` with the same id, written into the
/// store by an operator with the node key, as a node without the rule would have accepted it): the
/// node still starts, names the entry in its log and leaves it out of its state exactly as
/// `ledger-verify replay` does — which names it `ESCROW_DUPLICATE` — and the id stays taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_leaves_out_what_replay_names() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    let origin = "ledger.test/older-rules";
    init(&data, origin, &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let node_sk = key(&data.join("keys/node.key"));
    {
        let store = ledger_store::Store::open(&data.join("store")).expect("store");
        let mut tree = store.compact_tree().expect("tree");
        let t0 = store.timestamp(0).expect("ts").expect("charter");
        let (mut group, mut nodes) = (Vec::new(), Vec::new());
        for env in [
            record("escrow.key", escrow_key("court-1"), &[&admin]),
            record("escrow.key", escrow_key("court-1"), &[&admin]),
        ] {
            let leaf = ledger_core::entry::Entry {
                index: tree.size(),
                timestamp_micros: t0 + tree.size(),
                prev_root: tree.root(),
                envelope: env,
            }
            .encode();
            let lh = ledger_core::hash::leaf_hash(&leaf);
            group.push(ledger_store::PreparedEntry {
                index: tree.size(),
                leaf,
                leaf_hash: lh,
                request: None,
                terms: vec![(ledger_store::IndexTag::Kind, "escrow.key".to_string())],
                tickets: Vec::new(),
            });
            tree.append_with(lh, |n| nodes.push(n));
        }
        let signer = ledger_core::note::NoteSigner::new(origin, node_sk).expect("signer");
        let cp = ledger_core::checkpoint::Checkpoint {
            origin: origin.into(),
            size: tree.size(),
            root: tree.root(),
            extensions: vec![],
        }
        .sign(&signer)
        .expect("sign")
        .to_text();
        store
            .commit_group(&group, &nodes, tree.size(), Some((tree.size(), &cp)))
            .expect("commit");
        store.flush().expect("flush");
    }

    let mut node = Node::start(&data);
    let mut c = node.client().await;
    let e = append(&mut c, &record("escrow.key", escrow_key("court-1"), &[&admin]), "")
        .await
        .expect_err("the id is taken by entry 1");
    assert_eq!(code_of(&e), "ESCROW_DUPLICATE", "{}", e.message());
    append(&mut c, &record("escrow.key", escrow_key("court-2"), &[&admin]), "")
        .await
        .expect("a new id");
    drop(c);
    node.stop();
    let log = std::fs::read_to_string(data.with_extension("node.log")).unwrap_or_default();
    assert!(
        log.contains("left out of the state") && log.contains("ESCROW_DUPLICATE"),
        "{log}"
    );

    let json = dir.path().join("replay.json");
    let out = Command::new(bin("ledger-verify"))
        .args(["replay", "--data", data.to_str().expect("utf8"), "--json"])
        .arg(&json)
        .output()
        .expect("replay");
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let j: Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("json");
    let faults = j["faults"].as_array().expect("faults");
    assert_eq!(faults.len(), 1, "{faults:?}");
    assert_eq!(faults[0]["code"], "ESCROW_DUPLICATE", "{faults:?}");
    assert_eq!(faults[0]["index"], 2, "{faults:?}");
}
