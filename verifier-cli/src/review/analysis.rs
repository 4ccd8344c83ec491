//! The review's analysis: folds the log's entries, in order, into findings and tallies (a plain
//! data model). It decides what is flagged and on what evidence; it words nothing (that is
//! [`super::text`]'s job).
//!
//! Each entry takes the node's own step (`ledger_core::state`): signatures, registry, record,
//! domain rules. An entry the step refuses is a finding and feeds none of the analysis (a replayed
//! record must not plant flags against honest officials); an accepted one goes to the handler of
//! its kind.

use super::Filter;
use super::model::{CredentialRow, ElectionRow, OrgStats};
use ledger_core::domain::{
    Accountability, Complaint, Decision, DossierFact, DrawCommit, DrawPurpose, DrawResult, DrawVoid, Record,
    check_record,
};
use ledger_core::entry::Entry;
use ledger_core::hash::{Hash, leaf_hash};
use ledger_core::registry::{Registry, RegistryError, envelope_kind};
use ledger_core::rules::DomainState;
use ledger_core::state::{LedgerState, StepError};
use std::collections::{BTreeMap, BTreeSet};

/// Someone named in the review: a key's holder as the registry knows them, a key the registry
/// does not know, or a person a record names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// A registry holder's name, or a person named by a record.
    Name(String),
    /// A key id the registry does not know (no charter, or not enrolled).
    UnknownKey(String),
}

/// Who revealed (or was to reveal) for a party of a draw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revealer {
    /// The party had a committed reveal key, held by this key holder (`None`: unknown holder).
    Key(Option<String>),
    /// The party had no committed key: public sources.
    PublicSources,
}

/// What a finding is about, with the facts its message is made of.
#[derive(Debug)]
pub enum FindingKind {
    /// A registry rule refused the entry (signer authority, quorum, key records).
    Registry {
        /// The registry's error.
        error: RegistryError,
    },
    /// A cross-record domain rule refused the entry.
    Rule {
        /// The rule's fault code.
        code: String,
        /// The rule's detail.
        detail: String,
    },
    /// A second draw for the same purpose and subject while the first stands.
    Redraw {
        /// The later draw.
        draw_id: String,
    },
    /// More than half of a draw's pool shares one affiliation.
    PoolSkewed {
        /// The draw.
        draw_id: String,
        /// Members sharing the affiliation.
        count: usize,
        /// Pool size.
        pool: usize,
        /// The affiliation.
        affiliation: String,
    },
    /// A complaint found to be a malicious false report, its complainant unsealed.
    MaliciousFalseReport {
        /// The complaint.
        complaint_id: String,
        /// The complainant the court's opening names.
        identity: String,
        /// The finding.
        finding: String,
    },
    /// The node voided a draw at its deadline.
    DrawVoided {
        /// The draw.
        draw_id: String,
        /// Parties that did not reveal, each with who was to reveal for it.
        withheld: Vec<(String, Revealer)>,
    },
    /// A draw past its deadline with no result and no cancellation.
    DrawAbandoned {
        /// The draw.
        draw_id: String,
    },
    /// A decision while complaints or dossier facts about the subject were unverified.
    PromotedWithUnverifiedComplaints {
        /// The subject.
        subject: String,
        /// How many were unverified.
        open: usize,
    },
    /// A decision relying on evaluators the draw did not select.
    EvaluatorNotFromDraw {
        /// The subject.
        subject: String,
        /// The evaluators outside the draw's selection.
        outside: Vec<String>,
        /// The evaluation the decision names.
        evaluation_ref: String,
    },
    /// A node record signed by a node key in the span a `node.compromise` declared compromised:
    /// what it says must be re-done under the new node key (docs/registry.md).
    NodeKeyCompromised {
        /// `draw.result`, `draw.void` or `tally`.
        kind: String,
        /// The draw or election it is about.
        about: String,
        /// Key id of the compromised node key.
        keyid: String,
        /// First index the declaration holds the key compromised.
        as_of: u64,
        /// Index of the `node.compromise` record.
        at: u64,
    },
    /// A nomination recorded after the evaluation it relies on.
    LateNomination {
        /// The nomination.
        nomination_id: String,
        /// The evaluation.
        evaluation_ref: String,
    },
}

impl FindingKind {
    /// The flag code.
    pub fn code(&self) -> &str {
        match self {
            Self::Registry { .. } => "REGISTRY_VIOLATION",
            Self::Rule { code, .. } => code,
            Self::Redraw { .. } => "REDRAW",
            Self::PoolSkewed { .. } => "POOL_SKEWED",
            Self::MaliciousFalseReport { .. } => "MALICIOUS_FALSE_REPORT",
            Self::DrawVoided { .. } => "DRAW_VOIDED",
            Self::DrawAbandoned { .. } => "DRAW_ABANDONED",
            Self::PromotedWithUnverifiedComplaints { .. } => "PROMOTED_WITH_UNVERIFIED_COMPLAINTS",
            Self::EvaluatorNotFromDraw { .. } => "EVALUATOR_NOT_FROM_DRAW",
            Self::LateNomination { .. } => "LATE_NOMINATION",
            Self::NodeKeyCompromised { .. } => "NODE_KEY_COMPROMISED",
        }
    }
}

/// One finding.
#[derive(Debug)]
pub struct Finding {
    /// What it is.
    pub kind: FindingKind,
    /// Entry it is about.
    pub index: u64,
    /// Subject concerned ("" when none).
    pub subject: String,
    /// Indices of the evidence.
    pub evidence: Vec<u64>,
    /// Who is behind it, by role.
    pub accountability: BTreeMap<&'static str, Vec<Who>>,
}

impl Finding {
    fn new(kind: FindingKind, index: u64, subject: &str, evidence: Vec<u64>) -> Self {
        Self {
            kind,
            index,
            subject: subject.into(),
            evidence,
            accountability: BTreeMap::new(),
        }
    }

    fn with(mut self, role: &'static str, who: Vec<Who>) -> Self {
        self.accountability.insert(role, who);
        self
    }
}

/// A domain record in scope, for the timeline.
#[derive(Debug, Clone)]
pub struct TimelineItem {
    /// Index.
    pub index: u64,
    /// Entry time, UTC micros.
    pub timestamp_micros: u64,
    /// Kind.
    pub kind: String,
    /// Signers.
    pub signers: Vec<Who>,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

/// Citizen ratings of one subject in one department.
#[derive(Debug, Clone)]
pub struct MicroTotal {
    /// Subject (cadre).
    pub subject: String,
    /// Department.
    pub department: String,
    /// Ratings.
    pub count: u64,
    /// Their sum.
    pub sum: u64,
}

/// What the analysis found.
#[derive(Debug, Default)]
pub struct Findings {
    /// Entries read.
    pub entries: u64,
    /// Domain records in scope, in log order.
    pub timeline: Vec<TimelineItem>,
    /// Findings in scope, by index.
    pub findings: Vec<Finding>,
    /// Complaint handling per organization.
    pub organizations: BTreeMap<String, OrgStats>,
    /// Citizen micro-evaluations in the period.
    pub micro: Vec<MicroTotal>,
    /// Recomputed tallies in scope.
    pub elections: Vec<ElectionRow>,
    /// Credential issuance per election in scope.
    pub credentials: Vec<CredentialRow>,
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
    signers: Vec<Who>,
    deadline: u64,
    result: Option<u64>,
    /// Evaluators the result selected or assigned.
    selected: BTreeSet<String>,
    /// The node's void: index and the parties that did not reveal.
    void: Option<(u64, Vec<String>)>,
    /// Party name → holder of its committed reveal key (`None`: a key the registry does not
    /// know).
    parties: BTreeMap<String, Option<String>>,
}

struct DecisionInfo {
    index: u64,
    subject: String,
    nomination_id: String,
    evaluation_ref: String,
    evaluators: Vec<String>,
    signers: Vec<Who>,
}

/// An entry the step accepted, with what its handler needs.
struct Accepted<'a> {
    entry: &'a Entry,
    kind: String,
    /// Signers.
    names: Vec<Who>,
    in_scope: bool,
}

/// Streams a log and builds the findings.
#[derive(Default)]
pub struct Analysis {
    filter: Filter,
    /// Registry and domain state, folded with the node's own step (`ledger_core::state`).
    state: Option<LedgerState>,
    /// Domain state alone, for a log without a valid charter (no registry to judge signers by).
    domain_only: DomainState,
    checkable: BTreeMap<String, Checkable>,
    nominations: BTreeMap<String, (u64, Vec<Who>, String)>,
    draws: BTreeMap<String, DrawInfo>,
    decisions: Vec<DecisionInfo>,
    cancelled: BTreeSet<u64>,
    last_ts: u64,
    /// Node records accepted (index, kind, the draw or election, subject): a later
    /// `node.compromise` may name them.
    node_records: Vec<(u64, String, String, String)>,
    /// Incremental tree, so that draws learn the root at their committed size.
    tree: ledger_core::compact::CompactTree,
    out: Findings,
    /// The temporary index that holds the rated tickets of `state` (`crate::tickets`).
    tickets: Option<crate::tickets::TicketSpill>,
    /// Why the review could not go on (the ticket index failed).
    failure: Option<String>,
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

fn first(subjects: &[String]) -> String {
    subjects.first().cloned().unwrap_or_default()
}

impl Analysis {
    /// An analysis with a filter.
    pub fn new(filter: Filter) -> Self {
        Self {
            filter,
            ..Default::default()
        }
    }

    fn names(&self, e: &Entry) -> Vec<Who> {
        e.envelope
            .signatures
            .iter()
            .map(|s| match self.registry().and_then(|r| r.holder(&s.keyid)) {
                Some(name) => Who::Name(name.to_string()),
                None => Who::UnknownKey(s.keyid.clone()),
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

    fn push(&mut self, f: Finding) {
        self.out.findings.push(f);
    }

    /// Tells the state that the log now has `size` entries (after the entry's step, as the node does).
    fn observe(&mut self, size: u64) {
        let root = self.tree.root();
        match self.state.as_mut() {
            Some(st) => st.observe_size(size, &root),
            None => self.domain_only.observe_size(size, &root),
        }
    }

    /// Why the review could not be completed (the temporary ticket index failed), if it could not.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Feeds one entry (in log order).
    pub fn entry(&mut self, bytes: &[u8]) {
        self.out.entries += 1;
        let lh = leaf_hash(bytes);
        let size = self.tree.size();
        self.tree.append(lh);
        let Ok(e) = Entry::decode(bytes) else {
            self.observe(size + 1);
            return;
        };
        self.last_ts = self.last_ts.max(e.timestamp_micros);
        if e.index == 0 {
            self.state = LedgerState::genesis(&e).ok();
            if let Some(st) = self.state.as_mut() {
                match crate::tickets::TicketSpill::attach(st) {
                    Ok(t) => self.tickets = Some(t),
                    Err(err) => self.failure = Some(err),
                }
            }
            self.observe(size + 1);
            return;
        }
        let kind = envelope_kind(&e.envelope).map(str::to_string);
        let step = self.step(&e, &lh, kind.as_deref().ok());
        self.observe(size + 1);
        let record = match step {
            None => return,
            Some(Ok(record)) => {
                if let (Some(t), Some(st)) = (&self.tickets, self.state.as_mut())
                    && let Err(err) = t.folded(st, e.index, &record)
                {
                    self.failure = Some(err);
                }
                record
            }
            Some(Err(err)) => return self.refused(&e, err, kind.as_deref().ok()),
        };
        let Ok(kind) = kind else { return };
        let subjects = subject_of(&record);
        let about = match &record {
            Record::DrawResult(r) => Some(r.draw_id.clone()),
            Record::DrawVoid(v) => Some(v.draw_id.clone()),
            Record::Tally(t) => Some(t.election_id.clone()),
            _ => None,
        };
        if let Some(about) = about {
            let subject = match self.draws.get(&about) {
                Some(d) => first(&d.subjects),
                None => first(&subjects),
            };
            self.node_records.push((e.index, kind.clone(), about, subject));
        }
        let accepted = Accepted {
            in_scope: self.in_scope(&e, &subjects),
            names: self.names(&e),
            entry: &e,
            kind,
        };
        self.timeline(&accepted, &record, &subjects);
        self.dispatch(accepted, record);
    }

    /// The node's step for one entry; `None` when there is nothing to step (no charter and no kind).
    fn step(&mut self, e: &Entry, lh: &Hash, kind: Option<&str>) -> Option<Result<Record, StepError>> {
        match (self.state.as_mut(), kind) {
            // The node's step: signatures, registry, record, domain rules; applied when it passes.
            (Some(st), _) => Some(st.step_stored(e, lh, true)),
            // No charter: the domain rules alone, with the key ids the envelope names.
            (None, None) => None,
            (None, Some(kind)) => {
                let signer_ids: Vec<String> = e.envelope.signatures.iter().map(|s| s.keyid.clone()).collect();
                Some(
                    check_record(kind, &e.envelope.payload)
                        .map_err(StepError::Record)
                        .and_then(|record| {
                            self.domain_only
                                .check_at(e.index, e.timestamp_micros, &record, &signer_ids)?;
                            self.domain_only.apply_at(e.index, lh, &record, &signer_ids);
                            Ok(record)
                        }),
                )
            }
        }
    }

    /// An entry the step refused: a registry or rule violation is a finding; a payload that does
    /// not parse is `replay`'s to report.
    fn refused(&mut self, e: &Entry, err: StepError, kind: Option<&str>) {
        let index = e.index;
        match err {
            StepError::Registry(err) => {
                let kind = FindingKind::Registry { error: err };
                self.push(Finding::new(kind, index, "", vec![index]));
            }
            StepError::Record(_) => {}
            StepError::StateLookup(err) => self.failure = Some(format!("entry {index}: {err}")),
            StepError::Rule(err) => {
                let Some(record) = kind.and_then(|k| check_record(k, &e.envelope.payload).ok()) else {
                    return;
                };
                let kind = FindingKind::Rule {
                    code: err.code.to_string(),
                    detail: err.detail,
                };
                self.push(Finding::new(kind, index, &first(&subject_of(&record)), vec![index]));
            }
        }
    }

    fn in_scope(&self, e: &Entry, subjects: &[String]) -> bool {
        self.in_period(e.timestamp_micros)
            && self.filter.subject.as_ref().is_none_or(|s| subjects.contains(s))
            && self
                .filter
                .draw
                .as_ref()
                .is_none_or(|d| String::from_utf8_lossy(&e.envelope.payload).contains(&format!("\"{d}\"")))
    }

    /// Lists a domain record in scope. Micro-evaluations and ballots are many and anonymous:
    /// aggregated, not listed.
    fn timeline(&mut self, a: &Accepted, record: &Record, subjects: &[String]) {
        let domain_kind =
            !matches!(record, Record::Other | Record::MicroEvaluation(_) | Record::Ballot(_)) || a.kind == "note";
        if a.in_scope
            && domain_kind
            && (self.filter.subject.is_some() || self.filter.draw.is_some() || !subjects.is_empty() || a.kind != "note")
        {
            self.out.timeline.push(TimelineItem {
                index: a.entry.index,
                timestamp_micros: a.entry.timestamp_micros,
                kind: a.kind.clone(),
                signers: a.names.clone(),
                payload: a.entry.envelope.payload.clone(),
            });
        }
    }

    /// Hands an accepted record to the handler of its kind.
    fn dispatch(&mut self, a: Accepted, record: Record) {
        let index = a.entry.index;
        match record {
            Record::Complaint(c) => self.on_complaint(index, c),
            Record::DossierFact(f) => self.on_dossier_fact(index, f),
            Record::Verification(v) => {
                if let Some(c) = self.checkable.get_mut(&v.target_id) {
                    c.verified_at.get_or_insert(index);
                }
            }
            Record::Nomination(n) => {
                self.nominations
                    .insert(n.nomination_id, (index, a.names, n.organization));
            }
            Record::DrawCommit(c) => self.on_draw_commit(&a, c),
            Record::DrawResult(r) => self.on_draw_result(index, r),
            Record::DrawVoid(v) => self.on_draw_void(index, v),
            Record::Decision(d) => self.on_decision(index, d, a.names),
            Record::Cancellation(c) => {
                self.cancelled.insert(c.target_index);
            }
            Record::Accountability(x) => self.on_accountability(index, x, a.names),
            Record::Tally(t) if a.in_scope => self.out.elections.push(ElectionRow {
                index,
                election_id: t.election_id,
                ballot_count: t.ballot_count,
                results: t.results,
            }),
            _ => {}
        }
    }

    fn on_complaint(&mut self, index: u64, c: Complaint) {
        let item = Checkable {
            index,
            subject: c.subject,
            organization: c.organization,
            is_complaint: true,
            verified_at: None,
        };
        self.checkable.insert(c.complaint_id, item);
    }

    fn on_dossier_fact(&mut self, index: u64, f: DossierFact) {
        let item = Checkable {
            index,
            subject: f.subject,
            organization: f.source,
            is_complaint: false,
            verified_at: None,
        };
        self.checkable.insert(f.fact_id, item);
    }

    fn on_draw_commit(&mut self, a: &Accepted, c: DrawCommit) {
        let index = a.entry.index;
        self.pool_skew(index, &c);
        self.redraw(a, &c);
        let parties = c
            .parties
            .iter()
            .map(|p| {
                let who = self.registry().and_then(|r| r.holder(&p.keyid)).map(str::to_string);
                (p.name.clone(), who)
            })
            .collect();
        let info = DrawInfo {
            index,
            purpose: c.purpose,
            subjects: c.subjects,
            signers: a.names.clone(),
            deadline: c.reveal_deadline_micros,
            result: None,
            selected: BTreeSet::new(),
            void: None,
            parties,
        };
        self.draws.insert(c.draw_id, info);
    }

    /// A second draw for the same purpose and subject, the first not cancelled: a redraw.
    fn redraw(&mut self, a: &Accepted, c: &DrawCommit) {
        let index = a.entry.index;
        let mut evidence: Vec<u64> = self
            .draws
            .values()
            .filter(|d| d.purpose == c.purpose && d.subjects.iter().any(|s| c.subjects.contains(s)))
            .filter(|d| !self.cancelled.contains(&d.index))
            .map(|d| d.index)
            .collect();
        if evidence.is_empty() {
            return;
        }
        evidence.push(index);
        let org = self
            .registry()
            .and_then(|r| a.entry.envelope.signatures.first().and_then(|s| r.keys.get(&s.keyid)))
            .map(|k| k.scope.organization.clone())
            .unwrap_or_default();
        let kind = FindingKind::Redraw {
            draw_id: c.draw_id.clone(),
        };
        self.push(Finding::new(kind, index, &first(&c.subjects), evidence).with("registrar", a.names.clone()));
        self.out.organizations.entry(org).or_default().redraws += 1;
    }

    fn pool_skew(&mut self, index: u64, c: &DrawCommit) {
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
            let kind = FindingKind::PoolSkewed {
                draw_id: c.draw_id.clone(),
                count: *n,
                pool: c.pool.len(),
                affiliation: (*aff).to_string(),
            };
            self.push(Finding::new(kind, index, &first(&c.subjects), vec![index]));
        }
    }

    fn on_draw_result(&mut self, index: u64, r: DrawResult) {
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

    fn on_draw_void(&mut self, index: u64, v: DrawVoid) {
        if let Some(d) = self.draws.get_mut(&v.draw_id) {
            d.void = Some((index, v.missing));
        }
    }

    fn on_decision(&mut self, index: u64, d: Decision, names: Vec<Who>) {
        self.decisions.push(DecisionInfo {
            index,
            subject: d.subject,
            nomination_id: d.nomination_id,
            evaluation_ref: d.evaluation_ref,
            evaluators: d.evaluators,
            signers: names,
        });
    }

    fn on_accountability(&mut self, index: u64, a: Accountability, names: Vec<Who>) {
        let Some(o) = a.opening else { return };
        let complaint = self.checkable.get(&o.complaint_id);
        let mut evidence: Vec<u64> = complaint.map(|c| c.index).into_iter().collect();
        evidence.extend(complaint.and_then(|c| c.verified_at));
        evidence.push(index);
        let subject = complaint.map(|c| c.subject.clone()).unwrap_or_default();
        let identity = o.opening.identity;
        let kind = FindingKind::MaliciousFalseReport {
            complaint_id: o.complaint_id,
            identity: identity.clone(),
            finding: a.finding,
        };
        let f = Finding::new(kind, index, &subject, evidence)
            .with("complainant (unsealed)", vec![Who::Name(identity)])
            .with("finding signed by", names);
        self.push(f);
    }

    /// Finishes the analysis.
    pub fn finish(mut self) -> Findings {
        self.draw_findings();
        self.compromised_findings();
        let decisions = std::mem::take(&mut self.decisions);
        for dc in &decisions {
            self.decision_findings(dc);
        }
        self.organizations(&decisions);
        let f = &self.filter;
        let micro = self
            .domain()
            .elections
            .micro_aggregates(f.from.unwrap_or(0), f.to.unwrap_or(u64::MAX))
            .into_iter()
            .filter(|a| f.subject.as_ref().is_none_or(|s| *s == a.subject))
            .map(|a| MicroTotal {
                subject: a.subject,
                department: a.department,
                count: a.count,
                sum: a.sum,
            })
            .collect();
        self.out.micro = micro;
        self.out.credentials = self.credentials();
        if let Some(s) = &self.filter.subject {
            self.out.findings.retain(|x| x.subject == *s);
        }
        self.out.findings.sort_by_key(|x| x.index);
        self.out
    }

    /// Node records a `node.compromise` names: signed by the compromised key at an index `>=
    /// as_of` (docs/registry.md). The draws and tallies they carry must be re-done.
    fn compromised_findings(&mut self) {
        let Some(reg) = self.registry().cloned() else { return };
        for (index, kind, about, subject) in std::mem::take(&mut self.node_records) {
            let Some(c) = reg.compromised_record(index) else {
                continue;
            };
            let k = FindingKind::NodeKeyCompromised {
                kind,
                about,
                keyid: ledger_core::keys::key_id(&c.key),
                as_of: c.as_of,
                at: c.at,
            };
            self.push(Finding::new(k, index, &subject, vec![index, c.at]));
        }
    }

    /// Draws voided by the node, and draws abandoned past their deadline.
    fn draw_findings(&mut self) {
        let mut found = Vec::new();
        for (id, d) in &self.draws {
            let draw_id = id.clone();
            if let Some((vi, missing)) = &d.void {
                let withheld = missing
                    .iter()
                    .map(|p| {
                        let who = d
                            .parties
                            .get(p)
                            .map_or(Revealer::PublicSources, |h| Revealer::Key(h.clone()));
                        (p.clone(), who)
                    })
                    .collect();
                let kind = FindingKind::DrawVoided { draw_id, withheld };
                found.push(
                    Finding::new(kind, *vi, &first(&d.subjects), vec![d.index, *vi])
                        .with("registrar", d.signers.clone()),
                );
            } else if d.result.is_none() && d.deadline < self.last_ts && !self.cancelled.contains(&d.index) {
                let kind = FindingKind::DrawAbandoned { draw_id };
                found.push(
                    Finding::new(kind, d.index, &first(&d.subjects), vec![d.index])
                        .with("registrar", d.signers.clone()),
                );
            }
        }
        self.out.findings.extend(found);
    }

    /// What is wrong with one decision: unverified complaints, evaluators the draw did not
    /// select, a nomination later than the evaluation.
    fn decision_findings(&mut self, dc: &DecisionInfo) {
        let mut acc = BTreeMap::new();
        let nomination = self.nominations.get(&dc.nomination_id);
        if let Some((_, n, _)) = nomination {
            acc.insert("nominator", n.clone());
        }
        // The evaluation is a draw, or an election whose voters that draw selected.
        let draw_ref = self
            .domain()
            .elections
            .elections
            .get(&dc.evaluation_ref)
            .map_or(dc.evaluation_ref.clone(), |e| e.open.draw_id.clone());
        let draw = self.draws.get(&draw_ref);
        if let Some(d) = draw {
            acc.insert("registrar (draw)", d.signers.clone());
        }
        acc.insert("committee", dc.signers.clone());
        let mut found = Vec::new();
        let open: Vec<u64> = self
            .checkable
            .values()
            .filter(|c| c.subject == dc.subject && c.index < dc.index && c.verified_at.is_none_or(|v| v > dc.index))
            .map(|c| c.index)
            .collect();
        if !open.is_empty() {
            let kind = FindingKind::PromotedWithUnverifiedComplaints {
                subject: dc.subject.clone(),
                open: open.len(),
            };
            let mut evidence = open;
            evidence.push(dc.index);
            found.push(Finding::new(kind, dc.index, &dc.subject, evidence));
        }
        if let Some(d) = draw.filter(|d| d.result.is_some()) {
            let outside: Vec<String> = dc
                .evaluators
                .iter()
                .filter(|e| !d.selected.contains(*e))
                .cloned()
                .collect();
            if !outside.is_empty() {
                let mut evidence = vec![d.index];
                evidence.extend(d.result);
                evidence.push(dc.index);
                let kind = FindingKind::EvaluatorNotFromDraw {
                    subject: dc.subject.clone(),
                    outside,
                    evaluation_ref: dc.evaluation_ref.clone(),
                };
                found.push(Finding::new(kind, dc.index, &dc.subject, evidence));
            }
        }
        if let (Some((ni, _, _)), Some(d)) = (nomination, draw)
            && *ni > d.index
        {
            let kind = FindingKind::LateNomination {
                nomination_id: dc.nomination_id.clone(),
                evaluation_ref: dc.evaluation_ref.clone(),
            };
            found.push(Finding::new(kind, *ni, &dc.subject, vec![d.index, *ni, dc.index]));
        }
        for mut f in found {
            f.accountability = acc.clone();
            self.push(f);
        }
    }

    /// Complaint verification per organization (redraws were counted as they came).
    fn organizations(&mut self, decisions: &[DecisionInfo]) {
        for c in self.checkable.values().filter(|c| c.is_complaint) {
            let o = self.out.organizations.entry(c.organization.clone()).or_default();
            o.complaints += 1;
            o.verified += u64::from(c.verified_at.is_some());
            if let Some(d) = decisions.iter().find(|d| d.subject == c.subject && d.index > c.index) {
                o.before_decision += 1;
                o.verified_before_decision += u64::from(c.verified_at.is_some_and(|v| v < d.index));
            }
        }
    }

    /// Credential issuance of the elections in scope.
    fn credentials(&self) -> Vec<CredentialRow> {
        let f = &self.filter;
        self.domain()
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
            .collect()
    }
}
