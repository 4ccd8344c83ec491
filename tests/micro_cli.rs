//! `ledgerctl micro send` run as a service platform would (real binaries, real node): a file of
//! ratings sent, the client killed with SIGKILL part-way, the same command run again to completion,
//! and every rating in the log exactly once; a rerun and a resend of a part of the file add nothing;
//! `ledger-verify replay` of the whole log is clean.

#[path = "support/mod.rs"]
mod support;

use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// Ratings in the file. 100,000 as issue 17 asks: the debug build sends them in about 25 s on a
/// 2-core machine (killed run and resumed run together; the test prints the time), the whole test
/// takes about 40 s.
const RATINGS: u64 = 100_000;

fn ledgerctl(node: &str, dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ledgerctl"))
        .arg("--node")
        .arg(node)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run ledgerctl")
}

fn ok(node: &str, dir: &Path, args: &[&str]) -> String {
    let o = ledgerctl(node, dir, args);
    assert!(
        o.status.success(),
        "ledgerctl {args:?} failed ({:?}):\n{}\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Number of `evaluation.micro` entries in the log and of distinct ticket hashes among them.
async fn micro_counts(node: &Node) -> (u64, usize) {
    let mut c = node.client().await;
    let mut n = 0;
    let mut tickets = BTreeSet::new();
    for (_, kind, v, _) in entries(&mut c).await {
        if kind == "evaluation.micro" {
            n += 1;
            tickets.insert(v["ticket_hash"].as_str().expect("ticket").to_string());
        }
    }
    (n, tickets.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn micro_file_resumed_after_sigkill_counted_once() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let data = dir.join("d");
    init(&data, "ledger.test/micro-cli", &[], 1);
    let node = Node::start(&data);
    let addr = node.addr.clone();
    let admin = data.join("keys/admin.key");
    let admin = admin.to_str().expect("utf8");
    ok(&addr, dir, &["keygen", "--out", "platform.key"]);
    ok(
        &addr,
        dir,
        &[
            "enroll",
            "--admin-key",
            admin,
            "--pubkey",
            "@platform.key.pub",
            "--name",
            "service platform",
            "--role",
            "service-platform",
        ],
    );

    // The file: one rating per line, as docs/ballots.md describes.
    let file = dir.join("ratings.jsonl");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&file).expect("create"));
        for n in 0..RATINGS {
            writeln!(f, "{}", micro_payload(n)).expect("write");
        }
        f.flush().expect("flush");
    }

    // First run, killed with SIGKILL once the node holds some of the ratings.
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ledgerctl"))
        .args([
            "--node",
            &addr,
            "micro",
            "send",
            "ratings.jsonl",
            "--key",
            "platform.key",
            "--quiet",
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ledgerctl");
    let progress = dir.join("ratings.jsonl.progress");
    let deadline = Instant::now() + Duration::from_secs(60);
    let file_len = std::fs::metadata(&file).expect("len").len();
    let done = || -> u64 {
        std::fs::read(&progress)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v["bytes_done"].as_u64())
            .unwrap_or(0)
    };
    // Killed once about a fifth of the file is answered, so the node holds some but not all.
    while done() < file_len / 5 {
        assert!(Instant::now() < deadline, "no batch answered within 60 s");
        assert!(
            child.try_wait().expect("wait").is_none(),
            "ledgerctl ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    let (partial, _) = micro_counts(&node).await;
    assert!(
        partial > 0 && partial < RATINGS,
        "{partial} of {RATINGS} sent before the kill"
    );

    // Second run, to completion: the progress file skips what was answered, the node answers the
    // rest of the interrupted batch as duplicates.
    let out = ok(
        &addr,
        dir,
        &["--json", "micro", "send", "ratings.jsonl", "--key", "platform.key"],
    );
    let elapsed = started.elapsed();
    let s: Value = serde_json::from_str(&out).expect("summary");
    assert_eq!(s["ratings"], RATINGS, "{s}");
    assert_eq!(s["refused"], serde_json::json!({}), "{s}");
    let (skipped, sent, present) = (
        s["skipped"].as_u64().expect("skipped"),
        s["sent"].as_u64().expect("sent"),
        s["already_present"].as_u64().expect("present"),
    );
    assert!(skipped > 0, "the progress file was not used: {s}");
    assert_eq!(skipped + sent + present, RATINGS, "{s}");
    // (A batch in flight at the kill may have been sequenced after `partial` was counted.)
    assert!(skipped + present >= partial, "{s}");
    eprintln!("{RATINGS} ratings: killed after {partial}, completed in {elapsed:?} in all");

    let (n, distinct) = micro_counts(&node).await;
    assert_eq!(n, RATINGS);
    assert_eq!(distinct, RATINGS as usize);

    // A third run finds everything done.
    let s: Value = serde_json::from_str(&ok(
        &addr,
        dir,
        &["--json", "micro", "send", "ratings.jsonl", "--key", "platform.key"],
    ))
    .expect("summary");
    assert_eq!(
        (s["skipped"].as_u64(), s["sent"].as_u64()),
        (Some(RATINGS), Some(0)),
        "{s}"
    );

    // Part of the file sent again without a progress file: all already present, nothing appended.
    let text = std::fs::read_to_string(&file).expect("read");
    let part: String = text.lines().take(2000).map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.join("again.jsonl"), part).expect("write");
    let s: Value = serde_json::from_str(&ok(
        &addr,
        dir,
        &[
            "--json",
            "micro",
            "send",
            "again.jsonl",
            "--key",
            "platform.key",
            "--no-progress-file",
        ],
    ))
    .expect("summary");
    assert_eq!(
        (s["sent"].as_u64(), s["already_present"].as_u64()),
        (Some(0), Some(2000)),
        "{s}"
    );
    assert!(!dir.join("again.jsonl.progress").exists());

    // A bad line and a rating out of the 400-day window are refused with their codes; the rest goes.
    let mut late = micro_payload(RATINGS);
    late["service_time_micros"] = serde_json::json!(1_000_000u64);
    let mixed = format!("{}\nnot json\n{late}\n", micro_payload(RATINGS + 1));
    std::fs::write(dir.join("mixed.jsonl"), mixed).expect("write");
    let o = ledgerctl(
        &addr,
        dir,
        &["--json", "micro", "send", "mixed.jsonl", "--key", "platform.key"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    let s: Value = serde_json::from_slice(&o.stdout).expect("summary");
    assert_eq!(s["sent"], 1, "{s}");
    assert_eq!(s["refused"]["INVALID_LINE"], 1, "{s}");
    assert_eq!(s["refused"]["MICRO_TIME_OUT_OF_RANGE"], 1, "{s}");
    assert_eq!(s["refusals"][0]["line"], 2, "{s}");
    assert_eq!(s["refusals"][1]["line"], 3, "{s}");

    // The verifier replays the whole log: clean.
    drop(node);
    replay_data_ok(&data);
}
