//! Rules of the evaluation records other than draws and elections: escrows, complaints, dossier
//! facts, accountability findings, verifications, decisions and cancellations (docs/records.md).

use super::code::{RuleCode, RuleError, err};
use super::{CANCELLABLE_KINDS, DomainState};
use crate::domain::{Accountability, Cancellation, Complaint, Decision, DossierFact, EscrowKey, Verification};

impl DomainState {
    /// `escrow.key`: a new escrow id.
    pub(super) fn check_escrow_key(&self, k: &EscrowKey) -> Result<(), RuleError> {
        if self.escrows.contains_key(&k.escrow_id) {
            return Err(err(
                RuleCode::EscrowDuplicate,
                format!(
                    "escrow {:?} is already registered at entry {}",
                    k.escrow_id,
                    self.escrows.get(&k.escrow_id).copied().unwrap_or_default()
                ),
            ));
        }
        Ok(())
    }

    /// `complaint`: a new id; a sealed identity names a registered escrow.
    pub(super) fn check_complaint(&self, c: &Complaint) -> Result<(), RuleError> {
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
        Ok(())
    }

    /// `dossier.fact`: a new id (among complaints and facts).
    pub(super) fn check_dossier_fact(&self, f: &DossierFact) -> Result<(), RuleError> {
        if self.checkable.contains(&f.fact_id) {
            return Err(err(
                RuleCode::DuplicateId,
                format!("id {:?} is already used", f.fact_id),
            ));
        }
        Ok(())
    }

    /// `accountability`: an opening cites a sealed complaint found malicious, and matches its commitment.
    pub(super) fn check_accountability(&self, a: &Accountability) -> Result<(), RuleError> {
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
        Ok(())
    }

    /// `verification`: the target complaint or dossier fact exists.
    pub(super) fn check_verification(&self, v: &Verification) -> Result<(), RuleError> {
        if !self.checkable.contains(&v.target_id) {
            return Err(err(
                RuleCode::VerificationTargetUnknown,
                format!("no complaint or dossier fact {:?}", v.target_id),
            ));
        }
        Ok(())
    }

    /// `cancellation`: the target is an earlier cancellable record, not cancelled yet.
    pub(super) fn check_cancellation(&self, index: u64, c: &Cancellation) -> Result<(), RuleError> {
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
        Ok(())
    }

    /// `decision`: the nomination exists, the cited evaluation is a finished draw or tallied
    /// election, neither cancelled, and the subjects agree.
    pub(super) fn check_decision(&self, dc: &Decision) -> Result<(), RuleError> {
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
}
