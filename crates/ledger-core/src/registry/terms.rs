//! Secondary-index terms of a record, for the node's Query.

/// Secondary-index terms of a record: its kind, and the `subject`/`subjects`, `draw_id` and
/// `election_id` fields of its JSON payload when present. The node indexes these for Query.
pub fn index_terms(kind: &str, payload: &[u8]) -> Vec<(u8, String)> {
    match serde_json::from_slice::<serde_json::Value>(payload) {
        Ok(v) => terms_of(kind, &v),
        Err(_) => vec![(b'k', kind.to_string())],
    }
}

/// [`index_terms`] of a payload already parsed as JSON.
pub fn terms_of(kind: &str, v: &serde_json::Value) -> Vec<(u8, String)> {
    let mut out = vec![(b'k', kind.to_string())];
    let mut push = |tag: u8, x: &serde_json::Value| {
        if let Some(s) = x.as_str().filter(|s| !s.is_empty() && s.len() <= 256) {
            out.push((tag, s.to_string()));
        }
    };
    if let Some(s) = v.get("subject") {
        push(b's', s);
    }
    if let Some(a) = v.get("subjects").and_then(|a| a.as_array()) {
        a.iter().take(64).for_each(|s| push(b's', s));
    }
    if let Some(s) = v.get("draw_id") {
        push(b'd', s);
    }
    if let Some(s) = v.get("election_id") {
        push(b'd', s);
    }
    out
}
