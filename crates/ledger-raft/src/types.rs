//! The Raft type configuration: what one log entry carries (a sequenced group) and what applying it
//! answers (applied, or rejected with a reason).

use ledger_core::hash::Hash;
use ledger_store::{IndexTag, PreparedEntry};
use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(
    /// The ledger's Raft types: node ids are `u64`, nodes are [`LedgerNode`]s (Raft and API address),
    /// one application entry is one [`LedgerRequest`] (a sequenced group, a signed checkpoint or
    /// its cosigned form), applying it answers an [`ApplyOutcome`], and snapshots are files (the
    /// store's export stream, `docs/cluster.md`).
    pub TypeConfig:
        D = LedgerRequest,
        R = ApplyOutcome,
        NodeId = u64,
        Node = LedgerNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        Responder = openraft::impls::OneshotResponder<TypeConfig>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A Raft log entry of the ledger.
pub type LogEntry = openraft::Entry<TypeConfig>;
/// A Raft log id.
pub type LogId = openraft::LogId<u64>;
/// The membership as stored with the applied state.
pub type StoredMembership = openraft::StoredMembership<u64, LedgerNode>;

/// A cluster member as the membership records it: where its Raft service listens (`addr`, what
/// peers connect to) and where its public gRPC API listens (`api_addr`, what a follower names to
/// a client as the leader's address; empty when not given).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerNode {
    /// `host:port` of the node's Raft service (`ledger.raft.v1`).
    pub addr: String,
    /// `host:port` of the node's public API, or empty.
    pub api_addr: String,
}

impl LedgerNode {
    /// A member reached at `addr`, without an API address.
    pub fn new(addr: impl ToString) -> Self {
        Self {
            addr: addr.to_string(),
            api_addr: String::new(),
        }
    }

    /// A member with both addresses.
    pub fn with_api(addr: impl ToString, api_addr: impl ToString) -> Self {
        Self {
            addr: addr.to_string(),
            api_addr: api_addr.to_string(),
        }
    }
}

impl std::fmt::Display for LedgerNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.api_addr.is_empty() {
            write!(f, "raft {}", self.addr)
        } else {
            write!(f, "raft {}, api {}", self.addr, self.api_addr)
        }
    }
}
/// A storage error as openraft reports it (it stops the node).
pub type StorageError = openraft::StorageError<u64>;

/// One entry of a sequenced group, as the sequencer hands it to the store
/// ([`ledger_store::PreparedEntry`]), with the index tag as its byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupEntry {
    /// Index assigned by the sequencer.
    pub index: u64,
    /// Canonical entry bytes (the leaf).
    pub leaf: Vec<u8>,
    /// Its leaf hash.
    pub leaf_hash: Hash,
    /// Idempotency key and the digest of the envelope it was used for.
    pub request: Option<(String, Hash)>,
    /// Secondary index terms: tag byte ([`IndexTag::byte`]) and value.
    pub terms: Vec<(u8, String)>,
}

/// One sequenced group: the payload of one Raft entry. The leader sequences as the single node
/// does (indices, timestamps, each entry's `prev_root`); `apply` re-checks from these fields alone
/// that the group extends the applied tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequencedGroup {
    /// Root of the tree the group extends (of size `entries[0].index`).
    pub prev_root: Hash,
    /// The entries, in index order.
    pub entries: Vec<GroupEntry>,
    /// Tree size after the group.
    pub new_size: u64,
}

impl SequencedGroup {
    /// Builds a group from the store's prepared entries (what the single node's sequencer makes).
    pub fn from_prepared(prev_root: Hash, prepared: &[PreparedEntry], new_size: u64) -> Self {
        Self {
            prev_root,
            entries: prepared
                .iter()
                .map(|p| GroupEntry {
                    index: p.index,
                    leaf: p.leaf.clone(),
                    leaf_hash: p.leaf_hash,
                    request: p.request.clone(),
                    terms: p.terms.iter().map(|(t, v)| (t.byte(), v.clone())).collect(),
                })
                .collect(),
            new_size,
        }
    }
}

/// The payload of one Raft application entry (`docs/cluster.md` §Entry kinds). Every node
/// applies it with the same checks, from what it carries and the applied state only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LedgerRequest {
    /// A sequenced group: the store's group commit.
    Group(SequencedGroup),
    /// A checkpoint the leader signed for an applied size: stored on every node, so that every
    /// node serves the same bytes.
    Checkpoint {
        /// The tree size it signs (at most the applied size, above 0).
        size: u64,
        /// The signed note (C2SP checkpoint), exactly as stored and served.
        note: String,
    },
    /// The stored checkpoint of `size` with the witness cosignatures the leader gathered.
    Cosigned {
        /// The tree size (a checkpoint of this size is stored).
        size: u64,
        /// The same checkpoint note with cosignature lines added.
        note: String,
        /// Whether the leader found the charter's witness quorum of enrolled witnesses on it
        /// (re-checked on apply against the applied registry).
        witnessed: bool,
    },
}

impl From<SequencedGroup> for LedgerRequest {
    fn from(g: SequencedGroup) -> Self {
        Self::Group(g)
    }
}

/// The index tag of a term byte.
pub fn index_tag(byte: u8) -> Option<IndexTag> {
    [IndexTag::Kind, IndexTag::Subject, IndexTag::Draw]
        .into_iter()
        .find(|t| t.byte() == byte)
}

/// Why `apply` refused a group. Deterministic: it depends only on the entry and the applied tree,
/// so every node refuses the same groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Rejection {
    /// The group holds no entry.
    #[error("the group is empty")]
    Empty,
    /// The group does not start at the applied size.
    #[error("the group starts at index {first}, the applied tree has size {applied}")]
    NotAtSize {
        /// Applied size.
        applied: u64,
        /// Index of the group's first entry.
        first: u64,
    },
    /// The group's `prev_root` is not the applied root.
    #[error("the group's prev_root is not the root of the applied tree of size {applied}")]
    PrevRoot {
        /// Applied size.
        applied: u64,
    },
    /// Entries are not consecutive.
    #[error("entry at position {position} has index {found}, expected {expected}")]
    Index {
        /// Position in the group.
        position: usize,
        /// Index it should have.
        expected: u64,
        /// Index it has.
        found: u64,
    },
    /// A leaf hash is not the hash of the leaf.
    #[error("entry {index}: the leaf hash is not the hash of the entry bytes")]
    LeafHash {
        /// The entry's index.
        index: u64,
    },
    /// The entry bytes do not decode, or do not carry their index and the root before them.
    #[error("entry {index}: {detail}")]
    Entry {
        /// The entry's index.
        index: u64,
        /// What is wrong.
        detail: String,
    },
    /// An unknown index tag.
    #[error("entry {index}: unknown index tag {tag:#04x}")]
    Tag {
        /// The entry's index.
        index: u64,
        /// The tag byte.
        tag: u8,
    },
    /// A request id is empty, too long or holds control characters.
    #[error("entry {index}: the request id must be 1-128 bytes without control characters")]
    RequestId {
        /// The entry's index.
        index: u64,
    },
    /// A request id's digest is not that of the entry's envelope.
    #[error("entry {index}: the request digest is not that of the entry's envelope")]
    RequestDigest {
        /// The entry's index.
        index: u64,
    },
    /// A request id already used (earlier in the log or in the group): the retry's answer is the
    /// original index.
    #[error("entry {index}: request id {id:?} was already used by entry {original}")]
    DuplicateRequest {
        /// The entry's index.
        index: u64,
        /// The request id.
        id: String,
        /// The index it was first used for.
        original: u64,
    },
    /// An entry's timestamp is not after the one before it.
    #[error("entry {index}: timestamp {timestamp} is not after the previous entry's {previous}")]
    TimeRegression {
        /// The entry's index.
        index: u64,
        /// Its timestamp (µs).
        timestamp: u64,
        /// The previous entry's.
        previous: u64,
    },
    /// An entry breaks a ledger rule (registry, schema, signatures, domain rules), checked with
    /// the state step the single node, start-up and the verifier share.
    #[error("entry {index}: {detail}")]
    Rule {
        /// The entry's index.
        index: u64,
        /// The rule's message (with its code where it has one).
        detail: String,
    },
    /// `new_size` is not the size after the entries.
    #[error("the group claims new size {claimed}, its entries make {actual}")]
    NewSize {
        /// Claimed size.
        claimed: u64,
        /// Size after the entries.
        actual: u64,
    },
    /// A checkpoint of size 0, or of a size not yet applied.
    #[error("checkpoint of size {size}: only sizes 1..={applied} (applied) can be signed")]
    CheckpointSize {
        /// The checkpoint's size.
        size: u64,
        /// Applied size.
        applied: u64,
    },
    /// The note does not parse, names another size or origin, is not signed by the node key in
    /// force for its size in the applied registry, or that key is declared compromised for it.
    #[error("checkpoint of size {size}: {detail}")]
    CheckpointSignature {
        /// The checkpoint's size.
        size: u64,
        /// What is wrong.
        detail: String,
    },
    /// The note's root is not the applied tree's root at its size.
    #[error("checkpoint of size {size}: its root is not the applied tree's root at that size")]
    CheckpointRoot {
        /// The checkpoint's size.
        size: u64,
    },
    /// The checkpoint does not extend the latest stored one: a smaller size, or the same size
    /// with another checkpoint body (a stale or second signer).
    #[error("checkpoint of size {size} does not extend the latest stored checkpoint (size {latest})")]
    CheckpointStale {
        /// The checkpoint's size.
        size: u64,
        /// Size of the latest stored checkpoint.
        latest: u64,
    },
    /// A cosigned checkpoint for a size with no stored checkpoint, or whose body is not the stored
    /// one's, or claimed witnessed without the quorum, or witnessed below the latest witnessed.
    #[error("cosigned checkpoint of size {size}: {detail}")]
    Cosigned {
        /// The checkpoint's size.
        size: u64,
        /// What is wrong.
        detail: String,
    },
}

/// What applying one Raft entry did. A refused group is a value (never a storage error: openraft
/// stops the node on those).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApplyOutcome {
    /// The group was committed to the ledger store.
    Applied {
        /// Index of its first entry.
        first_index: u64,
        /// Tree size after it.
        new_size: u64,
    },
    /// The group was refused; the ledger is unchanged.
    Rejected {
        /// Applied size (unchanged).
        size: u64,
        /// Why.
        reason: Rejection,
    },
    /// A blank or membership entry: no ledger change.
    NoGroup {
        /// Applied size (unchanged).
        size: u64,
    },
    /// A checkpoint ([`LedgerRequest::Checkpoint`] or [`LedgerRequest::Cosigned`]) was stored
    /// (or was already stored with this body: nothing changed).
    CheckpointStored {
        /// Its size.
        size: u64,
        /// Whether it is recorded as the latest witnessed checkpoint.
        witnessed: bool,
    },
}
