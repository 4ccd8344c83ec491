//! AFL target `export`: see `ledger_fuzz::targets::export` and docs/fuzzing.md.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        ledger_fuzz::targets::export(data);
    });
}
