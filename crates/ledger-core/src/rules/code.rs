//! The error of a broken cross-record rule and its fault code (docs/records.md lists every code).

use std::fmt;
use std::str::FromStr;

macro_rules! rule_codes {
    ($($variant:ident => $text:literal,)*) => {
        /// The fault code of a broken cross-record rule. It is written (Display, [`Self::as_str`],
        /// serde) as the upper-case name that node answers, verifier reports and docs/records.md use.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum RuleCode {
            $(
                #[doc = concat!("`", $text, "`")]
                $variant,
            )*
        }

        impl RuleCode {
            /// Every code, in alphabetical order of its text.
            pub const ALL: &'static [RuleCode] = &[$(RuleCode::$variant,)*];

            /// The code's text, e.g. `DRAW_RESULT_MISMATCH`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(RuleCode::$variant => $text,)*
                }
            }
        }
    };
}

rule_codes! {
    AccountabilityWithoutFinding => "ACCOUNTABILITY_WITHOUT_FINDING",
    BallotDuplicate => "BALLOT_DUPLICATE",
    BallotIneligible => "BALLOT_INELIGIBLE",
    BallotInvalid => "BALLOT_INVALID",
    BallotLate => "BALLOT_LATE",
    CancellationDuplicate => "CANCELLATION_DUPLICATE",
    CancellationNotAuthorized => "CANCELLATION_NOT_AUTHORIZED",
    CancellationTargetUnknown => "CANCELLATION_TARGET_UNKNOWN",
    CredentialAfterClose => "CREDENTIAL_AFTER_CLOSE",
    CredentialDuplicate => "CREDENTIAL_DUPLICATE",
    CredentialNotDrawn => "CREDENTIAL_NOT_DRAWN",
    CredentialNotRequested => "CREDENTIAL_NOT_REQUESTED",
    DecisionEvaluationCancelled => "DECISION_EVALUATION_CANCELLED",
    DecisionSubjectMismatch => "DECISION_SUBJECT_MISMATCH",
    DecisionWithoutEvaluation => "DECISION_WITHOUT_EVALUATION",
    DecisionWithoutNomination => "DECISION_WITHOUT_NOMINATION",
    DrawClosed => "DRAW_CLOSED",
    DrawImpossible => "DRAW_IMPOSSIBLE",
    DrawNotReady => "DRAW_NOT_READY",
    DrawResultMismatch => "DRAW_RESULT_MISMATCH",
    DrawSizeNotFuture => "DRAW_SIZE_NOT_FUTURE",
    DrawUnknown => "DRAW_UNKNOWN",
    DuplicateDraw => "DUPLICATE_DRAW",
    DuplicateId => "DUPLICATE_ID",
    DuplicateResult => "DUPLICATE_RESULT",
    DuplicateStatement => "DUPLICATE_STATEMENT",
    ElectionAlreadyClosed => "ELECTION_ALREADY_CLOSED",
    ElectionDrawNotReady => "ELECTION_DRAW_NOT_READY",
    ElectionDuplicate => "ELECTION_DUPLICATE",
    ElectionInvalid => "ELECTION_INVALID",
    ElectionNoEvaluators => "ELECTION_NO_EVALUATORS",
    ElectionUnknown => "ELECTION_UNKNOWN",
    EscrowDuplicate => "ESCROW_DUPLICATE",
    EscrowUnknown => "ESCROW_UNKNOWN",
    MicroDuplicateTicket => "MICRO_DUPLICATE_TICKET",
    MicroTimeOutOfRange => "MICRO_TIME_OUT_OF_RANGE",
    MoreBallotsThanCredentials => "MORE_BALLOTS_THAN_CREDENTIALS",
    NodeKeyCompromised => "NODE_KEY_COMPROMISED",
    OpeningComplaintUnknown => "OPENING_COMPLAINT_UNKNOWN",
    OpeningMismatch => "OPENING_MISMATCH",
    RevealDuplicate => "REVEAL_DUPLICATE",
    RevealLate => "REVEAL_LATE",
    RevealMismatch => "REVEAL_MISMATCH",
    RevealTooEarly => "REVEAL_TOO_EARLY",
    RevealUnknownParty => "REVEAL_UNKNOWN_PARTY",
    RevealWrongSigner => "REVEAL_WRONG_SIGNER",
    SourcesDuplicate => "SOURCES_DUPLICATE",
    SourcesMismatch => "SOURCES_MISMATCH",
    SourcesNotRfc3797 => "SOURCES_NOT_RFC3797",
    TallyDuplicate => "TALLY_DUPLICATE",
    TallyMismatch => "TALLY_MISMATCH",
    TallyTooEarly => "TALLY_TOO_EARLY",
    VerificationTargetUnknown => "VERIFICATION_TARGET_UNKNOWN",
    VoidBeforeDeadline => "VOID_BEFORE_DEADLINE",
    VoidMismatch => "VOID_MISMATCH",
}

impl fmt::Display for RuleCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A text that is not a rule code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown rule code {0:?}")]
pub struct UnknownRuleCode(pub String);

impl FromStr for RuleCode {
    type Err = UnknownRuleCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RuleCode::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownRuleCode(s.to_string()))
    }
}

impl serde::Serialize for RuleCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for RuleCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A cross-record rule broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct RuleError {
    /// Fault code (e.g. [`RuleCode::DrawResultMismatch`]).
    pub code: RuleCode,
    /// What is wrong.
    pub detail: String,
}

pub(crate) fn err(code: RuleCode, detail: impl Into<String>) -> RuleError {
    RuleError {
        code,
        detail: detail.into(),
    }
}
