//! The node's side of witnessing: push each new checkpoint to the configured witnesses
//! (C2SP tlog-witness add-checkpoint, over our gRPC service or the spec's HTTP interface per
//! witness), merge the cosignatures they return into the
//! checkpoint note, store it, and publish the latest *witnessed* checkpoint: one carrying valid
//! cosignatures by at least the charter's `witness_quorum` of the witness keys enrolled in the
//! registry (docs/witness.md).
//!
//! Each witness is asked with a consistency proof from the size the node believes it holds
//! (0 at start); on a conflict the witness names its size and the node retries once from it. A
//! witness that refuses (a fork, a rollback) is logged and skipped; it is never argued with.

use crate::sequencer::Shared;
use crate::tlog_http::{HttpAnswer, HttpWitness};
use crate::witness::refusal_of;
use anyhow::{Context, Result};
use ledger_core::cosignature::CosignatureVerifier;
use ledger_core::merkle::consistency_proof;
use ledger_core::note::Note;
use ledger_core::witness::AddCheckpoint;
use ledger_proto::pb;
use ledger_proto::pb::witness_client::WitnessClient;
use ledger_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tonic::transport::Channel;

/// Longest wait for one witness's answer.
const PUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Marks a witness reached over the spec's HTTP interface: `tlog+http://host:port[/prefix]`.
pub const HTTP_SCHEME_PREFIX: &str = "tlog+";

/// How the node reaches a witness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Our gRPC service `ledger.v1.Witness` (a tonic endpoint URL).
    Grpc,
    /// C2SP tlog-witness HTTP: `POST <prefix>/add-checkpoint` (the URL is the submission prefix).
    Http,
}

/// One configured witness: `URL=NAME+HASH+BASE64` (its cosignature verifier key). A URL
/// `tlog+http://…` names a tlog-witness HTTP submission prefix; any other URL is our gRPC service.
#[derive(Debug, Clone)]
pub struct WitnessConfig {
    /// gRPC URL, or the HTTP submission prefix (without `tlog+`).
    pub url: String,
    /// The protocol.
    pub transport: Transport,
    /// Its cosignature key.
    pub key: CosignatureVerifier,
}

impl std::str::FromStr for WitnessConfig {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let (url, key) = s
            .split_once('=')
            .with_context(|| format!("witness {s:?}: expected URL=NAME+HASH+BASE64"))?;
        let key = CosignatureVerifier::parse(key).with_context(|| format!("witness {url}: bad verifier key"))?;
        let (url, transport) = match url.strip_prefix(HTTP_SCHEME_PREFIX) {
            Some(prefix) => {
                crate::tlog_http::add_checkpoint_uri(prefix).map_err(|e| anyhow::anyhow!("witness {url}: {e}"))?;
                (prefix, Transport::Http)
            }
            None => (url, Transport::Grpc),
        };
        Ok(Self {
            url: url.to_string(),
            transport,
            key,
        })
    }
}

/// The latest witnessed checkpoint, shared with the gRPC handlers.
pub struct Witnessed {
    /// (size, note, names of the enrolled witnesses that cosigned it); `None` until there is one.
    pub latest: watch::Sender<Option<(u64, String, Vec<String>)>>,
    /// Whether witnesses are configured and the charter's quorum is above 0, so that
    /// `wait_for_checkpoint` waits for a witnessed checkpoint.
    pub required: bool,
    /// The charter's quorum.
    pub quorum: u32,
    /// How long `wait_for_checkpoint` waits for one.
    pub timeout: Duration,
}

/// Valid cosignatures on `note` by the enrolled witnesses.
fn enrolled_cosigners(shared: &Shared, note: &Note) -> Vec<String> {
    let Ok(reg) = shared.registry.read() else {
        return Vec::new();
    };
    note.verify_cosignatures(&reg.witnesses())
        .map(|v| v.into_iter().map(|c| c.name).collect())
        .unwrap_or_default()
}

/// Initial state: with quorum 0 every checkpoint is witnessed; else the stored witnessed one.
///
/// # Errors
/// On storage failure.
pub fn initial(store: &Store, shared: &Shared, configured: bool, timeout: Duration) -> Result<Witnessed> {
    let quorum = shared
        .registry
        .read()
        .map(|r| r.charter.policy.witness_quorum)
        .unwrap_or(0);
    let latest = if quorum == 0 {
        let (s, n) = shared.checkpoint.borrow().clone();
        Some((s, n, Vec::new()))
    } else {
        store.latest_witnessed()?.map(|(s, n)| {
            let names = Note::parse(&n)
                .map(|x| enrolled_cosigners(shared, &x))
                .unwrap_or_default();
            (s, n, names)
        })
    };
    let (tx, _) = watch::channel(latest);
    Ok(Witnessed {
        latest: tx,
        required: configured && quorum > 0,
        quorum,
        timeout,
    })
}

struct Peer {
    cfg: WitnessConfig,
    client: Option<WitnessClient<Channel>>,
    /// The HTTP client, for [`Transport::Http`].
    http: Option<HttpWitness>,
    /// Size the node believes the witness holds.
    held: u64,
}

enum PushError {
    Conflict(u64),
    Other(String),
}

impl Peer {
    async fn client(&mut self) -> Result<&mut WitnessClient<Channel>, String> {
        if self.client.is_none() {
            let ch = tonic::transport::Endpoint::from_shared(self.cfg.url.clone())
                .map_err(|e| e.to_string())?
                .connect_timeout(PUSH_TIMEOUT)
                .timeout(PUSH_TIMEOUT)
                .connect()
                .await
                .map_err(|e| format!("cannot connect: {e}"))?;
            self.client = Some(WitnessClient::new(ch));
        }
        self.client.as_mut().ok_or_else(|| "no client".to_string())
    }

    async fn add(&mut self, store: &Store, old: u64, size: u64, note: &str) -> Result<String, PushError> {
        let proof = if old == 0 || old >= size {
            Vec::new()
        } else {
            consistency_proof(store, old, size).map_err(|e| PushError::Other(format!("no proof from {old}: {e}")))?
        };
        let body = AddCheckpoint {
            old_size: old,
            proof,
            checkpoint: note.to_string(),
        }
        .to_body();
        if self.cfg.transport == Transport::Http {
            return self.add_http(body, old).await;
        }
        let c = self.client().await.map_err(PushError::Other)?;
        match c.add_checkpoint(pb::AddCheckpointRequest { body }).await {
            Ok(r) => Ok(r.into_inner().cosignatures),
            Err(s) => {
                if let Some(r) = refusal_of(&s)
                    && r.http_status == 409
                    && r.held_size != old
                {
                    return Err(PushError::Conflict(r.held_size));
                }
                if matches!(s.code(), tonic::Code::Unavailable | tonic::Code::Unknown) {
                    self.client = None;
                }
                Err(PushError::Other(format!("{:?}: {}", s.code(), s.message())))
            }
        }
    }

    /// [`Peer::add`] over the spec's HTTP interface.
    async fn add_http(&mut self, body: String, old: u64) -> Result<String, PushError> {
        if self.http.is_none() {
            self.http = Some(HttpWitness::new(&self.cfg.url, PUSH_TIMEOUT).map_err(PushError::Other)?);
        }
        let Some(c) = self.http.as_ref() else {
            return Err(PushError::Other("no client".into()));
        };
        match c.add_checkpoint(body).await.map_err(PushError::Other)? {
            HttpAnswer::Cosigned(lines) => Ok(lines),
            HttpAnswer::Conflict(held) if held != old => Err(PushError::Conflict(held)),
            HttpAnswer::Conflict(held) => Err(PushError::Other(format!(
                "409 Conflict at the size the witness states ({held}): same size, another root"
            ))),
            HttpAnswer::Refused(status, body) => Err(PushError::Other(format!("HTTP {status}: {body}"))),
        }
    }

    /// Pushes one checkpoint; returns the witness's cosignature lines.
    async fn push(&mut self, store: &Store, size: u64, note: &str) -> Result<String, String> {
        let mut old = self.held.min(size);
        for _ in 0..2 {
            match self.add(store, old, size, note).await {
                Ok(lines) => {
                    self.held = size;
                    return Ok(lines);
                }
                Err(PushError::Conflict(h)) if h <= size && h != old => {
                    self.held = h;
                    old = h;
                }
                Err(PushError::Conflict(h)) => {
                    self.held = h;
                    return Err(format!(
                        "the witness holds size {h}, beyond this checkpoint of size {size}"
                    ));
                }
                Err(PushError::Other(m)) => return Err(m),
            }
        }
        Err("the witness's size keeps changing".into())
    }
}

/// Pushes every new checkpoint to the witnesses until the node stops.
pub async fn run(store: Arc<Store>, shared: Arc<Shared>, witnessed: Arc<Witnessed>, witnesses: Vec<WitnessConfig>) {
    {
        let enrolled = shared.registry.read().map(|r| r.witnesses()).unwrap_or_default();
        for w in &witnesses {
            if !enrolled.contains(&w.key) {
                tracing::warn!(witness = %w.key.name, url = %w.url, "witness key is not enrolled with the witness role; its cosignatures do not count toward the quorum");
            }
        }
    }
    let mut peers: Vec<Peer> = witnesses
        .into_iter()
        .map(|cfg| Peer {
            cfg,
            client: None,
            http: None,
            held: 0,
        })
        .collect();
    let mut rx = shared.checkpoint.subscribe();
    loop {
        let (size, text) = rx.borrow_and_update().clone();
        // Cluster mode: only the leader pushes; a follower publishes the witnessed checkpoint the
        // leader replicated (`LedgerRequest::Cosigned`), and the store is the state machine's.
        let store = match &shared.cluster {
            Some(c) if !c.role().leader => {
                follow_witnessed(c, &shared, &witnessed);
                if rx.changed().await.is_err() {
                    return;
                }
                continue;
            }
            Some(c) => c.sm.store().unwrap_or_else(|_| store.clone()),
            None => store.clone(),
        };
        let Ok(mut note) = Note::parse(&text) else {
            tracing::error!(size, "the node's own checkpoint note does not parse");
            if rx.changed().await.is_err() {
                return;
            }
            continue;
        };
        let results = {
            let futs = peers.iter_mut().map(|p| {
                let store = store.clone();
                let text = text.clone();
                async move {
                    let r = tokio::time::timeout(PUSH_TIMEOUT, p.push(&store, size, &text)).await;
                    (p.cfg.clone(), r.unwrap_or_else(|_| Err("timed out".into())))
                }
            });
            join_all(futs).await
        };
        for p in &peers {
            let ok = p.held == size;
            shared.metrics.witness_pushed(&p.cfg.key.name, size, p.held, ok);
        }
        for (cfg, r) in results {
            merge_answer(&mut note, &cfg, size, r);
        }
        let names = enrolled_cosigners(&shared, &note);
        let is_witnessed = witnessed.quorum > 0 && names.len() as u32 >= witnessed.quorum;
        let merged = note.to_text();
        if merged != text || is_witnessed {
            store_cosigned(&store, &shared, size, &merged, is_witnessed).await;
        }
        if is_witnessed || witnessed.quorum == 0 {
            witnessed.latest.send_replace(Some((size, merged, names)));
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Merges a witness's answer into `note`: only its own valid cosignature lines, replacing any
/// line of its key the note held; a failure or a malformed answer is logged.
fn merge_answer(note: &mut Note, cfg: &WitnessConfig, size: u64, r: Result<String, String>) {
    match r {
        Ok(lines) => {
            let merged = Note::parse(&format!("{}\n{lines}", note.text));
            let Ok(answer) = merged else {
                tracing::warn!(witness = %cfg.key.name, "malformed cosignature answer");
                return;
            };
            let mine: Vec<_> = answer
                .signatures
                .into_iter()
                .filter(|s| cfg.key.matches(s) && cfg.key.verify(&note.text, &s.sig).is_ok())
                .collect();
            if mine.is_empty() {
                tracing::warn!(witness = %cfg.key.name, "the answer holds no valid cosignature by this witness");
            }
            note.signatures.retain(|s| !cfg.key.matches(s));
            note.merge_signatures(mine);
        }
        Err(m) => {
            tracing::warn!(witness = %cfg.key.name, url = %cfg.url, size, error = %m, "witness did not cosign")
        }
    }
}

/// Cluster mode, on a follower: publishes the latest witnessed checkpoint its store holds (with
/// quorum 0 every checkpoint counts as witnessed: the latest one).
fn follow_witnessed(c: &crate::cluster::ClusterView, shared: &Shared, witnessed: &Witnessed) {
    let latest = if witnessed.quorum == 0 {
        c.sm.store().ok().and_then(|st| st.latest_checkpoint().ok().flatten())
    } else {
        c.sm.store().ok().and_then(|st| st.latest_witnessed().ok().flatten())
    };
    if let Some((s, n)) = latest
        && witnessed.latest.borrow().as_ref().is_none_or(|(old, _, _)| *old < s)
    {
        let names = Note::parse(&n)
            .map(|x| enrolled_cosigners(shared, &x))
            .unwrap_or_default();
        witnessed.latest.send_replace(Some((s, n, names)));
    }
}

/// Cluster mode, on the leader: the cosigned checkpoint goes to every node as a Raft entry
/// (`LedgerRequest::Cosigned`, re-checked on apply: same body as the stored checkpoint, the quorum
/// of enrolled witnesses when claimed witnessed); then the marks advance.
async fn replicate_cosigned(
    c: &crate::cluster::ClusterView,
    shared: &Shared,
    size: u64,
    merged: &str,
    is_witnessed: bool,
) -> Result<(), String> {
    let req = ledger_raft::LedgerRequest::Cosigned {
        size,
        note: merged.to_string(),
        witnessed: is_witnessed,
    };
    let r = tokio::time::timeout(crate::sequencer::COMMIT_TIMEOUT, c.raft.client_write(req))
        .await
        .map_err(|_| "not applied in time".to_string())?
        .map_err(|e| e.to_string())?;
    match r.data {
        ledger_raft::ApplyOutcome::CheckpointStored { .. } => {}
        other => return Err(format!("the cluster answered {other:?}")),
    }
    if is_witnessed {
        shared.witnessed_mark.advance(size, merged).map_err(|e| e.to_string())?;
    }
    shared.high_water.advance(size, merged).map_err(|e| e.to_string())?;
    Ok(())
}

/// Stores the cosigned checkpoint, then advances the marks outside sled (the witnessed mark when
/// it is witnessed); a failure is logged.
async fn store_cosigned(store: &Arc<Store>, shared: &Arc<Shared>, size: u64, merged: &str, is_witnessed: bool) {
    if let Some(c) = &shared.cluster {
        if let Err(e) = replicate_cosigned(c, shared, size, merged, is_witnessed).await {
            tracing::error!(size, error = %e, "cannot store the cosigned checkpoint");
        }
        return;
    }
    let st = store.clone();
    let m = merged.to_string();
    let sh = shared.clone();
    let r = tokio::task::spawn_blocking(move || {
        st.put_cosigned_checkpoint(size, &m, is_witnessed)?;
        // Durable in the store: now the marks outside sled may hold it.
        if is_witnessed {
            sh.witnessed_mark.advance(size, &m)?;
        }
        sh.high_water.advance(size, &m)?;
        Ok::<(), anyhow::Error>(())
    })
    .await;
    match r {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(size, error = %e, "cannot store the cosigned checkpoint"),
        Err(e) => tracing::error!(size, error = %e, "cannot store the cosigned checkpoint"),
    }
}

/// Runs every future concurrently on the current task and returns their outputs in input order
/// (a minimal `futures::future::join_all`, to avoid a dependency for a handful of witnesses).
///
/// Nothing is spawned: the futures only make progress while the returned future is polled. Each
/// time it is woken it polls every future that has not finished yet (all share the task's waker,
/// so a wake-up by any of them re-polls them all), keeps the outputs of those that are ready, and
/// completes once all are. The cost is O(n) polls per wake-up, fine for a few witnesses; the
/// slowest future bounds the whole (callers wrap each in a timeout).
async fn join_all<F: std::future::Future>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<std::pin::Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (i, f) in pending.iter_mut().enumerate() {
            if results[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => results[i] = Some(v),
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    // Every slot is filled once the poll_fn above has completed.
    results.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::{Transport, WitnessConfig, join_all};
    use std::time::{Duration, Instant};

    #[test]
    fn the_url_chooses_the_protocol_per_witness() {
        let key = ledger_core::cosignature::CosignatureSigner::new(
            "w.test/a",
            ed25519_dalek::SigningKey::from_bytes(&[3; 32]),
        )
        .expect("signer")
        .verifier()
        .to_string_key();
        let grpc: WitnessConfig = format!("http://10.0.0.7:50061={key}").parse().expect("grpc");
        assert_eq!(
            (grpc.transport, grpc.url.as_str()),
            (Transport::Grpc, "http://10.0.0.7:50061")
        );
        let http: WitnessConfig = format!("tlog+http://w.example:8080/sub={key}").parse().expect("http");
        assert_eq!(
            (http.transport, http.url.as_str()),
            (Transport::Http, "http://w.example:8080/sub")
        );
        for bad in ["tlog+https://w.example", "tlog+w.example:80", "tlog+/x"] {
            assert!(format!("{bad}={key}").parse::<WitnessConfig>().is_err(), "{bad}");
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn join_all_runs_futures_concurrently_and_keeps_input_order() {
        let t0 = Instant::now();
        // The first future finishes last: outputs still come back in input order.
        let futs = (0..4u64).map(|i| async move {
            tokio::time::sleep(Duration::from_millis(400 - 100 * i)).await;
            i
        });
        assert_eq!(join_all(futs).await, vec![0, 1, 2, 3]);
        // One after the other would take 1 s; together they take the longest, 400 ms.
        let took = t0.elapsed();
        assert!(took < Duration::from_millis(900), "not concurrent: {took:?}");
        assert!(join_all(Vec::<std::future::Ready<u8>>::new()).await.is_empty());
    }
}
