//! Domain record schemas: the examples of docs/records.md parse; unknown fields and bad values are refused.

use ledger_core::domain::{Record, check_record};

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
                check_record(&kind, v.to_string().as_bytes()).is_err(),
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
    assert!(draw(serde_json::json!({"k": 3})).is_err(), "k differs from quotas");
    assert!(
        draw(serde_json::json!({"pool": [{"id": "e2", "stratum": "B"}, {"id": "e1", "stratum": "A"}]})).is_err(),
        "pool not canonical"
    );
    assert!(draw(serde_json::json!({"algorithm": "dice"})).is_err());
    assert!(draw(serde_json::json!({"parties": []})).is_err());
    assert!(draw(serde_json::json!({"purpose": "by_hand"})).is_err());
    assert!(
        draw(serde_json::json!({"exclusions": [{"id": "e9", "reason": "x"}]})).is_err(),
        "excluded id not in pool"
    );
    assert!(
        draw(serde_json::json!({"exclusions": [{"id": "e1", "reason": " "}]})).is_err(),
        "exclusion without reason"
    );
    let c =
        serde_json::json!({"version": 1, "complaint_id": "c", "subject": "s", "category": "x", "content_hash": "zz"});
    assert!(
        check_record("complaint", c.to_string().as_bytes()).is_err(),
        "content hash not hex"
    );
    let v = serde_json::json!({"version": 1, "verification_id": "v", "target_id": "c", "outcome": "maybe"});
    assert!(check_record("verification", v.to_string().as_bytes()).is_err());
    let x = serde_json::json!({"version": 1, "target_index": 5, "reason": ""});
    assert!(check_record("cancellation", x.to_string().as_bytes()).is_err());
}
