//! `ledger-node witness`: a C2SP tlog-witness (<https://c2sp.org/tlog-witness>) over gRPC
//! (`proto/ledger/v1/witness.proto`, docs/witness.md) and, with `--http-listen`, over the spec's
//! HTTP interface (`tlog_http.rs`), both answering from one state under one lock; `witness_run.rs`
//! starts both.
//!
//! The witness keeps, per log origin, the latest checkpoint it cosigned, in one file per origin
//! under `DATA/state/` (written to a temporary file, synced, renamed, directory synced). Checking a
//! request against that state and persisting the new checkpoint happen under one lock, as the spec
//! requires, and the cosignature is returned only after the new state is durable. The rules
//! themselves are `ledger_core::witness`; this module is the shell: keys, files, transport.

use anyhow::{Context, Result, bail};
use ledger_core::checkpoint::Checkpoint;
use ledger_core::cosignature::CosignatureSigner;
use ledger_core::hash::Hash;
use ledger_core::note::NoteVerifier;
use ledger_core::witness::{AddCheckpoint, WitnessError, check_submission, kept_note, open_submission};
use ledger_proto::pb;
use prost::Message as _;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tonic::{Request, Response, Status};

/// Command-line arguments of `ledger-node witness`.
#[derive(clap::Args)]
pub struct WitnessArgs {
    /// Witness data directory (key and per-log state).
    #[arg(long, env = "LEDGER_WITNESS_DATA")]
    pub data: PathBuf,
    /// gRPC listen address.
    #[arg(long, env = "LEDGER_WITNESS_LISTEN", default_value = "127.0.0.1:50061")]
    pub listen: SocketAddr,
    /// The witness's name (its cosignature key name, e.g. "audit.example/witness"); fixed at the
    /// first start. Enroll the key under this name with the `witness` role.
    #[arg(long)]
    pub name: Option<String>,
    /// A log to witness: its checkpoint verifier key `origin+hash+base64`, or a file holding it
    /// (the node's `DATA/keys/node.vkey`). Repeat for several logs.
    #[arg(long = "log-key", required = true)]
    pub log_keys: Vec<String>,
    /// Which cosignature key(s) to sign with (C2SP tlog-cosignature): `ed25519` (type 0x04),
    /// `mldsa44` (ML-DSA-44, type 0x06, quantum-safe) or `both` (two lines per checkpoint). The
    /// ML-DSA-44 key is created at `DATA/witness.mldsa44.key` when first needed.
    #[arg(long, value_enum, env = "LEDGER_WITNESS_KEY_TYPE", default_value = "ed25519")]
    pub key_type: KeyType,
    /// Also serve the spec's HTTP interface (`POST /add-checkpoint`) on this address (off by
    /// default). It shares the witness's state with the gRPC service.
    #[arg(long, env = "LEDGER_WITNESS_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
}

/// The cosignature types a witness signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyType {
    /// Ed25519 only (cosignature/v1, 0x04).
    Ed25519,
    /// ML-DSA-44 only (subtree/v1, 0x06).
    Mldsa44,
    /// Both: an Ed25519 and an ML-DSA-44 line on every checkpoint.
    Both,
}

/// Reads the ML-DSA-44 seed file at `path` (base64 of the 32-byte FIPS 204 seed ξ), or creates it
/// (mode 0600, never overwriting) with a fresh random seed.
fn mldsa44_seed(path: &Path) -> Result<[u8; 32]> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    if path.exists() {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let raw = b64
            .decode(text.trim())
            .ok()
            .and_then(|r| <[u8; 32]>::try_from(r.as_slice()).ok())
            .with_context(|| format!("{}: not base64 of a 32-byte ML-DSA-44 seed", path.display()))?;
        return Ok(raw);
    }
    let mut seed = [0u8; 32];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut seed);
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(format!("{}\n", b64.encode(seed)).as_bytes())?;
    f.sync_all()?;
    Ok(seed)
}

/// Why an add-checkpoint request got no cosignature.
#[derive(Debug)]
pub enum AddFailure {
    /// The spec's refusal (its HTTP status is [`WitnessError::http_status`]).
    Refused(WitnessError),
    /// The new state could not be persisted (nothing was cosigned).
    Unavailable(String),
    /// Signing failed.
    Internal(String),
}

impl AddFailure {
    /// The gRPC status of this failure.
    fn status(&self) -> Status {
        match self {
            AddFailure::Refused(e) => refusal_status(e),
            AddFailure::Unavailable(m) => Status::unavailable(m.clone()),
            AddFailure::Internal(m) => Status::internal(m.clone()),
        }
    }
}

/// What the witness holds for one log.
#[derive(Clone)]
struct Held {
    size: u64,
    root: Hash,
    note: String,
}

/// The gRPC service.
pub struct WitnessService {
    /// The cosigning keys (one per type signed with), the first one reported by `Info`.
    pub(crate) signers: Vec<CosignatureSigner>,
    logs: Vec<NoteVerifier>,
    state_dir: PathBuf,
    held: tokio::sync::Mutex<HashMap<String, Held>>,
}

fn state_file(dir: &Path, origin: &str) -> PathBuf {
    dir.join(format!("{}.checkpoint", Hash::digest(origin.as_bytes()).to_hex()))
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Writes `text` to `path` durably: temporary file, fsync, rename, fsync of the directory.
fn write_durably(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(d) = path.parent() {
        std::fs::File::open(d)?.sync_all()?;
    }
    Ok(())
}

/// The gRPC status of a refusal: the code of docs/witness.md, the spec's HTTP status and the held
/// size in a [`pb::WitnessRefusal`] detail, and both in the message.
pub fn refusal_status(e: &WitnessError) -> Status {
    let code = match e.http_status() {
        403 => tonic::Code::PermissionDenied,
        404 => tonic::Code::NotFound,
        409 => tonic::Code::FailedPrecondition,
        _ => tonic::Code::InvalidArgument,
    };
    let detail = pb::WitnessRefusal {
        http_status: u32::from(e.http_status()),
        held_size: e.held_size().unwrap_or(0),
    };
    Status::with_details(
        code,
        format!("{e} (tlog-witness {})", e.http_status()),
        detail.encode_to_vec().into(),
    )
}

/// Decodes the [`pb::WitnessRefusal`] detail of a witness's refusal.
pub fn refusal_of(s: &Status) -> Option<pb::WitnessRefusal> {
    pb::WitnessRefusal::decode(s.details())
        .ok()
        .filter(|r| r.http_status != 0)
}

impl WitnessService {
    /// Loads the key and state (re-verifying every held checkpoint against its log key).
    ///
    /// # Errors
    /// When the key or a state file cannot be read, or a held checkpoint does not verify.
    pub fn open(a: &WitnessArgs) -> Result<Self> {
        std::fs::create_dir_all(a.data.join("state"))?;
        let signers = witness_signers(a)?;
        let mut logs = Vec::new();
        for k in &a.log_keys {
            let text = if Path::new(k).exists() {
                std::fs::read_to_string(k).with_context(|| format!("reading {k}"))?
            } else {
                k.clone()
            };
            logs.push(NoteVerifier::parse(text.trim()).with_context(|| format!("log key {k:?}"))?);
        }
        let state_dir = a.data.join("state");
        let held = load_held(&state_dir, &logs, &signers)?;
        Ok(Self {
            signers,
            logs,
            state_dir,
            held: tokio::sync::Mutex::new(held),
        })
    }

    /// The verifier key string of the first cosigning key (`Info`).
    fn primary_key(&self) -> String {
        self.signers
            .first()
            .map(|s| s.verifier().to_string_key())
            .unwrap_or_default()
    }

    /// Handles one add-checkpoint body: the spec's checks, then cosign and persist atomically.
    pub(crate) async fn add(&self, body: &str) -> Result<String, AddFailure> {
        let req = AddCheckpoint::parse(body).map_err(AddFailure::Refused)?;
        let opened = open_submission(&req.checkpoint, &self.logs).map_err(AddFailure::Refused)?;
        let cp: &Checkpoint = &opened.checkpoint;
        let mut held = self.held.lock().await;
        let current = held.get(&cp.origin).map(|h| (h.size, h.root));
        if let Err(e) = check_submission(current, req.old_size, &req.proof, cp) {
            tracing::warn!(origin = %cp.origin, size = cp.size, old = req.old_size, error = %e, "refused");
            return Err(AddFailure::Refused(e));
        }
        let now = now_secs();
        let mut lines = Vec::with_capacity(self.signers.len());
        for signer in &self.signers {
            // FIPS 204 hedged ML-DSA signing: fresh randomness for every signature.
            let mut rnd = [0u8; 32];
            rand::Rng::fill_bytes(&mut rand::rng(), &mut rnd);
            let line = signer
                .sign_hedged(&opened.note.text, now, &rnd)
                .map_err(|e| AddFailure::Internal(e.to_string()))?;
            lines.push(line);
        }
        // Keep only the log's verified signature and our own cosignatures (never lines planted in
        // the submission, e.g. in another witness's name).
        let text = kept_note(&opened, &self.logs, lines.iter().cloned()).to_text();
        write_durably(&state_file(&self.state_dir, &cp.origin), &text)
            .map_err(|e| AddFailure::Unavailable(format!("cannot persist the witness state: {e}")))?;
        held.insert(
            cp.origin.clone(),
            Held {
                size: cp.size,
                root: cp.root,
                note: text,
            },
        );
        tracing::info!(origin = %cp.origin, size = cp.size, lines = lines.len(), "cosigned");
        Ok(lines.iter().map(|l| format!("{}\n", l.to_line())).collect())
    }
}

/// The witness's signing keys (`witness.key`, created at the first start; ML-DSA-44 as asked),
/// named once and for good, with their verifier keys written beside them.
fn witness_signers(a: &WitnessArgs) -> Result<Vec<CosignatureSigner>> {
    let key_path = a.data.join("witness.key");
    let vkey_path = a.data.join("witness.vkey");
    let key = if key_path.exists() {
        ledger_client::keyfile::read_signing_key(&key_path)
            .with_context(|| format!("reading {}", key_path.display()))?
    } else {
        let k = ed25519_dalek::SigningKey::generate(&mut rand::rng());
        ledger_client::keyfile::write_key_pair(&key_path, &k)
            .with_context(|| format!("writing {}", key_path.display()))?;
        k
    };
    let stored_name = std::fs::read_to_string(&vkey_path)
        .ok()
        .and_then(|s| s.split('+').next().map(str::to_string));
    let name = match (&a.name, stored_name) {
        (Some(n), Some(s)) if *n != s => {
            bail!(
                "this witness is named {s:?} (see {}); its name cannot change",
                vkey_path.display()
            )
        }
        (Some(n), _) => n.clone(),
        (None, Some(s)) => s,
        (None, None) => bail!("--name is required at the first start"),
    };
    let ed = CosignatureSigner::new(&name, key)?;
    std::fs::write(&vkey_path, format!("{}\n", ed.verifier().to_string_key()))?;
    let mut signers = Vec::new();
    if a.key_type != KeyType::Mldsa44 {
        signers.push(ed);
    }
    if a.key_type != KeyType::Ed25519 {
        let seed = mldsa44_seed(&a.data.join("witness.mldsa44.key"))?;
        let pq = CosignatureSigner::new_mldsa44(&name, &seed)?;
        use base64::Engine as _;
        std::fs::write(
            a.data.join("witness.mldsa44.pub"),
            format!(
                "{}\n",
                base64::engine::general_purpose::STANDARD.encode(pq.verifier().key.as_bytes())
            ),
        )?;
        std::fs::write(
            a.data.join("witness.mldsa44.vkey"),
            format!("{}\n", pq.verifier().to_string_key()),
        )?;
        signers.push(pq);
    }
    Ok(signers)
}

/// The checkpoints held per log from an earlier run, each verified, with only the log's signature
/// and this witness's own valid cosignatures kept.
fn load_held(state_dir: &Path, logs: &[NoteVerifier], signers: &[CosignatureSigner]) -> Result<HashMap<String, Held>> {
    let mut held = HashMap::new();
    for log in logs {
        // A log may be configured with several keys (before and after a node key rotation,
        // docs/witness.md): its held checkpoint is signed by one of them.
        if held.contains_key(&log.name) {
            continue;
        }
        let p = state_file(state_dir, &log.name);
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        let cp =
            open_submission(&text, logs).with_context(|| format!("held checkpoint {} does not verify", p.display()))?;
        // State written by an older version may hold lines planted by a submitter: serve only
        // the log's signature and this witness's own valid cosignature.
        let own: Vec<_> = signers
            .iter()
            .filter_map(|signer| {
                cp.note
                    .signatures
                    .iter()
                    .find(|s| signer.verifier().matches(s) && signer.verifier().verify(&cp.note.text, &s.sig).is_ok())
            })
            .cloned()
            .collect();
        let note = kept_note(&cp, logs, own).to_text();
        held.insert(
            log.name.clone(),
            Held {
                size: cp.checkpoint.size,
                root: cp.checkpoint.root,
                note,
            },
        );
    }
    Ok(held)
}

#[tonic::async_trait]
impl pb::witness_server::Witness for WitnessService {
    async fn add_checkpoint(
        &self,
        req: Request<pb::AddCheckpointRequest>,
    ) -> Result<Response<pb::AddCheckpointResponse>, Status> {
        let cosignatures = self.add(&req.into_inner().body).await.map_err(|e| e.status())?;
        Ok(Response::new(pb::AddCheckpointResponse { cosignatures }))
    }

    async fn get_latest(&self, req: Request<pb::GetLatestRequest>) -> Result<Response<pb::GetLatestResponse>, Status> {
        let origin = req.into_inner().origin;
        let held = self.held.lock().await;
        let h = held
            .get(&origin)
            .ok_or_else(|| Status::not_found(format!("no checkpoint cosigned for origin {origin:?}")))?;
        Ok(Response::new(pb::GetLatestResponse {
            checkpoint: h.note.clone(),
        }))
    }

    async fn info(&self, _req: Request<pb::WitnessInfoRequest>) -> Result<Response<pb::WitnessInfoResponse>, Status> {
        Ok(Response::new(pb::WitnessInfoResponse {
            verifier_key: self.primary_key(),
            origins: self.logs.iter().map(|l| l.name.clone()).collect(),
        }))
    }
}
