//! `ledgerctl election|credential|ballot`: thin commands over [`ledger_client::election`], one
//! function per subcommand; the artefacts the roles exchange are JSON files (docs/ballots.md).

use super::{origin_of, parse_node_key, print_json};
use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use ledger_client::election::{
    self as el, BlindSignature, CredentialRequest, CredentialSecrets, ElectionParams, Receipt,
};
use ledger_client::{ClientError, LedgerClient, read_signing_key};
use ledger_core::election::{Dimensions, SubjectScores};
use serde_json::json;
use std::path::{Path, PathBuf};

/// Registrar commands about elections.
#[derive(Debug, Subcommand)]
pub enum ElectionCmd {
    /// Open an election for the evaluators a draw selected: appends `election.open` with a new RSA
    /// credential key (written to --credential-key, mode 0600).
    Open {
        /// Registrar signing key file.
        #[arg(long, value_name = "KEYFILE")]
        key: PathBuf,
        /// New election id.
        #[arg(long)]
        election_id: String,
        /// The draw (with its result) whose evaluators may vote.
        #[arg(long)]
        draw_id: String,
        /// Subjects evaluated (repeat or comma-separate; default: the draw's subjects).
        #[arg(long = "subject", value_delimiter = ',')]
        subjects: Vec<String>,
        /// Weights in percent of political, performance, integrity, public_opinion, responsibility
        /// (in that order, adding up to 100).
        #[arg(long, value_delimiter = ',', default_values_t = [20, 20, 20, 20, 20])]
        weights: Vec<u64>,
        /// Lowest score of a dimension.
        #[arg(long, default_value_t = 0)]
        score_min: u64,
        /// Highest score of a dimension.
        #[arg(long, default_value_t = 100)]
        score_max: u64,
        /// Ballots accepted from (UTC microseconds; default: now).
        #[arg(long)]
        opens_at_micros: Option<u64>,
        /// Ballots accepted until (UTC microseconds, exclusive).
        #[arg(long, conflicts_with = "closes_in_secs")]
        closes_at_micros: Option<u64>,
        /// Ballots accepted for this many seconds from now.
        #[arg(long)]
        closes_in_secs: Option<u64>,
        /// The election's credential key (PEM): generated and written here (mode 0600, never
        /// overwritten) unless --reuse-credential-key.
        #[arg(long, value_name = "FILE")]
        credential_key: PathBuf,
        /// Use the existing key in --credential-key instead of generating one.
        #[arg(long)]
        reuse_credential_key: bool,
    },
}

/// Blind credentials: evaluators request and finalize, the registrar issues.
#[derive(Debug, Subcommand)]
pub enum CredentialCmd {
    /// Evaluator: make a one-time ballot key and blind its credential message; writes the request
    /// for the registrar and the secrets that stay on this machine (mode 0600).
    Request {
        /// Election.
        #[arg(long)]
        election_id: String,
        /// Your id in the draw.
        #[arg(long)]
        evaluator: String,
        /// Request file to create (send it to the registrar).
        #[arg(long, value_name = "FILE.json")]
        out: PathBuf,
        /// Secrets file to create (keep it).
        #[arg(long, value_name = "FILE.json")]
        secrets: PathBuf,
        /// Your signing key file, whose public key the draw's pool fixed for you: signs the
        /// request (over the blinded message only), as the node requires for such evaluators.
        #[arg(long, value_name = "KEYFILE")]
        key: Option<PathBuf>,
    },
    /// Registrar: check that the requester was drawn, blind-sign the request, append
    /// `credential.issued`, and write the blind signature for the evaluator.
    Issue {
        /// Registrar signing key file.
        #[arg(long, value_name = "KEYFILE")]
        key: PathBuf,
        /// The election's credential key (PEM).
        #[arg(long, value_name = "FILE")]
        credential_key: PathBuf,
        /// The evaluator's request file.
        #[arg(long, value_name = "FILE.json")]
        request: PathBuf,
        /// Blind-signature file to create (send it back to the evaluator).
        #[arg(long, value_name = "FILE.json")]
        out: PathBuf,
    },
    /// Evaluator: unblind the registrar's blind signature into the credential; writes the secrets
    /// with the credential to a new file (mode 0600), used by `ballot cast`.
    Finalize {
        /// Secrets file from `credential request`.
        #[arg(long, value_name = "FILE.json")]
        secrets: PathBuf,
        /// Blind-signature file from the registrar.
        #[arg(long, value_name = "FILE.json")]
        blind_signature: PathBuf,
        /// Credential file to create.
        #[arg(long, value_name = "FILE.json")]
        out: PathBuf,
    },
}

/// Anonymous ballots.
#[derive(Debug, Subcommand)]
pub enum BallotCmd {
    /// Cast a ballot with a finalized credential, signed by its one-time key only; writes the
    /// receipt (index, signed checkpoint, inclusion proof).
    Cast {
        /// Credential file from `credential finalize`.
        #[arg(long, value_name = "FILE.json")]
        credential: PathBuf,
        /// Scores of one subject: SUBJECT=political,performance,integrity,public_opinion,responsibility
        /// (repeat for every subject of the election).
        #[arg(long = "score", value_name = "SUBJECT=P,P,I,O,R", required = true, value_parser = parse_scores)]
        scores: Vec<SubjectScores>,
        /// Receipt file to create.
        #[arg(long, value_name = "FILE.json")]
        receipt: PathBuf,
    },
    /// Check a receipt: the ballot is in the log at its index, the proof holds in the node-signed
    /// checkpoint (with --node-key), and the tally counts it once the election has closed.
    Check {
        /// Receipt file from `ballot cast`.
        receipt: PathBuf,
        /// Node checkpoint key `name+hash+base64`: verify the receipt's inclusion proof.
        #[arg(long, value_name = "VKEY")]
        node_key: Option<String>,
    },
}

fn parse_scores(s: &str) -> Result<SubjectScores, String> {
    let (subject, rest) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected SUBJECT=P,P,I,O,R"))?;
    let v: Vec<u64> = rest
        .split(',')
        .map(|x| x.trim().parse::<u64>().map_err(|e| format!("{x:?}: {e}")))
        .collect::<Result<_, _>>()?;
    let [political, performance, integrity, public_opinion, responsibility] = v[..] else {
        return Err(format!("{s:?}: five scores expected, got {}", v.len()));
    };
    Ok(SubjectScores {
        subject: subject.trim().to_string(),
        scores: Dimensions {
            political,
            performance,
            integrity,
            public_opinion,
            responsibility,
        },
    })
}

fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn write_json(path: &Path, v: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(v)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {} (never overwritten)", path.display()))?;
    std::io::Write::write_all(&mut f, format!("{text}\n").as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Runs an `election` subcommand.
pub async fn election(cmd: ElectionCmd, node: &str, origin: Option<String>, json_out: bool) -> Result<()> {
    match cmd {
        ElectionCmd::Open {
            key,
            election_id,
            draw_id,
            subjects,
            weights,
            score_min,
            score_max,
            opens_at_micros,
            closes_at_micros,
            closes_in_secs,
            credential_key,
            reuse_credential_key,
        } => {
            let [political, performance, integrity, public_opinion, responsibility] = weights[..] else {
                bail!("--weights takes five percentages");
            };
            let now = now_micros();
            let closes = match (closes_at_micros, closes_in_secs) {
                (Some(t), _) => t,
                (None, Some(s)) => now.saturating_add(s.saturating_mul(1_000_000)),
                (None, None) => bail!("give --closes-at-micros or --closes-in-secs"),
            };
            let registrar = read_signing_key(&key)?;
            let issuer = if reuse_credential_key {
                el::read_credential_key(&credential_key)?
            } else {
                if credential_key.symlink_metadata().is_ok() {
                    bail!(
                        "{} exists: not overwriting (pass --reuse-credential-key to use it)",
                        credential_key.display()
                    );
                }
                el::generate_credential_key()?
            };
            let params = ElectionParams {
                election_id,
                draw_id,
                subjects,
                weights: Dimensions {
                    political,
                    performance,
                    integrity,
                    public_opinion,
                    responsibility,
                },
                score_min,
                score_max,
                opens_at_micros: opens_at_micros.unwrap_or(now),
                closes_at_micros: closes,
            };
            let client = LedgerClient::connect(node).await?;
            let origin = origin_of(&client, origin).await?;
            // The key file is written before the record is appended, so that an opened election
            // never lacks its key.
            if !reuse_credential_key {
                el::write_credential_key(&credential_key, &issuer)?;
            }
            let (open, out) = el::open_election(&client, &origin, &registrar, &params, &issuer).await?;
            if json_out {
                print_json(&json!({"index": out.index, "election": open,
                    "credential_key_file": credential_key.display().to_string()}));
            } else {
                println!(
                    "opened election {} (entry {}) for draw {}: subjects {}, closes at {}",
                    open.election_id,
                    out.index,
                    open.draw_id,
                    open.subjects.join(", "),
                    ledger_core::time::rfc3339_micros(open.closes_at_micros)
                );
                println!("credential key: {} (secret, keep it)", credential_key.display());
            }
            Ok(())
        }
    }
}

/// Runs a `credential` subcommand.
pub async fn credential(cmd: CredentialCmd, node: &str, origin: Option<String>, json_out: bool) -> Result<()> {
    match cmd {
        CredentialCmd::Request {
            election_id,
            evaluator,
            out,
            secrets,
            key,
        } => {
            for p in [&out, &secrets] {
                if p.symlink_metadata().is_ok() {
                    bail!("{} exists: not overwriting", p.display());
                }
            }
            let evaluator_key = key.as_deref().map(read_signing_key).transpose()?;
            let client = LedgerClient::connect(node).await?;
            let (_, open) = el::fetch_election(&client, &election_id).await?;
            let (req, sec) = el::request_credential(&open, &evaluator, evaluator_key.as_ref())?;
            el::write_secret_json(&secrets, &sec)?;
            write_json(&out, &req)?;
            if json_out {
                print_json(&json!({"request": out.display().to_string(), "secrets": secrets.display().to_string()}));
            } else {
                println!("request for the registrar: {}", out.display());
                println!("secrets (keep them, mode 0600): {}", secrets.display());
            }
            Ok(())
        }
        CredentialCmd::Issue {
            key,
            credential_key,
            request,
            out,
        } => {
            if out.symlink_metadata().is_ok() {
                bail!("{} exists: not overwriting", out.display());
            }
            let registrar = read_signing_key(&key)?;
            let issuer = el::read_credential_key(&credential_key)?;
            let req: CredentialRequest = el::read_json(&request)?;
            let client = LedgerClient::connect(node).await?;
            let origin = origin_of(&client, origin).await?;
            let (sig, appended) = el::issue_credential(&client, &origin, &registrar, &issuer, &req).await?;
            write_json(&out, &sig)?;
            if json_out {
                print_json(&json!({"index": appended.index, "evaluator": sig.evaluator,
                    "blind_signature": out.display().to_string()}));
            } else {
                println!(
                    "issued a credential to {} in {} (entry {}); blind signature: {}",
                    sig.evaluator,
                    sig.election_id,
                    appended.index,
                    out.display()
                );
            }
            Ok(())
        }
        CredentialCmd::Finalize {
            secrets,
            blind_signature,
            out,
        } => {
            let sec: CredentialSecrets = el::read_json(&secrets)?;
            let sig: BlindSignature = el::read_json(&blind_signature)?;
            let done = el::finalize_credential(&sec, &sig)?;
            el::write_secret_json(&out, &done)?;
            if json_out {
                print_json(&json!({"credential": out.display().to_string(), "election_id": done.election_id}));
            } else {
                println!(
                    "credential for {} verified against the election key; written to {} (mode 0600)",
                    done.election_id,
                    out.display()
                );
            }
            Ok(())
        }
    }
}

/// Runs a `ballot` subcommand.
pub async fn ballot(cmd: BallotCmd, node: &str, origin: Option<String>, json_out: bool) -> Result<()> {
    match cmd {
        BallotCmd::Cast {
            credential,
            scores,
            receipt,
        } => {
            if receipt.symlink_metadata().is_ok() {
                bail!("{} exists: not overwriting", receipt.display());
            }
            let sec: CredentialSecrets = el::read_json(&credential)?;
            let client = LedgerClient::connect(node).await?;
            let origin = origin_of(&client, origin).await?;
            let (_, open) = el::fetch_election(&client, &sec.election_id).await?;
            // The election's order; every subject scored exactly once.
            let mut ordered = Vec::with_capacity(open.subjects.len());
            for s in &open.subjects {
                let mut it = scores.iter().filter(|x| &x.subject == s);
                match (it.next(), it.next()) {
                    (Some(x), None) => ordered.push(x.clone()),
                    (None, _) => bail!("no --score for subject {s} of election {}", open.election_id),
                    (Some(_), Some(_)) => bail!("subject {s} scored twice"),
                }
            }
            if let Some(x) = scores.iter().find(|x| !open.subjects.contains(&x.subject)) {
                bail!("{} is not a subject of election {}", x.subject, open.election_id);
            }
            let r = el::cast_ballot(&client, &origin, &sec, ordered).await?;
            write_json(&receipt, &r)?;
            if json_out {
                print_json(&json!({"index": r.index, "receipt": receipt.display().to_string()}));
            } else {
                println!(
                    "ballot cast in {}: entry {}; receipt with inclusion proof: {}",
                    r.election_id,
                    r.index,
                    receipt.display()
                );
            }
            Ok(())
        }
        BallotCmd::Check { receipt, node_key } => {
            let verifier = node_key.as_deref().map(parse_node_key).transpose()?;
            let r: Receipt = el::read_json(&receipt)?;
            let client = LedgerClient::connect(node).await?;
            let c = el::check_receipt(&client, &r, verifier.as_ref()).await?;
            if json_out {
                print_json(
                    &json!({"index": r.index, "election_id": r.election_id, "in_log": c.in_log,
                    "proof_verified": c.proof_verified, "tally_index": c.tally_index, "counted": c.counted}),
                );
            } else {
                println!(
                    "ballot {} of {}: {}",
                    r.index,
                    r.election_id,
                    if c.in_log { "in the log" } else { "NOT in the log" }
                );
                match c.proof_verified {
                    Some(_) => println!("inclusion proof verified against the node-signed checkpoint"),
                    None => println!("inclusion proof not verified (pass --node-key)"),
                }
                match (c.tally_index, c.counted) {
                    (Some(t), Some(true)) => println!("counted in the tally (entry {t})"),
                    (Some(t), _) => println!("NOT counted in the tally (entry {t})"),
                    _ => println!("not tallied yet (the election has not closed)"),
                }
            }
            if !c.in_log {
                return Err(ClientError::EntryMismatch {
                    index: r.index,
                    detail: "the entry at the receipt's index is not this ballot".into(),
                }
                .into());
            }
            if c.counted == Some(false) {
                return Err(ClientError::EntryMismatch {
                    index: r.index,
                    detail: "the tally leaves this ballot out".into(),
                }
                .into());
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_parse() {
        let s = parse_scores("cadre-1=80,90,70,60,85").expect("scores");
        assert_eq!(s.subject, "cadre-1");
        assert_eq!(s.scores.values(), [80, 90, 70, 60, 85]);
        assert!(parse_scores("cadre-1=1,2,3,4").is_err(), "four scores");
        assert!(parse_scores("cadre-1=1,2,3,4,x").is_err(), "not a number");
        assert!(parse_scores("80,90,70,60,85").is_err(), "no subject");
    }
}
