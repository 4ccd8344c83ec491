//! The signed state snapshot `DATA/state.snapshot` (issue 14), through the real binary: a graceful
//! stop writes it; a restart folds only the entries above it ("state folded from snapshot at N")
//! and accepts and refuses exactly as a node that folded everything (a ticket, an escrow id and a
//! signed note used below the snapshot stay used; a draw committed below it takes its reveal and
//! gets its result). A snapshot whose state bytes, signature, origin, size or root are wrong is
//! refused by name (`STATE_SNAPSHOT_REFUSED: <reason>`), the whole log is folded instead, and the
//! node still serves the right state.

#[path = "support/mod.rs"]
mod support;

use ledger_core::hash::Hash;
use ledger_core::note::{Note, NoteSigner};
use ledger_core::seal::EscrowSecretKey;
use ledger_proto::pb;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;
use support::*;

const ORIGIN: &str = "ledger.test/snapshot";

fn escrow_key(id: &str) -> Value {
    let pk = EscrowSecretKey::from_bytes([9; 32]).public_key().expect("public key");
    json!({"version": 1, "escrow_id": id, "public_key": pk.to_base64(), "holder": "court"})
}

fn start(data: &Path) -> Node {
    Node::try_start_env(data, &[], &[("RUST_LOG", "info")]).unwrap_or_else(|e| panic!("node did not start: {e}"))
}

/// Waits (at most 10 s) until the node's log holds a line with `needle` after byte `from`; returns
/// that line.
fn log_line(data: &Path, from: usize, needle: &str) -> String {
    let log = data.with_extension("node.log");
    for _ in 0..200 {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(l) = text.get(from..).and_then(|t| t.lines().find(|l| l.contains(needle))) {
            return l.to_string();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "no log line with {needle:?}; log:\n{}",
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .get(from..)
            .unwrap_or_default()
    );
}

fn log_len(data: &Path) -> usize {
    std::fs::metadata(data.with_extension("node.log")).map_or(0, |m| m.len() as usize)
}

/// The parts of a snapshot file: header note, state bytes.
fn split(bytes: &[u8]) -> (Note, Vec<u8>) {
    let len = u32::from_be_bytes(bytes[..4].try_into().expect("len")) as usize;
    let note = Note::parse(std::str::from_utf8(&bytes[4..4 + len]).expect("utf-8")).expect("note");
    (note, bytes[4 + len..].to_vec())
}

fn join(note: &Note, state: &[u8]) -> Vec<u8> {
    let text = note.to_text();
    let mut out = (text.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(state);
    out
}

/// A snapshot with header lines `lines` (after the first) over `state`, signed by `key`.
fn signed(key: &ed25519_dalek::SigningKey, lines: [&str; 4], state: &[u8]) -> Vec<u8> {
    let text = format!("ledger-state-snapshot/1\n{}\n", lines.join("\n"));
    let s = NoteSigner::new(ORIGIN, key.clone()).expect("signer");
    let note = Note {
        signatures: vec![s.sign(&text).expect("sign")],
        text,
    };
    join(&note, state)
}

/// The checks that the state is the whole log's: what was used stays used, and a new ticket is
/// taken.
async fn state_is_right(
    node: &Node,
    admin: &ed25519_dalek::SigningKey,
    platform: &ed25519_dalek::SigningKey,
    fresh: u64,
) {
    let mut c = node.client().await;
    let e = append(&mut c, &record("escrow.key", escrow_key("court-1"), &[admin]), "")
        .await
        .expect_err("escrow id used below the snapshot");
    assert_eq!(code_of(&e), "ESCROW_DUPLICATE", "{}", e.message());
    let e = rate(&mut c, platform, 3)
        .await
        .expect_err("ticket rated below the snapshot");
    assert_eq!(code_of(&e), "MICRO_DUPLICATE_TICKET", "{}", e.message());
    let e = append(&mut c, &record("note", note_payload(77), &[admin]), "")
        .await
        .expect_err("the same signed note again");
    assert_eq!(code_of(&e), "DUPLICATE_STATEMENT", "{}", e.message());
    rate(&mut c, platform, fresh).await.expect("a new ticket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_is_used_and_every_bad_one_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, ORIGIN, &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let node_key = key(&data.join("keys/node.key"));
    let (reg, platform) = (new_key(), new_key());
    let mut node = start(&data);
    let mut c = node.client().await;
    append(&mut c, &enroll(&reg, "registrar", &["registrar"], &[&admin]), "")
        .await
        .expect("enroll registrar");
    enroll_platform(&mut c, &platform, &admin).await;
    let r = rate_batch(&mut c, &platform, 0..10).await;
    assert!(r.results.iter().all(|x| x.ok.is_some()));
    append(&mut c, &record("escrow.key", escrow_key("court-1"), &[&admin]), "")
        .await
        .expect("escrow");
    let size = append(&mut c, &record("note", note_payload(77), &[&admin]), "")
        .await
        .expect("note")
        .index;
    // A draw committed below the snapshot, revealed above it.
    let secret = b"registrar secret".to_vec();
    let commit = json!({"version": 1, "draw_id": "d-snap", "purpose": "evaluator_selection", "subjects": ["cadre-1"],
        "pool": (0..5).map(|i| json!({"id": format!("ev-{i:02}"), "stratum": "all"})).collect::<Vec<_>>(),
        "strata": [{"name": "all", "quota": 3}], "k": 3, "algorithm": "ledger-draw-v1",
        "parties": [{"name": "registrar", "keyid": ledger_core::keys::key_id(&reg.verifying_key()),
                     "commitment": Hash::digest(&secret).to_hex()}],
        "reveal_at_size": size + 10, "reveal_deadline_micros": now_micros() + 600_000_000});
    let commit_at = append(&mut c, &record("draw.commit", commit, &[&reg]), "")
        .await
        .expect("commit")
        .index;
    drop(c);
    node.stop();
    let snap = data.join("state.snapshot");
    assert!(snap.exists(), "a graceful stop writes the snapshot");
    let good = std::fs::read(&snap).expect("snapshot");
    let (note, _) = split(&good);
    let lines: Vec<String> = note.text.lines().map(String::from).collect();
    assert_eq!(lines[0], "ledger-state-snapshot/1");
    assert_eq!(lines[1], ORIGIN);
    let n: u64 = lines[2].parse().expect("size");
    assert!(n > commit_at, "the snapshot covers the commit");

    // Restart from the snapshot: the log says so, and the state is the whole log's.
    let from = log_len(&data);
    node = start(&data);
    let l = log_line(&data, from, "state folded from snapshot at");
    assert!(l.contains(&format!("state folded from snapshot at {n} ")), "{l}");
    state_is_right(&node, &admin, &platform, 100).await;
    let mut c = node.client().await;
    // Fill up to the draw's size, then reveal: the commit (below the snapshot) is known.
    for i in 0..20u64 {
        append(&mut c, &record("note", note_payload(1000 + i), &[&reg]), "")
            .await
            .expect("filler");
    }
    let reveal = json!({"version": 1, "draw_id": "d-snap", "party": "registrar", "secret": hex::encode(&secret)});
    append(&mut c, &record("draw.reveal", reveal.clone(), &[&reg]), "")
        .await
        .expect("the reveal of a draw committed below the snapshot");
    assert!(
        entries(&mut c)
            .await
            .iter()
            .any(|e| e.1 == "draw.result" && e.2["draw_id"] == "d-snap"),
        "the node appends the draw's result"
    );
    drop(c);
    node.stop();
    let good = std::fs::read(&snap).expect("snapshot");
    let (note, state) = split(&good);
    let lines: Vec<String> = note.text.lines().map(String::from).collect();
    let n: u64 = lines[2].parse().expect("size");

    // Every bad snapshot: refused by name, the whole log folded, the state right.
    let mut flipped_state = good.clone();
    let last = flipped_state.len() - 1;
    flipped_state[last] ^= 1;
    let mut bad_sig = note.clone();
    bad_sig.signatures[0].sig[0] ^= 1;
    let other = dir.path().join("other");
    init(&other, "ledger.test/other", &[], 1);
    set_origin(Some(ORIGIN));
    let mut o = start(&other);
    o.stop();
    let foreign = std::fs::read(other.join("state.snapshot")).expect("the other node's snapshot");
    let root = lines[3].clone();
    let digest = lines[4].clone();
    let beyond = signed(&node_key, [ORIGIN, &(n + 1000).to_string(), &root, &digest], &state);
    let wrong_root = signed(
        &node_key,
        [ORIGIN, &n.to_string(), &Hash::digest(b"another tree").to_hex(), &digest],
        &state,
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("hash", flipped_state),
        ("signature", join(&bad_sig, &state)),
        ("origin", foreign),
        ("beyond_store", beyond),
        ("root", wrong_root),
        ("decode", b"not a snapshot".to_vec()),
    ];
    for (i, (name, bytes)) in cases.into_iter().enumerate() {
        std::fs::write(&snap, &bytes).expect("write bad snapshot");
        let from = log_len(&data);
        node = start(&data);
        let l = log_line(&data, from, "STATE_SNAPSHOT_REFUSED");
        assert!(
            l.contains(&format!("STATE_SNAPSHOT_REFUSED: {name}:")),
            "case {name}: {l}"
        );
        log_line(&data, from, "state folded");
        state_is_right(&node, &admin, &platform, 200 + i as u64).await;
        node.stop();
        // A fresh, good snapshot replaced the bad one.
        let (fresh, _) = split(&std::fs::read(&snap).expect("fresh snapshot"));
        assert_eq!(fresh.text.lines().nth(1), Some(ORIGIN), "case {name}");
    }
    // The fresh snapshot is used again.
    let from = log_len(&data);
    node = start(&data);
    log_line(&data, from, "state folded from snapshot at");
    node.stop();
}

/// The size of the largest snapshot the node's log says it wrote.
fn largest_written(data: &Path) -> u64 {
    std::fs::read_to_string(data.with_extension("node.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("state snapshot written"))
        .filter_map(|l| l.split("size=").nth(1)?.split_whitespace().next()?.parse().ok())
        .max()
        .unwrap_or(0)
}

/// `LEDGER_SNAPSHOT_EVERY`: a snapshot is written while serving, once its size is durable, so a
/// node killed without a graceful stop still starts from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_snapshot_survives_a_crash() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, ORIGIN, &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let platform = new_key();
    let env = [("RUST_LOG", "info"), ("LEDGER_SNAPSHOT_EVERY", "5")];
    let mut node = Node::try_start_env(&data, &[], &env).expect("start");
    let mut c = node.client().await;
    enroll_platform(&mut c, &platform, &admin).await;
    for n in 0..20u64 {
        rate(&mut c, &platform, n).await.expect("micro");
    }
    let mut written = 0;
    for _ in 0..200 {
        written = largest_written(&data);
        if written >= 10 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        written >= 10,
        "a snapshot was written while serving (largest: {written})"
    );
    drop(c);
    node.kill9();
    let from = log_len(&data);
    node = Node::try_start_env(&data, &[], &env).expect("restart");
    let l = log_line(&data, from, "state folded from snapshot at");
    let n: u64 = l
        .split("state folded from snapshot at ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .expect("size in the log line");
    assert!(n >= written, "{l}");
    let mut c = node.client().await;
    let e = rate(&mut c, &platform, 4)
        .await
        .expect_err("ticket rated before the crash");
    assert_eq!(code_of(&e), "MICRO_DUPLICATE_TICKET", "{}", e.message());
    rate(&mut c, &platform, 50).await.expect("a new ticket");
    drop(c);
    node.stop();
}

/// Node key rotation: the snapshot is signed by the node key in force at its size. After a
/// `node.rotate`, a snapshot from before it (the old key's, the old key in force at its size) is
/// still a true state and is used; the same snapshot re-signed by the new key is refused
/// (`signature`: not the log's node key at N), and with only the old key configured the node
/// refuses to start as before, naming the rotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_across_a_node_key_rotation() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, ORIGIN, &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let new = new_key();
    let next_file = dir.path().join("next-node.key");
    ledger_client::keyfile::write_signing_key(&next_file, &new).expect("write next key");
    let next = ["--next-node-key", next_file.to_str().expect("utf-8 path")];
    let info = [("RUST_LOG", "info")];
    let mut node = Node::try_start_env(&data, &next, &info).expect("start");
    let mut c = node.client().await;
    append(&mut c, &record("note", note_payload(1), &[&admin]), "")
        .await
        .expect("note");
    drop(c);
    node.stop();
    let snap = data.join("state.snapshot");
    let before = std::fs::read(&snap).expect("snapshot before the rotation");

    node = Node::try_start_env(&data, &next, &info).expect("start");
    let mut c = node.client().await;
    let rotation = record(
        "node.rotate",
        json!({"version": 1, "new_key": ledger_core::keys::public_key_to_base64(&new.verifying_key()), "reason": "test"}),
        &[&admin],
    );
    append(&mut c, &rotation, "").await.expect("rotation");
    append(&mut c, &record("note", note_payload(2), &[&admin]), "")
        .await
        .expect("note after the rotation");
    drop(c);
    node.stop();

    // The snapshot after the rotation (the new key's) is used.
    let from = log_len(&data);
    node = Node::try_start_env(&data, &next, &info).expect("restart");
    log_line(&data, from, "state folded from snapshot at");
    node.stop();
    // The one from before it (the old key's, in force at its size) too.
    std::fs::write(&snap, &before).expect("write");
    let (note, state) = split(&before);
    let n: u64 = note.text.lines().nth(2).and_then(|l| l.parse().ok()).expect("size");
    let from = log_len(&data);
    node = Node::try_start_env(&data, &next, &info).expect("restart");
    let l = log_line(&data, from, "state folded from snapshot at");
    assert!(l.contains(&format!("state folded from snapshot at {n} ")), "{l}");
    let mut c = node.client().await;
    let r = c
        .append(req(&record("note", note_payload(3), &[&admin]), "", true))
        .await
        .expect("the node serves")
        .into_inner();
    // The rotation above the snapshot was folded: the node signs with the new key.
    let cp_note = c
        .get_checkpoint(pb::GetCheckpointRequest { size: None })
        .await
        .expect("checkpoint")
        .into_inner()
        .note;
    let new_v = ledger_core::note::NoteVerifier::new(ORIGIN, new.verifying_key()).expect("verifier");
    let cp = ledger_core::checkpoint::open_checkpoint(&cp_note, &new_v).expect("signed by the new node key");
    assert!(cp.checkpoint.size > r.index, "the checkpoint covers the append");
    drop(c);
    node.stop();
    // Re-signed by the new key: not the node key at its size.
    let lines: Vec<&str> = note.text.lines().skip(1).collect();
    std::fs::write(&snap, signed(&new, [lines[0], lines[1], lines[2], lines[3]], &state)).expect("write");
    let from = log_len(&data);
    node = Node::try_start_env(&data, &next, &info).expect("restart");
    let l = log_line(&data, from, "STATE_SNAPSHOT_REFUSED");
    assert!(l.contains("STATE_SNAPSHOT_REFUSED: signature:"), "{l}");
    assert!(l.contains("not the log's node key"), "{l}");
    node.stop();
    // Only the old key configured: refused to start, naming the rotation, as without a snapshot.
    let err = Node::try_start_env(&data, &[], &info)
        .err()
        .expect("refused with only the old key");
    assert!(err.contains("rotated at index"), "{err}");
}
