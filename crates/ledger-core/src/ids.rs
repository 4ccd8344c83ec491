//! Small checks shared by the record schemas (a leaf module: it uses nothing else of the crate).

/// Longest id accepted in any record.
pub const MAX_ID: usize = 128;

/// Checks a record id: 1 to [`MAX_ID`] bytes without control characters.
///
/// # Errors
/// A message naming `field`.
pub fn id_ok(field: &str, s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > MAX_ID || s.chars().any(char::is_control) {
        return Err(format!(
            "{field} must be 1-{MAX_ID} characters without control characters"
        ));
    }
    Ok(())
}
