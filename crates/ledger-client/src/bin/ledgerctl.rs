//! `ledgerctl`: generate keys, enroll and revoke keys, append signed records, and read entries,
//! checkpoints and proofs from a ledger node, verifying them against the node key when given one.
//!
//! Exit status: 0 on success, 1 on a local error (bad arguments, unreadable files, no connection),
//! 2 on a usage error, 3 when the node refused the request (its gRPC code and message are printed),
//! 4 when something the node sent failed verification.

use anyhow::{Context as _, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use ed25519_dalek::SigningKey;
use ledger_client::client::LedgerClient;
use ledger_client::error::code_name;
use ledger_client::{ClientError, read_signing_key};
use ledger_core::checkpoint::Checkpoint;
use ledger_core::note::NoteVerifier;
use ledger_core::registry::Role;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;

#[path = "ledgerctl/append.rs"]
mod append;
#[path = "ledgerctl/demo.rs"]
mod demo;
#[path = "ledgerctl/election.rs"]
mod election;
#[path = "ledgerctl/keys.rs"]
mod keys;
#[path = "ledgerctl/micro.rs"]
mod micro;
#[path = "ledgerctl/read.rs"]
mod read;

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
    /// The node key's records: planned rotation (`node.rotate`) and compromise declaration
    /// (`node.compromise`), signed by the administrator keys (docs/operations.md).
    Node {
        #[command(subcommand)]
        cmd: keys::NodeCmd,
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

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn hex_list(h: &[ledger_core::hash::Hash]) -> Vec<String> {
    h.iter().map(|x| x.to_hex()).collect()
}

fn checkpoint_json(cp: &Checkpoint) -> Value {
    json!({"origin": cp.origin, "size": cp.size, "root": cp.root.to_hex()})
}

async fn run(cli: Cli) -> Result<()> {
    let (node, origin, json_out) = (cli.node.as_str(), cli.origin, cli.json);
    match cli.cmd {
        Cmd::Demo { admin_key } => demo::demo(&admin_key, node).await,
        Cmd::EscrowKeygen { out } => keys::escrow_keygen(&out, json_out),
        Cmd::Keygen { out } => keys::keygen(&out, json_out),
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
            let req = keys::EnrollRequest {
                admin_keys,
                pubkey,
                name,
                roles,
                organization,
                kinds,
                mldsa44_key,
            };
            keys::enroll(req, &opts, node, origin, json_out).await
        }
        Cmd::Revoke {
            admin_keys,
            keyid,
            reason,
            opts,
        } => keys::revoke(&admin_keys, &keyid, reason, &opts, node, origin, json_out).await,
        Cmd::Append {
            kind,
            payload,
            keys,
            opts,
        } => append::append(&kind, &payload, &keys, &opts, node, origin, json_out).await,
        Cmd::Get { index } => read::get(index, node, json_out).await,
        Cmd::Checkpoint { size, node_key } => read::checkpoint(size, node_key.as_deref(), node, json_out).await,
        Cmd::Election { cmd } => election::election(cmd, node, origin, json_out).await,
        Cmd::Node { cmd } => keys::node(cmd, node, origin, json_out).await,
        Cmd::Credential { cmd } => election::credential(cmd, node, origin, json_out).await,
        Cmd::Ballot { cmd } => election::ballot(cmd, node, origin, json_out).await,
        Cmd::Micro { cmd } => micro::micro(cmd, node, origin, json_out).await,
        Cmd::Proof { index, size, node_key } => read::proof(index, size, node_key.as_deref(), node, json_out).await,
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
    use ledger_core::time::rfc3339_micros;

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
