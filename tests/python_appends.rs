//! The write path of issue 14 (coalesced edge checks, merged group commits, request ids of groups
//! not yet durable kept in memory) driven from outside by a client not written in Rust:
//! `examples/python/appender.py`, built from `proto/` and docs/ alone, appends micro-evaluations
//! from 16 threads at once, races one request id across seven senders with two envelopes, races
//! two request ids over one ticket, and checks every accepted entry itself (leaf bytes, leaf hash,
//! envelope, RFC 9162 inclusion proof against a checkpoint signed by the node key, each ticket
//! exactly once in the whole log). The node runs with `LEDGER_FAULT_INJECT=slow-commit`, so that
//! commits are slow and the groups sequenced meanwhile are merged into one commit, the path where
//! a request id must be found among groups not yet durable. The Rust side then reads the log with
//! its own client and replays it with `ledger-verify`.
//!
//! Needs the Python modules of tests/support_python (skips without them outside CI).

#[path = "support/mod.rs"]
mod support;
#[path = "support_python/mod.rs"]
mod support_python;

use serde_json::Value;
use std::path::Path;
use std::process::Command;
use support::*;

fn ledgerctl(node: &str, dir: &Path, args: &[&str]) {
    let o = Command::new(env!("CARGO_BIN_EXE_ledgerctl"))
        .arg("--node")
        .arg(node)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run ledgerctl");
    assert!(
        o.status.success(),
        "ledgerctl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_appends_concurrently_and_checks_every_entry_while_commits_merge() {
    let Some(python) = support_python::python("python_appends") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("d");
    init(&data, "ledger.test/python-appends", &[], 1);
    let node = Node::try_start_env(&data, &[], &[("LEDGER_FAULT_INJECT", "slow-commit")]).expect("node");
    let admin = data.join("keys/admin.key");
    let vkey = std::fs::read_to_string(data.join("keys/node.vkey")).expect("vkey");

    // The service platform's key, made and enrolled with ledgerctl; the Python client signs with it.
    ledgerctl(&node.addr, tmp.path(), &["keygen", "--out", "platform.key"]);
    ledgerctl(
        &node.addr,
        tmp.path(),
        &[
            "enroll",
            "--admin-key",
            admin.to_str().expect("utf8"),
            "--pubkey",
            "@platform.key.pub",
            "--name",
            "service platform",
            "--role",
            "service-platform",
        ],
    );
    let mut c = node.client().await;
    let before = entries(&mut c).await.len() as u64;

    let (threads, per, races) = (16u64, 25u64, 8u64);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/python/appender.py");
    let o = Command::new(&python)
        .arg(script)
        .args(["--node", &node.addr, "--key", "platform.key", "--node-key", vkey.trim()])
        .args(["--threads", &threads.to_string(), "--per", &per.to_string()])
        .args(["--races", &races.to_string()])
        .current_dir(tmp.path())
        .output()
        .expect("run appender.py");
    let shown = format!(
        "appender.py ({:?}):\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let last = String::from_utf8_lossy(&o.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    let v: Value = serde_json::from_str(&last).unwrap_or_else(|_| panic!("{shown}"));
    assert_eq!(o.status.code(), Some(0), "{shown}");
    // Every fresh append accepted once; one entry per request-id race; one refusal per ticket race.
    let accepted = threads * per + races + races;
    assert_eq!(v["appended"], threads * per, "{v}");
    assert_eq!(v["request_id_races"], races, "{v}");
    assert_eq!(v["ticket_races_refused"], races, "{v}");
    assert_eq!(v["entries_checked"], accepted, "{v}");

    // The same log read by this side: exactly the accepted entries were added (no entry for a
    // retried request id, none for a second rating of a ticket), all by the platform's key.
    let all = entries(&mut c).await;
    assert_eq!(all.len() as u64, before + accepted, "entries added");
    let micro = all.iter().filter(|e| e.1 == "evaluation.micro").count() as u64;
    assert_eq!(micro, accepted);
    let mut tickets: Vec<&str> = all
        .iter()
        .filter(|e| e.1 == "evaluation.micro")
        .filter_map(|e| e.2["ticket_hash"].as_str())
        .collect();
    tickets.sort_unstable();
    tickets.dedup();
    assert_eq!(tickets.len() as u64, accepted, "each ticket once");

    // And the whole log replays: every signature, registry rule and ticket rule holds again.
    replay_ok(&["--node", &node.addr]);
}
