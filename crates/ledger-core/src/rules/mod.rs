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

use crate::domain::Record;
use crate::dsse::Envelope;
use crate::hash::Hash;
use crate::registry::{Registry, Role};
use std::collections::{BTreeMap, BTreeSet, HashMap};

mod base;
pub mod code;
mod draws;
pub mod election;
pub mod snapshot;
pub mod tickets;

pub use draws::DrawState;

use code::err;
pub use code::{RuleCode, RuleError, UnknownRuleCode};
pub use tickets::{CheckError, TicketBacking, TicketLookupError, TicketSet};

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
pub const STATEMENT_KINDS: &[&str] = &[
    "note",
    "key.enroll",
    "key.rotate",
    "key.revoke",
    "node.rotate",
    "node.compromise",
    "cancellation",
];

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
    /// registry as of this index), and the ticket of a micro-evaluation against the backing of the
    /// ticket set when one is attached ([`election::ElectionState::check_ticket`]). Node and
    /// verifier both call this.
    ///
    /// # Errors
    /// The rule it breaks, or [`CheckError::Lookup`] when the ticket backing cannot answer.
    pub fn check_with_registry(
        &self,
        registry: &Registry,
        index: u64,
        timestamp_micros: u64,
        record: &Record,
        signers: &[String],
    ) -> Result<(), CheckError> {
        self.check_at(index, timestamp_micros, record, signers)?;
        if self.elections.tickets.is_backed() {
            self.elections.check_ticket(index, record)?;
        }
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
    /// `signers` (key ids). The authority rule of cancellations needs the registry, and a ticket
    /// held only by the ticket set's backing is found by: see [`Self::check_with_registry`].
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
            Record::DrawCommit(c) => self.check_draw_commit(index, c),
            Record::DrawReveal(r) => self.check_draw_reveal(index, timestamp_micros, r, signers),
            Record::DrawSources(r) => self.check_draw_sources(timestamp_micros, r),
            Record::DrawVoid(v) => self.check_draw_void(timestamp_micros, v),
            Record::DrawResult(r) => self.check_draw_result(r),
            Record::EscrowKey(k) => self.check_escrow_key(k),
            Record::Complaint(c) => self.check_complaint(c),
            Record::DossierFact(f) => self.check_dossier_fact(f),
            Record::Accountability(a) => self.check_accountability(a),
            Record::Verification(v) => self.check_verification(v),
            Record::Decision(dc) => self.check_decision(dc),
            Record::Cancellation(c) => self.check_cancellation(index, c),
            _ => Ok(()),
        }
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
        self.apply_draw(index, leaf_hash, record);
        match record {
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
}
