//! Domain record schemas: the examples of docs/records.md parse; unknown fields and bad values are refused.

use ledger_core::domain::{Record, SchemaError, check_record};

const RECORDS_MD: &str = include_str!("../../../docs/records.md");

/// Every ```json block in docs/records.md that follows a "### kind" heading is a valid example.
#[test]
fn documented_examples_are_valid() {
    let mut kind = String::new();
    let mut n = 0;
    let mut lines = RECORDS_MD.lines();
    while let Some(l) = lines.next() {
        if let Some(k) = l.strip_prefix("### `") {
            kind = k.trim_end_matches('`').to_string();
        }
        if l.trim() == "```json" {
            let body: String = lines
                .by_ref()
                .take_while(|l| l.trim() != "```")
                .collect::<Vec<_>>()
                .join("\n");
            let r = check_record(&kind, body.as_bytes());
            assert!(r.is_ok(), "example for {kind}: {r:?}");
            assert!(!matches!(r, Ok(Record::Other)), "{kind} has no schema");
            // Adding an unknown field is refused.
            let mut v: serde_json::Value = serde_json::from_str(&body).expect("json");
            v["unexpected"] = serde_json::json!(1);
            assert!(
                not_shape(check_record(&kind, v.to_string().as_bytes())).contains("unknown field"),
                "{kind} accepted an unknown field"
            );
            n += 1;
        }
    }
    assert_eq!(n, 19, "one example per domain kind");
}

#[test]
fn bad_values_are_refused() {
    let draw = |patch: serde_json::Value| {
        let mut v = serde_json::json!({
            "version": 1, "draw_id": "d1", "purpose": "evaluator_selection", "subjects": ["c1"],
            "pool": [{"id": "e1", "stratum": "A"}, {"id": "e2", "stratum": "B"}],
            "strata": [{"name": "A", "quota": 1}, {"name": "B", "quota": 1}], "k": 2,
            "algorithm": "ledger-draw-v1",
            "parties": [{"name": "registrar", "keyid": "x", "commitment": "00".repeat(32)}],
            "reveal_at_size": 10, "reveal_deadline_micros": 1
        });
        for (k, x) in patch.as_object().expect("object") {
            v[k] = x.clone();
        }
        check_record("draw.commit", v.to_string().as_bytes())
    };
    assert!(draw(serde_json::json!({})).is_ok());
    assert!(
        invalid(draw(serde_json::json!({"k": 3}))).contains("quotas"),
        "k differs from quotas"
    );
    invalid(draw(
        serde_json::json!({"pool": [{"id": "e2", "stratum": "B"}, {"id": "e1", "stratum": "A"}]}),
    ));
    assert!(invalid(draw(serde_json::json!({"algorithm": "dice"}))).contains("unknown algorithm"));
    assert_eq!(
        invalid(draw(serde_json::json!({"parties": []}))),
        "at least one randomness party"
    );
    assert!(not_shape(draw(serde_json::json!({"purpose": "by_hand"}))).contains("unknown variant"));
    assert_eq!(
        invalid(draw(serde_json::json!({"exclusions": [{"id": "e9", "reason": "x"}]}))),
        "excluded id \"e9\" is not in the pool"
    );
    assert_eq!(
        invalid(draw(serde_json::json!({"exclusions": [{"id": "e1", "reason": " "}]}))),
        "exclusion of \"e1\" needs a reason"
    );
    let c =
        serde_json::json!({"version": 1, "complaint_id": "c", "subject": "s", "category": "x", "content_hash": "zz"});
    assert_eq!(
        invalid(check_record("complaint", c.to_string().as_bytes())),
        "content_hash must be 64 lowercase hex digits"
    );
    let v = serde_json::json!({"version": 1, "verification_id": "v", "target_id": "c", "outcome": "maybe"});
    assert!(not_shape(check_record("verification", v.to_string().as_bytes())).contains("unknown variant"));
    let x = serde_json::json!({"version": 1, "target_index": 5, "reason": ""});
    assert_eq!(
        invalid(check_record("cancellation", x.to_string().as_bytes())),
        "a cancellation needs a reason"
    );
}

/// The message of a value refused by the schema ([`SchemaError::Invalid`]); panics otherwise.
fn invalid<T: std::fmt::Debug>(r: Result<T, SchemaError>) -> String {
    match r {
        Err(SchemaError::Invalid(m)) => m,
        other => panic!("expected SchemaError::Invalid, got {other:?}"),
    }
}

/// The message of a payload not of its kind's JSON shape ([`SchemaError::Json`]); panics otherwise.
fn not_shape<T: std::fmt::Debug>(r: Result<T, SchemaError>) -> String {
    match r {
        Err(SchemaError::Json(m)) => m,
        other => panic!("expected SchemaError::Json, got {other:?}"),
    }
}
