//! `ledger-verify review` on a log that no honest node would write (built directly, as an operator
//! holding the node key could): a draw abandoned past its deadline without the node's void, a
//! nomination recorded after the evaluation it cites, and a record signed by an unenrolled key. Each
//! is flagged with its evidence.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use common::{Log, T0, env, export_store, key, s, verify};
use ledger_core::domain::check_record;
use ledger_core::hash::Hash;
use ledger_core::keys::key_id;
use ledger_core::registry::Role;
use ledger_core::rules::DomainState;
use serde_json::json;
use tempfile::TempDir;

#[test]
fn abandoned_draw_late_nomination_and_registry_violation_are_flagged() {
    let dir = TempDir::new().unwrap();
    let mut log = Log::new();
    let (reg, nominator, committee, stranger) = (log.registrar.clone(), key(20), key(21), key(22));
    log.enroll(&nominator, Role::Nominator);
    log.enroll(&committee, Role::CommitteeMember);

    // draw-A: committed with a registrar party, deadline one second after T0; nobody reveals and
    // the operator never appends the void.
    let pool: Vec<serde_json::Value> = (0..4)
        .map(|i| json!({"id": format!("ev-{i}"), "stratum": "all"}))
        .collect();
    let commit_a = json!({
        "version": 1, "draw_id": "draw-A", "purpose": "evaluator_selection", "subjects": ["cadre-A"],
        "pool": pool, "strata": [{"name": "all", "quota": 1}], "k": 1, "algorithm": "ledger-draw-v1",
        "parties": [{"name": "registrar", "keyid": key_id(&reg.verifying_key()), "commitment": Hash::digest(b"x").to_hex()}],
        "reveal_at_size": 100, "reveal_deadline_micros": T0 + 1_000_000
    });
    let ia = log.push(env("draw.commit", &commit_a, &reg));

    // draw-B (rfc3797) completes; its nomination is recorded only afterwards, then decided.
    let pool_b: Vec<serde_json::Value> = (1..=5)
        .map(|i| json!({"id": format!("m{i}"), "stratum": "all"}))
        .collect();
    let commit_b = json!({
        "version": 1, "draw_id": "draw-B", "purpose": "evaluator_selection", "subjects": ["cadre-B"],
        "pool": pool_b, "strata": [{"name": "all", "quota": 2}], "k": 2, "algorithm": "rfc3797",
        "sources": ["lottery"], "reveal_deadline_micros": T0 + 3_600_000_000u64
    });
    let sources = json!({"version": 1, "draw_id": "draw-B", "values": [["42"]]});
    let mut domain = DomainState::default();
    let ib = log.push(env("draw.commit", &commit_b, &reg));
    let is = log.push(env("draw.sources", &sources, &reg));
    for (i, kind, v) in [(ib, "draw.commit", &commit_b), (is, "draw.sources", &sources)] {
        let r = check_record(kind, &serde_json::to_vec(v).unwrap()).unwrap();
        domain.apply_at(i, &Hash::default(), &r, &[]);
    }
    let result = domain.compute_result("draw-B").unwrap();
    let node = log.node.clone();
    log.push(env("draw.result", &serde_json::to_value(&result).unwrap(), &node));
    let nomination =
        json!({"version": 1, "nomination_id": "nom-B", "subject": "cadre-B", "post": "head", "organization": "org-1"});
    let inom = log.push(env("nomination", &nomination, &nominator));
    let decision = json!({"version": 1, "decision_id": "dec-B", "subject": "cadre-B", "nomination_id": "nom-B",
        "evaluation_ref": "draw-B", "outcome": "promote", "post": "head",
        "evaluators": result.selection[0].selected});
    let idec = log.push(env("decision", &decision, &committee));

    // A note signed by a key nobody enrolled.
    let iv = log.note(&stranger);
    // Time moves on past draw-A's deadline.
    log.ts = T0 + 10_000_000;
    log.notes(1);
    log.checkpoint();

    let data = dir.path().join("data");
    let store = log.write_store(&data);
    let exp = dir.path().join("log.export");
    export_store(&store, &exp);
    drop(store);

    // Replay names the registry violation; the draw records themselves are consistent.
    let r = verify(dir.path(), &["replay", "--export", s(&exp)]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.has("UNAUTHORIZED_SIGNER", Some(iv)), "{r:?}");
    assert!(!r.codes().iter().any(|c| c.starts_with("DRAW_")), "{r:?}");

    let r = verify(dir.path(), &["review", "--data", s(&data)]);
    assert_eq!(r.code, 1, "{r:?}");
    let j = r.json.as_ref().unwrap();
    let flags = j["flags"].as_array().unwrap();
    let find = |code: &str| {
        flags
            .iter()
            .find(|f| f["code"] == code)
            .unwrap_or_else(|| panic!("{code}: {r:?}"))
    };
    let abandoned = find("DRAW_ABANDONED");
    assert_eq!(abandoned["index"], ia);
    assert_eq!(abandoned["subject"], "cadre-A");
    let late = find("LATE_NOMINATION");
    assert_eq!(late["index"], inom);
    assert_eq!(late["evidence"], json!([ib, inom, idec]));
    assert_eq!(late["accountability"]["committee"].as_array().unwrap().len(), 1);
    let violation = find("REGISTRY_VIOLATION");
    assert_eq!(violation["index"], iv);
    // The decision relied only on drawn evaluators: no EVALUATOR_NOT_FROM_DRAW.
    assert!(!flags.iter().any(|f| f["code"] == "EVALUATOR_NOT_FROM_DRAW"), "{r:?}");
    assert_eq!(flags.len(), 3, "{r:?}");

    // Scoped to cadre-B, only the late nomination remains.
    let r = verify(dir.path(), &["review", "--export", s(&exp), "--subject", "cadre-B"]);
    let codes: Vec<String> = r.json.as_ref().unwrap()["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes, vec!["LATE_NOMINATION"], "{r:?}");
}
