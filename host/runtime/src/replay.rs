//! `sluice replay`: one mini-batch of a job run again, alone, with the
//! job's limits and one try, in a scratch directory, with everything it
//! produced kept for printing: the debugging loop.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sluice_io::{OutputStore, PartRef};
use sluice_job::JobSpec;
use sluice_job::spec::{OutputFormat, OutputSpec};

use crate::jobdir::{BatchRow, BatchRowStatus, ErrorLine, JobDir};
use crate::{JobResult, RunError, RunOptions};

/// What one replayed mini-batch did.
#[derive(Debug)]
pub struct Replay {
    /// The result of the one-mini-batch run (in its scratch directory).
    pub result: JobResult,
    /// The rows it returned, as CSV with a header (empty when none).
    pub rows_csv: Vec<u8>,
    /// `errors.jsonl` lines: its item errors, or its failure.
    pub errors: Vec<ErrorLine>,
    /// The guest's log lines.
    pub logs: Vec<String>,
    /// The `processed_mini_batches.csv` row of the replayed mini-batch.
    pub record: Option<BatchRow>,
}

/// Keeps staged parts in memory.
#[derive(Default)]
struct Capture {
    parts: Mutex<HashMap<usize, Vec<u8>>>,
    tries: Mutex<HashMap<(usize, String), Vec<u8>>>,
    assembled: Arc<Mutex<Vec<u8>>>,
}

impl OutputStore for Capture {
    fn stage(&self, index: usize, part: &[u8]) -> std::io::Result<()> {
        self.parts.lock().expect("capture").insert(index, part.to_vec());
        Ok(())
    }

    fn stage_try(&self, index: usize, tag: &str, part: &[u8]) -> std::io::Result<()> {
        self.tries.lock().expect("capture").insert((index, tag.to_string()), part.to_vec());
        Ok(())
    }

    fn promote(&self, index: usize, tag: &str) -> std::io::Result<()> {
        let part = self.tries.lock().expect("capture").remove(&(index, tag.to_string()));
        let part = part.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, format!("no try {tag}")))?;
        self.parts.lock().expect("capture").insert(index, part);
        Ok(())
    }

    fn discard_tries(&self, _keep: &[PartRef<'_>]) -> std::io::Result<()> {
        self.tries.lock().expect("capture").clear();
        Ok(())
    }

    fn has_part(&self, part: PartRef<'_>) -> bool {
        self.parts.lock().expect("capture").contains_key(&part.index)
    }

    fn discard_parts(&self) -> std::io::Result<()> {
        self.parts.lock().expect("capture").clear();
        Ok(())
    }

    fn assemble(&self, which: &[PartRef<'_>], header: &[u8]) -> std::io::Result<PathBuf> {
        let parts = self.parts.lock().expect("capture");
        let mut out = header.to_vec();
        for p in which {
            out.extend_from_slice(parts.get(&p.index).map_or(&[][..], Vec::as_slice));
        }
        *self.assembled.lock().expect("capture") = out;
        Ok(PathBuf::from("(replay)"))
    }
}

/// Runs mini-batch `id` (or a unique prefix of it) of the job `spec`
/// describes, once, and collects what it did.
pub fn replay(spec: &JobSpec, id: &str, cache_dir: Option<PathBuf>) -> Result<Replay, RunError> {
    let scratch = tempfile::tempdir().map_err(|source| RunError::JobDir { path: std::env::temp_dir(), source })?;
    let mut spec = spec.clone();
    spec.max_retries = 0;
    spec.max_concurrency = 1;
    spec.error_threshold = -1;
    spec.mini_batch_error_threshold = -1;
    spec.allowed_failed_percent = 100;
    // Rows are shown as CSV whatever the job writes (the output format is
    // not part of a mini-batch's id).
    spec.append_row_to = Some(OutputSpec { path: scratch.path().join("rows.csv").into(), format: OutputFormat::Csv });
    let capture = Capture::default();
    let assembled = capture.assembled.clone();
    let opts = RunOptions { cache_dir, ..RunOptions::new(scratch.path().join("job")) };
    let mut prepared = crate::prepare(&spec, &opts, sluice_io::open_input(&spec.input)?, Some(Box::new(capture)))?;
    prepared.only(id)?;
    let result = prepared.run(crate::Backends::default(), &crate::NoObserver, &crate::CancelToken::default())?;
    let dir = JobDir::open(&opts.job_dir);
    let unreadable = |e: crate::jobdir::JobDirError| RunError::JobDir { path: e.path, source: e.source };
    let errors = dir.read_errors().map_err(unreadable)?;
    let mut logs = Vec::new();
    for f in dir.log_files() {
        let text = std::fs::read_to_string(&f).map_err(|source| RunError::JobDir { path: f.clone(), source })?;
        logs.extend(text.lines().map(str::to_string));
    }
    let record = dir
        .read_batches()
        .map_err(unreadable)?
        .unwrap_or_default()
        .into_iter()
        .find(|r| r.status != BatchRowStatus::NotRun);
    let rows_csv = std::mem::take(&mut *assembled.lock().expect("capture"));
    Ok(Replay { result, rows_csv, errors, logs, record })
}
