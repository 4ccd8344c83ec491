//! Elections for the three roles (docs/ballots.md), on top of [`ledger_core::credential`] (RFC 9474
//! blind RSA) and [`ledger_core::election`]:
//!
//! - **Registrar**: [`generate_credential_key`], [`open_election`] (appends `election.open` for a
//!   draw with a result), [`issue_credential`] (checks that the evaluator was drawn, blind-signs
//!   their [`CredentialRequest`], appends `credential.issued`, and only then hands out the
//!   [`BlindSignature`]).
//! - **Evaluator** (no registry key): [`request_credential`] (one-time ballot key and blinded
//!   message; the [`CredentialSecrets`] stay on their machine, [`write_secret_json`] writes them
//!   with mode 0600), [`finalize_credential`], [`cast_ballot`] (appends the ballot signed by the
//!   one-time key only and returns a [`Receipt`]), [`check_receipt`].
//!
//! The exchanged artefacts are JSON documents, so they can travel as files.

use crate::client::{AppendOutcome, LedgerClient};
use crate::error::ClientError;
use crate::sign::sign_record_json_in;
use crate::verify::verify_inclusion_in_note;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, SigningKey};
use ledger_core::credential::{self, BlindingState, Credential, IssuerKey, IssuerPublicKey};
use ledger_core::domain::DrawResult;
use ledger_core::election::{
    Ballot, CredentialIssued, Dimensions, ElectionOpen, SubjectScores, Tally, credential_request_message,
};
use ledger_core::election_rules::DrawnEvaluators;
use ledger_core::entry::Entry;
use ledger_core::hash::Hash;
use ledger_core::keys::{public_key_to_base64, signing_key_from_base64, signing_key_to_base64};
use ledger_core::note::NoteVerifier;
use ledger_core::registry::kind_of;
use ledger_proto::pb;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::Path;

fn payload_err(what: &str, e: impl std::fmt::Display) -> ClientError {
    ClientError::Payload(format!("{what}: {e}"))
}

fn b64_decode(what: &str, s: &str) -> Result<Vec<u8>, ClientError> {
    B64.decode(s).map_err(|e| payload_err(what, e))
}

/// Generates an election's RSA credential key ([`credential::DEFAULT_BITS`] bits; takes a second
/// or so).
///
/// # Errors
/// When key generation fails.
pub fn generate_credential_key() -> Result<IssuerKey, ClientError> {
    IssuerKey::generate(&mut rand::rng(), credential::DEFAULT_BITS).map_err(|e| payload_err("credential key", e))
}

/// Writes `text` to a new file with mode 0600 (Unix); never overwrites.
///
/// # Errors
/// When the file exists or cannot be written.
pub fn write_secret_file(path: &Path, text: &str) -> Result<(), ClientError> {
    use std::io::Write as _;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    let io = |error| ClientError::KeyFile {
        path: path.to_path_buf(),
        error,
    };
    let mut f = o.open(path).map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)
}

/// Writes a JSON document to a new file with mode 0600 (secrets); never overwrites.
///
/// # Errors
/// When the file exists or cannot be written.
pub fn write_secret_json<T: Serialize>(path: &Path, v: &T) -> Result<(), ClientError> {
    let text = serde_json::to_string_pretty(v).map_err(|e| payload_err("json", e))?;
    write_secret_file(path, &format!("{text}\n"))
}

/// Reads a JSON document written by this module (at most 1 MiB).
///
/// # Errors
/// When the file cannot be read or is not the expected document.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, ClientError> {
    let io = |error| ClientError::KeyFile {
        path: path.to_path_buf(),
        error,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > 1 << 20 {
        return Err(ClientError::BadKeyFile {
            path: path.to_path_buf(),
            detail: format!("{len} bytes, more than 1 MiB"),
        });
    }
    let text = std::fs::read(path).map_err(io)?;
    serde_json::from_slice(&text).map_err(|e| ClientError::BadKeyFile {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

/// Writes an election's credential key (PKCS#8 PEM) with mode 0600; never overwrites.
///
/// # Errors
/// When the file exists or cannot be written.
pub fn write_credential_key(path: &Path, key: &IssuerKey) -> Result<(), ClientError> {
    let pem = key.to_pem().map_err(|e| payload_err("credential key", e))?;
    write_secret_file(path, &pem)
}

/// Reads an election's credential key (PEM).
///
/// # Errors
/// When the file cannot be read or is not an RSA key within RFC 9474's parameters.
pub fn read_credential_key(path: &Path) -> Result<IssuerKey, ClientError> {
    let pem = std::fs::read_to_string(path).map_err(|error| ClientError::KeyFile {
        path: path.to_path_buf(),
        error,
    })?;
    IssuerKey::from_pem(&pem).map_err(|e| ClientError::BadKeyFile {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

/// Every entry of kind `kind` about draw or election `id` (the node's `Query` by draw id).
///
/// # Errors
/// When the node refuses or an entry fails its checks.
pub async fn query_kind(client: &LedgerClient, kind: &str, id: &str) -> Result<Vec<Entry>, ClientError> {
    let mut out = Vec::new();
    let mut page_start = 0;
    loop {
        let req = pb::QueryRequest {
            kind: kind.to_string(),
            draw_id: id.to_string(),
            page_start,
            limit: 1000,
            with_entries: true,
            ..Default::default()
        };
        let r = client.raw().query(req).await?.into_inner();
        for e in &r.entries {
            let entry = crate::client::check_wire_entry(e)?;
            if kind_of(&entry.envelope.payload_type) == Some(kind) {
                out.push(entry);
            }
        }
        if r.next_page_start == 0 || r.next_page_start <= page_start {
            return Ok(out);
        }
        page_start = r.next_page_start;
    }
}

/// The single record of `kind` about `id`, parsed, with its index.
async fn find_one<T: DeserializeOwned>(
    client: &LedgerClient,
    kind: &str,
    id: &str,
    matches: impl Fn(&T) -> bool,
) -> Result<Option<(u64, T)>, ClientError> {
    for e in query_kind(client, kind, id).await? {
        if let Ok(v) = serde_json::from_slice::<T>(&e.envelope.payload)
            && matches(&v)
        {
            return Ok(Some((e.index, v)));
        }
    }
    Ok(None)
}

/// The `draw.result` of draw `draw_id`.
///
/// # Errors
/// When the draw has no result yet, or the node refuses.
pub async fn draw_result(client: &LedgerClient, draw_id: &str) -> Result<DrawResult, ClientError> {
    find_one(client, "draw.result", draw_id, |r: &DrawResult| r.draw_id == draw_id)
        .await?
        .map(|(_, r)| r)
        .ok_or_else(|| ClientError::Payload(format!("draw {draw_id} has no result in the log (yet)")))
}

/// The `election.open` of election `election_id`, with its index.
///
/// # Errors
/// When the log holds no such election, or the node refuses.
pub async fn fetch_election(client: &LedgerClient, election_id: &str) -> Result<(u64, ElectionOpen), ClientError> {
    find_one(client, "election.open", election_id, |o: &ElectionOpen| {
        o.election_id == election_id
    })
    .await?
    .ok_or_else(|| ClientError::Payload(format!("election {election_id} is not open in this log")))
}

/// The node's `tally` of election `election_id`, with its index, once it has closed.
///
/// # Errors
/// When the node refuses.
pub async fn fetch_tally(client: &LedgerClient, election_id: &str) -> Result<Option<(u64, Tally)>, ClientError> {
    find_one(client, "tally", election_id, |t: &Tally| t.election_id == election_id).await
}

/// What the registrar decides when opening an election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionParams {
    /// New, unique election id.
    pub election_id: String,
    /// The draw (with a result) whose evaluators may vote.
    pub draw_id: String,
    /// Subjects evaluated; empty: the draw's subjects.
    pub subjects: Vec<String>,
    /// Weights of the five dimensions in percent (they add up to 100).
    pub weights: Dimensions,
    /// Lowest score.
    pub score_min: u64,
    /// Highest score.
    pub score_max: u64,
    /// Ballots from (UTC microseconds).
    pub opens_at_micros: u64,
    /// Ballots until (exclusive); the node tallies after it.
    pub closes_at_micros: u64,
}

/// Registrar: appends `election.open` for `params`, with `issuer`'s public key as the credential
/// key. The draw must have its result (its subjects are used when `params.subjects` is empty).
///
/// # Errors
/// When the draw has no result, the record breaks a rule (checked locally, then by the node), or
/// the node refuses.
pub async fn open_election(
    client: &LedgerClient,
    origin: &str,
    registrar: &SigningKey,
    params: &ElectionParams,
    issuer: &IssuerKey,
) -> Result<(ElectionOpen, AppendOutcome), ClientError> {
    let subjects = if params.subjects.is_empty() {
        let commit = find_one(
            client,
            "draw.commit",
            &params.draw_id,
            |c: &ledger_core::domain::DrawCommit| c.draw_id == params.draw_id,
        )
        .await?
        .ok_or_else(|| ClientError::Payload(format!("draw {} is not in this log", params.draw_id)))?;
        commit.1.subjects
    } else {
        params.subjects.clone()
    };
    let result = draw_result(client, &params.draw_id).await?;
    if DrawnEvaluators::of_result(&result).eligible(&subjects).is_empty() {
        return Err(ClientError::Payload(format!(
            "draw {} selected no evaluator for these subjects",
            params.draw_id
        )));
    }
    let open = ElectionOpen {
        version: 1,
        election_id: params.election_id.clone(),
        subjects,
        draw_id: params.draw_id.clone(),
        weights: params.weights,
        score_min: params.score_min,
        score_max: params.score_max,
        opens_at_micros: params.opens_at_micros,
        closes_at_micros: params.closes_at_micros,
        credential_suite: credential::SUITE.to_string(),
        credential_key: issuer
            .public_key()
            .to_base64()
            .map_err(|e| payload_err("credential key", e))?,
    };
    ledger_core::election::check_election_open(&open).map_err(|e| payload_err("election.open", e))?;
    let env = sign_record_json_in("election.open", Some(origin), &open, &[registrar])?;
    let out = client.append(&env, None, false).await?;
    Ok((open, out))
}

/// Evaluator → registrar: the blinded credential message of one drawn evaluator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialRequest {
    /// Always 1.
    pub version: u32,
    /// Election.
    pub election_id: String,
    /// The evaluator's pseudonymous id in the draw.
    pub evaluator: String,
    /// The election's credential key the message was blinded for (base64 SPKI).
    pub credential_key: String,
    /// Standard base64 of the blinded message.
    pub blinded_message: String,
    /// Standard base64 of the evaluator's Ed25519 signature by their pool key over
    /// [`ledger_core::election::credential_request_message`] (required when the draw's pool gives
    /// the evaluator a key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_signature: Option<String>,
}

/// What the evaluator keeps on their machine until the ballot is cast (secret: the ballot key
/// signs the ballot, and the blinding secret would let the registrar link credential and
/// evaluator).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialSecrets {
    /// Always 1.
    pub version: u32,
    /// Election.
    pub election_id: String,
    /// The evaluator's id (stays local).
    pub evaluator: String,
    /// The election's credential key (base64 SPKI).
    pub credential_key: String,
    /// Standard base64 of the one-time Ed25519 ballot key's seed.
    pub ballot_key_seed: String,
    /// Standard base64 of the blinded message sent.
    pub blinded_message: String,
    /// Standard base64 of the RFC 9474 blinding secret.
    pub blinding_secret: String,
    /// Hex of the RFC 9474 message randomizer.
    pub randomizer: String,
    /// The finalized credential, once [`finalize_credential`] ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<Credential>,
}

impl CredentialSecrets {
    /// The one-time ballot key.
    ///
    /// # Errors
    /// When the seed is malformed.
    pub fn ballot_key(&self) -> Result<SigningKey, ClientError> {
        signing_key_from_base64(&self.ballot_key_seed).map_err(|e| payload_err("ballot_key_seed", e))
    }
}

/// Registrar → evaluator: the blind signature over their blinded message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlindSignature {
    /// Always 1.
    pub version: u32,
    /// Election.
    pub election_id: String,
    /// Evaluator it was issued to.
    pub evaluator: String,
    /// Standard base64 of the blind signature.
    pub blind_signature: String,
    /// Index of the `credential.issued` entry.
    pub issued_index: u64,
}

fn issuer_key(b64: &str) -> Result<IssuerPublicKey, ClientError> {
    IssuerPublicKey::from_base64(b64).map_err(|e| payload_err("credential key", e))
}

/// Evaluator: makes a one-time ballot key and blinds its credential message for `open`'s key;
/// with `evaluator_key` (the key fixed for this evaluator in the draw's pool) signs the request
/// over the blinded message only. Send the request to the registrar; keep the secrets (mode 0600,
/// [`write_secret_json`]).
///
/// # Errors
/// When the election's key is malformed or blinding fails.
pub fn request_credential(
    open: &ElectionOpen,
    evaluator: &str,
    evaluator_key: Option<&SigningKey>,
) -> Result<(CredentialRequest, CredentialSecrets), ClientError> {
    let pk = issuer_key(&open.credential_key)?;
    let k = SigningKey::generate(&mut rand::rng());
    let st = credential::blind(&mut rand::rng(), &pk, &open.election_id, k.verifying_key().as_bytes())
        .map_err(|e| payload_err("blinding", e))?;
    let (secret, randomizer) = st.secret_parts();
    let randomizer = randomizer.ok_or_else(|| ClientError::Payload("blinding gave no message randomizer".into()))?;
    let blinded = B64.encode(st.blinded_message());
    let request_signature = evaluator_key.map(|ek| {
        let m = credential_request_message(&open.election_id, evaluator, &Hash::digest(st.blinded_message()));
        B64.encode(ek.sign(&m).to_bytes())
    });
    let req = CredentialRequest {
        version: 1,
        election_id: open.election_id.clone(),
        evaluator: evaluator.to_string(),
        credential_key: open.credential_key.clone(),
        blinded_message: blinded.clone(),
        request_signature,
    };
    let secrets = CredentialSecrets {
        version: 1,
        election_id: open.election_id.clone(),
        evaluator: evaluator.to_string(),
        credential_key: open.credential_key.clone(),
        ballot_key_seed: signing_key_to_base64(&k),
        blinded_message: blinded,
        blinding_secret: B64.encode(secret),
        randomizer: hex::encode(randomizer),
        credential: None,
    };
    Ok((req, secrets))
}

/// Registrar: checks that `request` is for this election's key and from an evaluator its draw
/// selected, blind-signs it, appends `credential.issued` (the node refuses an undrawn evaluator
/// and a second credential), and only then returns the blind signature. Issuing the same request
/// again returns the same signature (the append is idempotent by request id).
///
/// # Errors
/// When the request does not match the election, the evaluator was not drawn, the blinded message
/// is malformed, or the node refuses the `credential.issued`.
pub async fn issue_credential(
    client: &LedgerClient,
    origin: &str,
    registrar: &SigningKey,
    issuer: &IssuerKey,
    request: &CredentialRequest,
) -> Result<(BlindSignature, AppendOutcome), ClientError> {
    let (_, open) = fetch_election(client, &request.election_id).await?;
    let key = issuer
        .public_key()
        .to_base64()
        .map_err(|e| payload_err("credential key", e))?;
    if open.credential_key != key {
        return Err(ClientError::Payload(format!(
            "this credential key is not the one election {} was opened with",
            open.election_id
        )));
    }
    if request.credential_key != key {
        return Err(ClientError::Payload(
            "the request was blinded for another credential key".into(),
        ));
    }
    let result = draw_result(client, &open.draw_id).await?;
    if !DrawnEvaluators::of_result(&result)
        .eligible(&open.subjects)
        .contains(&request.evaluator)
    {
        return Err(ClientError::Payload(format!(
            "CREDENTIAL_NOT_DRAWN: evaluator {:?} was not drawn in {} for election {}",
            request.evaluator, open.draw_id, open.election_id
        )));
    }
    let blinded = b64_decode("blinded_message", &request.blinded_message)?;
    let sig = issuer
        .blind_sign(&blinded)
        .map_err(|e| payload_err("blinded_message", e))?;
    // The evaluator's request signature travels into the record, where node and verifier check it
    // against the evaluator's pool key (CREDENTIAL_NOT_REQUESTED); it is not checked here, so a
    // request without one reaches the node, which decides.
    let issued = CredentialIssued {
        version: 1,
        election_id: open.election_id.clone(),
        evaluator: request.evaluator.clone(),
        count: 1,
        blinded_message_hash: request
            .request_signature
            .as_ref()
            .map(|_| Hash::digest(&blinded).to_hex()),
        request_signature: request.request_signature.clone(),
    };
    let env = sign_record_json_in("credential.issued", Some(origin), &issued, &[registrar])?;
    // Idempotent: the same request issued again (after a crash before the signature file was
    // written) gets the same entry back and the same, deterministic, blind signature; a new blinded
    // message from the same evaluator is a second credential, refused by the node.
    let mut id = b"ledger-credential-issue-v1\0".to_vec();
    for part in [&open.election_id, &request.evaluator, &request.blinded_message] {
        id.extend_from_slice(part.as_bytes());
        id.push(0);
    }
    let request_id = format!("credential-{}", Hash::digest(&id).to_hex());
    let out = client.append(&env, Some(request_id), false).await?;
    Ok((
        BlindSignature {
            version: 1,
            election_id: open.election_id,
            evaluator: request.evaluator.clone(),
            blind_signature: B64.encode(sig),
            issued_index: out.index,
        },
        out,
    ))
}

/// Evaluator: unblinds the registrar's blind signature into the credential (checked against the
/// election key) and returns the secrets with it.
///
/// # Errors
/// When the signature is for another election or evaluator, or does not finalize.
pub fn finalize_credential(
    secrets: &CredentialSecrets,
    blind_signature: &BlindSignature,
) -> Result<CredentialSecrets, ClientError> {
    if blind_signature.election_id != secrets.election_id || blind_signature.evaluator != secrets.evaluator {
        return Err(ClientError::Payload(format!(
            "the blind signature is for {} in {}, the secrets for {} in {}",
            blind_signature.evaluator, blind_signature.election_id, secrets.evaluator, secrets.election_id
        )));
    }
    let pk = issuer_key(&secrets.credential_key)?;
    let k = secrets.ballot_key()?;
    let mut r = [0u8; 32];
    hex::decode_to_slice(&secrets.randomizer, &mut r).map_err(|e| payload_err("randomizer", e))?;
    let st = BlindingState::from_parts(
        &secrets.election_id,
        k.verifying_key().as_bytes(),
        b64_decode("blinded_message", &secrets.blinded_message)?,
        b64_decode("blinding_secret", &secrets.blinding_secret)?,
        Some(r),
    );
    let sig = b64_decode("blind_signature", &blind_signature.blind_signature)?;
    let cred = credential::finalize(&pk, &st, &sig).map_err(|e| payload_err("finalize", e))?;
    Ok(CredentialSecrets {
        credential: Some(cred),
        ..secrets.clone()
    })
}

/// The evaluator's receipt of a cast ballot: where it is in the log, and the node's signed proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// Always 1.
    pub version: u32,
    /// Election.
    pub election_id: String,
    /// Log index of the ballot.
    pub index: u64,
    /// Hex leaf hash of the ballot's entry.
    pub leaf_hash: String,
    /// Entry time (UTC microseconds).
    pub timestamp_micros: u64,
    /// Standard base64 of the one-time ballot public key.
    pub ballot_key: String,
    /// Signed checkpoint note covering the ballot.
    pub checkpoint: String,
    /// Hex inclusion proof of the ballot in that checkpoint.
    pub inclusion_proof: Vec<String>,
}

/// Evaluator: casts a ballot with the finalized credential in `secrets`, signed by the one-time
/// ballot key only, and waits for a checkpoint so the receipt carries the inclusion proof. Casting
/// the same ballot again (e.g. after a lost answer) returns the same entry.
///
/// # Errors
/// When the credential is not finalized, or the node refuses the ballot (e.g. `BALLOT_DUPLICATE`).
pub async fn cast_ballot(
    client: &LedgerClient,
    origin: &str,
    secrets: &CredentialSecrets,
    scores: Vec<SubjectScores>,
) -> Result<Receipt, ClientError> {
    let cred = secrets
        .credential
        .clone()
        .ok_or_else(|| ClientError::Payload("no credential yet: run finalize first".into()))?;
    let k = secrets.ballot_key()?;
    let ballot = Ballot {
        version: 1,
        election_id: secrets.election_id.clone(),
        scores,
        comment_hash: None,
        ballot_key: public_key_to_base64(&k.verifying_key()),
        credential: cred,
    };
    ledger_core::election::check_ballot(&ballot).map_err(|e| payload_err("ballot", e))?;
    let env = sign_record_json_in("ballot", Some(origin), &ballot, &[&k])?;
    // Idempotent: casting the same ballot again (Ed25519 signatures are deterministic) returns the
    // same entry; a different ballot with the same credential is refused (`BALLOT_DUPLICATE`).
    let request_id = format!("ballot-{}", Hash::digest(&env.payload).to_hex());
    let out = client.append(&env, Some(request_id), true).await?;
    let checkpoint = out.checkpoint.clone().ok_or(ClientError::NoCheckpoint {
        index: out.index,
        detail: Some("the node answered without a checkpoint".into()),
    })?;
    Ok(Receipt {
        version: 1,
        election_id: ballot.election_id,
        index: out.index,
        leaf_hash: out.leaf_hash.to_hex(),
        timestamp_micros: out.timestamp_micros,
        ballot_key: ballot.ballot_key,
        checkpoint,
        inclusion_proof: out.inclusion_proof.iter().map(Hash::to_hex).collect(),
    })
}

/// What [`check_receipt`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptCheck {
    /// The entry at the receipt's index is the ballot (same leaf hash, same ballot key).
    pub in_log: bool,
    /// The receipt's checkpoint is signed by the node key and the proof leads to its root
    /// (`None` when no node key was given).
    pub proof_verified: Option<bool>,
    /// Index of the election's tally, once the node has tallied it.
    pub tally_index: Option<u64>,
    /// The tally counts the ballot (`None` before the tally).
    pub counted: Option<bool>,
}

fn parse_hash(what: &str, s: &str) -> Result<Hash, ClientError> {
    Hash::from_hex(s).map_err(|e| payload_err(what, e))
}

/// Evaluator: checks a receipt against the log: the ballot is the entry at its index, the proof
/// holds in the node-signed checkpoint (when `node_verifier` is given), and the tally counts it.
///
/// # Errors
/// When the receipt is malformed, the node refuses, or the proof does not verify.
pub async fn check_receipt(
    client: &LedgerClient,
    receipt: &Receipt,
    node_verifier: Option<&NoteVerifier>,
) -> Result<ReceiptCheck, ClientError> {
    let lh = parse_hash("leaf_hash", &receipt.leaf_hash)?;
    let entry = client.get_entry(receipt.index).await?;
    let ballot: Option<Ballot> = serde_json::from_slice(&entry.envelope.payload).ok();
    let in_log = entry.leaf_hash() == lh
        && kind_of(&entry.envelope.payload_type) == Some("ballot")
        && ballot
            .as_ref()
            .is_some_and(|b| b.ballot_key == receipt.ballot_key && b.election_id == receipt.election_id);
    let proof_verified = match node_verifier {
        Some(v) => {
            let proof = receipt
                .inclusion_proof
                .iter()
                .map(|h| parse_hash("inclusion_proof", h))
                .collect::<Result<Vec<_>, _>>()?;
            verify_inclusion_in_note(receipt.index, &lh, &proof, &receipt.checkpoint, v)?;
            Some(true)
        }
        None => None,
    };
    let tally = fetch_tally(client, &receipt.election_id).await?;
    Ok(ReceiptCheck {
        in_log,
        proof_verified,
        tally_index: tally.as_ref().map(|t| t.0),
        counted: tally.map(|(_, t)| t.ballot_indices.contains(&receipt.index)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TEST ONLY: the published credential key of ledger-core's tests.
    const TEST_KEY_PEM: &str = include_str!("../../ledger-core/tests/data/TEST_ONLY_credential_key.pem");

    fn open_for(issuer: &IssuerKey) -> ElectionOpen {
        ElectionOpen {
            version: 1,
            election_id: "el-1".into(),
            subjects: vec!["cadre-1".into()],
            draw_id: "draw-1".into(),
            weights: Dimensions {
                political: 20,
                performance: 20,
                integrity: 20,
                public_opinion: 20,
                responsibility: 20,
            },
            score_min: 0,
            score_max: 100,
            opens_at_micros: 1,
            closes_at_micros: 2,
            credential_suite: credential::SUITE.into(),
            credential_key: issuer.public_key().to_base64().expect("b64"),
        }
    }

    fn sign_request(issuer: &IssuerKey, req: &CredentialRequest) -> BlindSignature {
        let blinded = B64.decode(&req.blinded_message).expect("b64");
        BlindSignature {
            version: 1,
            election_id: req.election_id.clone(),
            evaluator: req.evaluator.clone(),
            blind_signature: B64.encode(issuer.blind_sign(&blinded).expect("sign")),
            issued_index: 7,
        }
    }

    #[test]
    fn request_issue_finalize_through_files() {
        let issuer = IssuerKey::from_pem(TEST_KEY_PEM).expect("test key");
        let open = open_for(&issuer);
        let (req, sec) = request_credential(&open, "ev-01", None).expect("request");
        // The secrets travel through a 0600 file, the request and signature through JSON.
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("secrets.json");
        write_secret_json(&p, &sec).expect("write");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777, 0o600);
        }
        assert!(write_secret_json(&p, &sec).is_err(), "never overwrites");
        let sec: CredentialSecrets = read_json(&p).expect("read");
        let req: CredentialRequest = serde_json::from_str(&serde_json::to_string(&req).expect("json")).expect("json");
        let sig = sign_request(&issuer, &req);
        let done = finalize_credential(&sec, &sig).expect("finalize");
        let cred = done.credential.clone().expect("credential");
        let k = done.ballot_key().expect("ballot key");
        assert_eq!(
            credential::verify(issuer.public_key(), "el-1", k.verifying_key().as_bytes(), &cred),
            Ok(())
        );
        // The registrar's view (request) holds neither the ballot key nor the blinding secret.
        let seen = serde_json::to_string(&req).expect("json");
        assert!(!seen.contains(&sec.ballot_key_seed) && !seen.contains(&sec.blinding_secret));
        assert!(!seen.contains(&public_key_to_base64(&k.verifying_key())));
    }

    #[test]
    fn request_signed_with_the_pool_key_verifies_in_the_record() {
        let issuer = IssuerKey::from_pem(TEST_KEY_PEM).expect("test key");
        let open = open_for(&issuer);
        let ek = SigningKey::from_bytes(&[7; 32]);
        let (req, _) = request_credential(&open, "ev-01", Some(&ek)).expect("request");
        let blinded = B64.decode(&req.blinded_message).expect("b64");
        let issued = CredentialIssued {
            version: 1,
            election_id: "el-1".into(),
            evaluator: "ev-01".into(),
            count: 1,
            blinded_message_hash: Some(Hash::digest(&blinded).to_hex()),
            request_signature: req.request_signature.clone(),
        };
        assert_eq!(issued.verify_request(&ek.verifying_key()), Ok(()));
        let other = SigningKey::from_bytes(&[8; 32]);
        assert!(issued.verify_request(&other.verifying_key()).is_err());
        // Without a key, no signature (the old request format, unchanged).
        let (plain, _) = request_credential(&open, "ev-01", None).expect("request");
        assert!(
            !serde_json::to_string(&plain)
                .expect("json")
                .contains("request_signature")
        );
    }

    #[test]
    fn finalize_refuses_foreign_signatures() {
        let issuer = IssuerKey::from_pem(TEST_KEY_PEM).expect("test key");
        let open = open_for(&issuer);
        let (_, sec) = request_credential(&open, "ev-01", None).expect("request");
        let (req2, _) = request_credential(&open, "ev-02", None).expect("request");
        // Another evaluator's signature file.
        let e = finalize_credential(&sec, &sign_request(&issuer, &req2)).expect_err("other evaluator");
        assert!(e.to_string().contains("ev-02"), "{e}");
        // The right names over another blinded message does not finalize.
        let mut sig = sign_request(&issuer, &req2);
        sig.evaluator = "ev-01".into();
        let e = finalize_credential(&sec, &sig).expect_err("other message");
        assert!(e.to_string().contains("finalize"), "{e}");
    }
}
