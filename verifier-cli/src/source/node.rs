//! A running node, over gRPC: the latest signed checkpoint first (GetCheckpoint without a size),
//! then every entry (GetEntries from 0 up to the node's current size, re-asked from the next index
//! until the node has nothing more, so a server-side page limit does no harm).

use super::{Source, SourceEnd};
use crate::prepare::{Item, RawEntry, WireFields};
use anyhow::{Context as _, anyhow};
use ledger_proto::pb::ledger_client::LedgerClient;
use ledger_proto::pb::{CheckpointResponse, GetCheckpointRequest, GetEntriesRequest};
use tonic::transport::Channel;

/// Largest gRPC message accepted from the node.
const MAX_MESSAGE: usize = 16 << 20;

/// A tokio runtime for the gRPC client, on the calling thread.
///
/// # Errors
/// When the runtime cannot start.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Connects to a node.
///
/// # Errors
/// When the URL is invalid or the node does not answer.
pub async fn connect(url: &str) -> anyhow::Result<LedgerClient<Channel>> {
    let client = LedgerClient::connect(url.to_string())
        .await
        .with_context(|| format!("cannot connect to {url}"))?;
    Ok(client
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE))
}

/// The node's latest checkpoint, or None when it has none yet.
///
/// # Errors
/// On transport failure or any other error status.
pub async fn latest_checkpoint(client: &mut LedgerClient<Channel>) -> anyhow::Result<Option<CheckpointResponse>> {
    match client.get_checkpoint(GetCheckpointRequest { size: None }).await {
        Ok(r) => Ok(Some(r.into_inner())),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
        Err(s) => Err(anyhow!("GetCheckpoint: {} ({:?})", s.message(), s.code())),
    }
}

/// A node.
pub struct NodeSource {
    url: String,
    rt: tokio::runtime::Runtime,
    client: LedgerClient<Channel>,
    latest: Option<CheckpointResponse>,
}

impl NodeSource {
    /// Connects and fetches the latest checkpoint.
    ///
    /// # Errors
    /// When the node cannot be reached.
    pub fn open(url: &str) -> anyhow::Result<Self> {
        let rt = runtime()?;
        let (client, latest) = rt.block_on(async {
            let mut c = connect(url).await?;
            let latest = latest_checkpoint(&mut c).await?;
            Ok::<_, anyhow::Error>((c, latest))
        })?;
        Ok(Self {
            url: url.to_string(),
            rt,
            client,
            latest,
        })
    }
}

impl Source for NodeSource {
    fn describe(&self) -> String {
        format!("node {}", self.url)
    }

    fn expected_entries(&self) -> Option<u64> {
        self.latest.as_ref().map(|c| c.size)
    }

    fn run(&mut self, sink: &mut dyn FnMut(Item) -> bool) -> anyhow::Result<SourceEnd> {
        if let Some(cp) = self.latest.take()
            && !sink(Item::Checkpoint(cp.note))
        {
            return Ok(SourceEnd::default());
        }
        let client = &mut self.client;
        self.rt.block_on(async {
            let mut next = 0u64;
            loop {
                let mut stream = match client.get_entries(GetEntriesRequest { start: next, end: 0 }).await {
                    Ok(r) => r.into_inner(),
                    // Asking from the current size may be refused rather than answered with nothing.
                    Err(s)
                        if next > 0 && matches!(s.code(), tonic::Code::OutOfRange | tonic::Code::InvalidArgument) =>
                    {
                        return Ok(SourceEnd::default());
                    }
                    Err(s) => return Err(anyhow!("GetEntries from {next}: {} ({:?})", s.message(), s.code())),
                };
                let mut got = 0u64;
                while let Some(e) = stream
                    .message()
                    .await
                    .map_err(|s| anyhow!("GetEntries stream after {next}: {} ({:?})", s.message(), s.code()))?
                {
                    got += 1;
                    next = next.max(e.index.saturating_add(1));
                    let item = Item::Entry(RawEntry {
                        position: Some(e.index),
                        bytes: e.leaf,
                        leaf_hash: Some(e.leaf_hash),
                        wire: Some(WireFields {
                            timestamp_micros: e.timestamp_micros,
                            prev_root: e.prev_root,
                            envelope: e.envelope.map(Into::into),
                        }),
                    });
                    if !sink(item) {
                        return Ok(SourceEnd::default());
                    }
                }
                if got == 0 {
                    return Ok(SourceEnd::default());
                }
            }
        })
    }
}
