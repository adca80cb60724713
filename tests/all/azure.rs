//! Azure ML YAML as Azure writes it: every schema key accepted, literal inputs and `${{...}}` substitution, extra data inputs.

use std::path::Path;
use std::process::{Command, Output};

use crate::helpers::*;

fn sluice() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice-test-cli"));
    c.env("SLUICE_CACHE_DIR", cache_dir());
    c
}

/// `sluice run FILE -q` in a job directory of the test's own.
fn run_yaml(job: &Job, name: &str, yaml: &str) -> Output {
    let spec = job.dir.path().join(name);
    std::fs::write(&spec, yaml).unwrap();
    sluice().arg("run").arg(&spec).arg("--job-dir").arg(job.job_dir()).arg("-q").output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Azure's `cli/jobs/parallel/2a_iris_batch_prediction/parallel_component.yml`
/// as Azure writes it, pointed at local data, the bundled model folder and
/// the classifier .wasm.
fn iris_component(data: &Path, model: &Path, scorer: &Path) -> String {
    format!(
        r#"
$schema: http://azureml/sdk-2-0/ParallelComponent.json
name: batch_score_component
type: parallel
version: 1.0.0
display_name: BatchScore
description: parallel component for batch score
is_deterministic: true
tags:
  owner: sluice
inputs:
  input_data:
    type: mltable
    description: The data to be split and scored in parallel.
    optional: false
    path: {data}
  score_model:
    type: uri_folder
    description: the score model
    optional: false
    path: {model}
outputs:
  job_output_file:
    type: uri_file
    description: the append row output
    path: ./predictions.csv

input_data: ${{{{inputs.input_data}}}}
mini_batch_size: "300 rows"
resources:
    instance_count: 1
    instance_type: Standard_D3_v2
max_concurrency_per_instance: 2

logging_level: "DEBUG"
error_threshold: 5
mini_batch_error_threshold: 4
retry_settings:
  max_retries: 2
  timeout: 60

environment_variables:
  "AZUREML_PARALLEL_EXAMPLE": "2a_yaml"

task:
  type: run_function
  code: "{code}"
  entry_script: {entry}
  environment:
    name: "prs-env"
    version: 1
    image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04
    conda_file: ./environment/environment_parallel.yml
  program_arguments: >-
    --model ${{{{inputs.score_model}}}}
    --allowed_failed_percent 30
    --task_overhead_timeout 1200
  append_row_to: ${{{{outputs.job_output_file}}}}
"#,
        data = data.display(),
        model = model.display(),
        code = scorer.parent().unwrap().display(),
        entry = scorer.file_name().unwrap().to_string_lossy(),
    )
}

#[test]
fn azure_iris_parallel_component_runs_with_its_uri_folder_model() {
    let job = Job::new(TABULAR_CLASSIFIER);
    // An Azure mltable folder: the data files and the MLTable file that
    // says how to read them.
    let data = job.dir.path().join("iris-mltable");
    std::fs::create_dir_all(&data).unwrap();
    for e in std::fs::read_dir(repo("examples/tabular/data")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), data.join(e.file_name())).unwrap();
    }
    std::fs::write(
        data.join("MLTable"),
        "$schema: https://azuremlschemas.azureedge.net/latest/MLTable.schema.json\ntype: mltable\n\
         paths:\n  - pattern: ./*.csv\ntransformations:\n  - read_delimited:\n      delimiter: ','\n      \
         header: all_files_same_headers\n      encoding: utf8\n",
    )
    .unwrap();
    let yaml = iris_component(&data, &repo("examples/tabular/model"), Path::new(TABULAR_CLASSIFIER));
    let o = run_yaml(&job, "parallel_component.yml", &yaml);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // The model folder, passed as Azure passes it, is granted by its input
    // name: the classifier's predictions are the stored ONNX Runtime ones.
    let out = job.dir.path().join("predictions.csv");
    assert_eq!(predictions(&out), predictions(&repo("tests/fixtures/tabular/expected.csv")));
    let result = job.result_json();
    assert_eq!(result["status"], "completed", "{result}");
    // Keys without a meaning here are accepted with one note each.
    let err = stderr(&o);
    for note in [
        "version, tags are ignored",
        "is_deterministic is ignored",
        "resources.instance_type is ignored",
        "task.environment is ignored",
    ] {
        assert!(err.contains(note), "no note `{note}` in:\n{err}");
    }
}

/// `--input DIR` fills the port `input_data` names, keeping its type
/// (here `mltable`), so a component declared without a path runs as
/// `sluice run component.yml --input DIR`.
#[test]
fn input_fills_the_port_input_data_names() {
    let job = Job::new(TABULAR_CLASSIFIER);
    let data = repo("examples/tabular/data");
    let yaml = iris_component(&data, &repo("examples/tabular/model"), Path::new(TABULAR_CLASSIFIER))
        .replace(&format!("    path: {}\n", data.display()), "");
    assert!(!yaml.contains(&data.display().to_string()), "the component has no data path");
    let spec = job.dir.path().join("parallel_component.yml");
    std::fs::write(&spec, yaml).unwrap();
    let o = sluice()
        .arg("run")
        .arg(&spec)
        .arg("--input")
        .arg(&data)
        .arg("--job-dir")
        .arg(job.job_dir())
        .arg("-q")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = job.dir.path().join("predictions.csv");
    assert_eq!(predictions(&out), predictions(&repo("tests/fixtures/tabular/expected.csv")));
}

#[test]
fn typos_in_an_azure_component_are_errors_with_did_you_mean() {
    let job = Job::new(TABULAR_CLASSIFIER);
    let yaml =
        iris_component(&repo("examples/tabular/data"), &repo("examples/tabular/model"), Path::new(TABULAR_CLASSIFIER));
    for (from, to, want) in [
        (
            "mini_batch_size:",
            "mini_batch_sise:",
            "`mini_batch_sise`: unknown key `mini_batch_sise`: did you mean `mini_batch_size`?",
        ),
        (
            "  max_retries: 2",
            "  max_retrys: 2",
            "`retry_settings.max_retrys`: unknown key `max_retrys`: did you mean `max_retries`?",
        ),
        (
            "    description: the score model",
            "    descripion: the score model",
            "`inputs.score_model.descripion`: unknown key `descripion`: did you mean `description`?",
        ),
        (
            "--model ${{inputs.score_model}}",
            "--model ${{inputs.score_modle}}",
            "`task.program_arguments`: `${{inputs.score_modle}}` names no input: did you mean `inputs.score_model`?",
        ),
    ] {
        assert!(yaml.contains(from), "{from}");
        let o = run_yaml(&job, "parallel_component.yml", &yaml.replacen(from, to, 1));
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains(&format!("parallel_component.yml: {want}")), "{err}");
    }
}

/// A job over two files with the `flaky` guest, which returns what init() received.
fn echo_job(inputs: &str, task: &str) -> String {
    format!(
        "type: parallel\ninputs:\n  files: {{type: uri_folder, path: ./in}}\n{inputs}\
         outputs:\n  rows: {{type: uri_file, path: ./out.csv}}\n\
         input_data: ${{{{inputs.files}}}}\nmini_batch_size: \"10\"\n\
         task:\n  code: {FLAKY}\n  append_row_to: ${{{{outputs.rows}}}}\n{task}"
    )
}

#[test]
fn literal_inputs_reach_the_scorer_substituted_with_optional_segments() {
    let job = Job::new(FLAKY).file("a.txt", "1").file("b.txt", "2");
    let inputs = "  drop_cols: \"Revenue,Advert\"\n  lagging_orders: {type: string, default: \"1,2,3\"}\n  \
                  threshold: {type: number, default: 0.25, min: 0, max: 1}\n  \
                  method: {type: string, default: exact, enum: [fast, exact]}\n  \
                  limit: {type: integer, optional: true, min: 1}\n";
    let task = "  program_arguments: >-\n    --drop_cols ${{inputs.drop_cols}} --lagging_orders ${{inputs.lagging_orders}}\n    \
                $[[--limit ${{inputs.limit}}]] --threshold ${{inputs.threshold}}\n  \
                config: {method: '${{inputs.method}}'}\n\
                environment_variables: {THRESHOLD: 't=${{inputs.threshold}}'}\n";
    let o = run_yaml(&job, "job.yaml", &echo_job(inputs, task));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (h, rows) = job.csv_rows();
    let col = |name: &str| h.iter().position(|c| c == name).unwrap();
    assert_eq!(rows.len(), 2);
    for r in &rows {
        // The optional segment without a value is gone, brackets and all.
        assert_eq!(r[col("arguments")], "--drop_cols|Revenue,Advert|--lagging_orders|1,2,3|--threshold|0.25");
        assert_eq!(r[col("settings")], "method=exact");
        assert_eq!(r[col("environment")], "THRESHOLD=t=0.25");
    }

    // A value from the command line fills the segment (and is checked).
    let job2 = Job::new(FLAKY).file("a.txt", "1");
    let spec = job2.dir.path().join("job.yaml");
    std::fs::write(&spec, echo_job(inputs, task)).unwrap();
    let run = |set: &str| {
        sluice()
            .arg("run")
            .arg(&spec)
            .args(["--set", set, "--restart", "-q", "--job-dir"])
            .arg(job2.job_dir())
            .output()
            .unwrap()
    };
    let o = run("inputs.limit.value=5");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (h, rows) = job2.csv_rows();
    let args = &rows[0][h.iter().position(|c| c == "arguments").unwrap()];
    assert_eq!(args, "--drop_cols|Revenue,Advert|--lagging_orders|1,2,3|--limit|5|--threshold|0.25");
    let o = run("inputs.limit.value=0");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("`inputs.limit.value`: 0 is below the input's min 1"), "{}", stderr(&o));
    let o = run("inputs.method.value=fastest");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("`inputs.method.value`: `fastest` is not allowed: did you mean `fast`?"),
        "{}",
        stderr(&o)
    );
    let o = run("inputs.threshold.default=high");
    assert!(stderr(&o).contains("`inputs.threshold.default`: `high` is not a number"), "{}", stderr(&o));
}

#[test]
fn data_inputs_are_mounted_read_only_at_their_guest_paths() {
    let job = Job::new(READER).file("a.txt", "1");
    let root = job.dir.path();
    std::fs::create_dir_all(root.join("lookup/nested")).unwrap();
    std::fs::write(root.join("lookup/regions.csv"), "eu,us\n").unwrap();
    std::fs::write(root.join("lookup/nested/x.txt"), "x").unwrap();
    std::fs::create_dir_all(root.join("tables")).unwrap();
    std::fs::write(root.join("tables/rates.csv"), "0.5\n").unwrap();
    std::fs::write(root.join("tables/secret.txt"), "a sibling the scorer must not see").unwrap();
    let yaml = format!(
        "type: parallel\ninputs:\n  files: {{type: uri_folder, path: ./in}}\n  \
         lookup: {{type: uri_folder, path: ./lookup, mode: ro_mount}}\n  \
         rates: {{type: uri_file, path: ./tables/rates.csv, mode: download}}\n\
         input_data: ${{{{inputs.files}}}}\n\
         task:\n  code: {READER}\n  append_row_to: ./out.csv\n  program_arguments: >-\n    \
         --list ${{{{inputs.lookup}}}} --read ${{{{inputs.lookup}}}}/regions.csv\n    \
         --read ${{{{inputs.rates}}}} --list /inputs/rates --read /inputs/rates/../secret.txt\n    \
         --read /tables/secret.txt --write ${{{{inputs.rates}}}} --write /inputs/lookup/new.txt\n"
    );
    let o = run_yaml(&job, "job.yaml", &yaml);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (_, rows) = job.csv_rows();
    assert_eq!(
        rows,
        vec![vec![
            "a.txt".to_string(),
            // The folder, a file in it, the file input alone in its folder;
            // its sibling is out of reach (`..` leaves the grant; the host
            // folder is not granted), and both grants are read-only.
            "nested,regions.csv | eu,us | 0.5 | rates.csv | error: PermissionDenied | error: NotFound \
             | error: PermissionDenied | error: PermissionDenied"
                .to_string()
        ]]
    );
    // Nothing was written through the grants.
    assert_eq!(std::fs::read_to_string(root.join("tables/rates.csv")).unwrap(), "0.5\n");
    assert!(!root.join("lookup/new.txt").exists());
    assert!(
        stderr(&o).contains("inputs.lookup.mode (ro_mount), inputs.rates.mode (download) are ignored"),
        "{}",
        stderr(&o)
    );

    // The resolved guest paths are part of what a resume must match: the
    // stored spec resolves them the same way, so a resume runs nothing new.
    let o = sluice().arg("resume").arg(job.job_dir()).arg("-q").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(job.result_json()["mini_batches"]["resumed"], 1, "{}", job.result_json());
    // Another version of the file input is another job: the resume is
    // refused rather than scoring the rest against it.
    std::fs::write(root.join("tables/rates.csv"), "0.75\n").unwrap();
    let o = sluice().arg("resume").arg(job.job_dir()).arg("-q").output().unwrap();
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("inputs.rates"), "{}", stderr(&o));
}

#[test]
fn a_uri_folder_output_without_a_path_is_refused_clearly() {
    let job = Job::new(FLAKY).file("a.txt", "1");
    let yaml = echo_job("", "  program_arguments: --model_folder ${{outputs.model_folder}}\n")
        .replace("outputs:\n", "outputs:\n  model_folder: {type: uri_folder, mode: rw_mount}\n");
    let o = run_yaml(&job, "job.yaml", &yaml);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(
            "`task.program_arguments`: outputs.model_folder (uri_folder) has no `path`: give it one (the folder the scorer's files go into)"
        ),
        "{}",
        stderr(&o)
    );
}
