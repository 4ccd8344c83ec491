//! Issue 12 item 3: one keyless request must not stall the node. A crafted `draw.commit` of about
//! 900 KB (15,000 strata, 11,600 members, 5,800 exclusions) whose old rule checks were cubic is sent
//! over real gRPC, unsigned, with a garbage signature, signed by an unenrolled key and signed by an
//! enrolled registrar, while another connection keeps calling GetCheckpoint. The keyless ones are
//! refused by the signature check without their payload being parsed; the signed one is answered
//! as the rules say; GetCheckpoint answers every call throughout.

mod support;

use ledger_core::dsse::{Envelope, Signature};
use ledger_core::keys::key_id;
use ledger_core::registry::payload_type_for_log;
use ledger_proto::pb;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::*;
use tonic::Code;

const STRATA: usize = 15_000;
const MEMBERS: usize = 11_600;
const EXCLUDED: usize = 5_800;
/// A liveness bound for each call (not a performance target: those are printed).
const CALL_BOUND: Duration = Duration::from_secs(2);
/// An append that would take longer than this is a stall (the old checks took about an hour).
const APPEND_BOUND: Duration = Duration::from_secs(30);

/// The crafted commit. With `repeated`, every stratum has the same name and every member is in it,
/// the worst case of the old strata × pool × exclusions loops (about 10¹² comparisons); without,
/// the names are distinct and the commit is valid (every quota is fillable).
fn crafted_commit(party: &ed25519_dalek::SigningKey, repeated: bool) -> Vec<u8> {
    let stratum = |i: usize| {
        if repeated {
            "s".to_string()
        } else {
            format!("s{:05}", i % STRATA)
        }
    };
    let pool: Vec<serde_json::Value> = (0..MEMBERS)
        .map(|i| serde_json::json!({"id": format!("e{i:05}"), "stratum": stratum(i)}))
        .collect();
    // Every odd member is excluded: strata of even members can fill a quota of 1.
    let exclusions: Vec<serde_json::Value> = (0..EXCLUDED)
        .map(|j| serde_json::json!({"id": format!("e{:05}", 2 * j + 1), "reason": "x"}))
        .collect();
    let quota = |i: usize| u32::from(i < MEMBERS && i.is_multiple_of(2));
    let strata: Vec<serde_json::Value> = (0..STRATA)
        .map(|i| serde_json::json!({"name": stratum(i), "quota": quota(i)}))
        .collect();
    let k: u32 = (0..STRATA).map(quota).sum();
    let commit = serde_json::json!({
        "version": 1, "draw_id": if repeated { "draw-crafted-r" } else { "draw-crafted" },
        "purpose": "evaluator_selection", "subjects": ["cadre-1"],
        "pool": pool, "strata": strata, "exclusions": exclusions, "k": k,
        "algorithm": "ledger-draw-v1",
        "parties": [{"name": "registrar", "keyid": key_id(&party.verifying_key()),
                     "commitment": ledger_core::hash::Hash::digest(b"secret").to_hex()}],
        "reveal_at_size": 1_000_000, "reveal_deadline_micros": 4_000_000_000_000_000u64
    });
    serde_json::to_vec(&commit).expect("json")
}

fn envelope(payload: Vec<u8>) -> Envelope {
    Envelope::new(payload_type_for_log("draw.commit", "ledger.test/edge"), payload)
}

/// Sends `env` with Append and returns the answer and how long it took.
async fn timed_append(
    c: &mut pb::ledger_client::LedgerClient<tonic::transport::Channel>,
    env: &Envelope,
) -> (Result<pb::AppendResponse, tonic::Status>, Duration) {
    let t = Instant::now();
    let r = tokio::time::timeout(APPEND_BOUND, c.append(req(env, "", false)))
        .await
        .unwrap_or_else(|_| panic!("the node did not answer within {APPEND_BOUND:?}: a stall"));
    (r.map(tonic::Response::into_inner), t.elapsed())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crafted_draw_commit_does_not_stall_the_node() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, "ledger.test/edge", &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let (reg, stranger) = (new_key(), new_key());
    let node = Node::start(&data);
    let mut c = node.client().await;
    append(&mut c, &enroll(&reg, "registrar", &["registrar"], &[&admin]), "")
        .await
        .expect("enroll");

    let worst = crafted_commit(&reg, true);
    let valid = crafted_commit(&reg, false);
    println!(
        "crafted draw.commit: {} bytes (repeated stratum names), {} bytes (distinct names)",
        worst.len(),
        valid.len()
    );
    assert!(worst.len() > 800_000 && valid.len() <= ledger_core::dsse::limits::MAX_PAYLOAD);

    // Reads keep being answered on their own connection while the crafted requests arrive.
    let stop = Arc::new(AtomicBool::new(false));
    let mut reader = node.client().await;
    let s = stop.clone();
    let watcher = tokio::spawn(async move {
        let mut lat = Vec::new();
        while !s.load(Ordering::Relaxed) {
            let t = Instant::now();
            match tokio::time::timeout(
                CALL_BOUND,
                reader.get_checkpoint(pb::GetCheckpointRequest { size: None }),
            )
            .await
            {
                Ok(Ok(r)) => assert!(r.into_inner().size > 0),
                Ok(Err(e)) => panic!("GetCheckpoint failed under append load: {e}"),
                Err(_) => panic!("GetCheckpoint did not answer within {CALL_BOUND:?} under append load"),
            }
            lat.push(t.elapsed());
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        lat
    });

    // (b) Unsigned: refused by the limits, before anything else.
    let (r, t_unsigned) = timed_append(&mut c, &envelope(worst.clone())).await;
    let e = r.expect_err("unsigned");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("no signature"), "{}", e.message());

    // (b) A garbage signature under the enrolled registrar's key id: one strict verification,
    // refused before the payload is parsed.
    let mut garbage = envelope(worst.clone());
    garbage.signatures.push(Signature {
        keyid: key_id(&reg.verifying_key()),
        sig: vec![0x5a; 64],
    });
    let (r, t_garbage) = timed_append(&mut c, &garbage).await;
    let e = r.expect_err("garbage signature");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("does not verify"), "{}", e.message());

    // (a) Signed by a key the registry does not know: refused without any cryptography.
    let mut unknown = envelope(worst.clone());
    unknown.sign(&stranger);
    let (r, t_unknown) = timed_append(&mut c, &unknown).await;
    let e = r.expect_err("unenrolled key");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("unknown key"), "{}", e.message());

    // The payload is never looked at for keyless requests: even one that is not JSON at all is
    // refused for its signature, not its payload.
    let mut not_json = envelope(vec![b'{'; 900_000]);
    not_json.sign(&stranger);
    let (r, _) = timed_append(&mut c, &not_json).await;
    let e = r.expect_err("not json");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");

    // The same three in one AppendBatch: each refused with its own code.
    let t = Instant::now();
    let b = tokio::time::timeout(
        APPEND_BOUND,
        c.append_batch(pb::AppendBatchRequest {
            items: vec![
                req(&envelope(worst.clone()), "", false),
                req(&garbage, "", false),
                req(&unknown, "", false),
            ],
            wait_for_checkpoint: false,
        }),
    )
    .await
    .expect("batch answered")
    .expect("batch")
    .into_inner();
    let t_batch = t.elapsed();
    let codes: Vec<i32> = b.results.iter().map(|r| r.error_code).collect();
    assert_eq!(
        codes,
        vec![
            Code::InvalidArgument as i32,
            Code::InvalidArgument as i32,
            Code::PermissionDenied as i32
        ],
        "{:?}",
        b.results
    );

    // (c) Signed by the enrolled registrar: the worst case is refused for its repeated stratum
    // names, and the valid one with distinct names is checked in linear time and appended.
    let mut signed = envelope(worst);
    signed.sign(&reg);
    let (r, t_signed_worst) = timed_append(&mut c, &signed).await;
    let e = r.expect_err("repeated stratum names");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("DRAW_STRATUM_REPEATED"), "{}", e.message());
    let mut signed = envelope(valid);
    signed.sign(&reg);
    let (r, t_signed_valid) = timed_append(&mut c, &signed).await;
    let ok = r.expect("the valid crafted commit is accepted");
    assert_eq!(ok.index, 2);

    // A burst: twice as many registrar-signed crafted commits at once as the machine has cores
    // (with the checks on the async workers, two of these made GetCheckpoint time out). Each is
    // refused for its repeated names; reads stay answered meanwhile (the watcher above).
    let burst = 2 * std::thread::available_parallelism().map_or(2, usize::from) + 2;
    let mut signed_worst = envelope(crafted_commit(&reg, true));
    signed_worst.sign(&reg);
    let t = Instant::now();
    let tasks: Vec<_> = (0..burst)
        .map(|_| {
            let (mut c, env) = (c.clone(), signed_worst.clone());
            tokio::spawn(async move { timed_append(&mut c, &env).await })
        })
        .collect();
    for task in tasks {
        let (r, _) = task.await.expect("join");
        let e = r.expect_err("repeated stratum names");
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(e.message().contains("DRAW_STRATUM_REPEATED"), "{}", e.message());
    }
    let t_burst = t.elapsed();

    stop.store(true, Ordering::Relaxed);
    let lat = watcher.await.expect("GetCheckpoint kept answering");
    assert!(!lat.is_empty());
    let max = lat.iter().max().copied().unwrap_or_default();
    println!(
        "crafted draw.commit answered in: unsigned {:.1} ms, garbage signature {:.1} ms, unenrolled key {:.1} ms, \
         batch of the three {:.1} ms, registrar-signed (repeated names, refused) {:.1} ms, \
         registrar-signed (distinct names, appended) {:.1} ms",
        ms(t_unsigned),
        ms(t_garbage),
        ms(t_unknown),
        ms(t_batch),
        ms(t_signed_worst),
        ms(t_signed_valid)
    );
    println!(
        "a burst of {burst} registrar-signed crafted commits at once, all refused: {:.1} ms",
        ms(t_burst)
    );
    println!(
        "GetCheckpoint meanwhile: {} calls, all answered, max {:.1} ms",
        lat.len(),
        ms(max)
    );
}
