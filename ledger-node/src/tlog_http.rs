//! The C2SP tlog-witness HTTP interface (<https://c2sp.org/tlog-witness>): `POST
//! <prefix>/add-checkpoint`, both sides.
//!
//! - [`serve`]: the witness's HTTP front, answering from the same [`WitnessService`] (one state,
//!   one lock) as the gRPC service.
//! - [`HttpWitness`]: the node's client for a witness that speaks HTTP.
//!
//! Status codes are the spec's: 200 with the cosignature line(s), 400 malformed (or old size above
//! the checkpoint size), 403 no valid log signature, 404 unknown log, 409 the old size is not the
//! size held (body: that size and a newline, `Content-Type: text/x.tlog.size`), 422 the consistency
//! proof does not verify. Plain `http` only (docs/witness.md).

use crate::witness::{AddFailure, WitnessService};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use ledger_core::witness::MAX_ADD_CHECKPOINT_BYTES;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// The spec's path (under the submission prefix).
pub const ADD_CHECKPOINT: &str = "/add-checkpoint";
/// The spec's content type of a 409 body.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";
/// Longest wait for a request's headers or body.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Most HTTP connections served at once.
const MAX_CONNECTIONS: usize = 256;
/// Largest answer the client reads from a witness.
const MAX_ANSWER_BYTES: usize = 64 << 10;

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn plain(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    text(status, "text/plain; charset=utf-8", body)
}

/// The HTTP answer to an add-checkpoint outcome.
fn answer(r: Result<String, AddFailure>) -> Response<Full<Bytes>> {
    match r {
        Ok(lines) => plain(StatusCode::OK, lines),
        Err(AddFailure::Refused(e)) => {
            let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            match e.held_size() {
                Some(held) if status == StatusCode::CONFLICT => text(status, SIZE_CONTENT_TYPE, format!("{held}\n")),
                _ => plain(status, format!("{e}\n")),
            }
        }
        Err(AddFailure::Unavailable(m)) => plain(StatusCode::SERVICE_UNAVAILABLE, format!("{m}\n")),
        Err(AddFailure::Internal(m)) => plain(StatusCode::INTERNAL_SERVER_ERROR, format!("{m}\n")),
    }
}

async fn handle(svc: Arc<WitnessService>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != ADD_CHECKPOINT {
        return Ok(plain(
            StatusCode::NOT_FOUND,
            format!("no such path; use POST {ADD_CHECKPOINT}\n"),
        ));
    }
    if req.method() != Method::POST {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "use POST\n".into());
        r.headers_mut().insert(ALLOW, HeaderValue::from_static("POST"));
        return Ok(r);
    }
    let body = Limited::new(req.into_body(), MAX_ADD_CHECKPOINT_BYTES);
    let bytes = match tokio::time::timeout(READ_TIMEOUT, body.collect()).await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) => {
            let msg = if e.is::<http_body_util::LengthLimitError>() {
                format!("malformed request: the body is over {MAX_ADD_CHECKPOINT_BYTES} bytes")
            } else {
                format!("malformed request: cannot read the body: {e}")
            };
            return Ok(plain(StatusCode::BAD_REQUEST, format!("{msg}\n")));
        }
        Err(_) => {
            return Ok(plain(
                StatusCode::REQUEST_TIMEOUT,
                "the body did not arrive in time\n".into(),
            ));
        }
    };
    let Ok(body) = String::from_utf8(bytes.to_vec()) else {
        return Ok(plain(
            StatusCode::BAD_REQUEST,
            "malformed request: the body is not UTF-8\n".into(),
        ));
    };
    Ok(answer(svc.add(&body).await))
}

/// Serves `POST /add-checkpoint` on `listener` until the task is dropped (HTTP/1.1, keep-alive).
pub async fn serve(listener: TcpListener, svc: Arc<WitnessService>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "tlog-witness http: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let svc = svc.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(svc.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "tlog-witness http connection ended");
            }
            drop(permit);
        });
    }
}

/// What a witness answered to an add-checkpoint request over HTTP.
#[derive(Debug)]
pub enum HttpAnswer {
    /// 200: the cosignature line(s).
    Cosigned(String),
    /// 409 with the size the witness holds.
    Conflict(u64),
    /// Any other status, with the body (shortened) for the log.
    Refused(u16, String),
}

/// A witness reached over the spec's HTTP interface.
#[derive(Debug, Clone)]
pub struct HttpWitness {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
}

/// The add-checkpoint URL of a submission prefix (`http://host:port[/path]`).
///
/// # Errors
/// When it is not an absolute `http` URL.
pub fn add_checkpoint_uri(prefix: &str) -> Result<Uri, String> {
    let full = format!("{}{ADD_CHECKPOINT}", prefix.trim_end_matches('/'));
    let uri: Uri = full.parse().map_err(|e| format!("{prefix:?} is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        return Err(format!(
            "{prefix:?}: a tlog-witness HTTP prefix must be an absolute http:// URL (https is not supported)"
        ));
    }
    Ok(uri)
}

impl HttpWitness {
    /// A client for the witness whose submission prefix is `prefix`.
    ///
    /// # Errors
    /// When the prefix is not an absolute `http` URL.
    pub fn new(prefix: &str, timeout: Duration) -> Result<Self, String> {
        let uri = add_checkpoint_uri(prefix)?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self { client, uri })
    }

    /// Posts one add-checkpoint body.
    ///
    /// # Errors
    /// On a transport failure, an unreadable answer, or a 409 without the size.
    pub async fn add_checkpoint(&self, body: String) -> Result<HttpAnswer, String> {
        let req = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .header(CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| format!("cannot reach {}: {e}", self.uri))?;
        let status = resp.status();
        let conflict_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes() == SIZE_CONTENT_TYPE.as_bytes());
        let bytes = Limited::new(resp.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| format!("cannot read the answer of {}: {e}", self.uri))?
            .to_bytes();
        let body = String::from_utf8_lossy(&bytes).into_owned();
        match status {
            StatusCode::OK => Ok(HttpAnswer::Cosigned(body)),
            StatusCode::CONFLICT => match parse_size(&body) {
                Some(n) => Ok(HttpAnswer::Conflict(n)),
                None => Err(format!(
                    "409 without a size (Content-Type {SIZE_CONTENT_TYPE}: {conflict_type}): {:?}",
                    shorten(&body)
                )),
            },
            s => Ok(HttpAnswer::Refused(s.as_u16(), shorten(&body))),
        }
    }
}

/// The spec's size body: an ASCII decimal without leading zeros, then a newline.
fn parse_size(body: &str) -> Option<u64> {
    let n = body.strip_suffix('\n')?;
    if n.is_empty() || !n.bytes().all(|c| c.is_ascii_digit()) || (n.len() > 1 && n.starts_with('0')) {
        return None;
    }
    n.parse().ok()
}

fn shorten(s: &str) -> String {
    let t = s.trim();
    match t.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &t[..i]),
        None => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_bodies_follow_the_spec() {
        assert_eq!(parse_size("0\n"), Some(0));
        assert_eq!(parse_size("20852014\n"), Some(20_852_014));
        for bad in [
            "",
            "\n",
            "12",
            "012\n",
            "1 \n",
            "-1\n",
            "99999999999999999999\n",
            "1\n\n",
        ] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_absolute_http_prefixes_are_accepted() {
        assert_eq!(
            add_checkpoint_uri("http://127.0.0.1:8080/").expect("uri").to_string(),
            "http://127.0.0.1:8080/add-checkpoint"
        );
        assert_eq!(
            add_checkpoint_uri("http://w.example/sub").expect("uri").path(),
            "/sub/add-checkpoint"
        );
        for bad in ["https://w.example", "w.example:80", "/x", "ftp://w.example"] {
            assert!(add_checkpoint_uri(bad).is_err(), "{bad}");
        }
    }
}
