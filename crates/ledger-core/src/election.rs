//! Election, credential, ballot, tally and micro-evaluation records (requirement R8,
//! `docs/ballots.md`), and the tally arithmetic.
//!
//! Strict types (unknown fields refused, `"version": 1`) and their single-record validation; the
//! cross-record rules live in `rules::election`. Scores and weights are integers and the
//! weighted score is a fixed-point decimal string computed with exact integer arithmetic, so the
//! node and any verifier produce the same tally byte for byte.

use crate::credential::{self, Credential};
use crate::hash::Hash;
use crate::ids::{SchemaError, id_ok};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Most subjects in one election.
pub const MAX_SUBJECTS: usize = 64;
/// Highest score an election may allow.
pub const MAX_SCORE: u64 = 1000;
/// Decimal places of a tally's weighted score.
pub const SCORE_DECIMALS: u32 = 4;
/// Domain tag of a service-ticket hash.
pub const TICKET_TAG: &[u8] = b"ledger-ticket-v1";

/// One value per evaluation dimension (scores, weights in percent, or sums).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dimensions {
    /// Political quality (政治素质).
    pub political: u64,
    /// Performance (工作实绩).
    pub performance: u64,
    /// Integrity (廉洁自律).
    pub integrity: u64,
    /// Public opinion (群众公认).
    pub public_opinion: u64,
    /// Responsibility (担当作为).
    pub responsibility: u64,
}

impl Dimensions {
    /// The five values in the documented order.
    pub fn values(&self) -> [u64; 5] {
        [
            self.political,
            self.performance,
            self.integrity,
            self.public_opinion,
            self.responsibility,
        ]
    }

    fn add(&mut self, o: &Dimensions) {
        self.political = self.political.saturating_add(o.political);
        self.performance = self.performance.saturating_add(o.performance);
        self.integrity = self.integrity.saturating_add(o.integrity);
        self.public_opinion = self.public_opinion.saturating_add(o.public_opinion);
        self.responsibility = self.responsibility.saturating_add(o.responsibility);
    }
}

/// `election.open` (registrar): who may vote on what, how scores are weighted, when, and with
/// which credential key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElectionOpen {
    /// Always 1.
    pub version: u32,
    /// Unique id.
    pub election_id: String,
    /// Subjects (cadres) evaluated; each ballot scores every one of them.
    pub subjects: Vec<String>,
    /// The draw whose selected evaluators may vote (it must have its result).
    pub draw_id: String,
    /// Weight of each dimension in percent; they add up to 100.
    pub weights: Dimensions,
    /// Lowest score allowed in a dimension.
    pub score_min: u64,
    /// Highest score allowed in a dimension (at most [`MAX_SCORE`]).
    pub score_max: u64,
    /// Ballots are accepted from this time (UTC microseconds, inclusive).
    pub opens_at_micros: u64,
    /// … until this time (exclusive); the tally comes after it.
    pub closes_at_micros: u64,
    /// The RFC 9474 variant: `RSABSSA-SHA384-PSS-Randomized`.
    pub credential_suite: String,
    /// Standard base64 of the credential public key's SubjectPublicKeyInfo DER.
    pub credential_key: String,
}

/// `credential.issued` (registrar): evaluator X of the draw received one credential (never which).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialIssued {
    /// Always 1.
    pub version: u32,
    /// Election.
    pub election_id: String,
    /// Pseudonymous id of the drawn evaluator.
    pub evaluator: String,
    /// Credentials issued: always 1.
    pub count: u32,
    /// Lowercase hex SHA-256 of the blinded message the registrar signed (with
    /// `request_signature`; unlinkable to the ballot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blinded_message_hash: Option<String>,
    /// Standard base64 of the evaluator's Ed25519 signature over [`credential_request_message`]:
    /// the evaluator asked for this credential. Required when their pool entry has a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_signature: Option<String>,
}

/// Domain-separation prefix of the bytes an evaluator signs to request a credential.
pub const CREDENTIAL_REQUEST_PREFIX: &[u8] = b"ledger credential request v1\0";

/// The bytes an evaluator signs to request a credential: [`CREDENTIAL_REQUEST_PREFIX`], then the
/// election id and the evaluator id, each as a 4-byte big-endian length and its UTF-8 bytes, then
/// the 32-byte SHA-256 of the blinded message (`docs/ballots.md`).
pub fn credential_request_message(election_id: &str, evaluator: &str, blinded_message_hash: &Hash) -> Vec<u8> {
    let mut m = CREDENTIAL_REQUEST_PREFIX.to_vec();
    for part in [election_id, evaluator] {
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        m.extend_from_slice(&len.to_be_bytes());
        m.extend_from_slice(part.as_bytes());
    }
    m.extend_from_slice(blinded_message_hash.as_bytes());
    m
}

impl CredentialIssued {
    /// Checks `request_signature` against the evaluator's pool key.
    ///
    /// # Errors
    /// What is missing or wrong.
    pub fn verify_request(&self, key: &ed25519_dalek::VerifyingKey) -> Result<(), RequestError> {
        let (Some(h), Some(sig)) = (&self.blinded_message_hash, &self.request_signature) else {
            return Err(RequestError::Missing);
        };
        let h = Hash::from_hex(h).map_err(|e| RequestError::Malformed(format!("blinded_message_hash: {e}")))?;
        let sig = B64
            .decode(sig)
            .map_err(|e| RequestError::Malformed(format!("request_signature: {e}")))
            .and_then(|b| {
                ed25519_dalek::Signature::from_slice(&b)
                    .map_err(|e| RequestError::Malformed(format!("request_signature: {e}")))
            })?;
        key.verify_strict(
            &credential_request_message(&self.election_id, &self.evaluator, &h),
            &sig,
        )
        .map_err(|_| RequestError::DoesNotVerify)
    }
}

/// Why an evaluator's credential request signature is not accepted (`CREDENTIAL_NOT_REQUESTED`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The record carries no request (hash and signature).
    #[error("no request signature by the evaluator's pool key")]
    Missing,
    /// The hash or the signature does not decode.
    #[error("{0}")]
    Malformed(String),
    /// The signature does not verify.
    #[error("the request signature does not verify with the evaluator's pool key")]
    DoesNotVerify,
}

/// Why a ballot's credential is not accepted (`BALLOT_INELIGIBLE`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BallotCredentialError {
    /// The ballot's one-time key is malformed.
    #[error(transparent)]
    Key(#[from] SchemaError),
    /// The credential is malformed or does not verify for this election and key.
    #[error(transparent)]
    Credential(#[from] credential::CredentialError),
}

/// One subject's scores on a ballot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectScores {
    /// Subject.
    pub subject: String,
    /// Scores.
    pub scores: Dimensions,
}

/// `ballot`: signed by its one-time key only; the credential is its authorization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ballot {
    /// Always 1.
    pub version: u32,
    /// Election.
    pub election_id: String,
    /// Scores, one entry per subject of the election, in the election's order.
    pub scores: Vec<SubjectScores>,
    /// Hex SHA-256 of a comment kept off-ledger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment_hash: Option<String>,
    /// Standard base64 of the 32-byte one-time Ed25519 public key that signs the envelope.
    pub ballot_key: String,
    /// The unblinded credential over the credential message for this election and key.
    pub credential: Credential,
}

impl Ballot {
    /// The one-time public key's bytes.
    ///
    /// # Errors
    /// When `ballot_key` is not base64 of a valid, non-weak Ed25519 key.
    pub fn key_bytes(&self) -> Result<[u8; 32], SchemaError> {
        let k = crate::keys::public_key_from_base64(&self.ballot_key).map_err(|e| format!("ballot_key: {e}"))?;
        if k.is_weak() {
            return Err("ballot_key: small-order (weak) key refused".into());
        }
        Ok(k.to_bytes())
    }

    /// Verifies the credential against an election key.
    ///
    /// # Errors
    /// When the key or credential is malformed or the credential does not verify.
    pub fn verify_credential(&self, key: &credential::IssuerPublicKey) -> Result<(), BallotCredentialError> {
        let k = self.key_bytes()?;
        Ok(credential::verify(key, &self.election_id, &k, &self.credential)?)
    }
}

/// The key id of the one-time key named in a ballot payload (the registry admits it as the
/// ballot's only signer).
///
/// # Errors
/// When the payload is not a ballot with a valid key.
pub fn ballot_signer(payload: &[u8]) -> Result<ed25519_dalek::VerifyingKey, SchemaError> {
    let b: Ballot = serde_json::from_slice(payload)?;
    let k = b.key_bytes()?;
    ed25519_dalek::VerifyingKey::from_bytes(&k).map_err(|e| SchemaError::Invalid(e.to_string()))
}

/// One subject's result in a tally.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectResult {
    /// Subject.
    pub subject: String,
    /// Per-dimension sums of the counted ballots' scores.
    pub sums: Dimensions,
    /// `Σ weight·sum / (100 · ballot_count)` as a decimal with [`SCORE_DECIMALS`] places, rounded
    /// half up; `null` when no ballot was counted.
    pub weighted_score: Option<String>,
}

/// `tally` (node): the result of an election, recomputed by the verifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tally {
    /// Always 1.
    pub version: u32,
    /// Election.
    pub election_id: String,
    /// Ballots counted.
    pub ballot_count: u64,
    /// Log indices of the counted ballots, ascending.
    pub ballot_indices: Vec<u64>,
    /// Per subject, in the election's order.
    pub results: Vec<SubjectResult>,
}

/// `evaluation.micro` (service platform): one citizen rating after one government service, keyed by
/// the salted hash of the service ticket. Platforms submit them in bulk with AppendBatch, one record
/// per ticket, so that every rating has its own inclusion proof (a citizen's receipt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MicroEvaluation {
    /// Always 1.
    pub version: u32,
    /// Hex [`ticket_hash`] of the service ticket (the ticket id itself is never on the ledger).
    pub ticket_hash: String,
    /// Cadre who served.
    pub subject: String,
    /// Department.
    pub department: String,
    /// Rating 1–5.
    pub rating: u8,
    /// When the service happened (UTC microseconds).
    pub service_time_micros: u64,
}

/// `SHA-256("ledger-ticket-v1" ‖ 0x00 ‖ platform salt (32 bytes) ‖ ticket id UTF-8)`: the salt is the
/// platform's secret, so that ticket numbers (often guessable) cannot be confirmed from the ledger.
pub fn ticket_hash(platform_salt: &[u8; 32], ticket_id: &str) -> Hash {
    let mut b = TICKET_TAG.to_vec();
    b.push(0);
    b.extend_from_slice(platform_salt);
    b.extend_from_slice(ticket_id.as_bytes());
    Hash::digest(&b)
}

fn hex32(field: &str, s: &str) -> Result<(), SchemaError> {
    if s.len() != 64 || !s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
        return Err(format!("{field} must be 64 lowercase hex digits").into());
    }
    Ok(())
}

fn version(v: u32) -> Result<(), SchemaError> {
    if v != 1 {
        return Err("\"version\": 1 is required".into());
    }
    Ok(())
}

/// Validates an `election.open` on its own (ids, weights, range, window, key).
///
/// # Errors
/// What is wrong.
pub fn check_election_open(r: &ElectionOpen) -> Result<(), SchemaError> {
    version(r.version)?;
    id_ok("election_id", &r.election_id)?;
    id_ok("draw_id", &r.draw_id)?;
    if r.subjects.is_empty() || r.subjects.len() > MAX_SUBJECTS {
        return Err(format!("1-{MAX_SUBJECTS} subjects").into());
    }
    for s in &r.subjects {
        id_ok("subject", s)?;
    }
    let mut s: Vec<&String> = r.subjects.iter().collect();
    s.sort_unstable();
    s.dedup();
    if s.len() != r.subjects.len() {
        return Err("subjects must be unique".into());
    }
    let w: u64 = r.weights.values().iter().fold(0u64, |a, x| a.saturating_add(*x));
    if w != 100 {
        return Err(format!("weights must add up to 100 (percent), not {w}").into());
    }
    if r.score_min >= r.score_max || r.score_max > MAX_SCORE {
        return Err(format!("need score_min < score_max <= {MAX_SCORE}").into());
    }
    if r.opens_at_micros >= r.closes_at_micros {
        return Err("opens_at_micros must be before closes_at_micros".into());
    }
    if r.credential_suite != credential::SUITE {
        return Err(format!(
            "unsupported credential_suite {:?}; supported: {}",
            r.credential_suite,
            credential::SUITE
        )
        .into());
    }
    credential::IssuerPublicKey::from_base64(&r.credential_key).map_err(|e| e.to_string())?;
    Ok(())
}

/// Validates a `credential.issued` on its own.
///
/// # Errors
/// What is wrong.
pub fn check_credential_issued(r: &CredentialIssued) -> Result<(), SchemaError> {
    version(r.version)?;
    id_ok("election_id", &r.election_id)?;
    id_ok("evaluator", &r.evaluator)?;
    if r.count != 1 {
        return Err("count must be 1: one credential per record".into());
    }
    match (&r.blinded_message_hash, &r.request_signature) {
        (None, None) => {}
        (Some(h), Some(_)) => hex32("blinded_message_hash", h)?,
        _ => return Err("blinded_message_hash and request_signature come together".into()),
    }
    Ok(())
}

/// Validates a `ballot` on its own (shape, key, encodings; not the credential, which needs the
/// election's key).
///
/// # Errors
/// What is wrong.
pub fn check_ballot(r: &Ballot) -> Result<(), SchemaError> {
    version(r.version)?;
    id_ok("election_id", &r.election_id)?;
    if r.scores.is_empty() || r.scores.len() > MAX_SUBJECTS {
        return Err(format!("1-{MAX_SUBJECTS} subject scores").into());
    }
    for s in &r.scores {
        id_ok("subject", &s.subject)?;
    }
    if let Some(h) = &r.comment_hash {
        hex32("comment_hash", h)?;
    }
    r.key_bytes()?;
    r.credential.parts().map_err(|e| e.to_string())?;
    Ok(())
}

/// Validates a `tally` on its own.
///
/// # Errors
/// What is wrong.
pub fn check_tally(r: &Tally) -> Result<(), SchemaError> {
    version(r.version)?;
    id_ok("election_id", &r.election_id)?;
    if r.ballot_indices.len() as u64 != r.ballot_count {
        return Err("ballot_count must equal the number of ballot_indices".into());
    }
    if r.ballot_indices.windows(2).any(|w| w[0] >= w[1]) {
        return Err("ballot_indices must be strictly ascending".into());
    }
    for s in &r.results {
        id_ok("subject", &s.subject)?;
    }
    Ok(())
}

/// Validates an `evaluation.micro` record on its own.
///
/// # Errors
/// What is wrong.
pub fn check_micro(r: &MicroEvaluation) -> Result<(), SchemaError> {
    version(r.version)?;
    hex32("ticket_hash", &r.ticket_hash)?;
    id_ok("subject", &r.subject)?;
    id_ok("department", &r.department)?;
    if !(1..=5).contains(&r.rating) {
        return Err("rating must be 1-5".into());
    }
    Ok(())
}

/// `value = numerator / denominator` as a decimal with [`SCORE_DECIMALS`] places, rounded half up.
/// `denominator` must not be 0.
pub fn fixed_point(numerator: u128, denominator: u128) -> String {
    let scale = 10u128.pow(SCORE_DECIMALS);
    let d = denominator.max(1);
    let scaled = (numerator.saturating_mul(scale).saturating_mul(2) / d).div_ceil(2);
    format!(
        "{}.{:0width$}",
        scaled / scale,
        scaled % scale,
        width = SCORE_DECIMALS as usize
    )
}

/// The tally of `ballots` (log index, ballot) for an election, as the node appends it and the
/// verifier recomputes it. Each ballot must already have passed the election's rules.
pub fn tally(open: &ElectionOpen, ballots: &[(u64, &Ballot)]) -> Tally {
    let mut indices: Vec<u64> = ballots.iter().map(|(i, _)| *i).collect();
    indices.sort_unstable();
    let n = ballots.len() as u64;
    // One pass over the ballots, each score added to its subject's sums (the first score for a
    // subject counts), instead of subjects × ballots × scores comparisons.
    let mut sums: BTreeMap<&str, Dimensions> = open
        .subjects
        .iter()
        .map(|s| (s.as_str(), Dimensions::default()))
        .collect();
    for (_, b) in ballots {
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        for s in &b.scores {
            if seen.insert(&s.subject)
                && let Some(d) = sums.get_mut(s.subject.as_str())
            {
                d.add(&s.scores);
            }
        }
    }
    let results = open
        .subjects
        .iter()
        .map(|subject| {
            let sums = sums.remove(subject.as_str()).unwrap_or_default();
            let weighted: u128 = sums
                .values()
                .iter()
                .zip(open.weights.values())
                .map(|(s, w)| u128::from(*s) * u128::from(w))
                .sum();
            SubjectResult {
                subject: subject.clone(),
                sums,
                weighted_score: (n > 0).then(|| fixed_point(weighted, 100 * u128::from(n))),
            }
        })
        .collect();
    Tally {
        version: 1,
        election_id: open.election_id.clone(),
        ballot_count: n,
        ballot_indices: indices,
        results,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_point_rounds_half_up() {
        assert_eq!(fixed_point(0, 1), "0.0000");
        assert_eq!(fixed_point(1, 3), "0.3333");
        assert_eq!(fixed_point(2, 3), "0.6667");
        assert_eq!(fixed_point(1, 8), "0.1250");
        assert_eq!(fixed_point(1, 20_000), "0.0001"); // 0.00005 rounds up
        assert_eq!(fixed_point(1, 20_001), "0.0000");
        assert_eq!(fixed_point(8735, 100), "87.3500");
    }

    #[test]
    fn ticket_hash_bytes() {
        let mut pre = b"ledger-ticket-v1\0".to_vec();
        pre.extend_from_slice(&[5u8; 32]);
        pre.extend_from_slice(b"T-1");
        assert_eq!(ticket_hash(&[5u8; 32], "T-1"), Hash::digest(&pre));
    }
}
