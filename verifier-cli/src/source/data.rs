//! A node's data directory, opened read-only (a snapshot copy, so a running node is not
//! disturbed). Checkpoints are delivered right after the entry that completes their size, as in an
//! export, so that their roots are compared as the replay passes them.

use super::{Source, SourceEnd};
use crate::prepare::{Item, RawEntry};
use anyhow::Context as _;
use ledger_store::Store;
use std::path::{Path, PathBuf};

/// A data directory.
pub struct DataSource {
    dir: PathBuf,
    store: Store,
    size: u64,
    marks: Vec<(String, String)>,
}

impl DataSource {
    /// Opens a read-only snapshot of the directory: a node's `--data` directory (the store is its
    /// `store/` subdirectory) or the store directory itself.
    ///
    /// # Errors
    /// When the directory is not a ledger store.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let nested = dir.join("store");
        let (at, data_dir) = if nested.join("conf").exists() || nested.join("db").exists() {
            (nested, dir.to_path_buf())
        } else {
            (dir.to_path_buf(), dir.parent().unwrap_or(dir).to_path_buf())
        };
        // The marks before the store: a running node writes a mark after its store group, so
        // the snapshot taken next is never older than the marks.
        let mut marks = Vec::new();
        for p in [
            ledger_store::high_water::mark_path(&data_dir),
            ledger_store::high_water::witnessed_path(&data_dir),
        ] {
            if let Some(note) =
                ledger_store::high_water::read(&p).with_context(|| format!("cannot read {}", p.display()))?
            {
                marks.push((p.display().to_string(), note));
            }
        }
        let store = Store::open_read_only(&at).with_context(|| format!("cannot open {}", dir.display()))?;
        let size = store.size().context("cannot read the store's size")?;
        Ok(Self {
            dir: dir.to_path_buf(),
            store,
            size,
            marks,
        })
    }
}

impl Source for DataSource {
    fn describe(&self) -> String {
        format!("data directory {} (read-only snapshot)", self.dir.display())
    }

    fn expected_entries(&self) -> Option<u64> {
        Some(self.size)
    }

    fn high_water_marks(&self) -> Vec<(String, String)> {
        self.marks.clone()
    }

    fn run(&mut self, sink: &mut dyn FnMut(Item) -> bool) -> anyhow::Result<SourceEnd> {
        let mut cps = self.store.checkpoints().peekable();
        // Delivers the checkpoints of size <= upto; false when the sink stopped.
        let mut emit = |upto: u64, sink: &mut dyn FnMut(Item) -> bool| -> anyhow::Result<bool> {
            while let Some(Ok((s, _))) = cps.peek() {
                if *s > upto {
                    break;
                }
                if let Some(r) = cps.next() {
                    let (_, note) = r.context("cannot read a checkpoint")?;
                    if !sink(Item::Checkpoint(note)) {
                        return Ok(false);
                    }
                }
            }
            if let Some(Err(_)) = cps.peek()
                && let Some(Err(e)) = cps.next()
            {
                return Err(e).context("cannot read a checkpoint");
            }
            Ok(true)
        };
        if !emit(0, sink)? {
            return Ok(SourceEnd::default());
        }
        for r in self.store.entries(0, self.size) {
            let (index, bytes) = r.context("cannot read an entry")?;
            // The store keeps a leaf hash beside each entry: it must be the hash of the bytes.
            let stored = self.store.stored_leaf_hash(index).ok().flatten();
            let item = Item::Entry(RawEntry {
                position: Some(index),
                bytes,
                leaf_hash: stored.map(|h| h.0.to_vec()),
                wire: None,
            });
            if !sink(item) || !emit(index.saturating_add(1), sink)? {
                return Ok(SourceEnd::default());
            }
        }
        emit(u64::MAX, sink)?;
        Ok(SourceEnd {
            claimed_size: Some(self.size),
        })
    }
}
