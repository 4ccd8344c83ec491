//! C2SP tlog-witness over HTTP (issue 16, item 1), tested against a harness written from the spec
//! text and independent of this workspace's crates (`tests/tlog_spec`): its client speaks to the
//! real `ledger-node witness --http-listen`, and the real node pushes to its witness. The test
//! bodies use the node's crates only to drive the node and to read what it stored. Needs the
//! workspace binaries (`cargo build --workspace --bins`).

mod support;
mod tlog_spec;

use ledger_core::cosignature::CosignatureVerifier;
use ledger_core::note::Note;
use ledger_proto::pb;
use ledger_proto::pb::witness_client::WitnessClient;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use support::*;
use tlog_spec::{Log, SpecWitness, post, request, split_note, verify_cosignatures};

/// A `ledger-node witness` with its HTTP front.
struct WitnessProc {
    child: Child,
    grpc: String,
    http: String,
    key: String,
}

impl WitnessProc {
    fn start(data: &Path, name: &str, log_key: &str) -> Self {
        let mut child = Command::new(bin("ledger-node"))
            .args(["witness", "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
            .args(["--name", name, "--log-key", log_key, "--data"])
            .arg(data)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn witness");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let (mut key, mut http) = (None, None);
        for line in lines.by_ref() {
            let line = line.unwrap_or_default();
            if let Some(k) = line.strip_prefix("witness key ") {
                key = Some(k.to_string());
            } else if let Some(h) = line.strip_prefix("tlog-witness http on http://") {
                http = Some(h.to_string());
            } else if let Some(a) = line.strip_prefix("listening on ") {
                let grpc = format!("http://{a}");
                std::thread::spawn(move || for _ in lines {});
                return Self {
                    child,
                    grpc,
                    http: http.expect("the witness prints its HTTP address"),
                    key: key.expect("the witness prints its key"),
                };
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the witness did not start");
    }
}

impl Drop for WitnessProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_witness_answers_add_checkpoint_over_http_as_the_spec_says() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = Log::new("harness.test/log", 7, 12);
    let w = WitnessProc::start(&dir.path().join("w"), "witness.test/h", &log.vkey());
    let (wname, wkey) = tlog_spec::parse_vkey(&w.key, 0x04).expect("a tlog-cosignature v1 Ed25519 key");

    // 200: the first checkpoint (old 0, empty proof); the answer is the witness's cosignature line.
    let cp4 = log.checkpoint(4, None);
    let r = post(&w.http, &tlog_spec::body(0, &[], &cp4));
    assert_eq!(r.status, 200, "{r:?}");
    let (text, _) = split_note(&cp4).expect("note");
    let lines: Vec<_> = r
        .body
        .lines()
        .map(|l| tlog_spec::parse_sig_line(l).expect("a note signature line"))
        .collect();
    assert!(r.body.ends_with('\n'));
    assert_eq!(verify_cosignatures(&text, &lines, &wname, &wkey).len(), 1, "{}", r.body);

    // 409: the witness holds 4, the request says 0; the body is the size, as text/x.tlog.size.
    let cp6 = log.checkpoint(6, None);
    let r = post(&w.http, &tlog_spec::body(0, &[], &cp6));
    assert_eq!(r.status, 409, "{r:?}");
    assert_eq!(r.header("content-type"), Some("text/x.tlog.size"));
    assert_eq!(r.body, "4\n");

    // 422: a consistency proof from 4 to 6 with one hash changed.
    let mut proof = log.proof(4, 6);
    proof[0][0] ^= 1;
    let r = post(&w.http, &tlog_spec::body(4, &proof, &cp6));
    assert_eq!(r.status, 422, "{r:?}");
    // 422: a real proof for a checkpoint with another root.
    let forged = log.checkpoint(6, Some(tlog_spec::leaf(b"another tree")));
    let r = post(&w.http, &tlog_spec::body(4, &log.proof(4, 6), &forged));
    assert_eq!(r.status, 422, "{r:?}");

    // 404: a log the witness does not know.
    let other = Log::new("harness.test/other", 8, 6);
    let r = post(&w.http, &tlog_spec::body(0, &[], &other.checkpoint(2, None)));
    assert_eq!(r.status, 404, "{r:?}");

    // 403: the right origin signed by another key.
    let impostor = Log::new("harness.test/log", 9, 6);
    let r = post(
        &w.http,
        &tlog_spec::body(4, &log.proof(4, 6), &impostor.checkpoint(6, None)),
    );
    assert_eq!(r.status, 403, "{r:?}");

    // 400: old size above the checkpoint size; malformed bodies.
    let r = post(&w.http, &tlog_spec::body(7, &[], &cp6));
    assert_eq!(r.status, 400, "{r:?}");
    for bad in ["", "hello\n", "old 04\n\n", "old 4\nnot base64!\n\n"] {
        let r = post(&w.http, bad);
        assert_eq!(r.status, 400, "{bad:?}: {r:?}");
    }
    // A body over the spec's limit (a 64 KiB note, 63 proof lines) is refused, not buffered.
    let huge = format!("old 0\n\n{}", "x".repeat(80_000));
    let r = post(&w.http, &huge);
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("over"), "{r:?}");
    // Only POST, only /add-checkpoint.
    assert_eq!(request(&w.http, "GET", "/add-checkpoint", b"").status, 405);
    assert_eq!(request(&w.http, "POST", "/add", b"").status, 404);

    // 200: 4 -> 6 with the real proof.
    let r = post(&w.http, &tlog_spec::body(4, &log.proof(4, 6), &cp6));
    assert_eq!(r.status, 200, "{r:?}");
    // 409 with the size: the same size with another root.
    let r = post(&w.http, &tlog_spec::body(6, &[], &forged));
    assert_eq!((r.status, r.body.as_str()), (409, "6\n"), "{r:?}");

    // One state behind both protocols: gRPC sees what HTTP cosigned, and refuses a rollback.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut c = WitnessClient::connect(w.grpc.clone()).await.expect("connect");
        let held = c
            .get_latest(pb::GetLatestRequest {
                origin: log.origin.clone(),
            })
            .await
            .expect("held")
            .into_inner()
            .checkpoint;
        let note = Note::parse(&held).expect("note");
        assert!(note.text.starts_with("harness.test/log\n6\n"), "{held}");
        let v = CosignatureVerifier::parse(&w.key).expect("key");
        assert_eq!(note.verify_cosignatures(&[v]).expect("cosigned").len(), 1);
        let err = c
            .add_checkpoint(pb::AddCheckpointRequest {
                body: tlog_spec::body(4, &log.proof(4, 6), &cp6),
            })
            .await
            .expect_err("the witness holds 6");
        assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err}");
        assert!(err.message().contains("size 6"), "{err}");
    });
    // And HTTP sees what gRPC cosigned.
    let cp9 = log.checkpoint(9, None);
    let r = rt.block_on(async {
        let mut c = WitnessClient::connect(w.grpc.clone()).await.expect("connect");
        c.add_checkpoint(pb::AddCheckpointRequest {
            body: tlog_spec::body(6, &log.proof(6, 9), &cp9),
        })
        .await
    });
    assert!(r.is_ok(), "{r:?}");
    let r = post(&w.http, &tlog_spec::body(6, &log.proof(6, 9), &cp9));
    assert_eq!((r.status, r.body.as_str()), (409, "9\n"), "{r:?}");
}

const ORIGIN: &str = "ledger.test/http-witnessed";

fn enroll_witness(vkey: &str, admin: &ed25519_dalek::SigningKey) -> ledger_core::dsse::Envelope {
    let (name, key) = tlog_spec::parse_vkey(vkey, 0x04).expect("witness key");
    record(
        "key.enroll",
        serde_json::json!({
            "version": 1, "name": name,
            "key": ledger_core::keys::public_key_to_base64(&key),
            "roles": ["witness"], "scope": {"organization": "court", "kinds": []}
        }),
        &[admin],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_pushes_over_http_and_the_verifier_counts_the_cosignatures() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("node");
    init_with_quorum(&data, ORIGIN, 2);
    let node_vkey = std::fs::read_to_string(data.join("keys/node.vkey")).expect("vkey");
    // The spec-text witness, and a real `ledger-node witness` reached over its HTTP front.
    let spec = SpecWitness::start("independent.test/w", 11, &node_vkey);
    let ours = WitnessProc::start(&dir.path().join("w"), "ours.test/w", node_vkey.trim());
    // A witness of another log: it answers 404, which the node logs and skips.
    let stranger = SpecWitness::start("stranger.test/w", 12, &Log::new("other.test/log", 3, 0).vkey());
    let witness_args = [
        format!("tlog+http://{}={}", spec.addr, spec.vkey()),
        format!("tlog+http://{}/={}", ours.http, ours.key),
        format!("tlog+http://{}={}", stranger.addr, stranger.vkey()),
    ];
    let extra: Vec<&str> = witness_args
        .iter()
        .flat_map(|w| ["--witness", w.as_str()])
        .chain(["--witness-timeout-ms", "4000"])
        .collect();
    let mut node = Node::try_start_with(&data, &extra).expect("node starts");
    let mut c = node.client().await;
    let admin = key(&data.join("keys/admin.key"));
    append(&mut c, &enroll_witness(&spec.vkey(), &admin), "enroll-spec")
        .await
        .expect("enroll");
    append(&mut c, &enroll_witness(&ours.key, &admin), "enroll-ours")
        .await
        .expect("enroll");
    let registrar = new_key();
    append(
        &mut c,
        &enroll(&registrar, "registrar", &["registrar"], &[&admin]),
        "enroll-r",
    )
    .await
    .expect("enroll registrar");

    let r = c
        .append(req(&record("note", note_payload(1), &[&registrar]), "n-1", true))
        .await
        .expect("a checkpoint witnessed over HTTP")
        .into_inner();
    let (text, lines) = split_note(&r.checkpoint).expect("note");
    assert_eq!(
        verify_cosignatures(&text, &lines, &spec.name, &spec.public_key()).len(),
        1,
        "the independent witness's cosignature is on the node's checkpoint: {}",
        r.checkpoint
    );
    let ours_key = CosignatureVerifier::parse(&ours.key).expect("key");
    let note = Note::parse(&r.checkpoint).expect("note");
    assert_eq!(note.verify_cosignatures(&[ours_key]).expect("valid").len(), 1);
    let seen = spec.seen();
    assert!(seen.iter().all(|s| s.2 == 200), "{seen:?}");
    let strange = stranger.seen();
    assert!(!strange.is_empty() && strange.iter().all(|s| s.2 == 404), "{strange:?}");
    assert!(lines.iter().all(|l| l.0 != stranger.name), "{}", r.checkpoint);

    // The verifier counts both witnesses in a bundle.
    let file = dir.path().join("b.ledger-bundle.json");
    let out = Command::new(bin("ledger-verify"))
        .args(["bundle", "export", "--node", &node.addr, "--index", "3", "-o"])
        .arg(&file)
        .output()
        .expect("export");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(bin("ledger-verify"))
        .args(["bundle", "verify"])
        .arg(&file)
        .args(["--trusted-key", node_vkey.trim()])
        .output()
        .expect("verify");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("2 independent witness(es)"), "{report}");
    assert!(report.contains("independent.test/w"), "{report}");

    // 409 path: a restarted node believes the witnesses hold 0; each answers 409 with its size,
    // and the node retries from it.
    node.stop();
    let held = spec.held().expect("held");
    let before = spec.seen().len();
    let node = Node::try_start_with(&data, &extra).expect("node restarts");
    let mut c = node.client().await;
    let r = c
        .append(req(&record("note", note_payload(2), &[&registrar]), "n-2", true))
        .await
        .expect("witnessed again after the 409 retry")
        .into_inner();
    let (text, lines) = split_note(&r.checkpoint).expect("note");
    assert_eq!(
        verify_cosignatures(&text, &lines, &spec.name, &spec.public_key()).len(),
        1
    );
    let seen = spec.seen();
    assert_eq!(
        seen.get(before).map(|s| (s.0, s.2)),
        Some((0, 409)),
        "the restarted node first asks from 0: {seen:?}"
    );
    assert_eq!(
        seen.get(before + 1).map(|s| (s.0, s.2)),
        Some((held, 200)),
        "then from the size the witness stated: {seen:?}"
    );
}
