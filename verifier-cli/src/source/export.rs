//! An export stream (`ledger_store::export`): entries in index order with each checkpoint right
//! after the entry that completes its size.

use super::{Source, SourceEnd};
use crate::prepare::{Item, RawEntry};
use anyhow::Context as _;
use ledger_store::export::{Frame, Reader};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A reader that counts the bytes it hands out (for the progress bar).
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// An export file.
pub struct ExportSource {
    path: PathBuf,
    reader: Option<Reader<BufReader<Counting<File>>>>,
    len: u64,
    read: Arc<AtomicU64>,
}

impl ExportSource {
    /// Opens the file and checks its magic.
    ///
    /// # Errors
    /// When the file cannot be read or is not an export stream.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let len = f.metadata().map_or(0, |m| m.len());
        let read = Arc::new(AtomicU64::new(0));
        let counting = Counting {
            inner: f,
            read: Arc::clone(&read),
        };
        let reader = Reader::new(BufReader::with_capacity(1 << 20, counting))
            .with_context(|| format!("{} is not a ledger export", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            reader: Some(reader),
            len,
            read,
        })
    }
}

impl Source for ExportSource {
    fn describe(&self) -> String {
        format!("export file {}", self.path.display())
    }

    fn expected_entries(&self) -> Option<u64> {
        None
    }

    fn byte_progress(&self) -> Option<(u64, Arc<AtomicU64>)> {
        (self.len > 0).then(|| (self.len, Arc::clone(&self.read)))
    }

    fn run(&mut self, sink: &mut dyn FnMut(Item) -> bool) -> anyhow::Result<SourceEnd> {
        let Some(mut r) = self.reader.take() else {
            return Ok(SourceEnd::default());
        };
        let mut n = 0u64;
        while let Some(frame) = r
            .next_frame()
            .with_context(|| format!("{} after {n} entries", self.path.display()))?
        {
            let item = match frame {
                Frame::Entry(bytes) => {
                    n += 1;
                    Item::Entry(RawEntry {
                        position: None,
                        bytes,
                        leaf_hash: None,
                        wire: None,
                    })
                }
                Frame::Checkpoint(note) => Item::Checkpoint(note),
            };
            if !sink(item) {
                break;
            }
        }
        Ok(SourceEnd::default())
    }
}
