//! Trusted timestamps in bundles (docs/bundle.md, "Trusted timestamps"): `bundle export` carries
//! the RFC 3161 tokens the node holds over checkpoints that cover the requested records, and
//! `bundle verify --tsa-root CERT.pem` checks each one: the checkpoint it covers is signed by the
//! node key and is a prefix of the bundle's checkpoint (consistency proof), the token's imprint is
//! SHA-256 of that checkpoint's body, and the token verifies to a supplied root
//! ([`ledger_tsa::verify_token`]). Without roots the tokens are reported, never counted.

use anyhow::{Context as _, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ledger_core::bundle::{Bundle, BundleTimestamp};
use ledger_core::checkpoint::open_checkpoint;
use ledger_core::hash::Hash;
use ledger_core::merkle::verify_consistency;
use ledger_core::note::{Note, NoteVerifier};
use ledger_proto::pb;
use ledger_proto::pb::ledger_client::LedgerClient;
use ledger_proto::pb::timestamps_client::TimestampsClient;
use serde::Serialize;
use sha2::Digest as _;
use std::path::{Path, PathBuf};
use tonic::transport::Channel;

/// The finding on one token.
#[derive(Debug, Clone, Serialize)]
pub struct TokenVerdict {
    /// Size of the checkpoint the token covers (0 when it could not be read).
    pub checkpoint_size: u64,
    /// The TSA (signer certificate subject; from the token itself when unverified).
    pub tsa: String,
    /// genTime as written in the token (UTC).
    pub gen_time: String,
    /// genTime, Unix seconds (0 when unknown).
    pub gen_time_unix: u64,
    /// True when every check passed against a supplied root.
    pub verified: bool,
    /// The supplied root the chain ends at.
    pub root: String,
    /// Why it does not count (empty when verified, or "unverified" without roots).
    pub problem: String,
}

/// Per requested record: the earliest verified time before which it existed.
#[derive(Debug, Clone, Serialize)]
pub struct RecordTime {
    /// Log index.
    pub index: u64,
    /// genTime of the earliest verified token whose checkpoint covers the record.
    pub existed_before: Option<String>,
    /// The TSAs whose verified tokens cover the record (independent parties vouching for it).
    pub tsas: Vec<String>,
}

/// The timestamp part of a bundle verdict.
#[derive(Debug, Clone, Serialize)]
pub struct TimestampReport {
    /// Whether the caller supplied TSA roots.
    pub roots_given: bool,
    /// One per token in the bundle.
    pub tokens: Vec<TokenVerdict>,
    /// Per requested record (only when some token verified).
    pub records: Vec<RecordTime>,
}

impl TimestampReport {
    /// True unless a token failed a check against supplied roots.
    pub fn ok(&self) -> bool {
        !self.roots_given || self.tokens.iter().all(|t| t.verified)
    }

    /// Human-readable lines.
    pub fn render(&self) -> String {
        let mut s = String::new();
        if self.tokens.is_empty() {
            return s;
        }
        s.push_str(&format!(
            "Trusted timestamps (RFC 3161): {} token(s)\n",
            self.tokens.len()
        ));
        for t in &self.tokens {
            if t.verified {
                s.push_str(&format!(
                    "  OK  checkpoint {} existed before {} (TSA {}, root {})\n",
                    t.checkpoint_size,
                    iso(&t.gen_time),
                    t.tsa,
                    t.root
                ));
            } else if !self.roots_given {
                s.push_str(&format!(
                    "  --  checkpoint {}: token present, UNVERIFIED (no --tsa-root given; says {} by {})\n",
                    t.checkpoint_size,
                    iso(&t.gen_time),
                    t.tsa
                ));
            } else {
                s.push_str(&format!("  BAD checkpoint {}: {}\n", t.checkpoint_size, t.problem));
            }
        }
        let best = self
            .records
            .iter()
            .filter_map(|r| {
                let t = self
                    .tokens
                    .iter()
                    .filter(|t| t.verified && t.checkpoint_size > r.index)
                    .min_by_key(|t| t.gen_time_unix)?;
                Some((r, t))
            })
            .collect::<Vec<_>>();
        for (r, t) in &best {
            s.push_str(&format!(
                "  record {}: existed before {} (TSA {})\n",
                r.index,
                iso(&t.gen_time),
                t.tsa
            ));
        }
        if best.len() == self.records.len()
            && let Some((_, t)) = best.iter().max_by_key(|(_, t)| t.gen_time_unix)
        {
            s.push_str(&format!(
                "records existed before {} (TSA {})\n",
                iso(&t.gen_time),
                t.tsa
            ));
        }
        s
    }
}

/// GeneralizedTime text (`YYYYMMDDHHMMSS[.f]Z`) as RFC 3339 (`YYYY-MM-DDTHH:MM:SS[.f]Z`).
fn iso(g: &str) -> String {
    if g.len() < 15 || !g.is_char_boundary(14) || !g[..14].bytes().all(|b| b.is_ascii_digit()) {
        return g.to_string();
    }
    format!(
        "{}-{}-{}T{}:{}:{}{}",
        &g[..4],
        &g[4..6],
        &g[6..8],
        &g[8..10],
        &g[10..12],
        &g[12..14],
        &g[14..]
    )
}

fn check_one(
    b: &Bundle,
    key: &NoteVerifier,
    cp_size: u64,
    cp_root: &Hash,
    ts: &BundleTimestamp,
    roots: &[ledger_tsa::X509Certificate],
) -> TokenVerdict {
    let mut v = TokenVerdict {
        checkpoint_size: 0,
        tsa: String::new(),
        gen_time: String::new(),
        gen_time_unix: 0,
        verified: false,
        root: String::new(),
        problem: String::new(),
    };
    let token = match B64.decode(&ts.token) {
        Ok(t) => t,
        Err(_) => {
            v.problem = "the token is not base64".into();
            return v;
        }
    };
    if let Ok(i) = ledger_tsa::inspect(&token) {
        v.tsa = i.tsa_name;
        v.gen_time = i.gen_time;
    }
    let old = match open_checkpoint(&ts.checkpoint, key) {
        Ok(c) => c.checkpoint,
        Err(e) => {
            v.problem = format!("CHECKPOINT_BAD_SIGNATURE: the timestamped checkpoint does not verify: {e}");
            return v;
        }
    };
    v.checkpoint_size = old.size;
    if old.origin != b.origin {
        v.problem = "the timestamped checkpoint is of another log".into();
        return v;
    }
    if let Err(e) = verify_consistency(old.size, cp_size, &old.root, cp_root, &ts.consistency_proof) {
        v.problem = format!("FORK: the timestamped checkpoint is not a prefix of the bundle's checkpoint: {e}");
        return v;
    }
    let body = match Note::parse(&ts.checkpoint) {
        Ok(n) => n.text,
        Err(e) => {
            v.problem = format!("checkpoint note: {e}");
            return v;
        }
    };
    let imprint: [u8; 32] = sha2::Sha256::digest(body.as_bytes()).into();
    if roots.is_empty() {
        v.problem = "unverified: no --tsa-root given".into();
        return v;
    }
    match ledger_tsa::verify_token(&token, &imprint, roots) {
        Ok(ok) => {
            v.verified = true;
            v.tsa = ok.tsa_name;
            v.gen_time = ok.gen_time;
            v.gen_time_unix = ok.gen_time_unix;
            v.root = ok.root_name;
        }
        Err(e) => v.problem = e.to_string(),
    }
    v
}

/// Checks the tokens of a bundle against `roots` (PEM files).
///
/// # Errors
/// When a root file cannot be read or holds no certificate.
pub fn check(b: &Bundle, root_files: &[PathBuf]) -> Result<TimestampReport> {
    let mut roots = Vec::new();
    for p in root_files {
        let pem = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        roots
            .extend(ledger_tsa::certs_from_pem(&pem).with_context(|| format!("{} holds no certificate", p.display()))?);
    }
    let mut r = TimestampReport {
        roots_given: !roots.is_empty(),
        tokens: Vec::new(),
        records: Vec::new(),
    };
    let key = NoteVerifier::parse(&b.node_key).ok();
    let cp = key.as_ref().and_then(|k| open_checkpoint(&b.checkpoint, k).ok());
    for ts in &b.timestamps {
        r.tokens.push(match (&key, &cp) {
            (Some(k), Some(c)) => check_one(b, k, c.checkpoint.size, &c.checkpoint.root, ts, &roots),
            _ => TokenVerdict {
                checkpoint_size: 0,
                tsa: String::new(),
                gen_time: String::new(),
                gen_time_unix: 0,
                verified: false,
                root: String::new(),
                problem: "the bundle's own checkpoint does not verify".into(),
            },
        });
    }
    let mut idx: Vec<u64> = b.records.iter().map(|e| e.index).collect();
    idx.sort_unstable();
    idx.dedup();
    for index in idx {
        let covering: Vec<&TokenVerdict> = r
            .tokens
            .iter()
            .filter(|t| t.verified && t.checkpoint_size > index)
            .collect();
        let mut tsas: Vec<String> = covering.iter().map(|t| t.tsa.clone()).collect();
        tsas.sort();
        tsas.dedup();
        r.records.push(RecordTime {
            index,
            existed_before: covering
                .iter()
                .min_by_key(|t| t.gen_time_unix)
                .map(|t| t.gen_time.clone()),
            tsas,
        });
    }
    Ok(r)
}

/// Reads a bundle file and checks its tokens (after [`crate::bundle::verify_file`] accepted it
/// as a bundle).
///
/// # Errors
/// When the file or a root cannot be read.
pub fn check_file(path: &Path, roots: &[PathBuf]) -> Result<TimestampReport> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let b: Bundle = serde_json::from_str(&text)?;
    check(&b, roots)
}

/// Tokens the node holds that cover the bundle's records (for each record, the earliest token of
/// each TSA over a checkpoint that includes it), with consistency proofs to the bundle's
/// checkpoint. A node without the Timestamps service, or without tokens, gives none.
pub async fn for_bundle(node: &str, b: &Bundle) -> Vec<BundleTimestamp> {
    let size = Note::parse(&b.checkpoint)
        .ok()
        .and_then(|n| ledger_core::checkpoint::Checkpoint::from_body(&n.text).ok())
        .map_or(0, |c| c.size);
    let mut targets: Vec<u64> = b.records.iter().map(|r| r.index).collect();
    targets.sort_unstable();
    targets.dedup();
    let r = async {
        let mut c = LedgerClient::connect(node.to_string()).await?;
        collect(node, &mut c, size, &targets).await
    };
    match r.await {
        Ok(v) => v,
        Err(e) => {
            eprintln!("note: no trusted timestamps added to the bundle: {e:#}");
            Vec::new()
        }
    }
}

async fn collect(
    node: &str,
    c: &mut LedgerClient<Channel>,
    size: u64,
    targets: &[u64],
) -> Result<Vec<BundleTimestamp>> {
    let mut tc = TimestampsClient::connect(node.to_string())
        .await?
        .max_decoding_message_size(64 << 20);
    let mut chosen: Vec<pb::TimestampToken> = Vec::new();
    let mut covered_below = 0u64;
    for &t in targets {
        if t < covered_below {
            continue;
        }
        let page = match tc
            .get_timestamps(pb::GetTimestampsRequest {
                min_size: t + 1,
                max_size: size,
            })
            .await
        {
            Ok(r) => r.into_inner().timestamps,
            Err(s) if s.code() == tonic::Code::Unimplemented => return Ok(Vec::new()),
            Err(s) => return Err(s.into()),
        };
        let Some(first) = page.first().map(|p| p.size) else {
            break;
        };
        // The earliest token of each TSA from this size on.
        let mut seen: Vec<String> = Vec::new();
        for p in page {
            if seen.contains(&p.tsa) {
                continue;
            }
            seen.push(p.tsa.clone());
            if !chosen.iter().any(|x| x.token == p.token) {
                chosen.push(p);
            }
        }
        covered_below = first;
    }
    let mut out = Vec::new();
    for p in chosen {
        let proof = if p.size == size {
            Vec::new()
        } else {
            c.get_consistency_proof(pb::GetConsistencyProofRequest {
                old_size: p.size,
                new_size: size,
            })
            .await?
            .into_inner()
            .hashes
            .iter()
            .map(|h| Hash::from_slice(h))
            .collect::<Result<Vec<_>, _>>()?
        };
        out.push(BundleTimestamp {
            checkpoint: p.checkpoint,
            consistency_proof: proof,
            token: B64.encode(&p.token),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_rfc3339() {
        assert_eq!(iso("20261201165103Z"), "2026-12-01T16:51:03Z");
        assert_eq!(iso("20261201165103.25Z"), "2026-12-01T16:51:03.25Z");
        assert_eq!(iso("garbage"), "garbage");
    }

    #[test]
    fn unverified_tokens_never_count() {
        let t = TokenVerdict {
            checkpoint_size: 5,
            tsa: "CN=x".into(),
            gen_time: "20261201165103Z".into(),
            gen_time_unix: 0,
            verified: false,
            root: String::new(),
            problem: "unverified: no --tsa-root given".into(),
        };
        let r = TimestampReport {
            roots_given: false,
            tokens: vec![t.clone()],
            records: vec![],
        };
        assert!(r.ok());
        assert!(r.render().contains("UNVERIFIED"));
        let r = TimestampReport {
            roots_given: true,
            tokens: vec![t],
            records: vec![],
        };
        assert!(!r.ok());
        assert!(r.render().contains("BAD checkpoint 5"));
    }
}
