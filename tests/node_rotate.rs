//! Issue 18 item 1: a planned rotation of the node key on a running node, under load. The
//! operator places the next key (`serve --next-node-key`), an administrator appends `node.rotate`
//! (the node co-signs it), the sequencer signs with the new key from the record on with no gap in
//! checkpoints, a restart needs the new key, and `ledger-verify replay` follows the chain.

#[path = "support/mod.rs"]
mod support;

use ledger_core::checkpoint::open_checkpoint;
use ledger_core::note::NoteVerifier;
use ledger_proto::pb;
use std::process::Command;
use support::*;
use tonic::Code;

const ORIGIN: &str = "ledger.test/rotate";

fn rotation(new: &ed25519_dalek::SigningKey, admin: &ed25519_dalek::SigningKey) -> ledger_core::dsse::Envelope {
    record(
        "node.rotate",
        serde_json::json!({
            "version": 1,
            "new_key": ledger_core::keys::public_key_to_base64(&new.verifying_key()),
            "reason": "planned: new HSM",
        }),
        &[admin],
    )
}

async fn latest(c: &mut ledger_proto::pb::ledger_client::LedgerClient<tonic::transport::Channel>) -> String {
    c.get_checkpoint(pb::GetCheckpointRequest { size: None })
        .await
        .expect("checkpoint")
        .into_inner()
        .note
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_the_node_key_under_load() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, ORIGIN, &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let old = key(&data.join("keys/node.key"));
    let new = new_key();
    let next_file = dir.path().join("next-node.key");
    ledger_client::keyfile::write_signing_key(&next_file, &new).expect("write next key");
    let next_arg = next_file.to_str().expect("utf-8 path").to_string();
    let old_v = NoteVerifier::new(ORIGIN, old.verifying_key()).expect("verifier");
    let new_v = NoteVerifier::new(ORIGIN, new.verifying_key()).expect("verifier");
    let reg = new_key();

    // Without the next key in place the node refuses to co-sign a rotation it could not follow.
    let mut node = Node::start(&data);
    let mut c = node.client().await;
    append(&mut c, &enroll(&reg, "registrar", &["registrar"], &[&admin]), "")
        .await
        .expect("enroll");
    let e = append(&mut c, &rotation(&new, &admin), "")
        .await
        .expect_err("no next key");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("NEXT_NODE_KEY_NOT_HELD"), "{e:?}");
    node.stop();

    // The node co-signs with its key; the administrator quorum is what the request must bring.
    let mut node = Node::try_start_with(&data, &["--next-node-key", &next_arg]).expect("start with next key");
    let mut c = node.client().await;
    let without_admin = record(
        "node.rotate",
        serde_json::json!({"version": 1, "new_key": ledger_core::keys::public_key_to_base64(&new.verifying_key()), "reason": "x"}),
        &[&reg],
    );
    let e = append(&mut c, &without_admin, "").await.expect_err("no admin quorum");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");

    // Load: a client appends notes throughout the rotation.
    let addr = node.addr.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let loader = {
        let (stop, done, reg) = (stop.clone(), done.clone(), reg.clone());
        tokio::spawn(async move {
            let mut c = ledger_proto::pb::ledger_client::LedgerClient::connect(addr)
                .await
                .expect("connect");
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 5_000 {
                let env = record_in(Some(ORIGIN), "note", note_payload(n), &[&reg]);
                c.append(req(&env, "", false)).await.expect("append under load");
                n += 1;
                done.store(n, std::sync::atomic::Ordering::Relaxed);
            }
            n
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let before_note = latest(&mut c).await;
    let before = open_checkpoint(&before_note, &old_v)
        .expect("old key before")
        .checkpoint;
    let before_file = dir.path().join("before.checkpoint");
    std::fs::write(&before_file, &before_note).expect("write");
    let r = c
        .append(req(&rotation(&new, &admin), "rotate-1", true))
        .await
        .expect("rotation co-signed by the node")
        .into_inner();
    let at = r.index;
    // The checkpoint that answered the wait holds the rotation: the new key's.
    let cp = open_checkpoint(&r.checkpoint, &new_v).expect("first checkpoint after the rotation is the new key's");
    assert!(cp.checkpoint.size > at);
    assert!(open_checkpoint(&latest(&mut c).await, &old_v).is_err());
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    // The loader is under way before it is stopped (a loaded machine may not have answered its
    // first append yet; bounded wait).
    for _ in 0..600 {
        if done.load(std::sync::atomic::Ordering::Relaxed) > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let appended = loader.await.expect("loader");
    assert!(appended > 0);
    assert!(before.size <= at);
    // The stored rotation carries the admin's and the old node key's signatures.
    let all = entries(&mut c).await;
    let rot = all.iter().find(|e| e.0 == at).expect("rotation entry");
    assert_eq!(rot.1, "node.rotate");
    assert!(
        rot.3.contains(&ledger_core::keys::key_id(&old.verifying_key())),
        "{rot:?}"
    );
    assert!(
        rot.3.contains(&ledger_core::keys::key_id(&admin.verifying_key())),
        "{rot:?}"
    );
    open_checkpoint(&latest(&mut c).await, &new_v).expect("the latest checkpoint is the new key's");
    node.stop();

    // A restart with only the old key is refused, naming the rotation.
    let err = Node::try_start(&data).err().expect("refused with only the old key");
    assert!(err.contains(&format!("rotated at index {at}")), "{err}");
    // With the new key it serves and keeps signing with it.
    let mut node = Node::try_start_with(&data, &["--next-node-key", &next_arg]).expect("restart with the new key");
    let mut c = node.client().await;
    let more = append(&mut c, &record("note", note_payload(99_999), &[&reg]), "")
        .await
        .expect("append after restart");
    assert_eq!(more.index, all.len() as u64, "nothing lost across the restart");
    let r = c
        .append(req(&record("note", note_payload(100_000), &[&reg]), "", true))
        .await
        .expect("append with checkpoint")
        .into_inner();
    open_checkpoint(&r.checkpoint, &new_v).expect("new key after restart");

    // A court bundle spanning the rotation (the rotation record and a note after it) exported
    // with the charter's key pinned, verifies offline: the bundle carries the node.rotate record
    // with its inclusion proof, and the checkpoint is the new key's.
    let bundle = dir.path().join("rot.ledger-bundle.json");
    let charter_vkey = old_v.to_string_key();
    let st = Command::new(env!("CARGO_BIN_EXE_ledger-verify"))
        .args(["bundle", "export", "--node", &node.addr, "--trusted-key", &charter_vkey])
        .args(["--index", &at.to_string(), "--index", &r.index.to_string()])
        .arg("--from-checkpoint")
        .arg(&before_file)
        .arg("-o")
        .arg(&bundle)
        .output()
        .expect("bundle export");
    assert!(st.status.success(), "export: {}", String::from_utf8_lossy(&st.stderr));
    node.stop();
    let b: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&bundle).expect("bundle")).expect("json");
    assert!(
        b["registry"]
            .as_array()
            .expect("registry")
            .iter()
            .any(|e| e["index"] == at),
        "the bundle carries the rotation record"
    );
    let verify_bundle = |file: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_ledger-verify"))
            .args(["bundle", "verify"])
            .arg(file)
            .args(["--trusted-key", &charter_vkey])
            .output()
            .expect("bundle verify")
    };
    let ok = verify_bundle(&bundle);
    let text = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{text}");
    assert!(text.contains("node.rotate records in the bundle"), "{text}");
    // The court's earlier checkpoint, from before the rotation, is checked under the old key.
    assert!(text.contains("is a prefix of this one"), "{text}");
    // The same bundle with its checkpoint re-signed by the old key (a thief of the rotated-away key)
    // is refused, naming the key the checkpoint must carry.
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
    let bad = verify_bundle(&forged_file);
    let text = String::from_utf8_lossy(&bad.stdout);
    assert_ne!(bad.status.code(), Some(0), "{text}");
    assert!(text.contains("CHECKPOINT_BAD_SIGNATURE"), "{text}");
    assert!(text.contains(&new_v.to_string_key()), "{text}");

    // Every stored checkpoint verifies under the key for its size, and the replay is clean.
    let json = dir.path().join("replay.json");
    let out = Command::new(env!("CARGO_BIN_EXE_ledger-verify"))
        .args(["replay", "--data"])
        .arg(&data)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run ledger-verify");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("report")).expect("json");
    assert!(
        out.status.success(),
        "{}\n{report}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(report["faults"].as_array().map(Vec::len), Some(0), "{report}");
    assert!(report["checkpoints_checked"].as_u64().unwrap_or(0) >= 3, "{report}");
    assert_eq!(report["counts_by_kind"]["node.rotate"], 1);

    // A backup across the rotation is written and restored: the marks are checked under the
    // key for their size and the backup's node.vkey (the charter's key) is in the chain.
    let bk = dir.path().join("backup");
    let out = Command::new(bin("ledger-node"))
        .args(["backup", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&bk)
        .output()
        .expect("backup");
    assert!(out.status.success(), "backup: {}", String::from_utf8_lossy(&out.stderr));
    let restored = dir.path().join("restored");
    let out = Command::new(bin("ledger-node"))
        .args(["restore", "--from"])
        .arg(&bk)
        .arg("--data")
        .arg(&restored)
        .output()
        .expect("restore");
    assert!(
        out.status.success(),
        "restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts `ledger-node witness` trusting `log_keys` for the log; returns it, its gRPC address and
/// its cosignature key (`name+hash+base64`).
fn start_witness(wdir: &std::path::Path, log_keys: &[String]) -> (std::process::Child, String, String) {
    use std::io::BufRead as _;
    let mut c = Command::new(bin("ledger-node"));
    c.args([
        "witness",
        "--listen",
        "127.0.0.1:0",
        "--name",
        "audit.example/w1",
        "--data",
    ])
    .arg(wdir);
    for k in log_keys {
        c.args(["--log-key", k]);
    }
    let mut child = c
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("spawn witness");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut key = None;
    for line in lines.by_ref() {
        let line = line.unwrap_or_default();
        if let Some(k) = line.strip_prefix("witness key ") {
            key = Some(k.to_string());
        }
        if let Some(a) = line.strip_prefix("listening on ") {
            let addr = format!("http://{a}");
            std::thread::spawn(move || for _ in lines {});
            return (child, addr, key.expect("the witness prints its key"));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the witness did not start");
}

/// Issue 18 item 1: a witness whose operator added the new node key before the rotation keeps
/// cosigning across it (docs/witness.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_with_both_keys_keeps_cosigning_across_the_rotation() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, ORIGIN, &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let old = key(&data.join("keys/node.key"));
    let new = new_key();
    let next_file = dir.path().join("next-node.key");
    ledger_client::keyfile::write_signing_key(&next_file, &new).expect("write next key");
    let next_arg = next_file.to_str().expect("utf-8 path").to_string();
    let old_v = NoteVerifier::new(ORIGIN, old.verifying_key()).expect("verifier");
    let new_v = NoteVerifier::new(ORIGIN, new.verifying_key()).expect("verifier");
    let (mut witness, waddr, wkey) =
        start_witness(&dir.path().join("w"), &[old_v.to_string_key(), new_v.to_string_key()]);
    let wv = ledger_core::cosignature::CosignatureVerifier::parse(&wkey).expect("witness key");
    let witness_arg = format!("{waddr}={wkey}");
    let mut node = Node::try_start_with(&data, &["--witness", &witness_arg, "--next-node-key", &next_arg])
        .expect("start with a witness and the next key");
    let mut c = node.client().await;
    let reg = new_key();
    append(&mut c, &enroll(&reg, "registrar", &["registrar"], &[&admin]), "")
        .await
        .expect("enroll");
    let mut wc = ledger_proto::pb::witness_client::WitnessClient::connect(waddr.clone())
        .await
        .expect("connect witness");
    // Waits (bounded) until the witness holds a cosigned checkpoint of at least `size`.
    async fn cosigned(
        wc: &mut ledger_proto::pb::witness_client::WitnessClient<tonic::transport::Channel>,
        size: u64,
    ) -> String {
        for _ in 0..100 {
            if let Ok(r) = wc.get_latest(pb::GetLatestRequest { origin: ORIGIN.into() }).await {
                let note = r.into_inner().checkpoint;
                let n = ledger_core::note::Note::parse(&note).expect("note");
                if ledger_core::checkpoint::Checkpoint::from_body(&n.text)
                    .expect("body")
                    .size
                    >= size
                {
                    return note;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the witness never cosigned a checkpoint of size {size}");
    }
    let a = append(&mut c, &record("note", note_payload(1), &[&reg]), "")
        .await
        .expect("note");
    let held = cosigned(&mut wc, a.index + 1).await;
    open_checkpoint(&held, &old_v).expect("before the rotation: the old key's");
    let rot = c
        .append(req(&rotation(&new, &admin), "", false))
        .await
        .expect("rotation")
        .into_inner();
    let b = append(&mut c, &record("note", note_payload(2), &[&reg]), "")
        .await
        .expect("note");
    assert!(b.index > rot.index);
    let held = cosigned(&mut wc, b.index + 1).await;
    let cp = open_checkpoint(&held, &new_v).expect("after the rotation: the new key's");
    let cosigners = cp
        .note
        .verify_cosignatures(std::slice::from_ref(&wv))
        .expect("cosignature verifies");
    assert_eq!(cosigners.len(), 1, "the witness cosigned the new key's checkpoint");
    node.stop();
    let _ = witness.kill();
    let _ = witness.wait();

    // The witness restarts on its state (a checkpoint by the new key) with both keys configured,
    // and the node keeps getting cosignatures after its own restart.
    let (mut witness, waddr, wkey2) =
        start_witness(&dir.path().join("w"), &[old_v.to_string_key(), new_v.to_string_key()]);
    assert_eq!(wkey2, wkey);
    let witness_arg = format!("{waddr}={wkey}");
    let mut node =
        Node::try_start_with(&data, &["--witness", &witness_arg, "--next-node-key", &next_arg]).expect("restart");
    let mut c = node.client().await;
    let mut wc = ledger_proto::pb::witness_client::WitnessClient::connect(waddr.clone())
        .await
        .expect("connect witness");
    let d = append(&mut c, &record("note", note_payload(3), &[&reg]), "")
        .await
        .expect("note");
    let held = cosigned(&mut wc, d.index + 1).await;
    open_checkpoint(&held, &new_v).expect("the new key's");
    node.stop();
    let _ = witness.kill();
    let _ = witness.wait();
}
