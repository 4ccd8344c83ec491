//! The on-ledger key registry (requirement R3): who may append what, as of each index.
//!
//! Entry 0 is the charter (origin, node checkpoint key, administrator keys, policy). Later
//! `key.enroll`, `key.rotate` and `key.revoke` records, signed by a quorum of administrators, change
//! the registry going forward. The node runs [`Registry::verify_signatures`] at its edge; the
//! registry half of every state step ([`crate::state::LedgerState::check`], used by the node's
//! sequencer and start-up, the verifier's replay and review, and bundles) is
//! [`Registry::authorize_next`], so all apply the very same rules.
//!
//! Rules (`docs/registry.md`):
//! - the payload type is bound to this log: a bound type (`...v1+json; log="<origin>"`) names this
//!   log's origin (`WRONG_LOG`), and a charter with `policy.log_binding` refuses unbound types after
//!   entry 0 (`LOG_BINDING_MISSING`) ([`Registry::check_log_binding`]);
//! - every signature on an envelope must be by a key the registry knows and must verify;
//! - every signer must be active (not revoked, not rotated away) at that index;
//! - key records need `policy.admin_quorum` distinct active administrators;
//! - any other kind needs at least one signer holding a role allowed for that kind (see
//!   [`roles_for_kind`]) whose scope admits the kind.

use crate::dsse::{DsseError, Envelope};
use crate::entry::Entry;
use crate::keys::{key_id, public_key_from_base64};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Prefix of every ledger payload type.
pub const PAYLOAD_TYPE_PREFIX: &str = "application/vnd.ledger.";
/// Suffix of every version-1 ledger payload type.
pub const PAYLOAD_TYPE_SUFFIX: &str = ".v1+json";

/// The payload type of a record kind: `application/vnd.ledger.<kind>.v1+json`.
pub fn payload_type(kind: &str) -> String {
    format!("{PAYLOAD_TYPE_PREFIX}{kind}{PAYLOAD_TYPE_SUFFIX}")
}

/// What a bound payload type adds after the version-1 suffix, before the log's origin.
pub const LOG_PARAMETER: &str = "; log=\"";

/// The payload type of a record kind bound to one log (docs/format.md):
/// `application/vnd.ledger.<kind>.v1+json; log="<origin>"`. The origin is covered by every
/// signature (DSSE PAE), so the record is valid in that log only.
pub fn payload_type_for_log(kind: &str, origin: &str) -> String {
    format!("{PAYLOAD_TYPE_PREFIX}{kind}{PAYLOAD_TYPE_SUFFIX}{LOG_PARAMETER}{origin}\"")
}

/// The payload type a signer uses: bound to `origin` when given, the unbound form otherwise.
pub fn payload_type_in(kind: &str, origin: Option<&str>) -> String {
    match origin {
        Some(o) => payload_type_for_log(kind, o),
        None => payload_type(kind),
    }
}

/// True when `origin` can be named in a bound payload type: non-empty, without `"`, `\`,
/// control characters or whitespace.
pub fn origin_bindable(origin: &str) -> bool {
    !origin.is_empty()
        && !origin
            .chars()
            .any(|c| c == '"' || c == '\\' || c.is_control() || c.is_whitespace())
}

/// Splits a payload type of the ledger's form into its record kind and, for the bound form, the
/// log origin it names. `None` when it has neither form.
pub fn parse_payload_type(payload_type: &str) -> Option<(&str, Option<&str>)> {
    let rest = payload_type.strip_prefix(PAYLOAD_TYPE_PREFIX)?;
    if let Some(kind) = rest.strip_suffix(PAYLOAD_TYPE_SUFFIX) {
        return Some((kind, None));
    }
    let at = rest.find(PAYLOAD_TYPE_SUFFIX)?;
    let (kind, tail) = rest.split_at(at);
    let origin = tail
        .strip_prefix(PAYLOAD_TYPE_SUFFIX)?
        .strip_prefix(LOG_PARAMETER)?
        .strip_suffix('"')?;
    origin_bindable(origin).then_some((kind, Some(origin)))
}

/// The record kind named by a payload type, if it has the ledger's form (unbound or bound).
pub fn kind_of(payload_type: &str) -> Option<&str> {
    parse_payload_type(payload_type).map(|(k, _)| k)
}

/// A role a key can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Manages the registry (key records).
    Admin,
    /// The node itself: checkpoints and node-computed records.
    Node,
    /// Organization department: pools, draws, elections, credentials.
    Registrar,
    /// Nominates candidates.
    Nominator,
    /// Discipline, audit, petition and other dossier sources.
    DataSource,
    /// Government service platform submitting citizen micro-evaluations.
    ServicePlatform,
    /// Issues blind evaluator credentials.
    CredentialIssuer,
    /// Signs committee decisions.
    CommitteeMember,
    /// Discipline inspection, audit, inspection tours.
    Inspector,
    /// Independent checkpoint witness.
    Witness,
}

/// Record kinds the ledger knows and the roles that may sign each.
pub fn roles_for_kind(kind: &str) -> Option<&'static [Role]> {
    use Role::*;
    Some(match kind {
        "charter" => &[Node],
        "key.enroll" | "key.rotate" | "key.revoke" => &[Admin],
        "escrow.key" => &[Admin],
        "nomination" => &[Nominator, Registrar],
        "pool.commit" | "draw.commit" | "draw.sources" | "election.open" | "credential.issued" => &[Registrar],
        "draw.reveal" => &[Registrar, Inspector, DataSource, CommitteeMember],
        "draw.result" | "draw.void" | "tally" => &[Node],
        "dossier.fact" | "verification" | "complaint" => &[DataSource, Inspector],
        "evaluation.micro" => &[ServicePlatform],
        // Signed by a one-time key outside the registry; its credential is its authorization
        // (see `Registry::verify_signatures` and `election_rules`).
        "ballot" => &[],
        "decision" => &[CommitteeMember, Registrar],
        "accountability" => &[Inspector],
        "cancellation" => &[Registrar, Inspector, Admin],
        "note" => &[Registrar, Inspector, DataSource, Nominator, CommitteeMember, Admin],
        _ => return None,
    })
}

/// The record kinds of the registry itself.
pub fn is_key_record(kind: &str) -> bool {
    matches!(kind, "key.enroll" | "key.rotate" | "key.revoke")
}

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

/// Errors of registry rules. Each says what is missing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Envelope shape or limits.
    #[error(transparent)]
    Envelope(#[from] DsseError),
    /// The payload type is not a ledger record kind.
    #[error(
        "unknown payload type {0:?}: expected application/vnd.ledger.<kind>.v1+json (or bound: ...v1+json; log=\"<origin>\") with a known kind"
    )]
    UnknownKind(String),
    /// The payload does not parse as its kind requires.
    #[error("invalid {kind} payload: {detail}")]
    InvalidPayload {
        /// Record kind.
        kind: String,
        /// What is wrong.
        detail: String,
    },
    /// A signature names a key the registry does not know.
    #[error("signature by unknown key {keyid}: enroll it first (key.enroll)")]
    UnknownKey {
        /// Key id.
        keyid: String,
    },
    /// The same key signed twice.
    #[error("key {keyid} signed the envelope more than once")]
    DuplicateSigner {
        /// Key id.
        keyid: String,
    },
    /// A signature does not verify.
    #[error("signature by key {keyid} does not verify over the DSSE PAE")]
    BadSignature {
        /// Key id.
        keyid: String,
    },
    /// A signer was revoked or rotated away.
    #[error("key {keyid} ({name}) was {how} at index {at}")]
    Revoked {
        /// Key id.
        keyid: String,
        /// Holder.
        name: String,
        /// "revoked" or "rotated".
        how: &'static str,
        /// Index of the record that did it.
        at: u64,
    },
    /// No signer holds a role allowed for the kind.
    #[error("{kind} needs a signature by a key with role {needed}; signers hold {held}")]
    MissingRole {
        /// Record kind.
        kind: String,
        /// Roles that would do.
        needed: String,
        /// Roles the signers hold.
        held: String,
    },
    /// Not enough administrators signed.
    #[error("{kind} needs {need} distinct administrator signatures, got {have}")]
    MissingQuorum {
        /// Record kind.
        kind: String,
        /// Required.
        need: u32,
        /// Present.
        have: u32,
    },
    /// A key record conflicts with the registry's state.
    #[error("{0}")]
    Conflict(String),
    /// The charter is missing, misplaced or invalid.
    #[error("charter: {0}")]
    Charter(String),
    /// The envelope's payload type binds it to another log.
    #[error(
        "WRONG_LOG: the envelope is bound to log {found:?}, not to this log {expected:?}; it was signed for another ledger"
    )]
    WrongLog {
        /// Origin named in the payload type.
        found: String,
        /// This log's origin.
        expected: String,
    },
    /// This log requires bound payload types and the envelope's is not.
    #[error(
        "LOG_BINDING_MISSING: this log's charter requires payload type {expected:?}; sign the record with it (the unbound {found:?} is valid in any log)"
    )]
    LogBindingMissing {
        /// The payload type found.
        found: String,
        /// The bound payload type expected.
        expected: String,
    },
}

/// A key as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyState {
    /// Holder.
    pub name: String,
    /// Public key.
    #[serde(skip)]
    pub key: VerifyingKey,
    /// A witness's ML-DSA-44 cosignature key, if enrolled.
    #[serde(skip)]
    pub mldsa44: Option<crate::cosignature::MlDsa44PublicKey>,
    /// Roles.
    pub roles: BTreeSet<Role>,
    /// Scope.
    pub scope: Scope,
    /// Index of the record that enrolled it (0 for charter keys).
    pub enrolled_at: u64,
    /// Index of the record that revoked or rotated it, and which.
    pub ended: Option<(u64, &'static str)>,
}

/// The registry as of some index.
#[derive(Debug, Clone)]
pub struct Registry {
    /// The charter.
    pub charter: Charter,
    /// Node key.
    pub node_key: VerifyingKey,
    /// Keys by key id.
    pub keys: BTreeMap<String, KeyState>,
}

fn parse<T: for<'de> Deserialize<'de>>(kind: &str, payload: &[u8]) -> Result<T, RegistryError> {
    serde_json::from_slice(payload).map_err(|e| RegistryError::InvalidPayload {
        kind: kind.into(),
        detail: e.to_string(),
    })
}

fn key_of(kind: &str, b64: &str) -> Result<VerifyingKey, RegistryError> {
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

/// The ML-DSA-44 cosignature key of a `key.enroll`/`key.rotate` record: only a witness cosigns.
fn mldsa44_of(
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

fn role_list(roles: impl IntoIterator<Item = Role>) -> String {
    let v: Vec<String> = roles
        .into_iter()
        .map(|r| {
            serde_json::to_value(r)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default()
        })
        .collect();
    if v.is_empty() { "no role".into() } else { v.join("|") }
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

/// Checks that the payload is a JSON object (every ledger payload is) and, for registry records,
/// that it matches its schema exactly.
///
/// # Errors
/// When the payload is not valid for its kind.
pub fn check_payload(kind: &str, payload: &[u8]) -> Result<(), RegistryError> {
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
    match kind {
        "charter" => parse::<Charter>(kind, payload).map(drop),
        "key.enroll" => parse::<KeyEnroll>(kind, payload).map(drop),
        "key.rotate" => parse::<KeyRotate>(kind, payload).map(drop),
        "key.revoke" => parse::<KeyRevoke>(kind, payload).map(drop),
        _ => crate::domain::check_record(kind, payload)
            .map(drop)
            .map_err(|detail| RegistryError::InvalidPayload {
                kind: kind.into(),
                detail,
            }),
    }
}

impl Registry {
    /// Builds the registry from entry 0, which must be a valid charter signed by the node key and
    /// by every administrator it lists (proof that each holds its key).
    ///
    /// # Errors
    /// When the entry is not a valid, fully signed charter at index 0.
    pub fn genesis(entry: &Entry) -> Result<Self, RegistryError> {
        if entry.index != 0 {
            return Err(RegistryError::Charter(format!(
                "the charter must be entry 0, not {}",
                entry.index
            )));
        }
        let env = &entry.envelope;
        env.check_limits()?;
        if kind_of(&env.payload_type) != Some("charter") {
            return Err(RegistryError::Charter(format!(
                "entry 0 has payload type {:?}",
                env.payload_type
            )));
        }
        check_payload("charter", &env.payload)?;
        let charter: Charter = parse("charter", &env.payload)?;
        if charter.origin.is_empty() || charter.origin.chars().any(|c| c.is_whitespace() || c == '+') {
            return Err(RegistryError::Charter(
                "origin must be non-empty without spaces or '+'".into(),
            ));
        }
        if charter.policy.admin_quorum == 0 || charter.policy.admin_quorum as usize > charter.admins.len() {
            return Err(RegistryError::Charter(format!(
                "admin_quorum {} must be between 1 and the number of admins ({})",
                charter.policy.admin_quorum,
                charter.admins.len()
            )));
        }
        if charter.policy.log_binding && !origin_bindable(&charter.origin) {
            return Err(RegistryError::Charter(
                "with log_binding the origin must not contain '\"', '\\', control characters or whitespace".into(),
            ));
        }
        if let Some((_, Some(o))) = parse_payload_type(&env.payload_type)
            && o != charter.origin
        {
            return Err(RegistryError::WrongLog {
                found: o.to_string(),
                expected: charter.origin.clone(),
            });
        }
        let node_key = key_of("charter", &charter.node_key)?;
        let mut keys = BTreeMap::new();
        keys.insert(
            key_id(&node_key),
            KeyState {
                name: format!("node {}", charter.origin),
                key: node_key,
                mldsa44: None,
                roles: [Role::Node].into(),
                scope: Scope::default(),
                enrolled_at: 0,
                ended: None,
            },
        );
        for a in &charter.admins {
            let k = key_of("charter", &a.key)?;
            let id = key_id(&k);
            if keys.contains_key(&id) {
                return Err(RegistryError::Charter(format!("key {id} listed twice")));
            }
            keys.insert(
                id,
                KeyState {
                    name: a.name.clone(),
                    key: k,
                    mldsa44: None,
                    roles: [Role::Admin].into(),
                    scope: Scope::default(),
                    enrolled_at: 0,
                    ended: None,
                },
            );
        }
        let reg = Registry {
            charter,
            node_key,
            keys,
        };
        let signers = reg.verify_signatures(env)?;
        for (id, _) in reg.keys.iter() {
            if !signers.contains(id) {
                return Err(RegistryError::Charter(format!(
                    "the charter must be signed by every key it lists; {id} did not sign"
                )));
            }
        }
        Ok(reg)
    }

    /// Verifies every signature of the envelope cryptographically against the registry's keys and
    /// returns the signers' key ids. Key material never changes for a key id, so a registry
    /// snapshot from before the entry gives the same answer. Every key id is looked up (and
    /// duplicates refused) before any cryptography, so a signature by a key the registry does not
    /// know costs no verification; each signature is then verified exactly once (strict).
    ///
    /// # Errors
    /// Unknown key, duplicate signer or bad signature.
    ///
    /// A `ballot` is the exception: it must carry exactly one signature, by the one-time key its
    /// payload names (`ballot_key`), which must not be a registry key; the election rules then
    /// check the credential that certifies that key.
    ///
    /// The log binding of the payload type ([`Self::check_log_binding`]) is checked first: it is
    /// part of what the signatures cover.
    pub fn verify_signatures(&self, env: &Envelope) -> Result<Vec<String>, RegistryError> {
        self.check_log_binding(&env.payload_type)?;
        if kind_of(&env.payload_type) == Some("ballot") {
            return self.verify_ballot_signature(env);
        }
        let signers = self.known_signers(env)?;
        let pae = env.pae();
        for (s, key) in env.signatures.iter().zip(&signers) {
            let bad = || RegistryError::BadSignature { keyid: s.keyid.clone() };
            let sig = ed25519_dalek::Signature::from_slice(&s.sig).map_err(|_| bad())?;
            key.verify_strict(&pae, &sig).map_err(|_| bad())?;
        }
        Ok(env.signatures.iter().map(|s| s.keyid.clone()).collect())
    }

    /// The registry keys of the envelope's signatures, in order, without any cryptography.
    ///
    /// # Errors
    /// The first key id the registry does not know, or one that signed twice.
    fn known_signers(&self, env: &Envelope) -> Result<Vec<VerifyingKey>, RegistryError> {
        let mut out = Vec::with_capacity(env.signatures.len());
        for (i, s) in env.signatures.iter().enumerate() {
            let k = self
                .keys
                .get(&s.keyid)
                .ok_or_else(|| RegistryError::UnknownKey { keyid: s.keyid.clone() })?;
            // At most dsse::limits::MAX_SIGNATURES signatures: a scan is cheaper than a set.
            if env.signatures[..i].iter().any(|p| p.keyid == s.keyid) {
                return Err(RegistryError::DuplicateSigner { keyid: s.keyid.clone() });
            }
            out.push(k.key);
        }
        Ok(out)
    }

    fn verify_ballot_signature(&self, env: &Envelope) -> Result<Vec<String>, RegistryError> {
        let key = crate::election::ballot_signer(&env.payload).map_err(|detail| RegistryError::InvalidPayload {
            kind: "ballot".into(),
            detail,
        })?;
        let id = key_id(&key);
        let [s] = env.signatures.as_slice() else {
            return Err(RegistryError::InvalidPayload {
                kind: "ballot".into(),
                detail: format!("a ballot carries exactly one signature, by its ballot_key {id}"),
            });
        };
        if s.keyid != id {
            return Err(RegistryError::UnknownKey { keyid: s.keyid.clone() });
        }
        if self.keys.contains_key(&id) {
            return Err(RegistryError::Conflict(format!(
                "ballot_key {id} is a registry key: ballots are signed by one-time keys"
            )));
        }
        env.verify_signature(0, &key)
            .map_err(|_| RegistryError::BadSignature { keyid: id.clone() })?;
        Ok(vec![id])
    }

    /// The log-binding rule (docs/registry.md): a bound payload type must name this log's origin
    /// (`WRONG_LOG`); when the charter sets `policy.log_binding`, every record but the charter
    /// must be bound (`LOG_BINDING_MISSING`).
    ///
    /// # Errors
    /// [`RegistryError::WrongLog`], [`RegistryError::LogBindingMissing`], or
    /// [`RegistryError::UnknownKind`] for a payload type of neither form.
    pub fn check_log_binding(&self, payload_type: &str) -> Result<(), RegistryError> {
        let origin = &self.charter.origin;
        match parse_payload_type(payload_type) {
            None => Err(RegistryError::UnknownKind(payload_type.to_string())),
            Some((_, Some(o))) if o != origin => Err(RegistryError::WrongLog {
                found: o.to_string(),
                expected: origin.clone(),
            }),
            Some((kind, None)) if self.charter.policy.log_binding && kind != "charter" => {
                Err(RegistryError::LogBindingMissing {
                    found: payload_type.to_string(),
                    expected: payload_type_for_log(kind, origin),
                })
            }
            _ => Ok(()),
        }
    }

    /// The authorization half of [`Self::authorize_and_apply`], without effects.
    ///
    /// # Errors
    /// As [`Self::authorize_and_apply`].
    pub fn authorize(&self, kind: &str, signers: &[String]) -> Result<(), RegistryError> {
        let allowed = roles_for_kind(kind).ok_or_else(|| RegistryError::UnknownKind(kind.to_string()))?;
        if kind == "charter" {
            return Err(RegistryError::Charter("only entry 0 may be a charter".into()));
        }
        if kind == "ballot" {
            // Signers were checked by `verify_signatures`: the one-time key alone, not enrolled.
            if signers.len() != 1 || self.keys.contains_key(&signers[0]) {
                return Err(RegistryError::Conflict(
                    "a ballot is signed by its one-time key only".into(),
                ));
            }
            return Ok(());
        }
        let mut states = Vec::with_capacity(signers.len());
        for id in signers {
            let st = self
                .keys
                .get(id)
                .ok_or_else(|| RegistryError::UnknownKey { keyid: id.clone() })?;
            if let Some((at, how)) = st.ended {
                return Err(RegistryError::Revoked {
                    keyid: id.clone(),
                    name: st.name.clone(),
                    how,
                    at,
                });
            }
            states.push(st);
        }
        if is_key_record(kind) {
            let have = states.iter().filter(|s| s.roles.contains(&Role::Admin)).count() as u32;
            let need = self.charter.policy.admin_quorum;
            if have < need {
                return Err(RegistryError::MissingQuorum {
                    kind: kind.into(),
                    need,
                    have,
                });
            }
            return Ok(());
        }
        let ok = states.iter().any(|s| {
            s.roles.iter().any(|r| allowed.contains(r))
                && (s.scope.kinds.is_empty() || s.scope.kinds.iter().any(|k| k == kind))
        });
        if !ok {
            return Err(RegistryError::MissingRole {
                kind: kind.into(),
                needed: role_list(allowed.iter().copied()),
                held: role_list(states.iter().flat_map(|s| s.roles.iter().copied())),
            });
        }
        Ok(())
    }

    fn apply(&mut self, index: u64, kind: &str, payload: &[u8]) -> Result<(), RegistryError> {
        match kind {
            "key.enroll" => {
                let r: KeyEnroll = parse(kind, payload)?;
                let k = key_of(kind, &r.key)?;
                let id = key_id(&k);
                if self.keys.contains_key(&id) {
                    return Err(RegistryError::Conflict(format!("key {id} is already enrolled")));
                }
                if r.roles.is_empty() {
                    return Err(RegistryError::InvalidPayload {
                        kind: kind.into(),
                        detail: "no roles".into(),
                    });
                }
                if r.roles.contains(&Role::Node) {
                    return Err(RegistryError::InvalidPayload {
                        kind: kind.into(),
                        detail: "the node role is the charter's".into(),
                    });
                }
                if let Some(bad) = r.scope.kinds.iter().find(|k| roles_for_kind(k).is_none()) {
                    return Err(RegistryError::InvalidPayload {
                        kind: kind.into(),
                        detail: format!("unknown kind {bad:?} in scope"),
                    });
                }
                let mldsa44 = mldsa44_of(kind, r.mldsa44_key.as_deref(), &r.roles)?;
                self.keys.insert(
                    id,
                    KeyState {
                        name: r.name,
                        key: k,
                        mldsa44,
                        roles: r.roles.into_iter().collect(),
                        scope: r.scope,
                        enrolled_at: index,
                        ended: None,
                    },
                );
            }
            "key.rotate" => {
                let r: KeyRotate = parse(kind, payload)?;
                let new = key_of(kind, &r.new_key)?;
                let new_id = key_id(&new);
                if self.keys.contains_key(&new_id) {
                    return Err(RegistryError::Conflict(format!("key {new_id} is already enrolled")));
                }
                let old = self.active_mut(&r.keyid)?;
                if old.roles.contains(&Role::Node) {
                    return Err(RegistryError::Conflict(
                        "the node key cannot be rotated by key.rotate".into(),
                    ));
                }
                let roles: Vec<Role> = old.roles.iter().copied().collect();
                let mldsa44 = mldsa44_of(kind, r.new_mldsa44_key.as_deref(), &roles)?;
                old.ended = Some((index, "rotated"));
                let st = KeyState {
                    key: new,
                    mldsa44,
                    enrolled_at: index,
                    ended: None,
                    ..old.clone()
                };
                self.keys.insert(new_id, st);
            }
            "key.revoke" => {
                let r: KeyRevoke = parse(kind, payload)?;
                let st = self.active_mut(&r.keyid)?;
                if st.roles.contains(&Role::Node) {
                    return Err(RegistryError::Conflict("the node key cannot be revoked".into()));
                }
                st.ended = Some((index, "revoked"));
                let admins_left = self
                    .keys
                    .values()
                    .filter(|s| s.ended.is_none() && s.roles.contains(&Role::Admin))
                    .count();
                if (admins_left as u32) < self.charter.policy.admin_quorum {
                    return Err(RegistryError::Conflict(format!(
                        "revoking {} would leave {admins_left} administrators, below the quorum of {}",
                        r.keyid, self.charter.policy.admin_quorum
                    )));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn active_mut(&mut self, keyid: &str) -> Result<&mut KeyState, RegistryError> {
        let st = self.keys.get_mut(keyid).ok_or_else(|| RegistryError::UnknownKey {
            keyid: keyid.to_string(),
        })?;
        if let Some((at, how)) = st.ended {
            return Err(RegistryError::Conflict(format!(
                "key {keyid} was already {how} at index {at}"
            )));
        }
        Ok(st)
    }

    /// Full check of one entry after the charter, as the verifier replays it: limits, kind,
    /// payload, signatures, authorization; then applies it.
    ///
    /// # Errors
    /// The first rule the entry breaks.
    pub fn check_entry(&mut self, entry: &Entry) -> Result<(), RegistryError> {
        let env = &entry.envelope;
        env.check_limits()?;
        let kind = envelope_kind(env)?.to_string();
        check_payload(&kind, &env.payload)?;
        let signers = self.verify_signatures(env)?;
        self.authorize_and_apply(entry.index, &kind, &env.payload, &signers)
    }

    /// [`Self::verify_signatures`] for many envelopes at once. Every key id is looked up first
    /// (an envelope naming an unknown key or a duplicate signer is refused without cryptography
    /// and stays out of the batch). The happy path then checks all remaining signatures with one
    /// Ed25519 batch verification (about 2.5× faster than one by one): each signature verified
    /// once. When the batch fails, every envelope in it is checked on its own with strict
    /// verification so that the failing ones are named and only they are refused.
    pub fn verify_signatures_batch(&self, envs: &[&Envelope]) -> Vec<Result<Vec<String>, RegistryError>> {
        let mut paes: Vec<Vec<u8>> = Vec::new();
        let mut msg_of: Vec<usize> = Vec::new();
        let mut sigs = Vec::new();
        let mut keys = Vec::new();
        // None: the envelope's signatures are in the batch and await its verdict.
        let mut out: Vec<Option<Result<Vec<String>, RegistryError>>> = Vec::with_capacity(envs.len());
        for env in envs {
            if let Err(e) = self.check_log_binding(&env.payload_type) {
                out.push(Some(Err(e)));
                continue;
            }
            if kind_of(&env.payload_type) == Some("ballot") {
                out.push(Some(self.verify_signatures(env)));
                continue;
            }
            let signers = match self.known_signers(env) {
                Ok(k) => k,
                Err(e) => {
                    out.push(Some(Err(e)));
                    continue;
                }
            };
            let mut parsed = Vec::with_capacity(signers.len());
            let mut strict = false;
            for (s, k) in env.signatures.iter().zip(&signers) {
                let Ok(sig) = ed25519_dalek::Signature::from_slice(&s.sig) else {
                    strict = true;
                    break;
                };
                if !crate::keys::batch_compatible(k, &s.sig) {
                    // Strict verification decides (and refuses) what batching could wrongly accept.
                    strict = true;
                    break;
                }
                parsed.push(sig);
            }
            if strict {
                out.push(Some(self.verify_signatures(env)));
                continue;
            }
            paes.push(env.pae());
            for (sig, k) in parsed.into_iter().zip(signers) {
                msg_of.push(paes.len() - 1);
                sigs.push(sig);
                keys.push(k);
            }
            out.push(None);
        }
        let refs: Vec<&[u8]> = msg_of.iter().map(|i| paes[*i].as_slice()).collect();
        let batch_ok = sigs.is_empty() || ed25519_dalek::verify_batch(&refs, &sigs, &keys).is_ok();
        envs.iter()
            .zip(out)
            .map(|(env, r)| match r {
                Some(r) => r,
                None if batch_ok => Ok(env.signatures.iter().map(|s| s.keyid.clone()).collect()),
                None => self.verify_signatures(env),
            })
            .collect()
    }

    /// Checks that verified signers may append a record of `kind` at `index`, and applies the
    /// record's effect on the registry (for key records). Leaves the registry unchanged when it fails.
    ///
    /// # Errors
    /// As [`Self::authorize_and_apply`].
    pub fn authorize_and_apply(
        &mut self,
        index: u64,
        kind: &str,
        payload: &[u8],
        signers: &[String],
    ) -> Result<(), RegistryError> {
        self.authorize(kind, signers)?;
        if !is_key_record(kind) {
            return Ok(());
        }
        // Apply on a copy so that a failed key record leaves the registry unchanged.
        let mut next = self.clone();
        next.apply(index, kind, payload)?;
        *self = next;
        Ok(())
    }

    /// The non-mutating form of [`Self::authorize_and_apply`]: authorizes the record and, for a key
    /// record, returns the registry as it will be after it (`None` for other kinds, which leave the
    /// registry unchanged). [`crate::state::LedgerState`] uses it to split a step into check and apply.
    ///
    /// # Errors
    /// As [`Self::authorize_and_apply`].
    pub fn authorize_next(
        &self,
        index: u64,
        kind: &str,
        payload: &[u8],
        signers: &[String],
    ) -> Result<Option<Registry>, RegistryError> {
        self.authorize(kind, signers)?;
        if !is_key_record(kind) {
            return Ok(None);
        }
        let mut next = self.clone();
        next.apply(index, kind, payload)?;
        Ok(Some(next))
    }

    /// The cosignature verifiers of the active keys holding the `witness` role: each witness's note
    /// key name is the name it was enrolled under (docs/witness.md). A witness enrolled with an
    /// ML-DSA-44 key (`mldsa44_key`) counts by its `0x06` lines only, so that forging its Ed25519
    /// key (a quantum computer could) gains nothing; any other witness counts by `0x04` lines of its
    /// enrolled Ed25519 key. A witness enrolled under a name
    /// that cannot be a note key name (empty, spaces, `+`) can never be matched and is left out.
    pub fn witnesses(&self) -> Vec<crate::cosignature::CosignatureVerifier> {
        self.keys
            .values()
            .filter(|k| k.ended.is_none() && k.roles.contains(&Role::Witness))
            .filter_map(|k| match &k.mldsa44 {
                Some(m) => crate::cosignature::CosignatureVerifier::new_mldsa44(&k.name, m.clone()).ok(),
                None => crate::cosignature::CosignatureVerifier::new(&k.name, k.key).ok(),
            })
            .collect()
    }

    /// Name of the holder of a key id, for reports.
    pub fn holder(&self, keyid: &str) -> Option<&str> {
        self.keys.get(keyid).map(|k| k.name.as_str())
    }
}

/// Secondary-index terms of a record: its kind, and the `subject`/`subjects`, `draw_id` and
/// `election_id` fields of its JSON payload when present. The node indexes these for Query.
pub fn index_terms(kind: &str, payload: &[u8]) -> Vec<(u8, String)> {
    let mut out = vec![(b'k', kind.to_string())];
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return out;
    };
    let mut push = |tag: u8, x: &serde_json::Value| {
        if let Some(s) = x.as_str().filter(|s| !s.is_empty() && s.len() <= 256) {
            out.push((tag, s.to_string()));
        }
    };
    if let Some(s) = v.get("subject") {
        push(b's', s);
    }
    if let Some(a) = v.get("subjects").and_then(|a| a.as_array()) {
        a.iter().take(64).for_each(|s| push(b's', s));
    }
    if let Some(s) = v.get("draw_id") {
        push(b'd', s);
    }
    if let Some(s) = v.get("election_id") {
        push(b'd', s);
    }
    out
}
