//! Readers cannot exhaust the node (issue 12, item 6): unread `GetEntries` streams are bounded and
//! hold no thread, `Query` work per call and answer size are bounded, and paging still returns
//! exactly the matching set. Real `ledger-node serve` processes on loopback, real gRPC.

mod support;

use ledger_proto::pb;
use ledger_proto::pb::ledger_client::LedgerClient;
use prost::Message as _;
use std::path::Path;
use std::time::{Duration, Instant};
use support::*;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

/// Starts `ledger-node serve` on DATA with extra flags.
fn start_node(data: &Path, extra: &[&str]) -> Node {
    Node::try_start_with(data, extra).unwrap_or_else(|e| panic!("the node did not start: {e}"))
}

/// A field of /proc/PID/status (Linux), e.g. "Threads" or "VmRSS" (in kB).
fn proc_status(node: &Node, field: &str) -> u64 {
    let pid = node.child.as_ref().expect("running").id();
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// A client connection that, like an attacker, grants the node only a 64 KiB flow-control window
/// and never reads what it asked for.
async fn stingy_channel(addr: &str) -> LedgerClient<Channel> {
    let ch = Endpoint::from_shared(addr.to_string())
        .expect("url")
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .expect("connect");
    LedgerClient::new(ch)
}

/// Appends `envs` in one batch; returns their indices.
async fn batch(c: &mut LedgerClient<Channel>, envs: &[ledger_core::dsse::Envelope]) -> Vec<u64> {
    let r = c
        .append_batch(pb::AppendBatchRequest {
            items: envs.iter().map(|e| req(e, "", false)).collect(),
            wait_for_checkpoint: false,
        })
        .await
        .expect("batch")
        .into_inner();
    r.results
        .into_iter()
        .map(|it| {
            assert_eq!(it.error_code, 0, "{}", it.error_message);
            it.ok.expect("appended").index
        })
        .collect()
}

/// Every entry of `[start, end)` through GetEntries (end 0: to the current size), read fully.
async fn read_all(c: &mut LedgerClient<Channel>, start: u64, end: u64) -> Vec<u64> {
    let mut s = c
        .get_entries(pb::GetEntriesRequest { start, end })
        .await
        .expect("GetEntries answers")
        .into_inner();
    let mut out = Vec::new();
    while let Some(e) = s.message().await.expect("entry") {
        out.push(e.index);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_streams_are_bounded_hold_no_thread_and_expire() {
    const MAX_STREAMS: usize = 16;
    const ATTACK: usize = 200;
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, "ledger.test/readers", &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let node = start_node(
        &data,
        &["--max-streams", &MAX_STREAMS.to_string(), "--stream-idle-ms", "1500"],
    );
    let mut c = node.client().await;
    let reg = new_key();
    append(&mut c, &enroll(&reg, "r", &["registrar"], &[&admin]), "")
        .await
        .expect("enroll");
    // 400 entries of about 2 KiB on the wire each: far more than one stingy window.
    let text = "x".repeat(1000);
    let envs: Vec<_> = (0..400)
        .map(|i| {
            record(
                "note",
                serde_json::json!({"version": 1, "text": format!("{i} {text}"), "subject": "s"}),
                &[&reg],
            )
        })
        .collect();
    let size = batch(&mut c, &envs).await.last().expect("appended") + 1;
    let threads_before = proc_status(&node, "Threads");
    let rss_before = proc_status(&node, "VmRSS");

    // The attack: 200 streams of the whole log, none of them read: the first on a connection of its
    // own (read at the end), the others over 4 connections.
    let mut probe_conn = stingy_channel(&node.addr).await;
    let mut probe = probe_conn
        .get_entries(pb::GetEntriesRequest { start: 0, end: 0 })
        .await
        .expect("the first stream is served")
        .into_inner();
    let mut conns = Vec::new();
    for _ in 0..4 {
        conns.push(stingy_channel(&node.addr).await);
    }
    let mut open = Vec::new();
    let mut refused = Vec::new();
    for i in 1..ATTACK {
        match conns[i % 4]
            .get_entries(pb::GetEntriesRequest { start: 0, end: 0 })
            .await
        {
            Ok(s) => open.push(s.into_inner()),
            Err(s) => refused.push(s),
        }
    }
    assert_eq!(open.len() + 1, MAX_STREAMS, "exactly the bound is served");
    assert_eq!(refused.len(), ATTACK - MAX_STREAMS);
    for s in &refused {
        assert_eq!(s.code(), Code::ResourceExhausted, "{s}");
        assert!(s.message().contains("streams are open"), "{s}");
    }

    // Honest readers are still answered while every slot is taken.
    let mut honest = node.client().await;
    assert_eq!(read_all(&mut honest, 0, 5).await, (0..5).collect::<Vec<_>>());
    let cp = honest
        .get_checkpoint(pb::GetCheckpointRequest { size: None })
        .await
        .expect("GetCheckpoint answers under the attack")
        .into_inner();
    assert!(cp.size > 0 && cp.size <= size);
    let e = honest
        .get_entry(pb::GetEntryRequest { index: 3 })
        .await
        .expect("GetEntry answers")
        .into_inner();
    assert_eq!(e.index, 3);
    let err = honest
        .get_entries(pb::GetEntriesRequest { start: 0, end: 0 })
        .await
        .expect_err("a large stream beyond the bound is refused");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");

    // No thread per stream: the node's threads grow by far less than the streams it serves.
    let threads = proc_status(&node, "Threads");
    let rss = proc_status(&node, "VmRSS");
    eprintln!(
        "{ATTACK} unread streams ({MAX_STREAMS} served): threads {threads_before} -> {threads}, RSS {rss_before} kB -> {rss} kB"
    );
    assert!(
        threads <= threads_before + MAX_STREAMS as u64,
        "threads {threads_before} -> {threads}"
    );
    assert!(rss < rss_before + 256 * 1024, "RSS {rss_before} kB -> {rss} kB");

    // The idle deadline ends the unread streams and frees their slots: a large read is served
    // again (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match honest.get_entries(pb::GetEntriesRequest { start: 0, end: 0 }).await {
            Ok(s) => {
                let mut s = s.into_inner();
                let mut n = 0u64;
                while let Some(e) = s.message().await.expect("entry") {
                    assert_eq!(e.index, n);
                    n += 1;
                }
                assert!(n >= size, "the whole log is streamed: {n} of {size}");
                break;
            }
            Err(s) => {
                assert_eq!(s.code(), Code::ResourceExhausted, "{s}");
                assert!(Instant::now() < deadline, "the unread streams were never ended");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    // An expired stream, read at last, delivers a prefix and then says where to continue.
    let mut n = 0u64;
    let err = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match probe.message().await {
                Ok(Some(e)) => {
                    assert_eq!(e.index, n, "entries arrive in order without gaps");
                    n += 1;
                }
                Ok(None) => panic!("an expired stream must not end as if complete (after {n} entries)"),
                Err(e) => break e,
            }
        }
    })
    .await
    .expect("the expired stream answers when read");
    assert!(n < size, "the stream was cut: {n} of {size}");
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err}");
    assert!(
        err.message().contains(&format!("from start {n}")),
        "resume point named: {err}"
    );
    drop((open, conns, probe_conn));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_work_and_answers_are_bounded_and_paging_is_exact() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, "ledger.test/query", &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let node = start_node(&data, &["--query-scan-limit", "100"]);
    let mut c = node.client().await;
    let (reg, platform) = (new_key(), new_key());
    append(&mut c, &enroll(&reg, "r", &["registrar"], &[&admin]), "")
        .await
        .expect("enroll");
    append(
        &mut c,
        &enroll(&platform, "platform", &["service-platform"], &[&admin]),
        "",
    )
    .await
    .expect("enroll");

    // Two filters: subject "cadre-0" matches 600 notes and 5 micro-evaluations; the kind matches
    // only the 5, spread over the log.
    let mut envs = Vec::new();
    for i in 0..600u64 {
        if i % 120 == 60 {
            envs.push(record("evaluation.micro", micro_payload(7 * (i / 120)), &[&platform]));
        }
        envs.push(record(
            "note",
            serde_json::json!({"version": 1, "text": format!("n{i}"), "subject": "cadre-0"}),
            &[&reg],
        ));
    }
    let indices = batch(&mut c, &envs).await;
    let want: Vec<u64> = envs
        .iter()
        .zip(&indices)
        .filter(|(e, _)| e.payload_type.contains("evaluation.micro"))
        .map(|(_, i)| *i)
        .collect();
    assert_eq!(want.len(), 5);
    let mut got = Vec::new();
    let mut page_start = 0;
    let mut partial_pages = 0;
    let mut calls = 0;
    loop {
        calls += 1;
        assert!(calls < 100, "paging never ends");
        let r = c
            .query(pb::QueryRequest {
                subject: "cadre-0".into(),
                kind: "evaluation.micro".into(),
                page_start,
                limit: 100,
                ..Default::default()
            })
            .await
            .expect("query")
            .into_inner();
        got.extend(r.indices.iter().copied());
        if r.next_page_start == 0 {
            break;
        }
        assert!(r.next_page_start > page_start, "paging progresses");
        if r.indices.len() < 100 {
            partial_pages += 1;
        }
        page_start = r.next_page_start;
    }
    assert_eq!(got, want, "paging returns exactly the matching set");
    assert!(
        partial_pages >= 5,
        "the scan bound ends pages early ({partial_pages} partial pages in {calls} calls)"
    );
    // Every page scanned at most 100 terms: 50 candidates of the first filter with 2 filters,
    // so over 600 candidates it took at least 12 calls.
    assert!(calls >= 12, "{calls} calls");

    // Answers are bounded in bytes: 10 entries of about 900 KB, asked for with their entries.
    let big = "y".repeat(900_000);
    let mut big_idx = Vec::new();
    for i in 0..10 {
        let env = record(
            "note",
            serde_json::json!({"version": 1, "text": format!("{i}{big}"), "subject": "big"}),
            &[&reg],
        );
        big_idx.push(append(&mut c, &env, "").await.expect("large append").index);
    }
    let mut got = Vec::new();
    let mut page_start = 0;
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages < 20, "paging never ends");
        let r = c
            .query(pb::QueryRequest {
                subject: "big".into(),
                page_start,
                limit: 1000,
                with_entries: true,
                ..Default::default()
            })
            .await
            .expect("query with entries")
            .into_inner();
        assert!(
            r.encoded_len() <= 4 << 20,
            "answer of {} bytes exceeds 4 MiB",
            r.encoded_len()
        );
        assert!(!r.indices.is_empty());
        assert_eq!(
            r.entries.iter().map(|e| e.index).collect::<Vec<_>>(),
            r.indices,
            "each index comes with its entry"
        );
        got.extend(r.indices.iter().copied());
        if r.next_page_start == 0 {
            break;
        }
        assert_eq!(
            r.next_page_start,
            big_idx[got.len()],
            "the page ends at the first entry left out"
        );
        page_start = r.next_page_start;
    }
    assert_eq!(got, big_idx, "paging with entries returns exactly the matching set");
    assert!(
        pages >= 3,
        "10 entries of ~1.8 MB on the wire need several 4 MiB pages ({pages})"
    );
}
