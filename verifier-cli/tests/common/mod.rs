//! Builds small valid logs (and broken ones) in the real store and export formats, and runs the
//! real `ledger-verify` binary on them.
#![allow(dead_code, missing_docs, clippy::unwrap_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::SigningKey;
use ledger_core::checkpoint::Checkpoint;
use ledger_core::compact::CompactTree;
use ledger_core::dsse::Envelope;
use ledger_core::entry::Entry;
use ledger_core::hash::{Hash, leaf_hash};
use ledger_core::note::NoteSigner;
use ledger_core::registry::{Charter, KeyEnroll, KeyRevoke, NamedKey, Policy, Role, Scope, payload_type};
use ledger_store::{PreparedEntry, Store};
use std::io::Write as _;
use std::path::Path;
use std::process::Command;

pub const ORIGIN: &str = "verifier.test/ledger";
pub const T0: u64 = 1_767_225_600_000_000;

pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// An envelope of `kind` (unbound payload type, as in logs written before log binding) with the JSON
/// payload `v`, signed by `k`.
pub fn env(kind: &str, v: &serde_json::Value, k: &SigningKey) -> Envelope {
    let mut e = Envelope::new(payload_type(kind), serde_json::to_vec(v).unwrap());
    e.sign(k);
    e
}

fn b64key(k: &SigningKey) -> String {
    B64.encode(k.verifying_key().as_bytes())
}

/// A log under construction: canonical entry bytes and signed checkpoint notes.
pub struct Log {
    pub node: SigningKey,
    pub admin: SigningKey,
    pub registrar: SigningKey,
    pub entries: Vec<Vec<u8>>,
    pub checkpoints: Vec<(u64, String)>,
    pub tree: CompactTree,
    pub ts: u64,
}

pub fn note_payload(i: u64) -> Vec<u8> {
    format!("{{\"version\":1,\"text\":\"note {i}\"}}").into_bytes()
}

impl Log {
    /// A log with the charter (node key seed 1, admin seed 2) and a registrar (seed 3) enrolled.
    pub fn new() -> Self {
        let node = key(1);
        let admin = key(2);
        let charter = Charter {
            version: 1,
            origin: ORIGIN.into(),
            node_key: b64key(&node),
            admins: vec![NamedKey {
                name: "admin 1".into(),
                key: b64key(&admin),
            }],
            policy: Policy::default(),
        };
        let mut env = Envelope::new(payload_type("charter"), serde_json::to_vec(&charter).unwrap());
        env.sign(&node);
        env.sign(&admin);
        let mut log = Log {
            node,
            admin,
            registrar: key(3),
            entries: Vec::new(),
            checkpoints: Vec::new(),
            tree: CompactTree::new(),
            ts: T0,
        };
        log.push(env);
        let r = log.registrar.clone();
        log.enroll(&r, Role::Registrar);
        log
    }

    pub fn size(&self) -> u64 {
        self.tree.size()
    }

    /// Appends an envelope; `tamper` may alter the entry after its prev_root is set.
    pub fn push_with(&mut self, env: Envelope, tamper: impl FnOnce(&mut Entry)) -> u64 {
        let index = self.tree.size();
        let mut e = Entry {
            index,
            timestamp_micros: self.ts,
            prev_root: self.tree.root(),
            envelope: env,
        };
        self.ts += 1000;
        tamper(&mut e);
        let bytes = e.encode();
        self.tree.append(leaf_hash(&bytes));
        self.entries.push(bytes);
        index
    }

    pub fn push(&mut self, env: Envelope) -> u64 {
        self.push_with(env, |_| {})
    }

    pub fn enroll(&mut self, k: &SigningKey, role: Role) -> u64 {
        let r = KeyEnroll {
            version: 1,
            name: format!("key {}", hex::encode(&k.verifying_key().as_bytes()[..4])),
            key: b64key(k),
            roles: vec![role],
            scope: Scope::default(),
            mldsa44_key: None,
        };
        let mut env = Envelope::new(payload_type("key.enroll"), serde_json::to_vec(&r).unwrap());
        env.sign(&self.admin);
        self.push(env)
    }

    pub fn revoke(&mut self, k: &SigningKey) -> u64 {
        let r = KeyRevoke {
            version: 1,
            keyid: ledger_core::keys::key_id(&k.verifying_key()),
            reason: "test".into(),
        };
        let mut env = Envelope::new(payload_type("key.revoke"), serde_json::to_vec(&r).unwrap());
        env.sign(&self.admin);
        self.push(env)
    }

    pub fn note_env(&self, signer: &SigningKey) -> Envelope {
        let mut env = Envelope::new(payload_type("note"), note_payload(self.tree.size()));
        env.sign(signer);
        env
    }

    /// A "note" record signed by `signer`.
    pub fn note(&mut self, signer: &SigningKey) -> u64 {
        let env = self.note_env(signer);
        self.push(env)
    }

    /// `n` notes by the registrar.
    pub fn notes(&mut self, n: u64) {
        let r = self.registrar.clone();
        for _ in 0..n {
            self.note(&r);
        }
    }

    pub fn signer(&self) -> NoteSigner {
        NoteSigner::new(ORIGIN, self.node.clone()).unwrap()
    }

    pub fn trusted_key(&self) -> String {
        self.signer().verifier().to_string_key()
    }

    pub fn checkpoint_note(&self, size: u64, root: Hash) -> String {
        Checkpoint {
            origin: ORIGIN.into(),
            size,
            root,
            extensions: vec![],
        }
        .sign(&self.signer())
        .unwrap()
        .to_text()
    }

    /// Signs a checkpoint of the current tree.
    pub fn checkpoint(&mut self) -> String {
        let n = self.checkpoint_note(self.tree.size(), self.tree.root());
        self.checkpoints.push((self.tree.size(), n.clone()));
        n
    }

    /// Writes the log into a fresh store (leaf hashes and nodes recomputed from the bytes).
    pub fn write_store(&self, dir: &Path) -> Store {
        let store = Store::open(dir).unwrap();
        let mut tree = CompactTree::new();
        for (chunk_start, chunk) in self.entries.chunks(1000).enumerate() {
            let mut group = Vec::new();
            let mut nodes = Vec::new();
            for (j, bytes) in chunk.iter().enumerate() {
                let lh = leaf_hash(bytes);
                tree.append_with(lh, |n| nodes.push(n));
                group.push(PreparedEntry {
                    index: (chunk_start * 1000 + j) as u64,
                    leaf: bytes.clone(),
                    leaf_hash: lh,
                    request: None,
                    terms: vec![],
                    tickets: Vec::new(),
                });
            }
            store.commit_group(&group, &nodes, tree.size(), None).unwrap();
        }
        for (s, n) in &self.checkpoints {
            store.put_checkpoint(*s, n).unwrap();
        }
        store.flush().unwrap();
        store
    }

    /// Export frames in the order `ledger_store::export::export` writes them.
    pub fn frames(&self) -> Vec<Frame> {
        let mut out = Vec::new();
        let mut cps = self.checkpoints.clone();
        cps.sort_by_key(|c| c.0);
        let mut it = cps.into_iter().peekable();
        while let Some((_, n)) = it.next_if(|c| c.0 == 0) {
            out.push(Frame::C(n));
        }
        for (i, e) in self.entries.iter().enumerate() {
            out.push(Frame::E(e.clone()));
            while let Some((_, n)) = it.next_if(|c| c.0 <= i as u64 + 1) {
                out.push(Frame::C(n));
            }
        }
        out.extend(it.map(|(_, n)| Frame::C(n)));
        out
    }
}

/// One export frame, written by hand for tampered streams.
#[derive(Debug, Clone)]
pub enum Frame {
    E(Vec<u8>),
    C(String),
    Raw(u8, Vec<u8>),
}

/// Writes an export stream (`crates/ledger-store/src/export.rs` documents the format).
pub fn write_export(path: &Path, frames: &[Frame]) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(ledger_store::export::MAGIC).unwrap();
    let mut put = |tag: u8, b: &[u8]| {
        f.write_all(&[tag]).unwrap();
        f.write_all(&(b.len() as u32).to_be_bytes()).unwrap();
        f.write_all(b).unwrap();
    };
    for fr in frames {
        match fr {
            Frame::E(b) => put(b'E', b),
            Frame::C(n) => put(b'C', n.as_bytes()),
            Frame::Raw(t, b) => put(*t, b),
        }
    }
    put(b'Z', &[]);
    f.flush().unwrap();
}

/// Exports a store with the store's own exporter.
pub fn export_store(store: &Store, path: &Path) {
    let f = std::fs::File::create(path).unwrap();
    ledger_store::export::export(store, std::io::BufWriter::new(f)).unwrap();
}

/// Flips one bit of the first signature of an entry.
pub fn flip_sig(e: &mut Entry) {
    e.envelope.signatures[0].sig[10] ^= 0x01;
}

/// Result of running the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub json: Option<serde_json::Value>,
}

impl Run {
    /// True when a fault with this code (and index, when given) is listed.
    pub fn has(&self, code: &str, index: Option<u64>) -> bool {
        let Some(j) = &self.json else { return false };
        j["faults"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == code && index.is_none_or(|i| f["index"].as_u64() == Some(i)))
    }

    pub fn codes(&self) -> Vec<String> {
        let Some(j) = &self.json else { return vec![] };
        j["faults"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| format!("{}@{}", f["code"].as_str().unwrap(), f["index"]))
            .collect()
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `ledger-verify` with `args`, adding `--json` into `dir`.
pub fn verify(dir: &Path, args: &[&str]) -> Run {
    let json = dir.join(format!("report-{}.json", rand_suffix()));
    let out = Command::new(env!("CARGO_BIN_EXE_ledger-verify"))
        .args(args)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let parsed = std::fs::read_to_string(&json)
        .ok()
        .map(|s| serde_json::from_str(&s).unwrap());
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        json: parsed,
    }
}

/// Runs `ledger-verify` with exactly `args`.
pub fn verify_raw(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_ledger-verify"))
        .args(args)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        json: None,
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
