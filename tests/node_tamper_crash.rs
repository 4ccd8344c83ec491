//! The node refuses to serve a store that was altered while it was stopped, naming the first bad
//! index; and killing it with SIGKILL at random moments never loses an acknowledged entry.

mod support;

use ledger_core::hash::Hash;
use ledger_proto::pb;
use ledger_store::layout::{self, raw};
use std::collections::BTreeMap;
use std::path::Path;
use support::*;

/// Builds a small ledger (ten entries, then `extra` notes in one batch) and stops the node;
/// returns the data dir.
async fn build(dir: &Path, extra: u64) -> std::path::PathBuf {
    let data = dir.join("d");
    let (mut node, mut c, reg) = registrar_ledger(&data, "ledger.test/tamper", 8).await;
    if extra > 0 {
        append_notes_batch(&mut c, &reg, 100..100 + extra).await;
    }
    node.stop();
    data
}

/// Rewrites the tail chunks (one per entry, a valid chunking) after `f` edited them.
fn edit_tail(f: impl FnOnce(&mut BTreeMap<u64, (Hash, Vec<u8>)>)) -> impl FnOnce(&sled::Tree) {
    move |t: &sled::Tree| {
        let mut tail = raw::read_tail(t);
        f(&mut tail);
        raw::write_tail(t, &tail);
    }
}

/// Rewrites entry bundle 0 after `f` edited its leaves.
fn edit_bundle(f: impl FnOnce(&mut Vec<Vec<u8>>)) -> impl FnOnce(&sled::Tree) {
    move |t: &sled::Tree| {
        let v = t.get(layout::bundle_key(0)).expect("get").expect("bundle 0");
        let mut leaves: Vec<Vec<u8>> = layout::bundle_leaves(&v).expect("frames");
        assert_eq!(leaves.len(), 256);
        f(&mut leaves);
        t.insert(
            layout::bundle_key(0),
            layout::compress_bundle(layout::encode_bundle(leaves.iter().map(Vec::as_slice))),
        )
        .expect("insert");
    }
}

/// Applies `f` to the raw sled tree of a copy of `data` (its full bundles moved from their bundle
/// files into sled, where `f` can edit them) and returns the stderr of a refused start.
fn tamper_and_start(data: &Path, name: &str, f: impl FnOnce(&sled::Tree)) -> String {
    let copy = data.parent().expect("parent").join(name);
    copy_dir(data, &copy);
    {
        let store = ledger_store::Store::open(&copy.join("store")).expect("open");
        raw::inline_bundles(&store);
        f(store.raw_tree());
        store.flush().expect("flush");
    }
    match Node::try_start(&copy) {
        Ok(_) => panic!("{name}: the node served a tampered store"),
        Err(stderr) => stderr,
    }
}

/// The full bundles' bytes are in `store/bundles/` (docs/format.md, "Bundle files"), where a text
/// editor or `truncate` can reach them without sled: a flipped byte, a cut file and a deleted file
/// are each refused at start-up and by `ledger-verify replay --data`, naming the bundle's first
/// index and the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_cut_or_deleted_bundle_file_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = build(dir.path(), 600).await;
    // 610 entries: bundles 0 and 1 in the first bundle file, the rest in the tail.
    let file = |d: &Path| {
        d.join("store")
            .join(ledger_store::bundle_files::BUNDLES_DIR)
            .join(ledger_store::bundle_files::file_name(0))
    };
    let name = ledger_store::bundle_files::file_name(0);
    let len = std::fs::metadata(file(&data)).expect("bundle file").len();
    // Where bundle 1 starts in the file (its record in sled: F ‖ offset ‖ length ‖ SHA-256).
    let one = {
        let ro = ledger_store::Store::open_read_only(&data.join("store")).expect("ro");
        let rec = ro
            .raw_tree()
            .get(layout::bundle_key(1))
            .expect("get")
            .expect("bundle 1");
        assert_eq!(rec[0], ledger_store::bundle_files::BUNDLE_FILE);
        u64::from_be_bytes(rec[1..9].try_into().expect("offset"))
    };
    assert!(one > 0 && one < len);
    type Damage = (&'static str, fn(&Path, u64, u64), &'static str, &'static str);
    let damages: [Damage; 3] = [
        (
            "file-flip",
            |f, one, len| {
                let mut b = std::fs::read(f).expect("read");
                b[usize::try_from((one + len) / 2).expect("at")] ^= 0x20;
                std::fs::write(f, b).expect("write");
            },
            "MALFORMED_ENTRY at index 256",
            "do not match the SHA-256",
        ),
        (
            "file-cut",
            |f, _, len| {
                let h = std::fs::OpenOptions::new().write(true).open(f).expect("open");
                h.set_len(len - 1).expect("cut");
            },
            "MALFORMED_ENTRY at index 256",
            "was cut",
        ),
        (
            "file-deleted",
            |f, _, _| std::fs::remove_file(f).expect("rm"),
            "MALFORMED_ENTRY at index 0",
            "is missing",
        ),
    ];
    for (what, damage, fault, why) in damages {
        let copy = dir.path().join(what);
        copy_dir(&data, &copy);
        damage(&file(&copy), one, len);
        let out = match Node::try_start(&copy) {
            Ok(_) => panic!("{what}: the node served a store with a damaged bundle file"),
            Err(stderr) => stderr,
        };
        for needle in [fault, why, name.as_str(), "refusing to serve"] {
            assert!(out.contains(needle), "{what}: {needle:?} not in {out}");
        }
        let replay = std::process::Command::new(bin("ledger-verify"))
            .args(["replay", "--data"])
            .arg(&copy)
            .output()
            .expect("run ledger-verify");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&replay.stdout),
            String::from_utf8_lossy(&replay.stderr)
        );
        assert!(!replay.status.success(), "{what}: replay passed: {said}");
        for needle in [fault, why, name.as_str()] {
            assert!(said.contains(needle), "{what}: replay: {needle:?} not in {said}");
        }
    }
    // Undamaged, it starts and replays.
    drop(Node::start(&data));
    replay_data_ok(&data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_store_is_refused_naming_the_index() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = build(dir.path(), 0).await;
    // Untouched, it starts.
    drop(Node::start(&data));

    // The ten entries are after the last full bundle: in the tail chunks (layout 2). Each edit
    // rewrites the chunks (one per entry, a valid chunking) with one entry changed.
    assert_eq!(
        raw::read_tail(
            ledger_store::Store::open_read_only(&data.join("store"))
                .expect("ro")
                .raw_tree()
        )
        .len(),
        10
    );
    let out = tamper_and_start(
        &data,
        "flip",
        edit_tail(|tail| {
            let v = &mut tail.get_mut(&5).expect("entry 5").1;
            let n = v.len();
            v[n - 70] ^= 0x01; // inside the payload/keyid region
        }),
    );
    assert!(out.contains("index 5"), "flip: {out}");
    assert!(out.contains("refusing to serve"), "flip: {out}");

    let out = tamper_and_start(
        &data,
        "delete",
        edit_tail(|tail| {
            tail.remove(&4);
        }),
    );
    assert!(out.contains("MISSING_ENTRY at index 4"), "delete: {out}");

    let out = tamper_and_start(
        &data,
        "swap",
        edit_tail(|tail| {
            let a = tail.remove(&3).expect("3");
            let b = tail.remove(&6).expect("6");
            tail.insert(3, b);
            tail.insert(6, a);
        }),
    );
    assert!(out.contains("INDEX_MISMATCH at index 3"), "swap: {out}");

    // Rewriting an entry *and* its stored leaf hash is still caught by the chain.
    let out = tamper_and_start(
        &data,
        "rewrite",
        edit_tail(|tail| {
            let (_, bytes) = tail.get(&2).expect("2");
            let mut e = ledger_core::entry::Entry::decode(bytes).expect("decode");
            e.timestamp_micros += 1;
            let nb = e.encode();
            // The chunk holds leaf hash ‖ leaf: rewrite both consistently, as a careful attacker would.
            tail.insert(2, (ledger_core::hash::leaf_hash(&nb), nb));
        }),
    );
    assert!(
        out.contains("index 3") || out.contains("NODE_MISMATCH"),
        "rewrite: {out}"
    );
}

/// Layout 2 (issue 14): the entries of a full bundle and the hashes of the tiles are checked as
/// strictly as the tail: an edited, dropped or reordered bundle, an edited leaf hash in a level-0
/// tile, an edited node hash in a level-1 tile, and a tile removed or grown are each refused by
/// name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_bundles_and_tiles_are_refused_by_name() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = build(dir.path(), 300).await;
    // 310 entries: bundle 0 (0-255) with its level-0 tile, a level-1 tile holding one hash, and
    // entries 256-309 in the tail.
    let out = tamper_and_start(
        &data,
        "bundle-flip",
        edit_bundle(|l| {
            let n = l[5].len();
            l[5][n - 70] ^= 0x01;
        }),
    );
    assert!(out.contains("at index 5"), "bundle-flip: {out}");
    assert!(out.contains("refusing to serve"), "bundle-flip: {out}");

    let out = tamper_and_start(&data, "bundle-swap", edit_bundle(|l| l.swap(3, 6)));
    assert!(out.contains("INDEX_MISMATCH at index 3"), "bundle-swap: {out}");

    let out = tamper_and_start(
        &data,
        "bundle-short",
        edit_bundle(|l| {
            l.remove(200);
        }),
    );
    assert!(out.contains("INDEX_MISMATCH at index 200"), "bundle-short: {out}");

    let out = tamper_and_start(&data, "bundle-drop", |t| {
        t.remove(layout::bundle_key(0)).expect("remove");
    });
    assert!(out.contains("MISSING_ENTRY at index 0"), "bundle-drop: {out}");

    let out = tamper_and_start(&data, "bundle-frame", |t| {
        let mut v = t.get(layout::bundle_key(0)).expect("get").expect("bundle 0").to_vec();
        v[0] = 0xff; // the first length now runs past the value
        t.insert(layout::bundle_key(0), v).expect("insert");
    });
    assert!(out.contains("MALFORMED_ENTRY at index 0"), "bundle-frame: {out}");

    // The node stores full bundles compressed (zstd with its checksum, docs/format.md): a byte
    // flipped inside the frame, a header that says more than the largest bundle (a decompression
    // bomb) or less than the frame gives, are each a malformed bundle, not a panic or an OOM.
    let zstd_edit = |name: &str, edit: fn(&mut Vec<u8>)| {
        tamper_and_start(&data, name, |t| {
            let mut v = t.get(layout::bundle_key(0)).expect("get").expect("bundle 0").to_vec();
            assert_eq!(v[0], layout::BUNDLE_ZSTD, "{name}: bundle 0 is stored compressed");
            edit(&mut v);
            t.insert(layout::bundle_key(0), v).expect("insert");
        })
    };
    let out = zstd_edit("bundle-zstd-flip", |v| {
        let mid = v.len() / 2;
        v[mid] ^= 0x04;
    });
    assert!(out.contains("MALFORMED_ENTRY at index 0"), "bundle-zstd-flip: {out}");
    assert!(out.contains("does not decompress"), "bundle-zstd-flip: {out}");
    let out = zstd_edit("bundle-zstd-bomb", |v| v[2..6].copy_from_slice(&u32::MAX.to_be_bytes()));
    assert!(out.contains("MALFORMED_ENTRY at index 0"), "bundle-zstd-bomb: {out}");
    assert!(out.contains("over the largest bundle"), "bundle-zstd-bomb: {out}");
    let out = zstd_edit("bundle-zstd-short", |v| {
        let len = u32::from_be_bytes([v[2], v[3], v[4], v[5]]);
        v[2..6].copy_from_slice(&(len - 1).to_be_bytes());
    });
    assert!(out.contains("MALFORMED_ENTRY at index 0"), "bundle-zstd-short: {out}");

    // The tail chunk (entries 256-309, one group) is stored compressed too: a flipped byte in
    // its frame is a malformed entry at the chunk's first index.
    let out = tamper_and_start(&data, "chunk-zstd-flip", |t| {
        let (k, v) = t.scan_prefix(b"p").next().expect("a chunk").expect("read");
        assert_eq!(&k[..], &layout::chunk_key(256)[..]);
        assert!(
            v.starts_with(&layout::CHUNK_ZSTD_MARK),
            "the chunk is stored compressed"
        );
        let mut v = v.to_vec();
        let at = v.len() - 30;
        v[at] ^= 0x08;
        t.insert(k, v).expect("insert");
    });
    assert!(out.contains("MALFORMED_ENTRY at index 256"), "chunk-zstd-flip: {out}");
    assert!(out.contains("does not decompress"), "chunk-zstd-flip: {out}");

    let out = tamper_and_start(&data, "leaf-tile", |t| {
        let mut v = t.get(layout::tile_key(0, 0)).expect("get").expect("tile 0/0").to_vec();
        v[7 * 32] ^= 0x80;
        t.insert(layout::tile_key(0, 0), v).expect("insert");
    });
    assert!(out.contains("LEAF_HASH_MISMATCH at index 7"), "leaf-tile: {out}");

    let out = tamper_and_start(&data, "leaf-tile-drop", |t| {
        t.remove(layout::tile_key(0, 0)).expect("remove");
    });
    assert!(
        out.contains("TILE_MISMATCH at tile level 0, tile 0"),
        "leaf-tile-drop: {out}"
    );

    let out = tamper_and_start(&data, "node-tile", |t| {
        let mut v = t.get(layout::tile_key(1, 0)).expect("get").expect("tile 1/0").to_vec();
        assert_eq!(v.len(), 32, "one level-8 node");
        v[0] ^= 0x01;
        t.insert(layout::tile_key(1, 0), v).expect("insert");
    });
    assert!(out.contains("NODE_MISMATCH"), "node-tile: {out}");
    assert!(out.contains("at size 256"), "node-tile: {out}");

    let out = tamper_and_start(&data, "node-tile-grown", |t| {
        let mut v = t.get(layout::tile_key(1, 0)).expect("get").expect("tile 1/0").to_vec();
        v.extend_from_slice(&[7u8; 32]);
        t.insert(layout::tile_key(1, 0), v).expect("insert");
    });
    assert!(
        out.contains("TILE_MISMATCH at tile level 1, tile 0"),
        "node-tile-grown: {out}"
    );

    // A stray copy of an entry of bundle 0 in the tail.
    let out = tamper_and_start(&data, "stray-chunk", |t| {
        let v = t.get(layout::bundle_key(0)).expect("get").expect("bundle 0");
        let leaves = layout::bundle_leaves(&v).expect("frames");
        let h = ledger_core::hash::leaf_hash(&leaves[9]);
        t.insert(layout::chunk_key(9), layout::encode_chunk([(&h, &leaves[9][..])]))
            .expect("insert");
    });
    assert!(out.contains("STRAY_RECORD: entry 9"), "stray-chunk: {out}");
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
        // Kill at a pseudo-random moment with appends in flight: once this round has 16 to 47
        // acknowledged appends (counted, not guessed from a sleep: a loaded machine acknowledges
        // a dozen in the 400 ms a sleep gave), then 0 to 63 ms later.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let (target, extra) = (16 + seed % 32, (seed >> 8) % 64);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut this_round = 0;
        while this_round < target {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((i, h))) => {
                    assert!(acked.insert(i, h).is_none(), "index {i} acknowledged twice");
                    this_round += 1;
                }
                Ok(None) => panic!("round {round}: the writers stopped after {this_round} appends, before the kill"),
                Err(_) => panic!("round {round}: only {this_round} appends acknowledged within 60 s"),
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(extra)).await;
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

/// The node's log file beside `data` (support::Node keeps stderr there), once it holds `needle`
/// (the copying thread may still be writing when the node has stopped: at most 5 s).
fn node_log_with(data: &Path, needle: &str) -> String {
    let path = data.with_extension("node.log");
    for _ in 0..50 {
        let log = std::fs::read_to_string(&path).unwrap_or_default();
        if log.contains(needle) {
            return log;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::fs::read_to_string(&path).unwrap_or_default()
}

/// STARTUP: start-up checks the `prev_root` chain only above the high-water mark (below it the
/// re-hashed entries must give the mark's signed root), yet an entry edited below the mark is
/// still refused by name: a flipped byte by the leaf-hash re-check of every entry read, an entry
/// rewritten with its stored leaf hash (a careful attacker) by the tiles and the mark's root, then
/// named by the full check (CHAIN_BROKEN at the next index), also when the level-1 tile is
/// rewritten to match. `--full-check` checks the whole chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_edited_below_the_high_water_mark_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = build(dir.path(), 300).await;
    let note = std::fs::read_to_string(ledger_store::high_water::mark_path(&data)).expect("mark");
    let mark = ledger_store::high_water::claimed_size(&note).expect("mark size");
    assert!(mark >= 257, "the mark covers bundle 0: {mark}");

    // Untouched: the chain is checked from the mark on only, and --full-check checks it all.
    let mut node = Node::try_start_env(&data, &[], &[("RUST_LOG", "info")]).expect("clean start");
    node.stop();
    let log = node_log_with(&data, "store verified");
    assert!(
        log.contains(&format!("chain_checked_from={mark}")),
        "fast path from the mark: {log}"
    );
    std::fs::remove_file(data.with_extension("node.log")).expect("rm log");
    let mut node = Node::try_start_env(&data, &["--full-check"], &[("RUST_LOG", "info")]).expect("full check");
    node.stop();
    let log = node_log_with(&data, "store verified");
    assert!(log.contains("chain_checked_from=0"), "full check: {log}");

    // A flipped byte in entry 5 (below the mark): the leaf hash re-computed as it is read.
    let out = tamper_and_start(
        &data,
        "below-flip",
        edit_bundle(|l| {
            let n = l[5].len();
            l[5][n - 1] ^= 0x01; // the last byte of the signature: the entry still decodes
        }),
    );
    assert!(out.contains("LEAF_HASH_MISMATCH at index 5"), "below-flip: {out}");

    // Entry 5 rewritten with a consistent leaf hash in tile 0/0.
    let rewrite = |t: &sled::Tree| -> Hash {
        let v = t.get(layout::bundle_key(0)).expect("get").expect("bundle 0");
        let mut leaves: Vec<Vec<u8>> = layout::bundle_leaves(&v).expect("frames");
        let mut e = ledger_core::entry::Entry::decode(&leaves[5]).expect("decode");
        e.timestamp_micros += 1;
        leaves[5] = e.encode();
        t.insert(
            layout::bundle_key(0),
            layout::encode_bundle(leaves.iter().map(Vec::as_slice)),
        )
        .expect("bundle");
        let mut tile = t.get(layout::tile_key(0, 0)).expect("get").expect("tile 0/0").to_vec();
        tile[5 * 32..6 * 32].copy_from_slice(&ledger_core::hash::leaf_hash(&leaves[5]).0);
        t.insert(layout::tile_key(0, 0), tile.clone()).expect("tile");
        let hashes: Vec<Hash> = tile
            .chunks_exact(32)
            .map(|c| Hash::from_slice(c).expect("hash"))
            .collect();
        ledger_core::merkle::root_of(&hashes)
    };
    let out = tamper_and_start(&data, "below-rewrite", |t| {
        rewrite(t);
    });
    assert!(out.contains("CHAIN_BROKEN at index 6"), "below-rewrite: {out}");
    assert!(out.contains("refusing to serve"), "below-rewrite: {out}");

    // ... and the level-1 tile rewritten to the new subtree hash of bundle 0.
    let out = tamper_and_start(&data, "below-rewrite-tiles", |t| {
        let sub = rewrite(t);
        let mut v = t.get(layout::tile_key(1, 0)).expect("get").expect("tile 1/0").to_vec();
        v[..32].copy_from_slice(&sub.0);
        t.insert(layout::tile_key(1, 0), v).expect("tile 1");
    });
    assert!(out.contains("CHAIN_BROKEN at index 6"), "below-rewrite-tiles: {out}");
}
