//! A term-index key edited into the data directory that is shorter than any key the store writes:
//! `Store::query` reports the store as corrupt instead of panicking on the slice (issue 12 item 8).
#![allow(missing_docs, clippy::unwrap_used)]

use ledger_store::{Store, StoreError};

#[test]
fn a_short_term_key_is_corruption_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    {
        // Edit the data directory with sled itself: tree "ledger", key 'x' ‖ tag ‖ value ‖ NUL ‖
        // one byte instead of eight.
        let db = sled::open(dir.path()).unwrap();
        let t = db.open_tree("ledger").unwrap();
        t.insert(b"xk\0\x01", &b""[..]).unwrap();
        db.flush().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let r = store.query(ledger_store::IndexTag::Kind, "", 0, 10);
    assert!(matches!(&r, Err(StoreError::Corrupt(m)) if m == "term key"), "{r:?}");
}
