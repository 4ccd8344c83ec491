//! ML-DSA-44 witness cosignatures end to end (issue 16 item 4): real `ledger-node serve` and
//! `ledger-node witness --key-type mldsa44|both` processes on loopback, C2SP tlog-cosignature type
//! `0x06` lines counted toward the charter's quorum, and `ledger-verify bundle verify` judging them
//! offline. Needs the workspace binaries (`cargo build --workspace --bins`).

mod support;

use base64::Engine as _;
use ledger_core::checkpoint::open_checkpoint;
use ledger_core::cosignature::{ALG_COSIGNATURE_MLDSA44, CosignatureVerifier};
use ledger_core::note::{Note, NoteVerifier};
use ledger_proto::pb;
use ledger_proto::pb::witness_client::WitnessClient;
use std::path::Path;
use std::process::{Child, Command};
use support::*;

const ORIGIN: &str = "ledger.test/pq-witnessed";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running witness: its address, the verifier keys it printed, and its enrollment record keys.
struct Witness {
    _child: Killed,
    addr: String,
    keys: Vec<CosignatureVerifier>,
    ed25519_b64: String,
    mldsa44_b64: String,
}

impl Witness {
    fn start(data: &Path, name: &str, key_type: &str, log_vkey: &Path) -> Self {
        let mut c = Command::new(bin("ledger-node"));
        c.args([
            "witness",
            "--listen",
            "127.0.0.1:0",
            "--key-type",
            key_type,
            "--name",
            name,
            "--data",
        ])
        .arg(data)
        .arg("--log-key")
        .arg(log_vkey);
        let (child, addr, before) = spawn_listening(c);
        let keys: Vec<CosignatureVerifier> = before
            .iter()
            .filter_map(|l| l.strip_prefix("witness key "))
            .map(|k| CosignatureVerifier::parse(k).expect("witness vkey"))
            .collect();
        let read = |f: &str| std::fs::read_to_string(data.join(f)).expect(f).trim().to_string();
        Self {
            _child: Killed(child),
            addr,
            keys,
            ed25519_b64: read("witness.key.pub"),
            mldsa44_b64: read("witness.mldsa44.pub"),
        }
    }

    fn mldsa44(&self) -> &CosignatureVerifier {
        self.keys
            .iter()
            .find(|k| k.key.alg() == ALG_COSIGNATURE_MLDSA44)
            .expect("an ML-DSA-44 key")
    }

    fn enroll(&self, name: &str, admin: &ed25519_dalek::SigningKey) -> ledger_core::dsse::Envelope {
        record(
            "key.enroll",
            serde_json::json!({
                "version": 1, "name": name, "key": self.ed25519_b64, "mldsa44_key": self.mldsa44_b64,
                "roles": ["witness"], "scope": {"organization": "court", "kinds": []}
            }),
            &[admin],
        )
    }
}

fn start_node(data: &Path, witnesses: &[(&str, &CosignatureVerifier)]) -> Killed {
    start_node_with_timeout(data, witnesses, "4000")
}

fn start_node_with_timeout(data: &Path, witnesses: &[(&str, &CosignatureVerifier)], timeout_ms: &str) -> Killed {
    let mut c = Command::new(bin("ledger-node"));
    c.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "off",
        "--checkpoint-interval-ms",
        "200",
        "--witness-timeout-ms",
        timeout_ms,
        "--data",
    ])
    .arg(data);
    for (addr, key) in witnesses {
        c.arg("--witness").arg(format!("{addr}={}", key.to_string_key()));
    }
    let (child, addr, _) = spawn_listening(c);
    std::fs::write(data.join("test.addr"), addr).expect("addr");
    Killed(child)
}

fn bundle_verify(file: &Path, log: &NoteVerifier) -> (Option<i32>, String) {
    let out = Command::new(bin("ledger-verify"))
        .args(["bundle", "verify"])
        .arg(file)
        .arg("--trusted-key")
        .arg(log.to_string_key())
        .output()
        .expect("verify");
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mldsa_only_witnesses_reach_quorum_and_the_bundle_verifies_offline() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("node");
    init_with_quorum(&data, ORIGIN, 2);
    let vkey = data.join("keys/node.vkey");
    let log = NoteVerifier::parse(std::fs::read_to_string(&vkey).expect("vkey").trim()).expect("log key");
    // One witness signs only with ML-DSA-44, the other with both types.
    let pq = Witness::start(&dir.path().join("w-pq"), "witness.test/pq", "mldsa44", &vkey);
    let both = Witness::start(&dir.path().join("w-both"), "witness.test/both", "both", &vkey);
    assert_eq!(pq.keys.len(), 1, "an ML-DSA-only witness prints one key");
    assert_eq!(both.keys.len(), 2, "a witness signing both types prints two keys");
    let _node = start_node(&data, &[(&pq.addr, pq.mldsa44()), (&both.addr, both.mldsa44())]);
    let addr = std::fs::read_to_string(data.join("test.addr")).expect("addr");
    let mut c = ledger_proto::pb::ledger_client::LedgerClient::connect(addr.clone())
        .await
        .expect("connect");
    let admin = key(&data.join("keys/admin.key"));

    // Only a witness has an ML-DSA-44 cosignature key; a malformed one is refused.
    let registrar = new_key();
    let mut bad = enroll(&registrar, "registrar", &["registrar"], &[&admin]);
    let mut p: serde_json::Value = serde_json::from_slice(&bad.payload).expect("json");
    p["mldsa44_key"] = serde_json::Value::String(pq.mldsa44_b64.clone());
    bad = record("key.enroll", p, &[&admin]);
    let e = append(&mut c, &bad, "bad-role").await.expect_err("refused");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("only for the witness role"), "{e:?}");
    let mut short = pq.enroll("witness.test/pq", &admin);
    let mut p: serde_json::Value = serde_json::from_slice(&short.payload).expect("json");
    p["mldsa44_key"] = serde_json::Value::String(B64.encode([7u8; 100]));
    short = record("key.enroll", p, &[&admin]);
    let e = append(&mut c, &short, "bad-key").await.expect_err("refused");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("ML-DSA-44 public key is 1312 bytes"), "{e:?}");

    append(&mut c, &pq.enroll("witness.test/pq", &admin), "enroll-pq")
        .await
        .expect("enroll pq");
    // The dual witness is enrolled with `ledgerctl key enroll --mldsa44-key @witness.mldsa44.pub`.
    let wdir = dir.path().join("w-both");
    let out = Command::new(bin("ledgerctl"))
        .args(["--node", &addr, "enroll", "--admin-key"])
        .arg(data.join("keys/admin.key"))
        .arg("--pubkey")
        .arg(format!("@{}", wdir.join("witness.key.pub").display()))
        .arg("--mldsa44-key")
        .arg(format!("@{}", wdir.join("witness.mldsa44.pub").display()))
        .args(["--name", "witness.test/both", "--role", "witness"])
        .output()
        .expect("ledgerctl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    append(
        &mut c,
        &enroll(&registrar, "registrar", &["registrar"], &[&admin]),
        "enroll-r",
    )
    .await
    .expect("enroll registrar");

    // An append waits for a checkpoint witnessed by both, through 0x06 lines only.
    let env = record("note", note_payload(1), &[&registrar]);
    let r = c
        .append(req(&env, "n-1", true))
        .await
        .expect("append waits for a witnessed checkpoint")
        .into_inner();
    let cp = open_checkpoint(&r.checkpoint, &log).expect("log signature");
    let pq_keys = [pq.mldsa44().clone(), both.mldsa44().clone()];
    let cos = cp
        .note
        .verify_cosignatures(&pq_keys)
        .expect("ML-DSA-44 cosignatures verify");
    assert_eq!(cos.len(), 2, "{}", r.checkpoint);
    let w = c
        .get_witnessed_checkpoint(pb::GetWitnessedCheckpointRequest {})
        .await
        .expect("witnessed")
        .into_inner();
    assert_eq!((w.witness_quorum, w.witnesses.len()), (2, 2), "{:?}", w.witnesses);

    // The dual witness holds both of its lines; it is one witness, counted once.
    let held = WitnessClient::connect(both.addr.clone())
        .await
        .expect("connect witness")
        .get_latest(pb::GetLatestRequest { origin: ORIGIN.into() })
        .await
        .expect("held")
        .into_inner()
        .checkpoint;
    let held = open_checkpoint(&held, &log).expect("held verifies");
    assert_eq!(
        held.note.signatures.len(),
        3,
        "log line, Ed25519 and ML-DSA-44 cosignatures"
    );
    assert_eq!(held.note.verify_cosignatures(&both.keys).expect("both verify").len(), 1);

    // The court bundle carries the 0x06 lines and verifies offline against the enrolled keys.
    let file = dir.path().join("b.ledger-bundle.json");
    let out = Command::new(bin("ledger-verify"))
        .args([
            "bundle",
            "export",
            "--node",
            &addr,
            "--index",
            &r.index.to_string(),
            "-o",
        ])
        .arg(&file)
        .output()
        .expect("export");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (code, text) = bundle_verify(&file, &log);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("2 independent witness(es)"), "{text}");
    // The JSON verdict names each witness and the type that verified.
    let report = dir.path().join("verdict.json");
    let out = Command::new(bin("ledger-verify"))
        .args(["bundle", "verify"])
        .arg(&file)
        .arg("--trusted-key")
        .arg(log.to_string_key())
        .arg("--json")
        .arg(&report)
        .output()
        .expect("verify --json");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).expect("json")).expect("json");
    let mut named: Vec<(String, String)> = v["witnesses"]
        .as_array()
        .expect("witnesses")
        .iter()
        .map(|w| {
            (
                w["name"].as_str().unwrap_or("").into(),
                w["signature_type"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    named.sort();
    assert_eq!(
        named,
        [
            ("witness.test/both".into(), "ML-DSA-44".into()),
            ("witness.test/pq".into(), "ML-DSA-44".into())
        ]
    );

    // One byte flipped inside the pq witness's ML-DSA-44 signature: refused, and named.
    let mut b: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).expect("bundle")).expect("json");
    let mut note = Note::parse(b["checkpoint"].as_str().expect("checkpoint")).expect("note");
    let line = note
        .signatures
        .iter_mut()
        .find(|s| s.name == "witness.test/pq")
        .expect("pq line in the bundle");
    assert_eq!(line.sig.len(), 8 + 2420);
    line.sig[8 + 1200] ^= 0x01;
    b["checkpoint"] = serde_json::Value::String(note.to_text());
    let forged = dir.path().join("forged.ledger-bundle.json");
    std::fs::write(&forged, serde_json::to_vec(&b).expect("json")).expect("write");
    let (code, text) = bundle_verify(&forged, &log);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("COSIGNATURE_INVALID"), "{text}");
    assert!(
        text.contains(&format!("witness.test/pq+{:08x}", pq.mldsa44().key_hash)),
        "names the witness and its ML-DSA-44 key: {text}"
    );
}

#[test]
fn a_restarted_mldsa_witness_keeps_its_key_and_refuses_a_damaged_key_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("node");
    init_with_quorum(&data, ORIGIN, 1);
    let vkey = data.join("keys/node.vkey");
    let wdir = dir.path().join("w");
    let first = Witness::start(&wdir, "witness.test/pq", "mldsa44", &vkey);
    let key = first.mldsa44().to_string_key();
    drop(first);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(wdir.join("witness.mldsa44.key"))
            .expect("key file")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the seed file is private");
    let again = Witness::start(&wdir, "witness.test/pq", "both", &vkey);
    assert_eq!(
        again.mldsa44().to_string_key(),
        key,
        "same ML-DSA-44 key after a restart"
    );
    assert_eq!(
        std::fs::read_to_string(wdir.join("witness.mldsa44.vkey"))
            .expect("vkey")
            .trim(),
        key
    );
    drop(again);
    // A damaged seed file stops the witness instead of silently making a new key.
    std::fs::write(wdir.join("witness.mldsa44.key"), "not a seed\n").expect("write");
    let out = Command::new(bin("ledger-node"))
        .args(["witness", "--listen", "127.0.0.1:0", "--key-type", "mldsa44", "--data"])
        .arg(&wdir)
        .arg("--log-key")
        .arg(&vkey)
        .output()
        .expect("witness");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not base64 of a 32-byte ML-DSA-44 seed"), "{err}");
}

/// A tlog-witness HTTP front that answers every `POST /add-checkpoint` with an ML-DSA-44
/// cosignature line by `signer` over the submitted checkpoint, one byte of its signature flipped
/// while `forge` is set. Returns the `tlog+http://` URL.
fn fake_http_witness(
    signer: ledger_core::cosignature::CosignatureSigner,
    forge: std::sync::Arc<std::sync::atomic::AtomicBool>,
    answered: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> String {
    use std::io::{Read as _, Write as _};
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("tlog+http://{}", l.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in l.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let body = loop {
                let Ok(n) = stream.read(&mut chunk) else { break None };
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|h| h.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    break Some(String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string());
                }
            };
            let Some(body) = body else { continue };
            // Body: "old N", proof lines, an empty line, then the signed checkpoint note.
            let Some((_, note)) = body.split_once("\n\n") else {
                continue;
            };
            let Ok(note) = Note::parse(note) else { continue };
            let Ok(mut line) = signer.sign(&note.text, 1_700_000_000) else {
                continue;
            };
            if forge.load(std::sync::atomic::Ordering::SeqCst) {
                line.sig[8 + 100] ^= 0x01;
            }
            answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let answer = format!("{}\n", line.to_line());
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_mldsa_line_from_a_witness_is_not_counted_by_the_node() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("node");
    init_with_quorum(&data, ORIGIN, 1);
    let log = NoteVerifier::parse(
        std::fs::read_to_string(data.join("keys/node.vkey"))
            .expect("vkey")
            .trim(),
    )
    .expect("log key");
    let signer =
        ledger_core::cosignature::CosignatureSigner::new_mldsa44("witness.test/fake", &[9u8; 32]).expect("signer");
    let wkey = signer.verifier().clone();
    let forge = std::sync::Arc::new(AtomicBool::new(true));
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let url = fake_http_witness(signer, forge.clone(), answered.clone());
    let _node = start_node_with_timeout(&data, &[(&url, &wkey)], "1500");
    let addr = std::fs::read_to_string(data.join("test.addr")).expect("addr");
    let mut c = ledger_proto::pb::ledger_client::LedgerClient::connect(addr)
        .await
        .expect("connect");
    let admin = key(&data.join("keys/admin.key"));
    let identity = new_key();
    let enroll_fake = record(
        "key.enroll",
        serde_json::json!({
            "version": 1, "name": "witness.test/fake",
            "key": ledger_core::keys::public_key_to_base64(&identity.verifying_key()),
            "mldsa44_key": B64.encode(wkey.key.as_bytes()), "roles": ["witness"], "scope": {}
        }),
        &[&admin],
    );
    append(&mut c, &enroll_fake, "enroll-fake").await.expect("enroll");
    let registrar = new_key();
    append(
        &mut c,
        &enroll(&registrar, "registrar", &["registrar"], &[&admin]),
        "enroll-r",
    )
    .await
    .expect("enroll registrar");

    // Forged lines: the node merges none, so no checkpoint is witnessed.
    let env = record("note", note_payload(1), &[&registrar]);
    let e = c
        .append(req(&env, "n-1", true))
        .await
        .expect_err("no witnessed checkpoint from forged lines");
    assert_eq!(e.code(), tonic::Code::DeadlineExceeded, "{e:?}");
    let cp = c
        .get_checkpoint(pb::GetCheckpointRequest::default())
        .await
        .expect("checkpoint")
        .into_inner();
    let note = Note::parse(&cp.note).expect("note");
    assert!(answered.load(Ordering::SeqCst) > 0, "the node pushed to the witness");
    assert!(
        note.signatures.iter().all(|s| s.name != "witness.test/fake"),
        "a forged line was merged: {}",
        cp.note
    );

    // The same witness answering honestly: its 0x06 line is merged and reaches the quorum.
    forge.store(false, Ordering::SeqCst);
    let env = record("note", note_payload(2), &[&registrar]);
    let r = c
        .append(req(&env, "n-2", true))
        .await
        .expect("witnessed by the honest ML-DSA-44 line")
        .into_inner();
    let cp = open_checkpoint(&r.checkpoint, &log).expect("log signature");
    let cos = cp
        .note
        .verify_cosignatures(std::slice::from_ref(&wkey))
        .expect("verifies");
    assert_eq!((cos.len(), cos[0].signature_type), (1, "ML-DSA-44"));
}
