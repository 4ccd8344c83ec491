//! AFL target `bundle`: see `ledger_fuzz::targets::bundle` and docs/fuzzing.md.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        ledger_fuzz::targets::bundle(data);
    });
}
