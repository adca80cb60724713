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

/// Mini-batches committed in a job directory's journal.
fn entries(job_dir: &std::path::Path) -> usize {
    std::fs::read_dir(job_dir.join("journal"))
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    e.file_name().to_string_lossy().ends_with(".json")
                        && e.file_name().to_string_lossy().starts_with('0')
                })
                .count()
        })
        .unwrap_or(0)
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
                while entries(&job_dir) < target && child.try_wait().unwrap().is_none() && Instant::now() < deadline {
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
        let committed = entries(&job_dir);
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
