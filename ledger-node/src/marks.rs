//! The high-water mark at open (`ledger_store::high_water`): a store that is shorter than the
//! mark, or whose root at the mark's size differs, has lost acknowledged entries (sled cut its log
//! at a damaged segment, or the files were edited) and is never served, exported or appended to.

use anyhow::{Context, Result, bail};
use ledger_store::high_water::{self, HighWater, OpenRefusal};
use ledger_store::{OpenReport, Store};
use std::path::Path;

/// What to do about a refused store, for the operator.
const RESTORE: &str = "restore the data directory from an export or a replica whose log holds the mark's \
                       checkpoint (docs/operations.md, \"Restoring after store damage\"); do not delete the mark";

/// A store checked against its marks, with the writers of both mark files.
pub struct Checked {
    /// The store's own check.
    pub report: OpenReport,
    /// Writer of `DATA/high-water.checkpoint`.
    pub mark: HighWater,
    /// Writer of `DATA/high-water.witnessed`.
    pub witnessed: HighWater,
}

/// Reads the marks of `data` (call it before the store is opened: a mark is written after its
/// store group, so a store read later is never older than the mark).
///
/// # Errors
/// When a mark file exists but cannot be read.
pub fn read(data: &Path) -> Result<(Option<String>, Option<String>)> {
    high_water::read_marks(data).map_err(|e| anyhow::anyhow!("refusing to open {}: {e}", data.display()))
}

/// Verifies `store` (the store of data directory `data`) and checks it against the marks read
/// before, for `action` ("serve", "export", "import into"; named in the refusal). A missing mark
/// with a non-empty store is refused unless `adopt`, which re-creates the mark from the store's
/// latest checkpoint.
///
/// # Errors
/// When the store does not verify, does not satisfy a mark, or has no mark (without `adopt`).
pub fn check(
    store: &Store,
    data: &Path,
    marks: (Option<String>, Option<String>),
    adopt: bool,
    action: &str,
) -> Result<Checked> {
    let (mark, witnessed) = marks;
    let mark_path = high_water::mark_path(data);
    let r =
        high_water::verify_against_marks(store, data, mark.as_deref(), witnessed.as_deref()).map_err(|e| match &e {
            OpenRefusal::Mark { .. } => anyhow::anyhow!("refusing to {action} {}: {e}; {RESTORE}", data.display()),
            _ => anyhow::anyhow!("refusing to {action} {}: {e}", data.display()),
        })?;
    let mut mark_size = r.mark.unwrap_or(0);
    if r.mark.is_none() && r.report.size > 0 {
        if !adopt {
            bail!(
                "refusing to {action} {}: the store holds {} entries but there is no high-water mark ({}). \
                 If this data directory was made before high-water marks existed, start the node once \
                 with --adopt-store to create the mark from the store's latest checkpoint. Otherwise \
                 the mark was deleted and the store cannot be trusted to be complete: {RESTORE}",
                data.display(),
                r.report.size,
                mark_path.display()
            );
        }
        let (size, note) = store
            .latest_checkpoint()?
            .context("--adopt-store: the store has no checkpoint to adopt")?;
        tracing::warn!("**************************************************************************");
        tracing::warn!(
            "--adopt-store: {} had no high-water mark; creating it from the store's latest checkpoint \
             ({size} of {} entries). Entries this store may have lost before now cannot be detected.",
            data.display(),
            r.report.size
        );
        tracing::warn!("Use --adopt-store only once, to upgrade a data directory made before high-water marks.");
        tracing::warn!("**************************************************************************");
        high_water::write_atomic(&mark_path, &note)
            .with_context(|| format!("writing the high-water mark {}", mark_path.display()))?;
        mark_size = size;
    }
    Ok(Checked {
        mark: HighWater::new(mark_path, mark_size),
        witnessed: HighWater::new(high_water::witnessed_path(data), r.witnessed.unwrap_or(0)),
        report: r.report,
    })
}

/// Writes the mark of `data` from the store's latest checkpoint (after `init`, `import` or
/// `debug-fork`, once the store is durable).
///
/// # Errors
/// When the store has no checkpoint or the file cannot be written.
pub fn write_latest(store: &Store, data: &Path) -> Result<u64> {
    store.flush()?;
    let (size, note) = store
        .latest_checkpoint()?
        .context("the store has no checkpoint for the high-water mark")?;
    let path = high_water::mark_path(data);
    high_water::write_atomic(&path, &note)
        .with_context(|| format!("writing the high-water mark {}", path.display()))?;
    Ok(size)
}
