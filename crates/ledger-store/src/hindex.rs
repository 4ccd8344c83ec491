//! An on-disk hash index: 32-byte keys → u64 (and, for request ids, a 32-byte digest), in 256
//! shard files of open addressing (`docs/format.md` §Index files).
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
pub const SHARD_MAGIC: &[u8; 8] = b"LEDGHIX1";
/// Bytes of a shard file header: magic ‖ slot length (u32 BE) ‖ 0 (u32) ‖ capacity (u64 BE) ‖
/// used slots (u64 BE).
pub const HEADER_LEN: u64 = 32;
/// Slots of a new shard (a power of two; the file is sparse until written).
pub const INITIAL_SLOTS: u64 = 1024;
/// Slot bytes before the optional extra value: used flag (1) ‖ key (32) ‖ value (u64 BE).
const BASE_SLOT: usize = 41;
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
        let (mut ix, _) = Self::open(t.path(), 0)?;
        ix._temp = Some(t);
        Ok(ix)
    }

    /// Opens (creating if needed) the index in `dir`, whose slots carry `extra` bytes (0 or 32)
    /// after the u64 value. A shard file is created at its first insert; a missing one is empty.
    /// Returns the index and whether its files were sound: `false` when a shard file was malformed
    /// and has been replaced by an empty one (its keys are lost and must be re-inserted by whoever
    /// can rebuild them). Compare [`Self::present`] with what an earlier sync recorded to notice
    /// a deleted shard.
    ///
    /// # Errors
    /// On a file system failure.
    pub fn open(dir: &Path, extra: usize) -> Result<(Self, bool), StoreError> {
        std::fs::create_dir_all(dir)?;
        let slot_len = (BASE_SLOT + extra) as u64;
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
            let shard = match open_shard(&path, slot_len)? {
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
        (BASE_SLOT + self.extra) as u64
    }

    fn read(&self, i: usize) -> Result<RwLockReadGuard<'_, Shard>, StoreError> {
        self.shards.get(i).ok_or_else(poisoned)?.read().map_err(|_| poisoned())
    }

    fn write(&self, i: usize) -> Result<RwLockWriteGuard<'_, Shard>, StoreError> {
        self.shards.get(i).ok_or_else(poisoned)?.write().map_err(|_| poisoned())
    }

    /// The value recorded for `key`, if any.
    ///
    /// # Errors
    /// On a read failure.
    pub fn get(&self, key: &[u8; 32]) -> Result<Option<u64>, StoreError> {
        Ok(self.get_full(key)?.map(|(v, _)| v))
    }

    /// The value and the extra bytes recorded for `key`, if any.
    ///
    /// # Errors
    /// On a read failure.
    pub fn get_full(&self, key: &[u8; 32]) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let s = self.read(key[0] as usize)?;
        Ok(match probe(&s, self.slot_len(), key)? {
            Probe::Found(_, slot) => Some(decode_value(&slot)),
            _ => None,
        })
    }

    /// Records `key` → `value` (direct write, no journal: for temporary indices).
    ///
    /// # Errors
    /// On a write failure.
    pub fn insert(&self, key: &[u8; 32], value: u64) -> Result<(), StoreError> {
        self.insert_full(key, value, &[])
    }

    /// Records `key` → `value` ‖ `extra` (`extra` is cut or zero-padded to the index's width).
    /// An existing record of the key is overwritten.
    ///
    /// # Errors
    /// On a write failure.
    pub fn insert_full(&self, key: &[u8; 32], value: u64, extra: &[u8]) -> Result<(), StoreError> {
        let slot_len = self.slot_len();
        let mut slot = vec![0u8; slot_len as usize];
        slot[0] = 1;
        slot[1..33].copy_from_slice(key);
        slot[33..41].copy_from_slice(&value.to_be_bytes());
        let n = extra.len().min(self.extra);
        slot[41..41 + n].copy_from_slice(&extra[..n]);
        let i = key[0] as usize;
        let mut s = self.write(i)?;
        if s.file.is_none() {
            // Made durable by the next `sync`; until then its records are in the store's journal.
            let generation = s.generation + 1;
            *s = create_shard(&self.dir, i, slot_len, INITIAL_SLOTS, &[])?;
            s.generation = generation;
        }
        for _ in 0..2 {
            match probe(&s, slot_len, key)? {
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
                if slot[0] == 1 {
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
        *s = create_shard(&self.dir, i, slot_len, cap, &used)?;
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
    /// not grow with the index). Inserts wait while a shard is read.
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
                for slot in buf.chunks_exact(slot_len as usize).filter(|slot| slot[0] == 1) {
                    let mut key = [0u8; 32];
                    key.copy_from_slice(&slot[1..33]);
                    let (value, extra) = decode_value(slot);
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

fn decode_value(slot: &[u8]) -> (u64, Vec<u8>) {
    let mut v = [0u8; 8];
    v.copy_from_slice(&slot[33..41]);
    (u64::from_be_bytes(v), slot[41..].to_vec())
}

enum Probe {
    Found(u64, Vec<u8>),
    Empty(u64),
    Full,
}

fn probe(s: &Shard, slot_len: u64, key: &[u8; 32]) -> Result<Probe, StoreError> {
    let Some(file) = s.file.as_ref() else {
        return Ok(Probe::Full);
    };
    let mut h = [0u8; 8];
    h.copy_from_slice(&key[1..9]);
    let mask = s.cap - 1;
    let mut at = u64::from_be_bytes(h) & mask;
    let mut seen = 0u64;
    while seen < s.cap {
        let run = PROBE_RUN.min(s.cap - at).min(s.cap - seen);
        let mut buf = vec![0u8; (run * slot_len) as usize];
        file.read_exact_at(&mut buf, HEADER_LEN + at * slot_len)?;
        for (j, slot) in buf.chunks_exact(slot_len as usize).enumerate() {
            if slot[0] != 1 {
                return Ok(Probe::Empty(at + j as u64));
            }
            if slot[1..33] == key[..] {
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

fn open_shard(path: &Path, slot_len: u64) -> Result<Opened, StoreError> {
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
        && h[12..16] == [0; 4]
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
fn create_shard(dir: &Path, i: usize, slot_len: u64, cap: u64, used: &[Vec<u8>]) -> Result<Shard, StoreError> {
    let mut header = [0u8; HEADER_LEN as usize];
    header[..8].copy_from_slice(SHARD_MAGIC);
    header[8..12].copy_from_slice(&(slot_len as u32).to_be_bytes());
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
                let mut h = [0u8; 8];
                h.copy_from_slice(&slot[2..10]);
                let mut at = u64::from_be_bytes(h) & mask;
                loop {
                    let off = (HEADER_LEN + at * slot_len) as usize;
                    if body[off] != 1 {
                        body[off..off + slot_len as usize].copy_from_slice(slot);
                        break;
                    }
                    at = (at + 1) & mask;
                }
            }
            std::io::Write::write_all(&mut f, &body)?;
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
            let (ix, complete) = HashIndex::open(d.path(), 32).unwrap();
            assert!(complete);
            assert_eq!(ix.present().unwrap(), [0; 32]);
            for i in 0..20_000u64 {
                ix.insert_full(&k(i), i, &k(i + 1)).unwrap();
            }
            ix.insert_full(&k(7), 70, &[9; 32]).unwrap();
            ix.sync().unwrap();
            assert_eq!(ix.len().unwrap(), 20_000);
        }
        let (ix, complete) = HashIndex::open(d.path(), 32).unwrap();
        assert!(complete);
        assert_eq!(ix.present().unwrap(), [0xff; 32]);
        for i in (0..20_000u64).step_by(97) {
            let want = if i == 7 {
                (70, vec![9; 32])
            } else {
                (i, k(i + 1).to_vec())
            };
            assert_eq!(ix.get_full(&k(i)).unwrap(), Some(want));
        }
        assert_eq!(ix.get(&k(7)).unwrap(), Some(70));
        assert_eq!(ix.get(&k(20_000)).unwrap(), None);
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
            let (ix, _) = HashIndex::open(d.path(), 0).unwrap();
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
        let (ix, complete) = HashIndex::open(d.path(), 0).unwrap();
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
            let (ix, _) = HashIndex::open(d.path(), 0).unwrap();
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
        let (ix, _) = HashIndex::open(d.path(), 0).unwrap();
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
            let (ix, _) = HashIndex::open(d.path(), 0).unwrap();
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
        let (ix, complete) = HashIndex::open(d.path(), 0).unwrap();
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
        let ix = std::sync::Arc::new(HashIndex::open(d.path(), 0).unwrap().0);
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
        let (ix, complete) = HashIndex::open(d.path(), 0).unwrap();
        assert!(complete);
        for i in 0..6000u64 {
            let mut key = k(i);
            key[0] = (i % 3) as u8;
            assert_eq!(ix.get(&key).unwrap(), Some(i), "key {i}");
        }
    }
}
