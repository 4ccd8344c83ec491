//! `ledger-verify review`: the retrospective review report (requirement R10, 回溯测评).
//!
//! Reads a whole log from any replay source and reports, per cadre or per period, the timeline of
//! records and the flags an inspector looks for, each with its evidence (entry indices) and the
//! accountability chain behind each flagged decision. Integrity (hashes, chain, checkpoints) is
//! `replay`'s job; review re-applies the registry and domain rules so that violations show up here
//! too, and analyses what the records say.
//!
//! [`analysis`] folds the entries into findings and tallies (it decides, and words nothing);
//! [`model`] is the report's data model (the `--json` document); [`text`] words the findings and
//! renders the plain-text report; [`html`] renders the HTML page.

mod analysis;
mod html;
mod model;
mod text;

use crate::prepare::Item;
use crate::source::Source;
pub use html::html;
pub use model::ReviewReport;
pub use text::human;

/// What to review.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// One cadre.
    pub subject: Option<String>,
    /// One draw.
    pub draw: Option<String>,
    /// Period start, UTC micros (inclusive).
    pub from: Option<u64>,
    /// Period end, UTC micros (exclusive).
    pub to: Option<u64>,
}

/// Runs a review over a source.
///
/// # Errors
/// When the source fails, or the temporary ticket index does.
pub fn run(mut source: Box<dyn Source>, filter: Filter) -> anyhow::Result<ReviewReport> {
    let source_name = source.describe();
    let mut a = analysis::Analysis::new(filter.clone());
    source.run(&mut |item| {
        if let Item::Entry(e) = item {
            a.entry(&e.bytes);
        }
        a.failure().is_none()
    })?;
    if let Some(e) = a.failure() {
        anyhow::bail!("the review could not be completed: {e}");
    }
    Ok(report(a.finish(), &filter, source_name))
}

/// The report of what the analysis found.
fn report(found: analysis::Findings, filter: &Filter, source: String) -> ReviewReport {
    ReviewReport {
        source,
        entries: found.entries,
        scope: text::scope(filter),
        timeline: found
            .timeline
            .into_iter()
            .map(|t| model::TimelineEntry {
                index: t.index,
                time: text::timeline_time(t.timestamp_micros),
                kind: t.kind,
                signers: text::names(&t.signers),
                payload: text::timeline_payload(&t.payload),
                timestamp_micros: t.timestamp_micros,
                full_payload: String::from_utf8_lossy(&t.payload).into_owned(),
            })
            .collect(),
        flags: found.findings.into_iter().map(text::flag).collect(),
        organizations: found.organizations,
        micro: found
            .micro
            .into_iter()
            .map(|m| model::MicroRow {
                mean: text::mean(m.sum, m.count),
                subject: m.subject,
                department: m.department,
                count: m.count,
            })
            .collect(),
        elections: found.elections,
        credentials: found.credentials,
    }
}
