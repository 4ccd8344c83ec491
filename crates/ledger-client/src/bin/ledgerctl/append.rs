//! `ledgerctl append`, and the append-and-report step every appending command shares.

use super::{AppendOpts, checkpoint_json, hex_list, origin_of, parse_node_key, print_json, read_keys};
use anyhow::{Context as _, Result};
use ledger_client::client::{AppendOutcome, LedgerClient};
use ledger_client::{compact_json, sign_record_bytes_in};
use ledger_core::dsse::Envelope;
use ledger_core::time::rfc3339_micros;
use serde_json::{Value, json};
use std::io::Read as _;
use std::path::{Path, PathBuf};

/// Appends a record: a JSON payload of `kind`, signed by `keys`.
pub async fn append(
    kind: &str,
    payload: &Path,
    keys: &[PathBuf],
    opts: &AppendOpts,
    node: &str,
    origin: Option<String>,
    json_out: bool,
) -> Result<()> {
    let bytes = read_payload(payload)?;
    let keys = read_keys(keys)?;
    let client = LedgerClient::connect(node).await?;
    let origin = origin_of(&client, origin).await?;
    let env = sign_record_bytes_in(kind, Some(&origin), bytes, &keys.iter().collect::<Vec<_>>());
    append_and_report(&client, &env, opts, json_out, json!({})).await
}

fn read_payload(path: &Path) -> Result<Vec<u8>> {
    let raw = if path.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::stdin()
            .read_to_end(&mut b)
            .context("reading the payload from stdin")?;
        b
    } else {
        std::fs::read(path).with_context(|| format!("reading payload file {}", path.display()))?
    };
    compact_json(&raw).with_context(|| format!("payload file {} is not JSON", path.display()))
}

/// Appends a signed envelope and reports the outcome (verified against a signed checkpoint when
/// `opts` names the node key).
pub async fn append_and_report(
    client: &LedgerClient,
    env: &Envelope,
    opts: &AppendOpts,
    json_out: bool,
    extra: Value,
) -> Result<()> {
    let verifier = opts.node_key.as_deref().map(parse_node_key).transpose()?;
    let wait = opts.wait || verifier.is_some();
    let out: AppendOutcome = client.append(env, opts.request_id.clone(), wait).await?;
    let verified = match &verifier {
        Some(v) => Some(client.confirm_appended(&out, env, v).await?),
        None => None,
    };
    if json_out {
        let mut v = json!({
            "index": out.index,
            "leaf_hash": out.leaf_hash.to_hex(),
            "timestamp_micros": out.timestamp_micros,
            "time": rfc3339_micros(out.timestamp_micros),
            "duplicate": out.duplicate,
            "request_id": out.request_id,
            "payload_type": env.payload_type,
            "signers": env.signatures.iter().map(|s| s.keyid.clone()).collect::<Vec<_>>(),
            "checkpoint": out.checkpoint,
            "inclusion_proof": hex_list(&out.inclusion_proof),
            "verified_checkpoint": verified.as_ref().map(checkpoint_json),
        });
        if let (Some(obj), Value::Object(extra)) = (v.as_object_mut(), extra) {
            obj.extend(extra);
        }
        print_json(&v);
    } else {
        println!(
            "appended entry {} at {}{}",
            out.index,
            rfc3339_micros(out.timestamp_micros),
            if out.duplicate {
                " (duplicate: this request id was already sequenced)"
            } else {
                ""
            }
        );
        println!("leaf hash:  {}", out.leaf_hash);
        println!("request id: {}", out.request_id);
        if let Value::Object(extra) = extra {
            for (k, v) in extra {
                println!("{k}: {}", v.as_str().map_or_else(|| v.to_string(), str::to_string));
            }
        }
        if let Some(cp) = &verified {
            println!(
                "verified: included in checkpoint of size {} (root {}) signed by {}",
                cp.size, cp.root, cp.origin
            );
        } else if let Some(note) = &out.checkpoint {
            println!(
                "inclusion proof ({} hashes, not verified; pass --node-key to verify):",
                out.inclusion_proof.len()
            );
            for h in &out.inclusion_proof {
                println!("  {h}");
            }
            println!("checkpoint:\n{note}");
        }
    }
    Ok(())
}
