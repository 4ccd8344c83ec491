//! Client library tests that need no node: signing, key files, and proof verification against a
//! tree and checkpoint built in memory.

#![allow(clippy::unwrap_used, missing_docs)]

use ed25519_dalek::SigningKey;
use ledger_client::error::ClientError;
use ledger_client::{
    CheckpointTracker, check_extends, compact_json, read_public_key, read_signing_key, sign_record, sign_record_bytes,
    sign_record_json, verify_appended, verify_outcome_proof, write_key_pair, write_signing_key,
};
use ledger_core::checkpoint::Checkpoint;
use ledger_core::dsse::Envelope;
use ledger_core::hash::{Hash, empty_root};
use ledger_core::keys::key_id;
use ledger_core::merkle::{consistency_proof, root_of};
use ledger_core::note::NoteSigner;
use ledger_core::registry::{KeyRevoke, payload_type};
use std::os::unix::fs::PermissionsExt as _;

mod common;
use common::{Log, ORIGIN, key};

// ---- signing ----

#[test]
fn sign_record_verifies_with_every_key() {
    let (a, b) = (key(1), key(2));
    let payload = serde_json::json!({"subject": "alice", "n": 3});
    let env = sign_record("nomination", &payload, &[&a, &b]);
    assert_eq!(env.payload_type, "application/vnd.ledger.nomination.v1+json");
    assert_eq!(env.payload_type, payload_type("nomination"));
    assert_eq!(env.payload, serde_json::to_vec(&payload).unwrap());
    assert_eq!(env.signatures.len(), 2);
    assert_eq!(env.signatures[0].keyid, key_id(&a.verifying_key()));
    assert_eq!(env.signatures[1].keyid, key_id(&b.verifying_key()));
    env.verify_signature(0, &a.verifying_key()).unwrap();
    env.verify_signature(1, &b.verifying_key()).unwrap();
    assert!(env.verify_signature(0, &b.verifying_key()).is_err());
    env.check_limits().unwrap();
    // Round trip through the DSSE JSON form keeps the signatures valid.
    let back = Envelope::from_json(&env.to_json()).unwrap();
    back.verify_signature(0, &a.verifying_key()).unwrap();
}

#[test]
fn payload_is_compact() {
    let env = sign_record("note", &serde_json::json!({"text": "a b", "list": [1, 2]}), &[&key(1)]);
    let text = std::str::from_utf8(&env.payload).unwrap();
    assert!(
        !text.contains(": ") && !text.contains(", ") && !text.contains('\n'),
        "{text}"
    );
    let compact = compact_json(b"{\n  \"x\" : [ 1 ,\n 2 ]\n}\n").unwrap();
    assert_eq!(compact, br#"{"x":[1,2]}"#);
    assert!(compact_json(b"{not json").is_err());
}

#[test]
fn sign_record_json_and_bytes() {
    let a = key(7);
    let rec = KeyRevoke {
        version: 1,
        keyid: "ab".repeat(32),
        reason: "key stolen".into(),
    };
    let env = sign_record_json("key.revoke", &rec, &[&a]).unwrap();
    assert_eq!(env.payload_type, "application/vnd.ledger.key.revoke.v1+json");
    let back: KeyRevoke = serde_json::from_slice(&env.payload).unwrap();
    assert_eq!(back, rec);
    env.verify_signature(0, &a.verifying_key()).unwrap();

    let env = sign_record_bytes("note", b"{}".to_vec(), &[&a]);
    assert_eq!(env.payload, b"{}");
    env.verify_signature(0, &a.verifying_key()).unwrap();
}

// ---- key files ----

#[test]
fn key_file_round_trip_mode_and_no_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admin.key");
    let k = SigningKey::generate(&mut rand::rng());
    write_signing_key(&path, &k).unwrap();

    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.ends_with('\n') && text.trim_end().len() == 44, "{text:?}");
    assert_eq!(read_signing_key(&path).unwrap().to_bytes(), k.to_bytes());

    // Never overwrites, and leaves the existing key alone.
    let other = key(9);
    let err = write_signing_key(&path, &other).unwrap_err();
    match &err {
        ClientError::KeyFile { error, .. } => assert_eq!(error.kind(), std::io::ErrorKind::AlreadyExists),
        e => panic!("unexpected error {e}"),
    }
    assert_eq!(read_signing_key(&path).unwrap().to_bytes(), k.to_bytes());
}

#[test]
fn key_pair_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    let k = key(3);
    let pub_path = write_key_pair(&path, &k).unwrap();
    assert_eq!(pub_path, dir.path().join("k.pub"));
    assert_eq!(read_public_key(&pub_path).unwrap(), k.verifying_key());
    assert_eq!(read_signing_key(&path).unwrap().to_bytes(), k.to_bytes());
    assert!(write_key_pair(&path, &key(4)).is_err());

    // A stale .pub blocks keygen before the secret file is written.
    let path2 = dir.path().join("k2");
    std::fs::write(dir.path().join("k2.pub"), "stale\n").unwrap();
    assert!(write_key_pair(&path2, &k).is_err());
    assert!(!path2.exists());
}

#[test]
fn bad_key_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad");
    std::fs::write(&p, "not base64!\n").unwrap();
    assert!(matches!(read_signing_key(&p), Err(ClientError::BadKeyFile { .. })));
    std::fs::write(&p, "AAAA\n").unwrap();
    assert!(matches!(read_signing_key(&p), Err(ClientError::BadKeyFile { .. })));
    assert!(matches!(
        read_signing_key(dir.path().join("missing")),
        Err(ClientError::KeyFile { .. })
    ));
}

// ---- verification ----

#[test]
fn verify_appended_accepts_correct_proofs() {
    let log = Log::new(11);
    let v = log.verifier();
    for size in 1..=11 {
        for index in 0..size {
            let out = log.outcome(index, size);
            let cp = verify_appended(&out, &log.entries[index as usize], &v).unwrap();
            assert_eq!(cp.size, size);
            assert_eq!(cp.root, root_of(&log.leaves[..size as usize]));
        }
    }
}

#[test]
fn verify_appended_rejects_tampering() {
    let log = Log::new(7);
    let v = log.verifier();
    let good = log.outcome(3, 7);
    let entry = &log.entries[3];
    verify_appended(&good, entry, &v).unwrap();

    // A flipped proof hash.
    let mut bad = good.clone();
    bad.inclusion_proof[1].0[0] ^= 1;
    assert!(matches!(
        verify_appended(&bad, entry, &v),
        Err(ClientError::Inclusion { .. })
    ));

    // A missing or extra proof hash.
    let mut bad = good.clone();
    bad.inclusion_proof.pop();
    assert!(matches!(
        verify_appended(&bad, entry, &v),
        Err(ClientError::Inclusion { .. })
    ));
    let mut bad = good.clone();
    bad.inclusion_proof.push(Hash::default());
    assert!(matches!(
        verify_appended(&bad, entry, &v),
        Err(ClientError::Inclusion { .. })
    ));

    // Another index for the same proof.
    let mut bad = good.clone();
    bad.index = 2;
    assert!(verify_appended(&bad, &log.entries[2], &v).is_err());

    // The node claims a leaf hash the entry does not have.
    let mut bad = good.clone();
    bad.leaf_hash = log.leaves[4];
    assert!(matches!(
        verify_appended(&bad, entry, &v),
        Err(ClientError::LeafHashMismatch { .. })
    ));

    // The entry was altered (envelope swapped): its leaf no longer hashes to the proven leaf.
    let mut altered = entry.clone();
    altered.envelope = sign_record("note", &serde_json::json!({"i": "forged"}), &[&key(1)]);
    assert!(matches!(
        verify_appended(&good, &altered, &v),
        Err(ClientError::LeafHashMismatch { .. })
    ));

    // A different timestamp than the one the node answered.
    let mut bad = good.clone();
    bad.timestamp_micros += 1;
    assert!(matches!(
        verify_appended(&bad, entry, &v),
        Err(ClientError::EntryMismatch { .. })
    ));

    // The checkpoint body altered after signing (root of another size).
    let mut bad = good.clone();
    bad.checkpoint = Some(log.note(7).replacen("\n7\n", "\n6\n", 1));
    assert!(matches!(
        verify_appended(&bad, entry, &v),
        Err(ClientError::Checkpoint(_))
    ));

    // A checkpoint signed by another key with the same name.
    let mut bad = good.clone();
    let rogue = NoteSigner::new(ORIGIN, key(43)).unwrap();
    bad.checkpoint = Some(log.checkpoint(7).sign(&rogue).unwrap().to_text());
    assert!(matches!(
        verify_appended(&bad, entry, &v),
        Err(ClientError::Checkpoint(_))
    ));

    // A checkpoint that does not cover the entry.
    let mut bad = log.outcome(2, 3);
    bad.index = 3;
    bad.leaf_hash = entry.leaf_hash();
    bad.timestamp_micros = entry.timestamp_micros;
    assert!(matches!(
        verify_appended(&bad, entry, &v),
        Err(ClientError::NoCheckpoint { .. })
    ));

    // No checkpoint at all.
    let mut bad = good.clone();
    bad.checkpoint = None;
    assert!(matches!(
        verify_outcome_proof(&bad, &v),
        Err(ClientError::NoCheckpoint { .. })
    ));
}

#[test]
fn tracker_accepts_growth_and_refuses_rewind_and_fork() {
    let log = Log::new(9);
    let mut t = CheckpointTracker::new(log.verifier());
    assert!(t.last().is_none());

    // Trust on first use.
    assert_eq!(t.advance(&log.note(3), &[]).unwrap().size, 3);
    // Same checkpoint again.
    t.advance(&log.note(3), &[]).unwrap();
    // Growth with a valid consistency proof.
    let p = consistency_proof(&log.leaves, 3, 8).unwrap();
    assert_eq!(t.advance(&log.note(8), &p).unwrap().size, 8);
    assert_eq!(t.last().unwrap().size, 8);

    // Rewind.
    let err = t.advance(&log.note(5), &[]).unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Rewind {
                old_size: 8,
                new_size: 5,
                ..
            }
        ),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains('8') && msg.contains('5'), "{msg}");
    assert_eq!(t.last().unwrap().size, 8);

    // A wrong proof for real growth.
    let mut p = consistency_proof(&log.leaves, 8, 9).unwrap();
    p[0].0[5] ^= 0x80;
    assert!(matches!(t.advance(&log.note(9), &p), Err(ClientError::Fork { .. })));
    assert_eq!(t.last().unwrap().size, 8);

    // A forked log: same first 6 entries, different 7th onward; signed by the same node key.
    let mut forked = Log::new(9);
    let env = sign_record("note", &serde_json::json!({"i": "other"}), &[&key(1)]);
    forked.entries[6].envelope = env;
    forked.leaves[6] = forked.entries[6].leaf_hash();
    let p = consistency_proof(&forked.leaves, 8, 9).unwrap();
    let err = t.advance(&forked.note(9), &p).unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Fork {
                old_size: 8,
                new_size: 9,
                ..
            }
        ),
        "{err}"
    );
    // Same size, other root.
    let err = t.advance(&forked.note(8), &[]).unwrap_err();
    assert!(matches!(err, ClientError::Fork { .. }), "{err}");

    // A checkpoint not signed by the node key changes nothing.
    let rogue = NoteSigner::new(ORIGIN, key(43)).unwrap();
    let note = log.checkpoint(9).sign(&rogue).unwrap().to_text();
    assert!(matches!(t.advance(&note, &[]), Err(ClientError::Checkpoint(_))));

    // The honest continuation is still accepted.
    let p = consistency_proof(&log.leaves, 8, 9).unwrap();
    assert_eq!(t.advance(&log.note(9), &p).unwrap().size, 9);
}

#[test]
fn check_extends_from_empty() {
    let log = Log::new(4);
    let empty = Checkpoint {
        origin: ORIGIN.into(),
        size: 0,
        root: empty_root(),
        extensions: vec![],
    };
    check_extends(&empty, &log.checkpoint(4), &[]).unwrap();
    let bad_empty = Checkpoint {
        root: Hash([1; 32]),
        ..empty
    };
    assert!(check_extends(&bad_empty, &log.checkpoint(4), &[]).is_err());
}
