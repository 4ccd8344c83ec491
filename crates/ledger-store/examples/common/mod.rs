//! Helpers shared by the ledger-store examples: the scratch directory a measured store lives in,
//! and the process's resident memory.

/// A fresh directory named `PREFIX…` in the working directory, removed when dropped.
pub fn scratch_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(".")
        .expect("scratch directory")
}

/// The resident memory of this process, KiB (0 when /proc cannot be read).
pub fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
