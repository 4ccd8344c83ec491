//! The edge pool: CPU-heavy request checks (signature verification, payload parsing and schema
//! checks) run here, on at most `workers` blocking threads at a time, never on the async runtime's
//! workers, so that reads (GetCheckpoint, GetEntry, proofs) stay answered while appends arrive.
//!
//! At most `workers + queue` jobs are admitted at once (running or waiting for a thread); one more
//! is refused at once with RESOURCE_EXHAUSTED, before any work is done on it.

use std::sync::Arc;
use tokio::sync::Semaphore;
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
        let admit = self.admitted.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "the node's edge checks are saturated ({} running, {} waiting); retry later with the same request id",
                self.workers, self.queue
            ))
        })?;
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
}
