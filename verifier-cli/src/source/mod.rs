//! Thin adapters that deliver a log's entries and checkpoints, in order, to the replay pipeline:
//! a node over gRPC ([`node`]), a data directory opened read-only ([`data`]), an export stream
//! ([`export`]). They judge nothing.

pub mod data;
pub mod export;
pub mod node;

use crate::prepare::Item;

/// What a source says about itself when it ends.
#[derive(Debug, Clone, Copy, Default)]
pub struct SourceEnd {
    /// The number of entries the source says it holds, if it says.
    pub claimed_size: Option<u64>,
}

/// A source of log items. `run` is called once, on the reader thread.
pub trait Source: Send {
    /// How the report names the source.
    fn describe(&self) -> String;

    /// Entries expected, for the progress bar, when known in advance.
    fn expected_entries(&self) -> Option<u64>;

    /// Delivers every item in order to `sink`; stops early when `sink` returns false.
    ///
    /// # Errors
    /// On I/O or transport failure (exit code 2).
    fn run(&mut self, sink: &mut dyn FnMut(Item) -> bool) -> anyhow::Result<SourceEnd>;

    /// The high-water marks kept beside the log (a data directory's `high-water.checkpoint` and
    /// `high-water.witnessed`) as (file, signed checkpoint note), read before the log.
    fn high_water_marks(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// For a source whose entry count is unknown in advance but whose size in bytes is (an export
    /// file): the total bytes and a counter of the bytes read so far, for the progress bar.
    fn byte_progress(&self) -> Option<(u64, std::sync::Arc<std::sync::atomic::AtomicU64>)> {
        None
    }
}
