//! Prints the golden vectors that `docs/format.md` carries (run after any format change and paste).
use ledger_core::checkpoint::Checkpoint;
use ledger_core::dsse::Envelope;
use ledger_core::entry::Entry;
use ledger_core::hash::{Hash, empty_root};
use ledger_core::keys::key_id;
use ledger_core::note::NoteSigner;

fn main() {
    let signer = ed25519_dalek::SigningKey::from_bytes(&[1u8; 32]);
    let mut env = Envelope::new("application/vnd.ledger.test+json", br#"{"hello":"world"}"#.to_vec());
    env.sign(&signer);
    let e = Entry {
        index: 1,
        timestamp_micros: 1_767_225_600_000_000,
        prev_root: Hash::digest(b"prev"),
        envelope: env,
    };
    println!("test_public_key\n{}", hex::encode(signer.verifying_key().as_bytes()));
    println!("test_key_id\n{}", key_id(&signer.verifying_key()));
    println!("entry_dsse_sig\n{}", hex::encode(&e.envelope.signatures[0].sig));
    println!("entry_leaf\n{}", hex::encode(e.encode()));
    println!("entry_leaf_hash\n{}", e.leaf_hash());
    let log =
        NoteSigner::new("ledger.example/test", ed25519_dalek::SigningKey::from_bytes(&[2u8; 32])).expect("signer");
    println!("test_log_vkey\n{}", log.verifier().to_string_key());
    let cp = Checkpoint {
        origin: "ledger.example/test".into(),
        size: 0,
        root: empty_root(),
        extensions: vec![],
    };
    print!("checkpoint_note\n{}", cp.sign(&log).expect("sign").to_text());
    let witness = ledger_core::cosignature::CosignatureSigner::new(
        "witness.example/w1",
        ed25519_dalek::SigningKey::from_bytes(&[3u8; 32]),
    )
    .expect("witness");
    println!("test_witness_vkey\n{}", witness.verifier().to_string_key());
    let mut note = cp.sign(&log).expect("sign");
    note.signatures
        .push(witness.sign(&note.text, 1_679_315_147).expect("cosign"));
    print!("cosigned_checkpoint_note\n{}", note.to_text());
    // ML-DSA-44 (C2SP tlog-cosignature 0x06): test seed 0x06 × 32, the spec's example checkpoint.
    let pq = ledger_core::cosignature::CosignatureSigner::new_mldsa44("witness.example/pq1", &[6u8; 32]).expect("pq");
    let body = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
    println!("test_mldsa44_witness_vkey\n{}", pq.verifier().to_string_key());
    let msg = ledger_core::cosignature::checkpoint_subtree_message("witness.example/pq1", 1_679_315_147, body)
        .expect("message");
    println!("mldsa44_cosigned_message\n{}", hex::encode(msg));
    println!(
        "mldsa44_cosignature_line\n{}",
        pq.sign(body, 1_679_315_147).expect("cosign").to_line()
    );
}
