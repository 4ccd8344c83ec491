//! An independent C2SP tlog-witness harness, written from the specification texts only:
//! tlog-witness (the HTTP `add-checkpoint` call and its status codes), tlog-checkpoint, signed-note
//! (Ed25519 type 0x01), tlog-cosignature v1 (Ed25519 type 0x04) and RFC 6962 / RFC 9162 Merkle
//! consistency proofs.
//!
//! It deliberately uses none of this workspace's crates (no `ledger_*`, no hyper): only `std`,
//! `ed25519-dalek`, `sha2` and `base64`, with HTTP/1.1 spoken by hand over `TcpStream`, so that a
//! bug shared by the node's client and server cannot hide behind a shared implementation. It holds:
//!
//! - a tiny log ([`Log`]): RFC 6962 tree, consistency proofs, signed checkpoints;
//! - a tiny client ([`post`]) for `POST /add-checkpoint`;
//! - a tiny witness ([`SpecWitness`]) that follows the spec's checks in order and cosigns.
#![allow(dead_code)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest as _, Sha256};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A SHA-256 hash.
pub type H = [u8; 32];

/// SHA-256 of the concatenation of `parts`.
pub fn sha(parts: &[&[u8]]) -> H {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// RFC 6962 leaf hash.
pub fn leaf(data: &[u8]) -> H {
    sha(&[&[0], data])
}

fn node(l: &H, r: &H) -> H {
    sha(&[&[1], l, r])
}

fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// RFC 6962 MTH over leaf hashes.
pub fn mth(d: &[H]) -> H {
    match d.len() {
        0 => sha(&[]),
        1 => d[0],
        n => {
            let k = split(n);
            node(&mth(&d[..k]), &mth(&d[k..]))
        }
    }
}

fn subproof(m: usize, d: &[H], complete: bool) -> Vec<H> {
    let n = d.len();
    if m == n {
        return if complete { vec![] } else { vec![mth(d)] };
    }
    let k = split(n);
    if m <= k {
        let mut p = subproof(m, &d[..k], complete);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = subproof(m - k, &d[k..], false);
        p.push(mth(&d[..k]));
        p
    }
}

/// RFC 6962 section 2.1.2 PROOF(m, D[n]).
pub fn consistency_proof(m: usize, d: &[H]) -> Vec<H> {
    if m == 0 || m >= d.len() {
        return vec![];
    }
    subproof(m, d, true)
}

/// RFC 9162 section 2.1.4.2 consistency proof verification.
pub fn verify_consistency(first: u64, second: u64, first_hash: &H, second_hash: &H, proof: &[H]) -> bool {
    if first > second {
        return false;
    }
    if first == second {
        return proof.is_empty() && first_hash == second_hash;
    }
    if first == 0 {
        return proof.is_empty();
    }
    let mut path: Vec<H> = proof.to_vec();
    if first.is_power_of_two() {
        path.insert(0, *first_hash);
    }
    if path.is_empty() {
        return false;
    }
    let (mut fn_, mut sn) = (first - 1, second - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node(c, &fr);
            sr = node(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    fr == *first_hash && sr == *second_hash && sn == 0
}

/// signed-note key hash: SHA-256(name ‖ 0x0A ‖ type ‖ key)[:4].
pub fn key_hash(name: &str, alg: u8, key: &[u8]) -> [u8; 4] {
    let h = sha(&[name.as_bytes(), b"\n", &[alg], key]);
    [h[0], h[1], h[2], h[3]]
}

/// A verifier key string `name+hex(hash)+base64(type ‖ key)`.
pub fn vkey(name: &str, alg: u8, key: &VerifyingKey) -> String {
    let mut raw = vec![alg];
    raw.extend_from_slice(key.as_bytes());
    format!(
        "{name}+{}+{}",
        hex(&key_hash(name, alg, key.as_bytes())),
        B64.encode(raw)
    )
}

/// Parses a verifier key string of type `alg`; checks the hash.
pub fn parse_vkey(s: &str, alg: u8) -> Option<(String, VerifyingKey)> {
    let mut it = s.trim().splitn(3, '+');
    let (name, h, k) = (it.next()?, it.next()?, it.next()?);
    let raw = B64.decode(k).ok()?;
    if raw.len() != 33 || raw[0] != alg {
        return None;
    }
    let key = VerifyingKey::from_bytes(raw[1..].try_into().ok()?).ok()?;
    (hex(&key_hash(name, alg, key.as_bytes())) == h).then(|| (name.to_string(), key))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A signature line `— name base64(hash ‖ sig)` and its newline.
fn sig_line(name: &str, hash: [u8; 4], sig: &[u8]) -> String {
    let mut raw = hash.to_vec();
    raw.extend_from_slice(sig);
    format!("\u{2014} {name} {}\n", B64.encode(raw))
}

/// A parsed signature line: name, key hash, signature bytes.
pub type SigLine = (String, [u8; 4], Vec<u8>);

/// Parses one signature line (without its newline).
pub fn parse_sig_line(line: &str) -> Option<SigLine> {
    let rest = line.strip_prefix("\u{2014} ")?;
    let (name, b) = rest.rsplit_once(' ')?;
    let raw = B64.decode(b).ok()?;
    if raw.len() < 5 {
        return None;
    }
    Some((name.to_string(), [raw[0], raw[1], raw[2], raw[3]], raw[4..].to_vec()))
}

/// Splits a signed note into its text (with final newline) and signature lines.
pub fn split_note(note: &str) -> Option<(String, Vec<SigLine>)> {
    let i = note.find("\n\n")?;
    let text = &note[..=i];
    let sigs = &note[i + 2..];
    if !sigs.ends_with('\n') {
        return None;
    }
    let mut v = Vec::new();
    for l in sigs[..sigs.len() - 1].split('\n') {
        v.push(parse_sig_line(l)?);
    }
    (!v.is_empty()).then_some((text.to_string(), v))
}

/// The tlog-checkpoint body: origin, size, root.
pub fn checkpoint_text(origin: &str, size: u64, root: &H) -> String {
    format!("{origin}\n{size}\n{}\n", B64.encode(root))
}

/// Parses a checkpoint body.
pub fn parse_checkpoint(text: &str) -> Option<(String, u64, H)> {
    let mut l = text.split('\n');
    let origin = l.next().filter(|o| !o.is_empty())?;
    let size_s = l.next()?;
    if size_s.is_empty() || (size_s.len() > 1 && size_s.starts_with('0')) {
        return None;
    }
    let size = size_s.parse().ok()?;
    let root: H = B64.decode(l.next()?).ok()?.try_into().ok()?;
    Some((origin.to_string(), size, root))
}

/// The tlog-cosignature v1 signed message.
pub fn cosignature_message(ts: u64, text: &str) -> Vec<u8> {
    format!("cosignature/v1\ntime {ts}\n{text}").into_bytes()
}

/// Verifies the cosignature lines of `name`/`key` in `lines` over `text`; returns their timestamps.
pub fn verify_cosignatures(text: &str, lines: &[SigLine], name: &str, key: &VerifyingKey) -> Vec<u64> {
    let hash = key_hash(name, 0x04, key.as_bytes());
    lines
        .iter()
        .filter(|(n, h, s)| n == name && *h == hash && s.len() == 72)
        .filter_map(|(_, _, s)| {
            let ts = u64::from_be_bytes(s[..8].try_into().ok()?);
            let sig = ed25519_dalek::Signature::from_slice(&s[8..]).ok()?;
            key.verify(&cosignature_message(ts, text), &sig).ok().map(|()| ts)
        })
        .collect()
}

/// A tiny log: leaves, RFC 6962 tree, Ed25519-signed checkpoints.
pub struct Log {
    pub origin: String,
    pub key: SigningKey,
    pub leaves: Vec<H>,
}

impl Log {
    pub fn new(origin: &str, seed: u8, n: usize) -> Self {
        Self {
            origin: origin.into(),
            key: SigningKey::from_bytes(&[seed; 32]),
            leaves: (0..n).map(|i| leaf(format!("entry {i}").as_bytes())).collect(),
        }
    }

    pub fn vkey(&self) -> String {
        vkey(&self.origin, 0x01, &self.key.verifying_key())
    }

    pub fn root(&self, size: usize) -> H {
        mth(&self.leaves[..size])
    }

    /// The signed checkpoint note of size `size` (with `root` instead of the real one if given).
    pub fn checkpoint(&self, size: usize, root: Option<H>) -> String {
        let text = checkpoint_text(&self.origin, size as u64, &root.unwrap_or_else(|| self.root(size)));
        let sig = self.key.sign(text.as_bytes());
        let hash = key_hash(&self.origin, 0x01, self.key.verifying_key().as_bytes());
        format!("{text}\n{}", sig_line(&self.origin, hash, &sig.to_bytes()))
    }

    pub fn proof(&self, old: usize, size: usize) -> Vec<H> {
        consistency_proof(old, &self.leaves[..size])
    }
}

/// The add-checkpoint request body.
pub fn body(old: u64, proof: &[H], checkpoint: &str) -> String {
    let mut s = format!("old {old}\n");
    for h in proof {
        s.push_str(&B64.encode(h));
        s.push('\n');
    }
    s.push('\n');
    s.push_str(checkpoint);
    s
}

/// An HTTP reply.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one HTTP/1.1 request (`Connection: close`) to `addr` (`host:port`) and reads the reply.
pub fn request(addr: &str, method: &str, path: &str, body: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // A server may answer (and close) before reading a refused body: keep what arrived.
    let _ = s.write_all(head.as_bytes()).and_then(|()| s.write_all(body));
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8(raw).expect("utf-8 reply");
    let (head, rest) = text.split_once("\r\n\r\n").expect("reply head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut reply = Reply {
        status,
        headers,
        body: String::new(),
    };
    let len: Option<usize> = reply.header("content-length").and_then(|v| v.parse().ok());
    reply.body = match len {
        Some(n) => rest[..n.min(rest.len())].to_string(),
        None => rest.to_string(),
    };
    reply
}

/// `POST /add-checkpoint`.
pub fn post(addr: &str, body: &str) -> Reply {
    request(addr, "POST", "/add-checkpoint", body.as_bytes())
}

/// What the spec witness answered, per request: (old size, checkpoint size, status).
pub type Seen = Vec<(u64, u64, u16)>;

struct State {
    held: Option<(u64, H)>,
    seen: Seen,
}

/// A tlog-witness that follows the spec text, for one log, over HTTP/1.1 with keep-alive.
pub struct SpecWitness {
    pub name: String,
    key: SigningKey,
    log_origin: String,
    log_key: VerifyingKey,
    state: Mutex<State>,
    pub addr: String,
}

impl SpecWitness {
    /// Starts it on a free loopback port, for the log whose verifier key is `log_vkey`.
    pub fn start(name: &str, seed: u8, log_vkey: &str) -> Arc<Self> {
        let (log_origin, log_key) = parse_vkey(log_vkey, 0x01).expect("log vkey");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let w = Arc::new(Self {
            name: name.into(),
            key: SigningKey::from_bytes(&[seed; 32]),
            log_origin,
            log_key,
            state: Mutex::new(State {
                held: None,
                seen: Vec::new(),
            }),
            addr: listener.local_addr().expect("addr").to_string(),
        });
        let me = w.clone();
        std::thread::spawn(move || {
            for s in listener.incoming().flatten() {
                let me = me.clone();
                std::thread::spawn(move || me.connection(s));
            }
        });
        w
    }

    pub fn vkey(&self) -> String {
        vkey(&self.name, 0x04, &self.key.verifying_key())
    }

    pub fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    pub fn seen(&self) -> Seen {
        self.state.lock().expect("lock").seen.clone()
    }

    pub fn held(&self) -> Option<u64> {
        self.state.lock().expect("lock").held.map(|h| h.0)
    }

    fn connection(&self, s: TcpStream) {
        let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
        let Ok(mut w) = s.try_clone() else { return };
        let mut r = BufReader::new(s);
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let mut parts = line.trim_end().split(' ');
            let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let mut len = None;
            let mut close = false;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 {
                    return;
                }
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse::<usize>().ok();
                    }
                    if k.eq_ignore_ascii_case("connection") && v.trim().eq_ignore_ascii_case("close") {
                        close = true;
                    }
                }
            }
            let (status, ctype, out) = match len {
                None => (411, "text/plain", "Content-Length required\n".to_string()),
                Some(n) if n > 1 << 20 => (400, "text/plain", "too large\n".to_string()),
                Some(n) => {
                    let mut b = vec![0; n];
                    if r.read_exact(&mut b).is_err() {
                        return;
                    }
                    if path != "/add-checkpoint" {
                        (404, "text/plain", "not found\n".to_string())
                    } else if method != "POST" {
                        (405, "text/plain", "POST only\n".to_string())
                    } else {
                        self.add_checkpoint(&String::from_utf8_lossy(&b))
                    }
                }
            };
            let reason = match status {
                200 => "OK",
                400 => "Bad Request",
                403 => "Forbidden",
                404 => "Not Found",
                409 => "Conflict",
                422 => "Unprocessable Entity",
                _ => "Other",
            };
            let head = format!(
                "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
                out.len()
            );
            if w.write_all(head.as_bytes()).is_err() || w.write_all(out.as_bytes()).is_err() || close {
                return;
            }
        }
    }

    /// Answers one request and records (old, size, status); 0 for what did not parse.
    fn add_checkpoint(&self, body: &str) -> (u16, &'static str, String) {
        let parsed = std::cell::Cell::new((0, 0));
        let answer = self.check_and_cosign(body, &parsed);
        let (old, size) = parsed.get();
        self.state.lock().expect("lock").seen.push((old, size, answer.0));
        answer
    }

    /// The spec's checks, in its order, under one lock with the state update.
    fn check_and_cosign(&self, body: &str, parsed: &std::cell::Cell<(u64, u64)>) -> (u16, &'static str, String) {
        let bad = |m: &str| (400, "text/plain", format!("{m}\n"));
        let Some((first, mut rest)) = body.split_once('\n') else {
            return bad("no old size line");
        };
        let Some(old) = first
            .strip_prefix("old ")
            .filter(|n| !n.is_empty() && (n.len() == 1 || !n.starts_with('0')))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            return bad("bad old size line");
        };
        let mut proof = Vec::new();
        loop {
            let Some((line, r)) = rest.split_once('\n') else {
                return bad("no empty line");
            };
            rest = r;
            if line.is_empty() {
                break;
            }
            match B64.decode(line).ok().and_then(|b| <H>::try_from(b).ok()) {
                Some(h) if proof.len() < 63 => proof.push(h),
                _ => return bad("bad proof line"),
            }
        }
        let Some((text, sigs)) = split_note(rest) else {
            return bad("bad note");
        };
        let Some((origin, size, root)) = parse_checkpoint(&text) else {
            return bad("bad checkpoint");
        };
        parsed.set((old, size));
        if origin != self.log_origin {
            return (404, "text/plain", "unknown log\n".into());
        }
        let log_hash = key_hash(&self.log_origin, 0x01, self.log_key.as_bytes());
        let signed = sigs.iter().any(|(n, h, s)| {
            *n == self.log_origin
                && *h == log_hash
                && ed25519_dalek::Signature::from_slice(s)
                    .is_ok_and(|sig| self.log_key.verify(text.as_bytes(), &sig).is_ok())
        });
        if !signed {
            return (403, "text/plain", "no valid log signature\n".into());
        }
        let mut st = self.state.lock().expect("lock");
        let verdict = (|| {
            if old > size {
                return Err(bad("old size above the checkpoint size"));
            }
            let (held, held_root) = st.held.unwrap_or((0, sha(&[])));
            if old != held {
                return Err((409, "text/x.tlog.size", format!("{held}\n")));
            }
            if old == 0 {
                return if proof.is_empty() {
                    Ok(())
                } else {
                    Err(bad("proof with old size 0"))
                };
            }
            if old == size {
                return if root == held_root {
                    Ok(())
                } else {
                    Err((409, "text/x.tlog.size", format!("{held}\n")))
                };
            }
            if verify_consistency(old, size, &held_root, &root, &proof) {
                Ok(())
            } else {
                Err((422, "text/plain", "consistency proof does not verify\n".into()))
            }
        })();
        match verdict {
            Err(e) => e,
            Ok(()) => {
                st.held = Some((size, root));
                let ts = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let sig = self.key.sign(&cosignature_message(ts, &text));
                let mut raw = ts.to_be_bytes().to_vec();
                raw.extend_from_slice(&sig.to_bytes());
                let hash = key_hash(&self.name, 0x04, self.key.verifying_key().as_bytes());
                (200, "text/plain", sig_line(&self.name, hash, &raw))
            }
        }
    }
}

#[test]
fn the_harness_merkle_code_agrees_with_itself() {
    // Every consistency proof the harness's tree makes verifies, and a changed hash does not.
    let log = Log::new("t", 1, 20);
    for size in 1..=20 {
        for old in 1..size {
            let p = log.proof(old, size);
            assert!(
                verify_consistency(old as u64, size as u64, &log.root(old), &log.root(size), &p),
                "{old}->{size}"
            );
            if let Some(first) = p.first() {
                let mut q = p.clone();
                q[0] = sha(&[first]);
                assert!(!verify_consistency(
                    old as u64,
                    size as u64,
                    &log.root(old),
                    &log.root(size),
                    &q
                ));
            }
        }
    }
}
