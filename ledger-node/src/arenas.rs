//! glibc's malloc settings for a serving node.
//!
//! glibc gives each thread that allocates under contention an arena of its own, up to eight per
//! core, and keeps the memory freed in each arena for later use by the same arena; and it raises
//! its mmap threshold as large blocks are freed, so later large buffers fragment the heap. A
//! serving node allocates on many threads (gRPC workers, edge pool, sequencer, writer, index), so
//! its resident memory creeps up with the log even though its live heap does not: 168 → 214 MiB
//! from 1M to 10M entries with glibc's defaults, 135 → 151 MiB (144–151 MiB from 2M) with the two
//! settings below, at no measurable Append cost (docs/performance.md, "Node memory at 10M entries,
//! the node's own malloc settings").
//!
//! glibc reads `MALLOC_ARENA_MAX` once, when the process starts, and the workspace forbids
//! `unsafe` (so no `mallopt`): `serve` therefore executes itself again, once, with
//! `MALLOC_ARENA_MAX=2` and `MALLOC_MMAP_THRESHOLD_=131072` ([`DEFAULTS`]) where the operator has
//! set neither the variable nor the glibc tunable of the same setting. Same process id, arguments,
//! environment otherwise and open descriptors; an operator who wants other values sets them
//! (docs/operations.md).

/// The glibc malloc settings `serve` runs with unless the operator chose them: (environment
/// variable, value, the glibc tunable that sets the same).
pub const DEFAULTS: [(&str, &str, &str); 2] = [
    // Two arenas: freed memory is reused by every thread instead of kept per arena.
    ("MALLOC_ARENA_MAX", "2", "glibc.malloc.arena_max"),
    // Allocations of 128 KiB and more always mapped on their own and unmapped when freed: glibc
    // otherwise raises this threshold as large blocks are freed (up to 32 MiB), and the large
    // buffers of batches and store pages then fragment the heap for good.
    ("MALLOC_MMAP_THRESHOLD_", "131072", "glibc.malloc.mmap_threshold"),
];

/// Whether the operator (or an earlier execution of [`limit`]) chose a setting: its variable is
/// set, or `GLIBC_TUNABLES` names its tunable.
fn chosen(var: Option<std::ffi::OsString>, tunables: Option<&std::ffi::OsString>, tunable: &str) -> bool {
    var.is_some()
        || tunables.is_some_and(|t| {
            t.to_string_lossy()
                .split([':', ','])
                .any(|s| s.split_once('=').is_some_and(|(name, _)| name == tunable))
        })
}

/// The settings of [`DEFAULTS`] nobody chose.
fn missing() -> Vec<(&'static str, &'static str)> {
    let tunables = std::env::var_os("GLIBC_TUNABLES");
    DEFAULTS
        .iter()
        .filter(|(var, _, tunable)| !chosen(std::env::var_os(var), tunables.as_ref(), tunable))
        .map(|(var, value, _)| (*var, *value))
        .collect()
}

/// Executes this program again with the settings of [`DEFAULTS`] nobody chose. Returns only when
/// all were chosen, on a platform other than Linux with glibc, or when the execution failed (said
/// on stderr; the node then runs with glibc's defaults).
pub fn limit() {
    let missing = missing();
    if !missing.is_empty() {
        reexec(&missing);
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn reexec(settings: &[(&str, &str)]) {
    use std::os::unix::process::CommandExt as _;
    let mut args = std::env::args_os();
    // /proc/self/exe names this very program even if its file was replaced or removed since.
    let mut cmd = std::process::Command::new("/proc/self/exe");
    if let Some(arg0) = args.next() {
        cmd.arg0(arg0);
    }
    let err = cmd.args(args).envs(settings.iter().copied()).exec();
    eprintln!(
        "ledger-node: could not execute itself again with {settings:?} ({err}); running with glibc's default \
         malloc settings (memory may grow with the log; docs/operations.md)"
    );
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn reexec(_: &[(&str, &str)]) {}

/// The running node's malloc settings, for its start-up log line.
pub fn describe() -> String {
    let mut v: Vec<String> = DEFAULTS
        .iter()
        .map(|(var, _, _)| *var)
        .chain(["GLIBC_TUNABLES"])
        .filter_map(|k| std::env::var(k).ok().map(|v| format!("{k}={v}")))
        .collect();
    if v.is_empty() {
        v.push("glibc defaults".into());
    }
    v.join(" ")
}

#[cfg(test)]
mod tests {
    use super::chosen;

    #[test]
    fn a_setting_is_chosen_by_its_variable_or_its_tunable_only() {
        let t = |s: &str| Some(std::ffi::OsString::from(s));
        let arena = "glibc.malloc.arena_max";
        assert!(!chosen(None, None, arena));
        assert!(chosen(Some("8".into()), None, arena));
        assert!(chosen(Some("".into()), None, arena));
        assert!(chosen(None, t("glibc.malloc.arena_max=4").as_ref(), arena));
        assert!(chosen(
            None,
            t("glibc.malloc.trim_threshold=1:glibc.malloc.arena_max=4").as_ref(),
            arena
        ));
        assert!(!chosen(None, t("glibc.malloc.trim_threshold=131072").as_ref(), arena));
        assert!(!chosen(None, t("glibc.malloc.arena_test=4").as_ref(), arena));
        assert!(!chosen(
            None,
            t("glibc.malloc.arena_max=4").as_ref(),
            "glibc.malloc.mmap_threshold"
        ));
    }
}
