//! Production metrics (issue 18 item 2): a real `ledger-node serve` on loopback takes appends
//! (and one refusal), its `/metrics` is scraped and linted by Prometheus's own checker
//! (`promtool check metrics`), the example alert rules by `promtool check rules`, and the counts
//! are checked against what the test did. promtool comes from Debian's `prometheus` package
//! (.ci/run extracts it); without it the test is skipped, unless `LEDGER_REQUIRE_PROMTOOL` is set
//! (CI), where it fails.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;
use tonic::Code;

/// The promtool to run, or `None` (test skipped) when it is missing outside CI.
fn promtool() -> Option<PathBuf> {
    let p = PathBuf::from(std::env::var_os("LEDGER_PROMTOOL").unwrap_or_else(|| "promtool".into()));
    match Command::new(&p).arg("--version").output() {
        Ok(o) if o.status.success() => Some(p),
        r => {
            assert!(
                std::env::var_os("LEDGER_REQUIRE_PROMTOOL").is_none(),
                "LEDGER_REQUIRE_PROMTOOL is set but `{} --version` failed ({r:?}); install Debian's prometheus package (see .ci/run)",
                p.display()
            );
            eprintln!(
                "SKIPPED: promtool not found (`{} --version` failed); install Debian's `prometheus` package or set LEDGER_PROMTOOL",
                p.display()
            );
            None
        }
    }
}

/// Runs promtool with ARGS (and STDIN), returning (success, stdout + stderr).
fn run_promtool(p: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new(p)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.unwrap_or("").as_bytes()).expect("write stdin");
    drop(input);
    let o = child.wait_with_output().expect("promtool output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

/// Starts `ledger-node serve` on DATA with metrics on 127.0.0.1:METRICS and EXTRA arguments.
fn start_node(data: &Path, metrics: u16, extra: &[&str]) -> Node {
    let metrics = format!("127.0.0.1:{metrics}");
    let mut args = vec!["--metrics-listen", metrics.as_str()];
    args.extend_from_slice(extra);
    Node::try_start_with(data, &args).unwrap_or_else(|e| panic!("the node did not start: {e}"))
}

/// `GET /metrics`: (response head, body).
fn scrape(port: u16) -> (String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("metrics connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let mut all = String::new();
    s.read_to_string(&mut all).expect("read");
    let (head, body) = all.split_once("\r\n\r\n").expect("an HTTP response");
    (head.to_string(), body.to_string())
}

/// One sample: its labels and value.
type Samples = BTreeMap<String, Vec<(BTreeMap<String, String>, f64)>>;

/// Parses the text exposition's samples (label values here hold no `"`, `,` or `\`).
fn samples(body: &str) -> Samples {
    let mut out = Samples::new();
    for l in body.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (series, value) = l.rsplit_once(' ').expect("NAME VALUE");
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => {
                let inner = rest.strip_suffix('}').expect("closing brace");
                let labels = inner
                    .split(',')
                    .filter(|kv| !kv.is_empty())
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').expect("k=v");
                        (k.to_string(), v.trim_matches('"').to_string())
                    })
                    .collect();
                (n, labels)
            }
            None => (series, BTreeMap::new()),
        };
        let v: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {l:?}"));
        out.entry(name.to_string()).or_default().push((labels, v));
    }
    out
}

/// The value of NAME with (at least) the labels WANT; panics naming it when absent.
fn value(s: &Samples, name: &str, want: &[(&str, &str)]) -> f64 {
    s.get(name)
        .and_then(|v| {
            v.iter()
                .find(|(l, _)| want.iter().all(|(k, w)| l.get(*k).map(String::as_str) == Some(*w)))
        })
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no {name}{want:?} in the scrape"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_and_count_what_happened() {
    let Some(promtool) = promtool() else {
        return;
    };
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/monitoring/alerts.yml");
    let rules = rules.to_str().expect("utf-8 path");
    let (ok, out) = run_promtool(&promtool, &["check", "rules", rules], None);
    assert!(ok, "promtool check rules {rules}:\n{out}");
    assert!(out.contains("SUCCESS"), "{out}");
    check_dashboard(&promtool);

    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("d");
    init(&data, "ledger.test/metrics", &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let port = free_port();
    // A witness that never answers (nothing listens on its port): its lag and failures show.
    let down = ledger_core::cosignature::CosignatureSigner::new("witness.test/down", new_key())
        .expect("witness key")
        .verifier()
        .to_string_key();
    let witness = format!("http://127.0.0.1:{}={down}", free_port());
    let mut node = start_node(&data, port, &["--witness", &witness]);
    let mut c = node.client().await;
    for i in 0..3 {
        let name = format!("registrar-{i}");
        append(&mut c, &enroll(&new_key(), &name, &["registrar"], &[&admin]), &name)
            .await
            .expect("append");
    }
    // Refused: an enrolment signed by a key that is no administrator.
    let e = append(
        &mut c,
        &enroll(&new_key(), "intruder", &["registrar"], &[&new_key()]),
        "intruder",
    )
    .await
    .expect_err("an enrolment without the administrator quorum is refused");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");

    // Wait (bounded) until the checkpoint over the 3 appends has been pushed to the witness.
    let down_label = [("witness", "witness.test/down")];
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (head, body) = loop {
        let (head, body) = scrape(port);
        let s = samples(&body);
        let lag = s
            .get("ledger_witness_lag_entries")
            .map(|_| value(&s, "ledger_witness_lag_entries", &down_label));
        if lag == Some(4.0) || std::time::Instant::now() > deadline {
            break (head, body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    let (ok, out) = run_promtool(&promtool, &["check", "metrics"], Some(&body));
    assert!(
        ok && out.trim().is_empty(),
        "promtool check metrics:\n{out}\n--- scrape ---\n{body}"
    );

    let s = samples(&body);
    for family in [
        "ledger_appends_total",
        "ledger_duplicate_appends_total",
        "ledger_groups_total",
        "ledger_flush_seconds_bucket",
        "ledger_group_size_entries_bucket",
        "ledger_tree_size",
        "ledger_checkpoints_total",
        "ledger_checkpoint_size",
        "ledger_checkpoint_age_seconds",
        "ledger_sequencer_up",
        "ledger_sequencer_queue_depth",
        "ledger_rejections_total",
        "ledger_store_bytes",
        "ledger_witness_lag_entries",
        "ledger_witness_push_failures_total",
        "grpc_server_handled_total",
        "grpc_server_handling_seconds_bucket",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(s.contains_key(family), "family {family} missing from:\n{body}");
    }
    let append_call = [("grpc_service", "ledger.v1.Ledger"), ("grpc_method", "Append")];
    let with_code = |code: &'static str| {
        let mut l = append_call.to_vec();
        l.push(("grpc_code", code));
        value(&s, "grpc_server_handled_total", &l)
    };
    assert_eq!(with_code("OK"), 3.0);
    assert_eq!(with_code("PermissionDenied"), 1.0);
    // The latency histogram holds every Append call, accepted or refused.
    assert_eq!(value(&s, "grpc_server_handling_seconds_count", &append_call), 4.0);
    assert_eq!(
        value(&s, "ledger_rejections_total", &[("code", "PermissionDenied")]),
        1.0
    );
    assert_eq!(value(&s, "ledger_appends_total", &[]), 3.0);
    assert_eq!(value(&s, "ledger_group_size_entries_sum", &[]), 3.0);
    let groups = value(&s, "ledger_groups_total", &[]);
    assert!(groups >= 1.0, "{groups}");
    assert_eq!(value(&s, "ledger_flush_seconds_count", &[]), groups);
    assert_eq!(value(&s, "ledger_tree_size", &[]), 4.0);
    assert_eq!(value(&s, "ledger_sequencer_up", &[]), 1.0);
    assert_eq!(value(&s, "ledger_sequencer_queue_depth", &[]), 0.0);
    assert!(value(&s, "ledger_checkpoint_age_seconds", &[]) >= 0.0);
    assert!(value(&s, "ledger_store_bytes", &[]) > 0.0);
    assert!(value(&s, "process_resident_memory_bytes", &[]) > 1e6);
    assert!(value(&s, "process_open_fds", &[]) >= 3.0);
    assert!(value(&s, "process_start_time_seconds", &[]) > 1.5e9);
    // The checkpoint over all 4 entries was pushed and not cosigned: 4 entries behind, and every
    // push (at least the start-up one and this one) counted as a failure.
    assert_eq!(value(&s, "ledger_checkpoint_size", &[]), 4.0);
    assert!(value(&s, "ledger_checkpoints_total", &[]) >= 1.0);
    assert_eq!(value(&s, "ledger_witness_lag_entries", &down_label), 4.0, "{body}");
    assert!(
        value(&s, "ledger_witness_push_failures_total", &down_label) >= 2.0,
        "{body}"
    );

    // Attack: calls to made-up method names of a served service, each of which would become a
    // new series (memory without bound in the node and in Prometheus). They are all counted
    // under the one method label `unknown`.
    let ch = tonic::transport::Endpoint::from_shared(node.addr.clone())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    for i in 0..20 {
        let mut g = tonic::client::Grpc::new(ch.clone());
        g.ready().await.expect("ready");
        let path =
            tonic::codegen::http::uri::PathAndQuery::try_from(format!("/ledger.v1.Ledger/MadeUp{i}")).expect("path");
        let e = g
            .unary(tonic::Request::new(()), path, Empty)
            .await
            .expect_err("no such method");
        assert_eq!(e.code(), Code::Unimplemented, "{e:?}");
    }
    let (_, body) = scrape(port);
    assert!(
        !body.contains("MadeUp"),
        "a made-up method name became a label:\n{body}"
    );
    let s = samples(&body);
    let unknown = [
        ("grpc_service", "ledger.v1.Ledger"),
        ("grpc_method", "unknown"),
        ("grpc_code", "Unimplemented"),
    ];
    assert_eq!(value(&s, "grpc_server_handled_total", &unknown), 20.0);
    node.stop();
}

/// Every query of docs/monitoring/dashboard.json parses as PromQL: each becomes a recording rule
/// (Grafana's variables replaced by values) that `promtool check rules` checks.
fn check_dashboard(promtool: &Path) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/monitoring/dashboard.json");
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("dashboard.json")).expect("dashboard JSON");
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let mut n = 0;
    for p in d["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().expect("targets") {
            let e = t["expr"].as_str().expect("expr");
            let e = e.replace("$__rate_interval", "5m").replace("$instance", ".*");
            n += 1;
            rules.push_str(&format!(
                "      - record: dashboard:q{n}\n        expr: {}\n",
                serde_json::json!(e)
            ));
        }
    }
    assert!(n >= 10, "only {n} dashboard queries");
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("dashboard-rules.yml");
    std::fs::write(&f, rules).expect("write rules");
    let (ok, out) = run_promtool(promtool, &["check", "rules", f.to_str().expect("utf-8")], None);
    assert!(ok, "a dashboard query does not parse:\n{out}");
}

/// A codec for empty messages (calls whose answer is only a status).
struct Empty;

impl tonic::codec::Codec for Empty {
    type Encode = ();
    type Decode = ();
    type Encoder = Empty;
    type Decoder = Empty;
    fn encoder(&mut self) -> Empty {
        Empty
    }
    fn decoder(&mut self) -> Empty {
        Empty
    }
}

impl tonic::codec::Encoder for Empty {
    type Item = ();
    type Error = tonic::Status;
    fn encode(&mut self, _: (), _: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        Ok(())
    }
}

impl tonic::codec::Decoder for Empty {
    type Item = ();
    type Error = tonic::Status;
    fn decode(&mut self, _: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<()>, tonic::Status> {
        Ok(Some(()))
    }
}
