//! Prometheus metrics over plain HTTP (text exposition format 0.0.4).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Counters and gauges of the node.
#[derive(Default)]
pub struct Metrics {
    /// Entries appended.
    pub appends: AtomicU64,
    /// Duplicate (idempotent) answers.
    pub duplicates: AtomicU64,
    /// Groups committed.
    pub groups: AtomicU64,
    /// Flush latency sum in microseconds.
    pub flush_micros_sum: AtomicU64,
    /// Largest group.
    pub group_max: AtomicU64,
    /// Tree size.
    pub tree_size: AtomicU64,
    /// Checkpoints signed.
    pub checkpoints: AtomicU64,
    /// 1 while the sequencer and its writer can append, 0 once they stopped (storage failure,
    /// shutdown) or before they started.
    pub sequencer_up: AtomicU64,
    /// Rejections by reason (gRPC code name).
    pub rejections: Mutex<std::collections::BTreeMap<String, u64>>,
}

impl Metrics {
    /// Counts a rejection.
    pub fn reject(&self, code: tonic::Code) {
        if let Ok(mut m) = self.rejections.lock() {
            *m.entry(format!("{code:?}")).or_default() += 1;
        }
    }

    /// Counts a refused state step under its gRPC code (`errors::step_code`).
    pub fn reject_step(&self, e: &ledger_core::state::StepError) {
        self.reject(crate::errors::step_code(e));
    }

    /// Text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let mut c = |name: &str, help: &str, kind: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        c(
            "ledger_appends_total",
            "Entries appended.",
            "counter",
            self.appends.load(Relaxed),
        );
        c(
            "ledger_duplicate_appends_total",
            "Appends answered from an earlier request id.",
            "counter",
            self.duplicates.load(Relaxed),
        );
        c(
            "ledger_groups_total",
            "Groups committed (one flush each).",
            "counter",
            self.groups.load(Relaxed),
        );
        c(
            "ledger_flush_seconds_sum_micros",
            "Sum of group flush latencies in microseconds.",
            "counter",
            self.flush_micros_sum.load(Relaxed),
        );
        c(
            "ledger_group_size_max",
            "Largest group committed.",
            "gauge",
            self.group_max.load(Relaxed),
        );
        c(
            "ledger_tree_size",
            "Entries in the log.",
            "gauge",
            self.tree_size.load(Relaxed),
        );
        c(
            "ledger_checkpoints_total",
            "Checkpoints signed.",
            "counter",
            self.checkpoints.load(Relaxed),
        );
        c(
            "ledger_sequencer_up",
            "1 while appends can succeed (sequencer and writer running), 0 once they stopped.",
            "gauge",
            self.sequencer_up.load(Relaxed),
        );
        let _ = writeln!(
            s,
            "# HELP ledger_rejections_total Appends refused, by gRPC code.\n# TYPE ledger_rejections_total counter"
        );
        if let Ok(m) = self.rejections.lock() {
            for (k, v) in m.iter() {
                let _ = writeln!(s, "ledger_rejections_total{{code=\"{k}\"}} {v}");
            }
        }
        s
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
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), sock.read(&mut buf)).await;
            let body = m.render();
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
        });
    }
}
