//! `ledgerctl demo`: the demo cycle against a node, then the retrospective review of both cadres.

use anyhow::Result;
use ledger_client::{LedgerClient, read_signing_key};
use std::path::Path;

/// Runs the demo with the node's administrator key, then `ledger-verify review` (when it sits
/// next to this binary) for the honest and the manipulated cadre.
pub async fn demo(admin_key: &Path, node: &str) -> Result<()> {
    let admin = read_signing_key(admin_key)?;
    let client = LedgerClient::connect(node).await?;
    ledger_client::demo::run(&client, &admin).await?;
    let verify = std::env::current_exe()?.with_file_name("ledger-verify");
    // The honest cadre's review shows the election's tally, the other one the flags.
    for subject in [ledger_client::demo::HONEST, ledger_client::demo::MANIPULATED] {
        if verify.exists() {
            println!("\n$ ledger-verify review --node {} --subject {subject}", node);
            let _ = std::process::Command::new(&verify)
                .args(["review", "--node", node, "--subject", subject])
                .status();
        } else {
            println!("\nNow run: ledger-verify review --node {} --subject {subject}", node);
        }
    }
    Ok(())
}
