//! `ledger-verify replay` across a planned node-key rotation (`node.rotate`, docs/registry.md):
//! each checkpoint is checked under the node key for its size, following the chain of keys.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use common::{Log, export_store, key, s, verify};
use ledger_core::dsse::Envelope;
use ledger_core::registry::payload_type;
use tempfile::TempDir;

/// Appends a `node.rotate` to `new` signed by the current node key and the admin; from then on
/// the log's checkpoints are signed by `new`. Returns the record's index.
fn rotate(log: &mut Log, new: &ed25519_dalek::SigningKey) -> u64 {
    use base64::Engine as _;
    let v = serde_json::json!({
        "version": 1,
        "new_key": base64::engine::general_purpose::STANDARD.encode(new.verifying_key().as_bytes()),
        "reason": "new HSM",
    });
    let mut env = Envelope::new(payload_type("node.rotate"), serde_json::to_vec(&v).unwrap());
    env.sign(&log.node);
    env.sign(&log.admin);
    let at = log.push(env);
    log.node = new.clone();
    at
}

/// Charter, registrar, notes, a checkpoint under the charter key, a rotation, checkpoints under
/// the new key (the first right after the rotation record), more notes and a final checkpoint.
fn rotated_log() -> (Log, u64, ed25519_dalek::SigningKey) {
    let mut log = Log::new();
    log.notes(3);
    log.checkpoint();
    let old = log.node.clone();
    let at = rotate(&mut log, &key(50));
    log.checkpoint();
    log.notes(4);
    log.checkpoint();
    (log, at, old)
}

fn run_both(dir: &TempDir, log: &Log) -> Vec<common::Run> {
    let data = dir.path().join("data");
    let store = log.write_store(&data);
    let exp = dir.path().join("log.export");
    export_store(&store, &exp);
    drop(store);
    [
        vec!["replay", "--data", s(&data)],
        vec!["replay", "--export", s(&exp)],
        vec!["replay", "--export", s(&exp), "--threads", "1"],
    ]
    .iter()
    .map(|args| verify(dir.path(), args))
    .collect()
}

#[test]
fn checkpoints_follow_the_chain_of_node_keys() {
    let dir = TempDir::new().unwrap();
    let (log, _, _) = rotated_log();
    for r in run_both(&dir, &log) {
        assert_eq!(r.code, 0, "{r:?}");
        let j = r.json.as_ref().unwrap();
        assert_eq!(j["faults"].as_array().unwrap().len(), 0, "{r:?}");
        assert_eq!(j["checkpoints_checked"], 3, "{r:?}");
        assert_eq!(j["counts_by_kind"]["node.rotate"], 1);
    }
}

#[test]
fn a_checkpoint_after_the_rotation_signed_by_the_old_key_is_named() {
    let dir = TempDir::new().unwrap();
    let (mut log, at, old) = rotated_log();
    // The old key's holder signs a checkpoint of a size after the rotation.
    let new = log.node.clone();
    log.node = old;
    log.notes(2);
    log.checkpoint();
    let bad_size = log.size();
    log.node = new;
    log.notes(1);
    log.checkpoint();
    for r in run_both(&dir, &log) {
        assert_ne!(r.code, 0, "{r:?}");
        assert!(
            r.has("CHECKPOINT_BAD_SIGNATURE", Some(bad_size)),
            "{:?}\n{r:?}",
            r.codes()
        );
        assert_eq!(r.codes().len(), 1, "{:?}", r.codes());
        let msg = r.json.as_ref().unwrap()["faults"][0]["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(msg.contains(&format!("rotated at index {at}")), "{msg}");
        assert!(msg.contains("not by the node key for that size"), "{msg}");
    }
}

#[test]
fn a_checkpoint_before_the_rotation_signed_by_the_new_key_is_refused() {
    let dir = TempDir::new().unwrap();
    let mut log = Log::new();
    log.notes(2);
    let new = key(50);
    let old = log.node.clone();
    log.node = new.clone();
    log.checkpoint();
    let early = log.size();
    log.node = old;
    rotate(&mut log, &new);
    log.checkpoint();
    for r in run_both(&dir, &log) {
        assert!(r.has("CHECKPOINT_BAD_SIGNATURE", Some(early)), "{:?}\n{r:?}", r.codes());
        assert_eq!(r.codes().len(), 1, "{:?}", r.codes());
    }
}

#[test]
fn the_store_opens_and_imports_across_a_rotation_and_refuses_the_old_key_after_it() {
    use ledger_store::Store;
    let dir = TempDir::new().unwrap();
    let (log, _, old) = rotated_log();
    let store = log.write_store(&dir.path().join("data"));
    let report = store.verify().expect("a store with a rotation opens");
    assert_eq!(report.checkpoints, 3);
    assert_eq!(report.node_keys.len(), 2);
    assert_eq!(
        report.node_verifier.as_ref().map(|v| v.key),
        Some(log.node.verifying_key())
    );
    assert_eq!(report.verifier_at(1).map(|v| v.key), Some(old.verifying_key()));
    let exp = dir.path().join("log.export");
    export_store(&store, &exp);
    let copy = Store::open(&dir.path().join("copy")).unwrap();
    let n = ledger_store::export::import(&copy, std::fs::File::open(&exp).unwrap()).expect("import");
    assert_eq!(n, log.size());
    copy.verify().expect("imported copy opens");

    // The old key signs a checkpoint of a size after the rotation: the store is refused, named.
    let (mut log, _, old) = rotated_log();
    log.node = old;
    log.notes(1);
    log.checkpoint();
    let bad = log.size();
    let store = log.write_store(&dir.path().join("bad"));
    let e = store.verify().expect_err("old key after the rotation");
    assert!(
        e.to_string()
            .contains(&format!("CHECKPOINT_BAD_SIGNATURE at size {bad}")),
        "{e}"
    );
    let exp = dir.path().join("bad.export");
    export_store(&store, &exp);
    let copy = Store::open(&dir.path().join("bad-copy")).unwrap();
    let e = ledger_store::export::import(&copy, std::fs::File::open(&exp).unwrap())
        .expect_err("import refuses the old key's checkpoint");
    assert!(e.to_string().contains("checkpoint"), "{e}");
}
