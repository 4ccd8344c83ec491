//! Cross-record rules of elections, ballots, tallies and micro-evaluations (requirement R8,
//! `docs/ballots.md`), replayable by anyone.
//!
//! [`ElectionState`] is plain data that follows the log. [`super::DomainState`] owns one and
//! delegates to it from `check_at`/`apply`; node and verifier thus run the same rules:
//!
//! - `election.open`: new id (`ELECTION_DUPLICATE`); its draw has a result
//!   (`ELECTION_DRAW_NOT_READY`) that selected at least one evaluator for it
//!   (`ELECTION_NO_EVALUATORS`); it closes after the entry's time (`ELECTION_ALREADY_CLOSED`).
//! - `credential.issued`: the election exists (`ELECTION_UNKNOWN`) and has not closed
//!   (`CREDENTIAL_AFTER_CLOSE`); the evaluator was drawn for it (`CREDENTIAL_NOT_DRAWN`) and has
//!   no credential yet (`CREDENTIAL_DUPLICATE`) — so credentials never outnumber drawn evaluators;
//!   when the evaluator's entry in the draw's pool has a key, the record carries the evaluator's
//!   valid request signature by it, and a record for an evaluator without a key carries none
//!   (`CREDENTIAL_NOT_REQUESTED`).
//! - `ballot`: the election exists (`ELECTION_UNKNOWN`); the entry's time is in
//!   `[opens_at, closes_at)` (`BALLOT_LATE`, also for early ballots); the envelope's only signer is
//!   the ballot's one-time key and the credential verifies for this election and key
//!   (`BALLOT_INELIGIBLE`); the credential was not used before (`BALLOT_DUPLICATE`); it scores
//!   every subject once, in order, within range (`BALLOT_INVALID`); ballots never outnumber
//!   credentials issued (`MORE_BALLOTS_THAN_CREDENTIALS`).
//! - `tally`: the election exists; its time is at or after the close (`TALLY_TOO_EARLY`); one per
//!   election (`TALLY_DUPLICATE`); it equals the recomputation ([`ElectionState::compute_tally`])
//!   (`TALLY_MISMATCH`).
//! - `evaluation.micro`: `service_time_micros` is not after the entry's time and at most
//!   [`MICRO_MAX_AGE_MICROS`] (400 days) before it (`MICRO_TIME_OUT_OF_RANGE`); no ticket hash was
//!   rated before (`MICRO_DUPLICATE_TICKET`). The rated tickets are a [`TicketSet`]: recent ones in
//!   memory, older ones in its backing when one is attached; [`ElectionState::check`] asks memory
//!   only and [`ElectionState::check_ticket`] also the backing (a lookup that fails is a
//!   [`CheckError::Lookup`], not a rule code).

use super::code::{RuleCode, RuleError, err};
use super::tickets::{CheckError, TicketSet, ticket_key};
use crate::credential::IssuerPublicKey;
use crate::domain::Record;
use crate::election::{Ballot, CredentialIssued, ElectionOpen, MicroEvaluation, Tally, tally};
use std::collections::{BTreeMap, BTreeSet};

/// The evaluators a draw result selected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrawnEvaluators {
    /// Evaluator selection: every selected id, all strata.
    pub selected: BTreeSet<String>,
    /// Subject matching: evaluators by subject.
    pub assigned: BTreeMap<String, BTreeSet<String>>,
}

impl DrawnEvaluators {
    /// The evaluators a `draw.result` selected or assigned.
    pub fn of_result(r: &crate::domain::DrawResult) -> Self {
        Self {
            selected: r.selection.iter().flat_map(|s| s.selected.iter().cloned()).collect(),
            assigned: r
                .assignment
                .iter()
                .map(|a| (a.subject.clone(), a.evaluators.iter().cloned().collect()))
                .collect(),
        }
    }

    /// Who may vote in an election on `subjects`: all selected evaluators and those assigned to
    /// one of the subjects.
    pub fn eligible(&self, subjects: &[String]) -> BTreeSet<String> {
        let mut out = self.selected.clone();
        for s in subjects {
            if let Some(a) = self.assigned.get(s) {
                out.extend(a.iter().cloned());
            }
        }
        out
    }
}

/// State of one election.
#[derive(Debug, Clone)]
pub struct ElectionInfo {
    /// Index of the `election.open`.
    pub open_index: u64,
    /// The record.
    pub open: ElectionOpen,
    /// Its parsed credential key.
    pub key: IssuerPublicKey,
    /// Drawn evaluators who may receive a credential.
    pub eligible: BTreeSet<String>,
    /// Pool keys of the eligible evaluators who have one (they must sign their requests).
    pub keys: BTreeMap<String, ed25519_dalek::VerifyingKey>,
    /// Evaluators who received one.
    pub issued: BTreeSet<String>,
    /// Of those, the ones whose request signature the record carries (requested personally).
    pub requested: BTreeSet<String>,
    /// One-time keys of accepted ballots (a credential certifies exactly one key).
    pub used_keys: BTreeSet<[u8; 32]>,
    /// Accepted ballots with their log index, in log order.
    pub ballots: Vec<(u64, Ballot)>,
    /// Index of the tally, once appended.
    pub tally_index: Option<u64>,
}

/// One UTC day in microseconds: micro-evaluations are aggregated per day of service.
pub const DAY_MICROS: u64 = 86_400_000_000;

/// How long before its entry's (node-assigned) time a service may lie to be rated: 400 days.
pub const MICRO_MAX_AGE_MICROS: u64 = 400 * DAY_MICROS;

/// Per (subject, department, UTC day of service): (count, sum of ratings). Grows with subjects ×
/// departments × days, not with the number of ratings.
pub type MicroRatings = BTreeMap<(String, String, u64), (u64, u64)>;

/// Aggregate of micro-evaluations for one subject and department over a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MicroAggregate {
    /// Subject.
    pub subject: String,
    /// Department.
    pub department: String,
    /// Ratings in the period.
    pub count: u64,
    /// Their sum (mean = sum / count).
    pub sum: u64,
}

/// Elections and micro-evaluations as of some index.
#[derive(Debug, Clone, Default)]
pub struct ElectionState {
    /// Elections by id.
    pub elections: BTreeMap<String, ElectionInfo>,
    /// Evaluators selected by each draw with a result, by draw id.
    pub drawn: BTreeMap<String, DrawnEvaluators>,
    /// Pool members' keys of each draw commitment, by draw id (only members with a key).
    pub pool_keys: BTreeMap<String, BTreeMap<String, ed25519_dalek::VerifyingKey>>,
    /// Rated ticket hashes → index of the rating: the one part of the state that grows with the
    /// number of micro-evaluations. In memory only without a backing; with one (node: the store,
    /// verifier: a temporary index) only the tickets not yet durable stay in memory.
    pub tickets: TicketSet,
    /// Micro-evaluation ratings.
    pub micro: MicroRatings,
}

impl ElectionState {
    fn election(&self, id: &str) -> Result<&ElectionInfo, RuleError> {
        self.elections
            .get(id)
            .ok_or_else(|| err(RuleCode::ElectionUnknown, format!("no election {id:?} was opened")))
    }

    /// Checks a record about to be appended at `index` with entry time `timestamp_micros` and
    /// verified `signers` (key ids). Records of other kinds pass. The ticket of a micro-evaluation
    /// is looked up in memory only; [`Self::check_ticket`] asks the backing too.
    ///
    /// # Errors
    /// The rule it breaks.
    pub fn check(
        &self,
        index: u64,
        timestamp_micros: u64,
        record: &Record,
        signers: &[String],
    ) -> Result<(), RuleError> {
        let _ = index;
        match record {
            Record::ElectionOpen(o) => self.check_open(timestamp_micros, o),
            Record::CredentialIssued(c) => self.check_credential(timestamp_micros, c),
            Record::Ballot(b) => self.check_ballot(timestamp_micros, b, signers),
            Record::Tally(t) => self.check_tally(timestamp_micros, t),
            Record::MicroEvaluation(m) => self.check_micro(timestamp_micros, m),
            _ => Ok(()),
        }
    }

    /// The ticket rule of a micro-evaluation about to be appended at `index`, against memory and
    /// the backing of [`Self::tickets`]. Other records pass.
    ///
    /// # Errors
    /// `MICRO_DUPLICATE_TICKET` naming the earlier entry, or [`CheckError::Lookup`] when the
    /// backing cannot answer (the record is then neither accepted nor judged).
    pub fn check_ticket(&self, index: u64, record: &Record) -> Result<(), CheckError> {
        let Record::MicroEvaluation(m) = record else {
            return Ok(());
        };
        let Some(k) = ticket_key(&m.ticket_hash) else {
            return Ok(());
        };
        match self.tickets.used_before(&k, index)? {
            Some(at) => Err(duplicate_ticket(&m.ticket_hash, at).into()),
            None => Ok(()),
        }
    }

    /// `credential.issued`: an open election, a drawn evaluator, one credential each, requested by
    /// the evaluator's own key when the pool names one.
    fn check_credential(&self, timestamp_micros: u64, c: &CredentialIssued) -> Result<(), RuleError> {
        let e = self.election(&c.election_id)?;
        if timestamp_micros >= e.open.closes_at_micros {
            return Err(err(
                RuleCode::CredentialAfterClose,
                format!("election {} closed at {}", c.election_id, e.open.closes_at_micros),
            ));
        }
        if !e.eligible.contains(&c.evaluator) {
            return Err(err(
                RuleCode::CredentialNotDrawn,
                format!(
                    "{:?} was not selected by draw {} for election {}",
                    c.evaluator, e.open.draw_id, c.election_id
                ),
            ));
        }
        if e.issued.contains(&c.evaluator) {
            return Err(err(
                RuleCode::CredentialDuplicate,
                format!("{:?} already received a credential for {}", c.evaluator, c.election_id),
            ));
        }
        match e.keys.get(&c.evaluator) {
            Some(k) => c.verify_request(k).map_err(|d| {
                err(
                    RuleCode::CredentialNotRequested,
                    format!(
                        "{:?} has a key in the pool of draw {}: {d}",
                        c.evaluator, e.open.draw_id
                    ),
                )
            }),
            None if c.request_signature.is_some() => Err(err(
                RuleCode::CredentialNotRequested,
                format!(
                    "{:?} has no key in the pool of draw {}: a request signature cannot be checked",
                    c.evaluator, e.open.draw_id
                ),
            )),
            None => Ok(()),
        }
    }

    /// `tally`: after the close, once, equal to the recomputation.
    fn check_tally(&self, timestamp_micros: u64, t: &Tally) -> Result<(), RuleError> {
        let e = self.election(&t.election_id)?;
        if timestamp_micros < e.open.closes_at_micros {
            return Err(err(
                RuleCode::TallyTooEarly,
                format!("election {} closes at {}", t.election_id, e.open.closes_at_micros),
            ));
        }
        if let Some(i) = e.tally_index {
            return Err(err(
                RuleCode::TallyDuplicate,
                format!("election {} was tallied at index {i}", t.election_id),
            ));
        }
        let expected = tally(&e.open, &ballot_refs(e));
        if expected != *t {
            return Err(err(
                RuleCode::TallyMismatch,
                format!(
                    "election {}: recomputation gives {}",
                    t.election_id,
                    serde_json::to_string(&expected).unwrap_or_default()
                ),
            ));
        }
        Ok(())
    }

    /// `evaluation.micro`: a service time in range and a ticket not rated before.
    fn check_micro(&self, timestamp_micros: u64, m: &MicroEvaluation) -> Result<(), RuleError> {
        let earliest = timestamp_micros.saturating_sub(MICRO_MAX_AGE_MICROS);
        if m.service_time_micros > timestamp_micros || m.service_time_micros < earliest {
            return Err(err(
                RuleCode::MicroTimeOutOfRange,
                format!(
                    "service_time_micros {} must lie in [{earliest}, {timestamp_micros}]: not after the entry's time, \
                     at most 400 days before it",
                    m.service_time_micros
                ),
            ));
        }
        if let Some(at) = ticket_key(&m.ticket_hash).and_then(|k| self.tickets.recent(&k)) {
            return Err(duplicate_ticket(&m.ticket_hash, at));
        }
        Ok(())
    }

    fn check_open(&self, timestamp_micros: u64, o: &ElectionOpen) -> Result<(), RuleError> {
        if self.elections.contains_key(&o.election_id) {
            return Err(err(
                RuleCode::ElectionDuplicate,
                format!("election {} was already opened", o.election_id),
            ));
        }
        let d = self.drawn.get(&o.draw_id).ok_or_else(|| {
            err(
                RuleCode::ElectionDrawNotReady,
                format!("draw {:?} does not exist or has no result", o.draw_id),
            )
        })?;
        if d.eligible(&o.subjects).is_empty() {
            return Err(err(
                RuleCode::ElectionNoEvaluators,
                format!("draw {} selected no evaluator for these subjects", o.draw_id),
            ));
        }
        if o.closes_at_micros <= timestamp_micros {
            return Err(err(
                RuleCode::ElectionAlreadyClosed,
                format!("closes_at_micros {} is not after this entry's time", o.closes_at_micros),
            ));
        }
        IssuerPublicKey::from_base64(&o.credential_key).map_err(|e| err(RuleCode::ElectionInvalid, e.to_string()))?;
        Ok(())
    }

    fn check_ballot(&self, timestamp_micros: u64, b: &Ballot, signers: &[String]) -> Result<(), RuleError> {
        let e = self.election(&b.election_id)?;
        if timestamp_micros < e.open.opens_at_micros || timestamp_micros >= e.open.closes_at_micros {
            return Err(err(
                RuleCode::BallotLate,
                format!(
                    "entry time {timestamp_micros} is outside [{}, {}) of election {}",
                    e.open.opens_at_micros, e.open.closes_at_micros, b.election_id
                ),
            ));
        }
        let key = b
            .key_bytes()
            .map_err(|d| err(RuleCode::BallotIneligible, d.to_string()))?;
        let kid = crate::hash::Hash::digest(&key).to_hex();
        if signers.len() != 1 || signers[0] != kid {
            return Err(err(
                RuleCode::BallotIneligible,
                format!("a ballot must be signed by its one-time key {kid} and nothing else"),
            ));
        }
        b.verify_credential(&e.key)
            .map_err(|d| err(RuleCode::BallotIneligible, d.to_string()))?;
        if e.used_keys.contains(&key) {
            return Err(err(
                RuleCode::BallotDuplicate,
                format!("the credential for key {kid} was already used in {}", b.election_id),
            ));
        }
        let subjects: Vec<&String> = b.scores.iter().map(|s| &s.subject).collect();
        if subjects != e.open.subjects.iter().collect::<Vec<_>>() {
            return Err(err(
                RuleCode::BallotInvalid,
                format!("a ballot scores every subject once, in order: {:?}", e.open.subjects),
            ));
        }
        let (lo, hi) = (e.open.score_min, e.open.score_max);
        if b.scores
            .iter()
            .any(|s| s.scores.values().iter().any(|v| *v < lo || *v > hi))
        {
            return Err(err(RuleCode::BallotInvalid, format!("scores must be in [{lo}, {hi}]")));
        }
        if e.ballots.len() >= e.issued.len() {
            return Err(err(
                RuleCode::MoreBallotsThanCredentials,
                format!(
                    "election {} has {} credentials issued and {} ballots already",
                    b.election_id,
                    e.issued.len(),
                    e.ballots.len()
                ),
            ));
        }
        Ok(())
    }

    /// Applies a record that passed [`Self::check`] at `index`.
    pub fn apply(&mut self, index: u64, record: &Record) {
        match record {
            Record::DrawCommit(c) => {
                let keys: BTreeMap<String, ed25519_dalek::VerifyingKey> = c
                    .pool
                    .iter()
                    .filter_map(|m| {
                        let k = crate::keys::public_key_from_base64(m.key.as_deref()?).ok()?;
                        Some((m.id.clone(), k))
                    })
                    .collect();
                if !keys.is_empty() {
                    self.pool_keys.insert(c.draw_id.clone(), keys);
                }
            }
            Record::DrawResult(r) => {
                let d = DrawnEvaluators::of_result(r);
                self.drawn.insert(r.draw_id.clone(), d);
            }
            Record::ElectionOpen(o) => {
                let (Some(d), Ok(key)) = (
                    self.drawn.get(&o.draw_id),
                    IssuerPublicKey::from_base64(&o.credential_key),
                ) else {
                    return;
                };
                let eligible = d.eligible(&o.subjects);
                let keys = self
                    .pool_keys
                    .get(&o.draw_id)
                    .map(|k| {
                        k.iter()
                            .filter(|(id, _)| eligible.contains(*id))
                            .map(|(id, k)| (id.clone(), *k))
                            .collect()
                    })
                    .unwrap_or_default();
                let info = ElectionInfo {
                    open_index: index,
                    open: o.clone(),
                    key,
                    eligible,
                    keys,
                    issued: BTreeSet::new(),
                    requested: BTreeSet::new(),
                    used_keys: BTreeSet::new(),
                    ballots: Vec::new(),
                    tally_index: None,
                };
                self.elections.insert(o.election_id.clone(), info);
            }
            Record::CredentialIssued(c) => {
                if let Some(e) = self.elections.get_mut(&c.election_id) {
                    if e.keys.contains_key(&c.evaluator) && c.request_signature.is_some() {
                        e.requested.insert(c.evaluator.clone());
                    }
                    e.issued.insert(c.evaluator.clone());
                }
            }
            Record::Ballot(b) => {
                if let (Some(e), Ok(k)) = (self.elections.get_mut(&b.election_id), b.key_bytes()) {
                    e.used_keys.insert(k);
                    e.ballots.push((index, b.clone()));
                }
            }
            Record::Tally(t) => {
                if let Some(e) = self.elections.get_mut(&t.election_id) {
                    e.tally_index = Some(index);
                }
            }
            Record::MicroEvaluation(m) => {
                if let Some(k) = ticket_key(&m.ticket_hash) {
                    self.tickets.insert(k, index);
                }
                let day = m.service_time_micros / DAY_MICROS;
                let a = self
                    .micro
                    .entry((m.subject.clone(), m.department.clone(), day))
                    .or_default();
                a.0 += 1;
                a.1 += u64::from(m.rating);
            }
            _ => {}
        }
    }

    /// The tally of an election from its accepted ballots (what the node appends at close).
    ///
    /// # Errors
    /// `ELECTION_UNKNOWN`.
    pub fn compute_tally(&self, election_id: &str) -> Result<Tally, RuleError> {
        let e = self.election(election_id)?;
        Ok(tally(&e.open, &ballot_refs(e)))
    }

    /// Elections closed at `now_micros` that have no tally yet, by id.
    pub fn closed_elections_needing_tally(&self, now_micros: u64) -> Vec<String> {
        self.elections
            .iter()
            .filter(|(_, e)| e.tally_index.is_none() && e.open.closes_at_micros <= now_micros)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Micro-evaluation aggregates per (subject, department) for services on the UTC days that
    /// start in `[from_micros, to_micros)` (aggregation is per day of service).
    pub fn micro_aggregates(&self, from_micros: u64, to_micros: u64) -> Vec<MicroAggregate> {
        let (from, to) = (from_micros.div_ceil(DAY_MICROS), to_micros.div_ceil(DAY_MICROS));
        let mut out: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
        for ((subject, department, day), (c, s)) in &self.micro {
            if (from..to).contains(day) {
                let a = out.entry((subject.as_str(), department.as_str())).or_default();
                a.0 += c;
                a.1 += s;
            }
        }
        out.into_iter()
            .map(|((subject, department), (count, sum))| MicroAggregate {
                subject: subject.to_string(),
                department: department.to_string(),
                count,
                sum,
            })
            .collect()
    }
}

fn duplicate_ticket(ticket_hash: &str, at: u64) -> RuleError {
    err(
        RuleCode::MicroDuplicateTicket,
        format!("ticket {ticket_hash} was already rated (entry {at})"),
    )
}

fn ballot_refs(e: &ElectionInfo) -> Vec<(u64, &Ballot)> {
    e.ballots.iter().map(|(i, b)| (*i, b)).collect()
}
