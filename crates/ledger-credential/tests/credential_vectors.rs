//! RFC 9474 conformance of the credential wrapper, variant RSABSSA-SHA384-PSS-Randomized.
//!
//! Vector source: RFC 9474 Appendix A, the RSABSSA-SHA384-PSS-Randomized test vector
//! (`tests/data/rfc9474_sha384_pss_randomized.json`, values copied in hex).

use blind_rsa_signatures::reexports::crypto_bigint::BoxedUint;
use blind_rsa_signatures::{MessageRandomizer, PSS, Randomized, SecretKey, Sha384, Signature};
use ledger_credential::{self as credential, IssuerPublicKey};
use std::convert::Infallible;

const VECTOR: &str = include_str!("data/rfc9474_sha384_pss_randomized.json");

fn field(name: &str) -> Vec<u8> {
    let v: serde_json::Value = serde_json::from_str(VECTOR).expect("vector json");
    let s = v[name].as_str().expect("field");
    let s = if s.len() % 2 == 1 {
        format!("0{s}")
    } else {
        s.to_string()
    };
    hex::decode(s).expect("hex")
}

/// DER length octets.
fn der_len(n: usize) -> Vec<u8> {
    match n {
        0..=127 => vec![n as u8],
        128..=255 => vec![0x81, n as u8],
        _ => vec![0x82, (n >> 8) as u8, n as u8],
    }
}

fn der(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend(der_len(body.len()));
    v.extend_from_slice(body);
    v
}

fn der_uint(b: &[u8]) -> Vec<u8> {
    let mut b: Vec<u8> = b.iter().copied().skip_while(|x| *x == 0).collect();
    if b.first().is_some_and(|x| *x >= 0x80) {
        b.insert(0, 0);
    }
    der(0x02, &b)
}

/// SubjectPublicKeyInfo (rsaEncryption) built by hand from n and e, independently of the crates.
fn spki(n: &[u8], e: &[u8]) -> Vec<u8> {
    let alg = der(
        0x30,
        &[
            &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01][..],
            &[0x05, 0x00],
        ]
        .concat(),
    );
    let rsa_key = der(0x30, &[der_uint(n), der_uint(e)].concat());
    let bits = der(0x03, &[&[0u8][..], &rsa_key].concat());
    der(0x30, &[alg, bits].concat())
}

#[test]
fn rfc9474_signature_verifies_with_our_key_encoding() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(spki(&field("n"), &field("e")));
    let pk = IssuerPublicKey::from_base64(&b64).expect("SPKI of the RFC key");
    assert_eq!(pk.to_base64().expect("encode"), b64, "our SPKI is the canonical one");
    let prefix: [u8; 32] = field("msg_prefix").try_into().expect("32 bytes");
    let sig = Signature(field("sig"));
    let msg = field("msg");
    pk.inner()
        .verify(&sig, Some(MessageRandomizer(prefix)), &msg)
        .expect("RFC 9474 signature verifies");
    // Changing the message, the randomizer or one signature bit breaks it.
    let mut bad_msg = msg.clone();
    bad_msg[0] ^= 1;
    assert!(
        pk.inner()
            .verify(&sig, Some(MessageRandomizer(prefix)), &bad_msg)
            .is_err()
    );
    assert!(pk.inner().verify(&sig, Some(MessageRandomizer([0; 32])), &msg).is_err());
    let mut bad_sig = sig.clone();
    bad_sig.0[10] ^= 1;
    assert!(
        pk.inner()
            .verify(&bad_sig, Some(MessageRandomizer(prefix)), &msg)
            .is_err()
    );
}

/// Feeds the RFC's randomness in the order the crate asks for it: message randomizer, PSS salt,
/// then the blinding factor r (RFC: inv = r⁻¹ mod n, so r = inv⁻¹ mod n), little-endian.
struct Replay(Vec<Vec<u8>>);

impl blind_rsa_signatures::reexports::rand::TryRng for Replay {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(0)
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(0)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        let next = if self.0.is_empty() {
            Vec::new()
        } else {
            self.0.remove(0)
        };
        dst.fill(0);
        let n = dst.len().min(next.len());
        dst[..n].copy_from_slice(&next[..n]);
        Ok(())
    }
}
impl blind_rsa_signatures::reexports::rand::TryCryptoRng for Replay {}

fn uint(name: &str) -> BoxedUint {
    let b = field(name);
    BoxedUint::from_be_slice(&b, 4096).expect("uint")
}

#[test]
fn rfc9474_blind_sign_finalize_reproduced() {
    use rsa::RsaPrivateKey; // the pinned dev-dependency (same crate the wrapper uses)
    let (n, e, d, p, q) = (uint("n"), uint("e"), uint("d"), uint("p"), uint("q"));
    let inner = RsaPrivateKey::from_components(n.clone(), e, d, vec![p, q]).expect("RFC key");
    let sk = SecretKey::<Sha384, PSS, Randomized>::new(inner);
    let pk = sk.public_key().expect("public key");
    let nz = n.to_nz().expect("nonzero modulus");
    let r = uint("inv").invert_mod(&nz).expect("invertible");
    let mut rng = Replay(vec![field("msg_prefix"), field("salt"), r.to_le_bytes().to_vec()]);
    let blinded = pk.blind(&mut rng, field("msg")).expect("blind");
    assert_eq!(hex::encode(&blinded.blind_message.0), hex::encode(field("blinded_msg")));
    let blind_sig = sk.blind_sign(&blinded.blind_message).expect("blind sign");
    assert_eq!(hex::encode(&blind_sig.0), hex::encode(field("blind_sig")));
    let sig = pk.finalize(&blind_sig, &blinded, field("msg")).expect("finalize");
    assert_eq!(hex::encode(&sig.0), hex::encode(field("sig")));
}

#[test]
fn credential_message_is_documented_bytes() {
    // docs/ballots.md: "ledger-credential-v1" 0x00 election_id 0x00 key(32).
    let m = credential::credential_message("el-2026-017", &[0xab; 32]);
    assert_eq!(&m[..21], b"ledger-credential-v1\0");
    assert_eq!(&m[21..33], b"el-2026-017\0");
    assert_eq!(&m[33..], &[0xab; 32]);
}
