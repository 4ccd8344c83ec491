//! The registry's records (charter, key records) and the edge check of any payload, which parses
//! it once into its typed record ([`check_payload`], [`ParsedPayload`]).

use super::error::RegistryError;
use super::payload_type::kind_of;
use super::roles::{Role, roles_for_kind};
use super::terms::{IndexTag, terms_of};
use crate::domain::{Record, SchemaError};
use crate::dsse::Envelope;
use crate::keys::public_key_from_base64;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

/// Registry policy, fixed by the charter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Distinct administrator signatures a key record needs.
    pub admin_quorum: u32,
    /// Witness cosignatures that make a checkpoint "witnessed" (0: none required).
    #[serde(default)]
    pub witness_quorum: u32,
    /// Every envelope after entry 0 must carry the payload type bound to this log's origin
    /// ([`payload_type_for_log`]). Absent (false) in charters written before log binding: both
    /// forms are then accepted, the bound one only with this log's origin.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub log_binding: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            admin_quorum: 1,
            witness_quorum: 0,
            log_binding: false,
        }
    }
}

/// A named public key in a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedKey {
    /// Human-readable name (e.g. "organization department, admin 1").
    pub name: String,
    /// Standard base64 of the 32-byte Ed25519 public key.
    pub key: String,
}

/// Entry 0: the genesis charter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Charter {
    /// Always 1.
    pub version: u32,
    /// Log origin (checkpoint origin line and node key name).
    pub origin: String,
    /// The node's checkpoint key, base64.
    pub node_key: String,
    /// Administrator keys.
    pub admins: Vec<NamedKey>,
    /// Policy.
    pub policy: Policy,
}

/// Scope of an enrolled key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Organization the key acts for (informational; shown in reports).
    #[serde(default)]
    pub organization: String,
    /// Record kinds the key may sign; empty = every kind its roles allow.
    #[serde(default)]
    pub kinds: Vec<String>,
}

/// `key.enroll`: adds a key with roles and a scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEnroll {
    /// Always 1.
    pub version: u32,
    /// Holder's name.
    pub name: String,
    /// Public key, base64.
    pub key: String,
    /// Roles granted.
    pub roles: Vec<Role>,
    /// Scope.
    #[serde(default)]
    pub scope: Scope,
    /// Witness role only: the holder's ML-DSA-44 cosignature key (base64 of the 1312-byte FIPS 204
    /// public key). Its C2SP `0x06` cosignatures then count for this witness instead of `0x04` ones
    /// by `key`, which stays the key's identity (key id, rotation, revocation; docs/witness.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mldsa44_key: Option<String>,
}

/// `key.rotate`: replaces an active key by a new one with the same roles and scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRotate {
    /// Always 1.
    pub version: u32,
    /// Key id of the key being replaced.
    pub keyid: String,
    /// New public key, base64.
    pub new_key: String,
    /// The new ML-DSA-44 cosignature key of a witness, base64 (see [`KeyEnroll::mldsa44_key`]);
    /// without it a rotated witness has none (the old one ends with the old key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_mldsa44_key: Option<String>,
    /// Why.
    #[serde(default)]
    pub reason: String,
}

/// `key.revoke`: stops a key from signing from the next index on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRevoke {
    /// Always 1.
    pub version: u32,
    /// Key id being revoked.
    pub keyid: String,
    /// Why (e.g. "key stolen").
    pub reason: String,
}

/// `node.rotate`: planned rotation of the node (log) key (docs/registry.md, "Node key
/// lifecycle"). Signed by the current node key and the administrator quorum; from the next index on
/// the node role (checkpoints, draw results, voids, tallies) belongs to `new_key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeRotate {
    /// Always 1.
    pub version: u32,
    /// The new node key, base64 of the 32-byte Ed25519 public key.
    pub new_key: String,
    /// Why (e.g. "new HSM").
    pub reason: String,
}

/// `node.compromise`: the administrator quorum declares a node key compromised as of an index and
/// hands the node role to `new_key` (docs/registry.md, "Node key lifecycle"). Signed by the
/// administrators alone: the holder of a stolen key cannot be required to sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeCompromise {
    /// Always 1.
    pub version: u32,
    /// Key id of the compromised node key: the current one, or an earlier one of the chain whose
    /// tenure reaches `as_of`.
    pub keyid: String,
    /// First index from which the key is held compromised (at most the record's own index).
    pub as_of: u64,
    /// The new node key, base64 of the 32-byte Ed25519 public key; unknown to the registry.
    pub new_key: String,
    /// Why (e.g. "HSM stolen").
    pub reason: String,
}

/// A key record, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRecord {
    /// `key.enroll`
    Enroll(KeyEnroll),
    /// `key.rotate`
    Rotate(KeyRotate),
    /// `key.revoke`
    Revoke(KeyRevoke),
    /// `node.rotate`
    NodeRotate(NodeRotate),
    /// `node.compromise`
    NodeCompromise(NodeCompromise),
}

/// A payload parsed once into its typed record: the domain [`Record`] (`Record::Other` for
/// registry records and notes) and, for `key.*` records, the [`KeyRecord`]. The node's edge makes
/// it ([`check_payload`]) and the state step takes it (`state::LedgerState::check_parsed`), so
/// an append parses its payload once per form (the JSON shape, then the typed record).
#[derive(Debug, Clone)]
pub struct ParsedPayload {
    /// The domain record.
    pub record: Record,
    /// The key record of a `key.*` payload.
    pub key: Option<KeyRecord>,
}

impl ParsedPayload {
    /// Parses the typed record of `kind` (no check of the JSON shape: see [`check_payload`]).
    ///
    /// # Errors
    /// A `key.*` payload that does not parse is a [`RegistryError::InvalidPayload`]; a domain
    /// record that breaks its schema is a [`RecordError`] with the schema's message.
    pub fn parse(kind: &str, payload: &[u8]) -> Result<Self, RecordError> {
        let key = match kind {
            "key.enroll" => Some(KeyRecord::Enroll(parse(kind, payload)?)),
            "key.rotate" => Some(KeyRecord::Rotate(parse(kind, payload)?)),
            "key.revoke" => Some(KeyRecord::Revoke(parse(kind, payload)?)),
            "node.rotate" => Some(KeyRecord::NodeRotate(parse(kind, payload)?)),
            "node.compromise" => Some(KeyRecord::NodeCompromise(parse(kind, payload)?)),
            _ => None,
        };
        let record = if key.is_some() || kind == "charter" {
            Record::Other
        } else {
            crate::domain::check_record(kind, payload).map_err(RecordError::Schema)?
        };
        Ok(Self { record, key })
    }
}

/// Why a payload does not parse as its kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// A registry record (or the JSON shape) is invalid.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A domain record breaks its schema (docs/records.md).
    #[error(transparent)]
    Schema(#[from] SchemaError),
}

/// A payload that passed the edge check: its typed record and its secondary-index terms
/// ([`index_terms`]), from one parse of each form.
#[derive(Debug, Clone)]
pub struct CheckedPayload {
    /// The typed record.
    pub parsed: ParsedPayload,
    /// Secondary-index terms of the record.
    pub terms: Vec<(IndexTag, String)>,
}

pub(super) fn parse<T: for<'de> Deserialize<'de>>(kind: &str, payload: &[u8]) -> Result<T, RegistryError> {
    serde_json::from_slice(payload).map_err(|e| RegistryError::InvalidPayload {
        kind: kind.into(),
        detail: e.to_string(),
    })
}

/// The ML-DSA-44 cosignature key of a `key.enroll`/`key.rotate` record: only a witness cosigns.
pub(super) fn mldsa44_of(
    kind: &str,
    b64: Option<&str>,
    roles: &[Role],
) -> Result<Option<crate::cosignature::MlDsa44PublicKey>, RegistryError> {
    let Some(b64) = b64 else {
        return Ok(None);
    };
    let invalid = |detail: String| RegistryError::InvalidPayload {
        kind: kind.into(),
        detail,
    };
    if !roles.contains(&Role::Witness) {
        return Err(invalid(
            "an ML-DSA-44 cosignature key is only for the witness role".into(),
        ));
    }
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| invalid(format!("ML-DSA-44 key is not base64: {e}")))?;
    crate::cosignature::MlDsa44PublicKey::from_bytes(&raw)
        .map(Some)
        .map_err(|e| invalid(e.to_string()))
}

pub(super) fn key_of(kind: &str, b64: &str) -> Result<VerifyingKey, RegistryError> {
    let k = public_key_from_base64(b64).map_err(|e| RegistryError::InvalidPayload {
        kind: kind.into(),
        detail: e.to_string(),
    })?;
    if k.is_weak() {
        return Err(RegistryError::InvalidPayload {
            kind: kind.into(),
            detail: "small-order (weak) Ed25519 key refused".into(),
        });
    }
    Ok(k)
}

/// The record kind of an envelope, checked against the known kinds.
///
/// # Errors
/// When the payload type is not a known ledger kind.
pub fn envelope_kind(env: &Envelope) -> Result<&str, RegistryError> {
    let kind = kind_of(&env.payload_type).ok_or_else(|| RegistryError::UnknownKind(env.payload_type.clone()))?;
    if roles_for_kind(kind).is_none() {
        return Err(RegistryError::UnknownKind(env.payload_type.clone()));
    }
    Ok(kind)
}

/// Checks that the payload is a JSON object (every ledger payload is) with `"version": 1` and
/// that it parses as its kind (registry records and domain records match their schema exactly).
/// Returns the typed record and the index terms, so nothing downstream parses the payload again.
///
/// # Errors
/// When the payload is not valid for its kind.
pub fn check_payload(kind: &str, payload: &[u8]) -> Result<CheckedPayload, RegistryError> {
    let v: serde_json::Value = parse(kind, payload)?;
    if !v.is_object() {
        return Err(RegistryError::InvalidPayload {
            kind: kind.into(),
            detail: "payload must be a JSON object".into(),
        });
    }
    if v.get("version").and_then(serde_json::Value::as_u64) != Some(1) {
        return Err(RegistryError::InvalidPayload {
            kind: kind.into(),
            detail: "\"version\": 1 is required".into(),
        });
    }
    if kind == "charter" {
        parse::<Charter>(kind, payload)?;
    }
    let parsed = ParsedPayload::parse(kind, payload).map_err(|e| match e {
        RecordError::Registry(e) => e,
        RecordError::Schema(detail) => RegistryError::InvalidPayload {
            kind: kind.into(),
            detail: detail.to_string(),
        },
    })?;
    Ok(CheckedPayload {
        parsed,
        terms: terms_of(kind, &v),
    })
}
