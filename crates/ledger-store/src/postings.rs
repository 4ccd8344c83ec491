//! Secondary-index postings in chunks (`docs/format.md` §Term postings).
//!
//! Key `x` ‖ tag (u8) ‖ value ‖ 0x00 ‖ first index of the chunk (u64 BE); value: the chunk's
//! indices in ascending order, each as the LEB128 varint of its distance from the previous one
//! (the first from the key's first index, so it is 0). A chunk holds at most [`CHUNK`] postings; a
//! group appends to the term's last chunk (found with a reverse range scan) or starts a new one,
//! so sled holds about one key per distinct term plus one per [`CHUNK`] postings, instead of one
//! key per posting.

use crate::{IndexTag, StoreError};
use std::collections::BTreeMap;

/// Postings per chunk at most.
pub const CHUNK: usize = 128;

/// `x` ‖ tag ‖ value ‖ 0x00; `None` for a value containing NUL (not indexed).
fn prefix(tag: u8, value: &str) -> Option<Vec<u8>> {
    if value.as_bytes().contains(&0) {
        return None;
    }
    let mut k = Vec::with_capacity(2 + value.len() + 9);
    k.push(b'x');
    k.push(tag);
    k.extend_from_slice(value.as_bytes());
    k.push(0);
    Some(k)
}

fn chunk_key(prefix: &[u8], first: u64) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(&first.to_be_bytes());
    k
}

/// The first index of a chunk key under `prefix`.
fn first_of(prefix: &[u8], k: &[u8]) -> Result<u64, StoreError> {
    let b: [u8; 8] = k
        .get(prefix.len()..)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| StoreError::Corrupt("term key".into()))?;
    Ok(u64::from_be_bytes(b))
}

fn decode(first: u64, v: &[u8]) -> Result<Vec<u64>, StoreError> {
    let bad = || StoreError::Corrupt(format!("term chunk at {first}"));
    let mut out = Vec::new();
    let mut cur = first;
    let mut i = 0;
    while i < v.len() {
        let mut d = 0u64;
        let mut shift = 0;
        loop {
            let b = *v.get(i).ok_or_else(bad)?;
            i += 1;
            if shift > 63 {
                return Err(bad());
            }
            d |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        cur = cur.checked_add(d).ok_or_else(bad)?;
        if !out.is_empty() && d == 0 {
            return Err(bad());
        }
        out.push(cur);
    }
    if out.len() > CHUNK || out.first().is_some_and(|&f| f != first) {
        return Err(bad());
    }
    Ok(out)
}

fn encode(postings: &[u64]) -> Vec<u8> {
    let mut v = Vec::with_capacity(postings.len() * 2);
    let mut prev = postings.first().copied().unwrap_or(0);
    for &p in postings {
        let mut d = p - prev;
        prev = p;
        loop {
            let b = (d & 0x7f) as u8;
            d >>= 7;
            if d == 0 {
                v.push(b);
                break;
            }
            v.push(b | 0x80);
        }
    }
    v
}

/// The last chunk of a term: (first index, postings).
fn last_chunk(tree: &sled::Tree, prefix: &[u8]) -> Result<Option<(u64, Vec<u64>)>, StoreError> {
    match tree
        .range(chunk_key(prefix, 0)..=chunk_key(prefix, u64::MAX))
        .next_back()
    {
        None => Ok(None),
        Some(r) => {
            let (k, v) = r?;
            let first = first_of(prefix, &k)?;
            Ok(Some((first, decode(first, &v)?)))
        }
    }
}

/// Adds the postings of a group (`(index, terms)` in ascending index order) to `batch`.
///
/// # Errors
/// On storage failure or a malformed last chunk.
pub fn add_group<'a>(
    tree: &sled::Tree,
    batch: &mut sled::Batch,
    entries: impl Iterator<Item = (u64, &'a [(IndexTag, String)])>,
) -> Result<(), StoreError> {
    let mut by_term: BTreeMap<Vec<u8>, Vec<u64>> = BTreeMap::new();
    for (index, terms) in entries {
        for (tag, value) in terms {
            if let Some(p) = prefix(tag.byte(), value) {
                let list = by_term.entry(p).or_default();
                if list.last().is_none_or(|&l| l < index) {
                    list.push(index);
                }
            }
        }
    }
    for (p, new) in by_term {
        let (mut first, mut chunk) = match last_chunk(tree, &p)? {
            Some((f, c)) if c.len() < CHUNK && c.last().is_some_and(|&l| new.first().is_some_and(|&n| n > l)) => (f, c),
            _ => (new.first().copied().unwrap_or(0), Vec::new()),
        };
        for i in new {
            if chunk.len() == CHUNK {
                batch.insert(chunk_key(&p, first), encode(&chunk));
                first = i;
                chunk.clear();
            }
            if chunk.is_empty() {
                first = i;
            }
            chunk.push(i);
        }
        batch.insert(chunk_key(&p, first), encode(&chunk));
    }
    Ok(())
}

/// Indices carrying the term, ascending, from `start`, at most `limit`.
///
/// # Errors
/// On storage failure or a malformed chunk.
pub fn query(tree: &sled::Tree, tag: IndexTag, value: &str, start: u64, limit: usize) -> Result<Vec<u64>, StoreError> {
    let Some(p) = prefix(tag.byte(), value) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    // The chunk that may hold `start` begins at or before it.
    let from = match tree.range(chunk_key(&p, 0)..=chunk_key(&p, start)).next_back() {
        Some(r) => first_of(&p, &r?.0)?,
        None => start,
    };
    for r in tree.range(chunk_key(&p, from)..=chunk_key(&p, u64::MAX)) {
        let (k, v) = r?;
        let first = first_of(&p, &k)?;
        for i in decode(first, &v)? {
            if i >= start {
                out.push(i);
                if out.len() == limit {
                    return Ok(out);
                }
            }
        }
    }
    Ok(out)
}

/// Whether entry `index` carries the term.
///
/// # Errors
/// On storage failure or a malformed chunk.
pub fn has(tree: &sled::Tree, tag: IndexTag, value: &str, index: u64) -> Result<bool, StoreError> {
    let Some(p) = prefix(tag.byte(), value) else {
        return Ok(false);
    };
    match tree.range(chunk_key(&p, 0)..=chunk_key(&p, index)).next_back() {
        None => Ok(false),
        Some(r) => {
            let (k, v) = r?;
            let first = first_of(&p, &k)?;
            Ok(decode(first, &v)?.binary_search(&index).is_ok())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn chunks_round_trip_and_reject_garbage() {
        let p = [0u64, 1, 300, 70_000, u64::MAX / 2];
        let shifted: Vec<u64> = p.iter().map(|x| x + 5).collect();
        assert_eq!(decode(5, &encode(&shifted)).unwrap(), shifted);
        assert!(decode(5, &[0x80]).is_err());
        assert!(decode(5, &[0, 0]).is_err());
        assert!(decode(5, &[1]).is_err());
        assert!(decode(5, &[0xff; 11]).is_err());
    }

    #[test]
    fn dense_and_sparse_terms_use_few_keys() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let t = db.open_tree("t").unwrap();
        let all = vec![(IndexTag::Kind, "micro.evaluation".to_string())];
        let mut n = 0u64;
        for g in 0..50u64 {
            let mut b = sled::Batch::default();
            let terms: Vec<(u64, Vec<(IndexTag, String)>)> = (0..100)
                .map(|j| {
                    let i = g * 100 + j;
                    let mut ts = all.clone();
                    if i % 10 == 0 {
                        ts.push((IndexTag::Subject, format!("s{}", i % 7)));
                    }
                    (i, ts)
                })
                .collect();
            add_group(&t, &mut b, terms.iter().map(|(i, ts)| (*i, ts.as_slice()))).unwrap();
            t.apply_batch(b).unwrap();
            n += 100;
        }
        // 5000 postings of one term in ⌈5000/128⌉ chunks, plus 7 sparse terms of ≤ 72 each.
        assert_eq!(t.len(), 5000usize.div_ceil(CHUNK) + 7);
        let q = query(&t, IndexTag::Kind, "micro.evaluation", 1000, 300).unwrap();
        assert_eq!(q, (1000..1300).collect::<Vec<_>>());
        let q = query(&t, IndexTag::Kind, "micro.evaluation", n - 3, 300).unwrap();
        assert_eq!(q, vec![n - 3, n - 2, n - 1]);
        let s3: Vec<u64> = (0..n).filter(|i| i % 10 == 0 && i % 7 == 3).collect();
        assert_eq!(query(&t, IndexTag::Subject, "s3", 0, 10_000).unwrap(), s3);
        assert_eq!(
            query(&t, IndexTag::Subject, "s3", s3[5] + 1, 2).unwrap(),
            s3[6..8].to_vec()
        );
        assert!(has(&t, IndexTag::Subject, "s3", s3[9]).unwrap());
        assert!(!has(&t, IndexTag::Subject, "s3", s3[9] + 10).unwrap());
        assert!(!has(&t, IndexTag::Subject, "s9", 0).unwrap());
        assert!(query(&t, IndexTag::Subject, "a\0b", 0, 5).unwrap().is_empty());
    }
}
