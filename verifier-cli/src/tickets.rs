//! The rated tickets of a replayed log leave memory (issue 14): `replay` and `review` back the
//! state's ticket set with a temporary hash index ([`HashIndex::temporary`]), insert each accepted
//! micro-evaluation's ticket as they fold it, and drop the folded tickets from memory every
//! [`FORGET_EVERY`] entries. A ticket rated twice is still `MICRO_DUPLICATE_TICKET`; an index
//! that cannot be read or written ends the run with an error (never "unused", never a fault of
//! the log).

use ledger_core::domain::Record;
use ledger_core::rules::tickets::record_ticket;
use ledger_core::rules::{TicketBacking, TicketLookupError};
use ledger_core::state::LedgerState;
use ledger_store::hindex::HashIndex;
use std::sync::Arc;

/// Entries between two [`ledger_core::rules::TicketSet::forget_below`] calls.
pub const FORGET_EVERY: u64 = 4096;

/// [`TicketBacking`] over a [`HashIndex`].
struct IndexBacking(HashIndex);

impl TicketBacking for IndexBacking {
    fn ticket_index(&self, ticket: &[u8; 32], before: u64) -> Result<Option<u64>, TicketLookupError> {
        self.0
            .get(ticket)
            .map(|hit| hit.filter(|i| *i < before))
            .map_err(|e| TicketLookupError(format!("temporary ticket index: {e}")))
    }
}

/// The temporary ticket index of one replay.
pub struct TicketSpill {
    index: Arc<IndexBacking>,
}

impl TicketSpill {
    /// Creates the temporary index and attaches it to `state`.
    ///
    /// # Errors
    /// When the temporary index cannot be created.
    pub fn attach(state: &mut LedgerState) -> Result<Self, String> {
        let index = Arc::new(IndexBacking(
            HashIndex::temporary().map_err(|e| format!("cannot create the temporary ticket index: {e}"))?,
        ));
        state.domain.elections.tickets.set_backing(index.clone());
        Ok(Self { index })
    }

    /// After the entry at `index` was folded into `state` as `record`: its ticket goes to the
    /// index, and every [`FORGET_EVERY`] entries the folded tickets leave memory.
    ///
    /// # Errors
    /// When the index cannot be written.
    pub fn folded(&self, state: &mut LedgerState, index: u64, record: &Record) -> Result<(), String> {
        if let Some(t) = record_ticket(record) {
            self.index
                .0
                .insert(&t, index)
                .map_err(|e| format!("temporary ticket index: {e}"))?;
        }
        if index.is_multiple_of(FORGET_EVERY) {
            state.domain.elections.tickets.forget_below(index + 1);
        }
        Ok(())
    }
}
