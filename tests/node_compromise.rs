//! Issue 18 item 1: declaring a stolen node key compromised on a running node (docs/registry.md,
//! "Node key lifecycle"; docs/operations.md, "Node key stolen"). The administrator quorum alone
//! appends `node.compromise` as of an index; the node, restarted with the new key
//! (`serve --next-node-key`), signs with it from the record on; what the stolen key signed from
//! `as_of` on is named `NODE_KEY_COMPROMISED` by `ledger-verify replay`, `review` and
//! `bundle verify`.

#[path = "support/mod.rs"]
mod support;

use ledger_core::checkpoint::open_checkpoint;
use ledger_core::keys::{key_id, public_key_to_base64};
use ledger_core::note::NoteVerifier;
use ledger_proto::pb;
use std::process::Command;
use support::*;
use tonic::Code;

const ORIGIN: &str = "ledger.test/compromise";

fn compromise(
    keyid: &str,
    as_of: u64,
    new: &ed25519_dalek::SigningKey,
    signers: &[&ed25519_dalek::SigningKey],
) -> ledger_core::dsse::Envelope {
    record(
        "node.compromise",
        serde_json::json!({
            "version": 1,
            "keyid": keyid,
            "as_of": as_of,
            "new_key": public_key_to_base64(&new.verifying_key()),
            "reason": "HSM stolen",
        }),
        signers,
    )
}

async fn latest(c: &mut pb::ledger_client::LedgerClient<tonic::transport::Channel>) -> String {
    c.get_checkpoint(pb::GetCheckpointRequest { size: None })
        .await
        .expect("checkpoint")
        .into_inner()
        .note
}

fn verify_cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ledger-verify"))
        .args(args)
        .output()
        .expect("run ledger-verify")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declare_a_compromise_under_light_load_and_name_what_the_stolen_key_signed() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, ORIGIN, &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let old = key(&data.join("keys/node.key"));
    let old_id = key_id(&old.verifying_key());
    let new = new_key();
    let next_file = dir.path().join("next-node.key");
    ledger_client::keyfile::write_signing_key(&next_file, &new).expect("write next key");
    let next_arg = next_file.to_str().expect("utf-8 path").to_string();
    let old_v = NoteVerifier::new(ORIGIN, old.verifying_key()).expect("verifier");
    let new_v = NoteVerifier::new(ORIGIN, new.verifying_key()).expect("verifier");

    let mut node = Node::try_start_with(&data, &["--next-node-key", &next_arg]).expect("start with the next key");
    let mut c = node.client().await;
    let reg = new_key();
    append(&mut c, &enroll(&reg, "registrar", &["registrar"], &[&admin]), "")
        .await
        .expect("enroll");
    // Light load before the theft is noticed.
    let mut last = 0;
    for i in 1..=10 {
        last = append(&mut c, &record("note", note_payload(i), &[&reg]), "")
            .await
            .expect("note")
            .index;
    }
    // The key is stolen from here on: the draw's result is signed by it.
    let as_of = last + 1;
    let drawn = evaluator_draw(&mut c, &reg, "d1", 5, as_of + 2).await;
    assert_eq!(drawn.len(), 3);
    let all = entries(&mut c).await;
    let result_at = all
        .iter()
        .find(|e| e.1 == "draw.result")
        .map(|e| e.0)
        .expect("the node's draw.result");
    assert!(result_at >= as_of);
    let mid = append(&mut c, &record("note", note_payload(50), &[&reg]), "")
        .await
        .expect("note")
        .index;
    let size_now = mid + 1;

    // Refusals, each through the node's gRPC edge.
    // Not the administrator quorum: a registrar's signature.
    let e = append(&mut c, &compromise(&old_id, as_of, &new, &[&reg]), "")
        .await
        .expect_err("no admin");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(
        e.message()
            .contains("node.compromise needs 1 distinct administrator signatures, got 0"),
        "{e:?}"
    );
    // The (stolen) node key alone cannot declare anything for the administrators.
    let e = append(&mut c, &compromise(&old_id, as_of, &new, &[&old]), "")
        .await
        .expect_err("node key alone");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(
        e.message()
            .contains("node.compromise needs 1 distinct administrator signatures, got 0"),
        "{e:?}"
    );
    // as_of in the future.
    let e = append(&mut c, &compromise(&old_id, size_now + 100, &new, &[&admin]), "")
        .await
        .expect_err("as_of in the future");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("is after this record's own index"), "{e:?}");
    // A keyid that is no node key of this log.
    let e = append(
        &mut c,
        &compromise(&key_id(&reg.verifying_key()), as_of, &new, &[&admin]),
        "",
    )
    .await
    .expect_err("not a node key");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("is not a node key of this log"), "{e:?}");
    // A new key the node was not given.
    let e = append(&mut c, &compromise(&old_id, as_of, &new_key(), &[&admin]), "")
        .await
        .expect_err("new key not held");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().starts_with("NEXT_NODE_KEY_NOT_HELD"), "{e:?}");

    // The declaration by the administrator quorum alone.
    let r = c
        .append(req(&compromise(&old_id, as_of, &new, &[&admin]), "declare-1", true))
        .await
        .expect("declaration")
        .into_inner();
    let at = r.index;
    open_checkpoint(&r.checkpoint, &new_v).expect("the first checkpoint holding the declaration is the new key's");
    let after = append(&mut c, &record("note", note_payload(60), &[&reg]), "")
        .await
        .expect("appends go on");
    assert!(after.index > at);
    let all = entries(&mut c).await;
    let decl = all.iter().find(|e| e.0 == at).expect("declaration entry");
    assert_eq!(decl.1, "node.compromise");
    assert_eq!(
        decl.3,
        vec![key_id(&admin.verifying_key())],
        "signed by the admin alone"
    );
    // A second declaration of the same key is refused.
    let e = append(&mut c, &compromise(&old_id, as_of, &new, &[&admin]), "")
        .await
        .expect_err("same statement");
    assert_eq!(e.code(), Code::AlreadyExists, "{e:?}");
    assert!(open_checkpoint(&latest(&mut c).await, &old_v).is_err());

    // A court bundle of the draw result: the bundle carries the declaration and names the result.
    let bundle = dir.path().join("d1.ledger-bundle.json");
    let charter_vkey = old_v.to_string_key();
    let out = verify_cli(&[
        "bundle",
        "export",
        "--node",
        &node.addr,
        "--trusted-key",
        &charter_vkey,
        "--index",
        &result_at.to_string(),
        "-o",
        bundle.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "export: {}", String::from_utf8_lossy(&out.stderr));
    node.stop();

    // A restart with only the compromised key is refused, naming the declaration.
    let err = Node::try_start(&data)
        .err()
        .expect("refused with only the compromised key");
    assert!(err.contains(&format!("compromised at index {at}")), "{err}");

    let b: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&bundle).expect("bundle")).expect("json");
    assert!(
        b["registry"]
            .as_array()
            .expect("registry")
            .iter()
            .any(|e| e["index"] == at),
        "the bundle carries the declaration"
    );
    let out = verify_cli(&[
        "bundle",
        "verify",
        bundle.to_str().expect("utf-8"),
        "--trusted-key",
        &charter_vkey,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "NODE_KEY_COMPROMISED: this draw.result at index {result_at} is signed by the node key {old_id}, declared compromised as of index {as_of} by the node.compromise record at index {at}"
        )),
        "{text}"
    );
    // The bundle's checkpoint re-signed by the stolen key is named too.
    let body = {
        let n = ledger_core::note::Note::parse(b["checkpoint"].as_str().expect("cp")).expect("note");
        ledger_core::checkpoint::Checkpoint::from_body(&n.text).expect("body")
    };
    let forged = body
        .sign(&ledger_core::note::NoteSigner::new(ORIGIN, old.clone()).expect("signer"))
        .expect("sign")
        .to_text();
    let mut fb = b.clone();
    fb["checkpoint"] = serde_json::Value::String(forged);
    let forged_file = dir.path().join("forged.ledger-bundle.json");
    std::fs::write(&forged_file, serde_json::to_vec(&fb).expect("json")).expect("write");
    let out = verify_cli(&[
        "bundle",
        "verify",
        forged_file.to_str().expect("utf-8"),
        "--trusted-key",
        &charter_vkey,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "NODE_KEY_COMPROMISED: the checkpoint of size {} is signed by the node key {old_id}",
            body.size
        )),
        "{text}"
    );

    // `ledger-verify replay` of the data directory names the draw result, and nothing else
    // but checkpoints of the stolen key over entries from as_of on.
    let json = dir.path().join("replay.json");
    let out = verify_cli(&[
        "replay",
        "--data",
        data.to_str().expect("utf-8"),
        "--json",
        json.to_str().expect("utf-8"),
    ]);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("report")).expect("json");
    assert!(!out.status.success(), "{report}");
    let faults = report["faults"].as_array().expect("faults");
    assert!(
        faults.iter().any(|f| f["code"] == "NODE_KEY_COMPROMISED"
            && f["index"] == result_at
            && f["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("this draw.result at index"))),
        "{report}"
    );
    for f in faults {
        assert_eq!(f["code"], "NODE_KEY_COMPROMISED", "{report}");
        let i = f["index"].as_u64().expect("index");
        assert!(i >= as_of && i <= at, "{report}");
    }
    assert_eq!(report["counts_by_kind"]["node.compromise"], 1);

    // `ledger-verify review`: a finding that says which draw must be re-done.
    let rjson = dir.path().join("review.json");
    let out = verify_cli(&[
        "review",
        "--data",
        data.to_str().expect("utf-8"),
        "--json",
        rjson.to_str().expect("utf-8"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    let review: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&rjson).expect("review")).expect("json");
    let flag = review["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .find(|f| f["code"] == "NODE_KEY_COMPROMISED")
        .unwrap_or_else(|| panic!("no NODE_KEY_COMPROMISED flag: {review}"));
    assert_eq!(flag["index"], result_at);
    assert_eq!(flag["subject"], "cadre-1");
    assert_eq!(
        flag["message"],
        format!(
            "draw.result of d1 is signed by the node key {old_id}, declared compromised as of index {as_of} by the \
             node.compromise record at index {at}: it must be re-done under the new node key"
        )
    );

    // The same through an export of the store.
    let exp = dir.path().join("log.export");
    let out = Command::new(bin("ledger-node"))
        .args(["export", "--data"])
        .arg(&data)
        .arg("-o")
        .arg(&exp)
        .output()
        .expect("export");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json2 = dir.path().join("replay2.json");
    let out = verify_cli(&[
        "replay",
        "--export",
        exp.to_str().expect("utf-8"),
        "--json",
        json2.to_str().expect("utf-8"),
    ]);
    assert!(!out.status.success());
    let report2: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json2).expect("report")).expect("json");
    assert_eq!(report2["faults"], report["faults"], "{report2}");

    // With the new key the node serves and signs with it.
    let mut node = Node::try_start_with(&data, &["--next-node-key", &next_arg]).expect("restart with the new key");
    let mut c = node.client().await;
    let r = c
        .append(req(&record("note", note_payload(70), &[&reg]), "", true))
        .await
        .expect("append after restart")
        .into_inner();
    open_checkpoint(&r.checkpoint, &new_v).expect("the new key's after restart");
    node.stop();
}

/// Starts `ledger-node witness` named `name` trusting `log_keys`; returns it, its address and its
/// cosignature verifier.
fn start_witness(
    wdir: &std::path::Path,
    name: &str,
    log_keys: &[String],
) -> (
    std::process::Child,
    String,
    ledger_core::cosignature::CosignatureVerifier,
) {
    let mut c = Command::new(bin("ledger-node"));
    c.args(["witness", "--listen", "127.0.0.1:0", "--name", name, "--data"])
        .arg(wdir);
    for k in log_keys {
        c.args(["--log-key", k]);
    }
    let (child, addr, before) = spawn_listening(c);
    let key = before
        .iter()
        .find_map(|l| l.strip_prefix("witness key "))
        .map(|k| ledger_core::cosignature::CosignatureVerifier::parse(k).expect("witness vkey"))
        .expect("the witness prints its key");
    (child, addr, key)
}

fn enroll_witness(
    w: &ledger_core::cosignature::CosignatureVerifier,
    admin: &ed25519_dalek::SigningKey,
) -> ledger_core::dsse::Envelope {
    record(
        "key.enroll",
        serde_json::json!({
            "version": 1, "name": w.name,
            "key": public_key_to_base64(w.ed25519_key().expect("an Ed25519 witness key")),
            "roles": ["witness"], "scope": {"organization": "court", "kinds": []}
        }),
        &[admin],
    )
}

/// The size and note of the latest checkpoint `addr`'s witness cosigned for this log.
async fn witness_latest(addr: &str) -> Option<(u64, String)> {
    let mut wc = pb::witness_client::WitnessClient::connect(addr.to_string())
        .await
        .ok()?;
    let note = wc
        .get_latest(pb::GetLatestRequest { origin: ORIGIN.into() })
        .await
        .ok()?
        .into_inner()
        .checkpoint;
    let n = ledger_core::note::Note::parse(&note).ok()?;
    let size = ledger_core::checkpoint::Checkpoint::from_body(&n.text).ok()?.size;
    Some((size, note))
}

/// The node refuses an `as_of` below the latest checkpoint the witness quorum cosigned; after the
/// declaration a witness given the new key keeps cosigning, and a witness that still knows only
/// the stolen key does not cosign the new key's checkpoints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn witnesses_bound_as_of_and_follow_only_the_key_they_are_given() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init_with_quorum(&data, ORIGIN, 1);
    let admin = key(&data.join("keys/admin.key"));
    let old = key(&data.join("keys/node.key"));
    let old_id = key_id(&old.verifying_key());
    let new = new_key();
    let next_file = dir.path().join("next-node.key");
    ledger_client::keyfile::write_signing_key(&next_file, &new).expect("write next key");
    let next_arg = next_file.to_str().expect("utf-8 path").to_string();
    let old_v = NoteVerifier::new(ORIGIN, old.verifying_key()).expect("verifier");
    let new_v = NoteVerifier::new(ORIGIN, new.verifying_key()).expect("verifier");
    // The operator of `told` adds the new key when the compromise is announced; `stale` keeps
    // only the old one.
    let (mut told, told_addr, told_key) = start_witness(
        &dir.path().join("w1"),
        "witness.test/told",
        &[old_v.to_string_key(), new_v.to_string_key()],
    );
    let (mut stale, stale_addr, stale_key) =
        start_witness(&dir.path().join("w2"), "witness.test/stale", &[old_v.to_string_key()]);
    let w1 = format!("{told_addr}={}", told_key.to_string_key());
    let w2 = format!("{stale_addr}={}", stale_key.to_string_key());
    let mut node = Node::try_start_with(
        &data,
        &["--witness", &w1, "--witness", &w2, "--next-node-key", &next_arg],
    )
    .expect("start with witnesses and the next key");
    let mut c = node.client().await;
    for w in [&told_key, &stale_key] {
        append(&mut c, &enroll_witness(w, &admin), "")
            .await
            .expect("enroll witness");
    }
    let reg = new_key();
    append(&mut c, &enroll(&reg, "registrar", &["registrar"], &[&admin]), "")
        .await
        .expect("enroll");
    let r = c
        .append(req(&record("note", note_payload(1), &[&reg]), "", true))
        .await
        .expect("witnessed append")
        .into_inner();
    let witnessed = open_checkpoint(&r.checkpoint, &old_v)
        .expect("the old key's")
        .checkpoint
        .size;
    assert!(witnessed > r.index);

    // Below the witnessed size: the witnesses already vouched for that history.
    let e = append(&mut c, &compromise(&old_id, witnessed - 1, &new, &[&admin]), "")
        .await
        .expect_err("as_of below the witnessed checkpoint");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert_eq!(
        e.message(),
        format!(
            "COMPROMISE_BELOW_WITNESSED: as_of {} is below {witnessed}, the size of the latest checkpoint the \
             witness quorum cosigned: the witnesses already vouched for the entries before it; declare the key \
             compromised as of {witnessed} or later",
            witnessed - 1
        )
    );
    let d = c
        .append(req(&compromise(&old_id, witnessed, &new, &[&admin]), "", true))
        .await
        .expect("declaration as of the witnessed size")
        .into_inner();
    let cp = open_checkpoint(&d.checkpoint, &new_v).expect("the new key's checkpoint");
    let told_sigs = cp
        .note
        .verify_cosignatures(std::slice::from_ref(&told_key))
        .expect("cosignatures");
    assert_eq!(told_sigs.len(), 1, "the witness given the new key cosigned it");
    let stale_sigs = cp
        .note
        .verify_cosignatures(std::slice::from_ref(&stale_key))
        .expect("cosignatures");
    assert!(
        stale_sigs.is_empty(),
        "the stale witness vouched for the new key's checkpoint"
    );
    let more = c
        .append(req(&record("note", note_payload(2), &[&reg]), "", true))
        .await
        .expect("witnessed append after the declaration")
        .into_inner();
    open_checkpoint(&more.checkpoint, &new_v).expect("the new key's");
    // The stale witness's own state: nothing beyond the declaration, under the old key only.
    let (stale_size, stale_note) = witness_latest(&stale_addr)
        .await
        .expect("the stale witness holds a checkpoint");
    assert!(stale_size <= d.index, "{stale_size} > {}", d.index);
    open_checkpoint(&stale_note, &old_v).expect("the old key's");
    let (told_size, told_note) = witness_latest(&told_addr)
        .await
        .expect("the told witness holds a checkpoint");
    assert!(told_size > d.index);
    open_checkpoint(&told_note, &new_v).expect("the new key's");
    node.stop();
    for w in [&mut told, &mut stale] {
        let _ = w.kill();
        let _ = w.wait();
    }
}

/// A draw completed in the same group as the declaration: the node's result, sequenced right after
/// the record, is signed by the new key (the key in force at its index), not refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draw_result_right_after_the_declaration_is_the_new_keys() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, ORIGIN, &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let old = key(&data.join("keys/node.key"));
    let new = new_key();
    let next_file = dir.path().join("next-node.key");
    ledger_client::keyfile::write_signing_key(&next_file, &new).expect("write next key");
    let next_arg = next_file.to_str().expect("utf-8 path").to_string();
    let mut node = Node::try_start_with(&data, &["--next-node-key", &next_arg]).expect("start");
    let mut c = node.client().await;
    let reg = new_key();
    let r = append(&mut c, &enroll(&reg, "registrar", &["registrar"], &[&admin]), "")
        .await
        .expect("enroll");
    // Commit at r+1, filler at r+2; the batch puts the declaration at r+3 and the reveal at r+4.
    let commit_at = r.index + 1;
    let secret = b"registrar secret".to_vec();
    let pool: Vec<serde_json::Value> = (0..5)
        .map(|i| serde_json::json!({"id": format!("ev-{i:02}"), "stratum": "all"}))
        .collect();
    let commit = serde_json::json!({"version": 1, "draw_id": "d2", "purpose": "evaluator_selection", "subjects": ["cadre-1"],
        "pool": pool, "strata": [{"name": "all", "quota": 3}], "k": 3, "algorithm": "ledger-draw-v1",
        "parties": [{"name": "registrar", "keyid": key_id(&reg.verifying_key()),
                     "commitment": ledger_core::hash::Hash::digest(&secret).to_hex()}],
        "reveal_at_size": commit_at + 3, "reveal_deadline_micros": now_micros() + 600_000_000});
    append(&mut c, &record("draw.commit", commit, &[&reg]), "")
        .await
        .expect("commit");
    append(&mut c, &record("note", note_payload(1), &[&reg]), "")
        .await
        .expect("filler");
    let declare = compromise(&key_id(&old.verifying_key()), commit_at, &new, &[&admin]);
    let reveal = record(
        "draw.reveal",
        serde_json::json!({"version": 1, "draw_id": "d2", "party": "registrar", "secret": hex::encode(&secret)}),
        &[&reg],
    );
    let b = c
        .append_batch(pb::AppendBatchRequest {
            items: vec![req(&declare, "", false), req(&reveal, "", false)],
            wait_for_checkpoint: true,
        })
        .await
        .expect("batch")
        .into_inner();
    assert!(b.results.iter().all(|x| x.ok.is_some()), "{:?}", b.results);
    let all = entries(&mut c).await;
    let result = all
        .iter()
        .find(|e| e.1 == "draw.result")
        .expect("the node appended the draw's result");
    assert_eq!(result.3, vec![key_id(&new.verifying_key())], "{result:?}");
    node.stop();
}

/// `ledgerctl node rotate` and `ledgerctl node compromise` build and sign the records from the
/// administrator key files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledgerctl_node_rotate_and_compromise() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, ORIGIN, &[], 1);
    let admin_file = data.join("keys/admin.key");
    let admin = key(&admin_file);
    let old = key(&data.join("keys/node.key"));
    let (k1, k2) = (new_key(), new_key());
    let k1_file = dir.path().join("k1.key");
    let k2_file = dir.path().join("k2.key");
    ledger_client::keyfile::write_signing_key(&k1_file, &k1).expect("write k1");
    ledger_client::keyfile::write_signing_key(&k2_file, &k2).expect("write k2");
    let k2_pub = dir.path().join("k2.pub");
    std::fs::write(&k2_pub, public_key_to_base64(&k2.verifying_key())).expect("write k2.pub");
    let ctl = |addr: &str, args: &[&str]| {
        let out = Command::new(bin("ledgerctl"))
            .args(["--node", addr])
            .args(args)
            .output()
            .expect("run ledgerctl");
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let admin_arg = admin_file.to_str().expect("utf-8");

    let mut node = Node::try_start_with(&data, &["--next-node-key", k1_file.to_str().expect("utf-8")]).expect("start");
    let k1_b64 = public_key_to_base64(&k1.verifying_key());
    let (code, text) = ctl(
        &node.addr,
        &[
            "node",
            "rotate",
            "--admin-key",
            admin_arg,
            "--new-key",
            &k1_b64,
            "--reason",
            "new HSM",
            "--wait",
        ],
    );
    assert_eq!(code, Some(0), "{text}");
    node.stop();

    // k1 is now the node key: the operator places it, with k2 as the next key.
    std::fs::copy(&k1_file, data.join("keys/node.key")).expect("place k1");
    let mut node = Node::try_start_with(&data, &["--next-node-key", k2_file.to_str().expect("utf-8")])
        .expect("start with k1 and the next key k2");
    let k1_id = key_id(&k1.verifying_key());
    let k2_at = format!("@{}", k2_pub.display());
    // A malformed keyid is refused before anything is sent.
    let (code, text) = ctl(
        &node.addr,
        &[
            "node",
            "compromise",
            "--admin-key",
            admin_arg,
            "--keyid",
            "abc",
            "--as-of",
            "1",
            "--new-key",
            &k2_at,
            "--reason",
            "x",
        ],
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("--keyid must be 64 hex digits"), "{text}");
    let (code, text) = ctl(
        &node.addr,
        &[
            "node",
            "compromise",
            "--admin-key",
            admin_arg,
            "--keyid",
            &k1_id,
            "--as-of",
            "2",
            "--new-key",
            &k2_at,
            "--reason",
            "HSM stolen",
            "--wait",
        ],
    );
    assert_eq!(code, Some(0), "{text}");
    let mut c = node.client().await;
    let all = entries(&mut c).await;
    let rot = all.iter().find(|e| e.1 == "node.rotate").expect("node.rotate");
    assert_eq!(rot.2["new_key"], k1_b64);
    assert!(
        rot.3.contains(&key_id(&old.verifying_key())),
        "co-signed by the old key: {rot:?}"
    );
    let decl = all.iter().find(|e| e.1 == "node.compromise").expect("node.compromise");
    assert_eq!(decl.2["keyid"], k1_id);
    assert_eq!(decl.2["as_of"], 2);
    assert_eq!(decl.3, vec![key_id(&admin.verifying_key())]);
    let k2_v = NoteVerifier::new(ORIGIN, k2.verifying_key()).expect("verifier");
    open_checkpoint(&latest(&mut c).await, &k2_v).expect("k2 signs from the declaration on");
    node.stop();
}
