//! Replicated checkpoints: a signed checkpoint and its cosigned form are Raft entries; apply checks
//! them deterministically and stores the exact bytes with the applied log id; refusals are values.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::GroupMaker;
use ed25519_dalek::SigningKey;
use ledger_core::cosignature::CosignatureSigner;
use ledger_core::hash::Hash;
use ledger_core::note::Note;
use ledger_raft::LedgerNode;
use ledger_raft::{APPLIED_META, ApplyOutcome, LedgerRequest, Rejection, StateMachine};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Membership};
use std::collections::BTreeMap;

fn log_id(index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(1, 0), index)
}

fn normal(index: u64, r: impl Into<LedgerRequest>) -> Entry<ledger_raft::TypeConfig> {
    Entry {
        log_id: log_id(index),
        payload: EntryPayload::Normal(r.into()),
    }
}

fn membership(index: u64) -> Entry<ledger_raft::TypeConfig> {
    let nodes: BTreeMap<u64, LedgerNode> = [(1, LedgerNode::new("127.0.0.1:1"))].into();
    Entry {
        log_id: log_id(index),
        payload: EntryPayload::Membership(Membership::new(vec![[1u64].into()], nodes)),
    }
}

fn open(dir: &std::path::Path) -> StateMachine {
    StateMachine::open(&dir.join("ledger"), &dir.join("raft")).unwrap()
}

fn cp(size: u64, note: &str) -> LedgerRequest {
    LedgerRequest::Checkpoint {
        size,
        note: note.into(),
    }
}

fn cosigned(size: u64, note: &str, witnessed: bool) -> LedgerRequest {
    LedgerRequest::Cosigned {
        size,
        note: note.into(),
        witnessed,
    }
}

/// Raft log index of the next entry for a state machine.
struct Log {
    next: u64,
}

impl Log {
    async fn apply(&mut self, sm: &mut StateMachine, r: impl Into<LedgerRequest>) -> ApplyOutcome {
        self.next += 1;
        let mut out = sm.apply([normal(self.next, r)]).await.unwrap();
        assert_eq!(out.len(), 1);
        out.remove(0)
    }

    /// Applies groups of the maker's envelopes (each accepted).
    async fn group(&mut self, sm: &mut StateMachine, m: &mut GroupMaker, n: usize) {
        let g = m.next(n);
        let out = self.apply(sm, g.clone()).await;
        assert!(matches!(out, ApplyOutcome::Applied { .. }), "{out:?}");
        m.accept(&g);
    }
}

async fn start(sm: &mut StateMachine) -> Log {
    sm.apply([membership(1)]).await.unwrap();
    Log { next: 1 }
}

fn stored(sm: &StateMachine) -> Vec<(u64, String)> {
    sm.with_store(|s| s.checkpoints().map(Result::unwrap).collect())
        .unwrap()
}

fn applied_id(sm: &StateMachine) -> Option<LogId<u64>> {
    let v = sm.with_store(|s| s.meta(APPLIED_META).unwrap()).unwrap().unwrap();
    let (id, _): (Option<LogId<u64>>, openraft::StoredMembership<u64, LedgerNode>) =
        bincode::serde::decode_from_slice(&v, bincode::config::standard())
            .unwrap()
            .0;
    id
}

fn rejected(size: u64, reason: Rejection) -> ApplyOutcome {
    ApplyOutcome::Rejected { size, reason }
}

#[tokio::test]
async fn a_signed_checkpoint_is_stored_byte_for_byte_on_every_node_with_the_applied_id() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut leader, mut follower) = (open(a.path()), open(b.path()));
    let mut m = GroupMaker::default();
    let (mut la, mut lb) = (start(&mut leader).await, start(&mut follower).await);
    for _ in 0..2 {
        let g = m.next(3);
        for (sm, log) in [(&mut leader, &mut la), (&mut follower, &mut lb)] {
            assert!(matches!(log.apply(sm, g.clone()).await, ApplyOutcome::Applied { .. }));
        }
        m.accept(&g);
    }
    let note = m.checkpoint();
    for (sm, log) in [(&mut leader, &mut la), (&mut follower, &mut lb)] {
        assert_eq!(
            log.apply(sm, cp(6, &note)).await,
            ApplyOutcome::CheckpointStored {
                size: 6,
                witnessed: false
            }
        );
        assert_eq!(stored(sm), vec![(6, note.clone())], "the exact bytes are stored");
        assert_eq!(applied_id(sm), Some(log_id(4)), "with the applied log id");
    }
    // Reopened: the checkpoint and the applied id came back together.
    drop(leader);
    let mut leader = open(a.path());
    assert_eq!(stored(&leader), vec![(6, note.clone())]);
    assert_eq!(leader.applied_state().await.unwrap().0, Some(log_id(4)));
}

#[tokio::test]
async fn checkpoints_that_are_not_of_the_applied_tree_or_do_not_extend_the_latest_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = open(dir.path());
    let mut m = GroupMaker::default();
    let mut log = start(&mut sm).await;
    log.group(&mut sm, &mut m, 3).await;
    let root3 = m.tree.root();
    log.group(&mut sm, &mut m, 3).await;
    let node = m.node.clone();
    let stranger = SigningKey::from_bytes(&[77; 32]);
    let root6 = m.tree.root();

    // Size 0, and a size not yet applied.
    let out = log
        .apply(&mut sm, cp(0, &GroupMaker::checkpoint_with(&node, 0, Hash::default())))
        .await;
    assert_eq!(out, rejected(6, Rejection::CheckpointSize { size: 0, applied: 6 }));
    let out = log
        .apply(&mut sm, cp(7, &GroupMaker::checkpoint_with(&node, 7, root6)))
        .await;
    assert_eq!(out, rejected(6, Rejection::CheckpointSize { size: 7, applied: 6 }));
    // Signed by a key that is not the node key (a stranger, or a former node of another log).
    let out = log
        .apply(&mut sm, cp(6, &GroupMaker::checkpoint_with(&stranger, 6, root6)))
        .await;
    assert!(
        matches!(&out, ApplyOutcome::Rejected { reason: Rejection::CheckpointSignature { size: 6, detail }, .. } if detail.contains("not signed by the node key in force")),
        "{out:?}"
    );
    // A note of size 5 offered as size 6; a note that is not a note.
    let out = log
        .apply(&mut sm, cp(6, &GroupMaker::checkpoint_with(&node, 5, root6)))
        .await;
    assert!(
        matches!(&out, ApplyOutcome::Rejected { reason: Rejection::CheckpointSignature { size: 6, detail }, .. } if detail == "the note signs size 5"),
        "{out:?}"
    );
    let out = log.apply(&mut sm, cp(6, "not a note")).await;
    assert!(
        matches!(
            &out,
            ApplyOutcome::Rejected {
                reason: Rejection::CheckpointSignature { size: 6, .. },
                ..
            }
        ),
        "{out:?}"
    );
    // The node key, but another root (a forked tree).
    let out = log
        .apply(&mut sm, cp(6, &GroupMaker::checkpoint_with(&node, 6, Hash([5; 32]))))
        .await;
    assert_eq!(out, rejected(6, Rejection::CheckpointRoot { size: 6 }));
    let out = log
        .apply(&mut sm, cp(3, &GroupMaker::checkpoint_with(&node, 3, root6)))
        .await;
    assert_eq!(out, rejected(6, Rejection::CheckpointRoot { size: 3 }));
    assert!(stored(&sm).is_empty(), "nothing refused was stored");

    // Size 3, then 6: each extends the one before.
    let note3 = GroupMaker::checkpoint_with(&node, 3, root3);
    let note6 = m.checkpoint();
    assert!(matches!(
        log.apply(&mut sm, cp(3, &note3)).await,
        ApplyOutcome::CheckpointStored { size: 3, .. }
    ));
    assert!(matches!(
        log.apply(&mut sm, cp(6, &note6)).await,
        ApplyOutcome::CheckpointStored { size: 6, .. }
    ));
    // A stale leader's checkpoint of a smaller size (valid in itself) does not extend the latest.
    let out = log.apply(&mut sm, cp(3, &note3)).await;
    assert_eq!(out, rejected(6, Rejection::CheckpointStale { size: 3, latest: 6 }));
    // The same size with another body (a second signer's checkpoint) is refused.
    let other = {
        let signer = ledger_core::note::NoteSigner::new(common::ORIGIN, node.clone()).unwrap();
        ledger_core::checkpoint::Checkpoint {
            origin: common::ORIGIN.into(),
            size: 6,
            root: root6,
            extensions: vec!["another".into()],
        }
        .sign(&signer)
        .unwrap()
        .to_text()
    };
    let out = log.apply(&mut sm, cp(6, &other)).await;
    assert_eq!(out, rejected(6, Rejection::CheckpointStale { size: 6, latest: 6 }));
    // The same checkpoint again (a retry after a failover) changes nothing.
    let out = log.apply(&mut sm, cp(6, &note6)).await;
    assert_eq!(
        out,
        ApplyOutcome::CheckpointStored {
            size: 6,
            witnessed: false
        }
    );
    assert_eq!(stored(&sm), vec![(3, note3), (6, note6)]);
    // Refusals moved the applied log id only.
    assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(log.next)));
    assert_eq!(sm.applied_tree().unwrap().size(), 6);
}

#[tokio::test]
async fn after_a_node_rotate_the_checkpoints_of_the_new_tree_need_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = open(dir.path());
    let mut m = GroupMaker::default();
    let mut log = start(&mut sm).await;
    log.group(&mut sm, &mut m, 3).await;
    let root3 = m.tree.root();
    let (old, new) = (m.node.clone(), SigningKey::from_bytes(&[40; 32]));
    let g = m.next_envelopes(vec![m.node_rotate(&new)]);
    assert!(matches!(
        log.apply(&mut sm, g.clone()).await,
        ApplyOutcome::Applied { .. }
    ));
    m.accept(&g);
    let root4 = m.tree.root();
    // Size 3 is before the rotation: the old key's, not the new one's.
    let out = log
        .apply(&mut sm, cp(3, &GroupMaker::checkpoint_with(&new, 3, root3)))
        .await;
    assert!(
        matches!(
            &out,
            ApplyOutcome::Rejected {
                reason: Rejection::CheckpointSignature { size: 3, .. },
                ..
            }
        ),
        "{out:?}"
    );
    assert!(matches!(
        log.apply(&mut sm, cp(3, &GroupMaker::checkpoint_with(&old, 3, root3)))
            .await,
        ApplyOutcome::CheckpointStored { size: 3, .. }
    ));
    // Size 4 holds the rotation: the old key no longer signs it.
    let out = log
        .apply(&mut sm, cp(4, &GroupMaker::checkpoint_with(&old, 4, root4)))
        .await;
    assert!(
        matches!(
            &out,
            ApplyOutcome::Rejected {
                reason: Rejection::CheckpointSignature { size: 4, .. },
                ..
            }
        ),
        "{out:?}"
    );
    let note4 = GroupMaker::checkpoint_with(&new, 4, root4);
    assert!(matches!(
        log.apply(&mut sm, cp(4, &note4)).await,
        ApplyOutcome::CheckpointStored { size: 4, .. }
    ));
    assert_eq!(stored(&sm).last(), Some(&(4, note4)));
}

#[tokio::test]
async fn after_a_node_compromise_the_old_key_signs_no_checkpoint_past_as_of() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = open(dir.path());
    let mut m = GroupMaker::default();
    let mut log = start(&mut sm).await;
    log.group(&mut sm, &mut m, 2).await;
    let root2 = m.tree.root();
    log.group(&mut sm, &mut m, 2).await;
    let root4 = m.tree.root();
    let (old, new) = (m.node.clone(), SigningKey::from_bytes(&[41; 32]));
    let g = m.next_envelopes(vec![m.node_compromise(2, &new)]);
    assert!(matches!(
        log.apply(&mut sm, g.clone()).await,
        ApplyOutcome::Applied { .. }
    ));
    m.accept(&g);
    let root5 = m.tree.root();
    // Size 4 was the old key's tenure, but past as_of 2: the key is held compromised for it.
    let out = log
        .apply(&mut sm, cp(4, &GroupMaker::checkpoint_with(&old, 4, root4)))
        .await;
    assert!(
        matches!(&out, ApplyOutcome::Rejected { reason: Rejection::CheckpointSignature { size: 4, detail }, .. } if detail.contains("compromised as of index 2")),
        "{out:?}"
    );
    // Size 2 is before as_of: still the old key's.
    assert!(matches!(
        log.apply(&mut sm, cp(2, &GroupMaker::checkpoint_with(&old, 2, root2)))
            .await,
        ApplyOutcome::CheckpointStored { size: 2, .. }
    ));
    // Size 5 holds the declaration: the new key's only.
    let out = log
        .apply(&mut sm, cp(5, &GroupMaker::checkpoint_with(&old, 5, root5)))
        .await;
    assert!(
        matches!(
            &out,
            ApplyOutcome::Rejected {
                reason: Rejection::CheckpointSignature { size: 5, .. },
                ..
            }
        ),
        "{out:?}"
    );
    assert!(matches!(
        log.apply(&mut sm, cp(5, &GroupMaker::checkpoint_with(&new, 5, root5)))
            .await,
        ApplyOutcome::CheckpointStored { size: 5, .. }
    ));
}

/// Adds a cosignature line by `key` (named `name`) over the note's body.
fn cosign(note: &str, name: &str, key: &SigningKey, body: Option<&str>) -> String {
    let mut n = Note::parse(note).unwrap();
    let signer = CosignatureSigner::new(name, key.clone()).unwrap();
    let line = signer.sign(body.unwrap_or(&n.text), 1_700_000_000).unwrap();
    n.signatures.push(line);
    n.to_text()
}

#[tokio::test]
async fn cosigned_checkpoints_are_checked_and_travel_with_the_witnessed_mark_in_snapshots() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut sm = open(a.path());
    let mut m = GroupMaker {
        witness_quorum: 1,
        ..GroupMaker::default()
    };
    let w = SigningKey::from_bytes(&[20; 32]);
    let mut log = start(&mut sm).await;
    log.group(&mut sm, &mut m, 3).await;
    let g = m.next_envelopes(vec![m.enroll_witness("w1", &w)]);
    assert!(matches!(
        log.apply(&mut sm, g.clone()).await,
        ApplyOutcome::Applied { .. }
    ));
    m.accept(&g);
    let note = m.checkpoint();
    let good = cosign(&note, "w1", &w, None);

    // No checkpoint of that size stored yet.
    let out = log.apply(&mut sm, cosigned(4, &good, true)).await;
    assert!(
        matches!(&out, ApplyOutcome::Rejected { reason: Rejection::Cosigned { size: 4, detail }, .. } if detail.contains("no checkpoint")),
        "{out:?}"
    );
    assert!(matches!(
        log.apply(&mut sm, cp(4, &note)).await,
        ApplyOutcome::CheckpointStored { size: 4, .. }
    ));
    // Claimed witnessed without the quorum.
    let out = log.apply(&mut sm, cosigned(4, &note, true)).await;
    assert!(
        matches!(&out, ApplyOutcome::Rejected { reason: Rejection::Cosigned { detail, .. }, .. } if detail.contains("claimed witnessed with 0")),
        "{out:?}"
    );
    // A line claiming the enrolled witness that does not verify (signed over another body).
    let forged = cosign(&note, "w1", &w, Some("ledger.test/raft\n9\nAAAA\n"));
    let out = log.apply(&mut sm, cosigned(4, &forged, true)).await;
    assert!(
        matches!(&out, ApplyOutcome::Rejected { reason: Rejection::Cosigned { detail, .. }, .. } if detail.contains("does not verify")),
        "{out:?}"
    );
    // A cosignature by a key that is not an enrolled witness does not count.
    let stranger = cosign(&note, "w1", &SigningKey::from_bytes(&[21; 32]), None);
    let out = log.apply(&mut sm, cosigned(4, &stranger, true)).await;
    assert!(
        matches!(&out, ApplyOutcome::Rejected { reason: Rejection::Cosigned { detail, .. }, .. } if detail.contains("claimed witnessed with 0")),
        "{out:?}"
    );
    assert_eq!(sm.with_store(|s| s.latest_witnessed().unwrap()).unwrap(), None);

    // The real one: stored in place of the bare note, and marked witnessed.
    assert_eq!(
        log.apply(&mut sm, cosigned(4, &good, true)).await,
        ApplyOutcome::CheckpointStored {
            size: 4,
            witnessed: true
        }
    );
    assert_eq!(stored(&sm), vec![(4, good.clone())]);
    assert_eq!(
        sm.with_store(|s| s.latest_witnessed().unwrap()).unwrap(),
        Some((4, good.clone()))
    );
    assert_eq!(applied_id(&sm), Some(log_id(log.next)));
    // Dropping the cosignature again is refused; the bare checkpoint again changes nothing.
    let out = log.apply(&mut sm, cosigned(4, &note, false)).await;
    assert!(
        matches!(&out, ApplyOutcome::Rejected { reason: Rejection::Cosigned { detail, .. }, .. } if detail.contains("drops")),
        "{out:?}"
    );
    assert!(matches!(
        log.apply(&mut sm, cp(4, &note)).await,
        ApplyOutcome::CheckpointStored { .. }
    ));
    assert_eq!(stored(&sm), vec![(4, good.clone())]);

    // A snapshot carries the cosigned bytes and the witnessed mark.
    let snap = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
    let mut follower = open(b.path());
    let mut cur = sm.get_current_snapshot().await.unwrap().unwrap();
    let mut received = follower.begin_receiving_snapshot().await.unwrap();
    tokio::io::copy(&mut cur.snapshot, &mut *received).await.unwrap();
    follower.install_snapshot(&snap.meta, received).await.unwrap();
    assert_eq!(stored(&follower), vec![(4, good.clone())]);
    assert_eq!(
        follower.with_store(|s| s.latest_witnessed().unwrap()).unwrap(),
        Some((4, good))
    );
}
