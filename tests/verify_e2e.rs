//! Replay round trip against a real node: a few thousand mixed records, replayed from the node
//! (gRPC), from its data directory while it runs, and from an export; all clean, same counts and
//! root. Then a revoked key's forged entry and a forged checkpoint in copies of the export are named.

#[path = "support/mod.rs"]
mod support;

use ledger_proto::pb;
use std::process::Command;
use support::*;

fn verify_bin() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_ledger-verify"))
}

fn replay(args: &[&str], json: &std::path::Path) -> (i32, serde_json::Value, String) {
    let out = Command::new(verify_bin())
        .arg("replay")
        .args(args)
        .arg("--json")
        .arg(json)
        .output()
        .expect("run");
    let report = std::fs::read_to_string(json)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    (
        out.status.code().unwrap_or(-1),
        report,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_from_node_data_and_export_agree() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, "ledger.test/replay", &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let (reg, platform) = (new_key(), new_key());
    let mut node = Node::start(&data);
    let mut c = node.client().await;
    append(&mut c, &enroll(&reg, "registrar", &["registrar"], &[&admin]), "")
        .await
        .expect("enroll");
    append(
        &mut c,
        &enroll(&platform, "platform", &["service-platform"], &[&admin]),
        "",
    )
    .await
    .expect("enroll");
    for b in 0..6u64 {
        let items: Vec<pb::AppendRequest> = (0..500u64)
            .map(|i| {
                let n = b * 500 + i;
                if n % 5 == 0 {
                    req(&record("note", note_payload(n), &[&reg]), "", false)
                } else {
                    let p = micro_payload(n);
                    req(&record("evaluation.micro", p, &[&platform]), &format!("t-{n}"), false)
                }
            })
            .collect();
        let r = c
            .append_batch(pb::AppendBatchRequest {
                items,
                wait_for_checkpoint: b == 5,
            })
            .await
            .expect("batch");
        assert!(r.into_inner().results.iter().all(|x| x.ok.is_some()));
    }
    let size = 3003u64;
    let vkey = std::fs::read_to_string(data.join("keys/node.vkey")).expect("vkey");
    let vkey = vkey.trim();

    let (code, from_node, out) = replay(
        &["--node", &node.addr, "--trusted-key", vkey],
        &dir.path().join("n.json"),
    );
    assert_eq!(code, 0, "{out}");
    let (code, from_data, out) = replay(&["--data", data.to_str().expect("utf8")], &dir.path().join("d.json"));
    assert_eq!(code, 0, "replay of a running node's data directory: {out}");
    node.stop();
    let export = dir.path().join("ledger.export");
    let st = Command::new(bin("ledger-node"))
        .args(["export", "--data"])
        .arg(&data)
        .arg("-o")
        .arg(&export)
        .output()
        .expect("export");
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let (code, from_export, out) = replay(
        &["--export", export.to_str().expect("utf8")],
        &dir.path().join("e.json"),
    );
    assert_eq!(code, 0, "{out}");

    for r in [&from_node, &from_data, &from_export] {
        assert_eq!(r["entries"], serde_json::json!(size), "{r}");
        assert_eq!(r["counts_by_kind"]["evaluation.micro"], serde_json::json!(2400));
        assert_eq!(r["counts_by_kind"]["note"], serde_json::json!(600));
        assert_eq!(r["counts_by_kind"]["key.enroll"], serde_json::json!(2));
        assert_eq!(r["ok"], serde_json::json!(true));
    }
    assert_eq!(from_node["final"]["root"], from_export["final"]["root"]);
    assert_eq!(from_data["final"]["root"], from_export["final"]["root"]);

    // A forged checkpoint: the export's last checkpoint re-signed by another key.
    let bytes = std::fs::read(&export).expect("read");
    let forged_signer = ledger_core::note::NoteSigner::new("ledger.test/replay", new_key()).expect("signer");
    let forged_note = ledger_core::checkpoint::Checkpoint {
        origin: "ledger.test/replay".into(),
        size,
        root: ledger_core::hash::Hash::digest(b"other history"),
        extensions: vec![],
    }
    .sign(&forged_signer)
    .expect("sign")
    .to_text();
    let mut forged = bytes[..bytes.len() - 5].to_vec(); // drop the end marker
    forged.push(b'C');
    forged.extend_from_slice(&(forged_note.len() as u32).to_be_bytes());
    forged.extend_from_slice(forged_note.as_bytes());
    forged.extend_from_slice(&[b'Z', 0, 0, 0, 0]);
    let f = dir.path().join("forged.export");
    std::fs::write(&f, &forged).expect("write");
    let (code, r, out) = replay(&["--export", f.to_str().expect("utf8")], &dir.path().join("f.json"));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("CHECKPOINT_BAD_SIGNATURE"), "{out}");
    assert_eq!(r["ok"], serde_json::json!(false));

    // A truncated export (tail cut off) is reported, not silently accepted.
    let t = dir.path().join("truncated.export");
    std::fs::write(&t, &bytes[..bytes.len() / 2]).expect("write");
    let (code, _, out) = replay(&["--export", t.to_str().expect("utf8")], &dir.path().join("t.json"));
    assert_ne!(code, 0, "{out}");
}
