//! The store's per-entry lookups (leaf hash, request id, ticket → index) in on-disk hash indices
//! ([`crate::hindex`]) under `<store dir>/index/`, made durable through a journal in sled.
//!
//! Each group's new lookup records ride in the group's own sled batch as one key, `j` ‖ first
//! index of the group (u64 BE) → the records, so they are exactly as durable as the entries. After
//! the group is flushed the records are written into the shard files (no fsync). Every
//! [`SYNC_ENTRIES`] entries or [`SYNC_INTERVAL`] the shards are fsynced, `index/state` records the
//! size covered, and one batch records `mindexed` and deletes the journal keys applied. On open,
//! the journal keys left are re-applied (inserting a record twice is harmless).
//!
//! The index is not trusted: every hit is checked against the entries before it is used, a hit at
//! or beyond the store's size is ignored, and a shard that is missing or malformed is replaced by an
//! empty one and the leaf hashes re-inserted from the entries (request ids are not in the entries:
//! the ones outside the journal are lost, so a retry of such a request is appended again).
//!
//! Record: kind (`l` leaf hash, `r` request id, `t` ticket) ‖ key (32 bytes: the leaf hash, the
//! SHA-256 of the request id, the ticket) ‖ index (u64 BE) ‖ for `r` the request digest (32 bytes).
//!
//! The index files keep a fingerprint of each key ([`LEAF_FINGERPRINT`], [`REQUEST_FINGERPRINT`],
//! [`TICKET_FINGERPRINT`] bytes) and, for a request id, the first [`REQUEST_DIGEST_PREFIX`] bytes
//! of its digest; every hit is checked against the entry it names and a refused one lets the
//! lookup go on to the next record with that fingerprint.

use crate::hindex::HashIndex;
use crate::{PreparedEntry, Store, StoreError};
use ledger_core::entry::Entry;
use ledger_core::hash::Hash;
use ledger_core::registry::{envelope_kind, index_terms};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Entries between two syncs of the index files (counted in entries, not groups: many small
/// groups, as concurrent single Appends make, would otherwise fsync every shard several times a
/// second). Bounds, with [`SYNC_INTERVAL`], the journal re-applied on open.
pub const SYNC_ENTRIES: u64 = 65_536;
/// Time between two syncs of the index files (at the next group after it).
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// Key of the size the index files cover durably.
pub const INDEXED_KEY: &[u8] = b"mindexed";
/// Key of the size below which node start-up found every rated ticket in the ticket index
/// ([`Store::tickets_checked`]); removed when the index is rebuilt, lowered by a truncation.
pub const TICKETS_CHECKED_KEY: &[u8] = b"mtickets.checked";
/// Magic of `index/state`, followed by the size covered (u64 BE) and, for the leaf, request and
/// ticket indices in turn, the 32-byte bitmap of their shards that have a file.
const STATE_MAGIC: &[u8; 8] = b"LEDGIXS1";

/// Names the ticket keys an entry (its canonical bytes) uses, for [`Store::reindex`].
pub type TicketsOf = dyn Fn(&[u8]) -> Vec<[u8; 32]>;

/// Fingerprint bytes of a leaf hash in the index (a hit is checked against the entry's leaf hash,
/// so a collision costs one more read).
pub const LEAF_FINGERPRINT: usize = 8;
/// Fingerprint bytes of a request id's key: the id is not in the entry, so a hit can be checked
/// only against the digest; 16 bytes (with the shard byte, 136 bits) make a collision with another
/// client's id out of reach.
pub const REQUEST_FINGERPRINT: usize = 16;
/// Bytes of the request digest kept in the request index slot (checked against the digest
/// recomputed from the entry; the full digest is recomputed, never read from the index).
pub const REQUEST_DIGEST_PREFIX: usize = 8;
/// Fingerprint bytes of a ticket (the node checks a hit's entry uses the ticket; 136 bits keep a
/// forged collision out of reach).
pub const TICKET_FINGERPRINT: usize = 16;

const LEAF: u8 = b'l';
const REQUEST: u8 = b'r';
const TICKET: u8 = b't';

pub(crate) struct SyncState {
    entries: u64,
    since: Instant,
    applied: Vec<Vec<u8>>,
    // The sync running in the background, if any.
    job: Option<std::thread::JoinHandle<()>>,
}

/// The three lookup indices of a store.
pub(crate) struct Files {
    leaf: HashIndex,
    request: HashIndex,
    ticket: HashIndex,
    dir: PathBuf,
}

/// The lookup indices and their sync state.
pub(crate) struct Lookups {
    files: Arc<Files>,
    complete: bool,
    state: Mutex<SyncState>,
}

impl std::ops::Deref for Lookups {
    type Target = Files;
    fn deref(&self) -> &Files {
        &self.files
    }
}

impl Drop for Lookups {
    fn drop(&mut self) {
        // The background sync holds a handle on sled: let it finish before the store is gone.
        if let Ok(st) = self.state.get_mut()
            && let Some(job) = st.job.take()
        {
            let _ = job.join();
        }
    }
}

fn journal_key(first: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = b'j';
    k[1..].copy_from_slice(&first.to_be_bytes());
    k
}

/// The lookup index's directory under the store's directory.
pub const INDEX_DIR: &str = "index";

/// The request id's key in the index: SHA-256 of the id (UTF-8).
pub fn request_key(id: &str) -> [u8; 32] {
    Hash::digest(id.as_bytes()).0
}

/// The journal records of a group.
fn records(entries: &[PreparedEntry]) -> Vec<u8> {
    let mut v = Vec::with_capacity(entries.len() * 41);
    for e in entries {
        let mut rec = |kind: u8, key: &[u8; 32], extra: &[u8]| {
            v.push(kind);
            v.extend_from_slice(key);
            v.extend_from_slice(&e.index.to_be_bytes());
            v.extend_from_slice(extra);
        };
        rec(LEAF, &e.leaf_hash.0, &[]);
        if let Some((id, digest)) = &e.request {
            rec(REQUEST, &request_key(id), &digest.0);
        }
        for t in &e.tickets {
            rec(TICKET, t, &[]);
        }
    }
    v
}

impl Lookups {
    pub(crate) fn open(store_dir: &Path) -> Result<Self, StoreError> {
        let dir = store_dir.join(INDEX_DIR);
        let (leaf, a) = HashIndex::open(&dir.join("leaf"), LEAF_FINGERPRINT, 0)?;
        let (request, b) = HashIndex::open(&dir.join("request"), REQUEST_FINGERPRINT, REQUEST_DIGEST_PREFIX)?;
        let (ticket, c) = HashIndex::open(&dir.join("ticket"), TICKET_FINGERPRINT, 0)?;
        Ok(Self {
            files: Arc::new(Files {
                leaf,
                request,
                ticket,
                dir,
            }),
            complete: a && b && c,
            state: Mutex::new(SyncState {
                entries: 0,
                since: Instant::now(),
                applied: Vec::new(),
                job: None,
            }),
        })
    }

    pub(crate) fn lock(&self) -> Result<MutexGuard<'_, SyncState>, StoreError> {
        self.state
            .lock()
            .map_err(|_| StoreError::Corrupt("index lock poisoned".into()))
    }
}

impl Files {
    /// Inserts a journal value's records. A malformed record (a journal key edited in the data
    /// directory) ends the value with a warning: the index is an accelerator, checked on use.
    fn apply(&self, recs: &[u8]) -> Result<(), StoreError> {
        let mut i = 0;
        while i < recs.len() {
            let kind = recs[i];
            let len = if kind == REQUEST { 73 } else { 41 };
            let Some(r) = recs.get(i + 1..i + len) else {
                tracing::warn!(offset = i, "truncated lookup journal record ignored");
                return Ok(());
            };
            let mut key = [0u8; 32];
            key.copy_from_slice(&r[..32]);
            let mut ix = [0u8; 8];
            ix.copy_from_slice(&r[32..40]);
            let index = u64::from_be_bytes(ix);
            match kind {
                LEAF => self.leaf.insert(&key, index)?,
                REQUEST => self.request.insert_full(&key, index, &r[40..])?,
                TICKET => self.ticket.insert(&key, index)?,
                k => {
                    tracing::warn!(kind = k, "lookup journal record of unknown kind ignored");
                    return Ok(());
                }
            }
            i += len;
        }
        Ok(())
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.leaf.sync()?;
        self.request.sync()?;
        self.ticket.sync()
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("state")
    }

    fn indices(&self) -> [&HashIndex; 3] {
        [&self.leaf, &self.request, &self.ticket]
    }

    /// The size the files cover durably, when `index/state` is sound and every shard file it
    /// lists is still there.
    fn covered(&self) -> Result<Option<u64>, StoreError> {
        let Ok(b) = std::fs::read(self.state_path()) else {
            return Ok(None);
        };
        if b.len() != 16 + 96 || &b[..8] != STATE_MAGIC {
            return Ok(None);
        }
        for (ix, want) in self.indices().into_iter().zip(b[16..].chunks_exact(32)) {
            let have = ix.present()?;
            if have.iter().zip(want).any(|(h, w)| w & !h != 0) {
                return Ok(None);
            }
        }
        let mut n = [0u8; 8];
        n.copy_from_slice(&b[8..16]);
        Ok(Some(u64::from_be_bytes(n)))
    }

    /// Syncs the shards, records `size` as covered in `index/state`, then sets `mindexed` and
    /// deletes the journal `keys` (whose records were applied before the call) in one batch.
    fn checkpoint(&self, tree: &sled::Tree, keys: Vec<Vec<u8>>, size: u64, read_only: bool) -> Result<(), StoreError> {
        self.sync()?;
        self.write_covered(size)?;
        if !read_only {
            let mut b = sled::Batch::default();
            b.insert(INDEXED_KEY, &size.to_be_bytes());
            for k in keys {
                b.remove(k);
            }
            tree.apply_batch(b)?;
        }
        Ok(())
    }

    fn write_covered(&self, size: u64) -> Result<(), StoreError> {
        let tmp = self.dir.join("state.tmp");
        let mut b = STATE_MAGIC.to_vec();
        b.extend_from_slice(&size.to_be_bytes());
        for ix in self.indices() {
            b.extend_from_slice(&ix.present()?);
        }
        {
            let mut f = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut f, &b)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, self.state_path())?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        Ok(())
    }
}

impl Store {
    /// Adds the group's journal key and postings to its batch (called by `commit_group` with the
    /// index lock held).
    pub(crate) fn index_group(&self, b: &mut sled::Batch, entries: &[PreparedEntry]) -> Result<Vec<u8>, StoreError> {
        let recs = records(entries);
        if let Some(e) = entries.first() {
            b.insert(&journal_key(e.index)[..], recs.as_slice());
        }
        crate::postings::add_group(&self.tree, b, entries.iter().map(|e| (e.index, e.terms.as_slice())))?;
        Ok(recs)
    }

    /// Writes a durable group's records into the index files, and every [`SYNC_ENTRIES`] entries or
    /// [`SYNC_INTERVAL`] starts a background sync that makes them durable and then drops the
    /// journal keys they cover. A failure here does not undo the group (it is durable, and its
    /// journal key is re-applied on open): it is logged.
    pub(crate) fn index_applied(&self, st: &mut SyncState, entries: &[PreparedEntry], recs: &[u8], new_size: u64) {
        let Some(first) = entries.first() else {
            return;
        };
        st.entries += entries.len() as u64;
        if let Err(e) = self.lookups.apply(recs) {
            // The group's journal key is kept (not listed for deletion) until the next open.
            tracing::error!(error = %e, "writing the lookup index failed; its journal is re-applied on the next open");
            return;
        }
        st.applied.push(journal_key(first.index).to_vec());
        let due = st.entries >= SYNC_ENTRIES || st.since.elapsed() >= SYNC_INTERVAL;
        if !due || st.job.as_ref().is_some_and(|j| !j.is_finished()) {
            return;
        }
        if let Some(job) = st.job.take() {
            let _ = job.join();
        }
        // Every record applied so far is in the files (page cache): the sync covers them all.
        let keys = std::mem::take(&mut st.applied);
        let files = Arc::clone(&self.lookups.files);
        let tree = self.tree.clone();
        let read_only = self.read_only;
        st.entries = 0;
        st.since = Instant::now();
        let spawned = std::thread::Builder::new()
            .name("ledger-index-sync".into())
            .spawn(move || {
                if let Err(e) = files.checkpoint(&tree, keys, new_size, read_only) {
                    tracing::error!(error = %e, "syncing the lookup index failed; its journal is re-applied on the next open");
                }
            });
        match spawned {
            Ok(h) => st.job = Some(h),
            Err(e) => tracing::error!(error = %e, "cannot start the lookup index sync"),
        }
    }

    /// Makes the index files durable and drops the journal keys (synchronously, after any
    /// background sync).
    fn index_checkpoint(&self, st: &mut SyncState, size: u64) -> Result<(), StoreError> {
        if let Some(job) = st.job.take() {
            let _ = job.join();
        }
        let keys = std::mem::take(&mut st.applied);
        self.lookups.checkpoint(&self.tree, keys, size, self.read_only)?;
        st.entries = 0;
        st.since = Instant::now();
        Ok(())
    }

    /// Calls `f` with every recorded request id as (key, index, digest), below the store's size
    /// (ledger-raft carries them in snapshots: the export stream does not). The key is what the
    /// index keeps of the SHA-256 of the id: its first [`REQUEST_FINGERPRINT`] + 1 bytes, the rest
    /// zero ([`Self::put_requests`] takes it back as it is). The digest is recomputed from the
    /// entry; a record whose digest prefix does not match its entry is left out. Streamed.
    ///
    /// # Errors
    /// On storage failure, or the first error of `f`.
    pub fn for_each_request(
        &self,
        mut f: impl FnMut([u8; 32], u64, Hash) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.ensure_index()?;
        let size = self.size()?;
        self.lookups
            .request
            .for_each(|key, index, extra| match self.checked_digest(index, size, extra)? {
                Some(digest) => f(*key, index, digest),
                None => Ok(()),
            })
    }

    /// The request digest of entry `index` when it is below `size` and starts with `prefix`.
    fn checked_digest(&self, index: u64, size: u64, prefix: &[u8]) -> Result<Option<Hash>, StoreError> {
        if index >= size {
            return Ok(None);
        }
        let Some(bytes) = self.entry(index)? else {
            return Ok(None);
        };
        let Ok(e) = Entry::decode(&bytes) else {
            return Ok(None);
        };
        let digest = request_digest(e);
        Ok((digest.0.get(..prefix.len()) == Some(prefix)).then_some(digest))
    }

    /// Records request ids as (SHA-256 of the id, or the key [`Self::for_each_request`] listed;
    /// index; digest), then syncs the index files: restores what [`Self::for_each_request`] listed
    /// after an import. Callers check each against the entry it names first (its digest); a record
    /// whose digest is not its entry's is refused at lookup anyway.
    ///
    /// # Errors
    /// On storage failure, or when the store is read-only.
    pub fn put_requests(&self, requests: &[([u8; 32], u64, Hash)]) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly);
        }
        let mut st = self.lock_index()?;
        for (key, index, digest) in requests {
            self.lookups.request.insert_full(key, *index, &digest.0)?;
        }
        let size = self.size()?;
        self.index_checkpoint(&mut st, size)
    }

    /// Indexes tickets of entries already in the store that the index lacks (a store imported,
    /// forked or rebuilt without the node's ticket extractor), then syncs the index files. Not
    /// journaled: if the process dies before the sync, the next start-up finds them missing again
    /// and puts them again (ledger-node `load_state`).
    ///
    /// # Errors
    /// On storage failure, or when the store is read-only.
    pub fn put_tickets(&self, tickets: &[([u8; 32], u64)]) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly);
        }
        if tickets.is_empty() {
            return Ok(());
        }
        let mut st = self.lock_index()?;
        for (t, i) in tickets {
            self.lookups.ticket.insert(t, *i)?;
        }
        let size = self.size()?;
        self.index_checkpoint(&mut st, size)
    }

    /// On open: re-inserts the leaf hashes from the entries when the index files are incomplete or
    /// older than the journal's start, then re-applies the journal.
    pub(crate) fn recover_index(&self) -> Result<(), StoreError> {
        let mut st = self.lock_index()?;
        let size = self.size()?;
        // A malformed `mindexed` (edited) forces the re-insertion below.
        let indexed = match self.tree.get(INDEXED_KEY)? {
            None => 0,
            Some(v) => crate::read_u64(&v, "mindexed").unwrap_or(u64::MAX),
        };
        let fresh = self.lookups.covered()?.is_none_or(|c| c < indexed);
        if size > 0 && (!self.lookups.complete || fresh) {
            tracing::warn!(
                size,
                "the lookup index is missing, damaged or older than the store: re-inserting the leaf hashes \
                 (request ids outside the journal are lost; run `ledger-node reindex` for tickets and terms)"
            );
            self.reinsert(None)?;
            // The rebuilt index holds no ticket outside the journal: start-up checks them all again.
            if !self.read_only {
                self.tree.remove(TICKETS_CHECKED_KEY)?;
            }
        }
        for r in self.tree.scan_prefix(b"j") {
            let (k, v) = r?;
            self.lookups.apply(&v)?;
            st.applied.push(k.to_vec());
        }
        self.index_checkpoint(&mut st, size)
    }

    /// The size below which every rated ticket is known to be in the ticket index: node start-up
    /// checked (and put) them up to it, and groups since carry theirs in their journal. 0 when
    /// never checked, when the index was rebuilt since, or when the value is malformed; never above
    /// the store's size.
    ///
    /// # Errors
    /// On storage failure.
    pub fn tickets_checked(&self) -> Result<u64, StoreError> {
        let v = match self.tree.get(TICKETS_CHECKED_KEY)? {
            None => return Ok(0),
            Some(v) => crate::read_u64(&v, "mtickets.checked").unwrap_or(0),
        };
        Ok(v.min(self.size()?))
    }

    /// Records that every rated ticket below `size` is in the ticket index (call it once they were
    /// put: [`Self::put_tickets`] syncs the index before it returns). Durable on return.
    ///
    /// # Errors
    /// On storage failure, or when the store is read-only.
    pub fn set_tickets_checked(&self, size: u64) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly);
        }
        self.tree.insert(TICKETS_CHECKED_KEY, &size.to_be_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    /// Recovers the lookup index of a read-only store at its first lookup ([`Store::open_read_only`]
    /// leaves it as copied); a writable store recovered it at open.
    fn ensure_index(&self) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        if self.without_lookups {
            return Err(StoreError::Io(std::io::Error::other(
                "this read-only copy of the store was made without its lookup index \
                 (Store::open_read_only_without_lookups): it answers no lookup by leaf hash, request id or ticket",
            )));
        }
        if self.index_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let _one = self
            .index_recovery
            .lock()
            .map_err(|_| StoreError::Corrupt("index lock poisoned".into()))?;
        if !self.index_ready.load(Ordering::Acquire) {
            self.recover_index()?;
            self.index_ready.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Whether the lookup index was recovered ([`Self::ensure_index`]): a read-only store that was
    /// only read in order never recovers it.
    #[must_use]
    pub fn lookup_index_recovered(&self) -> bool {
        self.index_ready.load(std::sync::atomic::Ordering::Acquire)
    }

    fn lock_index(&self) -> Result<MutexGuard<'_, SyncState>, StoreError> {
        self.lookups.lock()
    }

    /// Inserts every entry's leaf hash (and, with `tickets_of`, its tickets) into the index.
    fn reinsert(&self, tickets_of: Option<&TicketsOf>) -> Result<(), StoreError> {
        let size = self.size()?;
        for r in self.entries(0, size) {
            let (i, bytes) = r?;
            self.lookups.leaf.insert(&ledger_core::hash::leaf_hash(&bytes).0, i)?;
            if let Some(f) = tickets_of {
                for t in f(&bytes) {
                    self.lookups.ticket.insert(&t, i)?;
                }
            }
        }
        Ok(())
    }

    /// Rebuilds every index that can be derived from the entries: leaf hashes, tickets (with
    /// `tickets_of`, which names the ticket keys an entry's bytes use) and the term postings.
    /// Request ids are not in the entries: those already recorded are kept, the lost ones cannot
    /// be restored. Returns the number of entries indexed.
    ///
    /// # Errors
    /// On a read-only store or a storage failure.
    pub fn reindex(&self, tickets_of: Option<&TicketsOf>) -> Result<u64, StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly);
        }
        let mut st = self.lock_index()?;
        self.reinsert(tickets_of)?;
        let mut b = sled::Batch::default();
        for r in self.tree.scan_prefix(b"x") {
            b.remove(r?.0);
        }
        self.tree.apply_batch(b)?;
        let size = self.size()?;
        let mut block: Vec<(u64, Vec<_>)> = Vec::new();
        let flush_block = |block: &mut Vec<(u64, Vec<_>)>| -> Result<(), StoreError> {
            let mut b = sled::Batch::default();
            crate::postings::add_group(&self.tree, &mut b, block.iter().map(|(i, t)| (*i, t.as_slice())))?;
            self.tree.apply_batch(b)?;
            block.clear();
            Ok(())
        };
        for r in self.entries(0, size) {
            let (i, bytes) = r?;
            let terms = Entry::decode(&bytes)
                .ok()
                .and_then(|e| {
                    envelope_kind(&e.envelope)
                        .ok()
                        .map(|k| index_terms(k, &e.envelope.payload))
                })
                .unwrap_or_default();
            block.push((i, terms));
            if block.len() == 4096 {
                flush_block(&mut block)?;
            }
        }
        flush_block(&mut block)?;
        for r in self.tree.scan_prefix(b"j") {
            let (k, v) = r?;
            self.lookups.apply(&v)?;
            st.applied.push(k.to_vec());
        }
        self.index_checkpoint(&mut st, size)?;
        self.db.flush()?;
        Ok(size)
    }

    /// Index of the entry with this leaf hash: an index hit is used only when the entry stored there
    /// has this leaf hash.
    /// Index of the entry with this leaf hash: an index hit is used only when the entry stored there
    /// has this leaf hash (a refused hit, edited or another leaf hash with the same fingerprint,
    /// lets the lookup go on).
    pub(crate) fn lookup_leaf(&self, leaf_hash: &Hash) -> Result<Option<u64>, StoreError> {
        self.ensure_index()?;
        let size = self.size()?;
        let hit = self.lookups.leaf.get_checked(&leaf_hash.0, |i, _| {
            let ok = i < size && self.stored_leaf_hash(i)? == Some(*leaf_hash);
            if !ok {
                tracing::debug!(index = i, %leaf_hash, "leaf-hash index record does not match the store; skipped");
            }
            Ok(ok)
        })?;
        Ok(hit.map(|(i, _)| i))
    }

    /// Index and digest recorded for a request id: a record is used only when the entry at its
    /// index holds an envelope whose digest starts with the recorded prefix; the digest returned is
    /// the one recomputed from that entry.
    pub(crate) fn lookup_request(&self, request_id: &str) -> Result<Option<(u64, Hash)>, StoreError> {
        self.ensure_index()?;
        let size = self.size()?;
        let mut digest = None;
        let hit = self
            .lookups
            .request
            .get_checked(&request_key(request_id), |i, prefix| {
                digest = self.checked_digest(i, size, prefix)?;
                if digest.is_none() {
                    tracing::warn!(index = i, "request-id index record does not match the store; skipped");
                }
                Ok(digest.is_some())
            })?;
        Ok(match (hit, digest) {
            (Some((i, _)), Some(d)) => Some((i, d)),
            _ => None,
        })
    }

    /// Index of the entry that used a ticket (a record at or beyond the store's size is skipped;
    /// the caller checks that the entry at the index does use the ticket).
    pub(crate) fn lookup_ticket(&self, ticket: &[u8; 32]) -> Result<Option<u64>, StoreError> {
        self.ensure_index()?;
        let size = self.size()?;
        let hit = self.lookups.ticket.get_checked(ticket, |i, _| {
            if i >= size {
                tracing::warn!(index = i, "ticket index record beyond the store's size; skipped");
            }
            Ok(i < size)
        })?;
        Ok(hit.map(|(i, _)| i))
    }
}

/// The request digest of an entry's envelope: its canonical encoding in an entry with zero index,
/// time and chain link (the node's `request_digest`).
fn request_digest(mut e: Entry) -> Hash {
    e.index = 0;
    e.timestamp_micros = 0;
    e.prev_root = Hash::default();
    Hash::digest(&e.encode())
}
