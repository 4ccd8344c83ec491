//! RFC 3161 tokens made by OpenSSL (`openssl ts -reply`, a real TSA implementation) with a test
//! PKI, verified and refused by `ledger-tsa`.
#![allow(missing_docs, clippy::unwrap_used)]

#[path = "../../../tests/support_tsa/mod.rs"]
mod support_tsa;

use ledger_tsa::{TsaError, certs_from_pem, request, token_from_response, verify_token};
use sha2::Digest as _;
use support_tsa::TestTsa;

fn imprint(data: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(data).into()
}

fn roots(t: &TestTsa, name: &str) -> Vec<ledger_tsa::X509Certificate> {
    certs_from_pem(&std::fs::read(t.path(name)).unwrap()).unwrap()
}

#[test]
fn openssl_tokens_verify_and_forgeries_are_refused() {
    let t = TestTsa::new();
    let data = b"ledger.example/test\n5\nAAAA\n";
    let q = request(&imprint(data), &[0x01, 0x23, 0x45]).unwrap();
    let token = token_from_response(&t.reply(&q, "tsa.pem")).unwrap();
    let ca = roots(&t, "ca.pem");

    // The right root: verifies, with the TSA's name and a plausible time.
    let v = verify_token(&token, &imprint(data), &ca).unwrap();
    assert_eq!(v.tsa_name, "CN=TEST ONLY ledger TSA");
    assert_eq!(v.policy, "1.3.6.1.4.1.99999.1");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(v.gen_time_unix + 600 > now && v.gen_time_unix <= now + 600, "{v:?}");

    // Cost of one verification (reported, not asserted).
    let t0 = std::time::Instant::now();
    for _ in 0..20 {
        verify_token(&token, &imprint(data), &ca).unwrap();
    }
    eprintln!(
        "verify_token: {:?} per token ({} bytes)",
        t0.elapsed() / 20,
        token.len()
    );

    // A root the TSA does not chain to.
    let e = verify_token(&token, &imprint(data), &roots(&t, "other-ca.pem")).unwrap_err();
    assert!(matches!(e, TsaError::Untrusted(_)), "{e}");
    assert!(e.to_string().starts_with("TSA_UNTRUSTED"), "{e}");

    // Other data: the imprint differs.
    let e = verify_token(&token, &imprint(b"other"), &ca).unwrap_err();
    assert!(matches!(e, TsaError::WrongImprint { .. }), "{e}");

    // A TSA certificate that had expired before genTime.
    let expired = token_from_response(&t.reply(&q, "tsa-expired.pem")).unwrap();
    let e = verify_token(&expired, &imprint(data), &ca).unwrap_err();
    assert!(matches!(e, TsaError::CertNotValid(_)), "{e}");

    // Every truncation of the response and of the token is refused without a panic.
    let resp = t.reply(&q, "tsa.pem");
    for n in 0..resp.len() {
        assert!(token_from_response(&resp[..n]).is_err(), "response cut at {n} accepted");
    }
    for n in 0..token.len() {
        assert!(
            verify_token(&token[..n], &imprint(data), &ca).is_err(),
            "token cut at {n} accepted"
        );
        assert!(ledger_tsa::inspect(&token[..n]).is_err(), "token cut at {n} read");
    }

    // Every single-byte change anywhere in the token is refused (signature, digest, binding,
    // chain, or DER), never accepted.
    for i in 0..token.len() {
        let mut bad = token.clone();
        bad[i] ^= 0x01;
        assert!(
            verify_token(&bad, &imprint(data), &ca).is_err(),
            "byte {i} flipped still verifies"
        );
    }
}

#[test]
fn refused_and_malformed_responses() {
    // status 2 (rejection) with a status string, as a TSA sends it.
    let resp = [
        0x30, 0x0b, 0x30, 0x09, 0x02, 0x01, 0x02, 0x30, 0x04, 0x0c, 0x02, b'n', b'o',
    ];
    let e = token_from_response(&resp).unwrap_err();
    assert_eq!(
        e,
        TsaError::Refused {
            status: 2,
            text: ": no".into()
        }
    );
    assert!(matches!(token_from_response(b"not der"), Err(TsaError::Malformed(_))));
}
