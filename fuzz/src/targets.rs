//! The fuzz targets: one function per AFL binary, each taking arbitrary bytes and driving every
//! decoder of untrusted input reachable from them. A target must never panic; everything else
//! (errors, refusals) is a normal outcome. Targets that cover several decoders dispatch on the
//! first input byte (see docs/fuzzing.md for the table).
//!
//! This file is compiled twice: by the `ledger-fuzz` crate (`fuzz/`, under AFL) and by
//! `verifier-cli/tests/fuzz_corpus.rs`, which replays every corpus file through these functions in
//! the ordinary test suite. Both crates declare the verifier modules (`crate::bundle`,
//! `crate::review`, ...) at their root, compiled from `verifier-cli/src`.

use crate::pipeline::{self, PipelineOptions};
use crate::prepare::{Item, RawEntry, WireFields, prepare};
use crate::replay::{ReplayOptions, Replayer};
use crate::review::{self, Filter};
use crate::sigs::SigMode;
use crate::source::{Source, SourceEnd};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::SigningKey;
use ledger_core::bundle::{Bundle, parse_tlog_proof, verify_bundle};
use ledger_core::checkpoint::{Checkpoint, open_checkpoint};
use ledger_core::cosignature::CosignatureVerifier;
use ledger_core::dsse::Envelope;
use ledger_core::entry::Entry;
use ledger_core::hash::Hash;
use ledger_core::note::{Note, NoteSigner, NoteVerifier};
use ledger_core::registry::{Registry, check_payload, envelope_kind, index_terms};
use ledger_core::rules::DomainState;
use ledger_core::witness::{AddCheckpoint, check_submission, open_submission};
use ledger_proto::pb;
use prost::Message as _;
use std::sync::OnceLock;

/// Origin of the fixed log key the `note` target's seeds are signed with.
pub const FUZZ_ORIGIN: &str = "ledger.test/fuzz";
/// Seed of the fixed log key (a test key: it signs nothing but fuzz seeds).
pub const FUZZ_LOG_SEED: [u8; 32] = [0x4c; 32];
/// Names and seeds of the two fixed witness keys.
pub const FUZZ_WITNESSES: [(&str, [u8; 32]); 2] = [("witness.test/w1", [0x57; 32]), ("witness.test/w2", [0x58; 32])];

/// The fixed ML-DSA-44 witness (C2SP tlog-cosignature `0x06`): name and FIPS 204 seed ξ.
pub const FUZZ_MLDSA44_WITNESS: (&str, [u8; 32]) = ("witness.test/pq", [0x59; 32]);

/// The sample bundle (a real export) the registry of the `entry` target is built from.
const SAMPLE_BUNDLE: &str = include_str!("../../tests/fixtures/sample.ledger-bundle.json");

/// Record kinds the `entry` target's record mode chooses from (`data[1] % len`).
pub const KINDS: &[&str] = &[
    "charter",
    "key.enroll",
    "key.rotate",
    "key.revoke",
    "escrow.key",
    "nomination",
    "pool.commit",
    "draw.commit",
    "draw.sources",
    "draw.reveal",
    "draw.result",
    "draw.void",
    "election.open",
    "credential.issued",
    "ballot",
    "tally",
    "dossier.fact",
    "verification",
    "complaint",
    "evaluation.micro",
    "decision",
    "accountability",
    "cancellation",
    "note",
];

struct Fixed {
    log: NoteVerifier,
    log_signer: NoteSigner,
    witnesses: Vec<CosignatureVerifier>,
    /// Registry after the sample bundle's charter and key records, with the charter's node key.
    registry: Option<Registry>,
    sample_node_key: Option<NoteVerifier>,
}

fn fixed() -> &'static Fixed {
    static F: OnceLock<Fixed> = OnceLock::new();
    F.get_or_init(|| {
        let log_signer = NoteSigner::new(FUZZ_ORIGIN, SigningKey::from_bytes(&FUZZ_LOG_SEED))
            .unwrap_or_else(|e| panic!("fixed fuzz key: {e}"));
        let mut witnesses: Vec<CosignatureVerifier> = FUZZ_WITNESSES
            .iter()
            .filter_map(|(n, s)| CosignatureVerifier::new(n, SigningKey::from_bytes(s).verifying_key()).ok())
            .collect();
        let (pq_name, pq_seed) = FUZZ_MLDSA44_WITNESS;
        witnesses.extend(
            ledger_core::cosignature::CosignatureSigner::new_mldsa44(pq_name, &pq_seed)
                .ok()
                .map(|s| s.verifier().clone()),
        );
        let sample: Option<Bundle> = serde_json::from_str(SAMPLE_BUNDLE).ok();
        let registry = sample.as_ref().and_then(|b| {
            let mut entries = b
                .registry
                .iter()
                .filter_map(|r| B64.decode(&r.leaf).ok())
                .filter_map(|leaf| Entry::decode(&leaf).ok());
            let mut reg = Registry::genesis(&entries.next()?).ok()?;
            for e in entries {
                let _ = reg.check_entry(&e);
            }
            Some(reg)
        });
        Fixed {
            log: log_signer.verifier().clone(),
            log_signer,
            witnesses,
            registry,
            sample_node_key: sample.and_then(|b| NoteVerifier::parse(&b.node_key).ok()),
        }
    })
}

/// The signer of the `note` target's seeds.
pub fn fuzz_log_signer() -> &'static NoteSigner {
    &fixed().log_signer
}

/// Looks a target up by name (for the `replay` binary and the corpus test).
pub fn by_name(name: &str) -> Option<fn(&[u8])> {
    Some(match name {
        "entry" => entry,
        "note" => note,
        "bundle" => bundle,
        "export" => export,
        _ => return None,
    })
}

/// Every target, by name.
pub const TARGETS: &[&str] = &["entry", "note", "bundle", "export"];

// ---------------------------------------------------------------------------------------------
// entry: canonical entries, DSSE envelopes (JSON and protobuf wire), record payloads.
// ---------------------------------------------------------------------------------------------

/// `data[0] % 4` selects: 0 canonical entry bytes, 1 DSSE envelope JSON, 2 protobuf wire messages
/// (`LogEntry`, `AppendRequest`, `AppendBatchRequest`), 3 record payload JSON of kind
/// `KINDS[data[1] % len]`. Whatever decodes goes on through the registry and domain rules.
pub fn entry(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    match sel % 4 {
        0 => canonical_entry(rest),
        1 => {
            if let Ok(s) = std::str::from_utf8(rest)
                && let Ok(env) = Envelope::from_json(s)
            {
                let _ = env.to_json();
                envelope_checks(1, 0, &env);
            }
        }
        2 => wire(rest),
        _ => {
            let Some((&k, payload)) = rest.split_first() else {
                return;
            };
            let kind = KINDS[usize::from(k) % KINDS.len()];
            let _ = check_payload(kind, payload);
            let _ = index_terms(kind, payload);
            if let Ok(record) = ledger_core::domain::check_record(kind, payload) {
                let _ = DomainState::default().check_at(1, 1_700_000_000_000_000, &record, &[]);
            }
        }
    }
}

fn canonical_entry(b: &[u8]) {
    let Ok(e) = Entry::decode(b) else {
        return;
    };
    // Canonical: the only encoding of the entry is the one that was decoded.
    assert_eq!(e.encode(), b, "Entry::decode accepted a non-canonical encoding");
    let _ = e.leaf_hash();
    if e.index == 0 {
        let _ = Registry::genesis(&e);
    }
    envelope_checks(e.index, e.timestamp_micros, &e.envelope);
    if let Some(reg) = &fixed().registry {
        let _ = reg.clone().check_entry(&e);
    }
    let _ = prepare(RawEntry {
        position: Some(e.index),
        bytes: b.to_vec(),
        leaf_hash: None,
        wire: None,
    });
}

/// What node and verifier do with an envelope before and around signatures.
fn envelope_checks(index: u64, ts: u64, env: &Envelope) {
    let _ = env.pae();
    if env.check_limits().is_err() {
        return;
    }
    let Ok(kind) = envelope_kind(env) else {
        return;
    };
    if check_payload(kind, &env.payload).is_err() {
        return;
    }
    let _ = index_terms(kind, &env.payload);
    let signers: Vec<String> = env.signatures.iter().map(|s| s.keyid.clone()).collect();
    if let Ok(record) = ledger_core::domain::check_record(kind, &env.payload) {
        let _ = DomainState::default().check_at(index, ts, &record, &signers);
        if let Some(reg) = &fixed().registry {
            let _ = DomainState::default().check_with_registry(reg, index, ts, &record, &signers);
        }
    }
    if let Some(reg) = &fixed().registry {
        let _ = reg.verify_signatures(env);
    }
}

fn wire(b: &[u8]) {
    if let Ok(e) = pb::LogEntry::decode(b) {
        let _ = ledger_proto::entry_from_wire(&e);
        // What the verifier does with an entry a node streams to it.
        let _ = prepare(RawEntry {
            position: Some(e.index),
            bytes: e.leaf,
            leaf_hash: Some(e.leaf_hash),
            wire: Some(WireFields {
                timestamp_micros: e.timestamp_micros,
                prev_root: e.prev_root,
                envelope: e.envelope.map(Into::into),
            }),
        });
    }
    if let Ok(r) = pb::AppendRequest::decode(b)
        && let Some(env) = r.envelope
    {
        envelope_checks(1, 0, &env.into());
    }
    if let Ok(r) = pb::AppendBatchRequest::decode(b) {
        for it in r.items.into_iter().take(64) {
            if let Some(env) = it.envelope {
                envelope_checks(1, 0, &env.into());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// note: signed notes, checkpoints, cosignatures, witness requests, key strings and key files.
// ---------------------------------------------------------------------------------------------

/// `data[0] % 7` selects: 0 signed note (parse, witness cosignatures, log signature), 1 checkpoint
/// body, 2 signed checkpoint as the node/verifier/witness open it, 3 witness add-checkpoint request
/// body, 4 note verifier / cosignature verifier / note signer key strings, 5 key file contents
/// (signing, public, escrow, credential issuer keys), 6 C2SP tlog-proof text.
pub fn note(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let Ok(s) = std::str::from_utf8(rest) else {
        return;
    };
    let f = fixed();
    match sel % 7 {
        0 => {
            if let Ok(n) = Note::parse(s) {
                let _ = n.to_text();
                let _ = n.verify_cosignatures(&f.witnesses);
                let _ = Checkpoint::from_body(&n.text);
            }
        }
        1 => {
            if let Ok(c) = Checkpoint::from_body(s) {
                let _ = c.to_body();
            }
        }
        2 => {
            if let Ok(sc) = open_checkpoint(s, &f.log) {
                let _ = sc.note.verify_cosignatures(&f.witnesses);
            }
            let _ = open_submission(s, std::slice::from_ref(&f.log));
        }
        3 => {
            if let Ok(req) = AddCheckpoint::parse(s) {
                let _ = req.to_body();
                if let Ok(sc) = open_submission(&req.checkpoint, std::slice::from_ref(&f.log)) {
                    let held = Some((req.old_size, Hash::digest(s.as_bytes())));
                    let _ = check_submission(None, req.old_size, &req.proof, &sc.checkpoint);
                    let _ = check_submission(held, req.old_size, &req.proof, &sc.checkpoint);
                }
            }
        }
        4 => {
            if let Ok(v) = NoteVerifier::parse(s) {
                let _ = v.to_string_key();
            }
            if let Ok(v) = CosignatureVerifier::parse(s) {
                let _ = v.to_string_key();
            }
            let _ = NoteSigner::parse(s);
        }
        5 => key_file(s),
        _ => {
            let _ = parse_tlog_proof(s);
        }
    }
}

/// Key file contents, as the client, node and verifier read them.
fn key_file(s: &str) {
    let t = s.trim();
    let _ = ledger_core::keys::signing_key_from_base64(t);
    let _ = ledger_core::keys::public_key_from_base64(t);
    let _ = ledger_core::seal::EscrowPublicKey::from_base64(t);
    let _ = ledger_core::credential::IssuerPublicKey::from_base64(t);
    let _ = ledger_core::credential::IssuerKey::from_pem(s);
    // The client's file readers (size limit, trim, parse) on a real file.
    static PATH: OnceLock<std::path::PathBuf> = OnceLock::new();
    let path = PATH.get_or_init(|| std::env::temp_dir().join(format!("ledger-fuzz-key-{}", std::process::id())));
    if std::fs::write(path, s).is_ok() {
        let _ = ledger_client::keyfile::read_signing_key(path);
        let _ = ledger_client::keyfile::read_public_key(path);
        let _ = std::fs::remove_file(path);
    }
}

// ---------------------------------------------------------------------------------------------
// bundle: court bundle files.
// ---------------------------------------------------------------------------------------------

/// A bundle file's text, through `ledger-verify bundle verify` (parse, canonical form, summary,
/// proofs, registry, signatures) and its text and HTML reports.
pub fn bundle(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let f = fixed();
    for trusted in [None, f.sample_node_key.as_ref()] {
        if let Ok(v) = crate::bundle::verify_text(s, trusted) {
            let _ = crate::bundle::render(&v);
            if let Ok(b) = serde_json::from_str::<Bundle>(s) {
                let ts = crate::bundle_page::Tokens::default();
                let _ = crate::bundle_page::html(&b, &v, &ts, &crate::pages::Tz::default(), "fuzz");
                let _ = crate::bundle_page::vouchers(&b, &v, &ts);
            }
        }
    }
    if let Ok(b) = serde_json::from_str::<Bundle>(s) {
        let _ = verify_bundle(&b, Some(&f.log));
    }
}

// ---------------------------------------------------------------------------------------------
// export: export streams, through the verifier's replay and review.
// ---------------------------------------------------------------------------------------------

/// Most frames one input is read to (inputs are small; this bounds the work per input).
const MAX_FRAMES: usize = 4096;

/// A source over frames already read, ending with the reader's error if it had one (as the
/// verifier's export source does).
struct MemSource {
    items: Vec<Item>,
    error: Option<String>,
}

impl Source for MemSource {
    fn describe(&self) -> String {
        "fuzz input".into()
    }

    fn expected_entries(&self) -> Option<u64> {
        None
    }

    fn run(&mut self, sink: &mut dyn FnMut(Item) -> bool) -> anyhow::Result<SourceEnd> {
        for it in std::mem::take(&mut self.items) {
            if !sink(it) {
                break;
            }
        }
        match self.error.take() {
            Some(e) => Err(anyhow::anyhow!(e)),
            None => Ok(SourceEnd::default()),
        }
    }
}

/// An export stream: the store's frame reader, then `ledger-verify replay --export` (pipeline,
/// replayer, text and JSON report) and `ledger-verify review --export` (text and HTML report).
pub fn export(data: &[u8]) {
    let Ok(mut r) = ledger_store::export::Reader::new(data) else {
        return;
    };
    let mut items = Vec::new();
    let mut error = None;
    while items.len() < MAX_FRAMES {
        match r.next_frame() {
            Ok(Some(ledger_store::export::Frame::Entry(bytes))) => items.push(Item::Entry(RawEntry {
                position: None,
                bytes,
                leaf_hash: None,
                wire: None,
            })),
            Ok(Some(ledger_store::export::Frame::Checkpoint(n))) => items.push(Item::Checkpoint(n)),
            Ok(None) => break,
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
    }
    for (trusted_key, mode) in [
        (None, SigMode::Batch),
        (fixed().sample_node_key.clone(), SigMode::Strict),
    ] {
        let src = MemSource {
            items: items.clone(),
            error: error.clone(),
        };
        let replayer = Replayer::new(ReplayOptions {
            trusted_key,
            origin: None,
            max_faults: 50,
        });
        let opts = PipelineOptions {
            threads: 1,
            window: 8,
            mode,
        };
        if let Ok(o) = pipeline::run(Box::new(src), replayer, opts) {
            let _ = crate::report::replay_human("fuzz input", &o, 0.0);
            let _ = serde_json::to_string(&crate::report::replay_json("fuzz input", &o, 0.0));
        }
    }
    let src = MemSource { items, error };
    if let Ok(rep) = review::run(Box::new(src), Filter::default()) {
        let _ = review::human(&rep);
        let _ = review::html(&rep, &crate::pages::Tz::default());
        let _ = serde_json::to_string(&rep);
    }
}
