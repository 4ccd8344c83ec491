//! Prometheus metrics (the `prometheus` crate), served over plain HTTP in the text exposition
//! format 0.0.4. Every family is listed in docs/operations.md ("Metrics").
//!
//! The sequencer and writer record groups, flushes, checkpoints and refusals; [`Measured`] wraps
//! each gRPC service and records every call (count by status code, latency); a scrape samples
//! the gauges that are cheaper to read than to keep (checkpoint age, store bytes, process).

use anyhow::Result;
use prometheus::{
    Encoder as _, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Context, Poll, Service, http};
use tonic::server::NamedService;

/// Latency buckets (seconds): 0.5 ms .. 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The node's metrics and the registry that exposes them.
pub struct Metrics {
    registry: Registry,
    /// The data directory whose size `ledger_store_bytes` reports.
    data: PathBuf,
    appends: IntCounter,
    duplicates: IntCounter,
    groups: IntCounter,
    flush_seconds: Histogram,
    group_size: Histogram,
    commit_groups: Histogram,
    edge_appends: Histogram,
    tree_size: IntGauge,
    checkpoints: IntCounter,
    checkpoint_size: IntGauge,
    /// Unix time (ms) at which the latest checkpoint was signed (start-up time for one signed by
    /// an earlier run).
    checkpoint_at_ms: AtomicU64,
    checkpoint_age: prometheus::Gauge,
    sequencer_up: IntGauge,
    queue_depth: IntGauge,
    enqueued: AtomicU64,
    dequeued: AtomicU64,
    rejections: IntCounterVec,
    witness_lag: IntGaugeVec,
    witness_failures: IntCounterVec,
    store_bytes: IntGauge,
    rpc_handled: IntCounterVec,
    rpc_seconds: HistogramVec,
    process: Process,
}

/// Process metrics read from /proc on each scrape (Linux; elsewhere they stay 0).
struct Process {
    cpu: prometheus::Counter,
    rss: IntGauge,
    vsize: IntGauge,
    open_fds: IntGauge,
    max_fds: IntGauge,
    start: prometheus::Gauge,
}

fn reg<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> Result<C> {
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn counter(r: &Registry, name: &str, help: &str) -> Result<IntCounter> {
    reg(r, IntCounter::new(name, help)?)
}

fn gauge(r: &Registry, name: &str, help: &str) -> Result<IntGauge> {
    reg(r, IntGauge::new(name, help)?)
}

fn fgauge(r: &Registry, name: &str, help: &str) -> Result<prometheus::Gauge> {
    reg(r, prometheus::Gauge::new(name, help)?)
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> Result<IntCounterVec> {
    reg(r, IntCounterVec::new(Opts::new(name, help), labels)?)
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Result<Histogram> {
    reg(
        r,
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))?,
    )
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Metrics {
    /// All families, registered; `data` is the data directory (for `ledger_store_bytes`).
    pub fn new(data: &Path) -> Result<Self> {
        let r = Registry::new();
        let group_buckets = prometheus::exponential_buckets(1.0, 2.0, 14)?;
        let m = Metrics {
            data: data.to_path_buf(),
            appends: counter(&r, "ledger_appends_total", "Entries appended (durable).")?,
            duplicates: counter(
                &r,
                "ledger_duplicate_appends_total",
                "Appends answered from an earlier request id.",
            )?,
            groups: counter(&r, "ledger_groups_total", "Groups committed (one flush each).")?,
            flush_seconds: histogram(
                &r,
                "ledger_flush_seconds",
                "Latency of one group commit (store write and fsync), in seconds.",
                LATENCY_BUCKETS.to_vec(),
            )?,
            group_size: histogram(
                &r,
                "ledger_group_size_entries",
                "Entries per committed group.",
                group_buckets,
            )?,
            commit_groups: histogram(
                &r,
                "ledger_commit_groups",
                "Sequenced groups written together in one commit (one store batch and flush).",
                prometheus::exponential_buckets(1.0, 2.0, 5)?,
            )?,
            edge_appends: histogram(
                &r,
                "ledger_edge_append_job_size",
                "Single Appends checked together in one edge job (one signature batch).",
                prometheus::exponential_buckets(1.0, 2.0, 7)?,
            )?,
            tree_size: gauge(&r, "ledger_tree_size", "Entries in the log.")?,
            checkpoints: counter(&r, "ledger_checkpoints_total", "Checkpoints signed.")?,
            checkpoint_size: gauge(
                &r,
                "ledger_checkpoint_size",
                "Tree size of the latest signed checkpoint.",
            )?,
            checkpoint_at_ms: AtomicU64::new((now_secs() * 1000.0) as u64),
            checkpoint_age: fgauge(
                &r,
                "ledger_checkpoint_age_seconds",
                "Seconds since the latest checkpoint was signed (since start-up for one signed by an earlier run).",
            )?,
            sequencer_up: gauge(
                &r,
                "ledger_sequencer_up",
                "1 while appends can succeed (sequencer and writer running), 0 once they stopped.",
            )?,
            queue_depth: gauge(
                &r,
                "ledger_sequencer_queue_depth",
                "Append jobs queued for the sequencer and not yet taken.",
            )?,
            enqueued: AtomicU64::new(0),
            dequeued: AtomicU64::new(0),
            rejections: counter_vec(
                &r,
                "ledger_rejections_total",
                "Appends refused, by gRPC code.",
                &["code"],
            )?,
            witness_lag: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "ledger_witness_lag_entries",
                        "Entries between the latest checkpoint pushed and the size the witness last cosigned.",
                    ),
                    &["witness"],
                )?,
            )?,
            witness_failures: counter_vec(
                &r,
                "ledger_witness_push_failures_total",
                "Checkpoint pushes a witness did not cosign (error, timeout, bad answer).",
                &["witness"],
            )?,
            store_bytes: gauge(
                &r,
                "ledger_store_bytes",
                "Bytes on disk under the data directory (sampled at scrape).",
            )?,
            rpc_handled: counter_vec(
                &r,
                "grpc_server_handled_total",
                "gRPC calls completed, by method and status code.",
                &["grpc_service", "grpc_method", "grpc_code"],
            )?,
            rpc_seconds: reg(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "grpc_server_handling_seconds",
                        "gRPC call latency until its status is sent (a stream: until it ends), in seconds.",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
                    &["grpc_service", "grpc_method"],
                )?,
            )?,
            process: Process::register(&r)?,
            registry: r,
        };
        m.process.start.set(process_start().unwrap_or_else(now_secs));
        Ok(m)
    }

    /// A group of `entries` entries is durable after a flush of `flush`.
    pub fn group_committed(&self, entries: usize, flush: Duration) {
        self.flush_seconds.observe(flush.as_secs_f64());
        self.groups.inc();
        self.appends.inc_by(entries as u64);
        if entries > 0 {
            self.group_size.observe(entries as f64);
        }
    }

    /// One commit wrote `groups` sequenced groups together (single node: the groups that waited
    /// while the writer was busy).
    pub fn commit_groups(&self, groups: usize) {
        self.commit_groups.observe(groups as f64);
    }

    /// One edge job checked `n` concurrent single Appends together.
    pub fn edge_appends(&self, n: usize) {
        self.edge_appends.observe(n as f64);
    }

    /// The log now holds `size` entries.
    pub fn set_tree_size(&self, size: u64) {
        self.tree_size.set(i64::try_from(size).unwrap_or(i64::MAX));
    }

    /// A checkpoint of `size` is signed and durable.
    pub fn checkpoint_signed(&self, size: u64) {
        self.checkpoints.inc();
        self.checkpoint_size.set(i64::try_from(size).unwrap_or(i64::MAX));
        self.checkpoint_at_ms.store((now_secs() * 1000.0) as u64, Relaxed);
    }

    /// The size of the checkpoint found in the store at start-up.
    pub fn start_checkpoint(&self, size: u64) {
        self.checkpoint_size.set(i64::try_from(size).unwrap_or(i64::MAX));
    }

    /// Whether appends can succeed (`ledger_sequencer_up`).
    pub fn set_up(&self, up: bool) {
        self.sequencer_up.set(i64::from(up));
    }

    /// An append answered from an earlier request id.
    pub fn duplicate(&self) {
        self.duplicates.inc();
    }

    /// Counts a refused state step under its gRPC code (`errors::step_code`).
    pub fn reject_step(&self, e: &ledger_core::state::StepError) {
        self.reject(crate::errors::step_code(e));
    }

    /// Counts a rejection.
    pub fn reject(&self, code: tonic::Code) {
        self.rejections.with_label_values(&[code_name(code)]).inc();
    }

    /// A job entered the sequencer's queue.
    pub fn queued(&self) {
        self.enqueued.fetch_add(1, Relaxed);
    }

    /// The sequencer took `n` jobs from its queue.
    pub fn dequeued(&self, n: usize) {
        self.dequeued.fetch_add(n as u64, Relaxed);
    }

    /// After a push of the checkpoint of `size`: the witness `name` has cosigned `held` entries
    /// (`ok`: it cosigned this push).
    pub fn witness_pushed(&self, name: &str, size: u64, held: u64, ok: bool) {
        let lag = i64::try_from(size.saturating_sub(held)).unwrap_or(i64::MAX);
        self.witness_lag.with_label_values(&[name]).set(lag);
        let failures = self.witness_failures.with_label_values(&[name]);
        if !ok {
            failures.inc();
        }
    }

    /// Text exposition, sampling the scrape-time gauges first.
    pub fn render(&self) -> String {
        let at = self.checkpoint_at_ms.load(Relaxed) as f64 / 1000.0;
        self.checkpoint_age.set((now_secs() - at).max(0.0));
        self.store_bytes
            .set(i64::try_from(dir_bytes(&self.data)).unwrap_or(i64::MAX));
        self.process.sample();
        // Taken before counted as queued is possible for an instant: never below 0.
        let (deq, enq) = (self.dequeued.load(Relaxed), self.enqueued.load(Relaxed));
        self.queue_depth
            .set(i64::try_from(enq.saturating_sub(deq)).unwrap_or(i64::MAX));
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "cannot encode the metrics");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }

    fn rpc_done(&self, path: &str, code: tonic::Code, started: Instant) {
        let (service, mut method) = split_path(path);
        // A method the service does not have: one label value for all, so that calls to made-up
        // names cannot add series without bound.
        if code == tonic::Code::Unimplemented {
            method = "unknown";
        }
        self.rpc_seconds
            .with_label_values(&[service, method])
            .observe(started.elapsed().as_secs_f64());
        self.rpc_handled
            .with_label_values(&[service, method, code_name(code)])
            .inc();
    }
}

/// The gRPC code's name as gRPC's own implementations print it (`OK`, `Canceled`,
/// `InvalidArgument`, ...), the `grpc_code` values dashboards for other gRPC servers expect.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

/// `/pkg.Service/Method` as (`pkg.Service`, `Method`); anything else as ("unknown", "unknown")
/// so that a client cannot create label values at will.
fn split_path(path: &str) -> (&str, &str) {
    let p = path.strip_prefix('/').unwrap_or(path);
    match p.split_once('/') {
        Some((s, m))
            if !s.is_empty()
                && !m.is_empty()
                && !m.contains('/')
                && s.len() + m.len() <= 128
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'/') =>
        {
            (s, m)
        }
        _ => ("unknown", "unknown"),
    }
}

/// Bytes of the regular files under `dir` (recursively; symbolic links are not followed).
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// Clock ticks per second of /proc/self/stat's times (USER_HZ, 100 on every Linux platform
/// that the node is built for).
const TICKS: f64 = 100.0;

/// Fields of /proc/self/stat after the command name (field 3 onwards).
fn proc_stat() -> Option<Vec<String>> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

fn process_start() -> Option<f64> {
    let f = proc_stat()?;
    let start_ticks: f64 = f.get(19)?.parse().ok()?;
    let btime: f64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(btime + start_ticks / TICKS)
}

impl Process {
    /// The `process_*` families, registered in `r`.
    fn register(r: &Registry) -> Result<Self> {
        Ok(Process {
            cpu: reg(
                r,
                prometheus::Counter::new(
                    "process_cpu_seconds_total",
                    "User and system CPU time spent, in seconds.",
                )?,
            )?,
            rss: gauge(r, "process_resident_memory_bytes", "Resident memory size in bytes.")?,
            vsize: gauge(r, "process_virtual_memory_bytes", "Virtual memory size in bytes.")?,
            open_fds: gauge(r, "process_open_fds", "Open file descriptors.")?,
            max_fds: gauge(r, "process_max_fds", "Limit on open file descriptors.")?,
            start: fgauge(
                r,
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch, in seconds.",
            )?,
        })
    }

    fn sample(&self) {
        if let Some(f) = proc_stat() {
            let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            // utime and stime are fields 14 and 15, at 11 and 12 after the command name.
            let d = (t(11) + t(12)) / TICKS - self.cpu.get();
            if d > 0.0 {
                self.cpu.inc_by(d);
            }
            self.vsize.set(t(20) as i64);
        }
        if let Ok(s) = std::fs::read_to_string("/proc/self/status")
            && let Some(kb) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        {
            self.rss.set(kb * 1024);
        }
        if let Ok(rd) = std::fs::read_dir("/proc/self/fd") {
            // The directory handle that lists them is one of them.
            self.open_fds.set((rd.count() as i64 - 1).max(0));
        }
        if let Ok(s) = std::fs::read_to_string("/proc/self/limits")
            && let Some(n) = s
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse::<i64>().ok())
        {
            self.max_fds.set(n);
        }
    }
}

/// A gRPC service wrapped so that each call is counted by status code and timed.
pub struct Measured<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S: Clone> Clone for Measured<S> {
    fn clone(&self) -> Self {
        Measured {
            inner: self.inner.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

impl<S> Measured<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, metrics: Arc<Metrics>) -> Self {
        Measured { inner, metrics }
    }
}

impl<S: NamedService> NamedService for Measured<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for Measured<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let started = Instant::now();
        let path = req.uri().path().to_owned();
        let metrics = self.metrics.clone();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            // A trailers-only answer (every refusal) carries the code in its headers; otherwise it
            // comes in the trailers at the end of the body.
            let (parts, body) = resp.into_parts();
            match grpc_code(&parts.headers) {
                Some(code) => {
                    metrics.rpc_done(&path, code, started);
                    Ok(http::Response::from_parts(parts, body))
                }
                None => {
                    let body = Body::new(Counted {
                        inner: body,
                        done: Some((metrics, path, started)),
                    });
                    Ok(http::Response::from_parts(parts, body))
                }
            }
        })
    }
}

fn grpc_code(h: &http::HeaderMap) -> Option<tonic::Code> {
    let v = h.get("grpc-status")?;
    Some(tonic::Code::from_bytes(v.as_bytes()))
}

/// A response body that records its call when its trailers pass (or when it ends or is dropped
/// without them: counted `Unknown`, or `Cancelled` if the client went away).
struct Counted {
    inner: Body,
    done: Option<(Arc<Metrics>, String, Instant)>,
}

impl Counted {
    fn finish(&mut self, code: tonic::Code) {
        if let Some((m, path, started)) = self.done.take() {
            m.rpc_done(&path, code, started);
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.finish(tonic::Code::Cancelled);
    }
}

impl hyper::body::Body for Counted {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(code) = f.trailers_ref().and_then(grpc_code) {
                    self.finish(code);
                }
            }
            Poll::Ready(Some(Err(s))) => {
                let code = s.code();
                self.finish(code);
            }
            Poll::Ready(None) => self.finish(tonic::Code::Unknown),
            Poll::Pending => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `GET /metrics` (any path) until the listener fails.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let m = metrics.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let _ = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf)).await;
            let body = m.render();
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                prometheus::TEXT_FORMAT,
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_bounded_labels() {
        assert_eq!(split_path("/ledger.v1.Ledger/Append"), ("ledger.v1.Ledger", "Append"));
        assert_eq!(split_path("/x/y/z"), ("unknown", "unknown"));
        assert_eq!(split_path("/a b/c"), ("unknown", "unknown"));
        assert_eq!(split_path("/"), ("unknown", "unknown"));
    }

    #[test]
    fn groups_and_refusals_are_counted() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("f"), [0u8; 1000]).expect("write");
        let m = Metrics::new(dir.path()).expect("metrics");
        m.group_committed(3, Duration::from_millis(2));
        m.reject(tonic::Code::InvalidArgument);
        let s = m.render();
        assert!(s.contains("ledger_appends_total 3\n"), "{s}");
        assert!(s.contains("ledger_group_size_entries_count 1\n"), "{s}");
        assert!(
            s.contains("ledger_rejections_total{code=\"InvalidArgument\"} 1\n"),
            "{s}"
        );
        assert!(s.contains("ledger_store_bytes 1000\n"), "{s}");
    }
}
