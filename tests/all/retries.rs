//! Retries: counted as documented, each on a fresh instance, never
//! duplicating output rows, even when the failed try produced rows.

use std::collections::HashSet;
use std::sync::Mutex;

use sluice_io::{LocalOutput, OutputStore};
use sluice_job::result::JobStatus;

use crate::helpers::*;

#[test]
fn each_retry_runs_on_a_fresh_instance_without_duplicate_rows() {
    // The flaky scorer's every instance answers its 2nd run() call with
    // rows for the first file of the mini-batch only: a try that produced
    // rows and then failed (INVALID_OUTPUT, the second file is unaccounted
    // for). With one instance and two files per mini-batch, every
    // mini-batch but the first fails so once, then succeeds on the fresh
    // instance that replaces the failed one (whose first call it is).
    let mut job = Job::new(FLAKY);
    for i in 0..8 {
        job = job.file(&format!("f{i}.txt"), format!("line {i}\n"));
    }
    let job = job
        .output("csv")
        .set("task.config.partial_on_call", "2")
        .set("mini_batch_size", "2")
        .set("max_concurrency_per_instance", "1");
    let result = job.run();
    assert_eq!(result.status, JobStatus::Completed);
    assert_eq!(result.mini_batches.retried, 3);
    assert_eq!(result.mini_batches.tries, 7);
    let records = job.records();
    let instances: HashSet<&str> = records.values().map(|r| r["instance"].as_str()).collect();
    assert_eq!(instances.len(), 4, "each retry ran on a new instance: {records:?}");
    assert_eq!(records["f4.txt"]["tries"], "2");
    assert!(records["f4.txt"]["message"].contains("unaccounted for"), "the recovered failure is reported");

    // Each file once: the rows of the failed tries (f2, f4, f6 each had a
    // row in a try that failed) are not in the output.
    let (header, rows) = job.csv_rows();
    assert_eq!(header[0], "name");
    let names: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(names, ["f0.txt", "f1.txt", "f2.txt", "f3.txt", "f4.txt", "f5.txt", "f6.txt", "f7.txt"]);
}

/// A store whose first attempt at each part writes half of it to disk and
/// then fails, like a disk that fills mid-write (until it is freed).
struct TornOnce {
    inner: LocalOutput,
    torn: Mutex<HashSet<usize>>,
}

impl OutputStore for TornOnce {
    fn stage(&self, index: usize, part: &[u8]) -> std::io::Result<()> {
        if self.torn.lock().unwrap().insert(index) {
            self.inner.stage(index, &part[..part.len() / 2])?;
            return Err(std::io::Error::other("No space left on device"));
        }
        self.inner.stage(index, part)
    }
    fn has_part(&self, part: sluice_io::PartRef<'_>) -> bool {
        self.inner.has_part(part)
    }
    fn discard_parts(&self) -> std::io::Result<()> {
        self.inner.discard_parts()
    }
    fn assemble(&self, parts: &[sluice_io::PartRef<'_>], header: &[u8]) -> std::io::Result<std::path::PathBuf> {
        self.inner.assemble(parts, header)
    }
}

#[test]
fn a_half_written_part_is_replaced_on_resume_leaving_each_row_once() {
    // Every mini-batch's first stage writes half its rows to the staged
    // part, then fails: a disk that cannot take the output stops the job
    // (the job's fault, not the scorer's). The resume, with the disk freed,
    // must replace the torn parts.
    for ext in ["csv", "jsonl"] {
        let mut job = Job::new(ECHO);
        for i in 0..5 {
            job = job.file(&format!("f{i}.txt"), format!("line {i}\n").repeat(40));
        }
        let job = job.output(ext).set("mini_batch_size", "1").set("retry_settings.max_retries", "1");
        let store = TornOnce {
            inner: LocalOutput::new(&job.out_path(ext), &job.job_dir().join("staged")).unwrap(),
            torn: Mutex::default(),
        };
        let r = sluice_runtime::run_job_with_output(&job.spec(), &job.options(), Some(Box::new(store))).unwrap();
        assert_eq!(r.status, JobStatus::Failed, "{ext}");
        let reason = r.reason.as_deref().unwrap_or_default();
        assert!(reason.contains("cannot stage the output") && reason.contains("No space left"), "{ext}: {reason}");
        assert_eq!(r.mini_batches.succeeded, 0, "{ext}: every first stage tore");
        assert!(std::fs::read_dir(job.job_dir().join("staged")).unwrap().count() > 0, "{ext}: a torn part is there");

        let r = job.run();
        assert_eq!(r.status, JobStatus::Completed, "{ext}: {:?}", r.first_errors);
        assert_eq!(r.mini_batches.succeeded, 5, "{ext}");

        let text = std::fs::read_to_string(job.out_path(ext)).unwrap();
        let want: Vec<String> = (0..5).map(|i| format!("f{i}.txt,280,line {i}")).collect();
        let got: Vec<String> = if ext == "csv" {
            text.lines().skip(1).map(str::to_string).collect()
        } else {
            text.lines()
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
                    format!("{},{},{}", v["name"].as_str().unwrap(), v["size"], v["first_line"].as_str().unwrap())
                })
                .collect()
        };
        assert_eq!(got, want, "{ext}: {text}");
    }
}

#[test]
fn max_retries_means_retries_after_the_first_try() {
    for (retries, tries) in [("0", "1"), ("2", "3")] {
        let job = Job::new(ECHO).file("a.txt", "please fail").set("retry_settings.max_retries", retries);
        let result = job.run();
        assert_eq!(job.records()["a.txt"]["tries"], tries);
        assert_eq!(result.mini_batches.failed, 1);
    }
    // The default is 3 retries: 4 tries.
    let job = Job::new(ECHO).file("a.txt", "fail");
    job.run();
    assert_eq!(job.records()["a.txt"]["tries"], "4");
}
