//! `ledger-node serve --cluster`: three real node processes on loopback (tests/support/cluster.rs).
//! Appends go to the leader and reach every node with the same leaf hash; a follower refuses an
//! append naming the leader, and ledger-client follows it; a retry after the leader is SIGKILLed
//! answers the original index; the killed node catches up; every node replays to the same root;
//! a follower serves proofs at its applied size and refuses a larger one; a node restarted with a
//! tiny scan budget folds its applied log in passes, reopening its store, and serves every entry.
//! Every wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/cluster.rs"]
mod cluster;
mod support;

use cluster::{Cluster, ORIGIN};
use ledger_proto::pb;
use std::process::Command;
use support::{append, bin, key, note_payload, record};

fn note(i: u64, admin: &ed25519_dalek::SigningKey) -> ledger_core::dsse::Envelope {
    record("note", note_payload(i), &[admin])
}

/// The final root `ledger-verify replay --node URL` reports.
fn replay_root(url: &str) -> String {
    let out = Command::new(bin("ledger-verify"))
        .args(["replay", "--threads", "1", "--node", url])
        .output()
        .expect("ledger-verify");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "replay of {url} failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .find_map(|l| l.trim().strip_prefix("final:"))
        .unwrap_or_else(|| panic!("no final root in:\n{text}"))
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_on_the_leader_reach_every_node_and_followers_name_the_leader() {
    support::set_origin(Some(ORIGIN));
    let mut c = Cluster::prepare(3);
    c.extra = vec!["--tiles-listen".into(), "127.0.0.1:0".into()];
    c.start_all();
    let admin = key(&c.admin);
    let l = c.leader().await;
    let mut lc = c.nodes[l].client();
    let mut acked = Vec::new();
    for i in 0..5 {
        let r = append(&mut lc, &note(i, &admin), &format!("req-{i}"))
            .await
            .expect("append to the leader");
        acked.push(r);
    }
    let size = acked.last().unwrap().index + 1;
    for i in 0..3 {
        c.wait_size(i, size).await;
        let mut nc = c.nodes[i].client();
        for r in &acked {
            let e = nc
                .get_entry(pb::GetEntryRequest { index: r.index })
                .await
                .expect("entry")
                .into_inner();
            assert_eq!(e.leaf_hash, r.leaf_hash, "node {} entry {}", i + 1, r.index);
        }
    }
    // A follower refuses an append, naming the leader in the message and the metadata.
    let f = (l + 1) % 3;
    let err = append(&mut c.nodes[f].client(), &note(100, &admin), "req-f")
        .await
        .expect_err("a follower does not sequence");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert!(err.message().starts_with("NOT_LEADER"), "{}", err.message());
    assert!(err.message().contains(&c.nodes[l].api), "{}", err.message());
    assert_eq!(
        err.metadata().get("ledger-leader").and_then(|v| v.to_str().ok()),
        Some(c.nodes[l].api.as_str())
    );
    // ledger-client connected to the follower follows the metadata to the leader.
    let client = ledger_client::LedgerClient::connect(&c.nodes[f].url())
        .await
        .expect("connect");
    let o = client
        .append(&note(101, &admin), Some("req-via-follower".into()), false)
        .await
        .expect("append through a follower");
    assert_eq!((o.index, o.duplicate), (size, false));
    // The same request id again, through the other follower: the original index.
    let g = (l + 2) % 3;
    let client2 = ledger_client::LedgerClient::connect(&c.nodes[g].url())
        .await
        .expect("connect");
    let again = client2
        .append(&note(101, &admin), Some("req-via-follower".into()), false)
        .await
        .expect("retry through a follower");
    assert_eq!((again.index, again.duplicate), (size, true));
    // ledgerctl pointed at a follower appends through the leader too (it reads the log's origin
    // from the follower's checkpoint first).
    c.wait_checkpoint(g, 1).await;
    let payload = c.dir.path().join("note.json");
    std::fs::write(&payload, note_payload(102).to_string()).unwrap();
    let out = Command::new(bin("ledgerctl"))
        .args(["--node", &c.nodes[g].url(), "append", "--kind", "note", "--payload"])
        .arg(&payload)
        .arg("--key")
        .arg(&c.admin)
        .output()
        .expect("ledgerctl");
    assert!(
        out.status.success(),
        "ledgerctl through a follower: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A follower serves a proof at its applied size and refuses a size it does not hold.
    let size = c.wait_size(f, size + 2).await;
    let mut fc = c.nodes[f].client();
    let p = fc
        .get_inclusion_proof(pb::GetInclusionProofRequest {
            target: Some(pb::get_inclusion_proof_request::Target::Index(1)),
            tree_size: size,
        })
        .await
        .expect("proof at the follower's size")
        .into_inner();
    assert_eq!(p.tree_size, size);
    let beyond = fc
        .get_inclusion_proof(pb::GetInclusionProofRequest {
            target: Some(pb::get_inclusion_proof_request::Target::Index(1)),
            tree_size: size + 1000,
        })
        .await
        .expect_err("a size nobody holds");
    assert_eq!(beyond.code(), tonic::Code::OutOfRange, "{beyond:?}");
    assert!(
        beyond.message().contains("this node has applied"),
        "{}",
        beyond.message()
    );
    // The follower's tlog-tiles serve a checkpoint of its own store: the leader's bytes.
    c.wait_checkpoint(f, size).await;
    let tiles = c.nodes[f].tiles.lock().unwrap().clone().expect("tiles address");
    let served = cluster::http_get(&tiles, "/checkpoint");
    let served_size: u64 = served
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .expect("a checkpoint body");
    let on_leader = c.nodes[l]
        .client()
        .get_checkpoint(pb::GetCheckpointRequest {
            size: Some(served_size),
        })
        .await
        .expect("leader checkpoint")
        .into_inner()
        .note;
    assert_eq!(served, on_leader);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_the_leader_is_killed_answers_the_original_index_and_the_node_catches_up() {
    support::set_origin(Some(ORIGIN));
    let mut c = Cluster::start(3);
    let admin = key(&c.admin);
    let l = c.leader().await;
    let first = append(&mut c.nodes[l].client(), &note(1, &admin), "before-kill")
        .await
        .expect("append");
    // Every node holds it before the leader dies (it was committed by a majority anyway).
    for i in 0..3 {
        c.wait_size(i, first.index + 1).await;
    }
    let killed = std::time::Instant::now();
    c.nodes[l].kill9();
    let l2 = c.leader().await;
    assert_ne!(l2, l);
    let retry = append(&mut c.nodes[l2].client(), &note(1, &admin), "before-kill")
        .await
        .expect("retry on the new leader");
    // Reported, not asserted (--nocapture): leader SIGKILL to the first answer of the new leader.
    eprintln!("failover: leader killed -> retry answered in {:?}", killed.elapsed());
    assert_eq!((retry.index, retry.duplicate), (first.index, true));
    assert_eq!(retry.leaf_hash, first.leaf_hash);
    let mut last = retry.index;
    for i in 2..6 {
        last = append(&mut c.nodes[l2].client(), &note(i, &admin), &format!("after-kill-{i}"))
            .await
            .expect("append on the new leader")
            .index;
    }
    // The killed node comes back, follows, and catches up.
    let restarted = std::time::Instant::now();
    c.restart(l);
    c.wait_size(l, last + 1).await;
    eprintln!(
        "catch-up: killed node restarted and at size {} in {:?}",
        last + 1,
        restarted.elapsed()
    );
    // Every node serves the leader's checkpoint of the whole log, byte for byte.
    let (cp_size, note) = c.wait_checkpoint(l2, last + 1).await;
    for i in 0..3 {
        c.wait_checkpoint(i, cp_size).await;
        let same = c.nodes[i]
            .client()
            .get_checkpoint(pb::GetCheckpointRequest { size: Some(cp_size) })
            .await
            .expect("checkpoint")
            .into_inner();
        assert_eq!(same.note, note, "node {}", i + 1);
    }
    let roots: Vec<String> = (0..3).map(|i| replay_root(&c.nodes[i].url())).collect();
    assert!(roots.iter().all(|r| *r == roots[0]), "{roots:?}");
    assert!(roots[0].contains(&format!("size {}", last + 1)), "{roots:?}");
}

/// A node that was told to serve a cluster file it cannot use stops with a clear message.
#[test]
fn a_bad_cluster_file_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "id = 4\nlisten = \"127.0.0.1:1\"\ndata = \"x\"\n[peers]\n1 = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let out = Command::new(bin("ledger-node"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "off",
            "--cluster",
        ])
        .arg(&file)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not among the peers"), "{err}");
}

/// With a witness configured on every node, only the leader pushes; the cosigned checkpoint is
/// replicated, so a follower serves the witness's cosignature on the same checkpoint bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_pushes_to_the_witness_and_followers_serve_the_cosigned_checkpoint() {
    support::set_origin(Some(ORIGIN));
    let mut c = Cluster::prepare(3);
    let wdata = c.dir.path().join("witness");
    let mut cmd = Command::new(bin("ledger-node"));
    cmd.args(["witness", "--listen", "127.0.0.1:0", "--data"])
        .arg(&wdata)
        .arg("--log-key")
        .arg(c.log_vkey())
        .args(["--name", "witness.test/cluster"]);
    let (mut witness, waddr, before) = support::spawn_listening(cmd);
    let wkey = before
        .iter()
        .find_map(|l| l.strip_prefix("witness key "))
        .expect("the witness prints its key")
        .to_string();
    let wname = wkey.split('+').next().unwrap().to_string();
    c.extra = vec!["--witness".into(), format!("{waddr}={wkey}")];
    c.start_all();
    let admin = key(&c.admin);
    let l = c.leader().await;
    let r = append(&mut c.nodes[l].client(), &note(7, &admin), "witnessed-1")
        .await
        .expect("append");
    let f = (l + 1) % 3;
    // Bounded: the follower serves a checkpoint covering the entry that carries the witness's
    // cosignature line.
    let t = std::time::Instant::now();
    let mut cosigned = None;
    while t.elapsed() < cluster::WAIT && cosigned.is_none() {
        let (size, _) = c.wait_checkpoint(f, r.index + 1).await;
        if let Ok(cp) = c.nodes[f]
            .client()
            .get_checkpoint(pb::GetCheckpointRequest { size: Some(size) })
            .await
        {
            let note = cp.into_inner().note;
            if note.lines().any(|line| line.starts_with(&format!("— {wname} "))) {
                cosigned = Some((size, note));
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (size, note) = cosigned.expect("a follower serves the witness-cosigned checkpoint");
    let on_leader = c.nodes[l]
        .client()
        .get_checkpoint(pb::GetCheckpointRequest { size: Some(size) })
        .await
        .expect("leader checkpoint")
        .into_inner()
        .note;
    assert_eq!(on_leader, note);
    let _ = witness.kill();
    let _ = witness.wait();
}

/// A cluster node without the log's node key does not start (it could become a voter and lead):
/// it says so at once, before waiting for the cluster.
#[test]
fn a_cluster_node_without_the_node_key_is_refused_at_start() {
    let c = Cluster::prepare(3);
    std::fs::remove_file(c.nodes[2].data.join("keys/node.key")).unwrap();
    let out = Command::new(bin("ledger-node"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "off",
            "--tiles-listen",
            "off",
        ])
        .arg("--cluster")
        .arg(&c.nodes[2].file)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("every cluster node needs the log's node key"), "{err}");
}

/// Issue 14 (CSTART): a follower restarted with `LEDGER_SCAN_BYTES=1` folds its applied log in
/// passes, closing and reopening its store between them (it logs the reopens), and then serves
/// every entry with the same root as the leader, and follows new appends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_with_a_tiny_scan_budget_reopens_its_store_and_serves_every_entry() {
    support::set_origin(Some(ORIGIN));
    let mut c = Cluster::start(3);
    let admin = key(&c.admin);
    // 600 notes after the charter: more than two entry bundles of 256.
    for b in 0..2u64 {
        let items = (0..300u64)
            .map(|i| support::req(&note(b * 1000 + i, &admin), &format!("scan-{b}-{i}"), false))
            .collect();
        let (_, r) = c.append_batch_on_leader(items).await;
        assert!(r.results.iter().all(|x| x.ok.is_some()), "{:?}", r.results.first());
    }
    let size = 601;
    for i in 0..3 {
        c.wait_size(i, size).await;
    }
    let l = c.leader().await;
    let f = (l + 1) % 3;
    c.nodes[f].stop();
    c.restart_with_env(f, &[("LEDGER_SCAN_BYTES", "1")]);
    let log = std::fs::read_to_string(&c.nodes[f].log).unwrap();
    let folded = log
        .lines()
        .rfind(|l| l.contains("applied log folded"))
        .unwrap_or_else(|| panic!("no fold line in:\n{}", c.nodes[f].log_tail()));
    let reopens: u64 = folded
        .split_whitespace()
        .find_map(|w| w.strip_prefix("reopens="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no reopens in {folded:?}"));
    assert!(folded.contains(&format!("size={size}")), "{folded}");
    assert!(reopens >= 2, "{folded}");
    c.wait_size(f, size).await;
    let l = c.leader().await;
    let more = append(&mut c.nodes[l].client(), &note(5000, &admin), "after-restart")
        .await
        .expect("append after the restart");
    c.wait_size(f, more.index + 1).await;
    let (a, b) = (replay_root(&c.nodes[f].url()), replay_root(&c.nodes[l].url()));
    assert_eq!(a, b);
    assert!(a.contains(&format!("size {}", more.index + 1)), "{a}");
}
