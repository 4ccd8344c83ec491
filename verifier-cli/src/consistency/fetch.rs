//! What the consistency check asks of the network (gRPC): the node's charter, enrolled witness
//! keys, latest checkpoint and consistency proofs, and each witness's latest cosigned checkpoint.
//! Answers are handed on as they came; [`super::compare`] judges them.

use super::compare::{ProofAnswer, Proofs};
use anyhow::{Context as _, anyhow};
use ledger_core::cosignature::CosignatureVerifier;
use ledger_core::entry::Entry;
use ledger_core::note::NoteVerifier;
use ledger_core::registry::Registry;
use ledger_proto::pb::ledger_client::LedgerClient;
use ledger_proto::pb::witness_client::WitnessClient;
use ledger_proto::pb::{GetConsistencyProofRequest, GetEntriesRequest, GetLatestRequest, QueryRequest};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// Longest wait to connect to a witness, and for its answer.
const WITNESS_TIMEOUT: Duration = Duration::from_secs(15);

/// Status codes that mean "could not ask" rather than "the node cannot prove it".
fn is_transport(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled | tonic::Code::Unknown
    )
}

/// The node's consistency proof from `old_size` to `new_size`, or its refusal in words.
///
/// # Errors
/// On transport failure.
async fn proof(client: &mut LedgerClient<Channel>, old_size: u64, new_size: u64) -> anyhow::Result<ProofAnswer> {
    let req = GetConsistencyProofRequest { old_size, new_size };
    match client.get_consistency_proof(req).await {
        Ok(r) => Ok(Ok(r.into_inner().hashes)),
        Err(s) if is_transport(s.code()) => Err(anyhow!("GetConsistencyProof: {} ({:?})", s.message(), s.code())),
        Err(s) => Ok(Err(format!("{} ({:?})", s.message(), s.code()))),
    }
}

/// The node's consistency proofs for the (old size, new size) pairs.
///
/// # Errors
/// On transport failure.
pub async fn proofs(client: &mut LedgerClient<Channel>, sizes: &[(u64, u64)]) -> anyhow::Result<Proofs> {
    let mut out = Proofs::new();
    for &(old, new) in sizes {
        out.insert((old, new), proof(client, old, new).await?);
    }
    Ok(out)
}

/// The node key of the charter the node serves as entry 0.
pub async fn charter_key(client: &mut LedgerClient<Channel>) -> anyhow::Result<Result<NoteVerifier, String>> {
    let mut stream = client
        .get_entries(GetEntriesRequest { start: 0, end: 1 })
        .await
        .map_err(|s| anyhow!("GetEntries 0: {} ({:?})", s.message(), s.code()))?
        .into_inner();
    let Some(e) = stream
        .message()
        .await
        .map_err(|s| anyhow!("GetEntries 0: {} ({:?})", s.message(), s.code()))?
    else {
        return Ok(Err("the node serves no entry 0".into()));
    };
    let entry = match Entry::decode(&e.leaf) {
        Ok(x) => x,
        Err(x) => return Ok(Err(format!("entry 0 does not decode: {x}"))),
    };
    let reg = match Registry::genesis(&entry) {
        Ok(r) => r,
        Err(x) => return Ok(Err(x.to_string())),
    };
    Ok(NoteVerifier::new(&reg.charter.origin, reg.node_key).map_err(|x| x.to_string()))
}

/// The witness keys enrolled in the registry the node serves (charter and key records, replayed
/// with the same rules as `replay`).
pub async fn enrolled_witnesses(client: &mut LedgerClient<Channel>) -> anyhow::Result<Vec<CosignatureVerifier>> {
    let mut stream = client
        .get_entries(GetEntriesRequest { start: 0, end: 1 })
        .await
        .map_err(|s| anyhow!("GetEntries 0: {}", s.message()))?
        .into_inner();
    let Some(e0) = stream
        .message()
        .await
        .map_err(|s| anyhow!("GetEntries 0: {}", s.message()))?
    else {
        return Ok(Vec::new());
    };
    let Ok(mut reg) = Entry::decode(&e0.leaf)
        .map_err(|e| e.to_string())
        .and_then(|e| Registry::genesis(&e).map_err(|e| e.to_string()))
    else {
        return Ok(Vec::new());
    };
    let mut entries = Vec::new();
    for kind in [
        "key.enroll",
        "key.rotate",
        "key.revoke",
        "node.rotate",
        "node.compromise",
    ] {
        let mut page_start = 0;
        loop {
            let r = match client
                .query(QueryRequest {
                    kind: kind.into(),
                    page_start,
                    limit: 1000,
                    with_entries: true,
                    ..Default::default()
                })
                .await
            {
                Ok(r) => r.into_inner(),
                Err(s) => {
                    // Cosignatures are then not counted (0 witnesses); give --witness-key instead.
                    eprintln!(
                        "ledger-verify: cannot list the enrolled witness keys ({kind}: {}); pass --witness-key to count cosignatures",
                        s.message()
                    );
                    return Ok(Vec::new());
                }
            };
            entries.extend(r.entries);
            if r.next_page_start == 0 {
                break;
            }
            page_start = r.next_page_start;
        }
    }
    entries.sort_by_key(|e| e.index);
    for e in entries {
        if let Ok(entry) = Entry::decode(&e.leaf) {
            // A key record the rules refuse is reported by `replay`; here it simply does not apply.
            let _ = ledger_core::state::fold_registry(&mut reg, &entry);
        }
    }
    Ok(reg.witnesses())
}

/// The latest checkpoint a witness cosigned for `origin`; `None` when it holds none (NOT_FOUND).
///
/// # Errors
/// When the witness cannot be reached or answers with another error.
pub async fn witness_latest(url: &str, origin: &str) -> anyhow::Result<Option<String>> {
    let channel = Endpoint::from_shared(url.to_string())
        .with_context(|| format!("--witness-url {url}"))?
        .connect_timeout(WITNESS_TIMEOUT)
        .timeout(WITNESS_TIMEOUT)
        .connect()
        .await
        .with_context(|| format!("cannot connect to the witness {url}"))?;
    match WitnessClient::new(channel)
        .get_latest(GetLatestRequest { origin: origin.into() })
        .await
    {
        Ok(r) => Ok(Some(r.into_inner().checkpoint)),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
        Err(s) => Err(anyhow!("witness {url}: GetLatest: {} ({:?})", s.message(), s.code())),
    }
}
