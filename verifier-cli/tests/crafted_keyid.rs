//! Key ids with multi-byte characters (issue 12 item 8). The reports shorten key ids for display;
//! they used to cut them at a byte index, so a crafted key id made `ledger-verify bundle verify`
//! and `ledger-verify review --export` panic (exit 101). These run the real binary on crafted
//! files and require a clean verdict instead.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::{Log, s, verify, verify_raw, write_export};
use ledger_core::bundle::Bundle;
use ledger_core::entry::Entry;
use ledger_core::registry::payload_type;
use tempfile::TempDir;

/// "a" and then two-byte characters: byte 12 and byte 16 (where the reports cut) fall inside one.
fn crafted_keyid() -> String {
    format!("a{}", "é".repeat(20))
}

#[test]
fn bundle_verify_reports_a_multibyte_keyid_instead_of_panicking() {
    let dir = TempDir::new().unwrap();
    let sample = include_str!("../../tests/fixtures/sample.ledger-bundle.json");
    let mut b: Bundle = serde_json::from_str(sample).unwrap();
    let mut e = Entry::decode(&B64.decode(&b.records[0].leaf).unwrap()).unwrap();
    e.envelope.signatures[0].keyid = crafted_keyid();
    b.records[0].leaf = B64.encode(e.encode());
    let path = dir.path().join("crafted.ledger-bundle.json");
    std::fs::write(&path, serde_json::to_string_pretty(&b).unwrap() + "\n").unwrap();

    let r = verify_raw(&["bundle", "verify", s(&path), "--trusted-key", &b.node_key]);
    assert_eq!(r.code, 1, "a tampered bundle is a failed verdict, not a crash: {r:?}");
    assert!(r.stdout.contains("NOT VERIFIED"), "{r:?}");
    // The key id is shown by its first 16 characters, whole.
    let shown: String = crafted_keyid().chars().take(16).collect();
    assert!(r.stdout.contains(&format!("key {shown}\n")), "{r:?}");
    assert!(!r.stderr.contains("panicked"), "{r:?}");
}

#[test]
fn review_export_reports_a_multibyte_keyid_instead_of_panicking() {
    let dir = TempDir::new().unwrap();
    let mut log = Log::new();
    let reg = log.registrar.clone();
    let mut env = ledger_core::dsse::Envelope::new(
        payload_type("nomination"),
        br#"{"nomination_id":"nom-1","organization":"org-1","post":"head","reason":"r","subject":"cadre-1","version":1}"#
            .to_vec(),
    );
    env.sign(&reg);
    env.signatures[0].keyid = crafted_keyid();
    let index = log.push(env);
    // A charter that does not decode: the review has no registry, so it names signers by key id.
    log.entries[0] = b"not an entry".to_vec();
    let path = dir.path().join("crafted.export");
    write_export(&path, &log.frames());

    let r = verify(dir.path(), &["review", "--export", s(&path)]);
    assert!(r.code == 0 || r.code == 1, "a review, not a crash: {r:?}");
    let shown = format!("unknown key {}", crafted_keyid().chars().take(12).collect::<String>());
    let timeline = r.json.as_ref().unwrap()["timeline"].as_array().unwrap();
    assert!(
        timeline
            .iter()
            .any(|t| t["index"].as_u64() == Some(index) && t["signers"][0] == shown.as_str()),
        "{r:?}"
    );

    // The replay of the same file reports faults (no charter, unknown key) and does not crash.
    let r = verify(dir.path(), &["replay", "--export", s(&path)]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(!r.codes().is_empty(), "{r:?}");
}
