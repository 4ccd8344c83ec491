//! Sending micro-evaluations (`evaluation.micro`, docs/ballots.md) in bulk from a service platform.
//!
//! The input is a JSON-lines file, one rating per line:
//!
//! ```text
//! {"ticket_hash":"3d37…21f9","subject":"cadre-0042","department":"permits","rating":4,"service_time_micros":1772440200000000}
//! ```
//!
//! (`"version": 1` may be given; blank lines are skipped). Each line becomes one `evaluation.micro`
//! record signed by the platform key, bound to the log's origin, with its fields in the order of
//! docs/records.md, so the same line always gives the same envelope. [`send_micro_file`] sends
//! them through `AppendBatch` in batches, each with the request id `micro-<ticket_hash>`:
//!
//! - resending a rating the node already holds is answered `duplicate` (or, when it came in under
//!   another request id, refused with `MICRO_DUPLICATE_TICKET`); both count as *already present*,
//!   so an interrupted run is resumed by running it again, without duplicates;
//! - after each batch the position reached is written to a progress file (`FILE.progress`), with a
//!   hash of the file up to there; a rerun skips what it covers when the file still begins with the
//!   same bytes, and starts from the top otherwise (safe, since resending is idempotent).

use crate::client::{BatchItem, LedgerClient};
use crate::error::ClientError;
use crate::sign::sign_record_bytes_in;
use ed25519_dalek::SigningKey;
use ledger_core::hash::Hash;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Default number of ratings per `AppendBatch` request.
pub const DEFAULT_BATCH: usize = 1000;

/// Largest batch the node accepts.
pub const MAX_BATCH: usize = 10_000;

/// At most this many refusals are kept with their line number and message in a summary.
pub const MAX_REFUSAL_DETAILS: usize = 20;

/// One line of the input file: an `evaluation.micro` record (docs/records.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MicroLine {
    /// Record version; 1 (may be left out in the file).
    #[serde(default = "one")]
    pub version: u64,
    /// Salted hash of the service ticket, 64 lowercase hex digits.
    pub ticket_hash: String,
    /// Cadre rated.
    pub subject: String,
    /// Department that gave the service.
    pub department: String,
    /// 1–5.
    pub rating: u64,
    /// Time of the service, UTC microseconds (within 400 days before it is appended).
    pub service_time_micros: u64,
}

fn one() -> u64 {
    1
}

impl MicroLine {
    /// Parses one line and checks what can be checked without the log: version 1, a 64-hex-digit
    /// lowercase ticket hash, a rating 1–5. The node checks the rest.
    ///
    /// # Errors
    /// When the line is not such a record.
    pub fn parse(line: &str) -> Result<Self, String> {
        let m: Self = serde_json::from_str(line).map_err(|e| format!("not a micro-evaluation line: {e}"))?;
        if m.version != 1 {
            return Err(format!("version {} (only 1 is known)", m.version));
        }
        if m.ticket_hash.len() != 64
            || !m
                .ticket_hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err("ticket_hash must be 64 lowercase hex digits".into());
        }
        if !(1..=5).contains(&m.rating) {
            return Err(format!("rating {} is not 1–5", m.rating));
        }
        Ok(m)
    }

    /// The request id of this rating: `micro-<ticket_hash>`.
    pub fn request_id(&self) -> String {
        format!("micro-{}", self.ticket_hash)
    }

    /// The signed `evaluation.micro` record (compact JSON, fields in the order of docs/records.md).
    pub fn envelope(&self, origin: &str, key: &SigningKey) -> Result<ledger_core::dsse::Envelope, ClientError> {
        let bytes = serde_json::to_vec(self).map_err(|e| ClientError::Payload(e.to_string()))?;
        Ok(sign_record_bytes_in("evaluation.micro", Some(origin), bytes, &[key]))
    }
}

/// How [`send_micro_file`] runs.
#[derive(Debug, Clone)]
pub struct MicroSendOptions {
    /// Ratings per `AppendBatch` request (1 to [`MAX_BATCH`]).
    pub batch_size: usize,
    /// Progress file; `None`: none is read or written.
    pub progress_file: Option<PathBuf>,
}

impl MicroSendOptions {
    /// Batches of [`DEFAULT_BATCH`], progress kept in [`progress_path`] of `file`.
    pub fn for_file(file: &Path) -> Self {
        Self {
            batch_size: DEFAULT_BATCH,
            progress_file: Some(progress_path(file)),
        }
    }
}

/// The default progress file of `file`: `file` with `.progress` appended to its name.
pub fn progress_path(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".progress");
    PathBuf::from(s)
}

/// A refused rating.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// Line number in the file (from 1).
    pub line: u64,
    /// The rule's fault code (e.g. `MICRO_TIME_OUT_OF_RANGE`), the gRPC code name when the node
    /// gave none, or `INVALID_LINE` for a line refused before sending.
    pub code: String,
    /// The message.
    pub message: String,
}

/// What a run of [`send_micro_file`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MicroSendSummary {
    /// Ratings in the file (non-blank lines).
    pub ratings: u64,
    /// Ratings skipped because the progress file showed them sent by an earlier run.
    pub skipped: u64,
    /// Ratings appended by this run.
    pub sent: u64,
    /// Ratings the log already held: answered `duplicate`, or refused with `MICRO_DUPLICATE_TICKET`.
    pub already_present: u64,
    /// Refused ratings per code.
    pub refused: BTreeMap<String, u64>,
    /// The first [`MAX_REFUSAL_DETAILS`] refusals.
    pub refusals: Vec<Refusal>,
}

impl MicroSendSummary {
    /// Number of refused ratings.
    pub fn refused_total(&self) -> u64 {
        self.refused.values().sum()
    }

    fn refuse(&mut self, line: u64, code: String, message: String) {
        *self.refused.entry(code.clone()).or_default() += 1;
        if self.refusals.len() < MAX_REFUSAL_DETAILS {
            self.refusals.push(Refusal { line, code, message });
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Progress {
    version: u64,
    bytes_done: usize,
    prefix_sha256: String,
}

/// The fault code of a node refusal: the leading `UPPER_CASE:` of its message, else the gRPC code.
fn fault_code(code: tonic::Code, message: &str) -> String {
    match message.split_once(':') {
        Some((c, _)) if !c.is_empty() && c.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') => c.to_string(),
        _ => crate::error::code_name(code).to_string(),
    }
}

/// Where the progress file says to resume: a byte offset at a line start, when the file still
/// begins with the bytes it describes.
fn resume_point(progress: &Path, data: &[u8]) -> usize {
    let Ok(text) = std::fs::read(progress) else {
        return 0;
    };
    match serde_json::from_slice::<Progress>(&text) {
        Ok(p)
            if p.version == 1
                && p.bytes_done <= data.len()
                && (p.bytes_done == 0 || data[p.bytes_done - 1] == b'\n')
                && Hash::digest(&data[..p.bytes_done]).to_hex() == p.prefix_sha256 =>
        {
            p.bytes_done
        }
        _ => 0,
    }
}

fn save_progress(progress: &Path, data: &[u8], bytes_done: usize) -> Result<(), ClientError> {
    let p = Progress {
        version: 1,
        bytes_done,
        prefix_sha256: Hash::digest(&data[..bytes_done]).to_hex(),
    };
    let tmp = progress_path(progress);
    let io = |e: std::io::Error| ClientError::File {
        path: progress.to_path_buf(),
        error: e,
    };
    std::fs::write(
        &tmp,
        serde_json::to_vec(&p).map_err(|e| ClientError::Payload(e.to_string()))?,
    )
    .map_err(io)?;
    std::fs::rename(&tmp, progress).map_err(io)
}

/// Sends the ratings of the JSON-lines file `file` as `evaluation.micro` records signed by `key`
/// (a `service-platform` key) for the log `origin`, through `AppendBatch` (see the module
/// documentation for the line format, request ids and resumption). `on_progress(done, total)` is
/// called after each batch with the ratings handled so far (skipped ones included).
///
/// Refused ratings (an invalid line, a broken rule) are counted in the summary with their code,
/// and the run goes on; only a failure of a whole request (the node unreachable after retries,
/// the batch refused as a whole) stops it, with the progress file covering every batch answered.
///
/// # Errors
/// When the file cannot be read, the batch size is out of range, a whole batch fails, or the
/// progress file cannot be written.
pub async fn send_micro_file(
    client: &LedgerClient,
    origin: &str,
    key: &SigningKey,
    file: &Path,
    opts: &MicroSendOptions,
    mut on_progress: impl FnMut(u64, u64),
) -> Result<MicroSendSummary, ClientError> {
    if !(1..=MAX_BATCH).contains(&opts.batch_size) {
        return Err(ClientError::Payload(format!(
            "batch size {} is not 1 to {MAX_BATCH}",
            opts.batch_size
        )));
    }
    let data = std::fs::read(file).map_err(|e| ClientError::File {
        path: file.to_path_buf(),
        error: e,
    })?;
    let start = opts.progress_file.as_deref().map_or(0, |p| resume_point(p, &data));
    // (line number, byte offset after the line, line text)
    let mut lines = Vec::new();
    let mut offset = 0;
    for (i, raw) in data.split_inclusive(|b| *b == b'\n').enumerate() {
        offset += raw.len();
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        lines.push((i as u64 + 1, offset, raw));
    }
    let mut s = MicroSendSummary {
        ratings: lines.len() as u64,
        ..Default::default()
    };
    let first = lines.partition_point(|(_, end, _)| *end <= start);
    s.skipped = first as u64;
    let total = s.ratings;
    on_progress(s.skipped, total);
    let mut done = s.skipped;
    for chunk in lines[first..].chunks(opts.batch_size) {
        let mut items = Vec::with_capacity(chunk.len());
        let mut item_lines = Vec::with_capacity(chunk.len());
        for (no, _, raw) in chunk {
            let parsed = std::str::from_utf8(raw)
                .map_err(|_| "not UTF-8".to_string())
                .and_then(|t| MicroLine::parse(t.trim()));
            match parsed {
                Ok(m) => {
                    items.push(BatchItem {
                        envelope: m.envelope(origin, key)?,
                        request_id: Some(m.request_id()),
                    });
                    item_lines.push(*no);
                }
                Err(msg) => s.refuse(*no, "INVALID_LINE".into(), msg),
            }
        }
        if !items.is_empty() {
            let out = client.append_batch(&items, false).await?;
            for (r, no) in out.results.into_iter().zip(item_lines) {
                match r {
                    Ok(o) if o.duplicate => s.already_present += 1,
                    Ok(_) => s.sent += 1,
                    Err(ClientError::Node { code, message }) => {
                        let c = fault_code(code, &message);
                        if c == "MICRO_DUPLICATE_TICKET" {
                            s.already_present += 1;
                        } else {
                            s.refuse(no, c, message);
                        }
                    }
                    Err(e) => s.refuse(no, "MALFORMED_ANSWER".into(), e.to_string()),
                }
            }
        }
        if let (Some(p), Some((_, end, _))) = (&opts.progress_file, chunk.last()) {
            save_progress(p, &data, *end)?;
        }
        done += chunk.len() as u64;
        on_progress(done, total);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"ticket_hash":"3d37e080f600b499329744f7b5b232ec66d9821bef638d882b374edeca0721f9","subject":"cadre-0042","department":"permits","rating":4,"service_time_micros":1772440200000000}"#;

    #[test]
    fn lines_parse_and_sign_the_same_way_whatever_the_layout() {
        let m = MicroLine::parse(LINE).expect("line");
        assert_eq!(m.version, 1);
        assert_eq!(
            m.request_id(),
            "micro-3d37e080f600b499329744f7b5b232ec66d9821bef638d882b374edeca0721f9"
        );
        let spaced: serde_json::Value = serde_json::from_str(LINE).expect("json");
        let again = MicroLine::parse(&serde_json::to_string_pretty(&spaced).expect("pretty")).expect("pretty line");
        let k = SigningKey::from_bytes(&[7; 32]);
        assert_eq!(m.envelope("o", &k).expect("env"), again.envelope("o", &k).expect("env"));
        assert!(
            String::from_utf8_lossy(&m.envelope("o", &k).expect("env").payload)
                .starts_with(r#"{"version":1,"ticket_hash""#)
        );
    }

    #[test]
    fn bad_lines_are_refused() {
        for bad in [
            LINE.replace(":4,", ":6,"),
            LINE.replace("3d37", "3D37"),
            LINE.replace("\"rating\"", "\"stars\""),
            LINE.replace("{", "{\"version\":2,"),
            "[]".to_string(),
        ] {
            assert!(MicroLine::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fault_codes_come_from_the_message() {
        assert_eq!(
            fault_code(tonic::Code::FailedPrecondition, "MICRO_TIME_OUT_OF_RANGE: too old"),
            "MICRO_TIME_OUT_OF_RANGE"
        );
        assert_eq!(
            fault_code(tonic::Code::AlreadyExists, "request id \"x\": used"),
            "ALREADY_EXISTS"
        );
    }

    #[test]
    fn progress_is_used_only_when_the_file_still_matches() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("f.progress");
        let data = b"a\nb\nc\n".to_vec();
        assert_eq!(resume_point(&p, &data), 0);
        save_progress(&p, &data, 4).expect("save");
        assert_eq!(resume_point(&p, &data), 4);
        assert_eq!(resume_point(&p, b"a\nB\nc\n"), 0);
        assert_eq!(resume_point(&p, b"a\n"), 0);
    }
}
