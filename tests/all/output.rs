//! append_row_to: one file, deterministic input order, CSV or JSON Lines.

use std::sync::atomic::{AtomicUsize, Ordering};

use sluice_io::{LocalOutput, OutputStore};
use sluice_job::result::JobStatus;

use crate::helpers::*;

/// 30 files in 10 mini-batches of 3 on 3 instances. The first mini-batch
/// holds `a/wait.txt` (first in input order): it finishes only once the
/// file `go` appears in `ctl` (granted at /ctl).
fn many_files(ctl: &std::path::Path) -> Job {
    let mut job = Job::new(FLAKY).file("a/wait.txt", "");
    for i in 0..29 {
        job = job.file(&format!("d{}/f{i:02}.txt", i % 3), "x".repeat(i));
    }
    job.set("mini_batch_size", "3")
        .set("max_concurrency_per_instance", "3")
        .set("task.mounts./ctl", &ctl.display().to_string())
        .set("task.config.wait_for", "/ctl/go")
        .output("csv")
}

#[test]
fn output_follows_input_order_whatever_the_completion_order() {
    // The first mini-batch is held until the other nine are committed, so
    // it completes last; the output is still in input order.
    let ctl = tempfile::tempdir().unwrap();
    let job = many_files(ctl.path());
    let (dir, go) = (job.job_dir(), ctl.path().join("go"));
    let release = std::thread::spawn(move || {
        let others_first = wait_until(60, || journal_entries(&dir) == 9);
        std::fs::write(go, "").unwrap();
        others_first
    });
    let result = job.run_within(120);
    assert!(release.join().unwrap(), "the other nine mini-batches were not committed before the first");
    let (_, rows) = job.csv_rows();
    let names: Vec<String> = rows.iter().map(|r| r[0].clone()).collect();
    let mut expected = names.clone();
    expected.sort();
    assert_eq!(names, expected, "sorted input order");
    assert_eq!(names.len(), 30);
    assert_eq!(result.output_rows, 30);

    // The same bytes from a fresh job (its own job directory, nothing to
    // resume) whose mini-batches complete in input order: one instance,
    // the first mini-batch not held.
    let ctl2 = tempfile::tempdir().unwrap();
    std::fs::write(ctl2.path().join("go"), "").unwrap();
    let in_order = many_files(ctl2.path()).set("max_concurrency_per_instance", "1");
    let r = in_order.run_within(120);
    assert_eq!((r.mini_batches.resumed, r.mini_batches.succeeded), (0, 10));
    assert_eq!(std::fs::read(in_order.out_path("csv")).unwrap(), std::fs::read(job.out_path("csv")).unwrap());
}

#[test]
fn json_lines_output() {
    let job = Job::new(ECHO).file("a.txt", "hello\nworld").file("b.txt", "").output("jsonl");
    job.run();
    let text = std::fs::read_to_string(job.out_path("jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["name"], "a.txt");
    assert_eq!(rows[0]["size"], 11);
    assert_eq!(rows[0]["first_line"], "hello");
    assert_eq!(rows[1]["first_line"], "");
}

#[test]
fn config_reaches_init_and_csv_quotes_values() {
    let job = Job::new(ECHO).file("a.txt", "x,\"y\"").output("csv").set("task.config.greeting", "hi, there");
    job.run();
    let text = std::fs::read_to_string(job.out_path("csv")).unwrap();
    assert_eq!(text, "name,size,first_line,greeting\na.txt,5,\"x,\"\"y\"\"\",\"hi, there\"\n");
}

#[test]
fn without_append_row_to_only_the_summary_is_written() {
    let job = Job::new(ECHO).file("a.txt", "x");
    let r = job.run();
    assert!(r.output.is_none());
    assert_eq!(r.items.succeeded, 1);
    assert!(job.job_dir().join("job_result.json").is_file());
    assert!(!job.dir.path().join("out.csv").exists());
}

#[test]
fn a_mini_batch_returning_other_columns_fails_as_invalid_output() {
    // env.txt returns `env_vars: s64`, ok.txt returns `file: string`; with
    // one instance, env.txt runs first and fixes the job's columns.
    let job = Job::new(ADVERSARY)
        .file("env.txt", "")
        .file("ok.txt", "")
        .output("csv")
        .set("mini_batch_size", "1")
        .set("max_concurrency_per_instance", "1")
        .set("retry_settings.max_retries", "0");
    let r = job.run();
    assert_eq!((r.mini_batches.succeeded, r.mini_batches.failed), (1, 1));
    let rec = &job.records()["ok.txt"];
    assert_eq!(rec["reason"], "INVALID_OUTPUT");
    assert!(
        rec["message"].contains("output columns [file: string] differ from the job's output columns [env_vars: s64]"),
        "{rec:?}"
    );
    assert_eq!(std::fs::read_to_string(job.out_path("csv")).unwrap(), "env_vars\n0\n");
}

/// A store whose disk fills up after its first commit.
struct FullDisk {
    inner: LocalOutput,
    commits: AtomicUsize,
}

impl OutputStore for FullDisk {
    fn stage(&self, index: usize, part: &[u8]) -> std::io::Result<()> {
        // The third part finds the disk full.
        if self.commits.fetch_add(1, Ordering::SeqCst) == 2 {
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
    fn assemble(&self, _parts: &[sluice_io::PartRef<'_>], _header: &[u8]) -> std::io::Result<std::path::PathBuf> {
        Err(std::io::Error::other("No space left on device"))
    }
}

#[test]
fn an_output_that_cannot_be_written_fails_the_job_with_a_report_and_keeps_the_parts() {
    let mut job = Job::new(ECHO)
        .output("csv")
        .set("mini_batch_size", "1")
        .set("max_concurrency_per_instance", "1")
        .set("retry_settings.max_retries", "0");
    for i in 0..5 {
        job = job.file(&format!("f{i}.txt"), "x");
    }
    let store = FullDisk {
        inner: LocalOutput::new(&job.out_path("csv"), &job.job_dir().join("staged")).unwrap(),
        commits: AtomicUsize::new(0),
    };
    let opts = job.options();
    let r = sluice_runtime::run_job_with_output(&job.spec(), &opts, Some(Box::new(store))).unwrap();
    assert_eq!(r.status, JobStatus::Failed);
    let reason = r.reason.as_deref().unwrap();
    assert!(reason.contains("cannot stage the output") && reason.contains("No space left on device"), "{reason}");
    // A disk that cannot take the output is the job's fault, not the
    // scorer's: the job stops at once, the mini-batch whose part could not
    // be staged stays uncommitted (not failed), nothing after it runs.
    assert_eq!((r.mini_batches.succeeded, r.mini_batches.failed, r.mini_batches.not_run), (2, 0, 3));
    assert_eq!(job.result_json()["status"], "failed");
    // Nothing done is lost: a resume (with a working disk) runs only what
    // was not committed and assembles all five rows.
    let r = job.run();
    assert_eq!(r.status, JobStatus::Completed);
    assert_eq!(r.mini_batches.resumed, 2, "only the uncommitted mini-batches ran again");
    let (_, rows) = job.csv_rows();
    assert_eq!(
        rows.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(),
        ["f0.txt", "f1.txt", "f2.txt", "f3.txt", "f4.txt"]
    );
}
