//! `ledger-node`: the evaluation ledger's node.
//!
//! `ledger-node serve` alone starts a node on 127.0.0.1:50051 with its data in `./ledger-data`
//! (initialized with development keys, loudly, if empty). See `docs/operations.md`.

// glibc malloc settings: `serve` runs with two arenas and a fixed mmap threshold unless the
// operator chose (re-execution).
mod arenas;
mod backup;
// Raft between nodes (issue 15): `serve --cluster FILE`.
mod cluster;
mod edge;
mod errors;
mod fork;
mod gate;
mod genesis;
mod marks;
mod metrics;
mod readers;
mod refusal;
mod sequencer;
mod service;
mod snapshot;
mod tiles;
mod timestamps;
mod tlog_http;
mod witness;
mod witness_push;
mod witness_run;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use ledger_core::note::NoteSigner;
use ledger_core::state::LedgerState;
use ledger_proto::pb::ledger_server::LedgerServer;
use ledger_proto::pb::timestamps_server::TimestampsServer;
use ledger_store::Store;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "ledger-node", version, about = "The evaluation ledger node")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the gRPC API (initializing DIR with development keys if it is empty).
    Serve(Box<ServeArgs>),
    /// Create the node and administrator keys and write the charter (entry 0).
    Init {
        /// Data directory.
        #[arg(long, env = "LEDGER_DATA", default_value = "ledger-data")]
        data: PathBuf,
        /// Log origin, e.g. "ledger.example.org/cadre-evaluation".
        #[arg(long)]
        origin: String,
        /// Administrator key files (created if missing); default DATA/keys/admin.key.
        #[arg(long = "admin-key")]
        admin_keys: Vec<PathBuf>,
        /// Administrator signatures a key record needs.
        #[arg(long, default_value_t = 1)]
        admin_quorum: u32,
        /// Witness cosignatures that make a checkpoint witnessed.
        #[arg(long, default_value_t = 0)]
        witness_quorum: u32,
    },
    /// Write the portable export stream (entries + checkpoints) of a stopped or running node.
    Export {
        /// Data directory.
        #[arg(long, env = "LEDGER_DATA", default_value = "ledger-data")]
        data: PathBuf,
        /// Output file.
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Run a C2SP tlog-witness that cosigns the checkpoints of the given logs (docs/witness.md).
    Witness(witness::WitnessArgs),
    /// Test only: rewrite the store from index FROM and re-sign (plays a dishonest operator).
    #[command(hide = true)]
    DebugFork {
        /// Data directory (of a stopped node).
        #[arg(long)]
        data: PathBuf,
        /// First index to rewrite.
        #[arg(long)]
        from: u64,
    },
    /// Take a verified backup (export, marks, manifest; no secret keys) of a running or stopped node.
    Backup(backup::BackupArgs),
    /// Rebuild a data directory from a backup, checking it against the manifest and every mark.
    Restore(backup::RestoreArgs),
    /// Rebuild an empty data directory from an export stream, verifying as it goes.
    Import {
        /// Data directory (must not hold a ledger).
        #[arg(long)]
        data: PathBuf,
        /// Export file.
        #[arg(short, long = "in")]
        input: PathBuf,
    },
    /// Cluster membership (issue 15): init, add, remove, status, through a node's admin service.
    Cluster(cluster::admin::ClusterArgs),
    /// Rebuild the lookup index (DATA/store/index) and the term postings of a stopped node from
    /// its entries (request ids are not in the entries: lost ones cannot be restored).
    Reindex {
        /// Data directory (of a stopped node).
        #[arg(long, env = "LEDGER_DATA", default_value = "ledger-data")]
        data: PathBuf,
    },
}

#[derive(Args, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct ServeArgs {
    /// TOML config file; flags and environment variables override it.
    #[arg(long, env = "LEDGER_CONFIG")]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Data directory.
    #[arg(long, env = "LEDGER_DATA")]
    data: Option<PathBuf>,
    /// gRPC listen address.
    #[arg(long, env = "LEDGER_LISTEN")]
    listen: Option<SocketAddr>,
    /// Prometheus metrics listen address ("off" to disable).
    #[arg(long, env = "LEDGER_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// Origin used when initializing an empty directory.
    #[arg(long, env = "LEDGER_ORIGIN")]
    origin: Option<String>,
    /// Periodic checkpoint interval in milliseconds.
    #[arg(long, env = "LEDGER_CHECKPOINT_INTERVAL_MS")]
    checkpoint_interval_ms: Option<u64>,
    /// Pending jobs before RESOURCE_EXHAUSTED.
    #[arg(long, env = "LEDGER_QUEUE_DEPTH")]
    queue_depth: Option<usize>,
    /// TLS certificate chain (PEM); enables TLS with --tls-key.
    #[arg(long, env = "LEDGER_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "LEDGER_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Log format: "text" or "json".
    #[arg(long, env = "LEDGER_LOG_FORMAT")]
    log_format: Option<String>,
    /// A witness to push checkpoints to: `URL=NAME+HASH+BASE64` (its cosignature key). Repeat,
    /// or comma-separate in the environment variable.
    #[arg(long = "witness", env = "LEDGER_WITNESSES", value_delimiter = ',')]
    witness: Vec<String>,
    /// How long Append with wait_for_checkpoint waits for a witnessed checkpoint (milliseconds).
    #[arg(long, env = "LEDGER_WITNESS_TIMEOUT_MS")]
    witness_timeout_ms: Option<u64>,
    /// Serve a non-empty store that has no high-water mark, creating the mark from the store's
    /// latest checkpoint (once, to upgrade a data directory made before marks; docs/operations.md).
    #[arg(long)]
    #[serde(skip)]
    adopt_store: bool,
    /// GetEntries streams open at once before RESOURCE_EXHAUSTED (default 64).
    #[arg(long, env = "LEDGER_MAX_STREAMS")]
    max_streams: Option<usize>,
    /// A GetEntries stream its client does not read for this long is closed (milliseconds,
    /// default 30000).
    #[arg(long, env = "LEDGER_STREAM_IDLE_MS")]
    stream_idle_ms: Option<u64>,
    /// Index terms one Query call examines before it ends its page early (default 10000).
    #[arg(long, env = "LEDGER_QUERY_SCAN_LIMIT")]
    query_scan_limit: Option<usize>,
    /// Largest Query answer with entries, in bytes (default 4 MiB).
    #[arg(long, env = "LEDGER_QUERY_MAX_BYTES")]
    query_max_bytes: Option<usize>,
    /// Read-only C2SP tlog-tiles HTTP listen address (default 127.0.0.1:8081; "off" to disable).
    #[arg(long, env = "LEDGER_TILES_LISTEN")]
    tiles_listen: Option<String>,
    /// An RFC 3161 time-stamping authority (`http://host:port/path`) to ask for a token over each
    /// new checkpoint. Repeat, or comma-separate in the environment variable.
    #[arg(long = "tsa", env = "LEDGER_TSA", value_delimiter = ',')]
    tsa: Vec<String>,
    /// At most one timestamp per TSA every this many seconds (default 0: every new checkpoint).
    #[arg(long, env = "LEDGER_TSA_INTERVAL")]
    tsa_interval: Option<u64>,
    /// The next node key (a key file as `ledger-node` writes `node.key`), placed by the operator
    /// before a planned rotation: the node co-signs a `node.rotate` to this key only, and signs
    /// with it from the record on (docs/registry.md, docs/operations.md).
    #[arg(long, env = "LEDGER_NEXT_NODE_KEY")]
    next_node_key: Option<PathBuf>,
    /// Cluster mode: this node's cluster file (TOML: id, Raft listen address, data directory,
    /// peers; docs/cluster.md). Without it the node is a single node, as before.
    #[arg(long, env = "LEDGER_CLUSTER")]
    cluster: Option<PathBuf>,
    /// Cluster mode: initialize the cluster with the file's peers as voters if this node's Raft
    /// was never initialized (on one node, once), proposing DATA/store's charter as the first
    /// entry (created with development keys if DATA/store does not exist).
    #[arg(long, requires = "cluster")]
    #[serde(skip)]
    cluster_init: bool,
    /// The store's page cache in MiB (default 128; docs/performance.md): what the node keeps of
    /// its store in memory beyond the fixed tile cache.
    #[arg(long, env = "LEDGER_CACHE_MB")]
    cache_mb: Option<u64>,
    /// Check the whole store at start-up: the `prev_root` chain of every entry (not only above
    /// the high-water mark) and every rated ticket against the ticket index (docs/operations.md).
    #[arg(long)]
    #[serde(skip)]
    full_check: bool,
}

impl ServeArgs {
    fn merged(self) -> Result<ServeArgs> {
        let Some(path) = &self.config else { return Ok(self) };
        let text = std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
        let file: ServeArgs = toml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))?;
        Ok(ServeArgs {
            config: self.config,
            data: self.data.or(file.data),
            listen: self.listen.or(file.listen),
            metrics_listen: self.metrics_listen.or(file.metrics_listen),
            origin: self.origin.or(file.origin),
            checkpoint_interval_ms: self.checkpoint_interval_ms.or(file.checkpoint_interval_ms),
            queue_depth: self.queue_depth.or(file.queue_depth),
            tls_cert: self.tls_cert.or(file.tls_cert),
            tls_key: self.tls_key.or(file.tls_key),
            log_format: self.log_format.or(file.log_format),
            witness: if self.witness.is_empty() {
                file.witness
            } else {
                self.witness
            },
            witness_timeout_ms: self.witness_timeout_ms.or(file.witness_timeout_ms),
            adopt_store: self.adopt_store,
            max_streams: self.max_streams.or(file.max_streams),
            stream_idle_ms: self.stream_idle_ms.or(file.stream_idle_ms),
            query_scan_limit: self.query_scan_limit.or(file.query_scan_limit),
            query_max_bytes: self.query_max_bytes.or(file.query_max_bytes),
            tiles_listen: self.tiles_listen.or(file.tiles_listen),
            tsa: if self.tsa.is_empty() { file.tsa } else { self.tsa },
            tsa_interval: self.tsa_interval.or(file.tsa_interval),
            next_node_key: self.next_node_key.or(file.next_node_key),
            cache_mb: self.cache_mb.or(file.cache_mb),
            full_check: self.full_check,
            cluster: self.cluster.or(file.cluster),
            cluster_init: self.cluster_init,
        })
    }
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if matches!(cli.cmd, Cmd::Serve(_)) {
        // Before any thread exists: glibc reads the arena limit once, at start (arenas.rs).
        arenas::limit();
    }
    let r = match cli.cmd {
        Cmd::Serve(a) => a.merged().and_then(|a| {
            init_tracing(a.log_format.as_deref() == Some("json"));
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(serve(a))
        }),
        Cmd::Init {
            data,
            origin,
            admin_keys,
            admin_quorum,
            witness_quorum,
        } => genesis::init(&data, &origin, &admin_keys, admin_quorum, witness_quorum),
        Cmd::Witness(a) => {
            init_tracing(false);
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(witness_run::run(a, shutdown_signal())))
        }
        Cmd::DebugFork { data, from } => fork::debug_fork(&data, from),
        Cmd::Cluster(a) => cluster::admin::run(a),
        Cmd::Backup(a) => backup::backup(&a),
        Cmd::Restore(a) => backup::restore(&a),
        Cmd::Export { data, out } => (|| {
            marks::refuse_unfinished_import(&data, "export")?;
            // The marks first: a running node writes a mark after its store group.
            let m = marks::read(&data)?;
            // The copy is reopened every few MiB of entries read, by the check and the export
            // (ledger_store::scan): memory does not grow with the log.
            let mut store = ledger_store::scan::Owned::new(Store::open_read_only_without_lookups(
                &genesis::Layout::new(&data).store,
            )?);
            marks::check_reopening(&mut store, &data, m, "export")?;
            let f = std::io::BufWriter::new(std::fs::File::create(&out)?);
            let budget = ledger_store::scan::scan_bytes(ledger_store::scan::EXPORT_SCAN_BYTES);
            let (n, c) = ledger_store::export::export_reopening(&mut store, f, budget)?;
            println!("exported {n} entries and {c} checkpoints to {}", out.display());
            Ok(())
        })(),
        Cmd::Reindex { data } => (|| {
            let store = Store::open(&genesis::Layout::new(&data).store)?;
            let n = store.reindex(None)?;
            println!("reindexed {n} entries in {}", data.display());
            Ok(())
        })(),
        Cmd::Import { data, input } => (|| {
            use ledger_store::scan::Reopen as _;
            let m = marks::read(&data)?;
            // The store is reopened every few MiB of entries written, and by the check of the marks
            // every few MiB read (ledger_store::scan): memory does not grow with the log.
            let mut store = ledger_store::scan::Owned::new(Store::open(&genesis::Layout::new(&data).store)?);
            let f = std::io::BufReader::new(std::fs::File::open(&input)?);
            // Killed half-way (the OOM killer, a power cut), the import leaves part of the log: its
            // marker, written before the first entry and removed only after the mark, makes
            // `serve`, `export`, `backup` and a second import refuse the directory until DATA/store
            // is deleted (docs/operations.md). A non-empty store is refused by the import itself.
            if store.store()?.size()? == 0 {
                ledger_store::high_water::begin_import(
                    &data,
                    &format!("ledger-node import --data {} --in {}", data.display(), input.display()),
                )?;
            } else {
                marks::refuse_unfinished_import(&data, "import into")?;
            }
            let budget = ledger_store::scan::scan_bytes(ledger_store::scan::NODE_SCAN_BYTES);
            let n = ledger_store::export::import_reopening(&mut store, f, budget)?;
            store.store()?.flush()?;
            // A restore: the imported log must hold the mark kept in DATA (if any).
            if m.0.is_some() || m.1.is_some() {
                marks::check_reopening(&mut store, &data, m, "import into").context(
                    "the imported log does not hold this directory's high-water mark; delete DATA/store and \
                     import a newer export",
                )?;
            }
            let size = marks::write_latest(store.store()?, &data)?;
            ledger_store::high_water::end_import(&data)?;
            println!(
                "imported and verified {n} entries into {} (high-water mark: checkpoint of {size})",
                data.display()
            );
            Ok(())
        })(),
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ledger-node: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `serve`'s options, with the defaults applied and checked.
struct ServeConfig {
    data: PathBuf,
    listen: SocketAddr,
    /// TLS certificate and key, PEM.
    tls: Option<(Vec<u8>, Vec<u8>)>,
    witnesses: Vec<witness_push::WitnessConfig>,
    queue_depth: usize,
}

/// Applies the defaults to `serve`'s options and checks them.
fn serve_config(a: &ServeArgs) -> Result<ServeConfig> {
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => Some((std::fs::read(c)?, std::fs::read(k)?)),
        (None, None) => None,
        _ => bail!("TLS needs both --tls-cert and --tls-key"),
    };
    let witnesses = a
        .witness
        .iter()
        .map(|w| w.parse::<witness_push::WitnessConfig>())
        .collect::<Result<Vec<_>>>()?;
    Ok(ServeConfig {
        data: a.data.clone().unwrap_or_else(|| PathBuf::from("ledger-data")),
        listen: a.listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 50051))),
        tls,
        witnesses,
        queue_depth: a.queue_depth.unwrap_or(4096),
    })
}

async fn serve(a: ServeArgs) -> Result<()> {
    tracing::info!(arenas = %arenas::describe(), "malloc arenas");
    if let Some(path) = a.cluster.clone() {
        return serve_cluster(a, &path).await;
    }
    let cfg = serve_config(&a)?;
    marks::refuse_unfinished_import(&cfg.data, "serve")?;
    // The port opens before the store is verified: until the node is ready, health says
    // NOT_SERVING and the Ledger service answers UNAVAILABLE (gate.rs). "listening on" is printed
    // once the node is ready. A stop signal during start-up ends the process at once.
    let metrics = Arc::new(metrics::Metrics::new(&cfg.data)?);
    let port = Port::open(cfg.listen, cfg.tls.as_ref(), &metrics).await?;
    // Scrapable while the store is verified (`ledger_sequencer_up` 0 until the sequencer runs).
    start_metrics(&a, &metrics).await;
    // Bound now (a bad address fails start-up), served once the node is ready.
    let tiles_listener = tiles::bind(a.tiles_listen.as_deref()).await?;
    let tiles_limits = tiles::Limits::from_env()?;
    hold_start_for_tests();
    let (store, checked, state) = open_store(&a, &cfg.data)?;
    let size = checked.report.size;
    let marks = (checked.mark, checked.witnessed);
    let (running, jobs) = start_sequencer(&a, &cfg, &store, size, marks, state, metrics, None)?;
    let svc = assemble_service(&a, cfg.witnesses, &store, &running, jobs, cfg.queue_depth)?;
    start_timestamps(&a, &cfg.data, &store, &running.shared, &port.ts_gate)?;
    if let Some(l) = tiles_listener {
        let at = l.local_addr()?;
        tokio::spawn(tiles::serve(l, store.clone(), tiles_limits));
        tracing::info!(addr = %at, "C2SP tlog-tiles (read-only) on http://{at}/checkpoint");
        println!("tiles on {at}");
    }
    port.run(svc, &running.shared, &running.origin, size).await?;
    tracing::info!("shutting down: finishing the current group");
    // The service (and its job sender) is dropped by now; the sequencer drains and exits.
    let thread = running.thread;
    tokio::task::spawn_blocking(move || thread.join()).await.ok();
    store.flush()?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// `serve --cluster FILE`: the node as a member of a Raft cluster (docs/cluster.md). Starts the
/// Raft and its service on the file's `listen`, waits for the log's charter (proposing the seed in
/// DATA/store when this node leads an empty cluster), then serves the public API as the single node
/// does: the leader's sequencer proposes each group through Raft; followers refuse appends naming
/// the leader and serve reads at their applied size.
async fn serve_cluster(a: ServeArgs, path: &std::path::Path) -> Result<()> {
    let ccfg = cluster::config::ClusterConfig::load(path).map_err(anyhow::Error::msg)?;
    if a.data.as_ref().is_some_and(|d| *d != ccfg.data) {
        bail!(
            "--data {} differs from the cluster file's data {}; give the data directory in one place",
            a.data.as_deref().unwrap_or(&ccfg.data).display(),
            ccfg.data.display()
        );
    }
    if !a.tsa.is_empty() {
        bail!("TSAs are not supported in cluster mode yet (docs/cluster.md)");
    }
    let mut cfg = serve_config(&a)?;
    cfg.data = ccfg.data.clone();
    marks::refuse_unfinished_import(&cfg.data, "serve")?;
    std::fs::create_dir_all(&cfg.data)?;
    let metrics = Arc::new(metrics::Metrics::new(&cfg.data)?);
    let port = Port::open(cfg.listen, cfg.tls.as_ref(), &metrics).await?;
    start_metrics(&a, &metrics).await;
    let tiles_listener = tiles::bind(a.tiles_listen.as_deref()).await?;
    let tiles_limits = tiles::Limits::from_env()?;
    let layout = genesis::Layout::new(&cfg.data);
    if a.cluster_init && !layout.store.exists() {
        let origin = a.origin.clone().unwrap_or_else(|| "ledger.localhost/dev".to_string());
        tracing::warn!(
            "{} holds no seed ledger: creating one with DEVELOPMENT keys (origin {origin:?}); copy its keys/node.key to every voter",
            cfg.data.display()
        );
        genesis::init(&cfg.data, &origin, &[], 1, 0)?;
    }
    if !layout.node_key.exists() {
        bail!(
            "{} is missing: every cluster node needs the log's node key, learners too (`ledger-node cluster add` \
             makes a caught-up learner a voter, which may lead and must sign); copy it from the seed (docs/cluster.md)",
            layout.node_key.display()
        );
    }
    let seed = seed_group(&layout.store)?;
    let (raft_stop, raft_stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = cluster::start(&ccfg, a.cluster_init, async {
        let _ = raft_stopped.await;
    })
    .await?;
    let view = handle.view.clone();
    // A line for scripts and tests that start the node on port 0.
    println!("raft on {}", handle.bound);
    wait_for_charter(&view, seed).await?;
    // The state machine folded the applied log when it opened (entries that break a rule were
    // logged there); the sequencer starts from a copy of that state.
    let (ct, _, store, state) = view.sm.applied_with_state()?;
    let size = ct.size();
    let state = state.context("the cluster's applied log has no valid charter")?;
    tracing::info!(size, "starting from the applied state");
    let raft_dir = cfg.data.join("raft");
    let latest = store.latest_checkpoint()?.map_or(0, |c| c.0);
    let marks = (
        ledger_store::high_water::HighWater::new(ledger_store::high_water::mark_path(&raft_dir), latest),
        ledger_store::high_water::HighWater::new(ledger_store::high_water::witnessed_path(&raft_dir), 0),
    );
    let (running, jobs) = start_sequencer(&a, &cfg, &store, size, marks, state, metrics, Some(view.clone()))?;
    tokio::spawn(follow_applied(view.clone(), running.shared.clone()));
    let svc = assemble_service(&a, cfg.witnesses, &store, &running, jobs, cfg.queue_depth)?;
    start_timestamps(&a, &cfg.data, &store, &running.shared, &port.ts_gate)?;
    if let Some(l) = tiles_listener {
        let at = l.local_addr()?;
        let source = Arc::new(cluster::AppliedTiles(view.clone()));
        tokio::spawn(tiles::serve(l, source, tiles_limits));
        tracing::info!(addr = %at, "C2SP tlog-tiles (read-only) on http://{at}/checkpoint");
        println!("tiles on {at}");
    }
    drop(store);
    port.run(svc, &running.shared, &running.origin, size).await?;
    tracing::info!("shutting down: finishing the current group");
    let thread = running.thread;
    tokio::task::spawn_blocking(move || thread.join()).await.ok();
    if let Err(e) = view.raft.shutdown().await {
        tracing::warn!(error = %e, "Raft shutdown");
    }
    let _ = raft_stop.send(());
    let _ = handle.server.await;
    view.sm.store()?.flush()?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// The first Raft entry of a new cluster: the charter in `store_dir` (a ledger made by
/// `ledger-node init`), or none when the directory does not exist. A seed with more than its
/// charter is refused (seeding a cluster from a running ledger is not supported yet).
fn seed_group(store_dir: &std::path::Path) -> Result<Option<ledger_raft::SequencedGroup>> {
    if !store_dir.exists() {
        return Ok(None);
    }
    let store = Store::open_read_only_without_lookups(store_dir)?;
    let size = store.size()?;
    if size == 0 {
        return Ok(None);
    }
    if size > 1 {
        bail!(
            "{} holds {size} entries: a cluster is seeded from a ledger holding only its charter (`ledger-node init`)",
            store_dir.display()
        );
    }
    let leaf = store.entry(0)?.context("the seed's charter is missing")?;
    let leaf_hash = ledger_core::hash::leaf_hash(&leaf);
    Ok(Some(ledger_raft::SequencedGroup {
        prev_root: ledger_core::compact::CompactTree::new().root(),
        entries: vec![ledger_raft::GroupEntry {
            index: 0,
            leaf,
            leaf_hash,
            request: None,
            terms: vec![(ledger_store::IndexTag::Kind.byte(), "charter".into())],
        }],
        new_size: 1,
    }))
}

/// Waits until this node has applied the log's first entry (the charter); a leader of an empty
/// cluster proposes `seed`. Logs once what it waits for.
async fn wait_for_charter(view: &cluster::ClusterView, seed: Option<ledger_raft::SequencedGroup>) -> Result<()> {
    let mut told = false;
    loop {
        if view.sm.applied_tree()?.size() > 0 {
            return Ok(());
        }
        if view.role().leader {
            match &seed {
                Some(g) => match view.raft.client_write(g.clone().into()).await {
                    Ok(r) => {
                        tracing::info!(outcome = ?r.data, "proposed the seed charter as the cluster's first entry")
                    }
                    Err(e) => tracing::warn!(error = %e, "proposing the seed charter"),
                },
                None if !told => tracing::warn!(
                    "this node leads an empty cluster and holds no seed: start the node that holds DATA/store \
                     (`ledger-node init`) or use --cluster-init"
                ),
                None => {}
            }
        } else if !told {
            tracing::info!("waiting for the cluster's first entry (the charter) from the leader");
        }
        told = true;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Cluster mode: keeps what the services read in step with the applied log — the durable size (a
/// follower's reads stop at it) and, on a follower, the latest checkpoint its store holds.
async fn follow_applied(view: Arc<cluster::ClusterView>, shared: Arc<sequencer::Shared>) {
    let mut m = view.raft.metrics();
    loop {
        let Ok(tree) = view.sm.applied_tree() else { return };
        shared.size.fetch_max(tree.size(), std::sync::atomic::Ordering::Relaxed);
        shared
            .metrics
            .set_tree_size(shared.size.load(std::sync::atomic::Ordering::Relaxed));
        if !view.role().leader
            && let Ok(store) = view.sm.store()
            && let Ok(Some(latest)) = store.latest_checkpoint()
            && latest.0 > shared.checkpoint.borrow().0
        {
            shared.checkpoint.send_replace(latest);
        }
        if m.changed().await.is_err() {
            return;
        }
    }
}

/// The gRPC server on its port, its Ledger service behind a gate until the node is ready.
struct Port {
    bound: SocketAddr,
    gate: gate::Gate<LedgerServer<service::LedgerService>>,
    /// The Timestamps service (RFC 3161 tokens), behind its own gate until the node is ready.
    ts_gate: gate::Gate<TimestampsServer<timestamps::TimestampsService>>,
    /// Set once the node is ready; a stop signal before that ends the process at once.
    ready: Arc<std::sync::atomic::AtomicBool>,
    health_reporter: tonic_health::server::HealthReporter,
    server: tokio::task::JoinHandle<std::result::Result<(), tonic::transport::Error>>,
}

impl Port {
    /// Binds `listen` and starts serving health (NOT_SERVING), reflection and the closed gate.
    /// Every service is wrapped in [`metrics::Measured`] (calls by status code, latency).
    async fn open(listen: SocketAddr, tls: Option<&(Vec<u8>, Vec<u8>)>, m: &Arc<metrics::Metrics>) -> Result<Self> {
        let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (health_reporter, health) = tonic_health::server::health_reporter();
        set_health(&health_reporter, false).await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(ledger_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        // v1alpha too, for older grpcurl, Evans and Python grpcio-reflection clients.
        let reflection_alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(ledger_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;
        let mut builder = tonic::transport::Server::builder();
        if let Some((cert, key)) = tls {
            let id = tonic::transport::Identity::from_pem(cert, key);
            builder = builder.tls_config(tonic::transport::ServerTlsConfig::new().identity(id))?;
            tracing::info!("TLS enabled");
        }
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let bound = listener.local_addr()?;
        // TCP_NODELAY on every connection, as tonic sets it on listeners it binds itself: without
        // it, HTTP/2 flow-control updates for a large request wait for the client's delayed ACK
        // (~40 ms).
        let incoming = tokio_stream::StreamExt::map(tokio_stream::wrappers::TcpListenerStream::new(listener), |s| {
            if let Ok(s) = &s {
                let _ = s.set_nodelay(true);
            }
            s
        });
        tracing::info!(addr = %bound, "gRPC port open; health NOT_SERVING until the store is verified");
        let gate = gate::Gate::<LedgerServer<service::LedgerService>>::new();
        let ts_gate = gate::Gate::<TimestampsServer<timestamps::TimestampsService>>::new();
        let stop = {
            let ready = ready.clone();
            async move {
                shutdown_signal().await;
                if !ready.load(std::sync::atomic::Ordering::SeqCst) {
                    tracing::warn!("stop signal during start-up: exiting before the node was ready");
                    std::process::exit(1);
                }
            }
        };
        let server = tokio::spawn(
            builder
                .add_service(metrics::Measured::new(health, m.clone()))
                .add_service(metrics::Measured::new(reflection, m.clone()))
                .add_service(metrics::Measured::new(reflection_alpha, m.clone()))
                .add_service(metrics::Measured::new(gate.clone(), m.clone()))
                .add_service(metrics::Measured::new(ts_gate.clone(), m.clone()))
                .serve_with_incoming_shutdown(incoming, stop),
        );
        Ok(Self {
            bound,
            gate,
            ts_gate,
            ready,
            health_reporter,
            server,
        })
    }

    /// Opens the gate to `svc` once the sequencer is up, lets health follow the sequencer, and
    /// serves until a stop signal.
    async fn run(self, svc: service::LedgerService, shared: &sequencer::Shared, origin: &str, size: u64) -> Result<()> {
        let Self {
            bound,
            gate,
            ts_gate,
            ready,
            health_reporter,
            server,
        } = self;
        // The sequencer has started (or already stopped) before the gate opens.
        let mut up = shared.up.subscribe();
        let first = *up.wait_for(Option::is_some).await?;
        gate.open(
            LedgerServer::new(svc)
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20),
        );
        drop(gate);
        drop(ts_gate);
        ready.store(true, std::sync::atomic::Ordering::SeqCst);
        // Health follows the sequencer: SERVING only while appends can succeed (docs/operations.md).
        set_health(&health_reporter, first == Some(true)).await;
        tokio::spawn(async move {
            while up.changed().await.is_ok() {
                let now = *up.borrow_and_update();
                set_health(&health_reporter, now == Some(true)).await;
            }
        });
        tracing::info!(addr = %bound, origin = %origin, size, "ledger node serving");
        // A line for scripts and tests that start the node on port 0.
        println!("listening on {bound}");
        server.await??;
        Ok(())
    }
}

/// Opens the store (initializing an empty data directory with development keys), checks it
/// against the high-water marks, and folds the state from it.
fn open_store(a: &ServeArgs, data: &std::path::Path) -> Result<(Arc<Store>, marks::Checked, LedgerState)> {
    let layout = genesis::Layout::new(data);
    let mut m = marks::read(data)?;
    let empty = { Store::open(&layout.store)?.size()? == 0 };
    // An empty store with a mark lost its whole log: refused by the mark check below, never
    // re-initialized.
    if empty && m.0.is_none() && m.1.is_none() {
        let origin = a.origin.clone().unwrap_or_else(|| "ledger.localhost/dev".to_string());
        tracing::warn!("**************************************************************************");
        tracing::warn!(
            "{} is empty: initializing with DEVELOPMENT keys (origin {origin:?}).",
            data.display()
        );
        tracing::warn!("Do not use this ledger for real records; run `ledger-node init` instead.");
        tracing::warn!("**************************************************************************");
        genesis::init(data, &origin, &[], 1, 0)?;
        m = marks::read(data)?;
    }
    let cache_mb = a.cache_mb.unwrap_or(ledger_store::NODE_CACHE_BYTES >> 20);
    if cache_mb == 0 || cache_mb > 1 << 20 {
        bail!("--cache-mb must be between 1 and 1048576 (MiB), got {cache_mb}");
    }
    // The check reopens the store every NODE_SCAN_BYTES of entries read, so the store is reached
    // through a slot until it ends (marks::Slot; ledger_store::scan).
    let slot = marks::Slot::new(Arc::new(Store::open_with_cache(&layout.store, cache_mb << 20)?));
    let mut scan = marks::SlotStore::new(&slot)?;
    // One pass: the store's check (the chain only above the high-water mark unless --full-check)
    // folds the state entry by entry (marks::Fold).
    let t = std::time::Instant::now();
    let mut fold = marks::Fold::new(&slot, a.full_check)?;
    // The signed state snapshot (snapshot.rs): the fold starts at its size N (not with
    // --full-check). A snapshot that fails a check is named and ignored; the whole log is folded.
    let keys = snapshot_keys(a, &layout.node_key);
    if !a.full_check {
        let verifying: Vec<_> = keys.iter().map(|k| k.verifying_key()).collect();
        match snapshot::load(data, &*slot.get()?, &verifying) {
            Ok(Some(l)) => fold.resume(l.state, l.size),
            Ok(None) => tracing::info!("no state snapshot: folding the whole log"),
            Err((r, why)) => tracing::warn!(
                "STATE_SNAPSHOT_REFUSED: {}: {why}; folding the whole log (the snapshot is only a cache)",
                r.as_str()
            ),
        }
    }
    let checked = marks::check_with(
        &mut scan,
        data,
        m,
        a.adopt_store,
        "serve",
        Some((&mut fold, a.full_check)),
    )?;
    let report = &checked.report;
    let verifying = t.elapsed().saturating_sub(fold.spent());
    tracing::info!(size = report.size, root = %report.root, checkpoints = report.checkpoints, chain_checked_from = checked.chain_from, reopens = scan.reopens(), ms = verifying.as_millis() as u64, "store verified");
    drop(scan);
    let store = slot.get()?;
    let from = fold.from();
    let (state, refused) = fold.finish(report.size, &report.root)?;
    let folding_ms = t.elapsed().saturating_sub(verifying).as_millis() as u64;
    if from > 0 {
        tracing::info!(
            size = report.size,
            refused,
            ms = folding_ms,
            "state folded from snapshot at {from} ({} entries folded, {folding_ms} ms)",
            report.size - from
        );
    } else {
        tracing::info!(size = report.size, refused, ms = folding_ms, "state folded");
    }
    if from != report.size {
        snapshot::write_or_warn(data, &store, &keys, report.size, &report.root, &state);
    }
    Ok((store, checked, state))
}

/// The node keys a state snapshot may be signed with: `node.key` and `--next-node-key` (those that
/// can be read; `start_sequencer` names a missing one).
fn snapshot_keys(a: &ServeArgs, node_key: &std::path::Path) -> Vec<ed25519_dalek::SigningKey> {
    std::iter::once(node_key)
        .chain(a.next_node_key.as_deref())
        .filter_map(|p| ledger_client::keyfile::read_signing_key(p).ok())
        .collect()
}

/// The running sequencer and what the services share with it.
struct Running {
    shared: Arc<sequencer::Shared>,
    thread: std::thread::JoinHandle<()>,
    origin: String,
}

/// Checks the node key against the charter and starts the sequencer thread on the folded state;
/// with the sender of its job queue (the sequencer drains and exits once it is dropped).
#[allow(clippy::too_many_arguments)]
fn start_sequencer(
    a: &ServeArgs,
    cfg: &ServeConfig,
    store: &Arc<Store>,
    size: u64,
    (high_water, witnessed_mark): (ledger_store::high_water::HighWater, ledger_store::high_water::HighWater),
    state: LedgerState,
    metrics: Arc<metrics::Metrics>,
    cluster: Option<Arc<cluster::ClusterView>>,
) -> Result<(Running, std::sync::mpsc::SyncSender<sequencer::Job>)> {
    let layout = genesis::Layout::new(&cfg.data);
    let cluster_mode = cluster.is_some();
    let every = snapshot::every_from_env()?;
    let registry = state.registry.clone();
    let (node_key, next_key) = node_keys(a, &layout.node_key, &registry)?;
    let origin = registry.charter.origin.clone();
    let signer = NoteSigner::new(&origin, node_key.clone())?;
    let latest = match (store.latest_checkpoint()?, &cluster) {
        (Some(l), _) => l,
        // A cluster follower holds no checkpoint before the leader's first reaches it.
        (None, Some(_)) => (0, String::new()),
        (None, None) => bail!("the store has no checkpoint"),
    };
    metrics.set_tree_size(size);
    metrics.start_checkpoint(latest.0);
    let (cp_tx, _) = tokio::sync::watch::channel(latest);
    let shared = Arc::new(sequencer::Shared {
        registry: std::sync::RwLock::new(registry),
        checkpoint: cp_tx,
        metrics,
        size: std::sync::atomic::AtomicU64::new(size),
        high_water,
        witnessed_mark,
        up: tokio::sync::watch::channel(None).0,
        cluster,
    });
    let (jobs, job_rx) = std::sync::mpsc::sync_channel(cfg.queue_depth);
    let seq = sequencer::Sequencer {
        store: store.clone(),
        signer,
        origin: origin.clone(),
        interval: Duration::from_millis(a.checkpoint_interval_ms.unwrap_or(500)),
        shared: shared.clone(),
        node_key,
        next_key,
        snapshot: (!cluster_mode).then(|| snapshot::Periodic::new(&cfg.data, every, size)),
    };
    let thread = std::thread::Builder::new()
        .name("sequencer".into())
        .spawn(move || seq.run(job_rx, state))?;
    let running = Running { shared, thread, origin };
    Ok((running, jobs))
}

/// The node key the log holds now (the charter's, or the last `node.rotate`'s), from `node.key`
/// or `--next-node-key`, and the next key, if one is placed for a rotation still to come.
fn node_keys(
    a: &ServeArgs,
    path: &std::path::Path,
    registry: &ledger_core::registry::Registry,
) -> Result<(ed25519_dalek::SigningKey, Option<ed25519_dalek::SigningKey>)> {
    let key = ledger_client::keyfile::read_signing_key(path)
        .with_context(|| format!("reading node key {}", path.display()))?;
    let next = match &a.next_node_key {
        Some(p) => Some(
            ledger_client::keyfile::read_signing_key(p)
                .with_context(|| format!("reading the next node key {}", p.display()))?,
        ),
        None => None,
    };
    if key.verifying_key() == registry.node_key {
        return Ok((key, next.filter(|n| n.verifying_key() != registry.node_key)));
    }
    if let Some(n) = next.filter(|n| n.verifying_key() == registry.node_key) {
        tracing::warn!(
            next = %a.next_node_key.as_deref().unwrap_or(path).display(),
            node_key = %path.display(),
            "the log's node key was rotated to the --next-node-key key; move that key file to the node key path"
        );
        return Ok((n, None));
    }
    let rotated = registry
        .keys
        .get(&ledger_core::keys::key_id(&key.verifying_key()))
        .and_then(|k| k.ended);
    if let Some((at, how)) = rotated
        && registry.node_keys.iter().any(|t| t.key == key.verifying_key())
    {
        bail!(
            "{} holds a node key that was {how} at index {at} (node.rotate or node.compromise); the log's node key is now {}: \
             place that key at {} or pass it with --next-node-key",
            path.display(),
            ledger_core::keys::key_id(&registry.node_key),
            path.display()
        );
    }
    bail!("{} is not the node key named in the charter", path.display());
}

/// Serves the metrics on their port (default 127.0.0.1:9464; "off": none); a port that cannot be
/// bound is logged, not fatal.
async fn start_metrics(a: &ServeArgs, metrics: &Arc<metrics::Metrics>) {
    let Some(m) = a
        .metrics_listen
        .as_deref()
        .or(Some("127.0.0.1:9464"))
        .filter(|m| *m != "off")
    else {
        return;
    };
    match tokio::net::TcpListener::bind(m).await {
        Ok(l) => {
            tracing::info!(addr = %m, "metrics on http://{m}/metrics");
            tokio::spawn(metrics::serve(l, metrics.clone()));
        }
        Err(e) => tracing::warn!(addr = %m, error = %e, "metrics listener not started"),
    }
}

/// Starts one RFC 3161 task per configured TSA and opens the Timestamps service's gate.
fn start_timestamps(
    a: &ServeArgs,
    data: &std::path::Path,
    store: &Arc<Store>,
    shared: &sequencer::Shared,
    ts_gate: &gate::Gate<TimestampsServer<timestamps::TimestampsService>>,
) -> Result<()> {
    let tsas = a
        .tsa
        .iter()
        .map(|u| u.parse::<timestamps::Tsa>())
        .collect::<Result<Vec<_>>>()?;
    for t in tsas {
        tracing::info!(tsa = %t.url, "asking for RFC 3161 timestamps over new checkpoints");
        tokio::spawn(timestamps::run(
            t,
            data.to_path_buf(),
            Duration::from_secs(a.tsa_interval.unwrap_or(0)),
            shared.checkpoint.subscribe(),
        ));
    }
    ts_gate.open(TimestampsServer::new(timestamps::TimestampsService {
        data: data.to_path_buf(),
        store: store.clone(),
    }));
    Ok(())
}

/// The Ledger service: witness pushing, the edge pool and the read limits around the sequencer.
fn assemble_service(
    a: &ServeArgs,
    witnesses: Vec<witness_push::WitnessConfig>,
    store: &Arc<Store>,
    running: &Running,
    jobs: std::sync::mpsc::SyncSender<sequencer::Job>,
    queue_depth: usize,
) -> Result<service::LedgerService> {
    let shared = &running.shared;
    let witnessed = Arc::new(witness_push::initial(
        store,
        shared,
        !witnesses.is_empty(),
        Duration::from_millis(a.witness_timeout_ms.unwrap_or(10_000)),
    )?);
    if !witnesses.is_empty() {
        tracing::info!(
            witnesses = witnesses.len(),
            quorum = witnessed.quorum,
            "pushing checkpoints to witnesses"
        );
        tokio::spawn(witness_push::run(
            store.clone(),
            shared.clone(),
            witnessed.clone(),
            witnesses,
        ));
    }
    let edge = Arc::new(edge::EdgePool::per_core(queue_depth));
    tracing::info!(
        threads = edge.workers(),
        queue = edge.queue(),
        "edge checks (signatures, payloads) on a bounded pool"
    );
    Ok(service::LedgerService {
        appends: service::append_checks(&edge, shared.clone()),
        store: store.clone(),
        shared: shared.clone(),
        jobs,
        witnessed,
        edge,
        readers: Arc::new(readers::Readers::new(readers::ReadLimits {
            max_streams: a.max_streams.unwrap_or(readers::DEFAULT_MAX_STREAMS),
            stream_idle: a
                .stream_idle_ms
                .map_or(readers::DEFAULT_STREAM_IDLE, Duration::from_millis),
            query_scan: a.query_scan_limit.unwrap_or(readers::DEFAULT_QUERY_SCAN),
            query_bytes: a.query_max_bytes.unwrap_or(readers::DEFAULT_QUERY_BYTES),
        })),
    })
}

/// Fault-injection switch for tests: `LEDGER_FAULT_INJECT=hold-start:PATH` holds start-up (port
/// open, not ready) until PATH exists, at most 60 s, so a test can observe a node that is still
/// starting. Honoured only when set (docs/operations.md).
fn hold_start_for_tests() {
    let Ok(v) = std::env::var(sequencer::FAULT_INJECT_ENV) else {
        return;
    };
    let Some(path) = v.strip_prefix("hold-start:") else {
        return;
    };
    tracing::warn!(
        path,
        "{}=hold-start: start-up held until the file exists (fault injection for tests)",
        sequencer::FAULT_INJECT_ENV
    );
    let t = std::time::Instant::now();
    while !std::path::Path::new(path).exists() && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Health of the Ledger service and of the server as a whole ("").
async fn set_health(r: &tonic_health::server::HealthReporter, serving: bool) {
    let status = if serving {
        tonic_health::ServingStatus::Serving
    } else {
        tonic_health::ServingStatus::NotServing
    };
    r.set_service_status(
        <LedgerServer<service::LedgerService> as tonic::server::NamedService>::NAME,
        status,
    )
    .await;
    r.set_service_status("", status).await;
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(t) => t,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
