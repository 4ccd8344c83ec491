//! `ledger-node serve --cluster`: three real node processes on loopback (tests/support/cluster.rs).
//! Appends go to the leader and reach every node with the same leaf hash; a follower refuses an
//! append naming the leader, and ledger-client follows it; a retry after the leader is SIGKILLed
//! answers the original index; the killed node catches up; every node replays to the same root;
//! a follower serves proofs at its applied size and refuses a larger one. Every wait is bounded.
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

/// The final root `ledger-verify replay --data DATA/ledger` reports for a cluster node's store
/// (read while the node runs). Followers hold no checkpoint of their own yet, so the replay
/// reads the store rather than the node's API.
fn replay_root(data: &std::path::Path) -> String {
    let out = Command::new(bin("ledger-verify"))
        .args(["replay", "--threads", "1", "--data"])
        .arg(data.join("ledger"))
        .output()
        .expect("ledger-verify");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "replay of {} failed:\n{text}\n{}",
        data.display(),
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
    let c = Cluster::start(3);
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
    // A follower serves a proof at its applied size and refuses a size it does not hold.
    let size = c.wait_size(f, size + 1).await;
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
    c.nodes[l].kill9();
    let l2 = c.leader().await;
    assert_ne!(l2, l);
    let retry = append(&mut c.nodes[l2].client(), &note(1, &admin), "before-kill")
        .await
        .expect("retry on the new leader");
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
    c.restart(l);
    c.wait_size(l, last + 1).await;
    let roots: Vec<String> = (0..3).map(|i| replay_root(&c.nodes[i].data)).collect();
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
