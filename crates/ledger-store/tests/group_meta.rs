//! `commit_group_with_meta`: meta values land with the group; reserved names are refused.
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
