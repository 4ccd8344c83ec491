//! The review report: a plain data model, serialized as the `--json` document and rendered by
//! [`super::text`] and [`super::html`].

use serde::Serialize;
use std::collections::BTreeMap;

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
    /// Time, UTC microseconds (for the HTML page's time zone; not in the JSON document).
    #[serde(skip)]
    pub timestamp_micros: u64,
    /// The whole payload (the HTML page renders its fields; not in the JSON document).
    #[serde(skip)]
    pub full_payload: String,
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
