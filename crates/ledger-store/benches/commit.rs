//! Store throughput: groups of prepared entries committed with one batch and one flush each.
//! Run: `cargo bench -p ledger-store --bench commit`.

use ledger_core::compact::CompactTree;
use ledger_core::dsse::Envelope;
use ledger_core::entry::Entry;
use ledger_core::hash::leaf_hash;
use ledger_store::{PreparedEntry, Store};
use std::time::Instant;

fn main() {
    let dir = tempfile::Builder::new()
        .prefix("store-bench-")
        .tempdir_in(".")
        .expect("tmp");
    let store = Store::open(dir.path()).expect("open");
    let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let mut env = Envelope::new("application/vnd.ledger.note.v1+json", vec![b'x'; 300]);
    env.sign(&key);
    let mut ct = CompactTree::new();
    for group in [100usize, 1000, 4000] {
        let rounds = 200_000 / group;
        let t = Instant::now();
        let mut flush_time = 0.0;
        for _ in 0..rounds {
            let mut prepared = Vec::with_capacity(group);
            let mut nodes = Vec::new();
            for _ in 0..group {
                let e = Entry {
                    index: ct.size(),
                    timestamp_micros: ct.size(),
                    prev_root: ct.root(),
                    envelope: env.clone(),
                };
                let leaf = e.encode();
                let lh = leaf_hash(&leaf);
                ct.append_with(lh, |n| nodes.push(n));
                prepared.push(PreparedEntry {
                    index: e.index,
                    leaf,
                    leaf_hash: lh,
                    request: None,
                    terms: if std::env::var("NO_TERMS").is_ok() {
                        vec![]
                    } else {
                        vec![
                            (ledger_store::IndexTag::Kind, "note".into()),
                            (ledger_store::IndexTag::Subject, format!("s{}", e.index % 50)),
                        ]
                    },
                    tickets: Vec::new(),
                });
            }
            let f = Instant::now();
            store.commit_group(&prepared, &nodes, ct.size(), None).expect("commit");
            flush_time += f.elapsed().as_secs_f64();
        }
        let el = t.elapsed().as_secs_f64();
        println!(
            "group {group:>5}: {:>9.0} entries/s overall, {:>9.0} entries/s in commit_group ({:.2} ms per group)",
            (rounds * group) as f64 / el,
            (rounds * group) as f64 / flush_time,
            flush_time / rounds as f64 * 1e3
        );
    }
}
