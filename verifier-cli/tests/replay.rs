//! `ledger-verify replay` on logs built in the real store and export formats, clean and tampered.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use common::{Frame, Log, export_store, flip_sig, key, s, verify, verify_raw, write_export};
use ledger_core::hash::Hash;
use ledger_core::registry::Role;
use tempfile::TempDir;

/// Charter, registrar, 20 notes, checkpoints at 0, 5, 12 and the end.
fn clean_log() -> Log {
    let mut log = Log::new();
    log.checkpoints
        .push((0, log.checkpoint_note(0, ledger_core::hash::empty_root())));
    log.notes(3);
    log.checkpoint();
    log.notes(7);
    log.checkpoint();
    log.notes(10);
    log.checkpoint();
    log
}

#[test]
fn clean_log_verifies_from_data_and_export() {
    let dir = TempDir::new().unwrap();
    let log = clean_log();
    let data = dir.path().join("data");
    let store = log.write_store(&data);
    let exp = dir.path().join("log.export");
    export_store(&store, &exp);
    drop(store);
    for args in [
        vec!["replay", "--data", s(&data)],
        vec!["replay", "--export", s(&exp)],
        vec!["replay", "--export", s(&exp), "--threads", "1"],
        vec!["replay", "--export", s(&exp), "--strict-signatures", "--window", "3"],
        vec!["replay", "--data", s(&data), "--trusted-key", &log.trusted_key()],
        vec!["replay", "--export", s(&exp), "--origin", common::ORIGIN],
    ] {
        let r = verify(dir.path(), &args);
        assert_eq!(r.code, 0, "{args:?}\n{r:?}");
        let j = r.json.as_ref().unwrap();
        assert_eq!(j["ok"], true);
        assert_eq!(j["entries"], log.size());
        assert_eq!(j["final"]["size"], log.size());
        assert_eq!(j["final"]["root"], log.tree.root().to_hex());
        assert_eq!(j["checkpoints_checked"], 4);
        assert_eq!(j["counts_by_kind"]["note"], 20);
        assert_eq!(j["counts_by_kind"]["key.enroll"], 1);
        assert_eq!(j["faults"].as_array().unwrap().len(), 0);
        assert!(r.stdout.contains("result:       OK"), "{r:?}");
    }
    let r = verify(dir.path(), &["replay", "--export", s(&exp)]);
    assert!(r.stdout.contains("trust: "), "{r:?}");
    assert!(
        r.stdout.contains("charter in entry 0 (no --trusted-key given)"),
        "{r:?}"
    );
    assert!(
        r.stderr.is_empty(),
        "no progress bar when stderr is not a terminal: {r:?}"
    );
}

#[test]
fn untrusted_charter_and_wrong_origin() {
    let dir = TempDir::new().unwrap();
    let log = clean_log();
    let exp = dir.path().join("log.export");
    write_export(&exp, &log.frames());
    let other = ledger_core::note::NoteSigner::new(common::ORIGIN, key(9)).unwrap();
    let k = other.verifier().to_string_key();
    let r = verify(dir.path(), &["replay", "--export", s(&exp), "--trusted-key", &k]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.has("UNTRUSTED_CHARTER", Some(0)), "{r:?}");
    // Checkpoints are checked against the trusted key, so they fail too.
    assert!(r.has("CHECKPOINT_BAD_SIGNATURE", None), "{r:?}");
    let r = verify(
        dir.path(),
        &["replay", "--export", s(&exp), "--origin", "elsewhere/log"],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.has("UNTRUSTED_CHARTER", Some(0)), "{r:?}");
}

#[test]
fn bad_signature_rewritten_in_the_store() {
    let dir = TempDir::new().unwrap();
    let mut log = clean_log();
    // Flip a signature byte of entry 7 and re-store it: the leaf hash and nodes are recomputed, but
    // later entries still link to the original, and checkpoints were signed over it.
    let mut e = ledger_core::entry::Entry::decode(&log.entries[7]).unwrap();
    flip_sig(&mut e);
    log.entries[7] = e.encode();
    let data = dir.path().join("data");
    drop(log.write_store(&data));
    let r = verify(dir.path(), &["replay", "--data", s(&data)]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.has("BAD_SIGNATURE", Some(7)), "{r:?}");
    assert!(r.has("CHAIN_BROKEN", Some(8)), "{r:?}");
    assert!(r.has("CHECKPOINT_ROOT_MISMATCH", Some(12)), "{r:?}");
    assert!(r.stdout.contains("BAD_SIGNATURE"), "{r:?}");
}

#[test]
fn bad_signature_sequenced_by_a_dishonest_node() {
    // The forged entry is in the chain and under signed checkpoints: only the signature betrays it.
    let dir = TempDir::new().unwrap();
    let mut log = clean_log();
    let env = log.note_env(&log.registrar.clone());
    let bad = log.push_with(env, flip_sig);
    log.notes(2);
    log.checkpoint();
    let exp = dir.path().join("log.export");
    write_export(&exp, &log.frames());
    let r = verify(dir.path(), &["replay", "--export", s(&exp)]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.codes(), vec![format!("BAD_SIGNATURE@{bad}")], "{r:?}");
    assert!(r.stdout.contains(&format!("[{bad}] BAD_SIGNATURE")), "{r:?}");
}

#[test]
fn chain_broken() {
    let dir = TempDir::new().unwrap();
    let mut log = clean_log();
    let env = log.note_env(&log.registrar.clone());
    let at = log.push_with(env, |e| e.prev_root = Hash::digest(b"forged"));
    log.notes(3);
    log.checkpoint();
    let exp = dir.path().join("log.export");
    write_export(&exp, &log.frames());
    let r = verify(dir.path(), &["replay", "--export", s(&exp)]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.codes(), vec![format!("CHAIN_BROKEN@{at}")], "{r:?}");
    let f = &r.json.as_ref().unwrap()["faults"][0];
    assert_eq!(f["found"], Hash::digest(b"forged").to_hex());
}

#[test]
fn missing_entry_in_export_and_store() {
    let dir = TempDir::new().unwrap();
    let log = clean_log();
    let mut frames = log.frames();
    let pos = frames
        .iter()
        .position(|f| matches!(f, Frame::E(b) if ledger_core::entry::Entry::decode(b).unwrap().index == 9))
        .unwrap();
    frames.remove(pos);
    let exp = dir.path().join("log.export");
    write_export(&exp, &frames);
    let r = verify(dir.path(), &["replay", "--export", s(&exp)]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.has("MISSING_ENTRY", Some(9)), "{r:?}");
    assert!(!r.has("CHAIN_BROKEN", None), "no cascade after the gap: {r:?}");
    assert_eq!(r.json.as_ref().unwrap()["final"]["complete"], false);

    let data = dir.path().join("data");
    let store = log.write_store(&data);
    // The log is shorter than a bundle: its entries are in the tail chunks (store layout 2).
    let mut tail = ledger_store::layout::raw::read_tail(store.raw_tree());
    assert!(tail.remove(&4).is_some());
    ledger_store::layout::raw::write_tail(store.raw_tree(), &tail);
    store.flush().unwrap();
    drop(store);
    let r = verify(dir.path(), &["replay", "--data", s(&data)]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.has("MISSING_ENTRY", Some(4)), "{r:?}");
}

#[test]
fn stored_leaf_hash_mismatch() {
    let dir = TempDir::new().unwrap();
    let log = clean_log();
    let data = dir.path().join("data");
    let store = log.write_store(&data);
    let mut tail = ledger_store::layout::raw::read_tail(store.raw_tree());
    tail.insert(6, (Hash::digest(b"wrong"), log.entries[6].clone()));
    ledger_store::layout::raw::write_tail(store.raw_tree(), &tail);
    store.flush().unwrap();
    drop(store);
    let r = verify(dir.path(), &["replay", "--data", s(&data)]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.codes(), vec!["LEAF_HASH_MISMATCH@6".to_string()], "{r:?}");
}

#[test]
fn forged_checkpoint_signatures() {
    let dir = TempDir::new().unwrap();
    let log = clean_log();
    let size = log.size();
    let root = log.tree.root();
    // Signed by another key under the node's name.
    let impostor = ledger_core::note::NoteSigner::new(common::ORIGIN, key(42)).unwrap();
    let forged = ledger_core::checkpoint::Checkpoint {
        origin: common::ORIGIN.into(),
        size,
        root,
        extensions: vec![],
    }
    .sign(&impostor)
    .unwrap()
    .to_text();
    let mut frames = log.frames();
    frames.push(Frame::C(forged));
    let exp = dir.path().join("log.export");
    write_export(&exp, &frames);
    let r = verify(dir.path(), &["replay", "--export", s(&exp)]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.has("CHECKPOINT_BAD_SIGNATURE", Some(size)), "{r:?}");

    // A flipped bit in the node's own signature, stored in the data directory.
    let good = log.checkpoint_note(size, root);
    let mut note = ledger_core::note::Note::parse(&good).unwrap();
    note.signatures[0].sig[3] ^= 0x40;
    let data = dir.path().join("data");
    let store = log.write_store(&data);
    store.put_checkpoint(size, &note.to_text()).unwrap();
    drop(store);
    let r = verify(dir.path(), &["replay", "--data", s(&data)]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.has("CHECKPOINT_BAD_SIGNATURE", Some(size)), "{r:?}");
}

#[test]
fn unauthorized_signers() {
    let dir = TempDir::new().unwrap();
    let mut log = clean_log();
    let outsider = key(77);
    let a = log.note(&outsider); // never enrolled
    let inspector = key(78);
    log.enroll(&inspector, Role::Witness); // a role that may not sign notes
    let b = log.note(&inspector);
    let c = log.revoke(&log.registrar.clone());
    let d = log.note(&log.registrar.clone()); // revoked at c
    log.notes(0);
    log.checkpoint();
    let exp = dir.path().join("log.export");
    write_export(&exp, &log.frames());
    let r = verify(dir.path(), &["replay", "--export", s(&exp)]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.codes(),
        vec![
            format!("UNAUTHORIZED_SIGNER@{a}"),
            format!("UNAUTHORIZED_SIGNER@{b}"),
            format!("UNAUTHORIZED_SIGNER@{d}"),
        ],
        "{r:?}"
    );
    assert!(c < d);
}

#[test]
fn order_time_format_and_checkpoint_faults() {
    let dir = TempDir::new().unwrap();
    let mut log = clean_log();
    let env = log.note_env(&log.registrar.clone());
    let back = log.push_with(env, |e| e.timestamp_micros = common::T0);
    log.notes(2);
    log.checkpoint();
    let mut frames = log.frames();
    // Entry 5 twice.
    let dup = frames
        .iter()
        .position(|f| matches!(f, Frame::E(b) if ledger_core::entry::Entry::decode(b).unwrap().index == 5))
        .unwrap();
    frames.insert(dup + 1, frames[dup].clone());
    // A checkpoint over a wrong root, and one beyond the end of the log.
    frames.push(Frame::C(log.checkpoint_note(log.size(), Hash::digest(b"x"))));
    frames.push(Frame::C(log.checkpoint_note(log.size() + 5, Hash::digest(b"y"))));
    let exp = dir.path().join("log.export");
    write_export(&exp, &frames);
    let r = verify(dir.path(), &["replay", "--export", s(&exp)]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.has("REORDERED", Some(5)), "{r:?}");
    assert!(r.has("TIME_REGRESSION", Some(back)), "{r:?}");
    assert!(r.has("CHECKPOINT_ROOT_MISMATCH", Some(log.size())), "{r:?}");
    assert!(r.has("MISSING_ENTRY", Some(log.size())), "{r:?}");
    assert_eq!(r.json.as_ref().unwrap()["final"]["root"], log.tree.root().to_hex());

    // Garbage in place of an entry: malformed, hashed anyway, so the next link breaks.
    let mut frames = log.frames();
    let pos = frames.iter().position(|f| matches!(f, Frame::E(_))).unwrap() + 3;
    frames[pos] = Frame::E(b"\x01garbage".to_vec());
    write_export(&exp, &frames);
    let r = verify(dir.path(), &["replay", "--export", s(&exp)]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.has("MALFORMED_ENTRY", Some(3)), "{r:?}");
    assert!(r.has("CHAIN_BROKEN", Some(4)), "{r:?}");
}

#[test]
fn bad_charter() {
    let dir = TempDir::new().unwrap();
    let log = clean_log();
    let mut frames = log.frames();
    let mut e = ledger_core::entry::Entry::decode(&log.entries[0]).unwrap();
    e.envelope.signatures.pop(); // the admin's signature
    let pos = frames.iter().position(|f| matches!(f, Frame::E(_))).unwrap();
    frames[pos] = Frame::E(e.encode());
    let exp = dir.path().join("log.export");
    write_export(&exp, &frames);
    let r = verify(dir.path(), &["replay", "--export", s(&exp)]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.has("BAD_CHARTER", Some(0)), "{r:?}");
}

#[test]
fn many_windows_with_keys_enrolled_midway() {
    // Exercises the threaded pipeline: keys enrolled and used within and across windows, a bad
    // signature deep in the log, and checkpoints along the way.
    let dir = TempDir::new().unwrap();
    let mut log = clean_log();
    let mut signers = vec![log.registrar.clone()];
    let mut bad = Vec::new();
    for round in 0..12u8 {
        let k = key(100 + round);
        log.enroll(&k, Role::Registrar);
        signers.push(k);
        for i in 0..150u64 {
            let sk = signers[(i as usize) % signers.len()].clone();
            if round == 7 && i == 33 {
                let env = log.note_env(&sk);
                bad.push(log.push_with(env, flip_sig));
            } else {
                log.note(&sk);
            }
        }
        log.checkpoint();
    }
    let exp = dir.path().join("log.export");
    write_export(&exp, &log.frames());
    for threads in ["1", "2", "3"] {
        for window in ["64", "1024"] {
            let r = verify(
                dir.path(),
                &["replay", "--export", s(&exp), "--threads", threads, "--window", window],
            );
            assert_eq!(r.code, 1, "{r:?}");
            assert_eq!(r.codes(), vec![format!("BAD_SIGNATURE@{}", bad[0])], "{r:?}");
            let j = r.json.as_ref().unwrap();
            assert_eq!(j["entries"], log.size());
            assert_eq!(j["checkpoints_checked"], 4 + 12);
        }
    }
}

#[test]
fn usage_and_io_errors_exit_2() {
    let dir = TempDir::new().unwrap();
    let r = verify_raw(&["replay"]);
    assert_eq!(r.code, 2, "{r:?}");
    let r = verify_raw(&["replay", "--export", "/nonexistent/file"]);
    assert_eq!(r.code, 2, "{r:?}");
    let junk = dir.path().join("junk");
    std::fs::write(&junk, b"not an export at all").unwrap();
    let r = verify_raw(&["replay", "--export", s(&junk)]);
    assert_eq!(r.code, 2, "{r:?}");
    let r = verify_raw(&["replay", "--data", s(dir.path())]);
    assert_eq!(r.code, 2, "{r:?}");
    let r = verify_raw(&["replay", "--export", s(&junk), "--trusted-key", "nonsense"]);
    assert_eq!(r.code, 2, "{r:?}");
    // A truncated stream (no end marker).
    let log = clean_log();
    let exp = dir.path().join("log.export");
    write_export(&exp, &log.frames());
    let b = std::fs::read(&exp).unwrap();
    std::fs::write(&exp, &b[..b.len() - 5]).unwrap();
    let r = verify_raw(&["replay", "--export", s(&exp)]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("truncated"), "{r:?}");
}

/// An operator that controls the node key can write a perfectly chained and signed log with a
/// draw result of its choosing; the replay re-runs the draw and names it.
#[test]
fn forged_draw_result_is_named() {
    use ledger_core::dsse::Envelope;
    use ledger_core::registry::payload_type;
    let dir = TempDir::new().unwrap();
    let mut log = Log::new();
    let reg = log.registrar.clone();
    let secret = b"registrar secret".to_vec();
    let t = log.size() + 3;
    let commit = serde_json::json!({
        "version": 1, "draw_id": "d-1", "purpose": "evaluator_selection", "subjects": ["cadre-1"],
        "pool": [{"id": "a", "stratum": "s"}, {"id": "b", "stratum": "s"}, {"id": "c", "stratum": "s"}],
        "strata": [{"name": "s", "quota": 1}], "k": 1, "algorithm": "ledger-draw-v1",
        "parties": [{"name": "registrar", "keyid": ledger_core::keys::key_id(&reg.verifying_key()),
                     "commitment": Hash::digest(&secret).to_hex()}],
        "reveal_at_size": t, "reveal_deadline_micros": 4_000_000_000_000_000u64
    });
    let signed = |kind: &str, v: &serde_json::Value, k: &ed25519_dalek::SigningKey| {
        let mut e = Envelope::new(payload_type(kind), serde_json::to_vec(v).unwrap());
        e.sign(k);
        e
    };
    let commit_index = log.push(signed("draw.commit", &commit, &reg));
    let commit_leaf = ledger_core::hash::leaf_hash(&log.entries[commit_index as usize]);
    log.notes(2);
    let root_at_t = log.tree.root();
    assert_eq!(log.size(), t);
    let reveal =
        serde_json::json!({"version": 1, "draw_id": "d-1", "party": "registrar", "secret": hex::encode(&secret)});
    log.push(signed("draw.reveal", &reveal, &reg));
    // The honest result, then the operator's: same seed, another member chosen.
    let seed = ledger_core::draw::seed(&commit_leaf, &root_at_t, &[&secret]);
    let honest = ledger_core::draw::select_stratified(
        &seed,
        &[ledger_core::draw::Stratum {
            name: "s",
            members: vec!["a", "b", "c"],
            quota: 1,
        }],
    )
    .unwrap();
    let chosen = ["a", "b", "c"].into_iter().find(|m| *m != honest[0].1[0]).unwrap();
    let forged = serde_json::json!({"version": 1, "draw_id": "d-1", "seed": seed.to_hex(), "root_at_size": root_at_t.to_hex(),
        "selection": [{"stratum": "s", "selected": [chosen]}]});
    let node = log.node.clone();
    let idx = log.push(signed("draw.result", &forged, &node));
    log.checkpoint();
    let exp = dir.path().join("log.export");
    write_export(&exp, &log.frames());
    let r = verify(dir.path(), &["replay", "--export", s(&exp)]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("DRAW_RESULT_MISMATCH"), "{r:?}");
    let faults = r.json.as_ref().unwrap()["faults"].as_array().unwrap().clone();
    assert_eq!(faults.len(), 1, "{faults:?}");
    assert_eq!(faults[0]["index"], idx);
}
