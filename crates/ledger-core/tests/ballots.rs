//! A whole election in pure code — draw, election.open, credential issuance to drawn evaluators,
//! blind signing, anonymous ballots, tally — and every attack refused with its rule code.

use ed25519_dalek::SigningKey;
use ledger_core::credential::{self, Credential, IssuerKey};
use ledger_core::domain::{Record, SchemaError, check_record};
use ledger_core::dsse::Envelope;
use ledger_core::election::{Ballot, Tally, ticket_hash};
use ledger_core::hash::Hash;
use ledger_core::keys::{key_id, public_key_to_base64};
use ledger_core::rules::{DomainState, RuleCode, RuleError};
use serde_json::{Value, json};

/// TEST ONLY credential key (tests/data/README.md).
const TEST_KEY_PEM: &str = include_str!("data/TEST_ONLY_credential_key.pem");
const EL: &str = "el-2026-017";
const OPEN: u64 = 1_000;
const CLOSE: u64 = 2_000;

fn rec(kind: &str, v: Value) -> Record {
    check_record(kind, v.to_string().as_bytes()).unwrap_or_else(|e| panic!("{kind}: {e}"))
}

/// The node's and verifier's step: check, then apply on success.
fn step(st: &mut DomainState, index: u64, ts: u64, r: &Record, signers: &[String]) -> Result<(), RuleError> {
    st.check_at(index, ts, r, signers)?;
    st.apply_at(index, &Hash::digest(&index.to_le_bytes()), r, signers);
    Ok(())
}

fn code(r: Result<(), RuleError>) -> Option<RuleCode> {
    r.err().map(|e| e.code)
}

/// A draw of 3 evaluators (2 of stratum A, 1 of B) from ev-001…ev-005, with its result applied.
fn drawn_state() -> (DomainState, Vec<String>) {
    drawn_state_with(
        json!([{"id": "ev-001", "stratum": "A"}, {"id": "ev-002", "stratum": "A"}, {"id": "ev-003", "stratum": "A"},
                     {"id": "ev-004", "stratum": "B"}, {"id": "ev-005", "stratum": "B"}]),
    )
}

fn drawn_state_with(pool: Value) -> (DomainState, Vec<String>) {
    let mut st = DomainState::default();
    let secret = b"registrar secret";
    let commit = rec(
        "draw.commit",
        json!({"version": 1, "draw_id": "draw-1", "purpose": "evaluator_selection", "subjects": ["cadre-0042"],
            "pool": pool,
            "strata": [{"name": "A", "quota": 2}, {"name": "B", "quota": 1}], "k": 3, "algorithm": "ledger-draw-v1",
            "parties": [{"name": "registrar", "keyid": "reg", "commitment": Hash::digest(secret).to_hex()}],
            "reveal_at_size": 2, "reveal_deadline_micros": 10}),
    );
    step(&mut st, 0, 0, &commit, &["reg".into()]).expect("commit");
    st.observe_size(2, &Hash::digest(b"root at 2"));
    let reveal = rec(
        "draw.reveal",
        json!({"version": 1, "draw_id": "draw-1", "party": "registrar", "secret": hex::encode(secret)}),
    );
    step(&mut st, 2, 1, &reveal, &["reg".into()]).expect("reveal");
    let result = st.compute_result("draw-1").expect("result");
    let selected: Vec<String> = result.selection.iter().flat_map(|s| s.selected.clone()).collect();
    step(&mut st, 3, 2, &Record::DrawResult(result), &["node".into()]).expect("result");
    assert_eq!(selected.len(), 3);
    (st, selected)
}

fn open_json(issuer: &IssuerKey) -> Value {
    json!({"version": 1, "election_id": EL, "subjects": ["cadre-0042"], "draw_id": "draw-1",
        "weights": {"political": 20, "performance": 20, "integrity": 15, "public_opinion": 30, "responsibility": 15},
        "score_min": 0, "score_max": 100, "opens_at_micros": OPEN, "closes_at_micros": CLOSE,
        "credential_suite": "RSABSSA-SHA384-PSS-Randomized",
        "credential_key": issuer.public_key().to_base64().expect("b64")})
}

fn issued(evaluator: &str) -> Record {
    rec(
        "credential.issued",
        json!({"version": 1, "election_id": EL, "evaluator": evaluator, "count": 1}),
    )
}

/// What an evaluator does: a one-time key, blinding, the registrar's blind signature, finalizing.
fn obtain(issuer: &IssuerKey, election: &str, seed: u8) -> (SigningKey, Credential) {
    let k = SigningKey::from_bytes(&[seed; 32]);
    let mut rng = blind_rsa_signatures::DefaultRng;
    let st = credential::blind(&mut rng, issuer.public_key(), election, k.verifying_key().as_bytes()).expect("blind");
    let blind_sig = issuer
        .blind_sign(st.blinded_message())
        .expect("registrar signs blindly");
    let cred = credential::finalize(issuer.public_key(), &st, &blind_sig).expect("finalize");
    (k, cred)
}

fn ballot(k: &SigningKey, cred: &Credential, s: [u64; 5]) -> Record {
    rec(
        "ballot",
        json!({"version": 1, "election_id": EL,
            "scores": [{"subject": "cadre-0042", "scores": {"political": s[0], "performance": s[1], "integrity": s[2],
                "public_opinion": s[3], "responsibility": s[4]}}],
            "ballot_key": public_key_to_base64(&k.verifying_key()), "credential": cred}),
    )
}

fn signer(k: &SigningKey) -> Vec<String> {
    vec![key_id(&k.verifying_key())]
}

#[test]
fn full_election_and_every_attack() {
    let issuer = IssuerKey::from_pem(TEST_KEY_PEM).expect("test key");
    let (mut st, drawn) = drawn_state();
    let open = rec("election.open", open_json(&issuer));
    let mut early = open_json(&issuer);
    early["draw_id"] = json!("draw-9");
    assert_eq!(
        code(step(&mut st, 4, 500, &rec("election.open", early), &[])),
        Some(RuleCode::ElectionDrawNotReady)
    );
    step(&mut st, 4, 500, &open, &[]).expect("open");
    assert_eq!(
        code(step(&mut st, 5, 500, &open, &[])),
        Some(RuleCode::ElectionDuplicate)
    );

    // Credentials: only drawn evaluators, once each.
    let not_drawn = ["ev-001", "ev-002", "ev-003", "ev-004", "ev-005"]
        .into_iter()
        .find(|e| !drawn.iter().any(|d| d == e))
        .expect("two were not drawn");
    assert_eq!(
        code(step(&mut st, 5, 600, &issued(not_drawn), &[])),
        Some(RuleCode::CredentialNotDrawn)
    );
    step(&mut st, 5, 600, &issued(&drawn[0]), &[]).expect("issued 0");
    assert_eq!(
        code(step(&mut st, 6, 600, &issued(&drawn[0]), &[])),
        Some(RuleCode::CredentialDuplicate)
    );
    step(&mut st, 6, 600, &issued(&drawn[1]), &[]).expect("issued 1");

    let (k1, c1) = obtain(&issuer, EL, 11);
    let (k2, c2) = obtain(&issuer, EL, 12);
    let b1 = ballot(&k1, &c1, [80, 90, 70, 60, 85]);
    let b2 = ballot(&k2, &c2, [90, 70, 80, 100, 75]);

    assert_eq!(
        code(step(&mut st, 7, OPEN - 1, &b1, &signer(&k1))),
        Some(RuleCode::BallotLate)
    );
    assert_eq!(
        code(step(&mut st, 7, CLOSE, &b1, &signer(&k1))),
        Some(RuleCode::BallotLate)
    );
    assert_eq!(
        code(step(&mut st, 7, OPEN, &b1, &signer(&k2))),
        Some(RuleCode::BallotIneligible),
        "signed by another key"
    );
    step(&mut st, 7, OPEN, &b1, &signer(&k1)).expect("ballot 1");
    assert_eq!(
        code(step(&mut st, 8, OPEN + 1, &b1, &signer(&k1))),
        Some(RuleCode::BallotDuplicate),
        "credential reused"
    );

    // Without a valid credential: a signature of the right length that nobody issued.
    let (k3, _) = obtain(&issuer, "other-election", 13);
    let (r, s) = c2.parts().expect("parts");
    let blank = Credential::from_parts(&r, &vec![0x42; s.len()]);
    assert_eq!(
        code(step(&mut st, 8, OPEN + 1, &ballot(&k3, &blank, [1; 5]), &signer(&k3))),
        Some(RuleCode::BallotIneligible)
    );
    // Forged: a real credential, but for another key (k2's credential on k3's ballot)…
    assert_eq!(
        code(step(&mut st, 8, OPEN + 1, &ballot(&k3, &c2, [1; 5]), &signer(&k3))),
        Some(RuleCode::BallotIneligible)
    );
    // …or one the same registrar key signed for another election.
    let (k4, c4) = obtain(&issuer, "other-election", 14);
    assert_eq!(
        code(step(&mut st, 8, OPEN + 1, &ballot(&k4, &c4, [1; 5]), &signer(&k4))),
        Some(RuleCode::BallotIneligible)
    );
    assert_eq!(
        code(step(
            &mut st,
            8,
            OPEN + 1,
            &ballot(&k2, &c2, [101, 0, 0, 0, 0]),
            &signer(&k2)
        )),
        Some(RuleCode::BallotInvalid)
    );
    step(&mut st, 8, OPEN + 1, &b2, &signer(&k2)).expect("ballot 2");

    // The registrar mints a third credential without a credential.issued record.
    let (k5, c5) = obtain(&issuer, EL, 15);
    assert_eq!(
        code(step(&mut st, 9, OPEN + 2, &ballot(&k5, &c5, [50; 5]), &signer(&k5))),
        Some(RuleCode::MoreBallotsThanCredentials)
    );

    // Micro-evaluations: one rating per ticket.
    let t = ticket_hash(&[3; 32], "ticket-0001").to_hex();
    let micro = |batch: &str| {
        rec(
            "evaluation.micro",
            json!({"version": 1, "ticket_hash": t, "subject": "cadre-0042", "department": batch,
                "rating": 4, "service_time_micros": 900}),
        )
    };
    step(&mut st, 9, OPEN + 2, &micro("b-1"), &[]).expect("micro");
    assert_eq!(
        code(step(&mut st, 10, OPEN + 3, &micro("b-2"), &[])),
        Some(RuleCode::MicroDuplicateTicket)
    );
    let agg = st.elections.micro_aggregates(0, 2_000);
    assert_eq!((agg.len(), agg[0].count, agg[0].sum), (1, 1, 4));

    // Tally: only after the close, equal to the recomputation.
    assert!(st.elections.closed_elections_needing_tally(CLOSE - 1).is_empty());
    assert_eq!(st.elections.closed_elections_needing_tally(CLOSE), vec![EL.to_string()]);
    let tally = st.elections.compute_tally(EL).expect("tally");
    // Independent arithmetic: sums 170, 160, 150, 160, 160; weighted
    // (20·170 + 20·160 + 15·150 + 30·160 + 15·160) / (100·2) = 16050 / 200 = 80.25.
    let want: Tally = serde_json::from_value(json!({"version": 1, "election_id": EL, "ballot_count": 2,
        "ballot_indices": [7, 8], "results": [{"subject": "cadre-0042",
        "sums": {"political": 170, "performance": 160, "integrity": 150, "public_opinion": 160, "responsibility": 160},
        "weighted_score": "80.2500"}]}))
    .expect("tally json");
    assert_eq!(tally, want);
    let tally_rec = |t: &Tally| rec("tally", serde_json::to_value(t).expect("json"));
    assert_eq!(
        code(step(&mut st, 10, CLOSE - 1, &tally_rec(&tally), &[])),
        Some(RuleCode::TallyTooEarly)
    );
    let mut altered = tally.clone();
    altered.results[0].weighted_score = Some("85.0000".into());
    assert_eq!(
        code(step(&mut st, 10, CLOSE, &tally_rec(&altered), &[])),
        Some(RuleCode::TallyMismatch)
    );
    let mut dropped = tally.clone();
    dropped.ballot_indices = vec![7];
    dropped.ballot_count = 1;
    let Record::Ballot(only_first) = &b1 else {
        panic!("ballot")
    };
    dropped.results = ledger_core::election::tally(&st.elections.elections[EL].open, &[(7, only_first)]).results;
    assert_eq!(
        dropped.results[0].weighted_score.as_deref(),
        Some("75.2500"),
        "the first ballot alone"
    );
    assert_eq!(
        code(step(&mut st, 10, CLOSE, &tally_rec(&dropped), &[])),
        Some(RuleCode::TallyMismatch)
    );
    step(&mut st, 10, CLOSE, &tally_rec(&tally), &[]).expect("tally");
    assert_eq!(
        code(step(&mut st, 11, CLOSE, &tally_rec(&tally), &[])),
        Some(RuleCode::TallyDuplicate)
    );
    assert!(st.elections.closed_elections_needing_tally(CLOSE + 5).is_empty());
    assert_eq!(
        code(step(&mut st, 11, CLOSE, &issued(&drawn[2]), &[])),
        Some(RuleCode::CredentialAfterClose)
    );
}

#[test]
fn nothing_on_the_ballot_names_the_evaluator() {
    let issuer = IssuerKey::from_pem(TEST_KEY_PEM).expect("test key");
    let (k, c) = obtain(&issuer, EL, 21);
    let Record::Ballot(b) = ballot(&k, &c, [1; 5]) else {
        panic!("ballot")
    };
    let text = serde_json::to_string(&b).expect("json");
    for ev in ["ev-001", "ev-002", "ev-003", "ev-004", "ev-005"] {
        assert!(!text.contains(ev));
    }
    let fields: Vec<String> = serde_json::to_value(&b)
        .expect("json")
        .as_object()
        .expect("object")
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        fields,
        ["ballot_key", "credential", "election_id", "scores", "version"],
        "a ballot carries no evaluator field"
    );
    let _: &Ballot = &b;
}

#[test]
fn schemas_refuse_bad_values() {
    let issuer = IssuerKey::from_pem(TEST_KEY_PEM).expect("test key");
    let bad = |patch: Value| {
        let mut v = open_json(&issuer);
        for (k, x) in patch.as_object().expect("object") {
            v[k] = x.clone();
        }
        check_record("election.open", v.to_string().as_bytes()).map(drop)
    };
    assert!(bad(json!({})).is_ok());
    invalid(bad(
        json!({"weights": {"political": 20, "performance": 20, "integrity": 20, "public_opinion": 30, "responsibility": 15}}),
    ));
    invalid(bad(json!({"score_min": 100})));
    invalid(bad(json!({"closes_at_micros": OPEN})));
    invalid(bad(json!({"credential_suite": "RSABSSA-SHA384-PSS-Deterministic"})));
    invalid(bad(json!({"credential_key": "AAAA"})));
    invalid(bad(json!({"subjects": ["a", "a"]})));
    let ci = json!({"version": 1, "election_id": EL, "evaluator": "ev-001", "count": 2});
    invalid(check_record("credential.issued", ci.to_string().as_bytes()));
    let t = json!({"version": 1, "election_id": EL, "ballot_count": 2, "ballot_indices": [8, 7], "results": []});
    invalid(check_record("tally", t.to_string().as_bytes()));
    let r6 = json!({"version": 1, "ticket_hash": "00".repeat(32), "subject": "s", "department": "d", "rating": 6,
        "service_time_micros": 1});
    invalid(check_record("evaluation.micro", r6.to_string().as_bytes()));
}

/// The registry lets a ballot through on its one-time key alone; enrolled or foreign signers are refused.
#[test]
fn registry_admits_ballots_by_their_one_time_key_only() {
    use ledger_core::entry::Entry;
    use ledger_core::registry::{Registry, RegistryError, payload_type};
    let issuer = IssuerKey::from_pem(TEST_KEY_PEM).expect("test key");
    let (node, admin) = (SigningKey::from_bytes(&[1; 32]), SigningKey::from_bytes(&[2; 32]));
    let charter = json!({"version": 1, "origin": "ledger.test/ballots",
        "node_key": public_key_to_base64(&node.verifying_key()),
        "admins": [{"name": "admin", "key": public_key_to_base64(&admin.verifying_key())}],
        "policy": {"admin_quorum": 1}});
    let mut env = Envelope::new(payload_type("charter"), charter.to_string().into_bytes());
    env.sign(&node);
    env.sign(&admin);
    let reg = Registry::genesis(&Entry {
        index: 0,
        timestamp_micros: 0,
        prev_root: Hash::default(),
        envelope: env,
    })
    .expect("charter");

    let (k, c) = obtain(&issuer, EL, 31);
    let Record::Ballot(b) = ballot(&k, &c, [5; 5]) else {
        panic!("ballot")
    };
    let payload = serde_json::to_vec(&b).expect("json");
    let signed = |keys: &[&SigningKey]| {
        let mut e = Envelope::new(payload_type("ballot"), payload.clone());
        keys.iter().for_each(|key| e.sign(key));
        e
    };
    let ok = signed(&[&k]);
    assert_eq!(reg.verify_signatures(&ok).expect("one-time key"), signer(&k));
    reg.authorize("ballot", &signer(&k))
        .expect("credential is the authorization");
    assert!(
        matches!(
            reg.verify_signatures(&signed(&[&admin])),
            Err(RegistryError::UnknownKey { .. })
        ),
        "not the ballot key"
    );
    assert!(
        matches!(
            reg.verify_signatures(&signed(&[&k, &admin])),
            Err(RegistryError::InvalidPayload { .. })
        ),
        "a second signer"
    );
    assert!(
        matches!(
            reg.verify_signatures(&signed(&[])),
            Err(RegistryError::InvalidPayload { .. })
        ),
        "unsigned"
    );
    assert!(matches!(
        reg.authorize("ballot", &[key_id(&admin.verifying_key())]),
        Err(RegistryError::Conflict(_))
    ));
    let batch = reg.verify_signatures_batch(&[&ok, &signed(&[&admin])]);
    assert_eq!(batch[0].as_ref().expect("ok"), &signer(&k));
    assert!(matches!(batch[1], Err(RegistryError::UnknownKey { .. })));
    // A ballot whose one-time key is an enrolled key is refused (it would name its holder).
    let Record::Ballot(mut b2) = ballot(&admin, &c, [5; 5]) else {
        panic!("ballot")
    };
    b2.ballot_key = public_key_to_base64(&admin.verifying_key());
    let mut e = Envelope::new(payload_type("ballot"), serde_json::to_vec(&b2).expect("json"));
    e.sign(&admin);
    assert!(matches!(reg.verify_signatures(&e), Err(RegistryError::Conflict(_))));
}

/// Issue 12 item 7: a rating's service time lies in the 400 days up to its entry's time.
#[test]
fn micro_evaluation_service_time_window() {
    use ledger_core::election_rules::MICRO_MAX_AGE_MICROS;
    let ts: u64 = 1_796_000_000_000_000; // the entry's (node) time, 2026-11
    let micro = |n: u64, service: u64| {
        rec(
            "evaluation.micro",
            json!({"version": 1, "ticket_hash": ticket_hash(&[4; 32], &format!("t-{n}")).to_hex(),
                "subject": "cadre-0042", "department": "d", "rating": 3, "service_time_micros": service}),
        )
    };
    let mut st = DomainState::default();
    for (n, service) in [
        (1, 0),
        (2, 1),
        (3, 1u64 << 63),
        (4, ts + 1),
        (5, ts - MICRO_MAX_AGE_MICROS - 1),
    ] {
        assert_eq!(
            code(step(&mut st, n, ts, &micro(n, service), &[])),
            Some(RuleCode::MicroTimeOutOfRange),
            "{service}"
        );
    }
    for (n, service) in [(6, ts), (7, ts - MICRO_MAX_AGE_MICROS), (8, ts - 3_600_000_000)] {
        step(&mut st, n, ts, &micro(n, service), &[]).expect("in the window");
    }
}

/// Issue 12 item 7 for a decision that cites an election: the election's subjects and its draw.
#[test]
fn decision_on_an_election_checks_its_subjects_and_draw() {
    let issuer = IssuerKey::from_pem(TEST_KEY_PEM).expect("test key");
    let (mut st, _) = drawn_state();
    step(
        &mut st,
        4,
        OPEN,
        &rec("election.open", open_json(&issuer)),
        &["reg".into()],
    )
    .expect("open");
    let t = st.elections.compute_tally(EL).expect("tally");
    let t = rec("tally", serde_json::to_value(&t).expect("json"));
    step(&mut st, 5, CLOSE, &t, &[]).expect("tally");
    for (i, (id, subject)) in [("n1", "cadre-0042"), ("n2", "cadre-0099")].into_iter().enumerate() {
        let n = json!({"version": 1, "nomination_id": id, "subject": subject, "post": "head", "organization": "o"});
        step(&mut st, 6 + i as u64, CLOSE, &rec("nomination", n), &["reg".into()]).expect("nomination");
    }
    let decision = |subject: &str, nomination: &str| {
        rec(
            "decision",
            json!({"version": 1, "decision_id": "dec-1", "subject": subject, "nomination_id": nomination,
                "evaluation_ref": EL, "outcome": "promote", "post": "head"}),
        )
    };
    let c = &["committee".to_string()];
    assert_eq!(
        code(st.check_at(8, CLOSE, &decision("cadre-0099", "n2"), c)),
        Some(RuleCode::DecisionSubjectMismatch)
    );
    assert_eq!(st.check_at(8, CLOSE, &decision("cadre-0042", "n1"), c), Ok(()));
    // The draw the election was opened on is cancelled (entry 0 is its commit).
    let cancel = rec(
        "cancellation",
        json!({"version": 1, "target_index": 0, "reason": "rigged pool"}),
    );
    step(&mut st, 8, CLOSE, &cancel, &["inspector".into()]).expect("cancel the draw");
    assert_eq!(
        code(st.check_at(9, CLOSE, &decision("cadre-0042", "n1"), c)),
        Some(RuleCode::DecisionEvaluationCancelled)
    );
}

/// An evaluator's pool key (seed from the member number).
fn member_key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[100 + n; 32])
}

/// `credential.issued` with the request signature of `key` over `blinded` for `election`.
fn issued_signed(evaluator: &str, election: &str, key: &SigningKey, blinded: &[u8]) -> Record {
    use base64::Engine as _;
    use ed25519_dalek::Signer as _;
    let h = Hash::digest(blinded);
    let m = ledger_core::election::credential_request_message(election, evaluator, &h);
    rec(
        "credential.issued",
        json!({"version": 1, "election_id": EL, "evaluator": evaluator, "count": 1,
            "blinded_message_hash": h.to_hex(),
            "request_signature": base64::engine::general_purpose::STANDARD.encode(key.sign(&m).to_bytes())}),
    )
}

#[test]
fn issuance_needs_the_evaluators_signed_request() {
    let issuer = IssuerKey::from_pem(TEST_KEY_PEM).expect("test key");
    // Stratum A (ev-001…ev-003, 2 drawn) has keys in the pool, stratum B (ev-004, ev-005, 1
    // drawn) has none.
    let pool: Vec<Value> = (1..=5u8)
        .map(|n| {
            let mut m = json!({"id": format!("ev-00{n}"), "stratum": if n <= 3 { "A" } else { "B" }});
            if n <= 3 {
                m["key"] = json!(public_key_to_base64(&member_key(n).verifying_key()));
            }
            m
        })
        .collect();
    let (mut st, drawn) = drawn_state_with(Value::Array(pool));
    step(&mut st, 4, 500, &rec("election.open", open_json(&issuer)), &[]).expect("open");
    let keyed = drawn
        .iter()
        .find(|d| d.as_str() < "ev-004")
        .expect("a drawn member with a key")
        .clone();
    let n: u8 = keyed[4..].parse().expect("member number");
    let blinded = b"the blinded message";

    // The registrar's word alone: refused.
    assert_eq!(
        code(step(&mut st, 5, 600, &issued(&keyed), &[])),
        Some(RuleCode::CredentialNotRequested)
    );
    // Signed by another member's key, for another election, or over other bytes than the hash says.
    let other = member_key(if n == 1 { 2 } else { 1 });
    assert_eq!(
        code(step(&mut st, 5, 600, &issued_signed(&keyed, EL, &other, blinded), &[])),
        Some(RuleCode::CredentialNotRequested)
    );
    assert_eq!(
        code(step(
            &mut st,
            5,
            600,
            &issued_signed(&keyed, "el-other", &member_key(n), blinded),
            &[]
        )),
        Some(RuleCode::CredentialNotRequested)
    );
    let Record::CredentialIssued(mut swapped) = issued_signed(&keyed, EL, &member_key(n), blinded) else {
        panic!("credential.issued")
    };
    swapped.blinded_message_hash = Some(Hash::digest(b"another blinded message").to_hex());
    assert_eq!(
        code(step(&mut st, 5, 600, &Record::CredentialIssued(swapped), &[])),
        Some(RuleCode::CredentialNotRequested)
    );
    // Half a request (hash without signature) is malformed on its own.
    let half = json!({"version": 1, "election_id": EL, "evaluator": keyed, "count": 1,
        "blinded_message_hash": Hash::digest(blinded).to_hex()});
    invalid(check_record("credential.issued", half.to_string().as_bytes()));
    // The evaluator's own request: accepted and counted as requested personally.
    step(
        &mut st,
        5,
        600,
        &issued_signed(&keyed, EL, &member_key(n), blinded),
        &[],
    )
    .expect("signed request");
    let e = &st.elections.elections[EL];
    assert!(e.issued.contains(&keyed) && e.requested.contains(&keyed));

    // A member without a key: the old behaviour (registrar's word), and a signature that nothing
    // can check is refused.
    let keyless = drawn
        .iter()
        .find(|d| d.as_str() >= "ev-004")
        .expect("a drawn member without a key");
    assert_eq!(
        code(step(
            &mut st,
            6,
            600,
            &issued_signed(keyless, EL, &member_key(5), blinded),
            &[]
        )),
        Some(RuleCode::CredentialNotRequested)
    );
    step(&mut st, 6, 600, &issued(keyless), &[]).expect("keyless member, registrar's word");
    let e = &st.elections.elections[EL];
    assert!(e.issued.contains(keyless) && !e.requested.contains(keyless));
}

#[test]
fn pool_member_key_is_optional_and_checked() {
    let without = json!({"id": "ev-001", "stratum": "A"});
    let m: ledger_core::domain::Member = serde_json::from_value(without.clone()).expect("member");
    assert_eq!(m.key, None);
    assert_eq!(
        serde_json::to_value(&m).expect("json"),
        json!({"id": "ev-001", "stratum": "A", "affiliation": ""})
    );
    let bad = json!({"version": 1, "draw_id": "draw-1", "purpose": "evaluator_selection", "subjects": ["cadre-0042"],
        "pool": [{"id": "ev-001", "stratum": "A", "key": "not a key"}],
        "strata": [{"name": "A", "quota": 1}], "k": 1, "algorithm": "ledger-draw-v1",
        "parties": [{"name": "registrar", "keyid": "reg", "commitment": Hash::digest(b"s").to_hex()}],
        "reveal_at_size": 2, "reveal_deadline_micros": 10});
    let e = check_record("draw.commit", bad.to_string().as_bytes()).expect_err("bad key");
    assert!(e.to_string().contains("key"), "{e}");
}

#[test]
fn credential_request_bytes_are_as_documented() {
    // docs/ballots.md: prefix ‖ 0x00 ‖ u32be len ‖ election ‖ u32be len ‖ evaluator ‖ SHA-256(blinded).
    let h = Hash::digest(b"blinded");
    let m = ledger_core::election::credential_request_message("el-1", "ev-03", &h);
    let mut want = b"ledger credential request v1\x00".to_vec();
    want.extend_from_slice(&[0, 0, 0, 4]);
    want.extend_from_slice(b"el-1");
    want.extend_from_slice(&[0, 0, 0, 5]);
    want.extend_from_slice(b"ev-03");
    want.extend_from_slice(h.as_bytes());
    assert_eq!(m, want);
    assert_eq!(m.len(), 29 + 4 + 4 + 4 + 5 + 32);
}

/// The message of a value refused by the schema ([`SchemaError::Invalid`]); panics otherwise.
fn invalid<T: std::fmt::Debug>(r: Result<T, SchemaError>) -> String {
    match r {
        Err(SchemaError::Invalid(m)) => m,
        other => panic!("expected SchemaError::Invalid, got {other:?}"),
    }
}
