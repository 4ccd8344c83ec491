//! A full election run from the shell with the real binaries against a real node (docs/ballots.md,
//! "Walkthrough"): keys and enrolment, the draw, `ledgerctl election open`, `ledgerctl credential
//! request|issue|finalize` for each drawn evaluator (an undrawn one and a second credential are
//! refused), `ledgerctl ballot cast` (a double vote is refused by the node), the node's tally at
//! close, `ledgerctl ballot check` of a receipt, and `ledger-verify replay` of the whole log.

#[path = "support/mod.rs"]
mod support;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::*;

struct Shell {
    node: String,
    dir: PathBuf,
}

impl Shell {
    fn ledgerctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_ledgerctl"))
            .arg("--node")
            .arg(&self.node)
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("run ledgerctl")
    }

    /// Runs ledgerctl and requires success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.ledgerctl(args);
        assert!(
            o.status.success(),
            "ledgerctl {args:?} failed ({:?}):\n{}\n{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Runs ledgerctl and requires failure with `code`; returns stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let o = self.ledgerctl(args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(code), "ledgerctl {args:?}: {err}");
        err
    }

    /// Runs `credential request` for election el-1 (`--out REQ --secrets SECRETS`), signed with
    /// the pool key file `key` when given; returns stdout.
    fn request(&self, evaluator: &str, key: Option<&str>, req: &str, secrets: &str) -> String {
        let mut args = vec![
            "credential",
            "request",
            "--election-id",
            "el-1",
            "--evaluator",
            evaluator,
        ];
        if let Some(k) = key {
            args.extend(["--key", k]);
        }
        args.extend(["--out", req, "--secrets", secrets]);
        self.ok(&args)
    }

    /// The arguments of `credential issue` by the registrar for el-1, from `req` into `out`.
    fn issue_args<'a>(req: &'a str, out: &'a str) -> [&'a str; 10] {
        [
            "credential",
            "issue",
            "--key",
            "reg.key",
            "--credential-key",
            "el-1.pem",
            "--request",
            req,
            "--out",
            out,
        ]
    }

    fn write(&self, name: &str, v: &Value) -> String {
        std::fs::write(self.dir.join(name), v.to_string()).expect("write");
        name.to_string()
    }
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).expect("read")).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_election_from_the_shell() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("d");
    init(&data, "ledger.test/election-cli", &[], 1);
    let node = Node::start(&data);
    let sh = Shell {
        node: node.addr.clone(),
        dir: tmp.path().to_path_buf(),
    };
    let admin = data.join("keys/admin.key");
    let admin = admin.to_str().expect("utf8");

    // Registrar key, enrolled by the administrator.
    sh.ok(&["keygen", "--out", "reg.key"]);
    sh.ok(&[
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

    // The draw: 3 of 6 pool members, the registrar's commitment revealed once the log has grown.
    let secret = b"registrar secret";
    let reg_keyid = {
        let pk = std::fs::read_to_string(tmp.path().join("reg.key.pub")).expect("pub");
        ledger_core::keys::key_id(&ledger_core::keys::public_key_from_base64(pk.trim()).expect("pk"))
    };
    let mut c = node.client().await;
    let size = entries(&mut c).await.len() as u64;
    // Every pool member has a key of their own, fixed in the draw commitment: they must sign their
    // credential requests (CREDENTIAL_NOT_REQUESTED otherwise).
    let pool: Vec<Value> = (0..6)
        .map(|i| {
            let id = format!("ev-{i:02}");
            sh.ok(&["keygen", "--out", &format!("{id}.key")]);
            let pk = std::fs::read_to_string(tmp.path().join(format!("{id}.key.pub"))).expect("pub");
            json!({"id": id, "stratum": "all", "key": pk.trim()})
        })
        .collect();
    let commit = sh.write(
        "commit.json",
        &json!({"version": 1, "draw_id": "draw-e", "purpose": "evaluator_selection", "subjects": ["cadre-1", "cadre-2"],
        "pool": pool, "strata": [{"name": "all", "quota": 3}], "k": 3, "algorithm": "ledger-draw-v1",
        "parties": [{"name": "registrar", "keyid": reg_keyid,
            "commitment": ledger_core::hash::Hash::digest(secret).to_hex()}],
        "reveal_at_size": size + 2, "reveal_deadline_micros": now_micros() + 600_000_000}),
    );
    sh.ok(&[
        "append",
        "--kind",
        "draw.commit",
        "--payload",
        &commit,
        "--key",
        "reg.key",
    ]);
    let note = sh.write("note.json", &note_payload(0));
    sh.ok(&["append", "--kind", "note", "--payload", &note, "--key", "reg.key"]);
    let reveal = sh.write(
        "reveal.json",
        &json!({"version": 1, "draw_id": "draw-e", "party": "registrar", "secret": hex::encode(secret)}),
    );
    sh.ok(&[
        "append",
        "--kind",
        "draw.reveal",
        "--payload",
        &reveal,
        "--key",
        "reg.key",
    ]);
    let result = entries(&mut c)
        .await
        .into_iter()
        .find(|e| e.1 == "draw.result")
        .expect("the node appends the draw result");
    let drawn: Vec<String> = result.2["selection"][0]["selected"]
        .as_array()
        .expect("selected")
        .iter()
        .map(|v| v.as_str().expect("id").to_string())
        .collect();
    assert_eq!(drawn.len(), 3);
    let outsider = (0..6)
        .map(|i| format!("ev-{i:02}"))
        .find(|id| !drawn.contains(id))
        .expect("an undrawn pool member");

    // The registrar opens the election (a new credential key, mode 0600); it closes in 6 s, ample
    // for the steps below (well under a second on the development machine).
    let out = sh.ok(&[
        "election",
        "open",
        "--key",
        "reg.key",
        "--election-id",
        "el-1",
        "--draw-id",
        "draw-e",
        "--weights",
        "20,20,15,30,15",
        "--closes-in-secs",
        "6",
        "--credential-key",
        "el-1.pem",
    ]);
    let opened = std::time::Instant::now();
    assert!(out.contains("opened election el-1"), "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(tmp.path().join("el-1.pem"))
            .expect("pem")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "credential key mode");
    }
    // The key file is never overwritten.
    let err = sh.fails(
        &[
            "election",
            "open",
            "--key",
            "reg.key",
            "--election-id",
            "el-2",
            "--draw-id",
            "draw-e",
            "--closes-in-secs",
            "10",
            "--credential-key",
            "el-1.pem",
        ],
        1,
    );
    assert!(err.contains("not overwriting"), "{err}");

    // An undrawn pool member asks for a credential: the registrar's tool refuses to sign.
    sh.request(&outsider, None, "out.req.json", "out.secrets.json");
    let err = sh.fails(&Shell::issue_args("out.req.json", "out.sig.json"), 1);
    assert!(err.contains("CREDENTIAL_NOT_DRAWN"), "{err}");
    assert!(
        !tmp.path().join("out.sig.json").exists(),
        "no blind signature handed out"
    );

    // The registrar issues a credential in a drawn evaluator's name without the evaluator's signed
    // request (ballot stuffing within the drawn panel): the node refuses the credential.issued.
    sh.request(&drawn[0], None, "forged.req.json", "forged.secrets.json");
    let err = sh.fails(&Shell::issue_args("forged.req.json", "forged.sig.json"), 3);
    assert!(err.contains("CREDENTIAL_NOT_REQUESTED"), "{err}");
    assert!(
        err.contains("FailedPrecondition") || err.contains("FAILED_PRECONDITION"),
        "{err}"
    );
    assert!(
        !tmp.path().join("forged.sig.json").exists(),
        "no blind signature handed out"
    );
    // Another pool member's key does not make a valid request either.
    let other = (0..6)
        .map(|i| format!("ev-{i:02}"))
        .find(|id| *id != drawn[0])
        .expect("another member");
    sh.request(
        &drawn[0],
        Some(&format!("{other}.key")),
        "forged2.req.json",
        "forged2.secrets.json",
    );
    let err = sh.fails(&Shell::issue_args("forged2.req.json", "forged2.sig.json"), 3);
    assert!(err.contains("CREDENTIAL_NOT_REQUESTED"), "{err}");

    // Each drawn evaluator: request (own machine, signed with their pool key), issue (registrar),
    // finalize, cast.
    let scores = [
        ("80,90,70,60,85", "60,60,60,60,60"),
        ("90,70,80,100,75", "70,70,70,70,70"),
        ("60,60,60,60,60", "80,80,80,80,80"),
    ];
    let mut ballot_idx = Vec::new();
    for (ev, (s1, s2)) in drawn.iter().zip(scores) {
        let (req, sec, sig, cred, rec) = (
            format!("{ev}.req.json"),
            format!("{ev}.secrets.json"),
            format!("{ev}.sig.json"),
            format!("{ev}.cred.json"),
            format!("{ev}.receipt.json"),
        );
        sh.request(ev, Some(&format!("{ev}.key")), &req, &sec);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(tmp.path().join(&sec))
                .expect("secrets")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "secrets mode");
        }
        // The request carries no secret: neither the ballot key nor the blinding secret.
        let r = read_json(&tmp.path().join(&req));
        let s = read_json(&tmp.path().join(&sec));
        let r_text = r.to_string();
        for secret_field in ["ballot_key_seed", "blinding_secret"] {
            assert!(
                !r_text.contains(s[secret_field].as_str().expect("field")),
                "{secret_field} leaked"
            );
        }
        sh.ok(&Shell::issue_args(&req, &sig));
        sh.ok(&[
            "credential",
            "finalize",
            "--secrets",
            &sec,
            "--blind-signature",
            &sig,
            "--out",
            &cred,
        ]);
        let out = sh.ok(&[
            "ballot",
            "cast",
            "--credential",
            &cred,
            "--score",
            &format!("cadre-1={s1}"),
            "--score",
            &format!("cadre-2={s2}"),
            "--receipt",
            &rec,
        ]);
        assert!(out.contains("ballot cast in el-1"), "{out}");
        ballot_idx.push(read_json(&tmp.path().join(&rec))["index"].as_u64().expect("index"));
    }

    // Both steps are idempotent for a lost answer: issuing the same request again returns the same
    // blind signature (no second credential.issued), and casting the same ballot again the same entry.
    let d0 = &drawn[0];
    sh.ok(&Shell::issue_args(&format!("{d0}.req.json"), "reissued.sig.json"));
    let (first, again) = (
        read_json(&tmp.path().join(format!("{d0}.sig.json"))),
        read_json(&tmp.path().join("reissued.sig.json")),
    );
    assert_eq!(first, again, "the same request, the same blind signature and entry");
    sh.ok(&[
        "ballot",
        "cast",
        "--credential",
        &format!("{d0}.cred.json"),
        "--score",
        &format!("cadre-1={}", scores[0].0),
        "--score",
        &format!("cadre-2={}", scores[0].1),
        "--receipt",
        "recast.receipt.json",
    ]);
    assert_eq!(
        read_json(&tmp.path().join("recast.receipt.json"))["index"],
        ballot_idx[0],
        "the same ballot, the same entry"
    );

    // A second credential for a drawn evaluator: the node refuses the credential.issued.
    let again = format!("{}.again.req.json", drawn[0]);
    sh.request(
        &drawn[0],
        Some(&format!("{}.key", drawn[0])),
        &again,
        "again.secrets.json",
    );
    let err = sh.fails(&Shell::issue_args(&again, "again.sig.json"), 3);
    assert!(err.contains("CREDENTIAL_DUPLICATE"), "{err}");
    assert!(
        !tmp.path().join("again.sig.json").exists(),
        "no blind signature handed out"
    );

    // A double vote with the same credential is refused by the node.
    let cred0 = format!("{}.cred.json", drawn[0]);
    let err = sh.fails(
        &[
            "ballot",
            "cast",
            "--credential",
            &cred0,
            "--score",
            "cadre-1=1,1,1,1,1",
            "--score",
            "cadre-2=1,1,1,1,1",
            "--receipt",
            "double.receipt.json",
        ],
        3,
    );
    assert!(err.contains("BALLOT_DUPLICATE"), "{err}");

    // Before the close a receipt checks as included, not yet tallied.
    let vkey = std::fs::read_to_string(data.join("keys/node.vkey")).expect("vkey");
    let rec0 = format!("{}.receipt.json", drawn[0]);
    let out = sh.ok(&["ballot", "check", &rec0, "--node-key", vkey.trim()]);
    assert!(out.contains("in the log"), "{out}");

    // The node tallies at close.
    eprintln!("steps before the close took {:?}", opened.elapsed());
    let mut tally = None;
    for _ in 0..300 {
        if let Some(t) = entries(&mut c).await.into_iter().find(|e| e.1 == "tally") {
            tally = Some(t);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (ti, _, t, _) = tally.expect("the node tallies el-1 at close");
    let all = entries(&mut c).await;
    let issued = all.iter().filter(|e| e.1 == "credential.issued").count();
    assert_eq!(issued, 3, "one credential.issued per drawn evaluator");
    assert_eq!(all.iter().filter(|e| e.1 == "ballot").count(), 3, "one ballot each");
    assert_eq!(t["ballot_count"], 3, "{t}");
    assert_eq!(t["ballot_indices"], json!(ballot_idx), "{t}");
    // cadre-1: (20·230 + 20·220 + 15·210 + 30·220 + 15·220) / 300 = 73.5
    assert_eq!(t["results"][0]["weighted_score"], "73.5000", "{t}");
    assert_eq!(t["results"][1]["weighted_score"], "70.0000", "{t}");

    // The evaluator checks the receipt: in the log, proof verified, counted in the tally.
    let out = sh.ok(&["--json", "ballot", "check", &rec0, "--node-key", vkey.trim()]);
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["in_log"], true, "{v}");
    assert_eq!(v["proof_verified"], true, "{v}");
    assert_eq!(v["counted"], true, "{v}");
    assert_eq!(v["tally_index"], ti, "{v}");
    // A receipt pointing at another entry is not this ballot: verification failure (exit 4).
    let mut forged = read_json(&tmp.path().join(&rec0));
    forged["index"] = json!(ti);
    let forged = sh.write("forged.receipt.json", &forged);
    let err = sh.fails(&["ballot", "check", &forged], 4);
    assert!(err.contains("not this ballot"), "{err}");

    // The verifier replays the whole log, tally recomputed: clean.
    drop(c);
    drop(node);
    let out = Command::new(bin("ledger-verify"))
        .args(["replay", "--data"])
        .arg(&data)
        .output()
        .expect("replay");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));

    // Review: every credential of el-1 was requested personally by its (keyed) evaluator.
    let rj = tmp.path().join("review.json");
    let out = Command::new(bin("ledger-verify"))
        .args(["review", "--data"])
        .arg(&data)
        .arg("--json")
        .arg(&rj)
        .output()
        .expect("review");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("3 requested personally (signed), 0 on the registrar's word alone"),
        "{text}"
    );
    let r = read_json(&rj);
    let el1 = &r["credentials"][0];
    assert_eq!(el1["election_id"], "el-1", "{r}");
    assert_eq!(
        (
            &el1["issued"],
            &el1["requested"],
            &el1["registrar_word"],
            &el1["with_key"]
        ),
        (&json!(3), &json!(3), &json!(0), &json!(3)),
        "{r}"
    );
}
