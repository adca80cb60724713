//! Progress while a job runs: an indicatif bar on a terminal, plain
//! periodic lines otherwise.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_job::result::JobResult;

use crate::observer::{BatchFinished, CountersSnapshot, JobStarted, RunObserver};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A live bar (stderr is a terminal).
    Bar,
    /// One line every few seconds on stderr.
    Lines,
    /// Nothing (tests, libraries).
    Quiet,
}

/// The bar on screen, if any, so log lines can be written around it.
static ACTIVE_BAR: Mutex<Option<indicatif::ProgressBar>> = Mutex::new(None);

/// Standard error for log lines: while a progress bar is live it is cleared
/// for the line and redrawn after, so lines and bar never garble each
/// other. Hand it to the log subscriber (`with_writer(|| LogWriter)`).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bar = ACTIVE_BAR.lock().map(|b| b.clone()).unwrap_or(None);
        match bar {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf)).map(|()| buf.len()),
            None => std::io::stderr().write_all(buf).map(|()| buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// The job's counters, kept by the scheduler and read by the progress
/// bar and `progress.json`.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub done: AtomicU64,
    pub failed: AtomicU64,
    pub items: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> CountersSnapshot {
        CountersSnapshot {
            done: self.done.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            items: self.items.load(Ordering::Relaxed),
        }
    }

    fn set(&self, s: &CountersSnapshot) {
        self.done.store(s.done, Ordering::Relaxed);
        self.failed.store(s.failed, Ordering::Relaxed);
        self.items.store(s.items, Ordering::Relaxed);
    }
}

/// The progress bar (or periodic lines) as a [`RunObserver`]: drawn from
/// the job's start until its mini-batches are done.
#[derive(Debug)]
pub struct ProgressObserver {
    mode: ProgressMode,
    counters: Arc<Counters>,
    shown: Mutex<Option<Progress>>,
}

impl ProgressObserver {
    /// Progress shown as `mode` says.
    pub fn new(mode: ProgressMode) -> ProgressObserver {
        ProgressObserver { mode, counters: Arc::default(), shown: Mutex::new(None) }
    }

    fn stop(&self) {
        if let Some(p) = self.shown.lock().ok().and_then(|mut s| s.take()) {
            p.finish();
        }
    }
}

impl RunObserver for ProgressObserver {
    fn job_started(&self, s: &JobStarted) {
        let p = Progress::start(self.mode, s.total, self.counters.clone());
        if let Ok(mut shown) = self.shown.lock() {
            *shown = Some(p);
        }
    }

    fn mini_batch_finished(&self, f: &BatchFinished) {
        self.counters.set(&f.counters);
        if f.counters.done >= self.total() {
            self.stop();
        }
    }

    fn job_finished(&self, _: &JobResult) {
        self.stop();
    }
}

impl ProgressObserver {
    fn total(&self) -> u64 {
        self.shown.lock().ok().and_then(|s| s.as_ref().map(|p| p.total)).unwrap_or(u64::MAX)
    }
}

#[derive(Debug)]
pub(crate) struct Progress {
    total: u64,
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    pub(crate) fn start(mode: ProgressMode, total: u64, counters: Arc<Counters>) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = match mode {
            ProgressMode::Quiet => None,
            _ => {
                let stop = stop.clone();
                Some(std::thread::spawn(move || report(mode, total, &counters, &stop)))
            }
        };
        Progress { total, stop, handle }
    }

    pub(crate) fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn report(mode: ProgressMode, total: u64, c: &Counters, stop: &AtomicBool) {
    let start = Instant::now();
    let bar = (mode == ProgressMode::Bar).then(|| {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} mini-batches {msg} ETA {eta}")
                .expect("valid template"),
        );
        if let Ok(mut active) = ACTIVE_BAR.lock() {
            *active = Some(b.clone());
        }
        b
    });
    let every = if bar.is_some() { Duration::from_millis(200) } else { Duration::from_secs(5) };
    let mut last_line = Instant::now();
    loop {
        let finished = stop.load(Ordering::Relaxed);
        let done = c.done.load(Ordering::Relaxed);
        let failed = c.failed.load(Ordering::Relaxed);
        let items = c.items.load(Ordering::Relaxed);
        let rate = items as f64 / start.elapsed().as_secs_f64().max(1e-3);
        match &bar {
            Some(b) => {
                b.set_position(done);
                b.set_message(format!("({failed} failed, {rate:.0} items/s)"));
            }
            None if last_line.elapsed() >= every || finished => {
                if !finished {
                    eprintln!(
                        "progress: {done}/{total} mini-batches done, {failed} failed, {items} items, {rate:.0} items/s"
                    );
                }
                last_line = Instant::now();
            }
            None => {}
        }
        if finished {
            if let Some(b) = bar {
                if let Ok(mut active) = ACTIVE_BAR.lock() {
                    *active = None;
                }
                b.finish_and_clear();
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(100).min(every));
    }
}
