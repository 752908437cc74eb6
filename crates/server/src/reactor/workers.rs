//! The worker pool: CPU-heavy requests leave the event loop (half-sync/half-async).
//!
//! The loop hands a heavy request's body to a bounded job queue; a worker runs
//! it through the same request path ([`Job::run`]) and sends the response back on
//! a channel, then wakes the loop with the `mio::Waker`. The queue is bounded:
//! when it is full, [`WorkerPool::submit`] gives the job back and the loop stops
//! decoding that connection until a worker frees a slot (backpressure).

use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use log::{debug, warn};
use mio::Waker;

use reactor_rpc_core::session::{Finished, Job};
use reactor_rpc_core::Service;

/// Jobs that may wait in the queue, per worker.
pub const QUEUE_PER_WORKER: usize = 16;

/// A heavy request on its way to a worker, with the connection it is for.
pub struct Task {
    /// The connection's slab key and unique id (a key can be reused; the id cannot).
    pub key: usize,
    pub conn_id: u64,
    pub peer: SocketAddr,
    pub job: Job<Vec<u8>>,
}

/// A worker's answer: the response, and the session state the job took.
pub struct Done {
    pub key: usize,
    pub conn_id: u64,
    pub finished: Finished,
}

pub struct WorkerPool {
    jobs: Option<SyncSender<Task>>,
    done: Receiver<Done>,
    threads: Vec<JoinHandle<()>>,
}

impl WorkerPool {
    /// Starts `n` workers that run jobs on `service` and wake the loop through `waker`.
    pub fn start(
        n: usize,
        service: Arc<Service>,
        waker: Arc<Waker>,
    ) -> std::io::Result<WorkerPool> {
        let (jobs, queue) = mpsc::sync_channel::<Task>(n * QUEUE_PER_WORKER);
        let (done_tx, done) = mpsc::channel();
        let queue = Arc::new(Mutex::new(queue));
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let (queue, done_tx, service, waker) = (
                queue.clone(),
                done_tx.clone(),
                service.clone(),
                waker.clone(),
            );
            let thread = std::thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || work(&queue, &done_tx, &service, &waker))?;
            threads.push(thread);
        }
        Ok(WorkerPool {
            jobs: Some(jobs),
            done,
            threads,
        })
    }

    /// Queues a job, or gives it back when the queue is full.
    pub fn submit(&self, job: Task, service: &Service) -> Result<(), Task> {
        let Some(jobs) = &self.jobs else {
            return Err(job);
        };
        service.stats().job_queued();
        match jobs.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => {
                service.stats().job_not_queued();
                Err(job)
            }
        }
    }

    /// The next finished job, if any.
    pub fn try_done(&self) -> Option<Done> {
        self.done.try_recv().ok()
    }

    /// Lets the workers finish the queued jobs, then joins them.
    pub fn stop(mut self) {
        self.jobs = None;
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                warn!("a worker thread panicked");
            }
        }
    }
}

/// Niceness of worker threads: the lowest, so the event loop wins the CPU.
const WORKER_NICE: libc::c_int = 19;

/// Puts this worker thread below the event loop in the scheduler's eyes.
///
/// A busy pool must not delay cheap requests by a scheduler time slice. Nice
/// 19 keeps ping p99 under fib load within 2x of idle on 2 cores (nice 10:
/// 3.25x; BENCHMARKS.md). `SCHED_IDLE` did better (1.12x) but starves: while
/// other work saturates the host, heavy requests would wait indefinitely, so
/// it is not used. Lowering one's own priority needs no privilege.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() } as libc::id_t;
        // SAFETY: setpriority on this thread's own id; on Linux niceness is per thread.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, WORKER_NICE) } != 0 {
            debug!(
                "cannot lower worker priority: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

fn work(
    queue: &Mutex<Receiver<Task>>,
    done: &mpsc::Sender<Done>,
    service: &Service,
    waker: &Waker,
) {
    lower_priority();
    loop {
        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else { return }; // the loop hung up: shutting down
        service.stats().job_started();
        let Task {
            key,
            conn_id,
            peer,
            job,
        } = job;
        let finished = job.run(service, &peer);
        service.stats().job_finished();
        let finished = Done {
            key,
            conn_id,
            finished,
        };
        if done.send(finished).is_err() {
            return;
        }
        if let Err(e) = waker.wake() {
            debug!("cannot wake the event loop: {e}");
        }
    }
}
