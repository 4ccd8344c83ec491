//! Client tests against a scripted in-process gRPC server (not the real node): retries reuse the
//! request id, refusals keep their code and message, entries and checkpoints are checked.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{Log, key};
use ledger_client::client::RetryPolicy;
use ledger_client::error::ClientError;
use ledger_client::{CheckpointTracker, LedgerClient, sign_record};
use ledger_core::merkle::{consistency_proof, inclusion_proof};
use ledger_proto::pb;
use ledger_proto::pb::ledger_server::{Ledger, LedgerServer};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::{Code, Request, Response, Status};

#[derive(Default)]
struct State {
    log: Option<Log>,
    /// Failures to answer the next appends with, in order.
    append_script: VecDeque<Status>,
    /// Request ids of every append call received.
    append_ids: Vec<String>,
    /// Corrupt the leaf hash of served entries.
    corrupt_leaf_hash: bool,
    /// Serve checkpoints of this size instead of the latest.
    checkpoint_size: Option<u64>,
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<State>>);

fn hashes(h: &[ledger_core::hash::Hash]) -> Vec<Vec<u8>> {
    h.iter().map(|x| x.0.to_vec()).collect()
}

#[tonic::async_trait]
impl Ledger for Fake {
    async fn append(&self, req: Request<pb::AppendRequest>) -> Result<Response<pb::AppendResponse>, Status> {
        let mut st = self.0.lock().unwrap();
        let req = req.into_inner();
        let dup = st.append_ids.contains(&req.request_id);
        st.append_ids.push(req.request_id.clone());
        if let Some(s) = st.append_script.pop_front() {
            return Err(s);
        }
        let log = st.log.as_mut().unwrap();
        let env = req.envelope.unwrap().into();
        let e = log.push(env).clone();
        let size = log.entries.len() as u64;
        let (checkpoint, proof) = if req.wait_for_checkpoint {
            (
                log.note(size),
                hashes(&inclusion_proof(&log.leaves, e.index, size).unwrap()),
            )
        } else {
            (String::new(), vec![])
        };
        Ok(Response::new(pb::AppendResponse {
            index: e.index,
            leaf_hash: e.leaf_hash().0.to_vec(),
            timestamp_micros: e.timestamp_micros,
            duplicate: dup,
            checkpoint,
            inclusion_proof: proof,
        }))
    }

    async fn append_batch(
        &self,
        _: Request<pb::AppendBatchRequest>,
    ) -> Result<Response<pb::AppendBatchResponse>, Status> {
        Err(Status::unimplemented("batch"))
    }

    async fn get_entry(&self, req: Request<pb::GetEntryRequest>) -> Result<Response<pb::LogEntry>, Status> {
        let st = self.0.lock().unwrap();
        let log = st.log.as_ref().unwrap();
        let i = req.into_inner().index;
        let e = log
            .entries
            .get(i as usize)
            .ok_or_else(|| Status::not_found(format!("no entry {i}")))?;
        let leaf = e.encode();
        let mut lh = e.leaf_hash();
        if st.corrupt_leaf_hash {
            lh.0[0] ^= 1;
        }
        Ok(Response::new(ledger_proto::log_entry(&leaf, e, &lh)))
    }

    type GetEntriesStream = tokio_stream::Empty<Result<pb::LogEntry, Status>>;

    async fn get_entries(&self, _: Request<pb::GetEntriesRequest>) -> Result<Response<Self::GetEntriesStream>, Status> {
        Err(Status::unimplemented("entries"))
    }

    async fn get_witnessed_checkpoint(
        &self,
        _r: Request<pb::GetWitnessedCheckpointRequest>,
    ) -> Result<Response<pb::WitnessedCheckpointResponse>, Status> {
        Err(Status::unimplemented("no witnesses in this mock"))
    }

    async fn get_checkpoint(
        &self,
        req: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::CheckpointResponse>, Status> {
        let st = self.0.lock().unwrap();
        let log = st.log.as_ref().unwrap();
        let size = req
            .into_inner()
            .size
            .or(st.checkpoint_size)
            .unwrap_or(log.entries.len() as u64);
        let cp = log.checkpoint(size);
        Ok(Response::new(pb::CheckpointResponse {
            note: log.note(size),
            size,
            root: cp.root.0.to_vec(),
        }))
    }

    async fn get_inclusion_proof(
        &self,
        req: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::InclusionProofResponse>, Status> {
        let st = self.0.lock().unwrap();
        let log = st.log.as_ref().unwrap();
        let req = req.into_inner();
        let Some(pb::get_inclusion_proof_request::Target::Index(index)) = req.target else {
            return Err(Status::invalid_argument("index only"));
        };
        let size = if req.tree_size == 0 {
            log.entries.len() as u64
        } else {
            req.tree_size
        };
        let p = inclusion_proof(&log.leaves, index, size).map_err(|e| Status::out_of_range(e.to_string()))?;
        Ok(Response::new(pb::InclusionProofResponse {
            index,
            tree_size: size,
            hashes: hashes(&p),
            checkpoint: String::new(),
        }))
    }

    async fn get_consistency_proof(
        &self,
        req: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::ConsistencyProofResponse>, Status> {
        let st = self.0.lock().unwrap();
        let log = st.log.as_ref().unwrap();
        let req = req.into_inner();
        let new = if req.new_size == 0 {
            log.entries.len() as u64
        } else {
            req.new_size
        };
        let p = consistency_proof(&log.leaves, req.old_size, new).map_err(|e| Status::out_of_range(e.to_string()))?;
        Ok(Response::new(pb::ConsistencyProofResponse {
            old_size: req.old_size,
            new_size: new,
            hashes: hashes(&p),
            checkpoint: String::new(),
        }))
    }

    type WatchCheckpointsStream = tokio_stream::Empty<Result<pb::CheckpointResponse, Status>>;

    async fn watch_checkpoints(
        &self,
        _: Request<pb::WatchCheckpointsRequest>,
    ) -> Result<Response<Self::WatchCheckpointsStream>, Status> {
        Err(Status::unimplemented("watch"))
    }

    async fn query(&self, _: Request<pb::QueryRequest>) -> Result<Response<pb::QueryResponse>, Status> {
        Err(Status::unimplemented("query"))
    }
}

async fn start(log: Log) -> (Fake, LedgerClient) {
    let fake = Fake::default();
    fake.0.lock().unwrap().log = Some(log);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = LedgerServer::new(fake.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    let retry = RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_millis(1),
    };
    let client = LedgerClient::connect_with(&format!("http://{addr}"), retry)
        .await
        .unwrap();
    (fake, client)
}

fn note_env(text: &str) -> ledger_core::dsse::Envelope {
    sign_record("note", &serde_json::json!({ "text": text }), &[&key(1)])
}

#[tokio::test]
async fn retries_reuse_the_request_id() {
    let (fake, client) = start(Log::new(3)).await;
    {
        let mut st = fake.0.lock().unwrap();
        st.append_script.push_back(Status::unavailable("restarting"));
        st.append_script.push_back(Status::unavailable("restarting"));
    }
    let out = client.append(&note_env("a"), None, false).await.unwrap();
    assert_eq!(out.index, 3);
    assert_eq!(out.request_id.len(), 32);
    assert!(out.request_id.bytes().all(|c| c.is_ascii_hexdigit()));
    // The third try succeeded, and the node saw the same id three times.
    assert!(out.duplicate);
    let ids = fake.0.lock().unwrap().append_ids.clone();
    assert_eq!(ids, vec![out.request_id.clone(); 3]);

    // A caller-given id is used as is.
    let out = client
        .append(&note_env("b"), Some("my-id".into()), false)
        .await
        .unwrap();
    assert_eq!(out.request_id, "my-id");
    assert_eq!(fake.0.lock().unwrap().append_ids.last().unwrap(), "my-id");
    // Fresh ids differ between appends.
    let out2 = client.append(&note_env("c"), None, false).await.unwrap();
    assert_ne!(out2.request_id, ids[0]);
}

#[tokio::test]
async fn retries_are_bounded() {
    let (fake, client) = start(Log::new(1)).await;
    {
        let mut st = fake.0.lock().unwrap();
        for _ in 0..10 {
            st.append_script.push_back(Status::unavailable("down"));
        }
    }
    let err = client.append(&note_env("a"), None, false).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::Unavailable));
    assert_eq!(fake.0.lock().unwrap().append_ids.len(), 5);
}

#[tokio::test]
async fn refusals_are_not_retried_and_keep_code_and_message() {
    let (fake, client) = start(Log::new(1)).await;
    fake.0
        .lock()
        .unwrap()
        .append_script
        .push_back(Status::permission_denied("key abc was revoked at index 4"));
    let err = client.append(&note_env("a"), None, false).await.unwrap_err();
    assert!(err.is_node_refusal());
    assert_eq!(err.code(), Some(Code::PermissionDenied));
    let msg = err.to_string();
    assert!(
        msg.contains("PERMISSION_DENIED") && msg.contains("key abc was revoked at index 4"),
        "{msg}"
    );
    assert_eq!(fake.0.lock().unwrap().append_ids.len(), 1);

    let err = client.get_entry(99).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::NotFound));
}

#[tokio::test]
async fn envelopes_over_limits_are_refused_locally() {
    let (fake, client) = start(Log::new(1)).await;
    let unsigned = sign_record("note", &serde_json::json!({}), &[]);
    assert!(matches!(
        client.append(&unsigned, None, false).await,
        Err(ClientError::Envelope(_))
    ));
    assert!(fake.0.lock().unwrap().append_ids.is_empty());
}

#[tokio::test]
async fn get_entry_checks_the_leaf_hash() {
    let log = Log::new(4);
    let want = log.entries[2].clone();
    let (fake, client) = start(log).await;
    assert_eq!(client.get_entry(2).await.unwrap(), want);
    fake.0.lock().unwrap().corrupt_leaf_hash = true;
    assert!(matches!(
        client.get_entry(2).await,
        Err(ClientError::LeafHashMismatch { index: 2, .. })
    ));
}

#[tokio::test]
async fn append_wait_and_confirm() {
    let log = Log::new(5);
    let v = log.verifier();
    let (_fake, client) = start(log).await;
    let env = note_env("confirm me");
    let out = client.append(&env, None, true).await.unwrap();
    assert_eq!(out.index, 5);
    let cp = ledger_client::verify_appended(&out, &client.get_entry(5).await.unwrap(), &v).unwrap();
    assert_eq!(cp.size, 6);
    let cp = client.confirm_appended(&out, &env, &v).await.unwrap();
    assert_eq!(cp.size, 6);

    // Without a checkpoint in the outcome, confirm fetches one.
    let env2 = note_env("no wait");
    let out2 = client.append(&env2, None, false).await.unwrap();
    assert!(out2.checkpoint.is_none());
    assert_eq!(client.confirm_appended(&out2, &env2, &v).await.unwrap().size, 7);

    // Another envelope than the one at that index is refused.
    assert!(matches!(
        client.confirm_appended(&out2, &env, &v).await,
        Err(ClientError::EntryMismatch { index: 6, .. })
    ));
}

#[tokio::test]
async fn tracker_fetches_consistency_proofs() {
    let log = Log::new(3);
    let v = log.verifier();
    let (fake, client) = start(log).await;
    let mut t = CheckpointTracker::new(v);
    assert_eq!(t.refresh(&client).await.unwrap().size, 3);
    for i in 0..4 {
        client.append(&note_env(&format!("{i}")), None, false).await.unwrap();
    }
    assert_eq!(t.refresh(&client).await.unwrap().size, 7);

    // The node now serves an older checkpoint: a rewind.
    fake.0.lock().unwrap().checkpoint_size = Some(4);
    let err = t.refresh(&client).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Rewind {
                old_size: 7,
                new_size: 4,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(t.last().unwrap().size, 7);
}
