//! Sealed complainant identities: RFC 9180 conformance of the HPKE suite and the unseal/opening rules.
//!
//! Vector source: RFC 9180 Appendix A.2.1, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//! ChaCha20Poly1305, base mode, first encryption (sequence number 0).

use ledger_seal::{self as seal, EscrowPublicKey, EscrowSecretKey, Opening, SealError};
use std::convert::Infallible;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).expect("hex")
}

const IKM_E: &str = "909a9b35d3dc4713a5e72a4da274b55d3d3821a37e5d099e74a647db583a904b";
const PK_RM: &str = "4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a";
const SK_RM: &str = "8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb";
const ENC: &str = "1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a";
const INFO: &str = "4f6465206f6e2061204772656369616e2055726e";
const PT: &str = "4265617574792069732074727574682c20747275746820626561757479";
const AAD0: &str = "436f756e742d30";
const CT0: &str = "1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28";

/// Hands out fixed bytes: the RFC's ikmE, so that DeriveKeyPair(ikmE) gives the vector's ephemeral key.
struct Fixed(Vec<u8>);

impl hpke::rand_core::TryRng for Fixed {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(0)
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(0)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        let n = dst.len().min(self.0.len());
        dst[..n].copy_from_slice(&self.0[..n]);
        self.0.drain(..n);
        Ok(())
    }
}
impl hpke::rand_core::TryCryptoRng for Fixed {}

/// A deterministic test RNG (SHA-256 counter stream); tests only.
struct TestRng(u64);

impl hpke::rand_core::TryRng for TestRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(self.try_next_u64()? as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(32) {
            self.0 += 1;
            let d = ledger_tlog::hash::Hash::digest(&self.0.to_le_bytes());
            chunk.copy_from_slice(&d.0[..chunk.len()]);
        }
        Ok(())
    }
}
impl hpke::rand_core::TryCryptoRng for TestRng {}

#[test]
fn rfc9180_a21_seal_reproduced_and_opened() {
    let pk = EscrowPublicKey(h(PK_RM).try_into().expect("32"));
    let (enc, ct) = seal::hpke_seal(&mut Fixed(h(IKM_E)), &pk, &h(INFO), &h(AAD0), &h(PT)).expect("seal");
    assert_eq!(hex::encode(enc), ENC);
    assert_eq!(hex::encode(&ct), CT0);
    let sk = EscrowSecretKey::from_bytes(h(SK_RM).try_into().expect("32"));
    assert_eq!(sk.public_key().expect("pk"), pk, "skRm and pkRm match");
    let pt = seal::hpke_open(&sk, &enc, &h(INFO), &h(AAD0), &ct).expect("open");
    assert_eq!(pt, h(PT));
    assert_eq!(
        seal::hpke_open(&sk, &enc, &h(INFO), b"other aad", &ct),
        Err(SealError::Open)
    );
}

#[test]
fn unseal_with_the_escrow_key_gives_an_opening_anyone_can_check() {
    let mut rng = TestRng(1);
    let (sk, pk) = EscrowSecretKey::generate(&mut rng);
    let (sealed, kept) =
        seal::seal_identity(&mut rng, "escrow-court-1", &pk, "petition-2026-311", "citizen-778").expect("seal");
    sealed.check().expect("well-formed");
    let opening = seal::unseal(&sk, "petition-2026-311", &sealed).expect("court opens");
    assert_eq!(opening, kept);
    assert_eq!(opening.identity, "citizen-778");
    // Anyone, with only the ledger's commitment: the opening verifies…
    assert_eq!(opening.verify(&sealed.commitment), Ok(()));
    // …the commitment is SHA-256(salt ‖ identity) exactly…
    let mut pre = h(&opening.salt);
    pre.extend_from_slice(b"citizen-778");
    assert_eq!(ledger_tlog::hash::Hash::digest(&pre).to_hex(), sealed.commitment);
    // …and a different claimed identity (or salt) does not.
    let lie = Opening {
        identity: "citizen-779".into(),
        ..opening.clone()
    };
    assert_eq!(lie.verify(&sealed.commitment), Err(SealError::CommitmentMismatch));
    let lie = Opening {
        salt: "00".repeat(32),
        ..opening
    };
    assert_eq!(lie.verify(&sealed.commitment), Err(SealError::CommitmentMismatch));
}

#[test]
fn wrong_key_other_complaint_or_tampering_cannot_open() {
    let mut rng = TestRng(7);
    let (_, pk) = EscrowSecretKey::generate(&mut rng);
    let (other_sk, _) = EscrowSecretKey::generate(&mut rng);
    let sk = EscrowSecretKey::from_bytes([0; 32]);
    let (sealed, _) = seal::seal_identity(&mut rng, "escrow-1", &pk, "c-1", "citizen-1").expect("seal");
    assert_eq!(seal::unseal(&other_sk, "c-1", &sealed), Err(SealError::Open));
    assert!(seal::unseal(&sk, "c-1", &sealed).is_err());
    // The right key but another complaint id (info differs).
    let (right_sk, right_pk) = EscrowSecretKey::generate(&mut rng);
    let (sealed, _) = seal::seal_identity(&mut rng, "escrow-1", &right_pk, "c-1", "citizen-1").expect("seal");
    assert_eq!(seal::unseal(&right_sk, "c-2", &sealed), Err(SealError::Open));
    // A swapped commitment (aad differs) or a flipped ciphertext byte.
    let mut swapped = sealed.clone();
    swapped.commitment = "11".repeat(32);
    assert_eq!(seal::unseal(&right_sk, "c-1", &swapped), Err(SealError::Open));
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut ct = b64.decode(&sealed.ciphertext).expect("b64");
    ct[3] ^= 0x80;
    let mut tampered = sealed.clone();
    tampered.ciphertext = b64.encode(ct);
    assert_eq!(seal::unseal(&right_sk, "c-1", &tampered), Err(SealError::Open));
    assert!(seal::unseal(&right_sk, "c-1", &sealed).is_ok());
}

#[test]
fn bad_identities_and_fields_are_refused() {
    let mut rng = TestRng(9);
    let (_, pk) = EscrowSecretKey::generate(&mut rng);
    assert_eq!(
        seal::seal_identity(&mut rng, "e", &pk, "c", "").map(drop),
        Err(SealError::Identity)
    );
    assert_eq!(
        seal::seal_identity(&mut rng, "e", &pk, "c", &"x".repeat(257)).map(drop),
        Err(SealError::Identity)
    );
    let (sealed, _) = seal::seal_identity(&mut rng, "e", &pk, "c", "id").expect("seal");
    let mut bad = sealed.clone();
    bad.enc = "AAAA".into();
    assert!(bad.check().is_err());
    let mut bad = sealed;
    bad.commitment = "AB".repeat(32);
    assert!(bad.check().is_err(), "uppercase commitment");
    assert!(EscrowPublicKey::from_base64("AAAA").is_err());
}
