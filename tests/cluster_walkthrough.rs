//! docs/cluster.md's three-node walkthrough, run as written: the indented block under "Three
//! nodes on one machine (walkthrough)" is taken from the document, its port bases (`R=7100
//! A=50050`) are replaced by free ones and its `cargo build` line dropped (the test's binaries are
//! on PATH), and it runs in `bash -e` in a temporary directory, bounded in time; its whole process
//! group is killed at the end. A command the document gets wrong fails this test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const HEADING: &str = "### Three nodes on one machine (walkthrough)";
const PORTS: &str = "R=7100 A=50050";

/// The walkthrough's shell block (its indented lines, unindented by four spaces).
fn walkthrough() -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/cluster.md")).unwrap();
    let at = doc.find(HEADING).expect("the walkthrough heading in docs/cluster.md");
    let mut block = Vec::new();
    for line in doc[at..].lines().skip(1) {
        if let Some(cmd) = line.strip_prefix("    ") {
            block.push(cmd.to_string());
        } else if !block.is_empty() && !line.trim().is_empty() {
            break;
        }
    }
    assert!(block.len() > 10, "no walkthrough block found: {block:?}");
    block.join("\n") + "\n"
}

/// A base port B with B+1..B+3 free (bound together, then released).
fn free_base(avoid: u16) -> u16 {
    let start = 20_000 + (std::process::id() % 20_000) as u16;
    for b in (start..60_000).step_by(7) {
        if b.abs_diff(avoid) < 8 {
            continue;
        }
        let held: Vec<_> = (1..=3)
            .filter_map(|i| std::net::TcpListener::bind(("127.0.0.1", b + i)).ok())
            .collect();
        if held.len() == 3 {
            return b;
        }
    }
    panic!("no three consecutive free ports");
}

#[test]
fn the_three_node_walkthrough_in_docs_cluster_md_works_as_written() {
    let block = walkthrough();
    assert!(block.contains(PORTS), "the walkthrough sets its ports with `{PORTS}`");
    let (r, a) = {
        let r = free_base(0);
        (r, free_base(r))
    };
    let script = block
        .lines()
        .filter(|l| !l.starts_with("cargo build"))
        .map(|l| {
            if l == PORTS {
                format!("R={r} A={a}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\necho WALKTHROUGH-DONE\n";
    let dir = tempfile::tempdir().unwrap();
    let bins = support::bin("ledger-node").parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bins.display(), std::env::var("PATH").unwrap_or_default());
    let out_path = dir.path().join("walkthrough.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new("bash")
        .args(["-e", "-x", "-c", &script])
        .current_dir(dir.path())
        .env("PATH", path)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .process_group(0)
        .spawn()
        .expect("bash");
    let pgid = child.id();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if t.elapsed() > Duration::from_secs(120) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // Whatever happened, nothing the walkthrough started outlives the test.
    let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).status();
    let _ = child.wait();
    let log = std::fs::read_to_string(&out_path).unwrap_or_default();
    let node_logs: String = (1..=3)
        .map(|i| {
            let l = std::fs::read_to_string(dir.path().join(format!("cluster/n{i}.log"))).unwrap_or_default();
            let tail: Vec<&str> = l.lines().rev().take(15).collect();
            format!("--- n{i}.log (last lines, newest first)\n{}\n", tail.join("\n"))
        })
        .collect();
    let status = status.unwrap_or_else(|| panic!("the walkthrough did not finish within 120 s:\n{log}\n{node_logs}"));
    assert!(
        status.success(),
        "the walkthrough failed ({status}):\n{log}\n{node_logs}"
    );
    assert!(log.contains("WALKTHROUGH-DONE"), "{log}");
    // What the walkthrough shows: a status naming the leader and the voters, the entry read from
    // another node, a replay with a final root (the commands' own output, not bash's trace).
    let printed: Vec<&str> = log.lines().filter(|l| !l.starts_with('+')).collect();
    let has = |s: &str| printed.iter().any(|l| l.contains(s));
    assert!(has("voters: 1 (raft 127.0.0.1:"), "{log}");
    assert!(has("hello, cluster"), "{log}");
    assert!(has("final:"), "{log}");
}
