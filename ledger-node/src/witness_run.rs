//! `ledger-node witness` as a process: opens the witness state ([`crate::witness`]) and serves it
//! over gRPC and, with `--http-listen`, over the C2SP tlog-witness HTTP interface
//! ([`crate::tlog_http`]) until a stop signal. Kept apart from both so that neither depends on the
//! other's transport (the HTTP front uses the witness's state; the witness knows no HTTP).

use crate::tlog_http;
use crate::witness::{WitnessArgs, WitnessService};
use anyhow::{Context, Result};
use ledger_core::witness::MAX_ADD_CHECKPOINT_BYTES;
use ledger_proto::pb::witness_server::WitnessServer;
use std::sync::Arc;

/// Runs the witness until SIGTERM/SIGINT.
///
/// # Errors
/// When the state cannot be loaded or the address cannot be bound.
pub async fn run(a: WitnessArgs, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
    let svc = Arc::new(WitnessService::open(&a)?);
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("binding {}", a.listen))?;
    let bound = listener.local_addr()?;
    for s in &svc.signers {
        let key = s.verifier().to_string_key();
        tracing::info!(addr = %bound, key = %key, r#type = s.verifier().key.type_name(), "witness serving");
        println!("witness key {key}");
    }
    let http = match a.http_listen {
        Some(h) => {
            let l = tokio::net::TcpListener::bind(h)
                .await
                .with_context(|| format!("binding {h}"))?;
            let at = l.local_addr()?;
            tracing::info!(addr = %at, "tlog-witness HTTP serving POST /add-checkpoint");
            println!("tlog-witness http on http://{at}");
            Some(tokio::spawn(tlog_http::serve(l, svc.clone())))
        }
        None => None,
    };
    println!("listening on {bound}");
    let served = tonic::transport::Server::builder()
        .add_service(
            WitnessServer::from_arc(svc)
                .max_decoding_message_size(2 * MAX_ADD_CHECKPOINT_BYTES)
                .max_encoding_message_size(2 * MAX_ADD_CHECKPOINT_BYTES),
        )
        .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), shutdown)
        .await;
    // Stop the HTTP front with the gRPC one. The state is written before a cosignature is
    // answered, without an await between check and write, so stopping never leaves it half done.
    if let Some(h) = http {
        h.abort();
    }
    served?;
    Ok(())
}
