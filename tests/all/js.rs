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

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::helpers::*;
use crate::sdk_guests::{
    Sdk, error_lines, keeps_its_state_from_init, line_of, scores_like_the_rust_plugin, tabular, text, wasm, without_ids,
};

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

/// `node sdk/js/bin/sluice-js.mjs ARGS` from the repository root.
fn sluice_js(args: &[&str]) -> Output {
    Command::new(node()).arg("sdk/js/bin/sluice-js.mjs").args(args).current_dir(repo("")).output().unwrap()
}

/// The JavaScript SDK's build, as the tests run it.
const JS_SDK: Sdk = Sdk {
    out_dir: "target/js-guests",
    root: "sdk/js",
    inputs: &["sdk/js/package-lock.json", "sdk/js/src", "sdk/js/lib", "sdk/js/wit"],
    command: sluice_js,
};

fn built(script: &str) -> PathBuf {
    crate::sdk_guests::built(&JS_SDK, script)
}

#[test]
fn the_js_tabular_example_gives_tabular_classifiers_output_byte_for_byte() {
    let js = built("plugins/tabular-classifier-js/score.js");
    scores_like_the_rust_plugin(&js);
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
    keeps_its_state_from_init(&js);
}

#[test]
fn a_thrown_error_in_run_fails_the_mini_batch_with_the_users_file_and_line() {
    // The Azure-style example on rows without an `id` column:
    // `rows.get('id')` throws a RangeError in its run().
    let js = built("examples/js-azure/score.js");
    let job = without_ids(&js);
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
