//! Cross-record rules of the domain (requirement R6/R7), replayable by anyone.
//!
//! [`DomainState`] follows the log entry by entry. The node calls [`DomainState::check`] before it
//! sequences a record (and refuses what breaks a rule) and [`DomainState::apply`] after; the
//! verifier does the same on replay. [`DomainState::observe_size`] must be called after every entry
//! so that a draw learns the root of the tree at its committed size T.
//!
//! Rules (docs/records.md and docs/draws.md list them with their codes):
//! - `draw.commit`: its `draw_id` is new; for `ledger-draw-v1`, T (`reveal_at_size`) is larger than
//!   the log size after the commit.
//! - `draw.reveal`: the draw exists and is open (no result, void or cancellation); the party was
//!   committed and the signer is the party's key; the log has reached size T (the reveal's index ≥
//!   T); the entry's time is not after the deadline; SHA-256(secret) equals the commitment; each
//!   party reveals once.
//! - `draw.sources` (`rfc3797` draws): the draw is open, its values are given once, one list per
//!   committed source, before the deadline.
//! - `draw.result`: all reveals (or the sources) are in, and the result equals the recomputation
//!   ([`DomainState::compute_result`]); one result per draw.
//! - `draw.void`: the draw is open, the entry's time is after the deadline, and `missing` names
//!   exactly the parties that did not reveal.
//! - `verification`: the target complaint or dossier fact exists.
//! - `decision`: the nomination exists (and is not cancelled) and the evaluation it cites is a draw
//!   with its result or an election with its tally (`DECISION_WITHOUT_EVALUATION`), neither
//!   cancelled (`DECISION_EVALUATION_CANCELLED`: the draw, or the election's draw); the decision's
//!   `subject` is the nomination's `subject` and one of the draw's (or election's) `subjects`
//!   (`DECISION_SUBJECT_MISMATCH`).
//! - Appended at most once: a record id of `nomination`, `pool.commit`, `dossier.fact`,
//!   `complaint`, `verification`, `decision` and `accountability` is never used twice for its kind,
//!   not even after a cancellation (`DUPLICATE_ID`; draws, escrows and elections have their own
//!   codes). A record of a kind without an id ([`STATEMENT_KINDS`]) is never appended twice with the
//!   same payload type and payload (`DUPLICATE_STATEMENT`, [`DomainState::check_statement`]).
//! - `escrow.key`: its id is new. `complaint`: its id is new and a sealed identity names a
//!   registered escrow. `accountability` citing an unsealed identity: the complaint was sealed, a
//!   verification of it concluded `malicious_false_report`, and the opening matches its commitment.
//! - `cancellation`: the target is an earlier domain record that may be cancelled and is not
//!   cancelled yet; [`cancellation_authority`] adds that a signer holds a role above every role of
//!   the target's signers. A cancelled draw takes no more reveals, sources or result.

use crate::domain::{ALG_RFC3797, DrawCommit, DrawPurpose, DrawResult, Record, StratumSelection};
use crate::draw;
use crate::dsse::Envelope;
use crate::hash::Hash;
use crate::registry::{Registry, Role};
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub mod code;
pub mod election;

use code::err;
pub use code::{RuleCode, RuleError, UnknownRuleCode};

/// State of one draw.
#[derive(Debug, Clone)]
pub struct DrawState {
    /// Index of the commit.
    pub commit_index: u64,
    /// Leaf hash of the commit entry.
    pub commit_leaf_hash: Hash,
    /// The commit.
    pub commit: DrawCommit,
    /// Root of the tree at size T, once reached.
    pub root_at_t: Option<Hash>,
    /// Revealed secrets by party name.
    pub reveals: BTreeMap<String, Vec<u8>>,
    /// Index of the result, once appended.
    pub result_index: Option<u64>,
    /// `rfc3797`: the published source values, once recorded.
    pub sources: Option<Vec<Vec<String>>>,
    /// Index of the node's `draw.void`, if the draw missed its deadline.
    pub void_index: Option<u64>,
    /// Index of the cancellation of the commit, if any.
    pub cancelled_at: Option<u64>,
}

impl DrawState {
    /// True for `rfc3797` draws.
    pub fn is_rfc3797(&self) -> bool {
        self.commit.algorithm == ALG_RFC3797
    }

    /// True when every committed party has revealed and the root at T is known (or, for
    /// `rfc3797`, the sources are recorded).
    pub fn ready(&self) -> bool {
        if self.is_rfc3797() {
            return self.sources.is_some();
        }
        self.root_at_t.is_some() && self.commit.parties.iter().all(|p| self.reveals.contains_key(&p.name))
    }

    /// True while the draw may still take reveals, sources or its result.
    pub fn open(&self) -> bool {
        self.result_index.is_none() && self.void_index.is_none() && self.cancelled_at.is_none()
    }

    /// What is still missing: unrevealed party names in commit order, or `"sources"`.
    pub fn missing(&self) -> Vec<String> {
        if self.is_rfc3797() {
            return if self.sources.is_none() {
                vec!["sources".into()]
            } else {
                vec![]
            };
        }
        self.commit
            .parties
            .iter()
            .filter(|p| !self.reveals.contains_key(&p.name))
            .map(|p| p.name.clone())
            .collect()
    }
}

/// Kinds that a `cancellation` may void.
pub const CANCELLABLE_KINDS: &[&str] = &[
    "nomination",
    "pool.commit",
    "draw.commit",
    "dossier.fact",
    "complaint",
    "verification",
    "decision",
    "accountability",
];

fn cancellable(record: &Record) -> bool {
    matches!(
        record,
        Record::Nomination(_)
            | Record::PoolCommit(_)
            | Record::DrawCommit(_)
            | Record::DossierFact(_)
            | Record::Complaint(_)
            | Record::Verification(_)
            | Record::Decision(_)
            | Record::Accountability(_)
    )
}

/// Kinds without a record id of their own and without another uniqueness rule: each signed
/// statement (payload type and payload) is appended at most once (`DUPLICATE_STATEMENT`).
pub const STATEMENT_KINDS: &[&str] = &["note", "key.enroll", "key.rotate", "key.revoke", "cancellation"];

/// The digest that identifies a signed statement: SHA-256 of the DSSE PAE(payloadType, payload),
/// the bytes every signature covers.
pub fn statement_digest(env: &Envelope) -> Hash {
    Hash::digest(&env.pae())
}

/// The kind and id of a record whose id must be new for its kind (`DUPLICATE_ID`).
fn record_id(record: &Record) -> Option<(&'static str, &str)> {
    Some(match record {
        Record::Nomination(n) => ("nomination", n.nomination_id.as_str()),
        Record::PoolCommit(p) => ("pool.commit", p.pool_id.as_str()),
        Record::DossierFact(f) => ("dossier.fact", f.fact_id.as_str()),
        Record::Complaint(c) => ("complaint", c.complaint_id.as_str()),
        Record::Verification(v) => ("verification", v.verification_id.as_str()),
        Record::Decision(d) => ("decision", d.decision_id.as_str()),
        Record::Accountability(a) => ("accountability", a.accountability_id.as_str()),
        _ => return None,
    })
}

/// Rank of a role for cancellations: a cancellation needs a signer ranked above every signer of
/// the record it voids. Administrator 3 > inspector 2 > registrar 1 > every other role 0.
pub fn role_rank(role: Role) -> u8 {
    match role {
        Role::Admin => 3,
        Role::Inspector => 2,
        Role::Registrar => 1,
        _ => 0,
    }
}

fn rank_of(registry: &Registry, signers: &[String]) -> u8 {
    signers
        .iter()
        .filter_map(|id| registry.keys.get(id))
        .flat_map(|k| k.roles.iter().copied().map(role_rank))
        .max()
        .unwrap_or(0)
}

/// The authority rule of cancellations: some signer of the cancellation holds a role ranked above
/// every role held by the signers of the target ([`role_rank`]). `target_signers` comes from
/// [`DomainState::signers_of`].
///
/// # Errors
/// `CANCELLATION_NOT_AUTHORIZED`.
pub fn cancellation_authority(
    registry: &Registry,
    target_index: u64,
    target_signers: &[String],
    signers: &[String],
) -> Result<(), RuleError> {
    let need = rank_of(registry, target_signers);
    let have = rank_of(registry, signers);
    if have <= need {
        return Err(err(
            RuleCode::CancellationNotAuthorized,
            format!(
                "entry {target_index} was signed with rank {need}; a cancellation needs a signer ranked above it \
                 (admin 3 > inspector 2 > registrar 1 > other roles 0), got rank {have}"
            ),
        ));
    }
    Ok(())
}

/// Domain state as of some index.
#[derive(Debug, Clone, Default)]
pub struct DomainState {
    /// Draws by id.
    pub draws: BTreeMap<String, DrawState>,
    /// Draws waiting for the tree to reach their T, by T.
    waiting: BTreeMap<u64, Vec<String>>,
    /// Complaint and dossier-fact ids.
    pub checkable: BTreeSet<String>,
    /// Nomination ids (not cancelled).
    pub nominations: BTreeSet<String>,
    /// Elections, ballots, tallies and micro-evaluations (`docs/ballots.md`).
    pub elections: election::ElectionState,
    /// Signers of every cancellable record, by index (domain records only, not ballots or
    /// micro-evaluations, so this stays small).
    cancellable: BTreeMap<u64, Vec<String>>,
    /// What each cancellable record declared, for the effects of a cancellation.
    declared: BTreeMap<u64, Declared>,
    /// Indices cancelled.
    pub cancelled: BTreeSet<u64>,
    /// Registered escrow keys: escrow id → index of its `escrow.key`.
    pub escrows: BTreeMap<String, u64>,
    /// Sealed complaints: complaint id → (commitment, a verification found a malicious false report).
    pub sealed: BTreeMap<String, (String, bool)>,
    /// Every record id used, by kind, kept after cancellations: (kind, id) → index of its record.
    pub ids: BTreeMap<(String, String), u64>,
    /// The subject of every nomination, by id (kept after a cancellation).
    pub nomination_subjects: BTreeMap<String, String>,
    /// [`statement_digest`] of every record of a [`STATEMENT_KINDS`] kind → its index.
    pub statements: HashMap<[u8; 32], u64>,
}

#[derive(Debug, Clone)]
enum Declared {
    Draw(String),
    Nomination(String),
    Other,
}

impl DomainState {
    /// Checks a record about to be appended at `index` with time `timestamp_micros` and verified
    /// `signers` (key ids), including the authority rule of cancellations against `registry` (the
    /// registry as of this index). Node and verifier both call this.
    ///
    /// # Errors
    /// The rule it breaks.
    pub fn check_with_registry(
        &self,
        registry: &Registry,
        index: u64,
        timestamp_micros: u64,
        record: &Record,
        signers: &[String],
    ) -> Result<(), RuleError> {
        self.check_at(index, timestamp_micros, record, signers)?;
        if let Record::Cancellation(c) = record {
            cancellation_authority(registry, c.target_index, self.signers_of(c.target_index), signers)?;
        }
        Ok(())
    }

    /// The `DUPLICATE_STATEMENT` rule for a record of `kind` in envelope `env`: a record of a kind
    /// without an id ([`STATEMENT_KINDS`]) whose payload type and payload are already in the log is
    /// refused. Other kinds pass. Node and verifier call this before the registry applies a key
    /// record, and [`Self::apply_statement`] after the record is appended.
    ///
    /// # Errors
    /// `DUPLICATE_STATEMENT`, naming the earlier index.
    pub fn check_statement(&self, kind: &str, env: &Envelope) -> Result<(), RuleError> {
        if !STATEMENT_KINDS.contains(&kind) {
            return Ok(());
        }
        match self.statements.get(&statement_digest(env).0) {
            Some(at) => Err(err(
                RuleCode::DuplicateStatement,
                format!(
                    "this signed {kind} (same payload type and payload) is already entry {at}; a record is appended at most once"
                ),
            )),
            None => Ok(()),
        }
    }

    /// Records the statement of an appended record of `kind` at `index` (see
    /// [`Self::check_statement`]).
    pub fn apply_statement(&mut self, index: u64, kind: &str, env: &Envelope) {
        if STATEMENT_KINDS.contains(&kind) {
            self.statements.entry(statement_digest(env).0).or_insert(index);
        }
    }

    /// Signers of a cancellable record (empty when `index` is not one).
    pub fn signers_of(&self, index: u64) -> &[String] {
        self.cancellable.get(&index).map_or(&[], Vec::as_slice)
    }

    /// Checks a record about to be appended at `index` with time `timestamp_micros` and verified
    /// `signers` (key ids). The authority rule of cancellations needs the registry: see
    /// [`Self::check_with_registry`].
    ///
    /// # Errors
    /// The rule it breaks.
    pub fn check_at(
        &self,
        index: u64,
        timestamp_micros: u64,
        record: &Record,
        signers: &[String],
    ) -> Result<(), RuleError> {
        self.check_base(index, timestamp_micros, record, signers)?;
        self.elections.check(index, timestamp_micros, record, signers)
    }

    fn check_base(
        &self,
        index: u64,
        timestamp_micros: u64,
        record: &Record,
        signers: &[String],
    ) -> Result<(), RuleError> {
        if let Some((kind, id)) = record_id(record)
            && let Some(at) = self.ids.get(&(kind.to_string(), id.to_string()))
        {
            return Err(err(
                RuleCode::DuplicateId,
                format!("{kind} id {id:?} was already used at entry {at}; a record is appended at most once"),
            ));
        }
        match record {
            Record::DrawCommit(c) => {
                if let Some(d) = self.draws.get(&c.draw_id) {
                    return Err(err(
                        RuleCode::DuplicateDraw,
                        format!("draw {} was already committed at entry {}", c.draw_id, d.commit_index),
                    ));
                }
                if c.algorithm != ALG_RFC3797 && c.reveal_at_size <= index + 1 {
                    return Err(err(
                        RuleCode::DrawSizeNotFuture,
                        format!(
                            "reveal_at_size {} must exceed the log size after this commit ({})",
                            c.reveal_at_size,
                            index + 1
                        ),
                    ));
                }
            }
            Record::DrawReveal(r) => {
                let d = self.open_draw(&r.draw_id)?;
                if timestamp_micros > d.commit.reveal_deadline_micros {
                    return Err(err(
                        RuleCode::RevealLate,
                        format!(
                            "draw {} closed for reveals at {} (this entry is at {timestamp_micros})",
                            r.draw_id, d.commit.reveal_deadline_micros
                        ),
                    ));
                }
                let p = d.commit.parties.iter().find(|p| p.name == r.party).ok_or_else(|| {
                    err(
                        RuleCode::RevealUnknownParty,
                        format!("{:?} is not a committed party of {}", r.party, r.draw_id),
                    )
                })?;
                if !signers.contains(&p.keyid) {
                    return Err(err(
                        RuleCode::RevealWrongSigner,
                        format!("the reveal of {:?} must be signed by key {}", p.name, p.keyid),
                    ));
                }
                if index < d.commit.reveal_at_size {
                    return Err(err(
                        RuleCode::RevealTooEarly,
                        format!(
                            "draw {} reveals only once the log has {} entries (this would be entry {index})",
                            r.draw_id, d.commit.reveal_at_size
                        ),
                    ));
                }
                if d.reveals.contains_key(&r.party) {
                    return Err(err(
                        RuleCode::RevealDuplicate,
                        format!("{:?} already revealed for {}", r.party, r.draw_id),
                    ));
                }
                let secret = hex::decode(&r.secret).map_err(|_| err(RuleCode::RevealMismatch, "secret is not hex"))?;
                if Hash::digest(&secret).to_hex() != p.commitment {
                    return Err(err(
                        RuleCode::RevealMismatch,
                        format!("SHA-256 of the secret is not {:?}'s commitment", p.name),
                    ));
                }
            }
            Record::DrawSources(r) => {
                let d = self.open_draw(&r.draw_id)?;
                if !d.is_rfc3797() {
                    return Err(err(
                        RuleCode::SourcesNotRfc3797,
                        format!("draw {} uses {}, not rfc3797", r.draw_id, d.commit.algorithm),
                    ));
                }
                if d.sources.is_some() {
                    return Err(err(
                        RuleCode::SourcesDuplicate,
                        format!("the sources of draw {} are already recorded", r.draw_id),
                    ));
                }
                if timestamp_micros > d.commit.reveal_deadline_micros {
                    return Err(err(
                        RuleCode::RevealLate,
                        format!(
                            "draw {} closed for its sources at {} (this entry is at {timestamp_micros})",
                            r.draw_id, d.commit.reveal_deadline_micros
                        ),
                    ));
                }
                if r.values.len() != d.commit.sources.len() {
                    return Err(err(
                        RuleCode::SourcesMismatch,
                        format!(
                            "draw {} committed {} sources; {} value lists given",
                            r.draw_id,
                            d.commit.sources.len(),
                            r.values.len()
                        ),
                    ));
                }
            }
            Record::DrawVoid(v) => {
                let d = self.open_draw(&v.draw_id)?;
                if timestamp_micros <= d.commit.reveal_deadline_micros
                    || v.deadline_micros != d.commit.reveal_deadline_micros
                {
                    return Err(err(
                        RuleCode::VoidBeforeDeadline,
                        format!(
                            "draw {} may be voided only after its deadline {}",
                            v.draw_id, d.commit.reveal_deadline_micros
                        ),
                    ));
                }
                let missing = d.missing();
                if missing.is_empty() || missing != v.missing {
                    return Err(err(
                        RuleCode::VoidMismatch,
                        format!("draw {}: the missing parties are {missing:?}", v.draw_id),
                    ));
                }
            }
            Record::DrawResult(r) => {
                let d = self.draw(&r.draw_id)?;
                if d.result_index.is_some() {
                    return Err(err(
                        RuleCode::DuplicateResult,
                        format!("draw {} already has a result", r.draw_id),
                    ));
                }
                self.open_draw(&r.draw_id)?;
                let expected = self.compute_result(&r.draw_id)?;
                if expected != *r {
                    return Err(err(
                        RuleCode::DrawResultMismatch,
                        format!("draw {}: recomputation gives {expected:?}", r.draw_id),
                    ));
                }
            }
            Record::EscrowKey(k) if self.escrows.contains_key(&k.escrow_id) => {
                return Err(err(
                    RuleCode::EscrowDuplicate,
                    format!(
                        "escrow {:?} is already registered at entry {}",
                        k.escrow_id,
                        self.escrows.get(&k.escrow_id).copied().unwrap_or_default()
                    ),
                ));
            }
            Record::Complaint(c) => {
                if self.checkable.contains(&c.complaint_id) {
                    return Err(err(
                        RuleCode::DuplicateId,
                        format!("id {:?} is already used", c.complaint_id),
                    ));
                }
                if let Some(s) = &c.sealed_identity
                    && !self.escrows.contains_key(&s.escrow_id)
                {
                    return Err(err(
                        RuleCode::EscrowUnknown,
                        format!("no escrow.key registers {:?}", s.escrow_id),
                    ));
                }
            }
            Record::DossierFact(f) if self.checkable.contains(&f.fact_id) => {
                return Err(err(
                    RuleCode::DuplicateId,
                    format!("id {:?} is already used", f.fact_id),
                ));
            }
            Record::Accountability(a) => {
                if let Some(o) = &a.opening {
                    let (commitment, malicious) = self.sealed.get(&o.complaint_id).ok_or_else(|| {
                        err(
                            RuleCode::OpeningComplaintUnknown,
                            format!("no complaint {:?} with a sealed identity", o.complaint_id),
                        )
                    })?;
                    if !malicious {
                        return Err(err(
                            RuleCode::AccountabilityWithoutFinding,
                            format!(
                                "no verification of {:?} concluded malicious_false_report: an identity is unsealed \
                                 into the record only for a malicious false report",
                                o.complaint_id
                            ),
                        ));
                    }
                    o.opening.verify(commitment).map_err(|e| {
                        err(
                            RuleCode::OpeningMismatch,
                            format!("the opening does not match the commitment of {:?}: {e}", o.complaint_id),
                        )
                    })?;
                }
            }
            Record::Verification(v) if !self.checkable.contains(&v.target_id) => {
                return Err(err(
                    RuleCode::VerificationTargetUnknown,
                    format!("no complaint or dossier fact {:?}", v.target_id),
                ));
            }
            Record::Decision(dc) => self.check_decision(dc)?,
            Record::Cancellation(c) => {
                if c.target_index >= index || !self.cancellable.contains_key(&c.target_index) {
                    return Err(err(
                        RuleCode::CancellationTargetUnknown,
                        format!(
                            "index {} is not an earlier record that may be cancelled ({})",
                            c.target_index,
                            CANCELLABLE_KINDS.join(", ")
                        ),
                    ));
                }
                if self.cancelled.contains(&c.target_index) {
                    return Err(err(
                        RuleCode::CancellationDuplicate,
                        format!("entry {} is already cancelled", c.target_index),
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn check_decision(&self, dc: &crate::domain::Decision) -> Result<(), RuleError> {
        if !self.nominations.contains(&dc.nomination_id) {
            let why = if self.nomination_subjects.contains_key(&dc.nomination_id) {
                "was cancelled"
            } else {
                "does not exist"
            };
            return Err(err(
                RuleCode::DecisionWithoutNomination,
                format!("nomination {:?} {why}", dc.nomination_id),
            ));
        }
        if let Some(s) = self.nomination_subjects.get(&dc.nomination_id)
            && *s != dc.subject
        {
            return Err(err(
                RuleCode::DecisionSubjectMismatch,
                format!(
                    "the decision is about {:?} but nomination {:?} nominates {s:?}",
                    dc.subject, dc.nomination_id
                ),
            ));
        }
        let draw = self.draws.get(&dc.evaluation_ref);
        let election = self
            .elections
            .elections
            .get(&dc.evaluation_ref)
            .filter(|e| e.tally_index.is_some());
        // (what the evaluation was about, the cancellation of its draw if any)
        let cited = match (draw.filter(|d| d.result_index.is_some()), election) {
            (Some(d), _) => Some((&d.commit.subjects, d.cancelled_at, "draw")),
            (None, Some(e)) => Some((
                &e.open.subjects,
                self.draws.get(&e.open.draw_id).and_then(|d| d.cancelled_at),
                "election (its draw)",
            )),
            (None, None) => None,
        };
        let Some((subjects, cancelled_at, what)) = cited else {
            if let Some(at) = draw.and_then(|d| d.cancelled_at) {
                return Err(err(
                    RuleCode::DecisionEvaluationCancelled,
                    format!("draw {:?} was cancelled at entry {at}", dc.evaluation_ref),
                ));
            }
            return Err(err(
                RuleCode::DecisionWithoutEvaluation,
                format!(
                    "{:?} is neither a draw with its result nor an election with its tally",
                    dc.evaluation_ref
                ),
            ));
        };
        if let Some(at) = cancelled_at {
            return Err(err(
                RuleCode::DecisionEvaluationCancelled,
                format!("the {what} {:?} was cancelled at entry {at}", dc.evaluation_ref),
            ));
        }
        if !subjects.contains(&dc.subject) {
            return Err(err(
                RuleCode::DecisionSubjectMismatch,
                format!(
                    "the decision is about {:?} but {what} {:?} evaluated {subjects:?}",
                    dc.subject, dc.evaluation_ref
                ),
            ));
        }
        Ok(())
    }

    fn draw(&self, id: &str) -> Result<&DrawState, RuleError> {
        self.draws
            .get(id)
            .ok_or_else(|| err(RuleCode::DrawUnknown, format!("no draw {id:?} was committed")))
    }

    fn open_draw(&self, id: &str) -> Result<&DrawState, RuleError> {
        let d = self.draw(id)?;
        let why = match (d.result_index, d.void_index, d.cancelled_at) {
            (Some(i), _, _) => format!("has its result at entry {i}"),
            (_, Some(i), _) => format!("was voided at entry {i}"),
            (_, _, Some(i)) => format!("was cancelled at entry {i}"),
            _ => return Ok(d),
        };
        Err(err(RuleCode::DrawClosed, format!("draw {id} {why}")))
    }

    /// Applies a record that passed [`Self::check_at`] at `index`, with leaf hash `leaf_hash` and
    /// the verified `signers`.
    pub fn apply_at(&mut self, index: u64, leaf_hash: &Hash, record: &Record, signers: &[String]) {
        if cancellable(record) {
            self.cancellable.insert(index, signers.to_vec());
            let declared = match record {
                Record::DrawCommit(c) => Declared::Draw(c.draw_id.clone()),
                Record::Nomination(n) => Declared::Nomination(n.nomination_id.clone()),
                _ => Declared::Other,
            };
            self.declared.insert(index, declared);
        }
        if let Some((kind, id)) = record_id(record) {
            self.ids.entry((kind.to_string(), id.to_string())).or_insert(index);
        }
        self.elections.apply(index, record);
        match record {
            Record::DrawCommit(c) => {
                self.waiting
                    .entry(c.reveal_at_size)
                    .or_default()
                    .push(c.draw_id.clone());
                self.draws.insert(
                    c.draw_id.clone(),
                    DrawState {
                        commit_index: index,
                        commit_leaf_hash: *leaf_hash,
                        commit: c.clone(),
                        root_at_t: None,
                        reveals: BTreeMap::new(),
                        result_index: None,
                        sources: None,
                        void_index: None,
                        cancelled_at: None,
                    },
                );
            }
            Record::DrawSources(r) => {
                if let Some(d) = self.draws.get_mut(&r.draw_id) {
                    d.sources = Some(r.values.clone());
                }
            }
            Record::DrawVoid(v) => {
                if let Some(d) = self.draws.get_mut(&v.draw_id) {
                    d.void_index = Some(index);
                }
            }
            Record::Cancellation(c) => {
                self.cancelled.insert(c.target_index);
                match self.declared.get(&c.target_index) {
                    Some(Declared::Draw(id)) => {
                        if let Some(d) = self.draws.get_mut(id) {
                            d.cancelled_at = Some(index);
                        }
                    }
                    Some(Declared::Nomination(id)) => {
                        self.nominations.remove(id);
                    }
                    _ => {}
                }
            }
            Record::DrawReveal(r) => {
                if let (Some(d), Ok(s)) = (self.draws.get_mut(&r.draw_id), hex::decode(&r.secret)) {
                    d.reveals.insert(r.party.clone(), s);
                }
            }
            Record::DrawResult(r) => {
                if let Some(d) = self.draws.get_mut(&r.draw_id) {
                    d.result_index = Some(index);
                }
            }
            Record::Complaint(c) => {
                self.checkable.insert(c.complaint_id.clone());
                if let Some(sealed) = &c.sealed_identity {
                    self.sealed
                        .insert(c.complaint_id.clone(), (sealed.commitment.clone(), false));
                }
            }
            Record::EscrowKey(k) => {
                self.escrows.insert(k.escrow_id.clone(), index);
            }
            Record::Verification(v) if v.outcome == crate::domain::VerificationOutcome::MaliciousFalseReport => {
                if let Some(s) = self.sealed.get_mut(&v.target_id) {
                    s.1 = true;
                }
            }
            Record::DossierFact(f) => {
                self.checkable.insert(f.fact_id.clone());
            }
            Record::Nomination(n) => {
                self.nominations.insert(n.nomination_id.clone());
                self.nomination_subjects
                    .entry(n.nomination_id.clone())
                    .or_insert_with(|| n.subject.clone());
            }
            _ => {}
        }
    }

    /// Tells the state the log now has `size` entries with `root`: draws committed to this size
    /// learn their root.
    pub fn observe_size(&mut self, size: u64, root: &Hash) {
        if let Some(ids) = self.waiting.remove(&size) {
            for id in ids {
                if let Some(d) = self.draws.get_mut(&id) {
                    d.root_at_t = Some(*root);
                }
            }
        }
    }

    /// Draws whose reveals (or sources) are all in and whose result is not yet appended.
    pub fn ready_draws(&self) -> Vec<String> {
        self.draws
            .iter()
            .filter(|(_, d)| d.ready() && d.open())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Open draws whose deadline is before `now_micros` with something still missing: the node
    /// voids them (`draw.void`), and the verifier flags them `DRAW_ABANDONED` when it never did.
    /// Returns (draw id, missing parties).
    pub fn overdue_draws(&self, now_micros: u64) -> Vec<(String, Vec<String>)> {
        self.draws
            .iter()
            .filter(|(_, d)| d.open() && d.commit.reveal_deadline_micros < now_micros && !d.ready())
            .map(|(id, d)| (id.clone(), d.missing()))
            .collect()
    }

    /// Recomputes the result of a draw (docs/draws.md).
    ///
    /// # Errors
    /// When the draw is unknown, not ready, or its inputs cannot be drawn from.
    pub fn compute_result(&self, id: &str) -> Result<DrawResult, RuleError> {
        let d = self.draw(id)?;
        if d.is_rfc3797() {
            return compute_rfc3797(d);
        }
        let root = d.root_at_t.ok_or_else(|| {
            err(
                RuleCode::DrawNotReady,
                format!("the log has not reached size {}", d.commit.reveal_at_size),
            )
        })?;
        let mut secrets: Vec<&[u8]> = Vec::new();
        for p in &d.commit.parties {
            secrets.push(
                d.reveals
                    .get(&p.name)
                    .ok_or_else(|| err(RuleCode::DrawNotReady, format!("{:?} has not revealed", p.name)))?,
            );
        }
        let seed = draw::seed(&d.commit_leaf_hash, &root, &secrets);
        let c = &d.commit;
        let excluded: BTreeSet<&str> = c.exclusions.iter().map(|x| x.id.as_str()).collect();
        let eligible: Vec<&crate::domain::Member> =
            c.pool.iter().filter(|m| !excluded.contains(m.id.as_str())).collect();
        let mut out = DrawResult {
            version: 1,
            draw_id: c.draw_id.clone(),
            seed: seed.to_hex(),
            root_at_size: root.to_hex(),
            key: String::new(),
            selection: vec![],
            assignment: vec![],
            minute: None,
        };
        let bad = |e: draw::DrawError| err(RuleCode::DrawImpossible, e.to_string());
        match c.purpose {
            DrawPurpose::EvaluatorSelection => {
                // Eligible members grouped by stratum once (canonical order kept): linear, not
                // strata × pool.
                let mut by_stratum: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
                for m in &eligible {
                    by_stratum.entry(&m.stratum).or_default().push(&m.id);
                }
                let strata: Vec<draw::Stratum> = c
                    .strata
                    .iter()
                    .map(|q| draw::Stratum {
                        name: &q.name,
                        members: by_stratum.get(q.name.as_str()).cloned().unwrap_or_default(),
                        quota: q.quota as usize,
                    })
                    .collect();
                out.selection = draw::select_stratified(&seed, &strata)
                    .map_err(bad)?
                    .into_iter()
                    .map(|(s, ids)| StratumSelection {
                        stratum: s.to_string(),
                        selected: ids.into_iter().map(String::from).collect(),
                    })
                    .collect();
            }
            DrawPurpose::SubjectMatching => {
                let ev: Vec<&str> = eligible.iter().map(|m| m.id.as_str()).collect();
                let subs: Vec<&str> = c.subjects.iter().map(String::as_str).collect();
                out.assignment = draw::match_subjects(&seed, &ev, &subs)
                    .map_err(bad)?
                    .into_iter()
                    .map(|(s, e)| crate::domain::Assignment {
                        subject: s.to_string(),
                        evaluators: e.into_iter().map(String::from).collect(),
                    })
                    .collect();
            }
            DrawPurpose::EvaluationTime => {
                out.minute = Some(draw::select_minute(&seed, &c.windows).map_err(bad)?);
            }
        }
        Ok(out)
    }
}

/// The result of an `rfc3797` draw (docs/draws.md): the RFC 3797 key from the sources, the full
/// selection order over the eligible pool (canonical order, positions 1..n), walked in that order
/// taking each member whose stratum still has room. With one stratum this is exactly RFC 3797.
fn compute_rfc3797(d: &DrawState) -> Result<DrawResult, RuleError> {
    let c = &d.commit;
    let values = d.sources.as_ref().ok_or_else(|| {
        err(
            RuleCode::DrawNotReady,
            format!("the sources of draw {} are not recorded", c.draw_id),
        )
    })?;
    let key = crate::rfc3797::canonical_key(values).map_err(|e| err(RuleCode::DrawImpossible, e.to_string()))?;
    let excluded: BTreeSet<&str> = c.exclusions.iter().map(|x| x.id.as_str()).collect();
    let eligible: Vec<&crate::domain::Member> = c.pool.iter().filter(|m| !excluded.contains(m.id.as_str())).collect();
    let order = crate::rfc3797::select(eligible.len(), &key, eligible.len())
        .map_err(|e| err(RuleCode::DrawImpossible, e.to_string()))?;
    let mut room: BTreeMap<&str, usize> = c.strata.iter().map(|q| (q.name.as_str(), q.quota as usize)).collect();
    let mut selection: Vec<StratumSelection> = c
        .strata
        .iter()
        .map(|q| StratumSelection {
            stratum: q.name.clone(),
            selected: vec![],
        })
        .collect();
    // Position of each stratum's (first) selection, looked up per member instead of scanned.
    let mut slot: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, q) in c.strata.iter().enumerate() {
        slot.entry(q.name.as_str()).or_insert(i);
    }
    for pos in order {
        let m = eligible[pos - 1];
        if let Some(left) = room.get_mut(m.stratum.as_str())
            && *left > 0
        {
            *left -= 1;
            if let Some(s) = slot.get(m.stratum.as_str()).and_then(|i| selection.get_mut(*i)) {
                s.selected.push(m.id.clone());
            }
        }
    }
    if let Some((name, left)) = room.iter().find(|(_, l)| **l > 0) {
        return Err(err(
            RuleCode::DrawImpossible,
            format!("stratum {name:?} has {left} fewer eligible members than its quota"),
        ));
    }
    Ok(DrawResult {
        version: 1,
        draw_id: c.draw_id.clone(),
        seed: Hash::digest(key.as_bytes()).to_hex(),
        root_at_size: String::new(),
        key,
        selection,
        assignment: vec![],
        minute: None,
    })
}
