//! `init`: creates the node's keys and writes entry 0, the charter.

use anyhow::{Context, Result, bail};
use ed25519_dalek::SigningKey;
use ledger_core::checkpoint::Checkpoint;
use ledger_core::compact::CompactTree;
use ledger_core::dsse::Envelope;
use ledger_core::entry::Entry;
use ledger_core::keys::public_key_to_base64;
use ledger_core::note::NoteSigner;
use ledger_core::registry::{Charter, NamedKey, Policy, Registry, payload_type};
use ledger_store::{PreparedEntry, Store};
use std::path::{Path, PathBuf};

/// Where a data directory keeps its parts.
pub struct Layout {
    /// sled store.
    pub store: PathBuf,
    /// Node checkpoint key.
    pub node_key: PathBuf,
    /// Default administrator key.
    pub admin_key: PathBuf,
}

impl Layout {
    /// Layout under `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            store: dir.join("store"),
            node_key: dir.join("keys/node.key"),
            admin_key: dir.join("keys/admin.key"),
        }
    }
}

fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn load_or_create(path: &Path) -> Result<SigningKey> {
    if path.exists() {
        return ledger_client::keyfile::read_signing_key(path)
            .with_context(|| format!("reading key {}", path.display()));
    }
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let k = SigningKey::generate(&mut rand::rng());
    ledger_client::keyfile::write_key_pair(path, &k).with_context(|| format!("writing key {}", path.display()))?;
    Ok(k)
}

/// Creates keys (unless the files exist) and writes the charter as entry 0 with a checkpoint of
/// size 1. Refuses a directory whose store already has entries.
///
/// # Errors
/// When the store is not empty, a key cannot be read or written, or the charter is invalid.
pub fn init(dir: &Path, origin: &str, admin_keys: &[PathBuf], admin_quorum: u32, witness_quorum: u32) -> Result<()> {
    if !ledger_core::registry::origin_bindable(origin) {
        bail!(
            "origin {origin:?} is refused: records name it in their payload type (log=\"<origin>\"), so it must be \
             non-empty without '\"', '\\', control characters or whitespace"
        );
    }
    let layout = Layout::new(dir);
    std::fs::create_dir_all(dir)?;
    let mark = ledger_store::high_water::mark_path(dir);
    if mark.exists() {
        bail!(
            "{} holds a high-water mark ({}): it held a ledger whose store is now missing or damaged; \
             refusing to initialize over it (restore it: docs/operations.md)",
            dir.display(),
            mark.display()
        );
    }
    let store = Store::open(&layout.store).context("opening the store")?;
    if store.size()? != 0 {
        bail!(
            "{} already holds a ledger ({} entries); refusing to overwrite it",
            dir.display(),
            store.size()?
        );
    }
    let node = load_or_create(&layout.node_key)?;
    let admin_paths: Vec<PathBuf> = if admin_keys.is_empty() {
        vec![layout.admin_key.clone()]
    } else {
        admin_keys.to_vec()
    };
    let mut admins = Vec::new();
    for p in &admin_paths {
        admins.push((p.clone(), load_or_create(p)?));
    }
    let entry = charter_entry(origin, &node, &admins, admin_quorum, witness_quorum)?;
    let mut ct = CompactTree::new();
    Registry::genesis(&entry).context("the charter does not satisfy its own rules")?;
    let leaf = entry.encode();
    let leaf_hash = ledger_core::hash::leaf_hash(&leaf);
    let mut nodes = Vec::new();
    ct.append_with(leaf_hash, |n| nodes.push(n));
    let signer = NoteSigner::new(origin, node)?;
    let cp = Checkpoint {
        origin: origin.to_string(),
        size: 1,
        root: ct.root(),
        extensions: vec![],
    }
    .sign(&signer)?;
    let prepared = PreparedEntry {
        index: 0,
        leaf,
        leaf_hash,
        request: None,
        terms: vec![(ledger_store::IndexTag::Kind, "charter".into())],
        tickets: Vec::new(),
    };
    store.commit_group(&[prepared], &nodes, 1, Some((1, &cp.to_text())))?;
    crate::marks::write_latest(&store, dir)?;
    // The checkpoint verifier key, for clients, witnesses and courts (public).
    std::fs::write(
        dir.join("keys/node.vkey"),
        format!("{}\n", signer.verifier().to_string_key()),
    )?;
    println!("initialized ledger {origin:?} in {}", dir.display());
    println!(
        "node key:   {} (checkpoint verifier key {})",
        layout.node_key.display(),
        signer.verifier().to_string_key()
    );
    for (p, k) in &admins {
        println!(
            "admin key:  {} (key id {})",
            p.display(),
            ledger_core::keys::key_id(&k.verifying_key())
        );
    }
    println!("keep the admin key(s) offline; they sign key.enroll/rotate/revoke records.");
    Ok(())
}

/// The charter entry (index 0): the charter naming the node key and the admin keys with their
/// quorums, signed by the node key and every admin key.
fn charter_entry(
    origin: &str,
    node: &SigningKey,
    admins: &[(PathBuf, SigningKey)],
    admin_quorum: u32,
    witness_quorum: u32,
) -> Result<Entry> {
    let charter = Charter {
        version: 1,
        origin: origin.to_string(),
        node_key: public_key_to_base64(&node.verifying_key()),
        admins: admins
            .iter()
            .enumerate()
            .map(|(i, (p, k))| NamedKey {
                name: format!(
                    "admin {} ({})",
                    i + 1,
                    p.file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_default()
                ),
                key: public_key_to_base64(&k.verifying_key()),
            })
            .collect(),
        policy: Policy {
            admin_quorum,
            witness_quorum,
            log_binding: true,
        },
    };
    let mut env = Envelope::new(payload_type("charter"), serde_json::to_vec(&charter)?);
    env.sign(node);
    for (_, k) in admins {
        env.sign(k);
    }
    let entry = Entry {
        index: 0,
        timestamp_micros: now_micros(),
        prev_root: CompactTree::new().root(),
        envelope: env,
    };
    Ok(entry)
}
