//! Runs a source through the replayer: a reader thread pulls items from the source and cuts them
//! into windows, worker threads prepare each window (decode, leaf hashes, order-independent rules,
//! batched signature verification), and the calling thread feeds the windows, in order, to the
//! [`Replayer`]. A fixed number of windows is in flight at any time, so memory stays bounded.

use crate::prepare::{Item, Prepared, prepare_item};
use crate::replay::{Outcome, Replayer};
use crate::sigs::{KeyCache, SigMode, keys_in_window, verify_window};
use crate::source::{Source, SourceEnd};
use anyhow::anyhow;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

/// Pipeline settings.
#[derive(Debug, Clone, Copy)]
pub struct PipelineOptions {
    /// Worker threads; 0 or 1 runs everything on the calling thread.
    pub threads: usize,
    /// Items per window.
    pub window: usize,
    /// Signature verification.
    pub mode: SigMode,
}

/// A window of items to prepare, with its sequence number.
type Job = (u64, Vec<Item>);

enum Msg {
    Window(u64, Vec<Prepared>),
    End(u64, anyhow::Result<SourceEnd>),
}

struct Applier {
    replayer: Replayer,
    progress: Option<Progress>,
}

/// The progress display: a bar when the total is known (entries, or the bytes of an export file),
/// a spinner otherwise; never when stderr is not a terminal.
struct Progress {
    pb: ProgressBar,
    /// Bytes read so far, when the bar counts bytes.
    bytes: Option<Arc<std::sync::atomic::AtomicU64>>,
}

impl Progress {
    fn update(&self, entries: u64, faults: u64) {
        match &self.bytes {
            Some(b) => self.pb.set_position(b.load(std::sync::atomic::Ordering::Relaxed)),
            None => self.pb.set_position(entries),
        }
        let secs = self.pb.elapsed().as_secs_f64();
        let mut msg = format!("{} entries, {}", thousands(entries), rate(entries, secs));
        if faults > 0 {
            msg.push_str(&format!(", {faults} faults"));
        }
        self.pb.set_message(msg);
    }
}

/// `n` with thousands separators: `56,547`.
fn thousands(n: u64) -> String {
    let d = n.to_string();
    let mut o = String::with_capacity(d.len() + d.len() / 3);
    for (i, c) in d.chars().enumerate() {
        if i > 0 && (d.len() - i).is_multiple_of(3) {
            o.push(',');
        }
        o.push(c);
    }
    o
}

/// The replay rate, rounded to whole entries per second: `56,547 entries/s`.
fn rate(entries: u64, secs: f64) -> String {
    if secs <= 0.0 {
        return "— entries/s".into();
    }
    let r = (entries as f64 / secs).round();
    // Saturating float-to-int conversion; the rate is for display only.
    format!("{} entries/s", thousands(r as u64))
}

impl Applier {
    fn apply(&mut self, window: Vec<Prepared>) {
        for p in window {
            self.replayer.feed(p);
        }
        if let Some(p) = &self.progress {
            p.update(self.replayer.entries(), self.replayer.fault_count());
        }
    }
}

fn progress_bar(source: &dyn Source) -> Option<Progress> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = |len: u64| {
        let pb = ProgressBar::new(len);
        pb.set_style(
            ProgressStyle::with_template("[{elapsed_precise}] {wide_bar} {percent:>3}% eta {eta} · {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb
    };
    Some(match (source.expected_entries(), source.byte_progress()) {
        (Some(n), _) => Progress {
            pb: bar(n),
            bytes: None,
        },
        (None, Some((len, read))) => Progress {
            pb: bar(len),
            bytes: Some(read),
        },
        (None, None) => {
            let pb = ProgressBar::new_spinner();
            pb.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            Progress { pb, bytes: None }
        }
    })
}

/// Replays everything the source delivers.
///
/// # Errors
/// When the source fails (I/O, transport), a worker thread died, or the temporary ticket index
/// failed.
pub fn run(mut source: Box<dyn Source>, replayer: Replayer, opts: PipelineOptions) -> anyhow::Result<Outcome> {
    let window = opts.window.max(1);
    let mut ap = Applier {
        replayer,
        progress: progress_bar(source.as_ref()),
    };
    let end = if opts.threads <= 1 {
        run_inline(source.as_mut(), &mut ap, window, opts.mode)?
    } else {
        run_threaded(source.as_mut(), &mut ap, window, opts)?
    };
    if let Some(p) = &ap.progress {
        p.pb.finish_and_clear();
    }
    if let Some(e) = ap.replayer.failure() {
        anyhow::bail!("the replay could not be completed: {e}");
    }
    Ok(ap.replayer.finish(end.claimed_size))
}

fn run_inline(source: &mut dyn Source, ap: &mut Applier, window: usize, mode: SigMode) -> anyhow::Result<SourceEnd> {
    let mut cache = KeyCache::default();
    let mut win: Vec<Prepared> = Vec::with_capacity(window);
    let mut flush = |win: &mut Vec<Prepared>, ap: &mut Applier| {
        for (id, k) in keys_in_window(win) {
            cache.insert(id, k);
        }
        verify_window(win, &cache, mode);
        ap.apply(std::mem::take(win));
    };
    let end = source.run(&mut |item| {
        win.push(prepare_item(item));
        if win.len() >= window {
            flush(&mut win, ap);
        }
        true
    })?;
    flush(&mut win, ap);
    Ok(end)
}

fn run_threaded(
    source: &mut dyn Source,
    ap: &mut Applier,
    window: usize,
    opts: PipelineOptions,
) -> anyhow::Result<SourceEnd> {
    let in_flight = opts.threads * 4;
    let (work_tx, work_rx) = sync_channel::<Job>(opts.threads * 2);
    let work_rx: Arc<Mutex<Receiver<Job>>> = Arc::new(Mutex::new(work_rx));
    let (res_tx, res_rx) = sync_channel::<Msg>(in_flight);
    let (tok_tx, tok_rx) = sync_channel::<()>(in_flight);
    for _ in 0..in_flight {
        let _ = tok_tx.send(());
    }
    let cache = Arc::new(RwLock::new(KeyCache::default()));
    std::thread::scope(|s| {
        let reader_tx = res_tx.clone();
        s.spawn(move || {
            let mut seq = 0u64;
            let mut win: Vec<Item> = Vec::with_capacity(window);
            let send = |win: &mut Vec<Item>, seq: &mut u64| -> bool {
                if win.is_empty() {
                    return true;
                }
                if tok_rx.recv().is_err() || work_tx.send((*seq, std::mem::take(win))).is_err() {
                    return false;
                }
                *seq += 1;
                true
            };
            let r = source.run(&mut |item| {
                win.push(item);
                win.len() < window || send(&mut win, &mut seq)
            });
            if r.is_ok() {
                send(&mut win, &mut seq);
            }
            drop(work_tx);
            let _ = reader_tx.send(Msg::End(seq, r));
        });
        for _ in 0..opts.threads {
            let (rx, tx, cache) = (Arc::clone(&work_rx), res_tx.clone(), Arc::clone(&cache));
            s.spawn(move || verify_worker(&rx, &tx, &cache, opts.mode));
        }
        drop(res_tx);
        let mut buf: BTreeMap<u64, Vec<Prepared>> = BTreeMap::new();
        let mut next = 0u64;
        let mut end: Option<(u64, anyhow::Result<SourceEnd>)> = None;
        loop {
            while let Some(w) = buf.remove(&next) {
                ap.apply(w);
                next += 1;
                let _ = tok_tx.send(());
            }
            if let Some((n, _)) = &end
                && next >= *n
            {
                break;
            }
            match res_rx.recv() {
                Ok(Msg::Window(seq, w)) => {
                    buf.insert(seq, w);
                }
                Ok(Msg::End(n, r)) => end = Some((n, r)),
                Err(_) => break,
            }
        }
        drop(tok_tx);
        drop(res_rx);
        match end {
            Some((n, r)) if next >= n => r,
            _ => Err(anyhow!("internal error: a verification thread stopped")),
        }
    })
}

/// One verification thread: takes windows of items, prepares them, verifies their signatures
/// (keys first enrolled in the window added to the shared cache) and sends them back in order of
/// their sequence number, until the work channel closes or the applier stops listening.
fn verify_worker(rx: &Mutex<Receiver<Job>>, tx: &SyncSender<Msg>, cache: &RwLock<KeyCache>, mode: SigMode) {
    loop {
        let job = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok((seq, items)) = job else { break };
        let mut prepared: Vec<Prepared> = items.into_iter().map(prepare_item).collect();
        let mut keys = keys_in_window(&prepared);
        if !keys.is_empty() {
            keys.retain(|(id, _)| !cache.read().unwrap_or_else(PoisonError::into_inner).contains(id));
        }
        if !keys.is_empty() {
            let mut c = cache.write().unwrap_or_else(PoisonError::into_inner);
            for (id, k) in keys {
                c.insert(id, k);
            }
        }
        verify_window(
            &mut prepared,
            &cache.read().unwrap_or_else(PoisonError::into_inner),
            mode,
        );
        if tx.send(Msg::Window(seq, prepared)).is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{rate, thousands};

    #[test]
    fn rate_is_rounded_with_separators() {
        assert_eq!(rate(56_546_910, 1000.0), "56,547 entries/s");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(rate(10, 0.0), "— entries/s");
        assert_eq!(rate(3, 2.0), "2 entries/s");
    }
}
