//! The edge pool: CPU-heavy request checks (signature verification, payload parsing and schema
//! checks) run here, on at most `workers` blocking threads at a time, never on the async runtime's
//! workers, so that reads (GetCheckpoint, GetEntry, proofs) stay answered while appends arrive.
//!
//! At most `workers + queue` jobs are admitted at once (running or waiting for a thread); one more
//! is refused at once with RESOURCE_EXHAUSTED, before any work is done on it.
//!
//! Coalescing ([`EdgePool::coalesce`], [`EdgePool::run_coalesced`]): concurrent requests of one
//! kind (single Appends) wait in a shared [`Coalesce`] queue instead of each taking a thread of its
//! own; the queue's one dispatching task waits for a free thread, takes every request waiting then
//! (up to the queue's limit, oldest first) and checks them together in one job (for Appends: one
//! Ed25519 batch verification). The window is "until a thread is free": a request arriving at an
//! idle pool runs at once, alone. Each request still holds its own admission, so the
//! RESOURCE_EXHAUSTED bound is per request as before.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot};
use tonic::Status;

/// A bounded pool of blocking threads for edge checks.
#[derive(Debug)]
pub struct EdgePool {
    admitted: Arc<Semaphore>,
    running: Arc<Semaphore>,
    workers: usize,
    queue: usize,
}

impl EdgePool {
    /// A pool running at most `workers` (at least 1) jobs at once, with at most `queue` more
    /// waiting.
    pub fn new(workers: usize, queue: usize) -> Self {
        let workers = workers.max(1);
        let total = workers.saturating_add(queue).min(Semaphore::MAX_PERMITS);
        Self {
            admitted: Arc::new(Semaphore::new(total)),
            running: Arc::new(Semaphore::new(workers)),
            workers,
            queue: total - workers,
        }
    }

    /// One thread per core (as the OS reports them), with `queue` waiting jobs.
    pub fn per_core(queue: usize) -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, usize::from), queue)
    }

    /// Threads that may run edge checks at once.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Jobs that may wait for a thread.
    pub fn queue(&self) -> usize {
        self.queue
    }

    /// One admission, or RESOURCE_EXHAUSTED when `workers + queue` jobs are already admitted.
    fn admit(&self) -> Result<OwnedSemaphorePermit, Status> {
        self.admitted.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "the node's edge checks are saturated ({} running, {} waiting); retry later with the same request id",
                self.workers, self.queue
            ))
        })
    }

    /// Runs `f` on a pool thread and returns its result.
    ///
    /// # Errors
    /// RESOURCE_EXHAUSTED when `workers + queue` jobs are already admitted; INTERNAL when the job
    /// panicked.
    pub async fn run<T, F>(&self, f: F) -> Result<T, Status>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let admit = self.admit()?;
        let run = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Status::unavailable("the node is shutting down"))?;
        tokio::task::spawn_blocking(move || {
            // Both permits are released when the job ends, even when its caller went away.
            let _permits = (admit, run);
            f()
        })
        .await
        .map_err(|e| Status::internal(format!("edge check failed: {e}")))
    }

    /// A queue of inputs checked together on this pool by `check`, at most `max` (at least 1)
    /// per job, and the task that dispatches its jobs (see the module documentation). Call it
    /// within the Tokio runtime.
    pub fn coalesce<I, R>(&self, max: usize, check: Check<I, R>) -> Arc<Coalesce<I, R>>
    where
        I: Send + 'static,
        R: Send + 'static,
    {
        let work = Arc::new(Notify::new());
        let group = Arc::new(Coalesce {
            queue: Mutex::new((0, VecDeque::new())),
            max: max.max(1),
            work: work.clone(),
        });
        tokio::spawn(dispatch(Arc::downgrade(&group), work, self.running.clone(), check));
        group
    }

    /// Queues `input` in `group` (made by [`Self::coalesce`] on this pool) and returns its
    /// result, computed on a pool thread together with whatever else waits in `group` when a
    /// thread becomes free.
    ///
    /// # Errors
    /// RESOURCE_EXHAUSTED when `workers + queue` jobs are already admitted (nothing is queued
    /// then); INTERNAL when the job that held this input panicked or returned too few results.
    pub async fn run_coalesced<I, R>(&self, group: &Coalesce<I, R>, input: I) -> Result<R, Status> {
        let admit = self.admit()?;
        let (reply, rx) = oneshot::channel();
        let id = group.push(Waiting {
            id: 0,
            input,
            reply,
            admit,
        });
        // Cancelled before its input was taken: the input leaves the queue (and frees its admission).
        let mut guard = Unqueue { group, id: Some(id) };
        let r = rx.await;
        guard.id = None;
        r.map_err(|_| Status::internal("edge check failed: its job ended without an answer"))
    }
}

/// The one task that runs a [`Coalesce`] queue's jobs: whenever inputs wait, it takes a pool
/// thread, then every input waiting by then (up to the queue's limit), and starts their job on
/// that thread. Only this task waits for threads on the queue's behalf, so the callers only wait
/// for their answers. Ends when the queue is dropped (or the pool's threads are closed).
async fn dispatch<I, R>(group: Weak<Coalesce<I, R>>, work: Arc<Notify>, running: Arc<Semaphore>, check: Check<I, R>)
where
    I: Send + 'static,
    R: Send + 'static,
{
    loop {
        work.notified().await;
        loop {
            let Ok(run) = running.clone().acquire_owned().await else {
                return;
            };
            let Some(g) = group.upgrade() else {
                return;
            };
            let batch = g.take();
            drop(g);
            if batch.is_empty() {
                break;
            }
            let check = check.clone();
            tokio::task::spawn_blocking(move || {
                // The thread, and each input's admission, are released when the job ends, even
                // when the callers went away.
                let _run = run;
                let mut inputs = Vec::with_capacity(batch.len());
                let mut replies = Vec::with_capacity(batch.len());
                for w in batch {
                    inputs.push(w.input);
                    // Admission first: dropped before its answer is sent (also when `check`
                    // panics), so a caller that has its answer no longer counts as admitted.
                    replies.push((w.admit, w.reply));
                }
                // Each caller is answered as soon as its result is known, not at the job's end.
                let mut replies = replies.into_iter();
                check(inputs, &mut |r| {
                    if let Some((admit, reply)) = replies.next() {
                        drop(admit);
                        // A caller that went away no longer wants its answer.
                        let _ = reply.send(r);
                    }
                });
            });
        }
    }
}

/// One input waiting in a [`Coalesce`] queue, with its admission.
struct Waiting<I, R> {
    id: u64,
    input: I,
    reply: oneshot::Sender<R>,
    admit: OwnedSemaphorePermit,
}

/// Removes a cancelled caller's input from the queue if no job has taken it yet.
struct Unqueue<'a, I, R> {
    group: &'a Coalesce<I, R>,
    id: Option<u64>,
}

impl<I, R> Drop for Unqueue<'_, I, R> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.group.lock().1.retain(|w| w.id != id);
        }
    }
}

/// Checks a job's inputs (oldest first) and hands one result per input, in the same order, to
/// the answer function as soon as each is known (results beyond the inputs are ignored; inputs
/// left without one are answered INTERNAL).
pub type Check<I, R> = Arc<dyn Fn(Vec<I>, &mut dyn FnMut(R)) + Send + Sync>;

/// Inputs waiting to be checked together on the [`EdgePool`] (see [`EdgePool::coalesce`]).
pub struct Coalesce<I, R> {
    /// The next id, and the waiting inputs, oldest first.
    queue: Mutex<(u64, VecDeque<Waiting<I, R>>)>,
    max: usize,
    /// Wakes the dispatching task when an input arrives.
    work: Arc<Notify>,
}

impl<I, R> std::fmt::Debug for Coalesce<I, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalesce")
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl<I, R> Coalesce<I, R> {
    /// The queue. Nothing panics while holding the lock (pushes, drains and retains only), so a
    /// poisoned lock still holds a consistent queue and is used as is.
    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, VecDeque<Waiting<I, R>>)> {
        self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `w` and returns its id.
    fn push(&self, mut w: Waiting<I, R>) -> u64 {
        let mut q = self.lock();
        let id = q.0;
        q.0 = id.wrapping_add(1);
        w.id = id;
        q.1.push_back(w);
        drop(q);
        self.work.notify_one();
        id
    }

    /// The oldest waiting inputs, at most `max`.
    fn take(&self) -> Vec<Waiting<I, R>> {
        let mut q = self.lock();
        let n = q.1.len().min(self.max);
        q.1.drain(..n).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tonic::Code;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn full_pool_answers_resource_exhausted() {
        let pool = Arc::new(EdgePool::new(1, 1));
        assert_eq!((pool.workers(), pool.queue()), (1, 1));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        // Job 1 occupies the only thread until told to finish.
        let p = pool.clone();
        let first = tokio::spawn(async move {
            p.run(move || {
                let _ = started_tx.send(());
                rx.recv_timeout(Duration::from_secs(10)).is_ok()
            })
            .await
        });
        tokio::time::timeout(Duration::from_secs(10), started_rx)
            .await
            .expect("first job started")
            .expect("started");
        // Job 2 waits in the queue; job 3 finds the pool full.
        let p = pool.clone();
        let second = tokio::spawn(async move { p.run(|| 2).await });
        for _ in 0..1000 {
            if pool.admitted.available_permits() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(pool.admitted.available_permits(), 0, "the second job is queued");
        let third = pool.run(|| 3).await.expect_err("a full pool refuses");
        assert_eq!(third.code(), Code::ResourceExhausted, "{third:?}");
        assert!(third.message().contains("saturated"), "{}", third.message());
        tx.send(()).expect("release");
        assert!(first.await.expect("join").expect("first ran"));
        assert_eq!(second.await.expect("join").expect("second ran"), 2);
        // Once drained, the pool takes jobs again.
        assert_eq!(pool.run(|| 4).await.expect("runs"), 4);
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_internal_error_and_frees_its_thread() {
        let pool = EdgePool::new(1, 0);
        let e = pool.run(|| -> u8 { panic!("boom") }).await.expect_err("panicked");
        assert_eq!(e.code(), Code::Internal);
        assert_eq!(pool.run(|| 5).await.expect("runs"), 5);
    }

    /// Blocks the pool's only thread until the returned sender is used (or dropped).
    async fn occupy(pool: &Arc<EdgePool>) -> (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let p = pool.clone();
        let h = tokio::spawn(async move {
            p.run(move || {
                let _ = started_tx.send(());
                let _ = rx.recv_timeout(Duration::from_secs(10));
            })
            .await
            .expect("the blocker runs");
        });
        tokio::time::timeout(Duration::from_secs(10), started_rx)
            .await
            .expect("blocker started")
            .expect("started");
        (tx, h)
    }

    /// Waits (bounded) until `n` inputs wait in `group`.
    async fn queued<I, R>(group: &Coalesce<I, R>, n: usize) {
        for _ in 0..2000 {
            if group.lock().1.len() == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("{n} inputs never queued (have {})", group.lock().1.len());
    }

    /// A group doubling its inputs and recording the size of every job.
    /// The sizes of the jobs a test group ran.
    type Sizes = Arc<Mutex<Vec<usize>>>;

    fn doubling(pool: &EdgePool, max: usize) -> (Arc<Coalesce<u32, u32>>, Sizes) {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let s = sizes.clone();
        let group = pool.coalesce(
            max,
            Arc::new(move |v: Vec<u32>, answer: &mut dyn FnMut(u32)| {
                s.lock().expect("sizes").push(v.len());
                for x in v {
                    answer(x * 2);
                }
            }),
        );
        (group, sizes)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiting_inputs_are_checked_together_and_each_gets_its_own_answer() {
        let pool = Arc::new(EdgePool::new(1, 100));
        let (group, sizes) = doubling(&pool, 4);
        // Alone on a free pool: checked at once, in a job of one.
        assert_eq!(pool.run_coalesced(&group, 21).await.expect("runs"), 42);
        assert_eq!(*sizes.lock().expect("sizes"), vec![1]);
        // Ten arrive while the only thread is busy: they wait, then go in jobs of at most 4,
        // oldest first, and each caller gets the answer to its own input.
        let (release, blocker) = occupy(&pool).await;
        let mut calls = Vec::new();
        for i in 0..10u32 {
            let (p, g) = (pool.clone(), group.clone());
            calls.push(tokio::spawn(async move { p.run_coalesced(&g, i).await }));
            queued(&group, i as usize + 1).await;
        }
        release.send(()).expect("release");
        blocker.await.expect("blocker");
        for (i, c) in calls.into_iter().enumerate() {
            assert_eq!(c.await.expect("join").expect("answered"), 2 * i as u32);
        }
        assert_eq!(*sizes.lock().expect("sizes"), vec![1, 4, 4, 2]);
        assert_eq!(pool.admitted.available_permits(), 101, "every admission released");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_waiting_input_holds_an_admission_and_a_cancelled_one_leaves_the_queue() {
        let pool = Arc::new(EdgePool::new(1, 1));
        let (group, sizes) = doubling(&pool, 64);
        let (release, blocker) = occupy(&pool).await;
        // The blocker holds one of the two admissions; one input may wait, a second is refused.
        let (p, g) = (pool.clone(), group.clone());
        let waiting = tokio::spawn(async move { p.run_coalesced(&g, 1).await });
        queued(&group, 1).await;
        let e = pool.run_coalesced(&group, 2).await.expect_err("full");
        assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
        assert_eq!(group.lock().1.len(), 1, "a refused input is not queued");
        // The waiting caller goes away: its input leaves the queue and frees its admission.
        waiting.abort();
        assert!(waiting.await.expect_err("aborted").is_cancelled());
        assert_eq!(group.lock().1.len(), 0);
        assert_eq!(pool.admitted.available_permits(), 1);
        release.send(()).expect("release");
        blocker.await.expect("blocker");
        assert_eq!(pool.run_coalesced(&group, 3).await.expect("runs"), 6);
        assert_eq!(
            *sizes.lock().expect("sizes"),
            vec![1],
            "the cancelled input was never checked"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_check_is_an_internal_error_for_its_job_only() {
        let pool = Arc::new(EdgePool::new(1, 10));
        let group: Arc<Coalesce<u32, u32>> = pool.coalesce(
            64,
            Arc::new(|v: Vec<u32>, answer: &mut dyn FnMut(u32)| {
                assert!(!v.contains(&0), "boom");
                for x in v {
                    answer(x);
                }
            }),
        );
        let (release, blocker) = occupy(&pool).await;
        let mut calls = Vec::new();
        for i in 0..3u32 {
            let (p, g) = (pool.clone(), group.clone());
            calls.push(tokio::spawn(async move { p.run_coalesced(&g, i).await }));
            queued(&group, i as usize + 1).await;
        }
        release.send(()).expect("release");
        blocker.await.expect("blocker");
        for c in calls {
            let e = c.await.expect("join").expect_err("its job panicked");
            assert_eq!(e.code(), Code::Internal, "{e:?}");
        }
        assert_eq!(pool.run_coalesced(&group, 7).await.expect("runs"), 7);
        assert_eq!(pool.admitted.available_permits(), 11);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_caller_is_answered_when_its_result_is_known_not_at_the_end_of_the_job() {
        let pool = Arc::new(EdgePool::new(1, 10));
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let go_rx = Arc::new(Mutex::new(go_rx));
        // Answers its first input at once, the others only when told (a slow payload check).
        let group: Arc<Coalesce<u32, u32>> = pool.coalesce(
            64,
            Arc::new(move |v: Vec<u32>, answer: &mut dyn FnMut(u32)| {
                for (i, x) in v.into_iter().enumerate() {
                    if i > 0 {
                        let _ = go_rx.lock().expect("go").recv_timeout(Duration::from_secs(10));
                    }
                    answer(x + 100);
                }
            }),
        );
        let (release, blocker) = occupy(&pool).await;
        let mut calls = Vec::new();
        for i in 0..2u32 {
            let (p, g) = (pool.clone(), group.clone());
            calls.push(tokio::spawn(async move { p.run_coalesced(&g, i).await }));
            queued(&group, i as usize + 1).await;
        }
        release.send(()).expect("release");
        blocker.await.expect("blocker");
        let second = calls.pop().expect("second");
        let first = calls.pop().expect("first");
        let got = tokio::time::timeout(Duration::from_secs(10), first)
            .await
            .expect("the first caller is answered while its job still runs");
        assert_eq!(got.expect("join").expect("answered"), 100);
        assert!(!second.is_finished(), "the second waits for its own result");
        go_tx.send(()).expect("go");
        assert_eq!(second.await.expect("join").expect("answered"), 101);
    }
}
