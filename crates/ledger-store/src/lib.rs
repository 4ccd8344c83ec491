//! sled persistence for the ledger (requirement R2).
//!
//! All keyspaces live in **one** sled tree under one-byte prefixes, so that a whole group of
//! appends (entries, node hashes, indices, idempotency keys, the size, and possibly a checkpoint)
//! is written by one atomic `Batch` and made durable by one flush: a crash leaves either the whole
//! group or none of it (`docs/design.md`).
//!
//! Store layout 2 (issue 14; [`layout`]): entries in bundles of 256 and node hashes in C2SP
//! tlog-tiles hash tiles, so that a group costs O(1) sled keys. A store of layout 1 (one `e` key
//! per entry, `n` node keys) is refused by [`Store::open`] and migrated with `ledger-node export`
//! and `ledger-node import`; [`Store::open_read_only`] still reads it for the export.
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `m` | `layout` | u32 BE `2` ([`layout::LAYOUT_VERSION`]), written when the store is created |
//! | `b` | bundle N (u64 BE) | full entry bundle: the leaves of entries `[256·N, 256·N+256)`, each `u32 BE length ‖ leaf` (compressed when smaller); or a record pointing at those bytes in a bundle file under `bundles/` ([`bundle_files`]) |
//! | `t` | tile level L (u8), tile N (u64 BE) | C2SP hash tile: the 32-byte hashes of the level-`8·L` nodes `256·N …` (level 0: full tiles; level ≥ 1: partial tiles rewritten as they grow) |
//! | `p` | first index (u64 BE) | one group's entries after the last full bundle: (leaf hash ‖ u32 BE length ‖ leaf)* |
//! | `c` | tree size (u64 BE) | signed checkpoint note |
//! | `x` | tag (u8), value, 0x00, first index of the chunk (u64 BE) | ≤ 128 indices, delta varints ([`postings`]) |
//! | `j` | first index of a group (u64 BE) | the group's lookup records not yet synced to `index/` ([`journal`]) |
//! | `m` | `indexed` | size the files under `index/` cover durably (u64 BE) |
//! | `m` | `size` | tree size (u64 BE) |
//! | `m` | `witnessed` | size (u64 BE) ‖ the latest witnessed checkpoint note (docs/witness.md) |
//! | `m` | `tickets.checked` | size (u64 BE) below which start-up found every rated ticket in `index/` ([`Store::tickets_checked`]) |
//! | `m` | other names | [`Store::commit_group_with_meta`] values (`raft.applied`: docs/cluster.md) |
//!
//! The per-entry lookups (leaf hash, request id, ticket → index) are not sled keys: they live in
//! on-disk hash indices under `index/` in the store's directory ([`hindex`], [`journal`]).

pub mod bundle_files;
pub mod export;
pub mod high_water;
pub mod hindex;
mod journal;
pub mod layout;
mod legacy;
pub mod postings;
pub mod scan;
pub mod tickets;
pub mod tiles;
mod verify;

pub use journal::{
    LEAF_FINGERPRINT, REQUEST_DIGEST_PREFIX, REQUEST_FINGERPRINT, TICKET_FINGERPRINT, TicketsOf, request_key,
};
pub use ledger_core::registry::IndexTag;
pub use verify::{OpenReport, TamperFault, Verification, Visit};

use ledger_core::compact::{CompactTree, CompletedNode};
use ledger_core::hash::Hash;
use ledger_core::merkle::{NodeSource, ProofError};
use std::path::{Path, PathBuf};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// sled failed.
    #[error("storage: {0}")]
    Sled(#[from] sled::Error),
    /// File system failure.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The store does not verify; it must not be served.
    #[error("store does not verify: {0}")]
    Tampered(TamperFault),
    /// A stored value has the wrong shape.
    #[error("corrupt value under key {0}")]
    Corrupt(String),
    /// A write was attempted on a read-only store.
    #[error("the store is open read-only")]
    ReadOnly,
    /// Export/import stream problem.
    #[error("export stream: {0}")]
    Export(String),
    /// The visitor of [`Store::verify_streaming`] failed (the node's state fold).
    #[error("{0}")]
    Visit(String),
    /// The data directory holds a store layout this build does not write.
    #[error(
        "the store is of layout {found}; this ledger-node keeps layout {}. Migrate it: `ledger-node export --data OLD --out FILE`, then `ledger-node import --data NEW --in FILE` (docs/operations.md, \"Migrating a store to layout 2\")",
        layout::LAYOUT_VERSION
    )]
    OldLayout {
        /// Layout found (1: no `mlayout` key).
        found: u32,
    },
}

/// One entry of a group to commit.
#[derive(Debug, Clone)]
pub struct PreparedEntry {
    /// Index assigned by the sequencer.
    pub index: u64,
    /// Canonical entry bytes.
    pub leaf: Vec<u8>,
    /// Its leaf hash.
    pub leaf_hash: Hash,
    /// Idempotency key and the digest of what it was used for.
    pub request: Option<(String, Hash)>,
    /// Secondary index terms (tag, value).
    pub terms: Vec<(IndexTag, String)>,
    /// Ticket keys the entry used (a micro-evaluation's ticket hash), indexed durably with the
    /// group ([`Store::ticket_index`]).
    pub tickets: Vec<[u8; 32]>,
}

/// The sled store.
pub struct Store {
    db: sled::Db,
    tree: sled::Tree,
    read_only: bool,
    // Layout of the store: 2, or 1 for a read-only open of an old store.
    layout: u32,
    cache: layout::TileCache,
    lookups: journal::Lookups,
    // Whether the lookup index was recovered (journal re-applied, rebuilt if incomplete): at open
    // for a writable store; for a read-only one at its first lookup, never for a reader that only
    // reads entries in order (`ledger-verify replay --data`, `export`).
    index_ready: std::sync::atomic::AtomicBool,
    index_recovery: std::sync::Mutex<()>,
    // For a read-only open, the temporary copy that is deleted on drop.
    _snapshot: Option<tempfile::TempDir>,
    // For a writable open, its directory and page cache ([`Store::reopen`]).
    writable_at: Option<(PathBuf, u64)>,
    // A read-only copy made without its lookup index ([`Store::open_read_only_without_lookups`]):
    // every lookup is refused.
    without_lookups: bool,
    // The full bundles' files (the store's own `bundles/`, also for a read-only copy).
    bundles: bundle_files::BundleFiles,
}

/// Key of the latest witnessed checkpoint.
pub const WITNESSED_KEY: &[u8] = b"mwitnessed";

fn be(i: u64) -> [u8; 8] {
    i.to_be_bytes()
}

fn key(prefix: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + rest.len());
    k.push(prefix);
    k.extend_from_slice(rest);
    k
}

pub(crate) fn read_u64(v: &[u8], what: &str) -> Result<u64, StoreError> {
    let a: [u8; 8] = v
        .get(..8)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| StoreError::Corrupt(what.to_string()))?;
    Ok(u64::from_be_bytes(a))
}

/// Page cache of a writable store (bytes): sled's default.
pub const DEFAULT_CACHE_BYTES: u64 = 1 << 30;

/// Page cache of the node's store (bytes) unless `serve --cache-mb` says otherwise: sled's
/// default of 1 GiB made the node's memory grow to it and beyond (docs/performance.md).
pub const NODE_CACHE_BYTES: u64 = 128 << 20;

/// Page cache of a read-only store (bytes).
pub const READ_ONLY_CACHE_BYTES: u64 = 32 << 20;

/// Entry bytes a long read-only scan reads between two [`Store::reopen_read_only`] calls (each
/// reopen costs about 25 ms; 2 MiB kept `replay --data` 4 – 7 MB lower, at twice the reopens:
/// docs/performance.md).
pub const READ_ONLY_SCAN_BYTES: u64 = 4 << 20;

/// How long [`open_locked`] waits for sled's directory lock.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Opens sled, waiting up to [`LOCK_WAIT`] while its directory lock is taken. sled releases the
/// lock of a dropped database only when its last background I/O task ends, which can be a moment
/// after the drop, so a reopen in the same process (serve's emptiness check then its real open,
/// `init` then `serve`) could fail spuriously (seen once in CI: "could not acquire lock"). Another
/// process that holds the directory is still refused, after the wait.
fn open_locked(config: &sled::Config) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match config.open() {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock") && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            r => return Ok(r?),
        }
    }
}

/// sled's settings for a writable store.
fn writable_config(dir: &Path, cache_bytes: u64) -> sled::Config {
    sled::Config::new()
        .path(dir)
        .mode(sled::Mode::HighThroughput)
        .cache_capacity(cache_bytes)
}

/// sled's settings for a read-only copy: a small page cache, and no flusher thread (nothing is
/// written to the copy after its recovery; one thread fewer at each reopen).
fn read_only_config(path: &Path) -> sled::Config {
    sled::Config::new()
        .path(path)
        .cache_capacity(READ_ONLY_CACHE_BYTES)
        .flush_every_ms(None)
}

impl Store {
    /// Opens (creating if needed) a store for writing. sled holds a lock on the directory, so only
    /// one process may have it open for writing.
    ///
    /// # Errors
    /// When sled cannot open the directory.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(dir, DEFAULT_CACHE_BYTES)
    }

    /// [`Self::open`] with a given page-cache size in bytes.
    ///
    /// # Errors
    /// When sled cannot open the directory.
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        let db = open_locked(&writable_config(dir, cache_bytes))?;
        let tree = db.open_tree("ledger")?;
        let layout = store_layout(&tree, true)?;
        if layout != layout::LAYOUT_VERSION {
            return Err(StoreError::OldLayout { found: layout });
        }
        db.flush()?;
        let store = Self {
            db,
            tree,
            read_only: false,
            layout,
            cache: layout::TileCache::default(),
            lookups: journal::Lookups::open(dir)?,
            index_ready: std::sync::atomic::AtomicBool::new(true),
            index_recovery: std::sync::Mutex::new(()),
            _snapshot: None,
            writable_at: Some((dir.to_path_buf(), cache_bytes)),
            without_lookups: false,
            bundles: bundle_files::BundleFiles::new(dir),
        };
        store.recover_index()?;
        Ok(store)
    }

    /// Opens a store read-only, whether or not a node is running on it: the directory is copied to
    /// a temporary snapshot which is opened instead (sled recovers the copy exactly as after a
    /// crash: a consistent prefix of acknowledged groups). The original is never written.
    ///
    /// Nothing is rebuilt or re-applied at open: the copy's lookup index (leaf hash, request id,
    /// ticket → index) is recovered from its journal only at the first lookup, so a reader that
    /// only reads entries, checkpoints and tiles never pays for it; one that never looks up
    /// (`ledger-verify replay --data`, `export`, `backup`) does not even copy it
    /// ([`Self::open_read_only_without_lookups`]).
    ///
    /// # Errors
    /// When the directory does not exist, cannot be copied, or does not open.
    pub fn open_read_only(dir: &Path) -> Result<Self, StoreError> {
        Self::open_copy(dir, true)
    }

    /// [`Self::open_read_only`] for a reader that never looks an entry up by leaf hash, request id
    /// or ticket (`export`, `backup`, `ledger-verify replay --data`): the lookup index
    /// (`index/`, ≈ 67 bytes per entry) is not copied, so such a reader neither copies it nor
    /// reads a running node's index files from end to end (which on Linux ≥ 6.16 brings them back
    /// into the page cache in large folios and makes the node's index writes dearer:
    /// docs/operations.md). Every lookup on the copy is an error, never a silent miss.
    ///
    /// # Errors
    /// As [`Self::open_read_only`].
    pub fn open_read_only_without_lookups(dir: &Path) -> Result<Self, StoreError> {
        Self::open_copy(dir, false)
    }

    fn open_copy(dir: &Path, lookups: bool) -> Result<Self, StoreError> {
        if !dir.join("conf").exists() && !dir.join("db").exists() {
            return Err(StoreError::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} is not a ledger data directory", dir.display()),
            )));
        }
        let snap = tempfile::Builder::new().prefix("ledger-ro-").tempdir()?;
        // The bundle files are read where they are: bytes a bundle's record points at are never
        // written again, and bytes appended after the copy are not pointed at by it.
        let mut skip = vec![bundle_files::BUNDLES_DIR];
        if !lookups {
            skip.push(journal::INDEX_DIR);
        }
        copy_dir(dir, snap.path(), &skip)?;
        // Readers scan or look up; a small page cache keeps their memory independent of the log
        // size (sled's default would grow to 1 GiB on a large log).
        let bundles = bundle_files::BundleFiles::new(dir);
        Self::on_copy(read_only_config(snap.path()).open()?, snap, lookups, bundles)
    }

    /// The read-only store over the opened database `db` of the private copy `snap` (`lookups`:
    /// whether its lookup index was copied) of a store whose bundle files are `bundles`.
    fn on_copy(
        db: sled::Db,
        snap: tempfile::TempDir,
        lookups: bool,
        bundles: bundle_files::BundleFiles,
    ) -> Result<Self, StoreError> {
        let tree = db.open_tree("ledger")?;
        let layout = store_layout(&tree, false)?;
        Ok(Self {
            without_lookups: !lookups,
            db,
            tree,
            read_only: true,
            layout,
            cache: layout::TileCache::default(),
            lookups: journal::Lookups::open(snap.path())?,
            // A layout-1 store is opened read-only only to be exported: no lookup index to recover.
            index_ready: std::sync::atomic::AtomicBool::new(layout != layout::LAYOUT_VERSION),
            index_recovery: std::sync::Mutex::new(()),
            _snapshot: Some(snap),
            writable_at: None,
            bundles,
        })
    }

    /// Closes and reopens a read-only store's private copy, which frees what sled holds in memory
    /// for the pages read so far. sled's page cache does not bound a scan: it weighs a page by its
    /// bytes in the log, which for a node stored as a blob (a leaf of several entry bundles,
    /// about 1 MB) is only the blob pointer, and it applies its bound per shard only after 64
    /// accesses to that shard, so every bundle read stays in memory (`ledger-verify replay
    /// --data` grew by about the size of the log it read: docs/performance.md). A scan over a
    /// large store reopens the copy every [`READ_ONLY_SCAN_BYTES`] read. The copy is private and
    /// was recovered at the first open, so the reopened store holds the same entries.
    ///
    /// # Errors
    /// When the store is not a read-only one, or the copy does not open again.
    pub fn reopen_read_only(mut self) -> Result<Self, StoreError> {
        let Some(snap) = self._snapshot.take() else {
            return Err(StoreError::Io(std::io::Error::other(
                "only a read-only store can be reopened",
            )));
        };
        let lookups = !self.without_lookups;
        let bundles = bundle_files::BundleFiles::new(self.bundles.store_dir());
        drop(self);
        Self::on_copy(open_locked(&read_only_config(snap.path()))?, snap, lookups, bundles)
    }

    /// Closes and reopens the store (a read-only one with [`Self::reopen_read_only`]; a writable
    /// one flushed, then opened again on its directory with the same page cache, its lookup index
    /// kept open as it is), which frees what sled holds in memory for the pages read so far: a
    /// long scan ([`Verification`], the export) reopens the store every so many bytes of entries
    /// read so that its memory does not grow with the log.
    ///
    /// # Errors
    /// On storage failure; the store is then closed.
    pub fn reopen(mut self) -> Result<Self, StoreError> {
        let Some((dir, cache_bytes)) = self.writable_at.take() else {
            return self.reopen_read_only();
        };
        self.db.flush()?;
        // sled keeps the directory locked until the old database is dropped: close it first.
        drop(self.tree);
        drop(self.db);
        let db = open_locked(&writable_config(&dir, cache_bytes))?;
        let tree = db.open_tree("ledger")?;
        Ok(Self {
            db,
            tree,
            writable_at: Some((dir, cache_bytes)),
            ..self
        })
    }

    /// Number of entries.
    ///
    /// # Errors
    /// On storage failure.
    pub fn size(&self) -> Result<u64, StoreError> {
        match self.tree.get(b"msize")? {
            None => Ok(0),
            Some(v) => read_u64(&v, "msize"),
        }
    }

    /// The compact tree of the stored log, rebuilt from O(log n) stored node hashes.
    ///
    /// # Errors
    /// On storage failure or a missing node hash.
    pub fn compact_tree(&self) -> Result<CompactTree, StoreError> {
        let size = self.size()?;
        let mut nodes = Vec::new();
        let mut start = 0u64;
        for level in (0..64u32).rev() {
            if size >> level & 1 == 1 {
                nodes.push(
                    self.node(level, start >> level)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                );
                start += 1 << level;
            }
        }
        CompactTree::from_parts(size, nodes).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// Canonical bytes of entry `index`.
    ///
    /// # Errors
    /// On storage failure.
    pub fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.record(index)?.map(|(_, leaf)| leaf))
    }

    fn record(&self, index: u64) -> Result<layout::Found, StoreError> {
        if self.layout == 1 {
            self.record_v1(index)
        } else {
            self.record_v2(index)
        }
    }

    /// Layout of the store (2; 1 only for a read-only open of a store to migrate).
    #[must_use]
    pub fn layout(&self) -> u32 {
        self.layout
    }

    /// The leaf hash stored with entry `index`.
    ///
    /// # Errors
    /// On storage failure or a short value.
    pub fn stored_leaf_hash(&self, index: u64) -> Result<Option<Hash>, StoreError> {
        if self.layout == 1 {
            return Ok(self.record_v1(index)?.and_then(|(h, _)| h));
        }
        self.leaf_hash_v2(index)
    }

    /// Iterates entries `[start, end)` in order as (index, bytes), bundle by bundle: memory does
    /// not depend on the range.
    pub fn entries(&self, start: u64, end: u64) -> impl Iterator<Item = Result<(u64, Vec<u8>), StoreError>> + '_ {
        self.records(start, end).map(|r| r.map(|(i, _, leaf)| (i, leaf)))
    }

    /// Iterates entries `[start, end)` with their stored leaf hashes.
    pub(crate) fn records(
        &self,
        start: u64,
        end: u64,
    ) -> Box<dyn Iterator<Item = Result<layout::Record, StoreError>> + '_> {
        if self.layout == 1 {
            Box::new(self.records_v1(start, end))
        } else {
            Box::new(layout::Records::new(self, start, end))
        }
    }

    /// Timestamp of entry `index`, read from its encoding without decoding the rest.
    ///
    /// # Errors
    /// On storage failure or a malformed entry.
    pub fn timestamp(&self, index: u64) -> Result<Option<u64>, StoreError> {
        Ok(match self.entry(index)? {
            None => None,
            Some(b) => Some(read_u64_le(b.get(9..17)).ok_or_else(|| StoreError::Corrupt(format!("entry {index}")))?),
        })
    }

    /// Index of the entry with this leaf hash.
    ///
    /// # Errors
    /// On storage failure.
    pub fn index_of_leaf(&self, leaf_hash: &Hash) -> Result<Option<u64>, StoreError> {
        self.lookup_leaf(leaf_hash)
    }

    /// Index and request digest recorded for a client request id.
    ///
    /// # Errors
    /// On storage failure.
    pub fn request(&self, request_id: &str) -> Result<Option<(u64, Hash)>, StoreError> {
        self.lookup_request(request_id)
    }

    /// Index of the entry that used a ticket, as durable as the entry itself. A hit at or beyond
    /// the store's size is ignored; the caller checks that the entry at the index uses the ticket.
    ///
    /// # Errors
    /// On storage failure.
    pub fn ticket_index(&self, ticket: &[u8; 32]) -> Result<Option<u64>, StoreError> {
        self.lookup_ticket(ticket)
    }

    /// The stored checkpoint note of exactly `size`.
    ///
    /// # Errors
    /// On storage failure.
    pub fn checkpoint(&self, size: u64) -> Result<Option<String>, StoreError> {
        Ok(self
            .tree
            .get(key(b'c', &be(size)))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// The latest stored checkpoint (size, note).
    ///
    /// # Errors
    /// On storage failure.
    pub fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        match self.tree.scan_prefix(b"c").next_back() {
            None => Ok(None),
            Some(r) => {
                let (k, v) = r?;
                Ok(Some((
                    read_u64(&k[1..], "checkpoint key")?,
                    String::from_utf8_lossy(&v).into_owned(),
                )))
            }
        }
    }

    /// The stored checkpoints of size `from` or more, in size order (a scan that reopens the store
    /// resumes here).
    pub fn checkpoints_from(&self, from: u64) -> impl Iterator<Item = Result<(u64, String), StoreError>> + '_ {
        self.tree
            .range(key(b'c', &be(from))..)
            .take_while(|r| r.as_ref().map_or(true, |(k, _)| k.first() == Some(&b'c')))
            .map(|r| {
                let (k, v) = r?;
                Ok((
                    read_u64(&k[1..], "checkpoint key")?,
                    String::from_utf8_lossy(&v).into_owned(),
                ))
            })
    }

    /// All stored checkpoints in size order.
    pub fn checkpoints(&self) -> impl Iterator<Item = Result<(u64, String), StoreError>> + '_ {
        self.tree.scan_prefix(b"c").map(|r| {
            let (k, v) = r?;
            Ok((
                read_u64(&k[1..], "checkpoint key")?,
                String::from_utf8_lossy(&v).into_owned(),
            ))
        })
    }

    /// Indices carrying a secondary-index term, from `start`, at most `limit`.
    ///
    /// # Errors
    /// On storage failure.
    pub fn query(&self, tag: IndexTag, value: &str, start: u64, limit: usize) -> Result<Vec<u64>, StoreError> {
        postings::query(&self.tree, tag, value, start, limit)
    }

    /// Whether entry `index` carries a secondary-index term.
    ///
    /// # Errors
    /// On storage failure.
    pub fn has_term(&self, tag: IndexTag, value: &str, index: u64) -> Result<bool, StoreError> {
        postings::has(&self.tree, tag, value, index)
    }

    /// Writes a sequenced group atomically and durably: one sled batch, one flush. Nothing of the
    /// group is visible to a reader that opens the store after a crash unless all of it is.
    ///
    /// # Errors
    /// On storage failure; then nothing of the group may be acknowledged.
    pub fn commit_group(
        &self,
        entries: &[PreparedEntry],
        nodes: &[CompletedNode],
        new_size: u64,
        checkpoint: Option<(u64, &str)>,
    ) -> Result<(), StoreError> {
        self.commit_group_with_meta(entries, nodes, new_size, checkpoint, &[])
    }

    /// [`Self::commit_group`] that also writes meta values (key `m` ‖ name) in the same batch, so
    /// that they are durable exactly when the group is (ledger-raft stores the last applied Raft
    /// log id and membership this way: docs/cluster.md). Names must not be `size`, `witnessed`,
    /// `layout`, `indexed` or `tickets.checked`.
    ///
    /// # Errors
    /// On storage failure (nothing written), or a reserved meta name.
    pub fn commit_group_with_meta(
        &self,
        entries: &[PreparedEntry],
        nodes: &[CompletedNode],
        new_size: u64,
        checkpoint: Option<(u64, &str)>,
        meta: &[(&str, &[u8])],
    ) -> Result<(), StoreError> {
        if let Some((name, _)) = meta
            .iter()
            .find(|(name, _)| ["size", "witnessed", "layout", "indexed", "tickets.checked"].contains(name))
        {
            return Err(StoreError::Corrupt(format!("meta name {name:?} is reserved")));
        }
        if self.read_only {
            return Err(StoreError::ReadOnly);
        }
        // The index lock serializes groups (postings are read, modified and written).
        let mut ix = self.lookups.lock()?;
        let mut b = sled::Batch::default();
        self.stage_entries(&mut b, entries, nodes)?;
        let recs = self.index_group(&mut b, entries)?;
        b.insert(&b"msize"[..], &be(new_size));
        if let Some((size, note)) = checkpoint {
            b.insert(key(b'c', &be(size)), note.as_bytes());
        }
        for (name, value) in meta {
            b.insert(key(b'm', name.as_bytes()), *value);
        }
        self.tree.apply_batch(b)?;
        self.db.flush()?;
        self.index_applied(&mut ix, entries, &recs, new_size);
        Ok(())
    }

    /// A meta value written by [`Self::commit_group_with_meta`].
    ///
    /// # Errors
    /// On storage failure.
    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(key(b'm', name.as_bytes()))?.map(|v| v.to_vec()))
    }

    /// Stores a checkpoint on its own (durably).
    ///
    /// # Errors
    /// On storage failure.
    pub fn put_checkpoint(&self, size: u64, note: &str) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly);
        }
        self.tree.insert(key(b'c', &be(size)), note.as_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    /// Replaces the stored checkpoint of `size` with the same checkpoint carrying witness
    /// cosignatures, and when `witnessed` (it reached the charter's witness quorum) records it as
    /// the latest witnessed checkpoint. Durable on return.
    ///
    /// # Errors
    /// On storage failure.
    pub fn put_cosigned_checkpoint(&self, size: u64, note: &str, witnessed: bool) -> Result<(), StoreError> {
        self.put_cosigned_checkpoint_with_meta(size, note, witnessed, &[])
    }

    /// [`Self::put_cosigned_checkpoint`] that also writes meta values in the same batch, as
    /// [`Self::commit_group_with_meta`] does (ledger-raft: the applied Raft log id).
    ///
    /// # Errors
    /// On storage failure (nothing written), or a reserved meta name.
    pub fn put_cosigned_checkpoint_with_meta(
        &self,
        size: u64,
        note: &str,
        witnessed: bool,
        meta: &[(&str, &[u8])],
    ) -> Result<(), StoreError> {
        if let Some((name, _)) = meta
            .iter()
            .find(|(name, _)| ["size", "witnessed", "layout", "indexed"].contains(name))
        {
            return Err(StoreError::Corrupt(format!("meta name {name:?} is reserved")));
        }
        if self.read_only {
            return Err(StoreError::ReadOnly);
        }
        let mut b = sled::Batch::default();
        b.insert(key(b'c', &be(size)), note.as_bytes());
        if witnessed {
            let mut v = be(size).to_vec();
            v.extend_from_slice(note.as_bytes());
            b.insert(WITNESSED_KEY, v);
        }
        for (name, value) in meta {
            b.insert(key(b'm', name.as_bytes()), *value);
        }
        self.tree.apply_batch(b)?;
        self.db.flush()?;
        Ok(())
    }

    /// The latest witnessed checkpoint (size, note), if any.
    ///
    /// # Errors
    /// On storage failure or a malformed value.
    pub fn latest_witnessed(&self) -> Result<Option<(u64, String)>, StoreError> {
        match self.tree.get(WITNESSED_KEY)? {
            None => Ok(None),
            Some(v) => Ok(Some((
                read_u64(&v, "mwitnessed")?,
                String::from_utf8_lossy(&v[8..]).into_owned(),
            ))),
        }
    }

    /// Bytes on disk.
    ///
    /// # Errors
    /// On storage failure.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()? + self.bundles.size()?)
    }

    /// Raw access for tests that play the attacker (rewrite, delete, swap stored records).
    #[doc(hidden)]
    pub fn raw_tree(&self) -> &sled::Tree {
        &self.tree
    }

    /// Flushes everything.
    ///
    /// # Errors
    /// On storage failure.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

fn read_u64_le(b: Option<&[u8]>) -> Option<u64> {
    Some(u64::from_le_bytes(b?.try_into().ok()?))
}

impl NodeSource for Store {
    fn node(&self, level: u32, index: u64) -> Result<Hash, ProofError> {
        if self.layout == 1 {
            self.node_v1(level, index)
        } else {
            self.node_v2(level, index)
        }
    }
}

/// The layout of the store in `tree`: its `mlayout` key; none and no other key: a new store (the
/// key is written when `create`); none but other keys: layout 1.
fn store_layout(tree: &sled::Tree, create: bool) -> Result<u32, StoreError> {
    if let Some(v) = tree.get(layout::LAYOUT_KEY)? {
        let a: [u8; 4] = v
            .as_ref()
            .try_into()
            .map_err(|_| StoreError::Corrupt("mlayout".into()))?;
        let found = u32::from_be_bytes(a);
        if found != layout::LAYOUT_VERSION {
            return Err(StoreError::OldLayout { found });
        }
        return Ok(found);
    }
    if tree.first()?.is_some() {
        return Ok(1);
    }
    if create {
        tree.insert(layout::LAYOUT_KEY, &layout::LAYOUT_VERSION.to_be_bytes())?;
    }
    Ok(layout::LAYOUT_VERSION)
}

/// Copies directory `from` into `to`, leaving out its entries named in `skip` (not those below).
fn copy_dir(from: &Path, to: &Path, skip: &[&str]) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        if skip.iter().any(|s| e.file_name() == *s) {
            continue;
        }
        let dst: PathBuf = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &dst, &[])?;
        } else {
            match std::fs::copy(e.path(), dst) {
                // A running node renames index shards as they grow (`hindex`): a file gone since
                // the listing is skipped (the index is checked on open and rebuilt if need be).
                Err(x) if x.kind() == std::io::ErrorKind::NotFound => {}
                r => {
                    r?;
                }
            }
        }
    }
    Ok(())
}
