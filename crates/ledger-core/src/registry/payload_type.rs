//! Payload-type names: `application/vnd.ledger.<kind>.v1+json`, bound to a log with
//! `; log="<origin>"` (docs/format.md).

/// Prefix of every ledger payload type.
pub const PAYLOAD_TYPE_PREFIX: &str = "application/vnd.ledger.";
/// Suffix of every version-1 ledger payload type.
pub const PAYLOAD_TYPE_SUFFIX: &str = ".v1+json";

/// The payload type of a record kind: `application/vnd.ledger.<kind>.v1+json`.
pub fn payload_type(kind: &str) -> String {
    format!("{PAYLOAD_TYPE_PREFIX}{kind}{PAYLOAD_TYPE_SUFFIX}")
}

/// What a bound payload type adds after the version-1 suffix, before the log's origin.
pub const LOG_PARAMETER: &str = "; log=\"";

/// The payload type of a record kind bound to one log (docs/format.md):
/// `application/vnd.ledger.<kind>.v1+json; log="<origin>"`. The origin is covered by every
/// signature (DSSE PAE), so the record is valid in that log only.
pub fn payload_type_for_log(kind: &str, origin: &str) -> String {
    format!("{PAYLOAD_TYPE_PREFIX}{kind}{PAYLOAD_TYPE_SUFFIX}{LOG_PARAMETER}{origin}\"")
}

/// The payload type a signer uses: bound to `origin` when given, the unbound form otherwise.
pub fn payload_type_in(kind: &str, origin: Option<&str>) -> String {
    match origin {
        Some(o) => payload_type_for_log(kind, o),
        None => payload_type(kind),
    }
}

/// True when `origin` can be named in a bound payload type: non-empty, without `"`, `\`,
/// control characters or whitespace.
pub fn origin_bindable(origin: &str) -> bool {
    !origin.is_empty()
        && !origin
            .chars()
            .any(|c| c == '"' || c == '\\' || c.is_control() || c.is_whitespace())
}

/// Splits a payload type of the ledger's form into its record kind and, for the bound form, the
/// log origin it names. `None` when it has neither form.
pub fn parse_payload_type(payload_type: &str) -> Option<(&str, Option<&str>)> {
    let rest = payload_type.strip_prefix(PAYLOAD_TYPE_PREFIX)?;
    if let Some(kind) = rest.strip_suffix(PAYLOAD_TYPE_SUFFIX) {
        return Some((kind, None));
    }
    let at = rest.find(PAYLOAD_TYPE_SUFFIX)?;
    let (kind, tail) = rest.split_at(at);
    let origin = tail
        .strip_prefix(PAYLOAD_TYPE_SUFFIX)?
        .strip_prefix(LOG_PARAMETER)?
        .strip_suffix('"')?;
    origin_bindable(origin).then_some((kind, Some(origin)))
}

/// The record kind named by a payload type, if it has the ledger's form (unbound or bound).
pub fn kind_of(payload_type: &str) -> Option<&str> {
    parse_payload_type(payload_type).map(|(k, _)| k)
}
