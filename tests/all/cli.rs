//! The `sluice` binary: both forms of `run`, exit codes, spec errors.

use std::process::Command;

use crate::helpers::*;

fn sluice() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice-test-cli"));
    c.env("SLUICE_CACHE_DIR", cache_dir());
    c
}

#[test]
fn run_with_flags_exits_0_and_writes_output() {
    let job = Job::new(FILE_STATS).file("a.txt", "1\n");
    let out = job.out_path("csv");
    let o = sluice()
        .args(["run", "--input"])
        .arg(job.input())
        .args(["--scorer", FILE_STATS, "--output"])
        .arg(&out)
        .arg("--job-dir")
        .arg(job.job_dir())
        .args(["--mini-batch-size", "5", "--max-concurrency", "1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("completed"), "{stdout}");
    assert!(stdout.contains("job_result.json"), "{stdout}");
    assert!(std::fs::read_to_string(out).unwrap().starts_with("name,bytes,lines,sha256\na.txt,2,1,"));
}

#[test]
fn run_with_a_yaml_spec_and_a_crossed_threshold_exits_1() {
    let job = Job::new(ECHO).file("a.txt", "fail").file("b.txt", "ok");
    let spec = job.dir.path().join("job.yaml");
    std::fs::write(
        &spec,
        format!(
            "$schema: https://azuremlschemas.azureedge.net/latest/parallelJob.schema.json\n\
             type: parallel\nname: yaml-job\n\
             inputs:\n  files:\n    type: uri_folder\n    path: ./in\n\
             outputs:\n  scores:\n    type: uri_file\n    path: ./out.csv\n\
             input_data: ${{{{inputs.files}}}}\nmini_batch_size: \"1\"\n\
             retry_settings:\n  max_retries: 0\n  timeout: 30\n\
             mini_batch_error_threshold: 0\n\
             compute: azureml:cpu-cluster\n\
             task:\n  type: run_function\n  code: {ECHO}\n  append_row_to: ${{{{outputs.scores}}}}\n  environment: azureml:sklearn:1\n"
        ),
    )
    .unwrap();
    let o = sluice().arg("run").arg(&spec).arg("--job-dir").arg(job.job_dir()).arg("-q").output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("FAILED"), "{stdout}");
    assert!(stdout.contains("mini_batch_error_threshold"), "{stdout}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("compute is ignored"), "ignored keys get a note: {stderr}");
}

#[test]
fn spec_errors_exit_2_and_name_the_key() {
    let job = Job::new(ECHO).file("a.txt", "x");
    let spec = job.dir.path().join("job.yaml");
    std::fs::write(&spec, format!("inputs:\n  d: {{type: uri_folder, path: ./in}}\ninput_data: ${{{{inputs.d}}}}\nretry_settings:\n  max_retrys: 2\ntask:\n  code: {ECHO}\n")).unwrap();
    let o = sluice().arg("run").arg(&spec).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("job.yaml: `retry_settings.max_retrys`: unknown key `max_retrys`: did you mean `max_retries`?"),
        "{err}"
    );

    let o = sluice()
        .args(["run", "--input"])
        .arg(job.input())
        .args(["--scorer", ECHO, "--max-retries", "-3"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("`retry_settings.max_retries`: -3 is out of range"), "{err}");

    let o =
        sluice().args(["run", "--input"]).arg(job.input()).args(["--scorer", "/nope/missing.wasm"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing.wasm: no such file"));
}

#[test]
fn a_file_that_is_not_a_component_is_a_clear_job_error() {
    let job = Job::new(ECHO).file("a.txt", "x");
    let fake = job.dir.path().join("fake.wasm");
    std::fs::write(&fake, b"not wasm").unwrap();
    let o = sluice()
        .args(["run", "--input"])
        .arg(job.input())
        .arg("--scorer")
        .arg(&fake)
        .arg("--job-dir")
        .arg(job.job_dir())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("fake.wasm: not a valid WebAssembly component"), "{err}");
}
