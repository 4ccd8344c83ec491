//! Throughput check (ignored by default): builds a large export and times `replay` on it.
//!
//! ```text
//! LEDGER_BENCH_ENTRIES=100000 cargo test --release -p verifier-cli --test bench -- --ignored --nocapture
//! ```
//!
//! `LEDGER_BENCH_OUT=FILE` keeps the export; `LEDGER_BENCH_TAMPER=1` flips a signature halfway.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use common::{Log, flip_sig, key, s, verify, write_export};
use ledger_core::registry::Role;
use std::time::Instant;

#[test]
#[ignore = "slow; run explicitly (see the file's doc)"]
fn replay_rate() {
    let n: u64 = std::env::var("LEDGER_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let tamper = std::env::var("LEDGER_BENCH_TAMPER").is_ok();
    let dir = tempfile::TempDir::new().unwrap();
    let out = std::env::var("LEDGER_BENCH_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| dir.path().join("bench.export"));
    let t = Instant::now();
    let mut log = Log::new();
    let signers: Vec<_> = (0..16u8).map(|i| key(200 + i)).collect();
    for k in &signers {
        log.enroll(k, Role::Registrar);
    }
    while log.size() < n {
        let sk = &signers[(log.size() % 16) as usize];
        if tamper && log.size() == n / 2 {
            let env = log.note_env(sk);
            log.push_with(env, flip_sig);
        } else {
            log.note(sk);
        }
        if log.size().is_multiple_of(10_000) {
            log.checkpoint();
        }
    }
    log.checkpoint();
    write_export(&out, &log.frames());
    eprintln!("built {} entries in {:.1} s", log.size(), t.elapsed().as_secs_f64());
    for extra in [&[][..], &["--threads", "1"][..]] {
        let mut args = vec!["replay", "--export", s(&out)];
        args.extend_from_slice(extra);
        let t = Instant::now();
        let r = verify(dir.path(), &args);
        let secs = t.elapsed().as_secs_f64();
        eprintln!(
            "{args:?}: {:.2} s, {:.0} entries/s\n{}",
            secs,
            log.size() as f64 / secs,
            r.stdout
        );
        assert_eq!(r.code, i32::from(tamper), "{r:?}");
    }
}
