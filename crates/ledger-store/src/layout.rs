//! Store layout 2 (issue 14): entries in bundles of 256, node hashes in C2SP tlog-tiles hash
//! tiles, the entries after the last full bundle in per-group chunks (`docs/format.md`, "Store
//! layout 2"). sled's cost is paid per group and per 256 entries, not per entry.
//!
//! | key | value |
//! |---|---|
//! | `mlayout` | u32 BE `2` |
//! | `b` ‖ bundle N (u64 BE) | the 256 leaves of entries `[256·N, 256·N+256)`, each `u32 BE length ‖ leaf`; stored as `Z ‖ u8 k ‖ k × (u32 BE plain length ‖ u32 BE frame length) ‖ k zstd frames` of 32 leaves each when smaller ([`compress_bundle`]); the writer keeps those stored bytes in a bundle file and writes here `F ‖ u64 BE offset ‖ u32 BE length ‖ SHA-256` ([`crate::bundle_files`]) |
//! | `t` ‖ level L (u8) ‖ tile N (u64 BE) | the tlog-tiles hash tile: 32-byte hashes of the level-`8·L` nodes `256·N …` (level 0: full tiles only; level ≥ 1: partial tiles are rewritten as they grow) |
//! | `p` ‖ first index (u64 BE) | one group's entries in the partial bundle: (leaf hash ‖ u32 BE length ‖ leaf)*; stored as `[0; 32] ‖ u32 BE count ‖ leaf hashes ‖ u32 BE length ‖ zstd frame of the framed leaves` when smaller ([`store_chunk`]) |
//!
//! A node of tree level `8·L + k` (`k < 8`) is the Merkle hash of `2^k` consecutive hashes of a
//! level-`L` tile (or of the leaf hashes in the chunks for the partial bundle); a small cache keeps
//! the subtrees of recently used tiles so that a warm proof reads one tile per tile level.

use crate::bundle_files::{BUNDLE_FILE, BUNDLES_PER_FILE, record_end};
use crate::{PreparedEntry, Store, StoreError, TamperFault};
use ledger_core::compact::CompletedNode;
use ledger_core::hash::{Hash, node_hash};
use ledger_core::merkle::ProofError;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// The layout this build writes.
pub const LAYOUT_VERSION: u32 = 2;

/// Key of the layout version.
pub const LAYOUT_KEY: &[u8] = b"mlayout";

/// Entries in a bundle, hashes in a tile.
pub const BUNDLE_ENTRIES: u64 = 256;

/// Bytes of a full hash tile.
pub const TILE_BYTES: usize = 256 * 32;

/// Tiles whose inner subtrees the proof cache keeps (each at most 16 KiB: 8 MiB in all).
const CACHE_TILES: usize = 512;

/// Key of full entry bundle `n`.
#[must_use]
pub fn bundle_key(n: u64) -> [u8; 9] {
    prefixed(b'b', n)
}

/// Key of the tail chunk whose first entry is `first`.
#[must_use]
pub fn chunk_key(first: u64) -> [u8; 9] {
    prefixed(b'p', first)
}

/// Key of hash tile `n` at tile level `level`.
#[must_use]
pub fn tile_key(level: u8, n: u64) -> [u8; 10] {
    let mut k = [0u8; 10];
    k[0] = b't';
    k[1] = level;
    k[2..].copy_from_slice(&n.to_be_bytes());
    k
}

fn prefixed(p: u8, n: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = p;
    k[1..].copy_from_slice(&n.to_be_bytes());
    k
}

/// The u64 after the one-byte prefix of a `b` or `p` key.
fn key_u64(k: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(k.get(1..9)?.try_into().ok()?))
}

fn len_prefixed(out: &mut Vec<u8>, leaf: &[u8]) {
    // Entries are at most MAX_ENTRY_BYTES (about 1 MiB): a u32 always holds the length.
    out.extend_from_slice(&u32::try_from(leaf.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(leaf);
}

/// Reads `u32 BE length ‖ bytes` at `at`; None when it does not fit.
fn take_framed(v: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let len = u32::from_be_bytes(v.get(at..at + 4)?.try_into().ok()?) as usize;
    let end = at.checked_add(4)?.checked_add(len)?;
    Some((v.get(at + 4..end)?, end))
}

/// Encodes a bundle value: each leaf as `u32 BE length ‖ leaf`.
#[must_use]
pub fn encode_bundle<'a>(leaves: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for l in leaves {
        len_prefixed(&mut out, l);
    }
    out
}

/// Decodes a bundle value into its leaves.
///
/// # Errors
/// The position of the first leaf that does not frame.
pub fn decode_bundle(v: &[u8]) -> Result<Vec<&[u8]>, usize> {
    let mut out = Vec::with_capacity(256);
    let mut at = 0;
    while at < v.len() {
        let (leaf, next) = take_framed(v, at).ok_or(out.len())?;
        out.push(leaf);
        at = next;
    }
    Ok(out)
}

/// First byte of a compressed stored bundle: `Z ‖ u8 k ‖ k × (u32 BE plain length ‖ u32 BE frame
/// length) ‖ k zstd frames`, frame `j` holding the plain framing of leaves `32·j …` (at most
/// [`FRAME_ENTRIES`]; each with its content checksum), so that one entry is read by decompressing
/// one frame. A plain bundle starts with the top byte of its first leaf's u32 length, which is 0
/// (entries are far below 16 MiB), so both forms coexist.
pub const BUNDLE_ZSTD: u8 = b'Z';

/// Entries per zstd frame of a compressed bundle: 32 store 151 B per micro-evaluation of 480 where
/// one frame of 256 stores 143, and reading one entry decompresses 32 entries, not 256.
pub const FRAME_ENTRIES: usize = 32;

/// Frames of a compressed bundle at most.
const MAX_FRAMES: usize = BUNDLE_ENTRIES as usize / FRAME_ENTRIES;

/// zstd level for bundles and chunks: level 1 compresses micro-evaluation bundles as well as
/// levels 3 and 9 (29.8 % against 29.9 % and 30.1 %) in half the time of level 3.
const ZSTD_LEVEL: i32 = 1;

/// Largest plain bundle: 256 entries of at most `MAX_ENTRY_BYTES`, each with its u32 length. A
/// compressed bundle that says or makes more is refused before anything is allocated for it.
pub const MAX_BUNDLE_BYTES: usize = 256 * (4 + ledger_core::entry::MAX_ENTRY_BYTES);

/// A zstd frame (with its content checksum) of `plain`, when the codec works.
fn zstd_frame(plain: &[u8]) -> Option<Vec<u8>> {
    thread_local! {
        // One compression context per writer thread: making one costs more than compressing a
        // small group's chunk.
        static CCTX: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    CCTX.with(|slot| {
        let mut slot = slot.try_borrow_mut().ok()?;
        if slot.is_none() {
            let mut c = zstd::bulk::Compressor::new(ZSTD_LEVEL).ok()?;
            c.set_parameter(zstd::stream::raw::CParameter::ChecksumFlag(true))
                .ok()?;
            *slot = Some(c);
        }
        slot.as_mut()?.compress(plain).ok()
    })
}

/// The `len` bytes a zstd frame gives, refusing a `len` over [`MAX_BUNDLE_BYTES`] before
/// allocating and a frame that gives anything else (bounded output).
fn unzstd(what: &str, len: usize, frame: &[u8]) -> Result<Vec<u8>, String> {
    if len > MAX_BUNDLE_BYTES {
        return Err(format!(
            "the compressed {what} says {len} bytes, over the largest bundle ({MAX_BUNDLE_BYTES})"
        ));
    }
    thread_local! {
        // One decompression context per thread (≈ 95 KB, freed when the thread ends): making one
        // for each frame (glibc handing its memory back and faulting it in again) cost more than
        // the decompression itself: entry(i) of a full bundle 46 µs with a new context per frame,
        // 20 µs with this one (docs/performance.md, "Compressed bundles and tail chunks").
        static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    let plain = DCTX
        .with(|slot| {
            let mut slot = slot.try_borrow_mut().map_err(std::io::Error::other)?;
            let d = match slot.take() {
                Some(d) => slot.insert(d),
                None => slot.insert(zstd::bulk::Decompressor::new()?),
            };
            d.decompress(frame, len)
        })
        .map_err(|e| format!("the compressed {what} does not decompress: {e}"))?;
    if plain.len() != len {
        return Err(format!(
            "the compressed {what} gives {} bytes, its header says {len}",
            plain.len()
        ));
    }
    Ok(plain)
}

/// The u32 BE at `at`, as a usize.
fn u32_at(v: &[u8], at: usize) -> Option<usize> {
    v.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(|b| u32::from_be_bytes(b) as usize)
}

/// The stored form of a plain bundle value: compressed ([`BUNDLE_ZSTD`], one zstd frame per
/// [`FRAME_ENTRIES`] leaves) when that is smaller, else the plain bytes themselves (random payloads
/// do not compress; a value that does not frame is left as it is).
#[must_use]
pub fn compress_bundle(plain: Vec<u8>) -> Vec<u8> {
    // Byte offsets of the frames' first leaves in `plain`, and its end.
    let mut cuts = vec![0usize];
    let mut at = 0;
    let mut n = 0usize;
    while at < plain.len() {
        let Some((_, next)) = take_framed(&plain, at) else {
            return plain;
        };
        at = next;
        n += 1;
        if n.is_multiple_of(FRAME_ENTRIES) || at == plain.len() {
            cuts.push(at);
        }
    }
    let Ok(k) = u8::try_from(cuts.len() - 1) else {
        return plain;
    };
    if k == 0 || usize::from(k) > MAX_FRAMES {
        return plain;
    }
    let mut head = vec![BUNDLE_ZSTD, k];
    let mut frames = Vec::new();
    for w in cuts.windows(2) {
        let part = &plain[w[0]..w[1]];
        let (Some(z), Ok(pl)) = (zstd_frame(part), u32::try_from(part.len())) else {
            return plain;
        };
        let Ok(zl) = u32::try_from(z.len()) else {
            return plain;
        };
        head.extend_from_slice(&pl.to_be_bytes());
        head.extend_from_slice(&zl.to_be_bytes());
        frames.extend_from_slice(&z);
    }
    if head.len() + frames.len() >= plain.len() {
        return plain;
    }
    head.extend_from_slice(&frames);
    head
}

/// The frames of a compressed bundle: (plain length, frame bytes) each.
fn bundle_frames(v: &[u8]) -> Result<Vec<(usize, &[u8])>, String> {
    Ok(bundle_header(v, v.len())?
        .into_iter()
        .map(|(pl, at, zl)| (pl, &v[at..at + zl]))
        .collect())
}

/// The frames of a compressed bundle of `total` stored bytes from its first bytes `head` (its
/// header at least): (plain length, offset, frame length) each, covering the `total` bytes exactly.
fn bundle_header(head: &[u8], total: usize) -> Result<Vec<(usize, usize, usize)>, String> {
    let cut = || "the compressed bundle is cut in its header".to_string();
    let k = usize::from(*head.get(1).ok_or_else(cut)?);
    if k == 0 || k > MAX_FRAMES {
        return Err(format!("the compressed bundle says {k} frames"));
    }
    let mut at = 2 + 8 * k;
    let mut plain = 0usize;
    let mut out = Vec::with_capacity(k);
    for j in 0..k {
        let pl = u32_at(head, 2 + 8 * j).ok_or_else(cut)?;
        let zl = u32_at(head, 6 + 8 * j).ok_or_else(cut)?;
        plain = plain.saturating_add(pl);
        if plain > MAX_BUNDLE_BYTES {
            return Err(format!(
                "the compressed bundle says {plain} bytes or more, over the largest bundle ({MAX_BUNDLE_BYTES})"
            ));
        }
        let end = at
            .checked_add(zl)
            .filter(|e| *e <= total)
            .ok_or_else(|| format!("the compressed bundle's frame {j} runs past the value"))?;
        out.push((pl, at, zl));
        at = end;
    }
    if at != total {
        return Err(format!(
            "the compressed bundle has {} bytes after its frames",
            total - at
        ));
    }
    Ok(out)
}

/// Bytes of a compressed bundle's header at most: the format byte, the frame count and 8 bytes
/// per frame.
pub(crate) const MAX_BUNDLE_HEADER: usize = 2 + 8 * MAX_FRAMES;

/// Frame `j` of `k` decompressed; it must frame as [`FRAME_ENTRIES`] leaves (the last: 1 to that).
fn bundle_frame(j: usize, k: usize, (pl, z): (usize, &[u8])) -> Result<Vec<u8>, String> {
    let plain = unzstd("bundle", pl, z)?;
    let n = decode_bundle(&plain)
        .map_err(|p| format!("leaf {} does not frame", j * FRAME_ENTRIES + p))?
        .len();
    if n == 0 || n > FRAME_ENTRIES || (j + 1 < k && n != FRAME_ENTRIES) {
        return Err(format!("the compressed bundle's frame {j} holds {n} leaves"));
    }
    Ok(plain)
}

/// The plain bundle value (`(u32 BE length ‖ leaf)*`) of a stored one, plain or compressed.
///
/// # Errors
/// Why a compressed value does not give its plain bytes: an unknown format byte, a cut header, a
/// stated length over [`MAX_BUNDLE_BYTES`], a frame that does not decompress (or fails its
/// checksum), gives another length than stated or another number of leaves.
pub fn stored_bundle(v: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, String> {
    match v.first() {
        None | Some(0) => Ok(std::borrow::Cow::Borrowed(v)),
        Some(&BUNDLE_ZSTD) => {
            let frames = bundle_frames(v)?;
            let k = frames.len();
            let mut out = Vec::with_capacity(frames.iter().map(|f| f.0).sum());
            for (j, f) in frames.into_iter().enumerate() {
                out.extend_from_slice(&bundle_frame(j, k, f)?);
            }
            Ok(std::borrow::Cow::Owned(out))
        }
        Some(b) => Err(format!("the bundle's format byte is {b:#04x}")),
    }
}

/// Leaf `pos` of a stored bundle (None beyond its leaves), decompressing one frame at most.
///
/// # Errors
/// As [`stored_bundle`] for the frame read, or the position of a leaf that does not frame.
pub fn stored_bundle_leaf(v: &[u8], pos: usize) -> Result<Option<Vec<u8>>, String> {
    if v.first() != Some(&BUNDLE_ZSTD) {
        let plain = stored_bundle(v)?;
        let leaves = decode_bundle(&plain).map_err(|p| format!("leaf {p} does not frame"))?;
        return Ok(leaves.get(pos).map(|l| l.to_vec()));
    }
    let frames = bundle_frames(v)?;
    let (j, k) = (pos / FRAME_ENTRIES, frames.len());
    let Some(f) = frames.get(j) else {
        return Ok(None);
    };
    frame_leaf(j, k, *f, pos)
}

/// Leaf `pos` of a compressed bundle from its frame `j` of `k`, (plain length, frame bytes).
fn frame_leaf(j: usize, k: usize, f: (usize, &[u8]), pos: usize) -> Result<Option<Vec<u8>>, String> {
    let plain = bundle_frame(j, k, f)?;
    let leaves = decode_bundle(&plain).map_err(|p| format!("leaf {} does not frame", j * FRAME_ENTRIES + p))?;
    Ok(leaves.get(pos % FRAME_ENTRIES).map(|l| l.to_vec()))
}

/// The leaves of a stored bundle value (plain or compressed), owned.
///
/// # Errors
/// Why it does not decompress, or the position of the first leaf that does not frame.
pub fn bundle_leaves(v: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let plain = stored_bundle(v)?;
    decode_bundle(&plain)
        .map(|ls| ls.into_iter().map(<[u8]>::to_vec).collect())
        .map_err(|p| format!("leaf {p} does not frame"))
}

/// Encodes a tail chunk: (leaf hash ‖ u32 BE length ‖ leaf) per entry.
#[must_use]
pub fn encode_chunk<'a>(records: impl IntoIterator<Item = (&'a Hash, &'a [u8])>) -> Vec<u8> {
    let mut out = Vec::new();
    for (h, l) in records {
        out.extend_from_slice(&h.0);
        len_prefixed(&mut out, l);
    }
    out
}

/// Decodes a plain tail chunk into (leaf hash, leaf) pairs.
///
/// # Errors
/// The position of the first record that does not frame.
pub fn decode_chunk(v: &[u8]) -> Result<Vec<(Hash, &[u8])>, usize> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < v.len() {
        let pos = out.len();
        let h = v.get(at..at + 32).and_then(|s| Hash::from_slice(s).ok()).ok_or(pos)?;
        let (leaf, next) = take_framed(v, at + 32).ok_or(pos)?;
        out.push((h, leaf));
        at = next;
    }
    Ok(out)
}

/// First 32 bytes of a compressed tail chunk: no leaf hash is all zeros, so a plain chunk never
/// starts with them.
pub const CHUNK_ZSTD_MARK: [u8; 32] = [0; 32];

/// The stored form of a tail chunk: compressed (`32 zero bytes ‖ u32 BE count ‖ count leaf hashes
/// ‖ u32 BE plain length ‖ zstd frame of (u32 BE length ‖ leaf)*`) when that is smaller, else
/// plain ([`encode_chunk`]). The leaf hashes stay outside the frame: proofs read them without
/// decompressing.
#[must_use]
pub fn store_chunk(records: &[(&Hash, &[u8])]) -> Vec<u8> {
    let plain = encode_chunk(records.iter().copied());
    let leaves = encode_bundle(records.iter().map(|(_, l)| *l));
    let (Ok(count), Ok(len)) = (u32::try_from(records.len()), u32::try_from(leaves.len())) else {
        return plain;
    };
    match zstd_frame(&leaves) {
        Some(z) if 40 + 32 * records.len() + z.len() < plain.len() => {
            let mut out = Vec::with_capacity(40 + 32 * records.len() + z.len());
            out.extend_from_slice(&CHUNK_ZSTD_MARK);
            out.extend_from_slice(&count.to_be_bytes());
            for (h, _) in records {
                out.extend_from_slice(&h.0);
            }
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&z);
            out
        }
        _ => plain,
    }
}

/// One record of a tail chunk: its leaf hash and leaf (borrowed from a plain chunk).
pub type ChunkRecord<'a> = (Hash, std::borrow::Cow<'a, [u8]>);

/// A stored chunk's fault: the position of the record it concerns and what is wrong.
pub type ChunkFault = (usize, String);

fn chunk_frame_fault(pos: usize) -> ChunkFault {
    (pos, "the chunk holding it does not frame".into())
}

/// The leaf hashes and, when compressed, the offset of the length and frame of a compressed chunk.
fn compressed_chunk_hashes(v: &[u8]) -> Result<(Vec<Hash>, usize), ChunkFault> {
    let cut = || (0, "the compressed chunk is cut in its header".to_string());
    let count = u32_at(v, 32).ok_or_else(cut)?;
    if count == 0 || count as u64 > BUNDLE_ENTRIES {
        return Err((0, format!("the compressed chunk says {count} entries")));
    }
    let end = 36 + 32 * count;
    let hashes = v
        .get(36..end)
        .ok_or_else(cut)?
        .chunks_exact(32)
        .filter_map(|c| Hash::from_slice(c).ok())
        .collect();
    Ok((hashes, end))
}

/// The (leaf hash, leaf) records of a stored tail chunk, plain or compressed.
///
/// # Errors
/// The position of the first record that does not frame, or (position 0) why a compressed chunk
/// does not decompress into as many leaves as it has hashes.
pub fn chunk_records(v: &[u8]) -> Result<Vec<ChunkRecord<'_>>, ChunkFault> {
    if !v.starts_with(&CHUNK_ZSTD_MARK) {
        return decode_chunk(v)
            .map(|rs| {
                rs.into_iter()
                    .map(|(h, l)| (h, std::borrow::Cow::Borrowed(l)))
                    .collect()
            })
            .map_err(chunk_frame_fault);
    }
    let (hashes, at) = compressed_chunk_hashes(v)?;
    let len = u32_at(v, at).ok_or_else(|| (0, "the compressed chunk is cut in its header".to_string()))?;
    let plain = unzstd("chunk", len, &v[at + 4..]).map_err(|d| (0, d))?;
    let leaves = decode_bundle(&plain).map_err(chunk_frame_fault)?;
    if leaves.len() != hashes.len() {
        return Err((
            leaves.len().min(hashes.len()),
            format!(
                "the compressed chunk holds {} leaves for {} hashes",
                leaves.len(),
                hashes.len()
            ),
        ));
    }
    Ok(hashes
        .into_iter()
        .zip(leaves)
        .map(|(h, l)| (h, std::borrow::Cow::Owned(l.to_vec())))
        .collect())
}

/// The leaf hashes of a stored tail chunk (a compressed one is not decompressed).
///
/// # Errors
/// As [`chunk_records`], for the hashes.
pub fn chunk_hashes(v: &[u8]) -> Result<Vec<Hash>, ChunkFault> {
    if v.starts_with(&CHUNK_ZSTD_MARK) {
        return compressed_chunk_hashes(v).map(|(h, _)| h);
    }
    decode_chunk(v)
        .map(|rs| rs.into_iter().map(|(h, _)| h).collect())
        .map_err(chunk_frame_fault)
}

/// One stored entry: index, stored leaf hash (None when its tile does not hold it), leaf.
pub(crate) type Record = (u64, Option<Hash>, Vec<u8>);

/// One stored entry found by index: its stored leaf hash (if any) and leaf.
pub(crate) type Found = Option<(Option<Hash>, Vec<u8>)>;

/// Cached tile subtrees by (tile level, tile, width), with their insertion order.
type TileMap = (HashMap<(u8, u64, usize), Arc<TileTree>>, VecDeque<(u8, u64, usize)>);

/// The cached partial level-0 tile: ((tile, width), subtrees).
type TailSlot = Option<((u64, usize), Arc<TileTree>)>;

/// Tail chunks of a bundle: the chunks' first indices and their (leaf hash, leaf) records.
type ChunkRecords = (Vec<u64>, Vec<(Hash, Vec<u8>)>);

/// The inner subtrees of a tile: `levels[k][i]` is the hash of hashes `i·2^k … (i+1)·2^k - 1`.
type TileTree = Vec<Vec<Hash>>;

fn tile_tree(hashes: Vec<Hash>) -> TileTree {
    let mut levels = vec![hashes];
    while let Some(last) = levels.last()
        && last.len() > 1
    {
        let next: Vec<Hash> = last.chunks_exact(2).map(|p| node_hash(&p[0], &p[1])).collect();
        levels.push(next);
    }
    levels
}

fn hashes_of(bytes: &[u8]) -> Vec<Hash> {
    bytes
        .chunks_exact(32)
        .filter_map(|c| Hash::from_slice(c).ok())
        .collect()
}

/// A small bounded cache of tile subtrees, keyed by (tile level, tile, width): a tile of a given
/// width never changes in an append-only store.
#[derive(Default)]
pub(crate) struct TileCache {
    inner: Mutex<TileMap>,
    // The partial level-0 tile (from the tail chunks): one slot, replaced as it grows, so that
    // its churn does not evict the full tiles.
    tail: Mutex<TailSlot>,
}

impl TileCache {
    fn tail_or(&self, key: (u64, usize), make: impl FnOnce() -> TileTree) -> Arc<TileTree> {
        let mut g = self.tail.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((k, t)) = g.as_ref()
            && *k == key
        {
            return Arc::clone(t);
        }
        let t = Arc::new(make());
        *g = Some((key, Arc::clone(&t)));
        t
    }

    fn peek(&self, key: (u8, u64, usize)) -> Option<Arc<TileTree>> {
        self.lock().0.get(&key).map(Arc::clone)
    }

    fn get_or(&self, key: (u8, u64, usize), make: impl FnOnce() -> TileTree) -> Arc<TileTree> {
        if let Some(t) = self.lock().0.get(&key) {
            return Arc::clone(t);
        }
        let t = Arc::new(make());
        let mut g = self.lock();
        if g.0.insert(key, Arc::clone(&t)).is_none() {
            g.1.push_back(key);
        }
        while g.1.len() > CACHE_TILES {
            if let Some(old) = g.1.pop_front() {
                g.0.remove(&old);
            }
        }
        t
    }

    pub(crate) fn clear(&self) {
        let mut g = self.lock();
        g.0.clear();
        g.1.clear();
        *self.tail.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TileMap> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn corrupt(m: String) -> StoreError {
    StoreError::Corrupt(m)
}

/// The fault of a stored chunk whose first entry is `first`.
fn chunk_malformed(first: u64, (pos, detail): ChunkFault) -> StoreError {
    StoreError::Tampered(TamperFault::Malformed {
        index: first + pos as u64,
        detail,
    })
}

fn malformed(index: u64, what: &str) -> StoreError {
    StoreError::Tampered(TamperFault::Malformed {
        index,
        detail: format!("the {what} holding it does not frame"),
    })
}

/// The plain value of bundle `n` as stored in `v`, or the bundle's fault at its first entry.
fn plain_bundle(n: u64, v: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, StoreError> {
    stored_bundle(v).map_err(|detail| {
        StoreError::Tampered(TamperFault::Malformed {
            index: n * BUNDLE_ENTRIES,
            detail,
        })
    })
}

impl Store {
    /// The tail chunks whose first index is in `[from, to)`, in order: (first, value).
    fn chunks_in(&self, from: u64, to: u64) -> Result<Vec<(u64, sled::IVec)>, StoreError> {
        let mut out = Vec::new();
        for r in self.tree.range(chunk_key(from)..chunk_key(to)) {
            let (k, v) = r?;
            let first = key_u64(&k).ok_or_else(|| corrupt("chunk key".into()))?;
            out.push((first, v));
        }
        Ok(out)
    }

    /// The records of the chunks of bundle `n` that start below `upto`, which must cover
    /// `[256·n, upto)` exactly: (chunk first indices, (leaf hash, leaf) in order).
    fn chunk_records_before(&self, n: u64, upto: u64) -> Result<ChunkRecords, StoreError> {
        let start = n * BUNDLE_ENTRIES;
        let mut firsts = Vec::new();
        let mut recs = Vec::new();
        for (first, v) in self.chunks_in(start, upto)? {
            if first != start + recs.len() as u64 {
                return Err(corrupt(format!(
                    "tail chunk {first}: entry {} missing",
                    start + recs.len() as u64
                )));
            }
            let d = chunk_records(&v).map_err(|f| chunk_malformed(first, f))?;
            recs.extend(d.into_iter().map(|(h, l)| (h, l.into_owned())));
            firsts.push(first);
        }
        if start + recs.len() as u64 != upto {
            return Err(corrupt(format!(
                "tail chunks of bundle {n} hold {} entries, {} expected",
                recs.len(),
                upto - start
            )));
        }
        Ok((firsts, recs))
    }

    /// Adds a group's entries and completed tile hashes to `b` (layout 2).
    pub(crate) fn stage_entries(
        &self,
        b: &mut sled::Batch,
        entries: &[PreparedEntry],
        nodes: &[CompletedNode],
    ) -> Result<(), StoreError> {
        let Some(first) = entries.first().map(|e| e.index) else {
            return Ok(());
        };
        for (k, e) in entries.iter().enumerate() {
            if e.index != first + k as u64 {
                return Err(corrupt(format!(
                    "group entries are not consecutive at index {}",
                    e.index
                )));
            }
        }
        // The end of the last bundle this group appended to a bundle file: (bundle, end).
        let mut appended: Option<(u64, u64)> = None;
        let mut at = 0usize;
        while let Some(e0) = entries.get(at) {
            let idx = e0.index;
            let n = idx / BUNDLE_ENTRIES;
            let bundle_end = (n + 1) * BUNDLE_ENTRIES;
            let take = usize::try_from(bundle_end - idx)
                .unwrap_or(usize::MAX)
                .min(entries.len() - at);
            let seg = &entries[at..at + take];
            if idx + take as u64 == bundle_end {
                let (firsts, earlier) = if idx > n * BUNDLE_ENTRIES {
                    self.chunk_records_before(n, idx)?
                } else {
                    (Vec::new(), Vec::new())
                };
                let mut tile = Vec::with_capacity(TILE_BYTES);
                for (h, _) in &earlier {
                    tile.extend_from_slice(&h.0);
                }
                for e in seg {
                    tile.extend_from_slice(&e.leaf_hash.0);
                }
                let leaves = earlier
                    .iter()
                    .map(|(_, l)| &l[..])
                    .chain(seg.iter().map(|e| &e.leaf[..]));
                let stored = compress_bundle(encode_bundle(leaves));
                let after = match appended {
                    Some((m, end)) if m + 1 == n && !n.is_multiple_of(BUNDLES_PER_FILE) => end,
                    _ => self.bundle_file_end(n)?,
                };
                let rec = self.bundles.append(n, after, &stored)?;
                appended = Some((n, after + stored.len() as u64));
                b.insert(&bundle_key(n)[..], rec);
                b.insert(&tile_key(0, n)[..], tile);
                for f in firsts {
                    b.remove(&chunk_key(f)[..]);
                }
            } else {
                b.insert(
                    &chunk_key(idx)[..],
                    store_chunk(&seg.iter().map(|e| (&e.leaf_hash, &e.leaf[..])).collect::<Vec<_>>()),
                );
            }
            at += take;
        }
        let mut tiles: BTreeMap<(u8, u64), Vec<u8>> = BTreeMap::new();
        for n in nodes.iter().filter(|n| n.level >= 8 && n.level % 8 == 0) {
            let level = u8::try_from(n.level / 8).map_err(|_| corrupt(format!("node level {}", n.level)))?;
            let tn = n.index / BUNDLE_ENTRIES;
            let pos = (n.index % BUNDLE_ENTRIES) as usize;
            let t = match tiles.entry((level, tn)) {
                std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => v.insert(
                    self.tree
                        .get(tile_key(level, tn))?
                        .map(|x| x.to_vec())
                        .unwrap_or_default(),
                ),
            };
            if t.len() != pos * 32 {
                return Err(corrupt(format!(
                    "tile {level}/{tn} holds {} hashes; the next node is number {pos}",
                    t.len() / 32
                )));
            }
            t.extend_from_slice(&n.hash.0);
        }
        for ((l, n), v) in tiles {
            b.insert(&tile_key(l, n)[..], v);
        }
        Ok(())
    }

    /// Where bundle `n` goes in its bundle file: after the last bundle of that file with a record
    /// pointing into it (0 for the file's first; a bundle stored in sled itself, from before bundle
    /// files, points nowhere).
    fn bundle_file_end(&self, n: u64) -> Result<u64, StoreError> {
        let first = n - n % BUNDLES_PER_FILE;
        for r in self.tree.range(bundle_key(first)..bundle_key(n)).rev() {
            let (_, v) = r?;
            if let Some(end) = record_end(&v) {
                return Ok(end);
            }
        }
        Ok(0)
    }

    /// The stored bytes of bundle `n` given its `b` value `v`: `v` itself, or the bytes in its
    /// bundle file that `v` points at, compared with the SHA-256 `v` holds
    /// ([`crate::bundle_files`]).
    pub(crate) fn resolve_bundle(&self, n: u64, v: sled::IVec) -> Result<sled::IVec, StoreError> {
        if v.first() != Some(&BUNDLE_FILE) {
            return Ok(v);
        }
        Ok(self.bundles.read(n, &v)?.into())
    }

    /// Leaf `pos` of bundle `n` in a bundle file, record `rec`: of a compressed bundle only its
    /// header and the one frame holding the leaf are read (checked by zstd's frame checksum); a
    /// plain bundle is read whole and compared with its SHA-256.
    fn file_bundle_leaf(&self, n: u64, rec: &[u8], pos: usize) -> Result<Option<Vec<u8>>, StoreError> {
        let fault = |detail: String| {
            StoreError::Tampered(TamperFault::Malformed {
                index: n * BUNDLE_ENTRIES,
                detail,
            })
        };
        let total = self.bundles.stored_len(n, rec)?;
        let head = self.bundles.read_at(n, rec, 0, total.min(MAX_BUNDLE_HEADER))?;
        if head.first() != Some(&BUNDLE_ZSTD) {
            // A plain bundle is read whole (and its SHA-256 compared): reuse the head if it is all.
            let all = if head.len() == total {
                self.bundles.checked(n, rec, head)?
            } else {
                self.bundles.read(n, rec)?
            };
            return stored_bundle_leaf(&all, pos).map_err(fault);
        }
        let frames = bundle_header(&head, total).map_err(fault)?;
        let (j, k) = (pos / FRAME_ENTRIES, frames.len());
        let Some(&(pl, at, zl)) = frames.get(j) else {
            return Ok(None);
        };
        let z = self.bundles.read_at(n, rec, at, zl)?;
        frame_leaf(j, k, (pl, &z), pos).map_err(fault)
    }

    /// The stored bytes of full bundle `n` (compressed or plain: [`stored_bundle`]), wherever they
    /// are kept; None when the bundle is not full.
    ///
    /// # Errors
    /// On storage failure, or bytes in a bundle file that are missing, cut or edited.
    pub fn stored_bundle_bytes(&self, n: u64) -> Result<Option<Vec<u8>>, StoreError> {
        match self.tree.get(bundle_key(n))? {
            Some(v) => Ok(Some(self.resolve_bundle(n, v)?.to_vec())),
            None => Ok(None),
        }
    }

    /// Entry `index` and its stored leaf hash (layout 2).
    ///
    /// A group that completes a bundle replaces its chunks by the bundle in one batch; a reader
    /// that finds neither (the batch landed between its two reads) looks at the bundle again.
    pub(crate) fn record_v2(&self, index: u64) -> Result<Found, StoreError> {
        match self.bundled_record(index)? {
            Some(r) => Ok(Some(r)),
            None => match self.chunk_record(index)? {
                Some(r) => Ok(Some(r)),
                None => self.bundled_record(index),
            },
        }
    }

    fn bundled_record(&self, index: u64) -> Result<Found, StoreError> {
        let n = index / BUNDLE_ENTRIES;
        let pos = (index % BUNDLE_ENTRIES) as usize;
        if let Some(v) = self.tree.get(bundle_key(n))? {
            let leaf = if v.first() == Some(&BUNDLE_FILE) {
                self.file_bundle_leaf(n, &v, pos)?
            } else if v.first() == Some(&BUNDLE_ZSTD) {
                stored_bundle_leaf(&v, pos).map_err(|detail| {
                    StoreError::Tampered(TamperFault::Malformed {
                        index: n * BUNDLE_ENTRIES,
                        detail,
                    })
                })?
            } else {
                let leaves = decode_bundle(&v).map_err(|p| malformed(n * BUNDLE_ENTRIES + p as u64, "bundle"))?;
                leaves.get(pos).map(|l| l.to_vec())
            };
            let Some(leaf) = leaf else {
                return Ok(None);
            };
            let tile = self.tree.get(tile_key(0, n))?;
            let h = tile
                .as_ref()
                .and_then(|t| t.get(pos * 32..pos * 32 + 32))
                .and_then(|s| Hash::from_slice(s).ok());
            return Ok(Some((h, leaf)));
        }
        Ok(None)
    }

    fn chunk_record(&self, index: u64) -> Result<Found, StoreError> {
        let n = index / BUNDLE_ENTRIES;
        let chunks = self.chunks_in(n * BUNDLE_ENTRIES, index + 1)?;
        let Some((first, v)) = chunks.last() else {
            return Ok(None);
        };
        let recs = chunk_records(v).map_err(|f| chunk_malformed(*first, f))?;
        let Some((h, leaf)) = usize::try_from(index - first).ok().and_then(|i| recs.get(i)) else {
            return Ok(None);
        };
        Ok(Some((Some(*h), leaf.to_vec())))
    }

    /// The leaf hash of entry `index` (layout 2), from its tile or its chunk.
    pub(crate) fn leaf_hash_v2(&self, index: u64) -> Result<Option<Hash>, StoreError> {
        let n = index / BUNDLE_ENTRIES;
        let pos = (index % BUNDLE_ENTRIES) as usize;
        if let Some(t) = self.tree.get(tile_key(0, n))? {
            return Ok(t.get(pos * 32..pos * 32 + 32).and_then(|s| Hash::from_slice(s).ok()));
        }
        if let Some((h, _)) = self.chunk_record(index)? {
            return Ok(h);
        }
        // The bundle (and its tile) may have replaced the chunks since the first read.
        Ok(self
            .tree
            .get(tile_key(0, n))?
            .and_then(|t| t.get(pos * 32..pos * 32 + 32).and_then(|s| Hash::from_slice(s).ok())))
    }

    /// Hashes of tile `n` at tile level `level`: the stored tile, or for level 0 without one the
    /// leaf hashes of the consecutive chunks from the bundle's start. The flag says it was stored.
    pub(crate) fn tile_hashes(&self, level: u8, n: u64) -> Result<(sled::IVec, bool), StoreError> {
        if let Some(t) = self.tree.get(tile_key(level, n))? {
            return Ok((t, true));
        }
        let mut out = Vec::new();
        if level == 0 {
            let start = n * BUNDLE_ENTRIES;
            for (first, v) in self.chunks_in(start, start + BUNDLE_ENTRIES)? {
                if first != start + (out.len() / 32) as u64 {
                    break;
                }
                for h in chunk_hashes(&v).map_err(|f| chunk_malformed(first, f))? {
                    out.extend_from_slice(&h.0);
                }
            }
            // A group may have completed the bundle between the two reads.
            if let Some(t) = self.tree.get(tile_key(level, n))? {
                return Ok((t, true));
            }
        }
        Ok((out.into(), false))
    }

    /// Node `level`/`index` from the tiles (layout 2).
    pub(crate) fn node_v2(&self, level: u32, index: u64) -> Result<Hash, ProofError> {
        let src = |m: String| ProofError::Source(m);
        let tl = u8::try_from(level / 8).map_err(|_| src(format!("no node at level {level}")))?;
        let k = level % 8;
        let first = index
            .checked_mul(1 << k)
            .ok_or_else(|| src(format!("node {level}/{index} is beyond any log")))?;
        let tn = first / BUNDLE_ENTRIES;
        let pos = (first % BUNDLE_ENTRIES) as usize;
        let pick = |tree: &TileTree| {
            tree.get(k as usize)
                .and_then(|l| l.get(pos >> k))
                .copied()
                .ok_or_else(|| src(format!("node {level}/{index} not stored")))
        };
        // A full tile never changes: once cached, it is answered without reading the store.
        if let Some(tree) = self.cache.peek((tl, tn, 256)) {
            return pick(&tree);
        }
        let (bytes, stored) = self.tile_hashes(tl, tn).map_err(|e| src(e.to_string()))?;
        let width = bytes.len() / 32;
        if pos + (1usize << k) > width {
            return Err(src(format!("node {level}/{index} not stored")));
        }
        if k == 0 && width < 256 {
            return Hash::from_slice(&bytes[pos * 32..pos * 32 + 32]).map_err(|e| src(e.to_string()));
        }
        let tree = if stored {
            self.cache.get_or((tl, tn, width), || tile_tree(hashes_of(&bytes)))
        } else {
            self.cache.tail_or((tn, width), || tile_tree(hashes_of(&bytes)))
        };
        pick(&tree)
    }

    /// Removes the entries from `from` on, with their bundles, chunks and tile hashes, and sets
    /// the size to `from`, in one batch (for `ledger-node debug-fork`, which then appends a
    /// rewritten history). The `h`, `r` and `x` keys of the removed entries are left to the caller.
    ///
    /// # Errors
    /// On storage failure, a read-only store, or `from` above the size.
    pub fn truncate(&self, from: u64) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly);
        }
        let size = self.size()?;
        if from > size {
            return Err(corrupt(format!("cannot truncate a log of {size} entries to {from}")));
        }
        let mut b = sled::Batch::default();
        let n0 = from / BUNDLE_ENTRIES;
        let start0 = n0 * BUNDLE_ENTRIES;
        // The bundle holding `from`: its entries before `from` become one chunk.
        if let Some(v) = self.tree.get(bundle_key(n0))? {
            let v = self.resolve_bundle(n0, v)?;
            let v = plain_bundle(n0, &v)?;
            let leaves = decode_bundle(&v).map_err(|p| malformed(start0 + p as u64, "bundle"))?;
            let tile = self.tree.get(tile_key(0, n0))?.unwrap_or_default();
            let keep = usize::try_from(from - start0).unwrap_or(0);
            let hs = hashes_of(&tile);
            if keep > 0 {
                b.insert(
                    &chunk_key(start0)[..],
                    store_chunk(&hs.iter().zip(leaves.iter().copied()).take(keep).collect::<Vec<_>>()),
                );
            }
        }
        for r in self.tree.range(bundle_key(n0)..=bundle_key(u64::MAX)) {
            let (k, _) = r?;
            if let Some(n) = key_u64(&k) {
                b.remove(&bundle_key(n)[..]);
                b.remove(&tile_key(0, n)[..]);
            }
        }
        // Chunks: those from `from` on go; the one holding `from` is cut.
        for (first, v) in self.chunks_in(start0, u64::MAX)? {
            if first >= from {
                b.remove(&chunk_key(first)[..]);
            } else {
                let recs = chunk_records(&v).map_err(|f| chunk_malformed(first, f))?;
                let keep = usize::try_from(from - first).unwrap_or(usize::MAX);
                if keep < recs.len() {
                    b.insert(
                        &chunk_key(first)[..],
                        store_chunk(&recs.iter().take(keep).map(|(h, l)| (h, &l[..])).collect::<Vec<_>>()),
                    );
                }
            }
        }
        // Tiles of level >= 1 keep the nodes complete below `from`.
        for r in self.tree.scan_prefix(b"t") {
            let (k, v) = r?;
            let (Some(&level), Some(n)) = (
                k.get(1),
                k.get(2..10).and_then(|s| s.try_into().ok()).map(u64::from_be_bytes),
            ) else {
                continue;
            };
            if level == 0 {
                continue;
            }
            let complete = from.checked_shr(8 * u32::from(level)).unwrap_or(0);
            let keep = complete.saturating_sub(n * BUNDLE_ENTRIES).min(BUNDLE_ENTRIES) as usize;
            if keep == 0 {
                b.remove(&k[..]);
            } else if keep * 32 < v.len() {
                b.insert(&k[..], &v[..keep * 32]);
            }
        }
        b.insert(&b"msize"[..], &from.to_be_bytes());
        // Entries appended after the cut are new: their tickets are checked again at start-up.
        if let Some(v) = self.tree.get(crate::journal::TICKETS_CHECKED_KEY)?
            && crate::read_u64(&v, "mtickets.checked").is_ok_and(|c| c > from)
        {
            b.insert(crate::journal::TICKETS_CHECKED_KEY, &from.to_be_bytes());
        }
        self.tree.apply_batch(b)?;
        self.db.flush()?;
        self.cache.clear();
        Ok(())
    }
}

/// Records `[start, end)` of a layout-2 store in index order, bundle by bundle then the chunks.
pub(crate) struct Records<'a> {
    store: &'a Store,
    start: u64,
    end: u64,
    // The index after the last entry read.
    next: u64,
    bundles: Option<sled::Iter>,
    chunks: Option<sled::Iter>,
    buf: VecDeque<Record>,
    done: bool,
    // The last bundle read whole (for a scan resumed after it: [`Self::resume_at`]).
    last_bundle: Option<u64>,
}

impl<'a> Records<'a> {
    pub(crate) fn new(store: &'a Store, start: u64, end: u64) -> Self {
        Self::from_bundle(store, start / BUNDLE_ENTRIES, start, end)
    }

    /// The records of [`Self::new`]`(store, 0, end)` from bundle `n` on: the rest of that
    /// sequence after a pass that stopped where [`Self::resume_at`] said (stray and duplicate
    /// records are still yielded, as in one pass).
    pub(crate) fn resumed(store: &'a Store, (n, next): (u64, u64), end: u64) -> Self {
        let mut r = Self::from_bundle(store, n, 0, end);
        r.next = next;
        r
    }

    fn from_bundle(store: &'a Store, n: u64, start: u64, end: u64) -> Self {
        Self {
            store,
            start,
            end,
            next: n.saturating_mul(BUNDLE_ENTRIES),
            bundles: Some(store.tree.range(bundle_key(n)..)),
            chunks: None,
            buf: VecDeque::new(),
            done: false,
            last_bundle: None,
        }
    }

    /// Where a scan may stop and resume with [`Self::resumed`] yielding exactly the records this
    /// iterator has not yielded yet: the bundle after the last one read, while every record read
    /// so far was yielded and the tail chunks were not reached (with the index after the last
    /// entry read).
    pub(crate) fn resume_at(&self) -> Option<(u64, u64)> {
        if self.done || self.chunks.is_some() || self.bundles.is_none() || !self.buf.is_empty() {
            return None;
        }
        Some((self.last_bundle?.checked_add(1)?, self.next))
    }

    fn want(&self, i: u64) -> bool {
        i >= self.start && i < self.end
    }

    /// Queues the entries of bundle `n` from index `from` on.
    fn push_bundle(&mut self, n: u64, v: sled::IVec, from: u64) -> Result<(), StoreError> {
        let first = n * BUNDLE_ENTRIES;
        let v = self.store.resolve_bundle(n, v)?;
        let v = plain_bundle(n, &v)?;
        let leaves = decode_bundle(&v).map_err(|p| malformed(first + p as u64, "bundle"))?;
        let tile = self.store.tree.get(tile_key(0, n))?;
        for (j, leaf) in leaves.into_iter().enumerate() {
            let i = first + j as u64;
            if i < from {
                continue;
            }
            self.next = self.next.max(i + 1);
            if self.want(i) {
                let h = tile
                    .as_ref()
                    .and_then(|t| t.get(j * 32..j * 32 + 32))
                    .and_then(|s| Hash::from_slice(s).ok());
                self.buf.push_back((i, h, leaf.to_vec()));
            }
        }
        Ok(())
    }

    /// Fills `buf` from the next bundle or chunk; false at the end.
    fn refill(&mut self) -> Result<bool, StoreError> {
        if let Some(it) = self.bundles.as_mut() {
            match it.next() {
                Some(r) => {
                    let (k, v) = r?;
                    if k.first() == Some(&b'b')
                        && let Some(n) = key_u64(&k)
                        && n.saturating_mul(BUNDLE_ENTRIES) < self.end
                    {
                        self.push_bundle(n, v, 0)?;
                        self.last_bundle = Some(n);
                        return Ok(true);
                    }
                    self.bundles = None;
                }
                None => self.bundles = None,
            }
        }
        if self.chunks.is_none() {
            self.chunks = Some(self.store.tree.range(chunk_key(0)..));
        }
        loop {
            let item = match self.chunks.as_mut().and_then(Iterator::next) {
                None => None,
                Some(r) => {
                    let (k, v) = r?;
                    key_u64(&k).filter(|_| k.first() == Some(&b'p')).map(|f| (f, v))
                }
            };
            let first = item.as_ref().map_or(u64::MAX, |(f, _)| *f);
            if first > self.next && self.next < self.end {
                // A group completed the bundle holding `next` (replacing its chunks) after the
                // bundles or those chunks were scanned: read the rest of it, then the chunks after.
                let n = self.next / BUNDLE_ENTRIES;
                if let Some(bv) = self.store.tree.get(bundle_key(n))? {
                    let from = self.next;
                    self.push_bundle(n, bv, from)?;
                    // A bundle short of `next` (cut in the data directory) adds nothing: the
                    // iteration ends there instead of reading it again forever.
                    if self.next > from {
                        self.chunks = Some(self.store.tree.range(chunk_key(self.next)..));
                        return Ok(true);
                    }
                }
            }
            let Some((first, v)) = item.filter(|(f, _)| *f < self.end) else {
                return Ok(false);
            };
            let recs = chunk_records(&v).map_err(|f| chunk_malformed(first, f))?;
            let mut any = false;
            for (j, (h, leaf)) in recs.into_iter().enumerate() {
                let i = first + j as u64;
                self.next = self.next.max(i + 1);
                if self.want(i) {
                    self.buf.push_back((i, Some(h), leaf.into_owned()));
                    any = true;
                }
            }
            if any {
                return Ok(true);
            }
        }
    }
}

impl Iterator for Records<'_> {
    type Item = Result<Record, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.buf.pop_front() {
                return Some(Ok(r));
            }
            if self.done {
                return None;
            }
            match self.refill() {
                Ok(true) => {}
                Ok(false) => {
                    self.done = true;
                    return None;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Raw edits of a layout-2 store, for tests that play the attacker (`Store::raw_tree`).
#[doc(hidden)]
pub mod raw {
    use super::{chunk_key, chunk_records, encode_chunk, key_u64};
    use ledger_core::hash::Hash;
    use std::collections::BTreeMap;

    /// The entries of the tail chunks by index: (leaf hash, leaf).
    ///
    /// # Panics
    /// On a storage failure or a chunk that does not frame (test helper).
    #[must_use]
    #[allow(clippy::expect_used)]
    pub fn read_tail(t: &sled::Tree) -> BTreeMap<u64, (Hash, Vec<u8>)> {
        let mut out = BTreeMap::new();
        for r in t.scan_prefix(b"p") {
            let (k, v) = r.expect("read chunk");
            let first = key_u64(&k).expect("chunk key");
            for (j, (h, l)) in chunk_records(&v).expect("chunk frames").into_iter().enumerate() {
                out.insert(first + j as u64, (h, l.to_vec()));
            }
        }
        out
    }

    /// Moves every full bundle kept in a bundle file back into sled itself (the form written
    /// before bundle files, which is still read as it is), so that a test can edit bundles
    /// through the raw tree; the bundle files are left as they are.
    ///
    /// # Panics
    /// On a storage failure or a bundle file that does not give its bytes (test helper).
    #[allow(clippy::expect_used)]
    pub fn inline_bundles(store: &crate::Store) {
        let t = store.raw_tree();
        let refs: Vec<u64> = t
            .scan_prefix(b"b")
            .map(|r| r.expect("read bundle"))
            .filter(|(_, v)| v.first() == Some(&crate::bundle_files::BUNDLE_FILE))
            .map(|(k, _)| key_u64(&k).expect("bundle key"))
            .collect();
        for n in refs {
            let bytes = store.stored_bundle_bytes(n).expect("bundle bytes").expect("bundle");
            t.insert(super::bundle_key(n), bytes).expect("write bundle");
        }
    }

    /// Replaces every tail chunk by one chunk per entry of `tail` (each under its own index).
    ///
    /// # Panics
    /// On a storage failure (test helper).
    #[allow(clippy::expect_used)]
    pub fn write_tail(t: &sled::Tree, tail: &BTreeMap<u64, (Hash, Vec<u8>)>) {
        for r in t.scan_prefix(b"p") {
            let (k, _) = r.expect("read chunk");
            t.remove(k).expect("remove chunk");
        }
        for (i, (h, l)) in tail {
            t.insert(chunk_key(*i), encode_chunk([(h, &l[..])]))
                .expect("write chunk");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::bundle_key;
    use crate::Store;
    use crate::bundle_files::{BUNDLE_FILE, file_name};

    fn record(off: u64, len: u32) -> Vec<u8> {
        let mut r = vec![BUNDLE_FILE];
        r.extend_from_slice(&off.to_be_bytes());
        r.extend_from_slice(&len.to_be_bytes());
        r.extend_from_slice(&[7; 32]);
        r
    }

    /// A file holds bundles `4096·k …`: a bundle goes after the last one of its own file that is
    /// in it, and the first of the next file starts that file (a million entries are too many for
    /// the integration tests to reach this boundary).
    #[test]
    fn a_bundle_goes_after_the_last_one_in_its_own_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.bundle_file_end(0).unwrap(), 0);
        store.tree.insert(bundle_key(4094), record(10, 5)).unwrap();
        assert_eq!(store.bundle_file_end(4095).unwrap(), 15);
        store.tree.insert(bundle_key(4095), record(15, 5)).unwrap();
        assert_eq!(store.bundle_file_end(4096).unwrap(), 0);
        store.tree.insert(bundle_key(4096), record(0, 7)).unwrap();
        assert_eq!(store.bundle_file_end(4097).unwrap(), 7);
        // A bundle kept in sled itself (written before bundle files) points nowhere.
        store.tree.insert(bundle_key(4097), vec![0u8; 100]).unwrap();
        assert_eq!(store.bundle_file_end(4098).unwrap(), 7);
        assert_eq!(file_name(4095), "0000000000.bundles");
        assert_eq!(file_name(4096), "0000000001.bundles");
    }
}
