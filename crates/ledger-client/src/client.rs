//! The gRPC client.
//!
//! Every unary call is retried on `UNAVAILABLE` (which is also how tonic reports transport
//! failures) with exponential backoff; see [`RetryPolicy`]. Appends always carry a request id — a
//! random one when the caller gives none — and every retry reuses it, so the node sequences the
//! envelope at most once.
//!
//! Against a cluster (docs/cluster.md), a follower refuses appends naming the leader in the
//! response metadata [`LEADER_METADATA`]; appends follow it to the leader (at most
//! [`MAX_LEADER_HOPS`] times per call, with the same request ids), so a client may connect to any
//! node.

use crate::error::ClientError;
use ledger_core::dsse::Envelope;
use ledger_core::entry::Entry;
use ledger_core::hash::{Hash, leaf_hash};
use ledger_proto::pb;
use ledger_proto::pb::ledger_client::LedgerClient as Raw;
use std::future::Future;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// Largest gRPC message sent or received (a batch of maximal entries, proofs, notes).
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// How calls are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total tries, the first included (at least 1).
    pub max_attempts: u32,
    /// Wait after the first failure; doubled after each further one.
    pub base_delay: Duration,
}

impl Default for RetryPolicy {
    /// 5 tries, waiting 50, 100, 200 and 400 ms in between.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(50),
        }
    }
}

impl RetryPolicy {
    /// No retries.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            base_delay: Duration::ZERO,
        }
    }

    fn delay(&self, attempt: u32) -> Duration {
        self.base_delay.saturating_mul(1u32 << attempt.min(16))
    }
}

/// Whether a failed call may be retried: the node or the connection was unavailable.
pub fn is_retryable(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::Unavailable
}

/// What the node answered to an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Index of the entry.
    pub index: u64,
    /// Leaf hash of the entry, as the node states it.
    pub leaf_hash: Hash,
    /// Node-assigned time, UTC microseconds.
    pub timestamp_micros: u64,
    /// True when the node answered a retry of an earlier request with the same id.
    pub duplicate: bool,
    /// With `wait_for_checkpoint`: a signed checkpoint note covering the entry.
    pub checkpoint: Option<String>,
    /// With `wait_for_checkpoint`: the inclusion proof of the entry in that checkpoint.
    pub inclusion_proof: Vec<Hash>,
    /// The request id that was sent (the caller's, or a generated one).
    pub request_id: String,
}

/// One item of a batch append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchItem {
    /// The signed record.
    pub envelope: Envelope,
    /// Idempotency key; a random one is generated when `None`.
    pub request_id: Option<String>,
}

impl From<Envelope> for BatchItem {
    fn from(envelope: Envelope) -> Self {
        Self {
            envelope,
            request_id: None,
        }
    }
}

/// What the node answered to a batch append.
#[derive(Debug)]
pub struct BatchOutcome {
    /// One result per item, in order: the outcome, or the node's refusal of that item.
    pub results: Vec<Result<AppendOutcome, ClientError>>,
    /// With `wait_for_checkpoint`: a signed checkpoint covering every accepted item.
    pub checkpoint: Option<String>,
}

/// A signed checkpoint as served, with the size and root the node states for it (not yet
/// verified: open [`Self::note`] with [`ledger_core::checkpoint::open_checkpoint`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// The signed note.
    pub note: String,
    /// Tree size, as stated.
    pub size: u64,
    /// Root, as stated.
    pub root: Hash,
}

/// An inclusion proof as served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// Leaf index.
    pub index: u64,
    /// Tree size the proof is for.
    pub tree_size: u64,
    /// Proof hashes, leaf to root.
    pub hashes: Vec<Hash>,
    /// The signed checkpoint of `tree_size`, when the node has one stored.
    pub checkpoint: Option<String>,
}

/// A consistency proof as served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyProof {
    /// Older size.
    pub old_size: u64,
    /// Newer size.
    pub new_size: u64,
    /// Proof hashes.
    pub hashes: Vec<Hash>,
    /// The signed checkpoint of `new_size`, when the node has one stored.
    pub checkpoint: Option<String>,
}

/// Response metadata key in which a cluster follower names the leader's API address
/// (`host:port`) when it refuses an append (docs/api.md).
pub const LEADER_METADATA: &str = "ledger-leader";

/// How many times one append call follows [`LEADER_METADATA`] to another node (a named leader
/// that cannot be reached counts too: the call then waits and asks the first node again).
pub const MAX_LEADER_HOPS: u32 = 3;

/// A client of one ledger node.
#[derive(Debug, Clone)]
pub struct LedgerClient {
    inner: Raw<Channel>,
    retry: RetryPolicy,
    /// The scheme of the URL connected to (`http`, `https`), used to reach a leader a follower
    /// names; `None` for a client made from a caller's channel, which does not follow.
    scheme: Option<String>,
}

/// A fresh random request id: lowercase hex of 16 random bytes.
pub fn random_request_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

fn non_empty(s: String) -> Option<String> {
    if s.is_empty() { None } else { Some(s) }
}

fn hash(field: &str, b: &[u8]) -> Result<Hash, ClientError> {
    Ok(ledger_proto::hash_from_bytes(field, b)?)
}

fn hashes(field: &str, v: &[Vec<u8>]) -> Result<Vec<Hash>, ClientError> {
    v.iter().map(|b| hash(field, b)).collect()
}

fn outcome(r: pb::AppendResponse, request_id: String) -> Result<AppendOutcome, ClientError> {
    Ok(AppendOutcome {
        index: r.index,
        leaf_hash: hash("leaf_hash", &r.leaf_hash)?,
        timestamp_micros: r.timestamp_micros,
        duplicate: r.duplicate,
        inclusion_proof: hashes("inclusion_proof", &r.inclusion_proof)?,
        checkpoint: non_empty(r.checkpoint),
        request_id,
    })
}

/// Checks a wire entry: decodes the canonical leaf bytes, checks the stated leaf hash against
/// them, and checks that every other stated field agrees with the leaf.
///
/// # Errors
/// When the leaf does not decode or anything disagrees with it.
pub fn check_wire_entry(e: &pb::LogEntry) -> Result<Entry, ClientError> {
    let entry = ledger_proto::entry_from_wire(e)?;
    let claimed = hash("leaf_hash", &e.leaf_hash)?;
    let computed = leaf_hash(&e.leaf);
    if claimed != computed {
        return Err(ClientError::LeafHashMismatch {
            index: e.index,
            claimed,
            computed,
        });
    }
    if e.prev_root.as_slice() != entry.prev_root.0.as_slice() {
        return Err(ClientError::EntryMismatch {
            index: e.index,
            detail: "prev_root field disagrees with the leaf bytes".into(),
        });
    }
    if let Some(env) = &e.envelope
        && Envelope::from(env.clone()) != entry.envelope
    {
        return Err(ClientError::EntryMismatch {
            index: e.index,
            detail: "envelope field disagrees with the leaf bytes".into(),
        });
    }
    Ok(entry)
}

impl LedgerClient {
    /// Connects to a node at `url` (e.g. `http://127.0.0.1:50051`), retrying a refused connection
    /// under the default [`RetryPolicy`].
    ///
    /// # Errors
    /// When the URL is invalid or the node cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, ClientError> {
        Self::connect_with(url, RetryPolicy::default()).await
    }

    /// Connects with a given retry policy (used for the connection and for every call).
    ///
    /// # Errors
    /// When the URL is invalid or the node cannot be reached.
    pub async fn connect_with(url: &str, retry: RetryPolicy) -> Result<Self, ClientError> {
        let endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| ClientError::InvalidUrl {
                url: url.to_string(),
                detail: e.to_string(),
            })?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        let mut attempt = 0;
        loop {
            match endpoint.connect().await {
                Ok(ch) => {
                    let mut c = Self::from_channel(ch, retry);
                    c.scheme = url.split_once("://").map(|(s, _)| s.to_string());
                    return Ok(c);
                }
                Err(_) if attempt + 1 < retry.max_attempts.max(1) => {
                    tokio::time::sleep(retry.delay(attempt)).await;
                    attempt += 1;
                }
                Err(e) => {
                    // The transport error's source chain carries the useful part ("connection refused").
                    let mut detail = e.to_string();
                    let mut src = std::error::Error::source(&e);
                    let mut last = detail.clone();
                    while let Some(s) = src {
                        let msg = s.to_string();
                        if msg != last {
                            detail.push_str(": ");
                            detail.push_str(&msg);
                        }
                        last = msg;
                        src = s.source();
                    }
                    return Err(ClientError::Connect {
                        url: url.to_string(),
                        detail,
                    });
                }
            }
        }
    }

    /// Wraps an existing channel (e.g. one with TLS configured by the caller).
    pub fn from_channel(channel: Channel, retry: RetryPolicy) -> Self {
        let inner = Raw::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Self {
            inner,
            retry,
            scheme: None,
        }
    }

    /// The retry policy in force.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// Runs one unary call under the retry policy.
    async fn call<T, F, Fut>(&self, mut f: F) -> Result<T, ClientError>
    where
        F: FnMut(Raw<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call_on(&self.inner, &mut f).await.map_err(Into::into)
    }

    /// Runs one unary call on `inner` under the retry policy.
    async fn call_on<T, F, Fut>(&self, inner: &Raw<Channel>, f: &mut F) -> Result<T, tonic::Status>
    where
        F: FnMut(Raw<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let max = self.retry.max_attempts.max(1);
        let mut attempt = 0;
        loop {
            match f(inner.clone()).await {
                Ok(r) => return Ok(r.into_inner()),
                Err(s) if is_retryable(&s) && attempt + 1 < max => {
                    tokio::time::sleep(self.retry.delay(attempt)).await;
                    attempt += 1;
                }
                Err(s) => return Err(s),
            }
        }
    }

    /// Runs an append under the retry policy; when the node answers that another node leads the
    /// cluster ([`LEADER_METADATA`]), sends it there instead, at most [`MAX_LEADER_HOPS`] times.
    async fn call_leader<T, F, Fut>(&self, mut f: F) -> Result<T, ClientError>
    where
        F: FnMut(Raw<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut inner = self.inner.clone();
        let mut hops = 0;
        loop {
            let s = match self.call_on(&inner, &mut f).await {
                Ok(t) => return Ok(t),
                Err(s) => s,
            };
            let leader = s
                .metadata()
                .get(LEADER_METADATA)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let follow = matches!(s.code(), tonic::Code::FailedPrecondition | tonic::Code::Unavailable);
            let (Some(leader), Some(scheme), true) = (leader, &self.scheme, follow && hops < MAX_LEADER_HOPS) else {
                return Err(s.into());
            };
            let Ok(endpoint) = Endpoint::from_shared(format!("{scheme}://{leader}")) else {
                return Err(s.into());
            };
            match endpoint
                .connect_timeout(Duration::from_secs(5))
                .tcp_nodelay(true)
                .connect()
                .await
            {
                Ok(ch) => {
                    inner = Raw::new(ch)
                        .max_decoding_message_size(MAX_MESSAGE_BYTES)
                        .max_encoding_message_size(MAX_MESSAGE_BYTES);
                }
                Err(_) => {
                    // A leader that just died is still named until the cluster elects another:
                    // wait, then ask the node first asked again.
                    tokio::time::sleep(self.retry.delay(hops + 2)).await;
                    inner = self.inner.clone();
                }
            }
            hops += 1;
        }
    }

    /// Appends one signed record. Retries on `UNAVAILABLE` with the same request id, generating a
    /// random id when none is given. With `wait_for_checkpoint`, the node answers once a signed
    /// checkpoint covers the entry, and the outcome carries it with the inclusion proof (check them
    /// with `verify::verify_appended` of this crate).
    ///
    /// # Errors
    /// When the envelope breaks DSSE limits (checked before sending), the node refuses, or the
    /// answer is malformed.
    pub async fn append(
        &self,
        envelope: &Envelope,
        request_id: Option<String>,
        wait_for_checkpoint: bool,
    ) -> Result<AppendOutcome, ClientError> {
        envelope.check_limits()?;
        let request_id = request_id.unwrap_or_else(random_request_id);
        let req = pb::AppendRequest {
            envelope: Some(envelope.into()),
            request_id: request_id.clone(),
            wait_for_checkpoint,
        };
        let r = self
            .call_leader(|mut c| {
                let req = req.clone();
                async move { c.append(req).await }
            })
            .await?;
        outcome(r, request_id)
    }

    /// Appends several records in one request. The whole request is retried on `UNAVAILABLE` with
    /// the same request ids (random ones where none is given). Each item succeeds or fails on its
    /// own.
    ///
    /// # Errors
    /// When an envelope breaks DSSE limits, the node refuses the whole batch, or the answer is
    /// malformed (including a result count that differs from the item count).
    pub async fn append_batch(
        &self,
        items: &[BatchItem],
        wait_for_checkpoint: bool,
    ) -> Result<BatchOutcome, ClientError> {
        let mut ids = Vec::with_capacity(items.len());
        let mut reqs = Vec::with_capacity(items.len());
        for it in items {
            it.envelope.check_limits()?;
            let id = it.request_id.clone().unwrap_or_else(random_request_id);
            reqs.push(pb::AppendRequest {
                envelope: Some((&it.envelope).into()),
                request_id: id.clone(),
                wait_for_checkpoint,
            });
            ids.push(id);
        }
        let req = pb::AppendBatchRequest {
            items: reqs,
            wait_for_checkpoint,
        };
        let r = self
            .call_leader(|mut c| {
                let req = req.clone();
                async move { c.append_batch(req).await }
            })
            .await?;
        if r.results.len() != items.len() {
            return Err(ClientError::Malformed(format!(
                "batch of {} items answered with {} results",
                items.len(),
                r.results.len()
            )));
        }
        let checkpoint = non_empty(r.checkpoint);
        let mut results = Vec::with_capacity(ids.len());
        for (res, id) in r.results.into_iter().zip(ids) {
            results.push(match res.ok {
                Some(ok) if res.error_code == 0 => outcome(ok, id).map(|mut o| {
                    if o.checkpoint.is_none() {
                        o.checkpoint.clone_from(&checkpoint);
                    }
                    o
                }),
                _ if res.error_code != 0 => Err(ClientError::Node {
                    code: tonic::Code::from_i32(res.error_code),
                    message: res.error_message,
                }),
                _ => Err(ClientError::Malformed(
                    "batch item result has neither an outcome nor an error".into(),
                )),
            });
        }
        Ok(BatchOutcome { results, checkpoint })
    }

    /// Fetches one entry and checks it: the canonical leaf bytes decode, the stated leaf hash is
    /// theirs, every stated field agrees with them, and the index is the one asked for.
    ///
    /// # Errors
    /// When the node refuses (e.g. `NOT_FOUND`) or the entry fails a check.
    pub async fn get_entry(&self, index: u64) -> Result<Entry, ClientError> {
        let e = self
            .call(|mut c| async move { c.get_entry(pb::GetEntryRequest { index }).await })
            .await?;
        let entry = check_wire_entry(&e)?;
        if entry.index != index {
            return Err(ClientError::EntryMismatch {
                index,
                detail: format!("asked for entry {index}, got entry {}", entry.index),
            });
        }
        Ok(entry)
    }

    /// Fetches the entries `[start, end)` (`end` = `None`: up to the current size), checking each as
    /// [`Self::get_entry`] does and that they come in order without gaps.
    ///
    /// # Errors
    /// When the node refuses, the stream breaks, or an entry fails a check.
    pub async fn get_entries(&self, start: u64, end: Option<u64>) -> Result<Vec<Entry>, ClientError> {
        let req = pb::GetEntriesRequest {
            start,
            end: end.unwrap_or(0),
        };
        let mut stream = self.call(|mut c| async move { c.get_entries(req).await }).await?;
        let mut out = Vec::new();
        let mut next = start;
        while let Some(e) = stream.message().await? {
            let entry = check_wire_entry(&e)?;
            if entry.index != next {
                return Err(ClientError::EntryMismatch {
                    index: entry.index,
                    detail: format!("expected entry {next} next in the stream"),
                });
            }
            next += 1;
            out.push(entry);
        }
        Ok(out)
    }

    /// The log's origin: the first line of its latest checkpoint note. Records for this log are
    /// signed bound to it ([`crate::sign_record_in`]).
    ///
    /// # Errors
    /// When the node refuses or its checkpoint has no origin line.
    pub async fn origin(&self) -> Result<String, ClientError> {
        let note = self.checkpoint(None).await?;
        match note.lines().next().map(str::trim) {
            Some(o) if ledger_core::registry::origin_bindable(o) => Ok(o.to_string()),
            _ => Err(ClientError::Payload(format!(
                "the node's checkpoint names no usable origin on its first line: {:?}",
                note.lines().next().unwrap_or_default()
            ))),
        }
    }

    /// Fetches a signed checkpoint note: the latest, or the one of tree size `size`.
    ///
    /// # Errors
    /// When the node refuses.
    pub async fn checkpoint(&self, size: Option<u64>) -> Result<String, ClientError> {
        Ok(self.checkpoint_info(size).await?.note)
    }

    /// Like [`Self::checkpoint`], with the size and root the node states next to the note.
    ///
    /// # Errors
    /// When the node refuses or the root is not 32 bytes.
    pub async fn checkpoint_info(&self, size: Option<u64>) -> Result<CheckpointInfo, ClientError> {
        let r = self
            .call(|mut c| async move { c.get_checkpoint(pb::GetCheckpointRequest { size }).await })
            .await?;
        Ok(CheckpointInfo {
            root: hash("root", &r.root)?,
            size: r.size,
            note: r.note,
        })
    }

    /// Fetches the inclusion proof of entry `index` in the tree of size `tree_size` (`None`: the
    /// latest checkpoint's size).
    ///
    /// # Errors
    /// When the node refuses or a hash is not 32 bytes.
    pub async fn inclusion_proof(&self, index: u64, tree_size: Option<u64>) -> Result<InclusionProof, ClientError> {
        let req = pb::GetInclusionProofRequest {
            target: Some(pb::get_inclusion_proof_request::Target::Index(index)),
            tree_size: tree_size.unwrap_or(0),
        };
        let r = self
            .call(|mut c| {
                let req = req.clone();
                async move { c.get_inclusion_proof(req).await }
            })
            .await?;
        Ok(InclusionProof {
            index: r.index,
            tree_size: r.tree_size,
            hashes: hashes("hashes", &r.hashes)?,
            checkpoint: non_empty(r.checkpoint),
        })
    }

    /// Fetches the consistency proof between tree sizes `old_size` and `new_size` (`None`: the
    /// latest checkpoint's size).
    ///
    /// # Errors
    /// When the node refuses or a hash is not 32 bytes.
    pub async fn consistency_proof(
        &self,
        old_size: u64,
        new_size: Option<u64>,
    ) -> Result<ConsistencyProof, ClientError> {
        let req = pb::GetConsistencyProofRequest {
            old_size,
            new_size: new_size.unwrap_or(0),
        };
        let r = self
            .call(|mut c| async move { c.get_consistency_proof(req).await })
            .await?;
        Ok(ConsistencyProof {
            old_size: r.old_size,
            new_size: r.new_size,
            hashes: hashes("hashes", &r.hashes)?,
            checkpoint: non_empty(r.checkpoint),
        })
    }

    /// The generated tonic client, for calls this wrapper does not cover (`Query`,
    /// `WatchCheckpoints`).
    pub fn raw(&self) -> Raw<Channel> {
        self.inner.clone()
    }
}
