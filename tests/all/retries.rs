//! Retries: counted as documented, each on a fresh instance, never
//! duplicating output rows.

use sluice_job::result::JobStatus;

use crate::helpers::*;

#[test]
fn each_retry_runs_on_a_fresh_instance_without_duplicate_rows() {
    // The echo scorer panics on every instance's 2nd run() call. With one
    // instance and one file per mini-batch, every mini-batch but the first
    // fails once, then succeeds on the fresh instance that replaces it.
    let mut job = Job::new(ECHO);
    for i in 0..6 {
        job = job.file(&format!("f{i}.txt"), format!("line {i}\n"));
    }
    let job = job
        .output("csv")
        .set("task.config.crash_on_call", "2")
        .set("mini_batch_size", "1")
        .set("max_concurrency_per_instance", "1");
    let result = job.run();
    assert_eq!(result.status, JobStatus::Completed);
    assert_eq!(result.mini_batches.retried, 5);
    assert_eq!(result.mini_batches.tries, 11);
    let records = job.records();
    let instances: std::collections::HashSet<&str> = records.values().map(|r| r["instance"].as_str()).collect();
    assert_eq!(instances.len(), 6, "each retry ran on a new instance: {records:?}");
    assert_eq!(records["f3.txt"]["tries"], "2");
    assert!(records["f3.txt"]["message"].contains("panicked: crash on call 2"), "the recovered failure is reported");

    let (header, rows) = job.csv_rows();
    assert_eq!(header, ["name", "size", "first_line"]);
    let names: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(names, ["f0.txt", "f1.txt", "f2.txt", "f3.txt", "f4.txt", "f5.txt"]);
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
