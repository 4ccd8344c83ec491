//! Reading commands: `get`, `checkpoint`, `proof`.

use super::{checkpoint_json, hex_list, parse_node_key, print_json};
use anyhow::Result;
use ledger_client::ClientError;
use ledger_client::client::{InclusionProof, LedgerClient};
use ledger_client::verify::{open_note, verify_inclusion_in_note};
use ledger_core::checkpoint::Checkpoint;
use ledger_core::hash::Hash;
use ledger_core::note::{Note, NoteVerifier};
use ledger_core::registry::kind_of;
use ledger_core::time::rfc3339_micros;
use serde_json::{Value, json};

/// Prints an entry (its leaf hash is checked against its bytes).
pub async fn get(index: u64, node: &str, json_out: bool) -> Result<()> {
    let client = LedgerClient::connect(node).await?;
    let e = client.get_entry(index).await?;
    let env = &e.envelope;
    let signers: Vec<String> = env.signatures.iter().map(|s| s.keyid.clone()).collect();
    let text = String::from_utf8_lossy(&env.payload);
    if json_out {
        print_json(&json!({
            "index": e.index,
            "timestamp_micros": e.timestamp_micros,
            "time": rfc3339_micros(e.timestamp_micros),
            "payload_type": env.payload_type,
            "kind": kind_of(&env.payload_type),
            "signers": signers,
            "leaf_hash": e.leaf_hash().to_hex(),
            "prev_root": e.prev_root.to_hex(),
            "payload": serde_json::from_slice::<Value>(&env.payload).ok(),
            "payload_text": text,
            "envelope": serde_json::from_str::<Value>(&env.to_json()).ok(),
        }));
    } else {
        println!("index:        {}", e.index);
        println!(
            "time:         {} ({} µs)",
            rfc3339_micros(e.timestamp_micros),
            e.timestamp_micros
        );
        println!("payload type: {}", env.payload_type);
        for (i, s) in signers.iter().enumerate() {
            println!("{}{s}", if i == 0 { "signers:      " } else { "              " });
        }
        println!("leaf hash:    {}", e.leaf_hash());
        println!("prev root:    {}", e.prev_root);
        println!("payload:\n{text}");
    }
    Ok(())
}

/// Prints a signed checkpoint note, verified when given the node key.
pub async fn checkpoint(size: Option<u64>, node_key: Option<&str>, node: &str, json_out: bool) -> Result<()> {
    let verifier = node_key.map(parse_node_key).transpose()?;
    let client = LedgerClient::connect(node).await?;
    let note = client.checkpoint(size).await?;
    let verified = verifier.as_ref().map(|v| open_note(&note, v)).transpose()?;
    if let (Some(want), Some(cp)) = (size, &verified)
        && cp.size != want
    {
        return Err(
            ClientError::Malformed(format!("asked for the checkpoint of size {want}, got size {}", cp.size)).into(),
        );
    }
    if json_out {
        // Without a node key, size and root are read from the note unverified.
        let body = verified.clone().or_else(|| {
            Note::parse(&note)
                .ok()
                .and_then(|n| Checkpoint::from_body(&n.text).ok())
        });
        print_json(&json!({
            "note": note,
            "checkpoint": body.as_ref().map(checkpoint_json),
            "verified": verified.is_some(),
        }));
    } else {
        print!("{note}");
        if let Some(cp) = verified {
            eprintln!("verified: signed by {} (size {}, root {})", cp.origin, cp.size, cp.root);
        }
    }
    Ok(())
}

/// Prints the inclusion proof of an entry, verified when given the node key.
pub async fn proof(index: u64, size: Option<u64>, node_key: Option<&str>, node: &str, json_out: bool) -> Result<()> {
    let verifier = node_key.map(parse_node_key).transpose()?;
    let client = LedgerClient::connect(node).await?;
    let p = client.inclusion_proof(index, size).await?;
    if p.index != index || size.is_some_and(|s| s != p.tree_size) {
        return Err(ClientError::Malformed(format!(
            "asked for the proof of entry {index} in size {}, got entry {} in size {}",
            size.map_or_else(|| "latest".to_string(), |s| s.to_string()),
            p.index,
            p.tree_size
        ))
        .into());
    }
    let (leaf, verified) = match &verifier {
        Some(v) => {
            let (lh, cp) = verify_proof(&client, index, &p, v).await?;
            (Some(lh), Some(cp))
        }
        None => (None, None),
    };
    if json_out {
        print_json(&json!({
            "index": p.index,
            "tree_size": p.tree_size,
            "hashes": hex_list(&p.hashes),
            "checkpoint": p.checkpoint,
            "leaf_hash": leaf.map(|h| h.to_hex()),
            "verified_checkpoint": verified.as_ref().map(checkpoint_json),
        }));
    } else {
        println!("inclusion proof of entry {} in tree of size {}:", p.index, p.tree_size);
        for h in &p.hashes {
            println!("  {h}");
        }
        if let (Some(cp), Some(lh)) = (verified, leaf) {
            println!(
                "verified: leaf {lh} is entry {index} of the tree of size {} (root {}) signed by {}",
                cp.size, cp.root, cp.origin
            );
        }
    }
    Ok(())
}

/// Verifies the proof of entry `index` against the checkpoint of its size signed by `v`, and the
/// entry's link to it; the entry's leaf hash and the checkpoint.
async fn verify_proof(
    client: &LedgerClient,
    index: u64,
    p: &InclusionProof,
    v: &NoteVerifier,
) -> Result<(Hash, Checkpoint)> {
    let entry = client.get_entry(index).await?;
    let note = match &p.checkpoint {
        Some(n) => n.clone(),
        None => client.checkpoint(Some(p.tree_size)).await?,
    };
    let lh = entry.leaf_hash();
    let cp = verify_inclusion_in_note(index, &lh, &p.hashes, &note, v)?;
    if cp.size != p.tree_size {
        return Err(ClientError::Malformed(format!(
            "proof is for size {}, the checkpoint has size {}",
            p.tree_size, cp.size
        ))
        .into());
    }
    client.check_prev_root(&entry, &cp).await?;
    Ok((lh, cp))
}
