//! The store as the backing of the state's ticket set (issue 14; used by the node's sequencer and
//! start-up and by the cluster's state machine): rated tickets older than the
//! group in flight are looked up in the store's ticket index instead of being held in memory.
//!
//! The index is an accelerator that anyone with the data directory can edit, so a hit is only
//! believed after the entry it names was read and decoded and really rated this ticket; any other
//! hit is logged and taken as a miss (docs/threat-model.md).

use crate::Store;
use ledger_core::domain::{Record, check_record};
use ledger_core::entry::Entry;
use ledger_core::registry::envelope_kind;
use ledger_core::rules::tickets::record_ticket;
use ledger_core::rules::{TicketBacking, TicketLookupError};
use std::sync::Arc;

/// [`TicketBacking`] over [`Store::ticket_index`], checking every hit against the entry.
pub struct StoreTickets {
    store: Arc<Store>,
}

impl StoreTickets {
    /// The backing of the store.
    pub fn new(store: Arc<Store>) -> Self {
        Self { store }
    }
}

fn lookup_err(e: impl std::fmt::Display) -> TicketLookupError {
    TicketLookupError(format!("store: {e}"))
}

/// Whether the canonical entry `bytes` is a micro-evaluation of `ticket`.
fn rates(bytes: &[u8], ticket: &[u8; 32]) -> bool {
    let Ok(e) = Entry::decode(bytes) else {
        return false;
    };
    let Ok(kind) = envelope_kind(&e.envelope) else {
        return false;
    };
    if kind != "evaluation.micro" {
        return false;
    }
    matches!(check_record(kind, &e.envelope.payload), Ok(r @ Record::MicroEvaluation(_)) if record_ticket(&r) == Some(*ticket))
}

impl TicketBacking for StoreTickets {
    fn ticket_index(&self, ticket: &[u8; 32], before: u64) -> Result<Option<u64>, TicketLookupError> {
        let Some(index) = self.store.ticket_index(ticket).map_err(lookup_err)? else {
            return Ok(None);
        };
        if index >= before {
            return Ok(None);
        }
        let bytes = self.store.entry(index).map_err(lookup_err)?;
        if bytes.is_some_and(|b| rates(&b, ticket)) {
            return Ok(Some(index));
        }
        tracing::warn!(
            index,
            ticket = %ledger_core::hash::Hash(*ticket),
            "the store's ticket index names an entry that did not rate this ticket; ignored (run ledger-verify replay --data)"
        );
        Ok(None)
    }
}
