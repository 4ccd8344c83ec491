//! A node's data directory, opened read-only (a snapshot copy, so a running node is not
//! disturbed). Checkpoints are delivered right after the entry that completes their size, as in an
//! export, so that their roots are compared as the replay passes them.
//!
//! Memory does not grow with the log: the read-only copy is closed and reopened every
//! [`ledger_store::READ_ONLY_SCAN_BYTES`] of entries read, which frees the pages sled kept
//! ([`Store::reopen_read_only`]); the checkpoints are read on from where the last pass stopped.

use super::{Source, SourceEnd};
use crate::prepare::{Item, RawEntry};
use anyhow::Context as _;
use ledger_store::Store;
use std::path::{Path, PathBuf};

/// A data directory.
pub struct DataSource {
    dir: PathBuf,
    // None only while a reopen is under way.
    store: Option<Store>,
    size: u64,
    marks: Vec<(String, String)>,
    /// Entry bytes read between two reopens of the read-only copy.
    scan_bytes: u64,
    /// Reopens so far.
    reopens: u64,
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
        // A half-imported directory (`ledger-node import` or `restore` did not finish) holds
        // part of a log only: not replayed as if it were the log.
        ledger_store::high_water::refuse_unfinished_import(&data_dir, "replay").map_err(anyhow::Error::msg)?;
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
        let store =
            Store::open_read_only_without_lookups(&at).with_context(|| format!("cannot open {}", dir.display()))?;
        let size = store.size().context("cannot read the store's size")?;
        Ok(Self {
            dir: dir.to_path_buf(),
            store: Some(store),
            size,
            marks,
            scan_bytes: ledger_store::READ_ONLY_SCAN_BYTES,
            reopens: 0,
        })
    }
}

/// How a pass over the store ended.
enum Pass {
    /// The sink stopped.
    Stopped,
    /// The scan read its byte budget: reopen the store and go on from this index.
    Resume(u64),
    /// Every entry was delivered.
    Done,
}

impl DataSource {
    /// Delivers entries from `at` on, each followed by the checkpoints it completes (from
    /// `*cp_from` on), until the sink stops, the entries end, or [`Self::scan_bytes`] of entries
    /// were read.
    fn pass(
        &self,
        store: &Store,
        at: u64,
        cp_from: &mut u64,
        sink: &mut dyn FnMut(Item) -> bool,
    ) -> anyhow::Result<Pass> {
        let mut cps = store.checkpoints_from(*cp_from).peekable();
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
            *cp_from = upto.saturating_add(1);
            Ok(true)
        };
        if at == 0 && !emit(0, sink)? {
            return Ok(Pass::Stopped);
        }
        let mut read = 0u64;
        for r in store.entries(at, self.size) {
            let (index, bytes) = r.context("cannot read an entry")?;
            read = read.saturating_add(bytes.len() as u64);
            // The store keeps a leaf hash beside each entry: it must be the hash of the bytes.
            let stored = store.stored_leaf_hash(index).ok().flatten();
            let item = Item::Entry(RawEntry {
                position: Some(index),
                bytes,
                leaf_hash: stored.map(|h| h.0.to_vec()),
                wire: None,
            });
            if !sink(item) || !emit(index.saturating_add(1), sink)? {
                return Ok(Pass::Stopped);
            }
            if read >= self.scan_bytes && index.saturating_add(1) < self.size {
                return Ok(Pass::Resume(index + 1));
            }
        }
        emit(u64::MAX, sink)?;
        Ok(Pass::Done)
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
        let mut at = 0u64;
        let mut cp_from = 0u64;
        loop {
            let store = self.store.take().context("the store was not reopened")?;
            match self.pass(&store, at, &mut cp_from, sink)? {
                Pass::Stopped => return Ok(SourceEnd::default()),
                Pass::Done => {
                    self.store = Some(store);
                    break;
                }
                Pass::Resume(next) => {
                    // sled keeps every page read in memory (`Store::reopen_read_only`): a
                    // fresh open of the same private copy frees them.
                    self.store = Some(store.reopen_read_only().context("cannot reopen the read-only copy")?);
                    self.reopens += 1;
                    at = next;
                }
            }
        }
        Ok(SourceEnd {
            claimed_size: Some(self.size),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::{DataSource, Source as _};
    use crate::prepare::Item;
    use ledger_core::compact::CompactTree;
    use ledger_core::hash::leaf_hash;
    use ledger_store::{PreparedEntry, Store};

    /// A store of `n` entries (any bytes: the source judges nothing), written in groups of 100,
    /// with checkpoints (any note) at the given sizes.
    fn store(dir: &std::path::Path, n: u64, checkpoints: &[u64]) {
        let store = Store::open(dir).unwrap();
        let mut tree = CompactTree::new();
        let mut group = Vec::new();
        let mut nodes = Vec::new();
        for i in 0..n {
            let leaf = format!("entry {i} {}", "x".repeat(usize::try_from(i % 7).unwrap() * 40)).into_bytes();
            let lh = leaf_hash(&leaf);
            tree.append_with(lh, |c| nodes.push(c));
            group.push(PreparedEntry {
                index: i,
                leaf,
                leaf_hash: lh,
                request: None,
                terms: vec![],
                tickets: Vec::new(),
            });
            if group.len() == 100 || i + 1 == n {
                store.commit_group(&group, &nodes, tree.size(), None).unwrap();
                group.clear();
                nodes.clear();
            }
        }
        for s in checkpoints {
            store.put_checkpoint(*s, &format!("checkpoint {s}")).unwrap();
        }
        store.flush().unwrap();
    }

    /// What the source delivers: "e<index>" for an entry (its bytes and stored leaf hash checked
    /// against the store's), "c<note>" for a checkpoint; and whether it ran to the end.
    fn deliver(src: &mut DataSource, stop_after: Option<usize>) -> (Vec<String>, Option<u64>) {
        let mut out = Vec::new();
        let end = src
            .run(&mut |item| {
                out.push(match item {
                    Item::Entry(e) => {
                        let i = e.position.unwrap();
                        assert!(e.bytes.starts_with(format!("entry {i} ").as_bytes()));
                        assert_eq!(e.leaf_hash.unwrap(), leaf_hash(&e.bytes).0.to_vec(), "entry {i}");
                        format!("e{i}")
                    }
                    Item::Checkpoint(n) => format!("c{n}"),
                });
                stop_after.is_none_or(|k| out.len() < k)
            })
            .unwrap();
        (out, end.claimed_size)
    }

    /// The read-only copy is reopened every `scan_bytes` of entries (here: every 1,000 bytes, and
    /// every 20,000): every entry is still delivered once, in order, each checkpoint right
    /// after the entry that completes its size, and a sink that stops ends the scan.
    #[test]
    fn reopening_the_copy_delivers_the_same_items() {
        let dir = tempfile::tempdir().unwrap();
        let n = 700;
        let cps = [0, 1, 99, 256, 300, 512, 699, 700];
        store(dir.path(), n, &cps);
        let mut want = vec!["ccheckpoint 0".to_string()];
        for i in 0..n {
            want.push(format!("e{i}"));
            if cps.contains(&(i + 1)) {
                want.push(format!("ccheckpoint {}", i + 1));
            }
        }
        let mut whole = DataSource::open(dir.path()).unwrap();
        assert_eq!(whole.scan_bytes, ledger_store::READ_ONLY_SCAN_BYTES);
        assert_eq!(deliver(&mut whole, None), (want.clone(), Some(n)));
        assert_eq!(whole.reopens, 0, "a small store is read in one pass");
        for (scan_bytes, reopens) in [(1_000, 83), (20_000, 4)] {
            let mut src = DataSource::open(dir.path()).unwrap();
            src.scan_bytes = scan_bytes;
            assert_eq!(
                deliver(&mut src, None),
                (want.clone(), Some(n)),
                "every {scan_bytes} bytes"
            );
            assert_eq!(src.reopens, reopens, "every {scan_bytes} bytes");
        }
        // A sink that stops (the pipeline failed) ends the scan at once, in any pass.
        let mut src = DataSource::open(dir.path()).unwrap();
        src.scan_bytes = 1_000;
        let (got, claimed) = deliver(&mut src, Some(400));
        assert_eq!(got, want[..400].to_vec());
        assert_eq!(claimed, None);
    }
}
