//! The state machine: apply is the store's group commit; refusals are values; snapshots round-trip.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::GroupMaker;
use ledger_raft::LedgerNode;
use ledger_raft::{APPLIED_META, ApplyOutcome, LogStore, Rejection, SequencedGroup, StateMachine};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Membership, RaftLogReader};
use std::collections::BTreeMap;

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 0), index)
}

fn normal(index: u64, g: SequencedGroup) -> Entry<ledger_raft::TypeConfig> {
    Entry {
        log_id: log_id(1, index),
        payload: EntryPayload::Normal(g.into()),
    }
}

fn membership(index: u64) -> Entry<ledger_raft::TypeConfig> {
    let nodes: BTreeMap<u64, LedgerNode> = [(1, LedgerNode::new("127.0.0.1:1"))].into();
    Entry {
        log_id: log_id(1, index),
        payload: EntryPayload::Membership(Membership::new(vec![[1u64].into()], nodes)),
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn open(dir: &std::path::Path) -> StateMachine {
    StateMachine::open(&dir.join("ledger"), &dir.join("raft")).unwrap()
}

/// Applies `groups` valid groups of 3 entries after a membership entry; returns the maker.
async fn fill(sm: &mut StateMachine, groups: u64) -> GroupMaker {
    let mut m = GroupMaker::default();
    sm.apply([membership(1)]).await.unwrap();
    for i in 0..groups {
        let g = m.next(3);
        let out = sm.apply([normal(2 + i, g.clone())]).await.unwrap();
        assert_eq!(
            out,
            vec![ApplyOutcome::Applied {
                first_index: i * 3,
                new_size: i * 3 + 3
            }]
        );
        m.accept(&g);
    }
    m
}

#[tokio::test]
async fn apply_commits_groups_and_the_applied_id_durably() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = open(dir.path());
    let m = fill(&mut sm, 4).await;
    assert_eq!(sm.applied_tree().unwrap(), m.tree);
    let root = sm.with_store(|s| s.compact_tree().unwrap().root()).unwrap();
    assert_eq!(root, m.tree.root());
    let req = sm.with_store(|s| s.request("req-4").unwrap()).unwrap();
    assert_eq!(req.map(|r| r.0), Some(4), "request ids are stored with the group");
    // A copy taken while the state machine is open (what a crash leaves): the groups and the
    // applied log id are there together.
    let image = dir.path().join("crash-image");
    copy_dir(&dir.path().join("ledger"), &image);
    let copy = ledger_store::Store::open(&image).unwrap();
    assert_eq!(copy.size().unwrap(), 12);
    let (applied, _): (Option<LogId<u64>>, openraft::StoredMembership<u64, LedgerNode>) =
        bincode::serde::decode_from_slice(&copy.meta(APPLIED_META).unwrap().unwrap(), bincode::config::standard())
            .unwrap()
            .0;
    assert_eq!(applied, Some(log_id(1, 5)));
    drop(copy);
    drop(sm);
    // Reopened: the applied log id and membership came back from the store's meta key.
    let mut sm = open(dir.path());
    let (applied, mem) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1, 5)));
    assert_eq!(mem.log_id(), &Some(log_id(1, 1)));
    assert_eq!(sm.applied_tree().unwrap().size(), 12);
    assert!(sm.with_store(|s| s.meta(APPLIED_META).unwrap()).unwrap().is_some());
}

#[tokio::test]
async fn a_group_that_does_not_extend_the_tree_is_rejected_as_a_value() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = open(dir.path());
    let mut m = fill(&mut sm, 1).await;
    let good = m.next(2);

    // Replayed group (starts at an index already applied).
    let mut replay = good.clone();
    for e in &mut replay.entries {
        e.index -= 1;
    }
    // Right index, wrong prev_root (a fork).
    let mut fork = good.clone();
    fork.prev_root = ledger_core::hash::Hash([9; 32]);
    // A leaf hash that is not the leaf's.
    let mut bad_hash = good.clone();
    bad_hash.entries[1].leaf_hash = ledger_core::hash::Hash([7; 32]);
    // Claimed size that the entries do not make.
    let mut bad_size = good.clone();
    bad_size.new_size += 1;
    // An unknown index tag.
    let mut bad_tag = good.clone();
    bad_tag.entries[0].terms.push((b'?', "x".into()));
    let empty = SequencedGroup {
        prev_root: good.prev_root,
        entries: vec![],
        new_size: 3,
    };

    let out = sm
        .apply([
            normal(3, replay),
            normal(4, fork),
            normal(5, bad_hash),
            normal(6, bad_size),
            normal(7, bad_tag),
            normal(8, empty),
        ])
        .await
        .unwrap();
    let reasons: Vec<Rejection> = out
        .into_iter()
        .map(|o| match o {
            ApplyOutcome::Rejected { size: 3, reason } => reason,
            other => panic!("not rejected: {other:?}"),
        })
        .collect();
    assert_eq!(
        reasons,
        vec![
            Rejection::NotAtSize { applied: 3, first: 2 },
            Rejection::PrevRoot { applied: 3 },
            Rejection::LeafHash { index: 4 },
            Rejection::NewSize { claimed: 6, actual: 5 },
            Rejection::Tag { index: 3, tag: b'?' },
            Rejection::Empty,
        ]
    );
    assert_eq!(
        Rejection::PrevRoot { applied: 3 }.to_string(),
        "the group's prev_root is not the root of the applied tree of size 3"
    );
    // Nothing of them reached the store; the applied id moved past them.
    assert_eq!(sm.with_store(|s| s.size().unwrap()).unwrap(), 3);
    assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(1, 8)));
    // The good group still applies on top.
    let out = sm.apply([normal(9, good.clone())]).await.unwrap();
    assert_eq!(
        out,
        vec![ApplyOutcome::Applied {
            first_index: 3,
            new_size: 5
        }]
    );
    m.accept(&good);
    assert_eq!(sm.applied_tree().unwrap(), m.tree);
    drop(sm);
    let mut sm = open(dir.path());
    assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(1, 9)));
}

#[tokio::test]
async fn entry_bytes_must_carry_their_index_and_prev_root() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = open(dir.path());
    let m = fill(&mut sm, 1).await;
    // A group whose metadata is consistent but whose second entry's bytes chain to another root:
    // re-hash the leaf so that only the entry-level check can see it.
    let mut g = m.next(2);
    let mut e = ledger_core::entry::Entry::decode(&g.entries[1].leaf).unwrap();
    e.prev_root = ledger_core::hash::Hash([3; 32]);
    g.entries[1].leaf = e.encode();
    g.entries[1].leaf_hash = ledger_core::hash::leaf_hash(&g.entries[1].leaf);
    let out = sm.apply([normal(3, g)]).await.unwrap();
    assert!(
        matches!(&out[0], ApplyOutcome::Rejected { reason: Rejection::Entry { index: 4, detail }, .. } if detail.contains("prev_root")),
        "{out:?}"
    );
}

#[tokio::test]
async fn snapshot_build_install_gives_the_same_root() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut leader = open(a.path());
    let m = fill(&mut leader, 5).await;
    let snap = leader.get_snapshot_builder().await.build_snapshot().await.unwrap();
    assert_eq!(snap.meta.last_log_id, Some(log_id(1, 6)));

    let mut follower = open(b.path());
    // The follower had applied something else before (it is replaced).
    let mut received = follower.begin_receiving_snapshot().await.unwrap();
    let mut cur = leader.get_current_snapshot().await.unwrap().unwrap();
    tokio::io::copy(&mut cur.snapshot, &mut *received).await.unwrap();
    follower.install_snapshot(&snap.meta, received).await.unwrap();

    assert_eq!(follower.applied_tree().unwrap(), m.tree);
    let (applied, mem) = follower.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1, 6)));
    assert_eq!(mem.log_id(), &Some(log_id(1, 1)));
    let follower_root = follower.with_store(|s| s.compact_tree().unwrap().root()).unwrap();
    assert_eq!(follower_root, m.tree.root());
    assert_eq!(
        follower.with_store(|s| s.entry(7).unwrap()).unwrap(),
        leader.with_store(|s| s.entry(7).unwrap()).unwrap()
    );
    // The follower serves the same snapshot metadata, and keeps applying after it.
    let cur = follower.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(cur.meta, snap.meta);
    let g = m.next(2);
    let out = follower.apply([normal(7, g)]).await.unwrap();
    assert_eq!(
        out,
        vec![ApplyOutcome::Applied {
            first_index: 15,
            new_size: 17
        }]
    );
    // Reopen: the swapped-in store is the one that opens.
    drop(follower);
    let follower = open(b.path());
    assert_eq!(follower.applied_tree().unwrap().size(), 17);
    assert!(!b.path().join("ledger.install").exists() && !b.path().join("ledger.old").exists());
}

#[tokio::test]
async fn a_snapshot_that_does_not_verify_is_not_installed() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut leader = open(a.path());
    fill(&mut leader, 2).await;
    let snap = leader.get_snapshot_builder().await.build_snapshot().await.unwrap();
    let mut follower = open(b.path());
    let before = fill(&mut follower, 1).await;
    // Flip one byte in the last entry frame of the stream.
    let raft = a.path().join("raft");
    let file = std::fs::read_dir(&raft)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "export"))
        .unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    // 40 bytes before the request-id section: inside the last entry frame (the 'Z' frame is 5).
    let magic = bytes
        .windows(ledger_raft::snapshot::REQUESTS_MAGIC.len())
        .position(|w| w == ledger_raft::snapshot::REQUESTS_MAGIC)
        .unwrap();
    bytes[magic - 40] ^= 1;
    let path = b.path().join("forged");
    std::fs::write(&path, &bytes).unwrap();
    let f = tokio::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .await
        .unwrap();
    let err = follower.install_snapshot(&snap.meta, Box::new(f)).await.unwrap_err();
    assert!(
        err.to_string().contains("the snapshot does not import: export stream"),
        "{err}"
    );
    // The follower's ledger is untouched.
    assert_eq!(follower.applied_tree().unwrap(), before.tree);
    drop(follower);
    assert_eq!(open(b.path()).applied_tree().unwrap(), before.tree);
}

#[tokio::test]
async fn an_interrupted_install_is_finished_or_discarded_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = open(dir.path());
    let m = fill(&mut sm, 2).await;
    drop(sm);
    let (ledger, install) = (dir.path().join("ledger"), dir.path().join("ledger.install"));
    // Crash during the import: an install directory next to the ledger is discarded.
    std::fs::create_dir_all(install.join("junk")).unwrap();
    assert_eq!(open(dir.path()).applied_tree().unwrap(), m.tree);
    assert!(!install.exists());
    // Crash between the two renames: the complete install directory becomes the ledger.
    std::fs::rename(&ledger, &install).unwrap();
    assert_eq!(open(dir.path()).applied_tree().unwrap(), m.tree);
    assert!(!install.exists() && ledger.exists());
}

#[tokio::test]
async fn log_store_reads_back_appended_groups() {
    use openraft::storage::RaftLogStorageExt;
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(&dir.path().join("log")).unwrap();
    let g = GroupMaker::default().next(2);
    log.blocking_append([normal(1, g.clone())]).await.unwrap();
    let got = log.try_get_log_entries(1..2).await.unwrap();
    assert_eq!(got.len(), 1);
    assert!(matches!(&got[0].payload, EntryPayload::Normal(ledger_raft::LedgerRequest::Group(x)) if *x == g));
}

#[tokio::test]
async fn request_ids_are_checked_on_apply() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = open(dir.path());
    let m = fill(&mut sm, 1).await;
    let good = m.next(2);
    // A retry sequenced again under the same request id (after a failover, say): the store holds
    // the id, the answer names the original index.
    let mut retry = good.clone();
    retry.entries[1].request = Some(("req-1".into(), retry.entries[1].request.clone().unwrap().1));
    // The same id twice in one group.
    let mut twice = good.clone();
    twice.entries[1].request = Some(("req-3".into(), twice.entries[1].request.clone().unwrap().1));
    // A digest that is not the envelope's.
    let mut digest = good.clone();
    digest.entries[0].request = Some(("fresh".into(), ledger_core::hash::Hash([5; 32])));
    // An id with a control character.
    let mut control = good.clone();
    control.entries[0].request = Some(("a\nb".into(), control.entries[0].request.clone().unwrap().1));
    let out = sm
        .apply([
            normal(3, retry),
            normal(4, twice),
            normal(5, digest),
            normal(6, control),
        ])
        .await
        .unwrap();
    let reasons: Vec<String> = out
        .iter()
        .map(|o| match o {
            ApplyOutcome::Rejected { size: 3, reason } => reason.to_string(),
            other => panic!("not rejected: {other:?}"),
        })
        .collect();
    assert_eq!(
        reasons,
        vec![
            "entry 4: request id \"req-1\" was already used by entry 1",
            "entry 4: request id \"req-3\" was already used by entry 3",
            "entry 3: the request digest is not that of the entry's envelope",
            "entry 3: the request id must be 1-128 bytes without control characters",
        ]
    );
    assert_eq!(
        sm.with_store(|s| s.request("req-1").unwrap()).unwrap().map(|r| r.0),
        Some(1)
    );
}

#[tokio::test]
async fn snapshots_carry_request_ids_and_a_forged_one_is_refused() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let mut leader = open(a.path());
    fill(&mut leader, 3).await;
    let snap = leader.get_snapshot_builder().await.build_snapshot().await.unwrap();
    let mut follower = open(b.path());
    let mut cur = leader.get_current_snapshot().await.unwrap().unwrap();
    let mut received = follower.begin_receiving_snapshot().await.unwrap();
    tokio::io::copy(&mut cur.snapshot, &mut *received).await.unwrap();
    follower.install_snapshot(&snap.meta, received).await.unwrap();
    for i in 0..9 {
        let id = format!("req-{i}");
        assert_eq!(
            follower.with_store(|s| s.request(&id).unwrap()).unwrap(),
            leader.with_store(|s| s.request(&id).unwrap()).unwrap(),
            "{id}"
        );
    }
    assert!(follower.with_store(|s| s.request("req-8").unwrap()).unwrap().is_some());

    // Point a request id at another entry (its digest then names the wrong envelope).
    let file = std::fs::read_dir(a.path().join("raft"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "export"))
        .unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let magic = bytes
        .windows(ledger_raft::snapshot::REQUESTS_MAGIC.len())
        .position(|w| w == ledger_raft::snapshot::REQUESTS_MAGIC)
        .unwrap();
    let index_at = magic + ledger_raft::snapshot::REQUESTS_MAGIC.len() + 5 + 7;
    bytes[index_at] ^= 1;
    let path = c.path().join("forged");
    std::fs::write(&path, &bytes).unwrap();
    let f = tokio::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .await
        .unwrap();
    let mut other = open(c.path());
    let err = other.install_snapshot(&snap.meta, Box::new(f)).await.unwrap_err();
    assert!(err.to_string().contains("the digest is not that of entry"), "{err}");
    assert_eq!(other.applied_tree().unwrap().size(), 0);
}

#[tokio::test]
async fn ledger_rules_are_rechecked_on_apply_and_a_refused_group_leaves_no_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = open(dir.path());
    let mut m = fill(&mut sm, 1).await;
    let (r, stranger) = (
        ed25519_dalek::SigningKey::from_bytes(&[10; 32]),
        ed25519_dalek::SigningKey::from_bytes(&[99; 32]),
    );
    // Enrolls R, then a note by a key nobody enrolled: the whole group is refused.
    let bad = m.next_envelopes(vec![m.enroll(&r), m.note_by(&stranger, "x")]);
    // Then a note by R alone: R's enrollment was refused with its group, so R is unknown.
    let by_r = m.next_envelopes(vec![m.note_by(&r, "y")]);
    let out = sm.apply([normal(3, bad), normal(4, by_r)]).await.unwrap();
    let unknown = |k: &ed25519_dalek::SigningKey| {
        format!(
            "signature by unknown key {}: enroll it first (key.enroll)",
            ledger_core::keys::key_id(&k.verifying_key())
        )
    };
    assert_eq!(
        out,
        vec![
            ApplyOutcome::Rejected {
                size: 3,
                reason: Rejection::Rule {
                    index: 4,
                    detail: unknown(&stranger)
                }
            },
            ApplyOutcome::Rejected {
                size: 3,
                reason: Rejection::Rule {
                    index: 3,
                    detail: unknown(&r)
                }
            },
        ]
    );
    let known = |sm: &StateMachine| {
        sm.with_state(|s| {
            s.unwrap()
                .registry
                .holder(&ledger_core::keys::key_id(&r.verifying_key()))
                .is_some()
        })
        .unwrap()
    };
    assert!(!known(&sm), "the refused enrollment left no trace in the state");
    // Enrollment and a note by R in one group: applied.
    let good = m.next_envelopes(vec![m.enroll(&r), m.note_by(&r, "z")]);
    let out = sm.apply([normal(5, good.clone())]).await.unwrap();
    assert_eq!(
        out,
        vec![ApplyOutcome::Applied {
            first_index: 3,
            new_size: 5
        }]
    );
    m.accept(&good);
    assert!(known(&sm));
    // After a restart the state is folded from the store: R is known.
    drop(sm);
    let mut sm = open(dir.path());
    assert!(known(&sm));
    let g = m.next_envelopes(vec![m.note_by(&r, "w")]);
    let out = sm.apply([normal(6, g)]).await.unwrap();
    assert_eq!(
        out,
        vec![ApplyOutcome::Applied {
            first_index: 5,
            new_size: 6
        }]
    );
}

#[tokio::test]
async fn timestamps_must_increase() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = open(dir.path());
    let m = fill(&mut sm, 1).await;
    let mut g = m.next(1);
    let mut e = ledger_core::entry::Entry::decode(&g.entries[0].leaf).unwrap();
    e.timestamp_micros = 1_002; // the entry before it has 1_002
    g.entries[0].leaf = e.encode();
    g.entries[0].leaf_hash = ledger_core::hash::leaf_hash(&g.entries[0].leaf);
    let out = sm.apply([normal(3, g)]).await.unwrap();
    assert_eq!(
        out,
        vec![ApplyOutcome::Rejected {
            size: 3,
            reason: Rejection::TimeRegression {
                index: 3,
                timestamp: 1_002,
                previous: 1_002
            }
        }]
    );
}

/// A micro-evaluation of `ticket` signed by the platform key (rules: docs/records.md).
fn micro(platform: &ed25519_dalek::SigningKey, ticket: u64) -> ledger_core::dsse::Envelope {
    let payload = format!(
        r#"{{"version":1,"ticket_hash":"{}","subject":"cadre-1","department":"dept-1","rating":4,"service_time_micros":900}}"#,
        ledger_core::hash::Hash::digest(format!("ticket-{ticket}").as_bytes()).to_hex()
    );
    let mut e = ledger_core::dsse::Envelope::new(
        ledger_core::registry::payload_type("evaluation.micro"),
        payload.into_bytes(),
    );
    e.sign(platform);
    e
}

/// A state machine on `dir` after one filled group, its group maker, the platform key and the
/// platform's enrollment (signed by the admin, not applied yet).
async fn with_platform(
    dir: &std::path::Path,
) -> (
    StateMachine,
    GroupMaker,
    ed25519_dalek::SigningKey,
    ledger_core::dsse::Envelope,
) {
    let mut sm = open(dir);
    let m = fill(&mut sm, 1).await;
    let platform = ed25519_dalek::SigningKey::from_bytes(&[12; 32]);
    let mut enroll = ledger_core::dsse::Envelope::new(
        ledger_core::registry::payload_type("key.enroll"),
        format!(
            r#"{{"version":1,"name":"platform","key":"{}","roles":["service-platform"],"scope":{{"organization":"org-test","kinds":[]}}}}"#,
            ledger_core::keys::public_key_to_base64(&platform.verifying_key())
        )
        .into_bytes(),
    );
    enroll.sign(&m.admin);
    (sm, m, platform, enroll)
}

/// Applies a group of `envs` as Raft entry `next + 1`; advances the maker when it was applied.
async fn apply(
    sm: &mut StateMachine,
    m: &mut GroupMaker,
    next: &mut u64,
    envs: Vec<ledger_core::dsse::Envelope>,
) -> ApplyOutcome {
    let g = m.next_envelopes(envs);
    *next += 1;
    let out = sm.apply([normal(*next, g.clone())]).await.unwrap();
    if matches!(out[0], ApplyOutcome::Applied { .. }) {
        m.accept(&g);
    }
    out.into_iter().next().unwrap()
}

/// Issue 14 in the cluster: the state machine keeps rated tickets in the store's ticket index,
/// not in memory, and still refuses a reused ticket — after more groups, after a reopen, and
/// after the index lost its files (refilled from the log at open).
#[tokio::test]
async fn rated_tickets_are_looked_up_in_the_store_not_held_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (mut sm, mut m, platform, enroll) = with_platform(dir.path()).await;
    let mut next = 2u64;
    let first = apply(
        &mut sm,
        &mut m,
        &mut next,
        vec![enroll, micro(&platform, 1), micro(&platform, 2)],
    )
    .await;
    assert!(matches!(first, ApplyOutcome::Applied { .. }), "{first:?}");
    let held = |sm: &StateMachine| {
        sm.with_state(|s| s.unwrap().domain.elections.tickets.recent_len())
            .unwrap()
    };
    assert_eq!(held(&sm), 0, "committed tickets are not kept in memory");
    let reused = |out: &ApplyOutcome| match out {
        ApplyOutcome::Rejected {
            reason: Rejection::Rule { detail, .. },
            ..
        } => detail.contains("ticket"),
        _ => false,
    };
    let between = m.note_by(&m.admin, "between");
    let again = apply(&mut sm, &mut m, &mut next, vec![between, micro(&platform, 1)]).await;
    assert!(reused(&again), "a reused ticket is refused from the index: {again:?}");
    drop(sm);
    // Reopened, with the lookup index's files gone: the fold at open puts the tickets back.
    std::fs::remove_dir_all(dir.path().join("ledger").join("index")).unwrap();
    let mut sm = open(dir.path());
    assert_eq!(held(&sm), 0, "the fold at open does not keep tickets in memory");
    let after = apply(&mut sm, &mut m, &mut next, vec![micro(&platform, 2)]).await;
    assert!(reused(&after), "refused after the reopen: {after:?}");
    let fresh = apply(&mut sm, &mut m, &mut next, vec![micro(&platform, 3)]).await;
    assert!(matches!(fresh, ApplyOutcome::Applied { .. }), "{fresh:?}");
    // A follower that installs a snapshot of this log refuses the reused ticket too, from the
    // installed store's index (the state's backing follows the swap), and holds none in memory.
    let snap = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
    let b = tempfile::tempdir().unwrap();
    let mut follower = open(b.path());
    let mut received = follower.begin_receiving_snapshot().await.unwrap();
    let mut cur = sm.get_current_snapshot().await.unwrap().unwrap();
    tokio::io::copy(&mut cur.snapshot, &mut *received).await.unwrap();
    follower.install_snapshot(&snap.meta, received).await.unwrap();
    assert_eq!(held(&follower), 0);
    let reused_there = apply(&mut follower, &mut m, &mut next, vec![micro(&platform, 3)]).await;
    assert!(reused(&reused_there), "refused after the install: {reused_there:?}");
}

/// Issue 14 (CSTART): the state machine's open folds the applied log in passes, reopening the
/// store between them, and the state is that of one pass: same tree, same left-out count, same
/// registry, same rated-ticket answers, every entry folded once and in order.
#[tokio::test]
async fn a_fold_in_passes_reopens_the_store_and_folds_the_state_of_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    let (mut sm, mut m, platform, enroll) = with_platform(dir.path()).await;
    let mut next = 2u64;
    let out = apply(&mut sm, &mut m, &mut next, vec![enroll, micro(&platform, 0)]).await;
    assert!(matches!(out, ApplyOutcome::Applied { .. }), "{out:?}");
    // A few hundred entries (more than one entry bundle), a rated ticket every 7 groups.
    for i in 1..60u64 {
        let mut envs: Vec<_> = (0..5).map(|k| m.note_by(&m.admin, &format!("n{i}.{k}"))).collect();
        if i % 7 == 0 {
            envs.push(micro(&platform, i));
        }
        let out = apply(&mut sm, &mut m, &mut next, envs).await;
        assert!(matches!(out, ApplyOutcome::Applied { .. }), "{out:?}");
    }
    // A snapshot of the log so far (an import refuses a log with a rule-breaking entry), for the
    // install below.
    let snap = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
    let mut snap_bytes = Vec::new();
    let mut cur = sm.get_current_snapshot().await.unwrap().unwrap();
    tokio::io::AsyncReadExt::read_to_end(&mut cur.snapshot, &mut snap_bytes)
        .await
        .unwrap();
    let snap_root = sm.applied_tree().unwrap().root();
    let (mut m_snap, mut next_snap) = (fork(&m), next);
    drop(sm);
    // An entry that breaks a rule (a note by a key nobody enrolled), written to the store as a
    // log under older rules would hold it: the fold leaves it out.
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[99; 32]);
    {
        let store = ledger_store::Store::open(&dir.path().join("ledger")).unwrap();
        let size = store.size().unwrap();
        let last_ts = store.timestamp(size - 1).unwrap().unwrap();
        let g = m.next_envelopes(vec![m.note_by(&stranger, "older rules")]);
        let c = ledger_raft::check_group(&m.tree, last_ts, &g).unwrap();
        store.commit_group(&c.prepared, &c.nodes, c.tree.size(), None).unwrap();
        m.accept(&g);
    }
    let size = m.tree.size();
    assert!(size > 300, "{size}");
    let one = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), one.path());

    // The folds themselves: one pass and passes of one byte give the same state and count.
    {
        let store = std::sync::Arc::new(ledger_store::Store::open(&one.path().join("ledger")).unwrap());
        let (whole, left_whole) = ledger_raft::fold_store(&store, size).unwrap();
        let f =
            ledger_raft::fold_store_reopening(ledger_store::Store::open(&dir.path().join("ledger")).unwrap(), size, 1)
                .unwrap();
        assert_eq!(left_whole, 1, "the stranger's note is left out");
        assert_eq!(f.left_out, left_whole);
        assert!(f.reopens >= size / 256 - 1, "{} reopens for {size} entries", f.reopens);
        let (whole, parts) = (whole.unwrap(), f.state.unwrap());
        for k in [&m.admin, &platform, &stranger] {
            let id = ledger_core::keys::key_id(&k.verifying_key());
            assert_eq!(
                whole.registry.holder(&id).is_some(),
                parts.registry.holder(&id).is_some()
            );
        }
        let platform_id = ledger_core::keys::key_id(&platform.verifying_key());
        assert!(parts.registry.holder(&platform_id).is_some());
        for t in 0..61u64 {
            let key = ledger_core::hash::Hash::digest(format!("ticket-{t}").as_bytes()).0;
            let a = whole.domain.elections.tickets.used_before(&key, size).unwrap();
            let b = parts.domain.elections.tickets.used_before(&key, size).unwrap();
            assert_eq!(a, b, "ticket {t}");
            assert_eq!(a.is_some(), t % 7 == 0, "ticket {t}: {a:?}");
        }
        assert_eq!(parts.domain.elections.tickets.recent_len(), 0);
    }

    // The state machine opened in passes of one byte (reopened between them) and one opened in
    // one pass serve the same tree and answer the same appends.
    let mut parts =
        StateMachine::open_with_scan_bytes(&dir.path().join("ledger"), &dir.path().join("raft"), 1).unwrap();
    let mut whole =
        StateMachine::open_with_scan_bytes(&one.path().join("ledger"), &one.path().join("raft"), u64::MAX).unwrap();
    assert!(parts.open_reopens() > 0, "the open reopened the store");
    assert_eq!(whole.open_reopens(), 0);
    assert_eq!(parts.applied_tree().unwrap().size(), size);
    assert_eq!(
        parts.applied_tree().unwrap().root(),
        whole.applied_tree().unwrap().root()
    );
    let held = |sm: &StateMachine| {
        sm.with_state(|s| s.unwrap().domain.elections.tickets.recent_len())
            .unwrap()
    };
    assert_eq!(held(&parts), 0, "the fold in passes keeps no ticket in memory");
    // A reused ticket is refused by both, a fresh one applied by both; the stranger stays unknown.
    let mut m2 = fork(&m);
    let mut next2 = next;
    for (sm, m, next) in [(&mut parts, &mut m, &mut next), (&mut whole, &mut m2, &mut next2)] {
        let again = apply(sm, m, next, vec![micro(&platform, 14)]).await;
        assert!(
            matches!(&again, ApplyOutcome::Rejected { reason: Rejection::Rule { detail, .. }, .. } if detail.contains("ticket")),
            "{again:?}"
        );
        let stranger_note = apply(sm, m, next, vec![m.note_by(&stranger, "again")]).await;
        assert!(
            matches!(&stranger_note, ApplyOutcome::Rejected { reason: Rejection::Rule { detail, .. }, .. } if detail.contains("unknown key")),
            "{stranger_note:?}"
        );
        let fresh = apply(sm, m, next, vec![micro(&platform, 1000)]).await;
        assert!(matches!(fresh, ApplyOutcome::Applied { .. }), "{fresh:?}");
    }
    assert_eq!(
        parts.applied_tree().unwrap().root(),
        whole.applied_tree().unwrap().root()
    );
    // A follower folding in passes of one byte installs the snapshot (the imported store is
    // folded in passes before the swap): same tree, the same tickets refused.
    let b = tempfile::tempdir().unwrap();
    let mut follower = StateMachine::open_with_scan_bytes(&b.path().join("ledger"), &b.path().join("raft"), 1).unwrap();
    let mut received = follower.begin_receiving_snapshot().await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut *received, &snap_bytes)
        .await
        .unwrap();
    follower.install_snapshot(&snap.meta, received).await.unwrap();
    assert_eq!(follower.applied_tree().unwrap().root(), snap_root);
    assert_eq!(held(&follower), 0);
    for t in [0u64, 14, 56] {
        let out = apply(&mut follower, &mut m_snap, &mut next_snap, vec![micro(&platform, t)]).await;
        assert!(
            matches!(&out, ApplyOutcome::Rejected { reason: Rejection::Rule { detail, .. }, .. } if detail.contains("ticket")),
            "ticket {t}: {out:?}"
        );
    }
    let out = apply(&mut follower, &mut m_snap, &mut next_snap, vec![micro(&platform, 1)]).await;
    assert!(matches!(out, ApplyOutcome::Applied { .. }), "{out:?}");
}

/// A copy of the maker (same keys, same tree).
fn fork(m: &GroupMaker) -> GroupMaker {
    GroupMaker {
        tree: m.tree.clone(),
        node: m.node.clone(),
        admin: m.admin.clone(),
        witness_quorum: m.witness_quorum,
        time: m.time,
    }
}
