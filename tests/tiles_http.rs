//! The node's read-only C2SP tlog-tiles HTTP server (docs/api.md), read by a client written
//! here from the spec texts alone (c2sp.org/tlog-tiles, tlog-checkpoint, signed-note, RFC 9162
//! §2.1): its own HTTP/1.1 GET, path encoding, note parsing and Ed25519 check, Merkle hashing,
//! inclusion proofs and their verification. No ledger crate is used to read or verify.
//!
//! (The `tlog_tiles` crate would have been the independent client, but it pulls sha2 0.10,
//! digest 0.10, base64 0.21, thiserror 1 and the url/idna stack beside this workspace's
//! versions, so it is not a dev-dependency.)

mod support;

use base64::Engine;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use ledger_proto::pb;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Starts the node with its tile server on a free port, signing a checkpoint every
/// `interval_ms` (and when an append asks for one); returns it and the tile address.
fn start_with_tiles(data: &Path, interval_ms: u64) -> (Node, String) {
    start_with_tiles_env(data, interval_ms, &[])
}

/// [`start_with_tiles`] with extra environment variables.
fn start_with_tiles_env(data: &Path, interval_ms: u64, env: &[(&str, &str)]) -> (Node, String) {
    let mut child = Command::new(bin("ledger-node"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "off",
            "--tiles-listen",
            "127.0.0.1:0",
            "--checkpoint-interval-ms",
            &interval_ms.to_string(),
        ])
        .arg("--data")
        .arg(data)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ledger-node");
    let stdout = child.stdout.take();
    // The node is owned (and killed on drop) from here on.
    let mut node = Node {
        child: Some(child),
        addr: String::new(),
        data: data.to_path_buf(),
    };
    let mut lines = BufReader::new(stdout.expect("stdout")).lines();
    let mut tiles = None;
    while let Some(Ok(line)) = lines.next() {
        if let Some(a) = line.strip_prefix("tiles on ") {
            tiles = Some(a.to_string());
        }
        if let Some(a) = line.strip_prefix("listening on ") {
            node.addr = format!("http://{a}");
            std::thread::spawn(move || for _ in lines {});
            let tiles = tiles.expect("the tile address is printed before `listening on`");
            return (node, tiles);
        }
    }
    panic!("the node did not start");
}

/// One HTTP/1.1 answer: status, headers (lower-case names), body.
struct Answer {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
}

/// `METHOD path` over a fresh connection (`Connection: close`), read to the end.
fn http(addr: &str, method: &str, path: &str) -> Answer {
    let mut s = TcpStream::connect(addr).expect("connect to the tile server");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the answer");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a head");
    let head = String::from_utf8(raw[..split].to_vec()).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = raw[split + 4..].to_vec();
    if method == "GET" {
        assert_eq!(
            headers.get("content-length").map(String::as_str),
            Some(body.len().to_string().as_str()),
            "{path}: the body is delimited by Content-Length"
        );
    }
    Answer { status, headers, body }
}

fn get(addr: &str, path: &str) -> Answer {
    http(addr, "GET", path)
}

/// tlog-tiles `<N>`: 3-digit elements, all but the last prefixed with `x`.
fn encode_index(mut n: u64) -> String {
    let mut parts = vec![format!("{:03}", n % 1000)];
    n /= 1000;
    while n > 0 {
        parts.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    parts.reverse();
    parts.join("/")
}

/// `tile/<L>/<N>[.p/<W>]` (or `tile/entries/…` when `level` is `None`).
fn tile_path(level: Option<u8>, n: u64, w: u16) -> String {
    let l = level.map_or("entries".to_string(), |l| l.to_string());
    let p = if w == 256 { String::new() } else { format!(".p/{w}") };
    format!("/tile/{l}/{}{p}", encode_index(n))
}

type H = [u8; 32];

fn sha(parts: &[&[u8]]) -> H {
    let mut d = Sha256::new();
    for p in parts {
        d.update(p);
    }
    d.finalize().into()
}

/// RFC 9162 §2.1.1: MTH of leaf hashes.
fn mth(leaves: &[H]) -> H {
    match leaves.len() {
        0 => sha(&[]),
        1 => leaves[0],
        n => {
            let k = split(n);
            sha(&[&[1], &mth(&leaves[..k]), &mth(&leaves[k..])])
        }
    }
}

/// Largest power of two below `n` (n > 1).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// RFC 9162 §2.1.3.1: PATH(m, D[n]) over leaf hashes.
fn path(m: usize, leaves: &[H]) -> Vec<H> {
    let n = leaves.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = split(n);
    if m < k {
        let mut p = path(m, &leaves[..k]);
        p.push(mth(&leaves[k..]));
        p
    } else {
        let mut p = path(m - k, &leaves[k..]);
        p.push(mth(&leaves[..k]));
        p
    }
}

/// RFC 9162 §2.1.3.2: verifies an inclusion proof.
fn verify_inclusion(index: u64, size: u64, leaf: &H, proof: &[H], root: &H) -> bool {
    if index >= size {
        return false;
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = sha(&[&[1], p, &r]);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = sha(&[&[1], &r, p]);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    s_n == 0 && r == *root
}

/// A checkpoint read and verified as c2sp.org/tlog-checkpoint + signed-note (Ed25519).
struct Checkpoint {
    origin: String,
    size: u64,
    root: H,
}

fn open_checkpoint(note: &str, origin: &str, key: &VerifyingKey) -> Checkpoint {
    let (body, sigs) = note.split_once("\n\n").expect("a note: body, empty line, signatures");
    let body = format!("{body}\n");
    let lines: Vec<&str> = body.lines().collect();
    assert!(lines.len() >= 3, "checkpoint body: {body:?}");
    let mut kh_in = origin.as_bytes().to_vec();
    kh_in.extend_from_slice(b"\n\x01");
    kh_in.extend_from_slice(key.as_bytes());
    let key_hash = &sha(&[&kh_in])[..4];
    let mut verified = false;
    for line in sigs.lines() {
        let rest = line
            .strip_prefix("\u{2014} ")
            .expect("a signature line starts with an em dash");
        let (name, b64) = rest.split_once(' ').expect("name and signature");
        let raw = B64.decode(b64).expect("base64 signature");
        if name == origin && raw.len() == 68 && &raw[..4] == key_hash {
            let sig = Signature::from_slice(&raw[4..]).expect("64 bytes");
            key.verify(body.as_bytes(), &sig).expect("the log's signature verifies");
            verified = true;
        }
    }
    assert!(verified, "no signature by the log key in {note:?}");
    Checkpoint {
        origin: lines[0].to_string(),
        size: lines[1].parse().expect("decimal size"),
        root: B64.decode(lines[2]).expect("base64 root").try_into().expect("32 bytes"),
    }
}

/// Entries `(uint16 BE length ‖ bytes)*` of a bundle.
fn bundle_entries(b: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < b.len() {
        let len = usize::from(u16::from_be_bytes([b[at], b[at + 1]]));
        out.push(b[at + 2..at + 2 + len].to_vec());
        at += 2 + len;
    }
    assert_eq!(at, b.len(), "a bundle ends with its last entry");
    out
}

/// The client: checkpoint, every level-0 tile and bundle, the level-1 tile; the root recomputed
/// and every entry's inclusion verified. Returns the checkpoint and the entries.
fn mirror(addr: &str, origin: &str, key: &VerifyingKey) -> (Checkpoint, Vec<Vec<u8>>) {
    let c = get(addr, "/checkpoint");
    assert_eq!(c.status, 200);
    assert_eq!(c.header("content-type"), "text/plain; charset=utf-8");
    let cc = c.header("cache-control");
    assert!(cc.contains("max-age=") && !cc.contains("immutable"), "{cc}");
    let cp = open_checkpoint(&String::from_utf8(c.body).expect("UTF-8"), origin, key);
    assert_eq!(cp.origin, origin);
    let size = cp.size;
    let mut leaf_hashes: Vec<H> = Vec::new();
    let mut entries = Vec::new();
    for n in 0..size.div_ceil(256) {
        let w = (size - n * 256).min(256) as u16;
        let t = get(addr, &tile_path(Some(0), n, w));
        assert_eq!(t.status, 200, "{}", tile_path(Some(0), n, w));
        assert_eq!(t.header("content-type"), "application/octet-stream");
        let b = get(addr, &tile_path(None, n, w));
        assert_eq!(b.status, 200);
        for a in [&t, &b] {
            let cc = a.header("cache-control");
            if w == 256 {
                assert!(cc.contains("immutable") && cc.contains("max-age=31536000"), "{cc}");
            } else {
                assert!(!cc.contains("immutable") && cc.contains("max-age="), "{cc}");
            }
        }
        assert_eq!(t.body.len(), usize::from(w) * 32, "a tile is W hashes");
        let hashes: Vec<H> = t.body.chunks(32).map(|h| h.try_into().expect("32")).collect();
        let es = bundle_entries(&b.body);
        assert_eq!(es.len(), usize::from(w), "a bundle holds W entries");
        for (e, h) in es.iter().zip(&hashes) {
            assert_eq!(&sha(&[&[0], e]), h, "a bundle's entry hashes to the tile's leaf hash");
        }
        leaf_hashes.extend(hashes);
        entries.extend(es);
    }
    // Level 1: each hash is the MTH of a full level-0 tile.
    let full = (size / 256) as u16;
    if full > 0 {
        let t1 = get(addr, &tile_path(Some(1), 0, full));
        assert_eq!(t1.status, 200);
        assert_eq!(t1.body.len(), usize::from(full) * 32);
        for (i, h) in t1.body.chunks(32).enumerate() {
            assert_eq!(h, mth(&leaf_hashes[i * 256..(i + 1) * 256]), "level-1 hash {i}");
        }
    }
    assert_eq!(mth(&leaf_hashes), cp.root, "the root recomputed from the tiles");
    for (i, lh) in leaf_hashes.iter().enumerate() {
        let p = path(i, &leaf_hashes);
        assert!(
            verify_inclusion(i as u64, size, lh, &p, &cp.root),
            "inclusion of entry {i}"
        );
    }
    (cp, entries)
}

async fn batch(
    c: &mut pb::ledger_client::LedgerClient<tonic::transport::Channel>,
    envs: &[ledger_core::dsse::Envelope],
    wait: bool,
) {
    let r = c
        .append_batch(pb::AppendBatchRequest {
            items: envs.iter().map(|e| req(e, "", false)).collect(),
            wait_for_checkpoint: wait,
        })
        .await
        .expect("batch")
        .into_inner();
    for it in r.results {
        assert_eq!(it.error_code, 0, "{}", it.error_message);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_client_mirrors_and_verifies_the_log_from_tiles() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    let origin = "ledger.test/tiles";
    init(&data, origin, &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let pk_text = std::fs::read_to_string(data.join("keys/node.key.pub")).expect("node public key");
    let pk_bytes: [u8; 32] = B64
        .decode(pk_text.trim())
        .expect("base64")
        .try_into()
        .expect("32 bytes");
    let log_key = VerifyingKey::from_bytes(&pk_bytes).expect("Ed25519 key");
    let (mut node, tiles) = start_with_tiles(&data, 200);
    let mut c = node.client().await;
    let reg = new_key();
    append(&mut c, &enroll(&reg, "registrar", &["registrar"], &[&admin]), "enroll")
        .await
        .expect("enroll");
    // 2 + 600 entries: two full level-0 tiles, a partial one of 90, a level-1 tile of width 2.
    let envs: Vec<_> = (0..600).map(|i| record("note", note_payload(i), &[&reg])).collect();
    for (k, chunk) in envs.chunks(150).enumerate() {
        batch(&mut c, chunk, k == 3).await;
    }
    let t = tiles.clone();
    let key = log_key;
    let (cp, entries) = tokio::task::spawn_blocking(move || mirror(&t, origin, &key))
        .await
        .expect("client");
    assert_eq!(cp.size, 602);
    // The bundles hold exactly the leaves the gRPC API serves.
    for i in [0u64, 1, 255, 256, 601] {
        let e = c
            .get_entry(pb::GetEntryRequest { index: i })
            .await
            .expect("GetEntry")
            .into_inner();
        assert_eq!(e.leaf, entries[i as usize], "entry {i}");
    }

    let t = tiles.clone();
    tokio::task::spawn_blocking(move || {
        // Nothing past the checkpoint: a wider partial, the next full tile, a level never reached.
        for p in [
            "/tile/0/002.p/91",
            "/tile/0/002",
            "/tile/entries/002",
            "/tile/entries/002.p/91",
            "/tile/0/003.p/1",
            "/tile/1/000",
            "/tile/1/000.p/3",
            "/tile/2/000.p/1",
            "/tile/0/x001/000",
            "/tile/63/x018/x446/x744/x073/x709/x551/615",
            "/tile/0/x999/x999/x999/x999/x999/x999/x999/999",
            "/robots.txt",
        ] {
            let a = get(&t, p);
            assert_eq!(a.status, 404, "{p}");
            assert_eq!(a.header("cache-control"), "no-store", "{p}: an error is never cached");
        }
        // Malformed paths.
        for p in [
            "/tile/0/2",
            "/tile/0/0002",
            "/tile/00/000",
            "/tile/64/000",
            "/tile/0/000.p/0",
            "/tile/0/000.p/256",
            "/tile/0/000.p/01",
            "/tile/0/x000/001",
            "/tile/0/001/002",
            "/tile/entries/000.p",
            "/tile/",
            "/tile/0/%30%30%30",
        ] {
            assert_eq!(get(&t, p).status, 400, "{p}");
        }
        // A narrower partial than the checkpoint's is a prefix, served; so is HEAD.
        let narrow = get(&t, "/tile/0/002.p/5");
        assert_eq!(narrow.status, 200);
        assert_eq!(narrow.body.len(), 5 * 32);
        let head = http(&t, "HEAD", "/tile/0/000");
        assert_eq!((head.status, head.body.len()), (200, 0));
        assert_eq!(head.header("content-length"), "8192");
        let post = http(&t, "POST", "/checkpoint");
        assert_eq!(post.status, 405);
        assert_eq!(post.header("allow"), "GET, HEAD");
    })
    .await
    .expect("client");

    // An entry over 65535 bytes: its hash is in the tiles, its bundle cannot carry it (501).
    let big = record(
        "note",
        serde_json::json!({"version": 1, "text": "x".repeat(70_000), "subject": "cadre-big"}),
        &[&reg],
    );
    batch(&mut c, std::slice::from_ref(&big), true).await;
    let t = tiles.clone();
    tokio::task::spawn_blocking(move || {
        let c = open_checkpoint(
            &String::from_utf8(get(&t, "/checkpoint").body).expect("UTF-8"),
            origin,
            &key,
        );
        assert_eq!(c.size, 603);
        assert_eq!(get(&t, "/tile/0/002.p/91").status, 200);
        assert_eq!(get(&t, "/tile/entries/002.p/90").status, 200);
        let b = get(&t, "/tile/entries/002.p/91");
        assert_eq!(b.status, 501);
        let msg = String::from_utf8_lossy(&b.body);
        assert!(msg.contains("entry 602") && msg.contains("65535"), "{msg}");
    })
    .await
    .expect("client");
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_connections_are_capped_and_the_node_keeps_serving() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, "ledger.test/tiles-limits", &[], 1);
    let (mut node, tiles) = start_with_tiles(&data, 200);
    let mut c = node.client().await;
    let t = tiles.clone();
    // An attacker opens connections and sends half a request head on each, never finishing.
    let held = tokio::task::spawn_blocking(move || {
        let mut held = Vec::new();
        for _ in 0..256 {
            let mut s = TcpStream::connect(&t).expect("connect");
            s.write_all(b"GET /checkpoint HTTP/1.1\r\nHost: x\r\n")
                .expect("half a head");
            held.push(s);
        }
        // Every connection is accepted before the next check.
        std::thread::sleep(Duration::from_millis(300));
        // One more: answered 503 at once and closed, not queued.
        let over = get(&t, "/checkpoint");
        assert_eq!(over.status, 503);
        assert_eq!(over.header("retry-after"), "1");
        held
    })
    .await
    .expect("attacker");
    // The gRPC API is untouched.
    let cp = c
        .get_checkpoint(pb::GetCheckpointRequest { size: None })
        .await
        .expect("GetCheckpoint while the tile server is full")
        .into_inner();
    assert_eq!(cp.size, 1);
    drop(held);
    // The held connections are released as soon as they close.
    let t = tiles.clone();
    let status = tokio::task::spawn_blocking(move || {
        let mut last = 0;
        for _ in 0..50 {
            last = get(&t, "/checkpoint").status;
            if last == 200 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        last
    })
    .await
    .expect("reader");
    assert_eq!(status, 200);
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_what_the_latest_checkpoint_covers_is_served() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, "ledger.test/tiles-cover", &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    // No periodic checkpoint during the test: only appends that ask for one get one.
    let (mut node, tiles) = start_with_tiles(&data, 600_000);
    let mut c = node.client().await;
    let reg = new_key();
    append(&mut c, &enroll(&reg, "registrar", &["registrar"], &[&admin]), "enroll")
        .await
        .expect("enroll");
    let envs: Vec<_> = (0..300).map(|i| record("note", note_payload(i), &[&reg])).collect();
    batch(&mut c, &envs, false).await;
    // The store holds 302 entries; the latest signed checkpoint still covers 1.
    let stored = c
        .get_entry(pb::GetEntryRequest { index: 301 })
        .await
        .expect("entry 301 is stored");
    assert!(!stored.into_inner().leaf.is_empty());
    let t = tiles.clone();
    tokio::task::spawn_blocking(move || {
        let cp = String::from_utf8(get(&t, "/checkpoint").body).expect("UTF-8");
        assert_eq!(cp.lines().nth(1), Some("1"), "{cp}");
        assert_eq!(get(&t, "/tile/0/000.p/1").status, 200);
        assert_eq!(get(&t, "/tile/entries/000.p/1").status, 200);
        for p in [
            "/tile/0/000.p/2",
            "/tile/0/000",
            "/tile/entries/000",
            "/tile/0/001.p/46",
            "/tile/1/000.p/1",
        ] {
            assert_eq!(get(&t, p).status, 404, "{p}: stored, but past the signed checkpoint");
        }
    })
    .await
    .expect("client");
    // One append that asks for a checkpoint: now the same tiles are served.
    batch(&mut c, &[record("note", note_payload(999), &[&reg])], true).await;
    let t = tiles.clone();
    tokio::task::spawn_blocking(move || {
        let cp = String::from_utf8(get(&t, "/checkpoint").body).expect("UTF-8");
        assert_eq!(cp.lines().nth(1), Some("303"), "{cp}");
        for p in [
            "/tile/0/000",
            "/tile/entries/000",
            "/tile/0/001.p/47",
            "/tile/1/000.p/1",
        ] {
            assert_eq!(get(&t, p).status, 200, "{p}");
        }
        assert_eq!(get(&t, "/tile/0/001.p/48").status, 404);
    })
    .await
    .expect("client");
    node.stop();
}

/// Reads until the server ends the connection; panics if it is still open after 10 s.
fn wait_closed(s: &mut TcpStream) -> usize {
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut buf = vec![0u8; 1 << 16];
    let mut got = 0;
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("the server kept the connection open: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_senders_and_slow_readers_are_cut_off() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    init(&data, "ledger.test/tiles-slow", &[], 1);
    // Short bounds so that the test does not wait the default 10 s and 60 s.
    let (mut node, tiles) = start_with_tiles_env(
        &data,
        200,
        &[
            ("LEDGER_TILES_MAX_CONNECTIONS", "4"),
            ("LEDGER_TILES_HEADER_TIMEOUT_MS", "1000"),
            ("LEDGER_TILES_CONNECTION_LIFETIME_MS", "1000"),
        ],
    );
    let mut c = node.client().await;
    let t = tiles.clone();
    tokio::task::spawn_blocking(move || {
        // Slowloris: every slot taken by half a request head; the next client is refused...
        let mut held: Vec<TcpStream> = (0..4)
            .map(|_| {
                let mut s = TcpStream::connect(&t).expect("connect");
                s.write_all(b"GET /checkpoint HTTP/1.1\r\nHost: x\r\n")
                    .expect("half a head");
                s
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(get(&t, "/checkpoint").status, 503);
        // ...until the header timeout closes them, without the attacker's help.
        for s in &mut held {
            wait_closed(s);
        }
        assert_eq!(get(&t, "/checkpoint").status, 200);

        // A reader that asks for far more than the socket buffers hold and never reads: cut
        // when the connection's lifetime ends.
        let mut s = TcpStream::connect(&t).expect("connect");
        let mut w = s.try_clone().expect("clone");
        let writer = std::thread::spawn(move || {
            w.set_write_timeout(Some(Duration::from_secs(5))).expect("timeout");
            let one = b"GET /tile/entries/000.p/1 HTTP/1.1\r\nHost: x\r\n\r\n";
            for _ in 0..40_000 {
                if w.write_all(one).is_err() {
                    break;
                }
            }
        });
        // Meanwhile others are served.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(get(&t, "/tile/0/000.p/1").status, 200);
        // Past the connection's lifetime, nothing read yet: what is left is what the socket
        // buffers held when the server closed it.
        std::thread::sleep(Duration::from_millis(1200));
        let got = wait_closed(&mut s);
        let _ = writer.join();
        let bundle = get(&t, "/tile/entries/000.p/1").body.len();
        assert!(
            got < 40_000 * bundle,
            "a client that did not read got all {got} bytes: its connection was not cut"
        );
    })
    .await
    .expect("client");
    let cp = c
        .get_checkpoint(pb::GetCheckpointRequest { size: None })
        .await
        .expect("the node still answers")
        .into_inner();
    assert_eq!(cp.size, 1);
    node.stop();
}
