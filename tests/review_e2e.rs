//! Retrospective review over a real node: an honest nomination → draw → decision cycle raises no
//! flag; a promotion while a complaint is unverified, a redraw and a skewed pool are flagged with
//! their evidence and accountability chain; the HTML page is self-contained.

#[path = "support/mod.rs"]
mod support;

use ledger_core::hash::Hash;
use ledger_core::keys::key_id;
use std::process::Command;
use support::*;

fn verify_bin() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_ledger-verify"))
}

struct Cast {
    reg: ed25519_dalek::SigningKey,
    committee: ed25519_dalek::SigningKey,
    source: ed25519_dalek::SigningKey,
}

async fn draw_cycle(
    c: &mut ledger_proto::pb::ledger_client::LedgerClient<tonic::transport::Channel>,
    cast: &Cast,
    draw_id: &str,
    subject: &str,
    affiliations: &[&str],
) {
    let secret = format!("secret of {draw_id}").into_bytes();
    let size = c
        .get_checkpoint(ledger_proto::pb::GetCheckpointRequest { size: None })
        .await
        .expect("cp")
        .into_inner()
        .size;
    // Make sure we know the current size (checkpoints may lag): use the entries stream length.
    let mut s = c
        .get_entries(ledger_proto::pb::GetEntriesRequest { start: size, end: 0 })
        .await
        .expect("s")
        .into_inner();
    let mut n = size;
    while s.message().await.expect("m").is_some() {
        n += 1;
    }
    let pool: Vec<serde_json::Value> = affiliations
        .iter()
        .enumerate()
        .map(|(i, a)| serde_json::json!({"id": format!("ev-{i:02}"), "stratum": "all", "affiliation": a}))
        .collect();
    let commit = serde_json::json!({
        "version": 1, "draw_id": draw_id, "purpose": "evaluator_selection", "subjects": [subject], "pool": pool,
        "strata": [{"name": "all", "quota": 2}], "k": 2, "algorithm": "ledger-draw-v1",
        "parties": [{"name": "registrar", "keyid": key_id(&cast.reg.verifying_key()), "commitment": Hash::digest(&secret).to_hex()}],
        "reveal_at_size": n + 2, "reveal_deadline_micros": 4_000_000_000_000_000u64
    });
    append(c, &record("draw.commit", commit, &[&cast.reg]), "")
        .await
        .expect("commit");
    append(c, &record("note", note_payload(n), &[&cast.reg]), "")
        .await
        .expect("filler");
    let reveal =
        serde_json::json!({"version": 1, "draw_id": draw_id, "party": "registrar", "secret": hex::encode(&secret)});
    append(c, &record("draw.reveal", reveal, &[&cast.reg]), "")
        .await
        .expect("reveal");
    let _ = &cast.committee;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_flags_what_the_essay_warns_about() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, "ledger.test/review", &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let cast = Cast {
        reg: new_key(),
        committee: new_key(),
        source: new_key(),
    };
    let node = Node::start(&data);
    let mut c = node.client().await;
    append(
        &mut c,
        &enroll(&cast.reg, "Registrar Wang", &["registrar", "nominator"], &[&admin]),
        "",
    )
    .await
    .expect("e");
    append(
        &mut c,
        &enroll(&cast.committee, "Committee member Li", &["committee-member"], &[&admin]),
        "",
    )
    .await
    .expect("e");
    append(
        &mut c,
        &enroll(&cast.source, "Petition office", &["data-source"], &[&admin]),
        "",
    )
    .await
    .expect("e");

    // Honest cycle for cadre-A: complaint verified before the decision.
    let nom = |id: &str, s: &str| serde_json::json!({"version":1,"nomination_id":id,"subject":s,"post":"head","organization":"org-7"});
    append(&mut c, &record("nomination", nom("nom-A", "cadre-A"), &[&cast.reg]), "")
        .await
        .expect("nom");
    let complaint = |id: &str, s: &str| serde_json::json!({"version":1,"complaint_id":id,"subject":s,"category":"x","content_hash":Hash::digest(id.as_bytes()).to_hex(),"organization":"org-7"});
    append(
        &mut c,
        &record("complaint", complaint("cp-A", "cadre-A"), &[&cast.source]),
        "",
    )
    .await
    .expect("complaint");
    let ver = serde_json::json!({"version":1,"verification_id":"v-A","target_id":"cp-A","outcome":"unsubstantiated"});
    append(&mut c, &record("verification", ver, &[&cast.source]), "")
        .await
        .expect("verification");
    draw_cycle(&mut c, &cast, "draw-A", "cadre-A", &["s1", "s2", "s3", "s4", "s5"]).await;
    let dec = |id: &str, s: &str, n: &str, d: &str| serde_json::json!({"version":1,"decision_id":id,"subject":s,"nomination_id":n,"evaluation_ref":d,"outcome":"promote","post":"head"});
    append(
        &mut c,
        &record(
            "decision",
            dec("dec-A", "cadre-A", "nom-A", "draw-A"),
            &[&cast.committee],
        ),
        "",
    )
    .await
    .expect("dec");

    let export = dir.path().join("a.export");
    let run = |args: &[&str]| {
        Command::new(verify_bin())
            .arg("review")
            .args(args)
            .output()
            .expect("review")
    };
    let honest = run(&["--node", &node.addr, "--subject", "cadre-A"]);
    let text = String::from_utf8_lossy(&honest.stdout).into_owned();
    assert_eq!(honest.status.code(), Some(0), "{text}");
    assert!(text.contains("Flags: 0"), "{text}");
    assert!(
        text.contains("decision") && text.contains("Committee member Li"),
        "{text}"
    );

    // cadre-B: promoted while a complaint is unverified, after a redraw, from a skewed pool.
    append(&mut c, &record("nomination", nom("nom-B", "cadre-B"), &[&cast.reg]), "")
        .await
        .expect("nom");
    append(
        &mut c,
        &record("complaint", complaint("cp-B", "cadre-B"), &[&cast.source]),
        "",
    )
    .await
    .expect("complaint");
    draw_cycle(&mut c, &cast, "draw-B1", "cadre-B", &["s1", "s2", "s3", "s4"]).await;
    draw_cycle(
        &mut c,
        &cast,
        "draw-B2",
        "cadre-B",
        &["firm-9", "firm-9", "firm-9", "s4"],
    )
    .await;
    append(
        &mut c,
        &record(
            "decision",
            {
                // The committee cites a hand-picked "representative" the draw never selected.
                let mut d = dec("dec-B", "cadre-B", "nom-B", "draw-B2");
                d["evaluators"] = serde_json::json!(["hand-picked-rep"]);
                d
            },
            &[&cast.committee],
        ),
        "",
    )
    .await
    .expect("dec");
    node_export(&node, &data, &export);

    let json = dir.path().join("r.json");
    let html = dir.path().join("r.html");
    let out = run(&[
        "--export",
        export.to_str().expect("utf8"),
        "--subject",
        "cadre-B",
        "--json",
        json.to_str().expect("utf8"),
        "--html",
        html.to_str().expect("utf8"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("json");
    let codes: Vec<&str> = r["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .map(|f| f["code"].as_str().unwrap_or(""))
        .collect();
    assert!(codes.contains(&"PROMOTED_WITH_UNVERIFIED_COMPLAINTS"), "{codes:?}");
    assert!(codes.contains(&"REDRAW"), "{codes:?}");
    assert!(codes.contains(&"POOL_SKEWED"), "{codes:?}");
    assert!(codes.contains(&"EVALUATOR_NOT_FROM_DRAW"), "{codes:?}");
    let promoted = r["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .find(|f| f["code"] == "PROMOTED_WITH_UNVERIFIED_COMPLAINTS")
        .expect("flag");
    assert_eq!(promoted["accountability"]["committee"][0], "Committee member Li");
    assert_eq!(promoted["accountability"]["nominator"][0], "Registrar Wang");
    assert_eq!(r["organizations"]["org-7"]["complaints"], 2);
    assert_eq!(
        r["organizations"]["org-7"]["verified_before_decision"], 1,
        "{}",
        r["organizations"]
    );
    let page = std::fs::read_to_string(&html).expect("html");
    assert!(page.contains("PROMOTED_WITH_UNVERIFIED_COMPLAINTS") && page.contains("<svg"));
    assert!(
        !page.contains("<script") && !page.contains("<link"),
        "self-contained page"
    );
}

fn node_export(node: &Node, data: &std::path::Path, out: &std::path::Path) {
    let _ = node;
    let st = Command::new(bin("ledger-node"))
        .args(["export", "--data"])
        .arg(data)
        .arg("-o")
        .arg(out)
        .output()
        .expect("export");
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
}
