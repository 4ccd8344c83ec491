//! `ledgerctl micro send`: a thin command over [`ledger_client::micro::send_micro_file`].

use super::{origin_of, print_json};
use anyhow::{Result, bail};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use ledger_client::micro::{self, MicroSendOptions};
use ledger_client::{LedgerClient, read_signing_key};
use std::path::PathBuf;

/// Service platform commands about micro-evaluations.
#[derive(Debug, Subcommand)]
pub enum MicroCmd {
    /// Send a JSON-lines file of ratings, one `evaluation.micro` per line (docs/ballots.md), in
    /// batches with request ids derived from the ticket hashes. Resumable: run it again after an
    /// interruption; ratings already in the log count as already present, never twice.
    Send {
        /// JSON-lines file of ratings.
        file: PathBuf,
        /// Service platform signing key file.
        #[arg(long, value_name = "KEYFILE")]
        key: PathBuf,
        /// Ratings per AppendBatch request (1 to 10000).
        #[arg(long, default_value_t = micro::DEFAULT_BATCH)]
        batch_size: usize,
        /// Progress file (default: FILE.progress).
        #[arg(long, value_name = "FILE")]
        progress_file: Option<PathBuf>,
        /// Keep no progress file (a rerun resends everything; the node still answers duplicates).
        #[arg(long, conflicts_with = "progress_file")]
        no_progress_file: bool,
        /// Do not draw the progress bar.
        #[arg(long)]
        quiet: bool,
    },
}

/// Runs a `micro` subcommand.
pub async fn micro(cmd: MicroCmd, node: &str, origin: Option<String>, json_out: bool) -> Result<()> {
    match cmd {
        MicroCmd::Send {
            file,
            key,
            batch_size,
            progress_file,
            no_progress_file,
            quiet,
        } => {
            let key = read_signing_key(&key)?;
            let client = LedgerClient::connect(node).await?;
            let origin = origin_of(&client, origin).await?;
            let mut opts = MicroSendOptions::for_file(&file);
            opts.batch_size = batch_size;
            if no_progress_file {
                opts.progress_file = None;
            } else if let Some(p) = progress_file {
                opts.progress_file = Some(p);
            }
            let bar = if quiet || json_out {
                ProgressBar::hidden()
            } else {
                ProgressBar::new(0)
            };
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} ratings, {per_sec}, eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            let s = micro::send_micro_file(&client, &origin, &key, &file, &opts, |done, total| {
                bar.set_length(total);
                bar.set_position(done);
            })
            .await?;
            bar.finish_and_clear();
            if json_out {
                print_json(&serde_json::to_value(&s)?);
            } else {
                println!(
                    "{} ratings: {} sent, {} already present, {} skipped (sent by an earlier run), {} refused",
                    s.ratings,
                    s.sent,
                    s.already_present,
                    s.skipped,
                    s.refused_total()
                );
                for (code, n) in &s.refused {
                    println!("  refused {code}: {n}");
                }
                for r in &s.refusals {
                    println!("  line {}: {} {}", r.line, r.code, r.message);
                }
            }
            if s.refused_total() > 0 {
                bail!("{} ratings were refused (see the summary)", s.refused_total());
            }
            Ok(())
        }
    }
}
