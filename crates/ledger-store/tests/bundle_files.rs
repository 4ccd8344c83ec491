//! Full bundles in append-only files beside sled (docs/format.md, "Bundle files"): sled holds a
//! 45-byte record per full bundle; the bytes survive reopening; a read-only copy reads the files
//! where they are; bytes of a group that never committed are written over; a file edited, cut or
//! deleted with ordinary tools is a fault naming the bundle and the file; a store whose bundles
//! are in sled itself (written before bundle files) is read as it is and gains files as it grows.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{commit, leaf, malformed_at};
use ledger_core::compact::CompactTree;
use ledger_store::Store;
use ledger_store::bundle_files::{BUNDLE_FILE, BUNDLES_DIR, RECORD_BYTES, file_name};
use ledger_store::layout::{BUNDLE_ENTRIES, BUNDLE_ZSTD, bundle_key};
use std::path::{Path, PathBuf};

/// Commits entries `[ct.size(), end)` of the test log in groups of `group`.
fn commit_to(store: &Store, ct: &mut CompactTree, end: u64, group: u64) {
    while ct.size() < end {
        let n = group.min(end - ct.size());
        commit(store, ct, n);
    }
}

/// Every reader gives exactly the first `n` entries of the test log.
fn expect_all(store: &Store, n: u64) {
    let all: Vec<(u64, Vec<u8>)> = store.entries(0, u64::MAX).map(Result::unwrap).collect();
    assert_eq!(all.len() as u64, n, "entries");
    for (i, l) in &all {
        assert_eq!(l, &leaf(*i), "entries() at {i}");
    }
    for i in (0..n).step_by(37).chain([n - 1]) {
        assert_eq!(store.entry(i).unwrap(), Some(leaf(i)), "entry({i})");
    }
}

fn first_file(dir: &Path) -> PathBuf {
    dir.join(BUNDLES_DIR).join(file_name(0))
}

#[test]
fn full_bundles_are_records_in_sled_and_bytes_in_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut ct = CompactTree::new();
    // One group of 1,000 completes bundles 0 to 2 at once; then groups of 37.
    commit_to(&store, &mut ct, 1000, 1000);
    commit_to(&store, &mut ct, 1500, 37);
    let full = 1500 / BUNDLE_ENTRIES;
    let mut bytes = 0;
    for n in 0..full {
        let rec = store.raw_tree().get(bundle_key(n)).unwrap().unwrap();
        assert_eq!(rec.len(), RECORD_BYTES, "bundle {n}");
        assert_eq!(rec[0], BUNDLE_FILE, "bundle {n}");
        let stored = store.stored_bundle_bytes(n).unwrap().unwrap();
        // Offsets follow each other in bundle order.
        assert_eq!(u64::from_be_bytes(rec[1..9].try_into().unwrap()), bytes, "bundle {n}");
        bytes += stored.len() as u64;
    }
    assert!(store.stored_bundle_bytes(full).unwrap().is_none());
    assert_eq!(std::fs::metadata(first_file(dir.path())).unwrap().len(), bytes);
    expect_all(&store, 1500);
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    expect_all(&store, 1500);

    // A read-only copy reads the files where they are: a file in bundles/ that cannot be copied
    // (a symbolic link to itself) does not stop it, and entries appended after it are not its.
    std::os::unix::fs::symlink("loop", dir.path().join(BUNDLES_DIR).join("loop")).unwrap();
    let ro = Store::open_read_only(dir.path()).unwrap();
    commit_to(&store, &mut ct, 2100, 300);
    expect_all(&ro, 1500);
    assert_eq!(ro.size().unwrap(), 1500);
    expect_all(&store, 2100);
    let ro = Store::open_read_only_without_lookups(dir.path()).unwrap();
    expect_all(&ro, 2100);
    assert!(ro.size_on_disk().unwrap() > bytes);
}

#[test]
fn bytes_of_a_group_that_never_committed_are_written_over() {
    let dir = tempfile::tempdir().unwrap();
    let mut ct = CompactTree::new();
    let len = {
        let store = Store::open(dir.path()).unwrap();
        commit_to(&store, &mut ct, 600, 100);
        std::fs::metadata(first_file(dir.path())).unwrap().len()
    };
    // As after a crash between the file's append and the group's batch: bytes after the last
    // record (here junk, as if from a bundle 2 that was never committed).
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(first_file(dir.path()))
        .unwrap();
    std::io::Write::write_all(&mut f, &[0xa5; 5000]).unwrap();
    drop(f);
    let store = Store::open(dir.path()).unwrap();
    expect_all(&store, 600);
    commit_to(&store, &mut ct, 800, 100);
    let two = store.stored_bundle_bytes(2).unwrap().unwrap().len() as u64;
    assert_eq!(
        std::fs::metadata(first_file(dir.path())).unwrap().len(),
        len + two,
        "bundle 2 was written over the junk, and the file cut after it"
    );
    expect_all(&store, 800);
}

#[test]
fn a_bundle_file_edited_cut_or_deleted_is_a_fault_naming_bundle_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut ct = CompactTree::new();
    commit_to(&store, &mut ct, 600, 150);
    let path = first_file(dir.path());
    let good = std::fs::read(&path).unwrap();
    let one = store.stored_bundle_bytes(0).unwrap().unwrap().len();
    let name = file_name(0);
    type Damage = (&'static str, Box<dyn Fn(&Path)>, u64, &'static str);
    let damages: Vec<Damage> = vec![
        (
            "flip in bundle 1",
            Box::new(move |p: &Path| {
                let mut b = std::fs::read(p).unwrap();
                b[one + 100] ^= 0x04;
                std::fs::write(p, b).unwrap();
            }),
            256,
            "do not match the SHA-256",
        ),
        (
            "cut",
            Box::new(move |p: &Path| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(p)
                    .unwrap()
                    .set_len(one as u64 + 10)
                    .unwrap();
            }),
            256,
            "was cut",
        ),
        (
            "deleted",
            Box::new(|p: &Path| std::fs::remove_file(p).unwrap()),
            0,
            "is missing",
        ),
    ];
    for (what, damage, index, why) in damages {
        damage(&path);
        // A fresh store: none of the file's bytes are cached anywhere.
        let ro = Store::open_read_only(dir.path()).unwrap();
        let r: Result<Vec<_>, _> = ro.entries(0, u64::MAX).collect();
        let (at, detail) = malformed_at(r.expect_err(what));
        assert_eq!(at, index, "{what}: {detail}");
        assert!(detail.contains(why), "{what}: {detail}");
        assert!(detail.contains(&name), "{what} names the file: {detail}");
        // Reading one entry of the damaged bundle is refused too, never another entry's bytes.
        let e = ro.entry(index + 3).expect_err(what);
        assert_eq!(malformed_at(e).0, index, "{what}: entry({})", index + 3);
        std::fs::write(&path, &good).unwrap();
        expect_all(&Store::open_read_only(dir.path()).unwrap(), 600);
    }

    // The record in sled edited to point at other bytes of the file: refused by its digest.
    let rec = store.raw_tree().get(bundle_key(1)).unwrap().unwrap().to_vec();
    let mut moved = rec.clone();
    moved[1..9].copy_from_slice(&0u64.to_be_bytes());
    moved[9..13].copy_from_slice(&u32::try_from(one).unwrap().to_be_bytes());
    store.raw_tree().insert(bundle_key(1), moved).unwrap();
    let r: Result<Vec<_>, _> = store.entries(0, u64::MAX).collect();
    let (at, detail) = malformed_at(r.expect_err("moved record"));
    assert_eq!(at, 256);
    assert!(detail.contains("do not match the SHA-256"), "{detail}");
    store.raw_tree().insert(bundle_key(1), rec).unwrap();
    expect_all(&store, 600);
}

#[test]
fn bundles_kept_in_sled_are_read_as_they_are_and_new_ones_go_to_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut ct = CompactTree::new();
    {
        let store = Store::open(dir.path()).unwrap();
        commit_to(&store, &mut ct, 600, 100);
        // Back to the store as written before bundle files: the stored bytes in sled itself.
        for n in 0..2 {
            let stored = store.stored_bundle_bytes(n).unwrap().unwrap();
            store.raw_tree().insert(bundle_key(n), stored).unwrap();
        }
        store.flush().unwrap();
    }
    std::fs::remove_dir_all(dir.path().join(BUNDLES_DIR)).unwrap();
    let store = Store::open(dir.path()).unwrap();
    expect_all(&store, 600);
    commit_to(&store, &mut ct, 1100, 100);
    for n in 0..2 {
        let v = store.raw_tree().get(bundle_key(n)).unwrap().unwrap();
        assert!(
            v.len() > RECORD_BYTES && [0, BUNDLE_ZSTD].contains(&v[0]),
            "bundle {n} stays in sled"
        );
    }
    let rec = store.raw_tree().get(bundle_key(2)).unwrap().unwrap();
    assert_eq!(rec[0], BUNDLE_FILE);
    assert_eq!(
        u64::from_be_bytes(rec[1..9].try_into().unwrap()),
        0,
        "the first bundle in a file starts it"
    );
    expect_all(&store, 1100);
    // A cut (ledger-node debug-fork) into a bundle in a file, then new entries: the file's bytes
    // after the cut are written over.
    store.truncate(700).unwrap();
    let mut ct = store.compact_tree().unwrap();
    commit_to(&store, &mut ct, 1300, 64);
    expect_all(&store, 1300);
    drop(store);
    expect_all(&Store::open_read_only(dir.path()).unwrap(), 1300);
}
