//! Issue 18 item 4: verified online backups and the restore drill of docs/operations.md
//! ("Backups and the restore drill"), run end to end with the real binaries: a backup taken while
//! a client appends, the data directory wiped, restored, the node started on it, appends
//! continued, and `ledger-verify replay` clean; plus the refusals: a backup file with one flipped
//! byte (named), a manifest that does not match the log, and a backup older than the checkpoint
//! the witnesses last cosigned (ROLLBACK naming both sizes, at restore, at serve and at backup); and
//! a backup with a real witness: restored against the witness's own state, the witness keeps cosigning.

mod support;

use ledger_core::cosignature::CosignatureVerifier;
use ledger_core::hash::leaf_hash;
use ledger_proto::pb;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use support::*;

const ORIGIN: &str = "ledger.test/backup";

fn run(args: &[&str], paths: &[(&str, &Path)]) -> Output {
    let mut c = Command::new(bin("ledger-node"));
    c.args(args);
    for (flag, p) in paths {
        c.arg(flag).arg(p);
    }
    c.output().expect("run ledger-node")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn backup(data: &Path, out: &Path) -> Output {
    run(&["backup"], &[("--data", data), ("--out", out)])
}

fn restore(from: &Path, data: &Path, witnessed: Option<&Path>) -> Output {
    let mut p = vec![("--from", from), ("--data", data)];
    if let Some(w) = witnessed {
        p.push(("--witnessed", w));
    }
    run(&["restore"], &p)
}

fn manifest(bk: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(bk.join("manifest.json")).expect("manifest")).expect("manifest json")
}

/// Puts the node key from "key custody" (a copy taken before the wipe) into a data directory.
fn install_key(data: &Path, key: &[u8]) {
    let p = data.join("keys/node.key");
    std::fs::create_dir_all(p.parent().expect("keys dir")).expect("mkdir keys");
    std::fs::write(&p, key).expect("write key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
}

/// `ledger-verify replay --data DIR --json`: (ok, final size).
fn replay(dir: &Path, json: &Path) -> (bool, u64, String) {
    let out = Command::new(bin("ledger-verify"))
        .args(["replay", "--threads", "1", "--data"])
        .arg(dir)
        .arg("--json")
        .arg(json)
        .output()
        .expect("run ledger-verify");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(json).expect("replay json")).expect("json");
    (
        out.status.success() && v["ok"] == true,
        v["final"]["size"].as_u64().unwrap_or(0),
        text(&out),
    )
}

/// A small ledger: init, a registrar, `n` notes (every fifth waits for a checkpoint).
async fn small_ledger(data: &Path, n: u64) -> (Node, ed25519_dalek::SigningKey) {
    init(data, ORIGIN, &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let reg = new_key();
    let node = Node::start(data);
    let mut c = node.client().await;
    append(&mut c, &enroll(&reg, "r", &["registrar"], &[&admin]), "")
        .await
        .expect("enroll");
    for i in 0..n {
        let env = record("note", note_payload(i), &[&reg]);
        c.append(req(&env, &format!("n-{i}"), i % 5 == 4))
            .await
            .expect("append");
    }
    (node, reg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_drill_backup_under_load_wipe_restore_continue_replay_clean() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    let bk = dir.path().join("backup");
    let (mut node, reg) = small_ledger(&data, 20).await;

    // A client appends without pause while the backup runs.
    let acked = Arc::new(std::sync::Mutex::new(BTreeMap::<u64, Vec<u8>>::new()));
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (acked, count, stop, reg) = (acked.clone(), count.clone(), stop.clone(), reg.clone());
        let mut c = node.client().await;
        tokio::spawn(async move {
            for i in 0..20_000u64 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let env = record_in(Some(ORIGIN), "note", note_payload(1000 + i), &[&reg]);
                let r = append(&mut c, &env, &format!("load-{i}"))
                    .await
                    .expect("append under load");
                acked.lock().expect("lock").insert(r.index, r.leaf_hash);
                count.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    while count.load(Ordering::SeqCst) < 5 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let out = {
        let (d, b) = (data.clone(), bk.clone());
        tokio::task::spawn_blocking(move || backup(&d, &b)).await.expect("join")
    };
    assert!(out.status.success(), "backup failed: {}", text(&out));
    assert!(
        text(&out).contains("verified against the high-water mark"),
        "{}",
        text(&out)
    );
    // The client keeps appending after the backup's snapshot, then stops.
    let after = count.load(Ordering::SeqCst);
    for _ in 0..2000 {
        if count.load(Ordering::SeqCst) >= after + 5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::SeqCst);
    load.await.expect("load task");
    let acked_size = acked.lock().expect("lock").keys().max().map_or(0, |i| i + 1);
    node.stop();

    let m = manifest(&bk);
    let size = m["size"].as_u64().expect("size");
    let mark = m["high_water"]["size"]
        .as_u64()
        .expect("the backup names the high-water mark");
    assert!(mark <= size && size > 21, "manifest: {m}");
    assert!(
        size < acked_size,
        "the client appended after the snapshot ({size} < {acked_size})"
    );
    assert!(m["witnessed"].is_null(), "no witnesses here: {m}");
    let files: Vec<&str> = m["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["path"].as_str().expect("path"))
        .collect();
    for f in ["ledger.export", "high-water.checkpoint", "keys/node.vkey"] {
        assert!(files.contains(&f), "{f} missing from {files:?}");
    }
    assert!(
        !bk.join("keys/node.key").exists(),
        "the secret node key is never in a backup"
    );
    assert!(m["not_included"].to_string().contains("keys/node.key"), "{m}");
    assert!(!bk.join(".verify").exists(), "the scratch store is removed");

    // Wipe, restore, put the key back from custody, serve.
    let node_key = std::fs::read(data.join("keys/node.key")).expect("key custody");
    std::fs::remove_dir_all(&data).expect("wipe");
    let out = restore(&bk, &data, None);
    assert!(out.status.success(), "restore failed: {}", text(&out));
    assert!(text(&out).contains("NOT restored: keys/node.key"), "{}", text(&out));
    assert!(data.join("high-water.checkpoint").exists() && data.join("keys/node.vkey").exists());
    install_key(&data, &node_key);
    let mut node = Node::start(&data);
    let mut c = node.client().await;
    let cp = c
        .get_checkpoint(pb::GetCheckpointRequest { size: None })
        .await
        .expect("checkpoint")
        .into_inner();
    assert!(
        cp.size <= size,
        "the restored node's latest checkpoint is within the backup"
    );
    c.get_entry(pb::GetEntryRequest { index: size - 1 })
        .await
        .expect("the backup's last entry is served");
    let acked = acked.lock().expect("lock").clone();
    let mut compared = 0;
    for (i, h) in acked.range(..size) {
        let e = c
            .get_entry(pb::GetEntryRequest { index: *i })
            .await
            .expect("entry")
            .into_inner();
        assert_eq!(&leaf_hash(&e.leaf).0.to_vec(), h, "entry {i} differs after restore");
        compared += 1;
    }
    assert!(compared >= 5, "entries appended under load are in the backup");
    // Appends continue where the backup ends.
    for i in 0..10u64 {
        let env = record("note", note_payload(5000 + i), &[&reg]);
        let r = c
            .append(req(&env, &format!("after-{i}"), i == 9))
            .await
            .expect("append after restore")
            .into_inner();
        assert_eq!(r.index, size + i, "appends continue at the backup's size");
    }
    node.stop();
    let (ok, final_size, report) = replay(&data, &dir.path().join("replay.json"));
    assert!(ok, "replay after restore: {report}");
    assert_eq!(final_size, size + 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_backup_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    let bk = dir.path().join("backup");
    let (mut node, _) = small_ledger(&data, 10).await;
    node.stop();
    let out = backup(&data, &bk);
    assert!(out.status.success(), "backup: {}", text(&out));
    // Into a non-empty directory: refused.
    let again = backup(&data, &bk);
    assert!(
        !again.status.success() && text(&again).contains("not empty"),
        "{}",
        text(&again)
    );

    let copy_backup = |name: &str| -> PathBuf {
        let d = dir.path().join(name);
        copy_dir(&bk, &d);
        d
    };
    for file in ["ledger.export", "high-water.checkpoint", "keys/node.vkey"] {
        let b = copy_backup(&format!("flip-{}", file.replace('/', "-")));
        let p = b.join(file);
        let mut bytes = std::fs::read(&p).expect("read");
        let at = bytes.len() / 2;
        bytes[at] ^= 0x01;
        std::fs::write(&p, bytes).expect("write");
        let target = dir.path().join(format!("r-{}", file.replace('/', "-")));
        let out = restore(&b, &target, None);
        let t = text(&out);
        assert!(!out.status.success(), "{file}: a flipped byte was restored");
        assert!(
            t.contains(&format!("backup file {file} is damaged or altered")),
            "{file}: the refusal does not name the file: {t}"
        );
        assert!(!target.join("store").exists(), "{file}: nothing restored");
    }
    // A manifest that names another log (its root edited) is refused after the import, and the
    // half-made store is removed again.
    let b = copy_backup("edited-manifest");
    let mut m = manifest(&b);
    m["root"] = serde_json::Value::String("00".repeat(32));
    std::fs::write(b.join("manifest.json"), serde_json::to_vec(&m).expect("json")).expect("write");
    let target = dir.path().join("r-manifest");
    let out = restore(&b, &target, None);
    assert!(!out.status.success(), "an edited manifest was restored");
    assert!(text(&out).contains("the manifest says"), "{}", text(&out));
    assert!(!target.join("store").exists(), "the refused store is removed");
    // Another node key with a manifest made to match: refused, naming both keys.
    let b = copy_backup("other-vkey");
    let other = ledger_core::note::NoteVerifier::new(ORIGIN, new_key().verifying_key())
        .expect("vkey")
        .to_string_key()
        + "\n";
    std::fs::write(b.join("keys/node.vkey"), &other).expect("write");
    let mut m = manifest(&b);
    for f in m["files"].as_array_mut().expect("files") {
        if f["path"] == "keys/node.vkey" {
            f["bytes"] = serde_json::json!(other.len());
            f["sha256"] = serde_json::json!(ledger_core::hash::Hash::digest(other.as_bytes()).to_hex());
        }
    }
    std::fs::write(b.join("manifest.json"), serde_json::to_vec(&m).expect("json")).expect("write");
    let target = dir.path().join("r-vkey");
    let out = restore(&b, &target, None);
    assert!(
        !out.status.success() && text(&out).contains("but the charter's node key is"),
        "{}",
        text(&out)
    );
    assert!(!target.join("store").exists(), "the refused store is removed");
    // The pristine backup restores; a second restore into the same directory is refused.
    let target = dir.path().join("r-ok");
    assert!(restore(&bk, &target, None).status.success());
    let out = restore(&bk, &target, None);
    assert!(
        !out.status.success() && text(&out).contains("already holds a store"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_older_than_the_witnessed_checkpoint_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    let bk = dir.path().join("backup");
    let (mut node, reg) = small_ledger(&data, 10).await;
    let mut c = node.client().await;
    let older = c
        .get_checkpoint(pb::GetCheckpointRequest { size: None })
        .await
        .expect("checkpoint")
        .into_inner();
    let out = backup(&data, &bk);
    assert!(out.status.success(), "backup: {}", text(&out));
    let size = manifest(&bk)["size"].as_u64().expect("size");
    // The log grows and the witnesses cosign a later checkpoint than the backup holds.
    let mut newer = String::new();
    for i in 0..5u64 {
        let env = record("note", note_payload(100 + i), &[&reg]);
        newer = c
            .append(req(&env, &format!("late-{i}"), i == 4))
            .await
            .expect("append")
            .into_inner()
            .checkpoint;
    }
    let node_key = std::fs::read(data.join("keys/node.key")).expect("key custody");
    node.stop();
    let newer_size = size + 5;
    let w = dir.path().join("witnessed.note");
    std::fs::write(&w, &newer).expect("write");

    let target = dir.path().join("r");
    let out = restore(&bk, &target, Some(&w));
    let t = text(&out);
    assert!(
        !out.status.success(),
        "a backup older than the witnessed checkpoint was restored"
    );
    assert!(
        t.contains("ROLLBACK")
            && t.contains(&format!("holds {size} entries"))
            && t.contains(&format!("checkpoint of {newer_size} entries")),
        "the refusal names both sizes: {t}"
    );
    assert!(!target.join("store").exists(), "nothing restored");

    // An older witnessed checkpoint is held by the backup: restored, and recorded as the mark.
    let w_old = dir.path().join("older.note");
    std::fs::write(&w_old, &older.note).expect("write");
    let out = restore(&bk, &target, Some(&w_old));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(target.join("high-water.witnessed")).expect("witnessed mark"),
        older.note
    );

    // serve refuses too: the restored node must not start below what the witnesses cosigned.
    let target = dir.path().join("r2");
    assert!(restore(&bk, &target, None).status.success());
    install_key(&target, &node_key);
    std::fs::write(target.join("high-water.witnessed"), &newer).expect("write");
    let err = Node::try_start(&target).err().expect("serve refuses");
    assert!(
        err.contains("ROLLBACK")
            && err.contains(&format!("holds {size} entries"))
            && err.contains(&format!("{newer_size} entries")),
        "serve names both sizes: {err}"
    );
    // backup refuses it as well, and leaves no half backup behind.
    let out2 = dir.path().join("backup2");
    let out = backup(&target, &out2);
    assert!(
        !out.status.success() && text(&out).contains("ROLLBACK"),
        "backup of a store below its witnessed mark: {}",
        text(&out)
    );
    assert!(!out2.join("manifest.json").exists() && !out2.join("ledger.export").exists());
}

/// Kills the process when dropped (also when a test fails).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `ledger-node witness` process: (process, address, its cosignature key).
fn start_witness(wdir: &Path, log_vkey: &Path) -> (Killed, String, CosignatureVerifier) {
    use std::io::BufRead;
    let mut child = Killed(
        Command::new(bin("ledger-node"))
            .args([
                "witness",
                "--listen",
                "127.0.0.1:0",
                "--name",
                "witness.test/w1",
                "--data",
            ])
            .arg(wdir)
            .arg("--log-key")
            .arg(log_vkey)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn witness"),
    );
    let mut lines = std::io::BufReader::new(child.0.stdout.take().expect("stdout")).lines();
    let mut key = None;
    for line in lines.by_ref() {
        let line = line.unwrap_or_default();
        if let Some(k) = line.strip_prefix("witness key ") {
            key = Some(CosignatureVerifier::parse(k).expect("witness key"));
        }
        if let Some(a) = line.strip_prefix("listening on ") {
            let addr = format!("http://{a}");
            std::thread::spawn(move || for _ in lines {});
            return (child, addr, key.expect("the witness prints its key"));
        }
    }
    panic!("the witness did not start");
}

/// The witness's saved state for the one log it watches (`WDIR/state/*.checkpoint`).
fn witness_state(wdir: &Path) -> PathBuf {
    std::fs::read_dir(wdir.join("state"))
        .expect("witness state")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|x| x == "checkpoint"))
        .expect("a cosigned checkpoint in the witness state")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn witnessed_backup_restores_and_the_witness_keeps_cosigning() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    let wdir = dir.path().join("w");
    let bk = dir.path().join("backup");
    set_origin(Some(ORIGIN));
    let out = run(
        &["init", "--origin", ORIGIN, "--witness-quorum", "1"],
        &[("--data", &data)],
    );
    assert!(out.status.success(), "{}", text(&out));
    let (_witness, waddr, wkey) = start_witness(&wdir, &data.join("keys/node.vkey"));
    let witness_arg = format!("{waddr}={}", wkey.to_string_key());
    let serve_witnessed = |d: &Path| Node::try_start_with(d, &["--witness", &witness_arg]).expect("node starts");
    let mut node = serve_witnessed(&data);
    let mut c = node.client().await;
    let admin = key(&data.join("keys/admin.key"));
    let enroll_w = record(
        "key.enroll",
        serde_json::json!({
            "version": 1, "name": wkey.name,
            "key": ledger_core::keys::public_key_to_base64(wkey.ed25519_key().expect("an Ed25519 witness key")),
            "roles": ["witness"], "scope": {"organization": "court", "kinds": []}
        }),
        &[&admin],
    );
    append(&mut c, &enroll_w, "w").await.expect("enroll witness");
    let reg = new_key();
    append(&mut c, &enroll(&reg, "r", &["registrar"], &[&admin]), "r")
        .await
        .expect("enroll registrar");
    for i in 0..4u64 {
        let env = record("note", note_payload(i), &[&reg]);
        c.append(req(&env, &format!("a-{i}"), i == 3))
            .await
            .expect("witnessed append");
    }
    node.stop();
    let out = backup(&data, &bk);
    assert!(out.status.success(), "{}", text(&out));
    let m = manifest(&bk);
    let witnessed = m["witnessed"]["size"]
        .as_u64()
        .expect("the backup names the witnessed checkpoint");
    assert!(witnessed >= 6, "{m}");
    let size = m["size"].as_u64().expect("size");

    // Wipe and restore against the witness's own latest cosigned checkpoint.
    let node_key = std::fs::read(data.join("keys/node.key")).expect("key custody");
    std::fs::remove_dir_all(&data).expect("wipe");
    let out = restore(&bk, &data, Some(&witness_state(&wdir)));
    assert!(
        out.status.success(),
        "restore against the witness state: {}",
        text(&out)
    );
    install_key(&data, &node_key);
    let mut node = serve_witnessed(&data);
    let mut c = node.client().await;
    let env = record("note", note_payload(10), &[&reg]);
    let r = c
        .append(req(&env, "after", true))
        .await
        .expect("the witness cosigns the restored node's checkpoints")
        .into_inner();
    assert_eq!(r.index, size);
    let log = ledger_core::note::NoteVerifier::parse(
        std::fs::read_to_string(data.join("keys/node.vkey"))
            .expect("vkey")
            .trim(),
    )
    .expect("vkey");
    let cp = ledger_core::checkpoint::open_checkpoint(&r.checkpoint, &log).expect("checkpoint");
    assert_eq!(
        cp.note
            .verify_cosignatures(std::slice::from_ref(&wkey))
            .expect("cosignatures")
            .len(),
        1
    );
    node.stop();

    // The witness now holds a newer checkpoint than the backup: restoring the backup is refused.
    let target = dir.path().join("r-old");
    let out = restore(&bk, &target, Some(&witness_state(&wdir)));
    let t = text(&out);
    assert!(
        !out.status.success() && t.contains("ROLLBACK") && t.contains(&format!("holds {size} entries")),
        "{t}"
    );
}
