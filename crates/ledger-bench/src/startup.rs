//! `--startup N`: the node's start-up at N entries. Builds a node data directory (`ledger-node
//! init`, then N − 2 citizen micro-evaluations by one enrolled service platform, written straight
//! into the store with a node-signed checkpoint at the end: the kind whose state grows with the
//! log, one ticket hash per rating), then starts `ledger-node serve` on it `runs` times and reads
//! from its log how long the store verification and the state fold took, and the time until it
//! listens.

use crate::{bin, micro_eval, row, rss_mib, stats};
use anyhow::{Context, Result, bail};
use ed25519_dalek::SigningKey;
use ledger_core::dsse::Envelope;
use ledger_core::registry::{index_terms, kind_of, payload_type_for_log};
use ledger_store::Store;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

// The origin the micro-evaluations are bound to (`micro_eval`): with another origin every one of
// them is refused by the fold (WRONG_LOG) and the fold is not measured.
use crate::ORIGIN;

/// Appends the enrollment of a service platform and micro-evaluations up to `n` entries.
fn build(data: &Path, n: u64) -> Result<()> {
    let st = Command::new(bin("ledger-node")?)
        .args(["init", "--origin", ORIGIN])
        .arg("--data")
        .arg(data)
        .stdout(Stdio::null())
        .status()?;
    if !st.success() {
        bail!("init failed");
    }
    let admin = ledger_client::keyfile::read_signing_key(data.join("keys/admin.key"))?;
    let node = ledger_client::keyfile::read_signing_key(data.join("keys/node.key"))?;
    let platform = SigningKey::generate(&mut rand::rng());
    let store = Store::open(&data.join("store"))?;
    let mut tree = store.compact_tree()?;
    let t0 = store.timestamp(0)?.context("no charter")?;
    crate::suite::append_entries(&store, &mut tree, n, t0, |i| {
        let env = if i == 1 {
            let payload = serde_json::json!({"version": 1, "name": "bench platform",
                "key": ledger_core::keys::public_key_to_base64(&platform.verifying_key()),
                "roles": ["service-platform"]});
            let mut env = Envelope::new(
                payload_type_for_log("key.enroll", ORIGIN),
                serde_json::to_vec(&payload)?,
            );
            env.sign(&admin);
            env
        } else {
            micro_eval(&platform, i)
        };
        let kind = kind_of(&env.payload_type).unwrap_or_default().to_string();
        let terms = index_terms(&kind, &env.payload);
        Ok((env, terms))
    })?;
    crate::suite::put_signed_checkpoint(&store, &tree, ORIGIN, node)?;
    store.flush()?;
    Ok(())
}

/// Sets the high-water mark to the store's latest checkpoint, as a node that wrote the log would
/// have left it (start-up checks the chain entry by entry only above the mark).
fn mark_latest(data: &Path) -> Result<()> {
    let path = ledger_store::high_water::mark_path(data);
    let latest = Store::open(&data.join("store"))?.latest_checkpoint()?;
    let current = ledger_store::high_water::read(&path)?
        .as_deref()
        .and_then(ledger_store::high_water::claimed_size);
    if let Some((size, note)) = latest
        && current.is_none_or(|c| c < size)
    {
        ledger_store::high_water::write_atomic(&path, &note)?;
    }
    Ok(())
}

/// Milliseconds in the node's JSON log line whose message is `msg` (or starts with it, followed
/// by a space: "state folded from snapshot at N (...)").
fn ms_of(lines: &[String], msg: &str) -> Option<f64> {
    lines.iter().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        let f = v.get("fields")?;
        let m = f.get("message")?.as_str()?;
        let hit = m == msg || m.strip_prefix(msg).is_some_and(|r| r.starts_with(' '));
        hit.then(|| f.get("ms")?.as_f64())?
    })
}

/// Whether the node's log says it folded from its state snapshot.
fn from_snapshot(lines: &[String]) -> bool {
    lines.iter().any(|l| l.contains("state folded from snapshot at"))
}

/// One start's figures: store verification ms, state fold ms, seconds until listening, (peak RSS
/// MiB, RSS MiB once listening), folded from the state snapshot.
type StartFigures = (f64, f64, f64, (f64, f64), bool);

/// One start: its [`StartFigures`].
fn start_once(data: &Path) -> Result<StartFigures> {
    let t = Instant::now();
    let mut child = Command::new(bin("ledger-node")?)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "off",
            "--log-format",
            "json",
        ])
        .arg("--data")
        .arg(data)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let err = child.stderr.take().context("stderr")?;
    let log = std::thread::spawn(move || BufReader::new(err).lines().map_while(Result::ok).collect::<Vec<_>>());
    let out = child.stdout.take().context("stdout")?;
    let listening = BufReader::new(out)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.starts_with("listening on "));
    let secs = t.elapsed().as_secs_f64();
    let (now, peak) = rss_mib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    let lines = log.join().unwrap_or_default();
    if !listening {
        bail!("the node did not start:\n{}", lines.join("\n"));
    }
    let verify = ms_of(&lines, "store verified").context("no 'store verified' line")?;
    let fold = ms_of(&lines, "state folded").context("no 'state folded' line")?;
    Ok((verify, fold, secs, (peak, now), from_snapshot(&lines)))
}

/// `--startup N`.
///
/// With `LEDGER_BENCH_STARTUP_DATA=DIR` the data directory is `DIR`, built only if it does not
/// exist and kept afterwards (to measure start-ups of one store with two builds of the node, or to
/// replay it with `ledger-verify replay --data DIR`).
pub fn run(work: &Path, n: u64, runs: usize) -> Result<()> {
    let dir = tempfile::Builder::new().prefix("ledger-startup-").tempdir_in(work)?;
    let kept = std::env::var_os("LEDGER_BENCH_STARTUP_DATA").map(std::path::PathBuf::from);
    let data = kept.clone().unwrap_or_else(|| dir.path().join("d"));
    let t = Instant::now();
    if kept.is_none() || !data.exists() {
        build(&data, n.max(3))?;
    }
    mark_latest(&data)?;
    println!(
        "start-up of ledger-node at {} entries (micro-evaluations; built in {:.1} s), {runs} runs:",
        n.max(3),
        t.elapsed().as_secs_f64()
    );
    // A node that writes state snapshots (issue 14) writes one at its first start on this store
    // (a full fold); that start is reported apart, the runs after it start from the snapshot.
    let (a, b, c, _, snap) = start_once(&data)?;
    println!(
        "first start (not counted): verification {a:.0} ms, fold {b:.0} ms{}, listening after {c:.2} s",
        if snap { " from the state snapshot" } else { "" }
    );
    let (mut v, mut f, mut s, mut p, mut r) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut snapshots = 0;
    for _ in 0..runs {
        let (a, b, c, (d, e), snap) = start_once(&data)?;
        v.push(a);
        f.push(b);
        s.push(c);
        p.push(d);
        r.push(e);
        snapshots += usize::from(snap);
    }
    row("store verification (hashes, chain, checkpoints)", &stats(v), "ms", "");
    let fold = if snapshots == runs {
        "state fold (from the state snapshot)"
    } else {
        "state fold (registry + domain, every entry)"
    };
    row(fold, &stats(f), "ms", "");
    row("start → listening", &stats(s), "s", "");
    row("peak RSS at start-up", &stats(p), "MiB", "");
    row("RSS once listening", &stats(r), "MiB", "");
    Ok(())
}
