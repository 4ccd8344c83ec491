//! Writes the seed corpora under `corpus/<target>/` from a real export stream and the sample
//! bundle: `make-corpus <export file> <corpus dir>`. The export is made by running
//! `ledgerctl demo` against a fresh node and `ledger-node export` (docs/fuzzing.md). Each seed
//! starts with the selector byte of the target's mode (see `targets.rs`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::SigningKey;
use ledger_core::bundle::Bundle;
use ledger_core::checkpoint::Checkpoint;
use ledger_core::cosignature::CosignatureSigner;
use ledger_core::entry::Entry;
use ledger_core::hash::{Hash, leaf_hash};
use ledger_core::merkle;
use ledger_core::witness::AddCheckpoint;
use ledger_fuzz::targets::{FUZZ_LOG_SEED, FUZZ_MLDSA44_WITNESS, FUZZ_ORIGIN, FUZZ_WITNESSES, KINDS, fuzz_log_signer};
use ledger_proto::pb;
use ledger_store::export::{Frame, MAGIC, Reader};
use prost::Message as _;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn put(dir: &Path, name: &str, sel: Option<u8>, body: &[u8]) -> Res<()> {
    std::fs::create_dir_all(dir)?;
    let mut b = Vec::with_capacity(body.len() + 1);
    b.extend(sel);
    b.extend_from_slice(body);
    std::fs::write(dir.join(name), b)?;
    Ok(())
}

fn frame(out: &mut Vec<u8>, tag: u8, b: &[u8]) -> Res<()> {
    out.push(tag);
    out.extend_from_slice(&u32::try_from(b.len())?.to_be_bytes());
    out.extend_from_slice(b);
    Ok(())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, export, out] = args.as_slice() else {
        return Err("usage: make-corpus <export file> <corpus dir>".into());
    };
    let out = PathBuf::from(out);
    let stream = std::fs::read(export)?;
    let mut r = Reader::new(stream.as_slice())?;
    let mut frames = Vec::new();
    while let Some(f) = r.next_frame()? {
        frames.push(f);
    }

    // entry: every distinct kind once (first two of each), in all four modes.
    let dir = out.join("entry");
    let mut per_kind: BTreeMap<String, usize> = BTreeMap::new();
    for f in &frames {
        let Frame::Entry(leaf) = f else { continue };
        let e = Entry::decode(leaf)?;
        let kind = ledger_core::registry::kind_of(&e.envelope.payload_type)
            .unwrap_or("unknown")
            .to_string();
        let n = per_kind.entry(kind.clone()).or_default();
        *n += 1;
        if *n > 2 {
            continue;
        }
        let tag = format!("{kind}-{}", e.index);
        put(&dir, &format!("canonical-{tag}"), Some(0), leaf)?;
        put(&dir, &format!("json-{tag}"), Some(1), e.envelope.to_json().as_bytes())?;
        let wire = ledger_proto::log_entry(leaf, &e, &leaf_hash(leaf));
        put(&dir, &format!("logentry-{tag}"), Some(2), &wire.encode_to_vec())?;
        let app = pb::AppendRequest {
            envelope: Some((&e.envelope).into()),
            request_id: "r".into(),
            wait_for_checkpoint: false,
        };
        put(&dir, &format!("append-{tag}"), Some(2), &app.encode_to_vec())?;
        if let Some(k) = KINDS.iter().position(|k| *k == kind) {
            let mut b = vec![u8::try_from(k)?];
            b.extend_from_slice(&e.envelope.payload);
            put(&dir, &format!("record-{tag}"), Some(3), &b)?;
        }
    }

    // note: checkpoints of the export, and notes signed by the fixed fuzz keys.
    let dir = out.join("note");
    let leaves: Vec<Hash> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Entry(b) => Some(leaf_hash(b)),
            Frame::Checkpoint(_) => None,
        })
        .collect();
    if let Some(Frame::Checkpoint(n)) = frames.iter().rev().find(|f| matches!(f, Frame::Checkpoint(_))) {
        put(&dir, "export-checkpoint", Some(0), n.as_bytes())?;
    }
    let signer = fuzz_log_signer();
    let mut witnesses: Vec<CosignatureSigner> = FUZZ_WITNESSES
        .iter()
        .map(|(n, s)| CosignatureSigner::new(n, SigningKey::from_bytes(s)))
        .collect::<Result<_, _>>()?;
    witnesses.push(CosignatureSigner::new_mldsa44(
        FUZZ_MLDSA44_WITNESS.0,
        &FUZZ_MLDSA44_WITNESS.1,
    )?);
    let size = leaves.len() as u64;
    let cp = Checkpoint {
        origin: FUZZ_ORIGIN.into(),
        size,
        root: merkle::root_of(&leaves),
        extensions: vec![],
    };
    let mut note = cp.sign(signer)?;
    for w in &witnesses {
        note.signatures.push(w.sign(&note.text, 1_764_000_000)?);
    }
    let text = note.to_text();
    put(&dir, "cosigned-note", Some(0), text.as_bytes())?;
    put(&dir, "body", Some(1), cp.to_body().as_bytes())?;
    put(&dir, "signed-checkpoint", Some(2), text.as_bytes())?;
    let old = size / 2;
    let req = AddCheckpoint {
        old_size: old,
        proof: merkle::consistency_proof(&leaves, old, size)?,
        checkpoint: cp.sign(signer)?.to_text(),
    };
    put(&dir, "add-checkpoint", Some(3), req.to_body().as_bytes())?;
    let vkey = signer.verifier().to_string_key();
    put(&dir, "vkey", Some(4), vkey.as_bytes())?;
    put(
        &dir,
        "cosig-vkey",
        Some(4),
        witnesses[0].verifier().to_string_key().as_bytes(),
    )?;
    let hash_hex = vkey.split('+').nth(1).unwrap_or_default();
    let mut seed = vec![1u8];
    seed.extend_from_slice(&FUZZ_LOG_SEED);
    let private = format!("PRIVATE+KEY+{FUZZ_ORIGIN}+{hash_hex}+{}", B64.encode(&seed));
    put(&dir, "private-key", Some(4), private.as_bytes())?;
    let sk = SigningKey::from_bytes(&FUZZ_LOG_SEED);
    let key_file = format!("{}\n", ledger_core::keys::signing_key_to_base64(&sk));
    put(&dir, "signing-key-file", Some(5), key_file.as_bytes())?;
    let pub_file = format!("{}\n", ledger_core::keys::public_key_to_base64(&sk.verifying_key()));
    put(&dir, "public-key-file", Some(5), pub_file.as_bytes())?;

    // bundle: the sample bundle; its tlog-proof text goes to the note corpus.
    let dir = out.join("bundle");
    let sample = include_str!("../../../tests/fixtures/sample.ledger-bundle.json");
    put(&dir, "sample", None, sample.as_bytes())?;
    let b: Bundle = serde_json::from_str(sample)?;
    if let Some(r) = b.records.iter().find(|r| !r.tlog_proof.is_empty()) {
        put(&out.join("note"), "tlog-proof", Some(6), r.tlog_proof.as_bytes())?;
    }

    // export: the whole stream, and its first entries with the end marker.
    let dir = out.join("export");
    put(&dir, "demo", None, &stream)?;
    for keep in [1usize, 3, 8] {
        let mut s = MAGIC.to_vec();
        let mut entries = 0;
        for f in &frames {
            match f {
                Frame::Entry(b) if entries < keep => {
                    entries += 1;
                    frame(&mut s, b'E', b)?;
                }
                Frame::Checkpoint(n) if entries <= keep => frame(&mut s, b'C', n.as_bytes())?,
                _ => {}
            }
        }
        frame(&mut s, b'Z', &[])?;
        put(&dir, &format!("demo-first-{keep}"), None, &s)?;
    }
    Ok(())
}
