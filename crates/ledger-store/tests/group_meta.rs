//! `commit_group_with_meta`: meta values land with the group; reserved names are refused.
//! `requests`/`put_requests`: request ids listed and restored.
#![allow(clippy::unwrap_used, missing_docs)]

use ledger_store::{Store, StoreError};

#[test]
fn meta_is_written_with_the_group_and_reserved_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.meta("raft.applied").unwrap(), None);
    store
        .commit_group_with_meta(&[], &[], 0, None, &[("raft.applied", b"one")])
        .unwrap();
    assert_eq!(store.meta("raft.applied").unwrap().as_deref(), Some(&b"one"[..]));
    for reserved in ["size", "witnessed"] {
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

#[test]
fn request_ids_are_listed_and_restored() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (src, dst) = (Store::open(a.path()).unwrap(), Store::open(b.path()).unwrap());
    let reqs = vec![
        ("alpha".to_string(), 3, ledger_core::hash::Hash([1; 32])),
        ("beta".to_string(), 9, ledger_core::hash::Hash([2; 32])),
    ];
    src.put_requests(&reqs).unwrap();
    let listed: Vec<_> = src.requests().map(Result::unwrap).collect();
    assert_eq!(listed, reqs);
    dst.put_requests(&listed).unwrap();
    assert_eq!(
        dst.request("beta").unwrap(),
        Some((9, ledger_core::hash::Hash([2; 32])))
    );
}
