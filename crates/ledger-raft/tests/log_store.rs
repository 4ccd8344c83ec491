//! The log storage makes appends and votes durable before it says so: a copy of the directory
//! taken right after the callback fired (what a crash would leave, with sled's periodic flush
//! off) holds them.
#![allow(clippy::unwrap_used, missing_docs)]

use ledger_raft::LogStore;
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader, Vote};

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

fn blank(index: u64) -> Entry<ledger_raft::TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(2, 0), index),
        payload: EntryPayload::Blank,
    }
}

#[tokio::test]
async fn appended_entries_and_the_vote_are_on_disk_when_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let mut log = LogStore::open(&path).unwrap();
    // blocking_append returns once the callback fired.
    log.blocking_append((1..=50).map(blank)).await.unwrap();
    let crash = dir.path().join("crash-after-append");
    copy_dir(&path, &crash);
    let mut reopened = LogStore::open(&crash).unwrap();
    let got = reopened.try_get_log_entries(..).await.unwrap();
    assert_eq!(got.len(), 50);
    assert_eq!(got[49].log_id.index, 50);

    let vote = Vote::new(3, 7);
    log.save_vote(&vote).await.unwrap();
    let crash = dir.path().join("crash-after-vote");
    copy_dir(&path, &crash);
    let mut reopened = LogStore::open(&crash).unwrap();
    assert_eq!(reopened.read_vote().await.unwrap(), Some(vote));
}

#[tokio::test]
async fn truncate_and_purge_delete_keys_durably() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let mut log = LogStore::open(&path).unwrap();
    log.blocking_append((1..=20).map(blank)).await.unwrap();
    log.truncate(LogId::new(CommittedLeaderId::new(2, 0), 16))
        .await
        .unwrap();
    log.purge(LogId::new(CommittedLeaderId::new(2, 0), 10)).await.unwrap();
    assert_eq!(log.held_entries(), 5, "purged and truncated entries are deleted");

    let crash = dir.path().join("crash-image");
    copy_dir(&path, &crash);
    let mut reopened = LogStore::open(&crash).unwrap();
    let st = reopened.get_log_state().await.unwrap();
    assert_eq!(st.last_purged_log_id.map(|l| l.index), Some(10));
    assert_eq!(st.last_log_id.map(|l| l.index), Some(15));
    assert_eq!(reopened.held_entries(), 5);
}
