//! `ledger-verify consistency` without a node (the gossip check): checkpoints from several sources
//! are compared with each other only. Real binary, signed checkpoint files, no network.

use ed25519_dalek::SigningKey;
use ledger_core::checkpoint::Checkpoint;
use ledger_core::cosignature::CosignatureSigner;
use ledger_core::hash::{Hash, empty_root};
use ledger_core::note::NoteSigner;
use std::path::{Path, PathBuf};
use std::process::Command;

const ORIGIN: &str = "ledger.test/offline";

struct Run {
    code: Option<i32>,
    stdout: String,
    json: serde_json::Value,
}

fn log_signer() -> NoteSigner {
    NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[7; 32])).expect("signer")
}

fn witness() -> CosignatureSigner {
    CosignatureSigner::new("witness.test/a", SigningKey::from_bytes(&[9; 32])).expect("witness")
}

/// Writes a checkpoint of `size` and `root` signed by `signer`, optionally cosigned by the witness.
fn write_cp(dir: &Path, name: &str, signer: &NoteSigner, size: u64, root: Hash, cosign: bool) -> PathBuf {
    let mut note = Checkpoint {
        origin: ORIGIN.into(),
        size,
        root,
        extensions: vec![],
    }
    .sign(signer)
    .expect("sign");
    if cosign {
        let line = witness().sign(&note.text, 1_700_000_000).expect("cosign");
        note.merge_signatures([line]);
    }
    let p = dir.join(name);
    std::fs::write(&p, note.to_text()).expect("write");
    p
}

fn verify(dir: &Path, args: &[&str], files: &[&Path]) -> Run {
    let json = dir.join("report.json");
    let _ = std::fs::remove_file(&json);
    let mut c = Command::new(env!("CARGO_BIN_EXE_ledger-verify"));
    c.arg("consistency").args(args).arg("--json").arg(&json);
    for f in files {
        c.arg("--checkpoint").arg(f);
    }
    let out = c.output().expect("run ledger-verify");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        json: std::fs::read(&json)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(serde_json::Value::Null),
    }
}

fn statuses(j: &serde_json::Value) -> Vec<(String, String)> {
    j["checkpoints"]
        .as_array()
        .expect("checkpoints")
        .iter()
        .map(|c| {
            let name = Path::new(c["file"].as_str().expect("file"))
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            (name, c["status"].as_str().expect("status").to_string())
        })
        .collect()
}

#[test]
fn same_size_different_roots_is_a_fork_naming_both_files() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let log = log_signer();
    let key = log.verifier().to_string_key();
    let (r1, r2, r3) = (Hash::digest(b"one"), Hash::digest(b"two"), Hash::digest(b"three"));
    let a = write_cp(d, "court-a.txt", &log, 5, r1, true);
    let b = write_cp(d, "client-b.txt", &log, 5, r2, false);
    let c = write_cp(d, "later-c.txt", &log, 9, r3, false);
    let wkey = witness().verifier().to_string_key();

    let r = verify(d, &["--trusted-key", &key, "--witness-key", &wkey], &[&a, &b, &c]);
    assert_eq!(r.code, Some(1), "{}", r.stdout);
    let fork = r
        .stdout
        .lines()
        .find(|l| l.contains("FORK:"))
        .unwrap_or_else(|| panic!("no FORK line: {}", r.stdout));
    for needle in ["court-a.txt", "client-b.txt", &r1.to_hex(), &r2.to_hex(), "size 5"] {
        assert!(
            fork.contains(needle) || r.stdout.contains(needle),
            "{needle} missing: {}",
            r.stdout
        );
    }
    assert!(
        r.stdout.contains("court-a.txt") && r.stdout.contains("cosigned by 1 witness(es): witness.test/a"),
        "{}",
        r.stdout
    );
    // JSON: node null, one FORK, both names; the size-9 checkpoint is not compared.
    let j = &r.json;
    assert!(j["node"].is_null(), "{j}");
    assert_eq!(j["ok"], false);
    assert_eq!(j["fault_counts"]["FORK"], 1, "{j}");
    let f = &j["faults"][0];
    assert_eq!(f["code"], "FORK");
    let msg = f["message"].as_str().expect("message");
    assert!(msg.contains("court-a.txt") && msg.contains("client-b.txt"), "{msg}");
    let ev = format!("{} {}", f["expected"], f["found"]);
    assert!(ev.contains(&r1.to_hex()) && ev.contains(&r2.to_hex()), "{ev}");
    assert_eq!(
        statuses(j),
        vec![
            ("court-a.txt".into(), "FORK".into()),
            ("client-b.txt".into(), "FORK".into()),
            ("later-c.txt".into(), "not compared".into()),
        ]
    );
    assert_eq!(j["checkpoints"][0]["source"], "file");
    assert_eq!(j["checkpoints"][0]["witnesses"][0], "witness.test/a");
    let pairs = j["pairs"].as_array().expect("pairs");
    assert_eq!(pairs.len(), 3, "{j}");
    assert_eq!(pairs[0]["result"], "FORK");
    assert_eq!(pairs[1]["result"], "not compared (no node to prove consistency)");
    assert_eq!(pairs[2]["result"], "not compared (no node to prove consistency)");
}

#[test]
fn agreeing_checkpoints_pass_and_other_sizes_are_not_compared() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let log = log_signer();
    let key = log.verifier().to_string_key();
    let root = Hash::digest(b"same");
    let a = write_cp(d, "a.txt", &log, 5, root, true);
    let b = write_cp(d, "b.txt", &log, 5, root, false);
    let r = verify(d, &["--trusted-key", &key], &[&a, &b]);
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    assert_eq!(
        statuses(&r.json),
        vec![
            ("a.txt".into(), "consistent".into()),
            ("b.txt".into(), "consistent".into())
        ]
    );
    // No --witness-key and no node: nothing to count cosignatures with.
    assert_eq!(r.json["checkpoints"][0]["witnesses"], serde_json::json!([]));

    // A larger one cannot be compared without a proof: reported, not a failure.
    let c = write_cp(d, "c.txt", &log, 8, Hash::digest(b"other"), false);
    let r = verify(d, &["--trusted-key", &key], &[&a, &b, &c]);
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    assert!(
        r.stdout.contains("not compared (no node to prove consistency)"),
        "{}",
        r.stdout
    );
    assert_eq!(r.json["ok"], true);

    // The empty tree is a prefix of everything, but only with the empty-tree root.
    let e = write_cp(d, "empty.txt", &log, 0, empty_root(), false);
    let r = verify(d, &["--trusted-key", &key], &[&e, &a]);
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    let bad_empty = write_cp(d, "bad-empty.txt", &log, 0, Hash::digest(b"x"), false);
    let r = verify(d, &["--trusted-key", &key], &[&bad_empty, &a]);
    assert_eq!(r.code, Some(1), "{}", r.stdout);
    assert_eq!(r.json["fault_counts"]["FORK"], 1, "{}", r.json);
}

#[test]
fn offline_needs_the_log_key_and_refuses_other_signers() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let log = log_signer();
    let key = log.verifier().to_string_key();
    let a = write_cp(d, "a.txt", &log, 5, Hash::digest(b"r"), false);
    // No node and no key: usage error.
    let r = verify(d, &[], &[&a]);
    assert_eq!(r.code, Some(2), "{}", r.stdout);
    // Nothing to check: usage error.
    let r = verify(d, &["--trusted-key", &key], &[]);
    assert_eq!(r.code, Some(2), "{}", r.stdout);
    // A checkpoint signed by another key (same origin) is a bad signature.
    let other = NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[8; 32])).expect("other");
    let forged = write_cp(d, "forged.txt", &other, 5, Hash::digest(b"r"), false);
    let r = verify(d, &["--trusted-key", &key], &[&a, &forged]);
    assert_eq!(r.code, Some(1), "{}", r.stdout);
    assert_eq!(r.json["fault_counts"]["CHECKPOINT_BAD_SIGNATURE"], 1, "{}", r.json);
    assert_eq!(
        statuses(&r.json),
        vec![
            ("a.txt".into(), "not compared".into()),
            ("forged.txt".into(), "bad signature".into())
        ]
    );
}
