//! Verifiable random draws (requirement R7, `docs/draws.md`), algorithm `ledger-draw-v1`.
//!
//! The seed mixes the leaf hash of the `draw.commit` entry, the tree root at the committed future
//! size T (unknown to anyone when the pool was fixed) and every committed party's revealed secret,
//! in commit order. From the seed, a SHA-256 counter-mode stream feeds rejection sampling (unbiased
//! integers) and a partial Fisher–Yates shuffle over the canonical pool, with an independent sub-seed
//! per stratum. Everything here is a pure function of its inputs, so the node and any verifier get
//! the same selection byte for byte.

use crate::hash::Hash;
use sha2::{Digest, Sha256};

/// Domain tag of the seed.
pub const SEED_TAG: &[u8] = b"ledger-draw-v1/seed\0";
/// Domain tag of a stratum sub-seed.
pub const STRATUM_TAG: &[u8] = b"ledger-draw-v1/stratum\0";
/// Domain tag of the random stream blocks.
pub const STREAM_TAG: &[u8] = b"ledger-draw-v1/stream\0";

/// Errors in draw inputs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DrawError {
    /// The pool is not in canonical order (strictly increasing by id bytes) or has duplicates.
    #[error("pool is not in canonical order at position {0} (ids must be unique and sorted bytewise)")]
    NotCanonical(usize),
    /// More to select than there are candidates.
    #[error("cannot select {k} from {n} candidates{}", if .stratum.is_empty() { String::new() } else { format!(" in stratum {:?}", .stratum) })]
    NotEnough {
        /// Stratum name (empty for the whole pool).
        stratum: String,
        /// Requested.
        k: usize,
        /// Available.
        n: usize,
    },
    /// Time windows are empty or malformed.
    #[error("invalid time windows: {0}")]
    Windows(String),
}

/// seed = SHA-256(SEED_TAG ‖ commit leaf hash ‖ root at size T ‖ for each secret: u32 BE length ‖ secret).
pub fn seed(commit_leaf_hash: &Hash, root_at_t: &Hash, secrets: &[&[u8]]) -> Hash {
    let mut h = Sha256::new();
    h.update(SEED_TAG);
    h.update(commit_leaf_hash.0);
    h.update(root_at_t.0);
    for s in secrets {
        h.update((s.len() as u32).to_be_bytes());
        h.update(s);
    }
    Hash(h.finalize().into())
}

/// Sub-seed of a stratum: SHA-256(STRATUM_TAG ‖ seed ‖ u32 BE length ‖ stratum name).
pub fn stratum_seed(seed: &Hash, stratum: &str) -> Hash {
    let mut h = Sha256::new();
    h.update(STRATUM_TAG);
    h.update(seed.0);
    h.update((stratum.len() as u32).to_be_bytes());
    h.update(stratum.as_bytes());
    Hash(h.finalize().into())
}

/// SHA-256 counter-mode stream: block i = SHA-256(STREAM_TAG ‖ seed ‖ u64 BE i), read in order;
/// integers are taken as 8 big-endian bytes.
#[derive(Debug, Clone)]
pub struct Stream {
    seed: Hash,
    counter: u64,
    block: [u8; 32],
    pos: usize,
}

impl Stream {
    /// A stream from a seed.
    pub fn new(seed: Hash) -> Self {
        Self {
            seed,
            counter: 0,
            block: [0; 32],
            pos: 32,
        }
    }

    fn refill(&mut self) {
        let mut h = Sha256::new();
        h.update(STREAM_TAG);
        h.update(self.seed.0);
        h.update(self.counter.to_be_bytes());
        self.block = h.finalize().into();
        self.counter += 1;
        self.pos = 0;
    }

    /// The next 64-bit value (8 stream bytes, big-endian; blocks hold four).
    pub fn next_u64(&mut self) -> u64 {
        if self.pos + 8 > 32 {
            self.refill();
        }
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.block[self.pos..self.pos + 8]);
        self.pos += 8;
        u64::from_be_bytes(b)
    }

    /// A uniform integer in `[0, n)` by rejection sampling: draw x until x < 2^64 − (2^64 mod n),
    /// return x mod n. `n` must be at least 1.
    pub fn uniform(&mut self, n: u64) -> u64 {
        if n <= 1 {
            return 0;
        }
        let rem = (u64::MAX % n + 1) % n; // 2^64 mod n
        loop {
            let x = self.next_u64();
            // Accept x < 2^64 - rem, i.e. x <= u64::MAX - rem (every x when rem = 0).
            if x <= u64::MAX - rem {
                return x % n;
            }
        }
    }
}

/// Checks that ids are unique and sorted bytewise.
///
/// # Errors
/// The first position out of order.
pub fn check_canonical<S: AsRef<str>>(ids: &[S]) -> Result<(), DrawError> {
    for i in 1..ids.len() {
        if ids[i - 1].as_ref().as_bytes() >= ids[i].as_ref().as_bytes() {
            return Err(DrawError::NotCanonical(i));
        }
    }
    Ok(())
}

/// Partial Fisher–Yates: selects `k` of `candidates` (in their canonical order) in draw order.
/// For i in 0..k: j = i + uniform(n − i); swap positions i and j; the result is positions 0..k.
///
/// # Errors
/// When `k` exceeds the number of candidates.
pub fn select<S: Clone>(stream: &mut Stream, candidates: &[S], k: usize, stratum: &str) -> Result<Vec<S>, DrawError> {
    let n = candidates.len();
    if k > n {
        return Err(DrawError::NotEnough {
            stratum: stratum.to_string(),
            k,
            n,
        });
    }
    let mut v: Vec<S> = candidates.to_vec();
    for i in 0..k {
        let j = i + stream.uniform((n - i) as u64) as usize;
        v.swap(i, j);
    }
    v.truncate(k);
    Ok(v)
}

/// A stratum of the pool with its quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stratum<'a> {
    /// Name (e.g. a domain or department).
    pub name: &'a str,
    /// Members in canonical order, exclusions already removed.
    pub members: Vec<&'a str>,
    /// How many to select.
    pub quota: usize,
}

/// Stratified selection: each stratum, in the order given, draws its quota with its own sub-seed
/// stream. Returns (stratum name, selected ids in draw order).
///
/// # Errors
/// A stratum not in canonical order or smaller than its quota.
pub fn select_stratified<'a>(seed: &Hash, strata: &[Stratum<'a>]) -> Result<Vec<(&'a str, Vec<&'a str>)>, DrawError> {
    let mut out = Vec::with_capacity(strata.len());
    for s in strata {
        check_canonical(&s.members)?;
        let mut st = Stream::new(stratum_seed(seed, s.name));
        out.push((s.name, select(&mut st, &s.members, s.quota, s.name)?));
    }
    Ok(out)
}

/// Draws an evaluation time: a minute uniformly from the union of half-open windows
/// `[start, end)` given in UTC minutes since the epoch, in commit order.
///
/// # Errors
/// When there is no minute to draw from or a window is reversed.
pub fn select_minute(seed: &Hash, windows: &[(u64, u64)]) -> Result<u64, DrawError> {
    let mut total: u64 = 0;
    for (a, b) in windows {
        if b <= a {
            return Err(DrawError::Windows(format!("window [{a}, {b}) is empty or reversed")));
        }
        total = total
            .checked_add(b - a)
            .ok_or_else(|| DrawError::Windows("total too large".into()))?;
    }
    if total == 0 {
        return Err(DrawError::Windows("no windows".into()));
    }
    let mut r = Stream::new(*seed).uniform(total);
    for (a, b) in windows {
        if r < b - a {
            return Ok(a + r);
        }
        r -= b - a;
    }
    Err(DrawError::Windows("unreachable".into()))
}

/// Subject matching: shuffles all evaluators (Fisher–Yates over the canonical list) and deals them
/// to subjects in turn: the evaluator at shuffled position p goes to subject p mod |subjects|.
///
/// # Errors
/// When the evaluator list is not canonical or there are no subjects.
pub fn match_subjects<'a>(
    seed: &Hash,
    evaluators: &[&'a str],
    subjects: &[&'a str],
) -> Result<Vec<(&'a str, Vec<&'a str>)>, DrawError> {
    check_canonical(evaluators)?;
    if subjects.is_empty() {
        return Err(DrawError::NotEnough {
            stratum: String::new(),
            k: 1,
            n: 0,
        });
    }
    let mut st = Stream::new(*seed);
    let shuffled = select(&mut st, evaluators, evaluators.len(), "")?;
    let mut out: Vec<(&str, Vec<&str>)> = subjects.iter().map(|s| (*s, Vec::new())).collect();
    for (p, e) in shuffled.into_iter().enumerate() {
        out[p % subjects.len()].1.push(e);
    }
    Ok(out)
}
