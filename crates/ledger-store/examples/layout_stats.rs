//! Store layout figures: sled keys written per entry, bytes on disk per entry, proof latency.
//! Run: `cargo run --release -p ledger-store --example layout_stats -- 100000 [group] [payload]`.
//! Payloads: `note` (default: one signed 300-byte note repeated), `micro` (a micro-evaluation
//! like ledger-bench's: JSON with a random ticket hash, signed per entry), `random` (300 random
//! bytes, signed per entry: nothing but the entry's fixed fields compresses).
//! Every second entry carries a request id; the directory figures count sled's files and the
//! lookup index files (`index/`) apart, as apparent bytes (file lengths) and allocated bytes
//! (512-byte blocks: the shard files are sparse until written).
//! `LAYOUT_CACHE_MB=M` opens the store with an M MiB page cache (the node's default is 128; the
//! store's 1024); the resident memory (VmRSS) is printed after every tenth of the entries.
//! `LAYOUT_TERMS=1` also writes what the node writes with a micro-evaluation: its index terms
//! (kind, subject) and its rated ticket.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use ledger_core::compact::CompactTree;
use ledger_core::dsse::Envelope;
use ledger_core::entry::Entry;
use ledger_core::hash::leaf_hash;
use ledger_core::merkle::{consistency_proof, inclusion_proof};
use ledger_store::{IndexTag, PreparedEntry, Store};
use std::collections::BTreeMap;
use std::time::Instant;

/// The store in `dir`, with a page cache of `LAYOUT_CACHE_MB` MiB when it is set.
fn open_store(dir: &std::path::Path) -> Store {
    match std::env::var("LAYOUT_CACHE_MB") {
        Ok(mb) => Store::open_with_cache(dir, mb.parse::<u64>().unwrap() << 20).unwrap(),
        Err(_) => Store::open(dir).unwrap(),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let n: u64 = std::env::args().nth(1).map_or(100_000, |a| a.parse().unwrap());
    let group: u64 = std::env::args().nth(2).map_or(1000, |a| a.parse().unwrap());
    let dir = common::scratch_dir("layout-stats-");
    let store = open_store(dir.path());
    let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let payload = std::env::args().nth(3).unwrap_or_else(|| "note".into());
    let mut env = Envelope::new("application/vnd.ledger.note.v1+json", vec![b'x'; 300]);
    env.sign(&key);
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut rand64 = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let service0 = 1_767_225_600_000_000u64;
    let mut envelope = |i: u64| -> Envelope {
        match payload.as_str() {
            "note" => env.clone(),
            "micro" => {
                let body = format!(
                    r#"{{"department":"dept-{}","rating":{},"service_time_micros":{},"subject":"cadre-{}","ticket_hash":"{:016x}{:016x}{:032x}","version":1}}"#,
                    i % 12,
                    1 + i % 5,
                    service0 + i % 1_000_000_000,
                    i % 50,
                    rand64(),
                    rand64(),
                    i
                );
                let mut e = Envelope::new(
                    ledger_core::registry::payload_type_for_log("evaluation.micro", "bench.ledger/test"),
                    body.into_bytes(),
                );
                e.sign(&key);
                e
            }
            "random" => {
                let body: Vec<u8> = (0..38).flat_map(|_| rand64().to_le_bytes()).take(300).collect();
                let mut e = Envelope::new("application/vnd.ledger.note.v1+json", body);
                e.sign(&key);
                e
            }
            other => panic!("payload {other}: note, micro or random"),
        }
    };
    let node_like = std::env::var_os("LAYOUT_TERMS").is_some();
    let mut ct = CompactTree::new();
    let mut leaf_bytes = 0u64;
    let t = Instant::now();
    while ct.size() < n {
        let mut prepared = Vec::new();
        let mut nodes = Vec::new();
        for _ in 0..group.min(n - ct.size()) {
            let e = Entry {
                index: ct.size(),
                timestamp_micros: service0 + 3_600_000_000 + ct.size() * 61,
                prev_root: ct.root(),
                envelope: envelope(ct.size()),
            };
            let (mut terms, mut tickets) = (Vec::new(), Vec::new());
            if node_like {
                let body = String::from_utf8_lossy(&e.envelope.payload).into_owned();
                let field = |name: &str| -> Option<String> {
                    let at = body.find(&format!("\"{name}\":\""))? + name.len() + 4;
                    Some(body[at..].split('"').next()?.to_string())
                };
                terms.push((IndexTag::Kind, "evaluation.micro".to_string()));
                if let Some(s) = field("subject") {
                    terms.push((IndexTag::Subject, s));
                }
                if let Some(t) = field("ticket_hash").filter(|t| t.len() == 64) {
                    let mut k = [0u8; 32];
                    for (j, b) in k.iter_mut().enumerate() {
                        *b = u8::from_str_radix(&t[2 * j..2 * j + 2], 16).unwrap();
                    }
                    tickets.push(k);
                }
            }
            let leaf = e.encode();
            leaf_bytes += leaf.len() as u64;
            let lh = leaf_hash(&leaf);
            ct.append_with(lh, |c| nodes.push(c));
            prepared.push(PreparedEntry {
                index: e.index,
                leaf,
                leaf_hash: lh,
                request: e.index.is_multiple_of(2).then(|| (format!("req-{}", e.index), lh)),
                terms,
                tickets,
            });
        }
        store.commit_group(&prepared, &nodes, ct.size(), None).unwrap();
        let tenth = (n / 10).max(1);
        if ct.size() / tenth != (ct.size() - prepared.len() as u64) / tenth {
            println!("{:>10} entries: VmRSS {} MiB", ct.size(), common::vm_rss_kib() >> 10);
        }
    }
    let secs = t.elapsed().as_secs_f64();
    store.flush().unwrap();
    let mut by: BTreeMap<char, u64> = BTreeMap::new();
    for k in store.raw_tree().iter().keys() {
        *by.entry(k.unwrap()[0] as char).or_default() += 1;
    }
    let total: u64 = by.values().sum();
    let entry_keys: u64 = by
        .iter()
        .filter(|(c, _)| !matches!(c, 'h' | 'r' | 'x'))
        .map(|(_, v)| v)
        .sum();
    println!(
        "entries {n}, groups of {group}, leaf {} B avg, commit {:.0} entries/s",
        leaf_bytes / n,
        n as f64 / secs
    );
    println!("keys by prefix {by:?}");
    println!(
        "keys/entry: all {:.4}, entry+hash keyspaces (not h/r/x) {:.4}",
        total as f64 / n as f64,
        entry_keys as f64 / n as f64
    );
    drop(store);
    let (mut sled_app, mut sled_alloc, mut ix_app, mut ix_alloc) = (0u64, 0u64, 0u64, 0u64);
    let (mut bf_app, mut bf_alloc) = (0u64, 0u64);
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for f in std::fs::read_dir(&d).unwrap() {
            let f = f.unwrap();
            let m = f.metadata().unwrap();
            if m.is_dir() {
                stack.push(f.path());
                continue;
            }
            let alloc = std::os::unix::fs::MetadataExt::blocks(&m) * 512;
            if f.path().starts_with(dir.path().join("index")) {
                ix_app += m.len();
                ix_alloc += alloc;
            } else if f
                .path()
                .starts_with(dir.path().join(ledger_store::bundle_files::BUNDLES_DIR))
            {
                bf_app += m.len();
                bf_alloc += alloc;
            } else {
                sled_app += m.len();
                sled_alloc += alloc;
            }
        }
    }
    let per = |b: u64| b as f64 / n as f64;
    println!(
        "directory per entry (apparent / allocated): sled {:.0} / {:.0} B, bundles/ {:.0} / {:.0} B, index/ {:.1} / {:.1} B, total {:.0} / {:.0} B (leaf {} B)",
        per(sled_app),
        per(sled_alloc),
        per(bf_app),
        per(bf_alloc),
        per(ix_app),
        per(ix_alloc),
        per(sled_app + bf_app + ix_app),
        per(sled_alloc + bf_alloc + ix_alloc),
        leaf_bytes / n
    );
    let store = open_store(dir.path());
    // The stored bundles: bytes against the plain bundles, µs per entry to decompress and (again)
    // to compress them.
    let (mut stored_b, mut plain_b, mut ents, mut zipped) = (0usize, 0usize, 0usize, 0usize);
    let (mut t_de, mut t_co) = (0f64, 0f64);
    let mut dump = std::env::var_os("LAYOUT_STATS_DUMP").map(|p| std::fs::File::create(p).unwrap());
    let bundles: Vec<u64> = store
        .raw_tree()
        .scan_prefix(b"b")
        .take(400)
        .map(|r| u64::from_be_bytes(r.unwrap().0[1..9].try_into().unwrap()))
        .collect();
    for b in bundles {
        let v = store.stored_bundle_bytes(b).unwrap().unwrap();
        let t = Instant::now();
        let plain = ledger_store::layout::stored_bundle(&v).unwrap().into_owned();
        t_de += t.elapsed().as_secs_f64();
        let t = Instant::now();
        std::hint::black_box(ledger_store::layout::compress_bundle(plain.clone()));
        t_co += t.elapsed().as_secs_f64();
        if let Some(path) = dump.as_mut() {
            // LAYOUT_STATS_DUMP=FILE: the plain bundles, each `u32 BE length ‖ bytes`, for codec trials.
            use std::io::Write;
            path.write_all(&u32::try_from(plain.len()).unwrap().to_be_bytes())
                .unwrap();
            path.write_all(&plain).unwrap();
        }
        stored_b += v.len();
        plain_b += plain.len();
        ents += ledger_store::layout::decode_bundle(&plain).unwrap().len();
        zipped += usize::from(v.first() == Some(&ledger_store::layout::BUNDLE_ZSTD));
    }
    if ents > 0 {
        println!(
            "bundles (first {}, {zipped} compressed): stored {:.1} B/entry of {:.1} plain ({:.1} %), decompress {:.2} µs/entry, compress {:.2} µs/entry",
            ents / 256,
            stored_b as f64 / ents as f64,
            plain_b as f64 / ents as f64,
            100.0 * stored_b as f64 / plain_b as f64,
            t_de * 1e6 / ents as f64,
            t_co * 1e6 / ents as f64
        );
    }
    println!(
        "size_on_disk {} B = {:.0} B/entry (leaf {} B)",
        store.size_on_disk().unwrap(),
        store.size_on_disk().unwrap() as f64 / n as f64,
        leaf_bytes / n
    );
    let blobs = std::fs::read_dir(dir.path().join("blobs")).map_or(0, Iterator::count);
    println!("sled blob files: {blobs}");
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let idx: Vec<u64> = (0..2000).map(|_| next()).collect();
    let mut cold = Vec::new();
    for &i in &idx {
        let t = Instant::now();
        std::hint::black_box(inclusion_proof(&store, i, n).unwrap());
        cold.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let mut warm = Vec::new();
    for &i in &idx {
        let t = Instant::now();
        std::hint::black_box(inclusion_proof(&store, i, n).unwrap());
        warm.push(t.elapsed().as_secs_f64() * 1e6);
    }
    // One entry by index (GetEntry), at the same random indices: a full bundle is read (and
    // decompressed) per call.
    let mut get = Vec::new();
    for &i in &idx {
        let t = Instant::now();
        std::hint::black_box(store.entry(i).unwrap().unwrap());
        get.push(t.elapsed().as_secs_f64() * 1e6);
    }
    println!("entry(i) at 2000 random indices: median {:.1} µs", median(get));
    let mut cons = Vec::new();
    for &i in &idx {
        let t = Instant::now();
        std::hint::black_box(consistency_proof(&store, i.max(1), n).unwrap());
        cons.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let full = n / 256 * 256;
    let mut nt = Vec::new();
    for &i in &idx {
        let t = Instant::now();
        std::hint::black_box(inclusion_proof(&store, i % full, full).unwrap());
        nt.push(t.elapsed().as_secs_f64() * 1e6);
    }
    println!("inclusion proof at {full} (no tail): warm median {:.1} µs", median(nt));
    println!(
        "inclusion proof at {n}: cold (first 2000 after open) median {:.1} µs, warm median {:.1} µs; consistency warm median {:.1} µs",
        median(cold),
        median(warm),
        median(cons)
    );
}
