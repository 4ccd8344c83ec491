//! sled persistence for the ledger (requirement R2).
//!
//! All keyspaces live in **one** sled tree under one-byte prefixes, so that a whole group of
//! appends (entries, node hashes, indices, idempotency keys, the size, and possibly a checkpoint)
//! is written by one atomic `Batch` and made durable by one flush: a crash leaves either the whole
//! group or none of it (`docs/design.md`).
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `e` | index (u64 BE) | leaf hash (32 bytes) ‖ canonical entry bytes (the leaf) |
//! | `n` | level (u8 ≥ 4), index (u64 BE) | 32-byte hash of the perfect subtree |
//! | `h` | leaf hash | index (u64 BE) |
//! | `c` | tree size (u64 BE) | signed checkpoint note |
//! | `r` | client request id | index (u64 BE) ‖ SHA-256 of the envelope's leaf-independent bytes |
//! | `x` | tag (u8), value, 0x00, index (u64 BE) | empty (secondary indices: kind, subject, draw) |
//! | `m` | `size` | tree size (u64 BE) |
//! | `m` | `witnessed` | size (u64 BE) ‖ the latest witnessed checkpoint note (docs/witness.md) |
//! | `m` | other names | [`Store::commit_group_with_meta`] values (`raft.applied`: docs/cluster.md) |

pub mod export;
pub mod high_water;
pub mod tiles;
mod verify;

pub use ledger_core::registry::IndexTag;
pub use verify::{OpenReport, TamperFault};

/// Levels 1 to this one are not stored: they are recomputed from at most 2^level stored leaf
/// hashes when a proof needs them. This saves about 0.9 writes per entry (a third of the store's
/// write cost) for a few extra reads per proof.
pub const UNSTORED_LEVELS: u32 = 3;

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
}

/// The sled store.
pub struct Store {
    db: sled::Db,
    tree: sled::Tree,
    read_only: bool,
    // For a read-only open, the temporary copy that is deleted on drop.
    _snapshot: Option<tempfile::TempDir>,
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

fn node_key(level: u32, index: u64) -> [u8; 10] {
    let mut k = [0u8; 10];
    k[0] = b'n';
    k[1] = level as u8;
    k[2..].copy_from_slice(&index.to_be_bytes());
    k
}

fn read_u64(v: &[u8], what: &str) -> Result<u64, StoreError> {
    let a: [u8; 8] = v
        .get(..8)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| StoreError::Corrupt(what.to_string()))?;
    Ok(u64::from_be_bytes(a))
}

/// Term values may not contain NUL (the separator); such values are not indexed.
fn term_key(tag: u8, value: &str, index: u64) -> Option<Vec<u8>> {
    if value.as_bytes().contains(&0) {
        return None;
    }
    let mut k = Vec::with_capacity(2 + value.len() + 9);
    k.push(b'x');
    k.push(tag);
    k.extend_from_slice(value.as_bytes());
    k.push(0);
    k.extend_from_slice(&be(index));
    Some(k)
}

/// Page cache of a writable store (bytes): sled's default.
pub const DEFAULT_CACHE_BYTES: u64 = 1 << 30;

/// Page cache of a read-only store (bytes).
pub const READ_ONLY_CACHE_BYTES: u64 = 32 << 20;

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
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(cache_bytes)
            .open()?;
        let tree = db.open_tree("ledger")?;
        Ok(Self {
            db,
            tree,
            read_only: false,
            _snapshot: None,
        })
    }

    /// Opens a store read-only, whether or not a node is running on it: the directory is copied to
    /// a temporary snapshot which is opened instead (sled recovers the copy exactly as after a
    /// crash: a consistent prefix of acknowledged groups). The original is never written.
    ///
    /// # Errors
    /// When the directory does not exist, cannot be copied, or does not open.
    pub fn open_read_only(dir: &Path) -> Result<Self, StoreError> {
        if !dir.join("conf").exists() && !dir.join("db").exists() {
            return Err(StoreError::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} is not a ledger data directory", dir.display()),
            )));
        }
        let snap = tempfile::Builder::new().prefix("ledger-ro-").tempdir()?;
        copy_dir(dir, snap.path())?;
        // Readers scan or look up; a small page cache keeps their memory independent of the log
        // size (sled's default would grow to 1 GiB on a large log).
        let db = sled::Config::new()
            .path(snap.path())
            .cache_capacity(READ_ONLY_CACHE_BYTES)
            .open()?;
        let tree = db.open_tree("ledger")?;
        Ok(Self {
            db,
            tree,
            read_only: true,
            _snapshot: Some(snap),
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
        match self.tree.get(key(b'e', &be(index)))? {
            None => Ok(None),
            Some(v) => Ok(Some(
                v.get(32..)
                    .ok_or_else(|| StoreError::Corrupt(format!("entry {index}")))?
                    .to_vec(),
            )),
        }
    }

    /// The leaf hash stored with entry `index`.
    ///
    /// # Errors
    /// On storage failure or a short value.
    pub fn stored_leaf_hash(&self, index: u64) -> Result<Option<Hash>, StoreError> {
        match self.tree.get(key(b'e', &be(index)))? {
            None => Ok(None),
            Some(v) => Ok(Some(
                Hash::from_slice(v.get(..32).unwrap_or_default())
                    .map_err(|_| StoreError::Corrupt(format!("entry {index}")))?,
            )),
        }
    }

    /// Iterates entries `[start, end)` in order as (index, bytes).
    pub fn entries(&self, start: u64, end: u64) -> impl Iterator<Item = Result<(u64, Vec<u8>), StoreError>> + '_ {
        self.tree.range(key(b'e', &be(start))..key(b'e', &be(end))).map(|r| {
            let (k, v) = r?;
            let i = read_u64(&k[1..], "entry key")?;
            Ok((
                i,
                v.get(32..)
                    .ok_or_else(|| StoreError::Corrupt(format!("entry {i}")))?
                    .to_vec(),
            ))
        })
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
        match self.tree.get(key(b'h', &leaf_hash.0))? {
            None => Ok(None),
            Some(v) => Ok(Some(read_u64(&v, "leaf index")?)),
        }
    }

    /// Index and request digest recorded for a client request id.
    ///
    /// # Errors
    /// On storage failure.
    pub fn request(&self, request_id: &str) -> Result<Option<(u64, Hash)>, StoreError> {
        match self.tree.get(key(b'r', request_id.as_bytes()))? {
            None => Ok(None),
            Some(v) => {
                let idx = read_u64(&v, "request")?;
                let h = Hash::from_slice(v.get(8..).unwrap_or_default())
                    .map_err(|_| StoreError::Corrupt("request".into()))?;
                Ok(Some((idx, h)))
            }
        }
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
        let Some(from) = term_key(tag.byte(), value, start) else {
            return Ok(Vec::new());
        };
        let Some(to) = term_key(tag.byte(), value, u64::MAX) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for r in self.tree.range(from..=to).take(limit) {
            let (k, _) = r?;
            // A key edited into the data directory may be shorter than a term key: no panic.
            out.push(read_u64(
                k.get(k.len().saturating_sub(8)..).unwrap_or_default(),
                "term key",
            )?);
        }
        Ok(out)
    }

    /// Whether entry `index` carries a secondary-index term.
    ///
    /// # Errors
    /// On storage failure.
    pub fn has_term(&self, tag: IndexTag, value: &str, index: u64) -> Result<bool, StoreError> {
        match term_key(tag.byte(), value, index) {
            None => Ok(false),
            Some(k) => Ok(self.tree.contains_key(k)?),
        }
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
    /// log id and membership this way: docs/cluster.md). Names must not be `size` or `witnessed`.
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
        if let Some((name, _)) = meta.iter().find(|(name, _)| *name == "size" || *name == "witnessed") {
            return Err(StoreError::Corrupt(format!("meta name {name:?} is reserved")));
        }
        if self.read_only {
            return Err(StoreError::ReadOnly);
        }
        let mut b = sled::Batch::default();
        for e in entries {
            let mut v = Vec::with_capacity(32 + e.leaf.len());
            v.extend_from_slice(&e.leaf_hash.0);
            v.extend_from_slice(&e.leaf);
            b.insert(key(b'e', &be(e.index)), v);
            b.insert(key(b'h', &e.leaf_hash.0), &be(e.index));
            if let Some((id, digest)) = &e.request {
                let mut v = be(e.index).to_vec();
                v.extend_from_slice(&digest.0);
                b.insert(key(b'r', id.as_bytes()), v);
            }
            for (tag, value) in &e.terms {
                if let Some(k) = term_key(tag.byte(), value, e.index) {
                    b.insert(k, &[][..]);
                }
            }
        }
        for n in nodes.iter().filter(|n| n.level > UNSTORED_LEVELS) {
            b.insert(&node_key(n.level, n.index)[..], &n.hash.0);
        }
        b.insert(&b"msize"[..], &be(new_size));
        if let Some((size, note)) = checkpoint {
            b.insert(key(b'c', &be(size)), note.as_bytes());
        }
        for (name, value) in meta {
            b.insert(key(b'm', name.as_bytes()), *value);
        }
        self.tree.apply_batch(b)?;
        self.db.flush()?;
        Ok(())
    }

    /// All recorded request ids as (id, index, digest), in id order (ledger-raft carries them in
    /// snapshots: the export stream does not).
    pub fn requests(&self) -> impl Iterator<Item = Result<(String, u64, Hash), StoreError>> + '_ {
        self.tree.scan_prefix(b"r").map(|r| {
            let (k, v) = r?;
            let id = String::from_utf8(k[1..].to_vec()).map_err(|_| StoreError::Corrupt("request id".into()))?;
            let idx = read_u64(&v, "request")?;
            let h =
                Hash::from_slice(v.get(8..).unwrap_or_default()).map_err(|_| StoreError::Corrupt("request".into()))?;
            Ok((id, idx, h))
        })
    }

    /// Records request ids (id, index, digest) on their own, in one batch, durably: restores what
    /// [`Self::requests`] listed after an import.
    ///
    /// # Errors
    /// On storage failure.
    pub fn put_requests(&self, requests: &[(String, u64, Hash)]) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly);
        }
        let mut b = sled::Batch::default();
        for (id, index, digest) in requests {
            let mut v = be(*index).to_vec();
            v.extend_from_slice(&digest.0);
            b.insert(key(b'r', id.as_bytes()), v);
        }
        self.tree.apply_batch(b)?;
        self.db.flush()?;
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
        Ok(self.db.size_on_disk()?)
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
        if level == 0 {
            return self
                .stored_leaf_hash(index)
                .map_err(|e| ProofError::Source(e.to_string()))?
                .ok_or_else(|| ProofError::Source(format!("leaf {index} not stored")));
        }
        if level <= UNSTORED_LEVELS {
            let l = self.node(level - 1, 2 * index)?;
            let r = self.node(level - 1, 2 * index + 1)?;
            return Ok(ledger_core::hash::node_hash(&l, &r));
        }
        let v = self
            .tree
            .get(node_key(level, index))
            .map_err(|e| ProofError::Source(e.to_string()))?
            .ok_or_else(|| ProofError::Source(format!("node {level}/{index} not stored")))?;
        Hash::from_slice(&v).map_err(|e| ProofError::Source(e.to_string()))
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dst: PathBuf = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &dst)?;
        } else {
            std::fs::copy(e.path(), dst)?;
        }
    }
    Ok(())
}
