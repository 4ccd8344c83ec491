//! The node refuses to serve a store that was altered while it was stopped, naming the first bad
//! index; and killing it with SIGKILL at random moments never loses an acknowledged entry.

mod support;

use ledger_proto::pb;
use std::collections::BTreeMap;
use std::path::Path;
use support::*;

/// Builds a small ledger and stops the node; returns the data dir.
async fn build(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("d");
    init(&data, "ledger.test/tamper", &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let reg = new_key();
    let mut node = Node::start(&data);
    let mut c = node.client().await;
    append(&mut c, &enroll(&reg, "r", &["registrar"], &[&admin]), "")
        .await
        .expect("enroll");
    for i in 0..8 {
        append(&mut c, &record("note", note_payload(i), &[&reg]), "")
            .await
            .expect("append");
    }
    node.stop();
    data
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let dst = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).expect("copy");
        }
    }
}

fn ekey(i: u64) -> Vec<u8> {
    let mut k = vec![b'e'];
    k.extend_from_slice(&i.to_be_bytes());
    k
}

/// Applies `f` to the raw sled tree of a copy of `data` and returns the stderr of a refused start.
fn tamper_and_start(data: &Path, name: &str, f: impl FnOnce(&sled::Tree)) -> String {
    let copy = data.parent().expect("parent").join(name);
    copy_dir(data, &copy);
    {
        let store = ledger_store::Store::open(&copy.join("store")).expect("open");
        f(store.raw_tree());
        store.flush().expect("flush");
    }
    match Node::try_start(&copy) {
        Ok(_) => panic!("{name}: the node served a tampered store"),
        Err(stderr) => stderr,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_store_is_refused_naming_the_index() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = build(dir.path()).await;
    // Untouched, it starts.
    drop(Node::start(&data));

    let out = tamper_and_start(&data, "flip", |t| {
        let mut v = t.get(ekey(5)).expect("get").expect("entry 5").to_vec();
        let n = v.len();
        v[n - 70] ^= 0x01; // inside the payload/keyid region
        t.insert(ekey(5), v).expect("insert");
    });
    assert!(out.contains("index 5"), "flip: {out}");
    assert!(out.contains("refusing to serve"), "flip: {out}");

    let out = tamper_and_start(&data, "delete", |t| {
        t.remove(ekey(4)).expect("remove");
    });
    assert!(out.contains("MISSING_ENTRY at index 4"), "delete: {out}");

    let out = tamper_and_start(&data, "swap", |t| {
        let a = t.get(ekey(3)).expect("get").expect("3");
        let b = t.get(ekey(6)).expect("get").expect("6");
        t.insert(ekey(3), b).expect("insert");
        t.insert(ekey(6), a).expect("insert");
    });
    assert!(out.contains("INDEX_MISMATCH at index 3"), "swap: {out}");

    // Rewriting an entry *and* its stored leaf hash is still caught by the chain.
    let out = tamper_and_start(&data, "rewrite", |t| {
        let bytes = t.get(ekey(2)).expect("get").expect("2").to_vec();
        let mut e = ledger_core::entry::Entry::decode(&bytes[32..]).expect("decode");
        e.timestamp_micros += 1;
        let nb = e.encode();
        // The entry value is leaf hash ‖ leaf: rewrite both consistently, as a careful attacker would.
        let mut v = ledger_core::hash::leaf_hash(&nb).0.to_vec();
        v.extend_from_slice(&nb);
        t.insert(ekey(2), v).expect("insert");
    });
    assert!(
        out.contains("index 3") || out.contains("NODE_MISMATCH"),
        "rewrite: {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_never_loses_an_acknowledged_entry() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, "ledger.test/crash", &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let reg = new_key();
    let mut acked: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut seed = 0x9e3779b97f4a7c15u64;
    {
        let node = Node::start(&data);
        let mut c = node.client().await;
        append(&mut c, &enroll(&reg, "r", &["registrar"], &[&admin]), "")
            .await
            .expect("enroll");
    }
    for round in 0..4u64 {
        let mut node = Node::start(&data);
        let c = node.client().await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for w in 0..4u64 {
            let mut c = c.clone();
            let tx = tx.clone();
            let reg = reg.clone();
            let origin = current_origin();
            tasks.push(tokio::spawn(async move {
                for i in 0..10_000u64 {
                    let payload = note_payload(round * 1_000_000 + w * 100_000 + i);
                    let env = record_in(origin.as_deref(), "note", payload, &[&reg]);
                    match append(&mut c, &env, "").await {
                        Ok(r) => {
                            if tx.send((r.index, r.leaf_hash)).is_err() {
                                return;
                            }
                        }
                        Err(_) => return,
                    }
                }
            }));
        }
        drop(tx);
        // Kill at a pseudo-random moment between 50 and 400 ms.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(std::time::Duration::from_millis(50 + seed % 350)).await;
        node.kill9();
        for t in tasks {
            let _ = t.await;
        }
        while let Ok((i, h)) = rx.try_recv() {
            assert!(acked.insert(i, h).is_none(), "index {i} acknowledged twice");
        }
    }
    assert!(
        acked.len() > 50,
        "too few appends acknowledged ({}) to mean anything",
        acked.len()
    );
    // Restart: the store verifies (else the node refuses to start) and every acknowledged entry is
    // there with identical bytes.
    let node = Node::start(&data);
    let mut c = node.client().await;
    for (i, h) in &acked {
        let e = c
            .get_entry(pb::GetEntryRequest { index: *i })
            .await
            .expect("acknowledged entry present")
            .into_inner();
        assert_eq!(
            &ledger_core::hash::leaf_hash(&e.leaf).0.to_vec(),
            h,
            "entry {i} changed"
        );
    }
}
