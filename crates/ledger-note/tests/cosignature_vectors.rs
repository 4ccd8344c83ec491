//! C2SP tlog-cosignature v1 (Ed25519, type 0x04) and tlog-witness add-checkpoint rules.
//!
//! Sources: the example checkpoint and cosignature line of c2sp.org/tlog-cosignature (v1.0.0),
//! whose cosignature carries the timestamp 1679315147 of the spec's example signed message; the
//! request body example of c2sp.org/tlog-witness. Our own vectors (`test_witness_vkey`,
//! `cosigned_checkpoint_note`) live in docs/format.md and use the published test seeds
//! (0x02 for the log, 0x03 for the witness).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{SigningKey, Verifier as _};
use ledger_note::checkpoint::{Checkpoint, open_checkpoint};
use ledger_note::cosignature::{ALG_COSIGNATURE_V1, CosignatureSigner, CosignatureVerifier, cosignature_message};
use ledger_note::note::{Note, NoteError, NoteSigner, NoteVerifier, key_hash};
use ledger_note::witness::{AddCheckpoint, MAX_ADD_CHECKPOINT_BYTES, WitnessError, check_submission, open_submission};
use ledger_tlog::compact::CompactTree;
use ledger_tlog::hash::{Hash, empty_root};
use ledger_tlog::merkle::consistency_proof;

const FORMAT_MD: &str = include_str!("../../../docs/format.md");
const TS: u64 = 1_679_315_147;

fn vector(name: &str) -> String {
    let mut lines = FORMAT_MD.lines();
    while let Some(l) = lines.next() {
        if l.starts_with("```") && lines.clone().next() == Some(&format!("vector {name}")) {
            lines.next();
            let mut body = String::new();
            for l in lines.by_ref() {
                if l.starts_with("```") {
                    return body;
                }
                body.push_str(l);
                body.push('\n');
            }
        }
    }
    panic!("vector {name} missing from docs/format.md")
}

fn log() -> NoteSigner {
    NoteSigner::new("ledger.example/test", SigningKey::from_bytes(&[2u8; 32])).expect("log signer")
}

fn witness() -> CosignatureSigner {
    CosignatureSigner::new("witness.example/w1", SigningKey::from_bytes(&[3u8; 32])).expect("witness signer")
}

fn empty_checkpoint() -> Checkpoint {
    Checkpoint {
        origin: "ledger.example/test".into(),
        size: 0,
        root: empty_root(),
        extensions: vec![],
    }
}

#[test]
fn spec_example_cosignature_line_has_the_spec_layout() {
    // c2sp.org/tlog-cosignature: the example witness line; its timestamp is the "time" line of the
    // spec's example signed message.
    let note = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n\
— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n\
— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n";
    let n = Note::parse(note).expect("spec note parses");
    let w = &n.signatures[1];
    assert_eq!(w.name, "witness.example.com/w1");
    assert_eq!(w.sig.len(), 72, "timestamp (8) + Ed25519 signature (64)");
    assert_eq!(u64::from_be_bytes(w.sig[..8].try_into().expect("8")), TS);
    assert_eq!(n.to_text(), note, "re-serializes byte for byte");
    // The spec's example signed message.
    let body = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
    assert_eq!(
        cosignature_message(TS, body),
        b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    );
    // A cosignature verifier that does not know this witness ignores the line.
    let other = witness().verifier().clone();
    assert_eq!(n.verify_cosignatures(&[other]).expect("ignored"), vec![]);
}

#[test]
fn cosignature_bytes_match_the_spec_construction_and_our_vector() {
    let w = witness();
    let ledger_note::cosignature::CosignerKey::Ed25519(pk) = w.verifier().key.clone() else {
        panic!("an Ed25519 witness key")
    };
    // Key hash assembled by hand: SHA-256(name ‖ 0x0A ‖ 0x04 ‖ key)[:4].
    let mut pre = b"witness.example/w1\n".to_vec();
    pre.push(0x04);
    pre.extend_from_slice(pk.as_bytes());
    let h = Hash::digest(&pre);
    assert_eq!(
        w.verifier().key_hash,
        u32::from_be_bytes(h.0[..4].try_into().expect("4"))
    );
    assert_eq!(
        w.verifier().key_hash,
        key_hash("witness.example/w1", ALG_COSIGNATURE_V1, pk.as_bytes())
    );
    assert_eq!(w.verifier().to_string_key(), vector("test_witness_vkey").trim());
    assert_eq!(
        CosignatureVerifier::parse(&vector("test_witness_vkey")).expect("vkey parses"),
        *w.verifier()
    );

    let mut note = empty_checkpoint().sign(&log()).expect("log signs");
    let line = w.sign(&note.text, TS).expect("cosign");
    // The line's bytes: key hash ‖ u64 BE timestamp ‖ Ed25519 over the spec message.
    assert_eq!(line.sig[..8], TS.to_be_bytes());
    let msg = format!("cosignature/v1\ntime {TS}\n{}", note.text);
    let sig = ed25519_dalek::Signature::from_slice(&line.sig[8..]).expect("64 bytes");
    pk.verify(msg.as_bytes(), &sig)
        .expect("plain Ed25519 over the spec message");
    note.signatures.push(line);
    assert_eq!(note.to_text(), vector("cosigned_checkpoint_note"));

    // Parsing the vector back: the log signature and the cosignature both verify.
    let opened = open_checkpoint(&vector("cosigned_checkpoint_note"), log().verifier()).expect("log sig");
    let cos = opened
        .note
        .verify_cosignatures(std::slice::from_ref(w.verifier()))
        .expect("cosig");
    assert_eq!(cos.len(), 1);
    assert_eq!((cos[0].name.as_str(), cos[0].timestamp), ("witness.example/w1", TS));
}

#[test]
fn tampered_or_misattributed_cosignatures_fail() {
    let w = witness();
    let note = empty_checkpoint().sign(&log()).expect("sign");
    let good = w.sign(&note.text, TS).expect("cosign");
    let check = |sig: Vec<u8>| {
        let mut n = note.clone();
        n.signatures
            .push(ledger_note::note::NoteSignature { sig, ..good.clone() });
        n.verify_cosignatures(std::slice::from_ref(w.verifier()))
    };
    assert!(check(good.sig.clone()).is_ok());
    // Another timestamp under the same signature.
    let mut s = good.sig.clone();
    s[7] ^= 1;
    assert!(matches!(check(s), Err(NoteError::InvalidSignature { .. })));
    // A flipped signature bit, a truncated signature, a timestamp ≥ 2^63.
    let mut s = good.sig.clone();
    s[40] ^= 1;
    assert!(check(s).is_err());
    assert!(check(good.sig[..71].to_vec()).is_err());
    let mut s = good.sig.clone();
    s[0] = 0x80;
    assert!(check(s).is_err());
    assert!(w.sign(&note.text, 1 << 63).is_err());
    // A plain Ed25519 note signature by the same key is not a cosignature (different message and
    // key hash): the line is ignored, not counted.
    let plain = NoteSigner::new("witness.example/w1", SigningKey::from_bytes(&[3u8; 32])).expect("s");
    let mut n = note.clone();
    n.signatures.push(plain.sign(&n.text).expect("sign"));
    assert_eq!(
        n.verify_cosignatures(std::slice::from_ref(w.verifier())).expect("ok"),
        vec![]
    );
    // The cosignature key string is not accepted as a log key, nor the reverse.
    assert!(NoteVerifier::parse(&w.verifier().to_string_key()).is_err());
    assert!(CosignatureVerifier::parse(&log().verifier().to_string_key()).is_err());
}

fn tree(n: u64, salt: u8) -> (Vec<Hash>, CompactTree) {
    let mut ct = CompactTree::new();
    let mut v = Vec::new();
    for i in 0..n {
        let h = Hash::digest(&[salt, i as u8]);
        v.push(h);
        ct.append(h);
    }
    (v, ct)
}

fn cp(size: u64, root: Hash) -> Checkpoint {
    Checkpoint {
        origin: "ledger.example/test".into(),
        size,
        root,
        extensions: vec![],
    }
}

#[test]
fn add_checkpoint_body_round_trips_and_refuses_garbage() {
    let (src, ct) = tree(9, 0);
    let proof = consistency_proof(&src[..], 5, 9).expect("proof");
    let note = cp(9, ct.root()).sign(&log()).expect("sign").to_text();
    let req = AddCheckpoint {
        old_size: 5,
        proof,
        checkpoint: note,
    };
    assert_eq!(AddCheckpoint::parse(&req.to_body()).expect("parse"), req);
    assert!(req.to_body().starts_with("old 5\n"));
    for bad in [
        "",
        "old 5",
        "old 05\n\nx",
        "old -1\n\nx",
        "new 5\n\nx",
        "old 5\nnot base64!\n\nx",
        "old 5\nAAAA\n\nx",
        "old 18446744073709551616\n\nx",
    ] {
        assert!(
            matches!(AddCheckpoint::parse(bad), Err(WitnessError::Malformed(_))),
            "{bad:?} accepted"
        );
    }
    let line = format!("{}\n", B64.encode([0u8; 32]));
    let too_many = format!("old 1\n{}\nx", line.repeat(64));
    assert!(matches!(AddCheckpoint::parse(&too_many), Err(WitnessError::Malformed(m)) if m.contains("63")));
    let huge = format!("old 0\n\n{}", "a".repeat(MAX_ADD_CHECKPOINT_BYTES));
    assert!(matches!(AddCheckpoint::parse(&huge), Err(WitnessError::Malformed(m)) if m.contains("limit")));
}

#[test]
fn witness_rules_follow_the_spec() {
    let logs = [log().verifier().clone()];
    let (src, ct9) = tree(9, 0);
    let (_, ct5) = tree(5, 0);
    let (_, fork9) = tree(9, 1);
    let note9 = cp(9, ct9.root()).sign(&log()).expect("sign").to_text();
    let opened = open_submission(&note9, &logs).expect("opens");
    assert_eq!(opened.checkpoint.size, 9);
    // Unknown origin (404), bad signature (403), malformed note (400).
    let other_origin = Checkpoint {
        origin: "other.example/log".into(),
        ..cp(9, ct9.root())
    }
    .sign(&NoteSigner::new("other.example/log", SigningKey::from_bytes(&[2u8; 32])).expect("s"))
    .expect("sign")
    .to_text();
    assert_eq!(
        open_submission(&other_origin, &logs).expect_err("404").http_status(),
        404
    );
    let impostor = NoteSigner::new("ledger.example/test", SigningKey::from_bytes(&[9u8; 32])).expect("s");
    let forged = cp(9, ct9.root()).sign(&impostor).expect("sign").to_text();
    assert_eq!(open_submission(&forged, &logs).expect_err("403").http_status(), 403);
    assert_eq!(open_submission("hello\n", &logs).expect_err("400").http_status(), 400);

    let c9 = cp(9, ct9.root());
    // First contact: old 0, empty proof.
    check_submission(None, 0, &[], &c9).expect("first checkpoint");
    assert!(check_submission(None, 0, &[Hash::default()], &c9).is_err());
    // Growth with a valid proof.
    let p = consistency_proof(&src[..], 5, 9).expect("proof");
    check_submission(Some((5, ct5.root())), 5, &p, &c9).expect("consistent growth");
    // Wrong old size: 409 with the held size.
    let e = check_submission(Some((5, ct5.root())), 3, &p, &c9).expect_err("conflict");
    assert_eq!((e.http_status(), e.held_size()), (409, Some(5)));
    // A smaller tree than held (rollback): 409 with the held size, or 400 if old > size.
    let e = check_submission(Some((9, ct9.root())), 0, &[], &cp(5, ct5.root())).expect_err("rollback");
    assert_eq!(e.held_size(), Some(9));
    let e = check_submission(Some((9, ct9.root())), 9, &[], &cp(5, ct5.root())).expect_err("old > size");
    assert_eq!(e.http_status(), 400);
    // Same size, same root: fine (re-cosign); other root: 409.
    check_submission(Some((9, ct9.root())), 9, &[], &c9).expect("same");
    let e = check_submission(Some((9, ct9.root())), 9, &[], &cp(9, fork9.root())).expect_err("fork");
    assert_eq!((e.http_status(), e.held_size()), (409, Some(9)));
    // A proof that does not lead from the held root: 422.
    let (fsrc, _) = tree(9, 1);
    let fp = consistency_proof(&fsrc[..], 5, 9).expect("proof");
    let e = check_submission(Some((5, ct5.root())), 5, &fp, &cp(9, fork9.root())).expect_err("422");
    assert_eq!(e.http_status(), 422);
    let e = check_submission(Some((5, ct5.root())), 5, &p[1..], &c9).expect_err("short proof");
    assert_eq!(e.http_status(), 422);
}
