//! Every rule code is documented in docs/records.md and is written and read back as that text.

use ledger_core::rules::{RuleCode, UnknownRuleCode};

const RECORDS_MD: &str = include_str!("../../../docs/records.md");

#[test]
fn every_code_is_in_the_records_table_and_round_trips() {
    assert!(RuleCode::ALL.len() >= 50, "{} codes", RuleCode::ALL.len());
    for &code in RuleCode::ALL {
        let text = code.as_str();
        assert_eq!(code.to_string(), text);
        assert!(
            RECORDS_MD.contains(&format!("| `{text}` |")),
            "{text} has no row in docs/records.md's rule-code table"
        );
        assert_eq!(text.parse::<RuleCode>(), Ok(code));
        let json = serde_json::to_string(&code).expect("serializes");
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<RuleCode>(&json).expect("deserializes"), code);
    }
}

#[test]
fn codes_are_distinct_and_unknown_text_is_refused() {
    let mut texts: Vec<&str> = RuleCode::ALL.iter().map(|c| c.as_str()).collect();
    texts.sort_unstable();
    texts.dedup();
    assert_eq!(texts.len(), RuleCode::ALL.len());
    assert_eq!(
        "DRAW_RESULT_MISMATCH ".parse::<RuleCode>(),
        Err(UnknownRuleCode("DRAW_RESULT_MISMATCH ".into()))
    );
    assert!(
        serde_json::from_str::<RuleCode>("\"draw_result_mismatch\"")
            .is_err_and(|e| e.to_string().contains("unknown rule code"))
    );
}

#[test]
fn every_table_row_is_a_code() {
    let start = RECORDS_MD.find("### Rule codes").expect("the rule-code section");
    let rows = RECORDS_MD[start..]
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next());
    let mut n = 0;
    for text in rows {
        text.parse::<RuleCode>()
            .unwrap_or_else(|e| panic!("docs/records.md: {e}"));
        n += 1;
    }
    assert_eq!(n, RuleCode::ALL.len(), "one row per code");
}
