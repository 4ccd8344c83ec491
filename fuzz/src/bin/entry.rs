//! AFL target `entry`: see `ledger_fuzz::targets::entry` and docs/fuzzing.md.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        ledger_fuzz::targets::entry(data);
    });
}
