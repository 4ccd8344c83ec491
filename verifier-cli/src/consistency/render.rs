//! The consistency result in words (the human summary) and as the `--json` document. Rendering
//! only.

use super::{ConsistencyOutcome, Pair, Saved};
use crate::report::{FaultsJson, human_faults};
use serde::Serialize;
use std::fmt::Write as _;

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
