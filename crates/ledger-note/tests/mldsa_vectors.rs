//! C2SP tlog-cosignature ML-DSA-44 (type 0x06, subtree/v1) vectors and rules.
//!
//! Sources: the `cosigned_message` structure of c2sp.org/tlog-cosignature ("ML-DSA-44 signed
//! message") over the spec's example checkpoint, and FIPS 204 (key generation from the seed ξ,
//! ML-DSA.Sign with an empty context, deterministic variant). The vectors live in docs/format.md;
//! the public key and signature were checked independently with OpenSSL 3.5's ML-DSA (see the
//! "Sources of the external vectors" section there).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::SigningKey;
use ledger_note::cosignature::{
    ALG_COSIGNATURE_MLDSA44, CosignatureSigner, CosignatureVerifier, CosignerKey, MLDSA44_COSIGNATURE_LEN,
    MlDsa44PublicKey, checkpoint_subtree_message, subtree_message,
};
use ledger_note::note::{Note, NoteError, NoteSignature, key_hash};
use ledger_tlog::hash::Hash;

const FORMAT_MD: &str = include_str!("../../../docs/format.md");
const TS: u64 = 1_679_315_147;
const SPEC_BODY: &str = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
const NAME: &str = "witness.example/pq1";

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

fn witness() -> CosignatureSigner {
    CosignatureSigner::new_mldsa44(NAME, &[6u8; 32]).expect("ML-DSA-44 witness")
}

fn note_with(line: &NoteSignature) -> Note {
    Note {
        text: SPEC_BODY.to_string(),
        signatures: vec![line.clone()],
    }
}

#[test]
fn verifier_key_vector_and_key_hash() {
    let w = witness();
    assert_eq!(w.verifier().to_string_key(), vector("test_mldsa44_witness_vkey").trim());
    let parsed = CosignatureVerifier::parse(&vector("test_mldsa44_witness_vkey")).expect("vkey parses");
    assert_eq!(&parsed, w.verifier());
    assert_eq!(parsed.key.alg(), ALG_COSIGNATURE_MLDSA44);
    assert_eq!(parsed.key.as_bytes().len(), 1312);
    assert_eq!(
        Hash::digest(parsed.key.as_bytes()).to_hex(),
        "27f9ddde9e18c198ae835fdc2c806d30af89bfdbc2498bc127823dee942182de"
    );
    // SHA-256(name ‖ 0x0A ‖ 0x06 ‖ public key)[:4], computed by hand.
    let mut pre = format!("{NAME}\n").into_bytes();
    pre.push(0x06);
    pre.extend_from_slice(parsed.key.as_bytes());
    let h = Hash::digest(&pre);
    assert_eq!(parsed.key_hash, u32::from_be_bytes([h.0[0], h.0[1], h.0[2], h.0[3]]));
    assert_eq!(parsed.key_hash, key_hash(NAME, 0x06, parsed.key.as_bytes()));
    assert_eq!(parsed.key_hash, 0x91b6_5abd);
}

#[test]
fn cosigned_message_vector_is_the_spec_structure() {
    let msg = checkpoint_subtree_message(NAME, TS, SPEC_BODY).expect("message");
    assert_eq!(hex::encode(&msg), vector("mldsa44_cosigned_message").trim());
    // Built by hand from the spec's struct: label, name<1..255>, timestamp, origin<1..255>,
    // start, end, hash.
    let mut m = b"subtree/v1\n\0".to_vec();
    m.push(NAME.len() as u8);
    m.extend_from_slice(NAME.as_bytes());
    m.extend_from_slice(&TS.to_be_bytes());
    m.push(27);
    m.extend_from_slice(b"example.com/behind-the-sofa");
    m.extend_from_slice(&0u64.to_be_bytes());
    m.extend_from_slice(&20_852_163u64.to_be_bytes());
    m.extend_from_slice(
        &B64.decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
            .expect("root"),
    );
    assert_eq!(msg, m);
}

#[test]
fn deterministic_cosignature_line_vector() {
    let line = witness().sign(SPEC_BODY, TS).expect("sign");
    assert_eq!(line.to_line(), vector("mldsa44_cosignature_line").trim());
    assert_eq!(line.sig.len(), MLDSA44_COSIGNATURE_LEN);
    assert_eq!(&line.sig[..8], &TS.to_be_bytes());
    assert_eq!(
        Hash::digest(&line.sig[8..]).to_hex(),
        "fcf6c9d2f451af37e11f8c2ea09c6082824ed8915be6395fceecb5812ccb914d"
    );
    // The documented line parses and verifies on the spec's checkpoint.
    let text = format!("{SPEC_BODY}\n{}\n", vector("mldsa44_cosignature_line").trim());
    let n = Note::parse(&text).expect("note parses");
    let cos = n
        .verify_cosignatures(std::slice::from_ref(witness().verifier()))
        .expect("verifies");
    assert_eq!(cos.len(), 1);
    assert_eq!(
        (cos[0].name.as_str(), cos[0].timestamp, cos[0].signature_type),
        (NAME, TS, "ML-DSA-44")
    );
}

#[test]
fn signing_is_fips204_ml_dsa_sign_with_empty_context() {
    use ml_dsa::signature::{Keypair as _, Signer as _};
    use ml_dsa::{B32, MlDsa44, SigningKey as MlSigningKey};
    // The crate's own FIPS 204 API: key pair from ξ, and its `Signer` (ML-DSA.Sign, deterministic
    // variant, empty context).
    let sk = MlSigningKey::<MlDsa44>::from_seed(&B32::from([6u8; 32]));
    let vk = sk.verifying_key();
    let msg = checkpoint_subtree_message(NAME, TS, SPEC_BODY).expect("message");
    let reference = sk.sign(&msg);
    let line = witness().sign(SPEC_BODY, TS).expect("sign");
    assert_eq!(&line.sig[8..], reference.encode().as_slice());
    assert!(vk.verify_with_context(&msg, &[], &reference));
    assert!(!vk.verify_with_context(&msg, b"ctx", &reference));
    assert_eq!(witness().verifier().key.as_bytes(), vk.encode().as_slice());
}

#[test]
fn hedged_signatures_differ_and_verify() {
    let w = witness();
    let a = w.sign_hedged(SPEC_BODY, TS, &[1u8; 32]).expect("a");
    let b = w.sign_hedged(SPEC_BODY, TS, &[2u8; 32]).expect("b");
    assert_ne!(a.sig, b.sig);
    for l in [&a, &b] {
        assert_eq!(w.verifier().verify(SPEC_BODY, &l.sig).expect("verifies"), TS);
    }
}

#[test]
fn every_flipped_byte_region_is_refused() {
    let w = witness();
    let line = w.sign(SPEC_BODY, TS).expect("sign");
    for at in [0usize, 7, 8, 9, 40, 1000, 2000, MLDSA44_COSIGNATURE_LEN - 1] {
        let mut bad = line.clone();
        bad.sig[at] ^= 0x01;
        let err = note_with(&bad)
            .verify_cosignatures(std::slice::from_ref(w.verifier()))
            .expect_err("flipped byte refused");
        assert_eq!(
            err,
            NoteError::InvalidSignature {
                name: NAME.into(),
                key_hash: w.verifier().key_hash
            },
            "byte {at}"
        );
    }
    // Truncated and over-long signatures.
    for len in [MLDSA44_COSIGNATURE_LEN - 1, 8 + 64, MLDSA44_COSIGNATURE_LEN + 1] {
        let mut bad = line.clone();
        bad.sig.resize(len, 0);
        assert!(w.verifier().verify(SPEC_BODY, &bad.sig).is_err(), "length {len}");
    }
}

#[test]
fn message_commits_to_name_origin_size_and_root_but_not_extensions() {
    let w = witness();
    let line = w.sign(SPEC_BODY, TS).expect("sign");
    // The same key under another name (its own key hash) does not verify: the name is signed.
    let other = CosignatureVerifier::with_key("witness.example/other", w.verifier().key.clone()).expect("v");
    assert!(other.verify(SPEC_BODY, &line.sig).is_err());
    // Another size, root or origin does not verify.
    for body in [
        "example.com/behind-the-sofa\n20852164\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "example.com/behind-the-sofa\n20852163\nDsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "example.com/behind-the-couch\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "not a checkpoint\n",
    ] {
        assert!(w.verifier().verify(body, &line.sig).is_err(), "{body:?}");
    }
    // Extension lines are outside the signed message (the spec says no statement is made on them).
    let ext = format!("{SPEC_BODY}ext line\n");
    assert_eq!(
        w.verifier().verify(&ext, &line.sig).expect("extensions not covered"),
        TS
    );
}

#[test]
fn one_witness_with_both_types_is_counted_once() {
    let ed = CosignatureSigner::new(NAME, SigningKey::from_bytes(&[3u8; 32])).expect("ed");
    let pq = witness();
    let mut n = note_with(&pq.sign(SPEC_BODY, TS).expect("pq"));
    n.signatures.push(ed.sign(SPEC_BODY, TS + 1).expect("ed"));
    let keys = [ed.verifier().clone(), pq.verifier().clone()];
    let cos = n.verify_cosignatures(&keys).expect("both verify");
    assert_eq!(cos.len(), 1, "{cos:?}");
    // A verifier that knows only the Ed25519 key ignores the 0x06 line (unknown key hash).
    assert_eq!(
        n.verify_cosignatures(std::slice::from_ref(ed.verifier()))
            .expect("ok")
            .len(),
        1
    );
    // Round trip through the note text.
    let again = Note::parse(&n.to_text()).expect("parses");
    assert_eq!(again.verify_cosignatures(&keys).expect("ok").len(), 1);
}

#[test]
fn malformed_keys_and_messages_are_refused() {
    let good = vector("test_mldsa44_witness_vkey");
    let mut parts = good.trim().splitn(3, '+');
    let (Some(name), Some(hash), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
        panic!("three parts")
    };
    let prefix = format!("{name}+{hash}");
    let raw = B64.decode(b64).expect("b64");
    // Short key, wrong type byte, wrong key hash.
    let short = format!("{prefix}+{}", B64.encode(&raw[..1000]));
    assert!(matches!(
        CosignatureVerifier::parse(&short),
        Err(NoteError::MalformedKey(_))
    ));
    let mut wrong = raw.clone();
    wrong[0] = 0x05;
    assert!(CosignatureVerifier::parse(&format!("{prefix}+{}", B64.encode(&wrong))).is_err());
    let bad_hash = good.trim().replacen("91b65abd", "91b65abe", 1);
    assert!(CosignatureVerifier::parse(&bad_hash).is_err());
    assert!(MlDsa44PublicKey::from_bytes(&[0u8; 32]).is_err());
    // Names over 255 bytes cannot be in the message.
    let long = "w".repeat(256);
    assert!(CosignatureSigner::new_mldsa44(&long, &[6u8; 32]).is_err());
    assert!(subtree_message(&long, 0, "o", 0, 1, &Hash([0; 32])).is_err());
    assert!(subtree_message("w", 0, "", 0, 1, &Hash([0; 32])).is_err());
    // A subtree not starting at zero must carry timestamp zero; start must not exceed end.
    assert!(subtree_message("w", 5, "o", 1, 2, &Hash([0; 32])).is_err());
    assert!(subtree_message("w", 0, "o", 3, 2, &Hash([0; 32])).is_err());
    assert!(subtree_message("w", 0, "o", 1, 2, &Hash([0; 32])).is_ok());
    // Timestamps over 2^63 - 1 are refused when signing and when verifying.
    let w = witness();
    assert!(w.sign(SPEC_BODY, 1 << 63).is_err());
    let mut line = w.sign(SPEC_BODY, TS).expect("sign");
    line.sig[..8].copy_from_slice(&(1u64 << 63).to_be_bytes());
    assert!(w.verifier().verify(SPEC_BODY, &line.sig).is_err());
    assert!(matches!(w.verifier().key, CosignerKey::MlDsa44(_)));
}
