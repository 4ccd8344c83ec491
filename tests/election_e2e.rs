//! Elections, micro-evaluations and sealed complaints over real gRPC (docs/ballots.md): draw →
//! election → blind credentials to the drawn evaluators → anonymous ballots → the node's tally at
//! close, recomputed by the verifier; every attack of the issue refused by the node with its rule
//! code, or named by the verifier in a log re-signed by an operator holding the node key; and the
//! court's unsealing of a malicious false report, checked by anyone without the escrow key.

#[path = "support/mod.rs"]
mod support;

use base64::Engine as _;
use ledger_core::compact::CompactTree;
use ledger_core::credential::{Credential, IssuerKey};
use ledger_core::dsse::Envelope;
use ledger_core::entry::Entry;
use ledger_core::hash::{Hash, leaf_hash};
use ledger_core::keys::key_id;
use ledger_core::registry::payload_type_in;
use ledger_core::seal::{EscrowSecretKey, seal_identity};
use ledger_proto::pb;
use serde_json::{Value, json};
use std::process::Command;
use support::*;
use tonic::Code;

const TEST_ONLY_ISSUER_PEM: &str = include_str!("../crates/ledger-core/tests/data/TEST_ONLY_credential_key.pem");

fn verify_bin() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_ledger-verify"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn election_micro_evaluations_and_sealed_complaints() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, "ledger.test/election", &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let node_sk = key(&data.join("keys/node.key"));
    let (reg, insp, platform, petitions, comm) = (new_key(), new_key(), new_key(), new_key(), new_key());
    let node = Node::start(&data);
    let mut c = node.client().await;
    for (k, name, role) in [
        (&reg, "registrar", "registrar"),
        (&insp, "discipline inspection", "inspector"),
        (&platform, "government service platform", "service-platform"),
        (&petitions, "petition office", "data-source"),
        (&comm, "committee member", "committee-member"),
    ] {
        append(&mut c, &enroll(k, name, &[role], &[&admin]), "")
            .await
            .expect("enroll");
    }

    // The draw that selects the evaluators (3 of 6).
    let drawn = evaluator_draw(&mut c, &reg, "draw-e", 6, 8).await;
    let outsider = (0..6)
        .map(|i| format!("ev-{i:02}"))
        .find(|id| !drawn.contains(id))
        .expect("an undrawn pool member");

    // The election: open now, closes in a few seconds.
    let issuer = IssuerKey::from_pem(TEST_ONLY_ISSUER_PEM).expect("test issuer key");
    let close = now_micros() + 5_000_000;
    let open = json!({"version": 1, "election_id": "el-1", "subjects": ["cadre-1"], "draw_id": "draw-e",
        "weights": {"political": 20, "performance": 20, "integrity": 15, "public_opinion": 30, "responsibility": 15},
        "score_min": 0, "score_max": 100, "opens_at_micros": now_micros(), "closes_at_micros": close,
        "credential_suite": "RSABSSA-SHA384-PSS-Randomized",
        "credential_key": issuer.public_key().to_base64().expect("key")});
    append(&mut c, &record("election.open", open.clone(), &[&reg]), "")
        .await
        .expect("open");

    // Credentials only to drawn evaluators, once each.
    let issued = |ev: &str| json!({"version": 1, "election_id": "el-1", "evaluator": ev, "count": 1});
    let e = append(&mut c, &record("credential.issued", issued(&outsider), &[&reg]), "")
        .await
        .expect_err("an evaluator the draw did not select");
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert_eq!(code_of(&e), "CREDENTIAL_NOT_DRAWN", "{}", e.message());
    for ev in &drawn {
        append(&mut c, &record("credential.issued", issued(ev), &[&reg]), "")
            .await
            .expect("credential");
    }
    let e = append(
        &mut c,
        &record("credential.issued", issued(&drawn[0]), &[&reg]),
        "again",
    )
    .await
    .expect_err("a second credential");
    assert_eq!(code_of(&e), "CREDENTIAL_DUPLICATE", "{}", e.message());

    // Ballots, signed by one-time keys the registry never saw.
    let scores = [[80, 90, 70, 60, 85], [90, 70, 80, 100, 75], [60, 60, 60, 60, 60]];
    let mut creds = Vec::new();
    let mut ballot_idx = Vec::new();
    for s in scores {
        let (k, cred) = obtain(&issuer, "el-1");
        let r = append(&mut c, &ballot("el-1", &k, &cred, s), "").await.expect("ballot");
        ballot_idx.push(r.index);
        creds.push((k, cred));
    }
    // Attacks: no credential (garbage), a credential for another key, a reused credential.
    let stranger = new_key();
    let garbage = Credential::from_parts(&[7; 32], &[1u8; 256]);
    let e = append(&mut c, &ballot("el-1", &stranger, &garbage, [1; 5]), "")
        .await
        .expect_err("forged credential");
    assert_eq!(code_of(&e), "BALLOT_INELIGIBLE", "{}", e.message());
    let e = append(&mut c, &ballot("el-1", &stranger, &creds[0].1, [1; 5]), "")
        .await
        .expect_err("credential of another key");
    assert_eq!(code_of(&e), "BALLOT_INELIGIBLE", "{}", e.message());
    let e = append(&mut c, &ballot("el-1", &creds[0].0, &creds[0].1, [0; 5]), "")
        .await
        .expect_err("reused credential");
    assert_eq!(code_of(&e), "BALLOT_DUPLICATE", "{}", e.message());
    // A ballot signed by an enrolled key (the registrar voting for someone) is refused.
    let mut by_reg = ballot("el-1", &creds[1].0, &creds[1].1, [1; 5]);
    by_reg.signatures.clear();
    by_reg.sign(&reg);
    assert!(
        append(&mut c, &by_reg, "").await.is_err(),
        "a ballot signed by a registry key"
    );

    // Citizen micro-evaluations in one batch; a replayed ticket is refused.
    let items: Vec<pb::AppendRequest> = (0..200u64)
        .map(|n| req(&record("evaluation.micro", micro_payload(n), &[&platform]), "", false))
        .collect();
    let r = c
        .append_batch(pb::AppendBatchRequest {
            items,
            wait_for_checkpoint: false,
        })
        .await
        .expect("batch")
        .into_inner();
    assert!(r.results.iter().all(|x| x.ok.is_some()), "all 200 accepted");
    let e = append(&mut c, &record("evaluation.micro", micro_payload(17), &[&platform]), "")
        .await
        .expect_err("same ticket twice");
    assert_eq!(code_of(&e), "MICRO_DUPLICATE_TICKET", "{}", e.message());

    // Sealed complaint: the escrow (a court) registers its key; the identity is sealed to it.
    let escrow_sk = EscrowSecretKey::from_bytes(rand::random());
    let escrow_pk = escrow_sk.public_key().expect("public key");
    let escrow =
        json!({"version": 1, "escrow_id": "court-1", "public_key": escrow_pk.to_base64(), "holder": "people's court"});
    append(&mut c, &record("escrow.key", escrow, &[&admin]), "")
        .await
        .expect("escrow key");
    let (sealed, kept_opening) =
        seal_identity(&mut rand::rng(), "court-1", &escrow_pk, "cp-9", "citizen 4401-xx-1987").expect("seal");
    let complaint = json!({"version": 1, "complaint_id": "cp-9", "subject": "cadre-1", "category": "bribery",
        "content_hash": Hash::digest(b"complaint text").to_hex(), "organization": "org-1", "sealed_identity": sealed});
    let ci = append(&mut c, &record("complaint", complaint, &[&petitions]), "")
        .await
        .expect("complaint")
        .index;
    let opening = |identity: &str, salt: &str| {
        json!({"version": 1, "accountability_id": "acc-1", "refs": ["cp-9"],
        "responsible": ["complainant of cp-9"], "finding": "fabricated bribery allegation",
        "opening": {"complaint_id": "cp-9", "identity": identity, "salt": salt}})
    };
    let e = append(
        &mut c,
        &record(
            "accountability",
            opening(&kept_opening.identity, &kept_opening.salt),
            &[&insp],
        ),
        "",
    )
    .await
    .expect_err("no malicious finding yet");
    assert_eq!(code_of(&e), "ACCOUNTABILITY_WITHOUT_FINDING", "{}", e.message());
    let v = json!({"version": 1, "verification_id": "v-9", "target_id": "cp-9", "outcome": "malicious_false_report"});
    append(&mut c, &record("verification", v, &[&insp]), "")
        .await
        .expect("verification");

    // The court unseals with the escrow key; anyone checks the opening without it.
    drop(c);
    let key_file = dir.path().join("court.escrow");
    std::fs::write(
        &key_file,
        base64::engine::general_purpose::STANDARD.encode(escrow_sk.to_bytes()),
    )
    .expect("key file");
    let opening_file = dir.path().join("opening.json");
    let data_s = data.to_str().expect("utf8");
    let out = Command::new(verify_bin())
        .args(["unseal", "--data", data_s, "--index", &ci.to_string(), "--key"])
        .arg(&key_file)
        .arg("--out")
        .arg(&opening_file)
        .output()
        .expect("unseal");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let o: Value = serde_json::from_str(&std::fs::read_to_string(&opening_file).expect("opening")).expect("json");
    assert_eq!(o["identity"], "citizen 4401-xx-1987");
    assert_eq!(o["salt"], kept_opening.salt);
    let check = |file: &std::path::Path| {
        Command::new(verify_bin())
            .args(["check-opening", "--data", data_s, "--opening"])
            .arg(file)
            .output()
            .expect("check-opening")
    };
    let ok = check(&opening_file);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stdout));
    let mut lie = o.clone();
    lie["identity"] = json!("an innocent neighbour");
    let lie_file = dir.path().join("lie.json");
    std::fs::write(&lie_file, lie.to_string()).expect("write");
    let bad = check(&lie_file);
    assert_eq!(bad.status.code(), Some(1), "{}", String::from_utf8_lossy(&bad.stdout));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("MISMATCH"));
    let wrong_key = dir.path().join("wrong.escrow");
    std::fs::write(&wrong_key, base64::engine::general_purpose::STANDARD.encode([9u8; 32])).expect("key");
    let out = Command::new(verify_bin())
        .args(["unseal", "--data", data_s, "--index", &ci.to_string(), "--key"])
        .arg(&wrong_key)
        .output()
        .expect("unseal");
    assert!(!out.status.success(), "a wrong escrow key opens nothing");

    let mut c = node.client().await;
    let e = append(
        &mut c,
        &record(
            "accountability",
            opening("an innocent neighbour", &kept_opening.salt),
            &[&insp],
        ),
        "",
    )
    .await
    .expect_err("wrong identity");
    assert_eq!(code_of(&e), "OPENING_MISMATCH", "{}", e.message());
    append(
        &mut c,
        &record(
            "accountability",
            opening(&kept_opening.identity, &kept_opening.salt),
            &[&insp],
        ),
        "",
    )
    .await
    .expect("blacklisting the malicious complainant");

    // After the close: a late ballot is refused and the node appends the tally.
    let mut tally = None;
    for _ in 0..150 {
        if let Some(t) = entries(&mut c).await.into_iter().find(|e| e.1 == "tally") {
            tally = Some(t);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (ti, _, t, signers) = tally.unwrap_or_else(|| {
        panic!(
            "the node tallies at close (now {}, close {close}); node log:\n{}",
            now_micros(),
            std::fs::read_to_string(data.with_extension("node.log")).unwrap_or_else(|e| e.to_string())
        )
    });
    assert_eq!(signers, vec![key_id(&node_sk.verifying_key())]);
    assert_eq!(t["ballot_count"], 3);
    assert_eq!(t["ballot_indices"], json!(ballot_idx));
    // (20·230 + 20·220 + 15·210 + 30·220 + 15·220) / (100·3) = 22050 / 300 = 73.5
    assert_eq!(t["results"][0]["weighted_score"], "73.5000", "{t}");
    // A decision may rely on the tallied election.
    let nom =
        json!({"version": 1, "nomination_id": "nom-1", "subject": "cadre-1", "post": "head", "organization": "org-1"});
    append(&mut c, &record("nomination", nom, &[&reg]), "")
        .await
        .expect("nomination");
    let dec = json!({"version": 1, "decision_id": "dec-1", "subject": "cadre-1", "nomination_id": "nom-1",
        "evaluation_ref": "el-1", "outcome": "promote", "post": "head"});
    append(&mut c, &record("decision", dec, &[&comm]), "")
        .await
        .expect("decision citing the election");
    let (late_k, late_cred) = obtain(&issuer, "el-1");
    let e = append(&mut c, &ballot("el-1", &late_k, &late_cred, [1; 5]), "")
        .await
        .expect_err("after close");
    assert!(
        ["BALLOT_LATE", "MORE_BALLOTS_THAN_CREDENTIALS"].contains(&code_of(&e).as_str()),
        "{}",
        e.message()
    );
    drop(c);
    drop(node);

    // The verifier replays everything (credentials, ballots, tally recomputed): clean.
    let out = Command::new(verify_bin())
        .args(["replay", "--data", data_s])
        .output()
        .expect("replay");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let rj = dir.path().join("review.json");
    let out = Command::new(verify_bin())
        .args(["review", "--data", data_s, "--json"])
        .arg(&rj)
        .output()
        .expect("review");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&rj).expect("json")).expect("json");
    let flags = r["flags"].as_array().expect("flags");
    let mal = flags
        .iter()
        .find(|f| f["code"] == "MALICIOUS_FALSE_REPORT")
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(
        mal["accountability"]["complainant (unsealed)"][0],
        "citizen 4401-xx-1987"
    );
    let rated: u64 = r["micro"]
        .as_array()
        .expect("micro")
        .iter()
        .map(|m| m["count"].as_u64().expect("count"))
        .sum();
    assert_eq!(rated, 200, "{text}");
    // The pool had no keys: every credential was issued on the registrar's word alone.
    let el1 = r["credentials"]
        .as_array()
        .expect("credentials")
        .iter()
        .find(|e| e["election_id"] == "el-1")
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(
        (
            &el1["issued"],
            &el1["requested"],
            &el1["registrar_word"],
            &el1["with_key"]
        ),
        (&json!(3), &json!(0), &json!(3), &json!(0)),
        "{text}"
    );

    // An operator holding the node key rewrites history after the fact and re-signs a perfectly
    // chained log: an altered tally, or a ballot dropped from it, is named by the verifier.
    let store = ledger_store::Store::open_read_only(&data.join("store")).expect("store");
    let size = store.size().expect("size");
    let envs: Vec<(u64, Envelope)> = (0..size)
        .map(|i| {
            let e = Entry::decode(&store.entry(i).expect("read").expect("entry")).expect("decode");
            (e.timestamp_micros, e.envelope)
        })
        .collect();
    drop(store);
    let forge = |name: &str, edit: &dyn Fn(&mut Value)| {
        let mut tv = t.clone();
        edit(&mut tv);
        let mut env = Envelope::new(
            payload_type_in("tally", current_origin().as_deref()),
            serde_json::to_vec(&tv).expect("json"),
        );
        env.sign(&node_sk);
        let mut envs = envs.clone();
        envs[ti as usize].1 = env;
        let d = dir.path().join(name);
        write_log(&d, &envs);
        let out = Command::new(verify_bin())
            .args(["replay", "--data", d.to_str().expect("utf8"), "--json"])
            .arg(d.with_extension("json"))
            .output()
            .expect("replay");
        assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
        let j: Value =
            serde_json::from_str(&std::fs::read_to_string(d.with_extension("json")).expect("json")).expect("json");
        let faults = j["faults"].as_array().expect("faults");
        assert!(
            faults.iter().any(|f| f["code"] == "TALLY_MISMATCH" && f["index"] == ti),
            "{name}: {faults:?}"
        );
        // Only the tally is wrong (the chain and signatures are perfect); the decision that relied on
        // the election is named too, since a rejected tally leaves the election untallied.
        assert!(
            faults
                .iter()
                .all(|f| f["code"] == "TALLY_MISMATCH" || f["code"] == "DECISION_WITHOUT_EVALUATION"),
            "{name}: {faults:?}"
        );
        assert_eq!(faults.len(), 2, "{name}: {faults:?}");
    };
    forge("altered", &|v| {
        v["results"][0]["weighted_score"] = json!("95.0000");
    });
    forge("dropped", &|v| {
        v["ballot_count"] = json!(2);
        v["ballot_indices"] = json!(&ballot_idx[..2]);
    });
}

/// Writes (timestamp, envelope) pairs as a fresh, correctly chained log (what an operator holding
/// the node key could produce).
fn write_log(dir: &std::path::Path, envs: &[(u64, Envelope)]) {
    let store = ledger_store::Store::open(dir).expect("store");
    let mut tree = CompactTree::new();
    let mut group = Vec::new();
    let mut nodes = Vec::new();
    for (i, (ts, env)) in envs.iter().enumerate() {
        let leaf = Entry {
            index: i as u64,
            timestamp_micros: *ts,
            prev_root: tree.root(),
            envelope: env.clone(),
        }
        .encode();
        let lh = leaf_hash(&leaf);
        tree.append_with(lh, |n| nodes.push(n));
        group.push(ledger_store::PreparedEntry {
            index: i as u64,
            leaf,
            leaf_hash: lh,
            request: None,
            terms: vec![],
            tickets: Vec::new(),
        });
    }
    store.commit_group(&group, &nodes, tree.size(), None).expect("commit");
}
