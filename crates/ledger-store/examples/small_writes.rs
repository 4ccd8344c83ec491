//! Measures what a small `pwrite` into a file costs depending on how the file was first written:
//! in one piece (Linux ≥ 6.16 then caches it in large folios) or in 4 KiB pieces, as the lookup
//! index writes a grown shard (`hindex::create_shard`; docs/performance.md, "Small index writes
//! into large folios"); and, for the file written in pieces, after its pages were evicted and read
//! back in by the writes, by random small reads, or by one sequential read (readahead brings a file
//! back in large folios). Prints CPU µs per 40-byte write (user + system, from /proc).
//!
//! Run: `cargo run --release -p ledger-store --example small_writes [MiB] [writes]`

// Shared with the other examples, which use all of it.
#[allow(dead_code)]
mod common;

use std::os::unix::fs::FileExt;

/// This process's CPU seconds (user + system) from /proc/self/stat.
fn cpu_secs() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

/// CPU µs per 40-byte `pwrite` at `writes` fixed pseudo-random offsets (splitmix64, the same
/// sequence every time) of a file of `size` bytes.
fn small_writes(f: &std::fs::File, size: usize, writes: u64) -> std::io::Result<f64> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let slot = [7u8; 40];
    let t = cpu_secs();
    for _ in 0..writes {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        let at = (z ^ (z >> 31)) % (size as u64 - 40);
        f.write_all_at(&slot, at)?;
    }
    Ok((cpu_secs() - t) * 1e6 / writes as f64)
}

/// Writes `f` to disk and drops its pages from the page cache (as a reboot, or memory pressure,
/// would).
fn evict(f: &std::fs::File) -> std::io::Result<()> {
    f.sync_all()?;
    rustix::fs::fadvise(f, 0, None, rustix::fs::Advice::DontNeed)?;
    Ok(())
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let writes: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let dir = common::scratch_dir("small-writes-");
    let size = mib << 20;
    for round in 0..2 {
        for piece in [size, 4096] {
            let path = dir.path().join(format!("f{round}-{piece}"));
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)?;
            // Touched, as the body of a grown shard is (its slots copied in).
            let body = vec![1u8; size];
            for (i, chunk) in body.chunks(piece).enumerate() {
                f.write_all_at(chunk, (i * piece) as u64)?;
            }
            f.sync_all()?;
            let how = if piece == size { "one piece" } else { "4 KiB pieces" };
            let us = small_writes(&f, size, writes)?;
            println!("file of {mib} MiB written in {how:<12}: {us:6.2} µs CPU per 40-byte pwrite ({writes} writes)");
            if piece == 4096 {
                // The same file once its pages were evicted, brought back into the cache by the
                // small writes themselves, by random small reads (lookups), or by reading it from
                // start to end (readahead: a copy, a checksum, an archive of the data directory).
                let mut buf = vec![0u8; 1 << 20];
                for back in ["by the writes", "by random 40-byte reads", "by one sequential read"] {
                    evict(&f)?;
                    match back {
                        "by random 40-byte reads" => {
                            let mut x = 1u64;
                            for _ in 0..writes {
                                x = x
                                    .wrapping_mul(6_364_136_223_846_793_005)
                                    .wrapping_add(1_442_695_040_888_963_407);
                                f.read_exact_at(&mut buf[..40], (x >> 11) % (size as u64 - 40))?;
                            }
                        }
                        "by one sequential read" => {
                            for at in (0..size).step_by(buf.len()) {
                                f.read_exact_at(&mut buf, at as u64)?;
                            }
                        }
                        _ => {
                            // The first pass reads each page in (counted apart), the second is measured.
                            small_writes(&f, size, writes)?;
                        }
                    }
                    let us = small_writes(&f, size, writes)?;
                    println!("  evicted, then cached again {back:<25}: {us:6.2} µs CPU per 40-byte pwrite");
                }
            }
            drop(f);
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}
