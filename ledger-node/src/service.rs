//! The `ledger.v1.Ledger` gRPC service: checks requests at the edge and hands checked items to the
//! sequencer; serves reads and proofs from the store.
//!
//! Edge order (docs/design.md): limits → payload type/kind → signatures (key ids looked up before
//! any cryptography, each signature verified once, one batch per AppendBatch) → payload parsing and
//! schema. Unsigned requests and signatures by keys the registry does not know never reach the
//! payload parser. The signature and payload work runs on the bounded [`EdgePool`], off the async
//! workers that answer reads. Concurrent single Appends are checked together there
//! ([`append_checks`]): their signatures in one batch verification, as an AppendBatch's are.

use crate::edge::{Coalesce, EdgePool};
use crate::errors::{refusal_status, registry_status, store_status};
use crate::sequencer::{Item, Job, JobResult, Outcome, Shared};
use ledger_core::dsse::Envelope;
use ledger_core::entry::Entry;
use ledger_core::merkle;
use ledger_core::registry::{check_payload, envelope_kind};
use ledger_proto::pb;
use ledger_store::{IndexTag, Store};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{SyncSender, TrySendError};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// Most items in one AppendBatch.
pub const MAX_BATCH: usize = 10_000;
/// Longest request id.
pub const MAX_REQUEST_ID: usize = 128;
/// Most results per Query page.
pub const MAX_QUERY_LIMIT: u32 = 1000;
/// Most concurrent single Appends checked together in one edge job (one batch verification).
pub const MAX_COALESCED: usize = 64;
/// Cluster mode: how long a read for a size this node has not applied yet waits for it.
pub const FOLLOWER_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The service.
#[derive(Clone)]
pub struct LedgerService {
    /// Store (reads; writes go through the sequencer).
    pub store: Arc<Store>,
    /// Shared state.
    pub shared: Arc<Shared>,
    /// Sequencer queue.
    pub jobs: SyncSender<Job>,
    /// The latest witnessed checkpoint (docs/witness.md).
    pub witnessed: Arc<crate::witness_push::Witnessed>,
    /// Threads for the CPU-heavy edge checks.
    pub edge: Arc<EdgePool>,
    /// Reader limits and stream slots (docs/api.md).
    pub readers: Arc<crate::readers::Readers>,
    /// Single Appends waiting for the edge pool, checked together ([`append_checks`]).
    pub appends: Arc<AppendChecks>,
}

/// The queue of single Appends waiting for their edge checks.
pub type AppendChecks = Coalesce<pb::AppendRequest, Result<Item, Status>>;

/// The edge queue of single Appends: the ones waiting when a pool thread becomes free (at most
/// [`MAX_COALESCED`]) are checked in one job, with the same checks, in the same order and with
/// the same acceptance rules as the items of one AppendBatch ([`check_batch`]: key ids before
/// any cryptography, all signatures in one batch verification — when it fails, each envelope on
/// its own, so only the bad ones are refused, with the answer a lone Append gets — then the
/// payloads). A job with one Append checks it exactly as before ([`check_one`]).
pub fn append_checks(edge: &EdgePool, shared: Arc<Shared>) -> Arc<AppendChecks> {
    edge.coalesce(
        MAX_COALESCED,
        Arc::new(move |reqs, answer| check_appends(&shared, reqs, answer)),
    )
}

/// The edge check of concurrent single Appends (one edge job), each answered in order as soon as
/// its result is known.
fn check_appends(shared: &Shared, reqs: Vec<pb::AppendRequest>, answer: &mut dyn FnMut(Result<Item, Status>)) {
    let n = reqs.len();
    shared.metrics.edge_appends(n);
    if n == 1 {
        for r in reqs {
            answer(check_one(shared, r));
        }
    } else if let Err(s) = check_batch_each(shared, reqs, answer) {
        // Refused before any item was answered.
        for _ in 0..n {
            answer(Err(Status::new(s.code(), s.message())));
        }
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

fn check_request_id(id: &str) -> Result<Option<String>, Status> {
    if id.is_empty() {
        return Ok(None);
    }
    if id.len() > MAX_REQUEST_ID || id.chars().any(char::is_control) {
        return Err(Status::invalid_argument(format!(
            "request_id must be 1-{MAX_REQUEST_ID} bytes without control characters"
        )));
    }
    Ok(Some(id.to_string()))
}

/// An Append item whose envelope passed the checks that need neither cryptography nor the payload.
struct Pending {
    envelope: Envelope,
    kind: String,
    request_id: Option<String>,
}

/// The edge checks that need neither cryptography nor the payload: request id, envelope present,
/// size limits (including "no signature"), payload type → record kind.
fn check_envelope(req: pb::AppendRequest) -> Result<Pending, Status> {
    let request_id = check_request_id(&req.request_id)?;
    let env: Envelope = req
        .envelope
        .ok_or_else(|| Status::invalid_argument("envelope is required"))?
        .into();
    env.check_limits()
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    let kind = envelope_kind(&env).map_err(|e| registry_status(&e))?.to_string();
    Ok(Pending {
        envelope: env,
        kind,
        request_id,
    })
}

/// The payload's schema, parsed only once its signatures verified — and only here: the item
/// carries the typed record to the sequencer's state step.
fn check_item_payload(p: Pending, signers: Vec<String>) -> Result<Item, Status> {
    let payload = check_payload(&p.kind, &p.envelope.payload).map_err(|e| registry_status(&e))?;
    Ok(Item {
        envelope: p.envelope,
        kind: p.kind,
        signers,
        request_id: p.request_id,
        payload,
    })
}

/// The whole edge check of one Append (runs on the edge pool).
fn check_one(shared: &Shared, req: pb::AppendRequest) -> Result<Item, Status> {
    let p = check_envelope(req)?;
    let signers = shared
        .registry
        .read()
        .map_err(|_| Status::internal("registry lock poisoned"))?
        .verify_signatures(&p.envelope)
        .map_err(|e| registry_status(&e))?;
    check_item_payload(p, signers)
}

/// The edge check of every item of an AppendBatch (runs on the edge pool): all signatures in one
/// batch verification, then each verified item's payload.
fn check_batch(shared: &Shared, reqs: Vec<pb::AppendRequest>) -> Result<Vec<Result<Item, Status>>, Status> {
    let mut out = Vec::with_capacity(reqs.len());
    check_batch_each(shared, reqs, &mut |r| out.push(r))?;
    Ok(out)
}

/// [`check_batch`], handing each item's result to `answer` in order as soon as it is known.
///
/// # Errors
/// INTERNAL when the registry lock is poisoned; nothing was answered then.
fn check_batch_each(
    shared: &Shared,
    reqs: Vec<pb::AppendRequest>,
    answer: &mut dyn FnMut(Result<Item, Status>),
) -> Result<(), Status> {
    let pending: Vec<Result<Pending, Status>> = reqs.into_iter().map(check_envelope).collect();
    let verdicts = {
        let reg = shared
            .registry
            .read()
            .map_err(|_| Status::internal("registry lock poisoned"))?;
        let envs: Vec<&Envelope> = pending
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|p| &p.envelope)
            .collect();
        reg.verify_signatures_batch(&envs)
    };
    let mut verdicts = verdicts.into_iter();
    for r in pending {
        answer(match r {
            Err(s) => Err(s),
            Ok(p) => match verdicts.next() {
                Some(Ok(signers)) => check_item_payload(p, signers),
                Some(Err(e)) => Err(registry_status(&e)),
                None => Err(Status::internal("no signature verdict for an item")),
            },
        });
    }
    Ok(())
}

impl LedgerService {
    /// Cluster mode, on a follower: the refusal of an append, naming the leader (docs/api.md).
    fn not_leader(&self) -> Result<(), Status> {
        match &self.shared.cluster {
            Some(c) => {
                let role = c.role();
                if role.leader {
                    Ok(())
                } else {
                    self.shared.metrics.reject(tonic::Code::FailedPrecondition);
                    Err(crate::errors::not_leader_status(&c.not_leader(role.leader_id)))
                }
            }
            None => Ok(()),
        }
    }

    async fn submit(&self, items: Vec<Item>, want_checkpoint: bool) -> Result<JobResult, Status> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        match self.jobs.try_send(Job {
            items,
            want_checkpoint,
            reply: tx,
        }) {
            Ok(()) => self.shared.metrics.queued(),
            Err(TrySendError::Full(_)) => {
                self.shared.metrics.reject(tonic::Code::ResourceExhausted);
                return Err(Status::resource_exhausted(
                    "the append queue is full; retry later with the same request id",
                ));
            }
            Err(TrySendError::Disconnected(_)) => return Err(Status::unavailable("the node is shutting down")),
        }
        rx.await
            .map_err(|_| Status::unavailable("the sequencer stopped; retry with the same request id"))
    }

    fn response(&self, o: Outcome, cp: &Option<(u64, String)>) -> Result<pb::AppendResponse, Status> {
        match o {
            Outcome::Refused(r) => Err(refusal_status(&r)),
            Outcome::Appended {
                index,
                leaf_hash,
                timestamp_micros,
                duplicate,
            } => {
                let mut r = pb::AppendResponse {
                    index,
                    leaf_hash: leaf_hash.0.to_vec(),
                    timestamp_micros,
                    duplicate,
                    checkpoint: String::new(),
                    inclusion_proof: vec![],
                };
                if let Some((size, note)) = cp.as_ref()
                    && *size > index
                {
                    r.checkpoint = note.clone();
                    r.inclusion_proof = merkle::inclusion_proof(&*self.store(), index, *size)
                        .map_err(|e| Status::internal(e.to_string()))?
                        .into_iter()
                        .map(|h| h.0.to_vec())
                        .collect();
                }
                Ok(r)
            }
        }
    }

    /// Sequences the verified items of a batch and writes each outcome into its slot of
    /// `results`; returns the batch's checkpoint (empty unless `wait`).
    async fn sequence_batch(
        &self,
        items: Vec<Item>,
        slots: Vec<usize>,
        wait: bool,
        results: &mut [Option<pb::AppendItemResult>],
    ) -> Result<String, Status> {
        let res = self.submit(items, wait).await?;
        let mut checkpoint = String::new();
        let mut cp = if wait { res.checkpoint.clone() } else { None };
        let last = res
            .outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Appended { index, .. } => Some(*index),
                Outcome::Refused(..) => None,
            })
            .max();
        if wait
            && self.witnessed.required
            && let Some(last) = last
        {
            cp = Some(self.wait_witnessed(last).await?);
        }
        if let Some((_, n)) = &cp {
            checkpoint = n.clone();
        }
        for (slot, o) in slots.into_iter().zip(res.outcomes) {
            results[slot] = Some(match self.response(o, &cp) {
                Ok(mut r) => {
                    if !wait {
                        r.checkpoint.clear();
                        r.inclusion_proof.clear();
                    } else {
                        r.checkpoint.clear(); // carried once, at the batch level
                    }
                    pb::AppendItemResult {
                        ok: Some(r),
                        error_code: 0,
                        error_message: String::new(),
                    }
                }
                Err(s) => pb::AppendItemResult {
                    ok: None,
                    error_code: s.code() as i32,
                    error_message: s.message().into(),
                },
            });
        }
        Ok(checkpoint)
    }

    /// Waits until a witnessed checkpoint covers `index` (docs/witness.md); returns (size, note).
    async fn wait_witnessed(&self, index: u64) -> Result<(u64, String), Status> {
        let mut rx = self.witnessed.latest.subscribe();
        let w = &self.witnessed;
        let got = tokio::time::timeout(
            w.timeout,
            rx.wait_for(|l| l.as_ref().is_some_and(|(s, _, _)| *s > index)),
        )
        .await;
        match got {
            Ok(Ok(l)) => match l.as_ref() {
                Some((s, n, _)) => Ok((*s, n.clone())),
                None => Err(Status::internal("witnessed checkpoint vanished")),
            },
            Ok(Err(_)) => Err(Status::unavailable("the node is shutting down")),
            Err(_) => Err(Status::deadline_exceeded(format!(
                "entry {index} is durably appended, but no checkpoint covering it gathered the charter's witness quorum of {} cosignatures within {} ms (a witness may be down or refusing: see the node's log); fetch one later with GetWitnessedCheckpoint",
                w.quorum,
                w.timeout.as_millis()
            ))),
        }
    }

    fn entry_pb(&self, index: u64) -> Result<pb::LogEntry, Status> {
        let bytes = self
            .store()
            .entry(index)
            .map_err(|e| store_status(&e))?
            .ok_or_else(|| Status::not_found(format!("no entry {index}; the log has {} entries", self.size())))?;
        let e = Entry::decode(&bytes).map_err(|e| Status::data_loss(format!("entry {index}: {e}")))?;
        Ok(ledger_proto::log_entry(
            &bytes,
            &e,
            &ledger_core::hash::leaf_hash(&bytes),
        ))
    }

    fn size(&self) -> u64 {
        self.shared.size.load(Relaxed)
    }

    /// The store to read: in cluster mode the state machine's current one (a snapshot install
    /// replaces it), else the node's.
    fn store(&self) -> Arc<Store> {
        match &self.shared.cluster {
            Some(c) => c.sm.store().unwrap_or_else(|_| self.store.clone()),
            None => self.store.clone(),
        }
    }

    /// Whether `size` entries are applied here. In cluster mode a node behind the leader waits
    /// up to [`FOLLOWER_WAIT`] for them; then refuses with OUT_OF_RANGE naming its applied size.
    async fn require_size(&self, what: &str, size: u64) -> Result<(), Status> {
        if size <= self.size() {
            return Ok(());
        }
        let Some(c) = &self.shared.cluster else {
            return Err(Status::out_of_range(format!(
                "{what} {size} is beyond the log size {}",
                self.size()
            )));
        };
        let t = std::time::Instant::now();
        while t.elapsed() < FOLLOWER_WAIT {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            if size <= self.size() {
                return Ok(());
            }
        }
        let role = c.role();
        let leader = match role.leader_id.and_then(|l| c.api_of(l)) {
            _ if role.leader => String::new(),
            Some(a) => format!("; the leader is at {a}"),
            None => String::new(),
        };
        Err(Status::out_of_range(format!(
            "{what} {size} is beyond the log size {} this node has applied (waited {} ms){leader}",
            self.size(),
            FOLLOWER_WAIT.as_millis()
        )))
    }

    fn latest_size(&self) -> u64 {
        self.shared.checkpoint.borrow().0
    }
}

#[tonic::async_trait]
impl pb::ledger_server::Ledger for LedgerService {
    async fn append(&self, req: Request<pb::AppendRequest>) -> Result<Response<pb::AppendResponse>, Status> {
        self.not_leader()?;
        let req = req.into_inner();
        let wait = req.wait_for_checkpoint;
        let item = self
            .edge
            .run_coalesced(&self.appends, req)
            .await
            .and_then(|r| r)
            .inspect_err(|s| self.shared.metrics.reject(s.code()))?;
        let res = self.submit(vec![item], wait).await?;
        let o = res
            .outcomes
            .into_iter()
            .next()
            .ok_or_else(|| Status::internal("no outcome"))?;
        let mut cp = if wait { res.checkpoint } else { None };
        if wait
            && self.witnessed.required
            && let Outcome::Appended { index, .. } = &o
        {
            cp = Some(self.wait_witnessed(*index).await?);
        }
        let mut r = self.response(o, &cp)?;
        if !wait {
            r.checkpoint.clear();
            r.inclusion_proof.clear();
        }
        Ok(Response::new(r))
    }

    async fn append_batch(
        &self,
        req: Request<pb::AppendBatchRequest>,
    ) -> Result<Response<pb::AppendBatchResponse>, Status> {
        self.not_leader()?;
        let req = req.into_inner();
        if req.items.is_empty() {
            return Err(Status::invalid_argument("the batch is empty"));
        }
        if req.items.len() > MAX_BATCH {
            return Err(Status::invalid_argument(format!(
                "the batch has {} items, the limit is {MAX_BATCH}; split it",
                req.items.len()
            )));
        }
        let wait = req.wait_for_checkpoint;
        // Check every item at the edge (limits and kinds, then all signatures in one batch, then
        // the verified items' payloads) on the edge pool; only the good ones go to the sequencer.
        let shared = self.shared.clone();
        let checked = self
            .edge
            .run(move || check_batch(&shared, req.items))
            .await
            .and_then(|r| r)
            .inspect_err(|s| self.shared.metrics.reject(s.code()))?;
        let refuse = |s: Status| {
            self.shared.metrics.reject(s.code());
            Some(pb::AppendItemResult {
                ok: None,
                error_code: s.code() as i32,
                error_message: s.message().to_string(),
            })
        };
        let mut results: Vec<Option<pb::AppendItemResult>> = Vec::with_capacity(checked.len());
        let mut items = Vec::new();
        let mut slots = Vec::new();
        for (i, c) in checked.into_iter().enumerate() {
            match c {
                Ok(item) => {
                    items.push(item);
                    slots.push(i);
                    results.push(None);
                }
                Err(s) => results.push(refuse(s)),
            }
        }
        let checkpoint = if items.is_empty() {
            String::new()
        } else {
            self.sequence_batch(items, slots, wait, &mut results).await?
        };
        Ok(Response::new(pb::AppendBatchResponse {
            results: results.into_iter().map(Option::unwrap_or_default).collect(),
            checkpoint,
        }))
    }

    async fn get_entry(&self, req: Request<pb::GetEntryRequest>) -> Result<Response<pb::LogEntry>, Status> {
        Ok(Response::new(self.entry_pb(req.into_inner().index)?))
    }

    type GetEntriesStream = BoxStream<pb::LogEntry>;

    async fn get_entries(
        &self,
        req: Request<pb::GetEntriesRequest>,
    ) -> Result<Response<Self::GetEntriesStream>, Status> {
        let req = req.into_inner();
        let size = self.size();
        let end = if req.end == 0 { size } else { req.end.min(size) };
        if req.start > end {
            return Err(Status::out_of_range(format!(
                "start {} is beyond the log size {size}",
                req.start
            )));
        }
        Ok(Response::new(self.readers.get_entries(self.store(), req.start, end)?))
    }

    async fn get_checkpoint(
        &self,
        req: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::CheckpointResponse>, Status> {
        let (size, note) = match req.into_inner().size {
            None if self.shared.checkpoint.borrow().1.is_empty() => {
                return Err(Status::unavailable(
                    "this cluster node holds no checkpoint yet (the leader signs them and they reach every node \
                     shortly); retry, or ask the leader",
                ));
            }
            None => self.shared.checkpoint.borrow().clone(),
            Some(s) => {
                let n = self
                    .store()
                    .checkpoint(s)
                    .map_err(|e| store_status(&e))?
                    .ok_or_else(|| Status::not_found(format!("no checkpoint of size {s} was signed")))?;
                (s, n)
            }
        };
        let root = ledger_core::note::Note::parse(&note)
            .ok()
            .and_then(|n| ledger_core::checkpoint::Checkpoint::from_body(&n.text).ok())
            .map(|c| c.root.0.to_vec())
            .unwrap_or_default();
        Ok(Response::new(pb::CheckpointResponse { note, size, root }))
    }

    async fn get_witnessed_checkpoint(
        &self,
        _req: Request<pb::GetWitnessedCheckpointRequest>,
    ) -> Result<Response<pb::WitnessedCheckpointResponse>, Status> {
        let mut latest = self.witnessed.latest.borrow().clone();
        if self.witnessed.quorum == 0 {
            // Every checkpoint is witnessed: the latest, with the cosignatures gathered for it if any.
            let (size, note) = self.shared.checkpoint.borrow().clone();
            if latest.as_ref().is_none_or(|(s, _, _)| *s < size) {
                latest = Some((size, note, Vec::new()));
            }
        }
        let (size, note, witnesses) = latest.ok_or_else(|| {
            Status::not_found(format!(
                "no checkpoint has gathered the charter's witness quorum of {} cosignatures yet",
                self.witnessed.quorum
            ))
        })?;
        let root = ledger_core::note::Note::parse(&note)
            .ok()
            .and_then(|n| ledger_core::checkpoint::Checkpoint::from_body(&n.text).ok())
            .map(|c| c.root.0.to_vec())
            .unwrap_or_default();
        Ok(Response::new(pb::WitnessedCheckpointResponse {
            checkpoint: Some(pb::CheckpointResponse { note, size, root }),
            witness_quorum: self.witnessed.quorum,
            witnesses,
        }))
    }

    async fn get_inclusion_proof(
        &self,
        req: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::InclusionProofResponse>, Status> {
        let req = req.into_inner();
        let index = match req.target {
            Some(pb::get_inclusion_proof_request::Target::Index(i)) => i,
            Some(pb::get_inclusion_proof_request::Target::LeafHash(h)) => {
                let h = ledger_proto::hash_from_bytes("leaf_hash", &h).map_err(|e| Status::invalid_argument(e.0))?;
                self.store()
                    .index_of_leaf(&h)
                    .map_err(|e| store_status(&e))?
                    .ok_or_else(|| Status::not_found(format!("no entry has leaf hash {h}")))?
            }
            None => return Err(Status::invalid_argument("give an index or a leaf_hash")),
        };
        let tree_size = if req.tree_size == 0 {
            self.latest_size()
        } else {
            req.tree_size
        };
        self.require_size("tree size", tree_size).await?;
        if index >= tree_size {
            return Err(Status::failed_precondition(format!(
                "entry {index} is not in the tree of size {tree_size}; wait for a later checkpoint"
            )));
        }
        let hashes =
            merkle::inclusion_proof(&*self.store(), index, tree_size).map_err(|e| Status::internal(e.to_string()))?;
        let checkpoint = self
            .store()
            .checkpoint(tree_size)
            .map_err(|e| store_status(&e))?
            .unwrap_or_default();
        Ok(Response::new(pb::InclusionProofResponse {
            index,
            tree_size,
            hashes: hashes.into_iter().map(|h| h.0.to_vec()).collect(),
            checkpoint,
        }))
    }

    async fn get_consistency_proof(
        &self,
        req: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::ConsistencyProofResponse>, Status> {
        let req = req.into_inner();
        let new = if req.new_size == 0 {
            self.latest_size()
        } else {
            req.new_size
        };
        self.require_size("new size", new).await?;
        if req.old_size > new {
            return Err(Status::invalid_argument(format!(
                "old size {} is larger than new size {new}",
                req.old_size
            )));
        }
        let hashes = merkle::consistency_proof(&*self.store(), req.old_size, new)
            .map_err(|e| Status::internal(e.to_string()))?;
        let checkpoint = self
            .store()
            .checkpoint(new)
            .map_err(|e| store_status(&e))?
            .unwrap_or_default();
        Ok(Response::new(pb::ConsistencyProofResponse {
            old_size: req.old_size,
            new_size: new,
            hashes: hashes.into_iter().map(|h| h.0.to_vec()).collect(),
            checkpoint,
        }))
    }

    type WatchCheckpointsStream = BoxStream<pb::CheckpointResponse>;

    async fn watch_checkpoints(
        &self,
        _req: Request<pb::WatchCheckpointsRequest>,
    ) -> Result<Response<Self::WatchCheckpointsStream>, Status> {
        let rx = self.shared.checkpoint.subscribe();
        let s = tokio_stream::StreamExt::map(tokio_stream::wrappers::WatchStream::new(rx), |(size, note)| {
            let root = ledger_core::note::Note::parse(&note)
                .ok()
                .and_then(|n| ledger_core::checkpoint::Checkpoint::from_body(&n.text).ok())
                .map(|c| c.root.0.to_vec())
                .unwrap_or_default();
            Ok(pb::CheckpointResponse { note, size, root })
        });
        Ok(Response::new(Box::pin(s)))
    }

    async fn query(&self, req: Request<pb::QueryRequest>) -> Result<Response<pb::QueryResponse>, Status> {
        let q = req.into_inner();
        let limit = if q.limit == 0 {
            100
        } else {
            q.limit.min(MAX_QUERY_LIMIT)
        } as usize;
        let filters = query_filters(&q)?;
        let size = self.size();
        let lo = if q.from_micros == 0 {
            0
        } else {
            self.first_at_or_after(q.from_micros, size)?
        };
        let hi = if q.to_micros == 0 {
            size
        } else {
            self.first_at_or_after(q.to_micros, size)?
        };
        let (mut indices, mut next) = self.query_indices(&filters, q.page_start.max(lo), hi, limit)?;
        let entries = if q.with_entries {
            self.query_entries(&mut indices, &mut next)?
        } else {
            Vec::new()
        };
        Ok(Response::new(pb::QueryResponse {
            indices,
            entries,
            next_page_start: next,
        }))
    }
}

/// The index filters of a Query, most selective first as the store scans the first one: draw,
/// subject, kind.
fn query_filters(q: &pb::QueryRequest) -> Result<Vec<(IndexTag, &str)>, Status> {
    let mut filters: Vec<(IndexTag, &str)> = Vec::new();
    for (tag, v) in [
        (IndexTag::Draw, q.draw_id.as_str()),
        (IndexTag::Subject, q.subject.as_str()),
        (IndexTag::Kind, q.kind.as_str()),
    ] {
        if v.len() > 256 {
            return Err(Status::invalid_argument("filter values are at most 256 bytes"));
        }
        if !v.is_empty() {
            filters.push((tag, v));
        }
    }
    if filters.is_empty() && q.from_micros == 0 && q.to_micros == 0 {
        return Err(Status::invalid_argument(
            "give at least one of kind, subject, draw_id or a time range",
        ));
    }
    Ok(filters)
}

impl LedgerService {
    /// The indices in `[start, hi)` that carry every filter's term, at most `limit`, and where the
    /// next page starts (0 when this one is the last).
    fn query_indices(
        &self,
        filters: &[(IndexTag, &str)],
        mut start: u64,
        hi: u64,
        limit: usize,
    ) -> Result<(Vec<u64>, u64), Status> {
        // Bounded work: at most `query_scan` index terms per call, each candidate costing one term
        // read plus one membership lookup per further filter. When the budget runs out the page
        // ends early and `next_page_start` says where to continue.
        let limits = &self.readers.limits;
        let mut candidates_left = (limits.query_scan / filters.len().max(1)).max(1);
        let mut indices = Vec::new();
        let mut next = 0;
        'outer: while start < hi {
            if candidates_left == 0 {
                next = start;
                break;
            }
            let want = candidates_left.min(1024);
            let page: Vec<u64> = match filters.first() {
                Some((tag, v)) => self.store().query(*tag, v, start, want).map_err(|e| store_status(&e))?,
                None => (start..hi.min(start.saturating_add(want as u64))).collect(),
            };
            candidates_left -= page.len().min(candidates_left);
            let Some(&last) = page.last() else { break };
            let exhausted = !filters.is_empty() && page.len() < want;
            for i in page {
                if i >= hi {
                    break 'outer;
                }
                let mut ok = true;
                for (tag, v) in filters.iter().skip(1) {
                    if !self.store().has_term(*tag, v, i).map_err(|e| store_status(&e))? {
                        ok = false;
                        break;
                    }
                }
                if ok {
                    if indices.len() == limit {
                        next = i;
                        break 'outer;
                    }
                    indices.push(i);
                }
            }
            if exhausted {
                break;
            }
            start = last.saturating_add(1);
        }
        Ok((indices, next))
    }

    /// The entries of a Query page, within `query_bytes`; a page cut short ends at the first index
    /// left out (`next`).
    fn query_entries(&self, indices: &mut Vec<u64>, next: &mut u64) -> Result<Vec<pb::LogEntry>, Status> {
        // Bounded answers: entries are added while the encoded response stays within
        // `query_bytes` (the first is always included, so paging progresses); the page then ends
        // at the first index left out.
        let mut entries = Vec::new();
        let mut bytes = 16 + 11 * indices.len();
        for n in 0..indices.len() {
            let e = self.entry_pb(indices[n])?;
            let len = prost::Message::encoded_len(&e);
            let cost = 1 + prost::length_delimiter_len(len) + len;
            if n > 0 && bytes + cost > self.readers.limits.query_bytes {
                *next = indices[n];
                indices.truncate(n);
                break;
            }
            bytes += cost;
            entries.push(e);
        }
        Ok(entries)
    }

    /// First index whose timestamp is at or after `t` (timestamps are monotone in the index).
    fn first_at_or_after(&self, t: u64, size: u64) -> Result<u64, Status> {
        let (mut lo, mut hi) = (0u64, size);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let ts = self
                .store()
                .timestamp(mid)
                .map_err(|e| store_status(&e))?
                .unwrap_or(u64::MAX);
            if ts < t { lo = mid + 1 } else { hi = mid }
        }
        Ok(lo)
    }
}
