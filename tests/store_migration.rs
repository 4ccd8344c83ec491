//! Issue 14: a data directory of store layout 1 is refused by the node with the migration named,
//! and migrates with the real `ledger-node export` and `ledger-node import` binaries to layout 2,
//! which the node serves and `ledger-verify replay --data` finds clean, with the same root.

mod support;

use ledger_core::compact::CompactTree;
use ledger_core::merkle::NodeSource;
use ledger_proto::pb;
use std::path::Path;
use std::process::Command;
use support::*;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Runs `ledger-node ARGS`: Ok(stdout) or Err(stderr).
fn ledger_node(args: &[&str]) -> Result<String, String> {
    let out = Command::new(bin("ledger-node"))
        .args(args)
        .output()
        .expect("run ledger-node");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn prefixed(p: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = vec![p];
    k.extend_from_slice(rest);
    k
}

/// Writes the log (entries and checkpoints) into `dir` as a store of layout 1, the layout before
/// issue 14, with raw sled: tree `ledger`; `e` ‖ index (u64 BE) → leaf hash ‖ leaf; `h` ‖ leaf
/// hash → index; `n` ‖ level (u8, levels 4 and up only) ‖ index (u64 BE) → node hash; `c` ‖ size
/// (u64 BE) → checkpoint note; `msize` → size (u64 BE); no `mlayout` key.
fn write_layout_1(dir: &Path, entries: &[Vec<u8>], checkpoints: &[(u64, String)]) {
    let db = sled::open(dir).expect("sled");
    let t = db.open_tree("ledger").expect("tree");
    let mut ct = CompactTree::new();
    for (i, leaf) in entries.iter().enumerate() {
        let i = i as u64;
        let lh = ledger_core::hash::leaf_hash(leaf);
        let mut v = lh.0.to_vec();
        v.extend_from_slice(leaf);
        t.insert(prefixed(b'e', &i.to_be_bytes()), v).expect("e");
        t.insert(prefixed(b'h', &lh.0), &i.to_be_bytes()).expect("h");
        let mut nodes = Vec::new();
        ct.append_with(lh, |n| nodes.push(n));
        for n in nodes.into_iter().filter(|n| n.level > 3) {
            let mut k = vec![b'n', n.level as u8];
            k.extend_from_slice(&n.index.to_be_bytes());
            t.insert(k, &n.hash.0).expect("n");
        }
    }
    for (size, note) in checkpoints {
        t.insert(prefixed(b'c', &size.to_be_bytes()), note.as_bytes())
            .expect("c");
    }
    t.insert(b"msize", &ct.size().to_be_bytes()).expect("msize");
    db.flush().expect("flush");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layout_1_store_is_refused_and_migrates_by_export_and_import() {
    let dir = tempfile::tempdir().expect("tmp");
    let old = dir.path().join("old");
    {
        let (mut node, mut c, reg) = registrar_ledger(&old, "ledger.test/migrate", 0).await;
        // Past one bundle (256 entries), so that the migrated store has a bundle and tiles.
        append_notes_batch(&mut c, &reg, 0..300).await;
        node.stop();
    }
    // The log as the node wrote it, then rewritten as a layout-1 store.
    let (entries, checkpoints, root) = {
        let st = ledger_store::Store::open_read_only(&old.join("store")).expect("ro");
        let size = st.size().expect("size");
        let entries: Vec<Vec<u8>> = st.entries(0, size).map(|r| r.expect("entry").1).collect();
        let cps: Vec<(u64, String)> = st.checkpoints().map(|r| r.expect("cp")).collect();
        let root = st.compact_tree().expect("ct").root();
        (entries, cps, root)
    };
    assert_eq!(entries.len(), 302);
    std::fs::remove_dir_all(old.join("store")).expect("rm store");
    write_layout_1(&old.join("store"), &entries, &checkpoints);

    // The node refuses it, naming the migration.
    let e = Node::try_start(&old).err().expect("served a layout-1 store");
    assert!(e.contains("layout 1"), "{e}");
    assert!(
        e.contains("ledger-node export --data OLD --out FILE") && e.contains("ledger-node import --data NEW --in FILE"),
        "{e}"
    );

    // Export reads it read-only (checked against the high-water mark); import writes layout 2
    // into a copy of the directory without its store (keys, configuration and marks kept).
    let file = dir.path().join("old.export");
    let out = ledger_node(&["export", "--data", s(&old), "--out", s(&file)]).expect("export");
    assert!(out.contains("exported 302 entries"), "{out}");
    let new = dir.path().join("new");
    copy_dir(&old, &new);
    std::fs::remove_dir_all(new.join("store")).expect("rm store");
    ledger_node(&["import", "--data", s(&new), "--in", s(&file)]).expect("import");
    {
        let st = ledger_store::Store::open_read_only(&new.join("store")).expect("ro");
        assert_eq!(st.layout(), 2);
        assert_eq!(st.size().expect("size"), 302);
        assert_eq!(st.compact_tree().expect("ct").root(), root, "same root");
        assert_eq!(st.node(8, 0).expect("node"), {
            let hs: Vec<_> = entries[..256].iter().map(|l| ledger_core::hash::leaf_hash(l)).collect();
            ledger_core::merkle::root_of(&hs)
        });
        assert!(st.raw_tree().scan_prefix(b"e").next().is_none(), "no layout-1 key");
    }
    // The node serves the migrated store; the verifier replays it clean.
    {
        let mut node = Node::start(&new);
        let mut c = node.client().await;
        let last = c
            .get_entry(pb::GetEntryRequest { index: 301 })
            .await
            .expect("entry 301")
            .into_inner();
        assert_eq!(last.leaf, entries[301]);
        node.stop();
    }
    let json = dir.path().join("replay.json");
    let out = Command::new(bin("ledger-verify"))
        .args(["replay", "--threads", "1", "--data", s(&new), "--json", s(&json)])
        .output()
        .expect("run ledger-verify");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).expect("json")).expect("json");
    assert!(out.status.success() && v["ok"] == true, "{v}");
    assert_eq!(v["final"]["size"].as_u64(), Some(302));
    assert_eq!(
        v["final"]["root"].as_str().map(str::to_string),
        Some(root.to_hex()),
        "{v}"
    );
}
