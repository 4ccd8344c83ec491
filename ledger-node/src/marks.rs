//! The high-water mark at open (`ledger_store::high_water`): a store that is shorter than the
//! mark, or whose root at the mark's size differs, has lost acknowledged entries (sled cut its log
//! at a damaged segment, or the files were edited) and is never served, exported or appended to.

use anyhow::{Context, Result, bail};
use ledger_core::entry::Entry;
use ledger_core::hash::Hash;
use ledger_core::rules::{TicketBacking, TicketLookupError};
use ledger_core::state::{LedgerState, StepError};
use ledger_store::high_water::{self, HighWater, OpenRefusal};
use ledger_store::scan::Reopen;
use ledger_store::tickets::StoreTickets;
use ledger_store::{OpenReport, Store, StoreError};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// What to do about a refused store, for the operator.
const RESTORE: &str = "restore the data directory from an export or a replica whose log holds the mark's \
                       checkpoint (docs/operations.md, \"Restoring after store damage\"); do not delete the mark";

/// A store checked against its marks, with the writers of both mark files.
pub struct Checked {
    /// The store's own check.
    pub report: OpenReport,
    /// Writer of `DATA/high-water.checkpoint`.
    pub mark: HighWater,
    /// Writer of `DATA/high-water.witnessed`.
    pub witnessed: HighWater,
    /// The first entry whose `prev_root` chain was checked entry by entry (0: all; else the
    /// mark's size: the entries below are bound to the mark's signed root instead).
    pub chain_from: u64,
}

/// Reads the marks of `data` (call it before the store is opened: a mark is written after its
/// store group, so a store read later is never older than the mark).
///
/// # Errors
/// When a mark file exists but cannot be read.
pub fn read(data: &Path) -> Result<(Option<String>, Option<String>)> {
    high_water::read_marks(data).map_err(|e| anyhow::anyhow!("refusing to open {}: {e}", data.display()))
}

/// Refuses data directory `data` for `action` ("serve", "export", "import into") while an import
/// into it has not finished (`high_water::IMPORT_MARKER`): its store may hold part of the log only.
///
/// # Errors
/// When the marker is there or cannot be read.
pub fn refuse_unfinished_import(data: &Path, action: &str) -> Result<()> {
    high_water::refuse_unfinished_import(data, action).map_err(anyhow::Error::msg)
}

/// Verifies `store` (the store of data directory `data`) and checks it against the marks read
/// before, for `action` ("export", "import into"; named in the refusal), reopening the store every
/// [`ledger_store::scan::EXPORT_SCAN_BYTES`] of entries read ([`ledger_store::scan`]; `export`,
/// `backup`, `import`): its memory does not grow with the log. A missing mark with a non-empty
/// store is refused.
///
/// # Errors
/// When the store does not verify, does not satisfy a mark, or has no mark.
pub fn check_reopening(
    store: &mut ledger_store::scan::Owned,
    data: &Path,
    marks: (Option<String>, Option<String>),
    action: &str,
) -> Result<Checked> {
    check_with(store, data, marks, false, action, None)
}

/// [`check_reopening`] that hands every checked entry to `fold` in the same pass, and (unless `full`)
/// checks the `prev_root` chain only above the mark (`high_water::verify_against_marks_streaming`).
/// `None`: the full check, nothing folded. With `adopt`, a missing mark is re-created from the
/// store's latest checkpoint instead of refused.
///
/// # Errors
/// As [`check_reopening`], and the fold's error.
pub fn check_with(
    store: &mut dyn Reopen,
    data: &Path,
    marks: (Option<String>, Option<String>),
    adopt: bool,
    action: &str,
    fold: Option<(&mut Fold, bool)>,
) -> Result<Checked> {
    let (mark, witnessed) = marks;
    let mark_path = high_water::mark_path(data);
    let refused = |e: OpenRefusal| match &e {
        OpenRefusal::Mark { .. } => anyhow::anyhow!("refusing to {action} {}: {e}; {RESTORE}", data.display()),
        _ => anyhow::anyhow!("refusing to {action} {}: {e}", data.display()),
    };
    let chain_from = match &fold {
        Some((_, false)) => mark.as_deref().and_then(high_water::claimed_size).unwrap_or(0),
        _ => 0,
    };
    let budget = ledger_store::scan::scan_bytes(if fold.is_some() {
        ledger_store::scan::NODE_SCAN_BYTES
    } else {
        ledger_store::scan::EXPORT_SCAN_BYTES
    });
    let r = match fold {
        None => high_water::verify_against_marks_reopening(store, data, mark.as_deref(), witnessed.as_deref(), budget),
        Some((fold, full)) => high_water::verify_against_marks_streaming_reopening(
            store,
            data,
            (mark.as_deref(), witnessed.as_deref()),
            full,
            budget,
            &mut |i, e, lh| fold.visit(i, e, lh).map_err(|e| format!("{e:#}")),
        ),
    }
    .map_err(refused)?;
    let store = store.store()?;
    let mut mark_size = r.mark.unwrap_or(0);
    if r.mark.is_none() && r.report.size > 0 {
        if !adopt {
            bail!(
                "refusing to {action} {}: the store holds {} entries but there is no high-water mark ({}). \
                 If this data directory was made before high-water marks existed, start the node once \
                 with --adopt-store to create the mark from the store's latest checkpoint. Otherwise \
                 the mark was deleted and the store cannot be trusted to be complete: {RESTORE}",
                data.display(),
                r.report.size,
                mark_path.display()
            );
        }
        let (size, note) = store
            .latest_checkpoint()?
            .context("--adopt-store: the store has no checkpoint to adopt")?;
        tracing::warn!("**************************************************************************");
        tracing::warn!(
            "--adopt-store: {} had no high-water mark; creating it from the store's latest checkpoint \
             ({size} of {} entries). Entries this store may have lost before now cannot be detected.",
            data.display(),
            r.report.size
        );
        tracing::warn!("Use --adopt-store only once, to upgrade a data directory made before high-water marks.");
        tracing::warn!("**************************************************************************");
        high_water::write_atomic(&mark_path, &note)
            .with_context(|| format!("writing the high-water mark {}", mark_path.display()))?;
        mark_size = size;
    }
    Ok(Checked {
        mark: HighWater::new(mark_path, mark_size),
        witnessed: HighWater::new(high_water::witnessed_path(data), r.witnessed.unwrap_or(0)),
        report: r.report,
        chain_from,
    })
}

/// Writes the mark of `data` from the store's latest checkpoint (after `init`, `import` or
/// `debug-fork`, once the store is durable).
///
/// # Errors
/// When the store has no checkpoint or the file cannot be written.
pub fn write_latest(store: &Store, data: &Path) -> Result<u64> {
    store.flush()?;
    let (size, note) = store
        .latest_checkpoint()?
        .context("the store has no checkpoint for the high-water mark")?;
    let path = high_water::mark_path(data);
    high_water::write_atomic(&path, &note)
        .with_context(|| format!("writing the high-water mark {}", path.display()))?;
    Ok(size)
}

/// Stored entries that break a rule named one by one in the start-up log (the rest are counted).
const MAX_REFUSED_LOGGED: u64 = 100;

/// How often (in entries) start-up writes missing ticket index keys and drops the tickets it
/// folded from memory.
const LOAD_FORGET_EVERY: u64 = 4096;

/// The node's state folded from its stored log, entry by entry, in the store's open-time check
/// ([`check_with`]): one read and one decode per entry for both.
///
/// Each entry is folded with the same step the sequencer and the verifier use
/// ([`LedgerState::check`] and [`LedgerState::apply`]), so the node after a restart knows exactly
/// what it knew before. The store's check has passed for the entry (hash chain, leaf hash, tiles)
/// when it is folded, so its `prev_root` is the root of the tree before it and the signers are the
/// key ids its envelope names (every signature was verified at append). An entry that does not
/// pass the rules (a log written under older rules) is reported and left out of the state, as
/// `ledger-verify replay` leaves it out.
///
/// The state's ticket set is backed by the store ([`ledger_store::tickets::StoreTickets`]): rated
/// tickets are not accumulated in memory. A ticket the store's index lacks (a store imported,
/// forked or written before the index existed) is indexed here, before it is forgotten from
/// memory; the entries below [`Store::tickets_checked`] are known to have theirs indexed already
/// and are not looked up (unless `full`).
pub struct Fold {
    store: Arc<Slot>,
    state: Option<LedgerState>,
    tickets_from: u64,
    unindexed: Vec<([u8; 32], u64)>,
    refused: u64,
    spent: Duration,
    /// The first entry folded: 0, or the size of the state snapshot resumed from.
    from: u64,
}

impl Fold {
    /// A fold over `store`; with `full`, every rated ticket is checked against the index again.
    ///
    /// # Errors
    /// On storage failure.
    pub fn new(store: &Arc<Slot>, full: bool) -> Result<Self> {
        Ok(Self {
            store: store.clone(),
            state: None,
            tickets_from: if full { 0 } else { store.get()?.tickets_checked()? },
            unindexed: Vec::new(),
            refused: 0,
            spent: Duration::ZERO,
            from: 0,
        })
    }

    /// Starts from `state`, the state of the entries below `size` (a state snapshot checked
    /// against the store, `crate::snapshot::load`): entries below `size` are still checked by the
    /// store's check but not folded.
    pub fn resume(&mut self, mut state: LedgerState, size: u64) {
        state
            .domain
            .elections
            .tickets
            .set_backing(Arc::new(SlotTickets(self.store.clone())));
        state.domain.elections.tickets.forget_below(size);
        self.state = Some(state);
        self.from = size;
    }

    /// The first entry folded (0 unless resumed from a snapshot).
    pub fn from(&self) -> u64 {
        self.from
    }

    /// Time spent folding so far.
    pub fn spent(&self) -> Duration {
        self.spent
    }

    /// Folds entry `index` (decoded `e`, leaf hash `lh`), in index order from 0.
    ///
    /// # Errors
    /// When the charter does not make a state, or the state's ticket lookup fails.
    pub fn visit(&mut self, index: u64, e: &Entry, lh: &Hash) -> Result<()> {
        let t = Instant::now();
        let r = self.step(index, e, lh);
        self.spent += t.elapsed();
        r
    }

    fn step(&mut self, index: u64, e: &Entry, lh: &Hash) -> Result<()> {
        if index < self.from {
            return Ok(());
        }
        let Some(state) = self.state.as_mut() else {
            let mut state = LedgerState::genesis(e)?;
            state
                .domain
                .elections
                .tickets
                .set_backing(Arc::new(SlotTickets(self.store.clone())));
            self.state = Some(state);
            return Ok(());
        };
        state.observe_size(index, &e.prev_root);
        match state.step_stored(e, lh, false) {
            Ok(record) => {
                if index >= self.tickets_from
                    && let Some(t) = ledger_core::rules::tickets::record_ticket(&record)
                    && self.store.get()?.ticket_index(&t)? != Some(index)
                {
                    self.unindexed.push((t, index));
                }
            }
            Err(StepError::StateLookup(err)) => bail!("entry {index}: {err}"),
            Err(err) => {
                self.refused += 1;
                if self.refused <= MAX_REFUSED_LOGGED {
                    tracing::warn!(index, error = %err, "stored entry breaks a rule; left out of the state (ledger-verify replay names it)");
                }
            }
        }
        if index.is_multiple_of(LOAD_FORGET_EVERY) {
            self.store.get()?.put_tickets(&self.unindexed)?;
            self.unindexed.clear();
            state.domain.elections.tickets.forget_below(index + 1);
        }
        Ok(())
    }

    /// The state after the whole log of `size` entries with root `root`, and how many entries
    /// were left out; records that every rated ticket below `size` is indexed.
    ///
    /// # Errors
    /// When the store had no charter, or on storage failure.
    pub fn finish(mut self, size: u64, root: &Hash) -> Result<(LedgerState, u64)> {
        let t = Instant::now();
        let mut state = self.state.take().context("the store has no charter")?;
        if !self.unindexed.is_empty() {
            tracing::info!(
                count = self.unindexed.len(),
                "indexed rated tickets the store's index lacked"
            );
        }
        let store = self.store.get()?;
        store.put_tickets(&self.unindexed)?;
        if store.tickets_checked()? < size {
            store.set_tickets_checked(size)?;
        }
        // The serving state reads the store directly (the slot is only for start-up).
        state
            .domain
            .elections
            .tickets
            .set_backing(Arc::new(StoreTickets::new(store)));
        state.domain.elections.tickets.forget_below(size);
        state.observe_size(size, root);
        self.spent += t.elapsed();
        Ok((state, self.refused))
    }
}

/// The node's store during start-up. The store check reopens the store between its passes (every
/// [`ledger_store::scan::NODE_SCAN_BYTES`] of entries read: sled frees the pages a scan read only
/// when the store is closed, `ledger_store::scan`), so the fold and the state's ticket lookups
/// reach the store through this slot and never hold it across a reopen.
pub struct Slot(RwLock<Option<Arc<Store>>>);

fn slot_closed() -> StoreError {
    StoreError::Io(std::io::Error::other("the store is being reopened"))
}

impl Slot {
    /// A slot holding `store`.
    pub fn new(store: Arc<Store>) -> Arc<Self> {
        Arc::new(Self(RwLock::new(Some(store))))
    }

    /// The store now in the slot.
    ///
    /// # Errors
    /// While the store is being reopened, or after a reopen failed.
    pub fn get(&self) -> Result<Arc<Store>, StoreError> {
        self.0
            .read()
            .map_err(|_| slot_closed())?
            .clone()
            .ok_or_else(slot_closed)
    }

    fn set(&self, store: Option<Arc<Store>>) -> Result<(), StoreError> {
        *self.0.write().map_err(|_| slot_closed())? = store;
        Ok(())
    }
}

/// The state's ticket lookups during start-up: [`StoreTickets`] over the store in the slot.
struct SlotTickets(Arc<Slot>);

impl TicketBacking for SlotTickets {
    fn ticket_index(&self, ticket: &[u8; 32], before: u64) -> Result<Option<u64>, TicketLookupError> {
        let store = self.0.get().map_err(|e| TicketLookupError(format!("store: {e}")))?;
        StoreTickets::new(store).ticket_index(ticket, before)
    }
}

/// The node's store as the start-up check reads it ([`Reopen`]): a reopen takes the store out of
/// the [`Slot`], closes and reopens it ([`Store::reopen`]) and puts the new one back.
pub struct SlotStore {
    slot: Arc<Slot>,
    current: Option<Arc<Store>>,
    reopens: u64,
}

impl SlotStore {
    /// The store in `slot`.
    ///
    /// # Errors
    /// When the slot is empty.
    pub fn new(slot: &Arc<Slot>) -> Result<Self, StoreError> {
        Ok(Self {
            slot: slot.clone(),
            current: Some(slot.get()?),
            reopens: 0,
        })
    }

    /// Reopens so far.
    pub fn reopens(&self) -> u64 {
        self.reopens
    }
}

impl Reopen for SlotStore {
    fn store(&self) -> Result<&Store, StoreError> {
        self.current.as_deref().ok_or_else(slot_closed)
    }

    fn reopen(&mut self) -> Result<(), StoreError> {
        let current = self.current.take().ok_or_else(slot_closed)?;
        self.slot.set(None)?;
        let store = match Arc::try_unwrap(current) {
            Ok(s) => s,
            Err(shared) => {
                // Someone else still holds the store: it cannot be closed now; go on without
                // freeing its pages (memory as before this reopen), never fail start-up for it.
                tracing::debug!("the store is in use: not reopened");
                self.slot.set(Some(shared.clone()))?;
                self.current = Some(shared);
                return Ok(());
            }
        };
        let store = Arc::new(store.reopen()?);
        self.slot.set(Some(store.clone()))?;
        self.current = Some(store);
        self.reopens += 1;
        Ok(())
    }
}
