//! `commit_group_with_meta`: meta values land with the group; reserved names are refused.
//! `for_each_request`/`put_requests`: request ids listed and restored (checked against the entries).
#![allow(clippy::unwrap_used, missing_docs)]

use ledger_core::compact::CompactTree;
use ledger_core::dsse::Envelope;
use ledger_core::entry::Entry;
use ledger_core::hash::{Hash, leaf_hash};
use ledger_store::{PreparedEntry, Store, StoreError, request_key};

#[test]
fn meta_is_written_with_the_group_and_reserved_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.meta("raft.applied").unwrap(), None);
    store
        .commit_group_with_meta(&[], &[], 0, None, &[("raft.applied", b"one")])
        .unwrap();
    assert_eq!(store.meta("raft.applied").unwrap().as_deref(), Some(&b"one"[..]));
    for reserved in ["size", "witnessed", "layout", "indexed"] {
        let e = store
            .commit_group_with_meta(&[], &[], 7, None, &[(reserved, b"x")])
            .unwrap_err();
        assert!(
            matches!(e, StoreError::Corrupt(ref m) if *m == format!("meta name {reserved:?} is reserved")),
            "{e}"
        );
    }
    assert_eq!(store.size().unwrap(), 0, "a refused batch writes nothing");
}

/// Three entries whose envelopes differ, committed with request ids "alpha" (entry 0) and "beta"
/// (entry 2); returns the request digests.
fn commit_with_requests(store: &Store) -> Vec<Hash> {
    let mut ct = CompactTree::new();
    let (mut group, mut nodes, mut digests) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..3u64 {
        let envelope = Envelope {
            payload_type: "application/vnd.ledger.note+json;version=1".into(),
            payload: format!("{{\"n\":{i}}}").into_bytes(),
            signatures: Vec::new(),
        };
        let zero = Entry {
            index: 0,
            timestamp_micros: 0,
            prev_root: Hash::default(),
            envelope: envelope.clone(),
        };
        let digest = Hash::digest(&zero.encode());
        digests.push(digest);
        let leaf = Entry {
            index: i,
            timestamp_micros: 1 + i,
            prev_root: ct.root(),
            envelope,
        }
        .encode();
        let lh = leaf_hash(&leaf);
        ct.append_with(lh, |c| nodes.push(c));
        let request = match i {
            0 => Some(("alpha".to_string(), digest)),
            2 => Some(("beta".to_string(), digest)),
            _ => None,
        };
        group.push(PreparedEntry {
            index: i,
            leaf,
            leaf_hash: lh,
            request,
            terms: Vec::new(),
            tickets: Vec::new(),
        });
    }
    store.commit_group(&group, &nodes, 3, None).unwrap();
    digests
}

fn listed(store: &Store) -> Vec<([u8; 32], u64, Hash)> {
    let mut out = Vec::new();
    store
        .for_each_request(|k, i, d| {
            out.push((k, i, d));
            Ok(())
        })
        .unwrap();
    out.sort_by_key(|r| r.1);
    out
}

/// What the request index keeps of an id's key: its first byte and fingerprint.
fn kept(id: &str) -> [u8; 32] {
    let mut k = request_key(id);
    k[1 + ledger_store::REQUEST_FINGERPRINT..].fill(0);
    k
}

#[test]
fn request_ids_are_listed_and_restored() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (src, dst) = (Store::open(a.path()).unwrap(), Store::open(b.path()).unwrap());
    let digests = commit_with_requests(&src);
    let reqs = listed(&src);
    assert_eq!(
        reqs,
        vec![(kept("alpha"), 0, digests[0]), (kept("beta"), 2, digests[2])]
    );
    // The same log without its request ids (an import), then the ids restored.
    commit_with_requests_without_ids(&src, &dst);
    assert_eq!(dst.request("beta").unwrap(), None);
    dst.put_requests(&reqs).unwrap();
    assert_eq!(dst.request("beta").unwrap(), Some((2, digests[2])));
    assert_eq!(dst.request("alpha").unwrap(), Some((0, digests[0])));
    // A restored record that does not match its entry is not believed.
    dst.put_requests(&[(request_key("gamma"), 1, digests[2])]).unwrap();
    assert_eq!(dst.request("gamma").unwrap(), None);
}

/// Copies `src`'s entries into `dst` without request ids.
fn commit_with_requests_without_ids(src: &Store, dst: &Store) {
    let mut ct = CompactTree::new();
    let (mut group, mut nodes) = (Vec::new(), Vec::new());
    for r in src.entries(0, src.size().unwrap()) {
        let (i, leaf) = r.unwrap();
        let lh = leaf_hash(&leaf);
        ct.append_with(lh, |c| nodes.push(c));
        group.push(PreparedEntry {
            index: i,
            leaf,
            leaf_hash: lh,
            request: None,
            terms: Vec::new(),
            tickets: Vec::new(),
        });
    }
    dst.commit_group(&group, &nodes, ct.size(), None).unwrap();
}

/// Index records that share a key's fingerprint (here: the same key, forged records first, as a
/// fingerprint collision would put them) are refused one by one and the lookup goes on to the
/// record that matches the entries; a key with only refused records is a miss.
#[test]
fn refused_records_in_front_of_the_true_one_are_skipped() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (src, dst) = (Store::open(a.path()).unwrap(), Store::open(b.path()).unwrap());
    let digests = commit_with_requests(&src);
    commit_with_requests_without_ids(&src, &dst);
    let beta = request_key("beta");
    // Entry 1 does not have beta's digest; index 9 is beyond the log.
    dst.put_requests(&[(beta, 1, digests[2]), (beta, 9, digests[2])])
        .unwrap();
    assert_eq!(dst.request("beta").unwrap(), None);
    dst.put_requests(&[(beta, 2, digests[2])]).unwrap();
    assert_eq!(dst.request("beta").unwrap(), Some((2, digests[2])));
    // Listed for a snapshot: only the record its entry confirms.
    assert_eq!(listed(&dst), vec![(kept("beta"), 2, digests[2])]);
    // Tickets: a record beyond the log is skipped, the next one answers.
    let t = [0x5a; 32];
    dst.put_tickets(&[(t, 7)]).unwrap();
    assert_eq!(dst.ticket_index(&t).unwrap(), None);
    dst.put_tickets(&[(t, 1)]).unwrap();
    assert_eq!(dst.ticket_index(&t).unwrap(), Some(1));
    // Reopened (the records are in the synced shard files), the answers stay.
    drop(dst);
    let dst = Store::open(b.path()).unwrap();
    assert_eq!(dst.request("beta").unwrap(), Some((2, digests[2])));
    assert_eq!(dst.ticket_index(&t).unwrap(), Some(1));
}
