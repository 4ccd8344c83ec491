//! A read-only store reopened during a long scan (`Store::reopen_read_only`, used by
//! `ledger-verify replay --data` to free sled's pages) holds exactly what it held before: the same
//! entries, leaf hashes and checkpoints, never what the node appended since the copy; a writable
//! store cannot be reopened that way. `Store::checkpoints_from` resumes the checkpoint scan.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{commit, leaf};

use ledger_core::compact::CompactTree;
use ledger_core::hash::leaf_hash;
use ledger_store::Store;

#[test]
fn a_reopened_read_only_store_holds_the_same_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut ct = CompactTree::new();
    let cps = [0u64, 5, 256, 300, 600];
    for n in [5, 251, 44, 300] {
        commit(&store, &mut ct, n);
    }
    for s in cps {
        store.put_checkpoint(s, &format!("note {s}")).unwrap();
    }
    store.flush().unwrap();

    let ro = Store::open_read_only(dir.path()).unwrap();
    let cp_all: Vec<(u64, String)> = ro.checkpoints().map(Result::unwrap).collect();
    assert_eq!(cp_all.iter().map(|c| c.0).collect::<Vec<_>>(), cps);
    // checkpoints_from(k): those of size >= k, and nothing after them (the meta keys that
    // follow the checkpoints in key order are not checkpoints).
    for k in [0, 1, 5, 6, 256, 599, 600, 601, u64::MAX] {
        let got: Vec<(u64, String)> = ro.checkpoints_from(k).map(Result::unwrap).collect();
        let want: Vec<(u64, String)> = cp_all.iter().filter(|c| c.0 >= k).cloned().collect();
        assert_eq!(got, want, "from {k}");
    }

    // The node goes on appending to the original after the copy was taken.
    commit(&store, &mut ct, 10);
    store.put_checkpoint(610, "note 610").unwrap();
    store.flush().unwrap();

    let before: Vec<(u64, Vec<u8>)> = ro.entries(0, 600).map(Result::unwrap).collect();
    let mut ro = ro;
    for _ in 0..3 {
        ro = ro.reopen_read_only().unwrap();
        assert_eq!(ro.size().unwrap(), 600, "the copy, not the grown original");
        let again: Vec<(u64, Vec<u8>)> = ro.entries(0, 600).map(Result::unwrap).collect();
        assert_eq!(again, before);
        for i in [0, 255, 256, 299, 300, 599] {
            assert_eq!(ro.stored_leaf_hash(i).unwrap(), Some(leaf_hash(&leaf(i))), "entry {i}");
        }
        let cp: Vec<(u64, String)> = ro.checkpoints_from(300).map(Result::unwrap).collect();
        assert_eq!(cp, vec![(300, "note 300".to_string()), (600, "note 600".to_string())]);
    }
    // Reading on from the middle after a reopen gives the rest of the same log.
    let tail: Vec<(u64, Vec<u8>)> = ro.entries(377, 600).map(Result::unwrap).collect();
    assert_eq!(tail, before[377..].to_vec());

    let err = store
        .reopen_read_only()
        .err()
        .expect("a writable store is not reopened");
    assert!(
        err.to_string().contains("only a read-only store can be reopened"),
        "{err}"
    );
}
