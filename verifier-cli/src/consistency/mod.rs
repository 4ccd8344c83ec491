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
//!
//! [`fetch`] asks the node and the witnesses (gRPC); [`compare`] judges what they answered (pure,
//! over checkpoints and proofs in memory); [`render`] words the result.

mod compare;
mod fetch;
mod render;

use crate::fault::{Code, Fault, Faults};
use crate::source::node::{connect, latest_checkpoint, runtime};
use anyhow::Context as _;
use compare::Cp;
use ledger_core::cosignature::CosignatureVerifier;
use ledger_core::hash::Hash;
use ledger_core::note::NoteVerifier;
use ledger_proto::pb::ledger_client::LedgerClient;
pub use render::{human, json};
use serde::Serialize;
use std::path::PathBuf;
use tonic::transport::Channel;

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
    let Some(verifier) = trust(req, client.as_mut(), &mut out, &mut faults).await? else {
        out.faults = faults;
        return Ok(out);
    };
    let witnesses = match &mut client {
        Some(c) if req.witness_keys.is_empty() => fetch::enrolled_witnesses(c).await?,
        _ => req.witness_keys.clone(),
    };
    // The log's origin is its checkpoint key's name.
    for url in &req.witness_urls {
        match fetch::witness_latest(url, &verifier.name).await? {
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
    let saved = compare::open_saved(&texts, &verifier, &witnesses, &mut out.saved, &mut faults);
    match client {
        None => compare::compare_offline(&mut out, &saved, &mut faults),
        Some(mut client) => with_node(&mut client, &verifier, &saved, &mut out, &mut faults).await?,
    }
    out.faults = faults;
    Ok(out)
}

/// The key checkpoints are verified with: `--trusted-key`, or the node key of the charter the
/// node serves. `None` (a fault recorded) when the node's charter is unusable.
async fn trust(
    req: &ConsistencyRequest,
    client: Option<&mut LedgerClient<Channel>>,
    out: &mut ConsistencyOutcome,
    faults: &mut Faults,
) -> anyhow::Result<Option<NoteVerifier>> {
    Ok(match (&req.trusted_key, client) {
        (Some(k), _) => {
            out.trust = format!("trusted node key {} (--trusted-key)", k.to_string_key());
            Some(k.clone())
        }
        (None, None) => anyhow::bail!("without --node, --trusted-key (the log's checkpoint key) is required"),
        (None, Some(client)) => match fetch::charter_key(client).await? {
            Ok(k) => {
                out.trust = format!(
                    "node key {} of the charter the node serves as entry 0 (no --trusted-key given)",
                    k.to_string_key()
                );
                Some(k)
            }
            Err(why) => {
                out.trust = "none: the node's charter is unusable and no --trusted-key was given".into();
                faults.push(Fault::new(Some(0), Code::BadCharter, why));
                None
            }
        },
    })
}

/// With a node: each saved checkpoint against the node's latest, then the saved ones with each
/// other, with the node's consistency proofs.
async fn with_node(
    client: &mut LedgerClient<Channel>,
    verifier: &NoteVerifier,
    saved: &[Cp],
    out: &mut ConsistencyOutcome,
    faults: &mut Faults,
) -> anyhow::Result<()> {
    let answer = latest_checkpoint(client).await?;
    let latest = compare::open_latest(
        answer.as_ref().map(|r| (r.note.as_str(), r.size)),
        verifier,
        out,
        faults,
    );
    out.latest = latest.as_ref().map(|c| (c.size, c.root));
    let pairs = compare::latest_pairs(saved, latest.as_ref());
    let proofs = fetch::proofs(client, &compare::needed(&pairs)).await?;
    compare::against_latest(out, saved, latest.as_ref(), &proofs, faults);
    compare::equal_sizes(saved, faults);
    let pairs = compare::fork_pairs(out, saved);
    let proofs = fetch::proofs(client, &compare::needed(&pairs)).await?;
    compare::judge_fork_pairs(&pairs, &proofs, faults);
    Ok(())
}
