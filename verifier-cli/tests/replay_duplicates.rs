//! Issue 12 item 2 in a log written without the rule (built directly, as a node before the rule
//! would have accepted it): an honest cycle whose nomination, complaint, decision and a note were
//! appended a second time by someone holding no key. `replay` names each duplicate, and `review`
//! flags them without letting the copies plant LATE_NOMINATION or
//! PROMOTED_WITH_UNVERIFIED_COMPLAINTS against the honest officials.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use common::{Log, T0, env, export_store, key, s, verify};
use ledger_core::domain::check_record;
use ledger_core::hash::Hash;
use ledger_core::registry::Role;
use ledger_core::rules::DomainState;
use serde_json::json;
use tempfile::TempDir;

#[test]
fn replayed_records_in_an_old_log_are_named_and_feed_no_analysis() {
    let dir = TempDir::new().unwrap();
    let mut log = Log::new();
    let (reg, nominator, committee, office) = (log.registrar.clone(), key(20), key(21), key(23));
    log.enroll(&nominator, Role::Nominator);
    log.enroll(&committee, Role::CommitteeMember);
    log.enroll(&office, Role::DataSource);

    // The honest cycle: nomination, complaint and its verification, an rfc3797 draw, the decision.
    let nomination =
        json!({"version": 1, "nomination_id": "nom-H", "subject": "cadre-H", "post": "head", "organization": "org-1"});
    let nom_env = env("nomination", &nomination, &nominator);
    let inom = log.push(nom_env.clone());
    let complaint = json!({"version": 1, "complaint_id": "c-H", "subject": "cadre-H", "category": "abuse",
        "content_hash": Hash::digest(b"c-H").to_hex()});
    let complaint_env = env("complaint", &complaint, &office);
    let icomplaint = log.push(complaint_env.clone());
    let verification =
        json!({"version": 1, "verification_id": "v-H", "target_id": "c-H", "outcome": "unsubstantiated"});
    log.push(env("verification", &verification, &office));
    let pool: Vec<serde_json::Value> = (1..=5)
        .map(|i| json!({"id": format!("m{i}"), "stratum": "all"}))
        .collect();
    let commit = json!({
        "version": 1, "draw_id": "draw-H", "purpose": "evaluator_selection", "subjects": ["cadre-H"],
        "pool": pool, "strata": [{"name": "all", "quota": 2}], "k": 2, "algorithm": "rfc3797",
        "sources": ["lottery"], "reveal_deadline_micros": T0 + 3_600_000_000u64
    });
    let sources = json!({"version": 1, "draw_id": "draw-H", "values": [["42"]]});
    let mut domain = DomainState::default();
    let ic = log.push(env("draw.commit", &commit, &reg));
    let is = log.push(env("draw.sources", &sources, &reg));
    for (i, kind, v) in [(ic, "draw.commit", &commit), (is, "draw.sources", &sources)] {
        let r = check_record(kind, &serde_json::to_vec(v).unwrap()).unwrap();
        domain.apply_at(i, &Hash::default(), &r, &[]);
    }
    let result = domain.compute_result("draw-H").unwrap();
    let node = log.node.clone();
    log.push(env("draw.result", &serde_json::to_value(&result).unwrap(), &node));
    let decision = json!({"version": 1, "decision_id": "dec-H", "subject": "cadre-H", "nomination_id": "nom-H",
        "evaluation_ref": "draw-H", "outcome": "promote", "post": "head",
        "evaluators": result.selection[0].selected});
    let dec_env = env("decision", &decision, &committee);
    let idec = log.push(dec_env.clone());
    let note_env = log.note_env(&reg);
    let inote = log.push(note_env.clone());

    // The replays: the same envelopes again, read back from the log by someone holding no key.
    let r_complaint = log.push(complaint_env);
    let r_nom = log.push(nom_env);
    let r_dec = log.push(dec_env);
    let r_note = log.push(note_env);
    log.notes(1);
    log.checkpoint();

    let data = dir.path().join("data");
    let store = log.write_store(&data);
    let exp = dir.path().join("log.export");
    export_store(&store, &exp);
    drop(store);

    let r = verify(dir.path(), &["replay", "--export", s(&exp)]);
    assert_eq!(r.code, 1, "{r:?}");
    for i in [r_complaint, r_nom, r_dec] {
        assert!(r.has("DUPLICATE_ID", Some(i)), "{i}: {r:?}");
    }
    assert!(r.has("DUPLICATE_STATEMENT", Some(r_note)), "{r:?}");
    assert_eq!(r.codes().len(), 4, "{r:?}");
    let faults = r.json.as_ref().unwrap().to_string();
    for earlier in [icomplaint, inom, idec, inote] {
        assert!(
            faults.contains(&format!("entry {earlier}")),
            "names entry {earlier}: {r:?}"
        );
    }

    let r = verify(dir.path(), &["review", "--data", s(&data)]);
    let j = r.json.as_ref().unwrap();
    let flags = j["flags"].as_array().unwrap();
    let at = |code: &str| -> Vec<u64> {
        flags
            .iter()
            .filter(|f| f["code"] == code)
            .map(|f| f["index"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(at("DUPLICATE_ID"), vec![r_complaint, r_nom, r_dec], "{r:?}");
    assert_eq!(at("DUPLICATE_STATEMENT"), vec![r_note], "{r:?}");
    assert!(at("LATE_NOMINATION").is_empty(), "{r:?}");
    assert!(at("PROMOTED_WITH_UNVERIFIED_COMPLAINTS").is_empty(), "{r:?}");
    assert_eq!(flags.len(), 4, "{r:?}");
}

/// Issue 12 item 7 in a log written without the rules: a decision for one cadre citing another
/// cadre's nomination, one citing a cancelled draw, and ratings of services at impossible times.
/// `replay` names each rule and `review` flags each.
#[test]
fn decision_and_rating_rules_in_an_old_log() {
    let dir = TempDir::new().unwrap();
    let mut log = Log::new();
    let (reg, committee, inspector, platform) = (log.registrar.clone(), key(21), key(24), key(25));
    log.enroll(&committee, Role::CommitteeMember);
    log.enroll(&inspector, Role::Inspector);
    log.enroll(&platform, Role::ServicePlatform);
    let nom = |id: &str, subject: &str| json!({"version": 1, "nomination_id": id, "subject": subject, "post": "head", "organization": "org-1"});
    log.push(env("nomination", &nom("nom-A", "cadre-A"), &reg));
    log.push(env("nomination", &nom("nom-B", "cadre-B"), &reg));
    let mut domain = DomainState::default();
    let mut commits = Vec::new();
    for (id, subject) in [("draw-A", "cadre-A"), ("draw-B", "cadre-B")] {
        let pool: Vec<serde_json::Value> = (1..=5)
            .map(|i| json!({"id": format!("m{i}"), "stratum": "all"}))
            .collect();
        let commit = json!({
            "version": 1, "draw_id": id, "purpose": "evaluator_selection", "subjects": [subject],
            "pool": pool, "strata": [{"name": "all", "quota": 2}], "k": 2, "algorithm": "rfc3797",
            "sources": ["lottery"], "reveal_deadline_micros": T0 + 3_600_000_000u64
        });
        let sources = json!({"version": 1, "draw_id": id, "values": [["42"]]});
        let ic = log.push(env("draw.commit", &commit, &reg));
        let is = log.push(env("draw.sources", &sources, &reg));
        for (i, kind, v) in [(ic, "draw.commit", &commit), (is, "draw.sources", &sources)] {
            let r = check_record(kind, &serde_json::to_vec(v).unwrap()).unwrap();
            domain.apply_at(i, &Hash::default(), &r, &[]);
        }
        let result = domain.compute_result(id).unwrap();
        let node = log.node.clone();
        log.push(env("draw.result", &serde_json::to_value(&result).unwrap(), &node));
        commits.push(ic);
    }
    let decision = |id: &str, subject: &str, nomination: &str, draw: &str| {
        json!({"version": 1, "decision_id": id, "subject": subject, "nomination_id": nomination,
            "evaluation_ref": draw, "outcome": "promote", "post": "head"})
    };
    let i_nom = log.push(env(
        "decision",
        &decision("d1", "cadre-B", "nom-A", "draw-B"),
        &committee,
    ));
    let i_draw = log.push(env(
        "decision",
        &decision("d2", "cadre-B", "nom-B", "draw-A"),
        &committee,
    ));
    let cancel = json!({"version": 1, "target_index": commits[0], "reason": "rigged pool"});
    log.push(env("cancellation", &cancel, &inspector));
    let i_cancelled = log.push(env(
        "decision",
        &decision("d3", "cadre-A", "nom-A", "draw-A"),
        &committee,
    ));
    let micro = |n: u64, service: u64| {
        json!({"version": 1, "ticket_hash": Hash::digest(format!("t{n}").as_bytes()).to_hex(), "subject": "cadre-A",
            "department": "permits", "rating": 1, "service_time_micros": service})
    };
    let i_micro: Vec<u64> = [0, 1, 1u64 << 63]
        .into_iter()
        .enumerate()
        .map(|(n, t)| log.push(env("evaluation.micro", &micro(n as u64, t), &platform)))
        .collect();
    log.checkpoint();

    let data = dir.path().join("data");
    drop(log.write_store(&data));
    let r = verify(dir.path(), &["replay", "--data", s(&data)]);
    assert_eq!(r.code, 1, "{r:?}");
    let mut want = vec![
        format!("DECISION_SUBJECT_MISMATCH@{i_nom}"),
        format!("DECISION_SUBJECT_MISMATCH@{i_draw}"),
        format!("DECISION_EVALUATION_CANCELLED@{i_cancelled}"),
    ];
    want.extend(i_micro.iter().map(|i| format!("MICRO_TIME_OUT_OF_RANGE@{i}")));
    assert_eq!(r.codes(), want, "{r:?}");

    let r = verify(dir.path(), &["review", "--data", s(&data)]);
    let flags: Vec<String> = r.json.as_ref().unwrap()["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| format!("{}@{}", f["code"].as_str().unwrap(), f["index"]))
        .collect();
    for w in &want {
        assert!(flags.contains(w), "{w}: {flags:?}");
    }
}
