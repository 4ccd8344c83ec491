//! `replay --node` and `consistency` against an in-process gRPC server that serves a real store.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use common::{Log, flip_sig, s, verify};
use ledger_core::entry::Entry;
use ledger_core::hash::Hash;
use ledger_proto::pb;
use ledger_proto::pb::ledger_server::{Ledger, LedgerServer};
use ledger_store::Store;
use std::path::Path;
use std::sync::Arc;
use tempfile::TempDir;
use tonic::{Request, Response, Status};

/// Serves entries, checkpoints and consistency proofs from a store, like a node would.
struct Mock {
    store: Arc<Store>,
    /// Index whose leaf hash is served wrong.
    bad_leaf_hash: Option<u64>,
}

type Stream<T> = tokio_stream::Iter<std::vec::IntoIter<Result<T, Status>>>;

fn todo<T>() -> Result<T, Status> {
    Err(Status::unimplemented("not in the mock"))
}

#[tonic::async_trait]
impl Ledger for Mock {
    async fn append(&self, _: Request<pb::AppendRequest>) -> Result<Response<pb::AppendResponse>, Status> {
        todo()
    }
    async fn append_batch(
        &self,
        _: Request<pb::AppendBatchRequest>,
    ) -> Result<Response<pb::AppendBatchResponse>, Status> {
        todo()
    }
    async fn get_entry(&self, _: Request<pb::GetEntryRequest>) -> Result<Response<pb::LogEntry>, Status> {
        todo()
    }
    type GetEntriesStream = Stream<pb::LogEntry>;
    async fn get_entries(&self, r: Request<pb::GetEntriesRequest>) -> Result<Response<Self::GetEntriesStream>, Status> {
        let r = r.into_inner();
        let size = self.store.size().unwrap();
        let end = if r.end == 0 { size } else { r.end.min(size) };
        // Pages of at most 7 entries, to exercise the client's re-asking.
        let end = end.min(r.start + 7);
        let mut out = Vec::new();
        for e in self.store.entries(r.start, end) {
            let (i, leaf) = e.unwrap();
            let entry = Entry::decode(&leaf).unwrap();
            let mut lh = ledger_core::hash::leaf_hash(&leaf);
            if self.bad_leaf_hash == Some(i) {
                lh = Hash::digest(b"wrong");
            }
            out.push(Ok(ledger_proto::log_entry(&leaf, &entry, &lh)));
        }
        Ok(Response::new(tokio_stream::iter(out)))
    }
    async fn get_witnessed_checkpoint(
        &self,
        _r: Request<pb::GetWitnessedCheckpointRequest>,
    ) -> Result<Response<pb::WitnessedCheckpointResponse>, Status> {
        Err(Status::unimplemented("no witnesses in this mock"))
    }

    async fn get_checkpoint(
        &self,
        r: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::CheckpointResponse>, Status> {
        let found = match r.into_inner().size {
            None => self.store.latest_checkpoint().unwrap(),
            Some(s) => self.store.checkpoint(s).unwrap().map(|n| (s, n)),
        };
        let (size, note) = found.ok_or_else(|| Status::not_found("no checkpoint"))?;
        Ok(Response::new(pb::CheckpointResponse {
            note,
            size,
            root: vec![],
        }))
    }
    async fn get_inclusion_proof(
        &self,
        _: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::InclusionProofResponse>, Status> {
        todo()
    }
    async fn get_consistency_proof(
        &self,
        r: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::ConsistencyProofResponse>, Status> {
        let r = r.into_inner();
        let proof = ledger_core::merkle::consistency_proof(&*self.store, r.old_size, r.new_size)
            .map_err(|e| Status::out_of_range(e.to_string()))?;
        Ok(Response::new(pb::ConsistencyProofResponse {
            old_size: r.old_size,
            new_size: r.new_size,
            hashes: proof.iter().map(|h| h.0.to_vec()).collect(),
            checkpoint: String::new(),
        }))
    }
    type WatchCheckpointsStream = Stream<pb::CheckpointResponse>;
    async fn watch_checkpoints(
        &self,
        _: Request<pb::WatchCheckpointsRequest>,
    ) -> Result<Response<Self::WatchCheckpointsStream>, Status> {
        todo()
    }
    async fn query(&self, _: Request<pb::QueryRequest>) -> Result<Response<pb::QueryResponse>, Status> {
        todo()
    }
}

/// Starts a server for the log on a free port; returns its URL.
fn serve(log: &Log, dir: &Path, bad_leaf_hash: Option<u64>) -> String {
    let store = Arc::new(log.write_store(dir));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(listener).unwrap();
            tonic::transport::Server::builder()
                .add_service(LedgerServer::new(Mock { store, bad_leaf_hash }))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l))
                .await
                .unwrap();
        });
    });
    format!("http://{addr}")
}

/// Charter, registrar, notes; checkpoints at 5, 12, 22 (the latest).
fn log_with(tamper_at: Option<u64>, len: u64) -> Log {
    let mut log = Log::new();
    let r = log.registrar.clone();
    while log.size() < len {
        if tamper_at == Some(log.size()) {
            // A different but valid record: the log forks here.
            let a = log.admin.clone();
            log.note(&a);
        } else {
            log.note(&r);
        }
        if [5, 12, 22].contains(&log.size()) {
            log.checkpoint();
        }
    }
    log
}

fn save(dir: &Path, name: &str, note: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, note).unwrap();
    s(&p).to_string()
}

fn note_at(log: &Log, size: u64) -> String {
    log.checkpoints.iter().find(|c| c.0 == size).unwrap().1.clone()
}

#[test]
fn replay_from_a_node() {
    let dir = TempDir::new().unwrap();
    let log = log_with(None, 22);
    let url = serve(&log, &dir.path().join("a"), None);
    let r = verify(
        dir.path(),
        &["replay", "--node", &url, "--trusted-key", &log.trusted_key()],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let j = r.json.as_ref().unwrap();
    assert_eq!(j["entries"], 22);
    assert_eq!(j["checkpoints_checked"], 1);
    assert_eq!(j["final"]["root"], log.tree.root().to_hex());

    // A node that lies about a leaf hash, and one that serves a forged signature.
    let url = serve(&log, &dir.path().join("b"), Some(6));
    let r = verify(dir.path(), &["replay", "--node", &url]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.codes(), vec!["LEAF_HASH_MISMATCH@6".to_string()], "{r:?}");

    let mut bad = log_with(None, 20);
    let env = bad.note_env(&bad.registrar.clone());
    let at = bad.push_with(env, flip_sig);
    bad.notes(1);
    let url = serve(&bad, &dir.path().join("c"), None);
    let r = verify(dir.path(), &["replay", "--node", &url]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.has("BAD_SIGNATURE", Some(at)), "{r:?}");
}

#[test]
fn consistency_of_saved_checkpoints() {
    let dir = TempDir::new().unwrap();
    let log = log_with(None, 22);
    let url = serve(&log, &dir.path().join("node"), None);
    let c5 = save(dir.path(), "c5.txt", &note_at(&log, 5));
    let c12 = save(dir.path(), "c12.txt", &note_at(&log, 12));
    let c22 = save(dir.path(), "c22.txt", &note_at(&log, 22));

    let r = verify(
        dir.path(),
        &[
            "consistency",
            "--node",
            &url,
            "--checkpoint",
            &c5,
            "--checkpoint",
            &c12,
            "--checkpoint",
            &c22,
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains("of the charter the node serves as entry 0 (no --trusted-key given)"),
        "{r:?}"
    );
    let r = verify(
        dir.path(),
        &[
            "consistency",
            "--node",
            &url,
            "--checkpoint",
            &c12,
            "--trusted-key",
            &log.trusted_key(),
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");

    // A checkpoint of another history (the same log forked at entry 8).
    let fork = log_with(Some(8), 22);
    let f12 = save(dir.path(), "f12.txt", &note_at(&fork, 12));
    let r = verify(
        dir.path(),
        &[
            "consistency",
            "--node",
            &url,
            "--checkpoint",
            &c5,
            "--checkpoint",
            &f12,
            "--checkpoint",
            &c12,
        ],
    );
    assert_eq!(r.code, 1, "{r:?}");
    let faults = r.json.as_ref().unwrap()["faults"].as_array().unwrap().clone();
    assert!(faults.iter().all(|f| f["code"] == "FORK"), "{r:?}");
    // Against the node, and against the saved checkpoint of the same size.
    assert_eq!(faults.len(), 2, "{r:?}");
    assert!(
        faults
            .iter()
            .all(|f| f["message"].as_str().unwrap().contains("f12.txt")),
        "{r:?}"
    );
    assert!(
        faults
            .iter()
            .any(|f| f["message"].as_str().unwrap().contains("c12.txt")),
        "{r:?}"
    );
    assert!(faults[0]["expected"].as_str().unwrap().contains("f12.txt"), "{r:?}");

    // A fork before a larger checkpoint on the node's log: the pair is named.
    let f5 = save(dir.path(), "f5.txt", &note_at(&log_with(Some(3), 22), 5));
    let r = verify(
        dir.path(),
        &["consistency", "--node", &url, "--checkpoint", &f5, "--checkpoint", &c12],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.codes(), vec!["FORK@5".to_string(), "FORK@5".to_string()], "{r:?}");
    assert!(r.stdout.contains("f5.txt and"), "{r:?}");

    // The node rolled back to 12 entries.
    let short = log_with(None, 12);
    let url_short = serve(&short, &dir.path().join("short"), None);
    let r = verify(dir.path(), &["consistency", "--node", &url_short, "--checkpoint", &c22]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.codes(), vec!["ROLLBACK@22".to_string()], "{r:?}");

    // A saved checkpoint with a forged signature.
    let mut n = ledger_core::note::Note::parse(&note_at(&log, 12)).unwrap();
    n.signatures[0].sig[0] ^= 1;
    let bad = save(dir.path(), "bad.txt", &n.to_text());
    let r = verify(dir.path(), &["consistency", "--node", &url, "--checkpoint", &bad]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.has("CHECKPOINT_BAD_SIGNATURE", None), "{r:?}");

    // Unreachable node: exit 2.
    let r = common::verify_raw(&["consistency", "--node", "http://127.0.0.1:1", "--checkpoint", &c5]);
    assert_eq!(r.code, 2, "{r:?}");
}
