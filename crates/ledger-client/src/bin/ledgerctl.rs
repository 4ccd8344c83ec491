//! ledgerctl
fn main() {}
