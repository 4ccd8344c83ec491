//! `ledgerctl`: generate keys, enroll and revoke keys, append signed records, and read entries,
//! checkpoints and proofs from a ledger node, verifying them against the node key when given one.
//!
//! Exit status: 0 on success, 1 on a local error (bad arguments, unreadable files, no connection),
//! 2 on a usage error, 3 when the node refused the request (its gRPC code and message are printed),
//! 4 when something the node sent failed verification.

use anyhow::{Context as _, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use ed25519_dalek::SigningKey;
use ledger_client::client::{AppendOutcome, LedgerClient};
use ledger_client::error::code_name;
use ledger_client::verify::{open_note, verify_inclusion_in_note};
use ledger_client::{
    ClientError, compact_json, read_signing_key, sign_record_bytes_in, sign_record_json_in, write_key_pair,
};
use ledger_core::checkpoint::Checkpoint;
use ledger_core::dsse::Envelope;
use ledger_core::keys::{key_id, public_key_from_base64, public_key_to_base64};
use ledger_core::note::{Note, NoteVerifier};
use ledger_core::registry::{KeyEnroll, KeyRevoke, Role, Scope, kind_of};
use serde_json::{Value, json};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[path = "ledgerctl/election.rs"]
mod election;
#[path = "ledgerctl/micro.rs"]
mod micro;

/// Command line client of a ledger node.
#[derive(Debug, Parser)]
#[command(name = "ledgerctl", version, propagate_version = true)]
struct Cli {
    /// Node gRPC URL.
    #[arg(long, global = true, env = "LEDGER_NODE", default_value = "http://127.0.0.1:50051")]
    node: String,
    /// Machine-readable JSON output (errors as JSON on stderr).
    #[arg(long, global = true)]
    json: bool,
    /// Origin of the log that records are signed for (bound into their payload type); learned
    /// from the node's checkpoint when not given.
    #[arg(long, global = true, env = "LEDGER_ORIGIN")]
    origin: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Options shared by every command that appends a record.
#[derive(Debug, Args)]
struct AppendOpts {
    /// Idempotency key; retries reuse it (random when not given).
    #[arg(long)]
    request_id: Option<String>,
    /// Wait until a signed checkpoint covers the entry, and print it with the inclusion proof.
    #[arg(long)]
    wait: bool,
    /// Node checkpoint key `name+hash+base64`: verify the appended entry against a checkpoint
    /// signed by it (implies --wait).
    #[arg(long, value_name = "VKEY")]
    node_key: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the demo against a node: an honest evaluation cycle with an anonymous election, the
    /// manipulations the policy essay describes, then the retrospective review of both cadres.
    Demo {
        /// The node's administrator key (from `ledger-node init`, or the development key).
        #[arg(long, value_name = "FILE", default_value = "ledger-data/keys/admin.key")]
        admin_key: PathBuf,
    },
    /// Generate an Ed25519 key: FILE (secret seed, mode 0600) and FILE.pub; never overwrites.
    Keygen {
        /// Secret key file to create.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Generate an escrow (court) X25519 key pair for sealed complainant identities: secret key
    /// file (mode 0600) and FILE.pub; prints the public key for the `escrow.key` record.
    EscrowKeygen {
        /// Secret key file to create.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Enroll a key (key.enroll record signed by the given administrator keys).
    Enroll {
        /// Administrator key file (repeat, or list several, for a quorum).
        #[arg(long = "admin-key", value_name = "FILE", required = true, num_args = 1..)]
        admin_keys: Vec<PathBuf>,
        /// Public key to enroll, standard base64 of 32 bytes (or @FILE to read a .pub file).
        #[arg(long, value_name = "B64")]
        pubkey: String,
        /// Holder's name.
        #[arg(long)]
        name: String,
        /// Roles granted (repeat, list, or comma-separate): admin, node, registrar, nominator,
        /// data-source, service-platform, credential-issuer, committee-member, inspector, witness.
        #[arg(long = "role", value_name = "ROLE", required = true, num_args = 1.., value_delimiter = ',', value_parser = parse_role)]
        roles: Vec<Role>,
        /// Organization the key acts for.
        #[arg(long)]
        organization: Option<String>,
        /// Record kinds the key may sign (default: every kind its roles allow).
        #[arg(long = "kind", value_name = "KIND", num_args = 1.., value_delimiter = ',')]
        kinds: Vec<String>,
        /// Witness role only: the witness's ML-DSA-44 cosignature key, standard base64 of its
        /// 1312 bytes (or @FILE: the witness's `witness.mldsa44.pub`).
        #[arg(long = "mldsa44-key", value_name = "B64")]
        mldsa44_key: Option<String>,
        #[command(flatten)]
        opts: AppendOpts,
    },
    /// Revoke a key (key.revoke record signed by the given administrator keys).
    Revoke {
        /// Administrator key file (repeat, or list several, for a quorum).
        #[arg(long = "admin-key", value_name = "FILE", required = true, num_args = 1..)]
        admin_keys: Vec<PathBuf>,
        /// Key id (64 hex digits) of the key to revoke.
        #[arg(long)]
        keyid: String,
        /// Why.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        opts: AppendOpts,
    },
    /// Append a record: a JSON payload of some kind, signed by the given keys.
    Append {
        /// Record kind, e.g. `nomination` (payload type application/vnd.ledger.<kind>.v1+json; log="<origin>").
        #[arg(long)]
        kind: String,
        /// JSON payload file (`-` for stdin); re-serialized compactly before signing.
        #[arg(long, value_name = "FILE.json")]
        payload: PathBuf,
        /// Signing key file (repeat, or list several, for several signatures).
        #[arg(long = "key", value_name = "KEYFILE", required = true, num_args = 1..)]
        keys: Vec<PathBuf>,
        #[command(flatten)]
        opts: AppendOpts,
    },
    /// Print an entry (its leaf hash is checked against its bytes).
    Get {
        /// Entry index.
        index: u64,
    },
    /// Print a signed checkpoint note.
    Checkpoint {
        /// Tree size (default: the latest).
        #[arg(long)]
        size: Option<u64>,
        /// Node checkpoint key `name+hash+base64`: verify the note's signature.
        #[arg(long, value_name = "VKEY")]
        node_key: Option<String>,
    },
    /// Elections (registrar): open one for the evaluators of a draw.
    Election {
        #[command(subcommand)]
        cmd: election::ElectionCmd,
    },
    /// Blind ballot credentials: request and finalize (evaluator), issue (registrar).
    Credential {
        #[command(subcommand)]
        cmd: election::CredentialCmd,
    },
    /// Anonymous ballots: cast one with a credential, check a receipt.
    Ballot {
        #[command(subcommand)]
        cmd: election::BallotCmd,
    },
    /// Micro-evaluations (service platform): send a file of ratings, resumably.
    Micro {
        #[command(subcommand)]
        cmd: micro::MicroCmd,
    },
    /// Print the inclusion proof of an entry, and verify it when given the node key.
    Proof {
        /// Entry index.
        index: u64,
        /// Tree size (default: the latest checkpoint's).
        #[arg(long)]
        size: Option<u64>,
        /// Node checkpoint key `name+hash+base64`: verify the proof against the signed checkpoint.
        #[arg(long, value_name = "VKEY")]
        node_key: Option<String>,
    },
}

/// The origin records are bound to: `--origin`, or the node's (first line of its checkpoint).
async fn origin_of(client: &LedgerClient, given: Option<String>) -> Result<String> {
    match given {
        Some(o) if ledger_core::registry::origin_bindable(&o) => Ok(o),
        Some(o) => bail!(
            "--origin {o:?} cannot be bound: it must be non-empty without '\"', '\\', control characters or whitespace"
        ),
        None => Ok(client.origin().await?),
    }
}

fn parse_role(s: &str) -> Result<Role, String> {
    serde_json::from_value(Value::String(s.trim().to_string())).map_err(|_| {
        format!(
            "unknown role {s:?}; roles: admin, node, registrar, nominator, data-source, service-platform, \
             credential-issuer, committee-member, inspector, witness"
        )
    })
}

fn parse_node_key(s: &str) -> Result<NoteVerifier> {
    NoteVerifier::parse(s.trim()).with_context(|| "invalid --node-key (expected name+hash+base64)".to_string())
}

fn read_keys(paths: &[PathBuf]) -> Result<Vec<SigningKey>> {
    paths.iter().map(|p| Ok(read_signing_key(p)?)).collect()
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

use ledger_core::time::rfc3339_micros;

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn hex_list(h: &[ledger_core::hash::Hash]) -> Vec<String> {
    h.iter().map(|x| x.to_hex()).collect()
}

fn checkpoint_json(cp: &Checkpoint) -> Value {
    json!({"origin": cp.origin, "size": cp.size, "root": cp.root.to_hex()})
}

async fn append_and_report(
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

async fn run(cli: Cli) -> Result<()> {
    let json_out = cli.json;
    match cli.cmd {
        Cmd::Demo { admin_key } => {
            let admin = read_signing_key(&admin_key)?;
            let client = LedgerClient::connect(&cli.node).await?;
            ledger_client::demo::run(&client, &admin).await?;
            let verify = std::env::current_exe()?.with_file_name("ledger-verify");
            // The honest cadre's review shows the election's tally, the other one the flags.
            for subject in [ledger_client::demo::HONEST, ledger_client::demo::MANIPULATED] {
                if verify.exists() {
                    println!("\n$ ledger-verify review --node {} --subject {subject}", cli.node);
                    let _ = std::process::Command::new(&verify)
                        .args(["review", "--node", &cli.node, "--subject", subject])
                        .status();
                } else {
                    println!(
                        "\nNow run: ledger-verify review --node {} --subject {subject}",
                        cli.node
                    );
                }
            }
            Ok(())
        }
        Cmd::EscrowKeygen { out } => {
            let pk = ledger_client::keyfile::write_escrow_key(&out)?;
            if json_out {
                print_json(&json!({"public_key": pk, "key_file": out.display().to_string()}));
            } else {
                println!("escrow public key: {pk}");
                println!("wrote {} (secret, mode 0600) and its .pub", out.display());
            }
            Ok(())
        }
        Cmd::Keygen { out } => {
            let key = SigningKey::generate(&mut rand::rng());
            let pub_path = write_key_pair(&out, &key)?;
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
        Cmd::Enroll {
            admin_keys,
            pubkey,
            name,
            roles,
            organization,
            kinds,
            mldsa44_key,
            opts,
        } => {
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
            let client = LedgerClient::connect(&cli.node).await?;
            let origin = origin_of(&client, cli.origin).await?;
            let env = sign_record_json_in("key.enroll", Some(&origin), &record, &keys.iter().collect::<Vec<_>>())?;
            append_and_report(&client, &env, &opts, json_out, json!({"enrolled_keyid": key_id(&vk)})).await
        }
        Cmd::Revoke {
            admin_keys,
            keyid,
            reason,
            opts,
        } => {
            let keyid = keyid.trim().to_ascii_lowercase();
            if keyid.len() != 64 || !keyid.bytes().all(|c| c.is_ascii_hexdigit()) {
                bail!("--keyid must be 64 hex digits (SHA-256 of the public key)");
            }
            let keys = read_keys(&admin_keys)?;
            let record = KeyRevoke {
                version: 1,
                keyid: keyid.clone(),
                reason,
            };
            let client = LedgerClient::connect(&cli.node).await?;
            let origin = origin_of(&client, cli.origin).await?;
            let env = sign_record_json_in("key.revoke", Some(&origin), &record, &keys.iter().collect::<Vec<_>>())?;
            append_and_report(&client, &env, &opts, json_out, json!({"revoked_keyid": keyid})).await
        }
        Cmd::Append {
            kind,
            payload,
            keys,
            opts,
        } => {
            let bytes = read_payload(&payload)?;
            let keys = read_keys(&keys)?;
            let client = LedgerClient::connect(&cli.node).await?;
            let origin = origin_of(&client, cli.origin).await?;
            let env = sign_record_bytes_in(&kind, Some(&origin), bytes, &keys.iter().collect::<Vec<_>>());
            append_and_report(&client, &env, &opts, json_out, json!({})).await
        }
        Cmd::Get { index } => {
            let client = LedgerClient::connect(&cli.node).await?;
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
        Cmd::Checkpoint { size, node_key } => {
            let verifier = node_key.as_deref().map(parse_node_key).transpose()?;
            let client = LedgerClient::connect(&cli.node).await?;
            let note = client.checkpoint(size).await?;
            let verified = verifier.as_ref().map(|v| open_note(&note, v)).transpose()?;
            if let (Some(want), Some(cp)) = (size, &verified)
                && cp.size != want
            {
                return Err(ClientError::Malformed(format!(
                    "asked for the checkpoint of size {want}, got size {}",
                    cp.size
                ))
                .into());
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
        Cmd::Election { cmd } => election::election(cmd, &cli.node, cli.origin, json_out).await,
        Cmd::Credential { cmd } => election::credential(cmd, &cli.node, cli.origin, json_out).await,
        Cmd::Ballot { cmd } => election::ballot(cmd, &cli.node, cli.origin, json_out).await,
        Cmd::Micro { cmd } => micro::micro(cmd, &cli.node, cli.origin, json_out).await,
        Cmd::Proof { index, size, node_key } => {
            let verifier = node_key.as_deref().map(parse_node_key).transpose()?;
            let client = LedgerClient::connect(&cli.node).await?;
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
            let mut verified = None;
            let mut leaf = None;
            if let Some(v) = &verifier {
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
                leaf = Some(lh);
                verified = Some(cp);
            }
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
    }
}

fn exit_code(e: &anyhow::Error) -> (u8, &'static str, Option<&'static str>) {
    match e.downcast_ref::<ClientError>() {
        Some(ce) if ce.is_node_refusal() => (3, "node_refused", ce.code().map(code_name)),
        Some(ce) if ce.is_verification_failure() => (4, "verification_failed", None),
        _ => (1, "error", None),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json_out = cli.json;
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow!("cannot start the async runtime: {e}"))
        .and_then(|rt| rt.block_on(run(cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let (code, kind, grpc) = exit_code(&e);
            if json_out {
                let v = json!({"error": format!("{e:#}"), "kind": kind, "grpc_code": grpc});
                eprintln!("{}", serde_json::to_string(&v).unwrap_or_default());
            } else {
                eprintln!("ledgerctl: {e:#}");
            }
            ExitCode::from(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(rfc3339_micros(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339_micros(1_700_000_000_000_001), "2023-11-14T22:13:20.000001Z");
        assert_eq!(rfc3339_micros(951_782_400_000_000), "2000-02-29T00:00:00.000000Z");
        assert_eq!(rfc3339_micros(4_102_444_799_999_999), "2099-12-31T23:59:59.999999Z");
    }

    #[test]
    fn roles_parse() {
        assert_eq!(parse_role("data-source"), Ok(Role::DataSource));
        assert!(parse_role("root").is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
