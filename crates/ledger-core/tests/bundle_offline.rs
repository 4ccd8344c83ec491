//! Court bundles verify offline, and every tampering is named.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::SigningKey;
use ledger_core::bundle::{
    BUNDLE_FORMAT, Bundle, BundleConsistency, BundleEntry, ConsistencyError, TlogProofError, parse_tlog_proof,
    tlog_proof, verify_bundle,
};
use ledger_core::checkpoint::Checkpoint;
use ledger_core::compact::CompactTree;
use ledger_core::dsse::Envelope;
use ledger_core::entry::Entry;
use ledger_core::hash::{Hash, leaf_hash};
use ledger_core::keys::public_key_to_base64;
use ledger_core::merkle;
use ledger_core::note::NoteSigner;
use ledger_core::registry::payload_type;

struct Log {
    leaves: Vec<Vec<u8>>,
    hashes: Vec<Hash>,
    signer: NoteSigner,
}

fn rec(kind: &str, v: serde_json::Value, keys: &[&SigningKey]) -> Envelope {
    let mut e = Envelope::new(payload_type(kind), serde_json::to_vec(&v).expect("json"));
    keys.iter().for_each(|k| e.sign(k));
    e
}

fn build() -> (Log, SigningKey) {
    let node = SigningKey::from_bytes(&[1; 32]);
    let admin = SigningKey::from_bytes(&[2; 32]);
    let reg = SigningKey::from_bytes(&[3; 32]);
    let origin = "ledger.test/bundle";
    let envs = vec![
        rec(
            "charter",
            serde_json::json!({"version": 1, "origin": origin, "node_key": public_key_to_base64(&node.verifying_key()),
                "admins": [{"name": "admin", "key": public_key_to_base64(&admin.verifying_key())}], "policy": {"admin_quorum": 1}}),
            &[&node, &admin],
        ),
        rec(
            "key.enroll",
            serde_json::json!({"version": 1, "name": "Org dept registrar", "key": public_key_to_base64(&reg.verifying_key()),
                "roles": ["registrar"], "scope": {"organization": "org-1", "kinds": []}}),
            &[&admin],
        ),
        rec(
            "note",
            serde_json::json!({"version": 1, "text": "pool fixed", "subject": "cadre-1"}),
            &[&reg],
        ),
        rec("note", serde_json::json!({"version": 1, "text": "other"}), &[&reg]),
        rec(
            "note",
            serde_json::json!({"version": 1, "text": "decision", "subject": "cadre-1"}),
            &[&reg],
        ),
    ];
    let mut ct = CompactTree::new();
    let mut leaves = Vec::new();
    let mut hashes = Vec::new();
    for (i, env) in envs.into_iter().enumerate() {
        let e = Entry {
            index: i as u64,
            timestamp_micros: 1_767_225_600_000_000 + i as u64,
            prev_root: ct.root(),
            envelope: env,
        };
        let b = e.encode();
        let h = leaf_hash(&b);
        ct.append(h);
        leaves.push(b);
        hashes.push(h);
    }
    (
        Log {
            leaves,
            hashes,
            signer: NoteSigner::new(origin, node).expect("signer"),
        },
        reg,
    )
}

impl Log {
    fn note(&self, size: usize) -> String {
        let cp = Checkpoint {
            origin: self.signer.verifier().name.clone(),
            size: size as u64,
            root: merkle::root_of(&self.hashes[..size]),
            extensions: vec![],
        };
        cp.sign(&self.signer).expect("sign").to_text()
    }

    fn entry(&self, i: usize, size: usize, note: &str, tlog: bool) -> BundleEntry {
        let p = merkle::inclusion_proof(&self.hashes[..size], i as u64, size as u64).expect("proof");
        BundleEntry {
            index: i as u64,
            leaf: B64.encode(&self.leaves[i]),
            tlog_proof: if tlog {
                tlog_proof(i as u64, &p, note)
            } else {
                String::new()
            },
            inclusion_proof: p,
        }
    }

    fn bundle(&self, records: &[usize]) -> Bundle {
        let size = self.leaves.len();
        let note = self.note(size);
        Bundle {
            format: BUNDLE_FORMAT.into(),
            origin: self.signer.verifier().name.clone(),
            node_key: self.signer.verifier().to_string_key(),
            records: records.iter().map(|i| self.entry(*i, size, &note, true)).collect(),
            registry: vec![self.entry(0, size, &note, false), self.entry(1, size, &note, false)],
            consistency: Some(BundleConsistency {
                from_checkpoint: self.note(3),
                proof: merkle::consistency_proof(self.hashes.as_slice(), 3, size as u64).expect("proof"),
            }),
            checkpoint: note,
            summary: String::new(),
            timestamps: Vec::new(),
        }
    }
}

#[test]
fn honest_bundle_verifies_offline() {
    let (log, _) = build();
    let b = log.bundle(&[2, 4]);
    let v = verify_bundle(&b, Some(log.signer.verifier()));
    assert!(v.ok(), "{v:#?}");
    assert_eq!(v.records.len(), 2);
    assert_eq!(v.records[0].signers[0].name, "Org dept registrar");
    assert_eq!(v.records[0].signers[0].roles, vec!["registrar".to_string()]);
    assert_eq!(v.consistency, Some(Ok(3)));
    // Round trip through JSON, as a court receives it.
    let text = serde_json::to_string_pretty(&b).expect("json");
    let back: Bundle = serde_json::from_str(&text).expect("parse");
    assert!(verify_bundle(&back, None).ok());
    assert!(verify_bundle(&back, None).trust.contains("no --trusted-key"));
    // The tlog-proof text is what other tools read.
    let (i, p, n) = parse_tlog_proof(&b.records[0].tlog_proof).expect("tlog-proof");
    assert_eq!(
        (i, p, n),
        (2, b.records[0].inclusion_proof.clone(), b.checkpoint.clone())
    );
}

#[test]
fn tampering_is_named() {
    let (log, reg) = build();
    let good = log.bundle(&[2]);
    let check = |b: &Bundle, what: &str, needle: &str| {
        let v = verify_bundle(b, Some(log.signer.verifier()));
        assert!(!v.ok(), "{what} verified");
        let all = format!("{v:?}");
        assert!(all.contains(needle), "{what}: expected {needle} in {all}");
    };
    // A changed record (payload edited, re-encoded): inclusion fails.
    let mut b = good.clone();
    let mut e = Entry::decode(&log.leaves[2]).expect("decode");
    e.envelope.payload = br#"{"version":1,"text":"pool changed","subject":"cadre-1"}"#.to_vec();
    b.records[0].leaf = B64.encode(e.encode());
    check(&b, "edited record", "INCLUSION_PROOF_INVALID");
    // The same edit re-signed by the registrar still fails inclusion (the log never held it).
    e.envelope.signatures.clear();
    e.envelope.sign(&reg);
    b.records[0].leaf = B64.encode(e.encode());
    check(&b, "re-signed record", "INCLUSION_PROOF_INVALID");
    // A flipped proof hash.
    let mut b = good.clone();
    b.records[0].inclusion_proof[0].0[0] ^= 1;
    check(&b, "proof hash", "INCLUSION_PROOF_INVALID");
    // A forged checkpoint signature.
    let mut b = good.clone();
    b.checkpoint = b
        .checkpoint
        .replacen("ledger.test/bundle\n5\n", "ledger.test/bundle\n6\n", 1);
    check(&b, "forged checkpoint", "CHECKPOINT_BAD_SIGNATURE");
    // Another node key than the trusted one.
    let other = NoteSigner::new("ledger.test/bundle", SigningKey::from_bytes(&[9; 32])).expect("signer");
    let v = verify_bundle(&good, Some(other.verifier()));
    assert!(!v.ok() && format!("{:?}", v.problems).contains("not the trusted key"));
    // A court's earlier checkpoint from a forked history.
    let mut b = good.clone();
    let forked = Checkpoint {
        origin: "ledger.test/bundle".into(),
        size: 3,
        root: Hash::digest(b"fork"),
        extensions: vec![],
    };
    if let Some(c) = b.consistency.as_mut() {
        c.from_checkpoint = forked.sign(&log.signer).expect("sign").to_text();
    }
    let v = verify_bundle(&b, Some(log.signer.verifier()));
    assert!(!v.ok(), "fork verified");
    let Some(Err(fork @ ConsistencyError::Fork { old_size: 3, .. })) = &v.consistency else {
        panic!("fork: expected ConsistencyError::Fork, got {:?}", v.consistency);
    };
    // The verdict's JSON (`bundle verify --json`) carries the message, as it always has.
    let json = serde_json::to_value(&v).expect("verdict json");
    assert_eq!(json["consistency"], serde_json::json!({ "Err": fork.to_string() }));
    assert!(
        fork.to_string()
            .starts_with("FORK: the earlier checkpoint (size 3, root "),
        "{fork}"
    );
    // A tlog-proof that disagrees.
    let mut b = good.clone();
    b.records[0].tlog_proof = b.records[0].tlog_proof.replacen("index 2", "index 3", 1);
    check(&b, "tlog-proof", "tlog-proof");
    // Texts that are not tlog-proofs are refused with the exact reason.
    assert_eq!(parse_tlog_proof("index 1\n"), Err(TlogProofError::MissingHeader));
    assert_eq!(
        parse_tlog_proof("c2sp.org/tlog-proof@v1\nindex 01\n\n"),
        Err(TlogProofError::IndexNotDecimal)
    );
    assert_eq!(
        parse_tlog_proof("c2sp.org/tlog-proof@v1\nindex 1\n!!\n\n").map_err(|e| e.to_string()),
        Err("proof line is not base64".to_string())
    );
    // Without the key record, the registrar is unknown.
    let mut b = good.clone();
    b.registry.truncate(1);
    check(&b, "missing enrollment", "UNAUTHORIZED_SIGNER");
}
