//! The portable export stream (`docs/format.md` §Export): everything needed to replay or rebuild a
//! log, independent of sled.
//!
//! ```text
//! "LEDGER-EXPORT/1\n"                      16-byte magic
//! frame*: tag (1 byte) ‖ length (u32 BE) ‖ bytes
//!   'E'  canonical entry bytes (entries in index order from 0)
//!   'C'  signed checkpoint note (UTF-8), placed right after the entry that completes its size
//!   'Z'  end of stream, length 0 (a stream without it is truncated)
//! ```

use crate::{PreparedEntry, Store, StoreError};
use ledger_core::checkpoint::open_checkpoint;
use ledger_core::compact::CompactTree;
use ledger_core::entry::{Entry, MAX_ENTRY_BYTES};
use ledger_core::note::{MAX_NOTE_BYTES, NoteVerifier};
use ledger_core::registry::{Registry, envelope_kind, index_terms};
use std::io::{Read, Write};

/// Stream magic.
pub const MAGIC: &[u8; 16] = b"LEDGER-EXPORT/1\n";

/// One frame of an export stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Canonical entry bytes.
    Entry(Vec<u8>),
    /// Signed checkpoint note.
    Checkpoint(String),
}

fn err(m: impl Into<String>) -> StoreError {
    StoreError::Export(m.into())
}

/// Writes the whole store as an export stream; returns (entries, checkpoints) written.
///
/// # Errors
/// On storage or write failure.
pub fn export<W: Write>(store: &Store, w: W) -> Result<(u64, u64), StoreError> {
    export_reopening(&mut &*store, w, u64::MAX)
}

/// [`export`] that reopens the store every `budget` bytes of entries read ([`crate::scan`]), so
/// that its memory does not grow with the log; the stream is the same.
///
/// # Errors
/// On storage or write failure, or a failed reopen.
pub fn export_reopening<W: Write>(
    store: &mut dyn crate::scan::Reopen,
    mut w: W,
    budget: u64,
) -> Result<(u64, u64), StoreError> {
    w.write_all(MAGIC)?;
    let size = store.store()?.size()?;
    let mut n_cp = 0u64;
    // Checkpoints are written from `cp_from` on, each right after the entry that completes it.
    let mut cp_from = 0u64;
    let mut at = 0u64;
    loop {
        let s = store.store()?;
        let mut cps = s.checkpoints_from(cp_from).peekable();
        let mut emit_cps = |upto: u64, w: &mut W| -> Result<(), StoreError> {
            while let Some(Ok((c, _))) = cps.peek() {
                if *c > upto {
                    break;
                }
                if let Some(r) = cps.next() {
                    let (c, note): (u64, String) = r?;
                    frame(w, b'C', note.as_bytes())?;
                    n_cp += 1;
                    cp_from = c.saturating_add(1);
                }
            }
            Ok(())
        };
        if at == 0 {
            emit_cps(0, &mut w)?;
        }
        let mut read = 0u64;
        let mut more = false;
        for r in s.entries(at, size) {
            let (i, bytes) = r?;
            frame(&mut w, b'E', &bytes)?;
            at = i.saturating_add(1);
            emit_cps(at, &mut w)?;
            read = read.saturating_add(bytes.len() as u64);
            if read >= budget && at < size {
                more = true;
                break;
            }
        }
        if !more {
            break;
        }
        drop(cps);
        store.reopen()?;
    }
    frame(&mut w, b'Z', &[])?;
    w.flush()?;
    Ok((size, n_cp))
}

fn frame<W: Write>(w: &mut W, tag: u8, b: &[u8]) -> Result<(), StoreError> {
    let len = u32::try_from(b.len()).map_err(|_| err("frame too large"))?;
    w.write_all(&[tag])?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(b)?;
    Ok(())
}

/// Reads an export stream frame by frame, with size limits checked before allocation.
pub struct Reader<R: Read> {
    r: R,
    done: bool,
}

impl<R: Read> Reader<R> {
    /// Checks the magic.
    ///
    /// # Errors
    /// When the stream does not start with [`MAGIC`].
    pub fn new(mut r: R) -> Result<Self, StoreError> {
        let mut m = [0u8; 16];
        r.read_exact(&mut m)
            .map_err(|_| err("not an export stream (too short)"))?;
        if &m != MAGIC {
            return Err(err("not an export stream (bad magic)"));
        }
        Ok(Self { r, done: false })
    }

    /// The next frame, or None at the end marker.
    ///
    /// # Errors
    /// On a truncated stream, an unknown tag or an oversized frame.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let mut h = [0u8; 5];
        self.r
            .read_exact(&mut h)
            .map_err(|_| err("truncated stream: no end marker"))?;
        let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
        let max = match h[0] {
            b'E' => MAX_ENTRY_BYTES,
            b'C' => MAX_NOTE_BYTES,
            b'Z' => 0,
            t => return Err(err(format!("unknown frame tag {t:#04x}"))),
        };
        if len > max {
            return Err(err(format!("frame of {len} bytes exceeds {max}")));
        }
        let mut b = vec![0u8; len];
        self.r.read_exact(&mut b).map_err(|_| err("truncated frame"))?;
        Ok(match h[0] {
            b'E' => Some(Frame::Entry(b)),
            b'C' => Some(Frame::Checkpoint(
                String::from_utf8(b).map_err(|_| err("checkpoint is not UTF-8"))?,
            )),
            _ => {
                self.done = true;
                None
            }
        })
    }
}

/// Rebuilds an empty store from an export stream, verifying as it goes: every entry's index,
/// chain link and registry rules, and every checkpoint's signature (by the charter's node key) and
/// root. Returns the number of entries imported.
///
/// # Errors
/// On the first fault (nothing after it is written), or a storage failure.
pub fn import<R: Read>(store: &Store, r: R) -> Result<u64, StoreError> {
    import_reopening(&mut &*store, r, u64::MAX)
}

/// [`import`] that reopens the store after a group once `budget` bytes of entries were written
/// since the last reopen ([`crate::scan`]): sled keeps the pages it wrote in memory until the
/// store is closed, so an import of a large log (`backup`'s check of its export) would grow with
/// it.
///
/// # Errors
/// As [`import`], and a failed reopen.
pub fn import_reopening<R: Read>(store: &mut dyn crate::scan::Reopen, r: R, budget: u64) -> Result<u64, StoreError> {
    if store.store()?.size()? != 0 {
        return Err(err("import needs an empty data directory"));
    }
    let mut written = 0u64;
    let mut rd = Reader::new(r)?;
    let mut ct = CompactTree::new();
    let mut registry: Option<Registry> = None;
    let mut verifier: Option<NoteVerifier> = None;
    let mut group: Vec<PreparedEntry> = Vec::new();
    let mut nodes = Vec::new();
    let mut pending_cps: Vec<(u64, String)> = Vec::new();
    let flush =
        |store: &Store, group: &mut Vec<PreparedEntry>, nodes: &mut Vec<_>, size: u64, cps: &mut Vec<(u64, String)>| {
            store.commit_group(group, nodes, size, None)?;
            for (s, n) in cps.drain(..) {
                store.put_checkpoint(s, &n)?;
            }
            group.clear();
            nodes.clear();
            Ok::<(), StoreError>(())
        };
    while let Some(f) = rd.next_frame()? {
        match f {
            Frame::Entry(bytes) => {
                let index = ct.size();
                let e = Entry::decode(&bytes).map_err(|x| err(format!("entry {index}: {x}")))?;
                if e.index != index {
                    return Err(err(format!("entry {index}: stream holds index {} here", e.index)));
                }
                if e.prev_root != ct.root() {
                    return Err(err(format!(
                        "entry {index}: prev_root does not match the log before it"
                    )));
                }
                match registry.as_mut() {
                    None => {
                        let reg = Registry::genesis(&e).map_err(|x| err(format!("entry 0: {x}")))?;
                        verifier =
                            Some(NoteVerifier::new(&reg.charter.origin, reg.node_key).map_err(|x| err(x.to_string()))?);
                        registry = Some(reg);
                    }
                    Some(reg) => {
                        ledger_core::state::fold_registry(reg, &e).map_err(|x| err(format!("entry {index}: {x}")))?
                    }
                }
                let lh = ledger_core::hash::leaf_hash(&bytes);
                ct.append_with(lh, |n| nodes.push(n));
                let terms = envelope_kind(&e.envelope)
                    .map(|k| index_terms(k, &e.envelope.payload))
                    .unwrap_or_default();
                group.push(PreparedEntry {
                    index,
                    leaf: bytes,
                    leaf_hash: lh,
                    request: None,
                    terms,
                    tickets: Vec::new(),
                });
                if group.len() >= 1000 {
                    written = written.saturating_add(group.iter().map(|e| e.leaf.len() as u64).sum::<u64>());
                    flush(store.store()?, &mut group, &mut nodes, ct.size(), &mut pending_cps)?;
                    if written >= budget {
                        store.reopen()?;
                        written = 0;
                    }
                }
            }
            Frame::Checkpoint(note) => {
                let v = verifier.as_ref().ok_or_else(|| err("checkpoint before the charter"))?;
                // After a `node.rotate`, the checkpoint of this size is the new node key's.
                let rotated = registry
                    .as_ref()
                    .filter(|r| r.node_key != v.key)
                    .map(|r| NoteVerifier::new(&r.charter.origin, r.node_key))
                    .transpose()
                    .map_err(|x| err(x.to_string()))?;
                let cp = open_checkpoint(&note, rotated.as_ref().unwrap_or(v))
                    .map_err(|x| err(format!("checkpoint: {x}")))?;
                if cp.checkpoint.size != ct.size() || cp.checkpoint.root != ct.root() {
                    return Err(err(format!(
                        "checkpoint of size {} does not match the log",
                        cp.checkpoint.size
                    )));
                }
                pending_cps.push((cp.checkpoint.size, note));
            }
        }
    }
    flush(store.store()?, &mut group, &mut nodes, ct.size(), &mut pending_cps)?;
    Ok(ct.size())
}
