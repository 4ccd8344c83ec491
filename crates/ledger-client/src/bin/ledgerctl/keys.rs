//! Key commands: `keygen`, `escrow-keygen`, `enroll`, `revoke`, `node rotate|compromise`.

use super::append::append_and_report;
use super::{AppendOpts, origin_of, print_json, read_keys};
use anyhow::{Context as _, Result, bail};
use ed25519_dalek::SigningKey;
use ledger_client::{LedgerClient, sign_record_json_in, write_key_pair};
use ledger_core::keys::{key_id, public_key_from_base64, public_key_to_base64};
use ledger_core::registry::{KeyEnroll, KeyRevoke, NodeCompromise, NodeRotate, Role, Scope};
use serde_json::json;
use std::path::{Path, PathBuf};

/// Generates an Ed25519 key pair.
pub fn keygen(out: &Path, json_out: bool) -> Result<()> {
    let key = SigningKey::generate(&mut rand::rng());
    let pub_path = write_key_pair(out, &key)?;
    let vk = key.verifying_key();
    if json_out {
        print_json(&json!({
            "keyid": key_id(&vk),
            "public_key": public_key_to_base64(&vk),
            "key_file": out.display().to_string(),
            "public_key_file": pub_path.display().to_string(),
        }));
    } else {
        println!("key id:     {}", key_id(&vk));
        println!("public key: {}", public_key_to_base64(&vk));
        println!("wrote {} (secret, mode 0600) and {}", out.display(), pub_path.display());
    }
    Ok(())
}

/// Generates an escrow (court) X25519 key pair.
pub fn escrow_keygen(out: &Path, json_out: bool) -> Result<()> {
    let pk = ledger_client::keyfile::write_escrow_key(out)?;
    if json_out {
        print_json(&json!({"public_key": pk, "key_file": out.display().to_string()}));
    } else {
        println!("escrow public key: {pk}");
        println!("wrote {} (secret, mode 0600) and its .pub", out.display());
    }
    Ok(())
}

/// What `enroll` enrolls: the key and its holder.
pub struct EnrollRequest {
    /// Administrator key files that sign the record.
    pub admin_keys: Vec<PathBuf>,
    /// Public key (base64, or @FILE).
    pub pubkey: String,
    /// Holder's name.
    pub name: String,
    /// Roles granted.
    pub roles: Vec<Role>,
    /// Organization the key acts for.
    pub organization: Option<String>,
    /// Record kinds the key may sign.
    pub kinds: Vec<String>,
    /// A witness's ML-DSA-44 cosignature key (base64, or @FILE).
    pub mldsa44_key: Option<String>,
}

/// Enrolls a key (`key.enroll`).
pub async fn enroll(
    req: EnrollRequest,
    opts: &AppendOpts,
    node: &str,
    origin: Option<String>,
    json_out: bool,
) -> Result<()> {
    let EnrollRequest {
        admin_keys,
        pubkey,
        name,
        roles,
        organization,
        kinds,
        mldsa44_key,
    } = req;
    let pubkey = match pubkey.strip_prefix('@') {
        Some(file) => std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?,
        None => pubkey,
    };
    let mldsa44_key = match mldsa44_key {
        Some(k) => Some(match k.strip_prefix('@') {
            Some(file) => std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?,
            None => k,
        }),
        None => None,
    }
    .map(|k| k.trim().to_string());
    let vk = public_key_from_base64(pubkey.trim()).context("--pubkey")?;
    let keys = read_keys(&admin_keys)?;
    let record = KeyEnroll {
        version: 1,
        name,
        key: public_key_to_base64(&vk),
        roles,
        scope: Scope {
            organization: organization.unwrap_or_default(),
            kinds,
        },
        mldsa44_key,
    };
    let client = LedgerClient::connect(node).await?;
    let origin = origin_of(&client, origin).await?;
    let env = sign_record_json_in("key.enroll", Some(&origin), &record, &keys.iter().collect::<Vec<_>>())?;
    append_and_report(&client, &env, opts, json_out, json!({"enrolled_keyid": key_id(&vk)})).await
}

/// Revokes a key (`key.revoke`).
pub async fn revoke(
    admin_keys: &[PathBuf],
    keyid: &str,
    reason: String,
    opts: &AppendOpts,
    node: &str,
    origin: Option<String>,
    json_out: bool,
) -> Result<()> {
    let keyid = keyid.trim().to_ascii_lowercase();
    if keyid.len() != 64 || !keyid.bytes().all(|c| c.is_ascii_hexdigit()) {
        bail!("--keyid must be 64 hex digits (SHA-256 of the public key)");
    }
    let keys = read_keys(admin_keys)?;
    let record = KeyRevoke {
        version: 1,
        keyid: keyid.clone(),
        reason,
    };
    let client = LedgerClient::connect(node).await?;
    let origin = origin_of(&client, origin).await?;
    let env = sign_record_json_in("key.revoke", Some(&origin), &record, &keys.iter().collect::<Vec<_>>())?;
    append_and_report(&client, &env, opts, json_out, json!({"revoked_keyid": keyid})).await
}

/// The node key records (docs/registry.md, "Node key lifecycle"; docs/operations.md).
#[derive(Debug, clap::Subcommand)]
pub enum NodeCmd {
    /// Planned rotation: a `node.rotate` to NEW_KEY signed by the administrator keys; the node
    /// co-signs it when it holds NEW_KEY (`serve --next-node-key`).
    Rotate {
        /// Administrator key file (repeat, or list several, for the quorum).
        #[arg(long = "admin-key", value_name = "FILE", required = true, num_args = 1..)]
        admin_keys: Vec<PathBuf>,
        /// The new node public key, standard base64 of 32 bytes (or @FILE: its .pub file).
        #[arg(long, value_name = "B64")]
        new_key: String,
        /// Why.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        opts: AppendOpts,
    },
    /// Compromise declaration: a `node.compromise` of KEYID as of AS_OF handing the node role to
    /// NEW_KEY, signed by the administrator keys alone.
    Compromise {
        /// Administrator key file (repeat, or list several, for the quorum).
        #[arg(long = "admin-key", value_name = "FILE", required = true, num_args = 1..)]
        admin_keys: Vec<PathBuf>,
        /// Key id (64 hex digits) of the compromised node key.
        #[arg(long)]
        keyid: String,
        /// First index whose signatures by the key are no longer trusted.
        #[arg(long)]
        as_of: u64,
        /// The new node public key, standard base64 of 32 bytes (or @FILE: its .pub file).
        #[arg(long, value_name = "B64")]
        new_key: String,
        /// Why.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        opts: AppendOpts,
    },
}

/// A public key given as base64 or @FILE.
fn public_key_arg(arg: &str, what: &str) -> Result<ed25519_dalek::VerifyingKey> {
    let text = match arg.strip_prefix('@') {
        Some(file) => std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?,
        None => arg.to_string(),
    };
    public_key_from_base64(text.trim()).with_context(|| what.to_string())
}

/// Builds, signs with the administrator keys and appends a `node.rotate` or `node.compromise`.
pub async fn node(cmd: NodeCmd, node: &str, origin: Option<String>, json_out: bool) -> Result<()> {
    let (kind, payload, admin_keys, opts, new) = match cmd {
        NodeCmd::Rotate {
            admin_keys,
            new_key,
            reason,
            opts,
        } => {
            let new = public_key_arg(&new_key, "--new-key")?;
            let r = NodeRotate {
                version: 1,
                new_key: public_key_to_base64(&new),
                reason,
            };
            ("node.rotate", serde_json::to_value(r)?, admin_keys, opts, new)
        }
        NodeCmd::Compromise {
            admin_keys,
            keyid,
            as_of,
            new_key,
            reason,
            opts,
        } => {
            let keyid = keyid.trim().to_ascii_lowercase();
            if keyid.len() != 64 || !keyid.bytes().all(|c| c.is_ascii_hexdigit()) {
                bail!("--keyid must be 64 hex digits (SHA-256 of the public key)");
            }
            let new = public_key_arg(&new_key, "--new-key")?;
            let r = NodeCompromise {
                version: 1,
                keyid,
                as_of,
                new_key: public_key_to_base64(&new),
                reason,
            };
            ("node.compromise", serde_json::to_value(r)?, admin_keys, opts, new)
        }
    };
    let keys = read_keys(&admin_keys)?;
    let client = LedgerClient::connect(node).await?;
    let origin = origin_of(&client, origin).await?;
    let env = sign_record_json_in(kind, Some(&origin), &payload, &keys.iter().collect::<Vec<_>>())?;
    append_and_report(&client, &env, &opts, json_out, json!({"new_node_keyid": key_id(&new)})).await
}
