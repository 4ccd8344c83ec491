//! Issue 12 item 3: the `draw.commit` rules are linear or n·log n in the payload's lists. The old
//! rules ran strata × pool × exclusions comparisons, and repeated stratum names made that cubic
//! (about 10¹² comparisons for a 900 KB payload); a repeated name is now refused with its code.

use ledger_core::domain::{DRAW_STRATUM_REPEATED, SchemaError, check_record};
use std::time::Instant;

fn commit(strata: serde_json::Value, pool: serde_json::Value, exclusions: serde_json::Value, k: u32) -> Vec<u8> {
    serde_json::json!({
        "version": 1, "draw_id": "d1", "purpose": "evaluator_selection", "subjects": ["c1"],
        "pool": pool, "strata": strata, "exclusions": exclusions, "k": k,
        "algorithm": "ledger-draw-v1",
        "parties": [{"name": "registrar", "keyid": "x", "commitment": "00".repeat(32)}],
        "reveal_at_size": 10, "reveal_deadline_micros": 1
    })
    .to_string()
    .into_bytes()
}

#[test]
fn a_repeated_stratum_name_is_refused_with_its_code() {
    let pool = serde_json::json!([{"id": "e1", "stratum": "A"}, {"id": "e2", "stratum": "A"}]);
    // Each quota alone is fillable (two members in A), which the old rule accepted.
    let twice = commit(
        serde_json::json!([{"name": "A", "quota": 1}, {"name": "A", "quota": 1}]),
        pool.clone(),
        serde_json::json!([]),
        2,
    );
    let e = check_record("draw.commit", &twice).expect_err("repeated stratum");
    assert!(
        matches!(&e, SchemaError::Invalid(m) if m.starts_with(&format!("{DRAW_STRATUM_REPEATED}: stratum \"A\""))),
        "{e}"
    );
    let once = commit(
        serde_json::json!([{"name": "A", "quota": 2}]),
        pool,
        serde_json::json!([]),
        2,
    );
    check_record("draw.commit", &once).expect("listed once");
}

#[test]
fn eligible_counts_and_exclusions_keep_their_meaning() {
    let pool = serde_json::json!([
        {"id": "e1", "stratum": "A"}, {"id": "e2", "stratum": "A"}, {"id": "e3", "stratum": "B"}
    ]);
    let strata = serde_json::json!([{"name": "A", "quota": 2}, {"name": "B", "quota": 1}]);
    check_record(
        "draw.commit",
        &commit(strata.clone(), pool.clone(), serde_json::json!([]), 3),
    )
    .expect("fillable");
    let e = check_record(
        "draw.commit",
        &commit(
            strata,
            pool.clone(),
            serde_json::json!([{"id": "e2", "reason": "relative"}]),
            3,
        ),
    )
    .expect_err("an exclusion empties a quota");
    assert_eq!(
        e,
        SchemaError::Invalid("stratum \"A\" has 1 eligible members for a quota of 2".into())
    );
    let e = check_record(
        "draw.commit",
        &commit(
            serde_json::json!([{"name": "A", "quota": 1}, {"name": "C", "quota": 1}]),
            pool.clone(),
            serde_json::json!([]),
            2,
        ),
    )
    .expect_err("a stratum nobody is in");
    assert_eq!(
        e,
        SchemaError::Invalid("stratum \"C\" has 0 eligible members for a quota of 1".into())
    );
    let e = check_record(
        "draw.commit",
        &commit(
            serde_json::json!([{"name": "A", "quota": 1}]),
            pool,
            serde_json::json!([{"id": "e0", "reason": "x"}]),
            1,
        ),
    )
    .expect_err("not in the pool");
    assert_eq!(e, SchemaError::Invalid("excluded id \"e0\" is not in the pool".into()));
}

/// The crafted payload of the issue (15,000 strata, 11,600 members, 5,800 exclusions): refused
/// for its repeated names, and with distinct names checked and accepted. Printed, not asserted:
/// the times (a regression to the old loops would take hours, not a test's seconds).
#[test]
fn the_crafted_commit_is_checked_in_linear_time() {
    for repeated in [true, false] {
        let name = |i: usize| if repeated { "s".to_string() } else { format!("s{i:05}") };
        let pool: Vec<_> = (0..11_600)
            .map(|i| serde_json::json!({"id": format!("e{i:05}"), "stratum": name(i)}))
            .collect();
        let exclusions: Vec<_> = (0..5_800)
            .map(|j| serde_json::json!({"id": format!("e{:05}", 2 * j + 1), "reason": "x"}))
            .collect();
        let quota = |i: usize| u32::from(i < 11_600 && i.is_multiple_of(2));
        let strata: Vec<_> = (0..15_000)
            .map(|i| serde_json::json!({"name": name(i), "quota": quota(i)}))
            .collect();
        let k = (0..15_000).map(quota).sum();
        let bytes = commit(strata.into(), pool.into(), exclusions.into(), k);
        let t = Instant::now();
        let r = check_record("draw.commit", &bytes);
        println!(
            "{} bytes, repeated names: {repeated}: checked in {:.1} ms",
            bytes.len(),
            t.elapsed().as_secs_f64() * 1e3
        );
        if repeated {
            let e = r.expect_err("repeated names");
            assert!(
                matches!(&e, SchemaError::Invalid(m) if m.starts_with(DRAW_STRATUM_REPEATED)),
                "{e}"
            );
        } else {
            r.expect("distinct names, every quota fillable");
        }
    }
}

/// RFC 3797 section 4 with the vector the RFC describes (remove the r-th remaining position):
/// the reference the order-statistic tree in `rfc3797::select` must match exactly.
fn select_by_vector(pool_size: usize, key: &str, count: usize) -> Vec<usize> {
    let mut remaining: Vec<usize> = (1..=pool_size).collect();
    (0..count)
        .map(|i| {
            let v = u128::from_be_bytes(ledger_core::rfc3797::digest(key, i as u16));
            remaining.remove((v % remaining.len() as u128) as usize)
        })
        .collect()
}

#[test]
fn rfc3797_selection_is_unchanged_by_the_order_statistic_tree() {
    for (n, key) in [
        (1, "1./"),
        (2, "a"),
        (25, "9319./2.5.8.10.12./9.18.26.34.41.45./"),
        (1000, "k"),
        (4097, "x./"),
    ] {
        for count in [0, 1, n / 2, n] {
            assert_eq!(
                ledger_core::rfc3797::select(n, key, count).expect("select"),
                select_by_vector(n, key, count),
                "n = {n}, count = {count}"
            );
        }
    }
    // The largest pool, all of it: n·log n, not the n² shifts of the vector.
    let n = ledger_core::rfc3797::MAX_POOL;
    let all = ledger_core::rfc3797::select(n, "k./", n).expect("select");
    let mut sorted = all.clone();
    sorted.sort_unstable();
    assert!(sorted.into_iter().eq(1..=n), "a permutation of 1..=n");
}

#[test]
fn an_rfc3797_key_longer_than_the_limit_is_refused() {
    let source = |len: usize| serde_json::json!([format!("1{}", "0".repeat(len))]);
    let payload = |values: serde_json::Value| {
        serde_json::json!({"version": 1, "draw_id": "d", "values": values})
            .to_string()
            .into_bytes()
    };
    check_record("draw.sources", &payload(serde_json::json!([source(100)]))).expect("short key");
    let e = check_record("draw.sources", &payload(serde_json::json!([source(5000)]))).expect_err("long key");
    assert!(
        matches!(&e, SchemaError::Invalid(m) if m.starts_with(ledger_core::domain::DRAW_SOURCES_TOO_LONG)),
        "{e}"
    );
}
