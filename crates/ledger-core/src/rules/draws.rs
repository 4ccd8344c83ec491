//! Rules of draws (docs/draws.md): commit, reveal, sources, void and result, and the
//! recomputation of a result.

use super::DomainState;
use super::code::{RuleCode, RuleError, err};
use crate::domain::{
    ALG_RFC3797, DrawCommit, DrawPurpose, DrawResult, DrawReveal, DrawSources, DrawVoid, Record, StratumSelection,
};
use crate::draw;
use crate::hash::Hash;
use std::collections::{BTreeMap, BTreeSet};

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

impl DomainState {
    /// The effects of a draw record (commit, sources, void, reveal, result) on the draws.
    pub(super) fn apply_draw(&mut self, index: u64, leaf_hash: &Hash, record: &Record) {
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
            _ => {}
        }
    }

    /// `draw.commit`: a new draw id; T in the future (`ledger-draw-v1`).
    pub(super) fn check_draw_commit(&self, index: u64, c: &DrawCommit) -> Result<(), RuleError> {
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
        Ok(())
    }

    /// `draw.reveal`: an open draw, before its deadline, by a committed party's key, at or after T, once, matching the commitment.
    pub(super) fn check_draw_reveal(
        &self,
        index: u64,
        timestamp_micros: u64,
        r: &DrawReveal,
        signers: &[String],
    ) -> Result<(), RuleError> {
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
        Ok(())
    }

    /// `draw.sources`: an open `rfc3797` draw, once, before its deadline, one list per source.
    pub(super) fn check_draw_sources(&self, timestamp_micros: u64, r: &DrawSources) -> Result<(), RuleError> {
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
        Ok(())
    }

    /// `draw.void`: an open draw after its deadline, naming exactly the missing parties.
    pub(super) fn check_draw_void(&self, timestamp_micros: u64, v: &DrawVoid) -> Result<(), RuleError> {
        let d = self.open_draw(&v.draw_id)?;
        if timestamp_micros <= d.commit.reveal_deadline_micros || v.deadline_micros != d.commit.reveal_deadline_micros {
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
        Ok(())
    }

    /// `draw.result`: one per open draw, equal to the recomputation.
    pub(super) fn check_draw_result(&self, r: &DrawResult) -> Result<(), RuleError> {
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
        Ok(())
    }

    pub(super) fn draw(&self, id: &str) -> Result<&DrawState, RuleError> {
        self.draws
            .get(id)
            .ok_or_else(|| err(RuleCode::DrawUnknown, format!("no draw {id:?} was committed")))
    }

    pub(super) fn open_draw(&self, id: &str) -> Result<&DrawState, RuleError> {
        let d = self.draw(id)?;
        let why = match (d.result_index, d.void_index, d.cancelled_at) {
            (Some(i), _, _) => format!("has its result at entry {i}"),
            (_, Some(i), _) => format!("was voided at entry {i}"),
            (_, _, Some(i)) => format!("was cancelled at entry {i}"),
            _ => return Ok(d),
        };
        Err(err(RuleCode::DrawClosed, format!("draw {id} {why}")))
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
