//! Issue 14 (MEM): the node's start-up check, `ledger-node export` and `backup` close and reopen
//! the store every `LEDGER_SCAN_BYTES` of entries read, so that their memory does not grow with
//! the log (sled keeps every page a scan reads until the store is closed: `ledger_store::scan`).
//! With the budget at 1 byte the store is reopened after every bundle; the check must still read
//! and fold every entry exactly once (the node serves the whole log, the same root), and must still
//! name a fault found after a reopen: a flipped byte in bundle 1, a flipped byte in the tail, and
//! a stray copy of an entry of bundle 0 (read before the first reopen) stored again in the tail,
//! a tile grown by one hash (found by the scan of the tile keys, which reopens too).
//! The export and the backup written with reopens are byte for byte those written without.
//! `ledger-node import` and `restore` reopen the store they write every `LEDGER_SCAN_BYTES` of
//! entries written (after a group of 1000) and read: the store they make holds every entry byte
//! for byte and replays clean, and an entry altered after the first reopen is refused by index.

mod support;

use ledger_store::layout;
use std::path::Path;
use std::process::Command;
use support::*;

/// Every bundle boundary is a reopen.
const SCAN: (&str, &str) = ("LEDGER_SCAN_BYTES", "1");

/// 10 + 300·`batches` entries (610 for 2: bundles 0 and 1 (0-511), entries 512-609 in the tail);
/// the node stopped.
async fn build(dir: &Path, batches: u64) -> std::path::PathBuf {
    let data = dir.join("d");
    let (mut node, mut c, reg) = registrar_ledger(&data, "ledger.test/scan", 8).await;
    for b in 0..batches {
        append_notes_batch(&mut c, &reg, 100 + 300 * b..400 + 300 * b).await;
    }
    node.stop();
    data
}

/// Applies `f` to the raw sled tree of a copy of `data` (its full bundles moved from their bundle
/// files into sled, where `f` can edit them); returns the stderr of a refused start that reopens
/// the store at every bundle.
fn tamper_and_start(data: &Path, name: &str, f: impl FnOnce(&sled::Tree)) -> String {
    let copy = data.parent().expect("parent").join(name);
    copy_dir(data, &copy);
    {
        let store = ledger_store::Store::open(&copy.join("store")).expect("open");
        layout::raw::inline_bundles(&store);
        f(store.raw_tree());
        store.flush().expect("flush");
    }
    match Node::try_start_env(&copy, &[], &[SCAN]) {
        Ok(_) => panic!("{name}: the node served a tampered store"),
        Err(stderr) => stderr,
    }
}

/// Rewrites entry bundle `n` after `f` edited its leaves.
fn edit_bundle(n: u64, f: impl FnOnce(&mut Vec<Vec<u8>>)) -> impl FnOnce(&sled::Tree) {
    move |t: &sled::Tree| {
        let v = t.get(layout::bundle_key(n)).expect("get").expect("bundle");
        let mut leaves: Vec<Vec<u8>> = layout::bundle_leaves(&v).expect("frames");
        assert_eq!(leaves.len(), 256);
        f(&mut leaves);
        t.insert(
            layout::bundle_key(n),
            layout::compress_bundle(layout::encode_bundle(leaves.iter().map(Vec::as_slice))),
        )
        .expect("insert");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_check_reopening_the_store_reads_every_entry_once_and_names_late_faults() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = build(dir.path(), 2).await;
    let root_of = |data: &Path| {
        let s = ledger_store::Store::open_read_only(&data.join("store")).expect("ro");
        (s.size().expect("size"), s.compact_tree().expect("tree").root())
    };
    let (size, root) = root_of(&data);
    assert_eq!(size, 610);

    // Untouched, it starts with a reopen after bundle 0 and after bundle 1, then after each of
    // the three tiles (level 0: tiles 0 and 1; level 1: tile 0) of the scan of the tile keys, and
    // serves every entry once, in order; its log names the entries checked and the reopens.
    {
        let mut node = Node::try_start_env(&data, &[], &[SCAN, ("RUST_LOG", "info")]).expect("start");
        let mut c = node.client().await;
        let got = entries(&mut c).await;
        assert_eq!(
            got.iter().map(|e| e.0).collect::<Vec<_>>(),
            (0..size).collect::<Vec<_>>()
        );
        node.stop();
    }
    let log = std::fs::read_to_string(data.with_extension("node.log")).expect("node log");
    let line = log
        .lines()
        .find(|l| l.contains("store verified"))
        .expect("a 'store verified' line");
    assert!(line.contains("size=610"), "{line}");
    assert!(line.contains("reopens=5"), "{line}");
    assert_eq!(root_of(&data), (size, root), "nothing changed");

    // A byte flipped in entry 300 (bundle 1, read after the first reopen).
    let out = tamper_and_start(
        &data,
        "bundle1-flip",
        edit_bundle(1, |l| {
            let n = l[300 - 256].len();
            l[300 - 256][n - 70] ^= 0x01;
        }),
    );
    assert!(out.contains("at index 300"), "bundle1-flip: {out}");
    assert!(out.contains("refusing to serve"), "bundle1-flip: {out}");

    // A byte flipped in entry 600 (the tail, after the last reopen).
    let out = tamper_and_start(&data, "tail-flip", |t| {
        let mut tail = layout::raw::read_tail(t);
        let v = &mut tail.get_mut(&600).expect("entry 600").1;
        let n = v.len();
        v[n - 70] ^= 0x01;
        layout::raw::write_tail(t, &tail);
    });
    assert!(out.contains("at index 600"), "tail-flip: {out}");
    assert!(out.contains("refusing to serve"), "tail-flip: {out}");

    // A copy of entry 9 (bundle 0, checked before the first reopen) stored again in the tail.
    let out = tamper_and_start(&data, "stray-after-reopen", |t| {
        let v = t.get(layout::bundle_key(0)).expect("get").expect("bundle 0");
        let leaves = layout::bundle_leaves(&v).expect("frames");
        let h = ledger_core::hash::leaf_hash(&leaves[9]);
        t.insert(layout::chunk_key(9), layout::encode_chunk([(&h, &leaves[9][..])]))
            .expect("insert");
    });
    assert!(out.contains("STRAY_RECORD: entry 9"), "stray-after-reopen: {out}");

    // The level-1 tile grown by one hash: its node hash still matches (checked with the entries),
    // its length is refused by the scan of the tile keys, which runs after every entry's reopen.
    let out = tamper_and_start(&data, "tile-grown-after-reopen", |t| {
        let mut v = t.get(layout::tile_key(1, 0)).expect("get").expect("tile 1/0").to_vec();
        v.extend_from_slice(&[7u8; 32]);
        t.insert(layout::tile_key(1, 0), v).expect("insert");
    });
    assert!(
        out.contains("TILE_MISMATCH at tile level 1, tile 0"),
        "tile-grown-after-reopen: {out}"
    );
}

fn node_cmd(args: &[&str], scan: bool) -> std::process::Output {
    let mut c = Command::new(bin("ledger-node"));
    c.args(args);
    if scan {
        c.env(SCAN.0, SCAN.1);
    } else {
        c.env_remove(SCAN.0);
    }
    c.output().expect("run ledger-node")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_backup_reopening_their_copy_write_the_same_bytes() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = build(dir.path(), 2).await;
    let d = data.to_str().expect("utf-8 path");
    let mut exports = Vec::new();
    for scan in [false, true] {
        let out = dir.path().join(format!("export-{scan}"));
        let o = node_cmd(&["export", "--data", d, "--out", out.to_str().expect("path")], scan);
        assert!(o.status.success(), "export: {}", String::from_utf8_lossy(&o.stderr));
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("exported 610 entries"),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
        exports.push(std::fs::read(&out).expect("export"));
    }
    assert_eq!(exports[0], exports[1], "the export with reopens is the same stream");

    let bk = dir.path().join("bk");
    let o = node_cmd(&["backup", "--data", d, "--out", bk.to_str().expect("path")], true);
    assert!(o.status.success(), "backup: {}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("backup of 610 entries"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(
        std::fs::read(bk.join("ledger.export")).expect("backup export"),
        exports[0],
        "the backup's export is the same stream"
    );

    // A flipped byte in bundle 1 of the data directory: export refuses it by index, with reopens.
    let bad = dir.path().join("bad");
    copy_dir(&data, &bad);
    {
        let store = ledger_store::Store::open(&bad.join("store")).expect("open");
        layout::raw::inline_bundles(&store);
        edit_bundle(1, |l| {
            let n = l[300 - 256].len();
            l[300 - 256][n - 70] ^= 0x01;
        })(store.raw_tree());
        store.flush().expect("flush");
    }
    let out = dir.path().join("export-bad");
    let o = node_cmd(
        &[
            "export",
            "--data",
            bad.to_str().expect("path"),
            "--out",
            out.to_str().expect("path"),
        ],
        true,
    );
    assert!(!o.status.success(), "a tampered store is not exported");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("refusing to export"), "{err}");
    assert!(err.contains("at index 300"), "{err}");
}

/// The byte range of entry `index` in export stream `stream` (frames: tag, u32 BE length, bytes).
fn entry_frame(stream: &[u8], index: u64) -> std::ops::Range<usize> {
    let mut at = ledger_store::export::MAGIC.len();
    let mut n = 0u64;
    while at < stream.len() {
        let len = u32::from_be_bytes(stream[at + 1..at + 5].try_into().expect("length")) as usize;
        if stream[at] == b'E' {
            if n == index {
                return at + 5..at + 5 + len;
            }
            n += 1;
        }
        at += 5 + len;
    }
    panic!("no entry {index} in the stream");
}

/// Imports `export` into data directory `new`, reopening the store after every group; asserts that
/// all `size` entries were imported and that the import removed its marker.
fn import_whole(export: &Path, new: &Path, size: u64) {
    let p = |p: &Path| p.to_str().expect("utf-8 path").to_string();
    let o = node_cmd(&["import", "--data", &p(new), "--in", &p(export)], true);
    assert!(o.status.success(), "import: {}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("imported and verified {size} entries")),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(
        !new.join("import-in-progress").exists(),
        "the import's marker is removed"
    );
}

/// Every entry of the store of data directory `a` equals that of `b`, and both have `size`.
fn same_entries(a: &Path, b: &Path, size: u64) {
    let a = ledger_store::Store::open_read_only(&a.join("store")).expect("open a");
    let b = ledger_store::Store::open_read_only(&b.join("store")).expect("open b");
    assert_eq!((a.size().expect("size"), b.size().expect("size")), (size, size));
    let (ea, eb): (Vec<_>, Vec<_>) = (
        a.entries(0, size).map(|e| e.expect("entry a")).collect(),
        b.entries(0, size).map(|e| e.expect("entry b")).collect(),
    );
    assert_eq!(ea.len() as u64, size);
    assert!(ea == eb, "every entry byte for byte");
    assert_eq!(
        a.compact_tree().expect("tree").root(),
        b.compact_tree().expect("tree").root()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_and_restore_reopening_their_store_keep_every_entry_and_refuse_late_faults() {
    let dir = tempfile::tempdir().expect("tmp");
    // 1210 entries: the import commits groups of 1000, so with a budget of 1 byte it reopens the
    // store after entry 999; entry 1100 is read and written after that reopen.
    let data = build(dir.path(), 4).await;
    let size = 1210;
    let p = |p: &Path| p.to_str().expect("utf-8 path").to_string();
    let export = dir.path().join("export");
    let o = node_cmd(&["export", "--data", &p(&data), "--out", &p(&export)], false);
    assert!(o.status.success(), "export: {}", String::from_utf8_lossy(&o.stderr));

    // Import reopening at every group: the same log, byte for byte, exported again as the same
    // stream; ledger-verify replays it clean.
    let new = dir.path().join("imported");
    import_whole(&export, &new, size);
    same_entries(&data, &new, size);
    let again = dir.path().join("export-again");
    let o = node_cmd(&["export", "--data", &p(&new), "--out", &p(&again)], true);
    assert!(o.status.success(), "export: {}", String::from_utf8_lossy(&o.stderr));
    let stream = std::fs::read(&export).expect("export");
    assert!(
        std::fs::read(&again).expect("export again") == stream,
        "the imported store exports the same stream"
    );
    replay_data_ok(&new);

    // One byte of entry 1100's signature flipped: the import refuses it by index.
    let mut bad = stream.clone();
    let e = entry_frame(&bad, 1100);
    bad[e.end - 3] ^= 0x01;
    let bad_export = dir.path().join("export-bad");
    std::fs::write(&bad_export, &bad).expect("write");
    let o = node_cmd(
        &[
            "import",
            "--data",
            &p(&dir.path().join("imported-bad")),
            "--in",
            &p(&bad_export),
        ],
        true,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "a tampered export was imported");
    assert!(err.contains("entry 1100:"), "{err}");

    // Restore reopening at every group and bundle: the same log; ledger-verify replays it clean.
    let bk = dir.path().join("bk");
    let o = node_cmd(&["backup", "--data", &p(&data), "--out", &p(&bk)], true);
    assert!(o.status.success(), "backup: {}", String::from_utf8_lossy(&o.stderr));
    let restored = dir.path().join("restored");
    let o = node_cmd(&["restore", "--from", &p(&bk), "--data", &p(&restored)], true);
    assert!(o.status.success(), "restore: {}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("restored and verified {size} entries")),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    same_entries(&data, &restored, size);
    assert!(
        !restored.join("import-in-progress").exists(),
        "the restore's marker is removed"
    );
    replay_data_ok(&restored);

    // The same flipped byte in the backup's export, with a manifest made to match it: the
    // restore's import refuses it by index and removes the half-made store.
    let bk_bad = dir.path().join("bk-bad");
    copy_dir(&bk, &bk_bad);
    std::fs::write(bk_bad.join("ledger.export"), &bad).expect("write");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bk_bad.join("manifest.json")).expect("manifest")).expect("json");
    for f in m["files"].as_array_mut().expect("files") {
        if f["path"] == "ledger.export" {
            f["bytes"] = serde_json::json!(bad.len());
            f["sha256"] = serde_json::json!(ledger_core::hash::Hash::digest(&bad).to_hex());
        }
    }
    std::fs::write(bk_bad.join("manifest.json"), serde_json::to_vec(&m).expect("json")).expect("write");
    let target = dir.path().join("restored-bad");
    let o = node_cmd(&["restore", "--from", &p(&bk_bad), "--data", &p(&target)], true);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "a tampered backup was restored");
    assert!(
        err.contains("ledger.export does not verify") && err.contains("entry 1100:"),
        "{err}"
    );
    assert!(!target.join("store").exists(), "the refused store is removed");
    assert!(
        !target.join("import-in-progress").exists(),
        "the refused restore's marker is removed with its store"
    );
}

/// Bytes of the files below `dir` (0 while it does not exist).
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

/// The log that the import and restore kill tests cut: 20,002 entries in `data` (the node
/// stopped; an import reopening after every group of 1000 takes about two seconds here). Returns
/// its size and the store bytes past which to kill the process writing it again: 40 % of the
/// written store's directory.
async fn cut_log(data: &Path, origin: &str) -> (u64, u64) {
    let (mut node, mut c, reg) = registrar_ledger(data, origin, 0).await;
    for b in 0..4u64 {
        append_notes_batch(&mut c, &reg, b * 5000..(b + 1) * 5000).await;
    }
    node.stop();
    (20_002, dir_bytes(&data.join("store")) * 2 / 5)
}

/// Runs `ledger-node ARGS` (an import or a restore into data directory `new`, reopening after
/// every group) and kills it (SIGKILL) once `new/store` has grown past `cut` bytes (polled every
/// 5 ms, for two minutes at most). Asserts the cut was real: the store holds some but not all of
/// the `size` entries. Returns how many it holds.
fn kill_once_grown(args: &[&str], new: &Path, cut: u64, size: u64) -> u64 {
    let mut child = Command::new(bin("ledger-node"))
        .args(args)
        .env(SCAN.0, SCAN.1)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn ledger-node");
    let t = std::time::Instant::now();
    while t.elapsed() < std::time::Duration::from_secs(120)
        && child.try_wait().expect("wait").is_none()
        && dir_bytes(&new.join("store")) <= cut
    {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(
        child.try_wait().expect("wait").is_none(),
        "{args:?} ended before it was killed (make the log larger)"
    );
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    let held = ledger_store::Store::open_read_only(&new.join("store"))
        .expect("open the cut store")
        .size()
        .expect("size");
    assert!(
        0 < held && held < size,
        "{held} of {size} entries written before the kill"
    );
    held
}

/// `ledger-node import` killed half-way (SIGKILL: the OOM killer, a power cut) leaves part of the
/// log in DATA/store and its marker (DATA/import-in-progress) beside it. What an operator tries
/// next is refused with one message naming the way forward: `serve` (with `--adopt-store` too,
/// which before the marker served the part as the whole log), a second `import`, `export`,
/// `backup` and `ledger-verify replay --data` (which before replayed the part as OK). The way
/// forward it names (delete DATA/store, run the import again) gives the whole log: served, byte
/// for byte, replayed clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_killed_half_way_is_refused_until_imported_again() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    let (size, cut) = cut_log(&data, "ledger.test/cut").await;
    let p = |p: &Path| p.to_str().expect("utf-8 path").to_string();
    let export = dir.path().join("export");
    let o = node_cmd(&["export", "--data", &p(&data), "--out", &p(&export)], false);
    assert!(o.status.success(), "export: {}", String::from_utf8_lossy(&o.stderr));

    // The import, killed once its store has grown past the export's length.
    let new = dir.path().join("new");
    let marker = new.join("import-in-progress");
    let held = kill_once_grown(&["import", "--data", &p(&new), "--in", &p(&export)], &new, cut, size);
    assert!(marker.exists(), "no marker after the cut");
    let why = format!(
        "an import into {} did not finish ({} is there): its store may hold part of the log only; delete {} and \
         run the import again",
        new.display(),
        marker.display(),
        new.join("store").display()
    );
    let refused = |o: &std::process::Output, code: i32, what: &str| {
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{what}: {err}");
        assert!(err.contains(&why), "{what}: {err}");
        assert!(
            err.contains(&format!("ledger-node import --data {}", new.display())),
            "{what}: {err}"
        );
    };
    // (a) The node does not serve it, not even told to adopt the store without a mark.
    let e = Node::try_start(&new)
        .err()
        .expect("the node served a half-imported log");
    assert!(
        e.contains(&format!("refusing to serve {}: {why}", new.display())),
        "{e}"
    );
    let o = node_cmd(
        &[
            "serve",
            "--adopt-store",
            "--data",
            &p(&new),
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "off",
        ],
        false,
    );
    refused(&o, 1, "serve --adopt-store");
    // (b) Nor is it imported into again, exported or backed up.
    let o = node_cmd(&["import", "--data", &p(&new), "--in", &p(&export)], false);
    refused(&o, 1, "import again");
    let o = node_cmd(
        &["export", "--data", &p(&new), "--out", &p(&dir.path().join("x"))],
        false,
    );
    refused(&o, 1, "export");
    let o = node_cmd(
        &["backup", "--data", &p(&new), "--out", &p(&dir.path().join("bk"))],
        false,
    );
    refused(&o, 1, "backup");
    // (c) Nor replayed as if it were the log (exit 2: not a log to judge).
    let o = Command::new(bin("ledger-verify"))
        .args(["replay", "--data", &p(&new)])
        .output()
        .expect("run ledger-verify");
    refused(&o, 2, "replay");
    // None of them changed the store.
    let again = ledger_store::Store::open_read_only(&new.join("store"))
        .expect("open")
        .size()
        .expect("size");
    assert_eq!(again, held);

    // The way forward: delete DATA/store, import again. The whole log, the marker gone; the node
    // (given the node key from custody) serves every entry, and the log replays clean.
    std::fs::remove_dir_all(new.join("store")).expect("rm store");
    import_whole(&export, &new, size);
    copy_dir(&data.join("keys"), &new.join("keys"));
    let mut node = Node::start(&new);
    let mut c = node.client().await;
    assert_eq!(entries(&mut c).await.len() as u64, size, "every entry served");
    node.stop();
    same_entries(&data, &new, size);
    replay_data_ok(&new);
}

/// `ledger-node restore` killed half-way (SIGKILL while it writes the backup's log into the new
/// store) leaves part of the log and the marker, as an import does: the node does not serve it,
/// `ledger-verify replay --data` does not judge it, and a second restore is refused, each naming
/// the way forward (delete DATA/store, run the same restore again); that way gives the whole log,
/// served byte for byte and replayed clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_killed_half_way_is_refused_until_restored_again() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    let (size, cut) = cut_log(&data, "ledger.test/cut-restore").await;
    let p = |p: &Path| p.to_str().expect("utf-8 path").to_string();
    let bk = dir.path().join("bk");
    let o = node_cmd(&["backup", "--data", &p(&data), "--out", &p(&bk)], false);
    assert!(o.status.success(), "backup: {}", String::from_utf8_lossy(&o.stderr));

    let new = dir.path().join("new");
    let marker = new.join("import-in-progress");
    let restore = ["restore", "--from", &p(&bk), "--data", &p(&new)];
    let held = kill_once_grown(&restore, &new, cut, size);
    assert!(marker.exists(), "no marker after the cut");
    let command = format!("ledger-node restore --from {} --data {}", bk.display(), new.display());
    let why = format!(
        "an import into {} did not finish ({} is there): its store may hold part of the log only; delete {} and \
         run the import again (`{command}`)",
        new.display(),
        marker.display(),
        new.join("store").display()
    );
    let e = Node::try_start(&new)
        .err()
        .expect("the node served a half-restored log");
    assert!(
        e.contains(&format!("refusing to serve {}: {why}", new.display())),
        "{e}"
    );
    let o = node_cmd(&restore, false);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "restore again: {err}");
    assert!(
        err.contains(&format!("refusing to restore into {}: {why}", new.display())),
        "restore again: {err}"
    );
    let o = Command::new(bin("ledger-verify"))
        .args(["replay", "--data", &p(&new)])
        .output()
        .expect("run ledger-verify");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "replay: {err}");
    assert!(
        err.contains(&format!("refusing to replay {}: {why}", new.display())),
        "replay: {err}"
    );
    let again = ledger_store::Store::open_read_only(&new.join("store"))
        .expect("open")
        .size()
        .expect("size");
    assert_eq!(again, held, "a refusal changed the store");

    // The way forward the refusals name.
    std::fs::remove_dir_all(new.join("store")).expect("rm store");
    let o = node_cmd(&restore, false);
    assert!(o.status.success(), "restore: {}", String::from_utf8_lossy(&o.stderr));
    assert!(!marker.exists(), "the restore's marker is removed");
    copy_dir(&data.join("keys"), &new.join("keys"));
    let mut node = Node::start(&new);
    let mut c = node.client().await;
    assert_eq!(entries(&mut c).await.len() as u64, size, "every entry served");
    node.stop();
    same_entries(&data, &new, size);
    replay_data_ok(&new);
}
