//! Read-only reader of store layout 1 (before issue 14), kept so that `ledger-node export` can
//! migrate an old data directory (`docs/operations.md`, "Migrating a store to layout 2").
//!
//! Layout 1: `e` ‖ index (u64 BE) → leaf hash (32) ‖ leaf, one key per entry; `n` ‖ level (u8 ≥ 4)
//! ‖ index (u64 BE) → node hash (levels 1 to 3 recomputed from the leaf hashes); `c`, `msize`,
//! `mwitnessed` as in layout 2 (and the `h`, `r`, `x` lookups, not read here).

use crate::layout::{Found, Record};
use crate::{Store, StoreError};
use ledger_core::hash::{Hash, node_hash};
use ledger_core::merkle::ProofError;

/// Levels 1 to 3 were not stored in layout 1.
const UNSTORED_LEVELS: u32 = 3;

fn e_key(i: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = b'e';
    k[1..].copy_from_slice(&i.to_be_bytes());
    k
}

fn split(i: u64, v: &[u8]) -> Result<(Option<Hash>, Vec<u8>), StoreError> {
    let (h, leaf) = (v.get(..32), v.get(32..));
    match (h.and_then(|h| Hash::from_slice(h).ok()), leaf) {
        (Some(h), Some(l)) => Ok((Some(h), l.to_vec())),
        _ => Err(StoreError::Corrupt(format!("entry {i}"))),
    }
}

impl Store {
    /// Entry `index` of a layout-1 store.
    pub(crate) fn record_v1(&self, index: u64) -> Result<Found, StoreError> {
        self.tree.get(e_key(index))?.map(|v| split(index, &v)).transpose()
    }

    /// Records `[start, end)` of a layout-1 store.
    pub(crate) fn records_v1(&self, start: u64, end: u64) -> impl Iterator<Item = Result<Record, StoreError>> + '_ {
        self.tree.range(e_key(start)..e_key(end)).map(|r| {
            let (k, v) = r?;
            let i = u64::from_be_bytes(
                k.get(1..9)
                    .and_then(|s| s.try_into().ok())
                    .ok_or_else(|| StoreError::Corrupt("entry key".into()))?,
            );
            let (h, leaf) = split(i, &v)?;
            Ok((i, h, leaf))
        })
    }

    /// Node `level`/`index` of a layout-1 store.
    pub(crate) fn node_v1(&self, level: u32, index: u64) -> Result<Hash, ProofError> {
        let src = |m: String| ProofError::Source(m);
        if level == 0 {
            return self
                .record_v1(index)
                .map_err(|e| src(e.to_string()))?
                .and_then(|(h, _)| h)
                .ok_or_else(|| src(format!("leaf {index} not stored")));
        }
        if level <= UNSTORED_LEVELS {
            let l = self.node_v1(level - 1, 2 * index)?;
            let r = self.node_v1(level - 1, 2 * index + 1)?;
            return Ok(node_hash(&l, &r));
        }
        let mut k = [0u8; 10];
        k[0] = b'n';
        k[1] = u8::try_from(level).map_err(|_| src(format!("no node at level {level}")))?;
        k[2..].copy_from_slice(&index.to_be_bytes());
        let v = self
            .tree
            .get(k)
            .map_err(|e| src(e.to_string()))?
            .ok_or_else(|| src(format!("node {level}/{index} not stored")))?;
        Hash::from_slice(&v).map_err(|e| src(e.to_string()))
    }
}
