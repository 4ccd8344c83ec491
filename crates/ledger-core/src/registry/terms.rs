//! Secondary-index terms of a record, for the node's Query, and their tags.

/// The tag of a secondary-index term: the byte after `t` in the store's term keys
/// (`ledger-store`), so its values are part of the data directory's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum IndexTag {
    /// `k`: the record kind (Query's `kind`).
    Kind = b'k',
    /// `s`: a subject, from `subject` or `subjects` (Query's `subject`).
    Subject = b's',
    /// `d`: a draw or election id, from `draw_id` or `election_id` (Query's `draw_id`, which
    /// docs/api.md documents as "draw/election id": one tag for both, as stored since the first
    /// election record).
    Draw = b'd',
}

impl IndexTag {
    /// The tag's byte in term keys.
    pub const fn byte(self) -> u8 {
        self as u8
    }
}

/// Secondary-index terms of a record: its kind, and the `subject`/`subjects`, `draw_id` and
/// `election_id` fields of its JSON payload when present. The node indexes these for Query.
pub fn index_terms(kind: &str, payload: &[u8]) -> Vec<(IndexTag, String)> {
    match serde_json::from_slice::<serde_json::Value>(payload) {
        Ok(v) => terms_of(kind, &v),
        Err(_) => vec![(IndexTag::Kind, kind.to_string())],
    }
}

/// [`index_terms`] of a payload already parsed as JSON.
pub fn terms_of(kind: &str, v: &serde_json::Value) -> Vec<(IndexTag, String)> {
    let mut out = vec![(IndexTag::Kind, kind.to_string())];
    let mut push = |tag: IndexTag, x: &serde_json::Value| {
        if let Some(s) = x.as_str().filter(|s| !s.is_empty() && s.len() <= 256) {
            out.push((tag, s.to_string()));
        }
    };
    if let Some(s) = v.get("subject") {
        push(IndexTag::Subject, s);
    }
    if let Some(a) = v.get("subjects").and_then(|a| a.as_array()) {
        a.iter().take(64).for_each(|s| push(IndexTag::Subject, s));
    }
    if let Some(s) = v.get("draw_id") {
        push(IndexTag::Draw, s);
    }
    if let Some(s) = v.get("election_id") {
        push(IndexTag::Draw, s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tag bytes are part of the store's format: they never change.
    #[test]
    fn tag_bytes_are_the_stored_ones() {
        assert_eq!(
            [IndexTag::Kind.byte(), IndexTag::Subject.byte(), IndexTag::Draw.byte()],
            [b'k', b's', b'd']
        );
        let v = serde_json::json!({"version": 1, "subjects": ["a", ""], "draw_id": "d1", "election_id": "e1"});
        assert_eq!(
            terms_of("tally", &v),
            vec![
                (IndexTag::Kind, "tally".to_string()),
                (IndexTag::Subject, "a".to_string()),
                (IndexTag::Draw, "d1".to_string()),
                (IndexTag::Draw, "e1".to_string()),
            ]
        );
        assert_eq!(
            index_terms("note", b"not json"),
            vec![(IndexTag::Kind, "note".to_string())]
        );
    }
}
