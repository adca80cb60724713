//! Python scorers written with the SDK (sdk/python) and built by its build
//! command (`python -m sluice_sdk build`, componentize-py 0.25.1) from the
//! project's venv (`scripts/install-python-sdk.sh`, run by setup.sh): the
//! examples give the Rust plugin's output byte for byte, state lives from
//! `init` to `run`, exceptions fail the mini-batch with the user's file and
//! line, and the build refuses what cannot work, in words; `convert-model`
//! turns an sklearn MLflow model folder into one sluice scores with
//! sklearn's labels. The SDK's own unit tests (sdk/python/tests, the
//! conversion's among them) run from here too.
//!
//! A Python build takes ~10-20 s of CPU and its compile in sluice ~12-25 s,
//! so only the two examples are built, and the failure cases run through
//! them (a missing column, a model not granted, file input); each is built
//! once per run (tests share it) and kept in
//! `target/python-guests` under a hash of its inputs (the script, the SDK's
//! files, the pinned toolchain), and its compiled form goes to the shared
//! compile cache: a rerun with nothing changed builds and compiles nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::helpers::*;
use crate::sdk_guests::{
    Sdk, error_lines, keeps_its_state_from_init, line_of, scores_like_the_rust_plugin, tabular, text, wasm, without_ids,
};

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

/// `python -m sluice_sdk ARGS` from the repository root.
fn sluice_py(args: &[&str]) -> Output {
    Command::new(python()).args(["-m", "sluice_sdk"]).args(args).current_dir(repo("")).output().unwrap()
}

/// The Python SDK's build, as the tests run it.
const PYTHON_SDK: Sdk = Sdk {
    out_dir: "target/python-guests",
    root: "sdk/python",
    inputs: &["sdk/python/requirements.txt", "sdk/python/src/sluice_sdk"],
    command: sluice_py,
};

fn built(script: &str) -> PathBuf {
    crate::sdk_guests::built(&PYTHON_SDK, script)
}

#[test]
fn the_python_tabular_example_gives_tabular_classifiers_output_byte_for_byte() {
    let py = built("plugins/tabular-classifier-py/score.py");
    scores_like_the_rust_plugin(&py);
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

#[test]
fn state_set_in_init_is_there_in_every_run() {
    // One instance runs all four mini-batches. The scorer keeps its model
    // (from init) and the feature columns it found on the first mini-batch
    // on `self`, and logs the features once, when it finds them: once for
    // the instance, not once per run (or an AttributeError) as it would be
    // if componentize-py's fresh object per call were the scorer.
    let py = built("plugins/tabular-classifier-py/score.py");
    keeps_its_state_from_init(&py);
}

#[test]
fn an_exception_in_run_fails_the_mini_batch_with_the_users_file_and_line() {
    // The Azure-style example on rows without an `id` column: `rows["id"]`
    // raises a KeyError in its run().
    let py = built("examples/python-azure/score.py");
    let job = without_ids(&py);
    let r = job.run();
    assert_eq!(r.mini_batches.failed, 1);
    let line = line_of("examples/python-azure/score.py", r#""id": rows["id"],"#);
    let want = format!("KeyError: 'no delivered column `id` (delivered: none)' at score.py:{line} in run()");
    let record = &job.records()["no_id.csv"];
    assert_eq!((record["reason"].as_str(), record["message"].as_str()), ("USER_ERROR", want.as_str()));
    assert!(!record["message"].contains("unreachable"));
    assert_eq!(
        error_lines(&job).iter().map(|(_, _, code, m)| (code.as_str(), m.as_str())).collect::<Vec<_>>(),
        [("USER_ERROR", want.as_str())]
    );
    // The traceback, frame by frame, is in the instance's log.
    let logs = log_text(&job);
    assert!(logs.contains("run() raised KeyError: 'no delivered column `id` (delivered: none)'"), "{logs}");
    assert!(logs.contains(&format!("at score.py:{line} in run()")), "{logs}");
}

#[test]
fn user_errors_in_init_and_run_fail_with_their_message() {
    let py = wasm(&built("plugins/tabular-classifier-py/score.py"));
    // An exception from init (the model is not granted) names its place too.
    let job = tabular(&py, "examples/tabular/data", "1000 rows")
        .set("task.config.model", "other")
        .set("retry_settings.max_retries", "0");
    let r = job.run();
    assert_eq!(r.mini_batches.failed, 1);
    let e = &r.first_errors[0];
    let line = line_of("plugins/tabular-classifier-py/score.py", "self.model = sluice.Model.load(name)");
    assert_eq!(e.code.to_string(), "USER_ERROR");
    assert!(e.message.starts_with("init: OnnxError: unknown-model: "), "{}", e.message);
    assert!(
        e.message.contains("other") && e.message.ends_with(&format!(" at score.py:{line} in init()")),
        "{}",
        e.message
    );

    // UserError (here the SDK's, from `require_rows` on file input): its message alone.
    let job = Job::new(&py)
        .model("model", "examples/tabular/model")
        .file("a.txt", "x")
        .set("retry_settings.max_retries", "0");
    let r = job.run();
    assert_eq!(r.mini_batches.failed, 1);
    assert_eq!(r.first_errors[0].code.to_string(), "USER_ERROR");
    assert_eq!(r.first_errors[0].message, "this scorer needs tabular input (an input of type: mltable)");
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

/// `id -> prediction` of a sluice output or expected CSV (`id,prediction,...`).
fn predictions(path: &Path) -> std::collections::BTreeMap<i64, i64> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[..2], ["id", "prediction"], "{}", path.display());
    lines
        .map(|l| {
            let mut f = l.split(',');
            (f.next().unwrap().parse().unwrap(), f.next().unwrap().parse().unwrap())
        })
        .collect()
}

#[test]
fn convert_model_turns_an_sklearn_mlflow_model_into_one_sluice_scores_with_sklearns_labels() {
    // An sklearn GradientBoostingClassifier saved as MLflow does it (MLmodel
    // with sklearn + python_function flavors, a column signature, a
    // cloudpickled model.pkl), by the SDK tests' fixture script, which also
    // writes sklearn's own labels for every row of the example data.
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    let expected = dir.path().join("expected.csv");
    let mut data: Vec<PathBuf> =
        std::fs::read_dir(repo("examples/tabular/data")).unwrap().map(|e| e.unwrap().path()).collect();
    data.sort();
    let o = Command::new(python())
        .arg(repo("sdk/python/tests/make_mlflow_model.py"))
        .arg(&model)
        .arg("--columns")
        .arg("--predict")
        .args(&data)
        .arg("--expected")
        .arg(&expected)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let want = predictions(&expected);
    assert_eq!(want.len(), 1000);
    assert!(want.values().any(|&l| l == 0) && want.values().any(|&l| l == 1), "{want:?}");

    let model_path = model.display().to_string();
    let job = |scorer: &str| {
        Job::tabular(scorer)
            .files_from("examples/tabular/data")
            .model("model", &model_path)
            .set("mini_batch_size", "300 rows")
            .set("task.config.model", "model")
            .output("csv")
    };
    // Before the conversion sluice refuses the folder: no onnx flavor.
    let before = job(TABULAR_CLASSIFIER);
    let refused = sluice_runtime::run_job(&before.spec(), &before.options());
    let message = match refused {
        Err(e) => {
            // The error and its causes ("cannot load the granted models: cannot load model from ...").
            let mut said = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                said = format!("{said}: {c}");
                cause = c.source();
            }
            said
        }
        Ok(r) => format!("{:?}: {:?}", r.status, r.reason),
    };
    assert!(message.contains("onnx") && message.contains("sklearn") && message.contains("convert-model"), "{message}");

    // Checked on the first data file's rows (id + the 30 features, by name).
    let o = sluice_py(&["convert-model", &model_path, "--sample", "examples/tabular/data/part-00000.csv"]);
    let said = text(&o);
    assert!(o.status.success(), "{said}");
    assert!(said.contains("checked on 250 rows: labels equal on 250 of 250 rows"), "{said}");
    assert!(model.join("model.onnx").is_file() && model.join("model.pkl").is_file(), "{said}");

    // The Rust plugin and the Python example both score it, with sklearn's label on every row.
    let py = built("plugins/tabular-classifier-py/score.py");
    let (rust, python) = (job(TABULAR_CLASSIFIER), job(&wasm(&py)));
    for j in [&rust, &python] {
        let r = j.run();
        assert_eq!((r.mini_batches.failed, r.items.succeeded, r.items.failed), (0, 1000, 0), "{:?}", r.first_errors);
        assert_eq!(predictions(&j.out_path("csv")), want);
    }
    assert!(std::fs::read(rust.out_path("csv")).unwrap() == std::fs::read(python.out_path("csv")).unwrap());
}

/// The per-function entries under a compile cache's `incremental/`.
fn function_entries(cache: &Path) -> std::collections::BTreeSet<std::ffi::OsString> {
    std::fs::read_dir(cache.join("incremental"))
        .map(|d| d.flatten().map(|e| e.file_name()).filter(|n| !n.to_string_lossy().starts_with('.')).collect())
        .unwrap_or_default()
}

/// An edit of a Python scorer changes the interpreter's snapshot (data),
/// not its code: the edited component's compile reuses most of the first
/// one's per-function entries (Cranelift's incremental cache); the edited
/// scorer then runs, with the Rust plugin's output. (How long each compile took is
/// printed, not asserted; BENCHMARKS.md has the measured edit loop.)
#[test]
fn an_edited_python_scorer_compiles_from_the_per_function_cache() {
    let first = built("examples/python-azure/score.py");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("score.py");
    let source = std::fs::read_to_string(repo("examples/python-azure/score.py")).unwrap();
    std::fs::write(&script, format!("{source}\n\nEDITED = 'one more line'\n")).unwrap();
    let edited = dir.path().join("edited.wasm");
    let r = sluice_py(&["build", &wasm(&script), "-o", &wasm(&edited), "--no-validate"]);
    assert!(r.status.success(), "{}", text(&r));
    assert_ne!(std::fs::read(&first).unwrap(), std::fs::read(&edited).unwrap(), "the edit changed the component");

    let cache = dir.path().join("cache");
    let compile = |w: &Path| {
        let t = std::time::Instant::now();
        let o = Command::new(env!("CARGO_BIN_EXE_sluice-test-cli"))
            .arg("compile")
            .arg(w)
            .arg("--cache-dir")
            .arg(&cache)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        assert!(text(&o).contains("compiled "), "{}", text(&o));
        t.elapsed()
    };
    let cold = compile(&first);
    let base = function_entries(&cache);
    assert!(base.len() > 1000, "a Python component is thousands of functions: {}", base.len());
    let warm = compile(&edited);
    let after = function_entries(&cache);
    let added = after.difference(&base).count();
    eprintln!("compile: first {cold:?} ({} function entries), after the edit {warm:?} ({added} new)", base.len());
    // Measured: ~10% new (functions whose code embeds the snapshot's
    // addresses and sizes); without the cache every one would be new.
    assert!(added * 5 < base.len(), "the edit recompiled {added} of {} functions", base.len());

    // Code put together from cached functions runs like the original.
    let job = tabular(&wasm(&edited), "examples/tabular/data", "300 rows");
    let opts = sluice_runtime::RunOptions { cache_dir: Some(cache.clone()), ..job.options() };
    let r = sluice_runtime::run_job(&job.spec(), &opts).unwrap();
    assert_eq!((r.mini_batches.failed, r.items.succeeded), (0, 1000), "{:?}", r.reason);
    let rust = tabular(TABULAR_CLASSIFIER, "examples/tabular/data", "300 rows");
    rust.run();
    assert!(std::fs::read(rust.out_path("csv")).unwrap() == std::fs::read(job.out_path("csv")).unwrap());
}
