//! What a finished job leaves in its directory: `job_result.json` and
//! `processed_mini_batches.csv`.

use std::path::Path;
use std::time::Duration;

use sluice_job::plan::MiniBatchPlan;
use sluice_job::result::{BatchCounts, ErrorEntry, ItemCounts, JobResult, JobStatus, Timings};
use sluice_job::thresholds::{Crossed, Tally, Thresholds};
use sluice_job::{Failure, InputItem, JobSpec, Plan, ReasonCode};

use crate::jobdir::{BatchRow, BatchRowStatus, ErrorLine, JobDir, JobDirError};

/// The output columns fixed by the first mini-batch that had rows, kept
/// in the commit log so a resumed job writes the same header and checks
/// the same schema.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct SavedSchema {
    pub columns: Vec<(String, String)>,
    pub header: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum BatchStatus {
    Succeeded,
    Failed,
}

/// The outcome of one mini-batch after its last try (also its commit-log
/// entry: its `id`, `index` and `rows` are the log's `EntryHead`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct BatchRecord {
    pub id: String,
    pub index: usize,
    pub item_count: usize,
    pub item_names: Vec<String>,
    /// Tabular mini-batches: what to call each item (row) in reports;
    /// resolved into `error_labels` when the record is finished.
    #[serde(skip)]
    pub row_labels: Option<RowLabels>,
    pub tries: u32,
    pub status: BatchStatus,
    /// The failure of the last try (failed), or of an earlier try that a
    /// retry recovered from (succeeded).
    pub failure: Option<Failure>,
    /// Item errors: (index in the mini-batch, code, message).
    pub item_errors: Vec<(usize, ReasonCode, String)>,
    /// What to call each item of `item_errors` (its file, or file and row).
    #[serde(default)]
    pub error_labels: Vec<Option<String>>,
    pub rows: u64,
    /// Cluster jobs: the try whose part was kept (the commit log's
    /// `EntryHead::part`); a store that promotes by reference reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<String>,
    pub instance: Option<usize>,
    /// Cluster jobs: the nodes that ran its tries, in the order they
    /// first reported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    #[serde(with = "secs")]
    pub duration: Duration,
    /// The files its kept try wrote into the job's output folders (staged
    /// until the job ends; see `folders`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub folder_files: Vec<crate::folders::FolderFile>,
    /// Set on a record loaded from the journal of an earlier run.
    #[serde(skip)]
    pub resumed: bool,
}

mod secs {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let f: f64 = serde::Deserialize::deserialize(d)?;
        Ok(Duration::from_secs_f64(f.max(0.0)))
    }
}

impl BatchRecord {
    pub(crate) fn new(mb: &MiniBatchPlan, items: &[InputItem]) -> BatchRecord {
        BatchRecord {
            id: mb.id.clone(),
            index: mb.index,
            item_count: items.len(),
            item_names: items.iter().map(|i| i.name.clone()).collect(),
            row_labels: None,
            tries: 0,
            status: BatchStatus::Failed,
            failure: None,
            item_errors: Vec::new(),
            error_labels: Vec::new(),
            rows: 0,
            part: None,
            instance: None,
            nodes: Vec::new(),
            duration: Duration::ZERO,
            folder_files: Vec::new(),
            resumed: false,
        }
    }

    pub(crate) fn finish_ok(
        &mut self,
        item_errors: Vec<(usize, ReasonCode, String)>,
        rows: u64,
        recovered: Option<Failure>,
        d: Duration,
    ) {
        self.status = BatchStatus::Succeeded;
        self.error_labels = item_errors.iter().map(|e| self.item_label(e.0)).collect();
        // Resolved: a finished record, kept until the job ends, must not
        // hold every row's origin (a long job would keep them all).
        self.row_labels = None;
        self.item_errors = item_errors;
        self.rows = rows;
        self.failure = recovered;
        self.duration = d;
    }

    pub(crate) fn finish_failed(&mut self, f: Failure, d: Duration) {
        self.status = BatchStatus::Failed;
        self.row_labels = None;
        self.failure = Some(f);
        self.duration = d;
    }

    /// Errors worth listing: the mini-batch failure, else its item errors.
    pub(crate) fn error_entries(&self) -> Vec<ErrorEntry> {
        let entry = |item: Option<String>, code, message: &str| ErrorEntry {
            mini_batch: self.id.clone(),
            mini_batch_index: self.index,
            item,
            code,
            message: message.to_string(),
        };
        match (&self.status, &self.failure) {
            (BatchStatus::Failed, Some(f)) => vec![entry(Some(inputs_label(&self.item_names)), f.code, &f.message)],
            _ => self
                .item_errors
                .iter()
                .zip(self.error_labels.iter().chain(std::iter::repeat(&None)))
                .map(|((_, code, m), label)| entry(label.clone(), *code, m))
                .collect(),
        }
    }
}

impl BatchRecord {
    fn item_label(&self, i: usize) -> Option<String> {
        match &self.row_labels {
            Some(l) => l.label(i),
            None => self.item_names.get(i).cloned(),
        }
    }
}

/// Names of the rows of a tabular mini-batch: items `0..origins.len()`
/// are the rows the scorer saw (shared with the engine's copy of the
/// mini-batch), the rest rows the host could not read (`file.csv row 12`,
/// or the file's name for a file whose rows were never counted).
#[derive(Debug, Clone, Default)]
pub(crate) struct RowLabels {
    pub origins: std::sync::Arc<sluice_job::RowOrigins>,
    pub unread: Vec<String>,
}

impl RowLabels {
    fn label(&self, i: usize) -> Option<String> {
        if i < self.origins.len() {
            Some(self.origins.label(i))
        } else {
            self.unread.get(i - self.origins.len()).cloned()
        }
    }
}

/// `a.csv`, or `a.csv..z.csv` for a mini-batch of several items.
fn inputs_label<S: AsRef<str>>(names: &[S]) -> String {
    match names {
        [] => String::new(),
        [one] => one.as_ref().to_string(),
        [first, .., last] => format!("{}..{}", first.as_ref(), last.as_ref()),
    }
}

pub(crate) struct Assemble<'a> {
    pub spec: &'a JobSpec,
    pub plan: &'a Plan,
    pub records: &'a [Option<BatchRecord>],
    pub tally: Tally,
    pub crossed: Option<(Crossed, String)>,
    pub thresholds: Thresholds,
    pub first_errors: Vec<ErrorEntry>,
    pub output: Option<&'a Path>,
    pub output_rows: u64,
    pub job_dir: &'a Path,
    pub started_at: String,
    pub timings: Timings,
}

pub(crate) fn assemble(a: Assemble<'_>) -> JobResult {
    let mut mbs = BatchCounts { total: a.plan.mini_batches.len() as u64, ..Default::default() };
    let mut items = ItemCounts::default();
    for (r, mb) in a.records.iter().zip(&a.plan.mini_batches) {
        match r {
            None => {
                mbs.not_run += 1;
                items.not_run += mb.rows.unwrap_or(mb.items.len() as u64);
            }
            Some(r) => {
                if r.resumed {
                    mbs.resumed += 1;
                }
                mbs.tries += r.tries as u64;
                if r.tries > 1 {
                    mbs.retried += 1;
                }
                match r.status {
                    BatchStatus::Succeeded => {
                        mbs.succeeded += 1;
                        items.failed += r.item_errors.len() as u64;
                        items.succeeded += (r.item_count - r.item_errors.len()) as u64;
                    }
                    BatchStatus::Failed => {
                        mbs.failed += 1;
                        items.failed += r.item_count as u64;
                    }
                }
            }
        }
    }
    // Tabular items are rows, known once read: total what was counted.
    items.total = items.succeeded + items.failed + items.not_run;
    let (status, reason) = match &a.crossed {
        Some((_, why)) => (JobStatus::Failed, Some(why.clone())),
        None if mbs.failed > 0 || items.failed > 0 => (JobStatus::CompletedWithErrors, None),
        None => (JobStatus::Completed, None),
    };
    JobResult {
        job: a.spec.name.clone(),
        status,
        reason,
        crossed: a.crossed.map(|c| c.0),
        thresholds: a.thresholds,
        tally: a.tally,
        mini_batches: mbs,
        items,
        output: a.output.map(|p| p.display().to_string()),
        output_rows: a.output_rows,
        job_dir: a.job_dir.display().to_string(),
        processed_mini_batches: JobDir::open(a.job_dir).batches_path().display().to_string(),
        errors: JobDir::open(a.job_dir).errors_path().display().to_string(),
        logs: JobDir::open(a.job_dir).logs_dir().display().to_string(),
        started_at: a.started_at,
        timings: a.timings,
        first_errors: a.first_errors,
        notes: a.spec.notes.clone(),
    }
}

/// The invariant checked at the finish: a job whose mini-batches did not
/// all run is never completed. Without a threshold or fault to explain it
/// (a worker that died, a bug), it fails and says so; `expected` is set
/// by `replay`, which runs one mini-batch on purpose.
pub(crate) fn never_complete_with_unrun(result: &mut JobResult, expected: bool) {
    let m = &result.mini_batches;
    if !matches!(result.status, JobStatus::Failed | JobStatus::Canceled) && m.not_run > 0 && !expected {
        let why = format!(
            "{} of {} mini-batches did not run although no threshold stopped the job; the job is not \
             complete (`sluice resume` runs the rest)",
            m.not_run, m.total
        );
        tracing::error!("{why}");
        result.status = JobStatus::Failed;
        result.reason = Some(why);
    }
}

/// Writes what a finished job leaves: `job_result.json`,
/// `processed_mini_batches.csv` and `errors.jsonl`.
pub(crate) fn write_job_dir(
    dir: &JobDir,
    result: &JobResult,
    plan: &Plan,
    records: &[Option<BatchRecord>],
) -> Result<(), JobDirError> {
    dir.write_result(result)?;
    let rows: Vec<BatchRow> = plan
        .mini_batches
        .iter()
        .zip(records)
        .map(|(mb, r)| {
            let items = plan.items_of(mb);
            let names: Vec<&str> = items.iter().map(|i| i.name.as_str()).collect();
            let base = BatchRow {
                id: mb.id.clone(),
                index: mb.index,
                inputs: inputs_label(&names),
                items: r.as_ref().map_or(mb.rows.unwrap_or(items.len() as u64), |r| r.item_count as u64),
                item_errors: r.as_ref().map_or(0, |r| r.item_errors.len() as u64),
                tries: None,
                status: BatchRowStatus::NotRun,
                reason: String::new(),
                message: String::new(),
                instance: None,
                duration_s: None,
            };
            match r {
                None => base,
                Some(r) => BatchRow {
                    tries: Some(r.tries),
                    status: if r.status == BatchStatus::Succeeded {
                        BatchRowStatus::Succeeded
                    } else {
                        BatchRowStatus::Failed
                    },
                    reason: r.failure.as_ref().map(|f| f.code.to_string()).unwrap_or_default(),
                    message: r.failure.as_ref().map(|f| f.message.clone()).unwrap_or_default(),
                    instance: r.instance,
                    duration_s: Some(r.duration.as_secs_f64()),
                    ..base
                },
            }
        })
        .collect();
    dir.write_batches(&rows)?;
    dir.write_errors(&error_lines(plan, records))
}

/// One line per failed item: its input (file, and row for tabular input),
/// the reason code and message, the guest's panic text when there was
/// one, and the mini-batch it was in. A failed mini-batch contributes a
/// line per input it held (for tabular input: per file, with its rows).
fn error_lines(plan: &Plan, records: &[Option<BatchRecord>]) -> Vec<ErrorLine> {
    let mut out = Vec::new();
    let mut line = |mb: &BatchRecord, input: Option<String>, code: ReasonCode, message: &str| {
        let (file, row) = match input.as_deref().and_then(|l| l.rsplit_once(" row ")) {
            Some((f, r)) => (Some(f.to_string()), r.parse::<u64>().ok()),
            None => (input.clone(), None),
        };
        let panic = message.split_once("panicked: ").map(|(_, p)| p.to_string());
        out.push(ErrorLine {
            code,
            input: file,
            message: message.to_string(),
            mini_batch: mb.id.clone(),
            mini_batch_index: mb.index,
            panic,
            row,
            tries: mb.tries,
        });
    };
    for r in records.iter().flatten() {
        match (&r.status, &r.failure) {
            (BatchStatus::Failed, Some(f)) => {
                let mb = &plan.mini_batches[r.index];
                if mb.segments.is_empty() {
                    for name in &r.item_names {
                        line(r, Some(name.clone()), f.code, &f.message);
                    }
                } else {
                    for seg in &mb.segments {
                        let name = &plan.items[seg.file].name;
                        let rows = match &seg.rows {
                            sluice_job::plan::RowSpan::All => name.clone(),
                            sluice_job::plan::RowSpan::Range { start, end, .. } => {
                                format!("{name} rows {start}..{end}")
                            }
                            sluice_job::plan::RowSpan::Rows(v) => format!("{name} ({} rows)", v.len()),
                        };
                        line(r, Some(rows), f.code, &f.message);
                    }
                }
            }
            _ => {
                for ((_, code, m), label) in
                    r.item_errors.iter().zip(r.error_labels.iter().chain(std::iter::repeat(&None)))
                {
                    line(r, label.clone(), *code, m);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(status: JobStatus, not_run: u64) -> JobResult {
        let mut spec_result: JobResult = serde_json::from_value(serde_json::json!({
            "job": "j", "status": "completed", "reason": null, "crossed": null,
            "thresholds": {"error_threshold": -1, "mini_batch_error_threshold": -1, "allowed_failed_percent": 100},
            "tally": {"failed_items": 0, "failed_mini_batches": 0},
            "mini_batches": {"total": 3, "succeeded": 3 - not_run, "failed": 0, "retried": 0, "tries": 3 - not_run,
                             "not_run": not_run, "resumed": 0},
            "items": {"total": 3, "succeeded": 3 - not_run, "failed": 0, "not_run": not_run},
            "output": null, "output_rows": 0, "job_dir": "d", "processed_mini_batches": "p", "errors": "e",
            "logs": "l", "started_at": "t", "timings": {"plan_s": 0.0, "compile_s": 0.0, "run_s": 0.0, "total_s": 0.0},
            "first_errors": [], "notes": []
        }))
        .unwrap();
        spec_result.status = status;
        spec_result
    }

    #[test]
    fn a_job_with_unrun_mini_batches_is_never_completed() {
        for status in [JobStatus::Completed, JobStatus::CompletedWithErrors] {
            let mut r = result(status, 1);
            never_complete_with_unrun(&mut r, false);
            assert_eq!(r.status, JobStatus::Failed);
            assert!(r.reason.unwrap().starts_with("1 of 3 mini-batches did not run"));
        }
        // All ran; or replay ran one on purpose; or a threshold already
        // failed it (its reason stays).
        let mut r = result(JobStatus::Completed, 0);
        never_complete_with_unrun(&mut r, false);
        assert_eq!(r.status, JobStatus::Completed);
        let mut r = result(JobStatus::Completed, 2);
        never_complete_with_unrun(&mut r, true);
        assert_eq!(r.status, JobStatus::Completed);
        let mut r = result(JobStatus::Failed, 2);
        r.reason = Some("threshold".into());
        never_complete_with_unrun(&mut r, false);
        assert_eq!(r.reason.as_deref(), Some("threshold"));
    }
}
