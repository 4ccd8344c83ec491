//! The comparison: pure functions over checkpoint notes and the node's consistency proofs, held
//! in memory. They open the notes, decide which checkpoints are consistent, forked or rolled back,
//! and record faults and statuses; they ask nothing of the network ([`super::fetch`] does) and
//! print nothing ([`super::render`] does).

use super::{ConsistencyOutcome, NOT_COMPARED_NO_NODE, Pair, Saved};
use crate::fault::{Code, Fault, Faults};
use ledger_core::checkpoint::open_checkpoint;
use ledger_core::cosignature::CosignatureVerifier;
use ledger_core::hash::{Hash, empty_root};
use ledger_core::merkle::verify_consistency;
use ledger_core::note::NoteVerifier;
use std::collections::BTreeMap;

/// An opened checkpoint: where it came from, its size and root.
#[derive(Debug, Clone)]
pub struct Cp {
    /// File name, witness URL, or "the node's latest checkpoint".
    pub label: String,
    /// Size.
    pub size: u64,
    /// Root.
    pub root: Hash,
}

/// The node's answer to a consistency-proof request: the proof's hashes as sent, or (the node
/// refused) its status in words.
pub type ProofAnswer = Result<Vec<Vec<u8>>, String>;

/// The node's answers, by (old size, new size).
pub type Proofs = BTreeMap<(u64, u64), ProofAnswer>;

/// A checkpoint as fault evidence.
fn show(c: &Cp) -> String {
    format!("size {} root {} ({})", c.size, c.root, c.label)
}

/// Sets the status of the saved checkpoint `label` when it is still "consistent".
fn mark(saved: &mut [Saved], label: &str, status: &str) {
    if let Some(s) = saved.iter_mut().find(|s| s.file == label && s.status == "consistent") {
        s.status = status.to_string();
    }
}

/// The status of the saved checkpoint `label`.
fn status_of<'a>(saved: &'a [Saved], label: &str) -> &'a str {
    saved.iter().find(|x| x.file == label).map_or("", |x| x.status.as_str())
}

/// Judges `old` against `new` without a proof where that is possible: `Some(None)` consistent,
/// `Some(Some(why))` not; `None` when only a consistency proof can tell.
pub fn local_verdict(old: &Cp, new: &Cp) -> Option<Option<String>> {
    if old.size == 0 {
        return Some((old.root != empty_root()).then(|| "a size-0 checkpoint must carry the empty-tree root".into()));
    }
    if old.size == new.size {
        return Some((old.root != new.root).then(|| "equal sizes with different roots".into()));
    }
    None
}

/// Judges `old` against `new` with the node's answer: `None` when consistent, `Some(why)` when not.
pub fn proof_verdict(old: &Cp, new: &Cp, answer: &ProofAnswer) -> Option<String> {
    let hashes = match answer {
        Ok(h) => h,
        Err(status) => return Some(format!("the node gives no consistency proof: {status}")),
    };
    let mut proof = Vec::with_capacity(hashes.len());
    for h in hashes {
        match Hash::from_slice(h) {
            Ok(h) => proof.push(h),
            Err(e) => return Some(format!("the node's proof holds a malformed hash: {e}")),
        }
    }
    verify_consistency(old.size, new.size, &old.root, &new.root, &proof)
        .err()
        .map(|e| format!("the consistency proof from the node does not verify: {e}"))
}

/// Judges `old` against `new`, locally or with the node's proof from `proofs`.
pub fn verdict(old: &Cp, new: &Cp, proofs: &Proofs) -> Option<String> {
    local_verdict(old, new).unwrap_or_else(|| match proofs.get(&(old.size, new.size)) {
        Some(answer) => proof_verdict(old, new, answer),
        None => Some("no consistency proof was fetched from the node".into()),
    })
}

/// The proofs `verdict` will need for these pairs.
pub fn needed(pairs: &[(Cp, Cp)]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = pairs
        .iter()
        .filter(|(a, b)| local_verdict(a, b).is_none())
        .map(|(a, b)| (a.size, b.size))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Opens the checkpoint notes (name, source, text) with the log's key and counts each one's
/// valid witness cosignatures. Each is listed in `listed`; those that open are returned.
pub fn open_saved(
    texts: &[(String, &'static str, String)],
    verifier: &NoteVerifier,
    witnesses: &[CosignatureVerifier],
    listed: &mut Vec<Saved>,
    faults: &mut Faults,
) -> Vec<Cp> {
    let mut saved = Vec::new();
    for (file, source, text) in texts {
        let c = match open_checkpoint(text, verifier) {
            Ok(c) => c,
            Err(e) => {
                faults.push(Fault::new(
                    None,
                    Code::CheckpointBadSignature,
                    format!("{file}: does not verify with {}: {e}", verifier.to_string_key()),
                ));
                listed.push(Saved {
                    file: file.clone(),
                    source,
                    size: None,
                    root: None,
                    status: "bad signature".into(),
                    witnesses: Vec::new(),
                });
                continue;
            }
        };
        let cp = Cp {
            label: file.clone(),
            size: c.checkpoint.size,
            root: c.checkpoint.root,
        };
        let cosigners = match c.note.verify_cosignatures(witnesses) {
            Ok(v) => v.into_iter().map(|w| w.name).collect(),
            Err(e) => {
                faults.push(Fault::new(
                    Some(cp.size),
                    Code::CheckpointBadSignature,
                    format!("{file}: a witness cosignature does not verify: {e}"),
                ));
                Vec::new()
            }
        };
        listed.push(Saved {
            file: file.clone(),
            source,
            size: Some(cp.size),
            root: Some(cp.root.to_hex()),
            status: "consistent".into(),
            witnesses: cosigners,
        });
        saved.push(cp);
    }
    saved
}

/// Opens the node's latest checkpoint (note text, size as the node states it). One that does not
/// verify is a fault, and the saved checkpoints are then not compared.
pub fn open_latest(
    latest: Option<(&str, u64)>,
    verifier: &NoteVerifier,
    out: &mut ConsistencyOutcome,
    faults: &mut Faults,
) -> Option<Cp> {
    let (note, size) = latest?;
    match open_checkpoint(note, verifier) {
        Ok(c) => Some(Cp {
            label: "the node's latest checkpoint".into(),
            size: c.checkpoint.size,
            root: c.checkpoint.root,
        }),
        Err(e) => {
            faults.push(Fault::new(
                Some(size),
                Code::CheckpointBadSignature,
                format!("the node's latest checkpoint does not verify: {e}"),
            ));
            for s in &mut out.saved {
                if s.status == "consistent" {
                    s.status = "not compared".into();
                }
            }
            None
        }
    }
}

/// The pairs (saved, latest) that [`against_latest`] judges.
pub fn latest_pairs(saved: &[Cp], latest: Option<&Cp>) -> Vec<(Cp, Cp)> {
    let Some(l) = latest else { return Vec::new() };
    saved
        .iter()
        .filter(|s| l.size >= s.size)
        .map(|s| (s.clone(), l.clone()))
        .collect()
}

/// Each saved checkpoint against the node's latest: it must be a prefix of it (a FORK when the
/// proof fails, a ROLLBACK when the log has shrunk or serves no checkpoint at all).
pub fn against_latest(
    out: &mut ConsistencyOutcome,
    saved: &[Cp],
    latest: Option<&Cp>,
    proofs: &Proofs,
    faults: &mut Faults,
) {
    for s in saved {
        let Some(l) = latest else {
            if out.saved.iter().any(|x| x.file == s.label && x.status == "consistent") {
                faults.push(
                    Fault::new(Some(s.size), Code::Rollback, "the node serves no checkpoint at all")
                        .evidence(show(s), "no checkpoint"),
                );
                mark(&mut out.saved, &s.label, "ROLLBACK");
            }
            continue;
        };
        if l.size < s.size {
            faults.push(
                Fault::new(
                    Some(s.size),
                    Code::Rollback,
                    format!(
                        "{}: the node's log has shrunk from {} to {} entries",
                        s.label, s.size, l.size
                    ),
                )
                .evidence(show(s), show(l)),
            );
            mark(&mut out.saved, &s.label, "ROLLBACK");
        } else if let Some(why) = verdict(s, l, proofs) {
            faults.push(
                Fault::new(
                    Some(s.size),
                    Code::Fork,
                    format!("{} is not a prefix of the node's log: {why}", s.label),
                )
                .evidence(show(s), show(l)),
            );
            mark(&mut out.saved, &s.label, "FORK");
        }
    }
}

/// Saved checkpoints by size.
fn by_size(saved: &[Cp]) -> Vec<Cp> {
    let mut sorted = saved.to_vec();
    sorted.sort_by_key(|c| c.size);
    sorted
}

/// Equal sizes must have equal roots.
pub fn equal_sizes(saved: &[Cp], faults: &mut Faults) {
    for w in by_size(saved).windows(2) {
        let (a, b) = (&w[0], &w[1]);
        if a.size == b.size && a.root != b.root {
            pair(a, b, "equal sizes with different roots".into(), faults);
        }
    }
}

/// A checkpoint off the node's log (a fork) is inconsistent with every saved checkpoint on it that
/// is larger: the pairs of each forked checkpoint and the smallest such one. (Two checkpoints that
/// are both off the node's log cannot be judged with the node's proofs; each is reported by
/// [`against_latest`].)
pub fn fork_pairs(out: &ConsistencyOutcome, saved: &[Cp]) -> Vec<(Cp, Cp)> {
    let sorted = by_size(saved);
    sorted
        .iter()
        .filter(|a| status_of(&out.saved, &a.label) == "FORK")
        .filter_map(|a| {
            sorted
                .iter()
                .find(|b| b.size > a.size && status_of(&out.saved, &b.label) == "consistent")
                .map(|b| (a.clone(), b.clone()))
        })
        .collect()
}

/// Reports the pairs from [`fork_pairs`] whose proof fails.
pub fn judge_fork_pairs(pairs: &[(Cp, Cp)], proofs: &Proofs, faults: &mut Faults) {
    for (a, b) in pairs {
        if let Some(why) = verdict(a, b, proofs) {
            pair(a, b, why, faults);
        }
    }
}

/// Reports a pair of checkpoints that cannot both be prefixes of one log.
fn pair(a: &Cp, b: &Cp, why: String, faults: &mut Faults) {
    faults.push(
        Fault::new(
            Some(a.size),
            Code::Fork,
            format!("{} and {} cannot both be prefixes of one log: {why}", a.label, b.label),
        )
        .evidence(show(a), show(b)),
    );
}

/// Without a node: every two checkpoints that can be compared without a consistency proof (equal
/// sizes, or an empty tree) must agree; the others are listed as not compared. A checkpoint's
/// status becomes "FORK" when it is in a forked pair, "consistent" when every pair it is in was
/// compared and agreed, and "not compared" otherwise.
pub fn compare_offline(out: &mut ConsistencyOutcome, saved: &[Cp], faults: &mut Faults) {
    let mut compared_all = vec![true; saved.len()];
    let mut forked = vec![false; saved.len()];
    for i in 0..saved.len() {
        for j in i + 1..saved.len() {
            let (a, b) = if saved[i].size <= saved[j].size {
                (&saved[i], &saved[j])
            } else {
                (&saved[j], &saved[i])
            };
            let why = if a.size == 0 && a.root != empty_root() {
                Some("a size-0 checkpoint must carry the empty-tree root")
            } else if a.size == b.size && a.root != b.root {
                Some("equal sizes with different roots")
            } else {
                None
            };
            let result = if let Some(why) = why {
                pair(a, b, why.into(), faults);
                forked[i] = true;
                forked[j] = true;
                "FORK"
            } else if a.size == b.size || a.size == 0 {
                "consistent"
            } else {
                compared_all[i] = false;
                compared_all[j] = false;
                NOT_COMPARED_NO_NODE
            };
            out.pairs.push(Pair {
                a: saved[i].label.clone(),
                b: saved[j].label.clone(),
                result: result.into(),
            });
        }
    }
    for (k, c) in saved.iter().enumerate() {
        let status = if forked[k] {
            "FORK"
        } else if compared_all[k] && saved.len() > 1 {
            "consistent"
        } else {
            "not compared"
        };
        mark(&mut out.saved, &c.label, status);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ed25519_dalek::SigningKey;
    use ledger_core::checkpoint::Checkpoint;
    use ledger_core::hash::leaf_hash;
    use ledger_core::merkle::{consistency_proof, root_of};
    use ledger_core::note::NoteSigner;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    /// A checkpoint of the first `size` leaves.
    fn cp(label: &str, size: u64) -> Cp {
        Cp {
            label: label.into(),
            size,
            root: root_of(&leaves(size)),
        }
    }

    /// A checkpoint of `size` leaves of another log.
    fn other(label: &str, size: u64) -> Cp {
        let l: Vec<Hash> = (0..size).map(|i| leaf_hash(&(i + 1000).to_be_bytes())).collect();
        Cp {
            label: label.into(),
            size,
            root: root_of(&l),
        }
    }

    /// The honest node's proof between two sizes.
    fn honest(old: u64, new: u64) -> ProofAnswer {
        let all = leaves(new);
        Ok(consistency_proof(&all, old, new)
            .unwrap()
            .iter()
            .map(|h| h.as_bytes().to_vec())
            .collect())
    }

    fn outcome(saved: &[Cp]) -> ConsistencyOutcome {
        ConsistencyOutcome {
            node: Some("test".into()),
            trust: String::new(),
            latest: None,
            saved: saved
                .iter()
                .map(|c| Saved {
                    file: c.label.clone(),
                    source: "file",
                    size: Some(c.size),
                    root: Some(c.root.to_hex()),
                    status: "consistent".into(),
                    witnesses: Vec::new(),
                })
                .collect(),
            pairs: Vec::new(),
            faults: Faults::new(0),
        }
    }

    fn codes(f: &Faults) -> Vec<&'static str> {
        f.list().iter().map(|x| x.code.as_str()).collect()
    }

    fn statuses(o: &ConsistencyOutcome) -> Vec<&str> {
        o.saved.iter().map(|s| s.status.as_str()).collect()
    }

    #[test]
    fn local_verdicts_need_no_proof_for_equal_sizes_and_the_empty_tree() {
        assert_eq!(local_verdict(&cp("a", 5), &cp("b", 5)), Some(None));
        assert_eq!(
            local_verdict(&cp("a", 5), &other("b", 5)),
            Some(Some("equal sizes with different roots".into()))
        );
        assert_eq!(local_verdict(&cp("a", 0), &cp("b", 9)), Some(None));
        let bad_empty = Cp {
            root: leaf_hash(b"x"),
            ..cp("a", 0)
        };
        assert_eq!(
            local_verdict(&bad_empty, &cp("b", 9)),
            Some(Some("a size-0 checkpoint must carry the empty-tree root".into()))
        );
        assert_eq!(local_verdict(&cp("a", 3), &cp("b", 9)), None);
        assert_eq!(
            needed(&[(cp("a", 3), cp("b", 9)), (cp("c", 9), cp("d", 9))]),
            vec![(3, 9)]
        );
    }

    #[test]
    fn proof_verdicts_accept_an_honest_proof_and_name_every_failure() {
        let (old, new) = (cp("old", 3), cp("new", 7));
        assert_eq!(proof_verdict(&old, &new, &honest(3, 7)), None);
        let forked = other("forked", 3);
        let why = proof_verdict(&forked, &new, &honest(3, 7)).unwrap();
        assert!(
            why.starts_with("the consistency proof from the node does not verify: "),
            "{why}"
        );
        let why = proof_verdict(&old, &new, &Ok(vec![vec![1, 2, 3]])).unwrap();
        assert!(why.starts_with("the node's proof holds a malformed hash: "), "{why}");
        let why = proof_verdict(&old, &new, &Err("no (NotFound)".into())).unwrap();
        assert_eq!(why, "the node gives no consistency proof: no (NotFound)");
        assert_eq!(
            verdict(&old, &new, &Proofs::new()).as_deref(),
            Some("no consistency proof was fetched from the node")
        );
    }

    #[test]
    fn against_latest_finds_consistent_forked_and_rolled_back_checkpoints() {
        let saved = [cp("good", 3), other("fork", 4), cp("ahead", 9)];
        let latest = cp("the node's latest checkpoint", 7);
        let mut out = outcome(&saved);
        let mut faults = Faults::new(10);
        let pairs = latest_pairs(&saved, Some(&latest));
        assert_eq!(needed(&pairs), vec![(3, 7), (4, 7)]);
        let proofs: Proofs = needed(&pairs)
            .into_iter()
            .map(|(a, b)| ((a, b), honest(a, b)))
            .collect();
        against_latest(&mut out, &saved, Some(&latest), &proofs, &mut faults);
        assert_eq!(statuses(&out), ["consistent", "FORK", "ROLLBACK"]);
        assert_eq!(codes(&faults), ["FORK", "ROLLBACK"]);
        assert!(faults.list()[1].message.contains("shrunk from 9 to 7 entries"));
        // The fork is paired with the smallest larger saved checkpoint on the node's log: none here.
        assert!(fork_pairs(&out, &saved).is_empty());
    }

    #[test]
    fn a_node_without_checkpoints_rolls_back_every_saved_one() {
        let saved = [cp("a", 3)];
        let mut out = outcome(&saved);
        let mut faults = Faults::new(10);
        against_latest(&mut out, &saved, None, &Proofs::new(), &mut faults);
        assert_eq!(statuses(&out), ["ROLLBACK"]);
        assert_eq!(faults.list()[0].message, "the node serves no checkpoint at all");
    }

    #[test]
    fn a_fork_is_paired_with_the_smallest_larger_checkpoint_on_the_nodes_log() {
        let saved = [other("fork", 2), cp("big", 6), cp("mid", 4), other("same", 4)];
        let mut out = outcome(&saved);
        out.saved[0].status = "FORK".into();
        out.saved[3].status = "FORK".into();
        let mut faults = Faults::new(10);
        equal_sizes(&saved, &mut faults);
        assert_eq!(codes(&faults), ["FORK"]);
        assert!(faults.list()[0].message.ends_with("equal sizes with different roots"));
        let pairs = fork_pairs(&out, &saved);
        let labels: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(a, b)| (a.label.as_str(), b.label.as_str()))
            .collect();
        assert_eq!(labels, [("fork", "mid"), ("same", "big")]);
        let proofs: Proofs = needed(&pairs)
            .into_iter()
            .map(|(a, b)| ((a, b), honest(a, b)))
            .collect();
        judge_fork_pairs(&pairs, &proofs, &mut faults);
        assert_eq!(faults.total(), 3);
        assert!(
            faults.list()[1]
                .message
                .starts_with("fork and mid cannot both be prefixes of one log")
        );
    }

    #[test]
    fn offline_compares_equal_sizes_and_leaves_the_rest_not_compared() {
        let saved = [cp("a", 4), other("b", 4), cp("c", 6), cp("d", 6)];
        let mut out = outcome(&saved);
        let mut faults = Faults::new(10);
        compare_offline(&mut out, &saved, &mut faults);
        assert_eq!(statuses(&out), ["FORK", "FORK", "not compared", "not compared"]);
        let results: Vec<&str> = out.pairs.iter().map(|p| p.result.as_str()).collect();
        assert_eq!(
            results,
            [
                "FORK",
                NOT_COMPARED_NO_NODE,
                NOT_COMPARED_NO_NODE,
                NOT_COMPARED_NO_NODE,
                NOT_COMPARED_NO_NODE,
                "consistent"
            ]
        );
        assert_eq!(codes(&faults), ["FORK"]);
    }

    #[test]
    fn open_saved_verifies_the_log_signature() {
        let signer = NoteSigner::new("example.org/log", SigningKey::from_bytes(&[7; 32])).unwrap();
        let stranger = NoteSigner::new("example.org/log", SigningKey::from_bytes(&[8; 32])).unwrap();
        let c = cp("x", 5);
        let body = Checkpoint {
            origin: "example.org/log".into(),
            size: c.size,
            root: c.root,
            extensions: Vec::new(),
        };
        let texts = [
            ("good.cp".to_string(), "file", body.sign(&signer).unwrap().to_text()),
            ("bad.cp".to_string(), "file", body.sign(&stranger).unwrap().to_text()),
        ];
        let mut listed = Vec::new();
        let mut faults = Faults::new(10);
        let opened = open_saved(&texts, signer.verifier(), &[], &mut listed, &mut faults);
        assert_eq!(opened.len(), 1);
        assert_eq!((opened[0].size, opened[0].root), (5, c.root));
        let st: Vec<&str> = listed.iter().map(|s| s.status.as_str()).collect();
        assert_eq!(st, ["consistent", "bad signature"]);
        assert_eq!(codes(&faults), ["CHECKPOINT_BAD_SIGNATURE"]);
    }
}
