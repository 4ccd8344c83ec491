//! Golden vectors of our own byte formats, read from `docs/format.md` so that the document and the
//! code cannot drift apart. Each vector in the document is a fenced block whose first line is
//! `vector <name>` followed by the value (hex unless said otherwise).
//!
//! Test keys: seeds of 32 bytes 0x01 (signer) and 0x02 (log), published for tests only.

use ledger_core::checkpoint::Checkpoint;
use ledger_core::dsse::Envelope;
use ledger_core::entry::Entry;
use ledger_core::hash::{Hash, empty_root};
use ledger_core::keys::key_id;
use ledger_core::note::{Note, NoteSigner};
use std::collections::HashMap;

const FORMAT_MD: &str = include_str!("../../../docs/format.md");

fn vectors() -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut lines = FORMAT_MD.lines();
    while let Some(l) = lines.next() {
        if !l.starts_with("```") {
            continue;
        }
        let Some(first) = lines.next() else { break };
        let Some(name) = first.strip_prefix("vector ") else {
            for l in lines.by_ref() {
                if l.starts_with("```") {
                    break;
                }
            }
            continue;
        };
        let mut body = String::new();
        for l in lines.by_ref() {
            if l.starts_with("```") {
                break;
            }
            body.push_str(l);
            body.push('\n');
        }
        out.insert(name.trim().to_string(), body);
    }
    out
}

fn hexv(v: &HashMap<String, String>, name: &str) -> Vec<u8> {
    let s: String = v
        .get(name)
        .unwrap_or_else(|| panic!("vector {name} missing from docs/format.md"))
        .split_whitespace()
        .collect();
    hex::decode(s).expect("hex vector")
}

fn signer() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[1u8; 32])
}

fn sample_entry() -> Entry {
    let mut env = Envelope::new("application/vnd.ledger.test+json", br#"{"hello":"world"}"#.to_vec());
    env.sign(&signer());
    Entry {
        index: 1,
        timestamp_micros: 1_767_225_600_000_000,
        prev_root: Hash::digest(b"prev"),
        envelope: env,
    }
}

#[test]
fn key_id_vector() {
    let v = vectors();
    assert_eq!(
        hexv(&v, "test_public_key"),
        signer().verifying_key().as_bytes().to_vec()
    );
    assert_eq!(
        key_id(&signer().verifying_key()).into_bytes(),
        v["test_key_id"].trim().as_bytes().to_vec()
    );
}

#[test]
fn entry_encoding_vector() {
    let v = vectors();
    let e = sample_entry();
    let enc = e.encode();
    assert_eq!(hex::encode(&enc), hex::encode(hexv(&v, "entry_leaf")), "leaf bytes");
    assert_eq!(e.leaf_hash().0.to_vec(), hexv(&v, "entry_leaf_hash"));
    assert_eq!(Entry::decode(&enc).expect("decode"), e);

    // The same bytes assembled by hand from the layout in docs/format.md.
    let mut by_hand = vec![1u8];
    by_hand.extend_from_slice(&1u64.to_le_bytes());
    by_hand.extend_from_slice(&1_767_225_600_000_000u64.to_le_bytes());
    by_hand.extend_from_slice(&Hash::digest(b"prev").0);
    let t = b"application/vnd.ledger.test+json";
    by_hand.extend_from_slice(&(t.len() as u64).to_le_bytes());
    by_hand.extend_from_slice(t);
    let p = br#"{"hello":"world"}"#;
    by_hand.extend_from_slice(&(p.len() as u64).to_le_bytes());
    by_hand.extend_from_slice(p);
    by_hand.extend_from_slice(&1u64.to_le_bytes());
    let kid = key_id(&signer().verifying_key());
    by_hand.extend_from_slice(&(kid.len() as u64).to_le_bytes());
    by_hand.extend_from_slice(kid.as_bytes());
    by_hand.extend_from_slice(&64u64.to_le_bytes());
    by_hand.extend_from_slice(&e.envelope.signatures[0].sig);
    assert_eq!(enc, by_hand);
}

#[test]
fn dsse_signature_vector() {
    let v = vectors();
    let e = sample_entry();
    assert_eq!(e.envelope.signatures[0].sig, hexv(&v, "entry_dsse_sig"));
}

#[test]
fn checkpoint_vector() {
    let v = vectors();
    let log =
        NoteSigner::new("ledger.example/test", ed25519_dalek::SigningKey::from_bytes(&[2u8; 32])).expect("signer");
    assert_eq!(log.verifier().to_string_key(), v["test_log_vkey"].trim());
    let cp = Checkpoint {
        origin: "ledger.example/test".into(),
        size: 0,
        root: empty_root(),
        extensions: vec![],
    };
    let note = cp.sign(&log).expect("sign");
    assert_eq!(note.to_text(), v["checkpoint_note"]);
    let back = ledger_core::checkpoint::open_checkpoint(&v["checkpoint_note"], log.verifier()).expect("open");
    assert_eq!(back.checkpoint, cp);
    assert_eq!(Note::parse(&note.to_text()).expect("parse"), note);
}

#[test]
fn decoding_garbage_and_truncations_errors() {
    let enc = sample_entry().encode();
    for n in 0..enc.len() {
        assert!(Entry::decode(&enc[..n]).is_err(), "truncated at {n} decoded");
    }
    let mut longer = enc.clone();
    longer.push(0);
    assert!(Entry::decode(&longer).is_err(), "trailing byte accepted");
    let mut v2 = enc.clone();
    v2[0] = 2;
    assert!(Entry::decode(&v2).is_err(), "version 2 accepted");
    // Huge declared lengths must fail cleanly without allocating them.
    let mut huge = enc[..49].to_vec();
    huge.extend_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        Entry::decode(&huge),
        Err(ledger_core::entry::EntryError::Malformed(_))
    ));
}

/// Issue 12 item 2: a note bound to the log `ledger.example/test` (docs/format.md, "Payload types
/// bound to one log"): its payload type, PAE, signature and statement digest.
#[test]
fn bound_payload_type_vector() {
    use ledger_core::registry::{kind_of, payload_type_for_log};
    let v = vectors();
    let pt = payload_type_for_log("note", "ledger.example/test");
    assert_eq!(pt, v["bound_payload_type"].trim());
    assert_eq!(kind_of(&pt), Some("note"));
    let mut env = Envelope::new(pt, br#"{"version":1,"text":"hello"}"#.to_vec());
    assert_eq!(env.pae(), hexv(&v, "bound_pae"));
    env.sign(&signer());
    assert_eq!(env.signatures[0].sig, hexv(&v, "bound_dsse_sig"));
    assert_eq!(
        ledger_core::rules::statement_digest(&env).0.to_vec(),
        hexv(&v, "bound_statement_digest")
    );
}
