//! The whole state of a log (registry and domain) and the one step that folds an entry into it.
//!
//! Every place that follows a log entry by entry uses [`LedgerState`]: the node's sequencer (which
//! checks an item, assigns its index and then applies it), the node's start-up (which folds the
//! stored log), `ledger-verify replay` and `review`, and bundle verification (which holds only the
//! registry's entries and folds them with [`fold_registry`]). So the node before and after a
//! restart, and the verifier, cannot drift apart.
//!
//! A step is, in this order:
//! 0. the payload type is bound to this log where the charter asks for it, and a signed statement
//!    of a kind without an id is not already in the log (`DUPLICATE_STATEMENT`);
//! 1. registry: the signers (verified key ids) may append a record of the kind at this index, and
//!    a key record's effect is computed ([`Registry::authorize_next`]);
//! 2. record: the payload parses as its kind ([`ParsedPayload::parse`], once: the node's edge
//!    parses it and hands the typed record to [`LedgerState::check_parsed`]);
//! 3. domain: the cross-record rules, including the authority rule of cancellations against the
//!    registry as of this index ([`DomainState::check_with_registry`]).
//!
//! [`LedgerState::check`] does all three without changing the state and returns a [`Checked`]
//! step holding the typed record; [`LedgerState::apply`] applies it (registry, then domain);
//! [`LedgerState::observe_size`] tells the state the tree's new size and root after each entry.
//! A step that fails changes nothing.
//!
//! Signatures are not verified here: callers verify them once, in their own way (the node at its
//! edge, in batches; the verifier in worker threads), and pass the verified key ids.
//! [`LedgerState::verify_entry`] is the plain one-entry form for callers without such a pipeline.

use crate::domain::{Record, SchemaError};
use crate::dsse::Envelope;
use crate::entry::Entry;
use crate::hash::Hash;
use crate::registry::{ParsedPayload, RecordError, Registry, RegistryError, check_payload, envelope_kind};
use crate::rules::{CheckError, DomainState, RuleError, STATEMENT_KINDS, TicketLookupError, statement_digest};

/// Why an entry cannot be folded into the state. The variants keep apart what callers answer
/// differently (the node's gRPC code, the verifier's fault code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// A registry rule: signer authority, quorum, or a key record that conflicts with the registry.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The payload does not parse as its kind.
    #[error(transparent)]
    Record(SchemaError),
    /// A cross-record rule of the domain, with its fault code.
    #[error(transparent)]
    Rule(#[from] RuleError),
    /// The durable part of the state (the ticket index behind
    /// [`crate::rules::TicketSet`]) could not be read: nothing was decided about the entry, which
    /// is neither accepted nor a rule violation.
    #[error("state lookup failed: {0}")]
    StateLookup(TicketLookupError),
}

impl From<CheckError> for StepError {
    fn from(e: CheckError) -> Self {
        match e {
            CheckError::Rule(r) => StepError::Rule(r),
            CheckError::Lookup(l) => StepError::StateLookup(l),
        }
    }
}

/// A step that passed [`LedgerState::check`], ready for [`LedgerState::apply`].
#[derive(Debug, Clone)]
pub struct Checked {
    /// Index of the entry.
    pub index: u64,
    /// The typed record (parsed once).
    pub record: Record,
    /// Verified signers (key ids).
    pub signers: Vec<String>,
    /// The registry after a key record (`None` when the record leaves it unchanged).
    next_registry: Option<Registry>,
    /// The statement digest of a record of a kind without an id (`DUPLICATE_STATEMENT`).
    statement: Option<Hash>,
}

impl Checked {
    /// Whether applying this step changes the registry (a key record).
    pub fn changes_registry(&self) -> bool {
        self.next_registry.is_some()
    }
}

/// Registry and domain state as of some index.
#[derive(Debug, Clone)]
pub struct LedgerState {
    /// The key registry.
    pub registry: Registry,
    /// Cross-record state: draws, complaints, nominations, cancellations, escrows, elections,
    /// credentials, ballots, tallies and micro-evaluations.
    pub domain: DomainState,
}

impl LedgerState {
    /// The state after the charter (entry 0).
    ///
    /// # Errors
    /// When the entry is not a valid, fully signed charter at index 0.
    pub fn genesis(charter: &Entry) -> Result<Self, RegistryError> {
        Ok(Self {
            registry: Registry::genesis(charter)?,
            domain: DomainState::default(),
        })
    }

    /// Checks, without changing the state, that a record of `kind` in envelope `env`, signed by the
    /// verified `signers`, may be appended at `index` with time `timestamp_micros`. Parses the
    /// payload (after the registry's authorization, as it always did); callers that parsed it
    /// already (the node's edge, [`crate::registry::check_payload`]) use [`Self::check_parsed`].
    ///
    /// # Errors
    /// The first rule it breaks: the log binding of the payload type, a signed statement already
    /// in the log (`DUPLICATE_STATEMENT`), registry, then record schema, then domain rules.
    pub fn check(
        &self,
        index: u64,
        timestamp_micros: u64,
        kind: &str,
        env: &Envelope,
        signers: &[String],
    ) -> Result<Checked, StepError> {
        self.registry.check_log_binding(&env.payload_type)?;
        self.domain.check_statement(kind, env)?;
        self.registry.authorize(kind, signers)?;
        let parsed = ParsedPayload::parse(kind, &env.payload).map_err(|e| match e {
            RecordError::Registry(e) => StepError::Registry(e),
            RecordError::Schema(m) => StepError::Record(m),
        })?;
        self.check_parsed(index, timestamp_micros, kind, env, parsed, signers)
    }

    /// [`Self::check`] for a payload parsed already: the typed record is checked and carried into
    /// the [`Checked`] step, not parsed again.
    ///
    /// # Errors
    /// As [`Self::check`], less the schema (the record is typed).
    pub fn check_parsed(
        &self,
        index: u64,
        timestamp_micros: u64,
        kind: &str,
        env: &Envelope,
        parsed: ParsedPayload,
        signers: &[String],
    ) -> Result<Checked, StepError> {
        self.registry.check_log_binding(&env.payload_type)?;
        self.domain.check_statement(kind, env)?;
        let next_registry = self
            .registry
            .authorize_next(index, kind, parsed.key.as_ref(), signers)?;
        let record = parsed.record;
        let registry = next_registry.as_ref().unwrap_or(&self.registry);
        self.domain
            .check_with_registry(registry, index, timestamp_micros, &record, signers)?;
        Ok(Checked {
            index,
            record,
            signers: signers.to_vec(),
            next_registry,
            statement: STATEMENT_KINDS.contains(&kind).then(|| statement_digest(env)),
        })
    }

    /// Applies a checked step; `leaf_hash` is the hash of the entry that holds it.
    pub fn apply(&mut self, leaf_hash: &Hash, checked: Checked) {
        if let Some(next) = checked.next_registry {
            self.registry = next;
        }
        self.domain
            .apply_at(checked.index, leaf_hash, &checked.record, &checked.signers);
        if let Some(d) = checked.statement {
            self.domain.statements.entry(d.0).or_insert(checked.index);
        }
    }

    /// The state's serialized form ([`crate::rules::snapshot`]): deterministic, without the
    /// ticket backing.
    pub fn encode(&self) -> Vec<u8> {
        crate::rules::snapshot::encode(self)
    }

    /// The state encoded by [`Self::encode`] (without a ticket backing).
    ///
    /// # Errors
    /// When the bytes are not an encoded state.
    pub fn decode(bytes: &[u8]) -> Result<Self, crate::rules::snapshot::StateDecodeError> {
        crate::rules::snapshot::decode(bytes)
    }

    /// Tells the state that the log now has `size` entries with `root` (call after every entry).
    pub fn observe_size(&mut self, size: u64, root: &Hash) {
        self.domain.observe_size(size, root);
    }

    /// [`Self::check`] then [`Self::apply`] for an entry of the log (after the charter), with its
    /// verified `signers`. Returns the typed record. Does not call [`Self::observe_size`].
    ///
    /// # Errors
    /// As [`Self::check`] (a kind that is not a ledger kind is a registry error); the state is then
    /// unchanged.
    pub fn fold(&mut self, entry: &Entry, leaf_hash: &Hash, signers: &[String]) -> Result<Record, StepError> {
        let kind = envelope_kind(&entry.envelope)?;
        let checked = self.check(entry.index, entry.timestamp_micros, kind, &entry.envelope, signers)?;
        let record = checked.record.clone();
        self.apply(leaf_hash, checked);
        Ok(record)
    }

    /// [`Self::fold`] for an entry whose payload was parsed already ([`crate::registry::check_payload`]):
    /// the typed record is used, not parsed again.
    ///
    /// # Errors
    /// As [`Self::check_parsed`]; the state is then unchanged.
    pub fn fold_parsed(
        &mut self,
        entry: &Entry,
        leaf_hash: &Hash,
        parsed: ParsedPayload,
        signers: &[String],
    ) -> Result<Record, StepError> {
        let kind = envelope_kind(&entry.envelope)?;
        let checked = self.check_parsed(
            entry.index,
            entry.timestamp_micros,
            kind,
            &entry.envelope,
            parsed,
            signers,
        )?;
        let record = checked.record.clone();
        self.apply(leaf_hash, checked);
        Ok(record)
    }

    /// The whole step for an entry read back from a log (node start-up, review): when
    /// `verify_sigs`, [`Self::verify_entry`] (envelope limits, kind, schema, every signature) and
    /// the fold of the payload parsed there; otherwise the fold with the key ids the envelope
    /// names (a store the node verified already). Does not call [`Self::observe_size`].
    ///
    /// # Errors
    /// The first rule the entry breaks; the state is then unchanged.
    pub fn step_stored(&mut self, entry: &Entry, leaf_hash: &Hash, verify_sigs: bool) -> Result<Record, StepError> {
        if verify_sigs {
            let (_, parsed, signers) = verify_parsed(&self.registry, entry)?;
            self.fold_parsed(entry, leaf_hash, parsed, &signers)
        } else {
            let signers: Vec<String> = entry.envelope.signatures.iter().map(|s| s.keyid.clone()).collect();
            self.fold(entry, leaf_hash, &signers)
        }
    }

    /// The per-entry checks before a step, for callers that verify one entry at a time: envelope
    /// limits, kind, payload schema, and every signature against the registry. Returns the kind and
    /// the verified signers.
    ///
    /// # Errors
    /// The first of these rules the entry breaks.
    pub fn verify_entry(&self, entry: &Entry) -> Result<(String, Vec<String>), RegistryError> {
        verify_entry(&self.registry, entry)
    }
}

fn verify_entry(registry: &Registry, entry: &Entry) -> Result<(String, Vec<String>), RegistryError> {
    verify_parsed(registry, entry).map(|(kind, _, signers)| (kind, signers))
}

fn verify_parsed(registry: &Registry, entry: &Entry) -> Result<(String, ParsedPayload, Vec<String>), RegistryError> {
    let env = &entry.envelope;
    env.check_limits()?;
    let kind = envelope_kind(env)?.to_string();
    let checked = check_payload(&kind, &env.payload)?;
    let signers = registry.verify_signatures(env)?;
    Ok((kind, checked.parsed, signers))
}

/// The registry half of a step, for holders of a subset of the log (a bundle holds the charter and
/// the key records, not the domain records between them): verifies the entry as
/// [`LedgerState::verify_entry`] and applies the registry step of [`LedgerState::check`].
/// The registry is unchanged when it fails.
///
/// # Errors
/// The first registry rule the entry breaks.
pub fn fold_registry(registry: &mut Registry, entry: &Entry) -> Result<(), RegistryError> {
    let (kind, parsed, signers) = verify_parsed(registry, entry)?;
    if let Some(next) = registry.authorize_next(entry.index, &kind, parsed.key.as_ref(), &signers)? {
        *registry = next;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::dsse::Envelope;
    use crate::keys::{key_id, public_key_to_base64};
    use crate::registry::{Charter, NamedKey, Policy, payload_type};
    use ed25519_dalek::SigningKey;

    fn entry(index: u64, kind: &str, payload: &serde_json::Value, keys: &[&SigningKey]) -> Entry {
        let mut env = Envelope::new(payload_type(kind), serde_json::to_vec(payload).unwrap());
        for k in keys {
            env.sign(k);
        }
        Entry {
            index,
            timestamp_micros: 1_000 + index,
            prev_root: Hash::default(),
            envelope: env,
        }
    }

    fn ids(keys: &[&SigningKey]) -> Vec<String> {
        keys.iter().map(|k| key_id(&k.verifying_key())).collect()
    }

    fn genesis() -> (LedgerState, SigningKey) {
        let (node, admin) = (SigningKey::from_bytes(&[1; 32]), SigningKey::from_bytes(&[2; 32]));
        let charter = Charter {
            version: 1,
            origin: "test/state".into(),
            node_key: public_key_to_base64(&node.verifying_key()),
            admins: vec![NamedKey {
                name: "a".into(),
                key: public_key_to_base64(&admin.verifying_key()),
            }],
            policy: Policy::default(),
        };
        let e = entry(0, "charter", &serde_json::to_value(&charter).unwrap(), &[&node, &admin]);
        (LedgerState::genesis(&e).unwrap(), admin)
    }

    fn escrow(id: &str) -> serde_json::Value {
        let pk = crate::seal::EscrowSecretKey::from_bytes([7; 32]).public_key().unwrap();
        serde_json::json!({"version": 1, "escrow_id": id, "public_key": pk.to_base64(), "holder": "court"})
    }

    /// `check` changes nothing; `apply` makes the step count; each failure keeps its kind.
    #[test]
    fn check_then_apply_and_error_kinds() {
        let (mut st, admin) = genesis();
        let reg = SigningKey::from_bytes(&[3; 32]);
        let enroll = serde_json::json!({"version": 1, "name": "registrar",
            "key": public_key_to_base64(&reg.verifying_key()), "roles": ["registrar"],
            "scope": {"organization": "o", "kinds": []}});
        let e = entry(1, "key.enroll", &enroll, &[&admin]);
        let checked = st.check(1, 1_001, "key.enroll", &e.envelope, &ids(&[&admin])).unwrap();
        assert!(checked.changes_registry());
        assert!(
            st.registry.holder(&key_id(&reg.verifying_key())).is_none(),
            "check alone changes nothing"
        );
        st.apply(&Hash::default(), checked);
        assert_eq!(st.registry.holder(&key_id(&reg.verifying_key())), Some("registrar"));

        // The same key again (under another name, so not the same signed statement): a registry
        // conflict, and the state is unchanged.
        let mut enroll_again = enroll.clone();
        enroll_again["name"] = "registrar again".into();
        let again = entry(2, "key.enroll", &enroll_again, &[&admin]);
        let before = st.registry.keys.len();
        assert!(matches!(
            st.fold(&again, &Hash::default(), &ids(&[&admin])),
            Err(StepError::Registry(RegistryError::Conflict(_)))
        ));
        assert_eq!(st.registry.keys.len(), before);

        // A signer without the role: a registry error.
        let esc = entry(2, "escrow.key", &escrow("court-1"), &[&reg]);
        assert!(matches!(
            st.fold(&esc, &Hash::default(), &ids(&[&reg])),
            Err(StepError::Registry(RegistryError::MissingRole { .. }))
        ));
        // Accepted once, then a domain rule with its code.
        let esc = entry(2, "escrow.key", &escrow("court-1"), &[&admin]);
        assert!(matches!(
            st.fold(&esc, &Hash::default(), &ids(&[&admin])).unwrap(),
            Record::EscrowKey(_)
        ));
        let dup = entry(3, "escrow.key", &escrow("court-1"), &[&admin]);
        match st.fold(&dup, &Hash::default(), &ids(&[&admin])) {
            Err(StepError::Rule(e)) => assert_eq!(e.code, crate::rules::RuleCode::EscrowDuplicate),
            other => panic!("{other:?}"),
        }
        // A payload that does not parse as its kind: a record error.
        assert!(matches!(
            st.check(
                3,
                1_003,
                "escrow.key",
                &entry(3, "escrow.key", &serde_json::json!({"version": 1}), &[&admin]).envelope,
                &ids(&[&admin])
            ),
            Err(StepError::Record(_))
        ));
    }

    /// `step_stored` verifies every signature when asked (a forged signature is a registry error
    /// and changes nothing), and folds the entry exactly as `fold` does.
    #[test]
    fn step_stored_verifies_when_asked_then_folds() {
        let (mut st, admin) = genesis();
        let mut forged = entry(1, "escrow.key", &escrow("court-1"), &[&admin]);
        forged.envelope.signatures[0].sig[0] ^= 1;
        let err = st.step_stored(&forged, &Hash::default(), true).unwrap_err();
        assert!(matches!(err, StepError::Registry(_)), "{err:?}");
        assert!(st.domain.escrows.is_empty(), "a refused step changes nothing");
        // Unverified (a store the node checked already): the key ids the envelope names.
        let (mut trusting, _) = genesis();
        assert!(matches!(
            trusting.step_stored(&forged, &Hash::default(), false).unwrap(),
            Record::EscrowKey(_)
        ));
        // The honest entry: the same record as `fold`, then the same rule on a second copy.
        let good = entry(1, "escrow.key", &escrow("court-1"), &[&admin]);
        assert!(matches!(
            st.step_stored(&good, &Hash::default(), true).unwrap(),
            Record::EscrowKey(_)
        ));
        let dup = entry(2, "escrow.key", &escrow("court-1"), &[&admin]);
        match st.step_stored(&dup, &Hash::default(), true) {
            Err(StepError::Rule(e)) => assert_eq!(e.code, crate::rules::RuleCode::EscrowDuplicate),
            other => panic!("{other:?}"),
        }
    }

    /// `fold_registry` decides exactly as `Registry::check_entry`.
    #[test]
    fn fold_registry_matches_check_entry() {
        let (st, admin) = genesis();
        let stranger = SigningKey::from_bytes(&[9; 32]);
        let k = SigningKey::from_bytes(&[4; 32]);
        let enroll = serde_json::json!({"version": 1, "name": "w", "key": public_key_to_base64(&k.verifying_key()),
            "roles": ["witness"], "scope": {"organization": "o", "kinds": []}});
        let cases = [
            entry(1, "key.enroll", &enroll, &[&stranger]),
            entry(1, "key.enroll", &enroll, &[&admin]),
            entry(2, "key.enroll", &enroll, &[&admin]),
            entry(2, "note", &serde_json::json!({"version": 1}), &[&k]),
        ];
        let (mut a, mut b) = (st.registry.clone(), st.registry);
        for e in &cases {
            assert_eq!(fold_registry(&mut a, e), b.check_entry(e), "{e:?}");
        }
        assert_eq!(a.keys.len(), b.keys.len());
    }
}
