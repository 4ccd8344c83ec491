//! RFC 3797 section 6 "Fully Worked Example", plus properties of the selection.

use ledger_core::rfc3797::{MAX_POOL, Rfc3797Error, canonical_key, digest, select};
use proptest::prelude::*;

/// RFC 3797 section 6: a pool of 25 eligible volunteers and three sources of randomness, given as
/// printed (the five-number lottery is printed in draw order, not sorted).
fn worked_example_sources() -> Vec<Vec<&'static str>> {
    vec![
        vec!["9319"],
        vec!["2", "5", "12", "8", "10"],
        vec!["9", "18", "26", "34", "41", "45"],
    ]
}

const WORKED_EXAMPLE_KEY: &str = "9319./2.5.8.10.12./9.18.26.34.41.45./";

/// RFC 3797 section 6 output table: index, hex value of MD5, div (members remaining), selected.
const WORKED_EXAMPLE_TABLE: [(u16, &str, usize, usize); 16] = [
    (1, "990DD0A5692A029A98B5E01AA28F3459", 25, 17),
    (2, "3691E55CB63FCC37914430B2F70B5EC6", 24, 7),
    (3, "FE814EDF564C190AC1D25753979990FA", 23, 2),
    (4, "1863CCACEB568C31D7DDBDF1D4E91387", 22, 16),
    (5, "F4AB33DF4889F0AF29C513905BE1D758", 21, 25),
    (6, "13EAEB529F61ACFB9A29D0BA3A60DE4A", 20, 23),
    (7, "992DB77C382CA2BDB9727001F3CDCCD9", 19, 8),
    (8, "63AB4258ECA922976811C7F55C383CE7", 18, 24),
    (9, "DFBC5AC97CED01B3A6E348E3CC63F40D", 17, 19),
    (10, "31CB111C4A4EBE9287CEAE16FE51B909", 16, 13),
    (11, "07FA46C122F164C215BBC72793B189A3", 15, 22),
    (12, "AC52F8D75CCBE2E61AFEB3387637D501", 14, 5),
    (13, "53306F73E14FC0B2FBF434218D25948E", 13, 18),
    (14, "B5D1403501A81F9A47318BE7893B347C", 12, 9),
    (15, "85B10B356AA06663EF1B1B407765100A", 11, 1),
    (16, "3269E6CE559ABD57E2BA6AAB495EB9BD", 10, 4),
];

#[test]
fn worked_example_key() {
    let key = canonical_key(&worked_example_sources()).expect("valid sources");
    assert_eq!(key, WORKED_EXAMPLE_KEY);
}

#[test]
fn worked_example_digests() {
    for (index, hex_md5, _, _) in WORKED_EXAMPLE_TABLE {
        let d = digest(WORKED_EXAMPLE_KEY, index - 1);
        assert_eq!(hex::encode_upper(d), hex_md5, "index {index}");
    }
}

#[test]
fn worked_example_selection() {
    let key = canonical_key(&worked_example_sources()).expect("valid sources");
    let got = select(25, &key, 16).expect("16 of 25");
    let want: Vec<usize> = WORKED_EXAMPLE_TABLE.iter().map(|row| row.3).collect();
    assert_eq!(got, want);
    assert_eq!(want, [17, 7, 2, 16, 25, 23, 8, 24, 19, 13, 22, 5, 18, 9, 1, 4]);
    // The "div" column: members remaining before each selection.
    for (n, row) in WORKED_EXAMPLE_TABLE.iter().enumerate() {
        assert_eq!(row.2, 25 - n);
    }
    // Selecting fewer gives a prefix (the ten voting members are the first ten).
    assert_eq!(select(25, &key, 10).expect("10 of 25"), want[..10]);
}

#[test]
fn canonicalisation_of_numbers() {
    let key = canonical_key(&[vec!["007", "0", "000.500", "3.0", "10.25"], vec!["1"]]).expect("valid");
    assert_eq!(key, "0.0.53.7.10.25/1./");
    let key = canonical_key(&[vec!["2.10", "2.9", "2.09"]]).expect("valid");
    assert_eq!(key, "2.092.12.9/");
}

#[test]
fn invalid_inputs() {
    let none: [Vec<&str>; 0] = [];
    assert_eq!(canonical_key(&none), Err(Rfc3797Error::NoSources));
    assert_eq!(
        canonical_key(&[vec!["1"], vec![]]),
        Err(Rfc3797Error::EmptySource { source_index: 1 })
    );
    for bad in ["", "-1", "1e3", "1.", ".5", " 1", "1,000", "abc", "+2", "1.2.3"] {
        assert_eq!(
            canonical_key(&[vec![bad]]),
            Err(Rfc3797Error::NotANumber {
                source_index: 0,
                value: bad.to_owned()
            }),
            "{bad:?}"
        );
    }
    assert_eq!(
        select(3, "k", 4),
        Err(Rfc3797Error::CountExceedsPool { count: 4, pool_size: 3 })
    );
    assert_eq!(
        select(MAX_POOL + 1, "k", 1),
        Err(Rfc3797Error::PoolTooLarge {
            pool_size: MAX_POOL + 1
        })
    );
    assert_eq!(select(0, "k", 0), Ok(vec![]));
}

#[test]
fn whole_pool_is_a_permutation() {
    let mut all = select(25, WORKED_EXAMPLE_KEY, 25).expect("25 of 25");
    all.sort_unstable();
    assert_eq!(all, (1..=25).collect::<Vec<_>>());
}

proptest! {
    #[test]
    fn selection_is_distinct_positions_in_pool(
        pool_size in 1usize..200,
        frac in 0.0f64..=1.0,
        values in proptest::collection::vec(0u32..100_000, 1..8),
    ) {
        let count = ((pool_size as f64) * frac) as usize;
        let source: Vec<String> = values.iter().map(u32::to_string).collect();
        let key = canonical_key(&[source]).expect("numbers");
        let picked = select(pool_size, &key, count).expect("count <= pool");
        prop_assert_eq!(picked.len(), count);
        let mut sorted = picked.clone();
        sorted.sort_unstable();
        sorted.dedup();
        prop_assert_eq!(sorted.len(), count);
        prop_assert!(picked.iter().all(|&p| (1..=pool_size).contains(&p)));
    }
}
