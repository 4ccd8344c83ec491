//! RFC 6962 / RFC 9162 reference vectors.
//!
//! Source: the 8-leaf reference tree used by the Certificate Transparency implementations, as
//! published in github.com/transparency-dev/merkle (`testonly/constants.go` for leaves, node
//! hashes and roots; `proof/verify_test.go` for inclusion and consistency proofs and the probe
//! list of corruptions). Inclusion vectors there use 1-based leaf numbers; here they are 0-based.

use ledger_tlog::compact::CompactTree;
use ledger_tlog::hash::{Hash, empty_root, leaf_hash};
use ledger_tlog::merkle::{self, ProofError};

fn h(s: &str) -> Hash {
    Hash::from_hex(s).expect("vector hex")
}

fn leaves() -> Vec<Vec<u8>> {
    [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|s| hex::decode(s).expect("hex"))
    .collect()
}

fn leaf_hashes() -> Vec<Hash> {
    leaves().iter().map(|l| leaf_hash(l)).collect()
}

const ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn root(size: usize) -> Hash {
    if size == 0 { empty_root() } else { h(ROOTS[size - 1]) }
}

// (0-based index, size, proof)
fn inclusion_vectors() -> Vec<(u64, u64, Vec<Hash>)> {
    vec![
        (0, 1, vec![]),
        (
            0,
            8,
            vec![
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ],
        ),
        (
            5,
            8,
            vec![
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
        (
            2,
            3,
            vec![h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")],
        ),
        (
            1,
            5,
            vec![
                h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            ],
        ),
    ]
}

fn consistency_vectors() -> Vec<(u64, u64, Vec<Hash>)> {
    vec![
        (1, 1, vec![]),
        (
            1,
            8,
            vec![
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ],
        ),
        (
            6,
            8,
            vec![
                h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
        (
            2,
            5,
            vec![
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            ],
        ),
        (
            6,
            7,
            vec![
                h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
    ]
}

#[test]
fn empty_tree_root_is_sha256_of_nothing() {
    assert_eq!(
        empty_root().to_hex(),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(merkle::root_of(&[]), empty_root());
    assert_eq!(CompactTree::new().root(), empty_root());
}

#[test]
fn roots_for_sizes_1_to_8() {
    let lh = leaf_hashes();
    let mut ct = CompactTree::new();
    for n in 1..=8 {
        assert_eq!(merkle::root_of(&lh[..n]), root(n), "batch root of {n}");
        ct.append(lh[n - 1]);
        assert_eq!(ct.root(), root(n), "incremental root of {n}");
        assert_eq!(
            merkle::root_from_source(lh.as_slice(), n as u64).expect("root"),
            root(n)
        );
    }
}

#[test]
fn completed_nodes_match_published_node_hashes() {
    // testonly/constants.go NodeHashes(): level 1 index 2 and level 2 index 1 among others.
    let lh = leaf_hashes();
    let mut ct = CompactTree::new();
    let mut seen = Vec::new();
    for l in &lh {
        ct.append_with(*l, |n| seen.push(n));
    }
    let find = |level, index| {
        seen.iter()
            .find(|n| n.level == level && n.index == index)
            .map(|n| n.hash)
    };
    assert_eq!(
        find(1, 2),
        Some(h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"))
    );
    assert_eq!(
        find(2, 1),
        Some(h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"))
    );
    assert_eq!(find(3, 0), Some(root(8)));
    assert_eq!(seen.len(), 15, "8 leaves + 4 + 2 + 1 interior nodes");
}

#[test]
fn inclusion_proofs_match_vectors_and_verify() {
    let lh = leaf_hashes();
    for (index, size, proof) in inclusion_vectors() {
        let got = merkle::inclusion_proof(&lh[..size as usize], index, size).expect("proof");
        assert_eq!(got, proof, "inclusion proof for {index} in {size}");
        merkle::verify_inclusion(index, size, &lh[index as usize], &proof, &root(size as usize))
            .expect("vector verifies");
    }
}

#[test]
fn consistency_proofs_match_vectors_and_verify() {
    let lh = leaf_hashes();
    for (old, new, proof) in consistency_vectors() {
        let got = merkle::consistency_proof(&lh[..new as usize], old, new).expect("proof");
        assert_eq!(got, proof, "consistency proof {old} -> {new}");
        merkle::verify_consistency(old, new, &root(old as usize), &root(new as usize), &proof)
            .expect("vector verifies");
    }
}

/// (index or old size, size or new size, hash, hash, proof, description)
type Probe = (u64, u64, Hash, Hash, Vec<Hash>, &'static str);

#[test]
fn corrupted_inclusion_probes_fail() {
    // The probe list of transparency-dev/merkle proof/verify_test.go corruptInclusionProof.
    let lh = leaf_hashes();
    let some = h("abacaba000000000000000000000000000000000000000000060061e00123456");
    for (index, size, proof) in inclusion_vectors() {
        let r = root(size as usize);
        let leaf = lh[index as usize];
        let mut probes: Vec<Probe> = vec![
            (index.wrapping_sub(1), size, r, leaf, proof.clone(), "index - 1"),
            (index + 1, size, r, leaf, proof.clone(), "index + 1"),
            (index ^ 2, size, r, leaf, proof.clone(), "index ^ 2"),
            (index, size * 2, r, leaf, proof.clone(), "size * 2"),
            (index, size / 2, r, leaf, proof.clone(), "size / 2"),
            (index, size, r, leaf_hash(b"WrongLeaf"), proof.clone(), "wrong leaf"),
            (index, size, empty_root(), leaf, proof.clone(), "empty root"),
            (index, size, some, leaf, proof.clone(), "random root"),
            (index, size, r, leaf, [proof.clone(), vec![r]].concat(), "trailing root"),
            (
                index,
                size,
                r,
                leaf,
                [vec![r], proof.clone()].concat(),
                "preceding root",
            ),
        ];
        for i in 0..proof.len() {
            let mut p = proof.clone();
            p[i].0[0] ^= 8;
            probes.push((index, size, r, leaf, p, "flipped bit"));
        }
        if !proof.is_empty() {
            probes.push((
                index,
                size,
                r,
                leaf,
                proof[..proof.len() - 1].to_vec(),
                "removed component",
            ));
        }
        for (i, s, root, leaf, p, desc) in probes {
            if i == index && s == size && root == r && leaf == lh[index as usize] && p == proof {
                continue;
            }
            assert!(
                merkle::verify_inclusion(i, s, &leaf, &p, &root).is_err(),
                "probe {desc} on {index}/{size} verified"
            );
        }
    }
}

#[test]
fn corrupted_consistency_probes_fail() {
    for (old, new, proof) in consistency_vectors() {
        if proof.is_empty() {
            continue;
        }
        let r1 = root(old as usize);
        let r2 = root(new as usize);
        let mut probes: Vec<Probe> = vec![
            (old - 1, new, r1, r2, proof.clone(), "old - 1"),
            (old + 1, new, r1, r2, proof.clone(), "old + 1"),
            (old ^ 2, new, r1, r2, proof.clone(), "old ^ 2"),
            (old, new * 2, r1, r2, proof.clone(), "new * 2"),
            (old, new / 2, r1, r2, proof.clone(), "new / 2"),
            (old, new, leaf_hash(b"WrongRoot"), r2, proof.clone(), "wrong root1"),
            (old, new, r1, leaf_hash(b"WrongRoot"), proof.clone(), "wrong root2"),
            (old, new, r2, r1, proof.clone(), "swapped roots"),
            (old, new, r1, r2, vec![], "empty proof"),
            (old, new, r1, r2, [proof.clone(), vec![r1]].concat(), "trailing root1"),
            (old, new, r1, r2, [proof.clone(), vec![r2]].concat(), "trailing root2"),
            (old, new, r1, r2, [vec![r1], proof.clone()].concat(), "preceding root1"),
            (
                old,
                new,
                r1,
                r2,
                [vec![proof[0]], proof.clone()].concat(),
                "preceding proof[0]",
            ),
            (old, new, r1, r2, proof[..proof.len() - 1].to_vec(), "truncated"),
        ];
        for i in 0..proof.len() {
            let mut p = proof.clone();
            p[i].0[0] ^= 16;
            probes.push((old, new, r1, r2, p, "flipped bit"));
        }
        for (o, n, a, b, p, desc) in probes {
            assert!(
                merkle::verify_consistency(o, n, &a, &b, &p).is_err(),
                "probe {desc} on {old}->{new} verified"
            );
        }
    }
}

#[test]
fn consistency_edge_cases() {
    let a = leaf_hash(b"a");
    let b = leaf_hash(b"b");
    let e = empty_root();
    assert!(merkle::verify_consistency(0, 0, &a, &a, &[]).is_ok());
    assert!(merkle::verify_consistency(0, 1, &a, &b, &[]).is_ok());
    assert!(merkle::verify_consistency(1, 1, &b, &b, &[]).is_ok());
    assert!(merkle::verify_consistency(1, 1, &a, &b, &[]).is_err());
    assert!(matches!(
        merkle::verify_consistency(1, 0, &a, &b, &[]),
        Err(ProofError::InvalidSizes { .. })
    ));
    assert!(merkle::verify_consistency(1, 2, &a, &b, &[]).is_err());
    assert!(
        merkle::verify_consistency(0, 1, &e, &e, &[e]).is_err(),
        "non-empty proof for old = 0"
    );
    assert!(
        merkle::verify_consistency(1, 1, &e, &e, &[e]).is_err(),
        "non-empty proof for old = new"
    );
    assert!(merkle::consistency_proof(leaf_hashes().as_slice(), 3, 2).is_err());
}

#[test]
fn inclusion_edge_cases() {
    let a = leaf_hash(b"data");
    // A one-leaf tree: root = leaf hash, empty proof.
    assert!(merkle::verify_inclusion(0, 1, &a, &[], &a).is_ok());
    assert!(merkle::verify_inclusion(0, 0, &a, &[], &a).is_err());
    assert!(merkle::verify_inclusion(1, 1, &a, &[], &a).is_err());
    assert!(merkle::verify_inclusion(2, 1, &a, &[], &a).is_err());
    assert!(merkle::inclusion_proof(leaf_hashes().as_slice(), 8, 8).is_err());
}
