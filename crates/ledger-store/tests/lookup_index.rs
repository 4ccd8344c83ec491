//! The per-entry lookups (leaf hash, request id, ticket → index) and the term postings: right
//! answers across groups, journal replay and reopen; and the index files played with as an
//! attacker would (values rewritten, a shard truncated or deleted, the whole `index/` deleted):
//! every lookup gives the right index or a clear miss, never a wrong index (issue 14).
#![allow(missing_docs, clippy::unwrap_used)]

use ledger_core::compact::CompactTree;
use ledger_core::dsse::Envelope;
use ledger_core::entry::Entry;
use ledger_core::hash::{Hash, leaf_hash};
use ledger_store::hindex::HEADER_LEN;
use ledger_store::{IndexTag, PreparedEntry, Store};
use std::os::unix::fs::FileExt;
use std::path::Path;

const N: u64 = 600;

fn envelope(i: u64) -> Envelope {
    let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let mut env = Envelope::new("application/vnd.ledger.note.v1+json", format!("note {i}").into_bytes());
    env.sign(&key);
    env
}

/// The node's request digest: the envelope in an entry with zero index, time and chain link.
fn digest(env: &Envelope) -> Hash {
    Hash::digest(
        &Entry {
            index: 0,
            timestamp_micros: 0,
            prev_root: Hash::default(),
            envelope: env.clone(),
        }
        .encode(),
    )
}

fn ticket(i: u64) -> [u8; 32] {
    Hash::digest(format!("ticket {i}").as_bytes()).0
}

/// Appends entries `[from, to)` in groups of `group`; entry i has request id `req-i`, a ticket when
/// i is odd, kind term "note" and subject term `s{i % 5}`.
fn fill(store: &Store, ct: &mut CompactTree, to: u64, group: u64) -> Vec<Hash> {
    let mut leaves = Vec::new();
    while ct.size() < to {
        let mut prepared = Vec::new();
        let mut nodes = Vec::new();
        while ct.size() < to && (prepared.len() as u64) < group {
            let i = ct.size();
            let env = envelope(i);
            let d = digest(&env);
            let leaf = Entry {
                index: i,
                timestamp_micros: i,
                prev_root: ct.root(),
                envelope: env,
            }
            .encode();
            let lh = leaf_hash(&leaf);
            leaves.push(lh);
            ct.append_with(lh, |n| nodes.push(n));
            prepared.push(PreparedEntry {
                index: i,
                leaf,
                leaf_hash: lh,
                request: Some((format!("req-{i}"), d)),
                terms: vec![
                    (IndexTag::Kind, "note".into()),
                    (IndexTag::Subject, format!("s{}", i % 5)),
                ],
                tickets: if i % 2 == 1 { vec![ticket(i)] } else { vec![] },
            });
        }
        store.commit_group(&prepared, &nodes, ct.size(), None).unwrap();
    }
    leaves
}

/// A store of N entries whose journal has been applied and dropped (so the index files alone hold
/// the lookups).
fn build(dir: &Path) -> Vec<Hash> {
    let store = Store::open(dir).unwrap();
    let mut ct = CompactTree::new();
    let leaves = fill(&store, &mut ct, N, 37);
    drop(store);
    drop(Store::open(dir).unwrap());
    leaves
}

/// Every lookup of the store: the right index, or (when `allow_miss`) a miss; never another index.
fn check(store: &Store, leaves: &[Hash], allow_miss: bool) -> u64 {
    let mut misses = 0;
    for (i, lh) in leaves.iter().enumerate() {
        let i = i as u64;
        match store.index_of_leaf(lh).unwrap() {
            Some(got) => assert_eq!(got, i, "leaf {i}"),
            None => {
                assert!(allow_miss, "leaf {i} missed");
                misses += 1;
            }
        }
        match store.request(&format!("req-{i}")).unwrap() {
            Some((got, d)) => assert_eq!((got, d), (i, digest(&envelope(i))), "request {i}"),
            None => {
                assert!(allow_miss, "request {i} missed");
                misses += 1;
            }
        }
        if i % 2 == 1 {
            match store.ticket_index(&ticket(i)).unwrap() {
                Some(got) => assert_eq!(got, i, "ticket {i}"),
                None => {
                    assert!(allow_miss, "ticket {i} missed");
                    misses += 1;
                }
            }
        }
    }
    assert_eq!(store.index_of_leaf(&Hash::digest(b"absent")).unwrap(), None);
    assert_eq!(store.request("req-absent").unwrap(), None);
    assert_eq!(store.ticket_index(&ticket(0)).unwrap(), None);
    misses
}

/// Journal keys (`j`) in the store of `dir`, read with sled directly (the store must be closed;
/// sled releases a dropped database's lock when its last I/O task ends: retried for up to 3 s).
fn journal_groups(dir: &Path) -> u64 {
    let t = std::time::Instant::now();
    let db = loop {
        match sled::open(dir) {
            Ok(db) => break db,
            Err(_) if t.elapsed() < std::time::Duration::from_secs(3) => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("reopening {} with sled: {e}", dir.display()),
        }
    };
    db.open_tree("ledger").unwrap().scan_prefix(b"j").count() as u64
}

fn shard_files(dir: &Path, kind: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("index").join(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "hix"))
        .collect();
    v.sort();
    v
}

/// Rewrites the value of every used slot of every shard of `kind` with `f(old)` (slots of a
/// `fp`-byte fingerprint ‖ u64 value ‖ `extra` bytes; a used slot's fingerprint is not all zero).
fn rewrite_values(dir: &Path, kind: &str, fp: usize, extra: usize, f: impl Fn(u64) -> u64) {
    let slot_len = ledger_store::hindex::slot_len(fp, extra);
    for p in shard_files(dir, kind) {
        let file = std::fs::OpenOptions::new().read(true).write(true).open(&p).unwrap();
        let len = file.metadata().unwrap().len();
        let mut at = HEADER_LEN;
        while at + slot_len <= len {
            let mut slot = vec![0u8; slot_len as usize];
            file.read_exact_at(&mut slot, at).unwrap();
            if slot[..fp].iter().any(|b| *b != 0) {
                let old = u64::from_be_bytes(slot[fp..fp + 8].try_into().unwrap());
                file.write_all_at(&f(old).to_be_bytes(), at + fp as u64).unwrap();
            }
            at += slot_len;
        }
    }
}

#[test]
fn lookups_and_queries_survive_groups_reopen_and_journal_replay() {
    let dir = tempfile::tempdir().unwrap();
    let leaves = build(dir.path());
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(check(&store, &leaves, false), 0);
    // Postings: ascending, from start, at most limit; has_term agrees.
    let s2: Vec<u64> = (0..N).filter(|i| i % 5 == 2).collect();
    assert_eq!(store.query(IndexTag::Subject, "s2", 0, 1000).unwrap(), s2);
    assert_eq!(
        store.query(IndexTag::Subject, "s2", 301, 3).unwrap(),
        vec![302, 307, 312]
    );
    assert_eq!(
        store.query(IndexTag::Kind, "note", 590, 100).unwrap(),
        (590..N).collect::<Vec<_>>()
    );
    assert!(store.has_term(IndexTag::Subject, "s2", 307).unwrap());
    assert!(!store.has_term(IndexTag::Subject, "s2", 308).unwrap());
    assert!(store.query(IndexTag::Subject, "s\0", 0, 10).unwrap().is_empty());
    // Postings: one chunk per 128 postings of a term, no per-entry lookup keys, no journal left
    // after the reopen.
    let count = |p: u8| store.raw_tree().scan_prefix([p]).count();
    assert_eq!(count(b'x'), (N as usize).div_ceil(128) + 5);
    assert_eq!((count(b'h'), count(b'r'), count(b'j')), (0, 0, 0));
    // The read-only snapshot carries the index along.
    drop(store);
    let ro = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(check(&ro, &leaves, false), 0);
}

#[test]
fn rewritten_index_values_give_misses_never_wrong_indices() {
    let dir = tempfile::tempdir().unwrap();
    let leaves = build(dir.path());
    // Point every leaf hash at the next entry, every ticket and request one entry on, some beyond
    // the log's size.
    use ledger_store::{LEAF_FINGERPRINT, REQUEST_DIGEST_PREFIX, REQUEST_FINGERPRINT, TICKET_FINGERPRINT};
    rewrite_values(dir.path(), "leaf", LEAF_FINGERPRINT, 0, |v| v + 1);
    rewrite_values(dir.path(), "request", REQUEST_FINGERPRINT, REQUEST_DIGEST_PREFIX, |v| {
        if v % 2 == 0 { v + 1 } else { u64::MAX }
    });
    rewrite_values(dir.path(), "ticket", TICKET_FINGERPRINT, 0, |v| v + N);
    // Replayed journal records (the last groups) may restore some lookups; the rest miss.
    let store = Store::open(dir.path()).unwrap();
    let misses = check(&store, &leaves, true);
    assert!(misses > N, "{misses} misses");
}

#[test]
fn a_truncated_or_deleted_shard_is_rebuilt_from_the_entries() {
    let dir = tempfile::tempdir().unwrap();
    let leaves = build(dir.path());
    let leaf_shards = shard_files(dir.path(), "leaf");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&leaf_shards[3])
        .unwrap()
        .set_len(10)
        .unwrap();
    std::fs::remove_file(&leaf_shards[7]).unwrap();
    let ticket_shards = shard_files(dir.path(), "ticket");
    std::fs::remove_file(&ticket_shards[1]).unwrap();
    std::fs::write(&ticket_shards[2], b"garbage").unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        // Leaf hashes come back from the entries; tickets in the lost shards are misses until
        // `reindex` is given the ticket extractor; request ids in intact shards are kept.
        check(&store, &leaves, true);
        for (i, lh) in leaves.iter().enumerate() {
            assert_eq!(store.index_of_leaf(lh).unwrap(), Some(i as u64));
        }
        let tickets_of = |bytes: &[u8]| {
            let e = Entry::decode(bytes).unwrap();
            if e.index % 2 == 1 {
                vec![ticket(e.index)]
            } else {
                vec![]
            }
        };
        assert_eq!(store.reindex(Some(&tickets_of)).unwrap(), N);
        for i in (1..N).step_by(2) {
            assert_eq!(store.ticket_index(&ticket(i)).unwrap(), Some(i));
        }
    }
    let store = Store::open(dir.path()).unwrap();
    check(&store, &leaves, true);
    // `reindex` rebuilt the postings from the entries (kind from the payload type).
    assert_eq!(
        store.query(IndexTag::Kind, "note", 0, 10_000).unwrap(),
        (0..N).collect::<Vec<_>>()
    );
}

#[test]
fn a_deleted_index_directory_is_rebuilt_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let leaves = build(dir.path());
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let store = Store::open(dir.path()).unwrap();
    for (i, lh) in leaves.iter().enumerate() {
        assert_eq!(store.index_of_leaf(lh).unwrap(), Some(i as u64));
    }
    // Request ids are not in the entries: only those still in the journal come back.
    check(&store, &leaves, true);
    // New groups are indexed as before.
    let mut ct = CompactTree::new();
    for lh in &leaves {
        ct.append(*lh);
    }
    let more = fill(&store, &mut ct, N + 50, 10);
    for (j, lh) in more.iter().enumerate() {
        assert_eq!(store.index_of_leaf(lh).unwrap(), Some(N + j as u64));
        assert_eq!(
            store.request(&format!("req-{}", N + j as u64)).unwrap().map(|r| r.0),
            Some(N + j as u64)
        );
    }
}

#[test]
fn the_journal_restores_lookups_whose_index_files_were_lost() {
    let dir = tempfile::tempdir().unwrap();
    let leaves = {
        let store = Store::open(dir.path()).unwrap();
        let mut ct = CompactTree::new();
        // Fewer entries than a sync needs (journal::SYNC_ENTRIES): the records live only in the journal and the page
        // cache — unless the 1 s timer (journal::SYNC_INTERVAL) fired on a loaded machine, which
        // made the first groups durable in the index files and dropped them from the journal.
        fill(&store, &mut ct, 200, 20)
    };
    // Counted once the store is gone: a background sync started by the timer finishes (and drops
    // the journal keys it covered) only when the store is dropped, so a count taken while it was
    // open could include groups whose keys were removed a moment later (CI flake, 2026-12-02).
    let journaled = journal_groups(dir.path());
    assert!(journaled <= 10, "{journaled} groups in the journal");
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let store = Store::open(dir.path()).unwrap();
    // Leaf hashes come back from the entries whatever happened; request ids and tickets of the
    // groups still in the journal come back from it (20 request ids and 10 tickets per group);
    // those of synced groups were only in the deleted files.
    let lost = (10 - journaled) * 30;
    assert_eq!(check(&store, &leaves, lost > 0), lost);
    if lost == 0 {
        return;
    }
    eprintln!("a sync ran before the index was deleted: {journaled} of 10 groups were in the journal");
    for lh in &leaves {
        assert!(store.index_of_leaf(lh).unwrap().is_some());
    }
}

#[test]
fn edited_journal_keys_and_mark_do_not_stop_the_store_or_mislead_it() {
    let dir = tempfile::tempdir().unwrap();
    let leaves = build(dir.path());
    {
        let store = Store::open(dir.path()).unwrap();
        let t = store.raw_tree();
        // A truncated record, a record of an unknown kind, a record pointing leaf 0 at entry 9,
        // and a malformed `mindexed`.
        t.insert(b"j\0\0\0\0\0\0\0\x01", &b"l\x01\x02"[..]).unwrap();
        t.insert(b"j\0\0\0\0\0\0\0\x02", vec![b'q'; 41]).unwrap();
        let mut rec = vec![b'l'];
        rec.extend_from_slice(&leaves[0].0);
        rec.extend_from_slice(&9u64.to_be_bytes());
        t.insert(b"j\0\0\0\0\0\0\0\x03", rec).unwrap();
        t.insert(b"mindexed", &b"\x01"[..]).unwrap();
        store.flush().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    // Leaf 0 was re-inserted from the entries before the journal was replayed: the forged record
    // is kept beside the true one and refused at lookup, which goes on to the true one (never 9).
    assert_eq!(store.index_of_leaf(&leaves[0]).unwrap(), Some(0));
    for (i, lh) in leaves.iter().enumerate().skip(1) {
        assert_eq!(store.index_of_leaf(lh).unwrap(), Some(i as u64));
    }
    assert_eq!(store.raw_tree().scan_prefix(b"j").count(), 0);
}

/// Every file under `dir` with its bytes (to show a directory was not written).
fn tree_bytes(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// STARTUP: a read-only open rebuilds and re-applies nothing: a reader that reads the entries in
/// order (the verifier's `replay --data`) never recovers the lookup index, even when the index
/// directory is gone; a lookup recovers it in the copy at first use and answers right; the
/// original directory is never written.
#[test]
fn a_read_only_open_recovers_the_lookup_index_only_at_its_first_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let leaves = build(dir.path());
    // A journal left to re-apply (the last group), and an index that lost its files.
    {
        let store = Store::open(dir.path()).unwrap();
        let mut ct = store.compact_tree().unwrap();
        let mut more = fill(&store, &mut ct, N + 5, 5);
        let mut all = leaves.clone();
        all.append(&mut more);
        drop(store);
        std::fs::remove_dir_all(dir.path().join("index")).unwrap();
        let before = tree_bytes(dir.path());
        let ro = Store::open_read_only(dir.path()).unwrap();
        assert!(!ro.lookup_index_recovered(), "nothing recovered at open");
        let n = ro.entries(0, N + 5).map(Result::unwrap).count() as u64;
        assert_eq!(n, N + 5);
        assert_eq!(ro.compact_tree().unwrap().root(), ct.root());
        assert!(!ro.lookup_index_recovered(), "reading entries in order needs no index");
        // The first lookup rebuilds the copy's leaf index and answers right.
        assert_eq!(ro.index_of_leaf(&all[7]).unwrap(), Some(7));
        assert!(ro.lookup_index_recovered());
        assert_eq!(ro.index_of_leaf(&all[(N + 3) as usize]).unwrap(), Some(N + 3));
        drop(ro);
        assert_eq!(tree_bytes(dir.path()), before, "the original was not written");
    }
    // With its index in place, a read-only copy answers every lookup as the store does.
    let dir = tempfile::tempdir().unwrap();
    let leaves = build(dir.path());
    let ro = Store::open_read_only(dir.path()).unwrap();
    assert!(!ro.lookup_index_recovered());
    assert_eq!(check(&ro, &leaves, false), 0);
}

/// STARTUP: `mtickets.checked` (the size below which start-up found every rated ticket indexed)
/// survives a reopen, is removed when the index is rebuilt (its tickets outside the journal are
/// gone), is lowered by a truncation, never exceeds the store's size, and cannot be written
/// read-only.
#[test]
fn tickets_checked_is_reset_by_an_index_rebuild_and_lowered_by_a_truncation() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.tickets_checked().unwrap(), 0, "never checked");
    store.set_tickets_checked(N).unwrap();
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.tickets_checked().unwrap(), N);
    store.set_tickets_checked(N + 1000).unwrap();
    assert_eq!(store.tickets_checked().unwrap(), N, "never above the size");
    store.set_tickets_checked(N).unwrap();
    drop(store);
    let ro = Store::open_read_only(dir.path()).unwrap();
    assert!(matches!(
        ro.set_tickets_checked(1),
        Err(ledger_store::StoreError::ReadOnly)
    ));
    drop(ro);
    std::fs::remove_dir_all(dir.path().join("index").join("ticket")).unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.tickets_checked().unwrap(), 0, "rebuilt index: check again");
    store.set_tickets_checked(N).unwrap();
    store.truncate(300).unwrap();
    assert_eq!(store.tickets_checked().unwrap(), 300);
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.tickets_checked().unwrap(), 300);
}

/// A read-only copy for a reader that only scans (`export`, `backup`, `ledger-verify replay
/// --data`) does not read the lookup index at all — a file in `index/` that cannot be read stops
/// `open_read_only` but not it — holds every entry and the same tree, and refuses every lookup
/// (also after a reopen) instead of answering a miss.
#[test]
fn a_read_only_copy_without_lookups_never_reads_the_index_and_refuses_lookups() {
    let dir = tempfile::tempdir().unwrap();
    let leaves = build(dir.path());
    let root = Store::open_read_only(dir.path())
        .unwrap()
        .compact_tree()
        .unwrap()
        .root();
    // A file of the index that no reader can copy: a symbolic link to itself.
    std::os::unix::fs::symlink("loop", dir.path().join("index").join("loop")).unwrap();
    assert!(Store::open_read_only(dir.path()).is_err(), "the full copy reads index/");
    let ro = Store::open_read_only_without_lookups(dir.path()).unwrap();
    assert_eq!(ro.size().unwrap(), N);
    assert_eq!(ro.entries(0, N).map(Result::unwrap).count() as u64, N);
    assert_eq!(ro.compact_tree().unwrap().root(), root);
    let refused = |e: ledger_store::StoreError| {
        assert!(e.to_string().contains("without its lookup index"), "{e}");
    };
    let ro = ro.reopen_read_only().unwrap();
    refused(ro.index_of_leaf(&leaves[7]).unwrap_err());
    refused(ro.request("r-7").unwrap_err());
    refused(ro.ticket_index(&ticket(7)).unwrap_err());
    refused(ro.for_each_request(|_, _, _| Ok(())).unwrap_err());
    assert_eq!(ro.compact_tree().unwrap().root(), root);
}
