//! A small job builder over temp folders.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sluice_job::JobSpec;
use sluice_job::spec::Override;
use sluice_runtime::{Compiler, JobDir, JobResult, RunOptions};

pub const ADVERSARY: &str = env!("SLUICE_GUEST_ADVERSARY");
pub const ECHO: &str = env!("SLUICE_GUEST_ECHO");
pub const FILE_STATS: &str = env!("SLUICE_GUEST_FILE_STATS");
pub const CSV_VALIDATE: &str = env!("SLUICE_GUEST_CSV_VALIDATE");
pub const TABULAR_CLASSIFIER: &str = env!("SLUICE_GUEST_TABULAR_CLASSIFIER");
pub const PASSTHROUGH: &str = env!("SLUICE_GUEST_PASSTHROUGH");
pub const ONNX_PROBE: &str = env!("SLUICE_GUEST_ONNX_PROBE");
pub const LEGACY: &str = env!("SLUICE_GUEST_LEGACY");
pub const HOST_ATTACK: &str = env!("SLUICE_GUEST_HOST_ATTACK");
pub const FLAKY: &str = env!("SLUICE_GUEST_FLAKY");
pub const IMPORT_FUZZ: &str = env!("SLUICE_GUEST_IMPORT_FUZZ");
pub const READER: &str = env!("SLUICE_GUEST_READER");
pub const FOLDER_WRITER: &str = env!("SLUICE_GUEST_FOLDER_WRITER");
pub const CONCAT: &str = env!("SLUICE_GUEST_CONCAT");

/// A path in the repository.
pub fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// A job over a fresh input folder.
pub struct Job {
    pub dir: tempfile::TempDir,
    overrides: Vec<Override>,
}

impl Job {
    pub fn new(guest: &str) -> Job {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("in")).unwrap();
        let input = dir.path().join("in").display().to_string();
        let job = Job { dir, overrides: Vec::new() };
        job.set("inputs.data.type", "uri_folder")
            .set("inputs.data.path", &input)
            .set("input_data", "${{inputs.data}}")
            .set("task.code", guest)
            .set("max_concurrency_per_instance", "2")
            // Cache compiled guests across tests (and runs) in target/.
            .set("limits.max_log_kb", "1024")
    }

    /// A job whose input folder is tabular (`type: mltable`).
    pub fn tabular(guest: &str) -> Job {
        Job::new(guest).set("inputs.data.type", "mltable")
    }

    /// Copies the files of a repository folder into the input folder.
    pub fn files_from(self, rel: &str) -> Job {
        for e in std::fs::read_dir(repo(rel)).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), self.input().join(e.file_name())).unwrap();
            }
        }
        self
    }

    /// Grants a model (a repository path) to the scorer as `name`.
    pub fn model(self, name: &str, rel: &str) -> Job {
        let kind = if rel.ends_with(".onnx") { "custom_model" } else { "mlflow_model" };
        let path = repo(rel).display().to_string();
        self.set(&format!("inputs.{name}.type"), kind).set(&format!("inputs.{name}.path"), &path)
    }

    pub fn input(&self) -> PathBuf {
        self.dir.path().join("in")
    }

    pub fn file(self, name: &str, content: impl AsRef<[u8]>) -> Job {
        let p = self.input().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
        self
    }

    /// The job as `sluice run` flags: one `--set KEY=VALUE` per setting.
    pub fn cli_sets(&self) -> Vec<String> {
        self.overrides
            .iter()
            .flat_map(|o| {
                let v = serde_yaml_ng::to_string(&o.value).unwrap();
                ["--set".to_string(), format!("{}={}", o.path, v.trim_end())]
            })
            .collect()
    }

    pub fn set(mut self, key: &str, value: &str) -> Job {
        self.overrides.push(Override::parse(&format!("{key}={value}")).unwrap());
        self
    }

    /// Writes rows to `out.<ext>` in the job's folder.
    pub fn output(self, ext: &str) -> Job {
        let p = self.out_path(ext).display().to_string();
        self.set("task.append_row_to", &p)
    }

    pub fn out_path(&self, ext: &str) -> PathBuf {
        self.dir.path().join(format!("out.{ext}"))
    }

    pub fn job_dir(&self) -> PathBuf {
        self.dir.path().join("job")
    }

    pub fn spec(&self) -> JobSpec {
        JobSpec::from_overrides(&self.overrides).unwrap()
    }

    pub fn run(&self) -> JobResult {
        sluice_runtime::run_job(&self.spec(), &self.options()).unwrap()
    }

    /// How [`Job::run`] runs it: the shared compile cache, the test CLI as
    /// the compiler child.
    pub fn options(&self) -> RunOptions {
        RunOptions { cache_dir: Some(cache_dir()), compiler: compiler(), ..RunOptions::new(self.job_dir()) }
    }

    /// [`Job::run`] under a watchdog: panics if the job has not ended
    /// within `secs` seconds (for jobs that only end because a deadline
    /// works).
    pub fn run_within(&self, secs: u64) -> JobResult {
        let (spec, opts) = (self.spec(), self.options());
        within(secs, "the job", move || sluice_runtime::run_job(&spec, &opts).unwrap())
    }

    /// `processed_mini_batches.csv`, keyed by the first input of each
    /// mini-batch.
    pub fn records(&self) -> HashMap<String, HashMap<String, String>> {
        let rows = JobDir::open(self.job_dir()).read_batches().unwrap().expect("the job wrote its mini-batches");
        rows.into_iter()
            .map(|r| {
                let first = r.inputs.split("..").next().unwrap().to_string();
                (first, r.columns().map(|(c, v)| (c.to_string(), v)).collect())
            })
            .collect()
    }

    /// `job_result.json` as JSON.
    pub fn result_json(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(JobDir::open(self.job_dir()).result_path()).unwrap()).unwrap()
    }

    /// Rows of a CSV output: header, then records.
    pub fn csv_rows(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let mut r = csv::Reader::from_path(self.out_path("csv")).unwrap();
        let h = r.headers().unwrap().iter().map(str::to_string).collect();
        let rows = r.records().map(|x| x.unwrap().iter().map(str::to_string).collect()).collect();
        (h, rows)
    }
}

/// The compiler child the tests use: the CLI built in this package, which
/// answers `__compile-component` like the `sluice` binary.
pub fn compiler() -> Compiler {
    Compiler::Process(PathBuf::from(env!("CARGO_BIN_EXE_sluice-test-cli")))
}

pub fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/sluice-test-cache")
}

/// Runs `f` on its own thread and returns its result, or panics naming
/// `what` if it has not finished within `secs` seconds: a test that would
/// hang if a deadline broke fails instead of holding CI until its timeout.
/// (The stuck thread is left behind; the test binary exits with it.)
pub fn within<T: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(secs)) {
        Ok(v) => {
            worker.join().unwrap();
            v
        }
        // The closure panicked: re-raise its panic.
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => std::panic::resume_unwind(worker.join().unwrap_err()),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("watchdog: {what} did not finish within {secs}s (a deadline that should have stopped it did not)")
        }
    }
}

/// Mini-batches committed in a job directory's journal (entries become
/// visible only once their part is durable).
pub fn journal_entries(job_dir: &Path) -> usize {
    JobDir::open(job_dir).journal_entries().len()
}

/// Waits (polling) until `cond` holds; false if `secs` pass first.
pub fn wait_until(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !cond() {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    true
}

/// A Parquet file of one non-null Int64 column `id` holding `ids`, in row
/// groups of at most `group_rows` rows, and how many row groups it has.
pub fn ids_parquet(ids: std::ops::Range<i64>, group_rows: usize) -> (Vec<u8>, usize) {
    use std::sync::Arc;
    let schema =
        Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new("id", arrow_schema::DataType::Int64, false)]));
    let props =
        parquet::file::properties::WriterProperties::builder().set_max_row_group_row_count(Some(group_rows)).build();
    let mut bytes = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut bytes, schema.clone(), Some(props)).unwrap();
    let ids = arrow_array::Int64Array::from_iter_values(ids);
    w.write(&arrow_array::RecordBatch::try_new(schema, vec![Arc::new(ids)]).unwrap()).unwrap();
    let groups = w.close().unwrap().num_row_groups();
    (bytes, groups)
}

/// `(id, prediction, probability, source_file)` rows of a classifier output
/// (tabular-classifier's columns), to compare with the stored expected
/// predictions.
pub fn predictions(path: &Path) -> Vec<(i64, i64, f32, String)> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let h: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    assert_eq!(h, ["id", "prediction", "probability", "source_file"], "{}", path.display());
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            (rec[0].parse().unwrap(), rec[1].parse().unwrap(), rec[2].parse().unwrap(), rec[3].to_string())
        })
        .collect()
}

/// Every guest log line of a job, all instances' files together.
pub fn log_text(job: &Job) -> String {
    sluice_runtime::JobDir::open(job.job_dir())
        .log_files()
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect()
}
