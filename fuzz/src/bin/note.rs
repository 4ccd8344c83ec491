//! AFL target `note`: see `ledger_fuzz::targets::note` and docs/fuzzing.md.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        ledger_fuzz::targets::note(data);
    });
}
