//! `ledger-draw-v1` test vectors and properties.
//!
//! The vectors were computed by the reference implementation in Python printed in `docs/draws.md`
//! (standard library only), written from the specification, not from this code.

use ledger_core::draw::{
    DrawError, Stratum, Stream, check_canonical, match_subjects, seed, select, select_minute, select_stratified,
    stratum_seed,
};
use ledger_core::hash::Hash;
use proptest::prelude::*;

fn vector_seed() -> Hash {
    seed(
        &Hash::digest(b"commit"),
        &Hash::digest(b"root at T"),
        &[b"registrar secret", b"discipline secret", b"citizen secret"],
    )
}

#[test]
fn seed_and_stream_vectors() {
    let s = vector_seed();
    assert_eq!(
        s.to_hex(),
        "58b4c02ba6bc1a29d84307d06393bfcd9a899745fcc0d436b705b99e0963e3ef"
    );
    let mut st = Stream::new(s);
    let got: Vec<u64> = (0..5).map(|_| st.next_u64()).collect();
    assert_eq!(
        got,
        vec![
            12729173679285966898,
            3839688418983063320,
            9081205142731979940,
            10898517386684059003,
            9734821994027494937
        ]
    );
}

#[test]
fn selection_vectors() {
    let s = vector_seed();
    let pool: Vec<String> = (0..20).map(|i| format!("e{i:02}")).collect();
    let sel = select(&mut Stream::new(s), &pool, 7, "").expect("select");
    assert_eq!(sel, ["e18", "e13", "e02", "e00", "e01", "e04", "e15"]);

    let a: Vec<String> = (0..6).map(|i| format!("a{i}")).collect();
    let b: Vec<String> = (0..4).map(|i| format!("b{i}")).collect();
    let strata = [
        Stratum {
            name: "domain-A",
            members: a.iter().map(String::as_str).collect(),
            quota: 2,
        },
        Stratum {
            name: "domain-B",
            members: b.iter().map(String::as_str).collect(),
            quota: 3,
        },
    ];
    let got = select_stratified(&s, &strata).expect("stratified");
    assert_eq!(
        got,
        vec![("domain-A", vec!["a4", "a3"]), ("domain-B", vec!["b1", "b2", "b0"])]
    );

    assert_eq!(
        select_minute(&s, &[(29_000_000, 29_000_060), (29_001_000, 29_001_120)]).expect("minute"),
        29_001_118
    );

    let ev: Vec<String> = (0..7).map(|i| format!("e{i:02}")).collect();
    let evr: Vec<&str> = ev.iter().map(String::as_str).collect();
    let m = match_subjects(&s, &evr, &["s1", "s2", "s3"]).expect("match");
    assert_eq!(
        m,
        vec![
            ("s1", vec!["e02", "e06", "e05"]),
            ("s2", vec!["e03", "e01"]),
            ("s3", vec!["e00", "e04"])
        ]
    );
}

#[test]
fn inputs_are_checked() {
    assert!(check_canonical(&["a", "b", "c"]).is_ok());
    assert!(matches!(
        check_canonical(&["a", "c", "b"]),
        Err(DrawError::NotCanonical(2))
    ));
    assert!(matches!(check_canonical(&["a", "a"]), Err(DrawError::NotCanonical(1))));
    let s = vector_seed();
    assert!(matches!(
        select(&mut Stream::new(s), &["a", "b"], 3, "x"),
        Err(DrawError::NotEnough { .. })
    ));
    assert!(matches!(select_minute(&s, &[]), Err(DrawError::Windows(_))));
    assert!(matches!(select_minute(&s, &[(10, 10)]), Err(DrawError::Windows(_))));
    let bad = [Stratum {
        name: "x",
        members: vec!["b", "a"],
        quota: 1,
    }];
    assert!(matches!(select_stratified(&s, &bad), Err(DrawError::NotCanonical(1))));
}

#[test]
fn every_secret_and_the_root_change_the_seed() {
    let base = vector_seed();
    assert_ne!(
        seed(
            &Hash::digest(b"commit"),
            &Hash::digest(b"root at T!"),
            &[b"registrar secret", b"discipline secret", b"citizen secret"]
        ),
        base
    );
    assert_ne!(
        seed(
            &Hash::digest(b"commit"),
            &Hash::digest(b"root at T"),
            &[b"registrar secret", b"discipline secret", b"citizen secreT"]
        ),
        base
    );
    // Order matters, and length prefixes prevent shifting bytes between secrets.
    assert_ne!(
        seed(
            &Hash::digest(b"commit"),
            &Hash::digest(b"root at T"),
            &[b"discipline secret", b"registrar secret", b"citizen secret"]
        ),
        base
    );
    assert_ne!(
        seed(
            &Hash::digest(b"commit"),
            &Hash::digest(b"root at T"),
            &[b"registrar secretd", b"iscipline secret", b"citizen secret"]
        ),
        base
    );
    assert_ne!(stratum_seed(&base, "a"), stratum_seed(&base, "b"));
}

#[test]
fn uniformity_chi_square_over_fixed_seeds() {
    // 12,000 draws of uniform(6) from 1,000 fixed seeds: chi-square with 5 degrees of freedom must
    // stay below 20.52 (p = 0.001). Deterministic: the seeds are fixed.
    let mut counts = [0u64; 6];
    for i in 0..1000u32 {
        let mut st = Stream::new(Hash::digest(&i.to_be_bytes()));
        for _ in 0..12 {
            counts[st.uniform(6) as usize] += 1;
        }
    }
    let e = 12_000.0 / 6.0;
    let chi: f64 = counts.iter().map(|c| (*c as f64 - e).powi(2) / e).sum();
    assert!(chi < 20.52, "chi-square {chi} over {counts:?}");
    // First position of a 10-of-10 shuffle is uniform too.
    let pool: Vec<u32> = (0..10).collect();
    let mut first = [0u64; 10];
    for i in 0..5000u32 {
        let mut st = Stream::new(Hash::digest(&[b"shuffle".as_slice(), &i.to_be_bytes()].concat()));
        first[select(&mut st, &pool, 10, "").expect("select")[0] as usize] += 1;
    }
    let e = 500.0;
    let chi: f64 = first.iter().map(|c| (*c as f64 - e).powi(2) / e).sum();
    assert!(chi < 27.88, "chi-square {chi} (9 dof, p = 0.001) over {first:?}");
}

proptest! {
    #[test]
    fn selection_is_a_permutation_prefix(n in 0usize..200, k_frac in 0.0f64..=1.0, salt: u64) {
        let pool: Vec<u32> = (0..n as u32).collect();
        let k = ((n as f64) * k_frac) as usize;
        let mut st = Stream::new(Hash::digest(&salt.to_be_bytes()));
        let sel = select(&mut st, &pool, k, "").expect("select");
        prop_assert_eq!(sel.len(), k);
        let mut full = select(&mut Stream::new(Hash::digest(&salt.to_be_bytes())), &pool, n, "").expect("all");
        prop_assert_eq!(&full[..k], &sel[..]);
        full.sort_unstable();
        prop_assert_eq!(full, pool);
    }

    #[test]
    fn strata_quotas_are_respected(sizes in proptest::collection::vec(1usize..30, 1..6), salt: u64) {
        let names: Vec<String> = (0..sizes.len()).map(|i| format!("s{i}")).collect();
        let members: Vec<Vec<String>> = sizes.iter().enumerate().map(|(i, n)| (0..*n).map(|j| format!("m{i}-{j:03}")).collect()).collect();
        let strata: Vec<Stratum> = names.iter().zip(&members).map(|(nm, m)| Stratum { name: nm, members: m.iter().map(String::as_str).collect(), quota: m.len() / 2 }).collect();
        let got = select_stratified(&Hash::digest(&salt.to_be_bytes()), &strata).expect("stratified");
        for ((name, sel), s) in got.iter().zip(&strata) {
            prop_assert_eq!(*name, s.name);
            prop_assert_eq!(sel.len(), s.quota);
            prop_assert!(sel.iter().all(|x| s.members.contains(x)));
        }
    }
}
