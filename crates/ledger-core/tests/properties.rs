//! Property tests: proofs over random trees verify, and any change to leaf, proof hash, size or
//! index makes them fail; the incremental tree equals the batch tree; decoders never panic.

use ledger_core::compact::CompactTree;
use ledger_core::entry::Entry;
use ledger_core::hash::{Hash, leaf_hash};
use ledger_core::merkle;
use ledger_core::note::Note;
use proptest::prelude::*;

fn tree(n: usize, salt: u64) -> Vec<Hash> {
    (0..n)
        .map(|i| leaf_hash(&[salt.to_le_bytes(), (i as u64).to_le_bytes()].concat()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn incremental_root_equals_batch_root(n in 0usize..3000, salt: u64) {
        let lh = tree(n, salt);
        let mut ct = CompactTree::new();
        for l in &lh { ct.append(*l); }
        prop_assert_eq!(ct.root(), merkle::root_of(&lh));
        prop_assert_eq!(ct.frontier().len(), (n as u64).count_ones() as usize);
        let rebuilt = CompactTree::from_parts(ct.size(), ct.frontier().to_vec()).expect("parts");
        prop_assert_eq!(rebuilt.root(), ct.root());
    }

    #[test]
    fn inclusion_proofs_verify_and_mutations_fail(n in 1usize..3000, pick: u64, flip_byte in 0usize..32, salt: u64) {
        // One extra leaf so that the tree of size n + 1 exists for the size probe.
        let mut lh = tree(n + 1, salt);
        let bigger_root = merkle::root_of(&lh);
        lh.pop();
        let size = n as u64;
        let index = pick % size;
        let root = merkle::root_of(&lh);
        let proof = merkle::inclusion_proof(lh.as_slice(), index, size).expect("proof");
        prop_assert_eq!(proof.len(), merkle::inclusion_proof_len(index, size));
        prop_assert!(proof.len() <= 64 - (size - 1).leading_zeros() as usize);
        merkle::verify_inclusion(index, size, &lh[index as usize], &proof, &root).expect("verifies");

        let mut other = lh[index as usize];
        other.0[flip_byte] ^= 1;
        prop_assert!(merkle::verify_inclusion(index, size, &other, &proof, &root).is_err(), "leaf changed");
        for i in 0..proof.len() {
            let mut p = proof.clone();
            p[i].0[flip_byte] ^= 0x80;
            prop_assert!(merkle::verify_inclusion(index, size, &lh[index as usize], &p, &root).is_err(), "proof hash {} changed", i);
        }
        if size > 1 {
            let other_index = (index + 1) % size;
            if lh[other_index as usize] != lh[index as usize] {
                prop_assert!(merkle::verify_inclusion(other_index, size, &lh[index as usize], &proof, &root).is_err(), "index changed");
            }
        }
        // The size is bound through the root: the proof for size n does not verify against the
        // real tree of size n + 1 (or n - 1), whose roots a checkpoint would carry.
        prop_assert!(merkle::verify_inclusion(index, size + 1, &lh[index as usize], &proof, &bigger_root).is_err(), "size + 1");
        if size > index + 1 {
            let smaller_root = merkle::root_of(&lh[..n - 1]);
            prop_assert!(merkle::verify_inclusion(index, size - 1, &lh[index as usize], &proof, &smaller_root).is_err(), "size - 1");
        }
    }

    #[test]
    fn consistency_proofs_verify_and_mutations_fail(n in 2usize..3000, pick: u64, flip_byte in 0usize..32, salt: u64) {
        let mut lh = tree(n + 1, salt);
        let bigger_root = merkle::root_of(&lh);
        lh.pop();
        let new = n as u64;
        let old = 1 + pick % (new - 1);
        let old_root = merkle::root_of(&lh[..old as usize]);
        let new_root = merkle::root_of(&lh);
        let proof = merkle::consistency_proof(lh.as_slice(), old, new).expect("proof");
        merkle::verify_consistency(old, new, &old_root, &new_root, &proof).expect("verifies");
        for i in 0..proof.len() {
            let mut p = proof.clone();
            p[i].0[flip_byte] ^= 0x01;
            prop_assert!(merkle::verify_consistency(old, new, &old_root, &new_root, &p).is_err(), "proof hash {} changed", i);
        }
        let next_root = merkle::root_of(&lh[..old as usize + 1]);
        prop_assert!(merkle::verify_consistency(old + 1, new, &next_root, &new_root, &proof).is_err() || old + 1 == new, "old + 1");
        prop_assert!(merkle::verify_consistency(old, new + 1, &old_root, &bigger_root, &proof).is_err(), "new + 1");
        let mut r = old_root;
        r.0[flip_byte] ^= 1;
        prop_assert!(merkle::verify_consistency(old, new, &r, &new_root, &proof).is_err(), "old root changed");
        let mut extended = proof.clone();
        extended.push(new_root);
        prop_assert!(merkle::verify_consistency(old, new, &old_root, &new_root, &extended).is_err(), "extra hash");
    }

    #[test]
    fn entry_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Entry::decode(&bytes);
        let mut v = vec![1u8];
        v.extend_from_slice(&bytes);
        let _ = Entry::decode(&v);
    }

    #[test]
    fn note_parser_never_panics(s in "\\PC{0,300}", sig in "[A-Za-z0-9+/=]{0,120}") {
        let _ = Note::parse(&s);
        let _ = Note::parse(&format!("{s}\n\n— k {sig}\n"));
        let _ = ledger_core::checkpoint::Checkpoint::from_body(&s);
    }
}
