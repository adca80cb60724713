//! The job directory: the one owner of its file names and formats. Every
//! writer (the finish, the monitor, the scheduler) and every reader
//! (`jobs show|logs|list`, `resume`, `replay`, the tests) goes through
//! [`JobDir`], so a format is written and parsed in one place, and every
//! whole-file write is atomic (`sluice_job::durable::write_durably`).
//!
//! The files: `job_result.json`, `processed_mini_batches.csv`,
//! `errors.jsonl`, `progress.json`, `resources.csv`, `spec.json`, `logs/`
//! (guest logs, one file per instance), `journal/` (the commit log) and
//! `staged/` (the output's staged parts).

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sluice_job::ReasonCode;
use sluice_job::durable::write_durably;
use sluice_job::result::JobResult;
use sluice_job::spec::SpecSource;

const RESULT: &str = "job_result.json";
const BATCHES: &str = "processed_mini_batches.csv";
const ERRORS: &str = "errors.jsonl";
const PROGRESS: &str = "progress.json";
const RESOURCES: &str = "resources.csv";
const SPEC: &str = "spec.json";
const CLUSTER: &str = "cluster.json";
const LOGS: &str = "logs";
const STAGED: &str = "staged";

/// A file of the job directory that could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct JobDirError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong (unparseable content is `InvalidData`).
    pub source: io::Error,
}

fn err(path: &Path) -> impl FnOnce(io::Error) -> JobDirError + '_ {
    move |source| JobDirError { path: path.to_path_buf(), source }
}

fn invalid(path: &Path, e: impl std::fmt::Display) -> JobDirError {
    JobDirError { path: path.to_path_buf(), source: io::Error::new(io::ErrorKind::InvalidData, e.to_string()) }
}

/// Reads `path`, `None` when it is not there.
fn read_opt(path: &Path) -> Result<Option<Vec<u8>>, JobDirError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err(path)(e)),
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, JobDirError> {
    match read_opt(path)? {
        Some(b) => serde_json::from_slice(&b).map(Some).map_err(|e| invalid(path, e)),
        None => Ok(None),
    }
}

/// One job directory. Opening touches nothing: a reader may look at a
/// directory that holds no job yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobDir {
    path: PathBuf,
}

impl JobDir {
    /// The job directory at `path`.
    pub fn open(path: impl Into<PathBuf>) -> JobDir {
        JobDir { path: path.into() }
    }

    /// Creates the directory (and its parents) if missing.
    pub fn create(&self) -> Result<(), JobDirError> {
        std::fs::create_dir_all(&self.path).map_err(err(&self.path))
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a job has been here: it has a journal, a result or a
    /// progress file.
    pub fn is_job(&self) -> bool {
        self.journal_dir().is_dir() || self.result_path().is_file() || self.progress_path().is_file()
    }

    /// `job_result.json`.
    pub fn result_path(&self) -> PathBuf {
        self.path.join(RESULT)
    }
    /// `processed_mini_batches.csv`.
    pub fn batches_path(&self) -> PathBuf {
        self.path.join(BATCHES)
    }
    /// `errors.jsonl`.
    pub fn errors_path(&self) -> PathBuf {
        self.path.join(ERRORS)
    }
    /// `progress.json`.
    pub fn progress_path(&self) -> PathBuf {
        self.path.join(PROGRESS)
    }
    /// `resources.csv`, appended to by the monitor while the job runs.
    pub fn resources_path(&self) -> PathBuf {
        self.path.join(RESOURCES)
    }
    /// `spec.json`: the spec the job ran with, for `resume` and `replay`.
    pub fn spec_path(&self) -> PathBuf {
        self.path.join(SPEC)
    }
    /// `logs/`: one guest log per instance.
    pub fn logs_dir(&self) -> PathBuf {
        self.path.join(LOGS)
    }
    /// `journal/`: the local commit log (`sluice_io::journal`).
    pub fn journal_dir(&self) -> PathBuf {
        self.path.join(sluice_io::journal::DIR)
    }
    /// `staged/`: the output's staged parts.
    pub fn staged_dir(&self) -> PathBuf {
        self.path.join(STAGED)
    }

    /// Writes `job_result.json`.
    pub fn write_result(&self, r: &JobResult) -> Result<(), JobDirError> {
        let path = self.result_path();
        let json = serde_json::to_vec_pretty(r).map_err(|e| invalid(&path, e))?;
        write_durably(&path, &json).map_err(err(&path))
    }

    /// `job_result.json`, `None` before the job's first finish.
    pub fn read_result(&self) -> Result<Option<JobResult>, JobDirError> {
        read_json(&self.result_path())
    }

    /// Writes `processed_mini_batches.csv`: a header, then a row per
    /// mini-batch in plan order.
    pub fn write_batches(&self, rows: &[BatchRow]) -> Result<(), JobDirError> {
        let path = self.batches_path();
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(BatchRow::COLUMNS).map_err(|e| invalid(&path, e))?;
        for r in rows {
            w.write_record(r.to_record()).map_err(|e| invalid(&path, e))?;
        }
        let bytes = w.into_inner().map_err(|e| invalid(&path, e))?;
        write_durably(&path, &bytes).map_err(err(&path))
    }

    /// `processed_mini_batches.csv`, `None` before the job's first finish.
    pub fn read_batches(&self) -> Result<Option<Vec<BatchRow>>, JobDirError> {
        let path = self.batches_path();
        let Some(bytes) = read_opt(&path)? else { return Ok(None) };
        let mut r = csv::Reader::from_reader(&bytes[..]);
        let header = r.headers().map_err(|e| invalid(&path, e))?;
        if header.iter().ne(BatchRow::COLUMNS) {
            return Err(invalid(&path, "unexpected columns"));
        }
        let mut rows = Vec::new();
        for (n, rec) in r.records().enumerate() {
            let rec = rec.map_err(|e| invalid(&path, e))?;
            rows.push(BatchRow::from_record(&rec).map_err(|e| invalid(&path, format!("row {}: {e}", n + 1)))?);
        }
        Ok(Some(rows))
    }

    /// Writes `errors.jsonl`, one JSON object a line.
    pub fn write_errors(&self, lines: &[ErrorLine]) -> Result<(), JobDirError> {
        let path = self.errors_path();
        let mut out = Vec::new();
        for l in lines {
            serde_json::to_writer(&mut out, l).map_err(|e| invalid(&path, e))?;
            out.push(b'\n');
        }
        write_durably(&path, &out).map_err(err(&path))
    }

    /// `errors.jsonl` (empty when the job has not finished).
    pub fn read_errors(&self) -> Result<Vec<ErrorLine>, JobDirError> {
        let path = self.errors_path();
        let bytes = read_opt(&path)?.unwrap_or_default();
        let text = String::from_utf8(bytes).map_err(|e| invalid(&path, e))?;
        text.lines()
            .enumerate()
            .map(|(n, l)| serde_json::from_str(l).map_err(|e| invalid(&path, format!("line {}: {e}", n + 1))))
            .collect()
    }

    /// Replaces `progress.json` whole.
    pub fn write_progress(&self, p: &ProgressFile) -> Result<(), JobDirError> {
        let path = self.progress_path();
        let json = serde_json::to_vec_pretty(p).map_err(|e| invalid(&path, e))?;
        write_durably(&path, &json).map_err(err(&path))
    }

    /// `progress.json`, `None` before the job started.
    pub fn read_progress(&self) -> Result<Option<ProgressFile>, JobDirError> {
        read_json(&self.progress_path())
    }

    /// Writes `spec.json`.
    pub fn write_spec(&self, source: &SpecSource) -> Result<(), JobDirError> {
        let path = self.spec_path();
        let json = serde_json::to_vec_pretty(source).map_err(|e| invalid(&path, e))?;
        write_durably(&path, &json).map_err(err(&path))
    }

    /// `spec.json`, `None` for a directory that holds none (not resumable).
    pub fn spec_source(&self) -> Result<Option<SpecSource>, JobDirError> {
        read_json(&self.spec_path())
    }

    /// Writes `cluster.json`: the cluster a job's mini-batches run on, so
    /// `sluice resume` runs them there again.
    pub fn write_cluster(&self, url: &str) -> Result<(), JobDirError> {
        let path = self.path.join(CLUSTER);
        let json = serde_json::to_vec_pretty(&serde_json::json!({ "url": url })).map_err(|e| invalid(&path, e))?;
        write_durably(&path, &json).map_err(err(&path))
    }

    /// The cluster `cluster.json` names; `None` for a job run in process.
    pub fn cluster(&self) -> Result<Option<String>, JobDirError> {
        let v: Option<serde_json::Value> = read_json(&self.path.join(CLUSTER))?;
        Ok(v.and_then(|v| v.get("url").and_then(|u| u.as_str()).map(str::to_string)))
    }

    /// The guest log files (`logs/*.log`), sorted by name.
    pub fn log_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.logs_dir())
            .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "log")).collect())
            .unwrap_or_default();
        files.sort();
        files
    }

    /// The mini-batches the journal shows committed right now (by entry
    /// name: for watching a running job, not for deciding what to skip).
    pub fn journal_entries(&self) -> Vec<usize> {
        sluice_io::LocalJournal::visible_entries(&self.journal_dir())
    }

    /// Cluster jobs: each node that ran tries of the committed mini-batches,
    /// with how many mini-batches it ran a try of, by name. Empty for a job
    /// run in process. A name that is not a plain node name (`A-Z a-z 0-9 -
    /// _`, at most 64 bytes; a node could send anything) is shown escaped
    /// and cut.
    pub fn nodes(&self) -> Vec<(String, u64)> {
        let mut tally = std::collections::BTreeMap::<String, u64>::new();
        let Ok(rd) = std::fs::read_dir(self.journal_dir()) else { return Vec::new() };
        for e in rd.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if !name.ends_with(".json") || !name.starts_with(|c: char| c.is_ascii_digit()) {
                continue;
            }
            let Ok(bytes) = std::fs::read(e.path()) else { continue };
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else { continue };
            let mut seen = std::collections::BTreeSet::new();
            for n in v.get("nodes").and_then(|n| n.as_array()).into_iter().flatten().filter_map(|n| n.as_str()) {
                let plain = n.len() <= 64 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                let shown =
                    if plain { n.to_string() } else { sluice_job::text::guest_text(&n.escape_debug().to_string(), 64) };
                if seen.insert(shown.clone()) {
                    *tally.entry(shown).or_default() += 1;
                }
            }
        }
        tally.into_iter().collect()
    }

    /// Peak RSS and CPU use from `resources.csv`, `None` without samples.
    pub fn resources(&self) -> Option<ResourceSummary> {
        let text = std::fs::read_to_string(self.resources_path()).ok()?;
        let (mut peak, mut sum, mut max, mut n) = (0f64, 0f64, 0f64, 0usize);
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            let (Some(cpu), Some(rss)) =
                (f.get(2).and_then(|v| v.parse::<f64>().ok()), f.get(3).and_then(|v| v.parse::<f64>().ok()))
            else {
                continue;
            };
            peak = peak.max(rss);
            sum += cpu;
            max = max.max(cpu);
            n += 1;
        }
        (n > 0).then(|| ResourceSummary { peak_rss_mib: peak, cpu_mean: sum / n as f64, cpu_max: max, samples: n })
    }
}

/// What `resources.csv` says of a job.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResourceSummary {
    /// Peak resident memory of the node's process, MiB.
    pub peak_rss_mib: f64,
    /// Mean CPU, percent of one core.
    pub cpu_mean: f64,
    /// Highest CPU sample, percent of one core.
    pub cpu_max: f64,
    /// How many samples.
    pub samples: usize,
}

/// The contents of `progress.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProgressFile {
    /// The job's name.
    pub job: String,
    /// `running` while the job runs; its final status after.
    pub status: String,
    /// The process running it, to tell a job still running from one that
    /// was killed.
    pub pid: u32,
    /// When the run began (RFC 3339).
    pub started_at: String,
    /// When this file was written (RFC 3339).
    pub updated_at: String,
    /// Seconds since the run began.
    pub elapsed_s: f64,
    /// Mini-batches in the plan.
    pub mini_batches_total: u64,
    /// Mini-batches finished (either way) by this run.
    pub mini_batches_done: u64,
    /// Of those, failed.
    pub mini_batches_failed: u64,
    /// Items of the finished mini-batches.
    pub items_done: u64,
}

/// A mini-batch's status in `processed_mini_batches.csv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchRowStatus {
    /// Its last try succeeded.
    Succeeded,
    /// Its last try failed.
    Failed,
    /// It did not run (the job stopped first, or `replay` ran another).
    NotRun,
}

impl BatchRowStatus {
    /// As the file writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            BatchRowStatus::Succeeded => "succeeded",
            BatchRowStatus::Failed => "failed",
            BatchRowStatus::NotRun => "not_run",
        }
    }
}

/// One row of `processed_mini_batches.csv`. Fields a mini-batch that did
/// not run has no value for are `None` (empty in the file).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRow {
    /// The mini-batch id.
    pub id: String,
    /// Its index in the plan.
    pub index: usize,
    /// Its inputs: `a.csv`, or `first..last`.
    pub inputs: String,
    /// Items (files, or rows of tabular input).
    pub items: u64,
    /// Items that failed in a mini-batch that succeeded.
    pub item_errors: u64,
    /// Tries it took.
    pub tries: Option<u32>,
    /// How it ended.
    pub status: BatchRowStatus,
    /// The reason code of its failure (or of a failure a retry recovered
    /// from); empty when none.
    pub reason: String,
    /// The failure's message; empty when none.
    pub message: String,
    /// The instance that ran its last try.
    pub instance: Option<usize>,
    /// Seconds its last try took (the file keeps milliseconds).
    pub duration_s: Option<f64>,
}

impl BatchRow {
    /// The file's header.
    pub const COLUMNS: [&'static str; 11] = [
        "id",
        "index",
        "inputs",
        "items",
        "item_errors",
        "tries",
        "status",
        "reason",
        "message",
        "instance",
        "duration_s",
    ];

    /// The row's fields as the file writes them, in [`BatchRow::COLUMNS`]
    /// order.
    pub fn to_record(&self) -> [String; 11] {
        let opt = |v: Option<String>| v.unwrap_or_default();
        [
            self.id.clone(),
            self.index.to_string(),
            self.inputs.clone(),
            self.items.to_string(),
            self.item_errors.to_string(),
            opt(self.tries.map(|t| t.to_string())),
            self.status.as_str().to_string(),
            self.reason.clone(),
            self.message.clone(),
            opt(self.instance.map(|i| i.to_string())),
            opt(self.duration_s.map(|d| format!("{d:.3}"))),
        ]
    }

    /// (column, field as written) pairs.
    pub fn columns(&self) -> impl Iterator<Item = (&'static str, String)> {
        Self::COLUMNS.into_iter().zip(self.to_record())
    }

    fn from_record(rec: &csv::StringRecord) -> Result<BatchRow, String> {
        let get = |i: usize| rec.get(i).ok_or_else(|| format!("no `{}` field", Self::COLUMNS[i]));
        fn num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, String> {
            v.parse().map_err(|_| format!("`{name}` is not a number: `{v}`"))
        }
        let opt = |i: usize| -> Result<Option<&str>, String> { get(i).map(|v| (!v.is_empty()).then_some(v)) };
        let status = match get(6)? {
            "succeeded" => BatchRowStatus::Succeeded,
            "failed" => BatchRowStatus::Failed,
            "not_run" => BatchRowStatus::NotRun,
            other => return Err(format!("unknown status `{other}`")),
        };
        Ok(BatchRow {
            id: get(0)?.to_string(),
            index: num("index", get(1)?)?,
            inputs: get(2)?.to_string(),
            items: num("items", get(3)?)?,
            item_errors: num("item_errors", get(4)?)?,
            tries: opt(5)?.map(|v| num("tries", v)).transpose()?,
            status,
            reason: get(7)?.to_string(),
            message: get(8)?.to_string(),
            instance: opt(9)?.map(|v| num("instance", v)).transpose()?,
            duration_s: opt(10)?.map(|v| num("duration_s", v)).transpose()?,
        })
    }
}

/// One line of `errors.jsonl`: a failed item (file, or file and row), or
/// an input of a failed mini-batch. Fields are in the file's order (keys
/// sorted, as the lines were first written).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorLine {
    /// The reason code.
    pub code: ReasonCode,
    /// The input: a file name, or for a failed tabular mini-batch a file
    /// and its rows.
    pub input: Option<String>,
    /// What went wrong.
    pub message: String,
    /// The mini-batch id.
    pub mini_batch: String,
    /// The mini-batch's index in the plan.
    pub mini_batch_index: usize,
    /// The guest's panic text, when it panicked.
    pub panic: Option<String>,
    /// The row in `input`, for a failed row of tabular input.
    pub row: Option<u64>,
    /// Tries the mini-batch took.
    pub tries: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result() -> JobResult {
        serde_json::from_value(serde_json::json!({
            "job": "j", "status": "completed_with_errors", "reason": null, "crossed": null,
            "thresholds": {"error_threshold": -1, "mini_batch_error_threshold": -1, "allowed_failed_percent": 100},
            "tally": {"failed_items": 1, "failed_mini_batches": 0},
            "mini_batches": {"total": 2, "succeeded": 1, "failed": 0, "retried": 0, "tries": 1,
                             "not_run": 1, "resumed": 0},
            "items": {"total": 3, "succeeded": 1, "failed": 1, "not_run": 1},
            "output": null, "output_rows": 0, "job_dir": "d", "processed_mini_batches": "p", "errors": "e",
            "logs": "l", "started_at": "t", "timings": {"plan_s": 0.0, "compile_s": 0.0, "run_s": 0.0, "total_s": 0.0},
            "first_errors": [], "notes": []
        }))
        .unwrap()
    }

    #[test]
    fn every_file_reads_back_what_was_written() {
        let tmp = tempfile::tempdir().unwrap();
        let d = JobDir::open(tmp.path().join("job"));
        assert!(!d.is_job());
        assert_eq!(d.read_result().unwrap().map(|r| r.job), None);
        assert_eq!(d.read_batches().unwrap(), None);
        assert_eq!(d.read_errors().unwrap(), []);
        assert!(d.read_progress().unwrap().is_none() && d.spec_source().unwrap().is_none());
        d.create().unwrap();

        let r = result();
        d.write_result(&r).unwrap();
        assert!(d.is_job());
        let back = d.read_result().unwrap().unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), serde_json::to_value(&r).unwrap());

        let rows = vec![
            BatchRow {
                id: "ab12".into(),
                index: 0,
                inputs: "a.csv..c, d.csv".into(),
                items: 2,
                item_errors: 1,
                tries: Some(2),
                status: BatchRowStatus::Succeeded,
                reason: "TIMEOUT".into(),
                message: "took \"long\"".into(),
                instance: Some(3),
                duration_s: Some(0.25),
            },
            BatchRow {
                id: "cd34".into(),
                index: 1,
                inputs: "e.csv".into(),
                items: 1,
                item_errors: 0,
                tries: None,
                status: BatchRowStatus::NotRun,
                reason: String::new(),
                message: String::new(),
                instance: None,
                duration_s: None,
            },
        ];
        d.write_batches(&rows).unwrap();
        assert_eq!(d.read_batches().unwrap().unwrap(), rows);
        let text = std::fs::read_to_string(d.batches_path()).unwrap();
        assert_eq!(
            text,
            "id,index,inputs,items,item_errors,tries,status,reason,message,instance,duration_s\n\
             ab12,0,\"a.csv..c, d.csv\",2,1,2,succeeded,TIMEOUT,\"took \"\"long\"\"\",3,0.250\n\
             cd34,1,e.csv,1,0,,not_run,,,,\n"
        );

        let errors = vec![ErrorLine {
            code: ReasonCode::InputError,
            input: Some("a.csv".into()),
            message: "bad".into(),
            mini_batch: "ab12".into(),
            mini_batch_index: 0,
            panic: None,
            row: Some(7),
            tries: 2,
        }];
        d.write_errors(&errors).unwrap();
        assert_eq!(d.read_errors().unwrap(), errors);
        // The line as the finish always wrote it: keys sorted.
        assert_eq!(
            std::fs::read_to_string(d.errors_path()).unwrap(),
            "{\"code\":\"INPUT_ERROR\",\"input\":\"a.csv\",\"message\":\"bad\",\"mini_batch\":\"ab12\",\
             \"mini_batch_index\":0,\"panic\":null,\"row\":7,\"tries\":2}\n"
        );

        let p = ProgressFile {
            job: "j".into(),
            status: "running".into(),
            pid: 7,
            started_at: "s".into(),
            updated_at: "u".into(),
            elapsed_s: 1.5,
            mini_batches_total: 2,
            mini_batches_done: 1,
            mini_batches_failed: 0,
            items_done: 2,
        };
        d.write_progress(&p).unwrap();
        assert_eq!(d.read_progress().unwrap().unwrap().pid, 7);

        std::fs::write(d.resources_path(), "time,elapsed_s,cpu_percent,rss_mib\nt,1.0,50,10.5\nt,2.0,150,9.0\n")
            .unwrap();
        let res = d.resources().unwrap();
        assert_eq!((res.peak_rss_mib, res.cpu_mean, res.cpu_max, res.samples), (10.5, 100.0, 150.0, 2));

        // No temp file is left beside what was written.
        let mut names: Vec<String> =
            std::fs::read_dir(d.path()).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into()).collect();
        names.sort();
        assert_eq!(names, [ERRORS, RESULT, BATCHES, PROGRESS, RESOURCES]);
    }

    #[test]
    fn unreadable_files_are_errors_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let d = JobDir::open(tmp.path());
        std::fs::write(d.batches_path(), "id,other\n").unwrap();
        let e = d.read_batches().unwrap_err().to_string();
        assert!(e.contains(BATCHES) && e.contains("unexpected columns"), "{e}");
        std::fs::write(d.errors_path(), "{}\n").unwrap();
        let e = d.read_errors().unwrap_err().to_string();
        assert!(e.contains(ERRORS) && e.contains("line 1"), "{e}");
        std::fs::write(d.result_path(), "{").unwrap();
        assert!(d.read_result().unwrap_err().to_string().contains(RESULT));
    }
}
