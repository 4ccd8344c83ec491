//! Compressed entry bundles (issue 14, BYTES): a full bundle is stored as a zstd frame when that
//! is smaller; stores written with plain bundles (before) are read without migration; every
//! reader returns the exact leaf bytes; an edited compressed bundle is a named fault, never a
//! panic or an unbounded allocation.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{commit_made, malformed_at};
use ledger_core::compact::CompactTree;
use ledger_core::dsse::Envelope;
use ledger_core::entry::Entry;
use ledger_store::Store;
use ledger_store::layout::{
    BUNDLE_ENTRIES, BUNDLE_ZSTD, CHUNK_ZSTD_MARK, MAX_BUNDLE_BYTES, bundle_key, bundle_leaves, chunk_key,
    compress_bundle, encode_bundle, raw, stored_bundle,
};

/// A payload like the node's records: similar JSON with a few random-looking fields.
fn json_payload(i: u64) -> Vec<u8> {
    let h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    format!(
        r#"{{"version":1,"ticket_hash":"{h:016x}{:016x}","subject":"cadre-{}","department":"dept-{}","rating":{}}}"#,
        h.rotate_left(17),
        i % 50,
        i % 12,
        1 + i % 5
    )
    .into_bytes()
}

/// Incompressible bytes (xorshift), 300 to 700 of them.
fn random_bytes(i: u64) -> Vec<u8> {
    let mut s = i.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1;
    (0..300 + i % 401)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect()
}

/// Commits `n` signed entries with the payloads `f` gives, in groups of `group`.
fn commit(store: &Store, ct: &mut CompactTree, leaves: &mut Vec<Vec<u8>>, n: u64, group: u64, f: fn(u64) -> Vec<u8>) {
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let end = ct.size() + n;
    while ct.size() < end {
        commit_made(store, ct, group.min(end - ct.size()), |ct| {
            let i = ct.size();
            let mut envelope = Envelope::new("application/vnd.ledger.test+json", f(i));
            envelope.sign(&key);
            let l = Entry {
                index: i,
                timestamp_micros: 1_767_225_600_000_000 + i,
                prev_root: ct.root(),
                envelope,
            }
            .encode();
            leaves.push(l.clone());
            l
        });
    }
}

/// Every reader returns exactly `leaves`.
fn check_reads(store: &Store, leaves: &[Vec<u8>]) {
    let all: Vec<(u64, Vec<u8>)> = store.entries(0, u64::MAX).map(Result::unwrap).collect();
    assert_eq!(all.len(), leaves.len());
    for (i, (j, l)) in all.iter().enumerate() {
        assert_eq!(*j, i as u64);
        assert_eq!(l, &leaves[i], "entries() at {i}");
    }
    let n = leaves.len() as u64;
    for i in [0, 1, 255, 256, 299, 300, 511, 512, n - 1]
        .into_iter()
        .filter(|i| *i < n)
    {
        assert_eq!(
            store.entry(i).unwrap().as_ref(),
            Some(&leaves[i as usize]),
            "entry({i})"
        );
    }
    let mid: Vec<u64> = store.entries(250, 520).map(|r| r.unwrap().0).collect();
    assert_eq!(mid, (250..n.min(520)).collect::<Vec<_>>());
    // (Store::verify also needs a charter at entry 0; the node's start-up check on compressed
    // bundles is in tests/node_tamper_crash.rs.)
}

#[test]
fn new_bundles_are_stored_compressed_and_read_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (mut ct, mut leaves) = (CompactTree::new(), Vec::new());
    commit(&store, &mut ct, &mut leaves, 700, 37, json_payload);
    for n in 0..700 / BUNDLE_ENTRIES {
        let v = store.stored_bundle_bytes(n).unwrap().unwrap();
        assert_eq!(v[0], BUNDLE_ZSTD, "bundle {n} is compressed");
        let plain = encode_bundle(
            leaves[n as usize * 256..(n as usize + 1) * 256]
                .iter()
                .map(Vec::as_slice),
        );
        assert!(
            v.len() * 2 < plain.len(),
            "bundle {n}: {} of {} bytes",
            v.len(),
            plain.len()
        );
        assert_eq!(&stored_bundle(&v).unwrap()[..], &plain[..]);
    }
    check_reads(&store, &leaves);
    // A cut inside a compressed bundle keeps the exact entries before it.
    store.truncate(300).unwrap();
    leaves.truncate(300);
    let mut ct = store.compact_tree().unwrap();
    commit(&store, &mut ct, &mut leaves, 250, 50, json_payload);
    drop(store);
    let store = Store::open_read_only(dir.path()).unwrap();
    check_reads(&store, &leaves);
}

#[test]
fn a_store_written_with_plain_bundles_is_read_without_migration() {
    let dir = tempfile::tempdir().unwrap();
    let (mut ct, mut leaves) = (CompactTree::new(), Vec::new());
    {
        let store = Store::open(dir.path()).unwrap();
        commit(&store, &mut ct, &mut leaves, 600, 100, json_payload);
        // Back to the store as the write path before compression left it: plain bundles.
        for n in 0..2 {
            let v = store.stored_bundle_bytes(n).unwrap().unwrap();
            let plain = encode_bundle(bundle_leaves(&v).unwrap().iter().map(Vec::as_slice));
            assert_eq!(plain[0], 0);
            store.raw_tree().insert(bundle_key(n), plain).unwrap();
        }
        store.flush().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    check_reads(&store, &leaves);
    // New writes compress; the old bundles stay as they are.
    commit(&store, &mut ct, &mut leaves, 200, 64, json_payload);
    assert_eq!(store.raw_tree().get(bundle_key(0)).unwrap().unwrap()[0], 0);
    assert_eq!(store.stored_bundle_bytes(2).unwrap().unwrap()[0], BUNDLE_ZSTD);
    // ... in a bundle file (docs/format.md, "Bundle files"), the older ones still in sled.
    assert_eq!(
        store.raw_tree().get(bundle_key(2)).unwrap().unwrap()[0],
        ledger_store::bundle_files::BUNDLE_FILE
    );
    check_reads(&store, &leaves);
}

#[test]
fn entries_with_random_payloads_read_back_exactly() {
    // Random payloads leave only the entries' fixed parts (version, payload type, key id) to
    // compress: whichever form the store picks, the reads are exact.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (mut ct, mut leaves) = (CompactTree::new(), Vec::new());
    commit(&store, &mut ct, &mut leaves, 600, 200, random_bytes);
    let v = store.stored_bundle_bytes(0).unwrap().unwrap();
    let plain = encode_bundle(leaves[..256].iter().map(Vec::as_slice));
    assert!(v.len() <= plain.len());
    check_reads(&store, &leaves);
}

#[test]
fn an_edited_compressed_bundle_is_a_named_fault() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (mut ct, mut leaves) = (CompactTree::new(), Vec::new());
    commit(&store, &mut ct, &mut leaves, 600, 600, json_payload);
    let good = store.stored_bundle_bytes(1).unwrap().unwrap().to_vec();
    assert_eq!(good[0], BUNDLE_ZSTD);
    let edits: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "flip",
            {
                let mut v = good.clone();
                let m = v.len() / 2;
                v[m] ^= 0x10;
                v
            },
            "does not decompress",
        ),
        (
            "last",
            {
                let mut v = good.clone();
                let m = v.len() - 1;
                v[m] ^= 0x01;
                v
            },
            "does not decompress",
        ),
        ("cut", good[..good.len() - 9].to_vec(), "runs past the value"),
        ("extra", [&good[..], &[0][..]].concat(), "after its frames"),
        (
            "frames",
            {
                let mut v = good.clone();
                v[1] = 9;
                v
            },
            "says 9 frames",
        ),
        (
            "bomb",
            {
                let mut v = good.clone();
                v[2..6].copy_from_slice(&u32::MAX.to_be_bytes());
                v
            },
            "over the largest bundle",
        ),
        (
            "short",
            {
                let mut v = good.clone();
                let len = u32::from_be_bytes([v[2], v[3], v[4], v[5]]);
                v[2..6].copy_from_slice(&(len / 2).to_be_bytes());
                v
            },
            "does not decompress",
        ),
        ("header", good[..3].to_vec(), "cut in its header"),
        (
            "format",
            {
                let mut v = good.clone();
                v[0] = 0x7f;
                v
            },
            "format byte",
        ),
    ];
    for (name, v, why) in edits {
        store.raw_tree().insert(bundle_key(1), v).unwrap();
        let r: Result<Vec<_>, _> = store.entries(0, u64::MAX).collect();
        let (index, detail) = malformed_at(r.expect_err(name));
        assert_eq!(index, 256, "{name}");
        assert!(detail.contains(why), "{name}: {detail}");
        // One entry is read from its own frame: it is the exact leaf, or the same fault.
        let mut failed = 0;
        for i in 256..512u64 {
            match store.entry(i) {
                Ok(got) => assert_eq!(got.as_ref(), Some(&leaves[i as usize]), "{name}: entry({i})"),
                Err(e) => {
                    assert_eq!(malformed_at(e).0, 256, "{name}: entry({i})");
                    failed += 1;
                }
            }
        }
        assert!(failed > 0, "{name}: no entry of the edited bundle was refused");
    }
    store.raw_tree().insert(bundle_key(1), good).unwrap();
    check_reads(&store, &leaves);
}

#[test]
fn a_frame_that_makes_more_than_its_header_says_is_refused() {
    // 64 MiB of zeros compress to a few KiB: a header of 1,000 bytes must not let it through,
    // and a header over the largest bundle is refused before decompressing.
    let big = vec![0u8; 64 << 20];
    let z = zstd::bulk::compress(&big, 3).unwrap();
    let mut v = vec![BUNDLE_ZSTD, 1];
    v.extend_from_slice(&1000u32.to_be_bytes());
    v.extend_from_slice(&u32::try_from(z.len()).unwrap().to_be_bytes());
    v.extend_from_slice(&z);
    assert!(stored_bundle(&v).unwrap_err().contains("does not decompress"));
    v[2..6].copy_from_slice(&u32::try_from(MAX_BUNDLE_BYTES + 1).unwrap().to_be_bytes());
    assert!(stored_bundle(&v).unwrap_err().contains("over the largest bundle"));
    // What compress_bundle writes round-trips; an empty or tiny plain bundle stays plain.
    let plain = encode_bundle((0..256).map(json_payload).collect::<Vec<_>>().iter().map(Vec::as_slice));
    assert_eq!(&stored_bundle(&compress_bundle(plain.clone())).unwrap()[..], &plain[..]);
    assert_eq!(compress_bundle(Vec::new()), Vec::<u8>::new());
    // Incompressible bytes stay plain.
    let random = encode_bundle((0..256).map(random_bytes).collect::<Vec<_>>().iter().map(Vec::as_slice));
    assert_eq!(compress_bundle(random.clone()), random);
    assert_eq!(compress_bundle(vec![0, 0, 0, 1, 7]), vec![0, 0, 0, 1, 7]);
}

#[test]
fn tail_chunks_are_stored_compressed_and_read_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (mut ct, mut leaves) = (CompactTree::new(), Vec::new());
    commit(&store, &mut ct, &mut leaves, 600, 20, json_payload);
    // Entries 512..600 are in chunks of 20 (the first is cut at 520 by the bundle boundary).
    let v = store.raw_tree().get(chunk_key(520)).unwrap().unwrap();
    assert!(v.starts_with(&CHUNK_ZSTD_MARK), "chunk 520 is compressed");
    let plain = ledger_store::layout::encode_chunk(
        (520..540)
            .map(|i| (ledger_core::hash::leaf_hash(&leaves[i]), i))
            .collect::<Vec<_>>()
            .iter()
            .map(|(h, i)| (h, &leaves[*i][..])),
    );
    assert!(
        v.len() * 3 < plain.len() * 2,
        "chunk: {} of {} bytes",
        v.len(),
        plain.len()
    );
    check_reads(&store, &leaves);
    assert_eq!(store.compact_tree().unwrap().root(), ct.root());
    // Plain chunks (as written before) beside compressed ones read the same.
    let tail = raw::read_tail(store.raw_tree());
    assert_eq!(tail.len(), 88);
    raw::write_tail(store.raw_tree(), &tail);
    assert!(
        !store
            .raw_tree()
            .get(chunk_key(520))
            .unwrap()
            .unwrap()
            .starts_with(&CHUNK_ZSTD_MARK)
    );
    commit(&store, &mut ct, &mut leaves, 100, 20, json_payload);
    check_reads(&store, &leaves);
    assert_eq!(store.compact_tree().unwrap().root(), ct.root());
    // A cut inside a compressed chunk keeps the exact entries before it.
    store.truncate(690).unwrap();
    leaves.truncate(690);
    let mut ct = store.compact_tree().unwrap();
    commit(&store, &mut ct, &mut leaves, 10, 3, json_payload);
    check_reads(&store, &leaves);
}

#[test]
fn an_edited_compressed_chunk_is_a_named_fault() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (mut ct, mut leaves) = (CompactTree::new(), Vec::new());
    commit(&store, &mut ct, &mut leaves, 300, 20, json_payload);
    let good = store.raw_tree().get(chunk_key(280)).unwrap().unwrap().to_vec();
    assert!(good.starts_with(&CHUNK_ZSTD_MARK));
    let hashes_end = 36 + 32 * 20;
    let edits: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "flip",
            {
                let mut v = good.clone();
                let m = v.len() - 20;
                v[m] ^= 0x10;
                v
            },
            "does not decompress",
        ),
        (
            "count",
            {
                let mut v = good.clone();
                v[32..36].copy_from_slice(&19u32.to_be_bytes());
                v
            },
            "the compressed chunk",
        ),
        (
            "count-zero",
            {
                let mut v = good.clone();
                v[32..36].copy_from_slice(&0u32.to_be_bytes());
                v
            },
            "says 0 entries",
        ),
        (
            "count-huge",
            {
                let mut v = good.clone();
                v[32..36].copy_from_slice(&u32::MAX.to_be_bytes());
                v
            },
            "entries",
        ),
        (
            "bomb",
            {
                let mut v = good.clone();
                v[hashes_end..hashes_end + 4].copy_from_slice(&u32::MAX.to_be_bytes());
                v
            },
            "over the largest bundle",
        ),
        ("cut", good[..hashes_end + 2].to_vec(), "cut in its header"),
    ];
    for (name, v, why) in edits {
        store.raw_tree().insert(chunk_key(280), v).unwrap();
        let (index, detail) = malformed_at(store.entry(285).expect_err(name));
        assert_eq!(index, 280, "{name}");
        assert!(detail.contains(why), "{name}: {detail}");
        let r: Result<Vec<_>, _> = store.entries(0, u64::MAX).collect();
        assert_eq!(malformed_at(r.expect_err(name)).0, 280, "{name}");
    }
    // An edited leaf hash outside the frame is the stored hash the tile check compares.
    let mut v = good.clone();
    v[36 + 32 * 5] ^= 1;
    store.raw_tree().insert(chunk_key(280), v).unwrap();
    assert_ne!(
        store.stored_leaf_hash(285).unwrap(),
        Some(ledger_core::hash::leaf_hash(&leaves[285]))
    );
    store.raw_tree().insert(chunk_key(280), good).unwrap();
    check_reads(&store, &leaves);
}
