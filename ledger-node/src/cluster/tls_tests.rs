//! Mutual TLS on the Raft port: two nodes with certificates of the cluster's CA replicate; a caller
//! without a certificate, with one from another CA, or speaking plain HTTP/2 is refused and
//! changes nothing; a config without `[tls]` is refused unless it is loopback-only and says so.
//! Certificates are made with the `openssl` command (Debian package openssl; `.ci/run` installs it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../tests/support/certs.rs"]
mod certs;

use super::config::ClusterConfig;
use super::network::Network;
use super::server::router;
use super::tests::{GroupMaker, WAIT, config, leader_of};
use super::{LedgerRaft, encode, open_raft_with};
use certs::{make_ca, make_leaf};
use ledger_proto::raft_pb::RaftRequest;
use ledger_proto::raft_pb::raft_client::RaftClient;
use ledger_raft::{ApplyOutcome, LedgerNode, StateMachine};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::TcpListener;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// Writes node `id`'s config file (TLS files named relative to it) and loads it.
fn node_config(dir: &Path, id: u64, peers: &[(u64, String)], tls: Option<(&str, &str)>) -> ClusterConfig {
    let mut text = format!(
        "id = {id}\nlisten = \"{}\"\ndata = \"n{id}\"\n[peers]\n",
        peers.iter().find(|(p, _)| *p == id).unwrap().1
    );
    for (p, a) in peers {
        text.push_str(&format!("{p} = \"{a}\"\n"));
    }
    match tls {
        Some((ca, cert)) => text.push_str(&format!(
            "[tls]\nca = \"pki/{ca}.pem\"\ncert = \"pki/{cert}.pem\"\nkey = \"pki/{cert}.key\"\n"
        )),
        None => text = text.replace("[peers]", "insecure_loopback = true\n[peers]"),
    }
    let path = dir.join(format!("node{id}.toml"));
    std::fs::write(&path, text).unwrap();
    ClusterConfig::load(&path).unwrap()
}

struct TlsNode {
    raft: LedgerRaft,
    sm: StateMachine,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
}

/// Starts a node the way `serve` will: the network and the Raft port built from its config.
async fn start(cfg: &ClusterConfig, dir: &Path, listener: TcpListener) -> TlsNode {
    let net = Network::from_config(cfg).unwrap();
    let (raft, sm) = open_raft_with(cfg.id, &dir.join(&cfg.data), config(), net)
        .await
        .unwrap();
    let r = router(cfg, raft.clone(), sm.clone()).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        r.serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    TlsNode { raft, sm, stop, server }
}

impl TlsNode {
    async fn stop(self) {
        self.raft.shutdown().await.unwrap();
        let _ = self.stop.send(());
        self.server.await.unwrap();
    }
}

fn pki(tmp: &Path) -> PathBuf {
    let dir = tmp.join("pki");
    std::fs::create_dir_all(&dir).unwrap();
    make_ca(&dir, "ca");
    make_leaf(&dir, "ca", "n1", 1);
    make_leaf(&dir, "ca", "n2", 2);
    make_ca(&dir, "evil-ca");
    make_leaf(&dir, "evil-ca", "evil", 3);
    dir
}

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_with_certificates_of_the_cluster_ca_replicate() {
    let tmp = tempfile::tempdir().unwrap();
    pki(tmp.path());
    let (l1, l2) = (bind().await, bind().await);
    let peers = vec![
        (1, l1.local_addr().unwrap().to_string()),
        (2, l2.local_addr().unwrap().to_string()),
    ];
    let c1 = node_config(tmp.path(), 1, &peers, Some(("ca", "n1")));
    let c2 = node_config(tmp.path(), 2, &peers, Some(("ca", "n2")));
    assert_eq!(c1.tls.as_ref().unwrap().ca, tmp.path().join("pki/ca.pem"));
    let n1 = start(&c1, tmp.path(), l1).await;
    let n2 = start(&c2, tmp.path(), l2).await;
    n1.raft.initialize(c1.members()).await.unwrap();
    let rafts = [(1, &n1.raft), (2, &n2.raft)];
    let l = leader_of(&rafts).await;
    let mut maker = GroupMaker::new();
    let mut last = 0;
    for _ in 0..3 {
        let g = maker.next(3);
        let resp = rafts[l].1.client_write(g.into()).await.unwrap();
        assert!(matches!(resp.data, ApplyOutcome::Applied { .. }), "{:?}", resp.data);
        last = resp.log_id.index;
    }
    for n in [&n1, &n2] {
        n.raft
            .wait(Some(WAIT))
            .applied_index_at_least(Some(last), "applied")
            .await
            .unwrap();
        assert_eq!(n.sm.applied_tree().unwrap(), maker.tree, "same tree on both nodes");
    }

    // A checkpoint signed by the log's node key, proposed through the leader, is stored byte for
    // byte on both nodes; a stale one (a smaller size than the latest) is refused on both.
    let sign = |size: u64, root| {
        let signer = ledger_core::note::NoteSigner::new("ledger.test/raftnet", maker.node.clone()).unwrap();
        ledger_core::checkpoint::Checkpoint {
            origin: "ledger.test/raftnet".into(),
            size,
            root,
            extensions: vec![],
        }
        .sign(&signer)
        .unwrap()
        .to_text()
    };
    let note = sign(maker.tree.size(), maker.tree.root());
    let root3 = n1
        .sm
        .with_store(|s| ledger_core::merkle::root_from_source(s, 3).unwrap())
        .unwrap();
    let stale = sign(3, root3);
    let size = maker.tree.size();
    let r = rafts[l]
        .1
        .client_write(ledger_raft::LedgerRequest::Checkpoint {
            size,
            note: note.clone(),
        })
        .await
        .unwrap();
    assert_eq!(r.data, ApplyOutcome::CheckpointStored { size, witnessed: false });
    let r = rafts[l]
        .1
        .client_write(ledger_raft::LedgerRequest::Checkpoint { size: 3, note: stale })
        .await
        .unwrap();
    assert_eq!(
        r.data,
        ApplyOutcome::Rejected {
            size,
            reason: ledger_raft::Rejection::CheckpointStale { size: 3, latest: size }
        }
    );
    for n in [&n1, &n2] {
        n.raft
            .wait(Some(WAIT))
            .applied_index_at_least(Some(r.log_id.index), "applied")
            .await
            .unwrap();
        let stored: Vec<(u64, String)> =
            n.sm.with_store(|s| s.checkpoints().map(Result::unwrap).collect())
                .unwrap();
        assert_eq!(
            stored,
            vec![(size, note.clone())],
            "the same checkpoint bytes on every node"
        );
    }
    n1.stop().await;
    n2.stop().await;
}

/// A raw client to `addr` over TLS that trusts the cluster CA and presents `identity` (or none).
async fn raw_client(
    pki: &Path,
    addr: &str,
    identity: Option<&str>,
) -> Result<RaftClient<tonic::transport::Channel>, String> {
    let read = |f: &str| std::fs::read(pki.join(f)).unwrap();
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read("ca.pem")));
    if let Some(name) = identity {
        tls = tls.identity(Identity::from_pem(
            read(&format!("{name}.pem")),
            read(&format!("{name}.key")),
        ));
    }
    let e = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_timeout(Duration::from_secs(5));
    // The handshake may fail at connect or at the first call: both are refusals.
    e.connect().await.map(RaftClient::new).map_err(|e| format!("{e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_on_the_raft_port_are_refused_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki(tmp.path());
    let l1 = bind().await;
    let addr = l1.local_addr().unwrap().to_string();
    let peers = vec![(1, addr.clone())];
    let c1 = node_config(tmp.path(), 1, &peers, Some(("ca", "n1")));
    let n1 = start(&c1, tmp.path(), l1).await;
    n1.raft.initialize(c1.members()).await.unwrap();
    leader_of(&[(1, &n1.raft)]).await;
    let before = n1.raft.metrics().borrow().clone();

    // What a stranger sends: a vote for a much later term, and a leader's append at that term
    // carrying a group (either would make the node step down or take the entry).
    let vote = openraft::raft::VoteRequest::new(openraft::Vote::new(50, 9), None);
    let mut maker = GroupMaker::new();
    let append = openraft::raft::AppendEntriesRequest::<ledger_raft::TypeConfig> {
        vote: openraft::Vote::new_committed(50, 9),
        prev_log_id: None,
        entries: vec![openraft::Entry {
            log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(50, 9), 1),
            payload: openraft::EntryPayload::Normal(maker.next(1).into()),
        }],
        leader_commit: None,
    };

    // 1. Plain HTTP/2 to the TLS port.
    let mut plain = Network::plain(9).new_client(1, &LedgerNode::new(addr.clone())).await;
    let e = plain.vote(vote.clone(), RPCOption::new(Duration::from_secs(5))).await;
    assert!(e.is_err(), "plain HTTP/2 accepted: {e:?}");
    let e = plain
        .append_entries(append.clone(), RPCOption::new(Duration::from_secs(5)))
        .await;
    assert!(e.is_err(), "plain HTTP/2 accepted: {e:?}");

    // 2. TLS that trusts the cluster CA but presents no certificate; 3. a certificate signed by
    // another CA.
    for identity in [None, Some("evil")] {
        let refused = match raw_client(&pki, &addr, identity).await {
            Err(_) => true,
            Ok(mut c) => {
                let v = c
                    .vote(RaftRequest {
                        body: encode(&vote).unwrap(),
                    })
                    .await;
                let a = c
                    .append_entries(RaftRequest {
                        body: encode(&append).unwrap(),
                    })
                    .await;
                v.is_err() && a.is_err()
            }
        };
        assert!(refused, "a caller with identity {identity:?} was served");
    }

    // Control: the same client with a certificate of the cluster's CA is served (a vote of an
    // old term, which changes nothing).
    let mut good = raw_client(&pki, &addr, Some("n2")).await.unwrap();
    let old = openraft::raft::VoteRequest::new(openraft::Vote::new(0, 2), None);
    good.vote(RaftRequest {
        body: encode(&old).unwrap(),
    })
    .await
    .expect("a peer with a certificate of the cluster's CA is served");

    // Nothing changed: same term, same leader, same log.
    let after = n1.raft.metrics().borrow().clone();
    assert_eq!(after.current_term, before.current_term);
    assert_eq!(after.current_leader, Some(1));
    assert_eq!(after.last_log_index, before.last_log_index);
    assert_eq!(n1.sm.applied_tree().unwrap().size(), 0, "nothing applied");
    n1.stop().await;
}

#[test]
fn a_cluster_without_tls_is_refused_unless_it_is_loopback_only() {
    let tmp = tempfile::tempdir().unwrap();
    let base =
        "id = 1\nlisten = \"127.0.0.1:7101\"\ndata = \"n1\"\n[peers]\n1 = \"127.0.0.1:7101\"\n2 = \"localhost:7102\"\n";
    let load = |text: &str| {
        let p = tmp.path().join("c.toml");
        std::fs::write(&p, text).unwrap();
        ClusterConfig::load(&p).unwrap()
    };
    // No [tls], no insecure_loopback: refused, with what to do.
    let e = Network::from_config(&load(base)).unwrap_err();
    assert!(e.contains("must not accept strangers") && e.contains("[tls]"), "{e}");
    // insecure_loopback with loopback addresses only: plain.
    let insecure = base.replace("[peers]", "insecure_loopback = true\n[peers]");
    assert!(load(&insecure).peer_tls().unwrap().is_none());
    assert!(Network::from_config(&load(&insecure)).is_ok());
    // insecure_loopback with a peer elsewhere: refused, naming it.
    let remote = format!("{insecure}3 = \"10.0.0.3:7103\"\n");
    let e = load(&remote).peer_tls().unwrap_err();
    assert!(e.contains("peer 3") && e.contains("10.0.0.3:7103"), "{e}");
    let e = load(&insecure.replace("listen = \"127.0.0.1:7101\"", "listen = \"0.0.0.0:7101\"")).peer_tls();
    assert!(e.is_err_and(|e| e.contains("listen is 0.0.0.0:7101")));
    // [tls] files that are missing or not PEM: refused, naming the file.
    let tls = format!("{base}[tls]\nca = \"ca.pem\"\ncert = \"n1.pem\"\nkey = \"n1.key\"\n");
    let e = load(&tls).peer_tls().unwrap_err();
    assert!(e.contains("[tls] ca") && e.contains("ca.pem"), "{e}");
    for f in ["ca.pem", "n1.pem", "n1.key"] {
        std::fs::write(tmp.path().join(f), "not pem").unwrap();
    }
    let e = load(&tls).peer_tls().unwrap_err();
    assert!(e.contains("is not a PEM file"), "{e}");
    // Unknown keys in [tls] are refused like anywhere else.
    let bad = format!("{tls}verify = false\n");
    std::fs::write(tmp.path().join("c.toml"), bad).unwrap();
    assert!(ClusterConfig::load(&tmp.path().join("c.toml")).is_err());
}
