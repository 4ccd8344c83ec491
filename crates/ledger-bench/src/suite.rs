//! The parts of the suite that need no running node: logs built straight into the store, verifier
//! replay (rate and peak RSS), server-side proof latency and sizes, store size per entry, and the
//! PostgreSQL baseline.

use crate::{Stats, bin, row, stats};
use anyhow::{Context, Result, bail};
use ed25519_dalek::SigningKey;
use ledger_core::compact::CompactTree;
use ledger_core::dsse::Envelope;
use ledger_core::entry::Entry;
use ledger_core::hash::leaf_hash;
use ledger_core::keys::public_key_to_base64;
use ledger_core::merkle;
use ledger_core::registry::{Charter, KeyEnroll, NamedKey, Policy, Role, Scope, payload_type};
use ledger_store::{PreparedEntry, Store};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Origin of the logs built here.
pub const ORIGIN: &str = "bench.ledger/suite";

/// A log written into a store directory and an export file.
pub struct BuiltLog {
    /// Store directory.
    pub data: PathBuf,
    /// Export file (only for signed logs).
    pub export: Option<PathBuf>,
    /// Entries.
    pub entries: u64,
    /// Sum of payload bytes.
    pub payload_bytes: u64,
    /// Sum of canonical leaf bytes.
    pub leaf_bytes: u64,
}

/// Entries built by one process at a time for large proof-only logs.
const CHUNK: u64 = 1_000_000;

/// Signs a checkpoint of `tree` for `origin` with the node key and stores it.
///
/// # Errors
/// On signing or storage failure.
pub fn put_signed_checkpoint(store: &Store, tree: &CompactTree, origin: &str, node: SigningKey) -> Result<()> {
    let signer = ledger_core::note::NoteSigner::new(origin, node)?;
    let cp = ledger_core::checkpoint::Checkpoint {
        origin: origin.into(),
        size: tree.size(),
        root: tree.root(),
        extensions: vec![],
    }
    .sign(&signer)?
    .to_text();
    store.put_checkpoint(tree.size(), &cp)?;
    Ok(())
}

/// Appends unsigned entries to the store at `data` until it holds `to` entries (one chunk of a
/// large proof-only log, run in its own process). Prints "payload_bytes leaf_bytes".
///
/// # Errors
/// On storage failure.
pub fn extend_unsigned(data: &Path, to: u64) -> Result<()> {
    let store = Store::open(data)?;
    let mut tree = store.compact_tree()?;
    let (p, l) = append_range(&store, &mut tree, to, &[], &[])?;
    store.flush()?;
    println!("{p} {l}");
    Ok(())
}

/// Appends entries from the tree's size up to `n`: the `head` envelopes first (charter and
/// enrollments), then notes, signed round-robin by `signers` when there are any. Returns (payload
/// bytes, leaf bytes) appended.
fn append_range(
    store: &Store,
    tree: &mut CompactTree,
    n: u64,
    head: &[Envelope],
    signers: &[SigningKey],
) -> Result<(u64, u64)> {
    let t0 = 1_767_225_600_000_000u64;
    append_entries(store, tree, n, t0, |i| {
        let env = if (i as usize) < head.len() {
            head[i as usize].clone()
        } else {
            let mut env = Envelope::new(payload_type("note"), payload(i));
            if !signers.is_empty() {
                env.sign(&signers[(i % signers.len() as u64) as usize]);
            }
            env
        };
        Ok((env, vec![(ledger_store::IndexTag::Kind, "note".to_string())]))
    })
}

/// Index terms of an entry, as the store keeps them.
pub type Terms = Vec<(ledger_store::IndexTag, String)>;

/// Appends entries from the tree's size up to `n` straight into the store, in groups of 10,000:
/// entry `i` is the envelope `make(i)` returns, with its index terms, stamped `t0 + i` and linked
/// to the root before it. Returns (payload bytes, leaf bytes) appended.
///
/// # Errors
/// When `make` fails, or on storage failure.
pub fn append_entries(
    store: &Store,
    tree: &mut CompactTree,
    n: u64,
    t0: u64,
    mut make: impl FnMut(u64) -> Result<(Envelope, Terms)>,
) -> Result<(u64, u64)> {
    let (mut payload_bytes, mut leaf_bytes) = (0u64, 0u64);
    let mut i = tree.size();
    while i < n {
        let mut group = Vec::with_capacity(10_000);
        let mut nodes = Vec::new();
        while i < n && group.len() < 10_000 {
            let (env, terms) = make(i)?;
            payload_bytes += env.payload.len() as u64;
            let leaf = Entry {
                index: i,
                timestamp_micros: t0 + i,
                prev_root: tree.root(),
                envelope: env,
            }
            .encode();
            leaf_bytes += leaf.len() as u64;
            let lh = leaf_hash(&leaf);
            tree.append_with(lh, |c| nodes.push(c));
            group.push(PreparedEntry {
                index: i,
                leaf,
                leaf_hash: lh,
                request: None,
                terms,
                tickets: Vec::new(),
            });
            i += 1;
        }
        store.commit_group(&group, &nodes, tree.size(), None)?;
    }
    Ok((payload_bytes, leaf_bytes))
}

/// A record payload of about 300 bytes, like a citizen micro-evaluation.
fn payload(i: u64) -> Vec<u8> {
    format!(
        "{{\"version\":1,\"text\":\"bench note {i:012}: service rating 4 of 5, counter 3, household registration, \
         waited 6 minutes, staff courteous; department dept-{:02}; period 2026-11; padding to a typical record \
         size for the ledger benchmark suite.\"}}",
        i % 50
    )
    .into_bytes()
}

/// Builds a log of `n` entries into `dir/data` (and `dir/log.export` when `signed`). A signed log is
/// valid for `ledger-verify`: charter, 16 enrolled registrar keys, notes signed round-robin, and a
/// node-signed checkpoint at the end. An unsigned log (for proof latency only) holds the same
/// records without signatures.
pub fn build_log(dir: &Path, n: u64, signed: bool) -> Result<BuiltLog> {
    let data = dir.join("data");
    let cache = std::env::var("LEDGER_BENCH_SLED_CACHE_MB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(ledger_store::DEFAULT_CACHE_BYTES, |mb| mb << 20);
    let mut store = Store::open_with_cache(&data, cache)?;
    let node = SigningKey::from_bytes(&[1; 32]);
    let admin = SigningKey::from_bytes(&[2; 32]);
    let signers: Vec<SigningKey> = if signed {
        (0..16u8).map(|i| SigningKey::from_bytes(&[100 + i; 32])).collect()
    } else {
        Vec::new()
    };
    let mut head: Vec<Envelope> = Vec::new();
    if signed {
        let charter = Charter {
            version: 1,
            origin: ORIGIN.into(),
            node_key: public_key_to_base64(&node.verifying_key()),
            admins: vec![NamedKey {
                name: "admin".into(),
                key: public_key_to_base64(&admin.verifying_key()),
            }],
            policy: Policy::default(),
        };
        let mut env = Envelope::new(payload_type("charter"), serde_json::to_vec(&charter)?);
        env.sign(&node);
        env.sign(&admin);
        head.push(env);
        for (i, k) in signers.iter().enumerate() {
            let r = KeyEnroll {
                version: 1,
                name: format!("registrar {i}"),
                key: public_key_to_base64(&k.verifying_key()),
                roles: vec![Role::Registrar],
                scope: Scope::default(),
                mldsa44_key: None,
            };
            let mut env = Envelope::new(payload_type("key.enroll"), serde_json::to_vec(&r)?);
            env.sign(&admin);
            head.push(env);
        }
    }
    let (payload_bytes, leaf_bytes) = if signed || n <= CHUNK {
        let mut tree = CompactTree::new();
        append_range(&store, &mut tree, n, &head, &signers)?
    } else {
        // sled's memory grows with everything one process has written through it (reopening the
        // instance does not give it back: about 3-5 KB per entry here), so a 10M-entry log is built
        // a million entries at a time, each chunk by a fresh process (`--internal-extend`).
        drop(store);
        let (mut p, mut l) = (0u64, 0u64);
        let mut size = 0;
        while size < n {
            let to = (size + CHUNK).min(n);
            let out = std::process::Command::new(std::env::current_exe()?)
                .arg("--internal-extend")
                .arg(&data)
                .arg("--to")
                .arg(to.to_string())
                .stderr(Stdio::inherit())
                .output()?;
            let text = String::from_utf8_lossy(&out.stdout);
            let nums: Vec<u64> = text.split_whitespace().filter_map(|w| w.parse().ok()).collect();
            let [dp, dl] = nums[..] else {
                bail!("building entries {size}..{to} failed: {text}");
            };
            p += dp;
            l += dl;
            size = to;
        }
        store = Store::open_with_cache(&data, cache)?;
        (p, l)
    };
    let tree = store.compact_tree()?;
    let mut export = None;
    if signed {
        put_signed_checkpoint(&store, &tree, ORIGIN, node)?;
        let p = dir.join("log.export");
        let f = std::fs::File::create(&p)?;
        ledger_store::export::export(&store, std::io::BufWriter::new(f))?;
        export = Some(p);
    }
    store.flush()?;
    Ok(BuiltLog {
        data,
        export,
        entries: n,
        payload_bytes,
        leaf_bytes,
    })
}

/// Runs a command to completion and returns (seconds, peak RSS in MiB, success). The peak is the
/// kernel's high-water mark (`VmHWM` in `/proc/PID/status`), sampled every 10 ms until the process
/// exits; the last sample is taken within 10 ms of its end.
fn run_measured(cmd: &mut Command) -> Result<(f64, f64, bool)> {
    let t = Instant::now();
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    let status = loop {
        if let Ok(s) = std::fs::read_to_string(&status_path)
            && let Some(kib) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(st) = child.try_wait()? {
            break st;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    Ok((t.elapsed().as_secs_f64(), peak_kib as f64 / 1024.0, status.success()))
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Verifier replay from `--data` and `--export`: entries/s and peak RSS.
pub fn replay(log: &BuiltLog, runs: usize) -> Result<()> {
    let verify = bin("ledger-verify")?;
    let mut sources: Vec<(&str, Vec<String>)> = vec![("--data", vec!["--data".into(), log.data.display().to_string()])];
    if let Some(e) = &log.export {
        sources.push(("--export", vec!["--export".into(), e.display().to_string()]));
    }
    for (name, args) in sources {
        let (mut rate, mut rss) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let (secs, mib, ok) = run_measured(Command::new(&verify).arg("replay").args(&args))?;
            if !ok {
                bail!("ledger-verify replay {name} reported faults on a clean log");
            }
            rate.push(log.entries as f64 / secs);
            rss.push(mib);
        }
        row(
            &format!("replay {name}, {} entries, all signatures", log.entries),
            &stats(rate),
            "entries/s",
            "target ≥ 50,000/s",
        );
        row(&format!("  peak RSS ({name})"), &stats(rss), "MiB", "");
    }
    Ok(())
}

/// Server-side proof generation on a store of `size` entries, as GetInclusionProof and
/// GetConsistencyProof do it: µs per proof and the proof sizes.
pub fn proofs(data: &Path, size: u64, runs: usize) -> Result<()> {
    // The page cache a node has by default (`serve --cache-mb`), unless LEDGER_BENCH_SLED_CACHE_MB.
    let cache = std::env::var("LEDGER_BENCH_SLED_CACHE_MB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(ledger_store::NODE_CACHE_BYTES, |mb| mb << 20);
    let store = Store::open_with_cache(data, cache)?;
    if store.size()? != size {
        bail!("store has {} entries, expected {size}", store.size()?);
    }
    let root = merkle::root_from_source(&store, size)?;
    let mut rng_state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |m: u64| {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state % m
    };
    let per = 2000;
    // First pass on the freshly opened store: sled's page cache is cold (every page read from the
    // file, as after a restart or for a log larger than the cache); then the measured runs.
    let t = Instant::now();
    for _ in 0..per {
        std::hint::black_box(merkle::inclusion_proof(&store, next(size), size)?);
    }
    let cold = t.elapsed().as_secs_f64() * 1e6 / per as f64;
    let (mut inc, mut con) = (Vec::new(), Vec::new());
    let (mut inc_len, mut con_len) = (0usize, 0usize);
    for _ in 0..runs {
        let idx: Vec<u64> = (0..per).map(|_| next(size)).collect();
        let t = Instant::now();
        for &i in &idx {
            let p = merkle::inclusion_proof(&store, i, size)?;
            inc_len = inc_len.max(p.len());
            std::hint::black_box(p);
        }
        inc.push(t.elapsed().as_secs_f64() * 1e6 / per as f64);
        let olds: Vec<u64> = (0..per).map(|_| 1 + next(size - 1)).collect();
        let t = Instant::now();
        for &m in &olds {
            let p = merkle::consistency_proof(&store, m, size)?;
            con_len = con_len.max(p.len());
            std::hint::black_box(p);
        }
        con.push(t.elapsed().as_secs_f64() * 1e6 / per as f64);
    }
    // One proof checked, so that the figure is for correct proofs.
    let i = next(size);
    let lh = store.stored_leaf_hash(i)?.context("leaf hash")?;
    let p = merkle::inclusion_proof(&store, i, size)?;
    merkle::verify_inclusion(i, size, &lh, &p, &root)?;
    let log2 = 64 - (size - 1).leading_zeros();
    let note = format!(
        "max {} B inclusion / {} B consistency (32·⌈log₂ n⌉ = {} B); target ≤ 200 µs",
        inc_len * 32,
        con_len * 32,
        32 * log2
    );
    row(
        &format!("inclusion proof, server-side, n = {size}"),
        &stats_f(inc),
        "µs",
        &note,
    );
    row(
        &format!("consistency proof, server-side, n = {size}"),
        &stats_f(con),
        "µs",
        "",
    );
    println!(
        "{:<52} {:>12.1} µs        (first {per} proofs after opening the store: cold page cache)",
        format!("inclusion proof, cold, n = {size}"),
        cold
    );
    Ok(())
}

fn stats_f(v: Vec<f64>) -> Stats {
    stats(v)
}

/// Bytes on disk per entry against payload and leaf sizes.
pub fn store_size(log: &BuiltLog) -> Result<()> {
    let disk = dir_size(&log.data)?;
    let n = log.entries.max(1) as f64;
    println!(
        "{:<52} {:>12.0} B/entry  payload {:.0} B, canonical leaf {:.0} B, overhead ×{:.2} of the leaf",
        format!("store size on disk, {} entries", log.entries),
        disk as f64 / n,
        log.payload_bytes as f64 / n,
        log.leaf_bytes as f64 / n,
        disk as f64 / log.leaf_bytes.max(1) as f64
    );
    if let Some(e) = &log.export {
        let sz = std::fs::metadata(e)?.len();
        println!("{:<52} {:>12.0} B/entry", "export file size", sz as f64 / n);
    }
    Ok(())
}

fn dir_size(p: &Path) -> Result<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(p)? {
        let e = e?;
        let m = e.metadata()?;
        total += if m.is_dir() { dir_size(&e.path())? } else { m.len() };
    }
    Ok(total)
}

/// PostgreSQL baseline: the same hash-chained appends (chain = SHA-256(previous chain ‖ payload ‖
/// signature), computed in the database per insert under a row lock, `synchronous_commit = on`),
/// driven by `pgbench` with `clients` connections for `secs` seconds. Returns appends/s per run,
/// or `None` (with the reason printed) when PostgreSQL cannot be started here.
pub fn postgres(clients: usize, secs: u64, runs: usize) -> Result<Option<Vec<f64>>> {
    let Some(pg) = find_postgres() else {
        return skipped(
            "no PostgreSQL server binaries found and `apt-get install -y postgresql` failed or is not allowed here",
        );
    };
    let cluster = match PgCluster::start(pg, clients)? {
        Ok(c) => c,
        Err(why) => return skipped(&why),
    };
    if let Err(why) = cluster.create_schema()? {
        return skipped(&why);
    }
    match cluster.bench(clients, secs, runs)? {
        Ok(rates) => Ok(Some(rates)),
        Err(why) => skipped(&why),
    }
}

/// Says why the PostgreSQL baseline is skipped.
fn skipped(why: &str) -> Result<Option<Vec<f64>>> {
    println!("PostgreSQL baseline skipped: {why}");
    Ok(None)
}

/// Stops the server when dropped.
struct PgStop {
    pg_ctl: PathBuf,
    pd: String,
    as_root: bool,
}

impl Drop for PgStop {
    fn drop(&mut self) {
        let _ = pg_command(self.as_root, &self.pg_ctl, &["-D", &self.pd, "-m", "fast", "stop"])
            .stdout(Stdio::null())
            .status();
    }
}

/// A throw-away PostgreSQL cluster listening on a Unix socket in its directory.
struct PgCluster {
    pg: PathBuf,
    as_root: bool,
    /// Dropped before `dir`: the server stops before its directory is removed.
    _stop: PgStop,
    dir: tempfile::TempDir,
}

/// Port of the socket.
const PG_PORT: &str = "54329";

impl PgCluster {
    /// Creates and starts a cluster; `Ok(Err(why))` when PostgreSQL cannot be run here.
    fn start(pg: PathBuf, clients: usize) -> Result<Result<Self, String>> {
        let dir = tempfile::Builder::new().prefix("ledger-bench-pg-").tempdir_in("/tmp")?;
        let as_root = is_root();
        let pgdata = dir.path().join("pgdata");
        if as_root {
            // initdb refuses to run as root: the cluster belongs to the `postgres` system user.
            let st = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(dir.path())
                .status()?;
            if !st.success() {
                return Ok(Err("cannot hand the cluster directory to user postgres".into()));
            }
        }
        let pd = pgdata.to_str().context("path")?;
        let out = pg_command(
            as_root,
            &pg.join("initdb"),
            &["-D", pd, "-A", "trust", "-U", "bench", "--no-sync"],
        )
        .output()?;
        if !out.status.success() {
            return Ok(Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let opts = format!(
            "-c listen_addresses='' -c unix_socket_directories='{}' -p {PG_PORT} -c synchronous_commit=on -c fsync=on \
             -c max_connections={} -c shared_buffers=256MB",
            dir.path().display(),
            clients + 10
        );
        let log = dir.path().join("pg.log");
        let log_path = log.to_str().context("path")?;
        let st = pg_command(
            as_root,
            &pg.join("pg_ctl"),
            &["-D", pd, "-l", log_path, "-o", &opts, "-w", "start"],
        )
        .stdout(Stdio::null())
        .status()?;
        if !st.success() {
            return Ok(Err(format!(
                "the server did not start ({})",
                std::fs::read_to_string(&log).unwrap_or_default().trim()
            )));
        }
        let stop = PgStop {
            pg_ctl: pg.join("pg_ctl"),
            pd: pd.to_string(),
            as_root,
        };
        Ok(Ok(Self {
            pg,
            as_root,
            _stop: stop,
            dir,
        }))
    }

    fn host(&self) -> Result<&str> {
        self.dir.path().to_str().context("path")
    }

    /// The table, the chain head and the append function; `Ok(Err(why))` when psql fails.
    fn create_schema(&self) -> Result<Result<(), String>> {
        let schema = "CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE TABLE ledger (idx bigint PRIMARY KEY, ts timestamptz NOT NULL, payload bytea NOT NULL, sig bytea NOT NULL, chain bytea NOT NULL);
CREATE TABLE head (id int PRIMARY KEY, size bigint NOT NULL, chain bytea NOT NULL);
INSERT INTO head VALUES (1, 0, '\\x00'::bytea);
CREATE FUNCTION ledger_append(p bytea, s bytea) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE h head%ROWTYPE; c bytea;
BEGIN
  SELECT * INTO h FROM head WHERE id = 1 FOR UPDATE;
  c := digest(h.chain || p || s, 'sha256');
  INSERT INTO ledger VALUES (h.size, now(), p, s, c);
  UPDATE head SET size = h.size + 1, chain = c WHERE id = 1;
  RETURN h.size;
END $$;";
        let out = pg_command(
            self.as_root,
            &self.pg.join("psql"),
            &[
                "-h",
                self.host()?,
                "-p",
                PG_PORT,
                "-U",
                "bench",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
                "-c",
                schema,
            ],
        )
        .output()?;
        if !out.status.success() {
            return Ok(Err(format!("schema: {}", String::from_utf8_lossy(&out.stderr).trim())));
        }
        Ok(Ok(()))
    }

    /// `runs` pgbench runs of `secs` seconds with `clients` clients: appends per second each;
    /// `Ok(Err(why))` when pgbench reports no rate.
    fn bench(&self, clients: usize, secs: u64, runs: usize) -> Result<Result<Vec<f64>, String>> {
        // A ~300-byte payload and a 64-byte "signature" per insert (PostgreSQL does not verify Ed25519).
        let script = self.dir.path().join("append.sql");
        std::fs::write(
            &script,
            "\\set r random(1, 2000000000)\nSELECT ledger_append(convert_to(repeat(md5(:r::text), 9), 'UTF8'), \
             sha512(convert_to(:r::text, 'UTF8')));\n",
        )?;
        if self.as_root {
            let _ = Command::new("chown").args(["postgres"]).arg(&script).status();
        }
        let mut rates = Vec::new();
        for _ in 0..runs {
            let out = pg_command(
                self.as_root,
                &self.pg.join("pgbench"),
                &[
                    "-h",
                    self.host()?,
                    "-p",
                    PG_PORT,
                    "-U",
                    "bench",
                    "-n",
                    "-c",
                    &clients.to_string(),
                    "-j",
                    "2",
                    "-T",
                    &secs.to_string(),
                    "-f",
                    script.to_str().context("path")?,
                    "postgres",
                ],
            )
            .output()?;
            let text = String::from_utf8_lossy(&out.stdout);
            let tps = text
                .lines()
                .find(|l| l.starts_with("tps = "))
                .and_then(|l| l.trim_start_matches("tps = ").split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok());
            match tps {
                Some(t) => rates.push(t),
                None => {
                    return Ok(Err(format!(
                        "pgbench said: {} {}",
                        text.trim(),
                        String::from_utf8_lossy(&out.stderr).trim()
                    )));
                }
            }
        }
        Ok(Ok(rates))
    }
}

/// A PostgreSQL program with arguments, run as the `postgres` system user when we are root
/// (initdb and the server refuse to run as root).
fn pg_command(as_root: bool, program: &Path, args: &[&str]) -> Command {
    let mut c = if as_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    c.args(args);
    c
}

/// Directory of the PostgreSQL server binaries, installing Debian's package when missing (and
/// allowed: root with apt-get).
fn find_postgres() -> Option<PathBuf> {
    let find = || -> Option<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("postgres").exists() && p.join("pgbench").exists())
            .collect();
        dirs.sort();
        dirs.pop()
    };
    if let Some(p) = find() {
        return Some(p);
    }
    if !is_root() || std::env::var_os("LEDGER_BENCH_NO_INSTALL").is_some() {
        return None;
    }
    println!("(installing PostgreSQL from the system's packages: apt-get install -y postgresql postgresql-contrib)");
    let _ = Command::new("apt-get")
        .args(["install", "-y", "-q", "postgresql", "postgresql-contrib"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    find()
}
