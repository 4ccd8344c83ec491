//! Replays every file of every fuzz corpus (`fuzz/corpus/<target>/`) through the fuzz targets, so
//! the ordinary test suite re-runs all seeds and every crash ever found without AFL
//! (docs/fuzzing.md). The targets and the verifier modules they drive are compiled here from the
//! same source files as in the `fuzz/` crate.
#![allow(dead_code, unused_imports, missing_docs, clippy::unwrap_used)]

#[path = "../src/bundle.rs"]
mod bundle;
#[path = "../src/bundle_page.rs"]
mod bundle_page;
#[path = "../src/fault.rs"]
mod fault;
#[path = "../src/pages.rs"]
mod pages;
#[path = "../src/pipeline.rs"]
mod pipeline;
#[path = "../src/prepare.rs"]
mod prepare;
#[path = "../src/replay.rs"]
mod replay;
#[path = "../src/report.rs"]
mod report;
#[path = "../src/review/mod.rs"]
mod review;
#[path = "../src/sigs.rs"]
mod sigs;
#[path = "../src/source/mod.rs"]
mod source;
#[path = "../../fuzz/src/targets.rs"]
mod targets;
#[path = "../src/tickets.rs"]
mod tickets;

use std::path::PathBuf;

#[test]
fn every_corpus_file_runs_through_its_target_without_panicking() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut total = 0;
    for name in targets::TARGETS {
        let f = targets::by_name(name).unwrap();
        let dir = root.join(name);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|d| d.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no seeds in {}", dir.display());
        for p in &files {
            let data = std::fs::read(p).unwrap();
            // A panic fails the test and names the file (the panic message is printed above).
            eprintln!("{name}: {}", p.display());
            f(&data);
        }
        total += files.len();
    }
    assert!(total >= 20, "only {total} corpus files");
}

#[test]
fn every_target_survives_edge_inputs() {
    for name in targets::TARGETS {
        let f = targets::by_name(name).unwrap();
        for data in [
            &b""[..],
            b"\0",
            b"\x01",
            b"\x02\xff",
            b"\x03\x00{}",
            b"LEDGER-EXPORT/1\n",
        ] {
            f(data);
        }
    }
    assert!(targets::by_name("nonexistent").is_none());
}
