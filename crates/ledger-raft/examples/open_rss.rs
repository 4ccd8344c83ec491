//! Peak memory of a cluster node's start-up fold (docs/performance.md, "Cluster start-up memory"):
//! opens the state machine on a ledger store and prints the applied size, the time, the store
//! reopens of the fold and the process's peak RSS (`VmHWM`, Linux).
//!
//! `cargo run --release -p ledger-raft --example open_rss -- LEDGER_DIR RAFT_DIR` (the store of a
//! node's data directory, `DATA/ledger` or a single node's `DATA/store`; `LEDGER_SCAN_BYTES`
//! sets the bytes of entries folded between two reopens).

use ledger_raft::StateMachine;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let (Some(ledger), Some(raft)) = (args.next(), args.next()) else {
        return Err("usage: open_rss LEDGER_DIR RAFT_DIR".into());
    };
    let t = std::time::Instant::now();
    let sm = StateMachine::open(&PathBuf::from(ledger), &PathBuf::from(raft))?;
    let ms = t.elapsed().as_millis();
    let size = sm.applied_tree()?.size();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .unwrap_or("VmHWM: ?")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    println!("size={size} ms={ms} reopens={} {hwm}", sm.open_reopens());
    Ok(())
}
