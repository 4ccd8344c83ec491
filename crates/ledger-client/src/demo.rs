//! `ledgerctl demo`: the quickest way to see what the ledger is for. Against a running node, it
//! enrolls a registrar, a committee member and a petition office, runs an honest cycle for one
//! cadre (nomination → complaint → verification → verifiable draw → anonymous election of the
//! drawn evaluators with blind credentials and five-dimension ballots → the node's tally →
//! decision citing the election), then the manipulations the policy essay describes: in the
//! election a refused credential for a pool member the draw did not select and a refused double
//! vote; for a second cadre a refused fake reveal, a refused forged draw result, a redraw, and a
//! promotion while a complaint is unverified. The refused ones never reach the log; the others are
//! what `ledger-verify review` flags.

use crate::client::LedgerClient;
use crate::election::{self as el, ElectionParams};
use crate::error::ClientError;
use crate::sign::sign_record_in;
use ed25519_dalek::SigningKey;
use ledger_core::election::{Dimensions, SubjectScores};
use ledger_core::hash::Hash;
use ledger_core::keys::{key_id, public_key_to_base64};
use serde_json::json;

/// Cadre of the honest cycle.
pub const HONEST: &str = "cadre-0001";
/// Cadre of the manipulated cycle.
pub const MANIPULATED: &str = "cadre-0002";
/// The election of the honest cycle.
pub const ELECTION: &str = "el-0001";
/// How long the election stays open for ballots, in seconds.
pub const ELECTION_SECS: u64 = 5;

struct Cast {
    origin: String,
    registrar: SigningKey,
    committee: SigningKey,
    petitions: SigningKey,
}

async fn put(
    c: &LedgerClient,
    origin: &str,
    kind: &str,
    v: serde_json::Value,
    k: &SigningKey,
) -> Result<u64, ClientError> {
    let o = c
        .append(&sign_record_in(kind, Some(origin), &v, &[k]), None, false)
        .await?;
    println!(
        "  #{:<4} {kind:<14} {}",
        o.index,
        v.get("draw_id")
            .or(v.get("subject"))
            .and_then(|x| x.as_str())
            .unwrap_or("")
    );
    Ok(o.index)
}

async fn draw(c: &LedgerClient, cast: &Cast, id: &str, subject: &str, last: u64) -> Result<u64, ClientError> {
    let secret = format!("demo secret for {id}").into_bytes();
    let pool: Vec<serde_json::Value> = (0..8)
        .map(|i| json!({"id": format!("ev-{i:02}"), "stratum": if i % 2 == 0 { "residents" } else { "enterprises" }, "affiliation": format!("unit-{i}")}))
        .collect();
    let commit = json!({
        "version": 1, "draw_id": id, "purpose": "evaluator_selection", "subjects": [subject], "pool": pool,
        "strata": [{"name": "residents", "quota": 2}, {"name": "enterprises", "quota": 1}], "k": 3,
        "algorithm": "ledger-draw-v1",
        "parties": [{"name": "registrar", "keyid": key_id(&cast.registrar.verifying_key()), "commitment": Hash::digest(&secret).to_hex()}],
        "reveal_at_size": last + 4, "reveal_deadline_micros": 4_000_000_000_000_000u64
    });
    put(c, &cast.origin, "draw.commit", commit, &cast.registrar).await?;
    put(
        c,
        &cast.origin,
        "note",
        json!({"version": 1, "text": format!("{id}: the log grows past the committed size")}),
        &cast.registrar,
    )
    .await?;
    let last = put(
        c,
        &cast.origin,
        "note",
        json!({"version": 1, "text": format!("{id}: …so the root at T exists")}),
        &cast.registrar,
    )
    .await?;
    let reveal = json!({"version": 1, "draw_id": id, "party": "registrar", "secret": hex::encode(&secret)});
    let r = put(c, &cast.origin, "draw.reveal", reveal, &cast.registrar).await?;
    let e = c.get_entry(r + 1).await?;
    println!(
        "  #{:<4} draw.result    appended by the node: {}",
        r + 1,
        String::from_utf8_lossy(&e.envelope.payload)
    );
    Ok(last.max(r + 1))
}

fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn scores(base: u64) -> Vec<SubjectScores> {
    vec![SubjectScores {
        subject: HONEST.into(),
        scores: Dimensions {
            political: base,
            performance: base + 5,
            integrity: base + 10,
            public_opinion: base - 5,
            responsibility: base,
        },
    }]
}

/// The election of the draw's evaluators: open, blind credentials, ballots (with a refused
/// credential for an undrawn pool member and a refused double vote), and the node's tally.
async fn election(c: &LedgerClient, cast: &Cast, draw_id: &str) -> Result<(), ClientError> {
    let issuer = el::generate_credential_key()?;
    let opens = now_micros();
    let params = ElectionParams {
        election_id: ELECTION.into(),
        draw_id: draw_id.into(),
        subjects: vec![HONEST.into()],
        weights: Dimensions {
            political: 20,
            performance: 20,
            integrity: 15,
            public_opinion: 30,
            responsibility: 15,
        },
        score_min: 0,
        score_max: 100,
        opens_at_micros: opens,
        closes_at_micros: opens + ELECTION_SECS * 1_000_000,
    };
    let (open, o) = el::open_election(c, &cast.origin, &cast.registrar, &params, &issuer).await?;
    println!(
        "  #{:<4} election.open  {ELECTION}: the evaluators of {draw_id} score {HONEST} on five dimensions \
         (weights 20/20/15/30/15), ballots for {ELECTION_SECS} s",
        o.index
    );
    let drawn = ledger_core::election_rules::DrawnEvaluators::of_result(&el::draw_result(c, draw_id).await?)
        .eligible(&open.subjects);
    let mut secrets = Vec::new();
    for ev in &drawn {
        // On the evaluator's machine: a one-time ballot key, its credential message blinded.
        let (req, sec) = el::request_credential(&open, ev, None)?;
        // The registrar blind-signs: it learns who got a credential, never which ballot key.
        let (sig, o) = el::issue_credential(c, &cast.origin, &cast.registrar, &issuer, &req).await?;
        println!(
            "  #{:<4} credential.issued to {ev} (blind signature: the registrar cannot link it to a ballot)",
            o.index
        );
        secrets.push(el::finalize_credential(&sec, &sig)?);
    }
    if let Some(undrawn) = (0..8).map(|i| format!("ev-{i:02}")).find(|e| !drawn.contains(e)) {
        let v = json!({"version": 1, "election_id": ELECTION, "evaluator": undrawn, "count": 1});
        match c
            .append(
                &sign_record_in("credential.issued", Some(&cast.origin), &v, &[&cast.registrar]),
                None,
                false,
            )
            .await
        {
            Err(e) => println!("  refused: a credential for {undrawn}, whom the draw did not select — {e}"),
            Ok(o) => println!("  UNEXPECTED: accepted at {}", o.index),
        }
    }
    for (i, sec) in secrets.iter().enumerate() {
        let base = 70 + 5 * i as u64;
        let r = el::cast_ballot(c, &cast.origin, sec, scores(base)).await?;
        println!(
            "  #{:<4} ballot         signed by a one-time key only; receipt: inclusion proof in the checkpoint of size {}",
            r.index,
            r.checkpoint.lines().nth(1).unwrap_or_default()
        );
    }
    if let Some(sec) = secrets.first() {
        match el::cast_ballot(c, &cast.origin, sec, scores(95)).await {
            Err(e) => println!("  refused: a second ballot with the same credential — {e}"),
            Ok(r) => println!("  UNEXPECTED: accepted at {}", r.index),
        }
    }
    println!("  (waiting for the election to close; the node appends the tally itself)");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(ELECTION_SECS + 30);
    loop {
        if let Some((i, t)) = el::fetch_tally(c, ELECTION).await? {
            for r in &t.results {
                println!(
                    "  #{i:<4} tally          appended by the node: {} ballots, {} weighted score {}",
                    t.ballot_count,
                    r.subject,
                    r.weighted_score.as_deref().unwrap_or("none")
                );
            }
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(ClientError::Payload(format!(
                "the node appended no tally of {ELECTION} within 30 s of its close"
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// Runs the demo against the node behind `c`, with the administrator key of its charter.
///
/// # Errors
/// When the node refuses something the honest cycle needs, or cannot be reached.
pub async fn run(c: &LedgerClient, admin: &SigningKey) -> Result<(), ClientError> {
    let cast = Cast {
        origin: c.origin().await?,
        registrar: SigningKey::generate(&mut rand::rng()),
        committee: SigningKey::generate(&mut rand::rng()),
        petitions: SigningKey::generate(&mut rand::rng()),
    };
    println!("Enrolling the actors (signed by the administrator):");
    for (k, name, roles) in [
        (
            &cast.registrar,
            "Organization dept. registrar",
            vec!["registrar", "nominator"],
        ),
        (&cast.committee, "Standing committee member", vec!["committee-member"]),
        (&cast.petitions, "Petition office", vec!["data-source"]),
    ] {
        let v = json!({"version": 1, "name": name, "key": public_key_to_base64(&k.verifying_key()), "roles": roles, "scope": {"organization": "county-7"}});
        put(c, &cast.origin, "key.enroll", v, admin).await?;
    }
    let nom = |s: &str| json!({"version": 1, "nomination_id": format!("nom-{s}"), "subject": s, "post": "deputy head", "organization": "county-7"});
    let complaint = |s: &str| json!({"version": 1, "complaint_id": format!("complaint-{s}"), "subject": s, "category": "abuse of office", "content_hash": Hash::digest(s.as_bytes()).to_hex(), "organization": "county-7"});
    let decision = |s: &str, d: &str| json!({"version": 1, "decision_id": format!("dec-{s}"), "subject": s, "nomination_id": format!("nom-{s}"), "evaluation_ref": d, "outcome": "promote", "post": "deputy head"});

    println!("\nHonest cycle for {HONEST}:");
    put(c, &cast.origin, "nomination", nom(HONEST), &cast.registrar).await?;
    put(c, &cast.origin, "complaint", complaint(HONEST), &cast.petitions).await?;
    let v = json!({"version": 1, "verification_id": "ver-1", "target_id": format!("complaint-{HONEST}"), "outcome": "unsubstantiated"});
    let last = put(c, &cast.origin, "verification", v, &cast.petitions).await?;
    let last = draw(c, &cast, "draw-0001", HONEST, last).await?;
    election(c, &cast, "draw-0001").await?;
    put(c, &cast.origin, "decision", decision(HONEST, ELECTION), &cast.committee).await?;

    println!("\nManipulations around {MANIPULATED}:");
    put(c, &cast.origin, "nomination", nom(MANIPULATED), &cast.registrar).await?;
    let last = put(c, &cast.origin, "complaint", complaint(MANIPULATED), &cast.petitions)
        .await?
        .max(last);
    let last = draw(c, &cast, "draw-0002a", MANIPULATED, last).await?;
    let fake = json!({"version": 1, "draw_id": "draw-0002a", "party": "registrar", "secret": "00"});
    match c
        .append(
            &sign_record_in("draw.reveal", Some(&cast.origin), &fake, &[&cast.registrar]),
            None,
            false,
        )
        .await
    {
        Err(e) => println!("  refused: a second, different reveal — {e}"),
        Ok(o) => println!("  UNEXPECTED: accepted at {}", o.index),
    }
    let forged = json!({"version": 1, "draw_id": "draw-0002a", "seed": "00".repeat(32), "root_at_size": "00".repeat(32), "selection": []});
    match c
        .append(
            &sign_record_in("draw.result", Some(&cast.origin), &forged, &[&cast.registrar]),
            None,
            false,
        )
        .await
    {
        Err(e) => println!("  refused: a draw result written by the registrar — {e}"),
        Ok(o) => println!("  UNEXPECTED: accepted at {}", o.index),
    }
    println!("  (an unfavourable result: the registrar redraws under a new id)");
    draw(c, &cast, "draw-0002b", MANIPULATED, last).await?;
    put(
        c,
        &cast.origin,
        "decision",
        decision(MANIPULATED, "draw-0002b"),
        &cast.committee,
    )
    .await?;
    println!("\nThe complaint against {MANIPULATED} was never verified, and the draw was redone.");
    Ok(())
}
