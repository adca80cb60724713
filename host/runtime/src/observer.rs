//! What a running job tells the code that embeds it ([`RunObserver`]) and
//! how that code stops it ([`CancelToken`]).
//!
//! Observers are called on the worker threads, between mini-batches, never
//! while the job's own lock is held: they must be quick (count, send on a
//! channel) and must not block. The progress bar, `progress.json` and the
//! job registry are observers too.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_job::result::JobResult;

/// The job is about to run its mini-batches.
#[derive(Debug, Clone)]
pub struct JobStarted {
    /// The job's name.
    pub job: String,
    /// The job directory.
    pub job_dir: std::path::PathBuf,
    /// Mini-batches in the plan.
    pub total: u64,
    /// Mini-batches an earlier run committed (not run again).
    pub resumed: u64,
}

/// A try of a mini-batch begins.
#[derive(Debug, Clone)]
pub struct BatchStarted {
    /// Position in input order.
    pub index: usize,
    /// Its stable id.
    pub id: String,
    /// The try number, from 1.
    pub attempt: u32,
}

/// How a mini-batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOutcome {
    /// It ran; its item errors (if any) are counted in `failed_items`.
    Succeeded,
    /// It failed for good (all its tries).
    Failed,
    /// An earlier run committed it.
    Resumed,
}

/// A mini-batch has its final outcome.
#[derive(Debug, Clone)]
pub struct BatchFinished {
    /// Position in input order.
    pub index: usize,
    /// Its stable id.
    pub id: String,
    /// Succeeded, failed or resumed.
    pub outcome: BatchOutcome,
    /// Tries it took (0 when resumed).
    pub tries: u32,
    /// Items it held.
    pub items: u64,
    /// Items that failed (all of them when the mini-batch failed).
    pub failed_items: u64,
    /// Output rows it produced.
    pub rows: u64,
    /// Why it failed (reason code: message), when it failed.
    pub failure: Option<String>,
    /// Counters of the whole job after this mini-batch.
    pub counters: CountersSnapshot,
}

/// The job's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    /// Mini-batches with a final outcome (resumed ones included).
    pub done: u64,
    /// Of those, failed.
    pub failed: u64,
    /// Items in the mini-batches done.
    pub items: u64,
}

/// Told what a running job does. Every method has an empty default.
pub trait RunObserver: Send + Sync {
    /// Before the first mini-batch runs.
    fn job_started(&self, _started: &JobStarted) {}
    /// A try of a mini-batch begins.
    fn mini_batch_started(&self, _started: &BatchStarted) {}
    /// A mini-batch has its final outcome.
    fn mini_batch_finished(&self, _finished: &BatchFinished) {}
    /// The job was asked to stop (cancel, a crossed threshold, a fault).
    fn job_stopping(&self, _why: &str) {}
    /// The job directory is written; `result` is what `job_result.json` says.
    fn job_finished(&self, _result: &JobResult) {}
}

/// An observer that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl RunObserver for NoObserver {}

/// Several observers, told in order.
#[derive(Default, Clone)]
pub struct Observers(pub Vec<Arc<dyn RunObserver>>);

impl std::fmt::Debug for Observers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Observers({})", self.0.len())
    }
}

impl RunObserver for Observers {
    fn job_started(&self, s: &JobStarted) {
        self.0.iter().for_each(|o| o.job_started(s));
    }
    fn mini_batch_started(&self, s: &BatchStarted) {
        self.0.iter().for_each(|o| o.mini_batch_started(s));
    }
    fn mini_batch_finished(&self, f: &BatchFinished) {
        self.0.iter().for_each(|o| o.mini_batch_finished(f));
    }
    fn job_stopping(&self, why: &str) {
        self.0.iter().for_each(|o| o.job_stopping(why));
    }
    fn job_finished(&self, r: &JobResult) {
        self.0.iter().for_each(|o| o.job_finished(r));
    }
}

/// Stops a running job gracefully: no new mini-batches start, the ones in
/// flight get [`CancelToken::grace`] to finish (what finishes is
/// committed), then they are abandoned (their instances are interrupted
/// and nothing of them is kept). The job ends `canceled`; `sluice resume`
/// runs the rest. Cheap to clone; every clone cancels the same job.
#[derive(Clone)]
pub struct CancelToken {
    inner: Arc<CancelInner>,
}

struct CancelInner {
    why: Mutex<Option<String>>,
    canceled: AtomicBool,
    /// Set once the grace period is over: in-flight work is abandoned.
    abandon: Arc<AtomicBool>,
    grace: Duration,
}

impl std::fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelToken")
            .field("canceled", &self.is_canceled())
            .field("grace", &self.inner.grace)
            .finish_non_exhaustive()
    }
}

impl Default for CancelToken {
    fn default() -> Self {
        CancelToken::new(Duration::from_secs(10))
    }
}

impl CancelToken {
    /// A token whose in-flight mini-batches get `grace` after a cancel.
    pub fn new(grace: Duration) -> CancelToken {
        CancelToken {
            inner: Arc::new(CancelInner {
                why: Mutex::new(None),
                canceled: AtomicBool::new(false),
                abandon: Arc::new(AtomicBool::new(false)),
                grace,
            }),
        }
    }

    /// Asks the job to stop; `why` is the reason `job_result.json` gives
    /// (the first one wins). Safe from any thread; a signal handler may
    /// call it.
    pub fn cancel(&self, why: impl Into<String>) {
        let mut w = self.inner.why.lock().unwrap_or_else(|p| p.into_inner());
        if w.is_none() {
            *w = Some(why.into());
        }
        self.inner.canceled.store(true, Ordering::Release);
    }

    /// Whether [`CancelToken::cancel`] was called.
    pub fn is_canceled(&self) -> bool {
        self.inner.canceled.load(Ordering::Acquire)
    }

    /// The reason given to the first cancel.
    pub fn reason(&self) -> Option<String> {
        self.inner.why.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How long in-flight mini-batches may go on after a cancel.
    pub fn grace(&self) -> Duration {
        self.inner.grace
    }

    /// Whether in-flight work is to be abandoned now.
    pub(crate) fn abandoned(&self) -> bool {
        self.inner.abandon.load(Ordering::Acquire)
    }

    /// The flag [`CancelToken::abandon`] sets, for the engine to interrupt
    /// the calls in flight.
    pub(crate) fn abandon_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.inner.abandon)
    }

    /// The grace period is over: abandon what is in flight.
    pub(crate) fn abandon(&self) {
        self.inner.abandon.store(true, Ordering::Release);
    }
}

/// The job registry as an observer: a job is listed (`sluice jobs list`)
/// when it starts running.
impl RunObserver for crate::jobs::JobIndex {
    fn job_started(&self, s: &JobStarted) {
        if let Err(e) = self.register(&s.job_dir) {
            tracing::warn!("cannot list the job in the job registry: {e}");
        }
    }
}
