//! Helpers for end-to-end tests: start the real `ledger-node` binary on a free loopback port,
//! stop it (SIGTERM or SIGKILL), and build signed records.
#![allow(dead_code)]

use ed25519_dalek::SigningKey;
use ledger_core::dsse::Envelope;
use ledger_core::registry::payload_type_in;
use ledger_proto::pb;
use ledger_proto::pb::ledger_client::LedgerClient;
use std::cell::RefCell;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tonic::transport::Channel;

/// Path of a workspace binary built next to this test's binary.
pub fn bin(name: &str) -> PathBuf {
    if name == "ledger-node"
        && let Some(p) = option_env!("CARGO_BIN_EXE_ledger-node")
    {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join(name);
    assert!(p.exists(), "{} not built; run `cargo test --workspace`", p.display());
    p
}

/// `n` distinct loopback ports that nothing listens on, for processes that must be told their
/// ports before they start (a cluster's peers, a metrics listener). They are taken from below the
/// kernel's ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`), from which port-0 binds
/// and outgoing connections draw: a port bound at 0 and released could be handed to another
/// test's node or connection before the process told to use it bound it ("Address already in
/// use", seen under load). Each is checked free by binding it, and none is handed out twice by
/// this process.
pub fn free_ports(n: usize) -> Vec<u16> {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let (lo, hi) = fixed_port_range();
    let span = u64::from(hi - lo);
    let mut seed = u64::from(std::process::id()).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
    let mut given = GIVEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut out = Vec::with_capacity(n);
    for _ in 0..span {
        if out.len() == n {
            break;
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let p = lo + (seed % span) as u16;
        if !given.contains(&p) && std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            given.push(p);
            out.push(p);
        }
    }
    assert_eq!(out.len(), n, "no {n} free ports in {lo}..{hi}");
    out
}

/// One port of [`free_ports`].
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// Ports that only a bind by number takes: below the ephemeral range (from 10000), else above
/// it.
fn fixed_port_range() -> (u16, u16) {
    let eph = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(str::parse::<u16>);
            Some((it.next()?.ok()?, it.next()?.ok()?))
        });
    match eph {
        Some((lo, _)) if lo >= 12_000 => (10_000, lo),
        Some((_, hi)) if hi <= 63_000 => (hi + 1, u16::MAX),
        _ => (10_000, u16::MAX),
    }
}

/// A running node process.
pub struct Node {
    pub child: Option<Child>,
    pub addr: String,
    pub data: PathBuf,
}

impl Node {
    /// Starts `ledger-node serve` on DATA with a free port; panics if it does not come up.
    pub fn start(data: &Path) -> Node {
        Self::try_start(data).unwrap_or_else(|e| panic!("node did not start: {e}"))
    }

    /// Starts the node; on failure returns what it printed on stderr.
    pub fn try_start(data: &Path) -> Result<Node, String> {
        Self::try_start_with(data, &[])
    }

    /// [`Node::try_start`] with extra `serve` arguments.
    pub fn try_start_with(data: &Path, extra: &[&str]) -> Result<Node, String> {
        Self::try_start_env(data, extra, &[])
    }

    /// [`Node::try_start_with`] with extra environment variables. Metrics are off unless `extra`
    /// names `--metrics-listen`.
    pub fn try_start_env(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Result<Node, String> {
        let metrics_off: &[&str] = if extra.contains(&"--metrics-listen") {
            &[]
        } else {
            &["--metrics-listen", "off"]
        };
        let mut child = Command::new(bin("ledger-node"))
            .args(["serve", "--listen", "127.0.0.1:0", "--checkpoint-interval-ms", "200"])
            .args(metrics_off)
            .args(extra)
            .arg("--data")
            .arg(data)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ledger-node");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let line = line.unwrap_or_default();
            if let Some(a) = line.strip_prefix("listening on ") {
                let addr = format!("http://{a}");
                // Keep draining stdout so the node never blocks on a full pipe, and keep its log
                // (stderr) next to the data directory for failing tests to show.
                std::thread::spawn(move || for _ in lines {});
                if let Some(mut err) = child.stderr.take() {
                    let log = data.with_extension("node.log");
                    std::thread::spawn(move || {
                        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
                            let _ = std::io::copy(&mut err, &mut f);
                        }
                    });
                }
                return Ok(Node {
                    child: Some(child),
                    addr,
                    data: data.to_path_buf(),
                });
            }
        }
        let out = child.wait_with_output().expect("wait");
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }

    pub async fn client(&self) -> LedgerClient<Channel> {
        for _ in 0..50 {
            if let Ok(c) = LedgerClient::connect(self.addr.clone()).await {
                return c
                    .max_decoding_message_size(64 << 20)
                    .max_encoding_message_size(64 << 20);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("cannot connect to {}", self.addr);
    }

    /// Graceful stop (SIGTERM) and wait.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    /// Hard kill (SIGKILL), as in a crash.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

thread_local! {
    /// Origin of the log this test thread writes to: [`record`] binds envelopes to it
    /// (`ledger-node init` writes charters with `log_binding`). Set by [`init`] and [`set_origin`].
    static ORIGIN: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Makes [`record`] bind envelopes to `origin` (`None`: unbound, for old-style logs).
pub fn set_origin(origin: Option<&str>) {
    ORIGIN.with(|o| *o.borrow_mut() = origin.map(String::from));
}

/// The origin [`record`] binds to on this thread.
pub fn current_origin() -> Option<String> {
    ORIGIN.with(|o| o.borrow().clone())
}

/// Runs `ledger-node init`; later [`record`]s on this thread are bound to `origin`.
pub fn init(data: &Path, origin: &str, admin_keys: &[PathBuf], quorum: u32) {
    set_origin(Some(origin));
    let mut c = Command::new(bin("ledger-node"));
    c.args(["init", "--origin", origin, "--admin-quorum", &quorum.to_string()])
        .arg("--data")
        .arg(data);
    for k in admin_keys {
        c.arg("--admin-key").arg(k);
    }
    let out = c.output().expect("init");
    assert!(
        out.status.success(),
        "init failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn key(path: &Path) -> SigningKey {
    ledger_client::keyfile::read_signing_key(path).expect("key file")
}

pub fn new_key() -> SigningKey {
    SigningKey::generate(&mut rand::rng())
}

/// A record of `kind` signed by `keys`, bound to this thread's log ([`set_origin`]).
pub fn record(kind: &str, payload: serde_json::Value, keys: &[&SigningKey]) -> Envelope {
    record_in(current_origin().as_deref(), kind, payload, keys)
}

/// A record of `kind` signed by `keys`, bound to the log `origin` (unbound when `None`).
pub fn record_in(origin: Option<&str>, kind: &str, payload: serde_json::Value, keys: &[&SigningKey]) -> Envelope {
    let mut env = Envelope::new(
        payload_type_in(kind, origin),
        serde_json::to_vec(&payload).expect("json"),
    );
    for k in keys {
        env.sign(k);
    }
    env
}

pub fn enroll(key: &SigningKey, name: &str, roles: &[&str], admins: &[&SigningKey]) -> Envelope {
    record(
        "key.enroll",
        serde_json::json!({
            "version": 1, "name": name,
            "key": ledger_core::keys::public_key_to_base64(&key.verifying_key()),
            "roles": roles, "scope": {"organization": "org-test", "kinds": []}
        }),
        admins,
    )
}

pub fn req(env: &Envelope, id: &str, wait: bool) -> pb::AppendRequest {
    pb::AppendRequest {
        envelope: Some(env.into()),
        request_id: id.to_string(),
        wait_for_checkpoint: wait,
    }
}

pub async fn append(
    c: &mut LedgerClient<Channel>,
    env: &Envelope,
    id: &str,
) -> Result<pb::AppendResponse, tonic::Status> {
    c.append(req(env, id, false)).await.map(|r| r.into_inner())
}

pub fn note_payload(i: u64) -> serde_json::Value {
    serde_json::json!({"version": 1, "text": format!("record {i}"), "subject": format!("cadre-{}", i % 3)})
}

/// A valid `evaluation.micro` payload for ticket `n` (docs/records.md).
pub fn micro_payload(n: u64) -> serde_json::Value {
    serde_json::json!({
        "version": 1,
        "ticket_hash": ledger_core::hash::Hash::digest(format!("ticket-{n}").as_bytes()).to_hex(),
        "subject": format!("cadre-{}", n % 7),
        "department": format!("dept-{}", n % 3),
        "rating": 1 + n % 5,
        "service_time_micros": now_micros() - 3_600_000_000 + n % 1_000_000,
    })
}

/// Enrolls `platform` as the "service platform" (role `service-platform`), signed by `admin`.
pub async fn enroll_platform(c: &mut LedgerClient<Channel>, platform: &SigningKey, admin: &SigningKey) {
    append(
        c,
        &enroll(platform, "service platform", &["service-platform"], &[admin]),
        "",
    )
    .await
    .expect("enroll platform");
}

/// Appends `platform`'s `evaluation.micro` rating of ticket `n` ([`micro_payload`]); its index.
pub async fn rate(c: &mut LedgerClient<Channel>, platform: &SigningKey, n: u64) -> Result<u64, tonic::Status> {
    append(c, &record("evaluation.micro", micro_payload(n), &[platform]), "")
        .await
        .map(|r| r.index)
}

/// `platform`'s ratings of `tickets` in one `AppendBatch` (no checkpoint wait).
pub async fn rate_batch(
    c: &mut LedgerClient<Channel>,
    platform: &SigningKey,
    tickets: std::ops::Range<u64>,
) -> pb::AppendBatchResponse {
    let items: Vec<pb::AppendRequest> = tickets
        .map(|n| req(&record("evaluation.micro", micro_payload(n), &[platform]), "", false))
        .collect();
    c.append_batch(pb::AppendBatchRequest {
        items,
        wait_for_checkpoint: false,
    })
    .await
    .expect("batch")
    .into_inner()
}

/// Every entry of the log, decoded: (index, kind, payload JSON, signer key ids).
pub async fn entries(c: &mut LedgerClient<Channel>) -> Vec<(u64, String, serde_json::Value, Vec<String>)> {
    let mut s = c
        .get_entries(pb::GetEntriesRequest { start: 0, end: 0 })
        .await
        .expect("entries")
        .into_inner();
    let mut out = Vec::new();
    while let Some(e) = s.message().await.expect("entry") {
        let env = e.envelope.expect("envelope");
        let kind = ledger_core::registry::kind_of(&env.payload_type)
            .unwrap_or_default()
            .to_string();
        let v: serde_json::Value = serde_json::from_slice(&env.payload).unwrap_or_default();
        out.push((e.index, kind, v, env.signatures.into_iter().map(|s| s.keyid).collect()));
    }
    out
}

/// Microseconds since the epoch, now.
pub fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_micros() as u64
}

/// Runs an honest `ledger-draw-v1` evaluator selection for `cadre-1` with the registrar `reg` as its
/// only party: commits `draw_id` over a pool `ev-00..` of `pool_size` members with a quota of 3 and
/// T = `reveal_at_size` (the next two appends must reach it: a filler note, then the reveal), and
/// returns the evaluators the node's `draw.result` selected.
pub async fn evaluator_draw(
    c: &mut LedgerClient<Channel>,
    reg: &SigningKey,
    draw_id: &str,
    pool_size: usize,
    reveal_at_size: u64,
) -> Vec<String> {
    use serde_json::json;
    let secret = b"registrar secret".to_vec();
    let pool: Vec<serde_json::Value> = (0..pool_size)
        .map(|i| json!({"id": format!("ev-{i:02}"), "stratum": "all"}))
        .collect();
    let commit = json!({"version": 1, "draw_id": draw_id, "purpose": "evaluator_selection", "subjects": ["cadre-1"],
        "pool": pool, "strata": [{"name": "all", "quota": 3}], "k": 3, "algorithm": "ledger-draw-v1",
        "parties": [{"name": "registrar", "keyid": ledger_core::keys::key_id(&reg.verifying_key()),
                     "commitment": ledger_core::hash::Hash::digest(&secret).to_hex()}],
        "reveal_at_size": reveal_at_size, "reveal_deadline_micros": now_micros() + 600_000_000});
    append(c, &record("draw.commit", commit, &[reg]), "")
        .await
        .expect("commit");
    append(c, &record("note", note_payload(0), &[reg]), "")
        .await
        .expect("filler");
    let reveal = json!({"version": 1, "draw_id": draw_id, "party": "registrar", "secret": hex::encode(&secret)});
    append(c, &record("draw.reveal", reveal, &[reg]), "")
        .await
        .expect("reveal");
    let result = entries(c)
        .await
        .into_iter()
        .find(|e| e.1 == "draw.result" && e.2["draw_id"] == draw_id)
        .expect("the node appends the draw's result");
    let drawn: Vec<String> = result.2["selection"][0]["selected"]
        .as_array()
        .expect("selected")
        .iter()
        .map(|v| v.as_str().expect("id").to_string())
        .collect();
    assert_eq!(drawn.len(), 3);
    drawn
}

/// An evaluator's side: a one-time key, blinded, signed blindly by the registrar, finalized.
pub fn obtain(
    issuer: &ledger_core::credential::IssuerKey,
    election: &str,
) -> (SigningKey, ledger_core::credential::Credential) {
    let k = new_key();
    let st = ledger_core::credential::blind(
        &mut rand::rng(),
        issuer.public_key(),
        election,
        k.verifying_key().as_bytes(),
    )
    .expect("blind");
    let blind_sig = issuer.blind_sign(st.blinded_message()).expect("blind signature");
    let cred = ledger_core::credential::finalize(issuer.public_key(), &st, &blind_sig).expect("finalize");
    (k, cred)
}

pub fn ballot(election: &str, k: &SigningKey, cred: &ledger_core::credential::Credential, s: [u64; 5]) -> Envelope {
    let v = serde_json::json!({"version": 1, "election_id": election,
        "scores": [{"subject": "cadre-1", "scores": {"political": s[0], "performance": s[1], "integrity": s[2],
            "public_opinion": s[3], "responsibility": s[4]}}],
        "ballot_key": ledger_core::keys::public_key_to_base64(&k.verifying_key()), "credential": cred});
    record("ballot", v, &[k])
}

/// The fault code at the start of a refusal's message.
pub fn code_of(e: &tonic::Status) -> String {
    e.message().split(':').next().unwrap_or_default().to_string()
}

/// Runs `ledger-node init` for `origin` with a witness quorum (development admin key) and makes
/// `origin` the one records are bound to.
pub fn init_with_quorum(data: &Path, origin: &str, quorum: u32) {
    set_origin(Some(origin));
    let out = Command::new(bin("ledger-node"))
        .args([
            "init",
            "--origin",
            origin,
            "--witness-quorum",
            &quorum.to_string(),
            "--data",
        ])
        .arg(data)
        .output()
        .expect("init");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Spawns a binary and waits for its "listening on ADDR" line; returns the child, the address and
/// the lines printed before it.
pub fn spawn_listening(mut cmd: Command) -> (Child, String, Vec<String>) {
    let mut child = cmd
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut before = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap_or_default();
        if let Some(a) = line.strip_prefix("listening on ") {
            let addr = format!("http://{a}");
            std::thread::spawn(move || for _ in lines {});
            return (child, addr, before);
        }
        before.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("{:?} did not start", cmd.get_program());
}

/// Copies directory `from` to `to`, recursively (a data directory to tamper with or to migrate).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let dst = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).expect("copy");
        }
    }
}

/// The value of the sample `name` (no labels) in the /metrics served on loopback `port`.
pub fn metric(port: u16, name: &str) -> f64 {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("metrics connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let mut all = String::new();
    s.read_to_string(&mut all).expect("read");
    all.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {all}"))
}

/// Initialises `data` with `origin`, starts a node on it, enrolls a registrar (name "r") and
/// appends `notes` single notes ([`note_payload`] 0, 1, …) signed by it: the running node, a
/// client and the registrar's key.
pub async fn registrar_ledger(data: &Path, origin: &str, notes: u64) -> (Node, LedgerClient<Channel>, SigningKey) {
    init(data, origin, &[], 1);
    let admin = key(&data.join("keys/admin.key"));
    let reg = new_key();
    let node = Node::start(data);
    let mut c = node.client().await;
    append(&mut c, &enroll(&reg, "r", &["registrar"], &[&admin]), "")
        .await
        .expect("enroll");
    for i in 0..notes {
        append(&mut c, &record("note", note_payload(i), &[&reg]), "")
            .await
            .expect("append");
    }
    (node, c, reg)
}

/// Appends the notes `payloads` ([`note_payload`]) signed by `reg` in one `AppendBatch` that waits
/// for a checkpoint; asserts that every one was appended.
pub async fn append_notes_batch(c: &mut LedgerClient<Channel>, reg: &SigningKey, payloads: std::ops::Range<u64>) {
    let items: Vec<pb::AppendRequest> = payloads
        .map(|i| req(&record("note", note_payload(i), &[reg]), "", false))
        .collect();
    let r = c
        .append_batch(pb::AppendBatchRequest {
            items,
            wait_for_checkpoint: true,
        })
        .await
        .expect("batch")
        .into_inner();
    assert!(r.results.iter().all(|x| x.ok.is_some()), "all appended");
}

/// Runs `ledger-verify replay ARGS` and asserts that it succeeds (its stdout and stderr in the
/// failure message); its stdout.
pub fn replay_ok(args: &[&str]) -> String {
    let out = Command::new(bin("ledger-verify"))
        .arg("replay")
        .args(args)
        .output()
        .expect("run ledger-verify replay");
    assert!(
        out.status.success(),
        "ledger-verify replay {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `ledger-verify replay --data DATA` and asserts that it succeeds; its stdout.
pub fn replay_data_ok(data: &Path) -> String {
    replay_ok(&["--data", data.to_str().expect("utf8")])
}
