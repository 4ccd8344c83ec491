//! Health tells the truth (issue 18 item 3) and reflection answers both `grpc.reflection.v1` and
//! `grpc.reflection.v1alpha` (issue 16). Real `ledger-node serve` processes on loopback, real
//! gRPC; the storage failure is the node's own fault-injection switch
//! (`LEDGER_FAULT_INJECT=fail-commit`, docs/operations.md).

mod support;

use ledger_proto::pb;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const LEDGER: &str = "ledger.v1.Ledger";

async fn channel(addr: &str) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(addr.to_string())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect")
}

/// Starts `ledger-node serve` on DATA with metrics on METRICS and the given environment.
fn start_node(data: &Path, metrics: u16, env: &[(&str, &str)]) -> Node {
    let metrics = format!("127.0.0.1:{metrics}");
    Node::try_start_env(data, &["--metrics-listen", &metrics], env)
        .unwrap_or_else(|e| panic!("the node did not start: {e}"))
}

/// The value of a metric line `NAME V` from the node's /metrics.
fn metric(port: u16, name: &str) -> u64 {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("metrics connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("read");
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{body}"))
}

async fn health(addr: &str, service: &str) -> ServingStatus {
    let mut h = HealthClient::new(channel(addr).await);
    let r = h
        .check(tonic_health::pb::HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("health check")
        .into_inner();
    ServingStatus::try_from(r.status).expect("status")
}

/// Polls health until it reports WANT (the reporter follows the sequencer asynchronously), at
/// most 5 s; returns the last status seen.
async fn health_becomes(addr: &str, service: &str, want: ServingStatus) -> ServingStatus {
    let t = Instant::now();
    loop {
        let s = health(addr, service).await;
        if s == want || t.elapsed() > Duration::from_secs(5) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_node_is_serving_and_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("d");
    init(&data, "ledger.test/health-ok", &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let port = free_port();
    let mut node = start_node(&data, port, &[]);
    assert_eq!(health(&node.addr, LEDGER).await, ServingStatus::Serving);
    assert_eq!(health(&node.addr, "").await, ServingStatus::Serving);
    assert_eq!(metric(port, "ledger_sequencer_up"), 1);
    let mut c = node.client().await;
    let r = append(
        &mut c,
        &enroll(&new_key(), "registrar", &["registrar"], &[&admin]),
        "ok-1",
    )
    .await
    .expect("append on a healthy node");
    assert_eq!(r.index, 1);
    assert_eq!(health(&node.addr, LEDGER).await, ServingStatus::Serving);
    assert_eq!(metric(port, "ledger_sequencer_up"), 1);
    node.stop();
}

/// Attack/failure: the store stops accepting writes under a running node. Before, health stayed
/// SERVING; now appends are refused UNAVAILABLE, health turns NOT_SERVING (for the Ledger service
/// and for the server as a whole), `ledger_sequencer_up` is 0, and reads still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_failure_turns_health_not_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("d");
    init(&data, "ledger.test/health-fail", &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let port = free_port();
    let mut node = start_node(&data, port, &[("LEDGER_FAULT_INJECT", "fail-commit")]);
    // Nothing was written yet: the node is healthy until its first group commit.
    assert_eq!(health(&node.addr, LEDGER).await, ServingStatus::Serving);
    assert_eq!(metric(port, "ledger_sequencer_up"), 1);
    let mut c = node.client().await;

    let e = append(
        &mut c,
        &enroll(&new_key(), "registrar", &["registrar"], &[&admin]),
        "f-1",
    )
    .await
    .expect_err("the injected commit failure must not be acknowledged");
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(e.message().contains("storage failure"), "{e:?}");

    assert_eq!(
        health_becomes(&node.addr, LEDGER, ServingStatus::NotServing).await,
        ServingStatus::NotServing
    );
    assert_eq!(
        health_becomes(&node.addr, "", ServingStatus::NotServing).await,
        ServingStatus::NotServing
    );
    assert_eq!(metric(port, "ledger_sequencer_up"), 0);

    // Later appends are refused too (the sequencer stopped), still UNAVAILABLE.
    let e = append(&mut c, &enroll(&new_key(), "r2", &["registrar"], &[&admin]), "f-2")
        .await
        .expect_err("no appends after a storage failure");
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");

    // Reads still work: the charter and its checkpoint, nothing of the failed group.
    let cp = c
        .get_checkpoint(pb::GetCheckpointRequest { size: None })
        .await
        .expect("checkpoint still readable")
        .into_inner();
    assert_eq!(cp.size, 1);
    let all = entries(&mut c).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].1, "charter");
    node.stop();
}

async fn reflection_v1alpha_services(addr: &str) -> Vec<String> {
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1alpha::{ServerReflectionRequest, ServerReflectionResponse};
    let mut c = ServerReflectionClient::new(channel(addr).await);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut s = c
        .server_reflection_info(tokio_stream::iter([req]))
        .await
        .expect("v1alpha reflection answers")
        .into_inner();
    let r: ServerReflectionResponse = s.message().await.expect("message").expect("one response");
    match r.message_response {
        Some(MessageResponse::ListServicesResponse(l)) => l.service.into_iter().map(|s| s.name).collect(),
        other => panic!("unexpected reflection answer {other:?}"),
    }
}

async fn reflection_v1_services(addr: &str) -> Vec<String> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut c = ServerReflectionClient::new(channel(addr).await);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut s = c
        .server_reflection_info(tokio_stream::iter([req]))
        .await
        .expect("v1 reflection answers")
        .into_inner();
    let r = s.message().await.expect("message").expect("one response");
    match r.message_response {
        Some(MessageResponse::ListServicesResponse(l)) => l.service.into_iter().map(|s| s.name).collect(),
        other => panic!("unexpected reflection answer {other:?}"),
    }
}

/// Older grpcurl, Evans and Python grpcio-reflection speak `grpc.reflection.v1alpha`: the node
/// answers it (it used to answer UNIMPLEMENTED) as well as `grpc.reflection.v1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_v1alpha_and_v1_list_the_services() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("d");
    init(&data, "ledger.test/reflection", &[], 1);
    let mut node = start_node(&data, free_port(), &[]);
    for names in [
        reflection_v1alpha_services(&node.addr).await,
        reflection_v1_services(&node.addr).await,
    ] {
        assert!(names.iter().any(|n| n == LEDGER), "{names:?}");
        assert!(
            names.iter().any(|n| n == "grpc.reflection.v1alpha.ServerReflection"),
            "{names:?}"
        );
        assert!(
            names.iter().any(|n| n == "grpc.reflection.v1.ServerReflection"),
            "{names:?}"
        );
    }
    node.stop();
}

/// Readiness: while the node is still starting (held before it verifies its store), the port
/// answers, health is NOT_SERVING and the Ledger service answers UNAVAILABLE instead of serving a
/// half-loaded node; once ready it is SERVING and appends succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_node_is_not_serving_until_ready() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("d");
    init(&data, "ledger.test/health-start", &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let release = dir.path().join("release");
    let port = free_port();
    let addr = format!("http://127.0.0.1:{port}");
    let hold = format!("hold-start:{}", release.display());
    let mut child = Command::new(bin("ledger-node"))
        .args(["serve", "--metrics-listen", "off", "--checkpoint-interval-ms", "200"])
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data")
        .arg(&data)
        .env("RUST_LOG", "warn")
        .env("LEDGER_FAULT_INJECT", &hold)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn ledger-node");
    // The port opens before the node is ready: wait (bounded) until it answers.
    let t = Instant::now();
    let ch = loop {
        match tonic::transport::Endpoint::from_shared(addr.clone())
            .expect("endpoint")
            .connect()
            .await
        {
            Ok(ch) => break ch,
            Err(e) if t.elapsed() > Duration::from_secs(20) => {
                let _ = child.kill();
                panic!("the port never opened: {e}");
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let mut h = HealthClient::new(ch.clone());
    for service in [LEDGER, ""] {
        let r = h
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health answers during start-up")
            .into_inner();
        assert_eq!(
            ServingStatus::try_from(r.status),
            Ok(ServingStatus::NotServing),
            "{service:?}"
        );
    }
    let mut c = ledger_proto::pb::ledger_client::LedgerClient::new(ch.clone());
    let e = c
        .get_checkpoint(pb::GetCheckpointRequest { size: None })
        .await
        .expect_err("a starting node serves nothing");
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(e.message().contains("starting"), "{e:?}");

    // Release start-up: "listening on" is printed once the node is ready.
    std::fs::write(&release, b"").expect("release");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    assert!(
        lines
            .by_ref()
            .any(|l| l.unwrap_or_default().starts_with("listening on ")),
        "the node did not become ready"
    );
    std::thread::spawn(move || for _ in lines {});
    let mut node = Node {
        child: Some(child),
        addr: addr.clone(),
        data: data.clone(),
    };
    assert_eq!(health(&addr, LEDGER).await, ServingStatus::Serving);
    assert_eq!(health(&addr, "").await, ServingStatus::Serving);
    let r = append(
        &mut c,
        &enroll(&new_key(), "registrar", &["registrar"], &[&admin]),
        "s-1",
    )
    .await
    .expect("append once ready");
    assert_eq!(r.index, 1);
    drop((c, h, ch));
    node.stop();
}

/// The malloc settings (`MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_`, `GLIBC_TUNABLES`) in a running
/// process's environment, sorted, and its arguments.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn malloc_env_and_args(pid: u32) -> (Vec<String>, Vec<String>) {
    let read = |f: &str| -> Vec<String> {
        let raw = std::fs::read(format!("/proc/{pid}/{f}")).unwrap_or_else(|e| panic!("/proc/{pid}/{f}: {e}"));
        raw.split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    };
    let mut env: Vec<String> = read("environ")
        .into_iter()
        .filter(|v| {
            ["MALLOC_ARENA_MAX=", "MALLOC_MMAP_THRESHOLD_=", "GLIBC_TUNABLES="]
                .iter()
                .any(|p| v.starts_with(p))
        })
        .collect();
    env.sort();
    (env, read("cmdline"))
}

/// The node runs with two malloc arenas and a fixed mmap threshold by executing itself again
/// (docs/operations.md, `ledger-node/src/arenas.rs`): same process id and arguments; a setting the
/// operator chose, by its variable or by a glibc tunable, is kept. Read from outside, in /proc.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[tokio::test]
async fn serve_runs_with_two_malloc_arenas_unless_the_operator_chose() {
    let tmp = tempfile::tempdir().expect("tmp");
    // (environment set at spawn, the malloc settings the running node has)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: [Case; 4] = [
        (&[], &["MALLOC_ARENA_MAX=2", "MALLOC_MMAP_THRESHOLD_=131072"]),
        (
            &[("MALLOC_ARENA_MAX", "8")],
            &["MALLOC_ARENA_MAX=8", "MALLOC_MMAP_THRESHOLD_=131072"],
        ),
        (
            &[("GLIBC_TUNABLES", "glibc.malloc.arena_max=3")],
            &[
                "GLIBC_TUNABLES=glibc.malloc.arena_max=3",
                "MALLOC_MMAP_THRESHOLD_=131072",
            ],
        ),
        (
            &[
                ("MALLOC_ARENA_MAX", "4"),
                ("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=65536"),
            ],
            &["GLIBC_TUNABLES=glibc.malloc.mmap_threshold=65536", "MALLOC_ARENA_MAX=4"],
        ),
    ];
    for (i, (set, want)) in cases.iter().enumerate() {
        let data = tmp.path().join(format!("d{i}"));
        let mut cmd = Command::new(bin("ledger-node"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--metrics-listen", "off", "--data"])
            .arg(&data)
            .env_remove("MALLOC_ARENA_MAX")
            .env_remove("MALLOC_MMAP_THRESHOLD_")
            .env_remove("GLIBC_TUNABLES")
            .envs(set.iter().copied());
        let (mut child, addr, _) = spawn_listening(cmd);
        // "listening on" came through the pipe given at spawn, from the pid that was spawned.
        let (env, args) = malloc_env_and_args(child.id());
        assert_eq!(env, *want, "case {i}: the node's malloc settings");
        assert_eq!(
            args[1..4],
            ["serve", "--listen", "127.0.0.1:0"],
            "case {i}: arguments kept"
        );
        assert_eq!(args.last().map(String::as_str), data.to_str(), "case {i}");
        assert_eq!(health(&addr, LEDGER).await, ServingStatus::Serving, "case {i}");
        let _ = child.kill();
        let _ = child.wait();
    }
}
