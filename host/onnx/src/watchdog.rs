//! Deadlines for model runs: one background thread per process stops runs that pass their deadline.
//!
//! A run with a deadline registers its `RunOptions` here; the thread (started on first use) sleeps on a
//! condition variable until the earliest deadline and then calls `terminate()` on that run's options,
//! which makes ONNX Runtime abandon the run with an error. One thread serves every run, so a deadline
//! costs an entry in a map, not a thread.
//!
//! Limits: ONNX Runtime checks the terminate flag between graph nodes, so a single long kernel (one
//! huge MatMul) finishes before the run stops; the run returns shortly after the deadline, not at it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use ort::session::RunOptions;

use crate::error::OnnxError;

/// A run's options and whether the watchdog stopped it.
pub(crate) struct Armed {
    pub(crate) options: RunOptions,
    fired: AtomicBool,
}

impl std::fmt::Debug for Armed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Armed").field("fired", &self.fired()).finish_non_exhaustive()
    }
}

impl Armed {
    pub(crate) fn new(options: RunOptions) -> Arc<Armed> {
        Arc::new(Armed { options, fired: AtomicBool::new(false) })
    }

    /// Whether the watchdog told this run to terminate.
    pub(crate) fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

#[derive(Default)]
struct Entries {
    next_id: u64,
    /// Keyed by (deadline, id) so the first entry is the earliest deadline.
    by_deadline: BTreeMap<(Instant, u64), Arc<Armed>>,
}

struct Shared {
    entries: Mutex<Entries>,
    wake: Condvar,
}

static SHARED: Shared =
    Shared { entries: Mutex::new(Entries { next_id: 0, by_deadline: BTreeMap::new() }), wake: Condvar::new() };
static STARTED: OnceLock<Result<(), String>> = OnceLock::new();

fn lock() -> MutexGuard<'static, Entries> {
    SHARED.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// While alive, the run is watched; dropping it (after the run) takes the entry out.
#[derive(Debug)]
pub(crate) struct Watch {
    key: (Instant, u64),
}

impl Drop for Watch {
    fn drop(&mut self) {
        lock().by_deadline.remove(&self.key);
    }
}

/// Watches `armed` until the returned [`Watch`] is dropped, terminating it at `deadline`.
pub(crate) fn watch(armed: &Arc<Armed>, deadline: Instant) -> Result<Watch, OnnxError> {
    STARTED
        .get_or_init(|| {
            std::thread::Builder::new()
                .name("sluice-onnx-watchdog".to_owned())
                .spawn(run)
                .map(|_| ())
                .map_err(|e| format!("cannot start the ONNX deadline thread: {e}"))
        })
        .clone()
        .map_err(OnnxError::Runtime)?;
    let mut entries = lock();
    let key = (deadline, entries.next_id);
    entries.next_id += 1;
    let earliest = entries.by_deadline.first_key_value().is_none_or(|(first, _)| key < *first);
    entries.by_deadline.insert(key, Arc::clone(armed));
    drop(entries);
    if earliest {
        SHARED.wake.notify_one();
    }
    Ok(Watch { key })
}

/// The watchdog thread: terminate whatever is due, then sleep until the next deadline or a new entry.
fn run() {
    let mut entries = lock();
    loop {
        let now = Instant::now();
        while let Some(entry) = entries.by_deadline.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let armed = entry.remove();
            armed.fired.store(true, Ordering::SeqCst);
            if let Err(e) = armed.options.terminate() {
                tracing::warn!(error = %e, "could not terminate an ONNX run past its deadline");
            }
        }
        entries = match entries.by_deadline.first_key_value() {
            Some(((deadline, _), _)) => {
                let wait = deadline.saturating_duration_since(now);
                SHARED.wake.wait_timeout(entries, wait).unwrap_or_else(|poisoned| poisoned.into_inner()).0
            }
            None => SHARED.wake.wait(entries).unwrap_or_else(|poisoned| poisoned.into_inner()),
        };
    }
}
