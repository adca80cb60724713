//! What the Python and JavaScript SDK tests share: building an example
//! once per run with the SDK's build command (kept under `target/` by a
//! hash of its inputs, compiled into the tests' compile cache), and reading
//! what a job left (errors, logs).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex, OnceLock};

use sha2::{Digest, Sha256};

use crate::helpers::*;

/// One SDK's build.
pub struct Sdk {
    /// Where its builds are kept (a repository path, under `target/`).
    pub out_dir: &'static str,
    /// The SDK's folder: its files' paths in the key are relative to it.
    pub root: &'static str,
    /// What a build depends on besides the script: files and folders
    /// (walked, `__pycache__` skipped) of the repository.
    pub inputs: &'static [&'static str],
    /// Runs the SDK's command line with these arguments.
    pub command: fn(&[&str]) -> Output,
}

pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

pub fn wasm(p: &Path) -> String {
    p.display().to_string()
}

/// A hash of what a build of `script` depends on.
fn build_key(sdk: &Sdk, script: &Path) -> String {
    let mut h = Sha256::new();
    h.update(std::fs::read(script).unwrap());
    let mut files = Vec::new();
    let mut todo: Vec<PathBuf> = sdk.inputs.iter().map(|p| repo(p)).collect();
    while let Some(p) = todo.pop() {
        if p.is_dir() {
            if !p.ends_with("__pycache__") {
                todo.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            }
        } else {
            files.push(p);
        }
    }
    files.sort();
    for f in files {
        h.update(f.strip_prefix(repo(sdk.root)).unwrap_or(&f).to_string_lossy().as_bytes());
        h.update(std::fs::read(&f).unwrap());
    }
    hex::encode(h.finalize())[..16].to_string()
}

/// The component built from `script` (a repository path) by the SDK's
/// build command, which also precompiles it into the tests' compile cache
/// through the test CLI (`--compile`). Built once per run and per input
/// hash; older builds of the same script (12-19 MB each) are removed.
pub fn built(sdk: &Sdk, script: &str) -> PathBuf {
    type Builds = Mutex<Option<HashMap<String, Arc<OnceLock<PathBuf>>>>>;
    static BUILDS: Builds = Mutex::new(None);
    let key = format!("{}:{script}", sdk.out_dir);
    let cell = BUILDS.lock().unwrap().get_or_insert_with(HashMap::new).entry(key).or_default().clone();
    cell.get_or_init(|| {
        let src = repo(script);
        let stem = src.file_stem().unwrap().to_string_lossy().to_string();
        let parent = src.parent().unwrap().file_name().unwrap().to_string_lossy().to_string();
        let out = repo(sdk.out_dir).join(format!("{parent}-{stem}-{}.wasm", build_key(sdk, &src)));
        if out.is_file() {
            return out;
        }
        let prefix = format!("{parent}-{stem}-");
        for e in std::fs::read_dir(out.parent().unwrap()).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with(&prefix) && name.ends_with(".wasm") {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let cli = env!("CARGO_BIN_EXE_sluice-test-cli");
        let (o, cache) = (out.display().to_string(), cache_dir().display().to_string());
        let r = (sdk.command)(&[
            "build",
            script,
            "-o",
            &o,
            "--sluice",
            cli,
            "--no-validate",
            "--compile",
            "--cache-dir",
            &cache,
        ]);
        let said = text(&r);
        assert!(r.status.success(), "building {script} failed:\n{said}");
        assert!(said.contains("built "), "{said}");
        assert!(said.contains("sluice compile: compiled") || said.contains("is already compiled"), "{said}");
        assert!(out.is_file(), "{said}");
        out
    })
    .clone()
}

/// `errors.jsonl` as (input, row, code, message), sorted.
pub fn error_lines(job: &Job) -> Vec<(String, String, String, String)> {
    let text = std::fs::read_to_string(sluice_runtime::JobDir::open(job.job_dir()).errors_path()).unwrap();
    let mut v: Vec<_> = text
        .lines()
        .map(|l| {
            let j: serde_json::Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| match &j[k] {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            };
            (s("input"), s("row"), s("code"), s("message"))
        })
        .collect();
    v.sort();
    v
}

/// The tabular-classifier job over `data` with `scorer`, CSV output.
pub fn tabular(scorer: &str, data: &str, size: &str) -> Job {
    Job::tabular(scorer)
        .files_from(data)
        .model("model", "examples/tabular/model")
        .set("mini_batch_size", size)
        .set("task.config.model", "model")
        .output("csv")
}

/// The line of `script` (a repository path) holding `code`, 1-based.
pub fn line_of(script: &str, code: &str) -> usize {
    let text = std::fs::read_to_string(repo(script)).unwrap();
    let lines: Vec<usize> = text.lines().enumerate().filter(|(_, l)| l.contains(code)).map(|(i, _)| i + 1).collect();
    assert_eq!(lines.len(), 1, "`{code}` in {script}: {lines:?}");
    lines[0]
}

/// `scorer` gives tabular-classifier's output byte for byte, and the same
/// item errors (rows and words: "empty value in mean_radius..."), on the
/// example data and on rows with empty features.
pub fn scores_like_the_rust_plugin(scorer: &Path) {
    for (data, size) in [("examples/tabular/data", "300 rows"), ("tests/fixtures/tabular/bad", "4 rows")] {
        let (rust, other) = (tabular(TABULAR_CLASSIFIER, data, size), tabular(&wasm(scorer), data, size));
        let (r, o) = (rust.run(), other.run());
        assert_eq!(o.status, r.status, "{data}: {:?}", o.reason);
        assert_eq!((o.items.succeeded, o.items.failed), (r.items.succeeded, r.items.failed), "{data}");
        assert!(o.items.succeeded > 0, "{data}");
        let (want, got) = (std::fs::read(rust.out_path("csv")).unwrap(), std::fs::read(other.out_path("csv")).unwrap());
        assert!(
            want == got,
            "{data}: the outputs differ:\n{}\n---\n{}",
            String::from_utf8_lossy(&want),
            String::from_utf8_lossy(&got)
        );
        assert_eq!(error_lines(&other), error_lines(&rust), "{data}");
    }
}

/// One instance runs all four mini-batches of the example data: the scorer
/// keeps its model (from `init`) and the feature columns it found on the
/// first mini-batch, and logs each once, for the instance, not once per
/// `run` (as it would if the language's bindings made a fresh object per
/// call the scorer).
pub fn keeps_its_state_from_init(scorer: &Path) {
    let job = tabular(&wasm(scorer), "examples/tabular/data", "250 rows").set("max_concurrency_per_instance", "1");
    let r = job.run();
    assert_eq!((r.mini_batches.succeeded, r.mini_batches.failed), (4, 0), "{:?}", r.first_errors);
    let logs = log_text(&job);
    assert_eq!(logs.matches("tabular-classifier: model model, outputs label and probabilities").count(), 1, "{logs}");
    assert_eq!(logs.matches("tabular-classifier: 30 feature columns").count(), 1, "{logs}");
}

/// A tabular job over three example rows without their `id` column, one
/// try per mini-batch, with the model granted.
pub fn without_ids(scorer: &Path) -> Job {
    let csv = std::fs::read_to_string(repo("examples/tabular/data/part-00000.csv")).unwrap();
    let no_id: String = csv.lines().take(4).map(|l| format!("{}\n", l.split_once(',').unwrap().1)).collect();
    Job::tabular(&wasm(scorer))
        .model("model", "examples/tabular/model")
        .file("no_id.csv", no_id)
        .set("retry_settings.max_retries", "0")
        .output("csv")
}
