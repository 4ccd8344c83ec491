//! Full entry bundles in append-only files beside sled (`docs/format.md`, "Bundle files").
//!
//! A full bundle never changes, so it does not need sled: its stored bytes (the same bytes a `b`
//! value holds, compressed or plain: [`crate::layout::stored_bundle`]) are appended to the file
//! of its group of [`BUNDLES_PER_FILE`] bundles under `bundles/` in the store's directory, made
//! durable (`fdatasync`), and only then is the bundle's `b` key written, in the group's sled batch,
//! as a 45-byte record that points at them: `F ‖ u64 BE offset ‖ u32 BE length ‖ SHA-256 of the
//! bytes`. So sled holds per 256 entries a record instead of the bundle (it no longer copies
//! bundles when it cleans its segments), and a read-only open (`export`, `backup`,
//! `ledger-verify replay --data`, the cluster seed) copies sled's files but reads the bundle files
//! where they are: bytes a record points at are never written again.
//!
//! Crash: bytes appended for a group whose batch never became durable lie after the last record
//! of their file; the next append writes over them and cuts the file after itself. A file shorter
//! than a record says, bytes that do not match their record's digest, or a missing file are
//! refused by name (the bundle's first index, the file and the byte range).

use crate::{StoreError, TamperFault};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Directory of the bundle files, in the store's directory.
pub const BUNDLES_DIR: &str = "bundles";

/// Bundles per file (1,048,576 entries).
pub const BUNDLES_PER_FILE: u64 = 4096;

/// First byte of a `b` value that points into a bundle file.
pub const BUNDLE_FILE: u8 = b'F';

/// Bytes of a record that points into a bundle file.
pub const RECORD_BYTES: usize = 1 + 8 + 4 + 32;

/// Where a record points: (offset, length, SHA-256 of the bytes).
fn parse(rec: &[u8]) -> Option<(u64, u64, [u8; 32])> {
    if rec.len() != RECORD_BYTES || rec[0] != BUNDLE_FILE {
        return None;
    }
    let off = u64::from_be_bytes(rec[1..9].try_into().ok()?);
    let len = u64::from(u32::from_be_bytes(rec[9..13].try_into().ok()?));
    Some((off, len, rec[13..45].try_into().ok()?))
}

/// The end (offset + length) of the bytes a record points at, if it is one.
#[must_use]
pub fn record_end(rec: &[u8]) -> Option<u64> {
    parse(rec).and_then(|(o, l, _)| o.checked_add(l))
}

/// File name of the file holding bundle `n`.
#[must_use]
pub fn file_name(n: u64) -> String {
    format!("{:010}.bundles", n / BUNDLES_PER_FILE)
}

/// The bundle files of one store directory, with the last file opened kept open.
#[derive(Debug)]
pub(crate) struct BundleFiles {
    dir: PathBuf,
    open: Mutex<Option<(u64, Arc<File>)>>,
}

impl BundleFiles {
    pub(crate) fn new(store_dir: &Path) -> Self {
        Self {
            dir: store_dir.join(BUNDLES_DIR),
            open: Mutex::new(None),
        }
    }

    /// The store directory whose `bundles/` these are.
    pub(crate) fn store_dir(&self) -> &Path {
        self.dir.parent().unwrap_or(&self.dir)
    }

    /// Path of the file holding bundle `n`.
    pub(crate) fn path(&self, n: u64) -> PathBuf {
        self.dir.join(file_name(n))
    }

    fn file(&self, n: u64) -> std::io::Result<Arc<File>> {
        let no = n / BUNDLES_PER_FILE;
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((k, f)) = open.as_ref()
            && *k == no
        {
            return Ok(Arc::clone(f));
        }
        let f = Arc::new(File::open(self.path(n))?);
        *open = Some((no, Arc::clone(&f)));
        Ok(f)
    }

    /// The fault of bundle `n`, at its first entry.
    fn fault(n: u64, detail: String) -> StoreError {
        StoreError::Tampered(TamperFault::Malformed {
            index: n * crate::layout::BUNDLE_ENTRIES,
            detail,
        })
    }

    /// Where record `rec` of bundle `n` points: (offset, length, SHA-256).
    fn place(n: u64, rec: &[u8]) -> Result<(u64, usize, [u8; 32]), StoreError> {
        let (off, len, digest) = parse(rec).ok_or_else(|| {
            Self::fault(
                n,
                format!(
                    "the record of bundle {n} is {} bytes, not a bundle file record",
                    rec.len()
                ),
            )
        })?;
        match usize::try_from(len) {
            Ok(l) if l <= crate::layout::MAX_BUNDLE_BYTES => Ok((off, l, digest)),
            _ => Err(Self::fault(n, format!("bundle {n}: its record says {len} bytes"))),
        }
    }

    /// Length of the stored bytes record `rec` of bundle `n` points at.
    pub(crate) fn stored_len(&self, n: u64, rec: &[u8]) -> Result<usize, StoreError> {
        Ok(Self::place(n, rec)?.1)
    }

    /// Bytes `[from, from + len)` of the stored bytes that record `rec` of bundle `n` points at
    /// (not compared with the digest: see [`Self::read`]).
    pub(crate) fn read_at(&self, n: u64, rec: &[u8], from: usize, len: usize) -> Result<Vec<u8>, StoreError> {
        let (off, total, _) = Self::place(n, rec)?;
        self.read_placed(n, off, total, from, len)
    }

    /// Bytes `[from, from + len)` of bundle `n`, stored as `total` bytes at `off` of its file.
    fn read_placed(&self, n: u64, off: u64, total: usize, from: usize, len: usize) -> Result<Vec<u8>, StoreError> {
        if from.checked_add(len).is_none_or(|e| e > total) {
            return Err(Self::fault(
                n,
                format!("bundle {n}: bytes {from}+{len} are past its {total}"),
            ));
        }
        let f = match self.file(n) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Self::fault(
                    n,
                    format!("bundle {n}: its file {} is missing", self.path(n).display()),
                ));
            }
            Err(e) => return Err(StoreError::Io(e)),
        };
        let mut buf = vec![0u8; len];
        let at = off + from as u64;
        match f.read_exact_at(&mut buf, at) {
            Ok(()) => Ok(buf),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                let have = f.metadata().map(|m| m.len()).unwrap_or(0);
                Err(Self::fault(
                    n,
                    format!(
                        "bundle {n}: {} holds {have} bytes; the bundle is bytes {off}..{} (the file was cut)",
                        self.path(n).display(),
                        off + total as u64
                    ),
                ))
            }
            Err(e) => Err(StoreError::Io(e)),
        }
    }

    /// All the stored bytes of bundle `n` that record `rec` points at, compared with the record's
    /// SHA-256 (a reader of one entry of a compressed bundle reads its header and one frame with
    /// [`Self::read_at`], checked by the frame's zstd checksum instead).
    pub(crate) fn read(&self, n: u64, rec: &[u8]) -> Result<Vec<u8>, StoreError> {
        let place = Self::place(n, rec)?;
        let buf = self.read_placed(n, place.0, place.1, 0, place.1)?;
        self.check_placed(n, place, buf)
    }

    /// `buf`, all the stored bytes of bundle `n` read with [`Self::read_at`], once it matches the
    /// SHA-256 of record `rec`.
    pub(crate) fn checked(&self, n: u64, rec: &[u8], buf: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        self.check_placed(n, Self::place(n, rec)?, buf)
    }

    /// `buf` once it is the `len` bytes at `off` whose SHA-256 is `digest`.
    fn check_placed(
        &self,
        n: u64,
        (off, len, digest): (u64, usize, [u8; 32]),
        buf: Vec<u8>,
    ) -> Result<Vec<u8>, StoreError> {
        if buf.len() != len || Sha256::digest(&buf)[..] != digest[..] {
            return Err(Self::fault(
                n,
                format!(
                    "bundle {n}: bytes {off}..{} of {} do not match the SHA-256 recorded for them (edited)",
                    off + len as u64,
                    self.path(n).display()
                ),
            ));
        }
        Ok(buf)
    }

    /// Appends the stored bytes of bundle `n` after `after` (the end of the last record in its
    /// file, 0 for the first), cuts the file after them, makes them durable and returns the record
    /// to write under the bundle's key.
    pub(crate) fn append(&self, n: u64, after: u64, bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
        let len = u32::try_from(bytes.len())
            .map_err(|_| StoreError::Corrupt(format!("bundle {n} is {} bytes", bytes.len())))?;
        let new_dir = !self.dir.exists();
        if new_dir {
            std::fs::create_dir_all(&self.dir)?;
            sync_dir(self.dir.parent().unwrap_or(&self.dir))?;
        }
        let path = self.path(n);
        let created = !path.exists();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        f.write_all_at(bytes, after)?;
        let end = after + u64::from(len);
        if f.metadata()?.len() > end {
            f.set_len(end)?;
        }
        f.sync_data()?;
        if created {
            sync_dir(&self.dir)?;
        }
        // The reader's open file may be the one just cut or replaced: open it again.
        *self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        let mut rec = Vec::with_capacity(RECORD_BYTES);
        rec.push(BUNDLE_FILE);
        rec.extend_from_slice(&after.to_be_bytes());
        rec.extend_from_slice(&len.to_be_bytes());
        rec.extend_from_slice(&Sha256::digest(bytes));
        Ok(rec)
    }

    /// Bytes of all bundle files.
    pub(crate) fn size(&self) -> std::io::Result<u64> {
        let mut total = 0;
        match std::fs::read_dir(&self.dir) {
            Ok(rd) => {
                for e in rd {
                    total += e?.metadata()?.len();
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(total)
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}
