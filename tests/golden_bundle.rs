//! Golden court bundle: `tests/fixtures/sample.ledger-bundle.json` is rebuilt here from published
//! test keys (seeds 0x01…, 0x02…, 0x03… repeated) and fixed timestamps; the test fails if a single
//! byte differs, and the expected verdict text is pinned in `tests/fixtures/sample.verdict.txt`.
//! Regenerate both after an intended format change with `REGENERATE_GOLDEN=1 cargo test --test golden_bundle`.

#[allow(dead_code)]
#[path = "../verifier-cli/src/bundle.rs"]
mod bundle;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::SigningKey;
use ledger_core::bundle::{BUNDLE_FORMAT, Bundle, BundleConsistency, BundleEntry, tlog_proof, verify_bundle};
use ledger_core::checkpoint::Checkpoint;
use ledger_core::dsse::Envelope;
use ledger_core::entry::Entry;
use ledger_core::hash::{Hash, leaf_hash};
use ledger_core::keys::public_key_to_base64;
use ledger_core::merkle;
use ledger_core::note::NoteSigner;
use ledger_core::registry::payload_type;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn signed(kind: &str, v: serde_json::Value, k: &[&SigningKey]) -> Envelope {
    let mut e = Envelope::new(payload_type(kind), serde_json::to_vec(&v).expect("json"));
    k.iter().for_each(|x| e.sign(x));
    e
}

fn sample() -> Bundle {
    let (node, admin, reg) = (
        SigningKey::from_bytes(&[1; 32]),
        SigningKey::from_bytes(&[2; 32]),
        SigningKey::from_bytes(&[3; 32]),
    );
    let log = NoteSigner::new("ledger.example/golden", node.clone()).expect("signer");
    let pk = |k: &SigningKey| public_key_to_base64(&k.verifying_key());
    let envs = [
        signed(
            "charter",
            serde_json::json!({"version":1,"origin":"ledger.example/golden","node_key":pk(&node),"admins":[{"name":"admin 1","key":pk(&admin)}],"policy":{"admin_quorum":1}}),
            &[&node, &admin],
        ),
        signed(
            "key.enroll",
            serde_json::json!({"version":1,"name":"Organization dept. registrar","key":pk(&reg),"roles":["registrar"],"scope":{"organization":"org-county-7","kinds":[]}}),
            &[&admin],
        ),
        signed(
            "nomination",
            serde_json::json!({"version":1,"nomination_id":"nom-2026-017","subject":"cadre-0042","post":"deputy county head","organization":"org-county-7","reason":"performance review"}),
            &[&reg],
        ),
        signed(
            "note",
            serde_json::json!({"version":1,"text":"pool fixed before the draw","subject":"cadre-0042"}),
            &[&reg],
        ),
    ];
    let mut leaves = Vec::new();
    let mut hashes: Vec<Hash> = Vec::new();
    for (i, env) in envs.into_iter().enumerate() {
        let e = Entry {
            index: i as u64,
            timestamp_micros: 1_767_225_600_000_000 + 60_000_000 * i as u64,
            prev_root: merkle::root_of(&hashes),
            envelope: env,
        };
        leaves.push(e.encode());
        hashes.push(leaf_hash(leaves.last().expect("leaf")));
    }
    let note = |n: usize| {
        Checkpoint {
            origin: "ledger.example/golden".into(),
            size: n as u64,
            root: merkle::root_of(&hashes[..n]),
            extensions: vec![],
        }
        .sign(&log)
        .expect("sign")
        .to_text()
    };
    let cp = note(4);
    let entry = |i: usize, tlog: bool| {
        let p = merkle::inclusion_proof(hashes.as_slice(), i as u64, 4).expect("proof");
        BundleEntry {
            index: i as u64,
            leaf: B64.encode(&leaves[i]),
            tlog_proof: if tlog {
                tlog_proof(i as u64, &p, &cp)
            } else {
                String::new()
            },
            inclusion_proof: p,
        }
    };
    let mut b = Bundle {
        format: BUNDLE_FORMAT.into(),
        origin: "ledger.example/golden".into(),
        node_key: log.verifier().to_string_key(),
        records: vec![entry(2, true), entry(3, true)],
        registry: vec![entry(0, false), entry(1, false)],
        consistency: Some(BundleConsistency {
            from_checkpoint: note(2),
            proof: merkle::consistency_proof(hashes.as_slice(), 2, 4).expect("proof"),
        }),
        checkpoint: cp,
        summary: String::new(),
        timestamps: Vec::new(),
    };
    b.summary = bundle::render(&verify_bundle(&b, Some(log.verifier())));
    b
}

#[test]
fn golden_bundle_is_byte_stable_and_verifies() {
    let b = sample();
    let json_path = fixtures().join("sample.ledger-bundle.json");
    let verdict_path = fixtures().join("sample.verdict.txt");
    if std::env::var_os("REGENERATE_GOLDEN").is_some() {
        bundle::write(&json_path, &b).expect("write fixture");
    }
    let v = bundle::verify_file(&json_path, None).expect("verify fixture");
    let verdict = bundle::render(&v);
    if std::env::var_os("REGENERATE_GOLDEN").is_some() {
        std::fs::write(&verdict_path, &verdict).expect("write verdict");
    }
    let tmp = tempfile::NamedTempFile::new().expect("tmp");
    bundle::write(tmp.path(), &b).expect("write");
    assert_eq!(
        std::fs::read_to_string(tmp.path()).expect("read"),
        std::fs::read_to_string(&json_path).expect("fixture"),
        "the bundle format drifted; if intended, regenerate with REGENERATE_GOLDEN=1 and update docs/bundle.md"
    );
    assert!(v.ok(), "{verdict}");
    assert_eq!(
        verdict,
        std::fs::read_to_string(&verdict_path).expect("verdict fixture")
    );
}
