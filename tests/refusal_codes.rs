//! Refusal codes over the real gRPC interface: a key that signs an envelope twice is refused with
//! the one mapping of `RegistryError::fault` (INVALID_RECORD → INVALID_ARGUMENT) on Append and on
//! AppendBatch alike, and nothing is appended.

mod support;

use ledger_proto::pb;
use support::*;
use tonic::Code;

const TWICE: &str = "signed the envelope more than once";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_signer_is_invalid_argument_on_append_and_batch() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, "ledger.test/refusal-codes", &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let reg = new_key();
    let node = Node::start(&data);
    let mut c = node.client().await;
    append(&mut c, &enroll(&reg, "registrar", &["registrar"], &[&admin]), "enroll")
        .await
        .expect("enroll");

    // The attack: a valid note whose only signer signs twice (as if two signers had signed).
    let twice = record("note", note_payload(1), &[&reg, &reg]);
    assert_eq!(twice.signatures.len(), 2);
    let e = append(&mut c, &twice, "twice")
        .await
        .expect_err("a key signing twice is refused");
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");
    assert!(e.message().contains(TWICE), "{e}");

    // The same through AppendBatch (batch signature verification), next to a good item.
    let good = record("note", note_payload(2), &[&reg]);
    let r = c
        .append_batch(pb::AppendBatchRequest {
            items: vec![req(&twice, "", false), req(&good, "", false)],
            wait_for_checkpoint: false,
        })
        .await
        .expect("batch")
        .into_inner();
    assert_eq!(
        r.results[0].error_code,
        Code::InvalidArgument as i32,
        "{:?}",
        r.results[0]
    );
    assert!(r.results[0].error_message.contains(TWICE), "{:?}", r.results[0]);
    let ok = r.results[1].ok.as_ref().expect("the good item lands");
    assert_eq!(ok.index, 2, "only the enrollment came before it");

    // An administrator co-signing twice does not make a quorum either: same code.
    let admin_twice = enroll(&new_key(), "other", &["registrar"], &[&admin, &admin]);
    let e = append(&mut c, &admin_twice, "admin-twice").await.expect_err("refused");
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");
    assert!(e.message().contains(TWICE), "{e}");
}
