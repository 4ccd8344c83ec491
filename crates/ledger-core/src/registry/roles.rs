//! Roles and which roles may sign each kind (docs/registry.md).

use serde::{Deserialize, Serialize};

/// A role a key can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Manages the registry (key records).
    Admin,
    /// The node itself: checkpoints and node-computed records.
    Node,
    /// Organization department: pools, draws, elections, credentials.
    Registrar,
    /// Nominates candidates.
    Nominator,
    /// Discipline, audit, petition and other dossier sources.
    DataSource,
    /// Government service platform submitting citizen micro-evaluations.
    ServicePlatform,
    /// Issues blind evaluator credentials.
    CredentialIssuer,
    /// Signs committee decisions.
    CommitteeMember,
    /// Discipline inspection, audit, inspection tours.
    Inspector,
    /// Independent checkpoint witness.
    Witness,
}

/// Record kinds the ledger knows and the roles that may sign each.
pub fn roles_for_kind(kind: &str) -> Option<&'static [Role]> {
    use Role::*;
    Some(match kind {
        "charter" => &[Node],
        "key.enroll" | "key.rotate" | "key.revoke" => &[Admin],
        // Also needs the current node key's signature (`Registry::authorize`).
        "node.rotate" => &[Admin, Node],
        // The administrator quorum alone; a node key must not sign it (`Registry::authorize`).
        "node.compromise" => &[Admin],
        "escrow.key" => &[Admin],
        "nomination" => &[Nominator, Registrar],
        "pool.commit" | "draw.commit" | "draw.sources" | "election.open" | "credential.issued" => &[Registrar],
        "draw.reveal" => &[Registrar, Inspector, DataSource, CommitteeMember],
        "draw.result" | "draw.void" | "tally" => &[Node],
        "dossier.fact" | "verification" | "complaint" => &[DataSource, Inspector],
        "evaluation.micro" => &[ServicePlatform],
        // Signed by a one-time key outside the registry; its credential is its authorization
        // (see `Registry::verify_signatures` and `election_rules`).
        "ballot" => &[],
        "decision" => &[CommitteeMember, Registrar],
        "accountability" => &[Inspector],
        "cancellation" => &[Registrar, Inspector, Admin],
        "note" => &[Registrar, Inspector, DataSource, Nominator, CommitteeMember, Admin],
        _ => return None,
    })
}

/// The record kinds of the registry itself (each needs the administrator quorum).
pub fn is_key_record(kind: &str) -> bool {
    matches!(
        kind,
        "key.enroll" | "key.rotate" | "key.revoke" | "node.rotate" | "node.compromise"
    )
}

pub(super) fn role_list(roles: impl IntoIterator<Item = Role>) -> String {
    let v: Vec<String> = roles
        .into_iter()
        .map(|r| {
            serde_json::to_value(r)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default()
        })
        .collect();
    if v.is_empty() { "no role".into() } else { v.join("|") }
}
