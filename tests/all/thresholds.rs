//! error_threshold, mini_batch_error_threshold and allowed_failed_percent.

use sluice_job::result::JobStatus;

use crate::helpers::*;

/// 10 files: `bad` ones are item errors, `fail` ones fail their mini-batch.
fn job(bad: &[usize], fail: &[usize]) -> Job {
    let mut job = Job::new(ECHO);
    for i in 0..10 {
        let text = if bad.contains(&i) {
            "bad"
        } else if fail.contains(&i) {
            "fail"
        } else {
            "good"
        };
        job = job.file(&format!("f{i}.txt"), text);
    }
    job.set("mini_batch_size", "1").set("retry_settings.max_retries", "0").set("max_concurrency_per_instance", "1")
}

#[test]
fn error_threshold_counts_failed_items() {
    let r = job(&[1, 4, 7], &[]).set("error_threshold", "3").run();
    assert_eq!(r.status, JobStatus::CompletedWithErrors);
    assert_eq!(r.items.failed, 3);

    let r = job(&[1, 4, 7], &[]).set("error_threshold", "2").run();
    assert_eq!(r.status, JobStatus::Failed);
    assert_eq!(r.crossed.as_ref().map(|c| c.key()), Some("error_threshold"));
    assert!(r.reason.unwrap().contains("3 failed items exceed error_threshold = 2"));
    // It stopped promptly: with one instance in input order, f8 and f9
    // never ran.
    assert_eq!(r.mini_batches.not_run, 2);
}

#[test]
fn failed_mini_batch_items_count_toward_error_threshold() {
    let r = job(&[], &[2]).set("mini_batch_size", "5").set("error_threshold", "4").run();
    assert_eq!(r.status, JobStatus::Failed, "a failed mini-batch of 5 files is 5 failed items");
}

#[test]
fn mini_batch_error_threshold_counts_failed_mini_batches() {
    let r = job(&[0, 1, 2], &[5]).set("mini_batch_error_threshold", "1").run();
    assert_eq!(r.status, JobStatus::CompletedWithErrors, "item errors do not fail mini-batches");

    let r = job(&[], &[3, 5]).set("mini_batch_error_threshold", "1").run();
    assert_eq!(r.status, JobStatus::Failed);
    assert_eq!(r.crossed.as_ref().map(|c| c.key()), Some("mini_batch_error_threshold"));
    assert_eq!(r.mini_batches.not_run, 4);
}

#[test]
fn allowed_failed_percent_is_a_share_of_all_mini_batches() {
    let r = job(&[], &[3, 5]).set("allowed_failed_percent", "20").run();
    assert_eq!(r.status, JobStatus::CompletedWithErrors);

    let r = job(&[], &[3, 5]).set("allowed_failed_percent", "10").run();
    assert_eq!(r.status, JobStatus::Failed);
    assert_eq!(r.crossed.as_ref().map(|c| c.key()), Some("allowed_failed_percent"));
}

#[test]
fn a_failed_job_keeps_the_output_it_made() {
    let j = job(&[], &[6]).output("csv").set("mini_batch_error_threshold", "0");
    let r = j.run();
    assert_eq!(r.status, JobStatus::Failed);
    let (_, rows) = j.csv_rows();
    let names: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(names, ["f0.txt", "f1.txt", "f2.txt", "f3.txt", "f4.txt", "f5.txt"]);
    let json = j.result_json();
    assert_eq!(json["status"], "failed");
    assert_eq!(json["crossed"], "mini_batch_error_threshold");
    assert_eq!(json["first_errors"][0]["code"], "USER_ERROR");
    assert_eq!(json["first_errors"][0]["item"], "f6.txt");
    let csv = json["processed_mini_batches"].as_str().unwrap();
    assert!(std::path::Path::new(csv).is_file(), "job_result.json points at {csv}");
}
