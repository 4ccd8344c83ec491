//! Small checks shared by the record schemas and their error type (a leaf module: it uses nothing
//! else of the crate).

/// Longest id accepted in any record.
pub const MAX_ID: usize = 128;

/// Why a record does not match its kind's schema (docs/records.md). The message says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// Not JSON of the kind's shape: a field unknown, missing or of the wrong type.
    #[error("{0}")]
    Json(String),
    /// A value breaks a rule of the schema (an id's length, a hex digest, a key, a range, a rule
    /// between the record's own fields).
    #[error("{0}")]
    Invalid(String),
}

impl SchemaError {
    /// The message, as the node and the verifier report it.
    pub fn message(&self) -> &str {
        match self {
            SchemaError::Json(m) | SchemaError::Invalid(m) => m,
        }
    }
}

impl From<String> for SchemaError {
    fn from(m: String) -> Self {
        SchemaError::Invalid(m)
    }
}

impl From<&str> for SchemaError {
    fn from(m: &str) -> Self {
        SchemaError::Invalid(m.to_string())
    }
}

impl From<serde_json::Error> for SchemaError {
    fn from(e: serde_json::Error) -> Self {
        SchemaError::Json(e.to_string())
    }
}

/// Checks a record id: 1 to [`MAX_ID`] bytes without control characters.
///
/// # Errors
/// [`SchemaError::Invalid`] naming `field`.
pub fn id_ok(field: &str, s: &str) -> Result<(), SchemaError> {
    if s.is_empty() || s.len() > MAX_ID || s.chars().any(char::is_control) {
        return Err(SchemaError::Invalid(format!(
            "{field} must be 1-{MAX_ID} characters without control characters"
        )));
    }
    Ok(())
}
