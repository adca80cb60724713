//! `sluice replay`: one mini-batch of a job run again, alone, with the
//! job's limits and one try, in a scratch directory, with everything it
//! produced kept for printing: the debugging loop.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sluice_io::OutputStore;
use sluice_job::JobSpec;
use sluice_job::spec::{OutputFormat, OutputSpec};

use crate::{JobResult, RunError, RunOptions};

/// What one replayed mini-batch did.
#[derive(Debug)]
pub struct Replay {
    pub result: JobResult,
    /// The rows it returned, as CSV with a header (empty when none).
    pub rows_csv: Vec<u8>,
    /// `errors.jsonl` lines: its item errors, or its failure.
    pub errors: Vec<serde_json::Value>,
    /// The guest's log lines.
    pub logs: Vec<String>,
    /// The `processed_mini_batches.csv` line of the replayed mini-batch:
    /// (header, values).
    pub record: Option<(Vec<String>, Vec<String>)>,
}

/// Keeps staged parts in memory.
#[derive(Default)]
struct Capture {
    parts: Mutex<HashMap<usize, Vec<u8>>>,
    assembled: Arc<Mutex<Vec<u8>>>,
}

impl OutputStore for Capture {
    fn stage(&self, index: usize, part: &[u8]) -> std::io::Result<()> {
        self.parts.lock().expect("capture").insert(index, part.to_vec());
        Ok(())
    }

    fn has_part(&self, index: usize) -> bool {
        self.parts.lock().expect("capture").contains_key(&index)
    }

    fn discard_parts(&self) -> std::io::Result<()> {
        self.parts.lock().expect("capture").clear();
        Ok(())
    }

    fn assemble(&self, indexes: &[usize], header: &[u8]) -> std::io::Result<PathBuf> {
        let parts = self.parts.lock().expect("capture");
        let mut out = header.to_vec();
        for i in indexes {
            out.extend_from_slice(parts.get(i).map_or(&[][..], Vec::as_slice));
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
    spec.append_row_to = Some(OutputSpec { path: scratch.path().join("rows.csv"), format: OutputFormat::Csv });
    let capture = Capture::default();
    let assembled = capture.assembled.clone();
    let opts = RunOptions { cache_dir, ..RunOptions::new(scratch.path().join("job")) };
    let mut prepared = crate::prepare(&spec, &opts, Some(Box::new(capture)))?;
    prepared.only(id)?;
    let result = prepared.run(crate::Backends::default(), &crate::NoObserver, &crate::CancelToken::default())?;
    let dir = &opts.job_dir;
    let errors = std::fs::read_to_string(dir.join("errors.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let mut logs = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir.join("logs")) {
        let mut files: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            logs.extend(std::fs::read_to_string(f).unwrap_or_default().lines().map(str::to_string));
        }
    }
    let record = csv::Reader::from_path(dir.join("processed_mini_batches.csv")).ok().and_then(|mut r| {
        let header: Vec<String> = r.headers().ok()?.iter().map(str::to_string).collect();
        let status = header.iter().position(|h| h == "status")?;
        r.records()
            .flatten()
            .map(|rec| rec.iter().map(str::to_string).collect::<Vec<_>>())
            .find(|rec| rec[status] != "not_run")
            .map(|rec| (header, rec))
    });
    let rows_csv = std::mem::take(&mut *assembled.lock().expect("capture"));
    Ok(Replay { result, rows_csv, errors, logs, record })
}
