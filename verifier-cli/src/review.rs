//! `ledger-verify review`: the retrospective review report (requirement R10, 回溯测评).
//!
//! Reads a whole log from any replay source and reports, per cadre or per period, the timeline of
//! records and the flags an inspector looks for, each with its evidence (entry indices) and the
//! accountability chain behind each flagged decision. Integrity (hashes, chain, checkpoints) is
//! `replay`'s job; review re-applies the registry and domain rules so that violations show up here
//! too, and analyses what the records say.

use crate::prepare::Item;
use crate::source::Source;
use ledger_core::domain::{DrawPurpose, Record, check_record};
use ledger_core::entry::Entry;
use ledger_core::hash::leaf_hash;
use ledger_core::registry::{Registry, envelope_kind};
use ledger_core::rules::DomainState;
use ledger_core::state::{LedgerState, StepError};
use ledger_core::time::rfc3339_micros;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

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

/// One flag.
#[derive(Debug, Clone, Serialize)]
pub struct Flag {
    /// Code, e.g. `PROMOTED_WITH_UNVERIFIED_COMPLAINTS`.
    pub code: String,
    /// Entry the flag is about.
    pub index: u64,
    /// Subject concerned, when there is one.
    pub subject: String,
    /// What happened.
    pub message: String,
    /// Indices of the evidence.
    pub evidence: Vec<u64>,
    /// Who is behind it: role → signer names.
    pub accountability: BTreeMap<String, Vec<String>>,
}

/// One line of a timeline.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineEntry {
    /// Index.
    pub index: u64,
    /// Time (RFC 3339).
    pub time: String,
    /// Kind.
    pub kind: String,
    /// Signer names.
    pub signers: Vec<String>,
    /// Payload text.
    pub payload: String,
}

/// Complaint handling per organization.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OrgStats {
    /// Complaints received.
    pub complaints: u64,
    /// Complaints with a verification.
    pub verified: u64,
    /// Complaints about a cadre who was then the subject of a decision.
    pub before_decision: u64,
    /// …of which verified before that decision.
    pub verified_before_decision: u64,
    /// Redraws.
    pub redraws: u64,
}

/// The report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReviewReport {
    /// The source.
    pub source: String,
    /// Entries read.
    pub entries: u64,
    /// Filter in words.
    pub scope: String,
    /// Timeline of the records in scope (domain records; not micro-evaluations).
    pub timeline: Vec<TimelineEntry>,
    /// Flags.
    pub flags: Vec<Flag>,
    /// Complaint verification by organization.
    pub organizations: BTreeMap<String, OrgStats>,
    /// Citizen micro-evaluations per subject and department for services in the period (UTC days).
    pub micro: Vec<MicroRow>,
    /// Election tallies in scope, each recomputed from the counted ballots on replay (a tally
    /// that differs is flagged instead, and not listed here).
    pub elections: Vec<ElectionRow>,
    /// Credential issuance per election: requested personally vs. on the registrar's word.
    pub credentials: Vec<CredentialRow>,
}

/// One election's tally as the verifier recomputed it.
#[derive(Debug, Clone, Serialize)]
pub struct ElectionRow {
    /// Index of the `tally` entry.
    pub index: u64,
    /// Election.
    pub election_id: String,
    /// Ballots counted.
    pub ballot_count: u64,
    /// Per subject: the five dimensions' sums and the weighted score.
    pub results: Vec<ledger_core::election::SubjectResult>,
}

/// How the credentials of one election were issued.
#[derive(Debug, Clone, Serialize)]
pub struct CredentialRow {
    /// Election.
    pub election_id: String,
    /// Drawn evaluators who could receive a credential.
    pub eligible: u64,
    /// Of those, the ones with a key in the draw's pool (must request personally).
    pub with_key: u64,
    /// Credentials issued.
    pub issued: u64,
    /// Issued on the evaluator's own signed request.
    pub requested: u64,
    /// Issued on the registrar's word alone (the evaluator has no key in the pool).
    pub registrar_word: u64,
}

/// Citizen ratings of one subject in one department.
#[derive(Debug, Clone, Serialize)]
pub struct MicroRow {
    /// Subject (cadre).
    pub subject: String,
    /// Department.
    pub department: String,
    /// Ratings.
    pub count: u64,
    /// Mean rating (1–5), two decimals.
    pub mean: String,
}

struct Checkable {
    index: u64,
    subject: String,
    organization: String,
    is_complaint: bool,
    verified_at: Option<u64>,
}

struct DrawInfo {
    index: u64,
    purpose: DrawPurpose,
    subjects: Vec<String>,
    signers: Vec<String>,
    deadline: u64,
    result: Option<u64>,
    /// Evaluators the result selected or assigned.
    selected: BTreeSet<String>,
    /// The node's void: index and the parties that did not reveal.
    void: Option<(u64, Vec<String>)>,
    /// Party name → signer names of the committed reveal keys.
    parties: BTreeMap<String, String>,
}

struct DecisionInfo {
    index: u64,
    subject: String,
    nomination_id: String,
    evaluation_ref: String,
    evaluators: Vec<String>,
    signers: Vec<String>,
}

/// Streams a log and builds the report.
#[derive(Default)]
pub struct Review {
    filter: Filter,
    /// Registry and domain state, folded with the node's own step (`ledger_core::state`).
    state: Option<LedgerState>,
    /// Domain state alone, for a log without a valid charter (no registry to judge signers by).
    domain_only: DomainState,
    checkable: BTreeMap<String, Checkable>,
    nominations: BTreeMap<String, (u64, Vec<String>, String)>,
    draws: BTreeMap<String, DrawInfo>,
    decisions: Vec<DecisionInfo>,
    cancelled: BTreeSet<u64>,
    last_ts: u64,
    /// Incremental tree, so that draws learn the root at their committed size.
    tree: ledger_core::compact::CompactTree,
    report: ReviewReport,
}

fn subject_of(r: &Record) -> Vec<String> {
    match r {
        Record::Nomination(x) => vec![x.subject.clone()],
        Record::DrawCommit(x) => x.subjects.clone(),
        Record::DossierFact(x) => vec![x.subject.clone()],
        Record::Complaint(x) => vec![x.subject.clone()],
        Record::Decision(x) => vec![x.subject.clone()],
        Record::ElectionOpen(x) => x.subjects.clone(),
        Record::Tally(x) => x.results.iter().map(|r| r.subject.clone()).collect(),
        _ => vec![],
    }
}

impl Review {
    /// A review with a filter.
    pub fn new(filter: Filter) -> Self {
        Self {
            filter,
            ..Default::default()
        }
    }

    fn names(&self, e: &Entry) -> Vec<String> {
        e.envelope
            .signatures
            .iter()
            .map(|s| {
                self.registry().and_then(|r| r.holder(&s.keyid)).map_or_else(
                    || format!("unknown key {}", s.keyid.chars().take(12).collect::<String>()),
                    String::from,
                )
            })
            .collect()
    }

    fn registry(&self) -> Option<&Registry> {
        self.state.as_ref().map(|s| &s.registry)
    }

    fn domain(&self) -> &DomainState {
        self.state.as_ref().map_or(&self.domain_only, |s| &s.domain)
    }

    fn in_period(&self, ts: u64) -> bool {
        self.filter.from.is_none_or(|f| ts >= f) && self.filter.to.is_none_or(|t| ts < t)
    }

    fn flag(&mut self, code: &str, index: u64, subject: &str, message: String, evidence: Vec<u64>) {
        self.report.flags.push(Flag {
            code: code.into(),
            index,
            subject: subject.into(),
            message,
            evidence,
            accountability: BTreeMap::new(),
        });
    }

    /// Tells the state that the log now has `size` entries (after the entry's step, as the node does).
    fn observe(&mut self, size: u64) {
        let root = self.tree.root();
        match self.state.as_mut() {
            Some(st) => st.observe_size(size, &root),
            None => self.domain_only.observe_size(size, &root),
        }
    }

    /// Feeds one entry (in log order).
    pub fn entry(&mut self, bytes: &[u8]) {
        self.report.entries += 1;
        let lh = leaf_hash(bytes);
        let size = self.tree.size();
        self.tree.append(lh);
        let Ok(e) = Entry::decode(bytes) else {
            self.observe(size + 1);
            return;
        };
        let index = e.index;
        self.last_ts = self.last_ts.max(e.timestamp_micros);
        if index == 0 {
            self.state = LedgerState::genesis(&e).ok();
            self.observe(size + 1);
            return;
        }
        let kind = envelope_kind(&e.envelope).map(str::to_string);
        let step = match (self.state.as_mut(), &kind) {
            // The node's step: signatures, registry, record, domain rules; applied when it passes.
            (Some(st), _) => st
                .verify_entry(&e)
                .map_err(StepError::from)
                .and_then(|(_, signers)| st.fold(&e, &lh, &signers)),
            // No charter: the domain rules alone, with the key ids the envelope names.
            (None, Err(_)) => {
                self.observe(size + 1);
                return;
            }
            (None, Ok(kind)) => {
                let signer_ids: Vec<String> = e.envelope.signatures.iter().map(|s| s.keyid.clone()).collect();
                check_record(kind, &e.envelope.payload)
                    .map_err(StepError::Record)
                    .and_then(|record| {
                        self.domain_only
                            .check_at(index, e.timestamp_micros, &record, &signer_ids)?;
                        self.domain_only.apply_at(index, &lh, &record, &signer_ids);
                        Ok(record)
                    })
            }
        };
        self.observe(size + 1);
        let record = match step {
            Ok(record) => record,
            Err(StepError::Registry(err)) => {
                self.flag("REGISTRY_VIOLATION", index, "", err.to_string(), vec![index]);
                return;
            }
            Err(StepError::Record(_)) => return,
            Err(StepError::Rule(err)) => {
                let Some(record) = kind
                    .as_deref()
                    .ok()
                    .and_then(|k| check_record(k, &e.envelope.payload).ok())
                else {
                    return;
                };
                // A record that fails a rule is flagged and feeds none of the analysis below (a
                // replayed record must not plant flags against honest officials).
                let subj = subject_of(&record).into_iter().next().unwrap_or_default();
                self.flag(err.code.as_str(), index, &subj, err.detail, vec![index]);
                return;
            }
        };
        let Ok(kind) = kind else { return };
        let names = self.names(&e);
        let subjects = subject_of(&record);
        let in_scope = self.in_period(e.timestamp_micros)
            && self.filter.subject.as_ref().is_none_or(|s| subjects.contains(s))
            && self
                .filter
                .draw
                .as_ref()
                .is_none_or(|d| String::from_utf8_lossy(&e.envelope.payload).contains(&format!("\"{d}\"")));
        // Micro-evaluations and ballots are many and anonymous: aggregated, not listed.
        let domain_kind =
            !matches!(record, Record::Other | Record::MicroEvaluation(_) | Record::Ballot(_)) || kind == "note";
        if in_scope
            && domain_kind
            && (self.filter.subject.is_some() || self.filter.draw.is_some() || !subjects.is_empty() || kind != "note")
        {
            self.report.timeline.push(TimelineEntry {
                index,
                time: rfc3339_micros(e.timestamp_micros),
                kind: kind.clone(),
                signers: names.clone(),
                payload: String::from_utf8_lossy(&e.envelope.payload).chars().take(300).collect(),
            });
        }
        match record {
            Record::Complaint(c) => {
                self.checkable.insert(
                    c.complaint_id,
                    Checkable {
                        index,
                        subject: c.subject,
                        organization: c.organization,
                        is_complaint: true,
                        verified_at: None,
                    },
                );
            }
            Record::DossierFact(f) => {
                self.checkable.insert(
                    f.fact_id,
                    Checkable {
                        index,
                        subject: f.subject,
                        organization: f.source,
                        is_complaint: false,
                        verified_at: None,
                    },
                );
            }
            Record::Verification(v) => {
                if let Some(c) = self.checkable.get_mut(&v.target_id) {
                    c.verified_at.get_or_insert(index);
                }
            }
            Record::Nomination(n) => {
                self.nominations.insert(n.nomination_id, (index, names, n.organization));
            }
            Record::DrawCommit(c) => {
                let org = self
                    .registry()
                    .and_then(|r| e.envelope.signatures.first().and_then(|s| r.keys.get(&s.keyid)))
                    .map(|k| k.scope.organization.clone())
                    .unwrap_or_default();
                self.pool_skew(index, &c);
                // A second draw for the same purpose and subject, the first not cancelled: a redraw.
                let earlier: Vec<u64> = self
                    .draws
                    .values()
                    .filter(|d| d.purpose == c.purpose && d.subjects.iter().any(|s| c.subjects.contains(s)))
                    .filter(|d| !self.cancelled.contains(&d.index))
                    .map(|d| d.index)
                    .collect();
                if !earlier.is_empty() {
                    let subj = c.subjects.first().cloned().unwrap_or_default();
                    let mut ev = earlier.clone();
                    ev.push(index);
                    self.flag(
                        "REDRAW",
                        index,
                        &subj,
                        format!(
                            "draw {} repeats an earlier, uncancelled draw for the same purpose and subject",
                            c.draw_id
                        ),
                        ev,
                    );
                    if let Some(last) = self.report.flags.last_mut() {
                        last.accountability.insert("registrar".into(), names.clone());
                    }
                    self.report.organizations.entry(org).or_default().redraws += 1;
                }
                self.draws.insert(
                    c.draw_id,
                    DrawInfo {
                        index,
                        purpose: c.purpose,
                        subjects: c.subjects,
                        signers: names,
                        deadline: c.reveal_deadline_micros,
                        result: None,
                        selected: BTreeSet::new(),
                        void: None,
                        parties: c
                            .parties
                            .iter()
                            .map(|p| {
                                let who = self.registry().and_then(|r| r.holder(&p.keyid)).unwrap_or("?");
                                (p.name.clone(), who.to_string())
                            })
                            .collect(),
                    },
                );
            }
            Record::DrawResult(r) => {
                if let Some(d) = self.draws.get_mut(&r.draw_id) {
                    d.result = Some(index);
                    d.selected = r
                        .selection
                        .into_iter()
                        .flat_map(|s| s.selected)
                        .chain(r.assignment.into_iter().flat_map(|a| a.evaluators))
                        .collect();
                }
            }
            Record::DrawVoid(v) => {
                if let Some(d) = self.draws.get_mut(&v.draw_id) {
                    d.void = Some((index, v.missing));
                }
            }
            Record::Decision(d) => self.decisions.push(DecisionInfo {
                index,
                subject: d.subject,
                nomination_id: d.nomination_id,
                evaluation_ref: d.evaluation_ref,
                evaluators: d.evaluators,
                signers: names,
            }),
            Record::Cancellation(c) => {
                self.cancelled.insert(c.target_index);
            }
            Record::Accountability(a) => {
                if let Some(o) = &a.opening {
                    let mut ev: Vec<u64> = self
                        .checkable
                        .get(&o.complaint_id)
                        .map(|c| c.index)
                        .into_iter()
                        .collect();
                    ev.extend(self.checkable.get(&o.complaint_id).and_then(|c| c.verified_at));
                    ev.push(index);
                    let subj = self
                        .checkable
                        .get(&o.complaint_id)
                        .map(|c| c.subject.clone())
                        .unwrap_or_default();
                    self.flag(
                        "MALICIOUS_FALSE_REPORT",
                        index,
                        &subj,
                        format!(
                            "complaint {} was found a malicious false report; the court's opening names its \
                             complainant {:?} (finding: {})",
                            o.complaint_id, o.opening.identity, a.finding
                        ),
                        ev,
                    );
                    if let Some(last) = self.report.flags.last_mut() {
                        last.accountability
                            .insert("complainant (unsealed)".into(), vec![o.opening.identity.clone()]);
                        last.accountability.insert("finding signed by".into(), names.clone());
                    }
                }
            }
            Record::Tally(t) if in_scope => self.report.elections.push(ElectionRow {
                index,
                election_id: t.election_id,
                ballot_count: t.ballot_count,
                results: t.results,
            }),
            _ => {}
        }
    }

    fn pool_skew(&mut self, index: u64, c: &ledger_core::domain::DrawCommit) {
        if c.pool.len() < 4 {
            return;
        }
        let mut by: BTreeMap<&str, usize> = BTreeMap::new();
        for m in c.pool.iter().filter(|m| !m.affiliation.is_empty()) {
            *by.entry(m.affiliation.as_str()).or_default() += 1;
        }
        if let Some((aff, n)) = by.iter().max_by_key(|(_, n)| **n)
            && *n * 2 > c.pool.len()
        {
            let msg = format!(
                "draw {}: {n} of {} pool members share the affiliation {aff:?} (more than half)",
                c.draw_id,
                c.pool.len()
            );
            let subj = c.subjects.first().cloned().unwrap_or_default();
            self.flag("POOL_SKEWED", index, &subj, msg, vec![index]);
        }
    }

    /// Finishes the analysis.
    pub fn finish(mut self, source: String) -> ReviewReport {
        self.report.source = source;
        for (id, d) in &self.draws {
            if let Some((vi, missing)) = &d.void {
                let subj = d.subjects.first().cloned().unwrap_or_default();
                let mut f = Flag {
                    code: "DRAW_VOIDED".into(),
                    index: *vi,
                    subject: subj,
                    message: format!(
                        "draw {id} was voided by the node at its deadline: {} did not reveal (a withheld reveal \
                         can abort a draw whose outcome the withholding party already knew)",
                        missing.join(", ")
                    ),
                    evidence: vec![d.index, *vi],
                    accountability: BTreeMap::new(),
                };
                f.accountability.insert("registrar".into(), d.signers.clone());
                let withheld: Vec<String> = missing
                    .iter()
                    .map(|p| format!("{p} ({})", d.parties.get(p).map_or("public sources", String::as_str)))
                    .collect();
                f.accountability.insert("did not reveal".into(), withheld);
                self.report.flags.push(f);
                continue;
            }
            if d.result.is_none() && d.deadline < self.last_ts && !self.cancelled.contains(&d.index) {
                let subj = d.subjects.first().cloned().unwrap_or_default();
                let mut f = Flag {
                    code: "DRAW_ABANDONED".into(),
                    index: d.index,
                    subject: subj,
                    message: format!("draw {id} passed its reveal deadline without a result and was not cancelled"),
                    evidence: vec![d.index],
                    accountability: BTreeMap::new(),
                };
                f.accountability.insert("registrar".into(), d.signers.clone());
                self.report.flags.push(f);
            }
        }
        let decisions = std::mem::take(&mut self.decisions);
        for dc in &decisions {
            let mut acc = BTreeMap::new();
            if let Some((_, n, _)) = self.nominations.get(&dc.nomination_id) {
                acc.insert("nominator".to_string(), n.clone());
            }
            // The evaluation is a draw, or an election whose voters that draw selected.
            let draw_ref = self
                .domain()
                .elections
                .elections
                .get(&dc.evaluation_ref)
                .map_or(dc.evaluation_ref.clone(), |e| e.open.draw_id.clone());
            if let Some(d) = self.draws.get(&draw_ref) {
                acc.insert("registrar (draw)".to_string(), d.signers.clone());
            }
            acc.insert("committee".to_string(), dc.signers.clone());
            let open: Vec<&Checkable> = self
                .checkable
                .values()
                .filter(|c| c.subject == dc.subject && c.index < dc.index && c.verified_at.is_none_or(|v| v > dc.index))
                .collect();
            if !open.is_empty() {
                let mut ev: Vec<u64> = open.iter().map(|c| c.index).collect();
                ev.push(dc.index);
                self.report.flags.push(Flag {
                    code: "PROMOTED_WITH_UNVERIFIED_COMPLAINTS".into(),
                    index: dc.index,
                    subject: dc.subject.clone(),
                    message: format!(
                        "decision on {} while {} complaint(s)/dossier fact(s) about them had no verification (带病提拔 risk)",
                        dc.subject,
                        open.len()
                    ),
                    evidence: ev,
                    accountability: acc.clone(),
                });
            }
            if let Some(d) = self.draws.get(&draw_ref)
                && d.result.is_some()
            {
                let outside: Vec<&String> = dc.evaluators.iter().filter(|e| !d.selected.contains(*e)).collect();
                if !outside.is_empty() {
                    let mut ev = vec![d.index];
                    ev.extend(d.result);
                    ev.push(dc.index);
                    self.report.flags.push(Flag {
                        code: "EVALUATOR_NOT_FROM_DRAW".into(),
                        index: dc.index,
                        subject: dc.subject.clone(),
                        message: format!(
                            "decision on {} relied on evaluator(s) {} whom draw {} did not select",
                            dc.subject,
                            outside.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                            dc.evaluation_ref
                        ),
                        evidence: ev,
                        accountability: acc.clone(),
                    });
                }
            }
            if let (Some((ni, _, _)), Some(d)) = (self.nominations.get(&dc.nomination_id), self.draws.get(&draw_ref))
                && *ni > d.index
            {
                self.report.flags.push(Flag {
                    code: "LATE_NOMINATION".into(),
                    index: *ni,
                    subject: dc.subject.clone(),
                    message: format!(
                        "nomination {} was recorded after the evaluation {} it relies on",
                        dc.nomination_id, dc.evaluation_ref
                    ),
                    evidence: vec![d.index, *ni, dc.index],
                    accountability: acc,
                });
            }
        }
        for c in self.checkable.values().filter(|c| c.is_complaint) {
            let o = self.report.organizations.entry(c.organization.clone()).or_default();
            o.complaints += 1;
            o.verified += u64::from(c.verified_at.is_some());
            if let Some(d) = decisions.iter().find(|d| d.subject == c.subject && d.index > c.index) {
                o.before_decision += 1;
                o.verified_before_decision += u64::from(c.verified_at.is_some_and(|v| v < d.index));
            }
        }
        let f = &self.filter;
        self.report.micro = self
            .domain()
            .elections
            .micro_aggregates(f.from.unwrap_or(0), f.to.unwrap_or(u64::MAX))
            .into_iter()
            .filter(|a| f.subject.as_ref().is_none_or(|s| *s == a.subject))
            .map(|a| MicroRow {
                // Display only (never compared byte for byte): two decimals.
                mean: format!("{:.2}", a.sum as f64 / a.count.max(1) as f64),
                subject: a.subject,
                department: a.department,
                count: a.count,
            })
            .collect();
        self.report.credentials = self
            .domain()
            .elections
            .elections
            .iter()
            .filter(|(_, e)| f.subject.as_ref().is_none_or(|s| e.open.subjects.contains(s)))
            .filter(|(_, e)| f.draw.as_ref().is_none_or(|d| e.open.draw_id == *d))
            .map(|(id, e)| CredentialRow {
                election_id: id.clone(),
                eligible: e.eligible.len() as u64,
                with_key: e.keys.len() as u64,
                issued: e.issued.len() as u64,
                requested: e.requested.len() as u64,
                registrar_word: e.issued.len().saturating_sub(e.requested.len()) as u64,
            })
            .collect();
        if let Some(s) = &f.subject {
            self.report.flags.retain(|x| x.subject == *s);
        }
        self.report.flags.sort_by_key(|x| x.index);
        self.report.scope = match (&f.subject, &f.draw) {
            (Some(s), _) => format!("cadre {s}"),
            (None, Some(d)) => format!("draw {d}"),
            _ => "whole log".into(),
        };
        if f.from.is_some() || f.to.is_some() {
            let _ = write!(
                self.report.scope,
                ", period {} – {}",
                f.from.map_or("start".into(), rfc3339_micros),
                f.to.map_or("end".into(), rfc3339_micros)
            );
        }
        self.report
    }
}

/// Runs a review over a source.
///
/// # Errors
/// When the source fails.
pub fn run(mut source: Box<dyn Source>, filter: Filter) -> anyhow::Result<ReviewReport> {
    let describe = source.describe();
    let mut r = Review::new(filter);
    source.run(&mut |item| {
        if let Item::Entry(e) = item {
            r.entry(&e.bytes);
        }
        true
    })?;
    Ok(r.finish(describe))
}

/// The human report.
pub fn human(r: &ReviewReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "回溯测评 Retrospective review — {} ({} entries from {})",
        r.scope, r.entries, r.source
    );
    let _ = writeln!(s, "\nFlags: {}", r.flags.len());
    for f in &r.flags {
        let _ = writeln!(s, "  [{}] entry {} {}: {}", f.code, f.index, f.subject, f.message);
        let _ = writeln!(s, "      evidence: entries {:?}", f.evidence);
        for (role, who) in &f.accountability {
            let _ = writeln!(s, "      {role}: {}", who.join(", "));
        }
    }
    if !r.organizations.is_empty() {
        let _ = writeln!(s, "\nComplaint verification by organization:");
        for (org, o) in &r.organizations {
            let rate = if o.before_decision == 0 {
                100.0
            } else {
                100.0 * o.verified_before_decision as f64 / o.before_decision as f64
            };
            let _ = writeln!(
                s,
                "  {}: {} complaints, {} verified; {} concerned a cadre later decided on, {} verified before the decision ({rate:.0}%); {} redraws",
                if org.is_empty() { "(unspecified)" } else { org },
                o.complaints,
                o.verified,
                o.before_decision,
                o.verified_before_decision,
                o.redraws
            );
        }
    }
    if !r.micro.is_empty() {
        let _ = writeln!(s, "\nCitizen micro-evaluations (无感化评价) in the period:");
        for m in &r.micro {
            let _ = writeln!(
                s,
                "  {} / {}: {} ratings, mean {} of 5",
                m.subject, m.department, m.count, m.mean
            );
        }
    }
    if !r.elections.is_empty() {
        let _ = writeln!(
            s,
            "\nElections (tallies recomputed from the ballots on replay; mean score per dimension):"
        );
        for e in &r.elections {
            let n = e.ballot_count.max(1) as f64;
            for x in &e.results {
                let d = &x.sums;
                let _ = writeln!(
                    s,
                    "  {} (tally entry {}, {} ballots) {}: political {:.1}, performance {:.1}, integrity {:.1}, \
                     public opinion {:.1}, responsibility {:.1}; weighted score {}",
                    e.election_id,
                    e.index,
                    e.ballot_count,
                    x.subject,
                    d.political as f64 / n,
                    d.performance as f64 / n,
                    d.integrity as f64 / n,
                    d.public_opinion as f64 / n,
                    d.responsibility as f64 / n,
                    x.weighted_score.as_deref().unwrap_or("none (no ballot)")
                );
            }
        }
    }
    if !r.credentials.is_empty() {
        let _ = writeln!(
            s,
            "\nCredentials per election (requested personally / on the registrar's word):"
        );
        for e in &r.credentials {
            let _ = writeln!(
                s,
                "  {}: {} issued to {} eligible evaluators ({} with a pool key): {} requested personally (signed), {} on the registrar's word alone",
                e.election_id, e.issued, e.eligible, e.with_key, e.requested, e.registrar_word
            );
        }
    }
    let _ = writeln!(s, "\nTimeline ({} records):", r.timeline.len());
    for t in &r.timeline {
        let _ = writeln!(
            s,
            "  #{} {} {} by {}: {}",
            t.index,
            t.time,
            t.kind,
            t.signers.join(", "),
            t.payload
        );
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One self-contained HTML page: a timeline chart (inline SVG) and the tables.
pub fn html(r: &ReviewReport) -> String {
    let n = r.timeline.len().max(1) as f64;
    let flagged: BTreeSet<u64> = r.flags.iter().flat_map(|f| f.evidence.iter().copied()).collect();
    let mut svg = String::from(
        "<svg width=\"900\" height=\"60\" xmlns=\"http://www.w3.org/2000/svg\"><line x1=\"10\" y1=\"30\" x2=\"890\" y2=\"30\" stroke=\"#888\"/>",
    );
    for (i, t) in r.timeline.iter().enumerate() {
        let x = 10.0 + 880.0 * (i as f64 + 0.5) / n;
        let color = if flagged.contains(&t.index) { "#c00" } else { "#06c" };
        let _ = write!(
            svg,
            "<circle cx=\"{x:.1}\" cy=\"30\" r=\"6\" fill=\"{color}\"><title>#{} {} {}</title></circle>",
            t.index,
            esc(&t.kind),
            esc(&t.time)
        );
    }
    svg.push_str("</svg>");
    let mut flags = String::new();
    for f in &r.flags {
        let acc: Vec<String> = f
            .accountability
            .iter()
            .map(|(k, v)| format!("{}: {}", esc(k), esc(&v.join(", "))))
            .collect();
        let _ = writeln!(
            flags,
            "<tr><td class=bad>{}</td><td>#{}</td><td>{}</td><td>{}</td><td>{:?}</td><td>{}</td></tr>",
            esc(&f.code),
            f.index,
            esc(&f.subject),
            esc(&f.message),
            f.evidence,
            acc.join("<br>")
        );
    }
    let mut orgs = String::new();
    for (org, o) in &r.organizations {
        let _ = writeln!(
            orgs,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td><td>{}</td></tr>",
            esc(org),
            o.complaints,
            o.verified,
            o.verified_before_decision,
            o.before_decision,
            o.redraws
        );
    }
    let mut micro = String::new();
    for m in &r.micro {
        let _ = writeln!(
            micro,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&m.subject),
            esc(&m.department),
            m.count,
            esc(&m.mean)
        );
    }
    let mut tl = String::new();
    for t in &r.timeline {
        let cls = if flagged.contains(&t.index) { " class=bad" } else { "" };
        let _ = writeln!(
            tl,
            "<tr{cls}><td>#{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            t.index,
            esc(&t.time),
            esc(&t.kind),
            esc(&t.signers.join(", ")),
            esc(&t.payload)
        );
    }
    format!(
        "<!DOCTYPE html><html lang=zh><head><meta charset=utf-8><title>回溯测评 Retrospective review</title><style>\
body{{font-family:sans-serif;margin:2em;max-width:75em}}table{{border-collapse:collapse;width:100%;margin-bottom:1.5em}}\
td,th{{border:1px solid #999;padding:.35em;vertical-align:top;font-size:90%}}th{{background:#eee}}.bad{{color:#b00}}\
code{{white-space:pre-wrap;word-break:break-all}}</style></head><body>\
<h1>回溯测评 <small>Retrospective review</small></h1><p>范围 Scope: {} — {} 条记录 entries read from {}</p>\
<h2>时间线 <small>Timeline</small></h2>{svg}\
<h2>问题标记 <small>Flags</small> ({})</h2><table><tr><th>代码 Code</th><th>记录 Entry</th><th>对象 Subject</th><th>说明 What</th><th>证据 Evidence</th><th>责任链 Accountability</th></tr>{flags}</table>\
<h2>信访核查率 <small>Complaint verification by organization</small></h2><table><tr><th>单位 Organization</th><th>投诉 Complaints</th><th>已核查 Verified</th><th>决定前核查 Verified before decision</th><th>重抽 Redraws</th></tr>{orgs}</table>\
<h2>群众评价 <small>Citizen micro-evaluations</small></h2><table><tr><th>对象 Subject</th><th>部门 Department</th><th>评价数 Ratings</th><th>平均 Mean (1–5)</th></tr>{micro}</table>\
<h2>记录 <small>Records</small></h2><table><tr><th>序号</th><th>时间 Time</th><th>类型 Kind</th><th>签署 Signed by</th><th>内容 Content</th></tr>{tl}</table></body></html>\n",
        esc(&r.scope),
        r.entries,
        esc(&r.source),
        r.flags.len()
    )
}
