//! The signed state snapshot `DATA/state.snapshot` (issue 14, docs/format.md "State snapshot"):
//! the node's [`LedgerState`] at a durable size N, signed by the node key, so that start-up folds
//! only the entries at and above N. It is a cache: a missing, damaged, foreign or forged snapshot
//! is refused by name (`STATE_SNAPSHOT_REFUSED: <reason>`), the whole log is folded instead, and a
//! fresh snapshot is written. It never stops the node and never changes its state.
//!
//! File: `u32 BE` length of the header, the header (a C2SP signed note, text below, signed by the
//! node key under the log's origin), then the encoded state ([`LedgerState::encode`]).
//!
//! ```text
//! ledger-state-snapshot/1
//! <origin>
//! <N>
//! <hex root of the tree at N>
//! <hex SHA-256 of the encoded state>
//! ```

use anyhow::{Context, Result, bail};
use ed25519_dalek::{SigningKey, VerifyingKey};
use ledger_core::entry::Entry;
use ledger_core::hash::Hash;
use ledger_core::note::{Note, NoteSigner, NoteVerifier};
use ledger_core::registry::Registry;
use ledger_core::state::LedgerState;
use ledger_store::Store;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// First line of the header.
pub const HEADER: &str = "ledger-state-snapshot/1";

/// File name in the data directory.
pub const FILE: &str = "state.snapshot";

/// Environment variable: write a snapshot every this many entries (0: only at shutdown).
pub const EVERY_ENV: &str = "LEDGER_SNAPSHOT_EVERY";

/// Default of [`EVERY_ENV`].
pub const DEFAULT_EVERY: u64 = 1_000_000;

/// Largest header accepted.
const MAX_HEADER: u32 = 4096;

/// `DATA/state.snapshot`.
pub fn path(data: &Path) -> PathBuf {
    data.join(FILE)
}

/// The snapshot interval from [`EVERY_ENV`].
///
/// # Errors
/// When the variable is set but not a number.
pub fn every_from_env() -> Result<u64> {
    match std::env::var(EVERY_ENV) {
        Ok(v) => v
            .trim()
            .parse()
            .with_context(|| format!("{EVERY_ENV}={v:?} is not a number of entries")),
        Err(_) => Ok(DEFAULT_EVERY),
    }
}

/// Why a snapshot was not used (named in the log as `STATE_SNAPSHOT_REFUSED: <reason>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The header's signature does not verify with a configured node key.
    Signature,
    /// The snapshot is of another log.
    Origin,
    /// The store's root at N differs from the header's.
    Root,
    /// The state bytes do not have the header's SHA-256.
    Hash,
    /// N is larger than the store.
    BeyondStore,
    /// The file or the state does not decode.
    Decode,
    /// The store's ticket index is not known to hold every rated ticket below N.
    Tickets,
}

impl Refusal {
    /// The name in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Signature => "signature",
            Refusal::Origin => "origin",
            Refusal::Root => "root",
            Refusal::Hash => "hash",
            Refusal::BeyondStore => "beyond_store",
            Refusal::Decode => "decode",
            Refusal::Tickets => "tickets",
        }
    }
}

/// The file bytes of a snapshot of `state` at `size` with tree root `root`, signed by `key` under
/// `origin`.
///
/// # Errors
/// When the origin is not a valid key name.
pub fn encode_file(key: &SigningKey, origin: &str, size: u64, root: &Hash, state: &LedgerState) -> Result<Vec<u8>> {
    let encoded = state.encode();
    let text = format!(
        "{HEADER}\n{origin}\n{size}\n{}\n{}\n",
        root.to_hex(),
        Hash::digest(&encoded).to_hex()
    );
    let signer = NoteSigner::new(origin, key.clone())?;
    let note = Note {
        text: text.clone(),
        signatures: vec![signer.sign(&text)?],
    }
    .to_text();
    let len = u32::try_from(note.len()).context("snapshot header too long")?;
    let mut out = Vec::with_capacity(4 + note.len() + encoded.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(note.as_bytes());
    out.extend_from_slice(&encoded);
    Ok(out)
}

/// Writes the snapshot of `state` at the durable `size` (root `root`) into `data`, signed by the
/// key of `keys` that is the state's node key, and records in the store that every rated ticket
/// below `size` is indexed (the groups this node committed carry theirs). Returns the file size.
///
/// # Errors
/// When no key of `keys` is the state's node key, or on storage failure.
pub fn write(
    data: &Path,
    store: &Store,
    keys: &[SigningKey],
    size: u64,
    root: &Hash,
    state: &LedgerState,
) -> Result<usize> {
    let t = Instant::now();
    let Some(key) = keys.iter().find(|k| k.verifying_key() == state.registry.node_key) else {
        bail!("no configured node key is the log's node key at {size}");
    };
    let bytes = encode_file(key, &state.registry.charter.origin, size, root, state)?;
    // The mark first, durable, then the file: a crash between the two leaves a mark the index
    // honours (the tickets below `size` are indexed either way) and no snapshot that the next
    // start would refuse as `tickets` (the other order did, after a SIGKILL between them).
    if store.tickets_checked()? < size {
        store.set_tickets_checked(size)?;
    }
    let p = path(data);
    ledger_store::high_water::write_atomic_bytes(&p, &bytes).with_context(|| format!("writing {}", p.display()))?;
    tracing::info!(size, bytes = bytes.len(), ms = t.elapsed().as_millis() as u64, file = %p.display(), "state snapshot written");
    Ok(bytes.len())
}

/// Writes the snapshot and logs (does not return) a failure: the snapshot is a cache.
pub fn write_or_warn(data: &Path, store: &Store, keys: &[SigningKey], size: u64, root: &Hash, state: &LedgerState) {
    if let Err(e) = write(data, store, keys, size, root, state) {
        tracing::warn!(size, error = %format!("{e:#}"), "state snapshot not written");
    }
}

/// A snapshot accepted at open.
pub struct Loaded {
    /// Its size N: the state holds entries `[0, N)`.
    pub size: u64,
    /// The state (without a ticket backing).
    pub state: LedgerState,
}

fn refuse(r: Refusal, why: impl std::fmt::Display) -> (Refusal, String) {
    (r, why.to_string())
}

/// Reads and checks `data`'s snapshot against `store` and the node keys `keys` (the configured
/// node key and the next node key): `Ok(None)` when there is none.
///
/// # Errors
/// The first check it fails, with the reason.
pub fn load(data: &Path, store: &Store, keys: &[VerifyingKey]) -> Result<Option<Loaded>, (Refusal, String)> {
    let p = path(data);
    let bytes = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(refuse(Refusal::Decode, format!("cannot read {}: {e}", p.display()))),
    };
    let bad = |m: &str| refuse(Refusal::Decode, m);
    let len = bytes
        .get(..4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| bad("shorter than its header length"))?;
    if len > MAX_HEADER {
        return Err(bad("header too long"));
    }
    let end = 4 + len as usize;
    let header = bytes.get(4..end).ok_or_else(|| bad("shorter than its header"))?;
    let header = std::str::from_utf8(header).map_err(|_| bad("header is not UTF-8"))?;
    let note = Note::parse(header).map_err(|e| refuse(Refusal::Decode, format!("header: {e}")))?;
    let lines: Vec<&str> = note.text.lines().collect();
    let [first, origin, size, root, digest] = lines[..] else {
        return Err(bad("header does not have five lines"));
    };
    if first != HEADER {
        return Err(refuse(
            Refusal::Decode,
            format!("first line {first:?}, expected {HEADER:?}"),
        ));
    }
    let size: u64 = size.parse().map_err(|_| bad("size is not a number"))?;
    let root = Hash::from_hex(root).map_err(|_| bad("root is not a hex hash"))?;
    let digest = Hash::from_hex(digest).map_err(|_| bad("state hash is not a hex hash"))?;
    // This log's origin, from its charter.
    let ours = store
        .entry(0)
        .ok()
        .flatten()
        .and_then(|e| Entry::decode(&e).ok())
        .and_then(|e| Registry::genesis(&e).ok())
        .map(|r| r.charter.origin)
        .ok_or_else(|| bad("the store has no readable charter"))?;
    if origin != ours {
        return Err(refuse(
            Refusal::Origin,
            format!("snapshot of log {origin:?}, this log is {ours:?}"),
        ));
    }
    // The configured key that signed it (kept: it must be the state's node key at N).
    let signer = keys
        .iter()
        .find(|k| NoteVerifier::new(&ours, **k).is_ok_and(|v| note.verify(&[v]).is_ok()))
        .ok_or_else(|| refuse(Refusal::Signature, "not signed by a configured node key"))?;
    let stored = store.size().map_err(|e| refuse(Refusal::Decode, e))?;
    if size == 0 || size > stored {
        return Err(refuse(
            Refusal::BeyondStore,
            format!("snapshot at size {size}, the store holds {stored} entries"),
        ));
    }
    let at = ledger_core::merkle::root_from_source(store, size).map_err(|e| refuse(Refusal::Root, e))?;
    if at != root {
        return Err(refuse(
            Refusal::Root,
            format!(
                "the store's root at {size} is {}, the snapshot's {}",
                at.to_hex(),
                root.to_hex()
            ),
        ));
    }
    let encoded = &bytes[end..];
    if Hash::digest(encoded) != digest {
        return Err(refuse(Refusal::Hash, "the state bytes do not have the signed SHA-256"));
    }
    let state = LedgerState::decode(encoded).map_err(|e| refuse(Refusal::Decode, e))?;
    if state.encode() != encoded {
        return Err(bad("the state does not encode to its own bytes"));
    }
    if state.registry.node_key != *signer {
        return Err(refuse(
            Refusal::Signature,
            format!(
                "signed by {}, which is not the log's node key at {size}",
                ledger_core::keys::key_id(signer)
            ),
        ));
    }
    let checked = store.tickets_checked().map_err(|e| refuse(Refusal::Decode, e))?;
    if checked < size {
        return Err(refuse(
            Refusal::Tickets,
            format!("the ticket index is known complete below {checked} only"),
        ));
    }
    Ok(Some(Loaded { size, state }))
}

/// The sequencer's snapshots: one every [`EVERY_ENV`] entries, written by a background thread
/// once its size is durable, and one at graceful shutdown.
pub struct Periodic {
    data: PathBuf,
    every: u64,
    /// Size of the last snapshot written or taken.
    last: u64,
    /// A state taken at a size not yet known durable: (size, root, state).
    pending: Option<(u64, Hash, LedgerState)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Periodic {
    /// Snapshots of `data` every `every` entries (0: only at shutdown), the last at `at`.
    pub fn new(data: &Path, every: u64, at: u64) -> Self {
        Self {
            data: data.to_path_buf(),
            every,
            last: at,
            pending: None,
            thread: None,
        }
    }

    /// After the sequencer handed a group to the writer: `durable` is the store's durable size,
    /// `size`, `root` and `state` are the tree and state after the group (not durable yet). A
    /// state taken earlier whose size is durable now is written in the background; a state is
    /// taken when `size` is [`Self::new`]'s `every` past the last one.
    pub fn after_group(
        &mut self,
        store: &std::sync::Arc<Store>,
        keys: &[SigningKey],
        durable: u64,
        (size, root, state): (u64, Hash, &LedgerState),
    ) {
        let idle = self.thread.as_ref().is_none_or(|t| t.is_finished());
        if idle && self.pending.as_ref().is_some_and(|(n, _, _)| *n <= durable) {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
            if let Some((n, r, st)) = self.pending.take() {
                let (data, store, keys) = (self.data.clone(), store.clone(), keys.to_vec());
                match std::thread::Builder::new()
                    .name("state-snapshot".into())
                    .spawn(move || write_or_warn(&data, &store, &keys, n, &r, &st))
                {
                    Ok(h) => self.thread = Some(h),
                    Err(e) => tracing::warn!(error = %e, "cannot start the snapshot thread"),
                }
            }
        }
        if self.every > 0 && self.pending.is_none() && size >= self.last.saturating_add(self.every) {
            self.pending = Some((size, root, state.clone()));
            self.last = size;
        }
    }

    /// At graceful shutdown, once every group is through the writer: waits for a background write
    /// and writes the snapshot of `state` at `size` when `size` is durable and not written yet.
    pub fn finish(
        &mut self,
        store: &Store,
        keys: &[SigningKey],
        durable: u64,
        size: u64,
        root: &Hash,
        state: &LedgerState,
    ) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if durable != size {
            tracing::warn!(
                size,
                durable,
                "the last group is not durable: no state snapshot at shutdown"
            );
            return;
        }
        if self.pending.take().is_some() || self.last != size {
            write_or_warn(&self.data, store, keys, size, root, state);
            self.last = size;
        }
    }
}
