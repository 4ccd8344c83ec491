//! `ledger-verify consistency`: are checkpoints saved earlier prefixes of the node's log now, and
//! of one log at all?
//!
//! The checkpoints come from files and from witnesses (`--witness-url`: the latest checkpoint each
//! witness cosigned for the log's origin, over the witness gRPC API's `GetLatest`), and each one's
//! signature is verified (with `--trusted-key`, or the node key of the charter the node serves as
//! entry 0).
//!
//! With a node, its latest checkpoint is fetched and a consistency proof from each saved size to it
//! is verified. The saved checkpoints are also checked against each other: two of equal size must
//! have equal roots, and one that is off the node's log is named together with the smallest larger
//! saved checkpoint that is on it (the node's proof between the two fails): those two cannot both
//! be prefixes of one log.
//!
//! Without a node (the gossip check) the checkpoints are compared pairwise offline: equal sizes must
//! have equal roots; two of different sizes cannot be compared without a consistency proof and are
//! reported as not compared.

use crate::fault::{Code, Fault, Faults};
use crate::report::{FaultsJson, human_faults};
use crate::source::node::{connect, latest_checkpoint, runtime};
use anyhow::{Context as _, anyhow};
use ledger_core::checkpoint::open_checkpoint;
use ledger_core::cosignature::CosignatureVerifier;
use ledger_core::entry::Entry;
use ledger_core::hash::{Hash, empty_root};
use ledger_core::merkle::verify_consistency;
use ledger_core::note::NoteVerifier;
use ledger_core::registry::Registry;
use ledger_proto::pb::ledger_client::LedgerClient;
use ledger_proto::pb::witness_client::WitnessClient;
use ledger_proto::pb::{GetConsistencyProofRequest, GetEntriesRequest, GetLatestRequest, QueryRequest};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// Longest wait to connect to a witness, and for its answer.
const WITNESS_TIMEOUT: Duration = Duration::from_secs(15);
/// Result of an offline pair of different sizes.
pub const NOT_COMPARED_NO_NODE: &str = "not compared (no node to prove consistency)";

/// What the command was asked.
#[derive(Debug, Clone)]
pub struct ConsistencyRequest {
    /// Node URL; `None`: compare the checkpoints with each other only (needs `trusted_key`).
    pub node: Option<String>,
    /// Saved checkpoint files.
    pub checkpoints: Vec<PathBuf>,
    /// Witness gRPC URLs: each one's latest cosigned checkpoint for the log's origin is checked too.
    pub witness_urls: Vec<String>,
    /// Trusted node key.
    pub trusted_key: Option<NoteVerifier>,
    /// Witness cosignature keys; empty: the witnesses enrolled in the node's registry (none
    /// without a node).
    pub witness_keys: Vec<CosignatureVerifier>,
    /// Most faults listed.
    pub max_faults: usize,
}

/// One saved checkpoint and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct Saved {
    /// File name, or the witness URL it was fetched from.
    pub file: String,
    /// Where it came from: "file" or "witness".
    pub source: &'static str,
    /// Size, when the note opened.
    pub size: Option<u64>,
    /// Root (hex), when the note opened.
    pub root: Option<String>,
    /// "consistent", "FORK", "ROLLBACK", "bad signature", "not compared", or (a witness that holds
    /// none for the origin) "no checkpoint".
    pub status: String,
    /// Witnesses whose valid cosignatures the note carries.
    pub witnesses: Vec<String>,
}

/// Two checkpoints compared with each other offline (no node).
#[derive(Debug, Clone, Serialize)]
pub struct Pair {
    /// One checkpoint's name (file or witness URL).
    pub a: String,
    /// The other's.
    pub b: String,
    /// "consistent", "FORK" or [`NOT_COMPARED_NO_NODE`].
    pub result: String,
}

/// The result.
#[derive(Debug)]
pub struct ConsistencyOutcome {
    /// Node URL (`None`: offline).
    pub node: Option<String>,
    /// Trust basis.
    pub trust: String,
    /// The node's latest checkpoint (size, root) when it verified.
    pub latest: Option<(u64, Hash)>,
    /// Saved checkpoints.
    pub saved: Vec<Saved>,
    /// Offline pairwise comparisons (empty with a node).
    pub pairs: Vec<Pair>,
    /// Faults.
    pub faults: Faults,
}

#[derive(Debug, Clone)]
struct Cp {
    label: String,
    size: u64,
    root: Hash,
}

fn show(c: &Cp) -> String {
    format!("size {} root {} ({})", c.size, c.root, c.label)
}

/// Status codes that mean "could not ask" rather than "the node cannot prove it".
fn is_transport(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled | tonic::Code::Unknown
    )
}

/// Checks `old` against `new` with a proof from the node. Ok(None) when consistent, Ok(Some(why))
/// when not; Err on transport failure.
async fn check_pair(client: &mut LedgerClient<Channel>, old: &Cp, new: &Cp) -> anyhow::Result<Option<String>> {
    if old.size == 0 {
        return Ok((old.root != empty_root()).then(|| "a size-0 checkpoint must carry the empty-tree root".into()));
    }
    if old.size == new.size {
        return Ok((old.root != new.root).then(|| "equal sizes with different roots".into()));
    }
    let req = GetConsistencyProofRequest {
        old_size: old.size,
        new_size: new.size,
    };
    let resp = match client.get_consistency_proof(req).await {
        Ok(r) => r.into_inner(),
        Err(s) if is_transport(s.code()) => {
            return Err(anyhow!("GetConsistencyProof: {} ({:?})", s.message(), s.code()));
        }
        Err(s) => {
            return Ok(Some(format!(
                "the node gives no consistency proof: {} ({:?})",
                s.message(),
                s.code()
            )));
        }
    };
    let mut proof = Vec::with_capacity(resp.hashes.len());
    for h in &resp.hashes {
        match Hash::from_slice(h) {
            Ok(h) => proof.push(h),
            Err(e) => return Ok(Some(format!("the node's proof holds a malformed hash: {e}"))),
        }
    }
    Ok(verify_consistency(old.size, new.size, &old.root, &new.root, &proof)
        .err()
        .map(|e| format!("the consistency proof from the node does not verify: {e}")))
}

/// The node key of the charter the node serves as entry 0.
async fn charter_key(client: &mut LedgerClient<Channel>) -> anyhow::Result<Result<NoteVerifier, String>> {
    let mut stream = client
        .get_entries(GetEntriesRequest { start: 0, end: 1 })
        .await
        .map_err(|s| anyhow!("GetEntries 0: {} ({:?})", s.message(), s.code()))?
        .into_inner();
    let Some(e) = stream
        .message()
        .await
        .map_err(|s| anyhow!("GetEntries 0: {} ({:?})", s.message(), s.code()))?
    else {
        return Ok(Err("the node serves no entry 0".into()));
    };
    let entry = match Entry::decode(&e.leaf) {
        Ok(x) => x,
        Err(x) => return Ok(Err(format!("entry 0 does not decode: {x}"))),
    };
    let reg = match Registry::genesis(&entry) {
        Ok(r) => r,
        Err(x) => return Ok(Err(x.to_string())),
    };
    Ok(NoteVerifier::new(&reg.charter.origin, reg.node_key).map_err(|x| x.to_string()))
}

/// The witness keys enrolled in the registry the node serves (charter and key records, replayed
/// with the same rules as `replay`).
async fn enrolled_witnesses(client: &mut LedgerClient<Channel>) -> anyhow::Result<Vec<CosignatureVerifier>> {
    let mut stream = client
        .get_entries(GetEntriesRequest { start: 0, end: 1 })
        .await
        .map_err(|s| anyhow!("GetEntries 0: {}", s.message()))?
        .into_inner();
    let Some(e0) = stream
        .message()
        .await
        .map_err(|s| anyhow!("GetEntries 0: {}", s.message()))?
    else {
        return Ok(Vec::new());
    };
    let Ok(mut reg) = Entry::decode(&e0.leaf)
        .map_err(|e| e.to_string())
        .and_then(|e| Registry::genesis(&e).map_err(|e| e.to_string()))
    else {
        return Ok(Vec::new());
    };
    let mut entries = Vec::new();
    for kind in ["key.enroll", "key.rotate", "key.revoke"] {
        let mut page_start = 0;
        loop {
            let r = match client
                .query(QueryRequest {
                    kind: kind.into(),
                    page_start,
                    limit: 1000,
                    with_entries: true,
                    ..Default::default()
                })
                .await
            {
                Ok(r) => r.into_inner(),
                Err(s) => {
                    // Cosignatures are then not counted (0 witnesses); give --witness-key instead.
                    eprintln!(
                        "ledger-verify: cannot list the enrolled witness keys ({kind}: {}); pass --witness-key to count cosignatures",
                        s.message()
                    );
                    return Ok(Vec::new());
                }
            };
            entries.extend(r.entries);
            if r.next_page_start == 0 {
                break;
            }
            page_start = r.next_page_start;
        }
    }
    entries.sort_by_key(|e| e.index);
    for e in entries {
        if let Ok(entry) = Entry::decode(&e.leaf) {
            // A key record the rules refuse is reported by `replay`; here it simply does not apply.
            let _ = ledger_core::state::fold_registry(&mut reg, &entry);
        }
    }
    Ok(reg.witnesses())
}

/// Runs the command.
///
/// # Errors
/// When a file cannot be read or the node cannot be reached (exit code 2).
pub fn run(req: &ConsistencyRequest) -> anyhow::Result<ConsistencyOutcome> {
    let mut texts = Vec::new();
    for p in &req.checkpoints {
        let t = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
        texts.push((p.display().to_string(), "file", t));
    }
    let rt = runtime()?;
    rt.block_on(run_async(req, texts))
}

/// The latest checkpoint a witness cosigned for `origin`; `None` when it holds none (NOT_FOUND).
///
/// # Errors
/// When the witness cannot be reached or answers with another error.
async fn witness_latest(url: &str, origin: &str) -> anyhow::Result<Option<String>> {
    let channel = Endpoint::from_shared(url.to_string())
        .with_context(|| format!("--witness-url {url}"))?
        .connect_timeout(WITNESS_TIMEOUT)
        .timeout(WITNESS_TIMEOUT)
        .connect()
        .await
        .with_context(|| format!("cannot connect to the witness {url}"))?;
    match WitnessClient::new(channel)
        .get_latest(GetLatestRequest { origin: origin.into() })
        .await
    {
        Ok(r) => Ok(Some(r.into_inner().checkpoint)),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
        Err(s) => Err(anyhow!("witness {url}: GetLatest: {} ({:?})", s.message(), s.code())),
    }
}

async fn run_async(
    req: &ConsistencyRequest,
    mut texts: Vec<(String, &'static str, String)>,
) -> anyhow::Result<ConsistencyOutcome> {
    let mut client = match &req.node {
        Some(url) => Some(connect(url).await?),
        None => None,
    };
    let mut faults = Faults::new(req.max_faults);
    let mut out = ConsistencyOutcome {
        node: req.node.clone(),
        trust: String::new(),
        latest: None,
        saved: Vec::new(),
        pairs: Vec::new(),
        faults: Faults::new(0),
    };
    let verifier = match (&req.trusted_key, &mut client) {
        (Some(k), _) => {
            out.trust = format!("trusted node key {} (--trusted-key)", k.to_string_key());
            k.clone()
        }
        (None, None) => anyhow::bail!("without --node, --trusted-key (the log's checkpoint key) is required"),
        (None, Some(client)) => match charter_key(client).await? {
            Ok(k) => {
                out.trust = format!(
                    "node key {} of the charter the node serves as entry 0 (no --trusted-key given)",
                    k.to_string_key()
                );
                k
            }
            Err(why) => {
                out.trust = "none: the node's charter is unusable and no --trusted-key was given".into();
                faults.push(Fault::new(Some(0), Code::BadCharter, why));
                out.faults = faults;
                return Ok(out);
            }
        },
    };
    let witnesses = match &mut client {
        Some(c) if req.witness_keys.is_empty() => enrolled_witnesses(c).await?,
        _ => req.witness_keys.clone(),
    };
    // The log's origin is its checkpoint key's name.
    for url in &req.witness_urls {
        match witness_latest(url, &verifier.name).await? {
            Some(text) => texts.push((url.clone(), "witness", text)),
            None => out.saved.push(Saved {
                file: url.clone(),
                source: "witness",
                size: None,
                root: None,
                status: "no checkpoint".into(),
                witnesses: Vec::new(),
            }),
        }
    }
    let mut saved: Vec<Cp> = Vec::new();
    for (file, source, text) in &texts {
        match open_checkpoint(text, &verifier) {
            Ok(c) => {
                let cp = Cp {
                    label: file.clone(),
                    size: c.checkpoint.size,
                    root: c.checkpoint.root,
                };
                let cosigners = match c.note.verify_cosignatures(&witnesses) {
                    Ok(v) => v.into_iter().map(|w| w.name).collect(),
                    Err(e) => {
                        faults.push(Fault::new(
                            Some(cp.size),
                            Code::CheckpointBadSignature,
                            format!("{file}: a witness cosignature does not verify: {e}"),
                        ));
                        Vec::new()
                    }
                };
                out.saved.push(Saved {
                    file: file.clone(),
                    source,
                    size: Some(cp.size),
                    root: Some(cp.root.to_hex()),
                    status: "consistent".into(),
                    witnesses: cosigners,
                });
                saved.push(cp);
            }
            Err(e) => {
                faults.push(Fault::new(
                    None,
                    Code::CheckpointBadSignature,
                    format!("{file}: does not verify with {}: {e}", verifier.to_string_key()),
                ));
                out.saved.push(Saved {
                    file: file.clone(),
                    source,
                    size: None,
                    root: None,
                    status: "bad signature".into(),
                    witnesses: Vec::new(),
                });
            }
        }
    }
    let Some(mut client) = client else {
        compare_offline(&mut out, &saved, &mut faults);
        out.faults = faults;
        return Ok(out);
    };
    let mark = |out: &mut ConsistencyOutcome, label: &str, status: &str| {
        if let Some(s) = out
            .saved
            .iter_mut()
            .find(|s| s.file == label && s.status == "consistent")
        {
            s.status = status.to_string();
        }
    };
    let latest = match latest_checkpoint(&mut client).await? {
        None => None,
        Some(r) => match open_checkpoint(&r.note, &verifier) {
            Ok(c) => Some(Cp {
                label: "the node's latest checkpoint".into(),
                size: c.checkpoint.size,
                root: c.checkpoint.root,
            }),
            Err(e) => {
                faults.push(Fault::new(
                    Some(r.size),
                    Code::CheckpointBadSignature,
                    format!("the node's latest checkpoint does not verify: {e}"),
                ));
                for s in &saved {
                    mark(&mut out, &s.label, "not compared");
                }
                None
            }
        },
    };
    out.latest = latest.as_ref().map(|c| (c.size, c.root));
    for s in &saved {
        let Some(l) = &latest else {
            if out.saved.iter().any(|x| x.file == s.label && x.status == "consistent") {
                faults.push(
                    Fault::new(Some(s.size), Code::Rollback, "the node serves no checkpoint at all")
                        .evidence(show(s), "no checkpoint"),
                );
                mark(&mut out, &s.label, "ROLLBACK");
            }
            continue;
        };
        if l.size < s.size {
            faults.push(
                Fault::new(
                    Some(s.size),
                    Code::Rollback,
                    format!(
                        "{}: the node's log has shrunk from {} to {} entries",
                        s.label, s.size, l.size
                    ),
                )
                .evidence(show(s), show(l)),
            );
            mark(&mut out, &s.label, "ROLLBACK");
        } else if let Some(why) = check_pair(&mut client, s, l).await? {
            faults.push(
                Fault::new(
                    Some(s.size),
                    Code::Fork,
                    format!("{} is not a prefix of the node's log: {why}", s.label),
                )
                .evidence(show(s), show(l)),
            );
            mark(&mut out, &s.label, "FORK");
        }
    }
    // Pairs. Equal sizes must have equal roots. And a checkpoint off the node's log (a fork) is
    // inconsistent with every saved checkpoint on it that is larger: name the smallest such one,
    // with the node's consistency proof between the two as evidence. (Two checkpoints that are both
    // off the node's log cannot be judged with the node's proofs; each is reported above.)
    let status = |out: &ConsistencyOutcome, label: &str| {
        out.saved
            .iter()
            .find(|x| x.file == label)
            .map(|x| x.status.clone())
            .unwrap_or_default()
    };
    let mut sorted = saved.clone();
    sorted.sort_by_key(|c| c.size);
    for w in sorted.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        if a.size == b.size && a.root != b.root {
            pair(a, b, "equal sizes with different roots".into(), &mut faults);
        }
    }
    for a in sorted.iter().filter(|a| status(&out, &a.label) == "FORK") {
        let on_node = sorted
            .iter()
            .find(|b| b.size > a.size && status(&out, &b.label) == "consistent");
        if let Some(b) = on_node
            && let Some(why) = check_pair(&mut client, a, b).await?
        {
            pair(a, b, why, &mut faults);
        }
    }
    out.faults = faults;
    Ok(out)
}

/// Reports a pair of checkpoints that cannot both be prefixes of one log.
fn pair(a: &Cp, b: &Cp, why: String, faults: &mut Faults) {
    faults.push(
        Fault::new(
            Some(a.size),
            Code::Fork,
            format!("{} and {} cannot both be prefixes of one log: {why}", a.label, b.label),
        )
        .evidence(show(a), show(b)),
    );
}

/// Without a node: every two checkpoints that can be compared without a consistency proof (equal
/// sizes, or an empty tree) must agree; the others are listed as not compared. A checkpoint's
/// status becomes "FORK" when it is in a forked pair, "consistent" when every pair it is in was
/// compared and agreed, and "not compared" otherwise.
fn compare_offline(out: &mut ConsistencyOutcome, saved: &[Cp], faults: &mut Faults) {
    let mut compared_all = vec![true; saved.len()];
    let mut forked = vec![false; saved.len()];
    for i in 0..saved.len() {
        for j in i + 1..saved.len() {
            let (a, b) = if saved[i].size <= saved[j].size {
                (&saved[i], &saved[j])
            } else {
                (&saved[j], &saved[i])
            };
            let why = if a.size == 0 && a.root != empty_root() {
                Some("a size-0 checkpoint must carry the empty-tree root")
            } else if a.size == b.size && a.root != b.root {
                Some("equal sizes with different roots")
            } else {
                None
            };
            let result = if let Some(why) = why {
                pair(a, b, why.into(), faults);
                forked[i] = true;
                forked[j] = true;
                "FORK"
            } else if a.size == b.size || a.size == 0 {
                "consistent"
            } else {
                compared_all[i] = false;
                compared_all[j] = false;
                NOT_COMPARED_NO_NODE
            };
            out.pairs.push(Pair {
                a: saved[i].label.clone(),
                b: saved[j].label.clone(),
                result: result.into(),
            });
        }
    }
    for (k, c) in saved.iter().enumerate() {
        let status = if forked[k] {
            "FORK"
        } else if compared_all[k] && saved.len() > 1 {
            "consistent"
        } else {
            "not compared"
        };
        if let Some(s) = out
            .saved
            .iter_mut()
            .find(|s| s.file == c.label && s.status == "consistent")
        {
            s.status = status.into();
        }
    }
}

/// The JSON document.
#[derive(Debug, Serialize)]
pub struct ConsistencyJson<'a> {
    /// Always "consistency".
    pub command: &'static str,
    /// Node URL; null without a node.
    pub node: Option<&'a str>,
    /// Trust basis.
    pub trust: &'a str,
    /// The node's latest checkpoint.
    pub latest: Option<serde_json::Value>,
    /// Saved checkpoints (files and witness answers).
    pub checkpoints: &'a [Saved],
    /// Offline pairwise comparisons (empty with a node).
    pub pairs: &'a [Pair],
    /// Faults.
    #[serde(flatten)]
    pub faults: FaultsJson<'a>,
    /// True when no fault was found.
    pub ok: bool,
}

/// Builds the JSON document.
pub fn json(o: &ConsistencyOutcome) -> ConsistencyJson<'_> {
    ConsistencyJson {
        command: "consistency",
        node: o.node.as_deref(),
        trust: &o.trust,
        latest: o
            .latest
            .map(|(size, root)| serde_json::json!({"size": size, "root": root.to_hex()})),
        checkpoints: &o.saved,
        pairs: &o.pairs,
        faults: FaultsJson::new(&o.faults),
        ok: o.faults.total() == 0,
    }
}

/// The human summary.
pub fn human(o: &ConsistencyOutcome) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "ledger-verify consistency");
    match &o.node {
        Some(n) => {
            let _ = writeln!(s, "node:         {n}");
        }
        None => {
            let _ = writeln!(s, "node:         none (checkpoints compared with each other only)");
        }
    }
    let _ = writeln!(s, "trust:        {}", o.trust);
    match (o.latest, &o.node) {
        (Some((size, root)), _) => {
            let _ = writeln!(s, "node latest:  size {size}, root {root}");
        }
        (None, Some(_)) => {
            let _ = writeln!(s, "node latest:  none verified");
        }
        (None, None) => {}
    }
    for c in &o.saved {
        let from = if c.source == "witness" { "witness " } else { "" };
        match (c.size, &c.root) {
            (Some(size), Some(root)) => {
                let _ = writeln!(
                    s,
                    "saved:        {from}{}: size {size}, root {root}: {}; cosigned by {} witness(es){}{}",
                    c.file,
                    c.status,
                    c.witnesses.len(),
                    if c.witnesses.is_empty() { "" } else { ": " },
                    c.witnesses.join(", ")
                );
            }
            _ => {
                let _ = writeln!(s, "saved:        {from}{}: {}", c.file, c.status);
            }
        }
    }
    for p in &o.pairs {
        let _ = writeln!(s, "pair:         {} / {}: {}", p.a, p.b, p.result);
    }
    human_faults(&mut s, &o.faults);
    let _ = writeln!(
        s,
        "result:       {}",
        if o.faults.total() == 0 { "OK" } else { "FAULTS FOUND" }
    );
    s
}
