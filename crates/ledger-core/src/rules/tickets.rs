//! The set of rated ticket hashes (`MICRO_DUPLICATE_TICKET`, docs/ballots.md) without holding every
//! ticket in memory (issue 14).
//!
//! A [`TicketSet`] is a map of *recent* tickets (ticket → index of the entry that rated it) plus an
//! optional [`TicketBacking`]: a durable index that answers "which entry below this index used
//! this ticket". A ticket is used when either knows it. The node backs the set with its store, the
//! verifier with a temporary on-disk index; once the backing holds every ticket below some size
//! (the node: after the group commit; the verifier: after inserting), [`TicketSet::forget_below`]
//! drops those from memory. Without a backing the set keeps every ticket in memory, exactly as
//! before (bundle verification, small tools, tests).
//!
//! A failed lookup in the backing is a [`TicketLookupError`]: never "unused" (that would let a
//! ticket rate twice) and never a rule violation of the record (the record may be fine). It
//! surfaces as [`CheckError::Lookup`] and then `StepError::StateLookup`.

use super::code::RuleError;
use std::collections::HashMap;
use std::sync::Arc;

/// The backing index of a [`TicketSet`] could not answer (storage failure, corrupt value). The
/// record was not judged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ticket index lookup failed: {0}")]
pub struct TicketLookupError(pub String);

/// A durable index of rated tickets behind a [`TicketSet`].
pub trait TicketBacking: Send + Sync {
    /// The index, below `before`, of the entry that used `ticket`, or `None` when no entry below
    /// `before` did. A hit at or above `before` (an entry replayed after it was indexed) is `None`.
    ///
    /// # Errors
    /// When the index cannot be read; the caller must not take that as "unused".
    fn ticket_index(&self, ticket: &[u8; 32], before: u64) -> Result<Option<u64>, TicketLookupError>;
}

/// A check that could not pass: a broken rule, or a state lookup that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// A cross-record rule, with its fault code.
    #[error(transparent)]
    Rule(#[from] RuleError),
    /// The durable part of the state could not be read; nothing was decided about the record.
    #[error(transparent)]
    Lookup(#[from] TicketLookupError),
}

/// Rated tickets: recent ones in memory, older ones in the optional backing (module docs).
#[derive(Clone, Default)]
pub struct TicketSet {
    recent: HashMap<[u8; 32], u64>,
    backing: Option<Arc<dyn TicketBacking>>,
}

impl std::fmt::Debug for TicketSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketSet")
            .field("recent", &self.recent.len())
            .field("backed", &self.backing.is_some())
            .finish()
    }
}

impl TicketSet {
    /// An empty set kept in memory only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Attaches a backing: from now on, tickets below the size given to [`Self::forget_below`]
    /// are looked up there.
    pub fn set_backing(&mut self, backing: Arc<dyn TicketBacking>) {
        self.backing = Some(backing);
    }

    /// Whether a backing is attached.
    pub fn is_backed(&self) -> bool {
        self.backing.is_some()
    }

    /// Number of tickets held in memory.
    pub fn recent_len(&self) -> usize {
        self.recent.len()
    }

    /// The index of the entry that used `ticket`: from memory (which holds only entries folded
    /// already, so any hit there is a use, as before the backing existed), else the backing's use
    /// below `before` (the index of the entry being checked).
    ///
    /// # Errors
    /// The backing's lookup failure.
    pub fn used_before(&self, ticket: &[u8; 32], before: u64) -> Result<Option<u64>, TicketLookupError> {
        if let Some(i) = self.recent(ticket) {
            return Ok(Some(i));
        }
        match &self.backing {
            Some(b) => b.ticket_index(ticket, before),
            None => Ok(None),
        }
    }

    /// The index of the in-memory entry that used `ticket` (no backing lookup).
    pub fn recent(&self, ticket: &[u8; 32]) -> Option<u64> {
        self.recent.get(ticket).copied()
    }

    /// The tickets held in memory with their indices, sorted (the state's encoding,
    /// [`super::snapshot`]).
    pub(crate) fn recent_sorted(&self) -> Vec<([u8; 32], u64)> {
        let mut v: Vec<([u8; 32], u64)> = self.recent.iter().map(|(t, i)| (*t, *i)).collect();
        v.sort_unstable();
        v
    }

    /// Records that the entry at `index` used `ticket` (the first use is kept).
    pub fn insert(&mut self, ticket: [u8; 32], index: u64) {
        self.recent.entry(ticket).or_insert(index);
    }

    /// Drops from memory the tickets of entries below `size`: the caller guarantees the backing
    /// holds them durably. Tickets of entries at or above `size` (in flight) stay. Without a
    /// backing nothing is dropped (memory is then the only copy).
    pub fn forget_below(&mut self, size: u64) {
        if self.backing.is_some() {
            self.recent.retain(|_, i| *i >= size);
        }
    }
}

/// The 32-byte key of a hex ticket hash (`None` when it is not 64 hex digits; such records fail
/// the schema before they get here).
pub fn ticket_key(hex_hash: &str) -> Option<[u8; 32]> {
    let mut k = [0u8; 32];
    hex::decode_to_slice(hex_hash, &mut k).ok()?;
    Some(k)
}

/// The ticket key a record uses, if it is a micro-evaluation (what a durable index stores).
pub fn record_ticket(record: &crate::domain::Record) -> Option<[u8; 32]> {
    match record {
        crate::domain::Record::MicroEvaluation(m) => ticket_key(&m.ticket_hash),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::domain::Record;
    use crate::election::MicroEvaluation;
    use crate::rules::election::ElectionState;
    use crate::rules::{DomainState, RuleCode};
    use std::sync::Mutex;

    /// A backing that knows what it is told and fails when asked to.
    #[derive(Default)]
    struct Fake {
        known: Mutex<HashMap<[u8; 32], u64>>,
        fail: std::sync::atomic::AtomicBool,
    }

    impl TicketBacking for Fake {
        fn ticket_index(&self, ticket: &[u8; 32], before: u64) -> Result<Option<u64>, TicketLookupError> {
            if self.fail.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(TicketLookupError("disk on fire".into()));
            }
            Ok(self.known.lock().unwrap().get(ticket).copied().filter(|i| *i < before))
        }
    }

    const T: u64 = 1_000_000_000;

    fn micro(ticket: u8) -> Record {
        Record::MicroEvaluation(MicroEvaluation {
            version: 1,
            ticket_hash: hex::encode([ticket; 32]),
            subject: "cadre-1".into(),
            department: "d".into(),
            rating: 4,
            service_time_micros: T - 5,
        })
    }

    fn backed() -> (DomainState, Arc<Fake>) {
        let fake = Arc::new(Fake::default());
        let mut st = DomainState::default();
        st.elections.tickets.set_backing(fake.clone());
        (st, fake)
    }

    /// What `DomainState::check_with_registry` does for a record that is not a cancellation.
    fn check(st: &DomainState, index: u64, r: &Record) -> Result<(), CheckError> {
        st.check_at(index, T, r, &[])?;
        st.elections.check_ticket(index, r)
    }

    #[test]
    fn ticket_only_in_the_backing_is_refused_with_the_rule_code() {
        let (st, fake) = backed();
        fake.known.lock().unwrap().insert([7; 32], 3);
        assert_eq!(st.elections.tickets.recent_len(), 0);
        match check(&st, 10, &micro(7)) {
            Err(CheckError::Rule(e)) => {
                assert_eq!(e.code, RuleCode::MicroDuplicateTicket);
                assert!(e.detail.contains("entry 3"), "{}", e.detail);
            }
            other => panic!("expected MICRO_DUPLICATE_TICKET, got {other:?}"),
        }
        // A fresh ticket passes; the backing's own entry replayed at its index is not a reuse.
        assert_eq!(check(&st, 10, &micro(8)), Ok(()));
        assert_eq!(check(&st, 3, &micro(7)), Ok(()));
    }

    #[test]
    fn lookup_error_is_not_a_rule_code_nor_unused() {
        let (st, fake) = backed();
        fake.fail.store(true, std::sync::atomic::Ordering::Relaxed);
        match check(&st, 10, &micro(9)) {
            Err(CheckError::Lookup(e)) => assert!(e.to_string().contains("disk on fire"), "{e}"),
            other => panic!("expected a lookup error, got {other:?}"),
        }
        let step: crate::state::StepError = check(&st, 10, &micro(9)).unwrap_err().into();
        assert!(matches!(step, crate::state::StepError::StateLookup(_)), "{step:?}");
        // Records without a ticket do not touch the backing.
        let mut other = micro(9);
        if let Record::MicroEvaluation(m) = &mut other {
            m.ticket_hash = "zz".into();
        }
        assert_eq!(check(&st, 10, &other), Ok(()));
    }

    #[test]
    fn forget_below_keeps_in_flight_tickets() {
        let (mut st, fake) = backed();
        for (i, t) in [(5u64, 1u8), (6, 2), (7, 3)] {
            st.elections.apply(i, &micro(t));
        }
        // Entries 5 and 6 are durable (the backing has them), 7 is still being written.
        fake.known.lock().unwrap().extend([([1; 32], 5), ([2; 32], 6)]);
        st.elections.tickets.forget_below(7);
        assert_eq!(st.elections.tickets.recent_len(), 1);
        for t in [1u8, 2, 3] {
            match check(&st, 8, &micro(t)) {
                Err(CheckError::Rule(e)) => assert_eq!(e.code, RuleCode::MicroDuplicateTicket, "ticket {t}"),
                other => panic!("ticket {t}: expected MICRO_DUPLICATE_TICKET, got {other:?}"),
            }
        }
        // The in-memory check alone still sees the in-flight ticket.
        assert_eq!(
            st.check_at(8, T, &micro(3), &[]).map_err(|e| e.code),
            Err(RuleCode::MicroDuplicateTicket)
        );
    }

    #[test]
    fn without_a_backing_nothing_is_forgotten() {
        let mut st = ElectionState::default();
        st.apply(1, &micro(4));
        st.tickets.forget_below(u64::MAX);
        assert_eq!(st.tickets.recent_len(), 1);
        assert_eq!(
            st.check(2, T, &micro(4), &[]).map_err(|e| e.code),
            Err(RuleCode::MicroDuplicateTicket)
        );
        assert_eq!(st.check_ticket(2, &micro(4)).map_err(|_| ()), Err(()));
    }
}
