//! Cross-record rules of draws, voids, RFC 3797 draws and cancellations, replayed the way the
//! node and the verifier replay them: registry check, schema check, domain rule check, apply.

use ed25519_dalek::SigningKey;
use ledger_core::compact::CompactTree;
use ledger_core::domain::{DrawResult, check_record};
use ledger_core::dsse::Envelope;
use ledger_core::entry::Entry;
use ledger_core::hash::{Hash, leaf_hash};
use ledger_core::keys::{key_id, public_key_to_base64};
use ledger_core::registry::{Registry, payload_type};
use ledger_core::rules::DomainState;
use serde_json::json;

fn k(b: u8) -> SigningKey {
    SigningKey::from_bytes(&[b; 32])
}

/// A log replayed in memory.
struct Log {
    registry: Registry,
    domain: DomainState,
    tree: CompactTree,
    node: SigningKey,
    admin: SigningKey,
}

impl Log {
    fn new() -> Self {
        let (node, admin) = (k(1), k(2));
        let charter = json!({
            "version": 1, "origin": "ledger.test/rules", "node_key": public_key_to_base64(&node.verifying_key()),
            "admins": [{"name": "admin", "key": public_key_to_base64(&admin.verifying_key())}],
            "policy": {"admin_quorum": 1}
        });
        let mut log = Self {
            registry: Registry::genesis(&Entry {
                index: 0,
                timestamp_micros: 0,
                prev_root: Hash::default(),
                envelope: env("charter", &charter, &[&node, &admin]),
            })
            .expect("charter"),
            domain: DomainState::default(),
            tree: CompactTree::default(),
            node,
            admin,
        };
        log.tree.append(Hash::digest(b"charter"));
        log
    }

    fn size(&self) -> u64 {
        self.tree.size()
    }

    /// Appends a record at time `ts`; returns its index or the rule/registry error text.
    fn append(&mut self, kind: &str, v: &serde_json::Value, keys: &[&SigningKey], ts: u64) -> Result<u64, String> {
        let index = self.tree.size();
        let e = Entry {
            index,
            timestamp_micros: ts,
            prev_root: self.tree.root(),
            envelope: env(kind, v, keys),
        };
        // As the node: a signed statement already in the log is refused before the registry applies it.
        self.domain
            .check_statement(kind, &e.envelope)
            .map_err(|e| e.to_string())?;
        let mut reg = self.registry.clone();
        reg.check_entry(&e).map_err(|e| e.to_string())?;
        let record = check_record(kind, &e.envelope.payload).map_err(|e| e.to_string())?;
        let signers: Vec<String> = keys.iter().map(|k| key_id(&k.verifying_key())).collect();
        self.domain
            .check_with_registry(&reg, index, ts, &record, &signers)
            .map_err(|e| e.to_string())?;
        self.registry = reg;
        let lh = leaf_hash(&e.encode());
        self.domain.apply_at(index, &lh, &record, &signers);
        self.domain.apply_statement(index, kind, &e.envelope);
        self.tree.append(lh);
        self.domain.observe_size(self.tree.size(), &self.tree.root());
        Ok(index)
    }

    fn enroll(&mut self, key: &SigningKey, name: &str, role: &str) {
        let v = json!({"version": 1, "name": name, "key": public_key_to_base64(&key.verifying_key()), "roles": [role]});
        let admin = self.admin.clone();
        self.append("key.enroll", &v, &[&admin], 1).expect("enroll");
    }

    /// The node's result for a ready draw, appended as the node does.
    fn node_result(&mut self, id: &str, ts: u64) -> Result<DrawResult, String> {
        let r = self.domain.compute_result(id).map_err(|e| e.to_string())?;
        let node = self.node.clone();
        self.append("draw.result", &serde_json::to_value(&r).expect("json"), &[&node], ts)?;
        Ok(r)
    }
}

fn env(kind: &str, v: &serde_json::Value, keys: &[&SigningKey]) -> Envelope {
    let mut e = Envelope::new(payload_type(kind), serde_json::to_vec(v).expect("json"));
    keys.iter().for_each(|key| e.sign(key));
    e
}

fn pool(n: usize) -> Vec<serde_json::Value> {
    (1..=n)
        .map(|i| json!({"id": format!("m{i:02}"), "stratum": "all"}))
        .collect()
}

fn commit_v1(id: &str, t: u64, deadline: u64, parties: &[(&str, &SigningKey, &[u8])]) -> serde_json::Value {
    json!({
        "version": 1, "draw_id": id, "purpose": "evaluator_selection", "subjects": ["cadre-1"],
        "pool": pool(6), "strata": [{"name": "all", "quota": 2}], "k": 2, "algorithm": "ledger-draw-v1",
        "parties": parties.iter().map(|(n, key, secret)| json!({
            "name": n, "keyid": key_id(&key.verifying_key()), "commitment": Hash::digest(secret).to_hex()
        })).collect::<Vec<_>>(),
        "reveal_at_size": t, "reveal_deadline_micros": deadline
    })
}

fn code(r: Result<u64, String>) -> String {
    let e = r.expect_err("must be refused");
    e.split(':').next().unwrap_or_default().to_string()
}

/// RFC 3797 section 6's worked example run as a ledger draw: a pool of 25 in canonical order, one
/// stratum of 10, and the three published sources. The selection is the RFC's first ten, in its
/// order (positions 17, 7, 2, 16, 25, 23, 8, 24, 19, 13).
#[test]
fn rfc3797_draw_reproduces_the_worked_example() {
    let mut log = Log::new();
    let reg = k(10);
    log.enroll(&reg, "registrar", "registrar");
    let commit = json!({
        "version": 1, "draw_id": "nomcom", "purpose": "evaluator_selection", "subjects": ["cadre-1"],
        "pool": pool(25), "strata": [{"name": "all", "quota": 10}], "k": 10, "algorithm": "rfc3797",
        "sources": ["lottery A (one four-digit number)", "lottery B (five numbers)", "lottery C (six numbers)"],
        "reveal_deadline_micros": 1_000
    });
    log.append("draw.commit", &commit, &[&reg], 10).expect("commit");
    assert!(log.domain.ready_draws().is_empty());
    let bad_count = json!({"version": 1, "draw_id": "nomcom", "values": [["9319"]]});
    assert_eq!(
        code(log.append("draw.sources", &bad_count, &[&reg], 20)),
        "SOURCES_MISMATCH"
    );
    let sources = json!({"version": 1, "draw_id": "nomcom",
        "values": [["9319"], ["2", "5", "12", "8", "10"], ["9", "18", "26", "34", "41", "45"]]});
    log.append("draw.sources", &sources, &[&reg], 20).expect("sources");
    assert_eq!(log.domain.ready_draws(), vec!["nomcom".to_string()]);
    let r = log.node_result("nomcom", 30).expect("result");
    assert_eq!(r.key, "9319./2.5.8.10.12./9.18.26.34.41.45./");
    assert_eq!(r.seed, Hash::digest(r.key.as_bytes()).to_hex());
    let want: Vec<String> = [17, 7, 2, 16, 25, 23, 8, 24, 19, 13]
        .iter()
        .map(|i| format!("m{i:02}"))
        .collect();
    assert_eq!(r.selection[0].selected, want);
    // A second sources record, or a forged result, is refused.
    assert_eq!(code(log.append("draw.sources", &sources, &[&reg], 40)), "DRAW_CLOSED");
}

#[test]
fn rfc3797_commit_shape_is_checked() {
    let base = json!({
        "version": 1, "draw_id": "d", "purpose": "evaluator_selection", "subjects": ["c"],
        "pool": pool(3), "strata": [{"name": "all", "quota": 1}], "k": 1, "algorithm": "rfc3797",
        "sources": ["lottery"], "reveal_deadline_micros": 1
    });
    assert!(check_record("draw.commit", &serde_json::to_vec(&base).expect("json")).is_ok());
    for (field, value) in [
        ("sources", json!([])),
        ("reveal_at_size", json!(5)),
        (
            "parties",
            json!([{"name": "p", "keyid": "x", "commitment": Hash::digest(b"s").to_hex()}]),
        ),
        ("algorithm", json!("rfc3797-bis")),
    ] {
        let mut v = base.clone();
        v[field] = value;
        assert!(
            matches!(
                check_record("draw.commit", &serde_json::to_vec(&v).expect("json")),
                Err(ledger_core::domain::SchemaError::Invalid(_))
            ),
            "{field} must be refused"
        );
    }
}

#[test]
fn missed_deadline_void_and_late_reveals() {
    let mut log = Log::new();
    let (reg, insp) = (k(10), k(11));
    log.enroll(&reg, "registrar", "registrar");
    log.enroll(&insp, "inspector", "inspector");
    let t = log.size() + 2;
    let commit = commit_v1(
        "d1",
        t,
        1_000,
        &[("registrar", &reg, b"s1"), ("inspection", &insp, b"s2")],
    );
    log.append("draw.commit", &commit, &[&reg], 100).expect("commit");
    log.append("note", &json!({"version": 1, "text": "filler"}), &[&reg], 110)
        .expect("note");
    let reveal1 = json!({"version": 1, "draw_id": "d1", "party": "registrar", "secret": hex::encode(b"s1")});
    log.append("draw.reveal", &reveal1, &[&reg], 200)
        .expect("reveal in time");
    assert!(
        log.domain.overdue_draws(1_000).is_empty(),
        "not overdue at the deadline itself"
    );
    let overdue = log.domain.overdue_draws(1_001);
    assert_eq!(overdue, vec![("d1".to_string(), vec!["inspection".to_string()])]);

    // A late reveal is refused: after the deadline the draw only takes its void.
    let reveal2 = json!({"version": 1, "draw_id": "d1", "party": "inspection", "secret": hex::encode(b"s2")});
    assert_eq!(
        code(log.append("draw.reveal", &reveal2, &[&insp], 1_001)),
        "REVEAL_LATE"
    );

    let node = log.node.clone();
    let void = |missing: &[&str]| json!({"version": 1, "draw_id": "d1", "missing": missing, "deadline_micros": 1_000});
    assert_eq!(
        code(log.append("draw.void", &void(&["inspection"]), &[&node], 999)),
        "VOID_BEFORE_DEADLINE"
    );
    assert_eq!(
        code(log.append("draw.void", &void(&["registrar", "inspection"]), &[&node], 1_002)),
        "VOID_MISMATCH"
    );
    assert!(
        log.append("draw.void", &void(&["inspection"]), &[&reg], 1_002)
            .expect_err("only the node voids")
            .contains("role"),
    );
    log.append("draw.void", &void(&["inspection"]), &[&node], 1_002)
        .expect("void");
    assert!(log.domain.overdue_draws(u64::MAX).is_empty());
    assert_eq!(code(log.append("draw.reveal", &reveal2, &[&insp], 900)), "DRAW_CLOSED");
    assert_eq!(
        code(log.append("draw.void", &void(&["inspection"]), &[&node], 1_003)),
        "DRAW_CLOSED"
    );
}

#[test]
fn cancellation_needs_a_higher_role_and_closes_what_it_voids() {
    let mut log = Log::new();
    let (reg, reg2, insp, nom, comm) = (k(10), k(11), k(12), k(13), k(14));
    log.enroll(&reg, "registrar", "registrar");
    log.enroll(&reg2, "registrar 2", "registrar");
    log.enroll(&insp, "inspector", "inspector");
    log.enroll(&nom, "nominator", "nominator");
    log.enroll(&comm, "committee", "committee-member");
    let t = log.size() + 2;
    let commit = commit_v1("d1", t, u64::MAX, &[("registrar", &reg, b"s1")]);
    let ci = log.append("draw.commit", &commit, &[&reg], 100).expect("commit");
    let nomination =
        json!({"version": 1, "nomination_id": "n1", "subject": "cadre-1", "post": "head", "organization": "org"});
    let ni = log.append("nomination", &nomination, &[&nom], 101).expect("nomination");
    let cancel = |target: u64| json!({"version": 1, "target_index": target, "reason": "procedural error"});

    // Equal rank (registrar over registrar) is not enough; an inspector ranks above.
    assert_eq!(
        code(log.append("cancellation", &cancel(ci), &[&reg2], 102)),
        "CANCELLATION_NOT_AUTHORIZED"
    );
    assert_eq!(
        code(log.append("cancellation", &cancel(ci), &[&reg], 102)),
        "CANCELLATION_NOT_AUTHORIZED"
    );
    // Not a cancellable record (a key enrollment, the charter, a future index).
    assert_eq!(
        code(log.append("cancellation", &cancel(1), &[&insp], 102)),
        "CANCELLATION_TARGET_UNKNOWN"
    );
    assert_eq!(
        code(log.append("cancellation", &cancel(999), &[&insp], 102)),
        "CANCELLATION_TARGET_UNKNOWN"
    );
    log.append("cancellation", &cancel(ci), &[&insp], 102)
        .expect("inspector cancels");
    // The same signed cancellation again is a repeated statement; a new one of the same target is
    // a duplicate cancellation.
    assert_eq!(
        code(log.append("cancellation", &cancel(ci), &[&insp], 103)),
        "DUPLICATE_STATEMENT"
    );
    let again = json!({"version": 1, "target_index": ci, "reason": "cancelled again"});
    assert_eq!(
        code(log.append("cancellation", &again, &[&insp], 103)),
        "CANCELLATION_DUPLICATE"
    );
    // The cancelled draw takes no reveal and is never voided.
    let reveal = json!({"version": 1, "draw_id": "d1", "party": "registrar", "secret": hex::encode(b"s1")});
    assert_eq!(code(log.append("draw.reveal", &reveal, &[&reg], 104)), "DRAW_CLOSED");
    assert!(log.domain.overdue_draws(u64::MAX).is_empty());

    // A registrar outranks a nominator: the nomination is voided, and a decision citing it refused.
    log.append("cancellation", &cancel(ni), &[&reg], 105)
        .expect("registrar cancels a nomination");
    let decision = json!({"version": 1, "decision_id": "x", "subject": "cadre-1", "nomination_id": "n1",
        "evaluation_ref": "d1", "outcome": "promote", "post": "head"});
    assert_eq!(
        code(log.append("decision", &decision, &[&comm], 106)),
        "DECISION_WITHOUT_NOMINATION"
    );
}

/// A log with a registrar, an inspector, a data source and a committee member, the nominations
/// `n1` (cadre-1) and `n2` (cadre-2), and the draw `d1` about cadre-1 with its result.
fn cycle() -> (Log, [SigningKey; 4], u64) {
    let mut log = Log::new();
    let (reg, insp, src, comm) = (k(10), k(12), k(15), k(14));
    log.enroll(&reg, "registrar", "registrar");
    log.enroll(&insp, "inspector", "inspector");
    log.enroll(&src, "petition office", "data-source");
    log.enroll(&comm, "committee", "committee-member");
    for (id, subject) in [("n1", "cadre-1"), ("n2", "cadre-2")] {
        let n = json!({"version": 1, "nomination_id": id, "subject": subject, "post": "head", "organization": "org"});
        log.append("nomination", &n, &[&reg], 100).expect("nomination");
    }
    let t = log.size() + 2;
    let ci = log
        .append(
            "draw.commit",
            &commit_v1("d1", t, u64::MAX, &[("registrar", &reg, b"s1")]),
            &[&reg],
            101,
        )
        .expect("commit");
    log.append("note", &json!({"version": 1, "text": "filler"}), &[&reg], 102)
        .expect("note");
    let reveal = json!({"version": 1, "draw_id": "d1", "party": "registrar", "secret": hex::encode(b"s1")});
    log.append("draw.reveal", &reveal, &[&reg], 103).expect("reveal");
    log.node_result("d1", 104).expect("result");
    (log, [reg, insp, src, comm], ci)
}

fn decision(id: &str, subject: &str, nomination: &str, evaluation: &str) -> serde_json::Value {
    json!({"version": 1, "decision_id": id, "subject": subject, "nomination_id": nomination,
        "evaluation_ref": evaluation, "outcome": "promote", "post": "head"})
}

/// Issue 12 item 2: a record id is used once per kind, forever (also after a cancellation), and a
/// record without an id is appended at most once.
#[test]
fn records_are_appended_at_most_once() {
    let (mut log, [reg, insp, src, comm], _) = cycle();
    // A cancelled nomination cannot come back under its id, even re-signed with other fields.
    let n1 = json!({"version": 1, "nomination_id": "n1", "subject": "cadre-1", "post": "head", "organization": "org"});
    let n1_index = 5; // after the charter and four enrollments
    log.append(
        "cancellation",
        &json!({"version": 1, "target_index": n1_index, "reason": "withdrawn"}),
        &[&insp],
        110,
    )
    .expect("cancel n1");
    let e = log
        .append("nomination", &n1, &[&reg], 111)
        .expect_err("replayed nomination");
    assert!(e.starts_with("DUPLICATE_ID") && e.contains("entry 5"), "{e}");
    let mut other = n1.clone();
    other["reason"] = json!("re-nominated");
    assert_eq!(code(log.append("nomination", &other, &[&reg], 111)), "DUPLICATE_ID");

    // Every other kind with an id.
    let pool = json!({"version": 1, "pool_id": "p1", "purpose": "evaluators", "members": pool(3)});
    log.append("pool.commit", &pool, &[&reg], 112).expect("pool");
    let mut pool2 = pool.clone();
    pool2["purpose"] = json!("other");
    assert_eq!(code(log.append("pool.commit", &pool2, &[&reg], 113)), "DUPLICATE_ID");
    let complaint = |id: &str, cat: &str| {
        json!({"version": 1, "complaint_id": id, "subject": "cadre-1", "category": cat,
        "content_hash": Hash::digest(id.as_bytes()).to_hex()})
    };
    log.append("complaint", &complaint("c1", "a"), &[&src], 113)
        .expect("complaint");
    assert_eq!(
        code(log.append("complaint", &complaint("c1", "b"), &[&src], 114)),
        "DUPLICATE_ID"
    );
    let fact = |id: &str, cat: &str| {
        json!({"version": 1, "fact_id": id, "subject": "cadre-1", "source": "audit",
        "category": cat, "content_hash": Hash::digest(id.as_bytes()).to_hex()})
    };
    log.append("dossier.fact", &fact("f1", "a"), &[&src], 114)
        .expect("fact");
    assert_eq!(
        code(log.append("dossier.fact", &fact("f1", "b"), &[&src], 115)),
        "DUPLICATE_ID"
    );
    let ver = |outcome: &str| json!({"version": 1, "verification_id": "v1", "target_id": "c1", "outcome": outcome});
    log.append("verification", &ver("unsubstantiated"), &[&insp], 115)
        .expect("verification");
    assert_eq!(
        code(log.append("verification", &ver("substantiated"), &[&insp], 116)),
        "DUPLICATE_ID"
    );
    let acc =
        |f: &str| json!({"version": 1, "accountability_id": "a1", "refs": ["c1"], "responsible": ["x"], "finding": f});
    log.append("accountability", &acc("late"), &[&insp], 116)
        .expect("accountability");
    assert_eq!(
        code(log.append("accountability", &acc("later"), &[&insp], 117)),
        "DUPLICATE_ID"
    );
    log.append("decision", &decision("dec-2", "cadre-2", "n2", "d1"), &[&comm], 117)
        .expect_err("cadre-2 was not drawn by d1");
    let n3 = json!({"version": 1, "nomination_id": "n3", "subject": "cadre-1", "post": "head", "organization": "org"});
    log.append("nomination", &n3, &[&reg], 117).expect("n3");
    let di = log
        .append("decision", &decision("dec-3", "cadre-1", "n3", "d1"), &[&comm], 118)
        .expect("decision");
    let mut again = decision("dec-3", "cadre-1", "n3", "d1");
    again["outcome"] = json!("reject");
    let e = log
        .append("decision", &again, &[&comm], 119)
        .expect_err("decision id reused");
    assert!(
        e.starts_with("DUPLICATE_ID") && e.contains(&format!("entry {di}")),
        "{e}"
    );
    assert_eq!(
        code(log.append(
            "draw.commit",
            &commit_v1("d1", 999, u64::MAX, &[("registrar", &reg, b"s1")]),
            &[&reg],
            119
        )),
        "DUPLICATE_DRAW"
    );

    // Kinds without an id: the same signed statement once; another payload is another statement.
    let note = json!({"version": 1, "text": "minutes of the meeting"});
    let ni = log.append("note", &note, &[&reg], 120).expect("note");
    let e = log.append("note", &note, &[&reg], 121).expect_err("replayed note");
    assert!(
        e.starts_with("DUPLICATE_STATEMENT") && e.contains(&format!("entry {ni}")),
        "{e}"
    );
    assert_eq!(code(log.append("note", &note, &[&insp], 121)), "DUPLICATE_STATEMENT");
    log.append(
        "note",
        &json!({"version": 1, "text": "minutes, second meeting"}),
        &[&reg],
        121,
    )
    .expect("another note");
    let enroll =
        json!({"version": 1, "name": "x", "key": public_key_to_base64(&k(40).verifying_key()), "roles": ["inspector"]});
    let admin = log.admin.clone();
    log.append("key.enroll", &enroll, &[&admin], 122).expect("enroll");
    assert_eq!(
        code(log.append("key.enroll", &enroll, &[&admin], 123)),
        "DUPLICATE_STATEMENT"
    );
}

/// Issue 12 item 7: a decision cites a live evaluation about its own cadre, and its nomination's.
#[test]
fn decision_subject_and_cancelled_evaluation() {
    let (mut log, [_reg, insp, _src, comm], ci) = cycle();
    // Cadre-2's decision citing cadre-1's nomination, or a draw about cadre-1 only.
    let e = log
        .append("decision", &decision("x1", "cadre-2", "n1", "d1"), &[&comm], 110)
        .expect_err("another cadre's nomination");
    assert!(
        e.starts_with("DECISION_SUBJECT_MISMATCH") && e.contains("nominates \"cadre-1\""),
        "{e}"
    );
    let e = log
        .append("decision", &decision("x2", "cadre-2", "n2", "d1"), &[&comm], 110)
        .expect_err("a draw about another cadre");
    assert!(
        e.starts_with("DECISION_SUBJECT_MISMATCH") && e.contains("evaluated"),
        "{e}"
    );
    // The honest decision passes the rule (checked, not appended, so the draw can be cancelled).
    let ok = log.domain.check_at(
        log.size(),
        110,
        &check_record("decision", decision("x3", "cadre-1", "n1", "d1").to_string().as_bytes()).expect("record"),
        &[key_id(&comm.verifying_key())],
    );
    assert_eq!(ok, Ok(()));
    // After the inspector cancels the draw (its result stays in the log), no decision may cite it.
    log.append(
        "cancellation",
        &json!({"version": 1, "target_index": ci, "reason": "rigged pool"}),
        &[&insp],
        111,
    )
    .expect("cancel the draw");
    let e = log
        .append("decision", &decision("x3", "cadre-1", "n1", "d1"), &[&comm], 112)
        .expect_err("cancelled draw");
    assert!(
        e.starts_with("DECISION_EVALUATION_CANCELLED") && e.contains(&format!("entry {}", log.size() - 1)),
        "{e}"
    );
}

#[test]
fn a_void_after_a_node_key_rotation_needs_the_new_key() {
    let mut log = Log::new();
    let (reg, insp, new_node) = (k(10), k(11), k(12));
    log.enroll(&reg, "registrar", "registrar");
    log.enroll(&insp, "inspector", "inspector");
    let t = log.size() + 3;
    let commit = commit_v1(
        "d1",
        t,
        1_000,
        &[("registrar", &reg, b"s1"), ("inspection", &insp, b"s2")],
    );
    log.append("draw.commit", &commit, &[&reg], 100).expect("commit");
    let (node, admin) = (log.node.clone(), log.admin.clone());
    let rotate = json!({"version": 1, "new_key": public_key_to_base64(&new_node.verifying_key()), "reason": "new HSM"});
    let at = log
        .append("node.rotate", &rotate, &[&node, &admin], 200)
        .expect("rotation by the node key and the admin quorum");
    let void = json!({"version": 1, "draw_id": "d1", "missing": ["registrar", "inspection"], "deadline_micros": 1_000});
    let e = log
        .append("draw.void", &void, &[&node], 1_002)
        .expect_err("the old node key was rotated away");
    assert!(e.contains(&format!("was rotated at index {at}")), "{e}");
    log.append("draw.void", &void, &[&new_node], 1_002)
        .expect("the new node key voids");
}

#[test]
fn a_void_after_a_node_key_compromise_needs_the_new_key_and_the_declaration_is_a_statement() {
    let mut log = Log::new();
    let (reg, insp, new_node) = (k(10), k(11), k(13));
    log.enroll(&reg, "registrar", "registrar");
    log.enroll(&insp, "inspector", "inspector");
    let t = log.size() + 3;
    let commit = commit_v1(
        "d1",
        t,
        1_000,
        &[("registrar", &reg, b"s1"), ("inspection", &insp, b"s2")],
    );
    log.append("draw.commit", &commit, &[&reg], 100).expect("commit");
    let (node, admin) = (log.node.clone(), log.admin.clone());
    let declare = json!({"version": 1, "keyid": key_id(&node.verifying_key()), "as_of": 1,
        "new_key": public_key_to_base64(&new_node.verifying_key()), "reason": "HSM stolen"});
    let at = log
        .append("node.compromise", &declare, &[&admin], 200)
        .expect("declared by the admin quorum alone");
    assert_eq!(
        code(log.append("node.compromise", &declare, &[&admin], 201)),
        "DUPLICATE_STATEMENT"
    );
    let void = json!({"version": 1, "draw_id": "d1", "missing": ["registrar", "inspection"], "deadline_micros": 1_000});
    let e = log
        .append("draw.void", &void, &[&node], 1_002)
        .expect_err("the compromised node key");
    assert!(
        e.contains(&format!(
            "was declared compromised as of index 1 by the node.compromise record at index {at}"
        )),
        "{e}"
    );
    log.append("draw.void", &void, &[&new_node], 1_002)
        .expect("the new node key voids");
}
