//! Issue 14: rated micro-evaluation tickets leave memory. The node keeps only the tickets of the
//! groups not yet durable and looks older ones up in its store's ticket index; the verifier keeps
//! them in a temporary index. Through the real binaries:
//! - a node restarted after micro-evaluations refuses a reused ticket it only knows from the store;
//! - an index that lost its files (a store imported or rebuilt without tickets) is refilled at
//!   start-up;
//! - a planted index record naming an entry that did not rate the ticket is not believed, nor one
//!   naming an index beyond the log;
//! - `ledger-verify replay --data` names a duplicate ticket planted thousands of entries after
//!   the first rating (found through the temporary index, not memory).

#[path = "support/mod.rs"]
mod support;

use ledger_core::compact::CompactTree;
use ledger_core::dsse::Envelope;
use ledger_core::entry::Entry;
use ledger_core::hash::{Hash, leaf_hash};
use ledger_proto::pb;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use support::*;
use tonic::Code;

/// The store's ticket key of `micro_payload(n)`.
fn ticket(n: u64) -> [u8; 32] {
    Hash::digest(format!("ticket-{n}").as_bytes()).0
}

/// The ticket index of a stopped node's store, read as any reader of the data directory reads it.
fn indexed(data: &Path, t: &[u8; 32]) -> Option<u64> {
    let store = ledger_store::Store::open_read_only(&data.join("store")).expect("open store");
    store.ticket_index(t).expect("lookup")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_ticket_is_refused_from_the_store_index_after_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, "ledger.test/tickets", &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let platform = new_key();
    let mut node = Node::start(&data);
    let mut c = node.client().await;
    enroll_platform(&mut c, &platform, &admin).await;
    let r = rate_batch(&mut c, &platform, 0..20).await;
    let first7 = r.results[7].ok.as_ref().expect("ticket 7 accepted").index;
    assert!(r.results.iter().all(|x| x.ok.is_some()), "all 20 accepted");
    drop(c);
    node.stop();
    assert_eq!(indexed(&data, &ticket(7)), Some(first7), "ticket 7 is indexed durably");

    // After the restart the ticket is only in the store's index; the refusal names the entry.
    node = Node::start(&data);
    let mut c = node.client().await;
    let e = rate(&mut c, &platform, 7).await.expect_err("ticket 7 again");
    assert_eq!(e.code(), Code::FailedPrecondition, "{}", e.message());
    assert_eq!(code_of(&e), "MICRO_DUPLICATE_TICKET", "{}", e.message());
    assert!(e.message().contains(&format!("entry {first7}")), "{}", e.message());
    rate(&mut c, &platform, 100).await.expect("a fresh ticket");
    drop(c);
    node.stop();

    // A store whose ticket index lost its files (imported, or rebuilt by `reindex`): start-up
    // indexes the tickets again, so the reuse is still refused.
    std::fs::remove_dir_all(data.join("store/index/ticket")).expect("delete the ticket index");
    assert_eq!(indexed(&data, &ticket(3)), None);
    node = Node::start(&data);
    let mut c = node.client().await;
    let e = rate(&mut c, &platform, 3)
        .await
        .expect_err("ticket 3 after the index was emptied");
    assert_eq!(code_of(&e), "MICRO_DUPLICATE_TICKET", "{}", e.message());
    drop(c);
    node.stop();
    assert!(indexed(&data, &ticket(3)).is_some(), "start-up rebuilt the index");

    // Planted records: ticket 200 names entry 1 (the enrolment), ticket 300 an index beyond the
    // log. The node reads entry 1, sees it did not rate the ticket, and accepts the rating; the
    // hit beyond the log is ignored.
    {
        let store = ledger_store::Store::open(&data.join("store")).expect("open store");
        store
            .put_tickets(&[(ticket(200), 1), (ticket(300), 1_000_000)])
            .expect("plant");
    }
    node = Node::start(&data);
    let mut c = node.client().await;
    let at = rate(&mut c, &platform, 200)
        .await
        .expect("a false index hit is not believed");
    let e = rate(&mut c, &platform, 200).await.expect_err("ticket 200 is now used");
    assert_eq!(code_of(&e), "MICRO_DUPLICATE_TICKET", "{}", e.message());
    assert!(e.message().contains(&format!("entry {at}")), "{}", e.message());
    rate(&mut c, &platform, 300)
        .await
        .expect("a hit beyond the log is not believed");
    // The node still serves.
    rate(&mut c, &platform, 301).await.expect("the node still appends");
    drop(c);
    node.stop();
}

/// Overlapping batches sent at once: the sequencer forgets a group's tickets only once the group
/// is durable, so a ticket rated in a group still being written is refused like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_of_groups_in_flight_are_not_forgotten() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, "ledger.test/tickets-inflight", &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let platform = new_key();
    let mut node = Node::start(&data);
    let mut c = node.client().await;
    enroll_platform(&mut c, &platform, &admin).await;
    // Six batches of 1,500 over 3,000 tickets: each ticket is sent three times, by batches that
    // the node sequences in different groups while earlier ones are being written.
    let mut tasks = Vec::new();
    for b in 0..6u64 {
        let mut c = node.client().await;
        let items: Vec<pb::AppendRequest> = (0..1500u64)
            .map(|i| {
                let n = (b * 500 + i) % 3000;
                req(&record("evaluation.micro", micro_payload(n), &[&platform]), "", false)
            })
            .collect();
        tasks.push(tokio::spawn(async move {
            c.append_batch(pb::AppendBatchRequest {
                items,
                wait_for_checkpoint: false,
            })
            .await
            .expect("batch")
            .into_inner()
        }));
    }
    let (mut ok, mut dup) = (0, 0);
    for t in tasks {
        for r in t.await.expect("task").results {
            match r.ok {
                Some(_) => ok += 1,
                None if r.error_code == Code::FailedPrecondition as i32
                    && r.error_message.starts_with("MICRO_DUPLICATE_TICKET") =>
                {
                    dup += 1
                }
                None => panic!("unexpected answer {}: {}", r.error_code, r.error_message),
            }
        }
    }
    assert_eq!((ok, dup), (3000, 6000), "each ticket accepted exactly once");
    drop(c);
    node.stop();
}

/// Writes (timestamp, envelope) pairs as a fresh, correctly chained log (what an operator holding
/// the node key could produce).
fn write_log(dir: &Path, envs: &[(u64, Envelope)]) {
    let store = ledger_store::Store::open(dir).expect("store");
    let mut tree = CompactTree::new();
    for chunk in envs.chunks(1000) {
        let (mut group, mut nodes) = (Vec::new(), Vec::new());
        for (ts, env) in chunk {
            let i = tree.size();
            let leaf = Entry {
                index: i,
                timestamp_micros: *ts,
                prev_root: tree.root(),
                envelope: env.clone(),
            }
            .encode();
            let lh = leaf_hash(&leaf);
            tree.append_with(lh, |n| nodes.push(n));
            group.push(ledger_store::PreparedEntry {
                index: i,
                leaf,
                leaf_hash: lh,
                request: None,
                terms: vec![],
                tickets: Vec::new(),
            });
        }
        store.commit_group(&group, &nodes, tree.size(), None).expect("commit");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_names_a_duplicate_ticket_far_behind_its_first_rating() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, "ledger.test/tickets-replay", &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let platform = new_key();
    let mut node = Node::start(&data);
    let mut c = node.client().await;
    enroll_platform(&mut c, &platform, &admin).await;
    drop(c);
    node.stop();
    let store = ledger_store::Store::open_read_only(&data.join("store")).expect("store");
    let size = store.size().expect("size");
    let mut envs: Vec<(u64, Envelope)> = (0..size)
        .map(|i| {
            let e = Entry::decode(&store.entry(i).expect("read").expect("entry")).expect("decode");
            (e.timestamp_micros, e.envelope)
        })
        .collect();
    drop(store);
    // 4,500 ratings (more than the verifier keeps in memory between two flushes), then ticket 5
    // again: only the temporary index still knows it.
    let t0 = now_micros();
    let first5 = envs.len() as u64 + 5;
    for n in 0..4500u64 {
        envs.push((t0 + n, record("evaluation.micro", micro_payload(n), &[&platform])));
    }
    let dup = envs.len() as u64;
    envs.push((t0 + 5000, record("evaluation.micro", micro_payload(5), &[&platform])));
    let d = dir.path().join("forged");
    write_log(&d, &envs);
    let json = dir.path().join("replay.json");
    let out = Command::new(bin("ledger-verify"))
        .args(["replay", "--data", d.to_str().expect("utf8"), "--json"])
        .arg(&json)
        .output()
        .expect("replay");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("json");
    let faults = j["faults"].as_array().expect("faults");
    assert_eq!(faults.len(), 1, "{faults:?}");
    assert_eq!(faults[0]["code"], "MICRO_DUPLICATE_TICKET", "{faults:?}");
    assert_eq!(faults[0]["index"], dup, "{faults:?}");
    let detail = faults[0].to_string();
    assert!(detail.contains(&format!("entry {first5}")), "{detail}");

    // `review` folds the same log with the same state step and flags the same entry.
    let rjson = dir.path().join("review.json");
    let out = Command::new(bin("ledger-verify"))
        .args(["review", "--data", d.to_str().expect("utf8"), "--json"])
        .arg(&rjson)
        .output()
        .expect("review");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.code().is_some_and(|c| c < 2),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = std::fs::read_to_string(&rjson).expect("review json");
    let flagged = r.contains("MICRO_DUPLICATE_TICKET") && r.contains(&format!("entry {first5}"));
    assert!(flagged, "{r}");
}

/// STARTUP: start-up looks rated tickets up in the index only above `mtickets.checked` (the size
/// an earlier start checked). A ticket record edited out of an intact shard file while the node is
/// stopped is therefore not put back by a plain start (docs/threat-model.md); `serve
/// --full-check` looks every ticket up again and puts it back, so the reuse is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_check_puts_back_a_ticket_edited_out_of_an_intact_shard() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, "ledger.test/tickets-full", &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let platform = new_key();
    let mut node = Node::start(&data);
    let mut c = node.client().await;
    enroll_platform(&mut c, &platform, &admin).await;
    for n in 0..5u64 {
        rate(&mut c, &platform, n).await.expect("rating");
    }
    drop(c);
    node.stop();
    // A start checks the tickets up to the size and records it.
    Node::start(&data).stop();
    let t = ticket(3);
    let used = indexed(&data, &t).expect("ticket 3 indexed");

    // Zero ticket 3's slot (fingerprint: the key's bytes 1..=16) in its shard file.
    let fp = ledger_store::TICKET_FINGERPRINT;
    let slot_len = ledger_store::hindex::slot_len(fp, 0);
    let shard = data.join(format!("store/index/ticket/{:02x}.hix", t[0]));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&shard)
        .expect("shard");
    let len = f.metadata().expect("len").len();
    let mut at = ledger_store::hindex::HEADER_LEN;
    let mut zeroed = false;
    while at + slot_len <= len {
        let mut s = vec![0u8; slot_len as usize];
        f.read_exact_at(&mut s, at).expect("read");
        if s[..fp] == t[1..=fp] {
            f.write_all_at(&vec![0u8; slot_len as usize], at).expect("zero");
            zeroed = true;
        }
        at += slot_len;
    }
    drop(f);
    assert!(zeroed, "ticket 3's slot found");
    assert_eq!(indexed(&data, &t), None, "the record is gone, the shard intact");

    // --full-check looks every rated ticket up again and puts ticket 3 back.
    let mut node = Node::try_start_with(&data, &["--full-check"]).expect("full check");
    let mut c = node.client().await;
    let e = rate(&mut c, &platform, 3).await.expect_err("ticket 3 again");
    assert_eq!(code_of(&e), "MICRO_DUPLICATE_TICKET", "{}", e.message());
    assert!(e.message().contains(&format!("entry {used}")), "{}", e.message());
    drop(c);
    node.stop();
    assert_eq!(indexed(&data, &t), Some(used), "put back");
}
