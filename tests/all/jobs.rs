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
    // Start times have a resolution of one second: let the clock pass to
    // the next one, so the two jobs' start times differ. The newer job's
    // name sorts before the older one's, so only ordering by start time
    // (not by name, nor a tie broken by name) puts it first.
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let first_done = now();
    while now() == first_done {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let second = Job::new(ECHO).file("x.txt", "x");
    let o = sluice(data.path())
        .args(["run", "-q", "--input"])
        .arg(second.input())
        .args(["--scorer", ECHO, "--set", "name=another"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));

    let o = sluice(data.path()).args(["jobs", "list"]).output().unwrap();
    let list = text(&o);
    let lines: Vec<&str> = list.lines().collect();
    assert!(lines[0].starts_with("JOB"), "{list}");
    assert!(lines[1].starts_with("another-") && lines[1].contains("completed"), "newest first: {list}");
    assert!(lines[2].starts_with("jobdemo-") && lines[2].contains("completed_with_errors"), "{list}");
    assert!(lines[2].contains("3/3"), "{list}");

    // Plain `jobs show`: every mini-batch, the good ones too, then the
    // failed items and where to look next.
    let o = sluice(data.path()).args(["jobs", "show", "jobdemo"]).output().unwrap();
    let show = text(&o);
    assert!(o.status.success(), "{show}");
    assert!(show.contains("status:        completed_with_errors"), "{show}");
    assert!(show.contains("mini-batches:  3 total, 2 succeeded, 1 failed"), "{show}");
    assert!(show.contains("items:         3 total, 2 succeeded, 1 failed"), "{show}");
    assert!(show.contains("thresholds:    error_threshold -1"), "{show}");
    let table: Vec<&str> = show.lines().skip_while(|l| !l.starts_with("MINI-BATCH")).skip(1).take(3).collect();
    assert!(table[0].contains("succeeded") && table[0].contains("a.txt"), "{show}");
    assert!(table[1].contains("failed") && table[1].contains("panic.txt"), "{show}");
    assert!(table[1].contains("TRAP: panicked: scorer bug on panic.txt"), "{show}");
    assert!(table[2].contains("succeeded") && table[2].contains("z.txt"), "{show}");
    assert!(show.contains("failed items (1 in errors.jsonl):\n  [TRAP] panic.txt"), "{show}");
    assert!(show.contains("next: `sluice jobs logs jobdemo --mini-batch "), "{show}");

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
    // The job runs for 2s more (sleep.txt until its timeout): it is still
    // running when the follow starts.
    assert!(run.try_wait().unwrap().is_none(), "the job ended before --follow started");
    let data_dir = data.path().to_path_buf();
    let o = within(60, "jobs logs --follow", move || {
        sluice(&data_dir).args(["jobs", "logs", "--follow"]).arg(&dir).output().unwrap()
    });
    // Checked before waiting for the job: --follow itself waited for it.
    assert!(job.job_dir().join("job_result.json").is_file(), "--follow returned before the job ended");
    assert!(run.wait().unwrap().success());
    let logs = String::from_utf8_lossy(&o.stdout);
    assert!(logs.contains("chatter line 0"), "{logs}");
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

/// Every file under `dirs`, with its bytes.
fn snapshot(dirs: &[&std::path::Path]) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    fn walk(p: &std::path::Path, out: &mut std::collections::BTreeMap<std::path::PathBuf, Vec<u8>>) {
        if p.is_dir() {
            for e in std::fs::read_dir(p).unwrap() {
                walk(&e.unwrap().path(), out);
            }
        } else {
            out.insert(p.to_path_buf(), std::fs::read(p).unwrap());
        }
    }
    let mut out = std::collections::BTreeMap::new();
    for d in dirs {
        walk(d, &mut out);
    }
    out
}

#[test]
fn replay_uses_the_jobs_limits_and_leaves_the_job_untouched() {
    // A job with its own fuel (far below the default) and timeout (1s
    // against the default 60s), and retries.
    let data = tempfile::tempdir().unwrap();
    let job = Job::new(ADVERSARY).file("a.txt", "fine").file("loop.txt", "").file("sleep.txt", "");
    let o = sluice(data.path())
        .args(["run", "-q", "--input"])
        .arg(job.input())
        .args(["--scorer", ADVERSARY, "--mini-batch-size", "1", "--max-retries", "1", "--timeout", "1"])
        .args(["--set", "limits.fuel=10000000", "--set", "name=limited", "--output"])
        .arg(job.out_path("csv"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let dir = only_job_dir(data.path());
    let pmb = std::fs::read_to_string(dir.join("processed_mini_batches.csv")).unwrap();
    let id_of = |input: &str| {
        pmb.lines().find(|l| l.contains(&format!(",{input},"))).unwrap().split(',').next().unwrap().to_string()
    };
    let before = snapshot(&[data.path(), &job.out_path("csv")]);

    let replay = |id: String| {
        let data = data.path().to_path_buf();
        within(30, "replay", move || {
            let started = std::time::Instant::now();
            let o = sluice(&data).args(["replay", "limited", &id]).output().unwrap();
            (o, started.elapsed())
        })
    };
    let (o, took) = replay(id_of("loop.txt"));
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    // The default fuel would compute for many seconds before running out.
    assert!(out.contains("TIMEOUT: ran out of fuel (limits.fuel)"), "the job's fuel: {out}");
    assert!(took.as_secs() < 10, "the job's fuel, not the default: {took:?}");
    let (o, took) = replay(id_of("sleep.txt"));
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("TIMEOUT: exceeded retry_settings.timeout = 1s"), "the job's timeout: {out}");
    assert!(took.as_secs() < 10, "the job's 1s timeout, not the default 60s: {took:?}");
    let (o, _) = replay(id_of("a.txt"));
    assert!(o.status.success(), "{}", text(&o));

    let after = snapshot(&[data.path(), &job.out_path("csv")]);
    assert_eq!(before.keys().collect::<Vec<_>>(), after.keys().collect::<Vec<_>>(), "replay added or removed files");
    for (path, bytes) in &before {
        assert!(after[path] == *bytes, "replay changed {}", path.display());
    }
}

#[test]
fn validate_names_what_a_component_lacks_and_compile_fills_the_cache() {
    let data = tempfile::tempdir().unwrap();
    let o = sluice(data.path()).args(["validate", TABULAR_CLASSIFIER]).output().unwrap();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("ok       sluice:scorer/onnx@0.1.3"), "{out}");
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
