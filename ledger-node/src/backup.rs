//! Verified backups and restores (`ledger-node backup`, `ledger-node restore`; docs/operations.md
//! "Backups and the restore drill").
//!
//! A backup is a directory: the export stream of the store (`ledger.export`, entry 0 is the
//! charter), the two high-water marks as they were when the backup was taken, the public node key
//! and optionally the node's config file, plus `manifest.json` (written last) with the log's size
//! and root, the marks it was verified against and the SHA-256 of every file. Secret keys are never
//! in it; the manifest lists the key files that must come from the operator's key custody.
//!
//! `backup` works on a running node the way `export` does: it reads the marks first, then a
//! crash-consistent copy of the store (`Store::open_read_only`), so the copy is never older than
//! the marks. It then verifies what it wrote: the export file is imported into a scratch store
//! (every entry and checkpoint re-verified) which must hold both marks, and only then is the
//! manifest written. `restore` checks every file against the manifest, imports the export into a
//! new data directory, checks size and root against the manifest and the log against every mark it
//! knows (the backup's, any left in the target directory, and a witnessed checkpoint the operator
//! supplies), and writes the marks, so the restored node refuses to start below what the witnesses
//! last cosigned.

use anyhow::{Context, Result, bail};
use clap::Args;
use ledger_core::hash::Hash;
use ledger_store::Store;
use ledger_store::high_water::{self, MarkFault};
use ledger_store::scan::{Owned, Reopen as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Manifest format.
pub const FORMAT: &str = "ledger-backup/1";
/// Manifest file name in a backup directory.
pub const MANIFEST: &str = "manifest.json";
/// The export stream in a backup directory.
pub const EXPORT_FILE: &str = "ledger.export";
/// The public node key in a backup directory (and under a data directory).
pub const VKEY_FILE: &str = "keys/node.vkey";
/// The node's config file, when `--config` is given.
pub const CONFIG_FILE: &str = "config.toml";

/// Copies of a running store `backup` takes before it gives up.
const ATTEMPTS: u32 = 5;

/// `ledger-node backup`.
#[derive(Args)]
pub struct BackupArgs {
    /// Data directory of the node (running or stopped).
    #[arg(long, env = "LEDGER_DATA", default_value = "ledger-data")]
    pub data: PathBuf,
    /// Backup directory to create (must not exist or be empty).
    #[arg(long)]
    pub out: PathBuf,
    /// The node's TOML config file, copied into the backup.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// `ledger-node restore`.
#[derive(Args)]
pub struct RestoreArgs {
    /// Backup directory (made by `ledger-node backup`).
    #[arg(long)]
    pub from: PathBuf,
    /// Data directory to rebuild (must not hold a store; marks left in it are honoured).
    #[arg(long)]
    pub data: PathBuf,
    /// The latest checkpoint the witnesses cosigned (a signed checkpoint note, e.g. from a
    /// witness or a monitor): the restored log must hold it.
    #[arg(long)]
    pub witnessed: Option<PathBuf>,
}

/// A checkpoint named in the manifest.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct MarkInfo {
    /// Entries it commits to.
    pub size: u64,
    /// Its root.
    pub root: String,
}

/// One file of the backup.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct FileInfo {
    /// Path relative to the backup directory.
    pub path: String,
    /// Length in bytes.
    pub bytes: u64,
    /// SHA-256, hex.
    pub sha256: String,
}

/// A file a restore needs that is deliberately not in the backup.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Excluded {
    /// Path relative to the data directory.
    pub path: String,
    /// Why, and where it must come from.
    pub why: String,
}

/// `manifest.json`.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The log's origin (from the charter).
    pub origin: String,
    /// Seconds since the Unix epoch when the backup was verified.
    pub created_unix: u64,
    /// Entries in the backup.
    pub size: u64,
    /// Root of the log at `size`, hex.
    pub root: String,
    /// Signed checkpoints in the export.
    pub checkpoints: u64,
    /// The node's high-water mark the copy was verified against.
    pub high_water: Option<MarkInfo>,
    /// The latest witnessed checkpoint the copy was verified against.
    pub witnessed: Option<MarkInfo>,
    /// Every file of the backup except the manifest.
    pub files: Vec<FileInfo>,
    /// What a restore needs that is not here.
    pub not_included: Vec<Excluded>,
}

fn not_included() -> Vec<Excluded> {
    let custody = "secret key: not in any backup; restore it from the operator's key custody";
    vec![
        Excluded {
            path: "keys/node.key".into(),
            why: format!("{custody} (the node's checkpoint signing key; `serve` needs it at DATA/keys/node.key)"),
        },
        Excluded {
            path: "keys/*.key (administrator keys)".into(),
            why: format!("{custody} (kept offline; the node never needs them)"),
        },
        Excluded {
            path: "TLS key (--tls-key)".into(),
            why: custody.to_string(),
        },
    ]
}

/// Removes a scratch directory when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The import marker of a restore's data directory: removed when dropped with no store left (a
/// refused restore removed the store it made), kept beside a store a restore left half-made.
struct Marker<'a>(&'a Path);

impl Drop for Marker<'_> {
    fn drop(&mut self) {
        if !crate::genesis::Layout::new(self.0).store.exists() {
            let _ = high_water::end_import(self.0);
        }
    }
}

fn sha256_file(path: &Path) -> Result<(u64, String)> {
    let mut f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((n, hex::encode(h.finalize())))
}

fn mark_info(note: Option<&str>, roots: &std::collections::BTreeMap<u64, Hash>) -> Option<MarkInfo> {
    let size = high_water::claimed_size(note?)?;
    Some(MarkInfo {
        size,
        root: roots.get(&size)?.to_hex(),
    })
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `ledger-node backup --data DIR --out BACKUP_DIR [--config FILE]`.
///
/// # Errors
/// When the store does not satisfy its marks (after [`ATTEMPTS`] copies), the written copy does
/// not verify, or a file cannot be written; the files written so far are removed again (without
/// `manifest.json` a directory is never a backup).
pub fn backup(a: &BackupArgs) -> Result<()> {
    crate::marks::refuse_unfinished_import(&a.data, "back up")?;
    if a.out.exists() && std::fs::read_dir(&a.out)?.next().is_some() {
        bail!("refusing to back up into {}: it is not empty", a.out.display());
    }
    std::fs::create_dir_all(a.out.join("keys")).with_context(|| format!("creating {}", a.out.display()))?;
    let m = match write_backup(a) {
        Ok(m) => m,
        Err(e) => {
            for f in [
                MANIFEST,
                EXPORT_FILE,
                high_water::MARK_FILE,
                high_water::WITNESSED_FILE,
                VKEY_FILE,
                CONFIG_FILE,
            ] {
                let _ = std::fs::remove_file(a.out.join(f));
            }
            let _ = std::fs::remove_dir(a.out.join("keys"));
            return Err(e);
        }
    };
    println!(
        "backup of {} entries (root {}) verified against the high-water mark ({}) and the witnessed checkpoint \
         ({}) in {}; RFC 3161 tokens: {}; NOT included: keys/node.key and the administrator keys (restore them from key custody)",
        m.size,
        m.root,
        m.high_water.as_ref().map_or("none".into(), |x| x.size.to_string()),
        m.witnessed.as_ref().map_or("none".into(), |x| x.size.to_string()),
        a.out.display(),
        m.files.iter().filter(|f| f.path.starts_with("timestamps/")).count()
    );
    Ok(())
}

/// The marks, then a copy of the store that verifies and holds them. A copy of a store that a
/// running node writes to can catch sled mid-write (it then reads as damaged or short); another
/// copy is taken, at most [`ATTEMPTS`] in all.
fn snapshot(data: &Path) -> Result<(Owned, crate::marks::Checked, Option<String>, Option<String>)> {
    let mut last = None;
    for attempt in 1..=ATTEMPTS {
        // The marks first: a running node writes a mark after its store group.
        let r = crate::marks::read(data).and_then(|(mark, witnessed)| {
            // Reopened every few MiB of entries read (ledger_store::scan): memory flat in the log.
            let mut store = Owned::new(Store::open_read_only_without_lookups(
                &crate::genesis::Layout::new(data).store,
            )?);
            let checked =
                crate::marks::check_reopening(&mut store, data, (mark.clone(), witnessed.clone()), "back up")?;
            Ok((store, checked, mark, witnessed))
        });
        match r {
            Ok(s) => return Ok(s),
            Err(e) => {
                eprintln!("ledger-node backup: copy {attempt} of {ATTEMPTS} of the store did not verify: {e:#}");
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no copy of the store verified")))
}

fn write_backup(a: &BackupArgs) -> Result<Manifest> {
    let data = &a.data;
    let (mut store, checked, mark, witnessed) = snapshot(data)?;
    let origin = checked
        .report
        .node_verifier
        .as_ref()
        .map(|v| v.name.clone())
        .context("the store is empty: nothing to back up")?;
    let export_path = a.out.join(EXPORT_FILE);
    let f = std::io::BufWriter::new(
        std::fs::File::create(&export_path).with_context(|| format!("creating {}", export_path.display()))?,
    );
    let budget = ledger_store::scan::scan_bytes(ledger_store::scan::EXPORT_SCAN_BYTES);
    let (size, checkpoints) = ledger_store::export::export_reopening(&mut store, f, budget)?;
    std::fs::File::open(&export_path)?.sync_all()?;
    drop(store);

    // Verify the copy: import what was written into a scratch store, which must hold both marks
    // with the same roots.
    let scratch = Scratch(a.out.join(".verify"));
    let _ = std::fs::remove_dir_all(&scratch.0);
    // Reopened every NODE_SCAN_BYTES written and read (ledger_store::scan): memory flat in the log.
    let mut copy = Owned::new(Store::open(&scratch.0).context("opening the scratch store")?);
    let rd = std::io::BufReader::new(std::fs::File::open(&export_path)?);
    let budget = ledger_store::scan::scan_bytes(ledger_store::scan::NODE_SCAN_BYTES);
    let n =
        ledger_store::export::import_reopening(&mut copy, rd, budget).context("the written export does not verify")?;
    let sizes: Vec<u64> = [mark.as_deref(), witnessed.as_deref()]
        .into_iter()
        .flatten()
        .filter_map(high_water::claimed_size)
        .collect();
    let (report, roots) = ledger_store::scan::verify_reopening(&mut copy, &sizes, 0, budget, &mut |_, _, _| Ok(()))?;
    if n != size || report.size != size || report.root != checked.report.root {
        bail!(
            "the written export holds {} entries with root {}, the store copy {size} entries with root {}",
            report.size,
            report.root,
            checked.report.root
        );
    }
    report
        .node_verifier
        .as_ref()
        .context("the written export has no charter")?;
    for (name, note) in [(high_water::MARK_FILE, &mark), (high_water::WITNESSED_FILE, &witnessed)] {
        if let Some(note) = note {
            // The node key for the mark's size (after a `node.rotate`, the new key).
            let v = report
                .verifier_at(high_water::claimed_size(note).unwrap_or(0))
                .context("the written export has no charter")?;
            high_water::check(note, &v, report.size, |s| roots.get(&s).copied())
                .map_err(|e| anyhow::anyhow!("the written export does not hold {name}: {e}"))?;
        }
    }
    drop(copy);
    drop(scratch);

    let files = write_side_files(a, mark.as_deref(), witnessed.as_deref())?;
    let m = Manifest {
        format: FORMAT.into(),
        origin,
        created_unix: now_unix(),
        size,
        root: report.root.to_hex(),
        checkpoints,
        high_water: mark_info(mark.as_deref(), &roots),
        witnessed: mark_info(witnessed.as_deref(), &roots),
        files,
        not_included: not_included(),
    };
    let text = serde_json::to_string_pretty(&m)? + "\n";
    high_water::write_atomic(&a.out.join(MANIFEST), &text)?;
    Ok(m)
}

/// Writes the marks, the public key and the config beside the export, as they were read, and
/// returns every file of the backup (the export first) with its length and SHA-256.
fn write_side_files(a: &BackupArgs, mark: Option<&str>, witnessed: Option<&str>) -> Result<Vec<FileInfo>> {
    let mut files = vec![EXPORT_FILE.to_string()];
    for (name, note) in [(high_water::MARK_FILE, mark), (high_water::WITNESSED_FILE, witnessed)] {
        if let Some(note) = note {
            high_water::write_atomic(&a.out.join(name), note)?;
            files.push(name.to_string());
        }
    }
    let vkey = a.data.join(VKEY_FILE);
    if vkey.exists() {
        std::fs::copy(&vkey, a.out.join(VKEY_FILE)).with_context(|| format!("copying {}", vkey.display()))?;
        files.push(VKEY_FILE.to_string());
    }
    files.extend(copy_timestamps(
        &crate::timestamps::dir(&a.data),
        &a.out.join(TIMESTAMPS_DIR),
    )?);
    if let Some(c) = &a.config {
        std::fs::copy(c, a.out.join(CONFIG_FILE)).with_context(|| format!("copying {}", c.display()))?;
        files.push(CONFIG_FILE.to_string());
    }
    files
        .into_iter()
        .map(|p| {
            let (bytes, sha256) = sha256_file(&a.out.join(&p))?;
            Ok(FileInfo { path: p, bytes, sha256 })
        })
        .collect::<Result<Vec<_>>>()
}

/// Folder of the RFC 3161 tokens (`DATA/timestamps`) inside a backup.
pub const TIMESTAMPS_DIR: &str = "timestamps";

/// Copies the RFC 3161 tokens of `from` (only files named as the node names them; temporary files
/// of a token being written are skipped) into `to`, returning their backup paths
/// (`timestamps/NAME`). A missing `from` is no tokens.
fn copy_timestamps(from: &Path, to: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(from) else {
        return Ok(out);
    };
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| crate::timestamps::is_token_name(n))
        .collect();
    names.sort();
    if !names.is_empty() {
        std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    }
    for n in names {
        std::fs::copy(from.join(&n), to.join(&n)).with_context(|| format!("copying {}", from.join(&n).display()))?;
        out.push(format!("{TIMESTAMPS_DIR}/{n}"));
    }
    Ok(out)
}

/// Reads the manifest and checks every file it lists (present, length, SHA-256).
///
/// # Errors
/// Naming the first file that is missing or differs.
pub fn check_files(from: &Path) -> Result<Manifest> {
    let mpath = from.join(MANIFEST);
    let text = std::fs::read_to_string(&mpath).with_context(|| format!("reading {}", mpath.display()))?;
    let m: Manifest =
        serde_json::from_str(&text).with_context(|| format!("{} is not a backup manifest", mpath.display()))?;
    if m.format != FORMAT {
        bail!("{}: format {:?}, expected {FORMAT:?}", mpath.display(), m.format);
    }
    let allowed = [
        EXPORT_FILE,
        high_water::MARK_FILE,
        high_water::WITNESSED_FILE,
        VKEY_FILE,
        CONFIG_FILE,
    ];
    for f in &m.files {
        let token = f
            .path
            .strip_prefix(&format!("{TIMESTAMPS_DIR}/"))
            .is_some_and(crate::timestamps::is_token_name);
        if !allowed.contains(&f.path.as_str()) && !token {
            bail!(
                "backup file {:?}: not a file a backup holds (manifest altered?)",
                f.path
            );
        }
        let p = from.join(&f.path);
        let (bytes, sha) =
            sha256_file(&p).with_context(|| format!("backup file {} is missing or unreadable", f.path))?;
        if bytes != f.bytes || sha != f.sha256 {
            bail!(
                "backup file {} is damaged or altered: {bytes} bytes with SHA-256 {sha}, the manifest says {} bytes \
                 with SHA-256 {}",
                f.path,
                f.bytes,
                f.sha256
            );
        }
    }
    if !m.files.iter().any(|f| f.path == EXPORT_FILE) {
        bail!("the manifest lists no {EXPORT_FILE}");
    }
    Ok(m)
}

/// `ledger-node restore --from BACKUP_DIR --data NEW_DIR [--witnessed FILE]`.
///
/// # Errors
/// When a file differs from the manifest, the export does not verify, the log does not match the
/// manifest, or it does not hold a mark (ROLLBACK); the new store is then removed again.
pub fn restore(a: &RestoreArgs) -> Result<()> {
    let m = check_files(&a.from)?;
    let store_dir = crate::genesis::Layout::new(&a.data).store;
    if store_dir.exists() && std::fs::read_dir(&store_dir)?.next().is_some() {
        crate::marks::refuse_unfinished_import(&a.data, "restore into")?;
        bail!(
            "refusing to restore into {}: {} already holds a store (move it aside first)",
            a.data.display(),
            store_dir.display()
        );
    }
    // Marks to honour: the backup's, any left in the target directory, the operator's.
    let notes = marks_to_honour(a, &m)?;

    std::fs::create_dir_all(&a.data)?;
    // As `import`: the marker is there until the store is flushed and the marks are written (a
    // restore killed half-way is refused by `serve`); a refused restore removes both again.
    high_water::begin_import(
        &a.data,
        &format!(
            "ledger-node restore --from {} --data {}",
            a.from.display(),
            a.data.display()
        ),
    )?;
    let _marker = Marker(&a.data);
    let created = Scratch(store_dir.clone());
    // Reopened every NODE_SCAN_BYTES written and read (ledger_store::scan): memory flat in the log.
    let mut owned = Owned::new(Store::open(&store_dir)?);
    let rd = std::io::BufReader::new(std::fs::File::open(a.from.join(EXPORT_FILE))?);
    let budget = ledger_store::scan::scan_bytes(ledger_store::scan::NODE_SCAN_BYTES);
    let n = ledger_store::export::import_reopening(&mut owned, rd, budget)
        .with_context(|| format!("{EXPORT_FILE} does not verify"))?;
    owned.store()?.flush()?;
    let sizes: Vec<u64> = notes
        .iter()
        .filter_map(|(_, n, _)| high_water::claimed_size(n))
        .collect();
    let (report, roots) = ledger_store::scan::verify_reopening(&mut owned, &sizes, 0, budget, &mut |_, _, _| Ok(()))?;
    let store = owned.into_inner()?;
    if n != m.size || report.size != m.size || report.root.to_hex() != m.root {
        bail!(
            "{EXPORT_FILE} holds {} entries with root {}, the manifest says {} entries with root {}",
            report.size,
            report.root,
            m.size,
            m.root
        );
    }
    let v = report.node_verifier.as_ref().context("the backup has no charter")?;
    check_backup_vkey(a, &m, v, &report)?;
    let (newest, newest_witnessed) = newest_marks(&notes, &report, &roots)?;
    // The restored directory's marks: its latest checkpoint, and the newest witnessed checkpoint
    // (also recorded in the store, as the node records it), so `serve` refuses to start below it.
    // The mark never goes down: a mark left in NEWDIR (or a witnessed checkpoint) can be newer
    // than the latest checkpoint the backup's store holds.
    let mut size = crate::marks::write_latest(&store, &a.data)?;
    if let Some((s, note)) = newest.filter(|(s, _)| *s > size) {
        high_water::write_atomic(&high_water::mark_path(&a.data), note)?;
        size = s;
    }
    if let Some((s, note)) = newest_witnessed {
        store.put_cosigned_checkpoint(s, note, true)?;
        high_water::write_atomic(&high_water::witnessed_path(&a.data), note)?;
    }
    store.flush()?;
    drop(store);
    std::mem::forget(created);
    high_water::end_import(&a.data)?;
    let tokens: Vec<&str> = m
        .files
        .iter()
        .filter_map(|f| f.path.strip_prefix(&format!("{TIMESTAMPS_DIR}/")))
        .filter(|n| crate::timestamps::is_token_name(n))
        .collect();
    if !tokens.is_empty() {
        let dir = crate::timestamps::dir(&a.data);
        std::fs::create_dir_all(&dir)?;
        for n in &tokens {
            std::fs::copy(a.from.join(TIMESTAMPS_DIR).join(n), dir.join(n))?;
        }
    }
    let vkey = a.from.join(VKEY_FILE);
    let dest = a.data.join(VKEY_FILE);
    if m.files.iter().any(|f| f.path == VKEY_FILE) && !dest.exists() {
        std::fs::create_dir_all(a.data.join("keys"))?;
        std::fs::copy(&vkey, &dest)?;
    }
    println!(
        "restored and verified {n} entries (root {}) into {}: every file matched the manifest; high-water mark: \
         checkpoint of {size}; witnessed: {}. NOT restored: keys/node.key — copy it from key custody to {} \
         before `serve`{}",
        m.root,
        a.data.display(),
        newest_witnessed.map_or("none".into(), |(s, _)| format!("checkpoint of {s}")),
        crate::genesis::Layout::new(&a.data).node_key.display(),
        if m.files.iter().any(|f| f.path == CONFIG_FILE) {
            format!("; the node's config is in {}", a.from.join(CONFIG_FILE).display())
        } else {
            String::new()
        }
    );
    Ok(())
}

/// The checkpoint notes `restore` must honour, as (where from, note, witnessed): the backup's
/// marks, the marks left in the target directory, and the operator's `--witnessed`.
fn marks_to_honour(a: &RestoreArgs, m: &Manifest) -> Result<Vec<(String, String, bool)>> {
    let mut notes: Vec<(String, String, bool)> = Vec::new();
    let backup_note = |name: &str| -> Result<Option<String>> {
        if m.files.iter().any(|f| f.path == name) {
            Ok(Some(std::fs::read_to_string(a.from.join(name))?))
        } else {
            Ok(None)
        }
    };
    if let Some(n) = backup_note(high_water::MARK_FILE)? {
        notes.push((format!("the backup's {}", high_water::MARK_FILE), n, false));
    }
    if let Some(n) = backup_note(high_water::WITNESSED_FILE)? {
        notes.push((format!("the backup's {}", high_water::WITNESSED_FILE), n, true));
    }
    let (old_mark, old_witnessed) = crate::marks::read(&a.data)?;
    if let Some(n) = old_mark {
        notes.push((high_water::mark_path(&a.data).display().to_string(), n, false));
    }
    if let Some(n) = old_witnessed {
        notes.push((high_water::witnessed_path(&a.data).display().to_string(), n, true));
    }
    if let Some(p) = &a.witnessed {
        let n = std::fs::read_to_string(p).with_context(|| format!("reading --witnessed {}", p.display()))?;
        notes.push((format!("--witnessed {}", p.display()), n, true));
    }
    Ok(notes)
}

/// The backup's copy of the node's verifier key, if any, must be the charter's node key.
fn check_backup_vkey(
    a: &RestoreArgs,
    m: &Manifest,
    v: &ledger_core::note::NoteVerifier,
    report: &ledger_store::OpenReport,
) -> Result<()> {
    if m.files.iter().any(|f| f.path == VKEY_FILE) {
        let text = std::fs::read_to_string(a.from.join(VKEY_FILE))?;
        let vkey = ledger_core::note::NoteVerifier::parse(text.trim())
            .map_err(|e| anyhow::anyhow!("backup file {VKEY_FILE}: {e}"))?;
        // `node.vkey` is the charter's key, written at `init`; after a `node.rotate` the node key
        // is a later one of the chain.
        if &vkey != v
            && !report
                .node_keys
                .iter()
                .any(|t| t.key == vkey.key && vkey.name == v.name)
        {
            bail!(
                "backup file {VKEY_FILE} is {}, but the charter's node key is {}",
                vkey.to_string_key(),
                v.to_string_key()
            );
        }
    }
    Ok(())
}

/// A checkpoint note and its size.
type Mark<'n> = (u64, &'n str);

/// Checks every mark against the restored store (a witnessed mark beyond it is a ROLLBACK) and
/// returns the newest mark and the newest witnessed mark, as (size, note). Each mark is checked under
/// the node key for its size (the chain of node keys).
fn newest_marks<'n>(
    notes: &'n [(String, String, bool)],
    report: &ledger_store::OpenReport,
    roots: &std::collections::BTreeMap<u64, Hash>,
) -> Result<(Option<Mark<'n>>, Option<Mark<'n>>)> {
    let store_size = report.size;
    let mut newest_witnessed: Option<(u64, &str)> = None;
    let mut newest: Option<(u64, &str)> = None;
    for (name, note, witnessed) in notes {
        let v = report
            .verifier_at(high_water::claimed_size(note).unwrap_or(0))
            .context("the backup has no charter")?;
        let cp = high_water::check(note, &v, store_size, |s| roots.get(&s).copied()).map_err(|e| match e {
            MarkFault::Shorter { mark, store } if *witnessed => anyhow::anyhow!(
                "refusing to restore: ROLLBACK: the backup holds {store} entries but the witnesses last cosigned a \
                 checkpoint of {mark} entries ({name}); restoring it would drop {} witnessed entries and fork the \
                 log. Restore from a backup taken at or after that checkpoint",
                mark - store
            ),
            e => anyhow::anyhow!("refusing to restore: {name}: {e}"),
        })?;
        if newest.is_none_or(|(s, _)| cp.size > s) {
            newest = Some((cp.size, note.as_str()));
        }
        if *witnessed && newest_witnessed.is_none_or(|(s, _)| cp.size >= s) {
            newest_witnessed = Some((cp.size, note.as_str()));
        }
    }
    Ok((newest, newest_witnessed))
}
