//! The job directory and the commands that read it: `jobs list`, `jobs
//! show`, `jobs logs`, `replay`, `resume`, `validate`, `compile`.

use std::process::{Command, Output, Stdio};

use crate::helpers::*;

/// `sluice` with its own data directory.
fn sluice(data: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice-test-cli"));
    c.env("SLUICE_CACHE_DIR", cache_dir()).env("SLUICE_DATA_DIR", data);
    c
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A job with a good file, a bad item, and a panicking mini-batch, run by
/// the CLI under the name `jobdemo` (default job directory).
fn failing_job(data: &std::path::Path) -> Job {
    let job = Job::new(ADVERSARY).file("a.txt", "fine").file("panic.txt", "x").file("z.txt", "fine");
    let o = sluice(data)
        .args(["run", "--input"])
        .arg(job.input())
        .args(["--scorer", ADVERSARY, "--mini-batch-size", "1", "--max-retries", "0", "--max-concurrency", "1"])
        .args(["--set", "name=jobdemo", "-q", "--output"])
        .arg(job.out_path("csv"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    job
}

fn only_job_dir(data: &std::path::Path) -> std::path::PathBuf {
    let dirs: Vec<_> = std::fs::read_dir(data.join("jobs")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

#[test]
fn the_job_directory_holds_every_file_a_person_needs() {
    let data = tempfile::tempdir().unwrap();
    let _job = failing_job(data.path());
    let dir = only_job_dir(data.path());
    assert!(dir.file_name().unwrap().to_string_lossy().starts_with("jobdemo-20"), "{dir:?}");

    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("job_result.json")).unwrap()).unwrap();
    assert_eq!(result["status"], "completed_with_errors");
    assert_eq!(result["mini_batches"]["failed"], 1);
    assert_eq!(result["items"]["succeeded"], 2);
    assert_eq!(result["thresholds"]["error_threshold"], -1);
    assert!(result["timings"]["total_s"].as_f64().unwrap() > 0.0);
    assert_eq!(result["first_errors"][0]["code"], "TRAP");
    assert_eq!(result["first_errors"][0]["item"], "panic.txt");
    assert!(result["errors"].as_str().unwrap().ends_with("errors.jsonl"));

    let pmb = std::fs::read_to_string(dir.join("processed_mini_batches.csv")).unwrap();
    assert!(
        pmb.starts_with("id,index,inputs,items,item_errors,tries,status,reason,message,instance,duration_s\n"),
        "{pmb}"
    );
    assert!(pmb.contains(",panic.txt,1,0,1,failed,TRAP,panicked: scorer bug on panic.txt"), "{pmb}");

    let errors: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("errors.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["input"], "panic.txt");
    assert_eq!(errors[0]["code"], "TRAP");
    assert!(errors[0]["panic"].as_str().unwrap().starts_with("scorer bug on panic.txt"), "{:?}", errors[0]);

    let progress: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("progress.json")).unwrap()).unwrap();
    assert_eq!(progress["status"], "completed_with_errors");
    assert_eq!(progress["mini_batches_done"], 3);

    let res = std::fs::read_to_string(dir.join("resources.csv")).unwrap();
    let mut lines = res.lines();
    assert_eq!(lines.next(), Some("time,elapsed_s,cpu_percent,rss_mib"));
    let sample: Vec<&str> = lines.next().expect("at least one sample").split(',').collect();
    assert!(sample[3].parse::<f64>().unwrap() > 1.0, "RSS in MiB: {sample:?}");

    assert!(dir.join("spec.json").is_file());
    let logs: Vec<_> = std::fs::read_dir(dir.join("logs")).unwrap().collect();
    assert!(!logs.is_empty());
}

#[test]
fn jobs_list_show_and_logs_find_the_failure() {
    let data = tempfile::tempdir().unwrap();
    let _first = failing_job(data.path());
    let second = Job::new(ECHO).file("x.txt", "x");
    let o = sluice(data.path())
        .args(["run", "-q", "--input"])
        .arg(second.input())
        .args(["--scorer", ECHO, "--set", "name=second"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));

    let o = sluice(data.path()).args(["jobs", "list"]).output().unwrap();
    let list = text(&o);
    let lines: Vec<&str> = list.lines().collect();
    assert!(lines[0].starts_with("JOB"), "{list}");
    assert!(lines[1].starts_with("second-") && lines[1].contains("completed"), "newest first: {list}");
    assert!(lines[2].starts_with("jobdemo-") && lines[2].contains("completed_with_errors"), "{list}");
    assert!(lines[2].contains("3/3"), "{list}");

    let o = sluice(data.path()).args(["jobs", "show", "jobdemo", "--failed"]).output().unwrap();
    let show = text(&o);
    assert!(o.status.success(), "{show}");
    assert!(show.contains("status:        completed_with_errors"), "{show}");
    assert!(show.contains("peak RSS"), "{show}");
    assert!(show.contains("TRAP: panicked: scorer bug on panic.txt"), "{show}");
    assert!(!show.contains("a.txt"), "--failed hides the good mini-batches: {show}");
    let id = show
        .lines()
        .find(|l| l.contains("panic.txt") && l.contains("failed"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    assert!(show.contains(&format!("sluice replay jobdemo {id}")), "{show}");

    let o = sluice(data.path()).args(["jobs", "logs", "jobdemo", "--mini-batch", id]).output().unwrap();
    let logs = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(logs.contains("panicked: scorer bug on panic.txt"), "{logs}");
    assert!(logs.lines().all(|l| l.contains(&format!("mini_batch={id}"))), "only that mini-batch: {logs}");

    let o = sluice(data.path()).args(["jobs", "show", "nope"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("no job `nope`"), "{}", text(&o));
}

#[test]
fn jobs_logs_follow_streams_until_the_job_ends() {
    let data = tempfile::tempdir().unwrap();
    let job = Job::new(ADVERSARY).file("chatty.txt", "x").file("sleep.txt", "x");
    let dir = job.job_dir();
    let mut run = sluice(data.path())
        .args(["run", "-q", "--input"])
        .arg(job.input())
        .args(["--scorer", ADVERSARY, "--timeout", "2", "--max-retries", "0", "--mini-batch-size", "1"])
        .args(["--max-concurrency", "1", "--job-dir"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the job to exist, then follow it.
    let t = std::time::Instant::now();
    while !dir.join("progress.json").exists() && t.elapsed().as_secs() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let o = sluice(data.path()).args(["jobs", "logs", "--follow"]).arg(&dir).output().unwrap();
    assert!(run.wait().unwrap().success());
    let logs = String::from_utf8_lossy(&o.stdout);
    assert!(logs.contains("chatter line 0"), "{logs}");
    assert!(dir.join("job_result.json").is_file(), "--follow returned only after the job ended");
}

#[test]
fn replay_reruns_one_mini_batch_and_resume_skips_what_is_done() {
    let data = tempfile::tempdir().unwrap();
    let _job = failing_job(data.path());
    let dir = only_job_dir(data.path());
    let pmb = std::fs::read_to_string(dir.join("processed_mini_batches.csv")).unwrap();
    let ok_id = pmb.lines().find(|l| l.contains(",a.txt,")).unwrap().split(',').next().unwrap().to_string();
    let bad_id = pmb.lines().find(|l| l.contains(",panic.txt,")).unwrap().split(',').next().unwrap().to_string();

    let o = sluice(data.path()).args(["replay", "jobdemo", &ok_id[..8]]).output().unwrap();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains(&format!("mini-batch {ok_id} (#0; inputs a.txt) of job jobdemo: succeeded")), "{out}");
    assert!(out.contains("rows (1):"), "{out}");

    let o = sluice(data.path()).args(["replay", "jobdemo", &bad_id]).output().unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("TRAP: panicked: scorer bug on panic.txt"), "{out}");
    assert!(out.contains("[TRAP] panic.txt"), "{out}");
    assert!(out.contains("guest log") && out.contains("panicked: scorer bug"), "{out}");

    let o = sluice(data.path()).args(["replay", "jobdemo", "ffffffff"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("no mini-batch `ffffffff`"), "{}", text(&o));

    // Resume: the two good mini-batches are committed; only the failed one runs.
    let o = sluice(data.path()).args(["resume", "jobdemo"]).output().unwrap();
    let out = text(&o);
    assert!(out.contains("2 committed by an earlier run"), "{out}");
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("job_result.json")).unwrap()).unwrap();
    assert_eq!(result["mini_batches"]["resumed"], 2);
    assert_eq!(result["mini_batches"]["tries"], 3, "2 earlier tries + 1 new");
}

#[test]
fn validate_names_what_a_component_lacks_and_compile_fills_the_cache() {
    let data = tempfile::tempdir().unwrap();
    let o = sluice(data.path()).args(["validate", TABULAR_CLASSIFIER]).output().unwrap();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("ok       sluice:scorer/onnx@0.1.1"), "{out}");
    assert!(out.contains("run: called once per mini-batch"), "{out}");
    assert!(out.contains("fits the sluice:scorer world"), "{out}");

    let o = sluice(data.path()).args(["validate", LEGACY]).output().unwrap();
    assert!(o.status.success(), "a 0.1.0 component fits: {}", text(&o));

    let empty = data.path().join("empty.wasm");
    std::fs::write(&empty, [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]).unwrap();
    let o = sluice(data.path()).arg("validate").arg(&empty).output().unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("missing export `init"), "{out}");
    assert!(out.contains("missing export `run"), "{out}");

    let cache = data.path().join("cache");
    let compile = || sluice(data.path()).args(["compile", ECHO, "--cache-dir"]).arg(&cache).output().unwrap();
    let first = text(&compile());
    assert!(first.starts_with("compiled "), "{first}");
    let second = text(&compile());
    assert!(second.contains("is already compiled"), "{second}");
}
