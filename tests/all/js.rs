//! JavaScript scorers written with the SDK (sdk/js) and built by its build
//! command (`node sdk/js/bin/sluice-js.mjs build`, componentize-js 0.23.0)
//! from the toolchain `scripts/install-js-sdk.sh` installs (run by
//! setup.sh) into sdk/js/node_modules: the examples give the Rust plugin's
//! output byte for byte, state lives from `init` to `run`, a thrown Error
//! fails the mini-batch with the user's file and line, and the build
//! refuses what cannot work, in words. The SDK's own unit tests
//! (`node --test`, against a fake host) run from here too.
//!
//! A JavaScript build takes ~5-15 s and its compile in sluice ~16 s of
//! CPU, so only the two examples are built, and the failure cases run
//! through them (rows without an id column, a model not granted, file
//! input); each is built once per run (tests share it) and kept in
//! `target/js-guests` under a hash of its inputs (the script, the SDK's
//! files, the lock file), and its compiled form goes to the shared compile
//! cache: a rerun with nothing changed builds and compiles nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, OnceLock};

use sha2::{Digest, Sha256};

use crate::helpers::*;

/// `node`, with the SDK's toolchain installed next to it.
fn node() -> &'static str {
    let marker = repo("sdk/js/node_modules/@bytecodealliance/componentize-js/package.json");
    assert!(
        marker.is_file(),
        "{} is missing: run scripts/install-js-sdk.sh (scripts/setup.sh and scripts/test.sh run it)",
        marker.display()
    );
    "node"
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// `node sdk/js/bin/sluice-js.mjs ARGS` from the repository root.
fn sluice_js(args: &[&str]) -> Output {
    Command::new(node()).arg("sdk/js/bin/sluice-js.mjs").args(args).current_dir(repo("")).output().unwrap()
}

/// A hash of what a build of `script` depends on.
fn build_key(script: &Path) -> String {
    let mut h = Sha256::new();
    h.update(std::fs::read(script).unwrap());
    h.update(std::fs::read(repo("sdk/js/package-lock.json")).unwrap());
    let mut files = Vec::new();
    for dir in ["sdk/js/src", "sdk/js/lib", "sdk/js/wit"] {
        for e in std::fs::read_dir(repo(dir)).unwrap() {
            files.push(e.unwrap().path());
        }
    }
    files.sort();
    for f in files {
        h.update(f.strip_prefix(repo("sdk/js")).unwrap().to_string_lossy().as_bytes());
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
        let out = repo("target/js-guests").join(format!("{parent}-{stem}-{}.wasm", build_key(&src)));
        if out.is_file() {
            return out;
        }
        // Builds of this script from older inputs (12 MB each) go.
        let prefix = format!("{parent}-{stem}-");
        for e in std::fs::read_dir(out.parent().unwrap()).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with(&prefix) && name.ends_with(".wasm") {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let cli = env!("CARGO_BIN_EXE_sluice-test-cli");
        let (o, cache) = (out.display().to_string(), cache_dir().display().to_string());
        let r = sluice_js(&[
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

/// The line of `script` (a repository path) holding `code`, 1-based.
fn line_of(script: &str, code: &str) -> usize {
    let text = std::fs::read_to_string(repo(script)).unwrap();
    let lines: Vec<usize> = text.lines().enumerate().filter(|(_, l)| l.contains(code)).map(|(i, _)| i + 1).collect();
    assert_eq!(lines.len(), 1, "`{code}` in {script}: {lines:?}");
    lines[0]
}

fn log_text(job: &Job) -> String {
    sluice_runtime::JobDir::open(job.job_dir())
        .log_files()
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect()
}

#[test]
fn the_js_tabular_example_gives_tabular_classifiers_output_byte_for_byte() {
    let js = built("plugins/tabular-classifier-js/score.js");
    for (data, size) in [("examples/tabular/data", "300 rows"), ("tests/fixtures/tabular/bad", "4 rows")] {
        let (rust, script) = (tabular(TABULAR_CLASSIFIER, data, size), tabular(&wasm(&js), data, size));
        let (r, j) = (rust.run(), script.run());
        assert_eq!(j.status, r.status, "{data}: {:?}", j.reason);
        assert_eq!((j.items.succeeded, j.items.failed), (r.items.succeeded, r.items.failed), "{data}");
        assert!(j.items.succeeded > 0, "{data}");
        let (want, got) =
            (std::fs::read(rust.out_path("csv")).unwrap(), std::fs::read(script.out_path("csv")).unwrap());
        assert!(
            want == got,
            "{data}: the outputs differ:\n{}\n---\n{}",
            String::from_utf8_lossy(&want),
            String::from_utf8_lossy(&got)
        );
        // The same item errors, rows and words ("empty value in mean_radius...").
        assert_eq!(error_lines(&script), error_lines(&rust), "{data}");
    }
}

#[test]
fn an_azure_style_score_js_scores_like_the_rust_plugin() {
    let js = built("examples/js-azure/score.js");
    let (rust, script) = (
        tabular(TABULAR_CLASSIFIER, "examples/tabular/data", "300 rows"),
        tabular(&wasm(&js), "examples/tabular/data", "300 rows"),
    );
    let (r, j) = (rust.run(), script.run());
    assert_eq!((j.mini_batches.failed, j.items.succeeded), (0, 1000), "{:?}", j.reason);
    assert_eq!(r.items.succeeded, 1000);
    assert!(std::fs::read(rust.out_path("csv")).unwrap() == std::fs::read(script.out_path("csv")).unwrap());
    // `info(...)` in its init() reached the job's log.
    let logs = log_text(&script);
    assert!(logs.contains("model model loaded: inputs input"), "{logs}");
}

#[test]
fn state_set_in_init_is_there_in_every_run() {
    // One instance runs all four mini-batches. The scorer keeps its model
    // (from init) and the feature columns it found on the first mini-batch
    // on `this`, and logs the features once, when it finds them: once for
    // the instance, not once per run.
    let js = built("plugins/tabular-classifier-js/score.js");
    let job = tabular(&wasm(&js), "examples/tabular/data", "250 rows").set("max_concurrency_per_instance", "1");
    let r = job.run();
    assert_eq!((r.mini_batches.succeeded, r.mini_batches.failed), (4, 0), "{:?}", r.first_errors);
    let logs = log_text(&job);
    assert_eq!(logs.matches("tabular-classifier: model model, outputs label and probabilities").count(), 1, "{logs}");
    assert_eq!(logs.matches("tabular-classifier: 30 feature columns").count(), 1, "{logs}");
}

#[test]
fn a_thrown_error_in_run_fails_the_mini_batch_with_the_users_file_and_line() {
    // The Azure-style example on rows without an `id` column:
    // `rows.get('id')` throws a RangeError in its run().
    let js = built("examples/js-azure/score.js");
    let csv = std::fs::read_to_string(repo("examples/tabular/data/part-00000.csv")).unwrap();
    let no_id: String = csv.lines().take(4).map(|l| format!("{}\n", l.split_once(',').unwrap().1)).collect();
    let job = Job::tabular(&wasm(&js))
        .model("model", "examples/tabular/model")
        .file("no_id.csv", no_id)
        .set("retry_settings.max_retries", "0")
        .output("csv");
    let r = job.run();
    assert_eq!(r.mini_batches.failed, 1);
    let line = line_of("examples/js-azure/score.js", "id: rows.get('id'),");
    let want = format!("RangeError: no delivered column `id` (delivered: none) at score.js:{line}:");
    let record = &job.records()["no_id.csv"];
    assert_eq!(record["reason"].as_str(), "USER_ERROR");
    assert!(record["message"].starts_with(&want), "{}", record["message"]);
    assert!(record["message"].ends_with(" in run()"), "{}", record["message"]);
    assert!(!record["message"].contains("unreachable") && !record["message"].contains(".sluice-sdk"));
    let errors = error_lines(&job);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!((errors[0].2.as_str(), errors[0].3.as_str()), ("USER_ERROR", record["message"].as_str()));
    // The stack, frame by frame, is in the instance's log.
    let logs = log_text(&job);
    assert!(logs.contains("run() threw RangeError: no delivered column `id` (delivered: none)"), "{logs}");
    assert!(logs.contains(&format!("at score.js:{line}:")), "{logs}");
}

#[test]
fn user_errors_in_init_and_run_fail_with_their_message() {
    let js = wasm(&built("plugins/tabular-classifier-js/score.js"));
    // An exception from init (the model is not granted) names its place too.
    let job = tabular(&js, "examples/tabular/data", "1000 rows")
        .set("task.config.model", "other")
        .set("retry_settings.max_retries", "0");
    let r = job.run();
    assert_eq!(r.mini_batches.failed, 1);
    let e = &r.first_errors[0];
    let line = line_of("plugins/tabular-classifier-js/score.js", "this.model = Model.load(name);");
    assert_eq!(e.code.to_string(), "USER_ERROR");
    assert!(e.message.starts_with("init: OnnxError: unknown-model: "), "{}", e.message);
    assert!(e.message.contains("other") && e.message.contains(&format!(" at score.js:{line}:")), "{}", e.message);
    assert!(e.message.ends_with(" in init()"), "{}", e.message);

    // UserError (here the SDK's, from `requireRows` on file input): its message alone.
    let job = Job::new(&js)
        .model("model", "examples/tabular/model")
        .file("a.txt", "x")
        .set("retry_settings.max_retries", "0");
    let r = job.run();
    assert_eq!(r.mini_batches.failed, 1);
    assert_eq!(r.first_errors[0].code.to_string(), "USER_ERROR");
    assert_eq!(r.first_errors[0].message, "this scorer needs tabular input (an input of type: mltable)");
}

#[test]
fn item_errors_fail_only_their_rows() {
    // A feature list naming a column the data lacks: every row is an item
    // error with the scorer's words; the mini-batch itself succeeds.
    let js = wasm(&built("plugins/tabular-classifier-js/score.js"));
    let job = tabular(&js, "examples/tabular/data", "1000 rows")
        .set("task.config.features", "mean_radius,no_such_column")
        .set("error_threshold", "-1");
    let r = job.run();
    assert_eq!((r.mini_batches.succeeded, r.mini_batches.failed), (1, 0), "{:?}", r.first_errors);
    assert_eq!((r.items.succeeded, r.items.failed), (0, 1000));
    let errors = error_lines(&job);
    assert_eq!(errors.len(), 1000);
    assert!(errors.iter().all(|(_, _, _, m)| m == "missing feature columns: no_such_column"), "{:?}", errors[0]);
}

#[test]
fn the_build_names_what_cannot_work_before_building() {
    let dir = tempfile::tempdir().unwrap();
    let build = |name: &str, src: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, src).unwrap();
        let out = dir.path().join("out.wasm");
        let started = std::time::Instant::now();
        let o = sluice_js(&["build", &p.display().to_string(), "-o", &out.display().to_string()]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(!out.exists());
        // Refused by the source check, not after a componentize-js run.
        assert!(started.elapsed() < std::time::Duration::from_secs(8), "{:?}", started.elapsed());
        text(&o)
    };
    let said = build("score.js", "import fs from 'node:fs';\nexport function run(miniBatch) { return []; }\n");
    assert!(
        said.contains("score.js:1:16: `import 'node:fs'`: Node.js built-in modules do not exist in the sandbox"),
        "{said}"
    );
    let said =
        build("score.js", "import ort from 'onnxruntime-node';\nexport function run(miniBatch) { return []; }\n");
    assert!(said.contains("onnxruntime-node needs native code") && said.contains("Model.load('model')"), "{said}");
    let said = build(
        "score.js",
        "import * as s from 'sluice-sdk';\nconst model = s.Model.load('model');\nexport function run(miniBatch) { return []; }\n",
    );
    assert!(
        said.contains(
            "score.js:2:15: `s.Model.load()` at module top level: host imports (onnx, batch, log) can only be called from \
             init/run, not at import time"
        ),
        "{said}"
    );
    let said = build("score.js", "const x = 1;\n");
    assert!(said.contains("defines no scorer"), "{said}");
    assert!(!said.contains("wizer") && !said.contains("    at "), "{said}");
}

#[test]
fn the_js_sdks_unit_tests_pass() {
    let o = Command::new(node())
        .args(["--import", "./test/register.mjs", "--test", "test/"])
        .current_dir(repo("sdk/js"))
        .output()
        .unwrap();
    let said = text(&o);
    assert!(o.status.success(), "{said}");
    assert!(said.contains("# fail 0") && !said.contains("# pass 0"), "{said}");
}

#[test]
fn the_wit_bundled_in_the_js_sdk_is_the_repositorys() {
    // Checked in (so the package builds from anywhere) and kept equal to
    // wit/ by this test.
    let names = |d: &str| {
        let mut v: Vec<_> = std::fs::read_dir(repo(d)).unwrap().map(|e| e.unwrap().file_name()).collect();
        v.sort();
        v
    };
    assert_eq!(names("sdk/js/wit"), names("wit"));
    for name in names("wit") {
        let (a, b) = (repo("wit").join(&name), repo("sdk/js/wit").join(&name));
        assert!(
            std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
            "{} differs from {}: copy wit/ into sdk/js/wit",
            b.display(),
            a.display()
        );
    }
}

/// A componentize-js build with its defaults (as `jco componentize` makes
/// it) imports `wasi:http`, which the host does not link: `validate` says
/// so by name, before any compile, instead of calling the import "ok" and
/// failing to link. The SDK's build (`http` and `fetch-event` disabled)
/// does not import it: the examples above validate clean.
#[test]
fn validate_names_wasi_http_as_not_provided_in_a_default_componentize_js_build() {
    let dir = tempfile::tempdir().unwrap();
    let (src, out) = (dir.path().join("plain.js"), dir.path().join("plain.wasm"));
    std::fs::write(
        &src,
        "export function init(config) {}\nexport function run(batch) { throw new Error('unused'); }\n",
    )
    .unwrap();
    let script = format!(
        "import {{ componentize }} from '@bytecodealliance/componentize-js';\n\
         import {{ writeFileSync }} from 'node:fs';\n\
         const {{ component }} = await componentize({{ sourcePath: {src:?}, witPath: 'wit', worldName: 'scorer' }});\n\
         writeFileSync({out:?}, component);\n",
        src = src.display().to_string(),
        out = out.display().to_string()
    );
    let o =
        Command::new(node()).args(["--input-type=module", "-e", &script]).current_dir(repo("sdk/js")).output().unwrap();
    assert!(o.status.success(), "componentize failed:\n{}", text(&o));
    let v = Command::new(env!("CARGO_BIN_EXE_sluice-test-cli")).arg("validate").arg(&out).arg("--no-cache").output();
    let v = v.unwrap();
    let said = text(&v);
    assert_eq!(v.status.code(), Some(1), "{said}");
    // The import list: each `wasi:http` import MISSING, the rest ok.
    let imports: Vec<&str> =
        said.lines().map(str::trim_start).filter(|l| l.starts_with("ok ") || l.starts_with("MISSING ")).collect();
    let http: Vec<&&str> = imports.iter().filter(|l| l.contains("wasi:http/")).collect();
    assert!(!http.is_empty() && http.iter().all(|l| l.starts_with("MISSING")), "{said}");
    assert!(imports.iter().filter(|l| !l.contains("wasi:http/")).all(|l| l.starts_with("ok ")), "{said}");
    assert!(said.contains("the host does not link `wasi:http/"), "{said}");
    assert!(said.contains("does NOT fit the sluice:scorer world"), "{said}");
}
