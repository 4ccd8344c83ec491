//! Why the sequencer refused an item, as core errors: the service edge maps them to gRPC status
//! codes (`errors::refusal_status`), so the sequencer knows no gRPC types.

use ledger_core::state::StepError;

/// Why the sequencer refused an item: a core error, mapped to a gRPC status only at the service
/// edge (`errors::refusal_status`).
#[derive(Debug, Clone)]
pub enum Refusal {
    /// The state step refused it: a registry rule, a payload that does not parse, a domain rule.
    Step(StepError),
    /// Storage failed or the sequencer stopped; the caller may retry with the same request id.
    Unavailable(String),
    /// The request id was used before for another envelope.
    RequestIdReused {
        /// The request id.
        id: String,
    },
    /// A `node.rotate` to a key this node was not given (`serve --next-node-key`): it could not
    /// sign after the record, so it does not co-sign it.
    NextKeyNotHeld {
        /// Key id of the record's new key.
        keyid: String,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Step(e) => e.fmt(f),
            Refusal::Unavailable(why) => f.write_str(why),
            Refusal::NextKeyNotHeld { keyid } => write!(
                f,
                "NEXT_NODE_KEY_NOT_HELD: this node does not hold the new node key {keyid}; its operator \
                 restarts it with --next-node-key FILE holding that key before the rotation is appended"
            ),
            Refusal::RequestIdReused { id } => write!(
                f,
                "request id {id:?} was already used for a different envelope; use a new request id"
            ),
        }
    }
}
