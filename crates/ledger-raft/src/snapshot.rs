//! The snapshot stream: the store's export stream (`docs/format.md` §Export) of the applied log,
//! followed by the request ids the export stream does not carry (so that de-duplication survives
//! a snapshot install). The store keeps a request id as a fingerprint of its SHA-256 (the lookup
//! index, `docs/format.md` §Store lookup index): that (the SHA-256's first 17 bytes, then zeros)
//! is what travels as the key:
//!
//! ```text
//! export stream, through its 'Z' end frame
//! "LEDGER-RAFT-REQ/1\n"                       18-byte magic
//! frame*: 'R' ‖ length (u32 BE, 72) ‖ index (u64 BE) ‖ digest (32 bytes) ‖ key (32 bytes)
//! at most one: 'W' ‖ length (u32 BE, 8 + n) ‖ size (u64 BE) ‖ note (n bytes, UTF-8)
//! 'Z' ‖ 0 (u32 BE), then the end of the file
//! ```
//!
//! The `'W'` frame is the latest witnessed checkpoint (the store's `mwitnessed` marker, which the
//! export stream does not carry); the receiver requires its note to be the stored checkpoint of
//! that size.

use ledger_core::hash::Hash;
use ledger_store::Store;
use std::io::{Read, Write};

/// Magic of the request-id section.
pub const REQUESTS_MAGIC: &[u8; 18] = b"LEDGER-RAFT-REQ/1\n";

/// Length of a request frame's body: index ‖ digest ‖ key.
const REQUEST_FRAME: usize = 72;

/// Request ids are restored in batches of this many.
const BATCH: usize = 10_000;

/// Writes the request-id section of `store`; returns how many ids it holds.
///
/// # Errors
/// On storage or write failure.
pub fn write_requests<W: Write>(store: &Store, w: &mut W) -> Result<u64, String> {
    w.write_all(REQUESTS_MAGIC).map_err(|e| e.to_string())?;
    let mut n = 0;
    let len = (REQUEST_FRAME as u32).to_be_bytes();
    store
        .for_each_request(|key, index, digest| {
            let io = |e: std::io::Error| ledger_store::StoreError::Io(e);
            w.write_all(b"R").map_err(io)?;
            w.write_all(&len).map_err(io)?;
            w.write_all(&index.to_be_bytes()).map_err(io)?;
            w.write_all(&digest.0).map_err(io)?;
            w.write_all(&key).map_err(io)?;
            n += 1;
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    if let Some((size, note)) = store.latest_witnessed().map_err(|e| e.to_string())? {
        let len = u32::try_from(8 + note.len()).map_err(|_| "witnessed checkpoint too long".to_string())?;
        w.write_all(b"W").map_err(|e| e.to_string())?;
        w.write_all(&len.to_be_bytes()).map_err(|e| e.to_string())?;
        w.write_all(&size.to_be_bytes()).map_err(|e| e.to_string())?;
        w.write_all(note.as_bytes()).map_err(|e| e.to_string())?;
    }
    w.write_all(b"Z\0\0\0\0").map_err(|e| e.to_string())?;
    Ok(n)
}

/// Longest witnessed checkpoint note a snapshot may carry.
const MAX_WITNESSED_NOTE: usize = 1 << 20;

/// What the request-id section held besides the ids.
#[derive(Debug, Default)]
pub struct SectionEnd {
    /// How many request ids it held.
    pub requests: u64,
    /// The latest witnessed checkpoint (size, note), if the sender had one.
    pub witnessed: Option<(u64, String)>,
}

/// Reads the request-id section (after the export stream), handing batches to `each`; checks
/// that nothing follows its end frame. Returns how many ids it held and the witnessed checkpoint.
///
/// # Errors
/// On a malformed or truncated section, or the first error of `each`.
pub fn read_requests<R: Read>(
    r: &mut R,
    mut each: impl FnMut(Vec<([u8; 32], u64, Hash)>) -> Result<(), String>,
) -> Result<SectionEnd, String> {
    let mut magic = [0u8; 18];
    r.read_exact(&mut magic)
        .map_err(|_| "the snapshot has no request-id section".to_string())?;
    if &magic != REQUESTS_MAGIC {
        return Err("the snapshot's request-id section has a bad magic".into());
    }
    let mut batch = Vec::new();
    let mut n = 0u64;
    let mut witnessed = None;
    loop {
        let mut h = [0u8; 5];
        r.read_exact(&mut h)
            .map_err(|_| "truncated request-id section".to_string())?;
        let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
        match h[0] {
            b'Z' if len == 0 => break,
            b'R' if len == REQUEST_FRAME => {}
            b'W' if witnessed.is_none() && (8..=8 + MAX_WITNESSED_NOTE).contains(&len) => {
                let mut b = vec![0u8; len];
                r.read_exact(&mut b)
                    .map_err(|_| "truncated witnessed-checkpoint frame".to_string())?;
                let mut size = [0u8; 8];
                size.copy_from_slice(&b[..8]);
                let note = String::from_utf8(b[8..].to_vec())
                    .map_err(|_| "the witnessed checkpoint is not UTF-8".to_string())?;
                witnessed = Some((u64::from_be_bytes(size), note));
                continue;
            }
            t => return Err(format!("bad request-id frame (tag {t:#04x}, {len} bytes)")),
        }
        let mut b = vec![0u8; len];
        r.read_exact(&mut b)
            .map_err(|_| "truncated request-id frame".to_string())?;
        let mut index = [0u8; 8];
        index.copy_from_slice(&b[..8]);
        let digest = Hash::from_slice(&b[8..40]).map_err(|e| e.to_string())?;
        let mut key = [0u8; 32];
        key.copy_from_slice(&b[40..72]);
        batch.push((key, u64::from_be_bytes(index), digest));
        n += 1;
        if batch.len() >= BATCH {
            each(std::mem::take(&mut batch))?;
        }
    }
    if !batch.is_empty() {
        each(batch)?;
    }
    let mut extra = [0u8; 1];
    if r.read(&mut extra).map_err(|e| e.to_string())? != 0 {
        return Err("bytes after the snapshot's end".into());
    }
    Ok(SectionEnd { requests: n, witnessed })
}
