//! TEST-ONLY certificates made with the `openssl` command (Debian package openssl; `.ci/run`
//! installs it): throw-away P-256 CAs and node certificates for 127.0.0.1, as docs/cluster.md
//! §Mutual TLS makes them. Shared by `tests/cluster_cli.rs`, `tests/support_tsa` and ledger-node's
//! in-process TLS tests (`ledger-node/src/cluster/tls_tests.rs`, by `#[path]`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

/// Runs `openssl ARGS` in `dir`; panics with openssl's stderr when it fails.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA `name` (`name.pem`, `name.key`) in `dir`, valid two days.
pub fn make_ca(dir: &Path, name: &str) {
    let (key, pem, subj) = (format!("{name}.key"), format!("{name}.pem"), format!("/CN={name}"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-days",
            "2",
            "-subj",
            &subj,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// A node certificate `name` (`name.pem`, `name.key`) for 127.0.0.1 and localhost, usable as
/// server and client, signed by the CA `ca` of the same directory, with serial `serial`.
pub fn make_leaf(dir: &Path, ca: &str, name: &str, serial: u32) {
    let (key, csr, pem, ext) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
    );
    let subj = format!("/CN={name}");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &subj,
        ],
    );
    std::fs::write(
        dir.join(&ext),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    let (ca_pem, ca_key, serial) = (format!("{ca}.pem"), format!("{ca}.key"), serial.to_string());
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-set_serial",
            &serial,
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
}
