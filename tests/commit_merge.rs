//! Issue 14 (A64): on a single node the writer takes every group the sequencer finished while it
//! was writing as one commit (group commit of groups: one store batch, one flush, then every
//! answer). What could go wrong, each tried through the real node:
//! - a crash (SIGKILL) while merged commits are written must never lose or change an entry that
//!   was answered OK, and the log left behind must verify (`ledger-verify replay`);
//! - a request id sent again while its first use still waits in a merged commit (answered to no
//!   one, not durable) must get the first entry back marked duplicate, never a second entry; the
//!   same id with another envelope must be refused as reused.
//!
//! `LEDGER_FAULT_INJECT=slow-commit` makes each commit wait as a slow disk would, so that groups
//! pile up behind the writer; `ledger_commit_groups` shows that commits did merge groups.

mod support;

use ledger_core::dsse::Envelope;
use ledger_proto::pb;
use std::collections::BTreeMap;
use std::time::Duration;
use support::*;
use tonic::Code;

const ORIGIN: &str = "ledger.test/merge";

/// A slow-committing node on `data` with its metrics on a free port.
fn slow_node(data: &std::path::Path) -> (Node, u16) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let node = Node::try_start_env(
        data,
        &["--metrics-listen", &listen],
        &[("LEDGER_FAULT_INJECT", "slow-commit")],
    )
    .unwrap_or_else(|e| panic!("the node did not start: {e}"));
    (node, port)
}

/// Commits that held more than one sequenced group so far.
fn merged_commits(port: u16) -> f64 {
    metric(port, "ledger_commit_groups_count") - metric(port, "ledger_commit_groups_bucket{le=\"1\"}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_merged_commits_never_loses_an_acknowledged_entry() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, ORIGIN, &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let platform = new_key();
    {
        let node = Node::start(&data);
        let mut c = node.client().await;
        append(
            &mut c,
            &enroll(&platform, "platform", &["service-platform"], &[&admin]),
            "",
        )
        .await
        .expect("enroll");
    }
    // index → (leaf hash answered, request id, envelope)
    let mut acked: BTreeMap<u64, (Vec<u8>, String, Envelope)> = BTreeMap::new();
    let mut merged = 0.0;
    for round in 0..3u64 {
        let (mut node, port) = slow_node(&data);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for w in 0..16u64 {
            let mut c = node.client().await;
            let tx = tx.clone();
            let platform = platform.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..10_000u64 {
                    let n = round * 1_000_000 + w * 10_000 + i;
                    let env = record_in(Some(ORIGIN), "evaluation.micro", micro_payload(n), &[&platform]);
                    let id = format!("crash-{n}");
                    match append(&mut c, &env, &id).await {
                        Ok(r) => {
                            if tx.send((r.index, (r.leaf_hash, id, env))).is_err() {
                                return;
                            }
                        }
                        Err(_) => return,
                    }
                }
            }));
        }
        drop(tx);
        // Let the clients get going, and the groups pile up behind the slow writer.
        let mut answered = 0;
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(25)).await;
            while let Ok((i, a)) = rx.try_recv() {
                assert!(acked.insert(i, a).is_none(), "index {i} acknowledged twice");
                answered += 1;
            }
            if answered >= 100 + 50 * round {
                break;
            }
        }
        merged += merged_commits(port);
        node.kill9();
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
        }
        while let Ok((i, a)) = rx.try_recv() {
            assert!(acked.insert(i, a).is_none(), "index {i} acknowledged twice");
        }
    }
    assert!(acked.len() >= 300, "too few appends acknowledged ({})", acked.len());
    assert!(
        merged > 0.0,
        "no commit merged groups: the crash did not test merged commits"
    );
    // Restart: the store verifies (else the node refuses to start) and every acknowledged entry is
    // there with the bytes it was answered with; its request id, sent again, finds it (the lookup
    // index is synced only now and then: its journal, in each commit's batch, is re-applied).
    {
        let node = Node::start(&data);
        let mut c = node.client().await;
        for (i, (h, id, env)) in &acked {
            let again = append(&mut c, env, id)
                .await
                .unwrap_or_else(|e| panic!("retry of {id}: {e:?}"));
            assert_eq!((again.index, again.duplicate), (*i, true), "retry of {id}");
            let e = c
                .get_entry(pb::GetEntryRequest { index: *i })
                .await
                .unwrap_or_else(|e| panic!("acknowledged entry {i} missing: {e:?}"))
                .into_inner();
            assert_eq!(
                &ledger_core::hash::leaf_hash(&e.leaf).0.to_vec(),
                h,
                "entry {i} changed"
            );
        }
    }
    // The independent verifier replays the whole log the crashes left.
    replay_data_ok(&data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_id_retried_while_its_commit_waits_gets_the_first_entry() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, ORIGIN, &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let platform = new_key();
    let (node, port) = slow_node(&data);
    let mut c = node.client().await;
    let enrolled = append(
        &mut c,
        &enroll(&platform, "platform", &["service-platform"], &[&admin]),
        "",
    )
    .await
    .expect("enroll");
    // Rounds of concurrent Appends, each request id sent twice at once (the retry of a client
    // that timed out) and once with another envelope (a client bug or an attack), while other
    // clients keep the writer busy so that the three land in different groups of merged commits.
    let mut seen = std::collections::BTreeSet::new();
    for round in 0..6u64 {
        let mut tasks = Vec::new();
        for k in 0..8u64 {
            let mut c = node.client().await;
            let platform = platform.clone();
            tasks.push(tokio::spawn(async move {
                let n = 1_000 * round + k;
                let env = record_in(Some(ORIGIN), "evaluation.micro", micro_payload(n), &[&platform]);
                let other = record_in(Some(ORIGIN), "evaluation.micro", micro_payload(n + 500), &[&platform]);
                let id = format!("retry-{round}-{k}");
                let mut c2 = c.clone();
                let mut c3 = c.clone();
                let (first, again, reused) = tokio::join!(
                    append(&mut c, &env, &id),
                    async {
                        tokio::time::sleep(Duration::from_millis(3 * k)).await;
                        append(&mut c2, &env, &id).await
                    },
                    async {
                        tokio::time::sleep(Duration::from_millis(2 * k + 1)).await;
                        append(&mut c3, &other, &id).await
                    }
                );
                (first, again, reused)
            }));
        }
        for t in tasks {
            let (first, again, reused) = tokio::time::timeout(Duration::from_secs(60), t)
                .await
                .expect("answered")
                .expect("join");
            // Whichever of the two identical requests was sequenced first appended the entry; the
            // other is its duplicate, unless the other envelope took the id first.
            let reused_won = reused.is_ok();
            if reused_won {
                for r in [&first, &again] {
                    let e = r.as_ref().expect_err("the id was taken by another envelope");
                    assert_eq!(e.code(), Code::AlreadyExists, "{e:?}");
                }
                let r = reused.expect("appended");
                assert!(seen.insert(r.index), "index {} answered for two ids", r.index);
                continue;
            }
            let (a, b) = (first.expect("appended"), again.expect("appended"));
            assert_eq!(a.index, b.index, "one entry for one request id");
            assert_eq!(a.leaf_hash, b.leaf_hash);
            assert!(a.duplicate != b.duplicate, "exactly one is the duplicate: {a:?} {b:?}");
            assert!(seen.insert(a.index), "index {} answered for two ids", a.index);
            let e = reused.expect_err("the id is reused for another envelope");
            assert_eq!(e.code(), Code::AlreadyExists, "{e:?}");
            assert!(e.message().contains("already used for a different envelope"), "{e:?}");
        }
    }
    assert!(merged_commits(port) > 0.0, "no commit merged groups");
    // Exactly one entry per request id: the next Append lands right after them.
    let last = append(
        &mut c,
        &record_in(Some(ORIGIN), "evaluation.micro", micro_payload(999_999), &[&platform]),
        "",
    )
    .await
    .expect("a last Append");
    assert_eq!(
        last.index,
        enrolled.index + 1 + seen.len() as u64,
        "no request id appended twice"
    );
}
