//! Issue 14 (EDGEB): concurrent single Appends are checked together on the node's edge pool, their
//! signatures in one Ed25519 batch verification. The attack: forged Appends sent among many
//! concurrent honest ones over real gRPC, hoping that one bad signature in a shared batch makes the
//! honest Appends beside it fail (a cheap denial of service), or that a forgery slips through with
//! the batch. Every honest Append must be appended; every forged one must be refused with exactly
//! the code and message a lone Append with that forgery gets.

mod support;

use ledger_core::dsse::Envelope;
use std::collections::BTreeSet;
use std::time::Duration;
use support::*;
use tonic::Code;

const CLIENTS: u64 = 32;
const PER_CLIENT: u64 = 12;

/// The kinds of forgery, each made fresh (a new ticket) every time.
#[derive(Clone, Copy, Debug)]
enum Forgery {
    /// A well-formed signature by the enrolled platform over another payload: it enters the batch
    /// verification and makes it fail.
    OtherPayload,
    /// 64 bytes that are no signature, under the platform's key id.
    Garbage,
    /// A valid signature by a key the registry does not know (refused before any cryptography).
    Unenrolled,
}

/// A micro-evaluation for ticket `n`, bound to the log (records are made on many threads, and
/// [`record`]'s log is per thread).
fn micro(n: u64, keys: &[&ed25519_dalek::SigningKey]) -> Envelope {
    record_in(Some(ORIGIN), "evaluation.micro", micro_payload(n), keys)
}

const ORIGIN: &str = "ledger.test/coalesce";

fn forged(
    kind: Forgery,
    platform: &ed25519_dalek::SigningKey,
    stranger: &ed25519_dalek::SigningKey,
    n: u64,
) -> Envelope {
    match kind {
        Forgery::OtherPayload => {
            let mut env = micro(n, &[platform]);
            env.payload = micro(n + 1, &[]).payload;
            env
        }
        Forgery::Garbage => {
            let mut env = micro(n, &[platform]);
            env.signatures[0].sig = vec![0x5a; 64];
            env
        }
        Forgery::Unenrolled => micro(n, &[stranger]),
    }
}

const FORGERIES: [Forgery; 3] = [Forgery::OtherPayload, Forgery::Garbage, Forgery::Unenrolled];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_appends_among_concurrent_honest_ones_fail_alone() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, ORIGIN, &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let node = Node::try_start_with(&data, &["--metrics-listen", &listen])
        .unwrap_or_else(|e| panic!("the node did not start: {e}"));
    let mut c = node.client().await;
    let (platform, stranger) = (new_key(), new_key());
    let enrolled = append(
        &mut c,
        &enroll(&platform, "platform", &["service-platform"], &[&admin]),
        "enroll",
    )
    .await
    .expect("enroll");

    // Today's answer to each forgery, sent alone (nothing else in flight: a job of one).
    let mut alone = Vec::new();
    for (i, f) in FORGERIES.iter().enumerate() {
        let e = append(&mut c, &forged(*f, &platform, &stranger, 1_000_000 + 10 * i as u64), "")
            .await
            .expect_err("a forgery is refused");
        alone.push((e.code(), e.message().to_string()));
    }
    assert_eq!(alone[0].0, Code::InvalidArgument, "{alone:?}");
    assert!(alone[0].1.contains("does not verify"), "{alone:?}");
    assert_eq!(alone[1].0, Code::InvalidArgument, "{alone:?}");
    assert!(alone[1].1.contains("does not verify"), "{alone:?}");
    assert_eq!(alone[2].0, Code::PermissionDenied, "{alone:?}");
    assert!(alone[2].1.contains("unknown key"), "{alone:?}");
    // Nothing was appended since the enrollment.
    let size_before = enrolled.index + 1;
    let jobs_before = metric(port, "ledger_edge_append_job_size_count");
    let checked_before = metric(port, "ledger_edge_append_job_size_sum");

    // The attack: 32 concurrent connections, every one sending honest Appends back to back, most
    // of them with a forgery among their honest ones.
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let mut c = node.client().await;
        let (platform, stranger) = (platform.clone(), stranger.clone());
        tasks.push(tokio::spawn(async move {
            let mut honest = Vec::new();
            let mut refused = Vec::new();
            for i in 0..PER_CLIENT {
                let n = client * 1000 + 10 * i;
                if client % 4 != 3 && i % 4 == 1 {
                    let f = FORGERIES[((client + i) % 3) as usize];
                    let e = append(&mut c, &forged(f, &platform, &stranger, n), "")
                        .await
                        .expect_err("a forgery among honest Appends is refused");
                    refused.push((((client + i) % 3) as usize, e.code(), e.message().to_string()));
                } else {
                    let env = micro(n, &[&platform]);
                    let r = append(&mut c, &env, "").await;
                    honest.push(r.map(|r| r.index).map_err(|e| format!("{e:?}")));
                }
            }
            (honest, refused)
        }));
    }
    let mut indices = BTreeSet::new();
    let mut honest_sent = 0;
    let mut forged_sent = 0;
    for t in tasks {
        let (honest, refused) = tokio::time::timeout(Duration::from_secs(120), t)
            .await
            .expect("every Append answered")
            .expect("join");
        for r in honest {
            honest_sent += 1;
            let index = r.unwrap_or_else(|e| panic!("an honest Append beside forgeries failed: {e}"));
            assert!(indices.insert(index), "index {index} answered twice");
        }
        for (kind, code, message) in refused {
            forged_sent += 1;
            assert_eq!(
                (code, message.as_str()),
                (alone[kind].0, alone[kind].1.as_str()),
                "{:?} among concurrent Appends is answered as when alone",
                FORGERIES[kind]
            );
        }
    }
    assert_eq!(forged_sent, 72, "forgeries sent");
    assert_eq!(honest_sent, CLIENTS * PER_CLIENT - 72);
    // Exactly the honest Appends are in the log: one more, answered with its checkpoint, lands
    // right after them.
    let last = micro(999_999, &[&platform]);
    let last = c
        .append(req(&last, "", true))
        .await
        .expect("a last honest Append")
        .into_inner();
    let size = size_before + honest_sent;
    assert_eq!(last.index, size, "exactly the honest Appends are in the log");
    assert_eq!(
        indices.iter().copied().collect::<Vec<_>>(),
        (size_before..size).collect::<Vec<_>>()
    );
    // Every Append went through an edge job, and some jobs held several (the concurrency the
    // attack needs to share a batch with honest Appends).
    let jobs = metric(port, "ledger_edge_append_job_size_count") - jobs_before;
    let checked = metric(port, "ledger_edge_append_job_size_sum") - checked_before;
    eprintln!("{checked} Appends checked in {jobs} edge jobs");
    assert_eq!(
        checked,
        (CLIENTS * PER_CLIENT + 1) as f64,
        "each Append (and the last) checked once"
    );
    assert!(
        jobs < checked,
        "concurrent Appends shared edge jobs ({jobs} jobs for {checked})"
    );
}
