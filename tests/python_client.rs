//! An evaluation system not written in Rust takes part in an election (issue 17): the Python
//! evaluator of `examples/python/evaluator.py`, built from `proto/` and docs/ballots.md alone, runs
//! against a real node on loopback. The registrar's side is `ledgerctl` (draw, `election open`,
//! `credential issue`); a second evaluator uses `ledgerctl` too, so both ballots land in one tally.
//! The Python evaluator makes its pool key, requests (signed by that key), finalizes, casts (checking
//! the entry bytes, the node's checkpoint signature and the RFC 9162 inclusion proof itself), and is
//! refused a second ballot with the same credential (`BALLOT_DUPLICATE`, FAILED_PRECONDITION, as
//! gRPC reports it to Python). `ledgerctl ballot check` accepts the Python receipt, the node's tally
//! counts the ballot, and `ledger-verify review` recomputes the tally with it.
//!
//! Needs `/usr/bin/python3` (or `LEDGER_PYTHON`) with Debian's python3-cryptography, python3-grpcio,
//! python3-grpc-tools and python3-protobuf. Without them the test says so and passes, unless
//! `LEDGER_REQUIRE_PYTHON` is set (as `.ci/run` does), where it fails.

#[path = "support/mod.rs"]
mod support;
#[path = "support_python/mod.rs"]
mod support_python;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::*;

struct Run {
    node: String,
    dir: PathBuf,
    python: PathBuf,
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn show(what: &str, o: &Output) -> String {
    format!(
        "{what} ({:?}):\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

impl Run {
    fn ledgerctl(&self, args: &[&str]) -> String {
        let o = Command::new(env!("CARGO_BIN_EXE_ledgerctl"))
            .arg("--node")
            .arg(&self.node)
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("run ledgerctl");
        assert!(o.status.success(), "{}", show(&format!("ledgerctl {args:?}"), &o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Runs `evaluator.py ARGS`; returns the exit code and the JSON line it printed on stdout.
    fn evaluator(&self, args: &[&str]) -> (Option<i32>, Value) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/python/evaluator.py");
        let o = Command::new(&self.python)
            .arg(script)
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("run evaluator.py");
        let last = String::from_utf8_lossy(&o.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .to_string();
        let v =
            serde_json::from_str(&last).unwrap_or_else(|_| panic!("{}", show(&format!("evaluator.py {args:?}"), &o)));
        (o.status.code(), v)
    }

    fn evaluator_ok(&self, args: &[&str]) -> Value {
        let (code, v) = self.evaluator(args);
        assert_eq!(code, Some(0), "evaluator.py {args:?}: {v}");
        v
    }

    fn write(&self, name: &str, v: &Value) -> String {
        std::fs::write(self.dir.join(name), v.to_string()).expect("write");
        name.to_string()
    }

    fn read(&self, name: &str) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.dir.join(name)).expect("read")).expect("json")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_evaluator_takes_part_in_an_election() {
    let Some(python) = support_python::python("python_client") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("d");
    init(&data, "ledger.test/python", &[], 1);
    let node = Node::start(&data);
    let run = Run {
        node: node.addr.clone(),
        dir: tmp.path().to_path_buf(),
        python,
    };
    let admin = data.join("keys/admin.key");
    let admin = admin.to_str().expect("utf8");
    let vkey = std::fs::read_to_string(data.join("keys/node.vkey")).expect("vkey");
    let vkey = vkey.trim();

    // Registrar (ledgerctl), enrolled by the administrator.
    run.ledgerctl(&["keygen", "--out", "reg.key"]);
    run.ledgerctl(&[
        "enroll",
        "--admin-key",
        admin,
        "--pubkey",
        "@reg.key.pub",
        "--name",
        "registrar",
        "--role",
        "registrar",
    ]);
    let reg_keyid = {
        let pk = std::fs::read_to_string(tmp.path().join("reg.key.pub")).expect("pub");
        ledger_core::keys::key_id(&ledger_core::keys::public_key_from_base64(pk.trim()).expect("pk"))
    };

    // The pool: ev-00 runs the Python evaluator and made its key with it; ev-01 and ev-02 use
    // ledgerctl. All three are drawn (quota 3 of 3), each must sign their own request.
    run.evaluator_ok(&["keygen", "--out", "ev-00.key"]);
    run.ledgerctl(&["keygen", "--out", "ev-01.key"]);
    run.ledgerctl(&["keygen", "--out", "ev-02.key"]);
    let pool: Vec<Value> = (0..3)
        .map(|i| {
            let pk = std::fs::read_to_string(tmp.path().join(format!("ev-0{i}.key.pub"))).expect("pub");
            json!({"id": format!("ev-0{i}"), "stratum": "all", "key": pk.trim()})
        })
        .collect();
    let secret = b"registrar secret";
    let mut c = node.client().await;
    let size = entries(&mut c).await.len() as u64;
    let commit = run.write(
        "commit.json",
        &json!({"version": 1, "draw_id": "draw-py", "purpose": "evaluator_selection", "subjects": ["cadre-1"],
        "pool": pool, "strata": [{"name": "all", "quota": 3}], "k": 3, "algorithm": "ledger-draw-v1",
        "parties": [{"name": "registrar", "keyid": reg_keyid,
            "commitment": ledger_core::hash::Hash::digest(secret).to_hex()}],
        "reveal_at_size": size + 2, "reveal_deadline_micros": now_micros() + 600_000_000}),
    );
    run.ledgerctl(&[
        "append",
        "--kind",
        "draw.commit",
        "--payload",
        &commit,
        "--key",
        "reg.key",
    ]);
    let note = run.write("note.json", &note_payload(0));
    run.ledgerctl(&["append", "--kind", "note", "--payload", &note, "--key", "reg.key"]);
    let reveal = run.write(
        "reveal.json",
        &json!({"version": 1, "draw_id": "draw-py", "party": "registrar", "secret": hex::encode(secret)}),
    );
    run.ledgerctl(&[
        "append",
        "--kind",
        "draw.reveal",
        "--payload",
        &reveal,
        "--key",
        "reg.key",
    ]);
    assert!(
        entries(&mut c).await.iter().any(|e| e.1 == "draw.result"),
        "the node appends the draw result"
    );

    // The election closes 12 s from now: room for the steps below on a loaded machine (2.3 s on the
    // development machine with other builds running); the test then waits for the node's tally.
    run.ledgerctl(&[
        "election",
        "open",
        "--key",
        "reg.key",
        "--election-id",
        "el-py",
        "--draw-id",
        "draw-py",
        "--weights",
        "20,20,15,30,15",
        "--closes-in-secs",
        "12",
        "--credential-key",
        "el-py.pem",
    ]);
    let opened = std::time::Instant::now();
    let issue = |req: &str, out: &str| {
        run.ledgerctl(&[
            "credential",
            "issue",
            "--key",
            "reg.key",
            "--credential-key",
            "el-py.pem",
            "--request",
            req,
            "--out",
            out,
        ])
    };

    // Python: request (blinded, signed by the pool key), issue (registrar), finalize, cast.
    run.evaluator_ok(&[
        "request",
        "--node",
        &run.node,
        "--election-id",
        "el-py",
        "--evaluator",
        "ev-00",
        "--key",
        "ev-00.key",
        "--out",
        "py.req.json",
        "--state",
        "py.state.json",
    ]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(tmp.path().join("py.state.json"))
            .expect("state")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the evaluator's secrets stay private");
    }
    let req = run.read("py.req.json");
    assert!(req["request_signature"].is_string(), "{req}");
    issue("py.req.json", "py.sig.json");
    let fin = run.evaluator_ok(&[
        "finalize",
        "--state",
        "py.state.json",
        "--blind-signature",
        "py.sig.json",
        "--out",
        "py.cred.json",
    ]);
    assert_eq!(fin["verified"], true, "{fin}");
    let cast = run.evaluator_ok(&[
        "cast",
        "--node",
        &run.node,
        "--credential",
        "py.cred.json",
        "--score",
        "cadre-1=80,90,70,60,85",
        "--node-key",
        vkey,
        "--receipt",
        "py.receipt.json",
    ]);
    assert_eq!(
        cast["proof_verified"], true,
        "Python verified the inclusion proof: {cast}"
    );
    let py_index = cast["index"].as_u64().expect("index");

    // A second ballot with the same credential: refused by the node, as Python sees it.
    let (code, refused) = run.evaluator(&[
        "cast",
        "--node",
        &run.node,
        "--credential",
        "py.cred.json",
        "--score",
        "cadre-1=1,1,1,1,1",
    ]);
    assert_eq!(code, Some(3), "{refused}");
    assert_eq!(refused["status"], "FAILED_PRECONDITION", "{refused}");
    assert_eq!(refused["code"], "BALLOT_DUPLICATE", "{refused}");

    // ev-01 votes with ledgerctl in the same election.
    run.ledgerctl(&[
        "credential",
        "request",
        "--election-id",
        "el-py",
        "--evaluator",
        "ev-01",
        "--key",
        "ev-01.key",
        "--out",
        "rs.req.json",
        "--secrets",
        "rs.secrets.json",
    ]);
    issue("rs.req.json", "rs.sig.json");
    run.ledgerctl(&[
        "credential",
        "finalize",
        "--secrets",
        "rs.secrets.json",
        "--blind-signature",
        "rs.sig.json",
        "--out",
        "rs.cred.json",
    ]);
    run.ledgerctl(&[
        "ballot",
        "cast",
        "--credential",
        "rs.cred.json",
        "--score",
        "cadre-1=90,70,80,100,75",
        "--receipt",
        "rs.receipt.json",
    ]);
    eprintln!("steps before the close took {:?}", opened.elapsed());

    // The node tallies at close (bounded wait: the close plus up to 30 s).
    let mut tally = None;
    for _ in 0..500 {
        if let Some(t) = entries(&mut c).await.into_iter().find(|e| e.1 == "tally") {
            tally = Some(t);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (tally_index, _, t, _) = tally.expect("the node tallies el-py at close");
    assert!(
        t["ballot_indices"]
            .as_array()
            .expect("indices")
            .contains(&json!(py_index)),
        "the tally counts the Python ballot: {t}"
    );
    assert_eq!(t["ballot_count"], 2, "{t}");
    // (20·170 + 20·160 + 15·150 + 30·160 + 15·160) / 200 = 80.25 (docs/ballots.md's example)
    assert_eq!(t["results"][0]["weighted_score"], "80.2500", "{t}");

    // The Python receipt is the same document as ledgerctl's: `ballot check` reads it.
    let out = run.ledgerctl(&["--json", "ballot", "check", "py.receipt.json", "--node-key", vkey]);
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        (&v["in_log"], &v["proof_verified"], &v["counted"], &v["tally_index"]),
        (&json!(true), &json!(true), &json!(true), &json!(tally_index)),
        "{v}"
    );

    // Python checks its receipt later against the log; a receipt with a doctored proof, a checkpoint
    // whose root was changed (the node's signature no longer verifies), or an index pointing at
    // another entry fails the check (exit 4).
    let check =
        |receipt: &str| run.evaluator(&["check", "--node", &run.node, "--receipt", receipt, "--node-key", vkey]);
    let (code, v) = check("py.receipt.json");
    assert_eq!((code, &v["in_log"]), (Some(0), &json!(true)), "{v}");
    let good = run.read("py.receipt.json");
    let mut doctored = good.clone();
    let proof = doctored["inclusion_proof"].as_array_mut().expect("proof");
    assert!(!proof.is_empty(), "a proof of some length: {good}");
    proof[0] = json!(hex::encode([7u8; 32]));
    run.write("doctored-proof.json", &doctored);
    let (code, v) = check("doctored-proof.json");
    assert_eq!(code, Some(4), "{v}");
    assert!(
        v["message"].as_str().expect("message").contains("inclusion proof"),
        "{v}"
    );
    let mut doctored = good.clone();
    let note = good["checkpoint"].as_str().expect("note");
    let lines: Vec<&str> = note.split('\n').collect();
    let other_root = base64_of(&[9u8; 32]);
    doctored["checkpoint"] = json!(note.replacen(lines[2], &other_root, 1));
    run.write("doctored-checkpoint.json", &doctored);
    let (code, v) = check("doctored-checkpoint.json");
    assert_eq!(code, Some(4), "{v}");
    assert!(
        v["message"]
            .as_str()
            .expect("message")
            .contains("signature does not verify"),
        "{v}"
    );
    let mut doctored = good.clone();
    doctored["index"] = json!(tally_index);
    run.write("doctored-index.json", &doctored);
    let (code, v) = check("doctored-index.json");
    assert_eq!(code, Some(4), "{v}");
    assert!(v["message"].as_str().expect("message").contains("not a ballot"), "{v}");

    // The verifier replays the log and recomputes the tally with the Python ballot in it.
    drop(c);
    drop(node);
    let rj = tmp.path().join("review.json");
    let o = Command::new(bin("ledger-verify"))
        .args(["review", "--data"])
        .arg(&data)
        .arg("--json")
        .arg(&rj)
        .output()
        .expect("review");
    assert!(o.status.success(), "{}", show("ledger-verify review", &o));
    let r = run.read("review.json");
    let el = &r["elections"][0];
    assert_eq!(el["election_id"], "el-py", "{r}");
    assert_eq!(el["ballot_count"], 2, "{r}");
    assert_eq!(
        el["results"][0]["sums"],
        json!({"political": 170, "performance": 160, "integrity": 150, "public_opinion": 160, "responsibility": 160}),
        "{r}"
    );
    let cr = &r["credentials"][0];
    assert_eq!(
        (&cr["issued"], &cr["requested"], &cr["registrar_word"]),
        (&json!(2), &json!(2), &json!(0)),
        "both credentials were requested personally, one of them from Python: {r}"
    );
}
