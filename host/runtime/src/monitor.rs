//! What a running job shows of itself: `progress.json` (rewritten every
//! second while it runs, and once at the end) and `resources.csv` (the
//! node's CPU and memory, sampled every second: this process, which holds
//! every instance of the node).

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::jobdir::{JobDir, ProgressFile};
use crate::progress::Counters;

/// One sample of `resources.csv`.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    cpu_ticks: u64,
    rss_kib: u64,
}

fn sample() -> Option<Sample> {
    // utime and stime are fields 14 and 15 of /proc/self/stat, after the
    // command name in parentheses (which may hold spaces).
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let cpu_ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let rss_kib = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())?;
    Some(Sample { cpu_ticks, rss_kib })
}

/// The process's peak resident memory so far (`VmHWM`), in bytes.
pub(crate) fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())?;
    Some(kib * 1024)
}

/// Clock ticks per second of /proc CPU times (USER_HZ: 100 on Linux).
const TICKS_PER_S: f64 = 100.0;

/// The monitor thread of one job.
pub(crate) struct Monitor {
    stop: Arc<(Mutex<bool>, Condvar)>,
    handle: Option<std::thread::JoinHandle<()>>,
}

pub(crate) struct MonitorSetup {
    pub dir: PathBuf,
    pub job: String,
    pub started_at: String,
    pub total: u64,
    pub counters: Arc<Counters>,
    /// Called every tick (flushes guest logs so `jobs logs --follow` sees them).
    pub tick: Box<dyn Fn() + Send>,
}

impl Monitor {
    pub(crate) fn start(s: MonitorSetup) -> Monitor {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("sluice-monitor".into())
            .spawn(move || {
                let begun = Instant::now();
                let mut csv =
                    std::fs::OpenOptions::new().create(true).append(true).open(JobDir::open(&s.dir).resources_path());
                if let Ok(f) = &mut csv
                    && f.metadata().map(|m| m.len() == 0).unwrap_or(false)
                {
                    let _ = writeln!(f, "time,elapsed_s,cpu_percent,rss_mib");
                }
                let mut last = (Instant::now(), sample().unwrap_or_default());
                write_progress(&s, "running", begun);
                loop {
                    let (lock, cv) = &*flag;
                    let stopped = {
                        let g = lock.lock().expect("monitor lock");
                        let (g, _) = cv.wait_timeout_while(g, Duration::from_secs(1), |stop| !*stop).expect("monitor");
                        *g
                    };
                    (s.tick)();
                    write_progress(&s, "running", begun);
                    if let (Ok(f), Some(now)) = (&mut csv, sample()) {
                        let dt = last.0.elapsed().as_secs_f64().max(1e-3);
                        let cpu = (now.cpu_ticks.saturating_sub(last.1.cpu_ticks)) as f64 / TICKS_PER_S / dt * 100.0;
                        let ts = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
                        let _ = writeln!(
                            f,
                            "{ts},{:.1},{cpu:.0},{:.1}",
                            begun.elapsed().as_secs_f64(),
                            now.rss_kib as f64 / 1024.0
                        );
                        last = (Instant::now(), now);
                    }
                    if stopped {
                        break;
                    }
                }
            })
            .ok();
        Monitor { stop, handle }
    }

    /// Takes a last sample and stops.
    pub(crate) fn stop(mut self) {
        let (lock, cv) = &*self.stop;
        *lock.lock().expect("monitor lock") = true;
        cv.notify_all();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn write_progress(s: &MonitorSetup, status: &str, begun: Instant) {
    let c = &s.counters;
    let p = ProgressFile {
        job: s.job.clone(),
        status: status.to_string(),
        pid: std::process::id(),
        started_at: s.started_at.clone(),
        updated_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        elapsed_s: begun.elapsed().as_secs_f64(),
        mini_batches_total: s.total,
        mini_batches_done: c.done.load(Ordering::Relaxed),
        mini_batches_failed: c.failed.load(Ordering::Relaxed),
        items_done: c.items.load(Ordering::Relaxed),
    };
    // Best effort: a missed second is rewritten the next.
    let _ = JobDir::open(&s.dir).write_progress(&p);
}
