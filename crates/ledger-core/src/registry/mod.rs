//! The on-ledger key registry (requirement R3): who may append what, as of each index.
//!
//! Entry 0 is the charter (origin, node checkpoint key, administrator keys, policy). Later
//! `key.enroll`, `key.rotate` and `key.revoke` records, signed by a quorum of administrators, change
//! the registry going forward. The node runs [`Registry::verify_signatures`] at its edge; the
//! registry half of every state step (`state::LedgerState::check`, used by the node's
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

mod error;
mod payload_type;
mod roles;
mod schema;
mod signatures;
mod terms;

pub use error::{RegistryError, RegistryFault};
pub use payload_type::*;
pub use roles::{Role, is_key_record, roles_for_kind};
pub use schema::*;
pub use terms::{IndexTag, index_terms, terms_of};

use crate::entry::Entry;
use crate::keys::key_id;
use ed25519_dalek::VerifyingKey;
use roles::role_list;
use schema::{key_of, parse};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

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
    /// The current node key: the charter's until a `node.rotate` record replaces it.
    pub node_key: VerifyingKey,
    /// Keys by key id.
    pub keys: BTreeMap<String, KeyState>,
    /// The chain of node keys, oldest first: the charter's from index 0, then each `node.rotate`'s
    /// new key from the index after its record.
    pub node_keys: Vec<NodeTenure>,
    /// The `node.compromise` declarations, in log order.
    pub compromises: Vec<NodeCompromised>,
}

/// A node key declared compromised by a `node.compromise` record (docs/registry.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeCompromised {
    /// The compromised node key.
    pub key: VerifyingKey,
    /// First index from which it is held compromised: its node records at an index `>= as_of`
    /// and its checkpoints of a size `> as_of` are named `NODE_KEY_COMPROMISED` by verifiers.
    pub as_of: u64,
    /// Index of the `node.compromise` record; any signature by the key after it is refused.
    pub at: u64,
}

impl NodeCompromised {
    /// Whether a node record at `index` signed by `key` falls in the compromised span
    /// (`as_of <= index`; records after the declaration are refused outright).
    pub fn covers_record(&self, key: &VerifyingKey, index: u64) -> bool {
        *key == self.key && index >= self.as_of
    }

    /// Whether a checkpoint of `size` signed by `key` falls in the compromised span
    /// (`size > as_of`: its tree holds an entry at `as_of` or later).
    pub fn covers_checkpoint(&self, key: &VerifyingKey, size: u64) -> bool {
        *key == self.key && size > self.as_of
    }
}

/// One node key's tenure (docs/registry.md, "Node key lifecycle").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeTenure {
    /// The node key.
    pub key: VerifyingKey,
    /// First index whose node records it signs (0 for the charter's key, the rotation record's
    /// index + 1 otherwise); it also signs every checkpoint of a size at least this.
    pub from: u64,
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
            node_keys: vec![NodeTenure { key: node_key, from: 0 }],
            compromises: Vec::new(),
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
            if let Some(c) = self.compromise_of(&st.key) {
                return Err(RegistryError::Compromised {
                    keyid: id.clone(),
                    name: st.name.clone(),
                    as_of: c.as_of,
                    at: c.at,
                });
            }
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
            if kind == "node.rotate" && !states.iter().any(|s| s.roles.contains(&Role::Node)) {
                return Err(RegistryError::MissingRole {
                    kind: kind.into(),
                    needed: "node (the current node key) and the admin quorum".into(),
                    held: role_list(states.iter().flat_map(|s| s.roles.iter().copied())),
                });
            }
            if kind == "node.compromise" && states.iter().any(|s| s.roles.contains(&Role::Node)) {
                return Err(RegistryError::Conflict(
                    "node.compromise is signed by the administrator quorum alone; a node key must not sign it".into(),
                ));
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

    fn apply(&mut self, index: u64, record: &KeyRecord) -> Result<(), RegistryError> {
        match record.clone() {
            KeyRecord::Enroll(r) => {
                let kind = "key.enroll";
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
                let mldsa44 = schema::mldsa44_of(kind, r.mldsa44_key.as_deref(), &r.roles)?;
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
            KeyRecord::Rotate(r) => {
                let new = key_of("key.rotate", &r.new_key)?;
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
                let mldsa44 = schema::mldsa44_of("key.rotate", r.new_mldsa44_key.as_deref(), &roles)?;
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
            KeyRecord::NodeRotate(r) => {
                let new = key_of("node.rotate", &r.new_key)?;
                let new_id = key_id(&new);
                if self.keys.contains_key(&new_id) {
                    return Err(RegistryError::Conflict(format!("key {new_id} is already enrolled")));
                }
                let old = self.active_mut(&key_id(&self.node_key))?;
                old.ended = Some((index, "rotated"));
                let st = KeyState {
                    key: new,
                    enrolled_at: index,
                    ended: None,
                    ..old.clone()
                };
                self.keys.insert(new_id, st);
                self.node_key = new;
                self.node_keys.push(NodeTenure {
                    key: new,
                    from: index + 1,
                });
            }
            KeyRecord::NodeCompromise(r) => self.apply_compromise(index, &r)?,
            KeyRecord::Revoke(r) => {
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
        }
        Ok(())
    }

    /// `node.compromise` at `index` (docs/registry.md, "Node key lifecycle").
    fn apply_compromise(&mut self, index: u64, r: &NodeCompromise) -> Result<(), RegistryError> {
        let kind = "node.compromise";
        let new = key_of(kind, &r.new_key)?;
        let new_id = key_id(&new);
        if self.keys.contains_key(&new_id) {
            return Err(RegistryError::Conflict(format!("key {new_id} is already enrolled")));
        }
        let Some(pos) = self.node_keys.iter().position(|t| key_id(&t.key) == r.keyid) else {
            // Not `UnknownKey`: no signature names it, the payload does.
            return Err(RegistryError::Conflict(format!(
                "key {} is not a node key of this log: node.compromise names a key of the chain of node keys",
                r.keyid
            )));
        };
        let compromised = self.node_keys[pos].key;
        if self.compromise_of(&compromised).is_some() {
            return Err(RegistryError::Conflict(format!(
                "node key {} is already declared compromised",
                r.keyid
            )));
        }
        if r.as_of > index {
            return Err(RegistryError::Conflict(format!(
                "as_of {} is after this record's own index {index}: a compromise is declared for history the log already holds",
                r.as_of
            )));
        }
        // The last index whose node records the key signs: the current key's runs to this record.
        if let Some(next) = self.node_keys.get(pos + 1) {
            let last = next.from.saturating_sub(1);
            if r.as_of > last {
                return Err(RegistryError::Conflict(format!(
                    "node key {} was rotated at index {last}, before as_of {}: it signed nothing in that span",
                    r.keyid, r.as_of
                )));
            }
        }
        // The current node key ends here (compromised, or handed on when an earlier key is the
        // compromised one) and the new key holds the node role from the next index.
        let current_id = key_id(&self.node_key);
        let how = if current_id == r.keyid {
            "compromised"
        } else {
            "rotated"
        };
        let old = self.active_mut(&current_id)?;
        old.ended = Some((index, how));
        let st = KeyState {
            key: new,
            enrolled_at: index,
            ended: None,
            ..old.clone()
        };
        self.keys.insert(new_id, st);
        self.node_key = new;
        self.node_keys.push(NodeTenure {
            key: new,
            from: index + 1,
        });
        self.compromises.push(NodeCompromised {
            key: compromised,
            as_of: r.as_of,
            at: index,
        });
        Ok(())
    }

    /// The `node.compromise` declaration of `key`, if any.
    pub fn compromise_of(&self, key: &VerifyingKey) -> Option<&NodeCompromised> {
        self.compromises.iter().find(|c| c.key == *key)
    }

    /// The declaration under which a node record at `index` signed by the node key for that index
    /// is compromised (docs/registry.md): `NODE_KEY_COMPROMISED` for verifiers.
    pub fn compromised_record(&self, index: u64) -> Option<&NodeCompromised> {
        let key = self.node_key_at(index);
        self.compromises.iter().find(|c| c.covers_record(&key, index))
    }

    /// The declaration under which a checkpoint of `size` signed by `key` is compromised.
    pub fn compromised_checkpoint(&self, key: &VerifyingKey, size: u64) -> Option<&NodeCompromised> {
        self.compromises.iter().find(|c| c.covers_checkpoint(key, size))
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
        let checked = check_payload(&kind, &env.payload)?;
        let signers = self.verify_signatures(env)?;
        self.authorize_and_apply(entry.index, &kind, checked.parsed.key.as_ref(), &signers)
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
        key: Option<&KeyRecord>,
        signers: &[String],
    ) -> Result<(), RegistryError> {
        // Applied on a copy so that a failed key record leaves the registry unchanged.
        if let Some(next) = self.authorize_next(index, kind, key, signers)? {
            *self = next;
        }
        Ok(())
    }

    /// The non-mutating form of [`Self::authorize_and_apply`]: authorizes the record and, for a key
    /// record, returns the registry as it will be after it (`None` for other kinds, which leave the
    /// registry unchanged). `state::LedgerState` uses it to split a step into check and apply.
    ///
    /// # Errors
    /// As [`Self::authorize_and_apply`].
    pub fn authorize_next(
        &self,
        index: u64,
        kind: &str,
        key: Option<&KeyRecord>,
        signers: &[String],
    ) -> Result<Option<Registry>, RegistryError> {
        self.authorize(kind, signers)?;
        if !is_key_record(kind) {
            return Ok(None);
        }
        let r = key.ok_or_else(|| RegistryError::InvalidPayload {
            kind: kind.into(),
            detail: "the key record was not parsed".into(),
        })?;
        let mut next = self.clone();
        next.apply(index, r)?;
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

    /// The node key that signs node records (draw results, voids, tallies) at `index`: the key
    /// whose tenure covers it. Valid for indexes up to the one this registry has seen.
    pub fn node_key_at(&self, index: u64) -> VerifyingKey {
        self.node_keys
            .iter()
            .rev()
            .find(|t| t.from <= index)
            .map_or(self.node_key, |t| t.key)
    }

    /// The node key that signs the checkpoint of a tree of `size` entries: the key in force after
    /// its last entry, so a checkpoint whose tree includes a `node.rotate` record (at index
    /// `size - 1` or before) is signed by the new key. Valid for sizes up to one past the last
    /// index this registry has seen.
    pub fn checkpoint_key(&self, size: u64) -> VerifyingKey {
        self.node_key_at(size)
    }

    /// Name of the holder of a key id, for reports.
    pub fn holder(&self, keyid: &str) -> Option<&str> {
        self.keys.get(keyid).map(|k| k.name.as_str())
    }
}
