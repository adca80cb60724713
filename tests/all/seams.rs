//! The runtime's seams: prepare / run / finish with an observer and a
//! cancel, and the leased work queue (a lost lease is delivered again).

use std::sync::{Arc, Mutex};

use sluice_io::{InProcessQueue, Lease, LeaseLost, WorkQueue};
use sluice_job::result::JobStatus;
use sluice_runtime::{Backends, CancelToken, NoObserver};

use crate::helpers::*;

#[path = "../../examples/embed/main.rs"]
#[allow(dead_code)]
mod embed;

/// A job over `n` small files, one per mini-batch, rows to out.csv.
fn files_job(n: usize) -> Job {
    let mut job = Job::new(FILE_STATS).set("mini_batch_size", "1").output("csv");
    for i in 0..n {
        job = job.file(&format!("f{i:03}.txt"), format!("{}\n", "x".repeat(i + 1)));
    }
    job
}

#[test]
fn cancel_halfway_then_resume_gives_the_uninterrupted_output_byte_for_byte() {
    let whole = files_job(24);
    let r = whole.run();
    assert_eq!(r.status, JobStatus::Completed);
    let expected = std::fs::read(whole.out_path("csv")).unwrap();

    let work = tempfile::tempdir().unwrap();
    let e = embed::embed(FILE_STATS.as_ref(), &whole.input(), work.path(), |o| sluice_runtime::RunOptions {
        cache_dir: Some(cache_dir()),
        compiler: compiler(),
        ..o
    })
    .unwrap();
    assert_eq!(e.canceled.status, JobStatus::Canceled, "{:?}", e.canceled.reason);
    let reason = e.canceled.reason.clone().unwrap();
    assert!(reason.contains("canceled halfway by the embedding program"), "{reason}");
    let m = &e.canceled.mini_batches;
    assert!(m.succeeded >= 12 && m.not_run > 0, "{m:?}");
    assert!(e.events.iter().any(|l| l.starts_with("started 0 try 1")), "{:?}", e.events);
    assert!(e.events.iter().filter(|l| l.starts_with("finished")).count() as u64 >= 12);

    assert_eq!(e.resumed.status, JobStatus::Completed, "{:?}", e.resumed.reason);
    assert_eq!(e.resumed.mini_batches.succeeded, 24);
    assert_eq!(std::fs::read(work.path().join("out.csv")).unwrap(), expected);
}

/// Drops the lease of the first delivery of mini-batch `victim` as soon as
/// it is taken (its worker "died": the queue delivers it again), while the
/// worker still runs it on a copy whose lease is no longer held.
struct LosesOneLease {
    inner: InProcessQueue,
    victim: usize,
    lost: Mutex<bool>,
}

impl WorkQueue for LosesOneLease {
    fn take(&self) -> Option<Lease> {
        let lease = self.inner.take()?;
        let mut lost = self.lost.lock().unwrap();
        if lease.index == self.victim && !*lost {
            *lost = true;
            let copy = Lease::new(lease.index, lease.delivery, lease.token, None);
            drop(lease);
            return Some(copy);
        }
        Some(lease)
    }
    fn held(&self, lease: &Lease) -> bool {
        self.inner.held(lease)
    }
    fn ack(&self, lease: Lease) -> Result<(), LeaseLost> {
        self.inner.ack(lease)
    }
    fn nack(&self, lease: Lease, retry: bool) -> Result<bool, LeaseLost> {
        self.inner.nack(lease, retry)
    }
    fn close(&self) {
        self.inner.close()
    }
}

#[test]
fn a_lost_lease_is_delivered_again_and_the_output_has_each_row_once() {
    let whole = files_job(8);
    whole.run();
    let expected = std::fs::read(whole.out_path("csv")).unwrap();

    let job = files_job(8);
    let prepared = sluice_runtime::prepare_local(&job.spec(), &job.options()).unwrap();
    let queue = Arc::new(LosesOneLease {
        inner: InProcessQueue::of(prepared.todo().to_vec()),
        victim: 3,
        lost: Mutex::new(false),
    });
    let backends = Backends { queue: Some(queue.clone()) };
    let r = prepared.run(backends, &NoObserver, &CancelToken::default()).unwrap();
    assert!(*queue.lost.lock().unwrap(), "the lease was never lost");
    assert_eq!(r.status, JobStatus::Completed, "{:?}", r.reason);
    assert_eq!(r.mini_batches.succeeded, 8);
    assert_eq!(r.output_rows, 8);
    assert_eq!(std::fs::read(job.out_path("csv")).unwrap(), expected);
}

/// Cancels its job once `n` tries have started.
struct CancelAfter {
    cancel: CancelToken,
    n: usize,
    started: Mutex<usize>,
}

impl sluice_runtime::RunObserver for CancelAfter {
    fn mini_batch_started(&self, _: &sluice_runtime::BatchStarted) {
        let mut s = self.started.lock().unwrap();
        *s += 1;
        if *s == self.n {
            self.cancel.cancel("canceled by the test");
        }
    }
}

#[test]
fn a_cancel_interrupts_guests_in_flight_after_the_grace_period() {
    // One guest computes forever, the other sleeps in a host call; their
    // deadline (an hour) and fuel are out of reach: only the cancel's
    // abandon can end their calls.
    let job = Job::new(ADVERSARY)
        .file("loop.txt", "")
        .file("sleep.txt", "")
        .set("mini_batch_size", "1")
        .set("max_concurrency_per_instance", "2")
        .set("limits.fuel", "9000000000000000000")
        .set("retry_settings.timeout", "3600");
    let (spec, opts) = (job.spec(), job.options());
    let r = within(60, "the canceled job", move || {
        let prepared = sluice_runtime::prepare_local(&spec, &opts).unwrap();
        let cancel = CancelToken::new(std::time::Duration::from_millis(300));
        let observer = CancelAfter { cancel: cancel.clone(), n: 2, started: Mutex::new(0) };
        prepared.run(Backends::default(), &observer, &cancel).unwrap()
    });
    assert_eq!(r.status, JobStatus::Canceled, "{:?}", r.reason);
    assert_eq!(r.mini_batches.not_run, 2, "{:?}", r.mini_batches);
    assert!(r.reason.unwrap().contains("canceled by the test"));
}

/// The input from memory: items listed with paths that do not exist, bytes
/// served from a map, every range asked for recorded.
#[derive(Debug, Default)]
struct MemorySource {
    files: std::collections::BTreeMap<String, Vec<u8>>,
    ranges: Mutex<Vec<(String, u64, u64)>>,
}

impl sluice_io::InputSource for MemorySource {
    fn list(
        &self,
        _: &sluice_job::spec::InputSpec,
    ) -> Result<Vec<sluice_job::InputItem>, sluice_io::inputs::InputError> {
        Ok(self
            .files
            .iter()
            .map(|(name, data)| sluice_job::InputItem {
                name: name.clone(),
                path: format!("memory:/{name}").into(),
                size: data.len() as u64,
                modified_ns: 0,
                refused: None,
            })
            .collect())
    }
    fn check(&self, item: &sluice_job::InputItem) -> Result<(), String> {
        if self.files.contains_key(&item.name) { Ok(()) } else { Err("gone".into()) }
    }
    fn read_range(
        &self,
        item: &sluice_job::InputItem,
        range: std::ops::Range<u64>,
    ) -> Result<Box<dyn std::io::Read + Send>, String> {
        self.ranges.lock().unwrap().push((item.name.clone(), range.start, range.end));
        let data = &self.files[&item.name];
        let (lo, hi) = (range.start.min(data.len() as u64) as usize, range.end.min(data.len() as u64) as usize);
        Ok(Box::new(std::io::Cursor::new(data[lo..hi].to_vec())))
    }
}

/// Runs `job` with its input served by a [`MemorySource`] holding its files,
/// after the input folder is deleted: a reader that opened a file itself
/// would fail.
fn run_from_memory(job: &Job) -> (sluice_job::result::JobResult, Arc<MemorySource>) {
    // The spec is checked (its input folder exists) before the folder goes.
    let (spec, opts) = (job.spec(), job.options());
    let mut source = MemorySource::default();
    for e in std::fs::read_dir(job.input()).unwrap() {
        let e = e.unwrap();
        source.files.insert(e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap());
    }
    std::fs::remove_dir_all(job.input()).unwrap();
    let source = Arc::new(source);
    let out = spec.append_row_to.as_ref().unwrap();
    let staged = sluice_runtime::JobDir::open(&opts.job_dir).staged_dir();
    let output = sluice_io::LocalOutput::with_format(out.path.as_local().unwrap(), &staged, out.format).unwrap();
    let prepared = sluice_runtime::prepare(&spec, &opts, source.clone(), Some(Box::new(output))).unwrap();
    let r = prepared.run(Backends::default(), &NoObserver, &CancelToken::default()).unwrap();
    (r, source)
}

#[test]
fn every_input_byte_comes_through_the_input_source() {
    // Tabular: a CSV and a Parquet file in row mini-batches that start
    // inside both (byte ranges of the CSV, row groups of the Parquet file).
    let csv: String = std::iter::once("id\n".to_string()).chain((0..3000).map(|i| format!("{i}\n"))).collect();
    let (pq, _) = ids_parquet(3000..6000, 500);
    let job = Job::tabular(PASSTHROUGH)
        .file("a.csv", &csv)
        .file("b.parquet", &pq)
        .set("mini_batch_size", "700")
        .output("csv");
    let (r, source) = run_from_memory(&job);
    assert_eq!(r.status, JobStatus::Completed, "{:?}", r.reason);
    assert_eq!(r.mini_batches.total, 9);
    let (h, rows) = job.csv_rows();
    let id = h.iter().position(|c| c == "id").unwrap();
    let got: Vec<String> = rows.iter().map(|r| r[id].clone()).collect();
    assert_eq!(got, (0..6000).map(|i| i.to_string()).collect::<Vec<_>>());
    let ranges = source.ranges.lock().unwrap();
    // Workers read from inside both files, not from their starts.
    assert!(ranges.iter().any(|(n, start, _)| n == "a.csv" && *start > 0), "{ranges:?}");
    assert!(ranges.iter().any(|(n, start, end)| n == "b.parquet" && *start > 0 && *end < u64::MAX), "{ranges:?}");

    // File mode: each file read whole through the source.
    let job = files_job(3);
    let (r, source) = run_from_memory(&job);
    assert_eq!(r.status, JobStatus::Completed, "{:?}", r.reason);
    assert_eq!(r.output_rows, 3);
    assert_eq!(source.ranges.lock().unwrap().len(), 3);
}
