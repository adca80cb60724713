//! The `onnx` host import: models by name from the job's grants, each typed
//! error, column sources, a missing runtime library, and inference that
//! overruns the `run()` deadline.

use std::collections::HashMap;
use std::process::Command;

use crate::helpers::*;

/// Runs the probe guest over files named after probes; returns probe ->
/// (code, message).
fn probes(names: &[&str], extra: impl FnOnce(Job) -> Job) -> HashMap<String, (String, String)> {
    let mut job = Job::new(ONNX_PROBE)
        .model("model", "examples/tabular/model")
        .model("pairs", "host/onnx/tests/fixtures/pairs.onnx")
        .set("limits.max_tensor_mb", "1");
    for n in names {
        job = job.file(&format!("{n}.txt"), "");
    }
    let job = extra(job).output("csv");
    let r = job.run();
    assert_eq!(r.mini_batches.failed, 0, "{:?}", r.first_errors);
    let (_, rows) = job.csv_rows();
    rows.into_iter().map(|r| (r[0].clone(), (r[1].clone(), r[2].clone()))).collect()
}

#[test]
fn each_bad_request_is_a_typed_error_and_a_good_one_runs() {
    let got = probes(
        &[
            "ok",
            "unknown-model",
            "unknown-input",
            "unknown-output",
            "type-mismatch",
            "shape-mismatch",
            "count-mismatch",
            "too-large",
            "column-source-in-file-mode",
            "bad-select",
            "runtime-failure",
        ],
        |j| j,
    );
    let expect = |probe: &str, code: &str, words: &[&str]| {
        let (c, m) = &got[probe];
        assert_eq!(c, code, "{probe}: {m}");
        for w in words {
            assert!(m.contains(w), "{probe}: `{m}` lacks `{w}`");
        }
    };
    expect("ok", "ok", &["label[2]", "probabilities[2, 2]"]);
    expect("unknown-model", "unknown-model", &["no-such-model", "model"]);
    expect("unknown-input", "unknown-name", &["nope"]);
    expect("unknown-output", "unknown-name", &["nope"]);
    expect("type-mismatch", "type-mismatch", &["input", "f32", "f64"]);
    expect("shape-mismatch", "shape-mismatch", &["input"]);
    expect("count-mismatch", "shape-mismatch", &["29"]);
    expect("too-large", "too-large", &["max_tensor_mb"]);
    expect("column-source-in-file-mode", "invalid-input", &["tabular"]);
    expect("bad-select", "invalid-input", &["index 7"]);
    expect("runtime-failure", "runtime-failure", &["pairs"]);
}

#[test]
fn column_sources_feed_the_model_from_the_hosts_copy_of_the_rows() {
    let mut header: Vec<String> = vec!["id".into()];
    header.extend((0..30).map(|i| format!("f{i}")));
    let row = |id: usize, null_at: Option<usize>| {
        let mut cells = vec![id.to_string()];
        cells.extend((0..30).map(|i| if Some(i) == null_at { String::new() } else { format!("{}.5", i + id) }));
        cells.join(",")
    };
    let csv = format!("{}\n{}\n{}\n", header.join(","), row(1, None), row(2, None));
    let job = Job::tabular(ONNX_PROBE).model("model", "examples/tabular/model").file("a.csv", &csv).output("csv");
    job.run();
    let (_, rows) = job.csv_rows();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][1], "ok", "{:?}", rows[0]);
    assert!(rows[0][2].contains("columns prediction probability"), "{:?}", rows[0]);

    // A null cell in a column source is a typed error naming the cell.
    let csv = format!("{}\n{}\n{}\n", header.join(","), row(1, None), row(2, Some(4)));
    let job = Job::tabular(ONNX_PROBE).model("model", "examples/tabular/model").file("a.csv", &csv).output("csv");
    job.run();
    let (_, rows) = job.csv_rows();
    assert_eq!(rows[0][1], "invalid-input");
    assert!(rows[0][2].contains("column `f4` is null at row 1 (a.csv row 1)"), "{}", rows[0][2]);
}

#[test]
fn a_model_the_job_does_not_grant_fails_init_with_its_name() {
    let job = Job::tabular(TABULAR_CLASSIFIER)
        .files_from("examples/tabular/data")
        .model("model", "examples/tabular/model")
        .set("task.config.model", "other")
        .set("retry_settings.max_retries", "0");
    let r = job.run();
    assert_eq!(r.mini_batches.succeeded, 0);
    let m = &r.first_errors[0].message;
    assert!(m.contains("init") && m.contains("UnknownModel") && m.contains("other"), "{m}");
}

#[test]
fn inference_past_the_deadline_is_terminated_as_timeout() {
    let job = Job::new(ONNX_PROBE)
        .model("model", "examples/tabular/model")
        // The probe's `slow` run on the spin fixture takes 20s or more uncut
        // (host/onnx/tests/models.rs checks the fixture outlasts its
        // deadlines tenfold): only the 1s deadline can end it early.
        .model("slow", "host/onnx/tests/fixtures/spin.onnx")
        .file("slow.txt", "")
        .set("retry_settings.timeout", "1")
        .set("retry_settings.max_retries", "0")
        .output("csv");
    let started = std::time::Instant::now();
    let r = job.run_within(60);
    assert_eq!(r.mini_batches.failed, 1, "{:?}", std::fs::read_to_string(job.out_path("csv")));
    let e = &r.first_errors[0];
    assert_eq!(e.code.to_string(), "TIMEOUT");
    assert!(e.message.contains("ONNX"), "{}", e.message);
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "{:?}", started.elapsed());
}

#[test]
fn a_missing_runtime_library_is_an_error_naming_the_fix() {
    let job = Job::tabular(TABULAR_CLASSIFIER).files_from("examples/tabular/data");
    let model = repo("examples/tabular/model");
    let o = Command::new(env!("CARGO_BIN_EXE_sluice-test-cli"))
        .env("SLUICE_CACHE_DIR", cache_dir())
        .env("SLUICE_ONNXRUNTIME", job.dir.path().join("nowhere/libonnxruntime.so"))
        .args(["run", "--input"])
        .arg(job.input())
        .args(["--tabular", "--scorer", TABULAR_CLASSIFIER, "--job-dir"])
        .arg(job.job_dir())
        .arg("--model")
        .arg(format!("model={}", model.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("nowhere/libonnxruntime.so"), "{stderr}");
    assert!(stderr.contains("scripts/install-onnxruntime.sh"), "{stderr}");
}

#[test]
fn a_run_cut_into_row_chunks_scores_like_smaller_mini_batches() {
    // 20,000 rows (the example's 1,000, twenty times with fresh ids): in one
    // mini-batch the host runs the model in row chunks of 8,192; in
    // 4,000-row mini-batches each run is whole. The rows must score alike.
    let mut csv = String::new();
    let mut header = None;
    let mut rows = Vec::new();
    for e in std::fs::read_dir(repo("examples/tabular/data")).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        let mut lines = text.lines();
        header = lines.next().map(str::to_string);
        rows.extend(lines.map(|l| l.split_once(',').unwrap().1.to_string()));
    }
    rows.sort();
    csv.push_str(&header.unwrap());
    csv.push('\n');
    for i in 0..20_000 {
        csv.push_str(&format!("{i},{}\n", rows[i % rows.len()]));
    }
    let run = |size: &str| {
        let job = Job::tabular(TABULAR_CLASSIFIER)
            .model("model", "examples/tabular/model")
            .file("big.csv", &csv)
            .set("mini_batch_size", size)
            .output("csv");
        let r = job.run();
        assert_eq!(r.status, sluice_job::result::JobStatus::Completed, "{:?}", r.reason);
        std::fs::read_to_string(job.out_path("csv")).unwrap()
    };
    let chunked = run("1 files");
    assert_eq!(chunked.lines().count(), 20_001);
    assert_eq!(chunked, run("4000"));
}

#[test]
fn a_model_that_is_not_row_wise_is_run_whole_not_in_chunks() {
    // 10,000 rows (more than a chunk of 8,192) through ReduceMean over the
    // rows: the host's first chunk shows the output is not one row per
    // input row, so the model runs once over every row. Chunk by chunk it
    // would give 6 values, the means of each chunk.
    let mut csv = String::from("x0,x1,x2\n");
    for i in 0..10_000 {
        csv.push_str(&format!("{},{},1\n", i % 10, 2 * (i % 10)));
    }
    let job = Job::tabular(ONNX_PROBE)
        .model("mean", "host/onnx/tests/fixtures/batch_mean.onnx")
        .file("rows.csv", &csv)
        .set("mini_batch_size", "1 files")
        .output("csv");
    let r = job.run();
    assert_eq!(r.status, sluice_job::result::JobStatus::Completed, "{:?}", r.reason);
    let (_, rows) = job.csv_rows();
    assert_eq!(rows.len(), 10_000);
    assert_eq!((rows[0][0].as_str(), rows[0][1].as_str()), ("columns-mean", "ok"), "{:?}", rows[0]);
    assert_eq!(rows[0][2], "3 values: [4.5, 9.0, 1.0]");
}

/// `run-into-result` (sluice:scorer 0.1.3): the model's to-columns go into
/// the result in the host, after the columns added before and before those
/// added after, so a scorer that receives no column and no row origin
/// gives tabular-classifier's output byte for byte. Each refusal is typed
/// and adds nothing.
#[test]
fn run_into_result_puts_the_models_columns_into_the_result_in_the_host() {
    let job = Job::tabular(ONNX_PROBE)
        .files_from("examples/tabular/data")
        .model("model", "examples/tabular/model")
        .set("task.config.into_result", "yes")
        .set("max_concurrency_per_instance", "1")
        .output("csv");
    let r = job.run();
    assert_eq!(r.status, sluice_runtime::JobStatus::Completed, "{:?} {:?}", r.reason, r.first_errors);
    assert_eq!(r.mini_batches.failed, 0, "{:?}", r.first_errors);
    let classifier = Job::tabular(TABULAR_CLASSIFIER)
        .files_from("examples/tabular/data")
        .model("model", "examples/tabular/model")
        .output("csv");
    classifier.run();
    let (got, want) = (std::fs::read(job.out_path("csv")).unwrap(), std::fs::read(classifier.out_path("csv")).unwrap());
    assert!(got == want, "{}\n---\n{}", String::from_utf8_lossy(&got), String::from_utf8_lossy(&want));

    let logs = log_text(&job);
    for want in [
        "into-result in init: invalid-input: no tabular mini-batch is being run",
        "into-result fetch: invalid-input: run-into-result adds its to-columns to the result: `fetch` must be empty",
        "into-result no columns: invalid-input",
        "into-result unknown output: unknown-name: model `model` has no output `nope`",
        "into-result taken name: invalid-input: result column `id` is empty or already added",
        "into-result scored: ok ",
    ] {
        assert!(logs.contains(want), "`{want}` in:\n{logs}");
    }
}
