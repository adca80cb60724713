//! Python scorers written with the SDK (sdk/python) and built by its build
//! command (`python -m sluice_sdk build`, componentize-py 0.25.1) from the
//! project's venv (`scripts/install-python-sdk.sh`, run by setup.sh): the
//! examples give the Rust plugin's output byte for byte, state lives from
//! `init` to `run`, exceptions fail the mini-batch with the user's file and
//! line, and the build refuses what cannot work, in words. The SDK's own
//! unit tests run from here too.
//!
//! A Python build takes ~10-20 s of CPU and its compile in sluice ~12-25 s,
//! so each script is built once per run (tests share it) and kept in
//! `target/python-guests` under a hash of its inputs (the script, the SDK's
//! files, the pinned toolchain), and its compiled form goes to the shared
//! compile cache: a rerun with nothing changed builds and compiles nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, OnceLock};

use sha2::{Digest, Sha256};

use crate::helpers::*;

/// The project venv's Python, with the SDK and componentize-py installed.
fn python() -> PathBuf {
    let py = repo(".sluice/py-sdk/venv/bin/python");
    assert!(
        py.is_file(),
        "{} is missing: run scripts/install-python-sdk.sh (scripts/setup.sh and scripts/test.sh run it)",
        py.display()
    );
    py
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// `python -m sluice_sdk ARGS` from the repository root.
fn sluice_py(args: &[&str]) -> Output {
    Command::new(python()).args(["-m", "sluice_sdk"]).args(args).current_dir(repo("")).output().unwrap()
}

/// A hash of what a build of `script` depends on.
fn build_key(script: &Path) -> String {
    let mut h = Sha256::new();
    h.update(std::fs::read(script).unwrap());
    h.update(std::fs::read(repo("sdk/python/requirements.txt")).unwrap());
    let mut files = Vec::new();
    let mut dirs = vec![repo("sdk/python/src/sluice_sdk")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if !p.ends_with("__pycache__") {
                    dirs.push(p);
                }
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    for f in files {
        h.update(f.strip_prefix(repo("sdk/python")).unwrap().to_string_lossy().as_bytes());
        h.update(std::fs::read(&f).unwrap());
    }
    hex::encode(h.finalize())[..16].to_string()
}

/// The component built from `script` (a repository path) by the SDK's build
/// command, which also precompiles it into the tests' compile cache through
/// the test CLI (`--compile`). Built once per run and per input hash.
fn built(script: &str) -> PathBuf {
    static BUILDS: Mutex<Option<HashMap<String, Arc<OnceLock<PathBuf>>>>> = Mutex::new(None);
    let cell = BUILDS.lock().unwrap().get_or_insert_with(HashMap::new).entry(script.to_string()).or_default().clone();
    cell.get_or_init(|| {
        let src = repo(script);
        let stem = src.file_stem().unwrap().to_string_lossy().to_string();
        let parent = src.parent().unwrap().file_name().unwrap().to_string_lossy().to_string();
        let out = repo("target/python-guests").join(format!("{parent}-{stem}-{}.wasm", build_key(&src)));
        if out.is_file() {
            return out;
        }
        // Builds of this script from older inputs (18 MB each) go.
        let prefix = format!("{parent}-{stem}-");
        for e in std::fs::read_dir(out.parent().unwrap()).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with(&prefix) && name.ends_with(".wasm") {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let cli = env!("CARGO_BIN_EXE_sluice-test-cli");
        let (o, cache) = (out.display().to_string(), cache_dir().display().to_string());
        let r = sluice_py(&[
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

fn wasm(p: &Path) -> String {
    p.display().to_string()
}

/// `errors.jsonl` as (input, row, code, message).
fn error_lines(job: &Job) -> Vec<(String, String, String, String)> {
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

fn tabular(scorer: &str, data: &str, size: &str) -> Job {
    Job::tabular(scorer)
        .files_from(data)
        .model("model", "examples/tabular/model")
        .set("mini_batch_size", size)
        .set("task.config.model", "model")
        .output("csv")
}

#[test]
fn the_python_tabular_example_gives_tabular_classifiers_output_byte_for_byte() {
    let py = built("examples/python-tabular/score.py");
    for (data, size) in [("examples/tabular/data", "300 rows"), ("tests/fixtures/tabular/bad", "4 rows")] {
        let (rust, python) = (tabular(TABULAR_CLASSIFIER, data, size), tabular(&wasm(&py), data, size));
        let (r, p) = (rust.run(), python.run());
        assert_eq!(p.status, r.status, "{data}: {:?}", p.reason);
        assert_eq!((p.items.succeeded, p.items.failed), (r.items.succeeded, r.items.failed), "{data}");
        assert!(p.items.succeeded > 0, "{data}");
        let (want, got) =
            (std::fs::read(rust.out_path("csv")).unwrap(), std::fs::read(python.out_path("csv")).unwrap());
        assert!(
            want == got,
            "{data}: the outputs differ:\n{}\n---\n{}",
            String::from_utf8_lossy(&want),
            String::from_utf8_lossy(&got)
        );
        // The same item errors, rows and words ("empty value in mean_radius...").
        assert_eq!(error_lines(&python), error_lines(&rust), "{data}");
    }
}

#[test]
fn an_azure_style_score_py_scores_like_the_rust_plugin() {
    let py = built("examples/python-azure/score.py");
    let (rust, python) = (
        tabular(TABULAR_CLASSIFIER, "examples/tabular/data", "300 rows"),
        tabular(&wasm(&py), "examples/tabular/data", "300 rows"),
    );
    let (r, p) = (rust.run(), python.run());
    assert_eq!((p.mini_batches.failed, p.items.succeeded), (0, 1000), "{:?}", p.reason);
    assert_eq!(r.items.succeeded, 1000);
    assert!(std::fs::read(rust.out_path("csv")).unwrap() == std::fs::read(python.out_path("csv")).unwrap());
    // `logging.info` in its init() reached the job's log.
    let logs: String = sluice_runtime::JobDir::open(python.job_dir())
        .log_files()
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert!(logs.contains("model model loaded: inputs ['input']"), "{logs}");
}

fn probe() -> Job {
    Job::new(&wasm(&built("tests/fixtures/python/probe.py")))
        .set("mini_batch_size", "1")
        .set("max_concurrency_per_instance", "1")
        .set("retry_settings.max_retries", "0")
        .output("csv")
}

#[test]
fn state_set_in_init_is_there_in_every_run() {
    // One instance, one file per mini-batch: `self.runs` counts the runs
    // of that one object, and `self.prefix` comes from init's config.
    let job = probe().set("task.config.prefix", "q").file("a.txt", "one").file("b.txt", "three").file("c.txt", "x");
    let r = job.run();
    assert_eq!((r.mini_batches.succeeded, r.mini_batches.failed), (3, 0), "{:?}", r.first_errors);
    let (header, rows) = job.csv_rows();
    assert_eq!(header, ["name", "prefix", "run", "chars", "half"]);
    assert_eq!(
        rows,
        [["a.txt", "q", "1", "3", "1.5"], ["b.txt", "q", "2", "5", "2.5"], ["c.txt", "q", "3", "1", "0.5"]]
    );
}

#[test]
fn an_exception_in_run_fails_the_mini_batch_with_the_users_file_and_line() {
    let job = probe().file("a.txt", "fine").file("bad.txt", "oops").file("raise.txt", "12345").file("user.txt", "x");
    let r = job.run();
    assert_eq!((r.mini_batches.succeeded, r.mini_batches.failed), (2, 2), "{:?}", r.first_errors);
    let records = job.records();
    let raised = &records["raise.txt"];
    assert_eq!(raised["reason"], "USER_ERROR");
    // probe.py line 6 is `return a / b`, called from run().
    let want = "ZeroDivisionError: division by zero at probe.py:6 in divide()";
    assert_eq!(raised["message"], want);
    assert!(!raised["message"].contains("unreachable"));
    // UserError: its message alone. ItemError: the item fails, the mini-batch succeeds.
    assert_eq!(
        (records["user.txt"]["reason"].as_str(), records["user.txt"]["message"].as_str()),
        ("USER_ERROR", "user says no to user.txt")
    );
    assert_eq!((records["bad.txt"]["status"].as_str(), records["bad.txt"]["item_errors"].as_str()), ("succeeded", "1"));
    let errors = error_lines(&job);
    assert_eq!(
        errors,
        [
            ("bad.txt".into(), String::new(), "ITEM_ERROR".into(), "bad item: oops".into()),
            ("raise.txt".into(), String::new(), "USER_ERROR".into(), want.into()),
            ("user.txt".into(), String::new(), "USER_ERROR".into(), "user says no to user.txt".into()),
        ]
    );
    // The traceback, frame by frame, is in the instance's log.
    let logs: String = sluice_runtime::JobDir::open(job.job_dir())
        .log_files()
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert!(logs.contains("run() raised ZeroDivisionError: division by zero"), "{logs}");
    assert!(logs.contains("at probe.py:22 in run()") && logs.contains("at probe.py:6 in divide()"), "{logs}");
}

#[test]
fn an_error_raised_in_init_fails_the_start_with_its_message() {
    let job = probe().set("task.config.fail_init", "yes").file("a.txt", "fine");
    let r = job.run();
    assert_eq!(r.mini_batches.failed, 1);
    assert_eq!(r.first_errors[0].code.to_string(), "USER_ERROR");
    assert_eq!(r.first_errors[0].message, "init: init refused: task.config.fail_init is set");
}

#[test]
fn the_build_names_what_cannot_work_before_building() {
    let dir = tempfile::tempdir().unwrap();
    let build = |name: &str, src: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, src).unwrap();
        let out = dir.path().join("out.wasm");
        let started = std::time::Instant::now();
        let o = sluice_py(&["build", &p.display().to_string(), "-o", &out.display().to_string()]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(!out.exists());
        // Refused by the source check, not after a componentize-py run.
        assert!(started.elapsed() < std::time::Duration::from_secs(8), "{:?}", started.elapsed());
        text(&o)
    };
    let said = build("score.py", "import sluice_sdk\nimport numpy as np\n\ndef run(mini_batch):\n    return []\n");
    assert!(said.contains("score.py:2: `import numpy`: numpy is a native extension"), "{said}");
    assert!(said.contains("cannot be imported") && said.contains("sluice_sdk.Model.load"), "{said}");
    assert!(!said.contains("Traceback") && !said.contains("backtrace"), "{said}");

    let said = build(
        "score.py",
        "import sluice_sdk as s\nmodel = s.Model.load('model')\n\ndef run(mini_batch):\n    return []\n",
    );
    assert!(
        said.contains(
            "score.py:2: `s.Model.load()` at module top level: host imports (onnx, batch, log) can only be called from \
             init/run, not at import time"
        ),
        "{said}"
    );
    let said = build("score.py", "x = 1\n");
    assert!(said.contains("defines no scorer"), "{said}");
}

#[test]
fn the_python_sdks_unit_tests_pass() {
    let o = Command::new(python())
        .args(["-m", "unittest", "discover", "-s", "sdk/python/tests"])
        .current_dir(repo(""))
        .output()
        .unwrap();
    let said = text(&o);
    assert!(o.status.success(), "{said}");
    assert!(said.contains("OK"), "{said}");
}

#[test]
fn the_wit_bundled_in_the_python_sdk_is_the_repositorys() {
    // Checked in (so `pip install sdk/python` works from anywhere) and kept
    // equal to wit/ by this test.
    let names = |d: &str| {
        let mut v: Vec<_> = std::fs::read_dir(repo(d)).unwrap().map(|e| e.unwrap().file_name()).collect();
        v.sort();
        v
    };
    assert_eq!(names("sdk/python/src/sluice_sdk/wit"), names("wit"));
    for name in names("wit") {
        let (a, b) = (repo("wit").join(&name), repo("sdk/python/src/sluice_sdk/wit").join(&name));
        assert!(
            std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
            "{} differs from {}: copy wit/ into sdk/python/src/sluice_sdk/wit",
            b.display(),
            a.display()
        );
    }
}
