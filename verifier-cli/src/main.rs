//! `ledger-verify`: checks a ledger without trusting its operator.
//!
//! - `replay` re-reads a whole log (from a node, a data directory or an export file) and re-checks
//!   every leaf hash, hash-chain link, timestamp, signature, registry rule and checkpoint.
//! - `consistency` checks that checkpoints saved earlier are still prefixes of the node's log.
//!
//! Exit codes: 0 no fault, 1 faults found, 2 usage or I/O error. See `docs/verifier.md`.

mod consistency;
mod fault;
mod pipeline;
mod prepare;
mod replay;
mod report;
mod sigs;
mod source;

use anyhow::Context as _;
use clap::{ArgGroup, Args, Parser, Subcommand};
use ledger_core::note::NoteVerifier;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "ledger-verify",
    version,
    about = "Verifies a ledger without trusting its operator"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Replays a whole log and re-checks everything.
    Replay(ReplayArgs),
    /// Checks saved checkpoints against the node's log (fork and rollback detection).
    Consistency(ConsistencyArgs),
}

#[derive(Args)]
#[command(group(ArgGroup::new("source").required(true).args(["node", "data", "export"])))]
struct ReplayArgs {
    /// Node gRPC URL, e.g. http://127.0.0.1:50051.
    #[arg(long)]
    node: Option<String>,
    /// A node's data directory (opened read-only; works while the node runs).
    #[arg(long)]
    data: Option<PathBuf>,
    /// An export file (ledger-node export).
    #[arg(long)]
    export: Option<PathBuf>,
    /// The node's checkpoint key, NAME+HASH+BASE64; its name is the log origin.
    #[arg(long, value_name = "KEY")]
    trusted_key: Option<String>,
    /// The expected log origin.
    #[arg(long)]
    origin: Option<String>,
    /// Also write a machine-readable report here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Signature worker threads (default: available cores; 1 = everything on one thread).
    #[arg(long)]
    threads: Option<usize>,
    /// Entries per verification window.
    #[arg(long, default_value_t = 1024)]
    window: usize,
    /// Verify every signature one by one with strict Ed25519 instead of in batches.
    #[arg(long)]
    strict_signatures: bool,
    /// Most faults listed in the report (all are counted).
    #[arg(long, default_value_t = 1000)]
    max_faults: usize,
}

#[derive(Args)]
struct ConsistencyArgs {
    /// Node gRPC URL.
    #[arg(long)]
    node: String,
    /// A signed checkpoint note saved earlier (repeat for several).
    #[arg(long = "checkpoint", value_name = "FILE", required = true)]
    checkpoints: Vec<PathBuf>,
    /// The node's checkpoint key, NAME+HASH+BASE64.
    #[arg(long, value_name = "KEY")]
    trusted_key: Option<String>,
    /// Also write a machine-readable report here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Most faults listed in the report.
    #[arg(long, default_value_t = 1000)]
    max_faults: usize,
}

fn trusted(k: Option<&str>) -> anyhow::Result<Option<NoteVerifier>> {
    k.map(|s| NoteVerifier::parse(s.trim()).context("--trusted-key"))
        .transpose()
}

fn replay(a: ReplayArgs) -> anyhow::Result<bool> {
    let trusted_key = trusted(a.trusted_key.as_deref())?;
    if let (Some(k), Some(o)) = (&trusted_key, &a.origin)
        && k.name != *o
    {
        anyhow::bail!("--origin {o} differs from the trusted key's name {}", k.name);
    }
    let src: Box<dyn source::Source> = if let Some(url) = &a.node {
        Box::new(source::node::NodeSource::open(url)?)
    } else if let Some(d) = &a.data {
        Box::new(source::data::DataSource::open(d)?)
    } else if let Some(f) = &a.export {
        Box::new(source::export::ExportSource::open(f)?)
    } else {
        anyhow::bail!("one of --node, --data, --export is required");
    };
    let described = src.describe();
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from));
    let replayer = replay::Replayer::new(replay::ReplayOptions {
        trusted_key,
        origin: a.origin.clone(),
        max_faults: a.max_faults,
    });
    let opts = pipeline::PipelineOptions {
        threads,
        window: a.window,
        mode: if a.strict_signatures {
            sigs::SigMode::Strict
        } else {
            sigs::SigMode::Batch
        },
    };
    let t0 = Instant::now();
    let outcome = pipeline::run(src, replayer, opts)?;
    let elapsed = t0.elapsed().as_secs_f64();
    print!("{}", report::replay_human(&described, &outcome, elapsed));
    if let Some(p) = &a.json {
        report::write_json(p, &report::replay_json(&described, &outcome, elapsed))?;
    }
    Ok(outcome.faults.total() == 0)
}

fn consistency_cmd(a: ConsistencyArgs) -> anyhow::Result<bool> {
    let req = consistency::ConsistencyRequest {
        node: a.node,
        checkpoints: a.checkpoints,
        trusted_key: trusted(a.trusted_key.as_deref())?,
        max_faults: a.max_faults,
    };
    let o = consistency::run(&req)?;
    print!("{}", consistency::human(&o));
    if let Some(p) = &a.json {
        report::write_json(p, &consistency::json(&o))?;
    }
    Ok(o.faults.total() == 0)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Replay(a) => replay(a),
        Cmd::Consistency(a) => consistency_cmd(a),
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("ledger-verify: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
