//! RFC 3797 publicly verifiable random selection (D. Eastlake 3rd, "Publicly Verifiable Nominations
//! Committee (NomCom) Random Selection", June 2004), section 4 "A Suggested Precise Algorithm".
//!
//! Used for draws whose entropy comes from public sources named in advance (lottery results, index
//! closes): anyone holding the published values can recompute the selection.
//!
//! The algorithm, as implemented here:
//!
//! 1. Each value of a source is a non-negative decimal number. It is written without leading zeros
//!    (a lone `0` when the integer part is zero) and without trailing zeros in its fractional part.
//!    An integer is terminated by a period (`12` → `12.`); a number with a non-zero fractional part
//!    has the period between the whole and the fractional part and no terminator (`2.50` → `2.5`).
//! 2. The values of one source are ordered from smallest to largest, concatenated, and the result is
//!    suffixed with `/`.
//! 3. The source strings are concatenated in the pre-specified order: that is the key, taken as
//!    ASCII bytes (see [`canonical_key`]).
//! 4. For selection `i = 0, 1, 2, …` compute `MD5(i ‖ key ‖ i)` with `i` as two bytes big-endian,
//!    read the 16-byte digest as an unsigned big-endian 128-bit integer, and take it modulo the
//!    number of pool members not yet selected; with remainder `r`, the `(r + 1)`-th remaining member
//!    (in the public numbering order) is selected and removed (see [`select`]).
//!
//! The RFC's section 6 "Fully Worked Example" is reproduced in `tests/rfc3797.rs`.

use md5::{Digest, Md5};
use std::cmp::Ordering;

/// The most pool members (and so selections) the two-byte index of RFC 3797 section 4 allows, as in
/// the RFC's reference code (`pool limit of 2**16-1`).
pub const MAX_POOL: usize = 65_535;
/// Longest canonical key accepted from a `draw.sources` record, in bytes: each of up to
/// [`MAX_POOL`] selections hashes the whole key, so its length bounds the draw's work.
pub const MAX_KEY: usize = 4096;

/// Why a key or a selection could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rfc3797Error {
    /// No source of randomness was given.
    #[error("no source of randomness")]
    NoSources,
    /// A source had no value.
    #[error("source #{source_index} has no value")]
    EmptySource {
        /// 0-based index of the source.
        source_index: usize,
    },
    /// A value is not a non-negative decimal number (`digits` or `digits.digits`).
    #[error("source #{source_index}: {value:?} is not a non-negative decimal number")]
    NotANumber {
        /// 0-based index of the source.
        source_index: usize,
        /// The value as given.
        value: String,
    },
    /// More selections were asked for than the pool has members.
    #[error("cannot select {count} from a pool of {pool_size}")]
    CountExceedsPool {
        /// Selections asked for.
        count: usize,
        /// Pool size.
        pool_size: usize,
    },
    /// The pool is larger than the two-byte index allows.
    #[error("pool of {pool_size} exceeds the RFC 3797 limit of {MAX_POOL}")]
    PoolTooLarge {
        /// Pool size.
        pool_size: usize,
    },
}

/// A canonical decimal: integer digits without leading zeros (`"0"` for zero), fractional digits
/// without trailing zeros (possibly empty).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Decimal {
    int: String,
    frac: String,
}

impl Decimal {
    fn parse(s: &str) -> Option<Decimal> {
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i, f),
            None => (s, ""),
        };
        let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || !all_digits(int) || !all_digits(frac) || (s.contains('.') && frac.is_empty()) {
            return None;
        }
        let int = int.trim_start_matches('0');
        let int = if int.is_empty() { "0" } else { int };
        Some(Decimal {
            int: int.to_owned(),
            frac: frac.trim_end_matches('0').to_owned(),
        })
    }

    fn cmp_value(&self, other: &Decimal) -> Ordering {
        self.int
            .len()
            .cmp(&other.int.len())
            .then_with(|| self.int.cmp(&other.int))
            .then_with(|| self.frac.cmp(&other.frac))
    }

    fn write(&self, out: &mut String) {
        out.push_str(&self.int);
        out.push('.');
        out.push_str(&self.frac);
    }
}

/// Builds the RFC 3797 section 4 key string from the source values as published.
///
/// `sources` lists the sources in their pre-specified order; each source lists its values as
/// printed, each a non-negative decimal number `digits` or `digits.digits` (ASCII digits only; no
/// sign, exponent, grouping separators or surrounding spaces). Values within a source may be in any
/// order: they are sorted numerically. Leading zeros and trailing fractional zeros are dropped.
///
/// For the RFC's worked example, `[["9319"], ["2", "5", "12", "8", "10"], ["9", "18", "26", "34",
/// "41", "45"]]` gives `9319./2.5.8.10.12./9.18.26.34.41.45./`.
///
/// # Errors
///
/// [`Rfc3797Error::NoSources`], [`Rfc3797Error::EmptySource`], [`Rfc3797Error::NotANumber`].
pub fn canonical_key<S: AsRef<str>>(sources: &[Vec<S>]) -> Result<String, Rfc3797Error> {
    if sources.is_empty() {
        return Err(Rfc3797Error::NoSources);
    }
    let mut key = String::new();
    for (source, values) in sources.iter().enumerate() {
        if values.is_empty() {
            return Err(Rfc3797Error::EmptySource { source_index: source });
        }
        let mut nums = values
            .iter()
            .map(|v| {
                Decimal::parse(v.as_ref()).ok_or_else(|| Rfc3797Error::NotANumber {
                    source_index: source,
                    value: v.as_ref().to_owned(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        nums.sort_by(Decimal::cmp_value);
        for n in &nums {
            n.write(&mut key);
        }
        key.push('/');
    }
    Ok(key)
}

/// `MD5(i ‖ key ‖ i)` with `i` as two bytes big-endian: the digest behind selection `i` (0-based).
pub fn digest(key: &str, i: u16) -> [u8; 16] {
    let idx = i.to_be_bytes();
    let mut h = Md5::new();
    h.update(idx);
    h.update(key.as_bytes());
    h.update(idx);
    h.finalize().into()
}

/// Selects `count` members from a pool numbered `1..=pool_size` with the RFC 3797 section 4
/// algorithm, returning the selected 1-based pool positions in selection order.
///
/// The result for `count` is a prefix of the result for any larger `count`.
///
/// # Errors
///
/// [`Rfc3797Error::CountExceedsPool`] when `count > pool_size`, [`Rfc3797Error::PoolTooLarge`] when
/// `pool_size > MAX_POOL`.
pub fn select(pool_size: usize, key: &str, count: usize) -> Result<Vec<usize>, Rfc3797Error> {
    if pool_size > MAX_POOL {
        return Err(Rfc3797Error::PoolTooLarge { pool_size });
    }
    if count > pool_size {
        return Err(Rfc3797Error::CountExceedsPool { count, pool_size });
    }
    // The remaining positions as an order-statistic (Fenwick) tree: taking the r-th remaining
    // position costs O(log n), not the O(n) shift of removing it from a vector.
    let mut remaining = Remaining::new(pool_size);
    let mut selected = Vec::with_capacity(count);
    for i in 0..count {
        // count <= pool_size <= MAX_POOL = u16::MAX, so i < u16::MAX.
        let i = u16::try_from(i).map_err(|_| Rfc3797Error::PoolTooLarge { pool_size })?;
        let value = u128::from_be_bytes(digest(key, i));
        // remaining.len() >= 1 here since i < count <= pool_size; the cast back is lossless.
        let r = (value % remaining.len() as u128) as usize;
        selected.push(remaining.take(r));
    }
    Ok(selected)
}

/// Positions `1..=n` not yet selected, in order, as a Fenwick tree of 0/1 counts.
struct Remaining {
    tree: Vec<usize>,
    len: usize,
    top: usize,
}

impl Remaining {
    fn new(n: usize) -> Self {
        let mut tree = vec![0usize; n + 1];
        for i in 1..=n {
            tree[i] += 1;
            let parent = i + (i & i.wrapping_neg());
            if parent <= n {
                tree[parent] += tree[i];
            }
        }
        let top = if n == 0 {
            0
        } else {
            1 << (usize::BITS - 1 - n.leading_zeros())
        };
        Self { tree, len: n, top }
    }

    fn len(&self) -> usize {
        self.len
    }

    /// Removes and returns the `r`-th (0-based) remaining position; `r < self.len()`.
    fn take(&mut self, r: usize) -> usize {
        let n = self.tree.len() - 1;
        let (mut pos, mut want, mut step) = (0, r + 1, self.top);
        while step > 0 {
            let next = pos + step;
            if next <= n && self.tree[next] < want {
                pos = next;
                want -= self.tree[next];
            }
            step >>= 1;
        }
        let found = pos + 1;
        let mut j = found;
        while j <= n {
            self.tree[j] -= 1;
            j += j & j.wrapping_neg();
        }
        self.len -= 1;
        found
    }
}
