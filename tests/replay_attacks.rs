//! Issue 12 items 2 and 7 through the real interface: a `ledger-node` started on loopback, gRPC
//! only. A client holding no key reads envelopes with GetEntry and appends them again; an envelope
//! of one log is offered to another; a committee member cites the wrong cadre or a cancelled
//! draw; a service platform rates services at impossible times.

mod support;

use ed25519_dalek::SigningKey;
use ledger_core::dsse::Envelope;
use ledger_proto::pb;
use ledger_proto::pb::ledger_client::LedgerClient;
use serde_json::json;
use support::*;
use tonic::Code;
use tonic::transport::Channel;

/// The envelope of entry `index`, as anyone can read it.
async fn read_envelope(c: &mut LedgerClient<Channel>, index: u64) -> Envelope {
    let e = c
        .get_entry(pb::GetEntryRequest { index })
        .await
        .expect("get entry")
        .into_inner();
    e.envelope.expect("envelope").into()
}

/// Asserts a refusal with `code` whose message contains every one of `parts`.
fn refused(r: Result<pb::AppendResponse, tonic::Status>, code: Code, parts: &[&str]) {
    let e = r.expect_err("must be refused");
    assert_eq!(e.code(), code, "{e}");
    for p in parts {
        assert!(e.message().contains(p), "{p:?} not in {e}");
    }
}

struct Actors {
    admin: SigningKey,
    registrar: SigningKey,
    inspector: SigningKey,
    committee: SigningKey,
    platform: SigningKey,
}

async fn enroll_all(c: &mut LedgerClient<Channel>, admin: SigningKey) -> Actors {
    let a = Actors {
        admin,
        registrar: new_key(),
        inspector: new_key(),
        committee: new_key(),
        platform: new_key(),
    };
    for (k, name, roles) in [
        (&a.registrar, "registrar", &["registrar", "nominator"][..]),
        (&a.inspector, "inspector", &["inspector"][..]),
        (&a.committee, "committee", &["committee-member"][..]),
        (&a.platform, "platform", &["service-platform"][..]),
    ] {
        append(c, &enroll(k, name, roles, &[&a.admin]), &format!("enroll-{name}"))
            .await
            .expect("enroll");
    }
    a
}

fn nomination(id: &str, subject: &str) -> serde_json::Value {
    json!({"version": 1, "nomination_id": id, "subject": subject, "post": "deputy head", "organization": "county-7"})
}

fn decision(id: &str, subject: &str, nomination: &str, evaluation: &str) -> serde_json::Value {
    json!({"version": 1, "decision_id": id, "subject": subject, "nomination_id": nomination,
        "evaluation_ref": evaluation, "outcome": "promote", "post": "deputy head"})
}

/// An rfc3797 draw about `subject`: commit and sources; the node appends the result right after.
/// Returns the index of the commit.
async fn draw(c: &mut LedgerClient<Channel>, registrar: &SigningKey, id: &str, subject: &str) -> u64 {
    let pool: Vec<serde_json::Value> = (1..=5)
        .map(|i| json!({"id": format!("ev-{i}"), "stratum": "all"}))
        .collect();
    let commit = json!({
        "version": 1, "draw_id": id, "purpose": "evaluator_selection", "subjects": [subject], "pool": pool,
        "strata": [{"name": "all", "quota": 2}], "k": 2, "algorithm": "rfc3797", "sources": ["lottery"],
        "reveal_deadline_micros": now_micros() + 3_600_000_000
    });
    let ci = append(c, &record("draw.commit", commit, &[registrar]), &format!("{id}-commit"))
        .await
        .expect("commit")
        .index;
    let sources = json!({"version": 1, "draw_id": id, "values": [["42"]]});
    let si = append(
        c,
        &record("draw.sources", sources, &[registrar]),
        &format!("{id}-sources"),
    )
    .await
    .expect("sources")
    .index;
    // The node's result follows the sources.
    let result = read_envelope(c, si + 1).await;
    assert_eq!(
        ledger_core::registry::kind_of(&result.payload_type),
        Some("draw.result")
    );
    ci
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_replays_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, "ledger.test/replay-a", &[], 1);
    let mut node = Node::start(&data);
    let mut c = node.client().await;
    let a = enroll_all(&mut c, key(&data.join("keys/admin.key"))).await;

    // An honest cycle for cadre-1.
    let nom = append(
        &mut c,
        &record("nomination", nomination("nom-1", "cadre-1"), &[&a.registrar]),
        "nom-1",
    )
    .await
    .expect("nomination");
    draw(&mut c, &a.registrar, "draw-1", "cadre-1").await;
    let dec = append(
        &mut c,
        &record(
            "decision",
            decision("dec-1", "cadre-1", "nom-1", "draw-1"),
            &[&a.committee],
        ),
        "dec-1",
    )
    .await
    .expect("decision");
    let note = append(&mut c, &record("note", note_payload(1), &[&a.registrar]), "note-1")
        .await
        .expect("note");
    // A nomination the inspector cancels.
    let nom2 = append(
        &mut c,
        &record("nomination", nomination("nom-2", "cadre-2"), &[&a.registrar]),
        "nom-2",
    )
    .await
    .expect("nomination 2");
    let cancel = json!({"version": 1, "target_index": nom2.index, "reason": "procedural error"});
    append(&mut c, &record("cancellation", cancel, &[&a.inspector]), "cancel-nom-2")
        .await
        .expect("cancellation");

    // The attacker holds no key: it reads each envelope back and appends it under a new request id.
    for (what, index, code) in [
        ("nomination", nom.index, "DUPLICATE_ID"),
        ("decision", dec.index, "DUPLICATE_ID"),
        ("cancelled nomination", nom2.index, "DUPLICATE_ID"),
        ("note", note.index, "DUPLICATE_STATEMENT"),
    ] {
        let env = read_envelope(&mut c, index).await;
        let earlier = format!("entry {index}");
        refused(
            append(&mut c, &env, &format!("attack-{index}")).await,
            Code::AlreadyExists,
            &[code, &earlier],
        );
        // Without a request id, too.
        refused(append(&mut c, &env, "").await, Code::AlreadyExists, &[code]);
        // The honest client's retry (same request id, same envelope) still gets its index back.
        let id = match what {
            "nomination" => "nom-1",
            "decision" => "dec-1",
            "cancelled nomination" => "nom-2",
            _ => "note-1",
        };
        let again = append(&mut c, &env, id).await.expect("idempotent retry");
        assert_eq!((again.index, again.duplicate), (index, true), "{what}");
    }
    // Nothing was appended by the attacker: the log ends with the cancellation.
    let size = c
        .get_checkpoint(pb::GetCheckpointRequest { size: None })
        .await
        .expect("checkpoint")
        .into_inner();
    let entries = entries(&mut c).await;
    assert_eq!(entries.last().map(|e| e.1.as_str()), Some("cancellation"), "{size:?}");

    // After a restart the node still knows what is in its log.
    node.stop();
    let node = Node::start(&data);
    let mut c = node.client().await;
    for (index, code) in [(nom2.index, "DUPLICATE_ID"), (note.index, "DUPLICATE_STATEMENT")] {
        let env = read_envelope(&mut c, index).await;
        refused(
            append(&mut c, &env, &format!("after-restart-{index}")).await,
            Code::AlreadyExists,
            &[code],
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envelope_is_valid_in_its_own_log_only() {
    let dir = tempfile::tempdir().expect("tmp");
    let (data_a, data_b) = (dir.path().join("a"), dir.path().join("b"));
    init(&data_a, "ledger.test/log-a", &[], 1);
    init(&data_b, "ledger.test/log-b", &[], 1);
    let (node_a, node_b) = (Node::start(&data_a), Node::start(&data_b));
    let (mut ca, mut cb) = (node_a.client().await, node_b.client().await);
    // The same registrar is enrolled in both logs.
    let registrar = new_key();
    for (c, data, origin) in [
        (&mut ca, &data_a, "ledger.test/log-a"),
        (&mut cb, &data_b, "ledger.test/log-b"),
    ] {
        let admin = key(&data.join("keys/admin.key"));
        let e = record_in(
            Some(origin),
            "key.enroll",
            json!({"version": 1, "name": "registrar", "roles": ["registrar"],
                "key": ledger_core::keys::public_key_to_base64(&registrar.verifying_key())}),
            &[&admin],
        );
        append(c, &e, "").await.expect("enroll");
    }
    let ia = append(
        &mut ca,
        &record_in(
            Some("ledger.test/log-a"),
            "nomination",
            nomination("nom-9", "cadre-9"),
            &[&registrar],
        ),
        "",
    )
    .await
    .expect("nomination in log a")
    .index;
    // Read from log a, offered to log b by someone holding no key.
    let env = read_envelope(&mut ca, ia).await;
    refused(
        append(&mut cb, &env, "cross").await,
        Code::PermissionDenied,
        &["WRONG_LOG", "ledger.test/log-a", "ledger.test/log-b"],
    );
    // An unbound envelope (valid in any log of the old form) is refused by a log that binds.
    let unbound = record_in(None, "nomination", nomination("nom-10", "cadre-9"), &[&registrar]);
    refused(
        append(&mut cb, &unbound, "").await,
        Code::InvalidArgument,
        &["LOG_BINDING_MISSING", "log=\\\"ledger.test/log-b\\\""],
    );
    // The batch path answers the same.
    let r = cb
        .append_batch(pb::AppendBatchRequest {
            items: vec![req(&env, "", false), req(&unbound, "", false)],
            wait_for_checkpoint: false,
        })
        .await
        .expect("batch")
        .into_inner();
    assert_eq!(
        r.results[0].error_code,
        Code::PermissionDenied as i32,
        "{:?}",
        r.results[0]
    );
    assert_eq!(
        r.results[1].error_code,
        Code::InvalidArgument as i32,
        "{:?}",
        r.results[1]
    );
    // An origin that cannot be named in a payload type is refused at init.
    for bad in [
        "ledger.test/\"quoted\"",
        "ledger.test/back\\slash",
        "ledger.test/tab\there",
    ] {
        let out = std::process::Command::new(bin("ledger-node"))
            .args(["init", "--origin", bad, "--data"])
            .arg(dir.path().join("bad"))
            .output()
            .expect("init");
        assert!(!out.status.success(), "{bad:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("is refused"), "{bad:?}");
    }
    // The same record signed for log b is accepted there.
    let ok = record_in(
        Some("ledger.test/log-b"),
        "nomination",
        nomination("nom-9", "cadre-9"),
        &[&registrar],
    );
    append(&mut cb, &ok, "").await.expect("bound to log b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decision_and_rating_rules() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, "ledger.test/rules", &[], 1);
    let node = Node::start(&data);
    let mut c = node.client().await;
    let a = enroll_all(&mut c, key(&data.join("keys/admin.key"))).await;
    for (id, subject) in [("nom-x", "cadre-x"), ("nom-y", "cadre-y")] {
        append(
            &mut c,
            &record("nomination", nomination(id, subject), &[&a.registrar]),
            "",
        )
        .await
        .expect("nomination");
    }
    let draw_x = draw(&mut c, &a.registrar, "draw-x", "cadre-x").await;
    draw(&mut c, &a.registrar, "draw-y", "cadre-y").await;

    // A decision for cadre-y citing cadre-x's nomination, or cadre-x's draw.
    let cm = [&a.committee];
    refused(
        append(
            &mut c,
            &record("decision", decision("d1", "cadre-y", "nom-x", "draw-y"), &cm),
            "",
        )
        .await,
        Code::FailedPrecondition,
        &["DECISION_SUBJECT_MISMATCH", "nom-x"],
    );
    refused(
        append(
            &mut c,
            &record("decision", decision("d2", "cadre-y", "nom-y", "draw-x"), &cm),
            "",
        )
        .await,
        Code::FailedPrecondition,
        &["DECISION_SUBJECT_MISMATCH", "draw-x"],
    );
    // The inspector cancels draw-x; a decision citing it is refused.
    let cancel = json!({"version": 1, "target_index": draw_x, "reason": "the pool was rigged"});
    let ci = append(&mut c, &record("cancellation", cancel, &[&a.inspector]), "")
        .await
        .expect("cancel the draw")
        .index;
    refused(
        append(
            &mut c,
            &record("decision", decision("d3", "cadre-x", "nom-x", "draw-x"), &cm),
            "",
        )
        .await,
        Code::FailedPrecondition,
        &["DECISION_EVALUATION_CANCELLED", &format!("entry {ci}")],
    );
    // The honest decision for cadre-y passes.
    append(
        &mut c,
        &record("decision", decision("d4", "cadre-y", "nom-y", "draw-y"), &cm),
        "",
    )
    .await
    .expect("honest decision");

    // Ratings placed at impossible times.
    let micro = |n: u64, service: u64| {
        let mut p = micro_payload(n);
        p["service_time_micros"] = json!(service);
        record("evaluation.micro", p, &[&a.platform])
    };
    for (n, service) in [(1, 0), (2, 1), (3, 1u64 << 63), (4, now_micros() + 3_600_000_000)] {
        refused(
            append(&mut c, &micro(n, service), "").await,
            Code::FailedPrecondition,
            &["MICRO_TIME_OUT_OF_RANGE"],
        );
    }
    append(&mut c, &micro(5, now_micros() - 86_400_000_000), "")
        .await
        .expect("a rating of yesterday's service");
}

/// `ledgerctl` learns the node's origin and binds what it signs; `ledgerctl demo` (the client
/// library's signing helpers) runs its whole cycle against a node that requires binding; a record
/// signed for another origin (`--origin`) is refused with WRONG_LOG.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledgerctl_signs_for_the_nodes_log() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, "ledger.test/ctl", &[], 1);
    let node = Node::start(&data);
    let admin = data.join("keys/admin.key");
    let ctl = |args: &[&str]| {
        std::process::Command::new(bin("ledgerctl"))
            .arg("--node")
            .arg(&node.addr)
            .args(args)
            .output()
            .expect("ledgerctl")
    };
    let out = ctl(&["demo", "--admin-key", admin.to_str().expect("utf8")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The demo's election: credentials for the drawn only, one ballot per credential, the node's
    // tally, a decision citing the election, and the review showing the recomputed tally.
    let text = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "election.open  el-0001",
        "refused: a credential for ev-",
        "refused: a second ballot with the same credential",
        "BALLOT_DUPLICATE",
        "tally          appended by the node: 3 ballots, cadre-0001 weighted score",
        "Elections (tallies recomputed from the ballots on replay",
        "el-0001 (tally entry",
        "3 ballots) cadre-0001: political 75.0, performance 80.0, integrity 85.0, public opinion 70.0, responsibility 75.0",
    ] {
        assert!(text.contains(expected), "demo output lacks {expected:?}:\n{text}");
    }
    assert!(!text.contains("UNEXPECTED"), "{text}");
    {
        let mut c = node.client().await;
        let log = entries(&mut c).await;
        assert_eq!(log.iter().filter(|e| e.1 == "ballot").count(), 3);
        assert_eq!(log.iter().filter(|e| e.1 == "credential.issued").count(), 3);
        assert!(log.iter().any(|e| e.1 == "tally" && e.2["election_id"] == "el-0001"));
        assert!(
            log.iter()
                .any(|e| e.1 == "decision" && e.2["subject"] == "cadre-0001" && e.2["evaluation_ref"] == "el-0001")
        );
    }
    let payload = dir.path().join("note.json");
    std::fs::write(&payload, r#"{"version": 1, "text": "signed by ledgerctl"}"#).expect("write");
    let append = ["append", "--kind", "note", "--payload", payload.to_str().expect("utf8")];
    let key = ["--key", admin.to_str().expect("utf8")];
    let out = ctl(&[&append[..], &key[..], &["--origin", "ledger.test/elsewhere"]].concat());
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("WRONG_LOG"));
    let out = ctl(&[&append[..], &key[..]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut c = node.client().await;
    let last = entries(&mut c).await.pop().expect("entries");
    assert_eq!(
        (last.1.as_str(), &last.2["text"]),
        ("note", &json!("signed by ledgerctl"))
    );
    // Every envelope in the log is bound to it.
    let mut s = c
        .get_entries(pb::GetEntriesRequest { start: 1, end: 0 })
        .await
        .expect("entries")
        .into_inner();
    while let Some(e) = s.message().await.expect("entry") {
        let t = e.envelope.expect("envelope").payload_type;
        assert!(t.ends_with("; log=\"ledger.test/ctl\""), "{t}");
    }
}
