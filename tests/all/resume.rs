//! Resume with exactly-once output: a real `sluice` process killed with
//! SIGKILL at random moments, then resumed, leaves exactly the output of an
//! uninterrupted run; a changed scorer under an existing job is refused.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::*;

fn sluice() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice-test-cli"));
    c.env("SLUICE_CACHE_DIR", cache_dir()).stdout(Stdio::null()).stderr(Stdio::null());
    c
}

/// A small deterministic generator (xorshift), seeded from the clock; the
/// seed is printed so a failure can be replayed with SLUICE_TEST_SEED.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("SLUICE_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
        });
        eprintln!("resume test seed: {seed} (set SLUICE_TEST_SEED to replay)");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn job_yaml(dir: &std::path::Path, scorer: &str) -> std::path::PathBuf {
    let spec = dir.join("job.yaml");
    std::fs::write(
        &spec,
        format!(
            "type: parallel\nname: resume\n\
             inputs:\n  files: {{type: uri_folder, path: ./in}}\n\
             input_data: ${{{{inputs.files}}}}\nmini_batch_size: \"1\"\nmax_concurrency_per_instance: 2\n\
             task:\n  code: {scorer}\n  append_row_to: ./out.csv\n"
        ),
    )
    .unwrap();
    spec
}

#[test]
fn resume_after_random_kills_gives_exactly_the_uninterrupted_output() {
    let mut job = Job::new(ECHO);
    for i in 0..40 {
        job = job.file(&format!("f{i:02}.txt"), format!("line {i}\n").repeat(i % 7 + 1));
    }
    let spec = job_yaml(job.dir.path(), ECHO);
    let out = job.dir.path().join("out.csv");

    // The uninterrupted run, and how long it takes.
    let started = Instant::now();
    let status =
        sluice().arg("run").arg(&spec).arg("--job-dir").arg(job.dir.path().join("reference")).status().unwrap();
    assert!(status.success());
    let full = started.elapsed();
    let expected = std::fs::read(&out).unwrap();
    std::fs::remove_file(&out).unwrap();

    let mut rng = Rng::new();
    let mut kills = 0;
    // Trials whose kills left some, but not all, mini-batches committed.
    let mut partial = 0;
    for trial in 0..25 {
        let job_dir = job.dir.path().join(format!("trial{trial}"));
        // Kill up to three times, then let it finish. The first kill and
        // most others wait for a random number of commits (so they land mid-job whatever the
        // machine's speed); the others land at a random time (start-up,
        // planning, the final assembly).
        for k in 0..=rng.below(3) {
            let mut child = sluice().arg("run").arg(&spec).arg("--job-dir").arg(&job_dir).spawn().unwrap();
            if k == 0 || rng.below(10) < 7 {
                let target = 1 + rng.below(39) as usize;
                let deadline = Instant::now() + Duration::from_secs(20);
                while journal_entries(&job_dir) < target
                    && child.try_wait().unwrap().is_none()
                    && Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_micros(200));
                }
            } else {
                std::thread::sleep(Duration::from_micros(rng.below(full.as_micros() as u64 + 1)));
            }
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap();
                kills += 1;
            }
            child.wait().unwrap();
        }
        let committed = journal_entries(&job_dir);
        if committed > 0 && committed < 40 {
            partial += 1;
        }
        let status = sluice().arg("run").arg(&spec).arg("--job-dir").arg(&job_dir).status().unwrap();
        assert!(status.success(), "trial {trial}: the resumed run failed");
        let got = std::fs::read(&out).unwrap();
        assert!(got == expected, "trial {trial}: output differs after resume:\n{}", String::from_utf8_lossy(&got));
        std::fs::remove_file(&out).unwrap();
    }
    eprintln!("{kills} kills; {partial} of 25 trials resumed a partly committed job");
    assert!(kills >= 10 && partial >= 8, "only {kills} kills, {partial} partial trials: resume was not exercised");
}

#[test]
fn a_changed_scorer_under_an_existing_job_is_refused_unless_restarted() {
    let job = Job::new(ECHO).file("a.txt", "x");
    let spec = job_yaml(job.dir.path(), ECHO);
    let job_dir = job.job_dir();
    assert!(sluice().arg("run").arg(&spec).arg("--job-dir").arg(&job_dir).status().unwrap().success());

    let other = job_yaml(job.dir.path(), FILE_STATS);
    let o = Command::new(env!("CARGO_BIN_EXE_sluice-test-cli"))
        .env("SLUICE_CACHE_DIR", cache_dir())
        .arg("run")
        .arg(&other)
        .arg("--job-dir")
        .arg(&job_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the scorer changed"), "{stderr}");
    assert!(stderr.contains("--restart"), "{stderr}");

    let status = sluice().arg("run").arg(&other).arg("--job-dir").arg(&job_dir).arg("--restart").status().unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(job.dir.path().join("out.csv")).unwrap();
    assert!(text.starts_with("name,bytes,lines,sha256\n"), "{text}");
}

#[test]
fn a_changed_input_reruns_only_its_mini_batch() {
    let mut job = Job::new(ECHO).output("csv").set("mini_batch_size", "1");
    for i in 0..4 {
        job = job.file(&format!("f{i}.txt"), format!("line {i}\n"));
    }
    assert_eq!(job.run().mini_batches.succeeded, 4);
    // f1 grows; f2 keeps its size and gets a new modification time (an
    // edit in place).
    std::fs::write(job.input().join("f1.txt"), "longer line 1\n").unwrap();
    std::fs::write(job.input().join("f2.txt"), "LINE 2\n").unwrap();
    let later = std::time::SystemTime::now() + Duration::from_secs(10);
    std::fs::File::options().write(true).open(job.input().join("f2.txt")).unwrap().set_modified(later).unwrap();

    let r = job.run();
    assert_eq!((r.mini_batches.resumed, r.mini_batches.succeeded), (2, 4), "only f1 and f2 ran again");
    let records = job.records();
    for (f, tries) in [("f0.txt", "1"), ("f1.txt", "1"), ("f2.txt", "1"), ("f3.txt", "1")] {
        assert_eq!(records[f]["tries"], tries, "{f}");
    }
    let (_, rows) = job.csv_rows();
    let firsts: Vec<&str> = rows.iter().map(|r| r[2].as_str()).collect();
    assert_eq!(firsts, ["line 0", "longer line 1", "LINE 2", "line 3"]);
}

/// A tabular job (3 CSV files of 20 rows, mini-batches of 10 rows) whose
/// flaky scorer stalls the mini-batch holding the row whose id is in
/// `ctl/stall`, if that file exists.
fn tabular_yaml(dir: &std::path::Path, ext: &str) -> std::path::PathBuf {
    let input = dir.join("in");
    for f in 0..3 {
        let mut csv = String::from("id,x,name,flag\n");
        for r in 0..20 {
            let id = f * 20 + r;
            let x = if id % 7 == 3 { String::new() } else { format!("{}.25", id * 3) };
            let name = if id % 5 == 1 { String::new() } else { format!("n{id}") };
            csv += &format!("{id},{x},{name},{}\n", id % 2 == 0);
        }
        std::fs::write(input.join(format!("part-{f}.csv")), csv).unwrap();
    }
    std::fs::create_dir_all(dir.join("ctl")).unwrap();
    let spec = dir.join(format!("job-{ext}.yaml"));
    std::fs::write(
        &spec,
        format!(
            "type: parallel\nname: tabular-resume\n\
             inputs:\n  rows: {{type: mltable, path: ./in}}\n\
             input_data: ${{{{inputs.rows}}}}\nmini_batch_size: \"10 rows\"\nmax_concurrency_per_instance: 2\n\
             task:\n  code: {FLAKY}\n  append_row_to: ./out.{ext}\n  mounts: {{/ctl: ./ctl}}\n\
             \x20 config: {{stall_on: /ctl/stall}}\n"
        ),
    )
    .unwrap();
    spec
}

#[test]
fn a_killed_tabular_job_resumes_to_the_same_parquet_and_json_lines() {
    for ext in ["parquet", "jsonl"] {
        let job = Job::new(FLAKY);
        let spec = tabular_yaml(job.dir.path(), ext);
        let out = job.dir.path().join(format!("out.{ext}"));
        let run = |dir: &str| {
            let mut c = sluice();
            c.arg("run").arg(&spec).arg("--job-dir").arg(job.dir.path().join(dir));
            c
        };
        assert!(run("reference").status().unwrap().success(), "{ext}: the uninterrupted run");
        let expected = std::fs::read(&out).unwrap();
        std::fs::remove_file(&out).unwrap();

        // The first mini-batch (ids 0-9) stalls; kill the job once the
        // other five are committed, then let it resume.
        std::fs::write(job.dir.path().join("ctl/stall"), "0").unwrap();
        let job_dir = job.dir.path().join("killed");
        let mut child = run("killed").spawn().unwrap();
        let five = wait_until(60, || journal_entries(&job_dir) == 5);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(five, "{ext}: the five other mini-batches were not committed");
        assert!(!out.exists(), "{ext}: killed before the output was assembled");
        std::fs::remove_file(job.dir.path().join("ctl/stall")).unwrap();

        let o = within(60, "the resumed run", {
            let mut c = run("killed");
            move || c.output().unwrap()
        });
        assert!(o.status.success(), "{ext}: the resumed run failed");
        let result: serde_json::Value =
            serde_json::from_slice(&std::fs::read(job_dir.join("job_result.json")).unwrap()).unwrap();
        assert_eq!(result["mini_batches"]["resumed"], 5, "{ext}: {result}");
        assert!(
            std::fs::read(&out).unwrap() == expected,
            "{ext}: the resumed output differs from the uninterrupted one"
        );
    }
}
