//! TEST-ONLY RFC 3161 time-stamping authority: OpenSSL's `openssl ts -reply` with a test CA and a
//! test TSA certificate generated here (throw-away keys in a temp dir, never used elsewhere), and a
//! tiny HTTP/1.1 responder (RFC 3161 §3.4: POST application/timestamp-query) that hands each
//! request to OpenSSL. Needs the `openssl` command (Debian package openssl; .ci/run installs it).
#![allow(dead_code, missing_docs, clippy::unwrap_used)]

#[path = "../support/certs.rs"]
mod certs;

use certs::openssl;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

const CONFIG: &str = r#"
[ ca ]
default_ca = testca
[ testca ]
dir = .
database = index.txt
new_certs_dir = .
serial = ca.serial
default_md = sha256
policy = any
unique_subject = no
[ any ]
commonName = supplied
[ tsa_ext ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = critical,timeStamping
subjectKeyIdentifier = hash
[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
dir = .
serial = tsa.serial
signer_digest = sha256
default_policy = 1.3.6.1.4.1.99999.1
digests = sha256
ess_cert_id_alg = sha256
accuracy = secs:1
ordering = no
tsa_name = no
"#;

/// A test PKI in a temp dir: `ca.pem` (root), `tsa.pem` (valid TSA cert), `tsa-expired.pem`
/// (same key, validity 2020-01-01..02), `other-ca.pem` (an unrelated root).
pub struct TestTsa {
    pub dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl TestTsa {
    pub fn new() -> TestTsa {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().to_path_buf();
        std::fs::write(d.join("tsa.cnf"), CONFIG).unwrap();
        std::fs::write(d.join("index.txt"), "").unwrap();
        std::fs::write(d.join("ca.serial"), "01\n").unwrap();
        std::fs::write(d.join("tsa.serial"), "01\n").unwrap();
        for (name, cn) in [
            ("ca", "TEST ONLY ledger TSA root"),
            ("other-ca", "TEST ONLY unrelated root"),
        ] {
            let (key, pem, subj) = (format!("{name}.key"), format!("{name}.pem"), format!("/CN={cn}"));
            openssl(
                &d,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-keyout",
                    &key,
                    "-out",
                    &pem,
                    "-subj",
                    &subj,
                    "-days",
                    "3650",
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign",
                ],
            );
        }
        openssl(
            &d,
            &[
                "req",
                "-new",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "tsa.key",
                "-out",
                "tsa.csr",
                "-subj",
                "/CN=TEST ONLY ledger TSA",
            ],
        );
        let ca = [
            "ca",
            "-batch",
            "-config",
            "tsa.cnf",
            "-cert",
            "ca.pem",
            "-keyfile",
            "ca.key",
            "-in",
            "tsa.csr",
            "-extensions",
            "tsa_ext",
            "-notext",
        ];
        openssl(&d, &[&ca[..], &["-out", "tsa.pem", "-days", "365"]].concat());
        openssl(
            &d,
            &[
                &ca[..],
                &[
                    "-out",
                    "tsa-expired.pem",
                    "-startdate",
                    "20200101000000Z",
                    "-enddate",
                    "20200102000000Z",
                ],
            ]
            .concat(),
        );
        TestTsa { dir: d, _tmp: tmp }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Answers a DER TimeStampReq with OpenSSL, signing with `signer` ("tsa.pem" or
    /// "tsa-expired.pem").
    pub fn reply(&self, query: &[u8], signer: &str) -> Vec<u8> {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let (q, r) = (format!("q{n}.tsq"), format!("r{n}.tsr"));
        std::fs::write(self.dir.join(&q), query).unwrap();
        openssl(
            &self.dir,
            &[
                "ts",
                "-reply",
                "-config",
                "tsa.cnf",
                "-queryfile",
                &q,
                "-inkey",
                "tsa.key",
                "-signer",
                signer,
                "-out",
                &r,
            ],
        );
        std::fs::read(self.dir.join(&r)).unwrap()
    }

    /// Starts an HTTP responder on loopback; returns its URL and a switch that, when set, makes
    /// it answer 503 (a TSA that is down).
    pub fn serve(self: &Arc<Self>, signer: &'static str) -> (String, Arc<AtomicBool>, Arc<AtomicUsize>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/tsa", l.local_addr().unwrap());
        let down = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let (me, d, s) = (self.clone(), down.clone(), served.clone());
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { continue };
                let _ = c.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                let Some(body) = read_post(&mut c) else { continue };
                if d.load(Ordering::SeqCst) {
                    let _ = c.write_all(
                        b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    );
                    continue;
                }
                let resp = me.reply(&body, signer);
                s.fetch_add(1, Ordering::SeqCst);
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/timestamp-reply\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    resp.len()
                );
                let _ = c.write_all(head.as_bytes());
                let _ = c.write_all(&resp);
            }
        });
        (url, down, served)
    }
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn read_post(c: &mut std::net::TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..p]).to_ascii_lowercase();
            if !head.starts_with("post ") || !head.contains("content-type: application/timestamp-query") {
                return None;
            }
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().ok())??;
            while buf.len() < p + 4 + len {
                let n = c.read(&mut chunk).ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Some(buf[p + 4..p + 4 + len].to_vec());
        }
        let n = c.read(&mut chunk).ok()?;
        if n == 0 || buf.len() > 1 << 20 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
