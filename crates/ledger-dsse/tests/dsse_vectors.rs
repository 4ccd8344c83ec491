//! DSSE PAE vectors.
//!
//! Source: secure-systems-lab/dsse `protocol.md`, the worked example
//! `DSSEv1 29 http://example.com/HelloWorld 11 hello world`.

use ledger_dsse::dsse::{Envelope, pae};
use ledger_dsse::keys::key_id;

#[test]
fn dsse_pae_spec_vector() {
    let got = pae("http://example.com/HelloWorld", b"hello world");
    assert_eq!(got, b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec());
    assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
}

#[test]
fn dsse_sign_verify_and_tamper() {
    // Test key: seed of 32 bytes 0x01, published here for tests only.
    let key = ed25519_dalek::SigningKey::from_bytes(&[1u8; 32]);
    let mut env = Envelope::new("application/vnd.test+json", br#"{"a":1}"#.to_vec());
    env.sign(&key);
    assert_eq!(env.signatures[0].keyid, key_id(&key.verifying_key()));
    env.verify_signature(0, &key.verifying_key()).expect("verifies");
    let json = env.to_json();
    let back = Envelope::from_json(&json).expect("json round trip");
    assert_eq!(back, env);

    let mut t = env.clone();
    t.payload[0] ^= 1;
    assert!(t.verify_signature(0, &key.verifying_key()).is_err(), "payload change");
    let mut t = env.clone();
    t.payload_type.push('x');
    assert!(t.verify_signature(0, &key.verifying_key()).is_err(), "type change");
    let mut t = env.clone();
    t.signatures[0].sig[10] ^= 0x40;
    assert!(t.verify_signature(0, &key.verifying_key()).is_err(), "signature change");
    let other = ed25519_dalek::SigningKey::from_bytes(&[2u8; 32]);
    assert!(env.verify_signature(0, &other.verifying_key()).is_err(), "other key");
    assert!(Envelope::from_json(r#"{"payloadType":"x","payload":"","signatures":[],"extra":1}"#).is_err());
}

#[test]
fn dsse_limits() {
    let mut env = Envelope::new("t", vec![0; ledger_dsse::dsse::limits::MAX_PAYLOAD + 1]);
    env.sign(&ed25519_dalek::SigningKey::from_bytes(&[1u8; 32]));
    assert!(env.check_limits().is_err());
    let env = Envelope::new("t", vec![]);
    assert!(env.check_limits().is_err(), "no signatures");
}
