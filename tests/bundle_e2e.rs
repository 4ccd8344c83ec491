//! Court bundles end to end: a real node on loopback, `ledger-verify bundle export` over gRPC, then
//! `bundle verify` offline; any single-byte change to the file makes verification fail.

#[path = "support/mod.rs"]
mod support;

use std::process::Command;
use support::*;

fn verify_bin() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_ledger-verify"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_verify_show_and_every_byte_matters() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, "ledger.test/bundle", &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let reg = new_key();
    let node = Node::start(&data);
    let mut c = node.client().await;
    append(
        &mut c,
        &enroll(&reg, "Org dept registrar", &["registrar"], &[&admin]),
        "",
    )
    .await
    .expect("enroll");
    for i in 0..6 {
        append(&mut c, &record("note", note_payload(i), &[&reg]), "")
            .await
            .expect("append");
    }
    // The court saves a checkpoint now…
    let old = c
        .append(req(&record("note", note_payload(99), &[&reg]), "", true))
        .await
        .expect("append with checkpoint")
        .into_inner()
        .checkpoint;
    let old_path = dir.path().join("old.checkpoint");
    std::fs::write(&old_path, &old).expect("write");
    // …and the log grows.
    for i in 6..12 {
        append(&mut c, &record("note", note_payload(i), &[&reg]), "")
            .await
            .expect("append");
    }
    c.append(req(&record("note", note_payload(100), &[&reg]), "", true))
        .await
        .expect("checkpoint");
    let vkey = std::fs::read_to_string(data.join("keys/node.vkey")).expect("vkey");
    let out = dir.path().join("b.ledger-bundle.json");
    let st = Command::new(verify_bin())
        .args([
            "bundle",
            "export",
            "--node",
            &node.addr,
            "--subject",
            "cadre-1",
            "--trusted-key",
            vkey.trim(),
        ])
        .arg("--from-checkpoint")
        .arg(&old_path)
        .arg("-o")
        .arg(&out)
        .output()
        .expect("export");
    assert!(st.status.success(), "export: {}", String::from_utf8_lossy(&st.stderr));
    drop(node); // offline from here on

    let run = |file: &std::path::Path| {
        Command::new(verify_bin())
            .args(["bundle", "verify"])
            .arg(file)
            .args(["--trusted-key", vkey.trim()])
            .output()
            .expect("verify")
    };
    let ok = run(&out);
    let text = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{text}");
    assert!(text.contains("Org dept registrar"), "{text}");
    assert!(text.contains("is a prefix of this one"), "{text}");
    assert!(text.contains("Verdict: every record above is included"), "{text}");
    // Four records about cadre-1 (i = 1, 4, 7, 10) — plus the 100th (100 % 3 == 1).
    assert_eq!(text.matches("— VERIFIED").count(), 5, "{text}");

    let html = dir.path().join("b.html");
    let st = Command::new(verify_bin())
        .args(["bundle", "show"])
        .arg(&out)
        .arg("--html")
        .arg(&html)
        .output()
        .expect("show");
    assert!(st.status.success());
    let page = std::fs::read_to_string(&html).expect("html");
    assert!(
        page.contains("<!DOCTYPE html>") && !page.contains("http://") && !page.contains("https://"),
        "self-contained"
    );

    // Every single-byte change fails verification (sampled every 13th byte to keep the test short;
    // the change turns the byte into another printable character so the JSON may still parse).
    let bytes = std::fs::read(&out).expect("read");
    let tampered = dir.path().join("t.json");
    let mut checked = 0;
    for i in (0..bytes.len()).step_by(13) {
        let mut b = bytes.clone();
        b[i] = if b[i] == b'0' {
            b'1'
        } else if b[i].is_ascii_alphanumeric() {
            b'0'
        } else {
            b' '
        };
        if b == bytes {
            continue;
        }
        std::fs::write(&tampered, &b).expect("write");
        let r = run(&tampered);
        assert_ne!(
            r.status.code(),
            Some(0),
            "byte {i} changed ({:?}) and the bundle still verified",
            bytes[i] as char
        );
        checked += 1;
    }
    assert!(checked > 100, "only {checked} mutations checked");
}
