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

/// `bundle show --html` and `review --html` as a judge reads them: each record as labelled fields in
/// Chinese and English, times in the court's zone with UTC beside, every text escaped (a payload
/// carries `<script>`), and a closing section whose hashes are the bundle's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_pages_are_labelled_converted_escaped_and_checkable() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, "ledger.test/html", &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let reg = new_key();
    let node = Node::start(&data);
    let mut c = node.client().await;
    append(
        &mut c,
        &enroll(&reg, "Registrar <b>Li</b>", &["registrar"], &[&admin]),
        "",
    )
    .await
    .expect("enroll");
    let nomination = serde_json::json!({"version": 1, "nomination_id": "nom-1", "subject": "cadre-1",
        "post": "deputy head", "organization": "org-7", "reason": "<script>alert(1)</script>"});
    append(&mut c, &record("nomination", nomination, &[&reg]), "")
        .await
        .expect("nomination");
    c.append(req(&record("note", note_payload(1), &[&reg]), "", true))
        .await
        .expect("checkpoint");
    let vkey = std::fs::read_to_string(data.join("keys/node.vkey")).expect("vkey");
    let out = dir.path().join("b.ledger-bundle.json");
    let st = Command::new(verify_bin())
        .args(["bundle", "export", "--node", &node.addr, "--subject", "cadre-1"])
        .arg("-o")
        .arg(&out)
        .output()
        .expect("export");
    assert!(st.status.success(), "export: {}", String::from_utf8_lossy(&st.stderr));
    let review = dir.path().join("r.html");
    let st = Command::new(verify_bin())
        .args([
            "review",
            "--node",
            &node.addr,
            "--subject",
            "cadre-1",
            "--tz",
            "+05:30",
            "--html",
        ])
        .arg(&review)
        .output()
        .expect("review");
    assert!(st.status.code().is_some(), "{}", String::from_utf8_lossy(&st.stderr));
    drop(node);

    let show = |tz: &str, name: &str| {
        let html = dir.path().join(name);
        let st = Command::new(verify_bin())
            .args(["bundle", "show"])
            .arg(&out)
            .args(["--trusted-key", vkey.trim(), "--tz", tz, "--html"])
            .arg(&html)
            .output()
            .expect("show");
        assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
        std::fs::read_to_string(&html).expect("html")
    };
    let page = show("Asia/Shanghai", "b.html");
    let bundle: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).expect("read")).expect("json");
    // Labels in both languages, for the record and for the page.
    for l in [
        "提名编号 <small>Nomination id</small>",
        "职位 <small>Post</small>",
        "记录时间 <small>Recorded at",
        "如何独立核验 <small>How to verify this independently</small>",
        "独立见证 <small>Independent witnesses</small>",
        "nominated cadre-1 for the post of deputy head",
        "提名 cadre-1 任 deputy head",
        "@page{size:A4",
        "<details><summary>原始记录 Raw JSON</summary>",
    ] {
        assert!(page.contains(l), "missing {l:?}");
    }
    // Escaped everywhere: the payload's and the signer name's markup never reaches the page.
    assert!(!page.contains("<script") && !page.contains("<b>Li"), "unescaped text");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && page.contains("Registrar &lt;b&gt;Li"));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "self-contained"
    );
    // Times: Beijing time with UTC beside, and the offset honoured.
    let records = bundle["records"].as_array().expect("records");
    assert_eq!(records.len(), 2, "{bundle}");
    let offset_page = show("-03:00", "b2.html");
    for r in records {
        let leaf = base64::engine::general_purpose::STANDARD
            .decode(r["leaf"].as_str().expect("leaf"))
            .expect("b64");
        let e = ledger_core::entry::Entry::decode(&leaf).expect("entry");
        let utc = ledger_core::time::rfc3339_micros(e.timestamp_micros);
        let local = |h: i64| {
            let m = e.timestamp_micros.checked_add_signed(h * 3_600_000_000).expect("time");
            let t = ledger_core::time::rfc3339_micros(m);
            format!("{} {}", &t[..10], &t[11..19])
        };
        assert!(
            page.contains(&format!("{} <small>Asia/Shanghai", local(8))),
            "no Beijing time"
        );
        assert!(page.contains(&format!("(UTC {utc})")), "no UTC time");
        assert!(
            offset_page.contains(&format!("{} <small>UTC-03:00", local(-3))),
            "--tz ignored"
        );
        // The verification section's leaf hashes are the bundle's own.
        let lh = ledger_core::hash::leaf_hash(&leaf);
        assert!(
            page.contains(&format!("<code class=leaf>{lh}</code>")),
            "leaf hash of {} missing",
            e.index
        );
    }
    let note = ledger_core::note::Note::parse(bundle["checkpoint"].as_str().expect("cp")).expect("note");
    let cp = ledger_core::checkpoint::Checkpoint::from_body(&note.text).expect("cp");
    assert!(page.contains(&format!("<code class=root>{}</code>", cp.root)), "root");
    assert!(page.contains(bundle["node_key"].as_str().expect("key")), "node key");
    assert!(page.contains("ledger-verify bundle verify b.ledger-bundle.json --trusted-key"));

    let r = std::fs::read_to_string(&review).expect("review page");
    assert!(
        r.contains("提名编号 <small>Nomination id</small>") && r.contains("UTC+05:30"),
        "review labels"
    );
    assert!(r.contains("如何独立核验") && r.contains("How to verify this independently"));
    assert!(
        !r.contains("<script") && r.contains("&lt;script&gt;"),
        "review escaping"
    );
}
