//! `ledger-verify bundle export` and `bundle verify`: court bundles (`docs/bundle.md`).
//!
//! Export talks to a node; verify needs no network at all and judges the file with
//! `ledger_core::bundle::verify_bundle`, so a court can run it on an offline machine.

use anyhow::{Context as _, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ledger_core::bundle::{
    BUNDLE_FORMAT, Bundle, BundleConsistency, BundleEntry, BundleVerdict, MAX_BUNDLE_BYTES, tlog_proof, verify_bundle,
};
use ledger_core::checkpoint::{Checkpoint, open_checkpoint};
use ledger_core::entry::Entry;
use ledger_core::hash::Hash;
use ledger_core::note::{Note, NoteVerifier};
use ledger_core::registry::Registry;
use ledger_proto::pb;
use ledger_proto::pb::ledger_client::LedgerClient;
use std::fmt::Write as _;
use std::path::Path;
use tonic::transport::Channel;

/// What to put in a bundle.
pub struct ExportRequest<'a> {
    /// Node URL.
    pub node: &'a str,
    /// Explicit indices.
    pub indices: &'a [u64],
    /// All records about a subject.
    pub subject: Option<&'a str>,
    /// All records of a draw or election.
    pub draw: Option<&'a str>,
    /// Earlier checkpoint the court holds.
    pub from_checkpoint: Option<&'a Path>,
    /// Pinned node key.
    pub trusted: Option<&'a NoteVerifier>,
}

async fn all_indices(c: &mut LedgerClient<Channel>, mut q: pb::QueryRequest) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    q.limit = 1000;
    loop {
        let r = c.query(q.clone()).await?.into_inner();
        out.extend(r.indices);
        if r.next_page_start == 0 {
            return Ok(out);
        }
        q.page_start = r.next_page_start;
    }
}

async fn bundle_entry(c: &mut LedgerClient<Channel>, index: u64, size: u64) -> Result<(BundleEntry, Entry)> {
    let e = c
        .get_entry(pb::GetEntryRequest { index })
        .await
        .with_context(|| format!("entry {index}"))?
        .into_inner();
    let entry = ledger_proto::entry_from_wire(&e)?;
    let p = c
        .get_inclusion_proof(pb::GetInclusionProofRequest {
            target: Some(pb::get_inclusion_proof_request::Target::Index(index)),
            tree_size: size,
        })
        .await
        .with_context(|| format!("inclusion proof of {index}"))?
        .into_inner();
    let proof = p
        .hashes
        .iter()
        .map(|h| Hash::from_slice(h))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((
        BundleEntry {
            index,
            leaf: B64.encode(&e.leaf),
            inclusion_proof: proof,
            tlog_proof: String::new(),
        },
        entry,
    ))
}

/// Builds a bundle from a node.
///
/// # Errors
/// When the node cannot be reached, refuses, or serves something that does not verify.
pub async fn export(req: ExportRequest<'_>) -> Result<Bundle> {
    let mut c = LedgerClient::connect(req.node.to_string())
        .await
        .with_context(|| format!("connecting to {}", req.node))?
        .max_decoding_message_size(64 << 20);
    let latest = latest_checkpoint(&mut c).await?;
    let key = charter_key(&mut c, req.trusted).await?;
    let cp = match open_checkpoint(&latest.note, &key) {
        Ok(c) => c.checkpoint,
        // After a `node.rotate` the checkpoint is a later node key's: `verify_bundle` below
        // follows the chain of keys from the charter's and must find it signed by the right one.
        Err(e) => ledger_core::note::Note::parse(&latest.note)
            .ok()
            .and_then(|n| ledger_core::checkpoint::Checkpoint::from_body(&n.text).ok())
            .with_context(|| format!("the node's checkpoint does not verify: {e}"))?,
    };
    let targets = target_indices(&mut c, &req, cp.size).await?;
    let mut registry_entries = Vec::new();
    for i in registry_indices(&mut c, cp.size).await? {
        registry_entries.push(bundle_entry(&mut c, i, cp.size).await?.0);
    }
    let mut records = Vec::new();
    for i in &targets {
        let (mut be, _) = bundle_entry(&mut c, *i, cp.size).await?;
        be.tlog_proof = tlog_proof(*i, &be.inclusion_proof, &latest.note);
        records.push(be);
    }
    let consistency = match req.from_checkpoint {
        None => None,
        Some(p) => Some(consistency_from(&mut c, p, cp.size).await?),
    };
    let mut b = Bundle {
        format: BUNDLE_FORMAT.into(),
        origin: cp.origin.clone(),
        node_key: key.to_string_key(),
        checkpoint: latest.note.clone(),
        records,
        registry: registry_entries,
        consistency,
        summary: String::new(),
        timestamps: Vec::new(),
    };
    // The summary is what the verifier itself concludes, so it is readable and honest.
    let verdict = verify_bundle(&b, Some(&key));
    if let Some(p) = verdict
        .problems
        .iter()
        .find(|p| p.starts_with("CHECKPOINT_BAD_SIGNATURE"))
    {
        bail!("the node's checkpoint does not verify: {p}");
    }
    b.summary = render(&verdict);
    Ok(b)
}

/// The latest witnessed checkpoint (enough enrolled witness cosignatures for the charter's
/// quorum); a node without one serves its latest and the verdict says it is not witnessed.
async fn latest_checkpoint(c: &mut LedgerClient<Channel>) -> Result<pb::CheckpointResponse> {
    Ok(
        match c.get_witnessed_checkpoint(pb::GetWitnessedCheckpointRequest {}).await {
            Ok(r) => r
                .into_inner()
                .checkpoint
                .context("the node's witnessed checkpoint answer is empty")?,
            Err(s) if s.code() == tonic::Code::NotFound || s.code() == tonic::Code::Unimplemented => c
                .get_checkpoint(pb::GetCheckpointRequest { size: None })
                .await?
                .into_inner(),
            Err(s) => return Err(s.into()),
        },
    )
}

/// The node key of the charter the node serves as entry 0, which must be the trusted key when
/// one is given.
async fn charter_key(c: &mut LedgerClient<Channel>, trusted: Option<&NoteVerifier>) -> Result<NoteVerifier> {
    let e0 = ledger_proto::entry_from_wire(&c.get_entry(pb::GetEntryRequest { index: 0 }).await?.into_inner())?;
    let charter = Registry::genesis(&e0).context("entry 0 is not a valid charter")?;
    let key = NoteVerifier::new(&charter.charter.origin, charter.node_key)?;
    if let Some(t) = trusted
        && *t != key
    {
        bail!(
            "the node's charter key {} is not the trusted key {}",
            key.to_string_key(),
            t.to_string_key()
        );
    }
    Ok(key)
}

/// The records asked for (indices, a subject's, a draw's), below `size`, sorted and distinct.
async fn target_indices(c: &mut LedgerClient<Channel>, req: &ExportRequest<'_>, size: u64) -> Result<Vec<u64>> {
    let mut targets: Vec<u64> = req.indices.to_vec();
    if let Some(s) = req.subject {
        let q = pb::QueryRequest {
            subject: s.into(),
            ..Default::default()
        };
        targets.extend(all_indices(c, q).await?);
    }
    if let Some(d) = req.draw {
        let q = pb::QueryRequest {
            draw_id: d.into(),
            ..Default::default()
        };
        targets.extend(all_indices(c, q).await?);
    }
    targets.retain(|i| *i < size);
    targets.sort_unstable();
    targets.dedup();
    if targets.is_empty() {
        bail!("no records match (the latest checkpoint covers {size} entries)");
    }
    Ok(targets)
}

/// The charter and every key record below `size`, in log order.
async fn registry_indices(c: &mut LedgerClient<Channel>, size: u64) -> Result<Vec<u64>> {
    let mut reg_idx = vec![0u64];
    for k in [
        "key.enroll",
        "key.rotate",
        "key.revoke",
        "node.rotate",
        "node.compromise",
    ] {
        let q = pb::QueryRequest {
            kind: k.into(),
            ..Default::default()
        };
        reg_idx.extend(all_indices(c, q).await?);
    }
    reg_idx.retain(|i| *i < size);
    reg_idx.sort_unstable();
    Ok(reg_idx)
}

/// The node's consistency proof from the court's earlier checkpoint (file `p`) to `size`.
async fn consistency_from(c: &mut LedgerClient<Channel>, p: &Path, size: u64) -> Result<BundleConsistency> {
    let note = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    let old: Checkpoint = Checkpoint::from_body(&Note::parse(&note)?.text)?;
    let r = c
        .get_consistency_proof(pb::GetConsistencyProofRequest {
            old_size: old.size,
            new_size: size,
        })
        .await?
        .into_inner();
    let proof = r
        .hashes
        .iter()
        .map(|h| Hash::from_slice(h))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(BundleConsistency {
        from_checkpoint: note,
        proof,
    })
}

/// A verdict a non-engineer can read.
pub fn render(v: &BundleVerdict) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Ledger {:?}: checkpoint of {} records, root {}",
        v.origin, v.checkpoint_size, v.checkpoint_root
    );
    let _ = writeln!(s, "Trust: {}", v.trust);
    witnesses_text(&mut s, v);
    for r in &v.records {
        record_text(&mut s, r);
    }
    match &v.consistency {
        None => {}
        Some(Ok(old)) => {
            let _ = writeln!(
                s,
                "\nThe court's earlier checkpoint (size {old}) is a prefix of this one: history was not rewritten."
            );
        }
        Some(Err(e)) => {
            let _ = writeln!(s, "\nCONSISTENCY FAILED: {e}");
        }
    }
    for p in &v.problems {
        let _ = writeln!(s, "PROBLEM: {p}");
    }
    let _ = writeln!(
        s,
        "\nVerdict: {}",
        if v.ok() {
            "every record above is included, unaltered, in the signed log and was signed by keys authorized at the time."
        } else {
            "the bundle does NOT verify; see the problems above."
        }
    );
    s
}

/// The witnesses that cosigned the checkpoint, or how many further signatures it carries.
fn witnesses_text(s: &mut String, v: &BundleVerdict) {
    if !v.witnesses.is_empty() || v.witness_quorum > 0 {
        let names: Vec<String> = v
            .witnesses
            .iter()
            .map(|w| {
                format!(
                    "{} (at {})",
                    w.name,
                    ledger_core::time::rfc3339_micros(w.timestamp * 1_000_000)
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "Witnesses: {} independent witness(es) enrolled in the registry cosigned this checkpoint (the charter asks for {}){}{}",
            v.witnesses.len(),
            v.witness_quorum,
            if names.is_empty() { "" } else { ": " },
            names.join(", ")
        );
    } else if v.other_signatures > 0 {
        let _ = writeln!(
            s,
            "The checkpoint carries {} further signature(s) (witness cosignatures).",
            v.other_signatures
        );
    }
}

/// One record's verdict: status, time, signers, what it says and its problems.
fn record_text(s: &mut String, r: &ledger_core::bundle::RecordVerdict) {
    let status = if r.problems.is_empty() {
        "VERIFIED"
    } else {
        "NOT VERIFIED"
    };
    let _ = writeln!(s, "\nRecord #{} — {} — {}", r.index, r.kind, status);
    let _ = writeln!(
        s,
        "  recorded at {}",
        ledger_core::time::rfc3339_micros(r.timestamp_micros)
    );
    for g in &r.signers {
        let org = if g.organization.is_empty() {
            String::new()
        } else {
            format!(", {}", g.organization)
        };
        let _ = writeln!(
            s,
            "  signed by {} [{}{}] key {}",
            g.name,
            g.roles.join(", "),
            org,
            g.keyid.chars().take(16).collect::<String>()
        );
    }
    let _ = writeln!(s, "  says: {}", r.payload.chars().take(600).collect::<String>());
    for p in &r.problems {
        let _ = writeln!(s, "  PROBLEM: {p}");
    }
}

/// Writes a bundle in its canonical form: pretty-printed JSON (two-space indent) and a final newline.
///
/// # Errors
/// When the file cannot be written.
pub fn write(path: &Path, b: &Bundle) -> Result<()> {
    std::fs::write(path, canonical(b)?).with_context(|| format!("writing {}", path.display()))
}

fn canonical(b: &Bundle) -> Result<String> {
    Ok(serde_json::to_string_pretty(b)? + "\n")
}

/// Reads and verifies a bundle file offline.
///
/// # Errors
/// When the file cannot be read or is not a bundle (the verdict itself is returned, not an error).
pub fn verify_file(path: &Path, trusted: Option<&NoteVerifier>) -> Result<BundleVerdict> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.len() as usize > MAX_BUNDLE_BYTES {
        bail!(
            "{} is {} bytes; bundles are limited to {MAX_BUNDLE_BYTES}",
            path.display(),
            meta.len()
        );
    }
    let text = std::fs::read_to_string(path)?;
    verify_text(&text, trusted).with_context(|| format!("{} is not a ledger bundle", path.display()))
}

/// Reads a bundle file (size-limited, not judged).
///
/// # Errors
/// When the file cannot be read or is not a bundle.
pub fn load(path: &Path) -> Result<Bundle> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.len() as usize > MAX_BUNDLE_BYTES {
        bail!("{} is larger than {MAX_BUNDLE_BYTES} bytes", path.display());
    }
    let text = std::fs::read_to_string(path)?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a ledger bundle", path.display()))
}

/// Verifies the text of a bundle file (what [`verify_file`] does after reading it; the fuzz
/// harness in `fuzz/` calls this directly).
///
/// # Errors
/// When the text is not a bundle (the verdict itself is returned, not an error).
pub fn verify_text(text: &str, trusted: Option<&NoteVerifier>) -> Result<BundleVerdict> {
    let b: Bundle = serde_json::from_str(text)?;
    let mut v = verify_bundle(&b, trusted);
    // Nothing in the file may differ from what was exported: the layout must be canonical and the
    // summary must be exactly what the verifier itself concludes from the bundle.
    if canonical(&b)? != text {
        v.problems
            .push("the file is not in the canonical form ledger-verify writes (it was edited)".into());
    }
    let own_key = NoteVerifier::parse(&b.node_key).ok();
    if render(&verify_bundle(&b, own_key.as_ref())) != b.summary {
        v.problems
            .push("the summary does not match what the bundle proves (it was edited)".into());
    }
    Ok(v)
}
