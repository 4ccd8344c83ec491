//! Property tests for the tlog-witness add-checkpoint request parser: it never panics, and the
//! bodies it accepts are exactly the canonical ones, so that what it yields re-serializes byte for
//! byte to the body it was given (parse → serialize → parse is the identity).

use ledger_note::witness::{AddCheckpoint, MAX_ADD_CHECKPOINT_BYTES, MAX_PROOF_LINES};
use ledger_tlog::hash::Hash;
use proptest::prelude::*;

/// A checkpoint-like note text: the parser treats everything after the blank line as the note.
fn note_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(
            "example.org/log\n12\nq6ce6cGqr1E5dO7zmVHZbUqmMyWbqTbWeHC0jXd5DG0=\n\n— example.org/log AAAA\n".to_string()
        ),
        "[a-z./\n0-9+=— ]{0,200}",
        any::<String>(),
    ]
}

fn request() -> impl Strategy<Value = AddCheckpoint> {
    (
        any::<u64>(),
        proptest::collection::vec(any::<[u8; 32]>(), 0..=MAX_PROOF_LINES),
        note_text(),
    )
        .prop_map(|(old_size, proof, checkpoint)| AddCheckpoint {
            old_size,
            proof: proof.into_iter().map(Hash).collect(),
            checkpoint,
        })
}

/// One edit of a byte string.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(i, x)| Mutation::Flip(i, x)),
        (
            any::<usize>(),
            prop_oneof![Just(b'\n'), Just(b'0'), Just(b'='), Just(b' '), any::<u8>()]
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let n = bytes.len();
    match *m {
        Mutation::Flip(i, x) if n > 0 => bytes[i % n] ^= x,
        Mutation::Insert(i, b) => bytes.insert(i % (n + 1), b),
        Mutation::Delete(i) if n > 0 => {
            bytes.remove(i % n);
        }
        Mutation::Truncate(i) => bytes.truncate(i % (n + 1)),
        _ => {}
    }
}

/// Whatever `parse` accepts must re-serialize to the very same body and parse back to itself.
fn check_canonical(body: &str) -> Result<(), TestCaseError> {
    if let Ok(r) = AddCheckpoint::parse(body) {
        prop_assert!(r.proof.len() <= MAX_PROOF_LINES);
        let again = r.to_body();
        prop_assert_eq!(&again, body, "an accepted body re-serializes differently");
        prop_assert_eq!(AddCheckpoint::parse(&again), Ok(r));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_and_accepted_bodies_are_canonical(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        check_canonical(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn arbitrary_text_with_the_request_shape_is_canonical_when_accepted(
        old in "old [0-9]{0,22}",
        lines in proptest::collection::vec("[A-Za-z0-9+/=]{0,46}", 0..4),
        rest in "[a-z\n ]{0,40}",
    ) {
        let body = format!("{old}\n{}\n{rest}", lines.iter().map(|l| format!("{l}\n")).collect::<String>());
        check_canonical(&body)?;
    }

    #[test]
    fn valid_requests_round_trip(r in request()) {
        let body = r.to_body();
        prop_assume!(body.len() <= MAX_ADD_CHECKPOINT_BYTES);
        let parsed = AddCheckpoint::parse(&body).expect("a serialized request parses");
        prop_assert_eq!(&parsed, &r);
        prop_assert_eq!(parsed.to_body(), body);
    }

    #[test]
    fn mutated_requests_never_panic_and_stay_canonical(
        r in request(),
        edits in proptest::collection::vec(mutation(), 1..6),
    ) {
        let mut bytes = r.to_body().into_bytes();
        for m in &edits {
            apply(&mut bytes, m);
        }
        check_canonical(&String::from_utf8_lossy(&bytes))?;
    }
}

#[test]
fn non_canonical_forms_are_refused() {
    let h = "q6ce6cGqr1E5dO7zmVHZbUqmMyWbqTbWeHC0jXd5DG0=";
    // Same hash with non-zero trailing bits: decodes leniently elsewhere, must be refused here.
    let trailing = "q6ce6cGqr1E5dO7zmVHZbUqmMyWbqTbWeHC0jXd5DG1=";
    for body in [
        format!("old 01\n{h}\n\nnote\n"),
        format!("old +1\n{h}\n\nnote\n"),
        format!("old  1\n{h}\n\nnote\n"),
        format!("old 1\n{trailing}\n\nnote\n"),
        format!("old 1\n{}\n\nnote\n", h.trim_end_matches('=')),
        format!("old 1\r\n{h}\n\nnote\n"),
        "old 18446744073709551616\n\nnote\n".to_string(),
    ] {
        assert!(AddCheckpoint::parse(&body).is_err(), "accepted {body:?}");
    }
    let ok = format!("old 1\n{h}\n\nnote\n");
    assert_eq!(AddCheckpoint::parse(&ok).expect("canonical").to_body(), ok);
}
