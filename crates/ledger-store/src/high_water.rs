//! The high-water mark: the latest signed checkpoint, kept in its own small file in the data
//! directory, outside sled (`DATA/high-water.checkpoint`), plus the latest witnessed checkpoint
//! when there is one (`DATA/high-water.witnessed`).
//!
//! sled recovers a damaged segment by cutting its log there, so a flipped bit or a truncated file
//! can make a store open with fewer entries and no complaint. The mark is written strictly after
//! the group that carries its checkpoint is durable in the store, so an undamaged store is never
//! shorter than its mark; a store that is shorter, or whose root at the mark's size differs, has
//! lost acknowledged entries and must not be served (`docs/operations.md`, restore path).
//!
//! Each file holds one signed checkpoint note (the node key's signature, with any witness
//! cosignatures). It is replaced atomically: write a temporary file, fsync it, rename it over the
//! mark, fsync the directory.

use crate::scan::Reopen;
use crate::{Store, StoreError};
use ledger_core::checkpoint::{Checkpoint, open_checkpoint};
use ledger_core::hash::Hash;
use ledger_core::note::{Note, NoteVerifier};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// File name of the mark (the latest signed checkpoint) in the data directory.
pub const MARK_FILE: &str = "high-water.checkpoint";

/// File name of the latest witnessed checkpoint in the data directory.
pub const WITNESSED_FILE: &str = "high-water.witnessed";

/// Path of the mark under a data directory.
pub fn mark_path(data_dir: &Path) -> PathBuf {
    data_dir.join(MARK_FILE)
}

/// Path of the witnessed mark under a data directory.
pub fn witnessed_path(data_dir: &Path) -> PathBuf {
    data_dir.join(WITNESSED_FILE)
}

/// Writes `text` to `path` atomically and durably: a temporary file beside it is written and
/// fsync'd, renamed over `path`, and the directory is fsync'd so that the rename survives a crash.
///
/// # Errors
/// On any file system failure (the old file is then left as it was).
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    write_atomic_bytes(path, text.as_bytes())
}

/// [`write_atomic`] for any bytes (the node's state snapshot is written the same way).
///
/// # Errors
/// On any file system failure (the old file is then left as it was).
pub fn write_atomic_bytes(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    #[cfg(unix)]
    std::fs::File::open(&dir)?.sync_all()?;
    Ok(())
}

/// File name, in a data directory, of the marker that `ledger-node import` and `restore` write
/// (fsynced, with the command that writes the log) before their first entry and remove only once
/// the store is flushed and the marks are written. While it is there the store may hold part of
/// the log only: the node, `export`, `backup` and the verifier refuse the directory.
pub const IMPORT_MARKER: &str = "import-in-progress";

/// Path of the import marker under a data directory.
pub fn import_marker_path(data_dir: &Path) -> PathBuf {
    data_dir.join(IMPORT_MARKER)
}

/// Writes the import marker of `data_dir` (created if missing), naming `command` (what to run
/// again), fsynced with its directory.
///
/// # Errors
/// On any file system failure; the error names the marker's path.
pub fn begin_import(data_dir: &Path, command: &str) -> std::io::Result<()> {
    let path = import_marker_path(data_dir);
    std::fs::create_dir_all(data_dir)
        .and_then(|()| write_atomic(&path, &format!("{}\n", command.trim())))
        .map_err(|e| naming("writing", &path, e))
}

/// `e` with the action and the path it failed on in its message (same kind).
fn naming(action: &str, path: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{action} {}: {e}", path.display()))
}

/// Removes the import marker of `data_dir` (the import is complete) and fsyncs the directory; no
/// marker is no error.
///
/// # Errors
/// On any file system failure; the error names the marker's path.
pub fn end_import(data_dir: &Path) -> std::io::Result<()> {
    let path = import_marker_path(data_dir);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(naming("removing", &path, e)),
    }
    #[cfg(unix)]
    std::fs::File::open(data_dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| naming("syncing the directory of", &path, e))?;
    Ok(())
}

/// Why `data_dir` must not be used: an import into it did not finish (its marker is there);
/// `None` without a marker.
///
/// # Errors
/// When the marker exists but cannot be read.
pub fn unfinished_import(data_dir: &Path) -> std::io::Result<Option<String>> {
    let path = import_marker_path(data_dir);
    Ok(read(&path)?.map(|command| {
        format!(
            "an import into {} did not finish ({} is there): its store may hold part of the log only; \
             delete {} and run the import again (`{}`)",
            data_dir.display(),
            path.display(),
            data_dir.join("store").display(),
            command.trim()
        )
    }))
}

/// Refuses data directory `data_dir` for `action` ("serve", "export", "replay") while an import
/// into it has not finished: `Err` with the whole message (the directory, why, the way forward),
/// also when the marker cannot be read.
///
/// # Errors
/// The refusal, as text for the caller's error type.
pub fn refuse_unfinished_import(data_dir: &Path, action: &str) -> Result<(), String> {
    match unfinished_import(data_dir) {
        Ok(None) => Ok(()),
        Ok(Some(why)) => Err(format!("refusing to {action} {}: {why}", data_dir.display())),
        Err(e) => Err(format!(
            "refusing to {action} {}: cannot read {}: {e}",
            data_dir.display(),
            import_marker_path(data_dir).display()
        )),
    }
}

/// Reads a mark file; `None` when it does not exist.
///
/// # Errors
/// When it exists but cannot be read.
pub fn read(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The size a mark note claims, read without checking its signature (to know which root to
/// compute before the node key is known). `None` when the note does not parse.
pub fn claimed_size(note: &str) -> Option<u64> {
    let n = Note::parse(note).ok()?;
    Checkpoint::from_body(&n.text).ok().map(|c| c.size)
}

/// Why a store does not satisfy its mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkFault {
    /// The mark is not a checkpoint signed by the node key.
    BadMark {
        /// Detail.
        detail: String,
    },
    /// The store holds fewer entries than the mark's checkpoint commits to.
    Shorter {
        /// Size in the mark.
        mark: u64,
        /// Size of the store.
        store: u64,
    },
    /// The store's root at the mark's size is not the mark's root: a different log.
    Differs {
        /// Size in the mark.
        mark: u64,
        /// Size of the store.
        store: u64,
        /// Root in the mark.
        mark_root: Hash,
        /// The store's root at the mark's size.
        store_root: Hash,
    },
}

impl fmt::Display for MarkFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MarkFault::BadMark { detail } => {
                write!(
                    f,
                    "the high-water mark is not a checkpoint signed by the node key: {detail}"
                )
            }
            MarkFault::Shorter { mark, store } => write!(
                f,
                "ROLLBACK: the store holds {store} entries but the high-water mark is a signed checkpoint of \
                 {mark} entries; {} acknowledged entries are missing",
                mark - store
            ),
            MarkFault::Differs {
                mark,
                store,
                mark_root,
                store_root,
            } => write!(
                f,
                "ROLLBACK: the store holds {store} entries but its root at size {mark} is {store_root}, not the \
                 root {mark_root} of the high-water mark's signed checkpoint of {mark} entries"
            ),
        }
    }
}

/// Checks a store of `store_size` entries against a mark note: the note must carry the node key's
/// signature, and the store must hold at least its size with the same root there. `root_at` gives
/// the store's root at a size not above `store_size`. Returns the mark's checkpoint.
///
/// # Errors
/// The [`MarkFault`] found.
pub fn check(
    note: &str,
    verifier: &NoteVerifier,
    store_size: u64,
    root_at: impl FnOnce(u64) -> Option<Hash>,
) -> Result<Checkpoint, MarkFault> {
    let cp = open_checkpoint(note, verifier)
        .map_err(|e| MarkFault::BadMark { detail: e.to_string() })?
        .checkpoint;
    if cp.size > store_size {
        return Err(MarkFault::Shorter {
            mark: cp.size,
            store: store_size,
        });
    }
    let store_root = root_at(cp.size).ok_or_else(|| MarkFault::BadMark {
        detail: format!("the store's root at size {} is unknown", cp.size),
    })?;
    if store_root != cp.root {
        return Err(MarkFault::Differs {
            mark: cp.size,
            store: store_size,
            mark_root: cp.root,
            store_root,
        });
    }
    Ok(cp)
}

/// The writer of one mark file: replaces it with a newer checkpoint, never with an older one.
pub struct HighWater {
    path: PathBuf,
    size: Mutex<u64>,
}

impl HighWater {
    /// A writer for `path`, whose current content has `size` (0 for none).
    pub fn new(path: PathBuf, size: u64) -> Self {
        Self {
            path,
            size: Mutex::new(size),
        }
    }

    /// The file it writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The size of the checkpoint the mark holds (0 for none).
    pub fn size(&self) -> u64 {
        *self.size.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replaces the mark with `note`, a signed checkpoint of `size`, unless the mark already holds
    /// a larger one (an equal size is rewritten: the same checkpoint with more cosignatures).
    /// Call it only once the checkpoint's group is durable in the store. Returns whether it wrote.
    ///
    /// # Errors
    /// On file system failure (the previous mark stays in place).
    pub fn advance(&self, size: u64, note: &str) -> std::io::Result<bool> {
        let mut cur = self.size.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if size < *cur {
            return Ok(false);
        }
        write_atomic(&self.path, note)?;
        *cur = size;
        Ok(true)
    }
}

/// The result of [`verify_against_marks`].
#[derive(Debug, Clone)]
pub struct MarkedReport {
    /// The store's own check.
    pub report: crate::OpenReport,
    /// Size of the mark's checkpoint; `None` when there is no mark file.
    pub mark: Option<u64>,
    /// Size of the witnessed mark's checkpoint, when there is one.
    pub witnessed: Option<u64>,
}

/// Why a store is refused at open.
#[derive(Debug, thiserror::Error)]
pub enum OpenRefusal {
    /// The store does not verify on its own.
    #[error("{err}{}", mark_hint(*.mark))]
    Store {
        /// The store's error.
        err: StoreError,
        /// The mark's claimed size, if there is a mark.
        mark: Option<u64>,
    },
    /// A mark file cannot be read.
    #[error("cannot read the high-water mark {}: {err}", .path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The error.
        err: std::io::Error,
    },
    /// The store does not satisfy a mark.
    #[error("{fault} (mark file {})", .path.display())]
    Mark {
        /// The file.
        path: PathBuf,
        /// The fault.
        fault: MarkFault,
    },
}

fn mark_hint(mark: Option<u64>) -> String {
    match mark {
        Some(m) => format!(" (the high-water mark is a signed checkpoint of {m} entries)"),
        None => String::new(),
    }
}

/// Verifies a store (as [`Store::verify`]) and checks it against the marks of its data
/// directory. Read the marks before the store is opened when another process may be writing
/// both (a mark is written after its store group, so a store read later is never older).
///
/// # Errors
/// [`OpenRefusal`].
pub fn verify_against_marks(
    store: &Store,
    data_dir: &Path,
    mark: Option<&str>,
    witnessed: Option<&str>,
) -> Result<MarkedReport, OpenRefusal> {
    verify_against_marks_reopening(&mut &*store, data_dir, mark, witnessed, u64::MAX)
}

/// [`verify_against_marks`] that reopens the store every `budget` bytes of entries read
/// ([`crate::scan`]), so that its memory does not grow with the log.
///
/// # Errors
/// [`OpenRefusal`].
pub fn verify_against_marks_reopening(
    store: &mut dyn Reopen,
    data_dir: &Path,
    mark: Option<&str>,
    witnessed: Option<&str>,
    budget: u64,
) -> Result<MarkedReport, OpenRefusal> {
    marked_pass(store, data_dir, mark, witnessed, 0, budget, &mut |_, _, _| Ok(()))
}

/// The open-time check of node start-up (STARTUP): [`verify_against_marks`] in one streaming
/// pass that hands every checked entry to `visit` (the node folds its state), and that, unless
/// `full`, checks the `prev_root` chain only from the mark's size on. Below the mark each entry's
/// bytes are still re-hashed and compared with the stored leaf hash and every tile, and the root
/// they give at the mark's size must be the mark's signed root: an entry edited below the mark is
/// refused either way. When that fast pass refuses the store, the full check runs to name the
/// first fault exactly as [`verify_against_marks`] does.
///
/// # Errors
/// [`OpenRefusal`]; the visitor's error as [`OpenRefusal::Store`] with [`StoreError::Visit`].
pub fn verify_against_marks_streaming(
    store: &Store,
    data_dir: &Path,
    mark: Option<&str>,
    witnessed: Option<&str>,
    full: bool,
    visit: &mut crate::Visit<'_>,
) -> Result<MarkedReport, OpenRefusal> {
    verify_against_marks_streaming_reopening(&mut &*store, data_dir, (mark, witnessed), full, u64::MAX, visit)
}

/// [`verify_against_marks_streaming`] that reopens the store every `budget` bytes of entries
/// read (at a bundle boundary; [`crate::scan`]): the entries are still read, checked and visited
/// exactly once, in order, and the process's memory does not grow with the log.
///
/// # Errors
/// As [`verify_against_marks_streaming`], and a failed reopen.
pub fn verify_against_marks_streaming_reopening(
    store: &mut dyn Reopen,
    data_dir: &Path,
    (mark, witnessed): (Option<&str>, Option<&str>),
    full: bool,
    budget: u64,
    visit: &mut crate::Visit<'_>,
) -> Result<MarkedReport, OpenRefusal> {
    let chain_from = if full {
        0
    } else {
        mark.and_then(claimed_size).unwrap_or(0)
    };
    match marked_pass(store, data_dir, mark, witnessed, chain_from, budget, visit) {
        Err(e)
            if chain_from > 0
                && !matches!(
                    e,
                    OpenRefusal::Store {
                        err: StoreError::Visit(_),
                        ..
                    }
                ) =>
        {
            match marked_pass(store, data_dir, mark, witnessed, 0, budget, &mut |_, _, _| Ok(())) {
                Err(named) => Err(named),
                Ok(_) => Err(e),
            }
        }
        r => r,
    }
}

fn marked_pass(
    store: &mut dyn Reopen,
    data_dir: &Path,
    mark: Option<&str>,
    witnessed: Option<&str>,
    chain_from: u64,
    budget: u64,
    visit: &mut crate::Visit<'_>,
) -> Result<MarkedReport, OpenRefusal> {
    let mark_size = mark.and_then(claimed_size);
    let witnessed_size = witnessed.and_then(claimed_size);
    let sizes: Vec<u64> = mark_size.into_iter().chain(witnessed_size).collect();
    let (report, roots) = crate::scan::verify_reopening(store, &sizes, chain_from, budget, visit)
        .map_err(|err| OpenRefusal::Store { err, mark: mark_size })?;
    let mut out = MarkedReport {
        report,
        mark: None,
        witnessed: None,
    };
    for (note, path, slot) in [
        (mark, mark_path(data_dir), &mut out.mark),
        (witnessed, witnessed_path(data_dir), &mut out.witnessed),
    ] {
        let Some(note) = note else { continue };
        let fault = |fault| OpenRefusal::Mark {
            path: path.clone(),
            fault,
        };
        let Some(v) = &out.report.verifier_at(claimed_size(note).unwrap_or(0)) else {
            return Err(fault(MarkFault::Shorter {
                mark: claimed_size(note).unwrap_or(0),
                store: 0,
            }));
        };
        let cp = check(note, v, out.report.size, |s| roots.get(&s).copied()).map_err(fault)?;
        *slot = Some(cp.size);
    }
    Ok(out)
}

/// Reads both mark files of a data directory (mark, witnessed).
///
/// # Errors
/// When a file exists but cannot be read.
pub fn read_marks(data_dir: &Path) -> Result<(Option<String>, Option<String>), OpenRefusal> {
    let rd = |path: PathBuf| read(&path).map_err(|err| OpenRefusal::Unreadable { path, err });
    Ok((rd(mark_path(data_dir))?, rd(witnessed_path(data_dir))?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_import_marker_names_the_directory_and_the_command_until_removed() {
        let dir = tempfile::tempdir().expect("tmp");
        let data = dir.path().join("d");
        assert_eq!(unfinished_import(&data).expect("read"), None);
        begin_import(&data, "ledger-node import --data d --in x\n").expect("marker");
        let why = unfinished_import(&data).expect("read").expect("marker");
        assert!(
            why.starts_with(&format!("an import into {} did not finish", data.display())),
            "{why}"
        );
        assert!(
            why.contains(&format!(
                "delete {} and run the import again",
                data.join("store").display()
            )),
            "{why}"
        );
        assert!(why.ends_with("(`ledger-node import --data d --in x`)"), "{why}");
        end_import(&data).expect("marker");
        assert_eq!(unfinished_import(&data).expect("read"), None);
        end_import(&data).expect("marker");
    }

    #[test]
    fn write_atomic_replaces_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join(MARK_FILE);
        write_atomic(&p, "one\n").expect("write");
        write_atomic(&p, "two\n").expect("write");
        assert_eq!(read(&p).expect("read").as_deref(), Some("two\n"));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("e").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(MARK_FILE)]);
        assert_eq!(read(&dir.path().join("absent")).expect("read"), None);
    }

    #[test]
    fn advance_never_lowers_the_mark() {
        let dir = tempfile::tempdir().expect("tmp");
        let hw = HighWater::new(dir.path().join(MARK_FILE), 0);
        assert!(hw.advance(5, "five\n").expect("write"));
        assert!(!hw.advance(3, "three\n").expect("write"));
        assert!(hw.advance(5, "five cosigned\n").expect("write"));
        assert_eq!(read(hw.path()).expect("read").as_deref(), Some("five cosigned\n"));
    }

    #[test]
    fn check_names_both_sizes() {
        use ledger_core::note::NoteSigner;
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let signer = NoteSigner::new("test.origin", key).expect("signer");
        let root = Hash::digest(b"root");
        let note = Checkpoint {
            origin: "test.origin".into(),
            size: 52,
            root,
            extensions: vec![],
        }
        .sign(&signer)
        .expect("sign")
        .to_text();
        let v = signer.verifier();
        assert_eq!(claimed_size(&note), Some(52));
        let e = check(&note, v, 22, |_| Some(root)).expect_err("shorter");
        assert_eq!(e, MarkFault::Shorter { mark: 52, store: 22 });
        assert!(e.to_string().contains("22 entries") && e.to_string().contains("52 entries"));
        let other = Hash::digest(b"other");
        let e = check(&note, v, 60, |_| Some(other)).expect_err("differs");
        assert!(
            matches!(
                e,
                MarkFault::Differs {
                    mark: 52,
                    store: 60,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(check(&note, v, 60, |_| Some(root)).expect("ok").size, 52);
        let forged = note.replace("52", "53");
        assert!(matches!(
            check(&forged, v, 60, |_| Some(root)),
            Err(MarkFault::BadMark { .. })
        ));
    }
}
