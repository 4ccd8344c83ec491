//! Measures the per-entry lookups at scale, before (one sled key per entry per lookup, as the store
//! wrote until issue 14) and after (on-disk hash index + term postings in chunks): RSS growth, sled
//! keys per entry, insert cost per entry, lookup latency (hit and miss, medians).
//!
//! Run (release, one process per layout so the RSS figures do not mix):
//! `cargo run --release -p ledger-store --example lookup_scale -- before 1000000`
//! `cargo run --release -p ledger-store --example lookup_scale -- after 1000000`

mod common;

use ledger_core::hash::Hash;
use ledger_store::hindex::HashIndex;
use ledger_store::{IndexTag, postings};
use std::time::Instant;

const GROUP: u64 = 1000;

fn key(i: u64) -> [u8; 32] {
    Hash::digest(&i.to_be_bytes()).0
}

fn terms(i: u64) -> Vec<(IndexTag, String)> {
    // Every entry has the kind; one subject in 10,000 (sparse terms).
    vec![
        (IndexTag::Kind, "evaluation.micro".into()),
        (IndexTag::Subject, format!("cadre-{}", i % 10_000)),
    ]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "after".into());
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let dir = common::scratch_dir("lookup-scale-");
    let db = sled::Config::new()
        .path(dir.path().join("sled"))
        .mode(sled::Mode::HighThroughput)
        .cache_capacity(ledger_store::DEFAULT_CACHE_BYTES)
        .open()
        .expect("sled");
    let tree = db.open_tree("ledger").expect("tree");
    let ix = match mode.as_str() {
        "after" => Some(std::sync::Arc::new(
            HashIndex::open(&dir.path().join("index"), 16, 0).expect("index").0,
        )),
        "before" => None,
        m => panic!("mode is before or after, not {m}"),
    };
    let rss0 = common::vm_rss_kib();
    let t = Instant::now();
    let mut rss_half = 0;
    let mut sync_s = 0.0;
    let mut post_s = 0.0;
    let mut ins_s = 0.0;
    let mut job: Option<std::thread::JoinHandle<()>> = None;
    for g in 0..n / GROUP {
        let mut b = sled::Batch::default();
        let first = g * GROUP;
        match &ix {
            None => {
                for i in first..first + GROUP {
                    // Leaf-hash key and one term key per term, as `commit_group` wrote them.
                    let mut k = vec![b'h'];
                    k.extend_from_slice(&key(i));
                    b.insert(k, &i.to_be_bytes());
                    for (tag, v) in terms(i) {
                        let mut k = vec![b'x', tag.byte()];
                        k.extend_from_slice(v.as_bytes());
                        k.push(0);
                        k.extend_from_slice(&i.to_be_bytes());
                        b.insert(k, &[][..]);
                    }
                }
            }
            Some(ix) => {
                let ts: Vec<(u64, Vec<(IndexTag, String)>)> = (first..first + GROUP).map(|i| (i, terms(i))).collect();
                let t = Instant::now();
                postings::add_group(&tree, &mut b, ts.iter().map(|(i, t)| (*i, t.as_slice()))).expect("postings");
                post_s += t.elapsed().as_secs_f64();
                // The group's journal key (leaf records, as the store writes them).
                let mut jk = vec![b'j'];
                jk.extend_from_slice(&first.to_be_bytes());
                let mut recs = Vec::with_capacity(GROUP as usize * 41);
                for i in first..first + GROUP {
                    recs.push(b'l');
                    recs.extend_from_slice(&key(i));
                    recs.extend_from_slice(&i.to_be_bytes());
                }
                b.insert(jk, recs);
                let t = Instant::now();
                for i in first..first + GROUP {
                    ix.insert(&key(i), i).expect("insert");
                }
                ins_s += t.elapsed().as_secs_f64();
                if g % 64 == 63 {
                    // As the store does: the sync runs in the background; the writer waits only
                    // when the previous one has not finished.
                    let t = Instant::now();
                    if let Some(j) = job.take() {
                        j.join().expect("sync thread");
                    }
                    sync_s += t.elapsed().as_secs_f64();
                    let keys: Vec<_> = tree.scan_prefix(b"j").keys().map(|k| k.expect("j")).collect();
                    let (ix, tree) = (std::sync::Arc::clone(ix), tree.clone());
                    job = Some(std::thread::spawn(move || {
                        ix.sync().expect("sync");
                        let mut d = sled::Batch::default();
                        for k in keys {
                            d.remove(k);
                        }
                        tree.apply_batch(d).expect("drop journal");
                    }));
                }
            }
        }
        tree.apply_batch(b).expect("batch");
        if g % 64 == 63 {
            db.flush().expect("flush");
        }
        if (g + 1) * GROUP == n / 2 {
            rss_half = common::vm_rss_kib();
        }
    }
    if let Some(j) = job.take() {
        j.join().expect("sync thread");
    }
    db.flush().expect("flush");
    if let Some(ix) = &ix {
        ix.sync().expect("sync");
    }
    let insert_s = t.elapsed().as_secs_f64();
    println!(
        "{mode}: {insert_s:.1} s in all: index inserts {ins_s:.1} s, waiting for the background index sync {sync_s:.1} s, postings (read-modify-write) {post_s:.1} s"
    );
    let rss1 = common::vm_rss_kib();
    // Lookups: hits of random earlier keys, misses of keys never inserted.
    let mut hit = Vec::new();
    let mut miss = Vec::new();
    for j in 0..20_000u64 {
        let i = (j * 2_654_435_761) % n;
        let k = key(i);
        let t = Instant::now();
        let got = match &ix {
            None => {
                let mut hk = vec![b'h'];
                hk.extend_from_slice(&k);
                tree.get(hk)
                    .expect("get")
                    .map(|v| u64::from_be_bytes(v[..8].try_into().expect("8")))
            }
            Some(ix) => ix.get(&k).expect("get"),
        };
        hit.push(t.elapsed().as_secs_f64() * 1e6);
        assert_eq!(got, Some(i));
        let k = key(n + j);
        let t = Instant::now();
        let got = match &ix {
            None => {
                let mut hk = vec![b'h'];
                hk.extend_from_slice(&k);
                tree.get(hk).expect("get").map(|_| 0)
            }
            Some(ix) => ix.get(&k).expect("get"),
        };
        miss.push(t.elapsed().as_secs_f64() * 1e6);
        assert_eq!(got, None);
    }
    let t = Instant::now();
    let q = match &ix {
        None => 0,
        Some(_) => postings::query(&tree, IndexTag::Subject, "cadre-77", 0, 1000)
            .expect("query")
            .len(),
    };
    let q_us = t.elapsed().as_secs_f64() * 1e6;
    println!(
        "{mode}: {n} entries; sled keys {} ({:.4} per entry); insert {:.2} µs/entry; RSS {} MiB → {} MiB (half {} MiB), \
         growth {:.0} MiB per million (second half: {:.0}); lookup median hit {:.2} µs, miss {:.2} µs; index files {} MiB{}",
        tree.len(),
        tree.len() as f64 / n as f64,
        insert_s * 1e6 / n as f64,
        rss0 / 1024,
        rss1 / 1024,
        rss_half / 1024,
        (rss1.saturating_sub(rss0)) as f64 / 1024.0 / (n as f64 / 1e6),
        (rss1.saturating_sub(rss_half)) as f64 / 1024.0 / (n as f64 / 2e6),
        median(hit),
        median(miss),
        dir_size(&dir.path().join("index")) >> 20,
        if ix.is_some() {
            format!("; query of a sparse term ({q} postings) {q_us:.0} µs")
        } else {
            String::new()
        },
    );
}

fn dir_size(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}
