//! Fuzz harnesses for every decoder of untrusted bytes (docs/fuzzing.md).
//!
//! The verifier's modules are compiled here from `verifier-cli/src` (that crate is a binary), so
//! the harnesses run exactly the code `ledger-verify` runs. `verifier-cli/tests/fuzz_corpus.rs`
//! includes the same files and `targets.rs` to replay the corpus in the main test suite.
#![allow(dead_code, missing_docs, unused_imports)]

#[path = "../../verifier-cli/src/bundle.rs"]
pub mod bundle;
#[path = "../../verifier-cli/src/bundle_page.rs"]
pub mod bundle_page;
#[path = "../../verifier-cli/src/fault.rs"]
pub mod fault;
#[path = "../../verifier-cli/src/pages.rs"]
pub mod pages;
#[path = "../../verifier-cli/src/pipeline.rs"]
pub mod pipeline;
#[path = "../../verifier-cli/src/prepare.rs"]
pub mod prepare;
#[path = "../../verifier-cli/src/replay.rs"]
pub mod replay;
#[path = "../../verifier-cli/src/report.rs"]
pub mod report;
#[path = "../../verifier-cli/src/review/mod.rs"]
pub mod review;
#[path = "../../verifier-cli/src/sigs.rs"]
pub mod sigs;
#[path = "../../verifier-cli/src/source/mod.rs"]
pub mod source;
#[path = "../../verifier-cli/src/tickets.rs"]
pub mod tickets;

pub mod targets;
