//! The log served read-only over HTTP as C2SP tlog-tiles (c2sp.org/tlog-tiles, `docs/api.md`):
//! `GET /checkpoint`, `/tile/<L>/<N>[.p/<W>]` and `/tile/entries/<N>[.p/<W>]`, from a
//! [`TileSource`] (today the sled store), on an address of its own.
//!
//! Only what the latest signed checkpoint covers is served: a tile or bundle whose last entry is
//! past the checkpoint's size answers 404, even if the store already holds it. Full tiles never
//! change and are served `immutable`; partial tiles and the checkpoint with a short `max-age`.
//!
//! Bounded: at most [`MAX_CONNECTIONS`] connections (more are answered 503 and closed at once),
//! request headers within [`HEADER_TIMEOUT`] and at most 16 KiB, every connection closed after
//! [`CONNECTION_LIFETIME`] whatever it is doing, no request body ever read, and at most
//! [`MAX_BUILDS`] tiles assembled at once on the blocking pool (a bundle is at most 256 entries
//! of at most 64 KiB each).

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{
    ACCESS_CONTROL_ALLOW_ORIGIN, ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderValue, X_CONTENT_TYPE_OPTIONS,
};
use hyper::{Method, Request, Response, StatusCode};
use ledger_store::tiles::{MAX_TILE_LEVEL, TILE_WIDTH, TileError, TileSource, tile_entries};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Address the tile server listens on unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8081";

/// Connections open at once; one more is answered 503 and closed.
pub const MAX_CONNECTIONS: usize = 256;

/// Tiles and bundles assembled from the store at once (the rest wait their turn).
pub const MAX_BUILDS: usize = 8;

/// Time a client has to send a request's headers (also the keep-alive idle limit).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest life of one connection, however busy; a reader that stops reading is cut here.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// Largest request head (request line and headers) read.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Full tiles and bundles never change.
pub const CACHE_FULL: &str = "public, max-age=31536000, immutable";

/// Partial tiles are superseded by the full tile (the spec lets a log delete them).
pub const CACHE_PARTIAL: &str = "public, max-age=60";

/// The checkpoint moves with every group: caches keep it a few seconds at most.
pub const CACHE_CHECKPOINT: &str = "public, max-age=2";

/// Errors are never cached (a 404 past the checkpoint becomes a tile later).
const CACHE_ERROR: &str = "no-store";

/// What a request path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resource {
    Checkpoint,
    Tile { level: u8, index: u64, width: u16 },
    Bundle { index: u64, width: u16 },
}

/// Why a path names nothing.
#[derive(Debug, PartialEq, Eq)]
enum PathError {
    /// A tile path not in the spec's encoding: 400.
    Malformed(&'static str),
    /// Not a tlog-tiles resource, or a well-formed path to a tile no log of `u64` entries can
    /// have: 404.
    Impossible,
}

/// A decimal without leading zeros (the spec's `<L>` and `<W>`).
fn decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.parse().ok()
}

/// The spec's `<N>`: zero-padded 3-digit elements, all but the last prefixed with `x`, in its
/// shortest form (no leading `x000`).
fn tile_index(segs: &[&str]) -> Result<u64, PathError> {
    let (last, head) = segs.split_last().ok_or(PathError::Malformed("no tile index"))?;
    let three = |s: &str| {
        (s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    let mut n = 0u64;
    let mut overflow = false;
    for (i, s) in head.iter().enumerate() {
        let d = s.strip_prefix('x').and_then(three).ok_or(PathError::Malformed(
            "index elements before the last are x and 3 digits",
        ))?;
        if i == 0 && d == 0 {
            return Err(PathError::Malformed("index with a leading x000"));
        }
        match n.checked_mul(1000).and_then(|v| v.checked_add(d)) {
            Some(v) => n = v,
            None => overflow = true,
        }
    }
    let d = three(last).ok_or(PathError::Malformed("the last index element is 3 digits"))?;
    match n.checked_mul(1000).and_then(|v| v.checked_add(d)) {
        Some(v) if !overflow => Ok(v),
        _ => Err(PathError::Impossible),
    }
}

/// Parses a request path (without query) into the resource it names.
fn parse_path(path: &str) -> Result<Resource, PathError> {
    if path == "/checkpoint" {
        return Ok(Resource::Checkpoint);
    }
    let rest = path.strip_prefix("/tile/").ok_or(PathError::Impossible)?;
    let segs: Vec<&str> = rest.split('/').take(10).collect();
    // An index of u64 needs 7 elements; with `<L>` (or `entries`) and `.p/<W>`, at most 9.
    if segs.len() < 2 || segs.len() > 9 {
        return Err(PathError::Malformed("wrong number of path elements"));
    }
    let mut idx: Vec<&str> = segs[1..].to_vec();
    let mut width = TILE_WIDTH;
    if idx.len() >= 2
        && let Some(p) = idx[idx.len() - 2].strip_suffix(".p")
    {
        let w = decimal(idx[idx.len() - 1])
            .filter(|w| (1..u64::from(TILE_WIDTH)).contains(w))
            .ok_or(PathError::Malformed(
                "a partial width is 1 to 255 without leading zeros",
            ))?;
        width = w as u16;
        let at = idx.len() - 2;
        idx[at] = p;
        idx.pop();
    }
    let index = tile_index(&idx)?;
    if segs[0] == "entries" {
        return Ok(Resource::Bundle { index, width });
    }
    let level = decimal(segs[0])
        .filter(|l| *l <= u64::from(MAX_TILE_LEVEL))
        .ok_or(PathError::Malformed("a level is 0 to 63 without leading zeros"))?;
    Ok(Resource::Tile {
        level: level as u8,
        index,
        width,
    })
}

/// Binds the tile listener: `None` for `off`. The default address, when taken, only warns (a
/// second node on the same machine); an address given explicitly must bind.
///
/// # Errors
/// An explicit address that does not parse or cannot be bound.
pub async fn bind(listen: Option<&str>) -> Result<Option<TcpListener>> {
    let explicit = listen.is_some();
    let addr = listen.unwrap_or(DEFAULT_LISTEN);
    if addr == "off" {
        return Ok(None);
    }
    let parsed: SocketAddr = addr
        .parse()
        .with_context(|| format!("--tiles-listen {addr:?} is neither an address (IP:PORT) nor \"off\""))?;
    match TcpListener::bind(parsed).await {
        Ok(l) => Ok(Some(l)),
        Err(e) if !explicit => {
            tracing::warn!(addr, error = %e, "tile server not started (set --tiles-listen, or \"off\")");
            Ok(None)
        }
        Err(e) => Err(e).with_context(|| format!("binding the tile server to {addr}")),
    }
}

/// Shared by every connection.
struct State {
    source: Arc<dyn TileSource>,
    builds: Semaphore,
}

type Answer = Response<Full<Bytes>>;

fn answer(status: StatusCode, cache: &'static str, content_type: &'static str, body: impl Into<Bytes>) -> Answer {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Public, signed, verifiable data: browsers may read it from any page.
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    r
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Answer {
    answer(status, CACHE_ERROR, "text/plain; charset=utf-8", format!("{message}\n"))
}

impl State {
    async fn handle(self: Arc<Self>, req: Request<hyper::body::Incoming>) -> Answer {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD");
            r.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        // The request body, if any, is never read.
        let res = match parse_path(req.uri().path()) {
            Ok(r) => r,
            Err(PathError::Malformed(why)) => return error(StatusCode::BAD_REQUEST, format!("malformed path: {why}")),
            Err(PathError::Impossible) => return error(StatusCode::NOT_FOUND, "no such resource"),
        };
        let Ok(_permit) = self.builds.acquire().await else {
            return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
        };
        let st = self.clone();
        match tokio::task::spawn_blocking(move || st.build(res)).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "tile task failed");
                error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        }
    }

    /// Reads the resource from the source (blocking).
    fn build(&self, res: Resource) -> Answer {
        match self.try_build(res) {
            Ok(a) => a,
            Err(TileError::Beyond { .. }) => error(StatusCode::NOT_FOUND, "beyond the latest checkpoint"),
            Err(TileError::Malformed { .. }) => error(StatusCode::BAD_REQUEST, "no such tile"),
            // The bundle cannot be written in the spec's format (docs/format.md); a client that
            // needs the entry reads it with GetEntry and checks it against the level-0 tile.
            Err(e @ TileError::EntryTooLarge { .. }) => error(StatusCode::NOT_IMPLEMENTED, e),
            Err(e) => {
                tracing::error!(error = %e, ?res, "cannot read a tile from the store");
                error(StatusCode::INTERNAL_SERVER_ERROR, "storage error")
            }
        }
    }

    fn try_build(&self, res: Resource) -> Result<Answer, TileError> {
        let (size, note) = self.source.signed_checkpoint()?.ok_or(TileError::Beyond { size: 0 })?;
        let (level, index, width, bundle) = match res {
            Resource::Checkpoint => {
                return Ok(answer(
                    StatusCode::OK,
                    CACHE_CHECKPOINT,
                    "text/plain; charset=utf-8",
                    note,
                ));
            }
            Resource::Tile { level, index, width } => (level, index, width, false),
            Resource::Bundle { index, width } => (0, index, width, true),
        };
        // Only what the latest signed checkpoint covers, never a partial tile wider than it.
        match tile_entries(level, index, width) {
            Some((_, end)) if end <= size => {}
            _ => return Err(TileError::Beyond { size }),
        }
        let body = if bundle {
            self.source.entry_bundle(index, width)?
        } else {
            self.source.hash_tile(level, index, width)?
        };
        let cache = if width == TILE_WIDTH { CACHE_FULL } else { CACHE_PARTIAL };
        Ok(answer(StatusCode::OK, cache, "application/octet-stream", body))
    }
}

/// Connections over [`MAX_CONNECTIONS`] being answered 503 at once.
const MAX_REFUSALS: usize = 64;

/// Answers 503 on a connection over the limit, within a second in all: the answer, then the
/// request read and dropped (at most 16 KiB) so that closing sends FIN, not a reset that would
/// destroy the answer before the client reads it.
async fn refuse(mut sock: tokio::net::TcpStream, _permit: tokio::sync::OwnedSemaphorePermit) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        sock.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nCache-Control: no-store\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await?;
        sock.shutdown().await?;
        let mut buf = [0u8; 4096];
        let mut read = 0;
        while read < MAX_HEAD_BYTES {
            match sock.read(&mut buf).await? {
                0 => break,
                n => read += n,
            }
        }
        Ok::<(), std::io::Error>(())
    })
    .await;
}

/// The server's bounds: the constants above, each overridable by an environment variable
/// (`LEDGER_TILES_MAX_CONNECTIONS`, `LEDGER_TILES_HEADER_TIMEOUT_MS`,
/// `LEDGER_TILES_CONNECTION_LIFETIME_MS`; docs/operations.md).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Time to send a request head (and keep-alive idle limit).
    pub header_timeout: Duration,
    /// Longest life of a connection.
    pub connection_lifetime: Duration,
}

impl Limits {
    /// The defaults, with the environment's overrides.
    ///
    /// # Errors
    /// A variable that is set but is not a positive integer.
    pub fn from_env() -> Result<Limits> {
        fn var(name: &str) -> Result<Option<u64>> {
            match std::env::var(name) {
                Err(_) => Ok(None),
                Ok(v) => match v.trim().parse::<u64>() {
                    Ok(n) if n > 0 => Ok(Some(n)),
                    _ => anyhow::bail!("{name}={v:?} is not a positive integer"),
                },
            }
        }
        Ok(Limits {
            max_connections: var("LEDGER_TILES_MAX_CONNECTIONS")?.map_or(MAX_CONNECTIONS, |n| {
                usize::try_from(n).unwrap_or(usize::MAX).min(Semaphore::MAX_PERMITS)
            }),
            header_timeout: var("LEDGER_TILES_HEADER_TIMEOUT_MS")?.map_or(HEADER_TIMEOUT, Duration::from_millis),
            connection_lifetime: var("LEDGER_TILES_CONNECTION_LIFETIME_MS")?
                .map_or(CONNECTION_LIFETIME, Duration::from_millis),
        })
    }
}

/// Serves `listener` until the process ends.
pub async fn serve(listener: TcpListener, source: Arc<dyn TileSource>, limits: Limits) {
    let state = Arc::new(State {
        source,
        builds: Semaphore::new(MAX_BUILDS),
    });
    let conns = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    let http = Arc::new(http);
    loop {
        let sock = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!(error = %e, "tile server: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = conns.clone().try_acquire_owned() else {
            // Over the limit: answered 503 and closed (by a few short-lived tasks at most; past
            // those, closed without an answer).
            if let Ok(p) = refusals.clone().try_acquire_owned() {
                tokio::spawn(refuse(sock, p));
            }
            continue;
        };
        let _ = sock.set_nodelay(true);
        let st = state.clone();
        let http = http.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let svc = hyper::service::service_fn(move |req| {
                let st = st.clone();
                async move { Ok::<_, Infallible>(st.handle(req).await) }
            });
            let conn = http.serve_connection(hyper_util::rt::TokioIo::new(sock), svc);
            let _ = tokio::time::timeout(limits.connection_lifetime, conn).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_as_the_spec_encodes_them() {
        assert_eq!(parse_path("/checkpoint"), Ok(Resource::Checkpoint));
        assert_eq!(
            parse_path("/tile/0/x001/x234/067"),
            Ok(Resource::Tile {
                level: 0,
                index: 1_234_067,
                width: 256
            })
        );
        assert_eq!(
            parse_path("/tile/1/000.p/3"),
            Ok(Resource::Tile {
                level: 1,
                index: 0,
                width: 3
            })
        );
        assert_eq!(
            parse_path("/tile/entries/x001/002.p/255"),
            Ok(Resource::Bundle {
                index: 1002,
                width: 255
            })
        );
        assert_eq!(
            parse_path("/tile/63/x018/x446/x744/x073/x709/x551/615"),
            Ok(Resource::Tile {
                level: 63,
                index: u64::MAX,
                width: 256
            })
        );
        assert_eq!(
            parse_path("/tile/0/x018/x446/x744/x073/x709/x551/616"),
            Err(PathError::Impossible)
        );
        assert_eq!(
            parse_path("/tile/0/x001/x002/x003/x004/x005/x006/x007/008"),
            Err(PathError::Impossible)
        );
        for other in ["/", "/tile", "/robots.txt", "/checkpoint/", "/tile.p/3"] {
            assert_eq!(parse_path(other), Err(PathError::Impossible), "{other}");
        }
        for bad in [
            "/tile/",
            "/tile/0",
            "/tile/0/",
            "/tile/00/000",
            "/tile/64/000",
            "/tile/-1/000",
            "/tile/0/1",
            "/tile/0/0000",
            "/tile/0/x000/001",
            "/tile/0/001/002",
            "/tile/0/x1/002",
            "/tile/0/000.p/0",
            "/tile/0/000.p/256",
            "/tile/0/000.p/07",
            "/tile/0/000.p/",
            "/tile/0/000.p",
            "/tile/0/000/.p/5",
            "/tile/entries/000.p/5/6",
            "/tile/data/000",
            "/tile/0/+01",
            "/tile/0/x001/x002/x003/x004/x005/x006/x007/x008/009",
        ] {
            assert!(
                matches!(parse_path(bad), Err(PathError::Malformed(_))),
                "{bad}: {:?}",
                parse_path(bad)
            );
        }
    }
}
