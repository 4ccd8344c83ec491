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
//! 'Z' ‖ 0 (u32 BE), then the end of the file
//! ```

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
    w.write_all(b"Z\0\0\0\0").map_err(|e| e.to_string())?;
    Ok(n)
}

/// Reads the request-id section (after the export stream), handing batches to `each`; checks
/// that nothing follows its end frame. Returns how many ids it held.
///
/// # Errors
/// On a malformed or truncated section, or the first error of `each`.
pub fn read_requests<R: Read>(
    r: &mut R,
    mut each: impl FnMut(Vec<([u8; 32], u64, Hash)>) -> Result<(), String>,
) -> Result<u64, String> {
    let mut magic = [0u8; 18];
    r.read_exact(&mut magic)
        .map_err(|_| "the snapshot has no request-id section".to_string())?;
    if &magic != REQUESTS_MAGIC {
        return Err("the snapshot's request-id section has a bad magic".into());
    }
    let mut batch = Vec::new();
    let mut n = 0u64;
    loop {
        let mut h = [0u8; 5];
        r.read_exact(&mut h)
            .map_err(|_| "truncated request-id section".to_string())?;
        let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
        match h[0] {
            b'Z' if len == 0 => break,
            b'R' if len == REQUEST_FRAME => {}
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
    Ok(n)
}
