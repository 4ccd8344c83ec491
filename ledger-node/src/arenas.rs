//! glibc's malloc arenas for a serving node.
//!
//! glibc gives each thread that allocates under contention an arena of its own, up to eight per
//! core, and keeps the memory freed in each arena for later use by the same arena. A serving node
//! allocates on many threads (gRPC workers, edge pool, sequencer, writer, index), so its resident
//! memory creeps up with the log even though its live heap does not (docs/performance.md "Node
//! memory at 10M entries again": 168 → 214 MiB from 1M to 10M entries with the default, 151 →
//! 168 MiB and flat from 2M with two arenas, at no measurable Append cost).
//!
//! glibc reads `MALLOC_ARENA_MAX` once, when the process starts, and the workspace forbids
//! `unsafe` (so no `mallopt`): `serve` therefore executes itself again, once, with
//! `MALLOC_ARENA_MAX=2` when the operator has set neither that variable nor a glibc tunable for
//! it. Same process id, arguments, environment otherwise and open descriptors; an operator who
//! wants another value sets it (docs/operations.md).

/// The value `serve` runs with unless the operator chose one.
pub const DEFAULT: &str = "2";

/// Whether the operator (or an earlier execution of this function) chose the arena limit.
fn chosen(var: Option<std::ffi::OsString>, tunables: Option<std::ffi::OsString>) -> bool {
    var.is_some()
        || tunables.is_some_and(|t| {
            t.to_string_lossy()
                .split([':', ','])
                .any(|s| s.starts_with("glibc.malloc.arena_max="))
        })
}

/// Executes this program again with `MALLOC_ARENA_MAX=2` unless the arena limit was chosen.
/// Returns only when it was chosen, on a platform other than Linux with glibc, or when the
/// execution failed (said on stderr; the node then runs with glibc's default arenas).
pub fn limit() {
    if chosen(std::env::var_os("MALLOC_ARENA_MAX"), std::env::var_os("GLIBC_TUNABLES")) {
        return;
    }
    reexec();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn reexec() {
    use std::os::unix::process::CommandExt as _;
    let mut args = std::env::args_os();
    // /proc/self/exe names this very program even if its file was replaced or removed since.
    let mut cmd = std::process::Command::new("/proc/self/exe");
    if let Some(arg0) = args.next() {
        cmd.arg0(arg0);
    }
    let err = cmd.args(args).env("MALLOC_ARENA_MAX", DEFAULT).exec();
    eprintln!(
        "ledger-node: could not execute itself again with MALLOC_ARENA_MAX={DEFAULT} ({err}); running with \
         glibc's default malloc arenas (memory may grow with the log; set MALLOC_ARENA_MAX=2 to avoid this)"
    );
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn reexec() {}

/// What the running node's arena limit is and who chose it, for its start-up log line.
pub fn describe() -> String {
    match std::env::var("MALLOC_ARENA_MAX") {
        Ok(v) => format!("MALLOC_ARENA_MAX={v}"),
        Err(_) => match std::env::var("GLIBC_TUNABLES") {
            Ok(t) => format!("GLIBC_TUNABLES={t}"),
            Err(_) => "glibc default".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::chosen;

    #[test]
    fn a_limit_is_chosen_by_the_variable_or_a_tunable_only() {
        assert!(!chosen(None, None));
        assert!(chosen(Some("8".into()), None));
        assert!(chosen(Some("".into()), None));
        assert!(chosen(None, Some("glibc.malloc.arena_max=4".into())));
        assert!(chosen(
            None,
            Some("glibc.malloc.trim_threshold=1:glibc.malloc.arena_max=4".into())
        ));
        assert!(!chosen(None, Some("glibc.malloc.trim_threshold=131072".into())));
        assert!(!chosen(None, Some("glibc.malloc.arena_test=4".into())));
    }
}
