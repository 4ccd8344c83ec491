//! Store layout 2 (issue 14): groups of many sizes round-trip through bundles, tiles and tail
//! chunks; proofs from the store equal those of an independent in-memory tree; a group costs O(1)
//! sled keys; a group that cannot be staged writes nothing.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{commit_made, leaf};
use ledger_core::compact::CompactTree;
use ledger_core::hash::{Hash, leaf_hash};
use ledger_core::merkle::{NodeSource, consistency_proof, inclusion_proof, root_of};
use ledger_store::layout::{BUNDLE_ENTRIES, bundle_key, chunk_key, tile_key};
use ledger_store::{PreparedEntry, Store, StoreError};

struct Log {
    ct: CompactTree,
    hashes: Vec<Hash>,
}

impl Log {
    fn commit(&mut self, store: &Store, n: u64) {
        let hashes = &mut self.hashes;
        commit_made(store, &mut self.ct, n, |ct| {
            let l = leaf(ct.size());
            hashes.push(leaf_hash(&l));
            l
        });
    }
}

fn prefix_count(store: &Store, p: u8) -> usize {
    store.raw_tree().scan_prefix([p]).count()
}

/// Checks everything the store answers for a log of `log.hashes.len()` entries (the proofs
/// against the in-memory tree, which recomputes every node from the leaves, only when `proofs`).
fn check(store: &Store, log: &Log, probes: &[u64], proofs: bool) {
    let size = log.hashes.len() as u64;
    assert_eq!(store.size().unwrap(), size);
    assert_eq!(
        store.compact_tree().unwrap().root(),
        root_of(&log.hashes),
        "root at {size}"
    );
    // Bundles and level-0 tiles for the full bundles only; chunks for the rest.
    assert_eq!(prefix_count(store, b'b') as u64, size / BUNDLE_ENTRIES);
    let chunks = prefix_count(store, b'p');
    assert_eq!(chunks == 0, size.is_multiple_of(BUNDLE_ENTRIES), "chunks at {size}");
    for &i in probes.iter().filter(|&&i| i < size) {
        assert_eq!(store.entry(i).unwrap(), Some(leaf(i)), "entry {i} at {size}");
        assert_eq!(store.stored_leaf_hash(i).unwrap(), Some(log.hashes[i as usize]));
        assert_eq!(store.node(0, i).unwrap(), log.hashes[i as usize]);
        if !proofs {
            continue;
        }
        for s in [i + 1, (i + 1 + size) / 2, size] {
            assert_eq!(
                inclusion_proof(store, i, s).unwrap(),
                inclusion_proof(&log.hashes, i, s).unwrap(),
                "inclusion {i} in {s}"
            );
        }
        if i > 0 {
            assert_eq!(
                consistency_proof(store, i, size).unwrap(),
                consistency_proof(&log.hashes, i, size).unwrap(),
                "consistency {i} to {size}"
            );
        }
    }
    assert_eq!(store.entry(size).unwrap(), None);
    assert_eq!(store.stored_leaf_hash(size).unwrap(), None);
}

#[test]
fn groups_of_many_sizes_round_trip_through_bundles_tiles_and_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.layout(), 2);
    let mut log = Log {
        ct: CompactTree::new(),
        hashes: Vec::new(),
    };
    let probes = [
        0, 1, 17, 254, 255, 256, 257, 511, 512, 5000, 5519, 65535, 65536, 65537, 66000, 70_000,
    ];
    for n in [
        1u64, 255, 256, 257, 5000, 1, 1, 1, 300, 3, 59_999, 1000, 254, 2, 512, 3000, 1,
    ] {
        log.commit(&store, n);
        check(&store, &log, &probes, log.hashes.len() < 8000);
        // Live chunks are bounded by the groups of one bundle.
        assert!(prefix_count(&store, b'p') <= 256);
    }
    let size = log.hashes.len() as u64;
    assert!(size > 65_536 + 256, "crosses a level-1 tile: {size}");
    // Streaming every entry gives them in order, from anywhere.
    for start in [0u64, 255, 256, 65_535, size - 3] {
        let got: Vec<(u64, Vec<u8>)> = store.entries(start, size).map(Result::unwrap).collect();
        assert_eq!(got.len() as u64, size - start);
        for (k, (i, l)) in got.into_iter().enumerate() {
            assert_eq!(i, start + k as u64);
            assert_eq!(l, leaf(i));
        }
    }
    let some: Vec<u64> = store.entries(300, 700).map(|r| r.unwrap().0).collect();
    assert_eq!(some, (300..700).collect::<Vec<_>>());
    // The tiles are the spec's: level 1 tile 0 is full (the roots of bundles 0 to 255).
    let t1 = store.raw_tree().get(tile_key(1, 0)).unwrap().unwrap();
    assert_eq!(t1.len(), 256 * 32);
    assert_eq!(&t1[32..64], &root_of(&log.hashes[256..512]).0);
    let t1b = store.raw_tree().get(tile_key(1, 1)).unwrap().unwrap();
    assert_eq!(t1b.len() as u64, (size / 256 - 256) * 32);
    let t2 = store.raw_tree().get(tile_key(2, 0)).unwrap().unwrap();
    assert_eq!(&t2[..], &root_of(&log.hashes[..65_536]).0);
    assert!(store.raw_tree().get(tile_key(0, size / 256)).unwrap().is_none());
    // A reopened store answers the same.
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    check(&store, &log, &probes, true);
}

#[test]
fn proofs_equal_an_independent_tree_at_every_small_size() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut log = Log {
        ct: CompactTree::new(),
        hashes: Vec::new(),
    };
    let mut n = 1u64;
    while log.hashes.len() < 1100 {
        log.commit(&store, n % 37 + 1);
        n += 1;
        let size = log.hashes.len() as u64;
        for i in (0..size).step_by(7) {
            assert_eq!(
                inclusion_proof(&store, i, size).unwrap(),
                inclusion_proof(&log.hashes, i, size).unwrap(),
                "inclusion {i} in {size}"
            );
        }
        for old in (1..size).step_by(13) {
            assert_eq!(
                consistency_proof(&store, old, size).unwrap(),
                consistency_proof(&log.hashes, old, size).unwrap()
            );
        }
    }
}

#[test]
fn a_group_costs_a_few_keys_not_one_per_entry() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut log = Log {
        ct: CompactTree::new(),
        hashes: Vec::new(),
    };
    for _ in 0..100 {
        log.commit(&store, 1000);
    }
    // The entry and hash keyspaces (the lookups' postings `x`, journal `j` and `mindexed` are
    // counted below): 390 bundles, 390 level-0 tiles, 2 level-1 tiles, 1 level-2 tile, one
    // chunk, `mlayout` and `msize`.
    let lookup = |k: &[u8]| matches!(k.first(), Some(b'x' | b'j')) || k == b"mindexed";
    let keys = store
        .raw_tree()
        .iter()
        .keys()
        .filter(|k| !lookup(k.as_ref().unwrap()))
        .count();
    assert_eq!(keys, 390 + 390 + 2 + 1 + 1 + 2, "keys for 100,000 entries");
    // Everything, lookups included (postings of the one kind term in chunks of 128, journal
    // keys not yet synced): still about one key per hundred entries.
    let all = store.raw_tree().len();
    assert!(all < 1_000 + 786, "{all} sled keys for 100,000 entries");
    assert_eq!(prefix_count(&store, b'p'), 1);
    assert!(store.raw_tree().get(chunk_key(99_840)).unwrap().is_some());
    assert!(store.raw_tree().get(bundle_key(389)).unwrap().is_some());
}

#[test]
fn a_group_that_cannot_be_staged_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut log = Log {
        ct: CompactTree::new(),
        hashes: Vec::new(),
    };
    log.commit(&store, 200);
    let before: Vec<_> = store.raw_tree().iter().map(Result::unwrap).collect();
    // Indices with a hole.
    let e = |i: u64| PreparedEntry {
        index: i,
        leaf: leaf(i),
        leaf_hash: leaf_hash(&leaf(i)),
        request: None,
        terms: Vec::new(),
        tickets: Vec::new(),
    };
    let r = store.commit_group(&[e(200), e(202)], &[], 203, None);
    assert!(
        matches!(&r, Err(StoreError::Corrupt(m)) if m.contains("not consecutive at index 202")),
        "{r:?}"
    );
    // A group completing bundle 0 whose earlier chunks were lost: refused, not a short bundle.
    store.raw_tree().remove(chunk_key(0)).unwrap();
    let group: Vec<PreparedEntry> = (200..300).map(e).collect();
    let r = store.commit_group(&group, &[], 300, None);
    assert!(
        matches!(&r, Err(StoreError::Corrupt(m)) if m.contains("tail chunks of bundle 0")),
        "{r:?}"
    );
    store
        .raw_tree()
        .insert(
            chunk_key(0),
            before
                .iter()
                .find(|(k, _)| k[..] == chunk_key(0)[..])
                .unwrap()
                .1
                .clone(),
        )
        .unwrap();
    let after: Vec<_> = store.raw_tree().iter().map(Result::unwrap).collect();
    assert_eq!(before, after, "nothing of a refused group is written");
}

#[test]
fn truncate_then_append_gives_the_tree_of_the_new_history() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut log = Log {
        ct: CompactTree::new(),
        hashes: Vec::new(),
    };
    log.commit(&store, 600);
    log.commit(&store, 70);
    for from in [650u64, 512, 300, 3] {
        store.truncate(from).unwrap();
        log.hashes.truncate(from as usize);
        log.ct = CompactTree::new();
        for h in &log.hashes {
            log.ct.append(*h);
        }
        check(&store, &log, &[0, 2, 255, 256, 299, 511], true);
        log.commit(&store, 40);
        check(&store, &log, &[0, 2, 255, 256, from, from + 39], true);
    }
}

#[test]
fn a_layout_1_store_is_refused_for_writing_and_read_for_export() {
    let dir = tempfile::tempdir().unwrap();
    {
        // Layout 1: `e` ‖ index → leaf hash ‖ leaf, and msize; no `mlayout`.
        let db = sled::open(dir.path()).unwrap();
        let t = db.open_tree("ledger").unwrap();
        for i in 0..20u64 {
            let mut k = vec![b'e'];
            k.extend_from_slice(&i.to_be_bytes());
            let mut v = leaf_hash(&leaf(i)).0.to_vec();
            v.extend_from_slice(&leaf(i));
            t.insert(k, v).unwrap();
        }
        t.insert(b"msize", &20u64.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    let err = Store::open(dir.path()).err().expect("refused");
    assert!(matches!(err, StoreError::OldLayout { found: 1 }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("ledger-node export --data OLD --out FILE"), "{msg}");
    assert!(msg.contains("ledger-node import --data NEW --in FILE"), "{msg}");
    let ro = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(ro.layout(), 1);
    let all: Vec<(u64, Vec<u8>)> = ro.entries(0, 20).map(Result::unwrap).collect();
    assert_eq!(all.len(), 20);
    assert_eq!(all[7], (7, leaf(7)));
    assert_eq!(ro.stored_leaf_hash(3).unwrap(), Some(leaf_hash(&leaf(3))));
    assert_eq!(
        ro.node(2, 1).unwrap(),
        root_of(&(4..8).map(|i| leaf_hash(&leaf(i))).collect::<Vec<_>>())
    );
}

/// Readers racing the writer never miss an acknowledged entry, its leaf hash or a proof node, even
/// while a group replaces a bundle's chunks by the bundle.
#[test]
fn readers_racing_the_writer_see_every_acknowledged_entry() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(Store::open(dir.path()).unwrap());
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (store, done) = (store.clone(), done.clone());
        std::thread::spawn(move || {
            let mut checked = 0u64;
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                let size = store.size().unwrap();
                if size == 0 {
                    continue;
                }
                // The entries at the edge of the tail are the ones a bundle completion moves.
                for i in [
                    size - 1,
                    (size - 1) / 256 * 256,
                    size.saturating_sub(200),
                    size.saturating_sub(257),
                ] {
                    assert_eq!(store.entry(i).unwrap(), Some(leaf(i)), "entry {i} of {size}");
                    assert_eq!(store.stored_leaf_hash(i).unwrap(), Some(leaf_hash(&leaf(i))));
                    checked += 1;
                }
                let all = store.entries(size.saturating_sub(300), size).count() as u64;
                assert_eq!(all, size.min(300), "entries at {size}");
                inclusion_proof(&*store, size - 1, size).unwrap();
            }
            checked
        })
    };
    let mut log = Log {
        ct: CompactTree::new(),
        hashes: Vec::new(),
    };
    for k in 0..400u64 {
        log.commit(&store, k % 29 + 1);
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    assert!(reader.join().unwrap() > 0);
}

/// A full bundle cut short in the data directory (255 leaves for 256 entries, the next entries in
/// the tail): reading the entries in order ends after the bundle's last leaf and the tail's chunks
/// instead of reading the short bundle again forever (a reader that runs past the first fault,
/// such as `ledger-verify replay --data`, must terminate).
#[test]
fn entries_of_a_store_with_a_short_bundle_end() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut log = Log {
        ct: CompactTree::new(),
        hashes: Vec::new(),
    };
    log.commit(&store, 300);
    let v = store.stored_bundle_bytes(0).unwrap().unwrap();
    let mut leaves: Vec<Vec<u8>> = ledger_store::layout::bundle_leaves(&v).unwrap();
    leaves.remove(200);
    store
        .raw_tree()
        .insert(
            bundle_key(0),
            ledger_store::layout::encode_bundle(leaves.iter().map(Vec::as_slice)),
        )
        .unwrap();
    // On a thread, so that an iteration that never ends fails the test instead of hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let read: Vec<u64> = store.entries(0, u64::MAX).map(|r| r.unwrap().0).collect();
        let verified = store.verify().is_ok();
        let _ = tx.send((read, verified));
    });
    let (read, verified) = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the iteration over a store with a short bundle ends");
    assert_eq!(read.len(), 255 + 44, "255 bundled and 44 in the tail");
    assert!(!verified, "the short bundle is refused");
}

/// A store held open is refused to a second writer (after the lock wait, naming the lock), and
/// opens again at once after the holder is dropped (sled's lock of a dropped database is waited
/// for, not reported).
#[test]
fn a_store_held_open_is_refused_and_reopens_once_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let held = Store::open(dir.path()).unwrap();
    let err = Store::open(dir.path()).err().expect("a second writer is refused");
    assert!(err.to_string().contains("could not acquire lock"), "{err}");
    drop(held);
    for _ in 0..20 {
        let again = Store::open(dir.path()).unwrap();
        assert_eq!(again.size().unwrap(), 0);
    }
}
