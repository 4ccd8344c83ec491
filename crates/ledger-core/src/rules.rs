//! Cross-record rules of the domain (requirement R6/R7), replayable by anyone.
//!
//! [`DomainState`] follows the log entry by entry. The node calls [`DomainState::check`] before it
//! sequences a record (and refuses what breaks a rule) and [`DomainState::apply`] after; the
//! verifier does the same on replay. [`DomainState::observe_size`] must be called after every entry
//! so that a draw learns the root of the tree at its committed size T.
//!
//! Rules:
//! - `draw.commit`: its `draw_id` is new; T (`reveal_at_size`) is larger than the commit's index.
//! - `draw.reveal`: the draw exists; the party was committed and the signer is the party's key;
//!   the log has reached size T (the reveal's index ≥ T); SHA-256(secret) equals the commitment;
//!   each party reveals once.
//! - `draw.result`: all reveals are in, and the result equals the recomputation
//!   ([`DomainState::compute_result`]); one result per draw.
//! - `verification`: the target complaint or dossier fact exists.
//! - `decision`: the nomination exists and the evaluation it cites is a draw with a result.
//! - `cancellation`: the target index exists (it is below the cancellation's index).

use crate::domain::{DrawCommit, DrawPurpose, DrawResult, Record, StratumSelection};
use crate::draw;
use crate::hash::Hash;
use std::collections::{BTreeMap, BTreeSet};

/// A cross-record rule broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct RuleError {
    /// Fault code (e.g. `DRAW_RESULT_MISMATCH`).
    pub code: &'static str,
    /// What is wrong.
    pub detail: String,
}

fn err(code: &'static str, detail: impl Into<String>) -> RuleError {
    RuleError {
        code,
        detail: detail.into(),
    }
}

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
}

impl DrawState {
    /// True when every committed party has revealed and the root at T is known.
    pub fn ready(&self) -> bool {
        self.root_at_t.is_some() && self.commit.parties.iter().all(|p| self.reveals.contains_key(&p.name))
    }
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
    /// Nomination ids.
    pub nominations: BTreeSet<String>,
    /// Elections, ballots, tallies and micro-evaluations (`docs/ballots.md`).
    pub elections: crate::election_rules::ElectionState,
}

impl DomainState {
    /// Checks a record about to be appended at `index` with verified `signers` (key ids).
    ///
    /// Records whose rules depend on the entry's time (`election.open`, `credential.issued`,
    /// `ballot`, `tally`) are refused here with `ENTRY_TIME_REQUIRED`: use [`Self::check_at`].
    ///
    /// # Errors
    /// The rule it breaks.
    pub fn check(&self, index: u64, record: &Record, signers: &[String]) -> Result<(), RuleError> {
        if matches!(
            record,
            Record::ElectionOpen(_) | Record::CredentialIssued(_) | Record::Ballot(_) | Record::Tally(_)
        ) {
            return Err(err(
                "ENTRY_TIME_REQUIRED",
                "election records are checked against the entry's timestamp: call DomainState::check_at",
            ));
        }
        self.check_at(index, 0, record, signers)
    }

    /// Checks a record about to be appended at `index`, with entry timestamp `timestamp_micros`
    /// (UTC microseconds) and verified `signers` (key ids): every rule of [`Self::check`] plus the
    /// election rules of [`crate::election_rules`]. For a ballot, `signers` is its one-time key id.
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
        self.check_base(index, record, signers)?;
        self.elections.check(index, timestamp_micros, record, signers)
    }

    fn check_base(&self, index: u64, record: &Record, signers: &[String]) -> Result<(), RuleError> {
        match record {
            Record::DrawCommit(c) => {
                if self.draws.contains_key(&c.draw_id) {
                    return Err(err(
                        "DUPLICATE_DRAW",
                        format!("draw {} was already committed", c.draw_id),
                    ));
                }
                if c.reveal_at_size <= index + 1 {
                    return Err(err(
                        "DRAW_SIZE_NOT_FUTURE",
                        format!(
                            "reveal_at_size {} must exceed the log size after this commit ({})",
                            c.reveal_at_size,
                            index + 1
                        ),
                    ));
                }
            }
            Record::DrawReveal(r) => {
                let d = self.draw(&r.draw_id)?;
                let p = d.commit.parties.iter().find(|p| p.name == r.party).ok_or_else(|| {
                    err(
                        "REVEAL_UNKNOWN_PARTY",
                        format!("{:?} is not a committed party of {}", r.party, r.draw_id),
                    )
                })?;
                if !signers.contains(&p.keyid) {
                    return Err(err(
                        "REVEAL_WRONG_SIGNER",
                        format!("the reveal of {:?} must be signed by key {}", p.name, p.keyid),
                    ));
                }
                if index < d.commit.reveal_at_size {
                    return Err(err(
                        "REVEAL_TOO_EARLY",
                        format!(
                            "draw {} reveals only once the log has {} entries (this would be entry {index})",
                            r.draw_id, d.commit.reveal_at_size
                        ),
                    ));
                }
                if d.reveals.contains_key(&r.party) {
                    return Err(err(
                        "REVEAL_DUPLICATE",
                        format!("{:?} already revealed for {}", r.party, r.draw_id),
                    ));
                }
                let secret = hex::decode(&r.secret).map_err(|_| err("REVEAL_MISMATCH", "secret is not hex"))?;
                if Hash::digest(&secret).to_hex() != p.commitment {
                    return Err(err(
                        "REVEAL_MISMATCH",
                        format!("SHA-256 of the secret is not {:?}'s commitment", p.name),
                    ));
                }
            }
            Record::DrawResult(r) => {
                let d = self.draw(&r.draw_id)?;
                if d.result_index.is_some() {
                    return Err(err(
                        "DUPLICATE_RESULT",
                        format!("draw {} already has a result", r.draw_id),
                    ));
                }
                let expected = self.compute_result(&r.draw_id)?;
                if expected != *r {
                    return Err(err(
                        "DRAW_RESULT_MISMATCH",
                        format!("draw {}: recomputation gives {expected:?}", r.draw_id),
                    ));
                }
            }
            Record::Verification(v) if !self.checkable.contains(&v.target_id) => {
                return Err(err(
                    "VERIFICATION_TARGET_UNKNOWN",
                    format!("no complaint or dossier fact {:?}", v.target_id),
                ));
            }
            Record::Decision(dc) => {
                if !self.nominations.contains(&dc.nomination_id) {
                    return Err(err(
                        "DECISION_WITHOUT_NOMINATION",
                        format!("no nomination {:?}", dc.nomination_id),
                    ));
                }
                match self.draws.get(&dc.evaluation_ref) {
                    Some(d) if d.result_index.is_some() => {}
                    _ => {
                        return Err(err(
                            "DECISION_WITHOUT_EVALUATION",
                            format!("{:?} is not a completed draw or evaluation", dc.evaluation_ref),
                        ));
                    }
                }
            }
            Record::Cancellation(c) if c.target_index >= index => {
                return Err(err(
                    "CANCELLATION_TARGET_UNKNOWN",
                    format!("index {} is not an earlier entry", c.target_index),
                ));
            }
            _ => {}
        }
        Ok(())
    }

    fn draw(&self, id: &str) -> Result<&DrawState, RuleError> {
        self.draws
            .get(id)
            .ok_or_else(|| err("DRAW_UNKNOWN", format!("no draw {id:?} was committed")))
    }

    /// Applies a record that passed [`Self::check`] at `index` with leaf hash `leaf_hash`.
    pub fn apply(&mut self, index: u64, leaf_hash: &Hash, record: &Record) {
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
                    },
                );
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
            }
            Record::DossierFact(f) => {
                self.checkable.insert(f.fact_id.clone());
            }
            Record::Nomination(n) => {
                self.nominations.insert(n.nomination_id.clone());
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

    /// Draws whose reveals are all in and whose result is not yet appended.
    pub fn ready_draws(&self) -> Vec<String> {
        self.draws
            .iter()
            .filter(|(_, d)| d.ready() && d.result_index.is_none())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Recomputes the result of a draw (docs/draws.md).
    ///
    /// # Errors
    /// When the draw is unknown, not ready, or its inputs cannot be drawn from.
    pub fn compute_result(&self, id: &str) -> Result<DrawResult, RuleError> {
        let d = self.draw(id)?;
        let root = d.root_at_t.ok_or_else(|| {
            err(
                "DRAW_NOT_READY",
                format!("the log has not reached size {}", d.commit.reveal_at_size),
            )
        })?;
        let mut secrets: Vec<&[u8]> = Vec::new();
        for p in &d.commit.parties {
            secrets.push(
                d.reveals
                    .get(&p.name)
                    .ok_or_else(|| err("DRAW_NOT_READY", format!("{:?} has not revealed", p.name)))?,
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
            selection: vec![],
            assignment: vec![],
            minute: None,
        };
        let bad = |e: draw::DrawError| err("DRAW_IMPOSSIBLE", e.to_string());
        match c.purpose {
            DrawPurpose::EvaluatorSelection => {
                let strata: Vec<draw::Stratum> = c
                    .strata
                    .iter()
                    .map(|q| draw::Stratum {
                        name: &q.name,
                        members: eligible
                            .iter()
                            .filter(|m| m.stratum == q.name)
                            .map(|m| m.id.as_str())
                            .collect(),
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
