//! Raft storage costs on this machine (docs/cluster.md): log appends (one fsync each), applying
//! groups through the state machine (structural checks, request ids, the ledger rules with
//! signatures, the store's group commit) against the bare group commit, and a snapshot's build and
//! install. Run: `cargo bench -p ledger-raft --bench apply` (seconds).
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::GroupMaker;
use ledger_raft::{LogStore, StateMachine, TypeConfig};
use openraft::storage::{RaftLogStorageExt, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use std::time::Instant;

fn log_id(index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(1, 0), index)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let dir = tempfile::Builder::new().prefix("raft-bench-").tempdir_in(".").unwrap();

    // 1. Log appends, one entry and one fsync each (what a follower does per replicated group).
    let mut log = LogStore::open(&dir.path().join("log")).unwrap();
    let g = GroupMaker::default().next(100);
    let mut lat = Vec::new();
    let t = Instant::now();
    for i in 1..=300u64 {
        let s = Instant::now();
        log.blocking_append([Entry::<TypeConfig> {
            log_id: log_id(i),
            payload: EntryPayload::Normal(g.clone().into()),
        }])
        .await
        .unwrap();
        lat.push(s.elapsed().as_secs_f64() * 1e3);
    }
    let el = t.elapsed().as_secs_f64();
    println!(
        "log append (group of 100 entries, {} KiB, fsync'd): {:.0} appends/s, p50 {:.2} ms, p99 {:.2} ms",
        ledger_raft::log_store::encoded_len(&g) / 1024,
        300.0 / el,
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99)
    );

    // 2. Apply through the state machine vs the bare group commit.
    for group in [10usize, 100, 500] {
        let rounds = 10_000 / group;
        let sub = dir.path().join(format!("sm-{group}"));
        let mut sm = StateMachine::open(&sub.join("ledger"), &sub.join("raft")).unwrap();
        let mut m = GroupMaker::default();
        let groups: Vec<_> = (0..rounds)
            .map(|_| {
                let g = m.next(group);
                m.accept(&g);
                g
            })
            .collect();
        let t = Instant::now();
        for (i, g) in groups.iter().enumerate() {
            let out = sm
                .apply([Entry::<TypeConfig> {
                    log_id: log_id(i as u64 + 1),
                    payload: EntryPayload::Normal(g.clone().into()),
                }])
                .await
                .unwrap();
            assert!(matches!(out[0], ledger_raft::ApplyOutcome::Applied { .. }), "{out:?}");
        }
        let apply = t.elapsed().as_secs_f64();
        let bare = ledger_store::Store::open(&sub.join("bare")).unwrap();
        let mut ct = ledger_core::compact::CompactTree::new();
        let t = Instant::now();
        for g in &groups {
            let checked = ledger_raft::check_group(&ct, 0, g).unwrap();
            let prepared = checked.prepared;
            let mut nodes = Vec::new();
            for p in &prepared {
                ct.append_with(p.leaf_hash, |n| nodes.push(n));
            }
            bare.commit_group(&prepared, &nodes, ct.size(), None).unwrap();
        }
        let commit = t.elapsed().as_secs_f64();
        println!(
            "apply, groups of {group:>3}: {:>7.0} entries/s ({:.2} ms/group); bare commit_group {:>7.0} entries/s",
            (rounds * group) as f64 / apply,
            apply / rounds as f64 * 1e3,
            (rounds * group) as f64 / commit
        );
        if group == 500 {
            // 3. Snapshot of these 10,000 entries: build, then install on an empty node.
            let t = Instant::now();
            let snap = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
            let build = t.elapsed().as_secs_f64();
            let bytes = std::fs::read_dir(sub.join("raft"))
                .unwrap()
                .map(|e| e.unwrap())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".export"))
                .map(|e| e.metadata().unwrap().len())
                .sum::<u64>();
            let other = dir.path().join("follower");
            let mut f = StateMachine::open(&other.join("ledger"), &other.join("raft")).unwrap();
            let t = Instant::now();
            f.install_snapshot(&snap.meta, snap.snapshot).await.unwrap();
            let install = t.elapsed().as_secs_f64();
            println!(
                "snapshot of 10000 entries ({:.1} MiB): build {:.2} s, install (import with full verification, fold, swap) {:.2} s ({:.0} entries/s)",
                bytes as f64 / (1 << 20) as f64,
                build,
                install,
                10_000.0 / install
            );
        }
    }
}
