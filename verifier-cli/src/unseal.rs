//! `ledger-verify unseal` (a court opens a complaint's sealed identity with the escrow key) and
//! `ledger-verify check-opening` (anyone checks that opening against the ledger, without the key).
//! Formats and bytes: docs/ballots.md.

use crate::prepare::Item;
use crate::source::Source;
use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ledger_core::domain::{Complaint, Record, check_record};
use ledger_core::entry::Entry;
use ledger_core::hash::leaf_hash;
use ledger_core::registry::envelope_kind;
use ledger_core::seal::{EscrowSecretKey, Opening, unseal};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// An opening as printed by `unseal` and read by `check-opening`: which entry, its leaf hash (to
/// match a court bundle's inclusion proof), the complaint, its commitment, and the opening.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpeningFile {
    /// Always 1.
    pub version: u32,
    /// Log origin is not repeated here; the entry is named by its index and leaf hash.
    pub index: u64,
    /// Hex RFC 9162 leaf hash of the entry.
    pub leaf_hash: String,
    /// Complaint id.
    pub complaint_id: String,
    /// Hex commitment SHA-256(salt ‖ identity) as recorded.
    pub commitment: String,
    /// The complainant's identity.
    pub identity: String,
    /// Hex of the 32-byte salt.
    pub salt: String,
}

/// Reads entry `index` from a source (stops there).
///
/// # Errors
/// When the source fails or has no such entry.
pub fn fetch_entry(source: &mut dyn Source, index: u64) -> anyhow::Result<(Entry, String)> {
    let mut found: Option<Vec<u8>> = None;
    let mut n = 0u64;
    source.run(&mut |item| {
        if let Item::Entry(e) = item {
            // Entries come in log order; an export stream carries no positions, so count them.
            let at = e.position.unwrap_or(n);
            n += 1;
            if at == index {
                found = Some(e.bytes);
                return false;
            }
        }
        true
    })?;
    let bytes = found.ok_or_else(|| anyhow!("the log has no entry {index}"))?;
    let entry = Entry::decode(&bytes).with_context(|| format!("entry {index} does not decode"))?;
    if entry.index != index {
        bail!("entry at position {index} claims index {}", entry.index);
    }
    Ok((entry, leaf_hash(&bytes).to_hex()))
}

fn complaint_of(entry: &Entry) -> anyhow::Result<Complaint> {
    let kind = envelope_kind(&entry.envelope)?;
    if kind != "complaint" {
        bail!("entry {} is a {kind}, not a complaint", entry.index);
    }
    match check_record(kind, &entry.envelope.payload).map_err(|e| anyhow!("entry {}: {e}", entry.index))? {
        Record::Complaint(c) => Ok(c),
        _ => bail!("entry {} is not a complaint", entry.index),
    }
}

/// Reads an escrow secret key file: standard base64 of the 32-byte X25519 secret key.
///
/// # Errors
/// When the file cannot be read or is not base64 of 32 bytes.
pub fn read_escrow_key(path: &Path) -> anyhow::Result<EscrowSecretKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let b: [u8; 32] = B64
        .decode(text.trim())
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| {
            anyhow!(
                "{}: expected standard base64 of a 32-byte X25519 secret key",
                path.display()
            )
        })?;
    Ok(EscrowSecretKey::from_bytes(b))
}

/// Opens the sealed identity of the complaint at `index`.
///
/// # Errors
/// When the entry is not a sealed complaint, or the key does not open it.
pub fn unseal_entry(source: &mut dyn Source, key: &EscrowSecretKey, index: u64) -> anyhow::Result<OpeningFile> {
    let (entry, lh) = fetch_entry(source, index)?;
    let c = complaint_of(&entry)?;
    let sealed = c
        .sealed_identity
        .as_ref()
        .ok_or_else(|| anyhow!("complaint {} (entry {index}) has no sealed identity", c.complaint_id))?;
    let o = unseal(key, &c.complaint_id, sealed).map_err(|e| {
        anyhow!(
            "cannot open complaint {} (entry {index}) with this key: {e} (sealed to escrow {:?})",
            c.complaint_id,
            sealed.escrow_id
        )
    })?;
    Ok(OpeningFile {
        version: 1,
        index,
        leaf_hash: lh,
        complaint_id: c.complaint_id,
        commitment: sealed.commitment.clone(),
        identity: o.identity,
        salt: o.salt,
    })
}

/// Checks an opening against the complaint the ledger holds at its index: same leaf hash, same
/// complaint, and SHA-256(salt ‖ identity) equal to the recorded commitment.
///
/// # Errors
/// What does not match.
pub fn check_opening(source: &mut dyn Source, o: &OpeningFile) -> anyhow::Result<()> {
    let (entry, lh) = fetch_entry(source, o.index)?;
    if lh != o.leaf_hash {
        bail!(
            "entry {} has leaf hash {lh}, the opening names {}: not the same record",
            o.index,
            o.leaf_hash
        );
    }
    let c = complaint_of(&entry)?;
    if c.complaint_id != o.complaint_id {
        bail!(
            "entry {} is complaint {}, not {}",
            o.index,
            c.complaint_id,
            o.complaint_id
        );
    }
    let sealed = c
        .sealed_identity
        .ok_or_else(|| anyhow!("complaint {} has no sealed identity", c.complaint_id))?;
    if sealed.commitment != o.commitment {
        bail!(
            "the recorded commitment is {}, the opening names {}",
            sealed.commitment,
            o.commitment
        );
    }
    Opening {
        identity: o.identity.clone(),
        salt: o.salt.clone(),
    }
    .verify(&sealed.commitment)
    .map_err(|e| anyhow!("the opening does not match the recorded commitment: {e}"))
}
