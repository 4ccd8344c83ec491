//! Bounds on what readers may cost the node (docs/api.md, "Reader limits").
//!
//! `GetEntries` streams hold no thread: a stream reads its range lazily, one chunk of at most
//! [`STREAM_CHUNK`] entries and about [`STREAM_CHUNK_BYTES`] bytes at a time, each on a short
//! blocking task, only when the client has taken the previous chunk. At most
//! [`ReadLimits::max_streams`] streams are open at once (RESOURCE_EXHAUSTED beyond); a stream that
//! its client does not read for [`ReadLimits::stream_idle`] is ended by a watchdog, which frees its
//! slot and its buffered chunk, and the client then receives DEADLINE_EXCEEDED naming the index to
//! resume from. `Query` scans at most [`ReadLimits::query_scan`] index terms per call and answers at
//! most [`ReadLimits::query_bytes`] bytes; the rest continues through `next_page_start`.

use crate::errors::store_status;
use ledger_core::entry::Entry;
use ledger_proto::pb;
use ledger_store::Store;
use std::collections::VecDeque;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::Status;

/// Most entries read from the store at once for one stream.
pub const STREAM_CHUNK: usize = 64;
/// A chunk ends once its leaves reach this many bytes (it holds at least one entry).
pub const STREAM_CHUNK_BYTES: usize = 1 << 20;
/// Default bound on concurrently open `GetEntries` streams.
pub const DEFAULT_MAX_STREAMS: usize = 64;
/// Default time a stream may go unread before the node ends it.
pub const DEFAULT_STREAM_IDLE: Duration = Duration::from_secs(30);
/// Default bound on index terms one `Query` call examines.
pub const DEFAULT_QUERY_SCAN: usize = 10_000;
/// Default bound on the encoded size of one `Query` answer with entries.
pub const DEFAULT_QUERY_BYTES: usize = 4 << 20;

/// The configured reader limits.
#[derive(Debug, Clone)]
pub struct ReadLimits {
    /// Concurrently open `GetEntries` streams.
    pub max_streams: usize,
    /// How long a stream may go unread.
    pub stream_idle: Duration,
    /// Index terms one `Query` call examines.
    pub query_scan: usize,
    /// Encoded bytes of one `Query` answer (entries included).
    pub query_bytes: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        Self {
            max_streams: DEFAULT_MAX_STREAMS,
            stream_idle: DEFAULT_STREAM_IDLE,
            query_scan: DEFAULT_QUERY_SCAN,
            query_bytes: DEFAULT_QUERY_BYTES,
        }
    }
}

/// The limits and the stream slots.
#[derive(Debug)]
pub struct Readers {
    /// Limits in force.
    pub limits: ReadLimits,
    slots: Arc<Semaphore>,
}

impl Readers {
    /// Readers under `limits` (zero limits are raised to 1).
    pub fn new(mut limits: ReadLimits) -> Self {
        limits.max_streams = limits.max_streams.clamp(1, Semaphore::MAX_PERMITS);
        limits.query_scan = limits.query_scan.max(1);
        limits.query_bytes = limits.query_bytes.max(1);
        if limits.stream_idle.is_zero() {
            limits.stream_idle = Duration::from_millis(1);
        }
        let slots = Arc::new(Semaphore::new(limits.max_streams));
        Self { limits, slots }
    }

    /// Answers `GetEntries` for `[start, end)` (already checked against the log size).
    ///
    /// A range of at most [`STREAM_CHUNK`] entries that fits in one chunk is read at once and
    /// answered from memory without a slot, so small reads are answered even while every slot is
    /// taken. A larger range takes a slot and is read lazily.
    ///
    /// # Errors
    /// RESOURCE_EXHAUSTED when [`ReadLimits::max_streams`] streams are open; UNAVAILABLE or
    /// DATA_LOSS when the store cannot be read.
    pub fn get_entries(&self, store: Arc<Store>, start: u64, end: u64) -> Result<EntriesStream, Status> {
        let mut first = VecDeque::new();
        let mut next = start;
        if end.saturating_sub(start) <= STREAM_CHUNK as u64 {
            let chunk = read_chunk(&store, start, end)?;
            next = chunk.last().map_or(end, |e| e.index.saturating_add(1));
            if next >= end {
                return Ok(Box::pin(tokio_stream::iter(chunk.into_iter().map(Ok))));
            }
            first = chunk.into();
        }
        let permit = self.slots.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "{} GetEntries streams are open, the node's limit; read or close one, retry later, or ask for at most {STREAM_CHUNK} entries",
                self.limits.max_streams
            ))
        })?;
        let idle = self.limits.stream_idle;
        let slot = Arc::new(Mutex::new(Slot {
            permit: Some(permit),
            buf: first,
            last_poll: Instant::now(),
            resume: start,
            expired: false,
        }));
        tokio::spawn(watchdog(Arc::downgrade(&slot), idle));
        Ok(Box::pin(EntryStream {
            store,
            next,
            end,
            slot,
            fetch: None,
            idle,
            done: false,
        }))
    }
}

/// The stream `GetEntries` answers with.
pub type EntriesStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::LogEntry, Status>> + Send + 'static>>;

/// What a stream shares with its watchdog.
struct Slot {
    /// Held while the stream is open; dropped when it ends or expires.
    permit: Option<OwnedSemaphorePermit>,
    /// Entries read but not yet taken by the client.
    buf: VecDeque<pb::LogEntry>,
    /// When the stream was last polled.
    last_poll: Instant,
    /// The first index the client has not been handed.
    resume: u64,
    /// The watchdog ended the stream.
    expired: bool,
}

fn lock(slot: &Mutex<Slot>) -> std::sync::MutexGuard<'_, Slot> {
    // A panic while holding this lock cannot leave the slot inconsistent (plain field writes).
    slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Ends a stream that has not been polled for `idle`: frees its slot and its buffered entries.
async fn watchdog(slot: Weak<Mutex<Slot>>, idle: Duration) {
    let mut wake = Instant::now() + idle;
    loop {
        tokio::time::sleep_until(wake).await;
        let Some(slot) = slot.upgrade() else { return };
        let mut s = lock(&slot);
        if s.permit.is_none() {
            return;
        }
        let due = s.last_poll + idle;
        if Instant::now() >= due {
            s.expired = true;
            s.permit = None;
            s.buf = VecDeque::new();
            return;
        }
        wake = due;
    }
}

/// Reads one chunk of entries from `next` (before `end`) from the store.
fn read_chunk(store: &Store, next: u64, end: u64) -> Result<Vec<pb::LogEntry>, Status> {
    let stop = end.min(next.saturating_add(STREAM_CHUNK as u64));
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for r in store.entries(next, stop) {
        let (i, leaf) = r.map_err(|e| store_status(&e))?;
        let e = Entry::decode(&leaf).map_err(|e| Status::data_loss(format!("entry {i}: {e}")))?;
        bytes += leaf.len();
        out.push(ledger_proto::log_entry(&leaf, &e, &ledger_core::hash::leaf_hash(&leaf)));
        if bytes >= STREAM_CHUNK_BYTES {
            break;
        }
    }
    if out.is_empty() && next < stop {
        return Err(Status::data_loss(format!("entry {next} is missing from the store")));
    }
    Ok(out)
}

/// A `GetEntries` stream that reads lazily (see the module documentation).
pub struct EntryStream {
    store: Arc<Store>,
    next: u64,
    end: u64,
    slot: Arc<Mutex<Slot>>,
    fetch: Option<JoinHandle<Result<Vec<pb::LogEntry>, Status>>>,
    idle: Duration,
    done: bool,
}

impl EntryStream {
    fn finish(&mut self) {
        self.done = true;
        self.fetch = None;
        let mut s = lock(&self.slot);
        s.permit = None;
        s.buf = VecDeque::new();
    }

    fn fail(&mut self, status: Status) -> Poll<Option<Result<pb::LogEntry, Status>>> {
        self.finish();
        Poll::Ready(Some(Err(status)))
    }
}

impl tokio_stream::Stream for EntryStream {
    type Item = Result<pb::LogEntry, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            {
                let mut s = lock(&this.slot);
                if s.expired {
                    let resume = s.resume;
                    drop(s);
                    let idle = this.idle.as_millis();
                    return this.fail(Status::deadline_exceeded(format!(
                        "the stream was not read for {idle} ms and was closed; continue with GetEntries from start {resume}"
                    )));
                }
                s.last_poll = Instant::now();
                if let Some(e) = s.buf.pop_front() {
                    s.resume = e.index.saturating_add(1);
                    return Poll::Ready(Some(Ok(e)));
                }
            }
            let fetch = match &mut this.fetch {
                Some(f) => f,
                None => {
                    if this.next >= this.end {
                        this.finish();
                        return Poll::Ready(None);
                    }
                    let (store, next, end) = (this.store.clone(), this.next, this.end);
                    this.fetch
                        .insert(tokio::task::spawn_blocking(move || read_chunk(&store, next, end)))
                }
            };
            let chunk = match Pin::new(fetch).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return this.fail(Status::internal(format!("reading entries: {e}"))),
                Poll::Ready(Ok(Err(s))) => return this.fail(s),
                Poll::Ready(Ok(Ok(chunk))) => chunk,
            };
            this.fetch = None;
            this.next = chunk.last().map_or(this.end, |e| e.index.saturating_add(1));
            lock(&this.slot).buf.extend(chunk);
        }
    }
}
