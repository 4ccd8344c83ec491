//! Domain records (requirement R6, `docs/records.md`): one strict type per record kind.
//!
//! Every payload is JSON with `"version": 1`; unknown fields are refused. People are referred to by
//! stable pseudonymous ids (the mapping to names lives outside the ledger). [`check_record`] parses
//! and validates a payload for its kind; the node runs it before sequencing and the verifier on replay.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

pub use crate::ids::MAX_ID;
pub use crate::ids::SchemaError;
use crate::ids::id_ok;
/// Most members in a pool or draw.
pub const MAX_POOL: usize = 100_000;
/// Code of a `draw.commit` whose `strata` name the same stratum twice (docs/records.md).
pub const DRAW_STRATUM_REPEATED: &str = "DRAW_STRATUM_REPEATED";
/// Code of a `draw.sources` whose values make an RFC 3797 key longer than
/// [`crate::rfc3797::MAX_KEY`] (docs/records.md).
pub const DRAW_SOURCES_TOO_LONG: &str = "DRAW_SOURCES_TOO_LONG";

/// Draw algorithm: commit-reveal secrets and a future tree root (docs/draws.md).
pub const ALG_LEDGER_DRAW_V1: &str = "ledger-draw-v1";
/// Draw algorithm: RFC 3797 selection from public sources (docs/draws.md).
pub const ALG_RFC3797: &str = "rfc3797";

/// Purpose of a draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrawPurpose {
    /// Select evaluators from a pool (stratified).
    EvaluatorSelection,
    /// Assign evaluators to subjects.
    SubjectMatching,
    /// Pick the evaluation time from committed windows.
    EvaluationTime,
}

/// A pool member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// Pseudonymous id.
    pub id: String,
    /// Stratum (domain, department…).
    pub stratum: String,
    /// Affiliation (employer, unit), used to detect skewed pools.
    #[serde(default)]
    pub affiliation: String,
    /// The member's Ed25519 public key (standard base64 of its 32 bytes), fixed with the pool: an
    /// evaluator with a key must sign their own credential request (`CREDENTIAL_NOT_REQUESTED`,
    /// `docs/ballots.md`). Absent in older records, which serialize unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// A stratum quota.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Stratum name.
    pub name: String,
    /// Members to select.
    pub quota: u32,
}

/// An exclusion with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exclusion {
    /// Member id.
    pub id: String,
    /// Why (conflict of interest, relative, …).
    pub reason: String,
}

/// A party contributing randomness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Party {
    /// Party name (e.g. "registrar", "discipline inspection", "citizen representative").
    pub name: String,
    /// Key id of the key that will sign its reveal.
    pub keyid: String,
    /// Hex SHA-256 of its secret.
    pub commitment: String,
}

/// `nomination`: who nominates whom for which post.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nomination {
    /// Always 1.
    pub version: u32,
    /// Unique id.
    pub nomination_id: String,
    /// The cadre nominated.
    pub subject: String,
    /// Post.
    pub post: String,
    /// Organization.
    pub organization: String,
    /// Grounds.
    #[serde(default)]
    pub reason: String,
}

/// `pool.commit`: a candidate pool fixed before any randomness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolCommit {
    /// Always 1.
    pub version: u32,
    /// Unique id.
    pub pool_id: String,
    /// What the pool is for.
    pub purpose: String,
    /// Members in canonical order (ids sorted bytewise).
    pub members: Vec<Member>,
}

/// `draw.commit`: everything a draw depends on, fixed before its randomness exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrawCommit {
    /// Always 1.
    pub version: u32,
    /// Unique id.
    pub draw_id: String,
    /// Purpose.
    pub purpose: DrawPurpose,
    /// Subjects (cadres) concerned.
    pub subjects: Vec<String>,
    /// The full pool in canonical order.
    #[serde(default)]
    pub pool: Vec<Member>,
    /// Strata and quotas (evaluator selection).
    #[serde(default)]
    pub strata: Vec<Quota>,
    /// Exclusions with reasons.
    #[serde(default)]
    pub exclusions: Vec<Exclusion>,
    /// Total to select (sum of quotas for stratified draws).
    pub k: u32,
    /// Algorithm version: `ledger-draw-v1` (commit-reveal + tree root) or `rfc3797` (public sources).
    pub algorithm: String,
    /// Randomness parties, in commit order (`ledger-draw-v1`; empty for `rfc3797`).
    #[serde(default)]
    pub parties: Vec<Party>,
    /// The future tree size whose root is mixed into the seed (`ledger-draw-v1`; 0 for `rfc3797`).
    #[serde(default)]
    pub reveal_at_size: u64,
    /// Deadline for the reveals (or, for `rfc3797`, the `draw.sources` record), UTC microseconds.
    pub reveal_deadline_micros: u64,
    /// `rfc3797`: the public sources of randomness, in the order their values enter the key
    /// (e.g. "China Welfare Lottery 3D, draw of 2026-12-01, the three digits").
    #[serde(default)]
    pub sources: Vec<String>,
    /// Time windows `[start, end)` in UTC minutes (evaluation time draws).
    #[serde(default)]
    pub windows: Vec<(u64, u64)>,
}

/// `draw.reveal`: one party's secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrawReveal {
    /// Always 1.
    pub version: u32,
    /// Draw.
    pub draw_id: String,
    /// Party name as committed.
    pub party: String,
    /// Hex of the secret.
    pub secret: String,
}

/// `draw.sources`: the published values of an `rfc3797` draw's public sources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrawSources {
    /// Always 1.
    pub version: u32,
    /// Draw.
    pub draw_id: String,
    /// One list of values per committed source, in commit order, each value a decimal as
    /// published (RFC 3797 section 4).
    pub values: Vec<Vec<String>>,
}

/// `draw.void`: a draw that missed its deadline, appended by the node (an abort stays visible).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrawVoid {
    /// Always 1.
    pub version: u32,
    /// Draw.
    pub draw_id: String,
    /// The parties that did not reveal (party names; `"sources"` for an `rfc3797` draw without
    /// its `draw.sources`), in commit order.
    pub missing: Vec<String>,
    /// The deadline that passed, UTC microseconds.
    pub deadline_micros: u64,
}

/// Selected members of one stratum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StratumSelection {
    /// Stratum.
    pub stratum: String,
    /// Selected ids in draw order.
    pub selected: Vec<String>,
}

/// Evaluators assigned to a subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    /// Subject.
    pub subject: String,
    /// Evaluators.
    pub evaluators: Vec<String>,
}

/// `draw.result`: the outcome, computed and signed by the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrawResult {
    /// Always 1.
    pub version: u32,
    /// Draw.
    pub draw_id: String,
    /// Hex seed.
    pub seed: String,
    /// Hex root at the committed size (`ledger-draw-v1`; empty for `rfc3797`).
    pub root_at_size: String,
    /// `rfc3797`: the RFC 3797 key string built from the sources (the seed is its SHA-256).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// Evaluator selection.
    #[serde(default)]
    pub selection: Vec<StratumSelection>,
    /// Subject matching.
    #[serde(default)]
    pub assignment: Vec<Assignment>,
    /// Evaluation time (UTC minute).
    #[serde(default)]
    pub minute: Option<u64>,
}

/// `dossier.fact`: a risk fact from a data source (audit finding, integrity status, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DossierFact {
    /// Always 1.
    pub version: u32,
    /// Unique id.
    pub fact_id: String,
    /// Cadre concerned.
    pub subject: String,
    /// Source system (audit, discipline, petition, …).
    pub source: String,
    /// Category.
    pub category: String,
    /// Hex SHA-256 of the full content kept off-ledger.
    pub content_hash: String,
}

/// `complaint` (identity sealing comes with the ballots issue).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Complaint {
    /// Always 1.
    pub version: u32,
    /// Unique id.
    pub complaint_id: String,
    /// Cadre concerned.
    pub subject: String,
    /// Category.
    pub category: String,
    /// Hex SHA-256 of the content kept off-ledger.
    pub content_hash: String,
    /// Organization handling it.
    #[serde(default)]
    pub organization: String,
    /// The complainant's identity sealed to a registered escrow key (`docs/ballots.md`); absent
    /// for complaints filed openly or before sealing existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_identity: Option<crate::seal::SealedIdentity>,
}

/// Outcome of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerificationOutcome {
    /// Confirmed.
    Substantiated,
    /// Partly confirmed.
    PartlySubstantiated,
    /// Not confirmed.
    Unsubstantiated,
    /// A deliberately false report.
    MaliciousFalseReport,
}

/// `verification`: the outcome of checking a complaint or dossier fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verification {
    /// Always 1.
    pub version: u32,
    /// Unique id.
    pub verification_id: String,
    /// `complaint_id` or `fact_id` checked.
    pub target_id: String,
    /// Outcome.
    pub outcome: VerificationOutcome,
    /// Summary.
    #[serde(default)]
    pub summary: String,
}

/// `decision`: appointment or promotion, signed by committee members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Always 1.
    pub version: u32,
    /// Unique id.
    pub decision_id: String,
    /// Cadre.
    pub subject: String,
    /// Nomination it decides.
    pub nomination_id: String,
    /// The draw or election it relied on.
    pub evaluation_ref: String,
    /// e.g. "appoint", "promote", "reject".
    pub outcome: String,
    /// Post.
    pub post: String,
    /// The evaluators whose opinions the committee relied on (pseudonymous ids); each should be
    /// among those the cited draw selected (`review` flags `EVALUATOR_NOT_FROM_DRAW` otherwise).
    #[serde(default)]
    pub evaluators: Vec<String>,
}

/// `accountability`: a finding that names those responsible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accountability {
    /// Always 1.
    pub version: u32,
    /// Unique id.
    pub accountability_id: String,
    /// Records (ids) the finding concerns.
    pub refs: Vec<String>,
    /// Pseudonymous ids of those held responsible.
    pub responsible: Vec<String>,
    /// The finding.
    pub finding: String,
    /// For a malicious false report: the unsealed identity of the complainant (the court's opening
    /// of the complaint's sealed identity), which ties the finding to a person (blacklist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opening: Option<CitedOpening>,
}

/// `escrow.key`: registers an escrow's X25519 public key (e.g. a court's) to which complainant
/// identities are sealed (docs/ballots.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscrowKey {
    /// Always 1.
    pub version: u32,
    /// Unique id that complaints name in `sealed_identity.escrow_id`.
    pub escrow_id: String,
    /// Standard base64 of the 32-byte X25519 public key.
    pub public_key: String,
    /// Who holds the secret key (e.g. "intermediate people's court of X").
    pub holder: String,
}

/// An unsealed complainant identity cited by an `accountability` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CitedOpening {
    /// The complaint whose sealed identity was opened.
    pub complaint_id: String,
    /// The opening (identity and salt) that matches the complaint's commitment.
    #[serde(flatten)]
    pub opening: crate::seal::Opening,
}

/// `cancellation`: voids an earlier record (never deletes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cancellation {
    /// Always 1.
    pub version: u32,
    /// Index of the record voided.
    pub target_index: u64,
    /// Why.
    pub reason: String,
}

/// A checked domain record.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Record {
    /// nomination
    Nomination(Nomination),
    /// pool.commit
    PoolCommit(PoolCommit),
    /// draw.commit
    DrawCommit(DrawCommit),
    /// draw.reveal
    DrawReveal(DrawReveal),
    /// draw.result
    DrawResult(DrawResult),
    /// draw.sources
    DrawSources(DrawSources),
    /// draw.void
    DrawVoid(DrawVoid),
    /// dossier.fact
    DossierFact(DossierFact),
    /// complaint
    Complaint(Complaint),
    /// verification
    Verification(Verification),
    /// decision
    Decision(Decision),
    /// accountability
    Accountability(Accountability),
    /// cancellation
    Cancellation(Cancellation),
    /// escrow.key
    EscrowKey(EscrowKey),
    /// election.open
    ElectionOpen(crate::election::ElectionOpen),
    /// credential.issued
    CredentialIssued(crate::election::CredentialIssued),
    /// ballot
    Ballot(crate::election::Ballot),
    /// tally
    Tally(crate::election::Tally),
    /// evaluation.micro
    MicroEvaluation(crate::election::MicroEvaluation),
    /// Kinds whose schema belongs to another module (registry records, notes, ballots…).
    Other,
}

fn hex32(field: &str, s: &str) -> Result<(), SchemaError> {
    if s.len() != 64 || !s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
        return Err(format!("{field} must be 64 lowercase hex digits").into());
    }
    Ok(())
}

fn parse<T: for<'de> Deserialize<'de>>(payload: &[u8]) -> Result<T, SchemaError> {
    Ok(serde_json::from_slice(payload)?)
}

/// Parses and validates a payload of `kind`. Kinds without a domain schema return [`Record::Other`].
///
/// # Errors
/// A description of what is wrong with the payload.
pub fn check_record(kind: &str, payload: &[u8]) -> Result<Record, SchemaError> {
    match kind {
        "nomination" | "pool.commit" | "draw.commit" | "draw.reveal" | "draw.result" | "draw.sources" | "draw.void" => {
            draw_record(kind, payload)
        }
        "dossier.fact" | "complaint" | "verification" | "decision" | "accountability" | "escrow.key"
        | "cancellation" => case_record(kind, payload),
        "election.open" | "credential.issued" | "ballot" | "tally" | "evaluation.micro" => {
            election_record(kind, payload)
        }
        _ => Ok(Record::Other),
    }
}

/// [`check_record`] for nominations, pools and draws.
fn draw_record(kind: &str, payload: &[u8]) -> Result<Record, SchemaError> {
    let r = match kind {
        "nomination" => {
            let r: Nomination = parse(payload)?;
            id_ok("nomination_id", &r.nomination_id)?;
            id_ok("subject", &r.subject)?;
            Record::Nomination(r)
        }
        "pool.commit" => {
            let r: PoolCommit = parse(payload)?;
            id_ok("pool_id", &r.pool_id)?;
            members_ok(&r.members)?;
            Record::PoolCommit(r)
        }
        "draw.commit" => {
            let r: DrawCommit = parse(payload)?;
            draw_commit_ok(&r)?;
            Record::DrawCommit(r)
        }
        "draw.reveal" => {
            let r: DrawReveal = parse(payload)?;
            id_ok("draw_id", &r.draw_id)?;
            if r.secret.is_empty() || r.secret.len() > 256 || hex::decode(&r.secret).is_err() {
                return Err("secret must be 1-128 bytes in hex".into());
            }
            Record::DrawReveal(r)
        }
        "draw.result" => {
            let r: DrawResult = parse(payload)?;
            id_ok("draw_id", &r.draw_id)?;
            hex32("seed", &r.seed)?;
            if !r.root_at_size.is_empty() || r.key.is_empty() {
                hex32("root_at_size", &r.root_at_size)?;
            }
            Record::DrawResult(r)
        }
        "draw.sources" => {
            let r: DrawSources = parse(payload)?;
            id_ok("draw_id", &r.draw_id)?;
            let key = crate::rfc3797::canonical_key(&r.values).map_err(|e| e.to_string())?;
            if key.len() > crate::rfc3797::MAX_KEY {
                return Err(format!(
                    "{DRAW_SOURCES_TOO_LONG}: the canonical key of these values is {} bytes, the limit is {}",
                    key.len(),
                    crate::rfc3797::MAX_KEY
                )
                .into());
            }
            Record::DrawSources(r)
        }
        "draw.void" => {
            let r: DrawVoid = parse(payload)?;
            id_ok("draw_id", &r.draw_id)?;
            if r.missing.is_empty() {
                return Err("a void names the missing parties".into());
            }
            Record::DrawVoid(r)
        }
        _ => Record::Other,
    };
    Ok(r)
}

/// [`check_record`] for dossier facts, complaints, verifications, decisions, accountability, escrows and cancellations.
fn case_record(kind: &str, payload: &[u8]) -> Result<Record, SchemaError> {
    let r = match kind {
        "dossier.fact" => {
            let r: DossierFact = parse(payload)?;
            id_ok("fact_id", &r.fact_id)?;
            id_ok("subject", &r.subject)?;
            hex32("content_hash", &r.content_hash)?;
            Record::DossierFact(r)
        }
        "complaint" => {
            let r: Complaint = parse(payload)?;
            id_ok("complaint_id", &r.complaint_id)?;
            id_ok("subject", &r.subject)?;
            hex32("content_hash", &r.content_hash)?;
            if let Some(s) = &r.sealed_identity {
                id_ok("escrow_id", &s.escrow_id)?;
                s.check().map_err(|e| format!("sealed_identity: {e}"))?;
            }
            Record::Complaint(r)
        }
        "verification" => {
            let r: Verification = parse(payload)?;
            id_ok("verification_id", &r.verification_id)?;
            id_ok("target_id", &r.target_id)?;
            Record::Verification(r)
        }
        "decision" => {
            let r: Decision = parse(payload)?;
            id_ok("decision_id", &r.decision_id)?;
            id_ok("subject", &r.subject)?;
            id_ok("nomination_id", &r.nomination_id)?;
            id_ok("evaluation_ref", &r.evaluation_ref)?;
            Record::Decision(r)
        }
        "accountability" => {
            let r: Accountability = parse(payload)?;
            id_ok("accountability_id", &r.accountability_id)?;
            if r.responsible.is_empty() {
                return Err("an accountability finding must name at least one responsible party".into());
            }
            if let Some(o) = &r.opening {
                id_ok("opening.complaint_id", &o.complaint_id)?;
            }
            Record::Accountability(r)
        }
        "escrow.key" => {
            let r: EscrowKey = parse(payload)?;
            id_ok("escrow_id", &r.escrow_id)?;
            id_ok("holder", &r.holder)?;
            crate::seal::EscrowPublicKey::from_base64(&r.public_key).map_err(|e| format!("public_key: {e}"))?;
            Record::EscrowKey(r)
        }
        "cancellation" => {
            let r: Cancellation = parse(payload)?;
            if r.reason.trim().is_empty() {
                return Err("a cancellation needs a reason".into());
            }
            Record::Cancellation(r)
        }
        _ => Record::Other,
    };
    Ok(r)
}

/// [`check_record`] for elections, credentials, ballots, tallies and micro-evaluations.
fn election_record(kind: &str, payload: &[u8]) -> Result<Record, SchemaError> {
    let r = match kind {
        "election.open" => {
            let r = parse(payload)?;
            crate::election::check_election_open(&r)?;
            Record::ElectionOpen(r)
        }
        "credential.issued" => {
            let r = parse(payload)?;
            crate::election::check_credential_issued(&r)?;
            Record::CredentialIssued(r)
        }
        "ballot" => {
            let r = parse(payload)?;
            crate::election::check_ballot(&r)?;
            Record::Ballot(r)
        }
        "tally" => {
            let r = parse(payload)?;
            crate::election::check_tally(&r)?;
            Record::Tally(r)
        }
        "evaluation.micro" => {
            let r = parse(payload)?;
            crate::election::check_micro(&r)?;
            Record::MicroEvaluation(r)
        }
        _ => Record::Other,
    };
    Ok(r)
}

fn members_ok(members: &[Member]) -> Result<(), SchemaError> {
    if members.len() > MAX_POOL {
        return Err(format!("at most {MAX_POOL} members").into());
    }
    for m in members {
        id_ok("member id", &m.id)?;
        if let Some(k) = &m.key {
            crate::keys::public_key_from_base64(k).map_err(|e| format!("member {:?}: key: {e}", m.id))?;
        }
    }
    let ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
    crate::draw::check_canonical(&ids).map_err(|e| SchemaError::Invalid(e.to_string()))
}

fn draw_commit_ok(r: &DrawCommit) -> Result<(), SchemaError> {
    id_ok("draw_id", &r.draw_id)?;
    algorithm_ok(r)?;
    if r.subjects.is_empty() {
        return Err("at least one subject".into());
    }
    parties_ok(r)?;
    members_ok(&r.pool)?;
    let excluded = exclusions_ok(r)?;
    purpose_ok(r, &excluded)
}

/// The algorithm's own fields: commit-reveal parties (`ledger-draw-v1`) or public sources
/// (`rfc3797`).
fn algorithm_ok(r: &DrawCommit) -> Result<(), SchemaError> {
    match r.algorithm.as_str() {
        ALG_LEDGER_DRAW_V1 => {
            if r.parties.is_empty() {
                return Err("at least one randomness party".into());
            }
            if !r.sources.is_empty() {
                return Err("public sources belong to rfc3797 draws".into());
            }
        }
        ALG_RFC3797 => {
            if r.sources.is_empty() {
                return Err("an rfc3797 draw names its public sources".into());
            }
            if r.sources.iter().any(|s| s.trim().is_empty() || s.len() > 1024) {
                return Err("each source is described in 1-1024 bytes".into());
            }
            if !r.parties.is_empty() || r.reveal_at_size != 0 {
                return Err("an rfc3797 draw has no commit-reveal parties and no reveal_at_size".into());
            }
            if r.purpose != DrawPurpose::EvaluatorSelection {
                return Err("rfc3797 supports evaluator_selection only".into());
            }
            if r.pool.len() > crate::rfc3797::MAX_POOL {
                return Err(format!("rfc3797 pools have at most {} members", crate::rfc3797::MAX_POOL).into());
            }
        }
        other => {
            return Err(format!("unknown algorithm {other:?}; supported: {ALG_LEDGER_DRAW_V1}, {ALG_RFC3797}").into());
        }
    }
    Ok(())
}

/// Party commitments and names (unique).
fn parties_ok(r: &DrawCommit) -> Result<(), SchemaError> {
    for p in &r.parties {
        hex32("party commitment", &p.commitment)?;
        id_ok("party name", &p.name)?;
    }
    let mut names: Vec<&str> = r.parties.iter().map(|p| p.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    if names.len() != r.parties.len() {
        return Err("party names must be unique".into());
    }
    Ok(())
}

/// Exclusions name pool members, with a reason; returns the excluded ids.
fn exclusions_ok(r: &DrawCommit) -> Result<BTreeSet<&str>, SchemaError> {
    // The pool is canonical (unique ids, sorted bytewise) by now: exclusions are found by binary
    // search, and every rule below is linear or n·log n in the payload's lists.
    let mut excluded: BTreeSet<&str> = BTreeSet::new();
    for x in &r.exclusions {
        if r.pool.binary_search_by(|m| m.id.as_str().cmp(&x.id)).is_err() {
            return Err(format!("excluded id {:?} is not in the pool", x.id).into());
        }
        if x.reason.trim().is_empty() {
            return Err(format!("exclusion of {:?} needs a reason", x.id).into());
        }
        excluded.insert(&x.id);
    }
    Ok(excluded)
}

/// The purpose's own fields: fillable strata, an eligible evaluator, or sound time windows.
fn purpose_ok(r: &DrawCommit, excluded: &BTreeSet<&str>) -> Result<(), SchemaError> {
    match r.purpose {
        DrawPurpose::EvaluatorSelection => {
            if r.strata.is_empty() {
                return Err("evaluator selection needs strata with quotas".into());
            }
            let mut names: BTreeSet<&str> = BTreeSet::new();
            for q in &r.strata {
                if !names.insert(&q.name) {
                    return Err(format!(
                        "{DRAW_STRATUM_REPEATED}: stratum {:?} is listed more than once in strata; list each stratum once with its quota",
                        q.name
                    ).into());
                }
            }
            let sum: u64 = r.strata.iter().map(|s| u64::from(s.quota)).sum();
            if sum != u64::from(r.k) {
                return Err(format!("k = {} but the quotas add up to {sum}", r.k).into());
            }
            // Every quota must be fillable, so that a draw with all its reveals always has a result.
            let mut eligible: BTreeMap<&str, usize> = BTreeMap::new();
            for m in r.pool.iter().filter(|m| !excluded.contains(m.id.as_str())) {
                *eligible.entry(&m.stratum).or_default() += 1;
            }
            for q in &r.strata {
                let eligible = eligible.get(q.name.as_str()).copied().unwrap_or(0);
                if eligible < q.quota as usize {
                    return Err(format!(
                        "stratum {:?} has {eligible} eligible members for a quota of {}",
                        q.name, q.quota
                    )
                    .into());
                }
            }
        }
        DrawPurpose::SubjectMatching => {
            if r.pool.len() <= r.exclusions.len() {
                return Err("subject matching needs at least one eligible evaluator".into());
            }
        }
        DrawPurpose::EvaluationTime => {
            if r.windows.is_empty() || r.windows.iter().any(|(a, b)| a >= b) {
                return Err("evaluation time needs non-empty windows [start, end)".into());
            }
            let total = r.windows.iter().try_fold(0u64, |t, (a, b)| t.checked_add(b - a));
            if total.is_none() {
                return Err("evaluation time windows are too long".into());
            }
        }
    }
    Ok(())
}
