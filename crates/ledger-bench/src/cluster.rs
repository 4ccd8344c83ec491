//! `ledger-bench --cluster N`: one node against a cluster of N `ledger-node serve --cluster`
//! processes on this machine (loopback, plain HTTP/2 between peers), from the same run: appends/s
//! with AppendBatch and with concurrent single Appends, the latency (p50, p99) of single Appends at
//! a fixed offered load, and the catch-up rate of a node added from an empty directory (entries/s,
//! through log replication, and through a snapshot once the leader has purged its log). Prints the
//! load average before and after: the numbers are only comparable on an otherwise idle machine.

use super::{
    Node, ORIGIN, batches, bin, client, concurrent_appends, enroll_platform, fixed_load, row, start_node, stats,
};
use anyhow::{Context, Result, bail};
use ed25519_dalek::SigningKey;
use ledger_proto::pb;
use ledger_proto::raft_pb::StatusRequest;
use ledger_proto::raft_pb::admin_client::AdminClient;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Bound on every wait for the cluster.
const WAIT: Duration = Duration::from_secs(60);

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// A node process of the bench's cluster.
struct Member {
    id: u64,
    file: PathBuf,
    raft: String,
    api: String,
    child: Option<Child>,
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_ports(n: usize) -> Result<Vec<u16>> {
    let held = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    held.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

/// Writes node `id`'s cluster file; `snapshot` is openraft's snapshot policy (Raft log entries
/// since the last snapshot) and the number of entries kept in the log past it.
fn write_member(dir: &Path, id: u64, members: &[(u64, u16, u16)], snapshot: Option<(u64, u64)>) -> Result<Member> {
    let me = members.iter().find(|m| m.0 == id).context("member")?;
    let mut t = format!(
        "id = {id}\nlisten = \"127.0.0.1:{}\"\ndata = \"n{id}\"\ninsecure_loopback = true\n",
        me.1
    );
    if let Some((after, keep)) = snapshot {
        t.push_str(&format!("snapshot_after_logs = {after}\nsnapshot_keep_logs = {keep}\n"));
    }
    t.push_str("[peers]\n");
    for (p, r, _) in members {
        t.push_str(&format!("{p} = \"127.0.0.1:{r}\"\n"));
    }
    t.push_str("[api]\n");
    for (p, _, a) in members {
        t.push_str(&format!("{p} = \"127.0.0.1:{a}\"\n"));
    }
    let file = dir.join(format!("n{id}.toml"));
    std::fs::write(&file, t)?;
    Ok(Member {
        id,
        file,
        raft: format!("127.0.0.1:{}", me.1),
        api: format!("127.0.0.1:{}", me.2),
        child: None,
    })
}

/// Starts `m` (`serve --cluster`, with `--cluster-init` if asked); returns once it serves when
/// `wait`, else at once (a new node serves only once it holds the charter).
fn spawn(m: &mut Member, dir: &Path, init: bool) -> Result<std::sync::mpsc::Receiver<()>> {
    let mut cmd = Command::new(bin("ledger-node")?);
    cmd.current_dir(dir)
        .args(["serve", "--cluster"])
        .arg(&m.file)
        .args(["--listen", &m.api, "--metrics-listen", "off", "--tiles-listen", "off"])
        .args(["--queue-depth", "65536"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join(format!("n{}.log", m.id)))?);
    if init {
        cmd.arg("--cluster-init");
    }
    let mut child = cmd.spawn()?;
    let out = child.stdout.take().context("stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines() {
            if l.is_ok_and(|l| l.starts_with("listening on ")) {
                let _ = tx.send(());
            }
        }
    });
    m.child = Some(child);
    Ok(rx)
}

async fn admin(raft: &str) -> Result<AdminClient<tonic::transport::Channel>> {
    Ok(AdminClient::connect(format!("http://{raft}")).await?)
}

/// The leader's Raft and API addresses and id (bounded wait).
async fn leader(members: &[Member]) -> Result<(String, String, u64)> {
    let t = Instant::now();
    while t.elapsed() < WAIT {
        for m in members.iter().filter(|m| m.child.is_some()) {
            if let Ok(mut a) = admin(&m.raft).await
                && let Ok(s) = a.status(StatusRequest {}).await
            {
                let s = s.into_inner();
                if s.state == "Leader" {
                    return Ok((m.raft.clone(), m.api.clone(), m.id));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("no leader within {WAIT:?}")
}

/// The applied ledger size of the node whose Raft port is `raft` (0 while unreachable).
async fn applied(raft: &str) -> u64 {
    match admin(raft).await {
        Ok(mut a) => a
            .status(StatusRequest {})
            .await
            .map_or(0, |s| s.into_inner().applied_size),
        Err(_) => 0,
    }
}

/// The cluster: `n` members started, the leader's (raft, api) address.
async fn start_cluster(
    dir: &Path,
    n: u64,
    spare: u64,
    snapshot: Option<(u64, u64)>,
) -> Result<(Vec<Member>, SigningKey)> {
    let ports = free_ports(2 * (n + spare) as usize)?;
    let all: Vec<(u64, u16, u16)> = (0..(n + spare) as usize)
        .map(|i| (i as u64 + 1, ports[2 * i], ports[2 * i + 1]))
        .collect();
    let st = Command::new(bin("ledger-node")?)
        .args(["init", "--origin", ORIGIN, "--data"])
        .arg(dir.join("n1"))
        .stdout(Stdio::null())
        .status()?;
    if !st.success() {
        bail!("init failed");
    }
    let admin_key = ledger_client::keyfile::read_signing_key(dir.join("n1/keys/admin.key"))?;
    let mut members = Vec::new();
    for id in 1..=n + spare {
        if id > 1 {
            std::fs::create_dir_all(dir.join(format!("n{id}/keys")))?;
            std::fs::copy(dir.join("n1/keys/node.key"), dir.join(format!("n{id}/keys/node.key")))?;
        }
        let peers = if id <= n { &all[..n as usize] } else { &all[..] };
        members.push(write_member(dir, id, peers, snapshot)?);
    }
    let mut waits = Vec::new();
    for m in members.iter_mut().take(n as usize) {
        let init = m.id == 1;
        waits.push(spawn(m, dir, init)?);
    }
    for (w, m) in waits.iter().zip(&members) {
        w.recv_timeout(WAIT)
            .map_err(|_| anyhow::anyhow!("node {} did not serve within {WAIT:?}", m.id))?;
    }
    Ok((members, admin_key))
}

/// Catch-up of member `new` (not yet started, empty directory but its node key): started,
/// added as a learner through node 1's config, timed until it has applied the leader's size.
/// Returns (entries, seconds, whether the leader held a snapshot when the node was added, whether
/// the new node holds one right after catching up).
async fn catch_up(dir: &Path, members: &mut [Member], new: usize) -> Result<(u64, f64, bool, bool)> {
    let (leader_raft, _, lid) = leader(members).await?;
    let snapshot = |id: u64| dir.join(format!("n{id}/raft/snapshot.meta")).exists();
    let leader_snapshot = snapshot(lid);
    let size = applied(&leader_raft).await;
    let _serving = spawn(&mut members[new], dir, false)?;
    let t = Instant::now();
    let out = Command::new(bin("ledger-node")?)
        .args(["cluster", "add", "--learner", "--config"])
        .arg(&members[0].file)
        .args(["--id", &members[new].id.to_string(), "--raft", &members[new].raft])
        .args(["--api", &members[new].api])
        .output()?;
    if !out.status.success() {
        bail!("cluster add: {}", String::from_utf8_lossy(&out.stderr));
    }
    while applied(&members[new].raft).await < size {
        if t.elapsed() > WAIT {
            let id = members[new].id;
            let log = std::fs::read_to_string(dir.join(format!("n{id}.log"))).unwrap_or_default();
            // The first warnings and errors say why; the last lines what it does now.
            let first = log
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .take(12);
            let tail: Vec<&str> = first.chain(log.lines().rev().take(3)).collect();
            bail!(
                "node {id} did not catch up to {size} within {WAIT:?} (applied {}); its log (first warnings, then the last lines):\n{}",
                applied(&members[new].raft).await,
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = t.elapsed().as_secs_f64();
    Ok((size, secs, leader_snapshot, snapshot(members[new].id)))
}

/// `ledger-node cluster remove --config FILE --id ID`.
fn remove(file: &Path, id: u64) -> Result<()> {
    let out = Command::new(bin("ledger-node")?)
        .args(["cluster", "remove", "--config"])
        .arg(file)
        .args(["--id", &id.to_string()])
        .output()?;
    if !out.status.success() {
        bail!("cluster remove --id {id}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Appends until the log holds `n` more entries (AppendBatch of 100).
async fn fill(addr: &str, key: &SigningKey, n: u64) -> Result<()> {
    let rounds = n.div_ceil(100) as usize;
    batches(addr, key, 1, 100, rounds).await?;
    Ok(())
}

/// The measurements on one target (a single node, or a cluster's leader).
async fn measure(label: &str, addr: &str, key: &SigningKey, quick: bool, runs: usize) -> Result<()> {
    let (rounds, per, rate, secs) = if quick { (2, 5, 20, 1) } else { (5, 20, 100, 3) };
    let mut v = Vec::new();
    for _ in 0..runs {
        v.push(batches(addr, key, 4, 100, rounds).await?);
    }
    row(
        &format!("{label}: AppendBatch, 4 clients x 100"),
        &stats(v),
        "appends/s",
        "",
    );
    for clients in [16usize, 64] {
        let mut v = Vec::new();
        for _ in 0..runs {
            v.push(concurrent_appends(addr, key, clients, per).await?.0);
        }
        row(
            &format!("{label}: Append, {clients} clients"),
            &stats(v),
            "appends/s",
            "",
        );
    }
    let (mut p50, mut p99) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let (a, b, _) = fixed_load(addr, key, rate, secs).await?;
        p50.push(a);
        p99.push(b);
    }
    row(
        &format!("{label}: Append p50 at {rate}/s offered"),
        &stats(p50),
        "ms",
        "",
    );
    row(
        &format!("{label}: Append p99 at {rate}/s offered"),
        &stats(p99),
        "ms",
        "",
    );
    Ok(())
}

fn catch_up_row(name: &str, (entries, secs, leader_snap, new_snap): (u64, f64, bool, bool)) {
    let yn = |b: bool| if b { "yes" } else { "no" };
    println!(
        "{name:<52} {:>12.0} entries/s ({entries} entries in {secs:.2} s; snapshot on the leader: {}, on the new node: {})",
        entries as f64 / secs,
        yn(leader_snap),
        yn(new_snap)
    );
}

/// `ledger-bench --cluster N`.
pub async fn run(n: u64, quick: bool, runs: usize, work_dir: &Path) -> Result<()> {
    if n == 0 {
        bail!("--cluster needs at least one node");
    }
    println!("ledger-bench --cluster {n}: median of {runs} runs [min – max]");
    println!("load average at start: {}\n", loadavg());

    println!("== one node (serve, no cluster)");
    {
        let (node, admin_key): (Node, SigningKey) = start_node()?;
        let key = enroll_platform(&node.addr, &admin_key).await?;
        measure("single", &node.addr, &key, quick, runs).await?;
    }

    println!("\n== {n} nodes (serve --cluster, appends to the leader)");
    let dir = tempfile::Builder::new()
        .prefix("ledger-bench-cluster-")
        .tempdir_in(work_dir)?;
    // Two spare members: one caught up through log replication, one through a snapshot.
    let snap_after = if quick { 50 } else { 300 };
    let (mut members, admin_key) = start_cluster(dir.path(), n, 2, Some((snap_after, 10))).await?;
    let (_, api, _) = leader(&members).await?;
    let addr = format!("http://{api}");
    // Right after the start an election may still move the lead (a loaded machine): retry.
    let t = Instant::now();
    let key = loop {
        match enroll_platform(&addr, &admin_key).await {
            Ok(k) => break k,
            Err(e) if t.elapsed() < WAIT => {
                eprintln!("enrolling the bench's platform key: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    };
    // The first catch-up before the log reaches the snapshot threshold: log replication only.
    let fill_n = std::env::var("LEDGER_BENCH_CLUSTER_FILL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 200 } else { 1_000 });
    fill(&addr, &key, fill_n).await?;
    let c = catch_up(dir.path(), &mut members, n as usize).await?;
    catch_up_row("catch-up of a new node, log replication", c);
    // Measure the N voters alone: the caught-up learner leaves again.
    remove(&members[0].file, members[n as usize].id)?;
    if let Some(mut ch) = members[n as usize].child.take() {
        let _ = ch.kill();
        let _ = ch.wait();
    }
    measure(&format!("cluster {n}"), &addr, &key, quick, runs).await?;
    // By now the log passed the snapshot threshold many times and was purged: a new node gets
    // the snapshot, then the entries after it.
    let snap = catch_up(dir.path(), &mut members, n as usize + 1).await;
    match &snap {
        Ok(c) => catch_up_row("catch-up of a new node, snapshot + log", *c),
        Err(_) => println!(
            "{:<52} {:>12} (see below)",
            "catch-up of a new node, snapshot + log", "FAILED"
        ),
    }
    let mut c = client(&addr).await?;
    let size = c
        .get_checkpoint(pb::GetCheckpointRequest { size: None })
        .await?
        .into_inner()
        .size;
    println!("\nlog size at the end: {size} entries (checkpointed)");
    println!("load average at end: {}", loadavg());
    drop(members);
    if let Err(e) = snap {
        let kept = dir.keep();
        bail!("{e}\n(the cluster's directory and logs are kept in {})", kept.display());
    }
    Ok(())
}
