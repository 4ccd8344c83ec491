//! `ledger-verify`: checks a ledger without trusting its operator.
//!
//! - `replay` re-reads a whole log (from a node, a data directory or an export file) and re-checks
//!   every leaf hash, hash-chain link, timestamp, signature, registry rule and checkpoint.
//! - `consistency` checks that checkpoints saved earlier or held by witnesses are still prefixes of
//!   the node's log, or, without a node, that they agree with each other (gossip).
//!
//! Exit codes: 0 no fault, 1 faults found, 2 usage or I/O error. See `docs/verifier.md`.

mod bundle;
mod bundle_page;
mod consistency;
mod fault;
mod pages;
mod pipeline;
mod prepare;
mod replay;
mod report;
mod review;
mod sigs;
mod source;
mod tickets;
mod timestamps;
mod unseal;

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
    /// Checks saved and witnesses' checkpoints against the node's log, or against each other
    /// (fork and rollback detection, gossip).
    Consistency(ConsistencyArgs),
    /// Retrospective review (回溯测评): timeline, flags and accountability per cadre, draw or period.
    Review(ReviewArgs),
    /// Court bundles: export from a node, verify offline, render for printing.
    #[command(subcommand)]
    Bundle(BundleCmd),
    /// (Court, with the escrow key) Opens the sealed complainant identity of the complaint at an
    /// index and prints an opening that anyone can check against the ledger (docs/ballots.md).
    Unseal(UnsealArgs),
    /// Checks an opening printed by `unseal` against the ledger, without the escrow key.
    CheckOpening(CheckOpeningArgs),
}

#[derive(Args)]
struct UnsealArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// The escrow's secret key file (standard base64 of the 32-byte X25519 key).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Index of the complaint entry.
    #[arg(long)]
    index: u64,
    /// Also write the opening (JSON) here.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct CheckOpeningArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// The opening file written by `unseal --out`.
    #[arg(long, value_name = "FILE")]
    opening: PathBuf,
}

fn unseal_cmd(a: UnsealArgs) -> anyhow::Result<bool> {
    let key = unseal::read_escrow_key(&a.key)?;
    let mut src = open_source(&a.source)?;
    let o = unseal::unseal_entry(&mut *src, &key, a.index)?;
    let text = serde_json::to_string_pretty(&o)?;
    println!("{text}");
    println!(
        "opened complaint {} at entry {}: SHA-256(salt ‖ identity) = recorded commitment {}",
        o.complaint_id, o.index, o.commitment
    );
    if let Some(p) = &a.out {
        std::fs::write(p, format!("{text}\n")).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(true)
}

fn check_opening_cmd(a: CheckOpeningArgs) -> anyhow::Result<bool> {
    let text = std::fs::read_to_string(&a.opening).with_context(|| format!("reading {}", a.opening.display()))?;
    let o: unseal::OpeningFile =
        serde_json::from_str(&text).with_context(|| format!("{} is not an opening file", a.opening.display()))?;
    let mut src = open_source(&a.source)?;
    match unseal::check_opening(&mut *src, &o) {
        Ok(()) => {
            println!(
                "OK: the opening matches complaint {} at entry {} (leaf hash {}): its complainant is {:?}",
                o.complaint_id, o.index, o.leaf_hash, o.identity
            );
            Ok(true)
        }
        Err(e) => {
            println!("MISMATCH: {e}");
            Ok(false)
        }
    }
}

#[derive(Args)]
struct ReviewArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// One cadre (subject id).
    #[arg(long)]
    subject: Option<String>,
    /// One draw id.
    #[arg(long)]
    draw: Option<String>,
    /// Period start: YYYY-MM-DD (UTC) or microseconds since the epoch.
    #[arg(long)]
    from: Option<String>,
    /// Period end (exclusive): YYYY-MM-DD (UTC) or microseconds since the epoch.
    #[arg(long)]
    to: Option<String>,
    /// Also write the report as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also write one self-contained HTML page.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Time zone of the HTML page's times (UTC is shown beside): Asia/Shanghai, UTC or +HH:MM.
    #[arg(long, default_value = "Asia/Shanghai", allow_hyphen_values = true)]
    tz: String,
}

/// Parses YYYY-MM-DD (UTC midnight) or plain microseconds.
fn parse_when(s: &str) -> anyhow::Result<u64> {
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    let parts: Vec<&str> = s.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        anyhow::bail!("{s:?}: expected YYYY-MM-DD or microseconds")
    };
    let (y, m, d): (i64, i64, i64) = (y.parse()?, m.parse()?, d.parse()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || y < 1970 {
        anyhow::bail!("{s:?}: not a date");
    }
    // Days from civil (H. Hinnant).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(u64::try_from(days)? * 86_400 * 1_000_000)
}

fn open_source(a: &SourceArgs) -> anyhow::Result<Box<dyn source::Source>> {
    Ok(if let Some(url) = &a.node {
        Box::new(source::node::NodeSource::open(url)?)
    } else if let Some(d) = &a.data {
        Box::new(source::data::DataSource::open(d)?)
    } else if let Some(f) = &a.export {
        Box::new(source::export::ExportSource::open(f)?)
    } else {
        anyhow::bail!("one of --node, --data, --export is required");
    })
}

fn review_cmd(a: ReviewArgs) -> anyhow::Result<bool> {
    let filter = review::Filter {
        subject: a.subject,
        draw: a.draw,
        from: a.from.as_deref().map(parse_when).transpose()?,
        to: a.to.as_deref().map(parse_when).transpose()?,
    };
    let tz = pages::Tz::parse(&a.tz)?;
    let src = open_source(&a.source)?;
    let r = review::run(src, filter)?;
    print!("{}", review::human(&r));
    if let Some(p) = &a.json {
        report::write_json(p, &serde_json::to_value(&r)?)?;
    }
    if let Some(p) = &a.html {
        std::fs::write(p, review::html(&r, &tz)).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(r.flags.is_empty())
}

#[derive(Subcommand)]
enum BundleCmd {
    /// Writes a self-contained bundle of records with their proofs (docs/bundle.md).
    Export {
        /// Node gRPC URL.
        #[arg(long)]
        node: String,
        /// Record indices (repeat).
        #[arg(long = "index")]
        indices: Vec<u64>,
        /// Every record about this subject (cadre id).
        #[arg(long)]
        subject: Option<String>,
        /// Every record of this draw or election.
        #[arg(long)]
        draw: Option<String>,
        /// A signed checkpoint the court already holds: include a consistency proof from it.
        #[arg(long, value_name = "FILE")]
        from_checkpoint: Option<PathBuf>,
        /// Pin the node key (NAME+HASH+BASE64).
        #[arg(long, value_name = "KEY")]
        trusted_key: Option<String>,
        /// Output file.
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Verifies a bundle offline (no network) and prints a verdict.
    Verify {
        /// Bundle file.
        file: PathBuf,
        /// Pin the node key (NAME+HASH+BASE64).
        #[arg(long, value_name = "KEY")]
        trusted_key: Option<String>,
        /// Also write the verdict as JSON.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// A root certificate (PEM) the court trusts for RFC 3161 time-stamping authorities;
        /// repeatable. Without it, timestamp tokens are reported as unverified and not counted.
        #[arg(long = "tsa-root", value_name = "CERT.pem")]
        tsa_root: Vec<PathBuf>,
    },
    /// Renders a bundle's verdict as one self-contained HTML page for printing.
    Show {
        /// Bundle file.
        file: PathBuf,
        /// Output HTML file.
        #[arg(long)]
        html: PathBuf,
        /// Pin the node key (NAME+HASH+BASE64).
        #[arg(long, value_name = "KEY")]
        trusted_key: Option<String>,
        /// A root certificate (PEM) the court trusts for time-stamping authorities; repeatable.
        #[arg(long = "tsa-root", value_name = "CERT.pem")]
        tsa_root: Vec<PathBuf>,
        /// Time zone of the page's times (UTC is shown beside): Asia/Shanghai, UTC or +HH:MM.
        #[arg(long, default_value = "Asia/Shanghai", allow_hyphen_values = true)]
        tz: String,
    },
}

fn bundle_cmd(c: BundleCmd) -> anyhow::Result<bool> {
    match c {
        BundleCmd::Export {
            node,
            indices,
            subject,
            draw,
            from_checkpoint,
            trusted_key,
            out,
        } => {
            let t = trusted(trusted_key.as_deref())?;
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let mut b = rt.block_on(bundle::export(bundle::ExportRequest {
                node: &node,
                indices: &indices,
                subject: subject.as_deref(),
                draw: draw.as_deref(),
                from_checkpoint: from_checkpoint.as_deref(),
                trusted: t.as_ref(),
            }))?;
            b.timestamps = rt.block_on(timestamps::for_bundle(&node, &b));
            bundle::write(&out, &b)?;
            println!(
                "wrote {} ({} records, checkpoint of {} entries)",
                out.display(),
                b.records.len(),
                {
                    ledger_core::note::Note::parse(&b.checkpoint)
                        .ok()
                        .and_then(|n| ledger_core::checkpoint::Checkpoint::from_body(&n.text).ok())
                        .map_or(0, |c| c.size)
                }
            );
            Ok(true)
        }
        BundleCmd::Verify {
            file,
            trusted_key,
            json,
            tsa_root,
        } => {
            let t = trusted(trusted_key.as_deref())?;
            let v = bundle::verify_file(&file, t.as_ref())?;
            print!("{}", bundle::render(&v));
            let ts = timestamps::check_file(&file, &tsa_root)?;
            print!("{}", ts.render());
            if let Some(p) = &json {
                report::write_json(p, &verdict_json(&file, &v, &ts)?)?;
            }
            Ok(v.ok() && ts.ok())
        }
        BundleCmd::Show {
            file,
            html,
            trusted_key,
            tsa_root,
            tz,
        } => {
            let tz = pages::Tz::parse(&tz)?;
            let t = trusted(trusted_key.as_deref())?;
            let v = bundle::verify_file(&file, t.as_ref())?;
            let ts = timestamps::check_file(&file, &tsa_root)?;
            let b = bundle::load(&file)?;
            let name = file
                .file_name()
                .map_or_else(|| file.display().to_string(), |n| n.to_string_lossy().into_owned());
            std::fs::write(&html, bundle_page::html(&b, &v, &token_rows(&ts), &tz, &name))
                .with_context(|| format!("writing {}", html.display()))?;
            println!("wrote {}", html.display());
            Ok(v.ok() && ts.ok())
        }
    }
}

/// `bundle verify --json`: the verdict, the timestamp report when the bundle carries tokens, and
/// per record the independent parties that vouch for it (docs/bundle.md).
fn verdict_json(
    file: &std::path::Path,
    v: &ledger_core::bundle::BundleVerdict,
    ts: &timestamps::TimestampReport,
) -> anyhow::Result<serde_json::Value> {
    let mut j = serde_json::to_value(v)?;
    if !ts.tokens.is_empty()
        && let Some(o) = j.as_object_mut()
    {
        o.insert("timestamps".into(), serde_json::to_value(ts)?);
    }
    // Per record, the independent parties that vouch for it (docs/bundle.md).
    let b = bundle::load(file)?;
    let vouch = bundle_page::vouchers(&b, v, &token_rows(ts));
    if let Some(recs) = j.get_mut("records").and_then(serde_json::Value::as_array_mut) {
        for (r, w) in recs.iter_mut().zip(&vouch) {
            if let Some(o) = r.as_object_mut() {
                o.insert("vouched_by".into(), serde_json::to_value(w)?);
            }
        }
    }
    Ok(j)
}

/// The timestamp tokens as the bundle page sees them.
fn token_rows(ts: &timestamps::TimestampReport) -> bundle_page::Tokens {
    bundle_page::Tokens {
        roots_given: ts.roots_given,
        rows: ts
            .tokens
            .iter()
            .map(|t| bundle_page::TokenRow {
                tsa: t.tsa.clone(),
                checkpoint_size: t.checkpoint_size,
                gen_time: t.gen_time.clone(),
                gen_time_unix: t.gen_time_unix,
                verified: t.verified,
                root: t.root.clone(),
                problem: t.problem.clone(),
            })
            .collect(),
    }
}

/// Where a log is read from: exactly one of a node, a data directory or an export file.
#[derive(Args)]
#[command(group(ArgGroup::new("source").required(true).args(["node", "data", "export"])))]
struct SourceArgs {
    /// Node gRPC URL, e.g. http://127.0.0.1:50051.
    #[arg(long)]
    node: Option<String>,
    /// A node's data directory (opened read-only; works while the node runs).
    #[arg(long)]
    data: Option<PathBuf>,
    /// An export file (ledger-node export).
    #[arg(long)]
    export: Option<PathBuf>,
}

#[derive(Args)]
struct ReplayArgs {
    #[command(flatten)]
    source: SourceArgs,
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
#[command(group(ArgGroup::new("saved").required(true).multiple(true).args(["checkpoints", "witness_urls"])))]
struct ConsistencyArgs {
    /// Node gRPC URL; without it the checkpoints are only compared with each other.
    #[arg(long)]
    node: Option<String>,
    /// A signed checkpoint note saved earlier (repeat for several).
    #[arg(long = "checkpoint", value_name = "FILE")]
    checkpoints: Vec<PathBuf>,
    /// A witness gRPC URL (repeat): its latest cosigned checkpoint for the log is checked too.
    #[arg(long = "witness-url", value_name = "URL")]
    witness_urls: Vec<String>,
    /// The node's checkpoint key, NAME+HASH+BASE64 (required without --node).
    #[arg(long, value_name = "KEY", required_unless_present = "node")]
    trusted_key: Option<String>,
    /// A witness's cosignature key NAME+HASH+BASE64 (repeat); default: the witness keys enrolled
    /// in the registry the node serves (none without --node).
    #[arg(long = "witness-key", value_name = "KEY")]
    witness_keys: Vec<String>,
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
    let src = open_source(&a.source)?;
    let described = src.describe();
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from));
    let mut replayer = replay::Replayer::new(replay::ReplayOptions {
        trusted_key,
        origin: a.origin.clone(),
        max_faults: a.max_faults,
    });
    for (file, note) in src.high_water_marks() {
        replayer.high_water(file, note);
    }
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
        witness_urls: a.witness_urls,
        trusted_key: trusted(a.trusted_key.as_deref())?,
        witness_keys: a
            .witness_keys
            .iter()
            .map(|k| ledger_core::cosignature::CosignatureVerifier::parse(k).context("--witness-key"))
            .collect::<anyhow::Result<_>>()?,
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
        Cmd::Bundle(c) => bundle_cmd(c),
        Cmd::Review(a) => review_cmd(a),
        Cmd::Unseal(a) => unseal_cmd(a),
        Cmd::CheckOpening(a) => check_opening_cmd(a),
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
