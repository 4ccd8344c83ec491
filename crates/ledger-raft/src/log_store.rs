//! Durable Raft log storage (`RaftLogStorage` + `RaftLogReader`, openraft storage-v2) on its own
//! sled database under `DATA/raft/log`.
//!
//! One sled tree, keys under one-byte prefixes so that every operation is one atomic batch:
//!
//! | key | value |
//! |---|---|
//! | `l` ‖ log index (u64 BE) | the openraft entry (bincode) |
//! | `mvote` | the vote (bincode) |
//! | `mcommitted` | the committed log id (bincode) |
//! | `mpurged` | the last purged log id (bincode) |
//!
//! Durability as openraft requires: sled's periodic flush is off, and every append, truncation,
//! purge and vote is fsync'd (`flush_async`) before the append callback fires or the call returns.
//! Purged entries are deleted, so the keys stay bounded by the entries not yet purged.

use crate::types::{LogEntry, LogId, StorageError, TypeConfig};
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{AnyError, ErrorSubject, ErrorVerb, OptionalSend, StorageIOError, Vote};
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

const VOTE: &[u8] = b"mvote";
const COMMITTED: &[u8] = b"mcommitted";
const PURGED: &[u8] = b"mpurged";

fn log_key(index: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = b'l';
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

pub(crate) fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, String> {
    bincode::serde::encode_to_vec(v, bincode::config::standard()).map_err(|e| e.to_string())
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, String> {
    let (v, used) = bincode::serde::decode_from_slice(b, bincode::config::standard()).map_err(|e| e.to_string())?;
    if used != b.len() {
        return Err(format!("{} trailing bytes", b.len() - used));
    }
    Ok(v)
}

fn io(subject: ErrorSubject<u64>, verb: ErrorVerb, e: impl ToString) -> StorageError {
    StorageIOError::new(subject, verb, AnyError::error(e.to_string())).into()
}

fn read_logs(e: impl ToString) -> StorageError {
    io(ErrorSubject::Logs, ErrorVerb::Read, e)
}

fn write_logs(e: impl ToString) -> StorageError {
    io(ErrorSubject::Logs, ErrorVerb::Write, e)
}

/// Bytes of a value as the log stores it (bincode), for measurements.
pub fn encoded_len<T: serde::Serialize>(v: &T) -> usize {
    encode(v).map_or(0, |b| b.len())
}

/// The Raft log on sled. Cloning shares the database (the clone is the log reader).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    tree: sled::Tree,
}

impl LogStore {
    /// Opens (creating) the log database in `dir` (by convention `DATA/raft/log`).
    ///
    /// # Errors
    /// When sled cannot open the directory (another process has it open, or it is damaged).
    pub fn open(dir: &Path) -> Result<Self, sled::Error> {
        let db = sled::Config::new()
            .path(dir)
            // No periodic flush: nothing is durable unless this code flushed it, so the
            // fsync-before-acknowledge order is the only one there is.
            .flush_every_ms(None)
            .cache_capacity(64 << 20)
            .open()?;
        let tree = db.open_tree("raft")?;
        Ok(Self {
            inner: Arc::new(Inner { db, tree }),
        })
    }

    async fn sync(&self) -> Result<(), sled::Error> {
        self.inner.db.flush_async().await.map(drop)
    }

    fn get_meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, String> {
        match self.inner.tree.get(key).map_err(|e| e.to_string())? {
            None => Ok(None),
            Some(v) => decode(&v).map(Some),
        }
    }

    fn last_entry_id(&self) -> Result<Option<LogId>, StorageError> {
        match self.inner.tree.scan_prefix(b"l").next_back() {
            None => Ok(None),
            Some(r) => {
                let (_, v) = r.map_err(read_logs)?;
                let e: LogEntry = decode(&v).map_err(read_logs)?;
                Ok(Some(e.log_id))
            }
        }
    }

    /// Number of log entries held (not purged): for tests and metrics.
    pub fn held_entries(&self) -> usize {
        self.inner.tree.scan_prefix(b"l").count()
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<LogEntry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(i) => Bound::Included(log_key(*i).to_vec()),
            Bound::Excluded(i) => Bound::Excluded(log_key(*i).to_vec()),
            Bound::Unbounded => Bound::Included(log_key(0).to_vec()),
        };
        let end = match range.end_bound() {
            Bound::Included(i) => Bound::Included(log_key(*i).to_vec()),
            Bound::Excluded(i) => Bound::Excluded(log_key(*i).to_vec()),
            Bound::Unbounded => Bound::Included(log_key(u64::MAX).to_vec()),
        };
        let mut out = Vec::new();
        for r in self.inner.tree.range::<Vec<u8>, _>((start, end)) {
            let (_, v) = r.map_err(read_logs)?;
            out.push(decode(&v).map_err(read_logs)?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.get_meta(PURGED).map_err(read_logs)?;
        let last_log_id = self.last_entry_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError> {
        let v = encode(vote).map_err(|e| io(ErrorSubject::Vote, ErrorVerb::Write, e))?;
        self.inner
            .tree
            .insert(VOTE, v)
            .map_err(|e| io(ErrorSubject::Vote, ErrorVerb::Write, e))?;
        // Durable before returning: a node must never vote twice in a term after a crash.
        self.sync()
            .await
            .map_err(|e| io(ErrorSubject::Vote, ErrorVerb::Write, e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError> {
        self.get_meta(VOTE)
            .map_err(|e| io(ErrorSubject::Vote, ErrorVerb::Read, e))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not flushed on its own: openraft may lose it (it only speeds up re-applying after a
        // restart); the next append, truncation, purge or vote flushes it.
        let r = match committed {
            Some(c) => encode(&c).and_then(|v| self.inner.tree.insert(COMMITTED, v).map_err(|e| e.to_string())),
            None => self.inner.tree.remove(COMMITTED).map_err(|e| e.to_string()),
        };
        r.map(drop).map_err(write_logs)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        self.get_meta(COMMITTED).map_err(read_logs)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = LogEntry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut b = sled::Batch::default();
        for e in entries {
            b.insert(&log_key(e.log_id.index)[..], encode(&e).map_err(write_logs)?);
        }
        self.inner.tree.apply_batch(b).map_err(write_logs)?;
        // The callback tells openraft the entries are durable: only after the fsync.
        match self.sync().await {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(write_logs(e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut b = sled::Batch::default();
        for r in self.inner.tree.range(log_key(log_id.index)..=log_key(u64::MAX)) {
            let (k, _) = r.map_err(write_logs)?;
            b.remove(k);
        }
        self.inner.tree.apply_batch(b).map_err(write_logs)?;
        self.sync().await.map_err(write_logs)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut b = sled::Batch::default();
        b.insert(PURGED, encode(&log_id).map_err(write_logs)?);
        for r in self.inner.tree.range(log_key(0)..=log_key(log_id.index)) {
            let (k, _) = r.map_err(write_logs)?;
            b.remove(k);
        }
        self.inner.tree.apply_batch(b).map_err(write_logs)?;
        self.sync().await.map_err(write_logs)
    }
}
