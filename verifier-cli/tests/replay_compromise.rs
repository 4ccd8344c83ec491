//! `ledger-verify replay` after a `node.compromise` (docs/registry.md, "Node key lifecycle"):
//! checkpoints the compromised key signed for trees holding entries at or after `as_of`, and any
//! checkpoint it signs after the declaration, are named `NODE_KEY_COMPROMISED`.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use common::{Log, export_store, key, s, verify};
use ledger_core::dsse::Envelope;
use ledger_core::registry::payload_type;
use tempfile::TempDir;

/// Appends a `node.compromise` of the current node key as of `as_of`, signed by the admin alone;
/// from then on the log's checkpoints are signed by `new`. Returns the record's index.
fn declare(log: &mut Log, as_of: u64, new: &ed25519_dalek::SigningKey) -> u64 {
    use base64::Engine as _;
    let v = serde_json::json!({
        "version": 1,
        "keyid": ledger_core::keys::key_id(&log.node.verifying_key()),
        "as_of": as_of,
        "new_key": base64::engine::general_purpose::STANDARD.encode(new.verifying_key().as_bytes()),
        "reason": "HSM stolen",
    });
    let mut env = Envelope::new(payload_type("node.compromise"), serde_json::to_vec(&v).unwrap());
    env.sign(&log.admin);
    let at = log.push(env);
    log.node = new.clone();
    at
}

fn run_both(dir: &TempDir, log: &Log) -> Vec<common::Run> {
    let data = dir.path().join("data");
    let store = log.write_store(&data);
    let exp = dir.path().join("log.export");
    export_store(&store, &exp);
    drop(store);
    [vec!["replay", "--data", s(&data)], vec!["replay", "--export", s(&exp)]]
        .iter()
        .map(|args| verify(dir.path(), args))
        .collect()
}

#[test]
fn checkpoints_in_the_compromised_span_and_after_the_declaration_are_named() {
    let dir = TempDir::new().unwrap();
    let mut log = Log::new();
    log.notes(2);
    log.checkpoint();
    let as_of = log.size();
    // Before as_of: a tree of entries the key signed while it was still trusted.
    let clean = log.size();
    log.notes(3);
    // A tree holding entries at or after as_of, signed by the (stolen) key: named.
    log.checkpoint();
    let in_span = log.size();
    let old = log.node.clone();
    let at = declare(&mut log, as_of, &key(60));
    log.checkpoint();
    log.notes(2);
    log.checkpoint();
    // The thief signs a checkpoint after the declaration with the stolen key: named.
    let new = log.node.clone();
    log.node = old;
    log.notes(1);
    log.checkpoint();
    let forged = log.size();
    log.node = new;
    log.notes(1);
    log.checkpoint();
    for r in run_both(&dir, &log) {
        assert_ne!(r.code, 0, "{r:?}");
        assert!(r.has("NODE_KEY_COMPROMISED", Some(in_span)), "{:?}\n{r:?}", r.codes());
        assert!(r.has("NODE_KEY_COMPROMISED", Some(forged)), "{:?}\n{r:?}", r.codes());
        assert!(!r.has("NODE_KEY_COMPROMISED", Some(clean)), "{:?}", r.codes());
        assert_eq!(r.codes().len(), 2, "{:?}", r.codes());
        let j = r.json.as_ref().unwrap();
        assert_eq!(j["counts_by_kind"]["node.compromise"], 1);
        let msgs: Vec<&str> = j["faults"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["message"].as_str().unwrap())
            .collect();
        let expect = format!("declared compromised as of index {as_of} by the node.compromise record at index {at}");
        assert!(msgs.iter().all(|m| m.contains(&expect)), "{msgs:?}");
    }
}
