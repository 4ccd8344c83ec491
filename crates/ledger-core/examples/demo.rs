//! Core demo: signs a few records, builds the log, signs a checkpoint and checks proofs.
//! This is the main job until the node lands.

use ledger_core::checkpoint::{Checkpoint, open_checkpoint};
use ledger_core::compact::CompactTree;
use ledger_core::dsse::Envelope;
use ledger_core::entry::Entry;
use ledger_core::hash::Hash;
use ledger_core::merkle;
use ledger_core::note::NoteSigner;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Development keys, generated fresh each run.
    let client = ed25519_dalek::SigningKey::from_bytes(&rand_seed(1));
    let log = NoteSigner::new(
        "ledger.example/demo",
        ed25519_dalek::SigningKey::from_bytes(&rand_seed(2)),
    )?;
    let mut tree = CompactTree::new();
    let mut leaves: Vec<Hash> = Vec::new();
    for i in 0..5u64 {
        let mut env = Envelope::new(
            "application/vnd.ledger.demo+json",
            format!(r#"{{"record":{i}}}"#).into_bytes(),
        );
        env.sign(&client);
        let e = Entry {
            index: i,
            timestamp_micros: 1_767_225_600_000_000 + i,
            prev_root: tree.root(),
            envelope: env,
        };
        let lh = e.leaf_hash();
        println!("entry {i}: leaf hash {lh}");
        tree.append(lh);
        leaves.push(lh);
    }
    let cp = Checkpoint {
        origin: "ledger.example/demo".into(),
        size: tree.size(),
        root: tree.root(),
        extensions: vec![],
    };
    let note = cp.sign(&log)?.to_text();
    println!("\nsigned checkpoint:\n{note}");
    let opened = open_checkpoint(&note, log.verifier())?;
    let proof = merkle::inclusion_proof(leaves.as_slice(), 3, 5)?;
    merkle::verify_inclusion(3, 5, &leaves[3], &proof, &opened.checkpoint.root)?;
    println!(
        "inclusion proof of entry 3 ({} hashes) verifies against the signed checkpoint",
        proof.len()
    );
    println!("verifier key: {}", log.verifier().to_string_key());
    Ok(())
}

fn rand_seed(tag: u8) -> [u8; 32] {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut s = Hash::digest(&[&t.to_le_bytes()[..], &[tag]].concat()).0;
    s[0] ^= tag;
    s
}
