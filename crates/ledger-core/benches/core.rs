//! Micro-benchmarks of the log core, printed beside the machine's raw SHA-256 rate.
//! Run: `cargo bench -p ledger-core --bench core`. Each figure is the median of 5 runs (min–max).

use ledger_core::compact::CompactTree;
use ledger_core::hash::{Hash, leaf_hash, node_hash};
use ledger_core::merkle;
use sha2::{Digest, Sha256};
use std::hint::black_box;
use std::time::Instant;

fn measure(mut f: impl FnMut() -> f64) -> (f64, f64, f64) {
    let mut v: Vec<f64> = (0..5).map(|_| f()).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    (v[2], v[0], v[4])
}

fn row(name: &str, unit: &str, (med, min, max): (f64, f64, f64)) {
    println!("{name:<44} {med:>14.0} {unit:<10} (min {min:.0}, max {max:.0})");
}

fn main() {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("ledger-core micro-benchmarks ({cores} cores)");
    let buf = vec![0xabu8; 64 << 20];
    row(
        "raw SHA-256, 64 MiB buffer",
        "MB/s",
        measure(|| {
            let t = Instant::now();
            black_box(Sha256::digest(black_box(&buf)));
            buf.len() as f64 / t.elapsed().as_secs_f64() / 1e6
        }),
    );
    let leaf = vec![7u8; 400];
    let n = 1_000_000u64;
    row(
        "leaf_hash of 400-byte leaves",
        "hashes/s",
        measure(|| {
            let t = Instant::now();
            for _ in 0..200_000 {
                black_box(leaf_hash(black_box(&leaf)));
            }
            200_000.0 / t.elapsed().as_secs_f64()
        }),
    );
    let a = Hash::digest(b"a");
    row(
        "node_hash (65-byte input)",
        "hashes/s",
        measure(|| {
            let t = Instant::now();
            let mut h = a;
            for _ in 0..1_000_000 {
                h = node_hash(&a, &h);
            }
            black_box(h);
            1_000_000.0 / t.elapsed().as_secs_f64()
        }),
    );
    let leaves: Vec<Hash> = (0..n).map(|i| Hash::digest(&i.to_le_bytes())).collect();
    row(
        "compact tree append, 1M leaves",
        "leaves/s",
        measure(|| {
            let t = Instant::now();
            let mut ct = CompactTree::new();
            for l in &leaves {
                ct.append(*l);
            }
            black_box(ct.root());
            n as f64 / t.elapsed().as_secs_f64()
        }),
    );
    row(
        "batch root_of, 1M leaves",
        "leaves/s",
        measure(|| {
            let t = Instant::now();
            black_box(merkle::root_of(&leaves));
            n as f64 / t.elapsed().as_secs_f64()
        }),
    );
    // Proof generation over an in-memory node table (what the store does with stored node hashes).
    let mut levels: Vec<Vec<Hash>> = vec![leaves.clone()];
    while levels.last().map(|l| l.len()).unwrap_or(0) > 1 {
        let prev = levels.last().cloned().unwrap_or_default();
        levels.push(prev.chunks_exact(2).map(|c| node_hash(&c[0], &c[1])).collect());
    }
    struct Table(Vec<Vec<Hash>>);
    impl merkle::NodeSource for Table {
        fn node(&self, level: u32, index: u64) -> Result<Hash, merkle::ProofError> {
            self.0
                .get(level as usize)
                .and_then(|l| l.get(index as usize))
                .copied()
                .ok_or(merkle::ProofError::Source("missing".into()))
        }
    }
    let table = Table(levels);
    let root = merkle::root_from_source(&table, n).expect("root");
    row(
        "inclusion proof gen+verify at 1M (table)",
        "proofs/s",
        measure(|| {
            let t = Instant::now();
            for i in 0..20_000u64 {
                let idx = (i * 7919) % n;
                let p = merkle::inclusion_proof(&table, idx, n).expect("proof");
                merkle::verify_inclusion(idx, n, &leaves[idx as usize], &p, &root).expect("verify");
            }
            20_000.0 / t.elapsed().as_secs_f64()
        }),
    );
    row(
        "consistency proof gen at 1M (table)",
        "proofs/s",
        measure(|| {
            let t = Instant::now();
            for i in 1..20_000u64 {
                black_box(merkle::consistency_proof(&table, (i * 7919) % n + 1, n).expect("proof"));
            }
            20_000.0 / t.elapsed().as_secs_f64()
        }),
    );
}
