//! The error of a broken cross-record rule, with its fault code (docs/records.md).

/// A cross-record rule broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct RuleError {
    /// Fault code (e.g. `DRAW_RESULT_MISMATCH`).
    pub code: &'static str,
    /// What is wrong.
    pub detail: String,
}

pub(crate) fn err(code: &'static str, detail: impl Into<String>) -> RuleError {
    RuleError {
        code,
        detail: detail.into(),
    }
}
