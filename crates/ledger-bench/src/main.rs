//! `ledger-bench`: drives a real `ledger-node` (started here on loopback, on a temporary data
//! directory) and prints each figure beside the machine's raw limits measured in the same run.
//!
//! Run: `cargo build --release --workspace --bins && target/release/ledger-bench` (`--quick` for a
//! short smoke run). Figures are medians of several runs with min and max. Sections: raw limits;
//! durable appends through gRPC; verifier replay (rate, peak RSS); server-side proofs at 1M and
//! 10M entries; store size per entry; the PostgreSQL baseline (docs/performance.md).

mod cluster;
mod startup;
mod suite;

use anyhow::{Context, Result, bail};
use clap::Parser;
use ed25519_dalek::{Signer, SigningKey};
use ledger_core::dsse::Envelope;
use ledger_core::registry::payload_type_for_log;
use ledger_proto::pb;
use ledger_proto::pb::ledger_client::LedgerClient;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

#[derive(Parser)]
struct Args {
    /// Short smoke run (seconds, not minutes).
    #[arg(long)]
    quick: bool,
    /// Runs per figure.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Entries of the signed log replayed by the verifier (default 1,000,000; 20,000 with --quick).
    #[arg(long)]
    replay_entries: Option<u64>,
    /// Tree sizes for the proof figures, comma-separated (default 1000000,10000000; with --quick
    /// 20000,100000). The signed replay log serves the size it matches; others are built unsigned.
    #[arg(long, value_delimiter = ',')]
    proof_sizes: Vec<u64>,
    /// Seconds per PostgreSQL run (default 10; 3 with --quick).
    #[arg(long)]
    pg_secs: Option<u64>,
    /// Skip the PostgreSQL baseline.
    #[arg(long)]
    skip_postgres: bool,
    /// Skip the gRPC node section.
    #[arg(long)]
    skip_node: bool,
    /// Instead of the suite: append this many micro-evaluations with AppendBatch to a fresh node
    /// and print the node's resident memory every 10% (a soak test of the store's memory).
    #[arg(long, value_name = "N")]
    soak: Option<u64>,
    /// Instead of the suite: build a node data directory of N entries (micro-evaluations) and
    /// measure the node's start-up on it (store verification, state fold, time to listen).
    #[arg(long, value_name = "N")]
    startup: Option<u64>,
    /// Instead of the suite: one node against a cluster of N `serve --cluster` nodes on this
    /// machine (appends/s, p99, catch-up rate of a new node; docs/performance.md "Cluster").
    #[arg(long, value_name = "N")]
    cluster: Option<u64>,
    /// Only the Append phases of the node section (64 clients × single Append, then AppendBatch),
    /// each run with the node's and this process's CPU time per append. `LEDGER_BENCH_NODE=PATH`
    /// runs another `ledger-node` binary (e.g. a "before" build) against the same load generator.
    #[arg(long)]
    appends_only: bool,
    /// Where to build the logs (on the data disk being measured).
    #[arg(long, default_value = ".")]
    work_dir: PathBuf,
}

pub(crate) struct Stats {
    med: f64,
    min: f64,
    max: f64,
}

pub(crate) fn stats(mut v: Vec<f64>) -> Stats {
    v.sort_by(|a, b| a.total_cmp(b));
    Stats {
        med: v[v.len() / 2],
        min: v[0],
        max: v[v.len() - 1],
    }
}

pub(crate) fn row(name: &str, s: &Stats, unit: &str, note: &str) {
    println!(
        "{name:<52} {:>12.0} {unit:<9} [{:.0} – {:.0}] {note}",
        s.med, s.min, s.max
    );
}

pub(crate) fn bin(name: &str) -> Result<PathBuf> {
    // Another build's node (a "before" binary) against this load generator.
    if name == "ledger-node"
        && let Some(p) = std::env::var_os("LEDGER_BENCH_NODE")
    {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let p = exe.parent().context("exe dir")?.join(name);
    if !p.exists() {
        bail!(
            "{} not found: run `cargo build --release --workspace --bins` first",
            p.display()
        );
    }
    Ok(p)
}

struct Node {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Origin of the bench's node: its records are bound to it (docs/format.md).
const ORIGIN: &str = "bench.ledger/test";

/// Now, in microseconds since the epoch (0 if the clock is before 1970).
fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn start_node() -> Result<(Node, SigningKey)> {
    let dir = tempfile::Builder::new().prefix("ledger-bench-").tempdir_in(".")?;
    let data = dir.path().join("d");
    let st = Command::new(bin("ledger-node")?)
        .args(["init", "--origin", ORIGIN])
        .arg("--data")
        .arg(&data)
        .stdout(Stdio::null())
        .status()?;
    if !st.success() {
        bail!("init failed");
    }
    let admin = ledger_client::keyfile::read_signing_key(data.join("keys/admin.key"))?;
    let mut child = Command::new(bin("ledger-node")?)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "off",
            "--queue-depth",
            "65536",
        ])
        .arg("--data")
        .arg(&data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()?;
    let out = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(out).lines();
    let addr = loop {
        match lines.next() {
            Some(l) => {
                if let Some(a) = l?.strip_prefix("listening on ") {
                    break format!("http://{a}");
                }
            }
            None => bail!("node exited"),
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Ok((Node { child, addr, _dir: dir }, admin))
}

async fn client(addr: &str) -> Result<LedgerClient<Channel>> {
    Ok(LedgerClient::connect(addr.to_string())
        .await?
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20))
}

fn micro_eval(key: &SigningKey, i: u64) -> Envelope {
    // One citizen rating per service ticket (docs/records.md), about 230 bytes of JSON; the service
    // lies in the hour before now (the node refuses services in the future or over 400 days old).
    let service = now_micros().saturating_sub(3_600_000_000);
    let payload = serde_json::json!({
        "version": 1, "ticket_hash": format!("{:032x}{:032x}", rand::random::<u128>(), i),
        "subject": format!("cadre-{}", i % 50), "department": format!("dept-{}", i % 12),
        "rating": 1 + i % 5, "service_time_micros": service + i % 1_000_000_000
    });
    let mut env = Envelope::new(
        payload_type_for_log("evaluation.micro", ORIGIN),
        serde_json::to_vec(&payload).unwrap_or_default(),
    );
    env.sign(key);
    env
}

fn req(env: &Envelope) -> pb::AppendRequest {
    pb::AppendRequest {
        envelope: Some(env.into()),
        request_id: String::new(),
        wait_for_checkpoint: false,
    }
}

async fn enroll_platform(addr: &str, admin: &SigningKey) -> Result<SigningKey> {
    let key = SigningKey::generate(&mut rand::rng());
    let payload = serde_json::json!({"version": 1, "name": "bench platform",
        "key": ledger_core::keys::public_key_to_base64(&key.verifying_key()), "roles": ["service-platform"]});
    let mut env = Envelope::new(
        payload_type_for_log("key.enroll", ORIGIN),
        serde_json::to_vec(&payload)?,
    );
    env.sign(admin);
    client(addr).await?.append(req(&env)).await?;
    Ok(key)
}

/// Concurrent single Appends: returns appends/s and the load generator's CPU seconds while the
/// clock ran (signing and connecting come before it).
async fn concurrent_appends(addr: &str, key: &SigningKey, clients: usize, per: u64) -> Result<(f64, f64)> {
    let envs: Vec<Vec<Envelope>> = (0..clients as u64)
        .map(|c| {
            (0..per)
                .map(|i| micro_eval(key, c * 10_000_000 + i + rand::random::<u32>() as u64))
                .collect()
        })
        .collect();
    // The clients connect and the requests are built before the clock starts: what is timed is
    // 64 concurrent clients, each sending one unary Append per envelope and waiting for its answer.
    let mut work = Vec::with_capacity(clients);
    for batch in envs {
        let reqs: Vec<pb::AppendRequest> = batch.iter().map(req).collect();
        work.push((client(addr).await?, reqs));
    }
    let (t, cpu) = (Instant::now(), cpu_secs("self").unwrap_or(0.0));
    let mut tasks = Vec::new();
    for (mut c, reqs) in work {
        tasks.push(tokio::spawn(async move {
            for r in reqs {
                c.append(r).await?;
            }
            Ok::<(), tonic::Status>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = t.elapsed().as_secs_f64();
    Ok((
        (clients as u64 * per) as f64 / secs,
        cpu_secs("self").unwrap_or(0.0) - cpu,
    ))
}

/// AppendBatch from several clients: returns appends/s.
async fn batches(addr: &str, key: &SigningKey, clients: usize, batch: usize, rounds: usize) -> Result<f64> {
    let mut work = Vec::new();
    for c in 0..clients {
        let b: Vec<pb::AppendBatchRequest> = (0..rounds)
            .map(|r| pb::AppendBatchRequest {
                items: (0..batch)
                    .map(|i| {
                        req(&micro_eval(
                            key,
                            rand::random::<u64>() ^ (c * 1_000_000 + r * 10_000 + i) as u64,
                        ))
                    })
                    .collect(),
                wait_for_checkpoint: false,
            })
            .collect();
        work.push(b);
    }
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in work {
        let mut c = client(addr).await?;
        tasks.push(tokio::spawn(async move {
            for b in w {
                let r = c.append_batch(b).await?.into_inner();
                if r.results.iter().any(|x| x.ok.is_none()) {
                    return Err(tonic::Status::internal("item refused"));
                }
            }
            Ok::<(), tonic::Status>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((clients * batch * rounds) as f64 / t.elapsed().as_secs_f64())
}

/// Fixed offered load: returns (p50 ms, p99 ms, achieved/s).
async fn fixed_load(addr: &str, key: &SigningKey, rate: u64, secs: u64) -> Result<(f64, f64, f64)> {
    let n = rate * secs;
    let envs: Vec<Envelope> = (0..n).map(|i| micro_eval(key, i ^ rand::random::<u64>())).collect();
    let conns: Vec<LedgerClient<Channel>> = {
        let mut v = Vec::new();
        for _ in 0..8 {
            v.push(client(addr).await?);
        }
        v
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    for (i, e) in envs.into_iter().enumerate() {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let mut c = conns[i % conns.len()].clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            let ok = c.append(req(&e)).await.is_ok();
            let _ = tx.send((ok, t.elapsed().as_secs_f64() * 1e3));
        });
    }
    drop(tx);
    let mut lat = Vec::new();
    while let Some((ok, ms)) = rx.recv().await {
        if ok {
            lat.push(ms);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.total_cmp(b));
    if lat.is_empty() {
        bail!("no append succeeded");
    }
    let p = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize];
    Ok((p(0.5), p(0.99), lat.len() as f64 / elapsed))
}

/// Time from append until a checkpoint covering it is published.
async fn append_to_checkpoint(addr: &str, key: &SigningKey) -> Result<f64> {
    let mut c = client(addr).await?;
    let mut w = c.watch_checkpoints(pb::WatchCheckpointsRequest {}).await?.into_inner();
    let _ = w.message().await?;
    let t = Instant::now();
    let r = c.append(req(&micro_eval(key, rand::random()))).await?.into_inner();
    loop {
        let Some(cp) = w.message().await? else {
            bail!("watch ended")
        };
        if cp.size > r.index {
            return Ok(t.elapsed().as_secs_f64() * 1e3);
        }
    }
}

fn raw_limits(runs: usize) {
    let key = SigningKey::generate(&mut rand::rng());
    let msg = [7u8; 300];
    let sign = stats(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..5000 {
                    std::hint::black_box(key.sign(&msg));
                }
                5000.0 / t.elapsed().as_secs_f64()
            })
            .collect(),
    );
    row("raw Ed25519 sign (1 core)", &sign, "ops/s", "");
    let sig = key.sign(&msg);
    let vk = key.verifying_key();
    let verify = stats(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..5000 {
                    let _ = std::hint::black_box(vk.verify_strict(&msg, &sig));
                }
                5000.0 / t.elapsed().as_secs_f64()
            })
            .collect(),
    );
    row("raw Ed25519 verify (1 core)", &verify, "ops/s", "");
    let msgs: Vec<Vec<u8>> = (0..256u32).map(|i| i.to_le_bytes().repeat(75)).collect();
    let sigs: Vec<_> = msgs.iter().map(|m| key.sign(m)).collect();
    let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
    let vks = vec![vk; 256];
    let batch = stats(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..20 {
                    let _ = std::hint::black_box(ed25519_dalek::verify_batch(&refs, &sigs, &vks));
                }
                20.0 * 256.0 / t.elapsed().as_secs_f64()
            })
            .collect(),
    );
    row("raw Ed25519 batch verify, 256/batch (1 core)", &batch, "sigs/s", "");
    let buf = vec![1u8; 32 << 20];
    let sha = stats(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(<sha2::Sha256 as sha2::Digest>::digest(&buf));
                buf.len() as f64 / t.elapsed().as_secs_f64() / 1e6
            })
            .collect(),
    );
    row("raw SHA-256", &sha, "MB/s", "");
    let a = ledger_core::hash::Hash::digest(b"x");
    let nodes = stats(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                let mut h = a;
                for _ in 0..500_000 {
                    h = ledger_core::hash::node_hash(&a, &h);
                }
                std::hint::black_box(h);
                500_000.0 / t.elapsed().as_secs_f64()
            })
            .collect(),
    );
    row("RFC 9162 node hashes", &nodes, "hashes/s", "");
    let fsync = stats(
        (0..runs)
            .map(|_| {
                let path = std::env::current_dir().unwrap_or_default().join(".ledger-bench-fsync");
                let Ok(mut f) = std::fs::File::create(&path) else {
                    return 0.0;
                };
                let t = Instant::now();
                for _ in 0..200 {
                    let _ = f.write_all(&[0u8; 512]);
                    let _ = f.sync_data();
                }
                let _ = std::fs::remove_file(&path);
                t.elapsed().as_secs_f64() / 200.0 * 1e6
            })
            .collect(),
    );
    row("write 512 B + fdatasync latency (data disk)", &fsync, "µs", "");
}

#[tokio::main]
async fn main() -> Result<()> {
    // Internal: one chunk of a large proof-only log, built in a fresh process (see suite.rs).
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--internal-extend") {
        let (Some(dir), Some(to)) = (argv.get(2), argv.get(4).and_then(|t| t.parse().ok())) else {
            bail!("usage: --internal-extend DATA --to N");
        };
        return suite::extend_unsigned(std::path::Path::new(dir), to);
    }
    let a = Args::parse();
    if let Some(n) = a.soak {
        return soak(n).await;
    }
    if let Some(n) = a.cluster {
        return cluster::run(n, a.quick, a.runs.max(1), &a.work_dir).await;
    }
    if let Some(n) = a.startup {
        return startup::run(&a.work_dir, n, a.runs.max(1));
    }
    let runs = a.runs.max(1);
    if a.appends_only {
        return appends_only(a.quick, runs).await;
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    println!("ledger-bench: {cores} cores, {cpu}; median of {runs} runs [min – max]\n");
    println!("== raw limits");
    raw_limits(runs);

    let mut append_rate = None;
    if !a.skip_node {
        append_rate = Some(node_section(&a, runs).await?);
    }

    println!("\n== verifier replay, store size, server-side proofs");
    let replay_n = a.replay_entries.unwrap_or(if a.quick { 20_000 } else { 1_000_000 });
    let proof_sizes = if a.proof_sizes.is_empty() {
        if a.quick {
            vec![20_000, 100_000]
        } else {
            vec![1_000_000, 10_000_000]
        }
    } else {
        a.proof_sizes.clone()
    };
    let work = tempfile::Builder::new()
        .prefix("ledger-bench-logs-")
        .tempdir_in(&a.work_dir)?;
    let t = Instant::now();
    let log = suite::build_log(&work.path().join("signed"), replay_n, true)?;
    println!(
        "(built a signed log of {replay_n} entries in {:.1} s)",
        t.elapsed().as_secs_f64()
    );
    suite::replay(&log, runs)?;
    suite::store_size(&log)?;
    for &n in &proof_sizes {
        if n == replay_n {
            suite::proofs(&log.data, n, runs)?;
        } else {
            // `LEDGER_BENCH_PROOF_DATA=DIR` keeps the unsigned log in DIR/unsigned-N and reuses it
            // when it is there already, so the proofs can be measured again (say on an idle
            // machine) without the build (about 11 minutes at 10M entries on 2 cores).
            let kept = std::env::var_os("LEDGER_BENCH_PROOF_DATA").map(PathBuf::from);
            let dir = kept.as_deref().unwrap_or(work.path()).join(format!("unsigned-{n}"));
            let data = dir.join("data");
            if kept.is_some() && data.exists() {
                println!("(reusing the unsigned log of {n} entries in {})", dir.display());
                suite::proofs(&data, n, runs)?;
                continue;
            }
            let t = Instant::now();
            let l = suite::build_log(&dir, n, false)?;
            println!(
                "(built an unsigned log of {n} entries in {:.1} s)",
                t.elapsed().as_secs_f64()
            );
            suite::proofs(&l.data, n, runs)?;
            suite::store_size(&l)?;
            drop(l);
            if kept.is_none() {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }
    drop(work);

    if !a.skip_postgres {
        println!("\n== baseline: PostgreSQL, same hash-chained appends, 64 clients, synchronous_commit = on");
        let secs = a.pg_secs.unwrap_or(if a.quick { 3 } else { 10 });
        if let Some(rates) = suite::postgres(64, secs, runs)? {
            let s = stats(rates);
            row(
                "PostgreSQL hash-chained INSERT, 64 clients (pgbench)",
                &s,
                "appends/s",
                "no signature verification",
            );
            if let Some(ours) = append_rate {
                println!(
                    "{:<52} {:>12.2} ×        (ledger Append, 64 clients, medians of this run; the ledger also verifies \
                     every Ed25519 signature)",
                    "ratio ledger / PostgreSQL",
                    ours / s.med
                );
            }
        }
    }
    Ok(())
}

/// Context switches (voluntary and involuntary) of the threads process `pid` has now, from /proc.
fn context_switches(pid: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .flat_map(|s| {
            s.lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

/// CPU time (user + system) of process `pid` (`self` for this one), from /proc.
fn cpu_secs(pid: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces) end with ')'.
    let rest = s.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// `--appends-only`: the Append phases alone, with CPU per append of the node and of this load
/// generator.
async fn appends_only(quick: bool, runs: usize) -> Result<()> {
    let (node, admin) = start_node()?;
    let pid = node.child.id().to_string();
    let key = enroll_platform(&node.addr, &admin).await?;
    let (per, rounds) = if quick { (200, 4) } else { (2000, 40) };
    let (mut rate, mut node_us, mut gen_us, mut switches) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut gen_timed_us = Vec::new();
    for _ in 0..runs {
        let (n0, g0, s0) = (
            cpu_secs(&pid).unwrap_or(0.0),
            cpu_secs("self").unwrap_or(0.0),
            context_switches(&pid),
        );
        let (r, timed) = concurrent_appends(&node.addr, &key, 64, per).await?;
        rate.push(r);
        let (n1, g1, s1) = (
            cpu_secs(&pid).unwrap_or(0.0),
            cpu_secs("self").unwrap_or(0.0),
            context_switches(&pid),
        );
        // The generator's first figure includes signing the envelopes before the clock starts.
        node_us.push((n1 - n0) * 1e6 / (64 * per) as f64);
        gen_us.push((g1 - g0) * 1e6 / (64 * per) as f64);
        gen_timed_us.push(timed * 1e6 / (64 * per) as f64);
        switches.push(s1.saturating_sub(s0) as f64 * 100.0 / (64 * per) as f64);
    }
    row(
        "Append, 64 concurrent clients",
        &stats(rate),
        "appends/s",
        "target ≥ 12,000/s",
    );
    row("  node CPU per Append", &stats(node_us), "µs", "user + system, /proc");
    row(
        "  load generator CPU per Append",
        &stats(gen_us),
        "µs",
        "includes signing the envelopes",
    );
    row(
        "  load generator CPU per Append, clock running",
        &stats(gen_timed_us),
        "µs",
        "connecting and signing come before the clock",
    );
    row(
        "  node context switches per 100 Appends",
        &stats(switches),
        "",
        "all threads, /proc (threads that ended are not counted)",
    );
    append_batch_row(&node.addr, &key, rounds, runs).await?;
    drop(node);
    Ok(())
}

/// The row "AppendBatch, 4 clients × 500 per batch" (`rounds` batches a client, `runs` runs), of
/// the node section and of `--appends-only`.
async fn append_batch_row(addr: &str, key: &SigningKey, rounds: usize, runs: usize) -> Result<()> {
    let mut v = Vec::new();
    for _ in 0..runs {
        v.push(batches(addr, key, 4, 500, rounds).await?);
    }
    row(
        "AppendBatch, 4 clients × 500 per batch",
        &stats(v),
        "appends/s",
        "target ≥ 20,000/s",
    );
    Ok(())
}

/// Section 2: durable appends through gRPC. Returns the median Append rate (64 clients).
async fn node_section(a: &Args, runs: usize) -> Result<f64> {
    println!("\n== durable signed appends through gRPC (node on loopback, group commit)");

    let (node, admin) = start_node()?;
    let key = enroll_platform(&node.addr, &admin).await?;
    let (per, rounds, secs) = if a.quick { (200, 4, 1) } else { (2000, 40, 5) };
    let mut v = Vec::new();
    for _ in 0..runs {
        v.push(concurrent_appends(&node.addr, &key, 64, per).await?.0);
    }
    let append = stats(v);
    row(
        "Append, 64 concurrent clients",
        &append,
        "appends/s",
        "target ≥ 20,000/s",
    );
    append_batch_row(&node.addr, &key, rounds, runs).await?;
    let (mut p50, mut p99, mut got) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let (a, b, c) = fixed_load(&node.addr, &key, 5000, secs).await?;
        p50.push(a);
        p99.push(b);
        got.push(c);
    }
    let s50 = stats(p50);
    let s99 = stats(p99);
    println!(
        "{:<52} p50 {:.2} ms [{:.2} – {:.2}], p99 {:.2} ms [{:.2} – {:.2}], achieved {:.0}/s   target p99 ≤ 20 ms",
        "Append latency at 5,000/s offered",
        s50.med,
        s50.min,
        s50.max,
        s99.med,
        s99.min,
        s99.max,
        stats(got).med
    );
    let mut v = Vec::new();
    for _ in 0..runs {
        v.push(append_to_checkpoint(&node.addr, &key).await?);
    }
    let s = stats(v);
    println!(
        "{:<52} {:>12.1} ms        [{:.1} – {:.1}] (checkpoint interval 500 ms)",
        "append → covering checkpoint", s.med, s.min, s.max
    );
    Ok(append.med)
}

/// Resident and peak memory of a process, MiB (from /proc).
fn rss_mib(pid: u32) -> (f64, f64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let get = |k: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (get("VmRSS:"), get("VmHWM:"))
}

/// `--soak N`: N micro-evaluations through AppendBatch (4 clients × 500), node RSS every 10%.
async fn soak(n: u64) -> Result<()> {
    let (node, admin) = start_node()?;
    let key = enroll_platform(&node.addr, &admin).await?;
    let pid = node.child.id();
    println!("soak: {n} appends through AppendBatch; node pid {pid}");
    println!(
        "{:>10} {:>10} {:>12} {:>12}",
        "appended", "rate/s", "RSS MiB", "peak MiB"
    );
    let step = (n / 10).max(2000);
    let mut done = 0;
    while done < n {
        let rounds = (step / 2000).max(1) as usize;
        let rate = batches(&node.addr, &key, 4, 500, rounds).await?;
        done += (rounds * 2000) as u64;
        let (rss, hwm) = rss_mib(pid);
        println!("{done:>10} {rate:>10.0} {rss:>12.0} {hwm:>12.0}");
    }
    Ok(())
}
