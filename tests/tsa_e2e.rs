//! RFC 3161 trusted timestamps end to end (issue 16, item 2): a real node on loopback obtains
//! tokens from a real TSA implementation (OpenSSL's `openssl ts -reply` behind the test HTTP
//! responder of support_tsa, with a throw-away test PKI), `ledger-verify bundle export` carries
//! them, and `bundle verify --tsa-root` checks them. Attacks are performed on the bundle file a
//! court receives: a token from another TSA root, a token over another checkpoint spliced in, a
//! token signed with an expired TSA certificate, a flipped token byte. A TSA that is down never
//! stalls appends.

#[path = "support/mod.rs"]
mod support;
#[path = "support_tsa/mod.rs"]
mod support_tsa;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ledger_core::bundle::Bundle;
use ledger_proto::pb;
use ledger_proto::pb::timestamps_client::TimestampsClient;
use sha2::Digest as _;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use support::*;
use support_tsa::TestTsa;

fn verify_bin() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_ledger-verify"))
}

/// Tokens the node serves, waiting (bounded) until one covers a checkpoint of at least `size`.
async fn tokens_covering(addr: &str, size: u64) -> Vec<pb::TimestampToken> {
    let mut tc = TimestampsClient::connect(addr.to_string()).await.expect("connect");
    for _ in 0..150 {
        let t = tc
            .get_timestamps(pb::GetTimestampsRequest::default())
            .await
            .expect("GetTimestamps")
            .into_inner()
            .timestamps;
        if t.iter().any(|x| x.size >= size) {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no timestamp token over a checkpoint of size >= {size} within 15 s");
}

fn verify(file: &Path, roots: &[&Path]) -> Output {
    let mut c = Command::new(verify_bin());
    c.args(["bundle", "verify"]).arg(file);
    for r in roots {
        c.arg("--tsa-root").arg(r);
    }
    c.output().expect("ledger-verify")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Writes `b` in the canonical form `ledger-verify` writes (so only the edited token differs).
fn write_bundle(path: &Path, b: &Bundle) {
    std::fs::write(path, serde_json::to_string_pretty(b).expect("json") + "\n").expect("write");
}

fn body_imprint(note: &str) -> [u8; 32] {
    let n = ledger_core::note::Note::parse(note).expect("note");
    sha2::Sha256::digest(n.text.as_bytes()).into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_reach_the_bundle_and_forged_ones_are_refused() {
    let pki = Arc::new(TestTsa::new());
    let (url, _down, served) = pki.serve("tsa.pem");
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, "ledger.test/tsa", &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let reg = new_key();
    let node = Node::try_start_with(&data, &["--tsa", &url]).expect("node");
    let mut c = node.client().await;
    append(
        &mut c,
        &enroll(&reg, "Org dept registrar", &["registrar"], &[&admin]),
        "",
    )
    .await
    .expect("enroll");
    for i in 0..4 {
        append(&mut c, &record("note", note_payload(i), &[&reg]), "")
            .await
            .expect("append");
    }
    let size = c
        .append(req(&record("note", note_payload(4), &[&reg]), "", true))
        .await
        .expect("append")
        .into_inner()
        .index
        + 1;
    let first = tokens_covering(&node.addr, size).await;
    // More records and a later checkpoint, so the bundle's checkpoint is newer than the token's.
    for i in 5..8 {
        c.append(req(&record("note", note_payload(i), &[&reg]), "", true))
            .await
            .expect("append");
    }
    let all = tokens_covering(&node.addr, size + 3).await;
    assert!(served.load(Ordering::SeqCst) >= 2);
    assert!(
        first
            .iter()
            .all(|t| !t.token.is_empty() && t.tsa == "CN=TEST ONLY ledger TSA")
    );
    // Stored in the data directory.
    let stored = std::fs::read_dir(data.join("timestamps"))
        .expect("timestamps dir")
        .count();
    assert!(stored >= 2, "{stored} token files");

    // An online backup carries the tokens (listed in its manifest with their SHA-256) and a
    // restore puts them back, byte for byte: the evidence outlives the node's disk.
    let bk = dir.path().join("backup");
    let st = Command::new(support::bin("ledger-node"))
        .args(["backup", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&bk)
        .output()
        .expect("backup");
    assert!(st.status.success(), "backup: {}", text(&st));
    let manifest = std::fs::read_to_string(bk.join("manifest.json")).expect("manifest");
    let restored = dir.path().join("restored");
    let st = Command::new(support::bin("ledger-node"))
        .args(["restore", "--from"])
        .arg(&bk)
        .arg("--data")
        .arg(&restored)
        .output()
        .expect("restore");
    assert!(st.status.success(), "restore: {}", text(&st));
    let mut backed_up = 0;
    for e in std::fs::read_dir(data.join("timestamps")).expect("timestamps dir") {
        let e = e.expect("dir entry");
        let name = e.file_name().into_string().expect("utf-8 name");
        if !name.ends_with(".tst") || e.path().metadata().expect("meta").len() == 0 {
            continue;
        }
        assert!(
            manifest.contains(&format!("timestamps/{name}")),
            "{name} not in the manifest"
        );
        let back = std::fs::read(restored.join("timestamps").join(&name)).expect("restored token");
        assert_eq!(
            back,
            std::fs::read(e.path()).expect("token"),
            "{name} restored differently"
        );
        backed_up += 1;
    }
    assert!(backed_up >= 2, "{backed_up} tokens backed up");

    let out = dir.path().join("b.ledger-bundle.json");
    let st = Command::new(verify_bin())
        .args(["bundle", "export", "--node", &node.addr, "--index", "2", "--index", "3"])
        .arg("-o")
        .arg(&out)
        .output()
        .expect("export");
    assert!(st.status.success(), "export: {}", text(&st));
    drop(node);
    let b: Bundle = serde_json::from_str(&std::fs::read_to_string(&out).expect("read")).expect("bundle");
    assert!(!b.timestamps.is_empty(), "the bundle carries no timestamps");

    let (ca, other) = (pki.path("ca.pem"), pki.path("other-ca.pem"));
    // The right root: verified, and the verdict says before when the records existed.
    let o = verify(&out, &[&ca]);
    println!("{}", text(&o));
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("records existed before "), "{}", text(&o));
    assert!(text(&o).contains("(TSA CN=TEST ONLY ledger TSA)"), "{}", text(&o));
    // Per record, the TSA vouching for it (`--json`), and the page naming it.
    let json = dir.path().join("v.json");
    let o = Command::new(verify_bin())
        .args(["bundle", "verify"])
        .arg(&out)
        .arg("--tsa-root")
        .arg(&ca)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("verify --json");
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).expect("json")).expect("json");
    for r in v["records"].as_array().expect("records") {
        let tsas = r["vouched_by"]["tsas"].as_array().expect("tsas");
        assert!(!tsas.is_empty(), "{r}");
        assert_eq!(tsas[0]["name"], "CN=TEST ONLY ledger TSA", "{r}");
        assert!(tsas[0]["checkpoint_size"].as_u64().expect("size") > r["index"].as_u64().expect("index"));
    }
    let page = dir.path().join("b.html");
    let o = Command::new(verify_bin())
        .args(["bundle", "show"])
        .arg(&out)
        .arg("--tsa-root")
        .arg(&ca)
        .arg("--html")
        .arg(&page)
        .output()
        .expect("show");
    assert!(o.status.success(), "{}", text(&o));
    let page = std::fs::read_to_string(&page).expect("page");
    assert!(page.contains("<td>CN=TEST ONLY ledger TSA</td>") && page.contains("已验证 verified"));
    // No root: present but unverified, not counted (the bundle itself still verifies).
    let o = verify(&out, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("UNVERIFIED"), "{}", text(&o));
    assert!(!text(&o).contains("records existed before"), "{}", text(&o));
    // A root the TSA does not chain to.
    let o = verify(&out, &[&other]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("TSA_UNTRUSTED"), "{}", text(&o));

    // A token over another checkpoint spliced in place of the bundle's.
    let bad = dir.path().join("spliced.json");
    let mut s = b.clone();
    let other_cp = all
        .iter()
        .find(|t| body_imprint(&t.checkpoint) != body_imprint(&s.timestamps[0].checkpoint))
        .expect("a token over another checkpoint");
    s.timestamps[0].token = B64.encode(&other_cp.token);
    write_bundle(&bad, &s);
    let o = verify(&bad, &[&ca]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("TSA_WRONG_IMPRINT"), "{}", text(&o));

    // The same splice with the other token's own checkpoint carried along: that checkpoint is not
    // tied to the bundle's by the carried consistency proof.
    let mut s = b.clone();
    s.timestamps[0].token = B64.encode(&other_cp.token);
    s.timestamps[0].checkpoint = other_cp.checkpoint.clone();
    write_bundle(&bad, &s);
    let o = verify(&bad, &[&ca]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("FORK"), "{}", text(&o));
    // A checkpoint the node never signed.
    let mut s = b.clone();
    s.timestamps[0].checkpoint = s.timestamps[0]
        .checkpoint
        .replacen("ledger.test/tsa\n", "ledger.test/tsa\n1", 1);
    write_bundle(&bad, &s);
    let o = verify(&bad, &[&ca]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("CHECKPOINT_BAD_SIGNATURE"), "{}", text(&o));

    // A token over the right checkpoint, signed with a TSA certificate that had expired.
    let q = ledger_tsa::request(&body_imprint(&b.timestamps[0].checkpoint), &[7]).expect("query");
    let expired = ledger_tsa::token_from_response(&pki.reply(&q, "tsa-expired.pem")).expect("token");
    let mut s = b.clone();
    s.timestamps[0].token = B64.encode(&expired);
    write_bundle(&bad, &s);
    let o = verify(&bad, &[&ca]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("TSA_CERT_EXPIRED"), "{}", text(&o));

    // One flipped byte inside the signed TSTInfo (its genTime) of the real token.
    let mut tok = B64.decode(&b.timestamps[0].token).expect("b64");
    let at = tok.windows(2).position(|w| w == [0x18, 0x0f]).expect("GeneralizedTime") + 5;
    tok[at] ^= 0x01;
    let mut s = b.clone();
    s.timestamps[0].token = B64.encode(&tok);
    write_bundle(&bad, &s);
    let o = verify(&bad, &[&ca]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("BAD"), "{}", text(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tsa_that_is_down_never_stalls_appends() {
    let pki = Arc::new(TestTsa::new());
    let (url, down, _) = pki.serve("tsa.pem");
    down.store(true, Ordering::SeqCst);
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, "ledger.test/tsa-down", &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let reg = new_key();
    // One TSA answers 503, the other refuses connections.
    let node = Node::try_start_with(&data, &["--tsa", &url, "--tsa", "http://127.0.0.1:1/tsa"]).expect("node");
    let mut c = node.client().await;
    append(
        &mut c,
        &enroll(&reg, "Org dept registrar", &["registrar"], &[&admin]),
        "",
    )
    .await
    .expect("enroll");
    let mut size = 0;
    for i in 0..5 {
        size = c
            .append(req(&record("note", note_payload(i), &[&reg]), "", true))
            .await
            .expect("append while the TSAs are down")
            .into_inner()
            .index
            + 1;
    }
    let mut tc = TimestampsClient::connect(node.addr.clone()).await.expect("connect");
    let none = tc
        .get_timestamps(pb::GetTimestampsRequest::default())
        .await
        .expect("GetTimestamps")
        .into_inner()
        .timestamps;
    assert!(none.is_empty(), "{none:?}");
    // The TSA comes back: the node catches up with the latest checkpoint (retry back-off).
    down.store(false, Ordering::SeqCst);
    let t = tokens_covering(&node.addr, size).await;
    assert!(t.iter().any(|x| x.size >= size));
    // Stored tokens survive a restart (files in DATA/timestamps) and are served again.
    drop(tc);
    drop(c);
    let mut node = node;
    node.stop();
    let node = Node::try_start_with(&data, &[]).expect("restart");
    let mut tc = TimestampsClient::connect(node.addr.clone()).await.expect("connect");
    let again = tc
        .get_timestamps(pb::GetTimestampsRequest::default())
        .await
        .expect("GetTimestamps")
        .into_inner()
        .timestamps;
    assert_eq!(again, t);
}
