//! Witness cosigning end to end (issue 7, R11): real `ledger-node serve` and `ledger-node witness`
//! processes on loopback, the C2SP tlog-witness protocol over gRPC, and `ledger-verify` judging
//! what they produced. Needs the workspace binaries (`cargo build --workspace`).

mod support;

use base64::Engine as _;
use ledger_core::checkpoint::open_checkpoint;
use ledger_core::cosignature::CosignatureVerifier;
use ledger_core::hash::Hash;
use ledger_core::merkle;
use ledger_core::note::{Note, NoteSigner, NoteVerifier};
use ledger_core::witness::{AddCheckpoint, MAX_ADD_CHECKPOINT_BYTES};
use ledger_proto::pb;
use ledger_proto::pb::witness_client::WitnessClient;
use prost::Message as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use support::*;
use tonic::Code;
use tonic::transport::Channel;

const ORIGIN: &str = "ledger.test/witnessed";

struct WitnessProc {
    child: Option<Child>,
    addr: String,
    key: CosignatureVerifier,
}

impl WitnessProc {
    fn start(data: &Path, name: Option<&str>, log_vkey: &Path) -> Self {
        let mut c = Command::new(bin("ledger-node"));
        c.args(["witness", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .arg("--log-key")
            .arg(log_vkey);
        if let Some(n) = name {
            c.args(["--name", n]);
        }
        let (child, addr, before) = spawn_listening(c);
        let key = before
            .iter()
            .find_map(|l| l.strip_prefix("witness key "))
            .map(|k| CosignatureVerifier::parse(k).expect("witness vkey"))
            .expect("the witness prints its key");
        Self {
            child: Some(child),
            addr,
            key,
        }
    }

    async fn client(&self) -> WitnessClient<Channel> {
        WitnessClient::connect(self.addr.clone())
            .await
            .expect("connect witness")
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }
}

impl Drop for WitnessProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_node(data: &Path, witnesses: &[&WitnessProc]) -> Node {
    let mut c = Command::new(bin("ledger-node"));
    c.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "off",
        "--checkpoint-interval-ms",
        "200",
        "--witness-timeout-ms",
        "4000",
        "--data",
    ])
    .arg(data);
    for w in witnesses {
        c.arg("--witness").arg(format!("{}={}", w.addr, w.key.to_string_key()));
    }
    let (child, addr, _) = spawn_listening(c);
    Node {
        child: Some(child),
        addr,
        data: data.to_path_buf(),
    }
}

fn enroll_witness(w: &CosignatureVerifier, admin: &ed25519_dalek::SigningKey) -> ledger_core::dsse::Envelope {
    record(
        "key.enroll",
        serde_json::json!({
            "version": 1, "name": w.name,
            "key": ledger_core::keys::public_key_to_base64(w.ed25519_key().expect("an Ed25519 witness key")),
            "roles": ["witness"], "scope": {"organization": "court", "kinds": []}
        }),
        &[admin],
    )
}

fn node_vkey(data: &Path) -> NoteVerifier {
    NoteVerifier::parse(
        std::fs::read_to_string(data.join("keys/node.vkey"))
            .expect("vkey")
            .trim(),
    )
    .expect("parse")
}

fn hashes(v: &[Vec<u8>]) -> Vec<Hash> {
    v.iter().map(|h| Hash::from_slice(h).expect("32 bytes")).collect()
}

/// A node with three enrolled witnesses and a registrar, quorum 3.
struct Setup {
    _dir: tempfile::TempDir,
    data: PathBuf,
    node: Node,
    witnesses: Vec<WitnessProc>,
    registrar: ed25519_dalek::SigningKey,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("node");
    init_with_quorum(&data, ORIGIN, 3);
    let witnesses: Vec<WitnessProc> = (1..=3)
        .map(|i| {
            WitnessProc::start(
                &dir.path().join(format!("w{i}")),
                Some(&format!("witness.test/w{i}")),
                &data.join("keys/node.vkey"),
            )
        })
        .collect();
    let node = start_node(&data, &witnesses.iter().collect::<Vec<_>>());
    let mut c = node.client().await;
    let admin = key(&data.join("keys/admin.key"));
    for (i, w) in witnesses.iter().enumerate() {
        append(&mut c, &enroll_witness(&w.key, &admin), &format!("enroll-w{i}"))
            .await
            .expect("enroll witness");
    }
    let registrar = new_key();
    append(
        &mut c,
        &enroll(&registrar, "registrar", &["registrar"], &[&admin]),
        "enroll-r",
    )
    .await
    .expect("enroll registrar");
    Setup {
        _dir: dir,
        data,
        node,
        witnesses,
        registrar,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_growth_is_cosigned_by_all_and_bundles_verify_offline() {
    let s = setup().await;
    let mut c = s.node.client().await;
    let log = node_vkey(&s.data);
    let keys: Vec<CosignatureVerifier> = s.witnesses.iter().map(|w| w.key.clone()).collect();
    let mut last_size = 0;
    for i in 0..3 {
        let env = record("note", note_payload(i), &[&s.registrar]);
        let r = c
            .append(req(&env, &format!("n-{i}"), true))
            .await
            .expect("append waits for a witnessed checkpoint")
            .into_inner();
        let cp = open_checkpoint(&r.checkpoint, &log).expect("log signature");
        let cos = cp.note.verify_cosignatures(&keys).expect("cosignatures verify");
        assert_eq!(cos.len(), 3, "cosigned by all three witnesses: {}", r.checkpoint);
        assert!(cp.checkpoint.size > r.index && cp.checkpoint.size > last_size);
        last_size = cp.checkpoint.size;
        merkle::verify_inclusion(
            r.index,
            cp.checkpoint.size,
            &Hash::from_slice(&r.leaf_hash).expect("hash"),
            &hashes(&r.inclusion_proof),
            &cp.checkpoint.root,
        )
        .expect("inclusion in the witnessed checkpoint");
    }
    let w = c
        .get_witnessed_checkpoint(pb::GetWitnessedCheckpointRequest {})
        .await
        .expect("witnessed")
        .into_inner();
    assert_eq!(w.witness_quorum, 3);
    assert_eq!(w.witnesses.len(), 3, "{:?}", w.witnesses);
    let wcp = w.checkpoint.expect("checkpoint");
    assert!(wcp.size >= last_size);
    // Each witness holds what it cosigned, with its own cosignature.
    for wp in &s.witnesses {
        let held = wp
            .client()
            .await
            .get_latest(pb::GetLatestRequest { origin: ORIGIN.into() })
            .await
            .expect("witness holds a checkpoint")
            .into_inner()
            .checkpoint;
        let n = open_checkpoint(&held, &log).expect("held checkpoint verifies");
        assert!(n.checkpoint.size >= last_size);
        assert_eq!(
            n.note
                .verify_cosignatures(std::slice::from_ref(&wp.key))
                .expect("own")
                .len(),
            1
        );
    }

    // A court bundle: the checkpoint carries the cosignatures and verifies offline.
    let file = s._dir.path().join("b.ledger-bundle.json");
    let out = Command::new(bin("ledger-verify"))
        .args(["bundle", "export", "--node", &s.node.addr, "--index", "5", "-o"])
        .arg(&file)
        .output()
        .expect("export");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let b: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).expect("bundle")).expect("json");
    let note = Note::parse(b["checkpoint"].as_str().expect("checkpoint")).expect("note");
    assert_eq!(note.verify_cosignatures(&keys).expect("cosigs").len(), 3);
    let out = Command::new(bin("ledger-verify"))
        .args(["bundle", "verify"])
        .arg(&file)
        .arg("--trusted-key")
        .arg(log.to_string_key())
        .output()
        .expect("verify");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("3 independent witness(es)"), "{text}");
    // Per record, the witnesses vouching for it by registry name and key id (`--json`), and the
    // page naming each with its key.
    let json = s._dir.path().join("v.json");
    let out = Command::new(bin("ledger-verify"))
        .args(["bundle", "verify"])
        .arg(&file)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("verify --json");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).expect("json")).expect("json");
    let vouch = v["records"][0]["vouched_by"]["witnesses"]
        .as_array()
        .expect("witnesses")
        .clone();
    assert_eq!(vouch.len(), 3, "{v}");
    let page = s._dir.path().join("b.html");
    let out = Command::new(bin("ledger-verify"))
        .args(["bundle", "show"])
        .arg(&file)
        .arg("--html")
        .arg(&page)
        .output()
        .expect("show");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let page = std::fs::read_to_string(&page).expect("page");
    for w in &vouch {
        let (name, keyid) = (w["name"].as_str().expect("name"), w["keyid"].as_str().expect("keyid"));
        assert!(keys.iter().any(|k| k.name == name), "{name} is not an enrolled witness");
        assert!(
            page.contains(&format!("<td>{name}</td><td><code>{keyid}</code></td>")),
            "{name}"
        );
    }
    for k in &keys {
        assert!(
            page.contains(&format!("<code class=wkey>{}</code>", k.to_string_key())),
            "{}",
            k.name
        );
    }
    // Without the registry's witness enrollments (a bundle cut down by hand), quorum is not met.
    let mut cut = b.clone();
    let reg = cut["registry"].as_array().expect("registry").clone();
    cut["registry"] = serde_json::Value::Array(reg.into_iter().take(1).collect());
    let cut_file = s._dir.path().join("cut.ledger-bundle.json");
    std::fs::write(&cut_file, serde_json::to_vec(&cut).expect("json")).expect("write");
    let out = Command::new(bin("ledger-verify"))
        .args(["bundle", "verify"])
        .arg(&cut_file)
        .output()
        .expect("verify");
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("NOT_WITNESSED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forked_node_gets_no_cosignature_and_the_verifier_names_the_fork() {
    let mut s = setup().await;
    let mut c = s.node.client().await;
    let log = node_vkey(&s.data);
    let env = record("note", note_payload(1), &[&s.registrar]);
    let r = c
        .append(req(&env, "before", true))
        .await
        .expect("witnessed")
        .into_inner();
    let old = open_checkpoint(&r.checkpoint, &log).expect("verifies");
    let old_file = s._dir.path().join("cosigned-old.txt");
    std::fs::write(&old_file, &r.checkpoint).expect("write");
    let held_before: Vec<String> = {
        let mut v = Vec::new();
        for w in &s.witnesses {
            v.push(
                w.client()
                    .await
                    .get_latest(pb::GetLatestRequest { origin: ORIGIN.into() })
                    .await
                    .expect("held")
                    .into_inner()
                    .checkpoint,
            );
        }
        v
    };

    // The operator rewrites history from index 2 and re-signs.
    s.node.stop();
    let out = Command::new(bin("ledger-node"))
        .args(["debug-fork", "--from", "2", "--data"])
        .arg(&s.data)
        .output()
        .expect("fork");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let node = start_node(&s.data, &s.witnesses.iter().collect::<Vec<_>>());
    let mut c = node.client().await;
    let env = record("note", note_payload(2), &[&s.registrar]);
    let err = c
        .append(req(&env, "after", true))
        .await
        .expect_err("no witnessed checkpoint");
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err}");
    assert!(err.message().contains("durably appended"), "{err}");
    let err = c
        .get_witnessed_checkpoint(pb::GetWitnessedCheckpointRequest {})
        .await
        .expect_err("none witnessed");
    assert_eq!(err.code(), Code::NotFound);
    // Every witness refused: each still holds exactly what it held before the fork.
    for (w, before) in s.witnesses.iter().zip(&held_before) {
        let now = w
            .client()
            .await
            .get_latest(pb::GetLatestRequest { origin: ORIGIN.into() })
            .await
            .expect("held")
            .into_inner()
            .checkpoint;
        assert_eq!(&now, before, "witness {} cosigned the fork", w.key.name);
    }
    // The forked checkpoint, pushed by hand, is refused with the witness's reason.
    let forked = c
        .get_checkpoint(pb::GetCheckpointRequest { size: None })
        .await
        .expect("cp")
        .into_inner();
    let proof = c
        .get_consistency_proof(pb::GetConsistencyProofRequest {
            old_size: old.checkpoint.size,
            new_size: forked.size,
        })
        .await
        .expect("proof")
        .into_inner();
    let body = AddCheckpoint {
        old_size: old.checkpoint.size,
        proof: hashes(&proof.hashes),
        checkpoint: forked.note.clone(),
    }
    .to_body();
    let err = s.witnesses[0]
        .client()
        .await
        .add_checkpoint(pb::AddCheckpointRequest { body })
        .await
        .expect_err("refused");
    assert!(
        err.message().contains("does not verify") || err.message().contains("conflict"),
        "{err}"
    );

    // Gossip: the old cosigned checkpoint, shown to the verifier, reveals the fork with both roots.
    let new_file = s._dir.path().join("forked-new.txt");
    std::fs::write(&new_file, &forked.note).expect("write");
    let out = Command::new(bin("ledger-verify"))
        .args(["consistency", "--node", &node.addr, "--checkpoint"])
        .arg(&old_file)
        .arg("--checkpoint")
        .arg(&new_file)
        .output()
        .expect("consistency");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FORK"), "{text}");
    let forked_root = open_checkpoint(&forked.note, &log)
        .expect("forked verifies")
        .checkpoint
        .root;
    assert!(text.contains(&old.checkpoint.root.to_hex()), "old root named: {text}");
    assert!(text.contains(&forked_root.to_hex()), "new root named: {text}");
    assert!(
        text.contains("3 witness"),
        "cosignatures on the old checkpoint reported: {text}"
    );
}

/// Waits until the witness holds a checkpoint of `size` for the log and returns it (note text).
async fn held_at(w: &WitnessProc, log: &NoteVerifier, size: u64) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let held = w
            .client()
            .await
            .get_latest(pb::GetLatestRequest { origin: ORIGIN.into() })
            .await
            .ok()
            .map(|r| r.into_inner().checkpoint);
        if let Some(text) = held
            && open_checkpoint(&text, log)
                .expect("held checkpoint verifies")
                .checkpoint
                .size
                == size
        {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "witness {} never held size {size}",
            w.key.name
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Runs `ledger-verify consistency ARGS`; returns the exit code and stdout.
fn gossip(args: &[String]) -> (Option<i32>, String) {
    let out = Command::new(bin("ledger-verify"))
        .arg("consistency")
        .args(args)
        .output()
        .expect("ledger-verify");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The report line about one checkpoint source.
fn saved_line<'a>(text: &'a str, source: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with("saved:") && l.contains(&format!("{source}:")))
        .unwrap_or_else(|| panic!("no line for {source}: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn witnesses_that_cosigned_different_forks_are_named_without_a_node() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("node");
    init_with_quorum(&data, ORIGIN, 0);
    let vkey = data.join("keys/node.vkey");
    let log = node_vkey(&data);
    let honest = WitnessProc::start(&dir.path().join("w0"), Some("witness.test/honest"), &vkey);
    let before = WitnessProc::start(&dir.path().join("w1"), Some("witness.test/before"), &vkey);
    let idle = WitnessProc::start(&dir.path().join("w3"), Some("witness.test/idle"), &vkey);
    let mut node = start_node(&data, &[&honest, &before]);
    let mut c = node.client().await;
    let admin = key(&data.join("keys/admin.key"));
    let registrar = new_key();
    append(&mut c, &enroll(&registrar, "registrar", &["registrar"], &[&admin]), "r")
        .await
        .expect("enroll");
    for i in 0..4 {
        let env = record("note", note_payload(i), &[&registrar]);
        c.append(req(&env, &format!("n{i}"), true)).await.expect("append");
    }
    let size = c
        .get_checkpoint(pb::GetCheckpointRequest { size: None })
        .await
        .expect("cp")
        .into_inner()
        .size;
    let honest_cp = held_at(&honest, &log, size).await;
    let before_cp = held_at(&before, &log, size).await;
    assert_eq!(
        honest_cp.lines().take(3).collect::<Vec<_>>(),
        before_cp.lines().take(3).collect::<Vec<_>>()
    );

    // Honest witnesses agree; a witness that holds nothing for the log is reported, not a fault.
    let trusted = log.to_string_key();
    let mut args: Vec<String> = vec!["--trusted-key".into(), trusted.clone()];
    for w in [&honest, &before, &idle] {
        args.extend(["--witness-url".into(), w.addr.clone()]);
        args.extend(["--witness-key".into(), w.key.to_string_key()]);
    }
    let (code, text) = gossip(&args);
    assert_eq!(code, Some(0), "{text}");
    for (w, name) in [(&honest, "witness.test/honest"), (&before, "witness.test/before")] {
        let line = saved_line(&text, &w.addr);
        assert!(line.contains(&format!("size {size}")), "{line}");
        assert!(line.contains(": consistent;"), "{line}");
        assert!(line.contains(&format!("cosigned by 1 witness(es): {name}")), "{line}");
    }
    assert!(saved_line(&text, &idle.addr).ends_with("no checkpoint"), "{text}");

    // The operator forks the log after `before` cosigned it, and shows the rewritten history of the
    // same size to a fresh witness, which has no reason to refuse it.
    node.stop();
    let out = Command::new(bin("ledger-node"))
        .args(["debug-fork", "--from", "2", "--data"])
        .arg(&data)
        .output()
        .expect("fork");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let fresh = WitnessProc::start(&dir.path().join("w2"), Some("witness.test/fresh"), &vkey);
    let forked_node = start_node(&data, &[&fresh]);
    let fresh_cp = held_at(&fresh, &log, size).await;
    let root = |t: &str| open_checkpoint(t, &log).expect("verifies").checkpoint.root.to_hex();
    let (old_root, forked_root) = (root(&before_cp), root(&fresh_cp));
    assert_ne!(old_root, forked_root);

    // Gossip without the node: the two witnesses' checkpoints of one size disagree.
    let mut args: Vec<String> = vec!["--trusted-key".into(), trusted.clone()];
    for w in [&before, &fresh] {
        args.extend(["--witness-url".into(), w.addr.clone()]);
        args.extend(["--witness-key".into(), w.key.to_string_key()]);
    }
    let (code, text) = gossip(&args);
    assert_eq!(code, Some(1), "{text}");
    let fork = text
        .lines()
        .find(|l| l.contains("FORK:"))
        .unwrap_or_else(|| panic!("no FORK: {text}"));
    assert!(fork.contains(&before.addr) && fork.contains(&fresh.addr), "{fork}");
    assert!(text.contains(&old_root) && text.contains(&forked_root), "{text}");
    assert!(saved_line(&text, &before.addr).contains("FORK; cosigned by 1 witness(es): witness.test/before"));
    assert!(saved_line(&text, &fresh.addr).contains("FORK; cosigned by 1 witness(es): witness.test/fresh"));

    // With the node, its proofs side with the fork's witness and name the other one.
    args.extend(["--node".into(), forked_node.addr.clone()]);
    let (code, text) = gossip(&args);
    assert_eq!(code, Some(1), "{text}");
    assert!(saved_line(&text, &before.addr).contains(": FORK;"), "{text}");
    assert!(saved_line(&text, &fresh.addr).contains(": consistent;"), "{text}");
}

fn status_refusal(s: &tonic::Status) -> pb::WitnessRefusal {
    pb::WitnessRefusal::decode(s.details()).expect("refusal detail")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_witness_never_rolls_back_and_refuses_bad_input() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("node");
    init_with_quorum(&data, ORIGIN, 0);
    // The node knows no witness: this test plays the log's side of the protocol by hand.
    let node = start_node(&data, &[]);
    let mut c = node.client().await;
    let admin = key(&data.join("keys/admin.key"));
    let registrar = new_key();
    append(&mut c, &enroll(&registrar, "registrar", &["registrar"], &[&admin]), "r")
        .await
        .expect("enroll");
    let wdir = dir.path().join("w");
    let mut w = WitnessProc::start(&wdir, Some("witness.test/solo"), &data.join("keys/node.vkey"));
    let cp = |c: &mut pb::ledger_client::LedgerClient<Channel>| {
        let mut c = c.clone();
        async move {
            c.get_checkpoint(pb::GetCheckpointRequest { size: None })
                .await
                .expect("cp")
                .into_inner()
        }
    };
    for i in 0..4 {
        c.append(req(
            &record("note", note_payload(i), &[&registrar]),
            &format!("a{i}"),
            true,
        ))
        .await
        .expect("append");
    }
    let big = cp(&mut c).await;
    let mut wc = w.client().await;
    let first = AddCheckpoint {
        old_size: 0,
        proof: vec![],
        checkpoint: big.note.clone(),
    };
    let lines = wc
        .add_checkpoint(pb::AddCheckpointRequest { body: first.to_body() })
        .await
        .expect("first cosignature")
        .into_inner()
        .cosignatures;
    let merged = Note::parse(&format!("{}\n{lines}", Note::parse(&big.note).expect("n").text)).expect("lines");
    assert_eq!(
        merged
            .verify_cosignatures(std::slice::from_ref(&w.key))
            .expect("v")
            .len(),
        1
    );

    // Restart the witness from its own data (name remembered): the held size survives.
    w.stop();
    let w = WitnessProc::start(&wdir, None, &data.join("keys/node.vkey"));
    let mut wc = w.client().await;
    let held = || async {
        w.client()
            .await
            .get_latest(pb::GetLatestRequest { origin: ORIGIN.into() })
            .await
            .expect("held")
            .into_inner()
            .checkpoint
    };
    let held_text = held().await;
    assert_eq!(
        open_checkpoint(&held_text, &node_vkey(&data))
            .expect("v")
            .checkpoint
            .size,
        big.size
    );
    let small = c
        .get_checkpoint(pb::GetCheckpointRequest { size: Some(1) })
        .await
        .expect("genesis checkpoint")
        .into_inner();
    for old in [0, 1] {
        let body = AddCheckpoint {
            old_size: old,
            proof: vec![],
            checkpoint: small.note.clone(),
        }
        .to_body();
        let err = wc
            .add_checkpoint(pb::AddCheckpointRequest { body })
            .await
            .expect_err("smaller tree refused");
        assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
        let r = status_refusal(&err);
        assert_eq!((r.http_status, r.held_size), (409, big.size), "{err}");
        assert!(err.message().contains(&big.size.to_string()), "{err}");
    }

    // Grow the log for a genuine next checkpoint.
    for i in 10..12 {
        c.append(req(
            &record("note", note_payload(i), &[&registrar]),
            &format!("b{i}"),
            true,
        ))
        .await
        .expect("append");
    }
    let next = cp(&mut c).await;
    let proof = hashes(
        &c.get_consistency_proof(pb::GetConsistencyProofRequest {
            old_size: big.size,
            new_size: next.size,
        })
        .await
        .expect("proof")
        .into_inner()
        .hashes,
    );
    let other_origin = ledger_core::checkpoint::Checkpoint {
        origin: "other.test/log".into(),
        size: 3,
        root: Hash::digest(b"x"),
        extensions: vec![],
    }
    .sign(&NoteSigner::new("other.test/log", new_key()).expect("s"))
    .expect("sign")
    .to_text();
    let n = Note::parse(&next.note).expect("n");
    let forged = ledger_core::checkpoint::Checkpoint::from_body(&n.text)
        .expect("body")
        .sign(&NoteSigner::new(ORIGIN, new_key()).expect("s"))
        .expect("sign")
        .to_text();
    let mut bad_proof = proof.clone();
    bad_proof[0] = Hash::digest(b"not a node");
    let b64 = |h: &Hash| base64::engine::general_purpose::STANDARD.encode(h.0);
    let cases: Vec<(&str, String, Code, u32)> = vec![
        ("not a request", "hello\n".into(), Code::InvalidArgument, 400),
        (
            "malformed note",
            format!("old {}\n\nno signatures here\n", big.size),
            Code::InvalidArgument,
            400,
        ),
        (
            "wrong origin",
            AddCheckpoint {
                old_size: 0,
                proof: vec![],
                checkpoint: other_origin,
            }
            .to_body(),
            Code::NotFound,
            404,
        ),
        (
            "signed by another key",
            AddCheckpoint {
                old_size: big.size,
                proof: proof.clone(),
                checkpoint: forged,
            }
            .to_body(),
            Code::PermissionDenied,
            403,
        ),
        (
            "proof that does not verify",
            AddCheckpoint {
                old_size: big.size,
                proof: bad_proof,
                checkpoint: next.note.clone(),
            }
            .to_body(),
            Code::InvalidArgument,
            422,
        ),
        (
            "old size above the checkpoint's",
            AddCheckpoint {
                old_size: next.size + 1,
                proof: vec![],
                checkpoint: next.note.clone(),
            }
            .to_body(),
            Code::InvalidArgument,
            400,
        ),
        (
            "proof line not base64",
            format!("old {}\n{}\n!!!\n\n{}", big.size, b64(&proof[0]), next.note),
            Code::InvalidArgument,
            400,
        ),
        (
            "oversized request",
            format!("old 0\n\n{}", "x".repeat(MAX_ADD_CHECKPOINT_BYTES)),
            Code::InvalidArgument,
            400,
        ),
    ];
    for (what, body, code, http) in cases {
        let err = wc
            .add_checkpoint(pb::AddCheckpointRequest { body })
            .await
            .expect_err(what);
        assert_eq!(err.code(), code, "{what}: {err}");
        assert_eq!(status_refusal(&err).http_status, http, "{what}: {err}");
        assert_eq!(held().await, held_text, "{what} changed the witness state");
    }
    // Far beyond the limit, the transport refuses before parsing.
    let err = wc
        .add_checkpoint(pb::AddCheckpointRequest {
            body: "x".repeat(4 * MAX_ADD_CHECKPOINT_BYTES),
        })
        .await
        .expect_err("huge");
    assert_eq!(err.code(), Code::OutOfRange, "{err}");
    assert!(err.message().contains("too large"), "{err}");
    assert_eq!(held().await, held_text);

    // The genuine extension is still cosigned: the state was intact.
    let body = AddCheckpoint {
        old_size: big.size,
        proof,
        checkpoint: next.note.clone(),
    }
    .to_body();
    wc.add_checkpoint(pb::AddCheckpointRequest { body })
        .await
        .expect("consistent growth cosigned");
    let now = open_checkpoint(&held().await, &node_vkey(&data)).expect("v");
    assert_eq!(now.checkpoint.size, next.size);
}

/// Issue 12 item 1: the latest witnessed checkpoint is also kept outside the store, in
/// `DATA/high-water.witnessed`, before `wait_for_checkpoint` answers; the node checks it at open
/// and `ledger-verify replay --data` reports both marks held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn witnessed_checkpoint_is_kept_as_a_high_water_mark() {
    let mut s = setup().await;
    let mut c = s.node.client().await;
    let env = record("note", note_payload(7), &[&s.registrar]);
    let r = c
        .append(req(&env, "hw-1", true))
        .await
        .expect("append waits for a witnessed checkpoint")
        .into_inner();
    let log = node_vkey(&s.data);
    let text = std::fs::read_to_string(s.data.join("high-water.witnessed")).expect("witnessed mark written");
    let cp = open_checkpoint(&text, &log).expect("the witnessed mark carries the node's signature");
    let keys: Vec<CosignatureVerifier> = s.witnesses.iter().map(|w| w.key.clone()).collect();
    assert_eq!(cp.note.verify_cosignatures(&keys).expect("cosignatures").len(), 3);
    assert!(cp.checkpoint.size > r.index);
    let mark = std::fs::read_to_string(s.data.join("high-water.checkpoint")).expect("mark");
    let mark_size = open_checkpoint(&mark, &log).expect("mark signature").checkpoint.size;
    assert!(mark_size >= cp.checkpoint.size);
    s.node.stop();

    let out = Command::new(bin("ledger-verify"))
        .args(["replay", "--data"])
        .arg(&s.data)
        .output()
        .expect("ledger-verify");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("high-water.witnessed") && stdout.contains("high-water.checkpoint"),
        "{stdout}"
    );

    // A witnessed mark that is not the node's signature stops the node.
    let forged = text.replacen(&format!("\n{}\n", cp.checkpoint.size), "\n1\n", 1);
    assert_ne!(forged, text);
    std::fs::write(s.data.join("high-water.witnessed"), forged).expect("write");
    let err = Node::try_start(&s.data)
        .err()
        .expect("served with a forged witnessed mark");
    assert!(
        err.contains("high-water.witnessed") && err.contains("not a checkpoint signed by the node key"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_keeps_no_lines_planted_in_a_submission() {
    let s = setup().await;
    let mut c = s.node.client().await;
    let log = node_vkey(&s.data);
    let env = record("note", note_payload(1), &[&s.registrar]);
    c.append(req(&env, "planted-1", true)).await.expect("witnessed append");
    let size = c
        .get_checkpoint(pb::GetCheckpointRequest { size: None })
        .await
        .expect("cp")
        .into_inner()
        .size;
    let target = &s.witnesses[0];
    let held = held_at(target, &log, size).await;

    // Resubmit the witness's own current checkpoint with a garbage line in the name (and key hash)
    // of another enrolled witness and 20 junk lines.
    let mut planted = Note::parse(&held).expect("held note");
    let other = &s.witnesses[1].key;
    planted.signatures.push(ledger_core::note::NoteSignature {
        name: other.name.clone(),
        key_hash: other.key_hash,
        sig: vec![0x5a; 72],
    });
    for i in 0..20u8 {
        planted.signatures.push(ledger_core::note::NoteSignature {
            name: format!("junk.test/{i}"),
            key_hash: u32::from(i) * 7919,
            sig: vec![i; 64],
        });
    }
    let body = AddCheckpoint {
        old_size: size,
        proof: vec![],
        checkpoint: planted.to_text(),
    }
    .to_body();
    let answer = target
        .client()
        .await
        .add_checkpoint(pb::AddCheckpointRequest { body })
        .await
        .expect("the same checkpoint is cosigned again")
        .into_inner()
        .cosignatures;
    // The answer is the witness's own cosignature line only.
    assert_eq!(answer.lines().count(), 1, "{answer}");
    assert!(answer.starts_with(&format!("— {} ", target.key.name)), "{answer}");

    // What it stores and serves: the log's signature and its own cosignature, nothing else.
    let served = target
        .client()
        .await
        .get_latest(pb::GetLatestRequest { origin: ORIGIN.into() })
        .await
        .expect("held")
        .into_inner()
        .checkpoint;
    let n = open_checkpoint(&served, &log).expect("the log's signature verifies");
    assert_eq!(n.checkpoint.size, size);
    assert_eq!(n.note.signatures.len(), 2, "{served}");
    assert_eq!(n.note.signatures[0].name, ORIGIN, "{served}");
    assert_eq!(n.note.signatures[0].key_hash, log.key_hash, "{served}");
    let all: Vec<CosignatureVerifier> = s.witnesses.iter().map(|w| w.key.clone()).collect();
    let cos = n
        .note
        .verify_cosignatures(&all)
        .expect("every cosignature line on the served note verifies");
    assert_eq!(
        cos.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        vec![target.key.name.as_str()]
    );
    assert!(!served.contains("junk.test"), "{served}");
    let state = std::fs::read_dir(s._dir.path().join("w1/state"))
        .expect("state dir")
        .filter_map(Result::ok)
        .find(|e| e.path().extension().is_some_and(|x| x == "checkpoint"))
        .expect("state file");
    assert_eq!(std::fs::read_to_string(state.path()).expect("state"), served);

    // The verifier, against the honest log and honest witnesses, finds nothing wrong.
    let mut args: Vec<String> = vec!["--node".into(), s.node.addr.clone()];
    for w in &s.witnesses {
        args.extend(["--witness-url".into(), w.addr.clone()]);
    }
    let (code, text) = gossip(&args);
    assert!(!text.contains("CHECKPOINT_BAD_SIGNATURE"), "{text}");
    assert_eq!(code, Some(0), "{text}");
    assert!(saved_line(&text, &target.addr).contains(": consistent;"), "{text}");
}
