//! Helpers shared by the ledger-store integration tests: a log of entries of varied lengths,
//! committed group by group.
#![allow(dead_code, clippy::unwrap_used)]

use ledger_core::compact::CompactTree;
use ledger_core::hash::leaf_hash;
use ledger_store::{PreparedEntry, Store, StoreError, TamperFault};

/// Entry `i` of the test log (0 to 600 bytes, so that framing errors would show).
pub fn leaf(i: u64) -> Vec<u8> {
    (0..(i * 7919 % 601)).map(|k| (i ^ k) as u8).collect()
}

/// Commits the next `n` entries of the test log to `store` as one group.
pub fn commit(store: &Store, ct: &mut CompactTree, n: u64) {
    commit_made(store, ct, n, |ct| leaf(ct.size()));
}

/// Commits `n` entries to `store` as one group, each the leaf `make` returns for the tree of the
/// entries before it (`ct`, which grows by the group).
pub fn commit_made(store: &Store, ct: &mut CompactTree, n: u64, mut make: impl FnMut(&CompactTree) -> Vec<u8>) {
    let mut group = Vec::new();
    let mut nodes = Vec::new();
    for _ in 0..n {
        let i = ct.size();
        let l = make(ct);
        let lh = leaf_hash(&l);
        ct.append_with(lh, |c| nodes.push(c));
        group.push(PreparedEntry {
            index: i,
            leaf: l,
            leaf_hash: lh,
            request: None,
            terms: Vec::new(),
            tickets: Vec::new(),
        });
    }
    store.commit_group(&group, &nodes, ct.size(), None).unwrap();
}

/// The index and detail of a named malformed-entry fault; panics on any other error.
pub fn malformed_at(e: StoreError) -> (u64, String) {
    match e {
        StoreError::Tampered(TamperFault::Malformed { index, detail }) => (index, detail),
        other => panic!("not a named malformed-entry fault: {other}"),
    }
}
