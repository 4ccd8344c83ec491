//! The serialized form of a [`LedgerState`] (issue 14, the node's `DATA/state.snapshot`,
//! docs/format.md "State snapshot").
//!
//! The state is copied into plain mirror structures and encoded with bincode 2 (standard
//! configuration): maps in key order, the in-memory rated tickets sorted, Ed25519 keys as their 32
//! bytes, the ML-DSA-44 key as its bytes, and every typed record (charter, scope, draw commit,
//! election open, ballot) as the JSON it serializes to. An election's credential key is not
//! encoded: it is parsed again from its `election.open` record. So one state has one encoding, and
//! a decoded state encodes to the same bytes.
//!
//! The ticket backing of a [`TicketSet`](super::TicketSet) is not part of the state: a decoded
//! state has none (the node attaches its store again).

use super::draws::DrawState;
use super::election::{DrawnEvaluators, ElectionInfo, ElectionState, MicroRatings};
use super::{Declared, DomainState};
use crate::credential::IssuerPublicKey;
use crate::hash::Hash;
use crate::registry::{KeyState, NodeCompromised, NodeTenure, Registry, Role};
use crate::state::LedgerState;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Version of the encoding; the first field of every encoded state.
pub const STATE_ENCODING_VERSION: u32 = 1;

/// Upper bound on an encoded state the decoder accepts (bytes).
pub const MAX_STATE_BYTES: usize = 1 << 30;

/// The encoded state could not be decoded (or a decoded value is not valid).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state encoding: {0}")]
pub struct StateDecodeError(pub String);

fn bad(what: impl std::fmt::Display) -> StateDecodeError {
    StateDecodeError(what.to_string())
}

#[derive(Serialize, Deserialize)]
struct StateV1 {
    version: u32,
    registry: RegistryV1,
    domain: DomainV1,
}

#[derive(Serialize, Deserialize)]
struct RegistryV1 {
    charter: String,
    node_key: [u8; 32],
    keys: BTreeMap<String, KeyV1>,
    node_keys: Vec<([u8; 32], u64)>,
    compromises: Vec<([u8; 32], u64, u64)>,
}

#[derive(Serialize, Deserialize)]
struct KeyV1 {
    name: String,
    key: [u8; 32],
    mldsa44: Option<Vec<u8>>,
    roles: BTreeSet<Role>,
    scope: String,
    enrolled_at: u64,
    ended: Option<(u64, String)>,
}

#[derive(Serialize, Deserialize)]
struct DrawV1 {
    commit_index: u64,
    commit_leaf_hash: [u8; 32],
    commit: String,
    root_at_t: Option<[u8; 32]>,
    reveals: BTreeMap<String, Vec<u8>>,
    result_index: Option<u64>,
    sources: Option<Vec<Vec<String>>>,
    void_index: Option<u64>,
    cancelled_at: Option<u64>,
}

#[derive(Serialize, Deserialize)]
enum DeclaredV1 {
    Draw(String),
    Nomination(String),
    Other,
}

#[derive(Serialize, Deserialize)]
struct ElectionV1 {
    open_index: u64,
    open: String,
    eligible: BTreeSet<String>,
    keys: BTreeMap<String, [u8; 32]>,
    issued: BTreeSet<String>,
    requested: BTreeSet<String>,
    used_keys: BTreeSet<[u8; 32]>,
    ballots: Vec<(u64, String)>,
    tally_index: Option<u64>,
}

/// A draw's evaluators: selected, and assigned by subject.
type DrawnV1 = (BTreeSet<String>, BTreeMap<String, BTreeSet<String>>);

#[derive(Serialize, Deserialize)]
struct DomainV1 {
    draws: BTreeMap<String, DrawV1>,
    waiting: BTreeMap<u64, Vec<String>>,
    checkable: BTreeSet<String>,
    nominations: BTreeSet<String>,
    elections: BTreeMap<String, ElectionV1>,
    drawn: BTreeMap<String, DrawnV1>,
    pool_keys: BTreeMap<String, BTreeMap<String, [u8; 32]>>,
    tickets: Vec<([u8; 32], u64)>,
    micro: MicroRatings,
    cancellable: BTreeMap<u64, Vec<String>>,
    declared: BTreeMap<u64, DeclaredV1>,
    cancelled: BTreeSet<u64>,
    escrows: BTreeMap<String, u64>,
    sealed: BTreeMap<String, (String, bool)>,
    ids: BTreeMap<(String, String), u64>,
    nomination_subjects: BTreeMap<String, String>,
    statements: Vec<([u8; 32], u64)>,
}

fn json<T: Serialize>(v: &T) -> String {
    // The record types serialize to JSON without failing (plain structs of strings and numbers).
    serde_json::to_string(v).unwrap_or_default()
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str, what: &str) -> Result<T, StateDecodeError> {
    serde_json::from_str(s).map_err(|e| bad(format!("{what}: {e}")))
}

fn vk(b: &[u8; 32], what: &str) -> Result<VerifyingKey, StateDecodeError> {
    VerifyingKey::from_bytes(b).map_err(|e| bad(format!("{what}: not an Ed25519 key: {e}")))
}

fn ended_str(s: &str) -> Result<&'static str, StateDecodeError> {
    match s {
        "rotated" => Ok("rotated"),
        "revoked" => Ok("revoked"),
        "compromised" => Ok("compromised"),
        other => Err(bad(format!("unknown end of a key {other:?}"))),
    }
}

fn registry_v1(r: &Registry) -> RegistryV1 {
    RegistryV1 {
        charter: json(&r.charter),
        node_key: r.node_key.to_bytes(),
        keys: r
            .keys
            .iter()
            .map(|(id, k)| {
                (
                    id.clone(),
                    KeyV1 {
                        name: k.name.clone(),
                        key: k.key.to_bytes(),
                        mldsa44: k.mldsa44.as_ref().map(|m| m.as_bytes().to_vec()),
                        roles: k.roles.clone(),
                        scope: json(&k.scope),
                        enrolled_at: k.enrolled_at,
                        ended: k.ended.map(|(i, how)| (i, how.to_string())),
                    },
                )
            })
            .collect(),
        node_keys: r.node_keys.iter().map(|t| (t.key.to_bytes(), t.from)).collect(),
        compromises: r
            .compromises
            .iter()
            .map(|c| (c.key.to_bytes(), c.as_of, c.at))
            .collect(),
    }
}

fn registry_of(r: RegistryV1) -> Result<Registry, StateDecodeError> {
    let mut keys = BTreeMap::new();
    for (id, k) in r.keys {
        let st = KeyState {
            name: k.name,
            key: vk(&k.key, "registry key")?,
            mldsa44: match k.mldsa44 {
                Some(b) => Some(
                    crate::cosignature::MlDsa44PublicKey::from_bytes(&b)
                        .map_err(|e| bad(format!("ML-DSA-44 key of {id}: {e}")))?,
                ),
                None => None,
            },
            roles: k.roles,
            scope: from_json(&k.scope, "scope")?,
            enrolled_at: k.enrolled_at,
            ended: match k.ended {
                Some((i, how)) => Some((i, ended_str(&how)?)),
                None => None,
            },
        };
        keys.insert(id, st);
    }
    Ok(Registry {
        charter: from_json(&r.charter, "charter")?,
        node_key: vk(&r.node_key, "node key")?,
        keys,
        node_keys: r
            .node_keys
            .iter()
            .map(|(k, from)| {
                Ok(NodeTenure {
                    key: vk(k, "node key chain")?,
                    from: *from,
                })
            })
            .collect::<Result<_, StateDecodeError>>()?,
        compromises: r
            .compromises
            .iter()
            .map(|(k, as_of, at)| {
                Ok(NodeCompromised {
                    key: vk(k, "compromised node key")?,
                    as_of: *as_of,
                    at: *at,
                })
            })
            .collect::<Result<_, StateDecodeError>>()?,
    })
}

fn draw_v1(d: &DrawState) -> DrawV1 {
    DrawV1 {
        commit_index: d.commit_index,
        commit_leaf_hash: d.commit_leaf_hash.0,
        commit: json(&d.commit),
        root_at_t: d.root_at_t.map(|h| h.0),
        reveals: d.reveals.clone(),
        result_index: d.result_index,
        sources: d.sources.clone(),
        void_index: d.void_index,
        cancelled_at: d.cancelled_at,
    }
}

fn draw_of(d: DrawV1) -> Result<DrawState, StateDecodeError> {
    Ok(DrawState {
        commit_index: d.commit_index,
        commit_leaf_hash: Hash(d.commit_leaf_hash),
        commit: from_json(&d.commit, "draw.commit")?,
        root_at_t: d.root_at_t.map(Hash),
        reveals: d.reveals,
        result_index: d.result_index,
        sources: d.sources,
        void_index: d.void_index,
        cancelled_at: d.cancelled_at,
    })
}

fn election_v1(e: &ElectionInfo) -> ElectionV1 {
    ElectionV1 {
        open_index: e.open_index,
        open: json(&e.open),
        eligible: e.eligible.clone(),
        keys: e.keys.iter().map(|(n, k)| (n.clone(), k.to_bytes())).collect(),
        issued: e.issued.clone(),
        requested: e.requested.clone(),
        used_keys: e.used_keys.clone(),
        ballots: e.ballots.iter().map(|(i, b)| (*i, json(b))).collect(),
        tally_index: e.tally_index,
    }
}

fn election_of(e: ElectionV1) -> Result<ElectionInfo, StateDecodeError> {
    let open: crate::election::ElectionOpen = from_json(&e.open, "election.open")?;
    let key = IssuerPublicKey::from_base64(&open.credential_key).map_err(|x| bad(format!("credential key: {x}")))?;
    Ok(ElectionInfo {
        open_index: e.open_index,
        open,
        key,
        eligible: e.eligible,
        keys: e
            .keys
            .iter()
            .map(|(n, k)| Ok((n.clone(), vk(k, "pool key")?)))
            .collect::<Result<_, StateDecodeError>>()?,
        issued: e.issued,
        requested: e.requested,
        used_keys: e.used_keys,
        ballots: e
            .ballots
            .iter()
            .map(|(i, b)| Ok((*i, from_json(b, "ballot")?)))
            .collect::<Result<_, StateDecodeError>>()?,
        tally_index: e.tally_index,
    })
}

fn domain_v1(d: &DomainState) -> DomainV1 {
    let el = &d.elections;
    let mut statements: Vec<([u8; 32], u64)> = d.statements.iter().map(|(k, v)| (*k, *v)).collect();
    statements.sort_unstable();
    DomainV1 {
        draws: d.draws.iter().map(|(id, s)| (id.clone(), draw_v1(s))).collect(),
        waiting: d.waiting.clone(),
        checkable: d.checkable.clone(),
        nominations: d.nominations.clone(),
        elections: el
            .elections
            .iter()
            .map(|(id, e)| (id.clone(), election_v1(e)))
            .collect(),
        drawn: el
            .drawn
            .iter()
            .map(|(id, x)| (id.clone(), (x.selected.clone(), x.assigned.clone())))
            .collect(),
        pool_keys: el
            .pool_keys
            .iter()
            .map(|(id, m)| (id.clone(), m.iter().map(|(n, k)| (n.clone(), k.to_bytes())).collect()))
            .collect(),
        tickets: el.tickets.recent_sorted(),
        micro: el.micro.clone(),
        cancellable: d.cancellable.clone(),
        declared: d
            .declared
            .iter()
            .map(|(i, x)| {
                (
                    *i,
                    match x {
                        Declared::Draw(s) => DeclaredV1::Draw(s.clone()),
                        Declared::Nomination(s) => DeclaredV1::Nomination(s.clone()),
                        Declared::Other => DeclaredV1::Other,
                    },
                )
            })
            .collect(),
        cancelled: d.cancelled.clone(),
        escrows: d.escrows.clone(),
        sealed: d.sealed.clone(),
        ids: d.ids.clone(),
        nomination_subjects: d.nomination_subjects.clone(),
        statements,
    }
}

fn domain_of(d: DomainV1) -> Result<DomainState, StateDecodeError> {
    let mut tickets = super::TicketSet::new();
    for (t, i) in d.tickets {
        tickets.insert(t, i);
    }
    let elections = ElectionState {
        elections: d
            .elections
            .into_iter()
            .map(|(id, e)| Ok((id, election_of(e)?)))
            .collect::<Result<_, StateDecodeError>>()?,
        drawn: d
            .drawn
            .into_iter()
            .map(|(id, (selected, assigned))| (id, DrawnEvaluators { selected, assigned }))
            .collect(),
        pool_keys: d
            .pool_keys
            .into_iter()
            .map(|(id, m)| {
                Ok((
                    id,
                    m.iter()
                        .map(|(n, k)| Ok((n.clone(), vk(k, "pool key")?)))
                        .collect::<Result<_, StateDecodeError>>()?,
                ))
            })
            .collect::<Result<_, StateDecodeError>>()?,
        tickets,
        micro: d.micro,
    };
    Ok(DomainState {
        draws: d
            .draws
            .into_iter()
            .map(|(id, s)| Ok((id, draw_of(s)?)))
            .collect::<Result<_, StateDecodeError>>()?,
        waiting: d.waiting,
        checkable: d.checkable,
        nominations: d.nominations,
        elections,
        cancellable: d.cancellable,
        declared: d
            .declared
            .into_iter()
            .map(|(i, x)| {
                (
                    i,
                    match x {
                        DeclaredV1::Draw(s) => Declared::Draw(s),
                        DeclaredV1::Nomination(s) => Declared::Nomination(s),
                        DeclaredV1::Other => Declared::Other,
                    },
                )
            })
            .collect(),
        cancelled: d.cancelled,
        escrows: d.escrows,
        sealed: d.sealed,
        ids: d.ids,
        nomination_subjects: d.nomination_subjects,
        statements: d.statements.into_iter().collect(),
    })
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_STATE_BYTES>()
}

/// The encoding of `state` (deterministic: the same state gives the same bytes).
pub fn encode(state: &LedgerState) -> Vec<u8> {
    let v = StateV1 {
        version: STATE_ENCODING_VERSION,
        registry: registry_v1(&state.registry),
        domain: domain_v1(&state.domain),
    };
    // Plain data of bounded size: encoding into a vector does not fail.
    bincode::serde::encode_to_vec(&v, config()).unwrap_or_default()
}

/// The state encoded in `bytes` by [`encode`] (without a ticket backing).
///
/// # Errors
/// When the bytes are not one encoded state of this version, or hold an invalid key or record.
pub fn decode(bytes: &[u8]) -> Result<LedgerState, StateDecodeError> {
    if bytes.len() > MAX_STATE_BYTES {
        return Err(bad(format!("{} bytes, the limit is {MAX_STATE_BYTES}", bytes.len())));
    }
    let (v, used): (StateV1, usize) = bincode::serde::decode_from_slice(bytes, config()).map_err(bad)?;
    if used != bytes.len() {
        return Err(bad(format!("{} trailing bytes", bytes.len() - used)));
    }
    if v.version != STATE_ENCODING_VERSION {
        return Err(bad(format!(
            "version {}, this node reads {STATE_ENCODING_VERSION}",
            v.version
        )));
    }
    Ok(LedgerState {
        registry: registry_of(v.registry)?,
        domain: domain_of(v.domain)?,
    })
}
