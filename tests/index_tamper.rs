//! The lookup index (DATA/store/index) edited, truncated or deleted while the node is stopped:
//! looking entries up by leaf hash through the real node gives the right index or NOT_FOUND, never
//! another entry's index; a retried request id never answers with another entry; a deleted index
//! is rebuilt on start, and `ledger-node reindex` rebuilds it on demand (issue 14).

mod support;

use ledger_proto::pb;
use std::os::unix::fs::FileExt;
use std::path::Path;
use support::*;
use tonic::Code;

const NOTES: u64 = 40;

/// A ledger of an enrollment and NOTES notes appended with request ids `note-i`; returns the
/// data dir, the notes' envelopes and (index, leaf hash) of each.
async fn build(
    dir: &Path,
) -> (
    std::path::PathBuf,
    Vec<ledger_core::dsse::Envelope>,
    Vec<(u64, Vec<u8>)>,
) {
    let data = dir.join("d");
    let (mut node, mut c, reg) = registrar_ledger(&data, "ledger.test/index", 0).await;
    let (mut envs, mut got) = (Vec::new(), Vec::new());
    for i in 0..NOTES {
        let env = record("note", note_payload(i), &[&reg]);
        // The last one waits for a checkpoint that covers every note.
        let r = c
            .append(req(&env, &format!("note-{i}"), i + 1 == NOTES))
            .await
            .expect("append")
            .into_inner();
        envs.push(env);
        got.push((r.index, r.leaf_hash));
    }
    node.stop();
    // A start applies the journal to the index files and drops it: from here on the files alone
    // hold the lookups.
    Node::start(&data).stop();
    (data, envs, got)
}

async fn by_leaf(
    c: &mut ledger_proto::pb::ledger_client::LedgerClient<tonic::transport::Channel>,
    lh: &[u8],
) -> Result<u64, tonic::Status> {
    c.get_inclusion_proof(pb::GetInclusionProofRequest {
        target: Some(pb::get_inclusion_proof_request::Target::LeafHash(lh.to_vec())),
        tree_size: 0,
    })
    .await
    .map(|r| r.into_inner().index)
}

/// Adds `delta` to the value of every used slot of the shard files of `kind` (slots of a
/// `fp`-byte fingerprint ‖ u64 value ‖ `extra` bytes; a used slot's fingerprint is not all zero).
fn shift_values(data: &Path, kind: &str, fp: usize, extra: usize, delta: u64) {
    let slot_len = ledger_store::hindex::slot_len(fp, extra);
    for e in std::fs::read_dir(data.join("store/index").join(kind)).expect("index dir") {
        let p = e.expect("entry").path();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .expect("open shard");
        let len = f.metadata().expect("len").len();
        let mut at = ledger_store::hindex::HEADER_LEN;
        while at + slot_len <= len {
            let mut s = vec![0u8; slot_len as usize];
            f.read_exact_at(&mut s, at).expect("read");
            if s[..fp].iter().any(|b| *b != 0) {
                let v = u64::from_be_bytes(s[fp..fp + 8].try_into().expect("8 bytes"));
                f.write_all_at(&(v + delta).to_be_bytes(), at + fp as u64)
                    .expect("write");
            }
            at += slot_len;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_index_files_give_not_found_never_another_entry() {
    let dir = tempfile::tempdir().expect("tmp");
    let (data, envs, got) = build(dir.path()).await;
    use ledger_store::{LEAF_FINGERPRINT, REQUEST_DIGEST_PREFIX, REQUEST_FINGERPRINT};
    shift_values(&data, "leaf", LEAF_FINGERPRINT, 0, 1);
    shift_values(&data, "request", REQUEST_FINGERPRINT, REQUEST_DIGEST_PREFIX, 1);
    let node = Node::start(&data);
    let mut c = node.client().await;
    for (index, lh) in &got {
        // Every leaf-hash slot now names the next entry: refused as a miss.
        let e = by_leaf(&mut c, lh).await.expect_err("a shifted hit is not used");
        assert_eq!(e.code(), Code::NotFound, "entry {index}: {e}");
    }
    // A retry whose request-id slot names the next entry is not answered with that entry: the id
    // is treated as unseen, and the statement check then names the entry that holds it.
    let e = append(&mut c, &envs[3], "note-3")
        .await
        .expect_err("not a duplicate of entry 6");
    assert_eq!(e.code(), Code::AlreadyExists, "{e}");
    assert!(e.message().contains(&format!("is already entry {}", got[3].0)), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_or_deleted_index_files_are_rebuilt() {
    let dir = tempfile::tempdir().expect("tmp");
    let (data, envs, got) = build(dir.path()).await;
    let leaf_dir = data.join("store/index/leaf");
    let mut shards: Vec<_> = std::fs::read_dir(&leaf_dir)
        .expect("leaf dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "hix"))
        .collect();
    shards.sort();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&shards[0])
        .expect("open")
        .set_len(7)
        .expect("truncate");
    std::fs::remove_file(&shards[1]).expect("delete");
    {
        let node = Node::start(&data);
        let mut c = node.client().await;
        for (index, lh) in &got {
            assert_eq!(by_leaf(&mut c, lh).await.expect("rebuilt"), *index);
        }
        // Request ids in the untouched request shards are still answered.
        let r = append(&mut c, &envs[5], "note-5").await.expect("retry");
        assert_eq!((r.index, r.duplicate), (got[5].0, true));
    }
    std::fs::remove_dir_all(data.join("store/index")).expect("delete index");
    let out = std::process::Command::new(bin("ledger-node"))
        .args(["reindex", "--data"])
        .arg(&data)
        .output()
        .expect("reindex");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("reindexed"), "{out:?}");
    let node = Node::start(&data);
    let mut c = node.client().await;
    for (index, lh) in &got {
        assert_eq!(by_leaf(&mut c, lh).await.expect("reindexed"), *index);
    }
    let q = c
        .query(pb::QueryRequest {
            kind: "note".into(),
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("query")
        .into_inner();
    assert_eq!(q.indices, got.iter().map(|g| g.0).collect::<Vec<_>>());
}
