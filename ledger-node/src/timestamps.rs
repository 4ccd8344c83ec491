//! Trusted timestamps (issue 16, docs/bundle.md "Trusted timestamps"): for each TSA configured
//! with `serve --tsa URL`, a background task asks for an RFC 3161 token over every new checkpoint
//! (at most one per `--tsa-interval`), stores it in `DATA/timestamps/`, and the `Timestamps` gRPC
//! service serves the stored tokens. The message imprint is SHA-256 of the checkpoint note's body
//! (the signed text before the blank line, ending in a newline). A TSA that is slow or down never
//! stalls appends: each TSA has its own task, every exchange is bounded by a timeout, and failures
//! are logged and retried with a growing back-off.

use anyhow::{Context, Result, bail};
use ledger_proto::pb;
use ledger_store::Store;
use sha2::Digest as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::watch;

/// Largest answer read from a TSA (headers and body).
const MAX_ANSWER: usize = ledger_tsa::MAX_TOKEN_BYTES + 8192;
/// Bound on one whole exchange with a TSA (connect, send, receive).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Back-off after a failure: doubles from the first to the last value.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// Tokens in one GetTimestamps answer.
const MAX_ANSWERED: usize = 256;

/// One configured TSA.
#[derive(Debug, Clone)]
pub struct Tsa {
    /// `http://host:port/path`.
    pub url: String,
    host_port: String,
    host: String,
    path: String,
    /// File-name tag: the first 8 bytes of SHA-256(url), hex.
    pub id: String,
}

impl std::str::FromStr for Tsa {
    type Err = anyhow::Error;

    fn from_str(url: &str) -> Result<Self> {
        let rest = url.strip_prefix("http://").with_context(|| {
            format!("--tsa {url:?}: only http:// URLs are supported (RFC 3161 tokens are signed; no TLS needed)")
        })?;
        let (host_port, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if host_port.is_empty() {
            bail!("--tsa {url:?}: no host");
        }
        let host = host_port.rsplit_once(':').map_or(host_port, |(h, _)| h);
        let host_port = if host_port.contains(':') {
            host_port.to_string()
        } else {
            format!("{host_port}:80")
        };
        Ok(Tsa {
            url: url.to_string(),
            host: host.to_string(),
            host_port,
            path: path.to_string(),
            id: hex::encode(&sha2::Sha256::digest(url.as_bytes())[..8]),
        })
    }
}

/// The bytes a TSA timestamps for a checkpoint note: SHA-256 of its body.
pub fn imprint(note: &str) -> Result<[u8; 32]> {
    let n = ledger_core::note::Note::parse(note).context("the checkpoint note does not parse")?;
    Ok(sha2::Sha256::digest(n.text.as_bytes()).into())
}

/// `DATA/timestamps`.
pub fn dir(data: &Path) -> PathBuf {
    data.join("timestamps")
}

fn file_name(size: u64, id: &str) -> String {
    format!("{size:020}.{id}.tst")
}

/// Whether `name` is a token file as the node names them (`<size:020>.<id:16>.tst`).
pub fn is_token_name(name: &str) -> bool {
    parse_name(name).is_some_and(|(_, id)| id.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn parse_name(name: &str) -> Option<(u64, &str)> {
    let stem = name.strip_suffix(".tst")?;
    let (size, id) = stem.split_once('.')?;
    if size.len() != 20 || id.len() != 16 {
        return None;
    }
    Some((size.parse().ok()?, id))
}

/// Writes a token atomically (temp file, fsync, rename, fsync of the directory).
fn store_token(dir: &Path, size: u64, id: &str, token: &[u8]) -> Result<()> {
    use std::io::Write as _;
    std::fs::create_dir_all(dir)?;
    let name = file_name(size, id);
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(token)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(&name))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Stored tokens as (size, tsa id, path), ascending.
fn list(dir: &Path) -> Result<Vec<(u64, String, PathBuf)>> {
    let mut v = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(v),
        Err(e) => return Err(e.into()),
    };
    for e in rd {
        let e = e?;
        let name = e.file_name();
        if let Some((size, id)) = name.to_str().and_then(parse_name) {
            v.push((size, id.to_string(), e.path()));
        }
    }
    v.sort();
    Ok(v)
}

/// A minimal HTTP/1.1 POST (RFC 3161 §3.4): `application/timestamp-query` in,
/// `application/timestamp-reply` out.
async fn post(tsa: &Tsa, body: &[u8]) -> Result<Vec<u8>> {
    let mut s = tokio::net::TcpStream::connect(&tsa.host_port)
        .await
        .with_context(|| format!("connecting to {}", tsa.host_port))?;
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/timestamp-query\r\nAccept: application/timestamp-reply\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        tsa.path,
        tsa.host,
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    s.flush().await?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_ANSWER {
            bail!("the TSA's answer exceeds {MAX_ANSWER} bytes");
        }
    }
    let p = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("the TSA's answer has no HTTP header end")?;
    let head = String::from_utf8_lossy(&buf[..p]).to_ascii_lowercase();
    let status = head.split(' ').nth(1).unwrap_or("");
    if status != "200" {
        bail!("the TSA answered HTTP {}", head.lines().next().unwrap_or("").trim());
    }
    let body = &buf[p + 4..];
    if head
        .lines()
        .any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"))
    {
        return dechunk(body);
    }
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse::<usize>())
        .transpose()
        .context("bad content-length")?;
    match len {
        Some(l) if l <= body.len() => Ok(body[..l].to_vec()),
        Some(_) => bail!("the TSA's answer is shorter than its content-length"),
        None => Ok(body.to_vec()),
    }
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let p = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("truncated chunk size")?;
        let size_text = String::from_utf8_lossy(&b[..p]);
        let size =
            usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16).context("bad chunk size")?;
        b = &b[p + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            bail!("truncated chunk");
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// Asks `tsa` for a token over `imprint`; checks that the token is over it before returning.
pub async fn fetch(tsa: &Tsa, imprint: &[u8; 32]) -> Result<Vec<u8>> {
    let nonce: [u8; 8] = rand::random();
    let req = ledger_tsa::request(imprint, &nonce)?;
    let resp = tokio::time::timeout(EXCHANGE_TIMEOUT, post(tsa, &req))
        .await
        .with_context(|| format!("no answer within {EXCHANGE_TIMEOUT:?}"))??;
    let token = ledger_tsa::token_from_response(&resp)?;
    let info = ledger_tsa::inspect(&token)?;
    if info.imprint != imprint {
        bail!("the TSA's token is over other data");
    }
    let sent: Vec<u8> = nonce.iter().skip_while(|b| **b == 0).copied().collect();
    if info.nonce.as_deref() != Some(sent.as_slice()) {
        bail!("the TSA's token does not echo the request's nonce (a replayed answer)");
    }
    Ok(token)
}

/// Runs one TSA's task until the checkpoint channel closes.
pub async fn run(tsa: Tsa, data: PathBuf, interval: Duration, mut cp: watch::Receiver<(u64, String)>) {
    let dir = dir(&data);
    let mut done = list(&dir)
        .map(|v| {
            v.iter()
                .filter(|(_, id, _)| *id == tsa.id)
                .map(|(s, _, _)| *s)
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0);
    let mut last: Option<tokio::time::Instant> = None;
    let mut retry = RETRY_FIRST;
    let (mut ok, mut failed) = (0u64, 0u64);
    loop {
        let (size, note) = cp.borrow_and_update().clone();
        if size <= done {
            if cp.changed().await.is_err() {
                return;
            }
            continue;
        }
        if let Some(t) = last {
            tokio::time::sleep_until(t + interval).await;
        }
        let (size, note) = if last.is_some() {
            cp.borrow().clone()
        } else {
            (size, note)
        };
        last = Some(tokio::time::Instant::now());
        let result = async {
            let imp = imprint(&note)?;
            let token = fetch(&tsa, &imp).await?;
            let d = dir.clone();
            let id = tsa.id.clone();
            tokio::task::spawn_blocking(move || store_token(&d, size, &id, &token)).await??;
            anyhow::Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                ok += 1;
                done = size;
                retry = RETRY_FIRST;
                tracing::info!(tsa = %tsa.url, size, tokens = ok, "trusted timestamp stored");
            }
            Err(e) => {
                failed += 1;
                tracing::warn!(tsa = %tsa.url, size, failures = failed, error = %format!("{e:#}"), retry_s = retry.as_secs(), "trusted timestamp not obtained; appends continue");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    }
}

/// The `Timestamps` gRPC service.
pub struct TimestampsService {
    /// The data directory.
    pub data: PathBuf,
    /// The store (for the checkpoint notes).
    pub store: Arc<Store>,
}

#[tonic::async_trait]
impl pb::timestamps_server::Timestamps for TimestampsService {
    async fn get_timestamps(
        &self,
        req: tonic::Request<pb::GetTimestampsRequest>,
    ) -> Result<tonic::Response<pb::GetTimestampsResponse>, tonic::Status> {
        let r = req.into_inner();
        let max = if r.max_size == 0 { u64::MAX } else { r.max_size };
        let dir = dir(&self.data);
        let store = self.store.clone();
        let min = r.min_size;
        let out = tokio::task::spawn_blocking(move || -> Result<Vec<pb::TimestampToken>> {
            let mut out = Vec::new();
            for (size, _, path) in list(&dir)? {
                if size < min || size > max {
                    continue;
                }
                if out.len() == MAX_ANSWERED {
                    break;
                }
                let token = std::fs::read(&path)?;
                let Some(checkpoint) = store.checkpoint(size)? else {
                    continue;
                };
                let tsa = ledger_tsa::inspect(&token).map(|i| i.tsa_name).unwrap_or_default();
                out.push(pb::TimestampToken {
                    size,
                    checkpoint,
                    token,
                    tsa,
                });
            }
            Ok(out)
        })
        .await
        .map_err(|e| tonic::Status::internal(e.to_string()))?
        .map_err(|e| tonic::Status::internal(format!("reading stored timestamps: {e:#}")))?;
        Ok(tonic::Response::new(pb::GetTimestampsResponse { timestamps: out }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_names() {
        let t: Tsa = "http://127.0.0.1:3180/tsr".parse().expect("url");
        assert_eq!(
            (t.host_port.as_str(), t.path.as_str(), t.host.as_str()),
            ("127.0.0.1:3180", "/tsr", "127.0.0.1")
        );
        let t: Tsa = "http://tsa.example".parse().expect("url");
        assert_eq!((t.host_port.as_str(), t.path.as_str()), ("tsa.example:80", "/"));
        assert!("https://tsa.example/".parse::<Tsa>().is_err());
        let n = file_name(42, &t.id);
        assert_eq!(parse_name(&n), Some((42, t.id.as_str())));
        assert_eq!(parse_name("x.tst"), None);
        assert_eq!(dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").expect("chunks"), b"abcde");
    }
}
