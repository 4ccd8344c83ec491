//! Long scans that reopen the store (`ledger_store::scan`, issue 14: start-up, export and backup
//! memory flat in the log size): a writable store reopened in place (`Store::reopen`) holds the
//! same log and stays writable; an export that reopens its store every few KiB of entries writes
//! exactly the stream of one pass, with every entry once and each checkpoint after the entry that
//! completes it.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{commit, leaf};

use ledger_core::compact::CompactTree;
use ledger_core::hash::leaf_hash;
use ledger_store::Store;
use ledger_store::scan::{Owned, Reopen};

/// The frames of an export stream: (tag, bytes).
fn frames(stream: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = ledger_store::export::MAGIC.len();
    while at < stream.len() {
        let tag = stream[at];
        let len = u32::from_be_bytes(stream[at + 1..at + 5].try_into().unwrap()) as usize;
        out.push((tag, stream[at + 5..at + 5 + len].to_vec()));
        at += 5 + len;
    }
    out
}

#[test]
fn an_export_that_reopens_its_store_writes_the_stream_of_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut ct = CompactTree::new();
    for n in [5, 251, 44, 300, 700, 33] {
        commit(&store, &mut ct, n);
    }
    let size = ct.size();
    let cps = [0u64, 5, 256, 300, 600, 1000, size];
    for s in cps {
        store.put_checkpoint(s, &format!("note {s}")).unwrap();
    }
    store.flush().unwrap();
    let mut one = Vec::new();
    assert_eq!(
        ledger_store::export::export(&store, &mut one).unwrap(),
        (size, cps.len() as u64)
    );
    // Every entry once, in order, each checkpoint right after the entry that completes it.
    let f = frames(&one);
    let mut n = 0u64;
    let mut seen_cps = Vec::new();
    for (tag, b) in &f {
        match tag {
            b'E' => {
                assert_eq!(b, &leaf(n), "entry {n}");
                n += 1;
            }
            b'C' => {
                assert_eq!(String::from_utf8(b.clone()).unwrap(), format!("note {n}"));
                seen_cps.push(n);
            }
            _ => assert_eq!(*tag, b'Z'),
        }
    }
    assert_eq!((n, seen_cps.as_slice()), (size, &cps[..]));

    // The writable store itself, reopened every ~16 KiB of entries (about 60 entries).
    let mut w = Owned::new(store);
    let mut again = Vec::new();
    assert_eq!(
        ledger_store::export::export_reopening(&mut w, &mut again, 16 << 10).unwrap(),
        (size, cps.len() as u64)
    );
    assert!(w.reopens() > 10, "reopened {} times", w.reopens());
    assert_eq!(again, one, "the same stream");

    // A reopened writable store is the same store, still writable.
    let store = w.into_inner().unwrap();
    assert_eq!(store.size().unwrap(), size);
    commit(&store, &mut ct, 10);
    let store = store.reopen().unwrap();
    assert_eq!(store.size().unwrap(), size + 10);
    for i in [0, 255, 256, size, size + 9] {
        assert_eq!(store.entry(i).unwrap(), Some(leaf(i)), "entry {i}");
        assert_eq!(
            store.stored_leaf_hash(i).unwrap(),
            Some(leaf_hash(&leaf(i))),
            "entry {i}"
        );
    }
    assert_eq!(store.compact_tree().unwrap().root(), ct.root());
    drop(store);

    // A read-only copy, reopened every ~16 KiB: every entry once, in order.
    let mut ro = Owned::new(Store::open_read_only(dir.path()).unwrap());
    let size2 = ro.store().unwrap().size().unwrap();
    let mut third = Vec::new();
    ledger_store::export::export_reopening(&mut ro, &mut third, 16 << 10).unwrap();
    let f3 = frames(&third);
    let entries: Vec<&Vec<u8>> = f3.iter().filter(|(t, _)| *t == b'E').map(|(_, b)| b).collect();
    assert_eq!(entries.len() as u64, size2);
    assert!(entries.iter().enumerate().all(|(i, b)| **b == leaf(i as u64)));
}
