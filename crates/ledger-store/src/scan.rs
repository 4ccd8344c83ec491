//! Long scans whose memory does not grow with the log (issue 14): the store's check at node
//! start-up, `ledger-node export` and `backup`.
//!
//! sled keeps in memory every page a scan reads: its page cache weighs a page by its bytes in the
//! log, which for a leaf stored as a blob (several entry bundles, about 1 MB) is only the blob
//! pointer, so the cache bound never evicts them ([`Store::reopen_read_only`]). A scan of the
//! whole log therefore grew the process by about the size of the bundles it read. Closing and
//! reopening the store frees them: a scan here reads at most a byte budget of entries between
//! two reopens ([`scan_bytes`]), through a [`Reopen`] handle.

use crate::{OpenReport, Store, StoreError, Verification, Visit};
use ledger_core::hash::Hash;
use std::collections::BTreeMap;

/// Environment variable: entry bytes a long scan reads between two reopens of the store (a
/// positive integer; for tests and measurements).
pub const SCAN_BYTES_ENV: &str = "LEDGER_SCAN_BYTES";

/// Entry bytes the node's start-up check reads between two reopens of its (writable) store
/// unless [`SCAN_BYTES_ENV`] says otherwise (docs/performance.md, "Start-up and export memory").
pub const NODE_SCAN_BYTES: u64 = 64 << 20;

/// Entry bytes `ledger-node export` and `backup` read between two reopens of their read-only
/// copy unless [`SCAN_BYTES_ENV`] says otherwise (a reopen of a copy costs about 25 ms; at 4 MiB,
/// as `ledger-verify replay --data`, the export of 1M entries took twice as long for 4 MB less).
pub const EXPORT_SCAN_BYTES: u64 = 16 << 20;

/// The byte budget of a scan: [`SCAN_BYTES_ENV`] when set to a positive integer, else `default`.
#[must_use]
pub fn scan_bytes(default: u64) -> u64 {
    std::env::var(SCAN_BYTES_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|b| *b > 0)
        .unwrap_or(default)
}

/// A store that a long scan may close and reopen between two of its passes.
pub trait Reopen {
    /// The store as it is now.
    ///
    /// # Errors
    /// When an earlier reopen failed.
    fn store(&self) -> Result<&Store, StoreError>;

    /// Closes the store and opens it again ([`Store::reopen`]).
    ///
    /// # Errors
    /// When the store cannot be reopened (or is still in use elsewhere).
    fn reopen(&mut self) -> Result<(), StoreError>;
}

/// A borrowed store is never reopened (its scans keep what sled read, as before).
impl Reopen for &Store {
    fn store(&self) -> Result<&Store, StoreError> {
        Ok(self)
    }

    fn reopen(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

fn closed() -> StoreError {
    StoreError::Io(std::io::Error::other("the store was closed by a failed reopen"))
}

/// An owned store that a scan reopens.
pub struct Owned {
    store: Option<Store>,
    reopens: u64,
}

impl Owned {
    /// Wraps `store`.
    #[must_use]
    pub fn new(store: Store) -> Self {
        Self {
            store: Some(store),
            reopens: 0,
        }
    }

    /// Reopens so far.
    #[must_use]
    pub fn reopens(&self) -> u64 {
        self.reopens
    }

    /// The store back.
    ///
    /// # Errors
    /// When a reopen failed.
    pub fn into_inner(self) -> Result<Store, StoreError> {
        self.store.ok_or_else(closed)
    }
}

impl Reopen for Owned {
    fn store(&self) -> Result<&Store, StoreError> {
        self.store.as_ref().ok_or_else(closed)
    }

    fn reopen(&mut self) -> Result<(), StoreError> {
        let s = self.store.take().ok_or_else(closed)?;
        self.store = Some(s.reopen()?);
        self.reopens += 1;
        Ok(())
    }
}

/// [`Store::verify_streaming`] over `s`, reopening the store every `budget` bytes of entries
/// read (at a bundle boundary). Every entry is read, checked and visited exactly once, in order.
///
/// # Errors
/// As [`Store::verify_streaming`], and a failed reopen.
pub fn verify_reopening(
    s: &mut dyn Reopen,
    sizes: &[u64],
    chain_from: u64,
    budget: u64,
    visit: &mut Visit<'_>,
) -> Result<(OpenReport, BTreeMap<u64, Hash>), StoreError> {
    let mut v = Verification::begin(s.store()?, sizes, chain_from)?;
    while !v.pass(s.store()?, budget, visit)? {
        s.reopen()?;
    }
    tracing::debug!(entries = v.checked(), passes = v.passes(), "store checked");
    v.finish(s.store()?)
}
