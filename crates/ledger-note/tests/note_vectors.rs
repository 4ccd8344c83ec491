//! C2SP signed-note vectors.
//!
//! Source: golang.org/x/mod/sumdb/note `note_test.go` (the PeterNeumann key pair and note), also
//! reproduced by the C2SP signed-note spec's implementations.

use ledger_note::note::{Note, NoteError, NoteSigner, NoteVerifier};

const VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const SKEY: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const TEXT: &str =
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const SIG_LINE: &str =
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

#[test]
fn go_note_vector_verifies_and_reproduces() {
    let v = NoteVerifier::parse(VKEY).expect("vkey");
    assert_eq!(v.key_hash, 0xc74f20a3);
    assert_eq!(v.to_string_key(), VKEY);
    let signer = NoteSigner::parse(SKEY).expect("skey");
    assert_eq!(signer.verifier(), &v);

    let note_text = format!("{TEXT}\n{SIG_LINE}");
    let note = Note::parse(&note_text).expect("parse");
    assert_eq!(note.text, TEXT);
    assert_eq!(
        note.verify(std::slice::from_ref(&v)).expect("verify"),
        vec!["PeterNeumann".to_string()]
    );
    assert_eq!(note.to_text(), note_text);

    // Ed25519 is deterministic: signing reproduces the published signature byte for byte.
    let sig = signer.sign(TEXT).expect("sign");
    let made = Note {
        text: TEXT.to_string(),
        signatures: vec![sig],
    };
    assert_eq!(made.to_text(), note_text);
}

#[test]
fn note_tampering_and_unknown_keys() {
    let v = NoteVerifier::parse(VKEY).expect("vkey");
    let note_text = format!("{TEXT}\n{SIG_LINE}");
    let tampered = Note::parse(&note_text.replace("cryptography", "cryptographY")).expect("parse");
    assert!(matches!(
        tampered.verify(std::slice::from_ref(&v)),
        Err(NoteError::InvalidSignature { .. })
    ));

    // An extra signature by an unknown key is ignored.
    let other = NoteSigner::new(
        "other.example/witness",
        ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]),
    )
    .expect("signer");
    let mut note = Note::parse(&note_text).expect("parse");
    note.signatures.insert(0, other.sign(TEXT).expect("sign"));
    let reparsed = Note::parse(&note.to_text()).expect("parse");
    assert_eq!(
        reparsed.verify(std::slice::from_ref(&v)).expect("verify"),
        vec!["PeterNeumann".to_string()]
    );
    // With only unknown keys trusted, nothing verifies.
    assert!(matches!(
        Note::parse(&note_text)
            .expect("parse")
            .verify(std::slice::from_ref(other.verifier())),
        Err(NoteError::Unverified)
    ));
}

#[test]
fn malformed_verifier_keys_refused() {
    // Manglings from note_test.go TestNewVerifier: every proper substring and every +1 byte change.
    let b = VKEY.as_bytes();
    for i in 0..=b.len() {
        for j in i + 1..=b.len() {
            if (i != 0 || j != b.len())
                && let Ok(s) = std::str::from_utf8(&b[i..j])
            {
                assert!(NoteVerifier::parse(s).is_err(), "accepted {s:?}");
            }
        }
    }
    for i in 0..b.len() {
        let mut m = b.to_vec();
        m[i] = m[i].wrapping_add(1);
        if let Ok(s) = std::str::from_utf8(&m) {
            assert!(NoteVerifier::parse(s).is_err(), "accepted {s:?}");
        }
    }
    assert!(NoteVerifier::parse("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==").is_err());
    assert!(NoteVerifier::parse("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW").is_err());
}

#[test]
fn malformed_notes_refused() {
    let sig = SIG_LINE;
    for bad in [
        String::new(),
        TEXT.to_string(),
        format!("{TEXT}{sig}"),
        format!("{TEXT}\n"),
        format!("{TEXT}\n{}", sig.trim_end()),
        format!("{TEXT}\n- PeterNeumann abc\n"),
        format!("{TEXT}\n— PeterNeumann\n"),
        format!("{TEXT}\n— PeterNeumann !!!!\n"),
        format!("{TEXT}\n— PeterNeumann AAAA\n"),
        format!("bell\u{7}\n\n{sig}"),
        format!("no final newline\n\n{sig}x"),
    ] {
        assert!(Note::parse(&bad).is_err(), "accepted {bad:?}");
    }
    let many = format!("{TEXT}\n{}", sig.repeat(101));
    assert!(Note::parse(&many).is_err(), "101 signatures");
}
