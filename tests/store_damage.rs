//! Issue 12 item 1: damage to the raw store files never makes the node serve a shorter or
//! different log. sled recovers a damaged segment by cutting its log there; the high-water mark
//! (`DATA/high-water.checkpoint`, outside sled) makes the node refuse such a store, and
//! `ledger-verify replay --data` name ROLLBACK.
//!
//! A ledger is built through real gRPC, the node is stopped cleanly, and each damage is applied to
//! the files of a fresh copy of the data directory. For each, the node either refuses to start
//! (its stderr names the problem) or serves every acknowledged entry unchanged; and the verifier
//! never says OK for a log other than the acknowledged one.

mod support;

use ledger_core::hash::leaf_hash;
use ledger_proto::pb;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::*;

/// What was acknowledged at append time.
struct Built {
    data: PathBuf,
    /// index -> leaf hash of every acknowledged entry.
    acked: BTreeMap<u64, Vec<u8>>,
    /// The log size when the node stopped.
    size: u64,
    /// A mark file taken while the log was smaller (for the "older mark" damage).
    older_mark: String,
    /// An export taken from the running node while the log was smaller.
    older_export: PathBuf,
}

const ENTRIES: u64 = 60;

fn marker(i: u64) -> String {
    format!("PAYLOAD-MARKER-{i:04}")
}

async fn build(dir: &Path) -> Built {
    let data = dir.join("d");
    init(&data, "ledger.test/damage", &[], 1);
    assert!(
        data.join("high-water.checkpoint").exists(),
        "init writes the high-water mark"
    );
    let admin = key(&data.join("keys/admin.key"));
    let reg = new_key();
    let mut node = Node::start(&data);
    let mut c = node.client().await;
    let mut acked = BTreeMap::new();
    let r = append(&mut c, &enroll(&reg, "r", &["registrar"], &[&admin]), "")
        .await
        .expect("enroll");
    acked.insert(r.index, r.leaf_hash);
    let mut older_mark = String::new();
    for i in 0..ENTRIES {
        let env = record(
            "note",
            serde_json::json!({"version": 1, "text": format!("{} body", marker(i)), "subject": format!("cadre-{}", i % 3)}),
            &[&reg],
        );
        // Every tenth append waits for a checkpoint: several checkpoints, each written to the mark.
        let r = c
            .append(req(&env, &format!("req-{i}"), i % 10 == 9))
            .await
            .expect("append")
            .into_inner();
        if i % 10 == 9 {
            assert!(
                !r.checkpoint.is_empty(),
                "wait_for_checkpoint answers with a checkpoint"
            );
            let mark = std::fs::read_to_string(data.join("high-water.checkpoint")).expect("mark");
            assert_eq!(
                mark, r.checkpoint,
                "the mark holds the checkpoint the append was answered with"
            );
            if i == 19 {
                older_mark = mark;
                // `export` works on a running node (and checks its mark).
                ledger_node(&["export", "--data", s(&data), "--out", s(&dir.join("older.export"))])
                    .expect("export of a running node");
            }
        }
        acked.insert(r.index, r.leaf_hash);
    }
    node.stop();
    let size = acked.keys().max().map_or(0, |m| m + 1);
    assert_eq!(size, ENTRIES + 2);
    Built {
        data,
        acked,
        size,
        older_mark,
        older_export: dir.join("older.export"),
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Runs `ledger-node ARGS`: Ok(stdout) or Err(stderr).
fn ledger_node(args: &[&str]) -> Result<String, String> {
    let out = Command::new(bin("ledger-node"))
        .args(args)
        .output()
        .expect("run ledger-node");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Asserts that a node on `data` serves every acknowledged entry unchanged.
async fn assert_serves_all(data: &Path, b: &Built, extra: &[&str]) {
    let mut node = Node::try_start_with(data, extra).unwrap_or_else(|e| panic!("node refused {}: {e}", data.display()));
    let mut c = node.client().await;
    for (i, h) in &b.acked {
        let e = c
            .get_entry(pb::GetEntryRequest { index: *i })
            .await
            .unwrap_or_else(|st| panic!("entry {i}: {st:?}"))
            .into_inner();
        assert_eq!(&leaf_hash(&e.leaf).0.to_vec(), h, "entry {i} changed");
    }
    node.stop();
}

/// The mark's size, read from the file.
fn mark_size(data: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(data.join("high-water.checkpoint")).ok()?;
    ledger_store::high_water::claimed_size(&text)
}

/// The largest file under `dir` (recursively).
fn largest_file(dir: &Path) -> PathBuf {
    let mut best: Option<(u64, PathBuf)> = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir") {
            let e = e.expect("entry");
            let p = e.path();
            if e.file_type().expect("type").is_dir() {
                stack.push(p);
            } else {
                let len = e.metadata().expect("meta").len();
                if best.as_ref().is_none_or(|(l, _)| len > *l) {
                    best = Some((len, p));
                }
            }
        }
    }
    best.expect("a file under store/").1
}

/// `ledger-verify replay --data DIR --json`: (exit ok, final size, final root, fault codes).
fn replay(dir: &Path, json: &Path) -> (bool, u64, String, Vec<String>) {
    let out = Command::new(bin("ledger-verify"))
        .args(["replay", "--threads", "1", "--data"])
        .arg(dir)
        .arg("--json")
        .arg(json)
        .output()
        .expect("run ledger-verify");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !json.exists() {
        // The source could not be read at all (exit code 2): not an OK.
        assert!(!out.status.success(), "no report but success: {stdout}");
        return (false, 0, String::new(), vec!["UNREADABLE".into()]);
    }
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(json).expect("json")).expect("parse json");
    let codes = v["fault_counts"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    (
        out.status.success() && v["ok"] == true,
        v["final"]["size"].as_u64().unwrap_or(0),
        v["final"]["root"].as_str().unwrap_or_default().to_string(),
        codes,
    )
}

/// One damage: a name and what it does to a copy of the data directory.
type Damage = (String, Box<dyn Fn(&Path)>);

fn flip_bit_at(fraction: f64) -> impl Fn(&Path) {
    move |copy: &Path| {
        let f = largest_file(&copy.join("store"));
        let mut b = std::fs::read(&f).expect("read");
        let at = ((b.len() as f64 * fraction) as usize).min(b.len() - 1);
        b[at] ^= 0x10;
        std::fs::write(&f, b).expect("write");
    }
}

fn truncate_to(len: impl Fn(u64) -> u64) -> impl Fn(&Path) {
    move |copy: &Path| {
        let f = largest_file(&copy.join("store"));
        let n = std::fs::metadata(&f).expect("meta").len();
        let file = std::fs::OpenOptions::new().write(true).open(&f).expect("open");
        file.set_len(len(n)).expect("truncate");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_store_is_refused_or_served_whole() {
    let dir = tempfile::tempdir().expect("tmp");
    let b = build(dir.path()).await;

    // The undamaged log: the verifier says OK and holds the mark.
    let (ok, size, root, codes) = replay(&b.data, &dir.path().join("pristine.json"));
    assert!(ok, "pristine replay: {codes:?}");
    assert_eq!(size, b.size);
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("pristine.json")).expect("json")).expect("json");
    assert_eq!(
        v["high_water"][0]["size"].as_u64(),
        Some(b.size),
        "the clean stop's final checkpoint is the mark: {v}"
    );

    let mut damages: Vec<Damage> = Vec::new();
    for pct in [5u32, 15, 25, 35, 45, 55, 65, 75, 85, 90] {
        damages.push((format!("flip-{pct}%"), Box::new(flip_bit_at(f64::from(pct) / 100.0))));
    }
    damages.push(("truncate-half".into(), Box::new(truncate_to(|n| n / 2))));
    damages.push(("truncate-10%".into(), Box::new(truncate_to(|n| n / 10))));
    damages.push(("truncate-5-short".into(), Box::new(truncate_to(|n| n - 5))));
    damages.push((
        "payload-edit".into(),
        Box::new(|copy: &Path| {
            let f = largest_file(&copy.join("store"));
            let mut bytes = std::fs::read(&f).expect("read");
            let needle = marker(30);
            let at = bytes
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
                .expect("the payload is stored uncompressed in the largest file");
            // Three bytes of the payload, as with a text editor: "0030" -> "9930"-like edit.
            let p = at + "PAYLOAD-MARKER-".len();
            bytes[p..p + 3].copy_from_slice(b"999");
            std::fs::write(&f, bytes).expect("write");
        }),
    ));
    damages.push((
        "store-deleted".into(),
        Box::new(|copy: &Path| std::fs::remove_dir_all(copy.join("store")).expect("rm store")),
    ));
    damages.push((
        "mark-deleted".into(),
        Box::new(|copy: &Path| std::fs::remove_file(copy.join("high-water.checkpoint")).expect("rm mark")),
    ));
    let older = b.older_mark.clone();
    damages.push((
        "mark-older".into(),
        Box::new(move |copy: &Path| std::fs::write(copy.join("high-water.checkpoint"), &older).expect("write mark")),
    ));
    damages.push((
        "mark-forged".into(),
        Box::new(|copy: &Path| {
            let p = copy.join("high-water.checkpoint");
            let text = std::fs::read_to_string(&p).expect("mark");
            // A mark claiming a smaller size without the node key's signature.
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            lines[1] = "10".into();
            std::fs::write(&p, lines.join("\n") + "\n").expect("write mark");
        }),
    ));

    let mut refused = Vec::new();
    let mut served = Vec::new();
    let mut rollbacks = Vec::new();
    for (name, damage) in &damages {
        let copy = dir.path().join(name);
        copy_dir(&b.data, &copy);
        damage(&copy);
        match Node::try_start(&copy) {
            Err(stderr) => {
                assert!(
                    stderr.contains("refusing to serve")
                        || stderr.contains("ROLLBACK")
                        || stderr.contains("storage")
                        || stderr.contains("high-water"),
                    "{name}: the refusal does not name the problem: {stderr}"
                );
                if stderr.contains("ROLLBACK") {
                    rollbacks.push(name.clone());
                }
                refused.push(format!("{name}: {}", stderr.lines().last().unwrap_or_default()));
            }
            Ok(mut node) => {
                let mut c = node.client().await;
                let cp = c
                    .get_checkpoint(pb::GetCheckpointRequest { size: None })
                    .await
                    .expect("checkpoint")
                    .into_inner();
                assert!(
                    cp.size >= b.size,
                    "{name}: the node serves {} entries, {} were acknowledged",
                    cp.size,
                    b.size
                );
                for (i, h) in &b.acked {
                    let e = c
                        .get_entry(pb::GetEntryRequest { index: *i })
                        .await
                        .unwrap_or_else(|s| panic!("{name}: acknowledged entry {i} not served: {s:?}"))
                        .into_inner();
                    assert_eq!(&leaf_hash(&e.leaf).0.to_vec(), h, "{name}: entry {i} changed");
                    assert_eq!(&e.leaf_hash, h, "{name}: entry {i} served with another leaf hash");
                }
                node.stop();
                served.push(name.clone());
            }
        }
        let (ok, vsize, vroot, codes) = replay(&copy, &dir.path().join(format!("{name}.json")));
        if ok {
            assert!(
                vsize == b.size && vroot == root,
                "{name}: ledger-verify says OK for another log (size {vsize}, acknowledged {})",
                b.size
            );
        } else {
            assert!(!codes.is_empty(), "{name}: not OK but no fault named");
            if rollbacks.last() == Some(name) {
                assert!(
                    codes.iter().any(|c| c == "ROLLBACK"),
                    "{name}: the node found a rollback but the verifier names {codes:?}"
                );
            }
        }
        eprintln!(
            "{name}: node {}, verifier {}",
            if served.last() == Some(name) {
                "served the whole log"
            } else {
                "refused"
            },
            if ok {
                "OK (same log)".to_string()
            } else {
                codes.join(",")
            }
        );
    }
    eprintln!("refused:\n  {}", refused.join("\n  "));
    // Damage to the marks themselves, or a store gone, is always refused.
    for must in ["store-deleted", "mark-deleted", "mark-forged"] {
        assert!(
            !served.iter().any(|s| s == must),
            "{must}: the node served a store it must refuse"
        );
    }
    // Not vacuous: sled did cut its log at some damage (it does at a flip early in the file, a
    // payload edit or a deep truncation), and the mark caught it.
    assert!(
        !rollbacks.is_empty(),
        "no damage made sled lose entries; the test no longer exercises the mark ({served:?})"
    );
}

/// The restore path (docs/operations.md): a lost store is rebuilt by `import` from an export that
/// holds the mark; an older export is refused against the mark; `--adopt-store` re-creates a
/// missing mark, loudly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_is_checked_against_the_mark_and_adopt_store_recreates_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let b = build(dir.path()).await;
    let full = dir.path().join("full.export");
    ledger_node(&["export", "--data", s(&b.data), "--out", s(&full)]).expect("export");

    // The store is lost; export refuses it, and so does the node.
    let r = dir.path().join("restored");
    copy_dir(&b.data, &r);
    std::fs::remove_dir_all(r.join("store")).expect("rm store");
    let e = ledger_node(&["export", "--data", s(&r), "--out", s(&dir.path().join("x.export"))])
        .expect_err("export of a lost store");
    assert!(e.contains("not a ledger data directory"), "{e}");
    let e = Node::try_start(&r).err().expect("the node served a lost store");
    assert!(
        e.contains("ROLLBACK") && e.contains("0 entries") && e.contains(&format!("{} entries", b.size)),
        "{e}"
    );
    // Now an empty store is there (the node created it): export names the rollback too.
    let e = ledger_node(&["export", "--data", s(&r), "--out", s(&dir.path().join("x.export"))])
        .expect_err("export of an empty store with a mark");
    assert!(e.contains("ROLLBACK"), "{e}");
    std::fs::remove_dir_all(r.join("store")).expect("rm store");
    // `init` does not overwrite a directory that has a mark.
    let e = ledger_node(&["init", "--data", s(&r), "--origin", "ledger.test/damage"]).expect_err("init over a mark");
    assert!(e.contains("high-water mark"), "{e}");

    // An older export does not restore the log: refused against the mark, naming both sizes.
    let older = dir.path().join("older");
    copy_dir(&r, &older);
    let e = ledger_node(&["import", "--data", s(&older), "--in", s(&b.older_export)]).expect_err("older import");
    assert!(
        e.contains("ROLLBACK") && e.contains(&format!("{} entries", b.size)),
        "{e}"
    );
    assert!(
        Node::try_start(&older).is_err(),
        "the node serves a log older than its mark"
    );

    // The full export restores it: checked against the mark, then served whole.
    let out = ledger_node(&["import", "--data", s(&r), "--in", s(&full)]).expect("import");
    assert!(out.contains(&format!("checkpoint of {}", b.size)), "{out}");
    assert_eq!(mark_size(&r), Some(b.size));
    assert_serves_all(&r, &b, &[]).await;

    // A directory without a mark (made before marks existed) is served only with --adopt-store,
    // which re-creates the mark from the store's latest checkpoint and says so in the log.
    let a = dir.path().join("adopt");
    copy_dir(&b.data, &a);
    std::fs::remove_file(a.join("high-water.checkpoint")).expect("rm mark");
    let e = Node::try_start(&a).err().expect("served without a mark");
    assert!(e.contains("--adopt-store"), "{e}");
    assert_serves_all(&a, &b, &["--adopt-store"]).await;
    assert_eq!(mark_size(&a), Some(b.size));
    let log = std::fs::read_to_string(a.with_extension("node.log")).expect("node log");
    assert!(
        log.contains("--adopt-store") && log.contains("no high-water mark"),
        "{log}"
    );
    assert_serves_all(&a, &b, &[]).await;
}
