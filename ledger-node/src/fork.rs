//! `ledger-node debug-fork` (hidden, for tests): plays a dishonest operator who rewrites history.
//!
//! Every entry from index `from` on is re-encoded with its timestamp one microsecond later (so
//! every leaf and every later root changes while the store stays internally consistent), the
//! node hashes are recomputed, every checkpoint above `from` is deleted and a new one is signed
//! with the node key. The node then starts on the forked store without complaint: only someone who
//! kept an earlier checkpoint (a witness, a court) can tell. Run it on a stopped node.

use anyhow::{Context, Result, bail};
use ledger_core::checkpoint::Checkpoint;
use ledger_core::compact::CompactTree;
use ledger_core::entry::Entry;
use ledger_core::hash::leaf_hash;
use ledger_core::merkle::subtree_root;
use ledger_core::note::NoteSigner;
use ledger_core::registry::Registry;
use ledger_store::{PreparedEntry, Store};
use std::path::Path;

/// Rewrites the store under `data` from index `from` and re-signs its latest checkpoint.
///
/// # Errors
/// When `from` is not inside the log or the store cannot be rewritten.
pub fn debug_fork(data: &Path, from: u64) -> Result<()> {
    let layout = crate::genesis::Layout::new(data);
    let store = Store::open(&layout.store)?;
    let size = store.size()?;
    if from == 0 || from >= size {
        bail!("--from must be between 1 and {} (the log has {size} entries)", size - 1);
    }
    let charter = Entry::decode(&store.entry(0)?.context("no entry 0")?)?;
    let origin = Registry::genesis(&charter)?.charter.origin;
    let key = ledger_client::keyfile::read_signing_key(&layout.node_key)?;
    // The compact tree of the first `from` entries, from the stored perfect subtrees.
    let mut frontier = Vec::new();
    let mut start = 0u64;
    for level in (0..64u32).rev() {
        if from >> level & 1 == 1 {
            frontier.push(subtree_root(&store, start, start + (1 << level))?);
            start += 1 << level;
        }
    }
    let mut ct = CompactTree::from_parts(from, frontier)?;
    let mut prepared = Vec::new();
    let mut nodes = Vec::new();
    let tree = store.raw_tree();
    for i in from..size {
        let bytes = store.entry(i)?.with_context(|| format!("entry {i} missing"))?;
        let mut e = Entry::decode(&bytes)?;
        let mut hkey = vec![b'h'];
        hkey.extend_from_slice(&leaf_hash(&bytes).0);
        tree.remove(hkey)?;
        e.timestamp_micros += 1;
        e.prev_root = ct.root();
        let leaf = e.encode();
        let lh = leaf_hash(&leaf);
        ct.append_with(lh, |n| nodes.push(n));
        prepared.push(PreparedEntry {
            index: i,
            leaf,
            leaf_hash: lh,
            request: None,
            terms: Vec::new(),
            tickets: Vec::new(),
        });
    }
    let mut stale = Vec::new();
    for r in store.checkpoints() {
        let (s, _) = r?;
        if s > from {
            stale.push(s);
        }
    }
    for s in stale {
        let mut k = vec![b'c'];
        k.extend_from_slice(&s.to_be_bytes());
        tree.remove(k)?;
    }
    tree.remove(ledger_store::WITNESSED_KEY)?;
    let note = Checkpoint {
        origin: origin.clone(),
        size,
        root: ct.root(),
        extensions: vec![],
    }
    .sign(&NoteSigner::new(&origin, key)?)?
    .to_text();
    store.commit_group(&prepared, &nodes, size, Some((size, &note)))?;
    // The operator holds the node key, so the marks are rewritten too (only witnesses can tell).
    crate::marks::write_latest(&store, data)?;
    match std::fs::remove_file(ledger_store::high_water::witnessed_path(data)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    println!(
        "forked {origin:?} from index {from}: size {size}, new root {}",
        ct.root()
    );
    Ok(())
}
