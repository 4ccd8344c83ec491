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
    /// This node does not lead the cluster (or lost the lead while the item was in flight): the
    /// client sends it to the leader, named when known, with the same request id.
    NotLeader {
        /// The leader's Raft id, if known.
        leader_id: Option<u64>,
        /// The leader's public API address, if the config names it.
        api: Option<String>,
    },
    /// A `node.compromise` whose `as_of` is below the latest checkpoint the witness quorum
    /// cosigned: the witnesses already vouched for that history (docs/registry.md).
    CompromiseBelowWitnessed {
        /// The record's `as_of`.
        as_of: u64,
        /// Size of the latest witnessed checkpoint.
        witnessed: u64,
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
            Refusal::CompromiseBelowWitnessed { as_of, witnessed } => write!(
                f,
                "COMPROMISE_BELOW_WITNESSED: as_of {as_of} is below {witnessed}, the size of the latest checkpoint \
                 the witness quorum cosigned: the witnesses already vouched for the entries before it; declare the \
                 key compromised as of {witnessed} or later"
            ),
            Refusal::NotLeader { leader_id, api } => match (leader_id, api) {
                (Some(l), Some(a)) => write!(
                    f,
                    "NOT_LEADER: this node does not lead the cluster; the leader is node {l} at {a}: send appends \
                     there (metadata ledger-leader), with the same request id"
                ),
                (Some(l), None) => write!(
                    f,
                    "NOT_LEADER: this node does not lead the cluster; the leader is node {l} (its API address is \
                     not in this node's [api] config); retry with the same request id"
                ),
                _ => write!(
                    f,
                    "NOT_LEADER: this node does not lead the cluster and no leader is known (an election is \
                     under way); retry shortly with the same request id"
                ),
            },
            Refusal::RequestIdReused { id } => write!(
                f,
                "request id {id:?} was already used for a different envelope; use a new request id"
            ),
        }
    }
}
