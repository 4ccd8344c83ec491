//! The Python interpreter for the tests that run a client written in Python (examples/python/):
//! Debian's `/usr/bin/python3` with python3-cryptography, python3-grpcio, python3-grpc-tools and
//! python3-protobuf, or `LEDGER_PYTHON`. Without them a test says so and passes, unless
//! `LEDGER_REQUIRE_PYTHON` is set (as `.ci/run` does), where it fails.

use std::path::PathBuf;
use std::process::Command;

const MODULES: &str = "import grpc, grpc_tools, google.protobuf, cryptography";

/// The Python interpreter with the modules the example needs, or `None` (test skipped) outside CI.
pub fn python(test: &str) -> Option<PathBuf> {
    let py = std::env::var_os("LEDGER_PYTHON").map_or_else(|| PathBuf::from("/usr/bin/python3"), PathBuf::from);
    let found = Command::new(&py)
        .args(["-c", MODULES])
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some(py);
    }
    let how = "apt-get install -y python3-cryptography python3-grpcio python3-grpc-tools python3-protobuf \
               (or point LEDGER_PYTHON at a python3 that has them)";
    assert!(
        std::env::var_os("LEDGER_REQUIRE_PYTHON").is_none(),
        "LEDGER_REQUIRE_PYTHON is set but {} lacks the modules ({MODULES}): {how}",
        py.display()
    );
    eprintln!("SKIPPED {test}: {} lacks the modules ({MODULES}); {how}", py.display());
    None
}
