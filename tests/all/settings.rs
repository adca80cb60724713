//! Job settings reach what they control: `init(config)`'s arguments and
//! environment, command-line flags over the YAML, the wasm stack cap and
//! ONNX Runtime's threads.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::*;

/// `sluice`, listing its jobs in `data` (not the user's registry).
fn sluice(data: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice-test-cli"));
    c.env("SLUICE_CACHE_DIR", cache_dir()).env("SLUICE_DATA_DIR", data);
    c
}

/// The flaky scorer's rows: name -> (settings, arguments, environment).
fn init_rows(job: &Job) -> Vec<(String, String, String, String)> {
    let (h, rows) = job.csv_rows();
    let col = |name: &str| h.iter().position(|c| c == name).unwrap_or_else(|| panic!("no {name} in {h:?}"));
    let (n, s, a, e) = (col("name"), col("settings"), col("arguments"), col("environment"));
    rows.iter().map(|r| (r[n].clone(), r[s].clone(), r[a].clone(), r[e].clone())).collect()
}

#[test]
fn environment_variables_and_program_arguments_reach_init_config() {
    let job = Job::new(FLAKY)
        .file("a.txt", "")
        .set("task.config.threshold", "0.5")
        .set("task.program_arguments", "--mode 'a b' -v")
        .set("environment_variables.REGION", "eu")
        .set("environment_variables.TIER", "2")
        .output("csv");
    job.run();
    let rows = init_rows(&job);
    assert_eq!(rows.len(), 1);
    let (_, settings, arguments, environment) = &rows[0];
    assert_eq!(settings, "threshold=0.5");
    assert_eq!(arguments, "--mode|a b|-v", "split like a shell");
    assert_eq!(environment, "REGION=eu;TIER=2");
}

#[test]
fn flags_win_over_the_yaml() {
    // The YAML asks for one file per mini-batch, two instances, three
    // retries and its own config, arguments and environment; the flags
    // override each. `partial_on_call: 2` (YAML only) still applies: each
    // instance's 2nd call fails (rows for half its files). With the flags'
    // one instance and no retries, the second mini-batch fails once and
    // for all; with the YAML's two instances it would not fail, and with
    // its three retries it would recover.
    let job = Job::new(FLAKY).file("a.txt", "").file("b.txt", "").file("c.txt", "").file("d.txt", "");
    let spec = job.dir.path().join("job.yaml");
    std::fs::write(
        &spec,
        format!(
            "type: parallel\nname: flags\n\
             inputs:\n  files: {{type: uri_folder, path: ./in}}\n\
             input_data: ${{{{inputs.files}}}}\nmini_batch_size: \"1\"\nmax_concurrency_per_instance: 2\n\
             retry_settings:\n  max_retries: 3\n\
             environment_variables: {{REGION: yaml}}\n\
             task:\n  code: {FLAKY}\n  append_row_to: ./out.csv\n  program_arguments: --from yaml\n\
             \x20 config: {{tag: yaml, partial_on_call: \"2\"}}\n"
        ),
    )
    .unwrap();
    let o = sluice(job.dir.path())
        .arg("run")
        .arg(&spec)
        .arg("--job-dir")
        .arg(job.job_dir())
        .args(["-q", "--mini-batch-size", "2", "--max-concurrency", "1", "--max-retries", "0"])
        .args(["--config", "tag=flag", "--env", "REGION=flag", "--program-arguments", "--from flag"])
        .output()
        .unwrap();
    assert!(o.status.code().is_some(), "{}", String::from_utf8_lossy(&o.stderr));
    let result = job.result_json();
    assert_eq!(result["mini_batches"]["total"], 2, "--mini-batch-size 2 over 4 files: {result}");
    assert_eq!(result["mini_batches"]["failed"], 1, "{result}");
    assert_eq!(job.records()["c.txt"]["tries"], "1", "--max-retries 0: one try");
    let rows = init_rows(&job);
    assert_eq!(rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(), ["a.txt", "b.txt"]);
    let (_, settings, arguments, environment) = &rows[0];
    assert!(settings.contains("tag=flag") && !settings.contains("tag=yaml"), "{settings}");
    assert!(settings.contains("partial_on_call=2"), "a YAML key without a flag stays: {settings}");
    assert_eq!(arguments, "--from|flag");
    assert_eq!(environment, "REGION=flag");
}

#[test]
fn max_wasm_stack_kb_sets_how_deep_a_guest_can_recurse() {
    // The same recursion overflows a small stack, fits the default 1 MiB,
    // and a deeper one needs the cap raised.
    let depth = |n: u64, kb: Option<&str>| {
        let mut job = Job::new(FLAKY).file(&format!("deep-{n}.txt"), "").set("retry_settings.max_retries", "0");
        if let Some(kb) = kb {
            job = job.set("limits.max_wasm_stack_kb", kb);
        }
        let job = job.output("csv");
        job.run();
        let rec = job.records()[&format!("deep-{n}.txt")].clone();
        (rec["status"].clone(), rec["message"].clone())
    };
    let overflow = |(status, message): (String, String)| {
        assert_eq!(status, "failed");
        assert!(message.contains("stack overflow (limits.max_wasm_stack_kb)"), "{message}");
    };
    overflow(depth(SHALLOW, Some("64")));
    assert_eq!(depth(SHALLOW, None).0, "succeeded");
    overflow(depth(DEEP, None));
    assert_eq!(depth(DEEP, Some("8192")).0, "succeeded");
}

/// Frames that need more than 64 KiB and less than 1 MiB of wasm stack,
/// and more than 1 MiB and less than 8 MiB (measured: about 78 bytes a
/// frame, 13,000 frames fit in the default 1 MiB and 14,000 do not).
const SHALLOW: u64 = 5_000;
const DEEP: u64 = 60_000;

/// The most threads `pid` had while `child` ran.
fn peak_threads(child: &mut std::process::Child) -> usize {
    let task = format!("/proc/{}/task", child.id());
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        if let Ok(d) = std::fs::read_dir(&task) {
            peak = peak.max(d.count());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait().unwrap();
    peak
}

#[test]
fn onnx_intra_op_threads_sets_the_threads_of_each_session() {
    // Two identical jobs (a granted model, so the job loads a session; a
    // scorer that sleeps into its 1s timeout meanwhile) but for
    // onnx.intra_op_threads: ONNX Runtime gives a session of N threads
    // N - 1 pool threads of its own, so 4 against 1 is 3 more threads.
    let job = Job::new(ADVERSARY).file("sleep.txt", "");
    let model = repo("host/onnx/tests/fixtures/double_sum.onnx");
    let start = |threads: &str| {
        sluice(job.dir.path())
            .args(["run", "-q", "--input"])
            .arg(job.input())
            .args(["--scorer", ADVERSARY, "--timeout", "1", "--max-retries", "0", "--max-concurrency", "1"])
            .arg("--model")
            .arg(format!("m={}", model.display()))
            .args(["--set", &format!("onnx.intra_op_threads={threads}"), "--job-dir"])
            .arg(job.dir.path().join(format!("job{threads}")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let (mut one, mut four) = (start("1"), start("4"));
    let four = std::thread::spawn(move || peak_threads(&mut four));
    let one = peak_threads(&mut one);
    let four = four.join().unwrap();
    assert!(four >= one + 3, "threads at intra_op_threads 1: {one}, at 4: {four}");
}
