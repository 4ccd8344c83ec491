//! Reports: the human summary on stdout and the machine-readable JSON document.

use crate::fault::{Fault, Faults};
use crate::replay::Outcome;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// Faults printed in full in the human summary (the JSON lists up to `--max-faults`).
const FAULTS_PRINTED: usize = 50;

/// The JSON form of the faults of a run.
#[derive(Debug, Serialize)]
pub struct FaultsJson<'a> {
    /// Listed faults.
    pub faults: &'a [Fault],
    /// Counts by code, including faults not listed.
    pub fault_counts: BTreeMap<&'static str, u64>,
    /// Faults counted but not listed (beyond `--max-faults`).
    pub faults_not_listed: u64,
}

impl<'a> FaultsJson<'a> {
    /// From the collected faults.
    pub fn new(f: &'a Faults) -> Self {
        Self {
            faults: f.list(),
            fault_counts: f.counts().iter().map(|(c, n)| (c.as_str(), *n)).collect(),
            faults_not_listed: f.omitted(),
        }
    }
}

/// Final tree state in the replay report.
#[derive(Debug, Serialize)]
pub struct FinalJson {
    /// Size of the recomputed tree.
    pub size: u64,
    /// Its root, hex.
    pub root: String,
    /// False when entries were missing, so the recomputed tree is not the log's.
    pub complete: bool,
}

/// The `replay --json` document.
#[derive(Debug, Serialize)]
pub struct ReplayJson<'a> {
    /// Always "replay".
    pub command: &'static str,
    /// The source.
    pub source: &'a str,
    /// What was trusted.
    pub trust: &'a str,
    /// The charter's origin.
    pub origin: Option<&'a str>,
    /// The charter's node key (verifier key string).
    pub node_key: Option<&'a str>,
    /// Entries processed.
    pub entries: u64,
    /// Entries by kind.
    pub counts_by_kind: &'a BTreeMap<String, u64>,
    /// Final tree.
    #[serde(rename = "final")]
    pub final_: FinalJson,
    /// Checkpoints verified.
    pub checkpoints_checked: u64,
    /// Checkpoints that could not be verified.
    pub checkpoints_unchecked: u64,
    /// Entries after a chain break whose links disagree for the same reason.
    pub links_after_break: u64,
    /// High-water marks the log holds: file and checkpoint size (a data directory's marks).
    pub high_water: Vec<HighWaterJson<'a>>,
    /// Faults.
    #[serde(flatten)]
    pub faults: FaultsJson<'a>,
    /// Seconds the replay took.
    pub elapsed_seconds: f64,
    /// True when no fault was found.
    pub ok: bool,
}

/// A high-water mark the log holds.
#[derive(Debug, Serialize)]
pub struct HighWaterJson<'a> {
    /// The mark file.
    pub file: &'a str,
    /// Its checkpoint's size.
    pub size: u64,
}

/// Builds the JSON document of a replay.
pub fn replay_json<'a>(source: &'a str, o: &'a Outcome, elapsed: f64) -> ReplayJson<'a> {
    ReplayJson {
        command: "replay",
        source,
        trust: &o.trust,
        origin: o.origin.as_deref(),
        node_key: o.node_key.as_deref(),
        entries: o.entries,
        counts_by_kind: &o.counts_by_kind,
        final_: FinalJson {
            size: o.final_size,
            root: o.final_root.to_hex(),
            complete: o.tree_complete,
        },
        checkpoints_checked: o.checkpoints_checked,
        checkpoints_unchecked: o.checkpoints_unchecked,
        links_after_break: o.links_after_break,
        high_water: o
            .high_water
            .iter()
            .map(|(file, size)| HighWaterJson { file, size: *size })
            .collect(),
        faults: FaultsJson::new(&o.faults),
        elapsed_seconds: elapsed,
        ok: o.faults.total() == 0,
    }
}

/// Writes a JSON document.
///
/// # Errors
/// When the file cannot be written.
pub fn write_json<T: Serialize>(path: &Path, doc: &T) -> anyhow::Result<()> {
    let mut s = serde_json::to_string_pretty(doc)?;
    s.push('\n');
    std::fs::write(path, s).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

/// The fault section of a human summary.
pub fn human_faults(out: &mut String, f: &Faults) {
    if f.total() == 0 {
        let _ = writeln!(out, "faults:       none");
        return;
    }
    let counts: Vec<String> = f.counts().iter().map(|(c, n)| format!("{c} {n}")).collect();
    let _ = writeln!(out, "faults:       {} ({})", f.total(), counts.join(", "));
    for x in f.list().iter().take(FAULTS_PRINTED) {
        let at = x.index.map_or_else(|| "-".to_string(), |i| i.to_string());
        let _ = writeln!(out, "  [{at}] {}: {}", x.code, x.message);
        if let (Some(e), Some(fd)) = (&x.expected, &x.found) {
            let _ = writeln!(out, "        expected {e}");
            let _ = writeln!(out, "        found    {fd}");
        }
    }
    let more = f.total().saturating_sub(f.list().len().min(FAULTS_PRINTED) as u64);
    if more > 0 {
        let _ = writeln!(
            out,
            "  ... and {more} more (all counted above; --json lists up to --max-faults)"
        );
    }
}

/// The human summary of a replay.
pub fn replay_human(source: &str, o: &Outcome, elapsed: f64) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "ledger-verify replay");
    let _ = writeln!(s, "source:       {source}");
    let _ = writeln!(s, "trust:        {}", o.trust);
    if let (Some(origin), Some(k)) = (&o.origin, &o.node_key) {
        let _ = writeln!(s, "log:          origin {origin}, node key {k}");
    }
    let kinds: Vec<String> = o.counts_by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let _ = writeln!(s, "entries:      {} ({})", o.entries, kinds.join(", "));
    let _ = writeln!(
        s,
        "final:        size {}, root {}{}",
        o.final_size,
        o.final_root,
        if o.tree_complete {
            ""
        } else {
            " (entries missing: not the log's root)"
        }
    );
    let _ = writeln!(
        s,
        "checkpoints:  {} checked, {} not checked",
        o.checkpoints_checked, o.checkpoints_unchecked
    );
    for (file, size) in &o.high_water {
        let _ = writeln!(s, "high-water:   {file}: checkpoint of {size} entries, held by the log");
    }
    if o.links_after_break > 0 {
        let _ = writeln!(
            s,
            "chain:        {} later prev_root links disagree with the recomputed tree after the break",
            o.links_after_break
        );
    }
    let rate = if elapsed > 0.0 { o.entries as f64 / elapsed } else { 0.0 };
    let _ = writeln!(s, "time:         {elapsed:.2} s ({rate:.0} entries/s)");
    human_faults(&mut s, &o.faults);
    let _ = writeln!(
        s,
        "result:       {}",
        if o.faults.total() == 0 { "OK" } else { "FAULTS FOUND" }
    );
    s
}
