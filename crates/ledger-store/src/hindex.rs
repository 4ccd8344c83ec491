//! An on-disk hash index: 32-byte keys → u64 (and, for request ids, a digest prefix), in 256
//! shard files of open addressing (`docs/format.md` §Index files).
//!
//! A slot holds a fingerprint of the key, not the key: the key bytes after the first (which chose
//! the shard), 8 or 16 of them, never all zero (an all-zero slot is empty). Two keys of one shard
//! with the same fingerprint both keep their slot; a lookup yields the first whose value the caller
//! accepts ([`HashIndex::get_checked`]: the store checks every hit against the entries), so a
//! collision costs one more check, never a lost or a wrong answer.
//!
//! The process keeps no memory per key: every lookup and insert is a `pread`/`pwrite` on the shard
//! the key's first byte selects (the operating system's page cache does the caching). A shard that
//! would pass three quarters full is rehashed into a file of twice the capacity, so a resize pauses
//! only the keys of 1/256 of the index.
//!
//! The index is an accelerator, never trusted: the store checks every hit against the entries
//! before it uses it ([`crate::Store::index_of_leaf`], [`crate::Store::request`]). A shard file
//! that is missing or does not have the expected shape is replaced by an empty one when the index
//! is opened, and the store then re-inserts what it can rebuild from the entries.
//!
//! Writes are not fsynced one by one: [`HashIndex::sync`] makes all written shards durable (a shard
//! created or grown since the last sync lives in `XX.hix.tmp` and is renamed over `XX.hix` then;
//! one left over at open is deleted, so records not synced are lost unless re-inserted). The
//! store's durability comes from the journal of each group in sled (`journal.rs`, key `j`).

use crate::StoreError;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Number of shard files.
pub const SHARDS: usize = 256;
/// Magic at the start of every shard file.
pub const SHARD_MAGIC: &[u8; 8] = b"LEDGHIX2";
/// Bytes of a shard file header: magic ‖ slot length (u32 BE) ‖ fingerprint length (u32 BE) ‖
/// capacity (u64 BE) ‖ used slots (u64 BE).
pub const HEADER_LEN: u64 = 32;
/// Largest single write of a shard file's body (one page: see [`create_shard`]).
const WRITE_PIECE: usize = 4096;
/// Slots of a new shard (a power of two; the file is sparse until written).
pub const INITIAL_SLOTS: u64 = 1024;
/// Bytes of a slot: fingerprint ‖ value (u64 BE) ‖ extra bytes.
pub fn slot_len(fingerprint: usize, extra: usize) -> u64 {
    (fingerprint + 8 + extra) as u64
}

/// Fingerprint bytes of an index made by [`HashIndex::temporary`].
pub const TEMPORARY_FINGERPRINT: usize = 16;
/// Slots read per `pread` while probing.
const PROBE_RUN: u64 = 8;

/// Whether `count` keys fit in `cap` slots: at most three quarters full (linear probing then
/// reads about 2.5 slots for a hit and 8.5 for a miss, mostly in one `pread` of [`PROBE_RUN`]).
fn fits(count: u64, cap: u64) -> bool {
    count.saturating_mul(4) <= cap.saturating_mul(3)
}

struct Shard {
    // None: the shard has no file yet (no key was ever recorded in it).
    file: Option<File>,
    cap: u64,
    count: u64,
    // Writes so far, and the number of them the last sync made durable.
    writes: u64,
    synced: u64,
    // Bumped each time the shard moves to a new file (created or grown).
    generation: u64,
    // The file is `XX.hix.tmp` (new or grown since the last sync): `sync` fsyncs it and renames it
    // over `XX.hix`. Until then a crash leaves the last synced `XX.hix` (and the store's journal).
    pending: bool,
}

/// An on-disk hash index (`Send + Sync`).
pub struct HashIndex {
    dir: PathBuf,
    fp: usize,
    extra: usize,
    shards: Vec<RwLock<Shard>>,
    _temp: Option<tempfile::TempDir>,
}

fn corrupt(m: impl Into<String>) -> StoreError {
    StoreError::Corrupt(m.into())
}

fn poisoned() -> StoreError {
    corrupt("hash index lock poisoned")
}

impl HashIndex {
    /// An index in a fresh temporary directory, deleted on drop (the verifier's replay uses it
    /// for the tickets it has seen, so its memory stays flat).
    ///
    /// # Errors
    /// When the directory or its shard files cannot be created.
    pub fn temporary() -> Result<Self, StoreError> {
        let t = tempfile::Builder::new().prefix("ledger-hindex-").tempdir()?;
        let (mut ix, _) = Self::open(t.path(), TEMPORARY_FINGERPRINT, 0)?;
        ix._temp = Some(t);
        Ok(ix)
    }

    /// Opens (creating if needed) the index in `dir`, whose slots hold a `fingerprint`-byte
    /// fingerprint of the key (8 to 31 bytes) and carry `extra` bytes after the u64 value. A shard file is created at its first insert; a missing one is empty.
    /// Returns the index and whether its files were sound: `false` when a shard file was malformed
    /// and has been replaced by an empty one (its keys are lost and must be re-inserted by whoever
    /// can rebuild them). Compare [`Self::present`] with what an earlier sync recorded to notice
    /// a deleted shard.
    ///
    /// # Errors
    /// On a file system failure.
    pub fn open(dir: &Path, fingerprint: usize, extra: usize) -> Result<(Self, bool), StoreError> {
        if !(8..32).contains(&fingerprint) {
            return Err(corrupt(format!("hash index fingerprint of {fingerprint} bytes")));
        }
        std::fs::create_dir_all(dir)?;
        let slot_len = slot_len(fingerprint, extra);
        let mut complete = true;
        let mut shards = Vec::with_capacity(SHARDS);
        for i in 0..SHARDS {
            // A shard created or grown after the last sync: its records are in the journal.
            for stray in [tmp_path(dir, i), dir.join(format!("{i:02x}.hix.grow"))] {
                match std::fs::remove_file(stray) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                    _ => {}
                }
            }
            let path = shard_path(dir, i);
            let shard = match open_shard(&path, slot_len, fingerprint)? {
                Opened::Sound(s) => s,
                Opened::Missing => Shard::absent(),
                Opened::Malformed => {
                    complete = false;
                    std::fs::remove_file(&path)?;
                    Shard::absent()
                }
            };
            shards.push(RwLock::new(shard));
        }
        Ok((
            Self {
                dir: dir.to_path_buf(),
                fp: fingerprint,
                extra,
                shards,
                _temp: None,
            },
            complete,
        ))
    }

    /// Bitmap of the shards that have a file (bit `i % 8` of byte `i / 8` for shard `i`).
    ///
    /// # Errors
    /// When a lock is poisoned.
    pub fn present(&self) -> Result<[u8; 32], StoreError> {
        let mut m = [0u8; 32];
        for i in 0..SHARDS {
            if self.read(i)?.file.is_some() {
                m[i / 8] |= 1 << (i % 8);
            }
        }
        Ok(m)
    }

    fn slot_len(&self) -> u64 {
        slot_len(self.fp, self.extra)
    }

    /// The key's fingerprint: key bytes 1..=fp, the last set to 1 when all are zero.
    fn fingerprint(&self, key: &[u8; 32]) -> Vec<u8> {
        let mut f = key[1..=self.fp].to_vec();
        if f.iter().all(|b| *b == 0)
            && let Some(last) = f.last_mut()
        {
            *last = 1;
        }
        f
    }

    fn read(&self, i: usize) -> Result<RwLockReadGuard<'_, Shard>, StoreError> {
        self.shards.get(i).ok_or_else(poisoned)?.read().map_err(|_| poisoned())
    }

    fn write(&self, i: usize) -> Result<RwLockWriteGuard<'_, Shard>, StoreError> {
        self.shards.get(i).ok_or_else(poisoned)?.write().map_err(|_| poisoned())
    }

    /// The value recorded for `key`, if any (the first record with the key's fingerprint: a
    /// caller that can check a hit uses [`Self::get_checked`]).
    ///
    /// # Errors
    /// On a read failure.
    pub fn get(&self, key: &[u8; 32]) -> Result<Option<u64>, StoreError> {
        Ok(self.get_full(key)?.map(|(v, _)| v))
    }

    /// The value and the extra bytes of the first record with the key's fingerprint, if any.
    ///
    /// # Errors
    /// On a read failure.
    pub fn get_full(&self, key: &[u8; 32]) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        self.get_checked(key, |_, _| Ok(true))
    }

    /// The value and extra bytes of the first record with the key's fingerprint that `accept`
    /// takes: a record it refuses (another key with the same fingerprint, or an edited value) is
    /// skipped and probing goes on.
    ///
    /// # Errors
    /// On a read failure, or the first error of `accept`.
    pub fn get_checked(
        &self,
        key: &[u8; 32],
        mut accept: impl FnMut(u64, &[u8]) -> Result<bool, StoreError>,
    ) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let fp = self.fingerprint(key);
        let s = self.read(key[0] as usize)?;
        let mut found = None;
        probe(&s, self.slot_len(), &fp, |_, slot| {
            let (v, extra) = decode_value(slot, self.fp);
            if accept(v, &extra)? {
                found = Some((v, extra));
                return Ok(true);
            }
            Ok(false)
        })?;
        Ok(found)
    }

    /// Records `key` → `value` (direct write, no journal: for temporary indices).
    ///
    /// # Errors
    /// On a write failure.
    pub fn insert(&self, key: &[u8; 32], value: u64) -> Result<(), StoreError> {
        self.insert_full(key, value, &[])
    }

    /// Records `key` → `value` ‖ `extra` (`extra` is cut or zero-padded to the index's width).
    /// A record with the key's fingerprint and the same value is overwritten (inserting twice is
    /// harmless); any other record is kept, so the first value recorded for a key is the one
    /// lookups meet first.
    ///
    /// # Errors
    /// On a write failure.
    pub fn insert_full(&self, key: &[u8; 32], value: u64, extra: &[u8]) -> Result<(), StoreError> {
        let slot_len = self.slot_len();
        let fp = self.fingerprint(key);
        let mut slot = vec![0u8; slot_len as usize];
        slot[..self.fp].copy_from_slice(&fp);
        slot[self.fp..self.fp + 8].copy_from_slice(&value.to_be_bytes());
        let n = extra.len().min(self.extra);
        slot[self.fp + 8..self.fp + 8 + n].copy_from_slice(&extra[..n]);
        let i = key[0] as usize;
        let mut s = self.write(i)?;
        if s.file.is_none() {
            // Made durable by the next `sync`; until then its records are in the store's journal.
            let generation = s.generation + 1;
            *s = create_shard(&self.dir, i, slot_len, self.fp, INITIAL_SLOTS, &[])?;
            s.generation = generation;
        }
        for _ in 0..2 {
            let same = |_: u64, old: &[u8]| Ok(old[..self.fp + 8] == slot[..self.fp + 8]);
            match probe(&s, slot_len, &fp, same)? {
                Probe::Found(at, old) => {
                    if old != slot {
                        s.file()?.write_all_at(&slot, HEADER_LEN + at * slot_len)?;
                        s.writes += 1;
                    }
                    return Ok(());
                }
                Probe::Empty(at) if fits(s.count + 1, s.cap) => {
                    // The header's count is written at the next sync (one that is too low only
                    // makes a later insert probe further or grow earlier).
                    s.file()?.write_all_at(&slot, HEADER_LEN + at * slot_len)?;
                    s.count += 1;
                    s.writes += 1;
                    return Ok(());
                }
                // Half full (or, with a tampered count, full): rehash into twice the capacity.
                _ => self.grow(i, &mut s)?,
            }
        }
        Err(corrupt(format!(
            "hash index shard {i:02x} has no free slot after a resize"
        )))
    }

    fn grow(&self, i: usize, s: &mut Shard) -> Result<(), StoreError> {
        let slot_len = self.slot_len();
        let mut used = Vec::new();
        let chunk_slots = 4096u64;
        let mut at = 0u64;
        while at < s.cap {
            let n = chunk_slots.min(s.cap - at);
            let mut buf = vec![0u8; (n * slot_len) as usize];
            s.file()?.read_exact_at(&mut buf, HEADER_LEN + at * slot_len)?;
            for slot in buf.chunks_exact(slot_len as usize) {
                if is_used(slot, self.fp) {
                    used.push(slot.to_vec());
                }
            }
            at += n;
        }
        let mut cap = s.cap.max(INITIAL_SLOTS);
        while !fits(used.len() as u64 + 1, cap) {
            cap *= 2;
        }
        let cap = if cap == s.cap { cap * 2 } else { cap };
        let generation = s.generation + 1;
        *s = create_shard(&self.dir, i, slot_len, self.fp, cap, &used)?;
        s.generation = generation;
        Ok(())
    }

    /// Makes every write made before the call durable (fsync of the shards written since the last
    /// sync). Inserts may run meanwhile: a shard's fsync runs outside its lock.
    ///
    /// # Errors
    /// On a file system failure, or a shard that kept moving to a new file while it was synced.
    pub fn sync(&self) -> Result<(), StoreError> {
        let mut renamed = false;
        for i in 0..SHARDS {
            let mut done = false;
            for _ in 0..8 {
                let (file, generation, writes, pending) = {
                    let s = self.write(i)?;
                    if s.writes == s.synced && !s.pending {
                        done = true;
                        break;
                    }
                    let count = s.count;
                    s.file()?.write_all_at(&count.to_be_bytes(), 24)?;
                    (s.file()?.try_clone()?, s.generation, s.writes, s.pending)
                };
                file.sync_data()?;
                let mut s = self.write(i)?;
                if s.generation == generation {
                    if pending {
                        std::fs::rename(tmp_path(&self.dir, i), shard_path(&self.dir, i))?;
                        s.pending = false;
                        renamed = true;
                    }
                    s.synced = s.synced.max(writes);
                    done = true;
                    break;
                }
                // Grown while it was synced: the new file holds the records; sync that one.
            }
            if !done {
                return Err(corrupt(format!("hash index shard {i:02x} kept growing during a sync")));
            }
        }
        if renamed {
            File::open(&self.dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Calls `f` with every record (key, value, extra bytes), shard by shard (streamed: memory does
    /// not grow with the index). Inserts wait while a shard is read. The key is what the index
    /// keeps of it: its first byte and fingerprint, the other bytes zero; inserting that key puts
    /// the record back where it was.
    ///
    /// # Errors
    /// On a read failure, or the first error of `f`.
    pub fn for_each(
        &self,
        mut f: impl FnMut(&[u8; 32], u64, &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let slot_len = self.slot_len();
        for i in 0..SHARDS {
            let s = self.read(i)?;
            let Some(file) = s.file.as_ref() else {
                continue;
            };
            let mut at = 0u64;
            while at < s.cap {
                let n = 4096u64.min(s.cap - at);
                let mut buf = vec![0u8; (n * slot_len) as usize];
                file.read_exact_at(&mut buf, HEADER_LEN + at * slot_len)?;
                for slot in buf
                    .chunks_exact(slot_len as usize)
                    .filter(|slot| is_used(slot, self.fp))
                {
                    let mut key = [0u8; 32];
                    key[0] = i as u8;
                    key[1..=self.fp].copy_from_slice(&slot[..self.fp]);
                    let (value, extra) = decode_value(slot, self.fp);
                    f(&key, value, &extra)?;
                }
                at += n;
            }
        }
        Ok(())
    }

    /// Number of keys recorded (the sum of the shard headers' counts).
    ///
    /// # Errors
    /// When a lock is poisoned.
    pub fn len(&self) -> Result<u64, StoreError> {
        let mut n = 0;
        for i in 0..SHARDS {
            n += self.read(i)?.count;
        }
        Ok(n)
    }

    /// Whether no key is recorded.
    ///
    /// # Errors
    /// When a lock is poisoned.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }
}

fn decode_value(slot: &[u8], fp: usize) -> (u64, Vec<u8>) {
    let mut v = [0u8; 8];
    v.copy_from_slice(&slot[fp..fp + 8]);
    (u64::from_be_bytes(v), slot[fp + 8..].to_vec())
}

/// Whether a slot holds a record (its fingerprint is not all zero).
fn is_used(slot: &[u8], fp: usize) -> bool {
    slot[..fp].iter().any(|b| *b != 0)
}

/// Home slot of a fingerprint in a table of `cap` slots (a power of two).
fn home(fp: &[u8], cap: u64) -> u64 {
    let mut h = [0u8; 8];
    h.copy_from_slice(&fp[..8]);
    u64::from_be_bytes(h) & (cap - 1)
}

enum Probe {
    Found(u64, Vec<u8>),
    Empty(u64),
    Full,
}

/// Walks the records with fingerprint `fp` from its home slot until `take` takes one (`Found`),
/// an empty slot (`Empty`), or the whole table was seen (`Full`).
fn probe(
    s: &Shard,
    slot_len: u64,
    fp: &[u8],
    mut take: impl FnMut(u64, &[u8]) -> Result<bool, StoreError>,
) -> Result<Probe, StoreError> {
    let Some(file) = s.file.as_ref() else {
        return Ok(Probe::Full);
    };
    let n = fp.len();
    let mask = s.cap - 1;
    let mut at = home(fp, s.cap);
    let mut seen = 0u64;
    while seen < s.cap {
        let run = PROBE_RUN.min(s.cap - at).min(s.cap - seen);
        let mut buf = vec![0u8; (run * slot_len) as usize];
        file.read_exact_at(&mut buf, HEADER_LEN + at * slot_len)?;
        for (j, slot) in buf.chunks_exact(slot_len as usize).enumerate() {
            if !is_used(slot, n) {
                return Ok(Probe::Empty(at + j as u64));
            }
            if slot[..n] == fp[..] && take(at + j as u64, slot)? {
                return Ok(Probe::Found(at + j as u64, slot.to_vec()));
            }
        }
        seen += run;
        at = (at + run) & mask;
    }
    Ok(Probe::Full)
}

fn shard_path(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("{i:02x}.hix"))
}

fn tmp_path(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("{i:02x}.hix.tmp"))
}

impl Shard {
    fn absent() -> Self {
        Self {
            file: None,
            cap: 0,
            count: 0,
            writes: 0,
            synced: 0,
            generation: 0,
            pending: false,
        }
    }

    fn file(&self) -> Result<&File, StoreError> {
        self.file.as_ref().ok_or_else(|| corrupt("hash index shard not open"))
    }
}

enum Opened {
    Sound(Shard),
    Missing,
    Malformed,
}

fn open_shard(path: &Path, slot_len: u64, fp: usize) -> Result<Opened, StoreError> {
    let file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Opened::Missing),
        Err(e) => return Err(e.into()),
    };
    let mut h = [0u8; HEADER_LEN as usize];
    if file.read_exact_at(&mut h, 0).is_err() {
        tracing::warn!(path = %path.display(), "hash index shard too short; it is rebuilt");
        return Ok(Opened::Malformed);
    }
    let word = |a: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[a..a + 8]);
        u64::from_be_bytes(b)
    };
    let (cap, count) = (word(16), word(24));
    let ok = &h[..8] == SHARD_MAGIC
        && h[8..12] == (slot_len as u32).to_be_bytes()
        && h[12..16] == (fp as u32).to_be_bytes()
        && cap.is_power_of_two()
        && cap >= INITIAL_SLOTS
        && fits(count, cap)
        && cap.checked_mul(slot_len).and_then(|b| b.checked_add(HEADER_LEN)) == Some(file.metadata()?.len());
    if !ok {
        tracing::warn!(path = %path.display(), "hash index shard malformed; it is rebuilt");
        return Ok(Opened::Malformed);
    }
    Ok(Opened::Sound(Shard {
        file: Some(file),
        cap,
        count,
        writes: 0,
        synced: 0,
        generation: 0,
        pending: false,
    }))
}

/// Writes a shard of `cap` slots holding `used` (full slots) as `XX.hix.tmp` (through
/// `XX.hix.grow`, so that the previous `XX.hix.tmp` stays whole until replaced), not yet durable:
/// the next [`HashIndex::sync`] fsyncs it and renames it over `XX.hix`.
fn create_shard(
    dir: &Path,
    i: usize,
    slot_len: u64,
    fp: usize,
    cap: u64,
    used: &[Vec<u8>],
) -> Result<Shard, StoreError> {
    let mut header = [0u8; HEADER_LEN as usize];
    header[..8].copy_from_slice(SHARD_MAGIC);
    header[8..12].copy_from_slice(&(slot_len as u32).to_be_bytes());
    header[12..16].copy_from_slice(&(fp as u32).to_be_bytes());
    header[16..24].copy_from_slice(&cap.to_be_bytes());
    header[24..32].copy_from_slice(&(used.len() as u64).to_be_bytes());
    let grow = dir.join(format!("{i:02x}.hix.grow"));
    {
        let mut f = File::create(&grow)?;
        if used.is_empty() {
            // Sparse: the slots read as zeros (empty) until written.
            std::io::Write::write_all(&mut f, &header)?;
            f.set_len(HEADER_LEN + cap * slot_len)?;
        } else {
            let mut body = vec![0u8; (HEADER_LEN + cap * slot_len) as usize];
            body[..HEADER_LEN as usize].copy_from_slice(&header);
            let mask = cap - 1;
            for slot in used {
                let mut at = home(&slot[..fp], cap);
                loop {
                    let off = (HEADER_LEN + at * slot_len) as usize;
                    if !is_used(&body[off..off + slot_len as usize], fp) {
                        body[off..off + slot_len as usize].copy_from_slice(slot);
                        break;
                    }
                    at = (at + 1) & mask;
                }
            }
            // In page-sized writes, not one: Linux (6.16 and later) caches a file written in large
            // pieces in large folios, and every later small insert into such a folio walks all its
            // blocks (ext4): 40-byte writes cost ≈ 5× more CPU, a quarter of a node's CPU at 8M
            // entries (docs/performance.md, "Small index writes into large folios").
            for page in body.chunks(WRITE_PIECE) {
                std::io::Write::write_all(&mut f, page)?;
            }
        }
    }
    let tmp = tmp_path(dir, i);
    std::fs::rename(&grow, &tmp)?;
    let file = OpenOptions::new().read(true).write(true).open(&tmp)?;
    Ok(Shard {
        file: Some(file),
        cap,
        count: used.len() as u64,
        writes: 1,
        synced: 0,
        generation: 0,
        pending: true,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn k(i: u64) -> [u8; 32] {
        ledger_core::hash::Hash::digest(&i.to_be_bytes()).0
    }

    #[test]
    fn inserts_survive_resizes_and_reopen() {
        let d = tempfile::tempdir().unwrap();
        {
            let (ix, complete) = HashIndex::open(d.path(), 16, 32).unwrap();
            assert!(complete);
            assert_eq!(ix.present().unwrap(), [0; 32]);
            for i in 0..20_000u64 {
                ix.insert_full(&k(i), i, &k(i + 1)).unwrap();
            }
            ix.insert_full(&k(7), 70, &[9; 32]).unwrap();
            ix.sync().unwrap();
            // The second value for k(7) is a record of its own.
            assert_eq!(ix.len().unwrap(), 20_001);
        }
        let (ix, complete) = HashIndex::open(d.path(), 16, 32).unwrap();
        assert!(complete);
        assert_eq!(ix.present().unwrap(), [0xff; 32]);
        for i in (0..20_000u64).step_by(97) {
            assert_eq!(ix.get_full(&k(i)).unwrap(), Some((i, k(i + 1).to_vec())));
        }
        // A second value for a key is kept beside the first, which lookups meet first.
        assert_eq!(ix.get(&k(7)).unwrap(), Some(7));
        assert_eq!(
            ix.get_checked(&k(7), |v, _| Ok(v != 7)).unwrap(),
            Some((70, vec![9; 32]))
        );
        assert_eq!(ix.get(&k(20_000)).unwrap(), None);
    }

    #[test]
    fn colliding_fingerprints_keep_both_records_and_probing_goes_on() {
        let d = tempfile::tempdir().unwrap();
        // Same shard byte and fingerprint (bytes 1..=8), different keys; plus an all-zero key.
        let key = |tail: u8| {
            let mut k = [7u8; 32];
            k[31] = tail;
            k
        };
        {
            let (ix, _) = HashIndex::open(d.path(), 8, 0).unwrap();
            ix.insert(&key(1), 10).unwrap();
            ix.insert(&key(2), 20).unwrap();
            ix.insert(&key(3), 30).unwrap();
            ix.insert(&key(2), 20).unwrap(); // again: no new record
            ix.insert(&[0; 32], 5).unwrap();
            // Grow shard 7 so the colliding records are rehashed together.
            for i in 0..2000u64 {
                let mut k = k(i);
                k[0] = 7;
                ix.insert(&k, 1000 + i).unwrap();
            }
            ix.sync().unwrap();
            assert_eq!(ix.len().unwrap(), 2004);
        }
        let (ix, complete) = HashIndex::open(d.path(), 8, 0).unwrap();
        assert!(complete);
        // Unchecked, a colliding key meets the first record.
        assert_eq!(ix.get(&key(3)).unwrap(), Some(10));
        // The checked lookup skips the records the check refuses, in order.
        let mut seen = Vec::new();
        let hit = ix
            .get_checked(&key(3), |v, _| {
                seen.push(v);
                Ok(v == 30)
            })
            .unwrap();
        assert_eq!(hit, Some((30, vec![])));
        assert_eq!(seen, vec![10, 20, 30]);
        assert_eq!(ix.get_checked(&key(4), |v, _| Ok(v == 40)).unwrap(), None);
        assert_eq!(ix.get(&[0; 32]).unwrap(), Some(5));
        // for_each yields the shard byte and fingerprint; re-inserting them changes nothing.
        let mut listed = Vec::new();
        ix.for_each(|k, v, _| {
            if v < 1000 {
                listed.push((*k, v));
            }
            Ok(())
        })
        .unwrap();
        listed.sort_by_key(|(_, v)| *v);
        let mut partial = [0u8; 32];
        partial[..9].copy_from_slice(&[7; 9]);
        let mut zero = [0u8; 32];
        zero[8] = 1;
        assert_eq!(listed, vec![(zero, 5), (partial, 10), (partial, 20), (partial, 30)]);
        for (k, v) in &listed {
            ix.insert(k, *v).unwrap();
        }
        assert_eq!(ix.len().unwrap(), 2004);
    }

    #[test]
    fn an_old_format_shard_is_rebuilt() {
        let d = tempfile::tempdir().unwrap();
        {
            let (ix, _) = HashIndex::open(d.path(), 8, 0).unwrap();
            ix.insert(&[3u8; 32], 1).unwrap();
            ix.sync().unwrap();
        }
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(shard_path(d.path(), 3))
            .unwrap();
        f.write_all_at(b"LEDGHIX1", 0).unwrap();
        drop(f);
        let (ix, complete) = HashIndex::open(d.path(), 8, 0).unwrap();
        assert!(!complete);
        assert_eq!(ix.get(&[3u8; 32]).unwrap(), None);
    }

    #[test]
    fn the_index_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<HashIndex>();
    }

    #[test]
    fn temporary_index_is_removed_on_drop() {
        let ix = HashIndex::temporary().unwrap();
        let dir = ix.dir.clone();
        ix.insert(&[0; 32], 5).unwrap();
        assert_eq!(ix.get(&[0; 32]).unwrap(), Some(5));
        assert_eq!(ix.get(&[1; 32]).unwrap(), None);
        drop(ix);
        assert!(!dir.exists());
    }

    #[test]
    fn a_malformed_shard_is_replaced_by_an_empty_one() {
        let d = tempfile::tempdir().unwrap();
        let key = [3u8; 32];
        {
            let (ix, _) = HashIndex::open(d.path(), 8, 0).unwrap();
            ix.insert(&key, 1).unwrap();
            ix.insert(&[4u8; 32], 2).unwrap();
            ix.sync().unwrap();
        }
        std::fs::OpenOptions::new()
            .write(true)
            .open(shard_path(d.path(), 3))
            .unwrap()
            .set_len(100)
            .unwrap();
        let (ix, complete) = HashIndex::open(d.path(), 8, 0).unwrap();
        assert!(!complete);
        assert_eq!(ix.get(&key).unwrap(), None);
        assert_eq!(ix.get(&[4u8; 32]).unwrap(), Some(2));
        ix.insert(&key, 1).unwrap();
        assert_eq!(ix.get(&key).unwrap(), Some(1));
    }

    #[test]
    fn a_tampered_count_cannot_loop_or_overflow() {
        let d = tempfile::tempdir().unwrap();
        {
            let (ix, _) = HashIndex::open(d.path(), 8, 0).unwrap();
            for i in 0..30u64 {
                let mut key = k(i);
                key[0] = 9;
                ix.insert(&key, i).unwrap();
            }
            ix.sync().unwrap();
        }
        // The count says empty: inserts keep probing until a free slot or a resize.
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(shard_path(d.path(), 9))
            .unwrap();
        f.write_all_at(&0u64.to_be_bytes(), 24).unwrap();
        drop(f);
        let (ix, _) = HashIndex::open(d.path(), 8, 0).unwrap();
        for i in 30..200u64 {
            let mut key = k(i);
            key[0] = 9;
            ix.insert(&key, i).unwrap();
        }
        for i in 0..200u64 {
            let mut key = k(i);
            key[0] = 9;
            assert_eq!(ix.get(&key).unwrap(), Some(i));
        }
    }

    #[test]
    fn records_not_synced_are_dropped_whole_on_reopen() {
        let d = tempfile::tempdir().unwrap();
        {
            let (ix, _) = HashIndex::open(d.path(), 8, 0).unwrap();
            ix.insert(&[1u8; 32], 1).unwrap();
            ix.sync().unwrap();
            // Grows shard 1 past its first capacity without a sync.
            for i in 0..2000u64 {
                let mut key = k(i);
                key[0] = 1;
                ix.insert(&key, i).unwrap();
            }
            assert!(tmp_path(d.path(), 1).exists());
        }
        let (ix, complete) = HashIndex::open(d.path(), 8, 0).unwrap();
        assert!(complete);
        assert!(!tmp_path(d.path(), 1).exists());
        assert_eq!(ix.get(&[1u8; 32]).unwrap(), Some(1));
        // Inserted after the grow: only in the temporary file, dropped.
        let mut key = k(1999);
        key[0] = 1;
        assert_eq!(ix.get(&key).unwrap(), None);
    }

    #[test]
    fn a_sync_running_beside_inserts_and_grows_keeps_what_it_covered() {
        let d = tempfile::tempdir().unwrap();
        let ix = std::sync::Arc::new(HashIndex::open(d.path(), 8, 0).unwrap().0);
        let writer = {
            let ix = std::sync::Arc::clone(&ix);
            std::thread::spawn(move || {
                for i in 0..6000u64 {
                    let mut key = k(i);
                    key[0] = (i % 3) as u8; // three shards, each grown several times
                    ix.insert(&key, i).unwrap();
                }
            })
        };
        while !writer.is_finished() {
            ix.sync().unwrap();
        }
        writer.join().unwrap();
        ix.sync().unwrap();
        drop(ix);
        let (ix, complete) = HashIndex::open(d.path(), 8, 0).unwrap();
        assert!(complete);
        for i in 0..6000u64 {
            let mut key = k(i);
            key[0] = (i % 3) as u8;
            assert_eq!(ix.get(&key).unwrap(), Some(i), "key {i}");
        }
    }
}
